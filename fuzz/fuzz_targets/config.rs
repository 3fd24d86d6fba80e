//! Any text as a node configuration file: a typed error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(cfg) = weft_control::config::NodeConfig::parse(s, "fuzz.toml") {
            // A file that parses must also apply or fail with an error.
            let _ = cfg.build();
        }
    }
});
