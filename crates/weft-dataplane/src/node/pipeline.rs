//! The pipeline snapshot: what the data path reads, built from the
//! control state off to the side and published in one assignment.
//!
//! Control operations only mark the snapshot stale ([`Node::mark_stale`]);
//! the next batch, tick or route lookup publishes one new snapshot for all
//! the changes since the last ([`Node::publish_if_stale`]), so a burst of
//! changes between two batches costs one rebuild.

use super::control::Filter;
use super::{FilterId, Hook, Node};
use crate::classifier::{Classifier, Match};
use crate::domain::DomainId;
use crate::element::InstanceId;
use crate::fib::{Fib, Route, RouteKind};
use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use weft_packet::PortId;

/// Compiled per-hook table.
#[derive(Default)]
pub(super) struct HookTable {
    pub(super) classifier: Classifier,
    /// Rule index → (filter id, chain).
    pub(super) rules: Vec<(FilterId, Arc<[InstanceId]>)>,
    /// Rule index → the visit label a steering filter gives its packets.
    pub(super) steer: Vec<u32>,
    /// Rule index → the domain of the path (root: its chain runs at once;
    /// any other: its packets join that domain's queue).
    pub(super) domain: Vec<DomainId>,
}

/// The immutable snapshot the data path reads: classifiers and chains per
/// hook, the FIB (with the node's own addresses as local host routes).
#[derive(Default)]
pub struct Pipeline {
    /// Incremented by every published change.
    pub version: u64,
    pub(super) hooks: [HookTable; 5],
    pub(super) fib: Fib,
    /// Instances attached at the routing step, in order.
    pub(super) resolvers: Arc<[InstanceId]>,
    /// The node's own addresses (flow-key form): steering filters leave
    /// packets for the node itself alone.
    pub(super) local: Vec<u128>,
    /// Filter → its rule index in its hook's table: a domain round finds
    /// the chain of a packet that waited (the snapshot may be newer than
    /// the one it was queued under).
    pub(super) filter_rule: HashMap<FilterId, u32>,
}

impl Pipeline {
    /// Number of rules at `hook`.
    pub fn rules(&self, hook: Hook) -> usize {
        self.hooks[hook as usize].rules.len()
    }

    /// The table of `hook`.
    #[inline]
    pub(super) fn hook(&self, hook: Hook) -> &HookTable {
        &self.hooks[hook as usize]
    }

    /// No filter at `hook`.
    #[inline]
    pub(super) fn hook_empty(&self, hook: Hook) -> bool {
        self.hooks[hook as usize].rules.is_empty()
    }
}

impl Node {
    /// The pipeline snapshot the data path runs. Control changes are
    /// published at the next [`Node::receive`] or [`Node::tick`] (changes
    /// made between two batches coalesce into one snapshot).
    pub fn pipeline(&self) -> Arc<Pipeline> {
        self.pipeline.clone()
    }

    /// Mark the snapshot out of date: the next batch, tick or route lookup
    /// builds and publishes a new one, so a burst of control changes
    /// between two batches (a PBR daemon committing a thousand visits, a
    /// config file's filters) costs one rebuild, not one per change.
    pub(super) fn mark_stale(&mut self) {
        self.stale = true;
    }

    /// Publish a new snapshot if the control state changed since the last.
    #[inline]
    pub(super) fn publish_if_stale(&mut self) {
        if self.stale {
            self.stale = false;
            self.publish();
        }
    }

    /// Build a new snapshot from the control state and publish it.
    fn publish(&mut self) {
        let mut p = Pipeline {
            version: self.pipeline.version + 1,
            ..Default::default()
        };
        for hook in Hook::ALL {
            let fs: Vec<&Filter> = self.filters.iter().filter(|f| f.hook == hook).collect();
            let ms: Vec<Match> = fs.iter().map(|f| f.m.clone()).collect();
            p.hooks[hook as usize] = HookTable {
                classifier: Classifier::build(&ms),
                rules: fs.iter().map(|f| (f.id, Arc::from(f.chain.as_slice()))).collect(),
                steer: fs.iter().map(|f| f.steer).collect(),
                domain: fs.iter().map(|f| f.domain).collect(),
            };
            for (i, f) in fs.iter().enumerate() {
                p.filter_rule.insert(f.id, i as u32);
            }
        }
        let mut fib = self.routes.clone();
        for (i, port) in self.ports.iter().enumerate() {
            for a in &port.cfg.addrs {
                let host = IpNet::new_assert(a.addr(), a.max_prefix_len());
                fib.insert(Route {
                    prefix: host,
                    via: None,
                    port: i as PortId,
                    kind: RouteKind::Local,
                });
            }
        }
        p.fib = fib;
        p.resolvers = Arc::from(self.resolvers.as_slice());
        p.local = self
            .ports
            .iter()
            .flat_map(|port| {
                let ll = u128::from(port.link_local);
                port.cfg
                    .addrs
                    .iter()
                    .map(|a| match a.addr() {
                        IpAddr::V4(v4) => u32::from(v4) as u128,
                        IpAddr::V6(v6) => u128::from(v6),
                    })
                    .chain(std::iter::once(ll))
            })
            .collect();
        self.pipeline = Arc::new(p);
    }
}
