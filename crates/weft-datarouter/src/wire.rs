//! The DataRouter tag on the wire: an IPv4 option and an IPv6 routing
//! header carrying a pointer and a chain of entries (paper figure 4).
//!
//! ```text
//! IPv4 option (type 0x9e: copied, class 0, number 30 — RFC 4727 experimental)
//!  0      1      2      3
//! +------+------+------+---------------------------------------+
//! | 0x9e | len  | ptr  | entry | entry | …                      |
//! +------+------+------+---------------------------------------+
//!
//! IPv6 routing header (routing type 253 — RFC 4727 experimental)
//!  0      1      2      3      4      5      6      7
//! +------+------+------+------+------+------+------+------+
//! |  NH  | HExt | 253  | SL=0 | pointer (16) | data len (16)|
//! +------+------+------+------+------+------+------+------+
//! | entry | entry | … | zero padding to a multiple of 8    |
//! +-------------------------------------------------------+
//!
//! entry:  class (13 bits) | algorithm (3 bits) | len (8) | string (len)
//! ```
//!
//! The pointer is, as in loose source routing, the 1-based octet index
//! within the option (header) of the entry to resolve next: 4 (IPv4) or 9
//! (IPv6) names the first entry; one past the last entry means the chain is
//! exhausted. Anything else is an error.
//!
//! [`OptionView`] and [`RoutingView`] are views over bytes (getters in one
//! `impl`, setters in another); [`TagChain`] is the validated value with
//! `parse`, `buffer_len` and `emit`. Untrusted bytes go through
//! `new_checked`; emitting uses `new_unchecked` over `buffer_len` bytes.

use crate::Algorithm;
use std::net::{Ipv4Addr, Ipv6Addr};

/// IPv4 option type: copied (1) | class 0 | number 30 — RFC 4727's
/// experimental option number, with the copy bit set so fragments keep the
/// tag (as loose source routing's 0x83 does).
pub const OPTION_TYPE: u8 = 0x9e;
/// IPv6 routing type: 253, RFC 4727's first experimental value.
pub const ROUTING_TYPE: u8 = 253;
/// IPv6 next-header value of a routing header.
pub const NEXT_HEADER_ROUTING: u8 = 43;
/// All IPv4 options together may take 40 octets.
pub const MAX_OPTION_LEN: usize = 40;
/// Type, length, pointer.
pub const V4_HEADER_LEN: usize = 3;
/// Next header, length, type, segments left, pointer, data length.
pub const V6_HEADER_LEN: usize = 8;
/// Class + algorithm (2), length (1).
pub const ENTRY_HEADER_LEN: usize = 3;
/// Largest string the wire can carry (its length is one octet).
pub const MAX_STRING: usize = 255;
/// Most entries a chain may hold. Bounds the work per packet; IPv4 holds
/// at most 9 non-empty ones anyway ((40 − 3) / 4).
pub const MAX_TAGS: usize = 32;
/// Largest IPv6 routing header data (entries) this implementation accepts:
/// the pointer is 16 bits, and a routing header is at most 2048 octets.
pub const MAX_V6_DATA: usize = 2048 - V6_HEADER_LEN;

/// Error returned by [`OptionView::new_checked`], [`RoutingView::new_checked`],
/// [`TagChain::parse_v4`], [`TagChain::parse_v6`] and the emitters: what is
/// wrong with a tag. Each kind is counted separately by the element
/// ([`TagError::reason`]); [`TagError::offset`] is the octet an ICMP
/// parameter problem points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    /// Shorter than its fixed header, or its length field runs past the
    /// bytes there are.
    #[error("truncated DataRouter tag")]
    Truncated,
    /// Not a DataRouter option / routing type.
    #[error("not a DataRouter tag")]
    NotDataRouter,
    /// The pointer lies beyond one past the last entry.
    #[error("tag pointer past the end")]
    PointerPastEnd,
    /// The pointer is before the first entry or inside one.
    #[error("tag pointer not on an entry")]
    BadPointer,
    /// An entry's length runs past the end of the tag (`at`: its length
    /// octet).
    #[error("tag entry length overruns the tag at octet {at}")]
    LengthOverrun {
        /// Offset of the length octet within the option / header.
        at: usize,
    },
    /// A string longer than the receiver accepts.
    #[error("tag string of {len} octets is longer than {max}")]
    Oversized {
        /// Offset of the length octet.
        at: usize,
        /// The string's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An algorithm value that is not assigned (6, 7).
    #[error("unknown lookup algorithm {value}")]
    UnknownAlgorithm {
        /// Offset of the class/algorithm field.
        at: usize,
        /// The value.
        value: u8,
    },
    /// More entries than [`MAX_TAGS`].
    #[error("more than {MAX_TAGS} tags")]
    TooManyTags,
    /// The chain does not fit: more than 40 octets of IPv4 options, or a
    /// routing header larger than 2048 octets.
    #[error("tag chain of {len} octets does not fit in {max}")]
    TooLong {
        /// Octets needed.
        len: usize,
        /// Octets allowed.
        max: usize,
    },
    /// An IPv6 DataRouter routing header with segments left other than 0
    /// (DataRouter keeps it 0 so that other routers pass it unchanged).
    #[error("segments left is not 0")]
    SegmentsLeft,
}

impl TagError {
    /// Stable counter name.
    pub fn reason(&self) -> &'static str {
        match self {
            TagError::Truncated => "truncated",
            TagError::NotDataRouter => "not-datarouter",
            TagError::PointerPastEnd => "pointer-past-end",
            TagError::BadPointer => "bad-pointer",
            TagError::LengthOverrun { .. } => "length-overrun",
            TagError::Oversized { .. } => "oversized-string",
            TagError::UnknownAlgorithm { .. } => "unknown-algorithm",
            TagError::TooManyTags => "too-many-tags",
            TagError::TooLong { .. } => "too-long",
            TagError::SegmentsLeft => "segments-left",
        }
    }

    /// The octet within the option (IPv4) or routing header (IPv6) that
    /// an ICMP parameter problem should point at.
    pub fn offset(&self, v6: bool) -> usize {
        match self {
            TagError::Truncated | TagError::TooLong { .. } | TagError::TooManyTags => 1,
            TagError::NotDataRouter => 2 * v6 as usize,
            TagError::PointerPastEnd | TagError::BadPointer => {
                if v6 {
                    4
                } else {
                    2
                }
            }
            TagError::LengthOverrun { at } | TagError::Oversized { at, .. } | TagError::UnknownAlgorithm { at, .. } => {
                *at
            }
            TagError::SegmentsLeft => 3,
        }
    }
}

/// Where each field sits. Visible to the crate so that its tests can
/// name the octets they break.
pub(crate) mod field {
    pub type Field = core::ops::Range<usize>;
    pub const TYPE: usize = 0;
    pub const LEN: usize = 1;
    pub const PTR: usize = 2;
    pub const ENTRIES: usize = 3;

    // One entry, at its offset in the entries area: class (13 bits) and
    // algorithm (3 bits), the string's length, the string.
    pub const ENTRY_CLASS_ALG: Field = 0..2;
    pub const ENTRY_LEN: usize = 2;
    pub const ENTRY_STRING: usize = 3;

    pub const V6_NEXT_HEADER: usize = 0;
    pub const V6_HDR_EXT_LEN: usize = 1;
    pub const V6_ROUTING_TYPE: usize = 2;
    pub const V6_SEGMENTS_LEFT: usize = 3;
    pub const V6_POINTER: Field = 4..6;
    pub const V6_DATA_LEN: Field = 6..8;
    pub const V6_ENTRIES: usize = 8;

    // Any IPv6 extension header (RFC 8200 4; RFC 6564's common format).
    pub const EXT_NEXT_HEADER: usize = 0;
    pub const EXT_LEN: usize = 1;
    pub const EXT_ROUTING_TYPE: usize = 2;
    pub const EXT_FRAGMENT_OFFSET: Field = 2..4;

