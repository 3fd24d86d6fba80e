//! On-path signaling between real peers in network namespaces
//! (`docs/signaling.md`): two Weft nodes (`weft node run` processes,
//! brought up by `weft emu run --netns`) with a plain Linux router between
//! them, and Linux hosts at both ends:
//!
//! ```text
//! client 10.0.1.2 — r1 (Weft) — x (Linux router) — r2 (Weft) — server 10.0.2.2
//! ```
//!
//! The provider signals from the server with `weft signal`: PROBE returns
//! exactly r2 and r1 in path order; a SETUP of the `counter` plugin
//! (published as `wcounter` on a code server each node reaches on its own
//! loopback) installs it at both, REMOVE takes it away, and separately a
//! short lifetime does; TRIGGER toward the client installs at the client's
//! edge (r1); refusals over the wire come back with their reasons. tcpdump
//! on the Linux router shows it forwarding the Router Alert datagram as
//! plain UDP. Setup latency and install times are printed, never asserted
//! (`cargo test -p weft --test signal_netns -- --nocapture`).
//!
//! Needs root, `ip netns`, nft and tcpdump; without them each test prints
//! `SKIP:` and passes. The network is named after the test's run id and
//! taken down on drop, even when an assertion fails.

mod support;

use std::time::{Duration, Instant};
use support::*;
use weft_repo::{store, SecretKey};

const CLIENT: &str = "10.0.1.2";
const SERVER: &str = "10.0.2.2";
const REPO_URL: &str = "http://127.0.0.1:7080";

fn node_config(provider: &SecretKey, trusted: &SecretKey) -> String {
    format!(
        r#"
[node.config.signal]
[node.config.plugins]
trusted_keys = ["{trusted}"]
repos = ["{REPO_URL}"]
[[node.config.principal]]
name = "provider"
key = "{provider}"
rights = ["signal"]
classes = ["wcounter"]
prefixes = ["10.0.1.0/24"]
"#,
        trusted = weft_repo::to_hex(&trusted.public().to_bytes()),
        provider = weft_repo::to_hex(&provider.public().to_bytes()),
    )
}

fn topology(provider: &SecretKey, trusted: &SecretKey) -> String {
    let cfg = node_config(provider, trusted);
    format!(
        r#"
routing = "shortest-path"

[[node]]
name = "r1"
{cfg}
[[node]]
name = "x"
kind = "linux"

[[node]]
name = "r2"
{cfg}
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

[[link]]
a = "r1:eth1"
b = "x:eth0"
a_addr = ["10.0.11.1/24"]
b_addr = ["10.0.11.2/24"]

[[link]]
a = "x:eth1"
b = "r2:eth0"
a_addr = ["10.0.22.2/24"]
b_addr = ["10.0.22.1/24"]

[[link]]
a = "r2:eth1"
b = "server"
a_addr = ["10.0.2.1/24"]
"#
    )
}

/// The network, a code server in each Weft node's namespace (on its
/// loopback: the node fetches from there), the provider's key file.
struct Lab {
    net: Net,
    _repos: Vec<Proc>,
    key_file: String,
    stranger_file: String,
    sha256: String,
    tmp: TempDir,
}

