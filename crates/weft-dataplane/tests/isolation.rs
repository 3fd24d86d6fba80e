//! Isolation between domains, by counters (issue 15 item 6): a node in
//! virtual CPU time — a clock that only the work advances — fed by
//! sources at fixed rates through a bounded receive ring, as a NIC's.
//!
//! Costs are modelled by a `cost` element that advances the clock by `ns`
//! per packet: plain forwarding's path (a root filter, run at once) costs
//! 100 ns a packet, a tenant's chain 450 ns. The node charges domains from
//! that clock, so every figure here is exact and the same on every run.

use std::net::Ipv4Addr;
use weft_dataplane::domain::{DomainLimits, DomainSpec, SchedClass};
use weft_dataplane::vcpu::{udp_dport, Bench, Source, Tally, VirtualCpu, COST_CLASS};
use weft_dataplane::{DomainId, FilterSpec, Hook, Match, Node, PortConfig};
use weft_packet::{build, Batch, Packet};

const M0: [u8; 6] = [2, 0, 0, 0, 0, 1];
const M1: [u8; 6] = [2, 0, 0, 0, 1, 1];
const HA: [u8; 6] = [2, 0xaa, 0, 0, 0, 1];
const HB: [u8; 6] = [2, 0xbb, 0, 0, 0, 1];
const PLAIN: u16 = 1000;
const GOOD: u16 = 2000;
const FLOOD: u16 = 3000;

fn node(cpu: &VirtualCpu) -> Node {
    let mut n = Node::new("iso");
    n.add_port(PortConfig {
        name: "p0".into(),
        mac: M0,
        mtu: 1500,
        addrs: vec!["10.0.0.1/24".parse().unwrap()],
    })
    .unwrap();
    n.add_port(PortConfig {
        name: "p1".into(),
        mac: M1,
        mtu: 1500,
        addrs: vec!["10.0.1.1/24".parse().unwrap()],
    })
    .unwrap();
    n.add_neighbor(1, "10.0.1.2".parse().unwrap(), HB).unwrap();
    cpu.attach(&mut n);
    n
}

fn by_dport(dport: u16) -> Match {
    Match {
        dport: Some((dport, dport)),
        ..Default::default()
    }
}

/// A path for traffic to `dport` in domain `d` whose chain costs `ns`.
fn path(n: &mut Node, d: DomainId, dport: u16, ns: u64) {
    let i = n.create_instance_in(d, COST_CLASS, &format!("ns={ns}")).unwrap();
    n.add_filter_in(
        d,
        FilterSpec {
            hook: Some(Hook::Prerouting),
            m: by_dport(dport),
            chain: vec![i],
            position: None,
        },
    )
    .unwrap();
}

fn tenant(n: &mut Node, name: &str, class: SchedClass, limits: DomainLimits) -> DomainId {
    n.add_domain(DomainSpec {
        name: name.into(),
        class,
        limits,
        ..Default::default()
    })
    .unwrap()
}

fn frame(dport: u16) -> Vec<u8> {
    build::udp4(
        HA,
        M0,
        Ipv4Addr::new(10, 0, 0, 2),
        Ipv4Addr::new(10, 0, 1, 2),
        5000,
        dport,
        64,
        &[0u8; 18],
    )
}

fn class_of(dport: u16) -> usize {
    match dport {
        PLAIN => 0,
        GOOD => 1,
        _ => 2,
    }
}

/// A source of UDP to `dport` every `interval` ns.
fn src(dport: u16, interval: u64) -> Source {
    Source::new(class_of(dport), interval, frame(dport))
}

fn simulate(n: &mut Node, cpu: &VirtualCpu, sources: &mut [Source], span: u64, drain: u64) -> Tally {
    let mut t = Bench::new(n, cpu.clone(), 0, 1, |f| udp_dport(f).map(class_of)).run(sources, span, drain);
    t.offered.resize(3, 0);
    t.ring_drops.resize(3, 0);
    t.delivered.resize(3, 0);
    t
}

const PLAIN_NS: u64 = 100;
const CHAIN_NS: u64 = 450;
const SPAN: u64 = 20_000_000; // 20 ms of virtual time
const DRAIN: u64 = 2_000_000;

/// Plain at 20 % of the CPU, the good tenant at 10 % (its reservation is a
/// quarter: half the CPU goes to domains when plain forwarding is busy —
/// the default share — split evenly between two fair domains).
fn sources(flood_interval: Option<u64>) -> Vec<Source> {
    let mut v = vec![src(PLAIN, 500), src(GOOD, 4_500)];
    if let Some(i) = flood_interval {
        v.push(src(FLOOD, i));
    }
    v
}

