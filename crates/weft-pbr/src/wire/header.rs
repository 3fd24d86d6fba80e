//! The fixed header of every message: version, type, length, sequence
//! number.

use super::{be16, be32, msg, WireError, HEADER_LEN, VERSION};

mod field {
    pub type Field = core::ops::Range<usize>;
    pub const VERSION: usize = 0;
    pub const TYPE: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const SEQ: Field = 4..8;
}

/// A view over a PBR message's fixed header.
#[derive(Clone, Copy, Debug)]
pub struct HeaderView<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> HeaderView<T> {
    /// Wrap without checks (accessors panic on buffers shorter than
    /// [`HEADER_LEN`]).
    pub fn new_unchecked(buf: T) -> Self {
        HeaderView { buf }
    }

    /// Wrap after [`HeaderView::check`]: the way to look at outside bytes.
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let v = Self::new_unchecked(buf);
        v.check()?;
        Ok(v)
    }

    /// The header is there, the version is [`VERSION`], the type is
    /// assigned and the length field is the buffer's length.
    pub fn check(&self) -> Result<(), WireError> {
        let b = self.buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.version() != VERSION {
            return Err(WireError::Version(self.version()));
        }
        if !(msg::CREATE..=msg::ACK).contains(&self.msg_type()) {
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

    /// Version octet.
    pub fn version(&self) -> u8 {
        self.buf.as_ref()[field::VERSION]
    }
    /// Message type.
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
    /// The objects area.
    pub fn objects(&self) -> &[u8] {
        &self.buf.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> HeaderView<T> {
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
}
