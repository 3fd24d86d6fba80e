//! The control plane of Silk's wavelet dropper (paper §5, figure 7), for
//! an application outside the node.
//!
//! The data plane runs on the node: a cut-through channel with a layer
//! offset counts the bytes each layer offers, drops layers above a
//! cut-off and keeps the rest to the channel's bandwidth (RTP's part in
//! Silk). This side reads those counters every interval and chooses the
//! cut-off (RTCP's part): when the bandwidth dropped packets, the rate
//! that passed is a sample of what the path can carry, the estimate is the
//! largest of the last [`SAMPLES`] such samples, and the cut-off becomes
//! the highest layer whose cumulative offered rate fits in it (with 5 %
//! headroom); the base layer always passes. Without bandwidth drops the
//! estimate stands, so the cut-off does not oscillate. Why the largest: a
//! sample is only a lower bound when the source offered less than fits —
//! after the cut, a burst from a source that stalled (a busy sender, a
//! scheduler's delay) overflows the bucket's depth and loses a few packets
//! while what passed is merely what was offered; taking that as the path's
//! rate would cut a layer that fits (BBR filters its delivery-rate samples
//! with a windowed maximum for the same reason). A path that really
//! narrowed keeps dropping, and after [`SAMPLES`] spans its old rate is
//! forgotten. Rates are taken
//! over at least [`WINDOW_NS`]: over a shorter span the channel's burst
//! (what its bucket lets through at once) weighs too much in the rate
//! that passed — 3 kB in 100 ms is ±30 kB/s on a 60 kB/s estimate.

use crate::proto::ChanStats;

/// Headroom kept under the estimated available rate.
const HEADROOM: f64 = 0.95;

/// The shortest span a rate is measured over; calls in between only
/// accumulate.
pub const WINDOW_NS: u64 = 500_000_000;

/// How many congested spans' rates the estimate is the largest of.
pub const SAMPLES: usize = 4;

/// The dropper's control state.
#[derive(Debug, Default)]
pub struct Dropper {
    last: Option<(u64, ChanStats)>,
    /// Rates that passed in the last congested spans, newest last.
    samples: std::collections::VecDeque<f64>,
    available: Option<f64>,
    cutoff: Option<u8>,
}

impl Dropper {
    /// A dropper that passes everything until it sees congestion.
    pub fn new() -> Dropper {
        Dropper::default()
    }

    /// The current cut-off (`None`: all layers).
    pub fn cutoff(&self) -> Option<u8> {
        self.cutoff
    }

    /// The estimated available rate, bytes/s.
    pub fn available(&self) -> Option<f64> {
        self.available
    }

    /// Take the channel's counters at `now_ns`; returns the new cut-off
    /// when it changed (send it with `chan_set_layer`).
    pub fn update(&mut self, now_ns: u64, s: &ChanStats) -> Option<Option<u8>> {
        let Some((t0, _)) = self.last else {
            self.last = Some((now_ns, s.clone()));
            return None;
        };
        if now_ns.saturating_sub(t0) < WINDOW_NS {
            return None;
        }
        let (t0, p) = self.last.replace((now_ns, s.clone()))?;
        let dt = now_ns.saturating_sub(t0) as f64 / 1e9;
        if s.dropped_bandwidth > p.dropped_bandwidth {
            if self.samples.len() == SAMPLES {
                self.samples.pop_front();
            }
            self.samples.push_back(s.bytes.saturating_sub(p.bytes) as f64 / dt);
            self.available = self.samples.iter().copied().reduce(f64::max);
        }
        let avail = self.available?;
        let mut sum = 0.0;
        let mut cut = 0u8;
        for (l, b) in s.layer_bytes.iter().enumerate() {
            let before = p.layer_bytes.get(l).copied().unwrap_or(0);
            sum += b.saturating_sub(before) as f64 / dt;
            if sum > avail * HEADROOM {
                break;
            }
            cut = l.min(255) as u8;
        }
        let new = Some(cut);
        (new != self.cutoff).then(|| {
            self.cutoff = new;
            new
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(passed: u64, bw_drops: u64, layers: [u64; 4]) -> ChanStats {
        ChanStats {
            bytes: passed,
            dropped_bandwidth: bw_drops,
            layer_bytes: layers.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn congestion_sets_the_cutoff_to_what_fits() {
        let mut d = Dropper::new();
        assert_eq!(d.update(0, &stats(0, 0, [0; 4])), None);
        // 1 s: each layer offered 25 kB, 50 kB passed, the bucket dropped.
        assert_eq!(d.update(1_000_000_000, &stats(50_000, 40, [25_000; 4])), Some(Some(0)));
        assert_eq!(d.available(), Some(50_000.0));
        // Layers 0 and 1 (50 kB/s) do not fit in 95 % of 50 kB/s: only
        // the base. Next second: 60 kB passed with drops → two layers fit.
        assert_eq!(
            d.update(2_000_000_000, &stats(110_000, 80, [50_000, 50_000, 50_000, 50_000])),
            Some(Some(1))
        );
        // No drops: the estimate and the cut-off stand.
        assert_eq!(d.update(3_000_000_000, &stats(160_000, 80, [75_000; 4])), None);
        assert_eq!(d.cutoff(), Some(1));
    }

    #[test]
    fn rates_are_taken_over_the_window() {
        let mut d = Dropper::new();
        d.update(0, &stats(0, 0, [0; 4]));
        // 100 ms with drops is too short to judge: nothing yet.
        assert_eq!(d.update(100_000_000, &stats(9_000, 5, [2_500; 4])), None);
        assert_eq!(d.available(), None);
        // At 500 ms the whole span counts: 30 kB in 0.5 s = 60 kB/s.
        assert_eq!(d.update(500_000_000, &stats(30_000, 20, [12_500; 4])), Some(Some(1)));
        assert_eq!(d.available(), Some(60_000.0));
    }

    #[test]
    fn a_burst_after_the_cut_does_not_cut_a_layer_that_fits() {
        let mut d = Dropper::new();
        d.update(0, &stats(0, 0, [0; 4]));
        // Four 25 kB/s layers into 60 kB/s: two fit.
        assert_eq!(d.update(1_000_000_000, &stats(60_000, 40, [25_000; 4])), Some(Some(1)));
        // Then only layers 0–1 are offered (50 kB/s); a stalled source's
        // burst loses two packets: 48 kB passed. Still two layers.
        assert_eq!(
            d.update(2_000_000_000, &stats(108_000, 42, [50_000, 50_000, 50_000, 50_000])),
            None
        );
        assert_eq!((d.cutoff(), d.available()), (Some(1), Some(60_000.0)));
        // A path that really narrowed to 30 kB/s keeps dropping: once the
        // old rate is SAMPLES spans back, only the base layer is kept.
        let mut at = (2, 108_000, 42);
        let mut cut = None;
        for _ in 0..SAMPLES {
            at = (at.0 + 1, at.1 + 30_000, at.2 + 20);
            let layers = [at.0 * 25_000; 4];
            if let Some(c) = d.update(at.0 * 1_000_000_000, &stats(at.1, at.2, layers)) {
                cut = c;
            }
        }
        assert_eq!((cut, d.available()), (Some(0), Some(30_000.0)));
    }

    #[test]
    fn no_congestion_no_cutoff() {
        let mut d = Dropper::new();
        d.update(0, &stats(0, 0, [0; 4]));
        assert_eq!(d.update(1_000_000_000, &stats(99_000, 0, [25_000; 4])), None);
        assert_eq!(d.cutoff(), None);
    }
}
