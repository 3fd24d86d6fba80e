/work/main/plugins/target/wasm32-unknown-unknown/release/deps/weft_plugin_netmonitor.d: netmonitor/src/lib.rs

/work/main/plugins/target/wasm32-unknown-unknown/release/deps/weft_plugin_netmonitor.wasm: netmonitor/src/lib.rs

netmonitor/src/lib.rs:
