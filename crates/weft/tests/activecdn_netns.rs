//! ActiveCDN (NetServ §6) between real peers in network namespaces:
//!
//! ```text
//! client 10.0.1.2 — edge (Weft) — x (Linux router) — core (Weft) — origin 10.0.2.2
//! ```
//!
//! The provider (on the origin host) sends one SETUP of the `activecdn`
//! server module toward the client's edge (its gateway, 10.0.1.1): the
//! Weft nodes that act on it fetch the module from a code server, verify
//! it and serve it on TCP 8080 of their addresses; the response stack
//! names them in path order, the edge last. (The edge acts as the
//! request's destination; `core` acts too where the engine intercepts
//! Router Alert datagrams in transit — the test holds either way.) The provider
//! redirects the client to the node nearest it — the last entry of the
//! stack (NetServ's redirection; `docs/server-modules.md`) — with a `302`
//! from its web server. `curl` on the client: the first fetch comes from
//! the origin (the origin's log grows), the second from the edge (the log
//! does not), `no-store` objects never stay, the provider's header is on
//! every answer; REMOVE takes the module away, and separately a short
//! lifetime does.
//!
//! Needs root, `ip netns`, nft, curl and python3; without them it prints
//! `SKIP:` and passes. Everything is named after the run id and taken down
//! on drop, even when an assertion fails.

mod support;

use std::time::Duration;
use support::*;
use weft_repo::{store, SecretKey};

/// The client's gateway: the edge's address on the client's network.
const EDGE_GW: &str = "10.0.1.1";
const ORIGIN: &str = "10.0.2.2";
const REPO_URL: &str = "http://127.0.0.1:7080";

fn node_config(provider: &SecretKey) -> String {
    // Compiling a component in a debug build takes seconds: a longer
    // install timeout than the default 15 s.
    format!(
        r#"
[node.config.signal]
install_timeout = 120
[node.config.plugins]
trusted_keys = ["{provider}"]
repos = ["{REPO_URL}"]
[[node.config.principal]]
name = "provider"
key = "{provider}"
rights = ["signal"]
classes = ["activecdn"]
server_ports = ["tcp:8080"]
"#,
        provider = weft_repo::to_hex(&provider.public().to_bytes()),
    )
}

fn topology(provider: &SecretKey) -> String {
    let cfg = node_config(provider);
    format!(
        r#"
routing = "shortest-path"

[[node]]
name = "edge"
{cfg}
[[node]]
name = "x"
kind = "linux"

[[node]]
name = "core"
{cfg}
[[host]]
name = "client"
addr = "10.0.1.2/24"

[[host]]
name = "origin"
addr = "10.0.2.2/24"

[[link]]
a = "client"
b = "edge:eth0"
b_addr = ["10.0.1.1/24"]

[[link]]
a = "edge:eth1"
b = "x:eth0"
a_addr = ["10.0.11.1/24"]
b_addr = ["10.0.11.2/24"]

[[link]]
a = "x:eth1"
b = "core:eth0"
a_addr = ["10.0.22.2/24"]
b_addr = ["10.0.22.1/24"]

[[link]]
a = "core:eth1"
b = "origin"
a_addr = ["10.0.2.1/24"]
"#
    )
}

/// The provider's web server: files under `static/` fresh for 300 s, under
/// `nostore/` never to be stored; `/r/PATH` redirects to `http://EDGE/PATH`
/// (EDGE from the file `edge` beside the script, written once the SETUP's
/// stack named the node nearest the client); one log line per request.
const ORIGIN_PY: &str = r#"
import http.server, sys, os
port, root, log = int(sys.argv[1]), sys.argv[2], sys.argv[3]
class H(http.server.SimpleHTTPRequestHandler):
    def __init__(s, *a, **k):
        super().__init__(*a, directory=root, **k)
    def do_GET(s):
        if s.path.startswith('/r/'):
            edge = open(os.path.join(root, '..', 'edge')).read().strip()
            s.send_response(302)
            s.send_header('Location', 'http://%s%s' % (edge, s.path[2:]))
            s.send_header('Content-Length', '0')
            s.end_headers()
            return
        super().do_GET()
    def end_headers(s):
        if s.path.startswith('/nostore/'):
            s.send_header('Cache-Control', 'no-store')
        elif s.path.startswith('/static/'):
            s.send_header('Cache-Control', 'max-age=300')
        super().end_headers()
    def log_message(s, fmt, *a):
        with open(log, 'a') as f:
            f.write('%s %s\n' % (s.client_address[0], fmt % a))
