//! `weft signal`: on-path signaling from this host (NetServ;
//! `docs/signaling.md`).
//!
//! ```text
//! weft signal setup --to DEST --module NAME[@VERSION] --from URL --filter udp:5060[:PREFIX] --ttl 3600 --key KEY
//! weft signal remove --to DEST --session ID --key KEY
//! weft signal probe --to DEST [--what modules,capabilities,resources] --key KEY
//! weft signal trigger --to CLIENT (--module … | --what …) --key KEY
//! weft signal ls [--node NODE]
//! ```
//!
//! `setup`, `remove`, `probe` and `trigger` talk to no node: they send one
//! signed request from this host toward `--to` (UDP to port 270 with the
//! Router Alert option, so every Weft node on the path intercepts it) and
//! print the response stack, node by node in path order. `ls` asks one
//! node (`--node`) what it holds.

use crate::cmd::common::{client, table, NodeArg};
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;
use weft_control::api::SignalView;
use weft_control::signal::host::{Answer, KeySigner, Requester};
use weft_signal::wire::ResponseMsg;
use weft_signal::{Code, Entry, Filter, Kind, Module, ModuleKind, Probe, Request, ServerPort, SessionId};

/// `weft signal …`
#[derive(Debug, Subcommand)]
pub enum SignalCmd {
    /// Install a module at every Weft node on the path toward DEST; prints
    /// the response stack and the session id.
    Setup(SetupArgs),
    /// Remove a session's module from every Weft node on the path.
    Remove(RemoveArgs),
    /// Ask every Weft node on the path for facts.
    Probe(ProbeArgs),
    /// Have the last Weft node toward CLIENT start a SETUP (with --module)
    /// or PROBE back toward this host: install at the client's edge.
    Trigger(TriggerArgs),
    /// Sessions a node holds, with their remaining lifetime, and the
    /// upstream peers it recorded.
    Ls(NodeArg),
}

/// What every request takes.
#[derive(Debug, Args)]
pub struct Common {
    /// The destination (the flow's): the request travels toward it.
    #[arg(long, value_name = "ADDRESS")]
    to: IpAddr,
    /// Secret key to sign with (`weft keygen`); default `$WEFT_KEY`.
    #[arg(long, env = "WEFT_KEY", value_name = "FILE")]
    key: PathBuf,
    /// How long to wait for the response stack, s.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
    /// Print the answer as JSON.
    #[arg(long)]
    json: bool,
}

/// The module and where it goes (SETUP, and TRIGGER of a SETUP).
#[derive(Debug, Args)]
pub struct ModuleArgs {
    /// NAME or NAME@VERSION (the code server's latest without a version).
    #[arg(long, value_name = "NAME[@VERSION]")]
    module: Option<String>,
    /// The code server (one the nodes fetch from: their `[plugins] repos`).
    #[arg(long = "from", value_name = "URL")]
    from: Option<String>,
    /// The module's sha256 (default: asked of the code server).
    #[arg(long)]
    sha256: Option<String>,
    /// The traffic it sees: PROTO[:PORT[-PORT]][:PREFIX] (udp:5060,
    /// tcp:80:10.1.0.0/16, udp:*:10.1.0.0/16).
    #[arg(long, value_name = "PROTO:PORTS[:PREFIX]")]
    filter: Option<String>,
    /// A port its server module serves (tcp:8080); makes it a server module.
    #[arg(long = "server-port", value_name = "PROTO:PORT")]
    server_ports: Vec<String>,
    /// Lifetime, s: it is removed unless refreshed.
    #[arg(long, default_value_t = 3600)]
    ttl: u32,
    /// A module that must be present on a node for it to install there.
    #[arg(long = "depends", value_name = "NAME")]
    dependencies: Vec<String>,
    /// The instance's configuration.
    #[arg(long, default_value = "")]
    config: String,
}

