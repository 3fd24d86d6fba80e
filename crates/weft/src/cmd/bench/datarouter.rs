//! The DataRouter rows of `weft bench`: the paper's figure 5 on
//! Weft — plain forwarding, a tagged packet passing a router that is not a
//! DataRouter, and tags resolved by exact hash, regular expression and
//! longest suffix, with 1, 1,000 and 1,000,000 table entries; 64-byte UDP
//! payloads, the same router and loop as the other rows, ratios to the
//! plain forwarding measured here.
//!
//! Tagged packets are addressed to the router (10.0.0.1) and carry one
//! string that resolves to the host behind the out port; the `datarouter`
//! instance is attached at the routing step, as `[[droute]]` configures a
//! DataRouter. Regular-expression tables stop at 10,000
//! patterns: one automaton over a million patterns does not build in
//! seconds (the paper measured one pattern). A smoke run (`--seconds` below
//! 0.1) stops at 1,000 entries.
//!
//! The element keeps a resolution cache (4,096 slots), as the node keeps a
//! route cache: the rows with one string measure it warm. The "distinct
//! tags" rows send 16,384 different strings round-robin, so nearly every
//! packet misses the cache and pays the table lookup — in a table of as
//! many entries, and in one of a million.

use super::{median, router, run_once, BenchArgs, DST, SPORT};
use anyhow::Result;
use std::net::Ipv4Addr;
use std::time::Instant;
use weft_dataplane::Node;
use weft_datarouter::classes::{DNS, MP3};
use weft_datarouter::wire::udp4_frame;
use weft_datarouter::{Algorithm, Tag, TagChain};

const ME: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PAYLOAD: usize = 64;
/// Strings in the "distinct tags" rows: four per cache slot.
const DISTINCT: usize = 16_384;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Plain,
    TaggedTransit,
    Hash,
    Regex,
    Suffix,
}

/// The `i`-th exact key of [`script`]'s table.
fn hash_key(i: usize) -> Vec<u8> {
    if i == 0 {
        vec![0x1f, 0x2e, 0x3d, 0x4c]
    } else {
        (i as u32).wrapping_mul(2654435761).to_be_bytes().to_vec()
    }
}

/// One frame per flow, or per string when `tags` > 1 (each in the table).
fn frames(kind: Kind, flows: usize, tags: usize) -> Vec<Vec<u8>> {
    let payload = [0x5a; PAYLOAD];
    (0..flows.max(tags).max(1))
        .map(|i| {
            let sport = SPORT.wrapping_add((i % flows.max(1)) as u16);
            let name = if tags > 1 {
                format!("w{}.isi.edu", i % tags)
            } else {
                "www.isi.edu".to_string()
            };
            let tag = match kind {
                Kind::Plain => None,
                Kind::TaggedTransit | Kind::Suffix => Some(Tag::new(DNS, Algorithm::Suffix, name)),
                Kind::Hash => Some(Tag::new(
                    MP3,
                    Algorithm::Exact,
                    hash_key(if tags > 1 { i % tags } else { 0 }),
                )),
                Kind::Regex => Some(Tag::new(DNS, Algorithm::Long, name)),
            };
            let (dst, chain) = match (kind, tag) {
                (Kind::Plain, _) | (_, None) => (DST, TagChain::default()),
                (Kind::TaggedTransit, Some(t)) => (DST, TagChain::new(vec![t])),
                (_, Some(t)) => (ME, TagChain::new(vec![t])),
            };
            if chain.tags.is_empty() {
                weft_packet::build::udp4(
                    [2, 0xaa, 0, 0, 0, 1],
                    [2, 0, 0, 0, 0, 1],
                    SRC,
                    dst,
                    sport,
                    6060,
                    64,
                    &payload,
                )
            } else {
                udp4_frame(
                    [2, 0xaa, 0, 0, 0, 1],
                    [2, 0, 0, 0, 0, 1],
                    SRC,
                    dst,
                    sport,
                    6060,
                    &chain,
                    &payload,
                )
                .unwrap_or_default()
            }
        })
        .collect()
}

/// The `droute` script of `n` entries of `kind`, the one the traffic hits
/// among them.
fn script(kind: Kind, n: usize) -> String {
    let mut s = String::with_capacity(n * 48);
    let hop = DST;
    match kind {
        Kind::Hash => {
            for i in 0..n {
                let k = hash_key(i);
                s.push_str(&format!(
                    "class MP3 add 0x{:02x}{:02x}{:02x}{:02x} {hop} alg exact\n",
                    k[0], k[1], k[2], k[3]
                ));
            }
        }
        Kind::Regex => {
            s.push_str(&format!("class DNS add .*\\.(isi|usc)\\.edu {hop} alg long\n"));
            for i in 1..n {
                s.push_str(&format!("class DNS add .*\\.d{i}\\.(org|net) {hop} alg long\n"));
            }
        }
        Kind::Suffix => {
            s.push_str(&format!("class DNS add isi.edu {hop} alg suffix\n"));
            for i in 1..n {
                s.push_str(&format!("class DNS add h{i}.d{}.com {hop} alg suffix\n", i % 997));
            }
        }
        _ => {}
    }
    s
}

