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
    head: usize,
    tail: usize,
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
            head: HEADROOM,
            tail: HEADROOM,
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
        self.head = HEADROOM;
        self.tail = HEADROOM + frame.len();
        self.buf[self.head..self.tail].copy_from_slice(frame);
        self.meta = Meta::default();
    }

    /// The frame bytes.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buf[self.head..self.tail]
    }

    /// The frame bytes, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.head..self.tail]
    }

    /// Frame length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.tail - self.head
    }

    /// True when the packet holds no bytes.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.tail == self.head
    }

    /// Free bytes in front of the data.
    #[inline]
    pub fn headroom(&self) -> usize {
        self.head
    }

    /// Free bytes behind the data.
    #[inline]
    pub fn tailroom(&self) -> usize {
        self.buf.len() - self.tail
    }

    /// Grow the data by `n` bytes at the front and return them (zeroed content
    /// is not guaranteed). Used to push an encapsulation header.
    pub fn push_front(&mut self, n: usize) -> Result<&mut [u8], BufError> {
        if n > self.head {
            return Err(BufError::NoHeadroom {
                need: n,
                have: self.head,
            });
        }
        self.head -= n;
        Ok(&mut self.buf[self.head..self.head + n])
    }

    /// Remove `n` bytes from the front (pop an encapsulation header).
    pub fn pull_front(&mut self, n: usize) -> Result<(), BufError> {
        if n > self.len() {
            return Err(BufError::OutOfRange {
                at: 0,
                len: n,
                size: self.len(),
            });
        }
        self.head += n;
        Ok(())
    }

    /// Grow the data by `n` bytes at the back and return them.
    pub fn push_back(&mut self, n: usize) -> Result<&mut [u8], BufError> {
        if n > self.tailroom() {
            return Err(BufError::NoTailroom {
                need: n,
                have: self.tailroom(),
            });
        }
        let at = self.tail;
        self.tail += n;
        Ok(&mut self.buf[at..at + n])
    }

    /// Shorten the data to `len` bytes (no-op if already shorter).
    pub fn truncate(&mut self, len: usize) {
        if len < self.len() {
            self.tail = self.head + len;
        }
    }

    /// Open a gap of `n` bytes at offset `at` by moving the first `at` bytes
    /// into the headroom (cheap when `at` is small: headers, not payload).
    /// Returns the gap. Used to insert an IP option or a label.
    pub fn insert_gap(&mut self, at: usize, n: usize) -> Result<&mut [u8], BufError> {
        if at > self.len() {
            return Err(BufError::OutOfRange {
                at,
                len: n,
                size: self.len(),
            });
        }
        if n > self.head {
            return Err(BufError::NoHeadroom {
                need: n,
                have: self.head,
            });
        }
        let old = self.head;
        self.head -= n;
        self.buf.copy_within(old..old + at, self.head);
        Ok(&mut self.buf[self.head + at..self.head + at + n])
    }

    /// Remove `n` bytes at offset `at`, moving the first `at` bytes forward.
    pub fn remove_range(&mut self, at: usize, n: usize) -> Result<(), BufError> {
        if at.checked_add(n).is_none_or(|end| end > self.len()) {
            return Err(BufError::OutOfRange {
                at,
                len: n,
                size: self.len(),
            });
        }
        let old = self.head;
        self.buf.copy_within(old..old + at, old + n);
        self.head += n;
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
