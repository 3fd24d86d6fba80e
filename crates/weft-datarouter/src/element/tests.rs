//! The element on literal frames: in-place resolution, rewrites that resize
//! the header, misses, malformed tags (one test per reason), checksums.

use super::*;
use crate::classes::{DNS, MP3, URL};
use crate::wire::{udp4_frame, udp6_frame, OptionView, RoutingView, Tag};
use crate::Algorithm;
use etherparse::{IpFragOffset, Ipv4Header, Ipv4HeaderSlice, Ipv4Options, Ipv6Header, Ipv6HeaderSlice};
use weft_dataplane::InstanceId;
use weft_packet::view::ETH_LEN;
use weft_packet::PacketPool;

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 2);
const R: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 1);

fn dr(cmds: &str) -> DataRouter {
    let mut d = DataRouter::new(&Args::parse("")).unwrap();
    d.control(cmds).unwrap();
    d
}

/// Run one frame through the element: verdict, frame after, emitted frames.
fn run(d: &mut DataRouter, frame: &[u8]) -> (Verdict, Vec<u8>, Vec<Vec<u8>>) {
    let mut pool = PacketPool::with_buffers(4);
    let mut emitted = Vec::new();
    let mut pkt = Packet::from_bytes(frame);
    pkt.parse().unwrap();
    let v = {
        let mut cx = Ctx::new(1_000_000_000, InstanceId(1), &mut pool, &mut emitted);
        d.process(&mut cx, &mut pkt)
    };
    (
        v,
        pkt.data().to_vec(),
        emitted.into_iter().map(|(_, p)| p.data().to_vec()).collect(),
    )
}

/// The frame parses (IPv4 header checksum) and its UDP checksum verifies.
fn checksums_ok(f: &[u8]) -> bool {
    let Ok(h) = weft_packet::view::parse(f) else {
        return false;
    };
    let l4 = h.l4_off().unwrap();
    let (ps, end) = match h.l3 {
        weft_packet::L3::Ipv4 { off, total_len, .. } => {
            let ip = Ipv4HeaderSlice::from_slice(&f[off as usize..]).unwrap();
            let ulen = (off as usize + total_len as usize - l4) as u16;
            (
                checksum::pseudo_v4(ip.source(), ip.destination(), 17, ulen),
                off as usize + total_len as usize,
            )
        }
        weft_packet::L3::Ipv6 { off, payload_len, .. } => {
            let ip = Ipv6HeaderSlice::from_slice(&f[off as usize..]).unwrap();
            let end = off as usize + Ipv6Header::LEN + payload_len as usize;
            (
                checksum::pseudo_v6(ip.source(), ip.destination(), 17, (end - l4) as u32),
                end,
            )
        }
        _ => return false,
    };
    checksum::sum(&f[l4..end], ps) == 0xffff
}

/// The IP packet a frame carries.
fn ip(f: &[u8]) -> &[u8] {
    &f[ETH_LEN..]
}

/// The ICMP or ICMPv6 message a frame carries: type, code, and the four
/// octets after the checksum (a parameter problem's pointer).
fn icmp(f: &[u8]) -> (u8, u8, [u8; 4]) {
    let h = weft_packet::view::parse(f).unwrap();
    let off = h.l4_off().unwrap();
    match h.l4 {
        weft_packet::L4::Icmp { .. } => {
            let m = etherparse::Icmpv4Slice::from_slice(&f[off..]).unwrap();
            (m.type_u8(), m.code_u8(), m.bytes5to8())
        }
        weft_packet::L4::Icmpv6 { .. } => {
            let m = etherparse::Icmpv6Slice::from_slice(&f[off..]).unwrap();
            (m.type_u8(), m.code_u8(), m.bytes5to8())
        }
        other => panic!("not ICMP: {other:?}"),
    }
}

/// `f` (Ethernet, IPv4) with the IPv4 header rebuilt by `edit` (options,
/// fragment fields): its length fields and checksum follow.
fn edit_ipv4(f: &[u8], edit: impl FnOnce(&mut Ipv4Header)) -> Vec<u8> {
    let (mut h, payload) = Ipv4Header::from_slice(ip(f)).unwrap();
    edit(&mut h);
    h.set_payload_len(payload.len()).unwrap();
    h.header_checksum = h.calc_header_checksum();
    [&f[..ETH_LEN], &h.to_bytes()[..], payload].concat()
}

/// `opt` padded with zeros (end of options) to a multiple of 4, as IPv4
/// options.
fn options(opt: &[u8]) -> Ipv4Options {
    let mut o = opt.to_vec();
    o.resize(opt.len().div_ceil(4) * 4, 0);
    Ipv4Options::try_from(&o[..]).unwrap()
}

/// `f` (Ethernet, IPv6) with its payload length set to what follows the
/// header.
fn fix_ipv6_payload_len(f: &mut [u8]) {
    let (mut h, rest) = Ipv6Header::from_slice(ip(f)).unwrap();
    h.payload_length = rest.len() as u16;
    f[ETH_LEN..ETH_LEN + Ipv6Header::LEN].copy_from_slice(&h.to_bytes());
}

fn chain(tags: &[Tag]) -> TagChain {
    TagChain::new(tags.to_vec())
}

