//! The explicit-path scene of `weft demo` (PromethOS Path-Based Routing,
//! `docs/pbr.md`) on `topologies/promethos-fig2.toml`: the planner finds
//! the walk R1:R4:R3:R4:R7:R8:R7, R1's PBR daemon sets it up hop by hop
//! with ENCRYPT on R3 and DECRYPT on R8, UDP to port 6060 takes it (and is
//! ciphertext between R3 and R8) while other traffic follows the FIB, the
//! per-visit status comes back, and a release leaves nothing behind.

use super::{cmd, say, KEY};
use anyhow::{anyhow, bail, Result};
use std::net::IpAddr;
use std::time::Duration;
use weft_control::pbr::{PathState, PbrConfig};
use weft_emu::{CapturedFrame, Emulator};
use weft_pbr::{CreateRequest, FlowSpec, Plugin, PortRange, Stage};

const TOPOLOGY: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../topologies/promethos-fig2.toml"
));
const PORT: u16 = 6060;
const OTHER: u16 = 7070;
const MARK: &[u8] = b"WEFT-PBR";
const COUNT: usize = 20;

/// The UDP destination port of an Ethernet/IPv4 frame, and whether it is
/// labelled (MPLS) instead.
fn udp_dport(f: &[u8]) -> Option<u16> {
    if f.len() < 14 + 20 + 8 || f[12..14] != [0x08, 0x00] || f[23] != 17 {
        return None;
    }
    let u = 14 + (f[14] & 0x0f) as usize * 4;
    f.get(u + 2..u + 4).map(|p| u16::from_be_bytes([p[0], p[1]]))
}

fn is_mpls(c: &CapturedFrame) -> bool {
    c.frame.len() > 14 && c.frame[12..14] == [0x88, 0x47]
}

fn has_mark(c: &CapturedFrame) -> bool {
    c.frame.windows(MARK.len()).any(|w| w == MARK)
}

/// Frames on `link` since `since` (either direction) matching `f`.
fn count(emu: &Emulator, link: &str, since: u64, f: impl Fn(&CapturedFrame) -> bool) -> usize {
    emu.captured(link).iter().filter(|c| c.time_ns >= since && f(c)).count()
}

/// Which router has address `a`.
fn owner(emu: &Emulator, a: IpAddr) -> String {
    emu.node_names()
        .iter()
        .find(|n| emu.node(n).addresses().iter().any(|(_, x)| x.addr() == a))
        .cloned()
        .unwrap_or_else(|| "?".into())
}

