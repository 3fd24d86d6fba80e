//! Modules installed here, by session: SETUP (install, or refresh an
//! installed session of the same key and module), REMOVE (by the key that
//! installed it), PROBE's module facts, installs that finish later
//! ([`Agent::install_done`]) or never (`install-timeout`), and soft state:
//! a session not refreshed within its lifetime is removed with everything
//! it installed.

use super::outputs::{Removal, SessionState, SessionView};
use super::transactions::Own;
use super::TxnKey;
use super::{Agent, Context, Env, Event, Install, Installed, Refusal, Timer, SECOND};
use crate::wire::{Entry, Kind, ModuleFact, Probe, Reason, Request, SessionId};
use std::net::IpAddr;

#[derive(Clone, Debug)]
pub(super) struct Session {
    key: [u8; 32],
    owner: String,
    spec: Request,
    origin: IpAddr,
    lifetime_s: u32,
    expires: u64,
    state: SessionState,
    installed: Installed,
    /// Transactions whose entry waits for the install.
    waiting: Vec<TxnKey>,
    refreshes: u64,
}

/// Do two SETUPs ask for the same thing (a refresh), whatever their
/// nonce, time and lifetime?
fn same_module(a: &Request, b: &Request) -> bool {
    a.module == b.module
        && a.code == b.code
        && a.filter == b.filter
        && a.server_ports == b.server_ports
        && a.config == b.config
}

fn ok_entry(mut e: Entry, i: &Installed) -> Entry {
    e.instance = i.instance;
    e.timing = i.timing;
    e
}

impl Agent {
    /// Act on a SETUP: refuse it, refresh the session, install now, or
    /// start installing (the entry then waits).
    pub(super) fn setup(
        &mut self,
        now: u64,
        key: TxnKey,
        req: &Request,
        ctx: &Context,
        toward: IpAddr,
        env: &mut dyn Env,
    ) -> Own {
        let refuse = |a: &mut Agent, env: &mut dyn Env, r: Refusal| Own::Ready(a.entry(env, toward, r.reason, &r.text));
        let lifetime = req.lifetime_s.unwrap_or(0);
        if lifetime == 0 || lifetime > self.cfg.max_lifetime_s {
            let r = Refusal::new(
                Reason::BadLifetime,
                format!(
                    "lifetime {lifetime} s: this node takes 1 to {} s",
                    self.cfg.max_lifetime_s
                ),
            );
            return refuse(self, env, r);
        }
        let session = req.session;
        let expires = now.saturating_add(u64::from(lifetime) * SECOND);
        if let Some(s) = self.sessions.get(&session) {
            if s.key != req.key {
                let r = Refusal::new(Reason::NotOwner, "the session belongs to another key");
                return refuse(self, env, r);
            }
            if !same_module(&s.spec, req) {
                let m = s.spec.module.as_ref().map(|m| format!("{}@{}", m.name, m.version));
                let r = Refusal::new(
                    Reason::SessionConflict,
                    format!(
                        "the session holds {} here; REMOVE it before installing another module in it",
                        m.unwrap_or_default()
                    ),
                );
                return refuse(self, env, r);
            }
            // The rights are checked on every request: a refresh by a key
            // that lost them removes the session.
            if let Err(r) = env.authorize(req, ctx) {
                self.drop_session(now, session, Removal::Removed, env);
                return refuse(self, env, r);
            }
            let Some(s) = self.sessions.get_mut(&session) else {
                return Own::Nothing;
            };
            s.expires = expires;
            s.lifetime_s = lifetime;
            s.spec = req.clone();
            s.origin = ctx.origin;
            s.refreshes += 1;
            self.counters.refreshed += 1;
            self.timers.insert((expires, Timer::Expire(session)));
            return match s.state {
                SessionState::Installed => {
                    let i = s.installed.clone();
                    let e = self.entry(env, toward, Reason::Ok, "refreshed");
                    Own::Ready(ok_entry(e, &i))
                }
                SessionState::Installing => {
                    s.waiting.push(key);
                    Own::Waiting
                }
            };
        }
        if self.sessions.len() >= self.cfg.max_sessions {
            let r = Refusal::new(
                Reason::Resources,
                format!("the node holds its maximum of {} sessions", self.cfg.max_sessions),
            );
            return refuse(self, env, r);
        }
        let grant = match env.authorize(req, ctx) {
            Ok(g) => g,
            Err(r) => return refuse(self, env, r),
        };
        let install = match env.install(session, req, &grant) {
            Ok(i) => i,
            Err(r) => return refuse(self, env, r),
        };
        let mut s = Session {
            key: req.key,
            owner: grant.principal.clone(),
            spec: req.clone(),
            origin: ctx.origin,
            lifetime_s: lifetime,
            expires,
            state: SessionState::Installing,
            installed: Installed::default(),
            waiting: Vec::new(),
            refreshes: 0,
        };
        self.timers.insert((expires, Timer::Expire(session)));
        match install {
            Install::Done(i) => {
                s.state = SessionState::Installed;
                s.installed = i.clone();
                self.sessions.insert(session, s);
                self.counters.installed += 1;
                self.events.push_back(Event::Installed {
                    session,
                    owner: grant.principal,
                });
                let e = self.entry(env, toward, Reason::Ok, "installed");
                Own::Ready(ok_entry(e, &i))
            }
            Install::Pending => {
                s.waiting.push(key);
                self.sessions.insert(session, s);
                let deadline = now.saturating_add(self.cfg.install_timeout_ns);
                self.timers.insert((deadline, Timer::InstallTimeout(session)));
                Own::Waiting
            }
        }
    }

