//! VXLAN link ports (RFC 7348): a link is an Ethernet-over-UDP tunnel on an
//! ordinary UDP socket, so nodes run unprivileged as processes on one or
//! many machines, and a Linux host joins with a plain `vxlan` device.
//!
//! Header (8 bytes, RFC 7348 section 5):
//!
//! ```text
//!  0                   1                   2                   3
//! |R|R|R|R|I|R|R|R|            Reserved                           |
//! |                VXLAN Network Identifier (VNI) |   Reserved    |
//! ```
//!
//! [`decap`] is strict where a wrong bit changes the meaning: the I flag
//! must be set and the other flag bits clear (extensions such as GBP or
//! GPE set them, and Weft does not speak those); the 24- and 8-bit
//! reserved fields are ignored on receipt as the RFC says. Every failure is
//! a [`VxlanError`] with a stable counter label; nothing here panics on
//! outside bytes (fuzz target `vxlan_decap`).

use crate::driver::{check_frame_len, IoCounters, PortDriver};
use crate::sys::{self, RawAddr, RxBufs};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use weft_dataplane::Node;
use weft_packet::Batch;

/// IANA's VXLAN port.
pub const DEFAULT_DSTPORT: u16 = 4789;
/// VXLAN header length.
pub const HEADER_LEN: usize = 8;
/// The I flag: the VNI is valid.
pub const FLAG_I: u8 = 0x08;
/// Largest VNI (24 bits).
pub const MAX_VNI: u32 = 0x00ff_ffff;
/// Receive slot: a jumbo inner frame plus the header fits; larger
/// datagrams are seen by their length and counted as oversize.
const SLOT: usize = 9216 + HEADER_LEN;

/// Why a datagram is not a VXLAN frame for this port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VxlanError {
    /// Shorter than the 8-byte header.
    #[error("shorter than a VXLAN header")]
    Truncated,
    /// The I flag is clear: the VNI field is not valid.
    #[error("I flag clear")]
    NoVniFlag,
    /// Flag bits other than I are set (GBP, GPE, … extensions).
    #[error("reserved flag bits set ({0:#04x})")]
    ReservedFlags(u8),
    /// The VNI is not this port's.
    #[error("VNI {got} is not this port's")]
    VniMismatch {
        /// The VNI in the header.
        got: u32,
    },
    /// The inner frame is shorter than an Ethernet header.
    #[error("inner frame shorter than an Ethernet header")]
    InnerRunt,
}

impl VxlanError {
    /// Stable counter label.
    pub fn as_str(self) -> &'static str {
        match self {
            VxlanError::Truncated => "vxlan-truncated",
            VxlanError::NoVniFlag => "vxlan-no-i-flag",
            VxlanError::ReservedFlags(_) => "vxlan-reserved-flags",
            VxlanError::VniMismatch { .. } => "vxlan-vni-mismatch",
            VxlanError::InnerRunt => "vxlan-inner-runt",
        }
    }
}

/// The header Weft sends for `vni` (only the low 24 bits are used).
pub fn header(vni: u32) -> [u8; HEADER_LEN] {
    let v = (vni & MAX_VNI).to_be_bytes();
    [FLAG_I, 0, 0, 0, v[1], v[2], v[3], 0]
}

/// The VNI of a header that [`decap`] accepted (or any 8 bytes).
pub fn vni_of(h: &[u8; HEADER_LEN]) -> u32 {
    u32::from_be_bytes([0, h[4], h[5], h[6]])
}

/// Check a UDP payload's VXLAN header against `vni` and return the inner
/// Ethernet frame.
pub fn decap(payload: &[u8], vni: u32) -> Result<&[u8], VxlanError> {
    let Some((h, inner)) = payload.split_first_chunk::<HEADER_LEN>() else {
        return Err(VxlanError::Truncated);
    };
    if h[0] & FLAG_I == 0 {
        return Err(VxlanError::NoVniFlag);
    }
    if h[0] & !FLAG_I != 0 {
        return Err(VxlanError::ReservedFlags(h[0] & !FLAG_I));
    }
    let got = vni_of(h);
    if got != vni & MAX_VNI {
        return Err(VxlanError::VniMismatch { got });
    }
    if inner.len() < crate::driver::MIN_FRAME {
        return Err(VxlanError::InnerRunt);
    }
    Ok(inner)
}

/// A VXLAN port's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VxlanConfig {
    /// Local address to bind (`127.0.0.1:4789`).
    pub local: SocketAddr,
    /// The peer's address (its IP and its VXLAN UDP port).
    pub remote: SocketAddr,
    /// VXLAN network identifier (24 bits).
    pub vni: u32,
    /// Inner IP MTU: inner frames longer than MTU + 18 are dropped.
    pub mtu: u16,
}

