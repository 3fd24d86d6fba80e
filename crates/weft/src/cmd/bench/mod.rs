//! `weft bench`: the engine's forwarding rate on in-memory ports, one core.
//!
//! Each scenario runs the same loop: copy a template frame into a pooled
//! buffer (what a NIC's receive DMA does), hand batches of 32 to the node,
//! take what it queues on the out port and return the buffers. Figures are
//! packets per second, the median of several runs, and the ratio to plain
//! forwarding measured in the same invocation. Heap allocations made inside
//! the timed loop are counted by a counting global allocator and reported per
//! packet: the hot path is meant to make none.

mod datarouter;
mod netserv;
mod nodeos;
mod plugins;

use anyhow::{Context, Result};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use weft_dataplane::classifier::{synthetic_rules, Match};
use weft_dataplane::{FilterSpec, Hook, InstanceId, Node, PortConfig};
use weft_packet::{build, Batch};

/// Counts heap allocations so the benchmark can show the hot path makes none.
pub struct CountingAlloc;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: defers to mimalloc; only adds a relaxed counter.
#[allow(unsafe_code)]
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { mimalloc::MiMalloc.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { mimalloc::MiMalloc.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: std::alloc::Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { mimalloc::MiMalloc.realloc(p, l, n) }
    }
    unsafe fn alloc_zeroed(&self, l: std::alloc::Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { mimalloc::MiMalloc.alloc_zeroed(l) }
    }
}

/// Options of `weft bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Runs per scenario; the median is reported.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Seconds per run.
    #[arg(long, default_value_t = 0.4)]
    pub seconds: f64,
    /// Frame sizes in bytes (NetServ measured 64 and 340).
    #[arg(long, value_delimiter = ',', default_value = "64,340")]
    pub sizes: Vec<usize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Packets per received batch (1-256). 32 is the yardstick of every
    /// figure in docs/; the real ports hand the node up to 64
    /// (`weft_io::MAX_BATCH`).
    #[arg(long, default_value_t = 32,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=256))]
    pub batch: usize,
    /// Distinct flows (source ports) in the offered traffic, round-robin.
    #[arg(long, default_value_t = 1024)]
    pub flows: usize,
    /// Only scenarios whose name contains this text. `netserv` runs the
    /// NetServ group (not run otherwise); `netserv:4,5` only those of its
    /// six configurations, without the users figures (to profile one).
    #[arg(long)]
    pub only: Option<String>,
}

const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 2);
const SPORT: u16 = 40000;
const DPORT: u16 = 6060;
const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn router() -> Result<Node> {
    let mut n = Node::new("bench");
    for c in weft_elements::classes() {
        n.add_class(c)?;
    }
    n.add_port(PortConfig {
        name: "in".into(),
        mac: [2, 0, 0, 0, 0, 1],
        mtu: 1500,
        addrs: vec!["10.0.0.1/24".parse()?],
    })?;
    n.add_port(PortConfig {
        name: "out".into(),
        mac: [2, 0, 0, 0, 1, 1],
        mtu: 1500,
        addrs: vec!["10.0.1.1/24".parse()?],
    })?;
    n.add_neighbor(1, IpAddr::V4(DST), [2, 0xbb, 0, 0, 0, 1])?;
    Ok(n)
}

fn flow_match() -> Match {
    Match {
        src: Some(format!("{SRC}/32").parse().expect("literal")),
        proto: Some(17),
        dport: Some((DPORT, DPORT)),
        ..Default::default()
    }
}

/// Add `n` filler rules (none matching the benchmark flow) then one that
/// matches it with `chain`.
fn add_rules(node: &mut Node, n: usize, chain: Vec<InstanceId>) -> Result<()> {
    let flow = flow_match();
    let key = weft_packet::FlowKey {
        in_port: 0,
        family: weft_packet::flow::Family::V4,
        proto: 17,
        src: u32::from(SRC) as u128,
        dst: u32::from(DST) as u128,
        sport: SPORT,
        dport: DPORT,
    };
    let mut specs: Vec<FilterSpec> = synthetic_rules(n * 2 + 16, 7)
        .into_iter()
        .filter(|m| !m.matches(&key))
        .take(n)
        .map(|m| FilterSpec {
            hook: Some(Hook::Prerouting),
            m,
            chain: vec![],
            position: None,
        })
        .collect();
    specs.push(FilterSpec {
        hook: Some(Hook::Prerouting),
        m: flow,
        chain,
        position: None,
    });
    node.add_filters(specs)?;
    Ok(())
}

struct Scenario {
    name: String,
    setup: Box<dyn Fn() -> Result<Node>>,
}

