//! DataRouter scenarios on the emulator: tagged datagrams sent by end hosts
//! (built here and handed to the host as a raw socket would, since the
//! emulated hosts' stack cannot set IP options), resolved hop by hop by
//! DataRouters, and asserted on what the destination host received and on
//! the headers captured on every link.
//!
//! ```text
//!  h1 — dr1 — r2 (plain Weft router) — dr3 — h2
//!                                        |
//!                                       dr4 — h4
//! ```

use etherparse::{Ipv4Header, Ipv4HeaderSlice, Ipv6Header, Ipv6HeaderSlice};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;
use weft_datarouter::classes::{DNS, MP3, URL};
use weft_datarouter::wire::{self, udp4_frame, udp6_frame, OptionView, RoutingView};
use weft_datarouter::{Algorithm, Tag, TagChain};
use weft_emu::Emulator;
use weft_packet::view::ETH_LEN;
use weft_packet::{checksum, proto};

const TOPO: &str = r#"
routing = "shortest-path"

[[node]]
name = "dr1"
[[node.config.droute]]
class = "DNS"
miss = "drop"

[[node]]
name = "r2"

[[node]]
name = "dr3"
[[node.config.droute]]
class = "DNS"
miss = "drop"

[[node]]
name = "dr4"

[[host]]
name = "h1"
addr = "10.0.1.2/24"
addr6 = "2001:db8:1::2/64"

[[host]]
name = "h2"
addr = "10.0.3.2/24"
addr6 = "2001:db8:3::2/64"

[[host]]
name = "h4"
addr = "10.0.4.2/24"

[[link]]
name = "h1-dr1"
a = "h1"
b = "dr1:eth0"
b_addr = ["10.0.1.1/24", "2001:db8:1::1/64"]

[[link]]
name = "dr1-r2"
a = "dr1:eth1"
b = "r2:eth0"
a_addr = ["10.0.12.1/24", "2001:db8:12::1/64"]
b_addr = ["10.0.12.2/24", "2001:db8:12::2/64"]

[[link]]
name = "r2-dr3"
a = "r2:eth1"
b = "dr3:eth0"
a_addr = ["10.0.23.2/24", "2001:db8:23::2/64"]
b_addr = ["10.0.23.3/24", "2001:db8:23::3/64"]

[[link]]
name = "dr3-h2"
a = "dr3:eth1"
b = "h2"
a_addr = ["10.0.3.1/24", "2001:db8:3::1/64"]

[[link]]
name = "dr3-dr4"
a = "dr3:eth2"
b = "dr4:eth0"
a_addr = "10.0.34.3/24"
b_addr = "10.0.34.4/24"

[[link]]
name = "dr4-h4"
a = "dr4:eth1"
b = "h4"
a_addr = "10.0.4.1/24"
"#;

const PORT: u16 = 7000;

fn emu() -> Emulator {
    let mut e = Emulator::from_str(TOPO, ".").unwrap();
    for l in e.link_names() {
        e.capture(&l).unwrap();
    }
    for h in ["h2", "h4"] {
        e.host_mut(h).udp_bind(PORT).unwrap();
    }
    e
}

/// Send `request` (droute commands) to `node`'s datarouter instance.
fn droute(e: &mut Emulator, node: &str, request: &str) {
    let n = e.node_mut(node);
    let id = n
        .instances()
        .into_iter()
        .find(|i| i.class == "datarouter")
        .expect("a datarouter instance")
        .id;
    n.control(id, request).unwrap();
}

fn report(e: &Emulator, node: &str) -> serde_json::Value {
    let n = e.node(node);
    let id = n.instances().into_iter().find(|i| i.class == "datarouter").unwrap().id;
    n.report(id).unwrap()["element"].clone()
}

fn a4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// The IP packet a frame carries (what a raw socket sends).
fn ip(f: &[u8]) -> &[u8] {
    &f[ETH_LEN..]
}