/// `weft signal setup`
#[derive(Debug, Args)]
pub struct SetupArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    module: ModuleArgs,
    /// The session (32 hex digits; default: a new one). The same session
    /// again refreshes.
    #[arg(long)]
    session: Option<SessionId>,
    /// Stay and refresh every third of the lifetime until interrupted,
    /// then remove.
    #[arg(long)]
    keep: bool,
}

/// `weft signal remove`
#[derive(Debug, Args)]
pub struct RemoveArgs {
    #[command(flatten)]
    common: Common,
    /// The session to remove.
    #[arg(long)]
    session: SessionId,
}

/// `weft signal probe`
#[derive(Debug, Args)]
pub struct ProbeArgs {
    #[command(flatten)]
    common: Common,
    /// Facts: modules, capabilities, resources (comma-separated; default all).
    #[arg(long, value_delimiter = ',')]
    what: Vec<String>,
}

/// `weft signal trigger`
#[derive(Debug, Args)]
pub struct TriggerArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    module: ModuleArgs,
    /// With no --module: the facts the PROBE asks for.
    #[arg(long, value_delimiter = ',')]
    what: Vec<String>,
    /// The session (default: a new one).
    #[arg(long)]
    session: Option<SessionId>,
}

/// Run `weft signal …`.
pub async fn run(cmd: SignalCmd) -> Result<()> {
    match cmd {
        SignalCmd::Ls(n) => ls(n).await,
        cmd => tokio::task::spawn_blocking(move || request(cmd))
            .await
            .map_err(|e| anyhow!("{e}"))?,
    }
}

fn new_session() -> SessionId {
    let mut b = [0u8; 16];
    let _ = getrandom::fill(&mut b);
    SessionId(b)
}

fn probe_what(what: &[String]) -> Result<Probe> {
    if what.is_empty() {
        return Ok(Probe::ALL);
    }
    let mut p = 0;
    for w in what {
        p |= match w.trim() {
            "modules" => Probe::MODULES,
            "capabilities" => Probe::CAPABILITIES,
            "resources" => Probe::RESOURCES,
            "all" => Probe::ALL.0,
            o => bail!("unknown fact {o:?}: modules, capabilities, resources or all"),
        };
    }
    Ok(Probe(p))
}

/// `udp:5060`, `tcp:80-89:10.1.0.0/16`, `udp:*:10.1.0.0/16`, `any`.
fn parse_filter(s: &str) -> Result<Filter> {
    let bad =
        || anyhow!("bad --filter {s:?}: expected PROTO[:PORT[-PORT]][:PREFIX], e.g. udp:5060 or tcp:80:10.1.0.0/16");
    let mut parts = s.splitn(3, ':');
    let proto = match parts.next().unwrap_or("") {
        "any" => None,
        "udp" => Some(17),
        "tcp" => Some(6),
        p => Some(p.parse::<u8>().map_err(|_| bad())?),
    };
    let dports = match parts.next() {
        None | Some("*") | Some("") => Filter::ANY_PORTS,
        Some(p) => {
            let (a, b) = match p.split_once('-') {
                Some((a, b)) => (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?),
                None => {
                    let x: u16 = p.parse().map_err(|_| bad())?;
                    (x, x)
                }
            };
            if a > b {
                return Err(bad());
            }
            (a, b)
        }
    };
    if dports != Filter::ANY_PORTS && !matches!(proto, Some(6) | Some(17)) {
        bail!("--filter {s:?}: ports need udp or tcp");
    }
    let dst = match parts.next() {
        None => None,
        Some(p) => Some(p.parse::<ipnet::IpNet>().map_err(|_| bad())?.trunc()),
    };
    Ok(Filter { proto, dports, dst })
}

/// The module's sha256 and version: as given, or from the code server's
/// manifest of NAME (latest) or NAME/VERSION.
fn resolve_module(m: &ModuleArgs) -> Result<(Module, Code)> {
    let spec = m
        .module
        .as_deref()
        .ok_or_else(|| anyhow!("give --module NAME[@VERSION]"))?;
    let url = m
        .from
        .clone()
        .ok_or_else(|| anyhow!("give --from URL (the code server)"))?;
    let (name, version) = match spec.split_once('@') {
        Some((n, v)) => (n.to_string(), Some(v.to_string())),
        None => (spec.to_string(), None),
    };
    if !weft_signal::wire::valid_name(&name) {
        bail!("bad module name {name:?}: use 1-64 of a-z 0-9 _ - .");
    }
    let kind = if m.server_ports.is_empty() {
        ModuleKind::Packet
    } else {
        ModuleKind::Server
    };
    let (sha, version) = match (&m.sha256, version) {
        (Some(h), Some(v)) => (h.clone(), v),
        (sha, version) => {
            let base = weft_repo::fetch::BaseUrl::parse(&url).map_err(|e| anyhow!("{e}"))?;
            let path = match &version {
                Some(v) => format!("/v1/plugins/{name}/{v}/manifest"),
                None => format!("/v1/plugins/{name}/manifest"),
            };
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let bytes = rt
                .block_on(weft_repo::fetch::get(&base, &path, weft_repo::fetch::MAX_MANIFEST))
                .with_context(|| format!("asking {url} for {name}'s manifest"))?
                .ok_or_else(|| anyhow!("{url} has no module {spec}"))?;
            let man = weft_repo::Manifest::parse(&bytes).map_err(|e| anyhow!("{url}: {e}"))?;
            if let Some(h) = sha {
                if !man.sha256.starts_with(&h.to_ascii_lowercase()) {
                    bail!("{url} has {name} {} with sha256 {}, not {h}", man.version, man.sha256);
                }
            }
            (man.sha256, version.unwrap_or(man.version))
        }
    };
    let sha256 = weft_repo::from_hex::<32>(&sha).ok_or_else(|| anyhow!("--sha256: expected 64 hex digits"))?;
    Ok((Module { kind, name, version }, Code { url, sha256 }))
}

fn setup_request(m: &ModuleArgs, session: SessionId, to: IpAddr) -> Result<Request> {
    let (module, code) = resolve_module(m)?;
    let mut r = Request::new(Kind::Setup, session, to);
    r.filter = match (&m.filter, module.kind) {
        (Some(f), ModuleKind::Packet) => Some(parse_filter(f)?),
        (None, ModuleKind::Packet) => bail!("a packet module needs --filter PROTO:PORTS[:PREFIX]"),
        (Some(_), ModuleKind::Server) => bail!("a server module (--server-port) takes no --filter"),
        (None, ModuleKind::Server) => None,
    };
    r.server_ports = m
        .server_ports
        .iter()
        .map(|s| {
            let p: weft_control::auth::PortRule = s.parse().map_err(|e: String| anyhow!(e))?;
            if p.ports.0 != p.ports.1 {
                bail!("--server-port {s}: one port, not a range");
            }
            Ok(ServerPort {
                proto: p.proto,
                port: p.ports.0,
            })
        })
        .collect::<Result<_>>()?;
    r.module = Some(module);
    r.code = Some(code);
    r.lifetime_s = Some(m.ttl);
    r.dependencies = m.dependencies.clone();
    r.config = m.config.clone();
    Ok(r)
}

fn load_key(c: &Common) -> Result<KeySigner> {
    Ok(KeySigner(
        weft_repo::SecretKey::read_file(&c.key).with_context(|| format!("--key {}", c.key.display()))?,
    ))
}

