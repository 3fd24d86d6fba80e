//! The data path's two caches, both direct-mapped and versioned so that
//! a control change or a neighbour update invalidates them without a
//! sweep:
//!
//! * the **route cache** in front of the FIB: a destination's route and
//!   resolved neighbour ([`Node::cached_route`], [`Node::neighbor_mac`]);
//! * the **flow cache** in front of each hook's classifier: a flow key's
//!   matching rule ([`Node::classify`]).

use super::{Hook, Node, Pipeline};
use crate::fib::RouteKind;
use std::net::IpAddr;
use weft_packet::flow::Family;
use weft_packet::{FlowKey, Mac, Packet, PortId};

/// One slot of the route cache: a destination's route and resolved
/// neighbour, valid while the pipeline and neighbour versions are unchanged.
/// The FIB's trie costs ~30 ns per lookup; traffic is dominated by few
/// destinations at a time, so a direct-mapped cache in front of it takes the
/// trie off the per-packet path (the role Linux's dst cache and VPP's
/// adjacencies play).
#[derive(Clone, Copy, Default)]
pub(super) struct RouteSlot {
    dst: u128,
    pipeline: u64,
    neigh: u64,
    family: u8,
    kind: u8,
    port: PortId,
    nh: Option<IpAddr>,
    mac: Option<Mac>,
}

pub(super) const ROUTE_CACHE_SLOTS: usize = 1024;

/// One slot of the exact-match flow cache in front of the classifier (Open
/// vSwitch's EMC): a flow key's matching rule at one hook, valid for one
/// pipeline version. The classifier's cost grows with the number of rule
/// shapes; a cache hit costs one hash and one compare whatever the rule set.
#[derive(Clone, Copy, Default)]
pub(super) struct FlowSlot {
    key: FlowKey,
    version: u64,
    hook: u8,
    rule: u32,
}

pub(super) const FLOW_CACHE_SLOTS: usize = 4096;

#[inline]
fn flow_index(k: &FlowKey, hook: Hook) -> usize {
    let a = (k.src as u64) ^ ((k.src >> 64) as u64).rotate_left(17);
    let b = (k.dst as u64) ^ ((k.dst >> 64) as u64).rotate_left(31);
    let c = ((k.sport as u64) << 32) | ((k.dport as u64) << 16) | ((k.proto as u64) << 8) | hook as u64;
    let x = (a.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ b).wrapping_mul(0xff51_afd7_ed55_8ccd)
        ^ c
        ^ ((k.in_port as u64) << 48);
    (x.wrapping_mul(0xc4ce_b9fe_1a85_ec53) >> 52) as usize & (FLOW_CACHE_SLOTS - 1)
}

#[inline]
fn cache_index(dst: u128) -> usize {
    let x = (dst as u64) ^ ((dst >> 64) as u64);
    (x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 54) as usize & (ROUTE_CACHE_SLOTS - 1)
}

fn kind_code(k: RouteKind) -> u8 {
    match k {
        RouteKind::Connected => 1,
        RouteKind::Static => 2,
        RouteKind::Local => 3,
    }
}

fn code_kind(c: u8) -> RouteKind {
    match c {
        1 => RouteKind::Connected,
        2 => RouteKind::Static,
        _ => RouteKind::Local,
    }
}

/// A flow cache answer for "no rule matches".
pub(super) const NO_RULE: u32 = u32::MAX;

impl Node {
    /// The cached route of `pkt`'s destination, when the slot is valid for
    /// this pipeline version: sets `meta.out_port` and `meta.next_hop` for
    /// routes that leave the node and returns the route's kind.
    #[inline]
    pub(super) fn cached_route(&self, pl: &Pipeline, pkt: &mut Packet) -> Option<RouteKind> {
        let f = &pkt.meta.flow;
        let slot = &self.route_cache[cache_index(f.dst)];
        if slot.pipeline != pl.version || slot.dst != f.dst || slot.family != f.family as u8 {
            return None;
        }
        let kind = code_kind(slot.kind);
        if kind != RouteKind::Local {
            pkt.meta.out_port = Some(slot.port);
            pkt.meta.next_hop = slot.nh;
        }
        Some(kind)
    }

    /// Remember the route just found for `pkt` (its `out_port` and
    /// `next_hop` set by the lookup). Link-scope IPv6 answers depend on the
    /// receiving port and are not cached.
    #[inline]
    pub(super) fn cache_route(&mut self, pl: &Pipeline, pkt: &Packet, kind: RouteKind) {
        let f = &pkt.meta.flow;
        let link_scope = f.family == Family::V6 && {
            let d = std::net::Ipv6Addr::from(f.dst);
            d.is_multicast() || (d.segments()[0] & 0xffc0) == 0xfe80
        };
        if link_scope {
            return;
        }
        self.route_cache[cache_index(f.dst)] = RouteSlot {
            dst: f.dst,
            pipeline: pl.version,
            neigh: u64::MAX,
            family: f.family as u8,
            kind: kind_code(kind),
            port: pkt.meta.out_port.unwrap_or(0),
            nh: pkt.meta.next_hop,
            mac: None,
        };
    }

    /// The resolved MAC of `nh` on `port`, through the route cache.
    #[inline]
    pub(super) fn neighbor_mac(&mut self, dst: u128, port: PortId, nh: IpAddr) -> Option<Mac> {
        let v = self.neigh.version;
        let slot = &mut self.route_cache[cache_index(dst)];
        if slot.dst == dst && slot.nh == Some(nh) && slot.port == port && slot.pipeline == self.pipeline.version {
            if slot.neigh == v {
                return slot.mac;
            }
            let mac = self.neigh.get(port, nh);
            slot.neigh = v;
            slot.mac = mac;
            return mac;
        }
        self.neigh.get(port, nh)
    }

    /// The rule of `hook` that flow `k` matches ([`NO_RULE`]: none), through
    /// the flow cache.
    #[inline]
    pub(super) fn classify(&mut self, pl: &Pipeline, hook: Hook, k: &FlowKey) -> u32 {
        let classifier = &pl.hook(hook).classifier;
        if classifier.is_linear() {
            // A few rules: comparing them is cheaper than the cache's probe.
            return classifier.lookup(k).map_or(NO_RULE, |r| r as u32);
        }
        let slot = &mut self.flow_cache[flow_index(k, hook)];
        if slot.version == pl.version && slot.hook == hook as u8 && slot.key == *k {
            return slot.rule;
        }
        let rule = classifier.lookup(k).map_or(NO_RULE, |r| r as u32);
        *slot = FlowSlot {
            key: *k,
            version: pl.version,
            hook: hook as u8,
            rule,
        };
        rule
    }
}
