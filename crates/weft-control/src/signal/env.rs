//! The node behind the signaling agent: [`weft_signal::Env`] on a
//! [`Node`], its policy and its code loader.
//!
//! * `authorize` — the request's key must be a `[[principal]]` with the
//!   right `signal` (PROBE: `signal` or `read`); a SETUP's module must be
//!   one of its `classes` (or, checked once fetched, signed by one of its
//!   `signers`), its lifetime within its `max_lifetime`, its filter's
//!   prefix within its `prefixes` (and routed back toward the origin when
//!   it has `reverse_path`), its server ports within `server_ports`, and
//!   one more instance within its limits ([`Accounts`]).
//! * `install` — dependencies present (node classes, or modules installed
//!   by signaling), the code server one of `[plugins] repos`, then either
//!   the class is already here with that hash (instantiate now) or the
//!   fetcher gets it (the SETUP's entry waits). Instantiating creates the
//!   instance with the SETUP's configuration and a PREROUTING filter bound
//!   to it, both owned by the principal — or neither.
//! * `remove` — the filter and the instance go (the class stays
//!   registered, as after `weft plugin load`).

use super::accounts::Accounts;
use super::fetch::{FetchSpec, FetchedModule, ModuleFetcher};
use super::server::ServerModules;
use crate::auth::{Policy, Principal, Refused, Right};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weft_dataplane::element::ClassKind;
use weft_dataplane::{FilterId, FilterSpec, Hook, InstanceId, Match, Node, Owned};
use weft_signal::wire::{ModuleFact, ResourceFact};
use weft_signal::{
    Context, Entry, Env, Grant, Install, Installed, Kind, ModuleKind, Reason, Refusal, Request, SessionId,
};

/// What a session installed here.
#[derive(Clone, Debug)]
pub(super) enum Slot {
    /// Waiting for the fetcher.
    Fetching { req: Box<Request>, owner: String },
    /// A packet module: its class, instance and filter.
    Packet {
        class: String,
        instance: InstanceId,
        filter: FilterId,
    },
    /// A server module, held by the [`ServerModules`] host, and the TCP
    /// ports the node delivers to it.
    Server { ports: Vec<u16> },
}

/// Install counters ([`super::SignalNode::counters`]).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct InstallStats {
    /// Fetches started.
    pub fetches: u64,
    /// Packet modules instantiated.
    pub instantiated: u64,
    /// Installs that failed after they started (fetch, checks, node).
    pub failed: u64,
}

/// The daemon's state the [`NodeEnv`] works on.
pub(super) struct EnvState {
    pub(super) policy: Arc<Policy>,
    pub(super) accounts: Box<dyn Accounts>,
    pub(super) fetcher: Option<Box<dyn ModuleFetcher>>,
    pub(super) servers: Option<Box<dyn ServerModules>>,
    /// `[plugins] repos`: the only code servers a SETUP may name.
    pub(super) repos: Vec<String>,
    pub(super) slots: HashMap<SessionId, Slot>,
    pub(super) stats: InstallStats,
    pub(super) max_sessions: usize,
}

/// The agent's [`Env`] for one call: the node and the daemon's state.
pub(super) struct NodeEnv<'a> {
    pub(super) node: &'a mut Node,
    pub(super) st: &'a mut EnvState,
}

