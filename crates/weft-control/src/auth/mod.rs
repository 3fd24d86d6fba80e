//! Who may talk to a node, and what each may change (`docs/security.md`).
//!
//! * [`policy`] — principals and rights, checked by the API's handlers.
//! * [`request`] — how a client proves who it is: bearer tokens and
//!   ed25519-signed requests.
//! * [`guard()`] — the API's middleware: identify the caller (peer
//!   credentials on the Unix socket, `Authorization` on TCP), refuse
//!   browsers, check the noun's right, write the audit log.
//!
//! The policy is the node's `[[principal]]` sections
//! ([`crate::config::principals`]); the operator — root or the node's own
//! user on the Unix socket, or a principal holding `all` — is never limited.

pub mod guard;
pub mod policy;
pub mod request;

pub use guard::{guard, Auth, Caller};
pub use policy::{Limits, PortRule, Principal, Refused, Right};

use std::collections::HashMap;
use std::sync::Arc;
use weft_repo::PublicKey;

/// How a principal is recognised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// Requests signed with this key ([`request::SCHEME`]).
    Key(PublicKey),
    /// A bearer token with this sha256.
    Token([u8; 32]),
    /// A local user on the Unix socket.
    Uid(u32),
}

/// The node's principals, indexed by credential.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    principals: Vec<(Arc<Principal>, Vec<Credential>)>,
    keys: HashMap<[u8; 32], Arc<Principal>>,
    tokens: HashMap<[u8; 32], Arc<Principal>>,
    uids: HashMap<u32, Arc<Principal>>,
}

impl Policy {
    /// A policy of `principals`; refused when two share a name or a
    /// credential.
    pub fn new(principals: Vec<(Principal, Vec<Credential>)>) -> Result<Policy, String> {
        let mut p = Policy::default();
        for (pr, creds) in principals {
            if p.principals.iter().any(|(q, _)| q.name == pr.name) {
                return Err(format!("two principals are named {:?}", pr.name));
            }
            let pr = Arc::new(pr);
            for c in &creds {
                let dup = match c {
                    Credential::Key(k) => p.keys.insert(k.to_bytes(), pr.clone()),
                    Credential::Token(t) => p.tokens.insert(*t, pr.clone()),
                    Credential::Uid(u) => p.uids.insert(*u, pr.clone()),
                };
                if let Some(other) = dup {
                    return Err(format!(
                        "principals {:?} and {:?} share a credential",
                        other.name, pr.name
                    ));
                }
            }
            p.principals.push((pr, creds));
        }
        Ok(p)
    }

    /// The principal signing with `k`.
    pub fn by_key(&self, k: &PublicKey) -> Option<Arc<Principal>> {
        self.keys.get(&k.to_bytes()).cloned()
    }

    /// The principal holding bearer token `token`.
    pub fn by_token(&self, token: &str) -> Option<Arc<Principal>> {
        self.tokens.get(&request::token_sha256(token)).cloned()
    }

    /// The principal of local user `uid`.
    pub fn by_uid(&self, uid: u32) -> Option<Arc<Principal>> {
        self.uids.get(&uid).cloned()
    }

    /// Whether any principal can authenticate over the network (a key or
    /// a token): a TCP listener needs one.
    pub fn has_network_principals(&self) -> bool {
        !self.keys.is_empty() || !self.tokens.is_empty()
    }

    /// Every principal with its credentials, in the order configured.
    pub fn principals(&self) -> impl Iterator<Item = (&Principal, &[Credential])> {
        self.principals.iter().map(|(p, c)| (p.as_ref(), c.as_slice()))
    }
}
