//! # weft-packet — packet buffers, header views, checksums and flow keys
//!
//! **API Boundary.** Every other Weft crate sees packets through this crate.
//!
//! * [`buf`] — [`Packet`]: one buffer per packet with headroom (for
//!   encapsulation and option insertion) and tailroom; [`Batch`]; [`PacketPool`]
//!   so the hot path never allocates once warm.
//! * [`view`] — parsed views of Ethernet, ARP, IPv4 (with options), IPv6 (with
//!   extension headers), UDP, TCP, ICMP/ICMPv6, built on `etherparse` (a
//!   well-kept parser, not hand-rolled); [`view::ParseError`] names the layer
//!   and the reason so bad input can be counted per reason.
//! * [`checksum`] — Internet checksum and RFC 1624 incremental update.
//! * [`flow`] — [`FlowKey`], the 6-tuple classifier key.
//! * [`build`] — small frame builders for replies (ICMP, ARP, ND) and tests.
//! * [`wire`] — smoltcp-style views of single headers (Ethernet, IPv4,
//!   IPv6, UDP, ICMP, neighbour discovery, MPLS): every field the engine
//!   reads or rewrites, by name.
//!   Its [`mpls`] module also holds the label range and the MPLS-in-UDP
//!   port, shared by the engine's label table and the PBR protocol.
//! * [`router_alert`] — the IP Router Alert option (RFC 2113, RFC 2711):
//!   finding it in a packet, for the engine's on-path signaling hook.
//!
//! **Architecture invariant:** this crate knows nothing about the engine,
//! elements, I/O or time. It never panics on bytes from outside.
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod buf;
pub mod build;
pub mod checksum;
pub mod flow;
pub mod router_alert;
pub mod view;
pub mod wire;

pub use wire::mpls;

pub use buf::{Batch, Meta, Packet, PacketPool, PortId};
pub use flow::FlowKey;
pub use view::{Headers, ParseError, L3, L4};

/// An Ethernet MAC address.
pub type Mac = [u8; 6];

/// The broadcast MAC address.
pub const BROADCAST_MAC: Mac = [0xff; 6];

/// Ethertypes Weft handles.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// ARP.
    pub const ARP: u16 = 0x0806;
    /// IPv6.
    pub const IPV6: u16 = 0x86dd;
    /// MPLS unicast (RFC 3032).
    pub const MPLS: u16 = 0x8847;
}

/// IP protocol numbers Weft handles.
pub mod proto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
}
