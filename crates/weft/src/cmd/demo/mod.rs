//! `weft demo`: a narrated scenario on the in-process emulator (no root, no
//! setup). Three Weft routers in a line carry a layered video flow while the
//! middle router is recomposed under traffic — PromethOS' WaveVideo example
//! (a rate limiter loaded by one filter command, reconfigured through its
//! control port), LANA's replace, and an encrypt/decrypt pair — and the
//! receiver's view is printed after every step. A last step loads user
//! code: a signed WebAssembly plugin fetched by r2 from a code server, and
//! another answers SIP keep-alives at the edge for a server (NetServ's
//! KeepAlive Responder, with the server's view).
//! Two more scenes run on their own topologies: DataRouter string
//! forwarding, and an explicit path (PBR) through encrypt and decrypt sites;
//! then two tenants' domains on one router, one misbehaving; the last
//! deploys NetServ's ActiveCDN by signaling through two Weft nodes and a
//! plain router and fetches through it (signaling in virtual time, the
//! HTTP legs over loopback TCP: `activecdn.rs` says why).
//!
//! Every step is shown as the CLI command an operator would type against a
//! running node; the demo performs it through the same node handle the CLI's
//! API server calls.

mod activecdn;
mod datarouter;
mod domains;
mod pbr;
mod plugin;
mod sip;

use anyhow::{anyhow, bail, Context, Result};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;
use weft_dataplane::{FilterSpec, Hook, InstanceId, Match, Node};
use weft_emu::Emulator;

/// A scene's temporary directory, removed on drop.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The topology the demo runs (also `topologies/line3.toml`).
const TOPOLOGY: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../topologies/line3.toml"));
const VIDEO_PORT: u16 = 6060;
const LAYERS: u8 = 4;
const PPS: f64 = 1000.0;
const PAYLOAD: usize = 200;
const KEY: &str = "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";

/// Options of `weft demo`.
#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// Seconds of virtual time per step.
    #[arg(long, default_value_t = 2.0)]
    pub step: f64,
}

struct Phase {
    name: String,
    path: String,
    from_ns: u64,
    to_ns: u64,
}

fn say(s: &str) {
    println!("{s}");
}

fn cmd(node: &str, line: &str) {
    println!("  {node}$ weft {line}");
}

fn video_match() -> Match {
    Match {
        proto: Some(17),
        src: Some("10.0.1.2/32".parse().expect("literal")),
        dport: Some((VIDEO_PORT, VIDEO_PORT)),
        ..Default::default()
    }
}

/// ESP from h1: what r1's `encrypt` sends (the outer header keeps h1's
/// address).
fn esp_match() -> Match {
    Match {
        proto: Some(50),
        src: Some("10.0.1.2/32".parse().expect("literal")),
        ..Default::default()
    }
}

fn filter(node: &mut Node, m: Match, plugin: (&str, &str)) -> Result<(InstanceId, weft_dataplane::FilterId)> {
    let spec = FilterSpec {
        hook: Some(Hook::Prerouting),
        m,
        chain: vec![],
        position: None,
    };
    let (f, i) = weft_control::config::add_filter_with_plugin(node, spec, Some(plugin))?;
    Ok((i.ok_or_else(|| anyhow!("no instance created"))?, f))
}

