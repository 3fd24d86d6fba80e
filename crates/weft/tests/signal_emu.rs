//! On-path signaling in the emulator's virtual time, with real nodes, a
//! real plugin fetched from a code server through the verifying loader,
//! and a plain router in the middle:
//!
//! ```text
//! client (10.0.1.2) — r1 (Weft) — x (plain router) — r2 (Weft) — server (10.0.2.2)
//! ```
//!
//! The provider signals from the server toward its client. PROBE, SETUP
//! (the `counter` plugin as `wcounter`), REMOVE, lifetime expiry, loss,
//! a node restarting, TRIGGER, refusals over the wire; setup latency and
//! install times are printed (`cargo test -p weft --test signal_emu --
//! --nocapture`), never asserted.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use weft_control::auth::{Credential, Limits, Policy, Principal, Right};
use weft_control::signal::{BlockingFetcher, SignalConfig};
use weft_emu::{Emulator, SignalAnswer, SignalSetup};
use weft_repo::server::RepoServer;
use weft_repo::{store, Loader, LoaderConfig, SecretKey};
use weft_signal::wire::ResponseMsg;
use weft_signal::{Code, Entry, Filter, Kind, Module, ModuleKind, Probe, Reason, Request, SessionId, Signed, SECOND};
use weft_wasm::{HostConfig, WasmHost};

const TOPOLOGY: &str = r#"
routing = "shortest-path"
seed = 7

[[node]]
name = "r1"

[[node]]
name = "x"
kind = "linux"

[[node]]
name = "r2"

[[host]]
name = "client"
addr = "10.0.1.2/24"

[[host]]
name = "server"
addr = "10.0.2.2/24"

[[link]]
a = "client"
b = "r1:eth0"
b_addr = ["10.0.1.1/24"]
delay_ms = 1.0

[[link]]
name = "r1-x"
a = "r1:eth1"
b = "x:eth0"
a_addr = ["10.0.11.1/24"]
b_addr = ["10.0.11.2/24"]
delay_ms = 5.0
LOSS

[[link]]
name = "x-r2"
a = "x:eth1"
b = "r2:eth0"
a_addr = ["10.0.22.2/24"]
b_addr = ["10.0.22.1/24"]
delay_ms = 5.0
LOSS

[[link]]
a = "r2:eth1"
b = "server"
a_addr = ["10.0.2.1/24"]
delay_ms = 1.0
"#;

const CLIENT: &str = "10.0.1.2";
const SERVER: &str = "10.0.2.2";
const LIMIT: u64 = 60 * SECOND;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The code server with `counter.wasm` published as `wcounter` 1, and
/// what the nodes need to fetch from it.
struct Code_ {
    dir: PathBuf,
    _server: RepoServer,
    url: String,
    sha256: [u8; 32],
    loader: Loader,
}

