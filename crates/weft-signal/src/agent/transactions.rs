//! Requests on their way: a **transaction** per request (session and
//! nonce) that passes this node, from the moment it arrives to the moment
//! its stack leaves upstream.
//!
//! A transaction waits for two things: this node's own entry (ready at
//! once, or when an install finishes) and the downstream stack (from the
//! next capable node's RESPONSE; empty when this node is the last — the
//! destination, the last hop, or nobody downstream acknowledged; one
//! `downstream-timeout` entry when the next node acknowledged and never
//! answered). When both are there, it pushes its entry and sends the stack
//! to its upstream: the recorded peer, a TRIGGER waiting for its reverse
//! flow, or this agent's own requester.
//!
//! A TRIGGER that reaches the last node starts its inner request there, as
//! a new flow toward the inner request's destination (the requester): the
//! last node acts on it first, each node on the way back acts on it, and
//! the stack of that flow becomes the TRIGGER's answer.

use super::delivery::OnFail;
use super::{Agent, Context, Env, Event, Timer, TxnKey, SECOND};
use crate::wire::{
    Body, Entry, Kind, Reason, RequestMsg, ResponseMsg, SessionId, Signed, HEADER_LEN, MAX_MESSAGE_LEN, SIGNAL_PORT,
};
use std::net::{IpAddr, SocketAddr};

/// Where a transaction's stack goes.
#[derive(Clone, Copy, Debug)]
pub(super) enum Upstream {
    /// The previous signaling peer.
    Peer(SocketAddr),
    /// A TRIGGER here whose reverse flow this is.
    Local(TxnKey),
    /// This agent sent the request: an [`Event::Response`].
    Requester,
}

/// This node's own entry.
#[derive(Clone, Debug)]
pub(super) enum Own {
    /// Pushes none (a relayed TRIGGER; a requester).
    Nothing,
    /// Ready.
    Ready(Entry),
    /// Waiting for the install of this session.
    Waiting,
}

/// The downstream stack.
#[derive(Clone, Debug)]
pub(super) enum Down {
    /// Sent on; not acknowledged yet.
    Waiting,
    /// Acknowledged by `peer`; answer due by `deadline`.
    Acked { peer: IpAddr, deadline: u64 },
    /// A TRIGGER's reverse flow is running.
    Inner,
    /// Here.
    Done { stack: Vec<Entry>, flags: u8 },
}

#[derive(Clone, Debug)]
pub(super) struct Txn {
    pub(super) kind: Kind,
    pub(super) upstream: Upstream,
    pub(super) signed: Signed,
    pub(super) origin: IpAddr,
    pub(super) hops: u8,
    pub(super) flags: u8,
    pub(super) own: Own,
    pub(super) down: Down,
}

/// How a request reaches [`Agent::start`]: from where, in which flow,
/// with how many hops left and which flags.
#[derive(Clone, Copy, Debug)]
pub(super) struct Via {
    pub(super) upstream: Upstream,
    pub(super) origin: IpAddr,
    pub(super) hops: u8,
    pub(super) flags: u8,
}

/// The fixed part of a RESPONSE after the header.
const RESPONSE_FIXED: usize = 36;

impl Agent {
    /// An entry of this node, toward `peer`; a refusal is counted.
    pub(super) fn entry(&mut self, env: &mut dyn Env, peer: IpAddr, reason: Reason, text: &str) -> Entry {
        if reason != Reason::Ok {
            *self.counters.refused.entry(reason.as_str().to_string()).or_default() += 1;
        }
        let address = env.address_toward(peer).or_else(|| {
            self.cfg
                .addresses
                .iter()
                .copied()
                .find(|a| a.is_ipv4() == peer.is_ipv4())
        });
        Entry::new(&self.cfg.name, address, reason, text)
    }

