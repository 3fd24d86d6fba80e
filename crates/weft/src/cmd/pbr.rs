//! `weft pbr`: explicit paths in PromethOS' own words (`docs/pbr.md`).
//!
//! ```text
//! weft pbr plan --from R1 --to R7 --process ENCRYPT@R2,R3 --process DECRYPT@R6,R8 -- -p udp --dport 6060
//! weft pbr create R1:R4:R3:R4:R7:R8:R7 -p udp --dport 6060 --plugin R3:ENCRYPT:key=$KEY --plugin R8:DECRYPT:key=$KEY
//! weft pbr status ID | release ID | ls
//! ```
//!
//! Hop names resolve through a topology file (`--topology`, or
//! `$WEFT_TOPOLOGY`, which `weft emu exec` sets): hop *i* is the address of
//! node *i* on its link from node *i−1* (the first hop: the node's address
//! toward the second). Hops may also be written as addresses. `plan` needs
//! the topology and talks to no node, so it has no `--node`; the others
//! talk to the first hop's node (`--node`).
//!
//! Protocols, ports and prefixes are the operator's words of `weft filter`
//! and the config file ([`weft_control::config::words`]): the same spelling
//! is accepted (`1000-2000` or `1000:2000`) and a prefix's host bits are
//! cleared (`-s 10.0.0.5/24` is `10.0.0.0/24`, which matches the same
//! packets).

use crate::cmd::common::{client, table, NodeArg};
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use ipnet::IpNet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use weft_control::config::words::{self, AddrOrPrefix, Proto};
use weft_emu::topology::Topology;
use weft_emu::Emulator;
use weft_pbr::{CreateRequest, FlowSpec, Hop, Plugin, PortRange, Stage};

/// `weft pbr …`
#[derive(Debug, Subcommand)]
pub enum PbrCmd {
    /// Compute the minimum-cost walk through processing sites, in order
    /// (link costs plus per-node processing costs from the topology), and
    /// print shell lines that set it up: `KEY=…` when ENCRYPT/DECRYPT need
    /// a shared key, then the `weft pbr create` line (a `# …` comment says
    /// what to fill in where the plan cannot know).
    Plan(PlanArgs),
    /// Set up an explicit path from the node you talk to (the first hop);
    /// prints the path id once every hop committed.
    Create(CreateArgs),
    /// Every visit of a path: state, label, plugin instance, counters.
    Status {
        #[command(flatten)]
        node: NodeArg,
        /// Path id (as printed by create / ls).
        id: String,
    },
    /// Release a path (only its initiator may).
    Release {
        #[command(flatten)]
        node: NodeArg,
        /// Path id.
        id: String,
    },
    /// Paths this node initiated and visits it holds.
    Ls(NodeArg),
}

/// `weft pbr plan`
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Topology file (default `$WEFT_TOPOLOGY`).
    #[arg(long, env = "WEFT_TOPOLOGY")]
    topology: PathBuf,
    /// First node.
    #[arg(long)]
    from: String,
    /// Last node.
    #[arg(long)]
    to: String,
    /// A processing stage, in order: CLASS@SITE,SITE… (one of the sites
    /// runs CLASS).
    #[arg(long = "process", value_name = "CLASS@SITES")]
    process: Vec<String>,
    /// Flow options passed on to the printed create line (e.g. `-- -p udp
    /// --dport 6060`).
    #[arg(last = true)]
    rest: Vec<String>,
}

