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
//! | POST | `/v1/routes` | [`RouteRequest`] → [`Done`] (409 if the prefix has a route, unless `replace`) |
//! | DELETE | `/v1/routes` | [`RouteDelete`] → [`Done`] |
//! | GET | `/v1/plugins` | → `[`[`PluginView`](crate::plugins::PluginView)`]` |
//! | POST | `/v1/plugins` | [`PluginLoadRequest`](crate::plugins::PluginLoadRequest) → [`PluginLoaded`](crate::plugins::PluginLoaded) |
//! | DELETE | `/v1/plugins/{name}` | → [`Done`] (refused while instances exist) |
//! | GET | `/v1/domains` | → `[`[`DomainView`]`]` |
//! | POST | `/v1/domains` | [`DomainRequest`] → [`DomainCreated`] |
//! | GET | `/v1/domains/{domain}` | → [`DomainView`] (by name or id) |
//! | POST | `/v1/domains/{domain}/set` | [`DomainSet`] → [`DomainView`] |
//! | DELETE | `/v1/domains/{domain}` | → what was freed (`DomainRemoved`) |
//! | GET | `/v1/policy` | → [`PolicyView`] (the operator: every principal; a principal: itself) |
//! | GET | `/v1/signal` | → [`SignalView`] |
//! | DELETE | `/v1/signal/sessions/{id}` | → [`Done`] (the operator) |
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
//! ([`crate::auth::guard()`]) first: who is asking, may it use this noun, and
//! an audit line for every change. Handlers check the rest of the caller's
//! rights — prefixes, classes, and that it changes only what it created
//! ([`weft_dataplane::Owned`]) — with the node's state in hand.
//!
//! One file per noun — `node`, `filters`, `instances`, `classes`,
//! `routes`, `plugins`, `pbr` — holds its types and handlers; this module
//! holds what they share: [`ApiError`], the request body rule, the scope
//! checks, the router and the listeners.

mod classes;
mod domains;
mod filters;
mod instances;
mod node;
mod pbr;
mod plugins;
mod policy;
mod routes;
mod signal;

pub use classes::{ClassRequest, ClassView};
pub use domains::{DomainCreated, DomainRequest, DomainSet, DomainView};
pub use filters::{ChainEntry, FilterCreated, FilterRequest, FilterView, MatchAll};
pub use instances::{
    BindRequest, ControlReply, ControlRequest, InstanceCounters, InstanceCreated, InstanceRequest, InstanceView,
    ReplaceRequest, SetRequest, UnbindRequest,
};
pub use node::{NodeView, PortView};
pub use policy::{PolicyView, PrincipalView};
pub use routes::{RouteDelete, RouteRequest, RouteView};
pub use signal::SignalView;

use crate::auth::{guard, Auth, Credential, Principal, Refused, Right};
use crate::config::ApiSettings;
use crate::plugins::PluginState;
use crate::runner::{NodeHandle, NodeStopped};
use axum::body::Bytes;
use axum::extract::FromRef;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use weft_dataplane::{FilterId, InstanceId, Node, NodeError, Owned};
use weft_http::unix::SocketError;
use weft_http::{Limits, Listener, Peer, Privileged, ServeStats};

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
            NodeError::Domain(weft_dataplane::DomainError::Unknown(_))
            | NodeError::Domain(weft_dataplane::DomainError::UnknownName(_)) => StatusCode::NOT_FOUND,
            NodeError::Domain(weft_dataplane::DomainError::NameTaken(_)) => StatusCode::CONFLICT,
            NodeError::Domain(weft_dataplane::DomainError::MemoryLimit { .. }) => StatusCode::INSUFFICIENT_STORAGE,
            NodeError::UnknownInstance(_)
            | NodeError::UnknownFilter(_)
            | NodeError::UnknownRoute(_)
            | NodeError::UnknownClass(_)
            | NodeError::UnknownPort(_) => StatusCode::NOT_FOUND,
            NodeError::ClassExists(_)
            | NodeError::ClassInUse(..)
            | NodeError::InstanceInUse(..)
            | NodeError::PortExists(_)
            | NodeError::RouteExists(_)
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

