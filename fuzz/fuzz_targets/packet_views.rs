//! Any bytes → every `weft_packet::wire` view's `new_checked` accepts or
//! refuses them, and a view that accepted them answers every getter
//! without panicking.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    weft_packet::wire::check_view_invariants(data);
});
