//! Signed plugins end to end through the CLI: `weft keygen`, `weft repo
//! publish`, `weft repo serve` and `weft node run` as child processes; a
//! node fetches, verifies and loads plugins on demand through `weft filter
//! add --plugin NAME --autoinstance` and `weft plugin load`, and refuses
//! tampered, unsigned, unknown-key and wrong-ABI packages, saying which.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use support::{free_udp_ports, spawn_weft as spawn, start_node, vxlan_port, weft_at, Proc, TempDir};
use weft_repo::{store, Manifest, SecretKey};

fn run(socket: Option<&Path>, args: &[&str]) -> Output {
    weft_at(socket, args)
}

#[track_caller]
fn ok(socket: Option<&Path>, args: &[&str]) -> String {
    let o = run(socket, args);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "weft {args:?} failed: {err}\n{out}");
    out + &err
}

#[track_caller]
fn fails(socket: Option<&Path>, args: &[&str]) -> String {
    let o = run(socket, args);
    assert!(!o.status.success(), "weft {args:?} should have failed");
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// A module that is a valid plugin in every respect except that it speaks
/// plugin ABI v2.
const ABI_V2: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "weft_abi_version") (result i32) i32.const 2)
  (func (export "weft_alloc") (param i32) (result i32) i32.const 8)
  (func (export "weft_init") (param i32 i32) (result i32) i32.const 0)
  (func (export "weft_process") (param i32 i32) (result i32) i32.const 0))"#;

/// A code server with good and bad packages, and a node trusting `key`.
struct Setup {
    _dir: TempDir,
    _server: Proc,
    _node: Proc,
    socket: PathBuf,
    netmon_hash: String,
    ccounter_hash: String,
    /// The node's config text, to derive other configs from.
    config: String,
    dir: PathBuf,
}

impl Setup {
    /// `weft node check` on the node's config plus `extra`.
    fn check(&self, extra: &str) -> Output {
        let p = self.dir.join("check.toml");
        std::fs::write(
            &p,
            format!("{}{extra}", self.config.replace("cache\"", "cache-check\"")),
        )
        .unwrap();
        run(None, &["node", "check", "--config", p.to_str().unwrap()])
    }
}

fn setup(tag: &str) -> Setup {
    let plugins = weft_wasm::plugins::ensure_built().expect("plugins/build.sh builds the example plugins");
    let dir = TempDir::new(tag);
    let d = &dir.0;
    let key = d.join("key");
    let key_s = key.to_str().unwrap();
    let repo = d.join("repo");
    let repo_s = repo.to_str().unwrap();

    // The operator's commands: a key, two plugins published signed.
    let pubkey = ok(None, &["keygen", "--out", key_s])
        .lines()
        .next()
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(pubkey.len(), 64, "{pubkey}");
    let nm = plugins.join("netmonitor.wasm");
    let out = ok(
        None,
        &[
            "repo",
            "publish",
            nm.to_str().unwrap(),
            "--key",
            key_s,
            "--name",
            "wnetmon",
            "--version",
            "1.0",
            "--dir",
            repo_s,
        ],
    );
    assert!(out.contains("published wnetmon 1.0"), "{out}");
    let cc = plugins.join("c-counter.wasm");
    ok(
        None,
        &["repo", "publish", cc.to_str().unwrap(), "--key", key_s, "--dir", repo_s],
    );
    let err = fails(
        None,
        &[
            "repo",
            "publish",
            d.join("key.pub").to_str().unwrap(),
            "--key",
            key_s,
            "--name",
            "junk",
            "--dir",
            repo_s,
        ],
    );
    assert!(
        err.contains("refusing to publish junk") && err.contains("malformed"),
        "{err}"
    );
    let listed = store::list(&repo).unwrap();
    let hash = |n: &str| listed.iter().find(|m| m.name == n).unwrap().sha256.clone();
    let (netmon_hash, ccounter_hash) = (hash("wnetmon"), hash("c-counter"));

    // Bad packages, written directly (publish would refuse to make them).
    let k = SecretKey::read_file(&key).unwrap();
    let counter = std::fs::read(plugins.join("counter.wasm")).unwrap();
    // Tampered: signed, then the module changed on the server.
    let m = Manifest::new("tampered", "1", &counter, k.public());
    let sig = m.sign(&k);
    let mut evil = counter.clone();
    let last = evil.len() - 1;
    evil[last] ^= 1;
    store::write_package(&repo, &m, &evil, Some(&sig)).unwrap();
    // Unsigned.
    let m = Manifest::new("unsigned", "1", &counter, k.public());
    store::write_package(&repo, &m, &counter, None).unwrap();
    // Signed by a key the node does not trust.
    let stranger = SecretKey::generate().unwrap();
    let m = Manifest::new("stranger", "1", &counter, stranger.public());
    store::write_package(&repo, &m, &counter, Some(&m.sign(&stranger))).unwrap();
    // A forged signature: the trusted key's id, another key's signature.
    let m = Manifest::new("forged", "1", &counter, k.public());
    store::write_package(&repo, &m, &counter, Some(&m.sign(&stranger))).unwrap();
    // Wrong ABI: properly signed by the trusted key, ABI v2 inside.
    let v2 = wat::parse_str(ABI_V2).unwrap();
    let m = Manifest::new("abi2", "1", &v2, k.public());
    store::write_package(&repo, &m, &v2, Some(&m.sign(&k))).unwrap();

    let (server, line) = spawn(&["repo", "serve", repo_s, "--listen", "127.0.0.1:0"]);
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_string();

    let config = format!(
        r#"
[node]
name = "{tag}"

[[port]]
name = "eth0"
mac = "02:00:00:00:00:01"
addrs = ["10.0.0.1/24"]

[plugins]
trusted_keys = ["{pubkey}"]
repos = ["{url}"]
cache_dir = "{}"
memory_mib = 32

[pbr]
"#,
        d.join("cache").display()
    );
    let (node, socket) = start_node(d, "n", &config);
    let dir_path = dir.0.clone();
    Setup {
        _dir: dir,
        _server: server,
        _node: node,
        socket,
        netmon_hash,
        ccounter_hash,
        config,
        dir: dir_path,
    }
}

