//! `weft pbr` and `weft filter` against running nodes: two `weft node run`
//! processes with the PBR daemon, linked by VXLAN on loopback (no root).
//!
//! * `weft pbr status ID` answers for a path that was released or refused
//!   (`docs/config.md`: finished paths are kept for `status`), and for a
//!   visit held for another initiator.
//! * Ports need their protocol: `--dport` without `-p` is refused by
//!   `weft pbr create` and `weft filter add`, as iptables refuses it, and
//!   `--help` says so.

mod support;

use std::path::Path;
use support::{free_udp_ports, start_node, vxlan_port, weft_at, TempDir};

/// Run a command that must succeed; stdout and stderr.
#[track_caller]
fn ok(socket: &Path, args: &[&str]) -> String {
    let o = weft_at(Some(socket), args);
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "weft {args:?} failed:\n{text}");
    text
}

/// Run a command that must fail; stdout and stderr.
#[track_caller]
fn fails(socket: &Path, args: &[&str]) -> String {
    let o = weft_at(Some(socket), args);
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "weft {args:?} should have failed:\n{text}");
    text
}

/// The path id a `pbr create` printed (`N@ADDRESS`, alone or after `path`).
fn path_id(out: &str) -> String {
    out.split_whitespace()
        .find(|w| w.split_once('@').is_some_and(|(n, _)| n.parse::<u32>().is_ok()))
        .unwrap_or_else(|| panic!("no path id in:\n{out}"))
        .to_string()
}

#[test]
fn status_answers_for_released_and_refused_paths() {
    let dir = TempDir::new("pbr-cli");
    let (pa, pb) = free_udp_ports();
    let a_cfg = format!(
        "[node]\nname = \"pbr-a\"\n\n[pbr]\n{}",
        vxlan_port("l0", pa, pb, 1, "10.9.0.1/24")
    );
    let b_cfg = format!(
        "[node]\nname = \"pbr-b\"\n\n[pbr]\n{}",
        vxlan_port("l0", pb, pa, 2, "10.9.0.2/24")
    );
    let (_a, a) = start_node(&dir.0, "pbr-a", &a_cfg);
    let (_b, b) = start_node(&dir.0, "pbr-b", &b_cfg);

    let up = path_id(&ok(
        &a,
        &["pbr", "create", "10.9.0.1:10.9.0.2", "-p", "udp", "--dport", "6060"],
    ));
    let st = ok(&a, &["pbr", "status", &up]);
    assert!(st.contains(&format!("path {up}  state up")), "{st}");
    assert!(st.contains("committed"), "the visits answered: {st}");
    // The egress holds a visit of a path it did not initiate: its status
    // there is what it knows.
    let st = ok(&b, &["pbr", "status", &up]);
    assert!(st.contains(&format!("path {up}  state up")), "{st}");
    ok(&a, &["pbr", "release", &up]);

    // Refused downstream: b has no class NOSUCH and no code server.
    let out = fails(
        &a,
        &[
            "pbr",
            "create",
            "10.9.0.1:10.9.0.2",
            "-p",
            "udp",
            "--dport",
            "6061",
            "--plugin",
            "10.9.0.2:NOSUCH:init",
        ],
    );
    let refused = path_id(&out);
    assert!(out.contains("unknown-class"), "{out}");

    let ls = ok(&a, &["pbr", "ls"]);
    for (id, state) in [(&up, "released"), (&refused, "refused")] {
        assert!(
            ls.lines().any(|l| l.starts_with(id.as_str()) && l.contains(state)),
            "{id} {state}:\n{ls}"
        );
        // What `ls` lists, `status` shows.
        let st = ok(&a, &["pbr", "status", id]);
        assert!(st.contains(&format!("path {id}  state {state}")), "{st}");
        assert!(!st.contains("initiated here"), "{st}");
    }
    let st = ok(&a, &["pbr", "status", &refused]);
    assert!(
        st.contains("hop 1 (10.9.0.2): unknown-class"),
        "the refusal is shown: {st}"
    );
    // The released path keeps the last STATUS reply taken while it was up.
    let st = ok(&a, &["pbr", "status", &up]);
    assert!(st.contains("committed"), "{st}");
    // A path nobody knows is still an error.
    let out = fails(&a, &["pbr", "status", "424242@10.9.0.1"]);
    assert!(out.contains("no path 424242@10.9.0.1"), "{out}");
}

#[test]
fn ports_without_a_protocol_are_refused_as_iptables_does() {
    let dir = TempDir::new("pbr-cli-ports");
    let (pa, pb) = free_udp_ports();
    let cfg = format!(
        "[node]\nname = \"ports\"\n\n[pbr]\n{}",
        vxlan_port("l0", pa, pb, 1, "10.9.0.1/24")
    );
    let (_n, n) = start_node(&dir.0, "ports", &cfg);
    let need = "need the protocol named: -p tcp or -p udp";

    // filter add
    let out = fails(
        &n,
        &[
            "filter",
            "add",
            "--dport",
            "6060",
            "--plugin",
            "counter",
            "--autoinstance",
        ],
    );
    assert!(out.contains(need), "{out}");
    let out = fails(&n, &["filter", "add", "-p", "icmp", "--sport", "1-9"]);
    assert!(out.contains("tcp and udp only, not icmp"), "{out}");
    assert_eq!(
        ok(&n, &["filter", "ls"]).lines().filter(|l| l.contains("dpt")).count(),
        0,
        "nothing was added"
    );
    for p in ["udp", "tcp"] {
        ok(
            &n,
            &[
                "filter",
                "add",
                "-p",
                p,
                "--dport",
                "6060",
                "--plugin",
                "counter",
                "--autoinstance",
            ],
        );
    }
    let ls = ok(&n, &["filter", "ls"]);
    assert!(ls.contains("udp dpt:6060") && ls.contains("tcp dpt:6060"), "{ls}");

    // pbr create
    let out = fails(
        &n,
        &["pbr", "create", "10.9.0.1:10.9.0.2", "--dport", "6060", "--no-wait"],
    );
    assert!(out.contains(need), "{out}");
    assert!(!ok(&n, &["pbr", "ls"]).contains("10.9.0.1 →"), "no path was created");

    // --help says it.
    for cmd in [&["filter", "add", "--help"][..], &["pbr", "create", "--help"]] {
        let help = ok(&n, cmd);
        let dport = help
            .lines()
            .skip_while(|l| !l.trim_start().starts_with("--dport"))
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        assert!(dport.contains("needs -p tcp or -p udp"), "{cmd:?}:\n{help}");
    }
}
