//! The six lookup algorithms (paper 2.1, 2.3), each an index from byte
//! strings to values, and each checked by a property test against a naive
//! reference (a linear scan that says what the answer must be).
//!
//! | algorithm | structure | cost per lookup |
//! |---|---|---|
//! | exact | hash map | one hash |
//! | longest prefix | hash map per distinct key length, longest first | one hash per distinct length ≤ the string's |
//! | longest suffix | the same over suffixes of the part before the first single `/` | the same |
//! | longest pattern | one multi-pattern lazy DFA (`regex-automata`, all matches, anchored both ends) | one transition per byte, then one per matching pattern |
//! | range | B-tree of disjoint ranges by lower bound | one ordered search |
//! | closest | B-tree of numeric keys per length; text keys scanned by edit distance | ordered search; or *O(n·len²)* |
//!
//! The longest-prefix and -suffix indexes are the tuple-space idea the
//! classifier uses: cost grows with the number of distinct key *lengths*,
//! never with the number of keys, and a hash probe beats walking a trie of
//! byte nodes for the short keys tags carry.

use ahash::RandomState;
use regex_automata::{hybrid, Anchored, Input, MatchKind};
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

type Map<V> = HashMap<Box<[u8]>, V, RandomState>;

fn map<V>() -> Map<V> {
    // Fixed seeds: lookups must not depend on the process (deterministic
    // emulator runs); tables are operator-loaded, not attacker-chosen.
    HashMap::with_hasher(RandomState::with_seeds(1, 2, 3, 4))
}

/// Exact match.
#[derive(Clone, Debug)]
pub struct Exact<V> {
    map: Map<V>,
}

impl<V> Default for Exact<V> {
    fn default() -> Self {
        Exact { map: map() }
    }
}

impl<V> Exact<V> {
    /// Insert or replace; returns the previous value.
    pub fn insert(&mut self, key: &[u8], v: V) -> Option<V> {
        self.map.insert(key.into(), v)
    }
    /// Remove.
    pub fn remove(&mut self, key: &[u8]) -> Option<V> {
        self.map.remove(key)
    }
    /// The value of exactly `s`.
    #[inline]
    pub fn lookup(&self, s: &[u8]) -> Option<&V> {
        self.map.get(s)
    }
    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    /// Keys and values (unordered).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &V)> {
        self.map.iter().map(|(k, v)| (&k[..], v))
    }
}

/// The part of `s` a suffix lookup looks at: up to the first single `/`
/// (a `//`, as in `http://`, is not one) — the paper's "longest suffix
/// anchored at the first single '/'", so a URL's host is matched and DNS
/// names (which hold no `/`) are matched whole.
pub fn suffix_subject(s: &[u8]) -> &[u8] {
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'/' {
            if s.get(i + 1) == Some(&b'/') {
                i += 2;
                continue;
            }
            return &s[..i];
        }
        i += 1;
    }
    s
}

/// Longest prefix or longest suffix.
#[derive(Clone, Debug)]
pub struct Affix<V> {
    suffix: bool,
    map: Map<V>,
    /// Distinct key lengths, longest first, with their key counts.
    lens: Vec<(usize, usize)>,
}

impl<V> Affix<V> {
    /// A longest-prefix index.
    pub fn prefix() -> Self {
        Affix {
            suffix: false,
            map: map(),
            lens: Vec::new(),
        }
    }
    /// A longest-suffix index.
    pub fn suffix() -> Self {
        Affix {
            suffix: true,
            map: map(),
            lens: Vec::new(),
        }
    }

    /// Insert or replace.
    pub fn insert(&mut self, key: &[u8], v: V) -> Option<V> {
        let old = self.map.insert(key.into(), v);
        if old.is_none() {
            match self.lens.iter_mut().find(|(l, _)| *l == key.len()) {
                Some((_, n)) => *n += 1,
                None => {
                    self.lens.push((key.len(), 1));
                    self.lens.sort_unstable_by_key(|l| std::cmp::Reverse(l.0));
                }
            }
        }
        old
    }

    /// Remove.
    pub fn remove(&mut self, key: &[u8]) -> Option<V> {
        let old = self.map.remove(key)?;
        if let Some(i) = self.lens.iter().position(|(l, _)| *l == key.len()) {
            self.lens[i].1 -= 1;
            if self.lens[i].1 == 0 {
                self.lens.remove(i);
            }
        }
        Some(old)
    }

    /// The value of the longest key that is a prefix (suffix) of `s`.
    #[inline]
    pub fn lookup(&self, s: &[u8]) -> Option<&V> {
        let s = if self.suffix { suffix_subject(s) } else { s };
        for &(l, _) in &self.lens {
            if l > s.len() {
                continue;
            }
            let k = if self.suffix { &s[s.len() - l..] } else { &s[..l] };
            if let Some(v) = self.map.get(k) {
                return Some(v);
            }
        }
        None
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    /// Keys and values (unordered).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &V)> {
        self.map.iter().map(|(k, v)| (&k[..], v))
    }
}

/// Error returned by [`Patterns::insert`] and [`Patterns::compile`]: a
/// pattern the regex engine refuses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad pattern: {0}")]
pub struct PatternError(pub String);

/// Scratch space pattern lookups need (kept by the caller so the hot path
/// does not allocate): one lazy-DFA cache per automaton, for the few
/// automata (one per class with patterns) a caller meets.
#[derive(Debug, Default)]
pub struct Scratch {
    caches: Vec<(u64, hybrid::dfa::Cache)>,
}

/// Caches a [`Scratch`] keeps; beyond this the least recently added goes.
const SCRATCH_CACHES: usize = 16;

impl Scratch {
    fn cache_for(&mut self, id: u64, dfa: &hybrid::dfa::DFA) -> &mut hybrid::dfa::Cache {
        let i = match self.caches.iter().position(|(g, _)| *g == id) {
            Some(i) => i,
            None => {
                if self.caches.len() >= SCRATCH_CACHES {
                    self.caches.remove(0);
                }
                self.caches.push((id, dfa.create_cache()));
                self.caches.len() - 1
            }
        };
        &mut self.caches[i].1
    }
}

/// Automaton ids: unique in the process, so a scratch cache is never used
/// with an automaton it was not made for.
static AUTOMATON_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Longest pattern: regular expressions matched against the whole string,
/// all at once by one automaton; of the patterns that match, the longest
/// (in pattern text) wins, ties to the first added.
///
/// The automaton is a lazy DFA over every pattern, each anchored at both
/// ends, built with "all matches" semantics: after the string's last byte
/// and the end-of-input transition, the state reached lists exactly the
/// patterns that match the whole string. A lookup is one transition per
/// byte plus one per matching pattern, whatever the number of patterns
/// (the DFA's states are built on first use and cached).
#[derive(Clone, Debug)]
pub struct Patterns<V> {
    pats: Vec<(String, V)>,
    dfa: Option<hybrid::dfa::DFA>,
    /// A process-unique id of the current automaton (scratch caches are
    /// keyed by it).
    id: u64,
}

impl<V> Default for Patterns<V> {
    fn default() -> Self {
        Patterns {
            pats: Vec::new(),
            dfa: None,
            id: 0,
        }
    }
}

fn builder() -> hybrid::dfa::Builder {
    let mut b = hybrid::dfa::DFA::builder();
    b.syntax(regex_automata::util::syntax::Config::new().unicode(false).utf8(false))
        .thompson(
            regex_automata::nfa::thompson::Config::new()
                .utf8(false)
                // Only which patterns match is needed.
                .which_captures(regex_automata::nfa::thompson::WhichCaptures::None)
                // Tables come from operators; still bound what one may cost.
                .nfa_size_limit(Some(256 << 20)),
        )
        .configure(
            hybrid::dfa::DFA::config()
                .match_kind(MatchKind::All)
                .cache_capacity(16 << 20),
        );
    b
}

fn anchored(p: &str) -> String {
    format!("^(?:{p})$")
}

impl<V> Patterns<V> {
    /// Check that `pattern` compiles on its own.
    pub fn check(pattern: &str) -> Result<(), PatternError> {
        builder()
            .build(&anchored(pattern))
            .map(|_| ())
            .map_err(|e| PatternError(e.to_string()))
    }

    /// Insert or replace without recompiling (call [`Patterns::compile`]
    /// after a batch of changes).
    pub fn insert_deferred(&mut self, pattern: &str, v: V) -> Option<V> {
        if let Some(i) = self.pats.iter().position(|(p, _)| p == pattern) {
            return Some(std::mem::replace(&mut self.pats[i].1, v));
        }
        self.pats.push((pattern.to_string(), v));
        None
    }

    /// Insert or replace and recompile.
    pub fn insert(&mut self, pattern: &str, v: V) -> Result<Option<V>, PatternError> {
        Self::check(pattern)?;
        let old = self.insert_deferred(pattern, v);
        self.compile()?;
        Ok(old)
    }

    /// Remove without recompiling.
    pub fn remove_deferred(&mut self, pattern: &str) -> Option<V> {
        let i = self.pats.iter().position(|(p, _)| p == pattern)?;
        Some(self.pats.remove(i).1)
    }

    /// Build the automaton over every pattern.
    pub fn compile(&mut self) -> Result<(), PatternError> {
        self.id = AUTOMATON_IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if self.pats.is_empty() {
            self.dfa = None;
            return Ok(());
        }
        let all: Vec<String> = self.pats.iter().map(|(p, _)| anchored(p)).collect();
        match builder().build_many(&all) {
            Ok(dfa) => {
                self.dfa = Some(dfa);
                Ok(())
            }
            Err(e) => {
                self.dfa = None;
                Err(PatternError(e.to_string()))
            }
        }
    }

    /// The value of the longest pattern matching all of `s`.
    #[inline]
    pub fn lookup(&self, s: &[u8], scratch: &mut Scratch) -> Option<&V> {
        let dfa = self.dfa.as_ref()?;
        let cache = scratch.cache_for(self.id, dfa);
        let input = Input::new(s).anchored(Anchored::Yes);
        // The lazy DFA fails only when told to give up on a thrashing
        // cache, which this configuration never is; a failure is a miss.
        let mut sid = dfa.start_state_forward(cache, &input).ok()?;
        for &b in s {
            sid = dfa.next_state(cache, sid, b).ok()?;
            if sid.is_dead() {
                return None;
            }
        }
        sid = dfa.next_eoi_state(cache, sid).ok()?;
        if !sid.is_match() {
            return None;
        }
        let mut best: Option<usize> = None;
        for k in 0..dfa.match_len(cache, sid) {
            let i = dfa.match_pattern(cache, sid, k).as_usize();
            if best.is_none_or(|b| {
                self.pats[i].0.len() > self.pats[b].0.len() || (self.pats[i].0.len() == self.pats[b].0.len() && i < b)
            }) {
                best = Some(i);
            }
        }
        best.and_then(|i| self.pats.get(i)).map(|(_, v)| v)
    }

    /// Number of patterns.
    pub fn len(&self) -> usize {
        self.pats.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.pats.is_empty()
    }
    /// Patterns and values, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.pats.iter().map(|(p, v)| (p.as_str(), v))
    }
}

/// Error returned by [`Ranges::insert`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// `lo` is above `hi`.
    #[error("empty range: the low end is above the high end")]
    Empty,
    /// It overlaps a range already there (ranges of a class are disjoint,
    /// so a string falls in at most one).
    #[error("overlaps an existing range")]
    Overlap,
}

type RangeEntry<V> = (Box<[u8]>, V);

/// Range match over disjoint, inclusive byte-string ranges.
#[derive(Clone, Debug)]
pub struct Ranges<V> {
    /// Low end → (high end, value).
    map: BTreeMap<Box<[u8]>, RangeEntry<V>>,
}

impl<V> Default for Ranges<V> {
    fn default() -> Self {
        Ranges { map: BTreeMap::new() }
    }
}

