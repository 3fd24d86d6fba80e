//! Per-principal resource accounting: [`Accounts`], the one small trait
//! through which the signaling daemon asks whether a principal may hold one
//! more instance and in which domain its installs go.
//!
//! The daemon uses [`crate::domains::DomainAccounts`]: a principal's
//! installs go into its home domain (Snow on Silk: the domain holds its
//! memory, CPU and queues) and are limited by it. [`NodeAccounts`] is the
//! accounting from before domains — instances by `Owner`, each reserving
//! the node's per-instance WebAssembly cap, everything in the root — kept
//! for embedders that want no domains.

use crate::auth::Limits;
use serde::{Deserialize, Serialize};
use weft_dataplane::{DomainId, Node};

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
    /// The domain `owner`'s installs go into (default: the root).
    fn domain(&self, node: &mut Node, owner: &str, limits: &Limits) -> Result<DomainId, String> {
        let _ = (node, owner, limits);
        Ok(DomainId::ROOT)
    }

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
