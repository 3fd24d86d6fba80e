//! WebAssembly instances in domains (issue 15, isolation): a plugin
//! spinning until its epoch budget stops it is charged to its own domain
//! (in ns and wasm epochs) while another domain's path and plain
//! forwarding carry on; a plugin growing its memory faults at what its
//! domain has left, never in a neighbour's memory.

mod common;
use common::*;
use std::time::{Duration, Instant};
use weft_dataplane::domain::{DomainLimits, DomainSpec};
use weft_dataplane::{DomainError, DomainId, FilterSpec, Hook, InstanceId, Match, Node, NodeError};
use weft_packet::Batch;
use weft_wasm::{HostConfig, WasmHost};

fn domain(n: &mut Node, name: &str, memory: Option<u64>) -> DomainId {
    n.add_domain(DomainSpec {
        name: name.into(),
        limits: DomainLimits {
            memory,
            ..Default::default()
        },
        ..Default::default()
    })
    .unwrap()
}

fn bind_in(n: &mut Node, d: DomainId, dport: u16, i: InstanceId) {
    n.add_filter_in(
        d,
        FilterSpec {
            hook: Some(Hook::Prerouting),
            m: Match {
                proto: Some(17),
                dport: Some((dport, dport)),
                ..Default::default()
            },
            chain: vec![i],
            position: None,
        },
    )
    .unwrap();
}

/// Receive `frames`, then tick until the domains' queues are empty; what
/// left on port 1, by destination port.
fn send_and_drain(n: &mut Node, base: Instant, frames: &[Vec<u8>]) -> Vec<u16> {
    let now = || base.elapsed().as_nanos() as u64;
    let mut b: Batch = frames.iter().map(|f| n.alloc(f)).collect();
    n.receive(now(), 0, &mut b);
    for _ in 0..1000 {
        if n.domain_queued() == 0 {
            break;
        }
        std::thread::sleep(Duration::from_micros(50));
        n.tick(now());
    }
    let mut out = Batch::new();
    n.take_tx(1, &mut out);
    out.iter()
        .filter_map(|p| weft_dataplane::vcpu::udp_dport(p.data()))
        .collect()
}

#[test]
fn a_spinning_plugin_costs_only_its_own_domain() {
    let h = WasmHost::new(HostConfig::default()).unwrap();
    let tick = HostConfig::default().epoch_tick;
    let ticks = HostConfig::default().epoch_ticks;
    let mut n = node();
    let base = Instant::now();
    n.set_cpu_clock(Box::new(move || base.elapsed().as_nanos() as u64));
    n.set_epoch_ns(tick.as_nanos() as u64);
    load(&mut n, &h, "spin", "spin");
    let spinner = domain(&mut n, "spinner", None);
    let calm = domain(&mut n, "calm", None);
    let s = n.create_instance_in(spinner, "spin", "max_faults=0").unwrap();
    bind_in(&mut n, spinner, PLUGIN_PORT, s);
    let c = n.create_instance_in(calm, "counter", "").unwrap();
    bind_in(&mut n, calm, OTHER_PORT + 1, c);

    let mut frames = vec![frame(PLUGIN_PORT, b"spin")];
    frames.extend((0..10).map(|_| frame(OTHER_PORT + 1, b"calm")));
    frames.extend((0..10).map(|_| frame(OTHER_PORT, b"plain")));
    let out = send_and_drain(&mut n, base, &frames);
    let count = |p: u16| out.iter().filter(|x| **x == p).count();
    assert_eq!(count(OTHER_PORT), 10, "plain forwarding carried everything");
    assert_eq!(count(OTHER_PORT + 1), 10, "the calm domain's path carried everything");
    assert_eq!(
        count(PLUGIN_PORT),
        0,
        "the spinner's packet got its fault policy (drop)"
    );
    assert_eq!(wasm_report(&n, s)["fault_kinds"]["budget"], 1);

    let sp = n.domain(spinner).unwrap().counters;
    let ca = n.domain(calm).unwrap().counters;
    eprintln!("spinner: {sp:?}\ncalm: {ca:?}");
    // The epoch interrupt fires only once the ticker has advanced past the
    // deadline: at least ticks − 1 periods ran, all of them charged here.
    assert!(
        sp.cpu_ns >= (ticks - 1) * tick.as_nanos() as u64,
        "the spin is charged to its domain: {sp:?}"
    );
    assert!(sp.wasm_epochs >= ticks - 1, "{sp:?}");
    assert_eq!(ca.wasm_epochs, 0, "native code counts no epochs");
    assert_eq!((sp.served, ca.served), (1, 10));
}

#[test]
fn a_growing_plugin_faults_at_what_its_domain_has_left() {
    let cap = 8u64 << 20;
    let h = WasmHost::new(HostConfig {
        memory_cap: cap as usize,
        epoch_ticks: 200,
        ..HostConfig::default()
    })
    .unwrap();
    let mut n = node();
    load(&mut n, &h, "grow", "grow");
    // 3 MiB for its instance and room for a full queue of packets.
    let queue_room = u64::from(weft_dataplane::DEFAULT_QUEUE_LEN) * weft_dataplane::BUFFER_CHARGE;
    let small = domain(&mut n, "small", Some((3 << 20) + queue_room));
    let big = domain(&mut n, "big", Some(32 << 20));
    let a = n.create_instance_in(small, "grow", "").unwrap();
    let b = n.create_instance_in(big, "grow", "").unwrap();
    // The small domain reserved all it had for its instance: a second one
    // is refused, counted, and nothing else changes.
    assert_eq!(n.domain(small).unwrap().usage.instance_memory, 3 << 20);
    let e = n.create_instance_in(small, "grow", "").unwrap_err();
    assert!(matches!(e, NodeError::Domain(DomainError::MemoryLimit { .. })), "{e}");
    assert_eq!(n.domain(small).unwrap().counters.alloc_failures, 1);
    assert_eq!(n.instances().len(), 2);
    assert_eq!(n.domain(big).unwrap().usage.instance_memory, cap);
    bind_in(&mut n, small, PLUGIN_PORT, a);
    bind_in(&mut n, big, PLUGIN_PORT + 1, b);

    let base = Instant::now();
    send_and_drain(
        &mut n,
        base,
        &[frame(PLUGIN_PORT, b"grow"), frame(PLUGIN_PORT + 1, b"grow")],
    );
    let wa = wasm_report(&n, a);
    let wb = wasm_report(&n, b);
    assert_eq!(wa["fault_kinds"]["memory"], 1, "{wa}");
    assert_eq!(
        wa["last_fault"],
        format!("memory: grew past the cap of {} bytes", 3 << 20),
        "{wa}"
    );
    assert!(wa["memory_bytes"].as_u64().unwrap() <= 3 << 20, "{wa}");
    // The neighbour grew to its own cap, not into the small domain's.
    assert_eq!(
        wb["last_fault"],
        format!("memory: grew past the cap of {cap} bytes"),
        "{wb}"
    );
    assert_eq!(n.domain(small).unwrap().usage.memory, 3 << 20);
    // Removing the small domain gives its reservation back.
    let r = n.remove_domain(small).unwrap();
    assert_eq!(r.memory_freed, 3 << 20);
    assert_eq!(n.domain(DomainId::ROOT).unwrap().usage.instance_memory, cap);
}
