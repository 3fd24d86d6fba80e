//! The topology file (TOML): nodes, hosts, links, routing mode and traffic.
//!
//! The schema, with examples, is documented in `docs/topology.md`. This
//! module only parses and checks the file; [`crate::Emulator`] builds the
//! network from a [`Topology`].

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::EmuError;

/// A whole topology file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// Seed of the links' loss generators (same seed, same losses).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// How nodes get their routes.
    #[serde(default)]
    pub routing: Routing,
    /// `[[node]]`: Weft routers.
    #[serde(default, rename = "node")]
    pub nodes: Vec<NodeSpec>,
    /// `[[host]]`: end hosts.
    #[serde(default, rename = "host")]
    pub hosts: Vec<HostSpec>,
    /// `[[link]]`: point-to-point links.
    #[serde(default, rename = "link")]
    pub links: Vec<LinkSpec>,
    /// `[[route]]`: extra static routes, added after node configs.
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteSpec>,
    /// `[[traffic]]`: what `weft emu run` sends.
    #[serde(default, rename = "traffic")]
    pub traffic: Vec<TrafficSpec>,
}

fn default_seed() -> u64 {
    1
}

/// How nodes get their routes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Routing {
    /// Only the routes in node configs and `[[route]]` tables.
    #[default]
    Static,
    /// The emulator computes shortest paths over link costs and installs a
    /// static route on every node to every subnet of the topology.
    ShortestPath,
}

/// Where a node's configuration comes from.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum ConfigSource {
    /// A node config file, relative to the topology file.
    Path(String),
    /// An inline table in the node config schema (`[node.config]`).
    Inline(toml::Table),
}

/// `[[node]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// Node name; link endpoints say `NAME:PORT`.
    pub name: String,
    /// The node configuration (the schema of `weft node run --config`).
    #[serde(default)]
    pub config: Option<ConfigSource>,
    /// Processing cost of the node (used by walk computation).
    #[serde(default)]
    pub cost: u32,
    /// What runs it: `weft` (the default) or `linux` — a plain router:
    /// in `weft emu run --netns` a namespace whose kernel forwards (no Weft
    /// process), in the in-process emulator a node with routes and nothing
    /// else (no config, no daemons). On-path signaling crosses it as plain
    /// UDP.
    #[serde(default)]
    pub kind: NodeKind,
}

/// Who forwards at a `[[node]]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// A Weft node.
    #[default]
    Weft,
    /// A plain router run by the Linux kernel (in `--netns`).
    Linux,
}

/// `[[host]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    /// Host name; a link endpoint names it alone (a host has one interface).
    pub name: String,
    /// IPv4 address with prefix length.
    #[serde(default)]
    pub addr: Option<Ipv4Net>,
    /// IPv6 address with prefix length.
    #[serde(default)]
    pub addr6: Option<Ipv6Net>,
    /// IPv4 default gateway; absent: the address of the node port on the
    /// host's link that lies in the host's subnet.
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
    /// IPv6 default gateway; defaulted like `gateway`.
    #[serde(default)]
    pub gateway6: Option<Ipv6Addr>,
    /// MAC address (`02:00:00:00:00:01`); absent: derived from the host's
    /// position in the file.
    #[serde(default)]
    pub mac: Option<String>,
}

/// One address or a list of them.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Addrs {
    /// `"10.0.12.1/24"`
    One(IpNet),
    /// `["10.0.12.1/24", "2001:db8:12::1/64"]`
    Many(Vec<IpNet>),
}

impl Default for Addrs {
    fn default() -> Self {
        Addrs::Many(Vec::new())
    }
}

impl Addrs {
    /// The addresses as a list.
    pub fn to_vec(&self) -> Vec<IpNet> {
        match self {
            Addrs::One(a) => vec![*a],
            Addrs::Many(v) => v.clone(),
        }
    }
}

/// `[[link]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    /// Name for counters and captures; default `A-B` from the endpoints'
    /// node or host names.
    #[serde(default)]
    pub name: Option<String>,
    /// One end: `node:port` or `host`.
    pub a: String,
    /// The other end.
    pub b: String,
    /// Addresses of `a`'s port (a node port is created if the node config
    /// has none of that name).
    #[serde(default)]
    pub a_addr: Addrs,
    /// Addresses of `b`'s port.
    #[serde(default)]
    pub b_addr: Addrs,
    /// Propagation delay in milliseconds.
    #[serde(default = "default_delay")]
    pub delay_ms: f64,
    /// Bandwidth in bits per second.
    #[serde(default = "default_bandwidth")]
    pub bandwidth: f64,
    /// Loss probability, 0..1.
    #[serde(default)]
    pub loss: f64,
    /// Routing metric.
    #[serde(default = "default_cost")]
    pub cost: u32,
    /// IP MTU of the link (and of the ports created for it).
    #[serde(default = "default_mtu")]
    pub mtu: u16,
    /// Transmit queue bound per direction, in frames.
    #[serde(default = "default_queue")]
    pub queue: usize,
}

