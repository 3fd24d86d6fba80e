//! ActiveCDN (plugins/activecdn) in the host, in front of an origin that
//! counts what it serves: RFC 9111 as the module applies it — max-age
//! hits, no-store never cached, Vary variants, ETag revalidation — and the
//! provider's hook (a header, a watermark on text).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft_servers::{Bounds, ModuleConfig, Server, ServerHost, ServerSpec};

/// What the origin saw: per path, the requests and their `if-none-match`.
type Log = Arc<Mutex<Vec<(String, Option<String>, Option<String>)>>>;

/// An origin: `/max-age` (60 s), `/short` (2 s), `/no-store`, `/etag` (max-age 0, ETag
/// "v1", answers 304 to If-None-Match "v1"), `/vary` (by
/// accept-language); text/plain bodies naming the path and the language.
async fn origin() -> (SocketAddr, Log) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = l.local_addr().unwrap();
    let log: Log = Arc::default();
    let log2 = log.clone();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            let log = log2.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = c.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let h: HashMap<String, String> = head
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect();
                let inm = h.get("if-none-match").cloned();
                let lang = h.get("accept-language").cloned();
                log.lock().unwrap().push((path.clone(), inm.clone(), lang.clone()));
                let (status, extra) = match path.as_str() {
                    "/max-age" => ("200 OK", "cache-control: max-age=60\r\n".to_string()),
                    "/short" => ("200 OK", "cache-control: max-age=2\r\n".to_string()),
                    "/no-store" => ("200 OK", "cache-control: no-store\r\n".to_string()),
                    "/etag" if inm.as_deref() == Some("\"v1\"") => (
                        "304 Not Modified",
                        "cache-control: max-age=0\r\netag: \"v1\"\r\n".into(),
                    ),
                    "/etag" => ("200 OK", "cache-control: max-age=0\r\netag: \"v1\"\r\n".into()),
                    "/vary" => (
                        "200 OK",
                        "cache-control: max-age=60\r\nvary: accept-language\r\n".into(),
                    ),
                    _ => ("404 Not Found", String::new()),
                };
                let body = if status.starts_with("304") {
                    String::new()
                } else {
                    format!("{path} {}", lang.unwrap_or_default())
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = c.write_all(resp.as_bytes()).await;
            });
        }
    });
    (at, log)
}

struct Got {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

async fn get(at: SocketAddr, path: &str, extra: &str) -> Got {
    let mut s = tokio::net::TcpStream::connect(at).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nhost: cdn.test\r\n{extra}\r\n").as_bytes())
        .await
        .unwrap();
    let mut v = Vec::new();
    let _ = s.read_to_end(&mut v).await;
    let text = String::from_utf8_lossy(&v).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Got {
        status: head.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0),
        headers: head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect(),
        body: body.to_string(),
    }
}

async fn cdn(config: &str) -> Server {
    let host = ServerHost::new().unwrap();
    let code = host
        .compile(&weft_wasm::plugins::read("activecdn").expect("plugins/build.sh builds ActiveCDN"))
        .unwrap();
    Server::start(
        &host,
        code,
        ServerSpec {
            name: "activecdn".into(),
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            config: ModuleConfig::parse(config).unwrap(),
            deny: vec![],
            deny_loopback: false,
            bounds: Bounds {
                request_timeout: Duration::from_secs(10),
                ..Bounds::default()
            },
        },
    )
    .await
    .unwrap()
}

