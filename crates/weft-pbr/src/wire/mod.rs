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
//! Three rooms, bottom up:
//!
//! * `header` — [`HeaderView`], the view over the fixed header (getters
//!   in one `impl`, setters in another);
//! * `objects` — the values objects carry ([`PathId`], [`FlowSpec`],
//!   [`ExplicitRoute`], [`Plugin`], [`HopError`], [`StatusRecord`], …),
//!   each object body's layout and how it is read and written;
//! * `messages` — [`Message`], the validated value with
//!   [`Message::parse`], [`Message::buffer_len`] and [`Message::emit`]:
//!   which objects each type carries, and [`peek`].
//!
//! This module holds what all three share: the constants, the type and
//! kind numbers, and [`WireError`]. Untrusted bytes only go through
//! [`Message::parse`] (or [`peek`]), which never panics.

mod header;
mod messages;
mod objects;
#[cfg(test)]
mod tests;

pub use header::HeaderView;
pub use messages::{peek, type_name, Body, Create, Message, Peek};
pub use objects::{ExplicitRoute, FlowSpec, Hop, HopError, PathId, Plugin, PortRange, RawObject, Reason, StatusRecord};
/// MPLS-in-UDP (RFC 7510), used on loose segments, and the 20-bit label
/// range (RFC 3032): shared with the engine's label table.
pub use weft_packet::mpls::{FIRST_LABEL, MAX_LABEL, MPLS_UDP_PORT};

/// Protocol version carried in every header.
pub const VERSION: u8 = 1;
/// UDP port PBR agents listen on ("PBR port").
pub const PBR_PORT: u16 = 7077;
/// Fixed header: version, type, length, sequence number.
pub const HEADER_LEN: usize = 8;
/// Object header: kind, flags, length.
pub const OBJECT_HEADER_LEN: usize = 4;
/// A message's length field is 16 bits.
pub const MAX_MESSAGE_LEN: usize = u16::MAX as usize;
/// The hop count of an EXPLICIT_ROUTE is one octet; agents refuse routes
/// longer than their own (smaller) hop limit with [`Reason::HopLimit`].
pub const MAX_WIRE_HOPS: usize = u8::MAX as usize;
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
