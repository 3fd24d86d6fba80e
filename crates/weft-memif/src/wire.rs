//! memif control messages (memif protocol 2.0, as VPP and DPDK's
//! `net_memif` speak it).
//!
//! Every message is exactly [`MSG_LEN`] bytes on an `AF_UNIX`
//! `SOCK_SEQPACKET` socket, little-endian (both ends share one host), a
//! 16-bit type followed by a packed body; ADD_REGION carries the region's
//! memfd and ADD_RING the ring's interrupt eventfd as `SCM_RIGHTS`.
//!
//! ```text
//!  type (u16) | body (packed)                                 | zero padding to 128
//!  HELLO      S→C  name[32] min_ver u16 max_ver u16 max_region u16 max_c2s u16 max_s2c u16 max_log2 u8
//!  INIT       C→S  version u16 id u32 mode u8 secret[24] name[32]
//!  ADD_REGION C→S  index u16 size u64                               + memfd
//!  ADD_RING   C→S  flags u16 index u16 region u16 offset u32 log2 u8 private_hdr u16 + eventfd
//!  CONNECT    C→S  if_name[32]
//!  CONNECTED  S→C  if_name[32]
//!  DISCONNECT both code u32 reason[96]
//!  ACK        S→C  (no body)
//! ```
//!
//! [`Msg`] is the validated value: [`Msg::parse`] never panics on outside
//! bytes, [`Msg::emit`] writes [`MSG_LEN`] bytes.

use thiserror::Error;

/// Every control message is this long (the C union is `aligned(128)`).
pub const MSG_LEN: usize = 128;
/// memif protocol version 2.0 (`major << 8 | minor`).
pub const VERSION: u16 = 0x0200;
/// Names (application, interface) are NUL-padded to this length.
pub const NAME_LEN: usize = 32;
/// The shared secret is NUL-padded to this length.
pub const SECRET_LEN: usize = 24;
/// A disconnect reason is NUL-padded to this length.
pub const REASON_LEN: usize = 96;
/// ADD_RING flag: the ring carries client → server packets (C2S, "S2M").
pub const RING_FLAG_C2S: u16 = 1;

mod field {
    pub type Field = std::ops::Range<usize>;
    pub const TYPE: Field = 0..2;
    // HELLO
    pub const HELLO_NAME: Field = 2..34;
    pub const HELLO_MIN: Field = 34..36;
    pub const HELLO_MAX: Field = 36..38;
    pub const HELLO_MAX_REGION: Field = 38..40;
    pub const HELLO_MAX_C2S: Field = 40..42;
    pub const HELLO_MAX_S2C: Field = 42..44;
    pub const HELLO_MAX_LOG2: usize = 44;
    // INIT
    pub const INIT_VERSION: Field = 2..4;
    pub const INIT_ID: Field = 4..8;
    pub const INIT_MODE: usize = 8;
    pub const INIT_SECRET: Field = 9..33;
    pub const INIT_NAME: Field = 33..65;
    // ADD_REGION
    pub const REGION_INDEX: Field = 2..4;
    pub const REGION_SIZE: Field = 4..12;
    // ADD_RING
    pub const RING_FLAGS: Field = 2..4;
    pub const RING_INDEX: Field = 4..6;
    pub const RING_REGION: Field = 6..8;
    pub const RING_OFFSET: Field = 8..12;
    pub const RING_LOG2: usize = 12;
    pub const RING_PRIVATE: Field = 13..15;
    // CONNECT / CONNECTED
    pub const IF_NAME: Field = 2..34;
    // DISCONNECT
    pub const DISC_CODE: Field = 2..6;
    pub const DISC_REASON: Field = 6..102;
}

/// Message type numbers.
pub mod kind {
    /// ACK: the server took INIT, ADD_REGION or ADD_RING.
    pub const ACK: u16 = 1;
    /// HELLO: the server's limits, sent on accept.
    pub const HELLO: u16 = 2;
    /// INIT: which interface the client wants, with its secret.
    pub const INIT: u16 = 3;
    /// ADD_REGION: a shared memory region (memfd attached).
    pub const ADD_REGION: u16 = 4;
    /// ADD_RING: a ring inside a region (interrupt eventfd attached).
    pub const ADD_RING: u16 = 5;
    /// CONNECT: the client is done declaring.
    pub const CONNECT: u16 = 6;
    /// CONNECTED: the server mapped everything; packets may flow.
    pub const CONNECTED: u16 = 7;
    /// DISCONNECT: either side ends the connection, with a reason.
    pub const DISCONNECT: u16 = 8;
}

/// Interface modes of INIT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Ethernet frames (the only mode Weft serves).
    Ethernet,
    /// IP packets without a link header.
    Ip,
    /// VPP's punt/inject mode.
    PuntInject,
}

impl Mode {
    fn from_u8(v: u8) -> Result<Mode, WireError> {
        match v {
            0 => Ok(Mode::Ethernet),
            1 => Ok(Mode::Ip),
            2 => Ok(Mode::PuntInject),
            _ => Err(WireError::BadMode(v)),
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            Mode::Ethernet => 0,
            Mode::Ip => 1,
            Mode::PuntInject => 2,
        }
    }
}

/// A NUL-padded fixed-size name or secret, as it travels.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Fixed<const N: usize>(pub [u8; N]);

impl<const N: usize> Fixed<N> {
    /// `s` truncated to `N` bytes and NUL-padded.
    pub fn new(s: &[u8]) -> Self {
        let mut b = [0u8; N];
        let n = s.len().min(N);
        b[..n].copy_from_slice(&s[..n]);
        Fixed(b)
    }

    /// The bytes before the first NUL.
    pub fn bytes(&self) -> &[u8] {
        let end = self.0.iter().position(|&b| b == 0).unwrap_or(N);
        &self.0[..end]
    }

    /// The bytes before the first NUL, lossily as text (for logs).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(self.bytes()).into_owned()
    }
}

impl<const N: usize> std::fmt::Debug for Fixed<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.text())
    }
}

/// HELLO: what the server accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    /// The server application's name.
    pub name: Fixed<NAME_LEN>,
    /// Lowest protocol version spoken.
    pub min_version: u16,
    /// Highest protocol version spoken.
    pub max_version: u16,
    /// Highest region index accepted.
    pub max_region: u16,
    /// Highest C2S (client → server) ring index accepted.
    pub max_c2s_ring: u16,
    /// Highest S2C (server → client) ring index accepted.
    pub max_s2c_ring: u16,
    /// Largest ring, as log2 of its descriptor count.
    pub max_log2_ring_size: u8,
}

/// INIT: the interface a client asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Init {
    /// Protocol version the client speaks.
    pub version: u16,
    /// Interface id (the channel's memif id).
    pub id: u32,
    /// Interface mode.
    pub mode: Mode,
    /// Shared secret (empty: none).
    pub secret: Fixed<SECRET_LEN>,
    /// Client application name.
    pub name: Fixed<NAME_LEN>,
}

/// ADD_REGION.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddRegion {
    /// Region index.
    pub index: u16,
    /// Region size in bytes (the memfd must be at least this long).
    pub size: u64,
}

/// ADD_RING.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddRing {
    /// Flags ([`RING_FLAG_C2S`]).
    pub flags: u16,
    /// Ring index within its direction.
    pub index: u16,
    /// Region holding the ring.
    pub region: u16,
    /// Offset of the ring header within the region.
    pub offset: u32,
    /// Descriptor count as log2.
    pub log2_ring_size: u8,
    /// Private header size (unused; must be 0 for Weft).
    pub private_hdr_size: u16,
}

impl AddRing {
    /// Whether the ring carries client → server packets.
    pub fn is_c2s(&self) -> bool {
        self.flags & RING_FLAG_C2S != 0
    }
}

/// DISCONNECT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Disconnect {
    /// Error code (0: none).
    pub code: u32,
    /// Human-readable reason.
    pub reason: Fixed<REASON_LEN>,
}

/// A control message, validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Msg {
    /// ACK.
    Ack,
    /// HELLO.
    Hello(Hello),
    /// INIT.
    Init(Init),
    /// ADD_REGION.
    AddRegion(AddRegion),
    /// ADD_RING.
    AddRing(AddRing),
    /// CONNECT with the client's interface name.
    Connect(Fixed<NAME_LEN>),
    /// CONNECTED with the server's interface name.
    Connected(Fixed<NAME_LEN>),
    /// DISCONNECT.
    Disconnect(Disconnect),
}

/// Error returned by [`Msg::parse`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum WireError {
    /// Not exactly [`MSG_LEN`] bytes.
    #[error("memif message is {0} bytes, expected 128")]
    BadLength(usize),
    /// Type number unknown (or NONE).
    #[error("unknown memif message type {0}")]
    UnknownType(u16),
    /// INIT names a mode that does not exist.
    #[error("unknown memif interface mode {0}")]
    BadMode(u8),
}

fn le16(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}
fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}
fn le64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}
fn fixed<const N: usize>(b: &[u8]) -> Fixed<N> {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[..N]);
    Fixed(a)
}