fn lab(tag: &str) -> Lab {
    let tmp = TempDir::new(tag);
    let provider = SecretKey::generate().unwrap();
    let stranger = SecretKey::generate().unwrap();
    let publisher = SecretKey::generate().unwrap();
    let key_file = tmp.0.join("provider.key");
    provider.write_files(&key_file).unwrap();
    let stranger_file = tmp.0.join("stranger.key");
    stranger.write_files(&stranger_file).unwrap();
    let plugins = weft_wasm::plugins::ensure_built().expect("plugins/build.sh builds the example plugins");
    let wasm = std::fs::read(plugins.join("counter.wasm")).unwrap();
    let repo = tmp.0.join("repo");
    let man = store::publish(&repo, &wasm, "wcounter", Some("1"), &publisher).unwrap();
    let topo = tmp.0.join("signal.toml");
    std::fs::write(&topo, topology(&provider, &publisher)).unwrap();
    let net = Net::up(&topo, tag);
    let repos: Vec<Proc> = ["r1", "r2"]
        .iter()
        .map(|n| {
            net.spawn(
                n,
                &[
                    WEFT,
                    "repo",
                    "serve",
                    &repo.display().to_string(),
                    "--listen",
                    "127.0.0.1:7080",
                ],
            )
        })
        .collect();
    // The code servers answer (asked from inside each node's namespace).
    for n in ["r1", "r2"] {
        wait_until(&format!("the code server in {n}"), Duration::from_secs(10), || {
            net.exec(n, &["curl", "-sf", &format!("{REPO_URL}/v1/plugins")])
                .status
                .success()
        });
    }
    // Warm ARP along the path: latency figures are signaling's.
    net.ok("server", &["ping", "-c", "1", "-W", "5", CLIENT]);
    Lab {
        net,
        _repos: repos,
        key_file: key_file.display().to_string(),
        stranger_file: stranger_file.display().to_string(),
        sha256: man.sha256,
        tmp,
    }
}

impl Lab {
    /// `weft signal ARGS --json` on the server host: the answer, and
    /// whether it exited 0.
    fn signal(&self, host: &str, args: &[&str], key: &str) -> (bool, serde_json::Value) {
        let mut v = vec![WEFT, "signal"];
        v.extend_from_slice(args);
        v.extend_from_slice(&["--key", key, "--json", "--timeout", "30"]);
        let o = self.net.exec(host, &v);
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        let j = serde_json::from_str(&out).unwrap_or_else(|e| panic!("weft signal {args:?}: {e}\n{out}{err}"));
        (o.status.success(), j)
    }

    fn setup_args<'a>(&'a self, ttl: &'a str, prefix: &'a str, session: Option<&'a str>) -> Vec<String> {
        let mut v: Vec<String> = [
            "--module",
            "wcounter@1",
            "--from",
            REPO_URL,
            "--sha256",
            &self.sha256,
            "--filter",
            &format!("udp:7000:{prefix}"),
            "--ttl",
            ttl,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(s) = session {
            v.extend(["--session".to_string(), s.to_string()]);
        }
        v
    }

    /// GET `path` of node `node`'s API (its Unix socket; operator rights).
    fn api(&self, node: &str, path: &str) -> serde_json::Value {
        let socket = self.net.dir().join(format!("{node}.sock"));
        let o = std::process::Command::new("curl")
            .args(["-sf", "--unix-socket", &socket.display().to_string()])
            .arg(format!("http://node{path}"))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "GET {path} on {node}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).unwrap()
    }

    /// Node `node`'s instances of class `wcounter`.
    fn wcounters(&self, node: &str) -> Vec<serde_json::Value> {
        let v = self.api(node, "/v1/instances");
        v.as_array()
            .unwrap()
            .iter()
            .filter(|i| i["class"] == "wcounter")
            .cloned()
            .collect()
    }

    /// Filters a principal owns on node `node`.
    fn owned_filters(&self, node: &str) -> usize {
        let v = self.api(node, "/v1/filters");
        v.as_array().unwrap().iter().filter(|f| !f["owner"].is_null()).count()
    }
}

fn nodes(a: &serde_json::Value) -> Vec<String> {
    a["stack"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].as_str().unwrap().to_string())
        .collect()
}

