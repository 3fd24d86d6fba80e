//! Domains (Snow on Silk §2.1, the NodeOS domain): the account every cost
//! on a node is charged to — CPU, memory, output bandwidth, queue space —
//! and the unit the schedulers share the node between.
//!
//! Domains form a tree under the **root domain** ([`DomainId::ROOT`]),
//! which holds plain forwarding and everything the operator creates
//! without naming a domain. Every instance, filter (path), explicit-path
//! visit and channel belongs to exactly one domain ([`Member`]); a
//! domain's usage is also its ancestors' (a child's limits are carved out
//! of its parent's), and destroying a domain destroys its children and
//! everything in them ([`crate::Node::remove_domain`]).
//!
//! This module holds the plain values: ids, specifications, limits,
//! scheduling classes, what a listing shows. The node keeps the tree and
//! charges it (`node/domains.rs`); the scheduler that serves domains'
//! queues between the classifier and the chains is `node/sched.rs`.
//! Specifications are values whose life is one call; a [`DomainId`] is a
//! handle valid until the domain is destroyed (paper §2.2) — ids are never
//! reused, so a stale handle names nothing rather than someone else's
//! domain.

use crate::element::{FilterId, InstanceId, Owner};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A domain handle, node-unique and never reused. `0` is the root.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DomainId(pub u32);

impl DomainId {
    /// The root domain: plain forwarding and the operator's own objects.
    pub const ROOT: DomainId = DomainId(0);

    /// True for the root domain.
    pub fn is_root(self) -> bool {
        self == DomainId::ROOT
    }
}

impl fmt::Display for DomainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for DomainId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.trim_start_matches('%')
            .parse::<u32>()
            .map(DomainId)
            .map_err(|_| format!("{s:?} is not a domain id (a number; 0 is the root)"))
    }
}

/// How the scheduler serves a domain's queue (Silk §3.2). Classes are
/// served in this order in each scheduling round: every
/// earliest-deadline-first domain (earliest head-of-queue deadline first),
/// then fixed-priority domains (level 0 first), then weighted-fair domains
/// (deficit round robin with CPU time as the quantum, in proportion to
/// their weights). Each domain is cut off at its CPU limit per round
/// whatever its class, so a higher class can delay but never starve a
/// lower one past the limits the operator gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SchedClass {
    /// Fixed priority: lower levels are served first.
    Priority {
        /// 0 is the highest.
        level: u8,
    },
    /// Weighted fair share of what the rounds leave to fair domains.
    Fair {
        /// Relative weight (≥ 1).
        weight: u32,
    },
    /// Earliest deadline first: a packet is due `deadline_ns` after it
    /// was received.
    Deadline {
        /// Relative deadline, nanoseconds.
        deadline_ns: u64,
    },
}

impl Default for SchedClass {
    fn default() -> Self {
        SchedClass::Fair { weight: 1 }
    }
}

impl fmt::Display for SchedClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchedClass::Priority { level } => write!(f, "priority:{level}"),
            SchedClass::Fair { weight } => write!(f, "fair:{weight}"),
            SchedClass::Deadline { deadline_ns } => write!(f, "deadline:{}", fmt_ns(*deadline_ns)),
        }
    }
}

impl FromStr for SchedClass {
    type Err = String;
    /// `priority:N` (0–255), `fair:W` (W ≥ 1), `deadline:D` (`500us`,
    /// `2ms`, `1s`, or nanoseconds).
    fn from_str(s: &str) -> Result<Self, String> {
        let (kind, arg) = s.split_once(':').unwrap_or((s, ""));
        match kind {
            "priority" => arg
                .parse::<u8>()
                .map(|level| SchedClass::Priority { level })
                .map_err(|_| format!("priority:{arg:?}: the level is 0 (highest) to 255")),
            "fair" => match arg.parse::<u32>() {
                Ok(w) if w >= 1 => Ok(SchedClass::Fair { weight: w }),
                _ => Err(format!("fair:{arg:?}: the weight is a whole number from 1")),
            },
            "deadline" => match parse_ns(arg) {
                Some(d) if d > 0 => Ok(SchedClass::Deadline { deadline_ns: d }),
                _ => Err(format!("deadline:{arg:?}: give a time such as 500us, 2ms or 1s")),
            },
            _ => Err(format!(
                "unknown scheduling class {s:?} (priority:LEVEL, fair:WEIGHT, deadline:TIME)"
            )),
        }
    }
}

/// `500us`, `2ms`, `1s`, `250ns` or a bare number of nanoseconds.
pub fn parse_ns(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mul) = if let Some(n) = s.strip_suffix("ns") {
        (n, 1)
    } else if let Some(n) = s.strip_suffix("us") {
        (n, 1_000)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1_000_000)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1_000_000_000)
    } else {
        (s, 1)
    };
    num.parse::<u64>().ok()?.checked_mul(mul)
}

/// Nanoseconds in the largest unit that divides them.
pub fn fmt_ns(ns: u64) -> String {
    match ns {
        0 => "0".into(),
        n if n % 1_000_000_000 == 0 => format!("{}s", n / 1_000_000_000),
        n if n % 1_000_000 == 0 => format!("{}ms", n / 1_000_000),
        n if n % 1_000 == 0 => format!("{}us", n / 1_000),
        n => format!("{n}ns"),
    }
}

/// What a domain may use. `None` is no limit of its own (its ancestors'
/// still apply).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DomainLimits {
    /// CPU per scheduling round (one received batch, or one idle tick),
    /// nanoseconds: the chains of the domain's paths and the forwarding of
    /// what they pass on.
    pub cpu_ns: Option<u64>,
    /// The same limit for WebAssembly code, in epochs of the wasm host
    /// (converted with the epoch period the node is told,
    /// [`crate::Node::set_epoch_ns`]); the smaller of the two applies.
    pub wasm_epochs: Option<u64>,
    /// Memory, bytes: instances' linear memory (reserved when they are
    /// created) and packet buffers waiting in the domain's queue or held
    /// by its channels.
    pub memory: Option<u64>,
    /// Output bandwidth per out-channel, bits per second (a token bucket
    /// per channel, [`crate::Node::domain_bucket`]).
    pub bandwidth_bps: Option<u64>,
    /// That bucket's burst, bytes (default: 10 ms at the rate, at least
    /// one 1,500-byte frame).
    pub burst_bytes: Option<u64>,
    /// Packets the domain's queue holds; a packet arriving at a full queue
    /// is dropped at once (Scout's early drop), before any of the
    /// domain's code runs on it.
    pub queue_len: u32,
}

/// The queue length a domain gets when none is given.
pub const DEFAULT_QUEUE_LEN: u32 = 256;

impl Default for DomainLimits {
    fn default() -> Self {
        DomainLimits {
            cpu_ns: None,
            wasm_epochs: None,
            memory: None,
            bandwidth_bps: None,
            burst_bytes: None,
            queue_len: DEFAULT_QUEUE_LEN,
        }
    }
}

impl DomainLimits {
    /// The burst of an out-channel's bucket, bytes.
    pub fn burst(&self) -> Option<u64> {
        let rate = self.bandwidth_bps?;
        Some(self.burst_bytes.unwrap_or((rate / 8 / 100).max(1_500)))
    }
}

/// A domain to create: a value whose life is the call.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainSpec {
    /// Node-unique name (letters, digits, `-`, `_`, `.`; 1–64).
    pub name: String,
    /// The parent (default: the root).
    #[serde(default = "root")]
    pub parent: DomainId,
    /// The principal that owns it (None: the operator).
    #[serde(default)]
    pub owner: Option<Owner>,
    /// The owner's ed25519 public key, hex, when known.
    #[serde(default)]
    pub key: Option<String>,
    /// Limits.
    #[serde(default)]
    pub limits: DomainLimits,
    /// Scheduling class.
    #[serde(default)]
    pub class: SchedClass,
}

fn root() -> DomainId {
    DomainId::ROOT
}

/// Check a domain name: 1–64 letters, digits, `-`, `_`, `.`, not all
/// digits (names and ids are both accepted where a domain is named).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!("domain name {name:?}: 1 to 64 characters"));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(format!("domain name {name:?}: letters, digits, '-', '_' and '.' only"));
    }
    if name.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("domain name {name:?}: not all digits (those are ids)"));
    }
    Ok(())
}

/// Something that belongs to a domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "lowercase")]
pub enum Member {
    /// An element instance.
    Instance(InstanceId),
    /// A filter and the path bound to it.
    Filter(FilterId),
    /// An explicit-path visit, by its label.
    Visit(u32),
}

/// An object a subsystem outside the engine's own tables keeps in a
/// domain (a NodeOS channel, for instance): registered with
/// [`crate::Node::domain_attach`], listed by the domain, and handed to
/// the destroy hooks when the domain goes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DomainObject {
    /// What it is (`"inchan"`, `"outchan"`, …).
    pub kind: String,
    /// Its handle in that subsystem.
    pub id: u64,
}

/// What a domain holds now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainUsage {
    /// Bytes charged: instances' reservations + buffers, its own and its
    /// descendants'.
    pub memory: u64,
    /// Of which, instances' linear memory reserved.
    pub instance_memory: u64,
    /// Of which, packet buffers (queued or held by channels).
    pub buffers: u64,
    /// Packets waiting in its own queue now.
    pub queued: u32,
}

