//! The IPv4 header (RFC 791).
//!
//! ```text
//!  0       4       8               16    19                        31
//! +-------+-------+---------------+-------------------------------+
//! |version|  IHL  |   DSCP/ECN    |          total length         |
//! +-------+-------+---------------+-----+-------------------------+
//! |        identification         |flags|     fragment offset     |
//! +---------------+---------------+-----+-------------------------+
//! |      TTL      |   protocol    |        header checksum        |
//! +---------------+---------------+-------------------------------+
//! |                        source address                         |
//! |                      destination address                      |
//! |                    options (IHL > 5) …                        |
//! +---------------------------------------------------------------+
//! ```

use super::{be16, set_be16, Truncated};
use crate::checksum;
use std::net::Ipv4Addr;

mod field {
    use super::super::Field;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const TOTAL_LEN: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLAGS_FRAG: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC: Field = 12..16;
    pub const DST: Field = 16..20;
    /// `TTL` and `PROTOCOL` as the 16-bit word the checksum sums.
    pub const TTL_PROTOCOL: Field = 8..10;
}

/// Length of the header without options.
pub const HEADER_LEN: usize = field::DST.end;

const DONT_FRAGMENT: u16 = 0x4000;
const MORE_FRAGMENTS: u16 = 0x2000;
const FRAGMENT_OFFSET: u16 = 0x1fff;

/// A view over an IPv4 header (and the packet after it). See the
/// [module](self) documentation.
#[derive(Clone, Copy, Debug)]
pub struct Ipv4Header<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Ipv4Header<T> {
    /// Wrap without checks: getters panic on a buffer shorter than
    /// [`HEADER_LEN`].
    pub fn new_unchecked(buf: T) -> Self {
        Ipv4Header { buf }
    }

    /// Wrap after [`Ipv4Header::check_len`].
    pub fn new_checked(buf: T) -> Result<Self, Truncated> {
        let h = Self::new_unchecked(buf);
        h.check_len()?;
        Ok(h)
    }

    /// The fixed header is there. (Whether IHL and total length fit the
    /// buffer is [`crate::view::parse`]'s check.)
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

