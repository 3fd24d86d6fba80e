//! Neighbour resolution on the way out: a packet whose next hop has no
//! known link-layer address is held ([`crate::neigh::PENDING_MAX`] per
//! neighbour) while the node asks (ARP request, neighbour solicitation),
//! asks again every [`RETRY_NS`], and gives up after
//! [`RESOLVE_TIMEOUT_NS`] (the held packets' sources are told "host
//! unreachable"). Answers are learnt in [`super::local`].

use super::{DropReason, Node};
use crate::neigh::{Pending, PENDING_MAX, RESOLVE_TIMEOUT_NS, RETRY_NS};
use ipnet::IpNet;
use std::net::IpAddr;
use weft_packet::{build, Packet, PortId, BROADCAST_MAC};

impl Node {
    /// Neighbour lookup, then queue on the port or hold for resolution.
    #[inline]
    pub(super) fn resolve_and_send(&mut self, pkt: Packet) {
        let (Some(port), Some(nh)) = (pkt.meta.out_port, pkt.meta.next_hop) else {
            self.drop_pkt(DropReason::NoRoute, pkt);
            return;
        };
        if !self.ports.get(port as usize).is_some_and(|p| p.up) {
            self.drop_pkt(DropReason::PortDown, pkt);
            return;
        }
        match self.neighbor_mac(pkt.meta.flow.dst, port, nh) {
            Some(mac) => self.send_l2(port, mac, pkt),
            None => self.hold(port, nh, pkt),
        }
    }

    /// Hold `pkt` until `nh` on `port` is resolved; ask at once for a new
    /// neighbour.
    fn hold(&mut self, port: PortId, nh: IpAddr, pkt: Packet) {
        let now = self.now_ns;
        let mut ask = false;
        let e = self.neigh.pending.entry((port, nh)).or_insert_with(|| {
            ask = true;
            Pending {
                pkts: Vec::new(),
                first_ns: now,
                last_req_ns: now,
            }
        });
        if e.pkts.len() >= PENDING_MAX {
            self.drop_pkt(DropReason::NeighborQueueFull, pkt);
        } else {
            e.pkts.push(pkt);
        }
        if ask {
            self.solicit(port, nh);
        }
    }

    /// Send an ARP request or a neighbour solicitation for `ip` on `port`.
    fn solicit(&mut self, port: PortId, ip: IpAddr) {
        let Some(p) = self.ports.get(port as usize) else { return };
        let mac = p.cfg.mac;
        let frame = match ip {
            IpAddr::V4(t) => {
                let src = p
                    .cfg
                    .addrs
                    .iter()
                    .find_map(|a| match a {
                        IpNet::V4(n) if n.contains(&t) => Some(n.addr()),
                        _ => None,
                    })
                    .or_else(|| {
                        p.cfg
                            .addrs
                            .iter()
                            .find_map(|a| if let IpNet::V4(n) = a { Some(n.addr()) } else { None })
                    });
                let Some(src) = src else { return };
                build::arp(1, mac, src, [0; 6], t, BROADCAST_MAC)
            }
            IpAddr::V6(t) => {
                let src = p
                    .cfg
                    .addrs
                    .iter()
                    .find_map(|a| match a {
                        IpNet::V6(n) if n.contains(&t) => Some(n.addr()),
                        _ => None,
                    })
                    .unwrap_or(p.link_local);
                build::neighbor_solicit(mac, src, t)
            }
        };
        let pkt = self.pool.alloc(&frame);
        self.send_raw(port, pkt);
    }

    /// Ask again for neighbours that have not answered, and give up on
    /// those that have not answered in time (their packets are dropped,
    /// their sources told "host unreachable").
    pub(super) fn neighbor_timers(&mut self, now_ns: u64) {
        let mut expired = Vec::new();
        let mut retry = Vec::new();
        for (k, p) in self.neigh.pending.iter_mut() {
            if now_ns.saturating_sub(p.first_ns) > RESOLVE_TIMEOUT_NS {
                expired.push(*k);
            } else if now_ns.saturating_sub(p.last_req_ns) >= RETRY_NS {
                p.last_req_ns = now_ns;
                retry.push(*k);
            }
        }
        for k in expired {
            if let Some(p) = self.neigh.pending.remove(&k) {
                for pkt in p.pkts {
                    self.icmp_unreachable(&pkt, 1); // host unreachable
                    self.drop_pkt(DropReason::NeighborUnresolved, pkt);
                }
            }
        }
        for (port, ip) in retry {
            self.solicit(port, ip);
        }
    }

    /// When [`Node::neighbor_timers`] next has something to do: the
    /// earliest retry or expiry of a held resolution.
    pub(super) fn neighbor_deadline(&self) -> Option<u64> {
        self.neigh
            .pending
            .values()
            .map(|p| {
                let retry = p.last_req_ns.saturating_add(RETRY_NS);
                // Expired once strictly past the timeout.
                let expire = p.first_ns.saturating_add(RESOLVE_TIMEOUT_NS).saturating_add(1);
                retry.min(expire)
            })
            .min()
    }
}
