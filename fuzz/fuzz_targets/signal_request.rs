//! Signed requests on arbitrary bytes: parse, verify, sign anew and
//! re-parse to the same request (`weft_signal::fuzz_request`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    weft_signal::fuzz_request(data);
});