    // The IPv4 header fields the walk to the upper layer reads.
    pub const V4_VERSION_IHL: usize = 0;
    pub const V4_FRAGMENT: Field = 6..8;
    pub const V4_PROTOCOL: usize = 9;
    pub const V4_OPTIONS: usize = 20;
    // The IPv6 header's.
    pub const V6_IP_NEXT_HEADER: usize = 6;
    pub const V6_IP_HEADER_LEN: usize = 40;
}

/// One entry of a chain, borrowed from the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TagRef<'a> {
    /// Routing class.
    pub class: u16,
    /// Lookup algorithm.
    pub alg: Algorithm,
    /// The string.
    pub string: &'a [u8],
}

/// One entry of a chain: routing class, lookup algorithm, string.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Tag {
    /// Routing class (0..=8191).
    pub class: u16,
    /// Lookup algorithm.
    pub alg: Algorithm,
    /// The string (any bytes).
    pub string: Vec<u8>,
}

impl Tag {
    /// A tag of `class` looked up with `alg`.
    pub fn new(class: u16, alg: Algorithm, string: impl Into<Vec<u8>>) -> Tag {
        Tag {
            class: class & crate::MAX_CLASS,
            alg,
            string: string.into(),
        }
    }

    /// Parse `CLASS:STRING` or `CLASS/ALG:STRING` (the CLI's `--tag`):
    /// `DNS:joe.com`, `URL/prefix:/apple`, `MP3:0x1f2e3d4c`. Without an
    /// algorithm, the class's usual one (DNS suffix, URL suffix, MP3
    /// exact, WEB closest, IPv4/IPv6 prefix, others long). A string
    /// written `0x…` is hex bytes.
    pub fn parse(s: &str) -> Result<Tag, String> {
        let (head, string) = s
            .split_once(':')
            .ok_or_else(|| format!("tag {s:?}: expected CLASS[/ALG]:STRING"))?;
        let (class, alg) = match head.split_once('/') {
            Some((c, a)) => (crate::parse_class(c)?, Some(a.parse::<Algorithm>()?)),
            None => (crate::parse_class(head)?, None),
        };
        let alg = alg.unwrap_or(match class {
            crate::classes::DNS | crate::classes::URL => Algorithm::Suffix,
            crate::classes::MP3 => Algorithm::Exact,
            crate::classes::WEB => Algorithm::Closest,
            crate::classes::IPV4 | crate::classes::IPV6 => Algorithm::Prefix,
            _ => Algorithm::Long,
        });
        let bytes = parse_bytes(string)?;
        if bytes.len() > MAX_STRING {
            return Err(format!("tag {s:?}: strings hold at most {MAX_STRING} octets"));
        }
        Ok(Tag::new(class, alg, bytes))
    }

    /// Borrowed form.
    pub fn as_ref(&self) -> TagRef<'_> {
        TagRef {
            class: self.class,
            alg: self.alg,
            string: &self.string,
        }
    }

    /// The string for people: text when printable, addresses for the IPv4
    /// and IPv6 classes, else `0x…` hex.
    pub fn display_string(&self) -> String {
        display_string(self.class, &self.string)
    }
}

/// Bytes of a pattern or tag string: `0x` + hex digits, else the text's
/// bytes (the inverse of [`display_string`] for strings that are not
/// addresses).
pub fn parse_bytes(s: &str) -> Result<Vec<u8>, String> {
    let Some(h) = s.strip_prefix("0x") else {
        return Ok(s.as_bytes().to_vec());
    };
    if h.len() % 2 != 0 {
        return Err(format!("{s:?}: hex needs an even number of digits"));
    }
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).map_err(|_| format!("{s:?}: not hex")))
        .collect()
}

/// See [`Tag::display_string`].
pub fn display_string(class: u16, s: &[u8]) -> String {
    if class == crate::classes::IPV4 && s.len() == 4 {
        return Ipv4Addr::new(s[0], s[1], s[2], s[3]).to_string();
    }
    if class == crate::classes::IPV6 && s.len() == 16 {
        let mut a = [0u8; 16];
        a.copy_from_slice(s);
        return Ipv6Addr::from(a).to_string();
    }
    if !s.is_empty() && s.iter().all(|b| (0x20..0x7f).contains(b)) {
        return String::from_utf8_lossy(s).into_owned();
    }
    let mut h = String::from("0x");
    for b in s {
        h.push_str(&format!("{b:02x}"));
    }
    h
}

impl std::fmt::Display for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}:{}",
            crate::class_name(self.class),
            self.alg,
            self.display_string()
        )
    }
}

/// Walk an entries area. `ptr_rel` is the pointer relative to the area;
/// `base` is the area's offset within the option (for error offsets).
/// Returns (number of entries, index the pointer designates — the count
/// when exhausted).
fn check_entries(area: &[u8], ptr_rel: usize, base: usize, max_string: usize) -> Result<(usize, usize), TagError> {
    if ptr_rel > area.len() {
        return Err(TagError::PointerPastEnd);
    }
    let mut off = 0;
    let mut n = 0;
    let mut current = None;
    while off < area.len() {
        if off == ptr_rel {
            current = Some(n);
        }
        if n == MAX_TAGS {
            return Err(TagError::TooManyTags);
        }
        if off + ENTRY_HEADER_LEN > area.len() {
            return Err(TagError::LengthOverrun {
                at: base + (off + field::ENTRY_LEN).min(area.len()),
            });
        }
        let ca = be16(&area[off..][field::ENTRY_CLASS_ALG]);
        if Algorithm::from_u8((ca & 7) as u8).is_none() {
            return Err(TagError::UnknownAlgorithm {
                // The algorithm's octet: the low one.
                at: base + off + field::ENTRY_CLASS_ALG.end - 1,
                value: (ca & 7) as u8,
            });
        }
        let len = area[off + field::ENTRY_LEN] as usize;
        if off + ENTRY_HEADER_LEN + len > area.len() {
            return Err(TagError::LengthOverrun {
                at: base + off + field::ENTRY_LEN,
            });
        }
        if len > max_string {
            return Err(TagError::Oversized {
                at: base + off + field::ENTRY_LEN,
                len,
                max: max_string,
            });
        }
        off += ENTRY_HEADER_LEN + len;
        n += 1;
    }
    if ptr_rel == area.len() {
        current = Some(n);
    }
    current.map(|c| (n, c)).ok_or(TagError::BadPointer)
}

/// The entry at `off` of an area that [`check_entries`] accepted.
fn entry_at(area: &[u8], off: usize) -> TagRef<'_> {
    let e = &area[off..];
    let ca = be16(&e[field::ENTRY_CLASS_ALG]);
    let len = e[field::ENTRY_LEN] as usize;
    TagRef {
        class: ca >> 3,
        alg: Algorithm::from_u8((ca & 7) as u8).unwrap_or(Algorithm::Long),
        string: &e[field::ENTRY_STRING..field::ENTRY_STRING + len],
    }
}

/// The entry at `off` of `area`, if its header and string lie within it.
fn entry_get(area: &[u8], off: usize) -> Option<TagRef<'_>> {
    let len = *area.get(off + field::ENTRY_LEN)? as usize;
    (off + ENTRY_HEADER_LEN + len <= area.len()).then(|| entry_at(area, off))
}

/// Iterator over an accepted entries area: (offset within the area, entry).
#[derive(Clone, Debug)]
pub struct Entries<'a> {
    area: &'a [u8],
    off: usize,
}

