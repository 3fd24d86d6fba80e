/work/main/plugins/target/v2/wasm32-unknown-unknown/release/deps/weft_plugin_sdk-19bc03dc55c9dee4.d: /work/main/crates/weft-plugin-sdk/src/lib.rs /work/main/crates/weft-plugin-sdk/src/abi.rs /work/main/crates/weft-plugin-sdk/src/guest.rs /work/main/crates/weft-plugin-sdk/src/util.rs

/work/main/plugins/target/v2/wasm32-unknown-unknown/release/deps/libweft_plugin_sdk-19bc03dc55c9dee4.rlib: /work/main/crates/weft-plugin-sdk/src/lib.rs /work/main/crates/weft-plugin-sdk/src/abi.rs /work/main/crates/weft-plugin-sdk/src/guest.rs /work/main/crates/weft-plugin-sdk/src/util.rs

/work/main/plugins/target/v2/wasm32-unknown-unknown/release/deps/libweft_plugin_sdk-19bc03dc55c9dee4.rmeta: /work/main/crates/weft-plugin-sdk/src/lib.rs /work/main/crates/weft-plugin-sdk/src/abi.rs /work/main/crates/weft-plugin-sdk/src/guest.rs /work/main/crates/weft-plugin-sdk/src/util.rs

/work/main/crates/weft-plugin-sdk/src/lib.rs:
/work/main/crates/weft-plugin-sdk/src/abi.rs:
/work/main/crates/weft-plugin-sdk/src/guest.rs:
/work/main/crates/weft-plugin-sdk/src/util.rs:
