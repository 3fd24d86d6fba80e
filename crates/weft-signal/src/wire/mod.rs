//! Signaling messages on the wire (`docs/signaling.md` is the
//! specification).
//!
//! ```text
//! datagram = IP (Router Alert) | UDP (port 270) | message
//! message  = header, body
//!
//!  0        1        2        3        4        5        6        7
//! +--------+--------+--------+--------+--------+--------+--------+--------+
//! |       magic "WFSG" (0x57465347)   | version|  type  |     length      |
//! +--------+--------+--------+--------+--------+--------+--------+--------+
//! |          sequence number          |  body …
//! +--------+--------+--------+--------+
//! ```
//!
//! Three message types: REQUEST (downstream, toward the flow's
//! destination, with the Router Alert option, re-sent by every
//! intercepting node), RESPONSE (upstream, unicast to the recorded
//! previous peer, carrying the response stack) and ACK (hop by hop, for
//! every REQUEST and RESPONSE). A REQUEST carries a **signed request**
//! that no node changes; a RESPONSE carries one **entry** per node that
//! answered.
//!
//! Rooms, bottom up:
//!
//! * `header` — [`HeaderView`], the fixed header;
//! * `request` — [`Request`] (what the user asks) and [`Signed`] (its bytes
//!   and ed25519 signature, [`SignedView`] over the fixed part);
//! * `entry` — [`Entry`], one node's answer on the response stack;
//! * `message` — [`Message`]: header and body together, with
//!   [`Message::parse`], [`Message::buffer_len`] and [`Message::emit`],
//!   and [`peek`] for messages that do not parse whole.
//!
//! This module holds what they share: constants, type and field numbers,
//! [`Reason`] and [`WireError`]. Untrusted bytes only go through
//! [`Message::parse`], [`Signed::parse`] or [`peek`], which never panic.

mod entry;
mod header;
mod message;
mod request;

pub use entry::{Entry, ModuleFact, ResourceFact, Timing};
pub use header::HeaderView;
pub use message::{peek, Body, Message, Peek, RequestMsg, ResponseMsg};
pub use request::{
    Code, Filter, Kind, Module, ModuleKind, Probe, Request, ServerPort, SessionId, Signed, SignedView, Signer,
    SIGNING_CONTEXT,
};

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// GIST's well-known port (RFC 5971 §5.2.1): requests travel to it, nodes
/// send from it and receive responses on it.
pub const SIGNAL_PORT: u16 = 270;
/// The first four octets of every message: "WFSG". A node intercepts a
/// Router Alert datagram to [`SIGNAL_PORT`] only when its payload starts
/// with them (GIST's magic number plays the same part; Weft's differs, so
/// GIST dissectors do not misread these messages).
pub const MAGIC: [u8; 4] = *b"WFSG";
/// Protocol version carried in every header.
pub const VERSION: u8 = 1;
/// Fixed header: magic, version, type, length, sequence number.
pub const HEADER_LEN: usize = 12;
/// Largest message, octets. 1400 fits one Ethernet frame with IPv6 and
/// its hop-by-hop header (1500 − 40 − 8 − 8 = 1444) or IPv4 with Router
/// Alert (1500 − 24 − 8 = 1468): signaling never relies on fragments,
/// which a node's data path does not reassemble.
pub const MAX_MESSAGE_LEN: usize = 1400;
/// Field header inside a signed request or an entry: type, length.
pub const FIELD_HEADER_LEN: usize = 3;
/// Longest module, dependency or node name (a plugin name's limit).
pub const MAX_NAME_LEN: usize = 64;
/// Longest module version.
pub const MAX_VERSION_LEN: usize = 32;
/// Longest code-server URL.
pub const MAX_URL_LEN: usize = 200;
/// Longest instance configuration text.
pub const MAX_CONFIG_LEN: usize = 512;
/// Longest status text on an entry (longer texts are cut at a character
/// boundary when an entry is built).
pub const MAX_TEXT_LEN: usize = 200;
/// Most dependencies, and most server ports, in one request.
pub const MAX_REPEATED: usize = 8;

/// Message types.
pub mod msg {
    /// A request, downstream.
    pub const REQUEST: u8 = 1;
    /// A response with the stack, upstream.
    pub const RESPONSE: u8 = 2;
    /// Acknowledgement of a REQUEST or RESPONSE, hop by hop.
    pub const ACK: u8 = 3;
}

