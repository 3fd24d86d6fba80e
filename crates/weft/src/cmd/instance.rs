//! `weft instance ctl|report|ls|rm`: PromethOS' control and reporting ports.

use crate::cmd::common::{client, table};
use clap::Subcommand;
use std::path::PathBuf;
use weft_control::api::{ControlReply, ControlRequest, Done, InstanceView};
use weft_dataplane::InstanceId;

#[derive(Debug, Subcommand)]
pub enum InstanceCmd {
    /// Send a request to an instance's control port; prints the reply.
    Ctl {
        /// Instance: '#N'.
        id: InstanceId,
        /// The request (words are joined with spaces), e.g. 131072.
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true)]
        request: Vec<String>,
    },
    /// Print an instance's report (JSON).
    Report {
        /// Instance: '#N'.
        id: InstanceId,
    },
    /// List instances.
    #[command(alias = "list")]
    Ls {
        /// Also print each instance's handlers.
        #[arg(long, short)]
        long: bool,
    },
    /// Remove an instance (refused while it is on a path).
    #[command(alias = "del")]
    Rm {
        /// Instance: '#N'.
        id: InstanceId,
    },
}

pub async fn run(cmd: InstanceCmd, node: Option<PathBuf>) -> anyhow::Result<()> {
    let c = client(node)?;
    match cmd {
        InstanceCmd::Ctl { id, request } => {
            let req = ControlRequest {
                request: request.join(" "),
            };
            let r: ControlReply = c.post(&format!("/v1/instances/{}/control", id.0), &req).await?;
            println!("{}", r.reply);
        }
        InstanceCmd::Report { id } => {
            let v: serde_json::Value = c.get(&format!("/v1/instances/{}/report", id.0)).await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        InstanceCmd::Ls { long } => {
            let is: Vec<InstanceView> = c.get("/v1/instances").await?;
            let rows: Vec<Vec<String>> = is
                .iter()
                .map(|i| {
                    let fs: Vec<String> = i.filters.iter().map(|f| f.to_string()).collect();
                    vec![
                        format!("{}{}", i.class, i.id),
                        if i.config.is_empty() {
                            "-".into()
                        } else {
                            i.config.clone()
                        },
                        if fs.is_empty() { "-".into() } else { fs.join(",") },
                        if i.domain.is_empty() {
                            "-".into()
                        } else {
                            i.domain.clone()
                        },
                        i.stats.packets.to_string(),
                        i.stats.dropped.to_string(),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(&["id", "config", "filters", "domain", "packets", "dropped"], &rows)
            );
            if long {
                for i in &is {
                    println!("\n{}{}", i.class, i.id);
                    print!("{}", crate::cmd::fb::handler_table(&i.handlers));
                }
            }
        }
        InstanceCmd::Rm { id } => {
            let _: Done = c.delete::<(), _>(&format!("/v1/instances/{}", id.0), None).await?;
        }
    }
    Ok(())
}
