//! # weft-io — ports
//!
//! A port moves frames between a [`weft_dataplane::Node`] and the world in
//! batches (DESIGN section 5; `docs/ports.md`):
//!
//! * [`mem`] — in-memory links (emulator, tests, the engine benchmark);
//! * [`vxlan`] — VXLAN (RFC 7348) over a UDP socket: links between node
//!   processes on one or many machines, and to Linux `vxlan` devices;
//! * [`afpacket`] — AF_PACKET on an existing interface (veth, NIC), with a
//!   memory-mapped `TPACKET_V3` receive ring;
//! * [`tun`] — node-local traffic punted to a kernel TUN interface;
//! * [`router_alert`] — an ordinary UDP socket that sends with the IP
//!   Router Alert option (on-path signaling from a Linux host).
//!
//! Socket ports implement [`PortDriver`], which the node runner
//! (`weft-control`) polls on the node's thread. All `unsafe` (the system
//! calls std does not wrap) is in the private `sys` module.
//!
//! **Architecture invariant:** backends know nothing about elements, filters
//! or routes; the engine knows nothing about sockets.
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod afpacket;
pub mod driver;
pub mod mem;
pub mod router_alert;
mod sys;
pub mod tun;
pub mod vxlan;

pub use driver::{Drivers, IoCounters, LinkInfo, PortDriver};
pub use sys::{raise_nofile, wait_readable, MAX_BATCH};
