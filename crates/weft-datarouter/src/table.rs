//! Class tables (paper 2.2): per routing class, entries of match field →
//! next-hop address + rewrite rules, one index per lookup algorithm, and
//! what happens on a miss.
//!
//! A tag names its class *and* its algorithm, so an entry is added to one
//! algorithm's index of a class (`droute class DNS add .joe.com 10.0.2.2 alg
//! suffix`) and found only by tags asking for that algorithm.
//!
//! [`Tables`] holds every class of a node (up to 8192, indexed directly, so
//! finding a class costs one array read). The element keeps it behind an
//! `Arc`: edits mutate in place when nothing else holds it
//! ([`std::sync::Arc::make_mut`]), and a whole new table set built off to the
//! side replaces the old one in one pointer store — between two batches, so
//! no packet sees half a table.

use crate::lookup::{Affix, Closest, Exact, Patterns, RangeError, Ranges, Scratch};
use crate::rewrite::Rule;
use crate::Algorithm;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// What a class table entry says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The next DataRouter (or the final destination).
    pub next_hop: IpAddr,
    /// Rules applied after the match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
}

/// What a DataRouter does with a packet whose string matches nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Miss {
    /// Drop it and count it (`miss` counter).
    #[default]
    Drop,
    /// Drop it and send ICMP destination unreachable (host unreachable;
    /// ICMPv6 address unreachable) to its source.
    Icmp,
}

impl std::fmt::Display for Miss {
    /// The word `droute class CLASS miss` takes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Miss::Drop => "drop",
            Miss::Icmp => "icmp",
        })
    }
}

impl std::str::FromStr for Miss {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "drop" => Ok(Miss::Drop),
            "icmp" => Ok(Miss::Icmp),
            _ => Err(format!("unknown miss outcome {s:?} (drop, icmp)")),
        }
    }
}

/// A table pattern: the key bytes, and for ranges the upper bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    /// As the operator wrote it (regular expressions use this).
    pub text: String,
    /// The key (low end for ranges).
    pub bytes: Vec<u8>,
    /// Range upper bound.
    pub hi: Option<Vec<u8>>,
    /// Written in hex (`0x…`): numeric for `closest`.
    pub hex: bool,
}

impl Pattern {
    /// Parse operator text for `alg`: `0x…` is hex bytes; a range is
    /// `LO..HI`; a `long` pattern is a regular expression kept as text.
    pub fn parse(text: &str, alg: Algorithm) -> Result<Pattern, TableError> {
        let bad = |m: String| TableError::Pattern(text.to_string(), m);
        if alg == Algorithm::Range {
            let (lo, hi) = text.split_once("..").ok_or_else(|| bad("a range is LO..HI".into()))?;
            return Ok(Pattern {
                text: text.to_string(),
                bytes: crate::wire::parse_bytes(lo).map_err(bad)?,
                hi: Some(crate::wire::parse_bytes(hi).map_err(bad)?),
                hex: lo.starts_with("0x"),
            });
        }
        let bytes = if alg == Algorithm::Long {
            Patterns::<Entry>::check(text).map_err(|e| bad(e.0))?;
            text.as_bytes().to_vec()
        } else {
            crate::wire::parse_bytes(text).map_err(bad)?
        };
        if bytes.len() > crate::wire::MAX_STRING && alg != Algorithm::Long {
            return Err(bad(format!(
                "longer than a tag string can be ({} octets)",
                crate::wire::MAX_STRING
            )));
        }
        Ok(Pattern {
            text: text.to_string(),
            bytes,
            hi: None,
            hex: text.starts_with("0x"),
        })
    }
}

/// Error returned by table edits.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// The pattern is not valid for the algorithm.
    #[error("pattern {0:?}: {1}")]
    Pattern(String, String),
    /// A range overlaps another.
    #[error("range {0:?}: {1}")]
    Range(String, RangeError),
    /// No such class.
    #[error("no class {0}")]
    NoClass(u16),
    /// No such entry.
    #[error("no entry {0:?}")]
    NoEntry(String),
    /// A class number out of range.
    #[error("class {0} is above {max}", max = crate::MAX_CLASS)]
    BadClass(u16),
}

/// One class's table.
#[derive(Clone, Debug, Default)]
pub struct ClassTable {
    /// What a miss does.
    pub miss: Miss,
    exact: Exact<Entry>,
    prefix: Option<Affix<Entry>>,
    suffix: Option<Affix<Entry>>,
    long: Patterns<Entry>,
    range: Ranges<Entry>,
    closest: Closest<Entry>,
}

/// One row of a listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// Algorithm.
    pub alg: Algorithm,
    /// Pattern as text.
    pub pattern: String,
    /// Entry.
    #[serde(flatten)]
    pub entry: Entry,
}

fn hex(b: &[u8]) -> String {
    let mut s = String::from("0x");
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

fn show(b: &[u8]) -> String {
    if !b.is_empty() && b.iter().all(|c| (0x20..0x7f).contains(c)) && !b.starts_with(b"0x") {
        String::from_utf8_lossy(b).into_owned()
    } else {
        hex(b)
    }
}

impl ClassTable {
    /// Add (or replace) an entry. `long` patterns are compiled at once;
    /// use [`ClassTable::add_deferred`] + [`ClassTable::compile`] for many.
    pub fn add(&mut self, alg: Algorithm, p: &Pattern, e: Entry) -> Result<(), TableError> {
        self.add_deferred(alg, p, e)?;
        self.compile()
    }

    /// Add without compiling the pattern automaton.
    pub fn add_deferred(&mut self, alg: Algorithm, p: &Pattern, e: Entry) -> Result<(), TableError> {
        match alg {
            Algorithm::Exact => {
                self.exact.insert(&p.bytes, e);
            }
            Algorithm::Prefix => {
                self.prefix.get_or_insert_with(Affix::prefix).insert(&p.bytes, e);
            }
            Algorithm::Suffix => {
                self.suffix.get_or_insert_with(Affix::suffix).insert(&p.bytes, e);
            }
            Algorithm::Long => {
                Patterns::<Entry>::check(&p.text).map_err(|er| TableError::Pattern(p.text.clone(), er.0))?;
                self.long.insert_deferred(&p.text, e);
            }
            Algorithm::Range => {
                let hi = p.hi.as_deref().unwrap_or(&p.bytes);
                self.range
                    .insert(&p.bytes, hi, e)
                    .map_err(|er| TableError::Range(p.text.clone(), er))?;
            }
            Algorithm::Closest => {
                self.closest.insert(&p.bytes, p.hex, e);
            }
        }
        Ok(())
    }

    /// Build the pattern automaton after deferred changes.
    pub fn compile(&mut self) -> Result<(), TableError> {
        self.long
            .compile()
            .map_err(|e| TableError::Pattern("(pattern set)".into(), e.0))
    }

    /// Remove the entry for `p` from `alg`'s index, or from every index
    /// when `alg` is `None`; returns how many were removed.
    pub fn remove(&mut self, alg: Option<Algorithm>, text: &str) -> usize {
        let mut n = 0;
        for a in Algorithm::ALL {
            if alg.is_some_and(|x| x != a) {
                continue;
            }
            let Ok(p) = Pattern::parse(text, a) else { continue };
            let hit = match a {
                Algorithm::Exact => self.exact.remove(&p.bytes).is_some(),
                Algorithm::Prefix => self.prefix.as_mut().and_then(|x| x.remove(&p.bytes)).is_some(),
                Algorithm::Suffix => self.suffix.as_mut().and_then(|x| x.remove(&p.bytes)).is_some(),
                Algorithm::Long => {
                    let hit = self.long.remove_deferred(&p.text).is_some();
                    if hit {
                        // Removing can only make the set compile.
                        let _ = self.long.compile();
                    }
                    hit
                }
                Algorithm::Range => self.range.remove(&p.bytes).is_some(),
                Algorithm::Closest => self.closest.remove(&p.bytes, p.hex).is_some(),
            };
            n += hit as usize;
        }
        n
    }

    /// Look `s` up with `alg`.
    #[inline]
    pub fn lookup(&self, alg: Algorithm, s: &[u8], scratch: &mut Scratch) -> Option<&Entry> {
        match alg {
            Algorithm::Exact => self.exact.lookup(s),
            Algorithm::Prefix => self.prefix.as_ref()?.lookup(s),
            Algorithm::Suffix => self.suffix.as_ref()?.lookup(s),
            Algorithm::Long => self.long.lookup(s, scratch),
            Algorithm::Range => self.range.lookup(s),
            Algorithm::Closest => self.closest.lookup(s),
        }
    }

    /// Entries per algorithm.
    pub fn counts(&self) -> [usize; 6] {
        [
            self.long.len(),
            self.exact.len(),
            self.range.len(),
            self.prefix.as_ref().map_or(0, |x| x.len()),
            self.suffix.as_ref().map_or(0, |x| x.len()),
            self.closest.len(),
        ]
    }

    /// Total entries.
    pub fn len(&self) -> usize {
        self.counts().iter().sum()
    }

    /// True when it has no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every entry, by algorithm then pattern, at most `limit` rows.
    pub fn rows(&self, limit: usize) -> Vec<Row> {
        let mut v = Vec::new();
        let row = |alg, pattern: String, e: &Entry| Row {
            alg,
            pattern,
            entry: e.clone(),
        };
        v.extend(self.long.iter().map(|(p, e)| row(Algorithm::Long, p.to_string(), e)));
        let mut ex: Vec<Row> = self
            .exact
            .iter()
            .map(|(k, e)| row(Algorithm::Exact, show(k), e))
            .collect();
        ex.sort_by(|a, b| a.pattern.cmp(&b.pattern));
        v.extend(ex);
        v.extend(
            self.range
                .iter()
                .map(|(lo, hi, e)| row(Algorithm::Range, format!("{}..{}", show(lo), show(hi)), e)),
        );
        for (alg, ix) in [(Algorithm::Prefix, &self.prefix), (Algorithm::Suffix, &self.suffix)] {
            if let Some(ix) = ix {
                let mut r: Vec<Row> = ix.iter().map(|(k, e)| row(alg, show(k), e)).collect();
                r.sort_by(|a, b| a.pattern.cmp(&b.pattern));
                v.extend(r);
            }
        }
        v.extend(self.closest.iter().map(|(k, numeric, e)| {
            let p = if numeric { hex(&k) } else { show(&k) };
            row(Algorithm::Closest, p, e)
        }));
        v.truncate(limit);
        v
    }
}

/// Every class table of a node.
#[derive(Clone, Debug)]
pub struct Tables {
    classes: Vec<Option<Box<ClassTable>>>,
}

impl Default for Tables {
    fn default() -> Self {
        Tables {
            classes: vec![None; crate::MAX_CLASS as usize + 1],
        }
    }
}

impl Tables {
    /// The table of `class`, if it has one.
    #[inline]
    pub fn get(&self, class: u16) -> Option<&ClassTable> {
        self.classes.get(class as usize)?.as_deref()
    }

    /// The table of `class`, made if missing.
    pub fn get_or_create(&mut self, class: u16) -> Result<&mut ClassTable, TableError> {
        let slot = self
            .classes
            .get_mut(class as usize)
            .ok_or(TableError::BadClass(class))?;
        Ok(slot.get_or_insert_with(Default::default))
    }

    /// The table of `class`, mutable.
    pub fn get_mut(&mut self, class: u16) -> Option<&mut ClassTable> {
        self.classes.get_mut(class as usize)?.as_deref_mut()
    }

    /// Empty a class's table, keeping the class and its miss outcome (as
    /// `iptables -F` keeps a chain's policy): a table reloaded by `flush`
    /// then `add` must not answer differently meanwhile. `false` when the
    /// class has no table.
    pub fn flush(&mut self, class: u16) -> bool {
        match self.get_mut(class) {
            Some(t) => {
                *t = ClassTable {
                    miss: t.miss,
                    ..ClassTable::default()
                };
                true
            }
            None => false,
        }
    }

    /// Classes with tables, in order.
    pub fn classes(&self) -> impl Iterator<Item = (u16, &ClassTable)> {
        self.classes
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_deref().map(|c| (i as u16, c)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(a: &str) -> Entry {
        Entry {
            next_hop: a.parse().unwrap(),
            rules: vec![],
        }
    }

    #[test]
    fn add_lookup_remove_per_algorithm() {
        let mut t = ClassTable::default();
        let mut sc = Scratch::default();
        t.add(
            Algorithm::Suffix,
            &Pattern::parse("joe.com", Algorithm::Suffix).unwrap(),
            e("10.0.0.1"),
        )
        .unwrap();
        t.add(
            Algorithm::Exact,
            &Pattern::parse("0x01020304", Algorithm::Exact).unwrap(),
            e("10.0.0.2"),
        )
        .unwrap();
        t.add(
            Algorithm::Long,
            &Pattern::parse(r".*\.(isi|usc)\.edu", Algorithm::Long).unwrap(),
            e("10.0.0.3"),
        )
        .unwrap();
        t.add(
            Algorithm::Range,
            &Pattern::parse("0x00..0x7f", Algorithm::Range).unwrap(),
            e("10.0.0.4"),
        )
        .unwrap();
        assert_eq!(
            t.lookup(Algorithm::Suffix, b"www.joe.com", &mut sc),
            Some(&e("10.0.0.1"))
        );
        assert_eq!(t.lookup(Algorithm::Exact, b"www.joe.com", &mut sc), None);
        assert_eq!(t.lookup(Algorithm::Exact, &[1, 2, 3, 4], &mut sc), Some(&e("10.0.0.2")));
        assert_eq!(t.lookup(Algorithm::Long, b"a.usc.edu", &mut sc), Some(&e("10.0.0.3")));
        assert_eq!(t.lookup(Algorithm::Range, &[0x10], &mut sc), Some(&e("10.0.0.4")));
        assert_eq!(t.len(), 4);
        assert_eq!(t.rows(10).len(), 4);
        assert_eq!(t.remove(None, "joe.com"), 1);
        assert_eq!(t.remove(Some(Algorithm::Long), r".*\.(isi|usc)\.edu"), 1);
        assert_eq!(t.lookup(Algorithm::Long, b"a.usc.edu", &mut sc), None);
        assert!(Pattern::parse("0xzz", Algorithm::Exact).is_err());
        assert!(Pattern::parse("(", Algorithm::Long).is_err());
        assert!(t
            .add(
                Algorithm::Range,
                &Pattern::parse("0x10..0x20", Algorithm::Range).unwrap(),
                e("10.0.0.1")
            )
            .is_err());
    }

    #[test]
    fn tables_by_class() {
        let mut ts = Tables::default();
        ts.get_or_create(crate::classes::DNS).unwrap().miss = Miss::Icmp;
        assert_eq!(ts.get(1).unwrap().miss, Miss::Icmp);
        assert!(ts.get(2).is_none());
        assert!(ts.get_or_create(9000).is_err());
        let p = Pattern::parse("joe.com", Algorithm::Suffix).unwrap();
        ts.get_or_create(1)
            .unwrap()
            .add(Algorithm::Suffix, &p, e("10.0.0.1"))
            .unwrap();
        assert!(ts.flush(1));
        assert!(!ts.flush(2));
        let t = ts.get(1).expect("flush keeps the class");
        assert_eq!((t.len(), t.miss), (0, Miss::Icmp), "and its miss outcome");
        assert!(t
            .lookup(Algorithm::Suffix, b"joe.com", &mut Scratch::default())
            .is_none());
        assert_eq!(ts.classes().count(), 1);
    }
}
