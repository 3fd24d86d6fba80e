//! Explicit paths (PromethOS Path-Based Routing, `docs/pbr.md`) on real
//! network namespaces: `topologies/promethos-fig2.toml` brought up with
//! `weft emu run --netns` (every node runs the PBR daemon), Linux end hosts
//! h1 and h7, real UDP from socat, captures with tcpdump.
//!
//! The figure-2 scenario end to end through the CLI: `weft pbr plan` finds
//! the walk `R1:R4:R3:R4:R7:R8:R7` and prints the shell lines that set it
//! up — run as printed, they create it with ENCRYPT on R3 and DECRYPT on
//! R8 for UDP to port 6060; h7 receives exactly what h1 sent, while the
//! links between R3 and R8 carry MPLS frames with ESP only (tshark decodes
//! it); other traffic follows the FIB and never reaches R3; `weft pbr
//! status` shows the seven visits and their counters; after `weft pbr
//! release` port 6060 follows the FIB again, in plaintext.
//!
//! TCP at the default MSS (iperf3, real Linux stacks) crosses the walk: the
//! ingress answers 1500-octet segments with ICMP "fragmentation needed" at
//! the path's MTU (1496 plain, 1442 with ESP from R3 on), h1's kernel
//! lowers its path MTU to it, and the data flows — in ESP between R3 and
//! R8, where tshark finds no TCP and no byte of iperf3's repeating payload.
//!
//! Needs root, `ip netns`, socat, tcpdump, tshark, iperf3, ping and nft;
//! without them the tests print `SKIP:` and pass. Each network is named
//! after the test's run id and taken down on drop, even when an assertion
//! fails.

mod support;

use std::time::Duration;
use support::*;

const KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const H1: &str = "10.0.1.2";
const WALK: &str = "R1:R4:R3:R4:R7:R8:R7";
const PORT: u16 = 6060;
const OTHER_PORT: u16 = 7000;
const H7: &str = "10.0.7.2";
/// In every datagram to port 6060: must never be seen between R3 and R8.
const MARK: &[u8] = b"PBR-NETNS-PLAINTEXT";
/// In the datagram to port 7000, which is not on the path.
const OTHER_MARK: &[u8] = b"PBR-NETNS-OTHER-PORT";

