//! Frame builders for the messages a node originates (ICMP errors and echo
//! replies, ARP, neighbour discovery) and for tests, on `etherparse`'s
//! `PacketBuilder` so lengths and checksums are computed in one place.

use crate::Mac;
use etherparse::PacketBuilder;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Default TTL / hop limit for packets a node originates.
pub const DEFAULT_TTL: u8 = 64;

fn finish<B>(b: etherparse::PacketBuilderStep<B>, payload: &[u8]) -> Vec<u8>
where
    etherparse::PacketBuilderStep<B>: BuilderWrite,
{
    b.to_vec(payload)
}

/// Private helper so `finish` works for every final builder step.
pub trait BuilderWrite {
    /// Serialize with `payload`.
    fn to_vec(self, payload: &[u8]) -> Vec<u8>;
}
macro_rules! impl_bw {
    ($t:ty) => {
        impl BuilderWrite for etherparse::PacketBuilderStep<$t> {
            fn to_vec(self, payload: &[u8]) -> Vec<u8> {
                let mut v = Vec::with_capacity(self.size(payload.len()));
                // Writing into a Vec cannot fail for lack of space; a payload
                // too large for the IP length field yields an empty frame.
                if self.write(&mut v, payload).is_err() {
                    v.clear();
                }
                v
            }
        }
    };
}
impl_bw!(etherparse::UdpHeader);
impl_bw!(etherparse::TcpHeader);
impl_bw!(etherparse::Icmpv4Header);
impl_bw!(etherparse::Icmpv6Header);

/// An Ethernet/IPv4/UDP frame.
#[allow(clippy::too_many_arguments)]
pub fn udp4(
    src_mac: Mac,
    dst_mac: Mac,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    ttl: u8,
    payload: &[u8],
) -> Vec<u8> {
    finish(
        PacketBuilder::ethernet2(src_mac, dst_mac)
            .ipv4(src.octets(), dst.octets(), ttl)
            .udp(sport, dport),
        payload,
    )
}

/// An Ethernet/IPv6/UDP frame.
#[allow(clippy::too_many_arguments)]
pub fn udp6(
    src_mac: Mac,
    dst_mac: Mac,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    sport: u16,
    dport: u16,
    hop: u8,
    payload: &[u8],
) -> Vec<u8> {
    finish(
        PacketBuilder::ethernet2(src_mac, dst_mac)
            .ipv6(src.octets(), dst.octets(), hop)
            .udp(sport, dport),
        payload,
    )
}

/// An Ethernet/IP/UDP frame whose IP header carries the Router Alert option
/// (IPv4: RFC 2113; IPv6: a hop-by-hop header with the option of RFC
/// 2711): what on-path signaling sends, so that every router that cares
/// looks at it. Empty when the addresses are of different families or the
/// payload is too large.
#[allow(clippy::too_many_arguments)]
pub fn udp_router_alert(
    src_mac: Mac,
    dst_mac: Mac,
    src: std::net::IpAddr,
    dst: std::net::IpAddr,
    sport: u16,
    dport: u16,
    ttl: u8,
    payload: &[u8],
) -> Vec<u8> {
    use crate::router_alert::{IPV4_ROUTER_ALERT, IPV6_ROUTER_ALERT_OPTIONS};
    use etherparse::{IpHeaders, IpNumber, Ipv4Extensions, Ipv4Header, Ipv6Extensions, Ipv6Header, Ipv6RawExtHeader};
    use std::net::IpAddr;
    let ip = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let Ok(mut h) = Ipv4Header::new(0, ttl, IpNumber::UDP, s.octets(), d.octets()) else {
                return Vec::new();
            };
            h.options = IPV4_ROUTER_ALERT.into();
            IpHeaders::Ipv4(h, Ipv4Extensions::default())
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let Ok(hbh) = Ipv6RawExtHeader::new_raw(IpNumber::UDP, &IPV6_ROUTER_ALERT_OPTIONS) else {
                return Vec::new();
            };
            let h = Ipv6Header {
                traffic_class: 0,
                flow_label: Default::default(),
                payload_length: 0,
                next_header: IpNumber::IPV6_HEADER_HOP_BY_HOP,
                hop_limit: ttl,
                source: s.octets(),
                destination: d.octets(),
            };
            let ext = Ipv6Extensions {
                hop_by_hop_options: Some(hbh),
                ..Default::default()
            };
            IpHeaders::Ipv6(h, ext)
        }
        _ => return Vec::new(),
    };
    finish(
        PacketBuilder::ethernet2(src_mac, dst_mac).ip(ip).udp(sport, dport),
        payload,
    )
}

