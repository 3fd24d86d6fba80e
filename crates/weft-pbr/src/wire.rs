//! PBR messages on the wire (`docs/pbr.md` is the specification).
//!
//! ```text
//! message = header, object*            (one message per UDP datagram, port 7077)
//!
//!  0        1        2        3        4        5        6        7
//! +--------+--------+--------+--------+--------+--------+--------+--------+
//! | version|  type  |     length      |          sequence number          |
//! +--------+--------+--------+--------+--------+--------+--------+--------+
//!
//! object = | kind (8) | flags (8, 0) | length (16, header included) | body |
//! ```
//!
//! The two top bits of an object's kind say what a receiver that does not
//! know it does (as RSVP's class numbers): `0b0…` reject the message,
//! `0b10…` ignore the object, `0b11…` ignore it and pass it on unchanged
//! in the message sent on ([`Message::forward`]).
//!
//! [`HeaderView`] is the view over the fixed header (getters in one `impl`,
//! setters in another); [`Message`] is the validated value with
//! [`Message::parse`], [`Message::buffer_len`] and [`Message::emit`].
//! Untrusted bytes only go through [`Message::parse`] (or [`peek`]), which
//! never panics.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Protocol version carried in every header.
pub const VERSION: u8 = 1;
/// UDP port PBR agents listen on ("PBR port").
pub const PBR_PORT: u16 = 7077;
/// UDP port of MPLS-in-UDP (RFC 7510), used on loose segments.
pub const MPLS_UDP_PORT: u16 = 6635;
/// Fixed header: version, type, length, sequence number.
pub const HEADER_LEN: usize = 8;
/// Object header: kind, flags, length.
pub const OBJECT_HEADER_LEN: usize = 4;
/// A message's length field is 16 bits.
pub const MAX_MESSAGE_LEN: usize = u16::MAX as usize;
/// The hop count of an EXPLICIT_ROUTE is one octet; agents refuse routes
/// longer than their own (smaller) hop limit with [`Reason::HopLimit`].
pub const MAX_WIRE_HOPS: usize = u8::MAX as usize;
/// MPLS labels are 20 bits (RFC 3032).
pub const MAX_LABEL: u32 = 0xF_FFFF;
/// Plugin class names are at most this long (length is one octet).
pub const MAX_CLASS_LEN: usize = u8::MAX as usize;
/// Secret length (RELEASE authenticator).
pub const SECRET_LEN: usize = 16;
/// SHA-256 output length (CREATE's AUTH object).
pub const HASH_LEN: usize = 32;

/// Message types.
pub mod msg {
    /// CREATE_PATH (downstream).
    pub const CREATE: u8 = 1;
    /// COMMIT (upstream).
    pub const COMMIT: u8 = 2;
    /// REFUSE (upstream).
    pub const REFUSE: u8 = 3;
    /// RELEASE_PATH (downstream).
    pub const RELEASE: u8 = 4;
    /// REFRESH (downstream).
    pub const REFRESH: u8 = 5;
    /// PATH_DOWN (upstream).
    pub const PATH_DOWN: u8 = 6;
    /// STATUS request (downstream).
    pub const STATUS_REQUEST: u8 = 7;
    /// STATUS reply (upstream).
    pub const STATUS_REPLY: u8 = 8;
    /// ACK (hop by hop).
    pub const ACK: u8 = 9;
}

/// Object kinds. All kinds assigned by the first version have the top bit
/// clear: a receiver that does not know one rejects the message. Later
/// optional ones carry the "ignore" bits (`0b10…`), so a node that predates
/// them ignores them.
pub mod obj {
    /// Path id: number (32) + initiator address.
    pub const PATH_ID: u8 = 0x01;
    /// Hop index (8): which visit sent (upstream) or receives (downstream).
    pub const HOP: u8 = 0x02;
    /// Flow specification.
    pub const FLOWSPEC: u8 = 0x03;
    /// Explicit route: current index, hops.
    pub const EXPLICIT_ROUTE: u8 = 0x04;
    /// Plugin to deploy: hop, class, configuration.
    pub const PLUGIN: u8 = 0x05;
    /// Resources: bandwidth in bits/s (64).
    pub const RESOURCES: u8 = 0x06;
    /// Refresh interval in ms (32).
    pub const REFRESH: u8 = 0x07;
    /// SHA-256 of the release secret.
    pub const AUTH: u8 = 0x08;
    /// The release secret (16 octets).
    pub const SECRET: u8 = 0x09;
    /// MPLS label (32, of which 20 used).
    pub const LABEL: u8 = 0x0a;
    /// Error: hop, reason, address, text.
    pub const ERROR: u8 = 0x0b;
    /// Status record: hop, address, JSON text.
    pub const STATUS_RECORD: u8 = 0x0c;
    /// Path MTU (16): the largest IP packet the sending visit and the rest
    /// of the path take. Optional in COMMIT; `0b10…`: ignored by a node
    /// that does not know it.
    pub const PATH_MTU: u8 = 0x8d;
}

/// Address family octet preceding every address (IANA address family
/// numbers).
mod af {
    pub const IPV4: u8 = 1;
    pub const IPV6: u8 = 2;
}

mod field {
    pub type Field = core::ops::Range<usize>;
    pub const VERSION: usize = 0;
    pub const TYPE: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const SEQ: Field = 4..8;
}

/// Error returned by [`Message::parse`], [`HeaderView::new_checked`] and
/// [`Message::emit`]: what is wrong with a message. Agents count each kind
/// separately ([`WireError::reason`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Shorter than the fixed header.
    #[error("truncated PBR message")]
    Truncated,
    /// A version other than [`VERSION`].
    #[error("PBR version {0} is not supported")]
    Version(u8),
    /// A message type that is not assigned.
    #[error("unknown PBR message type {0}")]
    UnknownType(u8),
    /// The length field is not the datagram's length.
    #[error("length field {field} does not match the datagram's {actual} octets")]
    BadLength {
        /// The length field.
        field: usize,
        /// The datagram's length.
        actual: usize,
    },
    /// An object header or an object's length runs past the message.
    #[error("object at octet {at} runs past the message")]
    ObjectTruncated {
        /// Offset of the object.
        at: usize,
    },
    /// An object whose body has the wrong size for its kind.
    #[error("object kind {kind:#04x} at octet {at} has a bad length")]
    BadObjectLength {
        /// Object kind.
        kind: u8,
        /// Offset of the object.
        at: usize,
    },
    /// An object that must be understood (top bit clear) but is not known.
    #[error("unknown object kind {kind:#04x} at octet {at}")]
    UnknownObject {
        /// Object kind.
        kind: u8,
        /// Offset of the object.
        at: usize,
    },
    /// A known object that this message type does not carry.
    #[error("object kind {kind:#04x} at octet {at} is not allowed in this message")]
    UnexpectedObject {
        /// Object kind.
        kind: u8,
        /// Offset of the object.
        at: usize,
    },
    /// A second copy of an object that may appear once.
    #[error("duplicate object kind {kind:#04x} at octet {at}")]
    DuplicateObject {
        /// Object kind.
        kind: u8,
        /// Offset of the object.
        at: usize,
    },
    /// A mandatory object is missing.
    #[error("missing object kind {kind:#04x}")]
    MissingObject {
        /// Object kind.
        kind: u8,
    },
    /// An address family octet other than 1 (IPv4) or 2 (IPv6), or
    /// source and destination of a FLOWSPEC of different families.
    #[error("bad address family at octet {at}")]
    BadAddressFamily {
        /// Offset of the object.
        at: usize,
    },
    /// A prefix length longer than the address.
    #[error("bad prefix length at octet {at}")]
    BadPrefix {
        /// Offset of the object.
        at: usize,
    },
    /// A port range whose low end is above its high end.
    #[error("bad port range at octet {at}")]
    BadPortRange {
        /// Offset of the object.
        at: usize,
    },
    /// A hop index outside the route, an empty route, or a hop index
    /// that makes no sense for the message.
    #[error("bad hop index at octet {at}")]
    BadHopIndex {
        /// Offset of the object (0: cross-object check).
        at: usize,
    },
    /// A label above 2^20 − 1.
    #[error("bad label at octet {at}")]
    BadLabel {
        /// Offset of the object.
        at: usize,
    },
    /// Text that is not UTF-8, or an empty class name.
    #[error("bad text at octet {at}")]
    BadText {
        /// Offset of the object.
        at: usize,
    },
    /// A zero refresh interval.
    #[error("bad refresh interval at octet {at}")]
    BadRefresh {
        /// Offset of the object.
        at: usize,
    },
    /// Emitting: the message would be longer than 65535 octets, or a
    /// field does not fit its wire width.
    #[error("message does not fit the wire format")]
    TooLong,
    /// Emitting: the buffer is shorter than [`Message::buffer_len`].
    #[error("buffer too short")]
    BufferTooShort,
}

impl WireError {
    /// Stable counter name.
    pub fn reason(&self) -> &'static str {
        match self {
            WireError::Truncated => "truncated",
            WireError::Version(_) => "version",
            WireError::UnknownType(_) => "unknown-type",
            WireError::BadLength { .. } => "bad-length",
            WireError::ObjectTruncated { .. } => "object-truncated",
            WireError::BadObjectLength { .. } => "bad-object-length",
            WireError::UnknownObject { .. } => "unknown-object",
            WireError::UnexpectedObject { .. } => "unexpected-object",
            WireError::DuplicateObject { .. } => "duplicate-object",
            WireError::MissingObject { .. } => "missing-object",
            WireError::BadAddressFamily { .. } => "bad-address-family",
            WireError::BadPrefix { .. } => "bad-prefix",
            WireError::BadPortRange { .. } => "bad-port-range",
            WireError::BadHopIndex { .. } => "bad-hop-index",
            WireError::BadLabel { .. } => "bad-label",
            WireError::BadText { .. } => "bad-text",
            WireError::BadRefresh { .. } => "bad-refresh",
            WireError::TooLong => "too-long",
            WireError::BufferTooShort => "buffer-too-short",
        }
    }
}

// ----- header view -----------------------------------------------------------

/// A view over a PBR message's fixed header.
#[derive(Clone, Copy, Debug)]
pub struct HeaderView<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> HeaderView<T> {
    /// Wrap without checks (accessors panic on buffers shorter than
    /// [`HEADER_LEN`]).
    pub fn new_unchecked(buf: T) -> Self {
        HeaderView { buf }
    }

    /// Wrap after [`HeaderView::check`]: the way to look at outside bytes.
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let v = Self::new_unchecked(buf);
        v.check()?;
        Ok(v)
    }

    /// The header is there, the version is [`VERSION`], the type is
    /// assigned and the length field is the buffer's length.
    pub fn check(&self) -> Result<(), WireError> {
        let b = self.buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.version() != VERSION {
            return Err(WireError::Version(self.version()));
        }
        if !(msg::CREATE..=msg::ACK).contains(&self.msg_type()) {
            return Err(WireError::UnknownType(self.msg_type()));
        }
        let l = self.length() as usize;
        if l != b.len() {
            return Err(WireError::BadLength {
                field: l,
                actual: b.len(),
            });
        }
        Ok(())
    }

    /// Version octet.
    pub fn version(&self) -> u8 {
        self.buf.as_ref()[field::VERSION]
    }
    /// Message type.
    pub fn msg_type(&self) -> u8 {
        self.buf.as_ref()[field::TYPE]
    }
    /// Length of the whole message, header included.
    pub fn length(&self) -> u16 {
        be16(&self.buf.as_ref()[field::LENGTH])
    }
    /// Sequence number (for an ACK: the one acknowledged).
    pub fn seq(&self) -> u32 {
        be32(&self.buf.as_ref()[field::SEQ])
    }
    /// The objects area.
    pub fn objects(&self) -> &[u8] {
        &self.buf.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> HeaderView<T> {
    /// Set the version.
    pub fn set_version(&mut self, v: u8) {
        self.buf.as_mut()[field::VERSION] = v;
    }
    /// Set the type.
    pub fn set_msg_type(&mut self, v: u8) {
        self.buf.as_mut()[field::TYPE] = v;
    }
    /// Set the length.
    pub fn set_length(&mut self, v: u16) {
        self.buf.as_mut()[field::LENGTH].copy_from_slice(&v.to_be_bytes());
    }
    /// Set the sequence number.
    pub fn set_seq(&mut self, v: u32) {
        self.buf.as_mut()[field::SEQ].copy_from_slice(&v.to_be_bytes());
    }
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}
fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}
fn be64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

// ----- values --------------------------------------------------------------------

/// A path's identity: the initiator's address and a number it chose.
/// Written `NUMBER@ADDRESS` (`7@10.0.1.1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PathId {
    /// The initiating node's address (the first hop's).
    pub initiator: IpAddr,
    /// Chosen by the initiator, unique among its paths.
    pub number: u32,
}

impl fmt::Display for PathId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.number, self.initiator)
    }
}

impl std::str::FromStr for PathId {
    type Err = String;
    fn from_str(s: &str) -> Result<PathId, String> {
        let (n, a) = s
            .split_once('@')
            .ok_or_else(|| format!("path id {s:?}: expected NUMBER@ADDRESS"))?;
        Ok(PathId {
            number: n.parse().map_err(|e| format!("path id {s:?}: {e}"))?,
            initiator: a.parse().map_err(|e| format!("path id {s:?}: {e}"))?,
        })
    }
}

/// An inclusive range of transport ports; `0..=65535` is the wildcard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortRange {
    /// Lowest port.
    pub lo: u16,
    /// Highest port.
    pub hi: u16,
}

impl PortRange {
    /// Any port.
    pub const ANY: PortRange = PortRange { lo: 0, hi: u16::MAX };
    /// Exactly `p`.
    pub fn single(p: u16) -> PortRange {
        PortRange { lo: p, hi: p }
    }
    /// Whether this is the wildcard.
    pub fn is_any(&self) -> bool {
        *self == PortRange::ANY
    }
    /// Whether `p` is in the range.
    pub fn contains(&self, p: u16) -> bool {
        self.lo <= p && p <= self.hi
    }
}

/// Which packets follow the path: source and destination prefix (length
/// 0 = any), port ranges, protocol (`None` = any). Both prefixes are of
/// one family.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FlowSpec {
    /// Source prefix.
    pub src: IpNet,
    /// Destination prefix.
    pub dst: IpNet,
    /// Source ports.
    pub sport: PortRange,
    /// Destination ports.
    pub dport: PortRange,
    /// IP protocol; `None` matches any.
    pub protocol: Option<u8>,
}

impl FlowSpec {
    /// Every IPv4 packet.
    pub fn any_v4() -> FlowSpec {
        let any = IpNet::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0).unwrap_or_default();
        FlowSpec {
            src: any,
            dst: any,
            sport: PortRange::ANY,
            dport: PortRange::ANY,
            protocol: None,
        }
    }

    /// Both prefixes of one family, port ranges ordered.
    pub fn is_valid(&self) -> bool {
        self.src.addr().is_ipv4() == self.dst.addr().is_ipv4()
            && self.sport.lo <= self.sport.hi
            && self.dport.lo <= self.dport.hi
    }

    /// Whether a packet with these fields matches (a reference for the
    /// data plane's classifier and for tests).
    pub fn matches(&self, src: IpAddr, dst: IpAddr, protocol: u8, sport: u16, dport: u16) -> bool {
        self.src.contains(&src)
            && self.dst.contains(&dst)
            && self.protocol.is_none_or(|p| p == protocol)
            && self.sport.contains(sport)
            && self.dport.contains(dport)
    }
}

/// One hop of an explicit route: an address of the node and whether the
/// segment *to* it from the previous hop is loose (follows the FIB,
/// tunnelled) rather than strict (a direct neighbour). The first hop's
/// flag has no meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Hop {
    /// The node's address (for a strict hop: on the link from the
    /// previous hop).
    pub addr: IpAddr,
    /// Loose segment from the previous hop.
    pub loose: bool,
}

impl Hop {
    /// A strict hop.
    pub fn strict(addr: IpAddr) -> Hop {
        Hop { addr, loose: false }
    }
    /// A loose hop.
    pub fn loose(addr: IpAddr) -> Hop {
        Hop { addr, loose: true }
    }
}

/// The EXPLICIT_ROUTE object: the walk and the index of the hop the
/// message is addressed to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ExplicitRoute {
    /// Hops, first (ingress, initiator) to last (egress).
    pub hops: Vec<Hop>,
    /// Index of the hop receiving this message.
    pub current: u8,
}

/// A plugin to deploy at one visit (several may target one visit; they
/// run in the listed order).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Plugin {
    /// Index of the visit.
    pub hop: u8,
    /// Element class name (`ENCRYPT`).
    pub class: String,
    /// Initial configuration string.
    pub config: String,
}

/// Why a hop refused a path or tore it down. Codes are on the wire; unknown
/// codes are kept as [`Reason::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Reason {
    /// 1: no route to the next hop (loose).
    NoRoute,
    /// 2: the next hop of a strict segment is not a direct neighbour.
    NotAdjacent,
    /// 3: not enough bandwidth on the egress.
    InsufficientBandwidth,
    /// 4: no room for another plugin instance.
    NoPluginCapacity,
    /// 5: the plugin class cannot be obtained.
    UnknownClass,
    /// 6: more hops than the node accepts.
    HopLimit,
    /// 7: a neighbour stopped acknowledging.
    NeighbourDown,
    /// 8: the message was malformed or inconsistent.
    BadMessage,
    /// 9: refreshes stopped; the state timed out.
    Timeout,
    /// 10: the COMMIT did not come back in time.
    SetupTimeout,
    /// 11: installing the state failed at commit.
    InstallFailed,
    /// 12: the node holds no state for the path.
    UnknownPath,
    /// 13: the plugin class was fetched but failed its checks (hash,
    /// signature, trusted key, ABI) or would not compile.
    ClassRejected,
    /// Any other code.
    Other(u8),
}

impl Reason {
    /// Wire code.
    pub fn code(self) -> u8 {
        match self {
            Reason::NoRoute => 1,
            Reason::NotAdjacent => 2,
            Reason::InsufficientBandwidth => 3,
            Reason::NoPluginCapacity => 4,
            Reason::UnknownClass => 5,
            Reason::HopLimit => 6,
            Reason::NeighbourDown => 7,
            Reason::BadMessage => 8,
            Reason::Timeout => 9,
            Reason::SetupTimeout => 10,
            Reason::InstallFailed => 11,
            Reason::UnknownPath => 12,
            Reason::ClassRejected => 13,
            Reason::Other(c) => c,
        }
    }

    /// From a wire code.
    pub fn from_code(c: u8) -> Reason {
        match c {
            1 => Reason::NoRoute,
            2 => Reason::NotAdjacent,
            3 => Reason::InsufficientBandwidth,
            4 => Reason::NoPluginCapacity,
            5 => Reason::UnknownClass,
            6 => Reason::HopLimit,
            7 => Reason::NeighbourDown,
            8 => Reason::BadMessage,
            9 => Reason::Timeout,
            10 => Reason::SetupTimeout,
            11 => Reason::InstallFailed,
            12 => Reason::UnknownPath,
            13 => Reason::ClassRejected,
            c => Reason::Other(c),
        }
    }

    /// Stable name (`insufficient-bandwidth`).
    pub fn name(self) -> &'static str {
        match self {
            Reason::NoRoute => "no-route",
            Reason::NotAdjacent => "not-adjacent",
            Reason::InsufficientBandwidth => "insufficient-bandwidth",
            Reason::NoPluginCapacity => "no-plugin-capacity",
            Reason::UnknownClass => "unknown-class",
            Reason::HopLimit => "hop-limit",
            Reason::NeighbourDown => "neighbour-down",
            Reason::BadMessage => "bad-message",
            Reason::Timeout => "timeout",
            Reason::SetupTimeout => "setup-timeout",
            Reason::InstallFailed => "install-failed",
            Reason::UnknownPath => "unknown-path",
            Reason::ClassRejected => "class-rejected",
            Reason::Other(_) => "other",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Other(c) => write!(f, "reason-{c}"),
            r => f.write_str(r.name()),
        }
    }
}

/// The ERROR object: which hop failed, its address, why, and a text for
/// people.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HopError {
    /// Index of the failing hop.
    pub hop: u8,
    /// Its address (as listed in the route).
    pub address: IpAddr,
    /// Reason code.
    pub reason: Reason,
    /// Free text (UTF-8).
    pub text: String,
}

impl fmt::Display for HopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "hop {} ({}): {}", self.hop, self.address, self.reason)?;
        if !self.text.is_empty() {
            write!(f, ": {}", self.text)?;
        }
        Ok(())
    }
}

/// One visit's STATUS record.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StatusRecord {
    /// Hop index of the visit.
    pub hop: u8,
    /// Its address.
    pub address: IpAddr,
    /// The visit's state as JSON text.
    pub status: String,
}

/// An object the receiver did not know, kept to be passed on (kind
/// `0b11xxxxxx`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RawObject {
    /// Kind (top two bits set).
    pub kind: u8,
    /// Body.
    pub body: Vec<u8>,
}

/// The CREATE_PATH message.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Create {
    /// PATH_ID.
    pub path: PathId,
    /// EXPLICIT_ROUTE.
    pub route: ExplicitRoute,
    /// FLOWSPEC.
    pub flowspec: FlowSpec,
    /// PLUGIN objects.
    pub plugins: Vec<Plugin>,
    /// RESOURCES: bandwidth in bits/s (0: best effort).
    pub bandwidth_bps: u64,
    /// REFRESH: the interval the initiator refreshes at, ms.
    pub refresh_ms: u32,
    /// AUTH: SHA-256 of the release secret.
    pub auth: [u8; HASH_LEN],
}

/// What a message says, by type. `hop` is the sender's hop index in
/// upstream messages and the receiver's in downstream ones.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Body {
    /// CREATE_PATH: reserve, then forward to the next hop.
    Create(Create),
    /// COMMIT: the sender (hop `hop`) installed its state; its in label.
    Commit {
        /// PATH_ID.
        path: PathId,
        /// HOP: the sender's index.
        hop: u8,
        /// LABEL allocated by the sender.
        label: u32,
        /// PATH_MTU: the largest IP packet the sender takes in, the rest
        /// of the path included (none: not known).
        mtu: Option<u16>,
    },
    /// REFUSE: setup failed at `error.hop`.
    Refuse {
        /// PATH_ID.
        path: PathId,
        /// HOP: the sender's index.
        hop: u8,
        /// ERROR.
        error: HopError,
    },
    /// RELEASE_PATH: tear down, authenticated by the secret.
    Release {
        /// PATH_ID.
        path: PathId,
        /// HOP: the receiver's index.
        hop: u8,
        /// SECRET.
        secret: [u8; SECRET_LEN],
    },
    /// REFRESH: keep the state alive.
    Refresh {
        /// PATH_ID.
        path: PathId,
        /// HOP: the receiver's index.
        hop: u8,
    },
    /// PATH_DOWN: the path broke at `error.hop`.
    PathDown {
        /// PATH_ID.
        path: PathId,
        /// HOP: the sender's index.
        hop: u8,
        /// ERROR.
        error: HopError,
    },
    /// STATUS request, collecting one record per visit.
    StatusRequest {
        /// PATH_ID.
        path: PathId,
        /// HOP: the receiver's index.
        hop: u8,
        /// Records of the visits upstream of the receiver.
        records: Vec<StatusRecord>,
    },
    /// STATUS reply, travelling back to the initiator.
    StatusReply {
        /// PATH_ID.
        path: PathId,
        /// HOP: the sender's index.
        hop: u8,
        /// One record per visit reached.
        records: Vec<StatusRecord>,
        /// Why the request stopped early, if it did.
        error: Option<HopError>,
    },
    /// ACK of the message with the header's sequence number.
    Ack,
}

impl Body {
    /// Message type.
    pub fn msg_type(&self) -> u8 {
        match self {
            Body::Create(_) => msg::CREATE,
            Body::Commit { .. } => msg::COMMIT,
            Body::Refuse { .. } => msg::REFUSE,
            Body::Release { .. } => msg::RELEASE,
            Body::Refresh { .. } => msg::REFRESH,
            Body::PathDown { .. } => msg::PATH_DOWN,
            Body::StatusRequest { .. } => msg::STATUS_REQUEST,
            Body::StatusReply { .. } => msg::STATUS_REPLY,
            Body::Ack => msg::ACK,
        }
    }

    /// Name for logs and counters.
    pub fn name(&self) -> &'static str {
        type_name(self.msg_type())
    }
}

/// Name of a message type.
pub fn type_name(t: u8) -> &'static str {
    match t {
        msg::CREATE => "CREATE_PATH",
        msg::COMMIT => "COMMIT",
        msg::REFUSE => "REFUSE",
        msg::RELEASE => "RELEASE_PATH",
        msg::REFRESH => "REFRESH",
        msg::PATH_DOWN => "PATH_DOWN",
        msg::STATUS_REQUEST => "STATUS",
        msg::STATUS_REPLY => "STATUS_REPLY",
        msg::ACK => "ACK",
        _ => "unknown",
    }
}

/// A whole message: sequence number, body, and unknown objects to pass on.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Message {
    /// Sequence number (per sender; for an ACK, the acknowledged one).
    pub seq: u32,
    /// What it says.
    pub body: Body,
    /// Unknown objects of kind `0b11xxxxxx`, emitted after the known ones.
    pub forward: Vec<RawObject>,
}

/// Which known objects each message type carries: (kind, mandatory,
/// repeatable).
fn allowed(t: u8) -> &'static [(u8, bool, bool)] {
    use obj::*;
    match t {
        msg::CREATE => &[
            (PATH_ID, true, false),
            (EXPLICIT_ROUTE, true, false),
            (FLOWSPEC, true, false),
            (PLUGIN, false, true),
            (RESOURCES, true, false),
            (REFRESH, true, false),
            (AUTH, true, false),
        ],
        msg::COMMIT => &[
            (PATH_ID, true, false),
            (HOP, true, false),
            (LABEL, true, false),
            (PATH_MTU, false, false),
        ],
        msg::REFUSE | msg::PATH_DOWN => &[(PATH_ID, true, false), (HOP, true, false), (ERROR, true, false)],
        msg::RELEASE => &[(PATH_ID, true, false), (HOP, true, false), (SECRET, true, false)],
        msg::REFRESH => &[(PATH_ID, true, false), (HOP, true, false)],
        msg::STATUS_REQUEST => &[(PATH_ID, true, false), (HOP, true, false), (STATUS_RECORD, false, true)],
        msg::STATUS_REPLY => &[
            (PATH_ID, true, false),
            (HOP, true, false),
            (STATUS_RECORD, false, true),
            (ERROR, false, false),
        ],
        _ => &[],
    }
}

/// Every object a message may carry, parsed.
#[derive(Default)]
struct Slots {
    path: Option<PathId>,
    hop: Option<u8>,
    flowspec: Option<FlowSpec>,
    route: Option<ExplicitRoute>,
    plugins: Vec<Plugin>,
    bandwidth: Option<u64>,
    refresh: Option<u32>,
    auth: Option<[u8; HASH_LEN]>,
    secret: Option<[u8; SECRET_LEN]>,
    label: Option<u32>,
    mtu: Option<u16>,
    error: Option<HopError>,
    records: Vec<StatusRecord>,
}

/// Read an address-family octet and the address after it; returns the
/// address and the octets consumed.
fn read_addr(b: &[u8], kind: u8, at: usize) -> Result<(IpAddr, usize), WireError> {
    let short = WireError::BadObjectLength { kind, at };
    match b.first() {
        Some(&af::IPV4) => {
            let a: [u8; 4] = b.get(1..5).ok_or(short)?.try_into().map_err(|_| short)?;
            Ok((IpAddr::V4(Ipv4Addr::from(a)), 5))
        }
        Some(&af::IPV6) => {
            let a: [u8; 16] = b.get(1..17).ok_or(short)?.try_into().map_err(|_| short)?;
            Ok((IpAddr::V6(Ipv6Addr::from(a)), 17))
        }
        Some(_) => Err(WireError::BadAddressFamily { at }),
        None => Err(short),
    }
}

fn addr_len(a: &IpAddr) -> usize {
    match a {
        IpAddr::V4(_) => 5,
        IpAddr::V6(_) => 17,
    }
}

fn text(b: &[u8], at: usize) -> Result<String, WireError> {
    String::from_utf8(b.to_vec()).map_err(|_| WireError::BadText { at })
}

fn parse_path_id(b: &[u8], at: usize) -> Result<PathId, WireError> {
    let bad = WireError::BadObjectLength { kind: obj::PATH_ID, at };
    if b.len() < 4 {
        return Err(bad);
    }
    let number = be32(&b[..4]);
    let (initiator, n) = read_addr(&b[4..], obj::PATH_ID, at)?;
    if 4 + n != b.len() {
        return Err(bad);
    }
    Ok(PathId { initiator, number })
}

fn parse_flowspec(b: &[u8], at: usize) -> Result<FlowSpec, WireError> {
    let bad = WireError::BadObjectLength {
        kind: obj::FLOWSPEC,
        at,
    };
    if b.len() < 13 {
        return Err(bad);
    }
    let alen = match b[0] {
        af::IPV4 => 4,
        af::IPV6 => 16,
        _ => return Err(WireError::BadAddressFamily { at }),
    };
    if b.len() != 13 + 2 * alen {
        return Err(bad);
    }
    let (splen, dplen) = (b[1], b[2]);
    let protocol = match b[3] {
        0 => None,
        1 => Some(b[4]),
        _ => return Err(bad),
    };
    let sport = PortRange {
        lo: be16(&b[5..7]),
        hi: be16(&b[7..9]),
    };
    let dport = PortRange {
        lo: be16(&b[9..11]),
        hi: be16(&b[11..13]),
    };
    if sport.lo > sport.hi || dport.lo > dport.hi {
        return Err(WireError::BadPortRange { at });
    }
    let addr = |o: usize| -> IpAddr {
        if alen == 4 {
            let a: [u8; 4] = [b[o], b[o + 1], b[o + 2], b[o + 3]];
            IpAddr::V4(Ipv4Addr::from(a))
        } else {
            let mut a = [0u8; 16];
            a.copy_from_slice(&b[o..o + 16]);
            IpAddr::V6(Ipv6Addr::from(a))
        }
    };
    let src = IpNet::new(addr(13), splen).map_err(|_| WireError::BadPrefix { at })?;
    let dst = IpNet::new(addr(13 + alen), dplen).map_err(|_| WireError::BadPrefix { at })?;
    Ok(FlowSpec {
        src,
        dst,
        sport,
        dport,
        protocol,
    })
}

fn parse_route(b: &[u8], at: usize) -> Result<ExplicitRoute, WireError> {
    let bad = WireError::BadObjectLength {
        kind: obj::EXPLICIT_ROUTE,
        at,
    };
    if b.len() < 2 {
        return Err(bad);
    }
    let (current, count) = (b[0], b[1] as usize);
    let mut hops = Vec::with_capacity(count);
    let mut off = 2;
    for _ in 0..count {
        let flags = *b.get(off).ok_or(bad)?;
        let (addr, n) = read_addr(&b[off + 1..], obj::EXPLICIT_ROUTE, at)?;
        hops.push(Hop {
            addr,
            loose: flags & 1 != 0,
        });
        off += 1 + n;
    }
    if off != b.len() {
        return Err(bad);
    }
    if hops.is_empty() || current as usize >= hops.len() {
        return Err(WireError::BadHopIndex { at });
    }
    Ok(ExplicitRoute { hops, current })
}

fn parse_plugin(b: &[u8], at: usize) -> Result<Plugin, WireError> {
    let bad = WireError::BadObjectLength { kind: obj::PLUGIN, at };
    if b.len() < 4 {
        return Err(bad);
    }
    let (hop, clen, flen) = (b[0], b[1] as usize, be16(&b[2..4]) as usize);
    if 4 + clen + flen != b.len() {
        return Err(bad);
    }
    let class = text(&b[4..4 + clen], at)?;
    if class.is_empty() {
        return Err(WireError::BadText { at });
    }
    let config = text(&b[4 + clen..], at)?;
    Ok(Plugin { hop, class, config })
}

fn parse_error_obj(b: &[u8], at: usize) -> Result<HopError, WireError> {
    if b.len() < 2 {
        return Err(WireError::BadObjectLength { kind: obj::ERROR, at });
    }
    let (address, n) = read_addr(&b[2..], obj::ERROR, at)?;
    Ok(HopError {
        hop: b[0],
        reason: Reason::from_code(b[1]),
        address,
        text: text(&b[2 + n..], at)?,
    })
}

fn parse_record(b: &[u8], at: usize) -> Result<StatusRecord, WireError> {
    if b.is_empty() {
        return Err(WireError::BadObjectLength {
            kind: obj::STATUS_RECORD,
            at,
        });
    }
    let (address, n) = read_addr(&b[1..], obj::STATUS_RECORD, at)?;
    Ok(StatusRecord {
        hop: b[0],
        address,
        status: text(&b[1 + n..], at)?,
    })
}

fn fixed<const N: usize>(b: &[u8], kind: u8, at: usize) -> Result<[u8; N], WireError> {
    b.try_into().map_err(|_| WireError::BadObjectLength { kind, at })
}

/// Iterate over an objects area: (offset in the message, kind, body).
/// Stops with an error at the first object that runs past the end.
struct ObjIter<'a> {
    b: &'a [u8],
    off: usize,
}

