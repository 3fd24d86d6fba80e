//! The PBR agent: one per node, sans-IO (quinn-proto's shape).
//!
//! Inputs: [`Agent::handle_datagram`], [`Agent::handle_timeout`] and the
//! commands [`Agent::create`], [`Agent::release`],
//! [`Agent::request_status`]. Outputs: [`Agent::poll_transmit`] (UDP
//! datagrams to port [`PBR_PORT`]), [`Agent::poll_timeout`] (when to call
//! `handle_timeout` next) and [`Agent::poll_event`]. The node is reached
//! through the [`Env`] trait, passed into every call that may change
//! forwarding state.
//!
//! State is per **visit**, keyed by (path id, hop index): a node holding
//! several visits of one walk keeps them apart, so a walk may enter a node
//! any number of times, through any interface.

use crate::wire::{
    Body, Create, ExplicitRoute, FlowSpec, Hop, HopError, Message, PathId, Plugin, RawObject, Reason, StatusRecord,
    FIRST_LABEL, HASH_LEN, MAX_LABEL, PBR_PORT, SECRET_LEN,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;

/// One visit of one path at this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VisitKey {
    /// The path.
    pub path: PathId,
    /// Index of the visit in the walk (0 = ingress).
    pub hop: u8,
}

/// Where messages and packets for a next hop leave this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Egress {
    /// The node's port.
    pub port: u16,
    /// The node's address on that port (source of messages sent there).
    pub local: IpAddr,
}

/// A hop's answer "no": why, and a text for people.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[error("{reason}: {text}")]
pub struct Refusal {
    /// Reason code (goes on the wire).
    pub reason: Reason,
    /// Detail.
    pub text: String,
}

impl Refusal {
    /// A refusal with a text.
    pub fn new(reason: Reason, text: impl Into<String>) -> Refusal {
        Refusal {
            reason,
            text: text.into(),
        }
    }
}

/// The next hop of a visit, as [`Env::egress`] resolved it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NextHop {
    /// The next visit's address.
    pub addr: IpAddr,
    /// Strict segment (direct neighbour, labelled frames) or loose
    /// (MPLS-in-UDP to `addr` across the FIB).
    pub strict: bool,
    /// Where it leaves this node.
    pub egress: Egress,
}

/// What one visit needs: handed to [`Env::reserve`] and, inside a
/// [`VisitInstall`], to [`Env::commit`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitRequest {
    /// Number of visits in the walk.
    pub hop_count: u8,
    /// Address of the upstream neighbour (source of its CREATE); `None` at
    /// the first visit.
    pub prev: Option<IpAddr>,
    /// Downstream neighbour; `None` at the last visit.
    pub next: Option<NextHop>,
    /// The flow (classified at the first visit only).
    pub flowspec: FlowSpec,
    /// Bandwidth to hold on the egress, bits/s (0 = best effort).
    pub bandwidth_bps: u64,
    /// Plugins this visit runs, in order.
    pub plugins: Vec<Plugin>,
}

impl VisitRequest {
    /// The first visit (ingress: classifies by flowspec and pushes).
    pub fn is_first(&self) -> bool {
        self.prev.is_none()
    }
    /// The last visit (egress: pops and forwards by the FIB).
    pub fn is_last(&self) -> bool {
        self.next.is_none()
    }
}

/// The label operation after the visit's plugins ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OutLabel {
    /// Send with this label (swap; at the first visit: push) — the label
    /// the next visit allocated.
    Label(u32),
    /// Last visit: pop and forward the inner IP packet by the FIB.
    Pop,
}

/// What [`Env::commit`] installs.
#[derive(Clone, Copy, Debug)]
pub struct VisitInstall<'a> {
    /// What was reserved.
    pub request: &'a VisitRequest,
    /// Out label or pop.
    pub out: OutLabel,
    /// The largest IP packet the next visit (and the path after it) takes,
    /// from its COMMIT's PATH_MTU (none: not said, or the last visit).
    pub downstream_mtu: Option<u16>,
}

