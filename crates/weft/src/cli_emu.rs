//! `weft emu run TOPOLOGY`: run a topology file on the in-process emulator
//! (virtual time, no root) and print what every host received.

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::time::Duration;

/// `weft emu …`
#[derive(Debug, clap::Subcommand)]
pub enum EmuCmd {
    /// Run a topology's `[[traffic]]` (or a ping between every pair of hosts)
    /// and print per-host, per-node and per-link results.
    Run {
        /// Topology file (see docs/topology.md; examples in topologies/).
        topology: PathBuf,
        /// Virtual time to run, in seconds.
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
}

/// Run an emulator command.
pub fn run(cmd: EmuCmd) -> Result<()> {
    match cmd {
        EmuCmd::Run {
            topology,
            duration,
            json,
        } => {
            let d = Duration::try_from_secs_f64(duration).context("--duration must be a positive number of seconds")?;
            let report =
                weft_emu::run_cli(&topology, d, json).with_context(|| format!("running {}", topology.display()))?;
            print!("{report}");
            Ok(())
        }
    }
}
