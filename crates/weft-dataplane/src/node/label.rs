//! Label switching for explicit paths (PromethOS Path-Based Routing, the
//! `weft-pbr` crate; `docs/pbr.md` "Data plane").
//!
//! A path is a walk of *visits*; a node may hold several visits of one path,
//! even entered through the same port, because each visit has its own
//! label, allocated by the node that receives it (downstream allocation):
//!
//! * the **first visit** (ingress) is a PREROUTING filter on the path's
//!   flow (a *steering* filter, [`Node::add_steering`]): matching packets
//!   run the filter's chain (the visit's plugins), then take the visit's
//!   [`LabelOut`];
//! * every **other visit** is a label entry ([`Node::add_label`]): a frame
//!   arriving with that label (an MPLS label stack entry, RFC 3032, Ethernet
//!   type 0x8847 on strict hops; MPLS-in-UDP, RFC 7510, UDP port 6635, on
//!   loose segments) has the label popped, its chain run over the inner IP
//!   packet, and the entry's [`LabelOut`] applied: swap (push the next
//!   visit's label and send to the neighbour), tunnel (push it inside UDP to
//!   the next listed hop, routed by the FIB) or pop (forward the inner packet
//!   by the FIB: the path's end).
//!
//! The IP header is not touched inside the path (RFC 3443 pipe model): the
//! label's TTL starts at [`LABEL_TTL`] and loses one per visit; a packet
//! whose label TTL runs out is dropped (`label-ttl-exceeded`). The egress
//! forwards the inner packet like any router (its TTL loses one there).
//! Packets on a path skip the FORWARD and POSTROUTING hooks of the visits
//! after the first; the path's plugins are its chains.
//!
//! While in a visit's chain, `meta.label` holds the visit's label in its
//! low 20 bits and the remaining label TTL in bits 20–27.
//!
//! **MTU.** Every visit knows the largest IP packet it takes in (per
//! family): what its out segment carries — the out port's MTU less the
//! label (swap), less label, UDP and the outer IP header (tunnel) —
//! lowered to what the rest of the path takes ([`Node::set_label_mtu`]:
//! PBR carries it upstream in COMMIT), then walked back through its chain
//! ([`crate::Element::mtu_before`]: `encrypt` needs room for ESP). A
//! packet over it is dropped (`mtu-exceeded`) *before* the chain, and its
//! source is told the limit — ICMP "fragmentation needed" (IPv4 with DF)
//! or "packet too big" (IPv6), through the node's ICMP rate limiter — so
//! path MTU discovery works through explicit paths; at the ingress that is
//! the whole path's MTU. A packet that still does not fit after its chain
//! (an element grew it more than it declared) is dropped and counted only:
//! its source address may not be the flow's any more.

use super::{DropReason, FilterId, Node, NodeError, Pipeline, PortId};
use crate::element::InstanceId;
use crate::fib::RouteKind;
use serde::Serialize;
use std::net::IpAddr;
use std::sync::Arc;
use weft_packet::flow::Family;
use weft_packet::wire::{self, ethernet, ipv4, ipv6, mpls, udp};
use weft_packet::wire::{EthernetFrame, Ipv4Header, Ipv6Header, MplsEntry, UdpHeader};
use weft_packet::{ethertype, proto, Batch, Packet};

/// Ethernet type of MPLS unicast (RFC 3032).
pub const ETHERTYPE_MPLS: u16 = ethertype::MPLS;
pub use weft_packet::mpls::{FIRST_LABEL, MAX_LABEL, MPLS_UDP_PORT};
/// The label TTL a path starts with (also its hop limit).
pub const LABEL_TTL: u8 = 64;

/// What a visit does with a packet after its chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "action")]
pub enum LabelOut {
    /// Push `label` (MPLS over Ethernet) and send to `next_hop`, a
    /// neighbour on `port` (a strict hop).
    Swap {
        /// The next visit's label.
        label: u32,
        /// The port toward the next visit.
        port: PortId,
        /// The next visit's address on that link (resolved by ARP / ND).
        next_hop: IpAddr,
    },
    /// Push `label` inside UDP (MPLS-in-UDP) from `src` to `to`, routed by
    /// the FIB (a loose segment: routers between forward it as any UDP).
    Tunnel {
        /// The next visit's label.
        label: u32,
        /// The next listed hop's address.
        to: IpAddr,
        /// This node's source address for the tunnel.
        src: IpAddr,
    },
    /// Forward the inner packet by the FIB (the path's last visit).
    Pop,
}

