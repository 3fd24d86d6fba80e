//! One node's answer on the response stack.
//!
//! ```text
//! entry = | length (16, these two octets included) | field* |
//! field = | type (8) | length (16) | body |
//! ```
//!
//! Every entry carries a STATUS (reason code and text); a node adds its
//! NODE name and ADDRESS, and what the request asked for: MODULE,
//! CAPABILITY and RESOURCE facts for a PROBE, TIMING and INSTANCE for a
//! SETUP. Fields a node does not know are kept and passed on as they are
//! (entries are written by nodes of any version and only read by the
//! requester).

use super::{addr_from, addr_octets, be16, be32, be64, efield, put_field, ModuleKind, Reason, WireError};
use super::{MAX_NAME_LEN, MAX_TEXT_LEN, MAX_VERSION_LEN};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// A module present on a node (a PROBE fact).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModuleFact {
    /// Installed by signaling (packet or server module), or `None`: one of
    /// the node's own classes (its building blocks, which dependencies
    /// name).
    pub kind: Option<ModuleKind>,
    /// Name.
    pub name: String,
    /// Version (empty when the node does not know one).
    pub version: String,
    /// Seconds left before it expires unless refreshed (None: not on a
    /// lifetime).
    pub remaining_s: Option<u32>,
}

/// Free and total amount of one resource (a PROBE fact).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ResourceFact {
    /// What: `instances`, `memory-mib`, `sessions`, …
    pub name: String,
    /// Free now.
    pub free: u64,
    /// In all.
    pub total: u64,
}

/// How long an install took at a node, µs, by step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Timing {
    /// Fetching the package from the code server (0: cached).
    pub fetch_us: u32,
    /// Checking hash, signature and ABI.
    pub verify_us: u32,
    /// Compiling the module.
    pub compile_us: u32,
    /// Creating, configuring and binding the instance.
    pub instantiate_us: u32,
}

/// One node's answer. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The node's name (empty: not given).
    pub node: String,
    /// The address it answered from.
    pub address: Option<IpAddr>,
    /// The outcome.
    pub reason: Reason,
    /// Why, for people (empty when `ok` says it all).
    pub text: String,
    /// PROBE: modules present.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modules: Vec<ModuleFact>,
    /// PROBE: capabilities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// PROBE: resources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ResourceFact>,
    /// SETUP: how long the install took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<Timing>,
    /// SETUP: the instance installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<u32>,
    /// Fields this version does not know, kept to pass on.
    #[serde(skip)]
    pub unknown: Vec<(u8, Vec<u8>)>,
}

/// Cut `s` to at most `max` octets at a character boundary.
pub(crate) fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut i = max;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    &s[..i]
}

impl Entry {
    /// An entry of `node` at `address` saying `reason`, `text` (cut to
    /// [`MAX_TEXT_LEN`]).
    pub fn new(node: &str, address: Option<IpAddr>, reason: Reason, text: &str) -> Entry {
        Entry {
            node: cut(node, MAX_NAME_LEN).to_string(),
            address,
            reason,
            text: cut(text, MAX_TEXT_LEN).to_string(),
            modules: Vec::new(),
            capabilities: Vec::new(),
            resources: Vec::new(),
            timing: None,
            instance: None,
            unknown: Vec::new(),
        }
    }

    /// Is this `ok`?
    pub fn is_ok(&self) -> bool {
        self.reason == Reason::Ok
    }

    /// The fields, in order, each as (type, body).
    fn fields(&self) -> Vec<(u8, Vec<u8>)> {
        let mut v = Vec::new();
        if !self.node.is_empty() {
            v.push((efield::NODE, self.node.as_bytes().to_vec()));
        }
        if let Some(a) = &self.address {
            v.push((efield::ADDRESS, addr_octets(a)));
        }
        let mut s = vec![self.reason.code()];
        s.extend_from_slice(self.text.as_bytes());
        v.push((efield::STATUS, s));
        for m in &self.modules {
            let mut b = vec![m.kind.map(ModuleKind::wire).unwrap_or(0)];
            b.extend_from_slice(&m.remaining_s.unwrap_or(u32::MAX).to_be_bytes());
            b.push(m.name.len().min(255) as u8);
            b.extend_from_slice(m.name.as_bytes());
            b.extend_from_slice(m.version.as_bytes());
            v.push((efield::MODULE, b));
        }
        for c in &self.capabilities {
            v.push((efield::CAPABILITY, c.as_bytes().to_vec()));
        }
        for r in &self.resources {
            let mut b = r.free.to_be_bytes().to_vec();
            b.extend_from_slice(&r.total.to_be_bytes());
            b.extend_from_slice(r.name.as_bytes());
            v.push((efield::RESOURCE, b));
        }
        if let Some(t) = &self.timing {
            let mut b = Vec::with_capacity(16);
            for x in [t.fetch_us, t.verify_us, t.compile_us, t.instantiate_us] {
                b.extend_from_slice(&x.to_be_bytes());
            }
            v.push((efield::TIMING, b));
        }
        if let Some(i) = self.instance {
            v.push((efield::INSTANCE, i.to_be_bytes().to_vec()));
        }
        v.extend(self.unknown.iter().cloned());
        v
    }