/// `weft pbr create`
#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    node: NodeArg,
    /// The walk, `R1:R4:R3:…` (names or addresses; a node may repeat).
    walk: String,
    /// Topology file for hop names (default `$WEFT_TOPOLOGY`).
    #[arg(long, env = "WEFT_TOPOLOGY")]
    topology: Option<PathBuf>,
    /// Source prefix (or a host's name).
    #[arg(short = 's', long = "src")]
    src: Option<String>,
    /// Destination prefix (or a host's name).
    #[arg(short = 'd', long = "dst")]
    dst: Option<String>,
    /// Protocol: udp, tcp, icmp, icmpv6, esp or a number.
    #[arg(short = 'p', long = "proto")]
    proto: Option<String>,
    /// Source port or range LO-HI; needs -p tcp or -p udp (as iptables).
    #[arg(long)]
    sport: Option<String>,
    /// Destination port or range LO-HI; needs -p tcp or -p udp (as
    /// iptables: ports are not guessed to be UDP).
    #[arg(long)]
    dport: Option<String>,
    /// A plugin on a hop: HOP:CLASS[:CONFIG] (HOP a name, address or `#INDEX`
    /// for one visit of a repeated node; a name means its first visit).
    #[arg(long = "plugin", value_name = "HOP:CLASS:CONFIG")]
    plugins: Vec<String>,
    /// Hops reached by a loose segment (comma-separated names or `#INDEX`):
    /// ordinary routing from the previous hop, tunnelled.
    #[arg(long, value_delimiter = ',')]
    loose: Vec<String>,
    /// Bandwidth to reserve on every link, bits/s (k, M, G suffixes).
    #[arg(long, default_value = "0")]
    bandwidth: String,
    /// Refresh interval (e.g. 5s, 500ms).
    #[arg(long, default_value = "5s")]
    refresh: String,
    /// Do not wait for the path to come up.
    #[arg(long)]
    no_wait: bool,
}

fn load(path: &Path) -> Result<Topology> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Topology::parse(&text, &path.display().to_string()).map_err(|e| anyhow!("{e}"))
}

/// A host's address (with its prefix) from the topology.
fn host_net(t: &Topology, name: &str, v6: bool) -> Option<IpNet> {
    let h = t.hosts.iter().find(|h| h.name == name)?;
    if v6 {
        h.addr6.map(IpNet::V6)
    } else {
        h.addr.map(IpNet::V4)
    }
}

/// Resolve a walk into hops: addresses as they are, or node names through
/// the topology (hop *i*: node *i*'s address on its link from node *i−1*).
pub fn resolve_walk(emu: Option<&Emulator>, names: &[&str], loose: &[bool], v6: bool) -> Result<Vec<Hop>> {
    let addrs: Vec<Option<IpAddr>> = names.iter().map(|n| n.parse().ok()).collect();
    if addrs.iter().all(Option::is_some) {
        return Ok(addrs
            .iter()
            .zip(loose)
            .enumerate()
            .map(|(i, (a, l))| Hop {
                addr: a.unwrap_or(IpAddr::from([0, 0, 0, 0])),
                loose: i > 0 && *l,
            })
            .collect());
    }
    if addrs.iter().any(Option::is_some) {
        bail!("write the walk in node names or in addresses, not both");
    }
    let emu = emu.ok_or_else(|| anyhow!("the walk names nodes: give --topology (or write addresses)"))?;
    emu.hop_addresses(names, loose, v6).map_err(|e| anyhow!("{e}"))
}

/// A port or range, as `weft filter` reads it.
fn parse_ports(s: &str) -> Result<PortRange> {
    let words::PortRange(lo, hi) = s.parse()?;
    Ok(PortRange { lo, hi })
}

/// `10M` → 10,000,000.
fn parse_rate(s: &str) -> Result<u64> {
    let s = s.trim();
    let (num, mul) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 1_000),
        Some((i, 'm' | 'M')) => (&s[..i], 1_000_000),
        Some((i, 'g' | 'G')) => (&s[..i], 1_000_000_000),
        _ => (s, 1),
    };
    let v: f64 = num.parse().with_context(|| format!("bad rate {s:?}"))?;
    Ok((v * mul as f64) as u64)
}

/// `5s`, `500ms` → milliseconds.
fn parse_ms(s: &str) -> Result<u32> {
    let s = s.trim();
    let (num, mul) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (s, 1000.0)
    };
    let v: f64 = num.parse().with_context(|| format!("bad interval {s:?}"))?;
    if v <= 0.0 {
        bail!("the refresh interval must be positive");
    }
    Ok((v * mul) as u32)
}

