//! A server module under its bounds: the test module `srvtest`
//! (plugins/srvtest) spins, sleeps, allocates without bound, returns
//! without answering and fetches; each request gets a 5xx naming the bound
//! it hit, a counter moves, and the next request is served by a fresh
//! instance — the host and the other modules carry on.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft_servers::{Bounds, CompileError, ModuleConfig, Server, ServerHost, ServerSpec};

fn module(name: &str) -> Vec<u8> {
    weft_wasm::plugins::read(name).expect("plugins/build.sh builds the server modules")
}

fn bounds() -> Bounds {
    Bounds {
        memory: 16 << 20,
        cpu_budget: Duration::from_millis(200),
        request_timeout: Duration::from_secs(2),
        max_connections: 4,
        header_timeout: Duration::from_secs(5),
        max_body: 1 << 16,
    }
}

/// One host and one compiled test module for every test of the process
/// (compiling a component takes seconds in a debug build).
fn shared() -> &'static (ServerHost, weft_servers::ServerCode) {
    static S: std::sync::OnceLock<(ServerHost, weft_servers::ServerCode)> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        let h = ServerHost::new().unwrap();
        let c = h.compile(&module("srvtest")).expect("compiles");
        (h, c)
    })
}

async fn start(name: &str, config: &str, b: Bounds) -> Server {
    assert_eq!(name, "srvtest");
    let (host, code) = shared();
    let code = code.clone();
    Server::start(
        host,
        code,
        ServerSpec {
            name: name.into(),
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            config: ModuleConfig::parse(config).unwrap(),
            deny: vec![],
            deny_loopback: false,
            bounds: b,
        },
    )
    .await
    .expect("listens")
}

