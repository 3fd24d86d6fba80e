//! PBR messages on arbitrary bytes: the parser returns a message or a typed
//! error, a parsed message re-encodes to an equal one, and an agent holding
//! a transit visit, fed the bytes from either neighbour and run far ahead
//! in time, never panics (`weft_pbr::fuzz_message`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    weft_pbr::fuzz_message(data);
});
