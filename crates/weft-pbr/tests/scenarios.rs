//! PBR scenarios on the simulated network: setup, refusal, release,
//! soft state, dead nodes, loss, revisits, hop limits, status, bad input.

mod sim;

use sim::*;
use weft_pbr::wire::{msg, Body, Message};
use weft_pbr::{Event, OutLabel, PathId, PbrError, Phase, Reason, Refusal, VisitKey};

const REFRESH_MS: u32 = 1000;

fn is_up(path: PathId) -> impl Fn(&str, &Event) -> bool {
    move |_, e| matches!(e, Event::PathUp { path: p } if *p == path)
}

/// Set up the figure-2 walk with ENCRYPT at R3 (hop 2) and DECRYPT at R8
/// (hop 5); returns the net and the path once up.
fn fig2_up() -> (Net, PathId) {
    let mut net = fig2();
    let id = net
        .create(
            "R1",
            &FIG2_WALK,
            &[(2, "ENCRYPT"), (5, "DECRYPT")],
            1_000_000,
            REFRESH_MS,
        )
        .unwrap();
    assert!(net.run_until_event(5_000, is_up(id)).is_some(), "path comes up");
    (net, id)
}

/// Every committed visit of `id`, in hop order, with the node holding it.
fn installs(net: &Net, id: PathId) -> Vec<(u8, String, sim::Installed)> {
    let mut v: Vec<(u8, String, sim::Installed)> = net
        .nodes
        .iter()
        .flat_map(|n| {
            n.env
                .committed
                .iter()
                .filter(|(k, _)| k.path == id)
                .map(|(k, i)| (k.hop, n.env.name.clone(), i.clone()))
        })
        .collect();
    v.sort_by_key(|x| x.0);
    v
}

#[test]
fn figure_2_walk_comes_up_with_consistent_labels() {
    let (net, id) = fig2_up();
    let ins = installs(&net, id);
    let nodes: Vec<&str> = ins.iter().map(|x| x.1.as_str()).collect();
    assert_eq!(nodes, ["R1", "R4", "R3", "R4", "R7", "R8", "R7"]);
    assert_eq!(ins.iter().map(|x| x.0).collect::<Vec<_>>(), (0..7).collect::<Vec<u8>>());
    // Each visit's out label is the next visit's in label; the first has no
    // in label (it classifies), the last pops.
    for w in ins.windows(2) {
        assert_eq!(
            w[0].2.out,
            OutLabel::Label(w[1].2.in_label.unwrap()),
            "{} → {}",
            w[0].0,
            w[1].0
        );
    }
    assert_eq!(ins[0].2.in_label, None);
    assert!(ins[0].2.first && !ins[0].2.last);
    assert_eq!(ins[6].2.out, OutLabel::Pop);
    assert!(ins[6].2.last);
    // Plugins where asked, nowhere else.
    assert_eq!(ins[2].2.plugins, ["ENCRYPT"]);
    assert_eq!(ins[5].2.plugins, ["DECRYPT"]);
    assert_eq!(ins.iter().filter(|x| !x.2.plugins.is_empty()).count(), 2);
    // Committed exactly once each; R4 and R7 hold two visits each, with
    // different in labels.
    for n in &net.nodes {
        assert!(n.env.commit_count.values().all(|&c| c == 1), "{}", n.env.name);
    }
    assert_eq!(net.node("R4").agent.visit_count(), 2);
    assert_eq!(net.node("R7").agent.visit_count(), 2);
    assert_ne!(ins[1].2.in_label, ins[3].2.in_label);
    // Nothing else anywhere.
    assert_eq!(net.live_state(), (7, 7));
    // Exactly one PathUp, at the initiator.
    let ups: Vec<_> = net
        .events
        .iter()
        .filter(|e| matches!(e.2, Event::PathUp { .. }))
        .collect();
    assert_eq!(ups.len(), 1);
    assert_eq!(ups[0].0, "R1");
    // The agents' own view agrees.
    let ls = net.node("R1").agent.paths();
    assert_eq!(ls.len(), 1);
    assert!(ls[0].initiator);
    assert_eq!(ls[0].phase, Phase::Committed);
    assert_eq!(ls[0].hop_count, 7);
    assert_eq!(ls[0].out_label, ins[1].2.in_label);
}

