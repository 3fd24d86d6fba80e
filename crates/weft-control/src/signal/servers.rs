//! [`WasiServers`]: the node's host of server modules — WASI HTTP proxy
//! components (`crates/weft-servers`) started by SETUP.
//!
//! A start, off the node thread (on the API's tokio runtime): the code
//! server must be one of `[plugins] repos` (checked before anything
//! connects); fetch `NAME@SHA256` from it; verify hash and signature by a
//! trusted key as for packet modules, with the server-module ABI
//! ([`weft_repo::Loader::verify_server`]); the signed version must be the
//! requested one; compile the component (refused unless it is of the proxy
//! world); listen on each node address at each SERVER_PORT (the node
//! delivers those TCP ports to its kernel through the `[punt]` TUN, which
//! carries the node's addresses). The outcome is queued and the node
//! thread nudged; the daemon takes it with [`ServerModules::poll`].
//!
//! The module's outgoing requests may reach the `origin=` entries of its
//! configuration only, and never an address of the node or loopback
//! (`weft_servers::egress`).
//!
//! [`EmulatedServers`] is the emulator's host (its nodes have no kernel,
//! no TCP): the same start, finished before `start` returns (no virtual
//! time passes), listening on a loopback address at an ephemeral port in
//! place of each node address and SETUP port, and with loopback allowed to
//! the module's `origin=` entries (the emulator's origin runs on loopback).
//! Only code builds one — no node configuration can: a running node always
//! uses [`WasiServers::new`], which keeps both rules.

use super::fetch::fetch_refusal;
use super::server::ServerModules;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weft_repo::{Loader, PluginSpec};
use weft_servers::{Bounds, ModuleConfig, Server, ServerCode, ServerHost, ServerSpec};
use weft_signal::wire::Timing;
use weft_signal::{Install, Installed, Reason, Refusal, Request, SessionId};

type Done = Arc<Mutex<VecDeque<(SessionId, Result<Installed, Refusal>)>>>;

#[derive(Default)]
struct Slot {
    cancelled: bool,
    server: Option<Server>,
}

/// Server modules of a running node.
pub struct WasiServers {
    host: ServerHost,
    loader: Loader,
    rt: tokio::runtime::Handle,
    bounds: Bounds,
    wake: Arc<dyn Fn() + Send + Sync>,
    done: Done,
    slots: HashMap<SessionId, Arc<Mutex<Slot>>>,
    /// The emulator's stand-in ([`EmulatedServers`]): listen here (port 0)
    /// instead of on the node's addresses, and let egress reach loopback
    /// origins. `None` on a node.
    loopback: Option<IpAddr>,
    /// The emulator's compiled components by sha256 (hex), shared by the
    /// nodes of one machine ([`EmulatedServers::sibling`]). `None` on a node.
    compiled: Option<Compiled>,
}

type Compiled = Arc<Mutex<HashMap<String, ServerCode>>>;

impl std::fmt::Debug for WasiServers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasiServers")
            .field("modules", &self.slots.len())
            .finish_non_exhaustive()
    }
}

impl WasiServers {
    /// Host server modules with `bounds`, code through `loader`, work on
    /// `rt`; `wake` nudges the node thread when a start ends.
    pub fn new(
        host: ServerHost,
        loader: Loader,
        rt: tokio::runtime::Handle,
        bounds: Bounds,
        wake: Arc<dyn Fn() + Send + Sync>,
    ) -> WasiServers {
        WasiServers {
            host,
            loader,
            rt,
            bounds,
            wake,
            done: Arc::default(),
            slots: HashMap::new(),
            loopback: None,
            compiled: None,
        }
    }

    /// Counters of `session`'s module, if it is serving.
    pub fn stats(&self, session: SessionId) -> Option<Vec<(&'static str, u64)>> {
        let s = self.slots.get(&session)?.lock().ok()?;
        Some(s.server.as_ref()?.stats().snapshot())
    }
}

