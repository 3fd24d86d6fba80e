//! A small HTTP/1 client for the management API over its Unix socket or
//! TCP (one connection per request: the CLI makes one or two calls per
//! run), with the caller's credentials when it has some.

use crate::auth::request;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use weft_repo::SecretKey;

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn handshake<S>(stream: S) -> Result<(Sender, tokio::task::JoinHandle<()>), ClientError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "API connection ended with an error");
        }
    });
    Ok((sender, driver))
}

/// Error returned by [`Client`] calls.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answers on the socket.
    #[error(
        "cannot reach a node at {path}: {why} (is `weft node run` running? select a node with --node or WEFT_SOCKET)"
    )]
    Connect {
        /// The socket or address.
        path: PathBuf,
        /// Why (said in the message, not chained: it would print twice).
        why: std::io::Error,
    },
    /// The process on the socket is not one this user should trust.
    #[error("{0}")]
    Untrusted(#[from] weft_http::unix::SocketError),
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

/// Where a node's API is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// Its Unix socket.
    Unix(PathBuf),
    /// `http://HOST:PORT` (the `[api] tcp` listener).
    Tcp(String),
}

impl Endpoint {
    /// `http://HOST:PORT[/]` is TCP; anything else is a socket path.
    pub fn parse(s: &str) -> Endpoint {
        match s.strip_prefix("http://") {
            Some(rest) => Endpoint::Tcp(rest.trim_end_matches('/').to_string()),
            None => Endpoint::Unix(PathBuf::from(s)),
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "http://{a}"),
        }
    }
}

/// How the client proves who it is (`docs/security.md`).
#[derive(Clone)]
pub enum Credentials {
    /// A bearer token.
    Token(String),
    /// Requests signed with this key.
    Key(Arc<SecretKey>),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Token(_) => f.write_str("Token(…)"),
            Credentials::Key(k) => write!(f, "Key({})", k.public().id()),
        }
    }
}

/// Largest reply read from a node (reports of big tables are the largest).
pub const MAX_REPLY: usize = 64 << 20;

/// A client of one node's API.
#[derive(Clone, Debug)]
pub struct Client {
    endpoint: Endpoint,
    credentials: Option<Credentials>,
}

impl Client {
    /// A client for the node serving on Unix socket `socket`, as the
    /// calling user.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Client {
            endpoint: Endpoint::Unix(socket.into()),
            credentials: None,
        }
    }

    /// A client for `endpoint` proving who it is with `credentials`.
    pub fn with(endpoint: Endpoint, credentials: Option<Credentials>) -> Self {
        Client { endpoint, credentials }
    }

    /// Where it talks to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Send a request; return the body of a 2xx reply, or the node's error.
    /// On a Unix socket the serving process must be one this user trusts
    /// (`weft_http::unix::check_server`): root, the user itself, or the
    /// owner of the socket's private directory.
    pub async fn raw(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<Bytes, ClientError> {
        let connect = |why| ClientError::Connect {
            path: PathBuf::from(self.endpoint.to_string()),
            why,
        };
        let (mut sender, driver) = match &self.endpoint {
            Endpoint::Unix(p) => {
                let stream = tokio::net::UnixStream::connect(p).await.map_err(connect)?;
                weft_http::unix::check_server(&stream, p)?;
                handshake(stream).await?
            }
            Endpoint::Tcp(a) => {
                let stream = tokio::net::TcpStream::connect(a.as_str()).await.map_err(connect)?;
                handshake(stream).await?
            }
        };
        let body = body.unwrap_or_default();
        let mut req = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(hyper::header::HOST, "weft");
        if !body.is_empty() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        match &self.credentials {
            Some(Credentials::Token(t)) => req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}")),
            Some(Credentials::Key(k)) => {
                let ts = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let auth = request::sign(k, method.as_str(), path, &body, ts, &request::nonce());
                req = req.header(hyper::header::AUTHORIZATION, auth);
            }
            None => {}
        }
        let req = req.body(Full::new(Bytes::from(body)))?;
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let bytes = Limited::new(resp.into_body(), MAX_REPLY)
            .collect()
            .await
            .map_err(|e| ClientError::Decode(format!("reading the reply: {e}")))?
            .to_bytes();
        drop(sender);
        driver.abort();
        if status.is_success() {
            return Ok(bytes);
        }
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| format!("{status}: {}", weft_repo::fetch::excerpt(&bytes)));
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
