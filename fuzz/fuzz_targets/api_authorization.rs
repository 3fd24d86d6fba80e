//! Any bytes as an API request's `Authorization` header (and body): a bearer
//! token or a signed request is parsed and checked with a typed error,
//! never a panic (`weft_control::auth::request::fuzz_authorization`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    weft_control::auth::request::fuzz_authorization(data);
});
