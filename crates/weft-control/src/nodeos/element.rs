//! `nodeos-chan` — the data plane of a NodeOS channel, bound on the
//! channel's filter in the channel's domain.
//!
//! * **Configuration:** `chan=N` (the channel handle); everything else
//!   (mode, byte patterns, bucket, layer offset) is handed over by the
//!   NodeOS service through its registry when the instance is made.
//! * **Ports:** one in, one out.
//! * **In-channels:** a packet matching the byte patterns is copied into
//!   the attached application's memif ring and consumed; the ring full →
//!   dropped (`dropped_full`); no application attached → dropped
//!   (`dropped_detached`). Packets not matching the patterns continue.
//!   A batch takes one look at the ring and publishes once.
//! * **Cut-through channels:** a matching packet above the layer cut-off
//!   is dropped (`dropped_layer`), over the bandwidth dropped
//!   (`dropped_bandwidth`), else it continues through the node.
//! * **Handlers:** report — the channel's counters ([`ChanCounters`]);
//!   control `attach` / `detach` (the service, when an application comes
//!   and goes), `layer N` / `layer all` (the cut-off).

use super::pattern::Pattern;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use weft_dataplane::{Args, ClassDoc, Ctx, Element, ElementClass, ElementError, Handler, TokenBucket, Verdict};
use weft_memif::io::ToClient;
use weft_packet::Packet;

/// The class name.
pub const CLASS: &str = "nodeos-chan";
/// Layers counted per cut-through channel (layer bytes above are counted
/// in the last).
pub const LAYERS: usize = 16;

/// What the service hands an instance (at creation) and later its ring.
pub(crate) struct Handoff {
    pub(crate) cut: bool,
    pub(crate) patterns: Vec<Pattern>,
    pub(crate) bucket: Option<TokenBucket>,
    pub(crate) layer_offset: Option<u16>,
    pub(crate) ring: Option<ToClient>,
}

/// Shared between the service and the class factory; locked only when an
/// instance is made or attached, never per packet.
pub(crate) type Registry = Arc<Mutex<HashMap<u64, Handoff>>>;

/// A channel's counters, as its element reports them.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ChanCounters {
    /// Delivered to the ring (in) or passed (cut).
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The ring was full.
    pub dropped_full: u64,
    /// No application attached.
    pub dropped_detached: u64,
    /// Over the bandwidth.
    pub dropped_bandwidth: u64,
    /// Above the layer cut-off.
    pub dropped_layer: u64,
    /// Descriptors refused.
    pub bad_desc: u64,
    /// Offered bytes per layer.
    pub layer_bytes: Vec<u64>,
    /// An application is attached.
    pub attached: bool,
    /// The application broke its ring (the service detaches it).
    pub ring_broken: bool,
}

struct ChanElement {
    cut: bool,
    patterns: Vec<Pattern>,
    bucket: Option<TokenBucket>,
    layer_offset: Option<u16>,
    max_layer: Option<u8>,
    ring: Option<ToClient>,
    registry: Registry,
    chan: u64,
    c: ChanCounters,
    layer_bytes: [u64; LAYERS],
}

const HANDLERS: &[Handler] = &[
    Handler::read("packets", "packets delivered (in) or passed (cut)"),
    Handler::read("dropped_full", "dropped: the application's ring was full"),
    Handler::read("dropped_detached", "dropped: no application attached"),
    Handler::read("dropped_bandwidth", "dropped: over the channel's bandwidth"),
    Handler::read("dropped_layer", "dropped: above the layer cut-off"),
    Handler::write("attach", "take the ring the service registered"),
    Handler::write("detach", "let go of the ring"),
    Handler::write("layer", "`layer N` or `layer all`: the cut-off"),
];

impl ChanElement {
    fn matches(&self, pkt: &Packet) -> bool {
        if self.patterns.is_empty() {
            return true;
        }
        let l3 = pkt.meta.l3 as usize;
        let d = pkt.data();
        self.patterns.iter().all(|p| p.matches(d, l3))
    }

    /// The layer byte of a UDP packet, if it has one.
    fn layer(&self, pkt: &Packet) -> Option<u8> {
        let off = self.layer_offset? as usize;
        let l4 = pkt.meta.l4 as usize;
        if l4 == 0 || pkt.meta.flow.proto != 17 {
            return None;
        }
        pkt.data().get(l4 + 8 + off).copied()
    }

    fn cut_one(&mut self, now_ns: u64, pkt: &Packet) -> Verdict {
        if let Some(l) = self.layer(pkt) {
            self.layer_bytes[(l as usize).min(LAYERS - 1)] += pkt.len() as u64;
            if self.max_layer.is_some_and(|m| l > m) {
                self.c.dropped_layer += 1;
                return Verdict::Drop;
            }
        }
        if let Some(b) = self.bucket.as_mut() {
            if !b.take(now_ns, pkt.len() as u64) {
                self.c.dropped_bandwidth += 1;
                return Verdict::Drop;
            }
        }
        self.c.packets += 1;
        self.c.bytes += pkt.len() as u64;
        Verdict::Continue
    }
}

