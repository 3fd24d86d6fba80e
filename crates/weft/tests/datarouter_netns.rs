//! DataRouter end to end with real Linux hosts.
//!
//! * `datarouter_line_with_linux_hosts`: `topologies/datarouter-line.toml`
//!   brought up with `weft emu run --netns` (Weft nodes as processes, hosts
//!   as namespaces with the Linux stack), tables loaded with `weft droute`,
//!   a tagged datagram sent by `weft send` (the application API:
//!   `IP_OPTIONS`) from h1 and read with its tags by `weft recv` on h4 — the
//!   receiving Linux kernel hands the option to the application.
//! * `linux_router_between_datarouters_v4` / `_v6`: host A — Weft
//!   DataRouter D1 — a plain Linux router L (kernel forwarding only) — Weft
//!   DataRouter D2 — host B, built by hand from namespaces and veths. A sends
//!   a datagram with two tags to D1 (`weft send`: IPv4 `IP_OPTIONS`, IPv6 a
//!   raw socket), D1 resolves the first to D2 (reachable only through L), D2
//!   the second to B. `weft recv --show-tags` on B reads the payload and the
//!   exhausted chain; tcpdump on both of L's interfaces shows that L
//!   forwarded the tagged packet unchanged but for TTL / hop limit (and the
//!   IPv4 header checksum), and on B's interface what arrived there.
//! * `bad_tags_in_icmp_errors_get_no_answer_v4` / `_v6`: host
//!   A's kernel sends D1 ICMP errors with a bad tag through a raw socket;
//!   A receives no parameter problem but for the echo request among them.
//! * `closed_port_answers_are_limited_by_icmp_rate`: 300 UDP
//!   datagrams from A to a closed port of D1 (`icmp_rate = 10`): the port
//!   unreachables A receives stay within the budget.
//!
//! Needs root and `ip netns`; otherwise it prints `SKIP:` and passes.

mod support;

use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::*;
use weft_datarouter::wire::{locate, Where};
use weft_datarouter::TagChain;

#[test]
fn datarouter_line_with_linux_hosts() {
    if let Some(why) = unsupported(&[]) {
        eprintln!("SKIP: datarouter netns: {why}");
        return;
    }
    let help = Command::new(WEFT).args(["emu", "run", "--help"]).output().unwrap();
    if !String::from_utf8_lossy(&help.stdout).contains("--netns") {
        eprintln!("SKIP: datarouter netns: `weft emu run --netns` is unavailable");
        return;
    }
    let net = Net::up(&root_dir().join("topologies/datarouter-line.toml"), "dr");
    net.weft(
        "dr1",
        &["droute", "class", "DNS", "add", "joe.com", "10.0.23.3", "alg", "suffix"],
    );
    net.weft(
        "dr3",
        &[
            "droute",
            "class",
            "URL",
            "add",
            "joe.com",
            "10.0.34.4",
            "alg",
            "suffix",
            "rewrite",
            "copy:prefix,next:strip",
        ],
    );
    net.weft(
        "dr4",
        &["droute", "class", "URL", "add", "/apple", "10.0.4.2", "alg", "prefix"],
    );
    let rx = net.spawn(
        "h4",
        &[WEFT, "recv", "7000", "--show-tags", "--count", "1", "--timeout", "20"],
    );
    std::thread::sleep(Duration::from_millis(300));
    // Neighbours resolve on the first datagrams; send a few.
    net.ok(
        "h1",
        &[
            WEFT,
            "send",
            "--tag",
            "DNS:joe.com",
            "--tag",
            "URL:joe.com/apple",
            "10.0.1.1",
            "7000",
            "--data",
            "GET",
            "--count",
            "5",
            "--interval-ms",
            "200",
        ],
    );
    let (ok, out) = rx.wait(Duration::from_secs(30));
    assert!(ok, "{out}");
    assert!(
        out.contains("tags [DNS/suffix:joe.com URL/suffix:joe.com/apple URL/prefix:/apple ^]: GET"),
        "{out}"
    );
}

// ----- a Linux router between two DataRouters ---------------------

/// IPv4 or IPv6: which addresses the tables name and the datagram uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

