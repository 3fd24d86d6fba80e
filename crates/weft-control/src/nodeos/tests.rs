//! Requests from several principals against one node.

use super::api::{handle, Caller};
use super::*;
use crate::auth::Right;
use weft_dataplane::PortConfig;
use weft_nodeos::{ApiError, Call, Code, CutChanSpec, DemuxKey, DomainSpec, InChanSpec, OutChanSpec, Reply};

fn rig(name: &str) -> (Node, NodeOsService) {
    let mut node = Node::new("t");
    node.add_port(PortConfig {
        name: "if0".into(),
        mac: [2, 0, 0, 0, 0, 1],
        mtu: 1500,
        addrs: vec!["10.0.0.1/24".parse().unwrap()],
    })
    .unwrap();
    let dir = std::env::temp_dir().join(format!("weft-nodeos-unit-{}-{name}", std::process::id()));
    let svc = NodeOsService::start(
        &mut node,
        NodeOsConfig {
            dir,
            node_uid: u32::MAX,
            policy: Arc::new(Policy::default()),
        },
    )
    .unwrap();
    (node, svc)
}

fn principal(name: &str, rights: &[Right], prefixes: Option<&str>) -> Caller {
    let mut p = Principal::operator(name);
    p.rights = rights.iter().copied().collect();
    p.prefixes = prefixes.map(|s| vec![s.parse().unwrap()]);
    Caller {
        principal: Arc::new(p),
        uid: 1000,
    }
}

fn call(s: &mut NodeOsService, n: &mut Node, c: &Caller, call: Call) -> Result<Reply, ApiError> {
    handle(s, n, c, 0, call)
}

fn dom(s: &mut NodeOsService, n: &mut Node, c: &Caller, name: &str) -> u64 {
    match call(
        s,
        n,
        c,
        Call::DomainCreate {
            spec: DomainSpec {
                name: name.into(),
                ..Default::default()
            },
        },
    ) {
        Ok(Reply::Domain { domain }) => domain,
        other => panic!("{other:?}"),
    }
}

fn key(addr: &str) -> DemuxKey {
    DemuxKey {
        proto: "if0/ipv4/udp".into(),
        addr: Some(addr.into()),
        patterns: vec![],
    }
}

#[test]
fn handles_of_another_principals_domain_are_refused() {
    let (mut n, mut s) = rig("handles");
    let alice = principal("alice", &[Right::Filter], None);
    let bob = principal("bob", &[Right::Filter], None);
    let da = dom(&mut s, &mut n, &alice, "alice-d");
    let Ok(Reply::Chan { chan, .. }) = call(
        &mut s,
        &mut n,
        &alice,
        Call::InChanCreate {
            spec: InChanSpec {
                domain: da,
                key: key("dport=9"),
            },
        },
    ) else {
        panic!()
    };
    for c in [
        Call::ChanDestroy { chan },
        Call::ChanStats { chan },
        Call::DomainDestroy { domain: da },
        Call::InChanCreate {
            spec: InChanSpec {
                domain: da,
                key: key("dport=10"),
            },
        },
        Call::OutChanCreate {
            spec: OutChanSpec {
                domain: da,
                bandwidth_bps: None,
                attach: None,
            },
        },
    ] {
        let e = call(&mut s, &mut n, &bob, c.clone()).unwrap_err();
        assert_eq!(e.code, Code::NotYours, "{c:?}: {e}");
    }
    // Bob's own domain cannot borrow Alice's in-channel's interface.
    let db = dom(&mut s, &mut n, &bob, "bob-d");
    let e = call(
        &mut s,
        &mut n,
        &bob,
        Call::OutChanCreate {
            spec: OutChanSpec {
                domain: db,
                bandwidth_bps: None,
                attach: Some(chan),
            },
        },
    )
    .unwrap_err();
    assert_eq!(e.code, Code::NotYours);
    // Bob lists only his own.
    let Ok(Reply::Domains { domains }) = call(&mut s, &mut n, &bob, Call::DomainList) else {
        panic!()
    };
    assert_eq!(domains.iter().map(|d| d.domain).collect::<Vec<_>>(), vec![db]);
    // Alice's channel is still whole.
    assert!(matches!(
        call(&mut s, &mut n, &alice, Call::ChanStats { chan }),
        Ok(Reply::Stats { .. })
    ));
    // Unknown handles are not_found, whoever asks.
    assert_eq!(
        call(&mut s, &mut n, &bob, Call::ChanStats { chan: 9999 })
            .unwrap_err()
            .code,
        Code::NotFound
    );
    assert_eq!(
        call(&mut s, &mut n, &bob, Call::DomainDestroy { domain: u64::MAX })
            .unwrap_err()
            .code,
        Code::NotFound
    );
}

#[test]
fn rights_and_prefixes_are_checked() {
    let (mut n, mut s) = rig("rights");
    let reader = principal("reader", &[Right::Read], None);
    let e = call(
        &mut s,
        &mut n,
        &reader,
        Call::DomainCreate {
            spec: DomainSpec {
                name: "r".into(),
                ..Default::default()
            },
        },
    )
    .unwrap_err();
    assert_eq!(e.code, Code::Refused);
    assert!(e.message.contains("filter"), "{e}");
    let carol = principal("carol", &[Right::Filter], Some("10.9.0.0/16"));
    let d = dom(&mut s, &mut n, &carol, "carol-d");
    let outside = call(
        &mut s,
        &mut n,
        &carol,
        Call::CutChanCreate {
            spec: CutChanSpec {
                domain: d,
                key: key("dst=10.8.0.0/24"),
                bandwidth_bps: None,
                layer_offset: None,
            },
        },
    )
    .unwrap_err();
    assert_eq!(outside.code, Code::Refused);
    let everything = call(
        &mut s,
        &mut n,
        &carol,
        Call::CutChanCreate {
            spec: CutChanSpec {
                domain: d,
                key: key("dport=1"),
                bandwidth_bps: None,
                layer_offset: None,
            },
        },
    )
    .unwrap_err();
    assert_eq!(
        everything.code,
        Code::Refused,
        "no destination: all of IPv4, outside its prefixes"
    );
    assert!(call(
        &mut s,
        &mut n,
        &carol,
        Call::CutChanCreate {
            spec: CutChanSpec {
                domain: d,
                key: key("dst=10.9.1.0/24"),
                bandwidth_bps: None,
                layer_offset: Some(0),
            },
        },
    )
    .is_ok());
}

#[test]
fn a_failed_create_leaves_nothing_behind() {
    let (mut n, mut s) = rig("atomic");
    let op = principal("op", &[Right::All], None);
    let d = dom(&mut s, &mut n, &op, "d");
    let filters = n.filters().len();
    let instances = n.instances().len();
    let e = call(
        &mut s,
        &mut n,
        &op,
        Call::CutChanCreate {
            spec: CutChanSpec {
                domain: d,
                key: DemuxKey {
                    proto: "if0/ipv4/tcp".into(),
                    addr: None,
                    patterns: vec![],
                },
                bandwidth_bps: None,
                layer_offset: Some(3),
            },
        },
    )
    .unwrap_err();
    assert_eq!(e.code, Code::BadSpec);
    assert_eq!(
        (n.filters().len(), n.instances().len(), s.chans()),
        (filters, instances, 0)
    );
}

proptest::proptest! {
    #[test]
    fn fuzz_request_never_panics(s in ".{0,200}") {
        fuzz_request(s.as_bytes());
    }

    #[test]
    fn fuzz_request_near_valid(op in "(domain_create|domain_destroy|in_chan_create|out_chan_create|cut_chan_create|chan_destroy|chan_stats|chan_set_layer)",
                               body in "(,\"domain\":[0-9]|,\"chan\":[0-9]|,\"spec\":\\{\"domain\":[0-2],\"key\":\\{\"proto\":\"(ipv4|if0/ipv4/udp|ipv6/tcp)\"\\}\\}|,\"spec\":\\{\"name\":\"[a-z]{1,3}\"\\}|,\"max_layer\":[0-9])?") {
        let line = format!(r#"{{"id":1,"call":{{"op":"{op}"{body}}}}}"#);
        fuzz_request(line.as_bytes());
    }
}