#[test]
fn commits_run_upstream_from_the_last_visit() {
    let mut net = fig2();
    let id = net.create("R1", &FIG2_WALK, &[], 0, REFRESH_MS).unwrap();
    // Phase 1 reaches the last visit before anything is installed.
    let mut saw_all_reserved = false;
    while !net.events.iter().any(|e| matches!(e.2, Event::PathUp { .. })) {
        let reserved: usize = net.nodes.iter().map(|n| n.env.reserved.len()).sum();
        let committed: usize = net.nodes.iter().map(|n| n.env.committed.len()).sum();
        if reserved == 7 && committed == 1 {
            // Only the last visit has committed.
            assert!(net
                .node("R7")
                .env
                .committed
                .contains_key(&VisitKey { path: id, hop: 6 }));
            saw_all_reserved = true;
        }
        assert!(net.step());
    }
    assert!(saw_all_reserved);
    // PathUp only once every visit is installed.
    assert_eq!(installs(&net, id).len(), 7);
}

fn assert_nothing_left(net: &Net) {
    assert_eq!(net.live_state(), (0, 0), "no visits, reservations or installs left");
    for n in &net.nodes {
        assert_eq!(n.env.bandwidth_left, 1_000_000_000, "{} bandwidth returned", n.env.name);
    }
}

#[test]
fn refusal_for_bandwidth_in_the_middle() {
    let mut net = fig2();
    net.node_mut("R3").env.bandwidth_left = 10;
    let id = net
        .create("R1", &FIG2_WALK, &[(2, "ENCRYPT")], 1_000_000, REFRESH_MS)
        .unwrap();
    let (node, _, e) = net
        .run_until_event(5_000, |_, e| matches!(e, Event::Refused { .. }))
        .expect("refused");
    assert_eq!(node, "R1");
    assert_eq!(
        e,
        Event::Refused {
            path: id,
            hop: 2,
            address: ip("10.34.0.3"),
            reason: Reason::InsufficientBandwidth,
            text: "1000000 bit/s asked, 10 left".into(),
        }
    );
    net.run_for(100);
    net.node_mut("R3").env.bandwidth_left = 1_000_000_000;
    assert_nothing_left(&net);
    // Upstream visits reserved and released; downstream never saw it.
    assert_eq!(net.node("R1").env.releases, 1);
    assert_eq!(net.node("R4").env.releases, 1);
    assert_eq!(net.node("R8").env.releases, 0);
    assert!(net.nodes.iter().all(|n| n.env.commit_count.is_empty()));
    // And it stays that way.
    net.run_for(10_000);
    assert_eq!(net.live_state(), (0, 0));
}

#[test]
fn refusal_for_unknown_class() {
    let mut net = fig2();
    net.node_mut("R8").env.classes.remove("DECRYPT");
    let id = net
        .create("R1", &FIG2_WALK, &[(2, "ENCRYPT"), (5, "DECRYPT")], 0, REFRESH_MS)
        .unwrap();
    let (_, _, e) = net
        .run_until_event(5_000, |_, e| matches!(e, Event::Refused { .. }))
        .expect("refused");
    match e {
        Event::Refused {
            path,
            hop,
            address,
            reason,
            ..
        } => {
            assert_eq!(
                (path, hop, address, reason),
                (id, 5, ip("10.78.0.8"), Reason::UnknownClass)
            );
        }
        e => panic!("{e:?}"),
    }
    net.run_for(100);
    assert_nothing_left(&net);
    assert_eq!(net.node("R3").agent.counters().refused, 0);
    assert_eq!(net.node("R8").agent.counters().refused, 1);
}

#[test]
fn refusal_not_adjacent_and_local_refusal() {
    let mut net = fig2();
    // R1 → R7 strict: not a neighbour; R1 itself refuses.
    let r = net.create("R1", &["10.0.1.1", "10.47.0.7"], &[], 0, REFRESH_MS);
    match r {
        Err(PbrError::Refused(e)) => assert_eq!((e.hop, e.reason), (0, Reason::NotAdjacent)),
        r => panic!("{r:?}"),
    }
    // R4 → R8 strict in the middle.
    let id = net
        .create("R1", &["10.0.1.1", "10.14.0.4", "10.78.0.8"], &[], 0, REFRESH_MS)
        .unwrap();
    let (_, _, e) = net
        .run_until_event(5_000, |_, e| matches!(e, Event::Refused { .. }))
        .unwrap();
    assert!(matches!(e, Event::Refused { path, hop: 1, reason: Reason::NotAdjacent, .. } if path == id));
    net.run_for(100);
    assert_nothing_left(&net);
}

#[test]
fn loose_segment_crosses_non_neighbours() {
    let mut net = fig2();
    // R1, then loosely to R3 (two links away), strictly to R4, loosely to R8.
    let id = net
        .create(
            "R1",
            &["10.0.1.1", "~10.23.0.3", "10.34.0.4", "~10.78.0.8"],
            &[(1, "COUNT")],
            0,
            REFRESH_MS,
        )
        .unwrap();
    assert!(net.run_until_event(5_000, is_up(id)).is_some());
    let ins = installs(&net, id);
    assert_eq!(
        ins.iter().map(|x| x.1.as_str()).collect::<Vec<_>>(),
        ["R1", "R3", "R4", "R8"]
    );
    let r1 = &net.node("R1").agent.paths()[0];
    assert_eq!(r1.next, Some(ip("10.23.0.3")));
}

#[test]
fn release_removes_everything_and_forgery_is_rejected() {
    let (mut net, id) = fig2_up();
    // Someone on R5 who knows the path id but not the secret.
    let forged = Message::new(
        77,
        Body::Release {
            path: id,
            hop: 1,
            secret: *b"not-the-secret!!",
        },
    )
    .to_bytes()
    .unwrap();
    net.inject(ip("10.45.0.5"), ip("10.14.0.4"), forged.clone());
    net.run_for(50);
    assert_eq!(net.node("R4").agent.counters().forged_release, 1);
    assert_eq!(net.live_state(), (7, 7), "a forged release changes nothing");
    // The initiator's release tears everything down.
    let now = net.now;
    let n = net.node_mut("R1");
    n.agent.release(now, id, &mut n.env).unwrap();
    net.flush();
    assert!(net.events_of("R1").contains(&Event::Released { path: id }));
    net.run_for(100);
    assert_nothing_left(&net);
    // Releasing again is an error, not a panic.
    let n = net.node_mut("R1");
    assert_eq!(n.agent.release(now, id, &mut n.env), Err(PbrError::UnknownPath(id)));
    // A replayed forgery is a duplicate; re-sequenced, it finds nothing.
    net.inject(ip("10.45.0.5"), ip("10.14.0.4"), forged.clone());
    net.run_for(50);
    assert_eq!(net.node("R4").agent.counters().duplicates, 1);
    let mut again = forged;
    let mut h = weft_pbr::wire::HeaderView::new_unchecked(&mut again[..]);
    let seq = h.seq();
    h.set_seq(seq & !0xff | 78); // another sequence number
    net.inject(ip("10.45.0.5"), ip("10.14.0.4"), again);
    net.run_for(50);
    assert_eq!(net.node("R4").agent.counters().unknown_visit, 1);
    assert_eq!(net.node("R4").agent.counters().forged_release, 1);
    // No PATH_DOWN, no refusal: nothing went wrong.
    net.run_for(10_000);
    assert!(!net
        .events
        .iter()
        .any(|e| matches!(e.2, Event::PathDown { .. } | Event::Refused { .. })));
}

#[test]
fn refresh_keeps_state_alive() {
    let (mut net, id) = fig2_up();
    net.run_for(20 * REFRESH_MS as u64);
    assert_eq!(net.live_state(), (7, 7));
    assert!(
        net.sent_of_type(msg::REFRESH) >= 6 * 19,
        "every link carries a refresh per interval"
    );
    assert!(!net.events.iter().any(|e| matches!(e.2, Event::PathDown { .. })));
    assert_eq!(net.node("R4").agent.counters().expired, 0);
    let _ = id;
}

#[test]
fn refresh_stopped_purges_after_three_intervals() {
    let (mut net, id) = fig2_up();
    // Let a few refreshes through, then none at all.
    net.run_for(2 * REFRESH_MS as u64 + REFRESH_MS as u64 / 2);
    net.filter = Some(Box::new(|_, _, p: &[u8]| is_type(p, REFRESH)));
    let last = net
        .log
        .iter()
        .filter(|s| s.msg_type == REFRESH && !s.dropped)
        .map(|s| s.at)
        .max()
        .expect("refreshes flowed");
    // Lifetime is K = 3 intervals after the last refresh: not a moment less…
    net.run_until(last + 3 * REFRESH_MS as u64 - 5);
    assert_eq!(
        net.live_state(),
        (7, 7),
        "state lives 3 intervals after the last refresh"
    );
    // …and then it is gone everywhere downstream.
    net.run_until(last + 3 * REFRESH_MS as u64 + 50);
    for r in ["R3", "R4", "R7", "R8"] {
        assert_eq!(net.node(r).agent.visit_count(), 0, "{r} purged");
        assert_eq!(net.node(r).env.holds(), 0, "{r} released");
    }
    // Each visit timed out on its own (R4 and R7 hold two each).
    assert_eq!(net.node("R4").agent.counters().expired, 2);
    assert_eq!(net.node("R7").agent.counters().expired, 2);
    // The initiator is told: the first hop's PATH_DOWN (timeout) comes
    // before its own refreshes run out of retransmissions.
    let down: Vec<Event> = net
        .events_of("R1")
        .into_iter()
        .filter(|e| matches!(e, Event::PathDown { .. }))
        .collect();
    assert_eq!(down.len(), 1);
    assert!(
        matches!(&down[0], Event::PathDown { path, hop: 1, reason: Reason::Timeout, .. } if *path == id),
        "{down:?}"
    );
    net.run_for(10_000);
    assert_nothing_left(&net);
}

#[test]
fn initiator_that_stops_refreshing_leaves_nothing_behind() {
    let (mut net, _id) = fig2_up();
    net.kill("R1");
    net.run_for(3 * REFRESH_MS as u64 + 100);
    assert_eq!(net.live_state(), (0, 0));
}

#[test]
fn node_dying_mid_path() {
    let (mut net, id) = fig2_up();
    net.kill("R8");
    let (_, t, e) = net
        .run_until_event(20_000, |n, e| n == "R1" && matches!(e, Event::PathDown { .. }))
        .expect("initiator told");
    assert!(
        matches!(e, Event::PathDown { path, hop: 5, address, reason: Reason::NeighbourDown, .. } if path == id && address == ip("10.78.0.8")),
        "{e:?}"
    );
    // Detection: one refresh interval plus the retransmission span.
    assert!(t < 10_000 + net.events.iter().find(|e| e.0 == "R1").unwrap().1);
    // Downstream of R8 (R7's last visit) times out; nothing is left outside R8.
    net.run_for(4 * REFRESH_MS as u64);
    assert_eq!(net.live_state(), (0, 0));
    assert_eq!(net.node("R7").agent.counters().expired, 1);
}

#[test]
fn message_loss_still_converges() {
    for seed in [1u64, 2, 3] {
        let mut net = fig2();
        net.seed(seed);
        net.loss_permille = 200;
        let id = net
            .create("R1", &FIG2_WALK, &[(2, "ENCRYPT"), (5, "DECRYPT")], 0, REFRESH_MS)
            .unwrap();
        assert!(
            net.run_until_event(30_000, is_up(id)).is_some(),
            "seed {seed}: up despite 20% loss"
        );
        let ins = installs(&net, id);
        assert_eq!(ins.len(), 7);
        for w in ins.windows(2) {
            assert_eq!(w[0].2.out, OutLabel::Label(w[1].2.in_label.unwrap()));
        }
        for n in &net.nodes {
            assert!(
                n.env.commit_count.values().all(|&c| c == 1),
                "seed {seed}: committed once"
            );
        }
        let retransmits: u64 = net.nodes.iter().map(|n| n.agent.counters().retransmits).sum();
        let duplicates: u64 = net.nodes.iter().map(|n| n.agent.counters().duplicates).sum();
        assert!(retransmits > 0, "seed {seed}");
        let _ = duplicates;
        // And release still cleans up.
        let now = net.now;
        let n = net.node_mut("R1");
        n.agent.release(now, id, &mut n.env).unwrap();
        net.loss_permille = 0;
        net.run_for(100);
        assert_eq!(net.live_state(), (0, 0), "seed {seed}");
    }
}

fn abc() -> Net {
    let mut net = Net::new();
    net.add_node("A", &["10.0.0.1"]);
    net.add_node("B", &["10.0.0.2", "10.0.1.2"]);
    net.add_node("C", &["10.0.1.3"]);
    net.link("A", "10.0.0.1", "B", "10.0.0.2");
    net.link("B", "10.0.1.2", "C", "10.0.1.3");
    net.finish();
    net
}

