//! Explicit-path label switching (node/label.rs): steering at the first
//! visit, swap, pop, MPLS-in-UDP tunnels on loose segments, a visit's chain
//! over the inner packet, TTL, and bad labels counted, never fatal.

use std::net::{IpAddr, Ipv4Addr};
use weft_dataplane::element::{ClassDoc, Ctx, Element, ElementClass, Verdict};
use weft_dataplane::{LabelOut, Match, Node, NodeError, PortConfig, ETHERTYPE_MPLS, MPLS_UDP_PORT};
use weft_packet::view::{parse, L3, L4};
use weft_packet::{build, proto, Batch, Packet};

const M0: [u8; 6] = [2, 0, 0, 0, 0, 1];
const M1: [u8; 6] = [2, 0, 0, 0, 1, 1];
const HA: [u8; 6] = [2, 0xaa, 0, 0, 0, 1];
const HB: [u8; 6] = [2, 0xbb, 0, 0, 0, 1];

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn router() -> Node {
    let mut n = Node::new("r1");
    for (name, mac, a) in [("p0", M0, "10.0.0.1/24"), ("p1", M1, "10.0.1.1/24")] {
        n.add_port(PortConfig {
            name: name.into(),
            mac,
            mtu: 1500,
            addrs: vec![a.parse().unwrap()],
        })
        .unwrap();
    }
    n.add_neighbor(1, IpAddr::V4(ip("10.0.1.2")), HB).unwrap();
    n.add_neighbor(0, IpAddr::V4(ip("10.0.0.2")), HA).unwrap();
    n
}

fn rx(n: &mut Node, port: u16, frame: &[u8]) {
    let mut b: Batch = vec![Packet::from_bytes(frame)];
    n.receive(1, port, &mut b);
}

fn tx(n: &mut Node, port: u16) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    n.take_tx(port, &mut out);
    out.iter().map(|p| p.data().to_vec()).collect()
}

fn udp(dport: u16, ttl: u8) -> Vec<u8> {
    build::udp4(
        HA,
        M0,
        ip("10.0.0.2"),
        ip("10.0.1.2"),
        5000,
        dport,
        ttl,
        b"secret payload",
    )
}

/// The UDP destination port of an IPv4 frame without options.
fn dport(f: &[u8]) -> u16 {
    u16::from_be_bytes([f[14 + 20 + 2], f[14 + 20 + 3]])
}

/// Ethernet + one label stack entry (bottom of stack) + the IP packet of `frame`.
fn mpls(frame: &[u8], label: u32, ttl: u8) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&M0);
    f.extend_from_slice(&HA);
    f.extend_from_slice(&ETHERTYPE_MPLS.to_be_bytes());
    f.extend_from_slice(&((label << 12) | 1 << 8 | ttl as u32).to_be_bytes());
    f.extend_from_slice(&frame[14..]);
    f
}

/// (label, ttl, inner IP bytes) of an MPLS frame.
fn unlabel(f: &[u8]) -> (u32, u8, Vec<u8>) {
    assert_eq!(f[12..14], ETHERTYPE_MPLS.to_be_bytes(), "an MPLS frame");
    let lse = u32::from_be_bytes([f[14], f[15], f[16], f[17]]);
    assert_eq!((lse >> 8) & 1, 1, "bottom of stack");
    (lse >> 12, lse as u8, f[18..].to_vec())
}

fn steer_6060(n: &mut Node, chain: Vec<weft_dataplane::InstanceId>, out: LabelOut) -> u32 {
    let m = Match {
        proto: Some(proto::UDP),
        dport: Some((6060, 6060)),
        ..Default::default()
    };
    n.add_steering(m, chain, out).unwrap().1
}

