//! DataRouter end to end with real Linux hosts: `topologies/datarouter-line.toml`
//! brought up with `weft emu run --netns` (Weft nodes as processes, hosts
//! as namespaces with the Linux stack), tables loaded with `weft droute`,
//! a tagged datagram sent by `weft send` (the application API:
//! `IP_OPTIONS`) from h1 and read with its tags by `weft recv` on h4 — the
//! receiving Linux kernel hands the option to the application.
//!
//! Needs root and `ip netns`; otherwise it prints `SKIP:` and passes.

mod support;

use std::process::Command;
use std::time::Duration;
use support::*;

#[test]
fn datarouter_line_with_linux_hosts() {
    if let Some(why) = unsupported(&[]) {
        eprintln!("SKIP: datarouter netns: {why}");
        return;
    }
    let help = Command::new(WEFT).args(["emu", "run", "--help"]).output().unwrap();
    if !String::from_utf8_lossy(&help.stdout).contains("--netns") {
        eprintln!("SKIP: datarouter netns: `weft emu run --netns` is unavailable");
        return;
    }
    let net = Net::up(&root_dir().join("topologies/datarouter-line.toml"), "dr");
    net.weft(
        "dr1",
        &["droute", "class", "DNS", "add", "joe.com", "10.0.23.3", "alg", "suffix"],
    );
    net.weft(
        "dr3",
        &[
            "droute",
            "class",
            "URL",
            "add",
            "joe.com",
            "10.0.34.4",
            "alg",
            "suffix",
            "rewrite",
            "copy:prefix,next:strip",
        ],
    );
    net.weft(
        "dr4",
        &["droute", "class", "URL", "add", "/apple", "10.0.4.2", "alg", "prefix"],
    );
    let rx = net.spawn(
        "h4",
        &[WEFT, "recv", "7000", "--show-tags", "--count", "1", "--timeout", "20"],
    );
    std::thread::sleep(Duration::from_millis(300));
    // Neighbours resolve on the first datagrams; send a few.
    net.ok(
        "h1",
        &[
            WEFT,
            "send",
            "--tag",
            "DNS:joe.com",
            "--tag",
            "URL:joe.com/apple",
            "10.0.1.1",
            "7000",
            "--data",
            "GET",
            "--count",
            "5",
            "--interval-ms",
            "200",
        ],
    );
    let (ok, out) = rx.wait(Duration::from_secs(30));
    assert!(ok, "{out}");
    assert!(
        out.contains("tags [DNS/suffix:joe.com URL/suffix:joe.com/apple URL/prefix:/apple ^]: GET"),
        "{out}"
    );
}
