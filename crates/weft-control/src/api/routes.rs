//! `/v1/routes`: the FIB; adding and removing a route needs the `route`
//! right for its prefix.

use super::{body, on_node, port_name, ApiError, ApiResult, Done, DONE};
use crate::auth::{Caller, Right};
use crate::config::words::parse_route_prefix;
use crate::runner::NodeHandle;
use axum::body::Bytes;
use axum::extract::State;
use axum::{Extension, Json};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use weft_dataplane::{Node, RouteKind};

/// `GET /v1/routes`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RouteView {
    /// Destination.
    pub prefix: IpNet,
    /// Gateway.
    pub via: Option<IpAddr>,
    /// Out port name.
    pub port: String,
    /// Origin.
    pub kind: RouteKind,
}

/// `POST /v1/routes`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRequest {
    /// Prefix or `default`.
    pub prefix: String,
    /// Gateway.
    #[serde(default)]
    pub via: Option<IpAddr>,
    /// Out port name.
    #[serde(default)]
    pub port: Option<String>,
    /// Replace the route for the prefix if there is one (`ip route
    /// replace`); without it a prefix that has a route is refused with 409,
    /// as `ip route add` refuses ("File exists").
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replace: bool,
}

/// `DELETE /v1/routes`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteDelete {
    /// Prefix or `default`.
    pub prefix: String,
}

fn route_views(n: &Node) -> Vec<RouteView> {
    n.routes()
        .into_iter()
        .map(|r| RouteView {
            prefix: r.prefix,
            via: r.via,
            port: port_name(n, r.port),
            kind: r.kind,
        })
        .collect()
}

pub(super) async fn ls(State(h): State<NodeHandle>) -> ApiResult<Vec<RouteView>> {
    Ok(Json(on_node(&h, |n| Ok(route_views(n))).await?))
}

pub(super) async fn add(State(h): State<NodeHandle>, Extension(c): Extension<Caller>, b: Bytes) -> ApiResult<Done> {
    let req: RouteRequest = body(&b)?;
    let prefix = parse_route_prefix(&req.prefix, req.via).map_err(|e| ApiError::bad(e.to_string()))?;
    c.principal.need_prefix(Right::Route, Some(prefix), "add a route")?;
    on_node(&h, move |n| {
        let port = match &req.port {
            Some(p) => Some(n.port_id(p)?),
            None => None,
        };
        if req.replace {
            n.replace_route(prefix, req.via, port)?;
            tracing::info!(node = n.name(), %prefix, via = ?req.via, "route replaced");
        } else {
            n.add_route(prefix, req.via, port)?;
            tracing::info!(node = n.name(), %prefix, via = ?req.via, "route added");
        }
        Ok(())
    })
    .await?;
    Ok(Json(DONE))
}

pub(super) async fn rm(State(h): State<NodeHandle>, Extension(c): Extension<Caller>, b: Bytes) -> ApiResult<Done> {
    let req: RouteDelete = body(&b)?;
    let prefix = parse_route_prefix(&req.prefix, None).map_err(|e| ApiError::bad(e.to_string()))?;
    c.principal.need_prefix(Right::Route, Some(prefix), "remove a route")?;
    on_node(&h, move |n| Ok(n.remove_route(prefix)?)).await?;
    Ok(Json(DONE))
}