fn frame4(c: &TagChain) -> Vec<u8> {
    udp4_frame([2; 6], [4; 6], A, R, 5000, 7000, c, b"hello").unwrap()
}

fn dst4(f: &[u8]) -> Ipv4Addr {
    Ipv4HeaderSlice::from_slice(ip(f)).unwrap().destination_addr()
}

#[test]
fn resolves_in_place_with_checksums() {
    let mut d = dr("class MP3 add 0x1f2e3d4c 10.0.2.2 alg exact");
    let f = frame4(&chain(&[Tag::new(MP3, Algorithm::Exact, vec![0x1f, 0x2e, 0x3d, 0x4c])]));
    let (v, out, em) = run(&mut d, &f);
    assert_eq!(v, Verdict::Continue);
    assert!(em.is_empty());
    assert_eq!(dst4(&out), Ipv4Addr::new(10, 0, 2, 2));
    assert_eq!(out.len(), f.len());
    let c = crate::wire::read_chain(ip(&out)).unwrap().unwrap();
    assert!(c.exhausted());
    assert!(checksums_ok(&out));
    assert_eq!(d.counters().resolved, 1);
    // Exhausted now: passes unchanged.
    let (v, again, _) = run(&mut d, &out);
    assert_eq!((v, again), (Verdict::Continue, out));
    assert_eq!(d.counters().passed, 1);
}

#[test]
fn untagged_passes() {
    let mut d = dr("ls");
    let f = weft_packet::build::udp4([2; 6], [4; 6], A, R, 1, 2, 64, b"x");
    let (v, out, _) = run(&mut d, &f);
    assert_eq!((v, out), (Verdict::Continue, f));
}

#[test]
fn suffix_then_prefix_rewrite_grows_the_header() {
    let mut d = dr("class URL add joe.com 10.0.2.2 alg suffix rewrite copy:prefix,next:strip");
    let f = frame4(&chain(&[Tag::new(URL, Algorithm::Suffix, "joe.com/apple")]));
    let (v, out, _) = run(&mut d, &f);
    assert_eq!(v, Verdict::Continue);
    assert_eq!(out.len(), f.len() + 8); // options 19 → 28 octets (padded 20 → 28)
    assert!(checksums_ok(&out), "{out:02x?}");
    let c = crate::wire::read_chain(ip(&out)).unwrap().unwrap();
    assert_eq!(c.tags[1], Tag::new(URL, Algorithm::Prefix, "/apple"));
    assert_eq!(c.next, 1);
    assert_eq!(dst4(&out), Ipv4Addr::new(10, 0, 2, 2));
    // The payload is intact.
    assert_eq!(&out[out.len() - 5..], b"hello");
}

#[test]
fn delete_shrinks_the_header() {
    let mut d = dr("class DNS add joe.com 10.0.2.2 alg suffix rewrite del");
    let f = frame4(&chain(&[
        Tag::new(DNS, Algorithm::Suffix, "www.joe.com"),
        Tag::new(DNS, Algorithm::Exact, "x"),
    ]));
    let (_, out, _) = run(&mut d, &f);
    assert_eq!(out.len(), f.len() - 16); // options 21 → 7 octets (padded 24 → 8)
    assert!(checksums_ok(&out));
    let c = crate::wire::read_chain(ip(&out)).unwrap().unwrap();
    assert_eq!(c.tags, vec![Tag::new(DNS, Algorithm::Exact, "x")]);
    assert_eq!(c.next, 0);
}

#[test]
fn same_router_resolves_the_next_string_too() {
    let mut d = dr("class DNS add joe.com 10.0.1.1 alg suffix\nclass MP3 add 0x01 10.0.3.3 alg exact");
    let f = frame4(&chain(&[
        Tag::new(DNS, Algorithm::Suffix, "joe.com"),
        Tag::new(MP3, Algorithm::Exact, vec![1]),
    ]));
    let (_, out, _) = run(&mut d, &f);
    assert_eq!(dst4(&out), Ipv4Addr::new(10, 0, 3, 3));
    assert!(crate::wire::read_chain(ip(&out)).unwrap().unwrap().exhausted());
    assert_eq!(d.counters().strings, 2);
}

#[test]
fn miss_drops_or_answers() {
    let mut d = dr("class DNS add joe.com 10.0.2.2 alg suffix");
    let f = frame4(&chain(&[Tag::new(DNS, Algorithm::Suffix, "jim.org")]));
    let (v, _, em) = run(&mut d, &f);
    assert_eq!((v, em.len()), (Verdict::Drop, 0));
    assert_eq!(d.counters().miss, 1);
    d.control("class DNS miss icmp").unwrap();
    let (v, _, em) = run(&mut d, &f);
    assert_eq!((v, em.len()), (Verdict::Drop, 1));
    let h = weft_packet::view::parse(&em[0]).unwrap();
    assert!(matches!(h.l4, weft_packet::L4::Icmp { typ: 3, code: 1, .. }));
    // Unknown class: the element's `unknown=` outcome.
    let f = frame4(&chain(&[Tag::new(99, Algorithm::Exact, "a")]));
    let (v, _, em) = run(&mut d, &f);
    assert_eq!((v, em.len()), (Verdict::Drop, 0));
    assert_eq!(d.counters().unknown_class, 1);
}

/// A frame whose option bytes are `opt` (padded), checksum right.
fn raw4(opt: &[u8]) -> Vec<u8> {
    let f = weft_packet::build::udp4([2; 6], [4; 6], A, R, 1, 2, 64, b"x");
    edit_ipv4(&f, |h| h.options = options(opt))
}

/// The count of malformed tags for `reason`, read from the report.
fn bad(d: &DataRouter, reason: &str) -> u64 {
    d.report()["bad"][reason]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter {reason:?} in the report"))
}

fn bad_case(opt: &[u8], reason: &str, pointer: u8) {
    let mut d = dr("class DNS add joe.com 10.0.2.2 alg suffix");
    let f = raw4(opt);
    let (v, _, em) = run(&mut d, &f);
    assert_eq!(v, Verdict::Drop, "{reason}");
    assert_eq!(bad(&d, reason), 1, "{reason}: {:?}", d.counters());
    assert_eq!(em.len(), 1, "{reason}");
    let (typ, code, rest) = icmp(&em[0]);
    assert_eq!((typ, code, rest[0]), (12, 0, pointer), "{reason}");
}

#[test]
fn bad_truncated_option() {
    bad_case(&[0x9e, 40, 4], "truncated", 21);
}

#[test]
fn bad_pointer_past_end() {
    bad_case(&[0x9e, 6, 8, 0x00, 0x0c, 1], "pointer-past-end", 22);
}

#[test]
fn bad_pointer_inside_entry() {
    bad_case(&[0x9e, 7, 5, 0x00, 0x0c, 1, b'a'], "bad-pointer", 22);
}

#[test]
fn bad_length_overrun() {
    bad_case(&[0x9e, 7, 4, 0x00, 0x0c, 9, b'a'], "length-overrun", 25);
}

#[test]
fn bad_oversized_string() {
    let mut d = DataRouter::new(&Args::parse("max_string=4")).unwrap();
    let f = frame4(&chain(&[Tag::new(DNS, Algorithm::Suffix, "www.joe.com")]));
    let (v, _, em) = run(&mut d, &f);
    assert_eq!((v, em.len()), (Verdict::Drop, 1));
    assert_eq!(bad(&d, "oversized-string"), 1);
}

#[test]
fn bad_unknown_algorithm() {
    bad_case(&[0x9e, 7, 4, 0x00, 0x0f, 1, b'a'], "unknown-algorithm", 24);
}

#[test]
fn bad_too_many_tags() {
    // Thirty-three empty strings do not fit IPv4; IPv6 carries them.
    let mut d = dr("ls");
    let h = crate::wire::tests::routing_header_of_empty_tags(33);
    let c = chain(&[Tag::new(DNS, Algorithm::Exact, "")]);
    let mut f = udp6_frame(
        [2; 6],
        [4; 6],
        "fd00::2".parse().unwrap(),
        "fd00::1".parse().unwrap(),
        1,
        2,
        &c,
        b"x",
    )
    .unwrap();
    let old = c.ipv6_header(17).unwrap().len();
    let rh = ETH_LEN + Ipv6Header::LEN;
    f.splice(rh..rh + old, h.iter().copied());
    fix_ipv6_payload_len(&mut f);
    let (v, _, em) = run(&mut d, &f);
    assert_eq!(v, Verdict::Drop);
    assert_eq!(bad(&d, "too-many-tags"), 1);
    let (typ, code, _) = icmp(&em[0]);
    assert_eq!((typ, code), (4, 0));
}

#[test]
fn bad_options_around_the_tag() {
    // A record-route option whose length runs past the header: the
    // pointer is at its length octet, wherever it stands.
    bad_case(&[0x07, 30, 4], "truncated", 21);
    bad_case(&[0x01, 0x07, 30, 4], "truncated", 22);
}

/// An option of length 41 (more than 40 octets never fit)
/// is `too-long`, not `truncated`, and answered with a parameter problem
/// pointing at its length octet.
#[test]
fn bad_too_long_option() {
    bad_case(&[0x9e, 41, 4], "too-long", 21);
    bad_case(&[0x01, 0x9e, 255, 4], "too-long", 22);
    // 40 octets, but the header holds fewer: truncated.
    bad_case(&[0x9e, 40, 4], "truncated", 21);
}

#[test]
fn v6_in_place_and_rewrite() {
    let me: Ipv6Addr = "fd00::1".parse().unwrap();
    let mut d = dr("class DNS add joe.com fd00:2::2 alg suffix\nclass URL add joe.com fd00:2::3 alg suffix rewrite copy:prefix,next:strip");
    let c = chain(&[Tag::new(DNS, Algorithm::Suffix, "www.joe.com")]);
    let f = udp6_frame([2; 6], [4; 6], "fd00::2".parse().unwrap(), me, 1, 2, &c, b"hello").unwrap();
    let (v, out, _) = run(&mut d, &f);
    assert_eq!(v, Verdict::Continue);
    assert_eq!(
        Ipv6HeaderSlice::from_slice(ip(&out)).unwrap().destination_addr(),
        "fd00:2::2".parse::<Ipv6Addr>().unwrap()
    );
    assert!(checksums_ok(&out));
    assert!(crate::wire::read_chain(ip(&out)).unwrap().unwrap().exhausted());
    let c = chain(&[Tag::new(URL, Algorithm::Suffix, "joe.com/apple")]);
    let f = udp6_frame([2; 6], [4; 6], "fd00::2".parse().unwrap(), me, 1, 2, &c, b"hello").unwrap();
    let (_, out, _) = run(&mut d, &f);
    assert!(checksums_ok(&out));
    let got = crate::wire::read_chain(ip(&out)).unwrap().unwrap();
    assert_eq!(got.tags[1].string, b"/apple");
    assert_eq!(got.next, 1);
    assert_eq!(&out[out.len() - 5..], b"hello");
}