impl<'a> Iterator for Entries<'a> {
    type Item = (usize, TagRef<'a>);
    fn next(&mut self) -> Option<Self::Item> {
        let e = entry_get(self.area, self.off)?;
        let at = self.off;
        self.off += ENTRY_HEADER_LEN + e.string.len();
        Some((at, e))
    }
}

/// Write entry `t` at the start of `out`; returns its length.
fn put_entry(out: &mut [u8], t: &Tag) -> usize {
    let ca = (t.class & crate::MAX_CLASS) << 3 | t.alg as u16;
    out[field::ENTRY_CLASS_ALG].copy_from_slice(&ca.to_be_bytes());
    out[field::ENTRY_LEN] = t.string.len() as u8;
    out[field::ENTRY_STRING..field::ENTRY_STRING + t.string.len()].copy_from_slice(&t.string);
    ENTRY_HEADER_LEN + t.string.len()
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

// ----- IPv4 option ---------------------------------------------------------

/// A view over the bytes of a DataRouter IPv4 option (starting at its type
/// octet).
#[derive(Clone, Copy, Debug)]
pub struct OptionView<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> OptionView<T> {
    /// Wrap without checks (accessors may panic on short buffers).
    pub fn new_unchecked(buf: T) -> Self {
        OptionView { buf }
    }

    /// Wrap after [`OptionView::check_len`] and the type check: the way to
    /// look at bytes from outside.
    pub fn new_checked(buf: T) -> Result<Self, TagError> {
        let v = Self::new_unchecked(buf);
        v.check_len()?;
        if v.option_type() != OPTION_TYPE {
            return Err(TagError::NotDataRouter);
        }
        Ok(v)
    }

    /// The fixed header is there and the length field fits the buffer.
    pub fn check_len(&self) -> Result<(), TagError> {
        let b = self.buf.as_ref();
        if b.len() < V4_HEADER_LEN {
            return Err(TagError::Truncated);
        }
        let l = b[field::LEN] as usize;
        // Too long first: an option longer than 40 octets never fits the
        // header, so "past the header" would hide what is wrong.
        if l > MAX_OPTION_LEN {
            return Err(TagError::TooLong {
                len: l,
                max: MAX_OPTION_LEN,
            });
        }
        if l < V4_HEADER_LEN || l > b.len() {
            return Err(TagError::Truncated);
        }
        Ok(())
    }

    /// Option type octet.
    pub fn option_type(&self) -> u8 {
        self.buf.as_ref()[field::TYPE]
    }
    /// Option length (type, length and pointer included).
    pub fn length(&self) -> u8 {
        self.buf.as_ref()[field::LEN]
    }
    /// Pointer (1-based octet index of the current entry).
    pub fn pointer(&self) -> u8 {
        self.buf.as_ref()[field::PTR]
    }
    /// The entries area.
    pub fn entries_bytes(&self) -> &[u8] {
        &self.buf.as_ref()[field::ENTRIES..self.length() as usize]
    }
    /// Validate the entries against the pointer: (count, current index).
    pub fn check_entries(&self, max_string: usize) -> Result<(usize, usize), TagError> {
        let p = self.pointer() as usize;
        if p < field::ENTRIES + 1 {
            return Err(TagError::BadPointer);
        }
        check_entries(self.entries_bytes(), p - 1 - field::ENTRIES, field::ENTRIES, max_string)
    }
    /// The entries (after [`OptionView::check_entries`]).
    pub fn entries(&self) -> Entries<'_> {
        Entries {
            area: self.entries_bytes(),
            off: 0,
        }
    }
    /// The entry the pointer names, if it lies within the option, without
    /// [`OptionView::check_entries`] (a pointer into the middle of an entry
    /// reads garbage, an unknown algorithm reads as `long`): for hints
    /// only, such as resolving ahead.
    pub fn current_unvalidated(&self) -> Option<TagRef<'_>> {
        let off = (self.pointer() as usize).checked_sub(field::ENTRIES + 1)?;
        entry_get(self.entries_bytes(), off)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> OptionView<T> {
    /// Set the type octet.
    pub fn set_option_type(&mut self, v: u8) {
        self.buf.as_mut()[field::TYPE] = v;
    }
    /// Set the length.
    pub fn set_length(&mut self, v: u8) {
        self.buf.as_mut()[field::LEN] = v;
    }
    /// Set the pointer.
    pub fn set_pointer(&mut self, v: u8) {
        self.buf.as_mut()[field::PTR] = v;
    }
    /// Write entry `t` at octet `at` of the entries area; returns its
    /// length (the next entry's `at` is `at` plus it). The buffer must
    /// hold it.
    pub fn set_entry(&mut self, at: usize, t: &Tag) -> usize {
        put_entry(&mut self.buf.as_mut()[field::ENTRIES + at..], t)
    }
}

// ----- IPv6 routing header ---------------------------------------------------

/// A view over the bytes of a DataRouter IPv6 routing header.
#[derive(Clone, Copy, Debug)]
pub struct RoutingView<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> RoutingView<T> {
    /// Wrap without checks.
    pub fn new_unchecked(buf: T) -> Self {
        RoutingView { buf }
    }

    /// Wrap after [`RoutingView::check_len`], the routing type and
    /// segments left checks, and [`RoutingView::check_data_len`], in this
    /// order (the header's octets in order, but the data length last: it
    /// is DataRouter's own field, the others RFC 8200's).
    pub fn new_checked(buf: T) -> Result<Self, TagError> {
        let v = Self::new_unchecked(buf);
        v.check_len()?;
        if v.routing_type() != ROUTING_TYPE {
            return Err(TagError::NotDataRouter);
        }
        if v.segments_left() != 0 {
            return Err(TagError::SegmentsLeft);
        }
        v.check_data_len()?;
        Ok(v)
    }

    /// The fixed header and the whole header fit the buffer.
    pub fn check_len(&self) -> Result<(), TagError> {
        let b = self.buf.as_ref();
        if b.len() < V6_HEADER_LEN || self.header_len() > b.len() {
            return Err(TagError::Truncated);
        }
        Ok(())
    }

    /// The data length fits the header (after [`RoutingView::check_len`]).
    pub fn check_data_len(&self) -> Result<(), TagError> {
        if V6_HEADER_LEN + self.data_len() as usize > self.header_len() {
            return Err(TagError::LengthOverrun {
                at: field::V6_DATA_LEN.start,
            });
        }
        Ok(())
    }

    /// Next header.
    pub fn next_header(&self) -> u8 {
        self.buf.as_ref()[field::V6_NEXT_HEADER]
    }
    /// Header extension length (8-octet units after the first 8).
    pub fn hdr_ext_len(&self) -> u8 {
        self.buf.as_ref()[field::V6_HDR_EXT_LEN]
    }
    /// Whole header length in octets.
    pub fn header_len(&self) -> usize {
        (self.hdr_ext_len() as usize + 1) * 8
    }
    /// Routing type.
    pub fn routing_type(&self) -> u8 {
        self.buf.as_ref()[field::V6_ROUTING_TYPE]
    }
    /// Segments left (kept 0).
    pub fn segments_left(&self) -> u8 {
        self.buf.as_ref()[field::V6_SEGMENTS_LEFT]
    }
    /// DataRouter pointer (1-based octet index of the current entry).
    pub fn pointer(&self) -> u16 {
        be16(&self.buf.as_ref()[field::V6_POINTER])
    }
    /// Octets of entries (padding excluded).
    pub fn data_len(&self) -> u16 {
        be16(&self.buf.as_ref()[field::V6_DATA_LEN])
    }
    /// The entries area.
    pub fn entries_bytes(&self) -> &[u8] {
        &self.buf.as_ref()[field::V6_ENTRIES..field::V6_ENTRIES + self.data_len() as usize]
    }
    /// Validate the entries against the pointer: (count, current index).
    pub fn check_entries(&self, max_string: usize) -> Result<(usize, usize), TagError> {
        let p = self.pointer() as usize;
        if p < field::V6_ENTRIES + 1 {
            return Err(TagError::BadPointer);
        }
        check_entries(
            self.entries_bytes(),
            p - 1 - field::V6_ENTRIES,
            field::V6_ENTRIES,
            max_string,
        )
    }
    /// The entries (after [`RoutingView::check_entries`]).
    pub fn entries(&self) -> Entries<'_> {
        Entries {
            area: self.entries_bytes(),
            off: 0,
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> RoutingView<T> {
    /// Set next header.
    pub fn set_next_header(&mut self, v: u8) {
        self.buf.as_mut()[field::V6_NEXT_HEADER] = v;
    }
    /// Set the header extension length (8-octet units after the first 8).
    pub fn set_hdr_ext_len(&mut self, v: u8) {
        self.buf.as_mut()[field::V6_HDR_EXT_LEN] = v;
    }
    /// Set the routing type.
    pub fn set_routing_type(&mut self, v: u8) {
        self.buf.as_mut()[field::V6_ROUTING_TYPE] = v;
    }
    /// Set segments left.
    pub fn set_segments_left(&mut self, v: u8) {
        self.buf.as_mut()[field::V6_SEGMENTS_LEFT] = v;
    }
    /// Set the pointer.
    pub fn set_pointer(&mut self, v: u16) {
        self.buf.as_mut()[field::V6_POINTER].copy_from_slice(&v.to_be_bytes());
    }
    /// Set the octets of entries (padding excluded).
    pub fn set_data_len(&mut self, v: u16) {
        self.buf.as_mut()[field::V6_DATA_LEN].copy_from_slice(&v.to_be_bytes());
    }
    /// Write entry `t` at octet `at` of the entries area; returns its
    /// length. The buffer must hold it.
    pub fn set_entry(&mut self, at: usize, t: &Tag) -> usize {
        put_entry(&mut self.buf.as_mut()[field::V6_ENTRIES + at..], t)
    }
}

// ----- the value ---------------------------------------------------------------

/// A validated chain: the entries and which one is next.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TagChain {
    /// Entries in order.
    pub tags: Vec<Tag>,
    /// Index of the entry to resolve next; `tags.len()` when exhausted.
    pub next: usize,
}

impl TagChain {
    /// A fresh chain (pointer at the first entry).
    pub fn new(tags: Vec<Tag>) -> TagChain {
        TagChain { tags, next: 0 }
    }

    /// True when every entry has been resolved.
    pub fn exhausted(&self) -> bool {
        self.next >= self.tags.len()
    }

    fn from_entries(e: Entries<'_>, next: usize) -> TagChain {
        TagChain {
            tags: e
                .map(|(_, t)| Tag {
                    class: t.class,
                    alg: t.alg,
                    string: t.string.to_vec(),
                })
                .collect(),
            next,
        }
    }

    /// Parse an IPv4 option (bytes from its type octet on; trailing bytes
    /// after its length are ignored).
    pub fn parse_v4(bytes: &[u8]) -> Result<TagChain, TagError> {
        let v = OptionView::new_checked(bytes)?;
        let (_, next) = v.check_entries(MAX_STRING)?;
        Ok(Self::from_entries(v.entries(), next))
    }

    /// Parse an IPv6 routing header; also returns its next header.
    pub fn parse_v6(bytes: &[u8]) -> Result<(TagChain, u8), TagError> {
        let v = RoutingView::new_checked(bytes)?;
        let (_, next) = v.check_entries(MAX_STRING)?;
        Ok((Self::from_entries(v.entries(), next), v.next_header()))
    }

    fn entries_len(&self) -> usize {
        self.tags.iter().map(|t| ENTRY_HEADER_LEN + t.string.len()).sum()
    }

    fn check_emit(&self) -> Result<(), TagError> {
        if self.tags.len() > MAX_TAGS {
            return Err(TagError::TooManyTags);
        }
        if let Some((i, t)) = self.tags.iter().enumerate().find(|(_, t)| t.string.len() > MAX_STRING) {
            return Err(TagError::Oversized {
                at: i,
                len: t.string.len(),
                max: MAX_STRING,
            });
        }
        Ok(())
    }

    fn pointer_rel(&self) -> usize {
        self.tags[..self.next.min(self.tags.len())]
            .iter()
            .map(|t| ENTRY_HEADER_LEN + t.string.len())
            .sum()
    }

    /// Octets of the IPv4 option (without padding).
    pub fn buffer_len_v4(&self) -> usize {
        V4_HEADER_LEN + self.entries_len()
    }

    /// Write the IPv4 option into `buf` (exactly [`TagChain::buffer_len_v4`]
    /// octets). Errors when it exceeds 40 octets.
    pub fn emit_v4(&self, buf: &mut [u8]) -> Result<(), TagError> {
        self.check_emit()?;
        let len = self.buffer_len_v4();
        if len > MAX_OPTION_LEN {
            return Err(TagError::TooLong {
                len,
                max: MAX_OPTION_LEN,
            });
        }
        if buf.len() < len {
            return Err(TagError::Truncated);
        }
        let mut v = OptionView::new_unchecked(&mut buf[..len]);
        v.set_option_type(OPTION_TYPE);
        v.set_length(len as u8);
        v.set_pointer(self.pointer_v4());
        let mut at = 0;
        for t in &self.tags {
            at += v.set_entry(at, t);
        }
        Ok(())
    }

    /// The option padded with end-of-options octets to a multiple of 4:
    /// what `setsockopt(IP_OPTIONS)` takes and what follows the 20-octet
    /// header.
    pub fn ipv4_options(&self) -> Result<Vec<u8>, TagError> {
        let len = self.buffer_len_v4();
        let mut v = vec![0u8; len.div_ceil(4) * 4];
        self.emit_v4(&mut v)?;
        Ok(v)
    }

    /// Octets of the IPv6 routing header (padded to a multiple of 8).
    pub fn buffer_len_v6(&self) -> usize {
        (V6_HEADER_LEN + self.entries_len()).div_ceil(8) * 8
    }

    /// Write the IPv6 routing header into `buf` (exactly
    /// [`TagChain::buffer_len_v6`] octets).
    pub fn emit_v6(&self, buf: &mut [u8], next_header: u8) -> Result<(), TagError> {
        self.check_emit()?;
        let data = self.entries_len();
        if data > MAX_V6_DATA {
            return Err(TagError::TooLong {
                len: V6_HEADER_LEN + data,
                max: MAX_V6_DATA + V6_HEADER_LEN,
            });
        }
        let len = self.buffer_len_v6();
        if buf.len() < len {
            return Err(TagError::Truncated);
        }
        buf[..len].fill(0);
        let mut v = RoutingView::new_unchecked(&mut buf[..len]);
        v.set_next_header(next_header);
        v.set_hdr_ext_len((len / 8 - 1) as u8);
        v.set_routing_type(ROUTING_TYPE);
        v.set_segments_left(0);
        v.set_pointer((field::V6_ENTRIES + 1 + self.pointer_rel()) as u16);
        v.set_data_len(data as u16);
        let mut at = 0;
        for t in &self.tags {
            at += v.set_entry(at, t);
        }
        Ok(())
    }

    /// The IPv6 routing header as bytes.
    pub fn ipv6_header(&self, next_header: u8) -> Result<Vec<u8>, TagError> {
        let mut v = vec![0u8; self.buffer_len_v6()];
        self.emit_v6(&mut v, next_header)?;
        Ok(v)
    }

    /// The pointer value the IPv4 option carries for this chain.
    pub fn pointer_v4(&self) -> u8 {
        (field::ENTRIES + 1 + self.pointer_rel()) as u8
    }
}

impl std::fmt::Display for TagChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, t) in self.tags.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            if i == self.next {
                f.write_str("^")?;
            }
            write!(f, "{t}")?;
        }
        if self.exhausted() {
            f.write_str(" ^")?;
        }
        Ok(())
    }
}

