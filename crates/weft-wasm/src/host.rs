//! The node's WebAssembly host: one wasmtime [`Engine`] per node, its
//! configuration (CPU budget kind, memory cap), the epoch ticker and the
//! precompiled-module cache. Classes are loaded through
//! [`WasmHost::load_class`], written in `class.rs` (which builds on this
//! module, not the other way round).

use crate::cache::ModuleCache;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use wasmtime::{Config, Engine};

/// How a plugin call's CPU use is bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Budget {
    /// Epoch interruption: a ticker thread advances the engine's epoch every
    /// [`HostConfig::epoch_tick`]; a call may run for
    /// [`HostConfig::epoch_ticks`] ticks. The default (see
    /// `docs/plugin-abi.md` for the measurements behind the choice).
    Epoch,
    /// Fuel: a call may execute about [`HostConfig::fuel`] wasm operators.
    /// Deterministic, slightly dearer per packet.
    Fuel,
    /// No budget. Only for measuring the cost of the two others: an
    /// unmetered plugin that loops stalls its worker forever.
    Unmetered,
}

/// Configuration of a [`WasmHost`].
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// CPU budget kind.
    pub budget: Budget,
    /// Fuel per call ([`Budget::Fuel`]). 10 M operators is a few ms: three
    /// orders of magnitude above a 64-packet NetMonitor batch (~20 k).
    pub fuel: u64,
    /// Epoch tick ([`Budget::Epoch`]).
    pub epoch_tick: Duration,
    /// Ticks a packet batch may run ([`Budget::Epoch`]): the deadline falls
    /// between `ticks - 1` and `ticks` ticks after the call starts.
    pub epoch_ticks: u64,
    /// Linear memory cap per instance, bytes.
    pub memory_cap: usize,
    /// Directory of the precompiled-module cache (None: no cache).
    pub cache_dir: Option<PathBuf>,
}

impl HostConfig {
    /// Ticks a control call (instantiation, `configure`, `control`,
    /// `report`, `weft_alloc`) may run: twenty times a batch's, at least
    /// 100 ms. Control calls run between batches at an operator's request,
    /// so a slow one delays packets once, not per packet; and on a loaded
    /// machine the thread may be preempted for longer than a batch's few
    /// milliseconds of wall clock, which must not fail a reconfiguration.
    pub fn control_ticks(&self) -> u64 {
        let per_tick = self.epoch_tick.as_micros().max(1) as u64;
        (self.epoch_ticks * 20).max(100_000 / per_tick)
    }
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            budget: Budget::Epoch,
            fuel: 10_000_000,
            epoch_tick: Duration::from_millis(1),
            // 1 ms ticks, 5 of them: a looping plugin costs its worker at
            // most 5 ms, while a real batch takes microseconds.
            epoch_ticks: 5,
            memory_cap: 16 << 20,
            cache_dir: None,
        }
    }
}

/// Error returned by [`WasmHost::new`].
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// wasmtime refused the engine configuration.
    #[error("cannot create the WebAssembly engine: {0}")]
    Engine(String),
    /// The cache directory could not be created.
    #[error("cannot use module cache directory {0}: {1}")]
    CacheDir(PathBuf, std::io::Error),
}

pub(crate) struct HostShared {
    pub(crate) engine: Engine,
    pub(crate) config: HostConfig,
    pub(crate) cache: Option<ModuleCache>,
    ticker: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

impl Drop for HostShared {
    fn drop(&mut self) {
        if let Some((stop, handle)) = self.ticker.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = handle.join();
        }
    }
}

/// The node's WebAssembly host. Cheap to clone; every class loaded through it
/// shares its engine (and so its compiled-code memory and epoch).
#[derive(Clone)]
pub struct WasmHost {
    pub(crate) shared: Arc<HostShared>,
}

impl std::fmt::Debug for WasmHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmHost").field("config", &self.shared.config).finish()
    }
}

impl WasmHost {
    /// Create the engine (and, for [`Budget::Epoch`], its ticker thread).
    pub fn new(config: HostConfig) -> Result<Self, HostError> {
        let mut c = Config::new();
        c.consume_fuel(config.budget == Budget::Fuel);
        c.epoch_interruption(config.budget == Budget::Epoch);
        // Plugins are small; a shallow stack bounds deep recursion cheaply.
        c.max_wasm_stack(512 << 10);
        // `WEFT_WASM_PERFMAP=1`: wasmtime writes /tmp/perf-PID.map, so
        // `perf report` names the plugins' functions (docs/plugin-abi.md,
        // "Profiling a plugin").
        if std::env::var_os("WEFT_WASM_PERFMAP").is_some_and(|v| v == "1") {
            c.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&c).map_err(|e| HostError::Engine(e.to_string()))?;
        let cache = match &config.cache_dir {
            Some(d) => Some(ModuleCache::open(d, &engine).map_err(|e| HostError::CacheDir(d.clone(), e))?),
            None => None,
        };
        let ticker = (config.budget == Budget::Epoch).then(|| {
            let stop = Arc::new(AtomicBool::new(false));
            let (e, s, tick) = (engine.clone(), stop.clone(), config.epoch_tick);
            let h = std::thread::Builder::new()
                .name("weft-wasm-epoch".into())
                .spawn(move || {
                    while !s.load(Ordering::Relaxed) {
                        std::thread::sleep(tick);
                        e.increment_epoch();
                    }
                })
                .map_err(|e| HostError::Engine(format!("epoch ticker thread: {e}")));
            h.map(|h| (stop, h))
        });
        let ticker = ticker.transpose()?;
        Ok(WasmHost {
            shared: Arc::new(HostShared {
                engine,
                config,
                cache,
                ticker,
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &HostConfig {
        &self.shared.config
    }

    /// The wasmtime engine (shared by every class of this host).
    pub fn engine(&self) -> &Engine {
        &self.shared.engine
    }
}
