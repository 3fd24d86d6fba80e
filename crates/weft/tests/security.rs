//! Who may talk to a node, with real processes and real users: the socket
//! keeps its mode whatever the umask, a squatted socket stops the node with
//! a clear message, the CLI refuses an impostor, a local user gets exactly
//! the rights the policy gives its uid, TCP takes credentials, plugin
//! fetches go only to configured code servers, and the code server closes
//! idle half-open connections. (In-process tests of the same gate:
//! `crates/weft-control/tests/security.rs`.)

mod support;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::{Proc, TempDir, WEFT};

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

macro_rules! require_root {
    ($name:expr) => {
        if !is_root() || support::unsupported(&["setpriv"]).is_some() {
            eprintln!("SKIP: {}: needs root and setpriv (other users' processes)", $name);
            return;
        }
    };
}

const NOBODY: [&str; 4] = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"];

/// A `weft node run` child with its log.
struct Node {
    _proc: Proc,
    socket: PathBuf,
    log: PathBuf,
}

impl Node {
    /// Start `config` as node `name` in `dir`, through `prefix` (a program
    /// and its arguments that then run weft); waits for its socket.
    fn start(dir: &Path, name: &str, config: &str, socket: &Path, prefix: &[&str]) -> Node {
        let cfg = dir.join(format!("{name}.toml"));
        std::fs::write(&cfg, config).unwrap();
        let log = dir.join(format!("{name}.log"));
        let mut c = weft_through(prefix);
        c.args(["node", "run", "--config"])
            .arg(&cfg)
            .arg("--socket")
            .arg(socket)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let proc = Proc(c.spawn().unwrap());
        let node = Node {
            _proc: proc,
            socket: socket.to_path_buf(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "node {name} did not open its socket:\n{}",
                node.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        node
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `weft ARGS` against this node, through `prefix`.
    fn weft(&self, prefix: &[&str], args: &[&str]) -> Output {
        weft_through(prefix)
            .args(args)
            .env("WEFT_SOCKET", &self.socket)
            .output()
            .unwrap()
    }
}

/// `weft`, run through `prefix` (a program and its arguments, e.g.
/// setpriv as another user) when one is given.
fn weft_through(prefix: &[&str]) -> Command {
    match prefix.split_first() {
        Some((p, rest)) => {
            let mut c = Command::new(p);
            c.args(rest).arg(WEFT);
            c
        }
        None => Command::new(WEFT),
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const PORTS: &str = r#"
[[port]]
name = "eth0"
mac = "02:00:00:00:00:01"
addrs = ["10.0.0.1/24"]
"#;

#[test]
fn the_socket_is_closed_to_others_whatever_the_umask() {
    require_root!("socket_mode");
    let tmp = TempDir::new("umask");
    let socket = tmp.0.join("run/u1.sock");
    let cfg = format!("[node]\nname = \"u1\"\n{PORTS}");
    let node = Node::start(
        &tmp.0,
        "u1",
        &cfg,
        &socket,
        &["sh", "-c", "umask 000; exec \"$0\" \"$@\""],
    );
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&socket), 0o660, "socket mode under umask 000");
    assert_eq!(mode(socket.parent().unwrap()), 0o750, "socket directory mode");
    // Another user cannot even connect, so cannot replace the default route.
    let o = node.weft(&NOBODY, &["route", "add", "default", "via", "10.0.0.254"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("Permission denied") || text(&o).contains("cannot reach"),
        "{}",
        text(&o)
    );
    let routes = text(&node.weft(&[], &["route", "ls"]));
    assert!(!routes.contains("default"), "{routes}");
}

#[test]
fn a_squatted_socket_stops_the_node_and_an_impostor_is_not_believed() {
    require_root!("squat");
    let tmp = TempDir::new("squat");
    // Another user's socket at the node's path: never used, never removed.
    let socket = tmp.0.join("s1.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    std::os::unix::fs::chown(&socket, Some(65534), Some(65534)).unwrap();
    let cfg = tmp.0.join("s1.toml");
    std::fs::write(&cfg, format!("[node]\nname = \"s1\"\n{PORTS}")).unwrap();
    let o = Command::new(WEFT)
        .args(["node", "run", "--config"])
        .arg(&cfg)
        .arg("--socket")
        .arg(&socket)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("created by uid 65534") && t.contains("refusing to use or remove it"),
        "{t}"
    );
    assert!(socket.exists(), "the other user's file is left alone");

    // An impostor serving a fake answer from a directory anyone may write
    // to: the root CLI refuses to believe it.
    let dir = tmp.0.join("open");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let fake = dir.join("r1.sock");
    let script = format!(
        "import socket\ns=socket.socket(socket.AF_UNIX)\ns.bind({:?})\ns.listen(4)\n\
         import os\nos.chmod({:?},0o777)\nprint('up',flush=True)\n\
         while True:\n c,_=s.accept()\n c.recv(4096)\n \
         c.sendall(b'HTTP/1.0 200 OK\\r\\ncontent-type: application/json\\r\\n\\r\\n[]')\n c.close()\n",
        fake.display().to_string(),
        fake.display().to_string()
    );
    let mut imp = Proc::spawn(
        Command::new("setpriv")
            .args(&NOBODY[1..])
            .args(["/usr/bin/python3", "-c", &script]),
    );
    let mut up = [0u8; 3];
    imp.0.stdout.as_mut().unwrap().read_exact(&mut up).unwrap();
    let o = Command::new(WEFT)
        .args(["filter", "ls"])
        .env("WEFT_SOCKET", &fake)
        .output()
        .unwrap();
    assert!(!o.status.success(), "the CLI believed an impostor: {}", text(&o));
    assert!(text(&o).contains("served by uid 65534"), "{}", text(&o));
}

#[test]
fn a_local_user_gets_the_rights_its_uid_is_given() {
    require_root!("uid_principal");
    let tmp = TempDir::new("uid");
    let socket = tmp.0.join("run/p1.sock");
    let cfg = format!(
        r#"[node]
name = "p1"
[api]
group = "65534"
{PORTS}
[[principal]]
name = "tenant"
uid = 65534
rights = ["read", "filter"]
prefixes = ["10.1.0.0/16"]
classes = ["counter"]
"#
    );
    let node = Node::start(&tmp.0, "p1", &cfg, &socket, &[]);
    let ok = |prefix: &[&str], args: &[&str]| {
        let o = node.weft(prefix, args);
        assert!(o.status.success(), "weft {args:?}: {}", text(&o));
        text(&o)
    };
    let refused = |args: &[&str], why: &str| {
        let o = node.weft(&NOBODY, args);
        assert!(!o.status.success(), "weft {args:?} was allowed");
        assert!(text(&o).contains(why), "weft {args:?}: {}", text(&o));
    };
    // The operator's filter.
    ok(
        &[],
        &[
            "filter",
            "add",
            "-p",
            "udp",
            "-d",
            "10.1.9.0/24",
            "--plugin",
            "counter",
            "--autoinstance",
        ],
    );
    // Within its rights.
    let out = ok(
        &NOBODY,
        &[
            "filter",
            "add",
            "-p",
            "udp",
            "-d",
            "10.1.2.0/24",
            "--plugin",
            "counter",
            "--autoinstance",
        ],
    );
    assert!(out.contains("filter 2"), "{out}");
    ok(&NOBODY, &["filter", "ls"]);
    // Outside them: refused, naming what is missing.
    refused(
        &["route", "add", "default", "via", "10.0.0.254"],
        "missing right: route",
    );
    refused(
        &[
            "filter",
            "add",
            "-p",
            "udp",
            "-d",
            "10.2.0.0/24",
            "--plugin",
            "counter",
            "--autoinstance",
        ],
        "missing right: filter 10.2.0.0/24",
    );
    refused(
        &[
            "filter",
            "add",
            "-p",
            "udp",
            "-d",
            "10.1.3.0/24",
            "--plugin",
            "drop",
            "--autoinstance",
        ],
        "class drop",
    );
    refused(&["filter", "rm", "1"], "belongs to the operator");
    ok(&NOBODY, &["filter", "rm", "2"]);
    // One audit line per change, with who made it.
    std::thread::sleep(Duration::from_millis(100));
    let log = node.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("weft::audit")).collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("who=\"tenant\"") && l.contains("DELETE") && l.contains("status=200")),
        "{log}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("who=\"tenant\"") && l.contains("status=403")),
        "{log}"
    );
    assert!(
        lines.iter().any(|l| l.contains("who=\"uid 0\"") && l.contains("POST")),
        "{log}"
    );
}

