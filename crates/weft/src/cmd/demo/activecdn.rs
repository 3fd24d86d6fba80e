//! The demo's ActiveCDN scene (NetServ §6, `docs/server-modules.md`): a
//! provider deploys the `activecdn` server module toward its user with one
//! SETUP, through two Weft nodes and a plain router:
//!
//! ```text
//! user (10.0.1.2) — r1 (Weft, the edge) — x (plain router) — r2 (Weft) — provider (10.0.2.2)
//! ```
//!
//! PROBE's response stack names the Weft nodes in path order (x is not on
//! it); the user's first fetch goes through the edge to the origin, the
//! second is served from the edge's cache (the origin's count unchanged,
//! `x-cache: HIT`, the provider's `x-provider` header on both); the
//! module's lifetime runs out in virtual time and it is gone (no session
//! left, the port closed).
//!
//! **Where each part runs.** Signaling (PROBE, SETUP, lifetimes, expiry)
//! goes through the emulated network in virtual time, exactly as in
//! `crates/weft/tests/signal_emu.rs`. The emulated nodes have no TCP stack,
//! so the HTTP legs run over real loopback TCP on this machine: each node's
//! signaling daemon hosts server modules through
//! [`weft_control::signal::EmulatedServers`], which serves a module on
//! 127.0.0.1 at an ephemeral port (the edge's is printed) in place of the
//! node's address and SETUP port, and lets the module reach its `origin=`
//! on loopback —
//! an allowance only code can give (a node's configuration cannot: a
//! running node always refuses loopback to its modules). The origin is a
//! small web server the scene starts on 127.0.0.1 and counts the requests
//! of (the origin's log); the user fetches with a plain HTTP client. The
//! start (fetch, verify, compile) takes wall-clock time and no virtual
//! time. Skipped with a note when the plugins cannot be built here.

use super::{say, Scratch};
use crate::cmd::common::table;
use anyhow::{anyhow, bail, Context, Result};
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weft_control::auth::{Credential, Limits, Policy, PortRule, Principal, Right};
use weft_control::signal::host::KeySigner;
use weft_control::signal::{EmulatedServers, SignalConfig};
use weft_emu::{Emulator, SignalAnswer, SignalSetup};
use weft_repo::server::RepoServer;
use weft_repo::{store, Loader, LoaderConfig, SecretKey};
use weft_signal::{Entry, Kind, Module, ModuleKind, Probe, Request, ServerPort, SessionId, Signed, SECOND};

const TOPOLOGY: &str = r#"
routing = "shortest-path"
seed = 16

[[node]]
name = "r1"

[[node]]
name = "x"
kind = "linux"

[[node]]
name = "r2"

[[host]]
name = "user"
addr = "10.0.1.2/24"

[[host]]
name = "provider"
addr = "10.0.2.2/24"

[[link]]
a = "user"
b = "r1:eth0"
b_addr = ["10.0.1.1/24"]
delay_ms = 1.0

[[link]]
a = "r1:eth1"
b = "x:eth0"
a_addr = ["10.0.11.1/24"]
b_addr = ["10.0.11.2/24"]
delay_ms = 5.0

[[link]]
a = "x:eth1"
b = "r2:eth0"
a_addr = ["10.0.22.2/24"]
b_addr = ["10.0.22.1/24"]
delay_ms = 5.0

[[link]]
a = "r2:eth1"
b = "provider"
a_addr = ["10.0.2.1/24"]
delay_ms = 1.0
"#;

const USER: &str = "10.0.1.2";
/// The module's lifetime, s of virtual time.
const TTL: u32 = 20;
const OBJECT: &str = "/static/a.txt";
const BODY: &str = "cached object\n";

/// The scene's runtime: origin, modules and the user's client run on it
/// while the emulator's thread waits. Shut down without waiting (the demo
/// runs inside the command's own runtime, where dropping one would panic).
struct Rt(Option<tokio::runtime::Runtime>);

impl Rt {
    fn handle(&self) -> tokio::runtime::Handle {
        self.0.as_ref().expect("running").handle().clone()
    }

    /// Run `f` on the runtime and wait for it here.
    fn wait<T: Send + 'static>(&self, f: impl std::future::Future<Output = T> + Send + 'static) -> Result<T> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.handle().spawn(async move {
            let _ = tx.send(f.await);
        });
        rx.recv_timeout(Duration::from_secs(30))
            .map_err(|_| anyhow!("no answer within 30 s"))
    }
}

