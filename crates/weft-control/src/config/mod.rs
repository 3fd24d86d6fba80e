//! The node configuration file (TOML): [`NodeConfig`], parsed with
//! [`NodeConfig::parse`] and applied to a node with [`apply`].
//!
//! The schema is documented with a full example in `docs/config.md`. Every
//! error, whether the TOML does not parse, a key is unknown, a word is
//! malformed or the node refuses an item (an unknown class, a filter naming
//! an instance label that is not defined, a gateway off-link), is reported as
//! `file:line:col: message`, pointing at the offending value: the fields that
//! semantic checks need are kept as [`toml::Spanned`].
//!
//! The words of the file are the words of the CLI and the API (see
//! [`words`]): `proto = "udp"`, `dport = "1000-2000"`, `src =
//! "129.132.66.115"`, `mac = "02:00:00:00:00:01"`.

pub mod droute;
pub mod plugins;
pub mod ports;
pub mod principals;
pub mod words;

use crate::config::words::{parse_route_prefix, AddrOrPrefix, MacAddr, PortRange, Proto};
use ipnet::IpNet;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;
use weft_dataplane::{FilterId, FilterSpec, Hook, InstanceId, Match, Node, NodeError};

/// Error returned by [`NodeConfig::load`], [`NodeConfig::parse`] and
/// [`apply`].
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        source: std::io::Error,
    },
    /// Something in the file is wrong at this place.
    #[error("{file}:{line}:{col}: {message}")]
    At {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column (characters).
        col: usize,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    /// The 1-based line the error points at, if it points at one.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::At { line, .. } => Some(*line),
            ConfigError::Read { .. } => None,
        }
    }
}

/// The file name and line starts, to turn byte spans into `line:col`.
#[derive(Clone, Debug, Default)]
struct Source {
    file: String,
    text: String,
}

impl Source {
    fn error(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        let off = span.start.min(self.text.len());
        let before = &self.text[..off];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let col = self.text[line_start..off].chars().count() + 1;
        ConfigError::At {
            file: self.file.clone(),
            line,
            col,
            message: message.into(),
        }
    }
}

/// `[nodeos]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeOsSection {
    /// Directory of the NodeOS sockets.
    pub dir: std::path::PathBuf,
}

/// A whole node configuration file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// `[node]`
    pub node: NodeSection,
    /// `[api]`
    #[serde(default)]
    pub api: ApiSection,
    /// `[[port]]`
    #[serde(default, rename = "port")]
    pub ports: Vec<Spanned<PortSection>>,
    /// `[[route]]`
    #[serde(default, rename = "route")]
    pub routes: Vec<Spanned<RouteSection>>,
    /// `[[neighbor]]`
    #[serde(default, rename = "neighbor")]
    pub neighbors: Vec<Spanned<NeighborSection>>,
    /// `[[instance]]`
    #[serde(default, rename = "instance")]
    pub instances: Vec<Spanned<InstanceSection>>,
    /// `[[filter]]`
    #[serde(default, rename = "filter")]
    pub filters: Vec<Spanned<FilterSection>>,
    /// `[punt]`: node-local traffic handed to a kernel TUN interface.
    #[serde(default)]
    pub punt: Option<Spanned<ports::PuntSection>>,
    /// `[plugins]`: trusted keys, code servers, cache, wasm host limits.
    #[serde(default)]
    pub plugins: Option<Spanned<plugins::PluginsSection>>,
    /// `[[droute]]`: DataRouter table entries (`droute.rs`).
    #[serde(default, rename = "droute")]
    pub droute: Vec<Spanned<droute::DrouteSection>>,
    /// `[pbr]`: take part in explicit paths (PromethOS Path-Based Routing):
    /// the node answers PBR on UDP 7077 and holds visits; see
    /// [`crate::pbr::PbrConfig`] for the keys (`capacity_bps`,
    /// `port_capacity_bps`, `max_instances`, `class_map`, …).
    #[serde(default)]
    pub pbr: Option<Spanned<crate::pbr::PbrConfig>>,
    /// `[signal]`: take part in on-path signaling (NetServ): the node
    /// intercepts signaling requests, installs modules its principals ask
    /// for, answers on UDP 270; see [`crate::signal::SignalConfig`] for the
    /// keys (`max_lifetime`, `max_sessions`, `origin_rate`, …).
    #[serde(default)]
    pub signal: Option<Spanned<crate::signal::SignalConfig>>,
    /// `[nodeos]`: serve the NodeOS API (domains and channels for programs
    /// outside the node, `docs/nodeos.md`): `dir` holds its sockets
    /// `nodeos.sock` and `memif.sock`.
    #[serde(default)]
    pub nodeos: Option<Spanned<NodeOsSection>>,
    /// `[[principal]]`: who besides the operator may use the API, and
    /// with which rights (`principals.rs`, `docs/security.md`).
    #[serde(default, rename = "principal")]
    pub principals: Vec<Spanned<principals::PrincipalSection>>,
    #[serde(skip)]
    source: Source,
    /// Keys trusted besides `[plugins] trusted_keys` (`weft node run
    /// --trust`, [`NodeConfig::trust`]).
    #[serde(skip)]
    extra_trusted: Vec<weft_repo::PublicKey>,
}

