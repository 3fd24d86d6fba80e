//! # weft-pbr — explicit paths through processing sites (PromethOS PBR)
//!
//! Path-Based Routing sets up a one-way, per-flow path along a given walk
//! of nodes — which may visit a node any number of times — and deploys
//! plugins on chosen visits. Setup has two phases (PromethOS figure 3):
//! CREATE_PATH travels downstream and every visit *reserves*; COMMIT
//! travels back upstream and every visit *installs*; the initiator reports
//! the path up only when the COMMIT reaches it. State is soft: the
//! initiator refreshes, every visit purges its state when refreshes stop.
//! `docs/pbr.md` is the specification (messages, byte layouts, data
//! plane, threat model).
//!
//! Layers, bottom up:
//!
//! * [`wire`] — the messages: a header view ([`wire::HeaderView`]), the
//!   validated value [`Message`] with `parse` / `buffer_len` / `emit`, and
//!   [`WireError`] naming each kind of bad input.
//! * [`agent`] — the protocol of one node, [`Agent`]: reliable hop-by-hop
//!   delivery (sequence numbers, ACKs, retransmission), the two phases,
//!   refusals, release authenticated by a secret, soft state, STATUS. It
//!   reaches the node only through the [`Env`] trait (egress lookup,
//!   reserve, commit, release, status).
//! * [`plan`](mod@plan) — the walk planner: the minimum-cost walk through one site
//!   of each processing stage, in order (Dijkstra on a layered graph).
//!
//! **Architecture invariant:** sans-IO. No sockets, no clock (time comes in
//! as `now_ms`), no randomness (the caller passes the release secret and
//! the seeds), and no dependency on other Weft crates but `weft-packet`,
//! for the MPLS numbers the engine shares ([`FIRST_LABEL`], [`MAX_LABEL`],
//! [`MPLS_UDP_PORT`], defined once there): the node is behind
//! [`Env`], the UDP socket behind [`Agent::poll_transmit`]. No input — any
//! datagram, in any order, at any time — can make it panic; bad input is
//! counted ([`Counters`]). [`fuzz_message`] checks that.
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod agent;
pub mod plan;
pub mod wire;

pub use agent::{
    Agent, AgentConfig, Counters, CreateRequest, Egress, Env, Event, NextHop, NullEnv, OutLabel, PathSummary, PbrError,
    Phase, Refusal, Transmit, VisitInstall, VisitKey, VisitRequest, VisitStatus,
};
pub use plan::{plan, Graph, PlanError, Stage, Walk};
pub use wire::{
    Body, FlowSpec, Hop, HopError, Message, PathId, Plugin, PortRange, Reason, StatusRecord, WireError, FIRST_LABEL,
    MAX_LABEL, MPLS_UDP_PORT, PBR_PORT,
};

use std::net::{IpAddr, Ipv4Addr};

/// The fuzz entry point (fuzz target `pbr_message`, and a property test):
/// parse `data` as a message — what parses must re-encode to an equal
/// message — then feed it, from either neighbour, to an agent that holds a
/// transit visit, and run its timers far ahead. Panics only on a bug.
pub fn fuzz_message(data: &[u8]) {
    if let Ok(m) = Message::parse(data) {
        let b = m.to_bytes().expect("a parsed message re-encodes");
        assert_eq!(Message::parse(&b).as_ref(), Ok(&m), "re-encoding changed the message");
    }
    let _ = wire::peek(data);

    let up = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let me = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
    let down = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3));
    let mut a = Agent::new(AgentConfig::new(vec![me]));
    let mut env = NullEnv::default();
    let path = PathId {
        initiator: up,
        number: 1,
    };
    let create = Message::new(
        1,
        Body::Create(wire::Create {
            path,
            route: wire::ExplicitRoute {
                hops: vec![Hop::strict(up), Hop::strict(me), Hop::strict(down)],
                current: 1,
            },
            flowspec: FlowSpec::any_v4(),
            plugins: vec![],
            bandwidth_bps: 0,
            refresh_ms: 1000,
            auth: [0; 32],
        }),
    );
    if let Ok(b) = create.to_bytes() {
        a.handle_datagram(0, up, me, &b, &mut env);
    }
    a.handle_datagram(1, up, me, data, &mut env);
    a.handle_datagram(2, down, me, data, &mut env);
    let commit = Message::new(
        2,
        Body::Commit {
            path,
            hop: 2,
            label: 100,
            mtu: Some(1400),
        },
    );
    if let Ok(b) = commit.to_bytes() {
        a.handle_datagram(3, down, me, &b, &mut env);
    }
    a.handle_datagram(4, down, me, data, &mut env);
    a.handle_datagram(5, up, me, data, &mut env);
    for t in [10, 1_000, 10_000, 100_000, 1_000_000, u64::MAX / 2] {
        a.handle_timeout(t, &mut env);
        while a.poll_transmit().is_some() {}
        while a.poll_event().is_some() {}
    }
    let _ = a.paths();
}
