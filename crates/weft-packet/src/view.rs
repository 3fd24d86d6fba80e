//! Parsed views of a frame, built on `etherparse` slices.
//!
//! [`parse`] reads Ethernet → ARP | IPv4 (with options) | IPv6 (with extension
//! headers) → UDP | TCP | ICMP | ICMPv6 and returns offsets and the few fields
//! the engine needs, plus a [`FlowKey`]. Bad input gives a [`ParseError`]
//! naming the layer and the reason; [`ParseError::reason`] is the stable
//! counter name. Anything deeper (an option's bytes, TCP flags) is read
//! through `etherparse`'s slice types over [`Headers`] offsets.

use crate::checksum;
use crate::flow::{Family, FlowKey};
use crate::{ethertype, proto, Mac};
use etherparse::{ArpPacketSlice, Ethernet2HeaderSlice, Ipv4HeaderSlice, Ipv6Slice, TcpHeaderSlice, UdpHeaderSlice};

/// Length of an Ethernet II header.
pub const ETH_LEN: usize = 14;

/// The protocol layer a [`ParseError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layer {
    /// Ethernet II.
    Ethernet,
    /// ARP.
    Arp,
    /// IPv4.
    Ipv4,
    /// IPv6 and its extension headers.
    Ipv6,
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// ICMP or ICMPv6.
    Icmp,
}

/// Error returned by [`parse`]: why a frame is not a well-formed packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ParseError {
    /// The frame ends inside a header.
    #[error("truncated {0:?} header")]
    Truncated(Layer),
    /// A header field has an impossible value (version, header length,
    /// total length, extension header chain).
    #[error("malformed {0:?} header: {1}")]
    Malformed(Layer, &'static str),
    /// The IPv4 header checksum is wrong.
    #[error("bad IPv4 header checksum")]
    BadChecksum,
}

impl ParseError {
    /// A short stable name for per-reason drop counters.
    pub fn reason(&self) -> &'static str {
        match self {
            ParseError::Truncated(Layer::Ethernet) => "truncated-ethernet",
            ParseError::Truncated(Layer::Arp) => "truncated-arp",
            ParseError::Truncated(Layer::Ipv4) => "truncated-ipv4",
            ParseError::Truncated(Layer::Ipv6) => "truncated-ipv6",
            ParseError::Truncated(Layer::Udp) => "truncated-udp",
            ParseError::Truncated(Layer::Tcp) => "truncated-tcp",
            ParseError::Truncated(Layer::Icmp) => "truncated-icmp",
            ParseError::Malformed(Layer::Ipv4, _) => "malformed-ipv4",
            ParseError::Malformed(Layer::Ipv6, _) => "malformed-ipv6",
            ParseError::Malformed(Layer::Tcp, _) => "malformed-tcp",
            ParseError::Malformed(Layer::Arp, _) => "malformed-arp",
            ParseError::Malformed(_, _) => "malformed",
            ParseError::BadChecksum => "bad-ipv4-checksum",
        }
    }
}

/// The network layer of a parsed frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L3 {
    /// IPv4: header at `off`, `hlen` bytes including options.
    Ipv4 {
        /// Header offset in the frame.
        off: u16,
        /// Header length including options.
        hlen: u16,
        /// Total length field (header + payload).
        total_len: u16,
        /// Time to live.
        ttl: u8,
        /// Non-first fragment (no transport header).
        later_fragment: bool,
    },
    /// IPv6: header at `off`; `payload_off` is past the extension headers.
    Ipv6 {
        /// Header offset in the frame.
        off: u16,
        /// Offset of the transport header (after extension headers).
        payload_off: u16,
        /// Payload length field.
        payload_len: u16,
        /// Hop limit.
        hop_limit: u8,
    },
    /// ARP (Ethernet/IPv4).
    Arp {
        /// Header offset in the frame.
        off: u16,
        /// Operation: 1 request, 2 reply.
        op: u16,
        /// Sender hardware address.
        sha: Mac,
        /// Sender protocol address.
        spa: [u8; 4],
        /// Target protocol address.
        tpa: [u8; 4],
    },
    /// An ethertype Weft does not parse (passed on, not an error).
    Other,
}

/// The transport layer of a parsed frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4 {
    /// UDP header at `off`.
    Udp {
        /// Header offset.
        off: u16,
    },
    /// TCP header at `off`.
    Tcp {
        /// Header offset.
        off: u16,
    },
    /// ICMP (IPv4) message at `off`.
    Icmp {
        /// Message offset.
        off: u16,
        /// ICMP type.
        typ: u8,
        /// ICMP code.
        code: u8,
    },
    /// ICMPv6 message at `off`.
    Icmpv6 {
        /// Message offset.
        off: u16,
        /// ICMPv6 type.
        typ: u8,
        /// ICMPv6 code.
        code: u8,
    },
    /// No transport header, or one Weft does not parse.
    None,
}

/// What [`parse`] found in a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Headers {
    /// Destination MAC.
    pub dst_mac: Mac,
    /// Source MAC.
    pub src_mac: Mac,
    /// Ethertype.
    pub ethertype: u16,
    /// Network layer.
    pub l3: L3,
    /// Transport layer.
    pub l4: L4,
    /// The classifier key (in-port left at 0; the engine fills it).
    pub flow: FlowKey,
}

impl Headers {
    /// Offset of the L3 header (always [`ETH_LEN`] for Ethernet II).
    pub fn l3_off(&self) -> usize {
        ETH_LEN
    }
    /// Offset of the L4 header, if any.
    pub fn l4_off(&self) -> Option<usize> {
        match self.l4 {
            L4::Udp { off } | L4::Tcp { off } | L4::Icmp { off, .. } | L4::Icmpv6 { off, .. } => Some(off as usize),
            L4::None => None,
        }
    }
}

/// Parse an Ethernet II frame. Verifies the IPv4 header checksum (RFC 1812
/// 5.2.2 requires routers to) and that length fields fit the frame. Trailing
/// bytes after the IP packet (Ethernet padding) are allowed.
pub fn parse(frame: &[u8]) -> Result<Headers, ParseError> {
    let mut flow = FlowKey::default();
    let s = parse_into(frame, &mut flow)?;
    Ok(Headers {
        dst_mac: s.dst_mac,
        src_mac: s.src_mac,
        ethertype: s.ethertype,
        l3: s.l3,
        l4: s.l4,
        flow,
    })
}

/// What [`parse_into`] returns besides the flow key: [`Headers`] without it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Destination MAC.
    pub dst_mac: Mac,
    /// Source MAC.
    pub src_mac: Mac,
    /// Ethertype.
    pub ethertype: u16,
    /// Network layer.
    pub l3: L3,
    /// Transport layer.
    pub l4: L4,
}

impl Summary {
    /// Offset of the L4 header, if any.
    pub fn l4_off(&self) -> Option<usize> {
        match self.l4 {
            L4::Udp { off } | L4::Tcp { off } | L4::Icmp { off, .. } | L4::Icmpv6 { off, .. } => Some(off as usize),
            L4::None => None,
        }
    }
}

/// [`parse`], writing the flow key straight into `flow` (the packet's own
/// metadata on the engine's hot path: copying a freshly written key out of a
/// temporary stalls store forwarding). `flow` is reset first; its `in_port`
/// is left 0 for the caller.
pub fn parse_into(frame: &[u8], flow: &mut FlowKey) -> Result<Summary, ParseError> {
    *flow = FlowKey::default();
    let eth = Ethernet2HeaderSlice::from_slice(frame).map_err(|_| ParseError::Truncated(Layer::Ethernet))?;
    let et = eth.ether_type().0;
    let mut h = Summary {
        dst_mac: eth.destination(),
        src_mac: eth.source(),
        ethertype: et,
        l3: L3::Other,
        l4: L4::None,
    };
    let rest = &frame[ETH_LEN..];
    match et {
        ethertype::IPV4 => parse_ipv4(rest, &mut h, flow)?,
        ethertype::IPV6 => parse_ipv6(rest, &mut h, flow)?,
        ethertype::ARP => {
            let arp = ArpPacketSlice::from_slice(rest).map_err(|_| ParseError::Truncated(Layer::Arp))?;
            if arp.hw_addr_size() != 6 || arp.proto_addr_size() != 4 || arp.proto_addr_type().0 != ethertype::IPV4 {
                return Err(ParseError::Malformed(Layer::Arp, "not Ethernet/IPv4 ARP"));
            }
            let mut sha = [0u8; 6];
            sha.copy_from_slice(arp.sender_hw_addr());
            let mut spa = [0u8; 4];
            spa.copy_from_slice(arp.sender_protocol_addr());
            let mut tpa = [0u8; 4];
            tpa.copy_from_slice(arp.target_protocol_addr());
            h.l3 = L3::Arp {
                off: ETH_LEN as u16,
                op: arp.operation().0,
                sha,
                spa,
                tpa,
            };
        }
        _ => {}
    }
    Ok(h)
}

