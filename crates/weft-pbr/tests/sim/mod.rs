//! A deterministic simulation of PBR agents: fake node environments that
//! record what the protocol asks of them, and a fake network that carries
//! datagrams between agents by address in virtual time, with loss, filters
//! and dead nodes (quinn-proto's `tests/util.rs` shape).
#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::net::IpAddr;
use weft_pbr::wire::msg;
use weft_pbr::{
    Agent, AgentConfig, CreateRequest, Egress, Env, Event, FlowSpec, Hop, OutLabel, PathId, Plugin, PortRange, Reason,
    Refusal, VisitInstall, VisitKey, VisitRequest,
};

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// What a commit installed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Installed {
    pub in_label: Option<u32>,
    pub out: OutLabel,
    pub plugins: Vec<String>,
    pub first: bool,
    pub last: bool,
}

/// A node as the protocol sees it: adjacency, bandwidth, plugin classes
/// and capacity; records every reservation, commit and release.
#[derive(Debug, Default)]
pub struct SimEnv {
    pub name: String,
    /// (local address, neighbour's address) per link; the port is the index.
    pub links: Vec<(IpAddr, IpAddr)>,
    pub addrs: Vec<IpAddr>,
    /// Every address in the network (loose egress reaches them all).
    pub routable: HashSet<IpAddr>,
    pub bandwidth_left: u64,
    pub classes: HashSet<String>,
    pub plugin_slots: usize,
    pub plugins_used: usize,
    pub reserved: BTreeMap<VisitKey, (u64, usize)>,
    pub committed: BTreeMap<VisitKey, Installed>,
    pub commit_count: BTreeMap<VisitKey, u32>,
    pub releases: u32,
    pub next_label: u32,
    pub fail_commit: Option<Refusal>,
    /// Classes being fetched: a commit needing one is held ([`Env::ready`]).
    pub fetching: HashSet<String>,
    /// Classes whose fetch failed, with the refusal to give.
    pub fetch_failed: BTreeMap<String, Refusal>,
    /// The node's link MTU; `None`: the node reports no PATH_MTU (as one
    /// that predates it).
    pub link_mtu: Option<u16>,
    /// What each commit was told by the next visit, and what it reported.
    pub mtus: BTreeMap<VisitKey, (Option<u16>, Option<u16>)>,
}

impl SimEnv {
    /// Visits this node holds in any form.
    pub fn holds(&self) -> usize {
        let mut keys: HashSet<&VisitKey> = self.reserved.keys().collect();
        keys.extend(self.committed.keys());
        keys.len()
    }
}

impl Env for SimEnv {
    fn egress(&mut self, to: IpAddr, strict: bool) -> Result<Egress, Refusal> {
        if let Some((i, (local, _))) = self.links.iter().enumerate().find(|(_, l)| l.1 == to) {
            return Ok(Egress {
                port: i as u16,
                local: *local,
            });
        }
        if strict {
            return Err(Refusal::new(
                Reason::NotAdjacent,
                format!("{to} is not a neighbour of {}", self.name),
            ));
        }
        if self.routable.contains(&to) {
            Ok(Egress {
                port: 0,
                local: self.addrs[0],
            })
        } else {
            Err(Refusal::new(Reason::NoRoute, format!("no route to {to}")))
        }
    }

    fn reserve(&mut self, key: VisitKey, req: &VisitRequest) -> Result<(), Refusal> {
        assert!(
            !self.reserved.contains_key(&key) && !self.committed.contains_key(&key),
            "reserved twice: {key:?}"
        );
        if let Some(p) = req.plugins.iter().find(|p| !self.classes.contains(&p.class)) {
            return Err(Refusal::new(
                Reason::UnknownClass,
                format!("class {} not available", p.class),
            ));
        }
        if self.plugins_used + req.plugins.len() > self.plugin_slots {
            return Err(Refusal::new(Reason::NoPluginCapacity, "no plugin slots"));
        }
        let bw = if req.next.is_some() { req.bandwidth_bps } else { 0 };
        if bw > self.bandwidth_left {
            return Err(Refusal::new(
                Reason::InsufficientBandwidth,
                format!("{bw} bit/s asked, {} left", self.bandwidth_left),
            ));
        }
        self.bandwidth_left -= bw;
        self.plugins_used += req.plugins.len();
        self.reserved.insert(key, (bw, req.plugins.len()));
        Ok(())
    }

    fn ready(&mut self, _key: VisitKey, req: &VisitRequest) -> Result<bool, Refusal> {
        if let Some(r) = req.plugins.iter().find_map(|p| self.fetch_failed.get(&p.class)) {
            return Err(r.clone());
        }
        Ok(!req.plugins.iter().any(|p| self.fetching.contains(&p.class)))
    }