fn us(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

struct Job {
    loader: Loader,
    host: ServerHost,
    spec: PluginSpec,
    url: String,
    version: String,
    listen: Vec<SocketAddr>,
    deny: Vec<IpAddr>,
    deny_loopback: bool,
    config: ModuleConfig,
    bounds: Bounds,
    /// Where compiled code is shared, and this module's key there.
    compiled: Option<(Compiled, String)>,
}

async fn start(j: Job, slot: Arc<Mutex<Slot>>) -> Result<Installed, Refusal> {
    let t = Instant::now();
    let f = j
        .loader
        .fetch(&j.spec, Some(&j.url))
        .await
        .map_err(|e| fetch_refusal(&e))?;
    let fetch = if f.source == "cache" {
        Duration::ZERO
    } else {
        t.elapsed()
    };
    let (loader, spec) = (j.loader.clone(), j.spec.clone());
    let v = tokio::task::spawn_blocking(move || loader.verify_server(&spec, f))
        .await
        .map_err(|e| Refusal::new(Reason::InstallFailed, e.to_string()))?
        .map_err(|e| fetch_refusal(&e))?;
    if v.manifest.version != j.version {
        return Err(Refusal::new(
            Reason::ModuleRejected,
            format!(
                "the code server's {} is version {}, not {}",
                j.spec.name, v.manifest.version, j.version
            ),
        ));
    }
    let t = Instant::now();
    let cached = j.compiled.as_ref().and_then(|(c, k)| c.lock().ok()?.get(k).cloned());
    let (code, compile) = match cached {
        // The same verified bytes compiled for another node of the machine.
        Some(code) => (code, Duration::ZERO),
        None => {
            let host = j.host.clone();
            let code = tokio::task::spawn_blocking(move || host.compile(&v.module))
                .await
                .map_err(|e| Refusal::new(Reason::InstallFailed, e.to_string()))?
                .map_err(|e| Refusal::new(Reason::ModuleRejected, e.to_string()))?;
            if let Some((c, k)) = &j.compiled {
                if let Ok(mut m) = c.lock() {
                    m.insert(k.clone(), code.clone());
                }
            }
            (code, t.elapsed())
        }
    };
    let t = Instant::now();
    let server = Server::start(
        &j.host,
        code,
        ServerSpec {
            name: format!("{}@{}", j.spec.name, j.version),
            listen: j.listen,
            config: j.config,
            deny: j.deny,
            deny_loopback: j.deny_loopback,
            bounds: j.bounds,
        },
    )
    .await
    .map_err(|e| Refusal::new(Reason::InstallFailed, e.to_string()))?;
    let instantiate = t.elapsed();
    let mut s = slot
        .lock()
        .map_err(|_| Refusal::new(Reason::InstallFailed, "poisoned"))?;
    if s.cancelled {
        // Removed (REMOVE, expiry, install timeout) while starting.
        return Err(Refusal::new(Reason::InstallFailed, "removed while starting"));
    }
    s.server = Some(server);
    Ok(Installed {
        instance: None,
        timing: Some(Timing {
            fetch_us: us(fetch),
            verify_us: us(v.verify_time),
            compile_us: us(compile),
            instantiate_us: us(instantiate),
        }),
    })
}

impl ServerModules for WasiServers {
    fn start(
        &mut self,
        session: SessionId,
        req: &Request,
        _owner: &str,
        addresses: &[IpAddr],
    ) -> Result<Install, Refusal> {
        let (Some(m), Some(code)) = (&req.module, &req.code) else {
            return Err(Refusal::new(Reason::InstallFailed, "no module or code"));
        };
        let config = ModuleConfig::parse(&req.config)
            .map_err(|e| Refusal::new(Reason::InstallFailed, format!("bad configuration: {e}")))?;
        let sha: String = code.sha256.iter().map(|b| format!("{b:02x}")).collect();
        let spec: PluginSpec = format!("{}@{sha}", m.name)
            .parse()
            .map_err(|e: String| Refusal::new(Reason::BadMessage, e))?;
        let listen: Vec<SocketAddr> = match self.loopback {
            // The emulator: one ephemeral loopback port per SETUP port.
            Some(ip) => req.server_ports.iter().map(|_| SocketAddr::new(ip, 0)).collect(),
            None => addresses
                .iter()
                .flat_map(|a| req.server_ports.iter().map(move |p| SocketAddr::new(*a, p.port)))
                .collect(),
        };
        if listen.is_empty() {
            return Err(Refusal::new(
                Reason::InstallFailed,
                "the node has no address to serve on",
            ));
        }
        let slot = Arc::new(Mutex::new(Slot::default()));
        self.slots.insert(session, slot.clone());
        let job = Job {
            loader: self.loader.clone(),
            host: self.host.clone(),
            spec,
            url: code.url.clone(),
            version: m.version.clone(),
            listen,
            deny: addresses.to_vec(),
            deny_loopback: self.loopback.is_none(),
            config,
            bounds: self.bounds,
            compiled: self.compiled.clone().map(|c| (c, sha)),
        };
        let (done, wake) = (self.done.clone(), self.wake.clone());
        self.rt.spawn(async move {
            let r = start(job, slot).await;
            if let Ok(mut q) = done.lock() {
                q.push_back((session, r));
            }
            wake();
        });
        Ok(Install::Pending)
    }

    fn stop(&mut self, session: SessionId) {
        if let Some(slot) = self.slots.remove(&session) {
            if let Ok(mut s) = slot.lock() {
                s.cancelled = true;
                if let Some(mut srv) = s.server.take() {
                    srv.stop();
                }
            }
        }
    }

    fn counters(&self) -> Vec<(SessionId, Vec<(&'static str, u64)>)> {
        let mut v: Vec<_> = self.slots.keys().filter_map(|s| Some((*s, self.stats(*s)?))).collect();
        v.sort_by_key(|(s, _)| s.0);
        v
    }

    fn listening(&self, session: SessionId) -> Vec<SocketAddr> {
        self.slots
            .get(&session)
            .and_then(|s| s.lock().ok()?.server.as_ref().map(|srv| srv.local_addrs().to_vec()))
            .unwrap_or_default()
    }

    fn poll(&mut self) -> Option<(SessionId, Result<Installed, Refusal>)> {
        loop {
            let (session, r) = self.done.lock().ok()?.pop_front()?;
            // A start whose session went meanwhile is nobody's news.
            if self.slots.contains_key(&session) {
                if r.is_err() {
                    self.slots.remove(&session);
                }
                return Some((session, r));
            }
        }
    }
}

/// The emulator's host of server modules: [`WasiServers`] whose starts
/// finish before [`ServerModules::start`] returns (the emulator's virtual
/// clock does not move meanwhile, as with
/// [`super::fetch::BlockingFetcher`]), whose modules listen on `loopback`
/// at an ephemeral port per SETUP port (see [`ServerModules::listening`])
/// instead of the node's addresses, and whose modules' egress may reach
/// loopback — still only the `origin=` entries of their configuration,
/// never a node address. The nodes of one emulator share compiled code
/// ([`EmulatedServers::sibling`]). For the emulator and the demo only: a
/// node's configuration has no way to build one.
pub struct EmulatedServers {
    inner: WasiServers,
    woken: std::sync::mpsc::Receiver<()>,
    wait: Duration,
}

impl std::fmt::Debug for EmulatedServers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatedServers").field("inner", &self.inner).finish()
    }
}