/// Field types of a signed request. A field type with the top bit set is
/// optional: a node that does not know it ignores it (it stays signed and
/// travels on unchanged). An unknown type with the top bit clear makes the
/// request malformed: it might change what the request means.
pub mod field {
    /// Destination of the flow (4 or 16 octets): where the request travels.
    pub const DEST: u8 = 0x01;
    /// Module: kind (8), name length (8), name, version.
    pub const MODULE: u8 = 0x02;
    /// Code: sha256 (32 octets) of the module, then the code server's URL.
    pub const CODE: u8 = 0x03;
    /// Filter: protocol (8, 0 = any), prefix length (8), destination
    /// ports low and high (16 each), prefix address (0, 4 or 16 octets).
    pub const FILTER: u8 = 0x04;
    /// Lifetime in seconds (32).
    pub const LIFETIME: u8 = 0x05;
    /// A module that must be present on the node (name); repeated.
    pub const DEPENDENCY: u8 = 0x06;
    /// A port a server module listens on: protocol (8), port (16); repeated.
    pub const SERVER_PORT: u8 = 0x07;
    /// The instance's configuration (text).
    pub const CONFIG: u8 = 0x08;
    /// Facts a PROBE asks for (32-bit mask, [`super::Probe`]).
    pub const PROBE: u8 = 0x09;
    /// The request a TRIGGER carries: a complete signed request.
    pub const INNER: u8 = 0x0a;
}

/// Field types of an entry on the response stack. Entries are kept and
/// passed on as they are: unknown fields are carried, never refused.
pub mod efield {
    /// The node's name.
    pub const NODE: u8 = 0x01;
    /// The address the node answered from (4 or 16 octets).
    pub const ADDRESS: u8 = 0x02;
    /// Outcome: reason code (8) and text.
    pub const STATUS: u8 = 0x03;
    /// A module present: kind (8), remaining lifetime in seconds (32,
    /// all ones: not on a lifetime), name length (8), name, version.
    pub const MODULE: u8 = 0x04;
    /// A capability (text).
    pub const CAPABILITY: u8 = 0x05;
    /// A resource: free (64), total (64), name.
    pub const RESOURCE: u8 = 0x06;
    /// Install time in µs: fetch, verify, compile, instantiate (32 each).
    pub const TIMING: u8 = 0x07;
    /// The instance installed (32).
    pub const INSTANCE: u8 = 0x08;
}

/// A node's answer: `ok`, or why it refused. On the wire, one octet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// Done (installed, refreshed, removed, probed, forwarded).
    Ok,
    /// The request does not parse past its fixed part.
    BadMessage,
    /// Its time is outside the node's window.
    Stale,
    /// The signature does not verify.
    BadSignature,
    /// Its nonce was seen before.
    Replayed,
    /// The key is not one of the node's principals.
    UnknownKey,
    /// The principal lacks the right for this kind of request.
    NotAllowed,
    /// The filter's prefix is not one of the principal's (or fails the
    /// reverse-path check).
    Prefix,
    /// A server port the principal may not listen on.
    Port,
    /// A module the principal may not install.
    ModuleNotAllowed,
    /// The code server is not one the node fetches from.
    UnlistedCodeServer,
    /// No code server has the module.
    UnknownModule,
    /// The module failed a check: hash, signature, trusted key, ABI,
    /// version.
    ModuleRejected,
    /// A dependency is not present on the node.
    MissingDependency,
    /// Lifetime 0, or longer than the node allows.
    BadLifetime,
    /// The principal's resource limit (instances, memory) would be
    /// exceeded, or the node's.
    Resources,
    /// The node does not host this kind of module.
    Unsupported,
    /// Installing failed on the node.
    InstallFailed,
    /// REMOVE of a session the node does not hold.
    NotFound,
    /// The session belongs to another key.
    NotOwner,
    /// The session already holds a different module.
    SessionConflict,
    /// The downstream node acknowledged but never answered.
    DownstreamTimeout,
    /// The install did not finish in time.
    InstallTimeout,
    /// A code this version does not know.
    Other(u8),
}

impl Reason {
    /// The octet on the wire.
    pub fn code(self) -> u8 {
        match self {
            Reason::Ok => 0,
            Reason::BadMessage => 1,
            Reason::Stale => 2,
            Reason::BadSignature => 3,
            Reason::Replayed => 4,
            Reason::UnknownKey => 5,
            Reason::NotAllowed => 6,
            Reason::Prefix => 7,
            Reason::Port => 8,
            Reason::ModuleNotAllowed => 9,
            Reason::UnlistedCodeServer => 10,
            Reason::UnknownModule => 11,
            Reason::ModuleRejected => 12,
            Reason::MissingDependency => 13,
            Reason::BadLifetime => 14,
            Reason::Resources => 15,
            Reason::Unsupported => 16,
            Reason::InstallFailed => 17,
            Reason::NotFound => 18,
            Reason::NotOwner => 19,
            Reason::SessionConflict => 20,
            Reason::DownstreamTimeout => 21,
            Reason::InstallTimeout => 22,
            Reason::Other(c) => c,
        }
    }

