//! `weft`: the Weft command line — runs a node (`weft node run`) and talks
//! to running nodes through their management API socket with the words
//! operators know: iptables-like `filter`, `ip route`-like `route`, LANA's
//! `fb`, PromethOS' `instance ctl|report`.
//!
//! Each noun is one module under [`cmd`] and one [`Command`] variant here;
//! adding a command is a variant, a line of [`run`] and a module. This file
//! only lists and dispatches them.
//!
//! This binary knows the command line and how to print; everything about
//! nodes, files and the API is `weft-control`'s.

// Doc comments here are clap's help text, written for a terminal
// (`NAME[@HASH]`, `<name>.sock`), not rustdoc links or HTML.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

mod cmd;

use clap::{Parser, Subcommand};
use cmd::common::NodeArg;
use cmd::{
    bench, demo, domain, droute, emu, fb, filter, instance, keygen, metrics, node, pbr, plugin, policy, recv, repo,
    route, send, serve, signal, token,
};
use std::process::ExitCode;

#[global_allocator]
static ALLOC: bench::CountingAlloc = bench::CountingAlloc;

/// Weft: an active network node.
#[derive(Debug, Parser)]
#[command(name = "weft", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The commands. Those that talk to a running node carry [`NodeArg`]
/// (`--node`, `$WEFT_SOCKET`); the others do not offer it.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node, check a config file, show a running node.
    #[command(subcommand)]
    Node(node::NodeCmd),
    /// Filters and their chains, iptables-style (add, ls, rm).
    Filter {
        #[command(flatten)]
        node: NodeArg,
        #[command(subcommand)]
        cmd: filter::FilterCmd,
    },
    /// Instances: control port, reporting port, list, remove.
    Instance {
        #[command(flatten)]
        node: NodeArg,
        #[command(subcommand)]
        cmd: instance::InstanceCmd,
    },
    /// Functional blocks, LANA-style: add|rm|ls classes; new|set|bind|unbind|replace instances.
    Fb {
        #[command(flatten)]
        node: NodeArg,
        #[command(subcommand)]
        cmd: fb::FbCmd,
    },
    /// Routes, ip-route-style (add, replace, ls, del).
    Route {
        #[command(flatten)]
        node: NodeArg,
        #[command(subcommand)]
        cmd: route::RouteCmd,
    },
    /// Domains (Snow on Silk): tenants' accounts of CPU, memory, bandwidth
    /// and queues, and their schedulers (add, ls, show, rm, set).
    Domain {
        #[command(flatten)]
        node: NodeArg,
        #[command(subcommand)]
        cmd: domain::DomainCmd,
    },
    /// Print the node's counters (Prometheus text format).
    Metrics(NodeArg),
    /// A narrated scenario on the in-process emulator: a running network
    /// recomposed under traffic (no root, no setup).
    Demo(demo::DemoArgs),
    /// The in-process emulator: run a topology file in virtual time.
    #[command(subcommand)]
    Emu(emu::EmuCmd),
    /// Measure the engine's forwarding rate on in-memory ports (one core).
    Bench(bench::BenchArgs),
    /// WebAssembly plugins on a running node: load NAME[@HASH] from code servers, ls, unload.
    Plugin {
        #[command(flatten)]
        node: NodeArg,
        #[command(subcommand)]
        cmd: plugin::PluginCmd,
    },
    /// Code servers: sign and publish plugins into a directory, serve it over HTTP.
    #[command(subcommand)]
    Repo(repo::RepoCmd),
    /// Run a server module (a WASI HTTP proxy component) on this host, under a node's bounds.
    Serve(serve::ServeArgs),
    /// Make an ed25519 key pair (signing plugins, signing API requests); prints the public key.
    Keygen(keygen::KeygenArgs),
    /// Make a bearer token for an API principal; prints it, and its token_sha256 line on stderr.
    Token(token::TokenArgs),
    /// DataRouter class tables on a running node, the paper's `droute`:
    /// class CLASS add PATTERN DEST [alg ALG] [rewrite RULES] | rm | flush | ls.
    Droute {
        #[command(flatten)]
        node: NodeArg,
        #[command(flatten)]
        args: droute::DrouteArgs,
    },
    /// Send UDP datagrams carrying DataRouter tags (--tag DNS:joe.com …).
    Send(send::SendArgs),
    /// Receive UDP datagrams and show their DataRouter tags.
    Recv(recv::RecvArgs),
    /// Explicit paths, PromethOS' `pbr`: plan the best walk through
    /// processing sites, create R1:R4:R3:… with plugins on chosen hops,
    /// status, release, ls.
    #[command(subcommand)]
    Pbr(pbr::PbrCmd),
    /// On-path signaling (NetServ) from this host: setup, remove, probe,
    /// trigger modules at every Weft node toward a destination; ls a
    /// node's sessions.
    #[command(subcommand)]
    Signal(signal::SignalCmd),
    /// The node's principals and their rights (the API's and signaling's
    /// one policy).
    Policy {
        #[command(flatten)]
        node: NodeArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

impl Command {
    /// Whether this command runs a node (and so logs at info by default).
    fn runs_node(&self) -> bool {
        matches!(
            self,
            Command::Node(node::NodeCmd::Run(_)) | Command::Repo(repo::RepoCmd::Serve { .. }) | Command::Serve(_)
        )
    }
}

/// Hand the command to its module.
async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Node(c) => node::run(c).await,
        Command::Filter { node, cmd } => filter::run(cmd, node.node).await,
        Command::Instance { node, cmd } => instance::run(cmd, node.node).await,
        Command::Fb { node, cmd } => fb::run(cmd, node.node).await,
        Command::Route { node, cmd } => route::run(cmd, node.node).await,
        Command::Domain { node, cmd } => domain::run(cmd, node.node).await,
        Command::Metrics(node) => metrics::run(node.node).await,
        Command::Demo(a) => demo::run(&a),
        Command::Emu(c) => emu::run(c).await,
        Command::Bench(a) => bench::run(&a),
        Command::Plugin { node, cmd } => plugin::run(cmd, node.node).await,
        Command::Repo(c) => repo::run(c).await,
        Command::Serve(a) => serve::run(a).await,
        Command::Keygen(a) => keygen::run(&a),
        Command::Token(a) => token::run(&a),
        Command::Droute { node, args } => droute::run(args, node.node).await,
        Command::Send(a) => send::run(&a),
        Command::Recv(a) => recv::run(&a),
        Command::Pbr(c) => pbr::run(c).await,
        Command::Signal(c) => signal::run(c).await,
        Command::Policy { node, json } => policy::run(node, json).await,
    }
}

/// The exit status when stdout's reader has gone (`weft fb ls | head`):
/// 128 + SIGPIPE, what a shell reports for `seq 1000000 | head`'s `seq`.
const BROKEN_PIPE_EXIT: u8 = 141;

/// Rust ignores SIGPIPE, so printing to a pipe whose reader has gone fails
/// with EPIPE, and `print!` panics on that. This makes such a failure end
/// the program quietly with [`BROKEN_PIPE_EXIT`], as the tools `weft` is
/// piped among end, wherever the printing happens. (Restoring SIGPIPE's
/// default instead would also kill a node or a client that writes to a
/// socket its peer closed.)
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let p = info.payload();
        let msg = p
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| p.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if is_print_to_closed_pipe(msg) {
            std::process::exit(BROKEN_PIPE_EXIT.into());
        }
        default(info)
    }));
}

/// std's panic message for a failed `print!`/`eprint!` on EPIPE: "failed
/// printing to stdout: Broken pipe (os error 32)".
fn is_print_to_closed_pipe(msg: &str) -> bool {
    const EPIPE: i32 = 32;
    let epipe = std::io::Error::from_raw_os_error(EPIPE).to_string();
    msg.starts_with("failed printing to std") && msg.ends_with(&epipe)
}

fn main() -> ExitCode {
    quiet_on_broken_pipe();
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

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// The leaf commands that talk to a node. Every other leaf must not
    /// offer `--node`; a new command lands in one list or fails here.
    const TALK: &[&str] = &[
        "node show",
        "filter add",
        "filter ls",
        "filter rm",
        "instance ctl",
        "instance report",
        "instance ls",
        "instance rm",
        "fb add",
        "fb rm",
        "fb ls",
        "fb new",
        "fb set",
        "fb bind",
        "fb unbind",
        "fb replace",
        "route add",
        "route replace",
        "route ls",
        "route del",
        "domain add",
        "domain ls",
        "domain show",
        "domain rm",
        "domain set",
        "metrics",
        "plugin load",
        "plugin ls",
        "plugin unload",
        "droute",
        "pbr create",
        "pbr status",
        "pbr release",
        "pbr ls",
        "signal ls",
        "policy",
    ];
    /// Leaves that do not, and do not offer `--node`.
    const LOCAL: &[&str] = &[
        "node run",
        "node check",
        "demo",
        "emu run",
        "emu ls",
        "emu exec",
        "emu down",
        "bench",
        "repo publish",
        "serve",
        "repo serve",
        "repo ls",
        "keygen",
        "token",
        "send",
        "recv",
        "pbr plan",
        "signal setup",
        "signal remove",
        "signal probe",
        "signal trigger",
    ];
    /// Leaves that offer `--node` without talking to a node: none (`pbr
    /// plan` computes from a topology file, and `--node` is on the four
    /// other `pbr` commands alone).
    const LOCAL_WITH_NODE: &[&str] = &[];

    fn leaves(c: &clap::Command, path: &str, out: &mut Vec<(String, bool)>) {
        let subs: Vec<_> = c.get_subcommands().filter(|s| s.get_name() != "help").collect();
        if subs.is_empty() {
            out.push((path.trim().to_string(), c.get_arguments().any(|a| a.get_id() == "node")));
        }
        for s in subs {
            leaves(s, &format!("{path} {}", s.get_name()), out);
        }
    }

    #[test]
    fn node_option_exactly_on_commands_that_talk_to_a_node() {
        let mut cmd = Cli::command();
        cmd.build();
        let mut all = Vec::new();
        leaves(&cmd, "", &mut all);
        for (path, has) in &all {
            let talks = TALK.contains(&path.as_str());
            assert!(
                talks || LOCAL.contains(&path.as_str()),
                "`weft {path}`: add it to TALK or LOCAL"
            );
            let want = talks || LOCAL_WITH_NODE.contains(&path.as_str());
            assert_eq!(*has, want, "`weft {path}` --node");
        }
        assert_eq!(all.len(), TALK.len() + LOCAL.len(), "{all:?}");
    }
}
