//! ESP (RFC 4303) with ChaCha20-Poly1305 (RFC 7634): the wire format, one
//! security association's sealing and opening, and the anti-replay window.
//! The `encrypt` and `decrypt` elements ([`crate::crypto`]) build tunnel
//! mode on these.
//!
//! ```text
//!  0                   1                   2                   3
//! +---------------------------------------------------------------+
//! |               Security Parameters Index (SPI)                 |
//! +---------------------------------------------------------------+
//! |              Sequence Number (low 32 bits with ESN)           |
//! +---------------------------------------------------------------+
//! |                  IV (8 octets, RFC 7634 2)                    |
//! +---------------------------------------------------------------+  -.
//! ~       Payload (tunnel mode: the whole inner IP packet)        ~   |
//! +               +-----------------------------------------------+   | encrypted
//! |               |   Padding 1, 2, 3 (to a multiple of 4)        |   |
//! +---------------+-------------------------------+---------------+   |
//! |                               |  Pad Length   |  Next Header  |   |
//! +-------------------------------+---------------+---------------+  -'
//! |               ICV: the Poly1305 tag (16 octets)               |
//! +---------------------------------------------------------------+
//! ```
//!
//! * **Cipher** (RFC 7634 2): the AEAD ChaCha20-Poly1305 of RFC 8439 keyed
//!   with the 32-octet key of the SA's 36-octet keying material; the nonce
//!   is the material's last 4 octets (the salt) followed by the 8-octet IV
//!   carried in the packet.
//! * **Associated data** (RFC 7634 2.1): the SPI and the sequence number —
//!   8 octets with 32-bit sequence numbers, 12 with extended sequence
//!   numbers (ESN, RFC 4303 2.2.1: the full 64-bit number, whose high half
//!   is never sent).
//! * **Padding** (RFC 4303 2.4): the octets 1, 2, 3, … so that payload,
//!   padding and the two trailer octets fill a multiple of 4 octets (ChaCha20
//!   is a stream cipher: no more is needed); [`Sa::open`] checks them.
//! * **Anti-replay** ([`ReplayWindow`], RFC 4303 3.4.3 and appendix A): a
//!   sliding bitmap of [`WINDOW`] sequence numbers, checked before the ICV
//!   (cheap rejection) and moved only by packets that authenticated.
//!
//! [`EspPacket`] is the view over the header (getters in one `impl`,
//! setters in another, byte ranges in a private `mod field`). Outside
//! bytes only go through [`EspPacket::new_checked`], [`Sa::open`] and
//! [`ReplayWindow::check`], which return an [`EspError`] and never panic
//! ([`fuzz_esp`](crate::crypto::fuzz_esp), beside the elements it also
//! drives, is the fuzz target `esp_decap` and a property test).

// The AEAD is `ring`'s ChaCha20-Poly1305 (assembly per CPU): the pure-Rust
// `chacha20poly1305` 0.11 measured 1.5 µs per 64-byte packet here (its AVX2
// intrinsics were not inlined), `ring` about 0.2 µs; both implement RFC 8439,
// which RFC 7634 uses unchanged (appendix A's example is a test below).
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};

mod field {
    pub type Field = core::ops::Range<usize>;
    pub const SPI: Field = 0..4;
    pub const SEQ: Field = 4..8;
    pub const IV: Field = 8..16;
    pub const PAYLOAD: usize = 16;
}

/// Octets in front of the encrypted payload: SPI, sequence number, IV.
pub const HEADER_LEN: usize = field::PAYLOAD;
/// The ICV (the Poly1305 tag).
pub const ICV_LEN: usize = 16;
/// Pad Length and Next Header.
pub const TRAILER_LEN: usize = 2;
/// Shortest ESP packet: header, an empty payload padded to 4 octets, ICV.
pub const MIN_LEN: usize = HEADER_LEN + 4 + ICV_LEN;
/// Keying material per SA (RFC 7634 2): 32-octet key, 4-octet salt.
pub const KEYMAT_LEN: usize = 36;
/// Sequence numbers the anti-replay window remembers (RFC 4303 3.4.3 asks
/// for at least 32 and recommends 64; 128 tolerates the reordering of a
/// few batches between two nodes).
pub const WINDOW: u64 = 128;
/// Next Header of a tunnelled IPv4 packet.
pub const NEXT_IPV4: u8 = 4;
/// Next Header of a tunnelled IPv6 packet.
pub const NEXT_IPV6: u8 = 41;
/// Next Header of a dummy packet (RFC 4303 2.6), discarded on receipt.
pub const NEXT_NONE: u8 = 59;
/// IP protocol number of ESP.
pub const PROTO_ESP: u8 = 50;

