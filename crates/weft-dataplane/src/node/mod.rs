//! The node: ports, addresses, classes, instances, filters, routes, the
//! pipeline snapshot, and the data path that runs over them.
//!
//! [`Node`] is the **node handle**: the one API through which anything
//! (config files, the HTTP API, the CLI, the emulator, the PBR and
//! signaling daemons) changes a node. Changes mark the snapshot stale; the
//! next batch builds a new immutable [`Pipeline`] off to the side and
//! publishes it in one assignment; the data path reads only the snapshot
//! it took at the start of a batch, so no packet ever sees a half-made
//! configuration.
//!
//! **Threading.** A `Node` is owned by the thread that runs its data path;
//! control operations are applied between batches (drivers queue them from
//! other threads, see `weft-control`). The hot path therefore takes no locks
//! and shares no cache lines with the control plane. Instance state lives in
//! the instances, not in the snapshot, which is why replacing an element loses
//! no packet: the swap happens between two batches.
//!
//! **Driving it** (sans-IO, quinn's shape): a driver hands received
//! batches to [`Node::receive`], drains [`Node::take_tx`], and calls
//! [`Node::tick`] when [`Node::poll_timeout`] says; the node never reads a
//! clock, time comes in as nanoseconds.
//!
//! **Data path** (DESIGN section 3): parse → PREROUTING → routing decision →
//! INPUT (node-local) | FORWARD → POSTROUTING → neighbour resolution → port.
//! Packets the node or its elements originate take OUTPUT → routing →
//! POSTROUTING.
//!
//! One module per job:
//!
//! | module | job |
//! |---|---|
//! | this one | the [`Node`] struct, its driver contract (receive, tick, poll_timeout, transmit) |
//! | `ports` | ports, addresses, routes, static neighbours |
//! | `control` | classes, instances, filters and their chains, replacement, owners |
//! | `pipeline` | the snapshot: marking it stale, building and publishing it |
//! | `datapath` | receive → routing → FORWARD → POSTROUTING → out; OUTPUT |
//! | `hooks` | classifying at a hook, running a chain, applying a verdict; the routing step |
//! | `caches` | the route cache and the flow cache |
//! | `neighbors` | holding packets for neighbour resolution, retries, expiry |
//! | `local` | ARP, neighbour discovery, echo, the node-local receive queue |
//! | `icmp` | ICMP errors and their limiter |
//! | `label` | explicit-path visits (MPLS labels) |
//! | `domains` | the domain tree: members, limits, memory charges, destruction |
//! | `sched` | the domain schedulers: queues between the classifier and the chains |
//! | `metrics` | the counters, as data |

use crate::element::{ElementClass, ElementError, EmitTo, InstanceId, Verdict};
use crate::fib::Fib;
use crate::icmp_limit::IcmpLimiter;
use crate::neigh::Neighbors;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use weft_packet::{Batch, Packet, PacketPool, PortId};

mod caches;
mod control;
mod datapath;
mod domains;
mod hooks;
mod icmp;
mod label;
mod local;
mod metrics;
mod neighbors;
mod pipeline;
mod ports;
mod sched;

pub use control::{FilterId, FilterInfo, FilterSpec, InstanceInfo, Owned, Owner};
pub use domains::DomainHook;
pub use domains::BUFFER_CHARGE;
pub use label::{LabelInfo, LabelOut, ETHERTYPE_MPLS, FIRST_LABEL, LABEL_TTL, MAX_LABEL, MPLS_UDP_PORT};
pub use metrics::{DropReason, InstanceStats, PortStats};
pub use pipeline::Pipeline;
pub use ports::{PortConfig, PortInfo};
pub use sched::{CpuClock, MAX_CREDIT_NS, NOMINAL_PKT_NS};

use caches::{FlowSlot, RouteSlot, FLOW_CACHE_SLOTS, ROUTE_CACHE_SLOTS};
use control::{Filter, Instance};
use ports::Port;

/// The pseudo-port of packets the node itself originates.
pub const LOCAL_PORT: PortId = u16::MAX;

/// Netfilter-style hooks where filters bind chains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hook {
    /// Every IP packet received, before routing.
    Prerouting = 0,
    /// Packets addressed to the node.
    Input = 1,
    /// Packets being forwarded (after the TTL decrement).
    Forward = 2,
    /// Packets the node or its elements originate.
    Output = 3,
    /// Every packet about to leave a port.
    Postrouting = 4,
}

impl Hook {
    /// All hooks in the order a forwarded packet meets them.
    pub const ALL: [Hook; 5] = [
        Hook::Prerouting,
        Hook::Input,
        Hook::Forward,
        Hook::Output,
        Hook::Postrouting,
    ];

    /// Upper-case name, as iptables prints chains.
    pub fn name(self) -> &'static str {
        match self {
            Hook::Prerouting => "PREROUTING",
            Hook::Input => "INPUT",
            Hook::Forward => "FORWARD",
            Hook::Output => "OUTPUT",
            Hook::Postrouting => "POSTROUTING",
        }
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Hook {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "prerouting" => Ok(Hook::Prerouting),
            "input" => Ok(Hook::Input),
            "forward" => Ok(Hook::Forward),
            "output" => Ok(Hook::Output),
            "postrouting" => Ok(Hook::Postrouting),
            _ => Err(format!(
                "unknown hook {s:?} (prerouting, input, forward, output, postrouting)"
            )),
        }
    }
}