const FILTER_WITH: &str = r#"
[[filter]]
proto = "udp"
dport = 6060
plugin = "PLUGIN"
autoinstance = true
"#;

#[test]
fn node_loads_signed_rust_and_c_plugins_on_demand_from_a_code_server() {
    let s = setup("plugins-ok");
    let sock = Some(s.socket.as_path());
    // PromethOS' one-liner with a class the node lacks: fetched, verified,
    // loaded, instantiated.
    let out = ok(
        sock,
        &[
            "filter",
            "add",
            "-p",
            "udp",
            "--dport",
            "6060",
            "--plugin",
            "wnetmon",
            "--autoinstance",
            "--config",
            "",
        ],
    );
    assert!(out.starts_with("#1\n"), "{out}");
    for step in ["hash ok", "signature ok", "ABI ok", "compiled"] {
        assert!(out.contains(step), "missing {step:?} in {out}");
    }
    // The C plugin by exact hash.
    let spec = format!("c-counter@{}", s.ccounter_hash);
    let out = ok(sock, &["plugin", "load", &spec]);
    assert!(
        out.contains(&format!("loaded c-counter {}", &s.ccounter_hash[..12])),
        "{out}"
    );
    let out = ok(
        sock,
        &[
            "filter",
            "add",
            "-p",
            "udp",
            "--dport",
            "7000",
            "--plugin",
            &spec,
            "--autoinstance",
        ],
    );
    assert!(out.starts_with("#2\n"), "{out}");
    assert!(!out.contains("loaded on demand"), "already loaded: no fetch: {out}");

    let ls = ok(sock, &["plugin", "ls"]);
    let row = |n: &str| {
        ls.lines()
            .find(|l| l.starts_with(n))
            .unwrap_or_else(|| panic!("{n} in {ls}"))
    };
    assert!(
        row("wnetmon").contains(&s.netmon_hash) && row("wnetmon").ends_with("#1"),
        "{ls}"
    );
    assert!(
        row("c-counter").contains(&s.ccounter_hash) && row("c-counter").ends_with("#2"),
        "{ls}"
    );
    let fb = ok(sock, &["fb", "ls"]);
    let wn = fb.lines().find(|l| l.starts_with("wnetmon")).unwrap();
    assert!(wn.contains(&format!("wasm {}", &s.netmon_hash[..12])), "{fb}");

    // Unload is refused while an instance exists, then allowed.
    let err = fails(sock, &["plugin", "unload", "c-counter"]);
    assert!(err.contains("#2"), "{err}");
    ok(sock, &["filter", "rm", "2"]);
    ok(sock, &["instance", "rm", "#2"]);
    ok(sock, &["plugin", "unload", "c-counter"]);
    assert!(!ok(sock, &["plugin", "ls"]).contains("c-counter"));
    // A second load of the same hash comes from the node's cache.
    let out = ok(sock, &["plugin", "load", &spec]);
    assert!(out.contains("from cache"), "{out}");

    // A config file's filter naming a plugin: fetched before the node starts.
    let o = s.check(&FILTER_WITH.replace("PLUGIN", "wnetmon"));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("1 instances, 1 filters"), "{out}");
}