/// A visit as listed by [`Node::labels`].
#[derive(Clone, Debug, Serialize)]
pub struct LabelInfo {
    /// The visit's label (for the first visit, an internal one never sent).
    pub label: u32,
    /// The first visit's steering filter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steering: Option<FilterId>,
    /// Instances run at this visit.
    pub chain: Vec<InstanceId>,
    /// What happens next.
    pub out: LabelOut,
    /// Packets that took this visit.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Largest IPv4 packet the visit takes in (none: no limit).
    pub mtu4: Option<usize>,
    /// Largest IPv6 packet the visit takes in (none: no limit).
    pub mtu6: Option<usize>,
}

/// A visit.
#[derive(Clone, Debug)]
pub(super) struct LabelState {
    pub(super) chain: Arc<[InstanceId]>,
    pub(super) out: LabelOut,
    pub(super) steering: Option<FilterId>,
    pub(super) packets: u64,
    pub(super) bytes: u64,
    /// What the rest of the path takes after this visit's segment (from
    /// [`Node::set_label_mtu`]; none: unknown or no limit).
    pub(super) downstream: Option<usize>,
    /// Largest IPv4 and IPv6 packet taken in (none: no limit).
    pub(super) max_in: [Option<u16>; 2],
}

#[inline]
fn pack(label: u32, ttl: u8) -> u32 {
    (label & MAX_LABEL) | (ttl as u32) << 20
}

#[inline]
fn unpack(m: u32) -> (u32, u8) {
    (m & MAX_LABEL, (m >> 20) as u8)
}

impl Node {
    // ----- control ---------------------------------------------------------

    fn alloc_label(&mut self) -> Result<u32, NodeError> {
        for _ in FIRST_LABEL..=MAX_LABEL {
            let l = self.next_label;
            self.next_label = if l >= MAX_LABEL { FIRST_LABEL } else { l + 1 };
            if !self.labels.contains_key(&l) {
                return Ok(l);
            }
        }
        Err(NodeError::LabelsExhausted)
    }

    fn check_label_target(&self, chain: &[InstanceId], out: &LabelOut) -> Result<(), NodeError> {
        for id in chain {
            self.inst(*id)?;
        }
        match *out {
            LabelOut::Swap { label, port, .. } => {
                if self.ports.get(port as usize).is_none() {
                    return Err(NodeError::UnknownPort(format!("#{port}")));
                }
                if !(FIRST_LABEL..=MAX_LABEL).contains(&label) {
                    return Err(NodeError::BadLabel(label));
                }
            }
            LabelOut::Tunnel { label, .. } if !(FIRST_LABEL..=MAX_LABEL).contains(&label) => {
                return Err(NodeError::BadLabel(label));
            }
            _ => {}
        }
        Ok(())
    }

    /// Add a visit of an explicit path: frames arriving with the returned
    /// label (allocated here, unique on the node) run `chain` over their
    /// inner IP packet, then take `out`.
    pub fn add_label(&mut self, chain: Vec<InstanceId>, out: LabelOut) -> Result<u32, NodeError> {
        self.check_label_target(&chain, &out)?;
        let label = self.alloc_label()?;
        let max_in = self.entry_limits(&chain, &out, None);
        self.labels.insert(
            label,
            LabelState {
                chain: Arc::from(chain),
                out,
                steering: None,
                packets: 0,
                bytes: 0,
                downstream: None,
                max_in,
            },
        );
        // Labels are read by the data path directly: no new snapshot.
        Ok(label)
    }

    /// Add the first visit of an explicit path: packets matching `m` at
    /// PREROUTING run `chain` (a filter, listed among the filters), then
    /// take `out`. Returns the filter and the visit's internal label (the
    /// handle for [`Node::remove_label`] and [`Node::labels`]).
    pub fn add_steering(
        &mut self,
        m: crate::Match,
        chain: Vec<InstanceId>,
        out: LabelOut,
    ) -> Result<(FilterId, u32), NodeError> {
        self.check_label_target(&chain, &out)?;
        let label = self.alloc_label()?;
        let fid = self.add_filter(super::FilterSpec {
            hook: Some(super::Hook::Prerouting),
            m,
            chain: chain.clone(),
            position: Some(0),
        })?;
        if let Some(f) = self.filters.iter_mut().find(|f| f.id == fid) {
            f.steer = label;
        }
        let max_in = self.entry_limits(&chain, &out, None);
        self.labels.insert(
            label,
            LabelState {
                chain: Arc::from(Vec::new()),
                out,
                steering: Some(fid),
                packets: 0,
                bytes: 0,
                downstream: None,
                max_in,
            },
        );
        self.mark_stale();
        Ok((fid, label))
    }

