//! NodeOS control requests on arbitrary bytes, answered for a principal
//! without rights and for the operator: an answer or a clear error, never
//! a panic, never a channel for the principal
//! (`weft_control::nodeos::fuzz_request`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    weft_control::nodeos::fuzz_request(data);
});
