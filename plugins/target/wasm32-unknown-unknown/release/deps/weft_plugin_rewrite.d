/work/main/plugins/target/wasm32-unknown-unknown/release/deps/weft_plugin_rewrite.d: rewrite/src/lib.rs

/work/main/plugins/target/wasm32-unknown-unknown/release/deps/weft_plugin_rewrite.wasm: rewrite/src/lib.rs

rewrite/src/lib.rs:
