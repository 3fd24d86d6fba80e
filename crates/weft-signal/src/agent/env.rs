//! What the agent asks of the node ([`Env`]): whether a principal may do
//! what a request asks, installing and removing a session's module, the
//! facts a PROBE returns, the node's address toward a peer — and the
//! values that cross it.

use crate::wire::{Entry, Reason, Request, SessionId, Timing};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};

/// A node's "no": why, and a text for people (it goes on the response
/// stack, cut to [`crate::wire::MAX_TEXT_LEN`]).
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

/// Who the node found the request's key to be, and what it may do: what
/// [`Env::authorize`] answers yes with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The principal's name in the node's policy: the owner of what the
    /// request installs.
    pub principal: String,
}

/// Where a request came from, as [`Env::authorize`] sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Context {
    /// The flow's origin (the requester, or the node that started a
    /// TRIGGER's reverse flow). Not authenticated: any sender can write
    /// any origin, as any source address.
    pub origin: IpAddr,
    /// The previous signaling peer (IP source and UDP port); None when the
    /// request starts here (a TRIGGER's reverse flow at its last node).
    pub upstream: Option<SocketAddr>,
    /// The node's time, Unix seconds.
    pub now_unix: u64,
}

/// A finished install: what goes on the SETUP's entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    /// The instance created (the node's `#N`).
    pub instance: Option<u32>,
    /// How long each step took.
    pub timing: Option<Timing>,
}

/// What [`Env::install`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Install {
    /// Installed now.
    Done(Installed),
    /// Started (fetching the code, compiling): the driver calls
    /// [`Agent::install_done`](crate::Agent::install_done) when it ends.
    /// The agent answers the SETUP when it does, or refuses with
    /// `install-timeout` after [`AgentConfig::install_timeout_ns`](crate::AgentConfig::install_timeout_ns).
    Pending,
}

/// The node, as the protocol sees it. `weft-control` implements it over a
/// real node (its policy, its code loader, its data path); tests
/// implement it with fakes.
///
/// The agent has already checked, before it calls any of these: the
/// request parses, is signed by its key, is fresh and not replayed; for a
/// SETUP, its lifetime is within the agent's limit; for a REMOVE, the key
/// owns the session.
pub trait Env {
    /// May the request's key (a principal of the node's policy) do what
    /// it asks — this kind of request, this module, this filter's prefix,
    /// these server ports, within its resource limits? A SETUP that is
    /// refused here installs nothing.
    fn authorize(&mut self, req: &Request, ctx: &Context) -> Result<Grant, Refusal>;
    /// Install the SETUP's module for `session`, owned by `grant`'s
    /// principal: dependencies checked, code fetched from the named code
    /// server (if the node fetches from it), verified, compiled, instance
    /// created and bound to the filter — all or nothing.
    fn install(&mut self, session: SessionId, req: &Request, grant: &Grant) -> Result<Install, Refusal>;
    /// Undo what `session` installed (also a pending install). Idempotent.
    fn remove(&mut self, session: SessionId);
    /// Add to `entry` the facts `req` (a PROBE) asks for that the node
    /// knows: its classes (building blocks), capabilities, free resources.
    /// The agent adds the sessions of the request's key itself.
    fn probe(&mut self, req: &Request, grant: &Grant, entry: &mut Entry);
    /// The node's address toward `peer` (the one the peer sees, written on
    /// entries). Default: none.
    fn address_toward(&mut self, _peer: IpAddr) -> Option<IpAddr> {
        None
    }
}

/// An [`Env`] that grants everything to a principal named after the key
/// and installs nothing: fuzzing and examples.
#[derive(Clone, Debug, Default)]
pub struct NullEnv;

impl Env for NullEnv {
    fn authorize(&mut self, req: &Request, _ctx: &Context) -> Result<Grant, Refusal> {
        Ok(Grant {
            principal: format!("key-{:02x}{:02x}", req.key[0], req.key[1]),
        })
    }
    fn install(&mut self, _session: SessionId, _req: &Request, _grant: &Grant) -> Result<Install, Refusal> {
        Ok(Install::Done(Installed::default()))
    }
    fn remove(&mut self, _session: SessionId) {}
    fn probe(&mut self, _req: &Request, _grant: &Grant, _entry: &mut Entry) {}
}
