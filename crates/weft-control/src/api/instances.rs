//! `/v1/instances`: create, list, control, report, set, replace, bind,
//! unbind and remove instances; the caller may change only what it
//! created (DataRouter table requests aside: the `droute` right covers
//! them).

use super::{body, instance_id, need_filter, need_instance, on_node, own, signer_of, ApiError, ApiResult, Done, DONE};
use crate::auth::{Caller, Right};
use crate::plugins::PluginState;
use crate::runner::NodeHandle;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use weft_dataplane::{FilterId, Node, Owned};

/// Engine counters of an instance.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct InstanceCounters {
    /// Packets handed to the element.
    pub packets: u64,
    /// Bytes handed to the element.
    pub bytes: u64,
    /// Dropped by its verdict.
    pub dropped: u64,
    /// Consumed.
    pub consumed: u64,
    /// Redirected.
    pub redirected: u64,
    /// Emitted.
    pub emitted: u64,
}

/// `GET /v1/instances`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InstanceView {
    /// `#N`.
    pub id: String,
    /// Class.
    pub class: String,
    /// Current configuration.
    pub config: String,
    /// Times replaced.
    pub generation: u32,
    /// Filters whose chains hold it.
    pub filters: Vec<FilterId>,
    /// Counters.
    pub stats: InstanceCounters,
    /// The principal that created it (absent: the operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The domain it belongs to, by name (`root`: plain forwarding's).
    #[serde(default)]
    pub domain: String,
    /// The handlers its element answers, each `[name, access, about]`
    /// (Click's `add_handlers`; the same rows as its class's `doc`).
    #[serde(default)]
    pub handlers: Vec<weft_dataplane::Handler>,
}

/// `POST /v1/instances`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceRequest {
    /// Class.
    pub class: String,
    /// Configuration.
    #[serde(default)]
    pub config: Option<String>,
    /// The domain to create it in, by name or id (absent: the caller's
    /// home domain, else the root); a principal only one it owns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

/// Reply to `POST /v1/instances`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InstanceCreated {
    /// `#N`.
    pub instance: String,
}

/// `POST /v1/instances/{id}/control`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ControlRequest {
    /// The request.
    pub request: String,
}

/// Reply of the control port.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ControlReply {
    /// The reply.
    pub reply: String,
}

/// `POST /v1/instances/{id}/set` (LANA `set key=value`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetRequest {
    /// Key.
    pub key: String,
    /// Value.
    pub value: String,
}

fn yes() -> bool {
    true
}

/// `POST /v1/instances/{id}/replace` (LANA `replace`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplaceRequest {
    /// The new class.
    pub class: String,
    /// A new configuration (absent: keep the current one).
    #[serde(default)]
    pub config: Option<String>,
    /// Carry the state over (default true).
    #[serde(default = "yes")]
    pub keep_state: bool,
}

/// `POST /v1/instances/{id}/bind`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindRequest {
    /// The filter whose chain to join.
    pub filter: FilterId,
    /// Position in the chain (absent: the end).
    #[serde(default)]
    pub position: Option<usize>,
}

/// `POST /v1/instances/{id}/unbind`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnbindRequest {
    /// The filter whose chain to leave.
    pub filter: FilterId,
}

fn instance_views(n: &Node) -> Vec<InstanceView> {
    n.instances()
        .into_iter()
        .map(|i| InstanceView {
            id: i.id.to_string(),
            class: i.class,
            config: i.config,
            generation: i.generation,
            filters: i.filters,
            stats: InstanceCounters {
                packets: i.stats.packets,
                bytes: i.stats.bytes,
                dropped: i.stats.dropped,
                consumed: i.stats.consumed,
                redirected: i.stats.redirected,
                emitted: i.stats.emitted,
            },
            owner: i.owner.map(|o| o.to_string()),
            domain: n
                .domain_of(weft_dataplane::Member::Instance(i.id))
                .and_then(|d| n.domain(d))
                .map(|d| d.name)
                .unwrap_or_default(),
            handlers: i.handlers,
        })
        .collect()
}

pub(super) async fn ls(State(h): State<NodeHandle>) -> ApiResult<Vec<InstanceView>> {
    Ok(Json(on_node(&h, |n| Ok(instance_views(n))).await?))
}

pub(super) async fn new(
    State(h): State<NodeHandle>,
    State(p): State<PluginState>,
    Extension(c): Extension<Caller>,
    b: Bytes,
) -> ApiResult<InstanceCreated> {
    let req: InstanceRequest = body(&b)?;
    let who = c.principal;
    who.need(Right::Instance, "create instances")?;
    who.need_class(&req.class, signer_of(&p, &req.class).as_deref())?;
    let id = on_node(&h, move |n| {
        let config = req.config.as_deref().unwrap_or("");
        let Some(d) = &req.domain else {
            let id = n.create_instance(&req.class, config)?;
            own(n, &who, Owned::Instance(id))?;
            return Ok(id);
        };
        let d = n
            .resolve_domain(d)
            .map_err(|e| ApiError::new(axum::http::StatusCode::NOT_FOUND, e.to_string()))?;
        let owner = n.domain(d)?.owner;
        who.need_owner(owner.as_deref(), &format!("domain {d}"))?;
        let id = n.create_instance_in(d, &req.class, config)?;
        if let Some(o) = who.owner() {
            n.set_owner(Owned::Instance(id), Some(o))?;
        }
        Ok(id)
    })
    .await?;
    Ok(Json(InstanceCreated {
        instance: id.to_string(),
    }))
}

