//! [`Server`]: one server module serving its listeners.
//!
//! * **Listeners** are served by `weft_http::serve` with the module's
//!   [`Bounds`]: a connection cap (over it, `503` and close), a header
//!   timeout that also closes idle keep-alive connections, the request
//!   size limits of `weft_http::limits`.
//! * **One instance per module**, kept across requests: a module's state
//!   (ActiveCDN's cache) lives in its linear memory, under the memory cap.
//!   Requests take the instance one at a time, in arrival order, and wait
//!   for it at most until their timeout (`503` then, counted `busy`). This
//!   is NetServ's model — a module is a process on the node, not a function
//!   per request — and what a cache needs; a module that wants parallelism
//!   must be deployed as several.
//! * **Each request** runs under the CPU budget (ticks of running wasm,
//!   [`crate::host`]), the memory cap and the request timeout. A request
//!   that exceeds one gets a `5xx` whose JSON body names the bound, is
//!   counted, and the instance is discarded — the next request starts a
//!   fresh one (counted `instantiations`): a module that loops or
//!   allocates without bound costs itself its state, never the node.

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;
use http_body_util::BodyExt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::time::Instant;
use wasmtime::component::ResourceTable;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::bindings::Proxy;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpView};

use crate::config::ModuleConfig;
use crate::egress::Egress;
use crate::host::{Bounds, MemLimit, ServerCode, ServerHost, State};
pub use crate::stats::ServerStats;

/// What to serve and how.
#[derive(Clone, Debug)]
pub struct ServerSpec {
    /// For logs (`MODULE@VERSION session …`).
    pub name: String,
    /// Where to listen (the node's addresses at the SETUP's port).
    pub listen: Vec<SocketAddr>,
    /// The SETUP's configuration.
    pub config: ModuleConfig,
    /// Addresses outgoing requests never reach (the node's own).
    pub deny: Vec<IpAddr>,
    /// Refuse loopback destinations too.
    pub deny_loopback: bool,
    /// Bounds.
    pub bounds: Bounds,
}

/// Error returned by [`Server::start`].
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound (nothing is left listening).
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        /// Where.
        addr: SocketAddr,
        /// Why.
        error: std::io::Error,
    },
    /// Nothing to listen on.
    #[error("no address to listen on")]
    NoListener,
}

struct Inst {
    store: Store<State>,
    proxy: Proxy,
}

struct Shared {
    host: ServerHost,
    code: ServerCode,
    slot: Arc<tokio::sync::Mutex<Option<Inst>>>,
    egress: Egress,
    config: String,
    bounds: Bounds,
    stats: Arc<ServerStats>,
    name: String,
}

/// Why a request's handler failed.
#[derive(Debug)]
enum Failure {
    Cpu,
    Memory,
    Trap(String),
    Timeout,
    NoResponse,
    Instantiate(String),
}

/// A running server module. Dropping it stops it too.
pub struct Server {
    stats: Arc<ServerStats>,
    serve: Vec<Arc<weft_http::ServeStats>>,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    local: Vec<SocketAddr>,
    slot: Arc<tokio::sync::Mutex<Option<Inst>>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("local", &self.local).finish()
    }
}

