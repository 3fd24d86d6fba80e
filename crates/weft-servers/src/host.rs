//! [`ServerHost`]: the engine server modules run in, and compiling them.
//!
//! One engine per node: the component model, async calls (a module waiting
//! on its origin does not hold a thread), and **epoch interruption** — a
//! ticker thread advances the engine's epoch every [`TICK`]; a running
//! module reaches a deadline check at least once per tick, and the store's
//! callback counts those ticks against the request's CPU budget
//! ([`Bounds::cpu_budget`]), yielding to the executor at each one so a
//! spinning module never starves the others. Time a module spends waiting
//! (on its origin, a timer) passes no check and costs no budget; it is
//! bounded by the request timeout instead.
//!
//! Every module is linked against the WASI 0.2 interfaces (the proxy
//! world's, and the rest of `wasi:cli` a Rust `std` component imports)
//! with nothing to reach: no preopened directories, no sockets, no name
//! lookups, stdin empty, stdout and stderr discarded; its configuration in
//! the one environment variable `WEFT_CONFIG`. Its only way out is
//! `wasi:http/outgoing-handler`, through [`crate::egress`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::egress::Egress;

/// How often the engine's epoch advances: the granularity of the CPU
/// budget. 10 ms: a deadline check costs the same whatever the period;
/// a shorter one wakes the ticker thread more often for no finer budget
/// anyone asks for.
pub const TICK: Duration = Duration::from_millis(10);

/// What every request of a module runs under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Linear memory of the module's instance, bytes (its cache included).
    pub memory: usize,
    /// CPU one request may use (in [`TICK`]s of running wasm).
    pub cpu_budget: Duration,
    /// Longest a request may take from its head to the module's answer
    /// and the end of its handler (waiting for the instance included).
    pub request_timeout: Duration,
    /// Concurrent connections per listener (more get `503`).
    pub max_connections: usize,
    /// Time to receive a request head; also how long an idle keep-alive
    /// connection stays.
    pub header_timeout: Duration,
    /// Largest request body, bytes.
    pub max_body: usize,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            memory: 64 << 20,
            cpu_budget: Duration::from_secs(1),
            request_timeout: Duration::from_secs(30),
            max_connections: 256,
            header_timeout: Duration::from_secs(10),
            max_body: 1 << 20,
        }
    }
}

impl Bounds {
    /// The CPU budget in ticks (at least one).
    pub fn budget_ticks(&self) -> u64 {
        (self.cpu_budget.as_nanos() / TICK.as_nanos()).max(1) as u64
    }
}

/// Error returned by [`ServerHost::compile`].
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// Not a component (a core module, or not WebAssembly at all).
    #[error("not a WebAssembly component (a server module is a component of the WASI HTTP proxy world)")]
    NotComponent,
    /// The engine refused the bytes.
    #[error("the component does not compile: {0}")]
    Compile(String),
    /// It imports what the host does not give, or does not export
    /// `wasi:http/incoming-handler`.
    #[error("not a WASI HTTP proxy component: {0}")]
    World(String),
}

/// The component header: magic, then version 0x0d and layer 1.
pub const COMPONENT_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

/// The state of one module instance's store.
pub(crate) struct State {
    pub(crate) wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    pub(crate) table: ResourceTable,
    pub(crate) egress: Egress,
    pub(crate) mem: MemLimit,
    /// Ticks the current request has run.
    pub(crate) ticks: u64,
    /// The current request's budget.
    pub(crate) budget: u64,
    /// The budget ran out.
    pub(crate) cpu_exceeded: bool,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.egress,
        }
    }
}

/// The memory cap, remembering that it was hit (so a trap that follows is
/// reported as `memory`, not as a crash).
pub(crate) struct MemLimit {
    pub(crate) cap: usize,
    pub(crate) hit: bool,
}

/// Table elements an instance may have.
const MAX_TABLE: usize = 100_000;

impl wasmtime::ResourceLimiter for MemLimit {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE)
    }
}

/// A compiled server module, ready to instantiate.
#[derive(Clone)]
pub struct ServerCode {
    pub(crate) pre: ProxyPre<State>,
}

impl std::fmt::Debug for ServerCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerCode")
    }
}

struct Inner {
    engine: Engine,
    linker: Linker<State>,
    stop: Arc<AtomicBool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The engine and linker of a node's server modules. Cheap to clone; the
/// epoch ticker thread stops when the last clone goes.
#[derive(Clone)]
pub struct ServerHost {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ServerHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerHost")
    }
}

impl ServerHost {
    /// A host with its own engine and ticker thread.
    pub fn new() -> Result<ServerHost, CompileError> {
        let mut cfg = Config::new();
        cfg.wasm_component_model(true);
        cfg.epoch_interruption(true);
        let engine = Engine::new(&cfg).map_err(|e| CompileError::Compile(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| CompileError::Compile(e.to_string()))?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| CompileError::Compile(e.to_string()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (e2, s2) = (engine.weak(), stop.clone());
        std::thread::Builder::new()
            .name("weft-servers-epoch".into())
            .spawn(move || {
                while !s2.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    match e2.upgrade() {
                        Some(e) => e.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| CompileError::Compile(e.to_string()))?;
        Ok(ServerHost {
            inner: Arc::new(Inner { engine, linker, stop }),
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Compile `bytes` (a component) and check that it is of the proxy
    /// world: every import satisfied by the host, `wasi:http/incoming-handler`
    /// exported. CPU-bound (hundreds of ms for a large component): call it
    /// off any latency-sensitive thread.
    pub fn compile(&self, bytes: &[u8]) -> Result<ServerCode, CompileError> {
        if !bytes.starts_with(&COMPONENT_HEADER) {
            return Err(CompileError::NotComponent);
        }
        let c = Component::new(&self.inner.engine, bytes).map_err(|e| CompileError::Compile(format!("{e:#}")))?;
        let ip = self
            .inner
            .linker
            .instantiate_pre(&c)
            .map_err(|e| CompileError::World(format!("{e:#}")))?;
        let pre = ProxyPre::new(ip).map_err(|e| CompileError::World(format!("{e:#}")))?;
        Ok(ServerCode { pre })
    }
}