fn reasons(a: &serde_json::Value) -> Vec<String> {
    a["stack"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{}:{}", e["node"].as_str().unwrap(), e["reason"].as_str().unwrap()))
        .collect()
}

fn ok_at(n: &[&str]) -> Vec<String> {
    n.iter().map(|n| format!("{n}:ok")).collect()
}

/// UDP to port 270 carrying IPv4's Router Alert option and the magic, in a
/// captured Ethernet frame: (source, destination, TTL).
fn ra_request(f: &[u8]) -> Option<([u8; 4], [u8; 4], u8)> {
    let ip = f.get(14..)?;
    if f.get(12..14)? != [0x08, 0x00] || ip[0] >> 4 != 4 || ip.get(9)? != &17 {
        return None;
    }
    let ihl = (ip[0] & 0x0f) as usize * 4;
    if !weft_packet::router_alert::carries_router_alert(ip) {
        return None;
    }
    let udp = ip.get(ihl..)?;
    (u16::from_be_bytes([udp[2], udp[3]]) == 270 && udp.get(8..12)? == b"WFSG")
        .then(|| (ip[12..16].try_into().unwrap(), ip[16..20].try_into().unwrap(), ip[8]))
}

#[test]
fn probe_shows_exactly_the_weft_nodes_and_the_linux_router_forwards_plain_udp() {
    require!("signal probe", "nft", "tcpdump", "curl");
    let lab = lab("sgp");
    let cap_in = NsCapture::start(&lab.net, "x", "eth1", &lab.tmp.0);
    let cap_out = NsCapture::start(&lab.net, "x", "eth0", &lab.tmp.0);
    let (ok, a) = lab.signal("server", &["probe", "--to", CLIENT], &lab.key_file);
    assert!(ok, "{a}");
    assert_eq!(nodes(&a), ["r2", "r1"], "{a}");
    assert_eq!(reasons(&a), ok_at(&["r2", "r1"]));
    let (ok, b) = lab.signal("client", &["probe", "--to", SERVER], &lab.key_file);
    assert!(ok, "{b}");
    assert_eq!(nodes(&b), ["r1", "r2"], "{b}");
    // The client's kernel runs no signaling: r1, the last Weft node, waited
    // for an ACK through its retransmissions (1.5 s) before answering. A
    // request addressed to r1 itself ends there at once: signaling alone.
    let (ok, c) = lab.signal("server", &["probe", "--to", "10.0.11.1"], &lab.key_file);
    assert!(ok, "{c}");
    assert_eq!(nodes(&c), ["r2", "r1"], "{c}");
    assert_eq!(c["flags"].as_u64().unwrap() & 4, 4, "ended at the destination: {c}");
    println!(
        "signal_netns: PROBE through 2 Weft nodes: {:.2} ms toward the client (r1 answers after 1.5 s without an ACK), {:.2} ms the other way, {:.2} ms toward r1 itself",
        a["elapsed_ms"].as_f64().unwrap(),
        b["elapsed_ms"].as_f64().unwrap(),
        c["elapsed_ms"].as_f64().unwrap()
    );
    // x got r2's request (sent on from r2's own address, toward the client,
    // Router Alert on) and forwarded it as plain UDP: the same datagram out
    // of its other interface, TTL one lower; and likewise r1's the other
    // way. x answered nothing: no signaling from x's addresses.
    let inn = cap_in.frames();
    let out = cap_out.frames();
    let from_r2: Vec<_> = inn
        .iter()
        .filter_map(|f| ra_request(f))
        .filter(|r| r.0 == [10, 0, 22, 1])
        .collect();
    let via_x: Vec<_> = out
        .iter()
        .filter_map(|f| ra_request(f))
        .filter(|r| r.0 == [10, 0, 22, 1])
        .collect();
    assert!(!from_r2.is_empty(), "r2 sent the request on toward the client");
    assert_eq!(from_r2.len(), via_x.len(), "x forwarded every one");
    for (i, o) in from_r2.iter().zip(&via_x) {
        assert!(
            i.1 == [10, 0, 1, 2] || i.1 == [10, 0, 11, 1],
            "toward the client or r1: {:?}",
            i.1
        );
        assert_eq!(i.2 - 1, o.2, "one TTL lower");
    }
    let from_x = |f: &Vec<u8>| {
        f.get(12..14) == Some(&[0x08, 0x00][..])
            && f.get(14 + 9) == Some(&17)
            && matches!(f.get(14 + 12..14 + 16), Some([10, 0, 11, 2]) | Some([10, 0, 22, 2]))
    };
    assert!(!inn.iter().chain(&out).any(from_x), "x sent no UDP of its own");
}

#[test]
fn setup_installs_at_both_nodes_remove_and_expiry_take_it_away_trigger_installs_at_the_edge() {
    require!("signal setup", "nft", "curl", "socat");
    let lab = lab("sgs");
    // SETUP from the server toward its client.
    let session = "5e55104e5e55104e5e55104e5e55104e";
    let args = lab.setup_args("3600", "10.0.1.0/24", Some(session));
    let mut v: Vec<&str> = vec!["setup", "--to", CLIENT];
    v.extend(args.iter().map(String::as_str));
    let t0 = Instant::now();
    let (ok, a) = lab.signal("server", &v, &lab.key_file);
    let wall = t0.elapsed();
    assert!(ok, "{a}");
    assert_eq!(reasons(&a), ok_at(&["r2", "r1"]), "{a}");
    let elapsed = a["elapsed_ms"].as_f64().unwrap();
    println!(
        "signal_netns: SETUP through 2 Weft nodes and a Linux router: {elapsed:.1} ms ({:.1} ms per Weft hop; the CLI ran {:.0} ms)",
        elapsed / 2.0,
        wall.as_secs_f64() * 1e3
    );
    for e in a["stack"].as_array().unwrap() {
        let t = &e["timing"];
        println!(
            "signal_netns: {}: fetch {} µs, verify {} µs, compile {} µs, instantiate {} µs",
            e["node"], t["fetch_us"], t["verify_us"], t["compile_us"], t["instantiate_us"]
        );
    }
    for n in ["r1", "r2"] {
        let w = lab.wcounters(n);
        assert_eq!(w.len(), 1, "{n}: {w:?}");
        assert!(w[0]["owner"].to_string().contains("provider"), "{n}: {w:?}");
        assert_eq!(lab.owned_filters(n), 1, "{n}");
    }
    // Traffic toward the client goes through both instances.
    let sink = UdpSink::start(&lab.net, "client", 7000, &lab.tmp.0);
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..3 {
        socat_send(&lab.net, "server", CLIENT, 7000, b"through-the-module");
    }
    wait_until("three datagrams at the client", Duration::from_secs(10), || {
        sink.got().len() == 3 * 18
    });
    for n in ["r1", "r2"] {
        let id = lab.wcounters(n)[0]["id"]
            .as_str()
            .unwrap()
            .trim_start_matches('#')
            .to_string();
        let r = lab.api(n, &format!("/v1/instances/{id}/report"));
        assert_eq!(r["element"]["plugin"]["packets"], 3, "{n}: {r}");
    }
    // `weft signal ls` on a node shows the session with its lifetime.
    let ls = lab.net.ok(
        "r1",
        &[
            WEFT,
            "signal",
            "ls",
            "--node",
            &lab.net.dir().join("r1.sock").display().to_string(),
        ],
    );
    assert!(ls.contains(session) && ls.contains("wcounter"), "{ls}");

    // REMOVE by a stranger: refused; by the provider: gone.
    let (ok, r) = lab.signal(
        "server",
        &["remove", "--to", CLIENT, "--session", session],
        &lab.stranger_file,
    );
    assert!(!ok);
    assert!(reasons(&r).iter().all(|x| !x.ends_with(":ok")), "{r}");
    assert_eq!(lab.wcounters("r1").len(), 1);
    let (ok, r) = lab.signal(
        "server",
        &["remove", "--to", CLIENT, "--session", session],
        &lab.key_file,
    );
    assert!(ok, "{r}");
    assert_eq!(reasons(&r), ok_at(&["r2", "r1"]));
    for n in ["r1", "r2"] {
        assert!(lab.wcounters(n).is_empty(), "{n}");
        assert_eq!(lab.owned_filters(n), 0, "{n}");
    }

    // Lifetime expiry: 3 s, not refreshed.
    let args = lab.setup_args("3", "10.0.1.0/24", None);
    let mut v: Vec<&str> = vec!["setup", "--to", CLIENT];
    v.extend(args.iter().map(String::as_str));
    let (ok, a) = lab.signal("server", &v, &lab.key_file);
    assert!(ok, "{a}");
    assert_eq!(lab.wcounters("r1").len(), 1);
    wait_until("the module expires at both nodes", Duration::from_secs(15), || {
        lab.wcounters("r1").is_empty() && lab.wcounters("r2").is_empty()
    });
    assert_eq!(lab.owned_filters("r1") + lab.owned_filters("r2"), 0);

    // Setup latency without the last node's wait: a SETUP addressed to r1
    // itself (the filter still covers the client's network), then removed.
    let session2 = "5e55104e5e55104e5e55104e5e551042";
    let args = lab.setup_args("3600", "10.0.1.0/24", Some(session2));
    let mut v: Vec<&str> = vec!["setup", "--to", "10.0.11.1"];
    v.extend(args.iter().map(String::as_str));
    let (ok, a) = lab.signal("server", &v, &lab.key_file);
    assert!(ok, "{a}");
    assert_eq!(reasons(&a), ok_at(&["r2", "r1"]), "{a}");
    let elapsed = a["elapsed_ms"].as_f64().unwrap();
    let install_ms: Vec<f64> = a["stack"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let t = &e["timing"];
            ["fetch_us", "verify_us", "compile_us", "instantiate_us"]
                .iter()
                .map(|k| t[k].as_f64().unwrap_or(0.0))
                .sum::<f64>()
                / 1e3
        })
        .collect();
    println!(
        "signal_netns: SETUP toward r1 itself: {elapsed:.1} ms for 2 Weft hops ({:.1} ms per hop), installs {install_ms:.1?} ms (the class was already on both nodes)",
        elapsed / 2.0
    );
    let (ok, r) = lab.signal(
        "server",
        &["remove", "--to", "10.0.11.1", "--session", session2],
        &lab.key_file,
    );
    assert!(ok, "{r}");
    for n in ["r1", "r2"] {
        assert!(lab.wcounters(n).is_empty(), "{n}");
    }

    // TRIGGER from the server side: the client's edge (r1, the last Weft
    // node toward the client) starts the SETUP back toward the server.
    let args = lab.setup_args("3600", "10.0.1.0/24", None);
    let mut v: Vec<&str> = vec!["trigger", "--to", CLIENT];
    v.extend(args.iter().map(String::as_str));
    let (ok, t) = lab.signal("server", &v, &lab.key_file);
    assert!(ok, "{t}");
    assert_eq!(nodes(&t)[0], "r1", "the reverse flow starts at the client's edge: {t}");
    assert!(reasons(&t).iter().all(|x| x.ends_with(":ok")), "{t}");
    assert_eq!(lab.wcounters("r1").len(), 1, "installed at the client's edge");
    println!(
        "signal_netns: TRIGGER answered in {:.1} ms",
        t["elapsed_ms"].as_f64().unwrap()
    );
}

