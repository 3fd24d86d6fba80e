//! A memif server that sends frames to whatever client attaches and counts
//! what comes back — run DPDK's testpmd in io mode against it to check
//! the two speak the same memif:
//!
//! ```text
//! cargo run -p weft-memif --example reflect -- /tmp/m.sock 100000 &
//! dpdk-testpmd -l 0-1 --no-huge -m 512 --no-pci --file-prefix t \
//!   -d /usr/lib/x86_64-linux-gnu/librte_net_memif.so.23 \
//!   -d /usr/lib/x86_64-linux-gnu/librte_mempool_ring.so.23 \
//!   --vdev=net_memif0,role=client,socket=/tmp/m.sock -- \
//!   --total-num-mbufs=8192 --forward-mode=io --auto-start
//! ```
use std::time::{Duration, Instant};
use weft_memif::io::Server;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).ok_or("usage: reflect SOCKET [COUNT]")?;
    let count: u64 = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(10_000);
    let mut server = Server::bind(std::path::Path::new(path), "weft-reflect", 2048)?;
    let mut conn = loop {
        if let Some(r) = server.poll(Instant::now(), |_, _| true).into_iter().next() {
            break r.map_err(|(_, e)| e)?;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    println!("connected: id {} app {:?} uid {}", conn.id, conn.app, conn.uid);
    let mut frame = [0u8; 64];
    frame[..6].copy_from_slice(&[0xff; 6]);
    frame[12..14].copy_from_slice(&[0x08, 0x00]);
    let (mut sent, mut back) = (0u64, 0u64);
    let start = Instant::now();
    while back < count && start.elapsed() < Duration::from_secs(20) {
        if sent < count {
            if let Ok(free) = conn.to_client.begin() {
                for _ in 0..free.min(32) {
                    frame[14..22].copy_from_slice(&sent.to_be_bytes());
                    if conn.to_client.push(&frame) {
                        sent += 1;
                    }
                }
                conn.to_client.flush();
            }
        }
        conn.from_client.recv(64, |_| back += 1)?;
        if !conn.link.alive() {
            break;
        }
    }
    let c = conn.to_client.ring.counters;
    println!(
        "sent {sent} back {back} in {:?}; full {} bad {}",
        start.elapsed(),
        c.full,
        conn.from_client.ring.counters.bad_desc
    );
    Ok(())
}