fn default_delay() -> f64 {
    1.0
}
fn default_bandwidth() -> f64 {
    1e9
}
fn default_cost() -> u32 {
    1
}
fn default_mtu() -> u16 {
    1500
}
fn default_queue() -> usize {
    1000
}

/// `[[route]]`: a static route on one node.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// The node.
    pub node: String,
    /// Destination prefix.
    pub prefix: IpNet,
    /// Gateway (on a connected network of the node).
    #[serde(default)]
    pub via: Option<std::net::IpAddr>,
    /// Out port name.
    #[serde(default)]
    pub port: Option<String>,
}

/// Kind of generated traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrafficKind {
    /// ICMP echo.
    Ping,
    /// A UDP flow with sequence numbers.
    Udp,
    /// A TCP bulk transfer.
    Tcp,
}

/// `[[traffic]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficSpec {
    /// Sending host.
    pub from: String,
    /// Receiving host name or an address.
    pub to: String,
    /// What to send.
    pub kind: TrafficKind,
    /// Destination port (UDP, TCP); default 7000 / 5001.
    #[serde(default)]
    pub dport: Option<u16>,
    /// Packets per second (UDP flows; pings: 1/interval). Default 100 (UDP),
    /// 1 (ping).
    #[serde(default)]
    pub rate: Option<f64>,
    /// Bytes to transfer (TCP). Default 1 MB.
    #[serde(default)]
    pub bytes: Option<u64>,
    /// Payload size (UDP, ping). Default 64.
    #[serde(default)]
    pub size: Option<usize>,
    /// When to start, ms of virtual time after loading.
    #[serde(default)]
    pub start_ms: f64,
    /// How long to send (UDP, ping). Default 1000 ms.
    #[serde(default)]
    pub duration_ms: Option<f64>,
}

/// One end of a link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndpointSpec {
    /// A node's port.
    Node {
        /// Node name.
        node: String,
        /// Port name.
        port: String,
    },
    /// A host (one interface).
    Host(String),
}

impl EndpointSpec {
    /// The node or host name.
    pub fn owner(&self) -> &str {
        match self {
            EndpointSpec::Node { node, .. } => node,
            EndpointSpec::Host(h) => h,
        }
    }
}

impl Topology {
    /// The network as the explicit-path planner's graph: nodes with their
    /// processing `cost`, links between nodes with theirs (of two links
    /// joining one pair, the first counts).
    pub fn pbr_graph(&self) -> weft_pbr::Graph {
        let mut g = weft_pbr::Graph::new();
        for n in &self.nodes {
            g.add_node(&n.name, n.cost as u64);
        }
        for l in &self.links {
            if let (Ok(EndpointSpec::Node { node: a, .. }), Ok(EndpointSpec::Node { node: b, .. })) =
                (self.endpoint(&l.a), self.endpoint(&l.b))
            {
                let _ = g.add_link(&a, &b, l.cost as u64);
            }
        }
        g
    }

