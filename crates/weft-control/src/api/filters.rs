//! `/v1/filters`: list, add (with on-demand plugin loading) and remove
//! filters; the caller's prefix, class and ownership rights are checked
//! with the node's state in hand.

use super::{body, instance_id, need_filter, on_node, own, port_name, signer_of, ApiError, ApiResult, Done, DONE};
use crate::auth::{Caller, Principal, Right};
use crate::config::add_filter_with_plugin_in;
use crate::config::words::{AddrOrPrefix, PortRange, Proto};
use crate::plugins::PluginState;
use crate::runner::NodeHandle;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use weft_dataplane::{FilterId, FilterSpec, Hook, Match, Node, Owned};

/// One instance in a filter's chain.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChainEntry {
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
    /// The chain: the instances its packets run through, in order.
    pub chain: Vec<ChainEntry>,
    /// Packets matched.
    pub hits: u64,
    /// The principal that created it (absent: the operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// `POST /v1/filters`: a filter spec in the CLI's words, plus PromethOS'
/// `class` (alias `plugin`) / `autoinstance` / `config`.
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
    /// Existing instances, in chain order (`#N`).
    #[serde(default)]
    pub chain: Vec<String>,
    /// Class of an instance to create for this filter (a built-in class or
    /// a plugin's); `plugin` is accepted too (PromethOS' word).
    #[serde(default, alias = "plugin")]
    pub class: Option<String>,
    /// Create the `class` instance (required with `class`).
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
                .map(|(id, class)| ChainEntry {
                    id: id.to_string(),
                    class,
                })
                .collect(),
            hits: f.hits,
            owner: f.owner.map(|o| o.to_string()),
        })
        .collect()
}

pub(super) async fn ls(State(h): State<NodeHandle>) -> ApiResult<Vec<FilterView>> {
    Ok(Json(on_node(&h, |n| Ok(filter_views(n))).await?))
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
    let plugin = match (&req.class, req.autoinstance) {
        (Some(p), true) => Some(p.as_str()),
        (Some(_), false) => {
            return Err(ApiError::bad(
                "a class needs autoinstance (or bind existing instances with chain)",
            ))
        }
        (None, true) => return Err(ApiError::bad("autoinstance needs a class")),
        (None, false) => None,
    };
    if req.config.is_some() && plugin.is_none() {
        return Err(ApiError::bad(
            "config configures the created instance; give a class too",
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
    // A principal's filter and its new instance are made in its home
    // domain, unless the chain names instances it made outside it (before
    // it had one): then the root, as before.
    let home = who.owner().and_then(|o| crate::domains::home_domain(n, &o));
    let domain = match home {
        Some(d)
            if spec
                .chain
                .iter()
                .all(|i| n.domain_of(weft_dataplane::Member::Instance(*i)).ok() == Some(d)) =>
        {
            d
        }
        _ => weft_dataplane::DomainId::ROOT,
    };
    let (filter, inst) = add_filter_with_plugin_in(n, domain, spec, plugin.map(|p| (p, config)))?;
    // Record the owner (place_in_home then finds both already at home).
    if let Some(i) = inst {
        own(n, who, Owned::Instance(i))?;
    }
    own(n, who, Owned::Filter(filter))?;
    tracing::info!(node = n.name(), %filter, instance = ?inst.map(|i| i.to_string()), owner = ?who.owner(), "filter added");
    Ok(FilterCreated {
        filter,
        instance: inst.map(|i| i.to_string()),
        loaded: None,
    })
}

pub(super) async fn add(
    State(h): State<NodeHandle>,
    State(p): State<PluginState>,
    Extension(c): Extension<Caller>,
    b: Bytes,
) -> ApiResult<FilterCreated> {
    let mut req: FilterRequest = body(&b)?;
    // On-demand loading (PromethOS' one-liner with a plugin the node lacks):
    // fetched and verified here, off the node thread.
    let mut loaded = None;
    if let (Some(plugin), true, Some(pl)) = (&req.class, req.autoinstance, &p) {
        let (class, l) = pl.ensure(&h, plugin, &c.principal).await?;
        req.class = Some(class);
        loaded = l;
    }
    let signer = req.class.as_deref().and_then(|cl| signer_of(&p, cl));
    let who = c.principal.clone();
    let loads_plugins = p.is_some();
    let mut created = on_node(&h, move |n| filter_add(n, req, &who, signer))
        .await
        .map_err(|e| match (&e.status, loads_plugins) {
            // Say why a class the node lacks was not fetched.
            (&axum::http::StatusCode::NOT_FOUND, false) if e.message.starts_with("unknown class") => ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                format!(
                    "{}: not a built-in class, and this node loads no plugins (its configuration has no \
                     [plugins] section; docs/config.md)",
                    e.message
                ),
            ),
            _ => e,
        })?;
    created.loaded = loaded;
    Ok(Json(created))
}

pub(super) async fn rm(
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
