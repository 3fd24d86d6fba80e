//! `weft droute class CLASS add|rm|flush|ls …`: the paper's table loader,
//! sent as control requests to the node's `datarouter` instance.

use crate::cmd::common::client;
use anyhow::{bail, Context};
use clap::Args;
use std::path::PathBuf;
use weft_control::api::{ControlReply, ControlRequest, InstanceView};

/// `weft droute WORDS…`
#[derive(Debug, Args)]
pub struct DrouteArgs {
    /// The datarouter instance ('#N'); default: the node's only one.
    #[arg(long)]
    pub instance: Option<String>,
    /// `class CLASS add PATTERN DEST [alg long|exact|prefix|suffix|range|closest] [rewrite RULES]`,
    /// `class CLASS rm PATTERN [alg ALG]`, `class CLASS flush`, `class CLASS ls`,
    /// `class CLASS miss drop|icmp`, or `ls`.
    #[arg(required = true, num_args = 1.., allow_hyphen_values = true)]
    pub words: Vec<String>,
}

/// Quote words that hold spaces again (the shell took the quotes away).
fn join(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            if w.is_empty() || w.chars().any(char::is_whitespace) {
                format!("\"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""))
            } else {
                w.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub async fn run(a: DrouteArgs, node: Option<PathBuf>) -> anyhow::Result<()> {
    let request = join(&a.words);
    // Check the words here so a typo is reported before the node is asked.
    weft_datarouter::command::parse_line(&request).map_err(|e| anyhow::anyhow!("{e}"))?;
    let c = client(node)?;
    let id = match a.instance {
        Some(i) => i.trim_start_matches('#').to_string(),
        None => {
            let is: Vec<InstanceView> = c.get("/v1/instances").await?;
            let drs: Vec<&InstanceView> = is.iter().filter(|i| i.class == "datarouter").collect();
            match drs.as_slice() {
                [one] => one.id.trim_start_matches('#').to_string(),
                [] => bail!(
                    "the node is not a DataRouter: give it a [[droute]] section in its configuration (that \
                     creates the datarouter instance and attaches it at the routing step)"
                ),
                _ => bail!(
                    "the node has several datarouter instances ({}); choose one with --instance",
                    drs.iter().map(|i| i.id.as_str()).collect::<Vec<_>>().join(", ")
                ),
            }
        }
    };
    let r: ControlReply = c
        .post(&format!("/v1/instances/{id}/control"), &ControlRequest { request })
        .await
        .context("droute")?;
    let out = r.reply.trim_end();
    if out != "ok" {
        println!("{out}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn words_are_requoted() {
        let w: Vec<String> = ["class", "WEB", "add", "Potter movie", "10.0.0.1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(super::join(&w), "class WEB add \"Potter movie\" 10.0.0.1");
    }
}