    /// An install the node started ([`Install::Pending`]) ended. An install
    /// for a session no longer here (removed, expired, timed out) is undone.
    pub fn install_done(
        &mut self,
        now: u64,
        session: SessionId,
        result: Result<Installed, Refusal>,
        env: &mut dyn Env,
    ) {
        let Some(s) = self.sessions.get_mut(&session) else {
            if result.is_ok() {
                env.remove(session);
            }
            return;
        };
        if s.state != SessionState::Installing {
            return;
        }
        match result {
            Ok(i) => {
                s.state = SessionState::Installed;
                s.installed = i.clone();
                let waiting = std::mem::take(&mut s.waiting);
                let owner = s.owner.clone();
                self.counters.installed += 1;
                self.events.push_back(Event::Installed { session, owner });
                for key in waiting {
                    let toward = self.toward(key);
                    let e = self.entry(env, toward, Reason::Ok, "installed");
                    self.resolve(now, key, ok_entry(e, &i), env);
                }
            }
            Err(r) => {
                let waiting = std::mem::take(&mut s.waiting);
                self.drop_session(now, session, Removal::Failed, env);
                for key in waiting {
                    let toward = self.toward(key);
                    let e = self.entry(env, toward, r.reason, &r.text);
                    self.resolve(now, key, e, env);
                }
            }
        }
    }

    /// Where the entry of transaction `key` is seen from.
    fn toward(&self, key: TxnKey) -> IpAddr {
        match self.txns.get(&key).map(|t| t.upstream) {
            Some(super::transactions::Upstream::Peer(p)) => p.ip(),
            _ => self
                .txns
                .get(&key)
                .map(|t| t.signed.request().dest)
                .unwrap_or(IpAddr::from([0, 0, 0, 0])),
        }
    }

    /// Give transaction `key` its entry and see whether it can finish.
    fn resolve(&mut self, now: u64, key: TxnKey, e: Entry, env: &mut dyn Env) {
        if let Some(t) = self.txns.get_mut(&key) {
            t.own = Own::Ready(e);
        }
        self.try_finish(now, key, env);
    }

    pub(super) fn install_deadline(&mut self, now: u64, session: SessionId, env: &mut dyn Env) {
        if self
            .sessions
            .get(&session)
            .is_some_and(|s| s.state == SessionState::Installing)
        {
            let secs = self.cfg.install_timeout_ns / SECOND;
            let r = Refusal::new(Reason::InstallTimeout, format!("the install took longer than {secs} s"));
            self.install_done(now, session, Err(r), env);
        }
    }

    pub(super) fn expire(&mut self, now: u64, session: SessionId, env: &mut dyn Env) {
        if self.sessions.get(&session).is_some_and(|s| s.expires <= now) {
            self.counters.expired += 1;
            self.drop_session(now, session, Removal::Expired, env);
        }
    }

