//! ed25519 keys and their files.
//!
//! * Secret key file: one line `weft-ed25519-secret-v1 <64 hex digits>`
//!   (the 32-byte seed), mode 0600; a file readable by group or others is
//!   refused, as ssh does.
//! * Public key: 64 lowercase hex digits (the 32-byte ed25519 public key),
//!   the form `weft keygen` prints, `[plugins] trusted_keys` lists and
//!   `KEYFILE.pub` holds (lines starting with `#` are comments).
//! * Key id: the first 16 hex digits of the public key, shown by
//!   `weft plugin ls` as the signer.

use crate::{from_hex, to_hex};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

const SECRET_TAG: &str = "weft-ed25519-secret-v1";

/// Error reading, writing or parsing a key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A file could not be read or written.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// The file or text is not a key.
    #[error("{0}")]
    Format(String),
    /// The secret key file is readable by others.
    #[error("{0}: secret key file is accessible by group or others (mode {1:o}); run chmod 600 on it")]
    Permissions(PathBuf, u32),
    /// The system random source failed.
    #[error("cannot get random bytes for a key: {0}")]
    Random(String),
}

/// An ed25519 public key (a principal: who signed a plugin).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(pub(crate) VerifyingKey);

impl PublicKey {
    /// The raw 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The key of 32 raw bytes (as on-path signaling carries it); an error
    /// when they are not a point on the curve.
    pub fn from_bytes(b: &[u8; 32]) -> Result<PublicKey, KeyError> {
        VerifyingKey::from_bytes(b)
            .map(PublicKey)
            .map_err(|_| KeyError::Format("not an ed25519 public key (not a point on the curve)".into()))
    }

    /// The short id shown as a plugin's signer.
    pub fn id(&self) -> KeyId {
        KeyId(to_hex(&self.to_bytes())[..16].to_string())
    }

    /// Read a public key file (`KEYFILE.pub`): the hex key, `#` comments.
    pub fn read_file(path: &Path) -> Result<PublicKey, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|e| KeyError::Io(path.to_path_buf(), e))?;
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .unwrap_or("");
        line.parse()
            .map_err(|e: KeyError| KeyError::Format(format!("{}: {e}", path.display())))
    }

    /// Verify `sig` (64 bytes) over `msg` (strict verification: no
    /// malleable signatures, no weak keys).
    pub fn verify(&self, msg: &[u8], sig: &[u8; 64]) -> bool {
        let s = ed25519_dalek::Signature::from_bytes(sig);
        self.0.verify_strict(msg, &s).is_ok()
    }
}

impl std::str::FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        let s = s.trim();
        let bytes = from_hex::<32>(s).ok_or_else(|| {
            KeyError::Format(format!(
                "bad public key {s:?}: expected 64 hex digits (as printed by `weft keygen`)"
            ))
        })?;
        VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|_| KeyError::Format(format!("bad public key {s:?}: not a point on the ed25519 curve")))
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&to_hex(&self.to_bytes()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl serde::Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The short form of a public key: its first 16 hex digits.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct KeyId(pub String);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An ed25519 signing key. Its bytes are zeroed when dropped.
pub struct SecretKey(SigningKey);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(public {})", self.public())
    }
}

impl SecretKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<SecretKey, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        let k = SecretKey(SigningKey::from_bytes(&seed));
        seed.fill(0);
        Ok(k)
    }

    /// A key from a 32-byte seed (tests, reproducible demos).
    pub fn from_seed(seed: [u8; 32]) -> SecretKey {
        SecretKey(SigningKey::from_bytes(&seed))
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Sign `msg`.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.0.sign(msg).to_bytes()
    }

    /// Write the secret key file (mode 0600, created new: an existing file
    /// is never overwritten) and `PATH.pub` beside it.
    pub fn write_files(&self, path: &Path) -> Result<PathBuf, KeyError> {
        use std::os::unix::fs::OpenOptionsExt;
        let io = |e| KeyError::Io(path.to_path_buf(), e);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        writeln!(f, "{SECRET_TAG} {}", to_hex(&self.0.to_bytes())).map_err(io)?;
        let pub_path = PathBuf::from(format!("{}.pub", path.display()));
        std::fs::write(
            &pub_path,
            format!(
                "# weft ed25519 public key (trust it with [plugins] trusted_keys)\n{}\n",
                self.public()
            ),
        )
        .map_err(|e| KeyError::Io(pub_path.clone(), e))?;
        Ok(pub_path)
    }

    /// Read a secret key file; refused when group or others may read it.
    pub fn read_file(path: &Path) -> Result<SecretKey, KeyError> {
        use std::os::unix::fs::PermissionsExt;
        let io = |e| KeyError::Io(path.to_path_buf(), e);
        let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions(path.to_path_buf(), mode & 0o777));
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        let bad = || {
            KeyError::Format(format!(
                "{}: not a weft secret key file (expected `{SECRET_TAG} <64 hex digits>`; make one with `weft keygen`)",
                path.display()
            ))
        };
        let rest = text.trim().strip_prefix(SECRET_TAG).ok_or_else(bad)?;
        let mut seed = from_hex::<32>(rest.trim()).ok_or_else(bad)?;
        let k = SecretKey::from_seed(seed);
        seed.fill(0);
        Ok(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_files() {
        let k = SecretKey::generate().unwrap();
        let sig = k.sign(b"hello");
        assert!(k.public().verify(b"hello", &sig));
        assert!(!k.public().verify(b"hellp", &sig));
        let other = SecretKey::generate().unwrap();
        assert!(!other.public().verify(b"hello", &sig));

        let dir = std::env::temp_dir().join(format!("weft-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("k");
        let pub_path = k.write_files(&p).unwrap();
        assert!(k.write_files(&p).is_err(), "never overwrites");
        let k2 = SecretKey::read_file(&p).unwrap();
        assert_eq!(k2.public(), k.public());
        assert_eq!(PublicKey::read_file(&pub_path).unwrap(), k.public());
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(SecretKey::read_file(&p), Err(KeyError::Permissions(..))));
        let _ = std::fs::remove_dir_all(&dir);
        assert!("xyz".parse::<PublicKey>().is_err());
        assert_eq!(k.public().to_string().parse::<PublicKey>().unwrap(), k.public());
        assert_eq!(k.public().id().0.len(), 16);
    }
}