#[test]
fn tcp_takes_credentials_and_fetches_go_only_to_configured_code_servers() {
    let tmp = TempDir::new("tcp");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let token = "wft_cli-test-token";
    let key = weft_repo::SecretKey::generate().unwrap();
    // A code server nobody configured, watched for connections.
    let unlisted = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    unlisted.set_nonblocking(true).unwrap();
    let cfg = format!(
        r#"[node]
name = "t1"
[api]
tcp = "127.0.0.1:{port}"
{PORTS}
[plugins]
trusted_keys = ["{}"]
repos = ["http://127.0.0.1:9"]
cache_dir = "{}"
[[principal]]
name = "ops"
token_sha256 = "{}"
rights = ["all"]
"#,
        key.public(),
        tmp.0.join("cache").display(),
        weft_repo::sha256_hex(token.as_bytes())
    );
    let node = Node::start(&tmp.0, "t1", &cfg, &tmp.0.join("t1.sock"), &[]);
    let url = format!("http://127.0.0.1:{port}");
    let over_tcp = |env: &[(&str, &str)], args: &[&str]| {
        let mut c = Command::new(WEFT);
        c.args(args).arg("--node").arg(&url).env_remove("WEFT_SOCKET");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let o = over_tcp(&[], &["node", "show"]);
    assert!(
        !o.status.success() && text(&o).contains("needs credentials"),
        "{}",
        text(&o)
    );
    let o = over_tcp(&[("WEFT_TOKEN", "wft_wrong")], &["node", "show"]);
    assert!(
        !o.status.success() && text(&o).contains("unknown bearer token"),
        "{}",
        text(&o)
    );
    let o = over_tcp(&[("WEFT_TOKEN", token)], &["node", "show"]);
    assert!(o.status.success() && text(&o).contains("node t1"), "{}", text(&o));

    // Server-side request forgery: --from must be a configured server.
    let o = over_tcp(
        &[("WEFT_TOKEN", token)],
        &[
            "plugin",
            "load",
            "netmon",
            "--from",
            &format!("http://{}", unlisted.local_addr().unwrap()),
        ],
    );
    assert!(!o.status.success());
    assert!(
        text(&o).contains("is not one of this node's code servers"),
        "{}",
        text(&o)
    );
    assert!(unlisted.accept().is_err(), "the node connected to an unlisted server");
    let o = node.weft(&[], &["plugin", "load", "netmon@"]);
    assert!(text(&o).contains("empty hash"), "{}", text(&o));
}

#[test]
fn the_code_server_closes_idle_half_open_connections_and_refuses_an_empty_hash() {
    let tmp = TempDir::new("repo");
    std::fs::create_dir(tmp.0.join("repo")).unwrap();
    let mut serve = Proc::spawn(
        Command::new(WEFT)
            .args(["repo", "serve"])
            .arg(tmp.0.join("repo"))
            .args(["--listen", "127.0.0.1:0"]),
    );
    let mut line = String::new();
    let mut out = serve.0.stdout.take().unwrap();
    let mut b = [0u8; 1];
    while !line.ends_with('\n') {
        out.read_exact(&mut b).unwrap();
        line.push(b[0] as char);
    }
    let addr = line.trim().rsplit("http://").next().unwrap().to_string();

    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.write_all(b"GET /v1/plugins/netmon@/module HTTP/1.0\r\n\r\n").unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    assert!(r.starts_with("HTTP/1.0 400") && r.contains("bad hash"), "{r}");

    // Half a request, then silence: closed by the header timeout.
    let t = Instant::now();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.write_all(b"GET /v1/plu").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut sink = Vec::new();
    let n = s.read_to_end(&mut sink);
    assert!(n.is_ok() || t.elapsed() < Duration::from_secs(30), "not closed: {n:?}");
    assert!(t.elapsed() < Duration::from_secs(20), "closed after {:?}", t.elapsed());
}
