//! [`PbrNode`]: the agent's transport (UDP 7077 through the node's local
//! queue and [`Node::send`]), its events turned into path states, the
//! commands of the API, and the randomness it seeds the agent with.

use super::env::{EnvState, NodeEnv};
use super::fetch::{ClassFetcher, Fetch};
use super::views::{Initiated, PathState, PathView, Resources, VisitRecord};
use super::PbrConfig;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use weft_dataplane::element::ClassKind;
use weft_dataplane::{ElementClass, Node};
use weft_packet::proto;
use weft_pbr::{Agent, AgentConfig, CreateRequest, Event, HopError, PathId, PbrError, Reason, Refusal, PBR_PORT};

// ----- randomness ----------------------------------------------------------------

enum Rng {
    Seeded(u64),
    System(ring::rand::SystemRandom),
}

impl Rng {
    fn new(seed: Option<u64>) -> Rng {
        match seed {
            Some(s) => Rng::Seeded(s),
            None => Rng::System(ring::rand::SystemRandom::new()),
        }
    }

    /// Fill `b`; false when the OS has no randomness to give.
    fn fill(&mut self, b: &mut [u8]) -> bool {
        match self {
            Rng::Seeded(s) => {
                for chunk in b.chunks_mut(8) {
                    // splitmix64
                    *s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
                    let mut z = *s;
                    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                    z ^= z >> 31;
                    chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
                }
                true
            }
            Rng::System(r) => ring::rand::SecureRandom::fill(r, b).is_ok(),
        }
    }

    fn u32(&mut self) -> Option<u32> {
        let mut b = [0u8; 4];
        self.fill(&mut b).then_some(u32::from_le_bytes(b))
    }
}

// ----- the daemon ----------------------------------------------------------------

/// The driver's own counters ([`PbrNode::stats`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PbrStats {
    /// PBR datagrams taken from the node.
    pub datagrams_in: u64,
    /// Frames handed to the node to send.
    pub frames_out: u64,
    /// Messages that could not be sent (no source address of the
    /// destination's family).
    pub unsendable: u64,
    /// Paths created here.
    pub paths_created: u64,
    /// Paths that came up.
    pub paths_up: u64,
    /// Paths refused.
    pub paths_refused: u64,
    /// Paths that went down.
    pub paths_down: u64,
    /// Paths released.
    pub paths_released: u64,
    /// Creates refused for want of OS randomness.
    pub no_randomness: u64,
}

/// Most events kept for [`PbrNode::poll_event`] when nobody takes them.
const EVENT_QUEUE_MAX: usize = 1024;

/// A node's PBR daemon. See the module documentation.
pub struct PbrNode {
    agent: Agent,
    cfg: PbrConfig,
    env: EnvState,
    rng: Rng,
    initiated: HashMap<PathId, Initiated>,
    finished: VecDeque<PathId>,
    events: VecDeque<Event>,
    counters: PbrStats,
}

impl std::fmt::Debug for PbrNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PbrNode")
            .field("visits", &self.agent.visit_count())
            .field("initiated", &self.initiated.len())
            .finish_non_exhaustive()
    }
}

fn is_pbr(p: &weft_packet::Packet) -> bool {
    p.meta.flow.proto == proto::UDP && p.meta.flow.dport == PBR_PORT
}

