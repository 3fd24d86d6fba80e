//! `[[principal]]`: who may talk to the node besides its operator, and
//! what each may change (the schema is in `docs/config.md`, the model in
//! `docs/security.md`).
//!
//! ```toml
//! [[principal]]
//! name = "alice"
//! key = "9f3c…"                 # ed25519 public key (weft keygen): signed requests
//! token_sha256 = "5e88…"        # or/and a bearer token's sha256 (weft token)
//! uid = 1001                    # or/and a local user on the Unix socket
//! rights = ["read", "filter", "instance"]
//! prefixes = ["10.1.0.0/16"]    # filters and routes only for these destinations
//! classes = ["counter", "netmon"]
//! signers = ["…"]               # plugins signed by these keys, whatever their name
//! server_ports = ["tcp:8080"]   # signaling: ports its server modules may serve
//! max_instances = 8             # what it may hold (signaling; domains will account it all)
//! max_memory_mib = 128
//! max_lifetime = 3600           # longest lifetime a SETUP of its may ask for, s
//! reverse_path = true           # filters only for prefixes routed back toward the requester
//! ```

use super::{ConfigError, NodeConfig};
use crate::auth::{Credential, Limits, Policy, PortRule, Principal, Right};
use ipnet::IpNet;
use serde::Deserialize;
use std::collections::BTreeSet;
use toml::Spanned;
use weft_repo::PublicKey;

/// `[[principal]]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalSection {
    /// Name (audit log, owner of what it creates).
    pub name: Spanned<String>,
    /// ed25519 public key (64 hex digits): requests signed with it.
    #[serde(default)]
    pub key: Option<Spanned<String>>,
    /// sha256 of a bearer token (64 hex digits), as `weft token` prints.
    #[serde(default)]
    pub token_sha256: Option<Spanned<String>>,
    /// A local user id, recognised on the Unix socket.
    #[serde(default)]
    pub uid: Option<Spanned<u32>>,
    /// Rights: `read`, `filter`, `instance`, `route`, `plugin`, `pbr`,
    /// `droute`, `class`, or `all`.
    pub rights: Vec<Spanned<String>>,
    /// Destination prefixes its filters and routes must fall within.
    #[serde(default)]
    pub prefixes: Option<Vec<IpNet>>,
    /// Classes it may instantiate and plugins it may load by name.
    #[serde(default)]
    pub classes: Option<Vec<String>>,
    /// Plugin signers (public keys) whose plugins it may load.
    #[serde(default)]
    pub signers: Vec<Spanned<String>>,
    /// Ports its server modules may listen on: `tcp:8080`, `udp:5000-5010`.
    #[serde(default)]
    pub server_ports: Vec<Spanned<String>>,
    /// Most element instances it may own.
    #[serde(default)]
    pub max_instances: Option<u64>,
    /// Most WebAssembly memory its instances may reserve, MiB.
    #[serde(default)]
    pub max_memory_mib: Option<u64>,
    /// Longest lifetime a SETUP of its may ask for, s.
    #[serde(default)]
    pub max_lifetime: Option<Spanned<u32>>,
    /// Signaling filters only for prefixes that route back toward the
    /// request's origin.
    #[serde(default)]
    pub reverse_path: bool,
}

impl NodeConfig {
    /// The checked `[[principal]]` sections as a [`Policy`]; every error
    /// points at the offending value.
    pub fn policy(&self) -> Result<Policy, ConfigError> {
        let src = &self.source;
        let key = |s: &Spanned<String>| {
            s.get_ref()
                .parse::<PublicKey>()
                .map_err(|e| src.error(s.span(), e.to_string()))
        };
        let mut v = Vec::new();
        for p in &self.principals {
            let s = p.get_ref();
            let name = s.name.get_ref().trim();
            if name.is_empty() || name.chars().any(|c| c.is_control()) {
                return Err(src.error(s.name.span(), "a principal needs a name without control characters"));
            }
            let mut creds = Vec::new();
            if let Some(k) = &s.key {
                creds.push(Credential::Key(key(k)?));
            }
            if let Some(t) = &s.token_sha256 {
                let h = weft_repo::from_hex::<32>(t.get_ref().trim()).ok_or_else(|| {
                    src.error(t.span(), "token_sha256 must be 64 hex digits (as `weft token` prints)")
                })?;
                creds.push(Credential::Token(h));
            }
            if let Some(u) = &s.uid {
                creds.push(Credential::Uid(*u.get_ref()));
            }
            if creds.is_empty() {
                return Err(src.error(
                    s.name.span(),
                    format!("principal {name:?} has no credential: give key, token_sha256 or uid"),
                ));
            }
            let mut rights = BTreeSet::new();
            for r in &s.rights {
                rights.insert(r.get_ref().parse::<Right>().map_err(|e| src.error(r.span(), e))?);
            }
            let signers = s.signers.iter().map(key).collect::<Result<Vec<_>, _>>()?;
            let server_ports = s
                .server_ports
                .iter()
                .map(|p| p.get_ref().parse::<PortRule>().map_err(|e| src.error(p.span(), e)))
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(l) = &s.max_lifetime {
                if *l.get_ref() == 0 {
                    return Err(src.error(l.span(), "max_lifetime must be at least 1 s"));
                }
            }
            v.push((
                Principal {
                    name: name.to_string(),
                    rights,
                    prefixes: s.prefixes.clone(),
                    classes: s.classes.clone(),
                    signers,
                    server_ports,
                    limits: Limits {
                        instances: s.max_instances,
                        memory_mib: s.max_memory_mib,
                        lifetime_s: s.max_lifetime.as_ref().map(|l| *l.get_ref()),
                    },
                    reverse_path: s.reverse_path,
                },
                creds,
            ));
        }
        Policy::new(v).map_err(|e| {
            let span = self.principals.first().map(|p| p.span()).unwrap_or(0..0);
            src.error(span, e)
        })
    }
}