#[test]
fn control_report_and_state() {
    let mut d = dr("class DNS add joe.com 10.0.2.2 alg suffix\nclass WEB add \"Potter movie\" 10.0.3.3 alg closest");
    let r = d.report();
    assert_eq!(r["classes"]["DNS"]["entries"], 1);
    let s = d.export_state().unwrap();
    let mut e = DataRouter::new(&Args::parse("")).unwrap();
    e.import_state(s).unwrap();
    assert_eq!(script(e.tables()), script(d.tables()));
    assert!(d.control("class DNS add").is_err());
    assert!(d.control("bogus=1").is_err());
    assert_eq!(d.control("reset").unwrap(), "ok");
    assert!(DataRouter::new(&Args::parse("foo")).is_err());
}

proptest::proptest! {
    /// The fuzz target `datarouter_option` as a property test.
    #[test]
    fn fuzz_frame_never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64), tag in 0u8..4) {
        // Ours both ways: fuzz_frame reads the bytes as an IPv4 option
        // (type, length) and as an IPv6 routing header (routing type).
        let mut d = data.clone();
        if tag > 0 && d.len() > 3 {
            let mut o = OptionView::new_unchecked(&mut d[..]);
            o.set_option_type(wire::OPTION_TYPE);
            let l = o.length();
            o.set_length((l % data.len() as u8).max(3));
            RoutingView::new_unchecked(&mut d[..]).set_routing_type(wire::ROUTING_TYPE);
        }
        fuzz_frame(&d);
    }

    /// Arbitrary option bytes never panic the element, and whatever it
    /// passes on still parses.
    #[test]
    fn arbitrary_options_never_panic(opt in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40), tag in 0u8..3) {
        let mut d = dr("class DNS add a 10.0.2.2 alg suffix rewrite copy:prefix,next:strip\nclass 0 add .* 10.0.2.3");
        let mut o = opt.clone();
        if tag > 0 && o.len() > 2 {
            let mut v = OptionView::new_unchecked(&mut o[..]);
            v.set_option_type(wire::OPTION_TYPE);
            let l = v.length();
            v.set_length(l % (opt.len() as u8 + 1));
        }
        let f = raw4(&o);
        d.prefetch(&[Packet::from_bytes(&f)]);
        let (v, out, _) = run(&mut d, &f);
        if v == Verdict::Continue {
            proptest::prop_assert!(weft_packet::view::parse(&out).is_ok());
        }
    }
}

fn dns(name: &str, alg: Algorithm) -> Vec<u8> {
    frame4(&chain(&[Tag::new(DNS, alg, name)]))
}

fn hits(d: &DataRouter) -> u64 {
    d.counters().cache_hits
}

/// The resolution cache answers a string seen before, and every way the
/// tables change makes it forget at once: add over an entry, rm, flush,
/// replace_tables, state import. A rule-bearing entry is never cached.
#[test]
fn resolution_cache_hits_and_forgets_on_every_table_change() {
    let f = dns("www.isi.edu", Algorithm::Suffix);
    let mut d = dr("class DNS add isi.edu 10.0.2.2 alg suffix");
    assert_eq!(dst4(&run(&mut d, &f).1), Ipv4Addr::new(10, 0, 2, 2));
    assert_eq!(hits(&d), 0);
    assert_eq!(dst4(&run(&mut d, &f).1), Ipv4Addr::new(10, 0, 2, 2));
    assert_eq!(hits(&d), 1);

    // A longer suffix added: the cached answer must not be served.
    d.control("class DNS add www.isi.edu 10.0.2.3 alg suffix").unwrap();
    assert_eq!(dst4(&run(&mut d, &f).1), Ipv4Addr::new(10, 0, 2, 3));
    assert_eq!(hits(&d), 1);
    assert_eq!(dst4(&run(&mut d, &f).1), Ipv4Addr::new(10, 0, 2, 3));
    assert_eq!(hits(&d), 2);

    d.control("class DNS rm www.isi.edu alg suffix").unwrap();
    assert_eq!(dst4(&run(&mut d, &f).1), Ipv4Addr::new(10, 0, 2, 2));

    d.control("class DNS flush").unwrap();
    let (v, _, _) = run(&mut d, &f);
    assert_eq!(v, Verdict::Drop, "flushed table still answered");

    let mut t = Tables::default();
    command::execute(&mut t, "class DNS add edu 10.0.2.4 alg suffix").unwrap();
    d.replace_tables(Arc::new(t));
    assert_eq!(dst4(&run(&mut d, &f).1), Ipv4Addr::new(10, 0, 2, 4));
    assert_eq!(dst4(&run(&mut d, &f).1), Ipv4Addr::new(10, 0, 2, 4));
    let h = hits(&d);

    d.import_state(serde_json::Value::String(
        "class DNS add isi.edu 10.0.2.5 alg suffix\n".into(),
    ))
    .unwrap();
    assert_eq!(dst4(&run(&mut d, &f).1), Ipv4Addr::new(10, 0, 2, 5));
    assert_eq!(hits(&d), h);

    // Entries with rules take the general path every time.
    let mut d = dr("class DNS add isi.edu 10.0.2.2 alg suffix rewrite delete");
    for _ in 0..3 {
        assert_eq!(dst4(&run(&mut d, &f).1), Ipv4Addr::new(10, 0, 2, 2));
    }
    assert_eq!(hits(&d), 0);
    // The same string under another algorithm or class is another key.
    let mut d = dr("class DNS add isi.edu 10.0.2.2 alg suffix\nclass DNS add www.isi.edu 10.0.2.6 alg exact");
    assert_eq!(dst4(&run(&mut d, &f).1), Ipv4Addr::new(10, 0, 2, 2));
    let e = dns("www.isi.edu", Algorithm::Exact);
    assert_eq!(dst4(&run(&mut d, &e).1), Ipv4Addr::new(10, 0, 2, 6));
    assert_eq!(dst4(&run(&mut d, &f).1), Ipv4Addr::new(10, 0, 2, 2));
    assert_eq!(dst4(&run(&mut d, &e).1), Ipv4Addr::new(10, 0, 2, 6));
    assert_eq!(hits(&d), 2);
}

/// Resolving ahead ([`Element::prefetch`]) puts a batch's exact strings
/// into the cache and changes nothing else; it stops while every string is
/// found in the cache and starts again at the first that is not; other
/// algorithms are left to `process`.
#[test]
fn resolving_ahead_fills_the_cache_and_stops_while_all_hit() {
    let key = |i: u8| frame4(&chain(&[Tag::new(MP3, Algorithm::Exact, vec![0x1f, 0x2e, 0x3d, i])]));
    let mut table = String::from("class DNS add isi.edu 10.0.2.2 alg suffix\n");
    for i in 0..20 {
        table.push_str(&format!("class MP3 add 0x1f2e3d{i:02x} 10.0.2.{} alg exact\n", 10 + i));
    }
    let mut d = dr(&table);
    let frames: Vec<Vec<u8>> = (0..4).map(key).collect();
    let batch: Vec<Packet> = frames.iter().map(|f| Packet::from_bytes(f)).collect();
    d.prefetch(&batch);
    assert_eq!((d.counters().resolved, hits(&d)), (0, 0), "nothing processed yet");
    for (p, f) in batch.iter().zip(&frames) {
        assert_eq!(p.data(), &f[..], "the frames are untouched");
    }
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(dst4(&run(&mut d, f).1), Ipv4Addr::new(10, 0, 2, 10 + i as u8));
    }
    assert_eq!(hits(&d), 4, "every string was resolved ahead");

    // A suffix string is not resolved ahead.
    let name = dns("www.isi.edu", Algorithm::Suffix);
    d.prefetch(&[Packet::from_bytes(&name)]);
    assert_eq!(dst4(&run(&mut d, &name).1), Ipv4Addr::new(10, 0, 2, 2));
    assert_eq!(hits(&d), 4);

    // AHEAD_WINDOW hits in a row: looking ahead stops...
    for _ in 0..AHEAD_WINDOW {
        run(&mut d, &frames[0]);
    }
    let h = hits(&d);
    d.prefetch(&[Packet::from_bytes(&key(5))]);
    assert_eq!(dst4(&run(&mut d, &key(5)).1), Ipv4Addr::new(10, 0, 2, 15));
    assert_eq!(hits(&d), h, "not resolved ahead: looked up in the table");
    // ...and that miss starts it again.
    d.prefetch(&[Packet::from_bytes(&key(6))]);
    assert_eq!(dst4(&run(&mut d, &key(6)).1), Ipv4Addr::new(10, 0, 2, 16));
    assert_eq!(hits(&d), h + 1);

    // A table change between looking ahead and processing: the new answer.
    d.prefetch(&[Packet::from_bytes(&key(7))]);
    d.control("class MP3 add 0x1f2e3d07 10.0.2.99 alg exact").unwrap();
    assert_eq!(dst4(&run(&mut d, &key(7)).1), Ipv4Addr::new(10, 0, 2, 99));
}

proptest::proptest! {
    /// With the cache, the element answers exactly as a fresh lookup in
    /// its tables, whatever the interleaving of table edits and packets
    /// (few slots' worth of strings, so slots collide and get replaced).
    #[test]
    fn resolution_cache_agrees_with_the_tables(
        ops in proptest::collection::vec((0u8..3, 0usize..40, 0u8..4), 1..200),
    ) {
        let name = |i: usize| format!("n{i}.example");
        let mut d = dr("class DNS miss drop");
        for (op, i, hop) in ops {
            match op {
                0 => {
                    d.control(&format!("class DNS add {} 10.0.3.{} alg suffix", name(i), hop + 1)).unwrap();
                }
                1 => {
                    let _ = d.control(&format!("class DNS rm {} alg suffix", name(i)));
                }
                _ => {
                    let f = dns(&name(i), Algorithm::Suffix);
                    let want = d
                        .tables()
                        .get(DNS)
                        .and_then(|t| t.lookup(Algorithm::Suffix, name(i).as_bytes(), &mut Scratch::default()))
                        .map(|e| e.next_hop);
                    let (v, out, _) = run(&mut d, &f);
                    match want {
                        Some(IpAddr::V4(a)) => {
                            proptest::prop_assert_eq!(v, Verdict::Continue);
                            proptest::prop_assert_eq!(dst4(&out), a);
                        }
                        _ => proptest::prop_assert_eq!(v, Verdict::Drop),
                    }
                }
            }
        }
    }
}

