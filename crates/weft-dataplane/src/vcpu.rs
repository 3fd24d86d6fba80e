//! A virtual CPU for the domain schedulers: a node run in **virtual CPU
//! time** — a clock that only work advances — fed by sources at fixed
//! rates through a bounded receive ring, as a NIC's. The isolation tests
//! (`tests/isolation.rs`) and `weft demo`'s domains scene use it, so what
//! they show is exact and the same on every run and every machine.
//!
//! Costs are modelled by the [`COST_CLASS`] element (`ns=N`: it advances
//! the clock by N ns per packet); the node charges domains from the same
//! clock ([`VirtualCpu::attach`]). Time the node spends waiting for
//! packets passes in steps of at most 1 µs, as a real node's busy loop
//! would spin, so a node with queued work gets its idle time.

use crate::element::{Args, ClassDoc, Ctx, Element, ElementClass, Verdict};
use crate::node::Node;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use weft_packet::view::parse;
use weft_packet::{Batch, Packet, PortId};

/// The name of the cost element class.
pub const COST_CLASS: &str = "cost";

/// How many frames the receive ring holds (a NIC ring of this size).
pub const RING: usize = 1024;

/// Most time that passes at once while the ring is empty, ns.
const SPIN_NS: u64 = 1_000;

/// Advances the virtual clock by `ns` per packet.
struct Cost {
    clock: Arc<AtomicU64>,
    ns: u64,
}

impl Element for Cost {
    fn process(&mut self, _cx: &mut Ctx<'_>, _p: &mut Packet) -> Verdict {
        self.clock.fetch_add(self.ns, Ordering::Relaxed);
        Verdict::Continue
    }
}

/// The virtual CPU: its clock, shared by the node and the cost elements.
#[derive(Clone, Debug, Default)]
pub struct VirtualCpu {
    clock: Arc<AtomicU64>,
}

impl VirtualCpu {
    /// A CPU at time 0.
    pub fn new() -> VirtualCpu {
        VirtualCpu::default()
    }

    /// Now, ns.
    pub fn now(&self) -> u64 {
        self.clock.load(Ordering::Relaxed)
    }

    /// Let `ns` pass (idle).
    pub fn advance(&self, ns: u64) {
        self.clock.fetch_add(ns, Ordering::Relaxed);
    }

    /// Register the [`COST_CLASS`] class on `node` and make this CPU's
    /// clock the node's CPU clock.
    pub fn attach(&self, node: &mut Node) {
        let c = self.clock.clone();
        node.upsert_class(ElementClass::native(
            COST_CLASS,
            ClassDoc {
                summary: "costs `ns` of virtual CPU per packet (the virtual CPU's model of work)".into(),
                ..Default::default()
            },
            move |a: &Args| {
                Ok(Box::new(Cost {
                    clock: c.clone(),
                    ns: a.get_parsed("ns", 0)?.unwrap_or(0),
                }))
            },
        ));
        let c = self.clock.clone();
        node.set_cpu_clock(Box::new(move || c.load(Ordering::Relaxed)));
    }
}

/// Frames arriving at a fixed interval.
#[derive(Clone, Debug)]
pub struct Source {
    /// What this source is called in a [`Tally`].
    pub class: usize,
    /// Nanoseconds between frames.
    pub interval: u64,
    /// The frame.
    pub frame: Vec<u8>,
    next: u64,
}

impl Source {
    /// A source of `frame` every `interval` ns, counted as `class`.
    pub fn new(class: usize, interval: u64, frame: Vec<u8>) -> Source {
        Source {
            class,
            interval: interval.max(1),
            frame,
            next: 0,
        }
    }
}

/// What a run offered, lost at the ring and delivered, by source class.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Frames the sources offered.
    pub offered: Vec<u64>,
    /// Frames lost because the ring was full.
    pub ring_drops: Vec<u64>,
    /// Frames that left the node on the watched port.
    pub delivered: Vec<u64>,
}