impl<'a> Iterator for ObjIter<'a> {
    type Item = Result<(usize, u8, &'a [u8]), WireError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.off >= self.b.len() {
            return None;
        }
        let at = self.off;
        let rest = &self.b[at..];
        if rest.len() < OBJECT_HEADER_LEN {
            self.off = self.b.len();
            return Some(Err(WireError::ObjectTruncated { at }));
        }
        let len = be16(&rest[2..4]) as usize;
        if len < OBJECT_HEADER_LEN || len > rest.len() {
            self.off = self.b.len();
            return Some(Err(WireError::ObjectTruncated { at }));
        }
        self.off += len;
        Some(Ok((at, rest[0], &rest[OBJECT_HEADER_LEN..len])))
    }
}

/// What can be read of a message that may not parse: enough to
/// acknowledge it and to tell the sender what was wrong with a CREATE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peek {
    /// Message type.
    pub msg_type: u8,
    /// Sequence number.
    pub seq: u32,
    /// PATH_ID, if one parses.
    pub path: Option<PathId>,
    /// HOP, or the current index of an EXPLICIT_ROUTE.
    pub hop: Option<u8>,
}

/// Read the header and what objects can be read of a message that
/// [`Message::parse`] may reject. `None` when the header itself is bad
/// (then nobody can be answered).
pub fn peek(b: &[u8]) -> Option<Peek> {
    let h = HeaderView::new_checked(b).ok()?;
    let mut p = Peek {
        msg_type: h.msg_type(),
        seq: h.seq(),
        path: None,
        hop: None,
    };
    for o in (ObjIter { b, off: HEADER_LEN }) {
        let Ok((at, kind, body)) = o else { break };
        match kind {
            obj::PATH_ID => p.path = parse_path_id(body, at).ok().or(p.path),
            obj::HOP if body.len() == 1 => p.hop = Some(body[0]),
            obj::EXPLICIT_ROUTE if !body.is_empty() => p.hop = Some(body[0]),
            _ => {}
        }
    }
    Some(p)
}

impl Message {
    /// A message with nothing to pass on.
    pub fn new(seq: u32, body: Body) -> Message {
        Message {
            seq,
            body,
            forward: Vec::new(),
        }
    }

    /// Parse one datagram. Never panics.
    pub fn parse(b: &[u8]) -> Result<Message, WireError> {
        Self::parse_counting(b).map(|(m, _)| m)
    }

    /// [`Message::parse`], also returning how many unknown objects were
    /// ignored (kind `0b10xxxxxx`) or kept to pass on (`0b11xxxxxx`).
    pub fn parse_counting(b: &[u8]) -> Result<(Message, usize), WireError> {
        let h = HeaderView::new_checked(b)?;
        let t = h.msg_type();
        let allow = allowed(t);
        let mut s = Slots::default();
        let mut seen: u32 = 0;
        let mut forward = Vec::new();
        let mut unknown = 0;
        for o in (ObjIter { b, off: HEADER_LEN }) {
            let (at, kind, body) = o?;
            let Some(&(_, _, repeat)) = allow.iter().find(|a| a.0 == kind) else {
                if (obj::PATH_ID..=obj::STATUS_RECORD).contains(&kind) || kind == obj::PATH_MTU {
                    return Err(WireError::UnexpectedObject { kind, at });
                }
                match kind >> 6 {
                    0 | 1 => return Err(WireError::UnknownObject { kind, at }),
                    2 => {}
                    _ => forward.push(RawObject {
                        kind,
                        body: body.to_vec(),
                    }),
                }
                unknown += 1;
                continue;
            };
            // Known kinds are < 32, or PATH_MTU (13 in its low five bits):
            // one bit each.
            let bit = 1u32 << (kind & 0x1f);
            if !repeat && seen & bit != 0 {
                return Err(WireError::DuplicateObject { kind, at });
            }
            seen |= bit;
            match kind {
                obj::PATH_ID => s.path = Some(parse_path_id(body, at)?),
                obj::HOP => s.hop = Some(fixed::<1>(body, kind, at)?[0]),
                obj::FLOWSPEC => s.flowspec = Some(parse_flowspec(body, at)?),
                obj::EXPLICIT_ROUTE => s.route = Some(parse_route(body, at)?),
                obj::PLUGIN => s.plugins.push(parse_plugin(body, at)?),
                obj::RESOURCES => s.bandwidth = Some(be64(&fixed::<8>(body, kind, at)?)),
                obj::REFRESH => {
                    let r = be32(&fixed::<4>(body, kind, at)?);
                    if r == 0 {
                        return Err(WireError::BadRefresh { at });
                    }
                    s.refresh = Some(r)
                }
                obj::AUTH => s.auth = Some(fixed(body, kind, at)?),
                obj::SECRET => s.secret = Some(fixed(body, kind, at)?),
                obj::LABEL => {
                    let l = be32(&fixed::<4>(body, kind, at)?);
                    if l > MAX_LABEL {
                        return Err(WireError::BadLabel { at });
                    }
                    s.label = Some(l)
                }
                obj::PATH_MTU => s.mtu = Some(u16::from_be_bytes(fixed::<2>(body, kind, at)?)),
                obj::ERROR => s.error = Some(parse_error_obj(body, at)?),
                obj::STATUS_RECORD => s.records.push(parse_record(body, at)?),
                _ => return Err(WireError::UnknownObject { kind, at }),
            }
        }
        for &(kind, mandatory, _) in allow {
            if mandatory && seen & (1u32 << (kind & 0x1f)) == 0 {
                return Err(WireError::MissingObject { kind });
            }
        }
        let missing = |kind| WireError::MissingObject { kind };
        let path = s.path.ok_or(missing(obj::PATH_ID));
        let hop = s.hop.ok_or(missing(obj::HOP));
        let body = match t {
            msg::CREATE => {
                let route = s.route.ok_or(missing(obj::EXPLICIT_ROUTE))?;
                let flowspec = s.flowspec.ok_or(missing(obj::FLOWSPEC))?;
                if s.plugins.iter().any(|p| p.hop as usize >= route.hops.len()) {
                    return Err(WireError::BadHopIndex { at: 0 });
                }
                if flowspec.src.addr().is_ipv4() != flowspec.dst.addr().is_ipv4() {
                    return Err(WireError::BadAddressFamily { at: 0 });
                }
                Body::Create(Create {
                    path: path?,
                    route,
                    flowspec,
                    plugins: s.plugins,
                    bandwidth_bps: s.bandwidth.ok_or(missing(obj::RESOURCES))?,
                    refresh_ms: s.refresh.ok_or(missing(obj::REFRESH))?,
                    auth: s.auth.ok_or(missing(obj::AUTH))?,
                })
            }
            msg::COMMIT => Body::Commit {
                path: path?,
                hop: hop?,
                label: s.label.ok_or(missing(obj::LABEL))?,
                mtu: s.mtu,
            },
            msg::REFUSE => Body::Refuse {
                path: path?,
                hop: hop?,
                error: s.error.ok_or(missing(obj::ERROR))?,
            },
            msg::PATH_DOWN => Body::PathDown {
                path: path?,
                hop: hop?,
                error: s.error.ok_or(missing(obj::ERROR))?,
            },
            msg::RELEASE => Body::Release {
                path: path?,
                hop: hop?,
                secret: s.secret.ok_or(missing(obj::SECRET))?,
            },
            msg::REFRESH => Body::Refresh { path: path?, hop: hop? },
            msg::STATUS_REQUEST => Body::StatusRequest {
                path: path?,
                hop: hop?,
                records: s.records,
            },
            msg::STATUS_REPLY => Body::StatusReply {
                path: path?,
                hop: hop?,
                records: s.records,
                error: s.error,
            },
            _ => Body::Ack,
        };
        Ok((
            Message {
                seq: h.seq(),
                body,
                forward,
            },
            unknown,
        ))
    }

