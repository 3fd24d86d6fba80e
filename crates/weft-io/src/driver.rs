//! The port driver contract the node runner polls, and the counters every
//! driver keeps.

use std::collections::BTreeMap;
use std::os::fd::RawFd;
use weft_dataplane::Node;
use weft_packet::{Batch, Mac};

/// Shortest frame a port accepts: an Ethernet header.
pub const MIN_FRAME: usize = 14;
/// Ethernet header plus one 802.1Q tag: what a frame may add to the IP MTU.
pub const L2_OVERHEAD: usize = 18;

/// Per-port I/O counters, kept by the driver (the node counts what it does
/// with the frames: `weft_drops_total`). Drops are counted per reason with
/// stable labels (see `docs/ports.md`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IoCounters {
    /// Frames handed to the node.
    pub rx_packets: u64,
    /// Their bytes.
    pub rx_bytes: u64,
    /// Frames the kernel accepted for sending.
    pub tx_packets: u64,
    /// Their bytes.
    pub tx_bytes: u64,
    /// Frames not handed on, by reason.
    pub drops: BTreeMap<&'static str, u64>,
}

impl IoCounters {
    /// Count one drop for `reason`.
    #[inline]
    pub fn drop(&mut self, reason: &'static str) {
        self.drop_n(reason, 1);
    }

    /// Count `n` drops for `reason`.
    pub fn drop_n(&mut self, reason: &'static str, n: u64) {
        if n > 0 {
            *self.drops.entry(reason).or_insert(0) += n;
        }
    }

    /// One drop counter (0 when never counted).
    pub fn dropped(&self, reason: &str) -> u64 {
        self.drops.get(reason).copied().unwrap_or(0)
    }
}

/// Check a received frame's length against the port: `Err(reason)` for a
/// runt (shorter than an Ethernet header) or a jumbo frame (longer than
/// the port's MTU allows, or cut by the receive buffer).
#[inline]
pub fn check_frame_len(len: usize, mtu: u16) -> Result<(), &'static str> {
    if len < MIN_FRAME {
        Err("runt")
    } else if len > mtu as usize + L2_OVERHEAD {
        Err("oversize")
    } else {
        Ok(())
    }
}

/// A port backend that moves frames between a node and the world. The
/// node runner owns the drivers and polls them on the node's thread.
pub trait PortDriver: Send {
    /// `vxlan`, `afpacket`, `mem`.
    fn kind(&self) -> &'static str;
    /// Where it is attached, for logs (`udp 127.0.0.1:4789 → …`, `veth0`).
    fn describe(&self) -> String;
    /// Receive up to `max` frames without blocking and append them to
    /// `out` in buffers from the node's pool. Returns how many were
    /// appended. Never fails: errors are counted.
    fn recv(&mut self, node: &mut Node, out: &mut Batch, max: usize) -> usize;
    /// Send `batch` (drained) and give the buffers back to the node.
    fn send(&mut self, node: &mut Node, batch: &mut Batch);
    /// A descriptor that becomes readable when frames wait, for sleeping
    /// when idle (`None`: the runner wakes on its tick only).
    fn fd(&self) -> Option<RawFd>;
    /// The link state now (`None`: the backend has no link to watch;
    /// `Some(Err)`: it could not be read, and the caller keeps the state it
    /// knew — a failed read is never a link down). Called a few times a
    /// second; drivers also refresh counters kept by the kernel here
    /// (AF_PACKET's ring drops).
    fn link_up(&mut self) -> Option<std::io::Result<bool>> {
        None
    }
    /// Whether frames wait that [`PortDriver::recv`] can take without a
    /// system call (a receive ring's next block has been handed over). The
    /// runner checks it before it sleeps; socket drivers answer `false` and
    /// rely on their descriptor.
    fn ready(&self) -> bool {
        false
    }
    /// Counters.
    fn counters(&self) -> &IoCounters;
}

/// A node's port drivers, each with the node port it serves.
pub type Drivers = Vec<(weft_packet::PortId, Box<dyn PortDriver>)>;

/// What a port's configuration says about the interface it is attached to,
/// read when the port is opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    /// The interface's MAC address.
    pub mac: Option<Mac>,
    /// The interface's MTU.
    pub mtu: Option<u16>,
}