    /// Parse topology text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Topology, EmuError> {
        let t: Topology = toml::from_str(text).map_err(|e| {
            let (line, col) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
            EmuError::Topology(format!("{file}:{line}:{col}: {}", e.message().trim_end()))
        })?;
        t.check()?;
        Ok(t)
    }

    /// Resolve a link endpoint string against the declared nodes and hosts.
    pub fn endpoint(&self, s: &str) -> Result<EndpointSpec, EmuError> {
        let bad = |m: String| EmuError::Topology(format!("link endpoint {s:?}: {m}"));
        match s.split_once(':') {
            Some((n, p)) => {
                if !self.nodes.iter().any(|x| x.name == n) {
                    return Err(bad(format!("no [[node]] named {n:?}")));
                }
                if p.is_empty() {
                    return Err(bad("empty port name".into()));
                }
                Ok(EndpointSpec::Node {
                    node: n.to_string(),
                    port: p.to_string(),
                })
            }
            None => {
                if self.hosts.iter().any(|h| h.name == s) {
                    Ok(EndpointSpec::Host(s.to_string()))
                } else if self.nodes.iter().any(|x| x.name == s) {
                    Err(bad("a node endpoint needs a port: NODE:PORT".into()))
                } else {
                    Err(bad("no [[host]] of that name".into()))
                }
            }
        }
    }

    fn check(&self) -> Result<(), EmuError> {
        let err = |m: String| Err(EmuError::Topology(m));
        let mut names = BTreeSet::new();
        for n in self
            .nodes
            .iter()
            .map(|n| &n.name)
            .chain(self.hosts.iter().map(|h| &h.name))
        {
            if n.is_empty() || n.contains(':') {
                return err(format!("bad name {n:?}: must be non-empty and without ':'"));
            }
            if !names.insert(n.clone()) {
                return err(format!("name {n:?} is declared twice"));
            }
        }
        for n in &self.nodes {
            if n.kind == NodeKind::Linux && n.config.is_some() {
                return err(format!(
                    "node {:?} is a plain Linux router (kind = \"linux\"): it takes no config",
                    n.name
                ));
            }
        }
        for h in &self.hosts {
            if h.addr.is_none() && h.addr6.is_none() {
                return err(format!("host {:?} needs `addr` or `addr6`", h.name));
            }
        }
        let mut used = BTreeSet::new();
        for l in &self.links {
            for (end, addrs) in [(&l.a, &l.a_addr), (&l.b, &l.b_addr)] {
                let e = self.endpoint(end)?;
                let key = match &e {
                    EndpointSpec::Node { node, port } => format!("{node}:{port}"),
                    EndpointSpec::Host(h) => h.clone(),
                };
                if !used.insert(key.clone()) {
                    return err(format!("{key} is on two links"));
                }
                if matches!(e, EndpointSpec::Host(_)) && !addrs.to_vec().is_empty() {
                    return err(format!(
                        "link {}-{}: give host addresses in [[host]], not on the link",
                        l.a, l.b
                    ));
                }
            }
            if !(0.0..=1.0).contains(&l.loss) {
                return err(format!("link {}-{}: loss {} is not in 0..1", l.a, l.b, l.loss));
            }
            if l.bandwidth.is_nan() || l.bandwidth <= 0.0 {
                return err(format!("link {}-{}: bandwidth must be positive", l.a, l.b));
            }
            if l.delay_ms.is_nan() || l.delay_ms < 0.0 {
                return err(format!("link {}-{}: delay_ms must not be negative", l.a, l.b));
            }
            if l.cost == 0 {
                return err(format!("link {}-{}: cost must be at least 1", l.a, l.b));
            }
            if l.mtu < 576 {
                return err(format!("link {}-{}: mtu must be at least 576", l.a, l.b));
            }
            if l.queue == 0 {
                return err(format!("link {}-{}: queue must be at least 1 frame", l.a, l.b));
            }
        }
        for t in &self.traffic {
            if !self.hosts.iter().any(|h| h.name == t.from) {
                return err(format!("traffic from {:?}: no such host", t.from));
            }
        }
        for r in &self.routes {
            if !self.nodes.iter().any(|n| n.name == r.node) {
                return err(format!("route on {:?}: no such node", r.node));
            }
        }
        Ok(())
    }
}

fn line_col(text: &str, off: usize) -> (usize, usize) {
    let off = off.min(text.len());
    let before = &text[..off];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    (line, text[start..off].chars().count() + 1)
}

/// Parse a MAC address `02:00:00:00:00:01`.
pub fn parse_mac(s: &str) -> Result<[u8; 6], EmuError> {
    let bad = || EmuError::Topology(format!("bad MAC address {s:?}"));
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut m = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        m[i] = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks() {
        let t = Topology::parse(
            r#"
routing = "shortest-path"
[[node]]
name = "r1"
[[host]]
name = "h1"
addr = "10.0.1.2/24"
[[link]]
a = "r1:eth0"
b = "h1"
a_addr = "10.0.1.1/24"
"#,
            "t.toml",
        )
        .unwrap();
        assert_eq!(t.routing, Routing::ShortestPath);
        assert_eq!(t.links[0].delay_ms, 1.0);
        assert_eq!(t.links[0].a_addr.to_vec().len(), 1);
        let e = Topology::parse("[[link]]\na = \"r9:x\"\nb = \"h\"\n", "t.toml").unwrap_err();
        assert!(e.to_string().contains("r9"), "{e}");
        let e = Topology::parse("[[node]]\nname = \"r1\"\nbogus = 1\n", "t.toml").unwrap_err();
        assert!(e.to_string().contains("t.toml:3"), "{e}");
        let t = Topology::parse("[[node]]\nname = \"x\"\nkind = \"linux\"\n", "t.toml").unwrap();
        assert_eq!(t.nodes[0].kind, NodeKind::Linux);
        let e = Topology::parse(
            "[[node]]\nname = \"x\"\nkind = \"linux\"\n[node.config.node]\nname = \"x\"\n",
            "t.toml",
        )
        .unwrap_err();
        assert!(e.to_string().contains("plain Linux router"), "{e}");
    }
}
