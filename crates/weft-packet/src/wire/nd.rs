//! IPv6 neighbour discovery (RFC 4861 4.3, 4.4): neighbour solicitation
//! and advertisement, viewed from their ICMPv6 type octet.
//!
//! ```text
//! +----------+----------+---------------------+---------------------------+
//! | type (1) | code (1) | checksum (2)        | flags (NA) / reserved (4) |
//! +----------+----------+---------------------+---------------------------+
//! |                     target address (16)                               |
//! +-----------------------------------------------------------------------+
//! | options: type (1) | length in 8 octets (1) | value …                  |
//! +-----------------------------------------------------------------------+
//! ```
//!
//! The link-layer address options (type 1 source, 2 target) carry a MAC in
//! the six octets after their type and length.

use super::{be16, Truncated};
use crate::Mac;
use std::net::Ipv6Addr;

mod field {
    use super::super::Field;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const FLAGS: usize = 4;
    pub const RESERVED: Field = 4..8;
    pub const TARGET: Field = 8..24;
    pub const OPTIONS: usize = 24;

    // Within an option.
    pub const OPT_TYPE: usize = 0;
    pub const OPT_LEN: usize = 1;
    pub const OPT_LINK_ADDR: Field = 2..8;
}

/// Length of a solicitation or advertisement without options.
pub const HEADER_LEN: usize = field::OPTIONS;
/// Option type: source link-layer address.
pub const SOURCE_LINK_ADDR: u8 = 1;
/// Option type: target link-layer address.
pub const TARGET_LINK_ADDR: u8 = 2;
/// The hop limit neighbour discovery messages must arrive with (RFC 4861
/// 7.1.1: proof they were not forwarded).
pub const HOP_LIMIT: u8 = 255;

const ROUTER: u8 = 0x80;
const SOLICITED: u8 = 0x40;
const OVERRIDE: u8 = 0x20;

/// A view over a neighbour solicitation or advertisement. See the
/// [module](self) documentation.
#[derive(Clone, Copy, Debug)]
pub struct NdMessage<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> NdMessage<T> {
    /// Wrap without checks: getters panic on a buffer shorter than
    /// [`HEADER_LEN`].
    pub fn new_unchecked(buf: T) -> Self {
        NdMessage { buf }
    }

    /// Wrap after [`NdMessage::check_len`].
    pub fn new_checked(buf: T) -> Result<Self, Truncated> {
        let m = Self::new_unchecked(buf);
        m.check_len()?;
        Ok(m)
    }

    /// The fixed part (through the target address) is there.
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

    /// ICMPv6 type (135 solicitation, 136 advertisement).
    pub fn msg_type(&self) -> u8 {
        self.buf.as_ref()[field::TYPE]
    }

    /// Code (0).
    pub fn code(&self) -> u8 {
        self.buf.as_ref()[field::CODE]
    }

    /// Checksum.
    pub fn checksum(&self) -> u16 {
        be16(self.buf.as_ref(), field::CHECKSUM)
    }

    /// An advertisement's router flag.
    pub fn router(&self) -> bool {
        self.buf.as_ref()[field::FLAGS] & ROUTER != 0
    }

    /// An advertisement's solicited flag.
    pub fn solicited(&self) -> bool {
        self.buf.as_ref()[field::FLAGS] & SOLICITED != 0
    }

    /// An advertisement's override flag.
    pub fn override_(&self) -> bool {
        self.buf.as_ref()[field::FLAGS] & OVERRIDE != 0
    }

