//! A plugin package: the module's bytes, a [`Manifest`], and an ed25519
//! signature over [`Manifest::signed_bytes`].
//!
//! The signed bytes are UTF-8 text, one `key=value` per line, each line
//! ending in `\n`, in this order and nothing else:
//!
//! ```text
//! weft-plugin-v1
//! name=<name>
//! version=<version>
//! abi=<plugin ABI version, decimal>
//! sha256=<sha256 of the module, 64 lowercase hex digits>
//! size=<module length in bytes, decimal>
//! ```
//!
//! The signature binds the content hash to a name and a version, so a
//! repository cannot serve a signed module under another name, and any
//! change to the module changes its hash. [`check`] is the whole trust
//! decision; the ABI check of the bytes ([`weft_wasm::verify_module`])
//! follows it.

use crate::keys::{KeyId, PublicKey, SecretKey};
use crate::{from_hex, sha256_hex, to_hex};

/// The `abi` of a **server module**: a WebAssembly component of the WASI
/// HTTP proxy world (`wasi:http/proxy@0.2`, `docs/server-modules.md`),
/// not a packet plugin. Signed like any package, so a node can never load
/// one as the other: the packet loader wants [`weft_wasm::abi::ABI_VERSION`],
/// the server-module host this.
pub const SERVER_ABI: u32 = 1000;

/// Domain separation tag: the first line of the signed bytes.
pub const SIGNING_TAG: &str = "weft-plugin-v1";

/// The package's description, served as `manifest.json`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Class name the plugin is loaded as.
    pub name: String,
    /// Version (free text, e.g. `1.0.2`).
    pub version: String,
    /// Plugin ABI version the module speaks.
    pub abi: u32,
    /// sha256 of the module, lowercase hex.
    pub sha256: String,
    /// Module length in bytes.
    pub size: u64,
    /// Public key of the signer (hex); the signature must verify under it
    /// and the node must trust it.
    pub signer: PublicKey,
}

/// Why a package is not trusted. Each variant names the check that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// The manifest is not valid JSON of the expected shape.
    #[error("bad manifest: {0}")]
    BadManifest(String),
    /// The manifest describes another class than the one asked for.
    #[error("name mismatch: asked for {asked:?}, the manifest is for {found:?}")]
    NameMismatch {
        /// Asked for.
        asked: String,
        /// In the manifest.
        found: String,
    },
    /// The module's length differs from the manifest's.
    #[error("tampered module: {got} bytes, the signed manifest says {expected}")]
    SizeMismatch {
        /// Manifest.
        expected: u64,
        /// Downloaded.
        got: u64,
    },
    /// The module's sha256 differs from the manifest's.
    #[error("tampered module (hash mismatch): sha256 of the bytes is {got}, the signed manifest says {expected}")]
    HashMismatch {
        /// Manifest.
        expected: String,
        /// Downloaded.
        got: String,
    },
    /// A specific hash was asked for and another was served.
    #[error("hash mismatch: asked for {name}@{asked}, the repository served sha256 {got}")]
    NotRequestedHash {
        /// Class name.
        name: String,
        /// Asked for.
        asked: String,
        /// Served.
        got: String,
    },
    /// No signature (or an empty one).
    #[error("unsigned module: {name} {version} has no signature; a node loads only signed plugins")]
    Unsigned {
        /// Class name.
        name: String,
        /// Version.
        version: String,
    },
    /// Signed by a key this node does not trust.
    #[error(
        "unknown key: {name} {version} is signed by key {key}, which this node does not trust ([plugins] trusted_keys)"
    )]
    UnknownKey {
        /// Class name.
        name: String,
        /// Version.
        version: String,
        /// The signer's id.
        key: KeyId,
    },
    /// The signature does not verify.
    #[error("bad signature: the signature on {name} {version} does not verify under key {key} (tampered manifest or signature)")]
    BadSignature {
        /// Class name.
        name: String,
        /// Version.
        version: String,
        /// The claimed signer's id.
        key: KeyId,
    },
    /// The manifest announces an ABI this node does not speak.
    #[error("wrong ABI: {name} {version} declares plugin ABI v{abi}, this node speaks v{ours}")]
    WrongAbi {
        /// Class name.
        name: String,
        /// Version.
        version: String,
        /// Declared.
        abi: u32,
        /// Ours.
        ours: u32,
    },
}

