//! A simulated line of hosts, Weft nodes and plain routers for the
//! signaling scenarios: datagrams travel the line one link per
//! millisecond; a Weft node intercepts requests (Router Alert, port 270,
//! the magic) and receives what is addressed to it; a plain router
//! forwards everything; a host takes what comes to its port. Nodes' `Env`
//! is [`FakeEnv`]: a policy of principals, a code server of known
//! modules, installs that finish at once or after a delay.

#![allow(dead_code)]

use ipnet::IpNet;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use weft_signal::wire::{Body, Message};
use weft_signal::*;

pub const MS: u64 = MILLI;
/// Unix time at the simulation's clock 0.
pub const EPOCH_S: u64 = 1_700_000_000;
/// The requester's UDP port.
pub const HOST_PORT: u16 = 40000;

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn provider() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[1; 32])
}

pub fn stranger() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[2; 32])
}

/// What a principal may do in [`FakeEnv`]'s policy.
#[derive(Clone, Debug)]
pub struct FakePrincipal {
    pub name: String,
    pub modules: Vec<String>,
    pub prefixes: Vec<IpNet>,
    pub max_sessions: usize,
}

/// The node behind a simulated agent.
#[derive(Debug)]
pub struct FakeEnv {
    pub name: String,
    pub now: u64,
    pub principals: HashMap<[u8; 32], FakePrincipal>,
    /// The node's own classes (what dependencies name).
    pub classes: Vec<String>,
    /// The code server: name → (version, sha256).
    pub code: HashMap<String, (String, [u8; 32])>,
    /// 0: installs finish at once; else they finish this much later.
    pub install_delay: u64,
    /// Installs started and never finished.
    pub never_finish: bool,
    pub installed: BTreeMap<SessionId, (String, String)>,
    pub pending: Vec<(u64, SessionId)>,
    pub installs: u64,
    pub removes: u64,
}

impl FakeEnv {
    pub fn new(name: &str) -> FakeEnv {
        let mut principals = HashMap::new();
        principals.insert(
            Signer::public_key(&provider()),
            FakePrincipal {
                name: "provider".into(),
                modules: vec!["netmonitor".into(), "counter-plugin".into()],
                prefixes: vec!["10.0.0.0/8".parse().unwrap()],
                max_sessions: 8,
            },
        );
        let mut code = HashMap::new();
        code.insert("netmonitor".to_string(), ("1.0".to_string(), [0x11; 32]));
        code.insert("counter-plugin".to_string(), ("0.1".to_string(), [0x22; 32]));
        FakeEnv {
            name: name.into(),
            now: 0,
            principals,
            classes: vec!["counter".into(), "netmonitor-base".into()],
            code,
            install_delay: 0,
            never_finish: false,
            installed: BTreeMap::new(),
            pending: Vec::new(),
            installs: 0,
            removes: 0,
        }
    }

    fn owned(&self, key: &[u8; 32]) -> usize {
        let name = self.principals.get(key).map(|p| p.name.clone());
        self.installed
            .values()
            .filter(|(o, _)| Some(o) == name.as_ref())
            .count()
    }
}

impl Env for FakeEnv {
    fn authorize(&mut self, req: &Request, _ctx: &Context) -> Result<Grant, Refusal> {
        let Some(p) = self.principals.get(&req.key) else {
            return Err(Refusal::new(Reason::UnknownKey, "not a principal of this node"));
        };
        if let Some(m) = &req.module {
            if !p.modules.contains(&m.name) {
                return Err(Refusal::new(
                    Reason::ModuleNotAllowed,
                    format!("may not install {}", m.name),
                ));
            }
        }
        if let Some(f) = &req.filter {
            let inside = f.dst.is_some_and(|d| p.prefixes.iter().any(|a| a.contains(&d)));
            if !inside {
                return Err(Refusal::new(Reason::Prefix, "prefix outside the principal's"));
            }
        }
        if req.kind == Kind::Setup && self.owned(&req.key) >= p.max_sessions {
            return Err(Refusal::new(Reason::Resources, "at its limit of sessions"));
        }
        Ok(Grant {
            principal: p.name.clone(),
        })
    }

    fn install(&mut self, session: SessionId, req: &Request, grant: &Grant) -> Result<Install, Refusal> {
        for d in &req.dependencies {
            if !self.classes.contains(d) {
                return Err(Refusal::new(
                    Reason::MissingDependency,
                    format!("{d} is not on this node"),
                ));
            }
        }
        let (Some(m), Some(c)) = (&req.module, &req.code) else {
            return Err(Refusal::new(Reason::InstallFailed, "no module"));
        };
        let Some((version, sha)) = self.code.get(&m.name) else {
            return Err(Refusal::new(
                Reason::UnknownModule,
                format!("no code server has {}", m.name),
            ));
        };
        if *version != m.version || *sha != c.sha256 {
            return Err(Refusal::new(Reason::ModuleRejected, "hash or version mismatch"));
        }
        self.installs += 1;
        self.installed
            .insert(session, (grant.principal.clone(), m.name.clone()));
        if self.install_delay == 0 {
            return Ok(Install::Done(Installed {
                instance: Some(self.installs as u32),
                timing: None,
            }));
        }
        if !self.never_finish {
            self.pending.push((self.now + self.install_delay, session));
        }
        Ok(Install::Pending)
    }

