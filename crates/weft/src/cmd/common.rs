//! What every command that talks to a running node shares: finding it, the
//! client with the caller's credentials, and plain-text tables.

use anyhow::{bail, Context};
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;
use weft_control::client::{Credentials, Endpoint};
use weft_control::config::run_dir;
use weft_control::Client;

/// `--node`: on the commands that talk to a node, and only there (`weft
/// keygen`, `send`, `bench`, `emu`, … never do). On a command with
/// subcommands it is global to them, so `weft filter --node S ls` and `weft
/// filter ls --node S` both work.
#[derive(Debug, Clone, Args)]
pub struct NodeArg {
    /// The node to talk to: its API socket, or http://HOST:PORT (then
    /// WEFT_TOKEN or WEFT_KEY proves who you are; docs/security.md).
    /// Default: the one node socket in /run/weft (root) or
    /// $XDG_RUNTIME_DIR/weft.
    #[arg(long, global = true, env = "WEFT_SOCKET", value_name = "PATH|URL")]
    pub node: Option<PathBuf>,
}

/// The client for `--node PATH|http://HOST:PORT` / `$WEFT_SOCKET`; without
/// either, the one node whose socket is in the default directory
/// ([`run_dir`]), if there is exactly one. Credentials come from
/// `$WEFT_TOKEN` (a bearer token) or `$WEFT_KEY` (a secret key file to sign
/// requests with); on the Unix socket without them the caller is who the
/// kernel says it is.
pub fn client(node: Option<PathBuf>) -> anyhow::Result<Client> {
    let creds = credentials()?;
    if let Some(p) = node {
        let endpoint = Endpoint::parse(&p.to_string_lossy());
        if matches!(endpoint, Endpoint::Tcp(_)) && creds.is_none() {
            bail!("{endpoint} needs credentials: set WEFT_TOKEN or WEFT_KEY (docs/security.md)");
        }
        return Ok(Client::with(endpoint, creds));
    }
    let dir = run_dir();
    let mut found: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "sock"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("looking for node sockets in {}", dir.display())),
    };
    found.sort();
    match found.len() {
        1 => Ok(Client::with(Endpoint::Unix(found.remove(0)), creds)),
        0 => bail!(
            "no node selected: give --node PATH or set WEFT_SOCKET (no node socket in {})",
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

/// `$WEFT_TOKEN` or `$WEFT_KEY`, if set.
fn credentials() -> anyhow::Result<Option<Credentials>> {
    let token = std::env::var("WEFT_TOKEN").ok().filter(|t| !t.is_empty());
    let key = std::env::var_os("WEFT_KEY").filter(|k| !k.is_empty());
    match (token, key) {
        (Some(_), Some(_)) => bail!("set WEFT_TOKEN or WEFT_KEY, not both"),
        (Some(t), None) => Ok(Some(Credentials::Token(t.trim().to_string()))),
        (None, Some(k)) => {
            let key = weft_repo::SecretKey::read_file(std::path::Path::new(&k)).context("WEFT_KEY")?;
            Ok(Some(Credentials::Key(Arc::new(key))))
        }
        (None, None) => Ok(None),
    }
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
