//! Demultiplexing keys: a protocol spec, an address spec and masked byte
//! patterns, turned into a classifier [`Match`] and [`Pattern`]s.
//!
//! ```text
//! proto  = [PORT "/"] ("ipv4" | "ipv6") ["/" ("udp" | "tcp" | "icmp" | "icmpv6" | NUMBER)]
//! addr   = *( "src=" PREFIX | "dst=" PREFIX | "sport=" P["-"Q] | "dport=" P["-"Q] )   (space-separated)
//! pattern: offset (from the IP header), value hex (≤ 16 bytes), mask hex (same length)
//! ```
//!
//! The family is enforced with a prefix: `ipv4` without a `dst` matches
//! `dst=0.0.0.0/0`. Every error says which word was wrong.

use ipnet::IpNet;
use weft_dataplane::Match;
use weft_nodeos::{BytePattern, DemuxKey};

/// Longest byte pattern.
pub const MAX_PATTERN: usize = 16;
/// Most patterns per key.
pub const MAX_PATTERNS: usize = 8;

/// `(data[l3 + offset ..][..value.len()] & mask) == value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    offset: usize,
    value: Vec<u8>,
    mask: Vec<u8>,
}

impl Pattern {
    /// Whether the packet `d`, IP header at `l3`, matches (a packet too
    /// short does not).
    pub fn matches(&self, d: &[u8], l3: usize) -> bool {
        let Some(s) = d.get(l3 + self.offset..l3 + self.offset + self.value.len()) else {
            return false;
        };
        s.iter()
            .zip(self.mask.iter().zip(self.value.iter()))
            .all(|(b, (m, v))| b & m == *v)
    }
}

fn hex(s: &str, what: &str) -> Result<Vec<u8>, String> {
    let s = s.trim_start_matches("0x");
    if s.is_empty() || !s.len().is_multiple_of(2) || s.len() / 2 > MAX_PATTERN {
        return Err(format!(
            "{what} {s:?}: an even number of hex digits, at most {MAX_PATTERN} bytes"
        ));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
                .ok_or_else(|| format!("{what} {s:?}: not hex"))
        })
        .collect()
}

fn pattern(p: &BytePattern) -> Result<Pattern, String> {
    let value = hex(&p.value, "pattern value")?;
    let mask = match &p.mask {
        Some(m) => hex(m, "pattern mask")?,
        None => vec![0xff; value.len()],
    };
    if mask.len() != value.len() {
        return Err(format!("pattern mask {:?} is not as long as its value", p.mask));
    }
    let value = value.iter().zip(&mask).map(|(v, m)| v & m).collect();
    Ok(Pattern {
        offset: p.offset as usize,
        value,
        mask,
    })
}

fn ports(s: &str, what: &str) -> Result<(u16, u16), String> {
    let bad = || format!("{what}={s:?}: a port or a range P-Q");
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let (a, b): (u16, u16) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if a > b {
        return Err(bad());
    }
    Ok((a, b))
}

/// A key, compiled: the filter match and the patterns. `port` looks a port
/// name up.
pub fn compile(key: &DemuxKey, port: impl Fn(&str) -> Option<u16>) -> Result<(Match, Vec<Pattern>), String> {
    let mut m = Match::default();
    let words: Vec<&str> = key.proto.split('/').collect();
    let mut i = 0;
    let fam = |w: &str| matches!(w, "ipv4" | "ipv6");
    if let Some(w) = words.first() {
        if !fam(w) {
            m.in_port = Some(port(w).ok_or_else(|| {
                format!(
                    "protocol spec {:?}: {w:?} is neither a port of this node nor ipv4|ipv6 \
                     ([PORT/]ipv4|ipv6[/udp|tcp|icmp|icmpv6|N])",
                    key.proto
                )
            })?);
            i = 1;
        }
    }
    let v6 = match words.get(i) {
        Some(&"ipv4") => false,
        Some(&"ipv6") => true,
        _ => {
            return Err(format!(
                "protocol spec {:?}: [PORT/]ipv4|ipv6[/udp|tcp|icmp|icmpv6|N]",
                key.proto
            ))
        }
    };
    i += 1;
    if let Some(t) = words.get(i) {
        m.proto = Some(match *t {
            "udp" => 17,
            "tcp" => 6,
            "icmp" => 1,
            "icmpv6" => 58,
            n => n
                .parse()
                .map_err(|_| format!("protocol spec {:?}: unknown transport {n:?}", key.proto))?,
        });
        i += 1;
    }
    if words.len() > i {
        return Err(format!("protocol spec {:?}: too many words", key.proto));
    }
    for w in key.addr.as_deref().unwrap_or("").split_whitespace() {
        let (k, v) = w
            .split_once('=')
            .ok_or_else(|| format!("address spec word {w:?}: KEY=VALUE"))?;
        match k {
            "src" | "dst" => {
                let p: IpNet = v
                    .parse()
                    .or_else(|_| v.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{k}={v:?}: not a prefix"))?;
                if matches!(p, IpNet::V6(_)) != v6 {
                    return Err(format!("{k}={v}: not of the family in the protocol spec"));
                }
                if k == "src" {
                    m.src = Some(p);
                } else {
                    m.dst = Some(p);
                }
            }
            "sport" => m.sport = Some(ports(v, k)?),
            "dport" => m.dport = Some(ports(v, k)?),
            _ => return Err(format!("address spec key {k:?}: src, dst, sport or dport")),
        }
    }
    if (m.sport.is_some() || m.dport.is_some()) && !matches!(m.proto, Some(6) | Some(17)) {
        return Err("ports need udp or tcp in the protocol spec".into());
    }
    if m.src.is_none() && m.dst.is_none() {
        m.dst = Some(if v6 {
            "::/0".parse().expect("literal")
        } else {
            "0.0.0.0/0".parse().expect("literal")
        });
    }
    if key.patterns.len() > MAX_PATTERNS {
        return Err(format!("at most {MAX_PATTERNS} byte patterns"));
    }
    let pats = key.patterns.iter().map(pattern).collect::<Result<Vec<_>, _>>()?;
    Ok((m, pats))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(proto: &str, addr: &str) -> DemuxKey {
        DemuxKey {
            proto: proto.into(),
            addr: (!addr.is_empty()).then(|| addr.into()),
            patterns: vec![],
        }
    }

    fn port(n: &str) -> Option<u16> {
        (n == "if0").then_some(0)
    }

    #[test]
    fn keys_compile_to_matches() {
        let (m, p) = compile(&key("if0/ipv4/udp", "dst=10.0.2.0/24 dport=5000-5010"), port).unwrap();
        assert_eq!(m.in_port, Some(0));
        assert_eq!(m.proto, Some(17));
        assert_eq!(m.dst, Some("10.0.2.0/24".parse().unwrap()));
        assert_eq!(m.dport, Some((5000, 5010)));
        assert!(p.is_empty());
        let (m, _) = compile(&key("ipv6", ""), port).unwrap();
        assert_eq!((m.in_port, m.proto, m.dst), (None, None, Some("::/0".parse().unwrap())));
    }

    #[test]
    fn bad_keys_say_which_word() {
        for (proto, addr, needle) in [
            ("if9/ipv4", "", "neither a port"),
            ("ipx", "", "ipv4|ipv6"),
            ("if0/udp", "", "ipv4|ipv6"),
            ("ipv4/sctpx", "", "unknown transport"),
            ("ipv4/udp/x", "", "too many"),
            ("ipv4/udp", "dst=::/0", "family"),
            ("ipv4/udp", "dport=9-1", "range"),
            ("ipv4", "dport=9", "need udp or tcp"),
            ("ipv4/udp", "color=red", "src, dst"),
            ("ipv4/udp", "dst", "KEY=VALUE"),
        ] {
            let e = compile(&key(proto, addr), port).unwrap_err();
            assert!(e.contains(needle), "{proto} {addr}: {e}");
        }
    }

    #[test]
    fn patterns_match_masked_bytes_from_the_ip_header() {
        let mut k = key("ipv4/udp", "");
        k.patterns = vec![BytePattern {
            offset: 28,
            value: "a0".into(),
            mask: Some("f0".into()),
        }];
        let (_, p) = compile(&k, port).unwrap();
        let mut d = vec![0u8; 14 + 28 + 4];
        d[14 + 28] = 0xa7;
        assert!(p[0].matches(&d, 14));
        d[14 + 28] = 0xb7;
        assert!(!p[0].matches(&d, 14));
        assert!(!p[0].matches(&d[..20], 14), "too short never matches");
        k.patterns[0].mask = Some("f".into());
        assert!(compile(&k, port).is_err());
        k.patterns[0].value = "zz".into();
        assert!(compile(&k, port).is_err());
    }
}