impl Drop for Rt {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// The provider's web server: `OBJECT` fresh for 300 s; every request
/// counted and logged.
struct Origin {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    log: Arc<Mutex<Vec<String>>>,
}

fn origin(rt: &Rt) -> Result<Origin> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    l.set_nonblocking(true)?;
    let addr = l.local_addr()?;
    let hits = Arc::new(AtomicUsize::new(0));
    let log = Arc::new(Mutex::new(Vec::new()));
    let (h, lg) = (hits.clone(), log.clone());
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let (h, lg) = (h.clone(), lg.clone());
        async move {
            h.fetch_add(1, Ordering::SeqCst);
            if let Ok(mut l) = lg.lock() {
                l.push(format!("{} {}", req.method(), req.uri()));
            }
            if req.uri().path() == OBJECT {
                (
                    axum::http::StatusCode::OK,
                    [("cache-control", "max-age=300"), ("content-type", "text/plain")],
                    BODY,
                )
            } else {
                (
                    axum::http::StatusCode::NOT_FOUND,
                    [("cache-control", "no-store"), ("content-type", "text/plain")],
                    "not here\n",
                )
            }
        }
    });
    rt.handle().spawn(async move {
        if let Ok(l) = tokio::net::TcpListener::from_std(l) {
            let _ = axum::serve(l, app).await;
        }
    });
    Ok(Origin { addr, hits, log })
}

/// What the user's client got.
struct Fetched {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Fetched {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map_or("-", |(_, v)| v.as_str())
    }
}

