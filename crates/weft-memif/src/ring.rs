//! Rings and descriptors in shared memory, and the four ends that move
//! packets through them.
//!
//! ```text
//! ring header (in a region, at the ADD_RING offset):
//!   0: cookie u32 (0x3E31F20)   4: flags u16 (1 = interrupts masked)   6: head u16
//!  64: tail u16
//! 128: descriptors, 2^log2 × 16 bytes:
//!      flags u16 (1 = NEXT) | region u16 | length u32 | offset u32 | metadata u32
//! ```
//!
//! Head and tail are free-running 16-bit counters; slot = counter & mask.
//! The client (which owns the memory) fills both rings' descriptors with
//! its buffers. On a **C2S** ring the client produces at `head` and the
//! server consumes up to it and returns slots by advancing `tail`. On an
//! **S2C** ring the client hands empty buffers to the server by advancing
//! `head`; the server fills them, sets each length, and publishes by
//! advancing `tail`. This is what DPDK's `net_memif` and libmemif do.
//!
//! Everything the other side wrote is checked before use: the cookie, how
//! far an index moved (never more than the ring holds: [`RingError::Index`]),
//! and each descriptor's region, offset and length against that region
//! ([`DescError`]). A bad descriptor costs one packet and a counter; a bad
//! index is fatal for the connection (the caller tears it down). Multi-
//! buffer packets (the NEXT flag) are refused and counted: Weft's buffers
//! (2048 bytes by default) hold any frame it forwards.

use crate::shm::Shm;
use std::sync::atomic::Ordering;
use thiserror::Error;

/// The ring header's magic number.
pub const COOKIE: u32 = 0x03E3_1F20;
/// Ring flag: the receiver polls; do not signal its eventfd.
pub const RING_FLAG_MASK_INT: u16 = 1;
/// Descriptor flag: the packet continues in the next descriptor.
pub const DESC_FLAG_NEXT: u16 = 1;
/// Size of one descriptor.
pub const DESC_LEN: usize = 16;
/// Offset of the descriptors from the ring header (two cache lines of
/// header on x86-64: head and tail on separate lines).
pub const DESC_OFFSET: usize = 128;
const OFF_COOKIE: usize = 0;
const OFF_FLAGS: usize = 4;
const OFF_HEAD: usize = 6;
const OFF_TAIL: usize = 64;
/// Largest ring Weft accepts (2^14 descriptors, DPDK's limit too).
pub const MAX_LOG2_RING: u8 = 14;

/// Bytes a ring of `2^log2` descriptors occupies.
pub fn ring_len(log2: u8) -> usize {
    DESC_OFFSET + (DESC_LEN << log2)
}

/// One descriptor, as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Desc {
    /// Flags ([`DESC_FLAG_NEXT`]).
    pub flags: u16,
    /// Region holding the buffer.
    pub region: u16,
    /// Packet length (C2S, filled S2C) or buffer length (empty S2C).
    pub length: u32,
    /// Buffer offset within the region.
    pub offset: u32,
    /// Opaque metadata.
    pub metadata: u32,
}

impl Desc {
    /// Decode 16 bytes.
    pub fn from_bytes(b: &[u8; DESC_LEN]) -> Desc {
        Desc {
            flags: u16::from_le_bytes([b[0], b[1]]),
            region: u16::from_le_bytes([b[2], b[3]]),
            length: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            offset: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
            metadata: u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
        }
    }

    /// Encode to 16 bytes.
    pub fn to_bytes(&self) -> [u8; DESC_LEN] {
        let mut b = [0u8; DESC_LEN];
        b[0..2].copy_from_slice(&self.flags.to_le_bytes());
        b[2..4].copy_from_slice(&self.region.to_le_bytes());
        b[4..8].copy_from_slice(&self.length.to_le_bytes());
        b[8..12].copy_from_slice(&self.offset.to_le_bytes());
        b[12..16].copy_from_slice(&self.metadata.to_le_bytes());
        b
    }
}

/// Why one descriptor was refused (the packet is dropped and counted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum DescError {
    /// The region index names no region.
    #[error("descriptor names region {0}, which was not added")]
    Region(u16),
    /// offset + length runs past the end of the region.
    #[error("descriptor buffer {offset}+{length} runs past its region ({region_len} bytes)")]
    OutOfRegion {
        /// Buffer offset.
        offset: u32,
        /// Buffer length.
        length: u32,
        /// Region length.
        region_len: usize,
    },
    /// The packet does not fit the buffer the descriptor offers.
    #[error("packet of {len} bytes does not fit a {buffer}-byte buffer")]
    TooBig {
        /// Packet length.
        len: usize,
        /// Buffer length.
        buffer: u32,
    },
    /// A chained (multi-buffer) packet.
    #[error("chained descriptors are not supported")]
    Chained,
}

/// A ring the other side broke: the connection must end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum RingError {
    /// The ring header lies outside its region, or is misaligned.
    #[error("ring header outside its region or misaligned")]
    Placement,
    /// The cookie is not [`COOKIE`].
    #[error("ring cookie {0:#x} is not memif's")]
    Cookie(u32),
    /// The ring size is larger than [`MAX_LOG2_RING`].
    #[error("ring of 2^{0} descriptors is larger than 2^14")]
    Size(u8),
    /// The other side moved an index further than the ring holds.
    #[error("ring index moved by {0}, more than the ring holds")]
    Index(u16),
}

/// Counters of one ring end (all monotonic).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingCounters {
    /// Packets moved.
    pub packets: u64,
    /// Bytes moved.
    pub bytes: u64,
    /// Packets dropped because the ring had no free slot.
    pub full: u64,
    /// Descriptors refused ([`DescError`]).
    pub bad_desc: u64,
}

/// Where a ring lives, checked against its region.
#[derive(Clone, Copy, Debug)]
pub struct RingPlace {
    region: usize,
    offset: usize,
    log2: u8,
}

impl RingPlace {
    /// Check that a ring of `2^log2` descriptors at `offset` fits in
    /// `regions[region]` and is aligned.
    pub fn new(regions: &[Shm], region: u16, offset: u32, log2: u8) -> Result<RingPlace, RingError> {
        if log2 > MAX_LOG2_RING {
            return Err(RingError::Size(log2));
        }
        let r = regions.get(region as usize).ok_or(RingError::Placement)?;
        let offset = offset as usize;
        if !offset.is_multiple_of(8) || offset.checked_add(ring_len(log2)).is_none_or(|e| e > r.len()) {
            return Err(RingError::Placement);
        }
        Ok(RingPlace {
            region: region as usize,
            offset,
            log2,
        })
    }

    /// Descriptor count.
    pub fn size(&self) -> u16 {
        // log2 ≤ 14, so the count fits in 16 bits.
        1u16 << self.log2
    }

    fn mask(&self) -> u16 {
        self.size() - 1
    }

    fn shm<'a>(&self, regions: &'a [Shm]) -> &'a Shm {
        &regions[self.region]
    }

    fn head<'a>(&self, regions: &'a [Shm]) -> &'a std::sync::atomic::AtomicU16 {
        // In bounds and aligned: checked in `new`.
        self.shm(regions)
            .atomic_u16(self.offset + OFF_HEAD)
            .expect("ring placement checked")
    }

    fn tail<'a>(&self, regions: &'a [Shm]) -> &'a std::sync::atomic::AtomicU16 {
        self.shm(regions)
            .atomic_u16(self.offset + OFF_TAIL)
            .expect("ring placement checked")
    }

    fn desc_off(&self, slot: u16) -> usize {
        self.offset + DESC_OFFSET + DESC_LEN * (slot & self.mask()) as usize
    }

    /// Read the descriptor of `slot`.
    pub fn desc(&self, regions: &[Shm], slot: u16) -> Desc {
        let mut b = [0u8; DESC_LEN];
        self.shm(regions)
            .read(self.desc_off(slot), &mut b)
            .expect("ring placement checked");
        Desc::from_bytes(&b)
    }

    /// Write the descriptor of `slot`.
    pub fn set_desc(&self, regions: &[Shm], slot: u16, d: &Desc) {
        self.shm(regions)
            .write(self.desc_off(slot), &d.to_bytes())
            .expect("ring placement checked");
    }

    /// The header's cookie.
    pub fn cookie(&self, regions: &[Shm]) -> u32 {
        let mut b = [0u8; 4];
        self.shm(regions)
            .read(self.offset + OFF_COOKIE, &mut b)
            .expect("ring placement checked");
        u32::from_le_bytes(b)
    }

    /// The header's flags.
    pub fn flags(&self, regions: &[Shm]) -> u16 {
        let mut b = [0u8; 2];
        self.shm(regions)
            .read(self.offset + OFF_FLAGS, &mut b)
            .expect("ring placement checked");
        u16::from_le_bytes(b)
    }

    /// Write a fresh header (the client's job): cookie, flags, head = tail = 0.
    pub fn init_header(&self, regions: &[Shm], flags: u16) {
        let s = self.shm(regions);
        s.write(self.offset + OFF_COOKIE, &COOKIE.to_le_bytes())
            .expect("ring placement checked");
        s.write(self.offset + OFF_FLAGS, &flags.to_le_bytes())
            .expect("ring placement checked");
        self.head(regions).store(0, Ordering::Release);
        self.tail(regions).store(0, Ordering::Release);
    }

    /// Check the cookie (server side, at CONNECT).
    pub fn check_cookie(&self, regions: &[Shm]) -> Result<(), RingError> {
        match self.cookie(regions) {
            COOKIE => Ok(()),
            c => Err(RingError::Cookie(c)),
        }
    }
}