/// Whether `s` may be a plugin name: 1–64 of `a-z 0-9 _ - .`, starting
/// with a letter or digit (it becomes a directory and a URL segment).
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.'))
}

/// Whether `s` may be a version: 1–64 of `A-Z a-z 0-9 _ - . +`, starting
/// with a letter or digit, and not `latest`.
pub fn valid_version(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s != "latest"
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'+'))
}

impl Manifest {
    /// The manifest of `module`, to be signed by `signer`.
    pub fn new(name: &str, version: &str, module: &[u8], signer: PublicKey) -> Manifest {
        Manifest {
            name: name.into(),
            version: version.into(),
            abi: weft_wasm::abi::ABI_VERSION as u32,
            sha256: sha256_hex(module),
            size: module.len() as u64,
            signer,
        }
    }

    /// The exact bytes the signature covers (see the module docs).
    pub fn signed_bytes(&self) -> Vec<u8> {
        format!(
            "{SIGNING_TAG}\nname={}\nversion={}\nabi={}\nsha256={}\nsize={}\n",
            self.name, self.version, self.abi, self.sha256, self.size
        )
        .into_bytes()
    }

    /// Sign with `key` (which should be the manifest's signer); the
    /// signature file's contents: 128 hex digits and a newline.
    pub fn sign(&self, key: &SecretKey) -> String {
        format!("{}\n", to_hex(&key.sign(&self.signed_bytes())))
    }

    /// Parse `manifest.json`.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, TrustError> {
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| TrustError::BadManifest(e.to_string()))?;
        if !valid_name(&m.name) || !valid_version(&m.version) {
            return Err(TrustError::BadManifest(format!(
                "bad name or version {:?} {:?}",
                m.name, m.version
            )));
        }
        if from_hex::<32>(&m.sha256).is_none() {
            return Err(TrustError::BadManifest(format!("bad sha256 {:?}", m.sha256)));
        }
        Ok(m)
    }
}

/// What [`check`] is asked to accept.
#[derive(Clone, Debug)]
pub struct Expect<'a> {
    /// The class name asked for.
    pub name: &'a str,
    /// A content hash asked for (`NAME@HASH`), if any.
    pub hash: Option<&'a str>,
    /// The keys this node trusts.
    pub trusted: &'a [PublicKey],
}

/// The trust decision, in order: the manifest names the class asked for;
/// the module's length and sha256 are the manifest's (and the hash asked
/// for); a signature is present; its key is trusted; it verifies over
/// [`Manifest::signed_bytes`]; the declared ABI is ours. Returns the
/// signer's id.
pub fn check(expect: &Expect<'_>, m: &Manifest, module: &[u8], signature: Option<&[u8]>) -> Result<KeyId, TrustError> {
    check_as(expect, m, module, signature, weft_wasm::abi::ABI_VERSION as u32)
}

/// [`check`] for a server module: the same checks, the ABI [`SERVER_ABI`].
pub fn check_server(
    expect: &Expect<'_>,
    m: &Manifest,
    module: &[u8],
    signature: Option<&[u8]>,
) -> Result<KeyId, TrustError> {
    check_as(expect, m, module, signature, SERVER_ABI)
}