#[test]
fn refusals_over_the_wire_come_back_with_their_reasons() {
    require!("signal refusals", "nft", "curl", "tcpdump", "python3");
    let lab = lab("sgr");
    // A prefix the provider does not own.
    let args = lab.setup_args("60", "10.0.2.0/24", None);
    let mut v: Vec<&str> = vec!["setup", "--to", CLIENT];
    v.extend(args.iter().map(String::as_str));
    let (ok, a) = lab.signal("server", &v, &lab.key_file);
    assert!(!ok);
    assert_eq!(reasons(&a), ["r2:prefix", "r1:prefix"], "{a}");
    // A key no node knows.
    let (ok, a) = lab.signal("server", &["probe", "--to", CLIENT], &lab.stranger_file);
    assert!(!ok);
    assert_eq!(reasons(&a), ["r2:unknown-key", "r1:unknown-key"], "{a}");
    // A module the provider may not install (the nodes never fetch it).
    let mut args = lab.setup_args("60", "10.0.1.0/24", None);
    args[1] = "other@1".into();
    let mut v: Vec<&str> = vec!["setup", "--to", CLIENT];
    v.extend(args.iter().map(String::as_str));
    let (ok, a) = lab.signal("server", &v, &lab.key_file);
    assert!(!ok);
    assert_eq!(reasons(&a), ["r2:module-not-allowed", "r1:module-not-allowed"], "{a}");
    for n in ["r1", "r2"] {
        assert!(lab.wcounters(n).is_empty());
        assert_eq!(lab.owned_filters(n), 0);
    }

    // A request taken off the wire and sent again (a new hop-by-hop
    // sequence number, else it is a mere duplicate): r2 refuses it as
    // replayed. With its signature's last octet changed: bad-signature.
    // Neither goes further than r2 (r1's counters stay).
    let cap = NsCapture::start(&lab.net, "server", "eth0", &lab.tmp.0);
    let (ok, a) = lab.signal("server", &["probe", "--to", CLIENT], &lab.key_file);
    assert!(ok, "{a}");
    let frames = cap.frames();
    let f = frames
        .iter()
        .find(|f| ra_request(f).is_some_and(|r| r.0 == [10, 0, 2, 2]))
        .expect("the server's request on the wire");
    let ip = f[14..].to_vec();
    let refused = |n: &str, what: &str| {
        lab.api(n, "/v1/signal")["counters"]["agent"][what]
            .as_u64()
            .unwrap_or(0)
    };
    let r1_before = (
        refused("r1", "refused-replayed"),
        refused("r1", "refused-bad-signature"),
    );
    send_raw(&lab, &resequenced(&ip, 1, false));
    wait_until("r2 refuses the replay", Duration::from_secs(10), || {
        refused("r2", "refused-replayed") == 1
    });
    send_raw(&lab, &resequenced(&ip, 2, true));
    wait_until("r2 refuses the forged signature", Duration::from_secs(10), || {
        refused("r2", "refused-bad-signature") == 1
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        (
            refused("r1", "refused-replayed"),
            refused("r1", "refused-bad-signature")
        ),
        r1_before,
        "they stopped at r2"
    );
}

/// The IPv4 packet `ip` (Router Alert option, UDP, a signaling REQUEST)
/// with its sequence number raised by `by`, the signature's last octet
/// flipped when `forge`, and the UDP checksum cleared (0: none, in IPv4).
fn resequenced(ip: &[u8], by: u32, forge: bool) -> Vec<u8> {
    let mut p = ip.to_vec();
    let ihl = (p[0] & 0x0f) as usize * 4;
    let udp = ihl;
    let len = u16::from_be_bytes([p[udp + 4], p[udp + 5]]) as usize;
    let msg = udp + 8;
    let seq = u32::from_be_bytes(p[msg + 8..msg + 12].try_into().unwrap()).wrapping_add(by);
    p[msg + 8..msg + 12].copy_from_slice(&seq.to_be_bytes());
    if forge {
        p[udp + len - 1] ^= 1;
    }
    p[udp + 6] = 0;
    p[udp + 7] = 0;
    p
}

/// Send the IP packet `ip` as it is from the server host (a raw socket).
fn send_raw(lab: &Lab, ip: &[u8]) {
    let hex: String = ip.iter().map(|b| format!("{b:02x}")).collect();
    let script = format!(
        "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW); s.sendto(bytes.fromhex('{hex}'), ('{CLIENT}', 0))"
    );
    lab.net.ok("server", &["python3", "-c", &script]);
}