/// GET `path`; the status and body.
async fn get(at: SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(at).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nhost: test\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut v = Vec::new();
    let _ = s.read_to_end(&mut v).await;
    let text = String::from_utf8_lossy(&v).into_owned();
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// `name`'s counter once it reaches `want`, or what it is after 2 s (a
/// counter may be bumped just after the answer it explains is sent).
async fn settled(s: &Server, name: &str, want: u64) -> u64 {
    let end = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        let v = stat(s, name);
        if v == want || tokio::time::Instant::now() >= end {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn stat(s: &Server, name: &str) -> u64 {
    s.stats().snapshot().into_iter().find(|(n, _)| *n == name).unwrap().1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bound_answers_with_its_reason_and_the_next_request_is_served() {
    let s = start("srvtest", "", bounds()).await;
    let at = s.local_addrs()[0];

    assert_eq!(get(at, "/ok").await, (200, "ok".into()));
    assert_eq!(get(at, "/count").await.1, "1");
    assert_eq!(get(at, "/count").await.1, "2", "the instance is kept across requests");

    let (st, body) = get(at, "/spin").await;
    assert_eq!(st, 503, "{body}");
    assert!(body.contains("CPU budget"), "{body}");
    assert_eq!(settled(&s, "cpu_exceeded", 1).await, 1);
    assert_eq!(get(at, "/count").await.1, "1", "a fresh instance after the failure");

    let (st, body) = get(at, "/grow").await;
    assert_eq!(st, 503, "{body}");
    assert!(body.contains("memory cap of 16 MiB"), "{body}");
    assert_eq!(settled(&s, "memory_exceeded", 1).await, 1);

    let (st, body) = get(at, "/sleep").await;
    assert_eq!(st, 504, "{body}");
    assert!(body.contains("did not answer within 2 s"), "{body}");
    assert_eq!(settled(&s, "timeouts", 1).await, 1);
    assert_eq!(settled(&s, "cpu_exceeded", 1).await, 1, "waiting costs no CPU budget");

    let (st, body) = get(at, "/noanswer").await;
    assert_eq!(st, 502, "{body}");
    assert!(body.contains("without a response"), "{body}");
    assert_eq!(settled(&s, "no_response", 1).await, 1);

    assert_eq!(get(at, "/ok").await, (200, "ok".into()));
    assert_eq!(
        settled(&s, "instantiations", 4).await,
        4,
        "one at first, one after each failure but the last"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spinning_module_does_not_hold_up_another() {
    let mut b = bounds();
    b.cpu_budget = Duration::from_secs(3);
    b.request_timeout = Duration::from_secs(5);
    let a = start("srvtest", "", b).await;
    let other = start("srvtest", "", bounds()).await;
    let (at, other_at) = (a.local_addrs()[0], other.local_addrs()[0]);
    let spin = tokio::spawn(async move { get(at, "/spin").await });
    // Wait until the spin is running.
    while stat(&a, "requests") == 0 || stat(&a, "instantiations") == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(get(other_at, "/ok").await, (200, "ok".into()));
    assert_eq!(
        stat(&a, "cpu_exceeded"),
        0,
        "answered while the other module still spun"
    );
    assert_eq!(spin.await.unwrap().0, 503);
    assert_eq!(stat(&a, "cpu_exceeded"), 1);
}

/// A one-shot origin: answers every connection `200 origin` and counts.
async fn origin() -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = l.local_addr().unwrap();
    let n = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let n2 = n.clone();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            n2.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = c.read(&mut buf).await;
                let _ = c
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\norigin")
                    .await;
            });
        }
    });
    (at, n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outgoing_requests_reach_the_configured_origin_only() {
    let (o, hits) = origin().await;
    let (other, other_hits) = origin().await;
    let s = start("srvtest", &format!("origin={o}"), bounds()).await;
    let at = s.local_addrs()[0];
    assert_eq!(get(at, &format!("/fetch/{o}/x")).await, (200, "origin".into()));
    assert_eq!(hits.load(Ordering::Relaxed), 1);
    let (st, body) = get(at, &format!("/fetch/{other}/x")).await;
    assert_eq!(st, 502);
    assert!(body.contains("HttpRequestDenied"), "{body}");
    assert_eq!(other_hits.load(Ordering::Relaxed), 0);
    assert_eq!(stat(&s, "egress_denied"), 1);
    assert_eq!(stat(&s, "egress_requests"), 1);

    // The same origin, with loopback denied (as on a node): refused.
    let mut b = bounds();
    b.request_timeout = Duration::from_secs(2);
    let (host, code) = shared();
    let code = code.clone();
    let s2 = Server::start(
        host,
        code,
        ServerSpec {
            name: "t".into(),
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            config: ModuleConfig::parse(&format!("origin={o}")).unwrap(),
            deny: vec![],
            deny_loopback: true,
            bounds: b,
        },
    )
    .await
    .unwrap();
    assert_eq!(get(s2.local_addrs()[0], &format!("/fetch/{o}/x")).await.0, 502);
    assert_eq!(hits.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_refused() {
    let mut b = bounds();
    b.max_connections = 2;
    let s = start("srvtest", "", b).await;
    let at = s.local_addrs()[0];
    let _idle1 = tokio::net::TcpStream::connect(at).await.unwrap();
    let _idle2 = tokio::net::TcpStream::connect(at).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (st, body) = get(at, "/ok").await;
    assert_eq!(st, 503, "{body}");
    assert!(body.contains("too many connections"), "{body}");
    assert_eq!(s.refused_busy(), 1);
}

#[test]
fn only_proxy_components_compile() {
    let host = ServerHost::new().unwrap();
    // A packet plugin is a core module, not a component.
    assert!(matches!(host.compile(&module("noop")), Err(CompileError::NotComponent)));
    assert!(matches!(host.compile(b"hello"), Err(CompileError::NotComponent)));
    let mut cut = module("srvtest");
    cut.truncate(cut.len() / 2);
    assert!(matches!(host.compile(&cut), Err(CompileError::Compile(_))));
    assert!(host.compile(&module("activecdn")).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_closes_the_listener() {
    let mut s = start("srvtest", "", bounds()).await;
    let at = s.local_addrs()[0];
    assert_eq!(get(at, "/ok").await.0, 200);
    s.stop();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(tokio::net::TcpStream::connect(at).await.is_err());
}
