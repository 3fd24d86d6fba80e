//! `/v1/domains`: the node's domains (`docs/domains.md`). Who may manage
//! which domain is [`crate::domains`]'s rule: a principal only domains it
//! owns (and never its own top domain's limits); the operator all.

use super::{body, on_node, ApiError, ApiResult};
use crate::auth::Caller;
use crate::domains::{may_change, may_create_under, may_remove};
use crate::runner::NodeHandle;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use weft_dataplane::domain::{DomainCounters, DomainLimits, DomainRemoved, DomainSpec, DomainUsage, SchedClass};
use weft_dataplane::{DomainId, DomainInfo, Member, Node};

/// `GET /v1/domains` (each) and `GET /v1/domains/{domain}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DomainView {
    /// Handle.
    pub id: DomainId,
    /// Name.
    pub name: String,
    /// Parent's name (absent for the root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Owning principal (absent: the operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Owner's key, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Scheduling class, as `weft domain` writes it (`fair:2`).
    pub class: String,
    /// Limits.
    pub limits: DomainLimits,
    /// Children's names.
    pub children: Vec<String>,
    /// Instances in it (`#N`).
    pub instances: Vec<String>,
    /// Filters in it.
    pub filters: Vec<u32>,
    /// Explicit-path visits (labels) in it.
    pub visits: Vec<u32>,
    /// Objects other subsystems keep in it (`inchan 3`).
    pub objects: Vec<String>,
    /// Usage now.
    pub usage: DomainUsage,
    /// Counters.
    pub counters: DomainCounters,
    /// Plain forwarding's CPU share, per mille (the root only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<u32>,
}

fn view(n: &Node, d: DomainInfo) -> DomainView {
    let name_of = |id: DomainId| n.domain(id).map(|x| x.name).unwrap_or_else(|_| id.to_string());
    let mut instances = Vec::new();
    let mut filters = Vec::new();
    let mut visits = Vec::new();
    for m in &d.members {
        match m {
            Member::Instance(i) => instances.push(i.to_string()),
            Member::Filter(f) => filters.push(f.0),
            Member::Visit(l) => visits.push(*l),
        }
    }
    DomainView {
        id: d.id,
        name: d.name,
        parent: d.parent.map(name_of),
        owner: d.owner.map(|o| o.to_string()),
        key: d.key,
        class: d.class.to_string(),
        limits: d.limits,
        children: d.children.into_iter().map(name_of).collect(),
        instances,
        filters,
        visits,
        objects: d.objects.into_iter().map(|o| format!("{} {}", o.kind, o.id)).collect(),
        usage: d.usage,
        counters: d.counters,
        share: d.id.is_root().then(|| n.root_share()),
    }
}

/// `POST /v1/domains`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainRequest {
    /// Name (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// Parent, by name or id (absent: the root; a principal must name one
    /// of its own).
    #[serde(default)]
    pub parent: Option<String>,
    /// Owning principal (the operator only; a principal's domains are its
    /// own).
    #[serde(default)]
    pub owner: Option<String>,
    /// Owner's ed25519 key, 64 hex digits.
    #[serde(default)]
    pub key: Option<String>,
    /// Scheduling class: `priority:L`, `fair:W` or `deadline:TIME`
    /// (default `fair:1`).
    #[serde(default)]
    pub class: Option<String>,
    /// Limits.
    #[serde(default)]
    pub limits: DomainLimits,
}

/// Reply to `POST /v1/domains`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DomainCreated {
    /// Handle.
    pub id: DomainId,
    /// Name.
    pub name: String,
}

/// `POST /v1/domains/{domain}/set`: only what is given changes; `clear`
/// names limits to remove (`cpu_ns`, `wasm_epochs`, `memory`,
/// `bandwidth_bps`, `burst_bytes`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainSet {
    /// New class.
    #[serde(default)]
    pub class: Option<String>,
    /// CPU per round, ns.
    #[serde(default)]
    pub cpu_ns: Option<u64>,
    /// CPU per round, wasm epochs.
    #[serde(default)]
    pub wasm_epochs: Option<u64>,
    /// Memory, bytes.
    #[serde(default)]
    pub memory: Option<u64>,
    /// Bandwidth per out-channel, bit/s.
    #[serde(default)]
    pub bandwidth_bps: Option<u64>,
    /// Burst of that bucket, bytes.
    #[serde(default)]
    pub burst_bytes: Option<u64>,
    /// Queue length, packets.
    #[serde(default)]
    pub queue_len: Option<u32>,
    /// Limits to remove.
    #[serde(default)]
    pub clear: Vec<String>,
    /// Plain forwarding's share, per mille (the root only; the operator).
    #[serde(default)]
    pub share: Option<u32>,
}

fn resolve(n: &Node, s: &str) -> Result<DomainId, ApiError> {
    n.resolve_domain(s)
        .map_err(|e| ApiError::new(StatusCode::NOT_FOUND, e.to_string()))
}

fn check_key(k: &str) -> Result<(), ApiError> {
    if k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(ApiError::bad(format!(
            "key {k:?}: an ed25519 public key is 64 hex digits"
        )))
    }
}

