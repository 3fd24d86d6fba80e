//! `weft`: the Weft command line — runs a node (`weft node run`) and talks
//! to running nodes through their management API socket with the words
//! operators know: iptables-like `filter`, `ip route`-like `route`, LANA's
//! `fb`, PromethOS' `instance ctl|report`.
//!
//! Each noun is one module and one [`Command`] variant; adding a command
//! (`emu`, `demo`, `bench`, …) is a variant here plus a module.
//!
//! This binary knows the command line and how to print; everything about
//! nodes, files and the API is `weft-control`'s.

mod bench;
mod cli_client;
mod cli_droute;
mod cli_emu;
mod cli_fb;
mod cli_filter;
mod cli_instance;
mod cli_node;
mod cli_pbr;
mod cli_plugin;
mod cli_repo;
mod cli_route;
mod cli_send;
mod cli_token;
mod demo;
mod netns;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[global_allocator]
static ALLOC: bench::CountingAlloc = bench::CountingAlloc;

/// Weft: an active network node.
#[derive(Debug, Parser)]
#[command(name = "weft", version, about, propagate_version = true)]
struct Cli {
    /// The node to talk to: its API socket, or http://HOST:PORT (then
    /// WEFT_TOKEN or WEFT_KEY proves who you are; docs/security.md).
    #[arg(long, global = true, env = "WEFT_SOCKET", value_name = "PATH|URL")]
    node: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node, check a config file, show a running node.
    #[command(subcommand)]
    Node(cli_node::NodeCmd),
    /// Filters and their paths, iptables-style (add, ls, rm).
    #[command(subcommand)]
    Filter(cli_filter::FilterCmd),
    /// Instances: control port, reporting port, list, remove.
    #[command(subcommand)]
    Instance(cli_instance::InstanceCmd),
    /// Functional blocks, LANA-style: add|rm|ls classes; new|set|bind|unbind|replace instances.
    #[command(subcommand)]
    Fb(cli_fb::FbCmd),
    /// Routes, ip-route-style (add, ls, del).
    #[command(subcommand)]
    Route(cli_route::RouteCmd),
    /// Print the node's counters (Prometheus text format).
    Metrics,
    /// A narrated scenario on the in-process emulator: a running network
    /// recomposed under traffic (no root, no setup).
    Demo(demo::DemoArgs),
    /// The in-process emulator: run a topology file in virtual time.
    #[command(subcommand)]
    Emu(cli_emu::EmuCmd),
    /// Measure the engine's forwarding rate on in-memory ports (one core).
    Bench(bench::BenchArgs),
    /// WebAssembly plugins on a running node: load NAME[@HASH] from code servers, ls, unload.
    #[command(subcommand)]
    Plugin(cli_plugin::PluginCmd),
    /// Code servers: sign and publish plugins into a directory, serve it over HTTP.
    #[command(subcommand)]
    Repo(cli_repo::RepoCmd),
    /// Make an ed25519 key pair (signing plugins, signing API requests); prints the public key.
    Keygen(cli_repo::KeygenArgs),
    /// Make a bearer token for an API principal; prints it, and its token_sha256 line on stderr.
    Token(cli_token::TokenArgs),
    /// DataRouter class tables on a running node, the paper's `droute`:
    /// class CLASS add PATTERN DEST [alg ALG] [rewrite RULES] | rm | flush | ls.
    Droute(cli_droute::DrouteArgs),
    /// Send UDP datagrams carrying DataRouter tags (--tag DNS:joe.com …).
    Send(cli_send::SendArgs),
    /// Receive UDP datagrams and show their DataRouter tags.
    Recv(cli_send::RecvArgs),
    /// Explicit paths, PromethOS' `pbr`: plan the best walk through
    /// processing sites, create R1:R4:R3:… with plugins on chosen hops,
    /// status, release, ls.
    #[command(subcommand)]
    Pbr(cli_pbr::PbrCmd),
}

impl Command {
    /// Whether this command runs a node (and so logs at info by default).
    fn runs_node(&self) -> bool {
        matches!(
            self,
            Command::Node(cli_node::NodeCmd::Run(_)) | Command::Repo(cli_repo::RepoCmd::Serve { .. })
        )
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let node = cli.node;
    match cli.command {
        Command::Node(c) => cli_node::run(c, node).await,
        Command::Filter(c) => cli_filter::run(c, node).await,
        Command::Instance(c) => cli_instance::run(c, node).await,
        Command::Fb(c) => cli_fb::run(c, node).await,
        Command::Route(c) => cli_route::run(c, node).await,
        Command::Metrics => cli_client::metrics(node).await,
        Command::Bench(a) => bench::run(&a),
        Command::Emu(c) => cli_emu::run(c).await,
        Command::Demo(a) => demo::run(&a),
        Command::Plugin(c) => cli_plugin::run(c, node).await,
        Command::Repo(c) => cli_repo::run(c).await,
        Command::Keygen(a) => cli_repo::keygen(&a),
        Command::Token(a) => cli_token::run(&a),
        Command::Droute(a) => cli_droute::run(a, node).await,
        Command::Send(a) => cli_send::send(&a),
        Command::Recv(a) => cli_send::recv(&a),
        Command::Pbr(c) => cli_pbr::run(c, node).await,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = if cli.command.runs_node() { "info" } else { "warn" };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .init();
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("weft: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weft: {e:#}");
            ExitCode::FAILURE
        }
    }
}
