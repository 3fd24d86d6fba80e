//! A signed plugin on the emulator: a router fetches a plugin class from a
//! code server through the verifying loader, traffic flows through it, and
//! mid-flow it is replaced by a newly published version, state carried over,
//! with zero packets lost (the foundation's zero-loss replacement test, for
//! code that arrived over the network).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;
use weft_dataplane::{FilterSpec, Hook, InstanceId, Match};
use weft_emu::Emulator;
use weft_repo::server::RepoServer;
use weft_repo::{store, Loader, LoaderConfig, SecretKey};
use weft_wasm::{HostConfig, WasmHost};

fn line3() -> Emulator {
    let topo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../topologies/line3.toml");
    Emulator::load(topo).unwrap()
}

fn plugin_packets(emu: &Emulator, id: InstanceId) -> u64 {
    let r = emu.node("r2").report(id).unwrap();
    r["element"]["plugin"]["packets"]
        .as_u64()
        .unwrap_or_else(|| panic!("no packet count in {r}"))
}

#[test]
fn emulated_router_loads_a_signed_plugin_and_replaces_it_under_traffic_with_zero_loss() {
    let plugins = weft_wasm::plugins::ensure_built().expect("plugins/build.sh builds the example plugins");
    let dir = std::env::temp_dir().join(format!("weft-test-plugins-emu-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let repo = dir.join("repo");
    let key = SecretKey::generate().unwrap();
    let v1 = std::fs::read(plugins.join("counter.wasm")).unwrap();
    let v2 = std::fs::read(plugins.join("counter_v2.wasm")).unwrap();
    store::publish(&repo, &v1, "wcounter", Some("1"), &key).unwrap();
    let server = RepoServer::spawn(repo.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let loader = Loader::new(
        LoaderConfig {
            trusted_keys: vec![key.public()],
            repos: vec![server.url()],
            cache_dir: Some(dir.join("cache")),
        },
        WasmHost::new(HostConfig {
            // Wall clock: a preempted test thread is not a plugin over budget.
            epoch_ticks: 200,
            ..HostConfig::default()
        })
        .unwrap(),
    );

    let mut emu = line3();
    let dst = IpAddr::V4(emu.host("h2").addr().unwrap());
    emu.host_mut("h1").ping(dst, 1, Duration::from_millis(1)).unwrap();
    assert!(emu.run_until_idle(Duration::from_secs(5)));

    let l = loader.load_blocking(&"wcounter".parse().unwrap(), None).unwrap();
    assert_eq!(l.manifest.version, "1");
    assert_eq!(l.signer, key.public().id());
    let r2 = emu.node_mut("r2");
    r2.add_class(l.class.element_class()).unwrap();
    let c = r2.create_instance("wcounter", "").unwrap();
    r2.add_filter(FilterSpec {
        hook: Some(Hook::Prerouting),
        m: Match {
            proto: Some(17),
            dport: Some((7000, 7000)),
            ..Default::default()
        },
        chain: vec![c],
        position: None,
    })
    .unwrap();
    emu.host_mut("h2").udp_bind(7000).unwrap();
    const N: u64 = 20_000;
    emu.host_mut("h1").udp_flow_count(dst, 7000, 10_000.0, 64, N).unwrap();

    // Mid-flow: version 2 is published and the running instance moves to it.
    let t0 = emu.now_ns();
    emu.run_until(|e| e.now_ns() >= t0 + 800_000_000, Duration::from_secs(5));
    let before = plugin_packets(&emu, c);
    assert!(before > 0 && before < N, "mid-flow: {before}");
    store::publish(&repo, &v2, "wcounter", Some("2"), &key).unwrap();
    let l2 = loader.load_blocking(&"wcounter".parse().unwrap(), None).unwrap();
    assert_eq!(l2.manifest.version, "2");
    assert_ne!(l2.manifest.sha256, l.manifest.sha256);
    let r2 = emu.node_mut("r2");
    r2.upsert_class(l2.class.element_class());
    r2.replace(c, "wcounter", None, true).unwrap();
    assert_eq!(plugin_packets(&emu, c), before, "state carried over");

    assert!(emu.run_until_idle(Duration::from_secs(10)));
    let seqs: Vec<u64> = emu.host("h2").udp_received().iter().map(|d| d.seq.unwrap()).collect();
    assert_eq!(seqs.len() as u64, N, "every datagram arrived exactly once");
    assert!(seqs.iter().enumerate().all(|(i, s)| *s == i as u64), "in order");
    let rep = emu.node("r2").report(c).unwrap();
    assert_eq!(rep["element"]["plugin"]["version"], 2, "version 2 runs: {rep}");
    assert_eq!(plugin_packets(&emu, c), N, "every packet went through the plugin");
    assert_eq!(emu.node("r2").drops().values().sum::<u64>(), 0);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