/// What is wrong with an ESP packet. [`EspError::as_str`] names the
/// counter each one is counted under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EspError {
    /// Shorter than [`MIN_LEN`] (or, when sealing, a buffer of the wrong
    /// length).
    #[error("truncated ESP packet")]
    Truncated,
    /// The encrypted part is not a multiple of 4 octets (RFC 4303 2.4).
    #[error("ESP payload not a multiple of 4 octets")]
    Misaligned,
    /// Another SA's packet.
    #[error("SPI {0:#010x} is not this SA's")]
    Spi(u32),
    /// A sequence number already received.
    #[error("replayed sequence number")]
    Replayed,
    /// A sequence number left of the window (or 0, never sent).
    #[error("sequence number too old for the replay window")]
    TooOld,
    /// The ICV does not verify: altered, another key, or a wrong guess of
    /// the high half of an extended sequence number.
    #[error("ICV does not verify")]
    Auth,
    /// Authentic, but the padding is not 1, 2, 3, … or longer than the
    /// payload.
    #[error("bad ESP padding")]
    Padding,
    /// Authentic, but carrying neither IPv4 (4) nor IPv6 (41) — e.g. a
    /// transport-mode packet.
    #[error("ESP next header {0} is not a tunnelled IP packet")]
    NextHeader(u8),
    /// Authentic dummy packet (next header 59), discarded.
    #[error("ESP dummy packet")]
    Dummy,
    /// The sender used up its sequence numbers (32-bit, no ESN): a new SA
    /// (key) is needed.
    #[error("sequence numbers exhausted: configure a new key")]
    SeqExhausted,
}

impl EspError {
    /// Counter name.
    pub fn as_str(self) -> &'static str {
        match self {
            EspError::Truncated | EspError::Misaligned => "malformed",
            EspError::Spi(_) => "bad_spi",
            EspError::Replayed => "replayed",
            EspError::TooOld => "too_old",
            EspError::Auth => "auth_failed",
            EspError::Padding => "bad_padding",
            EspError::NextHeader(_) => "bad_next_header",
            EspError::Dummy => "dummy",
            EspError::SeqExhausted => "seq_exhausted",
        }
    }
}

/// A view over an ESP packet (from the SPI to the end of the ICV).
#[derive(Debug, Clone)]
pub struct EspPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EspPacket<T> {
    /// A view without checks: getters may panic on a short buffer. For
    /// buffers this code sized itself (emitting); outside bytes go through
    /// [`EspPacket::new_checked`].
    pub fn new_unchecked(buffer: T) -> Self {
        EspPacket { buffer }
    }

    /// A view over outside bytes: long enough for header, trailer and ICV,
    /// encrypted part a multiple of 4 octets.
    pub fn new_checked(buffer: T) -> Result<Self, EspError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// The checks of [`EspPacket::new_checked`].
    pub fn check_len(&self) -> Result<(), EspError> {
        let len = self.buffer.as_ref().len();
        if len < MIN_LEN {
            return Err(EspError::Truncated);
        }
        if !(len - HEADER_LEN - ICV_LEN).is_multiple_of(4) {
            return Err(EspError::Misaligned);
        }
        Ok(())
    }

