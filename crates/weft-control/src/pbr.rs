//! The PBR daemon of a node: [`PbrNode`] connects a sans-IO
//! [`weft_pbr::Agent`] to a [`weft_dataplane::Node`] (`docs/pbr.md`).
//!
//! * **Transport.** The node listens on UDP 7077; [`PbrNode::poll`] takes
//!   those datagrams from the node's local queue
//!   ([`Node::poll_local_where`]), feeds them to the agent, runs its timers
//!   and sends what it produced as UDP frames from the node itself
//!   ([`Node::send`], source address [`weft_pbr::Transmit::src`]). Frames
//!   leave at the node's next `receive` or `tick`: a driver that wants them
//!   out at once calls [`Node::tick`] when `poll` returned a non-zero count.
//! * **Time** is passed in (`now_ms`), never read: the emulator drives the
//!   daemon on its virtual clock, the node runner on the wall clock.
//! * **The node** is reached through a private [`weft_pbr::Env`]: `egress`
//!   (strict: a connected subnet of a port; loose: the FIB), `reserve`
//!   (bandwidth per egress port against [`PbrConfig`]'s capacities, plugin
//!   slots, the class being registered), `commit` (plugin instances created
//!   and configured, then [`Node::add_steering`] at the first visit and
//!   [`Node::add_label`] at the others, with [`LabelOut`] swap, tunnel or
//!   pop, then [`Node::set_label_mtu`] with the next visit's PATH_MTU),
//!   `visit_mtu` (the visit's limit, reported upstream: at the first visit
//!   the path's MTU), `release` (everything undone, idempotent) and
//!   `visit_status` (label, MTU and instance counters).
//!
//! PromethOS writes classes in upper case (`ENCRYPT`); a class resolves
//! through [`PbrConfig::class_map`] first, then to a registered class of the
//! same name ignoring case (`encrypt`). An empty configuration (the CLI's
//! `init`) takes [`PbrConfig::default_config`] for the class, if any.
//!
//! **Classes the node lacks** are fetched from a code server when the
//! daemon has a [`ClassFetcher`] (a node with a `[plugins]` section: the
//! verifying loader of `weft-repo`). The reservation counts such a class as
//! obtainable and starts the fetch at once, so the download overlaps the
//! rest of the setup; the commit waits for it ([`weft_pbr::Env::ready`]:
//! the agent holds the commit, nothing goes upstream) and goes on when
//! [`PbrNode::class_fetched`] delivers the class — or refuses with the
//! loader's reason (`unknown-class` when no code server has it,
//! `class-rejected` when hash, signature, trusted key or ABI checks fail).
//! The fetch never runs on the node thread.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use weft_dataplane::element::ClassKind;
use weft_dataplane::{ElementClass, InstanceId, LabelOut, Match, Node};
use weft_packet::proto;
use weft_pbr::{
    Agent, AgentConfig, CreateRequest, Egress, Env, Event, FlowSpec, Hop, HopError, OutLabel, PathId, PbrError, Phase,
    Plugin, Reason, Refusal, VisitInstall, VisitKey, VisitRequest, VisitStatus, PBR_PORT,
};

/// Settings of a node's PBR daemon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PbrConfig {
    /// Bandwidth a port offers to reservations, bits/s, unless
    /// [`PbrConfig::port_capacity_bps`] names the port.
    pub capacity_bps: u64,
    /// Per-port capacity (by port name), bits/s.
    pub port_capacity_bps: BTreeMap<String, u64>,
    /// Most plugin instances PBR paths may hold on this node at once.
    pub max_instances: usize,
    /// Refresh interval a request made here without one should use, ms
    /// (for front ends; a [`CreateRequest`] always carries its own).
    pub refresh_ms: u32,
    /// Seed for path secrets, sequence numbers and path numbers; `None`
    /// draws them from the OS (`ring::rand::SystemRandom`). Tests and the
    /// emulator seed it to be deterministic.
    pub seed: Option<u64>,
    /// PromethOS class name → node class (`ENCRYPT` → `encrypt`); names not
    /// listed resolve to a registered class of the same name, ignoring case.
    pub class_map: BTreeMap<String, String>,
    /// Configuration used when a plugin's is empty (PromethOS' `init`), by
    /// node class.
    pub default_config: BTreeMap<String, String>,
    /// Finished paths (released, refused, down) kept for [`PbrNode::path`].
    pub history: usize,
}

impl Default for PbrConfig {
    fn default() -> Self {
        PbrConfig {
            capacity_bps: 1_000_000_000,
            port_capacity_bps: BTreeMap::new(),
            max_instances: 1024,
            refresh_ms: 5_000,
            seed: None,
            class_map: BTreeMap::new(),
            default_config: BTreeMap::new(),
            history: 1024,
        }
    }
}

/// Where a path initiated here stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathState {
    /// CREATE sent, no COMMIT back yet (or, for a visit held here:
    /// reserved).
    Pending,
    /// Every visit committed.
    Up,
    /// A hop refused; see [`PathView::error`].
    Refused,
    /// An established path broke; see [`PathView::error`].
    Down,
    /// Released by the initiator.
    Released,
}

impl PathState {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            PathState::Pending => "pending",
            PathState::Up => "up",
            PathState::Refused => "refused",
            PathState::Down => "down",
            PathState::Released => "released",
        }
    }
}

/// One visit's record from a STATUS reply, flattened for tables.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VisitRecord {
    /// Hop index.
    pub hop: u8,
    /// The visit's address.
    pub address: IpAddr,
    /// `reserved` or `committed`.
    pub state: Option<String>,
    /// The visit's label (none at the first visit, which pushes).
    pub label: Option<u32>,
    /// What it does next (`swap 23 → 10.34.0.3`, `push 17 …`, `tunnel …`,
    /// `pop`).
    pub out: Option<String>,
    /// Plugin instances (`encrypt#2`), comma-separated.
    pub plugin: Option<String>,
    /// Packets that took the visit.
    pub packets: Option<u64>,
    /// Their bytes.
    pub bytes: Option<u64>,
    /// The full record as the visit sent it.
    pub detail: serde_json::Value,
}

impl VisitRecord {
    fn from_status(v: &VisitStatus) -> VisitRecord {
        let s = &v.status;
        let node = &s["node"];
        let instances = node["instances"].as_array().map(|a| {
            a.iter()
                .map(|i| {
                    format!(
                        "{}{}",
                        i["class"].as_str().unwrap_or("?"),
                        i["id"].as_str().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join(",")
        });
        VisitRecord {
            hop: v.hop,
            address: v.address,
            state: s["phase"].as_str().map(str::to_string),
            label: s["in_label"].as_u64().map(|l| l as u32),
            out: node["out"].as_str().map(str::to_string),
            plugin: instances.filter(|s| !s.is_empty()),
            packets: node["packets"].as_u64(),
            bytes: node["bytes"].as_u64(),
            detail: s.clone(),
        }
    }
}

/// A path as the API and CLI show it: one initiated here, or a visit held
/// here.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PathView {
    /// `NUMBER@ADDRESS`.
    pub id: String,
    /// The path id.
    pub path: PathId,
    /// `initiator`, `transit` or `egress` (the visit shown).
    pub role: &'static str,
    /// The visit shown (0 for the initiator).
    pub hop: u8,
    /// State.
    pub state: PathState,
    /// Why it was refused or went down.
    pub error: Option<HopError>,
    /// The walk (addresses; loose hops marked `~`) — the whole walk at the
    /// initiator, `prev → here → next` at a visit.
    pub walk: String,
    /// The request (initiator only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<CreateRequest>,
    /// Label allocated here (none at the first visit).
    pub in_label: Option<u32>,
    /// Label sent with (none: pop or not committed).
    pub out_label: Option<u32>,
    /// Plugins run at this visit.
    pub plugins: Vec<Plugin>,
    /// The largest IP packet the visit takes in, the rest of the path
    /// included: at the initiator, the path's MTU (`docs/pbr.md` §5).
    pub mtu: Option<u16>,
    /// When the visit expires without a refresh (ms).
    pub expires_ms: Option<u64>,
    /// The last STATUS reply (initiator only), one record per visit.
    pub status: Option<Vec<VisitRecord>>,
    /// Why that STATUS reply stopped early.
    pub status_error: Option<HopError>,
    /// When that reply came (ms).
    pub status_ms: Option<u64>,
}

/// What PBR holds on this node, for tests and the API.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Resources {
    /// Visits reserved or committed.
    pub visits: usize,
    /// Visits committed (label or steering installed).
    pub installed: usize,
    /// Plugin slots held (reserved or created).
    pub plugin_slots: usize,
    /// Plugin instances created.
    pub instances: usize,
    /// Bandwidth held, by port id, bits/s (ports with none left out).
    pub bandwidth_bps: BTreeMap<u16, u64>,
}

impl Resources {
    /// Nothing held at all.
    pub fn is_empty(&self) -> bool {
        self.visits == 0 && self.installed == 0 && self.plugin_slots == 0 && self.bandwidth_bps.is_empty()
    }
}

// ----- the node behind the agent ------------------------------------------------

#[derive(Debug, Default)]
struct Installed {
    label: u32,
    instances: Vec<InstanceId>,
    /// The largest packet of the flow's family the visit takes in
    /// ([`Node::set_label_mtu`]).
    mtu: Option<usize>,
}

#[derive(Debug, Default)]
struct Held {
    port: Option<u16>,
    bw: u64,
    plugins: usize,
    installed: Option<Installed>,
}

/// Where a node's PBR daemon gets the plugin classes it lacks (see the
/// module documentation). Implementations must not block: `fetch` starts
/// the work; the outcome reaches the daemon on the node thread through
/// [`PbrNode::class_fetched`], or through [`ClassFetcher::poll`] for
/// drivers that poll (the emulator).
pub trait ClassFetcher: Send {
    /// Start fetching plugin `name` (a valid plugin name, see
    /// [`weft_repo::package::valid_name`]). Called once per fetch: not again while
    /// it runs.
    fn fetch(&mut self, name: &str);
    /// A finished fetch: the plugin's name and its class, or the refusal a
    /// commit waiting for it gives. [`PbrNode::poll`] asks every time.
    fn poll(&mut self) -> Option<(String, Result<ElementClass, Refusal>)> {
        None
    }
}

/// A class fetch, by plugin name.
#[derive(Clone, Debug)]
enum Fetch {
    Running,
    /// Registered on the node.
    Done,
    /// The refusal commits waiting for it give, and when it came (ms):
    /// reservations refuse with it for [`FETCH_RETRY_MS`], then fetch
    /// again.
    Failed(Refusal, u64),
}

/// How long a failed class fetch is believed: reservations needing the
/// class are refused at once (the hop is "not obtainable") instead of
/// asking the code server again for every path.
pub const FETCH_RETRY_MS: u64 = 10_000;

/// Fetch counters ([`PbrNode::counters`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FetchStats {
    /// Fetches started.
    pub started: u64,
    /// Classes fetched and registered.
    pub registered: u64,
    /// Fetches that failed (not found, network, checks).
    pub failed: u64,
}

