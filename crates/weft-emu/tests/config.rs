//! Node configs in topologies: inline `[node.config]` tables and files, in
//! weft-control's schema, with static routing.

use std::net::IpAddr;
use std::time::Duration;
use weft_emu::Emulator;

const TOPO: &str = r#"
routing = "static"

[[node]]
name = "r1"
[node.config]
[[node.config.port]]
name = "eth0"
mac = "02:00:00:00:01:00"
addrs = ["10.0.1.1/24"]
[[node.config.instance]]
name = "count"
class = "counter"
[[node.config.filter]]
hook = "prerouting"
proto = "udp"
dport = "7000"
chain = ["count"]

[[node]]
name = "r2"
config = "r2.toml"

[[host]]
name = "h1"
addr = "10.0.1.2/24"

[[host]]
name = "h2"
addr = "10.0.2.2/24"

[[link]]
a = "h1"
b = "r1:eth0"

[[link]]
a = "r1:eth1"
b = "r2:eth0"
a_addr = "10.0.12.1/24"
b_addr = "10.0.12.2/24"

[[link]]
a = "r2:eth1"
b = "h2"

[[route]]
node = "r1"
prefix = "10.0.2.0/24"
via = "10.0.12.2"
"#;

const R2: &str = r#"
[node]
name = "r2"

[[port]]
name = "eth1"
mac = "02:00:00:00:02:01"
addrs = ["10.0.2.1/24"]

[[route]]
prefix = "10.0.1.0/24"
via = "10.0.12.1"
"#;

fn dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("weft-emu-config-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("r2.toml"), R2).unwrap();
    d
}

#[test]
fn inline_and_file_configs_with_static_routes() {
    let d = dir("ok");
    let mut emu = Emulator::from_str(TOPO, &d).unwrap();
    let h2 = IpAddr::V4(emu.host("h2").addr().unwrap());
    let p = emu.host_mut("h1").ping(h2, 2, Duration::from_millis(10)).unwrap();
    emu.host_mut("h2").udp_bind(7000).unwrap();
    emu.host_mut("h1").udp_flow_count(h2, 7000, 100.0, 100, 5).unwrap();
    assert!(emu.run_until_idle(Duration::from_secs(10)));
    assert_eq!(emu.host("h1").ping_result(p).unwrap().replies.len(), 2);
    assert_eq!(emu.host("h2").udp_received().len(), 5);
    let inst = &emu.node("r1").instances()[0];
    assert_eq!(inst.class, "counter");
    assert_eq!(emu.node("r1").report(inst.id).unwrap()["element"]["packets"], 5);
    // r2's eth0 came from the link (config had none), eth1 from the file.
    let ports: Vec<String> = emu.node("r2").ports().iter().map(|p| p.cfg.name.clone()).collect();
    assert_eq!(ports, ["eth0", "eth1"]);
    std::fs::remove_dir_all(d).ok();
}

#[test]
fn bad_files_name_the_problem() {
    let d = dir("bad");
    let e = Emulator::from_str(&TOPO.replace("class = \"counter\"", "class = \"nope\""), &d).unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
    let e = Emulator::from_str(&TOPO.replace("r2.toml", "missing.toml"), &d).unwrap_err();
    assert!(e.to_string().contains("missing.toml"), "{e}");
    let e = Emulator::from_str("[[link]]\na = \"x\"\nb = \"y\"\n", &d).unwrap_err();
    assert!(e.to_string().contains("\"x\""), "{e}");
    std::fs::remove_dir_all(d).ok();
}