    /// The reason of octet `c`.
    pub fn from_code(c: u8) -> Reason {
        Reason::ALL
            .iter()
            .copied()
            .find(|r| r.code() == c)
            .unwrap_or(Reason::Other(c))
    }

    /// Every assigned reason, in code order.
    pub const ALL: [Reason; 23] = [
        Reason::Ok,
        Reason::BadMessage,
        Reason::Stale,
        Reason::BadSignature,
        Reason::Replayed,
        Reason::UnknownKey,
        Reason::NotAllowed,
        Reason::Prefix,
        Reason::Port,
        Reason::ModuleNotAllowed,
        Reason::UnlistedCodeServer,
        Reason::UnknownModule,
        Reason::ModuleRejected,
        Reason::MissingDependency,
        Reason::BadLifetime,
        Reason::Resources,
        Reason::Unsupported,
        Reason::InstallFailed,
        Reason::NotFound,
        Reason::NotOwner,
        Reason::SessionConflict,
        Reason::DownstreamTimeout,
        Reason::InstallTimeout,
    ];

    /// The word in tables, logs and counters.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Ok => "ok",
            Reason::BadMessage => "bad-message",
            Reason::Stale => "stale",
            Reason::BadSignature => "bad-signature",
            Reason::Replayed => "replayed",
            Reason::UnknownKey => "unknown-key",
            Reason::NotAllowed => "not-allowed",
            Reason::Prefix => "prefix",
            Reason::Port => "port",
            Reason::ModuleNotAllowed => "module-not-allowed",
            Reason::UnlistedCodeServer => "unlisted-code-server",
            Reason::UnknownModule => "unknown-module",
            Reason::ModuleRejected => "module-rejected",
            Reason::MissingDependency => "missing-dependency",
            Reason::BadLifetime => "bad-lifetime",
            Reason::Resources => "resources",
            Reason::Unsupported => "unsupported",
            Reason::InstallFailed => "install-failed",
            Reason::NotFound => "not-found",
            Reason::NotOwner => "not-owner",
            Reason::SessionConflict => "session-conflict",
            Reason::DownstreamTimeout => "downstream-timeout",
            Reason::InstallTimeout => "install-timeout",
            Reason::Other(_) => "other",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Other(c) => write!(f, "reason-{c}"),
            r => f.write_str(r.as_str()),
        }
    }
}

/// Error returned by [`Message::parse`], [`Signed::parse`],
/// [`HeaderView::new_checked`] and the `emit` functions: what is wrong
/// with a message. Nodes count each kind ([`WireError::reason`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Shorter than its fixed part.
    #[error("truncated signaling message")]
    Truncated,
    /// Does not start with [`MAGIC`].
    #[error("not a Weft signaling message (bad magic)")]
    Magic,
    /// A version other than [`VERSION`].
    #[error("signaling version {0} is not supported")]
    Version(u8),
    /// A message type that is not assigned.
    #[error("unknown signaling message type {0}")]
    UnknownType(u8),
    /// The length field is not the datagram's length.
    #[error("length field {field} does not match the datagram's {actual} octets")]
    BadLength {
        /// The length field.
        field: usize,
        /// The datagram's length.
        actual: usize,
    },
    /// A field header or a field's length runs past its container.
    #[error("field at octet {at} runs past its end")]
    FieldTruncated {
        /// Offset of the field.
        at: usize,
    },
    /// A field whose body has the wrong size or content for its type.
    #[error("field type {kind:#04x} at octet {at} is malformed")]
    BadField {
        /// Field type.
        kind: u8,
        /// Offset of the field.
        at: usize,
    },
    /// A mandatory field type (top bit clear) this version does not know.
    #[error("unknown field type {kind:#04x} at octet {at}")]
    UnknownField {
        /// Field type.
        kind: u8,
        /// Offset of the field.
        at: usize,
    },
    /// A known field this kind of request does not carry.
    #[error("field type {kind:#04x} at octet {at} does not belong in this request")]
    UnexpectedField {
        /// Field type.
        kind: u8,
        /// Offset of the field.
        at: usize,
    },
    /// A second copy of a field that may appear once, or more copies than
    /// [`MAX_REPEATED`].
    #[error("too many fields of type {kind:#04x} (at octet {at})")]
    DuplicateField {
        /// Field type.
        kind: u8,
        /// Offset of the field.
        at: usize,
    },
    /// A field this kind of request needs is missing.
    #[error("missing field type {kind:#04x}")]
    MissingField {
        /// Field type.
        kind: u8,
    },
    /// A request kind that is not assigned.
    #[error("unknown request kind {0}")]
    UnknownKind(u8),
    /// An address family octet other than 4 or 6.
    #[error("bad address family {0}")]
    BadFamily(u8),
    /// Text that is not UTF-8, too long, or a name that is not a plugin
    /// name.
    #[error("bad text in field type {kind:#04x} at octet {at}")]
    BadText {
        /// Field type.
        kind: u8,
        /// Offset of the field.
        at: usize,
    },
    /// A TRIGGER whose inner request is not a SETUP or PROBE by the same
    /// key, for a different session.
    #[error("a TRIGGER must carry a SETUP or PROBE of its own key and session")]
    BadInner,
    /// A reserved octet that is not zero.
    #[error("reserved octet {at} is not zero")]
    Reserved {
        /// Offset.
        at: usize,
    },
    /// An entry's length runs past the message, or is shorter than its
    /// own length field.
    #[error("entry at octet {at} has a bad length")]
    BadEntry {
        /// Offset of the entry.
        at: usize,
    },
    /// Emitting: the message would be longer than [`MAX_MESSAGE_LEN`] or
    /// a field does not fit its wire width.
    #[error("message does not fit the wire format")]
    TooLong,
    /// Emitting: the buffer is shorter than `buffer_len`.
    #[error("buffer too short")]
    BufferTooShort,
}

