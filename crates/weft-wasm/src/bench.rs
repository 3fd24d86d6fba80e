//! The plugin benchmark: packets per second through a real [`Node`] on
//! in-memory ports (the loop of `weft bench`'s `run_once`), for plain
//! forwarding, a native no-op element, the wasm no-op plugin and the wasm
//! NetMonitor, at each frame size; plus instantiation time from the module
//! cache and memory per instance. Figures are medians of several runs and
//! ratios to plain forwarding in the same invocation. Machines are noisy:
//! this reports, it never asserts.

use crate::host::{Budget, HostConfig, WasmHost};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};
use weft_dataplane::classifier::Match;
use weft_dataplane::{Args, FilterSpec, Hook, InstanceId, Node, PortConfig};
use weft_packet::{build, Batch};

const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 2);
const SPORT: u16 = 40000;
const DPORT: u16 = 6060;

/// Options of [`bench_rows`].
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Runs per scenario; the median is reported.
    pub runs: usize,
    /// Seconds per run.
    pub seconds: f64,
    /// Frame sizes (NetServ measured 64 and 340).
    pub sizes: Vec<usize>,
    /// Budget kinds to measure the wasm scenarios under (the first is the
    /// headline).
    pub budgets: Vec<Budget>,
    /// The no-op plugin's bytes.
    pub noop_wasm: Vec<u8>,
    /// The NetMonitor plugin's bytes.
    pub netmonitor_wasm: Vec<u8>,
}

/// One measured scenario.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchRow {
    /// Frame size in bytes.
    pub size: usize,
    /// What ran.
    pub scenario: String,
    /// Packets per second (median).
    pub pps: f64,
    /// Ratio to plain forwarding at the same size.
    pub ratio: f64,
    /// Max − min over the runs, packets per second.
    pub spread: f64,
}

/// Instantiation and memory figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct InstanceFigures {
    /// Compiling the NetMonitor module (no cache), microseconds.
    pub compile_us: f64,
    /// Loading the compiled NetMonitor module from the disk cache, µs.
    pub cache_load_us: f64,
    /// Creating one instance (store, instantiation, arena, `weft_init`)
    /// from a loaded class, median µs, no-op plugin.
    pub instantiate_noop_us: f64,
    /// The same for NetMonitor.
    pub instantiate_netmonitor_us: f64,
    /// Linear memory of one no-op instance, bytes.
    pub memory_noop_bytes: usize,
    /// Linear memory of one NetMonitor instance, bytes.
    pub memory_netmonitor_bytes: usize,
    /// Resident memory added per live NetMonitor instance (RSS delta over
    /// many instances / count), bytes; None where /proc is unavailable.
    pub rss_per_netmonitor_bytes: Option<f64>,
}

/// Error returned by [`bench_rows`].
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Setting up a node failed.
    #[error("setting up {0}: {1}")]
    Setup(String, String),
}

fn router() -> Result<Node, String> {
    let mut n = Node::new("bench");
    for c in weft_elements::classes() {
        n.add_class(c).map_err(|e| e.to_string())?;
    }
    let net = |s: &str| s.parse().map_err(|e: ipnet::AddrParseError| e.to_string());
    n.add_port(PortConfig {
        name: "in".into(),
        mac: [2, 0, 0, 0, 0, 1],
        mtu: 1500,
        addrs: vec![net("10.0.0.1/24")?],
    })
    .map_err(|e| e.to_string())?;
    n.add_port(PortConfig {
        name: "out".into(),
        mac: [2, 0, 0, 0, 1, 1],
        mtu: 1500,
        addrs: vec![net("10.0.1.1/24")?],
    })
    .map_err(|e| e.to_string())?;
    n.add_neighbor(1, IpAddr::V4(DST), [2, 0xbb, 0, 0, 0, 1])
        .map_err(|e| e.to_string())?;
    Ok(n)
}

fn bind(node: &mut Node, chain: Vec<InstanceId>) -> Result<(), String> {
    let m = Match {
        src: Some(
            format!("{SRC}/32")
                .parse()
                .map_err(|e: ipnet::AddrParseError| e.to_string())?,
        ),
        proto: Some(17),
        dport: Some((DPORT, DPORT)),
        ..Default::default()
    };
    node.add_filter(FilterSpec {
        hook: Some(Hook::Prerouting),
        m,
        chain,
        position: None,
    })
    .map_err(|e| e.to_string())?;
    Ok(())
}