    fn commit(&mut self, key: VisitKey, install: &VisitInstall<'_>) -> Result<Option<u32>, Refusal> {
        assert!(self.reserved.contains_key(&key), "commit without reservation: {key:?}");
        if let Some(r) = self.fail_commit.clone() {
            return Err(r);
        }
        *self.commit_count.entry(key).or_default() += 1;
        let in_label = if install.request.is_first() {
            None
        } else {
            self.next_label += 1;
            Some(self.next_label)
        };
        // A label costs 4 octets on the segment; ENCRYPT grows packets by 57.
        let own = self.link_mtu.filter(|_| !install.request.is_last()).map(|m| m - 4);
        let room = match (own, install.downstream_mtu) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b).filter(|_| self.link_mtu.is_some()),
        };
        let grow = 57 * install.request.plugins.iter().filter(|p| p.class == "ENCRYPT").count() as u16;
        self.mtus
            .insert(key, (install.downstream_mtu, room.map(|r| r.saturating_sub(grow))));
        self.committed.insert(
            key,
            Installed {
                in_label,
                out: install.out,
                plugins: install.request.plugins.iter().map(|p| p.class.clone()).collect(),
                first: install.request.is_first(),
                last: install.request.is_last(),
            },
        );
        Ok(in_label)
    }

    fn visit_mtu(&mut self, key: VisitKey) -> Option<u16> {
        self.mtus.get(&key).and_then(|m| m.1)
    }

    fn release(&mut self, key: VisitKey) {
        if let Some((bw, plugins)) = self.reserved.remove(&key) {
            self.bandwidth_left += bw;
            self.plugins_used -= plugins;
            self.releases += 1;
        }
        self.committed.remove(&key);
    }

    fn visit_status(&mut self, key: VisitKey) -> serde_json::Value {
        serde_json::json!({
            "node": self.name,
            "plugins": self.committed.get(&key).map(|c| c.plugins.clone()).unwrap_or_default(),
            "packets": 0,
        })
    }
}

pub struct SimNode {
    pub agent: Agent,
    pub env: SimEnv,
    pub dead: bool,
}

/// One datagram that went over the network (for assertions).
#[derive(Clone, Debug)]
pub struct Sent {
    pub at: u64,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub msg_type: u8,
    pub dropped: bool,
}

/// (arrival time, order, src, dst, payload).
type InFlight = (u64, u64, IpAddr, IpAddr, Vec<u8>);

type Filter = Box<dyn FnMut(IpAddr, IpAddr, &[u8]) -> bool>;

pub struct Net {
    pub now: u64,
    pub nodes: Vec<SimNode>,
    names: HashMap<String, usize>,
    owner: HashMap<IpAddr, usize>,
    queue: BinaryHeap<Reverse<InFlight>>,
    order: u64,
    pub latency: u64,
    /// Loss in parts per thousand, from a seeded generator.
    pub loss_permille: u32,
    rng: u64,
    /// Returns true to drop a datagram.
    pub filter: Option<Filter>,
    pub log: Vec<Sent>,
    pub events: Vec<(String, u64, Event)>,
}

impl Net {
    pub fn new() -> Net {
        Net {
            now: 0,
            nodes: Vec::new(),
            names: HashMap::new(),
            owner: HashMap::new(),
            queue: BinaryHeap::new(),
            order: 0,
            latency: 1,
            loss_permille: 0,
            rng: 0x9e37_79b9_7f4a_7c15,
            filter: None,
            log: Vec::new(),
            events: Vec::new(),
        }
    }

    /// A node with addresses; agents get default config (change through
    /// [`Net::configure`] before traffic).
    pub fn add_node(&mut self, name: &str, addrs: &[&str]) -> usize {
        let addrs: Vec<IpAddr> = addrs.iter().map(|a| ip(a)).collect();
        let i = self.nodes.len();
        for a in &addrs {
            self.owner.insert(*a, i);
        }
        self.nodes.push(SimNode {
            agent: Agent::new(AgentConfig::new(addrs.clone())),
            env: SimEnv {
                name: name.into(),
                addrs,
                bandwidth_left: 1_000_000_000,
                classes: ["ENCRYPT", "DECRYPT", "COUNT"].iter().map(|s| s.to_string()).collect(),
                plugin_slots: 8,
                next_label: 100,
                ..SimEnv::default()
            },
            dead: false,
        });
        self.names.insert(name.into(), i);
        i
    }

    /// Replace a node's agent with one of this configuration.
    pub fn configure(&mut self, name: &str, f: impl FnOnce(&mut AgentConfig)) {
        let n = self.node_mut(name);
        let mut cfg = n.agent.config().clone();
        f(&mut cfg);
        n.agent = Agent::new(cfg);
    }