http.server.ThreadingHTTPServer(('0.0.0.0', port), H).serve_forever()
"#;

struct Lab {
    net: Net,
    _procs: Vec<Proc>,
    key_file: String,
    sha256: String,
    log: std::path::PathBuf,
    tmp: TempDir,
}

fn lab(tag: &str) -> Lab {
    let tmp = TempDir::new(tag);
    let provider = SecretKey::generate().unwrap();
    let key_file = tmp.0.join("provider.key");
    provider.write_files(&key_file).unwrap();
    let plugins = weft_wasm::plugins::ensure_built().expect("plugins/build.sh builds ActiveCDN");
    let wasm = std::fs::read(plugins.join("activecdn.wasm")).unwrap();
    let repo = tmp.0.join("repo");
    let man = store::publish(&repo, &wasm, "activecdn", Some("1"), &provider).unwrap();
    let www = tmp.0.join("www");
    std::fs::create_dir_all(www.join("static")).unwrap();
    std::fs::create_dir_all(www.join("nostore")).unwrap();
    std::fs::write(www.join("static/a.txt"), "cached object\n").unwrap();
    std::fs::write(www.join("nostore/b.txt"), "private object\n").unwrap();
    let script = tmp.0.join("origin.py");
    std::fs::write(&script, ORIGIN_PY).unwrap();
    let log = tmp.0.join("origin.log");
    std::fs::write(&log, "").unwrap();
    let topo = tmp.0.join("activecdn.toml");
    std::fs::write(&topo, topology(&provider)).unwrap();
    let net = Net::up(&topo, tag);
    let mut procs: Vec<Proc> = ["edge", "core"]
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
    procs.push(net.spawn(
        "origin",
        &[
            "python3",
            &script.display().to_string(),
            "8000",
            &www.display().to_string(),
            &log.display().to_string(),
        ],
    ));
    for n in ["edge", "core"] {
        wait_until(&format!("the code server in {n}"), Duration::from_secs(10), || {
            net.exec(n, &["curl", "-sf", &format!("{REPO_URL}/v1/plugins")])
                .status
                .success()
        });
    }
    wait_until("the origin's web server", Duration::from_secs(10), || {
        net.exec(
            "origin",
            &["curl", "-sf", "-o", "/dev/null", "http://127.0.0.1:8000/static/a.txt"],
        )
        .status
        .success()
    });
    std::fs::write(&log, "").unwrap();
    net.ok("origin", &["ping", "-c", "1", "-W", "5", "10.0.1.2"]);
    Lab {
        net,
        _procs: procs,
        key_file: key_file.display().to_string(),
        sha256: man.sha256,
        log,
        tmp,
    }
}

impl Lab {
    /// `weft signal ARGS` from the origin host (the provider): the answer
    /// and whether it exited 0.
    fn signal(&self, args: &[&str]) -> (bool, serde_json::Value) {
        let mut v = vec![WEFT, "signal"];
        v.extend_from_slice(args);
        v.extend_from_slice(&["--key", &self.key_file, "--json", "--timeout", "150"]);
        let o = self.net.exec("origin", &v);
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        let j = serde_json::from_str(&out).unwrap_or_else(|e| panic!("weft signal {args:?}: {e}\n{out}{err}"));
        (o.status.success(), j)
    }

    fn setup(&self, ttl: &str) -> serde_json::Value {
        let (ok, a) = self.signal(&[
            "setup",
            "--to",
            EDGE_GW,
            "--module",
            "activecdn@1",
            "--from",
            REPO_URL,
            "--sha256",
            &self.sha256,
            "--server-port",
            "tcp:8080",
            "--config",
            &format!("origin={ORIGIN}:8000; header=x-provider: acme"),
            "--ttl",
            ttl,
        ]);
        assert!(ok, "setup: {a:#}");
        a
    }

    /// `curl -i` from the client: exit status and output.
    fn curl(&self, args: &[&str]) -> (bool, String) {
        let mut v = vec!["curl", "-s", "-i", "--max-time", "5"];
        v.extend_from_slice(args);
        let o = self.net.exec("client", &v);
        (o.status.success(), String::from_utf8_lossy(&o.stdout).to_lowercase())
    }

