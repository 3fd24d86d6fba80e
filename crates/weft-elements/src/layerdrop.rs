//! `layerdrop` — thin a layered media stream to a target rate, highest
//! layer first (Silk's wavelet dropper, PromethOS' WaveVideo plugin).
//!
//! **The layer field.** The layer of a packet is the byte at `OFFSET`
//! (default 0) of its UDP payload: 0 is the base layer, higher numbers are
//! enhancement layers, as WaveVideo tags each packet with the layer of the
//! wavelet coefficients it carries. Packets that are not whole UDP
//! datagrams or are too short to hold the byte pass untouched (and are
//! counted as `other`).
//!
//! **Algorithm.** Every packet's frame bytes are added to its layer's bin.
//! Every 10 ms of virtual time ([`Ctx::now_ns`]) the bins are folded into an
//! exponentially weighted moving average of each layer's *offered* rate with
//! time constant `WINDOW` (bias-corrected while it warms up), and the cut-off
//! is set to the largest `L` with `rate(0) + … + rate(L) ≤ RATE`. Packets of
//! layers above `L` are dropped until the next fold. The base layer is never
//! dropped by this rule, even when it alone exceeds the rate. Until the first
//! fold every packet passes. Because the estimate is of offered load, not of
//! what passed, dropping does not feed back into it: the cut-off does not
//! oscillate.
//!
//! * **Configuration:** `RATE` or `rate=RATE` (bytes/s, frame bytes),
//!   `[offset=OFFSET]` (byte in the UDP payload, default 0),
//!   `[window=MS]` (EWMA time constant, default 500 ms, 10..=60000).
//! * **Ports:** one in, one out.
//! * **Handlers:**
//!   * `rate`, `cutoff` (read, report) — target and current cut-off layer.
//!   * `layers` (read, report) — per seen layer: estimated offered rate
//!     (bytes/s), passed and dropped packets and bytes.
//!   * `other` (read, report) — packets that carry no layer field.
//!   * `rate` (write, control) — a new configuration (`40000`); estimates
//!     are kept and the cut-off is recomputed at the next packet.
//!   * `reset` (write, control `reset`) — zero the counts.
//! * **State:** counts and estimates carry over to a successor `layerdrop`.
//!
//! Report: `{"rate":R,"cutoff":L,"layers":[{"layer","rate","passed","dropped"}],"other":{…}}`.

use crate::udp::{self, Located};
use crate::util::{self, Tally};
use serde::{Deserialize, Serialize};
use weft_dataplane::{Args, ClassDoc, Ctx, Element, ElementClass, ElementError, Handler, Verdict};
use weft_packet::Packet;

