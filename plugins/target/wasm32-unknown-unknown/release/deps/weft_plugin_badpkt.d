/work/main/plugins/target/wasm32-unknown-unknown/release/deps/weft_plugin_badpkt.d: badpkt/src/lib.rs

/work/main/plugins/target/wasm32-unknown-unknown/release/deps/weft_plugin_badpkt.wasm: badpkt/src/lib.rs

badpkt/src/lib.rs:
