//! Principals and their rights: the node's policy (`[[principal]]` in the
//! node configuration; `docs/security.md`).
//!
//! A principal is *who* asks — an ed25519 key, a bearer token, or a local
//! user id on the Unix socket — and its rights are *what* it may change:
//! nouns (filters, instances, routes, plugins, explicit paths, DataRouter
//! tables, classes), each optionally narrowed to destination prefixes,
//! element classes and plugin signers. The operator holds every right.
//! NetServ's per-user rights extend this same [`Principal`]: the right
//! `signal` (deploy modules by on-path signaling), the modules it may
//! install (its `classes` and `signers`, as for `weft plugin load`), the
//! prefixes its filters may cover (its `prefixes`, optionally only those
//! that route back toward the requester: `reverse_path`), the ports its
//! server modules may listen on (`server_ports`) and its resource
//! [`Limits`] — one policy, one set of principals, whether a request
//! arrives by signaling or through the API.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;
use weft_repo::PublicKey;

/// One right: a noun a principal may change. Reading is a right of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Right {
    /// Every `GET`: node, metrics, filters, instances (and their reports),
    /// classes, routes, plugins, paths.
    Read,
    /// Add and remove filters (within `prefixes`), with instances of
    /// `classes` created for them.
    Filter,
    /// Create instances of `classes`; control, set, replace, bind, unbind
    /// and remove the instances it created.
    Instance,
    /// Add and remove routes within `prefixes`.
    Route,
    /// Load (and unload) plugins named in `classes` or signed by `signers`.
    Plugin,
    /// Create and release explicit paths.
    Pbr,
    /// Change DataRouter tables (control requests to `datarouter` instances).
    Droute,
    /// Register and remove built-in classes.
    Class,
    /// Deploy modules by on-path signaling (SETUP, REMOVE, TRIGGER; PROBE
    /// needs `signal` or `read`), within its classes or signers,
    /// prefixes, server ports and limits.
    Signal,
    /// Create sub-domains of the domains it owns, change their limits and
    /// class, and remove domains it owns (`docs/domains.md`).
    Domain,
    /// Everything: the operator.
    All,
}

impl Right {
    /// Every right, in the order `docs/security.md` lists them.
    pub const ALL: [Right; 11] = [
        Right::Read,
        Right::Filter,
        Right::Instance,
        Right::Route,
        Right::Plugin,
        Right::Pbr,
        Right::Droute,
        Right::Class,
        Right::Signal,
        Right::Domain,
        Right::All,
    ];

    /// The word in configuration files and refusals.
    pub fn as_str(self) -> &'static str {
        match self {
            Right::Read => "read",
            Right::Filter => "filter",
            Right::Instance => "instance",
            Right::Route => "route",
            Right::Plugin => "plugin",
            Right::Pbr => "pbr",
            Right::Droute => "droute",
            Right::Class => "class",
            Right::Signal => "signal",
            Right::Domain => "domain",
            Right::All => "all",
        }
    }
}

impl std::str::FromStr for Right {
    type Err = String;
    fn from_str(s: &str) -> Result<Right, String> {
        Right::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| {
            format!(
                "unknown right {s:?}: expected one of {}",
                Right::ALL.map(Right::as_str).join(", ")
            )
        })
    }
}

/// Who may do what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The name in the policy (audit log lines, owners of what it creates).
    pub name: String,
    /// Its rights.
    pub rights: BTreeSet<Right>,
    /// Destination prefixes its filters and routes must fall within (None:
    /// any).
    pub prefixes: Option<Vec<IpNet>>,
    /// Element classes (built-in or plugin names) it may instantiate and
    /// plugins it may load by name (None: any).
    pub classes: Option<Vec<String>>,
    /// Plugin signers whose plugins it may load whatever their name.
    pub signers: Vec<PublicKey>,
    /// Ports its server modules may listen on (none unless listed).
    pub server_ports: Vec<PortRule>,
    /// What it may hold on the node.
    pub limits: Limits,
    /// Signaling: a filter's prefix must also route back toward the
    /// request's origin (the node's route to the prefix leaves by the same
    /// port as its route to the origin) — NetServ's reverse-routability
    /// check, with the FIB standing in for the password the paper fetches.
    pub reverse_path: bool,
}

/// Ports of one protocol a principal's server modules may listen on:
/// `tcp:8080`, `udp:5000-5010`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRule {
    /// 6 (TCP) or 17 (UDP).
    pub proto: u8,
    /// Inclusive range.
    pub ports: (u16, u16),
}