/// Error returned by [`Node`] operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// No class of that name.
    #[error("unknown class {0:?}")]
    UnknownClass(String),
    /// A class of that name exists already.
    #[error("class {0:?} exists already")]
    ClassExists(String),
    /// The class still has instances.
    #[error("class {0:?} has instances: {1}")]
    ClassInUse(String, String),
    /// No such instance.
    #[error("no instance {0}")]
    UnknownInstance(InstanceId),
    /// The instance is bound to filters.
    #[error("instance {0} is bound to filter(s) {1}; unbind it or remove those filters first")]
    InstanceInUse(InstanceId, String),
    /// No such filter.
    #[error("no filter {0}")]
    UnknownFilter(FilterId),
    /// No such port.
    #[error("no port {0}")]
    UnknownPort(String),
    /// A port of that name exists already.
    #[error("port {0:?} exists already")]
    PortExists(String),
    /// No such route.
    #[error("no route for {0}")]
    UnknownRoute(IpNet),
    /// A route for that prefix exists already.
    #[error("a route for {0} exists already")]
    RouteExists(IpNet),
    /// A route's gateway is not reachable on-link.
    #[error("gateway {0} is not on a connected network")]
    GatewayNotOnLink(IpAddr),
    /// The filter has no hook.
    #[error("a filter needs a hook")]
    NoHook,
    /// The instance is already in that chain.
    #[error("instance {0} is already bound to filter {1}")]
    AlreadyBound(InstanceId, FilterId),
    /// The instance is not in that chain.
    #[error("instance {0} is not bound to filter {1}")]
    NotBound(InstanceId, FilterId),
    /// No visit holds that label.
    #[error("no label {0}")]
    UnknownLabel(u32),
    /// A label outside 16..2^20.
    #[error("label {0} is outside 16..1048575")]
    BadLabel(u32),
    /// Every label is in use.
    #[error("no free label")]
    LabelsExhausted,
    /// An element refused (configuration, control, state).
    #[error("{0}")]
    Element(#[from] ElementError),
    /// A domain operation failed ([`crate::domain`]).
    #[error("{0}")]
    Domain(#[from] crate::domain::DomainError),
}

/// A packet the node delivered to a local listener (see [`Node::listen`]).
pub type LocalPacket = Packet;

/// A Weft node. See the module documentation.
pub struct Node {
    name: String,
    ports: Vec<Port>,
    classes: BTreeMap<String, ElementClass>,
    instances: Vec<Option<Instance>>,
    filters: Vec<Filter>,
    filter_hits: Vec<u64>,
    resolvers: Vec<InstanceId>,
    /// The control state changed since the snapshot was built.
    stale: bool,
    /// Explicit-path visits by label. Read by the data path directly,
    /// not through the snapshot: a path's visits come and go one at a time
    /// (ten thousand paths would otherwise rebuild ten thousand maps), and
    /// the node is single-owner, so changes land between batches anyway.
    labels: HashMap<u32, label::LabelState>,
    next_label: u32,
    next_filter: u32,
    routes: Fib,
    neigh: Neighbors,
    pipeline: Arc<Pipeline>,
    drops: [u64; DropReason::COUNT],
    pool: PacketPool,
    tx: Vec<Batch>,
    emitted: Vec<(EmitTo, Packet)>,
    originate: Batch,
    local_rx: VecDeque<LocalPacket>,
    listeners: Vec<(u8, u16)>,
    /// Datagrams to intercept instead of forwarding: (protocol, port,
    /// payload prefix) of packets carrying the Router Alert option
    /// ([`Node::intercept_router_alert`]).
    intercepts: Vec<(u8, u16, Vec<u8>)>,
    /// `(proto, lo, hi)`: port ranges delivered locally ([`Node::listen_range`]).
    listen_ranges: Vec<(u8, u16, u16)>,
    /// Every ICMP error the node sends, the engine's and its elements',
    /// takes a token here (`icmp_rate`, `icmp_burst`).
    icmp: IcmpLimiter,
    now_ns: u64,
    /// When what waits in `originate` and `emitted` is due: at once after
    /// [`Node::send`], later when an OUTPUT loop ran out of rounds.
    output_due_ns: u64,
    route_cache: Vec<RouteSlot>,
    flow_cache: Vec<FlowSlot>,
    // Scratch vectors reused across batches so the hot path does not allocate.
    s_ip: Batch,
    s_local: Batch,
    s_fwd: Batch,
    s_keep: Batch,
    s_rest: Batch,
    s_groups: Vec<(usize, Batch)>,
    // Used only inside run_hook / run_chain, which run while the vectors
    // above are taken by their callers.
    s_hook_rest: Batch,
    s_chain_keep: Batch,
    s_matched: Vec<u32>,
    /// PREROUTING's rules of a received batch, found as it is parsed
    /// (apart from `s_matched`: the chains may run other hooks).
    s_pre_matched: Vec<u32>,
    s_group_pool: Vec<Batch>,
    s_verdicts: Vec<Verdict>,
    /// A one-packet batch (label visits) or steering's packets for the
    /// node; never held across another of these uses.
    s_one: Batch,
    /// The domain tree by id (`[0]` is the root; `None`: destroyed — ids
    /// are never reused).
    domains: Vec<Option<domains::DomainSlot>>,
    /// The domain of each explicit-path visit not in the root.
    visit_domain: HashMap<u32, crate::domain::DomainId>,
    /// Told about every destroyed domain.
    domain_hooks: Vec<DomainHook>,
    /// The domain schedulers' state.
    sched: sched::Sched,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.name)
            .field("version", &self.pipeline.version)
            .finish()
    }
}

