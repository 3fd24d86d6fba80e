//! Isolation between domains, by counters (issue 15 item 6): a node in
//! virtual CPU time — a clock that only the work advances — fed by
//! sources at fixed rates through a bounded receive ring, as a NIC's.
//!
//! Costs are modelled by a `cost` element that advances the clock by `ns`
//! per packet: plain forwarding's path (a root filter, run at once) costs
//! 100 ns a packet, a tenant's chain 450 ns. The node charges domains from
//! that clock, so every figure here is exact and the same on every run.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use weft_dataplane::domain::{DomainLimits, DomainSpec, SchedClass};
use weft_dataplane::element::{Args, ClassDoc, Ctx, Element, ElementClass, Verdict};
use weft_dataplane::{DomainId, FilterSpec, Hook, Match, Node, PortConfig};
use weft_packet::view::{parse, L4};
use weft_packet::{build, Batch, Packet};

const M0: [u8; 6] = [2, 0, 0, 0, 0, 1];
const M1: [u8; 6] = [2, 0, 0, 0, 1, 1];
const HA: [u8; 6] = [2, 0xaa, 0, 0, 0, 1];
const HB: [u8; 6] = [2, 0xbb, 0, 0, 0, 1];
const PLAIN: u16 = 1000;
const GOOD: u16 = 2000;
const FLOOD: u16 = 3000;
const RING: usize = 1024;

/// Advances the virtual CPU clock by `ns` per packet.
struct Cost {
    clock: Arc<AtomicU64>,
    ns: u64,
}

impl Element for Cost {
    fn process(&mut self, _cx: &mut Ctx<'_>, _p: &mut Packet) -> Verdict {
        self.clock.fetch_add(self.ns, Ordering::Relaxed);
        Verdict::Continue
    }
}

fn node(clock: &Arc<AtomicU64>) -> Node {
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
    let c = clock.clone();
    n.add_class(ElementClass::native("cost", ClassDoc::default(), move |a: &Args| {
        Ok(Box::new(Cost {
            clock: c.clone(),
            ns: a.get_parsed("ns", 0)?.unwrap_or(0),
        }))
    }))
    .unwrap();
    let c = clock.clone();
    n.set_cpu_clock(Box::new(move || c.load(Ordering::Relaxed)));
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
    let i = n.create_instance_in(d, "cost", &format!("ns={ns}")).unwrap();
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

struct Source {
    dport: u16,
    interval: u64,
    next: u64,
    frame: Vec<u8>,
}

impl Source {
    fn new(dport: u16, interval: u64) -> Source {
        Source {
            dport,
            interval,
            next: 0,
            frame: build::udp4(
                HA,
                M0,
                Ipv4Addr::new(10, 0, 0, 2),
                Ipv4Addr::new(10, 0, 1, 2),
                5000,
                dport,
                64,
                &[0u8; 18],
            ),
        }
    }
}

#[derive(Default, Debug)]
struct Tally {
    offered: [u64; 3],
    ring_drops: [u64; 3],
    delivered: [u64; 3],
}

fn class_of(dport: u16) -> usize {
    match dport {
        PLAIN => 0,
        GOOD => 1,
        _ => 2,
    }
}

/// Run the node for `span` ns of virtual time with arrivals from
/// `sources`, then `drain` ns more without arrivals; as a runner does,
/// receive up to 32 from the ring, then tick when the node says, and when
/// there is nothing to receive let time pass (1 µs at most at a time, so a
/// node with queued work spins as a real one would).
fn simulate(n: &mut Node, clock: &Arc<AtomicU64>, sources: &mut [Source], span: u64, drain: u64) -> Tally {
    let mut t = Tally::default();
    let mut ring: VecDeque<Packet> = VecDeque::new();
    let start = clock.load(Ordering::Relaxed);
    let stop = start + span;
    for s in sources.iter_mut() {
        s.next = start;
    }
    let mut out = Batch::new();
    loop {
        let now = clock.load(Ordering::Relaxed);
        if now >= stop + drain {
            break;
        }
        // Arrivals up to now, in time order (a full ring drops whoever
        // comes next).
        while let Some(s) = sources
            .iter_mut()
            .filter(|s| s.next <= now && s.next < stop)
            .min_by_key(|s| s.next)
        {
            t.offered[class_of(s.dport)] += 1;
            if ring.len() < RING {
                ring.push_back(Packet::from_bytes(&s.frame));
            } else {
                t.ring_drops[class_of(s.dport)] += 1;
            }
            s.next += s.interval;
        }
        if ring.is_empty() {
            let next = sources.iter().map(|s| s.next).filter(|x| *x < stop).min().unwrap_or(stop + drain);
            clock.store(next.min(now + 1_000).max(now + 1), Ordering::Relaxed);
            let now = clock.load(Ordering::Relaxed);
            n.tick(now);
        } else {
            let mut b: Batch = ring.drain(..ring.len().min(32)).collect();
            n.receive(now, 0, &mut b);
            if n.poll_timeout().is_some_and(|d| d <= now) {
                n.tick(clock.load(Ordering::Relaxed));
            }
        }
        n.take_tx(1, &mut out);
        for p in out.drain(..) {
            if let Ok(h) = parse(p.data()) {
                if let L4::Udp { .. } = h.l4 {
                    t.delivered[class_of(h.flow.dport)] += 1;
                }
            }
            n.recycle(p);
        }
    }
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
    let mut v = vec![Source::new(PLAIN, 500), Source::new(GOOD, 4_500)];
    if let Some(i) = flood_interval {
        v.push(Source::new(FLOOD, i));
    }
    v
}

fn two_tenants(clock: &Arc<AtomicU64>, flood_in_root: bool) -> (Node, DomainId, DomainId) {
    let mut n = node(clock);
    let good = tenant(&mut n, "good", SchedClass::Fair { weight: 1 }, DomainLimits::default());
    let flood = tenant(&mut n, "flood", SchedClass::Fair { weight: 1 }, DomainLimits::default());
    path(&mut n, good, GOOD, CHAIN_NS);
    path(&mut n, if flood_in_root { DomainId::ROOT } else { flood }, FLOOD, CHAIN_NS);
    path(&mut n, DomainId::ROOT, PLAIN, PLAIN_NS);
    (n, good, flood)
}

#[test]
fn a_flooding_domain_cannot_hurt_a_well_behaved_one_nor_plain_forwarding() {
    // The flood's share is a quarter of the CPU; 10× that is 2.5 CPUs of
    // its 450 ns chain: one packet every 180 ns.
    let flood_interval = CHAIN_NS * 4 / 10;

    let clock = Arc::new(AtomicU64::new(0));
    let (mut n, _, _) = two_tenants(&clock, false);
    let unloaded = simulate(&mut n, &clock, &mut sources(None), SPAN, DRAIN);

    let clock = Arc::new(AtomicU64::new(0));
    let (mut n, good, flood) = two_tenants(&clock, false);
    let loaded = simulate(&mut n, &clock, &mut sources(Some(flood_interval)), SPAN, DRAIN);
    let g = n.domain(good).unwrap();
    let f = n.domain(flood).unwrap();

    let good_ratio = loaded.delivered[1] as f64 / loaded.offered[1] as f64;
    let plain_ratio = loaded.delivered[0] as f64 / unloaded.delivered[0] as f64;
    let flood_cpu = f.counters.cpu_ns as f64 / clock.load(Ordering::Relaxed) as f64;
    eprintln!(
        "isolation: good tenant {:.4} of its offered load (reservation 0.25 CPU, offered 0.10), \
         plain forwarding {:.4} of its unloaded rate, flood offered {} served {} dropped early {} \
         ({:.3} of the CPU); unloaded {unloaded:?}, loaded {loaded:?}",
        good_ratio, plain_ratio, loaded.offered[2], f.counters.served, f.counters.dropped_full, flood_cpu
    );
    assert!(good_ratio >= 0.99, "good tenant got {good_ratio}");
    assert!(plain_ratio >= 0.95, "plain forwarding at {plain_ratio} of unloaded");
    assert!(f.counters.dropped_full > loaded.offered[2] / 2, "the flood was dropped at its own queue");
    assert_eq!(g.counters.dropped_full, 0, "the good tenant's queue never overflowed");
    assert!(flood_cpu > 0.25, "the flood still got the CPU nobody else wanted: {flood_cpu}");

    // The same flood in the root (run at once, unscheduled) is what the
    // domains prevent: plain forwarding then loses packets at the ring.
    let clock = Arc::new(AtomicU64::new(0));
    let (mut n, _, _) = two_tenants(&clock, true);
    let unscheduled = simulate(&mut n, &clock, &mut sources(Some(flood_interval)), SPAN, DRAIN);
    let plain_unscheduled = unscheduled.delivered[0] as f64 / unloaded.delivered[0] as f64;
    eprintln!("without domains the same flood leaves plain forwarding {plain_unscheduled:.4} of its rate: {unscheduled:?}");
    assert!(plain_unscheduled < 0.95, "the test measures something: {plain_unscheduled}");
}

#[test]
fn a_domain_over_its_memory_limit_drops_its_own_packets_only() {
    let clock = Arc::new(AtomicU64::new(0));
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
    let f = Source::new(FLOOD, 1).frame;
    let g = Source::new(GOOD, 1).frame;
    let mut b: Batch = (0..10).map(|_| Packet::from_bytes(&f)).chain((0..10).map(|_| Packet::from_bytes(&g))).collect();
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
    let clock = Arc::new(AtomicU64::new(0));
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
    let f = Source::new(FLOOD, 1).frame;
    let g = Source::new(GOOD, 1).frame;
    let mut b: Batch = (0..20).map(|_| Packet::from_bytes(&f)).chain((0..7).map(|_| Packet::from_bytes(&g))).collect();
    n.receive(0, 0, &mut b);
    assert_eq!(n.domain_queued(), 27);
    let free_before = n.pool_available();
    let r = n.remove_domain(busy).unwrap();
    assert_eq!(r.domains, vec![busy, child]);
    assert_eq!(r.packets_freed, 27);
    assert_eq!(r.memory_freed, 27 * weft_dataplane::node::BUFFER_CHARGE);
    assert_eq!(r.instances.len(), 2);
    assert_eq!(r.filters.len(), 2);
    assert_eq!(n.pool_available(), free_before + 27, "every queued buffer is back in the pool");
    assert_eq!(n.domain_queued(), 0);
    assert_eq!(n.poll_timeout(), None, "nothing left to serve");
    let root = n.domain(DomainId::ROOT).unwrap();
    assert_eq!(root.usage.memory, 0);
    assert!(root.children.is_empty());
    assert!(n.instances().is_empty() && n.filters().is_empty());
    // The node goes on forwarding what is left.
    path(&mut n, DomainId::ROOT, PLAIN, PLAIN_NS);
    let mut b: Batch = vec![Packet::from_bytes(&Source::new(PLAIN, 1).frame)];
    n.receive(1, 0, &mut b);
    let mut out = Batch::new();
    n.take_tx(1, &mut out);
    assert_eq!(out.len(), 1);
}

/// Let `ns` of idle time pass, then tick: a tick with nothing received
/// since the last one gives the domains the idle time.
fn idle(n: &mut Node, clock: &Arc<AtomicU64>, ns: u64) {
    n.tick(clock.load(Ordering::Relaxed));
    clock.fetch_add(ns, Ordering::Relaxed);
    n.tick(clock.load(Ordering::Relaxed));
}

/// Serve what `n` has queued with `credit` ns of idle time; the order in
/// which domains' packets left.
fn serve_order(n: &mut Node, clock: &Arc<AtomicU64>, credit: u64) -> Vec<u16> {
    idle(n, clock, credit);
    let mut out = Batch::new();
    n.take_tx(1, &mut out);
    out.iter()
        .filter_map(|p| {
            let h = parse(p.data()).ok()?;
            matches!(h.l4, L4::Udp { .. }).then_some(h.flow.dport)
        })
        .collect()
}

#[test]
fn fixed_priority_serves_the_higher_level_first_within_its_cpu_limit() {
    let clock = Arc::new(AtomicU64::new(0));
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
    let f = Source::new(FLOOD, 1).frame;
    let g = Source::new(GOOD, 1).frame;
    let mut b: Batch = (0..4).map(|_| Packet::from_bytes(&g)).chain((0..8).map(|_| Packet::from_bytes(&f))).collect();
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
    let clock = Arc::new(AtomicU64::new(0));
    let mut n = node(&clock);
    let slow = tenant(&mut n, "slow", SchedClass::Deadline { deadline_ns: 10_000 }, DomainLimits::default());
    let urgent = tenant(&mut n, "urgent", SchedClass::Deadline { deadline_ns: 1_000 }, DomainLimits::default());
    path(&mut n, slow, GOOD, CHAIN_NS);
    path(&mut n, urgent, FLOOD, CHAIN_NS);
    n.set_root_share(1000).unwrap();
    let f = Source::new(FLOOD, 1).frame;
    let g = Source::new(GOOD, 1).frame;
    // slow's packets arrive at 0 (due 10,000), urgent's at 5,000 (due 6,000).
    let mut b: Batch = (0..2).map(|_| Packet::from_bytes(&g)).collect();
    n.receive(0, 0, &mut b);
    let mut b: Batch = (0..2).map(|_| Packet::from_bytes(&f)).collect();
    n.receive(5_000, 0, &mut b);
    assert_eq!(serve_order(&mut n, &clock, 100 * CHAIN_NS), [FLOOD, FLOOD, GOOD, GOOD]);
}

#[test]
fn weighted_fair_domains_share_in_proportion_to_their_weights() {
    let clock = Arc::new(AtomicU64::new(0));
    let mut n = node(&clock);
    let three = tenant(&mut n, "three", SchedClass::Fair { weight: 3 }, DomainLimits::default());
    let one = tenant(&mut n, "one", SchedClass::Fair { weight: 1 }, DomainLimits::default());
    path(&mut n, three, GOOD, CHAIN_NS);
    path(&mut n, one, FLOOD, CHAIN_NS);
    // Both backlogged for the whole run.
    let span = 10_000_000;
    let t = simulate(
        &mut n,
        &clock,
        &mut [Source::new(GOOD, 100), Source::new(FLOOD, 100)],
        span,
        0,
    );
    let (a, b) = (n.domain(three).unwrap().counters, n.domain(one).unwrap().counters);
    let ratio = a.cpu_ns as f64 / b.cpu_ns as f64;
    eprintln!("weights 3:1 → CPU {} : {} ns ({ratio:.3}); {t:?}", a.cpu_ns, b.cpu_ns);
    assert!((2.8..=3.2).contains(&ratio), "CPU split {ratio}");
}

#[test]
fn plain_forwarding_keeps_its_configured_share_when_everyone_is_overloaded() {
    for share in [500u32, 800] {
        let clock = Arc::new(AtomicU64::new(0));
        let (mut n, _, _) = two_tenants(&clock, false);
        n.set_root_share(share).unwrap();
        // Plain offered 1.67 CPUs, the flood 2.5: both far past what the
        // node has.
        let t = simulate(
            &mut n,
            &clock,
            &mut [Source::new(PLAIN, 60), Source::new(FLOOD, 180)],
            SPAN,
            0,
        );
        let plain_cpu = (t.delivered[0] * PLAIN_NS) as f64 / clock.load(Ordering::Relaxed) as f64;
        eprintln!("root share {share}‰: plain forwarding used {plain_cpu:.3} of the CPU; {t:?}");
        assert!(
            plain_cpu >= share as f64 / 1000.0 - 0.01,
            "plain forwarding got {plain_cpu} with a share of {share}‰"
        );
    }
}
