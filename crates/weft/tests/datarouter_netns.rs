//! DataRouter end to end with real Linux hosts: `topologies/datarouter-line.toml`
//! brought up with `weft emu run --netns` (Weft nodes as processes, hosts
//! as namespaces with the Linux stack), tables loaded with `weft droute`,
//! a tagged datagram sent by `weft send` (the application API:
//! `IP_OPTIONS`) from h1 and read with its tags by `weft recv` on h4 — the
//! receiving Linux kernel hands the option to the application.
//!
//! Needs root and `ip netns`; otherwise it prints `SKIP:` and passes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const WEFT: &str = env!("CARGO_BIN_EXE_weft");

fn root_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Why these tests cannot run here, if they cannot.
fn unsupported(tools: &[&str]) -> Option<String> {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(String::from))
        })
        .unwrap_or_default();
    if uid != "0" {
        return Some("not root (network namespaces need CAP_SYS_ADMIN)".into());
    }
    let ok = Command::new("ip")
        .args(["netns", "list"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        return Some("`ip netns` is unavailable (install iproute2)".into());
    }
    for t in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !found {
            return Some(format!("{t} is not installed (scripts/test installs it as root)"));
        }
    }
    None
}

fn run_id(tag: &str) -> String {
    format!("{tag}{}", std::process::id() % 100_000)
}

/// A `weft emu run --netns` network, taken down on drop.
struct Net {
    id: String,
}

impl Net {
    fn up(topology: &Path, tag: &str) -> Net {
        let id = run_id(tag);
        let net = Net { id: id.clone() };
        let out = Command::new(WEFT)
            .args(["emu", "run", "--netns", "--id", &id])
            .arg(topology)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "emu run --netns: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        net
    }

    fn ns(&self, name: &str) -> String {
        format!("weft-{}-{name}", self.id)
    }

    fn exec(&self, name: &str, args: &[&str]) -> Output {
        Command::new(WEFT)
            .args(["emu", "exec", "--id", &self.id, name, "--"])
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, name: &str, args: &[&str]) -> String {
        let o = self.exec(name, args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(o.status.success(), "{name}: {args:?} failed:\n{text}");
        text
    }

    fn spawn(&self, name: &str, args: &[&str]) -> Proc {
        Proc::spawn(Command::new("ip").args(["netns", "exec", &self.ns(name)]).args(args))
    }

    fn weft(&self, node: &str, args: &[&str]) -> String {
        let mut v = vec![WEFT];
        v.extend_from_slice(args);
        self.ok(node, &v)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = Command::new(WEFT)
            .args(["emu", "down", "--id", &self.id])
            .stdout(Stdio::null())
            .status();
    }
}

/// A child process, killed on drop.
struct Proc(Child);

impl Proc {
    fn spawn(c: &mut Command) -> Proc {
        Proc(c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap())
    }

    /// Wait at most `d`; the exit status and output, or panic.
    fn wait(mut self, d: Duration) -> (bool, String) {
        let deadline = Instant::now() + d;
        loop {
            if let Some(s) = self.0.try_wait().unwrap() {
                let mut out = String::new();
                if let Some(mut o) = self.0.stdout.take() {
                    let _ = std::io::Read::read_to_string(&mut o, &mut out);
                }
                if let Some(mut e) = self.0.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut out);
                }
                return (s.success(), out);
            }
            assert!(Instant::now() < deadline, "process did not finish in {d:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

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
