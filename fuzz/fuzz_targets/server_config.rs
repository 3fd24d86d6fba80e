//! A server module's configuration and an outgoing request's URI on
//! arbitrary bytes (`weft_servers::fuzz_config`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    weft_servers::fuzz_config(data);
});
