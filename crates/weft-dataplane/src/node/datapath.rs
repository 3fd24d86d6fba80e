//! The data path (DESIGN §3): receive → parse → PREROUTING → the routing
//! decision → INPUT (node-local, [`super::local`]) | FORWARD → TTL →
//! POSTROUTING → MTU → neighbour resolution ([`super::neighbors`]) → the
//! port's queue; and the node's own packets: OUTPUT → routing →
//! POSTROUTING.
//!
//! Hooks and chains run in [`super::hooks`]; explicit-path labels in
//! [`super::label`]; ICMP errors in [`super::icmp`].

use super::{label, DropReason, Hook, Node, Pipeline, ETHERTYPE_MPLS, LOCAL_PORT};
use crate::element::EmitTo;
use crate::fib::RouteKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use weft_packet::flow::Family;
use weft_packet::view::L3;
use weft_packet::wire::icmp::types;
use weft_packet::wire::{self, ipv4, ipv6, EthernetFrame, Ipv4Header, Ipv6Header};
use weft_packet::{Batch, Mac, Packet, PortId};

/// Bound on originate → output → emit rounds in one batch (an element in
/// OUTPUT that emits on every packet must not loop forever).
const OUTPUT_ROUNDS: usize = 4;
/// How long what an OUTPUT loop left after [`OUTPUT_ROUNDS`] waits for its
/// next rounds: the runner's tick before the node said when it needed one,
/// so such a loop runs no faster than it did then.
pub(super) const OUTPUT_BACKOFF_NS: u64 = 10_000_000;

/// Why a packet could not be routed: what [`Node::route`] tells its
/// caller, which drops the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Unroutable {
    /// The drop counter.
    pub(super) reason: DropReason,
    /// Whether the source is told "destination unreachable" (no route;
    /// never for martians).
    pub(super) send_unreachable: bool,
}

impl Unroutable {
    /// Dropped silently.
    const fn silent(reason: DropReason) -> Unroutable {
        Unroutable {
            reason,
            send_unreachable: false,
        }
    }
}

pub(super) fn v4_of(bits: u128) -> Ipv4Addr {
    Ipv4Addr::from(bits as u32)
}

fn is_martian_v4(a: Ipv4Addr) -> bool {
    a.is_multicast() || a.is_broadcast() || a.is_unspecified() || a.is_loopback() || a.is_link_local()
}

fn is_martian_v6(a: Ipv6Addr) -> bool {
    a.is_multicast() || a.is_unspecified() || a.is_loopback() || (a.segments()[0] & 0xffc0) == 0xfe80
}

