//! Module code for SETUPs: the [`ModuleFetcher`] the daemon is given, the
//! loader-backed ones ([`LoaderFetcher`] on a running node,
//! [`BlockingFetcher`] in the emulator), and how a loader error becomes a
//! reason on the response stack.
//!
//! A SETUP names its code server; the node fetches only from the servers
//! its `[plugins] repos` lists (the daemon refuses any other URL with
//! `unlisted-code-server` before a fetch starts: a request from a stranger
//! never makes the node connect anywhere its operator did not choose), by
//! `NAME@SHA256`, and the loader checks hash, signature by a trusted key
//! and ABI before anything compiles.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weft_dataplane::ElementClass;
use weft_repo::{Loader, LoaderError, PluginSpec};
use weft_signal::{Reason, Refusal, SessionId};

/// What to fetch for a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchSpec {
    /// The session waiting for it.
    pub session: SessionId,
    /// Plugin name.
    pub name: String,
    /// sha256 of the module, hex.
    pub sha256: String,
    /// The code server (one of `[plugins] repos`).
    pub url: String,
}

/// A fetched, verified and compiled module.
#[derive(Clone)]
pub struct FetchedModule {
    /// The class to register.
    pub class: ElementClass,
    /// The signed manifest's version.
    pub version: String,
    /// The signer's key id (16 hex digits).
    pub signer: String,
    /// Time fetching from the code server (zero from the cache).
    pub fetch: Duration,
    /// Time checking hash, signature and ABI.
    pub verify: Duration,
    /// Time compiling.
    pub compile: Duration,
}

impl std::fmt::Debug for FetchedModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchedModule")
            .field("class", &self.class.name)
            .field("version", &self.version)
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

/// A fetch's outcome, for the daemon.
pub type Fetched = (SessionId, Result<FetchedModule, Refusal>);

/// Where the signaling daemon gets module code. Implementations must not
/// block the node thread: `fetch` starts the work; the daemon collects
/// outcomes with `poll` every time it runs.
pub trait ModuleFetcher: Send {
    /// Start fetching `spec`.
    fn fetch(&mut self, spec: FetchSpec);
    /// A finished fetch, if any.
    fn poll(&mut self) -> Option<Fetched>;
}

/// The reason a failed fetch puts on the stack: `unknown-module` when no
/// listed code server has it (or none answered), `module-rejected` when
/// it failed a check, `unlisted-code-server` for a URL the node does not
/// fetch from. The text is the loader's.
pub fn fetch_refusal(e: &LoaderError) -> Refusal {
    let reason = match e {
        LoaderError::Untrusted { .. } | LoaderError::Module { .. } => Reason::ModuleRejected,
        LoaderError::UnlistedRepo { .. } | LoaderError::BadUrl(_) => Reason::UnlistedCodeServer,
        LoaderError::NoRepos => Reason::Unsupported,
        LoaderError::Task(_) => Reason::InstallFailed,
        LoaderError::NotFound { .. } | LoaderError::Fetch(_) => Reason::UnknownModule,
    };
    Refusal::new(reason, e.to_string())
}

/// Fetch and load `spec` with `loader`, timing each step.
async fn load(loader: Loader, spec: FetchSpec) -> Result<FetchedModule, Refusal> {
    let ps: PluginSpec = format!("{}@{}", spec.name, spec.sha256)
        .parse()
        .map_err(|e: String| Refusal::new(Reason::BadMessage, e))?;
    let t = Instant::now();
    let f = loader
        .fetch(&ps, Some(&spec.url))
        .await
        .map_err(|e| fetch_refusal(&e))?;
    let fetch = if f.source == "cache" {
        Duration::ZERO
    } else {
        t.elapsed()
    };
    let l = tokio::task::spawn_blocking(move || loader.verify_and_load(&ps, f))
        .await
        .map_err(|e| Refusal::new(Reason::InstallFailed, e.to_string()))?
        .map_err(|e| fetch_refusal(&e))?;
    Ok(FetchedModule {
        class: l.class.element_class(),
        version: l.manifest.version.clone(),
        signer: l.signer.0.clone(),
        fetch,
        verify: l.verify_time,
        compile: l.compile_time,
    })
}

/// The fetcher of a running node: each fetch runs on the API's runtime,
/// never on the node thread; its outcome waits in a queue and `wake` is
/// called so that the node thread polls the daemon soon.
pub struct LoaderFetcher {
    loader: Loader,
    rt: tokio::runtime::Handle,
    done: Arc<Mutex<VecDeque<Fetched>>>,
    wake: Arc<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for LoaderFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoaderFetcher")
    }
}

impl LoaderFetcher {
    /// Fetch through `loader` on `rt`; call `wake` when a fetch ends.
    pub fn new(loader: Loader, rt: tokio::runtime::Handle, wake: Arc<dyn Fn() + Send + Sync>) -> LoaderFetcher {
        LoaderFetcher {
            loader,
            rt,
            done: Arc::new(Mutex::new(VecDeque::new())),
            wake,
        }
    }
}

impl ModuleFetcher for LoaderFetcher {
    fn fetch(&mut self, spec: FetchSpec) {
        let (loader, done, wake) = (self.loader.clone(), self.done.clone(), self.wake.clone());
        self.rt.spawn(async move {
            let session = spec.session;
            let r = load(loader, spec).await;
            if let Ok(mut q) = done.lock() {
                q.push_back((session, r));
            }
            wake();
        });
    }

    fn poll(&mut self) -> Option<Fetched> {
        self.done.lock().ok()?.pop_front()
    }
}

/// The emulator's fetcher: fetches at once, blocking (the emulator's
/// virtual clock does not move meanwhile), on a thread of its own with its
/// own runtime, so it works inside an async test too.
pub struct BlockingFetcher {
    loader: Loader,
    done: VecDeque<Fetched>,
}

impl std::fmt::Debug for BlockingFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlockingFetcher")
    }
}

impl BlockingFetcher {
    /// Fetch through `loader`.
    pub fn new(loader: Loader) -> BlockingFetcher {
        BlockingFetcher {
            loader,
            done: VecDeque::new(),
        }
    }
}

impl ModuleFetcher for BlockingFetcher {
    fn fetch(&mut self, spec: FetchSpec) {
        let session = spec.session;
        let loader = self.loader.clone();
        let r = std::thread::scope(|s| {
            s.spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| Refusal::new(Reason::InstallFailed, e.to_string()))?;
                rt.block_on(load(loader, spec))
            })
            .join()
            .unwrap_or_else(|_| Err(Refusal::new(Reason::InstallFailed, "the fetch thread panicked")))
        });
        self.done.push_back((session, r));
    }

    fn poll(&mut self) -> Option<Fetched> {
        self.done.pop_front()
    }
}