    /// Remove a visit (and, for a first visit, its steering filter). The
    /// instances stay; remove them separately.
    pub fn remove_label(&mut self, label: u32) -> Result<(), NodeError> {
        let st = self.labels.remove(&label).ok_or(NodeError::UnknownLabel(label))?;
        if let Some(fid) = st.steering {
            self.filters.retain(|f| f.id != fid);
            self.mark_stale();
        }
        Ok(())
    }

    /// Every visit held here, by label.
    pub fn labels(&self) -> Vec<LabelInfo> {
        let mut v: Vec<LabelInfo> = self
            .labels
            .iter()
            .map(|(&label, s)| LabelInfo {
                label,
                steering: s.steering,
                chain: match s.steering {
                    Some(fid) => self
                        .filters
                        .iter()
                        .find(|f| f.id == fid)
                        .map(|f| f.chain.clone())
                        .unwrap_or_default(),
                    None => s.chain.to_vec(),
                },
                out: s.out.clone(),
                packets: s.packets,
                bytes: s.bytes,
                mtu4: s.max_in[0].map(usize::from),
                mtu6: s.max_in[1].map(usize::from),
            })
            .collect();
        v.sort_by_key(|l| l.label);
        v
    }

    /// Tell visit `label` the largest IP packet the rest of the path takes
    /// after its segment (`None`: no limit known), and get back the largest
    /// it takes in itself for packets of family IPv6 (`ipv6`) or IPv4:
    /// the smaller of that and its own segment's room, through its chain.
    /// PBR calls it at commit with what the next visit reported, and
    /// reports the result upstream.
    pub fn set_label_mtu(
        &mut self,
        label: u32,
        downstream: Option<usize>,
        ipv6: bool,
    ) -> Result<Option<usize>, NodeError> {
        let (chain, out) = {
            let st = self.labels.get(&label).ok_or(NodeError::UnknownLabel(label))?;
            (self.visit_chain(label, st), st.out.clone())
        };
        let max_in = self.entry_limits(&chain, &out, downstream);
        let st = self.labels.get_mut(&label).ok_or(NodeError::UnknownLabel(label))?;
        st.downstream = downstream;
        st.max_in = max_in;
        Ok(max_in[ipv6 as usize].map(usize::from))
    }

    /// The instances a visit runs: a first visit's are its filter's.
    fn visit_chain(&self, label: u32, st: &LabelState) -> Vec<InstanceId> {
        match st.steering {
            Some(fid) => self
                .filters
                .iter()
                .find(|f| f.id == fid && f.steer == label)
                .map(|f| f.chain.clone())
                .unwrap_or_default(),
            None => st.chain.to_vec(),
        }
    }

    /// Most octets of IP packet a visit's segment carries after its chain
    /// (none: pop, the packet leaves the path; or no route yet).
    fn segment_room(&mut self, out: &LabelOut) -> Option<usize> {
        let (port, encap) = match *out {
            LabelOut::Swap { port, .. } => (port, 4),
            LabelOut::Tunnel { to, .. } => {
                let (port, _, _) = self.lookup_route(to)?;
                (port, 4 + 8 + if to.is_ipv4() { 20 } else { 40 })
            }
            LabelOut::Pop => return None,
        };
        self.ports
            .get(port as usize)
            .map(|p| (p.cfg.mtu as usize).saturating_sub(encap))
    }

