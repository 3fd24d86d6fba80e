//! The API's gate: every request passes here after the size limits
//! (`weft_http::limits::enforce`) and before its handler.
//!
//! 1. **Browsers are refused.** A request with `Origin` or `Sec-Fetch-*`
//!    headers came from a web page (a page on any site can POST to
//!    `127.0.0.1`); a body that is not `application/json` is refused too, so
//!    an HTML form's `text/plain` or urlencoded POST never reaches a handler.
//! 2. **The caller is identified.** An `Authorization` header (bearer token
//!    or signed request) names a principal on any listener; without one, a
//!    Unix-socket peer is its user id (root and the node's own user are the
//!    operator; a uid the policy lists is that principal; any other uid got
//!    in through the socket's group, which is the operators' group); a TCP
//!    peer without one gets `401`.
//! 3. **The noun's right is checked** (`GET` needs `read`; a change needs
//!    the right of the noun its path names); handlers check the scope —
//!    prefixes, classes, owners — with the node's state in hand.
//! 4. **Every change is written to the audit log**: one line per request
//!    that is not a `GET`, target `weft::audit`, with who, from where, what
//!    and the status — refusals included.
//!
//! Handlers find the [`Caller`] in the request's extensions. A router used
//! without a listener (in-process tests, the emulator) has no peer: its
//! caller is the operator.

use super::request::{self, Nonces, SCHEME};
use super::{Policy, Principal, Right};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use std::sync::Arc;
use weft_http::{json_error, Peer};

/// Who made a request, as handlers see it.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The principal.
    pub principal: Arc<Principal>,
    /// How it was recognised and from where (for logs).
    pub via: String,
}

impl Caller {
    /// The operator, for calls made without a listener.
    pub fn in_process() -> Caller {
        Caller {
            principal: Arc::new(Principal::operator("in-process")),
            via: "in-process".into(),
        }
    }
}

/// What [`guard`] needs: the policy, the node's own uid, the nonces of
/// signed requests.
#[derive(Clone, Debug)]
pub struct Auth {
    policy: Arc<Policy>,
    node_uid: u32,
    nonces: Arc<Nonces>,
}