fn check_as(
    expect: &Expect<'_>,
    m: &Manifest,
    module: &[u8],
    signature: Option<&[u8]>,
    ours: u32,
) -> Result<KeyId, TrustError> {
    if m.name != expect.name {
        return Err(TrustError::NameMismatch {
            asked: expect.name.into(),
            found: m.name.clone(),
        });
    }
    let got = sha256_hex(module);
    if got != m.sha256.to_ascii_lowercase() {
        return Err(TrustError::HashMismatch {
            expected: m.sha256.clone(),
            got,
        });
    }
    if module.len() as u64 != m.size {
        return Err(TrustError::SizeMismatch {
            expected: m.size,
            got: module.len() as u64,
        });
    }
    if let Some(h) = expect.hash {
        if !got.starts_with(&h.to_ascii_lowercase()) {
            return Err(TrustError::NotRequestedHash {
                name: m.name.clone(),
                asked: h.into(),
                got,
            });
        }
    }
    let sig_text = signature.map(|s| String::from_utf8_lossy(s).trim().to_string());
    let Some(sig_text) = sig_text.filter(|s| !s.is_empty()) else {
        return Err(TrustError::Unsigned {
            name: m.name.clone(),
            version: m.version.clone(),
        });
    };
    let key = m.signer.id();
    if !expect.trusted.contains(&m.signer) {
        return Err(TrustError::UnknownKey {
            name: m.name.clone(),
            version: m.version.clone(),
            key,
        });
    }
    let bad = || TrustError::BadSignature {
        name: m.name.clone(),
        version: m.version.clone(),
        key: key.clone(),
    };
    let sig = from_hex::<64>(&sig_text).ok_or_else(bad)?;
    if !m.signer.verify(&m.signed_bytes(), &sig) {
        return Err(bad());
    }
    if m.abi != ours {
        return Err(TrustError::WrongAbi {
            name: m.name.clone(),
            version: m.version.clone(),
            abi: m.abi,
            ours,
        });
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_bytes_are_the_documented_text() {
        let k = SecretKey::from_seed([7; 32]);
        let m = Manifest::new("counter", "1.0", b"\0asm", k.public());
        let text = String::from_utf8(m.signed_bytes()).unwrap();
        assert_eq!(
            text,
            format!(
                "weft-plugin-v1\nname=counter\nversion=1.0\nabi=1\nsha256={}\nsize=4\n",
                sha256_hex(b"\0asm")
            )
        );
    }

    #[test]
    fn check_names_each_failure() {
        let k = SecretKey::from_seed([1; 32]);
        let stranger = SecretKey::from_seed([2; 32]);
        let module = b"module bytes".to_vec();
        let m = Manifest::new("p", "1", &module, k.public());
        let sig = m.sign(&k);
        let trusted = [k.public()];
        let e = Expect {
            name: "p",
            hash: None,
            trusted: &trusted,
        };
        assert_eq!(check(&e, &m, &module, Some(sig.as_bytes())), Ok(k.public().id()));
        let r = check(&e, &m, b"module bytez", Some(sig.as_bytes()));
        assert!(matches!(r, Err(TrustError::HashMismatch { .. })), "{r:?}");
        assert!(matches!(check(&e, &m, &module, None), Err(TrustError::Unsigned { .. })));
        assert!(matches!(
            check(&e, &m, &module, Some(b"\n")),
            Err(TrustError::Unsigned { .. })
        ));
        let mut m2 = m.clone();
        m2.version = "2".into();
        assert!(matches!(
            check(&e, &m2, &module, Some(sig.as_bytes())),
            Err(TrustError::BadSignature { .. })
        ));
        let m3 = Manifest::new("p", "1", &module, stranger.public());
        let s3 = m3.sign(&stranger);
        let r = check(&e, &m3, &module, Some(s3.as_bytes()));
        assert!(matches!(r, Err(TrustError::UnknownKey { .. })), "{r:?}");
        assert!(r.unwrap_err().to_string().starts_with("unknown key"));
        let mut m4 = m.clone();
        m4.abi = 2;
        let s4 = m4.sign(&k);
        assert!(matches!(
            check(&e, &m4, &module, Some(s4.as_bytes())),
            Err(TrustError::WrongAbi { abi: 2, .. })
        ));
        let e2 = Expect {
            hash: Some("00ff"),
            ..e.clone()
        };
        assert!(matches!(
            check(&e2, &m, &module, Some(sig.as_bytes())),
            Err(TrustError::NotRequestedHash { .. })
        ));
        let e3 = Expect { name: "q", ..e };
        assert!(matches!(
            check(&e3, &m, &module, Some(sig.as_bytes())),
            Err(TrustError::NameMismatch { .. })
        ));
    }

    #[test]
    fn names_and_versions() {
        assert!(valid_name("netmonitor") && valid_name("c-counter") && valid_name("a.b_c"));
        assert!(!valid_name("") && !valid_name("../x") && !valid_name("A") && !valid_name(".x"));
        assert!(valid_version("1.0.2+build") && !valid_version("latest") && !valid_version("1/2"));
    }
}
