//! # weft-emu — the in-process network emulator
//!
//! Whole networks of Weft nodes and end hosts in one process, on a virtual
//! clock: deterministic, fast, no root. Scenario tests (DESIGN section 8.2),
//! `weft emu run TOPOLOGY` and `weft demo` run on it.
//!
//! * [`topology`] — the topology file (TOML, `docs/topology.md`): nodes with
//!   their configs, hosts, links with delay / bandwidth / loss / cost / MTU,
//!   the routing mode, traffic.
//! * [`Emulator`] (module `emulator`) — builds the network and runs it: an
//!   event queue of frame arrivals ordered by (time, sequence), batches to
//!   [`weft_dataplane::Node::receive`], node ticks, host timers. Gives access
//!   to every node handle (to recompose nodes mid-run), every host, link
//!   counters and captures.
//! * PBR daemons ([`weft_control::pbr::PbrNode`]) on chosen nodes
//!   ([`Emulator::enable_pbr`]), driven by the virtual clock after every
//!   step; explicit paths are created, queried and released by node name
//!   ([`Emulator::pbr_create`], [`Emulator::pbr_path`], [`Emulator::hop_addresses`]).
//! * On-path signaling: signaling daemons
//!   ([`weft_control::signal::SignalNode`]) on chosen nodes
//!   ([`Emulator::enable_signal`]) and requesters on hosts
//!   ([`Emulator::enable_requester`], [`Emulator::signal_send`]), driven by
//!   the virtual clock; Unix time is [`EPOCH_S`] plus virtual time.
//!   Server modules a SETUP starts ([`Emulator::signal_set_servers`]) are
//!   served on loopback ports of the machine, outside virtual time: the
//!   emulated nodes have no TCP stack of their own.
//! * [`host`] — end hosts on smoltcp (real ARP / ND, IPv4 / IPv6, ICMP, UDP,
//!   TCP) with ping, UDP flows, TCP bulk transfers and traceroute; each
//!   records what it got.
//! * `link` — the link model: delay, serialization at a bandwidth, bounded
//!   queue, seeded loss, counters, capture.
//! * `routing` — `routing = "shortest-path"`: Dijkstra over link costs,
//!   static routes installed on every node.
//! * [`report`] — [`run_cli`], what `weft emu run` calls, and its [`Report`].
//!
//! **Architecture invariant:** the emulator changes nodes only through the
//! node handle ([`weft_dataplane::Node`]) and node config files through
//! `weft_control::config`; it owns no packet processing of its own. It never
//! reads the wall clock: time is virtual and advances only in
//! [`Emulator::step`].
#![warn(missing_docs)]
#![deny(unsafe_code)]

mod emulator;
pub mod host;
mod link;
pub mod report;
mod routing;
pub mod topology;

pub use emulator::{Emulator, SignalAnswer, SignalSetup, EPOCH_S, FETCH_POLL_NS, REQUESTER_PORT};
pub use host::{
    pattern_byte, FlowId, FlowRx, Host, PingId, PingReply, PingResult, TcpReceived, TcpTransfer, TraceId, Traceroute,
    TransferId, UdpDatagram, UdpFlow,
};
pub use link::{CapturedFrame, LinkCounters, LinkStats};
pub use report::{run_cli, Report};
pub use topology::Topology;

/// Error returned by [`Emulator::load`], [`Emulator::from_str`], host
/// commands and [`run_cli`].
#[derive(Debug, thiserror::Error)]
pub enum EmuError {
    /// A file could not be read.
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// The topology file is wrong.
    #[error("topology: {0}")]
    Topology(String),
    /// A node's configuration is wrong (its error names file and line).
    #[error("node {0}: {1}")]
    NodeConfig(String, String),
    /// A node refused a change the topology asked for.
    #[error("node {0}: {1}")]
    Node(String, #[source] weft_dataplane::NodeError),
    /// A host command was refused.
    #[error("host: {0}")]
    Host(String),
    /// No link of that name.
    #[error("no link named {0:?}")]
    UnknownLink(String),
    /// `[[traffic]]` names something that does not exist.
    #[error("traffic: {0}")]
    Traffic(String),
}
