//! DataRouter tag parsers and the element on arbitrary bytes: the IPv4
//! option and IPv6 routing header parsers must return a value or a typed
//! error, a parsed chain must re-encode to what re-parses equal, and the
//! element must never panic on a frame built around the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_datarouter::wire::{self, TagChain};

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = TagChain::parse_v4(data) {
        let o = c.ipv4_options().expect("a parsed chain fits");
        assert_eq!(TagChain::parse_v4(&o).expect("re-parse"), c);
    }
    if let Ok((c, nh)) = TagChain::parse_v6(data) {
        let h = c.ipv6_header(nh).expect("a parsed chain fits");
        assert_eq!(TagChain::parse_v6(&h).expect("re-parse").0, c);
    }
    let _ = wire::locate(data);
    let _ = wire::read_chain(data);
    weft_datarouter::element::fuzz_frame(data);
});
