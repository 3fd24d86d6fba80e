/work/main/plugins/target/wasm32-unknown-unknown/release/deps/weft_plugin_badlen.d: badlen/src/lib.rs

/work/main/plugins/target/wasm32-unknown-unknown/release/deps/weft_plugin_badlen.wasm: badlen/src/lib.rs

badlen/src/lib.rs:
