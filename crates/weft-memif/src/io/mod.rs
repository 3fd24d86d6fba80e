//! The memif drivers: the server (Weft's side: a listening socket,
//! handshakes, mapping what clients declared) and a client (what an
//! active application in Rust uses; DPDK and VPP bring their own).
//!
//! Both are non-blocking and polled, so the server runs on the node's
//! thread between batches: [`Server::poll`] accepts and advances
//! handshakes, a [`Connection`] is split into the end that feeds the
//! client ([`ToClient`]) and the end that drains it ([`FromClient`]).

mod client;
mod server;
pub(crate) mod sys;

pub use client::{Client, ClientConfig, ClientError};
pub use server::{Connection, FromClient, Link, Server, ServerError, ToClient};
pub use sys::{peer_uid, wait_readable};