impl Server {
    /// Bind every address of `spec` (all or none) and serve `code` there,
    /// on the current tokio runtime.
    pub async fn start(host: &ServerHost, code: ServerCode, spec: ServerSpec) -> Result<Server, StartError> {
        if spec.listen.is_empty() {
            return Err(StartError::NoListener);
        }
        let mut listeners = Vec::new();
        for a in &spec.listen {
            let l = tokio::net::TcpListener::bind(a)
                .await
                .map_err(|error| StartError::Bind { addr: *a, error })?;
            listeners.push(l);
        }
        let local: Vec<SocketAddr> = listeners.iter().filter_map(|l| l.local_addr().ok()).collect();
        let stats = Arc::new(ServerStats::default());
        let slot = Arc::new(tokio::sync::Mutex::new(None));
        let sh = Arc::new(Shared {
            host: host.clone(),
            code,
            slot: slot.clone(),
            egress: Egress {
                allowed: spec.config.origins.clone().into(),
                deny: spec.deny.clone().into(),
                deny_loopback: spec.deny_loopback,
                stats: stats.clone(),
            },
            config: spec.config.raw.clone(),
            bounds: spec.bounds,
            stats: stats.clone(),
            name: spec.name.clone(),
        });
        let limits = weft_http::Limits {
            max_connections: spec.bounds.max_connections.max(1),
            header_timeout: spec.bounds.header_timeout,
            body_timeout: spec.bounds.request_timeout,
            max_uri: 8192,
            max_head: 16 * 1024,
            max_body: spec.bounds.max_body,
            max_lifetime: Duration::from_secs(3600),
        };
        // Every request goes to `handle`, straight from hyper (no router:
        // a module takes all paths), the limits checked first (`admit`).
        let app = {
            let sh = sh.clone();
            tower::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let sh = sh.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(
                        match weft_http::limits::admit(&limits, req.map(Body::new)).await {
                            Ok(req) => handle(sh, req).await,
                            Err(refused) => refused,
                        },
                    )
                }
            })
        };
        let (tx, rx) = tokio::sync::watch::channel(false);
        let mut serve = Vec::new();
        for l in listeners {
            let st = Arc::new(weft_http::ServeStats::default());
            serve.push(st.clone());
            let mut rx = rx.clone();
            let app = app.clone();
            tokio::spawn(async move {
                weft_http::serve(weft_http::Listener::Tcp(l), app, limits, None, st, async move {
                    let _ = rx.wait_for(|s| *s).await;
                })
                .await;
            });
        }
        tracing::info!(module = %spec.name, listen = ?local, "server module serving");
        Ok(Server {
            stats,
            serve,
            stop: Some(tx),
            local,
            slot,
        })
    }

    /// Where it listens.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local
    }

    /// Its counters.
    pub fn stats(&self) -> &Arc<ServerStats> {
        &self.stats
    }

    /// Connections refused over the cap, summed over its listeners.
    pub fn refused_busy(&self) -> u64 {
        self.serve.iter().map(|s| s.refused_busy.load(Ordering::Relaxed)).sum()
    }

    /// Stop accepting; connections in flight get a second to finish; the
    /// instance goes with the last of them.
    pub fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(true);
        }
        if let Ok(mut g) = self.slot.try_lock() {
            g.take();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn instantiate(sh: &Shared) -> Result<Inst, String> {
    let wasi = WasiCtx::builder()
        .env("WEFT_CONFIG", &sh.config)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build();
    let mut store = Store::new(
        sh.host.engine(),
        State {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            egress: sh.egress.clone(),
            mem: MemLimit {
                cap: sh.bounds.memory,
                hit: false,
            },
            ticks: 0,
            budget: sh.bounds.budget_ticks(),
            cpu_exceeded: false,
        },
    );
    store.limiter(|s| &mut s.mem);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut cx| {
        let s = cx.data_mut();
        s.ticks += 1;
        if s.ticks > s.budget {
            s.cpu_exceeded = true;
            return Err(wasmtime::Error::msg("the request's CPU budget is exhausted"));
        }
        Ok(UpdateDeadline::Yield(1))
    });
    sh.stats.instantiations.fetch_add(1, Ordering::Relaxed);
    let proxy = sh
        .code
        .pre
        .instantiate_async(&mut store)
        .await
        .map_err(|e| format!("{e:#}"))?;
    Ok(Inst { store, proxy })
}

type Outcome = Result<hyper::Response<wasmtime_wasi_http::p2::body::HyperOutgoingBody>, ErrorCode>;

/// Run one request on the instance (creating it if needed); the answer
/// goes out through `tx` as soon as the module sets it.
async fn run(
    sh: Arc<Shared>,
    mut guard: tokio::sync::OwnedMutexGuard<Option<Inst>>,
    req: Request,
    tx: tokio::sync::oneshot::Sender<Outcome>,
    deadline: Instant,
) -> Result<(), Failure> {
    let mut inst = match guard.take() {
        Some(i) => i,
        None => match tokio::time::timeout_at(deadline, instantiate(&sh)).await {
            Ok(Ok(i)) => i,
            Ok(Err(e)) => return Err(Failure::Instantiate(e)),
            Err(_) => return Err(Failure::Timeout),
        },
    };
    {
        let s = inst.store.data_mut();
        s.ticks = 0;
        s.cpu_exceeded = false;
        s.mem.hit = false;
    }
    inst.store.set_epoch_deadline(1);
    let req = req.map(|b| b.map_err(|_| wasmtime_wasi_http::Error::ConnectionTerminated));
    let made = (|| {
        let r = inst.store.data_mut().http().new_incoming_request(Scheme::Http, req)?;
        let o = inst.store.data_mut().http().new_response_outparam(tx)?;
        Ok::<_, wasmtime::Error>((r, o))
    })();
    let (r, o) = made.map_err(|e| Failure::Trap(format!("{e:#}")))?;
    let call = inst
        .proxy
        .wasi_http_incoming_handler()
        .call_handle(&mut inst.store, r, o);
    match tokio::time::timeout_at(deadline, call).await {
        Ok(Ok(())) => {
            *guard = Some(inst);
            Ok(())
        }
        Ok(Err(e)) => {
            let s = inst.store.data();
            Err(if s.cpu_exceeded {
                Failure::Cpu
            } else if s.mem.hit {
                Failure::Memory
            } else {
                Failure::Trap(format!("{e:#}"))
            })
        }
        Err(_) => Err(Failure::Timeout),
    }
}

