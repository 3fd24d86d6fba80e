//! The signaling agent: one per node (and one in each requester), sans-IO
//! (quinn-proto's shape).
//!
//! Inputs: [`Agent::handle_datagram`] (a signaling datagram the node
//! intercepted or received), [`Agent::handle_timeout`],
//! [`Agent::install_done`] (an install the node finished), and the
//! requester's commands [`Agent::sign`], [`Agent::send`],
//! [`Agent::keep_refreshed`]. Outputs: [`Agent::poll_transmit`] (UDP
//! datagrams, requests with the Router Alert option), [`Agent::poll_timeout`]
//! and [`Agent::poll_event`]. The node is reached through the [`Env`]
//! trait, passed into every call that may change it. Time is the node's
//! clock in nanoseconds; Unix time (for request timestamps) is that plus
//! [`AgentConfig::unix_offset_ns`].
//!
//! What a capable node does with a REQUEST, in order: drop it if its
//! origin or the node is over the rate limit (unacknowledged: the sender
//! retries); acknowledge it; record the upstream peer; verify it
//! (parses, fresh, signed, not replayed — a request that fails stops
//! here, answered with the refusal); act on it (SETUP installs, REMOVE
//! removes, PROBE collects facts — a refusal here is this node's alone);
//! send it on toward the destination; and when the downstream stack comes
//! back (or nothing downstream acknowledges: this node is the last),
//! push its entry and send the stack upstream.
//!
//! One room per job, each adding to [`Agent`] (whose state is here):
//!
//! * `env` — what the agent asks of the node: [`Env`] and its types;
//! * `outputs` — what comes out: [`Transmit`], [`Event`], views,
//!   [`Counters`], and the `poll_*` calls;
//! * `delivery` — hop-by-hop reliability: sequence numbers, ACKs,
//!   duplicates, retransmission, and what happens when nobody answers;
//! * `guard` — rate limits, freshness, signatures, nonces;
//! * `sessions` — modules installed here: SETUP, refresh, REMOVE, expiry,
//!   installs that finish later;
//! * `transactions` — requests on their way: forwarding, the last node,
//!   responses and the stack, TRIGGER's reverse flow;
//! * `requester` — signing and sending requests, refreshing them,
//!   receiving their responses.

mod delivery;
mod env;
mod guard;
mod outputs;
mod requester;
mod sessions;
mod transactions;

pub use env::{Context, Env, Grant, Install, Installed, NullEnv, Refusal};
pub use outputs::{Counters, Event, PeerView, Removal, SessionState, SessionView, Transmit};
pub use requester::RequestError;

use crate::wire::{peek, Body, Message, SessionId, Signed, Signer};
use delivery::Pending;
use guard::Guard;
use serde::{Deserialize, Serialize};
use sessions::Session;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use transactions::Txn;

/// A request in flight: its session and nonce (unique per key; a
/// collision between keys only makes the second request look like a
/// duplicate at this node).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct TxnKey {
    pub(crate) session: SessionId,
    pub(crate) nonce: [u8; 16],
}

impl TxnKey {
    pub(crate) fn of(s: &Signed) -> TxnKey {
        TxnKey {
            session: s.request().session,
            nonce: s.request().nonce,
        }
    }
}

/// One second, ns.
pub const SECOND: u64 = 1_000_000_000;
/// One millisecond, ns.
pub const MILLI: u64 = 1_000_000;

/// Agent settings. [`AgentConfig::new`] gives the documented defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentConfig {
    /// The node's name, written on its entries.
    pub name: String,
    /// The node's own addresses (a request for one of them ends here).
    pub addresses: Vec<IpAddr>,
    /// Acts on requests (a Weft node). A requester's agent is not capable:
    /// it only sends requests and receives their responses.
    pub capable: bool,
    /// First retransmission timeout (doubles per try). 100 ms: several
    /// round trips on the links the emulator and netns tests model, short
    /// enough that finding no node downstream takes 1.5 s.
    pub retransmit_ns: u64,
    /// Transmissions before a peer counts as absent (4: 100 + 200 + 400 +
    /// 800 ms). A request nobody downstream acknowledges in that time makes
    /// this node the last.
    pub retransmit_tries: u32,
    /// How long a node waits for the stack once the downstream peer
    /// acknowledged, beyond [`AgentConfig::per_hop_ns`] per hop left: longer
    /// than [`AgentConfig::install_timeout_ns`], so that a node downstream
    /// always answers (if only with `install-timeout`) before this gives up.
    pub response_wait_ns: u64,
    /// Added to the wait per signaling hop left, so that each node gives up
    /// later than every node downstream of it (2 s: a response's whole
    /// retransmission span fits in the difference).
    pub per_hop_ns: u64,
    /// Longest install (fetch, verify, compile, instantiate) before the
    /// SETUP is answered `install-timeout` (15 s: the loader's 10 s fetch
    /// limit and a compile).
    pub install_timeout_ns: u64,
    /// How far a request's time may be from the node's, either way, s
    /// (300: the API's window for signed requests).
    pub window_s: u64,
    /// Longest lifetime a SETUP may ask for, s (one day: a provider
    /// refreshes; a forgotten module goes within a day).
    pub max_lifetime_s: u32,
    /// Signaling hops a request starts with (16 intercepting nodes: far
    /// beyond NetServ's edge deployments, and it bounds the stack).
    pub max_hops: u8,
    /// Requests per second accepted from one origin (10), and the burst
    /// (20): PROBE floods from one source are dropped past it.
    pub origin_rate: u32,
    /// Burst per origin.
    pub origin_burst: u32,
    /// Requests per second the node verifies in all (1000: an ed25519
    /// verification costs ~50 µs, so at most 5% of a core).
    pub node_rate: u32,
    /// Burst for the node.
    pub node_burst: u32,
    /// Nonces remembered at most; beyond, signed requests are refused
    /// (`resources`) until old ones leave the window.
    pub max_nonces: usize,
    /// Requests in flight at most; beyond, new ones are dropped
    /// (unacknowledged).
    pub max_transactions: usize,
    /// Sessions installed at most (the node's own limit, beside each
    /// principal's).
    pub max_sessions: usize,
    /// How long a (peer, sequence number) is remembered to drop duplicates
    /// (30 s: longer than the retransmission span).
    pub dedupe_ns: u64,
    /// Most (peer, sequence number) pairs remembered.
    pub dedupe_max: usize,
    /// Unix time at node clock 0, ns.
    pub unix_offset_ns: u64,
    /// First sequence number (seeded at random by drivers, so that a
    /// restarted agent is not taken for a duplicate).
    pub initial_seq: u32,
    /// Seed of the nonces this agent's requests carry (random in drivers).
    pub nonce_seed: [u8; 32],
}

impl AgentConfig {
    /// Defaults for a capable node named `name` with these addresses.
    pub fn new(name: impl Into<String>, addresses: Vec<IpAddr>) -> AgentConfig {
        AgentConfig {
            name: name.into(),
            addresses,
            capable: true,
            retransmit_ns: 100 * MILLI,
            retransmit_tries: 4,
            response_wait_ns: 20 * SECOND,
            per_hop_ns: 2 * SECOND,
            install_timeout_ns: 15 * SECOND,
            window_s: 300,
            max_lifetime_s: 86_400,
            max_hops: 16,
            origin_rate: 10,
            origin_burst: 20,
            node_rate: 1000,
            node_burst: 200,
            max_nonces: 100_000,
            max_transactions: 4096,
            max_sessions: 4096,
            dedupe_ns: 30 * SECOND,
            dedupe_max: 65_536,
            unix_offset_ns: 0,
            initial_seq: 1,
            nonce_seed: [0; 32],
        }
    }

