//! The domain schedulers (Silk §3.2), between the classifier and the
//! chains.
//!
//! **Where packets wait.** A packet whose filter belongs to the root
//! domain runs its chain at once, inside the batch that received it (plain
//! forwarding and the operator's paths: nothing changes for them). A
//! packet whose filter belongs to any other domain joins that domain's
//! queue ([`Node::enqueue`]) with the hook and filter it matched; a full
//! queue, or a buffer the domain's memory cannot hold, drops it there and
//! then (early drop, as Scout paths do), before any of the domain's code
//! runs and without touching anyone else's queue.
//!
//! **What a round does.** After each received batch, and at each tick
//! while packets wait, the node runs one scheduling round over the
//! domains' queues with a CPU budget (its credit, below): deadline
//! domains first (earliest head-of-queue deadline), then priority domains
//! (level 0 first), then fair domains by deficit round robin with CPU time
//! as the quantum (each backlogged fair domain's deficit grows by its
//! weight's part of what the round has left). Serving a domain takes up to
//! one batch of packets of one path from the head of its queue, runs the
//! path's chain, then the rest of the data path from that hook on
//! (routing, FORWARD, POSTROUTING, out), and charges the CPU this took to
//! the domain — and to its ancestors, against whose limits it also counts.
//! A domain at its CPU limit for the round is skipped until the next one.
//!
//! **Plain forwarding's share.** The budget is credit: every received
//! batch adds the time the node spent on it (plain forwarding, the root's
//! chains, classifying and queueing, and the drivers' time between
//! batches) times `share⁻¹ − 1`; time the node spent idle (ticks with
//! nothing received) is added whole.
//! Overshoot is debt, paid back from later credit. So over any busy span
//! the domains together get at most `1 − share` of the node's CPU, and all
//! of it when plain forwarding has nothing to do: a tick with nothing
//! received since the last forgives the debt (plain forwarding, idle,
//! needs no protection) and gives the domains the idle time. Credit is capped at
//! [`MAX_CREDIT_NS`], which bounds how long a round can hold up the next
//! received batch.
//!
//! **Clocks.** The engine reads no clock: a driver that wants CPU charged
//! in real nanoseconds gives one ([`Node::set_cpu_clock`], the runner does).
//! Without one every packet counts a nominal [`NOMINAL_PKT_NS`] per stage
//! (receive, and each instance of a chain) — deterministic, which is what
//! the emulator wants. Tests give a virtual clock their elements advance.

use super::domains::{DomainSlot, Queued, BUFFER_CHARGE};
use super::{DropReason, FilterId, Hook, Node, Pipeline};
use crate::domain::{DomainId, SchedClass};
use crate::element::ClassKind;
use weft_packet::Batch;

/// A CPU clock in nanoseconds for charging domains
/// ([`Node::set_cpu_clock`]).
pub type CpuClock = Box<dyn FnMut() -> u64 + Send>;

/// Most packets one service of a domain takes from its queue: the
/// receive batch size, so a domain's chain sees batches as plain paths do.
pub const SERVE_BATCH: usize = 32;

/// Most CPU credit the domains may bank, nanoseconds: a round never holds
/// up the next received batch longer than about this (plus one batch of a
/// domain's chain). 100 µs is ~3 receive batches of 64-byte packets at
/// the rates `weft bench` measures here.
pub const MAX_CREDIT_NS: i64 = 100_000;

/// Nominal cost of one packet at one stage when the node has no CPU clock.
pub const NOMINAL_PKT_NS: u64 = 100;

/// Credit a tick adds without a CPU clock (the node cannot tell idle time).
pub const NOMINAL_IDLE_NS: i64 = 20_000;

/// Fair passes per round: deficits are refilled at most this often, so a
/// round ends even when every domain's batches cost more than expected.
const FAIR_PASSES: usize = 4;

/// The scheduler's state on the node.
pub(super) struct Sched {
    /// Any domain besides the root exists: only then does a batch read the
    /// CPU clock or look at queues.
    pub(super) on: bool,
    pub(super) clock: Option<CpuClock>,
    /// Plain forwarding's (the root's) share, per mille.
    pub(super) root_share: u32,
    /// The wasm host's epoch period, ns (0: unknown; epoch limits unused).
    pub(super) epoch_ns: u64,
    /// CPU the domains may use now, ns (negative: debt).
    pub(super) credit: i64,
    /// Packets waiting in all queues.
    pub(super) queued: u32,
    /// Clock when the node last finished a batch or a round.
    pub(super) mark: u64,
    /// Rounds run (a domain's CPU-limit count is once per round).
    pub(super) rounds: u64,
    /// A batch was received since the last tick.
    pub(super) busy: bool,
    pub(super) batch: Batch,
}

impl Default for Sched {
    fn default() -> Self {
        Sched {
            on: false,
            clock: None,
            root_share: 500,
            epoch_ns: 0,
            credit: 0,
            queued: 0,
            mark: 0,
            rounds: 0,
            busy: false,
            batch: Vec::with_capacity(SERVE_BATCH),
        }
    }
}

impl Sched {
    #[inline]
    pub(super) fn now(&mut self) -> Option<u64> {
        self.clock.as_mut().map(|c| c())
    }

    fn add_credit(&mut self, ns: i64) {
        self.credit = self.credit.saturating_add(ns).min(MAX_CREDIT_NS);
    }
}