/// Run the scene on its own emulator.
pub(super) fn run() -> Result<()> {
    say(
        "\n10. Explicit paths (PromethOS PBR, topologies/promethos-fig2.toml): h1's UDP to h7:6060 must be \
         encrypted at R2 or R3 and decrypted at R6 or R8; plain IP takes R1–R4–R7.",
    );
    let mut emu = Emulator::from_str(TOPOLOGY, ".")?;
    emu.enable_pbr_all(PbrConfig::default())?;
    let h7: IpAddr = "10.0.7.2".parse()?;
    let warm = emu.host_mut("h1").ping(h7, 1, Duration::from_millis(1))?;
    emu.run_until(
        |e| e.host("h1").ping_result(warm).is_some_and(|p| p.done),
        Duration::from_secs(5),
    );

    // Plan.
    cmd(
        "",
        "pbr plan --from R1 --to R7 --process ENCRYPT@R2,R3 --process DECRYPT@R6,R8",
    );
    let stages = [Stage::parse("ENCRYPT@R2,R3")?, Stage::parse("DECRYPT@R6,R8")?];
    let w = weft_pbr::plan(&emu.topology().pbr_graph(), "R1", "R7", &stages).map_err(|e| anyhow!("{e}"))?;
    let walk = w.to_colon_string();
    println!(
        "  walk {walk} (cost {}; ENCRYPT at hop {}, DECRYPT at hop {}: R4 and R7 are visited twice)",
        w.cost, w.processing[0], w.processing[1]
    );

    // Create.
    cmd(
        "R1",
        &format!("pbr create {walk} -d h7 -p udp --dport {PORT} --plugin R3:ENCRYPT:key=… --plugin R8:DECRYPT:key=…"),
    );
    let names: Vec<&str> = w.hops.iter().map(String::as_str).collect();
    let plugin = |hop: usize, class: &str| Plugin {
        hop: hop as u8,
        class: class.into(),
        config: format!("key={KEY}"),
    };
    let req = CreateRequest {
        hops: emu.hop_addresses(&names, &[], false)?,
        flowspec: FlowSpec {
            dst: ipnet::IpNet::from(h7),
            dport: PortRange::single(PORT),
            protocol: Some(17),
            ..FlowSpec::any_v4()
        },
        plugins: vec![plugin(w.processing[0], "ENCRYPT"), plugin(w.processing[1], "DECRYPT")],
        bandwidth_bps: 10_000_000,
        refresh_ms: 1000,
    };
    let t0 = emu.now_ns();
    let id = emu.pbr_create("R1", req)?;
    emu.run_until(
        |e| e.pbr_path("R1", id).is_some_and(|p| p.state != PathState::Pending),
        Duration::from_secs(10),
    );
    let v = emu.pbr_path("R1", id).ok_or_else(|| anyhow!("path {id} vanished"))?;
    if v.state != PathState::Up {
        bail!("path {id} not set up: {:?} {:?}", v.state, v.error);
    }
    println!(
        "  {id}   up after {:.1} ms: CREATE reserved 10 Mbit/s hop by hop downstream, COMMIT installed labels \
         and plugins upstream",
        (emu.now_ns() - t0) as f64 / 1e6
    );

    // Traffic.
    for l in ["R1-R4", "R3-R4", "R4-R7", "R7-R8", "h7-R7"] {
        emu.capture(l)?;
    }
    emu.host_mut("h7").udp_bind(PORT)?;
    emu.host_mut("h7").udp_bind(OTHER)?;
    let since = emu.now_ns();
    for i in 0..COUNT {
        let mut p = MARK.to_vec();
        p.extend_from_slice(format!(" secret datagram {i}").as_bytes());
        emu.host_mut("h1").udp_send(h7, PORT, &p)?;
        emu.host_mut("h1").udp_send(h7, OTHER, &p)?;
        emu.run_for(Duration::from_millis(2));
    }
    emu.run_for(Duration::from_millis(50));
    let rx = |port| emu.host("h7").udp_received().iter().filter(|d| d.dport == port).count();
    let (got, got_other) = (rx(PORT), rx(OTHER));
    let delivered_plain = count(&emu, "h7-R7", since, |c| {
        udp_dport(&c.frame) == Some(PORT) && has_mark(c)
    });
    let cipher = count(&emu, "R4-R7", since, |c| is_mpls(c) && c.dir == 0);
    let leaked = count(&emu, "R4-R7", since, |c| is_mpls(c) && has_mark(c))
        + count(&emu, "R7-R8", since, |c| c.dir == 0 && has_mark(c));
    println!(
        "  h1 → h7:{PORT}: {COUNT} sent, {got} delivered with their plaintext ({delivered_plain} on link h7-R7); \
         R4→R7 carried {cipher} labelled frames, R4→R7 and R7→R8 {leaked} with plaintext"
    );
    let fib = |l: &str| count(&emu, l, since, |c| udp_dport(&c.frame) == Some(OTHER));
    println!(
        "  h1 → h7:{OTHER}: {got_other} delivered by the FIB: R1-R4 {}, R4-R7 {}, R3-R4 {} frames",
        fib("R1-R4"),
        fib("R4-R7"),
        fib("R3-R4")
    );

    // Status.
    cmd("R1", &format!("pbr status {id}"));
    emu.pbr_request_status("R1", id)?;
    emu.run_until(
        |e| e.pbr_path("R1", id).is_some_and(|p| p.status.is_some()),
        Duration::from_secs(5),
    );
    let v = emu.pbr_path("R1", id).ok_or_else(|| anyhow!("path {id} vanished"))?;
    let recs = v.status.unwrap_or_default();
    println!(
        "    {:<3} {:<4} {:<11} {:<6} {:<34} {:<11} {:>7}",
        "hop", "node", "address", "label", "then", "plugin", "packets"
    );
    for r in &recs {
        let el = &r.detail["node"]["instances"][0]["element"];
        let plugin = r.plugin.clone().unwrap_or_else(|| "-".into());
        let extra = el
            .as_object()
            .map(|o| o.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "))
            .unwrap_or_default();
        println!(
            "    {:<3} {:<4} {:<11} {:<6} {:<34} {:<11} {:>7}  {extra}",
            r.hop,
            owner(&emu, r.address),
            r.address.to_string(),
            r.label.map(|l| l.to_string()).unwrap_or_else(|| "-".into()),
            r.out.clone().unwrap_or_default(),
            plugin,
            r.packets.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
        );
    }

    // Release.
    cmd("R1", &format!("pbr release {id}"));
    emu.pbr_release("R1", id)?;
    let clean = |e: &Emulator| {
        e.node_names()
            .iter()
            .all(|n| e.node(n).labels().is_empty() && e.node(n).instances().is_empty())
    };
    emu.run_until(clean, Duration::from_secs(5));
    let since = emu.now_ns();
    emu.host_mut("h1").udp_send(h7, PORT, b"after release")?;
    emu.run_for(Duration::from_millis(20));
    let left: usize = emu
        .node_names()
        .iter()
        .map(|n| emu.node(n).labels().len() + emu.node(n).instances().len())
        .sum();
    println!(
        "  released: {left} labels or plugin instances left on the 8 routers; h1 → h7:{PORT} follows the FIB again \
         (R1-R4 {}, R4-R7 {}, R3-R4 {} frames)",
        count(&emu, "R1-R4", since, |c| udp_dport(&c.frame) == Some(PORT)),
        count(&emu, "R4-R7", since, |c| udp_dport(&c.frame) == Some(PORT)),
        count(&emu, "R3-R4", since, |_| true),
    );
    if got != COUNT
        || delivered_plain != COUNT
        || leaked != 0
        || got_other != COUNT
        || recs.len() != w.hops.len()
        || left != 0
    {
        bail!("the explicit-path scene went wrong (see above)");
    }
    Ok(())
}