    /// The objects in emission order: (kind, body).
    fn objects(&self) -> Result<Vec<(u8, Vec<u8>)>, WireError> {
        let mut o: Vec<(u8, Vec<u8>)> = Vec::new();
        let path_obj = |p: &PathId| {
            let mut v = p.number.to_be_bytes().to_vec();
            put_addr(&mut v, &p.initiator);
            (obj::PATH_ID, v)
        };
        let hop_obj = |h: u8| (obj::HOP, vec![h]);
        match &self.body {
            Body::Create(c) => {
                o.push(path_obj(&c.path));
                let r = &c.route;
                if r.hops.len() > MAX_WIRE_HOPS {
                    return Err(WireError::TooLong);
                }
                let mut v = vec![r.current, r.hops.len() as u8];
                for h in &r.hops {
                    v.push(h.loose as u8);
                    put_addr(&mut v, &h.addr);
                }
                o.push((obj::EXPLICIT_ROUTE, v));
                let f = &c.flowspec;
                if f.src.addr().is_ipv4() != f.dst.addr().is_ipv4() {
                    return Err(WireError::BadAddressFamily { at: 0 });
                }
                let mut v = vec![
                    if f.src.addr().is_ipv4() { af::IPV4 } else { af::IPV6 },
                    f.src.prefix_len(),
                    f.dst.prefix_len(),
                    f.protocol.is_some() as u8,
                    f.protocol.unwrap_or(0),
                ];
                for p in [f.sport.lo, f.sport.hi, f.dport.lo, f.dport.hi] {
                    v.extend_from_slice(&p.to_be_bytes());
                }
                for a in [f.src.addr(), f.dst.addr()] {
                    match a {
                        IpAddr::V4(a) => v.extend_from_slice(&a.octets()),
                        IpAddr::V6(a) => v.extend_from_slice(&a.octets()),
                    }
                }
                o.push((obj::FLOWSPEC, v));
                for p in &c.plugins {
                    if p.class.len() > MAX_CLASS_LEN || p.config.len() > u16::MAX as usize {
                        return Err(WireError::TooLong);
                    }
                    let mut v = vec![p.hop, p.class.len() as u8];
                    v.extend_from_slice(&(p.config.len() as u16).to_be_bytes());
                    v.extend_from_slice(p.class.as_bytes());
                    v.extend_from_slice(p.config.as_bytes());
                    o.push((obj::PLUGIN, v));
                }
                o.push((obj::RESOURCES, c.bandwidth_bps.to_be_bytes().to_vec()));
                o.push((obj::REFRESH, c.refresh_ms.to_be_bytes().to_vec()));
                o.push((obj::AUTH, c.auth.to_vec()));
            }
            Body::Commit { path, hop, label, mtu } => {
                o.push(path_obj(path));
                o.push(hop_obj(*hop));
                o.push((obj::LABEL, label.to_be_bytes().to_vec()));
                if let Some(m) = mtu {
                    o.push((obj::PATH_MTU, m.to_be_bytes().to_vec()));
                }
            }
            Body::Refuse { path, hop, error } | Body::PathDown { path, hop, error } => {
                o.push(path_obj(path));
                o.push(hop_obj(*hop));
                o.push(error_obj(error));
            }
            Body::Release { path, hop, secret } => {
                o.push(path_obj(path));
                o.push(hop_obj(*hop));
                o.push((obj::SECRET, secret.to_vec()));
            }
            Body::Refresh { path, hop } => {
                o.push(path_obj(path));
                o.push(hop_obj(*hop));
            }
            Body::StatusRequest { path, hop, records } | Body::StatusReply { path, hop, records, .. } => {
                o.push(path_obj(path));
                o.push(hop_obj(*hop));
                for r in records {
                    let mut v = vec![r.hop];
                    put_addr(&mut v, &r.address);
                    v.extend_from_slice(r.status.as_bytes());
                    o.push((obj::STATUS_RECORD, v));
                }
                if let Body::StatusReply { error: Some(e), .. } = &self.body {
                    o.push(error_obj(e));
                }
            }
            Body::Ack => {}
        }
        for r in &self.forward {
            o.push((r.kind, r.body.clone()));
        }
        Ok(o)
    }

    /// Octets [`Message::emit`] writes.
    pub fn buffer_len(&self) -> Result<usize, WireError> {
        let n = HEADER_LEN
            + self
                .objects()?
                .iter()
                .map(|(_, b)| OBJECT_HEADER_LEN + b.len())
                .sum::<usize>();
        if n > MAX_MESSAGE_LEN {
            return Err(WireError::TooLong);
        }
        Ok(n)
    }

    /// Write the message into the first [`Message::buffer_len`] octets of
    /// `buf`; returns that length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let objects = self.objects()?;
        let n = HEADER_LEN + objects.iter().map(|(_, b)| OBJECT_HEADER_LEN + b.len()).sum::<usize>();
        if n > MAX_MESSAGE_LEN
            || objects
                .iter()
                .any(|(_, b)| b.len() + OBJECT_HEADER_LEN > MAX_MESSAGE_LEN)
        {
            return Err(WireError::TooLong);
        }
        if buf.len() < n {
            return Err(WireError::BufferTooShort);
        }
        let mut h = HeaderView::new_unchecked(&mut buf[..HEADER_LEN]);
        h.set_version(VERSION);
        h.set_msg_type(self.body.msg_type());
        h.set_length(n as u16);
        h.set_seq(self.seq);
        let mut off = HEADER_LEN;
        for (kind, body) in &objects {
            let l = OBJECT_HEADER_LEN + body.len();
            buf[off] = *kind;
            buf[off + 1] = 0;
            buf[off + 2..off + 4].copy_from_slice(&(l as u16).to_be_bytes());
            buf[off + 4..off + l].copy_from_slice(body);
            off += l;
        }
        Ok(n)
    }

    /// The message as a new datagram.
    pub fn to_bytes(&self) -> Result<Vec<u8>, WireError> {
        let mut v = vec![0; self.buffer_len()?];
        self.emit(&mut v)?;
        Ok(v)
    }
}

fn put_addr(v: &mut Vec<u8>, a: &IpAddr) {
    match a {
        IpAddr::V4(a) => {
            v.push(af::IPV4);
            v.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            v.push(af::IPV6);
            v.extend_from_slice(&a.octets());
        }
    }
}