/// Run the demo.
pub fn run(args: &DemoArgs) -> Result<()> {
    let step = Duration::try_from_secs_f64(args.step).context("--step must be a positive number of seconds")?;
    let mut emu = Emulator::from_str(TOPOLOGY, std::path::Path::new(".")).context("loading the demo topology")?;
    let h2: IpAddr = "10.0.2.2".parse()?;

    say("Weft demo — an active network on the in-process emulator (virtual time, no root)\n");
    say("TOPOLOGY  h1 (10.0.1.2) — r1 — r2 — r3 — h2 (10.0.2.2); IPv4 and IPv6; 1 Gbit/s, 1 ms links");
    for name in emu.node_names() {
        let n = emu.node(name);
        let addrs: Vec<String> = n
            .addresses()
            .iter()
            .map(|(p, a)| format!("{}:{a}", n.ports()[*p as usize].cfg.name))
            .collect();
        println!("  {name:<3} {}", addrs.join("  "));
    }

    // 1. Reachability, hop by hop.
    say("\n1. Is the network up? h1 pings h2 and traces the route through the three Weft routers.");
    let ping = emu.host_mut("h1").ping(h2, 3, Duration::from_millis(100))?;
    let trace = emu.host_mut("h1").traceroute(h2, 8)?;
    emu.run_until(
        |e| e.host("h1").ping_result(ping).is_some_and(|p| p.done) && e.host("h1").trace(trace).is_some_and(|t| t.done),
        Duration::from_secs(30),
    );
    let p = emu.host("h1").ping_result(ping).ok_or_else(|| anyhow!("ping lost"))?;
    let rtts: Vec<String> = p
        .replies
        .iter()
        .map(|r| format!("{:.1} ms", r.rtt_ns as f64 / 1e6))
        .collect();
    println!(
        "  h1$ ping -c 3 10.0.2.2      → {}/3 replies, rtt {}",
        p.replies.len(),
        rtts.join(", ")
    );
    let t = emu.host("h1").trace(trace).ok_or_else(|| anyhow!("traceroute lost"))?;
    let hops: Vec<String> = t
        .hops
        .iter()
        .map(|h| h.map(|a| a.to_string()).unwrap_or_else(|| "*".into()))
        .collect();
    println!("  h1$ traceroute 10.0.2.2     → {}", hops.join("  →  "));
    if p.replies.len() != 3 || !t.reached {
        bail!("the demo network did not come up");
    }

    // 2. A layered video flow.
    say(&format!(
        "\n2. h1 streams layered video to h2:{VIDEO_PORT}: {PPS} packets/s of {PAYLOAD} bytes, {LAYERS} layers \
         (layer = payload byte 24; 0 is the base layer), ≈{:.0} kB/s of payload.",
        PPS * PAYLOAD as f64 / 1000.0
    ));
    emu.host_mut("h2").udp_bind(VIDEO_PORT)?;
    // Five steps of video; the summary's extra step lets the last packets land.
    emu.host_mut("h1")
        .udp_flow_layered(h2, VIDEO_PORT, PPS, PAYLOAD, step * 5, LAYERS)?;
    let mut phases = Vec::new();
    let mut mark = emu.now_ns();
    let mut run_phase = |emu: &mut Emulator, phases: &mut Vec<Phase>, name: &str, path: &str| {
        emu.run_for(step);
        let now = emu.now_ns();
        // The first 100 ms of a step belong to the change before it.
        phases.push(Phase {
            name: name.into(),
            path: path.into(),
            from_ns: mark + 100_000_000,
            to_ns: now,
        });
        mark = now;
    };
    run_phase(&mut emu, &mut phases, "no processing", "(none)");
    print_phase(&emu, phases.last());

    // 3. PromethOS' one-line plugin load.
    say("\n3. Load a rate limiter into the running router r2 with one filter command (PromethOS §2.6):");
    cmd(
        "r2",
        "filter add --hook prerouting -p udp -s 10.0.1.2 --dport 6060 --class ratelimit --autoinstance --config 65536",
    );
    let (rl, _) = filter(emu.node_mut("r2"), video_match(), ("ratelimit", "65536"))?;
    println!("  {rl}");
    cmd("r2", "filter ls");
    for fi in emu.node("r2").filters() {
        let path: Vec<String> = fi.chain.iter().map(|(i, c)| format!("{c}{i}")).collect();
        println!(
            "    Chain {}  udp -- 10.0.1.2  anywhere  udp dpt:{VIDEO_PORT}  {}",
            fi.hook,
            path.join(" -> ")
        );
    }
    run_phase(&mut emu, &mut phases, "ratelimit 65536 B/s", &format!("ratelimit{rl}"));
    print_phase(&emu, phases.last());

    // 4. Control port.
    say("\n4. Reconfigure it through its control port while the video plays:");
    cmd("r2", &format!("instance ctl '{rl}' 131072"));
    let reply = emu.node_mut("r2").control(rl, "131072")?;
    println!("  {reply}");
    run_phase(&mut emu, &mut phases, "ratelimit 131072 B/s", &format!("ratelimit{rl}"));
    print_phase(&emu, phases.last());

    // 5. LANA replace: a smarter element in the same place.
    say("\n5. Replace the rate limiter by a layer dropper in place (LANA's replace: bindings kept), same budget:");
    cmd(
        "r2",
        &format!("fb replace '{rl}' layerdrop --config 'rate=131072 offset=24' --drop-state"),
    );
    emu.node_mut("r2")
        .replace(rl, "layerdrop", Some("rate=131072 offset=24"), false)?;
    run_phase(&mut emu, &mut phases, "layerdrop 131072 B/s", &format!("layerdrop{rl}"));
    print_phase(&emu, phases.last());
    say("  The base layers now arrive whole; the budget is spent on them instead of random packets.");

    // 6. Encrypt across the middle of the network.
    say(
        "\n6. Protect the flow between r1 and r3: encrypt on r1, decrypt on r3 (ESP tunnel mode, ChaCha20-Poly1305). \
         r2 now sees only ESP: its layer dropper's UDP filter no longer matches, so it counts and watches ESP instead.",
    );
    cmd(
        "r1",
        "filter add -p udp -s 10.0.1.2 --dport 6060 --class encrypt --autoinstance --config key=…",
    );
    let (enc, _) = filter(emu.node_mut("r1"), video_match(), ("encrypt", &format!("key={KEY}")))?;
    cmd(
        "r3",
        "filter add -p esp -s 10.0.1.2 --class decrypt --autoinstance --config key=…",
    );
    let (dec, _) = filter(emu.node_mut("r3"), esp_match(), ("decrypt", &format!("key={KEY}")))?;
    cmd("r2", "filter add -p esp -s 10.0.1.2 --class counter --autoinstance");
    let (count, f_esp) = filter(emu.node_mut("r2"), esp_match(), ("counter", ""))?;
    println!("  {count}");
    cmd("r2", "fb new netmonitor");
    let nm = emu.node_mut("r2").create_instance("netmonitor", "")?;
    println!("  {nm}");
    cmd("r2", &format!("fb bind '{nm}' {f_esp}"));
    emu.node_mut("r2").bind(nm, f_esp, None)?;
    emu.capture("r1-r2")?;
    let since = emu.now_ns();
    run_phase(
        &mut emu,
        &mut phases,
        "encrypted r1→r3",
        &format!("counter{count} -> netmonitor{nm}"),
    );
    print_phase(&emu, phases.last());
    let from_h1 = |f: &[u8]| f.len() > 34 && f[12..14] == [0x08, 0x00] && f[26..30] == [10, 0, 1, 2];
    let video_frames: Vec<&weft_emu::CapturedFrame> = emu
        .captured("r1-r2")
        .iter()
        // Frames already on the wire when the filters went in are skipped.
        .filter(|c| c.time_ns >= since + 5_000_000 && c.dir == 0 && from_h1(&c.frame))
        .collect();
    let esp = video_frames.iter().filter(|c| c.frame[23] == 50).count();
    let plaintext = video_frames
        .iter()
        .filter(|c| c.frame.windows(4).any(|w| w == b"WEFT"))
        .count();
    println!(
        "  capture on link r1-r2: {} frames from h1, {esp} of them ESP, {} with the plaintext marker \"WEFT\" \
         (ciphertext only; tcpdump and Wireshark decode ESP)",
        video_frames.len(),
        plaintext
    );

    // Summary.
    emu.run_for(step);
    say("\nSUMMARY  what h2 received from the video flow, step by step");
    println!(
        "  {:<24} {:<28} {:>9} {:>9} {:>8}  per layer 0/1/2/3 (pkts)",
        "step", "path on r2", "pkts", "kB/s", "reorder"
    );
    for ph in &phases {
        let s = window(&emu, ph.from_ns, ph.to_ns);
        println!(
            "  {:<24} {:<28} {:>9} {:>9.1} {:>8}  {}",
            ph.name,
            ph.path,
            s.pkts,
            s.rate_bps / 1000.0,
            s.reorder,
            s.layers.iter().map(|n| n.to_string()).collect::<Vec<_>>().join("/")
        );
    }
    let rx = emu.host("h2").flows_received();
    let flow = rx
        .iter()
        .find(|f| f.dport == VIDEO_PORT)
        .ok_or_else(|| anyhow!("h2 received no video"))?;
    let element_drops: u64 = ["r1", "r2", "r3"]
        .iter()
        .map(|n| emu.node(n).instances().iter().map(|i| i.stats.dropped).sum::<u64>())
        .sum();
    let sent = emu.host("h1").flows().iter().map(|f| f.sent).sum::<u64>();
    let lost = sent.saturating_sub(flow.packets + element_drops);
    println!(
        "\n  sent {sent}, received {} ({} out of order, {} duplicates), dropped by elements' decisions {element_drops}, \
         lost any other way {lost}",
        flow.packets, flow.out_of_order, flow.duplicates
    );
    let mut reasons: BTreeMap<&str, u64> = BTreeMap::new();
    for n in ["r1", "r2", "r3"] {
        for (k, v) in emu.node(n).drops() {
            *reasons.entry(k).or_default() += v;
        }
    }
    println!("  drops on the routers by reason: {reasons:?}");
    println!(
        "  (ttl-exceeded: the traceroute's probes; element: ratelimit/layerdrop decisions on r2; r3 verified and \
         decrypted {} ESP packets, each sequence number once — a replayed or altered one is dropped)",
        emu.node("r3").report(dec)?["element"]["decrypted"]
    );

    say("\nREPORTS  (weft instance report '#N' on each router)");
    for (node, id) in [("r1", enc), ("r2", rl), ("r2", count), ("r2", nm), ("r3", dec)] {
        let r = emu.node(node).report(id)?;
        let mut line = String::new();
        let _ = write!(line, "  {node} {}{id}: ", r["class"].as_str().unwrap_or("?"));
        let el = &r["element"];
        if r["class"] == "netmonitor" {
            let top = el["flows"].as_array().or_else(|| el["entries"].as_array());
            let _ = write!(
                line,
                "{}",
                top.and_then(|a| a.first())
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| el.to_string())
            );
        } else {
            let _ = write!(line, "{el}");
        }
        println!("{}", truncate(&line, 200));
    }
    if plaintext != 0 || esp == 0 || flow.out_of_order != 0 || flow.duplicates != 0 || lost != 0 {
        bail!(
            "the demo saw plaintext (or no ESP) on the wire, or a packet reordered, duplicated or lost outside an element"
        );
    }
    plugin::run(&mut emu, h2)?;
    sip::run(&mut emu, h2)?;
    datarouter::run()?;
    pbr::run()?;
    domains::run()?;
    activecdn::run()?;
    say("\nDone. Try it yourself: weft emu run topologies/line3.toml; weft node run --config examples/r1.toml");
    Ok(())
}

