//! The fuzz target `server_config`'s body as a property test: arbitrary
//! text, and configurations with bytes changed, never panic the parser or
//! the egress policy.

use proptest::prelude::*;

proptest! {
    #[test]
    fn arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        weft_servers::fuzz_config(&data);
    }

    #[test]
    fn configurations_with_bytes_changed(i in 0usize..80, b in any::<u8>(), cut in 0usize..80) {
        let mut v = b"origin=10.0.3.2:8000; header=x-cdn: edge; origin=[2001:db8::1]:80".to_vec();
        let i = i % v.len();
        v[i] = b;
        weft_servers::fuzz_config(&v);
        v.truncate(cut.min(v.len()));
        weft_servers::fuzz_config(&v);
    }
}