impl Msg {
    /// Parse one received message. Never panics.
    pub fn parse(b: &[u8]) -> Result<Msg, WireError> {
        if b.len() != MSG_LEN {
            return Err(WireError::BadLength(b.len()));
        }
        Ok(match le16(&b[field::TYPE]) {
            kind::ACK => Msg::Ack,
            kind::HELLO => Msg::Hello(Hello {
                name: fixed(&b[field::HELLO_NAME]),
                min_version: le16(&b[field::HELLO_MIN]),
                max_version: le16(&b[field::HELLO_MAX]),
                max_region: le16(&b[field::HELLO_MAX_REGION]),
                max_c2s_ring: le16(&b[field::HELLO_MAX_C2S]),
                max_s2c_ring: le16(&b[field::HELLO_MAX_S2C]),
                max_log2_ring_size: b[field::HELLO_MAX_LOG2],
            }),
            kind::INIT => Msg::Init(Init {
                version: le16(&b[field::INIT_VERSION]),
                id: le32(&b[field::INIT_ID]),
                mode: Mode::from_u8(b[field::INIT_MODE])?,
                secret: fixed(&b[field::INIT_SECRET]),
                name: fixed(&b[field::INIT_NAME]),
            }),
            kind::ADD_REGION => Msg::AddRegion(AddRegion {
                index: le16(&b[field::REGION_INDEX]),
                size: le64(&b[field::REGION_SIZE]),
            }),
            kind::ADD_RING => Msg::AddRing(AddRing {
                flags: le16(&b[field::RING_FLAGS]),
                index: le16(&b[field::RING_INDEX]),
                region: le16(&b[field::RING_REGION]),
                offset: le32(&b[field::RING_OFFSET]),
                log2_ring_size: b[field::RING_LOG2],
                private_hdr_size: le16(&b[field::RING_PRIVATE]),
            }),
            kind::CONNECT => Msg::Connect(fixed(&b[field::IF_NAME])),
            kind::CONNECTED => Msg::Connected(fixed(&b[field::IF_NAME])),
            kind::DISCONNECT => Msg::Disconnect(Disconnect {
                code: le32(&b[field::DISC_CODE]),
                reason: fixed(&b[field::DISC_REASON]),
            }),
            t => return Err(WireError::UnknownType(t)),
        })
    }

    /// The message's type number.
    pub fn kind(&self) -> u16 {
        match self {
            Msg::Ack => kind::ACK,
            Msg::Hello(_) => kind::HELLO,
            Msg::Init(_) => kind::INIT,
            Msg::AddRegion(_) => kind::ADD_REGION,
            Msg::AddRing(_) => kind::ADD_RING,
            Msg::Connect(_) => kind::CONNECT,
            Msg::Connected(_) => kind::CONNECTED,
            Msg::Disconnect(_) => kind::DISCONNECT,
        }
    }

    /// Write the message: all [`MSG_LEN`] bytes, padding zeroed.
    pub fn emit(&self, b: &mut [u8; MSG_LEN]) {
        b.fill(0);
        b[field::TYPE].copy_from_slice(&self.kind().to_le_bytes());
        match self {
            Msg::Ack => {}
            Msg::Hello(h) => {
                b[field::HELLO_NAME].copy_from_slice(&h.name.0);
                b[field::HELLO_MIN].copy_from_slice(&h.min_version.to_le_bytes());
                b[field::HELLO_MAX].copy_from_slice(&h.max_version.to_le_bytes());
                b[field::HELLO_MAX_REGION].copy_from_slice(&h.max_region.to_le_bytes());
                b[field::HELLO_MAX_C2S].copy_from_slice(&h.max_c2s_ring.to_le_bytes());
                b[field::HELLO_MAX_S2C].copy_from_slice(&h.max_s2c_ring.to_le_bytes());
                b[field::HELLO_MAX_LOG2] = h.max_log2_ring_size;
            }
            Msg::Init(i) => {
                b[field::INIT_VERSION].copy_from_slice(&i.version.to_le_bytes());
                b[field::INIT_ID].copy_from_slice(&i.id.to_le_bytes());
                b[field::INIT_MODE] = i.mode.as_u8();
                b[field::INIT_SECRET].copy_from_slice(&i.secret.0);
                b[field::INIT_NAME].copy_from_slice(&i.name.0);
            }
            Msg::AddRegion(r) => {
                b[field::REGION_INDEX].copy_from_slice(&r.index.to_le_bytes());
                b[field::REGION_SIZE].copy_from_slice(&r.size.to_le_bytes());
            }
            Msg::AddRing(r) => {
                b[field::RING_FLAGS].copy_from_slice(&r.flags.to_le_bytes());
                b[field::RING_INDEX].copy_from_slice(&r.index.to_le_bytes());
                b[field::RING_REGION].copy_from_slice(&r.region.to_le_bytes());
                b[field::RING_OFFSET].copy_from_slice(&r.offset.to_le_bytes());
                b[field::RING_LOG2] = r.log2_ring_size;
                b[field::RING_PRIVATE].copy_from_slice(&r.private_hdr_size.to_le_bytes());
            }
            Msg::Connect(n) | Msg::Connected(n) => b[field::IF_NAME].copy_from_slice(&n.0),
            Msg::Disconnect(d) => {
                b[field::DISC_CODE].copy_from_slice(&d.code.to_le_bytes());
                b[field::DISC_REASON].copy_from_slice(&d.reason.0);
            }
        }
    }