    /// A REQUEST arrived from `from` (acknowledged, not a duplicate).
    pub(super) fn handle_request(&mut self, now: u64, from: SocketAddr, _to: IpAddr, r: RequestMsg, env: &mut dyn Env) {
        let dest = r.signed.request().dest;
        if !self.cfg.capable {
            // A requester is a flow's destination only (a TRIGGER's reverse
            // flow comes back to it): answer at once, as the last node.
            if self.is_local(dest) {
                let req = r.signed.request();
                let resp = ResponseMsg {
                    session: req.session,
                    nonce: req.nonce,
                    kind: req.kind,
                    flags: ResponseMsg::END_DESTINATION,
                    stack: Vec::new(),
                };
                self.send_reliable(now, from, None, false, Body::Response(resp), OnFail::Response);
            }
            return;
        }
        let key = TxnKey::of(&r.signed);
        if self.txns.contains_key(&key) {
            self.counters.duplicates += 1;
            return;
        }
        let req = r.signed.request();
        let ttl = req
            .lifetime_s
            .map(|l| u64::from(l) * SECOND)
            .unwrap_or(0)
            .max(60 * SECOND);
        self.peers
            .insert((req.session, r.origin, dest), (from, now.saturating_add(ttl)));
        let via = Via {
            upstream: Upstream::Peer(from),
            origin: r.origin,
            hops: r.hops,
            flags: r.flags,
        };
        self.start(now, via, r.signed, env);
    }

    /// A request starts at this node: verify it, act on it, send it on.
    pub(super) fn start(&mut self, now: u64, via: Via, signed: Signed, env: &mut dyn Env) {
        let Via {
            upstream,
            origin,
            hops,
            flags,
        } = via;
        let key = TxnKey::of(&signed);
        let req = signed.request().clone();
        let toward = match upstream {
            Upstream::Peer(p) => p.ip(),
            _ => req.dest,
        };
        let acts = self.cfg.capable;
        if self.txns.contains_key(&key) {
            // Only a TRIGGER's reverse flow can get here (requests from
            // peers were checked): the inner request already passed.
            let e = self.entry(env, toward, Reason::Replayed, "this request is already in flight here");
            self.finish_with(now, upstream, &req, vec![e], 0, env);
            return;
        }
        *self.counters.requests.entry(req.kind.as_str().to_string()).or_default() += 1;
        let mut txn = Txn {
            kind: req.kind,
            upstream,
            signed,
            origin,
            hops,
            flags,
            own: Own::Nothing,
            down: Down::Waiting,
        };
        if acts {
            let now_unix = self.unix_time(now);
            if let Err(r) = self.guard.verify(&txn.signed, now_unix, self.cfg.window_s) {
                // A request that fails verification fails everywhere: it
                // stops here.
                let e = self.entry(env, toward, r.reason, &r.text);
                self.finish_with(now, upstream, &req, vec![e], 0, env);
                return;
            }
            let ctx = Context {
                origin,
                upstream: match upstream {
                    Upstream::Peer(p) => Some(p),
                    _ => None,
                },
                now_unix,
            };
            txn.own = match req.kind {
                Kind::Setup => self.setup(now, key, &req, &ctx, toward, env),
                Kind::Remove => Own::Ready(self.remove_request(now, &req, toward, env)),
                Kind::Probe => Own::Ready(self.probe(now, &req, &ctx, toward, env)),
                Kind::Trigger => Own::Nothing,
            };
        }
        self.txns.insert(key, txn);
        self.forward(now, key, env);
    }

    /// Send the request on toward its destination, or end the flow here.
    fn forward(&mut self, now: u64, key: TxnKey, env: &mut dyn Env) {
        let Some(t) = self.txns.get(&key) else { return };
        let dest = t.signed.request().dest;
        let end = if self.is_local(dest) {
            Some(ResponseMsg::END_DESTINATION)
        } else if t.hops <= 1 && self.cfg.capable {
            Some(ResponseMsg::END_HOPS)
        } else {
            None
        };
        if let Some(flags) = end {
            if let Some(t) = self.txns.get_mut(&key) {
                t.down = Down::Done {
                    stack: Vec::new(),
                    flags,
                };
            }
            self.try_finish(now, key, env);
            return;
        }
        let hops = if self.cfg.capable { t.hops - 1 } else { t.hops };
        let body = Body::Request(RequestMsg {
            hops,
            flags: t.flags,
            origin: t.origin,
            signed: t.signed.clone(),
        });
        let src = (!self.cfg.capable).then_some(t.origin);
        let sent = self.send_reliable(
            now,
            SocketAddr::new(dest, SIGNAL_PORT),
            src,
            true,
            body,
            OnFail::Downstream(key),
        );
        if sent.is_none() {
            self.no_downstream(now, key, env);
        }
    }

    /// The next capable node acknowledged the request.
    pub(super) fn downstream_acked(&mut self, now: u64, key: TxnKey, peer: IpAddr) {
        let (wait, per_hop) = (self.cfg.response_wait_ns, self.cfg.per_hop_ns);
        let Some(t) = self.txns.get_mut(&key) else { return };
        if !matches!(t.down, Down::Waiting) {
            return;
        }
        // The hops the request went on with: each node downstream waits
        // less than this one by `per_hop` (at least).
        let left = u64::from(if self.cfg.capable {
            t.hops.saturating_sub(1)
        } else {
            t.hops
        });
        let deadline = now.saturating_add(wait).saturating_add(per_hop.saturating_mul(left));
        t.down = Down::Acked { peer, deadline };
        self.timers.insert((deadline, Timer::Response(key)));
    }

    /// Nothing downstream acknowledged: this node is the last.
    pub(super) fn no_downstream(&mut self, now: u64, key: TxnKey, env: &mut dyn Env) {
        let Some(t) = self.txns.get_mut(&key) else { return };
        if !matches!(t.down, Down::Waiting) {
            return;
        }
        t.down = Down::Done {
            stack: Vec::new(),
            flags: ResponseMsg::END_TIMEOUT,
        };
        self.counters.last_by_timeout += 1;
        self.try_finish(now, key, env);
    }

    /// The downstream peer acknowledged and never answered.
    pub(super) fn response_deadline(&mut self, now: u64, key: TxnKey, env: &mut dyn Env) {
        let Some(t) = self.txns.get(&key) else { return };
        let Down::Acked { peer, deadline } = t.down else { return };
        if deadline > now {
            return;
        }
        let mut e = Entry::new(
            "",
            Some(peer),
            Reason::DownstreamTimeout,
            "acknowledged the request, then sent no response",
        );
        e.node.clear();
        if let Some(t) = self.txns.get_mut(&key) {
            t.down = Down::Done {
                stack: vec![e],
                flags: 0,
            };
        }
        self.counters.downstream_timeouts += 1;
        self.try_finish(now, key, env);
    }

    /// A RESPONSE arrived from `from` (acknowledged, not a duplicate).
    pub(super) fn handle_response(&mut self, now: u64, from: SocketAddr, r: ResponseMsg, env: &mut dyn Env) {
        let key = TxnKey {
            session: r.session,
            nonce: r.nonce,
        };
        let Some(t) = self.txns.get_mut(&key) else {
            self.counters.stray_responses += 1;
            return;
        };
        match t.down {
            // The ACK was lost and the response overtook it.
            Down::Waiting => {
                let seq = self.pending_for(key);
                if let Some(seq) = seq {
                    self.pending.remove(&seq);
                }
            }
            Down::Acked { peer, .. } if peer == from.ip() => {}
            Down::Acked { .. } => {
                self.counters.unexpected_sender += 1;
                return;
            }
            Down::Inner | Down::Done { .. } => {
                self.counters.stray_responses += 1;
                return;
            }
        }
        if let Some(t) = self.txns.get_mut(&key) {
            t.down = Down::Done {
                stack: r.stack,
                flags: r.flags,
            };
        }
        self.try_finish(now, key, env);
    }

