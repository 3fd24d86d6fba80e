//! `weft serve MODULE.wasm`: run a server module (a WebAssembly component
//! of the WASI HTTP proxy world) on this host, under the bounds a node
//! gives it — as `wasmtime serve` would, with Weft's host: a provider tries
//! its module before publishing it, and `scripts/bench-activecdn` measures
//! ActiveCDN with it. Runs on the command's single-threaded runtime: one
//! core. Outgoing requests may reach the `origin=` entries of `--config`
//! (loopback included, unlike on a node).

use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use weft_servers::{Bounds, ModuleConfig, Server, ServerHost, ServerSpec};

/// `weft serve` arguments.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The component (`.wasm`).
    pub module: PathBuf,
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: Vec<SocketAddr>,
    /// The module's configuration, as a SETUP's CONFIG (`origin=IP:PORT; …`).
    #[arg(long, default_value = "")]
    pub config: String,
    /// Linear memory cap, MiB.
    #[arg(long, default_value_t = 64)]
    pub memory_mib: usize,
    /// CPU budget per request, ms.
    #[arg(long, default_value_t = 1000)]
    pub cpu_ms: u64,
    /// Request timeout, s.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// Concurrent connections per listener.
    #[arg(long, default_value_t = 256)]
    pub connections: usize,
}

pub async fn run(a: ServeArgs) -> Result<()> {
    let bytes = std::fs::read(&a.module).with_context(|| format!("reading {}", a.module.display()))?;
    let config = ModuleConfig::parse(&a.config).context("--config")?;
    let host = ServerHost::new()?;
    let code = host
        .compile(&bytes)
        .with_context(|| format!("{}", a.module.display()))?;
    let server = Server::start(
        &host,
        code,
        ServerSpec {
            name: a.module.display().to_string(),
            listen: a.listen,
            config,
            deny: vec![],
            deny_loopback: false,
            bounds: Bounds {
                memory: a.memory_mib.max(1) << 20,
                cpu_budget: Duration::from_millis(a.cpu_ms.max(10)),
                request_timeout: Duration::from_secs(a.timeout.max(1)),
                max_connections: a.connections.max(1),
                ..Bounds::default()
            },
        },
    )
    .await?;
    for l in server.local_addrs() {
        println!("serving {} on http://{l}", a.module.display());
    }
    let _ = tokio::signal::ctrl_c().await;
    let stats: Vec<String> = server
        .stats()
        .snapshot()
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    println!("{}", stats.join(" "));
    Ok(())
}
