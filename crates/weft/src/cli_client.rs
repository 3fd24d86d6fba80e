//! What every command that talks to a running node shares: finding its
//! socket, the client, and plain-text tables.

use anyhow::{bail, Context};
use std::path::PathBuf;
use weft_control::Client;

/// Where nodes put their sockets by default (`/tmp/weft-<name>.sock`).
pub fn default_socket(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("weft-{name}.sock"))
}

/// The client for `--node PATH` / `$WEFT_SOCKET`; without either, the one
/// node with a default socket, if there is exactly one.
pub fn client(node: Option<PathBuf>) -> anyhow::Result<Client> {
    if let Some(p) = node {
        return Ok(Client::new(p));
    }
    let dir = std::env::temp_dir();
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("looking for node sockets in {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("weft-") && n.ends_with(".sock"))
        })
        .collect();
    found.sort();
    match found.len() {
        1 => Ok(Client::new(found.remove(0))),
        0 => bail!(
            "no node selected: give --node PATH or set WEFT_SOCKET (no weft-*.sock in {})",
            dir.display()
        ),
        _ => bail!(
            "several nodes run here; choose one with --node PATH or WEFT_SOCKET: {}",
            found
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `weft metrics`
pub async fn metrics(node: Option<PathBuf>) -> anyhow::Result<()> {
    let c = client(node)?;
    print!("{}", c.get_text("/v1/metrics").await?);
    Ok(())
}

/// A plain-text table: columns padded to their widest cell, two spaces
/// apart, the last column unpadded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < w.len() {
                w[i] = w[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let n = cells.len();
        let mut s = String::new();
        for (i, c) in cells.into_iter().enumerate() {
            if i + 1 == n {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<width$}  ", width = w[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}