/// An explicit path (`weft pbr create`) whose plugin the first hop lacks:
/// that node's PBR daemon fetches it from the code server, through the same
/// checks as `weft plugin load`, during the setup; a tampered one refuses
/// the path, naming the hop and the failed check. Two node processes
/// linked by VXLAN on loopback; the emulator's multi-hop version is
/// `tests/pbr_fetch.rs`.
#[test]
fn explicit_path_fetches_its_plugin_from_the_code_server() {
    let s = setup("plugins-pbr");
    let (pa, pb) = free_udp_ports();
    let link = |local: u16, remote: u16, mac: u8, addr: &str| vxlan_port("l0", local, remote, mac, addr);
    // Node a: the code server and trusted key of `setup`, its own cache.
    let a_cfg = s
        .config
        .replace("name = \"plugins-pbr\"", "name = \"pbr-a\"")
        .replace("cache\"", "cache-a\"")
        + &link(pa, pb, 1, "10.9.0.1/24");
    let b_cfg = format!("[node]\nname = \"pbr-b\"\n\n[pbr]\n{}", link(pb, pa, 2, "10.9.0.2/24"));
    let (_a, a) = start_node(&s.dir, "pbr-a", &a_cfg);
    let (_b, _) = start_node(&s.dir, "pbr-b", &b_cfg);
    let sock = Some(a.as_path());
    assert!(!ok(sock, &["plugin", "ls"]).contains("wnetmon"));

    let create = |dport: &str, class: &str| {
        let plugin = format!("10.9.0.1:{class}:init");
        run(
            sock,
            &[
                "pbr",
                "create",
                "10.9.0.1:10.9.0.2",
                "-p",
                "udp",
                "--dport",
                dport,
                "--plugin",
                &plugin,
            ],
        )
    };
    let o = create("6060", "WNETMON");
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{}{out}", String::from_utf8_lossy(&o.stderr));
    let id = out.trim();
    let status = ok(sock, &["pbr", "status", id]);
    assert!(status.contains("state up") && status.contains("wnetmon#"), "{status}");
    let ls = ok(sock, &["plugin", "ls"]);
    assert!(
        ls.lines()
            .any(|l| l.starts_with("wnetmon") && l.contains(&s.netmon_hash)),
        "{ls}"
    );
    ok(sock, &["pbr", "release", id]);

    let o = create("6061", "tampered");
    let err = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("class-rejected") && err.contains("hash mismatch") && err.contains("hop 0"),
        "{err}"
    );
    assert!(!ok(sock, &["plugin", "ls"]).contains("tampered"));
}

#[test]
fn node_refuses_tampered_unsigned_unknown_key_and_wrong_abi_plugins() {
    let s = setup("plugins-bad");
    let sock = Some(s.socket.as_path());
    for (name, why) in [
        ("tampered", "tampered module (hash mismatch)"),
        ("unsigned", "unsigned module"),
        ("stranger", "unknown key"),
        ("forged", "bad signature"),
        ("abi2", "ABI mismatch: module speaks plugin ABI v2"),
    ] {
        let err = fails(sock, &["plugin", "load", name]);
        assert!(err.contains(why), "{name}: expected {why:?} in {err}");
        // The one-liner refuses the same way and leaves nothing behind.
        let err = fails(
            sock,
            &[
                "filter",
                "add",
                "-p",
                "udp",
                "--dport",
                "6060",
                "--plugin",
                name,
                "--autoinstance",
            ],
        );
        assert!(err.contains(why), "{name}: expected {why:?} in {err}");
    }
    let hash_prefix = &s.netmon_hash[..8];
    let err = fails(sock, &["plugin", "load", &format!("wnetmon@{}", "0".repeat(8))]);
    assert!(err.contains("not found"), "{err}");
    let err = fails(sock, &["plugin", "load", "nosuch"]);
    assert!(err.contains("plugin nosuch not found"), "{err}");
    assert!(ok(sock, &["filter", "ls"]).lines().all(|l| !l.contains("tampered")));
    assert!(
        ok(sock, &["instance", "ls"]).trim().lines().count() <= 1,
        "no instances created"
    );
    assert!(!ok(sock, &["plugin", "ls"]).contains("tampered"));
    // In a config file, the refusal points at the line naming the plugin.
    let o = s.check(&FILTER_WITH.replace("PLUGIN", "tampered"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    let line = s.config.lines().count() + 5;
    assert!(
        err.contains(&format!("check.toml:{line}:10: refused tampered")) && err.contains("hash mismatch"),
        "{err}"
    );
    // The good plugin still loads afterwards.
    ok(sock, &["plugin", "load", &format!("wnetmon@{hash_prefix}")]);
}
