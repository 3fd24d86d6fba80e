//! Signed plugins end to end through the CLI: `weft keygen`, `weft repo
//! publish`, `weft repo serve` and `weft node run` as child processes; a
//! node fetches, verifies and loads plugins on demand through `weft filter
//! add --plugin NAME --autoinstance` and `weft plugin load`, and refuses
//! tampered, unsigned, unknown-key and wrong-ABI packages, saying which.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;
use support::{free_udp_ports, spawn_weft as spawn, start_node, unsupported, vxlan_port, weft_at, Proc, TempDir, WEFT};
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
    // One sentence, not the parser's debug dump of the magic bytes.
    assert!(
        err.contains("refusing to publish junk") && err.contains("not a WebAssembly module: it starts with 23 20"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
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
    // NetMonitor declares its head (docs/plugin-abi.md, "Head and rest").
    assert!(out.contains("frame head 32 bytes"), "{out}");
    // The C plugin by exact hash: no head declared, whole frames.
    let spec = format!("c-counter@{}", s.ccounter_hash);
    let out = ok(sock, &["plugin", "load", &spec]);
    assert!(out.contains("whole frames"), "{out}");
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

/// `weft repo publish FILE --name NAME --version VERSION` into the setup's
/// repository (served at once: the server reads the directory per request).
fn publish(s: &Setup, file: &str, name: &str, version: &str) -> String {
    let plugins = weft_wasm::plugins::ensure_built().unwrap();
    let f = plugins.join(file);
    let (key, repo) = (s.dir.join("key"), s.dir.join("repo"));
    ok(
        None,
        &[
            "repo",
            "publish",
            f.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--name",
            name,
            "--version",
            version,
            "--dir",
            repo.to_str().unwrap(),
        ],
    );
    let listed = store::list(&repo).unwrap();
    let m = listed.iter().find(|m| m.name == name && m.version == version).unwrap();
    m.sha256.clone()
}

/// The `plugin ls` rows of `name`.
fn plugin_rows(sock: Option<&Path>, name: &str) -> Vec<String> {
    ok(sock, &["plugin", "ls"])
        .lines()
        .filter(|l| l.split_whitespace().next() == Some(name))
        .map(String::from)
        .collect()
}

/// Loading a new version registers it for new instances; instances made
/// before keep the old code until replaced, and `plugin ls` lists each
/// version with the instances that run it.
#[test]
fn plugin_ls_lists_each_version_with_the_instances_running_it() {
    let s = setup("plugins-versions");
    let sock = Some(s.socket.as_path());
    let h1 = publish(&s, "counter.wasm", "wcount", "1.0");
    let h2 = publish(&s, "counter_v2.wasm", "wcount", "2.0");
    ok(sock, &["plugin", "load", &format!("wcount@{h1}")]);
    let add = |dport: &str| {
        let out = ok(
            sock,
            &[
                "filter",
                "add",
                "-p",
                "udp",
                "--dport",
                dport,
                "--plugin",
                "wcount",
                "--autoinstance",
            ],
        );
        out.lines().next().unwrap().to_string()
    };
    assert_eq!(add("7001"), "#1");
    let rows = plugin_rows(sock, "wcount");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        rows[0].contains(" 1.0 ") && rows[0].contains(&h1) && rows[0].ends_with("#1"),
        "{rows:?}"
    );

    // Version 2 (the latest) for new instances; #1 keeps version 1.
    ok(sock, &["plugin", "load", "wcount"]);
    assert_eq!(add("7002"), "#2");
    let rows = plugin_rows(sock, "wcount");
    assert_eq!(rows.len(), 2, "{rows:?}");
    let row = |h: &str| {
        rows.iter()
            .find(|r| r.contains(h))
            .unwrap_or_else(|| panic!("{h} in {rows:?}"))
    };
    assert!(row(&h1).contains("1.0 (old)") && row(&h1).ends_with("#1"), "{rows:?}");
    assert!(row(&h2).contains(" 2.0 ") && row(&h2).ends_with("#2"), "{rows:?}");
    // The instances' own reports agree (version 2 adds "version": 2).
    let report =
        |id: &str| -> serde_json::Value { serde_json::from_str(&ok(sock, &["instance", "report", id])).unwrap() };
    assert!(report("#1")["element"]["plugin"].get("version").is_none());
    assert_eq!(report("#2")["element"]["plugin"]["version"], 2);
    assert_eq!(report("#1")["element"]["wasm"]["hash"], h1.as_str());

    // Moving #1 to the current version leaves no instance on version 1.
    ok(sock, &["fb", "replace", "#1", "wcount"]);
    assert_eq!(report("#1")["element"]["plugin"]["version"], 2);
    let rows = plugin_rows(sock, "wcount");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].contains(&h2) && rows[0].ends_with("#1,#2"), "{rows:?}");
}