pub(super) async fn ls(State(h): State<NodeHandle>) -> ApiResult<Vec<DomainView>> {
    Ok(Json(
        on_node(&h, |n| Ok(n.domains().into_iter().map(|d| view(n, d)).collect())).await?,
    ))
}

pub(super) async fn show(State(h): State<NodeHandle>, UrlPath(d): UrlPath<String>) -> ApiResult<DomainView> {
    Ok(Json(
        on_node(&h, move |n| {
            let id = resolve(n, &d)?;
            Ok(view(n, n.domain(id)?))
        })
        .await?,
    ))
}

pub(super) async fn add(
    State(h): State<NodeHandle>,
    Extension(c): Extension<Caller>,
    b: Bytes,
) -> ApiResult<DomainCreated> {
    let req: DomainRequest = body(&b)?;
    let class: SchedClass = match &req.class {
        Some(s) => s.parse().map_err(ApiError::bad)?,
        None => SchedClass::default(),
    };
    if let Some(k) = &req.key {
        check_key(k)?;
    }
    let who = c.principal;
    let created = on_node(&h, move |n| {
        let parent = match &req.parent {
            Some(p) => resolve(n, p)?,
            None => DomainId::ROOT,
        };
        may_create_under(n, &who, parent)?;
        let owner = match (who.owner(), req.owner) {
            (None, o) => o.map(|o| o.as_str().into()),
            (Some(me), None) => Some(me),
            (Some(me), Some(o)) if *me == *o => Some(me),
            (Some(_), Some(o)) => {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!("{} may not create domains owned by {o}", who.name),
                ))
            }
        };
        let name = req.name.clone();
        let id = n.add_domain(DomainSpec {
            name: req.name,
            parent,
            owner,
            key: req.key,
            limits: req.limits,
            class,
        })?;
        Ok(DomainCreated { id, name })
    })
    .await?;
    Ok(Json(created))
}

pub(super) async fn set(
    State(h): State<NodeHandle>,
    Extension(c): Extension<Caller>,
    UrlPath(d): UrlPath<String>,
    b: Bytes,
) -> ApiResult<DomainView> {
    let req: DomainSet = body(&b)?;
    let class: Option<SchedClass> = match &req.class {
        Some(s) => Some(s.parse().map_err(ApiError::bad)?),
        None => None,
    };
    for k in &req.clear {
        if !["cpu_ns", "wasm_epochs", "memory", "bandwidth_bps", "burst_bytes"].contains(&k.as_str()) {
            return Err(ApiError::bad(format!(
                "clear {k:?}: cpu_ns, wasm_epochs, memory, bandwidth_bps or burst_bytes"
            )));
        }
    }
    let who = c.principal;
    let v = on_node(&h, move |n| {
        let id = resolve(n, &d)?;
        if let Some(s) = req.share {
            if !who.is_operator() || !id.is_root() {
                return Err(ApiError::bad(
                    "share is the root domain's, and only the operator sets it",
                ));
            }
            n.set_root_share(s)?;
        }
        let changes_limits = class.is_some()
            || !req.clear.is_empty()
            || req.cpu_ns.is_some()
            || req.wasm_epochs.is_some()
            || req.memory.is_some()
            || req.bandwidth_bps.is_some()
            || req.burst_bytes.is_some()
            || req.queue_len.is_some();
        if changes_limits {
            may_change(n, &who, id)?;
            if id.is_root() && (class.is_some() || req.queue_len.is_some()) {
                return Err(ApiError::bad(
                    "the root domain is not queued or scheduled: its packets run at once (set its share instead)",
                ));
            }
            let mut l = n.domain(id)?.limits;
            for k in &req.clear {
                match k.as_str() {
                    "cpu_ns" => l.cpu_ns = None,
                    "wasm_epochs" => l.wasm_epochs = None,
                    "memory" => l.memory = None,
                    "bandwidth_bps" => l.bandwidth_bps = None,
                    _ => l.burst_bytes = None,
                }
            }
            l.cpu_ns = req.cpu_ns.or(l.cpu_ns);
            l.wasm_epochs = req.wasm_epochs.or(l.wasm_epochs);
            l.memory = req.memory.or(l.memory);
            l.bandwidth_bps = req.bandwidth_bps.or(l.bandwidth_bps);
            l.burst_bytes = req.burst_bytes.or(l.burst_bytes);
            l.queue_len = req.queue_len.unwrap_or(l.queue_len);
            n.set_domain_limits(id, l)?;
            if let Some(c) = class {
                n.set_domain_class(id, c)?;
            }
        }
        Ok(view(n, n.domain(id)?))
    })
    .await?;
    Ok(Json(v))
}

pub(super) async fn rm(
    State(h): State<NodeHandle>,
    Extension(c): Extension<Caller>,
    UrlPath(d): UrlPath<String>,
) -> ApiResult<DomainRemoved> {
    let who = c.principal;
    let r = on_node(&h, move |n| {
        let id = resolve(n, &d)?;
        may_remove(n, &who, id)?;
        let r = n.remove_domain(id)?;
        tracing::info!(node = n.name(), domain = %id, by = %who.name, "domain removed");
        Ok(r)
    })
    .await?;
    Ok(Json(r))
}