fn count(sh: &Shared, f: &Failure) {
    let c = match f {
        Failure::Cpu => &sh.stats.cpu_exceeded,
        Failure::Memory => &sh.stats.memory_exceeded,
        Failure::Trap(_) | Failure::Instantiate(_) => &sh.stats.traps,
        Failure::Timeout => &sh.stats.timeouts,
        Failure::NoResponse => &sh.stats.no_response,
    };
    c.fetch_add(1, Ordering::Relaxed);
    if !matches!(f, Failure::NoResponse) {
        tracing::warn!(module = %sh.name, failure = ?f, "server module: request failed; the instance is discarded");
    }
}

fn failure_response(sh: &Shared, f: &Failure) -> Response {
    let b = &sh.bounds;
    let (status, msg) = match f {
        Failure::Cpu => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the server module exceeded its CPU budget of {} ms for this request",
                b.cpu_budget.as_millis()
            ),
        ),
        Failure::Memory => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the server module exceeded its memory cap of {} MiB", b.memory >> 20),
        ),
        Failure::Trap(e) => (StatusCode::BAD_GATEWAY, format!("the server module trapped: {e}")),
        Failure::Instantiate(e) => (
            StatusCode::BAD_GATEWAY,
            format!("the server module could not be started: {e}"),
        ),
        Failure::Timeout => (
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "the server module did not answer within {} s",
                b.request_timeout.as_secs_f64()
            ),
        ),
        Failure::NoResponse => (
            StatusCode::BAD_GATEWAY,
            "the server module returned without a response".to_string(),
        ),
    };
    weft_http::json_error(status, msg)
}

async fn handle(sh: Arc<Shared>, req: Request) -> Response {
    sh.stats.requests.fetch_add(1, Ordering::Relaxed);
    let deadline = Instant::now() + sh.bounds.request_timeout;
    // The instance is free at once unless requests overlap: no timer then.
    let guard = match sh.slot.clone().try_lock_owned() {
        Ok(g) => g,
        Err(_) => match tokio::time::timeout_at(deadline, sh.slot.clone().lock_owned()).await {
            Ok(g) => g,
            Err(_) => {
                sh.stats.busy.fetch_add(1, Ordering::Relaxed);
                return weft_http::json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the server module is busy; try again later",
                );
            }
        },
    };
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    let mut call = {
        let sh = sh.clone();
        Box::pin(async move {
            let r = run(sh.clone(), guard, req, tx, deadline).await;
            if let Err(f) = &r {
                count(&sh, f);
            }
            r
        })
    };
    // One poll here: a handler that answers without waiting (a cache hit)
    // ends within it and needs no task. One that waits (on its origin, a
    // timer, a full body channel) goes on in a task of its own, so it ends
    // on its own terms even if this request's connection goes away.
    let call = match std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx))).await {
        Poll::Ready(r) => Call::Ended(r),
        Poll::Pending => Call::Running(tokio::spawn(call)),
    };
    // No timer here: `run` bounds instantiation and the call by `deadline`
    // and drops `tx` when it gives up, which ends this wait.
    let answer = match call {
        Call::Ended(_) => rx.try_recv().ok(),
        Call::Running(_) => (&mut rx).await.ok(),
    };
    match answer {
        Some(Ok(resp)) => {
            sh.stats.answered.fetch_add(1, Ordering::Relaxed);
            resp.map(Body::new)
        }
        Some(Err(code)) => {
            sh.stats.answered.fetch_add(1, Ordering::Relaxed);
            weft_http::json_error(StatusCode::BAD_GATEWAY, format!("the server module failed: {code:?}"))
        }
        // The module never set a response: say why.
        None => {
            let ended = match call {
                Call::Ended(r) => r,
                Call::Running(task) => match tokio::time::timeout_at(deadline, task).await {
                    Ok(Ok(r)) => r,
                    Ok(Err(e)) => Err(Failure::Trap(e.to_string())),
                    Err(_) => Err(Failure::Timeout),
                },
            };
            match ended {
                Err(f) => failure_response(&sh, &f),
                Ok(()) => {
                    count(&sh, &Failure::NoResponse);
                    failure_response(&sh, &Failure::NoResponse)
                }
            }
        }
    }
}

/// Where a request's call into the module is after its first poll.
enum Call {
    Ended(Result<(), Failure>),
    Running(tokio::task::JoinHandle<Result<(), Failure>>),
}