// ----- finding the tag in a packet ------------------------------------------------

/// Where [`locate`] found a tag in an IP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Where {
    /// No DataRouter tag.
    None,
    /// An IPv4 option at `off` (from the IP header's start), `len` octets.
    V4 {
        /// Offset of the option's type octet from the IP header.
        off: usize,
    },
    /// An IPv6 routing header at `off` (from the IPv6 header's start);
    /// `nh_at` is the offset of the next-header octet that names it.
    V6 {
        /// Offset of the routing header.
        off: usize,
        /// Offset of the octet naming it (6 in the IPv6 header, or 0 of
        /// the extension header before it).
        nh_at: usize,
    },
    /// The IPv4 options or IPv6 extension headers around the tag, or
    /// before it, are malformed.
    Malformed {
        /// Offset (from the IP header's start) of the option or extension
        /// header at fault: an ICMP parameter problem points at its length
        /// octet, `off + 1`.
        off: usize,
        /// What is wrong ([`TagError::Truncated`]).
        error: TagError,
    },
}

/// Find the DataRouter tag in an IP packet (`ip` starts at the IP header).
/// Walks IPv4 options (end-of-list, no-op, type-length-value; the
/// DataRouter option's own length is left to [`OptionView`] to judge) and
/// IPv6 extension headers ([`ExtHeaders`]: hop-by-hop and destination
/// options before it; a routing header comes before any fragment or
/// authentication header, RFC 8200 4.1, so those end the search).
pub fn locate(ip: &[u8]) -> Where {
    let Some(&first) = ip.first() else {
        return Where::None;
    };
    match first >> 4 {
        4 => {
            let ihl = (first & 0x0f) as usize * 4;
            if ihl <= field::V4_OPTIONS || ip.len() < ihl {
                return Where::None;
            }
            let mut off = field::V4_OPTIONS;
            while off < ihl {
                match ip[off] {
                    0 => return Where::None,
                    1 => off += 1,
                    OPTION_TYPE => return Where::V4 { off },
                    _ => {
                        let len = ip.get(off + 1).map_or(0, |l| *l as usize);
                        if len < 2 || off + len > ihl {
                            return Where::Malformed {
                                off,
                                error: TagError::Truncated,
                            };
                        }
                        off += len;
                    }
                }
            }
            Where::None
        }
        6 => {
            let Some(walk) = ExtHeaders::new(ip) else {
                return Where::None;
            };
            for h in walk {
                match h {
                    Err(off) => {
                        return Where::Malformed {
                            off,
                            error: TagError::Truncated,
                        }
                    }
                    Ok(h) if h.routing_type() == Some(ROUTING_TYPE) => {
                        return Where::V6 {
                            off: h.off,
                            nh_at: h.nh_at,
                        }
                    }
                    Ok(h) if matches!(h.kind, ext::HOP_BY_HOP | ext::ROUTING | ext::DEST_OPTS) => {}
                    Ok(_) => return Where::None,
                }
            }
            Where::None
        }
        _ => Where::None,
    }
}

