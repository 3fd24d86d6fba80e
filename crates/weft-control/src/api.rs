//! The management API: HTTP/JSON over a Unix socket (and optionally TCP),
//! speaking the CLI's nouns. Every handler is one [`NodeHandle::call`]: the
//! API is a translation of the node handle, never a second path into node
//! state.
//!
//! | method | path | body → reply |
//! |---|---|---|
//! | GET | `/v1/node` | → [`NodeView`] |
//! | GET | `/v1/metrics` | → Prometheus text |
//! | GET | `/v1/filters` | → `[`[`FilterView`]`]` |
//! | POST | `/v1/filters` | [`FilterRequest`] → [`FilterCreated`] |
//! | DELETE | `/v1/filters/{id}` | → [`Done`] |
//! | GET | `/v1/instances` | → `[`[`InstanceView`]`]` |
//! | POST | `/v1/instances` | [`InstanceRequest`] → [`InstanceCreated`] |
//! | DELETE | `/v1/instances/{id}` | → [`Done`] |
//! | POST | `/v1/instances/{id}/control` | [`ControlRequest`] (or a bare string) → [`ControlReply`] |
//! | GET | `/v1/instances/{id}/report` | → the instance's report |
//! | POST | `/v1/instances/{id}/set` | [`SetRequest`] → [`Done`] |
//! | POST | `/v1/instances/{id}/replace` | [`ReplaceRequest`] → [`Done`] |
//! | POST | `/v1/instances/{id}/bind` | [`BindRequest`] → [`Done`] |
//! | POST | `/v1/instances/{id}/unbind` | [`UnbindRequest`] → [`Done`] |
//! | GET | `/v1/classes` | → `[`[`ClassView`]`]` |
//! | POST | `/v1/classes` | [`ClassRequest`] → [`Done`] |
//! | DELETE | `/v1/classes/{name}` | → [`Done`] |
//! | GET | `/v1/routes` | → `[`[`RouteView`]`]` |
//! | POST | `/v1/routes` | [`RouteRequest`] → [`Done`] |
//! | DELETE | `/v1/routes` | [`RouteDelete`] → [`Done`] |
//! | GET | `/v1/plugins` | → `[`[`PluginView`](crate::plugins::PluginView)`]` |
//! | POST | `/v1/plugins` | [`PluginLoadRequest`](crate::plugins::PluginLoadRequest) → [`PluginLoaded`](crate::plugins::PluginLoaded) |
//! | DELETE | `/v1/plugins/{name}` | → [`Done`] (refused while instances exist) |
//!
//! With a `[plugins]` section, `POST /v1/filters` naming a `plugin` the
//! node lacks (or `NAME@HASH`) first fetches, verifies and loads it.
//!
//! Instance ids travel as `"#N"` strings (`N` and `class#N` are accepted on
//! input; in a URL path use `N`). Errors are `{"error": "..."}` with a 4xx
//! status and the node's own error text; a principal refused for a missing
//! right gets `403` with `"missing": RIGHT` too.
//!
//! Every request passes the size limits (`weft_http::limits`) and the gate
//! ([`crate::auth::guard`]) first: who is asking, may it use this noun, and
//! an audit line for every change. Handlers check the rest of the caller's
//! rights — prefixes, classes, and that it changes only what it created
//! ([`weft_dataplane::Owned`]) — with the node's state in hand.

mod pbr;

use crate::auth::{guard, Auth, Caller, Credential, Principal, Refused, Right};
use crate::config::add_filter_with_plugin;
use crate::config::words::{parse_route_prefix, AddrOrPrefix, MacAddr, PortRange, Proto};
use crate::config::ApiSettings;
use crate::plugins::PluginState;
use crate::runner::{NodeHandle, NodeStopped};
use axum::body::Bytes;
use axum::extract::{FromRef, Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Extension;
use axum::{Json, Router};
use ipnet::IpNet;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use weft_dataplane::element::ClassKind;
use weft_dataplane::{
    ClassDoc, FilterId, FilterSpec, Handler, Hook, InstanceId, Match, Node, NodeError, Owned, RouteKind,
};
use weft_http::unix::SocketError;
use weft_http::{Limits, Listener, Peer, Privileged, ServeStats};

// ----- what travels ----------------------------------------------------------

/// `GET /v1/node`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeView {
    /// Node name.
    pub name: String,
    /// Pipeline snapshot version (bumped by every change).
    pub version: u64,
    /// Ports.
    pub ports: Vec<PortView>,
    /// Non-zero drop counters by reason.
    pub drops: BTreeMap<String, u64>,
    /// ICMP errors the node sent.
    pub icmp_errors_sent: u64,
}

/// A port in [`NodeView`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PortView {
    /// Port number.
    pub id: u16,
    /// Name.
    pub name: String,
    /// MAC.
    pub mac: MacAddr,
    /// IP MTU.
    pub mtu: u16,
    /// Addresses.
    pub addrs: Vec<IpNet>,
    /// IPv6 link-local address.
    pub link_local: Ipv6Addr,
    /// Link state.
    pub up: bool,
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames sent.
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
}

/// One instance in a filter's path.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PathEntry {
    /// `#N`.
    pub id: String,
    /// Class.
    pub class: String,
}

/// `GET /v1/filters` (rule order within each hook).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FilterView {
    /// Filter id.
    pub id: FilterId,
    /// Hook.
    pub hook: Hook,
    /// Receiving port name.
    pub in_port: Option<String>,
    /// Protocol.
    pub proto: Option<Proto>,
    /// Source.
    pub src: Option<AddrOrPrefix>,
    /// Destination.
    pub dst: Option<AddrOrPrefix>,
    /// Source ports.
    pub sport: Option<PortRange>,
    /// Destination ports.
    pub dport: Option<PortRange>,
    /// The path.
    pub chain: Vec<PathEntry>,
    /// Packets matched.
    pub hits: u64,
    /// The principal that created it (absent: the operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// `POST /v1/filters`: a filter spec in the CLI's words, plus PromethOS'
/// `plugin` / `autoinstance` / `config`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterRequest {
    /// Hook name (default `prerouting`).
    #[serde(default)]
    pub hook: Option<String>,
    /// Receiving port name.
    #[serde(default)]
    pub in_port: Option<String>,
    /// Protocol.
    #[serde(default)]
    pub proto: Option<Proto>,
    /// Source address or prefix.
    #[serde(default)]
    pub src: Option<AddrOrPrefix>,
    /// Destination address or prefix.
    #[serde(default)]
    pub dst: Option<AddrOrPrefix>,
    /// Source ports.
    #[serde(default)]
    pub sport: Option<PortRange>,
    /// Destination ports.
    #[serde(default)]
    pub dport: Option<PortRange>,
    /// Existing instances, in path order (`#N`).
    #[serde(default)]
    pub chain: Vec<String>,
    /// Class of an instance to create for this filter.
    #[serde(default)]
    pub plugin: Option<String>,
    /// Create the `plugin` instance (required with `plugin`).
    #[serde(default)]
    pub autoinstance: bool,
    /// Its configuration.
    #[serde(default)]
    pub config: Option<String>,
    /// Rule position within the hook (0 = first); absent: append.
    #[serde(default)]
    pub position: Option<usize>,
    /// `"all"`: match every packet. Required when no match field is given,
    /// so that a catch-all is never installed by accident.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_all: Option<MatchAll>,
}

/// The one value of [`FilterRequest::match_all`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchAll {
    /// Every packet.
    All,
}

/// Reply to `POST /v1/filters`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FilterCreated {
    /// The new filter.
    pub filter: FilterId,
    /// The instance created for it (`#N`), if any.
    pub instance: Option<String>,
    /// The plugin fetched on demand for it, if one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loaded: Option<crate::plugins::PluginLoaded>,
}

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
    /// Filters whose paths hold it.
    pub filters: Vec<FilterId>,
    /// Counters.
    pub stats: InstanceCounters,
    /// The principal that created it (absent: the operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The handlers its element answers, each `[name, access, about]`
    /// (Click's `add_handlers`; the same rows as its class's `doc`).
    #[serde(default)]
    pub handlers: Vec<Handler>,
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
    /// The filter whose path to join.
    pub filter: FilterId,
    /// Position in the path (absent: the end).
    #[serde(default)]
    pub position: Option<usize>,
}

/// `POST /v1/instances/{id}/unbind`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnbindRequest {
    /// The filter whose path to leave.
    pub filter: FilterId,
}