/// Check that the buffer a descriptor names lies within its region.
pub fn check_buffer(regions: &[Shm], d: &Desc, len: u32) -> Result<usize, DescError> {
    let r = regions.get(d.region as usize).ok_or(DescError::Region(d.region))?;
    let end = d.offset as u64 + len as u64;
    if end > r.len() as u64 {
        return Err(DescError::OutOfRegion {
            offset: d.offset,
            length: len,
            region_len: r.len(),
        });
    }
    Ok(d.offset as usize)
}

/// The server's end of an S2C ring: it fills buffers the client offered.
#[derive(Debug)]
pub struct S2cProducer {
    place: RingPlace,
    tail: u16,
    free: u16,
    pending: bool,
    /// Counters.
    pub counters: RingCounters,
}

impl S2cProducer {
    /// Take the ring at `place` (its tail is the server's to advance).
    pub fn new(regions: &[Shm], place: RingPlace) -> S2cProducer {
        let tail = place.tail(regions).load(Ordering::Relaxed);
        S2cProducer {
            place,
            tail,
            free: 0,
            pending: false,
            counters: RingCounters::default(),
        }
    }

    /// Learn how many buffers the client has offered (once per batch).
    pub fn begin(&mut self, regions: &[Shm]) -> Result<u16, RingError> {
        let head = self.place.head(regions).load(Ordering::Acquire);
        let free = head.wrapping_sub(self.tail);
        if free > self.place.size() {
            return Err(RingError::Index(free));
        }
        self.free = free;
        Ok(free)
    }

    /// Copy one frame into the next offered buffer. `Ok(false)`: the ring
    /// is full (counted as `full`); a refused descriptor costs its slot.
    pub fn push(&mut self, regions: &[Shm], frame: &[u8]) -> Result<bool, DescError> {
        if self.free == 0 {
            self.counters.full += 1;
            return Ok(false);
        }
        let slot = self.tail;
        let mut d = self.place.desc(regions, slot);
        let off = match check_buffer(regions, &d, d.length) {
            Ok(off) => off,
            Err(e) => {
                // A broken descriptor: hand the slot back empty so the
                // ring keeps moving.
                d.length = 0;
                self.place.set_desc(regions, slot, &d);
                self.tail = slot.wrapping_add(1);
                self.free -= 1;
                self.pending = true;
                self.counters.bad_desc += 1;
                return Err(e);
            }
        };
        if frame.len() > d.length as usize {
            // Too big for the buffer offered: drop the frame, keep the slot.
            self.counters.bad_desc += 1;
            return Err(DescError::TooBig {
                len: frame.len(),
                buffer: d.length,
            });
        }
        regions[d.region as usize].write(off, frame).expect("buffer checked");
        d.length = frame.len() as u32;
        d.flags = 0;
        self.place.set_desc(regions, slot, &d);
        self.tail = slot.wrapping_add(1);
        self.free -= 1;
        self.pending = true;
        self.counters.packets += 1;
        self.counters.bytes += frame.len() as u64;
        Ok(true)
    }

