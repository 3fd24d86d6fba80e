//! Any bytes → `weft_io::vxlan::decap` returns the inner frame or a typed
//! `VxlanError`, never panics; an accepted frame is the datagram minus the
//! 8-byte header, at least an Ethernet header long, with the I flag set and
//! the port's VNI.
#![no_main]
use libfuzzer_sys::fuzz_target;
use weft_io::vxlan::{decap, HEADER_LEN, FLAG_I, MAX_VNI};

fuzz_target!(|data: &[u8]| {
    let Some((v, payload)) = data.split_first_chunk::<3>() else {
        return;
    };
    let vni = u32::from_be_bytes([0, v[0], v[1], v[2]]) & MAX_VNI;
    match decap(payload, vni) {
        Ok(inner) => {
            assert_eq!(inner.len() + HEADER_LEN, payload.len());
            assert!(inner.len() >= 14);
            assert_eq!(payload[0], FLAG_I);
            assert_eq!(u32::from_be_bytes([0, payload[4], payload[5], payload[6]]), vni);
        }
        Err(e) => {
            assert!(!e.as_str().is_empty());
        }
    }
});
