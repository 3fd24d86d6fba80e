//! `weft keygen`: an ed25519 key pair, for signing plugins (`weft repo
//! publish`) and API requests (`WEFT_KEY`, `docs/security.md`).

use clap::Args;
use std::path::PathBuf;
use weft_repo::SecretKey;

/// `weft keygen`
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Secret key file to create (mode 0600; never overwritten). The public key goes to FILE.pub.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

pub fn run(a: &KeygenArgs) -> anyhow::Result<()> {
    let k = SecretKey::generate()?;
    let pub_path = k.write_files(&a.out)?;
    eprintln!(
        "wrote secret key {} (mode 0600) and public key {}",
        a.out.display(),
        pub_path.display()
    );
    // stdout: the public key alone, for scripts and [plugins] trusted_keys.
    println!("{}", k.public());
    Ok(())
}
