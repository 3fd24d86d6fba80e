//! The commands, one module per noun of `weft NOUN …`: its arguments
//! (clap), what it asks of `weft-control` or the emulator, and how it
//! prints. [`common`] holds what the commands that talk to a node share:
//! `--node`, finding the node and its credentials, tables.

pub mod bench;
pub mod common;
pub mod demo;
pub mod domain;
pub mod droute;
pub mod emu;
pub mod fb;
pub mod filter;
pub mod instance;
pub mod keygen;
pub mod metrics;
pub mod node;
pub mod pbr;
pub mod plugin;
pub mod policy;
pub mod recv;
pub mod repo;
pub mod route;
pub mod send;
pub mod serve;
pub mod signal;
pub mod token;
