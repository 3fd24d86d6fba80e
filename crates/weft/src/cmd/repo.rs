//! `weft repo publish|serve|ls`: signing plugins and serving them to nodes
//! (formats in `docs/code-server.md`; keys from `weft keygen`).

use anyhow::Context;
use clap::Subcommand;
use std::net::SocketAddr;
use std::path::PathBuf;
use weft_repo::{store, SecretKey};

#[derive(Debug, Subcommand)]
pub enum RepoCmd {
    /// Sign a .wasm plugin and add it to a repository directory (refused if the node's verifier would refuse it).
    #[command(disable_version_flag = true)]
    Publish {
        /// The module (.wasm).
        file: PathBuf,
        /// Secret key file (from `weft keygen`).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Plugin (class) name; default: the file name without .wasm.
        #[arg(long)]
        name: Option<String>,
        /// Version; default: the first 12 hex digits of the module's sha256.
        #[arg(long)]
        version: Option<String>,
        /// The repository directory.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
    /// Serve a repository directory over HTTP (GET /v1/plugins, /v1/plugins/NAME[@HASH]/{module,manifest,signature}).
    Serve {
        /// The repository directory.
        dir: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:7080")]
        listen: SocketAddr,
    },
    /// List a repository directory's packages.
    Ls {
        /// The repository directory.
        dir: PathBuf,
    },
}

pub async fn run(cmd: RepoCmd) -> anyhow::Result<()> {
    match cmd {
        RepoCmd::Publish {
            file,
            key,
            name,
            version,
            dir,
        } => {
            let module = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let key = SecretKey::read_file(&key)?;
            let name = match name {
                Some(n) => n,
                None => file
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .map(|s| s.to_ascii_lowercase())
                    .context("give --name")?,
            };
            if weft_control::builtin_classes().iter().any(|c| c.name == name) {
                anyhow::bail!(
                    "{name} is the name of a built-in class, which a node would use instead; publish with another --name"
                );
            }
            let m = store::publish(&dir, &module, &name, version.as_deref(), &key)?;
            println!(
                "published {} {} sha256 {} ({} bytes) signed by {} into {}",
                m.name,
                m.version,
                m.sha256,
                m.size,
                m.signer.id(),
                dir.display()
            );
        }
        RepoCmd::Serve { dir, listen } => {
            if !dir.is_dir() {
                anyhow::bail!(
                    "{}: not a directory (publish into it with `weft repo publish`)",
                    dir.display()
                );
            }
            let l = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("binding {listen}"))?;
            println!("serving plugins from {} on http://{}", dir.display(), l.local_addr()?);
            let stop = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            weft_repo::server::serve(dir, l, stop).await?;
        }
        RepoCmd::Ls { dir } => {
            // (store::list reads a missing directory as an empty repository,
            // which suits a server; asked for by name, it is a mistake.)
            match std::fs::metadata(&dir) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => anyhow::bail!("{}: not a directory", dir.display()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
                    "{}: no such directory (`weft repo publish --dir {}` creates it)",
                    dir.display(),
                    dir.display()
                ),
                Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
            }
            for m in store::list(&dir)? {
                println!(
                    "{}  {}  {}  {} bytes  signer {}",
                    m.name,
                    m.version,
                    m.sha256,
                    m.size,
                    m.signer.id()
                );
            }
        }
    }
    Ok(())
}
