//! Whole messages: the header and one of three bodies.
//!
//! ```text
//! REQUEST  | header | hops (8) | flags (8) | family (8) | 0 (8) | origin (4|16) | signed request |
//! RESPONSE | header | session (16) | nonce (16) | kind (8) | flags (8) | count (8) | 0 (8) | entry* |
//! ACK      | header |
//! ```
//!
//! A REQUEST's origin is the address that started this signaling flow
//! (the requester, or the last node of a TRIGGER, which starts the
//! reverse flow: flag [`RequestMsg::REVERSE`]); its destination is the
//! signed request's. Together with the session they name the flow whose
//! upstream peer each node records. A RESPONSE names the request it
//! answers by session and nonce, and carries the stack bottom first: the
//! last node's entry, then each node's on the way back.

use super::header::HeaderView;
use super::request::{SignedView, FIXED_LEN, SIGNATURE_LEN};
use super::{addr_from, addr_octets, msg, Entry, Kind, SessionId, Signed, WireError, HEADER_LEN, MAGIC};
use super::{MAX_MESSAGE_LEN, VERSION};
use std::net::IpAddr;

mod rq {
    pub const HOPS: usize = 12;
    pub const FLAGS: usize = 13;
    pub const FAMILY: usize = 14;
    pub const RESERVED: usize = 15;
    pub const ORIGIN: usize = 16;
}

mod rs {
    pub type Field = core::ops::Range<usize>;
    pub const SESSION: Field = 12..28;
    pub const NONCE: Field = 28..44;
    pub const KIND: usize = 44;
    pub const FLAGS: usize = 45;
    pub const COUNT: usize = 46;
    pub const RESERVED: usize = 47;
    pub const ENTRIES: usize = 48;
}

/// A REQUEST: one hop of a signed request's way downstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestMsg {
    /// Signaling hops left: each intercepting node takes one; at 0 a node
    /// answers as the last.
    pub hops: u8,
    /// [`RequestMsg::REVERSE`].
    pub flags: u8,
    /// Who started this flow.
    pub origin: IpAddr,
    /// The request.
    pub signed: Signed,
}

impl RequestMsg {
    /// Flag: this flow was started by the last node of a TRIGGER, back
    /// toward the requester.
    pub const REVERSE: u8 = 0x01;
}

/// A RESPONSE: the stack on its way upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseMsg {
    /// The session.
    pub session: SessionId,
    /// The nonce of the request answered.
    pub nonce: [u8; 16],
    /// Its kind.
    pub kind: Kind,
    /// [`ResponseMsg::TRUNCATED`], [`ResponseMsg::END_TIMEOUT`], …
    pub flags: u8,
    /// Entries, bottom first (the last node's, then each node's upstream
    /// of it).
    pub stack: Vec<Entry>,
}

impl ResponseMsg {
    /// Some node could not fit its whole entry (facts were left out).
    pub const TRUNCATED: u8 = 0x01;
    /// The last node heard nothing downstream (no node acknowledged).
    pub const END_TIMEOUT: u8 = 0x02;
    /// The last node is the flow's destination.
    pub const END_DESTINATION: u8 = 0x04;
    /// The last node used the last signaling hop.
    pub const END_HOPS: u8 = 0x08;

    /// The entries in path order: the first node's first.
    pub fn path_order(&self) -> impl Iterator<Item = &Entry> {
        self.stack.iter().rev()
    }

    /// Octets of the body after the fixed part.
    fn stack_len(&self) -> usize {
        self.stack.iter().map(Entry::buffer_len).sum()
    }
}

/// A message body.
// A message lives for one call; boxing the request would cost an
// allocation per datagram for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// A request, downstream.
    Request(RequestMsg),
    /// The stack, upstream.
    Response(ResponseMsg),
    /// Acknowledges the sequence number in the header.
    Ack,
}

/// A validated message: what [`Message::parse`] returns and
/// [`Message::emit`] writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Hop-by-hop sequence number (an ACK's: the one acknowledged).
    pub seq: u32,
    /// The body.
    pub body: Body,
}

fn family(a: &IpAddr) -> u8 {
    if a.is_ipv4() {
        4
    } else {
        6
    }
}

