//! The demo's plugin step: user code from a code server. A developer makes
//! a key, publishes the NetMonitor WebAssembly plugin signed, and serves it
//! from a code server on loopback; r2, trusting that key, loads it on
//! demand through PromethOS' one-liner, traffic runs through it, and a
//! tampered copy is refused. Skipped with a note when the example plugins
//! cannot be built here.

use super::{cmd, filter, say, truncate, Scratch};
use anyhow::{anyhow, Result};
use std::net::IpAddr;
use std::time::Duration;
use weft_dataplane::Match;
use weft_emu::Emulator;
use weft_repo::server::RepoServer;
use weft_repo::{store, Loader, LoaderConfig, Manifest, SecretKey};
use weft_wasm::{HostConfig, WasmHost};

const PLUGIN: &str = "netmon-wasm";
const PORT: u16 = 7070;

/// Run the step on `emu` (after the video steps); `h2` is the receiver.
pub(super) fn run(emu: &mut Emulator, h2: IpAddr) -> Result<()> {
    say("\n7. User code from a code server: a WebAssembly plugin, signed by its author, fetched by r2 on demand.");
    let plugins = match weft_wasm::plugins::ensure_built() {
        Ok(p) => p,
        Err(e) => {
            say(&format!("  (skipped: the example plugins cannot be built here: {e})"));
            return Ok(());
        }
    };
    let module = std::fs::read(plugins.join("netmonitor.wasm"))?;
    let scratch = Scratch(std::env::temp_dir().join(format!("weft-demo-{}", std::process::id())));
    let repo = scratch.0.join("repo");

    let key = SecretKey::generate()?;
    cmd("dev", "keygen --out dev.key");
    println!("  {}", key.public());
    cmd(
        "dev",
        &format!("repo publish plugins/netmonitor.wasm --key dev.key --name {PLUGIN} --version 1.0 --dir repo"),
    );
    let m = store::publish(&repo, &module, PLUGIN, Some("1.0"), &key)?;
    println!(
        "  published {} {} sha256 {}… ({} bytes) signed by {}",
        m.name,
        m.version,
        &m.sha256[..16],
        m.size,
        m.signer.id()
    );
    let server = RepoServer::spawn(repo.clone(), "127.0.0.1:0".parse()?)?;
    cmd("dev", &format!("repo serve repo --listen {}", server.addr()));
    println!(
        "  r2's config: [plugins] trusted_keys = [\"{}…\"]  repos = [\"{}\"]",
        &key.public().to_string()[..16],
        server.url()
    );
    let loader = Loader::new(
        LoaderConfig {
            trusted_keys: vec![key.public()],
            repos: vec![server.url()],
            cache_dir: Some(scratch.0.join("cache")),
        },
        WasmHost::new(HostConfig::default())?,
    );

    let m_udp = Match {
        proto: Some(17),
        dport: Some((PORT, PORT)),
        ..Default::default()
    };
    cmd(
        "r2",
        &format!("filter add -p udp --dport {PORT} --class {PLUGIN} --autoinstance   # r2 lacks the class"),
    );
    let l = loader.load_blocking(&PLUGIN.parse().map_err(|e: String| anyhow!(e))?, None)?;
    for s in &l.steps {
        println!("  {s}");
    }
    emu.node_mut("r2").upsert_class(l.class.element_class());
    let (nm, _) = filter(emu.node_mut("r2"), m_udp, (PLUGIN, ""))?;
    println!("  {nm}");

    emu.host_mut("h2").udp_bind(PORT)?;
    let sent = 500;
    emu.host_mut("h1").udp_flow_count(h2, PORT, 1000.0, 120, sent)?;
    emu.run_for(Duration::from_millis(700));
    let got = emu.host("h2").udp_received().iter().filter(|d| d.dport == PORT).count();
    println!("  h1 → h2:{PORT}: {sent} datagrams sent, {got} received through {PLUGIN}{nm} on r2");
    cmd("r2", &format!("instance report '{nm}'"));
    let r = emu.node("r2").report(nm)?;
    let flows = r["element"]["plugin"]["flows"].as_array().cloned().unwrap_or_default();
    for f in flows.iter().take(2) {
        println!("  {}", truncate(&f.to_string(), 120));
    }
    println!("  wasm: {}", truncate(&r["element"]["wasm"].to_string(), 150));

    say("  A tampered copy (module changed after signing) is refused before any of it is compiled:");
    let mut evil = module.clone();
    let last = evil.len() - 1;
    evil[last] ^= 0x01;
    let m = Manifest::new("netmon-evil", "1.0", &module, key.public());
    store::write_package(&repo, &m, &evil, Some(&m.sign(&key)))?;
    cmd(
        "r2",
        &format!("filter add -p udp --dport {PORT} --class netmon-evil --autoinstance"),
    );
    match loader.load_blocking(&"netmon-evil".parse().map_err(|e: String| anyhow!(e))?, None) {
        Ok(_) => return Err(anyhow!("a tampered plugin was accepted")),
        Err(e) => println!("  weft: {e}"),
    }
    if got as u64 != sent {
        return Err(anyhow!("the plugin step lost datagrams: {got} of {sent}"));
    }
    drop(server);
    Ok(())
}
