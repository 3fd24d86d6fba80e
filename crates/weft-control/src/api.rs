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
//! status and the node's own error text.

mod pbr;

use crate::config::add_filter_with_plugin;
use crate::config::words::{parse_route_prefix, AddrOrPrefix, MacAddr, PortRange, Proto};
use crate::plugins::PluginState;
use crate::runner::{NodeHandle, NodeStopped};
use axum::body::Bytes;
use axum::extract::{FromRef, Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use ipnet::IpNet;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use weft_dataplane::element::ClassKind;
use weft_dataplane::{ClassDoc, FilterId, FilterSpec, Hook, InstanceId, Match, Node, NodeError, RouteKind};

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

/// An error reply: a status and the message sent as `{"error": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong.
    pub message: String,
}

impl ApiError {
    fn bad(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
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
        ApiError {
            status,
            message: e.to_string(),
        }
    }
}

impl From<NodeStopped> for ApiError {
    fn from(e: NodeStopped) -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(serde_json::json!({ "error": self.message }))).into_response()
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

fn body<T: DeserializeOwned>(b: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(b).map_err(|e| ApiError::bad(format!("bad request body: {e}")))
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
    let mut text = on_node(&h, |n| Ok(n.metrics_text())).await?;
    text.push_str(&h.io_metrics_text());
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
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
        })
        .collect()
}

async fn filters_ls(State(h): State<NodeHandle>) -> ApiResult<Vec<FilterView>> {
    Ok(Json(on_node(&h, |n| Ok(filter_views(n))).await?))
}

fn filter_add(n: &mut Node, req: FilterRequest) -> Result<FilterCreated, ApiError> {
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
    let spec = FilterSpec {
        hook: Some(hook),
        m: Match {
            in_port,
            src: req.src.map(|a| a.0),
            dst: req.dst.map(|a| a.0),
            sport: req.sport.map(Into::into),
            dport: req.dport.map(Into::into),
            proto: req.proto.map(|p| p.0),
        },
        chain,
        position: req.position,
    };
    let config = req.config.as_deref().unwrap_or("");
    let (filter, inst) = add_filter_with_plugin(n, spec, plugin.map(|p| (p, config)))?;
    tracing::info!(node = n.name(), %filter, instance = ?inst.map(|i| i.to_string()), "filter added");
    Ok(FilterCreated {
        filter,
        instance: inst.map(|i| i.to_string()),
        loaded: None,
    })
}

async fn filters_add(State(h): State<NodeHandle>, State(p): State<PluginState>, b: Bytes) -> ApiResult<FilterCreated> {
    let mut req: FilterRequest = body(&b)?;
    // On-demand loading (PromethOS' one-liner with a plugin the node lacks):
    // fetched and verified here, off the node thread.
    let mut loaded = None;
    if let (Some(plugin), true, Some(p)) = (&req.plugin, req.autoinstance, &p) {
        let (class, l) = p.ensure(&h, plugin).await?;
        req.plugin = Some(class);
        loaded = l;
    }
    let mut created = on_node(&h, move |n| filter_add(n, req)).await?;
    created.loaded = loaded;
    Ok(Json(created))
}

async fn filters_rm(State(h): State<NodeHandle>, UrlPath(id): UrlPath<String>) -> ApiResult<Done> {
    let id = id
        .trim()
        .parse::<u32>()
        .map(FilterId)
        .map_err(|_| ApiError::bad(format!("bad filter id {id:?}: expected a number")))?;
    on_node(&h, move |n| Ok(n.remove_filter(id)?)).await?;
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
        })
        .collect()
}

async fn instances_ls(State(h): State<NodeHandle>) -> ApiResult<Vec<InstanceView>> {
    Ok(Json(on_node(&h, |n| Ok(instance_views(n))).await?))
}

async fn instances_new(State(h): State<NodeHandle>, b: Bytes) -> ApiResult<InstanceCreated> {
    let req: InstanceRequest = body(&b)?;
    let id = on_node(&h, move |n| {
        Ok(n.create_instance(&req.class, req.config.as_deref().unwrap_or(""))?)
    })
    .await?;
    Ok(Json(InstanceCreated {
        instance: id.to_string(),
    }))
}

async fn instances_rm(State(h): State<NodeHandle>, UrlPath(id): UrlPath<String>) -> ApiResult<Done> {
    let id = instance_id(&id)?;
    on_node(&h, move |n| Ok(n.remove_instance(id)?)).await?;
    Ok(Json(DONE))
}

async fn instances_control(
    State(h): State<NodeHandle>,
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
    let reply = on_node(&h, move |n| Ok(n.control(id, &request)?)).await?;
    Ok(Json(ControlReply { reply }))
}

async fn instances_report(State(h): State<NodeHandle>, UrlPath(id): UrlPath<String>) -> ApiResult<serde_json::Value> {
    let id = instance_id(&id)?;
    Ok(Json(on_node(&h, move |n| Ok(n.report(id)?)).await?))
}