    /// Publish what was pushed since the last flush. Returns whether the
    /// client asked to be signalled (interrupts not masked).
    pub fn flush(&mut self, regions: &[Shm]) -> bool {
        if !self.pending {
            return false;
        }
        self.pending = false;
        self.place.tail(regions).store(self.tail, Ordering::Release);
        self.place.flags(regions) & RING_FLAG_MASK_INT == 0
    }
}

/// Copy the frame `d` describes into `scratch` and hand it to `f`,
/// counting it; a descriptor outside its region, or longer than
/// `scratch`, is counted as bad instead. True when `f` saw the frame.
fn deliver(
    regions: &[Shm],
    d: &Desc,
    scratch: &mut [u8],
    counters: &mut RingCounters,
    f: &mut impl FnMut(&[u8]),
) -> bool {
    let len = d.length as usize;
    match check_buffer(regions, d, d.length) {
        Ok(off) if len <= scratch.len() => {
            regions[d.region as usize]
                .read(off, &mut scratch[..len])
                .expect("buffer checked");
            counters.packets += 1;
            counters.bytes += len as u64;
            f(&scratch[..len]);
            true
        }
        _ => {
            counters.bad_desc += 1;
            false
        }
    }
}

/// The server's end of a C2S ring: it consumes what the client produced.
#[derive(Debug)]
pub struct C2sConsumer {
    place: RingPlace,
    last_head: u16,
    /// Counters.
    pub counters: RingCounters,
}

impl C2sConsumer {
    /// Take the ring at `place`.
    pub fn new(regions: &[Shm], place: RingPlace) -> C2sConsumer {
        let last_head = place.tail(regions).load(Ordering::Relaxed);
        C2sConsumer {
            place,
            last_head,
            counters: RingCounters::default(),
        }
    }

    /// Hand up to `max` received frames to `f` (each a borrowed copy in
    /// `scratch`), then return their slots. Returns how many frames `f` saw.
    pub fn recv(
        &mut self,
        regions: &[Shm],
        scratch: &mut [u8],
        max: usize,
        mut f: impl FnMut(&[u8]),
    ) -> Result<usize, RingError> {
        let head = self.place.head(regions).load(Ordering::Acquire);
        let n = head.wrapping_sub(self.last_head);
        if n > self.place.size() {
            return Err(RingError::Index(n));
        }
        let mut seen = 0;
        let mut slot = self.last_head;
        let mut chained = false;
        while slot != head && seen < max {
            let d = self.place.desc(regions, slot);
            slot = slot.wrapping_add(1);
            if chained || d.flags & DESC_FLAG_NEXT != 0 {
                // Skip every segment of a chained packet, count it once.
                if !chained {
                    self.counters.bad_desc += 1;
                }
                chained = d.flags & DESC_FLAG_NEXT != 0;
                continue;
            }
            if deliver(regions, &d, scratch, &mut self.counters, &mut f) {
                seen += 1;
            }
        }
        if slot != self.last_head {
            self.last_head = slot;
            self.place.tail(regions).store(slot, Ordering::Release);
        }
        Ok(seen)
    }

    /// Whether the client has produced anything not yet consumed.
    pub fn pending(&self, regions: &[Shm]) -> bool {
        self.place.head(regions).load(Ordering::Acquire) != self.last_head
    }
}

/// The client's end of a C2S ring: it sends.
#[derive(Debug)]
pub struct C2sProducer {
    place: RingPlace,
    head: u16,
    buffer_len: u32,
    /// Counters.
    pub counters: RingCounters,
}

impl C2sProducer {
    /// Lay out a fresh ring: descriptor `i` owns buffer
    /// `buffers + i * buffer_len` of region `buf_region`.
    pub fn init(regions: &[Shm], place: RingPlace, buf_region: u16, buffers: u32, buffer_len: u32) -> C2sProducer {
        place.init_header(regions, RING_FLAG_MASK_INT);
        for i in 0..place.size() {
            let d = Desc {
                flags: 0,
                region: buf_region,
                length: 0,
                offset: buffers + i as u32 * buffer_len,
                metadata: 0,
            };
            place.set_desc(regions, i, &d);
        }
        C2sProducer {
            place,
            head: 0,
            buffer_len,
            counters: RingCounters::default(),
        }
    }

