//! The neighbour table: IPv4 ARP and IPv6 neighbour discovery results per
//! port, and packets waiting for a resolution.

use ahash::AHashMap;
use std::net::IpAddr;
use weft_packet::{Mac, Packet, PortId};

/// Packets held per unresolved neighbour (Linux's `unres_qlen` default is
/// a few; more only delays the inevitable drop when a host is gone).
pub const PENDING_MAX: usize = 8;
/// How long to wait for an answer before giving up on held packets.
pub const RESOLVE_TIMEOUT_NS: u64 = 3_000_000_000;
/// How often to repeat a request while packets are held.
pub const RETRY_NS: u64 = 1_000_000_000;

/// A resolved neighbour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Neighbor {
    /// Link-layer address.
    pub mac: Mac,
    /// Configured by an operator (never replaced by learning).
    pub permanent: bool,
}

pub(crate) struct Pending {
    pub pkts: Vec<Packet>,
    pub first_ns: u64,
    pub last_req_ns: u64,
}

/// Neighbour cache and resolution queue.
#[derive(Default)]
pub struct Neighbors {
    entries: AHashMap<(PortId, IpAddr), Neighbor>,
    pub(crate) pending: AHashMap<(PortId, IpAddr), Pending>,
    /// Bumped whenever an entry is added, changed or removed, so caches of
    /// resolved next hops know when to look again.
    pub(crate) version: u64,
}

impl Neighbors {
    /// Look up a neighbour.
    #[inline]
    pub fn get(&self, port: PortId, ip: IpAddr) -> Option<Mac> {
        self.entries.get(&(port, ip)).map(|n| n.mac)
    }

    /// Learn or update a neighbour; returns the packets that were waiting for
    /// it. Permanent entries are not overwritten by learning.
    pub fn learn(&mut self, port: PortId, ip: IpAddr, mac: Mac, permanent: bool) -> Vec<Packet> {
        let e = self
            .entries
            .entry((port, ip))
            .or_insert(Neighbor { mac: [0; 6], permanent });
        if permanent || !e.permanent {
            let new = Neighbor {
                mac,
                permanent: permanent || e.permanent,
            };
            if *e != new {
                *e = new;
                self.version += 1;
            }
        }
        self.pending.remove(&(port, ip)).map(|p| p.pkts).unwrap_or_default()
    }

    /// Learn only if already known or awaited (RFC 826's merge rule: do not
    /// fill the table from every ARP heard).
    pub fn refresh(&mut self, port: PortId, ip: IpAddr, mac: Mac) -> Vec<Packet> {
        if self.entries.contains_key(&(port, ip)) || self.pending.contains_key(&(port, ip)) {
            self.learn(port, ip, mac, false)
        } else {
            Vec::new()
        }
    }

    /// Forget a neighbour.
    pub fn remove(&mut self, port: PortId, ip: IpAddr) -> bool {
        self.version += 1;
        self.entries.remove(&(port, ip)).is_some()
    }

    /// All entries.
    pub fn entries(&self) -> Vec<(PortId, IpAddr, Neighbor)> {
        let mut v: Vec<_> = self.entries.iter().map(|((p, ip), n)| (*p, *ip, *n)).collect();
        v.sort_by_key(|(p, ip, _)| (*p, *ip));
        v
    }
}
