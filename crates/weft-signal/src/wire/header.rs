//! The fixed header of every message: magic, version, type, length,
//! sequence number.

use super::{be16, be32, msg, WireError, HEADER_LEN, MAGIC, VERSION};

mod field {
    pub type Field = core::ops::Range<usize>;
    pub const MAGIC: Field = 0..4;
    pub const VERSION: usize = 4;
    pub const TYPE: usize = 5;
    pub const LENGTH: Field = 6..8;
    pub const SEQ: Field = 8..12;
}

/// A view over a signaling message's fixed header.
#[derive(Clone, Copy, Debug)]
pub struct HeaderView<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> HeaderView<T> {
    /// Wrap without checks (accessors panic on buffers shorter than
    /// [`HEADER_LEN`]). For emitting into a buffer of the right length.
    pub fn new_unchecked(buf: T) -> Self {
        HeaderView { buf }
    }

    /// Wrap after [`HeaderView::check`]: the way to look at outside bytes.
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let v = Self::new_unchecked(buf);
        v.check()?;
        Ok(v)
    }

    /// The header is there, starts with [`MAGIC`], the version is
    /// [`VERSION`], the type is assigned and the length field is the
    /// buffer's length.
    pub fn check(&self) -> Result<(), WireError> {
        let b = self.buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.magic() != MAGIC {
            return Err(WireError::Magic);
        }
        if self.version() != VERSION {
            return Err(WireError::Version(self.version()));
        }
        if !(msg::REQUEST..=msg::ACK).contains(&self.msg_type()) {
            return Err(WireError::UnknownType(self.msg_type()));
        }
        let l = self.length() as usize;
        if l != b.len() {
            return Err(WireError::BadLength {
                field: l,
                actual: b.len(),
            });
        }
        Ok(())
    }

    /// The magic number.
    pub fn magic(&self) -> [u8; 4] {
        let mut m = [0u8; 4];
        m.copy_from_slice(&self.buf.as_ref()[field::MAGIC]);
        m
    }
    /// Version octet.
    pub fn version(&self) -> u8 {
        self.buf.as_ref()[field::VERSION]
    }
    /// Message type ([`msg`]).
    pub fn msg_type(&self) -> u8 {
        self.buf.as_ref()[field::TYPE]
    }
    /// Length of the whole message, header included.
    pub fn length(&self) -> u16 {
        be16(&self.buf.as_ref()[field::LENGTH])
    }
    /// Sequence number (for an ACK: the one acknowledged).
    pub fn seq(&self) -> u32 {
        be32(&self.buf.as_ref()[field::SEQ])
    }
    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.buf.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> HeaderView<T> {
    /// Set the magic number.
    pub fn set_magic(&mut self, m: [u8; 4]) {
        self.buf.as_mut()[field::MAGIC].copy_from_slice(&m);
    }
    /// Set the version.
    pub fn set_version(&mut self, v: u8) {
        self.buf.as_mut()[field::VERSION] = v;
    }
    /// Set the type.
    pub fn set_msg_type(&mut self, v: u8) {
        self.buf.as_mut()[field::TYPE] = v;
    }
    /// Set the length.
    pub fn set_length(&mut self, v: u16) {
        self.buf.as_mut()[field::LENGTH].copy_from_slice(&v.to_be_bytes());
    }
    /// Set the sequence number.
    pub fn set_seq(&mut self, v: u32) {
        self.buf.as_mut()[field::SEQ].copy_from_slice(&v.to_be_bytes());
    }
    /// The body, to write.
    pub fn body_mut(&mut self) -> &mut [u8] {
        &mut self.buf.as_mut()[HEADER_LEN..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ACK of sequence number 0x01020304: the header alone.
    #[rustfmt::skip]
    static ACK_BYTES: [u8; 12] = [
        b'W', b'F', b'S', b'G', // magic
        0x01,                   // version 1
        0x03,                   // ACK
        0x00, 0x0c,             // length 12
        0x01, 0x02, 0x03, 0x04, // sequence number
    ];

    #[test]
    fn deconstruct() {
        let h = HeaderView::new_checked(&ACK_BYTES[..]).unwrap();
        assert_eq!(h.magic(), MAGIC);
        assert_eq!(h.version(), 1);
        assert_eq!(h.msg_type(), msg::ACK);
        assert_eq!(h.length(), 12);
        assert_eq!(h.seq(), 0x0102_0304);
        assert!(h.body().is_empty());
    }

    #[test]
    fn construct() {
        let mut b = [0xa5u8; 12];
        let mut h = HeaderView::new_unchecked(&mut b[..]);
        h.set_magic(MAGIC);
        h.set_version(VERSION);
        h.set_msg_type(msg::ACK);
        h.set_length(12);
        h.set_seq(0x0102_0304);
        assert_eq!(b, ACK_BYTES);
    }

    #[test]
    fn cut_header_is_truncated() {
        assert_eq!(
            HeaderView::new_checked(&ACK_BYTES[..HEADER_LEN - 1]).unwrap_err(),
            WireError::Truncated
        );
    }

    #[test]
    fn bad_magic_version_type_and_length() {
        let mut b = ACK_BYTES;
        b[0] = b'X';
        assert_eq!(HeaderView::new_checked(&b[..]).unwrap_err(), WireError::Magic);
        let mut b = ACK_BYTES;
        b[4] = 2;
        assert_eq!(HeaderView::new_checked(&b[..]).unwrap_err(), WireError::Version(2));
        let mut b = ACK_BYTES;
        b[5] = 9;
        assert_eq!(HeaderView::new_checked(&b[..]).unwrap_err(), WireError::UnknownType(9));
        let mut b = ACK_BYTES.to_vec();
        b.push(0);
        assert_eq!(
            HeaderView::new_checked(&b[..]).unwrap_err(),
            WireError::BadLength { field: 12, actual: 13 }
        );
    }
}