// ----- never an ICMP error about an ICMP error ------------

const ME6: &str = "fd00::1";
const SRC6: &str = "fd00::2";

/// A DataRouter routing header naming `next`, for the chain `DNS:joe.com`.
fn routing_header(next: u8) -> Vec<u8> {
    chain(&[Tag::new(DNS, Algorithm::Suffix, "joe.com")])
        .ipv6_header(next)
        .unwrap()
}

/// An ICMPv6 message of type `typ` from SRC6 to ME6 behind the extension
/// headers `exts` (kind, octets; each one's next-header octet is set here).
fn icmp6_behind(exts: &[(u8, Vec<u8>)], typ: u8) -> Vec<u8> {
    let quoted = weft_packet::build::udp6(
        [2; 6],
        [4; 6],
        ME6.parse().unwrap(),
        SRC6.parse().unwrap(),
        7,
        9,
        64,
        b"q",
    );
    let mut f = weft_packet::build::icmp6(
        [2; 6],
        [4; 6],
        SRC6.parse().unwrap(),
        ME6.parse().unwrap(),
        64,
        typ,
        0,
        [0; 4],
        ip(&quoted),
    );
    // Each header names the next: the IPv6 header the first extension,
    // each extension (its first octet) the one after, the last ICMPv6.
    let kinds: Vec<u8> = exts.iter().map(|(k, _)| *k).chain([proto::ICMPV6]).collect();
    let (mut h, _) = Ipv6Header::from_slice(ip(&f)).unwrap();
    h.next_header = kinds[0].into();
    f[ETH_LEN..ETH_LEN + Ipv6Header::LEN].copy_from_slice(&h.to_bytes());
    let mut at = ETH_LEN + Ipv6Header::LEN;
    for ((_, bytes), next) in exts.iter().zip(&kinds[1..]) {
        let mut e = bytes.clone();
        e[0] = *next;
        f.splice(at..at, e.iter().copied());
        at += e.len();
    }
    fix_ipv6_payload_len(&mut f);
    f
}

/// An ICMP (v4) message of type `typ` to R whose options are `opt`, at
/// `fragment_offset` (8-octet units).
fn icmp4_with(opt: &[u8], typ: u8, fragment_offset: u16) -> Vec<u8> {
    let quoted = weft_packet::build::udp4([2; 6], [4; 6], R, A, 7, 9, 64, b"q");
    let f = weft_packet::build::icmp4([2; 6], [4; 6], A, R, 64, typ, 0, [0; 4], ip(&quoted));
    edit_ipv4(&f, |h| {
        h.options = options(opt);
        h.dont_fragment = false;
        h.fragment_offset = IpFragOffset::try_new(fragment_offset).unwrap();
    })
}

/// ICMPv6 destination unreachable (1), packet too big (2), time exceeded
/// (3) and parameter problem (4) carrying a bad DataRouter routing header
/// are dropped and counted, never answered — also behind a hop-by-hop
/// header, and on a miss with `icmp`; an echo request with the same bad
/// header is answered, with the pointer at the offending octet.
#[test]
fn icmpv6_errors_with_a_bad_tag_are_never_answered() {
    let mut bad_rh = routing_header(0);
    RoutingView::new_unchecked(&mut bad_rh[..]).set_segments_left(1);
    let hbh = vec![0, 0, 1, 4, 0, 0, 0, 0]; // next header, length, PadN
    for exts in [vec![(43, bad_rh.clone())], vec![(0, hbh.clone()), (43, bad_rh.clone())]] {
        let rh_at = Ipv6Header::LEN + if exts.len() == 2 { hbh.len() } else { 0 };
        let mut d = dr("class DNS add joe.com fd00:2::2 alg suffix");
        for typ in 1..=4 {
            let (v, _, em) = run(&mut d, &icmp6_behind(&exts, typ));
            assert_eq!(v, Verdict::Drop, "type {typ}");
            assert!(em.is_empty(), "answered an ICMPv6 error of type {typ}: {em:02x?}");
        }
        assert_eq!(bad(&d, "segments-left"), 4);
        assert_eq!(d.counters().icmp_sent, 0);
        // Informational messages are answered.
        let (v, _, em) = run(&mut d, &icmp6_behind(&exts, 128));
        assert_eq!((v, em.len()), (Verdict::Drop, 1));
        let (typ, code, pointer) = icmp(&em[0]);
        assert_eq!((typ, code), (4, 0), "{em:02x?}");
        assert_eq!(
            u32::from_be_bytes(pointer) as usize,
            rh_at + wire::field::V6_SEGMENTS_LEFT,
            "pointer at segments left"
        );
    }
    // A miss with `icmp`: unreachable for a datagram, nothing for an error.
    let mut d = dr("class DNS add other.org fd00:2::2 alg suffix\nclass DNS miss icmp");
    let exts = vec![(43, routing_header(0))];
    let (v, _, em) = run(&mut d, &icmp6_behind(&exts, 1));
    assert_eq!((v, em.len(), d.counters().miss), (Verdict::Drop, 0, 1));
    let (v, _, em) = run(&mut d, &icmp6_behind(&exts, 128));
    assert_eq!((v, em.len(), d.counters().miss), (Verdict::Drop, 1, 2));
}

/// IPv4 was right before the fix; kept so: ICMP errors with a bad tag are
/// not answered, echo requests are, and so is a tagged UDP datagram; a
/// later fragment (the option is copied into every fragment) is not.
#[test]
fn icmp_errors_and_later_fragments_with_a_bad_tag_are_never_answered() {
    let bad_opt = [0x9e, 6, 8, 0x00, 0x0c, 1]; // pointer past the end
    let mut d = dr("class DNS add joe.com 10.0.2.2 alg suffix");
    for typ in [3, 4, 5, 11, 12] {
        let (v, _, em) = run(&mut d, &icmp4_with(&bad_opt, typ, 0));
        assert_eq!((v, em.len()), (Verdict::Drop, 0), "type {typ}");
    }
    let (v, _, em) = run(&mut d, &icmp4_with(&bad_opt, 8, 0));
    assert_eq!((v, em.len()), (Verdict::Drop, 1));
    assert_eq!(bad(&d, "pointer-past-end"), 6);
    // Fragments: the first is answered, later ones are not.
    let first = edit_ipv4(&raw4(&bad_opt), |h| {
        h.dont_fragment = false;
        h.more_fragments = true; // offset 0
    });
    let (_, _, em) = run(&mut d, &first);
    assert_eq!(em.len(), 1, "first fragment");
    let later = edit_ipv4(&raw4(&bad_opt), |h| {
        h.dont_fragment = false;
        h.fragment_offset = IpFragOffset::try_new(2).unwrap(); // 16 octets
    });
    let (v, _, em) = run(&mut d, &later);
    assert_eq!((v, em.len()), (Verdict::Drop, 0), "later fragment");
    assert_eq!(d.counters().icmp_sent, 2);
}

/// The element asks the node's one ICMP error limiter
/// ([`Ctx::icmp_error_allowed`]) before it answers, and counts what the
/// limiter refused; `icmp_rate` is no longer its own.
#[test]
fn icmp_answers_pass_the_nodes_limiter() {
    let mut d = dr("class DNS add joe.com 10.0.2.2 alg suffix");
    let f = raw4(&[0x9e, 6, 8, 0x00, 0x0c, 1]);
    let mut limiter = weft_dataplane::IcmpLimiter::new(100, 3);
    let mut pool = PacketPool::with_buffers(4);
    let mut emitted = Vec::new();
    for i in 0..10u64 {
        let mut pkt = Packet::from_bytes(&f);
        pkt.parse().unwrap();
        let mut cx =
            Ctx::new(1_000_000_000 + i, InstanceId(1), &mut pool, &mut emitted).with_icmp_limiter(&mut limiter);
        assert_eq!(d.process(&mut cx, &mut pkt), Verdict::Drop);
    }
    assert_eq!(emitted.len(), 3);
    assert_eq!((d.counters().icmp_sent, d.counters().icmp_limited), (3, 7));
    assert_eq!((limiter.sent(), limiter.limited()), (3, 7));
    let e = DataRouter::new(&Args::parse("icmp_rate=5")).err().unwrap().to_string();
    assert!(e.contains("[node]"), "{e}");
}

// ----- what the doc promises ---------------------

/// The reasons docs/datarouter.md's table lists, in its order.
fn documented_reasons() -> Vec<String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/datarouter.md")).unwrap();
    let table = doc
        .split("| reason | meaning |")
        .nth(1)
        .expect("the reasons table in docs/datarouter.md");
    table
        .lines()
        .skip(2)
        .map_while(|l| l.trim().strip_prefix("| `"))
        .filter_map(|l| l.split('`').next().map(String::from))
        .collect()
}

/// The report's `bad` counters are exactly the reasons the doc lists, and
/// each can be counted (every one is reached by a packet in the tests
/// above: `bad_*`, `bad_too_long_option`, the ICMPv6 ones).
#[test]
fn report_reasons_are_the_documented_ones() {
    let doc = documented_reasons();
    let d = dr("ls");
    let r = d.report();
    let mut report: Vec<String> = r["bad"].as_object().unwrap().keys().cloned().collect();
    let mut want = doc.clone();
    report.sort();
    want.sort();
    assert_eq!(report, want, "report counters vs docs/datarouter.md");
    assert_eq!(doc, REASONS, "the doc lists them in the report's order");
}

