/work/main/plugins/target/wasm32-unknown-unknown/release/deps/weft_plugin_panic.d: panic/src/lib.rs

/work/main/plugins/target/wasm32-unknown-unknown/release/deps/weft_plugin_panic.wasm: panic/src/lib.rs

panic/src/lib.rs:
