//! The PBR agent: one per node, sans-IO (quinn-proto's shape).
//!
//! Inputs: [`Agent::handle_datagram`], [`Agent::handle_timeout`] and the
//! commands [`Agent::create`], [`Agent::release`],
//! [`Agent::request_status`]. Outputs: [`Agent::poll_transmit`] (UDP
//! datagrams to port [`PBR_PORT`](crate::PBR_PORT)), [`Agent::poll_timeout`] (when to call
//! `handle_timeout` next) and [`Agent::poll_event`]. The node is reached
//! through the [`Env`] trait, passed into every call that may change
//! forwarding state.
//!
//! State is per **visit**, keyed by (path id, hop index): a node holding
//! several visits of one walk keeps them apart, so a walk may enter a node
//! any number of times, through any interface.
//!
//! One room per job, each adding to [`Agent`] (whose state is here):
//!
//! * `env` — what the agent asks of the node: [`Env`] and its types;
//! * `outputs` — what comes out: [`Transmit`], [`Event`], [`PathSummary`],
//!   [`Counters`], and the `poll_*` calls that drain them;
//! * `delivery` — reliable hop-by-hop delivery: sequence numbers, ACKs,
//!   duplicate suppression, retransmission and what to do when a
//!   neighbour never answers;
//! * `commands` — what the initiator asks: [`CreateRequest`],
//!   [`PbrError`], create, release, request a status;
//! * `setup` — the two phases at one visit: reserve and forward the
//!   CREATE, commit and send the COMMIT upstream, or fail and tell
//!   upstream;
//! * `soft_state` — refreshes from the initiator and expiry elsewhere;
//! * `status` — STATUS requests and replies, one record per visit.
//!
//! This module reads each message and hands it to the room that handles
//! it ([`Agent::handle_datagram`]), and runs the timers.

mod commands;
mod delivery;
mod env;
mod outputs;
mod setup;
mod soft_state;
mod status;

pub use commands::{CreateRequest, PbrError};
pub use env::{Egress, Env, NextHop, NullEnv, OutLabel, Refusal, VisitInstall, VisitKey, VisitRequest};
pub use outputs::{Counters, Event, PathSummary, Phase, Transmit, VisitStatus};

use crate::wire::{Body, HopError, Message, PathId, Reason, HASH_LEN, SECRET_LEN};
use delivery::{OnFail, Outgoing, Pending};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;

/// Agent settings. [`AgentConfig::new`] gives the documented defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentConfig {
    /// The node's own addresses (a hop is "here" when its address is one
    /// of them).
    pub addresses: Vec<IpAddr>,
    /// Longest walk accepted (more: refused with `hop-limit`). 64: far
    /// beyond any walk through a handful of processing stages, and it
    /// bounds a CREATE to about 1.2 KB of route even in IPv6.
    pub max_hops: usize,
    /// First retransmission timeout, ms (doubles per try). 200 ms: a few
    /// round trips on the slowest links the emulator models.
    pub retransmit_ms: u64,
    /// Transmissions before a neighbour counts as down (5: gives up after
    /// 200 + 400 + 800 + 1600 + 3200 = 6.2 s).
    pub retransmit_tries: u32,
    /// State lives for `lifetime_factor` refresh intervals after the last
    /// refresh (K = 3, as RSVP: one lost refresh never kills a path).
    pub lifetime_factor: u32,
    /// How long a received (peer, sequence number) is remembered to drop
    /// duplicates, ms; longer than the whole retransmission span.
    pub dedupe_ms: u64,
    /// Most (peer, sequence number) pairs remembered (bounds memory under a
    /// flood; the oldest are forgotten first).
    pub dedupe_max: usize,
    /// Largest STATUS record (JSON text) a visit adds, octets: 64 visits of
    /// 512 octets still fit one datagram.
    pub max_status_len: usize,
    /// First sequence number (a driver seeds it at random so that a
    /// restarted agent is not taken for a duplicate).
    pub initial_seq: u32,
    /// First path number (seeded at random for the same reason).
    pub first_path_number: u32,
}

