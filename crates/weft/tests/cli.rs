//! The CLI against a running node: `weft node run` as a child process, then
//! the operator's commands through its API socket.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::{TempDir, WEFT};

/// A running `weft node run`; killed on drop so a failing test leaves no
/// process behind.
struct NodeProc {
    child: Child,
    socket: PathBuf,
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const CONFIG: &str = r#"
[node]
name = "t1"

[[port]]
name = "eth0"
mac = "02:00:00:00:00:01"
addrs = ["10.0.0.1/24", "2001:db8::1/64"]

[[port]]
name = "eth1"
mac = "02:00:00:00:01:01"
addrs = ["10.0.1.1/24"]
"#;

fn start_node(dir: &Path) -> NodeProc {
    start_node_with(dir, CONFIG)
}

/// `weft node run` on `config` (file `t1.toml`, socket `t1.sock` in `dir`).
fn start_node_with(dir: &Path, config: &str) -> NodeProc {
    let cfg = dir.join("t1.toml");
    std::fs::write(&cfg, config).unwrap();
    let socket = dir.join("t1.sock");
    // A stale socket of a crashed node (ours, nobody answering) must not
    // stop a new one.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let mut child = Command::new(WEFT)
        .args(["node", "run", "--config"])
        .arg(&cfg)
        .arg("--socket")
        .arg(&socket)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let node = NodeProc { child, socket };
    // The startup line names the socket (a node name with a newline
    // spreads it over two lines).
    let mut out = BufReader::new(stdout);
    let mut line = String::new();
    while !line.contains(&node.socket.display().to_string()) {
        assert!(
            out.read_line(&mut line).unwrap() > 0 && line.len() < 4096,
            "startup line: {line:?}"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(&node.socket).is_err() {
        assert!(Instant::now() < deadline, "the node did not open its socket");
        std::thread::sleep(Duration::from_millis(20));
    }
    node
}

fn weft(node: &NodeProc, args: &[&str]) -> Output {
    Command::new(WEFT)
        .args(args)
        .env("WEFT_SOCKET", &node.socket)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// Run a command that must succeed; its stdout.
#[track_caller]
fn ok(node: &NodeProc, args: &[&str]) -> String {
    let o = weft(node, args);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "weft {args:?} failed: {err}\n{out}");
    out
}

/// Run a command that must fail; its stderr.
#[track_caller]
fn fails(node: &NodeProc, args: &[&str]) -> String {
    let o = weft(node, args);
    assert!(!o.status.success(), "weft {args:?} should have failed");
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn report(node: &NodeProc, id: &str) -> serde_json::Value {
    serde_json::from_str(&ok(node, &["instance", "report", id])).unwrap()
}

/// The `filter ls` row of filter `id`.
fn filter_row(node: &NodeProc, id: &str) -> Option<String> {
    ok(node, &["filter", "ls"])
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id))
        .map(str::to_string)
}

#[test]
fn operator_drives_a_running_node() {
    let dir = TempDir::new("cli");
    let node = start_node(&dir.0);

    // PromethOS' example (its `--plugin` is `--class`'s alias): the
    // instance id alone on the first line.
    let out = ok(
        &node,
        &[
            "filter",
            "add",
            "--hook",
            "prerouting",
            "-p",
            "udp",
            "-s",
            "129.132.66.115",
            "--dport",
            "6060",
            "--plugin",
            "ratelimit",
            "--autoinstance",
            "--config",
            "65536",
        ],
    );
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("#1"), "{out}");
    assert_eq!(lines.next(), Some("filter 1"), "{out}");

    let ls = ok(&node, &["filter", "ls"]);
    assert!(ls.starts_with("Chain PREROUTING\n"), "{ls}");
    let header: Vec<&str> = ls.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(header[7], "chain", "a filter's instances are its chain: {ls}");
    let row = filter_row(&node, "1").unwrap();
    assert_eq!(row.split_whitespace().nth(1), Some("CHAIN"), "{row}");
    for want in ["ratelimit#1", "udp dpt:6060", "129.132.66.115", "anywhere"] {
        assert!(row.contains(want), "{want:?} not in {row:?}");
    }

    // The control port, then the reporting port.
    assert_eq!(ok(&node, &["instance", "ctl", "#1", "131072"]).trim(), "ok");
    let r = report(&node, "#1");
    assert_eq!(r["class"], "ratelimit");
    assert_eq!(r["element"]["rate"], 131072, "{r}");

    // LANA: a new block, bound behind the rate limiter, set, replaced,
    // unbound.
    assert_eq!(ok(&node, &["fb", "new", "counter"]).trim(), "#2");
    ok(&node, &["fb", "bind", "#2", "1"]);
    assert!(filter_row(&node, "1").unwrap().contains("ratelimit#1 -> counter#2"));
    let insts = ok(&node, &["instance", "ls"]);
    assert!(
        insts.lines().any(|l| l.starts_with("counter#2") && l.contains(" 1 ")),
        "{insts}"
    );

    ok(&node, &["fb", "set", "#1", "rate=262144"]);
    assert_eq!(report(&node, "#1")["element"]["rate"], 262144);
    let err = fails(&node, &["fb", "set", "#1", "nonsense"]);
    assert!(err.contains("key=value"), "{err}");

    ok(&node, &["fb", "replace", "#2", "counter"]);
    assert!(
        filter_row(&node, "1").unwrap().contains("ratelimit#1 -> counter#2"),
        "replace keeps the bindings"
    );
    assert_eq!(report(&node, "#2")["generation"], 1);
    ok(&node, &["fb", "replace", "#2", "counter", "--drop-state"]);
    assert_eq!(report(&node, "#2")["generation"], 2);

    ok(&node, &["fb", "unbind", "#2", "1"]);
    let row = filter_row(&node, "1").unwrap();
    assert!(row.contains("ratelimit#1") && !row.contains("counter#2"), "{row}");
    let err = fails(&node, &["fb", "unbind", "#2", "1"]);
    assert!(err.contains("not bound"), "{err}");

    // Classes: refused while in use, removable when not.
    let classes = ok(&node, &["fb", "ls"]);
    assert!(
        classes.contains("ratelimit") && classes.contains("counter"),
        "{classes}"
    );
    let err = fails(&node, &["fb", "rm", "ratelimit"]);
    assert!(err.contains("has instances"), "{err}");
    let err = fails(&node, &["fb", "add", "counter"]);
    assert!(err.contains("exists"), "{err}");

    // Filters and instances go away.
    ok(&node, &["filter", "rm", "1"]);
    assert!(filter_row(&node, "1").is_none());
    ok(&node, &["instance", "rm", "#2"]);
    ok(&node, &["instance", "rm", "#1"]);
    ok(&node, &["fb", "rm", "ratelimit"]);
    let err = fails(
        &node,
        &["filter", "add", "--all", "--plugin", "ratelimit", "--autoinstance"],
    );
    assert!(err.contains("unknown class"), "{err}");
    // This node has no [plugins]: the refusal says why nothing was fetched.
    assert!(err.contains("loads no plugins") && err.contains("[plugins]"), "{err}");
    ok(&node, &["fb", "add", "ratelimit"]);

    // Routes, ip-route style.
    ok(&node, &["route", "add", "192.0.2.0/24", "via", "10.0.0.254"]);
    ok(&node, &["route", "add", "default", "via", "10.0.1.254", "dev", "eth1"]);
    let routes = ok(&node, &["route", "ls"]);
    for want in [
        "192.0.2.0/24 via 10.0.0.254 dev eth0 proto static",
        "default via 10.0.1.254 dev eth1 proto static",
        "10.0.1.0/24 dev eth1 proto kernel scope link",
    ] {
        assert!(routes.lines().any(|l| l == want), "{want:?} not in\n{routes}");
    }
    ok(&node, &["route", "del", "192.0.2.0/24"]);
    assert!(!ok(&node, &["route", "ls"]).contains("192.0.2.0/24"));

    // Errors: non-zero exit, a clear message on stderr.
    let err = fails(&node, &["instance", "report", "#9"]);
    assert!(err.contains("no instance #9"), "{err}");
    let err = fails(&node, &["instance", "ctl", "#9", "1"]);
    assert!(err.contains("no instance #9"), "{err}");
    let err = fails(&node, &["route", "add", "10.0.0.0/33", "via", "10.0.0.254"]);
    assert!(err.contains("bad prefix"), "{err}");
    let err = fails(&node, &["route", "add", "198.51.100.0/24", "via", "10.9.9.9"]);
    assert!(err.contains("not on a connected network"), "{err}");
    let err = fails(&node, &["route", "rm", "203.0.113.0/24"]);
    assert!(err.contains("no route"), "{err}");
    let err = fails(&node, &["filter", "add", "--dport", "2000-1000"]);
    assert!(err.contains("port range"), "{err}");

    // Node-wide views.
    let show = ok(&node, &["node", "show"]);
    assert!(show.contains("node t1") && show.contains("inet 10.0.0.1/24"), "{show}");
    let metrics = ok(&node, &["metrics"]);
    assert!(metrics.contains("weft_drops_total"), "{metrics}");

    // A second node on the same socket is refused.
    let o = Command::new(WEFT)
        .args(["node", "run", "--config"])
        .arg(dir.0.join("t1.toml"))
        .arg("--socket")
        .arg(&node.socket)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("another node"));