/// The IPv4 ICMP message a frame carries: type, code, and the four octets
/// after the checksum (a parameter problem's pointer).
fn icmp4(f: &[u8]) -> Option<(u8, u8, [u8; 4])> {
    let weft_packet::L4::Icmp { off, .. } = weft_packet::view::parse(f).ok()?.l4 else {
        return None;
    };
    let m = etherparse::Icmpv4Slice::from_slice(&f[off as usize..]).ok()?;
    Some((m.type_u8(), m.code_u8(), m.bytes5to8()))
}

/// Recompute the IPv4 header checksum of frame `f` after a test broke a
/// field.
fn fix_ipv4_checksum(f: &mut [u8]) {
    let (mut h, _) = Ipv4Header::from_slice(ip(f)).unwrap();
    h.header_checksum = h.calc_header_checksum();
    let b = h.to_bytes();
    f[ETH_LEN..ETH_LEN + b.len()].copy_from_slice(&b);
}

/// Frame `f` (IPv4 with our option first) with the option's pointer set
/// to `pointer`, checksum right.
fn with_pointer(mut f: Vec<u8>, pointer: u8) -> Vec<u8> {
    OptionView::new_unchecked(&mut f[ETH_LEN + Ipv4Header::MIN_LEN..]).set_pointer(pointer);
    fix_ipv4_checksum(&mut f);
    f
}

/// h1 sends a tagged UDP datagram to `first` (the first DataRouter).
fn send4(e: &mut Emulator, first: &str, chain: &TagChain, payload: &[u8]) {
    let f = udp4_frame([0; 6], [0; 6], a4("10.0.1.2"), a4(first), 40000, PORT, chain, payload).unwrap();
    e.host_mut("h1").send_raw_ip(ip(&f)).unwrap();
    assert!(e.run_until_idle(Duration::from_secs(5)));
}

/// The IPv4/IPv6 packets captured on `link` in direction `dir` that carry a
/// DataRouter tag: (destination, chain, frame).
fn tagged(e: &Emulator, link: &str, dir: u8) -> Vec<(IpAddr, TagChain, Vec<u8>)> {
    e.captured(link)
        .iter()
        .filter(|c| c.dir == dir)
        .filter_map(|c| {
            let ip = ip(&c.frame);
            let chain = wire::read_chain(ip).ok()??;
            let dst = match Ipv4HeaderSlice::from_slice(ip) {
                Ok(h) => IpAddr::V4(h.destination_addr()),
                Err(_) => IpAddr::V6(Ipv6HeaderSlice::from_slice(ip).unwrap().destination_addr()),
            };
            Some((dst, chain, c.frame.clone()))
        })
        .collect()
}

/// The frame's IPv4 header checksum and UDP checksum verify.
fn checksums_ok(f: &[u8]) -> bool {
    let Ok(h) = weft_packet::view::parse(f) else {
        return false;
    };
    let Some(l4) = h.l4_off() else { return false };
    let (ps, end) = match h.l3 {
        weft_packet::L3::Ipv4 { total_len, .. } => {
            let ip = Ipv4HeaderSlice::from_slice(ip(f)).unwrap();
            let end = ETH_LEN + total_len as usize;
            let ulen = (end - l4) as u16;
            (checksum::pseudo_v4(ip.source(), ip.destination(), 17, ulen), end)
        }
        _ => {
            let ip = Ipv6HeaderSlice::from_slice(ip(f)).unwrap();
            let end = ETH_LEN + Ipv6Header::LEN + ip.payload_length() as usize;
            let ulen = (end - l4) as u32;
            (checksum::pseudo_v6(ip.source(), ip.destination(), 17, ulen), end)
        }
    };
    checksum::sum(&f[l4..end], ps) == 0xffff
}

fn got(e: &Emulator, host: &str) -> Vec<(IpAddr, usize)> {
    e.host(host)
        .udp_received()
        .iter()
        .filter(|d| d.dport == PORT)
        .map(|d| (d.src, d.bytes))
        .collect()
}

const H1: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 1, 2));