#[test]
fn first_visit_pushes_and_the_ip_packet_is_untouched() {
    let mut n = router();
    steer_6060(
        &mut n,
        vec![],
        LabelOut::Swap {
            label: 100,
            port: 1,
            next_hop: IpAddr::V4(ip("10.0.1.2")),
        },
    );
    let sent = udp(6060, 20);
    rx(&mut n, 0, &sent);
    let out = tx(&mut n, 1);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0][..6], HB, "to the next visit's MAC");
    let (label, ttl, inner) = unlabel(&out[0]);
    assert_eq!((label, ttl), (100, weft_dataplane::LABEL_TTL));
    assert_eq!(inner, sent[14..], "IP TTL and bytes unchanged inside the path");
    // Another port is not steered: plain IP, TTL one less.
    rx(&mut n, 0, &udp(7070, 20));
    let out = tx(&mut n, 1);
    let h = parse(&out[0]).unwrap();
    assert!(matches!(h.l3, L3::Ipv4 { ttl: 19, .. }), "{:?}", h.l3);
    let info = n.labels();
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].packets, 1);
    assert!(info[0].steering.is_some());
}

#[test]
fn swap_pop_and_ttl() {
    let mut n = router();
    let swap = n
        .add_label(
            vec![],
            LabelOut::Swap {
                label: 200,
                port: 1,
                next_hop: IpAddr::V4(ip("10.0.1.2")),
            },
        )
        .unwrap();
    let pop = n.add_label(vec![], LabelOut::Pop).unwrap();
    assert_ne!(swap, pop);
    let sent = udp(6060, 20);
    rx(&mut n, 0, &mpls(&sent, swap, 10));
    let out = tx(&mut n, 1);
    let (label, ttl, inner) = unlabel(&out[0]);
    assert_eq!((label, ttl), (200, 9));
    assert_eq!(inner, sent[14..]);

    rx(&mut n, 0, &mpls(&sent, pop, 10));
    let out = tx(&mut n, 1);
    assert_eq!(out[0][..6], HB);
    let h = parse(&out[0]).unwrap();
    assert!(
        matches!(h.l3, L3::Ipv4 { ttl: 19, .. }),
        "the egress forwards like a router"
    );
    assert_eq!(dport(&out[0]), 6060);

    // Label TTL exhausted, unknown label, not bottom of stack, truncated.
    rx(&mut n, 0, &mpls(&sent, swap, 1));
    rx(&mut n, 0, &mpls(&sent, 4242, 10));
    let mut two = mpls(&sent, swap, 10);
    two[16] &= !1;
    rx(&mut n, 0, &two);
    rx(&mut n, 0, &mpls(&sent, swap, 10)[..20]);
    assert!(tx(&mut n, 1).is_empty());
    let d = n.drops();
    assert_eq!(d.get("label-ttl-exceeded"), Some(&1), "{d:?}");
    assert_eq!(d.get("unknown-label"), Some(&1), "{d:?}");
    assert_eq!(d.get("malformed-label"), Some(&2), "{d:?}");
}

#[test]
fn loose_segments_tunnel_in_udp_and_decapsulate() {
    let mut n = router();
    let pop = n.add_label(vec![], LabelOut::Pop).unwrap();
    let tunnel = n
        .add_label(
            vec![],
            LabelOut::Tunnel {
                label: 300,
                to: IpAddr::V4(ip("10.0.1.2")),
                src: IpAddr::V4(ip("10.0.1.1")),
            },
        )
        .unwrap();
    let sent = udp(6060, 20);
    rx(&mut n, 0, &mpls(&sent, tunnel, 10));
    let out = tx(&mut n, 1);
    assert_eq!(out.len(), 1);
    let h = parse(&out[0]).unwrap();
    assert!(matches!(h.l4, L4::Udp { .. }));
    assert_eq!(dport(&out[0]), MPLS_UDP_PORT, "MPLS-in-UDP");
    let udp_at = 14 + 20;
    let lse = u32::from_be_bytes(out[0][udp_at + 8..udp_at + 12].try_into().unwrap());
    assert_eq!((lse >> 12, lse as u8), (300, 9));
    assert_eq!(out[0][udp_at + 12..], sent[14..]);

    // The same encapsulation addressed to this node is taken off.
    let mut back = out[0].clone();
    back[udp_at + 8..udp_at + 12].copy_from_slice(&((pop << 12) | 1 << 8 | 9).to_be_bytes());
    let ip_hdr = build::udp4(
        HA,
        M0,
        ip("10.0.0.2"),
        ip("10.0.0.1"),
        49152,
        MPLS_UDP_PORT,
        64,
        &back[udp_at + 8..],
    );
    rx(&mut n, 0, &ip_hdr);
    let out = tx(&mut n, 1);
    assert_eq!(out.len(), 1, "drops: {:?}", n.drops());
    assert!(parse(&out[0]).is_ok());
    assert_eq!(dport(&out[0]), 6060);
    assert_eq!(out[0][14 + 20 + 8..], sent[14 + 20 + 8..]);
}