pub(super) async fn rm(
    State(h): State<NodeHandle>,
    Extension(c): Extension<Caller>,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Done> {
    let id = instance_id(&id)?;
    on_node(&h, move |n| {
        need_instance(n, &c.principal, id, "remove instances")?;
        Ok(n.remove_instance(id)?)
    })
    .await?;
    Ok(Json(DONE))
}

pub(super) async fn control(
    State(h): State<NodeHandle>,
    Extension(c): Extension<Caller>,
    UrlPath(id): UrlPath<String>,
    b: Bytes,
) -> ApiResult<ControlReply> {
    let id = instance_id(&id)?;
    // A JSON object {"request": …}, a JSON string, or the raw text (so that
    // `curl --data 131072` works too).
    let request = match serde_json::from_slice::<serde_json::Value>(&b) {
        Ok(serde_json::Value::Object(o)) => match o.get("request") {
            Some(serde_json::Value::String(s)) => s.clone(),
            _ => return Err(ApiError::bad("bad request body: expected {\"request\": \"...\"}")),
        },
        Ok(serde_json::Value::String(s)) => s,
        _ => String::from_utf8(b.to_vec()).map_err(|_| ApiError::bad("the request is not UTF-8"))?,
    };
    let reply = on_node(&h, move |n| {
        // DataRouter tables are control requests to a datarouter instance:
        // the droute right covers them whoever created the instance.
        let is_table = n.instances().iter().any(|i| i.id == id && i.class == "datarouter");
        if !(is_table && c.principal.has(Right::Droute)) {
            need_instance(n, &c.principal, id, "control instances")?;
        }
        Ok(n.control(id, &request)?)
    })
    .await?;
    Ok(Json(ControlReply { reply }))
}

pub(super) async fn report(State(h): State<NodeHandle>, UrlPath(id): UrlPath<String>) -> ApiResult<serde_json::Value> {
    let id = instance_id(&id)?;
    Ok(Json(on_node(&h, move |n| Ok(n.report(id)?)).await?))
}

pub(super) async fn set(
    State(h): State<NodeHandle>,
    Extension(c): Extension<Caller>,
    UrlPath(id): UrlPath<String>,
    b: Bytes,
) -> ApiResult<Done> {
    let id = instance_id(&id)?;
    let req: SetRequest = body(&b)?;
    on_node(&h, move |n| {
        need_instance(n, &c.principal, id, "set instances")?;
        Ok(n.set(id, &req.key, &req.value)?)
    })
    .await?;
    Ok(Json(DONE))
}

pub(super) async fn replace(
    State(h): State<NodeHandle>,
    State(p): State<PluginState>,
    Extension(c): Extension<Caller>,
    UrlPath(id): UrlPath<String>,
    b: Bytes,
) -> ApiResult<Done> {
    let id = instance_id(&id)?;
    let req: ReplaceRequest = body(&b)?;
    c.principal
        .need_class(&req.class, signer_of(&p, &req.class).as_deref())?;
    on_node(&h, move |n| {
        need_instance(n, &c.principal, id, "replace instances")?;
        Ok(n.replace(id, &req.class, req.config.as_deref(), req.keep_state)?)
    })
    .await?;
    Ok(Json(DONE))
}

pub(super) async fn bind(
    State(h): State<NodeHandle>,
    Extension(c): Extension<Caller>,
    UrlPath(id): UrlPath<String>,
    b: Bytes,
) -> ApiResult<Done> {
    let id = instance_id(&id)?;
    let req: BindRequest = body(&b)?;
    on_node(&h, move |n| {
        need_instance(n, &c.principal, id, "bind instances")?;
        need_filter(n, &c.principal, req.filter)?;
        Ok(n.bind(id, req.filter, req.position)?)
    })
    .await?;
    Ok(Json(DONE))
}

pub(super) async fn unbind(
    State(h): State<NodeHandle>,
    Extension(c): Extension<Caller>,
    UrlPath(id): UrlPath<String>,
    b: Bytes,
) -> ApiResult<Done> {
    let id = instance_id(&id)?;
    let req: UnbindRequest = body(&b)?;
    on_node(&h, move |n| {
        need_instance(n, &c.principal, id, "unbind instances")?;
        need_filter(n, &c.principal, req.filter)?;
        Ok(n.unbind(id, req.filter)?)
    })
    .await?;
    Ok(Json(DONE))
}