    /// The largest IPv4 and IPv6 packet a visit takes in.
    fn entry_limits(&mut self, chain: &[InstanceId], out: &LabelOut, downstream: Option<usize>) -> [Option<u16>; 2] {
        let room = match (self.segment_room(out), downstream) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => match a.or(b) {
                Some(r) => r,
                None => return [None, None],
            },
        };
        [false, true].map(|v6| {
            let r = chain
                .iter()
                .rev()
                .fold(room, |r, id| self.inst(*id).map_or(r, |i| i.element.mtu_before(v6, r)));
            Some(r.min(u16::MAX as usize) as u16)
        })
    }

    /// Whether a label entry uses instance `id`.
    pub(super) fn labels_use(&self, id: InstanceId) -> bool {
        self.labels.values().any(|s| s.chain.contains(&id))
    }

    // ----- data path -------------------------------------------------------

    fn count_label(&mut self, label: u32, len: usize) {
        if let Some(s) = self.labels.get_mut(&label) {
            s.packets += 1;
            s.bytes += len as u64;
        }
    }

    /// A frame with an MPLS label stack entry right after the Ethernet
    /// header: pop it, run the visit's chain, apply its out action.
    pub(super) fn label_in(&mut self, pl: &Pipeline, mut pkt: Packet) {
        // Ethernet, the entry, and at least an IPv4 header.
        let Some(entry) = pkt
            .data()
            .get(ethernet::HEADER_LEN..)
            .filter(|b| b.len() >= mpls::ENTRY_LEN + ipv4::HEADER_LEN)
            .map(MplsEntry::new_unchecked)
        else {
            self.drop_pkt(DropReason::MalformedLabel, pkt);
            return;
        };
        let (label, bottom, ttl) = (entry.label(), entry.bottom(), entry.ttl());
        let inner_version = wire::ip_version(entry.payload());
        let Some((chain, out, max_in)) = self
            .labels
            .get(&label)
            .map(|e| (e.chain.clone(), e.out.clone(), e.max_in))
        else {
            self.drop_pkt(DropReason::UnknownLabel, pkt);
            return;
        };
        if !bottom {
            // Weft paths push exactly one entry.
            self.drop_pkt(DropReason::MalformedLabel, pkt);
            return;
        }
        if ttl <= 1 {
            self.drop_pkt(DropReason::LabelTtlExceeded, pkt);
            return;
        }
        let ethertype = match inner_version {
            Some(4) => ethertype::IPV4,
            Some(6) => ethertype::IPV6,
            _ => {
                self.drop_pkt(DropReason::MalformedLabel, pkt);
                return;
            }
        };
        // Pop: the Ethernet addresses move up over the label.
        if !move_ethernet_header(&mut pkt, |p| p.remove_range(0, mpls::ENTRY_LEN).is_ok(), ethertype) {
            self.drop_pkt(DropReason::MalformedLabel, pkt);
            return;
        }
        let in_port = pkt.meta.in_port;
        if let Err(e) = pkt.parse() {
            self.drop_pkt(DropReason::from_parse(e), pkt);
            return;
        }
        pkt.meta.in_port = in_port;
        pkt.meta.label = pack(label, ttl - 1);
        if let Some(max) = limit(&max_in, &pkt) {
            self.too_big(pkt, max);
            return;
        }
        self.count_label(label, pkt.len());
        if !chain.is_empty() {
            let mut one = std::mem::take(&mut self.s_one);
            one.push(pkt);
            self.run_chain(&chain, &mut one);
            let next = one.pop();
            self.s_one = one;
            match next {
                Some(p) => pkt = p,
                None => return,
            }
        }
        self.label_out(pl, &out, pkt);
    }

    /// Before a first visit's chain: drop the packets of `batch` that are
    /// larger than the path takes, telling their sources (ICMP).
    pub(super) fn steering_mtu(&mut self, label: u32, batch: &mut Batch) {
        let Some(max_in) = self.labels.get(&label).map(|st| st.max_in) else {
            return;
        };
        if !batch.iter().any(|p| limit(&max_in, p).is_some()) {
            return;
        }
        let mut keep = std::mem::take(&mut self.s_chain_keep);
        for p in batch.drain(..) {
            match limit(&max_in, &p) {
                Some(max) => self.too_big(p, max),
                None => keep.push(p),
            }
        }
        std::mem::swap(batch, &mut keep);
        self.s_chain_keep = keep;
    }

    /// Drop a packet too big for a visit, telling its source the limit.
    fn too_big(&mut self, pkt: Packet, max: usize) {
        self.icmp_too_big(&pkt, max);
        self.drop_pkt(DropReason::MtuExceeded, pkt);
    }

    /// A packet of a steered flow after PREROUTING (the first visit), or a
    /// visit's packet after its chain.
    pub(super) fn steered(&mut self, pl: &Pipeline, pkt: Packet) {
        let (label, _) = unpack(pkt.meta.label);
        match self.labels.get_mut(&label) {
            Some(e) => {
                e.packets += 1;
                e.bytes += pkt.len() as u64;
                let out = e.out.clone();
                self.label_out(pl, &out, pkt);
            }
            None => self.drop_pkt(DropReason::UnknownLabel, pkt),
        }
    }

    fn label_out(&mut self, pl: &Pipeline, out: &LabelOut, mut pkt: Packet) {
        let (_, ttl) = unpack(pkt.meta.label);
        let ttl = if ttl == 0 { LABEL_TTL } else { ttl };
        pkt.meta.label = 0;
        match *out {
            LabelOut::Pop => {
                pkt.meta.next_hop = None;
                pkt.meta.out_port = None;
                match self.route(pl, &mut pkt) {
                    Ok(RouteKind::Local) => self.deliver_local(pkt),
                    Ok(_) => self.forward_direct(pkt),
                    Err(e) => self.route_failed(e, pkt),
                }
            }
            LabelOut::Swap { label, port, next_hop } => {
                let mtu = self.ports.get(port as usize).map_or(0, |p| p.cfg.mtu as usize);
                if pkt.len() - 14 + 4 > mtu {
                    self.drop_pkt(DropReason::MtuExceeded, pkt);
                    return;
                }
                if !push_label(&mut pkt, label, ttl) {
                    self.drop_pkt(DropReason::MalformedLabel, pkt);
                    return;
                }
                pkt.meta.out_port = Some(port);
                pkt.meta.next_hop = Some(next_hop);
                self.resolve_and_send(pkt);
            }
            LabelOut::Tunnel { label, to, src } => {
                if !push_label(&mut pkt, label, ttl) || !encap_udp(&mut pkt, src, to) {
                    self.drop_pkt(DropReason::MalformedLabel, pkt);
                    return;
                }
                if let Err(e) = pkt.parse() {
                    self.drop_pkt(DropReason::from_parse(e), pkt);
                    return;
                }
                match self.route(pl, &mut pkt) {
                    Ok(RouteKind::Local) => self.drop_pkt(DropReason::Martian, pkt),
                    Ok(_) => {
                        // The outer packet is the node's own: a too-big one
                        // is counted, not answered (the visit's entry check
                        // told the flow's source).
                        let mtu = pkt
                            .meta
                            .out_port
                            .and_then(|p| self.ports.get(p as usize))
                            .map_or(0, |p| p.cfg.mtu as usize);
                        if pkt.len() - pkt.meta.l3 as usize > mtu {
                            self.drop_pkt(DropReason::MtuExceeded, pkt);
                        } else {
                            self.resolve_and_send(pkt);
                        }
                    }
                    Err(e) => self.route_failed(e, pkt),
                }
            }
        }
    }

    /// An MPLS-in-UDP datagram addressed to the node: strip the outer IP
    /// and UDP headers and take the label.
    pub(super) fn label_decap(&mut self, pl: &Pipeline, mut pkt: Packet) {
        let l4 = pkt.meta.l4 as usize;
        if l4 < ethernet::HEADER_LEN || pkt.len() < l4 + udp::HEADER_LEN + mpls::ENTRY_LEN {
            self.drop_pkt(DropReason::MalformedLabel, pkt);
            return;
        }
        // Keep an Ethernet header's room in front of the label.
        let outer = l4 + udp::HEADER_LEN - ethernet::HEADER_LEN;
        if !move_ethernet_header(&mut pkt, |p| p.remove_range(0, outer).is_ok(), ETHERTYPE_MPLS) {
            self.drop_pkt(DropReason::MalformedLabel, pkt);
            return;
        }
        self.label_in(pl, pkt);
    }
}