    /// Security Parameters Index.
    pub fn spi(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::SPI])
    }

    /// Sequence number as sent (the low half with ESN).
    pub fn seq(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::SEQ])
    }

    /// The IV (the nonce's last 8 octets).
    pub fn iv(&self) -> [u8; 8] {
        let mut iv = [0u8; 8];
        iv.copy_from_slice(&self.buffer.as_ref()[field::IV]);
        iv
    }

    /// The encrypted part: payload, padding, Pad Length, Next Header.
    pub fn ciphertext(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[field::PAYLOAD..b.len() - ICV_LEN]
    }

    /// The ICV.
    pub fn icv(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[b.len() - ICV_LEN..]
    }

    /// The buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EspPacket<T> {
    /// Set the SPI.
    pub fn set_spi(&mut self, v: u32) {
        self.buffer.as_mut()[field::SPI].copy_from_slice(&v.to_be_bytes());
    }

    /// Set the sequence number field.
    pub fn set_seq(&mut self, v: u32) {
        self.buffer.as_mut()[field::SEQ].copy_from_slice(&v.to_be_bytes());
    }

    /// Set the IV.
    pub fn set_iv(&mut self, v: [u8; 8]) {
        self.buffer.as_mut()[field::IV].copy_from_slice(&v);
    }
}

fn be32(b: &[u8]) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(b);
    u32::from_be_bytes(w)
}

/// Octets payload, padding and trailer take: a multiple of 4.
pub fn padded_len(payload_len: usize) -> usize {
    (payload_len + TRAILER_LEN + 3) & !3
}

/// Octets an ESP packet carrying `payload_len` octets takes (header to ICV).
pub fn esp_len(payload_len: usize) -> usize {
    HEADER_LEN + padded_len(payload_len) + ICV_LEN
}

/// The longest payload whose ESP packet fits in `room` octets (0 when
/// none does): the inverse of [`esp_len`].
pub fn max_payload(room: usize) -> usize {
    let aligned = room.saturating_sub(HEADER_LEN + ICV_LEN) & !3;
    aligned.saturating_sub(TRAILER_LEN)
}

/// One security association: keying material, SPI, sequence-number width.
/// Seals and opens; the sequence numbers and the IVs are the caller's
/// (the elements keep them, with the window).
pub struct Sa {
    cipher: LessSafeKey,
    salt: [u8; 4],
    spi: u32,
    esn: bool,
}

impl std::fmt::Debug for Sa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Sa")
            .field("spi", &format_args!("{:#010x}", self.spi))
            .field("esn", &self.esn)
            .finish_non_exhaustive()
    }
}

impl Sa {
    /// An SA from its 36 octets of keying material (key, then salt).
    pub fn new(keymat: &[u8; KEYMAT_LEN], spi: u32, esn: bool) -> Sa {
        let mut salt = [0u8; 4];
        salt.copy_from_slice(&keymat[32..]);
        // A 32-octet key is all ChaCha20-Poly1305 asks for: this cannot fail.
        let cipher = match UnboundKey::new(&CHACHA20_POLY1305, &keymat[..32]) {
            Ok(k) => LessSafeKey::new(k),
            Err(_) => unreachable!("ChaCha20-Poly1305 takes 32-octet keys"),
        };
        Sa { cipher, salt, spi, esn }
    }

    /// The SPI.
    pub fn spi(&self) -> u32 {
        self.spi
    }

    /// Whether sequence numbers are 64 bits (ESN).
    pub fn esn(&self) -> bool {
        self.esn
    }

    fn nonce(&self, iv: [u8; 8]) -> Nonce {
        let mut n = [0u8; 12];
        n[..4].copy_from_slice(&self.salt);
        n[4..].copy_from_slice(&iv);
        Nonce::assume_unique_for_key(n)
    }

