//! Outgoing requests of a server module (`wasi:http/outgoing-handler`).
//!
//! **What is allowed:** plain `http` to an authority that is an IP literal
//! and port equal to one of the configuration's `origin=` entries
//! ([`crate::config`]) — nothing else: no names (no DNS on the node), no
//! TLS, never an address of the node itself or a loopback address unless
//! the host was told otherwise ([`Egress::deny`]). A module may thus fetch
//! from its provider's origin but cannot make the node reach its own API,
//! the hosts behind it or anything its SETUP did not name (server-side
//! request forgery, `docs/security.md`). A refused request fails inside
//! the module with `HTTP-request-denied` and counts as `egress_denied`.
//!
//! Each allowed request opens one HTTP/1 connection (no pool: a cache
//! module fetches misses only), bounded by a connect and a first-byte
//! timeout; the request as a whole is bounded by the incoming request's
//! timeout ([`crate::Bounds::request_timeout`]).

use bytes::Bytes;
use http_body_util::BodyExt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::stats::ServerStats;

/// Longest wait for a connection to an origin.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for an origin's response head.
pub const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(15);

/// The egress policy of one server module (its [`WasiHttpHooks`]).
#[derive(Clone)]
pub struct Egress {
    /// The configuration's origins.
    pub allowed: Arc<[SocketAddr]>,
    /// Addresses never reached whatever the configuration says (the node's
    /// own); loopback is refused too when `deny_loopback`.
    pub deny: Arc<[IpAddr]>,
    /// Refuse loopback destinations.
    pub deny_loopback: bool,
    pub(crate) stats: Arc<ServerStats>,
}

impl std::fmt::Debug for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Egress").field("allowed", &self.allowed).finish()
    }
}

impl Egress {
    /// Where a request for `uri` may go, if anywhere.
    pub fn admit(&self, uri: &http::Uri) -> Option<SocketAddr> {
        if uri.scheme() != Some(&http::uri::Scheme::HTTP) {
            return None;
        }
        let a = uri.authority()?;
        let host = a.host().trim_start_matches('[').trim_end_matches(']');
        let ip: IpAddr = host.parse().ok()?;
        let to = SocketAddr::new(ip, a.port_u16().unwrap_or(80));
        let forbidden = self.deny.contains(&ip) || (self.deny_loopback && ip.is_loopback()) || ip.is_unspecified();
        (!forbidden && self.allowed.contains(&to)).then_some(to)
    }
}

type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

impl WasiHttpHooks for Egress {
    fn is_supported_scheme(&mut self, scheme: &http::uri::Scheme) -> bool {
        *scheme == http::uri::Scheme::HTTP
    }

    fn default_scheme(&mut self) -> Option<http::uri::Scheme> {
        Some(http::uri::Scheme::HTTP)
    }

    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), Error>> + Send> {
        let to = self.admit(request.uri());
        let stats = self.stats.clone();
        Box::new(async move {
            let Some(to) = to else {
                stats.egress_denied.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(uri = %request.uri(), "server module: outgoing request denied");
                return Err(Error::HttpRequestDenied);
            };
            stats.egress_requests.fetch_add(1, Ordering::Relaxed);
            let connect = options
                .and_then(|o| o.connect_timeout)
                .unwrap_or(CONNECT_TIMEOUT)
                .min(CONNECT_TIMEOUT);
            let first_byte = options
                .and_then(|o| o.first_byte_timeout)
                .unwrap_or(FIRST_BYTE_TIMEOUT)
                .min(FIRST_BYTE_TIMEOUT);
            let stream = tokio::time::timeout(connect, tokio::net::TcpStream::connect(to))
                .await
                .map_err(|_| Error::ConnectionTimeout)?
                .map_err(Error::Connect)?;
            let _ = stream.set_nodelay(true);
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            // The request line carries the path only (the authority goes in Host).
            let pq = request.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
            *request.uri_mut() = http::Uri::builder()
                .path_and_query(pq)
                .build()
                .map_err(|_| Error::HttpRequestUriInvalid)?;
            let res = tokio::time::timeout(first_byte, sender.send_request(request))
                .await
                .map_err(|_| Error::ConnectionReadTimeout)??;
            let res = res.map(|b| b.map_err(Error::from).boxed_unsync());
            let io: IoFuture = Box::new(async { Ok(()) });
            Ok((res, io))
        })
    }
}

/// Bytes type the bodies carry (re-exported for the server).
pub type Chunk = Bytes;

#[cfg(test)]
mod tests {
    use super::*;

    fn egress(allowed: &[&str], deny: &[&str], deny_loopback: bool) -> Egress {
        Egress {
            allowed: allowed.iter().map(|a| a.parse().unwrap()).collect(),
            deny: deny.iter().map(|a| a.parse().unwrap()).collect(),
            deny_loopback,
            stats: Arc::default(),
        }
    }

    #[test]
    fn only_the_named_origins() {
        let e = egress(
            &["10.0.3.2:8000", "[2001:db8::2]:80", "10.0.1.1:7070"],
            &["10.0.1.1"],
            true,
        );
        let ok = |u: &str| e.admit(&u.parse().unwrap());
        assert_eq!(ok("http://10.0.3.2:8000/a?b"), Some("10.0.3.2:8000".parse().unwrap()));
        assert_eq!(ok("http://[2001:db8::2]/x"), Some("[2001:db8::2]:80".parse().unwrap()));
        assert_eq!(ok("http://10.0.3.2:8001/"), None, "another port");
        assert_eq!(ok("https://10.0.3.2:8000/"), None, "TLS");
        assert_eq!(ok("http://origin.example:8000/"), None, "a name");
        assert_eq!(ok("http://10.0.1.1:7070/v1/node"), None, "the node's own address");
        let l = egress(&["127.0.0.1:80"], &[], true);
        assert_eq!(l.admit(&"http://127.0.0.1/".parse().unwrap()), None, "loopback");
        let l = egress(&["127.0.0.1:80"], &[], false);
        assert!(l.admit(&"http://127.0.0.1/".parse().unwrap()).is_some());
    }
}
