//! ICMP (RFC 792) and ICMPv6 (RFC 4443) messages: the two share their
//! first eight octets' layout.
//!
//! ```text
//! +----------+----------+---------------------+-------------------------------+-------
//! | type (1) | code (1) | checksum (2)        | rest of header (4)            | data
//! +----------+----------+---------------------+-------------------------------+-------
//! ```
//!
//! For echo request and reply the rest of header is the identifier and
//! sequence number; for errors it is unused or a parameter (the MTU of
//! "fragmentation needed", a pointer); the data of an error quotes the
//! offending packet.

use super::{be16, set_be16, Truncated};

mod field {
    use super::super::Field;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const REST: Field = 4..8;
    pub const DATA: usize = 8;
}

/// Length of the header (type to rest of header).
pub const HEADER_LEN: usize = field::DATA;

/// ICMP types the engine tells apart.
pub mod types {
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable.
    pub const DEST_UNREACHABLE: u8 = 3;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
    /// Timestamp request.
    pub const TIMESTAMP: u8 = 13;
    /// Timestamp reply.
    pub const TIMESTAMP_REPLY: u8 = 14;

    /// ICMPv6: destination unreachable.
    pub const V6_DEST_UNREACHABLE: u8 = 1;
    /// ICMPv6: packet too big.
    pub const V6_PACKET_TOO_BIG: u8 = 2;
    /// ICMPv6: time exceeded.
    pub const V6_TIME_EXCEEDED: u8 = 3;
    /// ICMPv6 types below this are errors (RFC 4443 2.1).
    pub const V6_FIRST_INFORMATIONAL: u8 = 128;
    /// ICMPv6: echo request.
    pub const V6_ECHO_REQUEST: u8 = 128;
    /// ICMPv6: echo reply.
    pub const V6_ECHO_REPLY: u8 = 129;
    /// ICMPv6: neighbour solicitation (RFC 4861).
    pub const V6_NEIGHBOR_SOLICIT: u8 = 135;
    /// ICMPv6: neighbour advertisement (RFC 4861).
    pub const V6_NEIGHBOR_ADVERT: u8 = 136;

    /// Whether an ICMP (v4) message of type `t` is a query or its reply —
    /// one an error may be about (RFC 1812 4.3.2.7: never an error about
    /// an error).
    pub fn is_v4_query(t: u8) -> bool {
        matches!(t, ECHO_REPLY | ECHO_REQUEST | TIMESTAMP | TIMESTAMP_REPLY)
    }
}

/// A view over an ICMP or ICMPv6 message. See the [module](self)
/// documentation.
#[derive(Clone, Copy, Debug)]
pub struct IcmpMessage<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> IcmpMessage<T> {
    /// Wrap without checks: getters panic on a buffer shorter than
    /// [`HEADER_LEN`].
    pub fn new_unchecked(buf: T) -> Self {
        IcmpMessage { buf }
    }

    /// Wrap after [`IcmpMessage::check_len`].
    pub fn new_checked(buf: T) -> Result<Self, Truncated> {
        let m = Self::new_unchecked(buf);
        m.check_len()?;
        Ok(m)
    }

    /// The eight-octet header is there.
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

    /// Message type.
    pub fn msg_type(&self) -> u8 {
        self.buf.as_ref()[field::TYPE]
    }

    /// Code.
    pub fn code(&self) -> u8 {
        self.buf.as_ref()[field::CODE]
    }

    /// Checksum.
    pub fn checksum(&self) -> u16 {
        be16(self.buf.as_ref(), field::CHECKSUM)
    }

    /// The rest of the header (echo: identifier and sequence number).
    pub fn rest_of_header(&self) -> [u8; 4] {
        let mut r = [0; 4];
        r.copy_from_slice(&self.buf.as_ref()[field::REST]);
        r
    }

    /// What follows the header (echo: the data to return).
    pub fn data(&self) -> &[u8] {
        &self.buf.as_ref()[field::DATA..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpMessage<T> {
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
        set_be16(self.buf.as_mut(), field::CHECKSUM, v);
    }

    /// Set the rest of the header.
    pub fn set_rest_of_header(&mut self, v: [u8; 4]) {
        self.buf.as_mut()[field::REST].copy_from_slice(&v);
    }

    /// The data, to write.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf.as_mut()[field::DATA..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo request: identifier 0x1234, sequence 1, data "hi".
    static ECHO: [u8; 10] = [
        0x08, 0x00, 0x7d, 0x61, // echo request, code 0, checksum
        0x12, 0x34, 0x00, 0x01, // identifier, sequence
        b'h', b'i',
    ];

    #[test]
    fn deconstruct() {
        let m = IcmpMessage::new_checked(&ECHO[..]).unwrap();
        assert_eq!(m.msg_type(), types::ECHO_REQUEST);
        assert_eq!(m.code(), 0);
        assert_eq!(m.checksum(), 0x7d61);
        assert_eq!(m.rest_of_header(), [0x12, 0x34, 0x00, 0x01]);
        assert_eq!(m.data(), b"hi");
        assert_eq!(
            crate::checksum::sum(&ECHO, 0),
            0xffff,
            "the literal's checksum is right"
        );
    }

    #[test]
    fn construct() {
        let mut buf = [0xa5u8; 10];
        let mut m = IcmpMessage::new_unchecked(&mut buf[..]);
        m.set_msg_type(types::ECHO_REQUEST);
        m.set_code(0);
        m.set_checksum(0x7d61);
        m.set_rest_of_header([0x12, 0x34, 0x00, 0x01]);
        m.data_mut().copy_from_slice(b"hi");
        assert_eq!(buf, ECHO);
    }

    #[test]
    fn queries_and_truncation() {
        assert!(types::is_v4_query(types::ECHO_REQUEST) && types::is_v4_query(types::TIMESTAMP_REPLY));
        assert!(!types::is_v4_query(types::DEST_UNREACHABLE) && !types::is_v4_query(types::TIME_EXCEEDED));
        assert_eq!(IcmpMessage::new_checked(&ECHO[..7]).err(), Some(Truncated));
    }
}
