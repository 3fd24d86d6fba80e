//! The emulator core: builds nodes, hosts and links from a [`Topology`] and
//! runs them on a virtual clock.
//!
//! Time only moves in [`Emulator::step`]: it jumps to the earliest pending
//! thing — a frame arriving at the end of a link, a host's timer (smoltcp's
//! `poll_at`, an application's next send), a node's or a PBR daemon's next
//! deadline ([`Node::poll_timeout`], quinn's driver contract) — and
//! handles everything due then: frames arriving at one node port at one
//! instant are handed to [`Node::receive`] as one batch; what nodes and hosts
//! send in response is offered to their links. Ties are broken by the order
//! events were scheduled, nodes and hosts are visited in file order, and loss
//! comes from seeded generators, so one input gives one result.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use weft_control::clock;
use weft_control::config::NodeConfig;
use weft_control::pbr::{ClassFetcher, PathView, PbrConfig, PbrNode};
use weft_dataplane::{Node, PortConfig};
use weft_packet::{Batch, PortId};

use crate::host::Host;
use crate::link::{CapturedFrame, Link, LinkCounters, Offer};
use crate::routing::{self, Edge};
use crate::topology::{parse_mac, ConfigSource, EndpointSpec, Routing, Topology};
use crate::EmuError;

mod signal;
pub use signal::{SignalAnswer, SignalSetup, EPOCH_S, REQUESTER_PORT};

/// How often a PBR daemon's class fetcher that answers by being polled
/// (`ClassFetcher::poll`) is asked, while anything else is going to
/// happen: a fetch in flight has no deadline to wake on. (Nodes say when
/// they need time; fetchers cannot.) The nodes' old tick period.
pub const FETCH_POLL_NS: u64 = 100_000_000;

/// One end of a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Node(usize, PortId),
    Host(usize),
}

struct EmuLink {
    link: Link,
    ends: [End; 2],
}

struct EmuNode {
    node: Node,
    cost: u32,
    /// Port id → (link, side).
    ports: Vec<Option<(usize, usize)>>,
    /// Frames sent out of ports with no link.
    unconnected: u64,
    /// The node's PBR daemon, when enabled ([`Emulator::enable_pbr`]).
    pbr: Option<PbrNode>,
    /// Its daemon has a class fetcher that answers by being polled
    /// ([`Emulator::pbr_set_fetcher`]).
    polled_fetcher: bool,
    /// The node's signaling daemon, when enabled ([`Emulator::enable_signal`]).
    signal: Option<weft_control::signal::SignalNode>,
}

struct EmuHost {
    host: Host,
    link: Option<(usize, usize)>,
    /// The host's signaling requester ([`Emulator::enable_requester`]).
    signal: Option<signal::Requester>,
}

/// A frame arriving at the `to` side of a link.
struct Event {
    at: u64,
    seq: u64,
    link: usize,
    to: usize,
    frame: Vec<u8>,
}

