//! Per-connection and per-request bounds, and the middleware that enforces
//! the per-request ones with JSON error bodies.

use axum::body::Body;
#[cfg(test)]
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Limited};
use std::time::Duration;

/// What one listener allows. The defaults suit a management API whose
/// clients are a CLI and scripts: one small request per connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Concurrent connections of unprivileged peers on one listener.
    /// 64: far more than operators' scripts open, far fewer than a
    /// process's descriptors (1,024 by default).
    pub max_connections: usize,
    /// Time to receive a request's head; also how long an idle keep-alive
    /// connection is kept (hyper starts the timer when it waits for a head).
    pub header_timeout: Duration,
    /// Time to receive a request's body once its head arrived.
    pub body_timeout: Duration,
    /// Longest path and query, in bytes (414 above).
    pub max_uri: usize,
    /// Largest request head (request line and header fields), in bytes
    /// (431 above). hyper itself closes heads over 4 × this without a body.
    pub max_head: usize,
    /// Largest request body, in bytes (413 above).
    pub max_body: usize,
    /// Longest life of one connection, whatever it does.
    pub max_lifetime: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 64,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_uri: 4096,
            max_head: 16 * 1024,
            max_body: 1024 * 1024,
            max_lifetime: Duration::from_secs(600),
        }
    }
}

/// A JSON error reply: `{"error": message}` with `status`.
pub fn json_error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = serde_json::json!({ "error": message.into() });
    (status, axum::Json(body)).into_response()
}

fn head_size(req: &Request) -> usize {
    // The request line as sent (origin form, or absolute form with scheme
    // and authority), counted without formatting it.
    let u = req.uri();
    let target = u.path_and_query().map_or(1, |p| p.as_str().len())
        + u.scheme_str().map_or(0, |s| s.len() + 3)
        + u.authority().map_or(0, |a| a.as_str().len());
    let line = req.method().as_str().len() + target + 12;
    line + req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum::<usize>()
}

/// Axum middleware (`axum::middleware::from_fn_with_state(limits,
/// enforce)`): [`admit`], then the handler.
pub async fn enforce(State(l): State<Limits>, req: Request, next: Next) -> Response {
    match admit(&l, req).await {
        Ok(req) => next.run(req).await,
        Err(refused) => refused,
    }
}

/// Refuse oversized URIs, heads and bodies with JSON errors, and read the
/// body within [`Limits::body_timeout`]: the request comes back with its
/// body in memory, or the answer to send instead. What [`enforce`] does,
/// for a handler that takes every request itself (a server module's).
pub async fn admit(l: &Limits, req: Request) -> Result<Request, Response> {
    let uri = req.uri().path_and_query().map(|p| p.as_str().len()).unwrap_or(0);
    if uri > l.max_uri {
        return Err(json_error(
            StatusCode::URI_TOO_LONG,
            format!("the request URI is {uri} bytes; at most {} are accepted", l.max_uri),
        ));
    }
    let head = head_size(&req);
    if head > l.max_head {
        return Err(json_error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("the request head is {head} bytes; at most {} are accepted", l.max_head),
        ));
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > l.max_body as u64) {
        return Err(too_large(l.max_body));
    }
    // No body (a GET without Content-Length or Transfer-Encoding): nothing
    // to read, no timer to arm.
    if axum::body::HttpBody::is_end_stream(req.body()) {
        return Ok(req);
    }
    let (parts, body) = req.into_parts();
    let bytes = match tokio::time::timeout(l.body_timeout, Limited::new(body, l.max_body).collect()).await {
        Err(_) => {
            return Err(json_error(
                StatusCode::REQUEST_TIMEOUT,
                format!("the request body did not arrive within {} s", l.body_timeout.as_secs()),
            ))
        }
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large(l.max_body)),
        Ok(Err(e)) => {
            return Err(json_error(
                StatusCode::BAD_REQUEST,
                format!("reading the request body: {e}"),
            ))
        }
        Ok(Ok(c)) => c.to_bytes(),
    };
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

fn too_large(max: usize) -> Response {
    json_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body is over {max} bytes"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;
    use axum::Router;
    use tower::ServiceExt;

    fn app(l: Limits) -> Router {
        Router::new()
            .route("/echo", post(|b: Bytes| async move { b }))
            .layer(axum::middleware::from_fn_with_state(l, enforce))
    }

    async fn call(app: Router, req: axum::http::Request<Body>) -> (StatusCode, String) {
        let r = app.oneshot(req).await.unwrap();
        let s = r.status();
        let b = r.into_body().collect().await.unwrap().to_bytes();
        (s, String::from_utf8_lossy(&b).into_owned())
    }

    fn req(uri: &str, body: &'static [u8]) -> axum::http::Request<Body> {
        axum::http::Request::post(uri).body(Body::from(body)).unwrap()
    }

    #[tokio::test]
    async fn each_bound_refuses_with_a_json_body() {
        let l = Limits {
            max_uri: 32,
            max_head: 256,
            max_body: 8,
            ..Limits::default()
        };
        let (s, b) = call(app(l), req("/echo", b"12345678")).await;
        assert_eq!((s, b.as_str()), (StatusCode::OK, "12345678"));

        let (s, b) = call(app(l), req("/echo", b"123456789")).await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(b.contains("\"error\"") && b.contains("over 8 bytes"), "{b}");

        let long = format!("/echo?{}", "a".repeat(40));
        let (s, b) = call(app(l), req(&long, b"")).await;
        assert_eq!(s, StatusCode::URI_TOO_LONG);
        assert!(b.contains("\"error\""), "{b}");

        let mut r = req("/echo", b"");
        r.headers_mut().insert("x-big", "b".repeat(300).parse().unwrap());
        let (s, b) = call(app(l), r).await;
        assert_eq!(s, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert!(b.contains("\"error\""), "{b}");

        // A declared length over the cap is refused before reading.
        let mut r = req("/echo", b"");
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, "1000000".parse().unwrap());
        assert_eq!(call(app(l), r).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_never_finishes_times_out() {
        let l = Limits::default();
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<axum::body::Bytes, std::io::Error>>(1);
        tx.send(Ok(Bytes::from_static(b"part"))).await.unwrap();
        let body = Body::from_stream(tokio_stream_from(rx));
        let r = axum::http::Request::post("/echo").body(body).unwrap();
        let (s, b) = call(app(l), r).await;
        assert_eq!(s, StatusCode::REQUEST_TIMEOUT, "{b}");
        drop(tx);
    }

    fn tokio_stream_from(
        mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    ) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
