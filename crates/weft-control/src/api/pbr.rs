//! `/v1/pbr/…`: explicit paths (`docs/pbr.md`) through the node's
//! PBR daemon ([`crate::pbr::PbrNode`], enabled by `[pbr]` in the node
//! configuration).
//!
//! * `POST /v1/pbr/paths` — a [`weft_pbr::CreateRequest`] (JSON); the node
//!   is the first hop. Replies `{"id": "N@ADDR"}` at once; the path is up
//!   when `GET` says `"state": "up"` (the commit reached the initiator).
//! * `GET /v1/pbr/paths` — paths initiated here and visits held here.
//! * `GET /v1/pbr/paths/{id}[?status=true]` — one path; with `status` a
//!   STATUS request walks the path first and the reply lists every visit
//!   (waits up to 5 s for it). A path that is released, refused or down
//!   (kept for this: `history`), or a visit held here for another
//!   initiator, is answered from what this node knows, with no walk.
//! * `DELETE /v1/pbr/paths/{id}` — release (initiator only).

use super::{body, ApiError, ApiResult};
use crate::pbr::{PathState, PathView, PbrNode};
use crate::runner::{NoPbr, NodeHandle};
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use std::time::{Duration, Instant};
use weft_dataplane::Node;
use weft_pbr::{CreateRequest, PathId, PbrError};

impl From<NoPbr> for ApiError {
    fn from(e: NoPbr) -> Self {
        let status = match e {
            NoPbr::Stopped => StatusCode::SERVICE_UNAVAILABLE,
            NoPbr::Disabled => StatusCode::CONFLICT,
        };
        ApiError::new(status, e.to_string())
    }
}

fn pbr_error(e: PbrError) -> ApiError {
    let status = match e {
        PbrError::UnknownPath(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError::new(status, e.to_string())
}

fn path_id(s: &str) -> Result<PathId, ApiError> {
    s.parse::<PathId>()
        .map_err(|e| ApiError::bad(format!("bad path id {s:?} (N@ADDRESS): {e}")))
}

/// Run `f` on the node and its PBR daemon.
async fn on_pbr<R, F>(h: &NodeHandle, f: F) -> Result<R, ApiError>
where
    R: Send + 'static,
    F: FnOnce(&mut Node, &mut PbrNode, u64) -> Result<R, ApiError> + Send + 'static,
{
    h.call_pbr(f).await?
}

/// `{"id": …}`
#[derive(Debug, serde::Serialize, Deserialize)]
pub struct PathCreated {
    /// The path id, `N@ADDRESS`.
    pub id: String,
}

pub(super) async fn create(State(h): State<NodeHandle>, b: Bytes) -> ApiResult<PathCreated> {
    let req: CreateRequest = body(&b)?;
    let fs = &req.flowspec;
    crate::config::words::check_ports(fs.protocol, !fs.sport.is_any() || !fs.dport.is_any()).map_err(ApiError::bad)?;
    let id = on_pbr(&h, move |n, p, now| p.create(n, now, req).map_err(pbr_error)).await?;
    Ok(Json(PathCreated { id: id.to_string() }))
}

pub(super) async fn ls(State(h): State<NodeHandle>) -> ApiResult<Vec<PathView>> {
    Ok(Json(on_pbr(&h, |_, p, _| Ok(p.paths())).await?))
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct GetQuery {
    #[serde(default)]
    status: bool,
}

pub(super) async fn get(
    State(h): State<NodeHandle>,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<GetQuery>,
) -> ApiResult<PathView> {
    let id = path_id(&id)?;
    let missing = move || ApiError::new(StatusCode::NOT_FOUND, format!("no path {id}"));
    if !q.status {
        return Ok(Json(on_pbr(&h, move |_, p, _| p.path(id).ok_or_else(missing)).await?));
    }
    let before = on_pbr(&h, move |n, p, now| {
        let v = p.path(id).ok_or_else(missing)?;
        if v.role != "initiator" || !matches!(v.state, PathState::Up | PathState::Pending) {
            // A finished path (kept for status: `history` in `[pbr]`) has
            // nobody left to ask, and a visit held for another initiator is
            // not this node's to walk: what is known here is the answer,
            // with the last STATUS reply taken while the path was up.
            return Ok(Err(v));
        }
        p.request_status(n, now, id).map_err(pbr_error)?;
        Ok(Ok(v.status_ms))
    })
    .await?;
    let before = match before {
        Ok(b) => b,
        Err(v) => return Ok(Json(v)),
    };
    // The reply walks the path and back: wait for a newer record set.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let v = on_pbr(&h, move |_, p, _| p.path(id).ok_or_else(missing)).await?;
        if v.status_ms != before || Instant::now() >= deadline {
            return Ok(Json(v));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(super) async fn release(State(h): State<NodeHandle>, UrlPath(id): UrlPath<String>) -> ApiResult<PathCreated> {
    let id = path_id(&id)?;
    on_pbr(&h, move |n, p, now| p.release(n, now, id).map_err(pbr_error)).await?;
    Ok(Json(PathCreated { id: id.to_string() }))
}
