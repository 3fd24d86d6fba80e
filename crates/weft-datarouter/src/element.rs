//! `datarouter` — resolves DataRouter tags of packets addressed to the node.
//!
//! Attach it at the node's routing step (`Node::attach_resolver`; what
//! `[[droute]]` does): it then sees the packets addressed to the node that
//! carry options, and the node routes a packet again after a rewrite. A
//! PREROUTING filter on the node's own `dst` works too. For each packet:
//!
//! * no tag, or a chain whose pointer is exhausted → `Continue` (the node
//!   delivers or forwards it as usual);
//! * a malformed tag → dropped, counted per reason, and an ICMP parameter
//!   problem (IPv4 type 12 code 0; ICMPv6 type 4 code 0) pointing at the
//!   offending octet is sent to the source (RFC 1812 4.3.2.6 / RFC 4443
//!   3.4) — never about an ICMP error or a later fragment, and only as the
//!   node's one ICMP error limiter allows (`[node] icmp_rate`);
//! * the string at the pointer is looked up in its class's table with the
//!   tag's algorithm. A hit rewrites the destination address to the entry's
//!   next hop, applies the entry's rules, advances the pointer, fixes the
//!   IPv4 header checksum and the UDP / TCP / ICMPv6 checksum (the
//!   pseudo-header's destination changed; RFC 1624 incremental update) and
//!   returns `Continue`: the node routes the packet to its new destination.
//!   A next hop equal to the address the packet arrived on resolves the
//!   next string here too (two overlays meeting at one router).
//! * a miss → the class's outcome: `drop` (counted) or `icmp` (dropped, and
//!   ICMP destination unreachable — host unreachable, ICMPv6 address
//!   unreachable — sent to the source). A class with no table counts as
//!   `unknown-class` and takes the `unknown=` outcome.
//!
//! * **Configuration:** `[max_string=N]` (longest string accepted, default
//!   255: bounds the cost of `closest` and patterns per packet),
//!   `[unknown=drop|icmp]` (tags of classes with no table). ICMP errors are
//!   limited by the node, not here (`icmp_rate=` is refused with a pointer
//!   to `[node] icmp_rate`).
//! * **Ports:** one in, one out.
//! * **Handlers:** control `class CLASS add|rm|flush|ls|miss …` and `ls`
//!   (write; see [`crate::command`]; `flush` keeps the class and its miss
//!   outcome), control `reset` (write: counters),
//!   report (read: counters per outcome and reason, entries per class).
//! * **State:** the tables carry over to a successor (as a `droute`
//!   script).
//! * **Resolution cache:** a hit whose entry has no rewrite rules is
//!   remembered in a direct-mapped cache of 4,096 slots keyed by (class,
//!   algorithm, string ≤ 32 octets), so a string seen again costs one probe
//!   whatever the algorithm (a regex automaton walk, suffixes tried one
//!   length after another, an edit distance…), as the node's route cache
//!   spares plain forwarding its FIB walk. Attached at the routing step,
//!   the element also **resolves ahead** ([`Element::prefetch`]): the node
//!   shows it a received batch before processing any of it, and the
//!   exact (hash) strings of the batch are looked up and cached in one go,
//!   so lookups that miss the CPU caches (a million-key table) overlap.
//!   Any table
//!   change (control, [`DataRouter::replace_tables`], state import)
//!   invalidates it at once (a generation number); a slot taken by another
//!   string is simply a miss, so colliding strings cost a table lookup,
//!   never a wrong answer. `report` counts `cache_hits`.

use crate::command;
use crate::lookup::Scratch;
use crate::rewrite;
use crate::table::{Miss, Tables};
use crate::wire::{self, OptionView, RoutingView, TagChain, TagError, Upper, Where};
use crate::Algorithm;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use weft_dataplane::{Args, ClassDoc, Ctx, Element, ElementClass, ElementError, EmitTo, Handler, Verdict};
use weft_packet::{build, checksum, proto, Packet};

/// Counter names for bad input: the reasons docs/datarouter.md lists, each
/// a [`TagError::reason`]. [`TagError::NotDataRouter`] is not among them:
/// the element is only shown options and routing headers of DataRouter's
/// own type ([`wire::locate`]); packets with others are `passed`.
const REASONS: [&str; 9] = [
    "truncated",
    "pointer-past-end",
    "bad-pointer",
    "length-overrun",
    "oversized-string",
    "unknown-algorithm",
    "too-many-tags",
    "too-long",
    "segments-left",
];

fn reason_index(e: &TagError) -> usize {
    let r = match e {
        // Cannot happen (see REASONS); counted with the nearest reason.
        TagError::NotDataRouter => "truncated",
        e => e.reason(),
    };
    REASONS.iter().position(|x| *x == r).unwrap_or(0)
}

