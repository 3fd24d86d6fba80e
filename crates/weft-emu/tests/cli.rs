//! `run_cli`, what `weft emu run` calls.

use std::path::PathBuf;
use std::time::Duration;

fn topo(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../topologies")
        .join(name)
}

#[test]
fn line3_traffic_report() {
    let r = weft_emu::run_cli(&topo("line3.toml"), Duration::from_secs(3), false).unwrap();
    let udp = r.traffic.iter().find(|t| t.kind == "udp").unwrap();
    assert_eq!((udp.sent, udp.received, udp.lost, udp.out_of_order), (500, 500, 0, 0));
    let tcp = r.traffic.iter().find(|t| t.kind == "tcp").unwrap();
    assert_eq!((tcp.sent, tcp.received), (200_000, 200_000));
    let ping = r.traffic.iter().find(|t| t.kind == "ping").unwrap();
    assert_eq!((ping.sent, ping.received), (3, 3));
    let text = r.to_string();
    assert!(
        text.contains("HOSTS") && text.contains("LINKS") && text.contains("r1-r2"),
        "{text}"
    );
    let json = weft_emu::run_cli(&topo("line3.toml"), Duration::from_secs(1), true)
        .unwrap()
        .to_string();
    assert!(serde_json::from_str::<serde_json::Value>(&json).is_ok());
}

#[test]
fn fig2_pings_all_pairs_without_traffic() {
    let r = weft_emu::run_cli(&topo("promethos-fig2.toml"), Duration::from_secs(2), false).unwrap();
    assert_eq!(r.traffic.len(), 2);
    assert!(
        r.traffic
            .iter()
            .all(|t| t.kind == "ping" && t.received == t.sent && t.sent > 0),
        "{r}"
    );
}