    /// Version (4 for IPv4).
    pub fn version(&self) -> u8 {
        self.buf.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in octets (IHL × 4), options included.
    pub fn header_len(&self) -> usize {
        (self.buf.as_ref()[field::VER_IHL] & 0x0f) as usize * 4
    }

    /// Whether the header carries options (IHL above 5).
    pub fn has_options(&self) -> bool {
        self.header_len() > HEADER_LEN
    }

    /// Total length (header and payload).
    pub fn total_len(&self) -> u16 {
        be16(self.buf.as_ref(), field::TOTAL_LEN)
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        be16(self.buf.as_ref(), field::IDENT)
    }

    /// The DF flag: routers may not fragment the packet.
    pub fn dont_fragment(&self) -> bool {
        be16(self.buf.as_ref(), field::FLAGS_FRAG) & DONT_FRAGMENT != 0
    }

    /// The MF flag: more fragments follow.
    pub fn more_fragments(&self) -> bool {
        be16(self.buf.as_ref(), field::FLAGS_FRAG) & MORE_FRAGMENTS != 0
    }

    /// Fragment offset in 8-octet units (0: the first or only fragment).
    pub fn fragment_offset(&self) -> u16 {
        be16(self.buf.as_ref(), field::FLAGS_FRAG) & FRAGMENT_OFFSET
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buf.as_ref()[field::TTL]
    }

    /// Protocol of the payload.
    pub fn protocol(&self) -> u8 {
        self.buf.as_ref()[field::PROTOCOL]
    }

    /// Header checksum.
    pub fn checksum(&self) -> u16 {
        be16(self.buf.as_ref(), field::CHECKSUM)
    }

    /// Source address.
    pub fn src(&self) -> Ipv4Addr {
        let b = &self.buf.as_ref()[field::SRC];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// Destination address.
    pub fn dst(&self) -> Ipv4Addr {
        let b = &self.buf.as_ref()[field::DST];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Header<T> {
    /// Set the version and the header length in octets (a multiple of 4,
    /// 20 to 60).
    pub fn set_version_and_header_len(&mut self, version: u8, len: usize) {
        self.buf.as_mut()[field::VER_IHL] = version << 4 | (len / 4) as u8 & 0x0f;
    }

    /// Set DSCP and ECN (the former type of service).
    pub fn set_dscp_ecn(&mut self, v: u8) {
        self.buf.as_mut()[field::DSCP_ECN] = v;
    }

    /// Set the total length.
    pub fn set_total_len(&mut self, v: u16) {
        set_be16(self.buf.as_mut(), field::TOTAL_LEN, v);
    }

    /// Set the identification.
    pub fn set_ident(&mut self, v: u16) {
        set_be16(self.buf.as_mut(), field::IDENT, v);
    }

    /// Set the flags and fragment offset: DF, MF and the offset in
    /// 8-octet units.
    pub fn set_fragment(&mut self, dont_fragment: bool, more_fragments: bool, offset: u16) {
        let mut v = offset & FRAGMENT_OFFSET;
        if dont_fragment {
            v |= DONT_FRAGMENT;
        }
        if more_fragments {
            v |= MORE_FRAGMENTS;
        }
        set_be16(self.buf.as_mut(), field::FLAGS_FRAG, v);
    }

    /// Set the time to live (the checksum is left as it is).
    pub fn set_ttl(&mut self, v: u8) {
        self.buf.as_mut()[field::TTL] = v;
    }

    /// Set the protocol.
    pub fn set_protocol(&mut self, v: u8) {
        self.buf.as_mut()[field::PROTOCOL] = v;
    }

    /// Set the header checksum.
    pub fn set_checksum(&mut self, v: u16) {
        set_be16(self.buf.as_mut(), field::CHECKSUM, v);
    }

    /// Set the source address.
    pub fn set_src(&mut self, a: Ipv4Addr) {
        self.buf.as_mut()[field::SRC].copy_from_slice(&a.octets());
    }

    /// Set the destination address.
    pub fn set_dst(&mut self, a: Ipv4Addr) {
        self.buf.as_mut()[field::DST].copy_from_slice(&a.octets());
    }

    /// Compute the header checksum over [`Ipv4Header::header_len`] octets
    /// and store it.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let len = self.header_len();
        let c = checksum::checksum(&self.buf.as_ref()[..len]);
        self.set_checksum(c);
    }

    /// Lower the TTL by one and update the checksum incrementally (RFC
    /// 1624), as a router does (RFC 1812 5.3.1). The caller checks first
    /// that the TTL is above 1.
    #[inline]
    pub fn decrement_ttl(&mut self) {
        let b = self.buf.as_mut();
        let old = be16(b, field::TTL_PROTOCOL);
        b[field::TTL] = b[field::TTL].wrapping_sub(1);
        let new = be16(b, field::TTL_PROTOCOL);
        let c = checksum::update16(be16(b, field::CHECKSUM), old, new);
        set_be16(b, field::CHECKSUM, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 10.0.0.1 → 10.0.1.2, UDP, TTL 64, DF, 28 octets in all.
    static HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x1c, // version 4, IHL 5, total length 28
        0x12, 0x34, 0x40, 0x00, // identification, DF, offset 0
        0x40, 0x11, 0x13, 0x9b, // TTL 64, UDP, checksum
        0x0a, 0x00, 0x00, 0x01, // source
        0x0a, 0x00, 0x01, 0x02, // destination
    ];

    #[test]
    fn deconstruct() {
        let h = Ipv4Header::new_checked(&HEADER[..]).unwrap();
        assert_eq!(h.version(), 4);
        assert_eq!(h.header_len(), 20);
        assert!(!h.has_options());
        assert_eq!(h.total_len(), 28);
        assert_eq!(h.ident(), 0x1234);
        assert!(h.dont_fragment());
        assert!(!h.more_fragments());
        assert_eq!(h.fragment_offset(), 0);
        assert_eq!(h.ttl(), 64);
        assert_eq!(h.protocol(), 17);
        assert_eq!(h.checksum(), 0x139b);
        assert_eq!(h.src(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(h.dst(), Ipv4Addr::new(10, 0, 1, 2));
        assert_eq!(checksum::sum(&HEADER, 0), 0xffff, "the literal's checksum is right");
    }

    #[test]
    fn construct() {
        let mut buf = [0xa5u8; 20];
        let mut h = Ipv4Header::new_unchecked(&mut buf[..]);
        h.set_version_and_header_len(4, 20);
        h.set_dscp_ecn(0);
        h.set_total_len(28);
        h.set_ident(0x1234);
        h.set_fragment(true, false, 0);
        h.set_ttl(64);
        h.set_protocol(17);
        h.set_src(Ipv4Addr::new(10, 0, 0, 1));
        h.set_dst(Ipv4Addr::new(10, 0, 1, 2));
        h.fill_checksum();
        assert_eq!(buf, HEADER);
    }

    #[test]
    fn fragments() {
        let mut buf = HEADER;
        let mut h = Ipv4Header::new_unchecked(&mut buf[..]);
        h.set_fragment(false, true, 0x1fff);
        assert_eq!(
            (h.dont_fragment(), h.more_fragments(), h.fragment_offset()),
            (false, true, 0x1fff)
        );
        assert_eq!(&buf[6..8], &[0x3f, 0xff]);
        let mut h = Ipv4Header::new_unchecked(&mut buf[..]);
        h.set_fragment(true, false, 185);
        assert_eq!(&buf[6..8], &[0x40, 0xb9]);
    }

    #[test]
    fn decrement_ttl_keeps_the_checksum_right() {
        let mut buf = HEADER;
        for ttl in (1..64).rev() {
            Ipv4Header::new_unchecked(&mut buf[..]).decrement_ttl();
            assert_eq!(buf[8], ttl);
            assert_eq!(checksum::sum(&buf, 0), 0xffff, "TTL {ttl}");
        }
    }

    #[test]
    fn options_and_truncation() {
        let mut buf = [0u8; 24];
        buf[0] = 0x46;
        assert!(Ipv4Header::new_checked(&buf[..]).unwrap().has_options());
        assert_eq!(Ipv4Header::new_checked(&buf[..]).unwrap().header_len(), 24);
        assert_eq!(Ipv4Header::new_checked(&HEADER[..19]).err(), Some(Truncated));
    }
}
