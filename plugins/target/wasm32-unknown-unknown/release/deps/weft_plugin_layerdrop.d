/work/main/plugins/target/wasm32-unknown-unknown/release/deps/weft_plugin_layerdrop.d: layerdrop/src/lib.rs

/work/main/plugins/target/wasm32-unknown-unknown/release/deps/weft_plugin_layerdrop.wasm: layerdrop/src/lib.rs

layerdrop/src/lib.rs:
