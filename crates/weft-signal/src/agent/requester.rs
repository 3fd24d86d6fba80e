//! The requester's side: sign a request ([`Agent::sign`] fills in a fresh
//! nonce and the time), send it toward its destination ([`Agent::send`]:
//! its answer comes back as an [`Event::Response`](super::Event::Response),
//! with an empty stack when no capable node is on the path), and keep a
//! SETUP refreshed ([`Agent::keep_refreshed`]: re-signed with a new nonce
//! and time every interval, so that every node on the path — one that
//! restarted too — holds it).

use super::transactions::{Upstream, Via};
use super::TxnKey;
use super::{Agent, BoxSigner, Env, Timer};
use crate::wire::{Kind, Request, SessionId, Signed, Signer, WireError};
use std::net::IpAddr;

/// Error returned by [`Agent::send`] and [`Agent::keep_refreshed`].
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The request does not encode.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The same request (session and nonce) is already on its way.
    #[error("this request (session {0}) is already on its way")]
    InFlight(SessionId),
    /// `keep_refreshed` for a session no SETUP was sent in.
    #[error("no SETUP was sent in session {0}")]
    NoSetup(SessionId),
}

/// A SETUP this agent keeps refreshed.
pub(super) struct Refreshing {
    template: Request,
    origin: IpAddr,
    signer: BoxSigner,
    every_ns: u64,
}

impl Agent {
    /// `req` with a fresh nonce and the time at `now`, signed by `signer`
    /// (whose key it carries).
    pub fn sign(&mut self, now: u64, mut req: Request, signer: &dyn Signer) -> Result<Signed, WireError> {
        req.nonce = self.next_nonce();
        req.time = self.unix_time(now);
        Signed::sign(req, signer)
    }

    /// Send `signed` toward its destination as a flow from `origin` (the
    /// address the requester sends from). A capable agent acts on it
    /// first, as the first node of the path.
    pub fn send(&mut self, now: u64, signed: Signed, origin: IpAddr, env: &mut dyn Env) -> Result<(), RequestError> {
        let key = TxnKey::of(&signed);
        if self.txns.contains_key(&key) {
            return Err(RequestError::InFlight(key.session));
        }
        if signed.request().kind == Kind::Setup {
            if let Some(r) = self.refreshing.get_mut(&key.session) {
                r.template = signed.request().clone();
                r.origin = origin;
            }
            self.last_setup.insert(key.session, (signed.request().clone(), origin));
        }
        let via = Via {
            upstream: Upstream::Requester,
            origin,
            hops: self.cfg.max_hops,
            flags: 0,
        };
        self.start(now, via, signed, env);
        Ok(())
    }

    /// Re-send the last SETUP sent in `session` every `every_ns`, signed
    /// anew by `signer` (a third of the lifetime is the usual interval: a
    /// lost refresh does not let the module expire).
    pub fn keep_refreshed(
        &mut self,
        now: u64,
        session: SessionId,
        every_ns: u64,
        signer: BoxSigner,
    ) -> Result<(), RequestError> {
        let Some((template, origin)) = self.last_setup.get(&session).cloned() else {
            return Err(RequestError::NoSetup(session));
        };
        self.refreshing.insert(
            session,
            Refreshing {
                template,
                origin,
                signer,
                every_ns: every_ns.max(1),
            },
        );
        self.timers
            .insert((now.saturating_add(every_ns.max(1)), Timer::Refresh(session)));
        Ok(())
    }

    /// Stop refreshing `session` (a REMOVE usually follows).
    pub fn stop_refreshing(&mut self, session: SessionId) {
        self.refreshing.remove(&session);
    }

    /// Sessions this agent keeps refreshed.
    pub fn refreshing(&self) -> Vec<SessionId> {
        let mut v: Vec<SessionId> = self.refreshing.keys().copied().collect();
        v.sort();
        v
    }

    pub(super) fn refresh(&mut self, now: u64, session: SessionId, env: &mut dyn Env) {
        let Some(r) = self.refreshing.get(&session) else { return };
        let (every, origin, template) = (r.every_ns, r.origin, r.template.clone());
        let mut req = template;
        req.nonce = self.next_nonce();
        req.time = self.unix_time(now);
        let Some(r) = self.refreshing.get(&session) else { return };
        match Signed::sign(req, r.signer.as_ref()) {
            Ok(signed) => {
                let via = Via {
                    upstream: Upstream::Requester,
                    origin,
                    hops: self.cfg.max_hops,
                    flags: 0,
                };
                self.start(now, via, signed, env);
            }
            Err(_) => self.counters.undeliverable += 1,
        }
        self.timers.insert((now.saturating_add(every), Timer::Refresh(session)));
    }
}