/// A VXLAN link port.
pub struct VxlanPort {
    sock: UdpSocket,
    cfg: VxlanConfig,
    remote: RawAddr,
    hdr: [u8; HEADER_LEN],
    rx: RxBufs,
    counters: IoCounters,
}

impl std::fmt::Debug for VxlanPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VxlanPort").field("cfg", &self.cfg).finish()
    }
}

impl VxlanPort {
    /// Bind the local UDP address (no privileges needed above port 1023).
    pub fn open(cfg: VxlanConfig) -> io::Result<VxlanPort> {
        if cfg.vni > MAX_VNI {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("VNI {} does not fit in 24 bits", cfg.vni),
            ));
        }
        let sock = UdpSocket::bind(cfg.local)?;
        sock.set_nonblocking(true)?;
        sys::grow_buffers(sock.as_raw_fd(), 4 << 20);
        Ok(VxlanPort {
            remote: RawAddr::from_socket_addr(cfg.remote),
            hdr: header(cfg.vni),
            rx: RxBufs::new(32, SLOT),
            sock,
            cfg,
            counters: IoCounters::default(),
        })
    }

    /// The bound address (the port number when `local` asked for port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    /// The settings.
    pub fn config(&self) -> &VxlanConfig {
        &self.cfg
    }
}

impl PortDriver for VxlanPort {
    fn kind(&self) -> &'static str {
        "vxlan"
    }

    fn describe(&self) -> String {
        format!("vxlan vni {} {} -> {}", self.cfg.vni, self.cfg.local, self.cfg.remote)
    }

    fn recv(&mut self, node: &mut Node, out: &mut Batch, max: usize) -> usize {
        let n = match self.rx.recv(self.sock.as_raw_fd(), max) {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(error = %e, "vxlan recvmmsg");
                self.counters.drop("rx-error");
                return 0;
            }
        };
        let mut got = 0;
        for i in 0..n {
            let (data, full, from) = self.rx.msg(i);
            // Kernel vxlan devices send from a hashed source port: check the
            // peer's IP only.
            match sys::socket_addr_of(from) {
                Some(a) if a.ip() == self.cfg.remote.ip() => {}
                _ => {
                    self.counters.drop("wrong-peer");
                    continue;
                }
            }
            if full > data.len() {
                self.counters.drop("oversize");
                continue;
            }
            let inner = match decap(data, self.cfg.vni) {
                Ok(f) => f,
                Err(e) => {
                    self.counters.drop(e.as_str());
                    continue;
                }
            };
            if let Err(r) = check_frame_len(inner.len(), self.cfg.mtu) {
                self.counters.drop(r);
                continue;
            }
            self.counters.rx_packets += 1;
            self.counters.rx_bytes += inner.len() as u64;
            node.alloc_into(out, inner);
            got += 1;
        }
        got
    }

    fn send(&mut self, node: &mut Node, batch: &mut Batch) {
        send_all(
            self.sock.as_raw_fd(),
            &self.hdr,
            Some(&self.remote),
            batch,
            &mut self.counters,
        );
        for p in batch.drain(..) {
            node.recycle(p);
        }
    }

    fn fd(&self) -> Option<RawFd> {
        Some(self.sock.as_raw_fd())
    }

    fn counters(&self) -> &IoCounters {
        &self.counters
    }
}