/// `[node]`: who the node is and which classes it starts with.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    /// The node's name (metrics labels, the default socket name).
    pub name: Spanned<String>,
    /// Built-in classes to register at start; absent: all of them.
    #[serde(default)]
    pub classes: Option<Vec<Spanned<String>>>,
    /// ICMP errors the node sends per second, the engine's and its
    /// elements' together (default 1000, Linux's `icmp_msgs_per_sec`).
    #[serde(default)]
    pub icmp_rate: Option<Spanned<u64>>,
    /// ICMP errors the node may send at once (default 50).
    #[serde(default)]
    pub icmp_burst: Option<Spanned<u64>>,
}

/// `[api]`: where the management API listens (`docs/security.md`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    /// Unix socket path (default: `/run/weft/NAME.sock` as root; see
    /// [`default_socket`]).
    #[serde(default)]
    pub socket: Option<PathBuf>,
    /// Group (name or number) of the socket and its directory: its members
    /// may use the socket (default: the node user's primary group).
    #[serde(default)]
    pub group: Option<Spanned<String>>,
    /// Also serve the API on TCP, e.g. `127.0.0.1:7070`. Every request on
    /// it must authenticate as a `[[principal]]` with a key or a token.
    #[serde(default)]
    pub tcp: Option<Spanned<SocketAddr>>,
    /// Concurrent connections per listener (default 64). The operator on
    /// the Unix socket is always served.
    #[serde(default)]
    pub max_connections: Option<Spanned<usize>>,
}

/// Where a node named `name` puts its API socket when its configuration
/// and command line say nothing: `$WEFT_RUN_DIR/NAME.sock` if set, else
/// `/run/weft/NAME.sock` for root, else `$XDG_RUNTIME_DIR/weft/NAME.sock`,
/// else `/tmp/weft-UID/NAME.sock` — always a directory only its user (and
/// the socket's group) can enter.
pub fn default_socket(name: &str) -> PathBuf {
    run_dir().join(format!("{name}.sock"))
}

/// The directory of [`default_socket`].
pub fn run_dir() -> PathBuf {
    run_dir_of(
        std::env::var_os("WEFT_RUN_DIR"),
        weft_http::unix::euid(),
        std::env::var_os("XDG_RUNTIME_DIR"),
    )
}

/// [`run_dir`] from its inputs: `$WEFT_RUN_DIR`, the effective uid and
/// `$XDG_RUNTIME_DIR` (empty variables count as unset).
fn run_dir_of(weft_run_dir: Option<std::ffi::OsString>, uid: u32, xdg: Option<std::ffi::OsString>) -> PathBuf {
    if let Some(d) = weft_run_dir.filter(|v| !v.is_empty()) {
        return PathBuf::from(d);
    }
    if uid == 0 {
        return PathBuf::from("/run/weft");
    }
    match xdg.filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x).join("weft"),
        None => std::env::temp_dir().join(format!("weft-{uid}")),
    }
}

#[cfg(test)]
#[test]
fn sockets_go_to_run_weft_for_root_and_to_a_private_directory_otherwise() {
    let s = |v: &str| Some(std::ffi::OsString::from(v));
    assert_eq!(run_dir_of(None, 0, s("/run/user/0")), PathBuf::from("/run/weft"));
    assert_eq!(run_dir_of(s(""), 0, None), PathBuf::from("/run/weft"));
    assert_eq!(run_dir_of(s("/srv/w"), 0, None), PathBuf::from("/srv/w"));
    assert_eq!(
        run_dir_of(None, 1000, s("/run/user/1000")),
        PathBuf::from("/run/user/1000/weft")
    );
    assert_eq!(run_dir_of(None, 1000, s("")), std::env::temp_dir().join("weft-1000"));
    assert_eq!(
        run_dir_of(None, 0, None).join("r1.sock"),
        PathBuf::from("/run/weft/r1.sock")
    );
}

/// `[[port]]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSection {
    /// Name, e.g. `eth0`.
    pub name: Spanned<String>,
    /// Backend: `mem` (default; frames move only through the node handle,
    /// as in the emulator), `vxlan` or `afpacket` (see `docs/ports.md`).
    #[serde(default)]
    pub kind: Option<Spanned<String>>,
    /// MAC address. Required except for `afpacket`, where it defaults to
    /// the interface's.
    #[serde(default)]
    pub mac: Option<MacAddr>,
    /// IP MTU. Default: 1500 (`mem`), 1450 (`vxlan`), the interface's
    /// (`afpacket`; larger is refused).
    #[serde(default)]
    pub mtu: Option<Spanned<u16>>,
    /// Addresses with their on-link prefix.
    #[serde(default)]
    pub addrs: Vec<IpNet>,
    /// `vxlan`: local UDP address to bind, `IP` or `IP:PORT` (port default
    /// `dstport`).
    #[serde(default)]
    pub local: Option<Spanned<String>>,
    /// `vxlan`: the peer's address, `IP` or `IP:PORT` (port default
    /// `dstport`).
    #[serde(default)]
    pub remote: Option<Spanned<String>>,
    /// `vxlan`: VXLAN network identifier (24 bits).
    #[serde(default)]
    pub vni: Option<Spanned<u32>>,
    /// `vxlan`: the UDP port where `local` / `remote` give none (default 4789).
    #[serde(default)]
    pub dstport: Option<Spanned<u16>>,
    /// `afpacket`: the interface (default: the port's name).
    #[serde(default)]
    pub ifname: Option<Spanned<String>>,
}

/// `[[route]]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    /// Destination: a prefix or `default`.
    pub prefix: Spanned<String>,
    /// Gateway (on a connected network).
    #[serde(default)]
    pub via: Option<Spanned<IpAddr>>,
    /// Out port name (default: the gateway's port).
    #[serde(default)]
    pub port: Option<Spanned<String>>,
}

/// `[[neighbor]]`: a permanent neighbour entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighborSection {
    /// Port name.
    pub port: Spanned<String>,
    /// The neighbour's address.
    pub ip: IpAddr,
    /// Its MAC.
    pub mac: MacAddr,
}

/// `[[instance]]`: an instance created at start, named by a label that
/// filters' `chain` refers to.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceSection {
    /// Label (file-local; the node numbers instances `#N`).
    pub name: Spanned<String>,
    /// Class name.
    pub class: Spanned<String>,
    /// Configuration string.
    #[serde(default)]
    pub config: Option<Spanned<String>>,
}

/// `[[filter]]`: a match at a hook and the chain its packets run through.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSection {
    /// Hook (default `prerouting`).
    #[serde(default)]
    pub hook: Option<Spanned<String>>,
    /// Receiving port name.
    #[serde(default)]
    pub in_port: Option<Spanned<String>>,
    /// Protocol.
    #[serde(default)]
    pub proto: Option<Proto>,
    /// Source address or prefix.
    #[serde(default)]
    pub src: Option<AddrOrPrefix>,
    /// Destination address or prefix.
    #[serde(default)]
    pub dst: Option<AddrOrPrefix>,
    /// Source port or range.
    #[serde(default)]
    pub sport: Option<PortRange>,
    /// Destination port or range.
    #[serde(default)]
    pub dport: Option<PortRange>,
    /// Instance labels in chain order.
    #[serde(default)]
    pub chain: Vec<Spanned<String>>,
    /// Class of an instance created for this filter (with `autoinstance`);
    /// `plugin` is accepted too (PromethOS' word).
    #[serde(default, alias = "plugin")]
    pub class: Option<Spanned<String>>,
    /// Create an instance of `class` for this filter (PromethOS).
    #[serde(default)]
    pub autoinstance: Option<Spanned<bool>>,
    /// The created instance's configuration.
    #[serde(default)]
    pub config: Option<Spanned<String>>,
}

/// `[api]` and `[[principal]]`, checked ([`NodeConfig::api_settings`]).
#[derive(Clone, Debug)]
pub struct ApiSettings {
    /// Who may do what.
    pub policy: crate::auth::Policy,
    /// The socket's group id.
    pub group: Option<u32>,
    /// The TCP address, if any.
    pub tcp: Option<SocketAddr>,
    /// Per-listener bounds.
    pub limits: weft_http::Limits,
}

/// What [`apply`] created.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    /// Instance labels → ids.
    pub instances: BTreeMap<String, InstanceId>,
    /// Filters in file order, with the instance each created (if any).
    pub filters: Vec<(FilterId, Option<InstanceId>)>,
}

impl NodeConfig {
    /// Read and parse a file.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.display().to_string(),
            source,
        })?;
        NodeConfig::parse(&text, &path.display().to_string())
    }

    /// Parse configuration text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<NodeConfig, ConfigError> {
        let source = Source {
            file: file.to_string(),
            text: text.to_string(),
        };
        let mut cfg: NodeConfig = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            source.error(span, e.message().trim_end())
        })?;
        if cfg.node.name.get_ref().trim().is_empty() {
            return Err(source.error(cfg.node.name.span(), "the node name must not be empty"));
        }
        cfg.source = source;
        cfg.plugin_settings()?;
        cfg.api_settings()?;
        Ok(cfg)
    }

    /// The checked `[api]` and `[[principal]]` sections: the policy, the
    /// socket's group, the connection cap. A TCP listener needs a principal
    /// that can authenticate over the network.
    pub fn api_settings(&self) -> Result<ApiSettings, ConfigError> {
        let src = &self.source;
        let policy = self.policy()?;
        if let Some(t) = &self.api.tcp {
            if !policy.has_network_principals() {
                return Err(src.error(
                    t.span(),
                    format!(
                        "the API on TCP {} needs authentication: add a [[principal]] with a key or \
                         token_sha256 (docs/security.md), or remove tcp and use the Unix socket",
                        t.get_ref()
                    ),
                ));
            }
        }
        let group = match &self.api.group {
            Some(g) => Some(weft_http::unix::group_id(g.get_ref()).map_err(|e| src.error(g.span(), e.to_string()))?),
            None => None,
        };
        let mut limits = weft_http::Limits::default();
        if let Some(m) = &self.api.max_connections {
            if !(1..=10_000).contains(m.get_ref()) {
                return Err(src.error(m.span(), "max_connections must be between 1 and 10000"));
            }
            limits.max_connections = *m.get_ref();
        }
        Ok(ApiSettings {
            policy,
            group,
            tcp: self.api.tcp.as_ref().map(|t| *t.get_ref()),
            limits,
        })
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        self.node.name.get_ref()
    }

    /// A fresh node with this configuration applied.
    pub fn build(&self) -> Result<(Node, Applied), ConfigError> {
        self.build_with(Vec::new())
    }

    /// [`NodeConfig::build`], registering `classes` (e.g. plugin classes
    /// fetched for [`NodeConfig::plugin_uses`]) before the file is applied.
    pub fn build_with(&self, classes: Vec<weft_dataplane::ElementClass>) -> Result<(Node, Applied), ConfigError> {
        let mut node = Node::new(self.name());
        for c in classes {
            node.upsert_class(c);
        }
        let applied = apply(self, &mut node)?;
        Ok((node, applied))
    }
}

