//! The packet classifier: filters on the 6-tuple (in-port, source and
//! destination prefix, source and destination port range, protocol), any field
//! wildcarded, matched in rule order (the first rule that matches wins).
//!
//! Lookup must not grow linearly with the number of rules.
//! (PLACEHOLDER: linear scan; to be replaced by tuple-space search.)

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use weft_packet::flow::{addr_bits, Family, FlowKey};

/// A filter's match: every `None` field is a wildcard.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Match {
    /// Receiving port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_port: Option<u16>,
    /// Source prefix (its family also restricts the packet's family).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<IpNet>,
    /// Destination prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst: Option<IpNet>,
    /// Source port range, inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sport: Option<(u16, u16)>,
    /// Destination port range, inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dport: Option<(u16, u16)>,
    /// IP protocol number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<u8>,
}

impl Match {
    /// True when `key` satisfies every non-wildcard field (the reference
    /// semantics every classifier structure must agree with).
    pub fn matches(&self, key: &FlowKey) -> bool {
        if let Some(p) = self.in_port {
            if key.in_port != p {
                return false;
            }
        }
        if let Some(pr) = self.proto {
            if key.proto != pr {
                return false;
            }
        }
        if !prefix_ok(&self.src, key.family, key.src) || !prefix_ok(&self.dst, key.family, key.dst) {
            return false;
        }
        if let Some((lo, hi)) = self.sport {
            if key.sport < lo || key.sport > hi {
                return false;
            }
        }
        if let Some((lo, hi)) = self.dport {
            if key.dport < lo || key.dport > hi {
                return false;
            }
        }
        true
    }
}

fn prefix_ok(net: &Option<IpNet>, fam: Family, bits: u128) -> bool {
    match net {
        None => true,
        Some(n) => {
            let nf = match n {
                IpNet::V4(_) => Family::V4,
                IpNet::V6(_) => Family::V6,
            };
            if nf != fam {
                return false;
            }
            let (width, len) = match n {
                IpNet::V4(v) => (32u32, v.prefix_len() as u32),
                IpNet::V6(v) => (128u32, v.prefix_len() as u32),
            };
            if len == 0 {
                return true;
            }
            let shift = width - len;
            (bits >> shift) == (addr_bits(n.network()) >> shift)
        }
    }
}

/// A compiled, immutable rule set. Built off to the side and published in a
/// pipeline snapshot.
#[derive(Clone, Debug, Default)]
pub struct Classifier {
    rules: Vec<Match>,
}

impl Classifier {
    /// Compile `rules`; index order is rule order (priority).
    pub fn build(rules: &[Match]) -> Self {
        Classifier { rules: rules.to_vec() }
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Index of the first rule (in rule order) that matches `key`.
    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Option<usize> {
        self.rules.iter().position(|r| r.matches(key))
    }
}
