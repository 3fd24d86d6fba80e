//! How a client proves who it is on each request (`docs/security.md`):
//!
//! * **Bearer token** — `Authorization: Bearer wft_<64 hex digits>`. The
//!   node keeps only the token's sha256 (`token_sha256` in the policy), so a
//!   readable configuration file gives nothing away. Simple, but whoever
//!   sees a request on the wire can replay it: use it on loopback.
//! * **Signed request** — `Authorization: Weft-Ed25519 key=HEX64,
//!   ts=UNIX_SECONDS, nonce=HEX, sig=HEX128`: an ed25519 signature (the keys
//!   `weft keygen` makes, the same kind that signs plugins) over
//!   [`signing_message`] — method, path and query, time, nonce and the
//!   body's sha256. A signature is good for [`WINDOW`] around the node's
//!   clock and once: a replayed nonce is refused ([`Nonces`]). Nothing
//!   secret crosses the wire.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use weft_repo::{from_hex, to_hex, PublicKey, SecretKey};

/// The scheme word of signed requests.
pub const SCHEME: &str = "Weft-Ed25519";
/// How far a signed request's time may be from the node's clock, either
/// way (seconds): long enough for unsynchronised clocks, short enough that
/// the nonces to remember stay few.
pub const WINDOW: u64 = 300;
/// Nonces remembered at most; beyond, signed requests are refused until
/// old ones expire (a principal flooding the node hurts only itself).
pub const MAX_NONCES: usize = 100_000;

/// The bytes a signed request's signature covers.
pub fn signing_message(method: &str, path_and_query: &str, ts: u64, nonce: &str, body: &[u8]) -> Vec<u8> {
    let body_hash = to_hex(&Sha256::digest(body));
    format!("weft-api-v1\n{method}\n{path_and_query}\n{ts}\n{nonce}\n{body_hash}").into_bytes()
}

/// The `Authorization` value for a request signed with `key` at `ts`
/// (Unix seconds) with a fresh random `nonce`.
pub fn sign(key: &SecretKey, method: &str, path_and_query: &str, body: &[u8], ts: u64, nonce: &str) -> String {
    let sig = key.sign(&signing_message(method, path_and_query, ts, nonce, body));
    format!(
        "{SCHEME} key={},ts={ts},nonce={nonce},sig={}",
        key.public(),
        to_hex(&sig)
    )
}

/// A fresh nonce: 16 random bytes in hex.
pub fn nonce() -> String {
    let mut b = [0u8; 16];
    // A failed random source leaves zeros: the node then refuses the
    // second request with that nonce, which is loud, not unsafe.
    let _ = getrandom::fill(&mut b);
    to_hex(&b)
}

/// A new bearer token: `wft_` and 32 random bytes in hex.
pub fn new_token() -> Result<String, String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| format!("cannot get random bytes: {e}"))?;
    Ok(format!("wft_{}", to_hex(&b)))
}

/// The sha256 a policy stores for `token`.
pub fn token_sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A parsed `Weft-Ed25519` authorization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    /// Who signed.
    pub key: PublicKey,
    /// When (Unix seconds).
    pub ts: u64,
    /// The nonce (hex, 16–64 digits).
    pub nonce: String,
    /// The signature.
    pub sig: [u8; 64],
}

/// Parse the parameters after `Weft-Ed25519 `.
pub fn parse_signed(params: &str) -> Result<Signed, String> {
    let (mut key, mut ts, mut nonce, mut sig) = (None, None, None, None);
    for part in params.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or_else(|| format!("bad {SCHEME} parameter {part:?}: expected name=value"))?;
        let slot = match k {
            "key" => &mut key,
            "ts" => &mut ts,
            "nonce" => &mut nonce,
            "sig" => &mut sig,
            _ => return Err(format!("unknown {SCHEME} parameter {k:?}")),
        };
        if slot.replace(v.trim()).is_some() {
            return Err(format!("{SCHEME} parameter {k:?} given twice"));
        }
    }
    let missing = |n: &str| format!("{SCHEME} authorization without {n}=");
    let key: PublicKey = key
        .ok_or_else(|| missing("key"))?
        .parse()
        .map_err(|e: weft_repo::KeyError| e.to_string())?;
    let ts = ts
        .ok_or_else(|| missing("ts"))?
        .parse::<u64>()
        .map_err(|_| "bad ts=: expected Unix seconds".to_string())?;
    let nonce = nonce.ok_or_else(|| missing("nonce"))?;
    if !(16..=64).contains(&nonce.len()) || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("bad nonce=: expected 16 to 64 hex digits".into());
    }
    let sig = from_hex::<64>(sig.ok_or_else(|| missing("sig"))?).ok_or("bad sig=: expected 128 hex digits")?;
    Ok(Signed {
        key,
        ts,
        nonce: nonce.to_ascii_lowercase(),
        sig,
    })
}

