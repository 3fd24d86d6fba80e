//! Hop-by-hop reliability: every REQUEST and RESPONSE carries a sequence
//! number, is acknowledged by whoever receives it and retransmitted (the
//! timeout doubling) until it is, or until the peer counts as absent —
//! which, for a request on its way downstream, makes this node the last
//! capable node on the path. Received (peer, sequence number) pairs are
//! remembered a while to drop duplicates.

use super::outputs::Transmit;
use super::TxnKey;
use super::{Agent, Env, Timer};
use crate::wire::{Body, Message};
use std::net::{IpAddr, SocketAddr};

/// What to do when a datagram is never acknowledged.
#[derive(Clone, Copy, Debug)]
pub(super) enum OnFail {
    /// A RESPONSE: count it undeliverable (the upstream peer is gone; its
    /// requester retries).
    Response,
    /// A REQUEST downstream: nobody capable is there; this node is last.
    Downstream(TxnKey),
}

/// A datagram sent and not yet acknowledged.
#[derive(Clone, Debug)]
pub(super) struct Pending {
    t: Transmit,
    tries: u32,
    timeout: u64,
    deadline: u64,
    on_fail: OnFail,
}

impl Agent {
    /// Send `body` reliably; returns its sequence number.
    pub(super) fn send_reliable(
        &mut self,
        now: u64,
        dst: SocketAddr,
        src: Option<IpAddr>,
        router_alert: bool,
        body: Body,
        on_fail: OnFail,
    ) -> Option<u32> {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let payload = match (Message { seq, body }).to_bytes() {
            Ok(p) => p,
            Err(_) => {
                // Entries are cut to fit before this; a request was checked
                // when it was signed. Nothing else can outgrow a datagram.
                self.counters.undeliverable += 1;
                return None;
            }
        };
        let t = Transmit {
            dst: dst.ip(),
            dst_port: dst.port(),
            src,
            router_alert,
            payload,
        };
        self.counters.sent += 1;
        self.transmits.push_back(t.clone());
        let timeout = self.cfg.retransmit_ns.max(1);
        let deadline = now.saturating_add(timeout);
        self.pending.insert(
            seq,
            Pending {
                t,
                tries: 1,
                timeout,
                deadline,
                on_fail,
            },
        );
        self.timers.insert((deadline, Timer::Retransmit(seq)));
        Some(seq)
    }

    /// Acknowledge `seq` to `to`.
    pub(super) fn send_ack(&mut self, to: SocketAddr, seq: u32) {
        if let Ok(payload) = (Message { seq, body: Body::Ack }).to_bytes() {
            self.counters.sent += 1;
            self.transmits.push_back(Transmit {
                dst: to.ip(),
                dst_port: to.port(),
                src: None,
                router_alert: false,
                payload,
            });
        }
    }

    /// An ACK arrived. A request's ACK may come from any node (the next
    /// capable one is not known in advance) and names it; a response's
    /// must come from the peer it was sent to.
    pub(super) fn handle_ack(&mut self, now: u64, from: SocketAddr, seq: u32) {
        let Some(p) = self.pending.get(&seq) else {
            self.counters.stray_acks += 1;
            return;
        };
        match p.on_fail {
            OnFail::Response if p.t.dst != from.ip() => {
                self.counters.stray_acks += 1;
            }
            OnFail::Response => {
                self.pending.remove(&seq);
            }
            OnFail::Downstream(key) => {
                self.pending.remove(&seq);
                self.downstream_acked(now, key, from.ip());
            }
        }
    }

    /// Record (peer, seq); false when it was already there.
    pub(super) fn remember(&mut self, now: u64, peer: SocketAddr, seq: u32) -> bool {
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
        let until = now.saturating_add(self.cfg.dedupe_ns);
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
            let (deadline, t) = (p.deadline, p.t.clone());
            self.transmits.push_back(t);
            self.counters.retransmits += 1;
            self.timers.insert((deadline, Timer::Retransmit(seq)));
            return;
        }
        let Some(p) = self.pending.remove(&seq) else { return };
        match p.on_fail {
            OnFail::Response => self.counters.undeliverable += 1,
            OnFail::Downstream(key) => self.no_downstream(now, key, env),
        }
    }
}

impl Agent {
    /// The sequence number of the REQUEST sent downstream for `key`, if
    /// it is still waiting for its ACK.
    pub(super) fn pending_for(&self, key: TxnKey) -> Option<u32> {
        self.pending
            .iter()
            .find(|(_, p)| matches!(p.on_fail, OnFail::Downstream(k) if k == key))
            .map(|(s, _)| *s)
    }
}