impl PbrNode {
    /// Start the daemon on `node`: listen on UDP 7077; the agent's
    /// addresses are the node's.
    pub fn new(node: &mut Node, cfg: PbrConfig) -> PbrNode {
        node.listen(proto::UDP, PBR_PORT);
        let mut rng = Rng::new(cfg.seed);
        let mut acfg = AgentConfig::new(node.addresses().into_iter().map(|(_, a)| a.addr()).collect());
        acfg.initial_seq = rng.u32().unwrap_or(1);
        // Random, so that a restarted daemon does not reuse its numbers, and
        // short enough to type.
        acfg.first_path_number = rng.u32().map(|n| 1 + n % 1_000_000).unwrap_or(1);
        PbrNode {
            agent: Agent::new(acfg),
            cfg,
            env: EnvState::default(),
            rng,
            initiated: HashMap::new(),
            finished: VecDeque::new(),
            events: VecDeque::new(),
            counters: PbrStats::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &PbrConfig {
        &self.cfg
    }

    /// Fetch classes this node lacks through `f` (without one they are
    /// refused as `unknown-class` at reservation).
    pub fn set_fetcher(&mut self, f: Box<dyn ClassFetcher>) {
        self.env.fetcher = Some(f);
    }

    /// A fetch started by the daemon finished: register the class (a
    /// built-in class of the same name is never replaced) or remember why
    /// it failed, then go on with the commits that waited for it. Returns
    /// the frames handed to [`Node::send`], as [`PbrNode::poll`].
    pub fn class_fetched(
        &mut self,
        node: &mut Node,
        now_ms: u64,
        name: &str,
        result: Result<ElementClass, Refusal>,
    ) -> usize {
        let fetch = match result {
            Ok(class) => {
                let builtin = node
                    .classes()
                    .into_iter()
                    .any(|(c, k, _)| c == class.name && k == ClassKind::Native);
                if builtin {
                    Fetch::Failed(
                        Refusal::new(
                            Reason::ClassRejected,
                            format!("{} is a built-in class; a plugin may not replace it", class.name),
                        ),
                        now_ms,
                    )
                } else if class.name != name {
                    Fetch::Failed(
                        Refusal::new(
                            Reason::ClassRejected,
                            format!("asked for plugin {name}, got class {}", class.name),
                        ),
                        now_ms,
                    )
                } else {
                    node.upsert_class(class);
                    Fetch::Done
                }
            }
            Err(r) => Fetch::Failed(r, now_ms),
        };
        match &fetch {
            Fetch::Failed(r, _) => {
                self.env.fetch_stats.failed += 1;
                tracing::warn!(node = %node.name(), plugin = %name, error = %r, "pbr: plugin class fetch failed");
            }
            _ => {
                self.env.fetch_stats.registered += 1;
                tracing::info!(node = %node.name(), plugin = %name, "pbr: plugin class fetched and registered");
            }
        }
        self.env.fetches.insert(name.to_string(), fetch);
        let (agent, mut env) = self.split(node, now_ms);
        agent.resume(now_ms, &mut env);
        self.flush(node, now_ms)
    }

    /// The agent and the node as its [`Env`], at `now_ms` (the time a
    /// failed class fetch is judged by).
    fn split<'a>(&'a mut self, node: &'a mut Node, now_ms: u64) -> (&'a mut Agent, NodeEnv<'a>) {
        self.env.now_ms = now_ms;
        let env = NodeEnv {
            node,
            st: &mut self.env,
            cfg: &self.cfg,
        };
        (&mut self.agent, env)
    }

    /// The agent (read-only: its paths and counters).
    pub fn agent(&self) -> &Agent {
        &self.agent
    }

    /// Take PBR datagrams from the node, run due timers, send what the
    /// agent produced. Returns the number of frames handed to
    /// [`Node::send`] (they leave at the node's next receive or tick).
    pub fn poll(&mut self, node: &mut Node, now_ms: u64) -> usize {
        let mut sent = 0;
        while let Some((name, r)) = self.env.fetcher.as_mut().and_then(|f| f.poll()) {
            sent += self.class_fetched(node, now_ms, &name, r);
        }
        while let Some(pkt) = node.poll_local_where(is_pbr) {
            self.counters.datagrams_in += 1;
            let (src, dst) = (pkt.meta.flow.src_addr(), pkt.meta.flow.dst_addr());
            let l4 = pkt.meta.l4 as usize;
            let d = pkt.data();
            let payload = match (src, dst, d.get(l4 + 4..l4 + 6)) {
                (Some(_), Some(_), Some(len)) if l4 > 0 => {
                    let end = (l4 + u16::from_be_bytes([len[0], len[1]]) as usize).min(d.len());
                    d.get(l4 + 8..end)
                }
                _ => None,
            };
            if let (Some(src), Some(dst), Some(payload)) = (src, dst, payload) {
                let (agent, mut env) = self.split(node, now_ms);
                agent.handle_datagram(now_ms, src, dst, payload, &mut env);
            }
            node.recycle(pkt);
        }
        if self.agent.poll_timeout().is_some_and(|t| t <= now_ms) {
            let (agent, mut env) = self.split(node, now_ms);
            agent.handle_timeout(now_ms, &mut env);
        }
        sent + self.flush(node, now_ms)
    }

    fn flush(&mut self, node: &mut Node, now_ms: u64) -> usize {
        let mut sent = 0;
        while let Some(t) = self.agent.poll_transmit() {
            let src = t.src.or_else(|| {
                let (port, _, _) = node.lookup_route(t.dst)?;
                node.addresses()
                    .into_iter()
                    .find(|(p, a)| *p == port && a.addr().is_ipv4() == t.dst.is_ipv4())
                    .map(|(_, a)| a.addr())
            });
            let frame = match (src, t.dst) {
                (Some(IpAddr::V4(s)), IpAddr::V4(d)) => {
                    weft_packet::build::udp4([0; 6], [0; 6], s, d, PBR_PORT, t.port, 64, &t.payload)
                }
                (Some(IpAddr::V6(s)), IpAddr::V6(d)) => {
                    weft_packet::build::udp6([0; 6], [0; 6], s, d, PBR_PORT, t.port, 64, &t.payload)
                }
                _ => Vec::new(),
            };
            if frame.is_empty() {
                self.counters.unsendable += 1;
                continue;
            }
            node.send(&frame);
            sent += 1;
        }
        self.counters.frames_out += sent as u64;
        self.take_events(now_ms);
        sent
    }

    fn take_events(&mut self, now_ms: u64) {
        while let Some(ev) = self.agent.poll_event() {
            let (path, state, error) = match &ev {
                Event::PathUp { path } => {
                    self.counters.paths_up += 1;
                    (*path, Some(PathState::Up), None)
                }
                Event::Refused {
                    path,
                    hop,
                    address,
                    reason,
                    text,
                }
                | Event::PathDown {
                    path,
                    hop,
                    address,
                    reason,
                    text,
                } => {
                    let state = if matches!(ev, Event::Refused { .. }) {
                        self.counters.paths_refused += 1;
                        PathState::Refused
                    } else {
                        self.counters.paths_down += 1;
                        PathState::Down
                    };
                    let e = HopError {
                        hop: *hop,
                        address: *address,
                        reason: *reason,
                        text: text.clone(),
                    };
                    (*path, Some(state), Some(e))
                }
                Event::Released { path } => {
                    self.counters.paths_released += 1;
                    (*path, Some(PathState::Released), None)
                }
                Event::Status { path, records, error } => {
                    if let Some(i) = self.initiated.get_mut(path) {
                        i.status = Some((
                            records.iter().map(VisitRecord::from_status).collect(),
                            error.clone(),
                            now_ms,
                        ));
                    }
                    (*path, None, None)
                }
            };
            if let (Some(state), Some(i)) = (state, self.initiated.get_mut(&path)) {
                i.state = state;
                if state == PathState::Up {
                    i.up_ms = Some(now_ms);
                }
                if error.is_some() {
                    i.error = error;
                }
                if !matches!(state, PathState::Up | PathState::Pending) {
                    self.finished.push_back(path);
                    while self.finished.len() > self.cfg.history {
                        if let Some(old) = self.finished.pop_front() {
                            if self.initiated.get(&old).is_some_and(|i| !i.is_live()) {
                                self.initiated.remove(&old);
                            }
                        }
                    }
                }
            }
            if self.events.len() >= EVENT_QUEUE_MAX {
                self.events.pop_front();
            }
            self.events.push_back(ev);
        }
    }

    /// Set up a path from this node (its first hop must be one of the
    /// node's addresses). The outcome shows in [`PbrNode::path`] and as an
    /// event once COMMIT or REFUSE comes back.
    pub fn create(&mut self, node: &mut Node, now_ms: u64, req: CreateRequest) -> Result<PathId, PbrError> {
        let mut secret = [0u8; weft_pbr::wire::SECRET_LEN];
        if !self.rng.fill(&mut secret) {
            self.counters.no_randomness += 1;
            let address = req.hops.first().map(|h| h.addr).unwrap_or(IpAddr::from([0, 0, 0, 0]));
            return Err(PbrError::Refused(HopError {
                hop: 0,
                address,
                reason: Reason::InstallFailed,
                text: "no randomness for the path's release secret".into(),
            }));
        }
        let (agent, mut env) = self.split(node, now_ms);
        let id = agent.create(now_ms, req.clone(), secret, &mut env)?;
        self.counters.paths_created += 1;
        self.initiated.insert(
            id,
            Initiated {
                req,
                state: PathState::Pending,
                error: None,
                created_ms: now_ms,
                up_ms: None,
                status: None,
            },
        );
        self.flush(node, now_ms);
        Ok(id)
    }

    /// Release a path initiated here: its state here goes at once, RELEASE
    /// travels downstream.
    pub fn release(&mut self, node: &mut Node, now_ms: u64, id: PathId) -> Result<(), PbrError> {
        let (agent, mut env) = self.split(node, now_ms);
        agent.release(now_ms, id, &mut env)?;
        self.flush(node, now_ms);
        Ok(())
    }

    /// Ask every visit of a path initiated here for its status; the reply
    /// lands in [`PathView::status`].
    pub fn request_status(&mut self, node: &mut Node, now_ms: u64, id: PathId) -> Result<(), PbrError> {
        let (agent, mut env) = self.split(node, now_ms);
        agent.request_status(now_ms, id, &mut env)?;
        self.flush(node, now_ms);
        Ok(())
    }

    /// Stop the daemon without signalling (a crash or a shutdown): remove
    /// everything it installed on the node. Neighbours purge their state
    /// when refreshes stop.
    pub fn stop(&mut self, node: &mut Node) {
        self.env.release_all(node);
    }

    /// One path: initiated here (hop 0), else the first visit held here.
    pub fn path(&self, id: PathId) -> Option<PathView> {
        let mine = self
            .agent
            .paths()
            .into_iter()
            .filter(|s| s.key.path == id)
            .collect::<Vec<_>>();
        if let Some(i) = self.initiated.get(&id) {
            return Some(i.view(id, mine.iter().find(|s| s.key.hop == 0)));
        }
        mine.first().map(PathView::of_visit)
    }

    /// Every path initiated here (including finished ones still in the
    /// history) and every visit held here for others, sorted by path and
    /// hop.
    pub fn paths(&self) -> Vec<PathView> {
        let summaries = self.agent.paths();
        let mut v: Vec<PathView> = Vec::with_capacity(summaries.len() + self.finished.len());
        for (id, i) in &self.initiated {
            let s = summaries.iter().find(|s| s.key.path == *id && s.key.hop == 0);
            v.push(i.view(*id, s));
        }
        for s in summaries
            .iter()
            .filter(|s| !(s.key.hop == 0 && self.initiated.contains_key(&s.key.path)))
        {
            v.push(PathView::of_visit(s));
        }
        v.sort_by_key(|p| (p.path, p.hop));
        v
    }

    /// When [`PbrNode::poll`] should run next (ms), datagrams aside.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.agent.poll_timeout()
    }

    /// Messages sent and not yet acknowledged (the daemon is busy).
    pub fn pending(&self) -> usize {
        self.agent.pending_count()
    }

    /// The next event about paths initiated here (also recorded in
    /// [`PbrNode::path`]); the oldest are dropped past 1024.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// What PBR holds on the node.
    pub fn resources(&self) -> Resources {
        self.env.resources()
    }

    /// Counters: the agent's (by name), the driver's, and what is held.
    pub fn counters(&self) -> serde_json::Value {
        let agent: serde_json::Map<String, serde_json::Value> = self
            .agent
            .counters()
            .iter()
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::from(v)))
            .collect();
        serde_json::json!({
            "agent": agent,
            "driver": self.counters,
            "install_failures": self.env.install_failures,
            "class_fetches": self.env.fetch_stats,
            "visits": self.agent.visit_count(),
            "initiated": self.initiated.values().filter(|i| i.is_live()).count(),
            "pending_acks": self.agent.pending_count(),
            "resources": self.env.resources(),
        })
    }

    /// The driver's counters (cheap; [`PbrNode::counters`] has them all).
    pub fn stats(&self) -> &PbrStats {
        &self.counters
    }

    /// When the path initiated here came up, and when it was created (ms).
    pub fn setup_times(&self, id: PathId) -> Option<(u64, Option<u64>)> {
        self.initiated.get(&id).map(|i| (i.created_ms, i.up_ms))
    }
}
