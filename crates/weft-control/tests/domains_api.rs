//! `/v1/domains` through the API: the operator makes tenants' domains, a
//! principal manages only what it owns (never its own top domain's
//! limits), bad requests get clear errors, a principal's filters land in
//! its home domain, `instance ls` names each instance's domain.

use weft_control::api::{
    DomainCreated, DomainRequest, DomainSet, DomainView, FilterCreated, FilterRequest, InstanceView,
};
use weft_control::client::{Credentials, Endpoint};
use weft_control::{ApiServer, Client, ClientError, NodeConfig, NodeRunner};
use weft_dataplane::domain::DomainLimits;

const CAROL: &str = "wft_carol-test-token";
const DAVE: &str = "wft_dave-test-token";

fn config() -> String {
    let sha = |t: &str| weft_repo::sha256_hex(t.as_bytes());
    format!(
        r#"
[node]
name = "d1"
[api]
tcp = "127.0.0.1:0"
[[port]]
name = "eth0"
mac = "02:00:00:00:00:01"
addrs = ["10.0.0.1/24"]
[[principal]]
name = "carol"
token_sha256 = "{}"
rights = ["read", "filter", "instance", "domain"]
prefixes = ["10.1.0.0/16"]
classes = ["counter"]
[[principal]]
name = "dave"
token_sha256 = "{}"
rights = ["read", "domain"]
"#,
        sha(CAROL),
        sha(DAVE)
    )
}

