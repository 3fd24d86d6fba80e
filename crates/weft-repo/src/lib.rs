//! # weft-repo — signed code distribution for WebAssembly plugins
//!
//! Owns what lies between a plugin author and a node's
//! [`WasmHost`](weft_wasm::WasmHost): who signed a module, where it is
//! served from, and whether a node may load it. The formats are documented
//! in `docs/code-server.md`.
//!
//! * [`keys`] — ed25519 key pairs and their files ([`SecretKey`],
//!   [`PublicKey`], [`KeyId`]).
//! * [`package`] — a plugin package: module bytes, a [`Manifest`] and a
//!   signature over [`Manifest::signed_bytes`]; [`package::check`] is the
//!   whole trust decision.
//! * [`store`] — a repository directory: [`store::publish`], listing,
//!   lookup by name, version or hash.
//! * [`server`] — `weft repo serve`: the repository over plain HTTP.
//! * [`fetch`] — a tiny HTTP/1 GET client for the loader.
//! * [`loader`] — [`Loader`]: fetch a class by name (and optionally hash),
//!   verify hash, then signature by a trusted key, then the ABI
//!   ([`weft_wasm::verify_module`]), then compile and cache.
//!
//! **Architecture invariant:** nothing reaches [`weft_wasm::WasmHost`]
//! before its hash and signature have been checked against the node's
//! trusted keys; this crate knows nothing about nodes, the API or the CLI.
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod fetch;
pub mod keys;
pub mod loader;
pub mod package;
pub mod server;
pub mod store;

pub use keys::{KeyError, KeyId, PublicKey, SecretKey};
pub use loader::{Loaded, Loader, LoaderConfig, LoaderError, PluginSpec, VerifiedServer};
pub use package::{Manifest, TrustError};

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(D[(b >> 4) as usize] as char);
        s.push(D[(b & 15) as usize] as char);
    }
    s
}

/// Decode hex (either case) into exactly `N` bytes.
pub fn from_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.trim().as_bytes();
    if s.len() != N * 2 {
        return None;
    }
    let nib = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = nib(s[2 * i])? << 4 | nib(s[2 * i + 1])?;
    }
    Some(out)
}

/// sha256 of `bytes`, lowercase hex (the same as [`weft_wasm::ModuleInfo::hash`]).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    to_hex(&sha2::Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_round_trip() {
        let b = [0u8, 1, 0xab, 0xff];
        assert_eq!(super::to_hex(&b), "0001abff");
        assert_eq!(super::from_hex::<4>("0001ABff"), Some(b));
        assert_eq!(super::from_hex::<4>("0001abf"), None);
        assert_eq!(super::from_hex::<2>("zz00"), None);
    }
}
