//! What the node answers itself (smoltcp's `iface/interface/` in one
//! file): ARP for its addresses, IPv6 neighbour discovery, ICMP and ICMPv6
//! echo; and the node-local receive queue its listeners read (protocol
//! daemons, the TUN punt). Everything else addressed to the node is
//! answered "port unreachable" (UDP) or dropped.

use super::datapath::v4_of;
use super::{DropReason, LocalPacket, Node};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use weft_packet::flow::Family;
use weft_packet::wire::icmp::{self, types};
use weft_packet::wire::nd::{self, NdMessage};
use weft_packet::wire::{EthernetFrame, IcmpMessage, Ipv4Header, Ipv6Header};
use weft_packet::{build, proto, Mac, Packet, PortId};

/// Node-local receive queue bound.
const LOCAL_QUEUE_MAX: usize = 4096;

impl Node {
    /// Deliver packets for `(proto, port)` addressed to the node to
    /// [`Node::poll_local`] instead of answering "port unreachable".
    pub fn listen(&mut self, proto: u8, port: u16) {
        if !self.listeners.contains(&(proto, port)) {
            self.listeners.push((proto, port));
        }
    }

    /// Deliver to [`Node::poll_local`], instead of forwarding, every packet
    /// the node would forward that carries the IP Router Alert option
    /// (RFC 2113, RFC 2711), goes to `(proto, port)` and whose transport
    /// payload starts with `magic` (on-path signaling, `docs/signaling.md`:
    /// a signaling daemon acts on a request and sends it on itself). The
    /// node must also [`Node::listen`] on the port. On a node that
    /// intercepts nothing this costs every packet one comparison; on one
    /// that does, a look at the IPv4 header length or the IPv6 next header,
    /// and the options are read only when there are some.
    pub fn intercept_router_alert(&mut self, proto: u8, port: u16, magic: &[u8]) {
        self.listen(proto, port);
        if !self
            .intercepts
            .iter()
            .any(|(p, q, m)| *p == proto && *q == port && m == magic)
        {
            self.intercepts.push((proto, port, magic.to_vec()));
        }
    }

    /// Stop what [`Node::intercept_router_alert`] started (packets are
    /// forwarded again; the listener stays).
    pub fn stop_intercepting(&mut self, proto: u8, port: u16) {
        self.intercepts.retain(|(p, q, _)| !(*p == proto && *q == port));
    }

    /// Should the packet the node is about to forward be intercepted?
    pub(super) fn intercepted(&self, pkt: &Packet) -> bool {
        let f = pkt.meta.flow;
        let (l3, l4) = (pkt.meta.l3 as usize, pkt.meta.l4 as usize);
        if l4 == 0 {
            return false;
        }
        let Some((_, _, magic)) = self.intercepts.iter().find(|(p, q, _)| *p == f.proto && *q == f.dport) else {
            return false;
        };
        let hdr = match f.proto {
            proto::UDP => 8,
            _ => return false,
        };
        let d = pkt.data();
        d.get(l3..).is_some_and(weft_packet::router_alert::carries_router_alert)
            && d.get(l4 + hdr..).is_some_and(|p| p.starts_with(magic))
    }

    /// Stop delivering `(proto, port)` (a server module went away).
    pub fn unlisten(&mut self, proto: u8, port: u16) {
        self.listeners.retain(|l| *l != (proto, port));
    }

    /// Deliver `proto` packets for every port in `lo..=hi` too: the
    /// replies to connections the node's kernel opens from its ephemeral
    /// ports (a server module's outgoing requests, punted). One range per
    /// protocol; a later call replaces it.
    pub fn listen_range(&mut self, proto: u8, lo: u16, hi: u16) {
        self.listen_ranges.retain(|(p, _, _)| *p != proto);
        if lo <= hi {
            self.listen_ranges.push((proto, lo, hi));
        }
    }

    fn listening(&self, proto: u8, port: u16) -> bool {
        self.listeners.contains(&(proto, port))
            || self
                .listen_ranges
                .iter()
                .any(|&(p, lo, hi)| p == proto && (lo..=hi).contains(&port))
    }

