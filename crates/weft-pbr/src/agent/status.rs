//! STATUS: a request travels the path collecting one record per visit
//! (capped at `max_status_len` octets each), the last visit turns it
//! around, and the reply reaches the initiator as [`Event::Status`].

use super::delivery::{OnFail, Outgoing};
use super::outputs::{Event, VisitStatus};
use super::{Agent, Env, Phase, VisitKey};
use crate::wire::{Body, HopError, StatusRecord};

impl Agent {
    pub(super) fn record(&self, key: VisitKey, env: &mut dyn Env) -> StatusRecord {
        let v = &self.visits[&key];
        let mut j = serde_json::json!({
            "phase": match v.phase { Phase::Reserved => "reserved", Phase::Committed => "committed" },
            "in_label": v.in_label,
            "out_label": v.out_label,
            "plugins": v.req.plugins.iter().map(|p| p.class.clone()).collect::<Vec<_>>(),
            "node": env.visit_status(key),
        });
        let mut s = j.to_string();
        if s.len() > self.cfg.max_status_len {
            j["node"] = serde_json::Value::String("truncated".into());
            s = j.to_string();
            if s.len() > self.cfg.max_status_len {
                s = "{\"truncated\":true}".into();
            }
        }
        StatusRecord {
            hop: key.hop,
            address: v.local,
            status: s,
        }
    }

    /// A STATUS request reached visit `key`: add its record, then pass it
    /// on or turn it around.
    pub(super) fn status_at(&mut self, now: u64, key: VisitKey, mut records: Vec<StatusRecord>, env: &mut dyn Env) {
        let rec = self.record(key, env);
        records.push(rec);
        let v = &self.visits[&key];
        match v.req.next {
            Some(n) => {
                let on_fail = OnFail::Status(key, records.clone());
                self.send(
                    now,
                    Outgoing::new(
                        n.addr,
                        n.egress.local,
                        Body::StatusRequest {
                            path: key.path,
                            hop: key.hop.saturating_add(1),
                            records,
                        },
                    )
                    .on_fail(on_fail),
                );
            }
            None => self.status_reply(now, key, records, None),
        }
    }

    /// Send a STATUS reply upstream from visit `key` (or report it, at the
    /// initiator).
    pub(super) fn status_reply(
        &mut self,
        now: u64,
        key: VisitKey,
        records: Vec<StatusRecord>,
        error: Option<HopError>,
    ) {
        let Some(v) = self.visits.get(&key) else { return };
        if key.hop == 0 {
            let records = records
                .into_iter()
                .map(|r| VisitStatus {
                    hop: r.hop,
                    address: r.address,
                    status: serde_json::from_str(&r.status).unwrap_or(serde_json::Value::String(r.status)),
                })
                .collect();
            self.events.push_back(Event::Status {
                path: key.path,
                records,
                error,
            });
            return;
        }
        let Some(prev) = v.req.prev else { return };
        let local = v.local;
        self.send(
            now,
            Outgoing::new(
                prev,
                local,
                Body::StatusReply {
                    path: key.path,
                    hop: key.hop,
                    records,
                    error,
                },
            ),
        );
    }
}
