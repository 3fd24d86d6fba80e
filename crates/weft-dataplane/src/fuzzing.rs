//! Entry points shared by the fuzz targets (`fuzz/`) and the property tests,
//! so what the fuzzer exercises is also exercised by `cargo test`.

use crate::node::{Node, PortConfig};
use std::net::{IpAddr, Ipv4Addr};
use weft_packet::{Batch, Packet};

/// A two-port router with IPv4 and IPv6 addresses and a default route.
pub fn fuzz_router() -> Node {
    let mut n = Node::new("fuzz");
    let p = |name: &str, mac: [u8; 6], a: &str, b: &str| PortConfig {
        name: name.into(),
        mac,
        mtu: 1500,
        addrs: vec![a.parse().expect("literal"), b.parse().expect("literal")],
    };
    let _ = n.add_port(p("p0", [2, 0, 0, 0, 0, 1], "10.0.0.1/24", "2001:db8::1/64"));
    let _ = n.add_port(p("p1", [2, 0, 0, 0, 1, 1], "10.0.1.1/24", "2001:db8:1::1/64"));
    let _ = n.add_neighbor(1, IpAddr::V4(Ipv4Addr::new(10, 0, 1, 2)), [2, 0xbb, 0, 0, 0, 1]);
    let _ = n.add_route(
        "0.0.0.0/0".parse().expect("literal"),
        Some(IpAddr::V4(Ipv4Addr::new(10, 0, 1, 2))),
        None,
    );
    n
}

/// Split `data` into frames (a length byte, then that many bytes) and feed
/// them to a router on alternating ports, then advance its clock. Every frame
/// must end up sent, held for a neighbour, or counted as dropped.
pub fn node_rx(data: &[u8]) {
    let mut n = fuzz_router();
    let mut rest = data;
    let mut port = 0u16;
    let mut t = 0u64;
    while let Some((&len, tail)) = rest.split_first() {
        let len = (len as usize * 2).min(tail.len());
        let (frame, next) = tail.split_at(len);
        // Frames are addressed to the router's MAC when long enough, so
        // the fuzzer reaches past the L2 check.
        let mut f = frame.to_vec();
        if f.len() >= 6 && f[0] & 1 == 0 {
            f[..6].copy_from_slice(&n.port_mac(port).unwrap_or([0; 6]));
        }
        let mut b: Batch = vec![Packet::from_bytes(&f)];
        n.receive(t, port, &mut b);
        let mut out = Vec::new();
        for p in 0..n.port_count() as u16 {
            n.take_tx(p, &mut out);
        }
        for p in out {
            weft_packet::view::check_parse_invariants(p.data());
            n.recycle(p);
        }
        port ^= 1;
        t += 1_000_000_000;
        rest = next;
    }
    n.tick(t + 10_000_000_000);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn random_frames_never_panic_the_node(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            super::node_rx(&data);
        }

        #[test]
        fn mutated_valid_frames_never_panic_the_node(idx in 0usize..60, byte in any::<u8>(), v6 in any::<bool>()) {
            let f = if v6 {
                weft_packet::build::udp6([2; 6], [2, 0, 0, 0, 0, 1], "2001:db8::2".parse().unwrap(), "2001:db8:1::2".parse().unwrap(), 1, 2, 2, b"x")
            } else {
                weft_packet::build::udp4([2; 6], [2, 0, 0, 0, 0, 1], "10.0.0.2".parse().unwrap(), "10.0.1.2".parse().unwrap(), 1, 2, 2, b"x")
            };
            let mut f = f;
            let i = idx % f.len();
            f[i] = byte;
            let mut data = vec![(f.len() / 2) as u8];
            data.extend_from_slice(&f);
            super::node_rx(&data);
        }
    }
}