#[test]
fn dns_suffix_routing_through_two_datarouters() {
    let mut e = emu();
    // dr1 knows the ".com" server (dr3) and hands the name on to it; dr3
    // knows joe.com's host.
    droute(&mut e, "dr1", "class DNS add .com 10.0.23.3 alg suffix rewrite copy");
    droute(&mut e, "dr3", "class DNS add joe.com 10.0.3.2 alg suffix");
    let c = TagChain::new(vec![Tag::new(DNS, Algorithm::Suffix, "www.joe.com")]);
    send4(&mut e, "10.0.1.1", &c, b"late-bound hello");
    assert_eq!(got(&e, "h2"), vec![(H1, 16)]);
    // Hop by hop: dr1 rewrote the destination to dr3 and inserted the copy;
    let hop1 = tagged(&e, "dr1-r2", 0);
    assert_eq!(hop1.len(), 1);
    assert_eq!(hop1[0].0, IpAddr::V4(a4("10.0.23.3")));
    assert_eq!(hop1[0].1.tags.len(), 2);
    assert_eq!(hop1[0].1.next, 1);
    assert!(checksums_ok(&hop1[0].2));
    // dr3 resolved the copy: exhausted, destination h2.
    let hop3 = tagged(&e, "dr3-h2", 0);
    assert_eq!(hop3[0].0, IpAddr::V4(a4("10.0.3.2")));
    assert!(hop3[0].1.exhausted());
    assert!(checksums_ok(&hop3[0].2));
    assert_eq!(report(&e, "dr1")["resolved"], 1);
    assert_eq!(report(&e, "dr3")["resolved"], 1);
}

#[test]
fn plain_router_forwards_tagged_ipv4_unchanged() {
    let mut e = emu();
    droute(&mut e, "dr1", "class DNS add joe.com 10.0.23.3 alg suffix rewrite copy");
    droute(&mut e, "dr3", "class DNS add joe.com 10.0.3.2 alg suffix");
    let c = TagChain::new(vec![Tag::new(DNS, Algorithm::Suffix, "joe.com")]);
    send4(&mut e, "10.0.1.1", &c, b"x");
    let before = tagged(&e, "dr1-r2", 0);
    let after = tagged(&e, "r2-dr3", 0);
    assert_eq!(before.len(), 1);
    assert_eq!(after.len(), 1);
    let (b, a) = (ip(&before[0].2), ip(&after[0].2));
    // Everything but the TTL and the header checksum is as dr1 sent it.
    assert_eq!(b.len(), a.len());
    let ((hb, pb), (ha, pa)) = (Ipv4Header::from_slice(b).unwrap(), Ipv4Header::from_slice(a).unwrap());
    assert_eq!(ha.time_to_live, hb.time_to_live - 1);
    let as_sent = Ipv4Header {
        time_to_live: hb.time_to_live,
        header_checksum: hb.header_checksum,
        ..ha.clone()
    };
    assert_eq!(as_sent, hb, "the header, options included");
    assert_eq!(pa, pb, "the payload");
    assert_eq!(got(&e, "h2"), vec![(H1, 1)]);
    // r2 has no DataRouter at all.
    assert!(e.node("r2").instances().is_empty());
}

#[test]
fn plain_router_forwards_tagged_ipv6_unchanged() {
    let mut e = emu();
    droute(
        &mut e,
        "dr1",
        "class DNS add joe.com 2001:db8:23::3 alg suffix rewrite copy",
    );
    droute(&mut e, "dr3", "class DNS add joe.com 2001:db8:3::2 alg suffix");
    let c = TagChain::new(vec![Tag::new(DNS, Algorithm::Suffix, "www.joe.com")]);
    let f = udp6_frame(
        [0; 6],
        [0; 6],
        "2001:db8:1::2".parse().unwrap(),
        "2001:db8:1::1".parse().unwrap(),
        40000,
        PORT,
        &c,
        b"six",
    )
    .unwrap();
    e.host_mut("h1").send_raw_ip(ip(&f)).unwrap();
    assert!(e.run_until_idle(Duration::from_secs(5)));
    let before = tagged(&e, "dr1-r2", 0);
    let after = tagged(&e, "r2-dr3", 0);
    assert_eq!(before.len(), 1, "{:?}", report(&e, "dr1"));
    assert_eq!(after.len(), 1);
    let ((hb, b), (ha, a)) = (
        Ipv6Header::from_slice(ip(&before[0].2)).unwrap(),
        Ipv6Header::from_slice(ip(&after[0].2)).unwrap(),
    );
    assert_eq!(ha.hop_limit, hb.hop_limit - 1);
    let as_sent = Ipv6Header {
        hop_limit: hb.hop_limit,
        ..ha.clone()
    };
    assert_eq!(as_sent, hb, "the header but its hop limit");
    assert_eq!(a, b); // routing header, UDP: untouched
    let rh = RoutingView::new_unchecked(a);
    assert_eq!((rh.routing_type(), rh.segments_left()), (253, 0));
    // dr3 resolved it for h2. (smoltcp hosts do not parse routing
    // headers, so the last hop is checked on the wire.)
    let last = tagged(&e, "dr3-h2", 0);
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].0, "2001:db8:3::2".parse::<IpAddr>().unwrap());
    assert!(last[0].1.exhausted());
    assert!(checksums_ok(&last[0].2));
}

#[test]
fn url_host_then_path_with_rewrite() {
    let mut e = emu();
    // dr1: the host by suffix; strip it and re-insert the path for a prefix lookup.
    droute(
        &mut e,
        "dr1",
        "class URL add joe.com 10.0.23.3 alg suffix rewrite copy:prefix,next:strip",
    );
    // dr3: paths by longest prefix.
    droute(
        &mut e,
        "dr3",
        "class URL add / 10.0.3.2 alg prefix\nclass URL add /apple 10.0.4.2 alg prefix",
    );
    let c = TagChain::new(vec![Tag::new(URL, Algorithm::Suffix, "www.joe.com/apple/pie")]);
    send4(&mut e, "10.0.1.1", &c, b"GET");
    let c2 = TagChain::new(vec![Tag::new(URL, Algorithm::Suffix, "joe.com/pear")]);
    send4(&mut e, "10.0.1.1", &c2, b"GET2");
    assert_eq!(got(&e, "h4"), vec![(H1, 3)]);
    assert_eq!(got(&e, "h2"), vec![(H1, 4)]);
    let hop1 = tagged(&e, "dr1-r2", 0);
    assert_eq!(hop1[0].1.tags[1], Tag::new(URL, Algorithm::Prefix, "/apple/pie"));
    assert_eq!(hop1[0].1.next, 1);
    assert!(checksums_ok(&hop1[0].2));
    let hop4 = tagged(&e, "dr4-h4", 0);
    assert_eq!(hop4[0].0, IpAddr::V4(a4("10.0.4.2")));
    assert!(hop4[0].1.exhausted());
}

#[test]
fn the_papers_regex() {
    let mut e = emu();
    droute(&mut e, "dr1", r"class DNS add .*\.(isi|usc)\.edu 10.0.3.2 alg long");
    let hit = TagChain::new(vec![Tag::new(DNS, Algorithm::Long, "www.isi.edu")]);
    let hit2 = TagChain::new(vec![Tag::new(DNS, Algorithm::Long, "ftp.usc.edu")]);
    let miss = TagChain::new(vec![Tag::new(DNS, Algorithm::Long, "www.mit.edu")]);
    send4(&mut e, "10.0.1.1", &hit, b"a");
    send4(&mut e, "10.0.1.1", &hit2, b"bb");
    send4(&mut e, "10.0.1.1", &miss, b"ccc");
    assert_eq!(got(&e, "h2"), vec![(H1, 1), (H1, 2)]);
    assert_eq!(report(&e, "dr1")["miss"], 1);
}

#[test]
fn two_overlays_in_one_packet() {
    let mut e = emu();
    // Overlay 1 (DNS names) takes the packet to dr3; overlay 2 (MP3
    // hashes) takes it from there to the host holding the song.
    droute(&mut e, "dr1", "class DNS add joe.com 10.0.23.3 alg suffix");
    droute(&mut e, "dr3", "class MP3 add 0xabcd1234 10.0.4.2 alg exact");
    let c = TagChain::new(vec![
        Tag::new(DNS, Algorithm::Suffix, "music.joe.com"),
        Tag::new(MP3, Algorithm::Exact, vec![0xab, 0xcd, 0x12, 0x34]),
    ]);
    send4(&mut e, "10.0.1.1", &c, b"song?");
    assert_eq!(got(&e, "h4"), vec![(H1, 5)]);
    let mid = tagged(&e, "r2-dr3", 0);
    assert_eq!(mid[0].1.next, 1);
    let last = tagged(&e, "dr4-h4", 0);
    assert_eq!(
        last[0].1,
        TagChain {
            tags: c.tags.clone(),
            next: 2
        }
    );
}

#[test]
fn miss_with_icmp_reaches_the_sender() {
    let mut e = emu();
    droute(
        &mut e,
        "dr1",
        "class DNS add joe.com 10.0.3.2 alg suffix\nclass DNS miss icmp",
    );
    let c = TagChain::new(vec![Tag::new(DNS, Algorithm::Suffix, "nowhere.org")]);
    send4(&mut e, "10.0.1.1", &c, b"?");
    // The error went back over h1's link: ICMP type 3 code 1 from dr1.
    let back: Vec<_> = e
        .captured("h1-dr1")
        .iter()
        .filter(|c| c.dir == 1)
        .filter_map(|c| icmp4(&c.frame).map(|(typ, code, _)| (typ, code)))
        .collect();
    assert_eq!(back, vec![(3, 1)]);
    assert!(got(&e, "h2").is_empty());
}

#[test]
fn malformed_tag_gets_parameter_problem() {
    let mut e = emu();
    let c = TagChain::new(vec![Tag::new(DNS, Algorithm::Suffix, "joe.com")]);
    let f = udp4_frame([0; 6], [0; 6], a4("10.0.1.2"), a4("10.0.1.1"), 1, PORT, &c, b"x").unwrap();
    let f = with_pointer(f, 60); // past the end
    e.host_mut("h1").send_raw_ip(ip(&f)).unwrap();
    assert!(e.run_until_idle(Duration::from_secs(5)));
    let pp: Vec<_> = e
        .captured("h1-dr1")
        .iter()
        .filter(|c| c.dir == 1)
        .filter_map(|c| {
            icmp4(&c.frame)
                .filter(|(typ, _, _)| *typ == 12)
                .map(|(_, _, rest)| rest[0])
        })
        .collect();
    assert_eq!(pp, vec![22], "parameter problem pointing at the pointer octet");
    assert_eq!(report(&e, "dr1")["bad"]["pointer-past-end"], 1);
}

fn ring() -> Emulator {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../topologies");
    let mut e = Emulator::load(dir.join("datarouter-ring.toml")).unwrap();
    for i in 0..4 {
        e.host_mut(&format!("h{i}")).udp_bind(PORT).unwrap();
    }
    e
}

#[test]
fn mp3_hash_exact_match_around_a_chord_ring() {
    let mut e = ring();
    // Hash index k is owned by node k mod 4; h0 sends every one into n0.
    for k in 0u8..8 {
        let c = TagChain::new(vec![Tag::new(MP3, Algorithm::Exact, vec![0x1f, 0x2e, 0x3d, 0x40 + k])]);
        let f = udp4_frame(
            [0; 6],
            [0; 6],
            a4("10.2.0.2"),
            a4("10.2.0.1"),
            41000 + k as u16,
            PORT,
            &c,
            &[k; 8],
        )
        .unwrap();
        e.host_mut("h0").send_raw_ip(ip(&f)).unwrap();
    }
    assert!(e.run_until_idle(Duration::from_secs(5)));
    for i in 0..4u8 {
        let got: Vec<u16> = e
            .host(&format!("h{i}"))
            .udp_received()
            .iter()
            .map(|d| d.sport - 41000)
            .collect();
        assert_eq!(got, vec![i as u16, i as u16 + 4], "h{i}");
    }
    // A hash nobody holds: n0 answers with ICMP (the class's miss outcome).
    let c = TagChain::new(vec![Tag::new(MP3, Algorithm::Exact, vec![0, 0, 0, 0])]);
    let f = udp4_frame([0; 6], [0; 6], a4("10.2.0.2"), a4("10.2.0.1"), 1, PORT, &c, b"?").unwrap();
    e.host_mut("h0").send_raw_ip(ip(&f)).unwrap();
    assert!(e.run_until_idle(Duration::from_secs(5)));
    let n0 = e.node("n0");
    let id = n0.instances()[0].id;
    assert_eq!(n0.report(id).unwrap()["element"]["miss"], 1);
}

// ----- ICMP errors and bad options from the DataRouter -----------------------

const H1_6: &str = "2001:db8:1::2";
const DR1_6: &str = "2001:db8:1::1";

/// ICMP / ICMPv6 errors (type, code) dr1 sent back to h1.
fn errors_to_h1(e: &Emulator) -> Vec<(u8, u8)> {
    e.captured("h1-dr1")
        .iter()
        .filter(|c| c.dir == 1)
        .filter_map(|c| match weft_packet::view::parse(&c.frame).ok()?.l4 {
            weft_packet::L4::Icmp { typ, code, .. } if !matches!(typ, 0 | 8) => Some((typ, code)),
            weft_packet::L4::Icmpv6 { typ, code, .. } if typ < 128 => Some((typ, code)),
            _ => None,
        })
        .collect()
}

/// An ICMPv6 message of type `typ` from h1 to dr1 behind the routing
/// header `rh` (whose next header is set to ICMPv6 here).
fn icmp6_with_tag(mut rh: Vec<u8>, typ: u8) -> Vec<u8> {
    let quoted = weft_packet::build::udp6(
        [0; 6],
        [0; 6],
        DR1_6.parse().unwrap(),
        H1_6.parse().unwrap(),
        7,
        9,
        64,
        b"q",
    );
    let f = weft_packet::build::icmp6(
        [0; 6],
        [0; 6],
        H1_6.parse().unwrap(),
        DR1_6.parse().unwrap(),
        64,
        typ,
        0,
        [0; 4],
        ip(&quoted),
    );
    RoutingView::new_unchecked(&mut rh[..]).set_next_header(proto::ICMPV6);
    let (mut h, payload) = Ipv6Header::from_slice(ip(&f)).unwrap();
    h.next_header = wire::NEXT_HEADER_ROUTING.into();
    h.payload_length = (rh.len() + payload.len()) as u16;
    [&f[..ETH_LEN], &h.to_bytes()[..], &rh, payload].concat()
}

/// Item 7: h1 sends dr1 ICMPv6 errors whose DataRouter routing header is
/// bad: dr1 drops and counts them, and answers none (RFC 4443 2.4(e));
/// the same header on an echo request is answered with a parameter
/// problem.
#[test]
fn icmpv6_errors_with_a_bad_tag_get_no_answer() {
    let mut e = emu();
    let c = TagChain::new(vec![Tag::new(DNS, Algorithm::Suffix, "joe.com")]);
    let mut rh = c.ipv6_header(58).unwrap();
    RoutingView::new_unchecked(&mut rh[..]).set_pointer(200); // past the end
    for typ in [1, 2, 3, 4, 1, 2, 3, 4] {
        e.host_mut("h1")
            .send_raw_ip(ip(&icmp6_with_tag(rh.clone(), typ)))
            .unwrap();
    }
    assert!(e.run_until_idle(Duration::from_secs(5)));
    assert_eq!(errors_to_h1(&e), vec![]);
    assert_eq!(report(&e, "dr1")["bad"]["pointer-past-end"], 8);
    e.host_mut("h1").send_raw_ip(ip(&icmp6_with_tag(rh, 128))).unwrap();
    assert!(e.run_until_idle(Duration::from_secs(5)));
    assert_eq!(errors_to_h1(&e), vec![(4, 0)]);
    assert_eq!(report(&e, "dr1")["icmp_sent"], 1);
}