#[derive(Default)]
struct EnvState {
    held: HashMap<VisitKey, Held>,
    bw_used: BTreeMap<u16, u64>,
    plugins_held: usize,
    install_failures: u64,
    fetcher: Option<Box<dyn ClassFetcher>>,
    fetches: BTreeMap<String, Fetch>,
    fetch_stats: FetchStats,
    /// The daemon's clock at the current call (ms).
    now_ms: u64,
}

impl EnvState {
    fn resources(&self) -> Resources {
        Resources {
            visits: self.held.len(),
            installed: self.held.values().filter(|h| h.installed.is_some()).count(),
            plugin_slots: self.plugins_held,
            instances: self
                .held
                .values()
                .filter_map(|h| h.installed.as_ref())
                .map(|i| i.instances.len())
                .sum(),
            bandwidth_bps: self
                .bw_used
                .iter()
                .filter(|(_, b)| **b > 0)
                .map(|(p, b)| (*p, *b))
                .collect(),
        }
    }

    /// Undo one visit on the node. Idempotent.
    fn release(&mut self, node: &mut Node, key: VisitKey) {
        let Some(h) = self.held.remove(&key) else { return };
        if let Some(p) = h.port {
            if let Some(u) = self.bw_used.get_mut(&p) {
                *u = u.saturating_sub(h.bw);
                if *u == 0 {
                    self.bw_used.remove(&p);
                }
            }
        }
        self.plugins_held = self.plugins_held.saturating_sub(h.plugins);
        if let Some(i) = h.installed {
            uninstall(node, i);
        }
    }
}

fn uninstall(node: &mut Node, i: Installed) {
    if let Err(e) = node.remove_label(i.label) {
        tracing::warn!(node = %node.name(), label = i.label, error = %e, "pbr: removing a visit's label");
    }
    for id in i.instances {
        if let Err(e) = node.remove_instance(id) {
            tracing::warn!(node = %node.name(), %id, error = %e, "pbr: removing a visit's instance");
        }
    }
}

/// PBR class `name` through [`PbrConfig::class_map`] (keys match ignoring
/// case), else as it is.
fn mapped<'a>(cfg: &'a PbrConfig, name: &'a str) -> &'a str {
    cfg.class_map
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .unwrap_or(name)
}

/// The class a PBR plugin name means on this node.
fn resolve_class(node: &Node, cfg: &PbrConfig, name: &str) -> Option<String> {
    let mapped = mapped(cfg, name);
    if node.has_class(mapped) {
        return Some(mapped.to_string());
    }
    node.classes()
        .into_iter()
        .map(|(n, _, _)| n)
        .find(|n| n.eq_ignore_ascii_case(mapped))
}

/// The plugin name to fetch for PBR class `name`: the mapped name, as is
/// or in lower case, if it is a valid plugin name.
fn fetch_name(cfg: &PbrConfig, name: &str) -> Option<String> {
    let mapped = mapped(cfg, name);
    [mapped.to_string(), mapped.to_ascii_lowercase()]
        .into_iter()
        .find(|n| weft_repo::package::valid_name(n))
}

/// FLOWSPEC → the classifier's match. Zero-length prefixes are kept: they
/// restrict the address family.
pub fn flowspec_match(fs: &FlowSpec) -> Match {
    let ports = |r: weft_pbr::PortRange| (!r.is_any()).then_some((r.lo, r.hi));
    Match {
        in_port: None,
        src: Some(fs.src),
        dst: Some(fs.dst),
        sport: ports(fs.sport),
        dport: ports(fs.dport),
        proto: fs.protocol,
    }
}

fn describe_out(out: &LabelOut, node: &Node, first: bool) -> String {
    let port_name = |p: u16| {
        node.ports()
            .get(p as usize)
            .map(|x| x.cfg.name.clone())
            .unwrap_or_else(|| format!("#{p}"))
    };
    let verb = if first { "push" } else { "swap" };
    match out {
        LabelOut::Swap { label, port, next_hop } => format!("{verb} {label} → {next_hop} ({})", port_name(*port)),
        LabelOut::Tunnel { label, to, src } => format!("{verb} {label}, udp {src} → {to}:6635"),
        LabelOut::Pop => "pop".into(),
    }
}

