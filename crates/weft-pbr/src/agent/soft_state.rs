//! Soft state: the initiator refreshes its paths; every other visit
//! lives `lifetime_factor` refresh intervals past the last refresh (or,
//! while reserved, past the CREATE) and is purged when it expires.

use super::delivery::{OnFail, Outgoing};
use super::{Agent, Env, Phase, Timer, VisitKey};
use crate::wire::{Body, HopError, PathId, Reason};

impl Agent {
    pub(super) fn expire(&mut self, now: u64, key: VisitKey, env: &mut dyn Env) {
        let Some(v) = self.visits.get(&key) else { return };
        if v.expires > now {
            return;
        }
        self.counters.expired += 1;
        let (reason, text) = if v.waiting.is_some() {
            (
                Reason::SetupTimeout,
                "what the visit needs (a plugin class) did not arrive in time",
            )
        } else if v.phase == Phase::Reserved {
            (Reason::SetupTimeout, "no COMMIT from downstream")
        } else {
            (Reason::Timeout, "refreshes stopped")
        };
        let e = HopError {
            hop: key.hop,
            address: v.local,
            reason,
            text: text.into(),
        };
        if key.hop == 0 {
            // The initiator gave up waiting: release what is downstream.
            let secret = self.initiated.get(&key.path).map(|i| i.secret);
            if let (Some(n), Some(secret)) = (v.req.next, secret) {
                self.send(
                    now,
                    Outgoing::new(
                        n.addr,
                        n.egress.local,
                        Body::Release {
                            path: key.path,
                            hop: 1,
                            secret,
                        },
                    ),
                );
            }
        }
        self.fail_visit(now, key, e, env);
    }

    pub(super) fn refresh(&mut self, now: u64, path: PathId) {
        let key = VisitKey { path, hop: 0 };
        let Some(i) = self.initiated.get(&path) else { return };
        let Some(v) = self.visits.get(&key) else { return };
        let (Some(n), true) = (v.req.next, i.up) else { return };
        let every = i.refresh_ms.max(1);
        self.send(
            now,
            Outgoing::new(n.addr, n.egress.local, Body::Refresh { path, hop: 1 }).on_fail(OnFail::Refresh(key)),
        );
        self.timers.insert((now.saturating_add(every), Timer::Refresh(path)));
    }
}
