//! ActiveCDN (NetServ §6): a caching HTTP reverse proxy that a content
//! provider deploys onto the Weft node nearest its users with one SETUP.
//! A WebAssembly component of the WASI HTTP proxy world
//! (`docs/server-modules.md`).
//!
//! Configuration (the SETUP's CONFIG, read from `WEFT_CONFIG`; `key=value`
//! separated by `;`):
//!
//! | key | meaning |
//! |---|---|
//! | `origin=IP:PORT` | the provider's origin server (required; the node lets the module reach it and nothing else) |
//! | `header=NAME: VALUE` | the provider's hook: a header added to every response |
//! | `watermark=TEXT` | the provider's hook: `TEXT` and a newline appended to every `text/*` body |
//! | `max_bytes=N` | cache size, bytes of bodies (default 16 MiB; oldest first out) |
//! | `max_object=N` | largest body cached (default 1 MiB) |
//!
//! HTTP caching follows RFC 9111 through `http-cache-semantics` (a shared
//! cache): freshness from `max-age`/`s-maxage`/`Expires`, `no-store` and
//! `private` never stored, `Vary` keeps one variant per set of varying
//! request headers, a stale entry with a validator is revalidated
//! (`If-None-Match` from its `ETag`, `If-Modified-Since`) and a `304`
//! refreshes it. Only `GET` and `HEAD` are served from the cache; other
//! methods pass through. Every response says what happened in
//! `x-cache: HIT | MISS | REVALIDATED`.

use http_cache_semantics::{AfterResponse, BeforeRequest, CachePolicy};
use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::OnceLock;
use std::time::SystemTime;
use wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse, ResponseOutparam, Scheme,
};

pub mod config;
use config::Config;

struct Cdn;

/// One cached response.
struct Entry {
    key: String,
    policy: CachePolicy,
    status: u16,
    body: Vec<u8>,
    /// Insertion order (eviction: oldest first).
    seq: u64,
    /// The cache crate's last `Fresh` answer from this entry.
    memo: Option<Memo>,
}

/// The answer `http-cache-semantics` gave (`BeforeRequest::Fresh`) to one
/// request, kept to answer the same request again without asking it.
///
/// Reused only when the crate's answer cannot differ: the request is the
/// same (method, target — the entry's key —, and every header field, byte for byte, in order)
/// and has no `Cache-Control` or `Pragma` (so freshness is all the crate
/// checks of it), no entry was added, removed or revalidated since
/// (`Cache::generation`: which variant the crate picks depends on the
/// entries' order), and the time is in the same second of the entry's age
/// (`CachePolicy::age`) and of the clock. The crate's answer depends on
/// the time only through the age in whole seconds (its `Age` header, and
/// freshness: a whole-second lifetime that exceeded the age at the start
/// of that second still does) and the `Date` (whole seconds); a stored
/// answer older than a day is never reused (the crate may add a `Warning`
/// then). Every answer is thus still the crate's; under load, most hits
/// skip its header parsing and copies.
struct Memo {
    generation: u64,
    method: http::Method,
    request: Vec<(String, Vec<u8>)>,
    age_secs: u64,
    unix_secs: u64,
    /// What the crate answered, as sent ([`fields`]).
    fields: Vec<(String, Vec<u8>)>,
    /// The crate's header fields (for the watermark's `Content-Type`).
    headers: http::HeaderMap,
}

#[derive(Default)]
struct Cache {
    entries: Vec<Entry>,
    bytes: usize,
    seq: u64,
    /// Bumped by every change to the entries (see [`Memo`]).
    generation: u64,
}

impl Cache {
    fn insert(&mut self, e: Entry, max_bytes: usize) {
        // Oldest out until the new body fits.
        while self.bytes + e.body.len() > max_bytes && !self.entries.is_empty() {
            let oldest = (0..self.entries.len())
                .min_by_key(|&i| self.entries[i].seq)
                .unwrap_or(0);
            let o = self.entries.swap_remove(oldest);
            self.bytes -= o.body.len();
        }
        self.bytes += e.body.len();
        self.entries.push(e);
        self.generation += 1;
    }

    fn remove(&mut self, i: usize) {
        self.generation += 1;
        let o = self.entries.swap_remove(i);
        self.bytes -= o.body.len();
    }
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

/// Headers that never cross a proxy (hop by hop), or that the host sets.
fn hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "http2-settings"
            | "content-length"
    )
}

fn method_of(m: &Method) -> http::Method {
    match m {
        Method::Get => http::Method::GET,
        Method::Head => http::Method::HEAD,
        Method::Post => http::Method::POST,
        Method::Put => http::Method::PUT,
        Method::Delete => http::Method::DELETE,
        Method::Options => http::Method::OPTIONS,
        Method::Patch => http::Method::PATCH,
        Method::Connect => http::Method::CONNECT,
        Method::Trace => http::Method::TRACE,
        Method::Other(s) => http::Method::from_bytes(s.as_bytes()).unwrap_or(http::Method::GET),
    }
}

