//! # weft-memif — the shared-memory packet interface
//!
//! memif is the packet interface VPP and DPDK's `net_memif` speak: a
//! handshake over a Unix `SOCK_SEQPACKET` socket, memory regions passed
//! as memfds, and descriptor rings in that memory. Weft is the **server**
//! (memif's "master"): applications attach as clients, unmodified when
//! they are DPDK or VPP programs, through [`io::Client`] when in Rust.
//!
//! Layers, bottom up:
//!
//! * [`wire`] — the control messages ([`wire::Msg`]: parse / emit);
//! * [`handshake`] — the server's handshake, sans-IO;
//! * [`shm`] — shared memory, bounds-checked (all of the rings' `unsafe`);
//! * [`ring`] — ring and descriptor layout, validation of everything the
//!   other side wrote, and the four ring ends;
//! * [`io`] — the drivers: memfd, mmap, eventfd, sockets (its `unsafe` in
//!   `io::sys`).
//!
//! **Architecture invariant:** `wire`, `handshake` and `ring` make no
//! system call and never panic on what the other side sends or writes
//! ([`fuzz_control`], [`fuzz_ring`]); the engine does not know memif.
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod handshake;
pub mod io;
pub mod ring;
pub mod shm;
pub mod wire;

use ring::{C2sConsumer, C2sProducer, RingPlace, S2cConsumer, S2cProducer};
use shm::Shm;
use wire::{Fixed, Msg};

/// Fuzz entry point (target `memif_control`, and a property test): feed
/// arbitrary 128-byte messages to a server handshake; what parses must
/// re-encode to an equal message (padding is not kept). Panics only on a bug.
pub fn fuzz_control(data: &[u8]) {
    let mut hs = handshake::ServerHandshake::new("weft");
    for (i, chunk) in data.chunks(wire::MSG_LEN).enumerate() {
        if let Ok(m) = Msg::parse(chunk) {
            assert_eq!(Msg::parse(&m.to_bytes()), Ok(m), "re-encoding changed the message");
            let _ = hs.handle(&m, i % 2 == 1, |id, s: &Fixed<24>| id == 0 && s.bytes().is_empty());
        }
    }
}

/// Fuzz entry point (target `memif_ring`, and a property test): lay out
/// a connected pair of rings, let `data` overwrite descriptors, indices
/// and flags as a hostile client would, and run the server's ends over
/// them. Every outcome must be a packet, a counted drop or a ring error;
/// no access leaves the region. Panics only on a bug.
pub fn fuzz_ring(data: &[u8]) {
    const LOG2: u8 = 4;
    const BUF: u32 = 128;
    let rl = ring::ring_len(LOG2);
    let len = 2 * rl + 32 * BUF as usize;
    let regions = vec![Shm::heap(len)];
    let (Ok(c2s), Ok(s2c)) = (
        RingPlace::new(&regions, 0, 0, LOG2),
        RingPlace::new(&regions, 0, rl as u32, LOG2),
    ) else {
        return;
    };
    let mut ctx = C2sProducer::init(&regions, c2s, 0, (2 * rl) as u32, BUF);
    let _crx = S2cConsumer::init(&regions, s2c, 0, (2 * rl) as u32 + 16 * BUF, BUF);
    for _ in 0..8 {
        let _ = ctx.push(&regions, &[0x5a; 60]);
    }
    ctx.flush(&regions);
    // Each 4-byte chunk: a place (which ring header byte or descriptor
    // byte) and a value to store there.
    for ch in data.chunks_exact(4) {
        let off = u16::from_le_bytes([ch[0], ch[1]]) as usize % (2 * rl);
        let _ = regions[0].write(off, &[ch[2], ch[3]]);
    }
    let mut rx = C2sConsumer::new(&regions, c2s);
    let mut tx = S2cProducer::new(&regions, s2c);
    let mut scratch = vec![0u8; 256];
    let mut frames = 0usize;
    if let Ok(n) = rx.recv(&regions, &mut scratch, 64, |f| {
        assert!(f.len() <= 256);
        frames += 1;
    }) {
        assert_eq!(n, frames);
        assert!(n <= 16);
    }
    if tx.begin(&regions).is_ok() {
        for _ in 0..20 {
            let _ = tx.push(&regions, &[1u8; 100]);
        }
        let _ = tx.flush(&regions);
    }
    let c = rx.counters;
    assert!(c.packets <= 16);
}

#[cfg(test)]
mod fuzz_props {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn control_never_panics(data in proptest::collection::vec(any::<u8>(), 0..1024)) {
            super::fuzz_control(&data);
        }

        #[test]
        fn control_messages_with_valid_types(t in 1u16..9, body in proptest::collection::vec(any::<u8>(), 126)) {
            let mut m = t.to_le_bytes().to_vec();
            m.extend_from_slice(&body);
            super::fuzz_control(&m);
        }

        #[test]
        fn ring_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            super::fuzz_ring(&data);
        }
    }
}
