//! `weft filter add|ls|rm`: iptables-like filters whose targets are chains of
//! instances.

use crate::cmd::common::{client, table};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use weft_control::api::{Done, FilterCreated, FilterRequest, FilterView, MatchAll};
use weft_control::config::words::{AddrOrPrefix, PortRange, Proto};
use weft_dataplane::{Hook, InstanceId};

#[derive(Debug, Subcommand)]
pub enum FilterCmd {
    /// Add a filter; with --class CLASS --autoinstance prints the created instance (#N) on the first line.
    Add(AddArgs),
    /// List filters per hook, iptables -L style.
    #[command(alias = "list")]
    Ls,
    /// Remove a filter (its instances stay).
    #[command(alias = "del")]
    Rm {
        /// Filter id (see `weft filter ls`).
        id: u32,
    },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Hook: prerouting, input, forward, output, postrouting.
    #[arg(long, default_value = "prerouting")]
    hook: Hook,
    /// Protocol: udp, tcp, icmp, icmpv6, esp or a number.
    #[arg(short = 'p', long = "proto")]
    proto: Option<Proto>,
    /// Source address or prefix.
    #[arg(short = 's', long = "src")]
    src: Option<AddrOrPrefix>,
    /// Destination address or prefix.
    #[arg(short = 'd', long = "dst")]
    dst: Option<AddrOrPrefix>,
    /// Source port or range (1000-2000); needs -p tcp or -p udp (as
    /// iptables).
    #[arg(long)]
    sport: Option<PortRange>,
    /// Destination port or range; needs -p tcp or -p udp (as iptables:
    /// ports are not guessed to be UDP).
    #[arg(long)]
    dport: Option<PortRange>,
    /// Receiving port name.
    #[arg(short = 'i', long = "in-port")]
    in_port: Option<String>,
    /// Existing instances in chain order: '#1,#2'.
    #[arg(long, value_delimiter = ',')]
    chain: Vec<InstanceId>,
    /// Class of an instance to create for this filter (with --autoinstance):
    /// a built-in class or a plugin's. `--plugin` is the same option in
    /// PromethOS' words.
    #[arg(long, value_name = "CLASS", visible_alias = "plugin")]
    class: Option<String>,
    /// Create an instance of --class for this filter (PromethOS).
    #[arg(long)]
    autoinstance: bool,
    /// Configuration of the created instance.
    #[arg(long, value_name = "STR")]
    config: Option<String>,
    /// Rule position within the hook (0 = first; default: append).
    #[arg(long, value_name = "N")]
    position: Option<usize>,
    /// Match every packet: required when no match option is given, so a
    /// catch-all is never added by accident.
    #[arg(long, conflicts_with_all = ["proto", "src", "dst", "sport", "dport", "in_port"])]
    all: bool,
}

pub async fn run(cmd: FilterCmd, node: Option<PathBuf>) -> anyhow::Result<()> {
    let c = client(node)?;
    match cmd {
        FilterCmd::Add(a) => {
            weft_control::config::words::check_ports(a.proto.map(|p| p.0), a.sport.is_some() || a.dport.is_some())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let req = FilterRequest {
                hook: Some(a.hook.to_string()),
                in_port: a.in_port,
                proto: a.proto,
                src: a.src,
                dst: a.dst,
                sport: a.sport,
                dport: a.dport,
                chain: a.chain.iter().map(|i| i.to_string()).collect(),
                class: a.class,
                autoinstance: a.autoinstance,
                config: a.config,
                position: a.position,
                match_all: a.all.then_some(MatchAll::All),
            };
            let r: FilterCreated = c.post("/v1/filters", &req).await?;
            if let Some(l) = &r.loaded {
                eprintln!(
                    "plugin {} {} loaded on demand (sha256 {}, signed by {}):",
                    l.plugin.name, l.plugin.version, l.plugin.sha256, l.plugin.signer
                );
                crate::cmd::plugin::print_steps(l);
            }
            // Scripts capture the first line: the instance when one was made.
            if let Some(i) = &r.instance {
                println!("{i}");
            }
            println!("filter {}", r.filter);
        }
        FilterCmd::Ls => {
            let fs: Vec<FilterView> = c.get("/v1/filters").await?;
            print!("{}", render(&fs));
        }
        FilterCmd::Rm { id } => {
            let _: Done = c.delete::<(), _>(&format!("/v1/filters/{id}"), None).await?;
        }
    }
    Ok(())
}

/// iptables' ports column: `udp spt:53 dpts:1000:2000`.
fn ports(f: &FilterView) -> String {
    let mut parts = Vec::new();
    let one = |name: &str, r: PortRange| {
        if r.0 == r.1 {
            format!("{name}:{}", r.0)
        } else {
            format!("{name}s:{}:{}", r.0, r.1)
        }
    };
    if let Some(s) = f.sport {
        parts.push(one("spt", s));
    }
    if let Some(d) = f.dport {
        parts.push(one("dpt", d));
    }
    if parts.is_empty() {
        return String::new();
    }
    if let Some(p) = f.proto {
        parts.insert(0, p.to_string());
    }
    parts.join(" ")
}

fn render(fs: &[FilterView]) -> String {
    let mut out = String::new();
    for hook in Hook::ALL {
        let mine: Vec<&FilterView> = fs.iter().filter(|f| f.hook == hook).collect();
        if mine.is_empty() && hook != Hook::Prerouting {
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!("Chain {}\n", hook.name()));
        let rows: Vec<Vec<String>> = mine
            .iter()
            .map(|f| {
                let chain: Vec<String> = f.chain.iter().map(|e| format!("{}{}", e.class, e.id)).collect();
                vec![
                    f.id.to_string(),
                    if chain.is_empty() { "ACCEPT" } else { "CHAIN" }.to_string(),
                    f.proto.map(|p| p.to_string()).unwrap_or_else(|| "all".into()),
                    f.in_port.clone().unwrap_or_else(|| "any".into()),
                    f.src.map(|s| s.to_string()).unwrap_or_else(|| "anywhere".into()),
                    f.dst.map(|s| s.to_string()).unwrap_or_else(|| "anywhere".into()),
                    ports(f),
                    if chain.is_empty() {
                        "-".into()
                    } else {
                        chain.join(" -> ")
                    },
                    f.hits.to_string(),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "id",
                "target",
                "prot",
                "in",
                "source",
                "destination",
                "ports",
                "chain",
                "hits",
            ],
            &rows,
        ));
    }
    out
}
