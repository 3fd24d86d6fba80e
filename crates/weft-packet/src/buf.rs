//! Packet buffers: one contiguous buffer per packet with headroom and
//! tailroom, plus the metadata the engine carries alongside.

use crate::flow::FlowKey;
use std::net::IpAddr;

/// A node-local port number.
pub type PortId = u16;

/// Bytes reserved in front of a received frame so that encapsulations
/// (VXLAN: 50, an explicit-path label: 4, an IPv4 option: ≤ 40) can be pushed
/// without moving the payload.
pub const HEADROOM: usize = 128;
/// Largest frame a default buffer holds (jumbo frames need a larger buffer).
pub const DEFAULT_MTU_FRAME: usize = 1518;
/// Default buffer size: headroom + one full Ethernet frame + tailroom for an
/// AEAD tag and trailers, rounded to a 2 KiB class.
pub const DEFAULT_CAPACITY: usize = 2048;

/// Per-packet metadata that travels with the bytes through the engine.
///
/// Offsets are relative to [`Packet::data`]. Fields an element does not know
/// about must be left as they are.
#[derive(Clone, Debug, Default)]
pub struct Meta {
    /// The port the packet came in on.
    pub in_port: PortId,
    /// Offset of the L3 header (0 when not parsed).
    pub l3: u16,
    /// Offset of the L4 header (0 when absent or not parsed).
    pub l4: u16,
    /// The classifier key, filled in when the packet is parsed.
    pub flow: FlowKey,
    /// The next hop. Set by an element before routing (policy routing,
    /// explicit paths) it overrides the FIB's choice; after routing it holds
    /// the resolved next hop.
    pub next_hop: Option<IpAddr>,
    /// The port routing chose (set by the engine after the FIB lookup; an
    /// element in FORWARD or POSTROUTING may change it).
    pub out_port: Option<PortId>,
    /// An explicit-path label (0 = none); reserved for label-switched paths.
    pub label: u32,
    /// A free mark elements may set and filters may later read.
    pub mark: u32,
    /// Receive time in nanoseconds on the node's clock.
    pub rx_ns: u64,
}

/// One packet: a buffer with `head..tail` holding the frame.
#[derive(Clone)]
pub struct Packet {
    buf: Box<[u8]>,
    // u32 offsets keep `Packet` at 128 bytes (two cache lines): at 144 the
    // engine's batch moves measured 30% slower.
    head: u32,
    tail: u32,
    /// Set by every method that can change the bytes; the engine clears it
    /// before handing packets to elements and re-parses only dirty ones.
    dirty: bool,
    /// Metadata that travels with the packet.
    pub meta: Meta,
}

impl std::fmt::Debug for Packet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packet")
            .field("len", &self.len())
            .field("headroom", &self.headroom())
            .field("meta", &self.meta)
            .finish()
    }
}

/// Error returned by [`Packet`] methods that grow the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BufError {
    /// Not enough headroom in front of the data.
    #[error("not enough headroom: need {need}, have {have}")]
    NoHeadroom {
        /// Bytes asked for.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// Not enough tailroom behind the data.
    #[error("not enough tailroom: need {need}, have {have}")]
    NoTailroom {
        /// Bytes asked for.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// An offset or length lies outside the data.
    #[error("range {at}+{len} outside the packet's {size} bytes")]
    OutOfRange {
        /// Start offset.
        at: usize,
        /// Length.
        len: usize,
        /// Current data length.
        size: usize,
    },
}

impl Default for Packet {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl Packet {
    /// An empty packet whose buffer holds `capacity` bytes, [`HEADROOM`] of
    /// them in front of the (empty) data.
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.max(HEADROOM + 64);
        Packet {
            buf: vec![0u8; capacity].into_boxed_slice(),
            head: HEADROOM as u32,
            tail: HEADROOM as u32,
            dirty: false,
            meta: Meta::default(),
        }
    }

    /// A packet holding a copy of `frame` (the buffer grows for jumbo frames).
    pub fn from_bytes(frame: &[u8]) -> Self {
        let mut p = Self::with_capacity((HEADROOM + frame.len() + 64).max(DEFAULT_CAPACITY));
        p.set_data(frame);
        p
    }

    /// Replace the data by a copy of `frame`, resetting headroom and metadata.
    /// Grows the buffer if `frame` does not fit.
    pub fn set_data(&mut self, frame: &[u8]) {
        if HEADROOM + frame.len() > self.buf.len() {
            self.buf = vec![0u8; HEADROOM + frame.len() + 64].into_boxed_slice();
        }
        self.head = (HEADROOM) as u32;
        self.tail = (HEADROOM + frame.len()) as u32;
        self.buf[(self.head as usize)..(self.tail as usize)].copy_from_slice(frame);
        self.meta = Meta::default();
    }

    /// The frame bytes.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buf[(self.head as usize)..(self.tail as usize)]
    }

    /// The frame bytes, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        self.dirty = true;
        &mut self.buf[(self.head as usize)..(self.tail as usize)]
    }

    /// The frame bytes, writable, without marking the packet changed. For
    /// the engine's own rewrites after classification (TTL, MAC addresses),
    /// which keep the headers it parsed valid. Elements use
    /// [`Packet::data_mut`]. (A one-byte store right before the packet is
    /// moved stalls store forwarding: measured 20% of the forwarding rate.)
    #[inline]
    pub fn data_mut_unmarked(&mut self) -> &mut [u8] {
        &mut self.buf[(self.head as usize)..(self.tail as usize)]
    }

    /// True when the bytes may have changed since [`Packet::clear_dirty`].
    #[inline]
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Forget earlier changes (the engine does this before running elements).
    #[inline]
    pub fn clear_dirty(&mut self) {
        self.dirty = false;
    }

    /// Parse the frame into this packet's metadata: `meta.l3`, `meta.l4`
    /// and `meta.flow` (with `flow.in_port = meta.in_port`). Returns the
    /// rest of what [`crate::view::parse`] finds.
    #[inline]
    pub fn parse(&mut self) -> Result<crate::view::Summary, crate::view::ParseError> {
        let frame = &self.buf[(self.head as usize)..(self.tail as usize)];
        let s = crate::view::parse_into(frame, &mut self.meta.flow)?;
        self.meta.flow.in_port = self.meta.in_port;
        self.meta.l3 = crate::view::ETH_LEN as u16;
        self.meta.l4 = s.l4_off().unwrap_or(0) as u16;
        Ok(s)
    }

    /// Frame length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        (self.tail as usize) - (self.head as usize)
    }

    /// True when the packet holds no bytes.
    #[inline]
    pub fn is_empty(&self) -> bool {
        (self.tail as usize) == (self.head as usize)
    }

    /// Free bytes in front of the data.
    #[inline]
    pub fn headroom(&self) -> usize {
        self.head as usize
    }

    /// Free bytes behind the data.
    #[inline]
    pub fn tailroom(&self) -> usize {
        self.buf.len() - (self.tail as usize)
    }

    /// Grow the data by `n` bytes at the front and return them (zeroed content
    /// is not guaranteed). Used to push an encapsulation header.
    pub fn push_front(&mut self, n: usize) -> Result<&mut [u8], BufError> {
        self.dirty = true;
        if n > (self.head as usize) {
            return Err(BufError::NoHeadroom {
                need: n,
                have: (self.head as usize),
            });
        }
        self.head -= (n) as u32;
        Ok(&mut self.buf[(self.head as usize)..(self.head as usize) + n])
    }

    /// Remove `n` bytes from the front (pop an encapsulation header).
    pub fn pull_front(&mut self, n: usize) -> Result<(), BufError> {
        self.dirty = true;
        if n > self.len() {
            return Err(BufError::OutOfRange {
                at: 0,
                len: n,
                size: self.len(),
            });
        }
        self.head += (n) as u32;
        Ok(())
    }

    /// Grow the data by `n` bytes at the back and return them.
    pub fn push_back(&mut self, n: usize) -> Result<&mut [u8], BufError> {
        self.dirty = true;
        if n > self.tailroom() {
            return Err(BufError::NoTailroom {
                need: n,
                have: self.tailroom(),
            });
        }
        let at = self.tail as usize;
        self.tail += (n) as u32;
        Ok(&mut self.buf[at..at + n])
    }

    /// Shorten the data to `len` bytes (no-op if already shorter).
    pub fn truncate(&mut self, len: usize) {
        self.dirty = true;
        if len < self.len() {
            self.tail = ((self.head as usize) + len) as u32;
        }
    }

    /// Open a gap of `n` bytes at offset `at` by moving the first `at` bytes
    /// into the headroom (cheap when `at` is small: headers, not payload).
    /// Returns the gap. Used to insert an IP option or a label.
    pub fn insert_gap(&mut self, at: usize, n: usize) -> Result<&mut [u8], BufError> {
        self.dirty = true;
        if at > self.len() {
            return Err(BufError::OutOfRange {
                at,
                len: n,
                size: self.len(),
            });
        }
        if n > (self.head as usize) {
            return Err(BufError::NoHeadroom {
                need: n,
                have: (self.head as usize),
            });
        }
        let old = self.head as usize;
        self.head -= (n) as u32;
        self.buf.copy_within(old..old + at, self.head as usize);
        Ok(&mut self.buf[(self.head as usize) + at..(self.head as usize) + at + n])
    }

    /// Remove `n` bytes at offset `at`, moving the first `at` bytes forward.
    pub fn remove_range(&mut self, at: usize, n: usize) -> Result<(), BufError> {
        self.dirty = true;
        if at.checked_add(n).is_none_or(|end| end > self.len()) {
            return Err(BufError::OutOfRange {
                at,
                len: n,
                size: self.len(),
            });
        }
        let old = self.head as usize;
        self.buf.copy_within(old..old + at, old + n);
        self.head += (n) as u32;
        Ok(())
    }
}

/// A batch of packets processed together. Workers move packets in batches of
/// up to [`Batch::MAX`] so per-call costs are paid once per batch.
pub type Batch = Vec<Packet>;

/// Batch size ceiling used by ports and the engine.
pub trait BatchExt {
    /// Largest batch a port hands to the engine at once (VPP and DPDK use
    /// 256 and 32; 32 keeps a batch in L1 for 64-byte frames).
    const MAX: usize = 32;
}
impl BatchExt for Batch {}

/// A free list of packet buffers so the hot path does not allocate.
#[derive(Default)]
pub struct PacketPool {
    free: Vec<Packet>,
    allocated: u64,
}

impl PacketPool {
    /// A pool with `n` buffers ready.
    pub fn with_buffers(n: usize) -> Self {
        let mut p = PacketPool::default();
        p.free.reserve(n);
        for _ in 0..n {
            p.free.push(Packet::default());
        }
        p.allocated = n as u64;
        p
    }

    /// A packet holding a copy of `frame`, from the pool when one is free.
    #[inline]
    pub fn alloc(&mut self, frame: &[u8]) -> Packet {
        match self.free.pop() {
            Some(mut p) => {
                p.set_data(frame);
                p
            }
            None => {
                self.allocated += 1;
                Packet::from_bytes(frame)
            }
        }
    }

    /// Append a packet holding a copy of `frame` to `out`, filling it in
    /// place (what a port's receive path does; writing the packet where it
    /// will be read avoids moving a freshly written 128-byte struct).
    #[inline]
    pub fn alloc_into(&mut self, out: &mut Batch, frame: &[u8]) {
        let p = match self.free.pop() {
            Some(p) => p,
            None => {
                self.allocated += 1;
                Packet::default()
            }
        };
        out.push(p);
        if let Some(last) = out.last_mut() {
            last.set_data(frame);
        }
    }

    /// Return a packet's buffer to the pool.
    #[inline]
    pub fn free(&mut self, p: Packet) {
        if self.free.len() < 65536 {
            self.free.push(p);
        }
    }

    /// Buffers ever allocated by this pool (grows only while warming up;
    /// benchmarks check it stays flat).
    pub fn allocated(&self) -> u64 {
        self.allocated
    }

    /// Buffers currently free.
    pub fn available(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_pull_insert_remove() {
        let mut p = Packet::from_bytes(&[1, 2, 3, 4, 5, 6]);
        assert_eq!(p.len(), 6);
        p.push_front(2).unwrap().copy_from_slice(&[9, 9]);
        assert_eq!(p.data(), &[9, 9, 1, 2, 3, 4, 5, 6]);
        p.pull_front(2).unwrap();
        p.insert_gap(2, 3).unwrap().copy_from_slice(&[7, 7, 7]);
        assert_eq!(p.data(), &[1, 2, 7, 7, 7, 3, 4, 5, 6]);
        p.remove_range(2, 3).unwrap();
        assert_eq!(p.data(), &[1, 2, 3, 4, 5, 6]);
        assert!(p.remove_range(4, 3).is_err());
        assert!(p.pull_front(7).is_err());
        assert!(p.push_front(10_000).is_err());
        p.push_back(2).unwrap().copy_from_slice(&[8, 8]);
        assert_eq!(p.len(), 8);
        p.truncate(1);
        assert_eq!(p.data(), &[1]);
    }

    #[test]
    fn jumbo_grows_buffer() {
        let big = vec![0xa5u8; 9000];
        let p = Packet::from_bytes(&big);
        assert_eq!(p.len(), 9000);
        assert_eq!(p.headroom(), HEADROOM);
    }

    #[test]
    fn pool_reuses() {
        let mut pool = PacketPool::with_buffers(2);
        let a = pool.alloc(&[1]);
        pool.free(a);
        let b = pool.alloc(&[2, 3]);
        assert_eq!(b.data(), &[2, 3]);
        assert_eq!(pool.allocated(), 2);
    }
}
#[cfg(test)]
mod size_probe {
    #[test]
    fn packet_is_two_cache_lines() {
        assert_eq!(std::mem::size_of::<super::Packet>(), 128);
    }
}
