//! Shared by the tests that run `weft` as child processes (`cli.rs`,
//! `plugins_code_server.rs`, `pbr_cli.rs`) and the end-to-end tests with
//! Linux hosts in network namespaces (`netns.rs`, `datarouter_netns.rs`):
//! skipping when not root, `weft node run` processes and `weft emu run
//! --netns` networks and child processes that clean up on drop, temporary
//! directories, waiting.
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
        Net::up_with(topology, tag, &[])
    }

    /// [`Net::up`] with more `weft emu run` options (`--api-tcp`).
    pub fn up_with(topology: &Path, tag: &str, options: &[&str]) -> Net {
        let id = run_id(tag);
        let net = Net { id: id.clone() };
        let out = Command::new(WEFT)
            .args(["emu", "run", "--netns", "--id", &id])
            .args(options)
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

    /// The run's directory (state, node configs and logs).
    pub fn dir(&self) -> PathBuf {
        std::env::var_os("WEFT_EMU_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/run/weft-emu"))
            .join(&self.id)
    }

    /// The run's API token (`--api-tcp`).
    pub fn api_token(&self) -> String {
        let t = std::fs::read_to_string(self.dir().join("api.token")).unwrap();
        t.trim().to_string()
    }

    /// A node's log so far.
    pub fn log(&self, node: &str) -> String {
        std::fs::read_to_string(self.dir().join(format!("{node}.log"))).unwrap_or_default()
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

/// Spawn `weft ARGS` (logging warnings to stderr); the process and the
/// first line it printed.
pub fn spawn_weft(args: &[&str]) -> (Proc, String) {
    let mut child = Command::new(WEFT)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let p = Proc(child);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
    (p, line)
}

/// Two free UDP ports on loopback.
pub fn free_udp_ports() -> (u16, u16) {
    let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    (a.local_addr().unwrap().port(), b.local_addr().unwrap().port())
}

/// `weft node run` on `config` (written to `dir/NAME.toml`), killed on
/// drop; waits for its API socket, which it returns.
pub fn start_node(dir: &Path, name: &str, config: &str) -> (Proc, PathBuf) {
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(&cfg, config).unwrap();
    let socket = dir.join(format!("{name}.sock"));
    let (node, line) = spawn_weft(&[
        "node",
        "run",
        "--config",
        cfg.to_str().unwrap(),
        "--socket",
        socket.to_str().unwrap(),
    ]);
    assert!(line.contains("serving on"), "{line}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(Instant::now() < deadline, "node {name} did not open its socket");
        std::thread::sleep(Duration::from_millis(20));
    }
    (node, socket)
}

/// A `[[port]]` of kind `vxlan` on loopback (UDP `local` → `remote`), for
/// linking `weft node run` processes without root.
pub fn vxlan_port(name: &str, local: u16, remote: u16, mac: u8, addr: &str) -> String {
    format!(
        "\n[[port]]\nname = \"{name}\"\nkind = \"vxlan\"\nmac = \"02:00:00:00:09:{mac:02x}\"\nlocal = \"127.0.0.1:{local}\"\nremote = \"127.0.0.1:{remote}\"\nvni = 7077\naddrs = [\"{addr}\"]\n"
    )
}

/// Run `weft ARGS` against the node whose API socket is `socket` (none:
/// commands that talk to no node).
pub fn weft_at(socket: Option<&Path>, args: &[&str]) -> Output {
    let mut c = Command::new(WEFT);
    c.args(args).env_remove("RUST_LOG");
    if let Some(s) = socket {
        c.env("WEFT_SOCKET", s);
    }
    c.output().unwrap()
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

/// tcpdump writing every frame on one interface of a namespace to a file,
/// until [`NsCapture::frames`] stops it (killed on drop otherwise).
///
/// A Weft node's AF_PACKET ports send with `PACKET_QDISC_BYPASS`, which
/// skips the kernel's capture taps: in a node's namespace tcpdump sees the
/// frames the node *receives* on a port, not those it sends. Capture a link
/// at its receiving end.
pub struct NsCapture {
    proc: Proc,
    file: PathBuf,
}

impl NsCapture {
    /// Start tcpdump in `net`'s member `name` on `ifname`, writing under
    /// `dir`; returns once tcpdump says it is listening.
    pub fn start(net: &Net, name: &str, ifname: &str, dir: &Path) -> NsCapture {
        Self::start_in(&net.ns(name), ifname, dir)
    }

    /// Start tcpdump in network namespace `netns` on `ifname`. No filter:
    /// `udp` would not match IPv6 packets whose UDP header follows a
    /// routing header.
    pub fn start_in(netns: &str, ifname: &str, dir: &Path) -> NsCapture {
        let name = netns;
        let file = dir.join(format!("{netns}-{ifname}.pcap"));
        let mut proc = Proc::spawn(Command::new("ip").args([
            "netns",
            "exec",
            netns,
            "tcpdump",
            "-Z",
            "root",
            "--immediate-mode",
            "-i",
            ifname,
            "-n",
            "-U",
            "-w",
            &file.display().to_string(),
        ]));
        let err = proc.0.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for l in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                if l.contains("listening on") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(15))
            .unwrap_or_else(|_| panic!("tcpdump on {name} {ifname} did not start"));
        NsCapture { proc, file }
    }

    /// The pcap file being written (it stays after [`NsCapture::frames`],
    /// for tshark).
    pub fn file(&self) -> PathBuf {
        self.file.clone()
    }

    /// Stop tcpdump (SIGINT flushes the file) and read the frames.
    pub fn frames(self) -> Vec<Vec<u8>> {
        let _ = Command::new("kill")
            .args(["-INT", &self.proc.0.id().to_string()])
            .status();
        let _ = self.proc.wait(Duration::from_secs(5));
        read_pcap(&std::fs::read(&self.file).unwrap())
    }
}

/// The frames of a classic pcap file (either byte order, µs or ns stamps,
/// Ethernet link type).
pub fn read_pcap(b: &[u8]) -> Vec<Vec<u8>> {
    assert!(b.len() >= 24, "short pcap file");
    let le = match b[..4] {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => panic!("not a pcap file: {:02x?}", &b[..4]),
    };
    let u32_at = |o: usize| {
        let w = [b[o], b[o + 1], b[o + 2], b[o + 3]];
        if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    };
    assert_eq!(u32_at(20), 1, "pcap link type: Ethernet");
    let mut v = Vec::new();
    let mut off = 24;
    while off + 16 <= b.len() {
        let incl = u32_at(off + 8) as usize;
        let data = off + 16;
        if data + incl > b.len() {
            break;
        }
        v.push(b[data..data + incl].to_vec());
        off = data + incl;
    }
    v
}

/// What tshark decodes in a pcap file: one row per frame matching the
/// display filter `filter`, the `fields` in order (Wireshark's own
/// dissectors: an independent reading of what is on the wire).
pub fn tshark_fields(file: &Path, filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
    let mut c = Command::new("tshark");
    c.arg("-r").arg(file).args(["-Y", filter, "-T", "fields"]);
    for f in fields {
        c.args(["-e", f]);
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "tshark: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| l.split('\t').map(String::from).collect())
        .collect()
}

/// Send one UDP datagram with `data` as its payload from `net`'s member
/// `name` (a Linux host) with socat.
pub fn socat_send(net: &Net, name: &str, dst: &str, port: u16, data: &[u8]) {
    let mut c = Command::new("ip");
    c.args([
        "netns",
        "exec",
        &net.ns(name),
        "socat",
        "-u",
        "-",
        &format!("UDP-SENDTO:{dst}:{port}"),
    ])
    .stdin(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    assert!(child.wait().unwrap().success(), "socat send from {name}");
}

/// A socat on `net`'s member `name` appending every UDP datagram to `port`
/// to a file (stopped on drop).
pub struct UdpSink {
    _proc: Proc,
    pub file: PathBuf,
}

impl UdpSink {
    pub fn start(net: &Net, name: &str, port: u16, dir: &Path) -> UdpSink {
        let file = dir.join(format!("{name}-{port}.out"));
        let proc = net.spawn(
            name,
            &[
                "socat",
                "-u",
                &format!("UDP-RECV:{port}"),
                &format!("CREATE:{}", file.display()),
            ],
        );
        UdpSink { _proc: proc, file }
    }

    /// The bytes received so far.
    pub fn got(&self) -> Vec<u8> {
        std::fs::read(&self.file).unwrap_or_default()
    }
}
