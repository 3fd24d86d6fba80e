//! The IPv6 header (RFC 8200 3).
//!
//! ```text
//!  0       4               12                                      31
//! +-------+---------------+---------------------------------------+
//! |version| traffic class |              flow label               |
//! +-------+---------------+-------+---------------+---------------+
//! |        payload length         |  next header  |   hop limit   |
//! +-------------------------------+---------------+---------------+
//! |                  source address (16 octets)                   |
//! |               destination address (16 octets)                 |
//! +---------------------------------------------------------------+
//! ```

use super::{be16, set_be16, Truncated};
use std::net::Ipv6Addr;

mod field {
    use super::super::Field;
    pub const VER_TC_FLOW: Field = 0..4;
    pub const PAYLOAD_LEN: Field = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Field = 8..24;
    pub const DST: Field = 24..40;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = field::DST.end;

/// Next-header values of the extension headers a routing-step resolver
/// reads: hop-by-hop options, routing, destination options.
pub const OPTION_HEADERS: [u8; 3] = [0, 43, 60];

/// A view over an IPv6 header (and the packet after it). See the
/// [module](self) documentation.
#[derive(Clone, Copy, Debug)]
pub struct Ipv6Header<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Ipv6Header<T> {
    /// Wrap without checks: getters panic on a buffer shorter than
    /// [`HEADER_LEN`].
    pub fn new_unchecked(buf: T) -> Self {
        Ipv6Header { buf }
    }

    /// Wrap after [`Ipv6Header::check_len`].
    pub fn new_checked(buf: T) -> Result<Self, Truncated> {
        let h = Self::new_unchecked(buf);
        h.check_len()?;
        Ok(h)
    }

    /// The fixed header is there.
    pub fn check_len(&self) -> Result<(), Truncated> {
        if self.buf.as_ref().len() < HEADER_LEN {
            return Err(Truncated);
        }
        Ok(())
    }

    /// The buffer back.
    pub fn into_inner(self) -> T {
        self.buf
    }

    /// Version (6 for IPv6).
    pub fn version(&self) -> u8 {
        self.buf.as_ref()[field::VER_TC_FLOW.start] >> 4
    }

    /// Payload length: what follows the fixed header, extension headers
    /// included.
    pub fn payload_len(&self) -> u16 {
        be16(self.buf.as_ref(), field::PAYLOAD_LEN)
    }

    /// The packet's length by its header: [`HEADER_LEN`] plus the payload
    /// length (Ethernet padding after it does not count).
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.payload_len() as usize
    }

    /// Next header (the first extension header's type, or the transport
    /// protocol).
    pub fn next_header(&self) -> u8 {
        self.buf.as_ref()[field::NEXT_HEADER]
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buf.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    pub fn src(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buf.as_ref()[field::SRC]);
        Ipv6Addr::from(a)
    }

    /// Destination address.
    pub fn dst(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buf.as_ref()[field::DST]);
        Ipv6Addr::from(a)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Header<T> {
    /// Set the version, with traffic class and flow label 0.
    pub fn set_version(&mut self, v: u8) {
        self.buf.as_mut()[field::VER_TC_FLOW].copy_from_slice(&[v << 4, 0, 0, 0]);
    }

    /// Set the payload length.
    pub fn set_payload_len(&mut self, v: u16) {
        set_be16(self.buf.as_mut(), field::PAYLOAD_LEN, v);
    }

    /// Set the next header.
    pub fn set_next_header(&mut self, v: u8) {
        self.buf.as_mut()[field::NEXT_HEADER] = v;
    }

    /// Set the hop limit.
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buf.as_mut()[field::HOP_LIMIT] = v;
    }

    /// Set the source address.
    pub fn set_src(&mut self, a: Ipv6Addr) {
        self.buf.as_mut()[field::SRC].copy_from_slice(&a.octets());
    }

    /// Set the destination address.
    pub fn set_dst(&mut self, a: Ipv6Addr) {
        self.buf.as_mut()[field::DST].copy_from_slice(&a.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2001:db8::1 → 2001:db8:1::2, UDP, hop limit 64, 8 octets of payload.
    static HEADER: [u8; 40] = [
        0x60, 0x00, 0x00, 0x00, // version 6, traffic class 0, flow 0
        0x00, 0x08, 0x11, 0x40, // payload length 8, UDP, hop limit 64
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // source
        0x20, 0x01, 0x0d, 0xb8, 0, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, // destination
    ];

    #[test]
    fn deconstruct() {
        let h = Ipv6Header::new_checked(&HEADER[..]).unwrap();
        assert_eq!(h.version(), 6);
        assert_eq!(h.payload_len(), 8);
        assert_eq!(h.total_len(), 48);
        assert_eq!(h.next_header(), 17);
        assert_eq!(h.hop_limit(), 64);
        assert_eq!(h.src(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(h.dst(), "2001:db8:1::2".parse::<Ipv6Addr>().unwrap());
    }

    #[test]
    fn construct() {
        let mut buf = [0xa5u8; 40];
        let mut h = Ipv6Header::new_unchecked(&mut buf[..]);
        h.set_version(6);
        h.set_payload_len(8);
        h.set_next_header(17);
        h.set_hop_limit(64);
        h.set_src("2001:db8::1".parse().unwrap());
        h.set_dst("2001:db8:1::2".parse().unwrap());
        assert_eq!(buf, HEADER);
    }

    #[test]
    fn truncated() {
        assert_eq!(Ipv6Header::new_checked(&HEADER[..39]).err(), Some(Truncated));
    }
}