/// Flips every payload byte: a stand-in for an encrypting plugin.
struct Flip;
impl Element for Flip {
    fn process(&mut self, _: &mut Ctx<'_>, pkt: &mut Packet) -> Verdict {
        let l4 = pkt.meta.l4 as usize + 8;
        for b in &mut pkt.data_mut()[l4..] {
            *b ^= 0xff;
        }
        Verdict::Continue
    }
}

#[test]
fn a_visit_runs_its_chain_on_the_inner_packet() {
    let mut n = router();
    n.add_class(ElementClass::native("flip", ClassDoc::default(), |_| {
        Ok(Box::new(Flip))
    }))
    .unwrap();
    let f = n.create_instance("flip", "").unwrap();
    let l = n
        .add_label(
            vec![f],
            LabelOut::Swap {
                label: 77,
                port: 1,
                next_hop: IpAddr::V4(ip("10.0.1.2")),
            },
        )
        .unwrap();
    let sent = udp(6060, 20);
    rx(&mut n, 0, &mpls(&sent, l, 10));
    let out = tx(&mut n, 1);
    let (_, _, inner) = unlabel(&out[0]);
    let payload = &inner[20 + 8..];
    assert_eq!(payload.len(), b"secret payload".len());
    assert!(payload.iter().zip(b"secret payload").all(|(a, b)| *a == !*b));
    assert!(matches!(n.remove_instance(f), Err(NodeError::InstanceInUse(..))));
    n.remove_label(l).unwrap();
    n.remove_instance(f).unwrap();
    assert!(matches!(n.remove_label(l), Err(NodeError::UnknownLabel(_))));
}

#[test]
fn removing_a_first_visit_removes_its_filter() {
    let mut n = router();
    let l = steer_6060(&mut n, vec![], LabelOut::Pop);
    assert_eq!(n.filters().len(), 1);
    n.remove_label(l).unwrap();
    assert!(n.filters().is_empty());
    let l = steer_6060(&mut n, vec![], LabelOut::Pop);
    let fid = n.labels()[0].steering.unwrap();
    n.remove_filter(fid).unwrap();
    assert!(n.labels().is_empty(), "label {l} went with its filter");
}

#[test]
fn steering_leaves_the_nodes_own_packets_alone() {
    let mut n = router();
    // A wide flow: every UDP packet, the node's own (e.g. PBR messages) too.
    let m = Match {
        proto: Some(proto::UDP),
        ..Default::default()
    };
    n.add_steering(
        m,
        vec![],
        LabelOut::Swap {
            label: 100,
            port: 1,
            next_hop: IpAddr::V4(ip("10.0.1.2")),
        },
    )
    .unwrap();
    n.listen(proto::UDP, 7077);
    let mine = build::udp4(HA, M0, ip("10.0.0.2"), ip("10.0.0.1"), 7077, 7077, 64, b"pbr");
    rx(&mut n, 0, &mine);
    assert!(n.poll_local().is_some(), "delivered, not steered: {:?}", n.drops());
    rx(&mut n, 0, &udp(9, 20));
    let (label, _, _) = unlabel(&tx(&mut n, 1)[0]);
    assert_eq!(label, 100, "transit traffic is steered");
}