/// The node, as the protocol sees it. The lead implements it over the real
/// node; tests implement it with fakes.
pub trait Env {
    /// Where a message or packets for `to` leave this node. `strict`: `to`
    /// must be on a directly connected subnet, else
    /// `Err(Reason::NotAdjacent)`; loose: any FIB route (`NoRoute`).
    fn egress(&mut self, to: IpAddr, strict: bool) -> Result<Egress, Refusal>;
    /// Phase 1: check and hold (not allocate) what visit `key` needs:
    /// bandwidth on its egress, plugin capacity, classes obtainable.
    fn reserve(&mut self, key: VisitKey, req: &VisitRequest) -> Result<(), Refusal>;
    /// Phase 2, before [`Env::commit`]: is everything the visit needs here
    /// (its plugin classes fetched from a code server)? `Ok(false)`: not
    /// yet — the agent holds the commit (the COMMIT from downstream is
    /// acknowledged, nothing goes upstream) until the driver calls
    /// [`Agent::resume`]; the visit's setup lifetime keeps running, so a
    /// fetch that never ends times out as `setup-timeout`. `Err`: refuse,
    /// as a failed commit. The default is always ready.
    fn ready(&mut self, _key: VisitKey, _req: &VisitRequest) -> Result<bool, Refusal> {
        Ok(true)
    }
    /// Phase 2: install forwarding state (in label allocated here, out
    /// label from downstream or pop at the last visit, flowspec classifier
    /// at the first), fetch the classes, create, configure and bind the
    /// plugins. Returns this visit's in label (`None` at the first visit;
    /// required at every other, in [`FIRST_LABEL`]..=[`MAX_LABEL`], unique among
    /// the node's visits).
    fn commit(&mut self, key: VisitKey, install: &VisitInstall<'_>) -> Result<Option<u32>, Refusal>;
    /// After a successful [`Env::commit`]: the largest IP packet visit `key`
    /// takes in — its own segment and plugins, and
    /// [`VisitInstall::downstream_mtu`] — sent upstream in COMMIT's
    /// PATH_MTU; at the first visit, the path's MTU. Default: not known.
    fn visit_mtu(&mut self, _key: VisitKey) -> Option<u16> {
        None
    }
    /// Undo reserve or commit, whichever happened. Idempotent.
    fn release(&mut self, key: VisitKey);
    /// Per-visit status for STATUS (plugin instances, counters) as JSON.
    fn visit_status(&mut self, key: VisitKey) -> serde_json::Value;
}

/// An [`Env`] that accepts everything and installs nothing (labels from
/// a counter). For fuzzing and examples.
#[derive(Clone, Debug, Default)]
pub struct NullEnv {
    next_label: u32,
}

impl Env for NullEnv {
    fn egress(&mut self, to: IpAddr, _strict: bool) -> Result<Egress, Refusal> {
        Ok(Egress { port: 0, local: to })
    }
    fn reserve(&mut self, _key: VisitKey, _req: &VisitRequest) -> Result<(), Refusal> {
        Ok(())
    }
    fn commit(&mut self, key: VisitKey, _install: &VisitInstall<'_>) -> Result<Option<u32>, Refusal> {
        self.next_label = (self.next_label + 1) % MAX_LABEL;
        Ok((key.hop > 0).then_some(FIRST_LABEL + self.next_label % (MAX_LABEL - FIRST_LABEL)))
    }
    fn release(&mut self, _key: VisitKey) {}
    fn visit_status(&mut self, _key: VisitKey) -> serde_json::Value {
        serde_json::Value::Null
    }
}

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

/// What the initiator asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateRequest {
    /// The walk; the first hop's address must be this node's.
    pub hops: Vec<Hop>,
    /// Which packets follow it.
    pub flowspec: FlowSpec,
    /// Plugins to deploy, by hop index.
    pub plugins: Vec<Plugin>,
    /// Bandwidth to reserve on every egress, bits/s (0 = best effort).
    pub bandwidth_bps: u64,
    /// Refresh interval, ms.
    pub refresh_ms: u32,
}

/// A datagram to send: UDP from port [`PBR_PORT`] to port [`PBR_PORT`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Destination address.
    pub dst: IpAddr,
    /// Source address to send from, when the protocol cares (the driver
    /// must honour it: neighbours check where upstream messages come from).
    pub src: Option<IpAddr>,
    /// Destination UDP port (always [`PBR_PORT`]).
    pub port: u16,
    /// The message.
    pub payload: Vec<u8>,
}

/// What happened to a path this node initiated (or a status reply).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// COMMIT reached the initiator: every visit is installed.
    PathUp {
        /// The path.
        path: PathId,
    },
    /// Setup failed; no state is left (except on a hop that fails
    /// mid-commit: soft state purges it).
    Refused {
        /// The path.
        path: PathId,
        /// Index of the hop that refused.
        hop: u8,
        /// Its address.
        address: IpAddr,
        /// Why.
        reason: Reason,
        /// Detail.
        text: String,
    },
    /// An established path broke (timeout, neighbour down).
    PathDown {
        /// The path.
        path: PathId,
        /// The hop where it broke.
        hop: u8,
        /// Its address.
        address: IpAddr,
        /// Why.
        reason: Reason,
        /// Detail.
        text: String,
    },
    /// The initiator released the path (state here is gone; RELEASE is
    /// on its way downstream).
    Released {
        /// The path.
        path: PathId,
    },
    /// A STATUS reply.
    Status {
        /// The path.
        path: PathId,
        /// One record per visit reached, in walk order.
        records: Vec<VisitStatus>,
        /// Why the request stopped before the last visit, if it did.
        error: Option<HopError>,
    },
}