struct NodeEnv<'a> {
    node: &'a mut Node,
    st: &'a mut EnvState,
    cfg: &'a PbrConfig,
}

impl NodeEnv<'_> {
    fn capacity(&self, port: u16) -> u64 {
        let name = self.node.ports().get(port as usize).map(|p| p.cfg.name.clone());
        name.and_then(|n| self.cfg.port_capacity_bps.get(&n).copied())
            .unwrap_or(self.cfg.capacity_bps)
    }

    /// A class this node lacks: can it be fetched? Starts the fetch when
    /// none is running.
    fn obtain(&mut self, class: &str) -> Result<(), Refusal> {
        let node = self.node.name().to_string();
        let Some(fetcher) = self.st.fetcher.as_mut() else {
            return Err(Refusal::new(
                Reason::UnknownClass,
                format!("class {class} is not available on {node}, which has no code server to fetch it from"),
            ));
        };
        let Some(name) = fetch_name(self.cfg, class) else {
            return Err(Refusal::new(
                Reason::UnknownClass,
                format!("class {class} is not on {node} and is not a plugin name to fetch"),
            ));
        };
        match self.st.fetches.get(&name) {
            Some(Fetch::Running) => return Ok(()),
            Some(Fetch::Failed(r, at)) if self.st.now_ms.saturating_sub(*at) < FETCH_RETRY_MS => {
                return Err(r.clone());
            }
            _ => {}
        }
        tracing::info!(node = %node, plugin = %name, "pbr: fetching a plugin class from the code server");
        fetcher.fetch(&name);
        self.st.fetch_stats.started += 1;
        self.st.fetches.insert(name, Fetch::Running);
        Ok(())
    }

    fn create_instances(&mut self, plugins: &[Plugin]) -> Result<Vec<InstanceId>, Refusal> {
        let mut made = Vec::with_capacity(plugins.len());
        for p in plugins {
            let r = match resolve_class(self.node, self.cfg, &p.class) {
                None => Err(Refusal::new(
                    Reason::UnknownClass,
                    format!("class {} is not here", p.class),
                )),
                Some(class) => {
                    let config = if p.config.is_empty() {
                        self.cfg.default_config.get(&class).cloned().unwrap_or_default()
                    } else {
                        p.config.clone()
                    };
                    self.node
                        .create_instance(&class, &config)
                        .map_err(|e| Refusal::new(Reason::InstallFailed, format!("{}: {e}", p.class)))
                }
            };
            match r {
                Ok(id) => made.push(id),
                Err(e) => {
                    for id in made {
                        let _ = self.node.remove_instance(id);
                    }
                    return Err(e);
                }
            }
        }
        Ok(made)
    }
}