/// An Ethernet/IPv4/TCP frame (flags as in the TCP header byte 13).
#[allow(clippy::too_many_arguments)]
pub fn tcp4(
    src_mac: Mac,
    dst_mac: Mac,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    seq: u32,
    payload: &[u8],
) -> Vec<u8> {
    finish(
        PacketBuilder::ethernet2(src_mac, dst_mac)
            .ipv4(src.octets(), dst.octets(), DEFAULT_TTL)
            .tcp(sport, dport, seq, 65535)
            .ack(0),
        payload,
    )
}

/// An ICMP message of `typ`/`code` with the 4 bytes after the checksum and a
/// body.
#[allow(clippy::too_many_arguments)]
pub fn icmp4(
    src_mac: Mac,
    dst_mac: Mac,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
    typ: u8,
    code: u8,
    rest: [u8; 4],
    body: &[u8],
) -> Vec<u8> {
    finish(
        PacketBuilder::ethernet2(src_mac, dst_mac)
            .ipv4(src.octets(), dst.octets(), ttl)
            .icmpv4_raw(typ, code, rest),
        body,
    )
}

/// An ICMPv6 message of `typ`/`code` with the 4 bytes after the checksum and
/// a body.
#[allow(clippy::too_many_arguments)]
pub fn icmp6(
    src_mac: Mac,
    dst_mac: Mac,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop: u8,
    typ: u8,
    code: u8,
    rest: [u8; 4],
    body: &[u8],
) -> Vec<u8> {
    finish(
        PacketBuilder::ethernet2(src_mac, dst_mac)
            .ipv6(src.octets(), dst.octets(), hop)
            .icmpv6_raw(typ, code, rest),
        body,
    )
}

/// An ICMP echo request (for tests and end hosts).
#[allow(clippy::too_many_arguments)]
pub fn ping4(
    src_mac: Mac,
    dst_mac: Mac,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    id: u16,
    seq: u16,
    ttl: u8,
    data: &[u8],
) -> Vec<u8> {
    let mut rest = [0u8; 4];
    rest[..2].copy_from_slice(&id.to_be_bytes());
    rest[2..].copy_from_slice(&seq.to_be_bytes());
    icmp4(src_mac, dst_mac, src, dst, ttl, 8, 0, rest, data)
}

/// An ARP request or reply (`op` 1 or 2) for Ethernet/IPv4.
pub fn arp(op: u16, sha: Mac, spa: Ipv4Addr, tha: Mac, tpa: Ipv4Addr, eth_dst: Mac) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&eth_dst);
    f.extend_from_slice(&sha);
    f.extend_from_slice(&crate::ethertype::ARP.to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&sha);
    f.extend_from_slice(&spa.octets());
    f.extend_from_slice(&tha);
    f.extend_from_slice(&tpa.octets());
    f.resize(60, 0); // minimum Ethernet frame without FCS
    f
}

/// The solicited-node multicast address of `a` (RFC 4291 2.7.1).
pub fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | o[13] as u16,
        ((o[14] as u16) << 8) | o[15] as u16,
    )
}