/// What the element counted.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counters {
    /// Packets whose tag resolved (destination rewritten).
    pub resolved: u64,
    /// Strings resolved (more than `resolved` when one router resolves several).
    pub strings: u64,
    /// Packets without a tag, or with an exhausted one, passed on.
    pub passed: u64,
    /// Table misses (per the class's outcome).
    pub miss: u64,
    /// Tags of classes with no table.
    pub unknown_class: u64,
    /// An entry's next hop of the other IP version than the packet.
    pub family_mismatch: u64,
    /// Rewrites that could not be applied or no longer fit.
    pub rewrite_failed: u64,
    /// ICMP errors sent.
    pub icmp_sent: u64,
    /// ICMP errors not sent: the node's ICMP error limiter was empty
    /// (`[node] icmp_rate`, shared with the engine's own errors).
    pub icmp_limited: u64,
    /// Malformed tags per reason.
    pub bad: [u64; REASONS.len()],
    /// Strings answered by the resolution cache.
    pub cache_hits: u64,
}

/// Slots of the resolution cache (a power of two).
const CACHE_SLOTS: usize = 4096;
/// Longest string the cache keeps.
const CACHE_KEY: usize = 32;
/// Packets the element keeps resolving ahead for after an exact lookup
/// missed the cache: while every string is found in the cache, or the
/// misses are of other algorithms, looking ahead would only cost (up to
/// 13 % of hot-string rates in `weft bench`).
const AHEAD_WINDOW: u32 = 256;

/// One remembered resolution: a table hit without rewrite rules.
#[derive(Clone, Copy)]
struct Slot {
    /// [`DataRouter`]'s table generation when stored (0: empty).
    generation: u32,
    class: u16,
    alg: u8,
    len: u8,
    key: [u8; CACHE_KEY],
    next_hop: IpAddr,
}

const EMPTY_SLOT: Slot = Slot {
    generation: 0,
    class: 0,
    alg: 0,
    len: 0,
    key: [0; CACHE_KEY],
    next_hop: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
};

/// The slot of (class, algorithm, string): a multiplicative hash over
/// 8-octet words (strings here are short; this costs a few cycles).
#[inline]
fn cache_slot(class: u16, alg: u8, s: &[u8]) -> usize {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = (class as u64) << 16 | (alg as u64) << 8 | s.len() as u64;
    let mut chunks = s.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h = (h ^ w).wrapping_mul(K).rotate_left(29);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = 0u64;
        for (i, b) in rest.iter().enumerate() {
            w |= (*b as u64) << (8 * i);
        }
        h = (h ^ w).wrapping_mul(K).rotate_left(29);
    }
    (h.wrapping_mul(K) >> (64 - CACHE_SLOTS.trailing_zeros())) as usize
}

/// The `datarouter` element. See the module documentation.
pub struct DataRouter {
    tables: Arc<Tables>,
    /// Bumped whenever `tables` may have changed; never 0.
    generation: u32,
    /// The resolution cache (allocated at the first resolution).
    cache: Vec<Slot>,
    /// Packets left to resolve ahead for (see `AHEAD_WINDOW`).
    ahead: u32,
    scratch: Scratch,
    max_string: usize,
    unknown: Miss,
    c: Counters,
}

fn parse_config(args: &Args) -> Result<(usize, Miss), ElementError> {
    for k in args.named.keys() {
        if k == "icmp_rate" {
            return Err(ElementError::Config(
                "datarouter: icmp_rate is the node's now, for every ICMP error it sends: `icmp_rate = N` in the \
                 configuration's [node] table"
                    .into(),
            ));
        }
        if !matches!(k.as_str(), "max_string" | "unknown") {
            return Err(ElementError::Config(format!(
                "datarouter: unknown key {k:?} (max_string, unknown)"
            )));
        }
    }
    if let Some(p) = args.positional.first() {
        return Err(ElementError::Config(format!(
            "datarouter: unexpected {p:?} (tables are loaded through control: class CLASS add …)"
        )));
    }
    let max_string = args
        .get_parsed::<usize>("max_string", usize::MAX)?
        .unwrap_or(wire::MAX_STRING);
    let unknown = match args.named.get("unknown") {
        Some(u) => u.parse::<Miss>().map_err(ElementError::Config)?,
        None => Miss::Drop,
    };
    Ok((max_string.min(wire::MAX_STRING), unknown))
}

/// The handlers (see the module header): the class documents them and
/// every instance answers [`Element::handlers`] with them.
const HANDLERS: &[Handler] = &[
    Handler::read("resolved", "packets whose tag resolved (destination rewritten)"),
    Handler::read("strings", "strings resolved (several per packet when one router resolves several)"),
    Handler::read("passed", "packets without a tag, or with an exhausted one, passed on"),
    Handler::read("miss", "table misses (per the class's outcome)"),
    Handler::read("unknown_class", "tags of classes with no table"),
    Handler::read("family_mismatch", "an entry's next hop of the other IP version than the packet"),
    Handler::read("rewrite_failed", "rewrites that could not be applied or no longer fit"),
    Handler::read("icmp_sent", "ICMP errors sent"),
    Handler::read("icmp_limited", "ICMP errors the node's limiter refused"),
    Handler::read("cache_hits", "strings answered by the resolution cache"),
    Handler::read("bad", "malformed tags per reason"),
    Handler::read("classes", "entries and miss outcome per class"),
    Handler::write(
        "class",
        "control `class CLASS add PATTERN DEST [alg ALG] [rewrite RULES] | rm | flush | ls | miss drop|icmp`: edit a class table (droute)",
    ),
    Handler::write("ls", "control `ls`: list every class table"),
    Handler::write("reset", "control `reset`: zero the counters"),
    Handler::write("max_string", "set: the longest string accepted"),
    Handler::write("unknown", "set: drop|icmp for tags of classes with no table"),
];

/// The class, for the node to register.
pub fn class() -> ElementClass {
    ElementClass::native(
        "datarouter",
        ClassDoc {
            summary: "DataRouter: resolve string tags (IPv4 option 0x9e, IPv6 routing type 253) of packets addressed \
                      to the node in per-class tables; rewrite the destination to the next hop"
                .into(),
            config: "[max_string=N] [unknown=drop|icmp]; tables through control".into(),
            handlers: HANDLERS.to_vec(),
        },
        |args| Ok(Box::new(DataRouter::new(args)?)),
    )
}

impl DataRouter {
    /// A DataRouter with empty tables.
    pub fn new(args: &Args) -> Result<DataRouter, ElementError> {
        let (max_string, unknown) = parse_config(args)?;
        Ok(DataRouter {
            tables: Arc::new(Tables::default()),
            generation: 1,
            cache: Vec::new(),
            ahead: AHEAD_WINDOW,
            scratch: Scratch::default(),
            max_string,
            unknown,
            c: Counters::default(),
        })
    }

    /// The tables.
    pub fn tables(&self) -> &Arc<Tables> {
        &self.tables
    }

    /// Replace every table at once (built off to the side).
    pub fn replace_tables(&mut self, t: Arc<Tables>) {
        self.tables = t;
        self.tables_changed();
    }