fn wasi_method(m: &http::Method) -> Method {
    match *m {
        http::Method::GET => Method::Get,
        http::Method::HEAD => Method::Head,
        http::Method::POST => Method::Post,
        http::Method::PUT => Method::Put,
        http::Method::DELETE => Method::Delete,
        http::Method::OPTIONS => Method::Options,
        http::Method::PATCH => Method::Patch,
        _ => Method::Other(m.as_str().to_string()),
    }
}

fn to_header_map(f: &Fields) -> http::HeaderMap {
    header_map(&f.entries())
}

fn header_map(entries: &[(String, Vec<u8>)]) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    for (k, v) in entries {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_bytes(v),
        ) {
            h.append(k, v);
        }
    }
    h
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Largest request head (names and values) whose answer is kept: a memo
/// holds a copy of the request per entry, and a client must not be able to
/// grow every entry by its 16 KiB head limit. Browsers send well under 2 KiB.
const MEMO_MAX_REQUEST: usize = 4096;

/// Whether the crate's answer to a request with these header fields may be
/// kept ([`Memo`]).
fn memoable(request: &[(String, Vec<u8>)]) -> bool {
    let size: usize = request.iter().map(|(k, v)| k.len() + v.len()).sum();
    size <= MEMO_MAX_REQUEST
        && !request
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("cache-control") || k.eq_ignore_ascii_case("pragma"))
}

/// Answer from an entry's [`Memo`] when it holds for this request now;
/// `out` comes back otherwise.
fn from_memo(
    cfg: &Config,
    method: &http::Method,
    target: &str,
    request: &[(String, Vec<u8>)],
    now: SystemTime,
    out: ResponseOutparam,
) -> Result<(), ResponseOutparam> {
    CACHE.with(|c| {
        let c = c.borrow();
        let hit = c.entries.iter().filter(|e| e.key == target).find_map(|e| {
            let m = e.memo.as_ref()?;
            let holds = m.generation == c.generation
                && m.method == *method
                && m.unix_secs == unix_secs(now)
                && m.request == request
                && m.age_secs == e.policy.age(now).as_secs();
            holds.then_some((e, m))
        });
        let Some((e, m)) = hit else { return Err(out) };
        let head = *method == http::Method::HEAD;
        send(
            out,
            e.status,
            &m.fields,
            &with_watermark(Some(cfg), &m.headers, &e.body),
            head,
        );
        Ok(())
    })
}

fn to_fields(h: &http::HeaderMap) -> Fields {
    let list: Vec<(String, Vec<u8>)> = h
        .iter()
        .filter(|(k, _)| !hop_by_hop(k.as_str()))
        .map(|(k, v)| (k.as_str().to_string(), v.as_bytes().to_vec()))
        .collect();
    Fields::from_list(&list).unwrap_or_else(|_| Fields::new())
}

/// The origin's answer.
struct Fetched {
    status: u16,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

fn fetch(cfg: &Config, parts: &http::request::Parts, body: Vec<u8>) -> Result<Fetched, String> {
    let req = OutgoingRequest::new(to_fields(&parts.headers));
    let _ = req.set_method(&wasi_method(&parts.method));
    let _ = req.set_scheme(Some(&Scheme::Http));
    let _ = req.set_authority(Some(&cfg.origin));
    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let _ = req.set_path_with_query(Some(pq));
    let ob = req.body().map_err(|_| "request body")?;
    let f = wasi::http::outgoing_handler::handle(req, None).map_err(|e| format!("origin refused: {e:?}"))?;
    {
        let s = ob.write().map_err(|_| "request stream")?;
        for c in body.chunks(4096) {
            s.blocking_write_and_flush(c).map_err(|e| format!("{e:?}"))?;
        }
    }
    OutgoingBody::finish(ob, None).map_err(|e| format!("{e:?}"))?;
    f.subscribe().block();
    let resp = f
        .get()
        .ok_or("no response")?
        .map_err(|_| "response taken")?
        .map_err(|e| format!("origin: {e:?}"))?;
    let status = resp.status();
    let headers = to_header_map(&resp.headers());
    let ib = resp.consume().map_err(|_| "response body")?;
    let mut v = Vec::new();
    {
        let s = ib.stream().map_err(|_| "response stream")?;
        while let Ok(c) = s.blocking_read(64 * 1024) {
            v.extend_from_slice(&c);
        }
    }
    Ok(Fetched {
        status,
        headers,
        body: v,
    })
}

/// Answer with `status`, the header fields of [`fields`] and the body of
/// [`body`]: one `Fields` (one host call), the body written without a copy
/// unless the watermark applies.
#[allow(clippy::too_many_arguments)]
fn reply(
    out: ResponseOutparam,
    cfg: Option<&Config>,
    status: u16,
    headers: &http::HeaderMap,
    date: Option<String>,
    body: &[u8],
    head: bool,
    how: &'static str,
) {
    let body = with_watermark(cfg, headers, body);
    send(out, status, &fields(cfg, headers, date, body.len(), how), &body, head);
}

/// The body as sent: with the provider's watermark on `text/*` bodies.
fn with_watermark<'a>(cfg: Option<&Config>, headers: &http::HeaderMap, body: &'a [u8]) -> Cow<'a, [u8]> {
    let text = || {
        headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("text/"))
    };
    match cfg.and_then(|c| c.watermark.as_ref()) {
        Some(w) if text() => {
            let mut b = Vec::with_capacity(body.len() + w.len() + 1);
            b.extend_from_slice(body);
            b.extend_from_slice(w.as_bytes());
            b.push(b'\n');
            Cow::Owned(b)
        }
        _ => Cow::Borrowed(body),
    }
}

