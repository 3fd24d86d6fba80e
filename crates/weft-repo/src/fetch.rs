//! A small HTTP/1 GET client for code servers (`http://HOST:PORT[/PREFIX]`;
//! one connection per request, a timeout and a size limit on every reply).
//! Plain HTTP is enough: a package is trusted for its signature, not for
//! where it came from.

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::time::Duration;

/// Longest a request may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Largest reply accepted (a module may be up to
/// [`weft_wasm::verify::MAX_MODULE_BYTES`]).
pub const MAX_REPLY: usize = weft_wasm::verify::MAX_MODULE_BYTES + 4096;

/// Error of a fetch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{url}: {message}")]
pub struct FetchError {
    /// The URL.
    pub url: String,
    /// What went wrong.
    pub message: String,
}

/// A parsed `http://` base URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseUrl {
    /// `host:port`.
    pub authority: String,
    /// Path prefix without a trailing slash (may be empty).
    pub prefix: String,
}

impl BaseUrl {
    /// Parse `http://HOST[:PORT][/PREFIX]`.
    pub fn parse(url: &str) -> Result<BaseUrl, String> {
        let rest = url.trim().strip_prefix("http://").ok_or_else(|| {
            format!("bad repository URL {url:?}: expected http://HOST:PORT (packages are signed; TLS is not needed)")
        })?;
        let (auth, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if auth.is_empty() || auth.contains('@') {
            return Err(format!("bad repository URL {url:?}: no host"));
        }
        let authority = if auth.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
            auth.to_string()
        } else {
            format!("{auth}:80")
        };
        Ok(BaseUrl {
            authority,
            prefix: path.trim_end_matches('/').to_string(),
        })
    }

    /// `http://AUTHORITY/PREFIX`.
    pub fn to_url(&self) -> String {
        format!("http://{}{}", self.authority, self.prefix)
    }
}

/// `GET base + path`: `Ok(Some(body))` on 200, `Ok(None)` on 404.
pub async fn get(base: &BaseUrl, path: &str) -> Result<Option<Vec<u8>>, FetchError> {
    let url = format!("{}{path}", base.to_url());
    let e = |m: String| FetchError {
        url: url.clone(),
        message: m,
    };
    let go = async {
        let stream = tokio::net::TcpStream::connect(&base.authority)
            .await
            .map_err(|x| e(format!("cannot connect: {x}")))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|x| e(x.to_string()))?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = Request::get(format!("{}{path}", base.prefix))
            .header(hyper::header::HOST, base.authority.as_str())
            .body(Empty::<Bytes>::new())
            .map_err(|x| e(x.to_string()))?;
        let resp = sender.send_request(req).await.map_err(|x| e(x.to_string()))?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_REPLY)
            .collect()
            .await
            .map_err(|x| e(format!("reading the reply: {x}")))?
            .to_bytes();
        drop(sender);
        driver.abort();
        match status {
            StatusCode::OK => Ok(Some(body.to_vec())),
            StatusCode::NOT_FOUND => Ok(None),
            s => Err(e(format!("{s}: {}", String::from_utf8_lossy(&body).trim()))),
        }
    };
    tokio::time::timeout(TIMEOUT, go)
        .await
        .map_err(|_| e(format!("no reply within {} s", TIMEOUT.as_secs())))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        let b = BaseUrl::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!((b.authority.as_str(), b.prefix.as_str()), ("127.0.0.1:8080", ""));
        let b = BaseUrl::parse("http://repo.example/weft").unwrap();
        assert_eq!((b.authority.as_str(), b.prefix.as_str()), ("repo.example:80", "/weft"));
        assert!(BaseUrl::parse("https://x").is_err());
        assert!(BaseUrl::parse("http://").is_err());
    }
}