impl Node {
    /// Process a batch received on `port` at time `now_ns`; drains `batch`.
    /// Output frames are queued per port (see [`Node::take_tx`]).
    pub fn receive(&mut self, now_ns: u64, port: PortId, batch: &mut Batch) {
        self.now_ns = now_ns;
        self.publish_if_stale();
        let pl = self.pipeline.clone();
        let t0 = self.sched_begin();
        let received = batch.len();
        let Some(p) = self.ports.get_mut(port as usize) else {
            for pkt in batch.drain(..) {
                self.drops[DropReason::BadPort as usize] += 1;
                self.pool.free(pkt);
            }
            return;
        };
        let up = p.up;
        let my_mac = p.cfg.mac;
        if !pl.resolvers.is_empty() {
            self.prefetch_resolvers(&pl, batch);
        }
        let mut ip = std::mem::take(&mut self.s_ip);
        let mut local = std::mem::take(&mut self.s_local);
        let mut fwd = std::mem::take(&mut self.s_fwd);
        // No PREROUTING filters: route each packet as it is parsed. Else
        // classify it as it is parsed (`matched[i]`: `ip[i]`'s rule).
        let pre_empty = pl.hook_empty(Hook::Prerouting);
        let mut matched = std::mem::take(&mut self.s_pre_matched);
        matched.clear();
        let direct = Self::direct(&pl);
        for mut pkt in batch.drain(..) {
            let p = &mut self.ports[port as usize];
            p.stats.rx_packets += 1;
            p.stats.rx_bytes += pkt.len() as u64;
            if !up {
                self.drop_pkt(DropReason::PortDown, pkt);
                continue;
            }
            pkt.meta.in_port = port;
            let h = match pkt.parse() {
                Ok(h) => h,
                Err(e) => {
                    self.drop_pkt(DropReason::from_parse(e), pkt);
                    continue;
                }
            };
            if h.dst_mac != my_mac && h.dst_mac[0] & 1 == 0 {
                self.drop_pkt(DropReason::NotOurMac, pkt);
                continue;
            }
            pkt.meta.out_port = None;
            pkt.meta.next_hop = None;
            pkt.meta.label = 0;
            pkt.meta.rx_ns = now_ns;
            match h.l3 {
                L3::Ipv4 { .. } | L3::Ipv6 { .. } if pre_empty => self.dispatch(&pl, pkt, direct, &mut local, &mut fwd),
                L3::Ipv4 { .. } | L3::Ipv6 { .. } => {
                    matched.push(self.classify(&pl, Hook::Prerouting, &pkt.meta.flow));
                    ip.push(pkt);
                }
                L3::Arp { op, sha, spa, tpa, .. } => self.handle_arp(port, op, sha, spa, tpa, pkt),
                L3::Other if h.ethertype == ETHERTYPE_MPLS => self.label_in(&pl, pkt),
                L3::Other => self.drop_pkt(DropReason::UnknownEthertype, pkt),
            }
        }
        if pre_empty {
            self.finish_input(&pl, &mut local, &mut fwd);
        }
        self.s_local = local;
        self.s_fwd = fwd;
        if !ip.is_empty() {
            self.ip_input(&pl, &mut ip, &matched);
        }
        self.s_pre_matched = matched;
        self.s_ip = ip;
        self.output_pending(&pl);
        if self.sched.on {
            self.sched_after_batch(&pl, t0, received);
        }
    }

    /// Drop a packet that could not be routed, telling its source when
    /// that is due.
    pub(super) fn route_failed(&mut self, e: Unroutable, pkt: Packet) {
        if e.send_unreachable {
            self.icmp_unreachable(&pkt, 0);
        }
        self.drop_pkt(e.reason, pkt);
    }

    /// Count a drop and return the buffer to the pool.
    pub(super) fn drop_pkt(&mut self, r: DropReason, pkt: Packet) {
        self.drops[r as usize] += 1;
        self.pool.free(pkt);
    }

    /// IP packets after L2, classified at PREROUTING (`matched`, see
    /// [`Node::run_matched`]): PREROUTING, routing decision, INPUT or
    /// FORWARD.
    pub(super) fn ip_input(&mut self, pl: &Pipeline, ip: &mut Batch, matched: &[u32]) {
        self.run_matched(Hook::Prerouting, pl, ip, matched);
        let mut local = std::mem::take(&mut self.s_local);
        let mut fwd = std::mem::take(&mut self.s_fwd);
        let direct = Self::direct(pl);
        for pkt in ip.drain(..) {
            self.dispatch(pl, pkt, direct, &mut local, &mut fwd);
        }
        self.finish_input(pl, &mut local, &mut fwd);
        self.s_local = local;
        self.s_fwd = fwd;
    }

    /// With no filters at FORWARD and POSTROUTING a forwarded packet needs
    /// no batch boundary after routing: it is taken to its port in one go.
    #[inline]
    pub(super) fn direct(pl: &Pipeline) -> bool {
        pl.hook_empty(Hook::Forward) && pl.hook_empty(Hook::Postrouting)
    }

    /// Routing decision for one packet: to `local`, to `fwd`, or (direct)
    /// straight through TTL, MTU and neighbour resolution to its port.
    #[inline]
    pub(super) fn dispatch(
        &mut self,
        pl: &Pipeline,
        mut pkt: Packet,
        direct: bool,
        local: &mut Batch,
        fwd: &mut Batch,
    ) {
        if pkt.meta.label != 0 {
            // Steered onto an explicit path at PREROUTING.
            self.steered(pl, pkt);
            return;
        }
        let mut r = self.route(pl, &mut pkt);
        if matches!(r, Ok(RouteKind::Local)) && !self.labels.is_empty() && label::is_mpls_udp(&pkt) {
            self.label_decap(pl, pkt);
            return;
        }
        if matches!(r, Ok(RouteKind::Local)) && !pl.resolvers.is_empty() && may_carry_options(&pkt) {
            pkt = match self.routing_step(pl, pkt) {
                Some(p) => p,
                None => return,
            };
            r = self.route(pl, &mut pkt);
        }
        if r.is_ok() && !self.intercepts.is_empty() && may_carry_options(&pkt) && self.intercepted(&pkt) {
            // On-path signaling: the daemon sends it on itself.
            local.push(pkt);
            return;
        }
        match r {
            Ok(RouteKind::Local) => local.push(pkt),
            Ok(_) if direct => {
                self.forward_direct(pkt);
            }
            Ok(_) => fwd.push(pkt),
            Err(e) => self.route_failed(e, pkt),
        }
    }

