//! The `netserv` group of `weft bench` (`weft bench --only netserv`):
//! NetServ's measurements side by side (NetServ §9).
//!
//! * **Six configurations** at 64 and 340 bytes, on the same router and
//!   loop as the other rows: (1) plain forwarding, (2) a filter table (ten
//!   rules, one matching with no element), (3) a native module (the
//!   `forward` element), (4) a WebAssembly no-op, (5) NetMonitor (wasm),
//!   (6) KeepAlive inspecting SIP (the wasm `keepalive` on REGISTERs, which
//!   it tells from keep-alives by their method and passes on unparsed —
//!   docs/sip.md; a SIP message does not fit 64 bytes, so only at 340).
//!   Packets per second, ratio to (1), NetServ's figures beside. The same
//!   six on veth, beside Linux: `scripts/bench-netns --netserv`.
//! * **Users (NetServ figure 14):** 1, 10 and 100 users on one node, each
//!   with its own wasm NetMonitor instance behind its own filter (its own
//!   UDP port), traffic spread over all of them: total forwarding rate,
//!   the process's resident memory added per user, and the time to set a
//!   user up (instantiate, bind a filter).

use super::{add_rules, median, router, run_once, BenchArgs, DST, SPORT, SRC};
use anyhow::{anyhow, Result};
use std::time::Instant;
use weft_dataplane::classifier::Match;
use weft_dataplane::{FilterSpec, Hook, Node};
use weft_packet::build;
use weft_wasm::{HostConfig, WasmClass, WasmHost};

/// NetServ's figures, kpps (§9, table: 64 B then 340 B), by configuration.
const NETSERV_64: [Option<f64>; 6] = [Some(786.0), Some(641.0), Some(365.0), Some(188.0), None, None];
const NETSERV_340: [Option<f64>; 6] = [
    Some(343.0),
    Some(343.0),
    Some(213.0),
    Some(117.0),
    Some(111.0),
    Some(71.0),
];
const NAMES: [&str; 6] = [
    "(1) plain forwarding",
    "(2) filter table",
    "(3) native module",
    "(4) wasm no-op module",
    "(5) NetMonitor (wasm)",
    "(6) KeepAlive, SIP inspection",
];
/// NetServ's memory per user (its JVM container), MB (§9, figure 14).
const NETSERV_MB_PER_USER: f64 = 110.0;

struct Classes {
    noop: WasmClass,
    netmonitor: WasmClass,
    keepalive: WasmClass,
}

fn classes() -> Result<Classes> {
    let read = |n: &str| weft_wasm::plugins::read(n).map_err(|e| anyhow!("{e}"));
    let host = WasmHost::new(HostConfig::default()).map_err(|e| anyhow!("{e}"))?;
    let load = |name: &str, file: &str| -> Result<WasmClass> {
        host.load_class(name, &read(file)?).map_err(|e| anyhow!("{e}"))
    };
    Ok(Classes {
        noop: load("wasm-noop", "noop")?,
        netmonitor: load("wasm-netmonitor", "netmonitor")?,
        keepalive: load("keepalive", "keepalive")?,
    })
}

/// A SIP REGISTER padded to `len` bytes (None when it cannot be that short).
fn register(len: usize) -> Option<Vec<u8>> {
    let head = format!(
        "REGISTER sip:{DST} SIP/2.0\r\nVia: SIP/2.0/UDP {SRC}:{SPORT};branch=z9hG4bK-1\r\nFrom: <sip:u@{DST}>;tag=1\r\nTo: <sip:u@{DST}>\r\nCall-ID: 1@{SRC}\r\nCSeq: 1 REGISTER\r\nX-Pad: "
    );
    let tail = "\r\nContent-Length: 0\r\n\r\n";
    let pad = len.checked_sub(head.len() + tail.len())?;
    let mut m = head.into_bytes();
    m.extend(std::iter::repeat_n(b'a', pad));
    m.extend_from_slice(tail.as_bytes());
    Some(m)
}

fn frames(
    args: &BenchArgs,
    size: usize,
    payload: impl Fn(usize) -> Vec<u8>,
    dport: impl Fn(usize) -> u16,
) -> Vec<Vec<u8>> {
    let p = size.saturating_sub(14 + 20 + 8);
    (0..args.flows.max(1))
        .map(|i| {
            build::udp4(
                [2, 0xaa, 0, 0, 0, 1],
                [2, 0, 0, 0, 0, 1],
                SRC,
                DST,
                SPORT.wrapping_add(i as u16),
                dport(i),
                64,
                &payload(p),
            )
        })
        .collect()
}

fn rate(node: &mut Node, frames: &[Vec<u8>], args: &BenchArgs) -> f64 {
    let mut v: Vec<f64> = (0..args.runs.max(1)).map(|_| run_once(node, frames, args).0).collect();
    median(&mut v)
}

