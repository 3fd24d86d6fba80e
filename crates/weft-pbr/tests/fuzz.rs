//! `fuzz_message` (the fuzz target's body) as a property test: arbitrary
//! bytes, and valid messages of every type with bytes changed, cut or
//! appended, never panic a parser or an agent.

use proptest::prelude::*;
use std::net::IpAddr;
use weft_pbr::wire::{Body, Create, ExplicitRoute, Message};
use weft_pbr::{fuzz_message, FlowSpec, Hop, HopError, PathId, Plugin, Reason, StatusRecord};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// One valid message of each type, addressed like the agent inside
/// `fuzz_message` expects (path 1@10.0.0.1, this node hop 1 of 3).
fn seeds() -> Vec<Vec<u8>> {
    let path = PathId {
        initiator: ip("10.0.0.1"),
        number: 1,
    };
    let error = HopError {
        hop: 2,
        address: ip("10.0.0.3"),
        reason: Reason::Timeout,
        text: "x".into(),
    };
    let records = vec![StatusRecord {
        hop: 2,
        address: ip("10.0.0.3"),
        status: "{}".into(),
    }];
    let bodies = vec![
        Body::Create(Create {
            path: PathId { number: 2, ..path },
            route: ExplicitRoute {
                hops: vec![
                    Hop::strict(ip("10.0.0.1")),
                    Hop::strict(ip("10.0.0.2")),
                    Hop::loose(ip("10.0.0.3")),
                ],
                current: 1,
            },
            flowspec: FlowSpec::any_v4(),
            plugins: vec![Plugin {
                hop: 1,
                class: "COUNT".into(),
                config: "".into(),
            }],
            bandwidth_bps: 5,
            refresh_ms: 100,
            auth: [0; 32],
        }),
        Body::Commit {
            path,
            hop: 2,
            label: 17,
            mtu: Some(1442),
        },
        Body::Refuse {
            path,
            hop: 2,
            error: error.clone(),
        },
        Body::PathDown {
            path,
            hop: 2,
            error: error.clone(),
        },
        Body::Release {
            path,
            hop: 1,
            secret: [0; 16],
        },
        Body::Refresh { path, hop: 1 },
        Body::StatusRequest {
            path,
            hop: 1,
            records: records.clone(),
        },
        Body::StatusReply {
            path,
            hop: 2,
            records,
            error: Some(error),
        },
        Body::Ack,
    ];
    bodies
        .into_iter()
        .enumerate()
        .map(|(i, b)| Message::new(100 + i as u32, b).to_bytes().unwrap())
        .collect()
}

#[test]
fn seeds_are_accepted() {
    for s in seeds() {
        Message::parse(&s).unwrap();
        fuzz_message(&s);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes(b in proptest::collection::vec(any::<u8>(), 0..200)) {
        fuzz_message(&b);
    }

    #[test]
    fn mutated_messages(
        which in 0usize..9,
        edits in proptest::collection::vec((any::<u16>(), any::<u8>()), 0..4),
        cut in any::<u16>(),
        tail in proptest::collection::vec(any::<u8>(), 0..12),
        fix_len in any::<bool>(),
    ) {
        let mut b = seeds()[which].clone();
        for (i, v) in edits {
            let n = b.len();
            b[i as usize % n] = v;
        }
        b.truncate(8.max(cut as usize % (b.len() + 1)));
        b.extend_from_slice(&tail);
        if fix_len && b.len() >= 4 {
            let n = b.len() as u16;
            weft_pbr::wire::HeaderView::new_unchecked(&mut b[..]).set_length(n);
        }
        fuzz_message(&b);
    }
}