/// Sign, send, wait, print; Err when no answer came or a node refused.
fn request(cmd: SignalCmd) -> Result<()> {
    // The request, and for a TRIGGER the request it carries (signed below).
    let (common, mut req, inner, keep) = match &cmd {
        SignalCmd::Setup(a) => {
            let s = a.session.unwrap_or_else(new_session);
            (&a.common, setup_request(&a.module, s, a.common.to)?, None, a.keep)
        }
        SignalCmd::Remove(a) => (
            &a.common,
            Request::new(Kind::Remove, a.session, a.common.to),
            None,
            false,
        ),
        SignalCmd::Probe(a) => {
            let mut r = Request::new(Kind::Probe, new_session(), a.common.to);
            r.probe = Some(probe_what(&a.what)?);
            (&a.common, r, None, false)
        }
        SignalCmd::Trigger(a) => {
            let s = a.session.unwrap_or_else(new_session);
            // The inner request travels back toward this host.
            let back = weft_io::router_alert::source_toward(a.common.to).context("route toward --to")?;
            let inner = if a.module.module.is_some() {
                setup_request(&a.module, s, back)?
            } else {
                let mut r = Request::new(Kind::Probe, s, back);
                r.probe = Some(probe_what(&a.what)?);
                r
            };
            (
                &a.common,
                Request::new(Kind::Trigger, s, a.common.to),
                Some(inner),
                false,
            )
        }
        SignalCmd::Ls(_) => unreachable!("ls talks to a node"),
    };
    let key = load_key(common)?;
    let mut r = Requester::new(common.to)?;
    if let Some(inner) = inner {
        req.inner = Some(Box::new(r.sign(inner, &key)?));
    }
    let session = req.session;
    let kind = req.kind;
    let signed = r.sign(req, &key)?;
    let nonce = signed.request().nonce;
    r.send(signed)?;
    let timeout = Duration::from_secs_f64(common.timeout.max(0.1));
    let answer = r
        .wait(nonce, timeout)?
        .ok_or_else(|| anyhow!("no answer within {:.0} s", common.timeout))?;
    print_answer(kind, session, &answer, common.json)?;
    let refused = answer.stack.iter().filter(|e| !e.is_ok()).count();
    if keep && kind == Kind::Setup {
        let every = Duration::from_secs((u64::from(answer_ttl(&cmd)) / 3).max(1));
        eprintln!("refreshing every {} s; interrupt to remove", every.as_secs());
        r.keep_refreshed(session, every, Box::new(load_key(common)?))?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = stop.clone();
        let _ = ctrlc_flag(s2);
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            r.run_until(std::time::Instant::now() + Duration::from_millis(200))?;
        }
        let rm = r.sign(Request::new(Kind::Remove, session, common.to), &key)?;
        let n = rm.request().nonce;
        r.send(rm)?;
        if let Some(a) = r.wait(n, timeout)? {
            print_answer(Kind::Remove, session, &a, common.json)?;
        }
        return Ok(());
    }
    if answer.stack.is_empty() {
        bail!("no Weft node on the path toward {} answered", common.to);
    }
    if refused > 0 {
        bail!("refused at {refused} of {} nodes", answer.stack.len());
    }
    Ok(())
}

fn answer_ttl(cmd: &SignalCmd) -> u32 {
    match cmd {
        SignalCmd::Setup(a) => a.module.ttl,
        _ => 0,
    }
}

/// Set `flag` on SIGINT/SIGTERM (a thread with its own runtime watches).
fn ctrlc_flag(flag: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Result<()> {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return;
        };
        rt.block_on(async {
            let _ = tokio::signal::ctrl_c().await;
        });
        flag.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    Ok(())
}

fn ms(us: u32) -> String {
    format!("{:.1}", f64::from(us) / 1000.0)
}

/// The detail column of an entry: its text, instance and timing; for a
/// PROBE, its facts.
fn detail(e: &Entry) -> String {
    let mut parts = Vec::new();
    if !e.text.is_empty() {
        parts.push(e.text.clone());
    }
    if let Some(i) = e.instance {
        parts.push(format!("instance #{i}"));
    }
    if let Some(t) = &e.timing {
        parts.push(format!(
            "fetch {} ms, verify {} ms, compile {} ms, instantiate {} ms",
            ms(t.fetch_us),
            ms(t.verify_us),
            ms(t.compile_us),
            ms(t.instantiate_us)
        ));
    }
    let mine: Vec<String> = e
        .modules
        .iter()
        .filter(|m| m.kind.is_some())
        .map(|m| match m.remaining_s {
            Some(s) => format!("{}@{} ({s} s left)", m.name, m.version),
            None => format!("{}@{}", m.name, m.version),
        })
        .collect();
    if !mine.is_empty() {
        parts.push(format!("yours: {}", mine.join(", ")));
    }
    let classes: Vec<&str> = e
        .modules
        .iter()
        .filter(|m| m.kind.is_none())
        .map(|m| m.name.as_str())
        .collect();
    if !classes.is_empty() {
        parts.push(format!("classes: {}", classes.join(" ")));
    }
    if !e.capabilities.is_empty() {
        parts.push(format!("can: {}", e.capabilities.join(" ")));
    }
    for r in &e.resources {
        parts.push(format!("{} {}/{} free", r.name, r.free, r.total));
    }
    parts.join("; ")
}

