//! The wire format as literal bytes: deconstruct, construct, parse and
//! emit one CREATE_PATH, one malformed case after another, and property
//! tests. Offsets into a message are found by the parser's own object
//! iterator and the body layouts of `objects::field`, never counted by
//! hand.

use super::objects::{field, ObjIter};
use super::*;
use ipnet::IpNet;
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn v4(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// R1 → R4 → R3 (strict), path 7@10.0.1.1, UDP to port 6060, one
/// plugin ENCRYPT:k at hop 2, 1 Mbit/s, refresh 1000 ms.
fn create() -> Message {
    Message::new(
        0x01020304,
        Body::Create(Create {
            path: PathId {
                initiator: v4("10.0.1.1"),
                number: 7,
            },
            route: ExplicitRoute {
                hops: vec![
                    Hop::strict(v4("10.0.1.1")),
                    Hop::strict(v4("10.14.0.4")),
                    Hop::loose(v4("10.34.0.3")),
                ],
                current: 1,
            },
            flowspec: FlowSpec {
                src: "10.0.1.0/24".parse().unwrap(),
                dst: "0.0.0.0/0".parse().unwrap(),
                sport: PortRange::ANY,
                dport: PortRange::single(6060),
                protocol: Some(17),
            },
            plugins: vec![Plugin {
                hop: 2,
                class: "ENCRYPT".into(),
                config: "k".into(),
            }],
            bandwidth_bps: 1_000_000,
            refresh_ms: 1000,
            auth: [0xab; 32],
        }),
    )
}

#[rustfmt::skip]
static CREATE_BYTES: &[u8] = &[
    // header: version 1, CREATE_PATH, length 142, seq 0x01020304
    0x01, 0x01, 0x00, 0x8e, 0x01, 0x02, 0x03, 0x04,
    // PATH_ID: number 7, IPv4 10.0.1.1
    0x01, 0x00, 0x00, 0x0d, 0x00, 0x00, 0x00, 0x07, 0x01, 10, 0, 1, 1,
    // EXPLICIT_ROUTE: current 1, 3 hops
    0x04, 0x00, 0x00, 0x18, 0x01, 0x03,
    0x00, 0x01, 10, 0, 1, 1,
    0x00, 0x01, 10, 14, 0, 4,
    0x01, 0x01, 10, 34, 0, 3,
    // FLOWSPEC: IPv4, /24, /0, protocol 17, sport any, dport 6060
    0x03, 0x00, 0x00, 0x19, 0x01, 24, 0, 0x01, 17,
    0x00, 0x00, 0xff, 0xff, 0x17, 0xac, 0x17, 0xac,
    10, 0, 1, 0, 0, 0, 0, 0,
    // PLUGIN: hop 2, "ENCRYPT", "k"
    0x05, 0x00, 0x00, 0x10, 0x02, 0x07, 0x00, 0x01,
    b'E', b'N', b'C', b'R', b'Y', b'P', b'T', b'k',
    // RESOURCES: 1,000,000 bit/s
    0x06, 0x00, 0x00, 0x0c, 0, 0, 0, 0, 0x00, 0x0f, 0x42, 0x40,
    // REFRESH: 1000 ms
    0x07, 0x00, 0x00, 0x08, 0x00, 0x00, 0x03, 0xe8,
    // AUTH: 32 × 0xab
    0x08, 0x00, 0x00, 0x24,
    0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab,
    0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab,
];

/// Offset of the first object of `kind` in message `b` (its header).
fn object_at(b: &[u8], kind: u8) -> usize {
    ObjIter::new(b, HEADER_LEN)
        .find_map(|o| o.ok().filter(|(_, k, _)| *k == kind).map(|(at, _, _)| at))
        .unwrap_or_else(|| panic!("no object of kind {kind:#04x}"))
}

/// Offset of the body of the first object of `kind` in message `b`.
fn body_at(b: &[u8], kind: u8) -> usize {
    object_at(b, kind) + OBJECT_HEADER_LEN
}

/// Set the header's length field to the buffer's length (after a test
/// cut or extended a message).
fn fix_length(b: &mut [u8]) {
    let n = b.len() as u16;
    HeaderView::new_unchecked(b).set_length(n);
}

#[test]
fn deconstruct_header() {
    let h = HeaderView::new_checked(CREATE_BYTES).unwrap();
    assert_eq!(h.version(), 1);
    assert_eq!(h.msg_type(), msg::CREATE);
    assert_eq!(h.length() as usize, CREATE_BYTES.len());
    assert_eq!(h.seq(), 0x01020304);
    assert_eq!(h.objects()[0], obj::PATH_ID);
}

#[test]
fn construct_header() {
    let mut buf = [0xa5u8; HEADER_LEN];
    let mut h = HeaderView::new_unchecked(&mut buf[..]);
    h.set_version(1);
    h.set_msg_type(msg::CREATE);
    h.set_length(142);
    h.set_seq(0x01020304);
    assert_eq!(&buf[..], &CREATE_BYTES[..HEADER_LEN]);
}

#[test]
fn create_parse_and_emit() {
    assert_eq!(Message::parse(CREATE_BYTES).unwrap(), create());
    assert_eq!(create().buffer_len().unwrap(), CREATE_BYTES.len());
    let mut buf = [0xa5u8; 200];
    let n = create().emit(&mut buf).unwrap();
    assert_eq!(&buf[..n], CREATE_BYTES);
    assert_eq!(buf[n], 0xa5, "nothing written past the message");
}

#[test]
fn ack_and_commit_bytes() {
    let ack = Message::new(9, Body::Ack).to_bytes().unwrap();
    assert_eq!(ack, [1, 9, 0, 8, 0, 0, 0, 9]);
    let c = Message::new(
        1,
        Body::Commit {
            path: PathId {
                initiator: v4("10.0.1.1"),
                number: 7,
            },
            hop: 6,
            label: 0x12345,
            mtu: None,
        },
    );
    let b = c.to_bytes().unwrap();
    #[rustfmt::skip]
    let want: &[u8] = &[
        1, 2, 0, 34, 0, 0, 0, 1,
        0x01, 0, 0, 13, 0, 0, 0, 7, 1, 10, 0, 1, 1,
        0x02, 0, 0, 5, 6,
        0x0a, 0, 0, 8, 0x00, 0x01, 0x23, 0x45,
    ];
    assert_eq!(b, want);
    assert_eq!(Message::parse(&b).unwrap(), c);

    // With PATH_MTU 1442 (0x05a2).
    let mut c = c;
    if let Body::Commit { mtu, .. } = &mut c.body {
        *mtu = Some(1442);
    }
    let b = c.to_bytes().unwrap();
    let mut want = want.to_vec();
    want.extend_from_slice(&[0x8d, 0, 0, 6, 0x05, 0xa2]);
    fix_length(&mut want);
    assert_eq!(b, want);
    assert_eq!(Message::parse(&b).unwrap(), c);
    // A node that predates PATH_MTU skips it: the kind's top bits say
    // "ignore". Here: a COMMIT carrying another unknown `0b10…` object.
    let mut b2 = want.clone();
    b2[object_at(&want, obj::PATH_MTU) + field::header::KIND] = 0xbd;
    let (m, unknown) = Message::parse_counting(&b2).unwrap();
    assert_eq!(unknown, 1);
    assert!(matches!(m.body, Body::Commit { mtu: None, .. }));
    // PATH_MTU twice, of the wrong length, or in another message.
    let mut twice = want.clone();
    twice.extend_from_slice(&[0x8d, 0, 0, 6, 0x05, 0xa2]);
    fix_length(&mut twice);
    assert!(matches!(
        Message::parse(&twice),
        Err(WireError::DuplicateObject { kind: 0x8d, .. })
    ));
    let mut long = want.clone();
    let mtu = object_at(&long, obj::PATH_MTU);
    long[mtu + field::header::LENGTH.start..mtu + field::header::LENGTH.end].copy_from_slice(&7u16.to_be_bytes());
    long.push(0);
    fix_length(&mut long);
    assert!(matches!(
        Message::parse(&long),
        Err(WireError::BadObjectLength { kind: 0x8d, .. })
    ));
    let mut refresh = Message::new(
        1,
        Body::Refresh {
            path: PathId {
                initiator: v4("10.0.1.1"),
                number: 7,
            },
            hop: 1,
        },
    )
    .to_bytes()
    .unwrap();
    refresh.extend_from_slice(&[0x8d, 0, 0, 6, 0x05, 0xa2]);
    fix_length(&mut refresh);
    assert!(matches!(
        Message::parse(&refresh),
        Err(WireError::UnexpectedObject { kind: 0x8d, .. })
    ));
}

#[test]
fn malformed_header() {
    assert_eq!(Message::parse(&[1, 9, 0, 8]), Err(WireError::Truncated));
    assert_eq!(Message::parse(&[2, 9, 0, 8, 0, 0, 0, 0]), Err(WireError::Version(2)));
    assert_eq!(
        Message::parse(&[1, 99, 0, 8, 0, 0, 0, 0]),
        Err(WireError::UnknownType(99))
    );
    assert_eq!(
        Message::parse(&[1, 9, 0, 9, 0, 0, 0, 0]),
        Err(WireError::BadLength { field: 9, actual: 8 })
    );
}

#[test]
fn malformed_truncated_create() {
    // Every strict prefix fails (the length field no longer matches);
    // with the length fixed up, a cut object is caught.
    for n in 0..CREATE_BYTES.len() {
        assert!(Message::parse(&CREATE_BYTES[..n]).is_err(), "prefix {n}");
        if n >= HEADER_LEN {
            let mut b = CREATE_BYTES[..n].to_vec();
            fix_length(&mut b);
            assert!(Message::parse(&b).is_err(), "fixed-up prefix {n}");
        }
    }
}

#[test]
fn malformed_objects() {
    let with = |extra: &[u8]| {
        let mut b = CREATE_BYTES.to_vec();
        b.extend_from_slice(extra);
        fix_length(&mut b);
        Message::parse_counting(&b)
    };
    let at = CREATE_BYTES.len();
    // Unknown, must understand.
    assert_eq!(with(&[0x30, 0, 0, 4]), Err(WireError::UnknownObject { kind: 0x30, at }));
    // Unknown, ignore silently.
    let (m, n) = with(&[0x80, 0, 0, 5, 1]).unwrap();
    assert_eq!((m.forward.len(), n), (0, 1));
    // Unknown, ignore and pass on.
    let (m, n) = with(&[0xc1, 0, 0, 6, 1, 2]).unwrap();
    assert_eq!(n, 1);
    assert_eq!(
        m.forward,
        vec![RawObject {
            kind: 0xc1,
            body: vec![1, 2]
        }]
    );
    let re = Message::parse(&m.to_bytes().unwrap()).unwrap();
    assert_eq!(re, m);
    // Known but not in a CREATE.
    assert_eq!(
        with(&[obj::LABEL, 0, 0, 8, 0, 0, 0, 1]),
        Err(WireError::UnexpectedObject { kind: obj::LABEL, at })
    );
    // Twice.
    assert_eq!(
        with(&[obj::REFRESH, 0, 0, 8, 0, 0, 0, 1]),
        Err(WireError::DuplicateObject { kind: obj::REFRESH, at })
    );
    // Object length below its header / past the end.
    assert_eq!(with(&[0x80, 0, 0, 3]), Err(WireError::ObjectTruncated { at }));
    assert_eq!(with(&[0x80, 0, 0, 9]), Err(WireError::ObjectTruncated { at }));
    assert_eq!(with(&[0x80, 0]), Err(WireError::ObjectTruncated { at }));
}

#[test]
fn malformed_fields() {
    let patch = |i: usize, v: u8| {
        let mut b = CREATE_BYTES.to_vec();
        b[i] = v;
        Message::parse(&b)
    };
    let path_id = body_at(CREATE_BYTES, obj::PATH_ID);
    let route = body_at(CREATE_BYTES, obj::EXPLICIT_ROUTE);
    let flowspec = body_at(CREATE_BYTES, obj::FLOWSPEC);
    let plugin = body_at(CREATE_BYTES, obj::PLUGIN);
    // PATH_ID address family 3.
    assert!(matches!(
        patch(path_id + field::path_id::ADDR, 3),
        Err(WireError::BadAddressFamily { .. })
    ));
    // Current hop 3 of 3.
    assert!(matches!(
        patch(route + field::route::CURRENT, 3),
        Err(WireError::BadHopIndex { .. })
    ));
    // Source prefix /33.
    assert!(matches!(
        patch(flowspec + field::flowspec::SRC_LEN, 33),
        Err(WireError::BadPrefix { .. })
    ));
    // sport lo 0xff00 > hi 0x00ff: patch lo high octet and hi high octet.
    let mut b = CREATE_BYTES.to_vec();
    b[flowspec + field::flowspec::SPORT_LO.start] = 0xff;
    b[flowspec + field::flowspec::SPORT_HI.start] = 0x00;
    assert!(matches!(Message::parse(&b), Err(WireError::BadPortRange { .. })));
    // Plugin at hop 3 of 3.
    assert_eq!(
        patch(plugin + field::plugin::HOP, 3),
        Err(WireError::BadHopIndex { at: 0 })
    );
    // Plugin class not UTF-8.
    assert!(matches!(
        patch(plugin + field::plugin::CLASS, 0xff),
        Err(WireError::BadText { .. })
    ));
    // Refresh 0.
    let mut b = CREATE_BYTES.to_vec();
    let refresh = body_at(CREATE_BYTES, obj::REFRESH);
    b[refresh..refresh + 4].copy_from_slice(&0u32.to_be_bytes());
    assert!(matches!(Message::parse(&b), Err(WireError::BadRefresh { .. })));
    // A label above 20 bits.
    let mut b = Message::new(
        1,
        Body::Commit {
            path: PathId {
                initiator: v4("10.0.1.1"),
                number: 7,
            },
            hop: 6,
            label: 1,
            mtu: None,
        },
    )
    .to_bytes()
    .unwrap();
    // The label's top octet: 0x10000001.
    let label = object_at(&b, obj::LABEL);
    b[label + OBJECT_HEADER_LEN] = 0x10;
    assert!(matches!(Message::parse(&b), Err(WireError::BadLabel { .. })));
    // A COMMIT without its LABEL (the last object).
    b.truncate(label);
    fix_length(&mut b);
    assert_eq!(Message::parse(&b), Err(WireError::MissingObject { kind: obj::LABEL }));
}

#[test]
fn peek_reads_what_it_can() {
    let mut b = CREATE_BYTES.to_vec();
    b.extend_from_slice(&[0x30, 0, 0, 4]);
    fix_length(&mut b);
    assert!(Message::parse(&b).is_err());
    let p = peek(&b).unwrap();
    assert_eq!(p.msg_type, msg::CREATE);
    assert_eq!(p.seq, 0x01020304);
    assert_eq!(p.hop, Some(1));
    assert_eq!(p.path.unwrap().number, 7);
    assert_eq!(peek(&b[..HEADER_LEN - 1]), None);
}

#[test]
fn path_id_text() {
    let p: PathId = "7@2001:db8::1".parse().unwrap();
    assert_eq!(p.number, 7);
    assert_eq!(p.to_string(), "7@2001:db8::1");
    assert!("x@1.2.3.4".parse::<PathId>().is_err());
    assert!("7".parse::<PathId>().is_err());
}

// ----- property tests ------------------------------------------------------

fn arb_addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        any::<[u8; 16]>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
    ]
}

