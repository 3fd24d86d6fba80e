//! The seam where a server-module host plugs in: [`ServerModules`].
//!
//! A SETUP may name a *server module* (a program serving ports on the
//! node's address; NetServ §3). The request's fields exist and are checked
//! — the module kind, its ports against the principal's `server_ports` —
//! but this node hosts none yet: without a [`ServerModules`] the daemon
//! answers `unsupported` on the response stack. A host (WASI HTTP
//! components under wasmtime) implements this trait and is given to the
//! daemon with [`SignalNode::set_servers`](super::SignalNode::set_servers).

use weft_signal::{Entry, Install, Refusal, Request, SessionId};

/// A host of server modules.
pub trait ServerModules: Send {
    /// Start `req`'s server module for `session`, owned by `owner`: fetch
    /// and verify its code, listen on its ports — all or nothing. Finishing
    /// later is allowed ([`Install::Pending`]; the daemon is told through
    /// [`SignalNode::install_done`](super::SignalNode::install_done)).
    fn start(&mut self, session: SessionId, req: &Request, owner: &str) -> Result<Install, Refusal>;
    /// Stop and forget `session`'s module. Idempotent.
    fn stop(&mut self, session: SessionId);
    /// Add PROBE facts (modules served, free ports) to `entry`.
    fn probe(&self, _entry: &mut Entry) {}
}
