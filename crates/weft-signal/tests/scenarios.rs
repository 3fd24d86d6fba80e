//! Signaling scenarios on the simulated line C — R1 — X — R2 — S (R1 and
//! R2 Weft nodes, X a plain router, C and S hosts): SETUP, PROBE, REMOVE,
//! lifetimes and refresh, loss, restarts, TRIGGER, and every refusal.

mod sim;

use sim::*;
use weft_signal::wire::{Message, ResponseMsg};
use weft_signal::*;

const LIMIT: u64 = 60 * SECOND;

#[test]
fn setup_installs_at_each_weft_node_and_the_stack_comes_back_in_path_order() {
    let mut net = Net::standard();
    let n = net.send("C", setup(1, "10.2.0.10", 3600), &provider());
    let (flags, stack) = net.response(LIMIT, n).expect("a response");
    assert_eq!(summary(&stack), ok_at(&["R1", "R2"]));
    // R2 heard nothing downstream (S is a host): it was the last.
    assert_eq!(flags & ResponseMsg::END_TIMEOUT, ResponseMsg::END_TIMEOUT);
    // Each entry says where it came from.
    assert_eq!(stack[0].address, Some(ip("10.1.0.1")));
    assert_eq!(stack[1].address, Some(ip("10.2.0.1")));
    for r in ["R1", "R2"] {
        let env = &net.node(r).env;
        assert_eq!(env.installed.len(), 1, "{r}");
        assert_eq!(env.installed.values().next().unwrap().0, "provider");
        assert!(net.node(r).agent.has_session(SessionId([1; 16])));
    }
    // The plain router only forwarded: the request crossed it (R1 → R2).
    assert!(net
        .delivered
        .iter()
        .any(|(_, d)| d.from_node == "R1" && d.to_node == "R2" && d.kind() == "REQUEST"));
    // R2 recorded R1 as the flow's upstream peer; R1 recorded C.
    let peers = net.node("R2").agent.peers(net.now);
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].upstream.ip(), ip("10.1.0.1"));
    assert_eq!(net.node("R1").agent.peers(net.now)[0].upstream.ip(), ip("10.1.0.10"));
}

#[test]
fn probe_lists_exactly_the_weft_nodes_with_their_facts() {
    let mut net = Net::standard();
    let n = net.send("C", setup(1, "10.2.0.10", 3600), &provider());
    net.response(LIMIT, n).unwrap();
    let n = net.send("C", probe(1, "10.2.0.10"), &provider());
    let (_, stack) = net.response(LIMIT, n).unwrap();
    assert_eq!(summary(&stack), ok_at(&["R1", "R2"]));
    for e in &stack {
        // The provider's module (with its lifetime left), the node's classes.
        let mine: Vec<_> = e.modules.iter().filter(|m| m.kind.is_some()).collect();
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].name, "netmonitor");
        assert!(mine[0].remaining_s.unwrap() > 3500 && mine[0].remaining_s.unwrap() <= 3600);
        assert!(e.modules.iter().any(|m| m.kind.is_none() && m.name == "counter"));
        assert_eq!(e.capabilities, ["packet-modules"]);
        assert_eq!(e.resources[0].name, "sessions");
        assert_eq!(e.resources[0].free, 7);
    }
    // A stranger's probe: each node refuses it, on the stack.
    let n = net.send("C", probe(2, "10.2.0.10"), &stranger());
    let (_, stack) = net.response(LIMIT, n).unwrap();
    assert_eq!(
        summary(&stack),
        [("R1".into(), Reason::UnknownKey), ("R2".into(), Reason::UnknownKey)]
    );
    assert!(stack.iter().all(|e| e.modules.is_empty()));
}

#[test]
fn remove_takes_the_module_away_and_only_its_key_may() {
    let mut net = Net::standard();
    let n = net.send("C", setup(1, "10.2.0.10", 3600), &provider());
    net.response(LIMIT, n).unwrap();
    // A stranger naming the session owns nothing: not-owner, nothing removed.
    let n = net.send("C", remove(1, "10.2.0.10"), &stranger());
    let (_, stack) = net.response(LIMIT, n).unwrap();
    assert!(stack.iter().all(|e| e.reason == Reason::NotOwner), "{stack:?}");
    assert_eq!(net.node("R1").env.installed.len(), 1);
    let n = net.send("C", remove(1, "10.2.0.10"), &provider());
    let (_, stack) = net.response(LIMIT, n).unwrap();
    assert_eq!(summary(&stack), ok_at(&["R1", "R2"]));
    for r in ["R1", "R2"] {
        assert!(net.node(r).env.installed.is_empty(), "{r}");
        assert_eq!(net.node(r).agent.session_count(), 0);
    }
    // Again: nothing left to remove.
    let n = net.send("C", remove(1, "10.2.0.10"), &provider());
    let (_, stack) = net.response(LIMIT, n).unwrap();
    assert!(stack.iter().all(|e| e.reason == Reason::NotFound));
}

#[test]
fn lifetimes_expire_and_refreshes_keep_modules_alive() {
    let mut net = Net::standard();
    let n = net.send("C", setup(1, "10.2.0.10", 30), &provider());
    net.response(LIMIT, n).unwrap();
    // Installed at about 1 ms; the response came after R2's 1.5 s wait.
    net.run_for(27 * SECOND);
    assert_eq!(net.node("R1").env.installed.len(), 1, "alive within its lifetime");
    net.run_for(2 * SECOND);
    for r in ["R1", "R2"] {
        assert!(net.node(r).env.installed.is_empty(), "{r} expired it");
        assert_eq!(net.node(r).agent.counters().expired, 1);
    }
    assert!(net.events.iter().any(|(_, n, e)| n == "R2"
        && matches!(
            e,
            Event::Removed {
                why: Removal::Expired,
                ..
            }
        )));

    // Now keep one refreshed every 10 s: it outlives its 30 s many times.
    let n = net.send("C", setup(2, "10.2.0.10", 30), &provider());
    net.response(LIMIT, n).unwrap();
    let now = net.now;
    net.node_mut("C")
        .agent
        .keep_refreshed(now, SessionId([2; 16]), 10 * SECOND, Box::new(provider()))
        .unwrap();
    net.run_for(120 * SECOND);
    for r in ["R1", "R2"] {
        assert_eq!(net.node(r).env.installed.len(), 1, "{r}");
        assert!(net.node(r).agent.counters().refreshed >= 10, "{r}");
        // One install: a refresh of the same module changes nothing.
        assert_eq!(net.node(r).env.installs, 2);
    }
    net.node_mut("C").agent.stop_refreshing(SessionId([2; 16]));
    net.run_for(31 * SECOND);
    assert!(net.node("R1").env.installed.is_empty());
}

