//! Ethernet II (IEEE 802.3 with an ethertype).
//!
//! ```text
//! +------------------+------------------+-----------+---------
//! | destination (6)  | source (6)       | type (2)  | payload
//! +------------------+------------------+-----------+---------
//! ```

use super::{be16, set_be16, Truncated};
use crate::Mac;

mod field {
    use super::super::Field;
    pub const DST: Field = 0..6;
    pub const SRC: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
    pub const PAYLOAD: usize = 14;
}

/// Length of the header.
pub const HEADER_LEN: usize = field::PAYLOAD;

/// A view over an Ethernet II frame. See the [module](self) documentation.
#[derive(Clone, Copy, Debug)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wrap without checks: getters panic on a buffer shorter than
    /// [`HEADER_LEN`].
    pub fn new_unchecked(buf: T) -> Self {
        EthernetFrame { buf }
    }

    /// Wrap after [`EthernetFrame::check_len`].
    pub fn new_checked(buf: T) -> Result<Self, Truncated> {
        let f = Self::new_unchecked(buf);
        f.check_len()?;
        Ok(f)
    }

    /// The header is there.
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

    /// Destination address.
    pub fn dst(&self) -> Mac {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buf.as_ref()[field::DST]);
        m
    }

    /// Source address.
    pub fn src(&self) -> Mac {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buf.as_ref()[field::SRC]);
        m
    }

    /// Ethertype.
    pub fn ethertype(&self) -> u16 {
        be16(self.buf.as_ref(), field::ETHERTYPE)
    }

    /// What follows the header.
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Set the destination address.
    pub fn set_dst(&mut self, m: Mac) {
        self.buf.as_mut()[field::DST].copy_from_slice(&m);
    }

    /// Set the source address.
    pub fn set_src(&mut self, m: Mac) {
        self.buf.as_mut()[field::SRC].copy_from_slice(&m);
    }

    /// Set the ethertype.
    pub fn set_ethertype(&mut self, v: u16) {
        set_be16(self.buf.as_mut(), field::ETHERTYPE, v);
    }

    /// What follows the header, to write.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buf.as_mut()[field::PAYLOAD..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static FRAME: [u8; 16] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // destination
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // source
        0x88, 0x47, // MPLS
        0xaa, 0xbb, // payload
    ];

    #[test]
    fn deconstruct() {
        let f = EthernetFrame::new_checked(&FRAME[..]).unwrap();
        assert_eq!(f.dst(), [2, 0, 0, 0, 0, 1]);
        assert_eq!(f.src(), [2, 0, 0, 0, 0, 2]);
        assert_eq!(f.ethertype(), 0x8847);
        assert_eq!(f.payload(), &[0xaa, 0xbb]);
    }

    #[test]
    fn construct() {
        let mut buf = [0xa5u8; 16];
        let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
        f.set_dst([2, 0, 0, 0, 0, 1]);
        f.set_src([2, 0, 0, 0, 0, 2]);
        f.set_ethertype(0x8847);
        f.payload_mut().copy_from_slice(&[0xaa, 0xbb]);
        assert_eq!(buf, FRAME);
    }

    #[test]
    fn truncated() {
        assert_eq!(EthernetFrame::new_checked(&FRAME[..13]).err(), Some(Truncated));
        assert!(EthernetFrame::new_checked(&FRAME[..14]).is_ok());
    }
}
