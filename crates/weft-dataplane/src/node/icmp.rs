//! ICMP and ICMPv6 errors the node originates — destination unreachable,
//! time exceeded, fragmentation needed / packet too big — with the rules
//! of when not to send one (RFC 1812 4.3.2.7, RFC 4443 2.4), and the one
//! limiter every error passes ([`crate::icmp_limit`], shared with the
//! elements through [`crate::Ctx::icmp_error_allowed`]).

use super::datapath::v4_of;
use super::ports::Port;
use super::Node;
use ipnet::IpNet;
use std::net::{Ipv4Addr, Ipv6Addr};
use weft_packet::flow::Family;
use weft_packet::wire::icmp::types;
use weft_packet::wire::{IcmpMessage, Ipv4Header};
use weft_packet::{build, proto, Packet, PortId};

/// Code of "fragmentation needed and DF set" (type destination
/// unreachable, RFC 792 / RFC 1191).
const FRAGMENTATION_NEEDED: u8 = 4;
/// RFC 1812 4.3.2.3: an ICMP error quotes as much of the packet as fits
/// in 576 octets, less its own IPv4 (20) and ICMP (8) headers.
const QUOTE_V4: usize = 576 - 20 - 8;
/// RFC 4443 2.4(c): as much as fits in the minimum MTU 1280, less the
/// error's IPv6 (40) and ICMPv6 (8) headers.
const QUOTE_V6: usize = 1280 - 40 - 8;

/// The packet from its IP header on.
fn ip_header(pkt: &Packet) -> Option<&[u8]> {
    pkt.data().get(pkt.meta.l3 as usize..)
}

/// The ICMP or ICMPv6 type of a packet that carries one (`meta.l4` set by
/// the parser).
fn icmp_type(pkt: &Packet) -> Option<u8> {
    let l4 = pkt.meta.l4 as usize;
    if l4 == 0 {
        return None;
    }
    let m = pkt.data().get(l4..).filter(|m| !m.is_empty())?;
    Some(IcmpMessage::new_unchecked(m).msg_type())
}

impl Node {
    /// Limit every ICMP error the node sends (the engine's and its
    /// elements') to `rate` per second with bursts of `burst`
    /// ([`crate::icmp_limit`]; defaults 1000 and 50, Linux's). A rate of 0
    /// sends none.
    pub fn set_icmp_rate(&mut self, rate: u64, burst: u64) {
        self.icmp.set(rate, burst);
    }

    /// The ICMP error limit: (per second, burst).
    pub fn icmp_rate(&self) -> (u64, u64) {
        (self.icmp.rate(), self.icmp.burst())
    }

    /// ICMP destination unreachable with `code` (v4 codes: 0 net, 1 host,
    /// 3 port; mapped to ICMPv6 codes 0, 3, 4).
    pub(super) fn icmp_unreachable(&mut self, pkt: &Packet, code: u8) {
        match pkt.meta.flow.family {
            Family::V4 => self.icmp_error(pkt, types::DEST_UNREACHABLE, code, [0; 4]),
            Family::V6 => {
                let c6 = match code {
                    0 => 0,
                    1 => 3,
                    _ => 4,
                };
                self.icmp_error(pkt, types::V6_DEST_UNREACHABLE, c6, [0; 4])
            }
            Family::None => {}
        }
    }

    /// ICMP "fragmentation needed" (v4, RFC 1191: only for packets with DF
    /// set) or "packet too big" (v6, RFC 8201) with the MTU `mtu`.
    pub(super) fn icmp_too_big(&mut self, pkt: &Packet, mtu: usize) {
        let m = (mtu.min(u16::MAX as usize) as u32).to_be_bytes();
        match pkt.meta.flow.family {
            Family::V4 => {
                let df = ip_header(pkt)
                    .and_then(|ip| Ipv4Header::new_checked(ip).ok())
                    .is_some_and(|h| h.dont_fragment());
                if df {
                    self.icmp_error(pkt, types::DEST_UNREACHABLE, FRAGMENTATION_NEEDED, [0, 0, m[2], m[3]]);
                }
            }
            Family::V6 => self.icmp_error(pkt, types::V6_PACKET_TOO_BIG, 0, m),
            Family::None => {}
        }
    }

    /// Originate an ICMP (v4) or ICMPv6 error about `pkt` (types are those
    /// of the packet's family), from the address of the port it came in on.
    pub(super) fn icmp_error(&mut self, pkt: &Packet, typ: u8, code: u8, rest: [u8; 4]) {
        let f = pkt.meta.flow;
        let Some(ip) = ip_header(pkt) else { return };
        // Never answer an error with an error, nor a non-initial fragment,
        // nor a packet from a multicast/unspecified source (RFC 1812 4.3.2.7,
        // RFC 4443 2.4).
        let icmp_type = icmp_type(pkt);
        match f.family {
            Family::V4 => {
                let src = v4_of(f.src);
                if src.is_unspecified() || src.is_multicast() || src.is_broadcast() {
                    return;
                }
                match Ipv4Header::new_checked(ip) {
                    Ok(h) if h.fragment_offset() == 0 => {}
                    _ => return,
                }
                if f.proto == proto::ICMP && pkt.meta.l4 > 0 && !icmp_type.is_some_and(types::is_v4_query) {
                    return;
                }
            }
            Family::V6 => {
                let src = Ipv6Addr::from(f.src);
                if src.is_unspecified() || src.is_multicast() {
                    return;
                }
                if f.proto == proto::ICMPV6 && icmp_type.is_some_and(|t| t < types::V6_FIRST_INFORMATIONAL) {
                    return;
                }
            }
            Family::None => return,
        }
        let in_port = pkt.meta.in_port;
        let has_source = match f.family {
            Family::V4 => self.source_v4(in_port).is_some(),
            _ => self.source_v6(in_port).is_some(),
        };
        if !has_source || !self.icmp.allow(self.now_ns) {
            return;
        }
        let frame = match f.family {
            Family::V4 => {
                let Some(me) = self.source_v4(in_port) else { return };
                let quote = &ip[..ip.len().min(QUOTE_V4)];
                build::icmp4(
                    [0; 6],
                    [0; 6],
                    me,
                    v4_of(f.src),
                    build::DEFAULT_TTL,
                    typ,
                    code,
                    rest,
                    quote,
                )
            }
            _ => {
                let Some(me) = self.source_v6(in_port) else { return };
                let quote = &ip[..ip.len().min(QUOTE_V6)];
                build::icmp6(
                    [0; 6],
                    [0; 6],
                    me,
                    Ipv6Addr::from(f.src),
                    build::DEFAULT_TTL,
                    typ,
                    code,
                    rest,
                    quote,
                )
            }
        };
        self.send(&frame);
    }

    fn source_v4(&self, port: PortId) -> Option<Ipv4Addr> {
        let pick = |p: &Port| {
            p.cfg
                .addrs
                .iter()
                .find_map(|a| if let IpNet::V4(n) = a { Some(n.addr()) } else { None })
        };
        self.ports
            .get(port as usize)
            .and_then(pick)
            .or_else(|| self.ports.iter().find_map(pick))
    }

    fn source_v6(&self, port: PortId) -> Option<Ipv6Addr> {
        let pick = |p: &Port| {
            p.cfg
                .addrs
                .iter()
                .find_map(|a| if let IpNet::V6(n) = a { Some(n.addr()) } else { None })
        };
        self.ports
            .get(port as usize)
            .and_then(pick)
            .or_else(|| self.ports.iter().find_map(pick))
    }
}