    // SIGTERM: a clean stop that removes the socket.
    let mut node = node;
    let st = Command::new("kill")
        .args(["-TERM", &node.child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(s) = node.child.try_wait().unwrap() {
            assert!(s.success(), "exit status {s}");
            break;
        }
        assert!(Instant::now() < deadline, "the node did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!node.socket.exists(), "the socket file is removed on exit");
}

/// Handlers are data (Click's `add_handlers`): `--long` lists what each
/// class and each instance answers; the short listings stay as they were.
#[test]
fn long_listings_show_handlers() {
    let dir = TempDir::new("cli-handlers");
    let node = start_node(&dir.0);
    assert_eq!(ok(&node, &["fb", "new", "counter"]).trim(), "#1");

    let short = ok(&node, &["instance", "ls"]);
    assert!(!short.contains("handler"), "{short}");
    let long = ok(&node, &["instance", "ls", "--long"]);
    let block: Vec<&str> = long.lines().skip_while(|l| *l != "counter#1").collect();
    assert_eq!(
        block.get(1).map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["handler", "access", "about"]),
        "{long}"
    );
    for (name, access) in [("packets", "read"), ("bytes", "read"), ("reset", "write")] {
        assert!(
            block.iter().any(|l| l.split_whitespace().take(2).eq([name, access])),
            "{name} {access} not in\n{long}"
        );
    }

    let short = ok(&node, &["fb", "ls"]);
    assert!(!short.contains("handler"), "{short}");
    let long = ok(&node, &["fb", "ls", "-l"]);
    let block: Vec<&str> = long.lines().skip_while(|l| *l != "ratelimit").collect();
    assert!(
        block.get(1).is_some_and(|l| l.starts_with("  config: RATE [BURST]")),
        "{long}"
    );
    assert!(
        block
            .iter()
            .any(|l| l.split_whitespace().take(2).eq(["reset", "write"])),
        "{long}"
    );
}

#[test]
fn check_names_the_line() {
    let dir = TempDir::new("check");
    let good = dir.0.join("good.toml");
    std::fs::write(&good, CONFIG).unwrap();
    let o = Command::new(WEFT)
        .args(["node", "check", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let bad = dir.0.join("bad.toml");
    std::fs::write(
        &bad,
        format!("{CONFIG}\n[[filter]]\nproto = \"udp\"\nchain = [\"missing\"]\n"),
    )
    .unwrap();
    let o = Command::new(WEFT)
        .args(["node", "check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.toml:17:"), "{err}");
    assert!(err.contains("\"missing\" is not defined"), "{err}");

    let o = Command::new(WEFT)
        .args(["filter", "ls", "--node"])
        .arg(dir.0.join("nobody.sock"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot reach a node"));
}

/// `/v1/metrics` of a running node passes `promtool check metrics`
/// (Prometheus' own parser and linter): every family once with HELP and
/// TYPE, samples together, label values escaped — the node's name here
/// holds a quote, a backslash and a newline. The node has a VXLAN port, so
/// the port drivers' families are there too, a drop counted in each.
#[test]
fn metrics_pass_promtool() {
    let promtool = Command::new("sh")
        .args(["-c", "command -v promtool"])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !promtool {
        let root = std::fs::read_to_string("/proc/self/status")
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
        assert!(
            root,
            "promtool is missing: install Debian's prometheus package (scripts/test does, as root)"
        );
        eprintln!("SKIP: metrics_pass_promtool: promtool is not installed (scripts/test installs it as root)");
        return;
    }
    let dir = TempDir::new("metrics");
    let (peer, local) = {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        (a, b.local_addr().unwrap().port())
    };
    let config = format!(
        r#"
[node]
name = "t\"1\\\nx"

[[port]]
name = "eth0"
mac = "02:00:00:00:00:01"
addrs = ["10.0.0.1/24"]

[[port]]
name = "l0"
kind = "vxlan"
mac = "02:00:00:00:00:02"
local = "127.0.0.1:{local}"
remote = "{}"
vni = 5
addrs = ["10.0.5.1/24"]

[[instance]]
name = "c"
class = "counter"

[[filter]]
proto = "udp"
chain = ["c"]
"#,
        peer.local_addr().unwrap()
    );
    let node = start_node_with(&dir.0, &config);
    // A datagram too short for a VXLAN header: one driver drop.
    peer.send_to(b"abc", ("127.0.0.1", local)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let t = ok(&node, &["metrics"]);
        // The runner publishes driver counters twice a second.
        if t.contains("reason=\"vxlan-truncated\"} 1") {
            break t;
        }
        assert!(Instant::now() < deadline, "no driver drop in:\n{t}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        text.contains(r#"weft_icmp_errors_sent_total{node="t\"1\\\nx"} 0"#),
        "{text}"
    );
    assert!(
        text.contains(r##"weft_instance_packets_total{node="t\"1\\\nx",instance="#1",class="counter"} 0"##),
        "{text}"
    );
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut check.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let o = check.wait_with_output().unwrap();
    assert!(
        o.status.success() && o.stdout.is_empty() && o.stderr.is_empty(),
        "promtool check metrics: {}{}\non:\n{text}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// docs/datarouter.md, "Configuring the element": the
/// commands it gives for `max_string` and `unknown=`, and `flush`, which
/// keeps the class and its miss outcome.
#[test]
fn datarouter_settings_as_documented() {
    let dir = TempDir::new("drset");
    let node = start_node(&dir.0);
    let id = ok(&node, &["fb", "new", "datarouter"]).trim().to_string();
    // `fb set` changes the keys given (each moves to the end) and keeps the
    // others.
    ok(&node, &["fb", "set", &id, "max_string=64", "unknown=icmp"]);
    assert_eq!(report(&node, &id)["config"], "max_string=64 unknown=icmp");
    ok(&node, &["fb", "set", &id, "max_string=32"]);
    assert_eq!(report(&node, &id)["config"], "unknown=icmp max_string=32");
    // `instance ctl` with keys is a whole new configuration.
    ok(&node, &["instance", "ctl", &id, "unknown=drop"]);
    assert_eq!(report(&node, &id)["config"], "unknown=drop");
    let err = fails(&node, &["fb", "set", &id, "icmp_rate=10"]);
    assert!(err.contains("[node]"), "{err}");
    // flush empties the class; the class and its miss outcome stay.
    ok(
        &node,
        &["droute", "class", "DNS", "add", "joe.com", "10.0.1.9", "alg", "suffix"],
    );
    ok(&node, &["droute", "class", "DNS", "miss", "icmp"]);
    ok(&node, &["droute", "class", "DNS", "flush"]);
    let ls = ok(&node, &["droute", "ls"]);
    let row = ls
        .lines()
        .find(|l| l.starts_with("DNS"))
        .unwrap_or_else(|| panic!("{ls}"));
    assert!(
        row.split_whitespace().nth(1) == Some("0") && row.ends_with("icmp"),
        "{ls}"
    );
}

/// `weft … | head`: a reader that goes away early ends `weft` quietly with
/// the status a shell reports for a program SIGPIPE ended (141), whether
/// the output comes from a node (`fb ls`) or not (`emu run`, `demo`). The
/// pipe's reading end is closed before `weft` starts, so its first write
/// meets EPIPE.
#[test]
fn closed_stdout_ends_quietly() {
    let dir = TempDir::new("pipe");
    let node = start_node(&dir.0);
    let topology = support::root_dir().join("topologies/line3.toml");
    let runs: [(&str, Vec<&str>); 3] = [
        ("fb ls", vec!["fb", "ls"]),
        ("emu run", vec!["emu", "run", topology.to_str().unwrap()]),
        ("demo", vec!["demo"]),
    ];
    for (what, args) in runs {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let o = Command::new(WEFT)
            .args(&args)
            .env("WEFT_SOCKET", &node.socket)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{what}: {err}");
        assert_eq!(o.status.code(), Some(141), "{what}: {}: {err}", o.status);
        assert!(err.trim().is_empty(), "{what}: quietly, not {err:?}");
    }
}

/// `--node` belongs to the commands that talk to a node: their help shows
/// it and they take it before or after their subcommand; the others
/// neither show nor take it.
#[test]
fn node_option_only_where_a_node_is_talked_to() {
    let help = |args: &[&str]| {
        let o = Command::new(WEFT).args(args).arg("--help").output().unwrap();
        assert!(o.status.success(), "{args:?} --help");
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    for talks in [
        &["filter", "ls"][..],
        &["filter", "add"],
        &["instance", "report"],
        &["fb", "new"],
        &["route", "add"],
        &["route", "replace"],
        &["metrics"],
        &["plugin", "load"],
        &["droute"],
        &["pbr", "create"],
        &["node", "show"],
    ] {
        assert!(help(talks).contains("--node <PATH|URL>"), "{talks:?} lacks --node");
    }
    for local in [
        &[][..],
        &["keygen"],
        &["token"],
        &["send"],
        &["recv"],
        &["bench"],
        &["demo"],
        &["emu", "run"],
        &["emu", "exec"],
        &["repo", "ls"],
        &["repo", "serve"],
        &["node", "run"],
        &["node", "check"],
    ] {
        assert!(!help(local).contains("--node"), "{local:?} offers --node");
    }
    let dir = TempDir::new("nodeopt");
    let o = Command::new(WEFT)
        .args(["keygen", "--node", "x", "--out"])
        .arg(dir.0.join("k"))
        .output()
        .unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("unexpected argument '--node'"));
    assert!(!dir.0.join("k").exists());
    // Before or after the subcommand, and `WEFT_SOCKET` as before.
    let node = start_node(&dir.0);
    let sock = node.socket.to_str().unwrap();
    for args in [
        &["route", "--node", sock, "ls"][..],
        &["route", "ls", "--node", sock],
        &["node", "show", "--node", sock],
        &["metrics", "--node", sock],
    ] {
        let o = Command::new(WEFT)
            .args(args)
            .env_remove("WEFT_SOCKET")
            .output()
            .unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    }
    ok(&node, &["route", "ls"]);
}

/// `route add` of a prefix that has a route is refused as `ip route add`
/// refuses it ("File exists"), naming `route replace` and `route del`;
/// `route replace` changes it (or adds a new one).
#[test]
fn route_add_refuses_an_existing_prefix() {
    let dir = TempDir::new("routes");
    let node = start_node(&dir.0);
    ok(&node, &["route", "add", "192.0.2.0/24", "via", "10.0.0.254"]);
    let err = fails(&node, &["route", "add", "192.0.2.0/24", "via", "10.0.1.254"]);
    assert!(err.contains("a route for 192.0.2.0/24 exists"), "{err}");
    assert!(
        err.contains("weft route replace 192.0.2.0/24 via 10.0.1.254") && err.contains("weft route del 192.0.2.0/24"),
        "{err}"
    );
    // The same route again, and a connected prefix, are refused too.
    let err = fails(&node, &["route", "add", "192.0.2.0/24", "via", "10.0.0.254"]);
    assert!(err.contains("exists"), "{err}");
    let err = fails(&node, &["route", "add", "10.0.1.0/24", "via", "10.0.0.254"]);
    assert!(err.contains("a route for 10.0.1.0/24 exists"), "{err}");
    let routes = ok(&node, &["route", "ls"]);
    assert!(
        routes
            .lines()
            .any(|l| l == "192.0.2.0/24 via 10.0.0.254 dev eth0 proto static"),
        "the first route stays:\n{routes}"
    );
    ok(&node, &["route", "replace", "192.0.2.0/24", "via", "10.0.1.254"]);
    ok(&node, &["route", "replace", "198.51.100.0/24", "dev", "eth0"]);
    let routes = ok(&node, &["route", "ls"]);
    for want in [
        "192.0.2.0/24 via 10.0.1.254 dev eth1 proto static",
        "198.51.100.0/24 dev eth0 proto static",
    ] {
        assert!(routes.lines().any(|l| l == want), "{want:?} not in\n{routes}");
    }
    assert!(!routes.contains("10.0.0.254"), "{routes}");
}

/// `weft repo ls DIR` of a directory that is not there is an error, not an
/// empty list.
#[test]
fn repo_ls_of_a_missing_directory_fails() {
    let dir = TempDir::new("repols");
    let missing = dir.0.join("nonexistent");
    let o = Command::new(WEFT).args(["repo", "ls"]).arg(&missing).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains(&format!("{}: no such directory", missing.display())),
        "{err}"
    );
    assert!(o.stdout.is_empty());
    // An empty repository lists nothing, successfully.
    let o = Command::new(WEFT).args(["repo", "ls"]).arg(&dir.0).output().unwrap();
    assert!(o.status.success() && o.stdout.is_empty());
}

/// The node's "configuration applied" line counts every instance the file
/// made: one `[[instance]]` and one from an `autoinstance` filter are two.
#[test]
fn configuration_log_counts_every_instance() {
    let dir = TempDir::new("instlog");
    let cfg = dir.0.join("t1.toml");
    std::fs::write(
        &cfg,
        format!(
            "{CONFIG}
[[instance]]
name = \"c\"
class = \"counter\"

[[filter]]
proto = \"udp\"
chain = [\"c\"]

[[filter]]
proto = \"tcp\"
plugin = \"counter\"
autoinstance = true
"
        ),
    )
    .unwrap();
    let mut node = support::Proc::spawn(
        Command::new(WEFT)
            .args(["node", "run", "--config"])
            .arg(&cfg)
            .arg("--socket")
            .arg(dir.0.join("t1.sock"))
            .env("RUST_LOG", "info"),
    );
    let mut err = BufReader::new(node.0.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("configuration applied") {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "no configuration line");
    }
    assert!(line.contains(" instances=2 "), "{line}");
    assert!(line.contains(" filters=2"), "{line}");
}