fn port_name(n: &Node, id: u16) -> String {
    n.ports()
        .into_iter()
        .find(|p| p.id == id)
        .map(|p| p.cfg.name)
        .unwrap_or_else(|| id.to_string())
}

// ----- scope checks ---------------------------------------------------------

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
/// A principal's creation also goes into its home domain when it has one
/// ([`crate::domains::place_in_home`]).
fn own(n: &mut Node, who: &Principal, what: Owned) -> Result<(), ApiError> {
    if let Some(o) = who.owner() {
        n.set_owner(what, Some(o))?;
        let m = match what {
            Owned::Instance(i) => weft_dataplane::Member::Instance(i),
            Owned::Filter(f) => weft_dataplane::Member::Filter(f),
        };
        crate::domains::place_in_home(n, who, m)?;
    }
    Ok(())
}

// ----- the router -----------------------------------------------------------

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such API path (see /v1/node, /v1/filters, /v1/instances, /v1/classes, /v1/routes, /v1/plugins, /v1/pbr/paths, /v1/domains, /v1/policy, /v1/signal)")
}

/// What the API's handlers share: the node handle, its plugins and its
/// policy.
#[derive(Clone, Debug)]
struct ApiState {
    node: NodeHandle,
    plugins: PluginState,
    policy: Arc<crate::auth::Policy>,
}

impl FromRef<ApiState> for Arc<crate::auth::Policy> {
    fn from_ref(s: &ApiState) -> Arc<crate::auth::Policy> {
        s.policy.clone()
    }
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
/// ([`crate::auth::guard()`]): every request is bounded, identified,
/// checked for its noun's right and, when it changes something, audited.
pub fn router(h: NodeHandle, plugins: PluginState, auth: Auth, limits: Limits) -> Router {
    Router::new()
        .route("/v1/node", get(node::get))
        .route("/v1/metrics", get(node::metrics))
        .route("/v1/filters", get(filters::ls).post(filters::add))
        .route("/v1/filters/{id}", delete(filters::rm))
        .route("/v1/instances", get(instances::ls).post(instances::new))
        .route("/v1/instances/{id}", delete(instances::rm))
        .route("/v1/instances/{id}/control", post(instances::control))
        .route("/v1/instances/{id}/report", get(instances::report))
        .route("/v1/instances/{id}/set", post(instances::set))
        .route("/v1/instances/{id}/replace", post(instances::replace))
        .route("/v1/instances/{id}/bind", post(instances::bind))
        .route("/v1/instances/{id}/unbind", post(instances::unbind))
        .route("/v1/classes", get(classes::ls).post(classes::add))
        .route("/v1/classes/{name}", delete(classes::rm))
        .route("/v1/routes", get(routes::ls).post(routes::add).delete(routes::rm))
        .route("/v1/plugins", get(plugins::ls).post(plugins::load))
        .route("/v1/plugins/{name}", delete(plugins::unload))
        .route("/v1/pbr/paths", get(pbr::ls).post(pbr::create))
        .route("/v1/pbr/paths/{id}", get(pbr::get).delete(pbr::release))
        .route("/v1/domains", get(domains::ls).post(domains::add))
        .route("/v1/domains/{domain}", get(domains::show).delete(domains::rm))
        .route("/v1/domains/{domain}/set", post(domains::set))
        .route("/v1/policy", get(policy::get))
        .route("/v1/signal", get(signal::get))
        .route("/v1/signal/sessions/{id}", delete(signal::remove))
        .fallback(not_found)
        .with_state(ApiState {
            node: h,
            plugins,
            policy: auth.shared_policy(),
        })
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

    /// The node's policy (the signaling daemon checks the same principals).
    pub fn policy(&self) -> Arc<crate::auth::Policy> {
        self.auth.shared_policy()
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
