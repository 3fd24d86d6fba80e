//! Silk's wavelet dropper (paper §5, figure 7) split as in the paper:
//! the data plane on the node — a cut-through channel that counts each
//! layer's bytes, drops layers above a cut-off and keeps the stream to its
//! domain's bandwidth — and the control plane here, reading the counters
//! every 100 ms and choosing the cut-off (`weft_nodeos::wavelet`).
//!
//! ```text
//! cargo run -p weft-nodeos --example wavelet_dropper -- /run/weft/n1/nodeos.sock if0 5004 2000000
//! ```
//! (socket, input port, UDP port of the stream, bandwidth in bit/s; the
//! layer is the first byte of each UDP payload.)
use std::time::Duration;
use weft_nodeos::wavelet::Dropper;
use weft_nodeos::{CutChanSpec, DemuxKey, DomainSpec, Limits, NodeOs};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    let socket = a.get(1).map(String::as_str).unwrap_or("/run/weft/nodeos.sock");
    let port = a.get(2).map(String::as_str).unwrap_or("if0");
    let udp: u16 = a.get(3).map(|s| s.parse()).transpose()?.unwrap_or(5004);
    let bps: u64 = a.get(4).map(|s| s.parse()).transpose()?.unwrap_or(2_000_000);

    let mut os = NodeOs::connect(socket)?;
    let domain = os.domain_create(&DomainSpec {
        name: format!("wavelet-{}", std::process::id()),
        limits: Limits {
            bandwidth_bps: Some(bps),
            ..Default::default()
        },
        ..Default::default()
    })?;
    let chan = os.cut_chan(&CutChanSpec {
        domain,
        key: DemuxKey {
            proto: format!("{port}/ipv4/udp"),
            addr: Some(format!("dport={udp}")),
            patterns: vec![],
        },
        bandwidth_bps: None,
        layer_offset: Some(0),
    })?;
    let mut d = Dropper::new();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let (now, s) = (os.time()?, os.chan_stats(chan)?);
        if let Some(cut) = d.update(now, &s) {
            os.chan_set_layer(chan, cut)?;
            println!("available {:.0} B/s → cut-off {cut:?}", d.available().unwrap_or(0.0));
        }
    }
}
