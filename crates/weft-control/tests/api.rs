//! The API through its own client, in process: JSON errors with 4xx
//! statuses, the control port's body forms (TCP and credentials:
//! `security.rs`).

use weft_control::api::{ControlReply, FilterCreated, FilterRequest, InstanceView};
use weft_control::{ApiServer, Client, ClientError, NodeConfig, NodeRunner};

const CONFIG: &str = r#"
[node]
name = "a1"
[[port]]
name = "eth0"
mac = "02:00:00:00:00:01"
addrs = ["10.0.0.1/24"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn api_round_trip() {
    let cfg = NodeConfig::parse(CONFIG, "a1.toml").unwrap();
    let (node, _) = cfg.build().unwrap();
    let runner = NodeRunner::spawn(node).unwrap();
    let sock = std::env::temp_dir().join(format!("weft-api-test-{}/a1.sock", std::process::id()));
    let server = ApiServer::bind(&sock, &cfg.api_settings().unwrap()).await.unwrap();
    assert!(server.tcp_addr().is_none(), "no TCP unless configured");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(runner.handle(), async {
        let _ = stopped.await;
    }));
    let c = Client::new(&sock);

    let req = FilterRequest {
        proto: Some("udp".parse().unwrap()),
        dport: Some("6060".parse().unwrap()),
        class: Some("ratelimit".into()),
        autoinstance: true,
        config: Some("65536".into()),
        ..Default::default()
    };
    let r: FilterCreated = c.post("/v1/filters", &req).await.unwrap();
    assert_eq!(r.instance.as_deref(), Some("#1"));

    // Ports without their protocol are refused, as iptables refuses
    // `--dport` without `-p`; so are ports of a protocol without any.
    for (proto, want) in [(None, "need the protocol named"), (Some("icmp"), "tcp and udp only")] {
        let req = FilterRequest {
            proto: proto.map(|p| p.parse().unwrap()),
            dport: Some("7000".parse().unwrap()),
            ..Default::default()
        };
        match c.post::<_, FilterCreated>("/v1/filters", &req).await {
            Err(ClientError::Api { status, message }) => {
                assert_eq!(status.as_u16(), 400);
                assert!(message.contains(want), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    // The control port takes {"request": …}, a JSON string, or raw text.
    for body in [&br#"{"request": "70000"}"#[..], br#""80000""#, b"90000"] {
        let b = c
            .raw(hyper::Method::POST, "/v1/instances/1/control", Some(body.to_vec()))
            .await
            .unwrap();
        let reply: ControlReply = serde_json::from_slice(&b).unwrap();
        assert_eq!(reply.reply, "ok");
    }
    let rep: serde_json::Value = c.get("/v1/instances/1/report").await.unwrap();
    assert_eq!(rep["element"]["rate"], 90000);

    // Errors: JSON {"error"} with a 4xx status and the node's own words.
    match c.get::<serde_json::Value>("/v1/instances/7/report").await {
        Err(ClientError::Api { status, message }) => {
            assert_eq!(status.as_u16(), 404);
            assert_eq!(message, "no instance #7");
        }
        other => panic!("{other:?}"),
    }
    match c
        .post::<_, serde_json::Value>("/v1/instances", &serde_json::json!({"klass": "x"}))
        .await
    {
        Err(ClientError::Api { status, message }) => {
            assert_eq!(status.as_u16(), 400);
            assert!(message.contains("klass"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    match c.get::<serde_json::Value>("/v2/nothing").await {
        Err(ClientError::Api { status, .. }) => assert_eq!(status.as_u16(), 404),
        other => panic!("{other:?}"),
    }
    let is: Vec<InstanceView> = c.get("/v1/instances").await.unwrap();
    assert_eq!(is.len(), 1);
    assert_eq!(is[0].filters.len(), 1);
    // Its handlers, as the ratelimit element declares them.
    let names: Vec<&str> = is[0].handlers.iter().map(|h| h.name.as_ref()).collect();
    assert_eq!(names, ["rate", "burst", "passed", "dropped", "rate", "reset"]);

    let _ = stop.send(());
    serving.await.unwrap();
    assert!(!sock.exists());
}