    /// Remove a session and what it installed; answer the transactions
    /// that waited for its install.
    fn drop_session(&mut self, now: u64, session: SessionId, why: Removal, env: &mut dyn Env) {
        let Some(s) = self.sessions.remove(&session) else {
            return;
        };
        env.remove(session);
        self.events.push_back(Event::Removed { session, why });
        for key in s.waiting {
            let toward = self.toward(key);
            let e = self.entry(
                env,
                toward,
                Reason::InstallFailed,
                "the session was removed before its install finished",
            );
            self.resolve(now, key, e, env);
        }
    }

    /// Act on a REMOVE: only the key that installed a session removes it.
    pub(super) fn remove_request(&mut self, now: u64, req: &Request, toward: IpAddr, env: &mut dyn Env) -> Entry {
        match self.sessions.get(&req.session) {
            None => self.entry(env, toward, Reason::NotFound, "no such session here"),
            Some(s) if s.key != req.key => {
                self.entry(env, toward, Reason::NotOwner, "the session belongs to another key")
            }
            Some(_) => {
                self.counters.removed += 1;
                self.drop_session(now, req.session, Removal::Removed, env);
                self.entry(env, toward, Reason::Ok, "removed")
            }
        }
    }

    /// Act on a PROBE: the principal's own sessions here, and what the
    /// node adds (its classes, capabilities, resources).
    pub(super) fn probe(&mut self, now: u64, req: &Request, ctx: &Context, toward: IpAddr, env: &mut dyn Env) -> Entry {
        let grant = match env.authorize(req, ctx) {
            Ok(g) => g,
            Err(r) => return self.entry(env, toward, r.reason, &r.text),
        };
        let mut e = self.entry(env, toward, Reason::Ok, "");
        let what = req.probe.unwrap_or(Probe::ALL);
        if what.has(Probe::MODULES) {
            let mut mine: Vec<&Session> = self.sessions.values().filter(|s| s.key == req.key).collect();
            mine.sort_by_key(|s| s.spec.session);
            for s in mine {
                let Some(m) = &s.spec.module else { continue };
                let left = s.expires.saturating_sub(now);
                e.modules.push(ModuleFact {
                    kind: Some(m.kind),
                    name: m.name.clone(),
                    version: m.version.clone(),
                    remaining_s: Some(u32::try_from(left / SECOND).unwrap_or(u32::MAX - 1)),
                });
            }
        }
        env.probe(req, &grant, &mut e);
        e
    }

    /// The operator removes a session (`weft signal rm`); false when there
    /// is none.
    pub fn remove_session(&mut self, now: u64, session: SessionId, env: &mut dyn Env) -> bool {
        if !self.sessions.contains_key(&session) {
            return false;
        }
        self.counters.removed += 1;
        self.drop_session(now, session, Removal::Operator, env);
        true
    }

    /// The sessions held here, sorted.
    pub fn sessions(&self, now: u64) -> Vec<SessionView> {
        let mut v: Vec<SessionView> = self
            .sessions
            .iter()
            .filter_map(|(id, s)| {
                Some(SessionView {
                    session: *id,
                    owner: s.owner.clone(),
                    key: s.key.iter().map(|b| format!("{b:02x}")).collect(),
                    module: s.spec.module.clone()?,
                    filter: s.spec.filter,
                    state: s.state,
                    instance: s.installed.instance,
                    lifetime_s: s.lifetime_s,
                    remaining_ns: s.expires.saturating_sub(now),
                    refreshes: s.refreshes,
                    origin: s.origin,
                })
            })
            .collect();
        v.sort_by_key(|s| s.session);
        v
    }

    /// Sessions held here.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Is `session` installed (not still installing) here?
    pub fn has_session(&self, session: SessionId) -> bool {
        self.sessions
            .get(&session)
            .is_some_and(|s| s.state == SessionState::Installed)
    }

    /// The SETUP of an installed session, if a SETUP (for drivers that
    /// need its fields again).
    pub fn session_request(&self, session: SessionId) -> Option<&Request> {
        self.sessions
            .get(&session)
            .map(|s| &s.spec)
            .filter(|r| r.kind == Kind::Setup)
    }
}
