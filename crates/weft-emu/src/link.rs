//! Links: propagation delay, serialization at a bandwidth, a bounded
//! transmit queue, seeded loss, counters and an optional capture.
//!
//! A frame offered to a direction at time `t` starts serializing when the
//! previous frame has left (`busy_until`) and occupies the link for
//! `len * 8 / bandwidth` seconds; it arrives `delay` after its last bit left.
//! Frames still waiting or serializing make up the queue; when it already
//! holds `queue` frames the new one is dropped and counted.

use serde::Serialize;
use std::collections::VecDeque;

/// Counters of one direction of a link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LinkStats {
    /// Frames delivered (or in flight to be delivered).
    pub frames: u64,
    /// Bytes of those frames (Ethernet header included).
    pub bytes: u64,
    /// Frames dropped by the loss model.
    pub dropped_loss: u64,
    /// Frames dropped because the transmit queue was full.
    pub dropped_queue: u64,
    /// Frames dropped because they exceed the link MTU.
    pub dropped_mtu: u64,
}

impl LinkStats {
    fn add(&mut self, o: &LinkStats) {
        self.frames += o.frames;
        self.bytes += o.bytes;
        self.dropped_loss += o.dropped_loss;
        self.dropped_queue += o.dropped_queue;
        self.dropped_mtu += o.dropped_mtu;
    }

    /// All drops.
    pub fn dropped(&self) -> u64 {
        self.dropped_loss + self.dropped_queue + self.dropped_mtu
    }
}

/// Counters of a link, per direction.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LinkCounters {
    /// Link name.
    pub name: String,
    /// From endpoint `a` to `b`.
    pub a_to_b: LinkStats,
    /// From `b` to `a`.
    pub b_to_a: LinkStats,
}

impl LinkCounters {
    /// Both directions added.
    pub fn total(&self) -> LinkStats {
        let mut t = self.a_to_b;
        t.add(&self.b_to_a);
        t
    }
}

/// A frame seen crossing a captured link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapturedFrame {
    /// Virtual time of arrival at the far end, ns.
    pub time_ns: u64,
    /// 0: from `a` to `b`; 1: from `b` to `a`.
    pub dir: u8,
    /// The Ethernet frame.
    pub frame: Vec<u8>,
}

#[derive(Debug, Default)]
struct Dir {
    busy_until: u64,
    /// Finish times of frames queued or serializing.
    queued: VecDeque<u64>,
    stats: LinkStats,
}

/// What [`Link::offer`] decided.
pub(crate) enum Offer {
    /// Arrives at the far end at this time.
    Deliver(u64),
    /// Dropped (counted).
    Dropped,
}

/// One emulated link.
#[derive(Debug)]
pub(crate) struct Link {
    pub name: String,
    pub delay_ns: u64,
    pub bandwidth: f64,
    pub loss: f64,
    pub cost: u32,
    pub mtu: u16,
    pub queue: usize,
    rng: u64,
    dirs: [Dir; 2],
    pub capture: Option<Vec<CapturedFrame>>,
}

impl Link {
    pub fn new(name: String, spec: &crate::topology::LinkSpec, seed: u64, index: usize) -> Link {
        Link {
            name,
            delay_ns: (spec.delay_ms * 1e6).round() as u64,
            bandwidth: spec.bandwidth,
            loss: spec.loss,
            cost: spec.cost,
            mtu: spec.mtu,
            queue: spec.queue,
            // Distinct, fixed streams per link: the same file loses the same frames.
            rng: seed ^ (index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            dirs: Default::default(),
            capture: None,
        }
    }

    /// splitmix64: small, fast, and good enough for Bernoulli losses.
    fn next_f64(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Offer a frame of `len` bytes to direction `dir` at `now`.
    pub fn offer(&mut self, now: u64, dir: usize, len: usize) -> Offer {
        // 14 bytes of Ethernet header on top of the IP MTU.
        if len > self.mtu as usize + 14 {
            self.dirs[dir].stats.dropped_mtu += 1;
            return Offer::Dropped;
        }
        let ser_ns = ((len as f64 * 8.0 * 1e9) / self.bandwidth).ceil().max(1.0) as u64;
        let lost = self.loss > 0.0 && self.next_f64() < self.loss;
        let d = &mut self.dirs[dir];
        while d.queued.front().is_some_and(|&f| f <= now) {
            d.queued.pop_front();
        }
        if d.queued.len() >= self.queue {
            d.stats.dropped_queue += 1;
            return Offer::Dropped;
        }
        let start = d.busy_until.max(now);
        let finish = start + ser_ns;
        d.busy_until = finish;
        d.queued.push_back(finish);
        // A lost frame still used the wire; it just never arrives.
        if lost {
            d.stats.dropped_loss += 1;
            return Offer::Dropped;
        }
        d.stats.frames += 1;
        d.stats.bytes += len as u64;
        Offer::Deliver(finish + self.delay_ns)
    }

    pub fn counters(&self) -> LinkCounters {
        LinkCounters {
            name: self.name.clone(),
            a_to_b: self.dirs[0].stats,
            b_to_a: self.dirs[1].stats,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::LinkSpec;

    fn spec(bw: f64, loss: f64, queue: usize) -> LinkSpec {
        LinkSpec {
            name: None,
            a: "a".into(),
            b: "b".into(),
            a_addr: Default::default(),
            b_addr: Default::default(),
            delay_ms: 1.0,
            bandwidth: bw,
            loss,
            cost: 1,
            mtu: 1500,
            queue,
        }
    }

    #[test]
    fn serialization_queue_and_loss() {
        // 8 Mbit/s: a 1000-byte frame takes 1 ms.
        let mut l = Link::new("l".into(), &spec(8e6, 0.0, 2), 1, 0);
        assert!(matches!(l.offer(0, 0, 1000), Offer::Deliver(2_000_000)));
        assert!(matches!(l.offer(0, 0, 1000), Offer::Deliver(3_000_000)));
        assert!(matches!(l.offer(0, 0, 1000), Offer::Dropped));
        assert_eq!(l.counters().a_to_b.dropped_queue, 1);
        // The other direction is independent.
        assert!(matches!(l.offer(0, 1, 1000), Offer::Deliver(2_000_000)));
        let mut l = Link::new("l".into(), &spec(1e9, 0.25, 100_000), 7, 0);
        let lost = (0..10_000)
            .filter(|_| matches!(l.offer(0, 0, 100), Offer::Dropped))
            .count();
        assert!((2300..2700).contains(&lost), "{lost}");
    }
}