impl AgentConfig {
    /// Defaults for a node with these addresses.
    pub fn new(addresses: Vec<IpAddr>) -> AgentConfig {
        AgentConfig {
            addresses,
            max_hops: 64,
            retransmit_ms: 200,
            retransmit_tries: 5,
            lifetime_factor: 3,
            dedupe_ms: 30_000,
            dedupe_max: 65_536,
            max_status_len: 512,
            initial_seq: 1,
            first_path_number: 1,
        }
    }
}

#[derive(Clone, Debug)]
struct Visit {
    req: VisitRequest,
    /// This visit's address (as listed in the walk; messages upstream are
    /// sent from it).
    local: IpAddr,
    phase: Phase,
    in_label: Option<u32>,
    out_label: Option<u32>,
    auth: [u8; HASH_LEN],
    refresh_ms: u64,
    /// `u64::MAX`: never (the initiator, once up).
    expires: u64,
    /// A commit held until [`Env::ready`] (its out label).
    waiting: Option<OutLabel>,
    /// PATH_MTU from the next visit's COMMIT.
    down_mtu: Option<u16>,
    /// This visit's, once committed ([`Env::visit_mtu`]).
    mtu: Option<u16>,
}

#[derive(Clone, Debug)]
struct Initiated {
    secret: [u8; SECRET_LEN],
    up: bool,
    refresh_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Retransmit(u32),
    Expire(VisitKey),
    Refresh(PathId),
}

/// The PBR protocol of one node. See the module docs.
#[derive(Debug)]
pub struct Agent {
    cfg: AgentConfig,
    visits: HashMap<VisitKey, Visit>,
    initiated: HashMap<PathId, Initiated>,
    next_number: u32,
    next_seq: u32,
    pending: HashMap<u32, Pending>,
    seen: HashMap<(IpAddr, u32), u64>,
    seen_order: VecDeque<(u64, IpAddr, u32)>,
    /// Lazily cancelled: a timer whose condition no longer holds is
    /// dropped when it fires.
    timers: BTreeSet<(u64, Timer)>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    counters: Counters,
}

fn sha256(b: &[u8]) -> [u8; HASH_LEN] {
    let d = ring::digest::digest(&ring::digest::SHA256, b);
    let mut out = [0u8; HASH_LEN];
    out.copy_from_slice(d.as_ref());
    out
}