    fn remove(&mut self, session: SessionId) {
        if self.installed.remove(&session).is_some() {
            self.removes += 1;
        }
        self.pending.retain(|(_, s)| *s != session);
    }

    fn probe(&mut self, _req: &Request, _grant: &Grant, entry: &mut Entry) {
        for c in &self.classes {
            entry.modules.push(wire::ModuleFact {
                kind: None,
                name: c.clone(),
                version: String::new(),
                remaining_s: None,
            });
        }
        entry.capabilities.push("packet-modules".into());
        entry.resources.push(wire::ResourceFact {
            name: "sessions".into(),
            free: 8 - self.installed.len() as u64,
            total: 8,
        });
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A host: receives datagrams to its own port, sends with a requester
    /// agent.
    Host,
    /// A Weft node with a signaling agent.
    Weft,
    /// A plain router: forwards everything.
    Router,
}

pub struct SimNode {
    pub name: String,
    pub addr: IpAddr,
    pub role: Role,
    pub agent: Agent,
    pub env: FakeEnv,
    /// A node that is down receives and sends nothing.
    pub up: bool,
}

#[derive(Clone, Debug)]
pub struct Datagram {
    pub from_node: String,
    pub to_node: String,
    pub from: SocketAddr,
    pub dst: IpAddr,
    pub dst_port: u16,
    pub router_alert: bool,
    pub payload: Vec<u8>,
}

impl Datagram {
    /// `REQUEST`, `RESPONSE`, `ACK` or `?`.
    pub fn kind(&self) -> &'static str {
        match Message::parse(&self.payload).map(|m| m.body) {
            Ok(Body::Request(_)) => "REQUEST",
            Ok(Body::Response(_)) => "RESPONSE",
            Ok(Body::Ack) => "ACK",
            Err(_) => "?",
        }
    }
}

type DropRule = Box<dyn FnMut(&Datagram) -> bool>;

pub struct Net {
    pub now: u64,
    pub nodes: Vec<SimNode>,
    queue: BTreeMap<(u64, u64), (usize, Datagram)>,
    counter: u64,
    /// Per link.
    pub latency: u64,
    drop: Option<DropRule>,
    pub dropped: Vec<Datagram>,
    pub delivered: Vec<(u64, Datagram)>,
    pub events: Vec<(u64, String, Event)>,
}

fn agent_for(name: &str, addr: IpAddr, role: Role, seed: u8) -> Agent {
    let mut cfg = match role {
        Role::Host => AgentConfig::requester(vec![addr]),
        _ => AgentConfig::new(name, vec![addr]),
    };
    cfg.unix_offset_ns = EPOCH_S * SECOND;
    cfg.nonce_seed = [seed; 32];
    cfg.initial_seq = u32::from(seed) * 1000;
    Agent::new(cfg)
}

impl Net {
    /// A line of (name, address, role), each linked to the next.
    pub fn line(spec: &[(&str, &str, Role)]) -> Net {
        let nodes = spec
            .iter()
            .enumerate()
            .map(|(i, (n, a, r))| SimNode {
                name: n.to_string(),
                addr: ip(a),
                role: *r,
                agent: agent_for(n, ip(a), *r, i as u8 + 1),
                env: FakeEnv::new(n),
                up: true,
            })
            .collect();
        Net {
            now: 0,
            nodes,
            queue: BTreeMap::new(),
            counter: 0,
            latency: MS,
            drop: None,
            dropped: Vec::new(),
            delivered: Vec::new(),
            events: Vec::new(),
        }
    }

    /// The figure of the tests: client C — R1 (Weft) — X (router) — R2
    /// (Weft) — server S.
    pub fn standard() -> Net {
        Net::line(&[
            ("C", "10.1.0.10", Role::Host),
            ("R1", "10.1.0.1", Role::Weft),
            ("X", "10.9.0.1", Role::Router),
            ("R2", "10.2.0.1", Role::Weft),
            ("S", "10.2.0.10", Role::Host),
        ])
    }

