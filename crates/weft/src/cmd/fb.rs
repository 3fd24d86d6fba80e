//! `weft fb …`: LANA's functional-block commands. `add`/`rm`/`ls` act on
//! classes; `new`/`set`/`bind`/`unbind`/`replace` on instances.

use crate::cmd::common::{client, table};
use anyhow::bail;
use clap::Subcommand;
use std::path::PathBuf;
use weft_control::api::{
    BindRequest, ClassRequest, ClassView, Done, InstanceCreated, InstanceRequest, ReplaceRequest, SetRequest,
    UnbindRequest,
};
use weft_dataplane::element::{Access, ClassKind, Handler};
use weft_dataplane::{FilterId, InstanceId};

#[derive(Debug, Subcommand)]
pub enum FbCmd {
    /// Register a class by name (a built-in one).
    Add {
        /// Class name.
        class: String,
    },
    /// Unregister a class (refused while it has instances).
    Rm {
        /// Class name.
        class: String,
    },
    /// List registered classes.
    #[command(alias = "list")]
    Ls {
        /// Also print each class's configuration and handlers.
        #[arg(long, short)]
        long: bool,
    },
    /// Create an instance of a class; prints its id (#N).
    New {
        /// Class name.
        class: String,
        /// Configuration.
        #[arg(long, value_name = "STR")]
        config: Option<String>,
        /// The domain to create it in, by name or id (default: the
        /// caller's home domain, else the root).
        #[arg(long, value_name = "DOMAIN")]
        domain: Option<String>,
    },
    /// Set configuration keys on an instance: key=value ...
    Set {
        /// Instance: '#N'.
        id: InstanceId,
        /// key=value pairs.
        #[arg(required = true)]
        pairs: Vec<String>,
    },
    /// Bind an instance into a filter's chain.
    Bind {
        /// Instance: '#N'.
        id: InstanceId,
        /// Filter id.
        filter: u32,
        /// Position in the path (0 = first; default: the end).
        #[arg(long, value_name = "N")]
        position: Option<usize>,
    },
    /// Take an instance out of a filter's chain.
    Unbind {
        /// Instance: '#N'.
        id: InstanceId,
        /// Filter id.
        filter: u32,
    },
    /// Replace an instance by one of another class, keeping its id and bindings (and its state unless --drop-state).
    Replace {
        /// Instance: '#N'.
        id: InstanceId,
        /// The new class.
        class: String,
        /// A new configuration (default: keep the current one).
        #[arg(long, value_name = "STR")]
        config: Option<String>,
        /// Start the new element fresh instead of carrying the state over.
        #[arg(long)]
        drop_state: bool,
    },
}

/// Handlers as `weft fb ls --long` and `weft instance ls --long` print
/// them: name, access, one line, indented under their class or instance.
pub(crate) fn handler_table(handlers: &[Handler]) -> String {
    let rows: Vec<Vec<String>> = handlers
        .iter()
        .map(|h| {
            let access = match h.access {
                Access::Read => "read",
                Access::Write => "write",
            };
            vec![h.name.to_string(), access.into(), h.about.to_string()]
        })
        .collect();
    table(&["handler", "access", "about"], &rows)
        .lines()
        .map(|l| format!("  {l}\n"))
        .collect()
}

pub async fn run(cmd: FbCmd, node: Option<PathBuf>) -> anyhow::Result<()> {
    let c = client(node)?;
    let inst = |id: InstanceId, what: &str| format!("/v1/instances/{}/{what}", id.0);
    match cmd {
        FbCmd::Add { class } => {
            let _: Done = c.post("/v1/classes", &ClassRequest { name: class }).await?;
        }
        FbCmd::Rm { class } => {
            let _: Done = c.delete::<(), _>(&format!("/v1/classes/{class}"), None).await?;
        }
        FbCmd::Ls { long } => {
            let cs: Vec<ClassView> = c.get("/v1/classes").await?;
            let rows: Vec<Vec<String>> = cs
                .iter()
                .map(|k| {
                    let kind = match &k.kind {
                        ClassKind::Native => "native".to_string(),
                        ClassKind::Wasm { hash } => format!("wasm {}", &hash[..hash.len().min(12)]),
                    };
                    vec![k.name.clone(), kind, k.doc.summary.clone()]
                })
                .collect();
            print!("{}", table(&["class", "kind", "summary"], &rows));
            if long {
                for k in &cs {
                    println!("\n{}\n  config: {}", k.name, k.doc.config);
                    print!("{}", handler_table(&k.doc.handlers));
                }
            }
        }
        FbCmd::New { class, config, domain } => {
            let r: InstanceCreated = c
                .post("/v1/instances", &InstanceRequest { class, config, domain })
                .await?;
            println!("{}", r.instance);
        }
        FbCmd::Set { id, pairs } => {
            for p in pairs {
                let Some((key, value)) = p.split_once('=') else {
                    bail!("bad setting {p:?}: expected key=value");
                };
                let req = SetRequest {
                    key: key.to_string(),
                    value: value.to_string(),
                };
                let _: Done = c.post(&inst(id, "set"), &req).await?;
            }
        }
        FbCmd::Bind { id, filter, position } => {
            let req = BindRequest {
                filter: FilterId(filter),
                position,
            };
            let _: Done = c.post(&inst(id, "bind"), &req).await?;
        }
        FbCmd::Unbind { id, filter } => {
            let req = UnbindRequest {
                filter: FilterId(filter),
            };
            let _: Done = c.post(&inst(id, "unbind"), &req).await?;
        }
        FbCmd::Replace {
            id,
            class,
            config,
            drop_state,
        } => {
            let req = ReplaceRequest {
                class,
                config,
                keep_state: !drop_state,
            };
            let _: Done = c.post(&inst(id, "replace"), &req).await?;
        }
    }
    Ok(())
}