#[test]
fn a_restarted_node_gets_its_module_back_from_the_next_refresh() {
    let mut net = Net::standard();
    let n = net.send("C", setup(1, "10.2.0.10", 60), &provider());
    net.response(LIMIT, n).unwrap();
    let now = net.now;
    net.node_mut("C")
        .agent
        .keep_refreshed(now, SessionId([1; 16]), 20 * SECOND, Box::new(provider()))
        .unwrap();
    net.node_mut("R2").up = false;
    net.restart("R2");
    assert!(net.node("R2").env.installed.is_empty());
    net.run_for(5 * SECOND);
    net.node_mut("R2").up = true;
    // The next refresh (within 20 s) reinstalls it at R2; R1 just refreshes.
    net.run_for(20 * SECOND);
    assert_eq!(net.node("R2").env.installed.len(), 1);
    assert!(net.node("R2").agent.has_session(SessionId([1; 16])));
    assert_eq!(net.node("R1").env.installs, 1);
    let last = net
        .events
        .iter()
        .rev()
        .find_map(|(_, n, e)| match e {
            Event::Response { stack, .. } if n == "C" => Some(stack.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(summary(&last), ok_at(&["R1", "R2"]));
}

#[test]
fn lost_datagrams_are_retransmitted() {
    let mut net = Net::standard();
    // Lose the first request R1 sends and the first response R2 sends.
    let (mut req, mut resp) = (0, 0);
    net.drop_when(move |d| {
        if d.from_node == "R1" && d.kind() == "REQUEST" {
            req += 1;
            return req == 1;
        }
        if d.from_node == "R2" && d.kind() == "RESPONSE" {
            resp += 1;
            return resp == 1;
        }
        false
    });
    let n = net.send("C", setup(1, "10.2.0.10", 3600), &provider());
    let (_, stack) = net.response(LIMIT, n).unwrap();
    assert_eq!(summary(&stack), ok_at(&["R1", "R2"]));
    assert!(net.dropped.iter().any(|d| d.from_node == "R1" && d.kind() == "REQUEST"));
    assert!(net
        .dropped
        .iter()
        .any(|d| d.from_node == "R2" && d.kind() == "RESPONSE"));
    assert!(net.node("R1").agent.counters().retransmits >= 1);
    assert!(net.node("R2").agent.counters().retransmits >= 1);
    // Installed once each: the retransmission is not a second request.
    assert_eq!(net.node("R2").env.installs, 1);
}

#[test]
fn lost_acks_do_not_install_twice() {
    let mut net = Net::standard();
    let mut n_acks = 0;
    net.drop_when(move |d| {
        if d.from_node == "R2" && d.kind() == "ACK" {
            n_acks += 1;
            return n_acks <= 2;
        }
        false
    });
    let n = net.send("C", setup(1, "10.2.0.10", 3600), &provider());
    let (_, stack) = net.response(LIMIT, n).unwrap();
    assert_eq!(summary(&stack), ok_at(&["R1", "R2"]));
    assert_eq!(net.node("R2").env.installs, 1);
    assert!(net.node("R2").agent.counters().duplicates >= 1);
}

#[test]
fn no_weft_node_on_the_path_gives_an_empty_stack() {
    let mut net = Net::line(&[
        ("C", "10.1.0.10", Role::Host),
        ("X", "10.9.0.1", Role::Router),
        ("S", "10.2.0.10", Role::Host),
    ]);
    let n = net.send("C", probe(1, "10.2.0.10"), &provider());
    let (flags, stack) = net.response(LIMIT, n).unwrap();
    assert!(stack.is_empty());
    assert_eq!(flags, ResponseMsg::END_TIMEOUT);
    // After the whole retransmission span: 100 + 200 + 400 + 800 ms.
    assert_eq!(net.now, 1500 * MS);
}

#[test]
fn a_request_to_a_weft_node_ends_there() {
    let mut net = Net::standard();
    let n = net.send("C", probe(1, "10.2.0.1"), &provider());
    let (flags, stack) = net.response(LIMIT, n).unwrap();
    assert_eq!(summary(&stack), ok_at(&["R1", "R2"]));
    assert_eq!(flags, ResponseMsg::END_DESTINATION);
    // No waiting for a timeout: a few link crossings.
    assert!(net.now < 20 * MS, "{}", net.now);
}

#[test]
fn trigger_from_the_server_installs_at_the_clients_edge() {
    let mut net = Net::standard();
    // S asks toward C; the last Weft node (R1, C's edge) starts the SETUP
    // back toward S: R1 installs first, then R2.
    let now = net.now;
    let s = net.node_mut("S");
    let inner = s.agent.sign(now, setup(5, "10.2.0.10", 3600), &provider()).unwrap();
    let mut t = Request::new(Kind::Trigger, SessionId([5; 16]), ip("10.1.0.10"));
    t.inner = Some(Box::new(inner));
    let n = net.send("S", t, &provider());
    let (_, stack) = net.response(LIMIT, n).unwrap();
    assert_eq!(summary(&stack), ok_at(&["R1", "R2"]));
    assert_eq!(net.node("R1").agent.counters().triggered, 1);
    assert_eq!(net.node("R2").agent.counters().triggered, 0);
    for r in ["R1", "R2"] {
        assert_eq!(net.node(r).env.installed.len(), 1, "{r}");
    }
    // The reverse flow started at R1 from its own address toward S.
    let peers = net.node("R2").agent.peers(net.now);
    assert!(peers
        .iter()
        .any(|p| p.origin == ip("10.1.0.1") && p.dest == ip("10.2.0.10")));
}

#[test]
fn installs_that_take_time_answer_when_done_and_time_out_when_never() {
    let mut net = Net::standard();
    net.node_mut("R2").env.install_delay = 2 * SECOND;
    let n = net.send("C", setup(1, "10.2.0.10", 3600), &provider());
    let (_, stack) = net.response(LIMIT, n).unwrap();
    assert_eq!(summary(&stack), ok_at(&["R1", "R2"]));
    assert_eq!(stack[1].instance, Some(100));
    assert!(net.now >= 2 * SECOND);

    net.node_mut("R1").env.install_delay = SECOND;
    net.node_mut("R1").env.never_finish = true;
    let n = net.send("C", setup(2, "10.2.0.10", 3600), &provider());
    let (_, stack) = net.response(LIMIT, n).unwrap();
    assert_eq!(stack[0].reason, Reason::InstallTimeout);
    assert_eq!(stack[1].reason, Reason::Ok);
    assert!(
        !net.node("R1").env.installed.contains_key(&SessionId([2; 16])),
        "undone"
    );
}

#[test]
fn policy_refusals_are_per_node_and_apply_nothing() {
    let mut net = Net::standard();
    // R2 does not let the provider filter 10.2.0.0/16; R1 does.
    net.node_mut("R2")
        .env
        .principals
        .values_mut()
        .for_each(|p| p.prefixes = vec!["10.1.0.0/16".parse().unwrap()]);
    let n = net.send("C", setup(1, "10.2.0.10", 3600), &provider());
    let (_, stack) = net.response(LIMIT, n).unwrap();
    assert_eq!(
        summary(&stack),
        [("R1".into(), Reason::Ok), ("R2".into(), Reason::Prefix)]
    );
    assert!(net.node("R2").env.installed.is_empty());
    assert_eq!(net.node("R2").agent.session_count(), 0);
    net.node_mut("R2")
        .env
        .principals
        .values_mut()
        .for_each(|p| p.prefixes = vec!["10.0.0.0/8".parse().unwrap()]);
    // Not allowed that module; unknown module; a dependency missing.
    let mut r = setup(2, "10.2.0.10", 3600);
    r.module.as_mut().unwrap().name = "keepalive".into();
    let n = net.send("C", r, &provider());
    let (_, stack) = net.response(LIMIT, n).unwrap();
    assert!(stack.iter().all(|e| e.reason == Reason::ModuleNotAllowed), "{stack:?}");
    for e in net.nodes.iter_mut().filter(|n| n.role == Role::Weft) {
        e.env
            .principals
            .values_mut()
            .for_each(|p| p.modules.push("keepalive".into()));
    }
    let mut r = setup(3, "10.2.0.10", 3600);
    r.module.as_mut().unwrap().name = "keepalive".into();
    let n = net.send("C", r, &provider());
    let (_, stack) = net.response(LIMIT, n).unwrap();
    assert_eq!(stack[0].reason, Reason::UnknownModule);
    let mut r = setup(4, "10.2.0.10", 3600);
    r.dependencies = vec!["xcache".into()];
    let n = net.send("C", r, &provider());
    let (_, stack) = net.response(LIMIT, n).unwrap();
    assert!(stack.iter().all(|e| e.reason == Reason::MissingDependency));
    assert!(stack[0].text.contains("xcache"));
    // The per-principal limit (the fake's accounts): 8 sessions.
    net.node_mut("R1")
        .env
        .principals
        .values_mut()
        .for_each(|p| p.max_sessions = 1);
    let n = net.send("C", setup(6, "10.2.0.10", 3600), &provider());
    let (_, stack) = net.response(LIMIT, n).unwrap();
    assert_eq!(stack[0].reason, Reason::Resources);
}

#[test]
fn lifetimes_of_zero_or_beyond_the_limit_are_refused() {
    let mut net = Net::standard();
    for (s, l) in [(1, 0), (2, 86_401), (3, u32::MAX)] {
        let n = net.send("C", setup(s, "10.2.0.10", l), &provider());
        let (_, stack) = net.response(LIMIT, n).unwrap();
        assert!(stack.iter().all(|e| e.reason == Reason::BadLifetime), "{l}: {stack:?}");
        assert!(stack[0].text.contains("1 to 86400 s"));
    }
    assert!(net.node("R1").env.installed.is_empty());
}

#[test]
fn sessions_are_owned_and_hold_one_module() {
    let mut net = Net::standard();
    let n = net.send("C", setup(1, "10.2.0.10", 3600), &provider());
    net.response(LIMIT, n).unwrap();
    let mut r = setup(1, "10.2.0.10", 3600);
    r.module.as_mut().unwrap().name = "counter-plugin".into();
    r.module.as_mut().unwrap().version = "0.1".into();
    r.code.as_mut().unwrap().sha256 = [0x22; 32];
    let n = net.send("C", r, &provider());
    let (_, stack) = net.response(LIMIT, n).unwrap();
    assert!(stack.iter().all(|e| e.reason == Reason::SessionConflict), "{stack:?}");
    // Another key cannot refresh someone else's session.
    for e in net.nodes.iter_mut().filter(|n| n.role == Role::Weft) {
        let p = FakePrincipal {
            name: "other".into(),
            modules: vec!["netmonitor".into()],
            prefixes: vec!["10.0.0.0/8".parse().unwrap()],
            max_sessions: 8,
        };
        e.env.principals.insert(Signer::public_key(&stranger()), p);
    }
    let n = net.send("C", setup(1, "10.2.0.10", 3600), &stranger());
    let (_, stack) = net.response(LIMIT, n).unwrap();
    assert!(stack.iter().all(|e| e.reason == Reason::NotOwner));
}

/// A signed SETUP with its bytes changed by `edit` after signing.
fn tampered(net: &mut Net, edit: impl Fn(&mut Request)) -> Signed {
    let now = net.now;
    let s = net
        .node_mut("C")
        .agent
        .sign(now, setup(1, "10.2.0.10", 3600), &provider())
        .unwrap();
    let mut r = s.request().clone();
    edit(&mut r);
    // Re-encode with the old signature: the bytes no longer match it.
    let mut b = r.encode().unwrap();
    b.extend_from_slice(&s.signature());
    Signed::parse(&b).unwrap()
}

#[test]
fn bad_signatures_stale_times_and_replays_stop_at_the_first_node() {
    let mut net = Net::standard();
    // A changed lifetime under the old signature.
    let s = tampered(&mut net, |r| r.lifetime_s = Some(86_000));
    net.send_signed("C", s.clone());
    let (_, stack) = net.response(LIMIT, s.request().nonce).unwrap();
    assert_eq!(summary(&stack), [("R1".into(), Reason::BadSignature)]);
    assert_eq!(net.node("R2").agent.counters().received, 0, "R2 never saw it");
    assert!(net.node("R1").env.installed.is_empty());

    // Signed 10 minutes ago.
    let mut r = setup(2, "10.2.0.10", 3600);
    r.time = EPOCH_S - 600;
    r.nonce = [9; 16];
    let s = Signed::sign(r, &provider()).unwrap();
    net.send_signed("C", s.clone());
    let (_, stack) = net.response(LIMIT, s.request().nonce).unwrap();
    assert_eq!(summary(&stack), [("R1".into(), Reason::Stale)]);
    assert!(stack[0].text.contains("300 s"));

    // A good one, then the same bytes again in a new datagram.
    let now = net.now;
    let s = net
        .node_mut("C")
        .agent
        .sign(now, setup(3, "10.2.0.10", 3600), &provider())
        .unwrap();
    net.send_signed("C", s.clone());
    let (_, stack) = net.response(LIMIT, s.request().nonce).unwrap();
    assert_eq!(summary(&stack), ok_at(&["R1", "R2"]));
    net.send_signed("C", s.clone());
    let (_, stack) = net.response(LIMIT, s.request().nonce).unwrap();
    assert_eq!(summary(&stack), [("R1".into(), Reason::Replayed)]);
    assert_eq!(net.node("R1").agent.counters().refused_of(Reason::Replayed), 1);
}

#[test]
fn malformed_datagrams_are_counted_and_answered_when_possible() {
    let mut net = Net::standard();
    let now = net.now;
    let s = net
        .node_mut("C")
        .agent
        .sign(now, probe(1, "10.2.0.10"), &provider())
        .unwrap();
    let m = Message {
        seq: 77,
        body: wire::Body::Request(wire::RequestMsg {
            hops: 16,
            flags: 0,
            origin: ip("10.1.0.10"),
            signed: s.clone(),
        }),
    };
    let good = m.to_bytes().unwrap();
    // Garbage, a cut header, a wrong magic: counted, nothing else.
    net.inject("C", "10.2.0.10", b"WFSG\x01\x01garbage".to_vec());
    net.inject("C", "10.2.0.10", good[..11].to_vec());
    net.run_for(SECOND);
    let c = net.node("R1").agent.counters();
    assert_eq!(c.malformed_total(), 2, "{:?}", c.malformed);
    assert_eq!(net.node("R2").agent.counters().received, 0);
    // A request whose fields do not parse but whose fixed part does: R1
    // answers bad-message to the sender, which can match it.
    let mut bad = good.clone();
    let fields_at = 20 + 76;
    bad[fields_at] = 0x40;
    net.inject("C", "10.2.0.10", bad);
    net.run_for(SECOND);
    let resp = net
        .delivered
        .iter()
        .find(|(_, d)| d.from_node == "R1" && d.to_node == "C" && d.kind() == "RESPONSE")
        .expect("R1 answered");
    let Ok(Message {
        body: wire::Body::Response(r),
        ..
    }) = Message::parse(&resp.1.payload)
    else {
        panic!()
    };
    assert_eq!(r.nonce, s.request().nonce);
    assert_eq!(r.stack[0].reason, Reason::BadMessage);
    assert!(r.stack[0].text.contains("unknown field"), "{}", r.stack[0].text);
    assert_eq!(net.node("R1").agent.counters().malformed_total(), 3);
}

#[test]
fn probe_floods_are_rate_limited_per_origin() {
    let mut net = Net::standard();
    let now = net.now;
    let mut nonces = Vec::new();
    for _ in 0..100 {
        let s = net
            .node_mut("C")
            .agent
            .sign(now, probe(1, "10.2.0.10"), &provider())
            .unwrap();
        nonces.push(s.request().nonce);
        let m = Message {
            seq: nonces.len() as u32,
            body: wire::Body::Request(wire::RequestMsg {
                hops: 16,
                flags: 0,
                origin: ip("10.1.0.10"),
                signed: s,
            }),
        };
        net.inject("C", "10.2.0.10", m.to_bytes().unwrap());
    }
    net.run_for(100 * MS);
    let c = net.node("R1").agent.counters();
    // The burst (20) got through, the rest was dropped unacknowledged.
    assert_eq!(c.rate_limited, 80);
    assert_eq!(c.requests.get("probe").copied(), Some(20));
    // Another origin is not held back by the flood.
    let n = net.send("S", probe(2, "10.1.0.10"), &provider());
    let (_, stack) = net.response(LIMIT, n).unwrap();
    assert_eq!(summary(&stack), ok_at(&["R2", "R1"]));
    // Over time the flooding origin is served again.
    net.run_for(5 * SECOND);
    let n = net.send("C", probe(3, "10.2.0.10"), &provider());
    assert!(net.response(LIMIT, n).is_some());
}

#[test]
fn a_node_that_acknowledges_and_never_answers_is_reported() {
    let mut net = Net::standard();
    // R2's responses never make it back.
    net.drop_when(|d| d.from_node == "R2" && d.kind() == "RESPONSE");
    let n = net.send("C", probe(1, "10.2.0.10"), &provider());
    let (_, stack) = net.response(5 * 60 * SECOND, n).expect("R1 answers anyway");
    assert_eq!(
        summary(&stack),
        [("R1".into(), Reason::Ok), (String::new(), Reason::DownstreamTimeout)]
    );
    assert_eq!(stack[1].address, Some(ip("10.2.0.1")));
    assert_eq!(net.node("R1").agent.counters().downstream_timeouts, 1);
}