/// Which visit a `--plugin`/`--loose` hop word means.
fn visit_index(word: &str, names: &[&str]) -> Result<usize> {
    if let Some(i) = word.strip_prefix('#') {
        let i: usize = i.parse().with_context(|| format!("bad hop index {word:?}"))?;
        if i >= names.len() {
            bail!("hop index {i} is past the walk's {} hops", names.len());
        }
        return Ok(i);
    }
    names
        .iter()
        .position(|n| *n == word)
        .ok_or_else(|| anyhow!("{word:?} is not on the walk {}", names.join(":")))
}

/// The request `weft pbr create` sends, from its arguments.
pub fn create_request(a: &CreateArgs) -> Result<CreateRequest> {
    // Loaded once: hop names and host names resolve through it.
    let emu = a
        .topology
        .as_deref()
        .map(|p| Emulator::load(p).map_err(|e| anyhow!("{}: {e}", p.display())))
        .transpose()?;
    let names: Vec<&str> = a.walk.split(':').map(str::trim).collect();
    if names.len() < 2 || names.iter().any(|n| n.is_empty()) {
        bail!("a walk is at least two hops, NAME:NAME:…");
    }
    let mut loose = vec![false; names.len()];
    for w in &a.loose {
        let i = visit_index(w, &names)?;
        if i == 0 {
            bail!("the first hop cannot be loose");
        }
        loose[i] = true;
    }
    let net = |s: &str, v6: bool| -> Result<IpNet> {
        if let Ok(p) = s.parse::<AddrOrPrefix>() {
            return Ok(p.0);
        }
        let t = emu
            .as_ref()
            .map(Emulator::topology)
            .ok_or_else(|| anyhow!("{s:?} is a name: give --topology"))?;
        let h = host_net(t, s, v6).ok_or_else(|| anyhow!("{s:?}: no such host (or no address of that family)"))?;
        Ok(IpNet::from(h.addr()))
    };
    let v6 = [&a.src, &a.dst]
        .into_iter()
        .flatten()
        .any(|s| s.contains(':') || s.parse::<IpNet>().is_ok_and(|n| n.addr().is_ipv6()));
    let mut fs = if v6 {
        FlowSpec {
            src: "::/0".parse()?,
            dst: "::/0".parse()?,
            ..FlowSpec::any_v4()
        }
    } else {
        FlowSpec::any_v4()
    };
    if let Some(s) = &a.src {
        fs.src = net(s, v6)?;
    }
    if let Some(d) = &a.dst {
        fs.dst = net(d, v6)?;
    }
    if let Some(p) = &a.sport {
        fs.sport = parse_ports(p)?;
    }
    if let Some(p) = &a.dport {
        fs.dport = parse_ports(p)?;
    }
    fs.protocol = a.proto.as_deref().map(str::parse::<Proto>).transpose()?.map(|p| p.0);
    words::check_ports(fs.protocol, a.sport.is_some() || a.dport.is_some()).map_err(|e| anyhow!("{e}"))?;
    let hops = resolve_walk(emu.as_ref(), &names, &loose, v6)?;
    let mut plugins = Vec::new();
    for p in &a.plugins {
        let mut it = p.splitn(3, ':');
        let (Some(hop), Some(class)) = (it.next(), it.next()) else {
            bail!("--plugin {p:?}: write HOP:CLASS[:CONFIG]");
        };
        let config = it.next().unwrap_or("").to_string();
        // "init" is PromethOS' word for "the class's defaults".
        let config = if config == "init" { String::new() } else { config };
        plugins.push(Plugin {
            hop: visit_index(hop, &names)? as u8,
            class: class.to_string(),
            config,
        });
    }
    Ok(CreateRequest {
        hops,
        flowspec: fs,
        plugins,
        bandwidth_bps: parse_rate(&a.bandwidth)?,
        refresh_ms: parse_ms(&a.refresh)?,
    })
}

/// The shell line `plan` prints for a shared `encrypt`/`decrypt` key: 32
/// random octets as 64 hex digits, with tools every Linux host has.
pub const KEY_LINE: &str = "KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n')";