fn two_tenants(clock: &VirtualCpu, flood_in_root: bool) -> (Node, DomainId, DomainId) {
    let mut n = node(clock);
    let good = tenant(&mut n, "good", SchedClass::Fair { weight: 1 }, DomainLimits::default());
    let flood = tenant(&mut n, "flood", SchedClass::Fair { weight: 1 }, DomainLimits::default());
    path(&mut n, good, GOOD, CHAIN_NS);
    path(
        &mut n,
        if flood_in_root { DomainId::ROOT } else { flood },
        FLOOD,
        CHAIN_NS,
    );
    path(&mut n, DomainId::ROOT, PLAIN, PLAIN_NS);
    (n, good, flood)
}

#[test]
fn a_flooding_domain_cannot_hurt_a_well_behaved_one_nor_plain_forwarding() {
    // The flood's share is a quarter of the CPU; 10× that is 2.5 CPUs of
    // its 450 ns chain: one packet every 180 ns.
    let flood_interval = CHAIN_NS * 4 / 10;

    let clock = VirtualCpu::new();
    let (mut n, _, _) = two_tenants(&clock, false);
    let unloaded = simulate(&mut n, &clock, &mut sources(None), SPAN, DRAIN);

    let clock = VirtualCpu::new();
    let (mut n, good, flood) = two_tenants(&clock, false);
    let loaded = simulate(&mut n, &clock, &mut sources(Some(flood_interval)), SPAN, DRAIN);
    let g = n.domain(good).unwrap();
    let f = n.domain(flood).unwrap();

    let good_ratio = loaded.delivered[1] as f64 / loaded.offered[1] as f64;
    let plain_ratio = loaded.delivered[0] as f64 / unloaded.delivered[0] as f64;
    let flood_cpu = f.counters.cpu_ns as f64 / clock.now() as f64;
    eprintln!(
        "isolation: good tenant {:.4} of its offered load (reservation 0.25 CPU, offered 0.10), \
         plain forwarding {:.4} of its unloaded rate, flood offered {} served {} dropped early {} \
         ({:.3} of the CPU); unloaded {unloaded:?}, loaded {loaded:?}",
        good_ratio, plain_ratio, loaded.offered[2], f.counters.served, f.counters.dropped_full, flood_cpu
    );
    assert!(good_ratio >= 0.99, "good tenant got {good_ratio}");
    assert!(plain_ratio >= 0.95, "plain forwarding at {plain_ratio} of unloaded");
    assert!(
        f.counters.dropped_full > loaded.offered[2] / 2,
        "the flood was dropped at its own queue"
    );
    assert_eq!(g.counters.dropped_full, 0, "the good tenant's queue never overflowed");
    assert!(
        flood_cpu > 0.25,
        "the flood still got the CPU nobody else wanted: {flood_cpu}"
    );

    // The same flood in the root (run at once, unscheduled) is what the
    // domains prevent: plain forwarding then loses packets at the ring.
    let clock = VirtualCpu::new();
    let (mut n, _, _) = two_tenants(&clock, true);
    let unscheduled = simulate(&mut n, &clock, &mut sources(Some(flood_interval)), SPAN, DRAIN);
    let plain_unscheduled = unscheduled.delivered[0] as f64 / unloaded.delivered[0] as f64;
    eprintln!(
        "without domains the same flood leaves plain forwarding {plain_unscheduled:.4} of its rate: {unscheduled:?}"
    );
    assert!(
        plain_unscheduled < 0.95,
        "the test measures something: {plain_unscheduled}"
    );
}

