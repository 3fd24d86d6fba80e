//! An active application in ~50 lines: make a domain, open an in-channel
//! for UDP to port 7000 on `if0` and an out-channel on the same memif
//! interface, then send every packet back into the node (which routes it
//! on) — the UDP active path of Silk's evaluation.
//!
//! ```text
//! weft node run --config node.toml        # with [nodeos] dir = "/run/weft/n1"
//! cargo run -p weft-nodeos --example active_echo -- /run/weft/n1/nodeos.sock if0
//! ```
use weft_nodeos::{DemuxKey, DomainSpec, InChanSpec, Limits, NodeOs, OutChanSpec};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let socket = args.get(1).map(String::as_str).unwrap_or("/run/weft/nodeos.sock");
    let port = args.get(2).map(String::as_str).unwrap_or("if0");

    // 1. Who am I to this node?
    let mut os = NodeOs::connect(socket)?;
    let (me, node) = os.hello()?;
    println!("connected to {node} as {me}");

    // 2. A domain: specifications are plain values, handles come back.
    let domain = os.domain_create(&DomainSpec {
        name: format!("echo-{}", std::process::id()),
        limits: Limits {
            bandwidth_bps: Some(100_000_000),
            ..Default::default()
        },
        ..Default::default()
    })?;

    // 3. Channels: in for the matching packets, out on the same interface.
    let (inc, memif) = os.in_chan(&InChanSpec {
        domain,
        key: DemuxKey {
            proto: format!("{port}/ipv4/udp"),
            addr: Some("dport=7000".into()),
            patterns: vec![],
        },
    })?;
    os.out_chan(&OutChanSpec {
        domain,
        bandwidth_bps: None,
        attach: Some(inc),
    })?;

    // 4. Attach to the packets (memif) and echo them until the node goes.
    let mut app = NodeOs::attach(&memif, "active-echo")?;
    println!("in-channel {inc} attached; echoing");
    let mut batch: Vec<Vec<u8>> = Vec::with_capacity(64);
    while app.alive() {
        app.recv(64, |f| batch.push(f.to_vec()))?;
        for f in batch.drain(..) {
            app.send(&f);
        }
        app.flush();
        std::hint::spin_loop();
    }
    // 5. Destroying the domain destroys its channels (the node does it too
    //    when this process dies: the channels wait for another attachment).
    let _ = os.domain_destroy(domain);
    Ok(())
}
