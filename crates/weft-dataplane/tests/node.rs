//! The node's data path driven frame by frame: ARP, forwarding, TTL, ICMP,
//! neighbour discovery, filters and chains, replacement.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use weft_dataplane::element::{ClassDoc, Ctx, Element, ElementClass, ElementError, InstanceId, Verdict};
use weft_dataplane::{DropReason, FilterSpec, Hook, Match, Node, NodeError, PortConfig};
use weft_packet::view::{parse, L3, L4};
use weft_packet::{build, Batch, Packet};

const M0: [u8; 6] = [2, 0, 0, 0, 0, 1];
const M1: [u8; 6] = [2, 0, 0, 0, 1, 1];
const HA: [u8; 6] = [2, 0xaa, 0, 0, 0, 1];
const HB: [u8; 6] = [2, 0xbb, 0, 0, 0, 1];

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn router() -> Node {
    let mut n = Node::new("r1");
    n.add_port(PortConfig {
        name: "p0".into(),
        mac: M0,
        mtu: 1500,
        addrs: vec!["10.0.0.1/24".parse().unwrap(), "2001:db8:0::1/64".parse().unwrap()],
    })
    .unwrap();
    n.add_port(PortConfig {
        name: "p1".into(),
        mac: M1,
        mtu: 1500,
        addrs: vec!["10.0.1.1/24".parse().unwrap(), "2001:db8:1::1/64".parse().unwrap()],
    })
    .unwrap();
    n
}

fn rx(n: &mut Node, now: u64, port: u16, frames: &[Vec<u8>]) {
    let mut b: Batch = frames.iter().map(|f| Packet::from_bytes(f)).collect();
    n.receive(now, port, &mut b);
}

fn tx(n: &mut Node, port: u16) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    n.take_tx(port, &mut out);
    out.iter().map(|p| p.data().to_vec()).collect()
}

fn udp_a_to_b(ttl: u8, dport: u16) -> Vec<u8> {
    build::udp4(HA, M0, ip("10.0.0.2"), ip("10.0.1.2"), 5000, dport, ttl, b"payload")
}

/// Learn host B on port 1 by answering the router's ARP request.
fn resolve_b(n: &mut Node) {
    let req = tx(n, 1);
    assert_eq!(req.len(), 1, "one ARP request");
    let h = parse(&req[0]).unwrap();
    assert!(matches!(
        h.l3,
        L3::Arp {
            op: 1,
            tpa: [10, 0, 1, 2],
            ..
        }
    ));
    rx(n, 1, 1, &[build::arp(2, HB, ip("10.0.1.2"), M1, ip("10.0.1.1"), M1)]);
}

#[test]
fn arp_then_forward_decrements_ttl() {
    let mut n = router();
    rx(&mut n, 0, 0, &[udp_a_to_b(64, 7)]);
    resolve_b(&mut n);
    let out = tx(&mut n, 1);
    assert_eq!(out.len(), 1, "held packet released after ARP reply");
    let h = parse(&out[0]).unwrap();
    assert_eq!(h.dst_mac, HB);
    assert_eq!(h.src_mac, M1);
    assert!(matches!(h.l3, L3::Ipv4 { ttl: 63, .. }), "{:?}", h.l3);
    // Later packets go straight out.
    rx(&mut n, 2, 0, &[udp_a_to_b(10, 7), udp_a_to_b(10, 8)]);
    assert_eq!(tx(&mut n, 1).len(), 2, "{:?}", n.drops());
}

#[test]
fn answers_arp_and_ping() {
    let mut n = router();
    rx(
        &mut n,
        0,
        0,
        &[build::arp(1, HA, ip("10.0.0.2"), [0; 6], ip("10.0.0.1"), [0xff; 6])],
    );
    let out = tx(&mut n, 0);
    let h = parse(&out[0]).unwrap();
    assert!(matches!(
        h.l3,
        L3::Arp {
            op: 2,
            spa: [10, 0, 0, 1],
            ..
        }
    ));
    assert_eq!(h.dst_mac, HA);
    // The requester was learned: the echo reply needs no ARP.
    rx(
        &mut n,
        1,
        0,
        &[build::ping4(HA, M0, ip("10.0.0.2"), ip("10.0.0.1"), 7, 1, 64, b"abc")],
    );
    let out = tx(&mut n, 0);
    assert_eq!(out.len(), 1);
    let h = parse(&out[0]).unwrap();
    assert!(matches!(h.l4, L4::Icmp { typ: 0, code: 0, .. }));
    assert_eq!(&out[0][out[0].len() - 3..], b"abc");
    // Ping the address of the other port too.
    rx(
        &mut n,
        2,
        0,
        &[build::ping4(HA, M0, ip("10.0.0.2"), ip("10.0.1.1"), 7, 2, 64, b"x")],
    );
    assert_eq!(tx(&mut n, 0).len(), 1);
}