#[test]
fn a_domain_over_its_memory_limit_drops_its_own_packets_only() {
    let clock = VirtualCpu::new();
    let mut n = node(&clock);
    let small = tenant(
        &mut n,
        "small",
        SchedClass::Fair { weight: 1 },
        DomainLimits {
            memory: Some(4 * weft_dataplane::node::BUFFER_CHARGE),
            ..Default::default()
        },
    );
    let other = tenant(&mut n, "other", SchedClass::Fair { weight: 1 }, DomainLimits::default());
    path(&mut n, small, FLOOD, CHAIN_NS);
    path(&mut n, other, GOOD, CHAIN_NS);
    // No credit yet: what arrives stays queued.
    let f = frame(FLOOD);
    let g = frame(GOOD);
    let mut b: Batch = (0..10)
        .map(|_| Packet::from_bytes(&f))
        .chain((0..10).map(|_| Packet::from_bytes(&g)))
        .collect();
    n.set_root_share(1000).unwrap(); // a received batch earns the domains nothing
    n.receive(0, 0, &mut b);
    let s = n.domain(small).unwrap();
    let o = n.domain(other).unwrap();
    assert_eq!(s.usage.queued, 4);
    assert_eq!(s.counters.dropped_memory, 6);
    assert_eq!(s.counters.alloc_failures, 6);
    assert_eq!(s.usage.buffers, 4 * weft_dataplane::node::BUFFER_CHARGE);
    assert_eq!(o.usage.queued, 10, "the other domain lost nothing");
    assert_eq!(o.counters.dropped_memory + o.counters.alloc_failures, 0);
    assert_eq!(n.drop_count(weft_dataplane::DropReason::DomainMemory), 6);
    // Served, the buffers go back and the charge with them.
    idle(&mut n, &clock, 1_000_000);
    let s = n.domain(small).unwrap();
    assert_eq!((s.usage.queued, s.usage.memory), (0, 0));
    assert_eq!(s.counters.served, 4);
}

#[test]
fn destroying_a_busy_domain_frees_all_of_it() {
    let clock = VirtualCpu::new();
    let mut n = node(&clock);
    let busy = tenant(&mut n, "busy", SchedClass::Fair { weight: 1 }, DomainLimits::default());
    let child = n
        .add_domain(DomainSpec {
            name: "busy.child".into(),
            parent: busy,
            ..Default::default()
        })
        .unwrap();
    path(&mut n, busy, FLOOD, CHAIN_NS);
    path(&mut n, child, GOOD, CHAIN_NS);
    n.set_root_share(1000).unwrap();
    let f = frame(FLOOD);
    let g = frame(GOOD);
    let mut b: Batch = (0..20)
        .map(|_| Packet::from_bytes(&f))
        .chain((0..7).map(|_| Packet::from_bytes(&g)))
        .collect();
    n.receive(0, 0, &mut b);
    assert_eq!(n.domain_queued(), 27);
    let free_before = n.pool_available();
    let r = n.remove_domain(busy).unwrap();
    assert_eq!(r.domains, vec![busy, child]);
    assert_eq!(r.packets_freed, 27);
    assert_eq!(r.memory_freed, 27 * weft_dataplane::node::BUFFER_CHARGE);
    assert_eq!(r.instances.len(), 2);
    assert_eq!(r.filters.len(), 2);
    assert_eq!(
        n.pool_available(),
        free_before + 27,
        "every queued buffer is back in the pool"
    );
    assert_eq!(n.domain_queued(), 0);
    assert_eq!(n.poll_timeout(), None, "nothing left to serve");
    let root = n.domain(DomainId::ROOT).unwrap();
    assert_eq!(root.usage.memory, 0);
    assert!(root.children.is_empty());
    assert!(n.instances().is_empty() && n.filters().is_empty());
    // The node goes on forwarding what is left.
    path(&mut n, DomainId::ROOT, PLAIN, PLAIN_NS);
    let mut b: Batch = vec![Packet::from_bytes(&frame(PLAIN))];
    n.receive(1, 0, &mut b);
    let mut out = Batch::new();
    n.take_tx(1, &mut out);
    assert_eq!(out.len(), 1);
}

/// Let `ns` of idle time pass, then tick: a tick with nothing received
/// since the last one gives the domains the idle time.
fn idle(n: &mut Node, clock: &VirtualCpu, ns: u64) {
    n.tick(clock.now());
    clock.advance(ns);
    n.tick(clock.now());
}

/// Serve what `n` has queued with `credit` ns of idle time; the order in
/// which domains' packets left.
fn serve_order(n: &mut Node, clock: &VirtualCpu, credit: u64) -> Vec<u16> {
    idle(n, clock, credit);
    let mut out = Batch::new();
    n.take_tx(1, &mut out);
    out.iter().filter_map(|p| udp_dport(p.data())).collect()
}

