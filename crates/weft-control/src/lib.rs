//! # weft-control — the management plane
//!
//! Owns everything between an operator and a node's [`weft_dataplane::Node`]
//! handle:
//!
//! * [`config`] — the node configuration file (TOML) → [`config::NodeConfig`]
//!   → [`config::apply`], with `file:line:col` errors; and the operator's
//!   words ([`config::words`]) shared by the file, the API and the CLI.
//! * [`runner`] — [`runner::NodeRunner`]: the node on its own thread, and the
//!   cloneable [`runner::NodeHandle`] that sends it commands.
//! * [`api`] — the HTTP/JSON API (axum) over a Unix socket and optional TCP.
//! * [`client`] — the API's client, used by the CLI.
//! * [`clock`] — nanoseconds everywhere, and the one conversion to the PBR
//!   agent's milliseconds.
//! * [`pbr`] — the PBR daemon: [`pbr::PbrNode`] drives a `weft_pbr::Agent`
//!   over the node (explicit paths, labels, plugins on chosen hops).
//! * [`plugins`] — WebAssembly plugins: the loader behind `weft plugin` and
//!   on-demand loading of filter plugins.
//! * [`daemons`] — starting the node's daemons from its configuration
//!   (above `runner`, `config`, `plugins` and `signal`).
//! * [`domains`] — principals and domains: home domains, who may manage
//!   which, and the [`domains::DomainAccounts`] signaling charges.
//! * [`signal`] — the on-path signaling daemon: [`signal::SignalNode`]
//!   drives a `weft_signal::Agent` over the node (NetServ SETUP, REMOVE,
//!   PROBE, TRIGGER under the node's one policy).
//!
//! **Architecture invariant:** every change goes through the node handle
//! (DESIGN section 4); this crate never reaches into node internals and the
//! engine never learns about HTTP, TOML or sockets. This crate knows nothing
//! about the command line (that is the `weft` binary's) nor about how
//! elements work inside (only their classes, configs, controls and reports).
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod api;
pub mod auth;
pub mod client;
pub mod clock;
pub mod config;
pub mod daemons;
pub mod domains;
pub mod metrics;
pub mod nodeos;
pub mod pbr;
pub mod plugins;
pub mod runner;
pub mod signal;

pub use api::ApiServer;
pub use client::{Client, ClientError};
pub use config::{apply, ConfigError, NodeConfig};
pub use runner::{NodeHandle, NodeRunner};

/// The built-in element classes a node can register (LANA `add` by name).
/// WebAssembly plugin classes are registered beside them at run time
/// ([`plugins`]).
pub fn builtin_classes() -> Vec<weft_dataplane::ElementClass> {
    let mut v = weft_elements::classes();
    v.push(weft_datarouter::class());
    v
}