    /// The associated data: 8 octets, or 12 with ESN.
    fn aad(&self, seq: u64) -> ([u8; 12], usize) {
        let mut a = [0u8; 12];
        a[..4].copy_from_slice(&self.spi.to_be_bytes());
        if self.esn {
            a[4..].copy_from_slice(&seq.to_be_bytes());
            (a, 12)
        } else {
            a[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
            (a, 8)
        }
    }

    /// Seal `esp` in place: it is exactly [`esp_len`]`(payload_len)` octets
    /// with the payload at [`HEADER_LEN`]; header, padding, trailer and ICV
    /// are written here. `iv` must never repeat under this key.
    pub fn seal(
        &self,
        seq: u64,
        iv: [u8; 8],
        next_header: u8,
        payload_len: usize,
        esp: &mut [u8],
    ) -> Result<(), EspError> {
        if esp.len() != esp_len(payload_len) {
            return Err(EspError::Truncated);
        }
        if !self.esn && seq > u64::from(u32::MAX) {
            return Err(EspError::SeqExhausted);
        }
        let mut p = EspPacket::new_unchecked(&mut *esp);
        p.set_spi(self.spi);
        p.set_seq(seq as u32);
        p.set_iv(iv);
        let ct_end = esp.len() - ICV_LEN;
        let pad_end = ct_end - TRAILER_LEN;
        let pad_start = HEADER_LEN + payload_len;
        for (i, b) in esp[pad_start..pad_end].iter_mut().enumerate() {
            *b = i as u8 + 1;
        }
        esp[pad_end] = (pad_end - pad_start) as u8;
        esp[pad_end + 1] = next_header;
        let (aad, n) = self.aad(seq);
        let (body, icv) = esp[HEADER_LEN..].split_at_mut(ct_end - HEADER_LEN);
        let tag = self
            .cipher
            .seal_in_place_separate_tag(self.nonce(iv), Aad::from(&aad[..n]), body)
            // Only a message over 256 GiB could fail.
            .map_err(|_| EspError::Truncated)?;
        icv.copy_from_slice(tag.as_ref());
        Ok(())
    }

    /// Verify and decrypt `esp` (SPI to ICV) in place, `seq` being the full
    /// sequence number [`ReplayWindow::check`] inferred. Returns the
    /// payload's length (it starts at [`HEADER_LEN`]) and the Next Header.
    /// Nothing is decrypted unless the ICV verifies.
    pub fn open(&self, seq: u64, esp: &mut [u8]) -> Result<(usize, u8), EspError> {
        let p = EspPacket::new_checked(&*esp)?;
        if p.spi() != self.spi {
            return Err(EspError::Spi(p.spi()));
        }
        let iv = p.iv();
        let (aad, n) = self.aad(seq);
        let plain = self
            .cipher
            .open_in_place(self.nonce(iv), Aad::from(&aad[..n]), &mut esp[HEADER_LEN..])
            .map_err(|_| EspError::Auth)?;
        let len = plain.len();
        let (pad_len, next) = (plain[len - 2] as usize, plain[len - 1]);
        if pad_len + TRAILER_LEN > len {
            return Err(EspError::Padding);
        }
        let payload_len = len - TRAILER_LEN - pad_len;
        let pad_ok = plain[payload_len..len - TRAILER_LEN]
            .iter()
            .enumerate()
            .all(|(i, b)| *b == i as u8 + 1);
        if !pad_ok {
            return Err(EspError::Padding);
        }
        match next {
            NEXT_IPV4 | NEXT_IPV6 => Ok((payload_len, next)),
            NEXT_NONE => Err(EspError::Dummy),
            n => Err(EspError::NextHeader(n)),
        }
    }
}

/// The receiver's anti-replay window (RFC 4303 3.4.3; with ESN, appendix
/// A2 infers the unsent high half of the sequence number from the
/// window's position).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReplayWindow {
    /// The highest sequence number authenticated so far (0: none yet).
    top: u64,
    /// Bit *i*: `top − i` was received.
    bits: u128,
}

impl ReplayWindow {
    /// The highest sequence number received so far (0: none).
    pub fn top(&self) -> u64 {
        self.top
    }

    /// The full sequence number of a packet that carries `low`, if the
    /// window admits it: new, or inside the window and not yet seen.
    /// Checked before the ICV; [`ReplayWindow::accept`] after it.
    pub fn check(&self, low: u32, esn: bool) -> Result<u64, EspError> {
        let seq = if esn { self.infer(low)? } else { u64::from(low) };
        if seq == 0 {
            // Sequence numbers start at 1 (RFC 4303 3.3.3).
            return Err(EspError::TooOld);
        }
        if seq > self.top {
            return Ok(seq);
        }
        let behind = self.top - seq;
        if behind >= WINDOW {
            return Err(EspError::TooOld);
        }
        if self.bits & (1u128 << behind) != 0 {
            return Err(EspError::Replayed);
        }
        Ok(seq)
    }

    /// RFC 4303 appendix A2.2: the high half is the window top's, or one
    /// more when `low` is left of the window's low end within the same
    /// 2^32 subspace (the counter wrapped past the top), or one less when
    /// the window straddles a subspace boundary and `low` lies before it.
    fn infer(&self, low: u32) -> Result<u64, EspError> {
        let (tl, th) = (self.top as u32, self.top >> 32);
        let w = WINDOW as u32;
        let high = if tl >= w - 1 {
            if low >= tl - (w - 1) {
                th
            } else {
                th + 1
            }
        } else if low >= tl.wrapping_sub(w - 1) {
            // Before the boundary: the previous subspace.
            th.checked_sub(1).ok_or(EspError::TooOld)?
        } else {
            th
        };
        Ok(high << 32 | u64::from(low))
    }

    /// Record `seq` (which [`ReplayWindow::check`] admitted and whose ICV
    /// verified).
    pub fn accept(&mut self, seq: u64) {
        if seq > self.top {
            let shift = seq - self.top;
            self.bits = if shift >= WINDOW { 0 } else { self.bits << shift };
            self.bits |= 1;
            self.top = seq;
        } else if self.top - seq < WINDOW {
            self.bits |= 1u128 << (self.top - seq);
        }
    }
}

/// The keying material [`fuzz_esp`](crate::crypto::fuzz_esp) opens with:
/// RFC 7634 appendix A's.
pub(crate) const FUZZ_KEYMAT: [u8; KEYMAT_LEN] = {
    let mut k = [0u8; KEYMAT_LEN];
    let mut i = 0;
    while i < KEYMAT_LEN {
        k[i] = 0x80 + i as u8;
        i += 1;
    }
    k
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::fuzz_esp;
    use proptest::prelude::*;

    /// RFC 7634 appendix A: keying material 0x80…0x9f, salt a0 a1 a2 a3.
    const KEYMAT: [u8; KEYMAT_LEN] = FUZZ_KEYMAT;

    /// RFC 7634 appendix A: the tunnelled packet (an ICMP echo request,
    /// 198.51.100.5 → 192.0.2.5), followed by the padding and trailer the
    /// appendix shows (`01 02`, pad length 2, next header 4).
    static INNER: [u8; 88] = [
        0x45, 0x00, 0x00, 0x54, 0xa6, 0xf2, 0x00, 0x00, 0x40, 0x01, 0xe7, 0x78, 0xc6, 0x33, 0x64, 0x05, //
        0xc0, 0x00, 0x02, 0x05, 0x08, 0x00, 0x5b, 0x7a, 0x3a, 0x08, 0x00, 0x00, 0x55, 0x3b, 0xec, 0x10, //
        0x00, 0x07, 0x36, 0x27, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, //
        0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, //
        0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, //
        0x34, 0x35, 0x36, 0x37, 0x01, 0x02, 0x02, 0x04,
    ];

    /// RFC 7634 appendix A: the ESP packet for SPI 0x01020304, sequence
    /// number 5 (32-bit), IV 10 11 … 17 — header, ciphertext, ICV.
    static ESP: [u8; 120] = [
        0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x05, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, //
        0x24, 0x03, 0x94, 0x28, 0xb9, 0x7f, 0x41, 0x7e, 0x3c, 0x13, 0x75, 0x3a, 0x4f, 0x05, 0x08, 0x7b, //
        0x67, 0xc3, 0x52, 0xe6, 0xa7, 0xfa, 0xb1, 0xb9, 0x82, 0xd4, 0x66, 0xef, 0x40, 0x7a, 0xe5, 0xc6, //
        0x14, 0xee, 0x80, 0x99, 0xd5, 0x28, 0x44, 0xeb, 0x61, 0xaa, 0x95, 0xdf, 0xab, 0x4c, 0x02, 0xf7, //
        0x2a, 0xa7, 0x1e, 0x7c, 0x4c, 0x4f, 0x64, 0xc9, 0xbe, 0xfe, 0x2f, 0xac, 0xc6, 0x38, 0xe8, 0xf3, //
        0xcb, 0xec, 0x16, 0x3f, 0xac, 0x46, 0x9b, 0x50, 0x27, 0x73, 0xf6, 0xfb, 0x94, 0xe6, 0x64, 0xda, //
        0x91, 0x65, 0xb8, 0x28, 0x29, 0xf6, 0x41, 0xe0, 0x76, 0xaa, 0xa8, 0x26, 0x6b, 0x7f, 0xb0, 0xf7, //
        0xb1, 0x1b, 0x36, 0x99, 0x07, 0xe1, 0xad, 0x43,
    ];

    const IV: [u8; 8] = [0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17];

    #[test]
    fn deconstruct() {
        let p = EspPacket::new_checked(&ESP[..]).unwrap();
        assert_eq!(p.spi(), 0x0102_0304);
        assert_eq!(p.seq(), 5);
        assert_eq!(p.iv(), IV);
        assert_eq!(p.ciphertext(), &ESP[16..104]);
        assert_eq!(p.icv(), &ESP[104..]);
    }

    #[test]
    fn construct_rfc7634_vector() {
        // Pre-filled with 0xa5 so anything left unwritten shows.
        let mut buf = vec![0xa5u8; esp_len(84) + 4];
        assert_eq!(esp_len(84), ESP.len());
        buf[HEADER_LEN..HEADER_LEN + 84].copy_from_slice(&INNER[..84]);
        let sa = Sa::new(&KEYMAT, 0x0102_0304, false);
        sa.seal(5, IV, NEXT_IPV4, 84, &mut buf[..ESP.len()]).unwrap();
        assert_eq!(&buf[..ESP.len()], &ESP[..], "RFC 7634 appendix A");
        assert_eq!(buf[ESP.len()..], [0xa5; 4], "nothing written past the packet");
    }

    #[test]
    fn parse_rfc7634_vector() {
        let sa = Sa::new(&KEYMAT, 0x0102_0304, false);
        let mut b = ESP;
        assert_eq!(sa.open(5, &mut b), Ok((84, NEXT_IPV4)));
        assert_eq!(&b[HEADER_LEN..HEADER_LEN + 88], &INNER[..]);
        // The sequence number is authenticated: another one fails, and so
        // does the same one read as the low half of a 64-bit (ESN) number.
        let mut b = ESP;
        assert_eq!(sa.open(6, &mut b), Err(EspError::Auth));
        let esn = Sa::new(&KEYMAT, 0x0102_0304, true);
        let mut b = ESP;
        assert_eq!(esn.open(5, &mut b), Err(EspError::Auth));
        // ring wipes the buffer of a packet that fails: no plaintext is
        // ever exposed.
        assert!(
            !b.windows(8).any(|w| w == &INNER[..8]),
            "nothing is decrypted unless the ICV verifies"
        );
    }

    #[test]
    fn esn_adds_the_high_half_to_the_aad() {
        let sa = Sa::new(&KEYMAT, 0x0102_0304, true);
        let seq = (7u64 << 32) | 5;
        let mut b = vec![0u8; esp_len(84)];
        b[HEADER_LEN..HEADER_LEN + 84].copy_from_slice(&INNER[..84]);
        sa.seal(seq, IV, NEXT_IPV4, 84, &mut b).unwrap();
        // Only the low half is on the wire.
        assert_eq!(&b[..8], &[1, 2, 3, 4, 0, 0, 0, 5]);
        // Same ciphertext as without ESN (same nonce), another ICV.
        assert_eq!(&b[16..104], &ESP[16..104]);
        assert_ne!(&b[104..], &ESP[104..]);
        let mut c = b.clone();
        assert_eq!(sa.open(5, &mut c), Err(EspError::Auth));
        assert_eq!(sa.open(seq, &mut b), Ok((84, NEXT_IPV4)));
    }

    #[test]
    fn malformed_packets() {
        let sa = Sa::new(&KEYMAT, 0x0102_0304, false);
        assert_eq!(
            EspPacket::new_checked(&ESP[..MIN_LEN - 1]).err(),
            Some(EspError::Truncated)
        );
        assert_eq!(
            EspPacket::new_checked(&ESP[..ESP.len() - 1]).err(),
            Some(EspError::Misaligned)
        );
        let mut b = ESP;
        b[3] = 5;
        assert_eq!(sa.open(5, &mut b), Err(EspError::Spi(0x0102_0305)));
        for at in [8, 16, 60, 103, 104, 119] {
            let mut b = ESP;
            b[at] ^= 0x40;
            assert_eq!(sa.open(5, &mut b), Err(EspError::Auth), "flipped octet {at}");
        }
        // Authentic but badly padded, or carrying something else: the AEAD
        // over a hand-made plaintext.
        let raw = |plain: &[u8]| {
            let mut b = vec![0u8; HEADER_LEN + plain.len() + ICV_LEN];
            b[..4].copy_from_slice(&0x0102_0304u32.to_be_bytes());
            b[4..8].copy_from_slice(&9u32.to_be_bytes());
            b[8..16].copy_from_slice(&IV);
            b[HEADER_LEN..HEADER_LEN + plain.len()].copy_from_slice(plain);
            let (aad, n) = sa.aad(9);
            let (body, icv) = b[HEADER_LEN..].split_at_mut(plain.len());
            let tag = sa
                .cipher
                .seal_in_place_separate_tag(sa.nonce(IV), Aad::from(&aad[..n]), body)
                .unwrap();
            icv.copy_from_slice(tag.as_ref());
            b
        };
        assert_eq!(
            sa.open(9, &mut raw(&[0x45, 9, 3, 4])),
            Err(EspError::Padding),
            "pad length past the payload"
        );
        assert_eq!(
            sa.open(9, &mut raw(&[0x45, 7, 2, 4])),
            Err(EspError::Padding),
            "padding not 1, 2"
        );
        assert_eq!(
            sa.open(9, &mut raw(&[0x45, 0x46, 0, 6])),
            Err(EspError::NextHeader(6)),
            "transport mode TCP"
        );
        assert_eq!(sa.open(9, &mut raw(&[1, 2, 2, NEXT_NONE])), Err(EspError::Dummy));
        assert_eq!(sa.open(9, &mut raw(&[0x60, 0x00, 0, NEXT_IPV6])), Ok((2, NEXT_IPV6)));
        // A wrongly sized buffer is refused, not sealed.
        let mut short = vec![0u8; esp_len(84) - 4];
        assert_eq!(sa.seal(1, IV, NEXT_IPV4, 84, &mut short), Err(EspError::Truncated));
        assert_eq!(
            sa.seal(1 << 32, IV, NEXT_IPV4, 0, &mut vec![0u8; esp_len(0)]),
            Err(EspError::SeqExhausted)
        );
    }

    #[test]
    fn lengths() {
        assert_eq!(padded_len(0), 4);
        assert_eq!(padded_len(2), 4);
        assert_eq!(padded_len(3), 8);
        assert_eq!(esp_len(84), 120);
        for room in 0..200 {
            let m = max_payload(room);
            if room >= MIN_LEN {
                assert!(esp_len(m) <= room, "{room}");
                assert!(esp_len(m + 1) > room, "{room}: {m} is not the largest");
            } else {
                assert_eq!(m, 0);
            }
        }
    }

    #[test]
    fn window_admits_each_number_once() {
        let mut w = ReplayWindow::default();
        assert_eq!(w.check(0, true), Err(EspError::TooOld));
        for s in [1, 3, 2, 200] {
            assert_eq!(w.check(s, true), Ok(u64::from(s)));
            w.accept(u64::from(s));
            assert_eq!(w.check(s, true), Err(EspError::Replayed));
        }
        // 73 = 200 − 127 is the window's left edge; 72 is out: too old with
        // 32-bit numbers; with ESN, RFC 4303 A2.2 takes it for the next
        // wrap of the counter (2^32 + 72), whose ICV then fails.
        assert_eq!(w.check(73, true), Ok(73));
        assert_eq!(w.check(73, false), Ok(73));
        assert_eq!(w.check(72, false), Err(EspError::TooOld));
        assert_eq!(w.check(72, true), Ok((1 << 32) | 72));
        assert_eq!(w.check(3, false), Err(EspError::TooOld));
    }

    #[test]
    fn esn_crosses_the_32_bit_boundary() {
        let mut w = ReplayWindow::default();
        let top = (1u64 << 32) - 10;
        w.accept(top);
        // Ahead, in the next subspace: the high half is inferred as 1.
        assert_eq!(w.check(5, true), Ok((1 << 32) | 5));
        w.accept((1 << 32) | 5);
        // Behind the new top, before the boundary: high half 0.
        assert_eq!(w.check(u32::MAX - 20, true), Ok(u64::from(u32::MAX - 20)));
        assert_eq!(w.check(u32::MAX - 9, true), Err(EspError::Replayed));
        // Far left of the window: taken for the next wrap (its ICV fails).
        assert_eq!(w.check(u32::MAX - 200, true), Ok((1 << 32) | u64::from(u32::MAX - 200)));
        // A fresh window admits nothing from "before" 0.
        let w = ReplayWindow::default();
        assert_eq!(w.check(u32::MAX - 5, true), Err(EspError::TooOld));
    }

    proptest! {
        /// A sender numbering from `start` whose packets arrive reordered
        /// within the window and duplicated: the receiver recovers every
        /// 64-bit number from its low half, admits each once, and rejects
        /// every duplicate.
        #[test]
        fn window_recovers_full_numbers(
            start in prop_oneof![Just(1u64), (1u64 << 32) - 300..(1u64 << 32) + 300, 1u64..u64::MAX / 2],
            swaps in proptest::collection::vec((0usize..300, 0usize..60), 0..100),
            dups in proptest::collection::vec(0usize..300, 0..20),
        ) {
            let mut order: Vec<u64> = (start..start + 300).collect();
            for (a, d) in swaps {
                let b = (a + d).min(order.len() - 1);
                order.swap(a, b);
            }
            for d in dups {
                order.insert(d.min(order.len()), order[d.min(order.len() - 1)]);
            }
            // Start the receiver just behind the sender, as after a packet
            // `start − 1` was received.
            let mut w = ReplayWindow::default();
            if start > 1 {
                w.accept(start - 1);
            }
            let mut seen = std::collections::HashSet::new();
            for s in order {
                let r = w.check(s as u32, true);
                if s + WINDOW <= w.top() {
                    // Left of the window: refused, or taken for another
                    // wrap of the counter, where its ICV fails.
                    prop_assert!(r == Err(EspError::TooOld) || r.is_ok_and(|g| g != s), "{:?}", r);
                    continue;
                }
                match r {
                    Ok(got) => {
                        prop_assert_eq!(got, s);
                        prop_assert!(seen.insert(s));
                        w.accept(s);
                    }
                    Err(e) => {
                        prop_assert_eq!(e, EspError::Replayed);
                        prop_assert!(seen.contains(&s));
                    }
                }
            }
        }

        #[test]
        fn fuzz_esp_never_panics(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            fuzz_esp(&data);
        }

        /// Valid ESP packets and IP packets with octets changed, cut or
        /// appended.
        #[test]
        fn fuzz_esp_on_mutated_seeds(
            seed in 0usize..3,
            flips in proptest::collection::vec((0usize..200, any::<u8>()), 0..4),
            cut in 0usize..200,
            tail in proptest::collection::vec(any::<u8>(), 0..8),
        ) {
            let v6 = weft_packet::build::udp6(
                [2; 6], [4; 6], "2001:db8::1".parse().unwrap(), "2001:db8::2".parse().unwrap(), 1, 2, 64, b"x",
            );
            let mut d = match seed {
                0 => ESP.to_vec(),
                1 => INNER[..84].to_vec(),
                _ => v6[14..].to_vec(),
            };
            for (at, b) in flips {
                if !d.is_empty() {
                    let i = at % d.len();
                    d[i] ^= b;
                }
            }
            d.truncate(cut.max(1));
            d.extend_from_slice(&tail);
            fuzz_esp(&d);
        }
    }
}