/// Item 8, as docs/datarouter.md now says: an IPv6 routing header that
/// runs past the packet's end never reaches the element; the node drops
/// it while parsing (`truncated-ipv6`) and sends nothing, as Linux does.
#[test]
fn truncated_ipv6_routing_header_is_dropped_by_the_node() {
    let mut e = emu();
    let c = TagChain::new(vec![Tag::new(DNS, Algorithm::Suffix, "joe.com")]);
    let mut f = udp6_frame(
        [0; 6],
        [0; 6],
        H1_6.parse().unwrap(),
        DR1_6.parse().unwrap(),
        1,
        PORT,
        &c,
        b"x",
    )
    .unwrap();
    // 80 octets, past the end of the packet.
    RoutingView::new_unchecked(&mut f[ETH_LEN + Ipv6Header::LEN..]).set_hdr_ext_len(9);
    e.host_mut("h1").send_raw_ip(ip(&f)).unwrap();
    assert!(e.run_until_idle(Duration::from_secs(5)));
    assert_eq!(e.node("dr1").drop_count(weft_dataplane::DropReason::TruncatedIpv6), 1);
    assert_eq!(errors_to_h1(&e), vec![]);
    let r = report(&e, "dr1");
    assert!(r["bad"].as_object().unwrap().values().all(|v| v == 0), "{r}");
}

/// Item 9: dr1's port unreachables and its DataRouter's parameter problems
/// come out of one budget, `[node] icmp_rate` a second with bursts of
/// `icmp_burst`: 300 packets a millisecond apart, every other one a bad
/// tag, the others UDP to a closed port.
#[test]
fn one_icmp_budget_for_bad_tags_and_closed_ports() {
    let mut e = emu();
    let (rate, burst) = (100, 10);
    e.node_mut("dr1").set_icmp_rate(rate, burst);
    let c = TagChain::new(vec![Tag::new(DNS, Algorithm::Suffix, "joe.com")]);
    let bad_tag = udp4_frame([0; 6], [0; 6], a4("10.0.1.2"), a4("10.0.1.1"), 1, PORT, &c, b"x").unwrap();
    let bad_tag = with_pointer(bad_tag, 60); // past the end
    let closed = weft_packet::build::udp4([0; 6], [0; 6], a4("10.0.1.2"), a4("10.0.1.1"), 1, 9, 64, b"x");
    // Let ARP settle first, so that the replies are not held back.
    e.host_mut("h1").send_raw_ip(ip(&closed)).unwrap();
    assert!(e.run_until_idle(Duration::from_secs(5)));
    e.run_for(Duration::from_secs(2)); // the bucket is full again
    let before = errors_to_h1(&e).len() as u64;
    let start = e.now_ns();
    let mut last = start;
    for i in 0..300u32 {
        let f = if i.is_multiple_of(2) { &bad_tag } else { &closed };
        e.host_mut("h1").send_raw_ip(ip(f)).unwrap();
        last = e.now_ns();
        e.run_for(Duration::from_millis(1));
    }
    assert!(e.run_until_idle(Duration::from_secs(5)));
    let errs = errors_to_h1(&e);
    let answered = errs.len() as u64 - before;
    let most = burst + rate * (last - start + 1_000_000) / 1_000_000_000;
    assert!(
        answered <= most && answered + 2 >= most,
        "{answered} errors to 300 packets; the limit allows {most}"
    );
    assert!(errs.contains(&(3, 3)) && errs.contains(&(12, 0)), "{errs:?}");
    let r = report(&e, "dr1");
    let by_element = r["icmp_sent"].as_u64().unwrap();
    assert_eq!(e.node("dr1").icmp_errors_sent(), before + answered);
    assert_eq!(
        r["icmp_sent"].as_u64().unwrap() + r["icmp_limited"].as_u64().unwrap(),
        150
    );
    assert!(
        by_element > 0 && by_element < answered,
        "{by_element} of {answered} by the element"
    );
}
