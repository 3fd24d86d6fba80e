//! `weft domain add|ls|show|rm|set`: the node's domains (`docs/domains.md`).
//! Sizes take units (`64MiB`, `10mbit`, `200us`); the API carries plain
//! numbers (bytes, bit/s, ns).

use crate::cmd::common::{client, table};
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use weft_control::api::{DomainCreated, DomainRequest, DomainSet, DomainView};
use weft_dataplane::domain::{fmt_ns, parse_ns, DomainLimits, DomainRemoved};

#[derive(Debug, Subcommand)]
pub enum DomainCmd {
    /// Create a domain: NAME [--parent P] [--owner PRINCIPAL] [--class fair:W|priority:L|deadline:T] [limits].
    Add {
        /// Name (letters, digits, '-', '_', '.').
        name: String,
        /// Parent domain, by name or id (default: the root).
        #[arg(long)]
        parent: Option<String>,
        /// Owning principal (the operator only).
        #[arg(long)]
        owner: Option<String>,
        /// Owner's ed25519 public key, hex.
        #[arg(long)]
        key: Option<String>,
        /// Scheduling class: fair:WEIGHT (default fair:1), priority:LEVEL (0 first), deadline:TIME.
        #[arg(long)]
        class: Option<String>,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// List domains with their usage and counters.
    #[command(alias = "list")]
    Ls {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One domain: limits, members, usage, counters (JSON).
    Show {
        /// Name or id.
        domain: String,
    },
    /// Destroy a domain, its children and everything in them.
    #[command(alias = "del")]
    Rm {
        /// Name or id.
        domain: String,
    },
    /// Change a domain's class or limits (only what is given); `--share` sets plain forwarding's share (root).
    Set {
        /// Name or id.
        domain: String,
        /// New scheduling class.
        #[arg(long)]
        class: Option<String>,
        #[command(flatten)]
        limits: LimitArgs,
        /// Remove limits: cpu, epochs, memory, bandwidth, burst (comma-separated).
        #[arg(long, value_delimiter = ',')]
        clear: Vec<String>,
        /// Plain forwarding's CPU share when domains are busy, per mille (root only).
        #[arg(long)]
        share: Option<u32>,
    },
}

/// Limits, with units.
#[derive(Debug, Args, Default)]
pub struct LimitArgs {
    /// CPU per scheduling round: 200us, 1ms, or ns.
    #[arg(long)]
    cpu: Option<String>,
    /// CPU per round for WebAssembly code, in wasm epochs.
    #[arg(long)]
    epochs: Option<u64>,
    /// Memory: 64MiB, 512KiB, or bytes.
    #[arg(long)]
    memory: Option<String>,
    /// Bandwidth per out-channel: 10mbit, 1gbit, 500kbit, or bit/s.
    #[arg(long)]
    bandwidth: Option<String>,
    /// Burst of each out-channel's bucket, bytes.
    #[arg(long)]
    burst: Option<u64>,
    /// Queue length, packets.
    #[arg(long)]
    queue: Option<u32>,
}

/// `64MiB`, `512KiB`, `1GiB`, `100kB`, or bytes.
pub fn parse_bytes(s: &str) -> anyhow::Result<u64> {
    let s = s.trim();
    let units: [(&str, u64); 7] = [
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
        ("GB", 1_000_000_000),
        ("MB", 1_000_000),
        ("kB", 1_000),
        ("B", 1),
    ];
    for (u, m) in units {
        if let Some(n) = s.strip_suffix(u) {
            let n: u64 = n.trim().parse().with_context(|| format!("bad size {s:?}"))?;
            return n.checked_mul(m).with_context(|| format!("size {s:?} is too large"));
        }
    }
    s.parse()
        .with_context(|| format!("bad size {s:?}: say 64MiB, 512KiB or a number of bytes"))
}

/// `10mbit`, `1gbit`, `500kbit`, or bit/s.
pub fn parse_rate(s: &str) -> anyhow::Result<u64> {
    let s = s.trim();
    for (u, m) in [
        ("gbit", 1_000_000_000u64),
        ("mbit", 1_000_000),
        ("kbit", 1_000),
        ("bit", 1),
    ] {
        if let Some(n) = s.strip_suffix(u) {
            let n: u64 = n.trim().parse().with_context(|| format!("bad rate {s:?}"))?;
            return n.checked_mul(m).with_context(|| format!("rate {s:?} is too large"));
        }
    }
    s.parse()
        .with_context(|| format!("bad rate {s:?}: say 10mbit, 1gbit or bit/s"))
}

fn parse_cpu(s: &str) -> anyhow::Result<u64> {
    parse_ns(s).with_context(|| format!("bad CPU time {s:?}: say 200us, 1ms or a number of ns"))
}

impl LimitArgs {
    fn limits(&self) -> anyhow::Result<DomainLimits> {
        let mut l = DomainLimits {
            cpu_ns: self.cpu.as_deref().map(parse_cpu).transpose()?,
            wasm_epochs: self.epochs,
            memory: self.memory.as_deref().map(parse_bytes).transpose()?,
            bandwidth_bps: self.bandwidth.as_deref().map(parse_rate).transpose()?,
            burst_bytes: self.burst,
            ..Default::default()
        };
        if let Some(q) = self.queue {
            l.queue_len = q;
        }
        Ok(l)
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "-".into())
}

fn mib(b: u64) -> String {
    if b >= 1 << 20 && b.is_multiple_of(1 << 20) {
        format!("{}MiB", b >> 20)
    } else if b >= 1 << 10 && b.is_multiple_of(1 << 10) {
        format!("{}KiB", b >> 10)
    } else {
        b.to_string()
    }
}

pub async fn run(cmd: DomainCmd, node: Option<PathBuf>) -> anyhow::Result<()> {
    let c = client(node)?;
    match cmd {
        DomainCmd::Add {
            name,
            parent,
            owner,
            key,
            class,
            limits,
        } => {
            let req = DomainRequest {
                name,
                parent,
                owner,
                key,
                class,
                limits: limits.limits()?,
            };
            let r: DomainCreated = c.post("/v1/domains", &req).await?;
            println!("domain {} ({})", r.name, r.id);
        }
        DomainCmd::Ls { json } => {
            let ds: Vec<DomainView> = c.get("/v1/domains").await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&ds)?);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = ds
                .iter()
                .map(|d| {
                    vec![
                        d.id.to_string(),
                        d.name.clone(),
                        d.parent.clone().unwrap_or_else(|| "-".into()),
                        d.owner.clone().unwrap_or_else(|| "-".into()),
                        match d.share {
                            Some(s) => format!("share:{s}‰"),
                            None => d.class.clone(),
                        },
                        opt(d.limits.cpu_ns.map(fmt_ns)),
                        opt(d.limits.memory.map(mib)),
                        format!("{}/{}", d.usage.queued, d.limits.queue_len),
                        d.counters.served.to_string(),
                        (d.counters.dropped_full + d.counters.dropped_memory).to_string(),
                        fmt_ns(d.counters.cpu_ns),
                        mib(d.usage.memory),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(
                    &[
                        "id",
                        "name",
                        "parent",
                        "owner",
                        "class",
                        "cpu/round",
                        "memory",
                        "queued",
                        "served",
                        "dropped",
                        "cpu",
                        "mem used"
                    ],
                    &rows
                )
            );
        }
        DomainCmd::Show { domain } => {
            let d: DomainView = c.get(&format!("/v1/domains/{domain}")).await?;
            println!("{}", serde_json::to_string_pretty(&d)?);
        }
        DomainCmd::Rm { domain } => {
            let r: DomainRemoved = c.delete::<(), _>(&format!("/v1/domains/{domain}"), None).await?;
            println!(
                "removed {} domain(s), {} instance(s), {} filter(s), {} visit(s), {} object(s); {} queued packet(s) and {} of memory freed",
                r.domains.len(),
                r.instances.len(),
                r.filters.len(),
                r.visits.len(),
                r.objects.len(),
                r.packets_freed,
                mib(r.memory_freed)
            );
        }
        DomainCmd::Set {
            domain,
            class,
            limits,
            clear,
            share,
        } => {
            let l = limits.limits()?;
            let clear = clear
                .iter()
                .map(|k| {
                    Ok(match k.as_str() {
                        "cpu" => "cpu_ns",
                        "epochs" => "wasm_epochs",
                        "memory" => "memory",
                        "bandwidth" => "bandwidth_bps",
                        "burst" => "burst_bytes",
                        _ => bail!("--clear {k}: cpu, epochs, memory, bandwidth or burst"),
                    }
                    .to_string())
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let req = DomainSet {
                class,
                cpu_ns: l.cpu_ns,
                wasm_epochs: l.wasm_epochs,
                memory: l.memory,
                bandwidth_bps: l.bandwidth_bps,
                burst_bytes: l.burst_bytes,
                queue_len: limits.queue,
                clear,
                share,
            };
            let d: DomainView = c.post(&format!("/v1/domains/{domain}/set"), &req).await?;
            println!("{}", serde_json::to_string_pretty(&d)?);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_bytes("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("99999999999GiB").is_err());
        assert_eq!(parse_rate("10mbit").unwrap(), 10_000_000);
        assert!(parse_rate("fast").is_err());
        assert_eq!(parse_cpu("200us").unwrap(), 200_000);
        assert!(parse_cpu("-1").is_err());
    }
}
