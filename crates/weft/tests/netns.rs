//! End-to-end tests with real Linux hosts and real peers (DESIGN section
//! 8.3): Weft nodes as `weft node run` processes in network namespaces,
//! joined to hosts by veth (AF_PACKET ports) or VXLAN, traffic from `ping`,
//! `traceroute`, `socat`, `iperf3`, captures with `tcpdump`.
//!
//! They need root and `ip netns`; without them each test prints `SKIP:`
//! and passes. `scripts/test` installs the peers from Debian's packages
//! when it runs as root. Every test names its namespaces after its own run
//! id and removes them — and kills its processes — on drop, so a failing
//! test leaves nothing behind.

mod support;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

const ONE_ROUTER: &str = r#"
routing = "shortest-path"
[[node]]
name = "r1"
[[host]]
name = "h1"
addr = "10.0.1.2/24"
addr6 = "2001:db8:1::2/64"
[[host]]
name = "h2"
addr = "10.0.2.2/24"
addr6 = "2001:db8:2::2/64"
[[link]]
a = "h1"
b = "r1:eth0"
b_addr = ["10.0.1.1/24", "2001:db8:1::1/64"]
[[link]]
a = "r1:eth1"
b = "h2"
a_addr = ["10.0.2.1/24", "2001:db8:2::1/64"]
"#;