impl EmulatedServers {
    /// Host server modules on `loopback` (a loopback address; anything
    /// else is refused), code through `loader`, served on `rt` (a runtime
    /// that keeps running while the emulator's thread waits: multi-threaded,
    /// or driven by another thread); a start may take `wait` of wall-clock
    /// time at most.
    pub fn new(
        host: ServerHost,
        loader: Loader,
        rt: tokio::runtime::Handle,
        bounds: Bounds,
        loopback: IpAddr,
        wait: Duration,
    ) -> Result<EmulatedServers, String> {
        if !loopback.is_loopback() {
            return Err(format!("{loopback} is not a loopback address"));
        }
        let (wake, woken) = wake_channel();
        let mut inner = WasiServers::new(host, loader, rt, bounds, wake);
        inner.loopback = Some(loopback);
        inner.compiled = Some(Compiled::default());
        Ok(EmulatedServers { inner, woken, wait })
    }

    /// The host for another node of the same machine: the same engine,
    /// loader, runtime, bounds and loopback address, and the same compiled
    /// code — a component verified by both nodes compiles once (its entry
    /// then reports a compile time of zero). Each node still fetches and
    /// verifies for itself.
    pub fn sibling(&self) -> EmulatedServers {
        let (wake, woken) = wake_channel();
        let i = &self.inner;
        let mut inner = WasiServers::new(i.host.clone(), i.loader.clone(), i.rt.clone(), i.bounds, wake);
        inner.loopback = i.loopback;
        inner.compiled = i.compiled.clone();
        EmulatedServers {
            inner,
            woken,
            wait: self.wait,
        }
    }
}