    /// The next packet delivered to a local listener.
    pub fn poll_local(&mut self) -> Option<LocalPacket> {
        self.local_rx.pop_front()
    }

    /// The first packet delivered to a local listener for which `want` is
    /// true (a protocol daemon on the node takes its own port's packets and
    /// leaves the rest, e.g. for the punt interface).
    pub fn poll_local_where(&mut self, want: impl Fn(&Packet) -> bool) -> Option<LocalPacket> {
        let i = self.local_rx.iter().position(want)?;
        self.local_rx.remove(i)
    }

    /// ARP (RFC 826): learn the sender, answer requests for our addresses.
    pub(super) fn handle_arp(&mut self, port: PortId, op: u16, sha: Mac, spa: [u8; 4], tpa: [u8; 4], pkt: Packet) {
        self.pool.free(pkt);
        let spa = Ipv4Addr::from(spa);
        let tpa = Ipv4Addr::from(tpa);
        let mine = self.ports[port as usize]
            .cfg
            .addrs
            .iter()
            .any(|a| a.addr() == IpAddr::V4(tpa));
        // RFC 826: update an existing entry from any ARP; add one only when
        // the packet is for us.
        let waiting = if mine && !spa.is_unspecified() {
            self.neigh.learn(port, IpAddr::V4(spa), sha, false)
        } else {
            self.neigh.refresh(port, IpAddr::V4(spa), sha)
        };
        for p in waiting {
            self.send_l2(port, sha, p);
        }
        if mine && op == 1 {
            let mac = self.ports[port as usize].cfg.mac;
            let frame = build::arp(2, mac, tpa, sha, spa, sha);
            let reply = self.pool.alloc(&frame);
            self.send_raw(port, reply);
        }
    }

    /// INPUT: ICMP echo, neighbour discovery, listeners, else unreachable.
    pub(super) fn deliver_local(&mut self, pkt: Packet) {
        let f = pkt.meta.flow;
        let l4 = pkt.meta.l4 as usize;
        match (f.family, f.proto) {
            (Family::V4, proto::ICMP) if l4 > 0 && icmp_type(&pkt) == Some(types::ECHO_REQUEST) => {
                // Echo request → reply with the same identifier, sequence and data.
                let Some(echo) = ip_payload(&pkt).and_then(|m| IcmpMessage::new_checked(m).ok()) else {
                    self.drop_pkt(DropReason::TruncatedTransport, pkt);
                    return;
                };
                let frame = build::icmp4(
                    [0; 6],
                    [0; 6],
                    v4_of(f.dst),
                    v4_of(f.src),
                    build::DEFAULT_TTL,
                    types::ECHO_REPLY,
                    0,
                    echo.rest_of_header(),
                    echo.data(),
                );
                self.send(&frame);
                self.pool.free(pkt);
            }
            (Family::V6, proto::ICMPV6) if l4 > 0 => self.icmpv6_local(pkt),
            (_, p @ (proto::UDP | proto::TCP)) => {
                if self.listening(p, f.dport) {
                    if self.local_rx.len() >= LOCAL_QUEUE_MAX {
                        self.drop_pkt(DropReason::LocalQueueFull, pkt);
                    } else {
                        self.local_rx.push_back(pkt);
                    }
                } else {
                    if p == proto::UDP {
                        self.icmp_unreachable(&pkt, 3); // port unreachable
                    }
                    self.drop_pkt(DropReason::NoListener, pkt);
                }
            }
            _ => {
                if self.listeners.contains(&(f.proto, 0)) && self.local_rx.len() < LOCAL_QUEUE_MAX {
                    self.local_rx.push_back(pkt);
                } else {
                    self.drop_pkt(DropReason::NoListener, pkt);
                }
            }
        }
    }