fn payload(i: usize) -> Vec<u8> {
    let mut p = MARK.to_vec();
    p.extend_from_slice(format!(" datagram {i} ").as_bytes());
    p.extend((0..64).map(|b| (b * 7 + i) as u8));
    p
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A UDP datagram found in a captured Ethernet frame: plain IPv4, or IPv4
/// under an MPLS label stack (EtherType 0x8847).
#[derive(Debug)]
struct Udp {
    mpls: bool,
    dport: u16,
    payload: Vec<u8>,
}

fn udp(f: &[u8]) -> Option<Udp> {
    if f.len() < 14 {
        return None;
    }
    let (mpls, mut ip) = match f[12..14] {
        [0x08, 0x00] => (false, 14),
        [0x88, 0x47] => (true, 14),
        _ => return None,
    };
    if mpls {
        // Label stack entries until bottom of stack.
        loop {
            let e = f.get(ip..ip + 4)?;
            ip += 4;
            if e[2] & 1 == 1 {
                break;
            }
        }
    }
    let h = f.get(ip..ip + 20)?;
    if h[0] >> 4 != 4 || h[9] != 17 {
        return None;
    }
    let u = ip + (h[0] & 0x0f) as usize * 4;
    let uh = f.get(u..u + 8)?;
    let len = u16::from_be_bytes([uh[4], uh[5]]) as usize;
    Some(Udp {
        mpls,
        dport: u16::from_be_bytes([uh[2], uh[3]]),
        payload: f.get(u + 8..u + len.max(8))?.to_vec(),
    })
}

fn udps(frames: &[Vec<u8>], dport: u16) -> Vec<Udp> {
    frames
        .iter()
        .filter_map(|f| udp(f))
        .filter(|u| u.dport == dport)
        .collect()
}

/// An ESP packet found in a captured frame under an MPLS label stack.
#[derive(Debug)]
struct Esp {
    src: [u8; 4],
    dst: [u8; 4],
    spi: u32,
    seq: u32,
    /// Octets from the SPI to the end of the ICV.
    len: usize,
}

fn esp(f: &[u8]) -> Option<Esp> {
    if f.get(12..14)? != [0x88, 0x47] {
        return None;
    }
    let mut ip = 14;
    loop {
        let e = f.get(ip..ip + 4)?;
        ip += 4;
        if e[2] & 1 == 1 {
            break;
        }
    }
    let h = f.get(ip..ip + 20)?;
    if h[0] >> 4 != 4 || h[9] != 50 {
        return None;
    }
    let at = ip + (h[0] & 0x0f) as usize * 4;
    let total = u16::from_be_bytes([h[2], h[3]]) as usize;
    let e = f.get(at..at + 8)?;
    Some(Esp {
        src: h[12..16].try_into().ok()?,
        dst: h[16..20].try_into().ok()?,
        spi: u32::from_be_bytes(e[..4].try_into().ok()?),
        seq: u32::from_be_bytes(e[4..8].try_into().ok()?),
        len: total - (at - ip),
    })
}

/// Octets of an ESP packet (RFC 4303 with RFC 7634's 8-octet IV and
/// 16-octet ICV) carrying an inner packet of `inner` octets.
fn esp_len(inner: usize) -> usize {
    16 + ((inner + 2 + 3) & !3) + 16
}

/// Rows of a CLI table whose header starts with `first`, split on
/// whitespace.
fn rows(table: &str, first: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .skip_while(|l| l.split_whitespace().next() != Some(first))
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect()
}

#[test]
fn figure_2_walk_encrypts_real_udp_between_r3_and_r8() {
    require!("pbr_fig2", "ping", "socat", "tcpdump", "tshark", "nft");
    let net = Net::up(&root_dir().join("topologies/promethos-fig2.toml"), "pbr");
    let tmp = TempDir::new("pbr");

    // 1. Plan: the optimum revisits R4 and R7.
    let plan = net.weft(
        "R1",
        &[
            "pbr",
            "plan",
            "--from",
            "R1",
            "--to",
            "R7",
            "--process",
            "ENCRYPT@R2,R3",
            "--process",
            "DECRYPT@R6,R8",
            "--",
            "-p",
            "udp",
            "--dport",
            "6060",
        ],
    );
    let walk = plan
        .lines()
        .find_map(|l| l.strip_prefix("walk "))
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no walk in the plan:\n{plan}"));
    assert_eq!(walk, WALK, "{plan}");
    assert!(
        plan.contains(&format!(
            "weft pbr create {WALK} --plugin R3:ENCRYPT:key=$KEY --plugin R8:DECRYPT:key=$KEY -p udp --dport 6060"
        )),
        "{plan}"
    );

    // ARP along the FIB path and at the hosts before timing anything.
    net.ok("h1", &["ping", "-c", "2", "-i", "0.2", "-W", "2", H7]);

    // 2. Create from R1 by running what the plan printed (a key first, then
    // the create line): the id is printed once the commit came back.
    let script: String = plan
        .lines()
        .skip_while(|l| !l.starts_with("walk "))
        .skip(1)
        .map(|l| match l.strip_prefix("weft ") {
            Some(rest) => format!("{WEFT} {rest}\n"),
            None => format!("{l}\n"),
        })
        .collect();
    let out = net.ok("R1", &["sh", "-c", &script]);
    let id = out
        .lines()
        .map(str::trim)
        .find(|l| l.split_once('@').is_some_and(|(n, _)| n.parse::<u32>().is_ok()))
        .unwrap_or_else(|| panic!("no path id from create:\n{out}"))
        .to_string();
    assert!(id.ends_with("@10.14.0.1"), "initiator address: {id}");
    let ls = net.weft("R1", &["pbr", "ls"]);
    assert!(rows(&ls, "path").iter().any(|r| r[0] == id && r[2] == "up"), "{ls}");

    // 3. Traffic. Captures at the receiving end of each link (a node's own
    // transmissions bypass the capture taps): R1→R4 (before R3), R4→R3 and
    // R2→R3 (into R3), R4→R7 and R7→R8 (between R3 and R8).
    let d = &tmp.0;
    let before = NsCapture::start(&net, "R4", "toR1", d);
    let into_r3 = NsCapture::start(&net, "R3", "toR4", d);
    let into_r3_from_r2 = NsCapture::start(&net, "R3", "toR2", d);
    let mid = NsCapture::start(&net, "R7", "toR4", d);
    let mid2 = NsCapture::start(&net, "R8", "toR7", d);
    let mid_files = [mid.file(), mid2.file()];
    let sink = UdpSink::start(&net, "h7", PORT, d);
    let other_sink = UdpSink::start(&net, "h7", OTHER_PORT, d);
    std::thread::sleep(Duration::from_millis(700)); // socat bound

    let sent: Vec<Vec<u8>> = (0..5).map(payload).collect();
    for p in &sent {
        socat_send(&net, "h1", H7, PORT, p);
        std::thread::sleep(Duration::from_millis(100));
    }
    let other = [OTHER_MARK, b" takes the FIB".as_slice()].concat();
    socat_send(&net, "h1", H7, OTHER_PORT, &other);
    let want = sent.concat();
    wait_until("the datagrams at h7", Duration::from_secs(10), || {
        sink.got().len() >= want.len() && !other_sink.got().is_empty()
    });
    std::thread::sleep(Duration::from_millis(500)); // tcpdump wrote them
    assert_eq!(sink.got(), want, "h7 got exactly what h1 sent to 6060");
    assert_eq!(other_sink.got(), other, "h7 got the 7000 datagram");

    let (before, into_r3, into_r3_from_r2, mid, mid2) = (
        before.frames(),
        into_r3.frames(),
        into_r3_from_r2.frames(),
        mid.frames(),
        mid2.frames(),
    );
    // Before R3: labelled, plaintext.
    let b = udps(&before, PORT);
    assert_eq!(b.len(), 5, "R1→R4: {b:?}");
    assert!(b.iter().all(|u| u.mpls && contains(&u.payload, MARK)), "R1→R4: {b:?}");
    let r = udps(&into_r3, PORT);
    assert_eq!(r.len(), 5, "R4→R3: {r:?}");
    assert!(r.iter().all(|u| u.mpls && contains(&u.payload, MARK)), "R4→R3: {r:?}");
    // Between R3 and R8: labelled ESP (tunnel mode: the whole UDP packet
    // inside), h1's and h7's addresses outside, sequence numbers 1 to 5 of
    // one SA; no UDP 6060 visible. tshark reads the same.
    for ((link, frames), file) in [("R4→R7", &mid), ("R7→R8", &mid2)].into_iter().zip(&mid_files) {
        assert!(udps(frames, PORT).is_empty(), "{link}: UDP 6060 in clear");
        let e: Vec<Esp> = frames.iter().filter_map(|f| esp(f)).collect();
        assert_eq!(e.len(), 5, "{link}: {e:?}");
        for ((x, p), seq) in e.iter().zip(&sent).zip(1..) {
            assert_eq!((x.src, x.dst), ([10, 0, 1, 2], [10, 0, 7, 2]), "{link}: {x:?}");
            assert_eq!(x.seq, seq, "{link}: {x:?}");
            assert_eq!(x.spi, e[0].spi, "{link}: one SA");
            assert_eq!(x.len, esp_len(20 + 8 + p.len()), "{link}: {x:?}");
        }
        let decoded = tshark_fields(file, "esp", &["esp.spi", "esp.sequence", "ip.src", "ip.dst"]);
        let want: Vec<Vec<String>> = (1..=5)
            .map(|s| vec![format!("{:#010x}", e[0].spi), s.to_string(), H1.into(), H7.into()])
            .collect();
        assert_eq!(decoded, want, "{link}: tshark's reading");
        assert!(tshark_fields(file, "udp.port == 6060", &["frame.number"]).is_empty());
        assert!(
            !frames.iter().any(|f| contains(f, MARK)),
            "{link}: plaintext of UDP 6060 on the wire"
        );
        assert!(
            !frames.iter().any(|f| contains(f, b" datagram ")),
            "{link}: plaintext of UDP 6060 on the wire"
        );
    }
    // Port 7000 follows the FIB R1–R4–R7, in plain IP, and never enters R3.
    for (link, frames, n) in [
        ("R1→R4", &before, 1),
        ("R4→R7", &mid, 1),
        ("R7→R8", &mid2, 0),
        ("R4→R3", &into_r3, 0),
        ("R2→R3", &into_r3_from_r2, 0),
    ] {
        let o = udps(frames, OTHER_PORT);
        assert_eq!(o.len(), n, "{link}: port 7000: {o:?}");
        assert!(o.iter().all(|u| !u.mpls && u.payload == other), "{link}: {o:?}");
        assert_eq!(
            frames.iter().filter(|f| contains(f, OTHER_MARK)).count(),
            n,
            "{link}: port 7000"
        );
    }

    // 4. Status: seven visits, all committed, every one counted the five.
    let st = net.weft("R1", &["pbr", "status", &id]);
    assert!(st.contains(&format!("path {id}  state up")), "{st}");
    let visits = rows(&st, "hop");
    assert_eq!(visits.len(), 7, "{st}");
    for (i, v) in visits.iter().enumerate() {
        // hop address state label plugin packets
        assert_eq!(v.len(), 6, "{st}");
        assert_eq!(v[0], i.to_string(), "{st}");
        assert_eq!(v[2], "committed", "{st}");
        assert_eq!(v[5], "5", "visit {i} packets: {st}");
    }
    assert!(st.contains(&format!("path {id}  state up  mtu 1442")), "{st}");
    assert!(visits[2][4].starts_with("encrypt"), "{st}");
    assert!(visits[5][4].starts_with("decrypt"), "{st}");
    let addrs: Vec<&str> = visits.iter().map(|v| v[1].as_str()).collect();
    assert_eq!(
        addrs,
        [
            "10.14.0.1",
            "10.14.0.4",
            "10.34.0.3",
            "10.34.0.4",
            "10.47.0.7",
            "10.78.0.8",
            "10.78.0.7"
        ],
        "{st}"
    );
    // R4 (hops 1, 3) and R7 (hops 4, 6) tell their two visits apart by label.
    assert_ne!(visits[1][3], visits[3][3], "{st}");
    assert_ne!(visits[4][3], visits[6][3], "{st}");

    // 5. Release: nothing up on R1, no visit left on the other routers.
    net.weft("R1", &["pbr", "release", &id]);
    let ls = net.weft("R1", &["pbr", "ls"]);
    let r1 = rows(&ls, "path");
    assert!(r1.iter().all(|r| r[2] != "up"), "{ls}");
    assert!(r1.iter().any(|r| r[0] == id && r[2] == "released"), "{ls}");
    for n in ["R3", "R4", "R7", "R8"] {
        wait_until(&format!("{n} to drop its visits"), Duration::from_secs(10), || {
            rows(&net.weft(n, &["pbr", "ls"]), "path").is_empty()
        });
    }

    // 6. Port 6060 follows the FIB again, in plaintext, not through R3.
    let mid = NsCapture::start(&net, "R7", "toR4", d);
    let into_r3 = NsCapture::start(&net, "R3", "toR4", d);
    let after = payload(9);
    let had = sink.got().len();
    socat_send(&net, "h1", H7, PORT, &after);
    wait_until("the datagram after release", Duration::from_secs(10), || {
        sink.got().len() >= had + after.len()
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sink.got()[had..], after[..], "delivered by the FIB");
    let (mid, into_r3) = (mid.frames(), into_r3.frames());
    let m = udps(&mid, PORT);
    assert_eq!(m.len(), 1, "R4→R7 after release: {m:?}");
    assert!(!m[0].mpls && m[0].payload == after, "plain UDP: {m:?}");
    assert!(
        !mid.iter().any(|f| f.len() > 14 && f[12..14] == [0x88, 0x47]),
        "no labelled frames after release"
    );
    assert!(udps(&into_r3, PORT).is_empty(), "R3 is off the FIB path");
}

/// The path MTU h1's kernel holds for h7, if any (`ip route get`'s cache).
fn cached_mtu(net: &Net) -> Option<u32> {
    let r = net.ok("h1", &["ip", "route", "get", H7]);
    r.split_whitespace()
        .skip_while(|w| *w != "mtu")
        .nth(1)
        .and_then(|m| m.parse().ok())
}

/// iperf3 TCP from h1 to h7 on `port` (default MSS, iperf3's repeating
/// payload "0123456789…"): the octets h7 received.
fn iperf(net: &Net, port: u16) -> u64 {
    let p = port.to_string();
    let server = net.spawn("h7", &["iperf3", "-s", "-1", "-p", &p]);
    std::thread::sleep(Duration::from_millis(500));
    let out = net.ok(
        "h1",
        &["iperf3", "-c", H7, "-p", &p, "-t", "2", "-J", "--repeating-payload"],
    );
    let (done, text) = server.wait(Duration::from_secs(20));
    assert!(done, "iperf3 server: {text}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    j["end"]["sum_received"]["bytes"].as_u64().unwrap_or(0)
}

/// A value of R1's `weft metrics`.
fn metric(net: &Net, node: &str, name: &str) -> u64 {
    net.weft(node, &["metrics"])
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[test]
fn tcp_at_the_default_mss_crosses_explicit_paths_plain_and_encrypted() {
    require!("pbr_tcp", "ping", "iperf3", "tcpdump", "tshark", "nft");
    let net = Net::up(&root_dir().join("topologies/promethos-fig2.toml"), "pbrtcp");
    let tmp = TempDir::new("pbrtcp");
    net.ok("h1", &["ping", "-c", "2", "-i", "0.2", "-W", "2", H7]);
    assert_eq!(cached_mtu(&net), None, "h1 starts with the link's MTU");
    let icmp_before = metric(&net, "R1", "weft_icmp_errors_sent_total");

    // 1. A path without plugins: 1500-octet links less the 4-octet label.
    let id = net.weft("R1", &["pbr", "create", WALK, "-p", "tcp", "--dport", "5202"]);
    let id = id.trim();
    let st = net.weft("R1", &["pbr", "status", id]);
    assert!(st.contains("state up  mtu 1496"), "{st}");
    let got = iperf(&net, 5202);
    assert!(got > 0, "TCP moved no data through the path");
    assert_eq!(cached_mtu(&net), Some(1496), "h1 learnt the path's MTU from R1's ICMP");
    assert!(
        metric(&net, "R1", "weft_icmp_errors_sent_total") > icmp_before,
        "R1 sent fragmentation-needed"
    );

    // 2. The same walk for port 5201, with ESP between R3 and R8: the path
    // takes 54 octets less (IPv4 outer header, SPI, sequence number, IV,
    // trailer, ICV; aligned).
    let enc = format!("R3:ENCRYPT:key={KEY}");
    let dec = format!("R8:DECRYPT:key={KEY}");
    let id = net.weft(
        "R1",
        &[
            "pbr", "create", WALK, "-p", "tcp", "--dport", "5201", "--plugin", &enc, "--plugin", &dec,
        ],
    );
    let id = id.trim();
    let st = net.weft("R1", &["pbr", "status", id]);
    assert!(st.contains("state up  mtu 1442"), "{st}");
    let d = &tmp.0;
    let before = NsCapture::start(&net, "R4", "toR1", d);
    let mid = NsCapture::start(&net, "R7", "toR4", d);
    let (before_file, mid_file) = (before.file(), mid.file());
    let got = iperf(&net, 5201);
    std::thread::sleep(Duration::from_millis(500)); // tcpdump wrote them
    let (before, mid) = (before.frames(), mid.frames());
    assert!(got > 0, "TCP moved no data through the encrypted path");
    assert_eq!(cached_mtu(&net), Some(1442));

    // Before R3: labelled plaintext, iperf3's pattern visible.
    let pattern = b"0123456789012345";
    assert!(
        before.iter().any(|f| contains(f, pattern)),
        "R1→R4 carries the plaintext"
    );
    assert!(!tshark_fields(&before_file, "tcp.dstport == 5201", &["frame.number"]).is_empty());
    // Between R3 and R8: ESP only — no TCP header, no byte of the pattern.
    assert!(!mid.iter().any(|f| contains(f, pattern)), "plaintext on R4→R7");
    assert!(
        tshark_fields(&mid_file, "tcp", &["frame.number"]).is_empty(),
        "a TCP header in clear on R4→R7"
    );
    let esp = tshark_fields(&mid_file, "esp", &["esp.spi", "esp.sequence", "ip.src", "ip.dst"]);
    assert!(
        esp.len() as u64 >= got / 1500,
        "{} ESP packets for {got} octets",
        esp.len()
    );
    assert!(
        esp.iter().all(|r| r[0] == esp[0][0] && r[2] == H1 && r[3] == H7),
        "one SA, h1 → h7"
    );
    let seqs: Vec<u64> = esp.iter().map(|r| r[1].parse().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "sequence numbers rise, none repeats"
    );
    // DECRYPT on R8 verified them all: nothing replayed or forged.
    let rec = net.weft("R8", &["instance", "report", "#1"]);
    let r: serde_json::Value = serde_json::from_str(&rec).unwrap();
    assert_eq!(r["class"], "decrypt", "{rec}");
    assert!(
        r["element"]["decrypted"].as_u64().unwrap_or(0) >= seqs.len() as u64,
        "{rec}"
    );
    for k in ["auth_failed", "replayed", "too_old", "not_esp", "bad_spi"] {
        assert_eq!(r["element"][k], 0, "{k}: {rec}");
    }
}
