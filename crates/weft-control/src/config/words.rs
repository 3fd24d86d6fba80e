//! The operator's words: MAC addresses, protocol names, port ranges,
//! addresses-or-prefixes and route prefixes, parsed and printed the same way
//! in the config file, the HTTP API and the CLI.
//!
//! Each word is a small type with [`FromStr`] (what the CLI's argument parser
//! calls), [`Display`] (what tables print) and serde in both directions as a
//! string (what the file and the API carry). Protocols and port ranges also
//! accept a bare integer, so `dport = 6060` works in TOML as well as
//! `dport = "6060"`.

use ipnet::IpNet;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt::{self, Display};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use weft_packet::Mac;

/// Error returned when a word does not parse; the message says what was
/// expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WordError(pub String);

/// A MAC address written `02:00:00:00:00:01` (or with `-`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MacAddr(pub Mac);

impl FromStr for MacAddr {
    type Err = WordError;
    fn from_str(s: &str) -> Result<Self, WordError> {
        let bad = || {
            WordError(format!(
                "bad MAC address {s:?}: expected six hex bytes like 02:00:00:00:00:01"
            ))
        };
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(bad());
        }
        let mut mac = [0u8; 6];
        for (b, p) in mac.iter_mut().zip(parts) {
            if p.is_empty() || p.len() > 2 {
                return Err(bad());
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        Ok(MacAddr(mac))
    }
}

impl Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// An IP protocol: `udp`, `tcp`, `icmp`, `icmpv6`, `esp` or a number 0–255.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proto(pub u8);

const PROTO_NAMES: [(&str, u8); 6] = [
    ("icmp", 1),
    ("tcp", 6),
    ("udp", 17),
    ("esp", 50),
    ("icmpv6", 58),
    ("ipv6-icmp", 58),
];

impl Proto {
    /// The protocol's name, if it has one.
    pub fn name(self) -> Option<&'static str> {
        PROTO_NAMES.iter().find(|(_, n)| *n == self.0).map(|(s, _)| *s)
    }

    /// True for the protocols whose ports Weft matches: TCP and UDP (the
    /// only transport headers the node reads ports from).
    pub fn has_ports(self) -> bool {
        matches!(self.0, 6 | 17)
    }
}

/// Ports in a filter or an explicit path's flow need their protocol named,
/// TCP or UDP: iptables refuses `--dport` without `-p`, and Weft does the
/// same rather than guess one (a port means nothing without its protocol).
/// `Err` is the sentence every front end shows.
pub fn check_ports(proto: Option<u8>, has_ports: bool) -> Result<(), String> {
    if !has_ports {
        return Ok(());
    }
    match proto {
        Some(p) if Proto(p).has_ports() => Ok(()),
        Some(p) => Err(format!(
            "ports (sport/dport) are matched for tcp and udp only, not {}",
            Proto(p)
        )),
        None => Err(
            "ports (sport/dport) need the protocol named: -p tcp or -p udp (proto = \"tcp\" / \"udp\"), \
             as iptables refuses --dport without -p"
                .into(),
        ),
    }
}

impl FromStr for Proto {
    type Err = WordError;
    fn from_str(s: &str) -> Result<Self, WordError> {
        let l = s.trim().to_ascii_lowercase();
        if let Some((_, n)) = PROTO_NAMES.iter().find(|(name, _)| *name == l) {
            return Ok(Proto(*n));
        }
        l.parse::<u8>().map(Proto).map_err(|_| {
            WordError(format!(
                "bad protocol {s:?}: expected udp, tcp, icmp, icmpv6, esp or 0-255"
            ))
        })
    }
}

impl Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "{}", self.0),
        }
    }
}

/// A transport port or inclusive range: `6060`, `1000-2000` (iptables'
/// `1000:2000` is accepted too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange(pub u16, pub u16);

impl FromStr for PortRange {
    type Err = WordError;
    fn from_str(s: &str) -> Result<Self, WordError> {
        let bad = || {
            WordError(format!(
                "bad port range {s:?}: expected a port 0-65535 or LOW-HIGH like 1000-2000"
            ))
        };
        let t = s.trim();
        let (lo, hi) = match t.split_once(['-', ':']) {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (t, t),
        };
        let lo: u16 = lo.parse().map_err(|_| bad())?;
        let hi: u16 = hi.parse().map_err(|_| bad())?;
        if lo > hi {
            return Err(WordError(format!(
                "bad port range {s:?}: the low port {lo} is above the high port {hi}"
            )));
        }
        Ok(PortRange(lo, hi))
    }
}

impl Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == self.1 {
            write!(f, "{}", self.0)
        } else {
            write!(f, "{}-{}", self.0, self.1)
        }
    }
}

impl From<PortRange> for (u16, u16) {
    fn from(r: PortRange) -> Self {
        (r.0, r.1)
    }
}

/// An address (a host prefix) or a prefix: `129.132.66.115`, `10.0.0.0/8`,
/// `2001:db8::/32`. Host bits of a prefix are cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrOrPrefix(pub IpNet);

impl FromStr for AddrOrPrefix {
    type Err = WordError;
    fn from_str(s: &str) -> Result<Self, WordError> {
        let t = s.trim();
        if let Ok(a) = t.parse::<IpAddr>() {
            return Ok(AddrOrPrefix(IpNet::from(a)));
        }
        t.parse::<IpNet>().map(|n| AddrOrPrefix(n.trunc())).map_err(|_| {
            WordError(format!(
                "bad address or prefix {s:?}: expected e.g. 10.0.0.1 or 10.0.0.0/24"
            ))
        })
    }
}

