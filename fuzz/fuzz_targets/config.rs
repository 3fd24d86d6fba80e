//! Any text as a node configuration file: a typed error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = weft_control::config::parse_str(s, "fuzz.toml");
    }
});