    pub fn link(&mut self, a: &str, a_addr: &str, b: &str, b_addr: &str) {
        let (ia, ib) = (self.names[a], self.names[b]);
        self.nodes[ia].env.links.push((ip(a_addr), ip(b_addr)));
        self.nodes[ib].env.links.push((ip(b_addr), ip(a_addr)));
        self.nodes[ia].agent.config();
    }

    /// Call once all nodes exist: loose routes reach every address.
    pub fn finish(&mut self) {
        let all: HashSet<IpAddr> = self.owner.keys().copied().collect();
        for n in &mut self.nodes {
            n.env.routable = all.clone();
        }
    }

    pub fn node(&self, name: &str) -> &SimNode {
        &self.nodes[self.names[name]]
    }

    pub fn node_mut(&mut self, name: &str) -> &mut SimNode {
        let i = self.names[name];
        &mut self.nodes[i]
    }

    pub fn name_of(&self, i: usize) -> String {
        self.nodes[i].env.name.clone()
    }

    /// Kill a node: it neither sends, receives nor runs timers any more.
    pub fn kill(&mut self, name: &str) {
        self.node_mut(name).dead = true;
    }

    fn rand_permille(&mut self) -> u32 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32 % 1000
    }

    pub fn seed(&mut self, s: u64) {
        self.rng = s | 1;
    }

    /// Put a datagram on the wire as if `src` had sent it.
    pub fn inject(&mut self, src: IpAddr, dst: IpAddr, payload: Vec<u8>) {
        self.send(src, dst, payload);
    }

    fn send(&mut self, src: IpAddr, dst: IpAddr, payload: Vec<u8>) {
        let t = payload.get(1).copied().unwrap_or(0);
        let mut dropped = self.loss_permille > 0 && self.rand_permille() < self.loss_permille;
        if let Some(f) = self.filter.as_mut() {
            dropped |= f(src, dst, &payload);
        }
        self.log.push(Sent {
            at: self.now,
            src,
            dst,
            msg_type: t,
            dropped,
        });
        if !dropped {
            self.order += 1;
            self.queue
                .push(Reverse((self.now + self.latency, self.order, src, dst, payload)));
        }
    }

    /// Move every agent's transmits and events out.
    pub fn flush(&mut self) {
        for i in 0..self.nodes.len() {
            let name = self.name_of(i);
            while let Some(t) = self.nodes[i].agent.poll_transmit() {
                if self.nodes[i].dead {
                    continue;
                }
                let src = t.src.unwrap_or(self.nodes[i].env.addrs[0]);
                self.send(src, t.dst, t.payload);
            }
            while let Some(e) = self.nodes[i].agent.poll_event() {
                self.events.push((name.clone(), self.now, e));
            }
        }
    }

    /// Advance to the next delivery or timer; false when there is none.
    pub fn step(&mut self) -> bool {
        self.flush();
        let next_packet = self.queue.peek().map(|r| r.0 .0);
        let next_timer = self
            .nodes
            .iter()
            .filter(|n| !n.dead)
            .filter_map(|n| n.agent.poll_timeout())
            .min();
        let Some(t) = [next_packet, next_timer].into_iter().flatten().min() else {
            return false;
        };
        self.now = self.now.max(t);
        while self.queue.peek().is_some_and(|r| r.0 .0 <= self.now) {
            let Reverse((_, _, src, dst, payload)) = self.queue.pop().unwrap();
            if let Some(&i) = self.owner.get(&dst) {
                let n = &mut self.nodes[i];
                if !n.dead {
                    n.agent.handle_datagram(self.now, src, dst, &payload, &mut n.env);
                }
            }
        }
        for n in self.nodes.iter_mut().filter(|n| !n.dead) {
            if n.agent.poll_timeout().is_some_and(|t| t <= self.now) {
                n.agent.handle_timeout(self.now, &mut n.env);
            }
        }
        self.flush();
        true
    }

    /// Run until virtual time `t` (or until nothing is left to do).
    pub fn run_until(&mut self, t: u64) {
        loop {
            self.flush();
            let next_packet = self.queue.peek().map(|r| r.0 .0);
            let next_timer = self
                .nodes
                .iter()
                .filter(|n| !n.dead)
                .filter_map(|n| n.agent.poll_timeout())
                .min();
            match [next_packet, next_timer].into_iter().flatten().min() {
                Some(n) if n <= t => {
                    self.step();
                }
                _ => break,
            }
        }
        self.now = self.now.max(t);
    }

    pub fn run_for(&mut self, ms: u64) {
        let t = self.now + ms;
        self.run_until(t);
    }

    /// Run until an event satisfies `f` (returns it), or `max_ms` pass.
    pub fn run_until_event(&mut self, max_ms: u64, f: impl Fn(&str, &Event) -> bool) -> Option<(String, u64, Event)> {
        let end = self.now + max_ms;
        // Only events from now on (commands' events are still queued in
        // the agents).
        let mut seen = self.events.len();
        loop {
            self.flush();
            for e in &self.events[seen..] {
                if f(&e.0, &e.2) {
                    return Some(e.clone());
                }
            }
            seen = self.events.len();
            if self.now >= end || !self.step() {
                return None;
            }
        }
    }

    /// Start a path at `node` along `hops` (addresses; a `~` prefix marks
    /// a loose hop), with plugins `(hop, class)`.
    pub fn create(
        &mut self,
        node: &str,
        hops: &[&str],
        plugins: &[(u8, &str)],
        bw: u64,
        refresh_ms: u32,
    ) -> Result<PathId, weft_pbr::PbrError> {
        let req = CreateRequest {
            hops: hops
                .iter()
                .map(|h| match h.strip_prefix('~') {
                    Some(a) => Hop::loose(ip(a)),
                    None => Hop::strict(ip(h)),
                })
                .collect(),
            flowspec: FlowSpec {
                dport: PortRange::single(6060),
                protocol: Some(17),
                ..FlowSpec::any_v4()
            },
            plugins: plugins
                .iter()
                .map(|(h, c)| Plugin {
                    hop: *h,
                    class: c.to_string(),
                    config: "init".into(),
                })
                .collect(),
            bandwidth_bps: bw,
            refresh_ms,
        };
        let now = self.now;
        let n = self.node_mut(node);
        let r = n.agent.create(now, req, secret(), &mut n.env);
        self.flush();
        r
    }

    /// What `node`'s held commits waited for arrived: [`Agent::resume`].
    pub fn resume(&mut self, node: &str) {
        let now = self.now;
        let n = self.node_mut(node);
        n.agent.resume(now, &mut n.env);
        self.flush();
    }

    /// Visits held by live agents and env state (reservations + installs)
    /// everywhere except in dead nodes.
    pub fn live_state(&self) -> (usize, usize) {
        self.nodes
            .iter()
            .filter(|n| !n.dead)
            .fold((0, 0), |(a, e), n| (a + n.agent.visit_count(), e + n.env.holds()))
    }

    pub fn events_of(&self, node: &str) -> Vec<Event> {
        self.events
            .iter()
            .filter(|e| e.0 == node)
            .map(|e| e.2.clone())
            .collect()
    }

    pub fn sent_of_type(&self, t: u8) -> usize {
        self.log.iter().filter(|s| s.msg_type == t).count()
    }
}

