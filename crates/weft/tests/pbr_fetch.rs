//! Explicit paths whose plugin a hop does not have (`docs/pbr.md` §3, "Plugin
//! classes from a code server"): on the emulator's figure-2 network, R7 has
//! no `wcounter` class; the reservation starts a fetch from a real code
//! server on loopback through the verifying loader, R7's commit waits for
//! it (the path is not up meanwhile, nothing upstream commits), then goes
//! on. A tampered package and a missing one refuse the path at R7 with the
//! loader's reason, and leave nothing anywhere.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weft_control::pbr::{ClassFetcher, PathState, PbrConfig};
use weft_control::plugins::fetch_refusal;
use weft_dataplane::ElementClass;
use weft_emu::Emulator;
use weft_pbr::{CreateRequest, FlowSpec, PathId, Plugin, PortRange, Reason, Refusal};
use weft_repo::server::RepoServer;
use weft_repo::{store, Loader, LoaderConfig, Manifest, SecretKey};
use weft_wasm::{HostConfig, WasmHost};

const PORT: u16 = 6060;
/// The walk of PromethOS' figure 2; hop 4 is R7's first visit.
const WALK: &str = "R1:R4:R3:R4:R7:R8:R7";

/// Fetches through a real [`Loader`] (blocking is fine on the emulator's
/// thread) and hands results over only once `open` is set, so that the
/// test sees the commit wait.
struct GatedFetcher {
    loader: Loader,
    asked: Arc<Mutex<Vec<String>>>,
    open: Arc<AtomicBool>,
    done: VecDeque<(String, Result<ElementClass, Refusal>)>,
}

impl ClassFetcher for GatedFetcher {
    fn fetch(&mut self, name: &str) {
        self.asked.lock().unwrap().push(name.to_string());
        let r = self
            .loader
            .load_blocking(&name.parse().unwrap(), None)
            .map(|l| l.class.element_class())
            .map_err(|e| fetch_refusal(&e));
        self.done.push_back((name.to_string(), r));
    }

    fn poll(&mut self) -> Option<(String, Result<ElementClass, Refusal>)> {
        if self.open.load(Ordering::Relaxed) {
            self.done.pop_front()
        } else {
            None
        }
    }
}

