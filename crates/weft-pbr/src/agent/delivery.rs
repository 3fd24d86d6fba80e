//! Reliable hop-by-hop delivery: every message but an ACK carries a
//! sequence number, is acknowledged by the neighbour and retransmitted
//! (the timeout doubling) until it is, or until the neighbour counts as
//! down and the message's [`OnFail`] runs; received (peer, sequence
//! number) pairs are remembered a while to drop duplicates.

use super::outputs::Transmit;
use super::{Agent, Env, Phase, Timer, Visit, VisitKey};
use crate::wire::{Body, HopError, Message, RawObject, Reason, StatusRecord, PBR_PORT};
use std::net::IpAddr;

/// A message to send reliably ([`Agent::send`]): to whom, from which of
/// this node's addresses (neighbours check where upstream messages come
/// from), what, the unknown objects it passes on, and what to do if it is
/// never acknowledged.
#[derive(Clone, Debug)]
pub(super) struct Outgoing {
    to: IpAddr,
    from: IpAddr,
    body: Body,
    forward: Vec<RawObject>,
    on_fail: OnFail,
}

impl Outgoing {
    /// `body` from `from` to `to`, passing nothing on; nothing happens if
    /// it is never acknowledged.
    pub(super) fn new(to: IpAddr, from: IpAddr, body: Body) -> Self {
        Outgoing {
            to,
            from,
            body,
            forward: Vec::new(),
            on_fail: OnFail::Nothing,
        }
    }

    /// Pass on `objects` (unknown objects of the message being forwarded).
    pub(super) fn forwarding(mut self, objects: Vec<RawObject>) -> Self {
        self.forward = objects;
        self
    }

    /// Run `f` when the neighbour never acknowledges.
    pub(super) fn on_fail(mut self, f: OnFail) -> Self {
        self.on_fail = f;
        self
    }
}

/// What to do when a message is never acknowledged.
#[derive(Clone, Debug)]
pub(super) enum OnFail {
    Nothing,
    /// CREATE to the next hop: refuse upstream (neighbour down).
    Create(VisitKey),
    /// REFRESH to the next hop: the path is down.
    Refresh(VisitKey),
    /// COMMIT to the previous hop: give the visit up.
    Commit(VisitKey),
    /// STATUS request to the next hop: reply with what was collected.
    Status(VisitKey, Vec<StatusRecord>),
}

#[derive(Clone, Debug)]
pub(super) struct Pending {
    /// The neighbour (an ACK must come from it).
    pub(super) dst: IpAddr,
    src: Option<IpAddr>,
    payload: Vec<u8>,
    tries: u32,
    timeout: u64,
    deadline: u64,
    on_fail: OnFail,
}

impl Agent {
    /// Send `m` with the next sequence number and keep it until it is
    /// acknowledged (or given up on).
    pub(super) fn send(&mut self, now: u64, m: Outgoing) {
        let Outgoing {
            to: dst,
            from,
            body,
            forward,
            on_fail,
        } = m;
        let src = Some(from);
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let Ok(payload) = (Message { seq, body, forward }).to_bytes() else {
            // Only a STATUS reply can outgrow a datagram (records are
            // capped so that it does not); treat it as never delivered.
            self.counters.bad_message += 1;
            return;
        };
        self.counters.sent += 1;
        self.transmits.push_back(Transmit {
            dst,
            src,
            port: PBR_PORT,
            payload: payload.clone(),
        });
        let timeout = self.cfg.retransmit_ms.max(1);
        self.pending.insert(
            seq,
            Pending {
                dst,
                src,
                payload,
                tries: 1,
                timeout,
                deadline: now.saturating_add(timeout),
                on_fail,
            },
        );
        self.timers
            .insert((now.saturating_add(timeout), Timer::Retransmit(seq)));
    }

    pub(super) fn send_ack(&mut self, to: IpAddr, from: IpAddr, seq: u32) {
        if let Ok(payload) = Message::new(seq, Body::Ack).to_bytes() {
            self.counters.sent += 1;
            self.transmits.push_back(Transmit {
                dst: to,
                src: Some(from),
                port: PBR_PORT,
                payload,
            });
        }
    }

    /// Record (peer, seq); false when it was already there.
    pub(super) fn remember(&mut self, now: u64, peer: IpAddr, seq: u32) -> bool {
        if self.seen.contains_key(&(peer, seq)) {
            return false;
        }
        while self.seen.len() >= self.cfg.dedupe_max.max(1) {
            match self.seen_order.pop_front() {
                Some((_, p, s)) => {
                    self.seen.remove(&(p, s));
                }
                None => break,
            }
        }
        let until = now.saturating_add(self.cfg.dedupe_ms);
        self.seen.insert((peer, seq), until);
        self.seen_order.push_back((until, peer, seq));
        true
    }

    pub(super) fn forget_seen(&mut self, now: u64) {
        while let Some(&(t, p, s)) = self.seen_order.front() {
            if t > now {
                break;
            }
            self.seen_order.pop_front();
            if self.seen.get(&(p, s)) == Some(&t) {
                self.seen.remove(&(p, s));
            }
        }
    }

    pub(super) fn retransmit(&mut self, now: u64, seq: u32, env: &mut dyn Env) {
        let Some(p) = self.pending.get_mut(&seq) else { return };
        if p.deadline > now {
            return;
        }
        if p.tries < self.cfg.retransmit_tries {
            p.tries += 1;
            p.timeout = p.timeout.saturating_mul(2);
            p.deadline = now.saturating_add(p.timeout);
            let (deadline, t) = (
                p.deadline,
                Transmit {
                    dst: p.dst,
                    src: p.src,
                    port: PBR_PORT,
                    payload: p.payload.clone(),
                },
            );
            self.transmits.push_back(t);
            self.counters.retransmits += 1;
            self.timers.insert((deadline, Timer::Retransmit(seq)));
            return;
        }
        let Some(p) = self.pending.remove(&seq) else { return };
        self.counters.neighbour_down += 1;
        let down = |v: &Visit, key: VisitKey, what: &str| {
            let addr = v.req.next.map(|n| n.addr).unwrap_or(v.local);
            HopError {
                hop: key.hop.saturating_add(1),
                address: addr,
                reason: Reason::NeighbourDown,
                text: format!("no acknowledgement of {what}"),
            }
        };
        match p.on_fail {
            OnFail::Nothing => {}
            OnFail::Create(key) => {
                let Some(v) = self.visits.get(&key) else { return };
                if v.phase != Phase::Reserved {
                    return;
                }
                let e = down(v, key, "CREATE_PATH");
                self.fail_visit(now, key, e, env);
            }
            OnFail::Refresh(key) => {
                let Some(v) = self.visits.get(&key) else { return };
                let e = down(v, key, "REFRESH");
                self.fail_visit(now, key, e, env);
            }
            OnFail::Commit(key) => {
                // The upstream neighbour is gone: nobody will refresh this
                // visit; give it up now rather than at the timeout.
                if self.visits.remove(&key).is_some() {
                    env.release(key);
                }
            }
            OnFail::Status(key, records) => {
                let Some(v) = self.visits.get(&key) else { return };
                let e = down(v, key, "STATUS");
                self.status_reply(now, key, records, Some(e));
            }
        }
    }
}
