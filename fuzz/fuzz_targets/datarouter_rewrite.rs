//! The rewrite engine on arbitrary rules and chains: rule text from the
//! first bytes, a chain from the rest; applying must return Ok or a typed
//! error, never touch strings before the current one, and leave a chain
//! that encodes (IPv6) or is refused with a typed error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_datarouter::rewrite;
use weft_datarouter::wire::TagChain;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else { return };
    let (rules, chain) = rest.split_at((n as usize).min(rest.len()));
    let Ok(text) = std::str::from_utf8(rules) else { return };
    let Ok(rules) = rewrite::parse_rules(text) else { return };
    let Ok((mut c, _)) = TagChain::parse_v6(chain) else { return };
    if c.exhausted() {
        return;
    }
    let before = c.clone();
    if rewrite::apply(&rules, &mut c, "10.0.0.1".parse().unwrap()).is_ok() {
        assert_eq!(&c.tags[..before.next], &before.tags[..before.next]);
        assert!(c.next <= c.tags.len());
        if let Ok(h) = c.ipv6_header(17) {
            assert_eq!(TagChain::parse_v6(&h).unwrap().0, c);
        }
    }
});