impl<V> Ranges<V> {
    /// Insert `lo..=hi`; the same range again replaces its value.
    pub fn insert(&mut self, lo: &[u8], hi: &[u8], v: V) -> Result<Option<V>, RangeError> {
        if lo > hi {
            return Err(RangeError::Empty);
        }
        if let Some((plo, (phi, _))) = self
            .map
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(hi)))
            .next_back()
        {
            if &plo[..] == lo && &phi[..] == hi {
                let old = self.map.insert(lo.into(), (hi.into(), v));
                return Ok(old.map(|(_, v)| v));
            }
            if &phi[..] >= lo {
                return Err(RangeError::Overlap);
            }
        }
        self.map.insert(lo.into(), (hi.into(), v));
        Ok(None)
    }

    /// Remove the range starting at `lo`.
    pub fn remove(&mut self, lo: &[u8]) -> Option<V> {
        self.map.remove(lo).map(|(_, v)| v)
    }

    /// The value of the range holding `s`.
    #[inline]
    pub fn lookup(&self, s: &[u8]) -> Option<&V> {
        let (_, (hi, v)) = self
            .map
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(s)))
            .next_back()?;
        (s <= &hi[..]).then_some(v)
    }

    /// Number of ranges.
    pub fn len(&self) -> usize {
        self.map.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    /// (lo, hi, value) in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8], &V)> {
        self.map.iter().map(|(lo, (hi, v))| (&lo[..], &hi[..], v))
    }
}

/// Keys this long or shorter may be numeric (hash space).
pub const NUMERIC_MAX: usize = 16;

fn numeric(s: &[u8]) -> u128 {
    s.iter().fold(0u128, |a, b| (a << 8) | *b as u128)
}

/// Levenshtein distance over bytes (insert, delete, substitute: 1 each),
/// in one row of at most `MAX_STRING + 1` cells on the stack.
pub fn edit_distance(a: &[u8], b: &[u8]) -> usize {
    let (a, b) = if a.len() < b.len() { (b, a) } else { (a, b) };
    if b.len() > crate::wire::MAX_STRING {
        // Longer than a tag can be: only reachable through the library.
        let mut row: Vec<usize> = (0..=b.len()).collect();
        return levenshtein_row(a, b, &mut row);
    }
    let mut row = [0usize; crate::wire::MAX_STRING + 1];
    for (i, c) in row.iter_mut().enumerate().take(b.len() + 1) {
        *c = i;
    }
    levenshtein_row(a, b, &mut row[..b.len() + 1])
}

fn levenshtein_row(a: &[u8], b: &[u8], row: &mut [usize]) -> usize {
    for (i, ca) in a.iter().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let up = row[j + 1];
            row[j + 1] = (diag + (ca != cb) as usize).min(up + 1).min(row[j] + 1);
            diag = up;
        }
    }
    row[b.len()]
}

/// Closest match.
///
/// * **Numeric keys** (given in hex, at most 16 octets): a string of the same
///   length is read as a big-endian unsigned number and the key nearest to
///   it by absolute difference wins — a DHT's "nearest node id"; ties to the
///   smaller key.
/// * **Text keys**: when no numeric key has the string's length, the text
///   key with the smallest Levenshtein distance to the string wins; ties to
///   the bytewise smallest key.
///
/// A non-empty index always answers (that is what "closest" means); the
/// cost of text keys is one edit distance per key, so keep such classes
/// small (the paper warns of this cost too).
#[derive(Clone, Debug)]
pub struct Closest<V> {
    numeric: BTreeMap<(u8, u128), V>,
    text: BTreeMap<Box<[u8]>, V>,
}

impl<V> Default for Closest<V> {
    fn default() -> Self {
        Closest {
            numeric: BTreeMap::new(),
            text: BTreeMap::new(),
        }
    }
}

impl<V> Closest<V> {
    /// Insert a key; `numeric` keys must be 1..=16 octets (else they are
    /// stored as text).
    pub fn insert(&mut self, key: &[u8], is_numeric: bool, v: V) -> Option<V> {
        if is_numeric && !key.is_empty() && key.len() <= NUMERIC_MAX {
            self.numeric.insert((key.len() as u8, numeric(key)), v)
        } else {
            self.text.insert(key.into(), v)
        }
    }

    /// Remove a key (either kind).
    pub fn remove(&mut self, key: &[u8], is_numeric: bool) -> Option<V> {
        if is_numeric && !key.is_empty() && key.len() <= NUMERIC_MAX {
            self.numeric.remove(&(key.len() as u8, numeric(key)))
        } else {
            self.text.remove(key)
        }
    }