/// A response stack as a table, node by node in path order (what `weft
/// signal probe|setup|…` prints; the demo prints the same).
pub(crate) fn stack_table(stack: &[Entry]) -> String {
    let rows: Vec<Vec<String>> = stack
        .iter()
        .enumerate()
        .map(|(i, e)| {
            vec![
                (i + 1).to_string(),
                if e.node.is_empty() { "?".into() } else { e.node.clone() },
                e.address.map(|x| x.to_string()).unwrap_or_default(),
                e.reason.to_string(),
                detail(e),
            ]
        })
        .collect();
    table(&["#", "node", "address", "status", "detail"], &rows)
}

fn print_answer(kind: Kind, session: SessionId, a: &Answer, json: bool) -> Result<()> {
    if json {
        let v = serde_json::json!({
            "kind": kind,
            "session": session,
            "flags": a.flags,
            "elapsed_ms": a.elapsed.as_secs_f64() * 1e3,
            "stack": a.stack,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    print!("{}", stack_table(&a.stack));
    let end = if a.flags & ResponseMsg::END_DESTINATION != 0 {
        "the destination"
    } else if a.flags & ResponseMsg::END_HOPS != 0 {
        "the hop limit"
    } else if a.flags & ResponseMsg::END_TIMEOUT != 0 {
        "no Weft node beyond the last"
    } else {
        "a node downstream"
    };
    println!(
        "{} session {session}: {} node(s) answered in {:.1} ms; the path ended at {end}{}",
        kind.as_str(),
        a.stack.len(),
        a.elapsed.as_secs_f64() * 1e3,
        if a.flags & ResponseMsg::TRUNCATED != 0 {
            " (some facts were cut to fit)"
        } else {
            ""
        }
    );
    Ok(())
}

async fn ls(n: NodeArg) -> Result<()> {
    let c = client(n.node)?;
    let v: SignalView = c.get("/v1/signal").await?;
    let rows: Vec<Vec<String>> = v
        .sessions
        .iter()
        .map(|s| {
            vec![
                s.session.to_string(),
                s.owner.clone(),
                format!("{}@{}", s.module.name, s.module.version),
                s.filter.map(|f| f.to_string()).unwrap_or_else(|| "-".into()),
                format!("{:?}", s.state).to_lowercase(),
                s.instance.map(|i| format!("#{i}")).unwrap_or_else(|| "-".into()),
                format!("{}/{} s", s.remaining_ns / 1_000_000_000, s.lifetime_s),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &["session", "owner", "module", "filter", "state", "instance", "left"],
            &rows
        )
    );
    if !v.peers.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = v
            .peers
            .iter()
            .map(|p| {
                vec![
                    p.session.to_string(),
                    p.origin.to_string(),
                    p.dest.to_string(),
                    p.upstream.to_string(),
                    format!("{} s", p.remaining_ns / 1_000_000_000),
                ]
            })
            .collect();
        print!("{}", table(&["session", "origin", "dest", "upstream", "left"], &rows));
    }
    // The agent's non-zero counters: what arrived, what was refused and why.
    if let Some(m) = v.counters.get("agent").and_then(|a| a.as_object()) {
        let nz: Vec<String> = m
            .iter()
            .filter(|(_, n)| n.as_u64().is_some_and(|n| n > 0))
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        if !nz.is_empty() {
            println!("\ncounters: {}", nz.join(", "));
        }
    }
    Ok(())
}