    /// ICMPv6 for the node: echo, neighbour solicitation and advertisement
    /// (RFC 4861), else to an ICMPv6 listener.
    fn icmpv6_local(&mut self, pkt: Packet) {
        let f = pkt.meta.flow;
        let d = pkt.data();
        let body = ip_payload(&pkt).unwrap_or(&[]);
        let port = pkt.meta.in_port;
        let src = Ipv6Addr::from(f.src);
        let dst = Ipv6Addr::from(f.dst);
        let src_mac: Mac = EthernetFrame::new_checked(d).map_or([0; 6], |e| e.src());
        // RFC 4861 7.1.1: neighbour discovery arrives with hop limit 255,
        // proof that no router forwarded it.
        let on_link = d
            .get(pkt.meta.l3 as usize..)
            .and_then(|ip| Ipv6Header::new_checked(ip).ok())
            .is_some_and(|h| h.hop_limit() == nd::HOP_LIMIT);
        let nd_msg = NdMessage::new_checked(body).ok().filter(|_| on_link);
        match (body.first().copied(), nd_msg) {
            (Some(types::V6_ECHO_REQUEST), _) if body.len() >= icmp::HEADER_LEN && !dst.is_multicast() => {
                let echo = IcmpMessage::new_unchecked(body);
                let frame = build::icmp6(
                    [0; 6],
                    [0; 6],
                    dst,
                    src,
                    build::DEFAULT_TTL,
                    types::V6_ECHO_REPLY,
                    0,
                    echo.rest_of_header(),
                    echo.data(),
                );
                self.send(&frame);
            }
            (Some(types::V6_NEIGHBOR_SOLICIT), Some(ns)) => {
                let target = ns.target();
                let p = &self.ports[port as usize];
                let mine = p.link_local == target || p.cfg.addrs.iter().any(|a| a.addr() == IpAddr::V6(target));
                let mac = p.cfg.mac;
                if mine {
                    let sll = ns.link_layer_addr(nd::SOURCE_LINK_ADDR).unwrap_or(src_mac);
                    if !src.is_unspecified() {
                        let waiting = self.neigh.learn(port, IpAddr::V6(src), sll, false);
                        for w in waiting {
                            self.send_l2(port, sll, w);
                        }
                    }
                    let (to, to_mac) = if src.is_unspecified() {
                        let all = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
                        (all, build::ipv6_multicast_mac(all))
                    } else {
                        (src, sll)
                    };
                    let frame = build::neighbor_advert(mac, target, to_mac, to, true);
                    let na = self.pool.alloc(&frame);
                    self.send_raw(port, na);
                }
            }
            (Some(types::V6_NEIGHBOR_ADVERT), Some(na)) => {
                let tll = na.link_layer_addr(nd::TARGET_LINK_ADDR).unwrap_or(src_mac);
                let waiting = self.neigh.refresh(port, IpAddr::V6(na.target()), tll);
                for w in waiting {
                    self.send_l2(port, tll, w);
                }
            }
            _ => {
                if self.listeners.contains(&(proto::ICMPV6, 0)) && self.local_rx.len() < LOCAL_QUEUE_MAX {
                    self.local_rx.push_back(pkt);
                    return;
                }
            }
        }
        self.pool.free(pkt);
    }
}

/// The IP payload from the transport header (`meta.l4`) to the end the IP
/// header's length gives (Ethernet padding left out); none when the
/// packet has no transport header.
fn ip_payload(pkt: &Packet) -> Option<&[u8]> {
    let (l3, l4) = (pkt.meta.l3 as usize, pkt.meta.l4 as usize);
    if l4 == 0 {
        return None;
    }
    let d = pkt.data();
    let ip = d.get(l3..)?;
    let len = match pkt.meta.flow.family {
        Family::V4 => Ipv4Header::new_checked(ip).ok()?.total_len() as usize,
        Family::V6 => Ipv6Header::new_checked(ip).ok()?.total_len(),
        Family::None => return None,
    };
    d.get(l4..(l3 + len).min(d.len()))
}

/// The ICMP or ICMPv6 type of a packet that carries one.
fn icmp_type(pkt: &Packet) -> Option<u8> {
    let m = pkt.data().get(pkt.meta.l4 as usize..).filter(|m| !m.is_empty())?;
    Some(IcmpMessage::new_unchecked(m).msg_type())
}