fn hits(log: &Log, path: &str) -> usize {
    log.lock().unwrap().iter().filter(|(p, _, _)| p == path).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caches_by_rfc9111_and_applies_the_providers_hook() {
    let (o, log) = origin().await;
    let s = cdn(&format!("origin={o}; header=x-provider: acme; watermark=(c) acme")).await;
    let at = s.local_addrs()[0];

    // max-age: the second fetch is the edge's.
    let a = get(at, "/max-age", "").await;
    assert_eq!((a.status, a.headers["x-cache"].as_str()), (200, "MISS"));
    assert_eq!(a.body, "/max-age (c) acme\n", "the watermark on text");
    assert_eq!(a.headers["x-provider"], "acme", "the provider's header");
    let b = get(at, "/max-age", "").await;
    assert_eq!((b.status, b.headers["x-cache"].as_str()), (200, "HIT"));
    assert_eq!(b.body, a.body);
    assert!(b.headers.contains_key("age"));
    // RFC 9110's IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
    let date = &b.headers["date"];
    assert!(
        date.ends_with(" GMT") && httpdate::parse_http_date(date).is_ok(),
        "Date is not an IMF-fixdate: {date}"
    );
    assert_eq!(hits(&log, "/max-age"), 1, "the origin saw one request");

    // no-store: never cached.
    for _ in 0..3 {
        assert_eq!(get(at, "/no-store", "").await.headers["x-cache"], "MISS");
    }
    assert_eq!(hits(&log, "/no-store"), 3);

    // ETag: stale at once, revalidated with If-None-Match, 304 → served.
    assert_eq!(get(at, "/etag", "").await.headers["x-cache"], "MISS");
    let r = get(at, "/etag", "").await;
    assert_eq!((r.status, r.headers["x-cache"].as_str()), (200, "REVALIDATED"));
    assert_eq!(r.body, "/etag (c) acme\n");
    {
        let l = log.lock().unwrap();
        let e: Vec<_> = l.iter().filter(|(p, _, _)| p == "/etag").collect();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].1, None);
        assert_eq!(e[1].1.as_deref(), Some("\"v1\""), "the revalidation is conditional");
    }

    // Vary: one variant per language.
    let en = "accept-language: en\r\n";
    let fr = "accept-language: fr\r\n";
    assert_eq!(get(at, "/vary", en).await.headers["x-cache"], "MISS");
    assert_eq!(get(at, "/vary", fr).await.headers["x-cache"], "MISS");
    let g = get(at, "/vary", en).await;
    assert_eq!(g.headers["x-cache"], "HIT");
    assert!(g.body.starts_with("/vary en"), "{}", g.body);
    assert_eq!(hits(&log, "/vary"), 2);

    // Not found is passed on (and a 404 without freshness is not kept).
    assert_eq!(get(at, "/nothing", "").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_configuration_is_answered_with_its_reason() {
    let s = cdn("header=x-a: b").await;
    let g = get(s.local_addrs()[0], "/", "").await;
    assert_eq!(g.status, 500);
    assert!(g.body.contains("no origin"), "{}", g.body);
}

/// A hit answers an identical request again from the cache crate's last
/// answer (the module's memo): that must never differ from asking the
/// crate — the age moves on, the object goes stale on time, a request
/// that says `no-cache` or differs in a varying header is the crate's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_hits_answer_as_the_cache_rules_do() {
    let (origin, log) = origin().await;
    let s = cdn(&format!("origin={origin}")).await;
    let at = s.local_addrs()[0];

    assert_eq!(get(at, "/short", "").await.headers["x-cache"], "MISS");
    let first = get(at, "/short", "").await;
    assert_eq!(first.headers["x-cache"], "HIT");
    for _ in 0..5 {
        let g = get(at, "/short", "").await;
        assert_eq!((g.status, g.headers["x-cache"].as_str()), (200, "HIT"));
        assert_eq!(g.body, first.body);
        assert!(g.headers.contains_key("age") && g.headers.contains_key("date"));
    }
    assert_eq!(hits(&log, "/short"), 1);
    // A large head (not kept with the entry) is answered the same way.
    let big = format!("x-big: {}\r\n", "b".repeat(5000));
    for _ in 0..2 {
        let g = get(at, "/short", &big).await;
        assert_eq!(
            (g.headers["x-cache"].as_str(), g.body.as_str()),
            ("HIT", first.body.as_str())
        );
    }
    assert_eq!(hits(&log, "/short"), 1);

    // A request that says no-cache is not answered from the cache unchecked.
    let g = get(at, "/short", "cache-control: no-cache\r\n").await;
    assert_ne!(g.headers["x-cache"], "HIT");
    assert_eq!(hits(&log, "/short"), 2, "no-cache went to the origin");
    assert_eq!(get(at, "/short", "").await.headers["x-cache"], "HIT");

    // The age moves on with the clock.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let g = get(at, "/short", "").await;
    assert_eq!(g.headers["x-cache"], "HIT");
    let age: u64 = g.headers["age"].parse().unwrap();
    assert!(age >= 1, "age {age} after more than a second");

    // Stale after its 2 s: fetched again, not answered from the cache.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let before = hits(&log, "/short");
    assert_eq!(get(at, "/short", "").await.headers["x-cache"], "MISS");
    assert_eq!(hits(&log, "/short"), before + 1);

    // Vary: a hit for one language never answers the other.
    let (en, fr) = ("accept-language: en\r\n", "accept-language: fr\r\n");
    get(at, "/vary", en).await;
    get(at, "/vary", fr).await;
    for _ in 0..3 {
        let e = get(at, "/vary", en).await;
        let f = get(at, "/vary", fr).await;
        assert_eq!(
            (e.headers["x-cache"].as_str(), f.headers["x-cache"].as_str()),
            ("HIT", "HIT")
        );
        assert!(
            e.body.starts_with("/vary en") && f.body.starts_with("/vary fr"),
            "{} / {}",
            e.body,
            f.body
        );
    }
    assert_eq!(hits(&log, "/vary"), 2);
}
