//! # weft-wasm — Weft's WebAssembly element host
//!
//! Runs user-supplied plugins (plugin ABI v1, `docs/plugin-abi.md`) as
//! element classes, sandboxed by wasmtime.
//!
//! * [`verify`] — [`verify_module`]: bytes → [`ModuleInfo`] or a
//!   [`LoadError`] naming the failed check; nothing untrusted runs.
//! * [`host`] — [`WasmHost`]: one engine per node, the CPU budget (epoch or
//!   fuel), the memory cap, the module cache; [`WasmHost::load_class`].
//! * [`cache`] — precompiled modules on disk, keyed by sha256 + engine.
//! * [`class`] — [`WasmClass`]: compiled code shared by every instance,
//!   turned into an engine [`ElementClass`](weft_dataplane::ElementClass).
//! * `linker` — the host functions of the plugin ABI and the per-store
//!   state they use.
//! * [`element`] — [`WasmElement`]: one instance, its store and arena,
//!   fault policy.
//! * [`mod@bench`] — [`bench::bench_rows`]: the plugin benchmark on a real node.
//! * [`plugins`] — locate (building when needed) the example plugins.
//!
//! **Architecture invariant:** this crate knows the element contract and
//! packets, never HTTP, signatures or the CLI; those callers hand it bytes
//! they have already authenticated. Nothing a plugin does may panic the host.
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod bench;
pub mod cache;
pub mod class;
pub mod element;
pub mod host;
mod linker;
pub mod plugins;
pub mod verify;

pub use class::WasmClass;
pub use element::{OnFault, WasmElement};
pub use host::{Budget, HostConfig, HostError, WasmHost};
pub use verify::{verify_module, LoadError, ModuleInfo};
pub use weft_plugin_sdk::abi;
