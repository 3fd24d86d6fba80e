//! Rewrite rules (paper 2.2–2.4): what a DataRouter does to the chain after
//! a string resolved, besides advancing the pointer.
//!
//! | rule | effect |
//! |---|---|
//! | `self` | replace the current string with this router's address (the address the packet arrived on; class IPv4/IPv6, 4 or 16 octets — loose source *record* route) |
//! | `sub/FROM/TO/` | replace the first `FROM` in the current string by `TO` (any delimiter after `sub`) |
//! | `gsub/FROM/TO/` | replace every `FROM` |
//! | `del` | delete the current string |
//! | `strip` | cut the current string's host part (everything before the first single `/`): `joe.com/apple` → `/apple` |
//! | `next:RULE` | apply `RULE` (`sub`, `gsub`, `strip`, `del`, `self`) to every *later* string instead — never to earlier ones |
//! | `copy[:ALG[:CLASS]]` | insert a copy of the current string (as rewritten so far) before the next string, optionally with another algorithm and class: it is resolved at the next hop |
//!
//! Rules apply in order. The pointer then designates the first string after
//! the current one (the first inserted copy, if any). Strings before the
//! current one are never touched.
//!
//! The URL example of paper 2.3, resolve the host by suffix, strip it, then
//! resolve the path by prefix: the first DataRouter's entry `joe.com` (alg
//! suffix) has rules `copy:prefix,next:strip`, turning `URL:joe.com/apple`
//! into `URL:joe.com/apple` (resolved) + `URL/prefix:/apple` (next).

use crate::lookup::suffix_subject;
use crate::wire::{Tag, TagChain, MAX_STRING, MAX_TAGS};
use crate::Algorithm;
use std::fmt;
use std::net::IpAddr;

/// One rewrite rule. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Rule {
    /// Replace with this router's address.
    SelfAddr,
    /// Substitute `from` by `to`, once or everywhere.
    Sub {
        /// Text to find (not empty).
        from: Vec<u8>,
        /// Replacement.
        to: Vec<u8>,
        /// Every occurrence.
        all: bool,
    },
    /// Delete the string.
    Delete,
    /// Cut the host part.
    Strip,
    /// Apply to every later string.
    Next(Box<Rule>),
    /// Insert a copy before the next string.
    Copy {
        /// The copy's algorithm (default: the original's).
        alg: Option<Algorithm>,
        /// The copy's class (default: the original's).
        class: Option<u16>,
    },
}

/// Error returned by [`parse_rules`] and [`apply`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    /// The rule text is not understood.
    #[error("bad rewrite rule {0:?}: {1}")]
    Syntax(String, &'static str),
    /// A rule made a string longer than a tag can hold.
    #[error("a rewritten string would exceed {MAX_STRING} octets")]
    Oversized,
    /// Copies made the chain longer than allowed.
    #[error("a rewrite would make more than {MAX_TAGS} tags")]
    TooManyTags,
    /// The pointer does not designate a string.
    #[error("no current string to rewrite")]
    NoCurrent,
}

fn word_end(s: &str) -> usize {
    s.find(',').unwrap_or(s.len())
}

/// Parse rules separated by commas: `copy:prefix,next:strip`.
pub fn parse_rules(text: &str) -> Result<Vec<Rule>, RewriteError> {
    let mut rules = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let (rule, used) = parse_one(rest, true)?;
        rules.push(rule);
        rest = rest[used..].trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start();
        } else if !rest.is_empty() {
            return Err(RewriteError::Syntax(text.to_string(), "rules are separated by commas"));
        }
    }
    Ok(rules)
}