/// A domain's counters since it was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainCounters {
    /// Packets that joined its queue.
    pub enqueued: u64,
    /// Packets its chains ran on.
    pub served: u64,
    /// Batches its chains ran.
    pub batches: u64,
    /// Dropped on arrival: the queue was full (early drop).
    pub dropped_full: u64,
    /// Dropped on arrival: a buffer would have taken it over its memory
    /// limit.
    pub dropped_memory: u64,
    /// Memory charges refused over its limit (instance reservations,
    /// queued packets' buffers — those are also `dropped_memory` —,
    /// channel buffers).
    pub alloc_failures: u64,
    /// CPU charged, nanoseconds.
    pub cpu_ns: u64,
    /// CPU charged to its WebAssembly instances, in wasm epochs.
    pub wasm_epochs: u64,
    /// Rounds in which it still had packets when its CPU limit cut it off.
    pub cpu_limited: u64,
}

/// A domain as listed by [`crate::Node::domains`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainInfo {
    /// Handle.
    pub id: DomainId,
    /// Name.
    pub name: String,
    /// Parent (None for the root).
    pub parent: Option<DomainId>,
    /// Owner (None: the operator).
    pub owner: Option<Owner>,
    /// Owner's key, hex.
    pub key: Option<String>,
    /// Limits.
    pub limits: DomainLimits,
    /// Scheduling class.
    pub class: SchedClass,
    /// Child domains.
    pub children: Vec<DomainId>,
    /// Instances, filters and visits in it (not its children's).
    pub members: Vec<Member>,
    /// Objects other subsystems registered in it.
    pub objects: Vec<DomainObject>,
    /// Usage now.
    pub usage: DomainUsage,
    /// Counters.
    pub counters: DomainCounters,
}

/// Error returned by domain operations ([`crate::NodeError::Domain`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// No domain with that handle (never created, or destroyed).
    #[error("no domain {0}")]
    Unknown(DomainId),
    /// No domain of that name.
    #[error("no domain named {0:?}")]
    UnknownName(String),
    /// The name is taken.
    #[error("a domain named {0:?} exists already")]
    NameTaken(String),
    /// The root domain cannot be removed or re-parented.
    #[error("the root domain cannot be removed")]
    Root,
    /// A bad name, class or limit.
    #[error("{0}")]
    Invalid(String),
    /// Charging would take the domain (or an ancestor) over its memory
    /// limit.
    #[error("domain {domain} would hold {need} bytes, over its memory limit of {limit}")]
    MemoryLimit {
        /// The domain whose limit refused (the charged one or an ancestor).
        domain: DomainId,
        /// What it would have held.
        need: u64,
        /// Its limit.
        limit: u64,
    },
}

/// What removing a domain freed ([`crate::Node::remove_domain`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainRemoved {
    /// The domains destroyed: the one named and its descendants.
    pub domains: Vec<DomainId>,
    /// Instances removed.
    pub instances: Vec<InstanceId>,
    /// Filters removed.
    pub filters: Vec<FilterId>,
    /// Explicit-path visits removed (labels).
    pub visits: Vec<u32>,
    /// Objects of other subsystems handed to the destroy hooks.
    pub objects: Vec<DomainObject>,
    /// Queued packets whose buffers went back to the pool.
    pub packets_freed: u64,
    /// Bytes of memory charge released.
    pub memory_freed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_read_and_print_the_same() {
        for s in [
            "priority:0",
            "priority:255",
            "fair:3",
            "deadline:2ms",
            "deadline:500us",
            "deadline:7ns",
        ] {
            let c: SchedClass = s.parse().unwrap();
            assert_eq!(c.to_string(), s);
        }
        assert_eq!(
            "deadline:1500".parse::<SchedClass>().unwrap(),
            SchedClass::Deadline { deadline_ns: 1500 }
        );
    }

    #[test]
    fn bad_classes_say_what_is_wrong() {
        for s in [
            "fair:0",
            "fair:-1",
            "priority:256",
            "deadline:0",
            "deadline:soon",
            "edf",
            "",
            "fair",
        ] {
            let e = s.parse::<SchedClass>().unwrap_err();
            assert!(!e.is_empty(), "{s}");
        }
        assert!(parse_ns("99999999999999999999s").is_none());
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("alice-video.1").is_ok());
        for bad in ["", "a b", "42", "é", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_spec_reads_from_json_with_defaults_and_refuses_unknown_keys() {
        let s: DomainSpec = serde_json::from_str(r#"{"name":"a"}"#).unwrap();
        assert_eq!(s.parent, DomainId::ROOT);
        assert_eq!(s.limits.queue_len, DEFAULT_QUEUE_LEN);
        assert_eq!(s.class, SchedClass::Fair { weight: 1 });
        assert!(serde_json::from_str::<DomainSpec>(r#"{"name":"a","limts":{}}"#).is_err());
        let s: DomainSpec =
            serde_json::from_str(r#"{"name":"a","class":{"kind":"deadline","deadline_ns":5},"limits":{"memory":10}}"#)
                .unwrap();
        assert_eq!(s.class, SchedClass::Deadline { deadline_ns: 5 });
        assert_eq!(s.limits.memory, Some(10));
    }
}
