//! Scenario tests on `topologies/line3.toml`: h1 — r1 — r2 — r3 — h2.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;
use weft_dataplane::{FilterSpec, Hook, InstanceId, Match};
use weft_emu::{Emulator, Topology};

fn topo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../topologies")
}

fn line3() -> Emulator {
    Emulator::load(topo_dir().join("line3.toml")).unwrap()
}

/// line3 with its r1—r2 link changed by `f`.
fn line3_with(f: impl FnOnce(&mut weft_emu::topology::LinkSpec)) -> Emulator {
    let text = std::fs::read_to_string(topo_dir().join("line3.toml")).unwrap();
    let mut t = Topology::parse(&text, "line3.toml").unwrap();
    f(&mut t.links[1]);
    Emulator::build(t, &topo_dir()).unwrap()
}

fn h2_v4(emu: &Emulator) -> IpAddr {
    IpAddr::V4(emu.host("h2").addr().unwrap())
}

/// Resolve neighbours along the path first (one ping each way): a node
/// holds at most 8 packets per unresolved neighbour, like a kernel's
/// `unres_qlen`, so a fast flow's first burst would otherwise lose some.
fn warm(emu: &mut Emulator) {
    let dst = h2_v4(emu);
    emu.host_mut("h1").ping(dst, 1, Duration::from_millis(1)).unwrap();
    assert!(emu.run_until_idle(Duration::from_secs(5)));
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn ping_v4_and_v6() {
    let mut emu = line3();
    let v4 = h2_v4(&emu);
    let v6 = IpAddr::V6(emu.host("h2").addr6().unwrap());
    let p4 = emu.host_mut("h1").ping(v4, 3, Duration::from_millis(100)).unwrap();
    let p6 = emu.host_mut("h1").ping(v6, 3, Duration::from_millis(100)).unwrap();
    assert!(emu.run_until_idle(Duration::from_secs(10)));
    for p in [p4, p6] {
        let r = emu.host("h1").ping_result(p).unwrap();
        assert_eq!(r.replies.len(), 3, "{r:?}");
        // 4 links of 1 ms each way: at least 8 ms.
        assert!(r.replies.iter().all(|x| x.rtt_ns >= 8_000_000), "{r:?}");
        assert_eq!(r.replies[0].from, r.dst);
    }
    // The second and later replies need no neighbour resolution: exactly
    // 8 ms plus serialization.
    let r = emu.host("h1").ping_result(p4).unwrap();
    assert!(r.replies[2].rtt_ns < 8_100_000, "{r:?}");
}

#[test]
fn traceroute_lists_every_router() {
    let mut emu = line3();
    let dst = h2_v4(&emu);
    let t = emu.host_mut("h1").traceroute(dst, 16).unwrap();
    assert!(emu.run_until(|e| e.host("h1").trace(t).unwrap().done, Duration::from_secs(30)));
    let tr = emu.host("h1").trace(t).unwrap();
    let hops: Vec<IpAddr> = tr.hops.iter().map(|h| h.unwrap()).collect();
    assert_eq!(hops, vec![ip("10.0.1.1"), ip("10.0.12.2"), ip("10.0.23.3"), dst]);
    assert!(tr.reached);
    // IPv6 too.
    let dst6 = IpAddr::V6(emu.host("h2").addr6().unwrap());
    let t = emu.host_mut("h1").traceroute(dst6, 16).unwrap();
    assert!(emu.run_until(|e| e.host("h1").trace(t).unwrap().done, Duration::from_secs(30)));
    let hops: Vec<IpAddr> = emu
        .host("h1")
        .trace(t)
        .unwrap()
        .hops
        .iter()
        .map(|h| h.unwrap())
        .collect();
    assert_eq!(
        hops,
        vec![ip("2001:db8:1::1"), ip("2001:db8:12::2"), ip("2001:db8:23::3"), dst6]
    );
}

#[test]
fn udp_flow_complete_and_in_order() {
    let mut emu = line3();
    warm(&mut emu);
    let dst = h2_v4(&emu);
    emu.host_mut("h2").udp_bind(7000).unwrap();
    let f = emu
        .host_mut("h1")
        .udp_flow(dst, 7000, 2000.0, 500, Duration::from_secs(1))
        .unwrap();
    assert!(emu.run_until_idle(Duration::from_secs(10)));
    assert_eq!(emu.host("h1").flow(f).unwrap().sent, 2000);
    let rx = emu.host("h2").flows_received();
    assert_eq!(rx.len(), 1);
    assert_eq!(rx[0].packets, 2000);
    assert_eq!(rx[0].highest, 2000);
    assert_eq!((rx[0].duplicates, rx[0].out_of_order, rx[0].missing()), (0, 0, 0));
    let seqs: Vec<u64> = emu.host("h2").udp_received().iter().map(|d| d.seq.unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
}

#[test]
fn tcp_transfer_exact_bytes() {
    let mut emu = line3();
    let dst = h2_v4(&emu);
    emu.host_mut("h2").tcp_listen(5001).unwrap();
    let x = emu.host_mut("h1").tcp_send(dst, 5001, 1_000_000).unwrap();
    assert!(emu.run_until_idle(Duration::from_secs(60)));
    let t = emu.host("h1").transfer(x).unwrap();
    assert!(t.error.is_none(), "{t:?}");
    assert!(t.acked_ns.is_some());
    let rx = emu.host("h2").tcp_received();
    assert_eq!(rx.len(), 1);
    assert_eq!(rx[0].bytes, 1_000_000);
    assert_eq!(rx[0].pattern_errors, 0);
    assert!(rx[0].completed_ns.is_some());
    // Over IPv6 as well.
    let dst6 = IpAddr::V6(emu.host("h2").addr6().unwrap());
    let x = emu.host_mut("h1").tcp_send(dst6, 5001, 100_000).unwrap();
    assert!(emu.run_until_idle(Duration::from_secs(60)));
    assert!(emu.host("h1").transfer(x).unwrap().acked_ns.is_some());
    let rx = emu.host("h2").tcp_received();
    assert_eq!(rx.len(), 2);
    assert_eq!((rx[1].bytes, rx[1].pattern_errors), (100_000, 0));
}

#[test]
fn lossy_link_drops_about_the_right_fraction_deterministically() {
    let run = || {
        let mut emu = line3_with(|l| l.loss = 0.1);
        warm(&mut emu);
        let dst = h2_v4(&emu);
        emu.host_mut("h2").udp_bind(7000).unwrap();
        emu.host_mut("h1").udp_flow_count(dst, 7000, 1000.0, 100, 5000).unwrap();
        assert!(emu.run_until_idle(Duration::from_secs(20)));
        let got = emu.host("h2").udp_received().len();
        (got, emu.link("r1-r2").unwrap().a_to_b.dropped_loss)
    };
    let (got, dropped) = run();
    assert!((4400..=4600).contains(&got), "received {got} of 5000");
    assert_eq!(dropped as usize, 5000 - got, "all loss is the link's");
    assert_eq!(run(), (got, dropped), "same seed, same losses");
}

#[test]
fn bandwidth_limits_throughput() {
    let mut emu = line3_with(|l| l.bandwidth = 10e6);
    let dst = h2_v4(&emu);
    emu.host_mut("h2").tcp_listen(5001).unwrap();
    let x = emu.host_mut("h1").tcp_send(dst, 5001, 1_000_000).unwrap();
    assert!(emu.run_until_idle(Duration::from_secs(60)));
    let rx = &emu.host("h2").tcp_received()[0];
    assert_eq!(rx.bytes, 1_000_000);
    let took = rx.completed_ns.unwrap() - emu.host("h1").transfer(x).unwrap().started_ns;
    assert!(took >= 800_000_000, "1 MB over 10 Mbit/s in {} ms", took / 1_000_000);
    assert!(took < 3_000_000_000, "took {} ms", took / 1_000_000);
}

fn udp_match(dport: u16) -> Match {
    Match {
        proto: Some(17),
        dport: Some((dport, dport)),
        ..Default::default()
    }
}

/// Bytes of UDP payload h2 received in `[from, to)` ns.
fn rx_bytes(emu: &Emulator, from: u64, to: u64) -> u64 {
    emu.host("h2")
        .udp_received()
        .iter()
        .filter(|d| d.time_ns >= from && d.time_ns < to)
        .map(|d| d.bytes as u64)
        .sum()
}

#[test]
fn ratelimit_on_r2_and_reconfiguration() {
    let mut emu = line3();
    let dst = h2_v4(&emu);
    let r2 = emu.node_mut("r2");
    let rl = r2.create_instance("ratelimit", "65536").unwrap();
    r2.add_filter(FilterSpec {
        hook: Some(Hook::Prerouting),
        m: udp_match(7000),
        chain: vec![rl],
        position: None,
    })
    .unwrap();
    emu.host_mut("h2").udp_bind(7000).unwrap();
    // ~1042-byte frames at 400 pps ≈ 417 kB/s offered, well above both limits.
    emu.host_mut("h1")
        .udp_flow(dst, 7000, 400.0, 1000, Duration::from_secs(8))
        .unwrap();
    // Skip the first second (bucket starts full), measure 3 s.
    emu.run_for(Duration::from_secs(4));
    let got = rx_bytes(&emu, 1_000_000_000, 4_000_000_000) as f64 / 3.0;
    // Payload is 1000 of each 1042 frame bytes the limiter counts.
    let expect = 65536.0 * 1000.0 / 1042.0;
    assert!((got - expect).abs() < expect * 0.2, "{got} B/s, expected ≈ {expect}");
    let reply = emu.node_mut("r2").control(rl, "131072").unwrap();
    assert!(!reply.is_empty());
    emu.run_for(Duration::from_secs(4));
    let got = rx_bytes(&emu, 5_000_000_000, 8_000_000_000) as f64 / 3.0;
    let expect = 131072.0 * 1000.0 / 1042.0;
    assert!((got - expect).abs() < expect * 0.2, "{got} B/s, expected ≈ {expect}");
    let rep = emu.node("r2").report(rl).unwrap();
    assert!(rep.to_string().contains("131072"), "{rep}");
}

fn counter_packets(emu: &Emulator, id: InstanceId) -> u64 {
    let r = emu.node("r2").report(id).unwrap();
    r["element"]["packets"]
        .as_u64()
        .unwrap_or_else(|| panic!("no packet count in {r}"))
}

/// THE zero-loss replacement test: a 10 kpps flow through a `counter` on
/// r2; mid-flow the counter is replaced by a fresh `counter` keeping state
/// (several times), and a second instance on the same path is replaced by
/// another class and back. h2 gets every sequence number exactly once, in
/// order, and the counter's final count is the total.
#[test]
fn zero_loss_replacement_under_traffic() {
    let mut emu = line3();
    warm(&mut emu);
    let dst = h2_v4(&emu);
    let r2 = emu.node_mut("r2");
    let c = r2.create_instance("counter", "").unwrap();
    let other = r2.create_instance("counter", "").unwrap();
    r2.add_filter(FilterSpec {
        hook: Some(Hook::Prerouting),
        m: udp_match(7000),
        chain: vec![c, other],
        position: None,
    })
    .unwrap();
    emu.host_mut("h2").udp_bind(7000).unwrap();
    const N: u64 = 20_000;
    emu.host_mut("h1").udp_flow_count(dst, 7000, 10_000.0, 64, N).unwrap();
    let mut replaced = 0;
    let t0 = emu.now_ns();
    for (i, at_ms) in [150u64, 400, 650, 900, 1150, 1400, 1650].iter().enumerate() {
        emu.run_until(|e| e.now_ns() >= t0 + at_ms * 1_000_000, Duration::from_secs(5));
        let before = counter_packets(&emu, c);
        assert!(before > 0 && before < N, "mid-flow: {before}");
        let r2 = emu.node_mut("r2");
        r2.replace(c, "counter", None, true).unwrap();
        // The other instance: to another class and back.
        if i % 2 == 0 {
            r2.replace(other, "forward", Some(""), false).unwrap();
        } else {
            r2.replace(other, "counter", Some(""), false).unwrap();
        }
        replaced += 1;
        assert_eq!(counter_packets(&emu, c), before, "state carried over");
    }
    assert_eq!(replaced, 7);
    assert!(emu.run_until_idle(Duration::from_secs(10)));
    let seqs: Vec<u64> = emu.host("h2").udp_received().iter().map(|d| d.seq.unwrap()).collect();
    assert_eq!(seqs.len() as u64, N, "every datagram arrived exactly once");
    assert!(seqs.iter().enumerate().all(|(i, s)| *s == i as u64), "in order");
    assert_eq!(counter_packets(&emu, c), N);
    let info = emu.node("r2").instances();
    assert!(info.iter().any(|i| i.id == c && i.generation == 7));
    assert_eq!(emu.node("r2").drops().values().sum::<u64>(), 0);
}

#[test]
fn capture_and_link_counters() {
    let mut emu = line3();
    emu.capture("r2-r3").unwrap();
    assert!(emu.capture("nope").is_err());
    let dst = h2_v4(&emu);
    emu.host_mut("h2").udp_bind(7000).unwrap();
    emu.host_mut("h1").udp_send(dst, 7000, b"secret-plaintext").unwrap();
    assert!(emu.run_until_idle(Duration::from_secs(5)));
    let seen = emu
        .captured("r2-r3")
        .iter()
        .any(|f| f.frame.windows(16).any(|w| w == b"secret-plaintext"));
    assert!(seen, "plaintext crossed r2-r3 (no encryption configured)");
    let l = emu.link("r2-r3").unwrap();
    assert!(l.a_to_b.frames >= 1 && l.total().bytes > 0);
}

#[test]
fn deterministic_runs() {
    let run = || {
        let mut emu = line3();
        let dst = h2_v4(&emu);
        emu.host_mut("h2").tcp_listen(5001).unwrap();
        emu.host_mut("h1").tcp_send(dst, 5001, 200_000).unwrap();
        emu.run_until_idle(Duration::from_secs(30));
        (emu.now_ns(), emu.steps(), emu.links())
    };
    assert_eq!(run(), run());
}

/// Nodes are ticked when they ask to be (`Node::poll_timeout`), not on a
/// grid: r3 asks for an address no host holds when the first packet
/// comes, again exactly once a second, and gives up after three seconds.
#[test]
fn neighbour_retries_run_on_the_nodes_own_deadlines() {
    use weft_dataplane::neigh::{RESOLVE_TIMEOUT_NS, RETRY_NS};
    use weft_packet::view::{parse, L3};
    let mut emu = line3();
    emu.capture("r3-h2").unwrap();
    emu.host_mut("h1")
        .ping(ip("10.0.2.99"), 1, Duration::from_millis(1))
        .unwrap();
    emu.run_for(Duration::from_secs(5));
    let asks: Vec<u64> = emu
        .captured("r3-h2")
        .iter()
        .filter(|f| f.dir == 0)
        .filter(|f| {
            matches!(
                parse(&f.frame).map(|h| h.l3),
                Ok(L3::Arp {
                    op: 1,
                    tpa: [10, 0, 2, 99],
                    ..
                })
            )
        })
        .map(|f| f.time_ns)
        .collect();
    assert_eq!(asks.len() as u64, 1 + RESOLVE_TIMEOUT_NS / RETRY_NS, "{asks:?}");
    for w in asks.windows(2) {
        assert_eq!(w[1] - w[0], RETRY_NS, "{asks:?}");
    }
    assert_eq!(
        emu.node("r3")
            .drop_count(weft_dataplane::DropReason::NeighborUnresolved),
        1
    );
}