/// The address of host `host` on link `net`. Links: 1 A–D1, 2 D1–L,
/// 3 L–D2, 4 D2–B. Every interface gets both families.
fn addr(f: Family, net: u8, host: u8) -> String {
    match f {
        Family::V4 => format!("10.1.{net}.{host}"),
        Family::V6 => format!("2001:db8:{net}::{host}"),
    }
}

fn with_len(f: Family, a: &str) -> String {
    match f {
        Family::V4 => format!("{a}/24"),
        Family::V6 => format!("{a}/64"),
    }
}

fn both(net: u8, host: u8) -> [String; 2] {
    [
        with_len(Family::V4, &addr(Family::V4, net, host)),
        with_len(Family::V6, &addr(Family::V6, net, host)),
    ]
}

/// Run a command; panic with its stderr when it fails.
fn sh(args: &[&str]) -> String {
    let o = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Five namespaces (`weft-ID-{ha,d1,l,d2,hb}`), two `weft node run`
/// processes; all of it (and every process left in the namespaces) removed
/// on drop, so a failing test leaves nothing behind.
struct Lab {
    id: String,
    namespaces: Vec<String>,
    nodes: Vec<Child>,
    tmp: TempDir,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.nodes {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in &self.namespaces {
            if let Ok(o) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for p in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", p]).status();
                }
            }
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Lab {
    fn ns(&self, name: &str) -> String {
        format!("weft-{}-{name}", self.id)
    }

    fn exec(&self, name: &str, args: &[&str]) -> String {
        let ns = self.ns(name);
        let mut v = vec!["ip", "netns", "exec", &ns];
        v.extend_from_slice(args);
        sh(&v)
    }

    fn spawn(&self, name: &str, args: &[&str]) -> Proc {
        Proc::spawn(Command::new("ip").args(["netns", "exec", &self.ns(name)]).args(args))
    }

    /// `weft ARGS` against node `n`'s API socket.
    fn weft(&self, n: &str, args: &[&str]) -> String {
        let sock = self.tmp.0.join(format!("{n}.sock"));
        // `--node` right after the noun: it is global to its subcommands
        // (and the last words of `droute` may start with a hyphen).
        let mut v = vec![WEFT, args[0], "--node", sock.to_str().unwrap()];
        v.extend_from_slice(&args[1..]);
        sh(&v)
    }

    /// The report of node `n`'s datarouter instance (`.element`).
    fn datarouter_report(&self, n: &str) -> serde_json::Value {
        let ls = self.weft(n, &["instance", "ls"]);
        let id = ls
            .lines()
            .find_map(|l| l.split_whitespace().next()?.strip_prefix("datarouter"))
            .unwrap_or_else(|| panic!("no datarouter instance on {n}:\n{ls}"));
        let r: serde_json::Value = serde_json::from_str(&self.weft(n, &["instance", "report", id])).unwrap();
        r["element"].clone()
    }

    /// Send the IP packet `ip` (header and all) from host `name` through
    /// its kernel: a raw socket of protocol 255 (IPPROTO_RAW: the header
    /// is ours) by socat.
    fn send_raw(&self, name: &str, dst: &str, ip: &[u8]) {
        let family = if ip[0] >> 4 == 6 { "IP6-SENDTO" } else { "IP4-SENDTO" };
        let dst = if family == "IP6-SENDTO" {
            format!("[{dst}]")
        } else {
            dst.to_string()
        };
        let mut c = Command::new("ip");
        c.args([
            "netns",
            "exec",
            &self.ns(name),
            "socat",
            "-u",
            "-",
            &format!("{family}:{dst}:255"),
        ])
        .stdin(Stdio::piped());
        let mut child = c.spawn().unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), ip).unwrap();
        assert!(child.wait().unwrap().success(), "socat raw send from {name}");
    }

    fn node_logs(&self) -> String {
        ["d1", "d2"]
            .iter()
            .map(|n| {
                let log = std::fs::read_to_string(self.tmp.0.join(format!("{n}.log"))).unwrap_or_default();
                format!("--- {n}.log\n{log}")
            })
            .collect()
    }

    /// A — D1 — L — D2 — B. D1 resolves `DNS` `joe.com` (suffix) to D2's
    /// address on the L–D2 link; D2 resolves `URL` `joe.com` (suffix) to B.
    /// D1 has a route only to the L–D2 link (via L); L has only its
    /// connected networks and kernel forwarding on, nothing else.
    /// `d1_node` is added to D1's `[node]` table (e.g. `icmp_rate = 10`).
    fn up(tag: &str, f: Family, d1_node: &str) -> Lab {
        let id = run_id(tag);
        let mut lab = Lab {
            id,
            namespaces: Vec::new(),
            nodes: Vec::new(),
            tmp: TempDir::new(tag),
        };
        for n in ["ha", "d1", "l", "d2", "hb"] {
            let ns = lab.ns(n);
            sh(&["ip", "netns", "add", &ns]);
            lab.namespaces.push(ns.clone());
            sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        }
        // Veth pairs created straight into their namespaces: no names in
        // the root namespace that parallel runs could clash on.
        for (a, ai, b, bi) in [
            ("ha", "eth0", "d1", "eth0"),
            ("d1", "eth1", "l", "eth0"),
            ("l", "eth1", "d2", "eth0"),
            ("d2", "eth1", "hb", "eth0"),
        ] {
            sh(&[
                "ip",
                "link",
                "add",
                ai,
                "netns",
                &lab.ns(a),
                "type",
                "veth",
                "peer",
                "name",
                bi,
                "netns",
                &lab.ns(b),
            ]);
        }
        let ifs = [
            ("ha", "eth0"),
            ("d1", "eth0"),
            ("d1", "eth1"),
            ("l", "eth0"),
            ("l", "eth1"),
            ("d2", "eth0"),
            ("d2", "eth1"),
            ("hb", "eth0"),
        ];
        for (n, i) in ifs {
            if n.starts_with('d') {
                // The node answers ND itself; its namespace's kernel stays off.
                lab.exec(n, &["sysctl", "-qw", &format!("net.ipv6.conf.{i}.disable_ipv6=1")]);
            }
            // Frames must leave the kernel whole: checksums filled in, no
            // segmentation offload (AF_PACKET sees what the wire sees).
            lab.exec(
                n,
                &[
                    "ethtool", "-K", i, "tx", "off", "tso", "off", "gso", "off", "gro", "off",
                ],
            );
            sh(&["ip", "-n", &lab.ns(n), "link", "set", i, "up"]);
        }
        // Hosts.
        for (n, net) in [("ha", 1), ("hb", 4)] {
            let ns = lab.ns(n);
            let [a4, a6] = both(net, 2);
            sh(&["ip", "-n", &ns, "addr", "add", &a4, "dev", "eth0"]);
            sh(&["ip", "-n", &ns, "addr", "add", &a6, "dev", "eth0", "nodad"]);
            sh(&[
                "ip",
                "-n",
                &ns,
                "route",
                "add",
                "default",
                "via",
                &addr(Family::V4, net, 1),
            ]);
            sh(&[
                "ip",
                "-n",
                &ns,
                "-6",
                "route",
                "add",
                "default",
                "via",
                &addr(Family::V6, net, 1),
            ]);
        }
        // The Linux router: addresses and kernel forwarding.
        let l = lab.ns("l");
        for (i, net) in [("eth0", 2), ("eth1", 3)] {
            let [a4, a6] = both(net, if net == 2 { 2 } else { 1 });
            sh(&["ip", "-n", &l, "addr", "add", &a4, "dev", i]);
            sh(&["ip", "-n", &l, "addr", "add", &a6, "dev", i, "nodad"]);
        }
        lab.exec(
            "l",
            &[
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
                "net.ipv6.conf.all.forwarding=1",
            ],
        );
        // The DataRouters.
        let d1 = format!(
            "[node]\nname = \"d1\"\n{d1_node}\n{}{}{}{}{}",
            port("eth0", &both(1, 1)),
            port("eth1", &both(2, 1)),
            route("10.1.3.0/24", &addr(Family::V4, 2, 2)),
            route("2001:db8:3::/64", &addr(Family::V6, 2, 2)),
            droute("DNS", "joe.com", &addr(f, 3, 2)),
        );
        let d2 = format!(
            "[node]\nname = \"d2\"\n{}{}{}",
            port("eth0", &both(3, 2)),
            port("eth1", &both(4, 1)),
            droute("URL", "joe.com", &addr(f, 4, 2)),
        );
        for (n, cfg) in [("d1", d1), ("d2", d2)] {
            let ns = lab.ns(n);
            sh(&["ip", "netns", "exec", &ns, "sysctl", "-qw", "net.ipv4.ip_forward=0"]);
            // The namespace's kernel must never see the ports' frames: drop
            // them at netfilter ingress, after AF_PACKET has had its copy.
            let rules = lab.tmp.0.join(format!("{n}.nft"));
            std::fs::write(
                &rules,
                "table netdev weft {\n  chain ports { type filter hook ingress devices = { \"eth0\", \"eth1\" } priority 0; policy drop; }\n}\n",
            )
            .unwrap();
            sh(&["ip", "netns", "exec", &ns, "nft", "-f", &rules.display().to_string()]);
            let path = lab.tmp.0.join(format!("{n}.toml"));
            std::fs::write(&path, cfg).unwrap();
            let sock = lab.tmp.0.join(format!("{n}.sock"));
            let log = std::fs::File::create(lab.tmp.0.join(format!("{n}.log"))).unwrap();
            let child = Command::new("ip")
                .args(["netns", "exec", &ns, WEFT, "node", "run", "--config"])
                .arg(&path)
                .arg("--socket")
                .arg(&sock)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap();
            lab.nodes.push(child);
        }
        for n in ["d1", "d2"] {
            let sock = lab.tmp.0.join(format!("{n}.sock"));
            let started = std::time::Instant::now();
            while !sock.exists() {
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "node {n} did not come up:\n{}",
                    lab.node_logs()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        lab
    }
}

fn port(name: &str, addrs: &[String]) -> String {
    format!(
        "[[port]]\nname = \"{name}\"\nkind = \"afpacket\"\naddrs = [\"{}\", \"{}\"]\n",
        addrs[0], addrs[1]
    )
}

fn route(prefix: &str, via: &str) -> String {
    format!("[[route]]\nprefix = \"{prefix}\"\nvia = \"{via}\"\n")
}

fn droute(class: &str, pattern: &str, dest: &str) -> String {
    format!("[[droute]]\nclass = \"{class}\"\npattern = \"{pattern}\"\ndest = \"{dest}\"\nalg = \"suffix\"\n")
}

/// A tagged UDP datagram found in a captured frame.
#[derive(Debug)]
struct Tagged {
    /// The IP packet, from its header to the end of the UDP payload.
    ip: Vec<u8>,
    /// Where the IPv4 option or the IPv6 routing header is, and its length.
    tag: std::ops::Range<usize>,
    chain: TagChain,
    dst: IpAddr,
    dport: u16,
    payload: Vec<u8>,
}

impl Tagged {
    fn parse(frame: &[u8]) -> Option<Tagged> {
        let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
        let ip = frame.get(14..)?;
        let (ip, tag, chain, udp, dst) = match (ethertype, locate(ip)) {
            (0x0800, Where::V4 { off }) => {
                let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
                let ip = ip.get(..total)?;
                if ip[9] != 17 {
                    return None;
                }
                let len = ip[off + 1] as usize;
                let chain = TagChain::parse_v4(&ip[off..off + len]).ok()?;
                let dst: [u8; 4] = ip[16..20].try_into().ok()?;
                (
                    ip,
                    off..off + len,
                    chain,
                    (ip[0] & 0x0f) as usize * 4,
                    IpAddr::from(dst),
                )
            }
            (0x86dd, Where::V6 { off, .. }) => {
                let total = 40 + u16::from_be_bytes([ip[4], ip[5]]) as usize;
                let ip = ip.get(..total)?;
                let len = (ip[off + 1] as usize + 1) * 8;
                let (chain, nh) = TagChain::parse_v6(ip.get(off..off + len)?).ok()?;
                if nh != 17 {
                    return None;
                }
                let dst: [u8; 16] = ip[24..40].try_into().ok()?;
                (ip, off..off + len, chain, off + len, IpAddr::from(dst))
            }
            _ => return None,
        };
        let h = ip.get(udp..udp + 8)?;
        let ulen = u16::from_be_bytes([h[4], h[5]]) as usize;
        Some(Tagged {
            ip: ip.to_vec(),
            tag,
            chain,
            dst,
            dport: u16::from_be_bytes([h[2], h[3]]),
            payload: ip.get(udp + 8..udp + ulen)?.to_vec(),
        })
    }

    fn v6(&self) -> bool {
        self.ip[0] >> 4 == 6
    }

    /// TTL or hop limit.
    fn ttl(&self) -> u8 {
        if self.v6() {
            self.ip[7]
        } else {
            self.ip[8]
        }
    }

    /// The packet with the fields a router may change zeroed: TTL / hop
    /// limit, and the IPv4 header checksum.
    fn invariant(&self) -> Vec<u8> {
        let mut b = self.ip.clone();
        if self.v6() {
            b[7] = 0;
        } else {
            b[8] = 0;
            b[10] = 0;
            b[11] = 0;
        }
        b
    }

    /// The IPv4 header checksum verifies (true for IPv6, which has none).
    fn header_checksum_ok(&self) -> bool {
        if self.v6() {
            return true;
        }
        let ihl = (self.ip[0] & 0x0f) as usize * 4;
        let mut sum: u32 = self.ip[..ihl]
            .chunks(2)
            .map(|w| u16::from_be_bytes([w[0], w[1]]) as u32)
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum == 0xffff
    }
}

/// Our datagrams in a capture: tagged UDP to `port`.
fn tagged(frames: &[Vec<u8>], port: u16) -> Vec<Tagged> {
    frames
        .iter()
        .filter_map(|f| Tagged::parse(f))
        .filter(|t| t.dport == port)
        .collect()
}

/// The entries of a chain as `weft send` / `weft recv` print it
/// (`^` marks the pointer): the tags, and the index the pointer is at.
fn printed_chain(s: &str) -> (Vec<String>, usize) {
    let mut tags = Vec::new();
    let mut ptr = None;
    for w in s.split_whitespace() {
        match w.strip_prefix('^') {
            Some("") => ptr = Some(tags.len()),
            Some(t) => {
                ptr = Some(tags.len());
                tags.push(t.to_string());
            }
            None => tags.push(w.to_string()),
        }
    }
    (tags, ptr.unwrap_or_else(|| panic!("no pointer in {s:?}")))
}

fn chain_tags(c: &TagChain) -> Vec<String> {
    c.tags.iter().map(|t| t.to_string()).collect()
}

fn linux_router_between_datarouters(f: Family) {
    let name = format!("linux_router_between_datarouters_{f:?}");
    require!(name, "tcpdump", "nft", "ethtool");
    let lab = Lab::up(if f == Family::V4 { "drl4" } else { "drl6" }, f, "");
    let (d1, d2, hb) = (addr(f, 1, 1), addr(f, 3, 2), addr(f, 4, 2));
    let port = 7000;
    let data = format!("weft DataRouter {f:?} across a Linux router \u{2713} 0123456789");

    // L's side toward D1 (what L received) and toward D2 (what L sent), and
    // B's interface (what B's kernel got).
    let caps = [
        NsCapture::start_in(&lab.ns("l"), "eth0", &lab.tmp.0),
        NsCapture::start_in(&lab.ns("l"), "eth1", &lab.tmp.0),
        NsCapture::start_in(&lab.ns("hb"), "eth0", &lab.tmp.0),
    ];
    let bind = if f == Family::V4 { "0.0.0.0" } else { "::" };
    let port_s = port.to_string();
    // Linux delivers IPv6 with a routing header of unknown type to the UDP
    // socket when segments left is 0 (RFC 8200 4.4), and `weft recv` reads
    // the header with IPV6_RECVRTHDR, as IPv4's option with IP_RECVOPTS.
    let rx = lab.spawn(
        "hb",
        &[
            WEFT,
            "recv",
            &port_s,
            "--bind",
            bind,
            "--show-tags",
            "--count",
            "1",
            "--timeout",
            "20",
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    // Neighbours (ARP / ND at D1, L and D2) resolve on the first datagrams;
    // send a few.
    let sent = lab.exec(
        "ha",
        &[
            WEFT,
            "send",
            "--tag",
            "DNS:joe.com",
            "--tag",
            "URL:joe.com/apple",
            &d1,
            &port_s,
            "--data",
            &data,
            "--count",
            "5",
            "--interval-ms",
            "200",
        ],
    );
    let (ok, out) = rx.wait(Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500));
    let [l_in, l_out, at_b] = caps.map(NsCapture::frames);
    assert!(ok, "weft recv on B:\n{out}\nsender: {sent}\n{}", lab.node_logs());

    // What the sender put on the wire: the chain, pointer at its first tag.
    let sent_chain = sent
        .split_once("with tags [")
        .and_then(|(_, r)| r.rsplit_once(']'))
        .map(|(c, _)| c)
        .unwrap_or_else(|| panic!("weft send: {sent}"));
    let (tags, ptr) = printed_chain(sent_chain);
    assert_eq!((tags.len(), ptr), (2, 0), "sent: {sent}");

    // B's application: the payload, and the chain with the pointer past
    // both tags.
    let line = out
        .lines()
        .find(|l| l.starts_with("from "))
        .unwrap_or_else(|| panic!("weft recv: {out}"));
    let (head, text) = line.split_once("]: ").unwrap_or_else(|| panic!("{line}"));
    let (head, chain) = head.split_once(" tags [").unwrap_or_else(|| panic!("{line}"));
    assert_eq!(text, data, "payload at B: {line}");
    assert!(head.ends_with(&format!(" {} bytes", data.len())), "{line}");
    assert_eq!(printed_chain(chain), (tags.clone(), 2), "chain at B: {line}");

    // Into L: D1 rewrote the destination to D2 and advanced the pointer
    // past the first tag.
    let l_in = tagged(&l_in, port);
    assert!(!l_in.is_empty(), "no tagged datagram reached L from D1");
    for p in &l_in {
        assert_eq!(p.dst.to_string(), d2, "D1 resolved DNS:joe.com to D2: {p:?}");
        assert_eq!((chain_tags(&p.chain), p.chain.next), (tags.clone(), 1), "{p:?}");
        assert_eq!(p.payload, data.as_bytes());
        assert!(p.header_checksum_ok(), "{p:?}");
    }
    // Out of L toward D2: every datagram is one that came in, byte for byte
    // (option or routing header, addresses, UDP header and payload), but
    // for TTL / hop limit one less and the IPv4 header checksum, which
    // verifies again.
    let l_out = tagged(&l_out, port);
    assert!(!l_out.is_empty(), "no tagged datagram left L toward D2");
    for p in &l_out {
        let q = l_in
            .iter()
            .find(|q| q.invariant() == p.invariant())
            .unwrap_or_else(|| panic!("L changed the datagram:\nout {p:?}\nin  {l_in:?}"));
        assert_eq!(p.ip[p.tag.clone()], q.ip[q.tag.clone()], "tag bytes");
        assert_eq!(p.payload, q.payload);
        assert_eq!(p.ttl(), q.ttl() - 1, "L decrements TTL / hop limit");
        assert!(p.header_checksum_ok(), "{p:?}");
    }
    // At B: D2 rewrote the destination to B and exhausted the chain.
    let at_b = tagged(&at_b, port);
    assert!(!at_b.is_empty(), "no tagged datagram reached B");
    for p in &at_b {
        assert_eq!(p.dst.to_string(), hb, "D2 resolved URL:joe.com/apple to B: {p:?}");
        assert_eq!((chain_tags(&p.chain), p.chain.next), (tags.clone(), 2), "{p:?}");
        assert!(p.chain.exhausted());
        assert_eq!(p.payload, data.as_bytes());
    }
    // D2 routes it once more.
    assert_eq!(at_b[0].ttl(), l_out[0].ttl() - 1, "TTL at B");
}

#[test]
fn linux_router_between_datarouters_v4() {
    linux_router_between_datarouters(Family::V4);
}

#[test]
fn linux_router_between_datarouters_v6() {
    linux_router_between_datarouters(Family::V6);
}

// ----- ICMP errors from a DataRouter node -------------------------

/// An ICMP (v4) or ICMPv6 message of type `typ` from host A to D1 carrying
/// a DataRouter tag whose pointer is past its end: the IP packet.
fn icmp_with_bad_tag(f: Family, typ: u8) -> Vec<u8> {
    use weft_packet::build;
    let (a, d1) = (addr(f, 1, 2), addr(f, 1, 1));
    let chain = TagChain::new(vec![weft_datarouter::Tag::new(
        weft_datarouter::classes::DNS,
        weft_datarouter::Algorithm::Suffix,
        "joe.com",
    )]);
    match f {
        Family::V6 => {
            let (a, d1) = (a.parse().unwrap(), d1.parse().unwrap());
            let quoted = build::udp6([0; 6], [0; 6], d1, a, 7000, 9, 64, b"quoted");
            let mut p = build::icmp6([0; 6], [0; 6], a, d1, 64, typ, 0, [0; 4], &quoted[14..]).split_off(14);
            let mut rh = chain.ipv6_header(58).unwrap();
            rh[4..6].copy_from_slice(&200u16.to_be_bytes()); // pointer past the end
            p[6] = 43;
            p.splice(40..40, rh);
            let plen = (p.len() - 40) as u16;
            p[4..6].copy_from_slice(&plen.to_be_bytes());
            p
        }
        Family::V4 => {
            let (a, d1) = (a.parse().unwrap(), d1.parse().unwrap());
            let quoted = build::udp4([0; 6], [0; 6], d1, a, 7000, 9, 64, b"quoted");
            let mut p = build::icmp4([0; 6], [0; 6], a, d1, 64, typ, 0, [0; 4], &quoted[14..]).split_off(14);
            let mut opt = chain.ipv4_options().unwrap();
            opt[2] = 60; // pointer past the end
            p.splice(20..20, opt.iter().copied());
            let ihl = 20 + opt.len();
            p[0] = 0x40 | (ihl / 4) as u8;
            let total = p.len() as u16;
            p[2..4].copy_from_slice(&total.to_be_bytes());
            p[10..12].copy_from_slice(&[0, 0]);
            let c = weft_packet::checksum::checksum(&p[..ihl]);
            p[10..12].copy_from_slice(&c.to_be_bytes());
            p
        }
    }
}

/// A real Linux host (A's kernel, through a raw socket)
/// sends D1 ICMP errors carrying a bad DataRouter tag, then an echo request
/// carrying the same tag. D1 drops and counts all of them, and answers the
/// echo request alone with a parameter problem: never an ICMP error about
/// an ICMP error (RFC 1122 3.2.2; RFC 4443 2.4(e) — in IPv6 the upper
/// layer sits behind the routing header). Checked on A's own interface.
fn bad_tags_in_icmp_errors_get_no_answer(f: Family) {
    let name = format!("bad_tags_in_icmp_errors_get_no_answer_{f:?}");
    require!(name, "tcpdump", "nft", "ethtool", "socat");
    let lab = Lab::up(if f == Family::V4 { "dri4" } else { "dri6" }, f, "");
    let d1 = addr(f, 1, 1);
    let cap = NsCapture::start_in(&lab.ns("ha"), "eth0", &lab.tmp.0);
    let errors: &[u8] = if f == Family::V4 {
        &[3, 4, 5, 11, 12]
    } else {
        &[1, 2, 3, 4]
    };
    for typ in errors.iter().chain(errors) {
        lab.send_raw("ha", &d1, &icmp_with_bad_tag(f, *typ));
    }
    let echo = if f == Family::V4 { 8 } else { 128 };
    lab.send_raw("ha", &d1, &icmp_with_bad_tag(f, echo));
    std::thread::sleep(Duration::from_secs(1));
    let frames = cap.frames();
    let problems: Vec<Vec<u8>> = frames
        .iter()
        .filter(|fr| match weft_packet::view::parse(fr).map(|h| (h.flow.src, h.l4)) {
            Ok((src, weft_packet::L4::Icmp { typ: 12, .. })) => {
                src == u32::from(d1.parse::<std::net::Ipv4Addr>().unwrap()) as u128
            }
            Ok((src, weft_packet::L4::Icmpv6 { typ: 4, .. })) => {
                src == u128::from(d1.parse::<std::net::Ipv6Addr>().unwrap())
            }
            _ => false,
        })
        .cloned()
        .collect();
    let r = lab.datarouter_report("d1");
    assert_eq!(
        r["bad"]["pointer-past-end"].as_u64(),
        Some(2 * errors.len() as u64 + 1),
        "every tagged packet reached D1's DataRouter: {r}\n{}",
        lab.node_logs()
    );
    assert_eq!(
        problems.len(),
        1,
        "parameter problems at A: {problems:02x?}\nreport: {r}"
    );
    // The one answer is about the echo request, pointing at the pointer.
    let p = weft_packet::view::parse(&problems[0]).unwrap();
    let off = p.l4_off().unwrap();
    let (pointer, quoted_type) = match f {
        Family::V4 => (problems[0][off + 4] as usize, problems[0][off + 8 + 36]),
        Family::V6 => (
            u32::from_be_bytes(problems[0][off + 4..off + 8].try_into().unwrap()) as usize,
            problems[0][off + 8 + 40 + 24],
        ),
    };
    assert_eq!(quoted_type, echo, "the quoted packet is the echo request");
    assert_eq!(
        pointer,
        if f == Family::V4 { 22 } else { 44 },
        "pointer at the tag's pointer"
    );
    assert_eq!(r["icmp_sent"], 1, "{r}");
}

#[test]
fn bad_tags_in_icmp_errors_get_no_answer_v4() {
    bad_tags_in_icmp_errors_get_no_answer(Family::V4);
}

#[test]
fn bad_tags_in_icmp_errors_get_no_answer_v6() {
    bad_tags_in_icmp_errors_get_no_answer(Family::V6);
}

/// Host A's kernel sends 300 UDP datagrams to a closed
/// port of D1, configured with `icmp_rate = 10` and `icmp_burst = 5`. The
/// port unreachables A receives stay within that budget: at most the burst
/// plus the rate over the whole time the test watched (they used to pass a
/// fixed 1000/s limiter: ~270 answers to 300).
#[test]
fn closed_port_answers_are_limited_by_icmp_rate() {
    let name = "closed_port_answers_are_limited_by_icmp_rate";
    require!(name, "tcpdump", "nft", "ethtool", "ping");
    let (rate, burst) = (10.0, 5u64);
    let lab = Lab::up("dricmp", Family::V4, "icmp_rate = 10\nicmp_burst = 5");
    let d1 = addr(Family::V4, 1, 1);
    // Neighbours first (an echo reply is not an error: no token).
    lab.exec("ha", &["ping", "-c", "1", "-W", "5", &d1]);
    let cap = NsCapture::start_in(&lab.ns("ha"), "eth0", &lab.tmp.0);
    let t0 = std::time::Instant::now();
    lab.exec(
        "ha",
        &[
            "bash",
            "-c",
            &format!("for i in $(seq 300); do echo x > /dev/udp/{d1}/9; done"),
        ],
    );
    let sending = t0.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let frames = cap.frames();
    let watched = t0.elapsed().as_secs_f64();
    let from_d1 = u32::from(d1.parse::<std::net::Ipv4Addr>().unwrap()) as u128;
    let answers = frames
        .iter()
        .filter(|fr| {
            weft_packet::view::parse(fr)
                .is_ok_and(|h| h.flow.src == from_d1 && matches!(h.l4, weft_packet::L4::Icmp { typ: 3, code: 3, .. }))
        })
        .count() as u64;
    let most = burst + (rate * watched).floor() as u64;
    eprintln!("{answers} port unreachables to 300 datagrams sent in {sending:?}, watched {watched:.2} s, limit {most}");
    assert!(
        (burst..=most).contains(&answers),
        "{answers} port unreachables to 300 datagrams in {watched:.2} s; icmp_rate 10, burst 5 allow {burst}..={most}\n{}",
        lab.node_logs()
    );
}