impl PartialEq for Event {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Event {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// The in-process network emulator. See the module documentation.
pub struct Emulator {
    topo: Topology,
    now_ns: u64,
    seq: u64,
    /// The next time polled class fetchers are asked ([`FETCH_POLL_NS`]).
    next_fetch_poll_ns: u64,
    nodes: Vec<EmuNode>,
    node_names: Vec<String>,
    hosts: Vec<EmuHost>,
    links: Vec<EmuLink>,
    events: BinaryHeap<Reverse<Event>>,
    steps: u64,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("now_ns", &self.now_ns)
            .field("nodes", &self.node_names)
            .field("hosts", &self.hosts.len())
            .field("links", &self.links.len())
            .finish()
    }
}

/// MAC of a port the emulator creates: locally administered, from the node's
/// and port's positions.
fn node_port_mac(node: usize, port: usize) -> [u8; 6] {
    [0x02, 0x57, (node >> 8) as u8, node as u8, (port >> 8) as u8, port as u8]
}

fn host_mac(host: usize) -> [u8; 6] {
    [0x02, 0x48, 0, (host >> 8) as u8, host as u8, 1]
}

fn load_node_config(src: &ConfigSource, name: &str, base: &Path) -> Result<NodeConfig, EmuError> {
    let cfg = match src {
        ConfigSource::Path(p) => {
            let path = base.join(p);
            NodeConfig::load(&path).map_err(|e| EmuError::NodeConfig(name.to_string(), e.to_string()))?
        }
        ConfigSource::Inline(t) => {
            let mut t = t.clone();
            // The node's name comes from [[node]]; `[node.config.node]` may omit it.
            let section = t
                .entry("node")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(s) = section {
                s.entry("name").or_insert_with(|| toml::Value::String(name.to_string()));
            }
            let text = toml::to_string(&t).map_err(|e| EmuError::NodeConfig(name.to_string(), e.to_string()))?;
            NodeConfig::parse(&text, &format!("[node.config] of {name}"))
                .map_err(|e| EmuError::NodeConfig(name.to_string(), e.to_string()))?
        }
    };
    Ok(cfg)
}

impl Emulator {
    /// Load a topology file; node config paths are relative to its directory.
    pub fn load(path: impl AsRef<Path>) -> Result<Emulator, EmuError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| EmuError::Io(path.display().to_string(), e))?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Self::build(Topology::parse(&text, &path.display().to_string())?, &base)
    }

    /// Build from topology text; node config paths are relative to `base_dir`.
    pub fn from_str(toml: &str, base_dir: impl AsRef<Path>) -> Result<Emulator, EmuError> {
        Self::build(Topology::parse(toml, "<topology>")?, base_dir.as_ref())
    }

    /// Build from a parsed topology.
    pub fn build(topo: Topology, base: &Path) -> Result<Emulator, EmuError> {
        let ends: Vec<[EndpointSpec; 2]> = topo
            .links
            .iter()
            .map(|l| Ok([topo.endpoint(&l.a)?, topo.endpoint(&l.b)?]))
            .collect::<Result<_, EmuError>>()?;

        // Nodes: ports for links first (so config routes may use their
        // addresses), then the node config, then link addresses on ports the
        // config defined.
        let mut nodes = Vec::new();
        for (ni, spec) in topo.nodes.iter().enumerate() {
            let cfg = spec
                .config
                .as_ref()
                .map(|c| load_node_config(c, &spec.name, base))
                .transpose()?;
            let mut node = Node::new(&spec.name);
            if cfg.is_none() {
                for c in weft_elements::classes() {
                    node.upsert_class(c);
                }
            }
            let cfg_ports: Vec<String> = cfg
                .as_ref()
                .map(|c| c.ports.iter().map(|p| p.get_ref().name.get_ref().clone()).collect())
                .unwrap_or_default();
            let mut later: Vec<(String, Vec<IpNet>)> = Vec::new();
            for (li, l) in topo.links.iter().enumerate() {
                for (side, addrs) in [(0, &l.a_addr), (1, &l.b_addr)] {
                    let EndpointSpec::Node { node: n, port } = &ends[li][side] else {
                        continue;
                    };
                    if *n != spec.name {
                        continue;
                    }
                    if cfg_ports.contains(port) {
                        later.push((port.clone(), addrs.to_vec()));
                        continue;
                    }
                    let mac = node_port_mac(ni, node.port_count());
                    node.add_port(PortConfig {
                        name: port.clone(),
                        mac,
                        mtu: l.mtu,
                        addrs: addrs.to_vec(),
                    })
                    .map_err(|e| EmuError::Node(spec.name.clone(), e))?;
                }
            }
            if let Some(cfg) = &cfg {
                weft_control::config::apply(cfg, &mut node)
                    .map_err(|e| EmuError::NodeConfig(spec.name.clone(), e.to_string()))?;
            }
            for (port, addrs) in later {
                let pid = node.port_id(&port).map_err(|e| EmuError::Node(spec.name.clone(), e))?;
                for a in addrs {
                    node.add_address(pid, a)
                        .map_err(|e| EmuError::Node(spec.name.clone(), e))?;
                }
            }
            let ports = vec![None; node.port_count()];
            nodes.push(EmuNode {
                node,
                cost: spec.cost,
                ports,
                unconnected: 0,
                pbr: None,
                polled_fetcher: false,
                signal: None,
            });
        }
        let node_names: Vec<String> = topo.nodes.iter().map(|n| n.name.clone()).collect();
        let node_idx = |n: &str| node_names.iter().position(|x| x == n);
        let host_idx = |h: &str| topo.hosts.iter().position(|x| x.name == h);

        // Links.
        let mut links = Vec::new();
        let mut host_links: Vec<Option<(usize, usize)>> = vec![None; topo.hosts.len()];
        let mut used_names = std::collections::BTreeSet::new();
        for (li, l) in topo.links.iter().enumerate() {
            let mut e = [End::Host(0); 2];
            for side in 0..2 {
                e[side] = match &ends[li][side] {
                    EndpointSpec::Node { node, port } => {
                        let ni = node_idx(node).ok_or_else(|| EmuError::Topology(format!("no node {node}")))?;
                        let pid = nodes[ni]
                            .node
                            .port_id(port)
                            .map_err(|er| EmuError::Node(node.clone(), er))?;
                        nodes[ni].ports[pid as usize] = Some((li, side));
                        End::Node(ni, pid)
                    }
                    EndpointSpec::Host(h) => {
                        let hi = host_idx(h).ok_or_else(|| EmuError::Topology(format!("no host {h}")))?;
                        host_links[hi] = Some((li, side));
                        End::Host(hi)
                    }
                };
            }
            let mut name = l
                .name
                .clone()
                .unwrap_or_else(|| format!("{}-{}", ends[li][0].owner(), ends[li][1].owner()));
            if used_names.contains(&name) {
                if l.name.is_some() {
                    return Err(EmuError::Topology(format!("two links are named {name:?}")));
                }
                name = format!("{name}#{li}");
            }
            used_names.insert(name.clone());
            links.push(EmuLink {
                link: Link::new(name, l, topo.seed, li),
                ends: e,
            });
        }

        // Hosts: gateways default to the node port's address on the host's link.
        let mut hosts = Vec::new();
        for (hi, h) in topo.hosts.iter().enumerate() {
            let mac = match &h.mac {
                Some(m) => parse_mac(m)?,
                None => host_mac(hi),
            };
            let peer_addrs: Vec<IpNet> = match host_links[hi] {
                Some((li, side)) => match links[li].ends[1 - side] {
                    End::Node(n, p) => nodes[n]
                        .node
                        .addresses()
                        .into_iter()
                        .filter(|(pp, _)| *pp == p)
                        .map(|(_, a)| a)
                        .collect(),
                    End::Host(_) => Vec::new(),
                },
                None => Vec::new(),
            };
            let gateway = h.gateway.or_else(|| {
                let net = h.addr?;
                peer_addrs.iter().find_map(|a| match a {
                    IpNet::V4(n) if net.contains(&n.addr()) && n.addr() != net.addr() => Some(n.addr()),
                    _ => None,
                })
            });
            let gateway6 = h.gateway6.or_else(|| {
                let net = h.addr6?;
                peer_addrs.iter().find_map(|a| match a {
                    IpNet::V6(n) if net.contains(&n.addr()) && n.addr() != net.addr() => Some(n.addr()),
                    _ => None,
                })
            });
            let mtu = host_links[hi].map(|(li, _)| links[li].link.mtu).unwrap_or(1500);
            let seed = topo.seed ^ ((hi as u64 + 1) << 32);
            let host = Host::new(&h.name, mac, h.addr, h.addr6, gateway, gateway6, mtu, seed)?;
            hosts.push(EmuHost {
                host,
                link: host_links[hi],
                signal: None,
            });
        }

        let mut emu = Emulator {
            topo,
            now_ns: 0,
            seq: 0,
            next_fetch_poll_ns: 0,
            nodes,
            node_names,
            hosts,
            links,
            events: BinaryHeap::new(),
            steps: 0,
        };
        emu.install_routes()?;
        Ok(emu)
    }

    fn install_routes(&mut self) -> Result<(), EmuError> {
        for r in self.topo.routes.clone() {
            let Some(ni) = self.node_index(&r.node) else {
                return Err(EmuError::Topology(format!("route on unknown node {:?}", r.node)));
            };
            let node = &mut self.nodes[ni].node;
            let port = match &r.port {
                Some(p) => Some(node.port_id(p).map_err(|e| EmuError::Node(r.node.clone(), e))?),
                None => None,
            };
            node.add_route(r.prefix, r.via, port)
                .map_err(|e| EmuError::Node(r.node.clone(), e))?;
        }
        if self.topo.routing != Routing::ShortestPath {
            return Ok(());
        }
        let mut edges = Vec::new();
        for l in &self.links {
            if let [End::Node(a, ap), End::Node(b, bp)] = l.ends {
                let addrs = |n: usize, p: PortId| -> Vec<IpNet> {
                    self.nodes[n]
                        .node
                        .addresses()
                        .into_iter()
                        .filter(|(pp, _)| *pp == p)
                        .map(|(_, a)| a)
                        .collect()
                };
                edges.push(Edge {
                    a,
                    b,
                    cost: l.link.cost as u64,
                    a_port: ap,
                    b_port: bp,
                    a_addrs: addrs(a, ap),
                    b_addrs: addrs(b, bp),
                });
            }
        }
        let mut subnets: Vec<(IpNet, Vec<usize>)> = Vec::new();
        let mut add = |net: IpNet, node: Option<usize>| {
            let net = net.trunc();
            let i = match subnets.iter().position(|(s, _)| *s == net) {
                Some(i) => i,
                None => {
                    subnets.push((net, Vec::new()));
                    subnets.len() - 1
                }
            };
            if let Some(n) = node {
                if !subnets[i].1.contains(&n) {
                    subnets[i].1.push(n);
                }
            }
        };
        for (ni, n) in self.nodes.iter().enumerate() {
            for (_, a) in n.node.addresses() {
                add(a, Some(ni));
            }
        }
        for h in &self.hosts {
            if let Some(n) = h.host.net() {
                add(IpNet::V4(n), None);
            }
            if let Some(n) = h.host.net6() {
                add(IpNet::V6(n), None);
            }
        }
        // Attachments of host subnets: nodes with an address in them.
        for (net, att) in subnets.iter_mut() {
            for (ni, n) in self.nodes.iter().enumerate() {
                if !att.contains(&ni) && n.node.addresses().iter().any(|(_, a)| net.contains(&a.addr())) {
                    att.push(ni);
                }
            }
        }
        let planned = routing::plan(self.nodes.len(), &edges, &subnets);
        for r in planned {
            let node = &mut self.nodes[r.node].node;
            // A route the node config wrote by hand wins.
            if node
                .routes()
                .iter()
                .any(|x| x.prefix == r.prefix && x.kind == weft_dataplane::RouteKind::Static)
            {
                continue;
            }
            node.replace_route(r.prefix, Some(r.via), Some(r.port))
                .map_err(|e| EmuError::Node(self.node_names[r.node].clone(), e))?;
        }
        Ok(())
    }

    // ----- access --------------------------------------------------------------

    /// The topology this emulator was built from.
    pub fn topology(&self) -> &Topology {
        &self.topo
    }

    /// Virtual time since start.
    pub fn now(&self) -> Duration {
        Duration::from_nanos(self.now_ns)
    }

    /// Virtual time since start, ns.
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    fn node_index(&self, name: &str) -> Option<usize> {
        self.node_names.iter().position(|n| n == name)
    }

    fn host_index(&self, name: &str) -> Option<usize> {
        self.hosts.iter().position(|h| h.host.name() == name)
    }

    /// Node names in file order.
    pub fn node_names(&self) -> &[String] {
        &self.node_names
    }

    /// Host names in file order.
    pub fn host_names(&self) -> Vec<String> {
        self.hosts.iter().map(|h| h.host.name().to_string()).collect()
    }

    /// The node handle of `name`, if there is such a node.
    pub fn try_node(&self, name: &str) -> Option<&Node> {
        self.node_index(name).map(|i| &self.nodes[i].node)
    }

    /// The node handle of `name`.
    ///
    /// # Panics
    /// If the topology has no such node (a bug in the caller's script).
    pub fn node(&self, name: &str) -> &Node {
        match self.try_node(name) {
            Some(n) => n,
            None => panic!("no node {name:?} in the topology"),
        }
    }

    /// The node handle of `name`, to recompose it mid-run (instances,
    /// filters, routes); changes take effect at the next batch.
    ///
    /// # Panics
    /// If the topology has no such node.
    pub fn node_mut(&mut self, name: &str) -> &mut Node {
        match self.node_index(name) {
            Some(i) => &mut self.nodes[i].node,
            None => panic!("no node {name:?} in the topology"),
        }
    }

    /// A node's processing cost from the topology.
    pub fn node_cost(&self, name: &str) -> Option<u32> {
        self.node_index(name).map(|i| self.nodes[i].cost)
    }

    /// Frames a node sent out of ports that are on no link.
    pub fn node_unconnected(&self, name: &str) -> Option<u64> {
        self.node_index(name).map(|i| self.nodes[i].unconnected)
    }

    /// The host `name`, if there is one.
    pub fn try_host(&self, name: &str) -> Option<&Host> {
        self.host_index(name).map(|i| &self.hosts[i].host)
    }

    /// The host `name`.
    ///
    /// # Panics
    /// If the topology has no such host.
    pub fn host(&self, name: &str) -> &Host {
        match self.try_host(name) {
            Some(h) => h,
            None => panic!("no host {name:?} in the topology"),
        }
    }

    /// The host `name`, to give it commands (they start at the current
    /// virtual time).
    ///
    /// # Panics
    /// If the topology has no such host.
    pub fn host_mut(&mut self, name: &str) -> &mut Host {
        let Some(i) = self.host_index(name) else {
            panic!("no host {name:?} in the topology")
        };
        let h = &mut self.hosts[i].host;
        h.now_ns = self.now_ns;
        h
    }

    /// The host `name`, or `None`; commands start at the current time.
    pub fn try_host_mut(&mut self, name: &str) -> Option<&mut Host> {
        let i = self.host_index(name)?;
        let h = &mut self.hosts[i].host;
        h.now_ns = self.now_ns;
        Some(h)
    }

    /// The host that has address `a`.
    pub fn host_by_addr(&self, a: IpAddr) -> Option<&Host> {
        self.hosts.iter().map(|h| &h.host).find(|h| match a {
            IpAddr::V4(v) => h.addr() == Some(v),
            IpAddr::V6(v) => h.addr6() == Some(v),
        })
    }

    fn link_index(&self, name: &str) -> Option<usize> {
        self.links.iter().position(|l| l.link.name == name)
    }

    /// Link names in file order.
    pub fn link_names(&self) -> Vec<String> {
        self.links.iter().map(|l| l.link.name.clone()).collect()
    }

    /// Counters of every link.
    pub fn links(&self) -> Vec<LinkCounters> {
        self.links.iter().map(|l| l.link.counters()).collect()
    }

    /// Counters of one link.
    pub fn link(&self, name: &str) -> Option<LinkCounters> {
        self.link_index(name).map(|i| self.links[i].link.counters())
    }

    /// Start recording the frames that arrive over link `name`.
    pub fn capture(&mut self, name: &str) -> Result<(), EmuError> {
        let i = self
            .link_index(name)
            .ok_or_else(|| EmuError::UnknownLink(name.to_string()))?;
        self.links[i].link.capture.get_or_insert_with(Vec::new);
        Ok(())
    }

    /// Frames recorded on link `name` since [`Emulator::capture`].
    pub fn captured(&self, name: &str) -> &[CapturedFrame] {
        self.link_index(name)
            .and_then(|i| self.links[i].link.capture.as_deref())
            .unwrap_or(&[])
    }

    // ----- PBR daemons --------------------------------------------------------

    /// Run a PBR daemon ([`PbrNode`]) on node `name`, driven by the virtual
    /// clock after every step. Without a seed in `cfg`, one is derived from
    /// the topology's seed and the node, so runs repeat exactly.
    pub fn enable_pbr(&mut self, name: &str, mut cfg: PbrConfig) -> Result<(), EmuError> {
        let i = self
            .node_index(name)
            .ok_or_else(|| EmuError::Topology(format!("no node {name:?}")))?;
        cfg.seed.get_or_insert(self.topo.seed ^ ((i as u64 + 1) << 40) ^ 0x7077);
        let n = &mut self.nodes[i];
        n.pbr = Some(PbrNode::new(&mut n.node, cfg));
        Ok(())
    }

    /// Let node `name`'s PBR daemon fetch the plugin classes it lacks
    /// through `f` ([`PbrNode::set_fetcher`]); finished fetches are taken
    /// through [`ClassFetcher::poll`] at every step, and the emulator steps
    /// at least every [`FETCH_POLL_NS`] while anything else is pending.
    pub fn pbr_set_fetcher(&mut self, name: &str, f: Box<dyn ClassFetcher>) -> Result<(), EmuError> {
        let (p, _, _) = self.pbr_parts(name)?;
        p.set_fetcher(f);
        if let Some(i) = self.node_index(name) {
            self.nodes[i].polled_fetcher = true;
        }
        Ok(())
    }

    /// [`Emulator::enable_pbr`] on every node.
    pub fn enable_pbr_all(&mut self, cfg: PbrConfig) -> Result<(), EmuError> {
        for name in self.node_names.clone() {
            self.enable_pbr(&name, cfg.clone())?;
        }
        Ok(())
    }

    /// Stop node `name`'s PBR daemon without signalling (a crash): what it
    /// installed on the node goes, its neighbours hear nothing more.
    pub fn disable_pbr(&mut self, name: &str) {
        if let Some(i) = self.node_index(name) {
            let n = &mut self.nodes[i];
            if let Some(mut p) = n.pbr.take() {
                p.stop(&mut n.node);
            }
        }
    }

    /// Node `name`'s PBR daemon, if enabled.
    pub fn pbr(&self, name: &str) -> Option<&PbrNode> {
        self.node_index(name).and_then(|i| self.nodes[i].pbr.as_ref())
    }

    fn pbr_parts(&mut self, name: &str) -> Result<(&mut PbrNode, &mut Node, u64), EmuError> {
        let now = self.now_ns;
        let i = self
            .node_index(name)
            .ok_or_else(|| EmuError::Topology(format!("no node {name:?}")))?;
        let n = &mut self.nodes[i];
        let p = n
            .pbr
            .as_mut()
            .ok_or_else(|| EmuError::Topology(format!("node {name} runs no PBR daemon")))?;
        Ok((p, &mut n.node, now))
    }

    /// Set up an explicit path from node `name` (now, in virtual time).
    pub fn pbr_create(&mut self, name: &str, req: weft_pbr::CreateRequest) -> Result<weft_pbr::PathId, EmuError> {
        let (p, node, now) = self.pbr_parts(name)?;
        let r = p.create(node, clock::pbr_now(now), req);
        node.tick(now);
        r.map_err(|e| EmuError::Topology(format!("pbr create on {name}: {e}")))
    }

    /// Release a path node `name` initiated.
    pub fn pbr_release(&mut self, name: &str, id: weft_pbr::PathId) -> Result<(), EmuError> {
        let (p, node, now) = self.pbr_parts(name)?;
        let r = p.release(node, clock::pbr_now(now), id);
        node.tick(now);
        r.map_err(|e| EmuError::Topology(format!("pbr release on {name}: {e}")))
    }

    /// Ask for a path's per-visit status; the reply lands in
    /// [`Emulator::pbr_path`]'s `status`.
    pub fn pbr_request_status(&mut self, name: &str, id: weft_pbr::PathId) -> Result<(), EmuError> {
        let (p, node, now) = self.pbr_parts(name)?;
        let r = p.request_status(node, clock::pbr_now(now), id);
        node.tick(now);
        r.map_err(|e| EmuError::Topology(format!("pbr status on {name}: {e}")))
    }

    /// A path as node `name` sees it.
    pub fn pbr_path(&self, name: &str, id: weft_pbr::PathId) -> Option<PathView> {
        self.pbr(name)?.path(id)
    }

    /// Addresses of a walk of node names, as explicit-path hops: hop *i*
    /// (strict) is node *i*'s address on a link from node *i − 1*; a loose
    /// hop, or one with no such link, is the node's first address; hop 0 is
    /// the first node's address toward hop 1 (of `v6` family each).
    pub fn hop_addresses(&self, walk: &[&str], loose: &[bool], v6: bool) -> Result<Vec<weft_pbr::Hop>, EmuError> {
        let fam = |a: &IpNet| a.addr().is_ipv6() == v6;
        let on_link = |from: usize, to: usize| -> Option<IpAddr> {
            self.links
                .iter()
                .find_map(|l| match l.ends {
                    [End::Node(a, _), End::Node(b, bp)] if a == from && b == to => Some((b, bp)),
                    [End::Node(a, ap), End::Node(b, _)] if b == from && a == to => Some((a, ap)),
                    _ => None,
                })
                .and_then(|(n, p)| {
                    self.nodes[n]
                        .node
                        .addresses()
                        .into_iter()
                        .find(|(pp, a)| *pp == p && fam(a))
                        .map(|(_, a)| a.addr())
                })
        };
        let idx: Vec<usize> = walk
            .iter()
            .map(|n| {
                self.node_index(n)
                    .ok_or_else(|| EmuError::Topology(format!("no node {n:?}")))
            })
            .collect::<Result<_, _>>()?;
        let is_loose = |i: usize| i > 0 && loose.get(i).copied().unwrap_or(false);
        let mut hops = Vec::with_capacity(walk.len());
        for i in 0..idx.len() {
            let any = || {
                self.nodes[idx[i]]
                    .node
                    .addresses()
                    .into_iter()
                    .find(|(_, a)| fam(a))
                    .map(|(_, a)| a.addr())
            };
            let addr = if i == 0 {
                match idx.get(1) {
                    Some(&n) if !is_loose(1) => on_link(n, idx[0]),
                    _ => None,
                }
                .or_else(any)
            } else if is_loose(i) {
                any()
            } else {
                on_link(idx[i - 1], idx[i])
            };
            let addr = addr.ok_or_else(|| {
                EmuError::Topology(match i {
                    0 => format!("hop 0 ({}) has no address of that family", walk[0]),
                    _ => format!(
                        "hop {i} ({}) is not a neighbour of {}: mark it loose to route between them",
                        walk[i],
                        walk[i - 1]
                    ),
                })
            })?;
            hops.push(weft_pbr::Hop {
                addr,
                loose: is_loose(i),
            });
        }
        Ok(hops)
    }

    // ----- running -------------------------------------------------------------

    /// True when no frame is in flight and no host application has work
    /// left.
    pub fn is_idle(&self) -> bool {
        self.events.is_empty() && !self.hosts.iter().any(|h| h.host.busy()) && !self.pbr_busy() && !self.signal_busy()
    }

    /// A PBR daemon has frames to send or messages not yet acknowledged
    /// (refresh timers alone do not count: soft state never idles).
    fn pbr_busy(&self) -> bool {
        self.nodes
            .iter()
            .any(|n| n.pbr.as_ref().is_some_and(|p| p.pending() > 0) || (n.pbr.is_some() && n.node.has_tx()))
    }

    fn next_time(&self) -> Option<u64> {
        let ev = self.events.peek().map(|e| e.0.at);
        let host = self.hosts.iter().filter_map(|h| h.host.wake_ns).min();
        // Nodes: when they next need a tick; PBR daemons: frames waiting to
        // go out now, their timers.
        let nodes = self
            .nodes
            .iter()
            .filter_map(|n| {
                let pbr = n.pbr.as_ref().and_then(|p| {
                    if n.node.has_tx() {
                        return Some(self.now_ns);
                    }
                    p.poll_timeout().map(clock::pbr_due)
                });
                let sig = n.signal.as_ref().and_then(|s| {
                    if n.node.has_tx() {
                        return Some(self.now_ns);
                    }
                    s.poll_timeout()
                });
                earliest(earliest(n.node.poll_timeout(), pbr), sig)
            })
            .min();
        let requesters = self
            .hosts
            .iter()
            .filter_map(|h| h.signal.as_ref().and_then(|r| r.poll_timeout()))
            .min();
        let nodes = earliest(nodes, requesters);
        let next = earliest(earliest(ev, host), nodes)?;
        // Polled fetchers, only while something else is going to happen.
        let fetch = self
            .nodes
            .iter()
            .any(|n| n.polled_fetcher && n.pbr.is_some())
            .then_some(self.next_fetch_poll_ns);
        // Never back in time: something overdue is due now.
        earliest(Some(next), fetch).map(|t| t.max(self.now_ns))
    }

    /// Advance to the earliest pending event and handle everything due then.
    /// Returns false if nothing is pending.
    pub fn step(&mut self) -> bool {
        match self.next_time() {
            Some(t) => {
                self.advance_to(t);
                true
            }
            None => false,
        }
    }

    /// Run for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now_ns.saturating_add(d.as_nanos() as u64);
        while let Some(t) = self.next_time() {
            if t > end {
                break;
            }
            self.advance_to(t);
        }
        self.now_ns = self.now_ns.max(end);
    }

    /// Run until `cond` holds (checked before each step) or `limit` of
    /// virtual time has passed; true if `cond` held.
    pub fn run_until(&mut self, mut cond: impl FnMut(&Emulator) -> bool, limit: Duration) -> bool {
        let end = self.now_ns.saturating_add(limit.as_nanos() as u64);
        loop {
            if cond(self) {
                return true;
            }
            match self.next_time() {
                Some(t) if t <= end => self.advance_to(t),
                _ => return cond(self),
            }
        }
    }

    /// Run until [`Emulator::is_idle`] or `limit` of virtual time has passed;
    /// true if idle.
    pub fn run_until_idle(&mut self, limit: Duration) -> bool {
        self.run_until(|e| e.is_idle(), limit)
    }

    fn advance_to(&mut self, t: u64) {
        self.now_ns = self.now_ns.max(t);
        let now = self.now_ns;
        self.steps += 1;

        // 1. Frames due now, batched per node port in arrival order.
        let mut batches: Vec<(usize, PortId, Batch)> = Vec::new();
        let mut host_rx = false;
        while self.events.peek().is_some_and(|e| e.0.at <= now) {
            let Some(Reverse(ev)) = self.events.pop() else { break };
            let l = &mut self.links[ev.link];
            if let Some(c) = l.link.capture.as_mut() {
                c.push(CapturedFrame {
                    time_ns: ev.at,
                    dir: (1 - ev.to) as u8,
                    frame: ev.frame.clone(),
                });
            }
            match l.ends[ev.to] {
                End::Node(n, p) => {
                    let pkt = self.nodes[n].node.alloc(&ev.frame);
                    match batches.iter_mut().find(|(bn, bp, _)| *bn == n && *bp == p) {
                        Some((_, _, b)) => b.push(pkt),
                        None => batches.push((n, p, vec![pkt])),
                    }
                }
                End::Host(h) => {
                    self.hosts[h].host.dev.rx.push_back(ev.frame);
                    host_rx = true;
                }
            }
        }
        for (n, p, mut b) in batches {
            self.nodes[n].node.receive(now, p, &mut b);
        }

        // 2. Nodes whose deadline has come.
        for n in &mut self.nodes {
            if n.node.poll_timeout().is_some_and(|t| t <= now) {
                n.node.tick(now);
            }
        }

        // 3. Hosts with frames or timers due.
        for h in &mut self.hosts {
            let due = h.host.wake_ns.is_some_and(|w| w <= now);
            if due || (host_rx && !h.host.dev.rx.is_empty()) {
                h.host.poll(now);
            }
        }

        // 3b. PBR daemons: their datagrams, their timers, their polled
        // fetchers; what they send goes out in this step.
        if now >= self.next_fetch_poll_ns {
            self.next_fetch_poll_ns = (now / FETCH_POLL_NS + 1) * FETCH_POLL_NS;
        }
        for n in &mut self.nodes {
            if let Some(p) = n.pbr.as_mut() {
                if p.poll(&mut n.node, clock::pbr_now(now)) > 0 {
                    n.node.tick(now);
                }
            }
        }

        // 3c. Signaling: daemons take their datagrams, finished fetches and
        // timers (a fetch the emulator's blocking fetcher ran while a
        // datagram was handled is collected by the second poll, at the same
        // instant: fetches take no virtual time); requesters read their
        // hosts' ports. What they send goes out in this step.
        for n in &mut self.nodes {
            if let Some(s) = n.signal.as_mut() {
                let before = s.stats().datagrams_in;
                let mut sent = s.poll(&mut n.node, now);
                if s.stats().datagrams_in != before {
                    sent += s.poll(&mut n.node, now);
                }
                if sent > 0 {
                    n.node.tick(now);
                }
            }
        }
        for h in &mut self.hosts {
            if let Some(r) = h.signal.as_mut() {
                r.poll(&mut h.host, now);
            }
        }

        // 4. What nodes and hosts sent goes onto the links.
        let mut out = Vec::new();
        for ni in 0..self.nodes.len() {
            if !self.nodes[ni].node.has_tx() {
                continue;
            }
            for p in 0..self.nodes[ni].ports.len() {
                self.nodes[ni].node.take_tx(p as PortId, &mut out);
                let to = self.nodes[ni].ports[p];
                for pkt in out.drain(..) {
                    match to {
                        Some((li, side)) => self.transmit(li, side, pkt.data().to_vec()),
                        None => self.nodes[ni].unconnected += 1,
                    }
                    self.nodes[ni].node.recycle(pkt);
                }
            }
        }
        for hi in 0..self.hosts.len() {
            if self.hosts[hi].host.dev.tx.is_empty() {
                continue;
            }
            let frames = std::mem::take(&mut self.hosts[hi].host.dev.tx);
            if let Some((li, side)) = self.hosts[hi].link {
                for f in frames {
                    self.transmit(li, side, f);
                }
            }
        }
    }

    fn transmit(&mut self, li: usize, side: usize, frame: Vec<u8>) {
        if let Offer::Deliver(at) = self.links[li].link.offer(self.now_ns, side, frame.len()) {
            self.seq += 1;
            self.events.push(Reverse(Event {
                at,
                seq: self.seq,
                link: li,
                to: 1 - side,
                frame,
            }));
        }
    }
}

/// The earlier of two optional times.
fn earliest(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