    /// Forget every cached resolution.
    fn tables_changed(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            // Wrapped: slots stored 2^32 changes ago could match again.
            self.cache.fill(EMPTY_SLOT);
            self.generation = 1;
        }
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.c
    }

    /// Send an ICMP error about the packet at `ip` (IP header onwards), if
    /// the node's ICMP error limiter allows it. Never about an ICMP error
    /// (RFC 1122 3.2.2, RFC 4443 2.4(e)): the upper-layer protocol is found
    /// by walking IPv6's extension headers ([`wire::upper_layer`]), since
    /// the IPv6 header names the DataRouter routing header (43), not what
    /// follows it. Nor about a later fragment (RFC 1812 4.3.2.7; the tag is
    /// in every fragment, the first one is answered), nor to a source that
    /// is not one host.
    fn icmp(&mut self, cx: &mut Ctx<'_>, ip: &[u8], typ: u8, code: u8, rest: [u8; 4]) {
        let v6 = ip.first().is_some_and(|b| b >> 4 == 6);
        let answer = match wire::upper_layer(ip) {
            // A missing type octet counts as an error's (as Linux does).
            Upper::At {
                proto: proto::ICMPV6,
                off,
            } if v6 => ip.get(off).is_some_and(|t| *t >= 128),
            Upper::At {
                proto: proto::ICMP,
                off,
            } if !v6 => ip
                .get(off)
                .is_some_and(|t| matches!(t, 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18)),
            Upper::At { .. } => true,
            Upper::LaterFragment => false,
            // An IPv6 extension header chain cut short holds no
            // upper-layer header, so no ICMPv6 error (Linux answers it
            // too); an IPv4 header this short never gets here.
            Upper::Unknown => v6,
        };
        if !answer {
            return;
        }
        let (src, me) = match v6 {
            true if ip.len() >= 40 => {
                let a = |r: std::ops::Range<usize>| IpAddr::from(<[u8; 16]>::try_from(&ip[r]).unwrap_or([0; 16]));
                (a(8..24), a(24..40))
            }
            false if ip.len() >= 20 => (
                IpAddr::from([ip[12], ip[13], ip[14], ip[15]]),
                IpAddr::from([ip[16], ip[17], ip[18], ip[19]]),
            ),
            _ => return,
        };
        let one_host = match src {
            IpAddr::V4(a) => !(a.is_unspecified() || a.is_multicast() || a.is_broadcast()),
            IpAddr::V6(a) => !(a.is_unspecified() || a.is_multicast()),
        };
        if !one_host {
            return;
        }
        if !cx.icmp_error_allowed() {
            self.c.icmp_limited += 1;
            return;
        }
        let frame = match (me, src) {
            (IpAddr::V6(me), IpAddr::V6(src)) => {
                let quote = &ip[..ip.len().min(1280 - 48)];
                build::icmp6([0; 6], [0; 6], me, src, build::DEFAULT_TTL, typ, code, rest, quote)
            }
            (IpAddr::V4(me), IpAddr::V4(src)) => {
                let quote = &ip[..ip.len().min(576 - 28)];
                build::icmp4([0; 6], [0; 6], me, src, build::DEFAULT_TTL, typ, code, rest, quote)
            }
            _ => return,
        };
        let p = cx.alloc(&frame);
        cx.emit(EmitTo::Route, p);
        self.c.icmp_sent += 1;
    }

    fn bad(&mut self, cx: &mut Ctx<'_>, ip: &[u8], tag_off: usize, e: TagError) -> Verdict {
        self.c.bad[reason_index(&e)] += 1;
        let v6 = ip.first().is_some_and(|b| b >> 4 == 6);
        let at = tag_off + e.offset(v6);
        if v6 {
            self.icmp(cx, ip, 4, 0, (at as u32).to_be_bytes());
        } else {
            self.icmp(cx, ip, 12, 0, [at.min(255) as u8, 0, 0, 0]);
        }
        Verdict::Drop
    }

    fn missed(&mut self, cx: &mut Ctx<'_>, ip: &[u8], miss: Miss) -> Verdict {
        if miss == Miss::Icmp {
            if ip.first().is_some_and(|b| b >> 4 == 6) {
                self.icmp(cx, ip, 1, 3, [0; 4]);
            } else {
                self.icmp(cx, ip, 3, 1, [0; 4]);
            }
        }
        Verdict::Drop
    }

    /// Resolve the chain's current string (and, while the next hop is the
    /// address the packet arrived on, the following ones), applying rules.
    /// Returns the next hop.
    fn resolve_chain(&mut self, chain: &mut TagChain, arrived: IpAddr) -> Result<IpAddr, Miss> {
        let mut hops = 0;
        loop {
            let t = &chain.tags[chain.next];
            let Some(ct) = self.tables.get(t.class) else {
                self.c.unknown_class += 1;
                return Err(self.unknown);
            };
            let Some(e) = ct.lookup(t.alg, &t.string, &mut self.scratch) else {
                self.c.miss += 1;
                return Err(ct.miss);
            };
            if e.next_hop.is_ipv4() != arrived.is_ipv4() {
                self.c.family_mismatch += 1;
                return Err(ct.miss);
            }
            let nh = e.next_hop;
            if rewrite::apply(&e.rules, chain, arrived).is_err() {
                self.c.rewrite_failed += 1;
                return Err(Miss::Drop);
            }
            self.c.strings += 1;
            hops += 1;
            if nh != arrived || chain.exhausted() || hops >= wire::MAX_TAGS {
                return Ok(nh);
            }
        }
    }

    /// The cache slot of (class, algorithm, string), when the string fits.
    #[inline]
    fn slot_of(class: u16, alg: Algorithm, string: &[u8]) -> Option<usize> {
        (string.len() <= CACHE_KEY).then(|| cache_slot(class, alg as u8, string))
    }

    /// The next hop the cache holds in `slot` for (class, algorithm,
    /// string), if it holds it.
    #[inline]
    fn cached(&self, slot: usize, class: u16, alg: Algorithm, string: &[u8]) -> Option<IpAddr> {
        let s = self.cache.get(slot)?;
        (s.generation == self.generation
            && s.class == class
            && s.alg == alg as u8
            && s.len as usize == string.len()
            && s.key[..string.len()] == *string)
            .then_some(s.next_hop)
    }

    /// Look (class, algorithm, string) up in the tables: the next hop of a
    /// hit without rewrite rules, remembered in `slot`.
    fn lookup_and_remember(
        &mut self,
        slot: Option<usize>,
        class: u16,
        alg: Algorithm,
        string: &[u8],
    ) -> Option<IpAddr> {
        let e = self.tables.get(class)?.lookup(alg, string, &mut self.scratch)?;
        if !e.rules.is_empty() {
            return None;
        }
        let nh = e.next_hop;
        if let Some(slot) = slot {
            if self.cache.is_empty() {
                self.cache = vec![EMPTY_SLOT; CACHE_SLOTS];
            }
            let mut key = [0; CACHE_KEY];
            key[..string.len()].copy_from_slice(string);
            self.cache[slot] = Slot {
                generation: self.generation,
                class,
                alg: alg as u8,
                len: string.len() as u8,
                key,
                next_hop: nh,
            };
        }
        Some(nh)
    }

    /// The fast path's next hop: a table hit without rewrite rules whose
    /// next hop is not the address the packet arrived for (that would loop
    /// here) and of the same family as `arrived`. Cached hits (see the
    /// module documentation) are answered without the table.
    #[inline]
    fn fast_next_hop(&mut self, class: u16, alg: Algorithm, string: &[u8], arrived: IpAddr) -> Option<IpAddr> {
        let slot = Self::slot_of(class, alg, string);
        let nh = match slot.and_then(|i| self.cached(i, class, alg, string)) {
            Some(nh) => {
                self.c.cache_hits += 1;
                self.ahead = self.ahead.saturating_sub(1);
                nh
            }
            None => {
                if alg == Algorithm::Exact {
                    // Only exact strings are resolved ahead.
                    self.ahead = AHEAD_WINDOW;
                }
                self.lookup_and_remember(slot, class, alg, string)?
            }
        };
        (nh != arrived && nh.is_ipv4() == arrived.is_ipv4()).then_some(nh)
    }

    /// [`Element::prefetch`] for one frame `d`.
    fn resolve_ahead(&mut self, d: &[u8]) {
        if d.get(12..14) != Some(&[0x08, 0x00][..]) {
            return;
        }
        let Some(&vihl) = d.get(14) else { return };
        if vihl >> 4 != 4 || vihl & 0x0f <= 5 {
            return;
        }
        let Some(opt) = d.get(34..14 + (vihl & 0x0f) as usize * 4) else {
            return;
        };
        let Ok(view) = OptionView::new_checked(opt) else {
            return;
        };
        let Some(t) = view.current_unvalidated() else {
            return;
        };
        let (class, alg, s) = (t.class, t.alg, t.string);
        if alg != Algorithm::Exact {
            return;
        }
        let Some(slot) = Self::slot_of(class, alg, s) else {
            return;
        };
        if s.len() <= self.max_string && self.cached(slot, class, alg, s).is_none() {
            self.ahead = AHEAD_WINDOW;
            self.lookup_and_remember(Some(slot), class, alg, s);
        }
    }

    fn process_v4(&mut self, cx: &mut Ctx<'_>, pkt: &mut Packet, l3: usize, off: usize) -> Verdict {
        let d = pkt.data();
        let ip = &d[l3..];
        let ihl = (ip[0] & 0x0f) as usize * 4;
        let arrived = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
        let view = match OptionView::new_checked(&ip[off..ihl]) {
            Ok(v) => v,
            Err(e) => return self.bad(cx, &d[l3..], off, e),
        };
        let (_, cur) = match view.check_entries(self.max_string) {
            Ok(x) => x,
            Err(e) => return self.bad(cx, &d[l3..], off, e),
        };
        let Some((_, tag)) = view.entries().nth(cur) else {
            self.c.passed += 1;
            return Verdict::Continue;
        };
        // Fast path: one string, no rules, resolved in place.
        let fast = match self.fast_next_hop(tag.class, tag.alg, tag.string, IpAddr::V4(arrived)) {
            Some(IpAddr::V4(nh)) => Some(nh),
            _ => None,
        };
        if let Some(nh) = fast {
            let new_ptr = view.pointer() + (wire::ENTRY_HEADER_LEN + tag.string.len()) as u8;
            let l4 = pkt.meta.l4 as usize;
            let tp = pkt.meta.flow.proto;
            // Every offset the engine parsed stays valid and the one field
            // of its flow key that changed is updated here, so the packet
            // is not marked for re-parsing (which costs more than the
            // resolution itself).
            pkt.meta.flow.dst = u32::from(nh) as u128;
            let d = pkt.data_mut_unmarked();
            // Two fields changed: the header checksum is updated for them
            // (RFC 1624) rather than summed again over the whole header.
            let pw = l3 + ((off + 2) & !1);
            let old_word = u16::from_be_bytes([d[pw], d[pw + 1]]);
            d[l3 + off + 2] = new_ptr;
            let new_word = u16::from_be_bytes([d[pw], d[pw + 1]]);
            d[l3 + 16..l3 + 20].copy_from_slice(&nh.octets());
            let hc = u16::from_be_bytes([d[l3 + 10], d[l3 + 11]]);
            let hc = checksum::update16(hc, old_word, new_word);
            let hc = checksum::update32(hc, u32::from(arrived), u32::from(nh));
            d[l3 + 10..l3 + 12].copy_from_slice(&hc.to_be_bytes());
            fix_l4_v4(d, l4, tp, arrived.octets(), nh.octets());
            self.c.resolved += 1;
            self.c.strings += 1;
            return Verdict::Continue;
        }
        // General path: the chain as a value.
        let mut chain = match TagChain::parse_v4(&ip[off..ihl]) {
            Ok(c) => c,
            Err(e) => return self.bad(cx, &d[l3..], off, e),
        };
        let nh = match self.resolve_chain(&mut chain, IpAddr::V4(arrived)) {
            Ok(IpAddr::V4(nh)) => nh,
            Ok(IpAddr::V6(_)) => return Verdict::Drop,
            Err(miss) => {
                let ip = pkt.data()[l3..].to_vec();
                return self.missed(cx, &ip, miss);
            }
        };
        // New options area: the options before ours, ours, the ones after
        // (up to an end-of-list), padded with end-of-list octets.
        let mut opt = [0u8; wire::MAX_OPTION_LEN];
        let n = chain.buffer_len_v4();
        if chain.emit_v4(&mut opt).is_err() {
            self.c.rewrite_failed += 1;
            return Verdict::Drop;
        }
        let old_len = ip[off + 1] as usize;
        let mut area = [0u8; wire::MAX_OPTION_LEN];
        let before = &ip[20..off];
        let after = options_until_end(&ip[off + old_len..ihl]);
        let used = before.len() + n + after.len();
        if used > wire::MAX_OPTION_LEN {
            self.c.rewrite_failed += 1;
            return Verdict::Drop;
        }
        area[..before.len()].copy_from_slice(before);
        area[before.len()..before.len() + n].copy_from_slice(&opt[..n]);
        area[before.len() + n..used].copy_from_slice(after);
        let new_area = used.div_ceil(4) * 4;
        let new_ihl = 20 + new_area;
        let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
        let new_total = total + new_ihl - ihl;
        if new_total > u16::MAX as usize {
            self.c.rewrite_failed += 1;
            return Verdict::Drop;
        }
        if !resize(pkt, l3 + 20, ihl - 20, new_area) {
            self.c.rewrite_failed += 1;
            return Verdict::Drop;
        }
        let l4 = if pkt.meta.l4 == 0 {
            0
        } else {
            pkt.meta.l4 as usize + new_ihl - ihl
        };
        let tp = pkt.meta.flow.proto;
        let d = pkt.data_mut();
        d[l3] = 0x40 | (new_ihl / 4) as u8;
        d[l3 + 2..l3 + 4].copy_from_slice(&(new_total as u16).to_be_bytes());
        d[l3 + 16..l3 + 20].copy_from_slice(&nh.octets());
        d[l3 + 20..l3 + new_ihl].copy_from_slice(&area[..new_area]);
        fix_ipv4_header(&mut d[l3..l3 + new_ihl]);
        fix_l4_v4(d, l4, tp, arrived.octets(), nh.octets());
        self.c.resolved += 1;
        Verdict::Continue
    }

    fn process_v6(&mut self, cx: &mut Ctx<'_>, pkt: &mut Packet, l3: usize, off: usize) -> Verdict {
        let d = pkt.data();
        let ip = &d[l3..];
        let arrived = Ipv6Addr::from(<[u8; 16]>::try_from(&ip[24..40]).unwrap_or([0; 16]));
        let view = match RoutingView::new_checked(&ip[off..]) {
            Ok(v) => v,
            Err(e) => return self.bad(cx, &d[l3..], off, e),
        };
        let (_, cur) = match view.check_entries(self.max_string) {
            Ok(x) => x,
            Err(e) => return self.bad(cx, &d[l3..], off, e),
        };
        let Some((_, tag)) = view.entries().nth(cur) else {
            self.c.passed += 1;
            return Verdict::Continue;
        };
        let fast = match self.fast_next_hop(tag.class, tag.alg, tag.string, IpAddr::V6(arrived)) {
            Some(IpAddr::V6(nh)) => Some(nh),
            _ => None,
        };
        if let Some(nh) = fast {
            let new_ptr = view.pointer() + (wire::ENTRY_HEADER_LEN + tag.string.len()) as u16;
            let l4 = pkt.meta.l4 as usize;
            let tp = pkt.meta.flow.proto;
            pkt.meta.flow.dst = u128::from(nh);
            let d = pkt.data_mut_unmarked();
            d[l3 + off + 4..l3 + off + 6].copy_from_slice(&new_ptr.to_be_bytes());
            d[l3 + 24..l3 + 40].copy_from_slice(&nh.octets());
            fix_l4_v6(d, l4, tp, &arrived.octets(), &nh.octets());
            self.c.resolved += 1;
            self.c.strings += 1;
            return Verdict::Continue;
        }
        let old_len = view.header_len();
        let (mut chain, next_header) = match TagChain::parse_v6(&ip[off..]) {
            Ok(c) => c,
            Err(e) => return self.bad(cx, &d[l3..], off, e),
        };
        let nh = match self.resolve_chain(&mut chain, IpAddr::V6(arrived)) {
            Ok(IpAddr::V6(nh)) => nh,
            Ok(IpAddr::V4(_)) => return Verdict::Drop,
            Err(miss) => {
                let ip = pkt.data()[l3..].to_vec();
                return self.missed(cx, &ip, miss);
            }
        };
        let rh = match chain.ipv6_header(next_header) {
            Ok(h) => h,
            Err(_) => {
                self.c.rewrite_failed += 1;
                return Verdict::Drop;
            }
        };
        let plen = u16::from_be_bytes([ip[4], ip[5]]) as usize;
        let new_plen = plen + rh.len() - old_len;
        if new_plen > u16::MAX as usize || !resize(pkt, l3 + off, old_len, rh.len()) {
            self.c.rewrite_failed += 1;
            return Verdict::Drop;
        }
        let l4 = if pkt.meta.l4 == 0 {
            0
        } else {
            pkt.meta.l4 as usize + rh.len() - old_len
        };
        let tp = pkt.meta.flow.proto;
        let d = pkt.data_mut();
        d[l3 + 4..l3 + 6].copy_from_slice(&(new_plen as u16).to_be_bytes());
        d[l3 + 24..l3 + 40].copy_from_slice(&nh.octets());
        d[l3 + off..l3 + off + rh.len()].copy_from_slice(&rh);
        fix_l4_v6(d, l4, tp, &arrived.octets(), &nh.octets());
        self.c.resolved += 1;
        Verdict::Continue
    }
}