fn refusal(reason: Reason, r: Refused) -> Refusal {
    Refusal::new(reason, r.message)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl EnvState {
    /// The principal signing with `key`.
    pub(super) fn principal(&self, key: &[u8; 32]) -> Result<Arc<Principal>, Refusal> {
        let k = weft_repo::PublicKey::from_bytes(key).map_err(|e| Refusal::new(Reason::UnknownKey, e.to_string()))?;
        self.policy.by_key(&k).ok_or_else(|| {
            Refusal::new(
                Reason::UnknownKey,
                format!("key {} is not a principal of this node", k.id()),
            )
        })
    }
}

impl NodeEnv<'_> {
    /// The port the FIB sends `a` out of.
    fn port_toward(&mut self, a: IpAddr) -> Option<u16> {
        self.node.lookup_route(a).map(|(p, _, _)| p)
    }

    fn is_native(&self, name: &str) -> bool {
        self.node
            .classes()
            .into_iter()
            .any(|(c, k, _)| c == name && k == ClassKind::Native)
    }

    /// Is `name` here: a class of the node, or a module a session installed?
    fn present(&self, name: &str) -> bool {
        self.node.has_class(name)
            || self
                .st
                .slots
                .values()
                .any(|s| matches!(s, Slot::Packet { class, .. } if class == name))
    }

    /// Create the SETUP's instance and filter, owned by `owner`: both or
    /// neither.
    pub(super) fn instantiate(
        &mut self,
        session: SessionId,
        req: &Request,
        owner: &str,
    ) -> Result<InstanceId, Refusal> {
        let p = self.st.principal(&req.key)?;
        let cost = self.st.accounts.instance_cost();
        self.st
            .accounts
            .admit(self.node, owner, &p.limits, cost)
            .map_err(|e| Refusal::new(Reason::Resources, e))?;
        let (Some(m), Some(f)) = (&req.module, &req.filter) else {
            return Err(Refusal::new(Reason::InstallFailed, "a packet module needs a filter"));
        };
        let domain = self
            .st
            .accounts
            .domain(self.node, owner, &p.limits)
            .map_err(|e| Refusal::new(Reason::Resources, e))?;
        let id = self
            .node
            .create_instance_in(domain, &m.name, &req.config)
            .map_err(|e| match e {
                weft_dataplane::NodeError::Domain(d) => Refusal::new(Reason::Resources, d.to_string()),
                e => Refusal::new(Reason::InstallFailed, e.to_string()),
            })?;
        let spec = FilterSpec {
            hook: Some(Hook::Prerouting),
            m: Match {
                proto: f.proto,
                dport: (f.dports != weft_signal::Filter::ANY_PORTS).then_some(f.dports),
                dst: f.dst,
                ..Match::default()
            },
            chain: vec![id],
            position: None,
        };
        let fid = match self.node.add_filter_in(domain, spec) {
            Ok(f) => f,
            Err(e) => {
                let _ = self.node.remove_instance(id);
                return Err(Refusal::new(Reason::InstallFailed, e.to_string()));
            }
        };
        let who: Arc<str> = Arc::from(owner);
        let _ = self.node.set_owner(Owned::Instance(id), Some(who.clone()));
        let _ = self.node.set_owner(Owned::Filter(fid), Some(who));
        self.st.stats.instantiated += 1;
        self.st.slots.insert(
            session,
            Slot::Packet {
                class: m.name.clone(),
                instance: id,
                filter: fid,
            },
        );
        Ok(id)
    }

    /// A fetch for `session` ended: check what came against the request
    /// and the principal, register the class, instantiate.
    pub(super) fn fetched(
        &mut self,
        session: SessionId,
        result: Result<FetchedModule, Refusal>,
    ) -> Option<Result<Installed, Refusal>> {
        let Some(Slot::Fetching { req, owner }) = self.st.slots.remove(&session) else {
            // Removed meanwhile (REMOVE, expiry, install timeout).
            return None;
        };
        let r = self.fetched_inner(session, &req, &owner, result);
        if r.is_err() {
            self.st.stats.failed += 1;
        }
        Some(r)
    }

    fn fetched_inner(
        &mut self,
        session: SessionId,
        req: &Request,
        owner: &str,
        result: Result<FetchedModule, Refusal>,
    ) -> Result<Installed, Refusal> {
        let m = result?;
        let want = req
            .module
            .as_ref()
            .ok_or_else(|| Refusal::new(Reason::InstallFailed, "no module"))?;
        if m.version != want.version {
            return Err(Refusal::new(
                Reason::ModuleRejected,
                format!(
                    "the code server's {} is version {}, not {}",
                    want.name, m.version, want.version
                ),
            ));
        }
        let p = self.st.principal(&req.key)?;
        p.need_class(&want.name, Some(&m.signer))
            .map_err(|e| refusal(Reason::ModuleNotAllowed, e))?;
        if self.is_native(&want.name) || m.class.name != want.name {
            return Err(Refusal::new(
                Reason::ModuleRejected,
                format!("{} is a built-in class; a module may not replace it", want.name),
            ));
        }
        self.node.upsert_class(m.class);
        let t = Instant::now();
        let id = self.instantiate(session, req, owner)?;
        Ok(Installed {
            instance: Some(id.0),
            timing: Some(timing(m.fetch, m.verify, m.compile, t.elapsed())),
        })
    }
}

