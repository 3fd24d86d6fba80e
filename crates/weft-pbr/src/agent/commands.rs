//! What the initiator asks: set up a path ([`CreateRequest`]), release
//! it, ask its visits for their status — and why such a command fails
//! ([`PbrError`]).

use super::delivery::Outgoing;
use super::outputs::Event;
use super::{sha256, Agent, Env, Initiated, VisitKey};
use crate::wire::{
    Body, Create, ExplicitRoute, FlowSpec, Hop, HopError, Message, PathId, Plugin, MAX_WIRE_HOPS, SECRET_LEN,
};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// What the initiator asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateRequest {
    /// The walk; the first hop's address must be this node's.
    pub hops: Vec<Hop>,
    /// Which packets follow it.
    pub flowspec: FlowSpec,
    /// Plugins to deploy, by hop index.
    pub plugins: Vec<Plugin>,
    /// Bandwidth to reserve on every egress, bits/s (0 = best effort).
    pub bandwidth_bps: u64,
    /// Refresh interval, ms.
    pub refresh_ms: u32,
}

/// Error returned by the agent's commands ([`Agent::create`],
/// [`Agent::release`], [`Agent::request_status`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PbrError {
    /// The walk is empty.
    #[error("the walk is empty")]
    EmptyRoute,
    /// The first hop is not one of this node's addresses.
    #[error("the first hop {0} is not an address of this node")]
    NotLocal(IpAddr),
    /// More hops than the limit.
    #[error("{hops} hops is more than the limit of {max}")]
    HopLimit {
        /// Hops asked for.
        hops: usize,
        /// The limit.
        max: usize,
    },
    /// A plugin names a hop outside the walk.
    #[error("plugin {class} targets hop {hop}, outside the walk")]
    BadPluginHop {
        /// Class.
        class: String,
        /// Hop index.
        hop: u8,
    },
    /// Flowspec prefixes of different families, or reversed port ranges.
    #[error("invalid flowspec")]
    BadFlowSpec,
    /// Refresh interval 0.
    #[error("refresh interval must be at least 1 ms")]
    BadRefresh,
    /// The CREATE does not fit one datagram.
    #[error("the CREATE_PATH message does not fit one datagram")]
    TooLong,
    /// This node refused (the first hop's own reservation).
    #[error("refused here: {0}")]
    Refused(HopError),
    /// No path with this id was initiated here.
    #[error("no path {0} initiated here")]
    UnknownPath(PathId),
}

impl Agent {
    /// Set up a path whose first hop is this node. Reserves here and sends
    /// CREATE_PATH downstream; the outcome arrives as [`Event::PathUp`] or
    /// [`Event::Refused`]. `secret` must be fresh randomness: its SHA-256
    /// goes out with the CREATE, and only whoever knows it can release.
    pub fn create(
        &mut self,
        now_ms: u64,
        req: CreateRequest,
        secret: [u8; SECRET_LEN],
        env: &mut dyn Env,
    ) -> Result<PathId, PbrError> {
        let first = req.hops.first().ok_or(PbrError::EmptyRoute)?;
        if !self.is_local(first.addr) {
            return Err(PbrError::NotLocal(first.addr));
        }
        if req.hops.len() > self.cfg.max_hops.min(MAX_WIRE_HOPS) {
            return Err(PbrError::HopLimit {
                hops: req.hops.len(),
                max: self.cfg.max_hops,
            });
        }
        if let Some(p) = req.plugins.iter().find(|p| p.hop as usize >= req.hops.len()) {
            return Err(PbrError::BadPluginHop {
                class: p.class.clone(),
                hop: p.hop,
            });
        }
        if !req.flowspec.is_valid() {
            return Err(PbrError::BadFlowSpec);
        }
        if req.refresh_ms == 0 {
            return Err(PbrError::BadRefresh);
        }
        let path = PathId {
            initiator: first.addr,
            number: self.next_number,
        };
        let create = Create {
            path,
            route: ExplicitRoute {
                hops: req.hops,
                current: 0,
            },
            flowspec: req.flowspec,
            plugins: req.plugins,
            bandwidth_bps: req.bandwidth_bps,
            refresh_ms: req.refresh_ms,
            auth: sha256(&secret),
        };
        if Message::new(0, Body::Create(create.clone())).buffer_len().is_err() {
            return Err(PbrError::TooLong);
        }
        self.next_number = self.next_number.wrapping_add(1);
        self.initiated.insert(
            path,
            Initiated {
                secret,
                up: false,
                refresh_ms: req.refresh_ms as u64,
            },
        );
        if let Err(e) = self.accept_create(now_ms, None, create, Vec::new(), env) {
            self.initiated.remove(&path);
            return Err(PbrError::Refused(e));
        }
        Ok(path)
    }

    /// Tear down a path this node initiated: release here, send
    /// RELEASE_PATH (carrying the secret) downstream, report
    /// [`Event::Released`].
    pub fn release(&mut self, now_ms: u64, id: PathId, env: &mut dyn Env) -> Result<(), PbrError> {
        let init = self.initiated.remove(&id).ok_or(PbrError::UnknownPath(id))?;
        let key = VisitKey { path: id, hop: 0 };
        if let Some(v) = self.visits.remove(&key) {
            env.release(key);
            if let Some(n) = v.req.next {
                self.send(
                    now_ms,
                    Outgoing::new(
                        n.addr,
                        n.egress.local,
                        Body::Release {
                            path: id,
                            hop: 1,
                            secret: init.secret,
                        },
                    ),
                );
            }
        }
        self.events.push_back(Event::Released { path: id });
        Ok(())
    }

    /// Ask every visit of a path this node initiated for its status; the
    /// answer arrives as [`Event::Status`].
    pub fn request_status(&mut self, now_ms: u64, id: PathId, env: &mut dyn Env) -> Result<(), PbrError> {
        let key = VisitKey { path: id, hop: 0 };
        if !self.initiated.contains_key(&id) || !self.visits.contains_key(&key) {
            return Err(PbrError::UnknownPath(id));
        }
        self.status_at(now_ms, key, Vec::new(), env);
        Ok(())
    }
}