struct Up {
    op: Client,
    tcp: Endpoint,
    _runner: NodeRunner,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn up(tag: &str) -> Up {
    let cfg = NodeConfig::parse(&config(), "d1.toml").unwrap();
    let settings = cfg.api_settings().unwrap();
    let (node, _) = cfg.build().unwrap();
    let runner = NodeRunner::spawn(node).unwrap();
    let dir = std::env::temp_dir().join(format!("weft-dom-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sock = dir.join("d1.sock");
    let server = ApiServer::bind(&sock, &settings).await.unwrap();
    let tcp = Endpoint::Tcp(server.tcp_addr().unwrap().to_string());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(runner.handle(), async {
        let _ = stopped.await;
    }));
    Up {
        op: Client::new(&sock),
        tcp,
        _runner: runner,
        _stop: stop,
    }
}

impl Up {
    fn as_token(&self, t: &str) -> Client {
        Client::with(self.tcp.clone(), Some(Credentials::Token(t.into())))
    }
}

fn status<T>(r: Result<T, ClientError>) -> (u16, String) {
    match r {
        Ok(_) => (200, String::new()),
        Err(ClientError::Api { status, message }) => (status.as_u16(), message),
        Err(e) => panic!("{e}"),
    }
}

async fn raw_post(c: &Client, path: &str, body: &str) -> (u16, String) {
    match c.raw(hyper::Method::POST, path, Some(body.as_bytes().to_vec())).await {
        Err(ClientError::Api { status, message }) => (status.as_u16(), message),
        Ok(b) => (200, String::from_utf8_lossy(&b).into_owned()),
        Err(e) => panic!("{e}"),
    }
}

fn dom(name: &str, parent: Option<&str>, owner: Option<&str>) -> DomainRequest {
    DomainRequest {
        name: name.into(),
        parent: parent.map(Into::into),
        owner: owner.map(Into::into),
        limits: DomainLimits {
            memory: Some(8 << 20),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn principals_manage_only_the_domains_they_own() {
    let u = up("rights").await;
    let carol = u.as_token(CAROL);
    let dave = u.as_token(DAVE);
    // The operator makes each tenant's top domain.
    let c: DomainCreated =
        u.op.post("/v1/domains", &dom("carol", None, Some("carol")))
            .await
            .unwrap();
    let _: DomainCreated =
        u.op.post("/v1/domains", &dom("dave", None, Some("dave")))
            .await
            .unwrap();

    // A tenant may not make top domains, nor domains for others.
    let (s, m) = status(
        carol
            .post::<_, DomainCreated>("/v1/domains", &dom("x", None, None))
            .await,
    );
    assert_eq!(s, 403, "{m}");
    assert!(m.contains("belongs to the operator"), "{m}");
    let (s, m) = status(
        carol
            .post::<_, DomainCreated>("/v1/domains", &dom("x", Some("carol"), Some("dave")))
            .await,
    );
    assert_eq!(s, 403, "{m}");
    // Under its own: yes, and it is its own.
    let web: DomainCreated = carol
        .post("/v1/domains", &dom("carol.web", Some("carol"), None))
        .await
        .unwrap();
    let v: DomainView = carol.get("/v1/domains/carol.web").await.unwrap();
    assert_eq!(
        (v.owner.as_deref(), v.parent.as_deref()),
        (Some("carol"), Some("carol"))
    );

    // Its sub-domain's limits: yes; its top domain's: no (that would raise
    // its own limits); someone else's: no, naming the owner.
    let set = DomainSet {
        cpu_ns: Some(200_000),
        class: Some("deadline:2ms".into()),
        ..Default::default()
    };
    let v: DomainView = carol.post(&format!("/v1/domains/{}/set", web.id), &set).await.unwrap();
    assert_eq!((v.limits.cpu_ns, v.class.as_str()), (Some(200_000), "deadline:2ms"));
    let (s, m) = status(carol.post::<_, DomainView>("/v1/domains/carol/set", &set).await);
    assert_eq!(s, 403, "{m}");
    assert!(m.contains("top domain"), "{m}");
    let (s, m) = status(carol.post::<_, DomainView>("/v1/domains/dave/set", &set).await);
    assert_eq!((s, m.contains("belongs to dave")), (403, true), "{m}");
    let (s, m) = status(carol.delete::<(), serde_json::Value>("/v1/domains/dave", None).await);
    assert_eq!((s, m.contains("belongs to dave")), (403, true), "{m}");
    let (s, m) = status(
        dave.post::<_, DomainCreated>("/v1/domains", &dom("y", Some(&c.id.to_string()), None))
            .await,
    );
    assert_eq!((s, m.contains("belongs to carol")), (403, true), "{m}");

    // A principal's filter goes into its home domain; instance ls says so.
    let f: FilterCreated = carol
        .post(
            "/v1/filters",
            &FilterRequest {
                proto: Some("udp".parse().unwrap()),
                dst: Some("10.1.2.0/24".parse().unwrap()),
                class: Some("counter".into()),
                autoinstance: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let is: Vec<InstanceView> = carol.get("/v1/instances").await.unwrap();
    let i = is.iter().find(|i| Some(&i.id) == f.instance.as_ref()).unwrap();
    assert_eq!(i.domain, "carol");
    let v: DomainView = u.op.get("/v1/domains/carol").await.unwrap();
    assert!(v.filters.contains(&f.filter.0), "{v:?}");

    // Removing its own sub-domain: yes. The operator removes a tenant whole.
    let _: serde_json::Value = carol.delete::<(), _>("/v1/domains/carol.web", None).await.unwrap();
    let r: serde_json::Value = u.op.delete::<(), _>("/v1/domains/carol", None).await.unwrap();
    assert_eq!(r["filters"].as_array().map(|a| a.len()), Some(1), "{r}");
    let is: Vec<InstanceView> = u.op.get("/v1/instances").await.unwrap();
    assert!(is.is_empty(), "the tenant's instances went with its domain");
    // A destroyed handle names nothing.
    let (s, _) = status(u.op.get::<DomainView>(&format!("/v1/domains/{}", c.id)).await);
    assert_eq!(s, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_domain_requests_get_clear_errors() {
    let u = up("bad").await;
    let cases: &[(&str, &str, u16, &str)] = &[
        ("/v1/domains", r#"{"name":"a","limts":{}}"#, 400, "unknown field"),
        (
            "/v1/domains",
            r#"{"name":"a","limits":{"memory":"lots"}}"#,
            400,
            "bad request body",
        ),
        ("/v1/domains", r#"{"name":"a","class":"fair:0"}"#, 400, "weight"),
        (
            "/v1/domains",
            r#"{"name":"a","class":"edf"}"#,
            400,
            "unknown scheduling class",
        ),
        ("/v1/domains", r#"{"name":"a b"}"#, 400, "letters, digits"),
        ("/v1/domains", r#"{"name":"42"}"#, 400, "not all digits"),
        ("/v1/domains", r#"{"name":"a","key":"zz"}"#, 400, "64 hex digits"),
        (
            "/v1/domains",
            r#"{"name":"a","parent":"nowhere"}"#,
            404,
            "no domain named",
        ),
        (
            "/v1/domains",
            r#"{"name":"a","limits":{"queue_len":1000000}}"#,
            400,
            "over 65536",
        ),
        ("/v1/domains", r#"[]"#, 400, "expected a JSON object"),
        ("/v1/domains/root/set", r#"{"class":"fair:2"}"#, 400, "root domain"),
        ("/v1/domains/root/set", r#"{"share":0}"#, 400, "1 to 1000"),
        ("/v1/domains/root/set", r#"{"clear":["everything"]}"#, 400, "cpu_ns"),
        ("/v1/domains/99/set", r#"{"cpu_ns":5}"#, 404, "no domain 99"),
    ];
    for (path, body, want, says) in cases {
        let (s, m) = raw_post(&u.op, path, body).await;
        assert_eq!(s, *want, "{path} {body}: {m}");
        assert!(m.contains(says), "{path} {body}: {m:?} should say {says:?}");
    }
    let _: DomainCreated = u.op.post("/v1/domains", &dom("a", None, None)).await.unwrap();
    let (s, m) = status(
        u.op.post::<_, DomainCreated>("/v1/domains", &dom("a", None, None))
            .await,
    );
    assert_eq!((s, m.contains("exists already")), (409, true), "{m}");
    let (s, m) = status(u.op.delete::<(), serde_json::Value>("/v1/domains/root", None).await);
    assert_eq!((s, m.contains("cannot be removed")), (400, true), "{m}");
    let (s, m) = status(
        u.op.post::<_, DomainView>(
            "/v1/domains/a/set",
            &DomainSet {
                memory: Some(1),
                ..Default::default()
            },
        )
        .await,
    );
    // Nothing held yet: a tiny limit is fine; the root's share is the
    // operator's to set.
    assert_eq!(s, 200, "{m}");
    let v: DomainView =
        u.op.post(
            "/v1/domains/root/set",
            &DomainSet {
                share: Some(800),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(v.share, Some(800));
}