/// Send a whole batch with `sendmmsg`, skipping (and counting) a message
/// the kernel refuses, and counting what did not fit as `tx-full`.
pub(crate) fn send_all(fd: RawFd, prefix: &[u8], dest: Option<&RawAddr>, batch: &Batch, c: &mut IoCounters) {
    let mut i = 0;
    while i < batch.len() {
        match sys::send_batch(fd, prefix, batch[i..].iter().map(|p| p.data()), dest) {
            Ok(0) => {
                c.drop_n("tx-full", (batch.len() - i) as u64);
                return;
            }
            Ok(n) => {
                for p in &batch[i..i + n] {
                    c.tx_packets += 1;
                    c.tx_bytes += p.len() as u64;
                }
                i += n;
            }
            Err(e) => {
                let reason = match e.raw_os_error() {
                    Some(libc::EMSGSIZE) => "tx-too-big",
                    Some(libc::ENOBUFS) => "tx-full",
                    Some(libc::ENETDOWN) | Some(libc::ENXIO) => "tx-link-down",
                    _ => "tx-error",
                };
                tracing::trace!(error = %e, reason, "send");
                c.drop(reason);
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[12] = 0x08;
        f
    }

    #[test]
    fn header_roundtrip() {
        let h = header(0x12_3456);
        assert_eq!(h, [0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0]);
        assert_eq!(vni_of(&h), 0x12_3456);
        let mut d = h.to_vec();
        d.extend(frame());
        assert_eq!(decap(&d, 0x12_3456).unwrap().len(), 60);
    }

    #[test]
    fn malformed_headers_are_typed() {
        let f = frame();
        let with = |h: [u8; 8]| {
            let mut d = h.to_vec();
            d.extend(&f);
            d
        };
        assert_eq!(decap(&[0x08, 0, 0], 1), Err(VxlanError::Truncated));
        assert_eq!(decap(&with([0, 0, 0, 0, 0, 0, 1, 0]), 1), Err(VxlanError::NoVniFlag));
        assert_eq!(
            decap(&with([0x88, 0, 0, 0, 0, 0, 1, 0]), 1),
            Err(VxlanError::ReservedFlags(0x80))
        );
        assert_eq!(
            decap(&with([0x08, 0, 0, 0, 0, 0, 2, 0]), 1),
            Err(VxlanError::VniMismatch { got: 2 })
        );
        assert_eq!(decap(&header(1)[..], 1), Err(VxlanError::InnerRunt));
        // Reserved fields other than flags are ignored on receipt (RFC 7348).
        assert!(decap(&with([0x08, 1, 2, 3, 0, 0, 1, 9]), 1).is_ok());
        let labels: std::collections::BTreeSet<_> = [
            VxlanError::Truncated,
            VxlanError::NoVniFlag,
            VxlanError::ReservedFlags(1),
            VxlanError::VniMismatch { got: 0 },
            VxlanError::InnerRunt,
        ]
        .iter()
        .map(|e| e.as_str())
        .collect();
        assert_eq!(labels.len(), 5);
    }

    #[test]
    fn decap_never_panics_on_short_or_random_input() {
        let mut x: u32 = 12345;
        for len in 0..200 {
            let d: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = decap(&d, x & MAX_VNI);
        }
    }

    /// Two ports on loopback, one bad datagram of each kind in between:
    /// every good frame arrives, every bad one is counted by reason.
    #[test]
    fn two_ports_on_loopback_count_bad_input() {
        let mut a = VxlanPort::open(VxlanConfig {
            local: "127.0.0.1:0".parse().unwrap(),
            remote: "127.0.0.1:9".parse().unwrap(),
            vni: 42,
            mtu: 1500,
        })
        .unwrap();
        let b_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b_addr = b_sock.local_addr().unwrap();
        drop(b_sock);
        let mut b = VxlanPort::open(VxlanConfig {
            local: b_addr,
            remote: a.local_addr().unwrap(),
            vni: 42,
            mtu: 1500,
        })
        .unwrap();
        a.cfg.remote = b_addr;
        a.remote = RawAddr::from_socket_addr(b_addr);
        let mut node = Node::new("t");
        let mut batch: Batch = (0..5).map(|_| node.alloc(&frame())).collect();
        a.send(&mut node, &mut batch);
        assert_eq!(a.counters().tx_packets, 5);
        let raw = UdpSocket::bind("127.0.0.1:0").unwrap();
        let bad: Vec<Vec<u8>> = vec![
            vec![8, 0, 0],
            [&[0u8, 0, 0, 0, 0, 0, 42, 0][..], &frame()].concat(),
            [&[0x0cu8, 0, 0, 0, 0, 0, 42, 0][..], &frame()].concat(),
            [&header(7)[..], &frame()].concat(),
            [&header(42)[..], &[0u8; 10][..]].concat(),
            [&header(42)[..], &vec![0u8; 3000][..]].concat(),
        ];
        for d in &bad {
            raw.send_to(d, b_addr).unwrap();
        }
        let mut out = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while out.len() < 5 && std::time::Instant::now() < deadline {
            b.recv(&mut node, &mut out, 32);
        }
        // Drain the rest.
        for _ in 0..10 {
            b.recv(&mut node, &mut out, 32);
        }
        assert_eq!(out.len(), 5);
        let c = b.counters();
        for r in [
            "vxlan-truncated",
            "vxlan-no-i-flag",
            "vxlan-reserved-flags",
            "vxlan-vni-mismatch",
            "vxlan-inner-runt",
            "oversize",
        ] {
            assert_eq!(c.dropped(r), 1, "{r}: {:?}", c.drops);
        }
    }
}