    /// Slots free for sending.
    pub fn free(&self, regions: &[Shm]) -> Result<u16, RingError> {
        let tail = self.place.tail(regions).load(Ordering::Acquire);
        let used = self.head.wrapping_sub(tail);
        if used > self.place.size() {
            return Err(RingError::Index(used));
        }
        Ok(self.place.size() - used)
    }

    /// Queue one frame (publish with [`C2sProducer::flush`]); `Ok(false)`
    /// when the ring is full.
    pub fn push(&mut self, regions: &[Shm], frame: &[u8]) -> Result<bool, DescError> {
        if self.free(regions).unwrap_or(0) == 0 {
            self.counters.full += 1;
            return Ok(false);
        }
        if frame.len() > self.buffer_len as usize {
            self.counters.bad_desc += 1;
            return Err(DescError::TooBig {
                len: frame.len(),
                buffer: self.buffer_len,
            });
        }
        let mut d = self.place.desc(regions, self.head);
        let off = check_buffer(regions, &d, frame.len() as u32)?;
        regions[d.region as usize].write(off, frame).expect("buffer checked");
        d.length = frame.len() as u32;
        d.flags = 0;
        self.place.set_desc(regions, self.head, &d);
        self.head = self.head.wrapping_add(1);
        self.counters.packets += 1;
        self.counters.bytes += frame.len() as u64;
        Ok(true)
    }

    /// Publish queued frames.
    pub fn flush(&mut self, regions: &[Shm]) {
        self.place.head(regions).store(self.head, Ordering::Release);
    }
}

/// The client's end of an S2C ring: it receives, and offers buffers back.
#[derive(Debug)]
pub struct S2cConsumer {
    place: RingPlace,
    last_tail: u16,
    buffer_len: u32,
    /// Counters.
    pub counters: RingCounters,
}

impl S2cConsumer {
    /// Lay out a fresh ring and offer every buffer to the server.
    pub fn init(regions: &[Shm], place: RingPlace, buf_region: u16, buffers: u32, buffer_len: u32) -> S2cConsumer {
        place.init_header(regions, RING_FLAG_MASK_INT);
        for i in 0..place.size() {
            let d = Desc {
                flags: 0,
                region: buf_region,
                length: buffer_len,
                offset: buffers + i as u32 * buffer_len,
                metadata: 0,
            };
            place.set_desc(regions, i, &d);
        }
        place.head(regions).store(place.size(), Ordering::Release);
        S2cConsumer {
            place,
            last_tail: 0,
            buffer_len,
            counters: RingCounters::default(),
        }
    }