    /// When both the own entry and the downstream stack are there: start a
    /// TRIGGER's reverse flow at the last node, or push and send upstream.
    pub(super) fn try_finish(&mut self, now: u64, key: TxnKey, env: &mut dyn Env) {
        let Some(t) = self.txns.get(&key) else { return };
        let Down::Done { stack, .. } = &t.down else { return };
        if matches!(t.own, Own::Waiting) {
            return;
        }
        if t.kind == Kind::Trigger && stack.is_empty() && self.cfg.capable {
            // Nothing capable downstream answered: this node is the last,
            // and starts the inner request back toward the requester.
            let Some(inner) = t.signed.request().inner.clone() else {
                return;
            };
            let dest = inner.request().dest;
            let origin = env.address_toward(dest).or_else(|| {
                self.cfg
                    .addresses
                    .iter()
                    .copied()
                    .find(|a| a.is_ipv4() == dest.is_ipv4())
            });
            if let Some(t) = self.txns.get_mut(&key) {
                t.down = Down::Inner;
            }
            let Some(origin) = origin else {
                let e = self.entry(env, dest, Reason::Unsupported, "no address of the requester's family");
                if let Some(t) = self.txns.get_mut(&key) {
                    t.down = Down::Done {
                        stack: vec![e],
                        flags: 0,
                    };
                }
                return self.try_finish(now, key, env);
            };
            self.counters.triggered += 1;
            let hops = self.cfg.max_hops;
            let via = Via {
                upstream: Upstream::Local(key),
                origin,
                hops,
                flags: RequestMsg::REVERSE,
            };
            self.start(now, via, *inner, env);
            return;
        }
        let Some(t) = self.txns.remove(&key) else { return };
        let Down::Done { stack, flags } = t.down else { return };
        let own = match t.own {
            Own::Ready(e) => Some(e),
            _ => None,
        };
        let req = t.signed.request();
        let mut resp = ResponseMsg {
            session: req.session,
            nonce: req.nonce,
            kind: req.kind,
            flags,
            stack,
        };
        if let Some(e) = own {
            self.push_fitting(&mut resp, e);
        }
        self.deliver(now, t.upstream, resp, env);
    }

    /// End a request at once with `stack` (a request that failed
    /// verification, or could not start).
    pub(super) fn finish_with(
        &mut self,
        now: u64,
        upstream: Upstream,
        req: &crate::wire::Request,
        stack: Vec<Entry>,
        flags: u8,
        env: &mut dyn Env,
    ) {
        let resp = ResponseMsg {
            session: req.session,
            nonce: req.nonce,
            kind: req.kind,
            flags,
            stack,
        };
        self.deliver(now, upstream, resp, env);
    }

    /// Answer a request that did not parse whole, with one entry.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn answer_now(
        &mut self,
        now: u64,
        from: SocketAddr,
        _to: IpAddr,
        kind: Kind,
        session: SessionId,
        nonce: [u8; 16],
        entry: Entry,
    ) {
        let resp = ResponseMsg {
            session,
            nonce,
            kind,
            flags: 0,
            stack: vec![entry],
        };
        self.send_reliable(now, from, None, false, Body::Response(resp), OnFail::Response);
    }

    /// Push `e` on the stack, cutting its facts, then its text, so that
    /// the response fits a datagram; an entry that cannot fit at all is
    /// left out. Either way the response says TRUNCATED.
    fn push_fitting(&mut self, r: &mut ResponseMsg, mut e: Entry) {
        let used = HEADER_LEN + RESPONSE_FIXED + r.stack.iter().map(Entry::buffer_len).sum::<usize>();
        let room = MAX_MESSAGE_LEN.saturating_sub(used);
        if e.buffer_len() > room {
            r.flags |= ResponseMsg::TRUNCATED;
            self.counters.truncated += 1;
            e.modules.clear();
            e.capabilities.clear();
            e.resources.clear();
            e.unknown.clear();
            if e.buffer_len() > room {
                e.text.clear();
            }
            if e.buffer_len() > room || r.stack.len() >= u8::MAX as usize {
                return;
            }
        }
        r.stack.push(e);
    }

    /// Send a finished stack where it goes.
    fn deliver(&mut self, now: u64, upstream: Upstream, r: ResponseMsg, env: &mut dyn Env) {
        match upstream {
            Upstream::Peer(p) => {
                self.send_reliable(now, p, None, false, Body::Response(r), OnFail::Response);
            }
            Upstream::Local(outer) => {
                if let Some(t) = self.txns.get_mut(&outer) {
                    t.down = Down::Done {
                        stack: r.stack,
                        flags: r.flags,
                    };
                }
                self.try_finish(now, outer, env);
            }
            Upstream::Requester => {
                let stack: Vec<Entry> = r.path_order().cloned().collect();
                self.events.push_back(Event::Response {
                    session: r.session,
                    nonce: r.nonce,
                    kind: r.kind,
                    flags: r.flags,
                    stack,
                });
            }
        }
    }
}