fn parse_one(s: &str, top: bool) -> Result<(Rule, usize), RewriteError> {
    let bad = |why| RewriteError::Syntax(s.to_string(), why);
    for (kw, all) in [("gsub", true), ("sub", false)] {
        if let Some(body) = s.strip_prefix(kw) {
            let delim = body.chars().next().ok_or_else(|| bad("sub needs /FROM/TO/"))?;
            if delim.is_alphanumeric() || delim == ',' || delim.is_whitespace() {
                return Err(bad("sub's delimiter must be punctuation, e.g. sub/FROM/TO/"));
            }
            let body = &body[delim.len_utf8()..];
            let mut parts = body.splitn(3, delim);
            let from = parts.next().ok_or_else(|| bad("sub needs /FROM/TO/"))?;
            let to = parts.next().ok_or_else(|| bad("sub needs /FROM/TO/"))?;
            let tail = parts.next().ok_or_else(|| bad("sub needs a closing delimiter"))?;
            if from.is_empty() {
                return Err(bad("sub's FROM must not be empty"));
            }
            let used = s.len() - tail.len();
            return Ok((
                Rule::Sub {
                    from: from.as_bytes().to_vec(),
                    to: to.as_bytes().to_vec(),
                    all,
                },
                used,
            ));
        }
    }
    if let Some(inner) = s.strip_prefix("next:") {
        if !top {
            return Err(bad("next: cannot be nested"));
        }
        let (r, used) = parse_one(inner, false)?;
        if matches!(r, Rule::Copy { .. }) {
            return Err(bad("next: applies sub, gsub, strip, del or self"));
        }
        return Ok((Rule::Next(Box::new(r)), 5 + used));
    }
    let end = word_end(s);
    let w = &s[..end];
    let rule = match w {
        "self" => Rule::SelfAddr,
        "del" | "delete" => Rule::Delete,
        "strip" => Rule::Strip,
        _ if w == "copy" || w.starts_with("copy:") => {
            if !top {
                return Err(bad("next: applies sub, gsub, strip, del or self"));
            }
            let mut it = w.split(':').skip(1);
            let alg = match it.next() {
                Some("") | None => None,
                Some(a) => Some(
                    a.parse::<Algorithm>()
                        .map_err(|_| bad("copy:ALG names an unknown algorithm"))?,
                ),
            };
            let class = match it.next() {
                Some("") | None => None,
                Some(c) => Some(crate::parse_class(c).map_err(|_| bad("copy:ALG:CLASS names an unknown class"))?),
            };
            if it.next().is_some() {
                return Err(bad("copy takes at most :ALG:CLASS"));
            }
            Rule::Copy { alg, class }
        }
        _ => {
            return Err(bad(
                "unknown rule (self, sub/A/B/, gsub/A/B/, del, strip, next:RULE, copy[:ALG[:CLASS]])",
            ))
        }
    };
    Ok((rule, end))
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::SelfAddr => f.write_str("self"),
            Rule::Sub { from, to, all } => write!(
                f,
                "{}/{}/{}/",
                if *all { "gsub" } else { "sub" },
                String::from_utf8_lossy(from),
                String::from_utf8_lossy(to)
            ),
            Rule::Delete => f.write_str("del"),
            Rule::Strip => f.write_str("strip"),
            Rule::Next(r) => write!(f, "next:{r}"),
            Rule::Copy { alg, class } => {
                f.write_str("copy")?;
                if alg.is_some() || class.is_some() {
                    write!(f, ":{}", alg.map(|a| a.name()).unwrap_or(""))?;
                }
                if let Some(c) = class {
                    write!(f, ":{}", crate::class_name(*c))?;
                }
                Ok(())
            }
        }
    }
}

/// Rules as text, comma-separated.
pub fn rules_to_string(rules: &[Rule]) -> String {
    rules.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(",")
}

fn substitute(s: &mut Vec<u8>, from: &[u8], to: &[u8], all: bool) -> Result<(), RewriteError> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    let mut done = false;
    while i < s.len() {
        if !done && s[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
            done = !all;
            if out.len() > MAX_STRING {
                return Err(RewriteError::Oversized);
            }
            continue;
        }
        out.push(s[i]);
        i += 1;
    }
    if out.len() > MAX_STRING {
        return Err(RewriteError::Oversized);
    }
    *s = out;
    Ok(())
}

fn self_tag(router: IpAddr) -> Tag {
    match router {
        IpAddr::V4(a) => Tag::new(crate::classes::IPV4, Algorithm::Prefix, a.octets().to_vec()),
        IpAddr::V6(a) => Tag::new(crate::classes::IPV6, Algorithm::Prefix, a.octets().to_vec()),
    }
}

fn apply_to(t: &mut Tag, r: &Rule, router: IpAddr) -> Result<(), RewriteError> {
    match r {
        Rule::SelfAddr => *t = self_tag(router),
        Rule::Sub { from, to, all } => substitute(&mut t.string, from, to, *all)?,
        Rule::Strip => {
            let cut = suffix_subject(&t.string).len();
            t.string.drain(..cut);
        }
        // Handled by the caller (they change the list).
        Rule::Delete | Rule::Next(_) | Rule::Copy { .. } => {}
    }
    Ok(())
}