impl Element for ChanElement {
    fn handlers(&self) -> Vec<Handler> {
        HANDLERS.to_vec()
    }

    fn process(&mut self, cx: &mut Ctx<'_>, pkt: &mut Packet) -> Verdict {
        let mut v = [Verdict::Continue];
        self.process_batch(cx, std::slice::from_mut(pkt), &mut v);
        v[0]
    }

    fn process_batch(&mut self, cx: &mut Ctx<'_>, pkts: &mut [Packet], verdicts: &mut [Verdict]) {
        if self.cut {
            for (p, v) in pkts.iter().zip(verdicts.iter_mut()) {
                if self.matches(p) {
                    *v = self.cut_one(cx.now_ns, p);
                }
            }
            return;
        }
        let Some(ring) = self.ring.as_mut() else {
            for (p, v) in pkts.iter().zip(verdicts.iter_mut()) {
                if self.matches(p) {
                    self.c.dropped_detached += 1;
                    *v = Verdict::Drop;
                }
            }
            return;
        };
        if ring.begin().is_err() {
            // The application moved its ring's head past what the ring
            // holds: stop using it; the service tears the channel's
            // attachment down when it sees `ring_broken`.
            self.ring = None;
            self.c.ring_broken = true;
            self.c.attached = false;
            return self.process_batch(cx, pkts, verdicts);
        }
        for (p, v) in pkts.iter().zip(verdicts.iter_mut()) {
            let patterns_ok = self.patterns.is_empty() || {
                let l3 = p.meta.l3 as usize;
                self.patterns.iter().all(|pt| pt.matches(p.data(), l3))
            };
            if !patterns_ok {
                continue;
            }
            if ring.push(p.data()) {
                self.c.packets += 1;
                self.c.bytes += p.len() as u64;
                *v = Verdict::Consume;
            } else {
                *v = Verdict::Drop;
            }
        }
        ring.flush();
        self.c.dropped_full = ring.ring.counters.full;
        self.c.bad_desc = ring.ring.counters.bad_desc;
    }

    fn control(&mut self, request: &str) -> Result<String, ElementError> {
        let mut w = request.split_whitespace();
        match (w.next(), w.next()) {
            (Some("attach"), None) => {
                let ring = self
                    .registry
                    .lock()
                    .ok()
                    .and_then(|mut r| r.get_mut(&self.chan).and_then(|h| h.ring.take()));
                self.c.attached = ring.is_some();
                self.c.ring_broken = false;
                self.ring = ring;
                Ok(if self.c.attached {
                    "attached"
                } else {
                    "nothing to attach"
                }
                .into())
            }
            (Some("detach"), None) => {
                if let Some(r) = self.ring.take() {
                    self.c.dropped_full = r.ring.counters.full;
                }
                self.c.attached = false;
                Ok("detached".into())
            }
            (Some("layer"), Some("all")) => {
                self.max_layer = None;
                Ok("ok".into())
            }
            (Some("layer"), Some(n)) => {
                self.max_layer = Some(
                    n.parse()
                        .map_err(|_| ElementError::Config(format!("layer {n:?}: 0..=255 or all")))?,
                );
                Ok("ok".into())
            }
            _ => Err(ElementError::Config(format!(
                "{CLASS}: unknown request {request:?} (attach, detach, layer N|all)"
            ))),
        }
    }

    fn report(&self) -> serde_json::Value {
        let mut c = self.c.clone();
        if self.layer_offset.is_some() {
            c.layer_bytes = self.layer_bytes.to_vec();
        }
        serde_json::to_value(c).unwrap_or_default()
    }
}

/// The class, taking each instance's handoff from `registry`.
pub(crate) fn class(registry: Registry) -> ElementClass {
    let doc = ClassDoc {
        summary: "a NodeOS channel's data plane (made by the NodeOS service)".into(),
        config: "chan=N".into(),
        handlers: HANDLERS.to_vec(),
    };
    ElementClass::native(CLASS, doc, move |args: &Args| {
        let chan: u64 = args
            .get_parsed("chan", 0)?
            .ok_or_else(|| ElementError::Config(format!("{CLASS}: chan=N is required")))?;
        let h = registry
            .lock()
            .map_err(|_| ElementError::Config("registry poisoned".into()))?
            .remove(&chan)
            .ok_or_else(|| {
                ElementError::Config(format!(
                    "{CLASS}: no channel {chan} waiting (made by the NodeOS service only)"
                ))
            })?;
        // Keep the entry for the ring that comes at attach time.
        if let Ok(mut r) = registry.lock() {
            r.insert(
                chan,
                Handoff {
                    cut: h.cut,
                    patterns: Vec::new(),
                    bucket: None,
                    layer_offset: None,
                    ring: None,
                },
            );
        }
        Ok(Box::new(ChanElement {
            cut: h.cut,
            patterns: h.patterns,
            bucket: h.bucket,
            layer_offset: h.layer_offset,
            max_layer: None,
            ring: h.ring,
            registry: registry.clone(),
            chan,
            c: ChanCounters::default(),
            layer_bytes: [0; LAYERS],
        }) as Box<dyn Element>)
    })
}
