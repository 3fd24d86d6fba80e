//! The accept loop: connection caps, timeouts and peer identity (see the
//! crate documentation).

use crate::Limits;
use axum::extract::Request;
use axum::response::Response;
#[cfg(test)]
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// A bound listener.
#[derive(Debug)]
pub enum Listener {
    /// A Unix stream socket (peers identified by `SO_PEERCRED`).
    Unix(tokio::net::UnixListener),
    /// A TCP socket.
    Tcp(tokio::net::TcpListener),
}

/// Who is at the other end of a connection; every request carries it in
/// its extensions (`Extension<Peer>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// A process on this machine, as the kernel reports it (`SO_PEERCRED`:
    /// the credentials it had when it connected).
    Unix {
        /// Effective user id.
        uid: u32,
        /// Effective group id.
        gid: u32,
        /// Process id, when the kernel tells.
        pid: Option<i32>,
    },
    /// A TCP peer.
    Tcp(SocketAddr),
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Unix { uid, pid: Some(p), .. } => write!(f, "uid {uid} (pid {p})"),
            Peer::Unix { uid, .. } => write!(f, "uid {uid}"),
            Peer::Tcp(a) => write!(f, "tcp {a}"),
        }
    }
}

/// Which peers are served whatever the connection cap (the operator on
/// the Unix socket).
pub type Privileged = Arc<dyn Fn(&Peer) -> bool + Send + Sync>;

/// What a listener did, for metrics and tests.
#[derive(Debug, Default)]
pub struct ServeStats {
    /// Connections accepted and served.
    pub served: AtomicU64,
    /// Connections closed at once because the cap was reached.
    pub refused_busy: AtomicU64,
    /// Connections closed for a header timeout or their lifetime.
    pub timed_out: AtomicU64,
    /// Accept calls that failed (descriptor exhaustion among them).
    pub accept_errors: AtomicU64,
}

/// Written to a connection refused for the cap.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
content-length: 67\r\nconnection: close\r\n\r\n\
{\"error\":\"too many connections to this listener; try again later\"}";

/// What [`serve`] serves: an axum `Router`, or any service answering a
/// request as received (a server module's host takes them all itself).
pub trait App:
    tower::Service<Request<Incoming>, Response = Response, Error = Infallible, Future: Send + 'static>
    + Clone
    + Send
    + 'static
{
}

impl<S> App for S where
    S: tower::Service<Request<Incoming>, Response = Response, Error = Infallible, Future: Send + 'static>
        + Clone
        + Send
        + 'static
{
}

/// Serve `app` on `listener` until `shutdown` completes; then stop
/// accepting, let requests in flight finish for up to a second and
/// return. Never fails once started: accept errors (descriptor exhaustion
/// among them) are counted, logged at most every ten seconds and waited
/// out.
pub async fn serve(
    listener: Listener,
    app: impl App,
    limits: Limits,
    privileged: Option<Privileged>,
    stats: Arc<ServeStats>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let cap = Arc::new(Semaphore::new(limits.max_connections));
    // Refused connections are answered and drained briefly (closing one
    // with unread input would reset it before the peer reads the 503), a
    // bounded number at a time; beyond that they are just closed.
    let lingering = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let mut last_warn: Option<Instant> = None;
    let mut warn = |what: &str, detail: String| {
        if last_warn.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            last_warn = Some(Instant::now());
            tracing::warn!(detail, "{what}");
        }
    };
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            // Reap finished connection tasks as they end.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            a = accept(&listener) => a,
        };
        let (io, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                warn("accepting a connection failed; retrying", e.to_string());
                // EMFILE and its kin stay until something closes: do not spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let permit = match &privileged {
            Some(p) if p(&peer) => None,
            _ => match cap.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    stats.refused_busy.fetch_add(1, Ordering::Relaxed);
                    warn(
                        "connection cap reached: refusing connections",
                        format!("{} concurrent; latest from {peer}", limits.max_connections),
                    );
                    if let Ok(slot) = lingering.clone().try_acquire_owned() {
                        tasks.spawn(async move {
                            io.refuse_busy().await;
                            drop(slot);
                        });
                    }
                    continue;
                }
            },
        };
        stats.served.fetch_add(1, Ordering::Relaxed);
        let (app, stats, mut stop) = (app.clone(), stats.clone(), stop_rx.clone());
        tasks.spawn(async move {
            let _permit = permit;
            let timed_out = match io {
                Io::Unix(s) => connection(s, peer, app, limits, &mut stop).await,
                Io::Tcp(s) => connection(s, peer, app, limits, &mut stop).await,
            };
            if timed_out {
                stats.timed_out.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
}

enum Io {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream),
}

impl Io {
    /// Answer 503, then read and discard what the peer sent for at most
    /// [`LINGER`], so closing does not reset the connection under the
    /// answer.
    async fn refuse_busy(self) {
        async fn go<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let _ = tokio::time::timeout(LINGER, async {
                s.write_all(BUSY).await?;
                s.shutdown().await?;
                let mut sink = [0u8; 1024];
                while s.read(&mut sink).await? > 0 {}
                Ok::<(), std::io::Error>(())
            })
            .await;
        }
        match self {
            Io::Unix(s) => go(s).await,
            Io::Tcp(s) => go(s).await,
        }
    }
}

