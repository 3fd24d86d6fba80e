/work/main/plugins/target/v2/wasm32-unknown-unknown/release/deps/weft_plugin_counter.d: counter/src/lib.rs

/work/main/plugins/target/v2/wasm32-unknown-unknown/release/deps/weft_plugin_counter.wasm: counter/src/lib.rs

counter/src/lib.rs:
