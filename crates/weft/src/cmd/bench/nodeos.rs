//! The `nodeos` group of `weft bench`: Silk's three forwarding paths (§5,
//! figure 6) against plain forwarding in the same run, 64 to 1400 bytes.
//!
//! * **IP cut-through**: a cut-through channel on `in/ipv4` (any IPv4
//!   packet from the input port) in a domain: the node forwards it.
//! * **UDP cut-through**: the same on `in/ipv4/udp dport=6060`.
//! * **UDP active path**: an in-channel delivers the UDP packets over memif
//!   to an application, which sends each back through an out-channel on
//!   the same interface; the node routes them out. The application is a
//!   thread of this process on the other core, attached with the same
//!   client (`weft_nodeos`, memif over a Unix socket and a memfd) a
//!   separate process uses — only the address space differs.
//!
//! Throughput: the node's thread offers batches of 32 as fast as it can and
//! counts what leaves the output port (packets per second, and the ratio
//! to plain forwarding). Latency: one packet at a time, from the moment it
//! is handed to the node until it is queued on the output port (µs,
//! median and 99th percentile of 2,000), so at the lowest load.

use super::{DST, SRC};
use anyhow::{anyhow, Context, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use weft_control::auth::Policy;
use weft_control::nodeos::{NodeOsConfig, NodeOsService};
use weft_dataplane::Node;
use weft_nodeos::{CutChanSpec, DemuxKey, DomainSpec, InChanSpec, NodeOs, OutChanSpec};
use weft_packet::{build, Batch};

/// Sizes of Silk's figure 6 (Ethernet frame bytes).
pub const SIZES: [usize; 5] = [64, 256, 512, 1024, 1400];
const LAT_SAMPLES: usize = 2_000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Path {
    Plain,
    IpCut,
    UdpCut,
    Active,
}

impl Path {
    fn name(self) -> &'static str {
        match self {
            Path::Plain => "plain forwarding",
            Path::IpCut => "IP cut-through",
            Path::UdpCut => "UDP cut-through",
            Path::Active => "UDP active path",
        }
    }
}

