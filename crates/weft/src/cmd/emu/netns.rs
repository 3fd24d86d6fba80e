//! `weft emu run --netns TOPOLOGY`, `weft emu ls|exec|down`: the same
//! topology files as the in-process emulator, on real network namespaces.
//!
//! Each node is a `weft node run` process in its own namespace with one
//! AF_PACKET port per link; links are veth pairs; each end host is a
//! namespace with the Linux stack (address, default route via its router);
//! a `kind = "linux"` node is a namespace whose kernel forwards, with the
//! node's addresses and routes (a plain router).
//! Routes, MACs and addresses come from building the topology with the
//! in-process emulator (`weft_emu::Emulator`), so both emulators route
//! alike. Each node's API listens on its Unix socket only, reached through
//! `weft emu exec NODE -- weft …`: end hosts cannot reach it. With
//! `--api-tcp` the API also listens on TCP port 7070 of the node's
//! addresses (punted to a TUN device in the node's namespace,
//! `docs/ports.md`) and takes only a bearer token generated for the run,
//! kept in `api.token` (mode 0600) in the run's directory.
//!
//! Everything a run creates is named after its run id (`weft-ID-NAME`
//! namespaces) and recorded in a state file under `/run/weft-emu/ID/`
//! (`$WEFT_EMU_DIR` overrides), which `down` reads; a failed `run` removes
//! what it created before returning. See `docs/topology.md`.

use anyhow::{anyhow, bail, Context, Result};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use weft_control::config::words::MacAddr;
use weft_emu::topology::{ConfigSource, EndpointSpec, NodeKind};
use weft_emu::Emulator;

/// TCP port of a netns node's API with `--api-tcp`, reachable on its
/// addresses (punted).
pub const API_PORT: u16 = 7070;
/// The run's API token file (`--api-tcp`), in its state directory.
pub const TOKEN_FILE: &str = "api.token";
/// The punt TUN device in every node namespace.
const PUNT_TUN: &str = "weft0";

/// One node or host of a run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Member {
    /// Topology name.
    pub name: String,
    /// `node`, `router` (a Linux router) or `host`.
    pub kind: String,
    /// Its network namespace.
    pub netns: String,
    /// Addresses (with prefix).
    pub addrs: Vec<String>,
    /// The node's API socket.
    #[serde(default)]
    pub socket: Option<PathBuf>,
    /// The node's process (`weft node run`; `ip netns exec` becomes it).
    #[serde(default)]
    pub pid: Option<u32>,
}

/// What a run created: read by `ls`, `exec`, `down`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct State {
    /// Run id.
    pub id: String,
    /// The topology file.
    pub topology: PathBuf,
    /// Namespaces created, in order.
    pub namespaces: Vec<String>,
    /// Nodes and hosts.
    pub members: Vec<Member>,
    /// Whether the nodes' APIs also listen on TCP (`--api-tcp`).
    #[serde(default)]
    pub api_tcp: bool,
}

/// Where run states live.
pub fn state_root() -> PathBuf {
    if let Some(d) = std::env::var_os("WEFT_EMU_DIR") {
        return PathBuf::from(d);
    }
    let run = PathBuf::from("/run/weft-emu");
    if std::fs::create_dir_all(&run).is_ok() {
        return run;
    }
    std::env::temp_dir().join("weft-emu")
}

fn state_dir(id: &str) -> PathBuf {
    state_root().join(id)
}

fn save(st: &State) -> Result<()> {
    let dir = state_dir(&st.id);
    std::fs::create_dir_all(&dir)?;
    let tmp = dir.join("state.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(st)?)?;
    std::fs::rename(&tmp, dir.join("state.json"))?;
    Ok(())
}

/// All recorded runs.
pub fn runs() -> Vec<State> {
    let mut v = Vec::new();
    if let Ok(rd) = std::fs::read_dir(state_root()) {
        for e in rd.flatten() {
            if let Ok(b) = std::fs::read(e.path().join("state.json")) {
                if let Ok(s) = serde_json::from_slice::<State>(&b) {
                    v.push(s);
                }
            }
        }
    }
    v.sort_by(|a, b| a.id.cmp(&b.id));
    v
}

/// The run `id`, or the only run.
pub fn find_run(id: Option<&str>) -> Result<State> {
    let all = runs();
    match id {
        Some(id) => all
            .into_iter()
            .find(|s| s.id == id)
            .ok_or_else(|| anyhow!("no netns run {id:?} (see `weft emu ls`)")),
        None => match all.len() {
            0 => bail!("no netns run is up (start one with `weft emu run --netns TOPOLOGY`)"),
            1 => Ok(all.into_iter().next().unwrap_or_default()),
            _ => bail!(
                "several runs are up ({}); pick one with --id",
                all.iter().map(|s| s.id.as_str()).collect::<Vec<_>>().join(", ")
            ),
        },
    }
}

/// Run a command; its stderr becomes the error.
fn cmd(args: &[&str]) -> Result<()> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", args[0]))?;
    if !out.status.success() {
        bail!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn in_ns(ns: &str, args: &[&str]) -> Result<()> {
    let mut v = vec!["ip", "netns", "exec", ns];
    v.extend_from_slice(args);
    cmd(&v)
}

/// A short hash for temporary interface names (15-character limit).
fn short_hash(s: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// A fresh run id.
pub fn new_id() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:06x}", short_hash(&format!("{t}-{}", std::process::id())) & 0xff_ffff)
}

fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 24 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        bail!("bad run id {id:?}: 1-24 letters, digits or '-'");
    }
    Ok(())
}

/// The node config file for `name`: the topology's config for it (its
/// instances, filters, …) with ports replaced by AF_PACKET ports on the
/// veths and routes by everything the emulator computed.
fn node_config(
    emu: &Emulator,
    topo_dir: &Path,
    name: &str,
    socket: &Path,
    token_sha256: Option<&str>,
) -> Result<String> {
    let spec = emu
        .topology()
        .nodes
        .iter()
        .find(|n| n.name == name)
        .ok_or_else(|| anyhow!("no node {name}"))?;
    let mut t: toml::Table = match &spec.config {
        None => toml::Table::new(),
        Some(ConfigSource::Inline(t)) => t.clone(),
        Some(ConfigSource::Path(p)) => {
            let path = topo_dir.join(p);
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            text.parse::<toml::Table>()
                .with_context(|| format!("parsing {}", path.display()))?
        }
    };
    let node = emu.node(name);
    let mut ns = match t.remove("node") {
        Some(toml::Value::Table(n)) => n,
        _ => toml::Table::new(),
    };
    ns.insert("name".into(), name.into());
    t.insert("node".into(), toml::Value::Table(ns));
    let mut api = toml::Table::new();
    api.insert("socket".into(), socket.display().to_string().into());
    let mut punted = Vec::new();
    if let Some(hash) = token_sha256 {
        api.insert("tcp".into(), format!("0.0.0.0:{API_PORT}").into());
        punted.push(toml::Value::from(API_PORT as i64));
        let mut p = toml::Table::new();
        p.insert("name".into(), "emu-run".into());
        p.insert("token_sha256".into(), hash.into());
        p.insert("rights".into(), toml::Value::Array(vec!["all".into()]));
        let list = match t.remove("principal") {
            Some(toml::Value::Array(a)) => a,
            _ => Vec::new(),
        };
        t.insert(
            "principal".into(),
            toml::Value::Array(list.into_iter().chain([toml::Value::Table(p)]).collect()),
        );
    }
    t.insert("api".into(), toml::Value::Table(api));
    let mut punt = toml::Table::new();
    punt.insert("tun".into(), PUNT_TUN.into());
    punt.insert("tcp".into(), toml::Value::Array(punted));
    t.insert("punt".into(), toml::Value::Table(punt));
    // Every node takes part in explicit paths (`weft pbr`), as PromethOS
    // routers do.
    if !t.contains_key("pbr") {
        t.insert("pbr".into(), toml::Value::Table(toml::Table::new()));
    }
    let ports: Vec<toml::Value> = node
        .ports()
        .iter()
        .map(|p| {
            let mut pt = toml::Table::new();
            pt.insert("name".into(), p.cfg.name.clone().into());
            pt.insert("kind".into(), "afpacket".into());
            pt.insert("mac".into(), MacAddr(p.cfg.mac).to_string().into());
            pt.insert("mtu".into(), (p.cfg.mtu as i64).into());
            pt.insert(
                "addrs".into(),
                toml::Value::Array(p.cfg.addrs.iter().map(|a| a.to_string().into()).collect()),
            );
            toml::Value::Table(pt)
        })
        .collect();
    t.insert("port".into(), toml::Value::Array(ports));
    let port_names: Vec<String> = node.ports().iter().map(|p| p.cfg.name.clone()).collect();
    let routes: Vec<toml::Value> = node
        .routes()
        .iter()
        .filter(|r| r.kind == weft_dataplane::RouteKind::Static)
        .map(|r| {
            let mut rt = toml::Table::new();
            rt.insert("prefix".into(), r.prefix.to_string().into());
            if let Some(v) = r.via {
                rt.insert("via".into(), v.to_string().into());
            }
            if let Some(n) = port_names.get(r.port as usize) {
                rt.insert("port".into(), n.clone().into());
            }
            toml::Value::Table(rt)
        })
        .collect();
    t.insert("route".into(), toml::Value::Array(routes));
    Ok(toml::to_string(&t)?)
}

/// Where each link end goes: (namespace, interface name, MAC, MTU).
struct End {
    ns: String,
    ifname: String,
    mac: [u8; 6],
    node: bool,
}

/// Bring a topology up on namespaces. On failure everything created so far
/// is removed.
pub fn up(topology: &Path, id: Option<String>, api_tcp: bool) -> Result<State> {
    let id = id.unwrap_or_else(new_id);
    check_id(&id)?;
    if state_dir(&id).join("state.json").exists() {
        bail!("run {id:?} is already up (`weft emu down --id {id}`)");
    }
    let emu = Emulator::load(topology).with_context(|| format!("loading {}", topology.display()))?;
    let topo_dir = topology
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let topology = std::fs::canonicalize(topology).unwrap_or_else(|_| topology.to_path_buf());
    let mut st = State {
        id: id.clone(),
        topology,
        api_tcp,
        ..State::default()
    };
    save(&st)?;
    match build(&emu, &topo_dir, &mut st) {
        Ok(()) => {
            save(&st)?;
            Ok(st)
        }
        Err(e) => {
            let _ = save(&st);
            down(&st);
            Err(e)
        }
    }
}

fn ns_name(id: &str, name: &str) -> String {
    format!("weft-{id}-{name}")
}

fn build(emu: &Emulator, topo_dir: &Path, st: &mut State) -> Result<()> {
    let id = st.id.clone();
    let dir = state_dir(&id);
    let topo = emu.topology().clone();
    let have_ethtool = Command::new("ethtool")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !have_ethtool {
        eprintln!("weft: ethtool is missing: host interfaces keep checksum/segmentation offloads, which AF_PACKET ports cannot forward (install ethtool)");
    }
    // Namespaces.
    for n in topo
        .nodes
        .iter()
        .map(|n| &n.name)
        .chain(topo.hosts.iter().map(|h| &h.name))
    {
        let ns = ns_name(&id, n);
        cmd(&["ip", "netns", "add", &ns])?;
        st.namespaces.push(ns.clone());
        save(st)?;
        cmd(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
    }
    let linux = |name: &str| topo.nodes.iter().any(|n| n.name == name && n.kind == NodeKind::Linux);
    for n in &topo.nodes {
        let ns = ns_name(&id, &n.name);
        // A Weft node forwards; the namespace's kernel must not. A Linux
        // router's kernel does.
        let on = if n.kind == NodeKind::Linux { "1" } else { "0" };
        in_ns(
            &ns,
            &[
                "sysctl",
                "-qw",
                &format!("net.ipv4.ip_forward={on}"),
                &format!("net.ipv6.conf.all.forwarding={on}"),
            ],
        )?;
    }
    // Links.
    let mut node_ifs: Vec<(String, String)> = Vec::new();
    for (li, l) in topo.links.iter().enumerate() {
        let mut ends = Vec::new();
        for s in [&l.a, &l.b] {
            let e = match topo.endpoint(s)? {
                EndpointSpec::Node { node, port } => {
                    let n = emu.node(&node);
                    let pid = n.port_id(&port)?;
                    let mac = n.port_mac(pid).ok_or_else(|| anyhow!("{node}:{port}: no port"))?;
                    End {
                        ns: ns_name(&id, &node),
                        node: !linux(&node),
                        ifname: port,
                        mac,
                    }
                }
                EndpointSpec::Host(h) => End {
                    ns: ns_name(&id, &h),
                    ifname: "eth0".into(),
                    mac: emu.host(&h).mac(),
                    node: false,
                },
            };
            ends.push(e);
        }
        let tmp: Vec<String> = (0..2)
            .map(|s| format!("wv{:08x}{s}", short_hash(&format!("{id}/{li}"))))
            .collect();
        cmd(&["ip", "link", "add", &tmp[0], "type", "veth", "peer", "name", &tmp[1]])?;
        let mtu = l.mtu.to_string();
        for (e, t) in ends.iter().zip(&tmp) {
            if cmd(&["ip", "link", "set", t, "netns", &e.ns]).is_err() {
                let _ = cmd(&["ip", "link", "del", t]);
                bail!("cannot move {t} into {}", e.ns);
            }
            cmd(&["ip", "-n", &e.ns, "link", "set", t, "name", &e.ifname])?;
            cmd(&[
                "ip",
                "-n",
                &e.ns,
                "link",
                "set",
                &e.ifname,
                "address",
                &MacAddr(e.mac).to_string(),
                "mtu",
                &mtu,
            ])?;
            if e.node {
                in_ns(
                    &e.ns,
                    &["sysctl", "-qw", &format!("net.ipv6.conf.{}.disable_ipv6=1", e.ifname)],
                )?;
                node_ifs.push((e.ns.clone(), e.ifname.clone()));
            }
            if have_ethtool {
                // Frames must leave the kernel whole: checksums filled in,
                // no segmentation offload (AF_PACKET sees what the wire sees).
                let _ = in_ns(
                    &e.ns,
                    &[
                        "ethtool", "-K", &e.ifname, "tx", "off", "tso", "off", "gso", "off", "gro", "off",
                    ],
                );
            }
            cmd(&["ip", "-n", &e.ns, "link", "set", &e.ifname, "up"])?;
        }
    }
    // Hosts: addresses and default routes via their router.
    for h in &topo.hosts {
        let ns = ns_name(&id, &h.name);
        let host = emu.host(&h.name);
        let mut addrs = Vec::new();
        // The router's addresses on the host's link.
        let mut peer: Vec<IpNet> = Vec::new();
        for l in &topo.links {
            let (a, b) = (topo.endpoint(&l.a)?, topo.endpoint(&l.b)?);
            for (x, y) in [(&a, &b), (&b, &a)] {
                if *x == EndpointSpec::Host(h.name.clone()) {
                    if let EndpointSpec::Node { node, port } = y {
                        let n = emu.node(node);
                        let pid = n.port_id(port)?;
                        peer.extend(n.addresses().into_iter().filter(|(p, _)| *p == pid).map(|(_, a)| a));
                    }
                }
            }
        }
        if let Some(n) = host.net() {
            cmd(&["ip", "-n", &ns, "addr", "add", &n.to_string(), "dev", "eth0"])?;
            addrs.push(n.to_string());
            let gw = h.gateway.map(std::net::IpAddr::V4).or_else(|| {
                peer.iter()
                    .find(|a| a.addr().is_ipv4() && IpNet::V4(n).contains(&a.addr()))
                    .map(|a| a.addr())
            });
            if let Some(gw) = gw {
                cmd(&["ip", "-n", &ns, "route", "add", "default", "via", &gw.to_string()])?;
            }
        }
        if let Some(n) = host.net6() {
            cmd(&["ip", "-n", &ns, "addr", "add", &n.to_string(), "dev", "eth0", "nodad"])?;
            addrs.push(n.to_string());
            let gw = h.gateway6.map(std::net::IpAddr::V6).or_else(|| {
                peer.iter()
                    .find(|a| a.addr().is_ipv6() && IpNet::V6(n).contains(&a.addr()))
                    .map(|a| a.addr())
            });
            if let Some(gw) = gw {
                cmd(&["ip", "-n", &ns, "-6", "route", "add", "default", "via", &gw.to_string()])?;
            }
        }
        st.members.push(Member {
            name: h.name.clone(),
            kind: "host".into(),
            netns: ns,
            addrs,
            socket: None,
            pid: None,
        });
    }
    // Linux routers: the node's addresses on its interfaces, its routes.
    for n in topo.nodes.iter().filter(|n| n.kind == NodeKind::Linux) {
        let ns = ns_name(&id, &n.name);
        let node = emu.node(&n.name);
        let ports = node.ports();
        let ifname = |pid: u16| ports.iter().find(|p| p.id == pid).map(|p| p.cfg.name.clone());
        let mut addrs = Vec::new();
        for (pid, a) in node.addresses() {
            let dev = ifname(pid).ok_or_else(|| anyhow!("{}: port {pid}", n.name))?;
            let mut args = vec!["ip", "-n", &ns, "addr", "add"];
            let a_s = a.to_string();
            args.extend([a_s.as_str(), "dev", dev.as_str()]);
            if a.addr().is_ipv6() {
                args.push("nodad");
            }
            cmd(&args)?;
            addrs.push(a_s);
        }
        for r in node
            .routes()
            .iter()
            .filter(|r| r.kind == weft_dataplane::RouteKind::Static)
        {
            let prefix = r.prefix.to_string();
            let mut args = vec!["ip", "-n", &ns];
            if r.prefix.addr().is_ipv6() {
                args.push("-6");
            }
            args.extend(["route", "add", prefix.as_str()]);
            let via = r.via.map(|v| v.to_string());
            if let Some(v) = &via {
                args.extend(["via", v.as_str()]);
            }
            let dev = ifname(r.port);
            if let Some(d) = &dev {
                args.extend(["dev", d.as_str()]);
            }
            cmd(&args)?;
        }
        st.members.push(Member {
            name: n.name.clone(),
            kind: "router".into(),
            netns: ns,
            addrs,
            socket: None,
            pid: None,
        });
    }
    // Nodes: punt device, ingress drop, config, process.
    let exe = std::env::current_exe().context("finding the weft binary")?;
    let token_sha256 = if st.api_tcp {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let token = weft_control::auth::request::new_token().map_err(|e| anyhow!(e))?;
        let path = dir.join(TOKEN_FILE);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        writeln!(f, "{token}")?;
        Some(weft_repo::to_hex(&weft_control::auth::request::token_sha256(&token)))
    } else {
        None
    };
    let mut started = Vec::new();
    for n in topo.nodes.iter().filter(|n| n.kind == NodeKind::Weft) {
        let ns = ns_name(&id, &n.name);
        let node = emu.node(&n.name);
        let addrs: Vec<IpNet> = node.addresses().into_iter().map(|(_, a)| a).collect();
        cmd(&["ip", "-n", &ns, "tuntap", "add", PUNT_TUN, "mode", "tun"])?;
        for a in &addrs {
            let host = match a {
                IpNet::V4(v) => format!("{}/32", v.addr()),
                IpNet::V6(v) => format!("{}/128", v.addr()),
            };
            let mut args = vec!["ip", "-n", &ns, "addr", "add", &host, "dev", PUNT_TUN];
            if a.addr().is_ipv6() {
                args.push("nodad");
            }
            cmd(&args)?;
        }
        cmd(&["ip", "-n", &ns, "link", "set", PUNT_TUN, "up"])?;
        cmd(&["ip", "-n", &ns, "route", "add", "default", "dev", PUNT_TUN])?;
        let _ = cmd(&["ip", "-n", &ns, "-6", "route", "add", "default", "dev", PUNT_TUN]);
        // The kernel of the node's namespace carries the node's addresses
        // (on the TUN) but must never see the ports' frames: drop them at
        // netfilter ingress, after AF_PACKET has had its copy.
        let devs: Vec<String> = node_ifs
            .iter()
            .filter(|(s, _)| *s == ns)
            .map(|(_, i)| format!("\"{i}\""))
            .collect();
        if !devs.is_empty() {
            let rules = format!(
                "table netdev weft {{\n  chain ports {{ type filter hook ingress devices = {{ {} }} priority 0; policy drop; }}\n}}\n",
                devs.join(", ")
            );
            let f = dir.join(format!("{}.nft", n.name));
            std::fs::write(&f, rules)?;
            in_ns(&ns, &["nft", "-f", &f.display().to_string()]).context(
                "nftables is needed to keep the node namespace's kernel off the ports (apt-get install nftables)",
            )?;
        }
        let socket = dir.join(format!("{}.sock", n.name));
        let cfg_path = dir.join(format!("{}.toml", n.name));
        std::fs::write(
            &cfg_path,
            node_config(emu, topo_dir, &n.name, &socket, token_sha256.as_deref())?,
        )?;
        let log = std::fs::File::create(dir.join(format!("{}.log", n.name)))?;
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &ns])
            .arg(&exe)
            .args(["node", "run", "--config"])
            .arg(&cfg_path)
            .arg("--socket")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        std::os::unix::process::CommandExt::process_group(&mut c, 0);
        let child = c.spawn().context("starting weft node run")?;
        let pid = child.id();
        started.push((n.name.clone(), socket.clone(), child));
        st.members.push(Member {
            name: n.name.clone(),
            kind: "node".into(),
            netns: ns,
            addrs: addrs.iter().map(|a| a.to_string()).collect(),
            socket: Some(socket),
            pid: Some(pid),
        });
        save(st)?;
    }
    // Wait for every node's API socket.
    let deadline = Instant::now() + Duration::from_secs(20);
    for (name, socket, mut child) in started {
        loop {
            if socket.exists() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
                bail!("node {name} exited ({status}):\n{log}");
            }
            if Instant::now() > deadline {
                bail!("node {name} did not come up in 20 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Not waited for: the node outlives this command; `down` ends it.
        drop(child);
    }
    Ok(())
}

fn ns_pids(ns: &str) -> Vec<String> {
    Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// Remove everything a run created: processes in its namespaces (TERM, then
/// KILL), the namespaces (and with them veths and TUNs), the state dir.
pub fn down(st: &State) {
    for ns in &st.namespaces {
        let pids = ns_pids(ns);
        if !pids.is_empty() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .args(&pids)
                .stderr(Stdio::null())
                .status();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    for ns in &st.namespaces {
        loop {
            let pids = ns_pids(ns);
            if pids.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                let _ = Command::new("kill")
                    .arg("-KILL")
                    .args(&pids)
                    .stderr(Stdio::null())
                    .status();
                std::thread::sleep(Duration::from_millis(50));
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    for ns in st.namespaces.iter().rev() {
        if let Err(e) = cmd(&["ip", "netns", "del", ns]) {
            eprintln!("weft: {e}");
        }
    }
    let _ = std::fs::remove_dir_all(state_dir(&st.id));
}

/// A member's process id for `weft emu ls`: the pid, "exited (PID)" when
/// the process is gone, "-" for hosts (they run no process of their own).
fn pid_cell(m: &Member) -> String {
    match m.pid {
        None => "-".into(),
        Some(p) if Path::new(&format!("/proc/{p}")).exists() => p.to_string(),
        Some(p) => format!("exited ({p})"),
    }
}

/// `weft emu ls`.
pub fn print_runs(runs: &[State]) {
    if runs.is_empty() {
        println!("no netns runs are up");
        return;
    }
    for st in runs {
        println!("run {}  ({})", st.id, st.topology.display());
        let rows: Vec<Vec<String>> = st
            .members
            .iter()
            .map(|m| {
                vec![
                    m.name.clone(),
                    m.kind.clone(),
                    pid_cell(m),
                    m.netns.clone(),
                    m.addrs.join(" "),
                    m.socket.as_ref().map(|s| s.display().to_string()).unwrap_or_default(),
                ]
            })
            .collect();
        print!(
            "{}",
            crate::cmd::common::table(&["name", "kind", "pid", "netns", "addresses", "api socket"], &rows)
        );
        if st.api_tcp {
            println!(
                "nodes also serve the API on tcp port {API_PORT} of their addresses; bearer token in {}",
                state_dir(&st.id).join(TOKEN_FILE).display()
            );
        }
    }
}

/// `weft emu exec NAME -- CMD…`: run CMD in the member's namespace with
/// `WEFT_SOCKET` set to the node's socket (nodes) and `WEFT_TOPOLOGY` to the
/// run's topology file, and return its exit status (128 + N when signal N
/// ended it, as a shell reports).
///
/// CMD stays in our process group (it may read the terminal) and dies with
/// us: SIGTERM, SIGHUP, SIGINT and SIGQUIT sent to `weft emu exec` are
/// passed on to it, and we exit when it does. The terminal's Ctrl-C and
/// Ctrl-\ reach CMD directly when we are in the foreground, so those are
/// not passed on a second time (then `kill -INT` of ours alone does not
/// reach CMD either; `kill -TERM` does).
pub async fn exec(st: &State, name: &str, command: &[String]) -> Result<i32> {
    use rustix::process::{Pid, Signal};
    use tokio::signal::unix::{signal, SignalKind};
    let m = st
        .members
        .iter()
        .find(|m| m.name == name)
        .ok_or_else(|| anyhow!("run {} has no node or host {name:?}", st.id))?;
    if command.is_empty() {
        bail!("give a command: weft emu exec {name} -- CMD ARGS…");
    }
    // Watch the signals before the child exists, so none ends us alone.
    let watch = |k| signal(k).context("watching signals");
    let mut term = watch(SignalKind::terminate())?;
    let mut hup = watch(SignalKind::hangup())?;
    let mut int = watch(SignalKind::interrupt())?;
    let mut quit = watch(SignalKind::quit())?;
    let mut c = Command::new("ip");
    // `ip netns exec` enters the namespace and execs CMD: same process.
    c.args(["netns", "exec", &m.netns]).args(command);
    if let Some(s) = &m.socket {
        c.env("WEFT_SOCKET", s);
    }
    // Hop names of `weft pbr` resolve through the run's topology.
    c.env("WEFT_TOPOLOGY", &st.topology);
    let mut child = c.spawn().context("running ip netns exec")?;
    let pid = Pid::from_child(&child);
    // Wait for its exit without reaping it: until we reap it below, its
    // pid cannot name another process, so passing a signal on is safe.
    let (tx, mut exited) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        use rustix::process::{waitid, WaitId, WaitIdOptions};
        let r = waitid(WaitId::Pid(pid), WaitIdOptions::EXITED | WaitIdOptions::NOWAIT);
        let _ = tx.send(r);
    });
    loop {
        let sig = tokio::select! {
            _ = &mut exited => break,
            _ = term.recv() => Signal::TERM,
            _ = hup.recv() => Signal::HUP,
            _ = int.recv() => Signal::INT,
            _ = quit.recv() => Signal::QUIT,
        };
        if (sig == Signal::INT || sig == Signal::QUIT) && terminal_sent_it() {
            continue;
        }
        let _ = rustix::process::kill_process(pid, sig);
    }
    let status = child.wait().context("waiting for the command")?;
    use std::os::unix::process::ExitStatusExt;
    Ok(status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(1))
}

/// Whether a SIGINT or SIGQUIT we got came from our terminal: we are in
/// its foreground process group, which the child shares.
fn terminal_sent_it() -> bool {
    let Ok(tty) = std::fs::File::open("/dev/tty") else {
        return false;
    };
    rustix::termios::tcgetpgrp(&tty).is_ok_and(|fg| fg == rustix::process::getpgrp())
}
