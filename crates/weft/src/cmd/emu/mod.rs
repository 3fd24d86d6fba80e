//! `weft emu run TOPOLOGY`: run a topology file on the in-process emulator
//! (virtual time, no root) and print what every host received.
//!
//! `weft emu run --netns TOPOLOGY`: bring the same topology up on network
//! namespaces with real `weft node` processes and Linux hosts (root); `weft
//! emu ls`, `weft emu exec NAME -- CMD`, `weft emu down` (see
//! [`netns`]).

mod netns;

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::time::Duration;

/// `weft emu …`
#[derive(Debug, clap::Subcommand)]
pub enum EmuCmd {
    /// Run a topology's `[[traffic]]` (or a ping between every pair of hosts)
    /// and print per-traffic, per-host, per-node and per-link results, each
    /// table followed by what its columns count (packets or bytes, which
    /// drops).
    Run {
        /// Topology file (see docs/topology.md; examples in topologies/).
        topology: PathBuf,
        /// Virtual time to run, in seconds.
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
        /// Bring the topology up on network namespaces (root): node
        /// processes on veth, Linux hosts. Returns once it is up; `weft emu
        /// down` removes it.
        #[arg(long)]
        netns: bool,
        /// Run id for --netns (names namespaces `weft-ID-NAME`); default: random.
        #[arg(long, value_name = "ID")]
        id: Option<String>,
        /// With --netns: stay in the foreground and take the network down
        /// on Ctrl-C / SIGTERM.
        #[arg(long)]
        wait: bool,
        /// With --netns: nodes also serve their API on TCP 7070 of their
        /// addresses, to a bearer token made for the run (in api.token of
        /// the run's directory). Without it the API is on Unix sockets only.
        #[arg(long, requires = "netns")]
        api_tcp: bool,
    },
    /// List the netns runs that are up, with their nodes and hosts.
    Ls,
    /// Run a command inside a netns run's host or node namespace (nodes:
    /// with WEFT_SOCKET set, so `weft filter ls` talks to that node).
    Exec {
        /// Which run (default: the only one).
        #[arg(long, value_name = "ID")]
        id: Option<String>,
        /// Host or node name.
        name: String,
        /// The command and its arguments (after `--`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
    },
    /// Take a netns run down: processes, namespaces, veths, state.
    Down {
        /// Which run (default: the only one).
        #[arg(long, value_name = "ID")]
        id: Option<String>,
        /// Every run that is up.
        #[arg(long)]
        all: bool,
    },
}

/// Run an emulator command.
pub async fn run(cmd: EmuCmd) -> Result<()> {
    match cmd {
        EmuCmd::Run {
            topology,
            netns: true,
            id,
            wait,
            api_tcp,
            ..
        } => {
            let st = netns::up(&topology, id, api_tcp)?;
            netns::print_runs(std::slice::from_ref(&st));
            if !wait {
                println!(
                    "up; `weft emu exec [--id {}] NAME -- CMD`, `weft emu down --id {}`",
                    st.id, st.id
                );
                return Ok(());
            }
            println!("up; Ctrl-C takes it down");
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            netns::down(&st);
            Ok(())
        }
        EmuCmd::Ls => {
            netns::print_runs(&netns::runs());
            Ok(())
        }
        EmuCmd::Exec { id, name, command } => {
            let st = netns::find_run(id.as_deref())?;
            let code = netns::exec(&st, &name, &command).await?;
            std::process::exit(code);
        }
        EmuCmd::Down { id, all } => {
            let runs = if all {
                netns::runs()
            } else {
                vec![netns::find_run(id.as_deref())?]
            };
            for st in &runs {
                netns::down(st);
                println!("run {} is down", st.id);
            }
            Ok(())
        }
        EmuCmd::Run {
            topology,
            duration,
            json,
            ..
        } => {
            let d = Duration::try_from_secs_f64(duration).context("--duration must be a positive number of seconds")?;
            let report =
                weft_emu::run_cli(&topology, d, json).with_context(|| format!("running {}", topology.display()))?;
            print!("{report}");
            Ok(())
        }
    }
}
