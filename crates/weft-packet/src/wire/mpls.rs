//! One MPLS label stack entry (RFC 3032 2.1), and what follows it.
//!
//! ```text
//!  0                                       20        23 24           31
//! +-----------------------------------------+---------+--+--------------+
//! |                label (20)               | TC (3)  |S |   TTL (8)    |
//! +-----------------------------------------+---------+--+--------------+
//! ```
//!
//! `S` marks the bottom of the stack: what follows is the payload (an IP
//! packet for Weft's explicit paths), not another entry.

use super::Truncated;

mod field {
    use super::super::Field;
    pub const ENTRY: Field = 0..4;
    pub const PAYLOAD: usize = 4;
}

/// Length of one entry.
pub const ENTRY_LEN: usize = field::PAYLOAD;
/// Largest label: labels are 20 bits (RFC 3032).
pub const MAX_LABEL: u32 = (1 << 20) - 1;
/// Labels 0–15 are reserved (RFC 3032); Weft allocates from here (the
/// engine's label table and the PBR protocol share this one definition).
pub const FIRST_LABEL: u32 = 16;
/// UDP port of MPLS-in-UDP (RFC 7510): loose segments of explicit paths.
pub const MPLS_UDP_PORT: u16 = 6635;

const LABEL_SHIFT: u32 = 12;
const TC_SHIFT: u32 = 9;
const BOTTOM: u32 = 1 << 8;

/// A view over a label stack entry. See the [module](self) documentation.
#[derive(Clone, Copy, Debug)]
pub struct MplsEntry<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> MplsEntry<T> {
    /// Wrap without checks: getters panic on a buffer shorter than
    /// [`ENTRY_LEN`].
    pub fn new_unchecked(buf: T) -> Self {
        MplsEntry { buf }
    }

    /// Wrap after [`MplsEntry::check_len`].
    pub fn new_checked(buf: T) -> Result<Self, Truncated> {
        let e = Self::new_unchecked(buf);
        e.check_len()?;
        Ok(e)
    }

    /// The entry is there.
    pub fn check_len(&self) -> Result<(), Truncated> {
        if self.buf.as_ref().len() < ENTRY_LEN {
            return Err(Truncated);
        }
        Ok(())
    }

    /// The buffer back.
    pub fn into_inner(self) -> T {
        self.buf
    }

    fn word(&self) -> u32 {
        let b = &self.buf.as_ref()[field::ENTRY];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The label.
    pub fn label(&self) -> u32 {
        self.word() >> LABEL_SHIFT
    }

    /// Traffic class (the former EXP bits).
    pub fn traffic_class(&self) -> u8 {
        (self.word() >> TC_SHIFT) as u8 & 7
    }

    /// Bottom of stack: what follows is the payload.
    pub fn bottom(&self) -> bool {
        self.word() & BOTTOM != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.word() as u8
    }

    /// What follows the entry.
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> MplsEntry<T> {
    /// Write the whole entry: label (its low 20 bits), traffic class (its
    /// low 3 bits), bottom of stack, TTL.
    pub fn set(&mut self, label: u32, traffic_class: u8, bottom: bool, ttl: u8) {
        let mut w = ((label & MAX_LABEL) << LABEL_SHIFT) | (((traffic_class & 7) as u32) << TC_SHIFT) | ttl as u32;
        if bottom {
            w |= BOTTOM;
        }
        self.buf.as_mut()[field::ENTRY].copy_from_slice(&w.to_be_bytes());
    }

    /// What follows the entry, to write.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buf.as_mut()[field::PAYLOAD..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Label 16, traffic class 5, bottom of stack, TTL 63, then the first
    /// octet of an IPv4 header.
    static ENTRY: [u8; 5] = [0x00, 0x01, 0x0b, 0x3f, 0x45];

    #[test]
    fn deconstruct() {
        let e = MplsEntry::new_checked(&ENTRY[..]).unwrap();
        assert_eq!(e.label(), 16);
        assert_eq!(e.traffic_class(), 5);
        assert!(e.bottom());
        assert_eq!(e.ttl(), 63);
        assert_eq!(e.payload(), &[0x45]);
    }

    #[test]
    fn construct() {
        let mut buf = [0xa5u8; 5];
        let mut e = MplsEntry::new_unchecked(&mut buf[..]);
        e.set(16, 5, true, 63);
        e.payload_mut()[0] = 0x45;
        assert_eq!(buf, ENTRY);
    }

    #[test]
    fn extremes() {
        let mut buf = [0u8; 4];
        MplsEntry::new_unchecked(&mut buf[..]).set(MAX_LABEL, 0, false, 255);
        let e = MplsEntry::new_checked(&buf[..]).unwrap();
        assert_eq!((e.label(), e.bottom(), e.ttl()), (MAX_LABEL, false, 255));
        assert_eq!(buf, [0xff, 0xff, 0xf0, 0xff]);
        assert_eq!(MplsEntry::new_checked(&ENTRY[..3]).err(), Some(Truncated));
    }
}
