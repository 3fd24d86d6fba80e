//! # weft-io — ports
//!
//! A port moves frames between a [`weft_dataplane::Node`] and the world in
//! batches. This crate holds the backends; for now the in-memory link used by
//! the emulator, tests and the engine benchmark. VXLAN over UDP and
//! AF_PACKET come next (DESIGN section 5).
//!
//! **Architecture invariant:** backends know nothing about elements, filters
//! or routes; the engine knows nothing about sockets.
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod mem;
