//! # weft-dataplane — the packet engine
pub mod classifier;
pub mod element;
