//! The node behind the agent ([`super::env`]) call by call, and a whole
//! daemon on one node.

use super::env::{EnvState, NodeEnv};
use super::*;
use std::net::IpAddr;
use weft_dataplane::{LabelOut, Node, PortConfig};
use weft_pbr::{
    CreateRequest, Egress, Env, Event, FlowSpec, Hop, NextHop, OutLabel, PathId, PbrError, Plugin, PortRange, Reason,
    VisitInstall, VisitKey, VisitRequest,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn node() -> Node {
    let mut n = Node::new("n");
    for c in weft_elements::classes() {
        n.upsert_class(c);
    }
    for (i, a) in ["10.0.0.1/24", "10.0.1.1/24"].iter().enumerate() {
        n.add_port(PortConfig {
            name: format!("p{i}"),
            mac: [2, 0, 0, 0, 0, i as u8 + 1],
            mtu: 1500,
            addrs: vec![a.parse().unwrap()],
        })
        .unwrap();
    }
    n.add_route("10.9.0.0/16".parse().unwrap(), Some(ip("10.0.1.2")), None)
        .unwrap();
    n
}

fn key(hop: u8) -> VisitKey {
    VisitKey {
        path: PathId {
            initiator: ip("10.0.0.9"),
            number: 1,
        },
        hop,
    }
}

fn req(first: bool, next: Option<NextHop>, bw: u64, plugins: &[&str]) -> VisitRequest {
    VisitRequest {
        hop_count: 3,
        prev: (!first).then(|| ip("10.0.0.2")),
        next,
        flowspec: FlowSpec {
            dport: PortRange::single(6060),
            protocol: Some(17),
            ..FlowSpec::any_v4()
        },
        bandwidth_bps: bw,
        plugins: plugins
            .iter()
            .map(|c| Plugin {
                hop: 1,
                class: c.to_string(),
                config: String::new(),
            })
            .collect(),
    }
}

fn next(addr: &str, strict: bool, port: u16, local: &str) -> Option<NextHop> {
    Some(NextHop {
        addr: ip(addr),
        strict,
        egress: Egress { port, local: ip(local) },
    })
}

#[test]
fn egress_strict_needs_a_connected_subnet_loose_a_route() {
    let mut n = node();
    let mut st = EnvState::default();
    let cfg = PbrConfig::default();
    let mut env = NodeEnv {
        node: &mut n,
        st: &mut st,
        cfg: &cfg,
    };
    assert_eq!(
        env.egress(ip("10.0.1.7"), true).unwrap(),
        Egress {
            port: 1,
            local: ip("10.0.1.1")
        }
    );
    assert_eq!(
        env.egress(ip("10.9.1.1"), true).unwrap_err().reason,
        Reason::NotAdjacent
    );
    assert_eq!(
        env.egress(ip("10.9.1.1"), false).unwrap(),
        Egress {
            port: 1,
            local: ip("10.0.1.1")
        }
    );
    assert_eq!(env.egress(ip("192.0.2.1"), false).unwrap_err().reason, Reason::NoRoute);
    assert_eq!(
        env.egress(ip("10.0.0.1"), true).unwrap_err().reason,
        Reason::NotAdjacent
    );
}

#[test]
fn reserve_checks_bandwidth_slots_and_classes() {
    let mut n = node();
    let mut st = EnvState::default();
    let mut cfg = PbrConfig {
        max_instances: 1,
        ..PbrConfig::default()
    };
    cfg.port_capacity_bps.insert("p1".into(), 1000);
    let mut env = NodeEnv {
        node: &mut n,
        st: &mut st,
        cfg: &cfg,
    };
    let nh = next("10.0.1.2", true, 1, "10.0.1.1");
    env.reserve(key(1), &req(false, nh, 600, &["ENCRYPT"])).unwrap();
    let e = env.reserve(key(2), &req(false, nh, 600, &[])).unwrap_err();
    assert_eq!(e.reason, Reason::InsufficientBandwidth, "{e}");
    let e = env.reserve(key(2), &req(false, nh, 400, &["Counter"])).unwrap_err();
    assert_eq!(e.reason, Reason::NoPluginCapacity, "{e}");
    let e = env.reserve(key(2), &req(false, nh, 0, &["NOSUCH"])).unwrap_err();
    assert_eq!(e.reason, Reason::UnknownClass, "{e}");
    // The last visit reserves no bandwidth (its egress is the FIB's).
    env.reserve(key(2), &req(false, None, 1_000_000, &[])).unwrap();
    assert_eq!(st.resources().bandwidth_bps.get(&1), Some(&600));
    let mut env = NodeEnv {
        node: &mut n,
        st: &mut st,
        cfg: &cfg,
    };
    env.release(key(1));
    env.release(key(1));
    env.release(key(2));
    assert!(st.resources().is_empty());
}

#[test]
fn commit_installs_labels_and_plugins_release_removes_them() {
    let mut n = node();
    let mut st = EnvState::default();
    let cfg = PbrConfig {
        default_config: [("counter".to_string(), String::new())].into_iter().collect(),
        ..PbrConfig::default()
    };
    let mut env = NodeEnv {
        node: &mut n,
        st: &mut st,
        cfg: &cfg,
    };
    // First visit: steering, push.
    let r0 = req(true, next("10.0.1.2", true, 1, "10.0.1.1"), 0, &["COUNTER"]);
    env.reserve(key(0), &r0).unwrap();
    let l = env
        .commit(
            key(0),
            &VisitInstall {
                request: &r0,
                out: OutLabel::Label(100),
                downstream_mtu: Some(1400),
            },
        )
        .unwrap();
    assert_eq!(l, None);
    // The rest of the path takes 1400; this segment 1500 − 4.
    assert_eq!(env.visit_mtu(key(0)), Some(1400));
    // A middle visit through a loose segment: tunnel.
    let r1 = req(false, next("10.9.0.1", false, 1, "10.0.1.1"), 0, &[]);
    env.reserve(key(1), &r1).unwrap();
    let l1 = env
        .commit(
            key(1),
            &VisitInstall {
                request: &r1,
                out: OutLabel::Label(200),
                downstream_mtu: None,
            },
        )
        .unwrap()
        .unwrap();
    // A loose segment: label, UDP and the outer IPv4 header.
    assert_eq!(env.visit_mtu(key(1)), Some(1500 - 32));
    // The last: pop.
    let r2 = req(false, None, 0, &[]);
    env.reserve(key(2), &r2).unwrap();
    let l2 = env
        .commit(
            key(2),
            &VisitInstall {
                request: &r2,
                out: OutLabel::Pop,
                downstream_mtu: None,
            },
        )
        .unwrap()
        .unwrap();
    assert_ne!(l1, l2);
    let s = env.visit_status(key(1));
    assert_eq!(s["label"], l1);
    assert!(s["out"].as_str().unwrap().contains("udp 10.0.1.1 → 10.9.0.1"), "{s}");
    assert_eq!(env.visit_status(key(2))["out"], "pop");
    let s0 = env.visit_status(key(0));
    assert_eq!(s0["instances"][0]["class"], "counter", "{s0}");
    assert!(s0["out"].as_str().unwrap().starts_with("push 100"), "{s0}");

    let labels = n.labels();
    assert_eq!(labels.len(), 3);
    assert!(labels.iter().any(|x| x.out == LabelOut::Pop && x.label == l2));
    assert!(labels.iter().any(|x| x.out
        == LabelOut::Tunnel {
            label: 200,
            to: ip("10.9.0.1"),
            src: ip("10.0.1.1")
        }));
    assert_eq!(n.filters().len(), 1, "the steering filter");
    assert_eq!(n.instances().len(), 1);
    let mut env = NodeEnv {
        node: &mut n,
        st: &mut st,
        cfg: &cfg,
    };
    for h in 0..3 {
        env.release(key(h));
        env.release(key(h));
    }
    assert!(n.labels().is_empty() && n.filters().is_empty() && n.instances().is_empty());
    assert!(st.resources().is_empty());
}

#[test]
fn a_bad_plugin_configuration_fails_the_commit_cleanly() {
    let mut n = node();
    let mut st = EnvState::default();
    let cfg = PbrConfig::default();
    let mut env = NodeEnv {
        node: &mut n,
        st: &mut st,
        cfg: &cfg,
    };
    // ENCRYPT without a key.
    let r = req(false, None, 0, &["COUNTER", "ENCRYPT"]);
    env.reserve(key(2), &r).unwrap();
    let e = env
        .commit(
            key(2),
            &VisitInstall {
                request: &r,
                out: OutLabel::Pop,
                downstream_mtu: None,
            },
        )
        .unwrap_err();
    assert_eq!(e.reason, Reason::InstallFailed);
    assert!(e.text.contains("key"), "{e}");
    env.release(key(2));
    assert!(n.instances().is_empty() && n.labels().is_empty());
}

#[test]
fn flowspec_keeps_the_family_and_drops_wildcard_ports() {
    let fs = FlowSpec {
        src: "10.0.1.0/24".parse().unwrap(),
        dport: PortRange { lo: 6000, hi: 6100 },
        protocol: Some(17),
        ..FlowSpec::any_v4()
    };
    let m = flowspec_match(&fs);
    assert_eq!(m.src, Some("10.0.1.0/24".parse().unwrap()));
    assert_eq!(m.dst, Some("0.0.0.0/0".parse().unwrap()));
    assert_eq!((m.sport, m.dport, m.proto), (None, Some((6000, 6100)), Some(17)));
}

#[test]
fn a_daemon_on_one_node_sets_up_a_one_hop_path_and_tears_it_down() {
    let seeded = |n: &mut Node| {
        PbrNode::new(
            n,
            PbrConfig {
                seed: Some(7),
                ..PbrConfig::default()
            },
        )
    };
    let one_hop = || CreateRequest {
        hops: vec![Hop::strict(ip("10.0.0.1"))],
        flowspec: FlowSpec::any_v4(),
        plugins: vec![],
        bandwidth_bps: 0,
        refresh_ms: 1000,
    };
    let mut n = node();
    let mut p = seeded(&mut n);
    let id = p.create(&mut n, 0, one_hop()).unwrap();
    assert_eq!(p.path(id).unwrap().state, PathState::Up);
    assert_eq!(n.labels().len(), 1);
    assert!(matches!(p.poll_event(), Some(Event::PathUp { .. })));
    p.release(&mut n, 1, id).unwrap();
    assert_eq!(p.path(id).unwrap().state, PathState::Released);
    assert!(n.labels().is_empty() && n.filters().is_empty());
    assert!(p.resources().is_empty());
    assert_eq!(p.stats().paths_released, 1);
    let j = p.counters();
    assert_eq!(j["driver"]["paths_up"], 1);
    // Seeded: the same numbers every time.
    let mut n2 = node();
    let mut p2 = seeded(&mut n2);
    assert_eq!(p2.create(&mut n2, 0, one_hop()).unwrap(), id);
    let e = p2.release(&mut n2, 0, PathId { number: 0, ..id }).unwrap_err();
    assert!(matches!(e, PbrError::UnknownPath(_)));
}
