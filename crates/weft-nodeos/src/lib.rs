//! # weft-nodeos — the NodeOS API for programs outside the node
//!
//! Snow on Silk's NodeOS interface (domains, channels, time, events) for
//! any process on the node's machine: [`proto`] is the control protocol
//! (JSON lines over the node's NodeOS Unix socket), [`NodeOs`] a blocking
//! client, and [`weft_memif::io::Client`] the shared-memory rings a
//! channel's packets travel on (DPDK's `net_memif` attaches the same way).
//! `docs/nodeos.md` is the guide; `examples/active_echo.rs` a worked
//! example.
//!
//! **Architecture invariant:** knows nothing about the node's insides;
//! everything it sends is a specification, everything it holds a handle.
#![warn(missing_docs)]
#![deny(unsafe_code)]

mod client;
pub mod proto;
pub mod wavelet;

pub use client::{Error, NodeOs};
pub use proto::*;
pub use weft_memif::io::Client as Attachment;

/// Fuzz entry point (the node side's target `nodeos_request` also runs
/// this): parsing a request line never panics and what parses re-encodes
/// to an equal request.
pub fn fuzz_request(data: &[u8]) {
    if let Ok(r) = proto::parse_request(data) {
        let b = serde_json::to_vec(&r).expect("a request serializes");
        assert_eq!(proto::parse_request(&b).ok().as_ref(), Some(&r));
    }
}

#[cfg(test)]
mod fuzz_props {
    use proptest::prelude::*;
    proptest! {
        #[test]
        fn request_parse_never_panics(s in ".{0,300}") {
            super::fuzz_request(s.as_bytes());
        }
        #[test]
        fn request_parse_near_valid(op in "(hello|time|chan_destroy|domain_create|in_chan_create)", extra in "[a-z0-9:{}\",]{0,40}") {
            let line = format!(r#"{{"id":1,"call":{{"op":"{op}"{extra}}}}}"#);
            super::fuzz_request(line.as_bytes());
        }
    }
}