fn config(c: &Classes, k: usize) -> Result<Node> {
    let mut r = router()?;
    let class = match k {
        0 => return Ok(r),
        1 => {
            add_rules(&mut r, 10, vec![])?;
            return Ok(r);
        }
        2 => None,
        3 => Some(c.noop.element_class()),
        4 => Some(c.netmonitor.element_class()),
        _ => Some(c.keepalive.element_class()),
    };
    let name = match class {
        Some(cl) => {
            let n = cl.name.clone();
            r.add_class(cl)?;
            n
        }
        None => "forward".into(),
    };
    let i = r.create_instance(&name, "")?;
    add_rules(&mut r, 0, vec![i])?;
    Ok(r)
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

/// The six configurations and the users figures, as JSON rows.
pub(super) fn rows(args: &BenchArgs) -> Result<serde_json::Value> {
    let c = classes()?;
    // `--only netserv:4,5`: those configurations (1-based), no users.
    let picked: Option<Vec<usize>> = args
        .only
        .as_deref()
        .and_then(|o| o.split_once("netserv:"))
        .map(|(_, l)| l.split(',').filter_map(|k| k.trim().parse::<usize>().ok()).collect());
    let wanted = |k: usize| picked.as_ref().is_none_or(|p| p.contains(&(k + 1)));
    let mut table = Vec::new();
    for &size in &args.sizes {
        let udp = frames(args, size, |p| vec![0x5a; p], |_| super::DPORT);
        let sip =
            register(size.saturating_sub(14 + 20 + 8)).map(|m| frames(args, size, |_| m.clone(), |_| super::DPORT));
        // Runs interleaved (one of each configuration, then again), so a
        // machine whose load drifts weighs on every configuration alike.
        let mut nodes = Vec::new();
        for k in 0..6 {
            let fr = if !wanted(k) {
                None
            } else if k == 5 {
                sip.as_ref()
            } else {
                Some(&udp)
            };
            nodes.push(match fr {
                Some(fr) => Some((config(&c, k)?, fr)),
                None => None,
            });
        }
        let mut rates: Vec<Vec<f64>> = vec![Vec::new(); 6];
        for _ in 0..args.runs.max(1) {
            for (k, n) in nodes.iter_mut().enumerate() {
                if let Some((node, fr)) = n {
                    rates[k].push(run_once(node, fr, args).0);
                }
            }
        }
        let mut plain = f64::NAN;
        for k in (0..6).filter(|&k| wanted(k)) {
            let netserv = if size == 64 {
                NETSERV_64[k]
            } else if size == 340 {
                NETSERV_340[k]
            } else {
                None
            };
            if rates[k].is_empty() {
                table.push(
                    serde_json::json!({ "size": size, "config": NAMES[k], "kpps": null, "ratio": null,
                    "netserv_kpps": netserv, "note": "a SIP message does not fit" }),
                );
                continue;
            }
            let pps = median(&mut rates[k]);
            if k == 0 {
                plain = pps;
            }
            let base = if size == 64 { NETSERV_64[0] } else { NETSERV_340[0] };
            let ns_ratio = netserv.zip(base).map(|(n, b)| n / b);
            table.push(serde_json::json!({ "size": size, "config": NAMES[k], "kpps": pps / 1e3,
                "ratio": pps / plain, "netserv_kpps": netserv, "netserv_ratio": ns_ratio }));
        }
    }
    // Users: N NetMonitor instances, each behind a filter on its own port.
    let mut users = Vec::new();
    let counts: &[usize] = if picked.is_some() { &[] } else { &[1, 10, 100] };
    for &n in counts {
        let mut r = router()?;
        r.add_class(c.netmonitor.element_class())?;
        let rss0 = rss_bytes();
        let t = Instant::now();
        for u in 0..n {
            let i = r.create_instance("wasm-netmonitor", "")?;
            r.add_filters(vec![FilterSpec {
                hook: Some(Hook::Prerouting),
                m: Match {
                    proto: Some(17),
                    dport: Some((7000 + u as u16, 7000 + u as u16)),
                    ..Default::default()
                },
                chain: vec![i],
                position: None,
            }])?;
        }
        let setup = t.elapsed().as_secs_f64() / n as f64;
        let fr = frames(args, 340, |p| vec![0x5a; p], |i| 7000 + (i % n) as u16);
        let pps = rate(&mut r, &fr, args);
        let per_user = rss_bytes().saturating_sub(rss0) as f64 / n as f64;
        users.push(
            serde_json::json!({ "users": n, "kpps_340": pps / 1e3, "mb_per_user": per_user / 1e6,
            "setup_ms_per_user": setup * 1e3 }),
        );
        drop(r);
    }
    Ok(serde_json::json!({ "configurations": table, "users": users }))
}

/// Print the group's tables.
pub(super) fn print(v: &serde_json::Value, args: &BenchArgs) {
    println!(
        "\nnetserv: NetServ's configurations (§9) on in-memory ports, one core, median of {} runs x {:.1} s",
        args.runs, args.seconds
    );
    println!(
        "{:>5}  {:<32} {:>10} {:>7}   {:>14} {:>7}",
        "bytes", "configuration", "Weft kpps", "ratio", "NetServ kpps", "ratio"
    );
    let f = |x: &serde_json::Value, w: usize, p: usize| match x.as_f64() {
        Some(v) => format!("{v:>w$.p$}"),
        None => format!("{:>w$}", "-"),
    };
    for r in v["configurations"].as_array().into_iter().flatten() {
        println!(
            "{:>5}  {:<32} {} {}   {} {}  {}",
            r["size"],
            r["config"].as_str().unwrap_or(""),
            f(&r["kpps"], 10, 0),
            f(&r["ratio"], 7, 2),
            f(&r["netserv_kpps"], 14, 0),
            f(&r["netserv_ratio"], 7, 2),
            r["note"].as_str().unwrap_or("")
        );
    }
    println!("\nusers on one node (NetServ fig. 14), each with its own wasm NetMonitor behind its own filter, 340 B:");
    println!(
        "{:>6} {:>12} {:>14} {:>18}",
        "users", "total kpps", "MB per user", "setup ms per user"
    );
    for u in v["users"].as_array().into_iter().flatten() {
        println!(
            "{:>6} {} {} {}",
            u["users"],
            f(&u["kpps_340"], 12, 0),
            f(&u["mb_per_user"], 14, 2),
            f(&u["setup_ms_per_user"], 18, 2)
        );
    }
    println!("NetServ: ~{NETSERV_MB_PER_USER:.0} MB per user (a JVM container each); MB per user here: the process's resident memory added, divided by the users");
}