#[test]
fn ttl_exceeded_and_unreachable() {
    let mut n = router();
    n.add_neighbor(0, IpAddr::V4(ip("10.0.0.2")), HA).unwrap();
    rx(&mut n, 0, 0, &[udp_a_to_b(1, 33434)]);
    let out = tx(&mut n, 0);
    assert_eq!(out.len(), 1);
    let h = parse(&out[0]).unwrap();
    assert!(matches!(h.l4, L4::Icmp { typ: 11, code: 0, .. }));
    assert_eq!(
        h.flow.src,
        u32::from(ip("10.0.0.1")) as u128,
        "from the ingress address"
    );
    assert_eq!(n.drop_count(DropReason::TtlExceeded), 1);
    // No route.
    let f = build::udp4(HA, M0, ip("10.0.0.2"), ip("192.0.2.9"), 1, 2, 64, b"");
    rx(&mut n, 1, 0, &[f]);
    let h = parse(&tx(&mut n, 0)[0]).unwrap();
    assert!(matches!(h.l4, L4::Icmp { typ: 3, code: 0, .. }));
    // UDP to the node itself: port unreachable (what traceroute's last hop sees).
    let f = build::udp4(HA, M0, ip("10.0.0.2"), ip("10.0.0.1"), 1, 33434, 64, b"");
    rx(&mut n, 2, 0, &[f]);
    let h = parse(&tx(&mut n, 0)[0]).unwrap();
    assert!(matches!(h.l4, L4::Icmp { typ: 3, code: 3, .. }));
}

#[test]
fn bad_frames_are_counted_not_fatal() {
    let mut n = router();
    let good = udp_a_to_b(64, 1);
    let mut bad_ck = good.clone();
    bad_ck[24] ^= 1;
    let frames = vec![vec![1, 2, 3], good[..20].to_vec(), bad_ck, vec![0xffu8; 4000], vec![]];
    rx(&mut n, 0, 0, &frames);
    assert_eq!(n.drop_count(DropReason::TruncatedEthernet), 2);
    assert_eq!(n.drop_count(DropReason::TruncatedIpv4), 1);
    assert_eq!(n.drop_count(DropReason::BadChecksum), 1);
    // 4000 bytes of 0xff: broadcast MAC, unknown ethertype 0xffff.
    assert_eq!(n.drop_count(DropReason::UnknownEthertype), 1);
}

#[test]
fn ipv6_nd_forward_and_echo() {
    let mut n = router();
    let a: Ipv6Addr = "2001:db8::2".parse().unwrap();
    let b: Ipv6Addr = "2001:db8:1::2".parse().unwrap();
    // Host A solicits the router's address.
    let mut ns = build::neighbor_solicit(HA, a, "2001:db8::1".parse().unwrap());
    ns[0..6].copy_from_slice(&build::ipv6_multicast_mac(build::solicited_node(
        "2001:db8::1".parse().unwrap(),
    )));
    rx(&mut n, 0, 0, &[ns]);
    let out = tx(&mut n, 0);
    let h = parse(&out[0]).unwrap();
    assert!(matches!(h.l4, L4::Icmpv6 { typ: 136, .. }));
    // Forward to B: NS on port 1, answer it, packet leaves with hop limit 63.
    rx(&mut n, 1, 0, &[build::udp6(HA, M0, a, b, 1, 2, 64, b"v6")]);
    let out = tx(&mut n, 1);
    assert!(matches!(parse(&out[0]).unwrap().l4, L4::Icmpv6 { typ: 135, .. }));
    rx(
        &mut n,
        2,
        1,
        &[build::neighbor_advert(
            HB,
            b,
            M1,
            "2001:db8:1::1".parse().unwrap(),
            false,
        )],
    );
    let out = tx(&mut n, 1);
    assert_eq!(out.len(), 1);
    assert!(matches!(parse(&out[0]).unwrap().l3, L3::Ipv6 { hop_limit: 63, .. }));
    // Echo request to the router.
    let echo = build::icmp6(
        HA,
        M0,
        a,
        "2001:db8:1::1".parse().unwrap(),
        64,
        128,
        0,
        [0, 1, 0, 1],
        b"hi",
    );
    rx(&mut n, 3, 0, &[echo]);
    let out = tx(&mut n, 0);
    assert!(matches!(parse(&out[0]).unwrap().l4, L4::Icmpv6 { typ: 129, .. }));
}

/// A test element: counts, drops odd sequence numbers when told to.
struct Seq {
    seen: u64,
    drop_all: bool,
}

impl Element for Seq {
    fn process(&mut self, _cx: &mut Ctx<'_>, _pkt: &mut Packet) -> Verdict {
        self.seen += 1;
        if self.drop_all {
            Verdict::Drop
        } else {
            Verdict::Continue
        }
    }
    fn report(&self) -> serde_json::Value {
        serde_json::json!({ "seen": self.seen })
    }
    fn export_state(&mut self) -> Option<serde_json::Value> {
        Some(serde_json::json!(self.seen))
    }
    fn import_state(&mut self, s: serde_json::Value) -> Result<(), ElementError> {
        self.seen = s.as_u64().ok_or_else(|| ElementError::State("not a number".into()))?;
        Ok(())
    }
}

fn seq_classes(n: &mut Node) {
    n.add_class(ElementClass::native("seq", ClassDoc::default(), |_| {
        Ok(Box::new(Seq {
            seen: 0,
            drop_all: false,
        }))
    }))
    .unwrap();
    n.add_class(ElementClass::native("sink", ClassDoc::default(), |_| {
        Ok(Box::new(Seq {
            seen: 0,
            drop_all: true,
        }))
    }))
    .unwrap();
}

#[test]
fn filters_bind_chains_and_replace_keeps_state() {
    let mut n = router();
    seq_classes(&mut n);
    n.add_neighbor(1, IpAddr::V4(ip("10.0.1.2")), HB).unwrap();
    let a = n.create_instance("seq", "").unwrap();
    let b = n.create_instance("seq", "x=1").unwrap();
    let f = n
        .add_filter(FilterSpec {
            hook: Some(Hook::Prerouting),
            m: Match {
                proto: Some(17),
                dport: Some((6060, 6060)),
                ..Default::default()
            },
            chain: vec![a],
            position: None,
        })
        .unwrap();
    n.bind(b, f, None).unwrap();
    rx(
        &mut n,
        0,
        0,
        &[udp_a_to_b(64, 6060), udp_a_to_b(64, 6061), udp_a_to_b(64, 6060)],
    );
    assert_eq!(tx(&mut n, 1).len(), 3);
    assert_eq!(n.report(a).unwrap()["element"]["seen"], 2);
    assert_eq!(n.report(b).unwrap()["element"]["seen"], 2);
    assert_eq!(n.filters()[0].hits, 2);
    // Replace b by a dropping class keeping state: the chain now drops 6060.
    n.replace(b, "sink", None, true).unwrap();
    assert_eq!(n.report(b).unwrap()["element"]["seen"], 2, "state carried over");
    rx(&mut n, 1, 0, &[udp_a_to_b(64, 6060), udp_a_to_b(64, 6061)]);
    assert_eq!(tx(&mut n, 1).len(), 1);
    assert_eq!(n.report(b).unwrap()["element"]["seen"], 3);
    assert_eq!(n.drop_count(DropReason::Element), 1);
    // Removing a bound instance is refused; unbind then remove works.
    assert!(n.remove_instance(b).is_err());
    n.unbind(b, f).unwrap();
    n.remove_instance(b).unwrap();
    rx(&mut n, 2, 0, &[udp_a_to_b(64, 6060)]);
    assert_eq!(tx(&mut n, 1).len(), 1);
    assert!(n.remove_class("seq").is_err(), "class in use");
}

#[test]
fn neighbor_change_and_route_change_take_effect() {
    let mut n = router();
    rx(&mut n, 0, 0, &[udp_a_to_b(64, 7)]);
    resolve_b(&mut n);
    assert_eq!(parse(&tx(&mut n, 1)[0]).unwrap().dst_mac, HB);
    // B moves to a new MAC and says so (gratuitous ARP reply).
    let hb2 = [2, 0xbb, 0, 0, 0, 2];
    rx(
        &mut n,
        1,
        1,
        &[build::arp(2, hb2, ip("10.0.1.2"), M1, ip("10.0.1.1"), M1)],
    );
    rx(&mut n, 2, 0, &[udp_a_to_b(64, 7)]);
    assert_eq!(
        parse(&tx(&mut n, 1)[0]).unwrap().dst_mac,
        hb2,
        "cached neighbour refreshed"
    );
    // A more specific static route via A's side wins at once.
    n.add_neighbor(0, IpAddr::V4(ip("10.0.0.9")), [2, 9, 9, 9, 9, 9])
        .unwrap();
    n.add_route("10.0.1.2/32".parse().unwrap(), Some(IpAddr::V4(ip("10.0.0.9"))), None)
        .unwrap();
    rx(&mut n, 3, 0, &[udp_a_to_b(64, 7)]);
    assert!(tx(&mut n, 1).is_empty());
    assert_eq!(parse(&tx(&mut n, 0)[0]).unwrap().dst_mac, [2, 9, 9, 9, 9, 9]);
    n.remove_route("10.0.1.2/32".parse().unwrap()).unwrap();
    rx(&mut n, 4, 0, &[udp_a_to_b(64, 7)]);
    assert_eq!(tx(&mut n, 1).len(), 1);
}