impl Message {
    /// Parse a whole datagram. Never panics.
    pub fn parse(b: &[u8]) -> Result<Message, WireError> {
        let h = HeaderView::new_checked(b)?;
        let seq = h.seq();
        let body = match h.msg_type() {
            msg::REQUEST => {
                let fixed = b.get(..rq::ORIGIN).ok_or(WireError::Truncated)?;
                if fixed[rq::RESERVED] != 0 {
                    return Err(WireError::Reserved { at: rq::RESERVED });
                }
                let alen = match fixed[rq::FAMILY] {
                    4 => 4,
                    6 => 16,
                    f => return Err(WireError::BadFamily(f)),
                };
                let origin = b
                    .get(rq::ORIGIN..rq::ORIGIN + alen)
                    .and_then(addr_from)
                    .ok_or(WireError::Truncated)?;
                let signed = Signed::parse(&b[rq::ORIGIN + alen..])?;
                Body::Request(RequestMsg {
                    hops: fixed[rq::HOPS],
                    flags: fixed[rq::FLAGS],
                    origin,
                    signed,
                })
            }
            msg::RESPONSE => {
                if b.len() < rs::ENTRIES {
                    return Err(WireError::Truncated);
                }
                if b[rs::RESERVED] != 0 {
                    return Err(WireError::Reserved { at: rs::RESERVED });
                }
                let mut session = [0u8; 16];
                session.copy_from_slice(&b[rs::SESSION]);
                let mut nonce = [0u8; 16];
                nonce.copy_from_slice(&b[rs::NONCE]);
                let kind = Kind::from_code(b[rs::KIND])?;
                let count = b[rs::COUNT] as usize;
                let mut stack = Vec::with_capacity(count.min(64));
                let mut at = rs::ENTRIES;
                for _ in 0..count {
                    let (e, n) = Entry::parse(&b[at..], at)?;
                    stack.push(e);
                    at += n;
                }
                if at != b.len() {
                    return Err(WireError::BadEntry { at });
                }
                Body::Response(ResponseMsg {
                    session: SessionId(session),
                    nonce,
                    kind,
                    flags: b[rs::FLAGS],
                    stack,
                })
            }
            _ => {
                if b.len() != HEADER_LEN {
                    return Err(WireError::BadLength {
                        field: HEADER_LEN,
                        actual: b.len(),
                    });
                }
                Body::Ack
            }
        };
        Ok(Message { seq, body })
    }

    /// Octets on the wire.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match &self.body {
                Body::Request(r) => rq::ORIGIN - HEADER_LEN + addr_octets(&r.origin).len() + r.signed.buffer_len(),
                Body::Response(r) => rs::ENTRIES - HEADER_LEN + r.stack_len(),
                Body::Ack => 0,
            }
    }

    /// Write the message into `buf`, which must be at least
    /// [`Message::buffer_len`] octets; returns the octets written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let len = self.buffer_len();
        if len > MAX_MESSAGE_LEN {
            return Err(WireError::TooLong);
        }
        let buf = buf.get_mut(..len).ok_or(WireError::BufferTooShort)?;
        let mut h = HeaderView::new_unchecked(&mut *buf);
        h.set_magic(MAGIC);
        h.set_version(VERSION);
        h.set_length(len as u16);
        h.set_seq(self.seq);
        match &self.body {
            Body::Request(r) => {
                h.set_msg_type(msg::REQUEST);
                buf[rq::HOPS] = r.hops;
                buf[rq::FLAGS] = r.flags;
                buf[rq::FAMILY] = family(&r.origin);
                buf[rq::RESERVED] = 0;
                let o = addr_octets(&r.origin);
                buf[rq::ORIGIN..rq::ORIGIN + o.len()].copy_from_slice(&o);
                buf[rq::ORIGIN + o.len()..].copy_from_slice(r.signed.as_bytes());
            }
            Body::Response(r) => {
                h.set_msg_type(msg::RESPONSE);
                if r.stack.len() > u8::MAX as usize {
                    return Err(WireError::TooLong);
                }
                buf[rs::SESSION].copy_from_slice(&r.session.0);
                buf[rs::NONCE].copy_from_slice(&r.nonce);
                buf[rs::KIND] = r.kind.code();
                buf[rs::FLAGS] = r.flags;
                buf[rs::COUNT] = r.stack.len() as u8;
                buf[rs::RESERVED] = 0;
                let mut out = Vec::with_capacity(r.stack_len());
                for e in &r.stack {
                    e.encode(&mut out)?;
                }
                buf[rs::ENTRIES..].copy_from_slice(&out);
            }
            Body::Ack => h.set_msg_type(msg::ACK),
        }
        Ok(len)
    }

    /// The message as a new vector.
    pub fn to_bytes(&self) -> Result<Vec<u8>, WireError> {
        let mut b = vec![0u8; self.buffer_len()];
        self.emit(&mut b)?;
        Ok(b)
    }
}

