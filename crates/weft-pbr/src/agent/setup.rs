//! The two phases at one visit (PromethOS figure 3): CREATE_PATH
//! reserves and travels downstream; COMMIT installs and travels back
//! upstream; a refusal or a failed commit tears the visit down and tells
//! upstream.

use super::delivery::{OnFail, Outgoing};
use super::outputs::Event;
use super::{Agent, Env, NextHop, OutLabel, Phase, Refusal, Timer, Visit, VisitInstall, VisitKey, VisitRequest};
use crate::wire::{Body, Create, HopError, RawObject, Reason, FIRST_LABEL, MAX_LABEL};
use std::net::IpAddr;

impl Agent {
    /// Phase 1 at this node: check, reserve, forward (or, at the last
    /// visit, commit). Err: the refusal to send upstream; nothing is held.
    pub(super) fn accept_create(
        &mut self,
        now: u64,
        prev: Option<IpAddr>,
        c: Create,
        forward: Vec<RawObject>,
        env: &mut dyn Env,
    ) -> Result<(), HopError> {
        let i = c.route.current as usize;
        let n = c.route.hops.len();
        let here = c.route.hops[i].addr;
        let refuse = |reason, text: String| HopError {
            hop: i as u8,
            address: here,
            reason,
            text,
        };
        if n > self.cfg.max_hops {
            return Err(refuse(
                Reason::HopLimit,
                format!("{n} hops is more than the limit of {}", self.cfg.max_hops),
            ));
        }
        if !self.is_local(here) {
            self.counters.bad_message += 1;
            return Err(refuse(Reason::BadMessage, "hop address is not this node's".into()));
        }
        if !c.flowspec.is_valid() {
            return Err(refuse(Reason::BadMessage, "invalid flowspec".into()));
        }
        let key = VisitKey {
            path: c.path,
            hop: i as u8,
        };
        if self.visits.contains_key(&key) {
            self.counters.bad_message += 1;
            return Err(refuse(Reason::BadMessage, "visit exists".into()));
        }
        let next = match c.route.hops.get(i + 1) {
            Some(h) => {
                let egress = env.egress(h.addr, !h.loose).map_err(|r| refuse(r.reason, r.text))?;
                Some(NextHop {
                    addr: h.addr,
                    strict: !h.loose,
                    egress,
                })
            }
            None => None,
        };
        let req = VisitRequest {
            hop_count: n as u8,
            prev,
            next,
            flowspec: c.flowspec.clone(),
            bandwidth_bps: c.bandwidth_bps,
            plugins: c.plugins.iter().filter(|p| p.hop as usize == i).cloned().collect(),
        };
        env.reserve(key, &req).map_err(|r| refuse(r.reason, r.text))?;
        let refresh_ms = c.refresh_ms as u64;
        // Reserved state waits for its COMMIT at most one lifetime.
        let expires = now.saturating_add(self.lifetime(refresh_ms));
        self.visits.insert(
            key,
            Visit {
                req,
                local: here,
                phase: Phase::Reserved,
                in_label: None,
                out_label: None,
                auth: c.auth,
                refresh_ms,
                expires,
                waiting: None,
                down_mtu: None,
                mtu: None,
            },
        );
        self.timers.insert((expires, Timer::Expire(key)));
        match next {
            None => self.commit_visit(now, key, OutLabel::Pop, env),
            Some(nh) => {
                let mut c = c;
                c.route.current += 1;
                self.send(
                    now,
                    Outgoing::new(nh.addr, nh.egress.local, Body::Create(c))
                        .forwarding(forward)
                        .on_fail(OnFail::Create(key)),
                );
            }
        }
        Ok(())
    }

    /// Commit the visits whose commit [`Env::ready`] held, now that the
    /// driver has what they waited for (a fetched class): each is asked
    /// again, then committed, held again or refused.
    pub fn resume(&mut self, now_ms: u64, env: &mut dyn Env) {
        let mut held: Vec<(VisitKey, OutLabel)> = self
            .visits
            .iter_mut()
            .filter_map(|(k, v)| v.waiting.take().map(|o| (*k, o)))
            .collect();
        held.sort_by_key(|(k, _)| *k);
        for (key, out) in held {
            self.commit_visit(now_ms, key, out, env);
        }
    }