    /// Octets on the wire.
    pub fn buffer_len(&self) -> usize {
        2 + self.fields().iter().map(|(_, b)| 3 + b.len()).sum::<usize>()
    }

    /// Append the entry to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        if self.node.len() > MAX_NAME_LEN || self.text.len() > MAX_TEXT_LEN {
            return Err(WireError::TooLong);
        }
        if self
            .modules
            .iter()
            .any(|m| m.name.len() > MAX_NAME_LEN || m.version.len() > MAX_VERSION_LEN)
        {
            return Err(WireError::TooLong);
        }
        let len = u16::try_from(self.buffer_len()).map_err(|_| WireError::TooLong)?;
        out.extend_from_slice(&len.to_be_bytes());
        for (k, b) in self.fields() {
            put_field(out, k, &b)?;
        }
        Ok(())
    }

    /// Parse the entry at the start of `b` (offset `base` in the message);
    /// returns it and its length.
    pub fn parse(b: &[u8], base: usize) -> Result<(Entry, usize), WireError> {
        let bad = WireError::BadEntry { at: base };
        let len = b.get(..2).map(be16).ok_or(bad)? as usize;
        let body = b.get(2..len).ok_or(bad)?;
        let mut e = Entry::new("", None, Reason::Ok, "");
        let mut status = false;
        for f in super::Fields::new(body, base + 2) {
            let (kind, v, at) = f?;
            let badf = WireError::BadField { kind, at };
            let text = |max: usize| {
                std::str::from_utf8(v)
                    .ok()
                    .filter(|s| s.len() <= max && !s.chars().any(char::is_control))
                    .map(str::to_string)
                    .ok_or(WireError::BadText { kind, at })
            };
            match kind {
                efield::NODE if e.node.is_empty() => e.node = text(MAX_NAME_LEN)?,
                efield::ADDRESS if e.address.is_none() => e.address = Some(addr_from(v).ok_or(badf)?),
                efield::STATUS if !status => {
                    let (&c, t) = v.split_first().ok_or(badf)?;
                    e.reason = Reason::from_code(c);
                    e.text = std::str::from_utf8(t)
                        .ok()
                        .filter(|s| s.len() <= MAX_TEXT_LEN)
                        .ok_or(WireError::BadText { kind, at })?
                        .to_string();
                    status = true;
                }
                efield::MODULE => {
                    if v.len() < 6 {
                        return Err(badf);
                    }
                    let k = match v[0] {
                        0 => None,
                        c => Some(ModuleKind::from_code(c).ok_or(badf)?),
                    };
                    let remaining = be32(&v[1..5]);
                    let n = v[5] as usize;
                    let name = v.get(6..6 + n).ok_or(badf)?;
                    let version = &v[6 + n..];
                    let (Ok(name), Ok(version)) = (std::str::from_utf8(name), std::str::from_utf8(version)) else {
                        return Err(WireError::BadText { kind, at });
                    };
                    if name.len() > MAX_NAME_LEN || version.len() > MAX_VERSION_LEN {
                        return Err(WireError::BadText { kind, at });
                    }
                    e.modules.push(ModuleFact {
                        kind: k,
                        name: name.into(),
                        version: version.into(),
                        remaining_s: (remaining != u32::MAX).then_some(remaining),
                    });
                }
                efield::CAPABILITY => e.capabilities.push(text(MAX_NAME_LEN)?),
                efield::RESOURCE => {
                    if v.len() < 16 {
                        return Err(badf);
                    }
                    let name = std::str::from_utf8(&v[16..])
                        .ok()
                        .filter(|s| s.len() <= MAX_NAME_LEN)
                        .ok_or(WireError::BadText { kind, at })?;
                    e.resources.push(ResourceFact {
                        name: name.into(),
                        free: be64(&v[0..8]),
                        total: be64(&v[8..16]),
                    });
                }
                efield::TIMING if e.timing.is_none() => {
                    if v.len() != 16 {
                        return Err(badf);
                    }
                    e.timing = Some(Timing {
                        fetch_us: be32(&v[0..4]),
                        verify_us: be32(&v[4..8]),
                        compile_us: be32(&v[8..12]),
                        instantiate_us: be32(&v[12..16]),
                    });
                }
                efield::INSTANCE if e.instance.is_none() => {
                    if v.len() != 4 {
                        return Err(badf);
                    }
                    e.instance = Some(be32(v));
                }
                efield::NODE | efield::ADDRESS | efield::STATUS | efield::TIMING | efield::INSTANCE => {
                    return Err(WireError::DuplicateField { kind, at })
                }
                k => e.unknown.push((k, v.to_vec())),
            }
        }
        if !status {
            return Err(WireError::MissingField { kind: efield::STATUS });
        }
        Ok((e, len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// R2 at 10.0.2.1 installed instance #7 in 1.2 ms of fetch, 0.3 of
    /// verify, 9 of compile and 0.05 of instantiate.
    fn installed() -> Entry {
        let mut e = Entry::new("R2", Some("10.0.2.1".parse().unwrap()), Reason::Ok, "");
        e.timing = Some(Timing {
            fetch_us: 1200,
            verify_us: 300,
            compile_us: 9000,
            instantiate_us: 50,
        });
        e.instance = Some(7);
        e
    }

    #[rustfmt::skip]
    static INSTALLED_BYTES: &[u8] = &[
        0x00, 0x2c,                               // entry length 44
        efield::NODE, 0x00, 0x02, b'R', b'2',
        efield::ADDRESS, 0x00, 0x04, 10, 0, 2, 1,
        efield::STATUS, 0x00, 0x01, 0x00,         // ok, no text
        efield::TIMING, 0x00, 0x10,
        0x00, 0x00, 0x04, 0xb0, 0x00, 0x00, 0x01, 0x2c,
        0x00, 0x00, 0x23, 0x28, 0x00, 0x00, 0x00, 0x32,
        efield::INSTANCE, 0x00, 0x04, 0x00, 0x00, 0x00, 0x07,
    ];

    #[test]
    fn emit() {
        let mut out = vec![];
        installed().encode(&mut out).unwrap();
        assert_eq!(out, INSTALLED_BYTES);
        assert_eq!(installed().buffer_len(), INSTALLED_BYTES.len());
    }

    #[test]
    fn parse() {
        let (e, n) = Entry::parse(INSTALLED_BYTES, 0).unwrap();
        assert_eq!(n, INSTALLED_BYTES.len());
        assert_eq!(e, installed());
    }

    #[test]
    fn probe_facts_and_unknown_fields_survive() {
        let mut e = Entry::new("edge", Some("2001:db8::1".parse().unwrap()), Reason::Ok, "");
        e.modules = vec![
            ModuleFact {
                kind: Some(ModuleKind::Packet),
                name: "netmonitor".into(),
                version: "1.0".into(),
                remaining_s: Some(3599),
            },
            ModuleFact {
                kind: None,
                name: "counter".into(),
                version: String::new(),
                remaining_s: None,
            },
        ];
        e.capabilities = vec!["packet-modules".into()];
        e.resources = vec![ResourceFact {
            name: "instances".into(),
            free: 15,
            total: 16,
        }];
        e.unknown = vec![(0x99, vec![1, 2, 3])];
        let mut out = vec![];
        e.encode(&mut out).unwrap();
        assert_eq!(Entry::parse(&out, 0).unwrap(), (e, out.len()));
    }

    #[test]
    fn refusal_text_is_cut_at_a_character() {
        let long = "é".repeat(150);
        let e = Entry::new("R1", None, Reason::Prefix, &long);
        assert!(e.text.len() <= MAX_TEXT_LEN && e.text.len() >= MAX_TEXT_LEN - 1);
        let mut out = vec![];
        e.encode(&mut out).unwrap();
        assert_eq!(Entry::parse(&out, 0).unwrap().0.reason, Reason::Prefix);
    }

    #[test]
    fn malformed_entries() {
        // Cut anywhere.
        for n in 0..INSTALLED_BYTES.len() {
            assert!(Entry::parse(&INSTALLED_BYTES[..n], 0).is_err(), "cut at {n}");
        }
        // A length shorter than its own field.
        assert_eq!(
            Entry::parse(&[0x00, 0x01, 0, 0], 5).unwrap_err(),
            WireError::BadEntry { at: 5 }
        );
        // No status.
        assert_eq!(
            Entry::parse(&[0x00, 0x06, efield::NODE, 0, 1, b'x'], 0).unwrap_err(),
            WireError::MissingField { kind: efield::STATUS }
        );
        // Two statuses; a bad timing; an address of 5 octets.
        let mut b = INSTALLED_BYTES.to_vec();
        b.extend_from_slice(&[efield::STATUS, 0, 1, 0]);
        b[1] += 4;
        assert!(matches!(
            Entry::parse(&b, 0).unwrap_err(),
            WireError::DuplicateField {
                kind: efield::STATUS,
                ..
            }
        ));
        let mut b = INSTALLED_BYTES.to_vec();
        b[20] = 0x0f;
        assert!(Entry::parse(&b, 0).is_err());
        let e = [0x00, 0x0c, efield::ADDRESS, 0, 5, 1, 2, 3, 4, 5, efield::STATUS, 0];
        assert!(Entry::parse(&e, 0).is_err());
    }
}