/// Options up to (not including) an end-of-list octet, walking TLVs.
fn options_until_end(o: &[u8]) -> &[u8] {
    let mut i = 0;
    while i < o.len() {
        match o[i] {
            0 => break,
            1 => i += 1,
            _ => match o.get(i + 1) {
                Some(&l) if l >= 2 && i + l as usize <= o.len() => i += l as usize,
                _ => break,
            },
        }
    }
    &o[..i]
}

/// Make the `old` bytes at `at` into `new` bytes (contents unspecified).
fn resize(pkt: &mut Packet, at: usize, old: usize, new: usize) -> bool {
    if new > old {
        pkt.insert_gap(at + old, new - old).is_ok()
    } else if new < old {
        pkt.remove_range(at + new, old - new).is_ok()
    } else {
        true
    }
}

fn fix_ipv4_header(h: &mut [u8]) {
    h[10] = 0;
    h[11] = 0;
    let c = checksum::checksum(h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
}

/// The transport checksum's offset within its header, for protocols whose
/// checksum covers a pseudo-header.
fn l4_checksum_at(proto: u8) -> Option<usize> {
    match proto {
        proto::UDP => Some(6),
        proto::TCP => Some(16),
        proto::ICMPV6 => Some(2),
        _ => None,
    }
}

fn fix_l4_v4(d: &mut [u8], l4: usize, tp: u8, old: [u8; 4], new: [u8; 4]) {
    let Some(at) = l4_checksum_at(tp) else { return };
    if l4 == 0 || d.len() < l4 + at + 2 {
        return;
    }
    let c = u16::from_be_bytes([d[l4 + at], d[l4 + at + 1]]);
    if tp == proto::UDP && c == 0 {
        return; // no checksum (RFC 768)
    }
    let mut n = checksum::update32(c, u32::from_be_bytes(old), u32::from_be_bytes(new));
    if tp == proto::UDP && n == 0 {
        n = 0xffff;
    }
    d[l4 + at..l4 + at + 2].copy_from_slice(&n.to_be_bytes());
}

fn fix_l4_v6(d: &mut [u8], l4: usize, tp: u8, old: &[u8; 16], new: &[u8; 16]) {
    let Some(at) = l4_checksum_at(tp) else { return };
    if l4 == 0 || d.len() < l4 + at + 2 {
        return;
    }
    let c = u16::from_be_bytes([d[l4 + at], d[l4 + at + 1]]);
    let mut n = checksum::update_bytes(c, old, new);
    if tp == proto::UDP && n == 0 {
        n = 0xffff;
    }
    d[l4 + at..l4 + at + 2].copy_from_slice(&n.to_be_bytes());
}

impl Element for DataRouter {
    fn handlers(&self) -> Vec<Handler> {
        HANDLERS.to_vec()
    }

    /// Resolve ahead: an exact (hash) string at the pointer of an IPv4 tag
    /// that is the packet's first option is looked up now, for the whole
    /// batch, and a hit without rules goes into the resolution cache, where
    /// `process` finds it. One lookup per packet still, but those of a
    /// batch no longer wait for each other's cache misses (a million-key
    /// table is mostly misses). Other algorithms are not memory bound the
    /// same way (measured: resolving suffix and regex strings ahead cost
    /// 5–6 % with 16,384 strings in `weft bench`); IPv6 tags and strings
    /// the cache cannot key are left to `process`; so is everything while
    /// the cache answers every string (see `AHEAD_WINDOW`).
    fn prefetch(&mut self, pkts: &[Packet]) {
        if self.ahead == 0 {
            return;
        }
        for p in pkts {
            self.resolve_ahead(p.data());
        }
    }

    #[inline]
    fn process(&mut self, cx: &mut Ctx<'_>, pkt: &mut Packet) -> Verdict {
        if pkt.meta.l3 == 0 && pkt.parse().is_err() {
            return Verdict::Continue;
        }
        let l3 = pkt.meta.l3 as usize;
        let d = pkt.data();
        let Some(&first) = d.get(l3) else {
            return Verdict::Continue;
        };
        // Most packets carry no options at all.
        if first == 0x45 || (first >> 4 == 6 && d.get(l3 + 6).is_some_and(|nh| !matches!(nh, 0 | 43 | 60))) {
            self.c.passed += 1;
            return Verdict::Continue;
        }
        match wire::locate(&d[l3..]) {
            Where::None => {
                self.c.passed += 1;
                Verdict::Continue
            }
            Where::Malformed { off, error } => {
                let ip = d[l3..].to_vec();
                self.bad(cx, &ip, off, error)
            }
            Where::V4 { off } => self.process_v4(cx, pkt, l3, off),
            Where::V6 { off, .. } => self.process_v6(cx, pkt, l3, off),
        }
    }

    fn configure(&mut self, args: &Args) -> Result<(), ElementError> {
        let (m, u) = parse_config(args)?;
        self.max_string = m;
        self.unknown = u;
        Ok(())
    }

    fn control(&mut self, request: &str) -> Result<String, ElementError> {
        let r = request.trim();
        if r == "reset" {
            self.c = Counters::default();
            return Ok("ok".into());
        }
        let first = r.split_whitespace().next().unwrap_or("");
        if first == "class" || first == "ls" || first.starts_with('#') {
            let r = command::execute(Arc::make_mut(&mut self.tables), r);
            self.tables_changed();
            return r.map_err(|e| ElementError::Control(e.to_string()));
        }
        self.configure(&Args::parse(r))?;
        Ok("ok".into())
    }

    fn report(&self) -> serde_json::Value {
        let c = &self.c;
        let bad: BTreeMap<&str, u64> = REASONS.iter().copied().zip(c.bad.iter().copied()).collect();
        let classes: BTreeMap<String, serde_json::Value> = self
            .tables
            .classes()
            .map(|(n, t)| {
                (
                    crate::class_name(n),
                    serde_json::json!({ "entries": t.len(), "miss": t.miss }),
                )
            })
            .collect();
        serde_json::json!({
            "resolved": c.resolved,
            "strings": c.strings,
            "passed": c.passed,
            "miss": c.miss,
            "unknown_class": c.unknown_class,
            "family_mismatch": c.family_mismatch,
            "rewrite_failed": c.rewrite_failed,
            "icmp_sent": c.icmp_sent,
            "icmp_limited": c.icmp_limited,
            "cache_hits": c.cache_hits,
            "bad": bad,
            "classes": classes,
        })
    }

    fn export_state(&mut self) -> Option<serde_json::Value> {
        Some(serde_json::Value::String(script(&self.tables)))
    }

    fn import_state(&mut self, state: serde_json::Value) -> Result<(), ElementError> {
        let s = state
            .as_str()
            .ok_or_else(|| ElementError::State("expected a droute script".into()))?;
        let mut t = Tables::default();
        command::execute(&mut t, s).map_err(|e| ElementError::State(e.to_string()))?;
        self.replace_tables(Arc::new(t));
        Ok(())
    }
}

/// Every table as `droute` commands (what a successor imports).
pub fn script(t: &Tables) -> String {
    let mut s = String::new();
    for (c, ct) in t.classes() {
        let name = crate::class_name(c);
        s.push_str(&format!("class {name} miss {}\n", ct.miss));
        for r in ct.rows(usize::MAX) {
            let rules = if r.entry.rules.is_empty() {
                String::new()
            } else {
                format!(" rewrite {}", rewrite::rules_to_string(&r.entry.rules))
            };
            let p = if r.pattern.chars().any(|c| c.is_whitespace() || c == '"') {
                format!("\"{}\"", r.pattern.replace('\\', "\\\\").replace('"', "\\\""))
            } else {
                r.pattern.clone()
            };
            s.push_str(&format!(
                "class {name} add {p} {} alg {}{rules}\n",
                r.entry.next_hop, r.alg
            ));
        }
    }
    s
}

/// Run a DataRouter holding one entry of every algorithm (with rules) over
/// an IPv4 frame whose options are `data` and an IPv6 frame whose routing
/// header is `data`: the fuzz target `datarouter_option` and its property
/// test. Panics only if the element does, or passes on a frame that no
/// longer parses.
pub fn fuzz_frame(data: &[u8]) {
    use weft_dataplane::InstanceId;
    let Ok(mut d) = DataRouter::new(&Args::parse("")) else {
        return;
    };
    let _ = d.control(
        "class 0 add .* 10.0.2.3\nclass 1 add a 10.0.2.2 alg suffix rewrite copy:prefix,next:strip\n\
         class 1 add a 10.0.1.1 alg exact\nclass 1 add 0x00..0x7f 10.0.2.4 alg range rewrite self,del\n\
         class 1 add b 10.0.2.5 alg prefix rewrite gsub/a/bb/\nclass 1 add c 10.0.2.6 alg closest",
    );
    let mut frames = Vec::new();
    if data.len() <= wire::MAX_OPTION_LEN {
        let mut o = data.to_vec();
        o.resize(data.len().div_ceil(4) * 4, 0);
        let mut f = build::udp4(
            [2; 6],
            [4; 6],
            [10, 0, 0, 2].into(),
            [10, 0, 1, 1].into(),
            1,
            2,
            64,
            b"x",
        );
        f.splice(34..34, o.iter().copied());
        let ihl = 20 + o.len();
        f[14] = 0x40 | (ihl / 4) as u8;
        let total = (f.len() - 14) as u16;
        f[16..18].copy_from_slice(&total.to_be_bytes());
        fix_ipv4_header(&mut f[14..14 + ihl]);
        frames.push(f);
    }
    if data.len() >= 8 && data.len().is_multiple_of(8) {
        let mut f = build::udp6(
            [2; 6],
            [4; 6],
            "fd00::2".parse().unwrap_or(Ipv6Addr::UNSPECIFIED),
            "fd00::1".parse().unwrap_or(Ipv6Addr::UNSPECIFIED),
            1,
            2,
            64,
            b"x",
        );
        let mut h = data.to_vec();
        h[0] = 17;
        f[20] = wire::NEXT_HEADER_ROUTING;
        f.splice(54..54, h.iter().copied());
        let plen = (f.len() - 54) as u16;
        f[18..20].copy_from_slice(&plen.to_be_bytes());
        frames.push(f);
    }
    let mut pool = weft_packet::PacketPool::with_buffers(4);
    // Raw, as the node hands a received batch to its resolvers.
    d.prefetch(&frames.iter().map(|f| Packet::from_bytes(f)).collect::<Vec<_>>());
    for f in frames {
        let mut pkt = Packet::from_bytes(&f);
        if pkt.parse().is_err() {
            continue;
        }
        let mut emitted = Vec::new();
        let v = {
            let mut cx = Ctx::new(0, InstanceId(1), &mut pool, &mut emitted);
            d.process(&mut cx, &mut pkt)
        };
        if v == Verdict::Continue {
            assert!(pkt.parse().is_ok(), "the element passed on a frame that does not parse");
        }
    }
}

#[cfg(test)]
mod tests;
