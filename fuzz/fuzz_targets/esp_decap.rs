//! ESP on arbitrary bytes (`weft_elements::crypto::fuzz_esp`): the view's
//! slices add up; opening under an SA and the anti-replay window never
//! panic and never admit a sequence number twice; `decrypt` never panics on
//! the bytes as a frame or as an IP packet; and whatever `encrypt` seals,
//! `decrypt` restores byte for byte, once.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    weft_elements::crypto::fuzz_esp(data);
});
