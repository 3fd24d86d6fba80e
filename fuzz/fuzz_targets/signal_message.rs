//! Signaling messages on arbitrary bytes: the parser returns a message or
//! a typed error, a parsed message re-encodes to an equal one, and an
//! agent fed the bytes from upstream, downstream and a stranger, run far
//! ahead in time, never panics (`weft_signal::fuzz_message`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    weft_signal::fuzz_message(data);
});