/// A wake callback that sends on a channel, and its receiving end.
fn wake_channel() -> (Arc<dyn Fn() + Send + Sync>, std::sync::mpsc::Receiver<()>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = Mutex::new(tx);
    let wake: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
        if let Ok(t) = tx.lock() {
            let _ = t.send(());
        }
    });
    (wake, rx)
}

impl ServerModules for EmulatedServers {
    fn start(
        &mut self,
        session: SessionId,
        req: &Request,
        owner: &str,
        addresses: &[IpAddr],
    ) -> Result<Install, Refusal> {
        while self.woken.try_recv().is_ok() {}
        self.inner.start(session, req, owner, addresses)?;
        let deadline = Instant::now() + self.wait;
        loop {
            if let Some((s, r)) = self.inner.poll() {
                if s == session {
                    return r.map(Install::Done);
                }
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.woken.recv_timeout(left).is_err() {
                self.inner.stop(session);
                return Err(Refusal::new(
                    Reason::InstallTimeout,
                    format!("the module did not start within {:?}", self.wait),
                ));
            }
        }
    }

    fn stop(&mut self, session: SessionId) {
        self.inner.stop(session);
    }

    fn counters(&self) -> Vec<(SessionId, Vec<(&'static str, u64)>)> {
        self.inner.counters()
    }

    fn listening(&self, session: SessionId) -> Vec<SocketAddr> {
        self.inner.listening(session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_repo::LoaderConfig;

    fn loader() -> Loader {
        let cfg = LoaderConfig {
            trusted_keys: Vec::new(),
            repos: Vec::new(),
            cache_dir: None,
        };
        Loader::new(cfg, weft_wasm::WasmHost::new(weft_wasm::HostConfig::default()).unwrap())
    }

    /// The emulator's host serves on loopback only: it refuses to be built
    /// for any other address (a node address would put a module, allowed to
    /// reach loopback origins, on a real interface).
    #[test]
    fn emulated_servers_take_a_loopback_address_only() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let make = |ip: &str| {
            EmulatedServers::new(
                ServerHost::new().unwrap(),
                loader(),
                rt.handle().clone(),
                Bounds::default(),
                ip.parse().unwrap(),
                Duration::from_secs(1),
            )
        };
        for ip in ["10.0.1.1", "0.0.0.0", "::"] {
            let e = make(ip).unwrap_err();
            assert!(e.contains("is not a loopback address"), "{ip}: {e}");
        }
        assert!(make("127.0.0.1").is_ok());
        assert!(make("::1").is_ok());
    }
}