const CLASS: &str = "layerdrop";
const LAYERS: usize = 256;
/// Fold interval: fine enough to follow a 100 ms window, coarse enough that
/// the per-fold loop over the seen layers costs nothing per packet.
const TICK_NS: u64 = 10_000_000;
const DEFAULT_WINDOW_MS: u64 = 500;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Layer {
    /// Bytes since the last fold.
    bin: u64,
    /// EWMA of the offered rate, bytes/s, not bias-corrected.
    avg: f64,
    passed: Tally,
    dropped: Tally,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct State {
    layers: Vec<Layer>,
    weight: f64,
    other: Tally,
}

/// The `layerdrop` element.
#[derive(Debug)]
pub struct LayerDrop {
    rate: u64,
    offset: usize,
    window_ns: u64,
    layers: Vec<Layer>,
    /// Highest layer seen + 1.
    seen: usize,
    /// Sum of the EWMA weights so far (1 − e^(−t/τ)): divides the averages
    /// so the first windows are not biased towards zero.
    weight: f64,
    bin_start: Option<u64>,
    cutoff: u8,
    other: Tally,
    recompute: bool,
}

fn parse(args: &Args) -> Result<(u64, usize, u64), ElementError> {
    util::check_args(args, CLASS, &["rate", "offset", "window"], 1)?;
    let rate = util::get_u64(args, CLASS, "rate", 0)?
        .ok_or_else(|| ElementError::Config(format!("{CLASS}: a target rate in bytes/s is required")))?;
    let offset = util::get_u64(args, CLASS, "offset", usize::MAX)?.unwrap_or(0);
    if offset > 65_000 {
        return Err(ElementError::Config(format!(
            "{CLASS}: offset {offset} is past any UDP payload"
        )));
    }
    let window = util::get_u64(args, CLASS, "window", usize::MAX)?.unwrap_or(DEFAULT_WINDOW_MS);
    if !(10..=60_000).contains(&window) {
        return Err(ElementError::Config(format!("{CLASS}: window must be 10..=60000 ms")));
    }
    Ok((rate, offset as usize, window * 1_000_000))
}

impl LayerDrop {
    /// Parse a configuration.
    pub fn new(args: &Args) -> Result<Self, ElementError> {
        let (rate, offset, window_ns) = parse(args)?;
        Ok(LayerDrop {
            rate,
            offset,
            window_ns,
            layers: vec![Layer::default(); LAYERS],
            seen: 0,
            weight: 0.0,
            bin_start: None,
            cutoff: u8::MAX,
            other: Tally::default(),
            recompute: false,
        })
    }

    fn layer_of(&self, pkt: &Packet) -> Option<u8> {
        match udp::locate(pkt) {
            Located::Span(s) => {
                let at = s.payload() + self.offset;
                if at < s.end {
                    pkt.data().get(at).copied()
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// Corrected rate estimate of layer `l`.
    fn estimate(&self, l: usize) -> f64 {
        if self.weight > 0.0 {
            self.layers[l].avg / self.weight
        } else {
            0.0
        }
    }

    fn fold(&mut self, now: u64) {
        let start = *self.bin_start.get_or_insert(now);
        let dt = now.saturating_sub(start);
        if dt >= TICK_NS {
            let secs = dt as f64 / 1e9;
            let alpha = (-(dt as f64) / self.window_ns as f64).exp();
            for l in &mut self.layers[..self.seen] {
                l.avg = alpha * l.avg + (1.0 - alpha) * (l.bin as f64 / secs);
                l.bin = 0;
            }
            self.weight = alpha * self.weight + (1.0 - alpha);
            self.bin_start = Some(now);
            self.recompute = true;
        }
        if self.recompute {
            self.choose_cutoff();
        }
    }

    fn choose_cutoff(&mut self) {
        self.recompute = false;
        if self.weight <= 0.0 {
            return;
        }
        let target = self.rate as f64;
        let mut sum = 0.0;
        let mut cut = 0usize;
        for l in 0..self.seen {
            sum += self.estimate(l);
            if sum > target && l > 0 {
                break;
            }
            cut = l;
        }
        // Layers never seen fit trivially; keep them open for a stream that
        // adds one (its rate is measured within a tick).
        if cut + 1 == self.seen {
            cut = LAYERS - 1;
        }
        if cut as u8 != self.cutoff {
            tracing::debug!(cutoff = cut, rate = self.rate, "layerdrop cut-off changed");
        }
        self.cutoff = cut as u8;
    }
}

impl Element for LayerDrop {
    fn handlers(&self) -> Vec<Handler> {
        HANDLERS.to_vec()
    }

    fn process(&mut self, cx: &mut Ctx<'_>, pkt: &mut Packet) -> Verdict {
        let Some(layer) = self.layer_of(pkt) else {
            self.other.add(pkt.len());
            return Verdict::Continue;
        };
        self.fold(cx.now_ns);
        let l = layer as usize;
        self.seen = self.seen.max(l + 1);
        let e = &mut self.layers[l];
        e.bin = e.bin.wrapping_add(pkt.len() as u64);
        if layer <= self.cutoff {
            e.passed.add(pkt.len());
            Verdict::Continue
        } else {
            e.dropped.add(pkt.len());
            Verdict::Drop
        }
    }

    fn configure(&mut self, args: &Args) -> Result<(), ElementError> {
        (self.rate, self.offset, self.window_ns) = parse(args)?;
        self.recompute = true;
        Ok(())
    }

    fn control(&mut self, request: &str) -> Result<String, ElementError> {
        if util::is_reset(request) {
            for l in &mut self.layers {
                l.passed = Tally::default();
                l.dropped = Tally::default();
            }
            self.other = Tally::default();
        } else {
            self.configure(&Args::parse(request))?;
        }
        Ok("ok".into())
    }

    fn report(&self) -> serde_json::Value {
        let layers: Vec<serde_json::Value> = (0..self.seen)
            .map(|l| {
                serde_json::json!({
                    "layer": l,
                    "rate": self.estimate(l).round() as u64,
                    "passed": self.layers[l].passed,
                    "dropped": self.layers[l].dropped,
                })
            })
            .collect();
        serde_json::json!({
            "rate": self.rate,
            "cutoff": self.cutoff,
            "layers": layers,
            "other": self.other,
        })
    }

    fn export_state(&mut self) -> Option<serde_json::Value> {
        let s = State {
            layers: self.layers[..self.seen].to_vec(),
            weight: self.weight,
            other: self.other,
        };
        serde_json::to_value(s).ok()
    }

    fn import_state(&mut self, state: serde_json::Value) -> Result<(), ElementError> {
        let s: State = serde_json::from_value(state).map_err(|e| ElementError::State(format!("{CLASS}: {e}")))?;
        if s.layers.len() > LAYERS || !s.weight.is_finite() || !(0.0..=1.0).contains(&s.weight) {
            return Err(ElementError::State(format!("{CLASS}: implausible state")));
        }
        self.seen = s.layers.len();
        for (i, mut l) in s.layers.into_iter().enumerate() {
            if !l.avg.is_finite() || l.avg < 0.0 {
                l.avg = 0.0;
            }
            self.layers[i] = l;
        }
        self.weight = s.weight;
        self.other = s.other;
        self.recompute = true;
        Ok(())
    }
}

/// The handlers (see the module header): the class documents them and
/// every instance answers [`Element::handlers`] with them.
const HANDLERS: &[Handler] = &[
    Handler::read("rate", "target rate, bytes/s"),
    Handler::read("cutoff", "highest layer passed (255: all)"),
    Handler::read("layers", "per layer: estimated offered rate, passed and dropped"),
    Handler::read("other", "packets without a layer field (passed)"),
    Handler::write("rate", "control `RATE`: a new target rate"),
    Handler::write("reset", "control `reset`: zero the counts"),
];

fn doc() -> ClassDoc {
    util::doc(
        "drop the highest layers of a layered UDP stream (layer = UDP payload byte OFFSET) to fit a rate",
        "RATE | rate=RATE [offset=OFFSET] [window=MS] (bytes/s; layer byte offset in the UDP payload, \
         default 0; EWMA window, default 500 ms)",
        HANDLERS,
    )
}

/// The `layerdrop` class.
pub fn class() -> ElementClass {
    ElementClass::native(CLASS, doc(), |a| Ok(Box::new(LayerDrop::new(a)?)))
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use weft_dataplane::{Element, Verdict};

    const MS: u64 = 1_000_000;

    /// 100-byte frames of `layer` (payload byte `offset`).
    fn frame(layer: u8, offset: usize) -> Vec<u8> {
        let mut payload = vec![0xeeu8; 58];
        payload[offset] = layer;
        v4(5000, 6000, &payload)
    }

    /// Layers 0..4, 100 packets/s each (10 000 B/s per layer), from `from_ms`
    /// for `ms`; returns per-layer (passed, dropped) packets.
    fn stream(h: &mut Harness, e: &mut dyn Element, from_ms: u64, ms: u64) -> [(u32, u32); 4] {
        let frames: Vec<Vec<u8>> = (0..4).map(|l| frame(l, 0)).collect();
        let mut out = [(0, 0); 4];
        for t in (from_ms..from_ms + ms).step_by(10) {
            for (l, f) in frames.iter().enumerate() {
                match h.run(e, (t + 2 * l as u64) * MS, &mut pkt(f)) {
                    Verdict::Continue => out[l].0 += 1,
                    _ => out[l].1 += 1,
                }
            }
        }
        out
    }

    #[test]
    fn keeps_the_layers_that_fit_and_adapts() {
        assert_eq!(frame(0, 0).len(), 100);
        let mut h = Harness::default();
        let mut e = make("layerdrop", "25000");
        stream(&mut h, e.as_mut(), 0, 2000); // warm up
        assert_eq!(e.report()["cutoff"], 1);
        let r = e.report();
        let est = r["layers"][2]["rate"].as_u64().unwrap_or(0);
        assert!((9_500..=10_500).contains(&est), "layer 2 estimated at {est} B/s");
        // 10k + 10k fits 25k, a third layer does not.
        assert_eq!(
            stream(&mut h, e.as_mut(), 2000, 2000),
            [(200, 0), (200, 0), (0, 200), (0, 200)]
        );

        e.control("45000").expect("new rate");
        assert_eq!(stream(&mut h, e.as_mut(), 4000, 1000), [(100, 0); 4]);
        assert_eq!(e.report()["cutoff"], 255, "every seen layer fits");

        e.control("rate=15000").expect("new rate");
        assert_eq!(
            stream(&mut h, e.as_mut(), 5000, 1000),
            [(100, 0), (0, 100), (0, 100), (0, 100)]
        );
        // Even a rate below the base layer's keeps the base layer.
        e.control("1000").expect("new rate");
        assert_eq!(
            stream(&mut h, e.as_mut(), 6000, 1000),
            [(100, 0), (0, 100), (0, 100), (0, 100)]
        );
        let l3 = &e.report()["layers"][3];
        let offered = l3["passed"]["packets"].as_u64().unwrap_or(0) + l3["dropped"]["packets"].as_u64().unwrap_or(0);
        assert_eq!(offered, 200 + 200 + 100 + 100 + 100);
    }

    #[test]
    fn follows_a_changing_offer_and_reads_the_offset() {
        let mut h = Harness::default();
        let mut e = make("layerdrop", "rate=25000 offset=3 window=100");
        // Only layers 0 and 2 at first: both fit.
        let f0 = frame(0, 3);
        let f2 = frame(2, 3);
        for t in (0..1000u64).step_by(10) {
            assert_eq!(h.run(e.as_mut(), t * MS, &mut pkt(&f0)), Verdict::Continue);
            assert_eq!(h.run(e.as_mut(), (t + 5) * MS, &mut pkt(&f2)), Verdict::Continue);
        }
        // Layer 1 joins at 10 kB/s: 30 kB/s no longer fits, layer 2 goes.
        let f1 = frame(1, 3);
        let mut dropped2 = 0;
        for t in (1000..2000u64).step_by(10) {
            h.run(e.as_mut(), t * MS, &mut pkt(&f0));
            h.run(e.as_mut(), (t + 3) * MS, &mut pkt(&f1));
            if h.run(e.as_mut(), (t + 5) * MS, &mut pkt(&f2)) == Verdict::Drop {
                dropped2 += 1;
            }
        }
        assert_eq!(e.report()["cutoff"], 1);
        assert!(dropped2 >= 85, "layer 2 dropped {dropped2} of 100");

        // Not a layered packet: TCP, and UDP too short for offset 3.
        let t = weft_packet::build::tcp4([2; 6], [4; 6], A4, B4, 1, 2, 0, &[9; 10]);
        assert_eq!(h.run(e.as_mut(), 3000 * MS, &mut pkt(&t)), Verdict::Continue);
        assert_eq!(
            h.run(e.as_mut(), 3000 * MS, &mut pkt(&v4(1, 2, &[9, 9, 9]))),
            Verdict::Continue
        );
        assert_eq!(e.report()["other"]["packets"], 2);

        let state = e.export_state().expect("state");
        let mut next = make("layerdrop", "rate=25000 offset=3 window=100");
        next.import_state(state).expect("import");
        // The successor knows the offered rates at once: layer 2 is dropped
        // from its first packet on.
        assert_eq!(h.run(next.as_mut(), 3001 * MS, &mut pkt(&f2)), Verdict::Drop);
        assert_eq!(next.report()["other"]["packets"], 2);

        assert!(rejects("layerdrop", ""));
        assert!(rejects("layerdrop", "rate=1 window=1"));
        assert!(rejects("layerdrop", "rate=1 offset=70000"));
    }
}