/// `GET /v1/classes`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClassView {
    /// Name.
    pub name: String,
    /// Native or wasm.
    pub kind: ClassKind,
    /// Documentation.
    pub doc: ClassDoc,
}

/// `POST /v1/classes` (LANA `add`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassRequest {
    /// A built-in class name.
    pub name: String,
}

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
}

/// `DELETE /v1/routes`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteDelete {
    /// Prefix or `default`.
    pub prefix: String,
}

/// Reply of calls that return nothing else.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Done {
    /// Always true.
    pub ok: bool,
}

const DONE: Done = Done { ok: true };

// ----- errors ---------------------------------------------------------------

/// An error reply: a status and the message sent as `{"error": "..."}`
/// (with `"missing": RIGHT` when a principal lacked a right).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong.
    pub message: String,
    /// The right a refused principal lacked (403 only).
    pub missing: Option<String>,
}

impl ApiError {
    /// An error with `status`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            missing: None,
        }
    }

    fn bad(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<Refused> for ApiError {
    fn from(e: Refused) -> Self {
        ApiError {
            status: StatusCode::FORBIDDEN,
            message: e.message,
            missing: Some(e.missing),
        }
    }
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        let status = match &e {
            NodeError::UnknownInstance(_)
            | NodeError::UnknownFilter(_)
            | NodeError::UnknownRoute(_)
            | NodeError::UnknownClass(_)
            | NodeError::UnknownPort(_) => StatusCode::NOT_FOUND,
            NodeError::ClassExists(_)
            | NodeError::ClassInUse(..)
            | NodeError::InstanceInUse(..)
            | NodeError::PortExists(_)
            | NodeError::AlreadyBound(..) => StatusCode::CONFLICT,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<NodeStopped> for ApiError {
    fn from(e: NodeStopped) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self.missing {
            Some(m) => serde_json::json!({ "error": self.message, "missing": m }),
            None => serde_json::json!({ "error": self.message }),
        };
        (self.status, Json(body)).into_response()
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// A request body: one JSON object. An empty body, an array (serde would
/// fill a struct's defaulted fields from an empty one) or any other value
/// is refused with the reason.
pub(crate) fn body<T: DeserializeOwned>(b: &Bytes) -> Result<T, ApiError> {
    if b.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad("empty request body: expected a JSON object"));
    }
    let v: serde_json::Value =
        serde_json::from_slice(b).map_err(|e| ApiError::bad(format!("bad request body: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::bad(format!(
            "bad request body: expected a JSON object, got {}",
            match v {
                serde_json::Value::Array(_) => "an array",
                serde_json::Value::String(_) => "a string",
                serde_json::Value::Number(_) => "a number",
                serde_json::Value::Bool(_) => "a boolean",
                _ => "null",
            }
        )));
    }
    serde_json::from_value(v).map_err(|e| ApiError::bad(format!("bad request body: {e}")))
}

fn instance_id(s: &str) -> Result<InstanceId, ApiError> {
    s.parse::<InstanceId>().map_err(ApiError::bad)
}

/// Run `f` on the node; both a stopped node and the node's refusal become
/// error replies.
async fn on_node<R, F>(h: &NodeHandle, f: F) -> Result<R, ApiError>
where
    R: Send + 'static,
    F: FnOnce(&mut Node) -> Result<R, ApiError> + Send + 'static,
{
    h.call(f).await?
}

// ----- handlers -------------------------------------------------------------

fn port_name(n: &Node, id: u16) -> String {
    n.ports()
        .into_iter()
        .find(|p| p.id == id)
        .map(|p| p.cfg.name)
        .unwrap_or_else(|| id.to_string())
}

fn node_view(n: &Node) -> NodeView {
    NodeView {
        name: n.name().to_string(),
        version: n.pipeline().version,
        ports: n
            .ports()
            .into_iter()
            .map(|p| PortView {
                id: p.id,
                name: p.cfg.name,
                mac: MacAddr(p.cfg.mac),
                mtu: p.cfg.mtu,
                addrs: p.cfg.addrs,
                link_local: p.link_local,
                up: p.up,
                rx_packets: p.stats.rx_packets,
                rx_bytes: p.stats.rx_bytes,
                tx_packets: p.stats.tx_packets,
                tx_bytes: p.stats.tx_bytes,
            })
            .collect(),
        drops: n.drops().into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        icmp_errors_sent: n.icmp_errors_sent(),
    }
}

async fn node_get(State(h): State<NodeHandle>) -> ApiResult<NodeView> {
    Ok(Json(on_node(&h, |n| Ok(node_view(n))).await?))
}

async fn metrics(State(h): State<NodeHandle>) -> Result<Response, ApiError> {
    let counters = on_node(&h, |n| Ok(crate::metrics::NodeCounters::of(n))).await?;
    let text = crate::metrics::render(counters, h.io_counters());
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response())
}

