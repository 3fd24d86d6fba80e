//! SIP messages on arbitrary bytes: the parser returns a message or a typed
//! error, the keep-alive and overload matchers never panic, and every answer
//! built from a parsed request parses again (`weft_sip::fuzz_message`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    weft_sip::fuzz_message(data);
});
