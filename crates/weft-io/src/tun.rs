//! Node-local traffic punted to a kernel TUN interface (`docs/ports.md`,
//! "Traffic for the node itself").
//!
//! The node answers ARP / ND and ICMP echo for its addresses itself, in the
//! engine. Transport traffic for the node (the control API over TCP, later
//! signaling) is handed to the kernel: the node listens on the punted
//! `(protocol, port)`s ([`Node::listen`]), and [`TunPunt`] writes what
//! [`Node::poll_local`] returns, without its Ethernet header, into a TUN
//! interface that carries the node's addresses; what the kernel answers
//! comes back out of the TUN and is sent with [`Node::send`], so it takes
//! OUTPUT → routing → POSTROUTING like anything the node originates. The
//! kernel's TCP, not a second TCP in Weft, serves the API.

use crate::driver::IoCounters;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use weft_dataplane::Node;

/// A TUN interface attached for punting.
pub struct TunPunt {
    file: std::fs::File,
    name: String,
    buf: Vec<u8>,
    counters: IoCounters,
}

impl std::fmt::Debug for TunPunt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunPunt").field("name", &self.name).finish()
    }
}

impl TunPunt {
    /// Attach to the existing TUN interface `name` (created with `ip
    /// tuntap add NAME mode tun`, carrying the node's addresses).
    pub fn open(name: &str) -> io::Result<TunPunt> {
        let file = crate::sys::tun_attach(name).map_err(|e| io::Error::new(e.kind(), format!("tun {name:?}: {e}")))?;
        Ok(TunPunt {
            file,
            name: name.to_string(),
            buf: vec![0u8; 14 + 65536],
            counters: IoCounters::default(),
        })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Counters: `rx` is node → kernel, `tx` is kernel → node.
    pub fn counters(&self) -> &IoCounters {
        &self.counters
    }

    /// Readable when the kernel has something to send.
    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Move what the node delivered to its listeners into the kernel.
    /// Returns how many packets moved.
    pub fn punt(&mut self, node: &mut Node) -> usize {
        let mut n = 0;
        while let Some(p) = node.poll_local() {
            let d = p.data();
            let l3 = p.meta.l3 as usize;
            if l3 == 0 || l3 > d.len() {
                self.counters.drop("punt-malformed");
            } else {
                // A TUN write takes one whole packet or fails.
                match self.file.write(&d[l3..]) {
                    Ok(w) if w == d.len() - l3 => {
                        self.counters.rx_packets += 1;
                        self.counters.rx_bytes += (d.len() - l3) as u64;
                        n += 1;
                    }
                    Ok(_) => self.counters.drop("punt-short-write"),
                    Err(e) => {
                        tracing::trace!(error = %e, "tun write");
                        self.counters.drop("punt-error");
                    }
                }
            }
            node.recycle(p);
        }
        n
    }

    /// Send what the kernel wrote into the TUN (at most `max` packets).
    pub fn inject(&mut self, node: &mut Node, max: usize) -> usize {
        let mut n = 0;
        while n < max {
            let got = match self.file.read(&mut self.buf[14..]) {
                Ok(0) => break,
                Ok(g) => g,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::trace!(error = %e, "tun read");
                    self.counters.drop("inject-error");
                    break;
                }
            };
            let ethertype: u16 = match self.buf[14] >> 4 {
                4 => 0x0800,
                6 => 0x86dd,
                _ => {
                    self.counters.drop("inject-not-ip");
                    continue;
                }
            };
            // MAC addresses are filled in on output.
            self.buf[..12].fill(0);
            self.buf[12..14].copy_from_slice(&ethertype.to_be_bytes());
            node.send(&self.buf[..14 + got]);
            self.counters.tx_packets += 1;
            self.counters.tx_bytes += got as u64;
            n += 1;
        }
        n
    }
}