/// Remove or insert bytes right after the Ethernet addresses (`resize`
/// removes or inserts at the frame's start; the addresses are put back in
/// front) and set the ethertype: how labels and tunnels are pushed and
/// popped. False when the frame is too short or `resize` failed.
fn move_ethernet_header(pkt: &mut Packet, resize: impl FnOnce(&mut Packet) -> bool, ethertype: u16) -> bool {
    let Ok(eth) = EthernetFrame::new_checked(pkt.data()) else {
        return false;
    };
    let (dst, src) = (eth.dst(), eth.src());
    if !resize(pkt) {
        return false;
    }
    let Ok(mut eth) = EthernetFrame::new_checked(pkt.data_mut()) else {
        return false;
    };
    eth.set_dst(dst);
    eth.set_src(src);
    eth.set_ethertype(ethertype);
    true
}

/// A visit's limit for `pkt` (from [`LabelState::max_in`]), if `pkt` is
/// over it: its IP length (from the header, so Ethernet padding does not
/// count) against the limit of its family.
#[inline]
fn limit(max_in: &[Option<u16>; 2], pkt: &Packet) -> Option<usize> {
    let ip = pkt.data().get(pkt.meta.l3 as usize..)?;
    let (i, len) = match pkt.meta.flow.family {
        Family::V4 => (0, Ipv4Header::new_checked(ip).ok()?.total_len() as usize),
        Family::V6 => (1, Ipv6Header::new_checked(ip).ok()?.total_len()),
        Family::None => return None,
    };
    let max = usize::from(max_in[i]?);
    (len > max).then_some(max)
}