/// One timed run: packets per second (the loop of `weft bench`).
fn run_once(node: &mut Node, frame: &[u8], secs: f64) -> f64 {
    let mut b: Batch = Vec::with_capacity(32);
    let mut out: Batch = Vec::with_capacity(64);
    let mut go = |node: &mut Node, rounds: u64| -> u64 {
        let mut sent = 0;
        for r in 0..rounds {
            for _ in 0..32 {
                b.push(node.alloc(frame));
            }
            node.receive(r, 0, &mut b);
            node.take_tx(1, &mut out);
            sent += out.len() as u64;
            for p in out.drain(..) {
                node.recycle(p);
            }
        }
        sent
    };
    go(node, 2_000);
    let t = Instant::now();
    let mut sent = 0u64;
    while t.elapsed() < Duration::from_secs_f64(secs) {
        sent += go(node, 1_000);
    }
    sent as f64 / t.elapsed().as_secs_f64()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

type Setup = Box<dyn Fn() -> Result<Node, String>>;

fn wasm_setup(host: &WasmHost, name: &str, bytes: &[u8], config: &'static str) -> Result<Setup, String> {
    let class = host.load_class(name, bytes).map_err(|e| e.to_string())?;
    Ok(Box::new(move || {
        let mut r = router()?;
        r.add_class(class.element_class()).map_err(|e| e.to_string())?;
        let i = r.create_instance(class.name(), config).map_err(|e| e.to_string())?;
        bind(&mut r, vec![i])?;
        Ok(r)
    }))
}

/// Measure every scenario at every size.
pub fn bench_rows(opts: &BenchOptions) -> Result<Vec<BenchRow>, BenchError> {
    let mut scenarios: Vec<(String, Setup)> = vec![
        ("no element (plain L3 forwarding)".into(), Box::new(router)),
        (
            "native no-op element (forward)".into(),
            Box::new(|| {
                let mut r = router()?;
                let i = r.create_instance("forward", "").map_err(|e| e.to_string())?;
                bind(&mut r, vec![i])?;
                Ok(r)
            }),
        ),
    ];
    for &b in &opts.budgets {
        let host = WasmHost::new(HostConfig {
            budget: b,
            ..Default::default()
        })
        .map_err(|e| BenchError::Setup("wasm host".into(), e.to_string()))?;
        let tag = format!("{b:?}").to_lowercase();
        let s = wasm_setup(&host, "wasm-noop", &opts.noop_wasm, "").map_err(|e| BenchError::Setup("noop".into(), e))?;
        scenarios.push((format!("wasm no-op plugin [{tag}]"), s));
        let s = wasm_setup(&host, "wasm-netmonitor", &opts.netmonitor_wasm, "")
            .map_err(|e| BenchError::Setup("netmonitor".into(), e))?;
        scenarios.push((format!("wasm NetMonitor [{tag}]"), s));
    }
    let mut rows = Vec::new();
    for &size in &opts.sizes {
        let payload = size.saturating_sub(14 + 20 + 8);
        let frame = build::udp4(
            [2, 0xaa, 0, 0, 0, 1],
            [2, 0, 0, 0, 0, 1],
            SRC,
            DST,
            SPORT,
            DPORT,
            64,
            &vec![0x5a; payload],
        );
        let mut plain = 0.0;
        for (name, setup) in &scenarios {
            let mut node = setup().map_err(|e| BenchError::Setup(name.clone(), e))?;
            let mut rates: Vec<f64> = (0..opts.runs.max(1))
                .map(|_| run_once(&mut node, &frame, opts.seconds))
                .collect();
            let spread =
                rates.iter().cloned().fold(f64::MIN, f64::max) - rates.iter().cloned().fold(f64::MAX, f64::min);
            let pps = median(&mut rates);
            if plain == 0.0 {
                plain = pps;
            }
            rows.push(BenchRow {
                size,
                scenario: name.clone(),
                pps,
                ratio: pps / plain,
                spread,
            });
        }
    }
    Ok(rows)
}

fn rss_bytes() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: f64 = s.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096.0)
}

