//! Principals and domains: which domain is a principal's, who may manage
//! which domain, and the [`DomainAccounts`] through which signaling
//! installs are charged to the principal's domain (one system for the API
//! and signaling, `docs/domains.md`).
//!
//! **Decisions.**
//! * A principal's **home domain** is the first domain (lowest id) whose
//!   owner is the principal and whose parent is not: the tenant's top.
//!   What a principal creates through the API goes there when it has one
//!   (else the root, as before domains); what signaling installs for it
//!   always goes there, made on first use with the principal's memory limit.
//! * A principal may manage only domains it owns: create a sub-domain of
//!   one, change the limits and class of a sub-domain (never of its home
//!   domain — that would raise its own limits), remove any it owns. The
//!   operator manages every domain; nobody removes the root.

use crate::auth::{Limits, Principal, Refused, Right};
use crate::signal::{Accounts, Usage};
use weft_dataplane::domain::{check_name, DomainLimits, DomainSpec};
use weft_dataplane::{DomainId, Member, Node, NodeError};

const MIB: u64 = 1 << 20;

/// The principal's home domain, if it has one (see the module
/// documentation).
pub fn home_domain(n: &Node, owner: &str) -> Option<DomainId> {
    n.domains()
        .into_iter()
        .filter(|d| d.owner.as_deref() == Some(owner))
        .find(|d| {
            d.parent
                .and_then(|p| n.domain(p).ok())
                .is_none_or(|p| p.owner.as_deref() != Some(owner))
        })
        .map(|d| d.id)
}

/// The principal's home domain, created under the root (named after the
/// principal, with its memory limit) when it has none.
pub fn home_domain_or_create(n: &mut Node, owner: &str, limits: &Limits) -> Result<DomainId, NodeError> {
    if let Some(d) = home_domain(n, owner) {
        return Ok(d);
    }
    let mut name: String = owner
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(56)
        .collect();
    if check_name(&name).is_err() {
        name = format!("p-{name}");
    }
    let mut candidate = name.clone();
    let mut i = 2;
    while n.domain_named(&candidate).is_ok() {
        candidate = format!("{name}-{i}");
        i += 1;
    }
    n.add_domain(DomainSpec {
        name: candidate,
        owner: Some(owner.into()),
        limits: DomainLimits {
            memory: limits.memory_mib.map(|m| m.saturating_mul(MIB)),
            ..Default::default()
        },
        ..Default::default()
    })
}

/// Put what `who` just created into its home domain, if it has one
/// (nothing for the operator).
/// A filter whose path holds instances outside that domain (made before
/// the principal had one) stays in the root, with a warning.
pub fn place_in_home(n: &mut Node, who: &Principal, m: Member) -> Result<(), NodeError> {
    let Some(owner) = who.owner() else { return Ok(()) };
    let Some(d) = home_domain(n, &owner) else { return Ok(()) };
    match m {
        Member::Filter(f) => {
            if let Err(e) = n.place(m, d) {
                tracing::warn!(node = n.name(), filter = %f, principal = %who.name, error = %e, "filter left in the root domain");
            }
            Ok(())
        }
        _ => n.place(m, d),
    }
}

fn refuse(who: &Principal, what: String, whose: &str) -> Refused {
    Refused {
        message: format!("{} may not {what}: it belongs to {whose}", who.name),
        missing: format!("owner of {what}"),
    }
}

/// May `who` create a domain under `parent`? The operator anywhere; a
/// principal with the `domain` right under a domain it owns.
pub fn may_create_under(n: &Node, who: &Principal, parent: DomainId) -> Result<(), Refused> {
    who.need(Right::Domain, "create domains")?;
    if who.is_operator() {
        return Ok(());
    }
    let owner = n.domain(parent).ok().and_then(|d| d.owner);
    if owner.as_deref() == Some(who.name.as_str()) {
        Ok(())
    } else {
        Err(refuse(
            who,
            format!("create domains under domain {parent}"),
            owner.as_deref().unwrap_or("the operator"),
        ))
    }
}

/// May `who` remove domain `d`? The operator any; a principal one it owns.
pub fn may_remove(n: &Node, who: &Principal, d: DomainId) -> Result<(), Refused> {
    who.need(Right::Domain, "remove domains")?;
    if who.is_operator() {
        return Ok(());
    }
    let owner = n.domain(d).ok().and_then(|x| x.owner);
    if owner.as_deref() == Some(who.name.as_str()) {
        Ok(())
    } else {
        Err(refuse(
            who,
            format!("remove domain {d}"),
            owner.as_deref().unwrap_or("the operator"),
        ))
    }
}

/// May `who` change `d`'s limits or class? The operator any; a principal
/// a domain it owns whose parent it owns too (never its home domain).
pub fn may_change(n: &Node, who: &Principal, d: DomainId) -> Result<(), Refused> {
    who.need(Right::Domain, "change domains")?;
    if who.is_operator() {
        return Ok(());
    }
    let info = n.domain(d).ok();
    let owner = info.as_ref().and_then(|x| x.owner.clone());
    if owner.as_deref() != Some(who.name.as_str()) {
        return Err(refuse(
            who,
            format!("change domain {d}"),
            owner.as_deref().unwrap_or("the operator"),
        ));
    }
    let parent_owner = info
        .and_then(|x| x.parent)
        .and_then(|p| n.domain(p).ok())
        .and_then(|p| p.owner);
    if parent_owner.as_deref() == Some(who.name.as_str()) {
        Ok(())
    } else {
        Err(Refused {
            message: format!(
                "{} may not change domain {d}: it is its own top domain, whose limits the operator sets",
                who.name
            ),
            missing: format!("owner of domain {d}'s parent"),
        })
    }
}

/// [`Accounts`] by domains: a principal's usage is what its domains hold
/// (instances, and memory charged there), plus instances it owns outside
/// them at the node's per-instance cap; signaling installs go into its
/// home domain ([`Accounts::domain`]), whose memory limit then holds them
/// as the packets they queue.
#[derive(Clone, Copy, Debug)]
pub struct DomainAccounts {
    /// What one plugin instance reserves, MiB (`[plugins] memory_mib`).
    pub memory_per_instance_mib: u64,
}

impl Accounts for DomainAccounts {
    fn usage(&self, node: &Node, owner: &str) -> Usage {
        let mut instances = 0;
        let mut outside = 0;
        for i in node.instances() {
            if i.owner.as_deref() != Some(owner) {
                continue;
            }
            instances += 1;
            let d = node.domain_of(Member::Instance(i.id)).unwrap_or(DomainId::ROOT);
            let mine = node.domain(d).ok().and_then(|x| x.owner).as_deref() == Some(owner);
            if !mine {
                outside += 1;
            }
        }
        let bytes: u64 = match home_domain(node, owner) {
            Some(d) => node.domain(d).map(|x| x.usage.memory).unwrap_or(0),
            None => 0,
        };
        Usage {
            instances,
            memory_mib: bytes.div_ceil(MIB) + outside * self.memory_per_instance_mib,
        }
    }

    fn instance_cost(&self) -> Usage {
        Usage {
            instances: 1,
            memory_mib: self.memory_per_instance_mib,
        }
    }

    fn domain(&self, node: &mut Node, owner: &str, limits: &Limits) -> Result<DomainId, String> {
        home_domain_or_create(node, owner, limits).map_err(|e| e.to_string())
    }
}