struct Window {
    pkts: u64,
    rate_bps: f64,
    reorder: u64,
    layers: [u64; LAYERS as usize],
}

/// What h2 received of the video in `[from, to)`.
fn window(emu: &Emulator, from: u64, to: u64) -> Window {
    let mut w = Window {
        pkts: 0,
        rate_bps: 0.0,
        reorder: 0,
        layers: [0; LAYERS as usize],
    };
    let mut bytes = 0u64;
    let mut last: BTreeMap<u32, u64> = BTreeMap::new();
    for d in emu.host("h2").udp_received() {
        if d.dport != VIDEO_PORT || d.time_ns < from || d.time_ns >= to {
            continue;
        }
        let (Some(flow), Some(seq)) = (d.flow, d.seq) else {
            continue;
        };
        w.pkts += 1;
        bytes += d.bytes as u64;
        w.layers[(seq % LAYERS as u64) as usize] += 1;
        if let Some(prev) = last.insert(flow, seq) {
            if seq <= prev {
                w.reorder += 1;
            }
        }
    }
    w.rate_bps = bytes as f64 / ((to - from) as f64 / 1e9);
    w
}

fn print_phase(emu: &Emulator, ph: Option<&Phase>) {
    if let Some(ph) = ph {
        let w = window(emu, ph.from_ns, ph.to_ns);
        println!(
            "  h2 received {} packets, {:.1} kB/s of payload, per layer {}  ({} reordered)",
            w.pkts,
            w.rate_bps / 1000.0,
            w.layers.iter().map(|n| n.to_string()).collect::<Vec<_>>().join("/"),
            w.reorder
        );
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}
