//! Who may talk to a node, in process: TCP needs credentials, principals
//! get exactly their rights, browsers and malformed bodies are refused,
//! every bound answers with a JSON error, idle connections cannot starve
//! the operator's socket, and every change leaves an audit line.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft_control::api::{FilterCreated, FilterRequest, FilterView, MatchAll};
use weft_control::client::{Credentials, Endpoint};
use weft_control::{ApiServer, Client, ClientError, NodeConfig, NodeRunner};
use weft_repo::SecretKey;

const ALICE_TOKEN: &str = "wft_alice-test-token";
const OPS_TOKEN: &str = "wft_ops-test-token";

fn config() -> String {
    let sha = |t: &str| weft_repo::sha256_hex(t.as_bytes());
    let bob = SecretKey::from_seed([9; 32]).public();
    format!(
        r#"
[node]
name = "s1"
[api]
tcp = "127.0.0.1:0"
[[port]]
name = "eth0"
mac = "02:00:00:00:00:01"
addrs = ["10.0.0.1/24"]
[[principal]]
name = "ops"
token_sha256 = "{}"
rights = ["all"]
[[principal]]
name = "alice"
token_sha256 = "{}"
rights = ["read", "filter", "instance"]
prefixes = ["10.1.0.0/16"]
classes = ["counter"]
[[principal]]
name = "bob"
key = "{bob}"
rights = ["read", "route"]
prefixes = ["192.0.2.0/24"]
"#,
        sha(OPS_TOKEN),
        sha(ALICE_TOKEN)
    )
}

/// Audit lines written by the nodes of this test binary.
fn audit_log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf: Arc<Mutex<Vec<u8>>> = Arc::default();
        let b2 = buf.clone();
        let sub = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_env_filter(tracing_subscriber::EnvFilter::new("weft::audit=info"))
            .with_writer(move || Writer(b2.clone()))
            .finish();
        let _ = tracing::subscriber::set_global_default(sub);
        buf
    })
    .clone()
}

struct Writer(Arc<Mutex<Vec<u8>>>);
impl Write for Writer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Up {
    unix: Client,
    tcp: Endpoint,
    sock: std::path::PathBuf,
    stats: [Arc<weft_http::ServeStats>; 2],
    _runner: NodeRunner,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn up(tag: &str) -> Up {
    audit_log();
    let cfg = NodeConfig::parse(&config(), "s1.toml").unwrap();
    let settings = cfg.api_settings().unwrap();
    let (node, _) = cfg.build().unwrap();
    let runner = NodeRunner::spawn(node).unwrap();
    let dir = std::env::temp_dir().join(format!("weft-sec-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sock = dir.join("s1.sock");
    let server = ApiServer::bind(&sock, &settings).await.unwrap();
    let tcp = Endpoint::Tcp(server.tcp_addr().unwrap().to_string());
    let stats = server.stats();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(runner.handle(), async {
        let _ = stopped.await;
    }));
    Up {
        unix: Client::new(&sock),
        tcp,
        sock,
        stats,
        _runner: runner,
        _stop: stop,
    }
}

impl Up {
    fn as_token(&self, t: &str) -> Client {
        Client::with(self.tcp.clone(), Some(Credentials::Token(t.into())))
    }
    fn addr(&self) -> String {
        match &self.tcp {
            Endpoint::Tcp(a) => a.clone(),
            Endpoint::Unix(_) => unreachable!(),
        }
    }
}

fn status(r: Result<serde_json::Value, ClientError>) -> (u16, String) {
    match r {
        Ok(v) => (200, v.to_string()),
        Err(ClientError::Api { status, message }) => (status.as_u16(), message),
        Err(e) => panic!("{e}"),
    }
}

/// A raw HTTP/1.0 exchange on TCP: the whole reply. The request is written
/// while the reply is read, as a browser does: a server that refuses a body
/// too large answers before reading it all and closes, so a client that
/// wrote first would get a broken pipe, and the reply could be lost to the
/// reset that follows.
async fn raw(addr: &str, req: &[u8]) -> String {
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let req = req.to_vec();
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&req).await;
        wr
    });
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = rd.read(&mut buf).await {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    drop(writer.await);
    String::from_utf8_lossy(&out).into_owned()
}

