//! The demo's domains scene (Snow on Silk's NodeOS domains): two tenants'
//! domains side by side on one router with plain forwarding, live
//! counters every 2 ms, one tenant misbehaving — flooding at ten times
//! its share — then destroyed; the other tenant and plain forwarding
//! unharmed.
//!
//! The router runs on a virtual CPU (`weft_dataplane::vcpu`): every
//! element's work is modelled (`cost ns=N` per packet) and the node charges
//! its domains from that clock, so the counters are exact and the same on
//! every machine; the scene fails if the well-behaved tenant or plain
//! forwarding lose what the schedulers promise.

use super::{cmd, say};
use anyhow::{bail, Result};
use std::net::Ipv4Addr;
use weft_dataplane::domain::{DomainCounters, DomainLimits, DomainSpec, SchedClass};
use weft_dataplane::vcpu::{udp_dport, Bench, Source, Tally, VirtualCpu, COST_CLASS};
use weft_dataplane::{DomainId, FilterSpec, Hook, Match, Node, PortConfig};
use weft_packet::build;

const M0: [u8; 6] = [2, 0, 0, 0, 0, 1];
const M1: [u8; 6] = [2, 0, 0, 0, 1, 1];
const HA: [u8; 6] = [2, 0xaa, 0, 0, 0, 1];
const HB: [u8; 6] = [2, 0xbb, 0, 0, 0, 1];
/// Traffic classes: plain forwarding, alice's path, bob's path.
const PORTS: [u16; 3] = [5000, 7001, 7002];
const PLAIN_NS: u64 = 100;
const TENANT_NS: u64 = 450;
const SLICE: u64 = 2_000_000;

fn frame(dport: u16) -> Vec<u8> {
    build::udp4(
        HA,
        M0,
        Ipv4Addr::new(10, 0, 1, 2),
        Ipv4Addr::new(10, 0, 2, 2),
        4000,
        dport,
        64,
        &[0u8; 18],
    )
}

fn router(cpu: &VirtualCpu) -> Result<Node> {
    let mut n = Node::new("r2");
    n.add_port(PortConfig {
        name: "eth0".into(),
        mac: M0,
        mtu: 1500,
        addrs: vec!["10.0.1.1/24".parse()?],
    })?;
    n.add_port(PortConfig {
        name: "eth1".into(),
        mac: M1,
        mtu: 1500,
        addrs: vec!["10.0.2.1/24".parse()?],
    })?;
    n.add_neighbor(1, "10.0.2.2".parse()?, HB)?;
    cpu.attach(&mut n);
    Ok(n)
}

fn path(n: &mut Node, d: DomainId, dport: u16, ns: u64) -> Result<()> {
    let i = n.create_instance_in(d, COST_CLASS, &format!("ns={ns}"))?;
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
    )?;
    Ok(())
}

fn counters(n: &Node, d: Option<DomainId>) -> DomainCounters {
    d.and_then(|d| n.domain(d).ok()).map(|x| x.counters).unwrap_or_default()
}