    /// The target address.
    pub fn target(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buf.as_ref()[field::TARGET]);
        Ipv6Addr::from(a)
    }

    /// The options, as they are.
    pub fn options(&self) -> &[u8] {
        &self.buf.as_ref()[field::OPTIONS..]
    }

    /// The MAC of the first link-layer address option of `kind`
    /// ([`SOURCE_LINK_ADDR`], [`TARGET_LINK_ADDR`]); none when there is
    /// none, or when an option before it has a length of 0 or one that
    /// runs past the message (RFC 4861 4.6: such a message is invalid).
    pub fn link_layer_addr(&self, kind: u8) -> Option<Mac> {
        let mut opts = self.options();
        while opts.len() >= 8 {
            let len = opts[field::OPT_LEN] as usize * 8;
            if len == 0 || len > opts.len() {
                return None;
            }
            if opts[field::OPT_TYPE] == kind {
                return opts[field::OPT_LINK_ADDR].try_into().ok();
            }
            opts = &opts[len..];
        }
        None
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> NdMessage<T> {
    /// Set the type.
    pub fn set_msg_type(&mut self, v: u8) {
        self.buf.as_mut()[field::TYPE] = v;
    }

    /// Set the code.
    pub fn set_code(&mut self, v: u8) {
        self.buf.as_mut()[field::CODE] = v;
    }

    /// Set the checksum.
    pub fn set_checksum(&mut self, v: u16) {
        super::set_be16(self.buf.as_mut(), field::CHECKSUM, v);
    }

    /// Set an advertisement's flags (the rest of the four octets is
    /// reserved: zero).
    pub fn set_flags(&mut self, router: bool, solicited: bool, override_: bool) {
        let mut f = 0;
        for (on, bit) in [(router, ROUTER), (solicited, SOLICITED), (override_, OVERRIDE)] {
            if on {
                f |= bit;
            }
        }
        self.buf.as_mut()[field::RESERVED].copy_from_slice(&[f, 0, 0, 0]);
    }

    /// Set the target address.
    pub fn set_target(&mut self, a: Ipv6Addr) {
        self.buf.as_mut()[field::TARGET].copy_from_slice(&a.octets());
    }

    /// Write one link-layer address option of `kind` at the start of the
    /// options (eight octets).
    pub fn set_link_layer_addr(&mut self, kind: u8, mac: Mac) {
        let o = &mut self.buf.as_mut()[field::OPTIONS..field::OPTIONS + 8];
        o[field::OPT_TYPE] = kind;
        o[field::OPT_LEN] = 1;
        o[field::OPT_LINK_ADDR].copy_from_slice(&mac);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A solicitation for 2001:db8::1 from 02:00:00:00:00:02 (checksum
    /// left 0: it covers the IPv6 pseudo-header).
    static SOLICIT: [u8; 32] = [
        135, 0, 0x00, 0x00, // type, code, checksum
        0, 0, 0, 0, // reserved
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // target
        1, 1, 0x02, 0, 0, 0, 0, 0x02, // source link-layer address
    ];

    #[test]
    fn deconstruct() {
        let m = NdMessage::new_checked(&SOLICIT[..]).unwrap();
        assert_eq!(m.msg_type(), 135);
        assert_eq!(m.code(), 0);
        assert_eq!(m.checksum(), 0);
        assert!(!m.router() && !m.solicited() && !m.override_());
        assert_eq!(m.target(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(m.link_layer_addr(SOURCE_LINK_ADDR), Some([2, 0, 0, 0, 0, 2]));
        assert_eq!(m.link_layer_addr(TARGET_LINK_ADDR), None);
    }

    #[test]
    fn construct() {
        let mut buf = [0xa5u8; 32];
        let mut m = NdMessage::new_unchecked(&mut buf[..]);
        m.set_msg_type(135);
        m.set_code(0);
        m.set_checksum(0);
        m.set_flags(false, false, false);
        m.set_target("2001:db8::1".parse().unwrap());
        m.set_link_layer_addr(SOURCE_LINK_ADDR, [2, 0, 0, 0, 0, 2]);
        assert_eq!(buf, SOLICIT);
    }

    #[test]
    fn advert_flags() {
        let mut buf = SOLICIT;
        let mut m = NdMessage::new_unchecked(&mut buf[..]);
        m.set_msg_type(136);
        m.set_flags(false, true, true);
        assert_eq!(&buf[4..8], &[0x60, 0, 0, 0]);
        let m = NdMessage::new_checked(&buf[..]).unwrap();
        assert!(!m.router() && m.solicited() && m.override_());
    }

    #[test]
    fn bad_options_give_no_address() {
        let mut zero = SOLICIT;
        zero[25] = 0; // an option of length 0
        assert_eq!(NdMessage::new_checked(&zero[..]).unwrap().link_layer_addr(1), None);
        let mut long = SOLICIT;
        long[25] = 2; // 16 octets, past the message
        assert_eq!(NdMessage::new_checked(&long[..]).unwrap().link_layer_addr(1), None);
        let mut second = [0u8; 40];
        second[..32].copy_from_slice(&SOLICIT);
        second[32..40].copy_from_slice(&[2, 1, 2, 0, 0, 0, 0, 9]);
        assert_eq!(
            NdMessage::new_checked(&second[..]).unwrap().link_layer_addr(2),
            Some([2, 0, 0, 0, 0, 9])
        );
        assert_eq!(NdMessage::new_checked(&SOLICIT[..23]).err(), Some(Truncated));
    }
}
