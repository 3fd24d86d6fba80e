//! A small HTTP/1 client for the management API over its Unix socket (one
//! connection per request: the CLI makes one or two calls per run).

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Error returned by [`Client`] calls.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answers on the socket.
    #[error("cannot reach a node at {path}: {source} (is `weft node run` running? select a node with --node or WEFT_SOCKET)")]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP exchange failed.
    #[error("talking to the node: {0}")]
    Http(#[from] hyper::Error),
    /// The request could not be built.
    #[error("building the request: {0}")]
    Request(#[from] hyper::http::Error),
    /// The node refused: its message.
    #[error("{message}")]
    Api {
        /// HTTP status.
        status: StatusCode,
        /// The node's error text.
        message: String,
    },
    /// The reply was not what was expected.
    #[error("unexpected reply from the node: {0}")]
    Decode(String),
}

/// A client of one node's API socket.
#[derive(Clone, Debug)]
pub struct Client {
    socket: PathBuf,
}

impl Client {
    /// A client for the node serving on `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Client { socket: socket.into() }
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Send a request; return the body of a 2xx reply, or the node's error.
    pub async fn raw(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<Bytes, ClientError> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|source| ClientError::Connect {
                path: self.socket.clone(),
                source,
            })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let driver = tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "API connection ended with an error");
            }
        });
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "weft");
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = req.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        drop(sender);
        driver.abort();
        if status.is_success() {
            return Ok(bytes);
        }
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| format!("{status}: {}", String::from_utf8_lossy(&bytes).trim()));
        Err(ClientError::Api { status, message })
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let bytes = self.raw(method, path, body).await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }

    fn encode<B: Serialize>(body: &B) -> Result<Vec<u8>, ClientError> {
        serde_json::to_vec(body).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `GET path` → JSON.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.json(Method::GET, path, None).await
    }

    /// `GET path` → text.
    pub async fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let b = self.raw(Method::GET, path, None).await?;
        String::from_utf8(b.to_vec()).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `POST path` with a JSON body → JSON.
    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, ClientError> {
        self.json(Method::POST, path, Some(Self::encode(body)?)).await
    }

    /// `DELETE path` (with an optional JSON body) → JSON.
    pub async fn delete<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let b = body.map(Self::encode).transpose()?;
        self.json(Method::DELETE, path, b).await
    }
}