impl WireError {
    /// Stable counter name.
    pub fn reason(&self) -> &'static str {
        match self {
            WireError::Truncated => "truncated",
            WireError::Magic => "magic",
            WireError::Version(_) => "version",
            WireError::UnknownType(_) => "unknown-type",
            WireError::BadLength { .. } => "bad-length",
            WireError::FieldTruncated { .. } => "field-truncated",
            WireError::BadField { .. } => "bad-field",
            WireError::UnknownField { .. } => "unknown-field",
            WireError::UnexpectedField { .. } => "unexpected-field",
            WireError::DuplicateField { .. } => "duplicate-field",
            WireError::MissingField { .. } => "missing-field",
            WireError::UnknownKind(_) => "unknown-kind",
            WireError::BadFamily(_) => "bad-family",
            WireError::BadText { .. } => "bad-text",
            WireError::BadInner => "bad-inner",
            WireError::Reserved { .. } => "reserved",
            WireError::BadEntry { .. } => "bad-entry",
            WireError::TooLong => "too-long",
            WireError::BufferTooShort => "buffer-too-short",
        }
    }
}

pub(crate) fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}
pub(crate) fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}
pub(crate) fn be64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// An address from 4 or 16 octets.
pub(crate) fn addr_from(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            Some(IpAddr::V6(Ipv6Addr::from(a)))
        }
        _ => None,
    }
}

/// An address's octets.
pub(crate) fn addr_octets(a: &IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// A name as plugin names are written (1–64 of `a-z 0-9 _ - .`, starting
/// with a letter or digit): module and dependency names, so that a node
/// can use them as class names without further checks. The same rule as
/// `weft_repo::package::valid_name`.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.'))
}

/// A version as plugin versions are written (1–32 printable ASCII octets,
/// no spaces).
pub fn valid_version(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_VERSION_LEN && s.bytes().all(|b| b.is_ascii_graphic())
}

/// Iterate the `| type (8) | length (16) | body |` fields of `b`, whose
/// first octet is at offset `base` of the message (for error offsets).
pub(crate) struct Fields<'a> {
    b: &'a [u8],
    at: usize,
    base: usize,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(b: &'a [u8], base: usize) -> Self {
        Fields { b, at: 0, base }
    }
}

impl<'a> Iterator for Fields<'a> {
    /// (type, body, offset of the field in the message)
    type Item = Result<(u8, &'a [u8], usize), WireError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.b.len() {
            return None;
        }
        let at = self.base + self.at;
        let Some(h) = self.b.get(self.at..self.at + FIELD_HEADER_LEN) else {
            self.at = self.b.len();
            return Some(Err(WireError::FieldTruncated { at }));
        };
        let len = be16(&h[1..3]) as usize;
        let start = self.at + FIELD_HEADER_LEN;
        let Some(body) = self.b.get(start..start + len) else {
            self.at = self.b.len();
            return Some(Err(WireError::FieldTruncated { at }));
        };
        self.at = start + len;
        Some(Ok((h[0], body, at)))
    }
}

/// Append a field; `TooLong` when the body exceeds 16 bits.
pub(crate) fn put_field(out: &mut Vec<u8>, kind: u8, body: &[u8]) -> Result<(), WireError> {
    let len = u16::try_from(body.len()).map_err(|_| WireError::TooLong)?;
    out.push(kind);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    Ok(())
}