/// Next-header values of the IPv6 extension headers (RFC 7045 2).
pub mod ext {
    /// Hop-by-hop options.
    pub const HOP_BY_HOP: u8 = 0;
    /// Routing header.
    pub const ROUTING: u8 = 43;
    /// Fragment header.
    pub const FRAGMENT: u8 = 44;
    /// Encapsulating security payload: what follows is encrypted.
    pub const ESP: u8 = 50;
    /// Authentication header.
    pub const AUTH: u8 = 51;
    /// Destination options.
    pub const DEST_OPTS: u8 = 60;
    /// Mobility header.
    pub const MOBILITY: u8 = 135;
    /// Host identity protocol.
    pub const HIP: u8 = 139;
    /// Shim6.
    pub const SHIM6: u8 = 140;

    /// Whether `nh` names an extension header [`super::ExtHeaders`] walks
    /// over (not ESP: nothing after it can be read).
    pub fn is_walked(nh: u8) -> bool {
        matches!(
            nh,
            HOP_BY_HOP | ROUTING | FRAGMENT | AUTH | DEST_OPTS | MOBILITY | HIP | SHIM6
        )
    }
}

/// Most extension headers [`ExtHeaders`] walks: a bound on the work per
/// packet (a legitimate packet has a handful; RFC 8200 4.1 allows each
/// kind once, destination options twice).
pub const MAX_EXT_HEADERS: usize = 16;

/// One IPv6 extension header found by [`ExtHeaders`]: a view over its
/// octets, whatever its kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtHeader<'a> {
    /// Its kind: the next-header value that named it ([`ext`]).
    pub kind: u8,
    /// Offset (from the IPv6 header's start) of the octet that named it:
    /// 6 in the IPv6 header, or 0 of the header before.
    pub nh_at: usize,
    /// Offset of the header from the IPv6 header's start.
    pub off: usize,
    /// The header's octets.
    pub bytes: &'a [u8],
}

impl ExtHeader<'_> {
    /// The next header after this one.
    pub fn next_header(&self) -> u8 {
        self.bytes[field::EXT_NEXT_HEADER]
    }
    /// The routing type, for a routing header.
    pub fn routing_type(&self) -> Option<u8> {
        (self.kind == ext::ROUTING).then(|| self.bytes[field::EXT_ROUTING_TYPE])
    }
    /// The fragment offset (8-octet units), for a fragment header.
    pub fn fragment_offset(&self) -> Option<u16> {
        let b = &self.bytes[field::EXT_FRAGMENT_OFFSET];
        (self.kind == ext::FRAGMENT).then(|| u16::from_be_bytes([b[0], b[1]]) >> 3)
    }
}

/// The length of the extension header of `kind` whose octets start `h`
/// (at least 8 of them).
fn ext_len(kind: u8, h: &[u8]) -> usize {
    let n = h[field::EXT_LEN] as usize;
    match kind {
        ext::FRAGMENT => 8,
        ext::AUTH => (n + 2) * 4, // RFC 4302 2.2: in 4-octet units, minus 2
        _ => (n + 1) * 8,
    }
}

/// The extension headers of an IPv6 packet, in order: each one an
/// [`ExtHeader`], or `Err(off)` when the header at `off` runs past the
/// packet's end (the walk stops there). The walk also stops after a
/// fragment header of a later fragment (what follows is not a header), at
/// ESP, and after [`MAX_EXT_HEADERS`]; [`ExtHeaders::upper`] then says
/// where it stands.
#[derive(Clone, Debug)]
pub struct ExtHeaders<'a> {
    ip: &'a [u8],
    nh: u8,
    nh_at: usize,
    off: usize,
    seen: usize,
    stopped: bool,
    later_fragment: bool,
}

impl<'a> ExtHeaders<'a> {
    /// The walk over `ip`, an IPv6 packet from its fixed header on; `None`
    /// when it is not one (version, length).
    pub fn new(ip: &'a [u8]) -> Option<Self> {
        let nh = *ip.get(field::V6_IP_NEXT_HEADER)?;
        (ip.len() >= field::V6_IP_HEADER_LEN && ip[0] >> 4 == 6).then_some(ExtHeaders {
            ip,
            nh,
            nh_at: field::V6_IP_NEXT_HEADER,
            off: field::V6_IP_HEADER_LEN,
            seen: 0,
            stopped: false,
            later_fragment: false,
        })
    }

    /// Where the walk stands once the iterator is exhausted: the
    /// upper-layer protocol and its offset. See [`upper_layer`].
    pub fn upper(&self) -> Upper {
        if self.later_fragment {
            return Upper::LaterFragment;
        }
        if self.stopped || ext::is_walked(self.nh) {
            // Truncated, or too many headers.
            return Upper::Unknown;
        }
        Upper::At {
            proto: self.nh,
            off: self.off,
        }
    }
}

impl<'a> Iterator for ExtHeaders<'a> {
    type Item = Result<ExtHeader<'a>, usize>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.stopped || !ext::is_walked(self.nh) || self.seen == MAX_EXT_HEADERS {
            return None;
        }
        let Some(h) = self.ip.get(self.off..self.off + 8) else {
            self.stopped = true;
            return Some(Err(self.off));
        };
        let len = ext_len(self.nh, h);
        let Some(bytes) = self.ip.get(self.off..self.off + len) else {
            self.stopped = true;
            return Some(Err(self.off));
        };
        let here = ExtHeader {
            kind: self.nh,
            nh_at: self.nh_at,
            off: self.off,
            bytes,
        };
        self.seen += 1;
        self.nh = here.next_header();
        self.nh_at = self.off;
        self.off += len;
        if here.fragment_offset().is_some_and(|o| o != 0) {
            self.stopped = true;
            self.later_fragment = true;
        }
        Some(Ok(here))
    }
}

