//! Principals and their rights: the node's policy (`[[principal]]` in the
//! node configuration; `docs/security.md`).
//!
//! A principal is *who* asks — an ed25519 key, a bearer token, or a local
//! user id on the Unix socket — and its rights are *what* it may change:
//! nouns (filters, instances, routes, plugins, explicit paths, DataRouter
//! tables, classes), each optionally narrowed to destination prefixes,
//! element classes and plugin signers. The operator holds every right.
//! NetServ's per-user rights (modules, server ports, resource limits)
//! extend this same [`Principal`]: one policy, one set of principals,
//! whether a request arrives by signaling or through the API.

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
    /// Everything: the operator.
    All,
}

impl Right {
    /// Every right, in the order `docs/security.md` lists them.
    pub const ALL: [Right; 9] = [
        Right::Read,
        Right::Filter,
        Right::Instance,
        Right::Route,
        Right::Plugin,
        Right::Pbr,
        Right::Droute,
        Right::Class,
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
}