impl Display for AddrOrPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.prefix_len() == self.0.max_prefix_len() {
            write!(f, "{}", self.0.addr())
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// Parse a route destination as `ip route` does: a prefix, a bare address (a
/// host route) or `default`, which is `0.0.0.0/0` unless the gateway `via` is
/// IPv6 (then `::/0`). `default6` always means `::/0`.
pub fn parse_route_prefix(s: &str, via: Option<IpAddr>) -> Result<IpNet, WordError> {
    match s.trim() {
        "default" => Ok(match via {
            Some(IpAddr::V6(_)) => IpNet::from(IpAddr::V6(Ipv6Addr::UNSPECIFIED)).trunc_to(0),
            _ => IpNet::from(IpAddr::V4(Ipv4Addr::UNSPECIFIED)).trunc_to(0),
        }),
        "default6" => Ok(IpNet::from(IpAddr::V6(Ipv6Addr::UNSPECIFIED)).trunc_to(0)),
        t => t.parse::<AddrOrPrefix>().map(|p| p.0).map_err(|_| {
            WordError(format!(
                "bad prefix {s:?}: expected e.g. 10.0.1.0/24, 2001:db8::/64 or default"
            ))
        }),
    }
}

/// A route destination as `ip route` prints it: `default` for `0.0.0.0/0`
/// and `::/0`.
pub fn format_route_prefix(p: &IpNet) -> String {
    if p.prefix_len() == 0 {
        "default".to_string()
    } else {
        p.to_string()
    }
}

trait TruncTo {
    fn trunc_to(self, len: u8) -> IpNet;
}

impl TruncTo for IpNet {
    fn trunc_to(self, len: u8) -> IpNet {
        IpNet::new_assert(self.addr(), len).trunc()
    }
}

/// serde for a word as its string; integers are accepted on input for the
/// words that are numbers at heart (protocols, ports).
macro_rules! word_serde {
    ($t:ty, $what:literal, $ints:expr) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $t;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$t, E> {
                        v.parse::<$t>().map_err(E::custom)
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<$t, E> {
                        if $ints {
                            v.to_string().parse::<$t>().map_err(E::custom)
                        } else {
                            Err(E::invalid_type(de::Unexpected::Signed(v), &self))
                        }
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<$t, E> {
                        if $ints {
                            v.to_string().parse::<$t>().map_err(E::custom)
                        } else {
                            Err(E::invalid_type(de::Unexpected::Unsigned(v), &self))
                        }
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}

word_serde!(MacAddr, "a MAC address like \"02:00:00:00:00:01\"", false);
word_serde!(
    Proto,
    "a protocol: \"udp\", \"tcp\", \"icmp\", \"icmpv6\" or a number",
    true
);
word_serde!(PortRange, "a port or range like 6060 or \"1000-2000\"", true);
word_serde!(AddrOrPrefix, "an address or prefix like \"10.0.0.0/24\"", false);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        let m: MacAddr = "02:00:00:00:00:0a".parse().unwrap();
        assert_eq!(m.0, [2, 0, 0, 0, 0, 10]);
        assert_eq!(m.to_string(), "02:00:00:00:00:0a");
        assert!("02:00:00:00:00".parse::<MacAddr>().is_err());
        assert!("02:00:00:00:00:zz".parse::<MacAddr>().is_err());

        assert_eq!("UDP".parse::<Proto>().unwrap(), Proto(17));
        assert_eq!("47".parse::<Proto>().unwrap().to_string(), "47");
        assert_eq!(Proto(58).to_string(), "icmpv6");
        assert!("udpx".parse::<Proto>().is_err());

        assert_eq!("6060".parse::<PortRange>().unwrap(), PortRange(6060, 6060));
        assert_eq!("1000-2000".parse::<PortRange>().unwrap().to_string(), "1000-2000");
        assert_eq!("1000:2000".parse::<PortRange>().unwrap(), PortRange(1000, 2000));
        assert!("2000-1000".parse::<PortRange>().is_err());
        assert!("70000".parse::<PortRange>().is_err());

        assert_eq!("10.0.0.1".parse::<AddrOrPrefix>().unwrap().to_string(), "10.0.0.1");
        assert_eq!(
            "10.0.0.1/24".parse::<AddrOrPrefix>().unwrap().to_string(),
            "10.0.0.0/24"
        );
        assert!("10.0.0/24".parse::<AddrOrPrefix>().is_err());

        assert_eq!(parse_route_prefix("default", None).unwrap().to_string(), "0.0.0.0/0");
        let gw6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(parse_route_prefix("default", Some(gw6)).unwrap().to_string(), "::/0");
        assert_eq!(format_route_prefix(&"::/0".parse().unwrap()), "default");
        assert_eq!(format_route_prefix(&"10.1.0.0/16".parse().unwrap()), "10.1.0.0/16");
        assert!(parse_route_prefix("10.1.0.0/33", None).is_err());
    }

    #[test]
    fn words_serde() {
        #[derive(Deserialize, Serialize)]
        struct T {
            p: Proto,
            d: PortRange,
        }
        let t: T = serde_json::from_str(r#"{"p": 17, "d": "1-2"}"#).unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), r#"{"p":"udp","d":"1-2"}"#);
        let t: T = serde_json::from_str(r#"{"p": "tcp", "d": 80}"#).unwrap();
        assert_eq!((t.p, t.d), (Proto(6), PortRange(80, 80)));
    }
}