#[test]
fn walk_entering_a_node_twice_through_the_same_interface() {
    let mut net = abc();
    let walk = ["10.0.0.1", "10.0.0.2", "10.0.0.1", "10.0.0.2", "10.0.1.3"];
    let id = net
        .create("A", &walk, &[(1, "COUNT"), (3, "COUNT")], 0, REFRESH_MS)
        .unwrap();
    assert!(net.run_until_event(5_000, is_up(id)).is_some());
    let ins = installs(&net, id);
    assert_eq!(
        ins.iter().map(|x| x.1.as_str()).collect::<Vec<_>>(),
        ["A", "B", "A", "B", "C"]
    );
    for w in ins.windows(2) {
        assert_eq!(w[0].2.out, OutLabel::Label(w[1].2.in_label.unwrap()));
    }
    // B's two visits are told apart by their labels, not by interface.
    assert_ne!(ins[1].2.in_label, ins[3].2.in_label);
    assert_eq!(net.node("B").agent.visit_count(), 2);
    assert_eq!(net.node("A").agent.visit_count(), 2);
    // STATUS reaches every visit.
    let now = net.now;
    let n = net.node_mut("A");
    n.agent.request_status(now, id, &mut n.env).unwrap();
    let (_, _, e) = net
        .run_until_event(1_000, |_, e| matches!(e, Event::Status { .. }))
        .unwrap();
    let Event::Status { records, error, .. } = e else {
        unreachable!()
    };
    assert_eq!(error, None);
    assert_eq!(records.iter().map(|r| r.hop).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
    // Release.
    let now = net.now;
    let n = net.node_mut("A");
    n.agent.release(now, id, &mut n.env).unwrap();
    net.run_for(100);
    assert_eq!(net.live_state(), (0, 0));
}

#[test]
fn hop_limit() {
    let mut net = abc();
    // 65 hops: refused by the initiator itself.
    let mut walk: Vec<&str> = (0..65)
        .map(|i| if i % 2 == 0 { "10.0.0.1" } else { "10.0.0.2" })
        .collect();
    assert_eq!(
        net.create("A", &walk, &[], 0, REFRESH_MS),
        Err(PbrError::HopLimit { hops: 65, max: 64 })
    );
    // A hop with a lower limit refuses it with hop-limit.
    net.configure("B", |c| c.max_hops = 4);
    walk.truncate(4);
    walk.push("10.0.1.3");
    let id = net.create("A", &walk, &[], 0, REFRESH_MS).unwrap();
    let (_, _, e) = net
        .run_until_event(5_000, |_, e| matches!(e, Event::Refused { .. }))
        .unwrap();
    assert!(
        matches!(e, Event::Refused { path, hop: 1, reason: Reason::HopLimit, .. } if path == id),
        "{e:?}"
    );
    net.run_for(100);
    assert_eq!(net.live_state(), (0, 0));
}

#[test]
fn status_returns_one_record_per_visit() {
    let (mut net, id) = fig2_up();
    let now = net.now;
    let n = net.node_mut("R1");
    n.agent.request_status(now, id, &mut n.env).unwrap();
    let (_, _, e) = net
        .run_until_event(1_000, |_, e| matches!(e, Event::Status { .. }))
        .unwrap();
    let Event::Status { path, records, error } = e else {
        unreachable!()
    };
    assert_eq!(path, id);
    assert_eq!(error, None);
    assert_eq!(records.len(), 7);
    let nodes: Vec<&str> = records
        .iter()
        .map(|r| r.status["node"]["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["R1", "R4", "R3", "R4", "R7", "R8", "R7"]);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.hop as usize, i);
        assert_eq!(r.address, ip(FIG2_WALK[i]));
        assert_eq!(r.status["phase"], "committed");
    }
    assert_eq!(records[2].status["plugins"][0], "ENCRYPT");
    assert_eq!(records[5].status["node"]["plugins"][0], "DECRYPT");
    assert!(records[6].status["out_label"].is_null(), "the last visit pops");
    // A status request for an unknown path is an error; with a dead hop the
    // reply says where it stopped.
    let n = net.node_mut("R1");
    let bogus = PathId { number: 999, ..id };
    assert_eq!(
        n.agent.request_status(now, bogus, &mut n.env),
        Err(PbrError::UnknownPath(bogus))
    );
    net.kill("R7");
    let now = net.now;
    let n = net.node_mut("R1");
    n.agent.request_status(now, id, &mut n.env).unwrap();
    let (_, _, e) = net
        .run_until_event(10_000, |_, e| {
            matches!(e, Event::Status { .. } | Event::PathDown { .. })
        })
        .unwrap();
    match e {
        Event::Status { records, error, .. } => {
            assert_eq!(records.len(), 4);
            let error = error.unwrap();
            assert_eq!((error.hop, error.reason), (4, Reason::NeighbourDown));
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn refresh_for_unknown_path_is_answered_and_counted() {
    let mut net = fig2();
    let bogus = PathId {
        initiator: ip("10.0.1.1"),
        number: 4242,
    };
    let m = Message::new(5, Body::Refresh { path: bogus, hop: 1 })
        .to_bytes()
        .unwrap();
    net.inject(ip("10.14.0.1"), ip("10.14.0.4"), m);
    net.run_for(10);
    assert_eq!(net.node("R4").agent.counters().unknown_path_refresh, 1);
    // R4 answered with PATH_DOWN (unknown-path), which R1 counts as a
    // message for a visit it does not hold.
    assert_eq!(net.sent_of_type(msg::PATH_DOWN), 1);
    assert_eq!(net.node("R1").agent.counters().unknown_visit, 1);
    assert_eq!(net.live_state(), (0, 0));
}

#[test]
fn a_restarted_hop_makes_the_path_go_down() {
    let (mut net, id) = fig2_up();
    // R3 restarts: same addresses, no state.
    net.configure("R3", |_| {});
    net.node_mut("R3").env.committed.clear();
    net.node_mut("R3").env.reserved.clear();
    let (_, _, e) = net
        .run_until_event(5_000, |n, e| n == "R1" && matches!(e, Event::PathDown { .. }))
        .unwrap();
    assert!(
        matches!(e, Event::PathDown { path, hop: 2, reason: Reason::UnknownPath, .. } if path == id),
        "{e:?}"
    );
    net.run_for(4 * REFRESH_MS as u64);
    assert_eq!(net.live_state(), (0, 0));
}

#[test]
fn commit_failure_refuses_and_downstream_purges() {
    let mut net = fig2();
    net.node_mut("R3").env.fail_commit = Some(Refusal::new(Reason::InstallFailed, "class fetch failed"));
    let id = net.create("R1", &FIG2_WALK, &[(2, "ENCRYPT")], 0, REFRESH_MS).unwrap();
    let (_, _, e) = net
        .run_until_event(5_000, |_, e| matches!(e, Event::Refused { .. }))
        .unwrap();
    assert!(
        matches!(&e, Event::Refused { path, hop: 2, reason: Reason::InstallFailed, text, .. } if *path == id && text == "class fetch failed"),
        "{e:?}"
    );
    net.run_for(100);
    for r in ["R1", "R3"] {
        assert_eq!(net.node(r).env.holds(), 0, "{r}");
    }
    // Hops 3..6 had committed; soft state purges them.
    net.run_for(3 * REFRESH_MS as u64 + 100);
    assert_eq!(net.live_state(), (0, 0));
}

/// R3 fetches ENCRYPT from a code server: its commit waits for the fetch
/// (downstream is committed, nothing goes upstream, the path is not up),
/// then goes on when the class arrives.
#[test]
fn commit_waits_for_a_class_fetch() {
    let mut net = fig2();
    net.node_mut("R3").env.fetching.insert("ENCRYPT".into());
    let id = net
        .create("R1", &FIG2_WALK, &[(2, "ENCRYPT"), (5, "DECRYPT")], 0, REFRESH_MS)
        .unwrap();
    net.run_for(1_500);
    assert!(net.events.iter().all(|e| !is_up(id)(&e.0, &e.2)), "up before the fetch");
    let r3 = net.node("R3");
    assert_eq!(r3.agent.counters().held_commits, 1);
    assert!(r3.env.committed.keys().all(|k| k.hop != 2), "hop 2 committed early");
    // Hops 3..6 committed; 0..2 only reserved.
    let committed: Vec<u8> = installs(&net, id).iter().map(|x| x.0).collect();
    assert_eq!(committed, vec![3, 4, 5, 6]);
    net.node_mut("R3").env.fetching.clear();
    net.resume("R3");
    assert!(net.run_until_event(1_000, is_up(id)).is_some(), "up after the fetch");
    assert_eq!(installs(&net, id).len(), 7);
    // Resuming with nothing held does nothing.
    net.resume("R3");
    assert_eq!(net.node("R3").agent.counters().committed, 1);
}

/// A fetch that fails (say, a bad signature) refuses at that hop; one that
/// never ends times the setup out. Either way nothing is left.
#[test]
fn failed_or_endless_fetch_refuses() {
    let mut net = fig2();
    net.node_mut("R3").env.fetching.insert("ENCRYPT".into());
    let id = net.create("R1", &FIG2_WALK, &[(2, "ENCRYPT")], 0, REFRESH_MS).unwrap();
    net.run_for(200);
    let env = &mut net.node_mut("R3").env;
    env.fetching.clear();
    env.fetch_failed.insert(
        "ENCRYPT".into(),
        Refusal::new(Reason::ClassRejected, "signature does not verify"),
    );
    net.resume("R3");
    let (_, _, e) = net
        .run_until_event(1_000, |_, e| matches!(e, Event::Refused { .. }))
        .unwrap();
    assert!(
        matches!(&e, Event::Refused { path, hop: 2, reason: Reason::ClassRejected, text, .. }
            if *path == id && text == "signature does not verify"),
        "{e:?}"
    );
    net.run_for(3 * REFRESH_MS as u64 + 100);
    assert_eq!(net.live_state(), (0, 0));

    let mut net = fig2();
    net.node_mut("R3").env.fetching.insert("ENCRYPT".into());
    let id = net.create("R1", &FIG2_WALK, &[(2, "ENCRYPT")], 0, REFRESH_MS).unwrap();
    let (node, _, e) = net
        .run_until_event(10 * REFRESH_MS as u64, |_, e| matches!(e, Event::Refused { .. }))
        .unwrap();
    assert_eq!(node, "R1");
    assert!(
        matches!(&e, Event::Refused { path, reason: Reason::SetupTimeout, .. } if *path == id),
        "{e:?}"
    );
    net.run_for(3 * REFRESH_MS as u64 + 100);
    assert_eq!(net.live_state(), (0, 0));
}

#[test]
fn duplicates_and_garbage() {
    let mut net = fig2();
    let r4 = ip("10.14.0.4");
    let r1 = ip("10.14.0.1");
    net.inject(r1, r4, vec![1, 2, 3]);
    net.inject(r1, r4, vec![]);
    net.inject(r1, r4, vec![1, 1, 0, 8, 0, 0, 0, 0]);
    net.run_for(10);
    let c = net.node("R4").agent.counters().clone();
    assert_eq!(c.malformed.get("truncated"), Some(&2));
    assert_eq!(c.malformed.get("missing-object"), Some(&1));
    // A CREATE with an object it must understand but does not: ACKed, and
    // refused as a bad message.
    let mut create = Message::new(
        9,
        Body::Create(weft_pbr::wire::Create {
            path: PathId {
                initiator: ip("10.0.1.1"),
                number: 1,
            },
            route: weft_pbr::wire::ExplicitRoute {
                hops: vec![weft_pbr::Hop::strict(ip("10.0.1.1")), weft_pbr::Hop::strict(r4)],
                current: 1,
            },
            flowspec: weft_pbr::FlowSpec::any_v4(),
            plugins: vec![],
            bandwidth_bps: 0,
            refresh_ms: 1000,
            auth: [0; 32],
        }),
    )
    .to_bytes()
    .unwrap();
    create.extend_from_slice(&[0x31, 0, 0, 4]);
    let n = create.len() as u16;
    weft_pbr::wire::HeaderView::new_unchecked(&mut create[..]).set_length(n);
    let before = net.log.len();
    net.inject(r1, r4, create.clone());
    net.run_for(10);
    let answers: Vec<u8> = net.log[before..]
        .iter()
        .filter(|s| s.src == r4)
        .map(|s| s.msg_type)
        .collect();
    assert!(
        answers.contains(&msg::ACK) && answers.contains(&msg::REFUSE),
        "{answers:?}"
    );
    assert_eq!(
        net.node("R4").agent.counters().malformed.get("unknown-object"),
        Some(&1)
    );
    // A valid message sent twice is processed once, acknowledged twice.
    let refresh = Message::new(
        11,
        Body::Refresh {
            path: PathId {
                initiator: ip("10.0.1.1"),
                number: 2,
            },
            hop: 1,
        },
    )
    .to_bytes()
    .unwrap();
    net.inject(r1, r4, refresh.clone());
    net.inject(r1, r4, refresh);
    net.run_for(10);
    let c = net.node("R4").agent.counters();
    assert_eq!(c.duplicates, 1);
    assert_eq!(c.unknown_path_refresh, 1);
    assert_eq!(net.live_state(), (0, 0));
}

#[test]
fn unknown_objects_to_pass_on_travel_with_create() {
    let mut net = abc();
    // An initiator that is a test: send a CREATE for hops A(test) → B → C
    // from A's address carrying a pass-on object; C must see it.
    let mut m = Message::new(
        1,
        Body::Create(weft_pbr::wire::Create {
            path: PathId {
                initiator: ip("10.0.0.1"),
                number: 5,
            },
            route: weft_pbr::wire::ExplicitRoute {
                hops: vec![
                    weft_pbr::Hop::strict(ip("10.0.0.1")),
                    weft_pbr::Hop::strict(ip("10.0.0.2")),
                    weft_pbr::Hop::strict(ip("10.0.1.3")),
                ],
                current: 1,
            },
            flowspec: weft_pbr::FlowSpec::any_v4(),
            plugins: vec![],
            bandwidth_bps: 0,
            refresh_ms: 1000,
            auth: [0; 32],
        }),
    );
    m.forward.push(weft_pbr::wire::RawObject {
        kind: 0xc7,
        body: vec![1, 2, 3],
    });
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let s2 = seen.clone();
    net.filter = Some(Box::new(move |_, dst, p: &[u8]| {
        if dst == ip("10.0.1.3") {
            if let Ok(m) = Message::parse(p) {
                s2.borrow_mut().push(m);
            }
        }
        false
    }));
    net.inject(ip("10.0.0.1"), ip("10.0.0.2"), m.to_bytes().unwrap());
    net.run_for(50);
    let seen = seen.borrow();
    let c = seen
        .iter()
        .find(|m| matches!(m.body, Body::Create(_)))
        .expect("CREATE reached C");
    assert_eq!(c.forward, m.forward);
    assert_eq!(net.node("B").agent.counters().unknown_objects, 1);
    assert_eq!(net.node("C").agent.visit_count(), 1);
}

/// The scale: 10,000 concurrent paths through one node, set up,
/// then refreshed for three lifetimes' worth of intervals.
#[test]
fn ten_thousand_paths_through_one_node() {
    const N: usize = 10_000;
    let mut net = abc();
    let mut ids = Vec::new();
    for _ in 0..N {
        ids.push(
            net.create("A", &["10.0.0.1", "10.0.0.2", "10.0.1.3"], &[], 0, 10_000)
                .unwrap(),
        );
    }
    net.run_for(1_000);
    let ups = net
        .events
        .iter()
        .filter(|e| matches!(e.2, Event::PathUp { .. }))
        .count();
    assert_eq!(ups, N);
    assert_eq!(net.node("B").agent.visit_count(), N);
    assert_eq!(net.node("B").agent.pending_count(), 0, "every COMMIT acknowledged");
    // Three refresh intervals later they are all still there.
    net.run_for(30_000);
    assert_eq!(net.node("B").agent.visit_count(), N);
    assert_eq!(net.node("B").agent.counters().expired, 0);
}

/// Each visit tells the one before it, in COMMIT, the largest packet it and
/// the rest of the path take: the initiator learns the path's MTU — the
/// smallest link less the label, less what ENCRYPT adds after it. A node
/// that says nothing (one that predates PATH_MTU) leaves the visits before
/// it with their own segment's limit.
#[test]
fn commit_carries_the_path_mtu_upstream() {
    let mut net = fig2();
    for (n, mtu) in [("R1", 1500), ("R3", 1500), ("R4", 1500), ("R7", 1400), ("R8", 1500)] {
        net.node_mut(n).env.link_mtu = Some(mtu);
    }
    let id = net
        .create("R1", &FIG2_WALK, &[(2, "ENCRYPT"), (5, "DECRYPT")], 0, REFRESH_MS)
        .unwrap();
    assert!(net.run_until_event(5_000, is_up(id)).is_some());
    let told = |n: &str, hop: u8| net.node(n).env.mtus[&VisitKey { path: id, hop }];
    assert_eq!(told("R7", 6), (None, None), "the last visit pops: no limit of its own");
    assert_eq!(told("R8", 5), (None, Some(1496)));
    assert_eq!(told("R7", 4), (Some(1496), Some(1396)));
    assert_eq!(told("R4", 3), (Some(1396), Some(1396)));
    assert_eq!(told("R3", 2), (Some(1396), Some(1396 - 57)), "room for ENCRYPT");
    assert_eq!(told("R4", 1), (Some(1339), Some(1339)));
    assert_eq!(told("R1", 0), (Some(1339), Some(1339)));
    let s = net.node("R1").agent.paths();
    assert_eq!(
        s.iter().find(|p| p.key.hop == 0).unwrap().mtu,
        Some(1339),
        "the path's MTU"
    );

    // R4 predates PATH_MTU: R1 knows only its own segment.
    let mut net = fig2();
    for n in ["R1", "R3", "R7", "R8"] {
        net.node_mut(n).env.link_mtu = Some(1500);
    }
    net.node_mut("R7").env.link_mtu = Some(1400);
    let id = net.create("R1", &FIG2_WALK, &[(2, "ENCRYPT")], 0, REFRESH_MS).unwrap();
    assert!(net.run_until_event(5_000, is_up(id)).is_some());
    assert_eq!(net.node("R3").env.mtus[&VisitKey { path: id, hop: 2 }].0, None);
    assert_eq!(
        net.node("R1").env.mtus[&VisitKey { path: id, hop: 0 }],
        (None, Some(1496))
    );
}