/// A node with the NodeOS service, and the application thread of an
/// active path.
struct Rig {
    node: Node,
    svc: NodeOsService,
    start: Instant,
    stop: Arc<AtomicBool>,
    app: Option<std::thread::JoinHandle<()>>,
    dir: std::path::PathBuf,
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(a) = self.app.take() {
            let _ = a.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Rig {
    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Run the service (and the node's timers) once.
    fn service(&mut self) {
        let now = self.now();
        self.svc.poll(&mut self.node, now);
        if self.node.poll_timeout().is_some_and(|t| t <= now) {
            self.node.tick(now);
        }
    }
}

fn rig(path: Path) -> Result<Rig> {
    // The same router as every other group (its classes are not used here).
    let mut node = super::router()?;
    let dir = std::env::temp_dir().join(format!("weft-bench-nodeos-{}-{path:?}", std::process::id()));
    let svc = NodeOsService::start(
        &mut node,
        NodeOsConfig {
            dir: dir.clone(),
            node_uid: rustix::process::geteuid().as_raw(),
            policy: Arc::new(Policy::default()),
        },
    )?;
    let mut r = Rig {
        node,
        svc,
        start: Instant::now(),
        stop: Arc::new(AtomicBool::new(false)),
        app: None,
        dir,
    };
    if path == Path::Plain {
        return Ok(r);
    }
    // Set the channels up over the control socket from another thread
    // while this one runs the node.
    let sock = r.svc.control_path().to_path_buf();
    let stop = r.stop.clone();
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    let app = std::thread::spawn(move || {
        let setup = || -> Result<Option<weft_nodeos::Attachment>, weft_nodeos::Error> {
            let mut os = NodeOs::connect(&sock)?;
            let domain = os.domain_create(&DomainSpec {
                name: "bench".into(),
                ..Default::default()
            })?;
            let key = |proto: &str, addr: Option<&str>| DemuxKey {
                proto: proto.into(),
                addr: addr.map(Into::into),
                patterns: vec![],
            };
            match path {
                Path::IpCut | Path::UdpCut => {
                    let k = if path == Path::IpCut {
                        key("in/ipv4", None)
                    } else {
                        key("in/ipv4/udp", Some("dport=6060"))
                    };
                    os.cut_chan(&CutChanSpec {
                        domain,
                        key: k,
                        bandwidth_bps: None,
                        layer_offset: None,
                    })?;
                    Ok(None)
                }
                _ => {
                    let (inc, info) = os.in_chan(&InChanSpec {
                        domain,
                        key: key("in/ipv4/udp", Some("dport=6060")),
                    })?;
                    os.out_chan(&OutChanSpec {
                        domain,
                        bandwidth_bps: None,
                        attach: Some(inc),
                    })?;
                    Ok(Some(NodeOs::attach(&info, "bench-echo")?))
                }
            }
        };
        let mut att = match setup() {
            Ok(a) => {
                let _ = ready_tx.send(Ok(()));
                a
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e.to_string()));
                return;
            }
        };
        // The echo application: busy-polls its ring, sends each frame back.
        let Some(a) = att.as_mut() else { return };
        let mut held: Vec<Vec<u8>> = (0..64).map(|_| Vec::with_capacity(2048)).collect();
        while !stop.load(Ordering::Relaxed) {
            let mut n = 0;
            let _ = a.recv(64, |f| {
                held[n].clear();
                held[n].extend_from_slice(f);
                n += 1;
            });
            for f in &held[..n] {
                a.send(f);
            }
            if n > 0 {
                a.flush();
            } else {
                std::hint::spin_loop();
            }
        }
    });
    r.app = Some(app);
    let t = Instant::now();
    loop {
        r.service();
        match ready_rx.try_recv() {
            Ok(Ok(())) => break,
            Ok(Err(e)) => return Err(anyhow!("setting up {}: {e}", path.name())),
            Err(mpsc::TryRecvError::Disconnected) => {
                return Err(anyhow!("setting up {}: the thread ended", path.name()))
            }
            Err(mpsc::TryRecvError::Empty) if t.elapsed() > Duration::from_secs(10) => {
                return Err(anyhow!("setting up {}: timed out", path.name()))
            }
            Err(mpsc::TryRecvError::Empty) => {}
        }
    }
    // Let the handshake finish and the application start polling.
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(50) {
        r.service();
    }
    Ok(r)
}

fn frame(size: usize) -> Vec<u8> {
    let payload = size.saturating_sub(14 + 20 + 8);
    build::udp4(
        [2, 0xaa, 0, 0, 0, 1],
        [2, 0, 0, 0, 0, 1],
        SRC,
        DST,
        40000,
        6060,
        64,
        &vec![0x5a; payload],
    )
}

/// Packets per second out of the output port, offering batches of 32.
fn throughput(r: &mut Rig, f: &[u8], secs: f64) -> f64 {
    let mut b: Batch = Vec::with_capacity(32);
    let mut out: Batch = Vec::with_capacity(128);
    let mut round = |r: &mut Rig| -> u64 {
        for _ in 0..32 {
            r.node.alloc_into(&mut b, f);
        }
        let now = r.now();
        r.node.receive(now, 0, &mut b);
        r.service();
        r.node.take_tx(1, &mut out);
        let n = out.len() as u64;
        for p in out.drain(..) {
            r.node.recycle(p);
        }
        n
    };
    for _ in 0..2_000 {
        round(r);
    }
    let t = Instant::now();
    let mut sent = 0;
    while t.elapsed().as_secs_f64() < secs {
        for _ in 0..100 {
            sent += round(r);
        }
    }
    sent as f64 / t.elapsed().as_secs_f64()
}

/// Latency of single packets, µs: (median, p99).
fn latency(r: &mut Rig, f: &[u8]) -> Result<(f64, f64)> {
    let mut b: Batch = Vec::with_capacity(1);
    let mut out: Batch = Vec::with_capacity(4);
    let mut samples = Vec::with_capacity(LAT_SAMPLES);
    for i in 0..LAT_SAMPLES + 200 {
        r.node.alloc_into(&mut b, f);
        let t = Instant::now();
        let now = r.now();
        r.node.receive(now, 0, &mut b);
        loop {
            r.node.take_tx(1, &mut out);
            if !out.is_empty() {
                break;
            }
            if t.elapsed() > Duration::from_secs(1) {
                return Err(anyhow!("a packet did not come back within 1 s"));
            }
            r.service();
        }
        let dt = t.elapsed().as_secs_f64() * 1e6;
        for p in out.drain(..) {
            r.node.recycle(p);
        }
        if i >= 200 {
            samples.push(dt);
        }
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    Ok((samples[samples.len() / 2], samples[samples.len() * 99 / 100]))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Rows of the nodeos group: per size and path, median over `runs` of
/// throughput (Mpps, ratio to plain) and latency (median and p99, µs).
pub fn rows(runs: usize, secs: f64) -> Result<Vec<serde_json::Value>> {
    let mut rows = Vec::new();
    for size in SIZES {
        let f = frame(size);
        let mut plain = 0.0;
        for path in [Path::Plain, Path::IpCut, Path::UdpCut, Path::Active] {
            let mut r = rig(path).with_context(|| format!("nodeos bench: {}", path.name()))?;
            let (mut pps, mut med, mut p99) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..runs.max(1) {
                pps.push(throughput(&mut r, &f, secs));
                let (m, p) = latency(&mut r, &f)?;
                med.push(m);
                p99.push(p);
            }
            let pps = median(&mut pps);
            if path == Path::Plain {
                plain = pps;
            }
            rows.push(serde_json::json!({
                "size": size, "path": path.name(), "mpps": pps / 1e6,
                "ratio_to_plain": pps / plain, "overhead_pct": (plain / pps - 1.0) * 100.0,
                "gbps": pps * size as f64 * 8.0 / 1e9,
                "latency_median_us": median(&mut med), "latency_p99_us": median(&mut p99),
            }));
        }
    }
    Ok(rows)
}

/// Print the rows with Silk's figures beside them.
pub fn print(rows: &[serde_json::Value], runs: usize) {
    println!(
        "\nNodeOS paths (Silk §5): in-memory ports, node on one core, application on the other; median of {runs} runs"
    );
    println!(
        "{:>5}  {:<18} {:>7} {:>7} {:>9} {:>9} {:>9}",
        "bytes", "path", "Mpps", "ratio", "overhead", "lat med", "lat p99"
    );
    for r in rows {
        println!(
            "{:>5}  {:<18} {:>7.3} {:>7.2} {:>8.1}% {:>7.1}µs {:>7.1}µs",
            r["size"].as_u64().unwrap_or(0),
            r["path"].as_str().unwrap_or(""),
            r["mpps"].as_f64().unwrap_or(0.0),
            r["ratio_to_plain"].as_f64().unwrap_or(0.0),
            r["overhead_pct"].as_f64().unwrap_or(0.0),
            r["latency_median_us"].as_f64().unwrap_or(0.0),
            r["latency_p99_us"].as_f64().unwrap_or(0.0),
        );
    }
    println!(
        "overhead: time per packet over plain forwarding's (plain/path - 1), on one core. Silk's own overhead (P4 \
         1.5 GHz, 100 Mb/s: 33 % at minimum size to 11 % at 1400 B) is a latency figure measured through the router: \
         scripts/bench-nodeos-netns measures that one (docs/nodeos.md); Silk's active latency 40-145 µs"
    );
}
