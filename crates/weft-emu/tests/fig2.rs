//! The PromethOS figure-2 topology: shortest-path IP routing and the walk
//! the later explicit-path planner must find.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;
use weft_emu::topology::{EndpointSpec, Topology};
use weft_emu::Emulator;

fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../topologies/promethos-fig2.toml")
}

#[test]
fn ping_and_default_path_is_r1_r4_r7() {
    let mut emu = Emulator::load(path()).unwrap();
    let h7 = IpAddr::V4(emu.host("h7").addr().unwrap());
    let p = emu.host_mut("h1").ping(h7, 3, Duration::from_millis(50)).unwrap();
    let t = emu.host_mut("h1").traceroute(h7, 16).unwrap();
    assert!(emu.run_until_idle(Duration::from_secs(30)));
    assert_eq!(emu.host("h1").ping_result(p).unwrap().replies.len(), 3);
    let hops: Vec<IpAddr> = emu
        .host("h1")
        .trace(t)
        .unwrap()
        .hops
        .iter()
        .map(|h| h.unwrap())
        .collect();
    let want: Vec<IpAddr> = ["10.0.1.1", "10.14.0.4", "10.47.0.7", "10.0.7.2"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(hops, want, "h1 → R1 → R4 → R7 → h7");
    assert_eq!(emu.node_cost("R2"), Some(10));
    // IPv6 follows the same path.
    let h7v6 = IpAddr::V6(emu.host("h7").addr6().unwrap());
    let t = emu.host_mut("h1").traceroute(h7v6, 16).unwrap();
    assert!(emu.run_until_idle(Duration::from_secs(30)));
    let tr = emu.host("h1").trace(t).unwrap();
    let hops: Vec<String> = tr
        .hops
        .iter()
        .map(|h| h.map(|a| a.to_string()).unwrap_or_default())
        .collect();
    assert_eq!(
        hops,
        ["2001:db8:1::1", "2001:db8:14::4", "2001:db8:47::7", "2001:db8:7::2"]
    );
}

/// Small test helper (the real planner comes later): the cheapest walk from
/// `src` to `dst` that processes at one node of each stage in order, by
/// Dijkstra over the layered graph (layer k = k stages done). Moving costs
/// the link cost; processing at a node of stage k costs the node's cost and
/// moves to layer k+1. Returns (cost, walk with processing nodes repeated
/// where the walk turns around there).
fn best_walk(t: &Topology, src: &str, dst: &str, stages: &[&[&str]]) -> (u64, Vec<String>) {
    let names: Vec<&str> = t.nodes.iter().map(|n| n.name.as_str()).collect();
    let idx = |s: &str| names.iter().position(|n| *n == s).unwrap();
    let mut adj = vec![Vec::new(); names.len()];
    for l in &t.links {
        if let (Ok(EndpointSpec::Node { node: a, .. }), Ok(EndpointSpec::Node { node: b, .. })) =
            (t.endpoint(&l.a), t.endpoint(&l.b))
        {
            adj[idx(&a)].push((idx(&b), l.cost as u64));
            adj[idx(&b)].push((idx(&a), l.cost as u64));
        }
    }
    let k = stages.len();
    let state = |n: usize, layer: usize| layer * names.len() + n;
    let mut dist = vec![u64::MAX; names.len() * (k + 1)];
    let mut prev = vec![usize::MAX; dist.len()];
    let s0 = state(idx(src), 0);
    dist[s0] = 0;
    let mut heap = BinaryHeap::from([Reverse((0u64, s0))]);
    while let Some(Reverse((d, s))) = heap.pop() {
        if d > dist[s] {
            continue;
        }
        let (n, layer) = (s % names.len(), s / names.len());
        let mut next: Vec<(usize, u64)> = adj[n].iter().map(|&(m, c)| (state(m, layer), c)).collect();
        if layer < k && stages[layer].contains(&names[n]) {
            next.push((state(n, layer + 1), t.nodes[n].cost as u64));
        }
        for (s2, c) in next {
            if d + c < dist[s2] {
                dist[s2] = d + c;
                prev[s2] = s;
                heap.push(Reverse((d + c, s2)));
            }
        }
    }
    let goal = state(idx(dst), k);
    let mut walk = Vec::new();
    let mut s = goal;
    while s != usize::MAX {
        let n = names[s % names.len()].to_string();
        if walk.last() != Some(&n) {
            walk.push(n);
        }
        s = prev[s];
    }
    walk.reverse();
    (dist[goal], walk)
}

#[test]
fn optimal_walk_on_figure_2() {
    let text = std::fs::read_to_string(path()).unwrap();
    let t = Topology::parse(&text, "promethos-fig2.toml").unwrap();
    let (cost, walk) = best_walk(&t, "R1", "R7", &[&["R2", "R3"], &["R6", "R8"]]);
    assert_eq!(cost, 10);
    assert_eq!(walk.join(":"), "R1:R4:R3:R4:R7:R8:R7");
    // Without processing, the plain shortest path costs 2 (R1-R4-R7).
    assert_eq!(best_walk(&t, "R1", "R7", &[]).0, 2);
}