#[test]
fn one_router_ping_traceroute_and_node_local_traffic() {
    require!("one_router", "ping", "traceroute", "socat", "nft");
    let tmp = TempDir::new("r1");
    let topo = tmp.0.join("one.toml");
    std::fs::write(&topo, ONE_ROUTER).unwrap();
    let net = Net::up(&topo, "one");
    net.ok("h1", &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.0.2.2"]);
    net.ok("h2", &["ping", "-c", "2", "-i", "0.2", "-W", "2", "10.0.1.2"]);
    net.ok(
        "h1",
        &["ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", "2001:db8:2::2"],
    );
    let t = net.ok("h1", &["traceroute", "-n", "-q", "1", "-w", "2", "10.0.2.2"]);
    assert_eq!(hops(&t), ["10.0.1.1", "10.0.2.2"], "{t}");
    // ICMP to the node's far address: answered by the engine.
    net.ok("h1", &["ping", "-c", "1", "-W", "2", "10.0.2.1"]);
    // TCP to the node's API on its Weft address: punted to the kernel's TCP
    // through the TUN device, answered by the node's HTTP API — which asks
    // for the run's token (`--api-tcp`; without it nothing listens there).
    let net = Net::up_with(&topo, "onet", &["--api-tcp"]);
    let token = net.api_token();
    let get = |auth: Option<&str>| {
        let mut c = Command::new("ip");
        c.args([
            "netns",
            "exec",
            &net.ns("h1"),
            "socat",
            "-t",
            "5",
            "-,ignoreeof",
            "TCP:10.0.1.1:7070",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let auth = auth
            .map(|t| format!("Authorization: Bearer {}\r\n", t.trim()))
            .unwrap_or_default();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("GET /v1/node HTTP/1.0\r\nHost: r1\r\n{auth}\r\n").as_bytes())
            .unwrap();
        Proc(child).wait(Duration::from_secs(10)).1
    };
    let out = get(None);
    assert!(out.contains("401 Unauthorized"), "{out}");
    let out = get(Some(&token));
    assert!(out.contains("200 OK") && out.contains("\"name\":\"r1\""), "{out}");
}

fn line3() -> PathBuf {
    root_dir().join("topologies/line3.toml")
}

#[test]
fn three_routers_ping_traceroute_udp_tcp_and_link_flap() {
    require!("line3", "ping", "traceroute", "socat", "iperf3", "nft");
    let net = Net::up(&line3(), "l3");
    net.ok("h1", &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.0.2.2"]);
    net.ok(
        "h2",
        &["ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", "2001:db8:1::2"],
    );
    let t = net.ok("h1", &["traceroute", "-n", "-q", "1", "-w", "2", "10.0.2.2"]);
    assert_eq!(hops(&t), ["10.0.1.1", "10.0.12.2", "10.0.23.3", "10.0.2.2"], "{t}");

    // UDP with socat: the receiver gets the exact bytes.
    let tmp = TempDir::new("l3");
    let got = tmp.0.join("udp.out");
    let rx = net.spawn(
        "h2",
        &["socat", "-u", "UDP-RECV:7000", &format!("CREATE:{}", got.display())],
    );
    std::thread::sleep(Duration::from_millis(300));
    let msg = b"weft udp across three routers 0123456789";
    let mut c = Command::new("ip");
    c.args([
        "netns",
        "exec",
        &net.ns("h1"),
        "socat",
        "-u",
        "-",
        "UDP-SENDTO:10.0.2.2:7000",
    ])
    .stdin(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(msg).unwrap();
    assert!(child.wait().unwrap().success());
    wait_until("the datagram", Duration::from_secs(5), || {
        std::fs::read(&got).map(|b| b == msg).unwrap_or(false)
    });
    drop(rx);

    // TCP with iperf3 for a few seconds.
    let srv = net.spawn("h2", &["iperf3", "-s", "-1", "-p", "5201"]);
    std::thread::sleep(Duration::from_millis(500));
    let out = net.ok("h1", &["iperf3", "-c", "10.0.2.2", "-p", "5201", "-t", "2"]);
    assert!(out.contains("receiver"), "{out}");
    assert!(srv.wait(Duration::from_secs(10)).0);

    // Link down on r1's eth1: the node notices and says so, keeps running,
    // and forwards again when the link comes back.
    let r1 = net.ns("r1");
    let ip = |args: &[&str]| {
        let s = Command::new("ip").args(["-n", &r1]).args(args).status().unwrap();
        assert!(s.success());
    };
    ip(&["link", "set", "eth1", "down"]);
    wait_until("r1 eth1 DOWN", Duration::from_secs(5), || {
        net.weft("r1", &["node", "show"]).contains("eth1  mtu 1500  DOWN")
    });
    assert!(!net
        .exec("h1", &["ping", "-c", "1", "-W", "1", "10.0.2.2"])
        .status
        .success());
    ip(&["link", "set", "eth1", "up"]);
    wait_until("r1 eth1 UP", Duration::from_secs(5), || {
        net.weft("r1", &["node", "show"]).contains("eth1  mtu 1500  UP")
    });
    net.ok("h1", &["ping", "-c", "2", "-i", "0.3", "-W", "2", "10.0.2.2"]);
}

const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

#[test]
fn encrypt_decrypt_pair_hides_udp_6060_on_the_middle_link() {
    require!("encrypt", "socat", "tcpdump", "nft");
    let net = Net::up(&line3(), "enc");
    let cfg = format!("key={KEY}");
    // r1 seals UDP 6060 into ESP (tunnel mode: the outer header keeps h1's
    // and h2's addresses), r3 opens the ESP.
    let f = |node: &str, class: &str, m: &[&str]| {
        let mut args = vec!["filter", "add"];
        args.extend_from_slice(m);
        args.extend(["--plugin", class, "--autoinstance", "--config", &cfg]);
        net.weft(node, &args)
    };
    f("r1", "encrypt", &["-p", "udp", "--dport", "6060"]);
    f("r3", "decrypt", &["-p", "esp"]);
    let tmp = TempDir::new("enc");
    let pcap = tmp.0.join("mid.pcap");
    let mut cap = net.spawn(
        "r2",
        &[
            "tcpdump",
            "-Z",
            "root",
            "--immediate-mode",
            "-i",
            "eth0",
            "-n",
            "-U",
            "-w",
            &pcap.display().to_string(),
            "udp or esp",
        ],
    );
    // Capturing once tcpdump says so.
    let err = cap.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            if l.contains("listening on") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(15)).expect("tcpdump did not start");
    let secret_out = tmp.0.join("6060.out");
    let plain_out = tmp.0.join("7000.out");
    let rx1 = net.spawn(
        "h2",
        &[
            "socat",
            "-u",
            "UDP-RECV:6060",
            &format!("CREATE:{}", secret_out.display()),
        ],
    );
    let rx2 = net.spawn(
        "h2",
        &[
            "socat",
            "-u",
            "UDP-RECV:7000",
            &format!("CREATE:{}", plain_out.display()),
        ],
    );
    std::thread::sleep(Duration::from_millis(1500)); // tcpdump and socat ready
    let send = |port: u16, data: &[u8]| {
        let mut c = Command::new("ip");
        c.args([
            "netns",
            "exec",
            &net.ns("h1"),
            "socat",
            "-u",
            "-",
            &format!("UDP-SENDTO:10.0.2.2:{port}"),
        ])
        .stdin(Stdio::piped());
        let mut child = c.spawn().unwrap();
        child.stdin.take().unwrap().write_all(data).unwrap();
        assert!(child.wait().unwrap().success());
    };
    let secret = b"WEFT-SECRET-PLAINTEXT the quick brown fox \x00\x01\x02\xff";
    let visible = b"WEFT-VISIBLE-PLAINTEXT on port 7000";
    send(6060, secret);
    send(7000, visible);
    wait_until("both datagrams", Duration::from_secs(5), || {
        std::fs::read(&secret_out).map(|b| !b.is_empty()).unwrap_or(false)
            && std::fs::read(&plain_out).map(|b| !b.is_empty()).unwrap_or(false)
    });
    std::thread::sleep(Duration::from_millis(1200)); // past libpcap's buffer timeout
    let _ = Command::new("kill").args(["-INT", &cap.0.id().to_string()]).status();
    let _ = cap.wait(Duration::from_secs(5));
    drop((rx1, rx2));
    assert_eq!(std::fs::read(&secret_out).unwrap(), secret, "exact bytes after decrypt");
    assert_eq!(std::fs::read(&plain_out).unwrap(), visible, "other traffic untouched");
    let captured = std::fs::read(&pcap).unwrap();
    let has = |needle: &[u8]| captured.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"WEFT-VISIBLE-PLAINTEXT"), "the capture saw the middle link");
    assert!(!has(b"WEFT-SECRET"), "plaintext of UDP 6060 on the middle link");
    assert!(!has(b"quick brown fox"), "plaintext of UDP 6060 on the middle link");
    let esp = read_pcap(&captured)
        .iter()
        .filter(|f| f.len() > 34 && f[12..14] == [8, 0] && f[23] == 50)
        .count();
    assert_eq!(esp, 1, "the 6060 datagram crossed as ESP");
}

#[test]
fn filter_added_and_element_replaced_while_iperf3_runs() {
    require!("reconfigure", "iperf3", "nft");
    let net = Net::up(&line3(), "rep");
    let srv = net.spawn("h2", &["iperf3", "-s", "-1", "-p", "5202"]);
    std::thread::sleep(Duration::from_millis(500));
    let cli = net.spawn("h1", &["iperf3", "-c", "10.0.2.2", "-p", "5202", "-t", "4"]);
    std::thread::sleep(Duration::from_millis(1000));
    let out = net.weft(
        "r2",
        &["filter", "add", "-p", "tcp", "--plugin", "counter", "--autoinstance"],
    );
    let inst = out.split_whitespace().next().unwrap().to_string();
    assert!(inst.starts_with('#'), "{out}");
    std::thread::sleep(Duration::from_millis(1000));
    net.weft("r2", &["fb", "replace", &inst, "counter"]);
    let (ok, text) = cli.wait(Duration::from_secs(20));
    assert!(ok && text.contains("receiver"), "iperf3 client: {text}");
    assert!(srv.wait(Duration::from_secs(10)).0);
    let report = net.weft("r2", &["instance", "report", &inst]);
    assert!(report.contains("packets"), "{report}");
}

/// A node config with VXLAN ports: (name, local port, remote port, vni,
/// address), and routes.
fn vx_node(name: &str, idx: u8, ports: &[(&str, &str, &str, u32, &str)], routes: &[(&str, &str)]) -> String {
    let mut s = format!("[node]\nname = \"{name}\"\n");
    for (i, (p, l, r, vni, addr)) in ports.iter().enumerate() {
        s += &format!(
            "[[port]]\nname = \"{p}\"\nkind = \"vxlan\"\nmac = \"02:00:00:00:{idx:02x}:{i:02x}\"\nlocal = \"{l}\"\nremote = \"{r}\"\nvni = {vni}\naddrs = [\"{addr}\"]\n"
        );
    }
    for (prefix, via) in routes {
        s += &format!("[[route]]\nprefix = \"{prefix}\"\nvia = \"{via}\"\n");
    }
    s
}

/// Namespaces removed (their processes killed first) on drop.
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            let pids = Command::new("ip").args(["netns", "pids", ns]).output();
            if let Ok(o) = pids {
                for p in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", p]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn sh(args: &[&str]) {
    let o = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn three_vxlan_nodes_on_loopback_with_kernel_vxlan_hosts() {
    require!("vxlan", "ping", "iperf3");
    let id = run_id("vx");
    let ns = |n: &str| format!("weft-{id}-{n}");
    let (u, k, h1, h2) = (ns("u"), ns("k"), ns("h1"), ns("h2"));
    let _ns = Namespaces(vec![u.clone(), k.clone(), h1.clone(), h2.clone()]);
    for n in [&u, &k, &h1, &h2] {
        sh(&["ip", "netns", "add", n]);
        sh(&["ip", "-n", n, "link", "set", "lo", "up"]);
    }
    // The nodes' namespace `u`: nodes talk to each other on its loopback.
    // The hosts' kernel vxlan devices have their underlay in `k`, one veth
    // away: Linux (>= 6.5) short-cuts VXLAN to a local address
    // (`localbypass`) instead of sending UDP, so a kernel device cannot
    // reach a node on its own loopback without `nolocalbypass`, which older
    // iproute2 does not know (docs/ports.md).
    sh(&[
        "ip", "-n", &u, "link", "add", "ul", "type", "veth", "peer", "name", "kl", "netns", &k,
    ]);
    sh(&["ip", "-n", &u, "addr", "add", "192.168.0.1/24", "dev", "ul"]);
    sh(&["ip", "-n", &u, "addr", "add", "192.168.0.3/24", "dev", "ul"]);
    sh(&["ip", "-n", &u, "link", "set", "ul", "up"]);
    sh(&["ip", "-n", &k, "addr", "add", "192.168.0.2/24", "dev", "kl"]);
    sh(&["ip", "-n", &k, "link", "set", "kl", "up"]);
    let tmp = TempDir::new("vx");
    let setpriv = unsupported(&["setpriv"]).is_none();
    // Unprivileged node processes: the socket directory is theirs (a node
    // refuses a directory that others may write to).
    if setpriv {
        sh(&["chown", "65534:65534", &tmp.0.display().to_string()]);
    }
    let nodes = [
        (
            "r1",
            vx_node(
                "r1",
                1,
                &[
                    ("h", "192.168.0.1:4789", "192.168.0.2:4789", 101, "10.1.1.1/24"),
                    ("n", "127.0.0.1:10012", "127.0.0.1:10021", 12, "10.1.12.1/24"),
                ],
                &[("10.1.3.0/24", "10.1.12.2"), ("10.1.23.0/24", "10.1.12.2")],
            ),
        ),
        (
            "r2",
            vx_node(
                "r2",
                2,
                &[
                    ("a", "127.0.0.1:10021", "127.0.0.1:10012", 12, "10.1.12.2/24"),
                    ("b", "127.0.0.1:10023", "127.0.0.1:10032", 23, "10.1.23.2/24"),
                ],
                &[("10.1.1.0/24", "10.1.12.1"), ("10.1.3.0/24", "10.1.23.3")],
            ),
        ),
        (
            "r3",
            vx_node(
                "r3",
                3,
                &[
                    ("a", "127.0.0.1:10032", "127.0.0.1:10023", 23, "10.1.23.3/24"),
                    ("h", "192.168.0.3:4789", "192.168.0.2:4789", 103, "10.1.3.1/24"),
                ],
                &[("10.1.1.0/24", "10.1.23.2"), ("10.1.12.0/24", "10.1.23.2")],
            ),
        ),
    ];
    let mut procs = Vec::new();
    for (name, cfg) in &nodes {
        let path = tmp.0.join(format!("{name}.toml"));
        std::fs::write(&path, cfg).unwrap();
        let sock = tmp.0.join(format!("{name}.sock"));
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &u]);
        if setpriv {
            // VXLAN ports need no privileges: run the nodes as nobody.
            c.args(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]);
        }
        c.arg(WEFT)
            .args(["node", "run", "--config"])
            .arg(&path)
            .arg("--socket")
            .arg(&sock);
        procs.push((Proc::spawn(&mut c), sock));
    }
    for (_, sock) in &procs {
        wait_until("node socket", Duration::from_secs(15), || sock.exists());
    }
    // Linux hosts join with plain kernel vxlan devices (created in `k`, so
    // their underlay stays there, then moved into the host's namespace).
    for (h, dev, vni, remote, addr, gw) in [
        (&h1, "vx0", "101", "192.168.0.1", "10.1.1.2/24", "10.1.1.1"),
        (&h2, "vx1", "103", "192.168.0.3", "10.1.3.2/24", "10.1.3.1"),
    ] {
        sh(&[
            "ip",
            "-n",
            &k,
            "link",
            "add",
            dev,
            "type",
            "vxlan",
            "id",
            vni,
            "remote",
            remote,
            "local",
            "192.168.0.2",
            "dstport",
            "4789",
            "nolearning",
        ]);
        sh(&["ip", "-n", &k, "link", "set", dev, "netns", h]);
        sh(&["ip", "-n", h, "link", "set", dev, "mtu", "1450", "up"]);
        let _ = Command::new("ip")
            .args([
                "netns", "exec", h, "ethtool", "-K", dev, "tx", "off", "tso", "off", "gso", "off",
            ])
            .output();
        sh(&["ip", "-n", h, "addr", "add", addr, "dev", dev]);
        sh(&["ip", "-n", h, "route", "add", "default", "via", gw]);
    }
    let run = |ns: &str, args: &[&str]| -> (bool, String) {
        let o = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .output()
            .unwrap();
        (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        )
    };
    let (ok, out) = run(&h1, &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.1.3.2"]);
    assert!(ok, "ping across three VXLAN-linked nodes:\n{out}");
    let srv = Proc::spawn(Command::new("ip").args(["netns", "exec", &h2, "iperf3", "-s", "-1", "-p", "5203"]));
    std::thread::sleep(Duration::from_millis(500));
    let (ok, out) = run(&h1, &["iperf3", "-c", "10.1.3.2", "-p", "5203", "-t", "2"]);
    assert!(ok && out.contains("receiver"), "iperf3:\n{out}");
    assert!(srv.wait(Duration::from_secs(10)).0);
    drop(procs);
}
