//! Hosts on the data path against nodes' control planes, in network
//! namespaces: an end host cannot change a router, and one that floods a
//! node's TCP API with idle connections neither stops its operator's socket
//! nor takes its ports down.

mod support;

use std::time::Duration;
use support::*;

fn line3() -> std::path::PathBuf {
    root_dir().join("topologies/line3.toml")
}

/// Reproduces the finding: h1 POSTing a drop filter to r2's address.
#[test]
fn an_end_host_cannot_reconfigure_a_router() {
    require!("host_vs_api", "ping", "curl", "nft");
    let net = Net::up(&line3(), "hapi");
    net.ok("h1", &["ping", "-c", "2", "-i", "0.2", "-W", "2", "10.0.2.2"]);
    let o = net.exec(
        "h1",
        &[
            "curl",
            "-sS",
            "-m",
            "3",
            "-d",
            r#"{"proto":"icmp","plugin":"drop","autoinstance":true}"#,
            "http://10.0.12.2:7070/v1/filters",
        ],
    );
    assert!(
        !o.status.success(),
        "r2's API answered h1: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    // Nothing changed on r2, and h1's pings still cross it.
    let filters = net.weft("r2", &["filter", "ls"]);
    assert!(!filters.contains("drop"), "{filters}");
    net.ok("h1", &["ping", "-c", "5", "-i", "0.2", "-W", "2", "10.0.2.2"]);
}

/// 2,000 idle connections from h1 to r1's TCP API (`--api-tcp`): the cap
/// refuses what is over it, the operator's Unix socket answers, both ports
/// stay up and h1's traffic to h2 crosses r1 during and after.
#[test]
fn idle_connections_neither_stop_the_api_nor_take_a_port_down() {
    require!("api_flood", "ping", "nft", "python3");
    let net = Net::up_with(&line3(), "flood", &["--api-tcp"]);
    net.ok("h1", &["ping", "-c", "2", "-i", "0.2", "-W", "2", "10.0.2.2"]);
    let script = r#"
import socket, resource, sys, time
resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
held = []
for i in range(2000):
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect(("10.0.1.1", 7070))
        held.append(s)
    except OSError as e:
        pass
print("held", len(held), flush=True)
time.sleep(float(sys.argv[1]))
"#;
    let flood = net.spawn("h1", &["python3", "-c", script, "8"]);
    // The flood is on: the node still does its job.
    std::thread::sleep(Duration::from_secs(3));
    let show = net.weft("r1", &["node", "show"]);
    assert!(
        show.matches(" UP ").count() >= 2 || show.matches("UP").count() >= 2,
        "{show}"
    );
    assert!(!show.contains("DOWN"), "{show}");
    net.ok("h1", &["ping", "-c", "10", "-i", "0.1", "-W", "2", "10.0.2.2"]);
    let (_, out) = flood.wait(Duration::from_secs(30));
    let held: usize = out
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(held > 1000, "the flood opened only {held} connections: {out}");
    let log = net.log("r1");
    assert!(log.contains("connection cap reached"), "{log}");
    assert!(!log.contains("link down"), "{log}");
    // And after it.
    net.ok("h1", &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.0.2.2"]);
    let show = net.weft("r1", &["node", "show"]);
    assert!(!show.contains("DOWN"), "{show}");
    let token = net.api_token();
    let auth = format!("Authorization: Bearer {token}");
    let o = net.ok(
        "h1",
        &["curl", "-sS", "-m", "5", "-H", &auth, "http://10.0.1.1:7070/v1/node"],
    );
    assert!(o.contains("\"name\":\"r1\""), "{o}");
}