/// What a `--plugin HOP:CLASS:CONFIG` of the printed create line should
/// say for `class`, and a comment line when something needs saying: `init`
/// (PromethOS' "the class's defaults": an empty configuration, or the
/// node's `[pbr] default_config`) where that works, a shared `key=$KEY`
/// for `encrypt`/`decrypt`, a `CONFIG` placeholder and the class's
/// configuration words where a built-in class needs more.
fn plugin_config(class: &str) -> (String, Option<String>) {
    let lower = class.to_ascii_lowercase();
    if lower == "encrypt" || lower == "decrypt" {
        return ("key=$KEY".into(), None);
    }
    match weft_elements::classes().into_iter().find(|c| c.name == lower) {
        Some(c) => match c.create(&weft_dataplane::Args::default()) {
            Ok(_) => ("init".into(), None),
            Err(_) => ("CONFIG".into(), Some(format!("# CONFIG for {class}: {}", c.doc.config))),
        },
        None => (
            "init".into(),
            Some(format!(
                "# {class} is not built in: `init` gives the plugin an empty configuration \
                 (or the node's [pbr] default_config); write its configuration instead if it needs one"
            )),
        ),
    }
}

/// The lines `weft pbr plan` prints: the walk, then shell lines that set it
/// up when pasted (a key first, when a stage needs one; comments where
/// something must be filled in).
pub fn plan_lines(a: &PlanArgs) -> Result<Vec<String>> {
    let t = load(&a.topology)?;
    let g = t.pbr_graph();
    let stages: Vec<Stage> = a
        .process
        .iter()
        .map(|s| Stage::parse(s).map_err(|e| anyhow!("--process {s:?}: {e}")))
        .collect::<Result<_>>()?;
    let w = weft_pbr::plan(&g, &a.from, &a.to, &stages).map_err(|e| anyhow!("{e}"))?;
    let mut lines = vec![format!("walk {} (cost {})", w.to_colon_string(), w.cost)];
    let mut notes = Vec::new();
    let mut line = format!("weft pbr create {}", w.to_colon_string());
    for (s, &i) in stages.iter().zip(&w.processing) {
        let (class, (config, note)) = match &s.class {
            Some(c) => (c.clone(), plugin_config(c)),
            None => (
                "CLASS".to_string(),
                ("init".to_string(), Some("# CLASS: the class to run there".to_string())),
            ),
        };
        // A node visited more than once is named by visit index.
        let name = &w.hops[i];
        let first = w.hops.iter().position(|h| h == name) == Some(i);
        let hop = if first { name.clone() } else { format!("#{i}") };
        // A word starting with `#` is a shell comment: quote it (double
        // quotes, so `$KEY` still expands).
        let word = format!("{hop}:{class}:{config}");
        if first {
            line.push_str(&format!(" --plugin {word}"));
        } else {
            line.push_str(&format!(" --plugin \"{word}\""));
        }
        notes.extend(note);
    }
    for r in &a.rest {
        line.push(' ');
        line.push_str(r);
    }
    if line.contains("$KEY") {
        lines.push(format!(
            "{KEY_LINE}   # one key for the encrypt/decrypt pair (64 hex digits)"
        ));
    }
    lines.extend(notes);
    lines.push(line);
    Ok(lines)
}

fn plan(a: &PlanArgs) -> Result<()> {
    for l in plan_lines(a)? {
        println!("{l}");
    }
    Ok(())
}

