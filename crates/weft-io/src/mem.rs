//! In-memory links: a pair of queues between two ports. Frames are moved,
//! never copied, so a benchmark over them measures the engine alone.

use std::collections::VecDeque;
use weft_packet::{Batch, Packet};

/// One direction of an in-memory link.
#[derive(Default, Debug)]
pub struct MemQueue {
    q: VecDeque<Packet>,
    /// Frames refused because the queue was full.
    pub overflow: u64,
    cap: usize,
}

impl MemQueue {
    /// A queue holding at most `cap` frames (like a NIC ring).
    pub fn with_capacity(cap: usize) -> Self {
        MemQueue {
            q: VecDeque::with_capacity(cap),
            overflow: 0,
            cap,
        }
    }

    /// Enqueue a batch (drained); frames beyond the capacity are counted and
    /// returned to the caller in `refused`.
    pub fn send(&mut self, batch: &mut Batch, refused: &mut Batch) {
        for p in batch.drain(..) {
            if self.q.len() < self.cap {
                self.q.push_back(p);
            } else {
                self.overflow += 1;
                refused.push(p);
            }
        }
    }

    /// Dequeue up to `max` frames into `out`.
    pub fn recv(&mut self, out: &mut Batch, max: usize) -> usize {
        let n = max.min(self.q.len());
        out.extend(self.q.drain(..n));
        n
    }

    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.q.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_fifo() {
        let mut q = MemQueue::with_capacity(2);
        let mut b: Batch = (0..3u8).map(|i| Packet::from_bytes(&[i])).collect();
        let mut refused = Vec::new();
        q.send(&mut b, &mut refused);
        assert_eq!(refused.len(), 1);
        assert_eq!(q.overflow, 1);
        let mut out = Vec::new();
        assert_eq!(q.recv(&mut out, 8), 2);
        assert_eq!(out[0].data(), &[0]);
        assert_eq!(out[1].data(), &[1]);
    }
}
