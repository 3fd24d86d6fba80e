//! # weft-http — HTTP/1 serving that no client can starve
//!
//! Every listener of a Weft process (the node's management API, the code
//! server) serves through this crate, so every one of them has the same
//! bounds (DESIGN §7: "every listener bounds connections, time and sizes"):
//!
//! * [`serve()`] — the accept loop: a cap on concurrent connections per
//!   listener (over the cap a connection gets a `503` and is closed at once,
//!   so idle sockets cannot pile up to the process's descriptor limit),
//!   except for peers the caller marks *privileged* (the operator on the
//!   Unix socket is always served); a header timeout that also closes idle
//!   keep-alive connections; a lifetime per connection; the peer's identity
//!   ([`Peer`]: `SO_PEERCRED` on Unix sockets, the address on TCP) in every
//!   request's extensions. Running out of descriptors (`EMFILE`) slows the
//!   loop down instead of spinning or stopping it.
//! * [`limits`] — the per-request bounds, as an axum middleware
//!   (`enforce`) or a call for a handler that takes every request itself
//!   (`admit`, a server module's host): URI length
//!   (414), request head size (431), body size (413) and body time (408),
//!   each refused with a JSON body `{"error": "..."}` like every other
//!   error of the API.
//! * [`unix`] — binding a Unix socket safely: a private directory, mode
//!   0660 with a chosen group, and never over a socket file someone else
//!   created.
//!
//! **Architecture invariant:** knows nothing about nodes, principals or
//! plugins: it bounds and identifies; deciding who may do what is the
//! caller's (`weft-control`'s `auth`).
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod limits;
pub mod serve;
pub mod unix;

pub use limits::{json_error, Limits};
pub use serve::{serve, Listener, Peer, Privileged, ServeStats};