async fn instances_set(State(h): State<NodeHandle>, UrlPath(id): UrlPath<String>, b: Bytes) -> ApiResult<Done> {
    let id = instance_id(&id)?;
    let req: SetRequest = body(&b)?;
    on_node(&h, move |n| Ok(n.set(id, &req.key, &req.value)?)).await?;
    Ok(Json(DONE))
}

async fn instances_replace(State(h): State<NodeHandle>, UrlPath(id): UrlPath<String>, b: Bytes) -> ApiResult<Done> {
    let id = instance_id(&id)?;
    let req: ReplaceRequest = body(&b)?;
    on_node(&h, move |n| {
        Ok(n.replace(id, &req.class, req.config.as_deref(), req.keep_state)?)
    })
    .await?;
    Ok(Json(DONE))
}

async fn instances_bind(State(h): State<NodeHandle>, UrlPath(id): UrlPath<String>, b: Bytes) -> ApiResult<Done> {
    let id = instance_id(&id)?;
    let req: BindRequest = body(&b)?;
    on_node(&h, move |n| Ok(n.bind(id, req.filter, req.position)?)).await?;
    Ok(Json(DONE))
}

async fn instances_unbind(State(h): State<NodeHandle>, UrlPath(id): UrlPath<String>, b: Bytes) -> ApiResult<Done> {
    let id = instance_id(&id)?;
    let req: UnbindRequest = body(&b)?;
    on_node(&h, move |n| Ok(n.unbind(id, req.filter)?)).await?;
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
    // Later issues add plugin classes (wasm) here; today a class comes from
    // the built-in set.
    let Some(class) = crate::builtin_classes().into_iter().find(|c| c.name == req.name) else {
        return Err(ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!("no built-in class {:?}", req.name),
        });
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

async fn routes_add(State(h): State<NodeHandle>, b: Bytes) -> ApiResult<Done> {
    let req: RouteRequest = body(&b)?;
    let prefix = parse_route_prefix(&req.prefix, req.via).map_err(|e| ApiError::bad(e.to_string()))?;
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

async fn routes_rm(State(h): State<NodeHandle>, b: Bytes) -> ApiResult<Done> {
    let req: RouteDelete = body(&b)?;
    let prefix = parse_route_prefix(&req.prefix, None).map_err(|e| ApiError::bad(e.to_string()))?;
    on_node(&h, move |n| Ok(n.remove_route(prefix)?)).await?;
    Ok(Json(DONE))
}

async fn not_found() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: "no such API path (see /v1/node, /v1/filters, /v1/instances, /v1/classes, /v1/routes, /v1/plugins)"
            .into(),
    }
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

/// The API's routes over a node.
pub fn router(h: NodeHandle) -> Router {
    router_with_plugins(h, None)
}

/// The API's routes over a node with a plugin loader.
pub fn router_with_plugins(h: NodeHandle, plugins: PluginState) -> Router {
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
}

// ----- serving --------------------------------------------------------------

/// Error returned by [`ApiServer::bind`] and [`ApiServer::run`].
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Another process answers on the socket.
    #[error("{0}: another node is serving on this socket")]
    InUse(PathBuf),
    /// Binding or serving failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
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
}

impl ApiServer {
    /// Bind the Unix socket (removing a stale socket file that nobody
    /// answers on) and, if given, the TCP address. Must run inside a tokio
    /// runtime.
    pub async fn bind(socket: &Path, tcp: Option<SocketAddr>) -> Result<ApiServer, ServeError> {
        if socket.exists() {
            if tokio::net::UnixStream::connect(socket).await.is_ok() {
                return Err(ServeError::InUse(socket.to_path_buf()));
            }
            tracing::info!(socket = %socket.display(), "removing stale socket file");
            std::fs::remove_file(socket).map_err(|source| ServeError::Io {
                what: format!("removing stale socket {}", socket.display()),
                source,
            })?;
        }
        let unix = tokio::net::UnixListener::bind(socket).map_err(|source| ServeError::Io {
            what: format!("binding {}", socket.display()),
            source,
        })?;
        let tcp = match tcp {
            Some(a) => Some(
                tokio::net::TcpListener::bind(a)
                    .await
                    .map_err(|source| ServeError::Io {
                        what: format!("binding {a}"),
                        source,
                    })?,
            ),
            None => None,
        };
        Ok(ApiServer {
            socket: socket.to_path_buf(),
            unix,
            tcp,
            plugins: None,
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

    /// Serve until `shutdown` completes, then remove the socket file.
    pub async fn run(
        self,
        h: NodeHandle,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let app = router_with_plugins(h, self.plugins.clone());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let unix = axum::serve(self.unix, app.clone()).with_graceful_shutdown(stopped(stop_rx.clone()));
        let tcp = self
            .tcp
            .map(|t| axum::serve(t, app).with_graceful_shutdown(stopped(stop_rx)));
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let res = match tcp {
            Some(tcp) => {
                let (a, b) = tokio::join!(unix, tcp);
                a.and(b)
            }
            None => unix.await,
        };
        if let Err(e) = std::fs::remove_file(&self.socket) {
            tracing::warn!(socket = %self.socket.display(), error = %e, "could not remove the socket file");
        }
        res.map_err(|source| ServeError::Io {
            what: "serving the API".into(),
            source,
        })
    }
}
