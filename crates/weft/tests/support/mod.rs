//! Shared by the tests that run `weft` as child processes (`cli.rs`,
//! `plugins_code_server.rs`) and the end-to-end tests with Linux hosts in
//! network namespaces (`netns.rs`, `datarouter_netns.rs`): skipping when not
//! root, `weft emu run --netns` networks and child processes that clean up
//! on drop, temporary directories, waiting.
#![allow(dead_code, unused_imports, unused_macros)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const WEFT: &str = env!("CARGO_BIN_EXE_weft");

pub fn root_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Why these tests cannot run here, if they cannot.
pub fn unsupported(tools: &[&str]) -> Option<String> {
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

#[macro_export]
macro_rules! require {
    ($name:expr, $($tool:expr),*) => {
        if let Some(why) = unsupported(&[$($tool),*]) {
            eprintln!("SKIP: {}: {why}", $name);
            return;
        }
    };
}

pub fn run_id(tag: &str) -> String {
    format!("{tag}{}", std::process::id() % 100_000)
}

/// A `weft emu run --netns` network, taken down on drop.
pub struct Net {
    pub id: String,
}

impl Net {
    pub fn up(topology: &Path, tag: &str) -> Net {
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

    pub fn ns(&self, name: &str) -> String {
        format!("weft-{}-{name}", self.id)
    }

    pub fn exec(&self, name: &str, args: &[&str]) -> Output {
        Command::new(WEFT)
            .args(["emu", "exec", "--id", &self.id, name, "--"])
            .args(args)
            .output()
            .unwrap()
    }

    pub fn ok(&self, name: &str, args: &[&str]) -> String {
        let o = self.exec(name, args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(o.status.success(), "{name}: {args:?} failed:\n{text}");
        text
    }

    pub fn spawn(&self, name: &str, args: &[&str]) -> Proc {
        Proc::spawn(Command::new("ip").args(["netns", "exec", &self.ns(name)]).args(args))
    }

    pub fn weft(&self, node: &str, args: &[&str]) -> String {
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
pub struct Proc(pub Child);

impl Proc {
    pub fn spawn(c: &mut Command) -> Proc {
        Proc(c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap())
    }

    /// Wait at most `d`; the exit status and output, or panic.
    pub fn wait(mut self, d: Duration) -> (bool, String) {
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

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let p = std::env::temp_dir().join(format!("weft-test-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn wait_until(what: &str, d: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + d;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The hop addresses a `traceroute -n` printed.
pub fn hops(out: &str) -> Vec<String> {
    out.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1).map(String::from))
        .collect()
}
