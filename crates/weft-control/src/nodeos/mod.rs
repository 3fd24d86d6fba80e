//! The NodeOS service (Snow on Silk §2, §4): programs outside the node
//! create domains and open channels over a Unix socket
//! ([`weft_nodeos::proto`]); the packets travel over memif
//! ([`weft_memif`]), Weft being the memif server.
//!
//! The service lives on the node's thread beside it (a runner daemon,
//! [`crate::runner::Daemons::nodeos`]); [`NodeOsService::poll`] is called
//! after each round of receive and does, within a bounded budget:
//!
//! 1. out-channels: drain each attached application's ring into the node's
//!    output ([`weft_dataplane::Node::send`]), through the channel's token
//!    bucket (from its domain's bandwidth limit);
//! 2. every [`CONTROL_EVERY`]: accept control connections and answer their
//!    requests, advance memif handshakes, check that attached applications
//!    are alive, and tear down what went away or what a destroyed domain
//!    took with it.
//!
//! **Objects.** A channel is a filter and a `nodeos-chan` instance in the
//! channel's domain (the domain's scheduler serves it, its limits apply,
//! and destroying the domain removes both: the service hears of it through
//! [`weft_dataplane::Node::on_domain_removed`] and lets go of the memif)
//! plus, for in/out channels, a memif interface (id, secret). An
//! application attaches with any memif client given that id and secret;
//! its uid must be the one that opened the channel (or root).
//!
//! **Who.** A control connection's principal comes from `SO_PEERCRED`, as
//! on the API socket: root and the node's own user are the operator; other
//! uids must be `[[principal]]`s with `uid = …` and the `filter` right (a
//! channel diverts traffic: its destination prefix must be inside the
//! principal's prefixes). Domains a principal creates carry its name as
//! owner; handles of other principals' objects are refused.

mod api;
mod element;
mod pattern;

pub use element::{ChanCounters, CLASS};
pub use pattern::{compile, Pattern};

use crate::auth::{Policy, Principal};
use element::Registry;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use weft_dataplane::domain::DomainObject;
use weft_dataplane::{DomainId, FilterId, InstanceId, Node, TokenBucket};
use weft_memif::io::{FromClient, Link, Server};
use weft_nodeos::{ChanHandle, Event, MAX_LINE};

/// How often control work runs (accepting, requests, handshakes, liveness),
/// ns: rarely enough that the packet path pays nothing for it, often
/// enough that a request waits at most this long.
pub const CONTROL_EVERY: u64 = 200_000;
/// How long an idle service (nothing attached, no connection) lets the
/// node sleep, ns.
pub const IDLE_CONTROL: u64 = 10_000_000;
/// Frames taken from one out-channel per poll (the runner's I/O batch).
pub const OUT_BATCH: usize = 32;
/// Most control connections at once.
pub const MAX_CONNS: usize = 32;
/// Most channels per principal (the operator is not limited).
pub const MAX_CHANS_PER_PRINCIPAL: usize = 64;
/// Largest frame an application may send (bigger ones are dropped).
pub const MAX_FRAME: usize = 9216;
/// Events kept per principal; older ones are dropped.
const MAX_EVENTS: usize = 1024;

/// How the service is set up.
#[derive(Clone, Debug)]
pub struct NodeOsConfig {
    /// Directory of the sockets (`nodeos.sock`, `memif.sock`).
    pub dir: PathBuf,
    /// The node process's uid (its callers are the operator).
    pub node_uid: u32,
    /// The node's principals.
    pub policy: Arc<Policy>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    In,
    Out,
    Cut,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::In => "in",
            Kind::Out => "out",
            Kind::Cut => "cut",
        }
    }
}

pub(crate) struct Chan {
    kind: Kind,
    domain: DomainId,
    owner: Option<Arc<str>>,
    /// The uid that opened it: only it (or root) may attach.
    uid: u32,
    /// The memif interface (in, out).
    memif: Option<(u32, String)>,
    filter: Option<FilterId>,
    instance: Option<InstanceId>,
    /// The attached application's control socket (held by the channel
    /// that made the interface).
    link: Option<Link>,
    app: Option<String>,
    /// Out-channels: the ring from the application, and the bucket.
    from: Option<FromClient>,
    bucket: Option<TokenBucket>,
    out: ChanCounters,
}