impl Drop for Code_ {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn code_server(tag: &str) -> Code_ {
    let plugins = weft_wasm::plugins::ensure_built().expect("plugins/build.sh builds the example plugins");
    let dir = std::env::temp_dir().join(format!("weft-test-signal-emu-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let repo = dir.join("repo");
    let key = SecretKey::generate().unwrap();
    let wasm = std::fs::read(plugins.join("counter.wasm")).unwrap();
    let man = store::publish(&repo, &wasm, "wcounter", Some("1"), &key).unwrap();
    let server = RepoServer::spawn(repo, "127.0.0.1:0".parse().unwrap()).unwrap();
    let url = server.url();
    let loader = Loader::new(
        LoaderConfig {
            trusted_keys: vec![key.public()],
            repos: vec![url.clone()],
            cache_dir: None,
        },
        WasmHost::new(HostConfig {
            epoch_ticks: 200,
            ..HostConfig::default()
        })
        .unwrap(),
    );
    Code_ {
        dir,
        _server: server,
        url,
        sha256: weft_repo::from_hex::<32>(&man.sha256).unwrap(),
        loader,
    }
}

fn provider_key() -> SecretKey {
    SecretKey::from_seed([0x51; 32])
}

fn stranger_key() -> SecretKey {
    SecretKey::from_seed([0x52; 32])
}

struct KeySigner(SecretKey);
impl weft_signal::Signer for KeySigner {
    fn public_key(&self) -> [u8; 32] {
        self.0.public().to_bytes()
    }
    fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.0.sign(msg)
    }
}

/// The nodes' one principal: the provider may signal, install `wcounter`,
/// and filter traffic toward its clients' network.
fn policy() -> Arc<Policy> {
    let p = Principal {
        name: "provider".into(),
        rights: BTreeSet::from([Right::Signal]),
        prefixes: Some(vec!["10.0.1.0/24".parse().unwrap()]),
        classes: Some(vec!["wcounter".into()]),
        signers: Vec::new(),
        server_ports: Vec::new(),
        limits: Limits::default(),
        reverse_path: false,
    };
    Arc::new(Policy::new(vec![(p, vec![Credential::Key(provider_key().public())])]).unwrap())
}

fn signal_setup(code: Option<&Code_>) -> SignalSetup {
    SignalSetup {
        config: SignalConfig::default(),
        policy: policy(),
        repos: code.map(|c| vec![c.url.clone()]).unwrap_or_default(),
        fetcher: code.map(|c| Box::new(BlockingFetcher::new(c.loader.clone())) as _),
        memory_per_instance_mib: 16,
    }
}

/// The network, signaling on r1 and r2, the server and client as
/// requesters; `loss` on the two links around the plain router.
fn net(code: Option<&Code_>, loss: f64) -> Emulator {
    let loss = if loss > 0.0 {
        format!("loss = {loss}")
    } else {
        String::new()
    };
    let mut emu = Emulator::from_str(&TOPOLOGY.replace("LOSS", &loss), ".").unwrap();
    for n in ["r1", "r2"] {
        emu.enable_signal(n, signal_setup(code)).unwrap();
    }
    emu.enable_requester("server").unwrap();
    emu.enable_requester("client").unwrap();
    emu
}

fn session(b: u8) -> SessionId {
    SessionId([b; 16])
}

fn probe(to: &str, s: SessionId) -> Request {
    let mut r = Request::new(Kind::Probe, s, ip(to));
    r.probe = Some(Probe::ALL);
    r
}

fn setup(code: &Code_, s: SessionId, lifetime_s: u32, prefix: &str) -> Request {
    let mut r = Request::new(Kind::Setup, s, ip(CLIENT));
    r.module = Some(Module {
        kind: ModuleKind::Packet,
        name: "wcounter".into(),
        version: "1".into(),
    });
    r.code = Some(Code {
        url: code.url.clone(),
        sha256: code.sha256,
    });
    r.filter = Some(Filter {
        proto: Some(17),
        dports: (7000, 7000),
        dst: Some(prefix.parse().unwrap()),
    });
    r.lifetime_s = Some(lifetime_s);
    r
}

fn remove(s: SessionId) -> Request {
    Request::new(Kind::Remove, s, ip(CLIENT))
}

fn sign(emu: &mut Emulator, host: &str, r: Request, key: SecretKey) -> Signed {
    emu.signal_sign(host, r, &KeySigner(key)).unwrap()
}

/// Send `r` from `host` signed by `key` and wait for its answer.
fn ask(emu: &mut Emulator, host: &str, r: Request, key: SecretKey) -> SignalAnswer {
    let s = sign(emu, host, r, key);
    let n = emu.signal_send(host, s).unwrap();
    emu.run_until_answer(host, n, LIMIT).expect("an answer")
}

fn names(stack: &[Entry]) -> Vec<String> {
    stack.iter().map(|e| e.node.clone()).collect()
}

fn reasons(stack: &[Entry]) -> Vec<(String, Reason)> {
    stack.iter().map(|e| (e.node.clone(), e.reason)).collect()
}

fn ok_at(nodes: &[&str]) -> Vec<(String, Reason)> {
    nodes.iter().map(|n| (n.to_string(), Reason::Ok)).collect()
}

/// Instances of `wcounter` on `node`, with their owners.
fn counters_on(emu: &Emulator, node: &str) -> Vec<String> {
    emu.node(node)
        .instances()
        .into_iter()
        .filter(|i| i.class == "wcounter")
        .map(|i| format!("{:?}", i.owner))
        .collect()
}

/// Datagrams the client got on port 7000.
fn got_7000(emu: &Emulator) -> usize {
    emu.host("client")
        .udp_received()
        .iter()
        .filter(|d| d.dport == 7000)
        .count()
}

fn filters_on(emu: &Emulator, node: &str) -> usize {
    emu.node(node).filters().iter().filter(|f| f.owner.is_some()).count()
}

/// Packets the first `wcounter` instance on `node` counted.
fn counted(emu: &Emulator, node: &str) -> u64 {
    let id = emu
        .node(node)
        .instances()
        .into_iter()
        .find(|i| i.class == "wcounter")
        .unwrap()
        .id;
    emu.node(node).report(id).unwrap()["element"]["plugin"]["packets"]
        .as_u64()
        .unwrap()
}

/// Let ARP settle so that latency figures are of signaling alone.
fn warm(emu: &mut Emulator) {
    emu.host_mut("server")
        .ping(ip(CLIENT), 1, Duration::from_millis(1))
        .unwrap();
    assert!(emu.run_until_idle(Duration::from_secs(5)));
}

#[test]
fn probe_returns_exactly_the_weft_nodes_in_path_order_and_the_plain_router_forwards_plain_udp() {
    let mut emu = net(None, 0.0);
    warm(&mut emu);
    emu.capture("x-r2").unwrap();
    emu.capture("r1-x").unwrap();
    let a = ask(&mut emu, "server", probe(CLIENT, session(1)), provider_key());
    assert_eq!(names(&a.stack), ["r2", "r1"], "{:?}", a.stack);
    assert_eq!(reasons(&a.stack), ok_at(&["r2", "r1"]));
    // Each says where it answered from (toward its upstream peer).
    assert_eq!(a.stack[0].address, Some(ip("10.0.2.1")));
    assert_eq!(a.stack[1].address, Some(ip("10.0.11.1")));
    assert!(a.stack.iter().all(|e| e.resources.iter().any(|r| r.name == "sessions")));
    // The other way round: path order again.
    let b = ask(&mut emu, "client", probe(SERVER, session(2)), provider_key());
    assert_eq!(names(&b.stack), ["r1", "r2"]);

    // The plain router x forwarded r2's request to r1 as it came: UDP to
    // port 270 toward the client, from r2's address, Router Alert still on
    // (the same frame on both of x's links, TTL one lower).
    let is_request = |f: &[u8]| {
        let ip = &f[14..];
        ip[0] == 0x46 && ip[9] == 17 && ip[20..24] == [148, 4, 0, 0] && ip[16..20] == [10, 0, 1, 2] && {
            let udp = &ip[24..];
            u16::from_be_bytes([udp[2], udp[3]]) == 270 && &udp[8..12] == b"WFSG"
        }
    };
    let into_x: Vec<&[u8]> = emu
        .captured("x-r2")
        .iter()
        .filter(|c| c.dir == 1 && is_request(&c.frame))
        .map(|c| c.frame.as_slice())
        .collect();
    let out_of_x: Vec<&[u8]> = emu
        .captured("r1-x")
        .iter()
        .filter(|c| c.dir == 1 && is_request(&c.frame))
        .map(|c| c.frame.as_slice())
        .collect();
    assert!(!into_x.is_empty(), "r2 sent the request on toward the client");
    assert_eq!(into_x.len(), out_of_x.len(), "x forwarded each one");
    for (i, o) in into_x.iter().zip(&out_of_x) {
        assert_eq!(i[14 + 12..14 + 16], [10, 0, 22, 1], "from r2's own address");
        assert_eq!(i[14 + 12..], o[14 + 12..], "unchanged past the TTL and checksum");
        assert_eq!(i[14 + 8] - 1, o[14 + 8], "one TTL lower");
    }
    // x runs no signaling: it never answered anything itself.
    assert!(emu.signal("x").is_none());
}

#[test]
fn setup_installs_a_fetched_plugin_at_each_weft_node_and_remove_takes_it_away() {
    let code = code_server("setup");
    let mut emu = net(Some(&code), 0.0);
    warm(&mut emu);
    let wall = std::time::Instant::now();
    let a = ask(
        &mut emu,
        "server",
        setup(&code, session(3), 3600, "10.0.1.0/24"),
        provider_key(),
    );
    let wall = wall.elapsed();
    assert_eq!(reasons(&a.stack), ok_at(&["r2", "r1"]), "{:?}", a.stack);
    // The client listens on port 270 (it is a requester too): the
    // destination answered, ending the flow.
    assert_eq!(a.flags & ResponseMsg::END_DESTINATION, ResponseMsg::END_DESTINATION);
    for (e, n) in a.stack.iter().zip(["r2", "r1"]) {
        let inst = e.instance.expect("the instance is named");
        let i = emu.node(n).instances().into_iter().find(|i| i.id.0 == inst).unwrap();
        assert_eq!(i.class, "wcounter");
        assert!(format!("{:?}", i.owner).contains("provider"), "{:?}", i.owner);
        assert_eq!(filters_on(&emu, n), 1);
        let t = e.timing.expect("install times");
        println!(
            "signal_emu: {n}: fetch {} µs, verify {} µs, compile {} µs, instantiate {} µs",
            t.fetch_us, t.verify_us, t.compile_us, t.instantiate_us
        );
    }
    println!(
        "signal_emu: SETUP through 2 Weft nodes and a plain router (links 1+5+5+1 ms one way): {:.1} ms virtual (the links' delay: processing takes no virtual time), {:.1} ms wall clock to run it, installs included",
        a.elapsed_ns as f64 / 1e6,
        wall.as_secs_f64() * 1e3
    );
    // The same again, a refresh (nothing to install): signaling alone.
    let wall = std::time::Instant::now();
    let b = ask(
        &mut emu,
        "server",
        setup(&code, session(3), 3600, "10.0.1.0/24"),
        provider_key(),
    );
    let wall = wall.elapsed().as_secs_f64() * 1e3;
    println!(
        "signal_emu: the refresh: {:.1} ms virtual, {wall:.2} ms wall clock ({:.2} ms per Weft hop)",
        b.elapsed_ns as f64 / 1e6,
        wall / 2.0
    );
    assert_eq!(reasons(&b.stack), ok_at(&["r2", "r1"]));
    for n in ["r1", "r2"] {
        assert_eq!(counters_on(&emu, n).len(), 1, "{n}: a refresh installs nothing more");
        assert_eq!(emu.signal(n).unwrap().agent().counters().refreshed, 1, "{n}");
    }
    // Traffic toward the client's network goes through the module on both.
    emu.host_mut("client").udp_bind(7000).unwrap();
    emu.host_mut("server")
        .udp_flow_count(ip(CLIENT), 7000, 1000.0, 64, 10)
        .unwrap();
    assert!(emu.run_until_idle(Duration::from_secs(5)));
    assert_eq!(got_7000(&emu), 10);
    assert_eq!(counted(&emu, "r1"), 10);
    assert_eq!(counted(&emu, "r2"), 10);
    // PROBE shows the provider's module with its lifetime left.
    let p = ask(&mut emu, "server", probe(CLIENT, session(3)), provider_key());
    for e in &p.stack {
        assert!(
            e.modules
                .iter()
                .any(|m| m.kind.is_some() && m.name == "wcounter" && m.remaining_s.unwrap() <= 3600),
            "{e:?}"
        );
    }

    // A stranger cannot remove it; its owner can.
    let r = ask(&mut emu, "server", remove(session(3)), stranger_key());
    assert!(r.stack.iter().all(|e| e.reason == Reason::NotOwner), "{:?}", r.stack);
    assert_eq!(counters_on(&emu, "r1").len(), 1);
    let r = ask(&mut emu, "server", remove(session(3)), provider_key());
    assert_eq!(reasons(&r.stack), ok_at(&["r2", "r1"]));
    for n in ["r1", "r2"] {
        assert!(counters_on(&emu, n).is_empty(), "{n}");
        assert_eq!(filters_on(&emu, n), 0, "{n}");
        assert!(emu.signal(n).unwrap().sessions(emu.now_ns()).is_empty());
    }
    // Gone from the data path too: more traffic is counted by nobody and
    // still arrives.
    emu.host_mut("server")
        .udp_flow_count(ip(CLIENT), 7000, 1000.0, 64, 5)
        .unwrap();
    assert!(emu.run_until_idle(Duration::from_secs(5)));
    assert_eq!(got_7000(&emu), 15);
}

#[test]
fn lifetime_expiry_removes_module_and_filter() {
    let code = code_server("expiry");
    let mut emu = net(Some(&code), 0.0);
    let a = ask(
        &mut emu,
        "server",
        setup(&code, session(4), 5, "10.0.1.0/24"),
        provider_key(),
    );
    assert_eq!(reasons(&a.stack), ok_at(&["r2", "r1"]));
    let t0 = emu.now_ns();
    emu.run_for(Duration::from_secs(3));
    for n in ["r1", "r2"] {
        assert_eq!(counters_on(&emu, n).len(), 1, "{n} before its lifetime ends");
    }
    emu.run_for(Duration::from_secs(3));
    assert!(emu.now_ns() - t0 > 5 * SECOND);
    for n in ["r1", "r2"] {
        assert!(counters_on(&emu, n).is_empty(), "{n}: expired");
        assert_eq!(filters_on(&emu, n), 0, "{n}");
        assert!(emu.signal(n).unwrap().sessions(emu.now_ns()).is_empty());
        assert_eq!(emu.signal(n).unwrap().agent().counters().expired, 1);
    }
}

#[test]
fn lost_signaling_messages_are_retransmitted_and_the_setup_completes() {
    let code = code_server("loss");
    // 10 % loss on each link around the plain router: a message and its
    // ACK cross both, so one try in three fails.
    let mut emu = net(Some(&code), 0.1);
    let mut done = 0;
    for i in 0..6u8 {
        let a = ask(
            &mut emu,
            "server",
            setup(&code, session(10 + i), 3600, "10.0.1.0/24"),
            provider_key(),
        );
        if reasons(&a.stack) == ok_at(&["r2", "r1"]) {
            done += 1;
        }
    }
    let retx: u64 = ["r1", "r2"]
        .iter()
        .map(|n| emu.signal(n).unwrap().agent().counters().retransmits)
        .sum();
    let lost = emu.link("r1-x").unwrap().total().dropped_loss + emu.link("x-r2").unwrap().total().dropped_loss;
    println!("signal_emu: 6 SETUPs at 10 % loss per link: {done} answered by both nodes, {lost} frames lost, {retx} retransmissions");
    assert!(lost > 0, "the links lost frames");
    assert!(retx > 0, "lost messages were sent again");
    // Four transmissions make a message fail for good about once in a
    // hundred (0.34^4): all but bad luck complete (the seed is fixed), and
    // what completed is installed.
    assert!(done >= 5, "{done} of 6");
    assert_eq!(
        counters_on(&emu, "r1").len(),
        emu.signal("r1").unwrap().sessions(emu.now_ns()).len()
    );
}

#[test]
fn a_restarted_node_gets_its_state_back_from_the_requesters_refresh() {
    let code = code_server("restart");
    let mut emu = net(Some(&code), 0.0);
    let a = ask(
        &mut emu,
        "server",
        setup(&code, session(5), 30, "10.0.1.0/24"),
        provider_key(),
    );
    assert_eq!(reasons(&a.stack), ok_at(&["r2", "r1"]));
    emu.signal_keep_refreshed("server", session(5), 10 * SECOND, Box::new(KeySigner(provider_key())))
        .unwrap();
    // r1 restarts: its daemon goes with what it installed, and comes back
    // empty.
    emu.disable_signal("r1");
    assert!(counters_on(&emu, "r1").is_empty());
    emu.enable_signal("r1", signal_setup(Some(&code))).unwrap();
    assert!(emu.signal("r1").unwrap().sessions(emu.now_ns()).is_empty());
    // The next refresh (within 10 s) installs it again.
    let back = emu.run_until(|e| counters_on(e, "r1").len() == 1, Duration::from_secs(11));
    assert!(back, "r1 rebuilt its state from the refresh");
    assert_eq!(emu.signal("r1").unwrap().sessions(emu.now_ns()).len(), 1);
    // r2 was only refreshed: still its one instance.
    assert_eq!(counters_on(&emu, "r2").len(), 1);
    assert!(emu.signal("r2").unwrap().agent().counters().refreshed >= 1);
    // Refreshes keep both alive past the lifetime.
    emu.run_for(Duration::from_secs(60));
    for n in ["r1", "r2"] {
        assert_eq!(counters_on(&emu, n).len(), 1, "{n}");
    }
    // Stopped refreshing: gone within the lifetime.
    emu.signal_stop_refreshing("server", session(5));
    emu.run_for(Duration::from_secs(31));
    for n in ["r1", "r2"] {
        assert!(counters_on(&emu, n).is_empty(), "{n}");
    }
}

#[test]
fn trigger_from_the_server_installs_at_the_clients_edge() {
    let code = code_server("trigger");
    let mut emu = net(Some(&code), 0.0);
    warm(&mut emu);
    // The inner SETUP flows from the client's edge back toward the server.
    let mut inner = setup(&code, session(6), 3600, "10.0.1.0/24");
    inner.dest = ip(SERVER);
    let inner = sign(&mut emu, "server", inner, provider_key());
    let mut t = Request::new(Kind::Trigger, session(6), ip(CLIENT));
    t.inner = Some(Box::new(inner));
    let a = ask(&mut emu, "server", t, provider_key());
    // The answer is the reverse flow's stack: r1 (the client's edge, which
    // started it), then r2 on the way back.
    assert_eq!(reasons(&a.stack), ok_at(&["r1", "r2"]), "{:?}", a.stack);
    assert_eq!(emu.signal("r1").unwrap().agent().counters().triggered, 1);
    assert_eq!(counters_on(&emu, "r1").len(), 1, "installed at the client's edge");
    println!(
        "signal_emu: TRIGGER answered after {:.1} ms virtual",
        a.elapsed_ns as f64 / 1e6
    );
}

#[test]
fn refusals_over_the_wire_name_their_reason_and_install_nothing() {
    let code = code_server("refusals");
    let mut emu = net(Some(&code), 0.0);
    // A prefix the provider does not own: each node refuses, nothing installed.
    let a = ask(
        &mut emu,
        "server",
        setup(&code, session(7), 60, "10.0.2.0/24"),
        provider_key(),
    );
    assert_eq!(
        reasons(&a.stack),
        [("r2".into(), Reason::Prefix), ("r1".into(), Reason::Prefix)]
    );
    // A bad signature: the first node refuses it and it goes no further.
    let s = sign(&mut emu, "server", probe(CLIENT, session(8)), provider_key());
    let mut b = s.as_bytes().to_vec();
    let last = b.len() - 1;
    b[last] ^= 1;
    let forged = Signed::parse(&b).unwrap();
    let n = emu.signal_send("server", forged).unwrap();
    let a = emu.run_until_answer("server", n, LIMIT).unwrap();
    assert_eq!(reasons(&a.stack), [("r2".into(), Reason::BadSignature)]);
    // A replay of a request the nodes have seen.
    let s = sign(&mut emu, "server", probe(CLIENT, session(9)), provider_key());
    let n = emu.signal_send("server", s.clone()).unwrap();
    let first = emu.run_until_answer("server", n, LIMIT).unwrap();
    assert_eq!(reasons(&first.stack), ok_at(&["r2", "r1"]));
    let before = emu.signal_answers("server").len();
    emu.signal_send("server", s).unwrap();
    assert!(emu.run_until(|e| e.signal_answers("server").len() > before, Duration::from_secs(60)));
    let (_, stack) = emu.signal_answers("server").pop().unwrap();
    assert_eq!(reasons(&stack), [("r2".into(), Reason::Replayed)]);
    for n in ["r1", "r2"] {
        assert!(counters_on(&emu, n).is_empty());
        assert_eq!(filters_on(&emu, n), 0);
    }
}

/// What the verifying loader and the node refuse, through a real code
/// server: a hash the server does not have, a version other than the
/// signed one, a module signed by a key the nodes do not trust, an
/// instance that cannot be created. Each node answers with the reason and
/// keeps no instance or filter.
#[test]
fn install_refusals_with_a_real_loader_name_their_reason_and_leave_nothing() {
    let code = code_server("install-refusals");
    // The no-op plugin published as wcounter 2 by a key nobody trusts.
    let plugins = weft_wasm::plugins::ensure_built().unwrap();
    let other = std::fs::read(plugins.join("noop.wasm")).unwrap();
    let untrusted = SecretKey::generate().unwrap();
    let man2 = store::publish(&code.dir.join("repo"), &other, "wcounter", Some("2"), &untrusted).unwrap();
    let mut emu = net(Some(&code), 0.0);
    let both = |r: Reason| vec![("r2".to_string(), r), ("r1".to_string(), r)];

    let mut r = setup(&code, session(20), 60, "10.0.1.0/24");
    r.code.as_mut().unwrap().sha256 = [0x77; 32];
    let a = ask(&mut emu, "server", r, provider_key());
    assert_eq!(reasons(&a.stack), both(Reason::UnknownModule), "{:?}", a.stack);

    let mut r = setup(&code, session(21), 60, "10.0.1.0/24");
    r.module.as_mut().unwrap().version = "9".into();
    let a = ask(&mut emu, "server", r, provider_key());
    assert_eq!(reasons(&a.stack), both(Reason::ModuleRejected), "{:?}", a.stack);
    assert!(a.stack[0].text.contains("version 1, not 9"), "{}", a.stack[0].text);

    let mut r = setup(&code, session(22), 60, "10.0.1.0/24");
    r.module.as_mut().unwrap().version = "2".into();
    r.code.as_mut().unwrap().sha256 = weft_repo::from_hex::<32>(&man2.sha256).unwrap();
    let a = ask(&mut emu, "server", r, provider_key());
    assert_eq!(reasons(&a.stack), both(Reason::ModuleRejected), "{:?}", a.stack);

    // counter takes no configuration: the class loads, the instance fails.
    let mut r = setup(&code, session(23), 60, "10.0.1.0/24");
    r.config = "rate=5".into();
    let a = ask(&mut emu, "server", r, provider_key());
    assert_eq!(reasons(&a.stack), both(Reason::InstallFailed), "{:?}", a.stack);

    for n in ["r1", "r2"] {
        assert!(counters_on(&emu, n).is_empty(), "{n}");
        assert_eq!(filters_on(&emu, n), 0, "{n}");
        assert!(emu.signal(n).unwrap().sessions(emu.now_ns()).is_empty(), "{n}");
    }
    // And the same key's valid SETUP still installs.
    let a = ask(
        &mut emu,
        "server",
        setup(&code, session(24), 60, "10.0.1.0/24"),
        provider_key(),
    );
    assert_eq!(reasons(&a.stack), ok_at(&["r2", "r1"]));
}

/// A TRIGGER is judged by the request it carries: nodes on the way only
/// verify it, and every node of the reverse flow refuses a stranger's
/// inner SETUP — nothing installed anywhere. A TRIGGER tampered with stops
/// at the first node.
#[test]
fn a_strangers_trigger_is_refused_on_the_reverse_flow_and_installs_nothing() {
    let code = code_server("trigger-refusals");
    let mut emu = net(Some(&code), 0.0);
    let mut inner = setup(&code, session(30), 3600, "10.0.1.0/24");
    inner.dest = ip(SERVER);
    let inner = sign(&mut emu, "server", inner, stranger_key());
    let mut t = Request::new(Kind::Trigger, session(30), ip(CLIENT));
    t.inner = Some(Box::new(inner.clone()));
    let a = ask(&mut emu, "server", t.clone(), stranger_key());
    assert_eq!(
        reasons(&a.stack),
        [("r1".into(), Reason::UnknownKey), ("r2".into(), Reason::UnknownKey)],
        "{:?}",
        a.stack
    );
    for n in ["r1", "r2"] {
        assert!(counters_on(&emu, n).is_empty(), "{n}");
        assert!(emu.signal(n).unwrap().sessions(emu.now_ns()).is_empty(), "{n}");
    }
    // The provider's TRIGGER with its signature broken: refused at r2, the
    // first node, and no reverse flow starts.
    let mut inner = setup(&code, session(31), 3600, "10.0.1.0/24");
    inner.dest = ip(SERVER);
    t.session = session(31);
    t.inner = Some(Box::new(sign(&mut emu, "server", inner, provider_key())));
    let s = sign(&mut emu, "server", t, provider_key());
    let mut b = s.as_bytes().to_vec();
    let last = b.len() - 1;
    b[last] ^= 0x80;
    let n = emu.signal_send("server", Signed::parse(&b).unwrap()).unwrap();
    let a = emu.run_until_answer("server", n, LIMIT).unwrap();
    assert_eq!(reasons(&a.stack), [("r2".into(), Reason::BadSignature)]);
    assert_eq!(
        emu.signal("r1").unwrap().agent().counters().triggered,
        1,
        "only the stranger's"
    );
    assert!(counters_on(&emu, "r1").is_empty());
}
