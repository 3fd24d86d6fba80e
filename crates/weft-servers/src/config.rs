//! A server module's configuration: the SETUP's CONFIG field (at most 512
//! octets on the wire), `key=value` pairs separated by `;` or newlines.
//!
//! ```text
//! origin=10.0.3.2:8000; header=x-cdn: edge; max_entries=256
//! ```
//!
//! The host reads one key, **`origin=IP:PORT`** (up to
//! [`MAX_ORIGINS`]; an IP literal, IPv6 in brackets): the only places the
//! module's outgoing requests may go ([`crate::egress`]). Every other key is
//! the module's: the whole string is handed to it unchanged as the
//! environment variable `WEFT_CONFIG`. Keys are 1–32 of `a-z 0-9 _ -`;
//! values are printable ASCII without `;`, surrounding spaces trimmed.

use std::net::SocketAddr;

/// Origins a configuration may name at most.
pub const MAX_ORIGINS: usize = 4;
/// Longest configuration accepted (the wire carries at most 512 octets).
pub const MAX_CONFIG: usize = 4096;

/// Error returned by [`ModuleConfig::parse`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Longer than [`MAX_CONFIG`].
    #[error("configuration of {0} octets is longer than {MAX_CONFIG}")]
    TooLong(usize),
    /// A pair without `=`.
    #[error("{0:?} is not key=value")]
    NotPair(String),
    /// A key outside `a-z 0-9 _ -` or longer than 32.
    #[error("bad key {0:?}: use 1-32 of a-z 0-9 _ -")]
    BadKey(String),
    /// A value with a control or non-ASCII character.
    #[error("the value of {0} is not printable ASCII")]
    BadValue(String),
    /// An origin that is not `IP:PORT`.
    #[error("origin {0:?} is not IP:PORT (an address literal, IPv6 in brackets; no names)")]
    BadOrigin(String),
    /// More than [`MAX_ORIGINS`] origins.
    #[error("more than {MAX_ORIGINS} origins")]
    TooManyOrigins,
}

/// A parsed configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModuleConfig {
    /// The text as given (handed to the module as `WEFT_CONFIG`).
    pub raw: String,
    /// `key=value` pairs in order.
    pub pairs: Vec<(String, String)>,
    /// Where outgoing requests may go.
    pub origins: Vec<SocketAddr>,
}

impl ModuleConfig {
    /// Parse `text`; never panics.
    pub fn parse(text: &str) -> Result<ModuleConfig, ConfigError> {
        if text.len() > MAX_CONFIG {
            return Err(ConfigError::TooLong(text.len()));
        }
        let mut c = ModuleConfig {
            raw: text.to_string(),
            ..ModuleConfig::default()
        };
        for item in text.split([';', '\n']) {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| ConfigError::NotPair(item.chars().take(64).collect()))?;
            let (k, v) = (k.trim(), v.trim());
            if k.is_empty()
                || k.len() > 32
                || !k
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
            {
                return Err(ConfigError::BadKey(k.chars().take(64).collect()));
            }
            if !v.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                return Err(ConfigError::BadValue(k.into()));
            }
            if k == "origin" {
                let a: SocketAddr = v.parse().map_err(|_| ConfigError::BadOrigin(v.into()))?;
                if c.origins.len() == MAX_ORIGINS {
                    return Err(ConfigError::TooManyOrigins);
                }
                c.origins.push(a);
            }
            c.pairs.push((k.into(), v.into()));
        }
        Ok(c)
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_and_origins() {
        let c = ModuleConfig::parse("origin=10.0.3.2:8000; header=x-cdn: edge\n max_entries = 4;;").unwrap();
        assert_eq!(c.origins, vec!["10.0.3.2:8000".parse().unwrap()]);
        assert_eq!(c.get("header"), Some("x-cdn: edge"));
        assert_eq!(c.get("max_entries"), Some("4"));
        assert_eq!(c.pairs.len(), 3);
        let c = ModuleConfig::parse("origin=[2001:db8::2]:80").unwrap();
        assert_eq!(c.origins[0].port(), 80);
        assert_eq!(ModuleConfig::parse("").unwrap().pairs.len(), 0);
    }

    #[test]
    fn refusals() {
        assert!(matches!(ModuleConfig::parse("origin"), Err(ConfigError::NotPair(_))));
        assert!(matches!(ModuleConfig::parse("Origin=1"), Err(ConfigError::BadKey(_))));
        assert!(matches!(ModuleConfig::parse("=1"), Err(ConfigError::BadKey(_))));
        assert!(matches!(ModuleConfig::parse("a=\u{7}"), Err(ConfigError::BadValue(_))));
        assert!(matches!(ModuleConfig::parse("a=é"), Err(ConfigError::BadValue(_))));
        assert!(matches!(
            ModuleConfig::parse("origin=example.com:80"),
            Err(ConfigError::BadOrigin(_))
        ));
        assert!(matches!(
            ModuleConfig::parse("origin=10.0.0.1"),
            Err(ConfigError::BadOrigin(_))
        ));
        let five = (1..=5)
            .map(|i| format!("origin=10.0.0.{i}:80"))
            .collect::<Vec<_>>()
            .join(";");
        assert_eq!(ModuleConfig::parse(&five), Err(ConfigError::TooManyOrigins));
        assert!(matches!(
            ModuleConfig::parse(&"a".repeat(MAX_CONFIG + 1)),
            Err(ConfigError::TooLong(_))
        ));
    }
}