/// The Ethernet multicast MAC for IPv6 multicast address `a` (RFC 2464 7).
pub fn ipv6_multicast_mac(a: Ipv6Addr) -> Mac {
    let o = a.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// A neighbour solicitation for `target` from `src` (RFC 4861 4.3), sent to
/// the target's solicited-node address.
pub fn neighbor_solicit(src_mac: Mac, src: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let dst = solicited_node(target);
    let mut body = Vec::with_capacity(24);
    body.extend_from_slice(&target.octets());
    body.extend_from_slice(&[1, 1]);
    body.extend_from_slice(&src_mac);
    icmp6(src_mac, ipv6_multicast_mac(dst), src, dst, 255, 135, 0, [0; 4], &body)
}

/// A solicited neighbour advertisement for `target` (RFC 4861 4.4), flags
/// Solicited and Override, with the target link-layer address option.
pub fn neighbor_advert(src_mac: Mac, target: Ipv6Addr, dst_mac: Mac, dst: Ipv6Addr, router: bool) -> Vec<u8> {
    let mut body = Vec::with_capacity(24);
    body.extend_from_slice(&target.octets());
    body.extend_from_slice(&[2, 1]);
    body.extend_from_slice(&src_mac);
    let flags = if router { 0xe0 } else { 0x60 };
    icmp6(src_mac, dst_mac, target, dst, 255, 136, 0, [flags, 0, 0, 0], &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::{parse, L3, L4};

    #[test]
    fn router_alert_frames_carry_the_option_and_parse() {
        use etherparse::SlicedPacket;
        let a: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let b: std::net::IpAddr = "10.0.0.2".parse().unwrap();
        let f = udp_router_alert([1; 6], [2; 6], a, b, 270, 270, 64, b"WFSG");
        let p = SlicedPacket::from_ethernet(&f).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else {
            panic!()
        };
        assert_eq!(ip.header().ihl(), 6);
        assert_eq!(ip.header().options(), &crate::router_alert::IPV4_ROUTER_ALERT);
        assert!(crate::router_alert::carries_router_alert(&f[14..]));
        assert_eq!(
            p.transport.map(|t| matches!(t, etherparse::TransportSlice::Udp(_))),
            Some(true)
        );
        let a6: std::net::IpAddr = "2001:db8::1".parse().unwrap();
        let b6: std::net::IpAddr = "2001:db8::2".parse().unwrap();
        let f = udp_router_alert([1; 6], [2; 6], a6, b6, 270, 270, 64, b"WFSG");
        // Ethernet, IPv6 (next header 0: hop-by-hop), then the option.
        assert_eq!(f[14 + 6], 0);
        assert_eq!(&f[14 + 40..14 + 48], &[17, 0, 5, 2, 0, 2, 1, 0]);
        assert!(crate::router_alert::carries_router_alert(&f[14..]));
        let p = SlicedPacket::from_ethernet(&f).unwrap();
        assert!(matches!(p.transport, Some(etherparse::TransportSlice::Udp(_))));
        assert!(udp_router_alert([0; 6], [0; 6], a, b6, 1, 2, 64, b"").is_empty());
    }

    #[test]
    fn arp_roundtrip() {
        let f = arp(
            1,
            [1; 6],
            Ipv4Addr::new(10, 0, 0, 1),
            [0; 6],
            Ipv4Addr::new(10, 0, 0, 2),
            crate::BROADCAST_MAC,
        );
        let h = parse(&f).unwrap();
        assert!(matches!(
            h.l3,
            L3::Arp {
                op: 1,
                spa: [10, 0, 0, 1],
                tpa: [10, 0, 0, 2],
                ..
            }
        ));
    }

    #[test]
    fn ns_is_icmpv6_135() {
        let f = neighbor_solicit([1; 6], "fe80::1".parse().unwrap(), "2001:db8::2".parse().unwrap());
        let h = parse(&f).unwrap();
        assert!(matches!(h.l4, L4::Icmpv6 { typ: 135, .. }));
        assert_eq!(&f[0..2], &[0x33, 0x33]);
    }
}