/// `add_route` refuses a prefix that has a route, static or connected, as
/// `ip route add` does; `replace_route` changes it and forwarding follows.
#[test]
fn add_route_refuses_an_existing_prefix_replace_changes_it() {
    let mut n = router();
    let host_b: ipnet::IpNet = "10.0.1.2/32".parse().unwrap();
    let gw = |s| Some(IpAddr::V4(ip(s)));
    n.add_route(host_b, gw("10.0.0.9"), None).unwrap();
    let e = n.add_route(host_b, gw("10.0.0.8"), None).unwrap_err();
    assert!(matches!(e, NodeError::RouteExists(p) if p == host_b), "{e}");
    let connected: ipnet::IpNet = "10.0.1.0/24".parse().unwrap();
    let e = n.add_route(connected, gw("10.0.0.9"), None).unwrap_err();
    assert!(matches!(e, NodeError::RouteExists(p) if p == connected), "{e}");
    let via = |n: &Node| n.routes().into_iter().find(|r| r.prefix == host_b).and_then(|r| r.via);
    assert_eq!(via(&n), gw("10.0.0.9"), "the refused add changed nothing");
    n.replace_route(host_b, None, Some(1)).unwrap();
    assert_eq!(via(&n), None);
    // B is on port 1 again.
    rx(&mut n, 0, 0, &[udp_a_to_b(64, 7)]);
    resolve_b(&mut n);
    assert_eq!(parse(&tx(&mut n, 1)[0]).unwrap().dst_mac, HB);
}

#[test]
fn mtu_exceeded_sends_frag_needed() {
    let mut n = Node::new("r");
    n.add_port(PortConfig {
        name: "a".into(),
        mac: M0,
        mtu: 1500,
        addrs: vec!["10.0.0.1/24".parse().unwrap()],
    })
    .unwrap();
    n.add_port(PortConfig {
        name: "b".into(),
        mac: M1,
        mtu: 576,
        addrs: vec!["10.0.1.1/24".parse().unwrap()],
    })
    .unwrap();
    n.add_neighbor(0, IpAddr::V4(ip("10.0.0.2")), HA).unwrap();
    n.add_neighbor(1, IpAddr::V4(ip("10.0.1.2")), HB).unwrap();
    let big = build::udp4(HA, M0, ip("10.0.0.2"), ip("10.0.1.2"), 1, 2, 64, &[0u8; 1000]);
    assert!(big[14 + 6] & 0x40 != 0, "etherparse sets DF");
    rx(&mut n, 0, 0, &[big]);
    assert!(tx(&mut n, 1).is_empty(), "{:?}", n.drops());
    let out = tx(&mut n, 0);
    let h = parse(&out[0]).unwrap();
    assert!(matches!(h.l4, L4::Icmp { typ: 3, code: 4, .. }));
    let off = h.l4_off().unwrap();
    assert_eq!(
        u16::from_be_bytes([out[0][off + 6], out[0][off + 7]]),
        576,
        "next-hop MTU"
    );
    assert_eq!(n.drop_count(DropReason::MtuExceeded), 1);
}

