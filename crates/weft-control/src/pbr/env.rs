//! The node behind the agent: [`NodeEnv`] implements [`weft_pbr::Env`]
//! on a [`Node`] (see the module documentation of [`crate::pbr`]), and
//! [`EnvState`] is what the daemon holds between calls — visits reserved
//! and installed, bandwidth and plugin slots, class fetches.

use super::fetch::{fetch_name, ClassFetcher, Fetch, FetchStats, FETCH_RETRY_MS};
use super::views::Resources;
use super::PbrConfig;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use weft_dataplane::{InstanceId, LabelOut, Match, Node};
use weft_pbr::{
    Egress, Env, FlowSpec, OutLabel, Plugin, Reason, Refusal, VisitInstall, VisitKey, VisitRequest, MPLS_UDP_PORT,
};

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

#[derive(Default)]
pub(super) struct EnvState {
    held: HashMap<VisitKey, Held>,
    pub(super) bw_used: BTreeMap<u16, u64>,
    pub(super) plugins_held: usize,
    pub(super) install_failures: u64,
    pub(super) fetcher: Option<Box<dyn ClassFetcher>>,
    pub(super) fetches: BTreeMap<String, Fetch>,
    pub(super) fetch_stats: FetchStats,
    /// The daemon's clock at the current call (ms).
    pub(super) now_ms: u64,
}

impl EnvState {
    pub(super) fn resources(&self) -> Resources {
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

    /// Undo every visit on the node (the daemon stops).
    pub(super) fn release_all(&mut self, node: &mut Node) {
        let keys: Vec<VisitKey> = self.held.keys().copied().collect();
        for k in keys {
            self.release(node, k);
        }
    }

    /// Undo one visit on the node. Idempotent.
    pub(super) fn release(&mut self, node: &mut Node, key: VisitKey) {
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

/// The class a PBR plugin name means on this node.
fn resolve_class(node: &Node, cfg: &PbrConfig, name: &str) -> Option<String> {
    let mapped = cfg.mapped(name);
    if node.has_class(mapped) {
        return Some(mapped.to_string());
    }
    node.classes()
        .into_iter()
        .map(|(n, _, _)| n)
        .find(|n| n.eq_ignore_ascii_case(mapped))
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
        LabelOut::Tunnel { label, to, src } => format!("{verb} {label}, udp {src} → {to}:{MPLS_UDP_PORT}"),
        LabelOut::Pop => "pop".into(),
    }
}

/// The node as the agent's [`Env`], for one call.
pub(super) struct NodeEnv<'a> {
    pub(super) node: &'a mut Node,
    pub(super) st: &'a mut EnvState,
    pub(super) cfg: &'a PbrConfig,
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