/// Print a path view (the API's JSON) as a table of visits.
fn print_path(v: &serde_json::Value) {
    let s = |k: &str| v[k].as_str().map(str::to_string).unwrap_or_else(|| v[k].to_string());
    match v["mtu"].as_u64() {
        Some(m) => println!("path {}  state {}  mtu {m}", s("id"), s("state")),
        None => println!("path {}  state {}", s("id"), s("state")),
    }
    if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
        match serde_json::from_value::<weft_pbr::HopError>(e.clone()) {
            Ok(e) => println!("  {e}"),
            Err(_) => println!("  {e}"),
        }
    }
    if let Some(recs) = v["status"].as_array().or_else(|| v["records"].as_array()) {
        let rows: Vec<Vec<String>> = recs
            .iter()
            .map(|r| {
                let f = |k: &str| match &r[k] {
                    serde_json::Value::Null => "-".to_string(),
                    serde_json::Value::String(s) => s.clone(),
                    x => x.to_string(),
                };
                vec![
                    f("hop"),
                    f("address"),
                    f("state"),
                    f("label"),
                    f("plugin"),
                    f("packets"),
                ]
            })
            .collect();
        println!(
            "{}",
            table(&["hop", "address", "state", "label", "plugin", "packets"], &rows)
        );
    }
}

