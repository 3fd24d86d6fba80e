//! `layerdrop` as a WebAssembly plugin: thin a layered media stream to a
//! target rate, highest layer first (Silk's wavelet dropper, PromethOS'
//! WaveVideo plugin).
//!
//! **The layer field** is the native `layerdrop`'s: the byte at `OFFSET`
//! (default 0) of the UDP payload; 0 is the base layer. Packets without it
//! pass and count as `other`.
//!
//! **Algorithm.** Frame bytes are binned per layer; every 10 ms of node time
//! the bins are folded into a moving average of each layer's offered rate
//! (first-order EWMA, time constant `window`, bias-corrected while it warms
//! up) and the cut-off becomes the largest `L` with `rate(0)+…+rate(L) ≤
//! RATE`. Layers above `L` are dropped until the next fold; the base layer
//! never is. With `max_layer=L` the cut-off is fixed at `L` instead.
//!
//! * **Configuration:** `RATE` or `rate=RATE` (bytes/s) and/or
//!   `max_layer=L`, `[offset=N]`, `[window=MS]` (10..=60000, default 500).
//! * **Report:** `{"rate":R,"cutoff":L,"layers":[{"layer","rate","passed","dropped"}],"other":N}`.
#![no_std]

use core::fmt::Write;
use weft_plugin_sdk::guest::Batch;
use weft_plugin_sdk::util::{config_get, config_unknown_key, parse_u64};
use weft_plugin_sdk::{weft_plugin, Ctx, Packet, Plugin, Reply, Verdict};

const LAYERS: usize = 256;
const TICK_NS: u64 = 10_000_000;

#[derive(Clone, Copy, Default)]
struct Layer {
    bin: u64,
    avg: f64,
    passed: u64,
    dropped: u64,
}

struct LayerDrop {
    rate: Option<u64>,
    fixed: Option<u8>,
    offset: usize,
    window_ns: u64,
    layers: [Layer; LAYERS],
    seen: usize,
    weight: f64,
    bin_start: Option<u64>,
    cutoff: u8,
    other: u64,
}

struct Conf {
    rate: Option<u64>,
    fixed: Option<u8>,
    offset: usize,
    window_ns: u64,
}

fn num(config: &str, key: &str, pos: usize) -> Result<Option<u64>, &'static str> {
    match config_get(config, key, pos) {
        None => Ok(None),
        Some(v) => parse_u64(v).map(Some).ok_or("layerdrop: a value is not a number"),
    }
}

fn parse(config: &str) -> Result<Conf, &'static str> {
    if config_unknown_key(config, &["rate", "max_layer", "offset", "window"]).is_some() {
        return Err("layerdrop: unknown key (known: rate, max_layer, offset, window)");
    }
    let rate = num(config, "rate", 0)?;
    let fixed = match num(config, "max_layer", usize::MAX)? {
        None => None,
        Some(l) if l < 256 => Some(l as u8),
        Some(_) => return Err("layerdrop: max_layer must be 0..=255"),
    };
    if rate.is_none() && fixed.is_none() {
        return Err("layerdrop: a target rate (bytes/s) or max_layer is required");
    }
    let offset = num(config, "offset", usize::MAX)?.unwrap_or(0);
    if offset > 65_000 {
        return Err("layerdrop: offset is past any UDP payload");
    }
    let window = num(config, "window", usize::MAX)?.unwrap_or(500);
    if !(10..=60_000).contains(&window) {
        return Err("layerdrop: window must be 10..=60000 ms");
    }
    Ok(Conf {
        rate,
        fixed,
        offset: offset as usize,
        window_ns: window * 1_000_000,
    })
}

impl LayerDrop {
    fn fold(&mut self, now: u64) {
        let Some(start) = self.bin_start else {
            self.bin_start = Some(now);
            return;
        };
        let dt = now.saturating_sub(start);
        if dt < TICK_NS {
            return;
        }
        self.bin_start = Some(now);
        let alpha = (dt as f64 / self.window_ns as f64).min(1.0);
        self.weight += (1.0 - self.weight) * alpha;
        let mut sum = 0.0;
        let mut cutoff = 0u8;
        let rate = self.rate.unwrap_or(u64::MAX) as f64;
        let mut fits = true;
        for (l, layer) in self.layers[..self.seen].iter_mut().enumerate() {
            let inst = layer.bin as f64 * 1e9 / dt as f64;
            layer.avg += (inst - layer.avg) * alpha;
            layer.bin = 0;
            sum += layer.avg / self.weight;
            // The base layer always passes; above it, layers while they fit.
            fits = fits && sum <= rate;
            if l > 0 && fits {
                cutoff = l as u8;
            }
        }
        if self.seen > 0 {
            self.cutoff = cutoff;
        }
    }
}

impl Plugin for LayerDrop {
    fn init(config: &str) -> Result<Self, &'static str> {
        let c = parse(config)?;
        Ok(LayerDrop {
            rate: c.rate,
            fixed: c.fixed,
            offset: c.offset,
            window_ns: c.window_ns,
            layers: [Layer::default(); LAYERS],
            seen: 0,
            weight: 0.0,
            bin_start: None,
            cutoff: u8::MAX,
            other: 0,
        })
    }

    fn process_batch(&mut self, cx: &mut Ctx, batch: &mut Batch) {
        if self.rate.is_some() {
            self.fold(cx.now_ns());
        }
        for i in 0..batch.len() {
            if let Some(mut p) = batch.get(i) {
                let v = self.process(cx, &mut p);
                p.set_verdict(v);
            }
        }
    }

    fn process(&mut self, _cx: &mut Ctx, pkt: &mut Packet<'_>) -> Verdict {
        let len = pkt.len() as u64;
        let Some(layer) = pkt.udp_payload().and_then(|p| p.get(self.offset)).copied() else {
            self.other += 1;
            return Verdict::Continue;
        };
        let l = &mut self.layers[layer as usize];
        l.bin += len;
        self.seen = self.seen.max(layer as usize + 1);
        let cutoff = match self.fixed {
            Some(f) => f.min(self.cutoff),
            None => self.cutoff,
        };
        if layer > 0 && layer > cutoff {
            l.dropped += 1;
            Verdict::Drop
        } else {
            l.passed += 1;
            Verdict::Continue
        }
    }

    fn control(&mut self, request: &str, reply: &mut Reply) -> Result<(), ()> {
        if request.trim() == "reset" {
            for l in self.layers.iter_mut() {
                l.passed = 0;
                l.dropped = 0;
            }
            self.other = 0;
            reply.write("ok");
            return Ok(());
        }
        match parse(request) {
            Ok(c) => {
                self.rate = c.rate;
                self.fixed = c.fixed;
                self.offset = c.offset;
                self.window_ns = c.window_ns;
                reply.write("ok");
                Ok(())
            }
            Err(e) => {
                reply.write(e);
                Err(())
            }
        }
    }

    fn report(&self, out: &mut Reply) {
        out.write("{\"rate\":");
        match self.rate {
            Some(r) => out.write_u64(r),
            None => out.write("null"),
        }
        let cutoff = match self.fixed {
            Some(f) => f.min(self.cutoff),
            None => self.cutoff,
        };
        let _ = write!(out, ",\"cutoff\":{},\"layers\":[", cutoff);
        for (i, l) in self.layers[..self.seen].iter().enumerate() {
            let rate = if self.weight > 0.0 { l.avg / self.weight } else { 0.0 };
            let _ = write!(
                out,
                "{}{{\"layer\":{},\"rate\":{},\"passed\":{},\"dropped\":{}}}",
                if i > 0 { "," } else { "" },
                i,
                rate as u64,
                l.passed,
                l.dropped
            );
        }
        let _ = write!(out, "],\"other\":{}}}", self.other);
    }
}

weft_plugin!(LayerDrop);
