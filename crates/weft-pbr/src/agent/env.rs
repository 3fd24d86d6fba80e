//! What the agent asks of the node ([`Env`]): the egress toward a hop,
//! reserving, committing (installing forwarding state and plugins),
//! releasing, and a visit's status — and the values that cross it.

use crate::wire::{FlowSpec, PathId, Plugin, Reason, FIRST_LABEL, MAX_LABEL};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// One visit of one path at this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VisitKey {
    /// The path.
    pub path: PathId,
    /// Index of the visit in the walk (0 = ingress).
    pub hop: u8,
}

/// Where messages and packets for a next hop leave this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Egress {
    /// The node's port.
    pub port: u16,
    /// The node's address on that port (source of messages sent there).
    pub local: IpAddr,
}

/// A hop's answer "no": why, and a text for people.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[error("{reason}: {text}")]
pub struct Refusal {
    /// Reason code (goes on the wire).
    pub reason: Reason,
    /// Detail.
    pub text: String,
}

impl Refusal {
    /// A refusal with a text.
    pub fn new(reason: Reason, text: impl Into<String>) -> Refusal {
        Refusal {
            reason,
            text: text.into(),
        }
    }
}

/// The next hop of a visit, as [`Env::egress`] resolved it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NextHop {
    /// The next visit's address.
    pub addr: IpAddr,
    /// Strict segment (direct neighbour, labelled frames) or loose
    /// (MPLS-in-UDP to `addr` across the FIB).
    pub strict: bool,
    /// Where it leaves this node.
    pub egress: Egress,
}

/// What one visit needs: handed to [`Env::reserve`] and, inside a
/// [`VisitInstall`], to [`Env::commit`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitRequest {
    /// Number of visits in the walk.
    pub hop_count: u8,
    /// Address of the upstream neighbour (source of its CREATE); `None` at
    /// the first visit.
    pub prev: Option<IpAddr>,
    /// Downstream neighbour; `None` at the last visit.
    pub next: Option<NextHop>,
    /// The flow (classified at the first visit only).
    pub flowspec: FlowSpec,
    /// Bandwidth to hold on the egress, bits/s (0 = best effort).
    pub bandwidth_bps: u64,
    /// Plugins this visit runs, in order.
    pub plugins: Vec<Plugin>,
}

impl VisitRequest {
    /// The first visit (ingress: classifies by flowspec and pushes).
    pub fn is_first(&self) -> bool {
        self.prev.is_none()
    }
    /// The last visit (egress: pops and forwards by the FIB).
    pub fn is_last(&self) -> bool {
        self.next.is_none()
    }
}

/// The label operation after the visit's plugins ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OutLabel {
    /// Send with this label (swap; at the first visit: push) — the label
    /// the next visit allocated.
    Label(u32),
    /// Last visit: pop and forward the inner IP packet by the FIB.
    Pop,
}

/// What [`Env::commit`] installs.
#[derive(Clone, Copy, Debug)]
pub struct VisitInstall<'a> {
    /// What was reserved.
    pub request: &'a VisitRequest,
    /// Out label or pop.
    pub out: OutLabel,
    /// The largest IP packet the next visit (and the path after it) takes,
    /// from its COMMIT's PATH_MTU (none: not said, or the last visit).
    pub downstream_mtu: Option<u16>,
}

/// The node, as the protocol sees it. The lead implements it over the real
/// node; tests implement it with fakes.
pub trait Env {
    /// Where a message or packets for `to` leave this node. `strict`: `to`
    /// must be on a directly connected subnet, else
    /// `Err(Reason::NotAdjacent)`; loose: any FIB route (`NoRoute`).
    fn egress(&mut self, to: IpAddr, strict: bool) -> Result<Egress, Refusal>;
    /// Phase 1: check and hold (not allocate) what visit `key` needs:
    /// bandwidth on its egress, plugin capacity, classes obtainable.
    fn reserve(&mut self, key: VisitKey, req: &VisitRequest) -> Result<(), Refusal>;
    /// Phase 2, before [`Env::commit`]: is everything the visit needs here
    /// (its plugin classes fetched from a code server)? `Ok(false)`: not
    /// yet — the agent holds the commit (the COMMIT from downstream is
    /// acknowledged, nothing goes upstream) until the driver calls
    /// [`Agent::resume`](crate::Agent::resume); the visit's setup lifetime keeps running, so a
    /// fetch that never ends times out as `setup-timeout`. `Err`: refuse,
    /// as a failed commit. The default is always ready.
    fn ready(&mut self, _key: VisitKey, _req: &VisitRequest) -> Result<bool, Refusal> {
        Ok(true)
    }
    /// Phase 2: install forwarding state (in label allocated here, out
    /// label from downstream or pop at the last visit, flowspec classifier
    /// at the first), fetch the classes, create, configure and bind the
    /// plugins. Returns this visit's in label (`None` at the first visit;
    /// required at every other, in [`FIRST_LABEL`]..=[`MAX_LABEL`], unique among
    /// the node's visits).
    fn commit(&mut self, key: VisitKey, install: &VisitInstall<'_>) -> Result<Option<u32>, Refusal>;
    /// After a successful [`Env::commit`]: the largest IP packet visit `key`
    /// takes in — its own segment and plugins, and
    /// [`VisitInstall::downstream_mtu`] — sent upstream in COMMIT's
    /// PATH_MTU; at the first visit, the path's MTU. Default: not known.
    fn visit_mtu(&mut self, _key: VisitKey) -> Option<u16> {
        None
    }
    /// Undo reserve or commit, whichever happened. Idempotent.
    fn release(&mut self, key: VisitKey);
    /// Per-visit status for STATUS (plugin instances, counters) as JSON.
    fn visit_status(&mut self, key: VisitKey) -> serde_json::Value;
}

/// An [`Env`] that accepts everything and installs nothing (labels from
/// a counter). For fuzzing and examples.
#[derive(Clone, Debug, Default)]
pub struct NullEnv {
    next_label: u32,
}

impl Env for NullEnv {
    fn egress(&mut self, to: IpAddr, _strict: bool) -> Result<Egress, Refusal> {
        Ok(Egress { port: 0, local: to })
    }
    fn reserve(&mut self, _key: VisitKey, _req: &VisitRequest) -> Result<(), Refusal> {
        Ok(())
    }
    fn commit(&mut self, key: VisitKey, _install: &VisitInstall<'_>) -> Result<Option<u32>, Refusal> {
        self.next_label = (self.next_label + 1) % MAX_LABEL;
        Ok((key.hop > 0).then_some(FIRST_LABEL + self.next_label % (MAX_LABEL - FIRST_LABEL)))
    }
    fn release(&mut self, _key: VisitKey) {}
    fn visit_status(&mut self, _key: VisitKey) -> serde_json::Value {
        serde_json::Value::Null
    }
}
