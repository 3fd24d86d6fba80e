//! `/v1/policy`: the node's principals and their rights, and what each
//! holds now (`weft policy`; `docs/security.md`).
//!
//! * `GET /v1/policy` — the operator sees every principal; a principal
//!   sees its own entry only (the others' names and rights are none of its
//!   business). Credentials are shown by kind and key id, never a token's
//!   hash.
//!
//! Rights change when the node restarts with a new configuration file; the
//! API does not change them (that would need its own audit trail and a
//! second source of truth beside the file).

use super::{on_node, ApiResult};
use crate::auth::{Caller, Credential, Limits, Policy, Principal};
use crate::runner::NodeHandle;
use axum::extract::State;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One principal, as `GET /v1/policy` shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PrincipalView {
    /// Name (owner of what it creates).
    pub name: String,
    /// How it is recognised: `key ID`, `token`, `uid N`.
    pub credentials: Vec<String>,
    /// Rights.
    pub rights: Vec<String>,
    /// Destination prefixes (None: any).
    pub prefixes: Option<Vec<String>>,
    /// Classes and modules it may use by name (None: any).
    pub classes: Option<Vec<String>>,
    /// Key ids of signers whose plugins it may load.
    pub signers: Vec<String>,
    /// Ports its server modules may serve.
    pub server_ports: Vec<String>,
    /// What it may hold.
    pub limits: Limits,
    /// Signaling filters only for prefixes routed back toward the
    /// requester.
    pub reverse_path: bool,
    /// Element instances it owns now.
    pub instances: u64,
}

/// `GET /v1/policy`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PolicyView {
    /// Who asked, and whether as the operator.
    pub caller: String,
    /// True when the caller is the operator (it sees every principal).
    pub operator: bool,
    /// The principals the caller may see.
    pub principals: Vec<PrincipalView>,
}

fn view(p: &Principal, creds: &[Credential]) -> PrincipalView {
    PrincipalView {
        name: p.name.clone(),
        credentials: creds
            .iter()
            .map(|c| match c {
                Credential::Key(k) => format!("key {}", k.id()),
                Credential::Token(_) => "token".to_string(),
                Credential::Uid(u) => format!("uid {u}"),
            })
            .collect(),
        rights: p.rights.iter().map(|r| r.as_str().to_string()).collect(),
        prefixes: p.prefixes.as_ref().map(|v| v.iter().map(ToString::to_string).collect()),
        classes: p.classes.clone(),
        signers: p.signers.iter().map(|k| k.id().0).collect(),
        server_ports: p.server_ports.iter().map(ToString::to_string).collect(),
        limits: p.limits,
        reverse_path: p.reverse_path,
        instances: 0,
    }
}

pub(super) async fn get(
    State(h): State<NodeHandle>,
    State(policy): State<Arc<Policy>>,
    Extension(c): Extension<Caller>,
) -> ApiResult<PolicyView> {
    let me = &c.principal;
    let mut principals: Vec<PrincipalView> = policy
        .principals()
        .filter(|(p, _)| me.is_operator() || p.name == me.name)
        .map(|(p, creds)| view(p, creds))
        .collect();
    let names: Vec<String> = principals.iter().map(|p| p.name.clone()).collect();
    let counts = on_node(&h, move |n| {
        let inst = n.instances();
        Ok(names
            .iter()
            .map(|name| {
                inst.iter()
                    .filter(|i| i.owner.as_deref() == Some(name.as_str()))
                    .count() as u64
            })
            .collect::<Vec<_>>())
    })
    .await?;
    for (p, n) in principals.iter_mut().zip(counts) {
        p.instances = n;
    }
    Ok(Json(PolicyView {
        caller: me.name.clone(),
        operator: me.is_operator(),
        principals,
    }))
}