struct Setup {
    emu: Emulator,
    asked: Arc<Mutex<Vec<String>>>,
    open: Arc<AtomicBool>,
    _server: RepoServer,
    dir: PathBuf,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A code server with `wcounter` (signed by the trusted key) and
/// `wtampered` (signed, then changed); figure 2 with PBR everywhere and
/// R7 fetching through it.
fn setup(tag: &str) -> Setup {
    let plugins = weft_wasm::plugins::ensure_built().expect("plugins/build.sh builds the example plugins");
    let dir = std::env::temp_dir().join(format!("weft-test-pbr-fetch-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let repo = dir.join("repo");
    let key = SecretKey::generate().unwrap();
    let counter = std::fs::read(plugins.join("counter.wasm")).unwrap();
    store::publish(&repo, &counter, "wcounter", Some("1"), &key).unwrap();
    let m = Manifest::new("wtampered", "1", &counter, key.public());
    let sig = m.sign(&key);
    let mut evil = counter.clone();
    let last = evil.len() - 1;
    evil[last] ^= 1;
    store::write_package(&repo, &m, &evil, Some(&sig)).unwrap();
    let server = RepoServer::spawn(repo, "127.0.0.1:0".parse().unwrap()).unwrap();
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

    let topo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../topologies/promethos-fig2.toml");
    let mut emu = Emulator::load(topo).unwrap();
    emu.enable_pbr_all(PbrConfig::default()).unwrap();
    let (asked, open) = (Arc::new(Mutex::new(Vec::new())), Arc::new(AtomicBool::new(false)));
    emu.pbr_set_fetcher(
        "R7",
        Box::new(GatedFetcher {
            loader,
            asked: asked.clone(),
            open: open.clone(),
            done: VecDeque::new(),
        }),
    )
    .unwrap();
    // ARP along the FIB path first.
    let dst = h7(&emu);
    let p = emu.host_mut("h1").ping(dst, 1, Duration::from_millis(1)).unwrap();
    assert!(emu.run_until(
        |e| e.host("h1").ping_result(p).is_some_and(|r| r.done),
        Duration::from_secs(10)
    ));
    Setup {
        emu,
        asked,
        open,
        _server: server,
        dir,
    }
}

fn h7(emu: &Emulator) -> IpAddr {
    IpAddr::V4(emu.host("h7").addr().unwrap())
}

/// Create the figure-2 walk with `class` at hop 4 (R7).
fn create(emu: &mut Emulator, class: &str) -> PathId {
    let names: Vec<&str> = WALK.split(':').collect();
    let req = CreateRequest {
        hops: emu.hop_addresses(&names, &[], false).unwrap(),
        flowspec: FlowSpec {
            dst: ipnet::IpNet::from(h7(emu)),
            dport: PortRange::single(PORT),
            protocol: Some(17),
            ..FlowSpec::any_v4()
        },
        plugins: vec![Plugin {
            hop: 4,
            class: class.into(),
            config: String::new(),
        }],
        bandwidth_bps: 0,
        refresh_ms: 1000,
    };
    emu.pbr_create("R1", req).unwrap()
}

fn settle(emu: &mut Emulator, id: PathId) -> PathState {
    emu.run_until(
        |e| e.pbr_path("R1", id).is_some_and(|p| p.state != PathState::Pending),
        Duration::from_secs(20),
    );
    emu.pbr_path("R1", id).unwrap().state
}

fn nothing_anywhere(emu: &Emulator) -> bool {
    emu.node_names().iter().all(|n| {
        let node = emu.node(n);
        node.labels().is_empty()
            && node.instances().is_empty()
            && emu
                .pbr(n)
                .is_none_or(|p| p.resources().is_empty() && p.agent().visit_count() == 0)
    })
}

#[test]
fn commit_waits_for_a_class_fetched_from_the_code_server() {
    let mut s = setup("ok");
    let emu = &mut s.emu;
    assert!(!emu.node("R7").has_class("wcounter"));
    // PromethOS' upper-case name: fetched as the plugin `wcounter`.
    let id = create(emu, "WCOUNTER");
    emu.run_for(Duration::from_millis(1500));
    assert_eq!(*s.asked.lock().unwrap(), vec!["wcounter".to_string()]);
    assert_eq!(emu.pbr_path("R1", id).unwrap().state, PathState::Pending);
    let r7 = emu.pbr("R7").unwrap();
    assert_eq!(r7.agent().counters().held_commits, 1);
    assert_eq!(r7.agent().counters().committed, 1, "only R7's second visit");
    assert!(emu.node("R1").labels().is_empty(), "R1 committed before R7");

    s.open.store(true, Ordering::Relaxed);
    assert_eq!(settle(emu, id), PathState::Up, "{:?}", emu.pbr_path("R1", id));
    assert!(emu.node("R7").has_class("wcounter"));
    let inst = emu.node("R7").instances();
    let counter = inst
        .iter()
        .find(|i| i.class == "wcounter")
        .expect("a wcounter instance on R7");
    let fetches = &emu.pbr("R7").unwrap().counters()["class_fetches"];
    assert_eq!(
        (fetches["started"].as_u64(), fetches["registered"].as_u64()),
        (Some(1), Some(1))
    );

    // Traffic on the path runs through the fetched plugin.
    let (dst, cid) = (h7(emu), counter.id);
    emu.host_mut("h7").udp_bind(PORT).unwrap();
    for i in 0..4u8 {
        emu.host_mut("h1").udp_send(dst, PORT, &[i; 64]).unwrap();
        emu.run_for(Duration::from_millis(10));
    }
    emu.run_for(Duration::from_millis(200));
    assert_eq!(
        emu.host("h7").udp_received().iter().filter(|d| d.dport == PORT).count(),
        4
    );
    let r = emu.node("R7").report(cid).unwrap();
    assert_eq!(r["engine"]["packets"].as_u64(), Some(4), "{r}");

    // A second path needing the class finds it: no second fetch.
    let id2 = create(emu, "WCOUNTER");
    assert_eq!(settle(emu, id2), PathState::Up);
    assert_eq!(s.asked.lock().unwrap().len(), 1);

    for p in [id, id2] {
        emu.pbr_release("R1", p).unwrap();
    }
    emu.run_for(Duration::from_millis(500));
    assert!(nothing_anywhere(emu));
}

#[test]
fn a_tampered_or_missing_class_refuses_the_path_at_that_hop() {
    let mut s = setup("bad");
    s.open.store(true, Ordering::Relaxed);
    let emu = &mut s.emu;
    let names: Vec<&str> = WALK.split(':').collect();
    let r7 = emu.hop_addresses(&names, &[], false).unwrap()[4].addr;
    for (class, reason, words) in [
        ("wtampered", Reason::ClassRejected, "hash mismatch"),
        ("wnothere", Reason::UnknownClass, "not found"),
    ] {
        let id = create(emu, class);
        assert_eq!(settle(emu, id), PathState::Refused);
        let e = emu.pbr_path("R1", id).unwrap().error.unwrap();
        assert_eq!((e.hop, e.address, e.reason), (4, r7, reason), "{e}");
        assert!(e.text.contains(words), "{class}: {e}");
        // Downstream visits had committed; soft state purges them.
        emu.run_for(Duration::from_secs(4));
        assert!(nothing_anywhere(emu), "{class}: state left behind");
        assert!(!emu.node("R7").has_class(class));
    }
    let fetches = &emu.pbr("R7").unwrap().counters()["class_fetches"];
    assert_eq!(
        (fetches["started"].as_u64(), fetches["failed"].as_u64()),
        (Some(2), Some(2))
    );

    // The failure is believed for FETCH_RETRY_MS: a new path needing the
    // class is refused at R7's reservation without asking the code server;
    // after that the server is asked again.
    let n = s.asked.lock().unwrap().len();
    let id = create(emu, "wnothere");
    assert_eq!(settle(emu, id), PathState::Refused);
    let e = emu.pbr_path("R1", id).unwrap().error.unwrap();
    assert_eq!((e.hop, e.reason), (4, Reason::UnknownClass), "{e}");
    assert_eq!(s.asked.lock().unwrap().len(), n, "asked the code server again at once");
    emu.run_for(Duration::from_millis(200));
    assert!(nothing_anywhere(emu));
    emu.run_for(Duration::from_millis(weft_control::pbr::FETCH_RETRY_MS));
    let id = create(emu, "wnothere");
    assert_eq!(settle(emu, id), PathState::Refused);
    assert_eq!(s.asked.lock().unwrap().len(), n + 1);
}
