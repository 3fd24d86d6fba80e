//! The UDP header (RFC 768).
//!
//! ```text
//! +-----------------+-----------------+-----------------+-----------------+---------
//! | source port (2) | dest. port (2)  |   length (2)    |  checksum (2)   | payload
//! +-----------------+-----------------+-----------------+-----------------+---------
//! ```

use super::{be16, set_be16, Truncated};
use crate::{checksum, proto};
use std::net::Ipv6Addr;

mod field {
    use super::super::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LEN: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
    pub const PAYLOAD: usize = 8;
}

/// Length of the header.
pub const HEADER_LEN: usize = field::PAYLOAD;

/// A view over a UDP datagram. See the [module](self) documentation.
#[derive(Clone, Copy, Debug)]
pub struct UdpHeader<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> UdpHeader<T> {
    /// Wrap without checks: getters panic on a buffer shorter than
    /// [`HEADER_LEN`].
    pub fn new_unchecked(buf: T) -> Self {
        UdpHeader { buf }
    }

    /// Wrap after [`UdpHeader::check_len`].
    pub fn new_checked(buf: T) -> Result<Self, Truncated> {
        let h = Self::new_unchecked(buf);
        h.check_len()?;
        Ok(h)
    }

    /// The header is there. (A length field past the buffer is not an
    /// error here: [`UdpHeader::payload`] stops at the buffer's end.)
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

    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(self.buf.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.buf.as_ref(), field::DST_PORT)
    }

    /// Length field: header and payload.
    pub fn len(&self) -> u16 {
        be16(self.buf.as_ref(), field::LEN)
    }

    /// True when the length field says there is no payload.
    pub fn is_empty(&self) -> bool {
        self.len() as usize <= HEADER_LEN
    }

    /// Checksum.
    pub fn checksum(&self) -> u16 {
        be16(self.buf.as_ref(), field::CHECKSUM)
    }

    /// The payload: from the end of the header to what the length field
    /// says, or to the buffer's end if that comes first (never past it,
    /// never before the header's end).
    pub fn payload(&self) -> &[u8] {
        let b = self.buf.as_ref();
        let end = (self.len() as usize).min(b.len()).max(field::PAYLOAD);
        &b[field::PAYLOAD..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpHeader<T> {
    /// Set the source port.
    pub fn set_src_port(&mut self, v: u16) {
        set_be16(self.buf.as_mut(), field::SRC_PORT, v);
    }

    /// Set the destination port.
    pub fn set_dst_port(&mut self, v: u16) {
        set_be16(self.buf.as_mut(), field::DST_PORT, v);
    }

    /// Set the length field.
    pub fn set_len(&mut self, v: u16) {
        set_be16(self.buf.as_mut(), field::LEN, v);
    }

    /// Set the checksum (0: none, allowed over IPv4 only).
    pub fn set_checksum(&mut self, v: u16) {
        set_be16(self.buf.as_mut(), field::CHECKSUM, v);
    }

    /// The payload, to write (the buffer after the header).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buf.as_mut()[field::PAYLOAD..]
    }

    /// Compute the checksum over the IPv6 pseudo-header and the datagram
    /// ([`UdpHeader::len`] octets) and store it; IPv6 requires one (RFC
    /// 8200 8.1), and a computed 0 is sent as 0xffff.
    pub fn fill_checksum_v6(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let len = (self.len() as usize).min(self.buf.as_ref().len());
        let ps = checksum::pseudo_v6(src.octets(), dst.octets(), proto::UDP, len as u32);
        let c = match checksum::finish(checksum::sum(&self.buf.as_ref()[..len], ps)) {
            0 => 0xffff,
            c => c,
        };
        self.set_checksum(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Port 49152 → 6635 (MPLS-in-UDP), 12 octets, no checksum.
    static DATAGRAM: [u8; 12] = [
        0xc0, 0x00, 0x19, 0xeb, // ports
        0x00, 0x0c, 0x00, 0x00, // length 12, checksum 0
        0x00, 0x01, 0x01, 0x40, // payload: a label stack entry
    ];

    #[test]
    fn deconstruct() {
        let u = UdpHeader::new_checked(&DATAGRAM[..]).unwrap();
        assert_eq!(u.src_port(), 49152);
        assert_eq!(u.dst_port(), 6635);
        assert_eq!(u.len(), 12);
        assert!(!u.is_empty());
        assert_eq!(u.checksum(), 0);
        assert_eq!(u.payload(), &[0x00, 0x01, 0x01, 0x40]);
    }

    #[test]
    fn construct() {
        let mut buf = [0xa5u8; 12];
        let mut u = UdpHeader::new_unchecked(&mut buf[..]);
        u.set_src_port(49152);
        u.set_dst_port(6635);
        u.set_len(12);
        u.set_checksum(0);
        u.payload_mut().copy_from_slice(&[0x00, 0x01, 0x01, 0x40]);
        assert_eq!(buf, DATAGRAM);
    }

    #[test]
    fn payload_is_bounded_by_the_length_and_the_buffer() {
        let mut short = DATAGRAM;
        short[5] = 9; // length 9: one octet of payload
        assert_eq!(UdpHeader::new_checked(&short[..]).unwrap().payload(), &[0x00]);
        let mut long = DATAGRAM;
        long[5] = 200; // past the buffer
        assert_eq!(UdpHeader::new_checked(&long[..]).unwrap().payload().len(), 4);
        let mut tiny = DATAGRAM;
        tiny[5] = 3; // below the header
        assert!(UdpHeader::new_checked(&tiny[..]).unwrap().payload().is_empty());
        assert_eq!(UdpHeader::new_checked(&DATAGRAM[..7]).err(), Some(Truncated));
    }

    #[test]
    fn checksum_v6() {
        let (s, d): (Ipv6Addr, Ipv6Addr) = ("2001:db8::1".parse().unwrap(), "2001:db8::2".parse().unwrap());
        let mut buf = DATAGRAM;
        UdpHeader::new_unchecked(&mut buf[..]).fill_checksum_v6(s, d);
        let ps = checksum::pseudo_v6(s.octets(), d.octets(), proto::UDP, 12);
        assert_eq!(checksum::sum(&buf, ps), 0xffff, "the datagram sums to all ones");
    }
}