fn scenarios() -> Vec<Scenario> {
    let mut v: Vec<Scenario> = Vec::new();
    v.push(Scenario {
        name: "plain L3 forwarding".into(),
        setup: Box::new(router),
    });
    for n in [10usize, 1_000, 10_000] {
        v.push(Scenario {
            name: format!("+ {n} filter rules"),
            setup: Box::new(move || {
                let mut r = router()?;
                add_rules(&mut r, n, vec![])?;
                Ok(r)
            }),
        });
    }
    v.push(Scenario {
        name: "+ chain of 3 native elements".into(),
        setup: Box::new(|| {
            let mut r = router()?;
            let a = r.create_instance("counter", "")?;
            let b = r.create_instance("forward", "")?;
            let c = r.create_instance("counter", "")?;
            add_rules(&mut r, 0, vec![a, b, c])?;
            Ok(r)
        }),
    });
    v.push(Scenario {
        name: "+ encrypt (ChaCha20-Poly1305)".into(),
        setup: Box::new(|| {
            let mut r = router()?;
            let e = r.create_instance("encrypt", &format!("key={KEY}"))?;
            add_rules(&mut r, 0, vec![e])?;
            Ok(r)
        }),
    });
    v.extend(plugins::scenarios());
    v
}

/// One timed run over `frames` (one per flow, round-robin): packets per
/// second and allocations per packet.
fn run_once(node: &mut Node, frames: &[Vec<u8>], args: &BenchArgs) -> (f64, f64) {
    let secs = args.seconds;
    let batch = args.batch;
    let mut next = 0usize;
    let mut b: Batch = Vec::with_capacity(batch);
    let mut out: Batch = Vec::with_capacity(2 * batch);
    let mut go = |node: &mut Node, rounds: u64| -> u64 {
        let mut sent = 0;
        for r in 0..rounds {
            for _ in 0..batch {
                node.alloc_into(&mut b, &frames[next]);
                next += 1;
                if next == frames.len() {
                    next = 0;
                }
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
    go(node, 2_000); // warm the pool, caches and branch predictors
    let a0 = ALLOCS.load(Ordering::Relaxed);
    let t = Instant::now();
    let mut sent = 0u64;
    while t.elapsed() < Duration::from_secs_f64(secs) {
        sent += go(node, 1_000);
    }
    let dt = t.elapsed().as_secs_f64();
    let allocs = ALLOCS.load(Ordering::Relaxed) - a0;
    (sent as f64 / dt, allocs as f64 / sent.max(1) as f64)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Run every scenario at every size and print the table.
pub fn run(args: &BenchArgs) -> Result<()> {
    let mut rows = Vec::new();
    // `--only` narrows every section: the forwarding table runs when one of
    // its scenarios matches (plus plain, the baseline), the classifier and
    // wasm-instance figures when their section is named.
    let wants = |section: &str| {
        args.only
            .as_ref()
            .is_none_or(|o| section.contains(o.as_str()) || o.contains(section))
    };
    let main_rows = args
        .only
        .as_ref()
        .is_none_or(|o| scenarios().iter().any(|s| s.name.contains(o.as_str())));
    let sizes: &[usize] = if main_rows { &args.sizes } else { &[] };
    for &size in sizes {
        let payload = size.saturating_sub(14 + 20 + 8);
        let frames: Vec<Vec<u8>> = (0..args.flows.max(1))
            .map(|i| {
                let sport = SPORT.wrapping_add(i as u16);
                build::udp4(
                    [2, 0xaa, 0, 0, 0, 1],
                    [2, 0, 0, 0, 0, 1],
                    SRC,
                    DST,
                    sport,
                    DPORT,
                    64,
                    &vec![0x5a; payload],
                )
            })
            .collect();
        let mut plain = 0.0;
        let mut ten_rules = 0.0;
        for s in scenarios() {
            if args
                .only
                .as_ref()
                .is_some_and(|o| !s.name.contains(o.as_str()) && !s.name.starts_with("plain"))
            {
                continue;
            }
            let mut node = (s.setup)().with_context(|| format!("setting up {}", s.name))?;
            let mut rates = Vec::new();
            let mut allocs = Vec::new();
            for _ in 0..args.runs.max(1) {
                let (pps, a) = run_once(&mut node, &frames, args);
                rates.push(pps);
                allocs.push(a);
            }
            let drops = node.drops();
            if std::env::var_os("WEFT_BENCH_DEBUG").is_some() {
                eprintln!(
                    "{}: ports {:?}",
                    s.name,
                    node.ports()
                        .iter()
                        .map(|p| (p.stats.rx_packets, p.stats.tx_packets))
                        .collect::<Vec<_>>()
                );
                for i in node.instances() {
                    eprintln!("  {:?}", node.report(i.id).ok());
                }
            }
            if !drops.is_empty() {
                eprintln!("{}: drops {drops:?}", s.name);
            }
            let spread =
                (rates.iter().cloned().fold(f64::MIN, f64::max) - rates.iter().cloned().fold(f64::MAX, f64::min)) / 1e6;
            let pps = median(&mut rates);
            if s.name.starts_with("plain") {
                plain = pps;
            }
            if s.name == "+ 10 filter rules" {
                ten_rules = pps;
            }
            let extra = if s.name == "+ 10000 filter rules" && ten_rules > 0.0 {
                format!("{:.2} of 10 rules", pps / ten_rules)
            } else {
                String::new()
            };
            rows.push(serde_json::json!({
                "size": size, "scenario": s.name, "mpps": pps / 1e6, "ratio_to_plain": pps / plain,
                "spread_mpps": spread, "allocs_per_packet": median(&mut allocs), "note": extra,
            }));
        }
    }
    let cls = if wants("classifier") {
        classifier_rows(args)
    } else {
        Vec::new()
    };
    let wasm_instances = if wants("wasm instances") {
        plugins::figures()
    } else {
        None
    };
    // The netserv group runs only when named (`--only netserv`): it repeats
    // rows above at NetServ's configurations and adds the users figures.
    let ns = if args.only.as_deref().is_some_and(|o| o.contains("netserv")) {
        Some(netserv::rows(args)?)
    } else {
        None
    };
    let dr_rows = if args.only.as_ref().is_none_or(|o| {
        o.contains("datarouter") || ["exact-hash", "regex", "suffix"].iter().any(|k| k.contains(o.as_str()))
    }) {
        datarouter::rows(args)?
    } else {
        Vec::new()
    };
    // The NodeOS group takes a minute (five sizes, four paths, latency
    // samples): it runs when asked for by name (`--only nodeos`).
    let nodeos_rows = if args.only.as_ref().is_some_and(|o| o.contains("nodeos")) {
        nodeos::rows(args.runs, args.seconds)?
    } else {
        Vec::new()
    };
    if args.json {
        let figs = wasm_instances.map(|(_, j)| j);
        let all = serde_json::json!({ "forwarding": rows, "classifier": cls, "wasm_instances": figs,
            "datarouter": dr_rows, "netserv": ns, "nodeos": nodeos_rows });
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(());
    }
    println!(
        "weft bench: in-memory ports, one core, batches of 32, median of {} runs x {:.1} s",
        args.runs, args.seconds
    );
    println!(
        "{:>5}  {:<32} {:>8} {:>8} {:>9} {:>8}  note",
        "bytes", "scenario", "Mpps", "ratio", "spread", "alloc/p"
    );
    for r in &rows {
        println!(
            "{:>5}  {:<32} {:>8.2} {:>8.2} {:>9.2} {:>8.3}  {}",
            r["size"].as_u64().unwrap_or(0),
            r["scenario"].as_str().unwrap_or(""),
            r["mpps"].as_f64().unwrap_or(0.0),
            r["ratio_to_plain"].as_f64().unwrap_or(0.0),
            r["spread_mpps"].as_f64().unwrap_or(0.0),
            r["allocs_per_packet"].as_f64().unwrap_or(0.0),
            r["note"].as_str().unwrap_or("")
        );
    }
    println!(
        "ratio: to plain forwarding at the same size; spread: max-min over runs (Mpps); alloc/p: heap allocations per \
         packet in the timed loop; traffic: {} flows round-robin (the node's exact-match flow cache sees each again)",
        args.flows
    );
    println!(
        "\nclassifier alone (no flow cache), random keys over the rule set, median of {} runs:",
        args.runs
    );
    println!("{:>7} {:>8} {:>14} {:>10}", "rules", "shapes", "M lookups/s", "vs 10");
    for r in &cls {
        println!(
            "{:>7} {:>8} {:>14.2} {:>10.2}",
            r["rules"].as_u64().unwrap_or(0),
            r["shapes"].as_u64().unwrap_or(0),
            r["mlookups"].as_f64().unwrap_or(0.0),
            r["vs_10"].as_f64().unwrap_or(0.0)
        );
    }
    if let Some((text, _)) = wasm_instances {
        println!("\nwasm plugin instances (epoch budget, module cache on disk):\n{text}");
    }
    if !dr_rows.is_empty() {
        datarouter::print(&dr_rows);
    }
    if let Some(ns) = &ns {
        netserv::print(ns, args);
    }
    if !nodeos_rows.is_empty() {
        nodeos::print(&nodeos_rows, args.runs);
    }
    Ok(())
}

/// Lookups per second of the classifier alone at 10, 1,000 and 10,000
/// rules: its cost must grow with the number of rule shapes, not rules.
fn classifier_rows(args: &BenchArgs) -> Vec<serde_json::Value> {
    use weft_dataplane::classifier::{synthetic_keys, Classifier};
    let mut out = Vec::new();
    let mut base = 0.0;
    for n in [10usize, 1_000, 10_000] {
        let rules = synthetic_rules(n, 7);
        let c = Classifier::build(&rules);
        let keys = synthetic_keys(&rules, 4096, 11);
        let mut rates = Vec::new();
        for _ in 0..args.runs.max(1) {
            let t = Instant::now();
            let mut hits = 0u64;
            let mut done = 0u64;
            while t.elapsed() < Duration::from_secs_f64(args.seconds / 2.0) {
                for k in &keys {
                    hits += c.lookup(std::hint::black_box(k)).is_some() as u64;
                }
                done += keys.len() as u64;
            }
            std::hint::black_box(hits);
            rates.push(done as f64 / t.elapsed().as_secs_f64());
        }
        let r = median(&mut rates);
        if n == 10 {
            base = r;
        }
        out.push(serde_json::json!({ "rules": n, "shapes": c.shapes(), "mlookups": r / 1e6, "vs_10": r / base }));
    }
    out
}
