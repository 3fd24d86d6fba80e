//! The packet classifier: filters on the 6-tuple (in-port, source and
//! destination prefix, source and destination port range, protocol), any field
//! wildcarded, matched in rule order (the first rule that matches wins).
//!
//! # Structure: two-level tuple space search
//!
//! As in Open vSwitch, rules are grouped by the *shape* of their mask (a
//! "tuple"): whether in-port and protocol are exact or wildcarded, which
//! address family is required, and the source and destination prefix masks.
//! Within one group every rule is an exact match on the masked key, so a group
//! is a hash map from masked key to that key's rules; a lookup masks the
//! packet's key once per group and does one hash probe.
//!
//! Port ranges are not exact matches, so at build time each range is split
//! into the minimal set of aligned power-of-two blocks (value/mask pairs, at
//! most 30 for a 16-bit range); a rule with both ranges contributes the cross
//! product. Each block matches exactly a subset of the rule's port space, and
//! together they cover it, so "some block of rule *i* matches" is equivalent
//! to [`Match::matches`]. When several rules produce the same block only the
//! lowest index is kept: any key reaching it matches all of them.
//!
//! Plain OVS-style tuple space search would make the port masks part of the
//! tuple; the blocks of a few ranges then multiply the tuples (34 instead of 6
//! on [`synthetic_rules`]) and every miss probes them all. Here the port
//! masks live *under* the address key instead: the slot found by the group
//! probe holds the rule's single block inline (the usual case: one host or
//! subnet on one service port) or, per port mask present under that key, a
//! table of blocks sorted by value for binary search. Only groups whose
//! address part matches pay for the port masks.
//!
//! Lookup cost therefore depends on the number of distinct shapes (bounded by
//! the variety of rules, not their count — at worst the product of the prefix
//! lengths in use) and logarithmically on the rules sharing one address key.
//! Groups and port tables are kept sorted by the lowest rule index they hold;
//! once that index is no better than the best match found so far, nothing
//! later can win and the search stops — a hit on an early rule costs a few
//! probes.
//!
//! Rules that can never match (source and destination prefixes of different
//! families, an empty port range) contribute no entries but still count in
//! [`Classifier::len`] and keep their index.
//!
//! Lookup does not allocate; build is O(rules × range expansion).
//!
//! # Small sets: rule by rule
//!
//! A set of at most [`LINEAR_MAX`] rules — a hook with one service's filter —
//! is not built into groups: each rule becomes masks and port spans, and a
//! lookup compares the key against them in rule order (a few branch-free
//! compares a rule). That is cheaper than any hash probe, so the node skips
//! its flow cache for such a hook ([`Classifier::is_linear`]): in `weft bench
//! --only netserv` a wasm module behind one filter ran 3–4 % faster. At ten
//! rules whose match is the last, the scan was slower than the flow cache
//! (the filter table 0.82 of plain forwarding against 0.88–0.91), hence the
//! small bound. Both structures agree with [`Match::matches`] (the property
//! tests below build each for the same rules).

use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use ahash::RandomState;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
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
#[derive(Clone, Default)]
pub struct Classifier {
    /// Sorted by [`Group::min_rule`] so lookup can stop early.
    groups: Vec<Group>,
    /// Small rule sets ([`LINEAR_MAX`] rules or fewer): every rule as
    /// masks and ranges, checked in rule order; `groups` is then empty.
    linear: Option<Box<[Linear]>>,
    rules: usize,
}

/// Rule sets up to this size are checked rule by rule
/// ([`Classifier::is_linear`]) instead of through the tuple space.
pub const LINEAR_MAX: usize = 4;

/// One rule of a small set, ready to compare against a key: its shape and
/// masked key (as a group of the tuple space holds them) and its port ranges.
#[derive(Clone, Copy, Debug)]
struct Linear {
    shape: Shape,
    key: Masked,
    /// `(lo, hi - lo)`: a port `p` is in when `p - lo` (wrapping) ≤ the span.
    sport: (u16, u16),
    dport: (u16, u16),
    rule: usize,
}

impl Linear {
    /// Rule `idx`; None when it can never match (source and destination
    /// prefixes of different families, an empty range).
    fn of(idx: usize, rule: &Match) -> Option<Linear> {
        let (shape, key) = shape_of(rule)?;
        let span = |r: Option<(u16, u16)>| match r {
            None => Some((0, u16::MAX)),
            Some((lo, hi)) => (lo <= hi).then(|| (lo, hi - lo)),
        };
        Some(Linear {
            shape,
            key,
            sport: span(rule.sport)?,
            dport: span(rule.dport)?,
            rule: idx,
        })
    }

    #[inline]
    fn matches(&self, k: &FlowKey) -> bool {
        (self.shape.family == Family::None || self.shape.family == k.family)
            & (self.shape.apply(k) == self.key)
            & (k.sport.wrapping_sub(self.sport.0) <= self.sport.1)
            & (k.dport.wrapping_sub(self.dport.0) <= self.dport.1)
    }
}

/// The mask shared by every rule of one group, ports aside. Fields are bit
/// masks applied to the packet's key (0 = wildcard); `family` is checked
/// separately because a prefix of length 0 still restricts the family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Shape {
    /// Required family, [`Family::None`] when the rule has no prefix.
    family: Family,
    in_port: u16,
    proto: u8,
    src: u128,
    dst: u128,
}

/// A key after masking: the addresses, then in-port and protocol packed into
/// one word so hashing it is three multiplies rather than four writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Masked {
    src: u128,
    dst: u128,
    rest: u64,
}

impl Shape {
    #[inline]
    fn apply(&self, k: &FlowKey) -> Masked {
        Masked {
            src: k.src & self.src,
            dst: k.dst & self.dst,
            rest: pack(k.in_port & self.in_port, k.proto & self.proto),
        }
    }
}

#[inline]
fn pack(in_port: u16, proto: u8) -> u64 {
    u64::from(in_port) | u64::from(proto) << 16
}

/// Both ports in one word (source high), so one mask-and-compare tests both.
#[inline]
fn ports(sport: u16, dport: u16) -> u32 {
    u32::from(sport) << 16 | u32::from(dport)
}

/// Rules of one address/in-port/protocol shape.
#[derive(Clone, Debug)]
struct Group {
    /// The lowest rule index in the group: no key can do better here.
    min_rule: usize,
    shape: Shape,
    slots: HashMap<Masked, Slot, RandomState>,
}

/// The port part of the rules under one masked address key.
#[derive(Clone, Debug)]
enum Slot {
    /// One port block of one rule — most slots (a host or subnet rule on one
    /// service port) — kept inline to save two dependent loads per probe.
    Single { mask: u32, ports: u32, rule: usize },
    /// Sorted by [`PortTable::min_rule`].
    Tables(Box<[PortTable]>),
}

/// Port blocks sharing one port mask, under one masked address key.
#[derive(Clone, Debug)]
struct PortTable {
    min_rule: usize,
    /// Mask over [`ports`].
    mask: u32,
    /// (masked ports, lowest rule index), sorted by the ports for binary
    /// search; a slot usually holds one or two, but "proto tcp dport N"
    /// lists can put thousands under one address key.
    entries: Box<[(u32, usize)]>,
}

/// Family, mask and masked value of a prefix. The mask for a non-zero IPv4
/// length also covers the 96 high bits, which [`Match::matches`] requires to
/// be zero (they take part in its shifted comparison); length 0 matches any
/// bits, as there.
fn prefix_parts(net: &IpNet) -> (Family, u128, u128) {
    let (family, width, len) = match net {
        IpNet::V4(v) => (Family::V4, 32u32, u32::from(v.prefix_len())),
        IpNet::V6(v) => (Family::V6, 128u32, u32::from(v.prefix_len())),
    };
    let mask = if len == 0 { 0 } else { !0u128 << (width - len) };
    (family, mask, addr_bits(net.network()) & mask)
}

/// A rule's shape (its masks) and its key under them, for both the tuple
/// space's groups and a small set's rules; None when its source and
/// destination prefixes are of different families (it can never match).
fn shape_of(rule: &Match) -> Option<(Shape, Masked)> {
    let mut family = Family::None;
    let mut addr = [(0u128, 0u128); 2];
    for (slot, net) in addr.iter_mut().zip([&rule.src, &rule.dst]) {
        if let Some(net) = net {
            let (f, mask, value) = prefix_parts(net);
            if family != Family::None && family != f {
                return None;
            }
            family = f;
            *slot = (mask, value);
        }
    }
    let [(src_mask, src), (dst_mask, dst)] = addr;
    let (in_port_mask, in_port) = rule.in_port.map_or((0, 0), |p| (u16::MAX, p));
    let (proto_mask, proto) = rule.proto.map_or((0, 0), |p| (u8::MAX, p));
    let shape = Shape {
        family,
        in_port: in_port_mask,
        proto: proto_mask,
        src: src_mask,
        dst: dst_mask,
    };
    let key = Masked {
        src,
        dst,
        rest: pack(in_port, proto),
    };
    Some((shape, key))
}

/// Split the inclusive range into the fewest aligned power-of-two blocks, as
/// (value, mask) pairs. `None` is one block with mask 0; an empty range
/// (`lo > hi`) yields nothing, so its rule never matches, as in
/// [`Match::matches`].
fn port_blocks(range: Option<(u16, u16)>, out: &mut Vec<(u16, u16)>) {
    out.clear();
    let Some((lo, hi)) = range else {
        out.push((0, 0));
        return;
    };
    // u32 so the block after 65535 and a 2^16-sized block do not overflow.
    let (mut lo, hi) = (u32::from(lo), u32::from(hi));
    while lo <= hi {
        let mut size = if lo == 0 {
            1u32 << 16
        } else {
            1u32 << lo.trailing_zeros().min(16)
        };
        while lo + size - 1 > hi {
            size >>= 1;
        }
        // size ≤ 2^16, so !(size - 1) keeps the right 16 bits.
        out.push((lo as u16, !(size - 1) as u16));
        lo += size;
    }
}

/// A group while rules are being added. Rules arrive in index order, so the
/// first index seen for a group, a port table or an entry is its lowest, and
/// vectors filled in arrival order are already sorted by it.
struct GroupBuild {
    min_rule: usize,
    shape: Shape,
    slots: HashMap<Masked, Vec<PortBuild>, RandomState>,
}

struct PortBuild {
    min_rule: usize,
    mask: u32,
    entries: Vec<(u32, usize)>,
}

impl Classifier {
    /// Compile `rules`; index order is rule order (priority).
    pub fn build(rules: &[Match]) -> Self {
        Self::build_with(rules, LINEAR_MAX)
    }

    /// [`Classifier::build`], checking rule by rule when there are at most
    /// `linear_max` rules (the tests build both structures for one set).
    fn build_with(rules: &[Match], linear_max: usize) -> Self {
        if rules.len() <= linear_max {
            return Classifier {
                groups: Vec::new(),
                linear: Some(rules.iter().enumerate().filter_map(|(i, r)| Linear::of(i, r)).collect()),
                rules: rules.len(),
            };
        }
        let mut groups: Vec<GroupBuild> = Vec::new();
        let mut group_of: HashMap<Shape, usize, RandomState> = HashMap::default();
        let mut sports = Vec::new();
        let mut dports = Vec::new();
        for (idx, rule) in rules.iter().enumerate() {
            let Some((shape, key)) = shape_of(rule) else {
                continue;
            };
            port_blocks(rule.sport, &mut sports);
            port_blocks(rule.dport, &mut dports);
            if sports.is_empty() || dports.is_empty() {
                continue;
            }
            let g = *group_of.entry(shape).or_insert_with(|| {
                groups.push(GroupBuild {
                    min_rule: idx,
                    shape,
                    slots: HashMap::default(),
                });
                groups.len() - 1
            });
            let tables = groups[g].slots.entry(key).or_default();
            for &(sport, sport_mask) in &sports {
                for &(dport, dport_mask) in &dports {
                    let mask = ports(sport_mask, dport_mask);
                    // At most 17 × 17 masks per slot: a scan is fine at build.
                    let table = match tables.iter().position(|t| t.mask == mask) {
                        Some(t) => &mut tables[t],
                        None => {
                            tables.push(PortBuild {
                                min_rule: idx,
                                mask,
                                entries: Vec::new(),
                            });
                            let last = tables.len() - 1;
                            &mut tables[last]
                        }
                    };
                    table.entries.push((ports(sport, dport), idx));
                }
            }
        }
        let groups = groups
            .into_iter()
            .map(|g| Group {
                min_rule: g.min_rule,
                shape: g.shape,
                slots: g
                    .slots
                    .into_iter()
                    .map(|(key, tables)| {
                        let tables: Box<[PortTable]> = tables
                            .into_iter()
                            .map(|t| {
                                let mut entries = t.entries;
                                // Stable: equal ports keep arrival (index)
                                // order, so dedup keeps the lowest index.
                                entries.sort_by_key(|e| e.0);
                                entries.dedup_by_key(|e| e.0);
                                PortTable {
                                    min_rule: t.min_rule,
                                    mask: t.mask,
                                    entries: entries.into_boxed_slice(),
                                }
                            })
                            .collect();
                        if let [PortTable { mask, ref entries, .. }] = *tables {
                            if let [(ports, rule)] = **entries {
                                return (key, Slot::Single { mask, ports, rule });
                            }
                        }
                        (key, Slot::Tables(tables))
                    })
                    .collect(),
            })
            .collect();
        Classifier {
            groups,
            linear: None,
            rules: rules.len(),
        }
    }

    /// True when lookups check the rules one by one (a small set): a few
    /// compares a rule, cheaper than a flow cache's hash and probe, so the
    /// node skips its flow cache for such a hook.
    pub fn is_linear(&self) -> bool {
        self.linear.is_some()
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules
    }

    /// True when there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules == 0
    }

    /// Number of rule shapes (groups probed per lookup at most): what the
    /// lookup cost grows with. For a small set compared rule by rule, the
    /// rules that can match (each is one compare).
    pub fn shapes(&self) -> usize {
        self.linear.as_ref().map_or(self.groups.len(), |l| l.len())
    }

    /// Index of the first rule (in rule order) that matches `key`.
    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Option<usize> {
        match &self.linear {
            Some(linear) => linear.iter().find(|l| l.matches(key)).map(|l| l.rule),
            None => self.search(key),
        }
    }

    /// The tuple space search of [`Classifier::lookup`]. Out of line: the
    /// node calls it only when its flow cache misses, and inlined it made
    /// the engine's per-packet loop larger.
    #[inline(never)]
    fn search(&self, key: &FlowKey) -> Option<usize> {
        let mut best = usize::MAX;
        let key_ports = ports(key.sport, key.dport);
        for g in &self.groups {
            // Groups (and port tables below) are sorted by their lowest rule,
            // so once that cannot beat `best`, nothing after it can.
            if g.min_rule >= best {
                break;
            }
            if g.shape.family != Family::None && g.shape.family != key.family {
                continue;
            }
            let tables = match g.slots.get(&g.shape.apply(key)) {
                None => continue,
                Some(&Slot::Single { mask, ports, rule }) => {
                    if key_ports & mask == ports {
                        best = best.min(rule);
                    }
                    continue;
                }
                Some(Slot::Tables(tables)) => tables,
            };
            for t in tables.iter() {
                if t.min_rule >= best {
                    break;
                }
                let want = key_ports & t.mask;
                if let Ok(i) = t.entries.binary_search_by_key(&want, |e| e.0) {
                    if let Some(&(_, idx)) = t.entries.get(i) {
                        best = best.min(idx);
                    }
                }
            }
        }
        (best != usize::MAX).then_some(best)
    }
}

impl fmt::Debug for Classifier {
    // The tables can hold hundreds of thousands of entries; a summary is what
    // a snapshot dump needs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (mut tables, mut entries) = (0, 0);
        for slot in self.groups.iter().flat_map(|g| g.slots.values()) {
            match slot {
                Slot::Single { .. } => (tables, entries) = (tables + 1, entries + 1),
                Slot::Tables(t) => {
                    tables += t.len();
                    entries += t.iter().map(|t| t.entries.len()).sum::<usize>();
                }
            }
        }
        f.debug_struct("Classifier")
            .field("rules", &self.rules)
            .field("groups", &self.groups.len())
            .field("port_tables", &tables)
            .field("entries", &entries)
            .finish()
    }
}

/// xorshift64*: enough randomness for synthetic workloads without a `rand`
/// dependency in the data plane.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        // splitmix64 spreads nearby seeds apart; the state must not be 0.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        XorShift(if z == 0 { 1 } else { z })
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

const TCP: u8 = 6;
const UDP: u8 = 17;
const SERVICE_PORTS: [u16; 12] = [22, 25, 53, 80, 123, 443, 993, 3306, 5432, 6379, 8080, 8443];
const PORT_RANGES: [(u16, u16); 5] = [
    (1024, 65535),
    (6000, 6063),
    (33434, 33534),
    (49152, 65535),
    (10000, 10999),
];

/// A deterministic, firewall-like rule set of `n` rules for benchmarks: mostly
/// per-host IPv4 `/32` and per-subnet `/24` source rules on TCP/UDP service
/// ports, some port-range rules, IPv6 `/64` rules, management in-port rules
/// and a few source-port-range rules towards a benchmark network. Shapes come from a fixed catalogue, so the number
/// of distinct masks stays bounded however large `n` is — as in real rule sets.
pub fn synthetic_rules(n: usize, seed: u64) -> Vec<Match> {
    let mut rng = XorShift::new(seed);
    (0..n)
        .map(|i| {
            // Wrapping index arithmetic keeps the addresses distinct up to
            // 2^24 rules, far beyond any benchmark.
            let idx = i as u32;
            let proto = Some(rng.pick(&[TCP, UDP]));
            match rng.below(100) {
                0..=54 => Match {
                    src: Some(v4(0x0A00_0000u32.wrapping_add(idx), 32)),
                    dport: Some(single(rng.pick(&SERVICE_PORTS))),
                    proto,
                    ..Match::default()
                },
                55..=74 => Match {
                    src: Some(v4(0xAC10_0000u32.wrapping_add(idx << 8), 24)),
                    dst: Some(v4(0xC0A8_0000 | rng.below(1 << 16) as u32, 32)),
                    dport: Some(single(rng.pick(&SERVICE_PORTS))),
                    proto: Some(TCP),
                    ..Match::default()
                },
                75..=84 => Match {
                    src: Some(v4(rng.next() as u32, 16)),
                    dport: Some(rng.pick(&PORT_RANGES)),
                    proto: Some(UDP),
                    ..Match::default()
                },
                85..=92 => Match {
                    src: Some(v6(0x2001_0db8u128 << 96 | u128::from(idx) << 64, 64)),
                    dport: Some(single(rng.pick(&SERVICE_PORTS))),
                    proto,
                    ..Match::default()
                },
                // Management ports, which the other rules' traffic does not use.
                93..=97 => Match {
                    in_port: Some(8 + rng.below(8) as u16),
                    proto,
                    ..Match::default()
                },
                _ => Match {
                    dst: Some(v4(0xC612_0000 | (rng.below(2) as u32) << 16, 16)),
                    sport: Some(rng.pick(&PORT_RANGES)),
                    proto,
                    ..Match::default()
                },
            }
        })
        .collect()
}

/// `n` deterministic keys against `rules`: about three quarters fall inside a
/// randomly chosen rule (a hit on it or an earlier one), the rest are random
/// IPv4/IPv6 keys that mostly miss.
pub fn synthetic_keys(rules: &[Match], n: usize, seed: u64) -> Vec<FlowKey> {
    let mut rng = XorShift::new(seed);
    (0..n)
        .map(|_| {
            if !rules.is_empty() && rng.below(4) != 0 {
                key_inside(&rules[rng.below(rules.len() as u64) as usize], &mut rng)
            } else {
                key_inside(&Match::default(), &mut rng)
            }
        })
        .collect()
}

/// A random key satisfying every field of `rule` that can be satisfied
/// (a rule whose prefixes disagree on family gets the source's family).
fn key_inside(rule: &Match, rng: &mut XorShift) -> FlowKey {
    let family = match rule.src.as_ref().or(rule.dst.as_ref()) {
        Some(IpNet::V4(_)) => Family::V4,
        Some(IpNet::V6(_)) => Family::V6,
        None if rng.below(4) == 0 => Family::V6,
        None => Family::V4,
    };
    let mut addr = |net: &Option<IpNet>| {
        let random = u128::from(rng.next()) << 64 | u128::from(rng.next());
        let random = if family == Family::V4 {
            random & u128::from(u32::MAX)
        } else {
            random
        };
        match net {
            Some(net) => {
                let (_, mask, value) = prefix_parts(net);
                value | (random & !mask)
            }
            None => random,
        }
    };
    let (src, dst) = (addr(&rule.src), addr(&rule.dst));
    let mut port = |range: Option<(u16, u16)>| match range {
        Some((lo, hi)) if lo <= hi => lo + rng.below(u64::from(hi - lo) + 1) as u16,
        _ => rng.next() as u16,
    };
    let (sport, dport) = (port(rule.sport), port(rule.dport));
    FlowKey {
        in_port: rule.in_port.unwrap_or_else(|| rng.below(8) as u16),
        family,
        proto: rule.proto.unwrap_or_else(|| rng.pick(&[TCP, UDP])),
        src,
        dst,
        sport,
        dport,
    }
}

fn v4(addr: u32, len: u8) -> IpNet {
    // Lengths come from this module's constants, all ≤ 32.
    IpNet::V4(Ipv4Net::new(Ipv4Addr::from(addr), len).unwrap_or_default().trunc())
}

fn v6(addr: u128, len: u8) -> IpNet {
    IpNet::V6(Ipv6Net::new(Ipv6Addr::from(addr), len).unwrap_or_default().trunc())
}