pub async fn run(c: PbrCmd) -> Result<()> {
    match c {
        PbrCmd::Plan(a) => plan(&a),
        PbrCmd::Create(a) => {
            let req = create_request(&a)?;
            let cl = client(a.node.node)?;
            let created: serde_json::Value = cl.post("/v1/pbr/paths", &req).await.context("pbr create")?;
            let id = created["id"].as_str().unwrap_or_default().to_string();
            if a.no_wait {
                println!("{id}");
                return Ok(());
            }
            // Up only when the commit reached us (PromethOS figure 3).
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let v: serde_json::Value = cl.get(&format!("/v1/pbr/paths/{id}")).await?;
                match v["state"].as_str() {
                    Some("up") => {
                        println!("{id}");
                        return Ok(());
                    }
                    Some("pending") if Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Some("pending") => bail!("path {id} is not up after 30 s"),
                    _ => {
                        print_path(&v);
                        bail!("path {id} was not set up");
                    }
                }
            }
        }
        PbrCmd::Status {
            node: NodeArg { node },
            id,
        } => {
            let v: serde_json::Value = client(node)?.get(&format!("/v1/pbr/paths/{id}?status=true")).await?;
            print_path(&v);
            Ok(())
        }
        PbrCmd::Release {
            node: NodeArg { node },
            id,
        } => {
            let _: serde_json::Value = client(node)?
                .delete::<serde_json::Value, _>(&format!("/v1/pbr/paths/{id}"), None)
                .await?;
            Ok(())
        }
        PbrCmd::Ls(NodeArg { node }) => {
            let v: Vec<serde_json::Value> = client(node)?.get("/v1/pbr/paths").await?;
            let rows: Vec<Vec<String>> = v
                .iter()
                .map(|p| {
                    let f = |k: &str| match &p[k] {
                        serde_json::Value::Null => "-".to_string(),
                        serde_json::Value::String(s) => s.clone(),
                        x => x.to_string(),
                    };
                    vec![f("id"), f("role"), f("state"), f("walk")]
                })
                .collect();
            println!("{}", table(&["path", "role", "state", "walk"], &rows));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(subcommand)]
        c: PbrCmd,
    }

    fn fig2() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../topologies/promethos-fig2.toml")
    }

    #[test]
    fn create_resolves_names_through_the_topology() {
        let t = fig2();
        let T { c } = T::parse_from([
            "t",
            "create",
            "R1:R4:R3:R4:R7:R8:R7",
            "--topology",
            t.to_str().unwrap(),
            "-p",
            "udp",
            "--dport",
            "6060",
            "--plugin",
            "R3:ENCRYPT:init",
            "--plugin",
            "R8:DECRYPT:key=k",
            "-d",
            "h7",
        ]);
        let PbrCmd::Create(a) = c else { panic!() };
        let r = create_request(&a).unwrap();
        let hops: Vec<String> = r.hops.iter().map(|h| h.addr.to_string()).collect();
        assert_eq!(
            hops,
            [
                "10.14.0.1",
                "10.14.0.4",
                "10.34.0.3",
                "10.34.0.4",
                "10.47.0.7",
                "10.78.0.8",
                "10.78.0.7"
            ]
        );
        assert_eq!(r.flowspec.dport, PortRange::single(6060));
        assert_eq!(r.flowspec.protocol, Some(17));
        assert_eq!(r.flowspec.dst.to_string(), "10.0.7.2/32");
        assert_eq!((r.plugins[0].hop, r.plugins[0].class.as_str()), (2, "ENCRYPT"));
        assert_eq!((r.plugins[1].hop, r.plugins[1].config.as_str()), (5, "key=k"));
        assert_eq!(r.refresh_ms, 5000);
    }

    #[test]
    fn bad_walks_are_explained() {
        let t = fig2();
        for (walk, extra, want) in [
            ("R1:R7", vec![], "not a neighbour of R1"),
            ("R1:R9", vec![], "no node \"R9\""),
            ("R1", vec![], "at least two hops"),
            ("R1:R4", vec!["--plugin", "R5:X"], "not on the walk"),
            ("R1:R4", vec!["-p", "udp", "--dport", "9-1"], "bad port range"),
            // As iptables: no port without its protocol, and none for ICMP.
            (
                "R1:R4",
                vec!["--dport", "6060"],
                "need the protocol named: -p tcp or -p udp",
            ),
            ("R1:R4", vec!["--sport", "1-9"], "need the protocol named"),
            (
                "R1:R4",
                vec!["-p", "icmp", "--dport", "1"],
                "tcp and udp only, not icmp",
            ),
        ] {
            let mut args = vec!["t", "create", walk, "--topology", t.to_str().unwrap()];
            args.extend(extra);
            let T { c } = T::parse_from(args);
            let PbrCmd::Create(a) = c else { panic!() };
            let e = create_request(&a).unwrap_err().to_string();
            assert!(e.contains(want), "{walk}: {e}");
        }
        // Loose hops need no adjacency.
        let T { c } = T::parse_from([
            "t",
            "create",
            "R1:R7",
            "--topology",
            t.to_str().unwrap(),
            "--loose",
            "R7",
        ]);
        let PbrCmd::Create(a) = c else { panic!() };
        let r = create_request(&a).unwrap();
        assert!(r.hops[1].loose && !r.hops[0].loose);
    }

    /// The flow is written in `weft filter`'s words: protocol names in any
    /// case, `LO:HI` port ranges as well as `LO-HI`, prefixes with their
    /// host bits cleared, bare addresses as host prefixes.
    #[test]
    fn flow_words_are_the_filter_words() {
        let T { c } = T::parse_from([
            "t",
            "create",
            "10.0.0.1:10.0.0.2",
            "-p",
            "TCP",
            "--sport",
            "1000:2000",
            "--dport",
            "80",
            "-s",
            "10.1.2.3/16",
            "-d",
            "10.9.9.9",
        ]);
        let PbrCmd::Create(a) = c else { panic!() };
        let r = create_request(&a).unwrap();
        assert_eq!(r.flowspec.protocol, Some(6));
        assert_eq!(r.flowspec.sport, PortRange { lo: 1000, hi: 2000 });
        assert_eq!(r.flowspec.dport, PortRange::single(80));
        assert_eq!(r.flowspec.src.to_string(), "10.1.0.0/16");
        assert_eq!(r.flowspec.dst.to_string(), "10.9.9.9/32");
    }

    /// The argv a shell passes to `weft` for the last of `lines` (the
    /// create line), after running the lines before it (`KEY=…`).
    fn shell_argv(lines: &[String]) -> Vec<String> {
        let mut script = String::new();
        for l in &lines[1..lines.len() - 1] {
            script.push_str(l);
            script.push('\n');
        }
        let create = lines.last().unwrap().strip_prefix("weft ").unwrap();
        script.push_str(&format!("set -- {create}\nprintf '%s\\n' \"$@\"\n"));
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        assert!(out.status.success(), "{script}");
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    }

    fn plan_of(process: &[&str], rest: &[&str]) -> Vec<String> {
        let t = fig2();
        let mut args = vec![
            "t",
            "plan",
            "--topology",
            t.to_str().unwrap(),
            "--from",
            "R1",
            "--to",
            "R7",
        ];
        for p in process {
            args.extend(["--process", p]);
        }
        if !rest.is_empty() {
            args.push("--");
            args.extend(rest);
        }
        let T { c } = T::parse_from(args);
        let PbrCmd::Plan(a) = c else { panic!() };
        plan_lines(&a).unwrap()
    }

    /// What `plan` prints, pasted into a shell, is a create line that
    /// parses, resolves, and whose plugin configurations the classes
    /// accept: no `init` for ENCRYPT/DECRYPT (which need a key), but one
    /// shared `$KEY` made by the line before it.
    #[test]
    fn plan_prints_lines_that_work_when_pasted() {
        let lines = plan_of(&["ENCRYPT@R2,R3", "DECRYPT@R6,R8"], &["-p", "udp", "--dport", "6060"]);
        assert_eq!(lines[0], "walk R1:R4:R3:R4:R7:R8:R7 (cost 10)");
        assert!(lines[1].starts_with(KEY_LINE), "{lines:?}");
        assert_eq!(
            lines[2],
            "weft pbr create R1:R4:R3:R4:R7:R8:R7 --plugin R3:ENCRYPT:key=$KEY --plugin R8:DECRYPT:key=$KEY \
             -p udp --dport 6060"
        );
        let mut argv = vec!["t".to_string()];
        argv.extend(shell_argv(&lines).into_iter().skip(1));
        argv.extend(["--topology".into(), fig2().to_str().unwrap().into()]);
        let T { c } = T::parse_from(argv);
        let PbrCmd::Create(a) = c else { panic!() };
        let r = create_request(&a).unwrap();
        assert_eq!(r.plugins.len(), 2);
        let key = &r.plugins[0].config;
        assert_eq!(key, &r.plugins[1].config, "one key for the pair");
        let hex = key.strip_prefix("key=").unwrap();
        assert!(hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()), "{key}");
        for p in &r.plugins {
            let class = weft_elements::classes()
                .into_iter()
                .find(|c| c.name == p.class.to_ascii_lowercase())
                .unwrap();
            class.create(&weft_dataplane::Args::parse(&p.config)).unwrap();
        }
        // Two pastes, two keys.
        assert_ne!(shell_argv(&lines), shell_argv(&lines));
    }

    /// A class that needs configuration the plan cannot know is marked
    /// CONFIG with its configuration words; a revisited node's index is
    /// quoted (a bare `#…` word is a shell comment); a class that takes no
    /// configuration gets `init`.
    #[test]
    fn plan_says_what_to_fill_in() {
        let lines = plan_of(&["RATELIMIT@R2,R3", "COUNTER@R6,R8", "counter@R7"], &[]);
        let create = lines.last().unwrap();
        assert!(create.contains("--plugin R3:RATELIMIT:CONFIG"), "{lines:?}");
        assert!(create.contains("--plugin R8:COUNTER:init"), "{lines:?}");
        assert!(create.contains("--plugin \"#6:counter:init\""), "{lines:?}");
        assert!(
            lines.iter().any(|l| l.starts_with("# CONFIG for RATELIMIT: RATE")),
            "{lines:?}"
        );
        assert!(!lines.iter().any(|l| l.starts_with("KEY=")));
        let argv = shell_argv(&lines);
        assert!(argv.contains(&"#6:counter:init".to_string()), "{argv:?}");
        let lines = plan_of(&["wnetmon@R2,R3"], &[]);
        assert!(lines[1].starts_with("# wnetmon is not built in"), "{lines:?}");
        assert!(lines[2].ends_with("--plugin R3:wnetmon:init"), "{lines:?}");
    }

    #[test]
    fn rates_and_intervals() {
        assert_eq!(parse_rate("10M").unwrap(), 10_000_000);
        assert_eq!(parse_rate("1.5k").unwrap(), 1500);
        assert_eq!(parse_ms("500ms").unwrap(), 500);
        assert_eq!(parse_ms("2s").unwrap(), 2000);
        assert!(parse_ms("0s").is_err());
    }
}
