//! `/v1/plugins`: list, load (fetch, verify, compile, register) and
//! unload WebAssembly plugins through the node's
//! [`Plugins`](crate::plugins::Plugins) manager; a node without a
//! `[plugins]` section lists none and loads none.

use super::{body, ApiError, Done};
use crate::auth::Caller;
use crate::config::plugins::class_name;
use crate::plugins::{PluginLoadError, PluginLoadRequest, PluginLoaded, PluginState, PluginView};
use crate::runner::NodeHandle;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use weft_dataplane::element::ClassKind;
use weft_repo::{LoaderError, PluginSpec};

/// The status and text of a failed load, as the API answers it.
impl From<PluginLoadError> for ApiError {
    fn from(e: PluginLoadError) -> Self {
        let status = match &e {
            PluginLoadError::Refused(r) => return ApiError::from(r.clone()),
            PluginLoadError::Stopped(s) => return ApiError::from(*s),
            PluginLoadError::BuiltIn(_) => StatusCode::CONFLICT,
            PluginLoadError::BadSpec(_) => StatusCode::BAD_REQUEST,
            PluginLoadError::Loader(l) => match l {
                LoaderError::NotFound { .. } => StatusCode::NOT_FOUND,
                LoaderError::Untrusted { .. } => StatusCode::FORBIDDEN,
                LoaderError::Fetch(_) => StatusCode::BAD_GATEWAY,
                LoaderError::Task(_) => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::BAD_REQUEST,
            },
        };
        ApiError::new(status, e.to_string())
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad(message)
}

fn no_plugins() -> ApiError {
    bad("this node has no [plugins] section: it trusts no keys and loads no plugins (see docs/config.md)")
}

/// `GET /v1/plugins`.
pub(super) async fn ls(
    State(h): State<NodeHandle>,
    State(p): State<PluginState>,
) -> Result<Json<Vec<PluginView>>, ApiError> {
    let Some(p) = p else {
        return Ok(Json(Vec::new()));
    };
    let versions = p.versions();
    let views: Vec<PluginView> = h
        .call(move |n| {
            let inst = n.instances();
            let classes = n.classes();
            let runs = |code: &ClassKind, sha: &str| matches!(code, ClassKind::Wasm { hash } if hash == sha);
            versions
                .into_iter()
                .filter_map(|info| {
                    let current = classes.iter().any(|(c, k, _)| *c == info.name && runs(k, &info.sha256));
                    let instances: Vec<String> = inst
                        .iter()
                        .filter(|i| i.class == info.name && runs(&i.code, &info.sha256))
                        .map(|i| i.id.to_string())
                        .collect();
                    (current || !instances.is_empty()).then_some(PluginView {
                        info,
                        current,
                        instances,
                    })
                })
                .collect()
        })
        .await?;
    Ok(Json(views))
}

/// `POST /v1/plugins`.
pub(super) async fn load(
    State(h): State<NodeHandle>,
    State(p): State<PluginState>,
    Extension(c): Extension<Caller>,
    b: Bytes,
) -> Result<Json<PluginLoaded>, ApiError> {
    let req: PluginLoadRequest = body(&b)?;
    let p = p.ok_or_else(no_plugins)?;
    let text = match (&req.hash, req.name.contains('@')) {
        (Some(_), true) => return Err(bad("give NAME@HASH or hash, not both")),
        (Some(hash), false) => format!("{}@{hash}", req.name),
        (None, _) => req.name.clone(),
    };
    let spec: PluginSpec = text.parse().map_err(bad)?;
    Ok(Json(p.load(&h, &spec, req.from.as_deref(), &c.principal).await?))
}

/// `DELETE /v1/plugins/{name}`: refused while instances exist.
pub(super) async fn unload(
    State(h): State<NodeHandle>,
    State(p): State<PluginState>,
    Extension(c): Extension<Caller>,
    UrlPath(name): UrlPath<String>,
) -> Result<Json<Done>, ApiError> {
    let p = p.ok_or_else(no_plugins)?;
    let name = class_name(&name).to_string();
    let signer = p.loaded().into_iter().find(|i| i.name == name).map(|i| i.signer);
    c.principal.need_class(&name, signer.as_deref())?;
    if signer.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no plugin {name:?} is loaded (see weft plugin ls)"),
        ));
    }
    let n2 = name.clone();
    h.call(move |n| n.remove_class(&n2)).await?.map_err(ApiError::from)?;
    p.forget(&name);
    tracing::info!(plugin = %name, "plugin unloaded");
    Ok(Json(Done { ok: true }))
}
