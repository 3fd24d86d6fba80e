//! The loader: fetch a plugin class by name (optionally `NAME@HASH`) from
//! the node's code servers and load it — only after, in this order:
//!
//! 1. the module's sha256 (and length) equal the manifest's, and the hash
//!    asked for;
//! 2. the manifest is signed, by a key the node trusts, and the signature
//!    verifies over [`Manifest::signed_bytes`](crate::Manifest::signed_bytes);
//! 3. [`weft_wasm::verify_module`] accepts the bytes (ABI, imports, exports);
//! 4. the host compiles them (or takes the compiled code from its cache).
//!
//! Each refusal is a [`LoaderError`] whose message names the failed check.
//! Verified packages are kept under `cache_dir/packages/SHA256/`, so a
//! `NAME@HASH` already fetched loads without the network (re-checked
//! against the trusted keys each time). Fetching is async; verifying and
//! compiling run on a blocking thread — never on a node's data-path thread.

use crate::fetch::{self, BaseUrl, FetchError};
use crate::keys::{KeyId, PublicKey};
use crate::package::{self, valid_name, Expect, Manifest, TrustError};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use weft_wasm::{LoadError, WasmClass, WasmHost};

/// `NAME` or `NAME@HASH` (a sha256 or a prefix of at least 8 hex digits).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginSpec {
    /// Class name.
    pub name: String,
    /// Content hash (prefix), lowercase.
    pub hash: Option<String>,
}

impl std::str::FromStr for PluginSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, hash) = match s.trim().split_once('@') {
            Some((n, h)) => (n, Some(h.to_ascii_lowercase())),
            None => (s.trim(), None),
        };
        if !valid_name(name) {
            return Err(format!(
                "bad plugin name {name:?}: use 1-64 of a-z 0-9 _ - . (starting with a letter or digit)"
            ));
        }
        if let Some(h) = &hash {
            if h.is_empty() {
                return Err(format!(
                    "{s:?} has an empty hash after @: give NAME, or NAME@ and the sha256"
                ));
            }
            if h.len() < 8 || h.len() > 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "bad hash {h:?} in {s:?}: give the sha256 (or its first 8 or more hex digits)"
                ));
            }
        }
        Ok(PluginSpec {
            name: name.into(),
            hash,
        })
    }
}

impl std::fmt::Display for PluginSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.hash {
            Some(h) => write!(f, "{}@{h}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// Error returned by the [`Loader`]; the message says which check failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoaderError {
    /// No repository is configured (and none given).
    #[error("no plugin repository configured (list code servers in [plugins] repos)")]
    NoRepos,
    /// A bad repository URL.
    #[error("{0}")]
    BadUrl(String),
    /// `--from` names a code server that `[plugins] repos` does not list:
    /// a node fetches only from the servers its operator configured (else
    /// anyone allowed to load plugins could make the node fetch any URL).
    #[error("{url} is not one of this node's code servers ([plugins] repos: {repos})")]
    UnlistedRepo {
        /// What was asked.
        url: String,
        /// What is configured.
        repos: String,
    },
    /// No repository has the plugin.
    #[error("plugin {spec} not found in {repos}")]
    NotFound {
        /// What was asked for.
        spec: String,
        /// Where it was looked for.
        repos: String,
    },
    /// The network failed.
    #[error("fetching plugin: {0}")]
    Fetch(#[from] FetchError),
    /// Hash or signature checks failed.
    #[error("refused {spec} from {source_url}: {error}")]
    Untrusted {
        /// What was asked for.
        spec: String,
        /// Where it came from.
        source_url: String,
        /// The failed check.
        error: Box<TrustError>,
    },
    /// The verifier or the compiler refused the (authentic) module.
    #[error("refused {spec} from {source_url}: {error}")]
    Module {
        /// What was asked for.
        spec: String,
        /// Where it came from.
        source_url: String,
        /// The failed check.
        error: Box<LoadError>,
    },
    /// A blocking task failed.
    #[error("loader task failed: {0}")]
    Task(String),
}

impl LoaderError {
    /// The failed trust check, if that is what failed.
    pub fn trust(&self) -> Option<&TrustError> {
        match self {
            LoaderError::Untrusted { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// The loader's configuration (a node's `[plugins]` section).
#[derive(Clone, Debug, Default)]
pub struct LoaderConfig {
    /// Keys whose signatures this node accepts.
    pub trusted_keys: Vec<PublicKey>,
    /// Code servers, tried in order (`http://HOST:PORT`).
    pub repos: Vec<String>,
    /// Where verified packages are kept (None: nowhere).
    pub cache_dir: Option<PathBuf>,
}

/// A fetched package, not yet checked.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// Where it came from (a URL, or `cache`).
    pub source: String,
    /// `manifest.json`'s bytes.
    pub manifest: Vec<u8>,
    /// The module.
    pub module: Vec<u8>,
    /// The signature file, if any.
    pub signature: Option<Vec<u8>>,
}

/// A verified, compiled plugin class.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The class (turn it into an engine class with
    /// [`WasmClass::element_class`]).
    pub class: WasmClass,
    /// Its manifest.
    pub manifest: Manifest,
    /// Who signed it.
    pub signer: KeyId,
    /// Where it came from.
    pub source: String,
    /// What was checked, one line each, in order (for operators).
    pub steps: Vec<String>,
    /// Time spent checking hash, signature and ABI.
    pub verify_time: std::time::Duration,
    /// Time spent compiling (or taking the compiled code from the cache).
    pub compile_time: std::time::Duration,
}

/// A verified server-module package ([`Loader::verify_server`]).
#[derive(Clone, Debug)]
pub struct VerifiedServer {
    /// Its manifest.
    pub manifest: Manifest,
    /// Who signed it.
    pub signer: KeyId,
    /// The component's bytes.
    pub module: Vec<u8>,
    /// Time spent checking hash and signature.
    pub verify_time: std::time::Duration,
}

struct Inner {
    cfg: LoaderConfig,
    host: WasmHost,
}

/// Fetches, verifies and loads plugin classes. Cheap to clone.
#[derive(Clone)]
pub struct Loader {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader").field("cfg", &self.inner.cfg).finish()
    }
}

impl Loader {
    /// A loader compiling into `host`.
    pub fn new(cfg: LoaderConfig, host: WasmHost) -> Loader {
        Loader {
            inner: Arc::new(Inner { cfg, host }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LoaderConfig {
        &self.inner.cfg
    }

    /// The host classes are compiled into.
    pub fn host(&self) -> &WasmHost {
        &self.inner.host
    }

    fn package_dir(&self, sha256: &str) -> Option<PathBuf> {
        Some(self.inner.cfg.cache_dir.as_ref()?.join("packages").join(sha256))
    }

    /// A package kept in the cache whose hash starts with `spec`'s hash.
    fn cached(&self, spec: &PluginSpec) -> Option<Fetched> {
        let h = spec.hash.as_ref()?;
        let dir = self.inner.cfg.cache_dir.as_ref()?.join("packages");
        let mut hits: Vec<PathBuf> = std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(h.as_str()))
            .map(|e| e.path())
            .collect();
        if hits.len() != 1 {
            return None;
        }
        let d = hits.pop()?;
        let manifest = std::fs::read(d.join("manifest.json")).ok()?;
        if Manifest::parse(&manifest).ok()?.name != spec.name {
            return None;
        }
        Some(Fetched {
            source: "cache".into(),
            manifest,
            module: std::fs::read(d.join("module.wasm")).ok()?,
            signature: std::fs::read(d.join("signature")).ok(),
        })
    }

    /// Fetch `spec`'s package: from the cache when a hash is given and
    /// known, else from `from` or each configured repository in turn (the
    /// first that has it). Nothing is checked yet.
    pub async fn fetch(&self, spec: &PluginSpec, from: Option<&str>) -> Result<Fetched, LoaderError> {
        if from.is_none() {
            if let Some(f) = self.cached(spec) {
                return Ok(f);
            }
        }
        let repos: Vec<String> = match from {
            Some(u) => {
                let want = BaseUrl::parse(u).map_err(LoaderError::BadUrl)?;
                let listed = self
                    .inner
                    .cfg
                    .repos
                    .iter()
                    .any(|r| BaseUrl::parse(r).is_ok_and(|b| b == want));
                if !listed {
                    return Err(LoaderError::UnlistedRepo {
                        url: want.to_url(),
                        repos: if self.inner.cfg.repos.is_empty() {
                            "none".into()
                        } else {
                            self.inner.cfg.repos.join(", ")
                        },
                    });
                }
                vec![u.to_string()]
            }
            None => self.inner.cfg.repos.clone(),
        };
        if repos.is_empty() {
            return Err(LoaderError::NoRepos);
        }
        let path = |file: &str| format!("/v1/plugins/{spec}/{file}");
        for r in &repos {
            let base = BaseUrl::parse(r).map_err(LoaderError::BadUrl)?;
            let Some(manifest) = fetch::get(&base, &path("manifest"), fetch::MAX_MANIFEST).await? else {
                continue;
            };
            let module = fetch::get(&base, &path("module"), fetch::MAX_MODULE)
                .await?
                .ok_or_else(|| LoaderError::NotFound {
                    spec: spec.to_string(),
                    repos: format!("{} (manifest without module)", base.to_url()),
                })?;
            let signature = fetch::get(&base, &path("signature"), fetch::MAX_SIGNATURE).await?;
            return Ok(Fetched {
                source: base.to_url(),
                manifest,
                module,
                signature,
            });
        }
        Err(LoaderError::NotFound {
            spec: spec.to_string(),
            repos: repos.join(", "),
        })
    }

    /// Check a fetched package (hash, signature, then ABI), compile it and
    /// keep it in the cache. CPU-bound: call from a blocking thread.
    pub fn verify_and_load(&self, spec: &PluginSpec, f: Fetched) -> Result<Loaded, LoaderError> {
        let started = Instant::now();
        let untrusted = |error| LoaderError::Untrusted {
            spec: spec.to_string(),
            source_url: f.source.clone(),
            error: Box::new(error),
        };
        let mut steps = vec![format!(
            "fetched {spec} from {}: manifest, module ({} bytes), {}",
            f.source,
            f.module.len(),
            if f.signature.is_some() {
                "signature"
            } else {
                "no signature"
            }
        )];
        let m = Manifest::parse(&f.manifest).map_err(untrusted)?;
        let expect = Expect {
            name: &spec.name,
            hash: spec.hash.as_deref(),
            trusted: &self.inner.cfg.trusted_keys,
        };
        let signer = package::check(&expect, &m, &f.module, f.signature.as_deref()).map_err(untrusted)?;
        steps.push(format!(
            "hash ok: sha256 {} = the signed manifest's ({} {})",
            &m.sha256, m.name, m.version
        ));
        steps.push(format!("signature ok: ed25519 by trusted key {signer}"));
        let module_err = |error| LoaderError::Module {
            spec: spec.to_string(),
            source_url: f.source.clone(),
            error: Box::new(error),
        };
        let info = weft_wasm::verify_module(&f.module).map_err(module_err)?;
        steps.push(format!(
            "ABI ok: plugin ABI v{}, imports {}, {}",
            info.abi_version,
            if info.imports.is_empty() {
                "none".to_string()
            } else {
                info.imports.join(", ")
            },
            match info.frame_head {
                Some(h) => format!("frame head {h} bytes"),
                None => "whole frames".to_string(),
            }
        ));
        let t = Instant::now();
        let verify_time = t.duration_since(started);
        let class = self.inner.host.load_class(&m.name, &f.module).map_err(module_err)?;
        let compile_time = t.elapsed();
        steps.push(format!(
            "compiled in {:.1} ms; class {} (wasm, sha256 {}…)",
            t.elapsed().as_secs_f64() * 1e3,
            m.name,
            &m.sha256[..12]
        ));
        if f.source != "cache" {
            if let Some(d) = self.package_dir(&m.sha256) {
                if let Err(e) = keep(&d, &f) {
                    tracing::warn!(dir = %d.display(), error = %e, "could not cache the plugin package");
                }
            }
        }
        tracing::info!(plugin = %m.name, version = %m.version, sha256 = %m.sha256, signer = %signer, source = %f.source, "plugin verified and loaded");
        Ok(Loaded {
            class,
            manifest: m,
            signer,
            source: f.source,
            steps,
            verify_time,
            compile_time,
        })
    }

    /// Check a fetched **server module** package: the same hash and
    /// signature checks as [`Loader::verify_and_load`], the ABI
    /// [`SERVER_ABI`](crate::package::SERVER_ABI); keep it in the cache.
    /// Nothing is compiled here: the server-module host compiles the
    /// component and checks its world. The module's bytes come back.
    pub fn verify_server(&self, spec: &PluginSpec, f: Fetched) -> Result<VerifiedServer, LoaderError> {
        let started = Instant::now();
        let untrusted = |error| LoaderError::Untrusted {
            spec: spec.to_string(),
            source_url: f.source.clone(),
            error: Box::new(error),
        };
        let m = Manifest::parse(&f.manifest).map_err(untrusted)?;
        let expect = Expect {
            name: &spec.name,
            hash: spec.hash.as_deref(),
            trusted: &self.inner.cfg.trusted_keys,
        };
        let signer = package::check_server(&expect, &m, &f.module, f.signature.as_deref()).map_err(untrusted)?;
        if f.source != "cache" {
            if let Some(d) = self.package_dir(&m.sha256) {
                if let Err(e) = keep(&d, &f) {
                    tracing::warn!(dir = %d.display(), error = %e, "could not cache the server module package");
                }
            }
        }
        tracing::info!(module = %m.name, version = %m.version, sha256 = %m.sha256, signer = %signer, source = %f.source, "server module verified");
        Ok(VerifiedServer {
            manifest: m,
            signer,
            module: f.module,
            verify_time: started.elapsed(),
        })
    }

    /// [`Loader::fetch`], then [`Loader::verify_and_load`] on a blocking
    /// thread.
    pub async fn load(&self, spec: &PluginSpec, from: Option<&str>) -> Result<Loaded, LoaderError> {
        let f = self.fetch(spec, from).await?;
        let (me, spec) = (self.clone(), spec.clone());
        tokio::task::spawn_blocking(move || me.verify_and_load(&spec, f))
            .await
            .map_err(|e| LoaderError::Task(e.to_string()))?
    }

    /// [`Loader::load`] for synchronous code (the emulator, the demo); the
    /// fetch runs on a thread of its own, so this may be called from inside
    /// an async runtime's thread too (it blocks that thread).
    pub fn load_blocking(&self, spec: &PluginSpec, from: Option<&str>) -> Result<Loaded, LoaderError> {
        let f = std::thread::scope(|s| {
            s.spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| LoaderError::Task(e.to_string()))?;
                rt.block_on(self.fetch(spec, from))
            })
            .join()
            .map_err(|_| LoaderError::Task("the fetch thread panicked".into()))?
        })?;
        self.verify_and_load(spec, f)
    }
}

fn keep(dir: &std::path::Path, f: &Fetched) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("module.wasm"), &f.module)?;
    std::fs::write(dir.join("manifest.json"), &f.manifest)?;
    if let Some(s) = &f.signature {
        std::fs::write(dir.join("signature"), s)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        let s: PluginSpec = "netmonitor@ABCDEF0123".parse().unwrap();
        assert_eq!(s.name, "netmonitor");
        assert_eq!(s.hash.as_deref(), Some("abcdef0123"));
        assert_eq!(s.to_string(), "netmonitor@abcdef0123");
        assert!("x@12".parse::<PluginSpec>().is_err());
        assert!("../x".parse::<PluginSpec>().is_err());
        assert!("x@zzzzzzzzzz".parse::<PluginSpec>().is_err());
    }
}