/// The NodeOS service.
pub struct NodeOsService {
    cfg: NodeOsConfig,
    control_path: PathBuf,
    listener: UnixListener,
    memif: Server,
    conns: Vec<Conn>,
    chans: BTreeMap<ChanHandle, Chan>,
    next_chan: ChanHandle,
    registry: Registry,
    removed: Arc<Mutex<Vec<DomainObject>>>,
    events: HashMap<Option<Arc<str>>, VecDeque<Event>>,
    next_control: u64,
    start: Instant,
}

struct Conn {
    stream: UnixStream,
    principal: Arc<Principal>,
    uid: u32,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    closed: bool,
}

/// Error returned by [`NodeOsService::start`].
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A socket could not be made.
    #[error("nodeos: {0}: {1}")]
    Io(String, std::io::Error),
}

impl NodeOsService {
    /// Bind the sockets in `cfg.dir` and register the channel class and
    /// the domain hook on `node`.
    pub fn start(node: &mut Node, cfg: NodeOsConfig) -> Result<NodeOsService, StartError> {
        let io = |what: &str, p: &Path| {
            let what = format!("{what} {}", p.display());
            move |e| StartError::Io(what, e)
        };
        std::fs::create_dir_all(&cfg.dir).map_err(io("create", &cfg.dir))?;
        let control_path = cfg.dir.join("nodeos.sock");
        if control_path.exists() {
            std::fs::remove_file(&control_path).map_err(io("remove stale", &control_path))?;
        }
        let listener = UnixListener::bind(&control_path).map_err(io("bind", &control_path))?;
        listener.set_nonblocking(true).map_err(io("set up", &control_path))?;
        let memif_path = cfg.dir.join("memif.sock");
        let memif =
            Server::bind(&memif_path, &format!("weft {}", node.name()), MAX_FRAME).map_err(io("bind", &memif_path))?;
        // Anyone may connect; who they are is read from SO_PEERCRED, and a
        // memif client needs its channel's secret and uid.
        for p in [&control_path, &memif_path] {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o666));
        }
        let registry: Registry = Arc::default();
        node.upsert_class(element::class(registry.clone()));
        let removed: Arc<Mutex<Vec<DomainObject>>> = Arc::default();
        let r2 = removed.clone();
        node.on_domain_removed(Box::new(move |d| {
            if let Ok(mut v) = r2.lock() {
                v.extend(d.objects.iter().filter(|o| o.kind.ends_with("chan")).cloned());
            }
        }));
        tracing::info!(node = node.name(), socket = %control_path.display(), memif = %memif_path.display(), "NodeOS service listening");
        Ok(NodeOsService {
            cfg,
            control_path,
            listener,
            memif,
            conns: Vec::new(),
            chans: BTreeMap::new(),
            next_chan: 1,
            registry,
            removed,
            events: HashMap::new(),
            next_control: 0,
            start: Instant::now(),
        })
    }

    /// The control socket's path.
    pub fn control_path(&self) -> &Path {
        &self.control_path
    }

    /// The memif socket's path.
    pub fn memif_path(&self) -> &Path {
        self.memif.path()
    }

    /// Channels open.
    pub fn chans(&self) -> usize {
        self.chans.len()
    }

    /// Run the service's share of a round (see the module documentation).
    /// Returns frames moved into the node.
    pub fn poll(&mut self, node: &mut Node, now_ns: u64) -> usize {
        let mut moved = 0;
        for c in self.chans.values_mut() {
            let Some(from) = c.from.as_mut() else { continue };
            let bucket = &mut c.bucket;
            let out = &mut c.out;
            let r = from.recv(OUT_BATCH, |f| {
                if let Some(b) = bucket.as_mut() {
                    if !b.take(now_ns, f.len() as u64) {
                        out.dropped_bandwidth += 1;
                        return;
                    }
                }
                out.packets += 1;
                out.bytes += f.len() as u64;
                node.send(f);
            });
            match r {
                Ok(n) => moved += n,
                Err(_) => {
                    out.ring_broken = true;
                    c.from = None;
                }
            }
            out.bad_desc = c
                .from
                .as_ref()
                .map(|f| f.ring.counters.bad_desc)
                .unwrap_or(out.bad_desc);
        }
        if now_ns >= self.next_control {
            self.next_control = now_ns + CONTROL_EVERY;
            self.control(node, now_ns);
        }
        moved
    }

    /// When the service next needs [`NodeOsService::poll`] (ns): the next
    /// control round while an application is attached to an out-channel,
    /// a control connection is open or a handshake runs (so an idle node
    /// still drains out-channels and answers within [`CONTROL_EVERY`]);
    /// otherwise [`IDLE_CONTROL`] later (a new connection waits that long).
    pub fn poll_timeout(&self) -> Option<u64> {
        let busy = !self.conns.is_empty()
            || self.memif.pending() > 0
            || self.chans.values().any(|c| c.from.is_some() || c.link.is_some());
        Some(if busy {
            self.next_control
        } else {
            self.next_control + IDLE_CONTROL
        })
    }

    /// Whether an out-channel has frames waiting.
    pub fn has_work(&self) -> bool {
        self.chans
            .values()
            .any(|c| c.from.as_ref().is_some_and(|f| f.pending()))
    }

    fn control(&mut self, node: &mut Node, now_ns: u64) {
        self.reap_removed(node);
        self.accept_conns();
        self.serve_conns(node, now_ns);
        self.memif_handshakes(node);
        self.check_links(node);
    }

    fn accept_conns(&mut self) {
        while let Ok((stream, _)) = self.listener.accept() {
            if self.conns.len() >= MAX_CONNS {
                let mut s = stream;
                let _ = s.write_all(
                    b"{\"id\":0,\"error\":{\"code\":\"limit\",\"message\":\"too many NodeOS connections\"}}\n",
                );
                continue;
            }
            let uid = match peer_uid(&stream) {
                Some(u) => u,
                None => continue,
            };
            let principal = match self.principal_for(uid) {
                Some(p) => p,
                None => {
                    let mut s = stream;
                    let _ = s.write_all(
                        format!("{{\"id\":0,\"error\":{{\"code\":\"refused\",\"message\":\"uid {uid} is not a principal of this node\"}}}}\n")
                            .as_bytes(),
                    );
                    continue;
                }
            };
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            self.conns.push(Conn {
                stream,
                principal,
                uid,
                rbuf: Vec::new(),
                wbuf: Vec::new(),
                closed: false,
            });
        }
    }

    fn principal_for(&self, uid: u32) -> Option<Arc<Principal>> {
        if uid == 0 || uid == self.cfg.node_uid {
            return Some(Arc::new(Principal::operator(format!("uid {uid}"))));
        }
        self.cfg.policy.by_uid(uid)
    }

    fn serve_conns(&mut self, node: &mut Node, now_ns: u64) {
        let mut conns = std::mem::take(&mut self.conns);
        for c in conns.iter_mut() {
            let mut buf = [0u8; 4096];
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => {
                        c.closed = true;
                        break;
                    }
                    Ok(n) => {
                        c.rbuf.extend_from_slice(&buf[..n]);
                        if c.rbuf.len() > 4 * MAX_LINE {
                            break;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        c.closed = true;
                        break;
                    }
                }
            }
            // Answer every whole line (a line too long is answered once
            // with `malformed` and skipped).
            loop {
                let Some(end) = c.rbuf.iter().position(|&b| b == b'\n') else {
                    if c.rbuf.len() > MAX_LINE {
                        let r = weft_nodeos::Response::of(
                            0,
                            Err(weft_nodeos::ApiError::new(
                                weft_nodeos::Code::Malformed,
                                format!("request longer than {MAX_LINE} bytes"),
                            )),
                        );
                        push_line(&mut c.wbuf, &r);
                        c.closed = true;
                    }
                    break;
                };
                let line: Vec<u8> = c.rbuf.drain(..=end).collect();
                let line = &line[..line.len() - 1];
                if line.iter().all(|b| b.is_ascii_whitespace()) {
                    continue;
                }
                let resp = match weft_nodeos::parse_request(line) {
                    Ok(req) => {
                        let caller = api::Caller {
                            principal: c.principal.clone(),
                            uid: c.uid,
                        };
                        let r = api::handle(self, node, &caller, now_ns, req.call);
                        weft_nodeos::Response::of(req.id, r)
                    }
                    Err((id, e)) => weft_nodeos::Response::of(id, Err(e)),
                };
                push_line(&mut c.wbuf, &resp);
            }
            if !c.wbuf.is_empty() {
                match c.stream.write(&c.wbuf) {
                    Ok(n) => {
                        c.wbuf.drain(..n);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => c.closed = true,
                }
                // A client that does not read its answers is dropped.
                if c.wbuf.len() > 1 << 20 {
                    c.closed = true;
                }
            }
        }
        conns.retain(|c| !c.closed);
        self.conns = conns;
    }

    fn memif_handshakes(&mut self, node: &mut Node) {
        let chans = &self.chans;
        // One application per interface at a time: a second is refused
        // until the first has gone.
        let done = self.memif.poll(Instant::now(), |id, secret| {
            let on = |c: &&Chan| c.memif.as_ref().is_some_and(|(i, _)| *i == id);
            !chans.values().filter(on).any(|c| c.link.is_some())
                && chans
                    .values()
                    .filter(on)
                    .any(|c| c.memif.as_ref().is_some_and(|(_, s)| s.as_bytes() == secret.bytes()))
        });
        for r in done {
            match r {
                Ok(conn) => self.attach(node, conn),
                Err((id, e)) => tracing::info!(memif_id = ?id, error = %e, "NodeOS memif handshake failed"),
            }
        }
    }

    fn attach(&mut self, node: &mut Node, conn: weft_memif::io::Connection) {
        let mut conn = conn;
        let ids: Vec<ChanHandle> = self
            .chans
            .iter()
            .filter(|(_, c)| c.memif.as_ref().is_some_and(|(i, _)| *i == conn.id))
            .map(|(h, _)| *h)
            .collect();
        let uid_ok = ids
            .first()
            .and_then(|h| self.chans.get(h))
            .is_some_and(|c| conn.uid == 0 || conn.uid == c.uid);
        if !uid_ok {
            conn.link.disconnect("this channel was opened by another user");
            return;
        }
        let mut link = Some(conn.link);
        let mut to = Some(conn.to_client);
        let mut from = Some(conn.from_client);
        for h in ids {
            let Some(c) = self.chans.get_mut(&h) else { continue };
            c.app = Some(conn.app.clone());
            match c.kind {
                Kind::In => {
                    if let (Some(t), Some(inst)) = (to.take(), c.instance) {
                        if let Ok(mut r) = self.registry.lock() {
                            if let Some(ho) = r.get_mut(&h) {
                                ho.ring = Some(t);
                            }
                        }
                        let _ = node.control(inst, "attach");
                    }
                }
                Kind::Out => c.from = from.take(),
                Kind::Cut => {}
            }
            if c.link.is_none() {
                c.link = link.take();
            }
            let ev = Event::Attached {
                chan: h,
                app: conn.app.clone(),
            };
            let owner = c.owner.clone();
            push_event(&mut self.events, owner, ev);
        }
        tracing::info!(memif_id = conn.id, app = %conn.app, uid = conn.uid, "NodeOS application attached");
    }

    /// Detach the application from the interface `chan` holds (and the
    /// channel sharing it).
    fn detach(&mut self, node: &mut Node, chan: ChanHandle, reason: &str) {
        let Some(id) = self.chans.get(&chan).and_then(|c| c.memif.as_ref().map(|m| m.0)) else {
            return;
        };
        let hs: Vec<ChanHandle> = self
            .chans
            .iter()
            .filter(|(_, c)| c.memif.as_ref().is_some_and(|m| m.0 == id))
            .map(|(h, _)| *h)
            .collect();
        for h in hs {
            let Some(c) = self.chans.get_mut(&h) else { continue };
            if let Some(mut l) = c.link.take() {
                l.disconnect(reason);
            }
            let was = c.app.take().is_some();
            c.from = None;
            if let Some(i) = c.instance {
                let _ = node.control(i, "detach");
            }
            if was {
                let owner = c.owner.clone();
                push_event(
                    &mut self.events,
                    owner,
                    Event::Detached {
                        chan: h,
                        reason: reason.to_string(),
                    },
                );
            }
        }
    }

    fn check_links(&mut self, node: &mut Node) {
        let mut dead = Vec::new();
        for (h, c) in self.chans.iter_mut() {
            let broken = c.out.ring_broken
                || c.instance.is_some_and(|i| {
                    node.report(i)
                        .ok()
                        .and_then(|r| r["element"]["ring_broken"].as_bool())
                        .unwrap_or(false)
                });
            if let Some(l) = c.link.as_mut() {
                if !l.alive() {
                    dead.push((*h, "application gone"));
                } else if broken {
                    dead.push((*h, "application broke its ring"));
                }
            } else if broken {
                dead.push((*h, "application broke its ring"));
            }
        }
        for (h, why) in dead {
            tracing::info!(chan = h, why, "NodeOS channel detached");
            self.detach(node, h, why);
            if let Some(c) = self.chans.get_mut(&h) {
                c.out.ring_broken = false;
            }
        }
    }

    fn reap_removed(&mut self, node: &mut Node) {
        let gone: Vec<DomainObject> = self
            .removed
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        for o in gone {
            // The node removed the filter and instance with the domain.
            if let Some(c) = self.chans.get_mut(&o.id) {
                c.filter = None;
                c.instance = None;
            }
            self.destroy_chan(node, o.id);
        }
    }

    /// Destroy a channel: its filter, instance, memif interface, events.
    pub(crate) fn destroy_chan(&mut self, node: &mut Node, h: ChanHandle) {
        self.detach(node, h, "channel destroyed");
        let Some(c) = self.chans.remove(&h) else { return };
        if let Some(f) = c.filter {
            let _ = node.remove_filter(f);
        }
        if let Some(i) = c.instance {
            let _ = node.remove_instance(i);
        }
        if let Ok(mut r) = self.registry.lock() {
            r.remove(&h);
        }
        let _ = node.domain_detach(
            c.domain,
            &DomainObject {
                kind: format!("{}chan", c.kind.as_str()),
                id: h,
            },
        );
        push_event(&mut self.events, c.owner.clone(), Event::ChanGone { chan: h });
    }

    /// Nanoseconds since the service started (for callers without a node
    /// clock).
    pub fn uptime_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
}