#[test]
fn fixed_priority_serves_the_higher_level_first_within_its_cpu_limit() {
    let clock = VirtualCpu::new();
    let mut n = node(&clock);
    let hi = tenant(
        &mut n,
        "hi",
        SchedClass::Priority { level: 0 },
        DomainLimits {
            cpu_ns: Some(3 * CHAIN_NS),
            ..Default::default()
        },
    );
    let lo = tenant(&mut n, "lo", SchedClass::Priority { level: 1 }, DomainLimits::default());
    path(&mut n, lo, GOOD, CHAIN_NS);
    path(&mut n, hi, FLOOD, CHAIN_NS);
    n.set_root_share(1000).unwrap();
    let f = frame(FLOOD);
    let g = frame(GOOD);
    let mut b: Batch = (0..4)
        .map(|_| Packet::from_bytes(&g))
        .chain((0..8).map(|_| Packet::from_bytes(&f)))
        .collect();
    n.receive(0, 0, &mut b);
    let order = serve_order(&mut n, &clock, 100 * CHAIN_NS);
    // hi first, cut off at its limit of three packets a round; then lo.
    assert_eq!(order, [FLOOD, FLOOD, FLOOD, GOOD, GOOD, GOOD, GOOD]);
    assert_eq!(n.domain(hi).unwrap().counters.cpu_limited, 1);
    // The next rounds (idle() ticks twice) take the rest, three a round.
    let order = serve_order(&mut n, &clock, 100 * CHAIN_NS);
    assert_eq!(order, [FLOOD; 5]);
    assert_eq!(n.domain(hi).unwrap().counters.cpu_limited, 2);
}

#[test]
fn earliest_deadline_first_serves_the_packet_due_first() {
    let clock = VirtualCpu::new();
    let mut n = node(&clock);
    let slow = tenant(
        &mut n,
        "slow",
        SchedClass::Deadline { deadline_ns: 10_000 },
        DomainLimits::default(),
    );
    let urgent = tenant(
        &mut n,
        "urgent",
        SchedClass::Deadline { deadline_ns: 1_000 },
        DomainLimits::default(),
    );
    path(&mut n, slow, GOOD, CHAIN_NS);
    path(&mut n, urgent, FLOOD, CHAIN_NS);
    n.set_root_share(1000).unwrap();
    let f = frame(FLOOD);
    let g = frame(GOOD);
    // slow's packets arrive at 0 (due 10,000), urgent's at 5,000 (due 6,000).
    let mut b: Batch = (0..2).map(|_| Packet::from_bytes(&g)).collect();
    n.receive(0, 0, &mut b);
    let mut b: Batch = (0..2).map(|_| Packet::from_bytes(&f)).collect();
    n.receive(5_000, 0, &mut b);
    assert_eq!(serve_order(&mut n, &clock, 100 * CHAIN_NS), [FLOOD, FLOOD, GOOD, GOOD]);
}

#[test]
fn weighted_fair_domains_share_in_proportion_to_their_weights() {
    let clock = VirtualCpu::new();
    let mut n = node(&clock);
    let three = tenant(&mut n, "three", SchedClass::Fair { weight: 3 }, DomainLimits::default());
    let one = tenant(&mut n, "one", SchedClass::Fair { weight: 1 }, DomainLimits::default());
    path(&mut n, three, GOOD, CHAIN_NS);
    path(&mut n, one, FLOOD, CHAIN_NS);
    // Both backlogged for the whole run.
    let span = 10_000_000;
    let t = simulate(&mut n, &clock, &mut [src(GOOD, 100), src(FLOOD, 100)], span, 0);
    let (a, b) = (n.domain(three).unwrap().counters, n.domain(one).unwrap().counters);
    let ratio = a.cpu_ns as f64 / b.cpu_ns as f64;
    eprintln!("weights 3:1 → CPU {} : {} ns ({ratio:.3}); {t:?}", a.cpu_ns, b.cpu_ns);
    assert!((2.8..=3.2).contains(&ratio), "CPU split {ratio}");
}

#[test]
fn plain_forwarding_keeps_its_configured_share_when_everyone_is_overloaded() {
    for share in [500u32, 800] {
        let clock = VirtualCpu::new();
        let (mut n, _, _) = two_tenants(&clock, false);
        n.set_root_share(share).unwrap();
        // Plain offered 1.67 CPUs, the flood 2.5: both far past what the
        // node has.
        let t = simulate(&mut n, &clock, &mut [src(PLAIN, 60), src(FLOOD, 180)], SPAN, 0);
        let plain_cpu = (t.delivered[0] * PLAIN_NS) as f64 / clock.now() as f64;
        eprintln!("root share {share}‰: plain forwarding used {plain_cpu:.3} of the CPU; {t:?}");
        assert!(
            plain_cpu >= share as f64 / 1000.0 - 0.01,
            "plain forwarding got {plain_cpu} with a share of {share}‰"
        );
    }
}