impl Node {
    /// An empty node with no ports, classes or routes.
    pub fn new(name: &str) -> Node {
        Node {
            name: name.to_string(),
            ports: Vec::new(),
            classes: BTreeMap::new(),
            instances: vec![None], // ids start at #1, as in PromethOS
            filters: Vec::new(),
            filter_hits: Vec::new(),
            resolvers: Vec::new(),
            stale: false,
            labels: HashMap::new(),
            next_label: label::FIRST_LABEL,
            next_filter: 1,
            routes: Fib::default(),
            neigh: Neighbors::default(),
            pipeline: Arc::new(Pipeline::default()),
            drops: [0; DropReason::COUNT],
            pool: PacketPool::with_buffers(256),
            tx: Vec::new(),
            emitted: Vec::new(),
            originate: Vec::new(),
            local_rx: VecDeque::new(),
            listeners: Vec::new(),
            intercepts: Vec::new(),
            listen_ranges: Vec::new(),
            icmp: IcmpLimiter::default(),
            now_ns: 0,
            output_due_ns: 0,
            route_cache: vec![RouteSlot::default(); ROUTE_CACHE_SLOTS],
            flow_cache: vec![FlowSlot::default(); FLOW_CACHE_SLOTS],
            s_ip: Vec::with_capacity(64),
            s_local: Vec::with_capacity(64),
            s_fwd: Vec::with_capacity(64),
            s_keep: Vec::with_capacity(64),
            s_rest: Vec::with_capacity(64),
            s_groups: Vec::new(),
            s_hook_rest: Vec::with_capacity(64),
            s_chain_keep: Vec::with_capacity(64),
            s_matched: Vec::with_capacity(64),
            s_pre_matched: Vec::with_capacity(64),
            s_group_pool: Vec::new(),
            s_verdicts: Vec::with_capacity(64),
            s_one: Vec::with_capacity(1),
            domains: vec![Some(domains::DomainSlot::root())],
            visit_domain: HashMap::new(),
            domain_hooks: Vec::new(),
            sched: sched::Sched::default(),
        }
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    // ----- the driver contract -------------------------------------------------

    /// Advance time to `now_ns`: retry and expire neighbour resolutions,
    /// send what elements and the node originated. Call it when
    /// [`Node::poll_timeout`] says (calling it more often is harmless).
    pub fn tick(&mut self, now_ns: u64) {
        self.now_ns = now_ns;
        self.publish_if_stale();
        let pl = self.pipeline.clone();
        self.neighbor_timers(now_ns);
        self.output_pending(&pl);
        self.sched_tick(&pl);
    }

    /// When the node next needs [`Node::tick`], on the clock it is given
    /// (nanoseconds): at once when it holds packets it originated (they
    /// leave at the next tick or receive; what an OUTPUT loop left after
    /// its rounds waits 10 ms), else at the
    /// earliest neighbour retry or expiry; `None` when nothing is due
    /// however long it waits.
    ///
    /// Nothing else in the node runs on a timer: token buckets (the ICMP
    /// limiter, `ratelimit`) refill from the clock the next packet brings,
    /// neighbour entries do not age, and a stale snapshot is built at the
    /// next batch or lookup. Explicit-path soft state lives in the PBR
    /// daemon, which has its own `poll_timeout`.
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.sched.queued > 0 {
            // Packets wait in domains' queues: the next round is due now.
            return Some(self.now_ns);
        }
        let output = (!self.originate.is_empty() || !self.emitted.is_empty()).then_some(self.output_due_ns);
        match (output, self.neighbor_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Send a packet from the node itself: an Ethernet frame whose MAC
    /// addresses are filled in on output. It takes OUTPUT → routing →
    /// POSTROUTING at the next [`Node::receive`] or [`Node::tick`].
    pub fn send(&mut self, frame: &[u8]) {
        let p = self.pool.alloc(frame);
        self.originate.push(p);
        self.output_due_ns = self.now_ns;
    }

    /// Frames queued for `port`; the driver sends them and hands the buffers
    /// back with [`Node::recycle`].
    pub fn take_tx(&mut self, port: PortId, out: &mut Batch) {
        if let Some(q) = self.tx.get_mut(port as usize) {
            out.append(q);
        }
    }

    /// True when any port has frames queued.
    pub fn has_tx(&self) -> bool {
        self.tx.iter().any(|q| !q.is_empty())
    }

    /// Return a sent packet's buffer to the node's pool.
    #[inline]
    pub fn recycle(&mut self, p: Packet) {
        self.pool.free(p);
    }

    /// A buffer from the node's pool holding `frame` (for drivers' receive
    /// paths).
    #[inline]
    pub fn alloc(&mut self, frame: &[u8]) -> Packet {
        self.pool.alloc(frame)
    }

    /// Append a pooled buffer holding `frame` to `out`, filled in place.
    #[inline]
    pub fn alloc_into(&mut self, out: &mut Batch, frame: &[u8]) {
        self.pool.alloc_into(out, frame);
    }

    /// Buffers free in the node's pool now (what a destroyed domain's
    /// queue gave back shows here).
    pub fn pool_available(&self) -> usize {
        self.pool.available()
    }

    /// Buffers the node's pool has ever allocated.
    pub fn pool_allocated(&self) -> u64 {
        self.pool.allocated()
    }
}