/// The nonces of signed requests seen within the window.
#[derive(Debug, Default)]
pub struct Nonces {
    seen: Mutex<HashMap<([u8; 32], String), u64>>,
}

/// Why a signed request was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignedError {
    /// Outside [`WINDOW`] of the node's clock.
    #[error("the request's time {ts} is more than {WINDOW} s from the node's ({now})")]
    Stale {
        /// The request's.
        ts: u64,
        /// The node's.
        now: u64,
    },
    /// The signature does not verify.
    #[error("the signature does not match the request")]
    BadSignature,
    /// The nonce was used before.
    #[error("the nonce was used before (a replayed request)")]
    Replayed,
    /// Too many nonces to remember.
    #[error("too many signed requests in the last {WINDOW} s; try again later")]
    Busy,
}

impl Nonces {
    /// Check `s` against a request at `now` (Unix seconds) and remember
    /// its nonce.
    pub fn check(&self, s: &Signed, msg: &[u8], now: u64) -> Result<(), SignedError> {
        if s.ts.abs_diff(now) > WINDOW {
            return Err(SignedError::Stale { ts: s.ts, now });
        }
        if !s.key.verify(msg, &s.sig) {
            return Err(SignedError::BadSignature);
        }
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= MAX_NONCES {
            seen.retain(|_, t| t.abs_diff(now) <= WINDOW);
            if seen.len() >= MAX_NONCES {
                return Err(SignedError::Busy);
            }
        }
        match seen.entry((s.key.to_bytes(), s.nonce.clone())) {
            std::collections::hash_map::Entry::Occupied(_) => Err(SignedError::Replayed),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(s.ts);
                Ok(())
            }
        }
    }
}

/// The fuzz target `api_authorization`: any bytes as an `Authorization`
/// value (and, after a NUL, a body) — parsed and checked against a policy
/// key, a typed error or a verdict, never a panic.
pub fn fuzz_authorization(data: &[u8]) {
    let (head, body) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(text) = std::str::from_utf8(head) else { return };
    let rest = text.strip_prefix(SCHEME).map(str::trim_start).unwrap_or(text);
    if let Ok(s) = parse_signed(rest) {
        let msg = signing_message("POST", "/v1/filters", s.ts, &s.nonce, body);
        let _ = Nonces::default().check(&s, &msg, s.ts);
    }
    let _ = token_sha256(text);
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Any text as an authorization: no panic (the fuzz target's body).
        #[test]
        fn any_authorization_is_an_error_or_a_verdict(t in ".{0,300}", b in proptest::collection::vec(0u8.., 0..64)) {
            let mut data = t.into_bytes();
            data.push(0);
            data.extend(b);
            fuzz_authorization(&data);
        }
    }

    #[test]
    fn sign_parse_verify_and_replay() {
        let k = SecretKey::from_seed([7; 32]);
        let n = nonce();
        let h = sign(&k, "POST", "/v1/filters", b"{}", 1_000_000, &n);
        let params = h.strip_prefix("Weft-Ed25519 ").unwrap();
        let s = parse_signed(params).unwrap();
        assert_eq!((s.key, s.ts), (k.public(), 1_000_000));
        let msg = signing_message("POST", "/v1/filters", s.ts, &s.nonce, b"{}");
        let nonces = Nonces::default();
        assert_eq!(nonces.check(&s, &msg, 1_000_100), Ok(()));
        assert_eq!(nonces.check(&s, &msg, 1_000_100), Err(SignedError::Replayed));
        // Another body, path or method breaks the signature.
        let other = signing_message("POST", "/v1/filters", s.ts, &s.nonce, b"{\"x\":1}");
        let s2 = Signed {
            nonce: nonce(),
            ..s.clone()
        };
        assert_eq!(nonces.check(&s2, &other, 1_000_000), Err(SignedError::BadSignature));
        assert!(matches!(
            nonces.check(&s, &msg, 1_000_000 + WINDOW + 1),
            Err(SignedError::Stale { .. })
        ));
    }

    #[test]
    fn malformed_authorizations_are_refused_with_reasons() {
        for (bad, why) in [
            ("key=00", "bad public key"),
            ("ts=1", "without key"),
            ("key=a,key=b", "twice"),
            ("color=red", "unknown"),
            ("nonsense", "name=value"),
        ] {
            let e = parse_signed(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let k = SecretKey::from_seed([1; 32]).public();
        let e = parse_signed(&format!("key={k},ts=1,nonce=zz,sig=00")).unwrap_err();
        assert!(e.contains("nonce"), "{e}");
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_ne!(a, b);
        assert!(a.starts_with("wft_") && a.len() == 68);
        assert_eq!(token_sha256(&a), token_sha256(&a));
        assert_ne!(token_sha256(&a), token_sha256(&b));
    }
}
