//! `weft repo serve`: a repository directory ([`crate::store`]) over plain
//! HTTP. Integrity does not depend on the transport: a node checks every
//! package's hash and signature itself.
//!
//! | path | reply |
//! |---|---|
//! | `GET /v1/plugins` | every manifest (JSON array) |
//! | `GET /v1/plugins/NAME/{module,manifest,signature}` | the latest version's file |
//! | `GET /v1/plugins/NAME@HASH/{module,manifest,signature}` | the version whose sha256 starts with HASH |
//! | `GET /v1/plugins/NAME/VERSION/{module,manifest,signature}` | that version's file |
//!
//! The directory is read on every request, so `weft repo publish` into a
//! served directory takes effect at once.
//!
//! It serves through `weft_http` like the node's API: a cap on concurrent
//! connections, a header timeout that also closes idle and half-open
//! connections, size limits with JSON errors.

use crate::store::{self, Select};
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn err(status: StatusCode, msg: String) -> Response {
    (status, Json(serde_json::json!({ "error": msg }))).into_response()
}

async fn list(State(dir): State<Arc<PathBuf>>) -> Response {
    match store::list(&dir) {
        Ok(v) => Json(v).into_response(),
        Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn file(dir: &Path, spec: &str, sel: Option<Select>, file: &str) -> Response {
    let (name, sel) = match (spec.split_once('@'), sel) {
        (Some((n, h)), None) => {
            if h.len() < 8 || h.len() > 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return err(
                    StatusCode::BAD_REQUEST,
                    format!("bad hash {h:?} after @: give the sha256 or its first 8 or more hex digits"),
                );
            }
            (n, Select::Hash(h.to_ascii_lowercase()))
        }
        (None, Some(s)) => (spec, s),
        (None, None) => (spec, Select::Latest),
        (Some(_), Some(_)) => {
            return err(
                StatusCode::BAD_REQUEST,
                "give NAME@HASH or NAME/VERSION, not both".into(),
            )
        }
    };
    let (fname, ctype) = match file {
        "module" => ("module.wasm", "application/wasm"),
        "manifest" => ("manifest.json", "application/json"),
        "signature" => ("signature", "text/plain"),
        _ => {
            return err(
                StatusCode::NOT_FOUND,
                format!("no file {file:?}: use module, manifest or signature"),
            )
        }
    };
    let Some(vdir) = store::find(dir, name, &sel) else {
        return err(StatusCode::NOT_FOUND, format!("no plugin {spec} ({sel:?}) here"));
    };
    match std::fs::read(vdir.join(fname)) {
        Ok(b) => ([(header::CONTENT_TYPE, ctype)], b).into_response(),
        Err(_) => err(StatusCode::NOT_FOUND, format!("{spec}: no {file} file")),
    }
}

async fn latest_file(State(dir): State<Arc<PathBuf>>, UrlPath((spec, f)): UrlPath<(String, String)>) -> Response {
    file(&dir, &spec, None, &f)
}

async fn version_file(
    State(dir): State<Arc<PathBuf>>,
    UrlPath((spec, v, f)): UrlPath<(String, String, String)>,
) -> Response {
    file(&dir, &spec, Some(Select::Version(v)), &f)
}

async fn not_found() -> Response {
    err(
        StatusCode::NOT_FOUND,
        "no such path (see /v1/plugins, /v1/plugins/NAME[@HASH]/{module,manifest,signature})".into(),
    )
}

/// The code server's routes over `dir`.
pub fn router(dir: PathBuf) -> Router {
    Router::new()
        .route("/v1/plugins", get(list))
        .route("/v1/plugins/{spec}/{file}", get(latest_file))
        .route("/v1/plugins/{spec}/{version}/{file}", get(version_file))
        .fallback(not_found)
        .with_state(Arc::new(dir))
}

/// The code server's bounds: requests are bodiless GETs, so bodies and
/// heads are small; connections are closed after 10 s without a request.
pub fn limits() -> weft_http::Limits {
    weft_http::Limits {
        max_body: 4096,
        ..weft_http::Limits::default()
    }
}

/// Serve `dir` on `listener` until `shutdown` completes.
pub async fn serve(
    dir: PathBuf,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let l = limits();
    let app = router(dir).layer(axum::middleware::from_fn_with_state(l, weft_http::limits::enforce));
    weft_http::serve(
        weft_http::Listener::Tcp(listener),
        app,
        l,
        None,
        Default::default(),
        shutdown,
    )
    .await;
    Ok(())
}

/// A code server on its own thread (demos, tests); stopped when dropped.
#[derive(Debug)]
pub struct RepoServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RepoServer {
    /// Serve `dir` on `addr` (e.g. `127.0.0.1:0`) from a new thread.
    /// Usable from inside an async runtime too: the server has its own.
    pub fn spawn(dir: PathBuf, addr: SocketAddr) -> std::io::Result<RepoServer> {
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("weft-repo-serve".into())
            .spawn(move || {
                let stop = async move {
                    let _ = rx.await;
                };
                let res = rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(std_listener)?;
                    serve(dir, listener, stop).await
                });
                if let Err(e) = res {
                    tracing::error!(error = %e, "code server failed");
                }
            })?;
        Ok(RepoServer {
            addr,
            stop: Some(tx),
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL, `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for RepoServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
