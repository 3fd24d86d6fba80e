//! Any bytes → `weft_packet::view::parse` returns Ok or a ParseError, never
//! panics; offsets it reports lie inside the frame.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    weft_packet::view::check_parse_invariants(data);
});
