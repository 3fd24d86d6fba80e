//! Load a WebAssembly plugin and run it as an element, step by step.
//!
//! This is the embedding a node performs when an operator loads a plugin:
//! verify the module against plugin ABI v1, compile it (or take it from the
//! cache), make an element class of it, create an instance with a
//! configuration, and hand it a batch of packets. Run it with
//!
//! ```text
//! cargo run -p weft-wasm --example load_element
//! ```
//!
//! (the example plugins are built on first use by `plugins/build.sh`).

use weft_dataplane::{Args, Ctx, Element, InstanceId, Verdict};
use weft_packet::{build, PacketPool};
use weft_wasm::{verify_module, HostConfig, WasmHost};

fn main() -> anyhow::Result<()> {
    // First the bytes. A node gets them from a code server after checking
    // the signature over their sha256; here, from the example plugins.
    println!("Reading the rewrite plugin...");
    let bytes = weft_wasm::plugins::read("rewrite")?;

    // The verifier reads the module without running any of it: imports,
    // exports and the ABI version must be what ABI v1 says.
    println!("Verifying...");
    let info = verify_module(&bytes)?;
    println!(
        "  sha256 {} ({} bytes), imports {:?}",
        info.hash, info.size, info.imports
    );

    // One host per node: it owns the wasmtime engine, the CPU budget (an
    // epoch ticker by default) and the memory cap for every instance.
    println!("Creating the host...");
    let host = WasmHost::new(HostConfig::default())?;

    // Compiling gives a class; its code is shared by every instance. The
    // host functions (`weft.emit`, `weft.reply`, ...) are linked here, once.
    println!("Compiling the class...");
    let class = host.load_class("rewrite", &bytes)?;

    // The engine-facing class is what `Node::add_class` takes; here we use
    // the instance directly. Each instance gets its own store, memory and
    // configuration; `on_fault` is the host's, the rest goes to the plugin.
    println!("Instantiating with a configuration...");
    let mut element = class.instantiate(&Args::parse("from=ping to=pong on_fault=pass"))?;

    // A batch of one frame, processed in place in the plugin's memory; the
    // verdict and the rewritten bytes come back.
    println!("Processing a batch...");
    let mut pool = PacketPool::with_buffers(4);
    let mut emitted = Vec::new();
    let mut cx = Ctx::new(0, InstanceId(0), &mut pool, &mut emitted);
    let frame = build::udp4(
        [2, 0, 0, 0, 0, 1],
        [2, 0, 0, 0, 0, 2],
        [10, 0, 0, 1].into(),
        [10, 0, 0, 2].into(),
        1,
        2,
        64,
        b"ping!",
    );
    let mut pkt = cx.alloc(&frame);
    // A node's classifier fills in the header offsets and flow key; do the
    // same here, since the plugin finds the UDP payload through them.
    let headers = weft_packet::view::parse(pkt.data())?;
    pkt.meta.l3 = headers.l3_off() as u16;
    pkt.meta.l4 = headers.l4_off().unwrap_or(0) as u16;
    pkt.meta.flow = headers.flow;
    let mut pkts = vec![pkt];
    let mut verdicts = vec![Verdict::Continue];
    element.process_batch(&mut cx, &mut pkts, &mut verdicts);
    println!(
        "  verdict {:?}, payload {:?}",
        verdicts[0],
        String::from_utf8_lossy(&pkts[0].data()[42..])
    );

    // The reporting port: the plugin's JSON and the host's view.
    println!("Report: {}", element.report());
    println!("Done.");
    Ok(())
}