/// The header fields sent: those of `headers` that cross a proxy, the
/// provider's hook, `x-cache: how` and the `content-length`; `date`
/// replaces the `Date` of `headers` when given.
fn fields(
    cfg: Option<&Config>,
    headers: &http::HeaderMap,
    date: Option<String>,
    len: usize,
    how: &'static str,
) -> Vec<(String, Vec<u8>)> {
    let hook = cfg.and_then(|c| c.header.as_ref());
    let mut list: Vec<(String, Vec<u8>)> = Vec::with_capacity(headers.len() + 4);
    for (k, v) in headers {
        let k = k.as_str();
        if hop_by_hop(k) || k == "x-cache" || (date.is_some() && k == "date") || hook.is_some_and(|(n, _)| n == k) {
            continue;
        }
        list.push((k.to_string(), v.as_bytes().to_vec()));
    }
    if let Some(d) = date {
        list.push(("date".into(), d.into_bytes()));
    }
    if let Some((n, v)) = hook {
        list.push((n.clone(), v.as_bytes().to_vec()));
    }
    list.push(("x-cache".into(), how.as_bytes().to_vec()));
    list.push(("content-length".into(), len.to_string().into_bytes()));
    list
}

fn send(out: ResponseOutparam, status: u16, list: &[(String, Vec<u8>)], body: &[u8], head: bool) {
    let fields = Fields::from_list(list).unwrap_or_else(|_| Fields::new());
    let r = OutgoingResponse::new(fields);
    let _ = r.set_status_code(status);
    let Ok(b) = r.body() else { return };
    ResponseOutparam::set(out, Ok(r));
    if !head {
        if let Ok(s) = b.write() {
            for c in body.chunks(4096) {
                if s.blocking_write_and_flush(c).is_err() {
                    break;
                }
            }
        }
    }
    let _ = OutgoingBody::finish(b, None);
}

/// `Date` as RFC 9110 §5.6.7 wants it (IMF-fixdate, `… GMT`):
/// `http-cache-semantics` writes the cached response's `Date` in RFC 2822
/// form (`… +0000`), which strict clients reject.
fn imf_date(now: SystemTime) -> String {
    httpdate::fmt_http_date(now)
}

fn error(out: ResponseOutparam, status: u16, msg: &str) {
    let mut h = http::HeaderMap::new();
    h.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
    reply(
        out,
        None,
        status,
        &h,
        None,
        format!("activecdn: {msg}\n").as_bytes(),
        false,
        "ERROR",
    );
}

/// The configuration, parsed at the first request and kept.
fn config() -> &'static Result<Config, String> {
    static CONFIG: OnceLock<Result<Config, String>> = OnceLock::new();
    CONFIG.get_or_init(|| Config::parse(&std::env::var("WEFT_CONFIG").unwrap_or_default()))
}

fn read_body(req: &IncomingRequest) -> Vec<u8> {
    let mut v = Vec::new();
    if let Ok(b) = req.consume() {
        if let Ok(s) = b.stream() {
            while let Ok(c) = s.blocking_read(64 * 1024) {
                v.extend_from_slice(&c);
            }
        }
    }
    v
}