fn filter_views(n: &Node) -> Vec<FilterView> {
    n.filters()
        .into_iter()
        .map(|f| FilterView {
            id: f.id,
            hook: f.hook,
            in_port: f.m.in_port.map(|p| port_name(n, p)),
            proto: f.m.proto.map(Proto),
            src: f.m.src.map(AddrOrPrefix),
            dst: f.m.dst.map(AddrOrPrefix),
            sport: f.m.sport.map(|(a, b)| PortRange(a, b)),
            dport: f.m.dport.map(|(a, b)| PortRange(a, b)),
            chain: f
                .chain
                .into_iter()
                .map(|(id, class)| PathEntry {
                    id: id.to_string(),
                    class,
                })
                .collect(),
            hits: f.hits,
            owner: f.owner.map(|o| o.to_string()),
        })
        .collect()
}

async fn filters_ls(State(h): State<NodeHandle>) -> ApiResult<Vec<FilterView>> {
    Ok(Json(on_node(&h, |n| Ok(filter_views(n))).await?))
}

/// The signer (key id) of plugin class `class`, if it is a loaded plugin.
fn signer_of(p: &PluginState, class: &str) -> Option<String> {
    let p = p.as_ref()?;
    p.loaded().into_iter().find(|i| i.name == class).map(|i| i.signer)
}

/// Require that `who` may change instance `id` (it created it).
fn need_instance(n: &Node, who: &Principal, id: InstanceId, what: &str) -> Result<(), ApiError> {
    who.need(Right::Instance, what)?;
    let owner = n.owner(Owned::Instance(id))?;
    Ok(who.need_owner(owner.as_deref(), &format!("instance {id}"))?)
}

/// Require that `who` may change filter `id`.
fn need_filter(n: &Node, who: &Principal, id: FilterId) -> Result<(), ApiError> {
    let owner = n.owner(Owned::Filter(id))?;
    Ok(who.need_owner(owner.as_deref(), &format!("filter {id}"))?)
}

/// Record `who` as the owner of what it created (nothing for the operator).
fn own(n: &mut Node, who: &Principal, what: Owned) -> Result<(), ApiError> {
    if let Some(o) = who.owner() {
        n.set_owner(what, Some(o))?;
    }
    Ok(())
}

fn filter_add(
    n: &mut Node,
    req: FilterRequest,
    who: &Principal,
    signer: Option<String>,
) -> Result<FilterCreated, ApiError> {
    crate::config::words::check_ports(req.proto.map(|p| p.0), req.sport.is_some() || req.dport.is_some())
        .map_err(ApiError::bad)?;
    let hook = match &req.hook {
        Some(h) => h.parse::<Hook>().map_err(ApiError::bad)?,
        None => Hook::Prerouting,
    };
    let in_port = match &req.in_port {
        Some(p) => Some(n.port_id(p)?),
        None => None,
    };
    let chain = req
        .chain
        .iter()
        .map(|s| instance_id(s))
        .collect::<Result<Vec<_>, _>>()?;
    let plugin = match (&req.plugin, req.autoinstance) {
        (Some(p), true) => Some(p.as_str()),
        (Some(_), false) => {
            return Err(ApiError::bad(
                "a plugin needs autoinstance (or bind existing instances with chain)",
            ))
        }
        (None, true) => return Err(ApiError::bad("autoinstance needs a plugin class")),
        (None, false) => None,
    };
    if req.config.is_some() && plugin.is_none() {
        return Err(ApiError::bad(
            "config configures the plugin instance; give a plugin too",
        ));
    }
    let m = Match {
        in_port,
        src: req.src.map(|a| a.0),
        dst: req.dst.map(|a| a.0),
        sport: req.sport.map(Into::into),
        dport: req.dport.map(Into::into),
        proto: req.proto.map(|p| p.0),
    };
    match (m == Match::default(), req.match_all.is_some()) {
        (true, false) => {
            return Err(ApiError::bad(
                "a filter without match fields would match every packet: say \"match\": \"all\" \
                 (weft filter add --all) if that is meant",
            ))
        }
        (false, true) => {
            return Err(ApiError::bad(
                "\"match\": \"all\" and match fields contradict each other: give one or the other",
            ))
        }
        _ => {}
    }
    who.need_prefix(Right::Filter, m.dst, "add a filter")?;
    if let Some(p) = plugin {
        who.need_class(p, signer.as_deref())?;
    }
    for i in &chain {
        who.need_owner(n.owner(Owned::Instance(*i))?.as_deref(), &format!("instance {i}"))?;
    }
    let spec = FilterSpec {
        hook: Some(hook),
        m,
        chain,
        position: req.position,
    };
    let config = req.config.as_deref().unwrap_or("");
    let (filter, inst) = add_filter_with_plugin(n, spec, plugin.map(|p| (p, config)))?;
    own(n, who, Owned::Filter(filter))?;
    if let Some(i) = inst {
        own(n, who, Owned::Instance(i))?;
    }
    tracing::info!(node = n.name(), %filter, instance = ?inst.map(|i| i.to_string()), owner = ?who.owner(), "filter added");
    Ok(FilterCreated {
        filter,
        instance: inst.map(|i| i.to_string()),
        loaded: None,
    })
}

async fn filters_add(
    State(h): State<NodeHandle>,
    State(p): State<PluginState>,
    Extension(c): Extension<Caller>,
    b: Bytes,
) -> ApiResult<FilterCreated> {
    let mut req: FilterRequest = body(&b)?;
    // On-demand loading (PromethOS' one-liner with a plugin the node lacks):
    // fetched and verified here, off the node thread.
    let mut loaded = None;
    if let (Some(plugin), true, Some(pl)) = (&req.plugin, req.autoinstance, &p) {
        let (class, l) = pl.ensure(&h, plugin, &c.principal).await?;
        req.plugin = Some(class);
        loaded = l;
    }
    let signer = req.plugin.as_deref().and_then(|cl| signer_of(&p, cl));
    let who = c.principal.clone();
    let mut created = on_node(&h, move |n| filter_add(n, req, &who, signer)).await?;
    created.loaded = loaded;
    Ok(Json(created))
}

async fn filters_rm(
    State(h): State<NodeHandle>,
    Extension(c): Extension<Caller>,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Done> {
    let id = id
        .trim()
        .parse::<u32>()
        .map(FilterId)
        .map_err(|_| ApiError::bad(format!("bad filter id {id:?}: expected a number")))?;
    on_node(&h, move |n| {
        need_filter(n, &c.principal, id)?;
        Ok(n.remove_filter(id)?)
    })
    .await?;
    Ok(Json(DONE))
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
            handlers: i.handlers,
        })
        .collect()
}

async fn instances_ls(State(h): State<NodeHandle>) -> ApiResult<Vec<InstanceView>> {
    Ok(Json(on_node(&h, |n| Ok(instance_views(n))).await?))
}

async fn instances_new(
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
        let id = n.create_instance(&req.class, req.config.as_deref().unwrap_or(""))?;
        own(n, &who, Owned::Instance(id))?;
        Ok(id)
    })
    .await?;
    Ok(Json(InstanceCreated {
        instance: id.to_string(),
    }))
}

