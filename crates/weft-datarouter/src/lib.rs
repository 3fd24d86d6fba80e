//! # weft-datarouter — forwarding on application string tags (DataRouter)
//!
//! DataRouter (Touch and Pingali, IWAN 2003) carries a chain of labelled
//! strings in the IP header, like loose source routing: a packet is routed to
//! the address in its destination field; there a DataRouter looks the string
//! at the tag pointer up in a per-class table, rewrites the destination to
//! the next hop the table names, applies the entry's rewrite rules and
//! advances the pointer. `docs/datarouter.md` is the specification.
//!
//! Layers, bottom up:
//!
//! * [`wire`] — the IPv4 option (type `0x9e`) and the IPv6 routing header
//!   (type 253): views over bytes ([`wire::OptionView`], [`wire::RoutingView`]),
//!   the validated value [`wire::TagChain`] with `parse` / `buffer_len` /
//!   `emit`, and [`wire::TagError`] naming each kind of bad input.
//! * [`lookup`] — the six lookup algorithms over byte strings (exact,
//!   longest prefix, longest suffix, longest pattern, range, closest).
//! * [`rewrite`] — rewrite rules (replace with this router's address,
//!   substitute, delete, apply to later strings, insert a copy).
//! * [`table`] — class tables: per class, one index per algorithm, entries of
//!   pattern → next hop + rules, and the outcome of a miss; [`table::Tables`]
//!   holds every class of a node.
//! * [`command`] — the `droute` words (`class DNS add joe.com 10.0.2.2 alg
//!   suffix`), shared by the element's control port, the CLI and the node
//!   configuration file.
//! * [`element`] — the `datarouter` element class: resolves tags of packets
//!   addressed to the node (bound by a PREROUTING filter on the node's own
//!   addresses), fixing IPv4 header and transport checksums.
//! * [`app`] — the application API: build tags, attach them to a socket
//!   (IPv4 `IP_OPTIONS`, IPv6 raw socket), send, and read a received
//!   packet's tags. The only module with `unsafe` (in `app::sys`).
//!
//! **Architecture invariant:** everything but [`app`] is sans-IO: bytes in,
//! bytes out, no clock (time is [`weft_dataplane::Ctx::now_ns`]), no
//! sockets. No input — packet bytes, control requests, table files — can
//! make it panic.
#![warn(missing_docs)]

pub mod app;
pub mod command;
pub mod element;
pub mod lookup;
pub mod rewrite;
pub mod table;
pub mod wire;

pub use element::class;
pub use wire::{Tag, TagChain, TagError};

use std::fmt;

/// Routing classes with names (paper 2.1). Any number up to
/// [`MAX_CLASS`] may be used; these have aliases in the CLI and files.
pub mod classes {
    /// DNS names (longest suffix).
    pub const DNS: u16 = 1;
    /// URLs (host by suffix, then path by prefix).
    pub const URL: u16 = 2;
    /// Content hashes on a DHT ring such as Chord (exact).
    pub const MP3: u16 = 3;
    /// Free text (closest).
    pub const WEB: u16 = 4;
    /// IPv4 addresses: what the `self` rewrite rule records.
    pub const IPV4: u16 = 5;
    /// IPv6 addresses: what the `self` rewrite rule records.
    pub const IPV6: u16 = 6;

    /// Name → number, for parsing and printing.
    pub const ALIASES: [(&str, u16); 6] = [
        ("DNS", DNS),
        ("URL", URL),
        ("MP3", MP3),
        ("WEB", WEB),
        ("IPv4", IPV4),
        ("IPv6", IPV6),
    ];
}

/// Largest class number: classes and algorithms share 16 bits on the wire
/// (13 + 3, the merge the paper suggests), so a tag still costs 3 octets.
pub const MAX_CLASS: u16 = (1 << 13) - 1;

/// Parse a class name (case-insensitive alias) or number.
pub fn parse_class(s: &str) -> Result<u16, String> {
    if let Some((_, n)) = classes::ALIASES.iter().find(|(a, _)| a.eq_ignore_ascii_case(s)) {
        return Ok(*n);
    }
    match s.parse::<u16>() {
        Ok(n) if n <= MAX_CLASS => Ok(n),
        _ => Err(format!(
            "unknown class {s:?}: a number 0-{MAX_CLASS} or one of DNS, URL, MP3, WEB, IPv4, IPv6"
        )),
    }
}

/// A class's name if it has one, else its number.
pub fn class_name(c: u16) -> String {
    classes::ALIASES
        .iter()
        .find(|(_, n)| *n == c)
        .map(|(a, _)| a.to_string())
        .unwrap_or_else(|| c.to_string())
}

/// The lookup algorithm a tag asks for (3 bits on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// Longest matching pattern (regular expressions; the paper's default).
    Long = 0,
    /// Exact match (hashes).
    Exact = 1,
    /// Range: `LO..HI`, bytewise order.
    Range = 2,
    /// Longest prefix (addresses, URL paths).
    Prefix = 3,
    /// Longest suffix of the part before the first single `/` (DNS names,
    /// URL hosts).
    Suffix = 4,
    /// Closest key: numeric distance for hex keys, edit distance for text.
    Closest = 5,
}

impl Algorithm {
    /// Every algorithm, in wire order.
    pub const ALL: [Algorithm; 6] = [
        Algorithm::Long,
        Algorithm::Exact,
        Algorithm::Range,
        Algorithm::Prefix,
        Algorithm::Suffix,
        Algorithm::Closest,
    ];

    /// From the wire value; `None` for the unassigned values 6 and 7.
    pub fn from_u8(v: u8) -> Option<Algorithm> {
        Algorithm::ALL.get(v as usize).copied()
    }

    /// The CLI word.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Long => "long",
            Algorithm::Exact => "exact",
            Algorithm::Range => "range",
            Algorithm::Prefix => "prefix",
            Algorithm::Suffix => "suffix",
            Algorithm::Closest => "closest",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Algorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "long" | "longest" | "pattern" | "regex" => Ok(Algorithm::Long),
            "exact" | "hash" => Ok(Algorithm::Exact),
            "range" => Ok(Algorithm::Range),
            "prefix" | "long_prfx" => Ok(Algorithm::Prefix),
            "suffix" | "long_sufx" => Ok(Algorithm::Suffix),
            "closest" | "fuzzy" => Ok(Algorithm::Closest),
            _ => Err(format!(
                "unknown algorithm {s:?} (long, exact, range, prefix, suffix, closest)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_aliases_and_numbers() {
        assert_eq!(parse_class("dns"), Ok(1));
        assert_eq!(parse_class("IPv4"), Ok(5));
        assert_eq!(parse_class("4000"), Ok(4000));
        assert!(parse_class("8192").is_err());
        assert!(parse_class("FOO").is_err());
        assert_eq!(class_name(2), "URL");
        assert_eq!(class_name(77), "77");
    }

    #[test]
    fn algorithms_round_trip() {
        for a in Algorithm::ALL {
            assert_eq!(Algorithm::from_u8(a as u8), Some(a));
            assert_eq!(a.name().parse::<Algorithm>(), Ok(a));
        }
        assert_eq!(Algorithm::from_u8(6), None);
        assert!("bogus".parse::<Algorithm>().is_err());
    }
}
