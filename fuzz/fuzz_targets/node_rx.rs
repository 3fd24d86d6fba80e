//! Any frames into a configured router: the data path never panics, every
//! frame is forwarded, answered, held or counted as a drop.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    weft_dataplane::fuzzing::node_rx(data);
});
