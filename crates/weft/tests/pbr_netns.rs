//! Explicit paths (PromethOS Path-Based Routing, `docs/pbr.md`) on real
//! network namespaces: `topologies/promethos-fig2.toml` brought up with
//! `weft emu run --netns` (every node runs the PBR daemon), Linux end hosts
//! h1 and h7, real UDP from socat, captures with tcpdump.
//!
//! The figure-2 scenario end to end through the CLI: `weft pbr plan` finds
//! the walk `R1:R4:R3:R4:R7:R8:R7`; `weft pbr create` sets it up with
//! ENCRYPT on R3 and DECRYPT on R8 for UDP to port 6060; h7 receives exactly
//! what h1 sent, while the links between R3 and R8 carry MPLS frames with
//! ciphertext only; other traffic follows the FIB and never reaches R3;
//! `weft pbr status` shows the seven visits and their counters; after
//! `weft pbr release` port 6060 follows the FIB again, in plaintext.
//!
//! Needs root, `ip netns`, socat, tcpdump, ping and nft; without them the
//! test prints `SKIP:` and passes. The network is named after the test's
//! run id and taken down on drop, even when an assertion fails.

mod support;

use std::time::Duration;
use support::*;

const KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
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
    require!("pbr_fig2", "ping", "socat", "tcpdump", "nft");
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
            "weft pbr create {WALK} --plugin R3:ENCRYPT:init --plugin R8:DECRYPT:init"
        )),
        "{plan}"
    );

    // ARP along the FIB path and at the hosts before timing anything.
    net.ok("h1", &["ping", "-c", "2", "-i", "0.2", "-W", "2", H7]);

    // 2. Create from R1: the id is printed once the commit came back.
    let enc = format!("R3:ENCRYPT:key={KEY}");
    let dec = format!("R8:DECRYPT:key={KEY}");
    let out = net.weft(
        "R1",
        &[
            "pbr", "create", walk, "--dport", "6060", "--plugin", &enc, "--plugin", &dec,
        ],
    );
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
    // Between R3 and R8: labelled, ciphertext (nonce + tag: 28 bytes more).
    for (link, frames) in [("R4→R7", &mid), ("R7→R8", &mid2)] {
        let m = udps(frames, PORT);
        assert_eq!(m.len(), 5, "{link}: {m:?}");
        for (u, p) in m.iter().zip(&sent) {
            assert!(u.mpls, "{link}: not labelled: {u:?}");
            assert_eq!(u.payload.len(), p.len() + 28, "{link}: {u:?}");
        }
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