fn arb_path() -> impl Strategy<Value = PathId> {
    (arb_addr(), any::<u32>()).prop_map(|(initiator, number)| PathId { initiator, number })
}

fn arb_range() -> impl Strategy<Value = PortRange> {
    (any::<u16>(), any::<u16>()).prop_map(|(a, b)| PortRange {
        lo: a.min(b),
        hi: a.max(b),
    })
}

fn arb_flowspec() -> impl Strategy<Value = FlowSpec> {
    (
        any::<bool>(),
        any::<[u8; 16]>(),
        any::<[u8; 16]>(),
        0u8..=128,
        0u8..=128,
        arb_range(),
        arb_range(),
        proptest::option::of(any::<u8>()),
    )
        .prop_map(|(v6, s, d, sp, dp, sport, dport, protocol)| {
            let net = |a: [u8; 16], p: u8| {
                if v6 {
                    IpNet::new(IpAddr::V6(Ipv6Addr::from(a)), p).unwrap()
                } else {
                    IpNet::new(IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])), p % 33).unwrap()
                }
            };
            FlowSpec {
                src: net(s, sp),
                dst: net(d, dp),
                sport,
                dport,
                protocol,
            }
        })
}

fn arb_reason() -> impl Strategy<Value = Reason> {
    any::<u8>().prop_map(Reason::from_code)
}