/// What can be read of a message that does not parse whole: enough to
/// acknowledge it and, for a request whose fixed part is readable, to
/// answer it with a refusal the requester can match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peek {
    /// Message type.
    pub msg_type: u8,
    /// Sequence number.
    pub seq: u32,
    /// A REQUEST's origin, if readable.
    pub origin: Option<IpAddr>,
    /// A REQUEST's kind, session and nonce, if its signed fixed part is
    /// there and the kind is assigned.
    pub request: Option<(Kind, SessionId, [u8; 16])>,
}

/// Read the header of `b` (and of a REQUEST, what [`Peek`] names); None
/// when even the header is bad.
pub fn peek(b: &[u8]) -> Option<Peek> {
    let h = HeaderView::new_checked(b).ok()?;
    let mut p = Peek {
        msg_type: h.msg_type(),
        seq: h.seq(),
        origin: None,
        request: None,
    };
    if p.msg_type == msg::REQUEST {
        let alen = match b.get(rq::FAMILY) {
            Some(4) => 4,
            Some(6) => 16,
            _ => return Some(p),
        };
        p.origin = b.get(rq::ORIGIN..rq::ORIGIN + alen).and_then(addr_from);
        let s = &b[(rq::ORIGIN + alen).min(b.len())..];
        if s.len() >= FIXED_LEN + SIGNATURE_LEN {
            let v = SignedView::new_unchecked(s);
            if let Ok(k) = Kind::from_code(v.kind()) {
                p.request = Some((k, v.session(), v.nonce()));
            }
        }
    }
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Probe, Reason, Request};

    fn key() -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[7; 32])
    }

    fn probe() -> Signed {
        let mut r = Request::new(Kind::Probe, SessionId([0x22; 16]), "10.2.0.5".parse().unwrap());
        r.nonce = [0x33; 16];
        r.time = 1_700_000_000;
        r.probe = Some(Probe::ALL);
        Signed::sign(r, &key()).unwrap()
    }

    /// A PROBE from 10.0.0.9, 16 hops left, sequence number 5.
    fn request() -> Message {
        Message {
            seq: 5,
            body: Body::Request(RequestMsg {
                hops: 16,
                flags: 0,
                origin: "10.0.0.9".parse().unwrap(),
                signed: probe(),
            }),
        }
    }

    #[rustfmt::skip]
    static REQUEST_HEAD: &[u8] = &[
        b'W', b'F', b'S', b'G', 0x01, 0x01, 0x00, 0xae, // magic, v1, REQUEST, length 174
        0x00, 0x00, 0x00, 0x05,                         // seq 5
        0x10, 0x00, 0x04, 0x00,                         // 16 hops, no flags, IPv4, reserved
        10, 0, 0, 9,                                    // origin
    ];

    #[test]
    fn request_emit_and_parse() {
        let m = request();
        assert_eq!(m.buffer_len(), 174);
        let mut buf = [0xa5u8; 200];
        let n = m.emit(&mut buf).unwrap();
        assert_eq!(n, 174);
        assert_eq!(&buf[..20], REQUEST_HEAD);
        assert_eq!(&buf[20..174], probe().as_bytes());
        assert!(
            buf[174..].iter().all(|&b| b == 0xa5),
            "nothing written past the message"
        );
        assert_eq!(Message::parse(&buf[..n]), Ok(m));
    }

    /// A RESPONSE to that PROBE with two entries, bottom first.
    fn response() -> Message {
        Message {
            seq: 9,
            body: Body::Response(ResponseMsg {
                session: SessionId([0x22; 16]),
                nonce: [0x33; 16],
                kind: Kind::Probe,
                flags: ResponseMsg::END_TIMEOUT,
                stack: vec![
                    Entry::new("R2", Some("10.0.2.1".parse().unwrap()), Reason::Ok, ""),
                    Entry::new("R1", Some("10.0.1.1".parse().unwrap()), Reason::UnknownKey, "no"),
                ],
            }),
        }
    }

    #[test]
    fn response_emit_and_parse() {
        let m = response();
        let b = m.to_bytes().unwrap();
        #[rustfmt::skip]
        let head: &[u8] = &[
            b'W', b'F', b'S', b'G', 0x01, 0x02, 0x00, 0x56, // RESPONSE, length 86
            0x00, 0x00, 0x00, 0x09,
        ];
        assert_eq!(&b[..12], head);
        assert_eq!(&b[12..28], &[0x22; 16]);
        assert_eq!(&b[28..44], &[0x33; 16]);
        assert_eq!(&b[44..48], &[3, ResponseMsg::END_TIMEOUT, 2, 0]);
        // The first entry is R2's (the bottom).
        assert_eq!(&b[48..50], &[0x00, 0x12]);
        assert_eq!(&b[50..55], &[crate::wire::efield::NODE, 0, 2, b'R', b'2']);
        let p = Message::parse(&b).unwrap();
        assert_eq!(p, m);
        let Body::Response(r) = p.body else { unreachable!() };
        let order: Vec<&str> = r.path_order().map(|e| e.node.as_str()).collect();
        assert_eq!(order, ["R1", "R2"]);
    }

    #[test]
    fn ack_is_the_header() {
        let m = Message {
            seq: 7,
            body: Body::Ack,
        };
        let b = m.to_bytes().unwrap();
        assert_eq!(b, [b'W', b'F', b'S', b'G', 1, 3, 0, 12, 0, 0, 0, 7]);
        assert_eq!(Message::parse(&b), Ok(m));
    }

    #[test]
    fn malformed_messages() {
        let b = request().to_bytes().unwrap();
        for n in 0..b.len() {
            let mut c = b[..n].to_vec();
            if c.len() >= 8 {
                c[6..8].copy_from_slice(&(n as u16).to_be_bytes());
            }
            assert!(Message::parse(&c).is_err(), "cut at {n}");
        }
        let mut c = b.clone();
        c[14] = 5;
        assert_eq!(Message::parse(&c), Err(WireError::BadFamily(5)));
        let mut c = b.clone();
        c[15] = 1;
        assert_eq!(Message::parse(&c), Err(WireError::Reserved { at: 15 }));
        // A response whose count says more entries than there are, or fewer.
        let mut r = response().to_bytes().unwrap();
        r[46] = 3;
        assert!(Message::parse(&r).is_err());
        r[46] = 1;
        assert!(matches!(Message::parse(&r), Err(WireError::BadEntry { .. })));
        // An ACK with a body.
        let mut a = Message {
            seq: 1,
            body: Body::Ack,
        }
        .to_bytes()
        .unwrap();
        a.push(0);
        a[7] = 13;
        assert!(Message::parse(&a).is_err());
        // Too long to emit.
        let mut big = response();
        if let Body::Response(r) = &mut big.body {
            r.stack = vec![Entry::new("R", None, Reason::Ok, &"x".repeat(200)); 8];
        }
        assert_eq!(big.to_bytes().unwrap_err(), WireError::TooLong);
        let mut small = [0u8; 4];
        assert_eq!(response().emit(&mut small), Err(WireError::BufferTooShort));
    }

    #[test]
    fn peek_reads_what_it_can() {
        let mut b = request().to_bytes().unwrap();
        // Break a field after the fixed part: the request no longer parses.
        let at = 20 + FIXED_LEN;
        b[at] = 0x40;
        assert!(Message::parse(&b).is_err());
        let p = peek(&b).unwrap();
        assert_eq!(p.msg_type, msg::REQUEST);
        assert_eq!(p.seq, 5);
        assert_eq!(p.origin, Some("10.0.0.9".parse().unwrap()));
        assert_eq!(p.request, Some((Kind::Probe, SessionId([0x22; 16]), [0x33; 16])));
        assert_eq!(peek(&b[..11]), None);
    }
}
