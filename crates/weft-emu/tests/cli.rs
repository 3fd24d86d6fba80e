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

/// The text report says what its numbers count: the unit of each traffic
/// row (tcp counts bytes, ping and udp packets), and under the tables what
/// LOSS, QUEUE and MTU drops are.
#[test]
fn report_table_names_units_and_drop_reasons() {
    let r = weft_emu::run_cli(&topo("line3.toml"), Duration::from_secs(3), false).unwrap();
    let text = r.to_string();
    let traffic: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != "TRAFFIC")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    let header: Vec<&str> = traffic[0].split_whitespace().collect();
    let unit_col = header.iter().position(|h| *h == "UNIT").expect("a UNIT column");
    let sent_col = header.iter().position(|h| *h == "SENT").unwrap();
    for t in &r.traffic {
        // FROM, "TO (ADDR)" (two words), KIND, UNIT, …: one column more
        // in the rows than in the header after TO.
        let row = traffic
            .iter()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|w| w[0] == t.from && w[3] == t.kind)
            .unwrap_or_else(|| panic!("no row for {} {}:\n{text}", t.from, t.kind));
        let want = if t.kind == "tcp" { "bytes" } else { "packets" };
        assert_eq!(row[unit_col + 1], want, "{text}");
        assert_eq!(t.unit, want);
        assert_eq!(row[sent_col + 1], t.sent.to_string(), "{text}");
    }
    assert!(text.contains(weft_emu::report::TRAFFIC_LEGEND), "{text}");
    assert!(text.contains(weft_emu::report::HOSTS_LEGEND), "{text}");
    let links = text.split("\nLINKS\n").nth(1).unwrap();
    assert!(
        links.ends_with(&format!("{}\n", weft_emu::report::LINKS_LEGEND)),
        "{text}"
    );
    for (col, says) in [
        ("LOSS", "`loss` rate"),
        ("QUEUE", "queue was full"),
        ("MTU", "larger than its `mtu`"),
    ] {
        assert!(links.lines().next().unwrap().contains(col), "{links}");
        let legend = weft_emu::report::LINKS_LEGEND.replace('\n', " ");
        let at = legend
            .find(&format!("{col} "))
            .unwrap_or_else(|| panic!("{col} unexplained"));
        assert!(legend[at..].contains(says), "{col}: {says:?}");
    }
    let json: serde_json::Value = serde_json::from_str(
        &weft_emu::run_cli(&topo("line3.toml"), Duration::from_secs(3), true)
            .unwrap()
            .to_string(),
    )
    .unwrap();
    let units: Vec<(&str, &str)> = json["traffic"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["kind"].as_str().unwrap(), t["unit"].as_str().unwrap()))
        .collect();
    assert!(
        units.contains(&("tcp", "bytes")) && units.contains(&("udp", "packets")),
        "{units:?}"
    );
}