/// Where [`upper_layer`] found an IP packet's upper-layer header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upper {
    /// Protocol `proto` (UDP, ICMP, ICMPv6, …; IPv6's 59 "no next
    /// header" and 50 ESP too) at `off` from the IP header's start. Its
    /// header may still be cut short: `off` may be at or past the end.
    At {
        /// The protocol number.
        proto: u8,
        /// Its offset.
        off: usize,
    },
    /// A fragment other than the first: the upper-layer header is in the
    /// first one.
    LaterFragment,
    /// Not to be found: an IPv6 extension header that runs past the end
    /// (the upper-layer header is not in the packet), more than
    /// [`MAX_EXT_HEADERS`] of them, or a header that is not IPv4 or IPv6.
    Unknown,
}

/// The upper-layer protocol of the IP packet `ip` (from its header on) and
/// where its header starts: IPv4's protocol field after the options, or
/// the end of IPv6's extension header chain, walked header by header
/// ([`ExtHeaders`]) — not the IPv6 header's next-header field, which names
/// the first extension header (43 when a DataRouter routing header
/// follows). What the element reads to never answer an ICMP error with
/// another (RFC 1122 3.2.2, RFC 4443 2.4(e)).
pub fn upper_layer(ip: &[u8]) -> Upper {
    let Some(&first) = ip.first() else {
        return Upper::Unknown;
    };
    match first >> 4 {
        4 => {
            let ihl = (ip[field::V4_VERSION_IHL] & 0x0f) as usize * 4;
            let Some(frag) = ip.get(field::V4_FRAGMENT) else {
                return Upper::Unknown;
            };
            if u16::from_be_bytes([frag[0], frag[1]]) & 0x1fff != 0 {
                return Upper::LaterFragment;
            }
            if ihl < field::V4_OPTIONS || ip.len() < field::V4_OPTIONS {
                return Upper::Unknown;
            }
            Upper::At {
                proto: ip[field::V4_PROTOCOL],
                off: ihl,
            }
        }
        6 => {
            let Some(mut walk) = ExtHeaders::new(ip) else {
                return Upper::Unknown;
            };
            for h in walk.by_ref() {
                if h.is_err() {
                    return Upper::Unknown;
                }
            }
            walk.upper()
        }
        _ => Upper::Unknown,
    }
}

/// Read the chain of an IP packet: `Ok(None)` when it has none.
pub fn read_chain(ip: &[u8]) -> Result<Option<TagChain>, TagError> {
    match locate(ip) {
        Where::None => Ok(None),
        Where::Malformed { error, .. } => Err(error),
        Where::V4 { off } => {
            let ihl = (ip[0] & 0x0f) as usize * 4;
            TagChain::parse_v4(&ip[off..ihl]).map(Some)
        }
        Where::V6 { off, .. } => TagChain::parse_v6(&ip[off..]).map(|(c, _)| Some(c)),
    }
}

// ----- frame builders (tests, the emulator scenarios, the benchmark, the demo) --------

/// An Ethernet/IPv4/UDP frame carrying `chain` as an option; checksums for
/// the destination `dst`.
#[allow(clippy::too_many_arguments)]
pub fn udp4_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    chain: &TagChain,
    payload: &[u8],
) -> Result<Vec<u8>, TagError> {
    let opts = chain.ipv4_options()?;
    let ihl = 20 + opts.len();
    let total = ihl + 8 + payload.len();
    if total > u16::MAX as usize {
        return Err(TagError::TooLong {
            len: total,
            max: u16::MAX as usize,
        });
    }
    let mut f = Vec::with_capacity(14 + total);
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let ip = [
        0x40 | (ihl / 4) as u8,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0x40,
        0,
        64,
        17,
        0,
        0,
    ];
    f.extend_from_slice(&ip);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&opts);
    let hc = weft_packet::checksum::checksum(&f[14..14 + ihl]);
    f[24..26].copy_from_slice(&hc.to_be_bytes());
    let ulen = (8 + payload.len()) as u16;
    let l4 = f.len();
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&ulen.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    let ps = weft_packet::checksum::pseudo_v4(src.octets(), dst.octets(), 17, ulen);
    let mut c = weft_packet::checksum::finish(weft_packet::checksum::sum(&f[l4..], ps));
    if c == 0 {
        c = 0xffff;
    }
    f[l4 + 6..l4 + 8].copy_from_slice(&c.to_be_bytes());
    Ok(f)
}