impl NodeEnv<'_> {
    /// Start a server module: TCP ports only; by name only (a principal
    /// allowed modules by signer must name server modules in `classes`:
    /// the host checks the package's signature against the node's trusted
    /// keys, not the principal's signers); the node delivers the ports to
    /// the kernel, where the host listens on the node's addresses.
    fn start_server(&mut self, session: SessionId, req: &Request, grant: &Grant) -> Result<Install, Refusal> {
        let Some(m) = &req.module else {
            return Err(Refusal::new(Reason::InstallFailed, "no module"));
        };
        if req.server_ports.is_empty() {
            return Err(Refusal::new(Reason::Port, "a server module needs a server port"));
        }
        if let Some(p) = req.server_ports.iter().find(|p| p.proto != weft_packet::proto::TCP) {
            return Err(Refusal::new(
                Reason::Unsupported,
                format!("server modules serve HTTP over TCP; port {} is not TCP", p.port),
            ));
        }
        let p = self.st.principal(&req.key)?;
        if !p.signers.is_empty() {
            p.need_class(&m.name, None)
                .map_err(|e| refusal(Reason::ModuleNotAllowed, e))?;
        }
        let addrs: Vec<IpAddr> = self.node.addresses().into_iter().map(|(_, a)| a.addr()).collect();
        let Some(s) = self.st.servers.as_mut() else {
            return Err(Refusal::new(
                Reason::Unsupported,
                "this node does not host server modules",
            ));
        };
        let r = s.start(session, req, &grant.principal, &addrs)?;
        let ports: Vec<u16> = req.server_ports.iter().map(|p| p.port).collect();
        for &port in &ports {
            self.node.listen(weft_packet::proto::TCP, port);
        }
        self.st.slots.insert(session, Slot::Server { ports });
        Ok(r)
    }

    /// A server module's pending start failed: forget its slot and ports.
    pub(super) fn server_failed(&mut self, session: SessionId) {
        if let Some(Slot::Server { ports }) = self.st.slots.remove(&session) {
            for p in ports {
                self.node.unlisten(weft_packet::proto::TCP, p);
            }
        }
        self.st.stats.failed += 1;
    }
}

