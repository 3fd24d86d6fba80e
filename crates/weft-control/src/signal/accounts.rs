//! Per-principal resource accounting: [`Accounts`], the one small trait
//! through which the signaling daemon asks whether a principal may hold one
//! more instance, and [`NodeAccounts`], today's implementation.
//!
//! Domains (Snow on Silk: a domain per owner with its memory pool, CPU
//! share and queues) have not landed; when they do, a domain table
//! implements [`Accounts`] and nothing else changes. Until then
//! [`NodeAccounts`] counts what the node already records: the instances
//! whose `Owner` is the principal, each reserving the node's per-instance
//! WebAssembly memory cap — so instances a principal created through the
//! API count too, though only signaling is refused at the limit.

use crate::auth::Limits;
use serde::{Deserialize, Serialize};
use weft_dataplane::Node;

/// What a principal holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Element instances it owns.
    pub instances: u64,
    /// WebAssembly memory they may reserve, MiB.
    pub memory_mib: u64,
}

/// Accounting of what each principal holds on a node. See the module
/// documentation.
pub trait Accounts: Send {
    /// What `owner` holds on `node` now.
    fn usage(&self, node: &Node, owner: &str) -> Usage;
    /// What one more instance costs.
    fn instance_cost(&self) -> Usage;
    /// Would `owner` stay within `limits` holding `add` more? The error
    /// says which limit, for the response stack.
    fn admit(&self, node: &Node, owner: &str, limits: &Limits, add: Usage) -> Result<(), String> {
        let u = self.usage(node, owner);
        if let Some(max) = limits.instances {
            if u.instances + add.instances > max {
                return Err(format!("{owner} holds {} of its {max} instances", u.instances));
            }
        }
        if let Some(max) = limits.memory_mib {
            if u.memory_mib + add.memory_mib > max {
                return Err(format!(
                    "{owner} would reserve {} MiB of its {max} MiB of memory",
                    u.memory_mib + add.memory_mib
                ));
            }
        }
        Ok(())
    }
}

/// Today's [`Accounts`]: counts the node's instances by owner.
#[derive(Clone, Copy, Debug)]
pub struct NodeAccounts {
    /// What one instance reserves, MiB (`[plugins] memory_mib`).
    pub memory_per_instance_mib: u64,
}

impl Accounts for NodeAccounts {
    fn usage(&self, node: &Node, owner: &str) -> Usage {
        let instances = node
            .instances()
            .iter()
            .filter(|i| i.owner.as_deref() == Some(owner))
            .count() as u64;
        Usage {
            instances,
            memory_mib: instances * self.memory_per_instance_mib,
        }
    }

    fn instance_cost(&self) -> Usage {
        Usage {
            instances: 1,
            memory_mib: self.memory_per_instance_mib,
        }
    }
}
