//! `/v1/signal`: what the node's signaling daemon holds
//! ([`crate::signal::SignalNode`], enabled by `[signal]`).
//!
//! * `GET /v1/signal` — sessions (module, owner, filter, state, instance,
//!   lifetime left), recorded upstream peers, counters.
//! * `DELETE /v1/signal/sessions/{id}` — the operator removes a session
//!   and what it installed (needs `all`: a principal removes its own
//!   sessions by signaling REMOVE, signed with its key).

use super::{ApiError, ApiResult, Done, DONE};
use crate::runner::{NoSignal, NodeHandle};
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use weft_signal::{PeerView, SessionId, SessionView};

impl From<NoSignal> for ApiError {
    fn from(e: NoSignal) -> Self {
        let status = match e {
            NoSignal::Stopped => StatusCode::SERVICE_UNAVAILABLE,
            NoSignal::Disabled => StatusCode::CONFLICT,
        };
        ApiError::new(status, e.to_string())
    }
}

/// `GET /v1/signal`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SignalView {
    /// Sessions held here.
    pub sessions: Vec<SessionView>,
    /// Upstream peers recorded per session and flow.
    pub peers: Vec<PeerView>,
    /// Counters.
    pub counters: serde_json::Value,
}

pub(super) async fn get(State(h): State<NodeHandle>) -> ApiResult<SignalView> {
    let v = h
        .call_signal(|_, s, now| SignalView {
            sessions: s.sessions(now),
            peers: s.peers(now),
            counters: s.counters(),
        })
        .await?;
    Ok(Json(v))
}

pub(super) async fn remove(State(h): State<NodeHandle>, UrlPath(id): UrlPath<String>) -> ApiResult<Done> {
    let session: SessionId = id.parse().map_err(ApiError::bad)?;
    let found = h
        .call_signal(move |n, s, now| s.remove_session(n, now, session))
        .await?;
    if !found {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no session {session} here"),
        ));
    }
    Ok(Json(DONE))
}
