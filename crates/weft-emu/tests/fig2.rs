//! The PromethOS figure-2 topology: shortest-path IP routing and the walk
//! the explicit-path planner (`weft_pbr::plan`) finds on it.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;
use weft_emu::topology::Topology;
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

#[test]
fn optimal_walk_on_figure_2() {
    let text = std::fs::read_to_string(path()).unwrap();
    let t = Topology::parse(&text, "promethos-fig2.toml").unwrap();
    let g = t.pbr_graph();
    let stages = [
        weft_pbr::Stage::parse("ENCRYPT@R2,R3").unwrap(),
        weft_pbr::Stage::parse("DECRYPT@R6,R8").unwrap(),
    ];
    let w = weft_pbr::plan(&g, "R1", "R7", &stages).unwrap();
    assert_eq!(w.cost, 10);
    assert_eq!(w.to_colon_string(), "R1:R4:R3:R4:R7:R8:R7");
    // ENCRYPT on R3 (hop 2), DECRYPT on R8 (hop 5).
    assert_eq!(w.processing, vec![2, 5]);
    // Without processing, the plain shortest path costs 2 (R1-R4-R7).
    assert_eq!(weft_pbr::plan(&g, "R1", "R7", &[]).unwrap().cost, 2);
}