fn us(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

fn timing(fetch: Duration, verify: Duration, compile: Duration, inst: Duration) -> weft_signal::wire::Timing {
    weft_signal::wire::Timing {
        fetch_us: us(fetch),
        verify_us: us(verify),
        compile_us: us(compile),
        instantiate_us: us(inst),
    }
}

impl Env for NodeEnv<'_> {
    fn authorize(&mut self, req: &Request, ctx: &Context) -> Result<Grant, Refusal> {
        let p = self.st.principal(&req.key)?;
        match req.kind {
            Kind::Probe => {
                if !p.has(Right::Signal) {
                    p.need(Right::Read, "probe this node")
                        .map_err(|e| refusal(Reason::NotAllowed, e))?;
                }
            }
            k => p
                .need(Right::Signal, &format!("{} by signaling", k.as_str()))
                .map_err(|e| refusal(Reason::NotAllowed, e))?,
        }
        if req.kind == Kind::Setup {
            if let Some(m) = &req.module {
                // With signers, the name may be allowed by who signed it:
                // checked once the module is fetched.
                if p.signers.is_empty() {
                    p.need_class(&m.name, None)
                        .map_err(|e| refusal(Reason::ModuleNotAllowed, e))?;
                }
            }
            if let Some(l) = req.lifetime_s {
                p.need_lifetime(l).map_err(|e| refusal(Reason::BadLifetime, e))?;
            }
            if let Some(f) = &req.filter {
                p.need_prefix(Right::Signal, f.dst, "install a filter")
                    .map_err(|e| refusal(Reason::Prefix, e))?;
                if p.reverse_path && !p.is_operator() {
                    let Some(dst) = f.dst else {
                        return Err(Refusal::new(
                            Reason::Prefix,
                            "a filter without a destination cannot be checked for its reverse path",
                        ));
                    };
                    let (to_prefix, to_origin) = (self.port_toward(dst.network()), self.port_toward(ctx.origin));
                    if to_prefix.is_none() || to_prefix != to_origin {
                        return Err(Refusal::new(
                            Reason::Prefix,
                            format!(
                                "{dst} does not route back toward the requester {} (reverse-path check)",
                                ctx.origin
                            ),
                        ));
                    }
                }
            }
            for sp in &req.server_ports {
                p.need_server_port(sp.proto, sp.port)
                    .map_err(|e| refusal(Reason::Port, e))?;
            }
            let cost = self.st.accounts.instance_cost();
            self.st
                .accounts
                .admit(self.node, &p.name, &p.limits, cost)
                .map_err(|e| Refusal::new(Reason::Resources, e))?;
        }
        Ok(Grant {
            principal: p.name.clone(),
        })
    }

    fn install(&mut self, session: SessionId, req: &Request, grant: &Grant) -> Result<Install, Refusal> {
        let Some(m) = &req.module else {
            return Err(Refusal::new(Reason::InstallFailed, "no module"));
        };
        for d in &req.dependencies {
            if !self.present(d) {
                return Err(Refusal::new(
                    Reason::MissingDependency,
                    format!("{d} is not on this node"),
                ));
            }
        }
        let Some(code) = &req.code else {
            return Err(Refusal::new(Reason::InstallFailed, "no code"));
        };
        if m.kind == ModuleKind::Server && self.st.servers.is_none() {
            return Err(Refusal::new(
                Reason::Unsupported,
                "this node does not host server modules (it needs [plugins] and [punt])",
            ));
        }
        if m.kind == ModuleKind::Packet && self.st.fetcher.is_none() {
            return Err(Refusal::new(
                Reason::Unsupported,
                "this node loads no plugins (it has no [plugins] section)",
            ));
        }
        let want = weft_repo::fetch::BaseUrl::parse(&code.url).ok();
        let listed = want.is_some()
            && self
                .st
                .repos
                .iter()
                .any(|r| weft_repo::fetch::BaseUrl::parse(r).ok() == want);
        if !listed {
            return Err(Refusal::new(
                Reason::UnlistedCodeServer,
                format!(
                    "{} is not one of this node's code servers ({})",
                    code.url,
                    if self.st.repos.is_empty() {
                        "none".to_string()
                    } else {
                        self.st.repos.join(", ")
                    }
                ),
            ));
        }
        if m.kind == ModuleKind::Server {
            return self.start_server(session, req, grant);
        }
        if self.is_native(&m.name) {
            return Err(Refusal::new(
                Reason::ModuleRejected,
                format!("{} is a built-in class; a module may not replace it", m.name),
            ));
        }
        let sha = hex(&code.sha256);
        let here = self
            .node
            .classes()
            .into_iter()
            .any(|(c, k, _)| c == m.name && k == ClassKind::Wasm { hash: sha.clone() });
        if here {
            let t = Instant::now();
            let id = self.instantiate(session, req, &grant.principal)?;
            return Ok(Install::Done(Installed {
                instance: Some(id.0),
                timing: Some(timing(Duration::ZERO, Duration::ZERO, Duration::ZERO, t.elapsed())),
            }));
        }
        self.st.slots.insert(
            session,
            Slot::Fetching {
                req: Box::new(req.clone()),
                owner: grant.principal.clone(),
            },
        );
        self.st.stats.fetches += 1;
        if let Some(f) = self.st.fetcher.as_mut() {
            f.fetch(FetchSpec {
                session,
                name: m.name.clone(),
                sha256: sha,
                url: code.url.clone(),
            });
        }
        Ok(Install::Pending)
    }

    fn remove(&mut self, session: SessionId) {
        match self.st.slots.remove(&session) {
            Some(Slot::Packet { instance, filter, .. }) => {
                let _ = self.node.remove_filter(filter);
                let _ = self.node.remove_instance(instance);
            }
            Some(Slot::Server { ports }) => {
                for p in ports {
                    self.node.unlisten(weft_packet::proto::TCP, p);
                }
                if let Some(s) = self.st.servers.as_mut() {
                    s.stop(session);
                }
            }
            Some(Slot::Fetching { .. }) | None => {}
        }
    }

    fn probe(&mut self, req: &Request, grant: &Grant, entry: &mut Entry) {
        let what = req.probe.unwrap_or(weft_signal::Probe::ALL);
        if what.has(weft_signal::Probe::MODULES) {
            for (name, kind, _) in self.node.classes().into_iter().take(PROBE_CLASSES) {
                let version = match kind {
                    ClassKind::Native => String::new(),
                    ClassKind::Wasm { hash } => format!("sha256:{}", &hash[..hash.len().min(12)]),
                };
                entry.modules.push(ModuleFact {
                    kind: None,
                    name,
                    version,
                    remaining_s: None,
                });
            }
        }
        if what.has(weft_signal::Probe::CAPABILITIES) {
            if self.st.fetcher.is_some() {
                entry.capabilities.push("packet-modules".into());
            }
            if self.st.servers.is_some() {
                entry.capabilities.push("server-modules".into());
            }
            entry.capabilities.push("signal/1".into());
        }
        if what.has(weft_signal::Probe::RESOURCES) {
            let used = self.st.slots.len() as u64;
            let max = self.st.max_sessions as u64;
            entry.resources.push(ResourceFact {
                name: "sessions".into(),
                free: max.saturating_sub(used),
                total: max,
            });
            if let Ok(p) = self.st.principal(&req.key) {
                let u = self.st.accounts.usage(self.node, &grant.principal);
                if let Some(l) = p.limits.instances {
                    entry.resources.push(ResourceFact {
                        name: "instances".into(),
                        free: l.saturating_sub(u.instances),
                        total: l,
                    });
                }
                if let Some(l) = p.limits.memory_mib {
                    entry.resources.push(ResourceFact {
                        name: "memory-mib".into(),
                        free: l.saturating_sub(u.memory_mib),
                        total: l,
                    });
                }
            }
        }
        if let Some(s) = self.st.servers.as_ref() {
            s.probe(entry);
        }
    }

    fn address_toward(&mut self, peer: IpAddr) -> Option<IpAddr> {
        let port = self.port_toward(peer);
        let addrs = self.node.addresses();
        addrs
            .iter()
            .find(|(p, a)| Some(*p) == port && a.addr().is_ipv4() == peer.is_ipv4())
            .or_else(|| addrs.iter().find(|(_, a)| a.addr().is_ipv4() == peer.is_ipv4()))
            .map(|(_, a)| a.addr())
    }
}

/// Classes a PROBE lists at most (an entry must fit a datagram with the
/// others; a node's building blocks are a dozen or two).
const PROBE_CLASSES: usize = 24;
