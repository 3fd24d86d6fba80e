/work/main/plugins/target/wasm32-unknown-unknown/release/deps/weft_plugin_noop.d: noop/src/lib.rs

/work/main/plugins/target/wasm32-unknown-unknown/release/deps/weft_plugin_noop.wasm: noop/src/lib.rs

noop/src/lib.rs:
