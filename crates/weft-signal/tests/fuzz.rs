//! The fuzz targets' bodies (`fuzz_message`, `fuzz_request`) as property
//! tests: arbitrary bytes, and valid messages of every type with bytes
//! changed, cut or appended, never panic a parser or an agent.

use proptest::prelude::*;
use std::net::IpAddr;
use weft_signal::wire::{Body, Message, RequestMsg, ResponseMsg};
use weft_signal::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// One valid message of each type, and each kind of request.
fn seeds() -> Vec<Vec<u8>> {
    let k = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
    let s = SessionId([9; 16]);
    let mut setup = Request::new(Kind::Setup, s, ip("10.0.0.4"));
    setup.module = Some(Module {
        kind: ModuleKind::Packet,
        name: "netmonitor".into(),
        version: "1.0".into(),
    });
    setup.code = Some(Code {
        url: "http://10.0.0.9:8000".into(),
        sha256: [1; 32],
    });
    setup.filter = Some(Filter {
        proto: Some(17),
        dports: (5060, 5060),
        dst: Some("10.0.0.0/8".parse().unwrap()),
    });
    setup.lifetime_s = Some(60);
    setup.dependencies = vec!["counter".into()];
    setup.time = 0;
    let mut probe = Request::new(Kind::Probe, s, ip("10.0.0.4"));
    probe.probe = Some(Probe::ALL);
    let remove = Request::new(Kind::Remove, s, ip("10.0.0.4"));
    let mut trigger = Request::new(Kind::Trigger, s, ip("10.0.0.1"));
    trigger.inner = Some(Box::new(Signed::sign(setup.clone(), &k).unwrap()));
    let mut out = Vec::new();
    for (i, r) in [setup, probe, remove, trigger].into_iter().enumerate() {
        let signed = Signed::sign(r, &k).unwrap();
        out.push(signed.as_bytes().to_vec());
        let m = Message {
            seq: i as u32,
            body: Body::Request(RequestMsg {
                hops: 16,
                flags: 0,
                origin: ip("10.0.0.1"),
                signed: signed.clone(),
            }),
        };
        out.push(m.to_bytes().unwrap());
        let mut e = Entry::new("R3", Some(ip("10.0.0.3")), Reason::Ok, "");
        e.instance = Some(3);
        let r = Message {
            seq: 100 + i as u32,
            body: Body::Response(ResponseMsg {
                session: s,
                nonce: signed.request().nonce,
                kind: signed.request().kind,
                flags: ResponseMsg::END_TIMEOUT,
                stack: vec![e],
            }),
        };
        out.push(r.to_bytes().unwrap());
    }
    out.push(
        Message {
            seq: 1,
            body: Body::Ack,
        }
        .to_bytes()
        .unwrap(),
    );
    out
}

#[test]
fn seeds_pass_both_targets() {
    for s in seeds() {
        fuzz_message(&s);
        fuzz_request(&s);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_bytes(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        fuzz_message(&data);
        fuzz_request(&data);
    }

    #[test]
    fn mutated_seeds(which in 0usize..13, edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
                     cut in any::<Option<usize>>(), tail in proptest::collection::vec(any::<u8>(), 0..8)) {
        let seeds = seeds();
        let mut b = seeds[which % seeds.len()].clone();
        for (at, v) in edits {
            if !b.is_empty() {
                let i = at % b.len();
                b[i] = v;
            }
        }
        if let Some(c) = cut {
            if !b.is_empty() {
                b.truncate(c % b.len());
            }
        }
        b.extend(tail);
        fuzz_message(&b);
        fuzz_request(&b);
    }
}