/// How long a refused connection is drained before it is closed.
const LINGER: Duration = Duration::from_millis(200);

async fn accept(l: &Listener) -> std::io::Result<(Io, Peer)> {
    match l {
        Listener::Unix(l) => {
            let (s, _) = l.accept().await?;
            let c = s.peer_cred()?;
            let peer = Peer::Unix {
                uid: c.uid(),
                gid: c.gid(),
                pid: c.pid(),
            };
            Ok((Io::Unix(s), peer))
        }
        Listener::Tcp(l) => {
            let (s, a) = l.accept().await?;
            let _ = s.set_nodelay(true);
            Ok((Io::Tcp(s), Peer::Tcp(a)))
        }
    }
}

/// Serve one connection; true when it ended by a timeout.
async fn connection<S>(
    io: S,
    peer: Peer,
    app: impl App,
    l: Limits,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(peer.clone());
        app.clone().oneshot(req)
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(l.header_timeout)
        // Heads between max_head and this get a JSON 431 from `enforce`;
        // larger ones are closed by hyper with a bare 431.
        .max_buf_size((l.max_head * 4).max(8192))
        .serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let lifetime = tokio::time::sleep(l.max_lifetime);
    tokio::pin!(lifetime);
    tokio::select! {
        r = conn.as_mut() => match r {
            Ok(()) => false,
            Err(e) => {
                tracing::debug!(error = %e, "connection ended with an error");
                e.is_timeout()
            }
        },
        _ = &mut lifetime => true,
        _ = async { let _ = stop.wait_for(|s| *s).await; } => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn start(limits: Limits) -> (SocketAddr, Arc<ServeStats>, tokio::sync::oneshot::Sender<()>) {
        let app = Router::new().route(
            "/",
            get(|axum::Extension(p): axum::Extension<Peer>| async move { p.to_string() }),
        );
        start_app(limits, app).await
    }

    /// Serve `app` on a loopback port until the returned sender is dropped.
    async fn start_app(limits: Limits, app: Router) -> (SocketAddr, Arc<ServeStats>, tokio::sync::oneshot::Sender<()>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let stats = Arc::new(ServeStats::default());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let s2 = stats.clone();
        tokio::spawn(async move {
            serve(Listener::Tcp(l), app, limits, None, s2, async move {
                let _ = rx.await;
            })
            .await
        });
        (addr, stats, tx)
    }

    async fn get_root(addr: SocketAddr) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.0\r\nhost: x\r\n\r\n").await.unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out).await;
        out
    }

    #[tokio::test]
    async fn over_the_cap_is_refused_and_idle_connections_time_out() {
        let limits = Limits {
            max_connections: 2,
            header_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let (addr, stats, _stop) = start(limits).await;
        // The peer's address reaches the handler.
        let r = get_root(addr).await;
        assert!(r.starts_with("HTTP/1.0 200") && r.contains("tcp 127.0.0.1:"), "{r}");

        // Two idle connections hold the cap; a third is answered 503 at once.
        let idle1 = tokio::net::TcpStream::connect(addr).await.unwrap();
        let idle2 = tokio::net::TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let r = get_root(addr).await;
        assert!(
            r.starts_with("HTTP/1.1 503") && r.contains("too many connections"),
            "{r}"
        );
        assert_eq!(stats.refused_busy.load(Ordering::Relaxed), 1);

        // The header timeout closes the idle ones and frees the cap.
        for mut s in [idle1, idle2] {
            let mut b = [0u8; 64];
            let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await;
            assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "idle connection not closed: {n:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(get_root(addr).await.starts_with("HTTP/1.0 200"));
        assert_eq!(stats.timed_out.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn a_privileged_peer_is_served_over_the_cap() {
        let dir = std::env::temp_dir().join(format!("weft-http-test-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("s.sock");
        let _ = std::fs::remove_file(&path);
        let l = tokio::net::UnixListener::bind(&path).unwrap();
        let app = Router::new().route("/", get(|| async { "ok" }));
        let stats = Arc::new(ServeStats::default());
        let limits = Limits {
            max_connections: 1,
            ..Limits::default()
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let privileged: Privileged = Arc::new(|p: &Peer| matches!(p, Peer::Unix { .. }));
        tokio::spawn(serve(
            Listener::Unix(l),
            app,
            limits,
            Some(privileged),
            stats.clone(),
            async move {
                let _ = rx.await;
            },
        ));
        let _idle = tokio::net::UnixStream::connect(&path).await.unwrap();
        for _ in 0..3 {
            let mut s = tokio::net::UnixStream::connect(&path).await.unwrap();
            s.write_all(b"GET / HTTP/1.0\r\nhost: x\r\n\r\n").await.unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            assert!(out.starts_with("HTTP/1.0 200"), "{out}");
        }
        assert_eq!(stats.refused_busy.load(Ordering::Relaxed), 0);
        drop(tx);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A client that sends a body over `max_body` after its head (not
    /// waiting for `100 Continue`, as scripts and `curl` with small bodies
    /// do) reads the 413, not a connection reset, whether the body's
    /// length was declared or it comes chunked.
    #[tokio::test]
    async fn an_oversized_body_gets_its_413_not_a_reset() {
        let limits = Limits {
            max_body: 1024,
            ..Limits::default()
        };
        let app = Router::new()
            .route(
                "/",
                axum::routing::post(|b: axum::body::Bytes| async move { b.len().to_string() }),
            )
            .layer(axum::middleware::from_fn_with_state(limits, crate::limits::enforce));
        let (addr, _stats, _stop) = start_app(limits, app).await;
        for (declared, chunked) in [(Some(8 * 1024 * 1024), false), (None, true)] {
            let s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut rd, mut wr) = s.into_split();
            let head = match declared {
                Some(n) => format!("POST / HTTP/1.1\r\nhost: x\r\ncontent-length: {n}\r\n\r\n"),
                None => "POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n".to_string(),
            };
            let writer = tokio::spawn(async move {
                wr.write_all(head.as_bytes()).await?;
                let chunk = vec![b'a'; 16 * 1024];
                for _ in 0..512 {
                    if chunked {
                        wr.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await?;
                    }
                    wr.write_all(&chunk).await?;
                    if chunked {
                        wr.write_all(b"\r\n").await?;
                    }
                }
                if chunked {
                    wr.write_all(b"0\r\n\r\n").await?;
                }
                Ok::<_, std::io::Error>(wr)
            });
            let mut out = Vec::new();
            let r = tokio::time::timeout(Duration::from_secs(10), rd.read_to_end(&mut out)).await;
            let text = String::from_utf8_lossy(&out);
            assert!(
                text.starts_with("HTTP/1.1 413") && text.contains("over 1024 bytes"),
                "{declared:?} chunked={chunked}: {r:?} {text}"
            );
            let _ = writer.await;
        }
    }
}