fn datarouter(kind: Kind, n: usize) -> Result<(Node, f64)> {
    let mut r = router()?;
    r.add_class(weft_datarouter::class())?;
    let id = r.create_instance("datarouter", "")?;
    let t = Instant::now();
    r.control(id, &script(kind, n))?;
    let build = t.elapsed().as_secs_f64();
    r.attach_resolver(id)?;
    Ok((r, build))
}

/// The rows: (scenario, entries, pps, ratio, table build seconds).
pub fn rows(args: &BenchArgs) -> Result<Vec<serde_json::Value>> {
    let smoke = args.seconds < 0.1;
    let mut out = Vec::new();
    let mut plain = 0.0;
    let measure = |node: &mut Node, f: &[Vec<u8>]| {
        let mut rates: Vec<f64> = (0..args.runs.max(1)).map(|_| run_once(node, f, args).0).collect();
        median(&mut rates)
    };
    // The last baseline passes the distinct-tag rows' 16,384 frames through
    // a router without a DataRouter: what the larger frame set costs the
    // loop itself.
    for (kind, tags) in [
        (Kind::Plain, 1),
        (Kind::TaggedTransit, 1),
        (Kind::TaggedTransit, DISTINCT),
    ] {
        if smoke && tags > 1 {
            continue;
        }
        let mut n = router()?;
        let pps = measure(&mut n, &frames(kind, args.flows, tags));
        if kind == Kind::Plain {
            plain = pps;
        }
        let name = match (kind, tags) {
            (Kind::Plain, _) => "plain forwarding".to_string(),
            (_, 1) => "tagged, not a DataRouter".to_string(),
            _ => format!("tagged, not a DataRouter, {tags} distinct"),
        };
        out.push(serde_json::json!({"scenario": name, "entries": 0, "mpps": pps / 1e6, "ratio_to_plain": pps / plain, "build_s": 0.0}));
    }
    for (kind, name) in [
        (Kind::Hash, "exact-hash tag"),
        (Kind::Regex, "regex tag"),
        (Kind::Suffix, "suffix tag"),
    ] {
        let big = if smoke { 1_000 } else { 1_000_000 };
        for (n, tags) in [
            (1usize, 1usize),
            (1_000, 1),
            (1_000_000, 1),
            (DISTINCT, DISTINCT),
            (big, DISTINCT),
        ] {
            if smoke && n > 1_000 {
                continue;
            }
            let n = if kind == Kind::Regex { n.min(10_000) } else { n };
            // Exact keys must be in the table; patterns match them all.
            let tags = if kind == Kind::Hash { tags.min(n) } else { tags };
            let label = if tags > 1 {
                format!("{name}, {tags} distinct")
            } else {
                name.to_string()
            };
            if args
                .only
                .as_ref()
                .is_some_and(|o| !o.contains("datarouter") && !name.contains(o.as_str()))
            {
                continue;
            }
            if out.iter().any(|r| r["scenario"] == label.as_str() && r["entries"] == n) {
                continue;
            }
            let (mut node, build) = datarouter(kind, n)?;
            let pps = measure(&mut node, &frames(kind, args.flows, tags));
            if !node.drops().is_empty() {
                eprintln!("{label} ({n}): drops {:?}", node.drops());
            }
            out.push(serde_json::json!({"scenario": label, "entries": n, "mpps": pps / 1e6, "ratio_to_plain": pps / plain, "build_s": build}));
        }
    }
    Ok(out)
}

/// The rows as a table.
pub fn print(rows: &[serde_json::Value]) {
    println!("\nDataRouter, the engine alone: packets in memory, no I/O (64-byte UDP payload; paper: hash 87%, regex");
    println!("50% of plain, measured on the wire; as root, `scripts/bench-netns --datarouter` measures that way):");
    println!(
        "{:<34} {:>9} {:>8} {:>8} {:>9}",
        "scenario", "entries", "Mpps", "ratio", "build s"
    );
    for r in rows {
        println!(
            "{:<34} {:>9} {:>8.2} {:>8.2} {:>9.2}",
            r["scenario"].as_str().unwrap_or(""),
            r["entries"].as_u64().unwrap_or(0),
            r["mpps"].as_f64().unwrap_or(0.0),
            r["ratio_to_plain"].as_f64().unwrap_or(0.0),
            r["build_s"].as_f64().unwrap_or(0.0)
        );
    }
}
