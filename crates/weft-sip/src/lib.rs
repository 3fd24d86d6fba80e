//! # weft-sip — the SIP and SDP a NetServ application module reads and writes
//!
//! `#![no_std]` and without an allocator, so the WebAssembly plugins
//! (`plugins/keepalive`, `plugins/sipoc`) link it as they are, and the same
//! code runs natively under `cargo test`, property tests and the fuzz targets
//! (`fuzz/fuzz_targets/sip_*.rs`).
//!
//! * [`msg`] — one SIP message over UDP: start line, headers (compact forms,
//!   folded lines), body; every defect a typed [`Error`], never a panic.
//! * [`keepalive`] — which messages are NAT keep-alives, and the answers
//!   built from the request (`200 OK`, the CRLF pong of RFC 5626).
//! * [`overload`] — RFC 7339 loss-based overload control: the `oc` Via
//!   parameters of a server's responses, the shedding decision, `503`.
//! * [`udp`] — the reply frame: Ethernet, IPv4 or IPv6 and UDP around a
//!   payload, addressed back to the request's source.
//!
//! **What is supported.** SIP over UDP, one message per datagram (RFC 3261
//! §18.1.1). SIP over TCP is not parsed: a segment holds any part of a
//! stream, and the modules pass TCP on untouched (the filter they are bound
//! to says `udp`). Header sections must be UTF-8; bodies may be any bytes.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod keepalive;
pub mod msg;
pub mod overload;
pub mod udp;

pub use msg::{Error, Message, StartLine};

/// A bounded writer over a byte slice: the answers are built into the
/// caller's buffer; running out of room is [`Error::NoRoom`].
pub struct Out<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> Out<'a> {
    /// Write into `buf` from its start.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Out { buf, len: 0 }
    }

    /// Append bytes.
    pub fn put(&mut self, b: &[u8]) -> Result<(), Error> {
        let end = self.len.checked_add(b.len()).ok_or(Error::NoRoom)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(Error::NoRoom)?;
        dst.copy_from_slice(b);
        self.len = end;
        Ok(())
    }

    /// Append a decimal number.
    pub fn put_u64(&mut self, mut v: u64) -> Result<(), Error> {
        let mut d = [0u8; 20];
        let mut i = d.len();
        loop {
            i -= 1;
            d[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.put(&d[i..])
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Nothing written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The fuzz target `sip_message`: parse arbitrary bytes, and when they
/// parse, classify them and build every answer from them; nothing panics,
/// every answer parses again, and the keep-alive fast path
/// ([`keepalive::candidate`]) decides as a full parse would: a message that
/// parses as a keep-alive is a candidate, and a candidate is classified by
/// its parse.
pub fn fuzz_message(data: &[u8]) {
    let class = keepalive::classify(data);
    let parsed = Message::parse(data);
    if data != keepalive::PING {
        match (&parsed, keepalive::candidate(data)) {
            (Ok(m), true) => assert_eq!(class, Ok(keepalive::kind_of(m))),
            (Ok(m), false) => {
                assert_eq!(keepalive::kind_of(m), None, "a keep-alive that is no candidate");
                assert_eq!(class, Ok(None));
            }
            (Err(e), true) => assert_eq!(class, Err(*e)),
            (Err(_), false) => assert_eq!(class, Ok(None)),
        }
    }
    let Ok(m) = parsed else { return };
    for h in m.headers() {
        let _ = (h.name, h.value);
    }
    let _ = m.call_id();
    let _ = m.cseq();
    let _ = m.in_dialog();
    let _ = m.top_via().map(overload::OcParams::from_via);
    let _ = overload::is_candidate(&m);
    let _ = overload::is_ack_of_shed(&m);
    let mut buf = [0u8; 2048];
    if let Ok(n) = keepalive::write_ok(&m, &mut buf) {
        let r = Message::parse(&buf[..n]).expect("our 200 OK parses");
        assert!(matches!(r.start, StartLine::Response { code: 200, .. }));
    }
    if let Ok(n) = overload::write_503(&m, 7, &mut buf) {
        let r = Message::parse(&buf[..n]).expect("our 503 parses");
        assert!(matches!(r.start, StartLine::Response { code: 503, .. }));
    }
}