    /// Phase 2 at one visit: install, then COMMIT upstream (or PathUp).
    pub(super) fn commit_visit(&mut self, now: u64, key: VisitKey, out: OutLabel, env: &mut dyn Env) {
        let Some(v) = self.visits.get(&key) else { return };
        let (local, refresh_ms) = (v.local, v.refresh_ms);
        let result = match env.ready(key, &v.req) {
            Ok(false) => {
                self.counters.held_commits += 1;
                if let Some(v) = self.visits.get_mut(&key) {
                    v.waiting = Some(out);
                }
                return;
            }
            Ok(true) => env.commit(
                key,
                &VisitInstall {
                    request: &v.req,
                    out,
                    downstream_mtu: v.down_mtu,
                },
            ),
            Err(r) => Err(r),
        };
        let result = match result {
            Ok(None) if key.hop > 0 => Err(Refusal::new(Reason::InstallFailed, "no label allocated")),
            Ok(Some(l)) if !(FIRST_LABEL..=MAX_LABEL).contains(&l) => {
                Err(Refusal::new(Reason::InstallFailed, "label out of range"))
            }
            r => r,
        };
        match result {
            Err(r) => {
                self.counters.refused += 1;
                let e = HopError {
                    hop: key.hop,
                    address: local,
                    reason: r.reason,
                    text: r.text,
                };
                // Visits downstream are committed already; nobody will
                // refresh them, so their soft state purges them.
                self.fail_visit(now, key, e, env);
            }
            Ok(in_label) => {
                self.counters.committed += 1;
                let lifetime = self.lifetime(refresh_ms);
                let mtu = env.visit_mtu(key);
                let Some(v) = self.visits.get_mut(&key) else { return };
                v.phase = Phase::Committed;
                v.mtu = mtu;
                v.in_label = in_label;
                v.out_label = match out {
                    OutLabel::Label(l) => Some(l),
                    OutLabel::Pop => None,
                };
                if key.hop == 0 {
                    v.expires = u64::MAX;
                    let refresh = v.refresh_ms;
                    if let Some(i) = self.initiated.get_mut(&key.path) {
                        i.up = true;
                    }
                    self.events.push_back(Event::PathUp { path: key.path });
                    if v.req.next.is_some() {
                        self.timers
                            .insert((now.saturating_add(refresh), Timer::Refresh(key.path)));
                    }
                } else {
                    v.expires = now.saturating_add(lifetime);
                    let (prev, local) = (v.req.prev, v.local);
                    let expires = v.expires;
                    self.timers.insert((expires, Timer::Expire(key)));
                    if let (Some(prev), Some(label)) = (prev, in_label) {
                        self.send(
                            now,
                            Outgoing::new(
                                prev,
                                local,
                                Body::Commit {
                                    path: key.path,
                                    hop: key.hop,
                                    label,
                                    mtu,
                                },
                            )
                            .on_fail(OnFail::Commit(key)),
                        );
                    }
                }
            }
        }
    }

    /// Tear a visit down because of `error` (a refusal from downstream, a
    /// PATH_DOWN, a dead neighbour, a failed commit) and tell upstream:
    /// REFUSE while setting up, PATH_DOWN once committed — or the event,
    /// at the initiator.
    pub(super) fn fail_visit(&mut self, now: u64, key: VisitKey, error: HopError, env: &mut dyn Env) {
        let Some(v) = self.visits.remove(&key) else { return };
        env.release(key);
        let setting_up = v.phase == Phase::Reserved;
        if key.hop == 0 {
            let up = self.initiated.remove(&key.path).is_some_and(|i| i.up);
            let HopError {
                hop,
                address,
                reason,
                text,
            } = error;
            self.events.push_back(if up {
                Event::PathDown {
                    path: key.path,
                    hop,
                    address,
                    reason,
                    text,
                }
            } else {
                Event::Refused {
                    path: key.path,
                    hop,
                    address,
                    reason,
                    text,
                }
            });
            return;
        }
        let Some(prev) = v.req.prev else { return };
        let body = if setting_up {
            Body::Refuse {
                path: key.path,
                hop: key.hop,
                error,
            }
        } else {
            Body::PathDown {
                path: key.path,
                hop: key.hop,
                error,
            }
        };
        self.send(now, Outgoing::new(prev, v.local, body));
    }
}
