//! Time `encrypt` alone: `cargo run --release -p weft-elements --example enc_speed`.
use std::time::Instant;
use weft_dataplane::{Args, Ctx, InstanceId};
use weft_packet::{build, PacketPool};

fn main() {
    let class = weft_elements::classes()
        .into_iter()
        .find(|c| c.name == "encrypt")
        .expect("encrypt class");
    let mut e = class
        .create(&Args::parse(
            "key=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        ))
        .expect("config");
    let f = build::udp4(
        [2; 6],
        [4; 6],
        "10.0.0.1".parse().unwrap(),
        "10.0.0.2".parse().unwrap(),
        1,
        2,
        64,
        &[0u8; 22],
    );
    let mut pool = PacketPool::with_buffers(4);
    let mut emitted = Vec::new();
    let n = 1_000_000;
    let t = Instant::now();
    for i in 0..n {
        let mut p = pool.alloc(&f);
        p.meta.l3 = 14;
        p.meta.l4 = 34;
        let h = weft_packet::view::parse(p.data()).unwrap();
        p.meta.flow = h.flow;
        let mut cx = Ctx::new(i, InstanceId(1), &mut pool, &mut emitted);
        e.process(&mut cx, &mut p);
        pool.free(p);
    }
    println!("{:.0} ns per packet", t.elapsed().as_nanos() as f64 / n as f64);
}