fn parse_ipv4(rest: &[u8], h: &mut Summary, flow: &mut FlowKey) -> Result<(), ParseError> {
    let ip = Ipv4HeaderSlice::from_slice(rest).map_err(|e| match e {
        etherparse::err::ipv4::HeaderSliceError::Len(_) => ParseError::Truncated(Layer::Ipv4),
        etherparse::err::ipv4::HeaderSliceError::Content(etherparse::err::ipv4::HeaderError::UnexpectedVersion {
            ..
        }) => ParseError::Malformed(Layer::Ipv4, "version is not 4"),
        etherparse::err::ipv4::HeaderSliceError::Content(_) => {
            ParseError::Malformed(Layer::Ipv4, "header length below 20")
        }
    })?;
    let hlen = ip.slice().len();
    let total = ip.total_len() as usize;
    if total < hlen {
        return Err(ParseError::Malformed(Layer::Ipv4, "total length below header length"));
    }
    if total > rest.len() {
        return Err(ParseError::Truncated(Layer::Ipv4));
    }
    if checksum::sum(ip.slice(), 0) != 0xffff {
        return Err(ParseError::BadChecksum);
    }
    let p = ip.protocol().0;
    let later_fragment = ip.fragments_offset().value() != 0;
    h.l3 = L3::Ipv4 {
        off: ETH_LEN as u16,
        hlen: hlen as u16,
        total_len: total as u16,
        ttl: ip.ttl(),
        later_fragment,
    };
    flow.family = Family::V4;
    flow.proto = p;
    flow.src = u32::from_be_bytes(ip.source()) as u128;
    flow.dst = u32::from_be_bytes(ip.destination()) as u128;
    if !later_fragment {
        parse_l4(&rest[hlen..total], p, ETH_LEN + hlen, false, h, flow)?;
    }
    Ok(())
}

fn parse_ipv6(rest: &[u8], h: &mut Summary, flow: &mut FlowKey) -> Result<(), ParseError> {
    use etherparse::err::ipv6::SliceError as E;
    let ip = Ipv6Slice::from_slice(rest).map_err(|e| match e {
        E::Len(_) => ParseError::Truncated(Layer::Ipv6),
        E::Header(_) => ParseError::Malformed(Layer::Ipv6, "version is not 6"),
        E::Exts(_) => ParseError::Malformed(Layer::Ipv6, "bad extension header chain"),
    })?;
    let hdr = ip.header();
    let payload = ip.payload();
    let p = payload.ip_number.0;
    let payload_off = ETH_LEN + 40 + ip.extensions().slice().len();
    h.l3 = L3::Ipv6 {
        off: ETH_LEN as u16,
        payload_off: payload_off as u16,
        payload_len: hdr.payload_length(),
        hop_limit: hdr.hop_limit(),
    };
    flow.family = Family::V6;
    flow.proto = p;
    flow.src = u128::from_be_bytes(hdr.source());
    flow.dst = u128::from_be_bytes(hdr.destination());
    if !payload.fragmented {
        parse_l4(payload.payload, p, payload_off, true, h, flow)?;
    }
    Ok(())
}

fn parse_l4(
    payload: &[u8],
    p: u8,
    off: usize,
    v6: bool,
    h: &mut Summary,
    flow: &mut FlowKey,
) -> Result<(), ParseError> {
    let off16 = off as u16;
    match p {
        proto::UDP => {
            let u = UdpHeaderSlice::from_slice(payload).map_err(|_| ParseError::Truncated(Layer::Udp))?;
            flow.sport = u.source_port();
            flow.dport = u.destination_port();
            h.l4 = L4::Udp { off: off16 };
        }
        proto::TCP => {
            let t = TcpHeaderSlice::from_slice(payload).map_err(|e| match e {
                etherparse::err::tcp::HeaderSliceError::Len(_) => ParseError::Truncated(Layer::Tcp),
                etherparse::err::tcp::HeaderSliceError::Content(_) => {
                    ParseError::Malformed(Layer::Tcp, "data offset below 5")
                }
            })?;
            flow.sport = t.source_port();
            flow.dport = t.destination_port();
            h.l4 = L4::Tcp { off: off16 };
        }
        proto::ICMP if !v6 => {
            if payload.len() < 8 {
                return Err(ParseError::Truncated(Layer::Icmp));
            }
            h.l4 = L4::Icmp {
                off: off16,
                typ: payload[0],
                code: payload[1],
            };
        }
        proto::ICMPV6 if v6 => {
            if payload.len() < 4 {
                return Err(ParseError::Truncated(Layer::Icmp));
            }
            h.l4 = L4::Icmpv6 {
                off: off16,
                typ: payload[0],
                code: payload[1],
            };
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build;
    use std::net::Ipv4Addr;

    #[test]
    fn parses_udp_v4() {
        let f = build::udp4(
            [2; 6],
            [4; 6],
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 1, 2),
            1234,
            6060,
            64,
            b"hello",
        );
        let h = parse(&f).unwrap();
        assert_eq!(h.flow.sport, 1234);
        assert_eq!(h.flow.dport, 6060);
        assert_eq!(h.flow.proto, 17);
        assert!(matches!(h.l3, L3::Ipv4 { ttl: 64, hlen: 20, .. }));
        assert_eq!(h.l4, L4::Udp { off: 34 });
    }

    #[test]
    fn bad_inputs_are_errors() {
        let f = build::udp4(
            [2; 6],
            [4; 6],
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 1, 2),
            1,
            2,
            64,
            b"x",
        );
        assert_eq!(parse(&f[..10]), Err(ParseError::Truncated(Layer::Ethernet)));
        assert_eq!(parse(&f[..20]), Err(ParseError::Truncated(Layer::Ipv4)));
        let mut bad = f.clone();
        bad[14 + 10] ^= 0xff; // checksum
        assert_eq!(parse(&bad), Err(ParseError::BadChecksum));
        let mut bad = f.clone();
        bad[14] = 0x65; // version 6 in an IPv4 ethertype
        assert!(matches!(parse(&bad), Err(ParseError::Malformed(Layer::Ipv4, _))));
        let mut bad = f.clone();
        bad[14 + 3] = 200; // total length past the frame
        assert!(parse(&bad).is_err());
    }

    #[test]
    fn parses_v6_with_extension_header() {
        let f = build::udp6(
            [2; 6],
            [4; 6],
            "2001:db8::1".parse().unwrap(),
            "2001:db8:1::2".parse().unwrap(),
            5,
            6060,
            64,
            b"hi",
        );
        let h = parse(&f).unwrap();
        assert_eq!(h.flow.dport, 6060);
        assert!(matches!(h.l3, L3::Ipv6 { payload_off: 54, .. }));
    }
}

/// Fuzzing and property-test entry point: parse `frame` and check that what
/// [`parse`] reports is consistent with the bytes (offsets inside the
/// frame). Panics only when an invariant is broken — that is the bug a fuzzer
/// looks for.
pub fn check_parse_invariants(frame: &[u8]) {
    if let Ok(h) = parse(frame) {
        if let Some(off) = h.l4_off() {
            assert!(off <= frame.len(), "L4 offset past the frame");
        }
        match h.l3 {
            L3::Ipv4 {
                off, hlen, total_len, ..
            } => {
                assert!(off as usize + total_len as usize <= frame.len());
                assert!(hlen >= 20 && hlen <= total_len);
            }
            L3::Ipv6 { payload_off, .. } => assert!(payload_off as usize <= frame.len()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod fuzz_props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            check_parse_invariants(&data);
        }

        #[test]
        fn mutated_valid_frames_never_panic(idx in 0usize..80, byte in any::<u8>(), cut in 0usize..90) {
            let mut f = crate::build::udp4([2; 6], [4; 6], "10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap(), 1, 2, 64, b"0123456789");
            let i = idx % f.len();
            f[i] = byte;
            f.truncate(cut.min(f.len()));
            check_parse_invariants(&f);
        }
    }
}
