//! memif control messages on arbitrary bytes, 128 at a time, fed to a
//! server handshake: parse or a typed error, re-encoding stable, never a
//! panic (`weft_memif::fuzz_control`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    weft_memif::fuzz_control(data);
});