/// Whether an IP packet addressed to the node is MPLS-in-UDP.
#[inline]
pub(super) fn is_mpls_udp(pkt: &Packet) -> bool {
    pkt.meta.flow.proto == proto::UDP && pkt.meta.flow.dport == MPLS_UDP_PORT
}

/// Push one label stack entry (bottom of stack) after the Ethernet header.
fn push_label(pkt: &mut Packet, label: u32, ttl: u8) -> bool {
    if !move_ethernet_header(pkt, |p| p.insert_gap(0, mpls::ENTRY_LEN).is_ok(), ETHERTYPE_MPLS) {
        return false;
    }
    let entry = &mut pkt.data_mut()[ethernet::HEADER_LEN..];
    MplsEntry::new_unchecked(entry).set(label, 0, true, ttl);
    true
}

/// The TTL (hop limit) of a tunnel's outer header.
const TUNNEL_TTL: u8 = 64;

/// Wrap an MPLS frame (Ethernet + label + IP) in IP/UDP to `to`:
/// Ethernet + IP + UDP(6635) + label + IP.
fn encap_udp(pkt: &mut Packet, src: IpAddr, to: IpAddr) -> bool {
    let inner = pkt.len().saturating_sub(ethernet::HEADER_LEN); // label + IP
    let (ip_len, ethertype) = match (src, to) {
        (IpAddr::V4(_), IpAddr::V4(_)) => (ipv4::HEADER_LEN, ethertype::IPV4),
        (IpAddr::V6(_), IpAddr::V6(_)) => (ipv6::HEADER_LEN, ethertype::IPV6),
        _ => return false,
    };
    let udp_len = udp::HEADER_LEN + inner;
    if udp_len + ip_len > u16::MAX as usize
        || !move_ethernet_header(
            pkt,
            |p| p.insert_gap(ethernet::HEADER_LEN, ip_len + udp::HEADER_LEN).is_ok(),
            ethertype,
        )
    {
        return false;
    }
    // Entropy for ECMP on the way (RFC 7510 section 3): the inner flow.
    let sport = 0xc000 | (pkt.meta.flow.sport ^ pkt.meta.flow.dport) & 0x3fff;
    let d = &mut pkt.data_mut()[ethernet::HEADER_LEN..];
    let (ip, datagram) = d.split_at_mut(ip_len);
    match (src, to) {
        (IpAddr::V4(s), IpAddr::V4(t)) => {
            let mut h = Ipv4Header::new_unchecked(ip);
            h.set_version_and_header_len(4, ipv4::HEADER_LEN);
            h.set_dscp_ecn(0);
            h.set_total_len((ip_len + udp_len) as u16);
            h.set_ident(0);
            // DF: the path's MTU was checked at its ingress.
            h.set_fragment(true, false, 0);
            h.set_ttl(TUNNEL_TTL);
            h.set_protocol(proto::UDP);
            h.set_src(s);
            h.set_dst(t);
            h.fill_checksum();
        }
        (IpAddr::V6(s), IpAddr::V6(t)) => {
            let mut h = Ipv6Header::new_unchecked(ip);
            h.set_version(6);
            h.set_payload_len(udp_len as u16);
            h.set_next_header(proto::UDP);
            h.set_hop_limit(TUNNEL_TTL);
            h.set_src(s);
            h.set_dst(t);
        }
        _ => return false,
    }
    let mut u = UdpHeader::new_unchecked(datagram);
    u.set_src_port(sport);
    u.set_dst_port(MPLS_UDP_PORT);
    u.set_len(udp_len as u16);
    u.set_checksum(0);
    if let (IpAddr::V6(s), IpAddr::V6(t)) = (src, to) {
        // IPv6 UDP needs a checksum (RFC 8200 8.1).
        u.fill_checksum_v6(s, t);
    }
    true
}
