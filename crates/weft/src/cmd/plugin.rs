//! `weft plugin load|ls|unload`: WebAssembly plugin classes on a running
//! node, fetched from its code servers and verified before they load.

use crate::cmd::common::{client, table};
use clap::Subcommand;
use std::path::PathBuf;
use weft_control::api::Done;
use weft_control::plugins::{PluginLoadRequest, PluginLoaded, PluginView};

#[derive(Debug, Subcommand)]
pub enum PluginCmd {
    /// Fetch NAME (or exactly NAME@HASH) from the node's code servers, verify hash, signature and ABI, and register the class.
    Load {
        /// NAME or NAME@HASH (sha256, or its first 8+ hex digits).
        spec: String,
        /// Fetch from this code server (http://HOST:PORT) instead of the configured ones.
        #[arg(long, value_name = "URL")]
        from: Option<String>,
    },
    /// List loaded plugins: name, version, hash, signer key id, instances; an older version still run by instances has its own row, marked (old).
    #[command(alias = "list")]
    Ls,
    /// Unregister a plugin class (refused while instances of it exist).
    #[command(alias = "rm")]
    Unload {
        /// The plugin's name.
        name: String,
    },
}

/// Print what a load checked (stderr: stdout stays for scripts).
pub fn print_steps(l: &PluginLoaded) {
    for s in &l.steps {
        eprintln!("  {s}");
    }
}

pub async fn run(cmd: PluginCmd, node: Option<PathBuf>) -> anyhow::Result<()> {
    let c = client(node)?;
    match cmd {
        PluginCmd::Load { spec, from } => {
            let req = PluginLoadRequest {
                name: spec,
                hash: None,
                from,
            };
            let r: PluginLoaded = c.post("/v1/plugins", &req).await?;
            print_steps(&r);
            println!(
                "loaded {} {} sha256 {} signed by {}",
                r.plugin.name, r.plugin.version, r.plugin.sha256, r.plugin.signer
            );
        }
        PluginCmd::Ls => {
            let v: Vec<PluginView> = c.get("/v1/plugins").await?;
            let rows: Vec<Vec<String>> = v
                .iter()
                .map(|p| {
                    vec![
                        p.info.name.clone(),
                        // Instances made before a newer version was loaded
                        // keep running theirs: that version's own row.
                        if p.current {
                            p.info.version.clone()
                        } else {
                            format!("{} (old)", p.info.version)
                        },
                        p.info.sha256.clone(),
                        p.info.signer.clone(),
                        if p.instances.is_empty() {
                            "-".into()
                        } else {
                            p.instances.join(",")
                        },
                    ]
                })
                .collect();
            print!(
                "{}",
                table(&["name", "version", "sha256", "signer", "instances"], &rows)
            );
        }
        PluginCmd::Unload { name } => {
            let _: Done = c.delete::<(), _>(&format!("/v1/plugins/{name}"), None).await?;
        }
    }
    Ok(())
}