/// `GET path` from `to` over a fresh HTTP/1.1 connection.
async fn get(to: SocketAddr, path: &'static str) -> Result<Fetched> {
    use http_body_util::BodyExt;
    let stream = tokio::net::TcpStream::connect(to).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = hyper::Request::get(path)
        .header("host", to.to_string())
        .body(http_body_util::Empty::<hyper::body::Bytes>::new())?;
    let res = sender.send_request(req).await?;
    let status = res.status().as_u16();
    let headers = res
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let body = res.into_body().collect().await?.to_bytes();
    Ok(Fetched {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn provider_key() -> SecretKey {
    SecretKey::from_seed([0x16; 32])
}

/// The nodes' one principal: the provider may signal, run `activecdn` and
/// serve TCP 8080 for its users' network.
fn policy() -> Result<Arc<Policy>> {
    let p = Principal {
        name: "provider".into(),
        rights: BTreeSet::from([Right::Signal]),
        prefixes: Some(vec!["10.0.1.0/24".parse()?]),
        classes: Some(vec!["activecdn".into()]),
        signers: Vec::new(),
        server_ports: vec!["tcp:8080".parse::<PortRule>().map_err(|e| anyhow!(e))?],
        limits: Limits::default(),
        reverse_path: false,
    };
    let policy = Policy::new(vec![(p, vec![Credential::Key(provider_key().public())])]).map_err(|e| anyhow!(e))?;
    Ok(Arc::new(policy))
}

/// Send `r` from the provider, signed, and wait (virtual time) for its answer.
fn ask(emu: &mut Emulator, r: Request) -> Result<SignalAnswer> {
    let s: Signed = emu.signal_sign("provider", r, &KeySigner(provider_key()))?;
    let n = emu.signal_send("provider", s)?;
    emu.run_until_answer("provider", n, 60 * SECOND)
        .ok_or_else(|| anyhow!("no answer to the provider's request"))
}

fn print_stack(stack: &[Entry]) {
    for l in crate::cmd::signal::stack_table(stack).lines() {
        println!("    {l}");
    }
}

fn nodes(stack: &[Entry]) -> Vec<&str> {
    stack.iter().map(|e| e.node.as_str()).collect()
}

/// `weft signal ls` on `node`: its sessions.
fn signal_ls(emu: &Emulator, node: &str) -> usize {
    super::cmd(node, "signal ls");
    let Some(d) = emu.signal(node) else { return 0 };
    let rows: Vec<Vec<String>> = d
        .sessions(emu.now_ns())
        .iter()
        .map(|s| {
            vec![
                s.session.to_string(),
                s.owner.clone(),
                format!("{}@{}", s.module.name, s.module.version),
                format!("{:?}", s.state).to_lowercase(),
                d.server_listening(s.session)
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(" "),
                format!("{}/{} s", s.remaining_ns / SECOND, s.lifetime_s),
            ]
        })
        .collect();
    if rows.is_empty() {
        println!("    (no sessions)");
    } else {
        for l in table(&["session", "owner", "module", "state", "serving on", "left"], &rows).lines() {
            println!("    {l}");
        }
    }
    rows.len()
}

fn show_fetch(n: usize, edge: SocketAddr, f: &Fetched, origin: &Origin) {
    println!("  user$ curl -i http://{edge}{OBJECT}   # fetch {n}");
    println!(
        "    {} · x-cache: {} · x-provider: {} · body {:?} · the origin's log: {} request(s)",
        f.status,
        f.header("x-cache"),
        f.header("x-provider"),
        f.body,
        origin.hits.load(Ordering::SeqCst)
    );
}

/// Run the scene on its own emulator.
pub(super) fn run() -> Result<()> {
    say("\n12. ActiveCDN (NetServ §6): a provider deploys a caching proxy toward its user with one SETUP.");
    say("    user (10.0.1.2) — r1 (Weft, the edge) — x (plain router) — r2 (Weft) — provider (10.0.2.2)");
    say("    Signaling crosses the emulated network in virtual time; the HTTP legs (user → edge, edge → origin)");
    say("    run over loopback TCP on this machine (emulated nodes have no TCP stack): r1's module listens on");
    say("    127.0.0.1 at a port of its own in place of 10.0.1.1:8080, and the origin is a web server on 127.0.0.1.");
    let wasm = match weft_wasm::plugins::read("activecdn") {
        Ok(b) => b,
        Err(e) => {
            say(&format!("  (skipped: the plugins cannot be built here: {e})"));
            return Ok(());
        }
    };
    let rt = Rt(Some(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?,
    ));
    let origin = origin(&rt)?;
    println!(
        "  the provider's origin: http://{} ({OBJECT}: Cache-Control max-age=300)",
        origin.addr
    );

    // The code server with the provider's signed module.
    let scratch = Scratch(std::env::temp_dir().join(format!("weft-demo-cdn-{}", std::process::id())));
    let repo = scratch.0.join("repo");
    let key = provider_key();
    let man = store::publish(&repo, &wasm, "activecdn", Some("1"), &key)?;
    let code = RepoServer::spawn(repo, "127.0.0.1:0".parse()?)?;
    println!(
        "  code server {}: activecdn 1, sha256 {}…, signed by the provider (r1 and r2 trust its key)",
        code.url(),
        &man.sha256[..16]
    );
    let loader = Loader::new(
        LoaderConfig {
            trusted_keys: vec![key.public()],
            repos: vec![code.url()],
            cache_dir: None,
        },
        weft_wasm::WasmHost::new(weft_wasm::HostConfig::default())?,
    );

    let mut emu = Emulator::from_str(TOPOLOGY, ".").context("the ActiveCDN topology")?;
    let policy = policy()?;
    let config = SignalConfig::default();
    // One machine's host of server modules for both nodes: ActiveCDN
    // compiles once (each node still fetches and verifies it).
    let servers = EmulatedServers::new(
        weft_servers::ServerHost::new()?,
        loader,
        rt.handle(),
        config.server_bounds(),
        IpAddr::from([127, 0, 0, 1]),
        Duration::from_secs(300),
    )
    .map_err(|e| anyhow!(e))?;
    for (n, servers) in [("r1", servers.sibling()), ("r2", servers)] {
        emu.enable_signal(
            n,
            SignalSetup {
                config: config.clone(),
                policy: policy.clone(),
                repos: vec![code.url()],
                fetcher: None,
                memory_per_instance_mib: 16,
            },
        )?;
        emu.signal_set_servers(n, Box::new(servers))?;
    }
    emu.enable_requester("provider")?;
    emu.enable_requester("user")?;
    let user: IpAddr = USER.parse()?;

    // PROBE: which Weft nodes are on the way to the user, and what they offer.
    super::cmd("provider", &format!("signal probe --to {USER}"));
    let mut probe = Request::new(Kind::Probe, SessionId([0x16; 16]), user);
    probe.probe = Some(Probe::ALL);
    let p = ask(&mut emu, probe)?;
    print_stack(&p.stack);
    if nodes(&p.stack) != ["r2", "r1"] {
        bail!("PROBE's stack is {:?}, not the Weft nodes r2, r1", nodes(&p.stack));
    }

    // SETUP toward the user.
    let session = SessionId([0xcd; 16]);
    let config = format!("origin={}; header=x-provider: acme", origin.addr);
    super::cmd(
        "provider",
        &format!(
            "signal setup --to {USER} --module activecdn@1 --from {} --server-port tcp:8080 --config '{config}' --ttl {TTL}",
            code.url()
        ),
    );
    let mut setup = Request::new(Kind::Setup, session, user);
    setup.module = Some(Module {
        kind: ModuleKind::Server,
        name: "activecdn".into(),
        version: "1".into(),
    });
    setup.code = Some(weft_signal::Code {
        url: code.url(),
        sha256: weft_repo::from_hex::<32>(&man.sha256).ok_or_else(|| anyhow!("bad sha256"))?,
    });
    setup.server_ports = vec![ServerPort { proto: 6, port: 8080 }];
    setup.config = config;
    setup.lifetime_s = Some(TTL);
    let wall = std::time::Instant::now();
    let a = ask(&mut emu, setup)?;
    print_stack(&a.stack);
    println!(
        "  the SETUP took {:.1} ms of virtual time (the links' delay; starting a module takes none), {:.1} s of wall-clock time",
        a.elapsed_ns as f64 / 1e6,
        wall.elapsed().as_secs_f64()
    );
    if a.stack.iter().any(|e| e.reason != weft_signal::Reason::Ok) || nodes(&a.stack).last() != Some(&"r1") {
        bail!("the SETUP was not installed at the edge: {:?}", a.stack);
    }
    let edge = emu
        .signal("r1")
        .and_then(|d| d.server_listening(session).first().copied())
        .ok_or_else(|| anyhow!("r1 serves nothing"))?;
    println!(
        "  The provider sends its users to the last node of the stack, r1 (NetServ's redirection); \
         here its 10.0.1.1:8080 is http://{edge}"
    );
    signal_ls(&emu, "r1");

    // Two fetches: the origin's count moves on the first only.
    let first = rt.wait(get(edge, OBJECT))??;
    show_fetch(1, edge, &first, &origin);
    let after_first = origin.hits.load(Ordering::SeqCst);
    let second = rt.wait(get(edge, OBJECT))??;
    show_fetch(2, edge, &second, &origin);
    let after_second = origin.hits.load(Ordering::SeqCst);
    println!(
        "  the origin's log: {:?}",
        origin.log.lock().map(|l| l.clone()).unwrap_or_default()
    );
    if after_second == after_first && second.header("x-cache") == "HIT" {
        say("  The second fetch was served from the edge: the origin's log did not grow.");
    }
    if first.status != 200 || first.body != BODY || after_first != 1 {
        bail!(
            "the first fetch: {} {:?}, the origin saw {after_first} request(s)",
            first.status,
            first.body
        );
    }
    if second.status != 200 || second.body != BODY || after_second != after_first || second.header("x-cache") != "HIT" {
        bail!(
            "the second fetch was not served from the edge: {} x-cache {}, the origin saw {after_second} request(s)",
            second.status,
            second.header("x-cache")
        );
    }

    // Nobody refreshes: the lifetime runs out in virtual time.
    let t0 = emu.now_ns();
    emu.run_for(Duration::from_secs(u64::from(TTL) + 1));
    say(&format!(
        "  No refresh comes; {:.0} s of virtual time later the lifetime has run out:",
        (emu.now_ns() - t0) as f64 / 1e9
    ));
    let left = signal_ls(&emu, "r1") + emu.signal("r2").map_or(0, |d| d.sessions(emu.now_ns()).len());
    // The expiry stopped the module; its listener closes on the scene's
    // runtime, in wall-clock time: give it up to a second.
    for _ in 0..20 {
        if std::net::TcpStream::connect_timeout(&edge, Duration::from_millis(100)).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let third = rt.wait(get(edge, OBJECT))?;
    println!("  user$ curl -i http://{edge}{OBJECT}   # fetch 3");
    match &third {
        Ok(f) => println!("    {} · x-cache: {} (still served!)", f.status, f.header("x-cache")),
        Err(e) => println!("    curl: {e} — the module and its port are gone"),
    }
    let expired: u64 = ["r1", "r2"]
        .iter()
        .filter_map(|n| emu.signal(n))
        .map(|d| d.agent().counters().expired)
        .sum();
    println!("  sessions expired on r1 and r2: {expired}");
    if left != 0 || third.is_ok() || expired != a.stack.len() as u64 {
        bail!(
            "the module did not expire: {left} session(s) left, third fetch ok: {}",
            third.is_ok()
        );
    }
    drop(emu);
    drop(code);
    Ok(())
}