impl std::str::FromStr for PortRule {
    type Err = String;
    fn from_str(s: &str) -> Result<PortRule, String> {
        let bad = || format!("bad server port {s:?}: expected tcp:PORT, udp:PORT or tcp:LOW-HIGH");
        let (p, ports) = s.trim().split_once(':').ok_or_else(bad)?;
        let proto = match p {
            "tcp" => 6,
            "udp" => 17,
            _ => return Err(bad()),
        };
        let (lo, hi) = match ports.split_once('-') {
            Some((a, b)) => (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?),
            None => {
                let p: u16 = ports.parse().map_err(|_| bad())?;
                (p, p)
            }
        };
        if lo == 0 || lo > hi {
            return Err(bad());
        }
        Ok(PortRule { proto, ports: (lo, hi) })
    }
}

impl std::fmt::Display for PortRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = if self.proto == 6 { "tcp" } else { "udp" };
        match self.ports {
            (a, b) if a == b => write!(f, "{p}:{a}"),
            (a, b) => write!(f, "{p}:{a}-{b}"),
        }
    }
}

/// What a principal may hold on the node at once; None: no limit beyond
/// the node's own. Enforced through [`crate::signal::Accounts`] (which the
/// node's domains will implement) for what signaling installs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Element instances it owns.
    pub instances: Option<u64>,
    /// WebAssembly memory its instances may reserve, MiB (each plugin
    /// instance counts as the node's per-instance cap, `[plugins]
    /// memory_mib`).
    pub memory_mib: Option<u64>,
    /// Longest lifetime a SETUP of its may ask for, s (the node's own
    /// limit still applies).
    pub lifetime_s: Option<u32>,
}

/// A request refused for a missing right: `403` with
/// `{"error": message, "missing": right}`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refused {
    /// The right (and scope) that was missing, e.g. `filter 10.2.0.0/16`.
    pub missing: String,
    /// The whole sentence.
    pub message: String,
}

impl Principal {
    /// The operator: every right, no limits.
    pub fn operator(name: impl Into<String>) -> Principal {
        Principal {
            name: name.into(),
            rights: BTreeSet::from([Right::All]),
            prefixes: None,
            classes: None,
            signers: Vec::new(),
            server_ports: Vec::new(),
            limits: Limits::default(),
            reverse_path: false,
        }
    }

    /// Whether this is the operator (holds `all`).
    pub fn is_operator(&self) -> bool {
        self.rights.contains(&Right::All)
    }

    /// Owner tag of what this principal creates on the node: `None` for
    /// the operator (what the operator creates is the node's own).
    pub fn owner(&self) -> Option<Arc<str>> {
        (!self.is_operator()).then(|| Arc::from(self.name.as_str()))
    }

    fn refuse(&self, missing: String, why: String) -> Refused {
        Refused {
            message: format!("{} may not {why} (missing right: {missing})", self.name),
            missing,
        }
    }

    /// Holds `r` (or `all`)?
    pub fn has(&self, r: Right) -> bool {
        self.rights.contains(&r) || self.is_operator()
    }

    /// Require `r`; `what` completes "NAME may not …".
    pub fn need(&self, r: Right, what: &str) -> Result<(), Refused> {
        if self.has(r) {
            Ok(())
        } else {
            Err(self.refuse(r.as_str().to_string(), what.to_string()))
        }
    }

    /// Require `r` over destination `dst` (a filter's or a route's): within
    /// one of the principal's prefixes. A principal limited to prefixes may
    /// not add a filter without a destination (it would match everyone's
    /// traffic).
    pub fn need_prefix(&self, r: Right, dst: Option<IpNet>, what: &str) -> Result<(), Refused> {
        self.need(r, what)?;
        let Some(allowed) = &self.prefixes else { return Ok(()) };
        if self.is_operator() {
            return Ok(());
        }
        let inside = dst.is_some_and(|d| allowed.iter().any(|a| a.contains(&d)));
        if inside {
            return Ok(());
        }
        let list = allowed.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        let (missing, why) = match dst {
            Some(d) => (
                format!("{} {d}", r.as_str()),
                format!("{what} for {d}: its prefixes are {list}"),
            ),
            None => (
                format!("{} without a destination", r.as_str()),
                format!("{what} without a destination prefix: its prefixes are {list}"),
            ),
        };
        Err(self.refuse(missing, why))
    }

    /// May instantiate (or load, or replace to) class `class`, a plugin
    /// signed by key id `signer` (the 16 hex digits `weft plugin ls` shows)
    /// when it is one?
    pub fn need_class(&self, class: &str, signer: Option<&str>) -> Result<(), Refused> {
        if self.is_operator() {
            return Ok(());
        }
        let named = self.classes.as_ref().is_none_or(|c| c.iter().any(|x| x == class));
        let signed = signer.is_some_and(|id| self.signers.iter().any(|k| k.id().0 == id));
        if named || signed {
            return Ok(());
        }
        Err(self.refuse(
            format!("class {class}"),
            format!("use class {class}: it is neither in its classes nor signed by one of its signers"),
        ))
    }