fn single(port: u16) -> (u16, u16) {
    (port, port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key4(src: u32, dst: u32, proto: u8, sport: u16, dport: u16) -> FlowKey {
        FlowKey {
            in_port: 0,
            family: Family::V4,
            proto,
            src: u128::from(src),
            dst: u128::from(dst),
            sport,
            dport,
        }
    }

    fn net(s: &str) -> IpNet {
        s.parse().expect("test prefix")
    }

    fn naive(rules: &[Match], k: &FlowKey) -> Option<usize> {
        rules.iter().position(|r| r.matches(k))
    }

    #[test]
    fn empty_classifier_matches_nothing() {
        let c = Classifier::build(&[]);
        assert!(c.is_empty());
        assert_eq!(c.len(), 0);
        assert_eq!(c.lookup(&FlowKey::default()), None);
        assert_eq!(Classifier::default().lookup(&key4(1, 2, 6, 3, 4)), None);
    }

    #[test]
    fn all_wildcard_rule_matches_everything() {
        let c = Classifier::build(&[Match::default()]);
        assert_eq!(c.lookup(&FlowKey::default()), Some(0));
        assert_eq!(c.lookup(&key4(u32::MAX, 0, 255, u16::MAX, 0)), Some(0));
    }

    #[test]
    fn prefix_length_zero_matches_family_only() {
        let rules = [Match {
            src: Some(net("0.0.0.0/0")),
            ..Match::default()
        }];
        let c = Classifier::build(&rules);
        assert_eq!(c.lookup(&key4(0xDEAD_BEEF, 0, 6, 1, 2)), Some(0));
        let mut k6 = key4(0, 0, 6, 1, 2);
        k6.family = Family::V6;
        assert_eq!(c.lookup(&k6), None);
        let none = FlowKey {
            family: Family::None,
            ..FlowKey::default()
        };
        assert_eq!(c.lookup(&none), None);

        let rules6 = [Match {
            dst: Some(net("::/0")),
            ..Match::default()
        }];
        let c6 = Classifier::build(&rules6);
        assert_eq!(c6.lookup(&k6), Some(0));
        assert_eq!(c6.lookup(&key4(0, 0, 6, 1, 2)), None);
    }

    #[test]
    fn host_prefixes_match_exactly() {
        let rules = [
            Match {
                src: Some(net("10.1.2.3/32")),
                ..Match::default()
            },
            Match {
                dst: Some(net("2001:db8::1/128")),
                ..Match::default()
            },
        ];
        let c = Classifier::build(&rules);
        assert_eq!(c.lookup(&key4(0x0A01_0203, 0, 6, 0, 0)), Some(0));
        assert_eq!(c.lookup(&key4(0x0A01_0202, 0, 6, 0, 0)), None);
        assert_eq!(c.lookup(&key4(0x0A01_0204, 0, 6, 0, 0)), None);
        let k6 = FlowKey {
            family: Family::V6,
            dst: 0x2001_0db8u128 << 96 | 1,
            ..FlowKey::default()
        };
        assert_eq!(c.lookup(&k6), Some(1));
        assert_eq!(c.lookup(&FlowKey { dst: k6.dst ^ 1, ..k6 }), None);
        assert_eq!(
            c.lookup(&FlowKey {
                dst: k6.dst ^ 1 << 127,
                ..k6
            }),
            None
        );
    }

    #[test]
    fn unnormalised_prefix_uses_its_network() {
        let rules = [Match {
            src: Some(net("10.1.2.3/24")),
            ..Match::default()
        }];
        let c = Classifier::build(&rules);
        assert_eq!(c.lookup(&key4(0x0A01_02FF, 0, 6, 0, 0)), Some(0));
        assert_eq!(c.lookup(&key4(0x0A01_03FF, 0, 6, 0, 0)), None);
    }

    #[test]
    fn family_mismatch_never_matches() {
        // An IPv4 prefix does not match an IPv6 key whose low bits agree.
        let rules = [Match {
            src: Some(net("10.0.0.0/8")),
            ..Match::default()
        }];
        let c = Classifier::build(&rules);
        let k = key4(0x0A00_0001, 0, 6, 0, 0);
        assert_eq!(c.lookup(&k), Some(0));
        assert_eq!(
            c.lookup(&FlowKey {
                family: Family::V6,
                ..k
            }),
            None
        );

        // Source and destination of different families: unsatisfiable, but it
        // keeps its index so later rules keep theirs.
        let rules = [
            Match {
                src: Some(net("10.0.0.0/8")),
                dst: Some(net("::/0")),
                ..Match::default()
            },
            Match {
                src: Some(net("10.0.0.0/8")),
                ..Match::default()
            },
        ];
        let c = Classifier::build(&rules);
        assert_eq!(c.len(), 2);
        assert_eq!(c.lookup(&k), Some(1));
        assert_eq!(
            c.lookup(&FlowKey {
                family: Family::V6,
                ..k
            }),
            None
        );
    }

    #[test]
    fn full_and_single_port_ranges() {
        let rules = [
            Match {
                dport: Some((80, 80)),
                proto: Some(6),
                ..Match::default()
            },
            Match {
                sport: Some((0, 65535)),
                dport: Some((0, 65535)),
                proto: Some(17),
                ..Match::default()
            },
            Match {
                dport: Some((1000, 2000)),
                ..Match::default()
            },
        ];
        let c = Classifier::build(&rules);
        assert_eq!(c.lookup(&key4(1, 2, 6, 5, 80)), Some(0));
        assert_eq!(c.lookup(&key4(1, 2, 6, 5, 81)), None);
        assert_eq!(c.lookup(&key4(1, 2, 17, 0, 0)), Some(1));
        assert_eq!(c.lookup(&key4(1, 2, 17, 65535, 65535)), Some(1));
        for (port, want) in [
            (999, None),
            (1000, Some(2)),
            (1500, Some(2)),
            (2000, Some(2)),
            (2001, None),
        ] {
            assert_eq!(c.lookup(&key4(1, 2, 6, 0, port)), want, "dport {port}");
        }
    }

    #[test]
    fn many_ports_under_one_address_key() {
        // "proto tcp dport N" lists share one slot; every port must still
        // find its own (first) rule.
        let mut rules: Vec<Match> = (0..3000u16)
            .map(|i| Match {
                proto: Some(6),
                dport: Some(single(i * 7 % 3001)),
                ..Match::default()
            })
            .collect();
        rules.insert(
            1500,
            Match {
                proto: Some(6),
                dport: Some((100, 200)),
                ..Match::default()
            },
        );
        let c = Classifier::build(&rules);
        for port in 0..=3001u16 {
            let k = key4(1, 2, 6, 9, port);
            assert_eq!(c.lookup(&k), naive(&rules, &k), "dport {port}");
        }
        assert!(format!("{c:?}").contains("rules: 3001"));
    }

    #[test]
    fn empty_range_never_matches() {
        let rules = [
            Match {
                sport: Some((10, 9)),
                ..Match::default()
            },
            Match::default(),
        ];
        let c = Classifier::build(&rules);
        assert_eq!(c.lookup(&key4(1, 2, 6, 9, 0)), Some(1));
        assert_eq!(c.lookup(&key4(1, 2, 6, 10, 0)), Some(1));
    }

    #[test]
    fn first_rule_wins_across_tuples() {
        let rules = [
            Match {
                in_port: Some(3),
                ..Match::default()
            },
            Match {
                src: Some(net("10.0.0.0/8")),
                proto: Some(6),
                ..Match::default()
            },
            Match {
                src: Some(net("10.0.0.1/32")),
                ..Match::default()
            },
            Match::default(),
        ];
        let c = Classifier::build(&rules);
        assert_eq!(
            c.lookup(&FlowKey {
                in_port: 3,
                ..key4(0x0A00_0001, 0, 6, 0, 0)
            }),
            Some(0)
        );
        assert_eq!(c.lookup(&key4(0x0A00_0001, 0, 6, 0, 0)), Some(1));
        assert_eq!(c.lookup(&key4(0x0A00_0001, 0, 17, 0, 0)), Some(2));
        assert_eq!(c.lookup(&key4(0x0B00_0001, 0, 17, 0, 0)), Some(3));
    }

    #[test]
    fn ipv4_key_with_stray_high_bits_follows_reference() {
        let rules = [
            Match {
                src: Some(net("10.0.0.0/8")),
                ..Match::default()
            },
            Match {
                src: Some(net("0.0.0.0/0")),
                ..Match::default()
            },
        ];
        let c = Classifier::build(&rules);
        let k = FlowKey {
            src: 1 << 100 | 0x0A00_0001,
            ..key4(0, 0, 6, 0, 0)
        };
        assert_eq!(c.lookup(&k), naive(&rules, &k));
    }

    #[test]
    fn port_blocks_are_minimal_and_exact() {
        let mut out = Vec::new();
        for (lo, hi, count) in [
            (0, 65535, 1),
            (80, 80, 1),
            (1, 65534, 30),
            (1024, 65535, 6),
            (0, 0, 1),
            (65535, 65535, 1),
        ] {
            port_blocks(Some((lo, hi)), &mut out);
            assert_eq!(out.len(), count, "{lo}..={hi}");
            let covered: u32 = out.iter().map(|&(_, m)| u32::from(!m) + 1).sum();
            assert_eq!(covered, u32::from(hi - lo) + 1);
            assert!(out.iter().all(|&(v, m)| v & !m == 0 && v >= lo && (v | !m) <= hi));
        }
        port_blocks(Some((5, 4)), &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn synthetic_sets_agree_with_reference() {
        for n in [0, 1, 10, 500] {
            let rules = synthetic_rules(n, 7);
            assert_eq!(rules, synthetic_rules(n, 7), "deterministic");
            let c = Classifier::build(&rules);
            assert_eq!(c.len(), n);
            assert_eq!(c.is_linear(), n <= LINEAR_MAX);
            let (hashed, linear) = (
                Classifier::build_with(&rules, 0),
                Classifier::build_with(&rules, usize::MAX),
            );
            // (No rules at all are "at most 0": nothing to compare.)
            assert!(hashed.is_linear() == (n == 0) && linear.is_linear());
            let keys = synthetic_keys(&rules, 2000, 11);
            let mut hits = 0;
            for k in &keys {
                let want = naive(&rules, k);
                hits += usize::from(want.is_some());
                assert_eq!(c.lookup(k), want, "{k:?}");
                assert_eq!(hashed.lookup(k), want, "tuple space, {k:?}");
                assert_eq!(linear.lookup(k), want, "rule by rule, {k:?}");
            }
            if n > 0 {
                assert!(hits > keys.len() / 2, "keys should mostly hit: {hits}");
            }
        }
    }

    // ---- property tests ------------------------------------------------

    fn v4_net() -> impl Strategy<Value = IpNet> {
        let addr = prop_oneof![
            prop::sample::select(vec![
                0u32,
                0x0A00_0000,
                0x0A00_0001,
                0x0A00_0100,
                0x0A01_0000,
                0xC0A8_0101,
                u32::MAX
            ]),
            any::<u32>(),
        ];
        (addr, 0u8..=32).prop_map(|(a, l)| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(a), l).unwrap_or_default()))
    }

    fn v6_net() -> impl Strategy<Value = IpNet> {
        let addr = prop_oneof![
            prop::sample::select(vec![0u128, 0x2001_0db8u128 << 96, 0x2001_0db8u128 << 96 | 1, u128::MAX]),
            any::<u128>(),
        ];
        (addr, 0u8..=128).prop_map(|(a, l)| IpNet::V6(Ipv6Net::new(Ipv6Addr::from(a), l).unwrap_or_default()))
    }

    fn range() -> impl Strategy<Value = (u16, u16)> {
        prop_oneof![
            any::<u16>().prop_map(|p| (p, p)),
            Just((0u16, 65535u16)),
            (0u16..2000, 0u16..2000).prop_map(|(a, b)| (a.min(b), a.max(b))),
            (any::<u16>(), any::<u16>()).prop_map(|(a, b)| (a.min(b), a.max(b))),
            (any::<u16>(), any::<u16>()),
        ]
    }

    fn rule() -> impl Strategy<Value = Match> {
        // Mostly one family per rule (src and dst agreeing), sometimes mixed.
        let addrs = prop_oneof![
            4 => (prop::option::of(v4_net()), prop::option::of(v4_net())),
            2 => (prop::option::of(v6_net()), prop::option::of(v6_net())),
            1 => (prop::option::of(v4_net()), prop::option::of(v6_net())),
        ];
        (
            prop::option::of(0u16..4),
            addrs,
            prop::option::of(range()),
            prop::option::of(range()),
            prop::option::of(prop::sample::select(vec![1u8, 6, 17])),
        )
            .prop_map(|(in_port, (src, dst), sport, dport, proto)| Match {
                in_port,
                src,
                dst,
                sport,
                dport,
                proto,
            })
    }

    /// Move one field of a key to or just across a rule's boundary, so the
    /// edges of prefixes and ranges are exercised.
    fn perturb(mut k: FlowKey, rule: &Match, how: u8, r: u64) -> FlowKey {
        let nudge = |range: Option<(u16, u16)>, p: &mut u16| {
            if let Some((lo, hi)) = range {
                *p = match r % 4 {
                    0 => lo,
                    1 => hi,
                    2 => lo.wrapping_sub(1),
                    _ => hi.wrapping_add(1),
                };
            }
        };
        let flip = |net: &Option<IpNet>, bits: &mut u128| {
            if let Some(n) = net {
                let width = if matches!(n, IpNet::V4(_)) { 32 } else { 128 };
                // The last bit inside the prefix, or one of the two after it.
                let at = u32::from(n.prefix_len()) + (r % 3) as u32;
                if (1..=width).contains(&at) {
                    *bits ^= 1 << (width - at);
                }
            }
        };
        match how % 8 {
            0 => nudge(rule.sport, &mut k.sport),
            1 => nudge(rule.dport, &mut k.dport),
            2 => flip(&rule.src, &mut k.src),
            3 => flip(&rule.dst, &mut k.dst),
            4 => k.family = [Family::None, Family::V4, Family::V6][(r % 3) as usize],
            5 => k.proto = [1, 6, 17][(r % 3) as usize],
            6 => k.in_port = (r % 4) as u16,
            _ => {}
        }
        k
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn lookup_agrees_with_linear_scan(
            rules in prop::collection::vec(rule(), 0..40),
            probes in prop::collection::vec((any::<prop::sample::Index>(), any::<u64>(), any::<u8>(), any::<u64>()), 1..64),
        ) {
            // Both structures for every set, whatever its size.
            let c = Classifier::build_with(&rules, 0);
            let l = Classifier::build_with(&rules, usize::MAX);
            prop_assert_eq!(c.len(), rules.len());
            prop_assert_eq!(l.len(), rules.len());
            for (pick, seed, how, r) in probes {
                let mut rng = XorShift::new(seed);
                let k = if rules.is_empty() || how >= 224 {
                    key_inside(&Match::default(), &mut rng)
                } else {
                    let rule = &rules[pick.index(rules.len())];
                    perturb(key_inside(rule, &mut rng), rule, how, r)
                };
                prop_assert_eq!(c.lookup(&k), naive(&rules, &k), "key {:?}", k);
                prop_assert_eq!(l.lookup(&k), naive(&rules, &k), "rule by rule, key {:?}", k);
            }
        }

        #[test]
        fn arbitrary_keys_agree_with_linear_scan(
            rules in prop::collection::vec(rule(), 0..20),
            keys in prop::collection::vec(
                (0u16..4, prop::sample::select(vec![Family::None, Family::V4, Family::V6]),
                 prop::sample::select(vec![1u8, 6, 17]), any::<u128>(), any::<u128>(), any::<u16>(), any::<u16>()),
                1..32),
        ) {
            let c = Classifier::build_with(&rules, 0);
            let l = Classifier::build_with(&rules, usize::MAX);
            for (in_port, family, proto, src, dst, sport, dport) in keys {
                // Real IPv4 keys keep the high 96 bits clear; test both.
                let (src, dst) = if family == Family::V4 && sport % 2 == 0 {
                    (src & u128::from(u32::MAX), dst & u128::from(u32::MAX))
                } else {
                    (src, dst)
                };
                let k = FlowKey { in_port, family, proto, src, dst, sport, dport };
                prop_assert_eq!(c.lookup(&k), naive(&rules, &k), "key {:?}", k);
                prop_assert_eq!(l.lookup(&k), naive(&rules, &k), "rule by rule, key {:?}", k);
            }
        }
    }
}
