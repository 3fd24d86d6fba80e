//! memif rings a hostile client scribbled over (descriptors, head, tail,
//! flags): the server's ring ends return packets, counted drops or ring
//! errors, never an access outside the region (`weft_memif::fuzz_ring`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    weft_memif::fuzz_ring(data);
});
