//! `weft token`: a new bearer token for a `[[principal]]`.

use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use weft_control::auth::request::{new_token, token_sha256};

/// `weft token`
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Also write the token to FILE (mode 0600; never overwritten), for
    /// `WEFT_TOKEN=$(cat FILE)`.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// Print a fresh token on stdout and, on stderr, the line that lets a
/// principal use it (the node keeps only the hash).
pub fn run(a: &TokenArgs) -> anyhow::Result<()> {
    let token = new_token().map_err(anyhow::Error::msg)?;
    if let Some(p) = &a.out {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(p)
            .with_context(|| format!("creating {}", p.display()))?;
        writeln!(f, "{token}").with_context(|| format!("writing {}", p.display()))?;
    }
    let hash = weft_repo::to_hex(&token_sha256(&token));
    eprintln!("give the token to the client (WEFT_TOKEN); put its hash in the node's [[principal]]:");
    eprintln!("token_sha256 = \"{hash}\"");
    println!("{token}");
    Ok(())
}