/// Run the scene.
pub(super) fn run() -> Result<()> {
    say("\n11. Tenants on one router (Snow on Silk's domains): alice and bob each get a domain on r2 — an account of");
    say("    CPU, memory and queue — next to plain forwarding, which keeps its share (500‰) whatever they do.");
    say("    r2's CPU is virtual: each element's work is modelled (plain forwarding 100 ns a packet, a tenant's");
    say("    chain 450 ns) and r2 charges its domains from that clock, so every figure below is exact.");
    let cpu = VirtualCpu::new();
    let mut n = router(&cpu)?;
    cmd(
        "r2",
        "domain add alice --owner alice --class fair:1 --memory 1MiB --queue 256",
    );
    cmd(
        "r2",
        "domain add bob --owner bob --class fair:1 --memory 1MiB --queue 256",
    );
    let limits = DomainLimits {
        memory: Some(1 << 20),
        queue_len: 256,
        ..Default::default()
    };
    let mut tenant = |name: &str| {
        n.add_domain(DomainSpec {
            name: name.into(),
            owner: Some(name.into()),
            class: SchedClass::Fair { weight: 1 },
            limits,
            ..Default::default()
        })
    };
    let alice = tenant("alice")?;
    let bob = tenant("bob")?;
    cmd(
        "r2",
        &format!(
            "fb new cost --config ns={TENANT_NS} --domain alice   # then a filter for udp:{} with it",
            PORTS[1]
        ),
    );
    cmd(
        "r2",
        &format!(
            "fb new cost --config ns={TENANT_NS} --domain bob     # then a filter for udp:{} with it",
            PORTS[2]
        ),
    );
    path(&mut n, alice, PORTS[1], TENANT_NS)?;
    path(&mut n, bob, PORTS[2], TENANT_NS)?;
    // Plain forwarding's modelled cost: a root path, run at once.
    path(&mut n, DomainId::ROOT, PORTS[0], PLAIN_NS)?;

    let src = |class: usize, interval: u64| Source::new(class, interval, frame(PORTS[class]));
    // Plain 20 % of the CPU, alice 10 %, bob 10 % — then 10× his share of a
    // quarter (half the CPU for domains, split two ways): 2.5 CPUs.
    let calm = || vec![src(0, 500), src(1, 4_500), src(2, 4_500)];
    let flood = || vec![src(0, 500), src(1, 4_500), src(2, TENANT_NS * 4 / 10)];
    let quiet = || vec![src(0, 500), src(1, 4_500)];

    println!(
        "\n  {:>6}  {:>17}  {:>17}  {:>24}  {:>20}",
        "t (ms)", "plain fwd", "alice (fair:1)", "bob (fair:1)", "CPU plain/alice/bob"
    );
    let mut bad = Vec::new();
    let mut phase = |n: &mut Node, sources: &dyn Fn() -> Vec<Source>, slices: usize, bob: Option<DomainId>| {
        for _ in 0..slices {
            let t0 = cpu.now();
            let (a0, b0) = (counters(n, Some(alice)), counters(n, bob));
            let t: Tally = Bench::new(n, cpu.clone(), 0, 1, |f| {
                udp_dport(f).and_then(|p| PORTS.iter().position(|x| *x == p))
            })
            .run(&mut sources(), SLICE, 0);
            let (a1, b1) = (counters(n, Some(alice)), counters(n, bob));
            let span = (cpu.now() - t0) as f64;
            let get = |v: &Vec<u64>, i: usize| v.get(i).copied().unwrap_or(0);
            let share = |ns: u64| 100.0 * ns as f64 / span;
            let bob_col = if bob.is_some() || get(&t.offered, 2) > 0 {
                format!(
                    "{:>6}/{:<6} drop {:<6}",
                    get(&t.delivered, 2),
                    get(&t.offered, 2),
                    (b1.dropped_full + b1.dropped_memory) - (b0.dropped_full + b0.dropped_memory)
                )
            } else {
                "(gone)".into()
            };
            println!(
                "  {:>6.0}  {:>8}/{:<8}  {:>8}/{:<8}  {:>24}  {:>5.1}/{:>4.1}/{:>4.1} %",
                cpu.now() as f64 / 1e6,
                get(&t.delivered, 0),
                get(&t.offered, 0),
                get(&t.delivered, 1),
                get(&t.offered, 1),
                bob_col,
                share(get(&t.delivered, 0) * PLAIN_NS),
                share(a1.cpu_ns - a0.cpu_ns),
                share(b1.cpu_ns - b0.cpu_ns),
            );
            // What the schedulers promise: alice, within her share, loses
            // nothing (a packet or two in flight at a slice's edge aside);
            // plain forwarding stays at 95 % and more of what it offered.
            let (ao, ad) = (get(&t.offered, 1), get(&t.delivered, 1));
            if (ad as f64) < 0.99 * ao as f64 - 2.0 {
                bad.push(format!("alice got {ad} of {ao}"));
            }
            let (po, pd) = (get(&t.offered, 0), get(&t.delivered, 0));
            if (pd as f64) < 0.95 * po as f64 {
                bad.push(format!("plain forwarding got {pd} of {po}"));
            }
        }
    };
    say("  everyone within their share:");
    phase(&mut n, &calm, 2, Some(bob));
    say("  bob misbehaves: he floods his path at 10× his share — his queue overflows and drops early, in his domain:");
    phase(&mut n, &flood, 4, Some(bob));
    let b = n.domain(bob)?;
    println!(
        "  r2$ weft domain ls   → bob: queued {}/{}, memory {} B of 1 MiB, {} dropped early, CPU limited to what alice left",
        b.usage.queued, b.limits.queue_len, b.usage.memory, b.counters.dropped_full
    );
    cmd("r2", "domain rm bob");
    let r = n.remove_domain(bob)?;
    println!(
        "  removed {} domain, {} instance, {} filter; {} queued packets and {} bytes freed at once",
        r.domains.len(),
        r.instances.len(),
        r.filters.len(),
        r.packets_freed,
        r.memory_freed
    );
    say("  bob is gone; alice and plain forwarding carry on as before:");
    phase(&mut n, &quiet, 2, None);
    let a = n.domain(alice)?;
    println!(
        "  alice overall: {} served, {} dropped, {:.2} ms of CPU charged to her domain",
        a.counters.served,
        a.counters.dropped_full + a.counters.dropped_memory,
        a.counters.cpu_ns as f64 / 1e6
    );
    if !bad.is_empty() {
        bail!("the domains scene broke its promise: {}", bad.join("; "));
    }
    Ok(())
}