    /// The message as bytes.
    pub fn to_bytes(&self) -> [u8; MSG_LEN] {
        let mut b = [0u8; MSG_LEN];
        self.emit(&mut b);
        b
    }

    /// A DISCONNECT carrying `reason`.
    pub fn disconnect(code: u32, reason: &str) -> Msg {
        Msg::Disconnect(Disconnect {
            code,
            reason: Fixed::new(reason.as_bytes()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn padded(head: &[u8]) -> [u8; MSG_LEN] {
        let mut b = [0u8; MSG_LEN];
        b[..head.len()].copy_from_slice(head);
        b
    }

    // An ADD_RING as DPDK's client sends it: C2S ring 0 in region 0 at
    // offset 0, 1024 descriptors, no private header.
    static ADD_RING: [u8; 15] = [
        0x05, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00,
    ];

    #[test]
    fn deconstruct_add_ring() {
        let m = Msg::parse(&padded(&ADD_RING)).unwrap();
        assert_eq!(
            m,
            Msg::AddRing(AddRing {
                flags: RING_FLAG_C2S,
                index: 0,
                region: 0,
                offset: 0,
                log2_ring_size: 10,
                private_hdr_size: 0
            })
        );
    }

    #[test]
    fn construct_add_ring() {
        let m = Msg::parse(&padded(&ADD_RING)).unwrap();
        let mut b = [0xa5u8; MSG_LEN];
        m.emit(&mut b);
        assert_eq!(b, padded(&ADD_RING));
    }

    #[test]
    fn deconstruct_init() {
        // version 2.0, id 7, ethernet, secret "s3", name "testpmd".
        let mut raw = vec![0x03, 0x00, 0x00, 0x02, 0x07, 0x00, 0x00, 0x00, 0x00];
        let mut secret = [0u8; 24];
        secret[..2].copy_from_slice(b"s3");
        raw.extend_from_slice(&secret);
        let mut name = [0u8; 32];
        name[..7].copy_from_slice(b"testpmd");
        raw.extend_from_slice(&name);
        let Msg::Init(i) = Msg::parse(&padded(&raw)).unwrap() else {
            panic!("not INIT")
        };
        assert_eq!((i.version, i.id, i.mode), (VERSION, 7, Mode::Ethernet));
        assert_eq!(i.secret.bytes(), b"s3");
        assert_eq!(i.name.text(), "testpmd");
        assert_eq!(Msg::Init(i).to_bytes(), padded(&raw));
    }

    #[test]
    fn hello_and_region_round_trip() {
        let h = Msg::Hello(Hello {
            name: Fixed::new(b"weft"),
            min_version: VERSION,
            max_version: VERSION,
            max_region: 255,
            max_c2s_ring: 0,
            max_s2c_ring: 0,
            max_log2_ring_size: 14,
        });
        let b = h.to_bytes();
        assert_eq!(&b[..6], &[0x02, 0x00, b'w', b'e', b'f', b't']);
        assert_eq!(&b[34..45], &[0x00, 0x02, 0x00, 0x02, 0xff, 0x00, 0, 0, 0, 0, 14]);
        assert_eq!(Msg::parse(&b), Ok(h));
        let r = Msg::AddRegion(AddRegion {
            index: 1,
            size: 0x0102_0304_0506,
        });
        assert_eq!(
            &r.to_bytes()[..12],
            &[0x04, 0, 0x01, 0, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, 0, 0]
        );
        assert_eq!(Msg::parse(&r.to_bytes()), Ok(r));
    }

    #[test]
    fn disconnect_reason() {
        let d = Msg::disconnect(3, "bad secret");
        let b = d.to_bytes();
        assert_eq!(&b[..6], &[0x08, 0, 3, 0, 0, 0]);
        assert_eq!(&b[6..16], b"bad secret");
        let Ok(Msg::Disconnect(p)) = Msg::parse(&b) else {
            panic!()
        };
        assert_eq!(p.reason.text(), "bad secret");
    }

    #[test]
    fn short_long_and_unknown_are_errors() {
        assert_eq!(Msg::parse(&[2, 0]), Err(WireError::BadLength(2)));
        assert_eq!(Msg::parse(&[0u8; 129]), Err(WireError::BadLength(129)));
        assert_eq!(Msg::parse(&[0u8; MSG_LEN]), Err(WireError::UnknownType(0)));
        assert_eq!(Msg::parse(&padded(&[9, 0])), Err(WireError::UnknownType(9)));
        assert_eq!(
            Msg::parse(&padded(&[3, 0, 0, 2, 0, 0, 0, 0, 7])),
            Err(WireError::BadMode(7))
        );
    }
}
