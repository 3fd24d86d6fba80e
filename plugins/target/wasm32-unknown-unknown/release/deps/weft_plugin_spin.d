/work/main/plugins/target/wasm32-unknown-unknown/release/deps/weft_plugin_spin.d: spin/src/lib.rs

/work/main/plugins/target/wasm32-unknown-unknown/release/deps/weft_plugin_spin.wasm: spin/src/lib.rs

spin/src/lib.rs:
