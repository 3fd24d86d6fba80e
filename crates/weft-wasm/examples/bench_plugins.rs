//! Run the plugin benchmark ([`weft_wasm::bench`]) and print the table:
//!
//! ```text
//! cargo run --release -p weft-wasm --example bench_plugins [-- RUNS SECONDS]
//! ```
//!
//! The wasm rows are measured under each CPU budget kind (epoch, fuel, and
//! unmetered as the reference for the budgets' own cost).

use weft_wasm::bench::{bench_rows, format_table, instance_figures, BenchOptions};
use weft_wasm::Budget;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let runs = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let seconds = args.next().and_then(|a| a.parse().ok()).unwrap_or(0.4);
    let opts = BenchOptions {
        runs,
        seconds,
        sizes: vec![64, 340],
        budgets: vec![Budget::Epoch, Budget::Fuel, Budget::Unmetered],
        noop_wasm: weft_wasm::plugins::read("noop")?,
        netmonitor_wasm: weft_wasm::plugins::read("netmonitor")?,
    };
    let rows = bench_rows(&opts)?;
    let dir = std::env::temp_dir().join(format!("weft-wasm-bench-cache-{}", std::process::id()));
    let figs = instance_figures(&opts, &dir)?;
    let _ = std::fs::remove_dir_all(&dir);
    println!("weft-wasm bench: in-memory ports, one core, batches of 32, median of {runs} runs x {seconds:.1} s");
    print!("{}", format_table(&rows, Some(&figs)));
    Ok(())
}
