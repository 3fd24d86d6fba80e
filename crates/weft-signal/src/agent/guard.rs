//! What a request must pass before a node acts on it: the rate limits
//! (per origin and for the whole node, checked before anything else, so a
//! flood costs a hash and a subtraction per datagram), then freshness,
//! the signature and the nonce ([`Guard::verify`]).

use super::{AgentConfig, Refusal, SECOND};
use crate::wire::{Reason, Signed};
use std::collections::HashMap;
use std::net::IpAddr;

/// Origin buckets: a fixed table indexed by a keyed hash of the origin,
/// so that a flood of spoofed origins costs no memory and no eviction
/// scans (origins that collide share a bucket: 1024 keeps that rare among
/// the few requesters a node serves).
const BUCKETS: usize = 1024;

/// A token bucket kept in nanoseconds of credit: each request costs
/// `1 s / rate`, credit accrues with time up to `burst` requests.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    last: u64,
    credit: u64,
}

impl Bucket {
    fn full(max: u64) -> Bucket {
        Bucket { last: 0, credit: max }
    }

    fn take(&mut self, now: u64, cost: u64, max: u64) -> bool {
        let dt = now.saturating_sub(self.last);
        self.last = self.last.max(now);
        self.credit = self.credit.saturating_add(dt).min(max);
        if self.credit >= cost {
            self.credit -= cost;
            true
        } else {
            false
        }
    }
}

pub(super) struct Guard {
    seed: u64,
    origins: Vec<Bucket>,
    origin_cost: u64,
    origin_max: u64,
    node: Bucket,
    node_cost: u64,
    node_max: u64,
    nonces: HashMap<([u8; 32], [u8; 16]), u64>,
    max_nonces: usize,
}

fn cost(rate: u32) -> u64 {
    SECOND / u64::from(rate.max(1))
}

impl Guard {
    pub(super) fn new(cfg: &AgentConfig) -> Guard {
        let origin_cost = cost(cfg.origin_rate);
        let origin_max = origin_cost.saturating_mul(u64::from(cfg.origin_burst.max(1)));
        let node_cost = cost(cfg.node_rate);
        let node_max = node_cost.saturating_mul(u64::from(cfg.node_burst.max(1)));
        let mut s = [0u8; 8];
        s.copy_from_slice(&cfg.nonce_seed[..8]);
        Guard {
            seed: u64::from_le_bytes(s),
            origins: vec![Bucket::full(origin_max); BUCKETS],
            origin_cost,
            origin_max,
            node: Bucket::full(node_max),
            node_cost,
            node_max,
            nonces: HashMap::new(),
            max_nonces: cfg.max_nonces.max(1),
        }
    }

    fn slot(&self, origin: IpAddr) -> usize {
        // FNV-1a over the seed and the address: keyed, so that nobody can
        // aim many origins at one bucket without knowing the seed.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let octets = match origin {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        for b in self.seed.to_le_bytes().iter().chain(octets.iter()) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        (h % BUCKETS as u64) as usize
    }

    /// A request from `origin` at `now`: within the origin's rate and the
    /// node's?
    pub(super) fn admit(&mut self, now: u64, origin: IpAddr) -> bool {
        let i = self.slot(origin);
        let (cost, max) = (self.origin_cost, self.origin_max);
        if !self.origins[i].take(now, cost, max) {
            return false;
        }
        let (cost, max) = (self.node_cost, self.node_max);
        self.node.take(now, cost, max)
    }

    /// Fresh (within `window` s of `now_unix`), signed by its key, and its
    /// nonce not seen before (then remembered).
    pub(super) fn verify(&mut self, s: &Signed, now_unix: u64, window: u64) -> Result<(), Refusal> {
        let r = s.request();
        if r.time.abs_diff(now_unix) > window {
            return Err(Refusal::new(
                Reason::Stale,
                format!(
                    "the request's time {} is more than {window} s from the node's ({now_unix})",
                    r.time
                ),
            ));
        }
        if !s.verify() {
            return Err(Refusal::new(
                Reason::BadSignature,
                "the signature does not match the request and its key",
            ));
        }
        if self.nonces.len() >= self.max_nonces {
            self.sweep(now_unix, window);
            if self.nonces.len() >= self.max_nonces {
                return Err(Refusal::new(
                    Reason::Resources,
                    format!("too many signed requests in the last {window} s; try again later"),
                ));
            }
        }
        match self.nonces.entry((r.key, r.nonce)) {
            std::collections::hash_map::Entry::Occupied(_) => Err(Refusal::new(
                Reason::Replayed,
                "the nonce was used before (a replayed request)",
            )),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(r.time);
                Ok(())
            }
        }
    }

    /// Forget nonces whose requests left the window (a replay of them
    /// would be stale).
    pub(super) fn sweep(&mut self, now_unix: u64, window: u64) {
        self.nonces.retain(|_, t| t.abs_diff(now_unix) <= window);
    }
}