/// Instantiation time from the cache and memory per instance. `cache_dir`
/// is used (and filled) as the module cache.
pub fn instance_figures(opts: &BenchOptions, cache_dir: &std::path::Path) -> Result<InstanceFigures, BenchError> {
    let err = |e: String| BenchError::Setup("instance figures".into(), e);
    let cfg = HostConfig {
        cache_dir: Some(cache_dir.to_path_buf()),
        ..Default::default()
    };
    let host = WasmHost::new(cfg.clone()).map_err(|e| err(e.to_string()))?;
    let _ = std::fs::remove_dir_all(cache_dir);
    let _ = std::fs::create_dir_all(cache_dir);
    let t = Instant::now();
    host.load_class("netmonitor", &opts.netmonitor_wasm)
        .map_err(|e| err(e.to_string()))?;
    let compile_us = t.elapsed().as_secs_f64() * 1e6;
    // A fresh host (same engine settings) finds the artifact on disk.
    let host = WasmHost::new(cfg).map_err(|e| err(e.to_string()))?;
    let t = Instant::now();
    let nm = host
        .load_class("netmonitor", &opts.netmonitor_wasm)
        .map_err(|e| err(e.to_string()))?;
    let cache_load_us = t.elapsed().as_secs_f64() * 1e6;
    let noop = host
        .load_class("noop", &opts.noop_wasm)
        .map_err(|e| err(e.to_string()))?;
    let args = Args::default();
    let time = |c: &crate::WasmClass| -> Result<(f64, usize), String> {
        let mut v = Vec::new();
        let mut mem = 0;
        for _ in 0..200 {
            let t = Instant::now();
            let mut e = c.instantiate(&args).map_err(|e| e.to_string())?;
            v.push(t.elapsed().as_secs_f64() * 1e6);
            mem = e.memory_bytes();
        }
        Ok((median(&mut v), mem))
    };
    let (instantiate_noop_us, memory_noop_bytes) = time(&noop).map_err(err)?;
    let (instantiate_netmonitor_us, memory_netmonitor_bytes) = time(&nm).map_err(err)?;
    let n = 200;
    let before = rss_bytes();
    let mut keep = Vec::with_capacity(n);
    let mut node_frames = weft_packet::PacketPool::with_buffers(4);
    let mut emitted = Vec::new();
    let frame = build::udp4(
        [2, 0xaa, 0, 0, 0, 1],
        [2, 0, 0, 0, 0, 1],
        SRC,
        DST,
        SPORT,
        DPORT,
        64,
        &[0; 22],
    );
    for _ in 0..n {
        let mut e = nm.instantiate(&args).map_err(|e| err(e.to_string()))?;
        // Touch the instance once, as a live one would be.
        let mut cx = weft_dataplane::Ctx::new(0, InstanceId(0), &mut node_frames, &mut emitted);
        let mut p = cx.alloc(&frame);
        weft_dataplane::Element::process(&mut e, &mut cx, &mut p);
        keep.push(e);
    }
    let rss_per = match (before, rss_bytes()) {
        (Some(a), Some(b)) => Some((b - a) / n as f64),
        _ => None,
    };
    drop(keep);
    Ok(InstanceFigures {
        compile_us,
        cache_load_us,
        instantiate_noop_us,
        instantiate_netmonitor_us,
        memory_noop_bytes,
        memory_netmonitor_bytes,
        rss_per_netmonitor_bytes: rss_per,
    })
}

/// The rows and figures as a plain-text table.
pub fn format_table(rows: &[BenchRow], figs: Option<&InstanceFigures>) -> String {
    let mut s = format!(
        "{:>5}  {:<36} {:>8} {:>7} {:>8}\n",
        "bytes", "scenario", "Mpps", "ratio", "spread"
    );
    for r in rows {
        s += &format!(
            "{:>5}  {:<36} {:>8.3} {:>7.2} {:>8.3}\n",
            r.size,
            r.scenario,
            r.pps / 1e6,
            r.ratio,
            r.spread / 1e6
        );
    }
    if let Some(f) = figs {
        s += &format!(
            "compile netmonitor {:.0} us; load from cache {:.0} us; new instance from cache: noop {:.1} us, netmonitor {:.1} us\n",
            f.compile_us, f.cache_load_us, f.instantiate_noop_us, f.instantiate_netmonitor_us
        );
        s += &format!(
            "linear memory per instance: noop {} KiB, netmonitor {} KiB; RSS per live netmonitor instance: {}\n",
            f.memory_noop_bytes / 1024,
            f.memory_netmonitor_bytes / 1024,
            f.rss_per_netmonitor_bytes
                .map_or("n/a".into(), |b| format!("{:.0} KiB", b / 1024.0))
        );
    }
    s
}