async fn instances_rm(
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

async fn instances_control(
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

async fn instances_report(State(h): State<NodeHandle>, UrlPath(id): UrlPath<String>) -> ApiResult<serde_json::Value> {
    let id = instance_id(&id)?;
    Ok(Json(on_node(&h, move |n| Ok(n.report(id)?)).await?))
}

async fn instances_set(
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

async fn instances_replace(
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

async fn instances_bind(
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

async fn instances_unbind(
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

async fn classes_ls(State(h): State<NodeHandle>) -> ApiResult<Vec<ClassView>> {
    let v = on_node(&h, |n| {
        Ok(n.classes()
            .into_iter()
            .map(|(name, kind, doc)| ClassView { name, kind, doc })
            .collect())
    })
    .await?;
    Ok(Json(v))
}

async fn classes_add(State(h): State<NodeHandle>, b: Bytes) -> ApiResult<Done> {
    let req: ClassRequest = body(&b)?;
    // Plugin classes come through /v1/plugins (signed, from code servers).
    let Some(class) = crate::builtin_classes().into_iter().find(|c| c.name == req.name) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "no built-in class {:?} (plugins are loaded with weft plugin load)",
                req.name
            ),
        ));
    };
    on_node(&h, move |n| Ok(n.add_class(class)?)).await?;
    Ok(Json(DONE))
}

async fn classes_rm(State(h): State<NodeHandle>, UrlPath(name): UrlPath<String>) -> ApiResult<Done> {
    on_node(&h, move |n| Ok(n.remove_class(&name)?)).await?;
    Ok(Json(DONE))
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

async fn routes_ls(State(h): State<NodeHandle>) -> ApiResult<Vec<RouteView>> {
    Ok(Json(on_node(&h, |n| Ok(route_views(n))).await?))
}

async fn routes_add(State(h): State<NodeHandle>, Extension(c): Extension<Caller>, b: Bytes) -> ApiResult<Done> {
    let req: RouteRequest = body(&b)?;
    let prefix = parse_route_prefix(&req.prefix, req.via).map_err(|e| ApiError::bad(e.to_string()))?;
    c.principal.need_prefix(Right::Route, Some(prefix), "add a route")?;
    on_node(&h, move |n| {
        let port = match &req.port {
            Some(p) => Some(n.port_id(p)?),
            None => None,
        };
        n.add_route(prefix, req.via, port)?;
        tracing::info!(node = n.name(), %prefix, via = ?req.via, "route added");
        Ok(())
    })
    .await?;
    Ok(Json(DONE))
}

async fn routes_rm(State(h): State<NodeHandle>, Extension(c): Extension<Caller>, b: Bytes) -> ApiResult<Done> {
    let req: RouteDelete = body(&b)?;
    let prefix = parse_route_prefix(&req.prefix, None).map_err(|e| ApiError::bad(e.to_string()))?;
    c.principal.need_prefix(Right::Route, Some(prefix), "remove a route")?;
    on_node(&h, move |n| Ok(n.remove_route(prefix)?)).await?;
    Ok(Json(DONE))
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such API path (see /v1/node, /v1/filters, /v1/instances, /v1/classes, /v1/routes, /v1/plugins, /v1/pbr/paths)")
}

/// What the API's handlers share: the node handle and its plugins.
#[derive(Clone, Debug)]
struct ApiState {
    node: NodeHandle,
    plugins: PluginState,
}

impl FromRef<ApiState> for NodeHandle {
    fn from_ref(s: &ApiState) -> NodeHandle {
        s.node.clone()
    }
}

impl FromRef<ApiState> for PluginState {
    fn from_ref(s: &ApiState) -> PluginState {
        s.plugins.clone()
    }
}

/// The API's routes over a node, behind the size limits and the gate
/// ([`crate::auth::guard`]): every request is bounded, identified,
/// checked for its noun's right and, when it changes something, audited.
pub fn router(h: NodeHandle, plugins: PluginState, auth: Auth, limits: Limits) -> Router {
    Router::new()
        .route("/v1/node", get(node_get))
        .route("/v1/metrics", get(metrics))
        .route("/v1/filters", get(filters_ls).post(filters_add))
        .route("/v1/filters/{id}", delete(filters_rm))
        .route("/v1/instances", get(instances_ls).post(instances_new))
        .route("/v1/instances/{id}", delete(instances_rm))
        .route("/v1/instances/{id}/control", post(instances_control))
        .route("/v1/instances/{id}/report", get(instances_report))
        .route("/v1/instances/{id}/set", post(instances_set))
        .route("/v1/instances/{id}/replace", post(instances_replace))
        .route("/v1/instances/{id}/bind", post(instances_bind))
        .route("/v1/instances/{id}/unbind", post(instances_unbind))
        .route("/v1/classes", get(classes_ls).post(classes_add))
        .route("/v1/classes/{name}", delete(classes_rm))
        .route("/v1/routes", get(routes_ls).post(routes_add).delete(routes_rm))
        .route("/v1/plugins", get(crate::plugins::ls).post(crate::plugins::load))
        .route("/v1/plugins/{name}", delete(crate::plugins::unload))
        .route("/v1/pbr/paths", get(pbr::ls).post(pbr::create))
        .route("/v1/pbr/paths/{id}", get(pbr::get).delete(pbr::release))
        .fallback(not_found)
        .with_state(ApiState { node: h, plugins })
        .layer(axum::middleware::from_fn_with_state(auth, guard))
        .layer(axum::middleware::from_fn_with_state(limits, weft_http::limits::enforce))
}

// ----- serving --------------------------------------------------------------

/// Error returned by [`ApiServer::bind`].
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The Unix socket could not be bound safely.
    #[error(transparent)]
    Socket(#[from] SocketError),
    /// The TCP address could not be bound.
    #[error("binding {addr}: {source}")]
    Tcp {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// The bound listeners of the API, ready to [`ApiServer::run`].
#[derive(Debug)]
pub struct ApiServer {
    socket: PathBuf,
    unix: tokio::net::UnixListener,
    tcp: Option<tokio::net::TcpListener>,
    plugins: PluginState,
    auth: Auth,
    limits: Limits,
    stats: [Arc<ServeStats>; 2],
}

impl ApiServer {
    /// Bind the Unix socket safely (`weft_http::unix::bind`: a private
    /// directory, mode 0660, the configured group, never over another
    /// user's socket) and, when configured, the TCP address. Must run
    /// inside a tokio runtime.
    pub async fn bind(socket: &Path, settings: &ApiSettings) -> Result<ApiServer, ServeError> {
        let unix = weft_http::unix::bind(socket, settings.group).await?;
        let tcp = match settings.tcp {
            Some(addr) => {
                let l = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| ServeError::Tcp { addr, source })?;
                if !addr.ip().is_loopback()
                    && !settings
                        .policy
                        .principals()
                        .any(|(_, c)| c.iter().any(|c| matches!(c, Credential::Key(_))))
                {
                    tracing::warn!(%addr, "the API listens beyond loopback with bearer tokens only: whoever sees a request on the wire can replay its token; prefer signed requests (docs/security.md)");
                }
                Some(l)
            }
            None => None,
        };
        Ok(ApiServer {
            socket: socket.to_path_buf(),
            unix,
            tcp,
            plugins: None,
            auth: Auth::new(settings.policy.clone(), weft_http::unix::euid()),
            limits: settings.limits,
            stats: Default::default(),
        })
    }

    /// Serve the plugin routes (and on-demand loading) with `plugins`.
    pub fn with_plugins(mut self, plugins: PluginState) -> Self {
        self.plugins = plugins;
        self
    }

    /// The Unix socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The TCP address, if listening on one.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|t| t.local_addr().ok())
    }

    /// What the Unix listener (`[0]`) and the TCP listener (`[1]`) did.
    pub fn stats(&self) -> [Arc<ServeStats>; 2] {
        self.stats.clone()
    }

    /// Serve until `shutdown` completes, then remove the socket file. The
    /// operator (root or the node's own user) on the Unix socket is served
    /// whatever the connection cap.
    pub async fn run(self, h: NodeHandle, shutdown: impl Future<Output = ()> + Send + 'static) {
        let app = router(h, self.plugins.clone(), self.auth.clone(), self.limits);
        let me = weft_http::unix::euid();
        let operator: Privileged =
            Arc::new(move |p: &Peer| matches!(p, Peer::Unix { uid, .. } if *uid == 0 || *uid == me));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let [su, st] = self.stats;
        let unix = weft_http::serve(
            Listener::Unix(self.unix),
            app.clone(),
            self.limits,
            Some(operator),
            su,
            stopped(stop_rx.clone()),
        );
        let tcp = self
            .tcp
            .map(|t| weft_http::serve(Listener::Tcp(t), app, self.limits, None, st, stopped(stop_rx)));
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        match tcp {
            Some(tcp) => {
                tokio::join!(unix, tcp);
            }
            None => unix.await,
        }
        if let Err(e) = std::fs::remove_file(&self.socket) {
            tracing::warn!(socket = %self.socket.display(), error = %e, "could not remove the socket file");
        }
    }
}