/// Apply a configuration to a node: classes, ports, neighbours, routes,
/// instances, filters, in that order. Stops at the first error, which points
/// at the offending line.
pub fn apply(cfg: &NodeConfig, node: &mut Node) -> Result<Applied, ConfigError> {
    let src = &cfg.source;
    let at = |span: Range<usize>, e: &dyn std::fmt::Display| src.error(span, e.to_string());

    let (rate, burst) = node.icmp_rate();
    let limit = |v: &Option<Spanned<u64>>, default: u64| match v {
        Some(v) if *v.get_ref() > weft_dataplane::icmp_limit::MAX => Err(at(
            v.span(),
            &format!(
                "at most {} (ICMP errors per second or at once)",
                weft_dataplane::icmp_limit::MAX
            ),
        )),
        Some(v) => Ok(*v.get_ref()),
        None => Ok(default),
    };
    let (rate, burst) = (limit(&cfg.node.icmp_rate, rate)?, limit(&cfg.node.icmp_burst, burst)?);
    node.set_icmp_rate(rate, burst);

    let builtins = crate::builtin_classes();
    match &cfg.node.classes {
        None => {
            for c in builtins {
                if !node.has_class(&c.name) {
                    node.upsert_class(c);
                }
            }
        }
        Some(names) => {
            for n in names {
                let Some(c) = builtins.iter().find(|c| c.name == *n.get_ref()) else {
                    let known: Vec<&str> = builtins.iter().map(|c| c.name.as_str()).collect();
                    return Err(at(
                        n.span(),
                        &format!("unknown class {:?} (built-in: {})", n.get_ref(), known.join(", ")),
                    ));
                };
                if !node.has_class(&c.name) {
                    node.upsert_class(c.clone());
                }
            }
        }
    }

    for p in &cfg.ports {
        let ps = p.get_ref();
        let (pc, _) = ports::resolve(src, p)?;
        node.add_port(pc).map_err(|e| at(ps.name.span(), &e))?;
    }

    let port = |node: &Node, name: &Spanned<String>| node.port_id(name.get_ref()).map_err(|e| at(name.span(), &e));

    for n in &cfg.neighbors {
        let ns = n.get_ref();
        let pid = port(node, &ns.port)?;
        node.add_neighbor(pid, ns.ip, ns.mac.0).map_err(|e| at(n.span(), &e))?;
    }

    for r in &cfg.routes {
        let rs = r.get_ref();
        let via = rs.via.as_ref().map(|v| *v.get_ref());
        let prefix = parse_route_prefix(rs.prefix.get_ref(), via).map_err(|e| at(rs.prefix.span(), &e))?;
        let pid = match &rs.port {
            Some(p) => Some(port(node, p)?),
            None => None,
        };
        node.add_route(prefix, via, pid).map_err(|e| match (&e, &rs.via) {
            (NodeError::GatewayNotOnLink(_), Some(v)) => at(v.span(), &e),
            _ => at(r.span(), &e),
        })?;
    }

    let mut applied = Applied::default();
    for i in &cfg.instances {
        let is = i.get_ref();
        let label = is.name.get_ref();
        if applied.instances.contains_key(label) {
            return Err(at(is.name.span(), &format!("instance {label:?} is defined twice")));
        }
        let config = is.config.as_ref().map(|c| c.get_ref().as_str()).unwrap_or("");
        let class = plugins::class_name(is.class.get_ref());
        let id = node.create_instance(class, config).map_err(|e| match e {
            NodeError::UnknownClass(_) => at(is.class.span(), &e),
            _ => at(is.config.as_ref().map(|c| c.span()).unwrap_or(i.span()), &e),
        })?;
        applied.instances.insert(label.clone(), id);
    }

    for f in &cfg.filters {
        let fs = f.get_ref();
        let hook = match &fs.hook {
            Some(h) => h.get_ref().parse::<Hook>().map_err(|e| at(h.span(), &e))?,
            None => Hook::Prerouting,
        };
        let in_port = match &fs.in_port {
            Some(p) => Some(port(node, p)?),
            None => None,
        };
        let mut chain = Vec::new();
        for l in &fs.chain {
            let id = applied.instances.get(l.get_ref()).ok_or_else(|| {
                at(
                    l.span(),
                    &format!(
                        "instance {:?} is not defined (define it in an [[instance]] table)",
                        l.get_ref()
                    ),
                )
            })?;
            chain.push(*id);
        }
        words::check_ports(fs.proto.map(|p| p.0), fs.sport.is_some() || fs.dport.is_some())
            .map_err(|e| at(f.span(), &e))?;
        let auto = fs.autoinstance.as_ref().map(|a| *a.get_ref()).unwrap_or(false);
        let plugin = match (&fs.class, auto) {
            (Some(p), true) => Some(p),
            (Some(p), false) => {
                return Err(at(
                    p.span(),
                    &"`class` needs `autoinstance = true` (or name defined instances in `chain`)",
                ))
            }
            (None, true) => {
                let span = fs.autoinstance.as_ref().map(|a| a.span()).unwrap_or(f.span());
                return Err(at(span, &"`autoinstance` needs `class = \"CLASS\"`"));
            }
            (None, false) => None,
        };
        if let (Some(c), None) = (&fs.config, plugin) {
            return Err(at(
                c.span(),
                &"`config` configures the created instance; set `class` too",
            ));
        }
        let spec = FilterSpec {
            hook: Some(hook),
            m: Match {
                in_port,
                src: fs.src.map(|a| a.0),
                dst: fs.dst.map(|a| a.0),
                sport: fs.sport.map(Into::into),
                dport: fs.dport.map(Into::into),
                proto: fs.proto.map(|p| p.0),
            },
            chain,
            position: None,
        };
        let config = fs.config.as_ref().map(|c| c.get_ref().as_str()).unwrap_or("");
        let res = add_filter_with_plugin(node, spec, plugin.map(|p| (plugins::class_name(p.get_ref()), config)));
        let done = res.map_err(|e| match (&e, plugin) {
            (NodeError::UnknownClass(_), Some(p)) => at(p.span(), &e),
            (NodeError::Element(_), _) => at(fs.config.as_ref().map(|c| c.span()).unwrap_or(f.span()), &e),
            _ => at(f.span(), &e),
        })?;
        applied.filters.push(done);
    }
    droute::apply(src, &cfg.droute, node, &applied)?;
    // What the node holds now: `[[instance]]` tables and the instances
    // `autoinstance` filters created (`applied.instances` has only the
    // former); routes the file wrote.
    tracing::info!(
        node = node.name(),
        ports = cfg.ports.len(),
        routes = cfg.routes.len(),
        instances = node.instances().len(),
        filters = applied.filters.len(),
        "configuration applied"
    );
    Ok(applied)
}

