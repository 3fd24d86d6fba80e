//! A repository directory — what `weft repo publish` writes and
//! `weft repo serve` serves:
//!
//! ```text
//! DIR/index.json                   every package's manifest (regenerated on publish)
//! DIR/NAME/latest                  the version last published, one line
//! DIR/NAME/VERSION/module.wasm     the module
//! DIR/NAME/VERSION/manifest.json   its Manifest (JSON)
//! DIR/NAME/VERSION/signature       128 hex digits: ed25519 over Manifest::signed_bytes
//! ```
//!
//! A package is immutable: publishing other bytes under an existing
//! `NAME/VERSION` is refused.

use crate::keys::SecretKey;
use crate::package::{valid_name, valid_version, Manifest};
use std::path::{Path, PathBuf};

/// Error returned by [`publish`] and the lookups.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The node's verifier refuses the module: it is not published.
    #[error("refusing to publish {0}: the node would refuse it: {1}")]
    Refused(String, weft_wasm::LoadError),
    /// A bad name or version.
    #[error("{0}")]
    BadName(String),
    /// `NAME/VERSION` exists with other bytes.
    #[error(
        "{name} {version} is already published with sha256 {sha256}; packages are immutable, choose another --version"
    )]
    Exists {
        /// Name.
        name: String,
        /// Version.
        version: String,
        /// Its hash.
        sha256: String,
    },
    /// A file could not be read or written.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
}

fn io(p: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |e| StoreError::Io(p.to_path_buf(), e)
}

/// Which version of a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Select {
    /// The one in `NAME/latest`.
    Latest,
    /// A version.
    Version(String),
    /// The one whose sha256 starts with this (lowercase hex).
    Hash(String),
}

/// The first octets of a WebAssembly component (magic, version 0x0d,
/// layer 1): what makes a published module a server module.
pub const COMPONENT_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

/// Sign `module` as `name` `version` with `key` and write it into the
/// repository at `dir` (created if missing); it becomes `latest`. A packet
/// plugin must pass [`weft_wasm::verify_module`] first; a component is
/// published as a server module (its manifest's ABI is
/// [`SERVER_ABI`](crate::package::SERVER_ABI); the node's server-module host
/// compiles and checks it). `version` defaults to the first 12 hex digits
/// of the module's sha256.
pub fn publish(
    dir: &Path,
    module: &[u8],
    name: &str,
    version: Option<&str>,
    key: &SecretKey,
) -> Result<Manifest, StoreError> {
    if !valid_name(name) {
        return Err(StoreError::BadName(format!(
            "bad plugin name {name:?}: use 1-64 of a-z 0-9 _ - . (starting with a letter or digit)"
        )));
    }
    // A component is a server module (its ABI says so in the signed
    // manifest); anything else must be a packet plugin the verifier takes.
    let server = module.starts_with(&COMPONENT_HEADER);
    if !server {
        weft_wasm::verify_module(module).map_err(|e| StoreError::Refused(name.into(), e))?;
    }
    let version = version
        .map(str::to_string)
        .unwrap_or_else(|| crate::sha256_hex(module)[..12].to_string());
    if !valid_version(&version) {
        return Err(StoreError::BadName(format!(
            "bad version {version:?}: use 1-64 of A-Z a-z 0-9 _ - . + (not `latest`)"
        )));
    }
    let mut m = Manifest::new(name, &version, module, key.public());
    if server {
        m.abi = crate::package::SERVER_ABI;
    }
    if let Ok(old) = read_manifest(&dir.join(name).join(&version)) {
        if old.sha256 != m.sha256 {
            return Err(StoreError::Exists {
                name: name.into(),
                version,
                sha256: old.sha256,
            });
        }
    }
    let sig = m.sign(key);
    write_package(dir, &m, module, Some(&sig))?;
    Ok(m)
}