impl wasi::exports::http::incoming_handler::Guest for Cdn {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let cfg = match config() {
            Ok(c) => c,
            Err(e) => return error(out, 500, &format!("bad configuration: {e}")),
        };
        let method = method_of(&req.method());
        let pq = req.path_with_query().unwrap_or_else(|| "/".into());
        let request = req.headers().entries();
        let head = method == http::Method::HEAD;
        let now = SystemTime::now();
        let memo = (method == http::Method::GET || head) && memoable(&request);
        let out = if memo {
            match from_memo(cfg, &method, &pq, &request, now, out) {
                Ok(()) => return,
                Err(out) => out,
            }
        } else {
            out
        };
        let mut builder = http::Request::builder().method(method.clone()).uri(pq.as_str());
        if let Some(h) = builder.headers_mut() {
            *h = header_map(&request);
        }
        let Ok(hreq) = builder.body(()) else {
            return error(out, 400, "bad request target");
        };
        let (parts, ()) = hreq.into_parts();
        if method != http::Method::GET && !head {
            let body = read_body(&req);
            drop(req);
            return match fetch(cfg, &parts, body) {
                Ok(f) => reply(out, Some(cfg), f.status, &f.headers, None, &f.body, false, "MISS"),
                Err(e) => error(out, 502, &e),
            };
        }
        drop(req);
        // A fresh or revalidatable variant?
        let found = CACHE.with(|c| {
            let c = c.borrow();
            c.entries.iter().enumerate().find_map(|(i, e)| {
                if e.key != pq {
                    return None;
                }
                match e.policy.before_request(&parts, now) {
                    BeforeRequest::Fresh(res) => Some((i, Ok(res))),
                    BeforeRequest::Stale { request, matches: true } => Some((i, Err(request))),
                    BeforeRequest::Stale { matches: false, .. } => None,
                }
            })
        });
        match found {
            Some((i, Ok(res))) => CACHE.with(|c| {
                let mut c = c.borrow_mut();
                let generation = c.generation;
                let e = &mut c.entries[i];
                let age_secs = e.policy.age(now).as_secs();
                let date = imf_date(now);
                if memo && age_secs < 86_400 - 1 {
                    let body = with_watermark(Some(cfg), &res.headers, &e.body);
                    let fields = fields(Some(cfg), &res.headers, Some(date), body.len(), "HIT");
                    send(out, e.status, &fields, &body, head);
                    e.memo = Some(Memo {
                        generation,
                        method,
                        request,
                        age_secs,
                        unix_secs: unix_secs(now),
                        fields,
                        headers: res.headers,
                    });
                } else {
                    reply(out, Some(cfg), e.status, &res.headers, Some(date), &e.body, head, "HIT")
                }
            }),
            Some((i, Err(revalidate))) => match fetch(cfg, &revalidate, Vec::new()) {
                Ok(f) => {
                    let mut rb = http::Response::builder().status(f.status);
                    if let Some(h) = rb.headers_mut() {
                        *h = f.headers.clone();
                    }
                    let Ok(res) = rb.body(()) else {
                        return error(out, 502, "bad origin response");
                    };
                    let after = CACHE.with(|c| c.borrow().entries[i].policy.after_response(&parts, &res, now));
                    match after {
                        AfterResponse::NotModified(policy, rparts) => CACHE.with(|c| {
                            let mut c = c.borrow_mut();
                            c.seq += 1;
                            c.generation += 1;
                            let seq = c.seq;
                            let e = &mut c.entries[i];
                            e.policy = policy;
                            e.seq = seq;
                            let e = &c.entries[i];
                            reply(
                                out,
                                Some(cfg),
                                e.status,
                                &rparts.headers,
                                None,
                                &e.body,
                                head,
                                "REVALIDATED",
                            )
                        }),
                        AfterResponse::Modified(policy, _) => {
                            CACHE.with(|c| c.borrow_mut().remove(i));
                            store(cfg, &pq, policy, &f);
                            reply(out, Some(cfg), f.status, &f.headers, None, &f.body, head, "MISS")
                        }
                    }
                }
                Err(e) => error(out, 502, &e),
            },
            None => match fetch(cfg, &parts, Vec::new()) {
                Ok(f) => {
                    let mut rb = http::Response::builder().status(f.status);
                    if let Some(h) = rb.headers_mut() {
                        *h = f.headers.clone();
                    }
                    if let Ok(res) = rb.body(()) {
                        let policy = CachePolicy::new(&parts, &res);
                        store(cfg, &pq, policy, &f);
                    }
                    reply(out, Some(cfg), f.status, &f.headers, None, &f.body, head, "MISS")
                }
                Err(e) => error(out, 502, &e),
            },
        }
    }
}

/// Keep `f` if the policy lets a shared cache store it and it fits;
/// replaces the variants of `key` the new one supersedes.
fn store(cfg: &Config, key: &str, policy: CachePolicy, f: &Fetched) {
    if !policy.is_storable() || f.body.len() > cfg.max_object {
        return;
    }
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        c.seq += 1;
        let seq = c.seq;
        c.insert(
            Entry {
                key: key.to_string(),
                policy,
                status: f.status,
                body: f.body.clone(),
                seq,
                memo: None,
            },
            cfg.max_bytes,
        );
    });
}

wasi::http::proxy::export!(Cdn);