/// A plugin's configuration reaches it as written through the CLI, and its
/// report appears under `.element.plugin` of `instance report`.
#[test]
fn a_plugin_configured_through_the_cli_receives_the_text_as_written() {
    let s = setup("plugins-config");
    let sock = Some(s.socket.as_path());
    publish(&s, "echo.wasm", "wecho", "1");
    let written = "block=5001,5002 note=\"a, b\" b=2 b=1 on_fault=pass";
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
            "wecho",
            "--autoinstance",
            "--config",
            written,
        ],
    );
    let id = out.lines().next().unwrap().to_string();
    let r: serde_json::Value = serde_json::from_str(&ok(sock, &["instance", "report", &id])).unwrap();
    assert_eq!(
        r["element"]["plugin"]["config"], "block=5001,5002 note=\"a, b\" b=2 b=1",
        "{r}"
    );
    assert_eq!(r["element"]["wasm"]["on_fault"], "pass", "{r}");
    assert_eq!(r["config"], written, "the instance's configuration as written: {r}");
    let ls = ok(sock, &["instance", "ls"]);
    assert!(ls.contains(written), "{ls}");
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

/// docs/code-server.md and docs/topology.md: a `weft emu run --netns` node
/// has its own network namespace, whose loopback is not the machine's, so
/// a code server on the machine's 127.0.0.1 is out of its reach; run the
/// server in the node's namespace (`ip netns exec weft-ID-NODE weft repo
/// serve DIR`) — the repository directory is shared, namespaces share the
/// file system — and the node fetches from its own loopback.
#[test]
fn netns_node_fetches_from_a_code_server_in_its_own_namespace() {
    require!("netns_node_fetches_from_a_code_server_in_its_own_namespace", "nft");
    let plugins = weft_wasm::plugins::ensure_built().expect("plugins/build.sh builds the example plugins");
    let dir = TempDir::new("plugins-netns");
    let d = &dir.0;
    let key = d.join("key");
    let repo = d.join("repo");
    let pubkey = ok(None, &["keygen", "--out", key.to_str().unwrap()])
        .lines()
        .next()
        .unwrap()
        .trim()
        .to_string();
    let echo = plugins.join("echo.wasm");
    ok(
        None,
        &[
            "repo",
            "publish",
            echo.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--name",
            "wecho",
            "--dir",
            repo.to_str().unwrap(),
        ],
    );
    // A server on the machine's loopback, listed in the node's config (a
    // node fetches only from the servers its config lists).
    let (_outside, line) = spawn(&["repo", "serve", repo.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_string();
    let topo = d.join("one.toml");
    std::fs::write(
        &topo,
        format!(
            r#"
[[node]]
name = "r1"
[node.config.plugins]
trusted_keys = ["{pubkey}"]
repos = ["http://127.0.0.1:7080", "{url}"]
cache_dir = "{}"

[[host]]
name = "h1"
addr = "10.0.1.2/24"

[[link]]
a = "r1:eth0"
b = "h1"
a_addr = "10.0.1.1/24"
"#,
            d.join("cache").display()
        ),
    )
    .unwrap();
    let net = support::Net::up(&topo, "pcs");

    // The machine's loopback is not the node's.
    let o = net.exec("r1", &[WEFT, "plugin", "load", "wecho", "--from", &url]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains(&format!("{url}/v1/plugins/wecho/manifest: cannot connect")),
        "a server on the machine's loopback answered the node, or another error: {err}"
    );

    // A server in the node's namespace, on the URL its config names.
    let _inside = net.spawn(
        "r1",
        &[
            WEFT,
            "repo",
            "serve",
            repo.to_str().unwrap(),
            "--listen",
            "127.0.0.1:7080",
        ],
    );
    let mut loaded = String::new();
    support::wait_until("the node's code server", Duration::from_secs(15), || {
        let o = net.exec("r1", &[WEFT, "plugin", "load", "wecho"]);
        loaded = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
        o.status.success()
    });
    assert!(
        loaded.contains("signature ok") && loaded.contains("loaded wecho"),
        "{loaded}"
    );
    let out = net.weft(
        "r1",
        &[
            "filter",
            "add",
            "-p",
            "udp",
            "--dport",
            "6060",
            "--plugin",
            "wecho",
            "--autoinstance",
            "--config",
            "a,b",
        ],
    );
    let id = out.lines().next().unwrap();
    let r: serde_json::Value = serde_json::from_str(&net.weft("r1", &["instance", "report", id])).unwrap();
    assert_eq!(r["element"]["plugin"]["config"], "a,b", "{r}");
}
