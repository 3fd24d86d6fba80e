//! `weft node run|check|show`.

use crate::cmd::common::{client, table, NodeArg};
use anyhow::Context;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use weft_control::api::NodeView;
use weft_control::config::default_socket;
use weft_control::plugins::Plugins;
use weft_control::{ApiServer, NodeConfig, NodeRunner};

#[derive(Debug, Subcommand)]
pub enum NodeCmd {
    /// Run a node in the foreground, serving the management API.
    Run(RunArgs),
    /// Validate a config file (errors name the line).
    Check {
        /// The node configuration file (TOML).
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
    },
    /// Show the node: ports, addresses, drop counters.
    Show(NodeArg),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The node configuration file (TOML).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,
    /// API socket (default: the config's [api] socket, else $WEFT_SOCKET,
    /// else /run/weft/<name>.sock as root, $XDG_RUNTIME_DIR/weft/<name>.sock
    /// otherwise).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Trust plugins signed by this key too: its 64 hex digits or the
    /// `.pub` file `weft keygen` wrote (repeatable; the code servers are
    /// `[plugins] repos`).
    #[arg(long, value_name = "KEY|FILE")]
    trust: Vec<String>,
}

pub async fn run(cmd: NodeCmd) -> anyhow::Result<()> {
    match cmd {
        NodeCmd::Run(a) => run_node(a).await,
        NodeCmd::Check { config } => {
            let cfg = NodeConfig::load(&config)?;
            // Plugins the file names are fetched and verified too.
            let plugins = Plugins::from_config(&cfg)?;
            let classes = match &plugins {
                Some(p) => p.preload(&cfg).await?,
                None => Vec::new(),
            };
            let (node, applied) = cfg.build_with(classes)?;
            println!(
                "{}: ok: node {}, {} ports, {} routes, {} instances, {} filters",
                config.display(),
                node.name(),
                node.port_count(),
                node.routes().len(),
                node.instances().len(),
                applied.filters.len()
            );
            Ok(())
        }
        NodeCmd::Show(a) => show(a.node).await,
    }
}

async fn run_node(a: RunArgs) -> anyhow::Result<()> {
    let mut cfg = NodeConfig::load(&a.config)?;
    for t in &a.trust {
        let key = match t.parse::<weft_repo::PublicKey>() {
            Ok(k) => k,
            Err(_) => weft_repo::PublicKey::read_file(std::path::Path::new(t))
                .with_context(|| format!("--trust {t}: neither a public key nor a key file"))?,
        };
        cfg.trust(key);
    }
    let api = cfg.api_settings()?;
    // Plugins the file names are fetched and verified before the node starts.
    let plugins = Plugins::from_config(&cfg)?;
    let classes = match &plugins {
        Some(p) => p.preload(&cfg).await?,
        None => Vec::new(),
    };
    let (mut node, _) = cfg.build_with(classes)?;
    let ports = weft_control::config::ports::open_drivers(&cfg, &node)?;
    let punt = weft_control::config::ports::open_punt(&cfg, &mut node)?;
    let socket = a
        .socket
        .or_else(|| cfg.api.socket.clone())
        // (A URL there names a node to talk to, not a socket to serve.)
        .or_else(|| {
            std::env::var("WEFT_SOCKET")
                .ok()
                .filter(|v| !v.is_empty() && !v.starts_with("http://"))
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| default_socket(cfg.name()));
    raise_fd_limit();
    let server = ApiServer::bind(&socket, &api).await?.with_plugins(plugins.clone());
    let runner = if ports.is_empty() && punt.is_none() {
        NodeRunner::spawn(node)
    } else {
        NodeRunner::spawn_with_io(node, ports, punt)
    }
    .context("starting the node thread")?;
    if let Some(p) = &cfg.pbr {
        let h = runner.handle();
        h.enable_pbr(p.get_ref().clone()).await?;
        // Plugin classes a path needs and the node lacks come from the code
        // servers of [plugins], checked as `weft plugin load` checks them.
        if let Some(pl) = &plugins {
            let f = pl.pbr_fetcher(h.clone(), tokio::runtime::Handle::current());
            h.call_pbr(move |_, pbr, _| pbr.set_fetcher(Box::new(f))).await?;
        }
    }
    // On-path signaling: the same principals as the API's.
    weft_control::daemons::enable_signal(&runner.handle(), &cfg, server.policy(), plugins.as_ref()).await?;
    // The NodeOS API: the same principals as the API's, by peer uid.
    if let Some(n) = &cfg.nodeos {
        runner
            .handle()
            .enable_nodeos_blocking(weft_control::nodeos::NodeOsConfig {
                dir: n.get_ref().dir.clone(),
                node_uid: rustix::process::geteuid().as_raw(),
                policy: server.policy(),
            })?
            .context("starting the NodeOS service")?;
        println!(
            "node {} NodeOS API on {}",
            cfg.name(),
            n.get_ref().dir.join("nodeos.sock").display()
        );
    }
    match server.tcp_addr() {
        Some(t) => println!("node {} serving on {} (tcp {t})", cfg.name(), socket.display()),
        None => println!("node {} serving on {}", cfg.name(), socket.display()),
    }
    server.run(runner.handle(), shutdown_signal()).await;
    tracing::info!(node = cfg.name(), "stopped");
    drop(runner);
    Ok(())
}

/// Raise the soft limit on open descriptors to the hard limit: the API's
/// connection caps keep strangers far below either, but a node with many
/// ports and plugins should not meet the 1,024 default first.
fn raise_fd_limit() {
    match weft_io::raise_nofile() {
        Ok((old, new)) if new > old => tracing::debug!(old, new, "raised the open-file limit"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM");
                std::future::pending::<()>().await
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}

async fn show(node: Option<PathBuf>) -> anyhow::Result<()> {
    let c = client(node)?;
    let v: NodeView = c.get("/v1/node").await?;
    println!("node {}  (pipeline version {})", v.name, v.version);
    for p in &v.ports {
        println!(
            "{}: {}  mtu {}  {}  link/ether {}",
            p.id,
            p.name,
            p.mtu,
            if p.up { "UP" } else { "DOWN" },
            p.mac
        );
        for a in &p.addrs {
            let fam = if a.addr().is_ipv4() { "inet" } else { "inet6" };
            println!("    {fam} {a}");
        }
        println!("    inet6 {}/64 scope link", p.link_local);
        println!(
            "    RX: {} packets {} bytes  TX: {} packets {} bytes",
            p.rx_packets, p.rx_bytes, p.tx_packets, p.tx_bytes
        );
    }
    if v.drops.is_empty() {
        println!("drops: none");
    } else {
        println!("drops:");
        let rows: Vec<Vec<String>> = v.drops.iter().map(|(k, n)| vec![k.clone(), n.to_string()]).collect();
        for l in table(&["reason", "packets"], &rows).lines() {
            println!("    {l}");
        }
    }
    println!("icmp errors sent: {}", v.icmp_errors_sent);
    Ok(())
}
