//! The seam where a server-module host plugs in: [`ServerModules`].
//!
//! A SETUP may name a *server module* (a program serving ports on the
//! node's address; NetServ §3): MODULE kind 2 with SERVER_PORT fields,
//! checked against the principal's `server_ports` before anything starts.
//! The daemon (`env`) makes the node deliver those TCP ports to the kernel
//! (the `[punt]` TUN, where the host listens on the node's addresses) and
//! hands the rest to a [`ServerModules`]: [`super::servers::WasiServers`]
//! hosts WebAssembly components of the WASI HTTP proxy world
//! (`crates/weft-servers`, `docs/server-modules.md`). Without one the
//! daemon answers `unsupported` on the response stack.

use std::net::{IpAddr, SocketAddr};
use weft_signal::{Entry, Install, Installed, Refusal, Request, SessionId};

/// A host of server modules.
pub trait ServerModules: Send {
    /// Start `req`'s server module for `session`, owned by `owner`, on the
    /// node's `addresses` at the request's ports: fetch and verify its
    /// code, listen — all or nothing. Finishing later is allowed
    /// ([`Install::Pending`]; the outcome comes out of [`ServerModules::poll`]).
    fn start(
        &mut self,
        session: SessionId,
        req: &Request,
        owner: &str,
        addresses: &[IpAddr],
    ) -> Result<Install, Refusal>;
    /// Stop and forget `session`'s module (a pending start is cancelled).
    /// Idempotent.
    fn stop(&mut self, session: SessionId);
    /// A pending start that finished, if any (the daemon polls this every
    /// time it runs).
    fn poll(&mut self) -> Option<(SessionId, Result<Installed, Refusal>)> {
        None
    }
    /// Each serving module's counters (requests, bounds hit, egress), by
    /// session: `weft signal ls` and the API show them.
    fn counters(&self) -> Vec<(SessionId, Vec<(&'static str, u64)>)> {
        Vec::new()
    }
    /// Where `session`'s module listens, if it is serving (its sockets'
    /// local addresses).
    fn listening(&self, _session: SessionId) -> Vec<SocketAddr> {
        Vec::new()
    }
    /// Add PROBE facts (modules served, free ports) to `entry`.
    fn probe(&self, _entry: &mut Entry) {}
}