impl Default for Net {
    fn default() -> Self {
        Net::new()
    }
}

/// The secret the harness's initiators use.
pub fn secret() -> [u8; 16] {
    *b"0123456789abcdef"
}

/// Whether a datagram is a message of type `t`.
pub fn is_type(payload: &[u8], t: u8) -> bool {
    payload.get(1) == Some(&t)
}

pub const REFRESH: u8 = msg::REFRESH;

/// PromethOS figure 2 (`topologies/promethos-fig2.toml`): the link between
/// Ri and Rj (i < j) is 10.ij.0.0/24, Ri having .i.
pub fn fig2() -> Net {
    let mut net = Net::new();
    let links = [
        (1, 2),
        (1, 4),
        (2, 3),
        (3, 4),
        (2, 5),
        (4, 5),
        (4, 7),
        (5, 6),
        (6, 7),
        (7, 8),
        (6, 8),
    ];
    for r in 1..=8 {
        let mut addrs: Vec<String> = links
            .iter()
            .filter(|(a, b)| *a == r || *b == r)
            .map(|(a, b)| format!("10.{a}{b}.0.{r}"))
            .collect();
        if r == 1 {
            addrs.insert(0, "10.0.1.1".into());
        }
        if r == 7 {
            addrs.insert(0, "10.0.7.1".into());
        }
        let refs: Vec<&str> = addrs.iter().map(String::as_str).collect();
        net.add_node(&format!("R{r}"), &refs);
    }
    for (a, b) in links {
        net.link(
            &format!("R{a}"),
            &format!("10.{a}{b}.0.{a}"),
            &format!("R{b}"),
            &format!("10.{a}{b}.0.{b}"),
        );
    }
    net.finish();
    net
}

/// The walk R1:R4:R3:R4:R7:R8:R7, each hop by its address on the link from
/// the previous one.
pub const FIG2_WALK: [&str; 7] = [
    "10.0.1.1",
    "10.14.0.4",
    "10.34.0.3",
    "10.34.0.4",
    "10.47.0.7",
    "10.78.0.8",
    "10.78.0.7",
];