/// Write a package's files as they are, without any check, and make it
/// `latest`. [`publish`] is the way to publish; this exists so that tests
/// can build the bad packages a node must refuse (unsigned, tampered,
/// wrong ABI).
pub fn write_package(dir: &Path, m: &Manifest, module: &[u8], signature: Option<&str>) -> Result<PathBuf, StoreError> {
    let vdir = dir.join(&m.name).join(&m.version);
    std::fs::create_dir_all(&vdir).map_err(io(&vdir))?;
    let w = |file: &str, bytes: &[u8]| {
        let p = vdir.join(file);
        let tmp = vdir.join(format!(".{file}.tmp"));
        std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &p).map_err(io(&p))
    };
    w("module.wasm", module)?;
    let json = serde_json::to_vec_pretty(m).map_err(|e| StoreError::Io(vdir.clone(), e.into()))?;
    w("manifest.json", &json)?;
    match signature {
        Some(s) => w("signature", s.as_bytes())?,
        None => {
            let p = vdir.join("signature");
            if p.exists() {
                std::fs::remove_file(&p).map_err(io(&p))?;
            }
        }
    }
    let latest = dir.join(&m.name).join("latest");
    std::fs::write(&latest, format!("{}\n", m.version)).map_err(io(&latest))?;
    let index = dir.join("index.json");
    let all = list(dir)?;
    let json = serde_json::to_vec_pretty(&all).map_err(|e| StoreError::Io(index.clone(), e.into()))?;
    std::fs::write(&index, json).map_err(io(&index))?;
    Ok(vdir)
}

fn read_manifest(vdir: &Path) -> Result<Manifest, StoreError> {
    let p = vdir.join("manifest.json");
    let b = std::fs::read(&p).map_err(io(&p))?;
    Manifest::parse(&b).map_err(|e| StoreError::Io(p, std::io::Error::other(e.to_string())))
}

/// Every package's manifest, sorted by name and version. Directories that
/// are not packages are skipped.
pub fn list(dir: &Path) -> Result<Vec<Manifest>, StoreError> {
    let mut out = Vec::new();
    let names = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(StoreError::Io(dir.to_path_buf(), e)),
    };
    for n in names.flatten() {
        let Ok(versions) = std::fs::read_dir(n.path()) else {
            continue;
        };
        for v in versions.flatten() {
            if let Ok(m) = read_manifest(&v.path()) {
                out.push(m);
            }
        }
    }
    out.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    Ok(out)
}

/// The directory of the package `name` / `sel`, if there is one.
pub fn find(dir: &Path, name: &str, sel: &Select) -> Option<PathBuf> {
    if !valid_name(name) {
        return None;
    }
    let ndir = dir.join(name);
    match sel {
        Select::Latest => {
            let v = std::fs::read_to_string(ndir.join("latest")).ok()?;
            let v = v.trim();
            valid_version(v).then(|| ndir.join(v))
        }
        Select::Version(v) => valid_version(v).then(|| ndir.join(v)).filter(|p| p.is_dir()),
        Select::Hash(h) => {
            let h = h.to_ascii_lowercase();
            let mut hits: Vec<PathBuf> = std::fs::read_dir(&ndir)
                .ok()?
                .flatten()
                .map(|e| e.path())
                .filter(|p| read_manifest(p).is_ok_and(|m| m.sha256.starts_with(&h)))
                .collect();
            hits.sort();
            hits.pop()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_refuses_what_the_node_would_refuse() {
        let dir = std::env::temp_dir().join(format!("weft-store-{}", std::process::id()));
        let k = SecretKey::from_seed([3; 32]);
        let e = publish(&dir, b"not wasm", "x", None, &k).unwrap_err();
        assert!(matches!(e, StoreError::Refused(..)), "{e}");
        assert!(e.to_string().contains("not a WebAssembly module"), "{e}");
        assert!(matches!(
            publish(&dir, b"", "../x", None, &k),
            Err(StoreError::BadName(_))
        ));
        assert!(list(&dir).unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_component_is_published_as_a_server_module() {
        let dir = std::env::temp_dir().join(format!("weft-store-srv-{}", std::process::id()));
        let k = SecretKey::from_seed([4; 32]);
        let mut component = COMPONENT_HEADER.to_vec();
        component.extend_from_slice(b"rest of a component");
        let m = publish(&dir, &component, "cdn", Some("1"), &k).unwrap();
        assert_eq!(m.abi, crate::package::SERVER_ABI);
        let trusted = [k.public()];
        let e = crate::package::Expect {
            name: "cdn",
            hash: None,
            trusted: &trusted,
        };
        let sig = m.sign(&k);
        // Never loaded as a packet plugin; accepted as a server module.
        assert!(matches!(
            crate::package::check(&e, &m, &component, Some(sig.as_bytes())),
            Err(crate::TrustError::WrongAbi { abi: 1000, .. })
        ));
        assert!(crate::package::check_server(&e, &m, &component, Some(sig.as_bytes())).is_ok());
        // And a packet plugin's manifest is not a server module's.
        let mut p = m.clone();
        p.abi = weft_wasm::abi::ABI_VERSION as u32;
        let psig = p.sign(&k);
        assert!(matches!(
            crate::package::check_server(&e, &p, &component, Some(psig.as_bytes())),
            Err(crate::TrustError::WrongAbi { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
