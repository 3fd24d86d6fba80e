//! Quick forwarding loop for profiling the engine alone:
//! `cargo run --release -p weft-dataplane --example fwd`.
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;
use weft_dataplane::{Node, PortConfig};
use weft_packet::{build, Batch};

fn main() {
    let mut n = Node::new("bench");
    n.add_port(PortConfig {
        name: "p0".into(),
        mac: [2, 0, 0, 0, 0, 1],
        mtu: 1500,
        addrs: vec!["10.0.0.1/24".parse().unwrap()],
    })
    .unwrap();
    n.add_port(PortConfig {
        name: "p1".into(),
        mac: [2, 0, 0, 0, 1, 1],
        mtu: 1500,
        addrs: vec!["10.0.1.1/24".parse().unwrap()],
    })
    .unwrap();
    n.add_neighbor(1, IpAddr::V4(Ipv4Addr::new(10, 0, 1, 2)), [2, 0xbb, 0, 0, 0, 1])
        .unwrap();
    let mut f = build::udp4(
        [2, 0xaa, 0, 0, 0, 1],
        [2, 0, 0, 0, 0, 1],
        Ipv4Addr::new(10, 0, 0, 2),
        Ipv4Addr::new(10, 0, 1, 2),
        1,
        2,
        64,
        &[0u8; 18],
    );
    f.resize(60, 0);
    let mut b: Batch = Vec::with_capacity(32);
    let mut out: Batch = Vec::with_capacity(64);
    let n_pkts = 20_000_000u64;
    let t = Instant::now();
    let mut sent = 0u64;
    while sent < n_pkts {
        for _ in 0..32 {
            n.alloc_into(&mut b, &f);
        }
        n.receive(sent, 0, &mut b);
        n.take_tx(1, &mut out);
        sent += out.len() as u64;
        for p in out.drain(..) {
            n.recycle(p);
        }
    }
    let dt = t.elapsed().as_secs_f64();
    println!(
        "{:.2} Mpps ({} pkts in {:.2}s), pool allocated {}",
        sent as f64 / dt / 1e6,
        sent,
        dt,
        n.pool_allocated()
    );
}
