//! `weft policy`: the node's principals and their rights
//! (`docs/security.md`): one policy for the API and on-path signaling.
//! The operator sees every principal; a principal sees itself. Rights
//! change with the node's configuration file (restart the node).

use crate::cmd::common::{client, table, NodeArg};
use anyhow::Result;
use weft_control::api::PolicyView;

/// Print the policy as a table, one principal per row.
pub async fn run(n: NodeArg, json: bool) -> Result<()> {
    let c = client(n.node)?;
    let v: PolicyView = c.get("/v1/policy").await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let or_any = |v: &Option<Vec<String>>| v.as_ref().map(|v| v.join(",")).unwrap_or_else(|| "any".into());
    let lim = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_else(|| "-".into());
    let rows: Vec<Vec<String>> = v
        .principals
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.credentials.join(","),
                p.rights.join(","),
                or_any(&p.prefixes),
                or_any(&p.classes),
                if p.server_ports.is_empty() {
                    "-".into()
                } else {
                    p.server_ports.join(",")
                },
                format!("{}/{}", p.instances, lim(p.limits.instances)),
                lim(p.limits.memory_mib),
                p.limits
                    .lifetime_s
                    .map(|l| format!("{l} s"))
                    .unwrap_or_else(|| "-".into()),
                if p.reverse_path { "yes".into() } else { "no".into() },
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "principal",
                "credentials",
                "rights",
                "prefixes",
                "classes",
                "server ports",
                "instances",
                "memory MiB",
                "lifetime",
                "reverse path",
            ],
            &rows
        )
    );
    if !v.operator {
        println!("(you are {}: only your own entry is shown)", v.caller);
    }
    Ok(())
}
