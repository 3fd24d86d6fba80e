//! `weft emu ls` and `weft emu exec` on a `weft emu run --netns` network
//! (root; without it each test prints `SKIP:`): the process ids `ls`
//! shows, and `exec` taking its command down with it when it is told to
//! stop.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// One node, one host: the smallest run with both kinds.
const TOPOLOGY: &str = r#"
routing = "shortest-path"
[[node]]
name = "r1"
[[host]]
name = "h1"
addr = "10.0.1.2/24"
[[link]]
a = "h1"
b = "r1:eth0"
b_addr = ["10.0.1.1/24"]
"#;

fn net(tag: &str) -> (TempDir, Net) {
    let tmp = TempDir::new(tag);
    let topo = tmp.0.join("one.toml");
    std::fs::write(&topo, TOPOLOGY).unwrap();
    let net = Net::up(&topo, tag);
    (tmp, net)
}

/// The processes in a namespace.
fn ns_pids(ns: &str) -> Vec<String> {
    let o = Command::new("ip").args(["netns", "pids", ns]).output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// `weft emu ls` gives each node's process id: a `weft` process in the
/// node's namespace. Hosts run no process of their own: `-`.
#[test]
fn emu_ls_shows_node_pids() {
    require!("emu ls", "nft");
    let (_tmp, net) = net("els");
    let o = Command::new(WEFT).args(["emu", "ls"]).output().unwrap();
    let ls = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{ls}");
    // This run's block: its `run ID  (FILE)` line up to the next run's.
    let run: Vec<&str> = ls
        .lines()
        .skip_while(|l| !l.starts_with(&format!("run {} ", net.id)))
        .enumerate()
        .take_while(|(i, l)| *i == 0 || !l.starts_with("run "))
        .map(|(_, l)| l)
        .collect();
    assert!(run.len() > 1, "run {} not listed:\n{ls}", net.id);
    let header: Vec<&str> = run[1].split_whitespace().collect();
    let pid_col = header
        .iter()
        .position(|h| *h == "pid")
        .unwrap_or_else(|| panic!("no pid column:\n{ls}"));
    let row = |name: &str| -> Vec<String> {
        run.iter()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row {name}:\n{ls}"))
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    let pid = &row("r1")[pid_col];
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert_eq!(comm.trim(), "weft", "pid {pid} of r1:\n{ls}");
    let o = Command::new("ip").args(["netns", "identify", pid]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), net.ns("r1"), "{ls}");
    assert!(ns_pids(&net.ns("r1")).contains(pid));
    assert_eq!(row("h1")[pid_col], "-", "{ls}");
}

/// SIGTERM (or SIGINT from `kill`) to `weft emu exec h1 -- sleep 60`
/// reaches the sleep: it is gone when exec returns, and exec's status is
/// the shell's 128 + signal.
#[test]
fn emu_exec_passes_sigterm_and_sigint_on() {
    require!("emu exec", "nft", "sleep", "kill");
    let (_tmp, net) = net("eex");
    let ns = net.ns("h1");
    for (sig, status) in [("TERM", 143), ("INT", 130)] {
        let mut exec = Proc(
            Command::new(WEFT)
                .args(["emu", "exec", "--id", &net.id, "h1", "--", "sleep", "60"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        wait_until("the sleep in h1", Duration::from_secs(10), || !ns_pids(&ns).is_empty());
        let st = Command::new("kill")
            .args([&format!("-{sig}"), &exec.0.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        let code = loop {
            if let Some(s) = exec.0.try_wait().unwrap() {
                break s.code();
            }
            assert!(Instant::now() < deadline, "exec did not end on SIG{sig}");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(code, Some(status), "SIG{sig}");
        let left = ns_pids(&ns);
        assert!(left.is_empty(), "SIG{sig} to exec left {left:?} running in h1");
    }
}