fn push_line(w: &mut Vec<u8>, r: &weft_nodeos::Response) {
    if let Ok(b) = serde_json::to_vec(r) {
        w.extend_from_slice(&b);
        w.push(b'\n');
    }
}

fn push_event(events: &mut HashMap<Option<Arc<str>>, VecDeque<Event>>, owner: Option<Arc<str>>, e: Event) {
    let q = events.entry(owner).or_default();
    if q.len() >= MAX_EVENTS {
        q.pop_front();
    }
    q.push_back(e);
}

fn peer_uid(s: &UnixStream) -> Option<u32> {
    weft_memif::io::peer_uid(s).ok()
}

/// Random hex for memif secrets: 16 digits (DPDK keeps at most 23
/// characters of the 24-byte field, its last byte a NUL).
fn secret() -> String {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

thread_local! {
    static FUZZ_RIG: std::cell::RefCell<Option<(Node, NodeOsService)>> = const { std::cell::RefCell::new(None) };
}

/// Fuzz entry point (target `nodeos_request`, and a property test): one
/// request line from a principal without rights and then from the
/// operator, against a node with a domain and a channel. Every line gets
/// an answer; nothing panics; a principal never gets past `refused`,
/// `not_yours`, `not_found` or `malformed` to touch the operator's objects.
pub fn fuzz_request(data: &[u8]) {
    weft_nodeos::fuzz_request(data);
    FUZZ_RIG.with(|cell| {
        let mut g = cell.borrow_mut();
        if g.is_none() {
            let mut node = Node::new("fuzz");
            let dir = std::env::temp_dir().join(format!("weft-nodeos-fuzz-{}", std::process::id()));
            let cfg = NodeOsConfig {
                dir,
                node_uid: u32::MAX,
                policy: Arc::new(Policy::default()),
            };
            let Ok(mut svc) = NodeOsService::start(&mut node, cfg) else {
                return;
            };
            let op = api::Caller {
                principal: Arc::new(Principal::operator("op")),
                uid: 0,
            };
            let _ = api::handle(
                &mut svc,
                &mut node,
                &op,
                0,
                weft_nodeos::Call::DomainCreate {
                    spec: weft_nodeos::DomainSpec {
                        name: "op".into(),
                        ..Default::default()
                    },
                },
            );
            *g = Some((node, svc));
        }
        let Some((node, svc)) = g.as_mut() else { return };
        let Ok(req) = weft_nodeos::parse_request(data) else {
            return;
        };
        let mut nobody = Principal::operator("nobody");
        nobody.rights.clear();
        let nobody = api::Caller {
            principal: Arc::new(nobody),
            uid: 4242,
        };
        let before = svc.chans.len();
        if let Err(e) = api::handle(svc, node, &nobody, 1, req.call.clone()) {
            assert!(!e.message.is_empty());
        }
        assert!(svc.chans.len() <= before, "a principal without rights made a channel");
        let op = api::Caller {
            principal: Arc::new(Principal::operator("op")),
            uid: 0,
        };
        let _ = api::handle(svc, node, &op, 2, req.call);
        // Keep the rig small across runs.
        let hs: Vec<ChanHandle> = svc.chans.keys().copied().collect();
        for h in hs {
            svc.destroy_chan(node, h);
        }
    });
}

#[cfg(test)]
mod tests;
