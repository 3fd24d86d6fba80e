//! Test helpers: frames, packets with engine metadata, a context to run
//! elements in.

use std::net::{Ipv4Addr, Ipv6Addr};
use weft_dataplane::{Ctx, Element, EmitTo, InstanceId, Verdict};
use weft_packet::{build, view, Packet, PacketPool};

pub const A4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const B4: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 2);
pub const A6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
pub const B6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2);

/// Ethernet/IPv4/UDP from A4 to B4, TTL 64.
pub fn v4(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    build::udp4([2; 6], [4; 6], A4, B4, sport, dport, 64, payload)
}

/// Ethernet/IPv6/UDP from A6 to B6, hop limit 64.
pub fn v6(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    build::udp6([2; 6], [4; 6], A6, B6, sport, dport, 64, payload)
}

/// A packet with the metadata the engine fills in (`in_port` 0).
pub fn pkt(frame: &[u8]) -> Packet {
    let mut p = Packet::from_bytes(frame);
    reparse(&mut p);
    p
}

/// Refresh the metadata as the engine does after a chain.
pub fn reparse(p: &mut Packet) {
    if let Ok(h) = view::parse(p.data()) {
        p.meta.l3 = h.l3_off() as u16;
        p.meta.l4 = h.l4_off().unwrap_or(0) as u16;
        let in_port = p.meta.in_port;
        p.meta.flow = h.flow;
        p.meta.flow.in_port = in_port;
    }
}

/// A pool and an emitted-packets list, as a node's worker has.
#[derive(Default)]
pub struct Harness {
    pub pool: PacketPool,
    pub emitted: Vec<(EmitTo, Packet)>,
}

impl Harness {
    /// Run one packet through `e` at `now_ns`.
    pub fn run(&mut self, e: &mut dyn Element, now_ns: u64, p: &mut Packet) -> Verdict {
        let mut cx = Ctx::new(now_ns, InstanceId(1), &mut self.pool, &mut self.emitted);
        e.process(&mut cx, p)
    }
}

/// Create an element of `class` from a configuration string, as the node
/// does (factory, then initialize).
pub fn make(class: &str, config: &str) -> Box<dyn Element> {
    let c = crate::classes()
        .into_iter()
        .find(|c| c.name == class)
        .unwrap_or_else(|| panic!("no class {class}"));
    c.create(&weft_dataplane::Args::parse(config))
        .unwrap_or_else(|e| panic!("{class} {config:?}: {e}"))
}

/// Whether `class` rejects `config`.
pub fn rejects(class: &str, config: &str) -> bool {
    crate::classes()
        .into_iter()
        .find(|c| c.name == class)
        .map(|c| c.create(&weft_dataplane::Args::parse(config)).is_err())
        .unwrap_or(false)
}