fn udp_to(dst: &str) -> FilterRequest {
    FilterRequest {
        proto: Some("udp".parse().unwrap()),
        dst: Some(dst.parse().unwrap()),
        class: Some("counter".into()),
        autoinstance: true,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_needs_credentials_and_signed_requests_cannot_be_replayed() {
    let u = up("tcp").await;
    let r = raw(&u.addr(), b"GET /v1/node HTTP/1.0\r\nhost: x\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.0 401"), "{r}");
    assert!(
        r.to_ascii_lowercase()
            .contains("www-authenticate: bearer, weft-ed25519"),
        "{r}"
    );
    assert!(r.contains("\"error\":\"authentication required"), "{r}");
    let bad = Client::with(u.tcp.clone(), Some(Credentials::Token("wft_wrong".into())));
    assert_eq!(status(bad.get("/v1/node").await).0, 401);
    // An unauthenticated change is refused before it reaches the node.
    let body = r#"{"prefix":"default","via":"10.0.0.254"}"#;
    let req = format!(
        "POST /v1/routes HTTP/1.0\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let r = raw(&u.addr(), req.as_bytes()).await;
    assert!(r.starts_with("HTTP/1.0 401"), "{r}");
    assert!(u
        .unix
        .get::<Vec<serde_json::Value>>("/v1/routes")
        .await
        .unwrap()
        .iter()
        .all(|r| r["prefix"] != "0.0.0.0/0"));

    let ops = u.as_token(OPS_TOKEN);
    assert_eq!(status(ops.get("/v1/node").await).0, 200);

    // bob signs his requests; one signature serves once.
    let bob = Client::with(
        u.tcp.clone(),
        Some(Credentials::Key(Arc::new(SecretKey::from_seed([9; 32])))),
    );
    let (s, _) = status(
        bob.post(
            "/v1/routes",
            &serde_json::json!({"prefix": "192.0.2.0/24", "via": "10.0.0.9"}),
        )
        .await,
    );
    assert_eq!(s, 200);
    let body = br#"{"prefix":"192.0.2.128/25","via":"10.0.0.9"}"#;
    let auth = weft_control::auth::request::sign(
        &SecretKey::from_seed([9; 32]),
        "POST",
        "/v1/routes",
        body,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
        &weft_control::auth::request::nonce(),
    );
    let req = format!(
        "POST /v1/routes HTTP/1.0\r\nauthorization: {auth}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    assert!(raw(&u.addr(), &bytes).await.starts_with("HTTP/1.0 200"));
    let again = raw(&u.addr(), &bytes).await;
    assert!(
        again.starts_with("HTTP/1.0 401") && again.contains("replayed"),
        "{again}"
    );
    // A key that is no principal.
    let eve = Client::with(
        u.tcp.clone(),
        Some(Credentials::Key(Arc::new(SecretKey::from_seed([3; 32])))),
    );
    let (s, m) = status(eve.get("/v1/node").await);
    assert_eq!(s, 401, "{m}");
    assert!(m.contains("not a principal"), "{m}");
    // bob's scope: routes within his prefix only, nothing else.
    let (s, m) = status(
        bob.post(
            "/v1/routes",
            &serde_json::json!({"prefix": "default", "via": "10.0.0.9"}),
        )
        .await,
    );
    assert_eq!(s, 403, "{m}");
    let (s, m) = status(bob.post("/v1/filters", &udp_to("192.0.2.1")).await);
    assert_eq!(s, 403, "{m}");
    assert!(m.contains("missing right: filter"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_gets_its_rights_and_no_more() {
    let u = up("rights").await;
    let alice = u.as_token(ALICE_TOKEN);
    // Within its prefixes and classes: allowed, and owned.
    let mine: FilterCreated = alice.post("/v1/filters", &udp_to("10.1.2.0/24")).await.unwrap();
    let fs: Vec<FilterView> = alice.get("/v1/filters").await.unwrap();
    let f = fs.iter().find(|f| f.id == mine.filter).unwrap();
    assert_eq!(f.owner.as_deref(), Some("alice"));

    // Outside: 403 with the missing right named.
    let raw_post = |path: &'static str, body: serde_json::Value| {
        let c = alice.clone();
        async move {
            let b = c
                .raw(hyper::Method::POST, path, Some(serde_json::to_vec(&body).unwrap()))
                .await;
            match b {
                Err(ClientError::Api { status, message }) => (status.as_u16(), message),
                Ok(b) => (200, String::from_utf8_lossy(&b).into_owned()),
                Err(e) => panic!("{e}"),
            }
        }
    };
    let (s, m) = status(alice.post("/v1/filters", &udp_to("10.2.0.0/24")).await);
    assert_eq!(s, 403);
    assert!(m.contains("10.2.0.0/24") && m.contains("10.1.0.0/16"), "{m}");
    let mut drop = udp_to("10.1.3.0/24");
    drop.class = Some("drop".into());
    let (s, m) = status(alice.post("/v1/filters", &drop).await);
    assert_eq!((s, m.contains("class drop")), (403, true), "{m}");
    let (s, m) = raw_post(
        "/v1/routes",
        serde_json::json!({"prefix": "10.1.0.0/16", "port": "eth0"}),
    )
    .await;
    assert_eq!((s, m.contains("missing right: route")), (403, true), "{m}");
    // The missing right travels as data too.
    let r = raw(
        &u.addr(),
        format!(
            "POST /v1/classes HTTP/1.0\r\nauthorization: Bearer {ALICE_TOKEN}\r\ncontent-type: application/json\r\ncontent-length: 15\r\n\r\n{{\"name\":\"drop\"}}"
        )
        .as_bytes(),
    )
    .await;
    assert!(
        r.starts_with("HTTP/1.0 403") && r.contains("\"missing\":\"class\""),
        "{r}"
    );

    // What the operator made is not hers.
    let op: FilterCreated = u.unix.post("/v1/filters", &udp_to("10.1.9.0/24")).await.unwrap();
    let (s, m) = status(alice.delete::<(), _>(&format!("/v1/filters/{}", op.filter), None).await);
    assert_eq!((s, m.contains("belongs to the operator")), (403, true), "{m}");
    let op_inst = op.instance.unwrap();
    let (s, _) = raw_post(
        Box::leak(format!("/v1/instances/{}/control", op_inst.trim_start_matches('#')).into_boxed_str()),
        serde_json::json!({"request": "reset"}),
    )
    .await;
    assert_eq!(s, 403);
    // Her own instance and filter are.
    let inst = mine.instance.unwrap();
    let (s, m) = raw_post(
        Box::leak(format!("/v1/instances/{}/control", inst.trim_start_matches('#')).into_boxed_str()),
        serde_json::json!({"request": "reset"}),
    )
    .await;
    assert_eq!(s, 200, "{m}");
    let _: serde_json::Value = alice
        .delete::<(), _>(&format!("/v1/filters/{}", mine.filter), None)
        .await
        .unwrap();

    // The audit log has her changes and her refusals, one line each.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let log = String::from_utf8_lossy(&audit_log().lock().unwrap()).into_owned();
    let hers: Vec<&str> = log.lines().filter(|l| l.contains("who=\"alice\"")).collect();
    assert!(
        hers.iter()
            .any(|l| l.contains("change") && l.contains("path=\"/v1/filters\"") && l.contains("status=200")),
        "{log}"
    );
    assert!(
        hers.iter().any(|l| l.contains("refused") && l.contains("status=403")),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("who=\"uid ") && l.contains("via=\"uid ")),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_and_malformed_bodies_are_refused_with_reasons() {
    let u = up("body").await;
    let ops = u.as_token(OPS_TOKEN);
    let post = |extra: &str, body: &str| {
        format!(
            "POST /v1/filters HTTP/1.0\r\nauthorization: Bearer {OPS_TOKEN}\r\n{extra}content-length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let ok_body = r#"{"proto":"udp","dport":"9","plugin":"counter","autoinstance":true}"#;
    // A page on another site POSTing text/plain, or with Origin: refused.
    let r = raw(&u.addr(), post("content-type: text/plain\r\n", ok_body).as_bytes()).await;
    assert!(r.starts_with("HTTP/1.0 415"), "{r}");
    let r = raw(
        &u.addr(),
        post(
            "content-type: application/json\r\norigin: http://evil.example\r\n",
            ok_body,
        )
        .as_bytes(),
    )
    .await;
    assert!(r.starts_with("HTTP/1.0 403") && r.contains("browsers"), "{r}");
    let r = raw(
        &u.addr(),
        post(
            "content-type: application/json\r\nsec-fetch-site: cross-site\r\n",
            ok_body,
        )
        .as_bytes(),
    )
    .await;
    assert!(r.starts_with("HTTP/1.0 403"), "{r}");
    assert!(ops.get::<Vec<FilterView>>("/v1/filters").await.unwrap().is_empty());

    // Empty bodies, arrays, objects: a 400 saying why.
    for (body, why) in [
        ("", "empty request body"),
        ("[]", "got an array"),
        ("\"x\"", "got a string"),
        ("{}", "without match fields"),
        (r#"{"proto":"udp","match":"all"}"#, "contradict"),
    ] {
        let r = raw(&u.addr(), post("content-type: application/json\r\n", body).as_bytes()).await;
        assert!(r.starts_with("HTTP/1.0 400") && r.contains(why), "{body}: {r}");
    }
    assert!(ops.get::<Vec<FilterView>>("/v1/filters").await.unwrap().is_empty());
    // Said explicitly, a catch-all is fine.
    let all = FilterRequest {
        match_all: Some(MatchAll::All),
        class: Some("counter".into()),
        autoinstance: true,
        ..Default::default()
    };
    let _: FilterCreated = ops.post("/v1/filters", &all).await.unwrap();

    // Bounds: JSON 413, 414, 431.
    let big = "x".repeat(2 << 20);
    let r = raw(&u.addr(), post("content-type: application/json\r\n", &big).as_bytes()).await;
    assert!(
        r.starts_with("HTTP/1.0 413") && r.contains("\"error\""),
        "{}",
        &r[..r.len().min(300)]
    );
    let long = format!(
        "GET /v1/node?{} HTTP/1.0\r\nauthorization: Bearer {OPS_TOKEN}\r\n\r\n",
        "a".repeat(5000)
    );
    let r = raw(&u.addr(), long.as_bytes()).await;
    assert!(r.starts_with("HTTP/1.0 414") && r.contains("\"error\""), "{r}");
    let fat = format!(
        "GET /v1/node HTTP/1.0\r\nauthorization: Bearer {OPS_TOKEN}\r\nx-fat: {}\r\n\r\n",
        "b".repeat(20_000)
    );
    let r = raw(&u.addr(), fat.as_bytes()).await;
    assert!(r.starts_with("HTTP/1.0 431") && r.contains("\"error\""), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_idle_connections_do_not_starve_the_operator() {
    let _ = weft_io::raise_nofile();
    let u = up("idle").await;
    let mut idle = Vec::new();
    for _ in 0..2000 {
        match tokio::net::TcpStream::connect(u.addr()).await {
            Ok(s) => idle.push(s),
            Err(e) => panic!("connect: {e} (the test needs 2,000 descriptors)"),
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The operator's socket answers at once, and so does TCP once served.
    let t = std::time::Instant::now();
    let _: serde_json::Value = tokio::time::timeout(Duration::from_secs(5), u.unix.get("/v1/node"))
        .await
        .expect("the Unix socket answers while TCP is flooded")
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(5));
    let refused = u.stats[1].refused_busy.load(std::sync::atomic::Ordering::Relaxed);
    assert!(refused >= 1900, "only {refused} of 2,000 idle connections were refused");
    assert!(u.sock.exists());
    drop(idle);
}