/// An Ethernet/IPv6/routing header/UDP frame carrying `chain`.
#[allow(clippy::too_many_arguments)]
pub fn udp6_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    sport: u16,
    dport: u16,
    chain: &TagChain,
    payload: &[u8],
) -> Result<Vec<u8>, TagError> {
    let rh = chain.ipv6_header(17)?;
    let ulen = 8 + payload.len();
    let plen = rh.len() + ulen;
    if plen > u16::MAX as usize {
        return Err(TagError::TooLong {
            len: plen,
            max: u16::MAX as usize,
        });
    }
    let mut f = Vec::with_capacity(14 + 40 + plen);
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&0x86ddu16.to_be_bytes());
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(plen as u16).to_be_bytes());
    f.push(NEXT_HEADER_ROUTING);
    f.push(64);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&rh);
    let l4 = f.len();
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&(ulen as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    let ps = weft_packet::checksum::pseudo_v6(src.octets(), dst.octets(), 17, ulen as u32);
    let mut c = weft_packet::checksum::finish(weft_packet::checksum::sum(&f[l4..], ps));
    if c == 0 {
        c = 0xffff;
    }
    f[l4 + 6..l4 + 8].copy_from_slice(&c.to_be_bytes());
    Ok(f)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::classes::{DNS, URL};
    use weft_packet::view::ETH_LEN;

    /// DNS/suffix "joe.com", URL/prefix "/apple"; pointer at the second.
    static OPTION_BYTES: [u8; 28] = [
        0x9e, 28, 14, // type, length, pointer: the second entry starts at octet 14
        0x00, 0x0c, 7, b'j', b'o', b'e', b'.', b'c', b'o', b'm', // class 1 << 3 | 4
        0x00, 0x13, 12, b'j', b'o', b'e', b'.', b'c', b'o', b'm', b'/', b'a', b'p', b'p', b'l',
    ];

    fn chain() -> TagChain {
        TagChain {
            tags: vec![
                Tag::new(DNS, Algorithm::Suffix, "joe.com"),
                Tag::new(URL, Algorithm::Prefix, "joe.com/appl"),
            ],
            next: 1,
        }
    }

    #[test]
    fn deconstruct() {
        let v = OptionView::new_checked(&OPTION_BYTES[..]).unwrap();
        assert_eq!(v.option_type(), 0x9e);
        assert_eq!(v.length(), 28);
        assert_eq!(v.pointer(), 14);
        assert_eq!(v.check_entries(MAX_STRING), Ok((2, 1)));
        let e: Vec<_> = v.entries().collect();
        assert_eq!(e[0].1.class, DNS);
        assert_eq!(e[0].1.alg, Algorithm::Suffix);
        assert_eq!(e[0].1.string, b"joe.com");
        assert_eq!(e[1].0, 10);
        assert_eq!(e[1].1.class, URL);
        assert_eq!(e[1].1.alg, Algorithm::Prefix);
    }

    #[test]
    fn construct() {
        let mut buf = [0xa5u8; 28];
        let mut v = OptionView::new_unchecked(&mut buf[..]);
        v.set_option_type(0x9e);
        v.set_length(28);
        v.set_pointer(14);
        let n = v.set_entry(0, &Tag::new(DNS, Algorithm::Suffix, "joe.com"));
        assert_eq!(n, 10);
        v.set_entry(n, &Tag::new(URL, Algorithm::Prefix, "joe.com/appl"));
        assert_eq!(buf, OPTION_BYTES);
    }

    #[test]
    fn construct_v6() {
        let mut buf = [0xa5u8; 40];
        let mut v = RoutingView::new_unchecked(&mut buf[..]);
        v.set_next_header(17);
        v.set_hdr_ext_len(4);
        v.set_routing_type(253);
        v.set_segments_left(0);
        v.set_pointer(19);
        let data = 25;
        v.set_data_len(data);
        let n = v.set_entry(0, &Tag::new(DNS, Algorithm::Suffix, "joe.com"));
        v.set_entry(n, &Tag::new(URL, Algorithm::Prefix, "joe.com/appl"));
        buf[V6_HEADER_LEN + data as usize..].fill(0); // padding to a multiple of 8
                                                      // The option's entries, behind the routing header's eight octets.
        let want = [&[17, 4, 253, 0, 0, 19, 0, 25][..], &OPTION_BYTES[3..], &[0; 7]].concat();
        assert_eq!(&buf[..], &want[..]);
    }

    #[test]
    fn parse_and_emit() {
        let c = TagChain::parse_v4(&OPTION_BYTES).unwrap();
        assert_eq!(c, chain());
        assert_eq!(c.buffer_len_v4(), 28);
        let mut buf = [0xa5u8; 28];
        c.emit_v4(&mut buf).unwrap();
        assert_eq!(buf, OPTION_BYTES);
        let padded = c.ipv4_options().unwrap();
        assert_eq!(padded.len(), 28);
    }

    #[test]
    fn v6_round_trip_and_bytes() {
        let c = chain();
        let h = c.ipv6_header(17).unwrap();
        assert_eq!(h.len(), 40); // 8 + 10 + 15 = 33, padded to 40
        assert_eq!(&h[..8], &[17, 4, 253, 0, 0, 19, 0, 25]);
        let (d, nh) = TagChain::parse_v6(&h).unwrap();
        assert_eq!((d, nh), (c, 17));
    }

    #[test]
    fn exhausted_pointer() {
        let mut b = OPTION_BYTES;
        OptionView::new_unchecked(&mut b[..]).set_pointer(29);
        let c = TagChain::parse_v4(&b).unwrap();
        assert!(c.exhausted());
        assert_eq!(c.pointer_v4(), 29);
    }

    #[test]
    fn malformed_truncated() {
        assert_eq!(TagChain::parse_v4(&[0x9e, 3]).unwrap_err(), TagError::Truncated);
        assert_eq!(
            TagChain::parse_v4(&OPTION_BYTES[..20]).unwrap_err(),
            TagError::Truncated
        );
        assert_eq!(TagChain::parse_v4(&[0x9e, 2, 4]).unwrap_err(), TagError::Truncated);
    }

    #[test]
    fn malformed_not_datarouter() {
        let mut b = OPTION_BYTES;
        OptionView::new_unchecked(&mut b[..]).set_option_type(0x83);
        assert_eq!(TagChain::parse_v4(&b).unwrap_err(), TagError::NotDataRouter);
    }

    #[test]
    fn malformed_pointer_past_end() {
        let mut b = OPTION_BYTES;
        OptionView::new_unchecked(&mut b[..]).set_pointer(30);
        assert_eq!(TagChain::parse_v4(&b).unwrap_err(), TagError::PointerPastEnd);
    }

    #[test]
    fn malformed_pointer_inside_entry() {
        let mut b = OPTION_BYTES;
        OptionView::new_unchecked(&mut b[..]).set_pointer(5);
        assert_eq!(TagChain::parse_v4(&b).unwrap_err(), TagError::BadPointer);
        OptionView::new_unchecked(&mut b[..]).set_pointer(3);
        assert_eq!(TagChain::parse_v4(&b).unwrap_err(), TagError::BadPointer);
    }

    #[test]
    fn malformed_length_overrun() {
        // The second entry's string, one octet longer than the option holds.
        let mut b = OPTION_BYTES;
        let (second, _) = OptionView::new_unchecked(&OPTION_BYTES[..]).entries().nth(1).unwrap();
        b[field::ENTRIES + second + field::ENTRY_LEN] = 13;
        assert_eq!(TagChain::parse_v4(&b).unwrap_err(), TagError::LengthOverrun { at: 15 });
        // An entry header cut by the option's end.
        let mut b = OPTION_BYTES;
        OptionView::new_unchecked(&mut b[..]).set_length(15);
        assert_eq!(
            TagChain::parse_v4(&b[..15]).unwrap_err(),
            TagError::LengthOverrun { at: 15 }
        );
    }

    #[test]
    fn malformed_oversized() {
        let v = OptionView::new_checked(&OPTION_BYTES[..]).unwrap();
        assert_eq!(
            v.check_entries(8).unwrap_err(),
            TagError::Oversized {
                at: 15,
                len: 12,
                max: 8
            }
        );
    }

    #[test]
    fn malformed_unknown_algorithm() {
        let mut b = OPTION_BYTES;
        // The first entry: class 1, algorithm 6.
        b[field::ENTRIES..][field::ENTRY_CLASS_ALG].copy_from_slice(&(1u16 << 3 | 6).to_be_bytes());
        assert_eq!(
            TagChain::parse_v4(&b).unwrap_err(),
            TagError::UnknownAlgorithm { at: 4, value: 6 }
        );
    }

    #[test]
    fn malformed_too_long_and_too_many() {
        let mut b = vec![0x9e, 41, 4];
        b.resize(41, 0);
        assert_eq!(
            TagChain::parse_v4(&b).unwrap_err(),
            TagError::TooLong { len: 41, max: 40 }
        );
        let c = TagChain::new(vec![Tag::new(1, Algorithm::Exact, "x"); 10]);
        assert_eq!(
            c.emit_v4(&mut [0; 64]).unwrap_err(),
            TagError::TooLong { len: 43, max: 40 }
        );
        // 9 one-octet tags fit: 3 + 9 × 4 = 39.
        assert!(TagChain::new(vec![Tag::new(1, Algorithm::Exact, "x"); 9])
            .ipv4_options()
            .is_ok());
        let c = TagChain::new(vec![Tag::new(1, Algorithm::Exact, ""); MAX_TAGS + 1]);
        assert_eq!(c.ipv6_header(17).unwrap_err(), TagError::TooManyTags);
        let h = routing_header_of_empty_tags(MAX_TAGS + 1);
        assert_eq!(TagChain::parse_v6(&h).unwrap_err(), TagError::TooManyTags);
    }

    /// A routing header (next header UDP) of `n` empty `exact` tags of
    /// class 0, the pointer at the first.
    pub(crate) fn routing_header_of_empty_tags(n: usize) -> Vec<u8> {
        let data = ENTRY_HEADER_LEN * n;
        let len = (V6_HEADER_LEN + data).div_ceil(8) * 8;
        let mut h = vec![0; len];
        let mut v = RoutingView::new_unchecked(&mut h[..]);
        v.set_next_header(17);
        v.set_hdr_ext_len((len / 8 - 1) as u8);
        v.set_routing_type(ROUTING_TYPE);
        v.set_pointer((field::V6_ENTRIES + 1) as u16);
        v.set_data_len(data as u16);
        for i in 0..n {
            v.set_entry(ENTRY_HEADER_LEN * i, &Tag::new(0, Algorithm::Exact, ""));
        }
        h
    }

    #[test]
    fn malformed_v6() {
        let h = chain().ipv6_header(17).unwrap();
        let mut b = h.clone();
        RoutingView::new_unchecked(&mut b[..]).set_segments_left(1);
        assert_eq!(TagChain::parse_v6(&b).unwrap_err(), TagError::SegmentsLeft);
        let mut b = h.clone();
        RoutingView::new_unchecked(&mut b[..]).set_routing_type(4);
        assert_eq!(TagChain::parse_v6(&b).unwrap_err(), TagError::NotDataRouter);
        assert_eq!(TagChain::parse_v6(&h[..16]).unwrap_err(), TagError::Truncated);
        let mut b = h.clone();
        RoutingView::new_unchecked(&mut b[..]).set_data_len(200);
        assert_eq!(TagChain::parse_v6(&b).unwrap_err(), TagError::LengthOverrun { at: 6 });
    }

    #[test]
    fn tag_words() {
        let t = Tag::parse("DNS:joe.com").unwrap();
        assert_eq!(t, Tag::new(DNS, Algorithm::Suffix, "joe.com"));
        assert_eq!(
            Tag::parse("URL/prefix:/apple").unwrap(),
            Tag::new(URL, Algorithm::Prefix, "/apple")
        );
        assert_eq!(Tag::parse("MP3:0x01ff").unwrap().string, vec![1, 0xff]);
        assert!(Tag::parse("joe.com").is_err());
        assert!(Tag::parse("BOGUS:x").is_err());
        assert_eq!(t.to_string(), "DNS/suffix:joe.com");
    }

    #[test]
    fn locate_in_packets() {
        let c = chain();
        let f = udp4_frame(
            [2; 6],
            [4; 6],
            [10, 0, 0, 1].into(),
            [10, 0, 0, 2].into(),
            1,
            2,
            &c,
            b"hi",
        )
        .unwrap();
        assert_eq!(locate(&f[ETH_LEN..]), Where::V4 { off: 20 });
        assert_eq!(read_chain(&f[ETH_LEN..]).unwrap(), Some(c.clone()));
        weft_packet::view::parse(&f).unwrap();
        let f6 = udp6_frame(
            [2; 6],
            [4; 6],
            "fd00::1".parse().unwrap(),
            "fd00::2".parse().unwrap(),
            1,
            2,
            &c,
            b"hi",
        )
        .unwrap();
        assert_eq!(locate(&f6[ETH_LEN..]), Where::V6 { off: 40, nh_at: 6 });
        assert_eq!(read_chain(&f6[ETH_LEN..]).unwrap(), Some(c));
        let h = weft_packet::view::parse(&f6).unwrap();
        assert_eq!(h.flow.proto, 17);
        let plain = weft_packet::build::udp4(
            [2; 6],
            [4; 6],
            [10, 0, 0, 1].into(),
            [10, 0, 0, 2].into(),
            1,
            2,
            64,
            b"x",
        );
        assert_eq!(locate(&plain[ETH_LEN..]), Where::None);
    }

    /// A bare IPv6 header (payload length not checked here) naming `nh`,
    /// followed by `rest`.
    fn ipv6(nh: u8, rest: &[u8]) -> Vec<u8> {
        let mut ip = vec![0x60, 0, 0, 0, 0, 0, nh, 64];
        ip.resize(40, 0xa5);
        ip.extend_from_slice(rest);
        ip
    }

    #[test]
    fn upper_layer_walks_the_extension_headers() {
        // Hop-by-hop (8), DataRouter routing header (16), fragment (8,
        // offset 0), authentication (12: length 1 → (1 + 2) × 4), ICMPv6.
        let rest: Vec<u8> = [
            &[43, 0, 1, 4, 0, 0, 0, 0][..],
            &[44, 1, 253, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            &[51, 0, 0x00, 0x01, 0, 0, 0, 1],
            &[58, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            &[1, 4, 0, 0],
        ]
        .concat();
        let ip = ipv6(0, &rest);
        assert_eq!(upper_layer(&ip), Upper::At { proto: 58, off: 84 });
        let kinds: Vec<(u8, usize, usize)> = ExtHeaders::new(&ip)
            .unwrap()
            .map(|h| h.map(|h| (h.kind, h.nh_at, h.off)).unwrap())
            .collect();
        assert_eq!(kinds, vec![(0, 6, 40), (43, 40, 48), (44, 48, 64), (51, 64, 72)]);
        assert_eq!(locate(&ip), Where::V6 { off: 48, nh_at: 40 });
        // A later fragment: what follows the fragment header is data.
        let mut later = ip.clone();
        let fragment = 64; // where the walk above found it
        later[fragment..][field::EXT_FRAGMENT_OFFSET].copy_from_slice(&(1u16 << 3).to_be_bytes()); // offset 1 (8 octets)
        assert_eq!(upper_layer(&later), Upper::LaterFragment);
        // Cut inside the routing header, or inside the fragment header.
        assert_eq!(upper_layer(&ip[..60]), Upper::Unknown);
        assert_eq!(
            locate(&ip[..60]),
            Where::Malformed {
                off: 48,
                error: TagError::Truncated
            }
        );
        assert_eq!(upper_layer(&ip[..68]), Upper::Unknown);
        // No extension headers; the IPv6 header cut short.
        assert_eq!(upper_layer(&ipv6(17, &[0; 8])), Upper::At { proto: 17, off: 40 });
        assert_eq!(upper_layer(&ipv6(17, &[])[..39]), Upper::Unknown);
        // More extension headers than are walked.
        let many: Vec<u8> = (0..=MAX_EXT_HEADERS).flat_map(|_| [60, 0, 1, 4, 0, 0, 0, 0]).collect();
        assert_eq!(upper_layer(&ipv6(60, &many)), Upper::Unknown);
        // ESP ends the walk: nothing behind it is readable.
        assert_eq!(upper_layer(&ipv6(50, &[0; 16])), Upper::At { proto: 50, off: 40 });
    }

    #[test]
    fn upper_layer_of_ipv4() {
        let mut ip = vec![0x46, 0, 0, 32, 0, 0, 0x40, 0, 64, 1, 0, 0];
        ip.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2, 0x01, 0x01, 0x01, 0x00, 3, 1, 0, 0]);
        assert_eq!(upper_layer(&ip), Upper::At { proto: 1, off: 24 });
        ip[field::V4_FRAGMENT].copy_from_slice(&0x2000u16.to_be_bytes()); // more fragments, offset 0
        assert_eq!(upper_layer(&ip), Upper::At { proto: 1, off: 24 });
        ip[field::V4_FRAGMENT].copy_from_slice(&0x2003u16.to_be_bytes()); // offset 3 (24 octets)
        assert_eq!(upper_layer(&ip), Upper::LaterFragment);
        assert_eq!(upper_layer(&[0x44, 0, 0, 20, 0, 0, 0, 0]), Upper::Unknown);
        assert_eq!(upper_layer(&[]), Upper::Unknown);
    }

    /// IPv4: a malformed option before the tag is reported at its own
    /// offset; the DataRouter option's length is judged by the view
    /// (`too-long` over 40 octets, else `truncated` past the header).
    #[test]
    fn locate_malformed_options() {
        let v4 = |opt: &[u8]| {
            let mut ip = vec![0x40 | (5 + opt.len() / 4) as u8, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0];
            ip.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
            ip.extend_from_slice(opt);
            ip
        };
        assert_eq!(
            locate(&v4(&[1, 1, 7, 9, 0, 0, 0, 0])),
            Where::Malformed {
                off: 22,
                error: TagError::Truncated
            }
        );
        let ip = v4(&[1, 0x9e, 41, 4]);
        assert_eq!(locate(&ip), Where::V4 { off: 21 });
        assert_eq!(
            TagChain::parse_v4(&ip[21..]).unwrap_err(),
            TagError::TooLong { len: 41, max: 40 }
        );
        assert_eq!(
            TagChain::parse_v4(&v4(&[0x9e, 40, 4, 0])[20..]).unwrap_err(),
            TagError::Truncated
        );
    }

    proptest::proptest! {
        /// Arbitrary bytes as an IPv4 or IPv6 packet: the walks never
        /// panic, and every extension header they report lies inside the
        /// packet, in order.
        #[test]
        fn walks_never_panic(mut ip in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200), v6 in proptest::prelude::any::<bool>()) {
            if let Some(b) = ip.first_mut() {
                *b = if v6 { 0x60 | (*b & 0x0f) } else { 0x40 | (*b & 0x0f) };
            }
            let _ = upper_layer(&ip);
            let _ = locate(&ip);
            let _ = read_chain(&ip);
            if let Some(walk) = ExtHeaders::new(&ip) {
                let mut end = 40;
                for h in walk.flatten() {
                    proptest::prop_assert_eq!(h.off, end);
                    proptest::prop_assert!(h.off + h.bytes.len() <= ip.len());
                    end = h.off + h.bytes.len();
                }
            }
        }
    }
}