/// Add a filter, first creating an instance of `plugin = (class, config)` at
/// the head of its chain (PromethOS' `--plugin CLASS --autoinstance --config
/// STR`). If the filter is refused, the created instance is removed again.
pub fn add_filter_with_plugin(
    node: &mut Node,
    spec: FilterSpec,
    plugin: Option<(&str, &str)>,
) -> Result<(FilterId, Option<InstanceId>), NodeError> {
    add_filter_with_plugin_in(node, weft_dataplane::DomainId::ROOT, spec, plugin)
}

/// [`add_filter_with_plugin`] in `domain`: the instance and the filter are
/// made there (the chain's other instances must be in it already).
pub fn add_filter_with_plugin_in(
    node: &mut Node,
    domain: weft_dataplane::DomainId,
    mut spec: FilterSpec,
    plugin: Option<(&str, &str)>,
) -> Result<(FilterId, Option<InstanceId>), NodeError> {
    let inst = match plugin {
        Some((class, config)) => Some(node.create_instance_in(domain, class, config)?),
        None => None,
    };
    if let Some(i) = inst {
        spec.chain.insert(0, i);
    }
    match node.add_filter_in(domain, spec) {
        Ok(f) => Ok((f, inst)),
        Err(e) => {
            if let Some(i) = inst {
                if let Err(e2) = node.remove_instance(i) {
                    tracing::warn!(instance = %i, error = %e2, "could not remove the instance of a refused filter");
                }
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests;