    /// May its server modules listen on `proto`/`port`?
    pub fn need_server_port(&self, proto: u8, port: u16) -> Result<(), Refused> {
        if self.is_operator()
            || self
                .server_ports
                .iter()
                .any(|r| r.proto == proto && (r.ports.0..=r.ports.1).contains(&port))
        {
            return Ok(());
        }
        let rule = PortRule {
            proto,
            ports: (port, port),
        };
        let list = if self.server_ports.is_empty() {
            "none".to_string()
        } else {
            self.server_ports
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        Err(self.refuse(
            format!("server port {rule}"),
            format!("listen on {rule}: its server ports are {list}"),
        ))
    }

    /// May a SETUP of its live `lifetime_s` seconds?
    pub fn need_lifetime(&self, lifetime_s: u32) -> Result<(), Refused> {
        match self.limits.lifetime_s {
            Some(max) if lifetime_s > max && !self.is_operator() => Err(self.refuse(
                format!("lifetime {lifetime_s}"),
                format!("ask for a lifetime of {lifetime_s} s: its limit is {max} s"),
            )),
            _ => Ok(()),
        }
    }

    /// May change what `owner` owns?
    pub fn need_owner(&self, owner: Option<&str>, what: &str) -> Result<(), Refused> {
        if self.is_operator() || owner == Some(self.name.as_str()) {
            return Ok(());
        }
        let whose = owner.unwrap_or("the operator");
        Err(self.refuse(
            format!("owner of {what}"),
            format!("change {what}: it belongs to {whose}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Principal {
        Principal {
            name: "alice".into(),
            rights: BTreeSet::from([Right::Read, Right::Filter]),
            prefixes: Some(vec!["10.1.0.0/16".parse().unwrap()]),
            classes: Some(vec!["counter".into()]),
            signers: Vec::new(),
            server_ports: vec!["tcp:8080".parse().unwrap(), "udp:5000-5010".parse().unwrap()],
            limits: Limits {
                lifetime_s: Some(600),
                ..Limits::default()
            },
            reverse_path: false,
        }
    }

    #[test]
    fn rights_scopes_and_refusals() {
        let a = alice();
        assert!(a.need(Right::Read, "read").is_ok());
        let e = a.need(Right::Route, "add routes").unwrap_err();
        assert_eq!(e.missing, "route");
        assert!(e.message.starts_with("alice may not add routes"), "{e}");

        let inside = Some("10.1.2.0/24".parse().unwrap());
        let outside = Some("10.2.0.0/24".parse().unwrap());
        assert!(a.need_prefix(Right::Filter, inside, "add a filter").is_ok());
        let e = a.need_prefix(Right::Filter, outside, "add a filter").unwrap_err();
        assert_eq!(e.missing, "filter 10.2.0.0/24");
        assert!(e.message.contains("10.1.0.0/16"), "{e}");
        assert!(a.need_prefix(Right::Filter, None, "add a filter").is_err());

        assert!(a.need_class("counter", None).is_ok());
        assert_eq!(a.need_class("drop", None).unwrap_err().missing, "class drop");
        assert!(a.need_owner(Some("alice"), "instance #3").is_ok());
        assert!(a
            .need_owner(None, "instance #3")
            .unwrap_err()
            .message
            .contains("the operator"));

        let op = Principal::operator("uid 0");
        assert!(op.need_prefix(Right::Route, None, "x").is_ok());
        assert!(op.need_owner(Some("alice"), "x").is_ok());
        assert_eq!(op.owner(), None);
        assert_eq!(a.owner().as_deref(), Some("alice"));
        assert!("write".parse::<Right>().is_err());
    }

    #[test]
    fn server_ports_and_lifetimes() {
        let a = alice();
        assert!(a.need_server_port(6, 8080).is_ok());
        assert!(a.need_server_port(17, 5005).is_ok());
        let e = a.need_server_port(6, 8081).unwrap_err();
        assert_eq!(e.missing, "server port tcp:8081");
        assert!(e.message.contains("tcp:8080, udp:5000-5010"), "{e}");
        assert!(a.need_server_port(17, 8080).is_err());
        assert!(a.need_lifetime(600).is_ok());
        assert_eq!(a.need_lifetime(601).unwrap_err().missing, "lifetime 601");
        assert!(Principal::operator("op").need_server_port(6, 1).is_ok());
        for bad in ["tcp", "sctp:1", "tcp:0", "tcp:9-8", "udp:x"] {
            assert!(bad.parse::<PortRule>().is_err(), "{bad}");
        }
        assert_eq!("udp:53".parse::<PortRule>().unwrap().to_string(), "udp:53");
        assert_eq!("signal".parse::<Right>(), Ok(Right::Signal));
    }
}