    /// A requester's agent: sends requests, acts on none.
    pub fn requester(addresses: Vec<IpAddr>) -> AgentConfig {
        AgentConfig {
            capable: false,
            ..AgentConfig::new("", addresses)
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Retransmit(u32),
    Response(TxnKey),
    InstallTimeout(SessionId),
    Expire(SessionId),
    Refresh(SessionId),
    Sweep,
}

/// How often soft state nobody needs is swept (peers, nonces outside the
/// window, duplicates).
const SWEEP_NS: u64 = 10 * SECOND;

/// The signaling protocol of one node or requester. See the module docs.
pub struct Agent {
    cfg: AgentConfig,
    next_seq: u32,
    pending: HashMap<u32, Pending>,
    seen: HashMap<(SocketAddr, u32), u64>,
    seen_order: VecDeque<(u64, SocketAddr, u32)>,
    guard: Guard,
    txns: HashMap<TxnKey, Txn>,
    peers: HashMap<(SessionId, IpAddr, IpAddr), (SocketAddr, u64)>,
    sessions: HashMap<SessionId, Session>,
    last_setup: HashMap<SessionId, (crate::wire::Request, IpAddr)>,
    refreshing: HashMap<SessionId, requester::Refreshing>,
    nonce_counter: u64,
    /// Lazily cancelled: a timer whose condition no longer holds is
    /// dropped when it fires.
    timers: BTreeSet<(u64, Timer)>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    counters: Counters,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("name", &self.cfg.name)
            .field("sessions", &self.sessions.len())
            .field("transactions", &self.txns.len())
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// An agent holding nothing.
    pub fn new(cfg: AgentConfig) -> Agent {
        let guard = Guard::new(&cfg);
        let mut a = Agent {
            next_seq: cfg.initial_seq,
            cfg,
            pending: HashMap::new(),
            seen: HashMap::new(),
            seen_order: VecDeque::new(),
            guard,
            txns: HashMap::new(),
            peers: HashMap::new(),
            sessions: HashMap::new(),
            last_setup: HashMap::new(),
            refreshing: HashMap::new(),
            nonce_counter: 0,
            timers: BTreeSet::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            counters: Counters::default(),
        };
        a.timers.insert((SWEEP_NS, Timer::Sweep));
        a
    }

    /// The configuration.
    pub fn config(&self) -> &AgentConfig {
        &self.cfg
    }

    /// Set the node's addresses (they change when the node's ports do).
    pub fn set_addresses(&mut self, addresses: Vec<IpAddr>) {
        self.cfg.addresses = addresses;
    }

    /// Set Unix time at node clock 0 (drivers correct it when the wall
    /// clock moves).
    pub fn set_unix_offset(&mut self, offset_ns: u64) {
        self.cfg.unix_offset_ns = offset_ns;
    }

    /// The node's time in Unix seconds at `now`.
    pub fn unix_time(&self, now: u64) -> u64 {
        now.saturating_add(self.cfg.unix_offset_ns) / SECOND
    }

    /// Counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Requests in flight here.
    pub fn transaction_count(&self) -> usize {
        self.txns.len()
    }

    /// Datagrams sent and not yet acknowledged.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    fn is_local(&self, a: IpAddr) -> bool {
        self.cfg.addresses.contains(&a)
    }

    /// A datagram arrived: `from` is its IP source and UDP source port,
    /// `to` its IP destination (a flow's destination when intercepted, one
    /// of the node's addresses when addressed here). Never panics; bad
    /// input is counted.
    pub fn handle_datagram(&mut self, now: u64, from: SocketAddr, to: IpAddr, payload: &[u8], env: &mut dyn Env) {
        self.counters.received += 1;
        self.forget_seen(now);
        let m = match Message::parse(payload) {
            Ok(m) => m,
            Err(e) => {
                *self.counters.malformed.entry(e.reason().to_string()).or_default() += 1;
                self.malformed(now, from, to, payload, env);
                return;
            }
        };
        match m.body {
            Body::Ack => self.handle_ack(now, from, m.seq),
            Body::Request(r) => {
                if !self.guard.admit(now, r.origin) {
                    self.counters.rate_limited += 1;
                    return;
                }
                if !self.txns.contains_key(&TxnKey::of(&r.signed)) && self.txns.len() >= self.cfg.max_transactions {
                    self.counters.busy += 1;
                    return;
                }
                self.send_ack(from, m.seq);
                if !self.remember(now, from, m.seq) {
                    self.counters.duplicates += 1;
                    return;
                }
                self.handle_request(now, from, to, r, env);
            }
            Body::Response(r) => {
                self.send_ack(from, m.seq);
                if !self.remember(now, from, m.seq) {
                    self.counters.duplicates += 1;
                    return;
                }
                self.handle_response(now, from, r, env);
            }
        }
    }

    /// A datagram that does not parse: acknowledge what has a readable
    /// header (so that the sender does not retry something that never
    /// parses) and answer a request whose fixed part is readable with
    /// `bad-message`, so that its requester learns why.
    fn malformed(&mut self, now: u64, from: SocketAddr, to: IpAddr, payload: &[u8], env: &mut dyn Env) {
        let Some(p) = peek(payload) else { return };
        if p.msg_type == crate::wire::msg::ACK {
            return;
        }
        if p.msg_type == crate::wire::msg::REQUEST && !self.guard.admit(now, p.origin.unwrap_or(from.ip())) {
            self.counters.rate_limited += 1;
            return;
        }
        self.send_ack(from, p.seq);
        if !self.remember(now, from, p.seq) || !self.cfg.capable {
            return;
        }
        if let (Some((kind, session, nonce)), crate::wire::msg::REQUEST) = (p.request, p.msg_type) {
            let text = match Message::parse(payload) {
                Err(e) => e.to_string(),
                Ok(_) => String::new(),
            };
            let entry = self.entry(env, from.ip(), crate::wire::Reason::BadMessage, &text);
            self.answer_now(now, from, to, kind, session, nonce, entry);
        }
    }

    /// Time passed: retransmit, give up on silent peers, time out installs,
    /// expire sessions, refresh requests, sweep soft state.
    pub fn handle_timeout(&mut self, now: u64, env: &mut dyn Env) {
        self.forget_seen(now);
        while let Some(&(t, timer)) = self.timers.first() {
            if t > now {
                break;
            }
            self.timers.pop_first();
            match timer {
                Timer::Retransmit(seq) => self.retransmit(now, seq, env),
                Timer::Response(key) => self.response_deadline(now, key, env),
                Timer::InstallTimeout(s) => self.install_deadline(now, s, env),
                Timer::Expire(s) => self.expire(now, s, env),
                Timer::Refresh(s) => self.refresh(now, s, env),
                Timer::Sweep => {
                    self.guard.sweep(self.unix_time(now), self.cfg.window_s);
                    self.peers.retain(|_, (_, t)| *t > now);
                    self.timers.insert((now.saturating_add(SWEEP_NS), Timer::Sweep));
                }
            }
        }
    }

    /// Recorded upstream peers (soft state), sorted by session.
    pub fn peers(&self, now: u64) -> Vec<PeerView> {
        let mut v: Vec<PeerView> = self
            .peers
            .iter()
            .filter(|(_, (_, t))| *t > now)
            .map(|((s, o, d), (p, t))| PeerView {
                session: *s,
                origin: *o,
                dest: *d,
                upstream: *p,
                remaining_ns: t - now,
            })
            .collect();
        v.sort_by_key(|p| (p.session, p.origin, p.dest));
        v
    }

    /// A fresh nonce: sha256 of the seed and a counter (unpredictable
    /// without the seed, never repeated by this agent).
    fn next_nonce(&mut self) -> [u8; 16] {
        use sha2::{Digest, Sha256};
        self.nonce_counter += 1;
        let mut h = Sha256::new();
        h.update(self.cfg.nonce_seed);
        h.update(self.nonce_counter.to_be_bytes());
        let d = h.finalize();
        let mut n = [0u8; 16];
        n.copy_from_slice(&d[..16]);
        n
    }
}

/// Keys the requester holds to refresh its requests.
pub type BoxSigner = Box<dyn Signer + Send>;