fn arb_error() -> impl Strategy<Value = HopError> {
    (any::<u8>(), arb_addr(), arb_reason(), ".{0,20}").prop_map(|(hop, address, reason, text)| HopError {
        hop,
        address,
        reason,
        text,
    })
}

fn arb_record() -> impl Strategy<Value = StatusRecord> {
    (any::<u8>(), arb_addr(), ".{0,40}").prop_map(|(hop, address, status)| StatusRecord { hop, address, status })
}

fn arb_create() -> impl Strategy<Value = Create> {
    (
        arb_path(),
        proptest::collection::vec((arb_addr(), any::<bool>()), 1..20),
        any::<u8>(),
        arb_flowspec(),
        proptest::collection::vec((any::<u8>(), "[A-Z]{1,12}", ".{0,30}"), 0..4),
        any::<u64>(),
        1u32..,
        any::<[u8; 32]>(),
    )
        .prop_map(
            |(path, hops, cur, flowspec, plugins, bandwidth_bps, refresh_ms, auth)| {
                let n = hops.len();
                Create {
                    path,
                    route: ExplicitRoute {
                        hops: hops.into_iter().map(|(addr, loose)| Hop { addr, loose }).collect(),
                        current: (cur as usize % n) as u8,
                    },
                    flowspec,
                    plugins: plugins
                        .into_iter()
                        .map(|(h, class, config)| Plugin {
                            hop: (h as usize % n) as u8,
                            class,
                            config,
                        })
                        .collect(),
                    bandwidth_bps,
                    refresh_ms,
                    auth,
                }
            },
        )
}

fn arb_body() -> impl Strategy<Value = Body> {
    prop_oneof![
        arb_create().prop_map(Body::Create),
        (
            arb_path(),
            any::<u8>(),
            0..=MAX_LABEL,
            proptest::option::of(any::<u16>())
        )
            .prop_map(|(path, hop, label, mtu)| Body::Commit { path, hop, label, mtu }),
        (arb_path(), any::<u8>(), arb_error()).prop_map(|(path, hop, error)| Body::Refuse { path, hop, error }),
        (arb_path(), any::<u8>(), arb_error()).prop_map(|(path, hop, error)| Body::PathDown { path, hop, error }),
        (arb_path(), any::<u8>(), any::<[u8; 16]>()).prop_map(|(path, hop, secret)| Body::Release {
            path,
            hop,
            secret
        }),
        (arb_path(), any::<u8>()).prop_map(|(path, hop)| Body::Refresh { path, hop }),
        (arb_path(), any::<u8>(), proptest::collection::vec(arb_record(), 0..5))
            .prop_map(|(path, hop, records)| Body::StatusRequest { path, hop, records }),
        (
            arb_path(),
            any::<u8>(),
            proptest::collection::vec(arb_record(), 0..5),
            proptest::option::of(arb_error())
        )
            .prop_map(|(path, hop, records, error)| Body::StatusReply {
                path,
                hop,
                records,
                error
            }),
        Just(Body::Ack),
    ]
}

fn arb_message() -> impl Strategy<Value = Message> {
    (
        any::<u32>(),
        arb_body(),
        proptest::collection::vec((0xc0u8.., proptest::collection::vec(any::<u8>(), 0..8)), 0..3),
    )
        .prop_map(|(seq, body, fwd)| Message {
            seq,
            body,
            forward: fwd.into_iter().map(|(kind, body)| RawObject { kind, body }).collect(),
        })
}

proptest! {
    #[test]
    fn round_trip(m in arb_message()) {
        let b = m.to_bytes().unwrap();
        prop_assert_eq!(b.len(), m.buffer_len().unwrap());
        prop_assert_eq!(Message::parse(&b).unwrap(), m);
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(m) = Message::parse(&b) {
            // What parses re-encodes to the same bytes (the encoding is
            // canonical up to object order and ignored objects).
            let again = Message::parse(&m.to_bytes().unwrap()).unwrap();
            prop_assert_eq!(again, m);
        }
        let _ = peek(&b);
    }

    #[test]
    fn mutated_create_never_panics(i in 0..CREATE_BYTES.len(), v in any::<u8>(), cut in 0..CREATE_BYTES.len()) {
        let mut b = CREATE_BYTES.to_vec();
        b[i] = v;
        let _ = Message::parse(&b);
        b.truncate(cut.max(HEADER_LEN));
        fix_length(&mut b);
        let _ = Message::parse(&b);
        let _ = peek(&b);
    }
}
