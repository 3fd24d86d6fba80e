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

/// Largest module accepted ([`weft_wasm::verify::MAX_MODULE_BYTES`]).
pub const MAX_MODULE: usize = weft_wasm::verify::MAX_MODULE_BYTES;
/// Largest manifest accepted.
pub const MAX_MANIFEST: usize = 64 * 1024;
/// Largest signature file accepted.
pub const MAX_SIGNATURE: usize = 4096;
/// Largest error reply read; only [`EXCERPT`] characters of it are quoted.
pub const MAX_ERROR_REPLY: usize = 4096;
/// Characters of an error reply quoted in the error.
pub const EXCERPT: usize = 200;

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

/// At most [`EXCERPT`] characters of `body`, on one line.
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = one_line.chars().take(EXCERPT).collect();
    if one_line.chars().count() > EXCERPT {
        out.push('…');
    }
    out
}

/// `GET base + path`: `Ok(Some(body))` on 200 (at most `max` bytes, else
/// an error), `Ok(None)` on 404. Other statuses become an error quoting a
/// short excerpt of the reply (at most [`MAX_ERROR_REPLY`] bytes are read).
pub async fn get(base: &BaseUrl, path: &str, max: usize) -> Result<Option<Vec<u8>>, FetchError> {
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
        let limit = if status == StatusCode::OK { max } else { MAX_ERROR_REPLY };
        let declared = resp
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if status == StatusCode::OK && declared.is_some_and(|n| n > max as u64) {
            return Err(e(format!(
                "the reply is {} bytes; at most {max} are accepted",
                declared.unwrap_or(0)
            )));
        }
        let body = match Limited::new(resp.into_body(), limit).collect().await {
            Ok(b) => b.to_bytes(),
            Err(x) if x.is::<http_body_util::LengthLimitError>() && status == StatusCode::OK => {
                return Err(e(format!("the reply is over {max} bytes")))
            }
            // An error reply is quoted in part only: what arrived is enough.
            Err(x) if x.is::<http_body_util::LengthLimitError>() => Default::default(),
            Err(x) => return Err(e(format!("reading the reply: {x}"))),
        };
        drop(sender);
        driver.abort();
        match status {
            StatusCode::OK => Ok(Some(body.to_vec())),
            StatusCode::NOT_FOUND => Ok(None),
            s => Err(e(format!("{s}: {}", excerpt(&body)))),
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

    /// A code server that answers every connection with `head` and then
    /// as much of `fill` as the client takes (it never closes first).
    async fn answering(head: &'static str, fill: usize) -> BaseUrl {
        use tokio::io::AsyncWriteExt;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut req = [0u8; 1024];
                    let _ = tokio::io::AsyncReadExt::read(&mut s, &mut req).await;
                    let _ = s.write_all(head.as_bytes()).await;
                    let chunk = vec![b'x'; 64 << 10];
                    let mut left = fill;
                    while left > 0 {
                        let n = left.min(chunk.len());
                        if s.write_all(&chunk[..n]).await.is_err() {
                            return;
                        }
                        left -= n;
                    }
                });
            }
        });
        BaseUrl::parse(&url).unwrap()
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// A hostile code server's error reply of 64 MiB is read only up to
    /// MAX_ERROR_REPLY and quoted in EXCERPT characters, on one line.
    #[test]
    fn a_huge_error_reply_is_read_in_part_and_quoted_short() {
        let err = block_on(async {
            let b = answering(
                "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 67108864\r\n\r\n",
                64 << 20,
            )
            .await;
            get(&b, "/v1/plugins/x/manifest", 1 << 20).await.unwrap_err()
        });
        let m = err.to_string();
        assert!(m.contains("500"), "{m}");
        assert!(
            m.chars().count() < EXCERPT + 200,
            "{} characters: {m}",
            m.chars().count()
        );
        assert!(!m.contains('\n'), "{m}");
    }

    /// A 200 reply declared or found over the caller's bound is refused,
    /// not buffered.
    #[test]
    fn an_oversized_module_is_refused() {
        let (declared, chunked) = block_on(async {
            let b = answering("HTTP/1.1 200 OK\r\ncontent-length: 67108864\r\n\r\n", 64 << 20).await;
            let declared = get(&b, "/m", 1 << 20).await.unwrap_err();
            let b = answering("HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n", 4 << 20).await;
            let chunked = get(&b, "/m", 1 << 20).await.unwrap_err();
            (declared.to_string(), chunked.to_string())
        });
        assert!(declared.contains("at most 1048576"), "{declared}");
        assert!(chunked.contains("over 1048576 bytes"), "{chunked}");
    }
}