/// One visit's status, as reported by STATUS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitStatus {
    /// Hop index.
    pub hop: u8,
    /// The visit's address.
    pub address: IpAddr,
    /// What the visit reported (its JSON; text that is not JSON comes as
    /// a string).
    pub status: serde_json::Value,
}

/// Phase of a visit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// Reserved, waiting for COMMIT from downstream.
    Reserved,
    /// Installed.
    Committed,
}

/// One visit held here, for `weft pbr ls`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathSummary {
    /// Path and hop index.
    pub key: VisitKey,
    /// Visits in the walk.
    pub hop_count: u8,
    /// This node initiated the path (hop 0).
    pub initiator: bool,
    /// Reserved or committed.
    pub phase: Phase,
    /// Label allocated here (none at the first visit).
    pub in_label: Option<u32>,
    /// Out label (none: pop, or not yet committed).
    pub out_label: Option<u32>,
    /// Upstream neighbour.
    pub prev: Option<IpAddr>,
    /// Downstream neighbour.
    pub next: Option<IpAddr>,
    /// Plugins run here.
    pub plugins: Vec<Plugin>,
    /// When the state expires without a refresh (virtual ms; none at the
    /// initiator once up).
    pub expires_ms: Option<u64>,
    /// The largest IP packet the visit takes in, the rest of the path
    /// included ([`Env::visit_mtu`]; at the initiator: the path's MTU).
    pub mtu: Option<u16>,
}

/// Counters, each a reason something was counted. [`Counters::iter`]
/// lists them with stable names for the metrics registry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Datagrams handed to the agent.
    pub received: u64,
    /// Datagrams produced (first transmissions and ACKs).
    pub sent: u64,
    /// Retransmissions.
    pub retransmits: u64,
    /// Messages received again (re-acknowledged, not processed).
    pub duplicates: u64,
    /// Messages that did not parse, by [`crate::WireError::reason`].
    pub malformed: BTreeMap<String, u64>,
    /// Unknown objects ignored or passed on.
    pub unknown_objects: u64,
    /// RELEASE with a wrong secret (rejected).
    pub forged_release: u64,
    /// REFRESH for a path this node does not hold (answered PATH_DOWN).
    pub unknown_path_refresh: u64,
    /// Other messages for a visit this node does not hold.
    pub unknown_visit: u64,
    /// Upstream messages from an address other than the visit's next hop.
    pub unexpected_sender: u64,
    /// ACKs for nothing pending.
    pub stray_acks: u64,
    /// Messages that parsed but make no sense (hop 0 from a peer, a
    /// CREATE for a hop not here…).
    pub bad_message: u64,
    /// Neighbours given up on after the last retransmission.
    pub neighbour_down: u64,
    /// Visits purged because refreshes (or the COMMIT) stopped coming.
    pub expired: u64,
    /// Refusals originated here.
    pub refused: u64,
    /// Visits committed here.
    pub committed: u64,
    /// Commits held because [`Env::ready`] said not yet (a class being
    /// fetched).
    pub held_commits: u64,
}

impl Counters {
    /// (name, value) of every counter; malformed ones as
    /// `malformed-<reason>`.
    pub fn iter(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = [
            ("received", self.received),
            ("sent", self.sent),
            ("retransmits", self.retransmits),
            ("duplicates", self.duplicates),
            ("unknown-objects", self.unknown_objects),
            ("forged-release", self.forged_release),
            ("unknown-path-refresh", self.unknown_path_refresh),
            ("unknown-visit", self.unknown_visit),
            ("unexpected-sender", self.unexpected_sender),
            ("stray-acks", self.stray_acks),
            ("bad-message", self.bad_message),
            ("neighbour-down", self.neighbour_down),
            ("expired", self.expired),
            ("refused", self.refused),
            ("committed", self.committed),
            ("held-commits", self.held_commits),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        v.extend(self.malformed.iter().map(|(k, n)| (format!("malformed-{k}"), *n)));
        v
    }

    /// All malformed messages.
    pub fn malformed_total(&self) -> u64 {
        self.malformed.values().sum()
    }
}

/// Error returned by the agent's commands ([`Agent::create`],
/// [`Agent::release`], [`Agent::request_status`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PbrError {
    /// The walk is empty.
    #[error("the walk is empty")]
    EmptyRoute,
    /// The first hop is not one of this node's addresses.
    #[error("the first hop {0} is not an address of this node")]
    NotLocal(IpAddr),
    /// More hops than the limit.
    #[error("{hops} hops is more than the limit of {max}")]
    HopLimit {
        /// Hops asked for.
        hops: usize,
        /// The limit.
        max: usize,
    },
    /// A plugin names a hop outside the walk.
    #[error("plugin {class} targets hop {hop}, outside the walk")]
    BadPluginHop {
        /// Class.
        class: String,
        /// Hop index.
        hop: u8,
    },
    /// Flowspec prefixes of different families, or reversed port ranges.
    #[error("invalid flowspec")]
    BadFlowSpec,
    /// Refresh interval 0.
    #[error("refresh interval must be at least 1 ms")]
    BadRefresh,
    /// The CREATE does not fit one datagram.
    #[error("the CREATE_PATH message does not fit one datagram")]
    TooLong,
    /// This node refused (the first hop's own reservation).
    #[error("refused here: {0}")]
    Refused(HopError),
    /// No path with this id was initiated here.
    #[error("no path {0} initiated here")]
    UnknownPath(PathId),
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

/// What to do when a message is never acknowledged.
#[derive(Clone, Debug)]
enum OnFail {
    Nothing,
    /// CREATE to the next hop: refuse upstream (neighbour down).
    Create(VisitKey),
    /// REFRESH to the next hop: the path is down.
    Refresh(VisitKey),
    /// COMMIT to the previous hop: give the visit up.
    Commit(VisitKey),
    /// STATUS request to the next hop: reply with what was collected.
    Status(VisitKey, Vec<StatusRecord>),
}

#[derive(Clone, Debug)]
struct Pending {
    dst: IpAddr,
    src: Option<IpAddr>,
    payload: Vec<u8>,
    tries: u32,
    timeout: u64,
    deadline: u64,
    on_fail: OnFail,
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