    /// Hand up to `max` received frames to `f` (borrowed from shared
    /// memory through `scratch`), then offer their buffers again.
    pub fn recv(
        &mut self,
        regions: &[Shm],
        scratch: &mut [u8],
        max: usize,
        mut f: impl FnMut(&[u8]),
    ) -> Result<usize, RingError> {
        let tail = self.place.tail(regions).load(Ordering::Acquire);
        let n = tail.wrapping_sub(self.last_tail);
        if n > self.place.size() {
            return Err(RingError::Index(n));
        }
        let mut seen = 0;
        let mut slot = self.last_tail;
        while slot != tail && seen < max {
            let d = self.place.desc(regions, slot);
            slot = slot.wrapping_add(1);
            if d.flags & DESC_FLAG_NEXT != 0 {
                self.counters.bad_desc += 1;
            } else if deliver(regions, &d, scratch, &mut self.counters, &mut f) {
                seen += 1;
            }
        }
        self.last_tail = slot;
        // Offer the consumed buffers again, full length.
        let head = self.place.head(regions).load(Ordering::Relaxed);
        let mut h = head;
        while h != self.last_tail.wrapping_add(self.place.size()) {
            let mut d = self.place.desc(regions, h);
            d.length = self.buffer_len;
            d.flags = 0;
            self.place.set_desc(regions, h, &d);
            h = h.wrapping_add(1);
        }
        if h != head {
            self.place.head(regions).store(h, Ordering::Release);
        }
        Ok(seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG2: u8 = 3;
    const BUF: u32 = 256;

    /// One region: C2S ring at 0, S2C ring after it, then 16 buffers.
    fn setup() -> (Vec<Shm>, RingPlace, RingPlace, u32) {
        let rl = ring_len(LOG2);
        let bufs = (2 * rl) as u32;
        let regions = vec![Shm::heap(2 * rl + 16 * BUF as usize)];
        let c2s = RingPlace::new(&regions, 0, 0, LOG2).unwrap();
        let s2c = RingPlace::new(&regions, 0, rl as u32, LOG2).unwrap();
        (regions, c2s, s2c, bufs)
    }

    #[test]
    fn descriptor_bytes() {
        let d = Desc {
            flags: 1,
            region: 2,
            length: 0x0304,
            offset: 0x0506_0708,
            metadata: 9,
        };
        let b = d.to_bytes();
        assert_eq!(b, [1, 0, 2, 0, 4, 3, 0, 0, 8, 7, 6, 5, 9, 0, 0, 0]);
        assert_eq!(Desc::from_bytes(&b), d);
    }

    #[test]
    fn client_to_server_and_back() {
        let (regions, c2s, s2c, bufs) = setup();
        let mut ctx = C2sProducer::init(&regions, c2s, 0, bufs, BUF);
        let mut crx = S2cConsumer::init(&regions, s2c, 0, bufs + 8 * BUF, BUF);
        c2s.check_cookie(&regions).unwrap();
        let mut srx = C2sConsumer::new(&regions, c2s);
        let mut stx = S2cProducer::new(&regions, s2c);
        let mut scratch = vec![0u8; 2048];
        // 20 rounds of 5 frames wrap the 8-slot rings several times.
        for round in 0..20u8 {
            for i in 0..5u8 {
                assert_eq!(ctx.push(&regions, &[round, i, 0xee]), Ok(true));
            }
            ctx.flush(&regions);
            let mut got = Vec::new();
            assert_eq!(srx.recv(&regions, &mut scratch, 64, |f| got.push(f.to_vec())), Ok(5));
            assert_eq!(stx.begin(&regions), Ok(8));
            for f in &got {
                assert_eq!(stx.push(&regions, f), Ok(true));
            }
            assert!(!stx.flush(&regions), "client masked interrupts");
            let mut back = Vec::new();
            assert_eq!(crx.recv(&regions, &mut scratch, 64, |f| back.push(f.to_vec())), Ok(5));
            assert_eq!(back, got);
            assert_eq!(back[4], vec![round, 4, 0xee]);
        }
        assert_eq!(srx.counters.packets, 100);
        assert_eq!(stx.counters.packets, 100);
    }

    #[test]
    fn full_ring_counts_drops_never_blocks() {
        let (regions, _c2s, s2c, bufs) = setup();
        let _crx = S2cConsumer::init(&regions, s2c, 0, bufs, BUF);
        let mut stx = S2cProducer::new(&regions, s2c);
        stx.begin(&regions).unwrap();
        let mut sent = 0;
        for _ in 0..20 {
            if stx.push(&regions, b"x").unwrap() {
                sent += 1;
            }
        }
        assert_eq!(sent, 8);
        assert_eq!(stx.counters.full, 12);
    }

    #[test]
    fn out_of_region_descriptor_is_refused() {
        let (regions, c2s, _s2c, bufs) = setup();
        let mut ctx = C2sProducer::init(&regions, c2s, 0, bufs, BUF);
        let mut srx = C2sConsumer::new(&regions, c2s);
        ctx.push(&regions, b"good").unwrap();
        ctx.push(&regions, b"bad").unwrap();
        ctx.push(&regions, b"bad2").unwrap();
        ctx.push(&regions, b"good2").unwrap();
        ctx.flush(&regions);
        // Corrupt slot 1 (offset far past the region), slot 2 (length
        // past the region's end) like a hostile client would.
        let mut d = c2s.desc(&regions, 1);
        d.offset = u32::MAX - 2;
        c2s.set_desc(&regions, 1, &d);
        let mut d = c2s.desc(&regions, 2);
        d.length = regions[0].len() as u32;
        c2s.set_desc(&regions, 2, &d);
        let mut d3 = c2s.desc(&regions, 3);
        d3.region = 0;
        c2s.set_desc(&regions, 3, &d3);
        let mut got = Vec::new();
        let mut scratch = vec![0u8; 2048];
        assert_eq!(srx.recv(&regions, &mut scratch, 64, |f| got.push(f.to_vec())), Ok(2));
        assert_eq!(got, vec![b"good".to_vec(), b"good2".to_vec()]);
        assert_eq!(srx.counters.bad_desc, 2);
        // The slots were returned all the same.
        assert_eq!(ctx.free(&regions), Ok(8));
    }

    #[test]
    fn unknown_region_and_chained_descriptors_are_refused() {
        let (regions, c2s, _s2c, bufs) = setup();
        let mut ctx = C2sProducer::init(&regions, c2s, 0, bufs, BUF);
        let mut srx = C2sConsumer::new(&regions, c2s);
        for f in [&b"a"[..], b"b", b"c", b"d"] {
            ctx.push(&regions, f).unwrap();
        }
        ctx.flush(&regions);
        let mut d = c2s.desc(&regions, 0);
        d.region = 9;
        c2s.set_desc(&regions, 0, &d);
        let mut d = c2s.desc(&regions, 1);
        d.flags = DESC_FLAG_NEXT;
        c2s.set_desc(&regions, 1, &d);
        let mut got = Vec::new();
        let mut scratch = vec![0u8; 2048];
        srx.recv(&regions, &mut scratch, 64, |f| got.push(f.to_vec())).unwrap();
        // "b" chains into "c": both segments go, counted once.
        assert_eq!(got, vec![b"d".to_vec()]);
        assert_eq!(srx.counters.bad_desc, 2);
    }

    #[test]
    fn runaway_index_is_a_ring_error() {
        let (regions, c2s, s2c, bufs) = setup();
        let _ctx = C2sProducer::init(&regions, c2s, 0, bufs, BUF);
        let _crx = S2cConsumer::init(&regions, s2c, 0, bufs, BUF);
        let mut srx = C2sConsumer::new(&regions, c2s);
        c2s.head(&regions).store(100, Ordering::Release);
        let mut scratch = vec![0u8; 64];
        assert_eq!(srx.recv(&regions, &mut scratch, 64, |_| {}), Err(RingError::Index(100)));
        let mut stx = S2cProducer::new(&regions, s2c);
        s2c.head(&regions).store(9, Ordering::Release);
        assert_eq!(stx.begin(&regions), Err(RingError::Index(9)));
    }

    #[test]
    fn s2c_buffer_too_small_or_outside_is_refused() {
        let (regions, _c2s, s2c, bufs) = setup();
        let _crx = S2cConsumer::init(&regions, s2c, 0, bufs, BUF);
        let mut stx = S2cProducer::new(&regions, s2c);
        stx.begin(&regions).unwrap();
        assert!(matches!(stx.push(&regions, &[0u8; 300]), Err(DescError::TooBig { .. })));
        let mut d = s2c.desc(&regions, 0);
        d.offset = regions[0].len() as u32 - 10;
        s2c.set_desc(&regions, 0, &d);
        assert!(matches!(stx.push(&regions, b"x"), Err(DescError::OutOfRegion { .. })));
        assert_eq!(stx.push(&regions, b"y"), Ok(true));
        assert_eq!(stx.counters.bad_desc, 2);
    }

    #[test]
    fn placement_is_checked() {
        let regions = vec![Shm::heap(1024)];
        assert!(RingPlace::new(&regions, 0, 0, 3).is_ok());
        assert_eq!(RingPlace::new(&regions, 0, 1000, 3).unwrap_err(), RingError::Placement);
        assert_eq!(RingPlace::new(&regions, 0, 4, 3).unwrap_err(), RingError::Placement);
        assert_eq!(RingPlace::new(&regions, 1, 0, 3).unwrap_err(), RingError::Placement);
        assert_eq!(RingPlace::new(&regions, 0, 0, 15).unwrap_err(), RingError::Size(15));
        assert_eq!(
            RingPlace::new(&regions, 0, u32::MAX, 3).unwrap_err(),
            RingError::Placement
        );
        let p = RingPlace::new(&regions, 0, 0, 3).unwrap();
        assert_eq!(p.check_cookie(&regions), Err(RingError::Cookie(0)));
    }
}