/// One frame per pair of faults: which reason wins, as docs/datarouter.md
/// says ("When several things are wrong").
#[test]
fn which_reason_wins() {
    let cases: &[(&[u8], &str, u8)] = &[
        // Another option malformed before ours, ours too long as well.
        (&[0x07, 1, 0x9e, 41, 4], "truncated", 21),
        // Too long beats a bad pointer.
        (&[0x9e, 41, 1], "too-long", 21),
        // A pointer past the end beats a bad entry.
        (&[0x9e, 7, 9, 0x00, 0x0f, 1, b'a'], "pointer-past-end", 22),
        // A pointer before the first entry beats a bad entry.
        (&[0x9e, 7, 2, 0x00, 0x0f, 9, b'a'], "bad-pointer", 22),
        // The first bad entry decides: an unknown algorithm before an overrun.
        (
            &[0x9e, 10, 4, 0x00, 0x0f, 1, b'a', 0x00, 0x0c, 9],
            "unknown-algorithm",
            24,
        ),
        // Within an entry, the algorithm before the length.
        (&[0x9e, 7, 4, 0x00, 0x0f, 9, b'a'], "unknown-algorithm", 24),
        // A bad entry beats a pointer inside an entry.
        (&[0x9e, 10, 5, 0x00, 0x0c, 1, b'a', 0x00, 0x0c, 9], "length-overrun", 29),
    ];
    for (opt, reason, pointer) in cases {
        bad_case(opt, reason, *pointer);
    }
    // IPv6: segments left before the data length, and both before entries.
    let mut rh = routing_header(17);
    let mut v = RoutingView::new_unchecked(&mut rh[..]);
    v.set_segments_left(1);
    v.set_data_len(900);
    // The first entry's string length.
    rh[wire::field::V6_ENTRIES + wire::field::ENTRY_LEN] = 0xff;
    let mut d = dr("ls");
    let f = {
        let mut f = udp6_frame(
            [2; 6],
            [4; 6],
            SRC6.parse().unwrap(),
            ME6.parse().unwrap(),
            1,
            2,
            &chain(&[Tag::new(DNS, Algorithm::Suffix, "joe.com")]),
            b"x",
        )
        .unwrap();
        let at = ETH_LEN + Ipv6Header::LEN;
        f[at..at + rh.len()].copy_from_slice(&rh);
        f
    };
    let (v, _, em) = run(&mut d, &f);
    assert_eq!((v, em.len(), bad(&d, "segments-left")), (Verdict::Drop, 1, 1));
    RoutingView::new_unchecked(&mut rh[..]).set_segments_left(0);
    let mut f2 = f.clone();
    let at = ETH_LEN + Ipv6Header::LEN;
    f2[at..at + rh.len()].copy_from_slice(&rh);
    run(&mut d, &f2);
    assert_eq!(bad(&d, "length-overrun"), 1, "{:?}", d.counters());
}

/// `flush` empties a class but keeps it and its miss outcome: a tag of the
/// class is then a `miss` answered as the class says, not an unknown
/// class.
#[test]
fn flush_keeps_the_class_and_its_miss_outcome() {
    let mut d = dr("class DNS add joe.com 10.0.2.2 alg suffix\nclass DNS miss icmp");
    let f = dns("joe.com", Algorithm::Suffix);
    assert_eq!(run(&mut d, &f).0, Verdict::Continue);
    d.control("class DNS flush").unwrap();
    let (v, _, em) = run(&mut d, &f);
    assert_eq!((v, em.len()), (Verdict::Drop, 1), "miss icmp still in force");
    assert_eq!((d.counters().miss, d.counters().unknown_class), (1, 0));
    assert_eq!(d.report()["classes"]["DNS"]["entries"], 0);
    assert_eq!(d.report()["classes"]["DNS"]["miss"], "icmp");
    assert!(d.control("ls").unwrap().contains("DNS"));
}

/// `max_string` and `unknown=` as the doc says to set them: a new
/// configuration through control replaces both (keys not given return to
/// their defaults); `Node::set` (`weft fb set`) changes one key.
#[test]
fn max_string_and_unknown_through_configuration() {
    let mut d = dr("class DNS add joe.com 10.0.2.2 alg suffix");
    let long = dns("www.joe.com", Algorithm::Suffix);
    assert_eq!(run(&mut d, &long).0, Verdict::Continue);
    d.control("max_string=4 unknown=icmp").unwrap();
    assert_eq!(run(&mut d, &long).0, Verdict::Drop);
    assert_eq!(bad(&d, "oversized-string"), 1);
    let (v, _, em) = run(&mut d, &frame4(&chain(&[Tag::new(99, Algorithm::Exact, "a")])));
    assert_eq!((v, em.len()), (Verdict::Drop, 1), "unknown=icmp");
    d.control("unknown=icmp").unwrap();
    assert_eq!(run(&mut d, &long).0, Verdict::Continue, "max_string back to 255");
}

/// Handlers are data: the element declares what its class documents, and
/// every read handler is a key of its report.
#[test]
fn handlers_are_the_class_doc_and_name_report_keys() {
    let d = dr("class DNS add joe.com 10.0.9.9");
    assert_eq!(d.handlers(), class().doc.handlers);
    let report = d.report();
    for h in d
        .handlers()
        .iter()
        .filter(|h| h.access == weft_dataplane::element::Access::Read)
    {
        assert!(report.get(h.name.as_ref()).is_some(), "no {} in {report}", h.name);
    }
}