/// Apply `rules` to `chain`, whose string at `chain.next` has just been
/// resolved at a router whose address is `router`; afterwards
/// `chain.next` designates the string to resolve at the next hop.
pub fn apply(rules: &[Rule], chain: &mut TagChain, router: IpAddr) -> Result<(), RewriteError> {
    let start = chain.next;
    if start >= chain.tags.len() {
        return Err(RewriteError::NoCurrent);
    }
    let mut cur = Some(start);
    // Index of the first later string; copies go in front of it, in order.
    let mut after = start + 1;
    let mut inserted = 0;
    for r in rules {
        match r {
            Rule::Delete => {
                if let Some(c) = cur.take() {
                    chain.tags.remove(c);
                    after -= 1;
                }
            }
            Rule::Copy { alg, class } => {
                let Some(c) = cur else { continue };
                if chain.tags.len() >= MAX_TAGS {
                    return Err(RewriteError::TooManyTags);
                }
                let mut t = chain.tags[c].clone();
                if let Some(a) = alg {
                    t.alg = *a;
                }
                if let Some(k) = class {
                    t.class = *k;
                }
                chain.tags.insert(after + inserted, t);
                inserted += 1;
            }
            Rule::Next(inner) => {
                if **inner == Rule::Delete {
                    chain.tags.truncate(after);
                    inserted = 0;
                    continue;
                }
                for t in chain.tags[after..].iter_mut() {
                    apply_to(t, inner, router)?;
                }
            }
            _ => {
                if let Some(c) = cur {
                    apply_to(&mut chain.tags[c], r, router)?;
                }
            }
        }
    }
    chain.next = after;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classes::{DNS, URL};
    use proptest::prelude::*;

    fn r(s: &str) -> Vec<Rule> {
        parse_rules(s).unwrap()
    }

    const ME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 12, 2));

    #[test]
    fn parse_and_print() {
        for s in [
            "self",
            "sub/joe/jim/",
            "gsub/a/b/",
            "del",
            "strip",
            "next:strip",
            "next:sub/a//",
            "copy",
            "copy:prefix",
            "copy:exact:MP3",
            "copy:prefix,next:strip",
        ] {
            assert_eq!(rules_to_string(&r(s)), s, "{s}");
        }
        assert_eq!(
            r("sub|a/b|c|"),
            vec![Rule::Sub {
                from: b"a/b".to_vec(),
                to: b"c".to_vec(),
                all: false
            }]
        );
        assert!(parse_rules("sub/a/b").is_err());
        assert!(parse_rules("sub//b/").is_err());
        assert!(parse_rules("next:copy").is_err());
        assert!(parse_rules("next:next:del").is_err());
        assert!(parse_rules("copy:bogus").is_err());
        assert!(parse_rules("frob").is_err());
        assert!(parse_rules("self del").is_err());
        assert_eq!(parse_rules("").unwrap(), vec![]);
    }

    #[test]
    fn url_host_then_path() {
        let mut c = TagChain::new(vec![Tag::new(URL, Algorithm::Suffix, "joe.com/apple")]);
        apply(&r("copy:prefix,next:strip"), &mut c, ME).unwrap();
        assert_eq!(
            c.tags,
            vec![
                Tag::new(URL, Algorithm::Suffix, "joe.com/apple"),
                Tag::new(URL, Algorithm::Prefix, "/apple"),
            ]
        );
        assert_eq!(c.next, 1);
    }

    #[test]
    fn self_sub_del() {
        let mut c = TagChain::new(vec![
            Tag::new(DNS, Algorithm::Suffix, "joe.com"),
            Tag::new(DNS, Algorithm::Suffix, "a.joe.com"),
        ]);
        apply(&r("self"), &mut c, ME).unwrap();
        assert_eq!(
            c.tags[0],
            Tag::new(crate::classes::IPV4, Algorithm::Prefix, vec![10, 0, 12, 2])
        );
        assert_eq!(c.next, 1);
        apply(&r("gsub/joe/jim/"), &mut c, ME).unwrap();
        assert_eq!(c.tags[1].string, b"a.jim.com");
        let mut c = TagChain::new(vec![
            Tag::new(DNS, Algorithm::Suffix, "x"),
            Tag::new(DNS, Algorithm::Suffix, "y"),
        ]);
        apply(&r("del"), &mut c, ME).unwrap();
        assert_eq!(c.tags.len(), 1);
        assert_eq!(c.next, 0);
        assert_eq!(
            apply(&r("self"), &mut TagChain::default(), ME),
            Err(RewriteError::NoCurrent)
        );
    }

    #[test]
    fn next_never_touches_earlier() {
        let mut c = TagChain {
            tags: vec![
                Tag::new(DNS, Algorithm::Suffix, "a.joe"),
                Tag::new(DNS, Algorithm::Suffix, "b.joe"),
                Tag::new(DNS, Algorithm::Suffix, "c.joe"),
            ],
            next: 1,
        };
        apply(&r("next:sub/joe/x/"), &mut c, ME).unwrap();
        assert_eq!(c.tags[0].string, b"a.joe");
        assert_eq!(c.tags[1].string, b"b.joe");
        assert_eq!(c.tags[2].string, b"c.x");
        apply(&r("next:del"), &mut c, ME).unwrap();
        assert_eq!(c.tags.len(), 3); // nothing after the last string to delete
    }

    #[test]
    fn oversized_and_too_many() {
        let mut c = TagChain::new(vec![Tag::new(DNS, Algorithm::Suffix, vec![b'a'; 200])]);
        assert_eq!(apply(&r("gsub/a/aa/"), &mut c, ME), Err(RewriteError::Oversized));
        let mut c = TagChain::new(vec![Tag::new(DNS, Algorithm::Suffix, "a"); MAX_TAGS]);
        assert_eq!(apply(&r("copy"), &mut c, ME), Err(RewriteError::TooManyTags));
    }

    fn rule() -> impl Strategy<Value = Rule> {
        let leaf = prop_oneof![
            Just(Rule::SelfAddr),
            Just(Rule::Delete),
            Just(Rule::Strip),
            (
                proptest::collection::vec(b'a'..b'd', 1..3),
                proptest::collection::vec(b'a'..b'd', 0..4),
                any::<bool>()
            )
                .prop_map(|(from, to, all)| Rule::Sub { from, to, all }),
        ];
        prop_oneof![
            leaf.clone(),
            leaf.prop_map(|l| Rule::Next(Box::new(l))),
            (proptest::option::of(0u8..6), proptest::option::of(0u16..8)).prop_map(|(a, c)| Rule::Copy {
                alg: a.and_then(Algorithm::from_u8),
                class: c
            }),
        ]
    }

    fn chain() -> impl Strategy<Value = TagChain> {
        (
            proptest::collection::vec(
                (
                    0u16..8,
                    0u8..6,
                    proptest::collection::vec(prop_oneof![b'a'..b'd', Just(b'/')], 0..12),
                ),
                1..8,
            ),
            any::<prop::sample::Index>(),
        )
            .prop_map(|(ts, i)| {
                let tags: Vec<Tag> = ts
                    .into_iter()
                    .map(|(c, a, s)| Tag::new(c, Algorithm::from_u8(a).unwrap_or(Algorithm::Exact), s))
                    .collect();
                let next = i.index(tags.len());
                TagChain { tags, next }
            })
    }

    proptest! {
        /// The rewrite engine never panics, never touches strings before the
        /// current one, moves the pointer forward past the current string,
        /// and its result either encodes or is refused with a typed error.
        #[test]
        fn rewrite_invariants(mut c in chain(), rules in proptest::collection::vec(rule(), 0..5)) {
            let before = c.clone();
            let res = apply(&rules, &mut c, ME);
            if res.is_ok() {
                prop_assert_eq!(&c.tags[..before.next], &before.tags[..before.next]);
                prop_assert!(c.next >= before.next && c.next <= c.tags.len());
                // The round trip through the wire is exact (IPv6 has room).
                let h = c.ipv6_header(17).unwrap();
                let (back, _) = TagChain::parse_v6(&h).unwrap();
                prop_assert_eq!(back, c.clone());
                match c.ipv4_options() {
                    Ok(o) => prop_assert_eq!(TagChain::parse_v4(&o).unwrap(), c),
                    Err(e) => { let too_long = matches!(e, crate::wire::TagError::TooLong { .. }); prop_assert!(too_long, "{:?}", e) }
                }
            }
        }
    }
}