/// Declares that it grows packets by `n` octets (as `encrypt` does): what a
/// path's MTU must leave room for.
struct Grows(usize);
impl Element for Grows {
    fn process(&mut self, _: &mut Ctx<'_>, _: &mut Packet) -> Verdict {
        Verdict::Continue
    }
    fn mtu_before(&self, _ipv6: bool, room: usize) -> usize {
        room.saturating_sub(self.0)
    }
}

/// A UDP packet of `ip_len` octets of IP packet from 10.0.0.2, DF set
/// (as a host doing path MTU discovery sends).
fn big_df(ip_len: usize) -> Vec<u8> {
    let mut f = build::udp4(
        HA,
        M0,
        ip("10.0.0.2"),
        ip("10.0.1.2"),
        5000,
        6060,
        64,
        &vec![0x42; ip_len - 28],
    );
    f[14 + 6] |= 0x40;
    f[24..26].copy_from_slice(&[0, 0]);
    let c = weft_packet::checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

/// The ICMP errors the node sent out of port 0: (type, code, the 4 octets
/// after the checksum, the quoted octets).
fn icmp_out(n: &mut Node) -> Vec<(u8, u8, [u8; 4], Vec<u8>)> {
    n.tick(2);
    tx(n, 0)
        .iter()
        .filter_map(|f| {
            let h = parse(f).ok()?;
            match h.l4 {
                L4::Icmp { off, typ, code } | L4::Icmpv6 { off, typ, code } => {
                    let o = off as usize;
                    Some((typ, code, f[o + 4..o + 8].try_into().ok()?, f[o + 8..].to_vec()))
                }
                _ => None,
            }
        })
        .collect()
}

#[test]
fn too_big_for_the_path_is_answered_with_the_paths_mtu() {
    let mut n = router();
    let out = LabelOut::Swap {
        label: 100,
        port: 1,
        next_hop: IpAddr::V4(ip("10.0.1.2")),
    };
    let l = steer_6060(&mut n, vec![], out);
    // The segment carries 1500 octets: the label takes 4.
    assert_eq!(n.labels()[0].mtu4, Some(1496));
    rx(&mut n, 0, &big_df(1496));
    assert_eq!(tx(&mut n, 1).len(), 1, "1496 octets fit");
    let sent = big_df(1500);
    rx(&mut n, 0, &sent);
    assert!(tx(&mut n, 1).is_empty(), "1500 + 4 does not");
    assert_eq!(n.drop_count(weft_dataplane::DropReason::MtuExceeded), 1);
    let icmp = icmp_out(&mut n);
    assert_eq!(icmp.len(), 1, "one ICMP error: {icmp:?}");
    let (typ, code, rest, quote) = &icmp[0];
    assert_eq!((*typ, *code), (3, 4), "fragmentation needed");
    assert_eq!(rest, &[0, 0, 0x05, 0xd8], "next-hop MTU 1496 (RFC 1191)");
    assert_eq!(quote[..28], sent[14..42], "quotes the IP header and 8 octets of UDP");
    assert_eq!(n.labels()[0].packets, 1, "the dropped packet did not take the visit");

    // The rest of the path takes less (PBR's COMMIT says so), and a plugin
    // here grows packets by 57: the ingress answers with what is left.
    n.add_class(ElementClass::native("grows", ClassDoc::default(), |_| {
        Ok(Box::new(Grows(57)))
    }))
    .unwrap();
    let g = n.create_instance("grows", "").unwrap();
    let fid = n.labels()[0].steering.unwrap();
    n.bind(g, fid, None).unwrap();
    assert_eq!(n.set_label_mtu(l, Some(1480), false).unwrap(), Some(1480 - 57));
    assert_eq!(n.labels()[0].mtu6, Some(1480 - 57));
    rx(&mut n, 0, &big_df(1424));
    let icmp = icmp_out(&mut n);
    assert_eq!(icmp[0].2, [0, 0, (1423u16 >> 8) as u8, 1423u16 as u8]);
    rx(&mut n, 0, &big_df(1423));
    assert_eq!(tx(&mut n, 1).len(), 1);

    // Without DF the packet is dropped and counted, not answered.
    let mut nodf = big_df(1500);
    nodf[14 + 6] = 0;
    nodf[24..26].copy_from_slice(&[0, 0]);
    let c = weft_packet::checksum::checksum(&nodf[14..34]);
    nodf[24..26].copy_from_slice(&c.to_be_bytes());
    rx(&mut n, 0, &nodf);
    assert!(icmp_out(&mut n).is_empty());
    assert_eq!(n.drop_count(weft_dataplane::DropReason::MtuExceeded), 3);
}

#[test]
fn transit_visits_answer_too_and_ipv6_gets_packet_too_big() {
    let mut n = router();
    n.add_address(0, "2001:db8::1/64".parse().unwrap()).unwrap();
    n.add_neighbor(0, "2001:db8::2".parse().unwrap(), HA).unwrap();
    let l = n
        .add_label(
            vec![],
            LabelOut::Swap {
                label: 200,
                port: 1,
                next_hop: IpAddr::V4(ip("10.0.1.2")),
            },
        )
        .unwrap();
    rx(&mut n, 0, &mpls(&big_df(1500), l, 10));
    let icmp = icmp_out(&mut n);
    assert_eq!((icmp[0].0, icmp[0].1, icmp[0].2), (3, 4, [0, 0, 0x05, 0xd8]));
    // IPv6: type 2, the MTU in all four octets (RFC 4443 3.2).
    let v6 = build::udp6(
        HA,
        M0,
        "2001:db8::2".parse().unwrap(),
        "2001:db8:9::2".parse().unwrap(),
        5000,
        6060,
        64,
        &[0x42; 1500 - 48],
    );
    rx(&mut n, 0, &mpls(&v6, l, 10));
    let icmp = icmp_out(&mut n);
    assert_eq!(icmp.len(), 1, "{:?}", n.drops());
    assert_eq!((icmp[0].0, icmp[0].1, icmp[0].2), (2, 0, [0, 0, 0x05, 0xd8]));
    assert_eq!(icmp[0].3[..48], v6[14..62]);
}

#[test]
fn too_big_answers_go_through_the_icmp_rate_limit() {
    let mut n = router();
    steer_6060(
        &mut n,
        vec![],
        LabelOut::Swap {
            label: 100,
            port: 1,
            next_hop: IpAddr::V4(ip("10.0.1.2")),
        },
    );
    let f = big_df(1500);
    let mut b: Batch = (0..300).map(|_| Packet::from_bytes(&f)).collect();
    n.receive(1, 0, &mut b);
    assert_eq!(n.drop_count(weft_dataplane::DropReason::MtuExceeded), 300);
    let sent = n.icmp_errors_sent();
    assert!(
        sent > 0 && sent < 300,
        "{sent} ICMP errors for 300 packets at one instant"
    );
    assert_eq!(icmp_out(&mut n).len() as u64, sent);
}

#[test]
fn tunnels_leave_room_for_udp_and_count_their_own_overflow() {
    let mut n = router();
    let l = n
        .add_label(
            vec![],
            LabelOut::Tunnel {
                label: 300,
                to: IpAddr::V4(ip("10.0.1.2")),
                src: IpAddr::V4(ip("10.0.1.1")),
            },
        )
        .unwrap();
    // 1500 − (4 + 8 + 20).
    assert_eq!(n.labels()[0].mtu4, Some(1468));
    rx(&mut n, 0, &mpls(&big_df(1468), l, 10));
    assert_eq!(tx(&mut n, 1).len(), 1, "{:?}", n.drops());
    rx(&mut n, 0, &mpls(&big_df(1469), l, 10));
    assert!(tx(&mut n, 1).is_empty());
    let icmp = icmp_out(&mut n);
    assert_eq!(icmp.len(), 1);
    assert_eq!(icmp[0].2, [0, 0, (1468u16 >> 8) as u8, 1468u16 as u8]);
}