#[test]
fn every_hook_runs_its_paths_and_instances_are_shared() {
    let mut n = router();
    seq_classes(&mut n);
    n.add_neighbor(0, IpAddr::V4(ip("10.0.0.2")), HA).unwrap();
    n.add_neighbor(1, IpAddr::V4(ip("10.0.1.2")), HB).unwrap();
    let any_udp = Match {
        proto: Some(17),
        ..Default::default()
    };
    let icmp = Match {
        proto: Some(1),
        ..Default::default()
    };
    let mut ids = vec![];
    for (hook, m) in [
        (Hook::Prerouting, any_udp.clone()),
        (Hook::Forward, any_udp.clone()),
        (Hook::Postrouting, any_udp.clone()),
        (Hook::Input, icmp.clone()),
        (Hook::Output, icmp.clone()),
    ] {
        let i = n.create_instance("seq", "").unwrap();
        n.add_filter(FilterSpec {
            hook: Some(hook),
            m,
            chain: vec![i],
            position: None,
        })
        .unwrap();
        ids.push(i);
    }
    // One instance on two paths: a shared counter at PREROUTING and INPUT.
    let shared = n.create_instance("seq", "").unwrap();
    let f_pre = n.filters().iter().find(|f| f.hook == Hook::Prerouting).unwrap().id;
    let f_in = n.filters().iter().find(|f| f.hook == Hook::Input).unwrap().id;
    n.bind(shared, f_pre, None).unwrap();
    n.bind(shared, f_in, Some(0)).unwrap();
    rx(&mut n, 0, 0, &[udp_a_to_b(64, 9), udp_a_to_b(64, 9)]);
    assert_eq!(tx(&mut n, 1).len(), 2);
    rx(
        &mut n,
        1,
        0,
        &[build::ping4(HA, M0, ip("10.0.0.2"), ip("10.0.0.1"), 1, 1, 64, b"")],
    );
    assert_eq!(tx(&mut n, 0).len(), 1, "echo reply");
    let seen = |n: &Node, i| n.report(i).unwrap()["element"]["seen"].as_u64().unwrap();
    assert_eq!(seen(&n, ids[0]), 2, "PREROUTING saw the UDP packets");
    assert_eq!(seen(&n, ids[1]), 2, "FORWARD");
    assert_eq!(seen(&n, ids[2]), 2, "POSTROUTING");
    assert_eq!(seen(&n, ids[3]), 1, "INPUT saw the echo request");
    assert_eq!(seen(&n, ids[4]), 1, "OUTPUT saw the echo reply");
    assert_eq!(seen(&n, shared), 3, "the shared instance saw both paths");
    let f = n.filters();
    let pre = f.iter().find(|f| f.hook == Hook::Prerouting).unwrap();
    assert_eq!(pre.chain.len(), 2, "several instances on one path");
}

#[test]
fn rule_order_first_match_wins_and_position_inserts() {
    let mut n = router();
    seq_classes(&mut n);
    n.add_neighbor(1, IpAddr::V4(ip("10.0.1.2")), HB).unwrap();
    let a = n.create_instance("seq", "").unwrap();
    let b = n.create_instance("sink", "").unwrap();
    let broad = Match {
        proto: Some(17),
        ..Default::default()
    };
    let narrow = Match {
        proto: Some(17),
        dport: Some((7, 7)),
        ..Default::default()
    };
    n.add_filter(FilterSpec {
        hook: Some(Hook::Prerouting),
        m: broad,
        chain: vec![a],
        position: None,
    })
    .unwrap();
    n.add_filter(FilterSpec {
        hook: Some(Hook::Prerouting),
        m: narrow.clone(),
        chain: vec![b],
        position: None,
    })
    .unwrap();
    rx(&mut n, 0, 0, &[udp_a_to_b(64, 7)]);
    assert_eq!(tx(&mut n, 1).len(), 1, "the broad rule comes first and passes");
    // The same narrow rule inserted at position 0 now wins for port 7 only.
    n.add_filter(FilterSpec {
        hook: Some(Hook::Prerouting),
        m: narrow,
        chain: vec![b],
        position: Some(0),
    })
    .unwrap();
    rx(&mut n, 1, 0, &[udp_a_to_b(64, 7), udp_a_to_b(64, 8)]);
    let out = tx(&mut n, 1);
    assert_eq!(out.len(), 1);
    assert_eq!(parse(&out[0]).unwrap().flow.dport, 8);
}

/// An element that asks the node for an ICMP error token on every packet
/// (as the DataRouter does before it answers) and drops the packet.
struct AsksForIcmp(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl Element for AsksForIcmp {
    fn process(&mut self, cx: &mut Ctx<'_>, _pkt: &mut Packet) -> Verdict {
        if cx.icmp_error_allowed() {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Verdict::Drop
    }
}

/// Every ICMP error the node sends passes one limiter,
/// `icmp_rate` per second with bursts of `icmp_burst`: the engine's port
/// unreachables (300 UDP datagrams to a closed port, IPv4 and IPv6), and an
/// element's errors, which share the same budget.
#[test]
fn icmp_errors_share_one_limiter() {
    const MS: u64 = 1_000_000;
    let (rate, burst) = (100, 10);
    let a6: Ipv6Addr = "2001:db8::2".parse().unwrap();
    let me6: Ipv6Addr = "2001:db8::1".parse().unwrap();
    let closed = |i: u64| {
        if i.is_multiple_of(2) {
            build::udp4(HA, M0, ip("10.0.0.2"), ip("10.0.0.1"), 5000, 9, 64, b"x")
        } else {
            build::udp6(HA, M0, a6, me6, 5000, 9, 64, b"x")
        }
    };
    let unreachables = |out: &[Vec<u8>]| {
        out.iter()
            .filter(|f| {
                matches!(
                    parse(f).unwrap().l4,
                    L4::Icmp { typ: 3, code: 3, .. } | L4::Icmpv6 { typ: 1, code: 4, .. }
                )
            })
            .count() as u64
    };
    // Without a limit set: Linux's defaults.
    let mut n = router();
    assert_eq!(n.icmp_rate(), (1000, 50));
    n.add_neighbor(0, IpAddr::V4(ip("10.0.0.2")), HA).unwrap();
    n.add_neighbor(0, IpAddr::V6(a6), HA).unwrap();
    n.set_icmp_rate(rate, burst);
    // 300 datagrams, one a millisecond: 0.299 s from first to last.
    let mut answered = 0;
    for i in 0..300 {
        rx(&mut n, 1_000 * MS + i * MS, 0, &[closed(i)]);
        answered += unreachables(&tx(&mut n, 0));
    }
    let most = burst + rate * 299 / 1000;
    assert!(
        answered <= most && answered + 1 >= most,
        "{answered} port unreachables to 300 datagrams; the limit allows {most}"
    );
    assert_eq!(n.icmp_errors_sent(), answered);
    assert_eq!(n.icmp_errors_limited(), 300 - answered);
    assert_eq!(n.drop_count(DropReason::NoListener), 300);

    // An element's errors take tokens from the same bucket.
    let mut n = router();
    n.add_neighbor(0, IpAddr::V4(ip("10.0.0.2")), HA).unwrap();
    n.add_neighbor(0, IpAddr::V6(a6), HA).unwrap();
    n.set_icmp_rate(rate, burst);
    let yes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let y = yes.clone();
    n.add_class(ElementClass::native("asks", ClassDoc::default(), move |_| {
        Ok(Box::new(AsksForIcmp(y.clone())))
    }))
    .unwrap();
    let e = n.create_instance("asks", "").unwrap();
    n.add_filter(FilterSpec {
        hook: Some(Hook::Prerouting),
        m: Match {
            proto: Some(17),
            dport: Some((7, 7)),
            ..Default::default()
        },
        chain: vec![e],
        position: None,
    })
    .unwrap();
    let mut answered = 0;
    for i in 0..300u64 {
        let f = if i.is_multiple_of(3) {
            build::udp4(HA, M0, ip("10.0.0.2"), ip("10.0.0.1"), 5000, 7, 64, b"x")
        } else {
            closed(i)
        };
        rx(&mut n, 1_000 * MS + i * MS, 0, &[f]);
        answered += unreachables(&tx(&mut n, 0));
    }
    let by_element = yes.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        by_element > 0 && answered > 0,
        "{by_element} by the element, {answered} by the engine"
    );
    assert!(
        by_element + answered <= most && by_element + answered + 1 >= most,
        "{by_element} + {answered} errors; the limit allows {most}"
    );
    assert_eq!(n.icmp_errors_sent(), by_element + answered);
}

/// The node says when it next needs a tick (sans-IO, quinn's
/// `poll_timeout`): a held neighbour resolution is asked again every
/// `RETRY_NS` and given up after `RESOLVE_TIMEOUT_NS`, and nothing is due
/// once it is over; a frame the node originates is due at once.
#[test]
fn poll_timeout_drives_neighbour_retries_and_expiry() {
    use weft_dataplane::neigh::{RESOLVE_TIMEOUT_NS, RETRY_NS};
    let mut n = router();
    n.add_neighbor(0, IpAddr::V4(ip("10.0.0.2")), HA).unwrap();
    assert_eq!(n.poll_timeout(), None, "an idle node needs no tick");
    let t0 = 5_000;
    rx(&mut n, t0, 0, &[udp_a_to_b(64, 7)]);
    let is_arp_request = |f: &Vec<u8>| {
        matches!(
            parse(f).map(|h| h.l3),
            Ok(L3::Arp {
                op: 1,
                tpa: [10, 0, 1, 2],
                ..
            })
        )
    };
    assert!(tx(&mut n, 1).iter().all(is_arp_request), "asked at once");
    assert_eq!(n.poll_timeout(), Some(t0 + RETRY_NS));

    n.tick(t0 + RETRY_NS - 1);
    assert!(tx(&mut n, 1).is_empty(), "nothing before the deadline");
    let mut asked = 1;
    while let Some(t) = n.poll_timeout() {
        assert!(t > t0 && t <= t0 + RESOLVE_TIMEOUT_NS + 1, "deadline {t}");
        n.tick(t);
        let out = tx(&mut n, 1);
        assert!(out.iter().all(is_arp_request));
        asked += out.len();
    }
    assert_eq!(
        asked as u64,
        1 + RESOLVE_TIMEOUT_NS / RETRY_NS,
        "asked once a second until the timeout"
    );
    assert_eq!(n.drop_count(DropReason::NeighborUnresolved), 1);
    let back = tx(&mut n, 0);
    assert_eq!(back.len(), 1, "the source is told");
    assert!(
        matches!(parse(&back[0]).unwrap().l4, L4::Icmp { typ: 3, code: 1, .. }),
        "host unreachable"
    );

    n.send(&build::udp4(
        [0; 6],
        [0; 6],
        ip("10.0.0.1"),
        ip("10.0.0.2"),
        1,
        2,
        64,
        b"x",
    ));
    let now = t0 + RESOLVE_TIMEOUT_NS + 1;
    assert_eq!(n.poll_timeout(), Some(now), "an originated frame is due at once");
    n.tick(now);
    assert_eq!(tx(&mut n, 0).len(), 1);
    assert_eq!(n.poll_timeout(), None);
}

/// An element at OUTPUT that originates a packet for every packet it sees
/// would keep the node busy forever: what is left after a batch's rounds
/// waits, so the node never asks for a tick at the instant it had one.
#[test]
fn an_output_loop_backs_off() {
    use weft_dataplane::element::EmitTo;
    struct Echo;
    impl Element for Echo {
        fn process(&mut self, cx: &mut Ctx<'_>, pkt: &mut Packet) -> Verdict {
            let copy = cx.alloc(pkt.data());
            cx.emit(EmitTo::Route, copy);
            Verdict::Continue
        }
    }
    let mut n = router();
    n.add_neighbor(0, IpAddr::V4(ip("10.0.0.2")), HA).unwrap();
    n.add_class(ElementClass::native("echo", ClassDoc::default(), |_| {
        Ok(Box::new(Echo))
    }))
    .unwrap();
    let e = n.create_instance("echo", "").unwrap();
    n.add_filter(FilterSpec {
        hook: Some(Hook::Output),
        chain: vec![e],
        ..Default::default()
    })
    .unwrap();
    n.tick(1_000);
    n.send(&build::udp4(
        [0; 6],
        [0; 6],
        ip("10.0.0.1"),
        ip("10.0.0.2"),
        1,
        2,
        64,
        b"x",
    ));
    assert_eq!(n.poll_timeout(), Some(1_000));
    n.tick(1_000);
    let sent = tx(&mut n, 0).len();
    assert!(sent >= 1, "the first rounds went out");
    let next = n.poll_timeout().expect("the loop's packets still wait");
    assert!(next > 1_000, "not again at once: {next}");
    n.tick(next);
    assert!(!tx(&mut n, 0).is_empty(), "they leave at the next tick");
}

/// On-path signaling: a packet the node would forward is handed to the
/// local queue only when it carries Router Alert, goes to the intercepted
/// port and starts with the magic; everything else is forwarded as before.
#[test]
fn intercepts_router_alert_datagrams_only() {
    let mut n = router();
    n.intercept_router_alert(weft_packet::proto::UDP, 270, b"WFSG");
    let ra4 = |dport: u16, payload: &[u8]| {
        build::udp_router_alert(
            HA,
            M0,
            "10.0.0.2".parse().unwrap(),
            "10.0.1.2".parse().unwrap(),
            40000,
            dport,
            64,
            payload,
        )
    };
    let ra6 = build::udp_router_alert(
        HA,
        M0,
        "2001:db8::2".parse().unwrap(),
        "2001:db8:1::2".parse().unwrap(),
        40000,
        270,
        64,
        b"WFSG-six",
    );
    let plain = build::udp4(HA, M0, ip("10.0.0.2"), ip("10.0.1.2"), 40000, 270, 64, b"WFSG-plain");
    rx(
        &mut n,
        0,
        0,
        &[ra4(270, b"WFSG-four"), ra6, ra4(271, b"WFSG"), ra4(270, b"XXXX"), plain],
    );
    let mut got = Vec::new();
    while let Some(p) = n.poll_local() {
        let l4 = p.meta.l4 as usize;
        got.push(p.data()[l4 + 8..].to_vec());
    }
    assert_eq!(got, vec![b"WFSG-four".to_vec(), b"WFSG-six".to_vec()]);
    // The other three wait for host B's address, to be forwarded.
    resolve_b(&mut n);
    assert_eq!(tx(&mut n, 1).len(), 3, "{:?}", n.drops());
    // Stopped: forwarded like any packet.
    n.stop_intercepting(weft_packet::proto::UDP, 270);
    rx(&mut n, 3, 0, &[ra4(270, b"WFSG-again")]);
    assert!(n.poll_local().is_none());
    assert_eq!(tx(&mut n, 1).len(), 1);
}

/// A test element that cuts the last 4 bytes off every frame.
struct Trim;

impl Element for Trim {
    fn process(&mut self, _cx: &mut Ctx<'_>, pkt: &mut Packet) -> Verdict {
        pkt.truncate(pkt.len() - 4);
        Verdict::Continue
    }
}

/// A PREROUTING filter sending every UDP packet through `chain`.
fn udp_at_prerouting(n: &mut Node, chain: Vec<InstanceId>) {
    n.add_filter(FilterSpec {
        hook: Some(Hook::Prerouting),
        m: Match {
            proto: Some(17),
            ..Default::default()
        },
        chain,
        position: None,
    })
    .unwrap();
}

/// An instance's `bytes` are the bytes it was handed ("Bytes handed to the
/// element"), before it changed them: the trimming instance counts the
/// frames as they came, the one after it the trimmed frames.
#[test]
fn instance_bytes_count_what_each_was_handed() {
    let mut n = router();
    seq_classes(&mut n);
    n.add_class(ElementClass::native("trim", ClassDoc::default(), |_| {
        Ok(Box::new(Trim))
    }))
    .unwrap();
    n.add_neighbor(1, IpAddr::V4(ip("10.0.1.2")), HB).unwrap();
    let t = n.create_instance("trim", "").unwrap();
    let s = n.create_instance("seq", "").unwrap();
    udp_at_prerouting(&mut n, vec![t, s]);
    let frame = udp_a_to_b(64, 6060);
    let before = frame.len() as u64;
    rx(&mut n, 0, 0, &[frame.clone(), frame]);
    let stats = |id| n.instances().into_iter().find(|i| i.id == id).unwrap().stats;
    assert_eq!((stats(t).packets, stats(t).bytes), (2, 2 * before));
    assert_eq!((stats(s).packets, stats(s).bytes), (2, 2 * (before - 4)));
}

/// With PREROUTING filters each IP packet is classified as it is parsed
/// and set apart from what is not IP: the IP packets keep their order
/// through the filter, and the rest is still answered (ARP) or counted
/// (drops).
#[test]
fn a_filtered_batch_with_arp_and_bad_frames_keeps_its_order() {
    let mut n = router();
    seq_classes(&mut n);
    n.add_neighbor(1, IpAddr::V4(ip("10.0.1.2")), HB).unwrap();
    let a = n.create_instance("seq", "").unwrap();
    udp_at_prerouting(&mut n, vec![a]);
    let arp = build::arp(1, HA, ip("10.0.0.2"), [0; 6], ip("10.0.0.1"), [0xff; 6]);
    let mut not_ours = udp_a_to_b(64, 6009);
    not_ours[..6].copy_from_slice(&HB);
    let frames = [
        udp_a_to_b(64, 6001),
        arp,
        udp_a_to_b(64, 6002),
        vec![1, 2, 3],
        not_ours,
        udp_a_to_b(64, 6003),
    ];
    rx(&mut n, 0, 0, &frames);
    let dports: Vec<u16> = tx(&mut n, 1)
        .iter()
        .map(|f| match parse(f).unwrap().l4 {
            L4::Udp { .. } => u16::from_be_bytes([f[36], f[37]]),
            l4 => panic!("not UDP: {l4:?}"),
        })
        .collect();
    assert_eq!(dports, [6001, 6002, 6003]);
    let replies = tx(&mut n, 0);
    assert_eq!(replies.len(), 1, "the ARP request is answered");
    assert!(matches!(parse(&replies[0]).unwrap().l3, L3::Arp { op: 2, .. }));
    assert_eq!(n.drop_count(DropReason::TruncatedEthernet), 1);
    assert_eq!(n.drop_count(DropReason::NotOurMac), 1);
    assert_eq!(n.report(a).unwrap()["element"]["seen"], 3);
    assert_eq!(n.filters()[0].hits, 3);
}
