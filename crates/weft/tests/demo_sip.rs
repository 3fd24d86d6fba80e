//! `weft demo`, run once and checked on what it prints: its SIP step (the
//! KeepAlive Responder at the edge answers every keep-alive and the
//! server's view shows only the REGISTERs), its tenants scene running to
//! the end, and its ActiveCDN scene (PROBE's stack, the second fetch served
//! from the edge, the module's expiry). The demo itself fails when a step
//! does not hold; these check that the output says so too.

mod support;

use std::process::Command;
use std::sync::OnceLock;
use support::WEFT;

/// `weft demo`'s stdout, once for every test here (it fails the test when
/// the demo fails).
fn demo() -> &'static str {
    static OUT: OnceLock<Result<String, String>> = OnceLock::new();
    let r = OUT.get_or_init(|| {
        let o = Command::new(WEFT).arg("demo").output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        if o.status.success() {
            Ok(out)
        } else {
            Err(format!("{out}{}", String::from_utf8_lossy(&o.stderr)))
        }
    });
    match r {
        Ok(out) => out,
        Err(e) => panic!("weft demo failed:\n{e}"),
    }
}

fn skipped(out: &str) -> bool {
    if out.contains("(skipped: the plugins cannot be built here") {
        eprintln!("SKIP: the plugins cannot be built here");
        return true;
    }
    false
}

#[test]
fn demo_shows_keepalives_absorbed_at_the_edge() {
    let out = demo();
    // The tenants scene ran to its end (it fails the demo when alice or
    // plain forwarding lose what the schedulers promise them).
    assert!(out.contains("Tenants on one router"), "{out}");
    assert!(
        out.contains("bob is gone; alice and plain forwarding carry on"),
        "{out}"
    );
    assert!(out.contains("alice overall:"), "{out}");
    if skipped(out) {
        return;
    }
    assert!(
        out.contains("the server's view (h2:5060): 20 datagrams, 20 of them REGISTERs"),
        "{out}"
    );
    assert!(out.contains("server load saved: 60/80 = 75%"), "{out}");
}

/// The rows of the table printed after the line containing `after`: each
/// row's cells (split on runs of two spaces), the header left out.
fn table_after<'a>(out: &'a str, after: &str) -> Vec<Vec<&'a str>> {
    let mut lines = out.lines().skip_while(|l| !l.contains(after)).skip(1);
    lines
        .next()
        .unwrap_or_else(|| panic!("no table after {after:?}:\n{out}"));
    lines
        .take_while(|l| l.starts_with("    ") && !l.contains("$ weft"))
        .map(|l| l.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect())
        .collect()
}

/// The number before `request(s)` on the line containing `what`.
fn origin_count(out: &str, what: &str) -> (usize, String) {
    let mut lines = out.lines().skip_while(|l| !l.contains(what)).skip(1);
    let line = lines
        .next()
        .unwrap_or_else(|| panic!("no {what:?}:\n{out}"))
        .to_string();
    let n = line
        .split("the origin's log: ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no origin count in {line:?}"));
    (n, line)
}

#[test]
fn demo_deploys_activecdn_serves_from_the_edge_and_lets_it_expire() {
    let out = demo();
    assert!(out.contains("ActiveCDN (NetServ §6)"), "{out}");
    if skipped(out) {
        return;
    }
    let cdn = &out[out.find("ActiveCDN (NetServ §6)").unwrap()..];

    // PROBE's stack: the Weft nodes only (not the plain router x), in path
    // order from the provider, both ok.
    let probe = table_after(cdn, "provider$ weft signal probe --to 10.0.1.2");
    let nodes: Vec<&str> = probe.iter().map(|r| r[1]).collect();
    assert_eq!(nodes, ["r2", "r1"], "{cdn}");
    assert!(probe.iter().all(|r| r[3] == "ok"), "{cdn}");
    assert!(probe.iter().all(|r| r[4].contains("server-modules")), "{cdn}");
    // The SETUP's stack ends at the edge, installed everywhere.
    let setup = table_after(cdn, "provider$ weft signal setup");
    assert_eq!(setup.last().map(|r| r[1]), Some("r1"), "{cdn}");
    assert!(setup.iter().all(|r| r[3] == "ok"), "{cdn}");
    // r1 lists the session, serving on loopback.
    let ls = table_after(cdn, "r1$ weft signal ls");
    assert_eq!(ls.len(), 1, "{cdn}");
    assert!(
        ls[0][2] == "activecdn@1" && ls[0][4].starts_with("127.0.0.1:"),
        "{ls:?}"
    );

    // First fetch through the edge to the origin; the second from the
    // edge's cache, the origin's count unchanged; the provider's header on
    // both.
    let (first, l1) = origin_count(cdn, "# fetch 1");
    let (second, l2) = origin_count(cdn, "# fetch 2");
    assert_eq!(first, 1, "{l1}");
    assert_eq!(second, first, "served from the edge: {l2}");
    assert!(l1.starts_with("    200") && l1.contains("x-cache: MISS"), "{l1}");
    assert!(l2.starts_with("    200") && l2.contains("x-cache: HIT"), "{l2}");
    assert!(
        l1.contains("x-provider: acme") && l2.contains("x-provider: acme"),
        "{l1}\n{l2}"
    );

    // The lifetime runs out: no session left, the port closed.
    let gone = &cdn[cdn.find("the lifetime has run out").expect("expiry")..];
    let mut after = gone.lines().skip_while(|l| !l.contains("r1$ weft signal ls")).skip(1);
    assert_eq!(after.next().map(str::trim), Some("(no sessions)"), "{gone}");
    let third = gone
        .lines()
        .skip_while(|l| !l.contains("# fetch 3"))
        .nth(1)
        .unwrap_or_default();
    assert!(
        third.trim_start().starts_with("curl: ") && third.contains("gone"),
        "{third}"
    );
    assert!(gone.contains("sessions expired on r1 and r2: 2"), "{gone}");
}

#[test]
fn demo_scenes_are_numbered_in_order() {
    let out = demo();
    // Scene headers are the lines that start with "N. " after a blank line.
    let numbers: Vec<u32> = out
        .split("\n\n")
        .filter_map(|block| {
            let (n, rest) = block.split_once(". ")?;
            (!rest.is_empty()).then_some(())?;
            n.trim().parse().ok()
        })
        .collect();
    let expected: Vec<u32> = (1..=numbers.len() as u32).collect();
    assert!(numbers.len() >= 10, "scene headers found: {numbers:?}\n{out}");
    assert_eq!(numbers, expected, "scene numbers\n{out}");
}