/// Tells a delivered frame's source class apart: frame → class index.
pub type Classify<'a> = Box<dyn Fn(&[u8]) -> Option<usize> + 'a>;

/// A node on a virtual CPU with a receive ring on one port.
pub struct Bench<'a> {
    /// The node.
    pub node: &'a mut Node,
    /// Its CPU.
    pub cpu: VirtualCpu,
    /// The port frames arrive on.
    pub rx_port: PortId,
    /// The port whose frames are counted as delivered.
    pub tx_port: PortId,
    /// How a delivered frame is told apart: frame → source class.
    pub classify: Classify<'a>,
    ring: VecDeque<(usize, Packet)>,
    out: Batch,
}

impl<'a> Bench<'a> {
    /// A bench over `node` (already [`VirtualCpu::attach`]ed to `cpu`).
    pub fn new(
        node: &'a mut Node,
        cpu: VirtualCpu,
        rx_port: PortId,
        tx_port: PortId,
        classify: impl Fn(&[u8]) -> Option<usize> + 'a,
    ) -> Bench<'a> {
        Bench {
            node,
            cpu,
            rx_port,
            tx_port,
            classify: Box::new(classify),
            ring: VecDeque::new(),
            out: Batch::new(),
        }
    }

    /// Run for `span` ns of virtual time with arrivals from `sources`,
    /// then `drain` ns more without arrivals. As a runner does: receive up
    /// to 32 frames from the ring, tick when the node says; with nothing
    /// to receive, let time pass (at most 1 µs at once) and tick.
    pub fn run(&mut self, sources: &mut [Source], span: u64, drain: u64) -> Tally {
        let classes = sources.iter().map(|s| s.class + 1).max().unwrap_or(0).max(1);
        let mut t = Tally {
            offered: vec![0; classes],
            ring_drops: vec![0; classes],
            delivered: vec![0; classes],
        };
        let start = self.cpu.now();
        let stop = start + span;
        for s in sources.iter_mut() {
            s.next = start;
        }
        loop {
            let now = self.cpu.now();
            if now >= stop + drain {
                break;
            }
            // Arrivals up to now, in time order: a full ring drops whoever
            // comes next.
            while let Some(s) = sources
                .iter_mut()
                .filter(|s| s.next <= now && s.next < stop)
                .min_by_key(|s| s.next)
            {
                t.offered[s.class] += 1;
                if self.ring.len() < RING {
                    self.ring.push_back((s.class, Packet::from_bytes(&s.frame)));
                } else {
                    t.ring_drops[s.class] += 1;
                }
                s.next += s.interval;
            }
            if self.ring.is_empty() {
                let next = sources
                    .iter()
                    .map(|s| s.next)
                    .filter(|x| *x < stop)
                    .min()
                    .unwrap_or(stop + drain);
                let to = next.min(now + SPIN_NS).max(now + 1);
                self.cpu.advance(to - now);
                self.node.tick(self.cpu.now());
            } else {
                let n = self.ring.len().min(32);
                let mut b: Batch = self.ring.drain(..n).map(|(_, p)| p).collect();
                self.node.receive(now, self.rx_port, &mut b);
                if self.node.poll_timeout().is_some_and(|d| d <= now) {
                    self.node.tick(self.cpu.now());
                }
            }
            self.node.take_tx(self.tx_port, &mut self.out);
            for p in self.out.drain(..) {
                if let Some(c) = (self.classify)(p.data()) {
                    if let Some(d) = t.delivered.get_mut(c) {
                        *d += 1;
                    }
                }
                self.node.recycle(p);
            }
        }
        t
    }
}

/// The UDP destination port of a frame (a [`Bench`] classifier's usual
/// first step).
pub fn udp_dport(frame: &[u8]) -> Option<u16> {
    let h = parse(frame).ok()?;
    matches!(h.l4, weft_packet::L4::Udp { .. }).then_some(h.flow.dport)
}