    // ----- commands --------------------------------------------------------

    /// Set up a path whose first hop is this node. Reserves here and sends
    /// CREATE_PATH downstream; the outcome arrives as [`Event::PathUp`] or
    /// [`Event::Refused`]. `secret` must be fresh randomness: its SHA-256
    /// goes out with the CREATE, and only whoever knows it can release.
    pub fn create(
        &mut self,
        now_ms: u64,
        req: CreateRequest,
        secret: [u8; SECRET_LEN],
        env: &mut dyn Env,
    ) -> Result<PathId, PbrError> {
        let first = req.hops.first().ok_or(PbrError::EmptyRoute)?;
        if !self.is_local(first.addr) {
            return Err(PbrError::NotLocal(first.addr));
        }
        if req.hops.len() > self.cfg.max_hops.min(crate::wire::MAX_WIRE_HOPS) {
            return Err(PbrError::HopLimit {
                hops: req.hops.len(),
                max: self.cfg.max_hops,
            });
        }
        if let Some(p) = req.plugins.iter().find(|p| p.hop as usize >= req.hops.len()) {
            return Err(PbrError::BadPluginHop {
                class: p.class.clone(),
                hop: p.hop,
            });
        }
        if !req.flowspec.is_valid() {
            return Err(PbrError::BadFlowSpec);
        }
        if req.refresh_ms == 0 {
            return Err(PbrError::BadRefresh);
        }
        let path = PathId {
            initiator: first.addr,
            number: self.next_number,
        };
        let create = Create {
            path,
            route: ExplicitRoute {
                hops: req.hops,
                current: 0,
            },
            flowspec: req.flowspec,
            plugins: req.plugins,
            bandwidth_bps: req.bandwidth_bps,
            refresh_ms: req.refresh_ms,
            auth: sha256(&secret),
        };
        if Message::new(0, Body::Create(create.clone())).buffer_len().is_err() {
            return Err(PbrError::TooLong);
        }
        self.next_number = self.next_number.wrapping_add(1);
        self.initiated.insert(
            path,
            Initiated {
                secret,
                up: false,
                refresh_ms: req.refresh_ms as u64,
            },
        );
        if let Err(e) = self.accept_create(now_ms, None, create, Vec::new(), env) {
            self.initiated.remove(&path);
            return Err(PbrError::Refused(e));
        }
        Ok(path)
    }

    /// Tear down a path this node initiated: release here, send
    /// RELEASE_PATH (carrying the secret) downstream, report
    /// [`Event::Released`].
    pub fn release(&mut self, now_ms: u64, id: PathId, env: &mut dyn Env) -> Result<(), PbrError> {
        let init = self.initiated.remove(&id).ok_or(PbrError::UnknownPath(id))?;
        let key = VisitKey { path: id, hop: 0 };
        if let Some(v) = self.visits.remove(&key) {
            env.release(key);
            if let Some(n) = v.req.next {
                self.send(
                    now_ms,
                    n.addr,
                    Some(n.egress.local),
                    Body::Release {
                        path: id,
                        hop: 1,
                        secret: init.secret,
                    },
                    Vec::new(),
                    OnFail::Nothing,
                );
            }
        }
        self.events.push_back(Event::Released { path: id });
        Ok(())
    }

    /// Ask every visit of a path this node initiated for its status; the
    /// answer arrives as [`Event::Status`].
    pub fn request_status(&mut self, now_ms: u64, id: PathId, env: &mut dyn Env) -> Result<(), PbrError> {
        let key = VisitKey { path: id, hop: 0 };
        if !self.initiated.contains_key(&id) || !self.visits.contains_key(&key) {
            return Err(PbrError::UnknownPath(id));
        }
        self.status_at(now_ms, key, Vec::new(), env);
        Ok(())
    }

    // ----- outputs ---------------------------------------------------------

    /// The next datagram to send. Call after every `handle_*` and command.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// When [`Agent::handle_timeout`] should be called next (virtual ms);
    /// advisory: calling it early is harmless.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.timers.first().map(|t| t.0)
    }

    /// The next event about a path initiated here.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    // ----- inputs ----------------------------------------------------------

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
                            self.send(
                                now_ms,
                                src,
                                Some(dst),
                                Body::Refuse { path, hop, error },
                                Vec::new(),
                                OnFail::Nothing,
                            );
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

    // ----- transport -------------------------------------------------------

    fn send(
        &mut self,
        now: u64,
        dst: IpAddr,
        src: Option<IpAddr>,
        body: Body,
        forward: Vec<RawObject>,
        on_fail: OnFail,
    ) {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let Ok(payload) = (Message { seq, body, forward }).to_bytes() else {
            // Only a STATUS reply can outgrow a datagram (records are
            // capped so that it does not); treat it as never delivered.
            self.counters.bad_message += 1;
            return;
        };
        self.counters.sent += 1;
        self.transmits.push_back(Transmit {
            dst,
            src,
            port: PBR_PORT,
            payload: payload.clone(),
        });
        let timeout = self.cfg.retransmit_ms.max(1);
        self.pending.insert(
            seq,
            Pending {
                dst,
                src,
                payload,
                tries: 1,
                timeout,
                deadline: now.saturating_add(timeout),
                on_fail,
            },
        );
        self.timers
            .insert((now.saturating_add(timeout), Timer::Retransmit(seq)));
    }

    fn send_ack(&mut self, to: IpAddr, from: IpAddr, seq: u32) {
        if let Ok(payload) = Message::new(seq, Body::Ack).to_bytes() {
            self.counters.sent += 1;
            self.transmits.push_back(Transmit {
                dst: to,
                src: Some(from),
                port: PBR_PORT,
                payload,
            });
        }
    }

    /// Record (peer, seq); false when it was already there.
    fn remember(&mut self, now: u64, peer: IpAddr, seq: u32) -> bool {
        if self.seen.contains_key(&(peer, seq)) {
            return false;
        }
        while self.seen.len() >= self.cfg.dedupe_max.max(1) {
            match self.seen_order.pop_front() {
                Some((_, p, s)) => {
                    self.seen.remove(&(p, s));
                }
                None => break,
            }
        }
        let until = now.saturating_add(self.cfg.dedupe_ms);
        self.seen.insert((peer, seq), until);
        self.seen_order.push_back((until, peer, seq));
        true
    }

    fn forget_seen(&mut self, now: u64) {
        while let Some(&(t, p, s)) = self.seen_order.front() {
            if t > now {
                break;
            }
            self.seen_order.pop_front();
            if self.seen.get(&(p, s)) == Some(&t) {
                self.seen.remove(&(p, s));
            }
        }
    }

    fn retransmit(&mut self, now: u64, seq: u32, env: &mut dyn Env) {
        let Some(p) = self.pending.get_mut(&seq) else { return };
        if p.deadline > now {
            return;
        }
        if p.tries < self.cfg.retransmit_tries {
            p.tries += 1;
            p.timeout = p.timeout.saturating_mul(2);
            p.deadline = now.saturating_add(p.timeout);
            let (deadline, t) = (
                p.deadline,
                Transmit {
                    dst: p.dst,
                    src: p.src,
                    port: PBR_PORT,
                    payload: p.payload.clone(),
                },
            );
            self.transmits.push_back(t);
            self.counters.retransmits += 1;
            self.timers.insert((deadline, Timer::Retransmit(seq)));
            return;
        }
        let Some(p) = self.pending.remove(&seq) else { return };
        self.counters.neighbour_down += 1;
        let down = |v: &Visit, key: VisitKey, what: &str| {
            let addr = v.req.next.map(|n| n.addr).unwrap_or(v.local);
            HopError {
                hop: key.hop.saturating_add(1),
                address: addr,
                reason: Reason::NeighbourDown,
                text: format!("no acknowledgement of {what}"),
            }
        };
        match p.on_fail {
            OnFail::Nothing => {}
            OnFail::Create(key) => {
                let Some(v) = self.visits.get(&key) else { return };
                if v.phase != Phase::Reserved {
                    return;
                }
                let e = down(v, key, "CREATE_PATH");
                self.fail_visit(now, key, e, env);
            }
            OnFail::Refresh(key) => {
                let Some(v) = self.visits.get(&key) else { return };
                let e = down(v, key, "REFRESH");
                self.fail_visit(now, key, e, env);
            }
            OnFail::Commit(key) => {
                // The upstream neighbour is gone: nobody will refresh this
                // visit; give it up now rather than at the timeout.
                if self.visits.remove(&key).is_some() {
                    env.release(key);
                }
            }
            OnFail::Status(key, records) => {
                let Some(v) = self.visits.get(&key) else { return };
                let e = down(v, key, "STATUS");
                self.status_reply(now, key, records, Some(e));
            }
        }
    }

    // ----- the protocol ----------------------------------------------------

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
                    self.send(
                        now,
                        src,
                        Some(dst),
                        Body::Refuse { path, hop, error },
                        Vec::new(),
                        OnFail::Nothing,
                    );
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
                        n.addr,
                        Some(n.egress.local),
                        Body::Release {
                            path,
                            hop: hop.saturating_add(1),
                            secret,
                        },
                        m.forward,
                        OnFail::Nothing,
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
                                n.addr,
                                Some(n.egress.local),
                                Body::Refresh {
                                    path,
                                    hop: hop.saturating_add(1),
                                },
                                m.forward,
                                OnFail::Refresh(key),
                            );
                        }
                    }
                    _ => {
                        // A restarted node, or state purged: tell upstream
                        // so that it tears down instead of refreshing a hole.
                        self.counters.unknown_path_refresh += 1;
                        let error = unknown_path(hop, dst);
                        self.send(
                            now,
                            src,
                            Some(dst),
                            Body::PathDown { path, hop, error },
                            Vec::new(),
                            OnFail::Nothing,
                        );
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
                        src,
                        Some(dst),
                        Body::StatusReply {
                            path,
                            hop,
                            records,
                            error: Some(error),
                        },
                        Vec::new(),
                        OnFail::Nothing,
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

    /// Phase 1 at this node: check, reserve, forward (or, at the last
    /// visit, commit). Err: the refusal to send upstream; nothing is held.
    fn accept_create(
        &mut self,
        now: u64,
        prev: Option<IpAddr>,
        c: Create,
        forward: Vec<RawObject>,
        env: &mut dyn Env,
    ) -> Result<(), HopError> {
        let i = c.route.current as usize;
        let n = c.route.hops.len();
        let here = c.route.hops[i].addr;
        let refuse = |reason, text: String| HopError {
            hop: i as u8,
            address: here,
            reason,
            text,
        };
        if n > self.cfg.max_hops {
            return Err(refuse(
                Reason::HopLimit,
                format!("{n} hops is more than the limit of {}", self.cfg.max_hops),
            ));
        }
        if !self.is_local(here) {
            self.counters.bad_message += 1;
            return Err(refuse(Reason::BadMessage, "hop address is not this node's".into()));
        }
        if !c.flowspec.is_valid() {
            return Err(refuse(Reason::BadMessage, "invalid flowspec".into()));
        }
        let key = VisitKey {
            path: c.path,
            hop: i as u8,
        };
        if self.visits.contains_key(&key) {
            self.counters.bad_message += 1;
            return Err(refuse(Reason::BadMessage, "visit exists".into()));
        }
        let next = match c.route.hops.get(i + 1) {
            Some(h) => {
                let egress = env.egress(h.addr, !h.loose).map_err(|r| refuse(r.reason, r.text))?;
                Some(NextHop {
                    addr: h.addr,
                    strict: !h.loose,
                    egress,
                })
            }
            None => None,
        };
        let req = VisitRequest {
            hop_count: n as u8,
            prev,
            next,
            flowspec: c.flowspec.clone(),
            bandwidth_bps: c.bandwidth_bps,
            plugins: c.plugins.iter().filter(|p| p.hop as usize == i).cloned().collect(),
        };
        env.reserve(key, &req).map_err(|r| refuse(r.reason, r.text))?;
        let refresh_ms = c.refresh_ms as u64;
        // Reserved state waits for its COMMIT at most one lifetime.
        let expires = now.saturating_add(self.lifetime(refresh_ms));
        self.visits.insert(
            key,
            Visit {
                req,
                local: here,
                phase: Phase::Reserved,
                in_label: None,
                out_label: None,
                auth: c.auth,
                refresh_ms,
                expires,
                waiting: None,
                down_mtu: None,
                mtu: None,
            },
        );
        self.timers.insert((expires, Timer::Expire(key)));
        match next {
            None => self.commit_visit(now, key, OutLabel::Pop, env),
            Some(nh) => {
                let mut c = c;
                c.route.current += 1;
                self.send(
                    now,
                    nh.addr,
                    Some(nh.egress.local),
                    Body::Create(c),
                    forward,
                    OnFail::Create(key),
                );
            }
        }
        Ok(())
    }

    /// Commit the visits whose commit [`Env::ready`] held, now that the
    /// driver has what they waited for (a fetched class): each is asked
    /// again, then committed, held again or refused.
    pub fn resume(&mut self, now_ms: u64, env: &mut dyn Env) {
        let mut held: Vec<(VisitKey, OutLabel)> = self
            .visits
            .iter_mut()
            .filter_map(|(k, v)| v.waiting.take().map(|o| (*k, o)))
            .collect();
        held.sort_by_key(|(k, _)| *k);
        for (key, out) in held {
            self.commit_visit(now_ms, key, out, env);
        }
    }

    /// Phase 2 at one visit: install, then COMMIT upstream (or PathUp).
    fn commit_visit(&mut self, now: u64, key: VisitKey, out: OutLabel, env: &mut dyn Env) {
        let Some(v) = self.visits.get(&key) else { return };
        let (local, refresh_ms) = (v.local, v.refresh_ms);
        let result = match env.ready(key, &v.req) {
            Ok(false) => {
                self.counters.held_commits += 1;
                if let Some(v) = self.visits.get_mut(&key) {
                    v.waiting = Some(out);
                }
                return;
            }
            Ok(true) => env.commit(
                key,
                &VisitInstall {
                    request: &v.req,
                    out,
                    downstream_mtu: v.down_mtu,
                },
            ),
            Err(r) => Err(r),
        };
        let result = match result {
            Ok(None) if key.hop > 0 => Err(Refusal::new(Reason::InstallFailed, "no label allocated")),
            Ok(Some(l)) if !(FIRST_LABEL..=MAX_LABEL).contains(&l) => {
                Err(Refusal::new(Reason::InstallFailed, "label out of range"))
            }
            r => r,
        };
        match result {
            Err(r) => {
                self.counters.refused += 1;
                let e = HopError {
                    hop: key.hop,
                    address: local,
                    reason: r.reason,
                    text: r.text,
                };
                // Visits downstream are committed already; nobody will
                // refresh them, so their soft state purges them.
                self.fail_visit(now, key, e, env);
            }
            Ok(in_label) => {
                self.counters.committed += 1;
                let lifetime = self.lifetime(refresh_ms);
                let mtu = env.visit_mtu(key);
                let Some(v) = self.visits.get_mut(&key) else { return };
                v.phase = Phase::Committed;
                v.mtu = mtu;
                v.in_label = in_label;
                v.out_label = match out {
                    OutLabel::Label(l) => Some(l),
                    OutLabel::Pop => None,
                };
                if key.hop == 0 {
                    v.expires = u64::MAX;
                    let refresh = v.refresh_ms;
                    if let Some(i) = self.initiated.get_mut(&key.path) {
                        i.up = true;
                    }
                    self.events.push_back(Event::PathUp { path: key.path });
                    if v.req.next.is_some() {
                        self.timers
                            .insert((now.saturating_add(refresh), Timer::Refresh(key.path)));
                    }
                } else {
                    v.expires = now.saturating_add(lifetime);
                    let (prev, local) = (v.req.prev, v.local);
                    let expires = v.expires;
                    self.timers.insert((expires, Timer::Expire(key)));
                    if let (Some(prev), Some(label)) = (prev, in_label) {
                        self.send(
                            now,
                            prev,
                            Some(local),
                            Body::Commit {
                                path: key.path,
                                hop: key.hop,
                                label,
                                mtu,
                            },
                            Vec::new(),
                            OnFail::Commit(key),
                        );
                    }
                }
            }
        }
    }

    /// Tear a visit down because of `error` (a refusal from downstream, a
    /// PATH_DOWN, a dead neighbour, a failed commit) and tell upstream:
    /// REFUSE while setting up, PATH_DOWN once committed — or the event,
    /// at the initiator.
    fn fail_visit(&mut self, now: u64, key: VisitKey, error: HopError, env: &mut dyn Env) {
        let Some(v) = self.visits.remove(&key) else { return };
        env.release(key);
        let setting_up = v.phase == Phase::Reserved;
        if key.hop == 0 {
            let up = self.initiated.remove(&key.path).is_some_and(|i| i.up);
            let HopError {
                hop,
                address,
                reason,
                text,
            } = error;
            self.events.push_back(if up {
                Event::PathDown {
                    path: key.path,
                    hop,
                    address,
                    reason,
                    text,
                }
            } else {
                Event::Refused {
                    path: key.path,
                    hop,
                    address,
                    reason,
                    text,
                }
            });
            return;
        }
        let Some(prev) = v.req.prev else { return };
        let body = if setting_up {
            Body::Refuse {
                path: key.path,
                hop: key.hop,
                error,
            }
        } else {
            Body::PathDown {
                path: key.path,
                hop: key.hop,
                error,
            }
        };
        self.send(now, prev, Some(v.local), body, Vec::new(), OnFail::Nothing);
    }

    fn expire(&mut self, now: u64, key: VisitKey, env: &mut dyn Env) {
        let Some(v) = self.visits.get(&key) else { return };
        if v.expires > now {
            return;
        }
        self.counters.expired += 1;
        let (reason, text) = if v.waiting.is_some() {
            (
                Reason::SetupTimeout,
                "what the visit needs (a plugin class) did not arrive in time",
            )
        } else if v.phase == Phase::Reserved {
            (Reason::SetupTimeout, "no COMMIT from downstream")
        } else {
            (Reason::Timeout, "refreshes stopped")
        };
        let e = HopError {
            hop: key.hop,
            address: v.local,
            reason,
            text: text.into(),
        };
        if key.hop == 0 {
            // The initiator gave up waiting: release what is downstream.
            let secret = self.initiated.get(&key.path).map(|i| i.secret);
            if let (Some(n), Some(secret)) = (v.req.next, secret) {
                self.send(
                    now,
                    n.addr,
                    Some(n.egress.local),
                    Body::Release {
                        path: key.path,
                        hop: 1,
                        secret,
                    },
                    Vec::new(),
                    OnFail::Nothing,
                );
            }
        }
        self.fail_visit(now, key, e, env);
    }

    fn refresh(&mut self, now: u64, path: PathId) {
        let key = VisitKey { path, hop: 0 };
        let Some(i) = self.initiated.get(&path) else { return };
        let Some(v) = self.visits.get(&key) else { return };
        let (Some(n), true) = (v.req.next, i.up) else { return };
        let every = i.refresh_ms.max(1);
        self.send(
            now,
            n.addr,
            Some(n.egress.local),
            Body::Refresh { path, hop: 1 },
            Vec::new(),
            OnFail::Refresh(key),
        );
        self.timers.insert((now.saturating_add(every), Timer::Refresh(path)));
    }

    fn record(&self, key: VisitKey, env: &mut dyn Env) -> StatusRecord {
        let v = &self.visits[&key];
        let mut j = serde_json::json!({
            "phase": match v.phase { Phase::Reserved => "reserved", Phase::Committed => "committed" },
            "in_label": v.in_label,
            "out_label": v.out_label,
            "plugins": v.req.plugins.iter().map(|p| p.class.clone()).collect::<Vec<_>>(),
            "node": env.visit_status(key),
        });
        let mut s = j.to_string();
        if s.len() > self.cfg.max_status_len {
            j["node"] = serde_json::Value::String("truncated".into());
            s = j.to_string();
            if s.len() > self.cfg.max_status_len {
                s = "{\"truncated\":true}".into();
            }
        }
        StatusRecord {
            hop: key.hop,
            address: v.local,
            status: s,
        }
    }

    /// A STATUS request reached visit `key`: add its record, then pass it
    /// on or turn it around.
    fn status_at(&mut self, now: u64, key: VisitKey, mut records: Vec<StatusRecord>, env: &mut dyn Env) {
        let rec = self.record(key, env);
        records.push(rec);
        let v = &self.visits[&key];
        match v.req.next {
            Some(n) => {
                let on_fail = OnFail::Status(key, records.clone());
                self.send(
                    now,
                    n.addr,
                    Some(n.egress.local),
                    Body::StatusRequest {
                        path: key.path,
                        hop: key.hop.saturating_add(1),
                        records,
                    },
                    Vec::new(),
                    on_fail,
                );
            }
            None => self.status_reply(now, key, records, None),
        }
    }

    /// Send a STATUS reply upstream from visit `key` (or report it, at the
    /// initiator).
    fn status_reply(&mut self, now: u64, key: VisitKey, records: Vec<StatusRecord>, error: Option<HopError>) {
        let Some(v) = self.visits.get(&key) else { return };
        if key.hop == 0 {
            let records = records
                .into_iter()
                .map(|r| VisitStatus {
                    hop: r.hop,
                    address: r.address,
                    status: serde_json::from_str(&r.status).unwrap_or(serde_json::Value::String(r.status)),
                })
                .collect();
            self.events.push_back(Event::Status {
                path: key.path,
                records,
                error,
            });
            return;
        }
        let Some(prev) = v.req.prev else { return };
        let local = v.local;
        self.send(
            now,
            prev,
            Some(local),
            Body::StatusReply {
                path: key.path,
                hop: key.hop,
                records,
                error,
            },
            Vec::new(),
            OnFail::Nothing,
        );
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