fn error_obj(e: &HopError) -> (u8, Vec<u8>) {
    let mut v = Vec::with_capacity(2 + addr_len(&e.address) + e.text.len());
    v.push(e.hop);
    v.push(e.reason.code());
    put_addr(&mut v, &e.address);
    v.extend_from_slice(e.text.as_bytes());
    (obj::ERROR, v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// R1 → R4 → R3 (strict), path 7@10.0.1.1, UDP to port 6060, one
    /// plugin ENCRYPT:k at hop 2, 1 Mbit/s, refresh 1000 ms.
    fn create() -> Message {
        Message::new(
            0x01020304,
            Body::Create(Create {
                path: PathId {
                    initiator: v4("10.0.1.1"),
                    number: 7,
                },
                route: ExplicitRoute {
                    hops: vec![
                        Hop::strict(v4("10.0.1.1")),
                        Hop::strict(v4("10.14.0.4")),
                        Hop::loose(v4("10.34.0.3")),
                    ],
                    current: 1,
                },
                flowspec: FlowSpec {
                    src: "10.0.1.0/24".parse().unwrap(),
                    dst: "0.0.0.0/0".parse().unwrap(),
                    sport: PortRange::ANY,
                    dport: PortRange::single(6060),
                    protocol: Some(17),
                },
                plugins: vec![Plugin {
                    hop: 2,
                    class: "ENCRYPT".into(),
                    config: "k".into(),
                }],
                bandwidth_bps: 1_000_000,
                refresh_ms: 1000,
                auth: [0xab; 32],
            }),
        )
    }

    #[rustfmt::skip]
    static CREATE_BYTES: &[u8] = &[
        // header: version 1, CREATE_PATH, length 142, seq 0x01020304
        0x01, 0x01, 0x00, 0x8e, 0x01, 0x02, 0x03, 0x04,
        // PATH_ID: number 7, IPv4 10.0.1.1
        0x01, 0x00, 0x00, 0x0d, 0x00, 0x00, 0x00, 0x07, 0x01, 10, 0, 1, 1,
        // EXPLICIT_ROUTE: current 1, 3 hops
        0x04, 0x00, 0x00, 0x18, 0x01, 0x03,
        0x00, 0x01, 10, 0, 1, 1,
        0x00, 0x01, 10, 14, 0, 4,
        0x01, 0x01, 10, 34, 0, 3,
        // FLOWSPEC: IPv4, /24, /0, protocol 17, sport any, dport 6060
        0x03, 0x00, 0x00, 0x19, 0x01, 24, 0, 0x01, 17,
        0x00, 0x00, 0xff, 0xff, 0x17, 0xac, 0x17, 0xac,
        10, 0, 1, 0, 0, 0, 0, 0,
        // PLUGIN: hop 2, "ENCRYPT", "k"
        0x05, 0x00, 0x00, 0x10, 0x02, 0x07, 0x00, 0x01,
        b'E', b'N', b'C', b'R', b'Y', b'P', b'T', b'k',
        // RESOURCES: 1,000,000 bit/s
        0x06, 0x00, 0x00, 0x0c, 0, 0, 0, 0, 0x00, 0x0f, 0x42, 0x40,
        // REFRESH: 1000 ms
        0x07, 0x00, 0x00, 0x08, 0x00, 0x00, 0x03, 0xe8,
        // AUTH: 32 × 0xab
        0x08, 0x00, 0x00, 0x24,
        0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab,
        0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab,
    ];

    #[test]
    fn deconstruct_header() {
        let h = HeaderView::new_checked(CREATE_BYTES).unwrap();
        assert_eq!(h.version(), 1);
        assert_eq!(h.msg_type(), msg::CREATE);
        assert_eq!(h.length() as usize, CREATE_BYTES.len());
        assert_eq!(h.seq(), 0x01020304);
        assert_eq!(h.objects()[0], obj::PATH_ID);
    }

    #[test]
    fn construct_header() {
        let mut buf = [0xa5u8; 8];
        let mut h = HeaderView::new_unchecked(&mut buf[..]);
        h.set_version(1);
        h.set_msg_type(msg::CREATE);
        h.set_length(142);
        h.set_seq(0x01020304);
        assert_eq!(&buf[..], &CREATE_BYTES[..8]);
    }

    #[test]
    fn create_parse_and_emit() {
        assert_eq!(Message::parse(CREATE_BYTES).unwrap(), create());
        assert_eq!(create().buffer_len().unwrap(), CREATE_BYTES.len());
        let mut buf = [0xa5u8; 200];
        let n = create().emit(&mut buf).unwrap();
        assert_eq!(&buf[..n], CREATE_BYTES);
        assert_eq!(buf[n], 0xa5, "nothing written past the message");
    }

    #[test]
    fn ack_and_commit_bytes() {
        let ack = Message::new(9, Body::Ack).to_bytes().unwrap();
        assert_eq!(ack, [1, 9, 0, 8, 0, 0, 0, 9]);
        let c = Message::new(
            1,
            Body::Commit {
                path: PathId {
                    initiator: v4("10.0.1.1"),
                    number: 7,
                },
                hop: 6,
                label: 0x12345,
                mtu: None,
            },
        );
        let b = c.to_bytes().unwrap();
        #[rustfmt::skip]
        let want: &[u8] = &[
            1, 2, 0, 34, 0, 0, 0, 1,
            0x01, 0, 0, 13, 0, 0, 0, 7, 1, 10, 0, 1, 1,
            0x02, 0, 0, 5, 6,
            0x0a, 0, 0, 8, 0x00, 0x01, 0x23, 0x45,
        ];
        assert_eq!(b, want);
        assert_eq!(Message::parse(&b).unwrap(), c);

        // With PATH_MTU 1442 (0x05a2).
        let mut c = c;
        if let Body::Commit { mtu, .. } = &mut c.body {
            *mtu = Some(1442);
        }
        let b = c.to_bytes().unwrap();
        let mut want = want.to_vec();
        want[3] = 40;
        want.extend_from_slice(&[0x8d, 0, 0, 6, 0x05, 0xa2]);
        assert_eq!(b, want);
        assert_eq!(Message::parse(&b).unwrap(), c);
        // A node that predates PATH_MTU skips it: the kind's top bits say
        // "ignore". Here: a COMMIT carrying another unknown `0b10…` object.
        let mut b2 = want.clone();
        b2[34] = 0xbd;
        let (m, unknown) = Message::parse_counting(&b2).unwrap();
        assert_eq!(unknown, 1);
        assert!(matches!(m.body, Body::Commit { mtu: None, .. }));
        // PATH_MTU twice, of the wrong length, or in another message.
        let mut twice = want.clone();
        twice.extend_from_slice(&[0x8d, 0, 0, 6, 0x05, 0xa2]);
        twice[3] = 46;
        assert!(matches!(
            Message::parse(&twice),
            Err(WireError::DuplicateObject { kind: 0x8d, .. })
        ));
        let mut long = want.clone();
        long[37] = 7;
        long.push(0);
        long[3] = 41;
        assert!(matches!(
            Message::parse(&long),
            Err(WireError::BadObjectLength { kind: 0x8d, .. })
        ));
        let mut refresh = Message::new(
            1,
            Body::Refresh {
                path: PathId {
                    initiator: v4("10.0.1.1"),
                    number: 7,
                },
                hop: 1,
            },
        )
        .to_bytes()
        .unwrap();
        refresh.extend_from_slice(&[0x8d, 0, 0, 6, 0x05, 0xa2]);
        let n = refresh.len() as u16;
        refresh[2..4].copy_from_slice(&n.to_be_bytes());
        assert!(matches!(
            Message::parse(&refresh),
            Err(WireError::UnexpectedObject { kind: 0x8d, .. })
        ));
    }

    #[test]
    fn malformed_header() {
        assert_eq!(Message::parse(&[1, 9, 0, 8]), Err(WireError::Truncated));
        assert_eq!(Message::parse(&[2, 9, 0, 8, 0, 0, 0, 0]), Err(WireError::Version(2)));
        assert_eq!(
            Message::parse(&[1, 99, 0, 8, 0, 0, 0, 0]),
            Err(WireError::UnknownType(99))
        );
        assert_eq!(
            Message::parse(&[1, 9, 0, 9, 0, 0, 0, 0]),
            Err(WireError::BadLength { field: 9, actual: 8 })
        );
    }

    #[test]
    fn malformed_truncated_create() {
        // Every strict prefix fails (the length field no longer matches);
        // with the length fixed up, a cut object is caught.
        for n in 0..CREATE_BYTES.len() {
            assert!(Message::parse(&CREATE_BYTES[..n]).is_err(), "prefix {n}");
            if n >= HEADER_LEN {
                let mut b = CREATE_BYTES[..n].to_vec();
                b[2..4].copy_from_slice(&(n as u16).to_be_bytes());
                assert!(Message::parse(&b).is_err(), "fixed-up prefix {n}");
            }
        }
    }

    #[test]
    fn malformed_objects() {
        let with = |extra: &[u8]| {
            let mut b = CREATE_BYTES.to_vec();
            b.extend_from_slice(extra);
            let n = b.len() as u16;
            b[2..4].copy_from_slice(&n.to_be_bytes());
            Message::parse_counting(&b)
        };
        let at = CREATE_BYTES.len();
        // Unknown, must understand.
        assert_eq!(with(&[0x30, 0, 0, 4]), Err(WireError::UnknownObject { kind: 0x30, at }));
        // Unknown, ignore silently.
        let (m, n) = with(&[0x80, 0, 0, 5, 1]).unwrap();
        assert_eq!((m.forward.len(), n), (0, 1));
        // Unknown, ignore and pass on.
        let (m, n) = with(&[0xc1, 0, 0, 6, 1, 2]).unwrap();
        assert_eq!(n, 1);
        assert_eq!(
            m.forward,
            vec![RawObject {
                kind: 0xc1,
                body: vec![1, 2]
            }]
        );
        let re = Message::parse(&m.to_bytes().unwrap()).unwrap();
        assert_eq!(re, m);
        // Known but not in a CREATE.
        assert_eq!(
            with(&[obj::LABEL, 0, 0, 8, 0, 0, 0, 1]),
            Err(WireError::UnexpectedObject { kind: obj::LABEL, at })
        );
        // Twice.
        assert_eq!(
            with(&[obj::REFRESH, 0, 0, 8, 0, 0, 0, 1]),
            Err(WireError::DuplicateObject { kind: obj::REFRESH, at })
        );
        // Object length below its header / past the end.
        assert_eq!(with(&[0x80, 0, 0, 3]), Err(WireError::ObjectTruncated { at }));
        assert_eq!(with(&[0x80, 0, 0, 9]), Err(WireError::ObjectTruncated { at }));
        assert_eq!(with(&[0x80, 0]), Err(WireError::ObjectTruncated { at }));
    }

    #[test]
    fn malformed_fields() {
        let patch = |i: usize, v: u8| {
            let mut b = CREATE_BYTES.to_vec();
            b[i] = v;
            Message::parse(&b)
        };
        // PATH_ID address family 3.
        assert!(matches!(patch(16, 3), Err(WireError::BadAddressFamily { .. })));
        // Current hop 3 of 3.
        assert!(matches!(patch(25, 3), Err(WireError::BadHopIndex { .. })));
        // Source prefix /33.
        assert!(matches!(patch(50, 33), Err(WireError::BadPrefix { .. })));
        // sport lo 0xff00 > hi 0x00ff: patch lo high octet and hi high octet.
        let mut b = CREATE_BYTES.to_vec();
        b[54] = 0xff;
        b[56] = 0x00;
        assert!(matches!(Message::parse(&b), Err(WireError::BadPortRange { .. })));
        // Plugin at hop 3 of 3.
        assert_eq!(patch(74, 3), Err(WireError::BadHopIndex { at: 0 }));
        // Plugin class not UTF-8.
        assert!(matches!(patch(78, 0xff), Err(WireError::BadText { .. })));
        // Refresh 0.
        let mut b = CREATE_BYTES.to_vec();
        b[102..106].copy_from_slice(&[0, 0, 0, 0]);
        assert!(matches!(Message::parse(&b), Err(WireError::BadRefresh { .. })));
        // A label above 20 bits.
        let mut b = Message::new(
            1,
            Body::Commit {
                path: PathId {
                    initiator: v4("10.0.1.1"),
                    number: 7,
                },
                hop: 6,
                label: 1,
                mtu: None,
            },
        )
        .to_bytes()
        .unwrap();
        b[30] = 0x10;
        assert!(matches!(Message::parse(&b), Err(WireError::BadLabel { .. })));
        // A COMMIT without its LABEL.
        let n = b.len() - 8;
        b.truncate(n);
        b[2..4].copy_from_slice(&(n as u16).to_be_bytes());
        assert_eq!(Message::parse(&b), Err(WireError::MissingObject { kind: obj::LABEL }));
    }

    #[test]
    fn peek_reads_what_it_can() {
        let mut b = CREATE_BYTES.to_vec();
        b.extend_from_slice(&[0x30, 0, 0, 4]);
        let n = b.len() as u16;
        b[2..4].copy_from_slice(&n.to_be_bytes());
        assert!(Message::parse(&b).is_err());
        let p = peek(&b).unwrap();
        assert_eq!(p.msg_type, msg::CREATE);
        assert_eq!(p.seq, 0x01020304);
        assert_eq!(p.hop, Some(1));
        assert_eq!(p.path.unwrap().number, 7);
        assert_eq!(peek(&b[..7]), None);
    }

    #[test]
    fn path_id_text() {
        let p: PathId = "7@2001:db8::1".parse().unwrap();
        assert_eq!(p.number, 7);
        assert_eq!(p.to_string(), "7@2001:db8::1");
        assert!("x@1.2.3.4".parse::<PathId>().is_err());
        assert!("7".parse::<PathId>().is_err());
    }

    // ----- property tests ------------------------------------------------------

    pub(crate) fn arb_addr() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
            any::<[u8; 16]>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
        ]
    }

    fn arb_path() -> impl Strategy<Value = PathId> {
        (arb_addr(), any::<u32>()).prop_map(|(initiator, number)| PathId { initiator, number })
    }

    fn arb_range() -> impl Strategy<Value = PortRange> {
        (any::<u16>(), any::<u16>()).prop_map(|(a, b)| PortRange {
            lo: a.min(b),
            hi: a.max(b),
        })
    }

    fn arb_flowspec() -> impl Strategy<Value = FlowSpec> {
        (
            any::<bool>(),
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
            0u8..=128,
            0u8..=128,
            arb_range(),
            arb_range(),
            proptest::option::of(any::<u8>()),
        )
            .prop_map(|(v6, s, d, sp, dp, sport, dport, protocol)| {
                let net = |a: [u8; 16], p: u8| {
                    if v6 {
                        IpNet::new(IpAddr::V6(Ipv6Addr::from(a)), p).unwrap()
                    } else {
                        IpNet::new(IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])), p % 33).unwrap()
                    }
                };
                FlowSpec {
                    src: net(s, sp),
                    dst: net(d, dp),
                    sport,
                    dport,
                    protocol,
                }
            })
    }

    fn arb_reason() -> impl Strategy<Value = Reason> {
        any::<u8>().prop_map(Reason::from_code)
    }

    fn arb_error() -> impl Strategy<Value = HopError> {
        (any::<u8>(), arb_addr(), arb_reason(), ".{0,20}").prop_map(|(hop, address, reason, text)| HopError {
            hop,
            address,
            reason,
            text,
        })
    }

    fn arb_record() -> impl Strategy<Value = StatusRecord> {
        (any::<u8>(), arb_addr(), ".{0,40}").prop_map(|(hop, address, status)| StatusRecord { hop, address, status })
    }

    fn arb_create() -> impl Strategy<Value = Create> {
        (
            arb_path(),
            proptest::collection::vec((arb_addr(), any::<bool>()), 1..20),
            any::<u8>(),
            arb_flowspec(),
            proptest::collection::vec((any::<u8>(), "[A-Z]{1,12}", ".{0,30}"), 0..4),
            any::<u64>(),
            1u32..,
            any::<[u8; 32]>(),
        )
            .prop_map(
                |(path, hops, cur, flowspec, plugins, bandwidth_bps, refresh_ms, auth)| {
                    let n = hops.len();
                    Create {
                        path,
                        route: ExplicitRoute {
                            hops: hops.into_iter().map(|(addr, loose)| Hop { addr, loose }).collect(),
                            current: (cur as usize % n) as u8,
                        },
                        flowspec,
                        plugins: plugins
                            .into_iter()
                            .map(|(h, class, config)| Plugin {
                                hop: (h as usize % n) as u8,
                                class,
                                config,
                            })
                            .collect(),
                        bandwidth_bps,
                        refresh_ms,
                        auth,
                    }
                },
            )
    }

    fn arb_body() -> impl Strategy<Value = Body> {
        prop_oneof![
            arb_create().prop_map(Body::Create),
            (
                arb_path(),
                any::<u8>(),
                0..=MAX_LABEL,
                proptest::option::of(any::<u16>())
            )
                .prop_map(|(path, hop, label, mtu)| Body::Commit { path, hop, label, mtu }),
            (arb_path(), any::<u8>(), arb_error()).prop_map(|(path, hop, error)| Body::Refuse { path, hop, error }),
            (arb_path(), any::<u8>(), arb_error()).prop_map(|(path, hop, error)| Body::PathDown { path, hop, error }),
            (arb_path(), any::<u8>(), any::<[u8; 16]>()).prop_map(|(path, hop, secret)| Body::Release {
                path,
                hop,
                secret
            }),
            (arb_path(), any::<u8>()).prop_map(|(path, hop)| Body::Refresh { path, hop }),
            (arb_path(), any::<u8>(), proptest::collection::vec(arb_record(), 0..5))
                .prop_map(|(path, hop, records)| Body::StatusRequest { path, hop, records }),
            (
                arb_path(),
                any::<u8>(),
                proptest::collection::vec(arb_record(), 0..5),
                proptest::option::of(arb_error())
            )
                .prop_map(|(path, hop, records, error)| Body::StatusReply {
                    path,
                    hop,
                    records,
                    error
                }),
            Just(Body::Ack),
        ]
    }

    pub(crate) fn arb_message() -> impl Strategy<Value = Message> {
        (
            any::<u32>(),
            arb_body(),
            proptest::collection::vec((0xc0u8.., proptest::collection::vec(any::<u8>(), 0..8)), 0..3),
        )
            .prop_map(|(seq, body, fwd)| Message {
                seq,
                body,
                forward: fwd.into_iter().map(|(kind, body)| RawObject { kind, body }).collect(),
            })
    }

    proptest! {
        #[test]
        fn round_trip(m in arb_message()) {
            let b = m.to_bytes().unwrap();
            prop_assert_eq!(b.len(), m.buffer_len().unwrap());
            prop_assert_eq!(Message::parse(&b).unwrap(), m);
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(m) = Message::parse(&b) {
                // What parses re-encodes to the same bytes (the encoding is
                // canonical up to object order and ignored objects).
                let again = Message::parse(&m.to_bytes().unwrap()).unwrap();
                prop_assert_eq!(again, m);
            }
            let _ = peek(&b);
        }

        #[test]
        fn mutated_create_never_panics(i in 0..CREATE_BYTES.len(), v in any::<u8>(), cut in 0..CREATE_BYTES.len()) {
            let mut b = CREATE_BYTES.to_vec();
            b[i] = v;
            let _ = Message::parse(&b);
            b.truncate(cut.max(HEADER_LEN));
            let n = b.len() as u16;
            b[2..4].copy_from_slice(&n.to_be_bytes());
            let _ = Message::parse(&b);
            let _ = peek(&b);
        }
    }
}
