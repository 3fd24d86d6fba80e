//! # weft-servers — server modules: WASI HTTP components on a node's ports
//!
//! A *server module* (NetServ §3) is a program a provider deploys onto a
//! node to serve a port on the node's address. Here it is a WebAssembly
//! **component of the WASI HTTP proxy world** (`wasi:http/proxy@0.2`: it
//! exports `wasi:http/incoming-handler` and may import
//! `wasi:http/outgoing-handler`) — the contract `wasmtime serve` and Spin
//! run, so a provider's module is portable. `docs/server-modules.md` is the
//! contract a provider writes to.
//!
//! * [`config`] — the SETUP's configuration string (`origin=IP:PORT …`):
//!   what the host reads of it (the egress allow-list) and what it hands
//!   the module (`WEFT_CONFIG`).
//! * [`host`] — [`ServerHost`]: the engine (component model, async,
//!   epoch interruption with a ticker thread), compiling a component into
//!   [`ServerCode`] (refused unless it exports the incoming handler), the
//!   bounds every module runs under ([`Bounds`]).
//! * [`egress`] — outgoing requests: plain HTTP/1 to the origins the
//!   configuration names, nothing else (never the node itself).
//! * [`server`] — [`Server`]: a running module: its listeners served
//!   through `weft_http::serve` (connection cap, header and body timeouts),
//!   its instance, each request under a CPU budget, a memory cap and a
//!   timeout, and its counters ([`ServerStats`]).
//!
//! **Architecture invariant:** knows nothing about nodes, principals,
//! signaling or code servers: it is given verified bytes, addresses to
//! listen on and bounds; who may deploy what is `weft-control`'s.
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod config;
pub mod egress;
pub mod host;
pub mod server;
pub mod stats;

pub use config::{ConfigError, ModuleConfig};

/// The fuzz entry point `server_config` (and a property test): `data` as a
/// server module's configuration — what parses re-parses from its own
/// text to the same value, and names no more than its origins — and as an
/// outgoing request's URI before the egress policy. Never panics.
pub fn fuzz_config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(c) = ModuleConfig::parse(&text) {
        assert_eq!(ModuleConfig::parse(&c.raw).as_ref(), Ok(&c));
        assert!(c.origins.len() <= config::MAX_ORIGINS);
        let e = egress::Egress {
            allowed: c.origins.clone().into(),
            deny: Vec::new().into(),
            deny_loopback: true,
            stats: std::sync::Arc::default(),
        };
        if let Ok(u) = text.parse::<http::Uri>() {
            if let Some(to) = e.admit(&u) {
                assert!(c.origins.contains(&to) && !to.ip().is_loopback());
            }
        }
    }
}
pub use host::{Bounds, CompileError, ServerCode, ServerHost};
pub use server::{Server, ServerSpec, ServerStats, StartError};