impl Env for NodeEnv<'_> {
    fn egress(&mut self, to: IpAddr, strict: bool) -> Result<Egress, Refusal> {
        let addrs = self.node.addresses();
        if addrs.iter().any(|(_, a)| a.addr() == to) {
            let reason = if strict { Reason::NotAdjacent } else { Reason::NoRoute };
            return Err(Refusal::new(reason, format!("{to} is this node")));
        }
        if strict {
            let ports = self.node.ports();
            return addrs
                .iter()
                .find(|(p, a)| {
                    a.prefix_len() < a.max_prefix_len()
                        && a.contains(&to)
                        && ports.get(*p as usize).is_some_and(|x| x.up)
                })
                .map(|(p, a)| Egress {
                    port: *p,
                    local: a.addr(),
                })
                .ok_or_else(|| {
                    Refusal::new(
                        Reason::NotAdjacent,
                        format!("{to} is on no subnet of {}", self.node.name()),
                    )
                });
        }
        let Some((port, _, _)) = self.node.lookup_route(to) else {
            return Err(Refusal::new(
                Reason::NoRoute,
                format!("{} has no route to {to}", self.node.name()),
            ));
        };
        let same = |a: &IpAddr| a.is_ipv4() == to.is_ipv4();
        let local = addrs
            .iter()
            .find(|(p, a)| *p == port && same(&a.addr()))
            .or_else(|| addrs.iter().find(|(_, a)| same(&a.addr())))
            .map(|(_, a)| a.addr())
            .ok_or_else(|| Refusal::new(Reason::NoRoute, format!("no local address of the family of {to}")))?;
        Ok(Egress { port, local })
    }

    fn reserve(&mut self, key: VisitKey, req: &VisitRequest) -> Result<(), Refusal> {
        for p in &req.plugins {
            if resolve_class(self.node, self.cfg, &p.class).is_none() {
                self.obtain(&p.class)?;
            }
        }
        let n = req.plugins.len();
        if self.st.plugins_held + n > self.cfg.max_instances {
            return Err(Refusal::new(
                Reason::NoPluginCapacity,
                format!(
                    "{n} plugin(s) asked, {} of {} slots free",
                    self.cfg.max_instances.saturating_sub(self.st.plugins_held),
                    self.cfg.max_instances
                ),
            ));
        }
        let (port, bw) = match req.next {
            Some(nh) if req.bandwidth_bps > 0 => {
                let cap = self.capacity(nh.egress.port);
                let used = self.st.bw_used.get(&nh.egress.port).copied().unwrap_or(0);
                if used.saturating_add(req.bandwidth_bps) > cap {
                    return Err(Refusal::new(
                        Reason::InsufficientBandwidth,
                        format!(
                            "{} bit/s asked on port {}, {} of {cap} free",
                            req.bandwidth_bps,
                            nh.egress.port,
                            cap.saturating_sub(used)
                        ),
                    ));
                }
                (Some(nh.egress.port), req.bandwidth_bps)
            }
            _ => (None, 0),
        };
        // A visit reserved twice (cannot happen through the agent) gives
        // back what it held first.
        self.st.release(self.node, key);
        if let Some(p) = port {
            *self.st.bw_used.entry(p).or_default() += bw;
        }
        self.st.plugins_held += n;
        self.st.held.insert(
            key,
            Held {
                port,
                bw,
                plugins: n,
                installed: None,
            },
        );
        Ok(())
    }

    fn ready(&mut self, _key: VisitKey, req: &VisitRequest) -> Result<bool, Refusal> {
        for p in &req.plugins {
            if resolve_class(self.node, self.cfg, &p.class).is_some() {
                continue;
            }
            match fetch_name(self.cfg, &p.class).and_then(|n| self.st.fetches.get(&n)) {
                Some(Fetch::Running) => return Ok(false),
                Some(Fetch::Failed(r, _)) => return Err(r.clone()),
                Some(Fetch::Done) => {
                    return Err(Refusal::new(
                        Reason::InstallFailed,
                        format!(
                            "a plugin was fetched for {} but no class of that name registered",
                            p.class
                        ),
                    ))
                }
                None => {
                    // Never fetched (the class went away after the
                    // reservation): fetch it now.
                    self.obtain(&p.class)?;
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    fn commit(&mut self, key: VisitKey, install: &VisitInstall<'_>) -> Result<Option<u32>, Refusal> {
        let req = install.request;
        let out = match (install.out, req.next) {
            (OutLabel::Pop, _) => LabelOut::Pop,
            (OutLabel::Label(label), Some(n)) if n.strict => LabelOut::Swap {
                label,
                port: n.egress.port,
                next_hop: n.addr,
            },
            (OutLabel::Label(label), Some(n)) => LabelOut::Tunnel {
                label,
                to: n.addr,
                src: n.egress.local,
            },
            (OutLabel::Label(_), None) => {
                return Err(Refusal::new(Reason::InstallFailed, "an out label at the last visit"));
            }
        };
        if let Some(old) = self.st.held.get_mut(&key).and_then(|h| h.installed.take()) {
            uninstall(self.node, old);
        }
        let chain = self.create_instances(&req.plugins).inspect_err(|_| {
            self.st.install_failures += 1;
        })?;
        let r = if req.is_first() {
            self.node
                .add_steering(flowspec_match(&req.flowspec), chain.clone(), out)
                .map(|(_, l)| l)
        } else {
            self.node.add_label(chain.clone(), out)
        };
        let label = match r {
            Ok(l) => l,
            Err(e) => {
                self.st.install_failures += 1;
                for id in chain {
                    let _ = self.node.remove_instance(id);
                }
                return Err(Refusal::new(Reason::InstallFailed, e.to_string()));
            }
        };
        // What this visit takes in: its segment and plugins, and what the
        // next visit said the rest of the path takes (COMMIT's PATH_MTU).
        let v6 = req.flowspec.src.addr().is_ipv6();
        let mtu = self
            .node
            .set_label_mtu(label, install.downstream_mtu.map(usize::from), v6)
            .unwrap_or(None);
        let h = self.st.held.entry(key).or_default();
        h.installed = Some(Installed {
            label,
            instances: chain,
            mtu,
        });
        Ok((!req.is_first()).then_some(label))
    }

    fn visit_mtu(&mut self, key: VisitKey) -> Option<u16> {
        let m = self.st.held.get(&key)?.installed.as_ref()?.mtu?;
        Some(m.min(u16::MAX as usize) as u16)
    }

    fn release(&mut self, key: VisitKey) {
        self.st.release(self.node, key);
    }

    fn visit_status(&mut self, key: VisitKey) -> serde_json::Value {
        let Some(i) = self.st.held.get(&key).and_then(|h| h.installed.as_ref()) else {
            return serde_json::json!({ "installed": false });
        };
        let info = self.node.labels().into_iter().find(|l| l.label == i.label);
        let instances: Vec<serde_json::Value> = i
            .instances
            .iter()
            .map(|id| {
                let r = self.node.report(*id).unwrap_or_default();
                // Only the element's counters that moved: a record is at
                // most 512 octets on the wire.
                let el: serde_json::Map<String, serde_json::Value> = r["element"]
                    .as_object()
                    .map(|o| {
                        o.iter()
                            .filter(|(_, v)| v.as_u64().is_some_and(|n| n > 0))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                serde_json::json!({
                    "id": id.to_string(),
                    "class": r["class"],
                    "packets": r["engine"]["packets"],
                    "element": el,
                })
            })
            .collect();
        match info {
            Some(l) => serde_json::json!({
                "label": l.label,
                "out": describe_out(&l.out, self.node, l.steering.is_some()),
                "packets": l.packets,
                "bytes": l.bytes,
                "mtu": i.mtu,
                "instances": instances,
            }),
            None => serde_json::json!({ "label": i.label, "missing": true, "instances": instances }),
        }
    }
}

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

#[derive(Clone, Debug)]
struct Initiated {
    req: CreateRequest,
    state: PathState,
    error: Option<HopError>,
    created_ms: u64,
    up_ms: Option<u64>,
    status: Option<(Vec<VisitRecord>, Option<HopError>, u64)>,
}

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

fn walk_string(hops: &[Hop]) -> String {
    hops.iter()
        .map(|h| {
            if h.loose {
                format!("~{}", h.addr)
            } else {
                h.addr.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" → ")
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
                            if self
                                .initiated
                                .get(&old)
                                .is_some_and(|i| i.state != PathState::Up && i.state != PathState::Pending)
                            {
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
        let keys: Vec<VisitKey> = self.env.held.keys().copied().collect();
        for k in keys {
            self.env.release(node, k);
        }
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
            return Some(self.initiated_view(id, i, mine.iter().find(|s| s.key.hop == 0)));
        }
        mine.first().map(Self::visit_view)
    }

    /// Every path initiated here (including finished ones still in the
    /// history) and every visit held here for others, sorted by path and
    /// hop.
    pub fn paths(&self) -> Vec<PathView> {
        let summaries = self.agent.paths();
        let mut v: Vec<PathView> = Vec::with_capacity(summaries.len() + self.finished.len());
        for (id, i) in &self.initiated {
            let s = summaries.iter().find(|s| s.key.path == *id && s.key.hop == 0);
            v.push(self.initiated_view(*id, i, s));
        }
        for s in summaries
            .iter()
            .filter(|s| !(s.key.hop == 0 && self.initiated.contains_key(&s.key.path)))
        {
            v.push(Self::visit_view(s));
        }
        v.sort_by_key(|p| (p.path, p.hop));
        v
    }

    fn initiated_view(&self, id: PathId, i: &Initiated, s: Option<&weft_pbr::PathSummary>) -> PathView {
        let (status, status_error, status_ms) = match &i.status {
            Some((r, e, t)) => (Some(r.clone()), e.clone(), Some(*t)),
            None => (None, None, None),
        };
        PathView {
            id: id.to_string(),
            path: id,
            role: "initiator",
            hop: 0,
            state: i.state,
            error: i.error.clone(),
            walk: walk_string(&i.req.hops),
            request: Some(i.req.clone()),
            in_label: None,
            out_label: s.and_then(|s| s.out_label),
            plugins: i.req.plugins.iter().filter(|p| p.hop == 0).cloned().collect(),
            mtu: s.and_then(|s| s.mtu),
            expires_ms: None,
            status,
            status_error,
            status_ms,
        }
    }

    fn visit_view(s: &weft_pbr::PathSummary) -> PathView {
        let here = "·".to_string();
        let walk = [s.prev.map(|a| a.to_string()), Some(here), s.next.map(|a| a.to_string())]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" → ");
        PathView {
            id: s.key.path.to_string(),
            path: s.key.path,
            role: if s.next.is_none() { "egress" } else { "transit" },
            hop: s.key.hop,
            state: match s.phase {
                Phase::Reserved => PathState::Pending,
                Phase::Committed => PathState::Up,
            },
            error: None,
            walk,
            request: None,
            in_label: s.in_label,
            out_label: s.out_label,
            plugins: s.plugins.clone(),
            mtu: s.mtu,
            expires_ms: s.expires_ms,
            status: None,
            status_error: None,
            status_ms: None,
        }
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
            "initiated": self.initiated.values().filter(|i| matches!(i.state, PathState::Up | PathState::Pending)).count(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use weft_dataplane::PortConfig;
    use weft_pbr::{NextHop, PortRange};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn node() -> Node {
        let mut n = Node::new("n");
        for c in weft_elements::classes() {
            n.upsert_class(c);
        }
        for (i, a) in ["10.0.0.1/24", "10.0.1.1/24"].iter().enumerate() {
            n.add_port(PortConfig {
                name: format!("p{i}"),
                mac: [2, 0, 0, 0, 0, i as u8 + 1],
                mtu: 1500,
                addrs: vec![a.parse().unwrap()],
            })
            .unwrap();
        }
        n.add_route("10.9.0.0/16".parse().unwrap(), Some(ip("10.0.1.2")), None)
            .unwrap();
        n
    }

    fn key(hop: u8) -> VisitKey {
        VisitKey {
            path: PathId {
                initiator: ip("10.0.0.9"),
                number: 1,
            },
            hop,
        }
    }

    fn req(first: bool, next: Option<NextHop>, bw: u64, plugins: &[&str]) -> VisitRequest {
        VisitRequest {
            hop_count: 3,
            prev: (!first).then(|| ip("10.0.0.2")),
            next,
            flowspec: FlowSpec {
                dport: PortRange::single(6060),
                protocol: Some(17),
                ..FlowSpec::any_v4()
            },
            bandwidth_bps: bw,
            plugins: plugins
                .iter()
                .map(|c| Plugin {
                    hop: 1,
                    class: c.to_string(),
                    config: String::new(),
                })
                .collect(),
        }
    }

    fn next(addr: &str, strict: bool, port: u16, local: &str) -> Option<NextHop> {
        Some(NextHop {
            addr: ip(addr),
            strict,
            egress: Egress { port, local: ip(local) },
        })
    }

    #[test]
    fn egress_strict_needs_a_connected_subnet_loose_a_route() {
        let mut n = node();
        let mut st = EnvState::default();
        let cfg = PbrConfig::default();
        let mut env = NodeEnv {
            node: &mut n,
            st: &mut st,
            cfg: &cfg,
        };
        assert_eq!(
            env.egress(ip("10.0.1.7"), true).unwrap(),
            Egress {
                port: 1,
                local: ip("10.0.1.1")
            }
        );
        assert_eq!(
            env.egress(ip("10.9.1.1"), true).unwrap_err().reason,
            Reason::NotAdjacent
        );
        assert_eq!(
            env.egress(ip("10.9.1.1"), false).unwrap(),
            Egress {
                port: 1,
                local: ip("10.0.1.1")
            }
        );
        assert_eq!(env.egress(ip("192.0.2.1"), false).unwrap_err().reason, Reason::NoRoute);
        assert_eq!(
            env.egress(ip("10.0.0.1"), true).unwrap_err().reason,
            Reason::NotAdjacent
        );
    }

    #[test]
    fn reserve_checks_bandwidth_slots_and_classes() {
        let mut n = node();
        let mut st = EnvState::default();
        let mut cfg = PbrConfig {
            max_instances: 1,
            ..PbrConfig::default()
        };
        cfg.port_capacity_bps.insert("p1".into(), 1000);
        let mut env = NodeEnv {
            node: &mut n,
            st: &mut st,
            cfg: &cfg,
        };
        let nh = next("10.0.1.2", true, 1, "10.0.1.1");
        env.reserve(key(1), &req(false, nh, 600, &["ENCRYPT"])).unwrap();
        let e = env.reserve(key(2), &req(false, nh, 600, &[])).unwrap_err();
        assert_eq!(e.reason, Reason::InsufficientBandwidth, "{e}");
        let e = env.reserve(key(2), &req(false, nh, 400, &["Counter"])).unwrap_err();
        assert_eq!(e.reason, Reason::NoPluginCapacity, "{e}");
        let e = env.reserve(key(2), &req(false, nh, 0, &["NOSUCH"])).unwrap_err();
        assert_eq!(e.reason, Reason::UnknownClass, "{e}");
        // The last visit reserves no bandwidth (its egress is the FIB's).
        env.reserve(key(2), &req(false, None, 1_000_000, &[])).unwrap();
        assert_eq!(st.resources().bandwidth_bps.get(&1), Some(&600));
        let mut env = NodeEnv {
            node: &mut n,
            st: &mut st,
            cfg: &cfg,
        };
        env.release(key(1));
        env.release(key(1));
        env.release(key(2));
        assert!(st.resources().is_empty());
    }

    #[test]
    fn commit_installs_labels_and_plugins_release_removes_them() {
        let mut n = node();
        let mut st = EnvState::default();
        let cfg = PbrConfig {
            default_config: [("counter".to_string(), String::new())].into_iter().collect(),
            ..PbrConfig::default()
        };
        let mut env = NodeEnv {
            node: &mut n,
            st: &mut st,
            cfg: &cfg,
        };
        // First visit: steering, push.
        let r0 = req(true, next("10.0.1.2", true, 1, "10.0.1.1"), 0, &["COUNTER"]);
        env.reserve(key(0), &r0).unwrap();
        let l = env
            .commit(
                key(0),
                &VisitInstall {
                    request: &r0,
                    out: OutLabel::Label(100),
                    downstream_mtu: Some(1400),
                },
            )
            .unwrap();
        assert_eq!(l, None);
        // The rest of the path takes 1400; this segment 1500 − 4.
        assert_eq!(env.visit_mtu(key(0)), Some(1400));
        // A middle visit through a loose segment: tunnel.
        let r1 = req(false, next("10.9.0.1", false, 1, "10.0.1.1"), 0, &[]);
        env.reserve(key(1), &r1).unwrap();
        let l1 = env
            .commit(
                key(1),
                &VisitInstall {
                    request: &r1,
                    out: OutLabel::Label(200),
                    downstream_mtu: None,
                },
            )
            .unwrap()
            .unwrap();
        // A loose segment: label, UDP and the outer IPv4 header.
        assert_eq!(env.visit_mtu(key(1)), Some(1500 - 32));
        // The last: pop.
        let r2 = req(false, None, 0, &[]);
        env.reserve(key(2), &r2).unwrap();
        let l2 = env
            .commit(
                key(2),
                &VisitInstall {
                    request: &r2,
                    out: OutLabel::Pop,
                    downstream_mtu: None,
                },
            )
            .unwrap()
            .unwrap();
        assert_ne!(l1, l2);
        let s = env.visit_status(key(1));
        assert_eq!(s["label"], l1);
        assert!(s["out"].as_str().unwrap().contains("udp 10.0.1.1 → 10.9.0.1"), "{s}");
        assert_eq!(env.visit_status(key(2))["out"], "pop");
        let s0 = env.visit_status(key(0));
        assert_eq!(s0["instances"][0]["class"], "counter", "{s0}");
        assert!(s0["out"].as_str().unwrap().starts_with("push 100"), "{s0}");

        let labels = n.labels();
        assert_eq!(labels.len(), 3);
        assert!(labels.iter().any(|x| x.out == LabelOut::Pop && x.label == l2));
        assert!(labels.iter().any(|x| x.out
            == LabelOut::Tunnel {
                label: 200,
                to: ip("10.9.0.1"),
                src: ip("10.0.1.1")
            }));
        assert_eq!(n.filters().len(), 1, "the steering filter");
        assert_eq!(n.instances().len(), 1);
        let mut env = NodeEnv {
            node: &mut n,
            st: &mut st,
            cfg: &cfg,
        };
        for h in 0..3 {
            env.release(key(h));
            env.release(key(h));
        }
        assert!(n.labels().is_empty() && n.filters().is_empty() && n.instances().is_empty());
        assert!(st.resources().is_empty());
    }

    #[test]
    fn a_bad_plugin_configuration_fails_the_commit_cleanly() {
        let mut n = node();
        let mut st = EnvState::default();
        let cfg = PbrConfig::default();
        let mut env = NodeEnv {
            node: &mut n,
            st: &mut st,
            cfg: &cfg,
        };
        // ENCRYPT without a key.
        let r = req(false, None, 0, &["COUNTER", "ENCRYPT"]);
        env.reserve(key(2), &r).unwrap();
        let e = env
            .commit(
                key(2),
                &VisitInstall {
                    request: &r,
                    out: OutLabel::Pop,
                    downstream_mtu: None,
                },
            )
            .unwrap_err();
        assert_eq!(e.reason, Reason::InstallFailed);
        assert!(e.text.contains("key"), "{e}");
        env.release(key(2));
        assert!(n.instances().is_empty() && n.labels().is_empty());
    }

    #[test]
    fn flowspec_keeps_the_family_and_drops_wildcard_ports() {
        let fs = FlowSpec {
            src: "10.0.1.0/24".parse().unwrap(),
            dport: PortRange { lo: 6000, hi: 6100 },
            protocol: Some(17),
            ..FlowSpec::any_v4()
        };
        let m = flowspec_match(&fs);
        assert_eq!(m.src, Some("10.0.1.0/24".parse().unwrap()));
        assert_eq!(m.dst, Some("0.0.0.0/0".parse().unwrap()));
        assert_eq!((m.sport, m.dport, m.proto), (None, Some((6000, 6100)), Some(17)));
    }

    #[test]
    fn a_daemon_on_one_node_sets_up_a_one_hop_path_and_tears_it_down() {
        let seeded = |n: &mut Node| {
            PbrNode::new(
                n,
                PbrConfig {
                    seed: Some(7),
                    ..PbrConfig::default()
                },
            )
        };
        let one_hop = || CreateRequest {
            hops: vec![Hop::strict(ip("10.0.0.1"))],
            flowspec: FlowSpec::any_v4(),
            plugins: vec![],
            bandwidth_bps: 0,
            refresh_ms: 1000,
        };
        let mut n = node();
        let mut p = seeded(&mut n);
        let id = p.create(&mut n, 0, one_hop()).unwrap();
        assert_eq!(p.path(id).unwrap().state, PathState::Up);
        assert_eq!(n.labels().len(), 1);
        assert!(matches!(p.poll_event(), Some(Event::PathUp { .. })));
        p.release(&mut n, 1, id).unwrap();
        assert_eq!(p.path(id).unwrap().state, PathState::Released);
        assert!(n.labels().is_empty() && n.filters().is_empty());
        assert!(p.resources().is_empty());
        assert_eq!(p.stats().paths_released, 1);
        let j = p.counters();
        assert_eq!(j["driver"]["paths_up"], 1);
        // Seeded: the same numbers every time.
        let mut n2 = node();
        let mut p2 = seeded(&mut n2);
        assert_eq!(p2.create(&mut n2, 0, one_hop()).unwrap(), id);
        let e = p2.release(&mut n2, 0, PathId { number: 0, ..id }).unwrap_err();
        assert!(matches!(e, PbrError::UnknownPath(_)));
    }
}