impl Agent {
    /// An agent with no paths.
    pub fn new(cfg: AgentConfig) -> Agent {
        Agent {
            next_number: cfg.first_path_number,
            next_seq: cfg.initial_seq,
            cfg,
            visits: HashMap::new(),
            initiated: HashMap::new(),
            pending: HashMap::new(),
            seen: HashMap::new(),
            seen_order: VecDeque::new(),
            timers: BTreeSet::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            counters: Counters::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &AgentConfig {
        &self.cfg
    }

    /// Counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Visits held here (initiated paths are their hop 0), sorted.
    pub fn paths(&self) -> Vec<PathSummary> {
        let mut v: Vec<PathSummary> = self
            .visits
            .iter()
            .map(|(k, v)| PathSummary {
                key: *k,
                hop_count: v.req.hop_count,
                initiator: k.hop == 0,
                phase: v.phase,
                in_label: v.in_label,
                out_label: v.out_label,
                prev: v.req.prev,
                next: v.req.next.map(|n| n.addr),
                plugins: v.req.plugins.clone(),
                expires_ms: (v.expires != u64::MAX).then_some(v.expires),
                mtu: v.mtu,
            })
            .collect();
        v.sort_by_key(|s| s.key);
        v
    }

    /// Number of visits held here.
    pub fn visit_count(&self) -> usize {
        self.visits.len()
    }

    /// Messages waiting for an acknowledgement.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    fn is_local(&self, a: IpAddr) -> bool {
        self.cfg.addresses.contains(&a)
    }

    fn lifetime(&self, refresh_ms: u64) -> u64 {
        refresh_ms.saturating_mul(self.cfg.lifetime_factor as u64)
    }

    /// A datagram arrived on the PBR port from `src` to `dst` (one of this
    /// node's addresses). Never panics; bad input is counted.
    pub fn handle_datagram(&mut self, now_ms: u64, src: IpAddr, dst: IpAddr, payload: &[u8], env: &mut dyn Env) {
        self.counters.received += 1;
        self.forget_seen(now_ms);
        let (m, unknown) = match Message::parse_counting(payload) {
            Ok(x) => x,
            Err(e) => {
                *self.counters.malformed.entry(e.reason().to_string()).or_default() += 1;
                // Acknowledge what has a readable header, so that the sender
                // does not retry a message that can never parse, and tell
                // the sender of a bad CREATE why.
                if let Some(p) = crate::wire::peek(payload) {
                    if p.msg_type == crate::wire::msg::ACK {
                        return;
                    }
                    self.send_ack(src, dst, p.seq);
                    if !self.remember(now_ms, src, p.seq) {
                        return;
                    }
                    if let (crate::wire::msg::CREATE, Some(path), Some(hop)) = (p.msg_type, p.path, p.hop) {
                        if hop > 0 {
                            let error = HopError {
                                hop,
                                address: dst,
                                reason: Reason::BadMessage,
                                text: e.to_string(),
                            };
                            self.counters.refused += 1;
                            self.send(now_ms, Outgoing::new(src, dst, Body::Refuse { path, hop, error }));
                        }
                    }
                }
                return;
            }
        };
        self.counters.unknown_objects += unknown as u64;
        if let Body::Ack = m.body {
            match self.pending.get(&m.seq) {
                Some(p) if p.dst == src => {
                    self.pending.remove(&m.seq);
                }
                _ => self.counters.stray_acks += 1,
            }
            return;
        }
        self.send_ack(src, dst, m.seq);
        if !self.remember(now_ms, src, m.seq) {
            self.counters.duplicates += 1;
            return;
        }
        self.dispatch(now_ms, src, dst, m, env);
    }

    /// Time passed: retransmit, expire state, refresh initiated paths.
    pub fn handle_timeout(&mut self, now_ms: u64, env: &mut dyn Env) {
        self.forget_seen(now_ms);
        while let Some(&(t, timer)) = self.timers.first() {
            if t > now_ms {
                break;
            }
            self.timers.pop_first();
            match timer {
                Timer::Retransmit(seq) => self.retransmit(now_ms, seq, env),
                Timer::Expire(key) => self.expire(now_ms, key, env),
                Timer::Refresh(path) => self.refresh(now_ms, path),
            }
        }
    }

    /// A message that parsed and is new (not an ACK, not a duplicate):
    /// hand it to the room that handles it — setup, delivery, soft state,
    /// release or status.
    fn dispatch(&mut self, now: u64, src: IpAddr, dst: IpAddr, m: Message, env: &mut dyn Env) {
        match m.body {
            Body::Create(c) => {
                let hop = c.route.current;
                let path = c.path;
                if hop == 0 {
                    self.counters.bad_message += 1;
                    return;
                }
                if let Err(error) = self.accept_create(now, Some(src), c, m.forward, env) {
                    self.counters.refused += 1;
                    self.send(now, Outgoing::new(src, dst, Body::Refuse { path, hop, error }));
                }
            }
            Body::Commit { path, hop, label, mtu } => {
                let Some(key) = self.upstream_visit(path, hop, src) else {
                    return;
                };
                if let Some(v) = self.visits.get_mut(&key).filter(|v| v.phase == Phase::Reserved) {
                    v.down_mtu = mtu;
                    self.commit_visit(now, key, OutLabel::Label(label), env);
                }
            }
            Body::Refuse { path, hop, error } => {
                let Some(key) = self.upstream_visit(path, hop, src) else {
                    return;
                };
                self.fail_visit(now, key, error, env);
            }
            Body::PathDown { path, hop, error } => {
                let Some(key) = self.upstream_visit(path, hop, src) else {
                    return;
                };
                self.fail_visit(now, key, error, env);
            }
            Body::Release { path, hop, secret } => {
                let key = VisitKey { path, hop };
                if hop == 0 {
                    self.counters.bad_message += 1;
                    return;
                }
                let Some(v) = self.visits.get(&key) else {
                    self.counters.unknown_visit += 1;
                    return;
                };
                if sha256(&secret) != v.auth {
                    self.counters.forged_release += 1;
                    return;
                }
                let next = v.req.next;
                self.visits.remove(&key);
                env.release(key);
                if let Some(n) = next {
                    self.send(
                        now,
                        Outgoing::new(
                            n.addr,
                            n.egress.local,
                            Body::Release {
                                path,
                                hop: hop.saturating_add(1),
                                secret,
                            },
                        )
                        .forwarding(m.forward),
                    );
                }
            }
            Body::Refresh { path, hop } => {
                let key = VisitKey { path, hop };
                match self.visits.get(&key) {
                    Some(v) if hop > 0 => {
                        if v.phase != Phase::Committed {
                            // Setup is still running; its own deadline holds.
                            return;
                        }
                        let expires = now.saturating_add(self.lifetime(v.refresh_ms));
                        let next = v.req.next;
                        if let Some(v) = self.visits.get_mut(&key) {
                            v.expires = expires;
                        }
                        self.timers.insert((expires, Timer::Expire(key)));
                        if let Some(n) = next {
                            self.send(
                                now,
                                Outgoing::new(
                                    n.addr,
                                    n.egress.local,
                                    Body::Refresh {
                                        path,
                                        hop: hop.saturating_add(1),
                                    },
                                )
                                .forwarding(m.forward)
                                .on_fail(OnFail::Refresh(key)),
                            );
                        }
                    }
                    _ => {
                        // A restarted node, or state purged: tell upstream
                        // so that it tears down instead of refreshing a hole.
                        self.counters.unknown_path_refresh += 1;
                        let error = unknown_path(hop, dst);
                        self.send(now, Outgoing::new(src, dst, Body::PathDown { path, hop, error }));
                    }
                }
            }
            Body::StatusRequest { path, hop, records } => {
                let key = VisitKey { path, hop };
                if hop > 0 && self.visits.contains_key(&key) {
                    self.status_at(now, key, records, env);
                } else {
                    self.counters.unknown_visit += 1;
                    let error = unknown_path(hop, dst);
                    self.send(
                        now,
                        Outgoing::new(
                            src,
                            dst,
                            Body::StatusReply {
                                path,
                                hop,
                                records,
                                error: Some(error),
                            },
                        ),
                    );
                }
            }
            Body::StatusReply {
                path,
                hop,
                records,
                error,
            } => {
                let Some(key) = self.upstream_visit(path, hop, src) else {
                    return;
                };
                self.status_reply(now, key, records, error);
            }
            Body::Ack => {}
        }
    }

    /// The visit an upstream message from hop `hop` (sent by `src`) is for:
    /// hop − 1, which must exist and have `src` as its next hop.
    fn upstream_visit(&mut self, path: PathId, hop: u8, src: IpAddr) -> Option<VisitKey> {
        if hop == 0 {
            self.counters.bad_message += 1;
            return None;
        }
        let key = VisitKey { path, hop: hop - 1 };
        let Some(v) = self.visits.get(&key) else {
            self.counters.unknown_visit += 1;
            return None;
        };
        if v.req.next.map(|n| n.addr) != Some(src) {
            self.counters.unexpected_sender += 1;
            return None;
        }
        Some(key)
    }
}

/// The error a hop answers for a path (or visit) it holds no state for.
fn unknown_path(hop: u8, address: IpAddr) -> HopError {
    HopError {
        hop,
        address,
        reason: Reason::UnknownPath,
        text: "no state for this path".into(),
    }
}
