//! The NodeOS service through its real sockets: a node on its runner
//! thread, applications attached over memif with the Rust client.

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weft_control::auth::Policy;
use weft_control::nodeos::NodeOsConfig;
use weft_control::{NodeHandle, NodeRunner};
use weft_dataplane::{Node, PortConfig};
use weft_nodeos::{Code, DemuxKey, DomainSpec, Error, Event, InChanSpec, Limits, NodeOs, OutChanSpec};
use weft_packet::{build, Batch, Packet};

const M0: [u8; 6] = [2, 0, 0, 0, 0, 1];
const M1: [u8; 6] = [2, 0, 0, 0, 1, 1];
const HA: [u8; 6] = [2, 0xaa, 0, 0, 0, 1];
const HB: [u8; 6] = [2, 0xbb, 0, 0, 0, 1];

struct Rig {
    start: Instant,
    runner: Option<NodeRunner>,
    h: NodeHandle,
    dir: PathBuf,
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Some(r) = self.runner.take() {
            r.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rig(name: &str) -> Rig {
    let mut n = Node::new("r1");
    for (i, (mac, a)) in [(M0, "10.0.0.1/24"), (M1, "10.0.1.1/24")].into_iter().enumerate() {
        n.add_port(PortConfig {
            name: format!("p{i}"),
            mac,
            mtu: 1500,
            addrs: vec![a.parse().unwrap()],
        })
        .unwrap();
    }
    n.add_neighbor(1, "10.0.1.2".parse().unwrap(), HB).unwrap();
    let runner = NodeRunner::spawn(n).unwrap();
    let h = runner.handle();
    let dir = std::env::temp_dir().join(format!("weft-nodeos-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    h.enable_nodeos_blocking(NodeOsConfig {
        dir: dir.clone(),
        node_uid: weft_http::unix::euid(),
        policy: Arc::new(Policy::default()),
    })
    .unwrap()
    .unwrap();
    Rig {
        start: Instant::now(),
        runner: Some(runner),
        h,
        dir,
    }
}

impl Rig {
    fn os(&self) -> NodeOs {
        NodeOs::connect(self.dir.join("nodeos.sock")).unwrap()
    }

    /// UDP frames from host A to host B (through the node) on `dport`.
    fn inject(&self, n: usize, dport: u16, size: usize) {
        self.inject_with(n, dport, size, |_, _| {})
    }

    /// The same, `fill(i, payload)` writing each payload.
    fn inject_with(&self, n: usize, dport: u16, size: usize, fill: impl Fn(usize, &mut [u8]) + Send + 'static) {
        let now = self.start.elapsed().as_nanos() as u64;
        self.h
            .call_blocking(move |node: &mut Node| {
                let mut b: Batch = (0..n)
                    .map(|i| {
                        let mut payload = vec![0u8; size];
                        payload[..8].copy_from_slice(&(i as u64).to_be_bytes());
                        fill(i, &mut payload);
                        Packet::from_bytes(&build::udp4(
                            HA,
                            M0,
                            Ipv4Addr::new(10, 0, 0, 2),
                            Ipv4Addr::new(10, 0, 1, 2),
                            5000,
                            dport,
                            64,
                            &payload,
                        ))
                    })
                    .collect();
                // In batches of 32, as a port driver hands them over.
                let mut rest = b.split_off(0);
                while !rest.is_empty() {
                    let tail = rest.split_off(rest.len().min(32));
                    let mut batch = rest;
                    node.receive(now, 0, &mut batch);
                    rest = tail;
                }
            })
            .unwrap();
    }

    /// Frames the node sent out of port 1 so far.
    fn out(&self) -> Vec<Vec<u8>> {
        self.h
            .call_blocking(|node: &mut Node| {
                let mut out = Vec::new();
                node.take_tx(1, &mut out);
                out.iter().map(|p| p.data().to_vec()).collect()
            })
            .unwrap()
    }

    /// Collect frames out of port 1 until `n` came or 5 s passed.
    fn out_until(&self, n: usize) -> Vec<Vec<u8>> {
        let end = Instant::now() + Duration::from_secs(5);
        let mut got = Vec::new();
        while got.len() < n && Instant::now() < end {
            got.extend(self.out());
            std::thread::sleep(Duration::from_millis(1));
        }
        got
    }
}

fn key(addr: &str) -> DemuxKey {
    DemuxKey {
        proto: "p0/ipv4/udp".into(),
        addr: Some(addr.into()),
        patterns: vec![],
    }
}

fn domain(os: &mut NodeOs, name: &str) -> u64 {
    os.domain_create(&DomainSpec {
        name: name.into(),
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn active_path_through_an_external_application_and_back() {
    let r = rig("active");
    let mut os = r.os();
    let (who, node) = os.hello().unwrap();
    assert_eq!(node, "r1");
    assert!(who.starts_with("uid "), "{who}");
    let d = domain(&mut os, "video");
    let (inc, info) = os
        .in_chan(&InChanSpec {
            domain: d,
            key: key("dport=7000"),
        })
        .unwrap();
    let (outc, info2) = os
        .out_chan(&OutChanSpec {
            domain: d,
            bandwidth_bps: None,
            attach: Some(inc),
        })
        .unwrap();
    assert_eq!(info, info2, "the out-channel shares the in-channel's interface");
    let mut app = NodeOs::attach(&info, "echo-test").unwrap();

    r.inject(10, 7000, 64);
    // Plain traffic on another port is forwarded as before.
    r.inject(5, 8000, 64);
    let plain = r.out_until(5);
    assert_eq!(plain.len(), 5);
    let end = Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    while seen.len() < 10 && Instant::now() < end {
        app.recv(64, |f| seen.push(f.to_vec())).unwrap();
    }
    assert_eq!(seen.len(), 10, "the application got every matching packet");
    for f in &seen {
        assert!(app.send(f));
    }
    app.flush();
    let back = r.out_until(10);
    assert_eq!(back.len(), 10, "the node forwarded what the application sent");
    // Routed out of p1 to host B: MACs rewritten, payload intact.
    assert_eq!(&back[0][..6], &HB);
    assert_eq!(&back[0][6..12], &M1);
    let seq: Vec<u64> = back
        .iter()
        .map(|f| u64::from_be_bytes(f[42..50].try_into().unwrap()))
        .collect();
    assert_eq!(seq, (0..10).collect::<Vec<_>>());

    let s = os.chan_stats(inc).unwrap();
    assert_eq!((s.kind.as_str(), s.packets, s.attached), ("in", 10, true));
    let s = os.chan_stats(outc).unwrap();
    assert_eq!((s.kind.as_str(), s.packets), ("out", 10));
    assert!(os
        .events()
        .unwrap()
        .iter()
        .any(|e| matches!(e, Event::Attached { chan, app } if *chan == inc && app == "echo-test")));
}

#[test]
fn an_application_that_stops_reading_costs_drops_on_its_channel_only() {
    let r = rig("stall");
    let mut os = r.os();
    let d = domain(&mut os, "lazy");
    let (inc, info) = os
        .in_chan(&InChanSpec {
            domain: d,
            key: key("dport=7000"),
        })
        .unwrap();
    let _app = NodeOs::attach(&info, "never-reads").unwrap();
    // The client's ring holds 1024 descriptors. The packets come in bursts
    // the domain's queue (256) holds, each taken by the scheduler before
    // the next: every drop is then the channel's.
    for sent in (100..=3000).step_by(100) {
        r.inject(100, 7000, 64);
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            let s = os.chan_stats(inc).unwrap();
            if s.packets + s.dropped_full >= sent {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    r.inject(100, 8000, 64);
    assert_eq!(r.out_until(100).len(), 100, "plain forwarding does not stall");
    let s = os.chan_stats(inc).unwrap();
    assert_eq!(s.packets, 1024);
    assert_eq!(s.dropped_full, 3000 - 1024);
}

#[test]
fn an_application_that_dies_is_detached_and_another_may_attach() {
    let r = rig("dies");
    let mut os = r.os();
    let d = domain(&mut os, "mortal");
    let (inc, info) = os
        .in_chan(&InChanSpec {
            domain: d,
            key: key("dport=7000"),
        })
        .unwrap();
    let app = NodeOs::attach(&info, "first").unwrap();
    // One application per interface: a second is refused while it lives.
    match NodeOs::attach(&info, "intruder") {
        Err(Error::Memif(weft_memif::io::ClientError::Refused(why))) => {
            assert!(why.contains("no such interface"), "{why}")
        }
        Err(e) => panic!("unexpected {e}"),
        Ok(_) => panic!("a second application attached"),
    }
    r.inject(50, 7000, 64);
    // The domain's scheduler hands them to the channel in its next rounds.
    let end = Instant::now() + Duration::from_secs(5);
    while os.chan_stats(inc).unwrap().packets < 50 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(1));
    }
    // Gone mid-stream with frames unread: its socket closes, its mapping
    // goes; the node keeps its own mapping until it lets go.
    drop(app);
    let end = Instant::now() + Duration::from_secs(5);
    while os.chan_stats(inc).unwrap().attached && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(2));
    }
    let s = os.chan_stats(inc).unwrap();
    assert!(!s.attached);
    assert_eq!(s.packets, 50);
    r.inject(7, 7000, 64);
    assert_eq!(os.chan_stats(inc).unwrap().dropped_detached, 7);
    assert!(os
        .events()
        .unwrap()
        .iter()
        .any(|e| matches!(e, Event::Detached { chan, .. } if *chan == inc)));
    let mut again = NodeOs::attach(&info, "second").unwrap();
    r.inject(3, 7000, 64);
    let mut n = 0;
    let end = Instant::now() + Duration::from_secs(5);
    while n < 3 && Instant::now() < end {
        n += again.recv(64, |_| {}).unwrap();
    }
    assert_eq!(n, 3);
}

#[test]
fn destroying_a_domain_destroys_its_channels() {
    let r = rig("destroy");
    let mut os = r.os();
    let d = domain(&mut os, "doomed");
    let (inc, info) = os
        .in_chan(&InChanSpec {
            domain: d,
            key: key("dport=7000"),
        })
        .unwrap();
    let mut app = NodeOs::attach(&info, "app").unwrap();
    os.domain_destroy(d).unwrap();
    match os.chan_stats(inc) {
        Err(Error::Api(e)) => assert_eq!(e.code, Code::NotFound),
        other => panic!("{other:?}"),
    }
    assert!(os.events().unwrap().contains(&Event::ChanGone { chan: inc }));
    assert!(!app.alive(), "the application was told");
    // The filter went with the domain: the port is forwarded again.
    r.inject(4, 7000, 64);
    assert_eq!(r.out_until(4).len(), 4);
    assert!(os.domains().unwrap().is_empty());
}

#[test]
fn malformed_requests_get_clear_errors_and_the_connection_stays() {
    let r = rig("malformed");
    let s = UnixStream::connect(r.dir.join("nodeos.sock")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut rd = BufReader::new(s);
    let mut ask = |line: &str| -> serde_json::Value {
        w.write_all(line.as_bytes()).unwrap();
        w.write_all(b"\n").unwrap();
        let mut l = String::new();
        rd.read_line(&mut l).unwrap();
        serde_json::from_str(&l).unwrap()
    };
    let v = ask("this is not json");
    assert_eq!(v["error"]["code"], "malformed");
    let v = ask(r#"{"id":4,"call":{"op":"reboot"}}"#);
    assert_eq!(
        (v["id"].as_u64(), v["error"]["code"].as_str()),
        (Some(4), Some("malformed"))
    );
    assert!(v["error"]["message"].as_str().unwrap().contains("reboot"));
    let v = ask(r#"{"id":5,"call":{"op":"in_chan_create","spec":{"domain":0,"key":{"proto":"ipx"}}}}"#);
    assert_eq!(v["error"]["code"], "bad_spec");
    let v = ask(r#"{"id":6,"call":{"op":"chan_destroy","chan":424242}}"#);
    assert_eq!(v["error"]["code"], "not_found");
    let v = ask(
        r#"{"id":7,"call":{"op":"domain_create","spec":{"name":"x","limits":{"bandwidth_bps":1000000},"class":"fair:0"}}}"#,
    );
    assert_eq!(v["error"]["code"], "bad_spec");
    let v = ask(r#"{"id":8,"call":{"op":"time"}}"#);
    assert!(v["ok"]["now_ns"].as_u64().is_some(), "{v}");
}

#[test]
fn out_channels_keep_to_their_bandwidth() {
    let r = rig("bandwidth");
    let mut os = r.os();
    let d = os
        .domain_create(&DomainSpec {
            name: "slow".into(),
            limits: Limits {
                // 1,500-byte burst, 120 kB/s: of 200 frames sent at once
                // (~ 200 × 106 B) only the burst and what refills pass.
                bandwidth_bps: Some(960_000),
                burst_bytes: Some(1_500),
                ..Default::default()
            },
            ..Default::default()
        })
        .unwrap();
    let (outc, info) = os
        .out_chan(&OutChanSpec {
            domain: d,
            bandwidth_bps: None,
            attach: None,
        })
        .unwrap();
    let mut app = NodeOs::attach(&info, "sender").unwrap();
    let frame = build::udp4(
        HA,
        M0,
        Ipv4Addr::new(10, 0, 0, 2),
        Ipv4Addr::new(10, 0, 1, 2),
        1,
        2,
        64,
        &[0u8; 64],
    );
    for _ in 0..200 {
        assert!(app.send(&frame));
    }
    app.flush();
    let end = Instant::now() + Duration::from_secs(5);
    let mut s = os.chan_stats(outc).unwrap();
    while s.packets + s.dropped_bandwidth < 200 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(2));
        s = os.chan_stats(outc).unwrap();
    }
    assert_eq!(s.packets + s.dropped_bandwidth, 200);
    assert!(s.dropped_bandwidth > 100, "{s:?}");
    assert!(s.packets >= 14, "the burst passes: {s:?}");
    let _ = os.chan_destroy(outc);
    let wrong = os.out_chan(&OutChanSpec {
        domain: d,
        bandwidth_bps: Some(10_000_000),
        attach: None,
    });
    assert!(matches!(wrong, Err(Error::Api(e)) if e.code == Code::Limit));
}

/// The shared library of a DPDK driver, if installed.
fn dpdk_pmd(name: &str) -> Option<PathBuf> {
    let dir = std::fs::read_dir("/usr/lib").ok()?;
    for d in dir.flatten() {
        if let Ok(inner) = std::fs::read_dir(d.path()) {
            for f in inner.flatten() {
                let n = f.file_name().to_string_lossy().into_owned();
                if n.starts_with(&format!("librte_{name}.so.")) && n.matches('.').count() == 2 {
                    return Some(f.path());
                }
            }
        }
    }
    None
}

/// DPDK's testpmd, unmodified, as the active application of a channel:
/// `net_memif` in client mode, copy mode without hugepages, io forwarding
/// (what it receives on its one port it sends back on it).
#[test]
fn dpdk_testpmd_is_an_active_application() {
    let euid = weft_http::unix::euid();
    let (Some(memif), Some(ring)) = (dpdk_pmd("net_memif"), dpdk_pmd("mempool_ring")) else {
        eprintln!("SKIP: DPDK's memif driver is not installed (Debian: dpdk-dev librte-net-memif23)");
        return;
    };
    if euid != 0
        || std::process::Command::new("dpdk-testpmd")
            .arg("--version")
            .output()
            .is_err()
    {
        eprintln!("SKIP: needs root and dpdk-testpmd (Debian: dpdk-dev)");
        return;
    }
    let r = rig("dpdk");
    let mut os = r.os();
    let d = domain(&mut os, "dpdk");
    let (inc, info) = os
        .in_chan(&InChanSpec {
            domain: d,
            key: key("dport=7000"),
        })
        .unwrap();
    let (outc, _) = os
        .out_chan(&OutChanSpec {
            domain: d,
            bandwidth_bps: None,
            attach: Some(inc),
        })
        .unwrap();
    let prefix = format!("weft-test-{}", std::process::id());
    let spawned = std::process::Command::new("dpdk-testpmd")
        .args([
            "-l",
            "0-1",
            "--no-huge",
            "-m",
            "256",
            "--no-pci",
            "--file-prefix",
            &prefix,
            "-d",
        ])
        .arg(&memif)
        .arg("-d")
        .arg(&ring)
        .arg(format!(
            "--vdev=net_memif0,role=client,socket={},socket-abstract=no,id={},secret={}",
            info.socket, info.id, info.secret
        ))
        .args([
            "--",
            "--total-num-mbufs=4096",
            "--forward-mode=io",
            "--auto-start",
            "--stats-period=0",
        ])
        // testpmd exits when its stdin ends ("Press enter to exit"): keep
        // a pipe open for as long as it should run.
        .stdin(std::process::Stdio::piped())
        .stdout(std::fs::File::create(r.dir.join("testpmd.log")).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Kill(spawned);
    let end = Instant::now() + Duration::from_secs(30);
    while !os.chan_stats(inc).unwrap().attached && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        os.chan_stats(inc).unwrap().attached,
        "testpmd attached within 30 s: {}",
        std::fs::read_to_string(r.dir.join("testpmd.log")).unwrap_or_default()
    );
    let app = os.events().unwrap().into_iter().find_map(|e| match e {
        Event::Attached { app, .. } => Some(app),
        _ => None,
    });
    assert!(app.is_some_and(|a| a.starts_with("DPDK")));
    // Attached is not polling yet: testpmd offers its receive buffers when
    // its forwarding loop starts. Until then a packet is a counted drop.
    let end = Instant::now() + Duration::from_secs(10);
    while os.chan_stats(inc).unwrap().packets == 0 && Instant::now() < end {
        r.inject(1, 7000, 64);
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    let _ = r.out();
    let (in0, out0) = (
        os.chan_stats(inc).unwrap().packets,
        os.chan_stats(outc).unwrap().packets,
    );
    assert!(in0 > 0, "testpmd never started polling");
    // Ten bursts of 100, each well inside the rings.
    let mut back = Vec::new();
    for _ in 0..10 {
        r.inject(100, 7000, 64);
        back.extend(r.out_until(100));
    }
    let s_in = os.chan_stats(inc).unwrap();
    let s_out = os.chan_stats(outc).unwrap();
    assert_eq!(
        s_in.packets - in0,
        1000,
        "{s_in:?} {:?} {}",
        os.events().unwrap(),
        std::fs::read_to_string(r.dir.join("testpmd.log")).unwrap_or_default()
    );
    assert_eq!(back.len() as u64, s_out.packets - out0, "{s_out:?}");
    assert_eq!(s_out.packets - out0, 1000, "testpmd sent back all it got: {s_out:?}");
    // testpmd goes away: the channel is detached cleanly.
    let _ = child.0.kill();
    let _ = child.0.wait();
    let end = Instant::now() + Duration::from_secs(5);
    while os.chan_stats(inc).unwrap().attached && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!os.chan_stats(inc).unwrap().attached);
}

/// Silk's wavelet dropper split as in the paper (§5, figure 7): the data
/// plane on the node (a cut-through channel counting and dropping layers,
/// kept to its domain's bandwidth), the control plane in the application
/// (`weft_nodeos::wavelet::Dropper`, reading the counters over the control
/// socket and setting the cut-off).
#[test]
fn wavelet_dropper_control_plane_in_the_application() {
    use weft_nodeos::wavelet::Dropper;
    use weft_nodeos::CutChanSpec;
    let r = rig("wavelet");
    let mut os = r.os();
    let d = os
        .domain_create(&DomainSpec {
            name: "video".into(),
            limits: Limits {
                // 60 kB/s: the base and first enhancement layers fit
                // (48 kB/s), a third would not (73 kB/s).
                bandwidth_bps: Some(480_000),
                burst_bytes: Some(3_000),
                ..Default::default()
            },
            ..Default::default()
        })
        .unwrap();
    let chan = os
        .cut_chan(&CutChanSpec {
            domain: d,
            key: key("dport=6000"),
            bandwidth_bps: None,
            layer_offset: Some(8),
        })
        .unwrap();
    // The source: every 10 ms of real time one 200-byte packet of each of
    // 4 layers (242-byte frames: 24 kB/s a layer, 97 kB/s in all), paced
    // by the clock so that a slow step sends the rounds it owes.
    let layer_of = |f: &[u8]| f[42 + 8];
    let mut dropper = Dropper::new();
    let mut last_control = Instant::now();
    let mut got = [0u64; 4];
    let begin = Instant::now();
    let (run, measure_from) = (Duration::from_millis(2500), Duration::from_millis(1800));
    let mut rounds = 0u128;
    while begin.elapsed() < run {
        let due = begin.elapsed().as_millis() / 10;
        while rounds < due {
            r.inject_with(4, 6000, 200, |i, p| p[8] = i as u8);
            rounds += 1;
        }
        let measuring = begin.elapsed() >= measure_from;
        for f in r.out() {
            if measuring {
                got[layer_of(&f) as usize] += 1;
            }
        }
        if last_control.elapsed() >= Duration::from_millis(100) {
            last_control = Instant::now();
            let now = os.time().unwrap();
            let s = os.chan_stats(chan).unwrap();
            if let Some(cut) = dropper.update(now, &s) {
                os.chan_set_layer(chan, cut).unwrap();
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let s = os.chan_stats(chan).unwrap();
    assert_eq!(dropper.cutoff(), Some(1), "{s:?} available {:?}", dropper.available());
    assert!(s.dropped_layer > 0);
    // The last 0.7 s: the layers above the cut-off are gone, and the two
    // that fit pass whole (no bandwidth drops: as many of one as the other).
    assert_eq!((got[2], got[3]), (0, 0), "{got:?}");
    assert!(got[0] >= 50 && got[0].abs_diff(got[1]) <= 2, "{got:?} {s:?}");
}
