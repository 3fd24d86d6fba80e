//! A memif server and client over a real socket and memfd in one process.

use std::time::{Duration, Instant};
use weft_memif::io::{Client, ClientConfig, ClientError, Connection, Server};

fn sock(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("weft-memif-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("memif.sock")
}

/// Run the server's poll on a thread until one handshake finishes.
fn serve_one(mut server: Server, id: u32, secret: &'static str) -> std::thread::JoinHandle<Result<Connection, String>> {
    std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Some(r) = server
                .poll(Instant::now(), |i, s| i == id && s.bytes() == secret.as_bytes())
                .into_iter()
                .next()
            {
                return r.map_err(|(_, e)| e.to_string());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Err("timeout".into())
    })
}

#[test]
fn frames_both_ways_and_client_death_is_seen() {
    let path = sock("both");
    let server = Server::bind(&path, "weft-test", 2048).unwrap();
    let t = serve_one(server, 3, "s3cret");
    let cfg = ClientConfig {
        id: 3,
        secret: "s3cret".into(),
        ..Default::default()
    };
    let mut client = Client::connect(&path, &cfg).unwrap();
    let mut conn = t.join().unwrap().unwrap();
    assert_eq!(conn.id, 3);
    assert_eq!(conn.app, "weft-nodeos");

    for i in 0..10u8 {
        assert!(client.send(&[i; 64]));
    }
    client.flush();
    let mut got = Vec::new();
    conn.from_client.recv(64, |f| got.push(f.to_vec())).unwrap();
    assert_eq!(got.len(), 10);
    assert_eq!(got[9], vec![9u8; 64]);

    conn.to_client.begin().unwrap();
    for f in &got {
        assert!(conn.to_client.push(f));
    }
    conn.to_client.flush();
    let mut back = Vec::new();
    client.recv(64, |f| back.push(f.to_vec())).unwrap();
    assert_eq!(back, got);

    assert!(conn.link.alive());
    drop(client);
    assert!(!conn.link.alive(), "a dead client's socket closes");
}

#[test]
fn wrong_secret_is_refused_with_a_reason() {
    let path = sock("secret");
    let server = Server::bind(&path, "weft-test", 2048).unwrap();
    let t = serve_one(server, 1, "right");
    let cfg = ClientConfig {
        id: 1,
        secret: "wrong".into(),
        ..Default::default()
    };
    match Client::connect(&path, &cfg) {
        Err(ClientError::Refused(r)) => assert!(r.contains("wrong secret"), "{r}"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("connected with a wrong secret"),
    }
    assert!(matches!(t.join().unwrap(), Err(e) if e.contains("secret")));
}

#[test]
fn server_full_ring_drops_and_counts() {
    let path = sock("full");
    let server = Server::bind(&path, "weft-test", 2048).unwrap();
    let t = serve_one(server, 0, "");
    let cfg = ClientConfig {
        log2_ring_size: 4,
        ..Default::default()
    };
    let mut client = Client::connect(&path, &cfg).unwrap();
    let mut conn = t.join().unwrap().unwrap();
    // The client never reads: 16 slots fill, the rest are counted drops.
    conn.to_client.begin().unwrap();
    let sent = (0..100).filter(|_| conn.to_client.push(&[0u8; 60])).count();
    conn.to_client.flush();
    assert_eq!(sent, 16);
    assert_eq!(conn.to_client.ring.counters.full, 84);
    assert!(client.alive());
}
