//! # weft-signal — on-path signaling (NetServ)
//!
//! A user — a content or service provider, not the operator — sends one
//! signed request toward a destination, and every Weft node on the way
//! acts on it: **SETUP** fetches, verifies and installs the user's module
//! behind a filter, **REMOVE** takes it away, **PROBE** collects facts,
//! **TRIGGER** has the last capable node start a SETUP or PROBE back
//! toward the requester (NetServ §8: install at the clients' edge).
//! Answers travel back hop by hop on the recorded reverse path, each node
//! pushing its entry on the **response stack**; installed modules are
//! soft state, removed when not refreshed. `docs/signaling.md` is the
//! specification.
//!
//! The transport is GIST's Q-mode in miniature (RFC 5971): a request is a
//! UDP datagram to the flow's destination, port [`SIGNAL_PORT`] (270),
//! carrying the IP Router Alert option and starting with [`MAGIC`]. A
//! Weft node intercepts it (the engine hands such datagrams to the
//! signaling daemon instead of forwarding them); any other router
//! forwards it as plain UDP.
//!
//! Layers, bottom up:
//!
//! * [`wire`] — the messages: views over the fixed parts
//!   ([`wire::HeaderView`], [`wire::SignedView`]), validated values
//!   ([`Message`], [`Request`], [`Signed`], [`Entry`]) with `parse` /
//!   `buffer_len` / `emit`, and [`WireError`] naming each kind of bad input.
//! * [`agent`] — the protocol of one node or requester, [`Agent`]:
//!   hop-by-hop reliability, rate limits, signature and replay checks,
//!   transactions and the stack, sessions and their lifetimes, TRIGGER's
//!   reverse flow, the requester's refreshes. It reaches the node only
//!   through the [`Env`] trait (authorize, install, remove, probe).
//!
//! **Architecture invariant:** sans-IO. No sockets, no clock (time comes
//! in as `now`, nanoseconds of the node's clock), no randomness (drivers
//! seed sequence numbers and nonces), and no dependency on other Weft
//! crates: principals and their rights, code loading and the data path are
//! behind [`Env`]; keys are raw ed25519 bytes. No input — any datagram,
//! in any order, at any time — can make it panic; bad input is counted
//! ([`Counters`]) or answered on the stack. [`fuzz_message`] and
//! [`fuzz_request`] check that.
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod agent;
pub mod wire;

pub use agent::{
    Agent, AgentConfig, BoxSigner, Context, Counters, Env, Event, Grant, Install, Installed, NullEnv, PeerView,
    Refusal, Removal, RequestError, SessionState, SessionView, Transmit, MILLI, SECOND,
};
pub use wire::{
    Code, Entry, Filter, Kind, Message, Module, ModuleKind, Probe, Reason, Request, ServerPort, SessionId, Signed,
    Signer, WireError, MAGIC, SIGNAL_PORT,
};

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The fuzz entry point `signal_message` (and a property test): parse
/// `data` as a message — what parses must re-encode to an equal message —
/// then feed it to a capable agent from upstream, from downstream and from
/// a stranger, with a request of its own in flight, and run its timers far
/// ahead. Panics only on a bug.
pub fn fuzz_message(data: &[u8]) {
    if let Ok(m) = Message::parse(data) {
        let b = m.to_bytes().expect("a parsed message re-encodes");
        assert_eq!(Message::parse(&b).as_ref(), Ok(&m), "re-encoding changed the message");
    }
    let _ = wire::peek(data);
    let v4 = |d| IpAddr::V4(Ipv4Addr::new(10, 0, 0, d));
    let (up, me, down) = (v4(1), v4(2), v4(3));
    let mut a = Agent::new(AgentConfig::new("fuzz", vec![me]));
    let mut env = NullEnv;
    let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
    let mut p = Request::new(Kind::Probe, SessionId([9; 16]), v4(4));
    p.probe = Some(Probe::ALL);
    if let Ok(s) = a.sign(0, p, &key) {
        let _ = a.send(0, s, me, &mut env);
    }
    a.handle_datagram(1, SocketAddr::new(up, SIGNAL_PORT), v4(4), data, &mut env);
    a.handle_datagram(2, SocketAddr::new(down, SIGNAL_PORT), me, data, &mut env);
    a.handle_datagram(3, SocketAddr::new(v4(9), 40000), me, data, &mut env);
    for t in [
        10,
        1_000_000,
        200 * MILLI,
        2 * SECOND,
        60 * SECOND,
        100_000 * SECOND,
        u64::MAX / 2,
    ] {
        a.handle_timeout(t, &mut env);
        while a.poll_transmit().is_some() {}
        while a.poll_event().is_some() {}
    }
    let _ = (a.sessions(0), a.peers(0), a.counters().iter());
}

/// The fuzz entry point `signal_request` (and a property test): parse
/// `data` as a signed request; what parses verifies without panicking,
/// and signed anew re-parses to the same request.
pub fn fuzz_request(data: &[u8]) {
    let _ = wire::SignedView::new_checked(data);
    let Ok(s) = Signed::parse(data) else { return };
    let _ = s.verify();
    let key = ed25519_dalek::SigningKey::from_bytes(&[2; 32]);
    let mut r = s.request().clone();
    if let Some(inner) = r.inner.take() {
        // The inner request must carry the signer's key: sign it anew too.
        let mut i = inner.request().clone();
        i.key = Signer::public_key(&key);
        let Ok(i) = Signed::sign(i, &key) else { return };
        r.inner = Some(Box::new(i));
    }
    let Ok(again) = Signed::sign(r.clone(), &key) else {
        return;
    };
    r.key = Signer::public_key(&key);
    assert_eq!(Signed::parse(again.as_bytes()).map(|s| s.request().clone()), Ok(r));
    assert!(again.verify());
}
