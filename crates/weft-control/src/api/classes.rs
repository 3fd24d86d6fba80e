//! `/v1/classes`: the element classes a node has; built-in classes are
//! added and removed here (plugin classes through `/v1/plugins`).

use super::{body, on_node, ApiError, ApiResult, Done, DONE};
use crate::runner::NodeHandle;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use weft_dataplane::element::ClassKind;
use weft_dataplane::ClassDoc;

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

pub(super) async fn ls(State(h): State<NodeHandle>) -> ApiResult<Vec<ClassView>> {
    let v = on_node(&h, |n| {
        Ok(n.classes()
            .into_iter()
            .map(|(name, kind, doc)| ClassView { name, kind, doc })
            .collect())
    })
    .await?;
    Ok(Json(v))
}

pub(super) async fn add(State(h): State<NodeHandle>, b: Bytes) -> ApiResult<Done> {
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

pub(super) async fn rm(State(h): State<NodeHandle>, UrlPath(name): UrlPath<String>) -> ApiResult<Done> {
    on_node(&h, move |n| Ok(n.remove_class(&name)?)).await?;
    Ok(Json(DONE))
}