    /// The closest key's value.
    pub fn lookup(&self, s: &[u8]) -> Option<&V> {
        if !s.is_empty() && s.len() <= NUMERIC_MAX {
            let l = s.len() as u8;
            let q = numeric(s);
            let below = self.numeric.range((l, 0)..=(l, q)).next_back();
            let above = self.numeric.range((l, q)..=(l, u128::MAX)).next();
            match (below, above) {
                (Some(((_, b), vb)), Some(((_, a), va))) => return Some(if q - b <= a - q { vb } else { va }),
                (Some((_, v)), None) | (None, Some((_, v))) => return Some(v),
                (None, None) => {}
            }
        }
        let mut best: Option<(usize, &V)> = None;
        for (k, v) in &self.text {
            let d = edit_distance(s, k);
            if best.is_none_or(|(bd, _)| d < bd) {
                best = Some((d, v));
                if d == 0 {
                    break;
                }
            }
        }
        best.map(|(_, v)| v)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.numeric.len() + self.text.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// (key, is numeric, value).
    pub fn iter(&self) -> impl Iterator<Item = (Vec<u8>, bool, &V)> {
        self.numeric
            .iter()
            .map(|((l, n), v)| (n.to_be_bytes()[16 - *l as usize..].to_vec(), true, v))
            .chain(self.text.iter().map(|(k, v)| (k.to_vec(), false, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exact_and_affixes() {
        let mut e = Exact::default();
        e.insert(b"abc", 1);
        assert_eq!(e.lookup(b"abc"), Some(&1));
        assert_eq!(e.lookup(b"ab"), None);
        let mut p = Affix::prefix();
        p.insert(b"/", 1);
        p.insert(b"/touch", 2);
        assert_eq!(p.lookup(b"/touch/index.html"), Some(&2));
        assert_eq!(p.lookup(b"/other"), Some(&1));
        assert_eq!(p.lookup(b"x"), None);
        p.remove(b"/touch");
        assert_eq!(p.lookup(b"/touch/index.html"), Some(&1));
        let mut s = Affix::suffix();
        s.insert(b".edu", 1);
        s.insert(b"isi.edu", 2);
        assert_eq!(s.lookup(b"www.isi.edu"), Some(&2));
        assert_eq!(s.lookup(b"www.usc.edu"), Some(&1));
        // URLs: the host before the first single slash.
        assert_eq!(s.lookup(b"http://www.isi.edu/touch/index.html"), Some(&2));
        assert_eq!(s.lookup(b"www.isi.edu/x.edu"), Some(&2));
        assert_eq!(s.lookup(b"isi.com"), None);
    }

    #[test]
    fn suffix_subjects() {
        assert_eq!(suffix_subject(b"joe.com/apple"), b"joe.com");
        assert_eq!(suffix_subject(b"http://www.isi.edu/touch"), b"http://www.isi.edu");
        assert_eq!(suffix_subject(b"joe.com"), b"joe.com");
        assert_eq!(suffix_subject(b"/x"), b"");
    }

    #[test]
    fn the_papers_pattern() {
        let mut p = Patterns::default();
        p.insert(r".*\.(isi|usc)\.edu", 1).unwrap();
        let mut sc = Scratch::default();
        assert_eq!(p.lookup(b"www.isi.edu", &mut sc), Some(&1));
        assert_eq!(p.lookup(b"ftp.usc.edu", &mut sc), Some(&1));
        assert_eq!(p.lookup(b"www.mit.edu", &mut sc), None);
        assert_eq!(p.lookup(b"www.isi.edu.evil.com", &mut sc), None);
        p.insert(r".*\.edu", 2).unwrap();
        p.insert(r"www\.isi\.edu", 3).unwrap();
        assert_eq!(p.lookup(b"www.isi.edu", &mut sc), Some(&1)); // longest pattern text
        assert_eq!(p.lookup(b"www.mit.edu", &mut sc), Some(&2));
        assert!(p.insert("(", 9).is_err());
        assert_eq!(p.lookup(&[0xff, b'.', b'e', b'd', b'u'], &mut sc), Some(&2));
    }

    #[test]
    fn ranges() {
        let mut r = Ranges::default();
        r.insert(b"\x00\x00", b"\x3f\xff", 1).unwrap();
        r.insert(b"\x40\x00", b"\x7f\xff", 2).unwrap();
        assert_eq!(r.insert(b"\x30\x00", b"\x50\x00", 3), Err(RangeError::Overlap));
        assert_eq!(r.insert(b"\x90", b"\x80", 3), Err(RangeError::Empty));
        assert_eq!(r.lookup(b"\x41\x00"), Some(&2));
        assert_eq!(r.lookup(b"\x80\x00"), None);
        assert_eq!(r.insert(b"\x40\x00", b"\x7f\xff", 4), Ok(Some(2)));
    }

    #[test]
    fn closest() {
        let mut c = Closest::default();
        c.insert(&[0x10, 0x00], true, "a");
        c.insert(&[0x20, 0x00], true, "b");
        c.insert(b"Potter movie", false, "p");
        c.insert(b"Hobbit movie", false, "h");
        assert_eq!(c.lookup(&[0x17, 0xff]), Some(&"a"));
        assert_eq!(c.lookup(&[0x18, 0x00]), Some(&"a")); // tie → smaller key
        assert_eq!(c.lookup(&[0x18, 0x01]), Some(&"b"));
        assert_eq!(c.lookup(b"Potter movei"), Some(&"p"));
        assert_eq!(c.lookup(b"potter"), Some(&"p"));
        assert_eq!(edit_distance(b"kitten", b"sitting"), 3);
        assert_eq!(edit_distance(b"", b"abc"), 3);
    }

    // ----- property tests against naive references ------------------------

    fn key() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b'/'), Just(b'.')], 0..6)
    }

    fn naive_edit(a: &[u8], b: &[u8]) -> usize {
        // Full table, the textbook recurrence.
        let mut t = vec![vec![0usize; b.len() + 1]; a.len() + 1];
        for (i, row) in t.iter_mut().enumerate() {
            row[0] = i;
        }
        for (j, c) in t[0].iter_mut().enumerate() {
            *c = j;
        }
        for i in 1..=a.len() {
            for j in 1..=b.len() {
                let sub = t[i - 1][j - 1] + (a[i - 1] != b[j - 1]) as usize;
                t[i][j] = sub.min(t[i - 1][j] + 1).min(t[i][j - 1] + 1);
            }
        }
        t[a.len()][b.len()]
    }

    proptest! {
        #[test]
        fn exact_matches_reference(keys in proptest::collection::vec(key(), 0..20), q in key()) {
            let mut e = Exact::default();
            let mut naive: Vec<(Vec<u8>, usize)> = Vec::new();
            for (i, k) in keys.iter().enumerate() {
                e.insert(k, i);
                naive.retain(|(kk, _)| kk != k);
                naive.push((k.clone(), i));
            }
            let want = naive.iter().find(|(k, _)| *k == q).map(|(_, v)| *v);
            prop_assert_eq!(e.lookup(&q).copied(), want);
        }

        #[test]
        fn prefix_matches_reference(keys in proptest::collection::vec(key(), 0..20), rm in proptest::collection::vec(key(), 0..4), q in key()) {
            let mut a = Affix::prefix();
            let mut naive: std::collections::BTreeMap<Vec<u8>, usize> = Default::default();
            for (i, k) in keys.iter().enumerate() { a.insert(k, i); naive.insert(k.clone(), i); }
            for k in &rm { a.remove(k); naive.remove(k); }
            let want = naive.iter().filter(|(k, _)| q.starts_with(k)).max_by_key(|(k, _)| k.len()).map(|(_, v)| *v);
            prop_assert_eq!(a.lookup(&q).copied(), want);
        }

        #[test]
        fn suffix_matches_reference(keys in proptest::collection::vec(key(), 0..20), q in key()) {
            let mut a = Affix::suffix();
            let mut naive: std::collections::BTreeMap<Vec<u8>, usize> = Default::default();
            for (i, k) in keys.iter().enumerate() { a.insert(k, i); naive.insert(k.clone(), i); }
            // Reference: the host part by a different route (split on '/' not doubled).
            let mut subject = q.clone();
            let mut i = 0;
            while i < q.len() {
                if q[i] == b'/' { if q.get(i + 1) == Some(&b'/') { i += 2; continue; } subject = q[..i].to_vec(); break; }
                i += 1;
            }
            let want = naive.iter().filter(|(k, _)| subject.ends_with(k)).max_by_key(|(k, _)| k.len()).map(|(_, v)| *v);
            prop_assert_eq!(a.lookup(&q).copied(), want);
        }

        #[test]
        fn patterns_match_reference(pats in proptest::collection::vec(key(), 1..8), q in key()) {
            // Patterns built from literals with `.` as the wildcard and an
            // optional trailing `.*`; the reference matches them by hand.
            let mut p = Patterns::default();
            let mut list: Vec<(String, usize)> = Vec::new();
            for (i, k) in pats.iter().enumerate() {
                let text: String = k.iter().map(|&b| if b == b'/' { "/".to_string() } else if b == b'.' { ".".to_string() } else { (b as char).to_string() }).collect();
                let pat = if i % 2 == 0 { format!("{text}.*") } else { text };
                if list.iter().any(|(x, _)| *x == pat) { continue; }
                p.insert_deferred(&pat, i);
                list.push((pat, i));
            }
            p.compile().unwrap();
            fn lit_match(pat: &[u8], s: &[u8]) -> bool {
                if let Some(head) = pat.strip_suffix(b".*") {
                    s.len() >= head.len() && head.iter().zip(s).all(|(p, c)| *p == b'.' || p == c)
                } else {
                    pat.len() == s.len() && pat.iter().zip(s).all(|(p, c)| *p == b'.' || p == c)
                }
            }
            let mut want: Option<&(String, usize)> = None;
            for e in &list {
                if lit_match(e.0.as_bytes(), &q) && want.is_none_or(|w| e.0.len() > w.0.len()) { want = Some(e); }
            }
            let mut sc = Scratch::default();
            prop_assert_eq!(p.lookup(&q, &mut sc).copied(), want.map(|w| w.1));
        }

        #[test]
        fn ranges_match_reference(bounds in proptest::collection::vec((any::<u16>(), 0u16..300), 0..20), q in any::<u16>()) {
            let mut r = Ranges::default();
            let mut naive: Vec<(u16, u16, usize)> = Vec::new();
            for (i, (lo, w)) in bounds.iter().enumerate() {
                let hi = lo.saturating_add(*w);
                let overlaps = naive.iter().any(|(a, b, _)| *a <= hi && *b >= *lo && !(*a == *lo && *b == hi));
                let res = r.insert(&lo.to_be_bytes(), &hi.to_be_bytes(), i);
                prop_assert_eq!(res.is_err(), overlaps);
                if !overlaps {
                    naive.retain(|(a, b, _)| !(*a == *lo && *b == hi));
                    naive.push((*lo, hi, i));
                }
            }
            let want = naive.iter().find(|(a, b, _)| *a <= q && q <= *b).map(|(_, _, v)| *v);
            prop_assert_eq!(r.lookup(&q.to_be_bytes()).copied(), want);
        }

        #[test]
        fn closest_numeric_matches_reference(keys in proptest::collection::btree_set(any::<u32>(), 1..30), q in any::<u32>()) {
            let mut c = Closest::default();
            for k in &keys { c.insert(&k.to_be_bytes(), true, *k); }
            // Reference: the smallest |k - q|, ties to the smaller key.
            let want = keys.iter().min_by_key(|k| ((**k as i64 - q as i64).abs(), **k)).copied();
            prop_assert_eq!(c.lookup(&q.to_be_bytes()).copied(), want);
        }

        #[test]
        fn closest_text_matches_reference(keys in proptest::collection::btree_set(key(), 1..12), q in key()) {
            let mut c = Closest::default();
            for k in &keys { c.insert(k, false, k.clone()); }
            let want = keys.iter().min_by_key(|k| (naive_edit(&q, k), (*k).clone())).cloned();
            // A numeric key of q's length would take precedence; there are none.
            prop_assert_eq!(c.lookup(&q).cloned(), want);
        }

        #[test]
        fn edit_distance_matches_reference(a in key(), b in key()) {
            prop_assert_eq!(edit_distance(&a, &b), naive_edit(&a, &b));
        }
    }
}