    pub fn idx(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    pub fn node(&self, name: &str) -> &SimNode {
        &self.nodes[self.idx(name)]
    }

    pub fn node_mut(&mut self, name: &str) -> &mut SimNode {
        let i = self.idx(name);
        &mut self.nodes[i]
    }

    /// Drop datagrams `rule` says true for (it sees each one once).
    pub fn drop_when(&mut self, rule: impl FnMut(&Datagram) -> bool + 'static) {
        self.drop = Some(Box::new(rule));
    }

    pub fn no_drops(&mut self) {
        self.drop = None;
    }

    /// Where a datagram sent by node `i` ends, and after how many links.
    fn route(&self, i: usize, d: &Datagram) -> Option<(usize, u64)> {
        let j = self.nodes.iter().position(|n| n.addr == d.dst);
        let target = j.unwrap_or(if self.nodes[i].addr < d.dst {
            self.nodes.len() - 1
        } else {
            0
        });
        let step: isize = if target >= i { 1 } else { -1 };
        let mut k = i as isize;
        let mut links = 0;
        loop {
            if k as usize == target && links > 0 {
                break;
            }
            k += step;
            if k < 0 || k as usize >= self.nodes.len() {
                return None;
            }
            links += 1;
            let n = &self.nodes[k as usize];
            if !n.up {
                return None;
            }
            let intercept =
                n.role == Role::Weft && d.router_alert && d.dst_port == SIGNAL_PORT && d.payload.starts_with(&MAGIC);
            if intercept || k as usize == target {
                break;
            }
        }
        let k = k as usize;
        let n = &self.nodes[k];
        let takes = match n.role {
            Role::Weft => d.dst_port == SIGNAL_PORT,
            Role::Host => n.addr == d.dst && d.dst_port == HOST_PORT,
            Role::Router => false,
        };
        takes.then_some((k, links))
    }

    fn flush(&mut self) {
        for i in 0..self.nodes.len() {
            while let Some(t) = self.nodes[i].agent.poll_transmit() {
                let n = &self.nodes[i];
                let sport = if n.role == Role::Host { HOST_PORT } else { SIGNAL_PORT };
                let mut d = Datagram {
                    from_node: n.name.clone(),
                    to_node: String::new(),
                    from: SocketAddr::new(t.src.unwrap_or(n.addr), sport),
                    dst: t.dst,
                    dst_port: t.dst_port,
                    router_alert: t.router_alert,
                    payload: t.payload,
                };
                if !n.up {
                    continue;
                }
                let Some((k, links)) = self.route(i, &d) else {
                    self.dropped.push(d);
                    continue;
                };
                d.to_node = self.nodes[k].name.clone();
                if self.drop.as_mut().is_some_and(|f| f(&d)) {
                    self.dropped.push(d);
                    continue;
                }
                self.counter += 1;
                self.queue
                    .insert((self.now + links * self.latency, self.counter), (k, d));
            }
            while let Some(e) = self.nodes[i].agent.poll_event() {
                let name = self.nodes[i].name.clone();
                self.events.push((self.now, name, e));
            }
        }
    }

    /// The next thing to happen: a datagram, an agent timer, an install
    /// finishing.
    fn next_time(&self) -> Option<u64> {
        let q = self.queue.keys().next().map(|k| k.0);
        let t = self
            .nodes
            .iter()
            .filter(|n| n.up)
            .filter_map(|n| n.agent.poll_timeout())
            .min();
        let p = self
            .nodes
            .iter()
            .filter(|n| n.up)
            .flat_map(|n| n.env.pending.iter().map(|p| p.0))
            .min();
        [q, t, p].into_iter().flatten().min()
    }

    /// Advance to the next event and handle everything due then; false
    /// when nothing is left.
    pub fn step(&mut self) -> bool {
        let Some(t) = self.next_time() else { return false };
        self.now = self.now.max(t);
        let now = self.now;
        while let Some((&(at, c), _)) = self.queue.iter().next() {
            if at > now {
                break;
            }
            let Some((k, d)) = self.queue.remove(&(at, c)) else {
                break;
            };
            let n = &mut self.nodes[k];
            if !n.up {
                continue;
            }
            n.env.now = now;
            let to = d.dst;
            n.agent.handle_datagram(now, d.from, to, &d.payload, &mut n.env);
            self.delivered.push((now, d));
        }
        for n in self.nodes.iter_mut().filter(|n| n.up) {
            n.env.now = now;
            let due: Vec<SessionId> = n.env.pending.iter().filter(|p| p.0 <= now).map(|p| p.1).collect();
            n.env.pending.retain(|p| p.0 > now);
            for s in due {
                let inst = Installed {
                    instance: Some(100),
                    timing: None,
                };
                n.agent.install_done(now, s, Ok(inst), &mut n.env);
            }
            if n.agent.poll_timeout().is_some_and(|t| t <= now) {
                n.agent.handle_timeout(now, &mut n.env);
            }
        }
        self.flush();
        true
    }

    /// Run until `cond` on a new event holds (returns it), or `limit` ns
    /// of simulated time pass.
    pub fn run_until_event(&mut self, limit: u64, cond: impl Fn(&str, &Event) -> bool) -> Option<Event> {
        let end = self.now + limit;
        let mut seen = self.events.len();
        loop {
            for (_, n, e) in &self.events[seen..] {
                if cond(n, e) {
                    return Some(e.clone());
                }
            }
            seen = self.events.len();
            if self.next_time().is_none_or(|t| t > end) {
                return None;
            }
            self.step();
        }
    }

    /// Run for `d` ns of simulated time.
    pub fn run_for(&mut self, d: u64) {
        let end = self.now + d;
        while self.next_time().is_some_and(|t| t <= end) {
            self.step();
        }
        self.now = self.now.max(end);
    }

    /// Sign `req` at `node` (a host) with `key`, send it from the node's
    /// address and return its nonce.
    pub fn send(&mut self, node: &str, req: Request, key: &dyn Signer) -> [u8; 16] {
        let now = self.now;
        let n = self.node_mut(node);
        let s = n.agent.sign(now, req, key).expect("signs");
        let nonce = s.request().nonce;
        let addr = n.addr;
        n.agent.send(now, s, addr, &mut n.env).expect("sends");
        self.flush();
        nonce
    }

    /// Send `signed` as it is from `node`.
    pub fn send_signed(&mut self, node: &str, signed: Signed) {
        let now = self.now;
        let n = self.node_mut(node);
        let addr = n.addr;
        n.agent.send(now, signed, addr, &mut n.env).expect("sends");
        self.flush();
    }

    /// Inject raw bytes as if `from` (a node) sent them to `dst` with the
    /// Router Alert option.
    pub fn inject(&mut self, from: &str, dst: &str, payload: Vec<u8>) {
        let i = self.idx(from);
        let n = &self.nodes[i];
        let sport = if n.role == Role::Host { HOST_PORT } else { SIGNAL_PORT };
        let d = Datagram {
            from_node: n.name.clone(),
            to_node: String::new(),
            from: SocketAddr::new(n.addr, sport),
            dst: ip(dst),
            dst_port: SIGNAL_PORT,
            router_alert: true,
            payload,
        };
        if let Some((k, links)) = self.route(i, &d) {
            self.counter += 1;
            self.queue
                .insert((self.now + links * self.latency, self.counter), (k, d));
        }
    }

    /// The response to the request with `nonce`, once it came.
    pub fn response(&mut self, limit: u64, nonce: [u8; 16]) -> Option<(u8, Vec<Entry>)> {
        let e = self.run_until_event(
            limit,
            |_, e| matches!(e, Event::Response { nonce: n, .. } if *n == nonce),
        )?;
        match e {
            Event::Response { flags, stack, .. } => Some((flags, stack)),
            _ => None,
        }
    }

    /// A node goes down (and loses everything) or comes back empty.
    pub fn restart(&mut self, name: &str) {
        let i = self.idx(name);
        let n = &mut self.nodes[i];
        let (addr, role) = (n.addr, n.role);
        n.agent = agent_for(name, addr, role, 100 + i as u8);
        n.agent.set_unix_offset(EPOCH_S * SECOND);
        n.env.installed.clear();
        n.env.pending.clear();
        // Agents start their clock at 0; this one's timers are relative to
        // the net's now, which only matters for the sweep.
    }
}

/// A SETUP of netmonitor 1.0 (UDP 5060 toward 10.2.0.0/16) in `session`
/// toward `dest`, for `lifetime` s.
pub fn setup(session: u8, dest: &str, lifetime: u32) -> Request {
    let mut r = Request::new(Kind::Setup, SessionId([session; 16]), ip(dest));
    r.module = Some(Module {
        kind: ModuleKind::Packet,
        name: "netmonitor".into(),
        version: "1.0".into(),
    });
    r.code = Some(Code {
        url: "http://10.9.9.9:8000".into(),
        sha256: [0x11; 32],
    });
    r.filter = Some(Filter {
        proto: Some(17),
        dports: (5060, 5060),
        dst: Some("10.2.0.0/16".parse().unwrap()),
    });
    r.lifetime_s = Some(lifetime);
    r
}

pub fn probe(session: u8, dest: &str) -> Request {
    let mut r = Request::new(Kind::Probe, SessionId([session; 16]), ip(dest));
    r.probe = Some(Probe::ALL);
    r
}

pub fn remove(session: u8, dest: &str) -> Request {
    Request::new(Kind::Remove, SessionId([session; 16]), ip(dest))
}

/// The (node, reason) of each entry, in path order.
pub fn summary(stack: &[Entry]) -> Vec<(String, Reason)> {
    stack.iter().map(|e| (e.node.clone(), e.reason)).collect()
}

pub fn ok_at(names: &[&str]) -> Vec<(String, Reason)> {
    names.iter().map(|n| (n.to_string(), Reason::Ok)).collect()
}
