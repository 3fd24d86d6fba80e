/work/main/plugins/target/wasm32-unknown-unknown/release/deps/weft_plugin_echo.d: echo/src/lib.rs

/work/main/plugins/target/wasm32-unknown-unknown/release/deps/weft_plugin_echo.wasm: echo/src/lib.rs

echo/src/lib.rs:
