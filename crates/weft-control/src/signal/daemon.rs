//! [`SignalNode`]: the agent's transport (UDP 270 through the node's local
//! queue, intercepted Router Alert datagrams included, and [`Node::send`]),
//! the fetches it waits for, and what the API shows.

use super::env::{EnvState, InstallStats, NodeEnv};
use super::fetch::{Fetched, ModuleFetcher};
use super::server::ServerModules;
use super::SignalConfig;
use crate::auth::Policy;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use weft_dataplane::Node;
use weft_packet::proto;
use weft_signal::{Agent, Event, Installed, PeerView, Refusal, SessionId, SessionView, SIGNAL_PORT};

/// The driver's own counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SignalStats {
    /// Signaling datagrams taken from the node.
    pub datagrams_in: u64,
    /// Frames handed to the node to send.
    pub frames_out: u64,
    /// Datagrams that could not be sent (no address of the family).
    pub unsendable: u64,
}

/// Most events kept for [`SignalNode::poll_event`] when nobody takes them.
const EVENT_QUEUE_MAX: usize = 1024;

/// A node's signaling daemon. See the module documentation of
/// [`crate::signal`].
pub struct SignalNode {
    agent: Agent,
    env: EnvState,
    events: VecDeque<Event>,
    stats: SignalStats,
}

impl std::fmt::Debug for SignalNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalNode")
            .field("sessions", &self.agent.session_count())
            .finish_non_exhaustive()
    }
}

/// Is `p` a datagram for the signaling daemon (UDP to port 270)?
fn is_signal(p: &weft_packet::Packet) -> bool {
    p.meta.flow.proto == proto::UDP && p.meta.flow.dport == SIGNAL_PORT
}

/// A 64-bit value from `seed` or the OS.
fn random_u64(seed: Option<u64>, salt: u64) -> u64 {
    match seed {
        Some(s) => {
            // splitmix64
            let mut z = s.wrapping_add(salt.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        None => {
            let mut b = [0u8; 8];
            let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
            u64::from_le_bytes(b)
        }
    }
}

impl SignalNode {
    /// Start the daemon on `node` at node clock `now` (ns), when Unix time
    /// is `unix_now_ns`: listen on UDP 270 and have the engine hand
    /// intercepted Router Alert datagrams to it; rights come from
    /// `policy`, code from `repos` through a fetcher
    /// ([`SignalNode::set_fetcher`]), per-principal usage from `accounts`.
    pub fn new(
        node: &mut Node,
        cfg: &SignalConfig,
        policy: Arc<Policy>,
        repos: Vec<String>,
        accounts: Box<dyn super::Accounts>,
        now: u64,
        unix_now_ns: u64,
    ) -> SignalNode {
        node.intercept_router_alert(proto::UDP, SIGNAL_PORT, &weft_signal::MAGIC);
        let addrs = node.addresses().into_iter().map(|(_, a)| a.addr()).collect();
        let mut acfg = cfg.agent_config(node.name(), addrs);
        acfg.unix_offset_ns = unix_now_ns.saturating_sub(now);
        acfg.initial_seq = random_u64(cfg.seed, 1) as u32;
        let mut seed = [0u8; 32];
        for (i, c) in seed.chunks_mut(8).enumerate() {
            c.copy_from_slice(&random_u64(cfg.seed, 2 + i as u64).to_le_bytes());
        }
        acfg.nonce_seed = seed;
        SignalNode {
            agent: Agent::new(acfg),
            env: EnvState {
                policy,
                accounts,
                fetcher: None,
                servers: None,
                repos,
                slots: HashMap::new(),
                stats: InstallStats::default(),
                max_sessions: cfg.max_sessions,
            },
            events: VecDeque::new(),
            stats: SignalStats::default(),
        }
    }

    /// Fetch module code through `f` (without one, every packet module is
    /// refused as `unsupported`).
    pub fn set_fetcher(&mut self, f: Box<dyn ModuleFetcher>) {
        self.env.fetcher = Some(f);
    }

    /// Host server modules through `s` (without one, they are refused as
    /// `unsupported`).
    pub fn set_servers(&mut self, s: Box<dyn ServerModules>) {
        self.env.servers = Some(s);
    }

    /// Where `session`'s server module listens, if it is serving (empty
    /// without a server-module host).
    pub fn server_listening(&self, session: SessionId) -> Vec<SocketAddr> {
        self.env
            .servers
            .as_ref()
            .map(|s| s.listening(session))
            .unwrap_or_default()
    }

    /// Replace the policy (the operator changed the principals).
    pub fn set_policy(&mut self, policy: Arc<Policy>) {
        self.env.policy = policy;
    }

    /// The agent (read-only: sessions, peers, counters).
    pub fn agent(&self) -> &Agent {
        &self.agent
    }

    fn split<'a>(&'a mut self, node: &'a mut Node) -> (&'a mut Agent, NodeEnv<'a>) {
        (
            &mut self.agent,
            NodeEnv {
                node,
                st: &mut self.env,
            },
        )
    }

    /// Take signaling datagrams from the node, finish fetched installs, run
    /// due timers, send what the agent produced. Returns the number of
    /// frames handed to [`Node::send`] (they leave at the node's next
    /// receive or tick).
    pub fn poll(&mut self, node: &mut Node, now: u64) -> usize {
        let addrs: Vec<IpAddr> = node.addresses().into_iter().map(|(_, a)| a.addr()).collect();
        if addrs != self.agent.config().addresses {
            self.agent.set_addresses(addrs);
        }
        while let Some(f) = self.env.fetcher.as_mut().and_then(|f| f.poll()) {
            self.module_fetched(node, now, f);
        }
        while let Some((session, r)) = self.env.servers.as_mut().and_then(|s| s.poll()) {
            if let Err(e) = &r {
                tracing::warn!(node = %node.name(), %session, error = %e, "signal: server module failed to start");
                let (_, mut env) = self.split(node);
                env.server_failed(session);
            }
            self.install_done(node, now, session, r);
        }
        while let Some(pkt) = node.poll_local_where(is_signal) {
            self.stats.datagrams_in += 1;
            let flow = pkt.meta.flow;
            let (src, dst) = (flow.src_addr(), flow.dst_addr());
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
                let from = SocketAddr::new(src, flow.sport);
                let (agent, mut env) = self.split(node);
                agent.handle_datagram(now, from, dst, payload, &mut env);
            }
            node.recycle(pkt);
        }
        if self.agent.poll_timeout().is_some_and(|t| t <= now) {
            let (agent, mut env) = self.split(node);
            agent.handle_timeout(now, &mut env);
        }
        self.flush(node)
    }

    /// A fetch ended: finish the install it was for (if the session is
    /// still waiting) and answer the SETUPs that waited.
    pub fn module_fetched(&mut self, node: &mut Node, now: u64, (session, result): Fetched) -> usize {
        let outcome = {
            let (_, mut env) = self.split(node);
            env.fetched(session, result)
        };
        match outcome {
            None => {}
            Some(r) => {
                if let Err(e) = &r {
                    tracing::warn!(node = %node.name(), %session, error = %e, "signal: install failed");
                }
                self.install_done(node, now, session, r);
            }
        }
        self.flush(node)
    }

    /// An install a [`ServerModules`] host (or the fetch) finished.
    pub fn install_done(
        &mut self,
        node: &mut Node,
        now: u64,
        session: SessionId,
        r: Result<Installed, Refusal>,
    ) -> usize {
        let (agent, mut env) = self.split(node);
        agent.install_done(now, session, r, &mut env);
        self.flush(node)
    }

    fn flush(&mut self, node: &mut Node) -> usize {
        let mut sent = 0;
        while let Some(t) = self.agent.poll_transmit() {
            let src = t.src.or_else(|| {
                let (port, _, _) = node.lookup_route(t.dst)?;
                let addrs = node.addresses();
                addrs
                    .iter()
                    .find(|(p, a)| *p == port && a.addr().is_ipv4() == t.dst.is_ipv4())
                    .or_else(|| addrs.iter().find(|(_, a)| a.addr().is_ipv4() == t.dst.is_ipv4()))
                    .map(|(_, a)| a.addr())
            });
            let Some(src) = src else {
                self.stats.unsendable += 1;
                continue;
            };
            let frame = if t.router_alert {
                weft_packet::build::udp_router_alert(
                    [0; 6],
                    [0; 6],
                    src,
                    t.dst,
                    SIGNAL_PORT,
                    t.dst_port,
                    64,
                    &t.payload,
                )
            } else {
                match (src, t.dst) {
                    (IpAddr::V4(s), IpAddr::V4(d)) => {
                        weft_packet::build::udp4([0; 6], [0; 6], s, d, SIGNAL_PORT, t.dst_port, 64, &t.payload)
                    }
                    (IpAddr::V6(s), IpAddr::V6(d)) => {
                        weft_packet::build::udp6([0; 6], [0; 6], s, d, SIGNAL_PORT, t.dst_port, 64, &t.payload)
                    }
                    _ => Vec::new(),
                }
            };
            if frame.is_empty() {
                self.stats.unsendable += 1;
                continue;
            }
            node.send(&frame);
            sent += 1;
        }
        self.stats.frames_out += sent as u64;
        while let Some(e) = self.agent.poll_event() {
            match &e {
                Event::Installed { session, owner } => {
                    tracing::info!(node = %node.name(), %session, %owner, "signal: module installed");
                }
                Event::Removed { session, why } => {
                    tracing::info!(node = %node.name(), %session, ?why, "signal: module removed");
                }
                Event::Response { .. } => {}
            }
            if self.events.len() >= EVENT_QUEUE_MAX {
                self.events.pop_front();
            }
            self.events.push_back(e);
        }
        sent
    }

    /// The operator removes `session` (and everything it installed).
    pub fn remove_session(&mut self, node: &mut Node, now: u64, session: SessionId) -> bool {
        let (agent, mut env) = self.split(node);
        let r = agent.remove_session(now, session, &mut env);
        self.flush(node);
        r
    }

    /// Stop without signalling (a shutdown): remove everything installed.
    /// Upstream nodes purge their state when refreshes stop reaching here.
    pub fn stop(&mut self, node: &mut Node) {
        node.stop_intercepting(proto::UDP, SIGNAL_PORT);
        let sessions: Vec<SessionId> = self.env.slots.keys().copied().collect();
        let (_, mut env) = self.split(node);
        for s in sessions {
            weft_signal::Env::remove(&mut env, s);
        }
    }

    /// When [`SignalNode::poll`] should run next (node clock, ns),
    /// datagrams and fetches aside.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.agent.poll_timeout()
    }

    /// The next event (installs, removals); the oldest are dropped past
    /// 1024.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Sessions held here.
    pub fn sessions(&self, now: u64) -> Vec<SessionView> {
        self.agent.sessions(now)
    }

    /// Recorded upstream peers.
    pub fn peers(&self, now: u64) -> Vec<PeerView> {
        self.agent.peers(now)
    }

    /// Counters: the agent's (by name), the driver's and the installs'.
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
            "driver": self.stats,
            "installs": self.env.stats,
            "sessions": self.agent.session_count(),
            "transactions": self.agent.transaction_count(),
            "pending_acks": self.agent.pending_count(),
            "servers": self.env.servers.as_ref().map(|s| {
                s.counters()
                    .into_iter()
                    .map(|(session, c)| {
                        let c: serde_json::Map<String, serde_json::Value> =
                            c.into_iter().map(|(k, v)| (k.to_string(), v.into())).collect();
                        (session.to_string(), serde_json::Value::Object(c))
                    })
                    .collect::<serde_json::Map<String, serde_json::Value>>()
            }),
        })
    }

    /// The driver's counters.
    pub fn stats(&self) -> &SignalStats {
        &self.stats
    }
}
