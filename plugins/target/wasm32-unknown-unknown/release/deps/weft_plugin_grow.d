/work/main/plugins/target/wasm32-unknown-unknown/release/deps/weft_plugin_grow.d: grow/src/lib.rs

/work/main/plugins/target/wasm32-unknown-unknown/release/deps/weft_plugin_grow.wasm: grow/src/lib.rs

grow/src/lib.rs:
