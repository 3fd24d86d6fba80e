//! Shared set-up: a two-port node, frames, and the example plugins.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};
use weft_dataplane::classifier::Match;
use weft_dataplane::{FilterId, FilterSpec, Hook, InstanceId, Node, PortConfig};
use weft_packet::{build, Batch};
use weft_wasm::{HostConfig, WasmClass, WasmHost};

pub const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
pub const SRC2: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
pub const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 2);
/// Destination port of the flow plugins are bound to.
pub const PLUGIN_PORT: u16 = 6060;
/// Destination port of other traffic (no filter).
pub const OTHER_PORT: u16 = 7070;

/// A host whose packet batches may run 200 ms of wall clock: these tests
/// check what plugins do, and a test thread preempted on a loaded machine
/// must not count as a plugin over its budget (the budget tests set their
/// own).
pub fn host() -> WasmHost {
    WasmHost::new(HostConfig {
        epoch_ticks: 200,
        ..HostConfig::default()
    })
    .expect("wasm host")
}

pub fn plugin(name: &str) -> Vec<u8> {
    weft_wasm::plugins::read(name).expect("plugins/build.sh builds the example plugins")
}

pub fn load(node: &mut Node, host: &WasmHost, class: &str, file: &str) -> WasmClass {
    let c = host.load_class(class, &plugin(file)).expect("plugin loads");
    node.upsert_class(c.element_class());
    c
}

pub fn node() -> Node {
    let mut n = Node::new("t");
    for c in weft_elements::classes() {
        n.add_class(c).unwrap();
    }
    n.add_port(PortConfig {
        name: "in".into(),
        mac: [2, 0, 0, 0, 0, 1],
        mtu: 1500,
        addrs: vec!["10.0.0.1/24".parse().unwrap()],
    })
    .unwrap();
    n.add_port(PortConfig {
        name: "out".into(),
        mac: [2, 0, 0, 0, 1, 1],
        mtu: 1500,
        addrs: vec!["10.0.1.1/24".parse().unwrap()],
    })
    .unwrap();
    n.add_neighbor(1, IpAddr::V4(DST), [2, 0xbb, 0, 0, 0, 1]).unwrap();
    n
}

/// Bind `chain` to UDP traffic to `dport`.
pub fn bind(node: &mut Node, dport: u16, chain: Vec<InstanceId>) -> FilterId {
    let m = Match {
        proto: Some(17),
        dport: Some((dport, dport)),
        ..Default::default()
    };
    node.add_filter(FilterSpec {
        hook: Some(Hook::Prerouting),
        m,
        chain,
        position: None,
    })
    .unwrap()
}

pub fn frame_from(src: Ipv4Addr, ttl: u8, dport: u16, payload: &[u8]) -> Vec<u8> {
    build::udp4(
        [2, 0xaa, 0, 0, 0, 1],
        [2, 0, 0, 0, 0, 1],
        src,
        DST,
        40000,
        dport,
        ttl,
        payload,
    )
}

pub fn frame(dport: u16, payload: &[u8]) -> Vec<u8> {
    frame_from(SRC, 64, dport, payload)
}

/// Receive `frames` on port 0 as one batch at `now_ns`; the frames sent out
/// of port 1.
pub fn send(node: &mut Node, now_ns: u64, frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut b: Batch = frames.iter().map(|f| node.alloc(f)).collect();
    node.receive(now_ns, 0, &mut b);
    let mut out = Batch::new();
    node.take_tx(1, &mut out);
    let v = out.iter().map(|p| p.data().to_vec()).collect();
    for p in out {
        node.recycle(p);
    }
    v
}

/// The plugin's own report.
pub fn plugin_report(node: &Node, id: InstanceId) -> serde_json::Value {
    node.report(id).unwrap()["element"]["plugin"].clone()
}

/// The host's view of the instance.
pub fn wasm_report(node: &Node, id: InstanceId) -> serde_json::Value {
    node.report(id).unwrap()["element"]["wasm"].clone()
}

/// True when the UDP checksum of an IPv4 frame verifies.
pub fn udp_checksum_ok(f: &[u8]) -> bool {
    let h = weft_packet::view::parse(f).expect("frame parses");
    let l3 = h.l3_off();
    let l4 = h.l4_off().expect("udp");
    let ulen = u16::from_be_bytes([f[l4 + 4], f[l4 + 5]]) as usize;
    let mut src = [0u8; 4];
    let mut dst = [0u8; 4];
    src.copy_from_slice(&f[l3 + 12..l3 + 16]);
    dst.copy_from_slice(&f[l3 + 16..l3 + 20]);
    let s = weft_packet::checksum::pseudo_v4(src, dst, 17, ulen as u16);
    weft_packet::checksum::finish(weft_packet::checksum::sum(&f[l4..l4 + ulen], s)) == 0
}
