//! The precompiled-module cache: compiled machine code on disk, keyed by the
//! module's sha256 and the engine's compatibility hash (wasmtime version and
//! every code-affecting setting, such as fuel vs epoch).
//!
//! **Why `Module::deserialize` is sound here.** Deserializing trusts the
//! bytes to be machine code wasmtime itself produced; arbitrary bytes could
//! run anything. This module is the only place that calls it, and only on
//! files this module wrote: each file is the output of `Module::serialize`
//! for the module whose verified sha256 names it, prefixed with the sha256 of
//! the artifact itself. Before deserializing, the prefix is checked against
//! the rest, so a truncated or corrupted file (crash mid-write, disk error)
//! is recompiled, not loaded; wasmtime further checks the artifact's engine
//! compatibility. Files are written to a temporary name and renamed, so a
//! reader never sees a partial file. What this does not defend against is
//! an attacker who can write into the cache directory — such an attacker
//! can already replace the node's binary; keep the directory owned by the
//! node's user (it is created with the process's umask).

use crate::verify::{sha256_hex, LoadError};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use wasmtime::{Engine, Module};

/// The cache directory and the engine fingerprint its files are valid for.
#[derive(Debug)]
pub struct ModuleCache {
    dir: PathBuf,
    fingerprint: String,
}

impl ModuleCache {
    /// Open (creating) `dir` for artifacts of `engine`.
    pub fn open(dir: &Path, engine: &Engine) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        Ok(ModuleCache {
            dir: dir.to_path_buf(),
            fingerprint: format!("{:016x}", h.finish()),
        })
    }

    /// The file holding the artifact of module `hash`.
    pub fn path_of(&self, hash: &str) -> PathBuf {
        self.dir.join(format!("{hash}-{}.cwasm", self.fingerprint))
    }

    /// The compiled module for `bytes` (whose sha256 is `hash`): from the
    /// cache when a valid artifact is there, else compiled and stored.
    pub fn load_or_compile(&self, engine: &Engine, bytes: &[u8], hash: &str) -> Result<Module, LoadError> {
        // The name comes from the hash of the bytes we are about to compile,
        // never from the caller's say-so.
        debug_assert_eq!(hash, sha256_hex(bytes));
        let path = self.path_of(hash);
        if let Ok(file) = std::fs::read(&path) {
            if file.len() > 32 && Sha256::digest(&file[32..]).as_slice() == &file[..32] {
                // SAFETY: see the module documentation: the file was written
                // by `store` below from `Module::serialize` output for this
                // very hash and engine fingerprint, and its checksum matches.
                #[allow(unsafe_code)]
                let m = unsafe { Module::deserialize(engine, &file[32..]) };
                match m {
                    Ok(m) => return Ok(m),
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "stale module cache entry; recompiling")
                    }
                }
            } else {
                tracing::warn!(path = %path.display(), "corrupt module cache entry; recompiling");
            }
        }
        let module = Module::new(engine, bytes).map_err(|e| LoadError::Compile(e.to_string()))?;
        if let Err(e) = self.store(&path, &module) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write module cache entry");
        }
        Ok(module)
    }

    fn store(&self, path: &Path, module: &Module) -> Result<(), LoadError> {
        let art = module.serialize().map_err(|e| LoadError::Cache(e.to_string()))?;
        let mut file = Vec::with_capacity(32 + art.len());
        file.extend_from_slice(&Sha256::digest(&art));
        file.extend_from_slice(&art);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, &file).map_err(|e| LoadError::Cache(format!("{}: {e}", tmp.display())))?;
        std::fs::rename(&tmp, path).map_err(|e| LoadError::Cache(format!("{}: {e}", path.display())))
    }
}
