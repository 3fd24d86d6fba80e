//! `WEFT_WASM_PERFMAP=1` (docs/plugin-abi.md, "Profiling a plugin"): the
//! engine writes /tmp/perf-PID.map naming the plugins' compiled functions.
//! Its own test binary: the variable is read when an engine is made.

mod common;
use common::*;

#[test]
fn perfmap_names_plugin_functions_for_perf() {
    let map = std::path::PathBuf::from(format!("/tmp/perf-{}.map", std::process::id()));
    let _ = std::fs::remove_file(&map);
    std::env::set_var("WEFT_WASM_PERFMAP", "1");
    let h = host();
    let mut n = node();
    load(&mut n, &h, "wnoop", "noop");
    let text = std::fs::read_to_string(&map).expect("the perf map is written when a class is compiled");
    let _ = std::fs::remove_file(&map);
    assert!(text.lines().any(|l| l.contains("wasm")), "{text}");
}