impl Auth {
    /// A gate for `policy` on a node running as `node_uid`.
    pub fn new(policy: Policy, node_uid: u32) -> Auth {
        Auth {
            policy: Arc::new(policy),
            node_uid,
            nonces: Arc::default(),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The policy, shared (the signaling daemon and `/v1/policy` read the
    /// same one).
    pub fn shared_policy(&self) -> Arc<Policy> {
        self.policy.clone()
    }

    fn unauthorized(&self, message: String) -> Response {
        let mut r = json_error(StatusCode::UNAUTHORIZED, message);
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer, Weft-Ed25519"),
        );
        r
    }

    /// The caller of a request, or why it is refused (a `401`).
    fn identify(&self, peer: Option<&Peer>, parts: &axum::http::request::Parts, body: &[u8]) -> Result<Caller, String> {
        let from = peer.map(ToString::to_string).unwrap_or_else(|| "in-process".into());
        if let Some(v) = parts.headers.get(header::AUTHORIZATION) {
            let v = v
                .to_str()
                .map_err(|_| "the Authorization header is not text".to_string())?;
            let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
            let principal = if scheme.eq_ignore_ascii_case("bearer") {
                self.policy
                    .by_token(rest.trim())
                    .ok_or_else(|| "unknown bearer token".to_string())?
            } else if scheme == SCHEME {
                let s = request::parse_signed(rest)?;
                let p = self
                    .policy
                    .by_key(&s.key)
                    .ok_or_else(|| format!("key {} is not a principal of this node", s.key.id()))?;
                let pq = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
                let msg = request::signing_message(parts.method.as_str(), pq, s.ts, &s.nonce, body);
                self.nonces
                    .check(&s, &msg, unix_now())
                    .map_err(|e| format!("signed request refused: {e}"))?;
                p
            } else {
                return Err(format!(
                    "unknown authorization scheme {scheme:?}: use Bearer or {SCHEME}"
                ));
            };
            let via = format!("{} {}", scheme.to_ascii_lowercase(), from);
            return Ok(Caller { principal, via });
        }
        match peer {
            None => Ok(Caller::in_process()),
            Some(Peer::Unix { uid, .. }) => {
                let principal = if *uid == 0 || *uid == self.node_uid {
                    Arc::new(Principal::operator(format!("uid {uid}")))
                } else if let Some(p) = self.policy.by_uid(*uid) {
                    p
                } else {
                    Arc::new(Principal::operator(format!("uid {uid} (socket group)")))
                };
                Ok(Caller { principal, via: from })
            }
            Some(Peer::Tcp(_)) => Err(
                "authentication required: send Authorization: Bearer TOKEN or a signed request (docs/security.md)"
                    .into(),
            ),
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The right a request's method and path need before its handler runs.
fn noun_right(method: &Method, path: &str) -> &'static [Right] {
    if method == Method::GET || method == Method::HEAD {
        return &[Right::Read];
    }
    let under = |p: &str| path == p || path.starts_with(&format!("{p}/"));
    if under("/v1/filters") {
        &[Right::Filter]
    } else if under("/v1/instances") {
        // DataRouter tables are control requests to a datarouter instance;
        // the handler tells which it is.
        &[Right::Instance, Right::Droute]
    } else if under("/v1/classes") {
        &[Right::Class]
    } else if under("/v1/routes") {
        &[Right::Route]
    } else if under("/v1/plugins") {
        &[Right::Plugin]
    } else if under("/v1/pbr") {
        &[Right::Pbr]
    } else if under("/v1/domains") {
        &[Right::Domain]
    } else {
        &[Right::All]
    }
}

fn from_browser(h: &HeaderMap) -> bool {
    h.contains_key(header::ORIGIN) || h.keys().any(|k| k.as_str().starts_with("sec-fetch-"))
}

fn is_json(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// A short excerpt of a body for the audit log (the log escapes it: a
/// field's text is written with its quotes and control characters escaped).
fn excerpt(b: &[u8]) -> String {
    const MAX: usize = 200;
    let mut e = String::from_utf8_lossy(&b[..b.len().min(MAX)]).into_owned();
    if b.len() > MAX {
        e.push('…');
    }
    e
}

/// The middleware (see the module documentation).
pub async fn guard(State(auth): State<Auth>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    // `enforce` has read the body into memory already.
    let body = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    let (method, path) = (parts.method.clone(), parts.uri.path().to_string());
    let changes = method != Method::GET && method != Method::HEAD;
    let peer = parts.extensions.get::<Peer>().cloned();
    let audit = |who: &str, via: &str, status: StatusCode| {
        if changes {
            if status.is_success() {
                tracing::info!(target: "weft::audit", who, via, %method, path, status = status.as_u16(), body = excerpt(&body), "change");
            } else {
                tracing::warn!(target: "weft::audit", who, via, %method, path, status = status.as_u16(), body = excerpt(&body), "refused");
            }
        }
    };
    let from = peer
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_else(|| "in-process".into());
    if from_browser(&parts.headers) {
        let r = json_error(
            StatusCode::FORBIDDEN,
            "requests from web browsers (Origin or Sec-Fetch headers) are refused: the API is for the weft CLI and scripts",
        );
        audit("?", &from, r.status());
        return r;
    }
    if !body.is_empty() && !is_json(&parts.headers) {
        let r = json_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a request body must be JSON, sent with Content-Type: application/json",
        );
        audit("?", &from, r.status());
        return r;
    }
    let caller = match auth.identify(peer.as_ref(), &parts, &body) {
        Ok(c) => c,
        Err(why) => {
            let r = auth.unauthorized(why);
            audit("?", &from, r.status());
            return r;
        }
    };
    let rights = noun_right(&method, &path);
    if !rights.iter().any(|r| caller.principal.has(*r)) {
        let words = rights.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(" or ");
        let r = refused(&super::Refused {
            missing: words.clone(),
            message: format!(
                "{} may not {method} {path} (missing right: {words})",
                caller.principal.name
            ),
        });
        audit(&caller.principal.name, &caller.via, r.status());
        return r;
    }
    let who = caller.principal.name.clone();
    let via = caller.via.clone();
    parts.extensions.insert(caller);
    let r = next.run(Request::from_parts(parts, Body::from(body.clone()))).await;
    audit(&who, &via, r.status());
    r
}

/// A `403` naming the missing right.
pub fn refused(e: &super::Refused) -> Response {
    (
        StatusCode::FORBIDDEN,
        axum::Json(serde_json::json!({ "error": e.message, "missing": e.missing })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nouns_map_to_rights() {
        assert_eq!(noun_right(&Method::GET, "/v1/filters"), &[Right::Read]);
        assert_eq!(noun_right(&Method::POST, "/v1/filters"), &[Right::Filter]);
        assert_eq!(noun_right(&Method::DELETE, "/v1/filters/3"), &[Right::Filter]);
        assert_eq!(noun_right(&Method::POST, "/v1/filtersX"), &[Right::All]);
        assert_eq!(noun_right(&Method::POST, "/v1/pbr/paths"), &[Right::Pbr]);
        assert_eq!(noun_right(&Method::DELETE, "/v1/routes"), &[Right::Route]);
        assert_eq!(noun_right(&Method::POST, "/v1/domains"), &[Right::Domain]);
        assert_eq!(noun_right(&Method::DELETE, "/v1/domains/alice"), &[Right::Domain]);
    }

    #[test]
    fn excerpts_are_short_and_the_log_escapes_them() {
        assert!(excerpt(&[b'x'; 500]).ends_with('…'));
        assert_eq!(excerpt(&[b'x'; 500]).chars().count(), 201);
        // What the log writes of a field holding a quote and a newline.
        let v = excerpt(b"a\"b\nc");
        assert_eq!(format!("{v:?}"), r#""a\"b\nc""#);
    }
}