    /// Requests for `path` in the origin's log.
    fn origin_hits(&self, path: &str) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&format!("\"GET {path} HTTP")))
            .count()
    }
}

fn stack(a: &serde_json::Value) -> Vec<(String, String, String)> {
    a["stack"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["node"].as_str().unwrap_or("").to_string(),
                e["reason"].as_str().unwrap_or("").to_string(),
                e["address"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn activecdn_serves_the_second_fetch_from_the_edge_and_goes_with_remove_and_expiry() {
    require!("activecdn_netns", "nft", "curl", "python3");
    let lab = lab("cdn");

    // One SETUP toward the client's edge: the edge serves the module.
    let a = lab.setup("600");
    let s = stack(&a);
    let names: Vec<&str> = s.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names.last(), Some(&"edge"), "{a:#}");
    assert!(names.iter().all(|n| ["core", "edge"].contains(n)), "{a:#}");
    assert!(s.iter().all(|(_, r, _)| r == "ok"), "{a:#}");
    let session = a["session"].as_str().unwrap().to_string();

    // The provider redirects the client to the node nearest it: the last
    // entry of the stack.
    let last = &s.last().unwrap().2;
    assert_eq!(
        last, "10.0.11.1",
        "the edge answered from its address toward the provider"
    );
    let edge = format!("{last}:8080");
    std::fs::write(lab.tmp.0.join("edge"), &edge).unwrap();

    // First fetch: redirected to the edge, which fetches from the origin.
    let (ok, out) = lab.curl(&["-L", &format!("http://{ORIGIN}:8000/r/static/a.txt")]);
    assert!(ok, "{out}");
    assert!(out.contains("302"), "{out}");
    assert!(out.contains("x-cache: miss"), "{out}");
    assert!(out.contains("x-provider: acme"), "the provider's hook: {out}");
    assert!(out.contains("cached object"), "{out}");
    assert_eq!(lab.origin_hits("/static/a.txt"), 1);
    let log = std::fs::read_to_string(&lab.log).unwrap();
    assert!(
        log.lines()
            .any(|l| l.starts_with("10.0.1.1 ") && l.contains("GET /static/a.txt")),
        "the edge (its client-side address) fetched it: {log}"
    );

    // Second fetch: from the edge's cache; the origin's log is unchanged.
    let (ok, out) = lab.curl(&[&format!("http://{edge}/static/a.txt")]);
    assert!(ok, "{out}");
    assert!(out.contains("x-cache: hit"), "{out}");
    assert!(out.contains("cached object"), "{out}");
    assert_eq!(lab.origin_hits("/static/a.txt"), 1, "served from the edge");

    // no-store: never cached.
    for _ in 0..2 {
        let (ok, out) = lab.curl(&[&format!("http://{edge}/nostore/b.txt")]);
        assert!(
            ok && out.contains("x-cache: miss") && out.contains("private object"),
            "{out}"
        );
    }
    assert_eq!(lab.origin_hits("/nostore/b.txt"), 2);

    // REMOVE: the module goes from both nodes; the port no longer answers.
    let (ok, r) = lab.signal(&["remove", "--to", EDGE_GW, "--session", &session]);
    assert!(ok, "{r:#}");
    assert!(stack(&r).iter().all(|(_, r, _)| r == "ok"), "{r:#}");
    let (ok, out) = lab.curl(&[&format!("http://{edge}/static/a.txt")]);
    assert!(!ok, "still served after REMOVE: {out}");

    // Lifetime expiry: a 15 s SETUP serves, then goes by itself. (The
    // lifetime runs from the request; compiling the component takes
    // seconds in a debug build, so a shorter one could end mid-install.)
    let a = lab.setup("15");
    assert!(stack(&a).iter().all(|(_, r, _)| r == "ok"), "{a:#}");
    let (ok, out) = lab.curl(&[&format!("http://{edge}/static/a.txt")]);
    assert!(ok && out.contains("cached object"), "{out}");
    wait_until("the module to expire", Duration::from_secs(40), || {
        !lab.curl(&["--max-time", "1", &format!("http://{edge}/static/a.txt")]).0
    });
}