/// The CPU limit of one domain for one round, ns.
fn cpu_cap(d: &DomainSlot, epoch_ns: u64) -> Option<u64> {
    let epochs = match (d.limits.wasm_epochs, epoch_ns) {
        (Some(e), ns) if ns > 0 => Some(e.saturating_mul(ns)),
        _ => None,
    };
    match (d.limits.cpu_ns, epochs) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Node {
    /// Give the node a CPU clock in nanoseconds (monotonic; a thread CPU
    /// clock or a wall clock) to charge domains real time with; see
    /// `node/sched.rs`. Without one, costs are nominal.
    pub fn set_cpu_clock(&mut self, clock: CpuClock) {
        self.sched.clock = Some(clock);
        self.sched.mark = self.sched.now().unwrap_or(0);
    }

    /// Plain forwarding's share of the CPU when domains are busy, per
    /// mille (default 500; 1–1000). The domains together get the rest,
    /// and everything plain forwarding leaves idle.
    pub fn set_root_share(&mut self, permille: u32) -> Result<(), super::NodeError> {
        if !(1..=1000).contains(&permille) {
            return Err(super::NodeError::Domain(crate::domain::DomainError::Invalid(format!(
                "root share {permille}‰: give 1 to 1000"
            ))));
        }
        self.sched.root_share = permille;
        Ok(())
    }

    /// Plain forwarding's share, per mille.
    pub fn root_share(&self) -> u32 {
        self.sched.root_share
    }

    /// The WebAssembly host's epoch period, ns: converts the domains'
    /// `wasm_epochs` limits and charges.
    pub fn set_epoch_ns(&mut self, ns: u64) {
        self.sched.epoch_ns = ns;
    }

    /// Packets waiting in domains' queues.
    pub fn domain_queued(&self) -> u32 {
        self.sched.queued
    }

    pub(super) fn sched_refresh(&mut self) {
        self.sched.on = self.domains.iter().skip(1).any(|d| d.is_some());
    }

    /// Domain packets that matched a path: into the domain's queue, or
    /// dropped early. Allocation-free: queues are sized when made.
    pub(super) fn enqueue(&mut self, d: DomainId, hook: Hook, filter: FilterId, batch: &mut Batch) {
        for pkt in batch.drain(..) {
            let Some(Some(slot)) = self.domains.get_mut(d.0 as usize) else {
                self.drop_pkt(DropReason::DomainPathGone, pkt);
                continue;
            };
            if slot.queue.len() >= slot.limits.queue_len as usize {
                slot.counters.dropped_full += 1;
                self.drop_pkt(DropReason::DomainQueueFull, pkt);
                continue;
            }
            if self.charge_buffers(d, BUFFER_CHARGE).is_err() {
                if let Some(Some(slot)) = self.domains.get_mut(d.0 as usize) {
                    slot.counters.dropped_memory += 1;
                }
                self.drop_pkt(DropReason::DomainMemory, pkt);
                continue;
            }
            if let Some(Some(slot)) = self.domains.get_mut(d.0 as usize) {
                slot.queue.push_back(Queued { hook, filter, pkt });
                slot.counters.enqueued += 1;
                self.sched.queued += 1;
            }
        }
    }

    /// At the start of a received batch: the clock, when domains exist.
    #[inline]
    pub(super) fn sched_begin(&mut self) -> u64 {
        if !self.sched.on {
            return 0;
        }
        let t = self.sched.now().unwrap_or(0);
        // Time since the last batch or round went to the drivers (receive,
        // send): plain forwarding's work, credited at the share.
        let gap = t.saturating_sub(self.sched.mark);
        self.sched.add_credit(self.at_share(gap));
        self.sched.busy = true;
        t
    }

    /// At the end of a received batch of `n` packets: credit the domains
    /// their share of the time it took, and run a round.
    pub(super) fn sched_after_batch(&mut self, pl: &Pipeline, t0: u64, n: usize) {
        let plain = match self.sched.now() {
            Some(t) => t.saturating_sub(t0),
            None => n as u64 * NOMINAL_PKT_NS,
        };
        let credit = self.at_share(plain);
        self.sched.add_credit(credit);
        self.serve_domains(pl);
    }

    /// What `ns` of plain forwarding's time earns the domains.
    fn at_share(&self, ns: u64) -> i64 {
        let s = self.sched.root_share as u64;
        (ns.saturating_mul(1000 - s) / s).min(i64::MAX as u64) as i64
    }

    /// At a tick: the idle time since the last batch or round is credit
    /// (nominal without a clock); run a round.
    pub(super) fn sched_tick(&mut self, pl: &Pipeline) {
        if !self.sched.on {
            return;
        }
        let gap = match self.sched.now() {
            Some(t) => t.saturating_sub(self.sched.mark).min(i64::MAX as u64) as i64,
            None => NOMINAL_IDLE_NS,
        };
        if std::mem::take(&mut self.sched.busy) {
            // Batches came since the last tick: the gap was the drivers'.
            let c = self.at_share(gap as u64);
            self.sched.add_credit(c);
        } else {
            // Nothing was received: plain forwarding is idle and needs no
            // protection, so the domains' debt is forgiven and the idle
            // time is theirs (work conserving).
            self.sched.credit = self.sched.credit.max(0);
            self.sched.add_credit(gap.max(1));
        }
        self.serve_domains(pl);
    }

    /// One scheduling round (see the module documentation).
    fn serve_domains(&mut self, pl: &Pipeline) {
        if self.sched.queued > 0 && self.sched.credit > 0 {
            self.sched.rounds += 1;
            for d in self.domains.iter_mut().flatten() {
                d.round_ns = 0;
            }
            let mut left = self.sched.credit;
            // Deadline, then priority: pick the most urgent servable domain
            // each time.
            while left > 0 {
                let Some(d) = self.pick_urgent() else { break };
                left -= self.serve_one(pl, d, left);
            }
            if left > 0 {
                left = self.serve_fair(pl, left);
            }
            self.sched.credit = left.min(self.sched.credit);
            self.output_pending(pl);
        }
        self.sched.mark = self.sched.now().unwrap_or(0);
    }

    /// CPU `d` may still use this round under its and its ancestors'
    /// limits, ns (`None`: no limit).
    fn cap_left(&self, d: DomainId) -> Option<u64> {
        let mut left: Option<u64> = None;
        let mut cur = Some(d);
        while let Some(c) = cur {
            let Some(Some(slot)) = self.domains.get(c.0 as usize) else {
                return Some(0);
            };
            if let Some(cap) = cpu_cap(slot, self.sched.epoch_ns) {
                let l = cap.saturating_sub(slot.round_ns);
                left = Some(left.map_or(l, |x| x.min(l)));
            }
            cur = slot.parent;
        }
        left
    }

    /// Whether `d` or an ancestor has used its CPU limit this round.
    fn capped(&self, d: DomainId) -> bool {
        self.cap_left(d) == Some(0)
    }

    /// A backlogged domain may be served now: not capped (a capped one is
    /// counted once per round).
    fn servable(&mut self, d: DomainId) -> bool {
        if !self.capped(d) {
            return true;
        }
        let rounds = self.sched.rounds;
        if let Some(Some(slot)) = self.domains.get_mut(d.0 as usize) {
            if slot.limited_round != rounds {
                slot.limited_round = rounds;
                slot.counters.cpu_limited += 1;
            }
        }
        false
    }

    /// The deadline domain whose head packet is due first, else the
    /// highest-priority backlogged domain.
    fn pick_urgent(&mut self) -> Option<DomainId> {
        let mut best: Option<(u8, u64, DomainId)> = None;
        for i in 1..self.domains.len() {
            let Some(slot) = self.domains[i].as_ref() else { continue };
            let Some(head) = slot.queue.front() else { continue };
            let key = match slot.class {
                SchedClass::Deadline { deadline_ns } => (0u8, head.pkt.meta.rx_ns.saturating_add(deadline_ns)),
                SchedClass::Priority { level } => (1u8, level as u64),
                SchedClass::Fair { .. } => continue,
            };
            let id = DomainId(i as u32);
            if best.is_some_and(|(c, k, _)| (c, k) <= key) || !self.servable(id) {
                continue;
            }
            best = Some((key.0, key.1, id));
        }
        best.map(|(_, _, d)| d)
    }

    /// Deficit round robin over the backlogged fair domains with `left`
    /// ns; returns what is left.
    fn serve_fair(&mut self, pl: &Pipeline, mut left: i64) -> i64 {
        for _ in 0..FAIR_PASSES {
            let mut weights: u64 = 0;
            for i in 1..self.domains.len() {
                let id = DomainId(i as u32);
                let Some(slot) = self.domains[i].as_mut() else { continue };
                if let SchedClass::Fair { weight } = slot.class {
                    if slot.queue.is_empty() {
                        // DRR: an idle domain banks nothing.
                        slot.deficit = slot.deficit.min(0);
                    } else if !self.capped(id) {
                        weights += weight as u64;
                    }
                }
            }
            if weights == 0 || left <= 0 {
                break;
            }
            let round = left;
            for i in 1..self.domains.len() {
                let id = DomainId(i as u32);
                let weight = match self.domains[i].as_ref() {
                    Some(s) if !s.queue.is_empty() => match s.class {
                        SchedClass::Fair { weight } => weight as i64,
                        _ => continue,
                    },
                    _ => continue,
                };
                if !self.servable(id) {
                    continue;
                }
                let quantum = (round as i128 * weight as i128 / weights as i128) as i64;
                if let Some(slot) = self.domains[i].as_mut() {
                    slot.deficit = slot.deficit.saturating_add(quantum.max(1));
                }
                while left > 0 {
                    let deficit = match self.domains[i].as_ref() {
                        Some(s) if !s.queue.is_empty() && s.deficit > 0 => s.deficit,
                        _ => break,
                    };
                    if self.capped(id) {
                        break;
                    }
                    let used = self.serve_one(pl, id, deficit.min(left));
                    left -= used;
                    if let Some(slot) = self.domains[i].as_mut() {
                        slot.deficit -= used;
                    }
                }
            }
        }
        left
    }

    /// Serve one batch of one path from the head of `d`'s queue with about
    /// `allowance` ns; returns the ns charged.
    fn serve_one(&mut self, pl: &Pipeline, d: DomainId, allowance: i64) -> i64 {
        let allowance = match self.cap_left(d) {
            Some(c) => allowance.min(c.min(i64::MAX as u64) as i64),
            None => allowance,
        };
        let mut batch = std::mem::take(&mut self.sched.batch);
        let Some(Some(slot)) = self.domains.get_mut(d.0 as usize) else {
            self.sched.batch = batch;
            return 0;
        };
        let Some(head) = slot.queue.front() else {
            self.sched.batch = batch;
            return 0;
        };
        let (hook, filter) = (head.hook, head.filter);
        // As many packets as the allowance likely pays for, from what this
        // domain's packets cost lately (one, to learn it, the first time):
        // a small allowance overshoots by one packet, not a batch.
        let per = match slot.avg_pkt_ns {
            0 => u64::MAX,
            a => a,
        };
        let n = ((allowance.max(0) as u64 / per) as usize).clamp(1, SERVE_BATCH);
        while batch.len() < n {
            match slot.queue.front() {
                Some(q) if q.hook == hook && q.filter == filter => {}
                _ => break,
            }
            if let Some(q) = slot.queue.pop_front() {
                batch.push(q.pkt);
            }
        }
        let taken = batch.len();
        self.sched.queued -= taken as u32;
        self.release_buffers(d, BUFFER_CHARGE * taken as u64);
        let table = pl.hook(hook);
        let Some(&r) = pl.filter_rule.get(&filter) else {
            for pkt in batch.drain(..) {
                self.drop_pkt(DropReason::DomainPathGone, pkt);
            }
            self.sched.batch = batch;
            return 0;
        };
        let r = r as usize;
        let chain = table.rules[r].1.clone();
        let steer = table.steer[r];
        let wasm = chain.iter().any(|i| {
            matches!(
                self.instances.get(i.0 as usize),
                Some(Some(x)) if matches!(x.code, ClassKind::Wasm { .. })
            )
        });
        let t0 = self.sched.now();
        match steer {
            0 => self.run_chain(&chain, &mut batch),
            label => self.run_steering(pl, &chain, label, &mut batch),
        }
        self.resume(hook, pl, &mut batch);
        let used = match (t0, self.sched.now()) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => NOMINAL_PKT_NS * taken as u64 * (chain.len() as u64).max(1),
        };
        let epochs = if wasm && self.sched.epoch_ns > 0 {
            used / self.sched.epoch_ns
        } else {
            0
        };
        let mut cur = Some(d);
        while let Some(c) = cur {
            let Some(Some(slot)) = self.domains.get_mut(c.0 as usize) else {
                break;
            };
            slot.round_ns += used;
            if c == d {
                slot.counters.served += taken as u64;
                slot.counters.batches += 1;
                slot.counters.cpu_ns += used;
                slot.counters.wasm_epochs += epochs;
                let per = used / taken.max(1) as u64;
                slot.avg_pkt_ns = if slot.avg_pkt_ns == 0 {
                    per
                } else {
                    (slot.avg_pkt_ns * 7 + per) / 8
                };
            }
            cur = slot.parent;
        }
        self.sched.batch = batch;
        used.min(i64::MAX as u64) as i64
    }

    /// The data path after `hook` for packets whose chain ran in a round.
    fn resume(&mut self, hook: Hook, pl: &Pipeline, batch: &mut Batch) {
        if batch.is_empty() {
            return;
        }
        match hook {
            Hook::Prerouting => {
                let mut local = std::mem::take(&mut self.s_local);
                let mut fwd = std::mem::take(&mut self.s_fwd);
                let direct = Self::direct(pl);
                for pkt in batch.drain(..) {
                    self.dispatch(pl, pkt, direct, &mut local, &mut fwd);
                }
                self.finish_input(pl, &mut local, &mut fwd);
                self.s_local = local;
                self.s_fwd = fwd;
            }
            Hook::Input => {
                for pkt in batch.drain(..) {
                    self.deliver_local(pkt);
                }
            }
            Hook::Forward => self.post_and_send(pl, batch),
            Hook::Output => {
                let mut send = std::mem::take(&mut self.s_keep);
                for mut pkt in batch.drain(..) {
                    match self.route(pl, &mut pkt) {
                        Ok(crate::fib::RouteKind::Local) => self.deliver_local(pkt),
                        Ok(_) => send.push(pkt),
                        Err(e) => self.route_failed(e, pkt),
                    }
                }
                self.post_and_send(pl, &mut send);
                self.s_keep = send;
            }
            Hook::Postrouting => {
                for pkt in batch.drain(..) {
                    self.resolve_and_send(pkt);
                }
            }
        }
    }
}
