//! Module loading through the verifier path: arbitrary bytes into
//! `verify_module` (and, for what it accepts, compilation) must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if weft_wasm::verify_module(data).is_ok() {
        // Accepted modules must also compile without panicking; one host per
        // process keeps the fuzzer fast.
        thread_local! {
            static HOST: weft_wasm::WasmHost = weft_wasm::WasmHost::new(weft_wasm::HostConfig {
                budget: weft_wasm::Budget::Fuel,
                ..Default::default()
            })
            .expect("host");
        }
        HOST.with(|h| {
            let _ = h.load_class("fuzz", data);
        });
    }
});
