//! Flow keys: the classifier's 6-tuple (in-port, source and destination
//! address, source and destination port, protocol).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Address family of a [`FlowKey`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[repr(u8)]
pub enum Family {
    /// Not IP (ARP, unknown ethertype).
    #[default]
    None = 0,
    /// IPv4.
    V4 = 4,
    /// IPv6.
    V6 = 6,
}

/// The fields filters match on. Addresses are stored as `u128` (IPv4 in the
/// low 32 bits) so prefix tests are one mask-and-compare for either family.
/// Ports are 0 when the protocol has none (ICMP: type and code are not ports).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Receiving port.
    pub in_port: u16,
    /// Address family.
    pub family: Family,
    /// IP protocol (IPv6: the transport after extension headers).
    pub proto: u8,
    /// Source address.
    pub src: u128,
    /// Destination address.
    pub dst: u128,
    /// Source port (TCP/UDP), else 0.
    pub sport: u16,
    /// Destination port (TCP/UDP), else 0.
    pub dport: u16,
}

impl FlowKey {
    /// The source address as an [`IpAddr`] (None when not IP).
    pub fn src_addr(&self) -> Option<IpAddr> {
        to_ip(self.family, self.src)
    }
    /// The destination address as an [`IpAddr`] (None when not IP).
    pub fn dst_addr(&self) -> Option<IpAddr> {
        to_ip(self.family, self.dst)
    }
}

/// Convert an address to the `u128` form used in [`FlowKey`].
pub fn addr_bits(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v4) => u32::from(v4) as u128,
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn to_ip(f: Family, bits: u128) -> Option<IpAddr> {
    match f {
        Family::V4 => Some(IpAddr::V4(Ipv4Addr::from(bits as u32))),
        Family::V6 => Some(IpAddr::V6(Ipv6Addr::from(bits))),
        Family::None => None,
    }
}