    /// INPUT for `local`, FORWARD onwards for `fwd`.
    pub(super) fn finish_input(&mut self, pl: &Pipeline, local: &mut Batch, fwd: &mut Batch) {
        self.run_hook(Hook::Input, pl, local);
        for pkt in local.drain(..) {
            self.deliver_local(pkt);
        }
        self.forward(pl, fwd);
    }

    /// Route lookup: sets `meta.out_port` and `meta.next_hop` and returns
    /// the route kind, or why the packet cannot be routed (the caller
    /// drops it, [`Node::route_failed`]).
    #[inline]
    pub(super) fn route(&mut self, pl: &Pipeline, pkt: &mut Packet) -> Result<RouteKind, Unroutable> {
        if pkt.meta.next_hop.is_none() {
            if let Some(kind) = self.cached_route(pl, pkt) {
                return Ok(kind);
            }
        }
        let r = self.route_slow(pl, pkt);
        if let Ok(kind) = r {
            self.cache_route(pl, pkt, kind);
        }
        r
    }

    fn route_slow(&self, pl: &Pipeline, pkt: &mut Packet) -> Result<RouteKind, Unroutable> {
        let f = pkt.meta.flow;
        let dst = match f.family {
            Family::V4 => {
                let d = v4_of(f.dst);
                if d.is_broadcast() || d.is_multicast() {
                    // Not routed; the node has no multicast listeners.
                    return Err(Unroutable::silent(DropReason::Martian));
                }
                IpAddr::V4(d)
            }
            Family::V6 => {
                let d = Ipv6Addr::from(f.dst);
                if d.is_multicast() {
                    // All-nodes, all-routers and our solicited-node groups.
                    let ours = d == Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1)
                        || d == Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2)
                        || (d.segments()[0] == 0xff02 && d.segments()[5] == 1 && d.segments()[6] >> 8 == 0xff);
                    if ours {
                        pkt.meta.out_port = None;
                        return Ok(RouteKind::Local);
                    }
                    return Err(Unroutable::silent(DropReason::Martian));
                }
                if (d.segments()[0] & 0xffc0) == 0xfe80 {
                    // Link-local: ours if it is the receiving port's.
                    let port = pkt.meta.in_port;
                    if self.ports.get(port as usize).is_some_and(|p| p.link_local == d) {
                        return Ok(RouteKind::Local);
                    }
                    return Err(Unroutable::silent(DropReason::Martian));
                }
                IpAddr::V6(d)
            }
            Family::None => {
                return Err(Unroutable::silent(DropReason::UnknownEthertype));
            }
        };
        let target = pkt.meta.next_hop.unwrap_or(dst);
        match pl.fib.lookup(target) {
            Some(r) => {
                if r.kind == RouteKind::Local && pkt.meta.next_hop.is_none() {
                    return Ok(RouteKind::Local);
                }
                pkt.meta.out_port = Some(r.port);
                pkt.meta.next_hop = Some(if r.kind == RouteKind::Local {
                    target
                } else {
                    r.next_hop(target)
                });
                Ok(r.kind)
            }
            None => Err(Unroutable {
                reason: DropReason::NoRoute,
                send_unreachable: true,
            }),
        }
    }

    /// FORWARD: TTL, FORWARD hook, then POSTROUTING and out.
    fn forward(&mut self, pl: &Pipeline, fwd: &mut Batch) {
        let mut keep = std::mem::take(&mut self.s_keep);
        for mut pkt in fwd.drain(..) {
            match self.ttl_check(&mut pkt) {
                None => keep.push(pkt),
                Some(r) => self.drop_pkt(r, pkt),
            }
        }
        self.run_hook(Hook::Forward, pl, &mut keep);
        self.post_and_send(pl, &mut keep);
        self.s_keep = keep;
    }

    /// TTL, MTU, neighbour, port in one go (no filters after routing). The
    /// checks take the packet by reference so it is moved once, into the
    /// port's queue: moving 128-byte packets between helpers measured a
    /// fifth of the forwarding rate.
    #[inline]
    pub(super) fn forward_direct(&mut self, mut pkt: Packet) {
        if let Some(r) = self.ttl_check(&mut pkt).or_else(|| self.mtu_check(&pkt)) {
            self.drop_pkt(r, pkt);
            return;
        }
        self.resolve_and_send(pkt);
    }

    /// Martian source check and TTL / hop-limit decrement (RFC 1812 5.3.1:
    /// an expired packet gets ICMP time exceeded). Some(reason) to drop.
    #[inline]
    fn ttl_check(&mut self, pkt: &mut Packet) -> Option<DropReason> {
        let f = pkt.meta.flow;
        let martian_src = match f.family {
            Family::V4 => is_martian_v4(v4_of(f.src)),
            Family::V6 => is_martian_v6(Ipv6Addr::from(f.src)),
            Family::None => true,
        };
        if martian_src {
            return Some(DropReason::Martian);
        }
        // The parser checked that the fixed header is there; a view over
        // exactly that many octets lets the compiler drop every other
        // bounds check.
        let l3 = pkt.meta.l3 as usize;
        match f.family {
            Family::V4 => {
                let mut ip = Ipv4Header::new_unchecked(&mut pkt.data_mut_unmarked()[l3..l3 + ipv4::HEADER_LEN]);
                if ip.ttl() <= 1 {
                    self.icmp_error(pkt, types::TIME_EXCEEDED, 0, [0; 4]);
                    return Some(DropReason::TtlExceeded);
                }
                ip.decrement_ttl();
            }
            _ => {
                let mut ip = Ipv6Header::new_unchecked(&mut pkt.data_mut_unmarked()[l3..l3 + ipv6::HEADER_LEN]);
                let hl = ip.hop_limit();
                if hl <= 1 {
                    self.icmp_error(pkt, types::V6_TIME_EXCEEDED, 0, [0; 4]);
                    return Some(DropReason::TtlExceeded);
                }
                ip.set_hop_limit(hl - 1);
            }
        }
        None
    }

    /// MTU check, POSTROUTING, neighbour resolution, transmit.
    pub(super) fn post_and_send(&mut self, pl: &Pipeline, out: &mut Batch) {
        let filtered = !pl.hook_empty(Hook::Postrouting);
        let mut ok = std::mem::take(&mut self.s_rest);
        for pkt in out.drain(..) {
            match self.mtu_check(&pkt) {
                Some(r) => self.drop_pkt(r, pkt),
                None if filtered => ok.push(pkt),
                None => self.resolve_and_send(pkt),
            }
        }
        if filtered {
            self.run_hook(Hook::Postrouting, pl, &mut ok);
            for pkt in ok.drain(..) {
                self.resolve_and_send(pkt);
            }
        }
        self.s_rest = ok;
    }

    /// Path MTU: too big and not fragmentable → ICMP "fragmentation needed"
    /// (v4, RFC 1191) or "packet too big" (v6, RFC 8201). Some(reason) to
    /// drop.
    #[inline]
    fn mtu_check(&mut self, pkt: &Packet) -> Option<DropReason> {
        let Some(port) = pkt.meta.out_port else {
            return Some(DropReason::NoRoute);
        };
        let Some(p) = self.ports.get(port as usize) else {
            return Some(DropReason::BadPort);
        };
        let mtu = p.cfg.mtu as usize;
        let l3len = pkt.len().saturating_sub(pkt.meta.l3 as usize);
        if l3len <= mtu {
            return None;
        }
        // Ethernet padding can make a frame look long; trust the IP length.
        let ip = &pkt.data()[pkt.meta.l3 as usize..];
        let (iplen, df) = match pkt.meta.flow.family {
            Family::V4 => {
                let h = Ipv4Header::new_unchecked(ip);
                (h.total_len() as usize, h.dont_fragment())
            }
            _ => (Ipv6Header::new_unchecked(ip).total_len(), true),
        };
        if iplen <= mtu {
            return None;
        }
        if df {
            self.icmp_too_big(pkt, mtu);
        }
        // Fragmenting IPv4 without DF is not implemented: such packets are
        // counted here too.
        Some(DropReason::MtuExceeded)
    }

    /// Rewrite the Ethernet addresses and queue on the port.
    #[inline]
    pub(super) fn send_l2(&mut self, port: PortId, dst: Mac, mut pkt: Packet) {
        let Some(p) = self.ports.get_mut(port as usize) else {
            self.drop_pkt(DropReason::BadPort, pkt);
            return;
        };
        if let Ok(mut eth) = EthernetFrame::new_checked(pkt.data_mut_unmarked()) {
            eth.set_dst(dst);
            eth.set_src(p.cfg.mac);
        }
        p.stats.tx_packets += 1;
        p.stats.tx_bytes += pkt.len() as u64;
        self.tx[port as usize].push(pkt);
    }

    /// Queue a frame on a port as it is (redirects, emitted copies, ARP).
    pub(super) fn send_raw(&mut self, port: PortId, pkt: Packet) {
        match self.ports.get_mut(port as usize) {
            Some(p) if p.up => {
                p.stats.tx_packets += 1;
                p.stats.tx_bytes += pkt.len() as u64;
                self.tx[port as usize].push(pkt);
            }
            Some(_) => self.drop_pkt(DropReason::PortDown, pkt),
            None => self.drop_pkt(DropReason::BadPort, pkt),
        }
    }

    /// Packets the node and its elements originated: OUTPUT, routing,
    /// POSTROUTING; and emitted copies to ports.
    pub(super) fn output_pending(&mut self, pl: &Pipeline) {
        for _ in 0..OUTPUT_ROUNDS {
            if self.emitted.is_empty() && self.originate.is_empty() {
                return;
            }
            let emitted = std::mem::take(&mut self.emitted);
            for (to, pkt) in emitted {
                match to {
                    EmitTo::Port(p) => self.send_raw(p, pkt),
                    EmitTo::Route => self.originate.push(pkt),
                }
            }
            let mut out = std::mem::take(&mut self.originate);
            let mut routed = std::mem::take(&mut self.s_fwd);
            for mut pkt in out.drain(..) {
                pkt.meta.in_port = LOCAL_PORT;
                match pkt.parse() {
                    Ok(h) if matches!(h.l3, L3::Ipv4 { .. } | L3::Ipv6 { .. }) => {
                        pkt.meta.out_port = None;
                        routed.push(pkt);
                    }
                    _ => self.drop_pkt(DropReason::ElementMalformed, pkt),
                }
            }
            self.originate = out;
            self.run_hook(Hook::Output, pl, &mut routed);
            let mut send = std::mem::take(&mut self.s_keep);
            for mut pkt in routed.drain(..) {
                match self.route(pl, &mut pkt) {
                    // To ourselves (e.g. ping of our own address): loop back.
                    Ok(RouteKind::Local) => self.deliver_local(pkt),
                    Ok(_) => send.push(pkt),
                    Err(e) => self.route_failed(e, pkt),
                }
            }
            self.post_and_send(pl, &mut send);
            self.s_keep = send;
            self.s_fwd = routed;
        }
        if !self.emitted.is_empty() || !self.originate.is_empty() {
            self.output_due_ns = self.now_ns.saturating_add(OUTPUT_BACKOFF_NS);
        }
    }
}

/// Whether an IP packet may carry what a routing-step resolver reads:
/// IPv4 options (IHL above 5) or an IPv6 hop-by-hop, routing or
/// destination-options header.
#[inline]
fn may_carry_options(pkt: &Packet) -> bool {
    let Some(ip) = pkt.data().get(pkt.meta.l3 as usize..) else {
        return false;
    };
    match wire::ip_version(ip) {
        Some(4) => Ipv4Header::new_checked(ip).is_ok_and(|h| h.has_options()),
        Some(6) => Ipv6Header::new_checked(ip).is_ok_and(|h| ipv6::OPTION_HEADERS.contains(&h.next_header())),
        _ => false,
    }
}
