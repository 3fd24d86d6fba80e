//! The signaling daemon of a node (NetServ on-path signaling,
//! `docs/signaling.md`): [`SignalNode`] connects a sans-IO
//! [`weft_signal::Agent`] to a [`weft_dataplane::Node`], its policy and its
//! code loader.
//!
//! * **Transport.** The node listens on UDP 270 and the engine hands it
//!   the datagrams it would forward that carry the Router Alert option, go
//!   to UDP 270 and start with the signaling magic: every request toward a
//!   destination beyond this node stops here, is acted on and sent on from
//!   the node's own address ([`SignalNode::poll`], [`Node::send`]). Time is
//!   passed in (ns of the node's clock), never read: the emulator drives
//!   the daemon on its virtual clock, the runner on the wall clock.
//! * **Rights** are the node's one policy (`[[principal]]`,
//!   [`crate::auth`]): the right `signal`, classes or signers, prefixes
//!   (and `reverse_path`), server ports, limits. A request outside them is
//!   refused on the response stack and applies nothing.
//! * **Code** comes through a [`ModuleFetcher`] over the node's verifying
//!   loader (`[plugins]`), only from the code servers `[plugins] repos`
//!   lists ([`fetch`] says why).
//! * **Accounting** of what each principal holds goes through the
//!   [`Accounts`] trait, which the node's domains implement
//!   ([`crate::domains::DomainAccounts`])
//!   ([`accounts`]); server modules through [`ServerModules`], the seam a
//!   server-module host plugs into ([`server`]).
//!
//! Rooms: `accounts`, `server` (the two seams), `fetch` (code), `env` (the
//! node behind the agent), `daemon` ([`SignalNode`]: transport, events,
//! commands), `host` (a requester on an ordinary UDP socket, for the CLI
//! and tests). This module holds their settings, [`SignalConfig`].

pub mod accounts;
mod daemon;
mod env;
pub mod fetch;
pub mod host;
pub mod server;
pub mod servers;
#[cfg(test)]
mod tests;

pub use accounts::{Accounts, NodeAccounts, Usage};
pub use daemon::{SignalNode, SignalStats};
pub use env::InstallStats;
pub use fetch::{BlockingFetcher, FetchSpec, FetchedModule, LoaderFetcher, ModuleFetcher};
pub use server::ServerModules;
pub use servers::{EmulatedServers, WasiServers};

use serde::{Deserialize, Serialize};
use std::net::IpAddr;
#[cfg(doc)]
use weft_dataplane::Node;
use weft_signal::{AgentConfig, MILLI, SECOND};

/// `[signal]`: take part in on-path signaling.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignalConfig {
    /// Longest lifetime a SETUP may ask for, s (a principal's
    /// `max_lifetime` may be shorter).
    pub max_lifetime: u32,
    /// Sessions the node holds at most.
    pub max_sessions: usize,
    /// Requests per second accepted from one origin.
    pub origin_rate: u32,
    /// Burst per origin.
    pub origin_burst: u32,
    /// Requests per second the node verifies in all.
    pub node_rate: u32,
    /// First retransmission timeout, ms (doubles per try).
    pub retransmit_ms: u64,
    /// Transmissions before the next hop counts as absent (and this node
    /// as the last).
    pub retransmit_tries: u32,
    /// Longest install before the SETUP is answered `install-timeout`, s.
    pub install_timeout: u64,
    /// How far a request's time may be from the node's, s.
    pub window: u64,
    /// Seed for sequence numbers and nonces; `None` draws them from the
    /// OS. Tests and the emulator seed it to be deterministic.
    pub seed: Option<u64>,
    /// Server modules: linear memory of each, MiB (its cache included).
    pub server_memory_mib: u64,
    /// Server modules: CPU one request may use, ms.
    pub server_cpu_ms: u64,
    /// Server modules: longest a request may take, s.
    pub server_timeout: u64,
    /// Server modules: concurrent connections per listener.
    pub server_connections: usize,
}

impl Default for SignalConfig {
    fn default() -> Self {
        let a = AgentConfig::new("", Vec::new());
        SignalConfig {
            max_lifetime: a.max_lifetime_s,
            max_sessions: 1024,
            origin_rate: a.origin_rate,
            origin_burst: a.origin_burst,
            node_rate: a.node_rate,
            retransmit_ms: a.retransmit_ns / MILLI,
            retransmit_tries: a.retransmit_tries,
            install_timeout: a.install_timeout_ns / SECOND,
            window: a.window_s,
            seed: None,
            server_memory_mib: 64,
            server_cpu_ms: 1000,
            server_timeout: 30,
            server_connections: 256,
        }
    }
}

impl SignalConfig {
    /// The bounds every server module runs under.
    pub fn server_bounds(&self) -> weft_servers::Bounds {
        weft_servers::Bounds {
            memory: (self.server_memory_mib.clamp(1, 4096) as usize) << 20,
            cpu_budget: std::time::Duration::from_millis(self.server_cpu_ms.max(10)),
            request_timeout: std::time::Duration::from_secs(self.server_timeout.max(1)),
            max_connections: self.server_connections.max(1),
            ..weft_servers::Bounds::default()
        }
    }

    /// The agent's settings for node `name` with `addresses`.
    pub fn agent_config(&self, name: &str, addresses: Vec<IpAddr>) -> AgentConfig {
        let mut a = AgentConfig::new(name, addresses);
        a.max_lifetime_s = self.max_lifetime.max(1);
        a.max_sessions = self.max_sessions.max(1);
        a.origin_rate = self.origin_rate.max(1);
        a.origin_burst = self.origin_burst.max(1);
        a.node_rate = self.node_rate.max(1);
        a.node_burst = (self.node_rate / 5).max(1);
        a.retransmit_ns = self.retransmit_ms.max(1) * MILLI;
        a.retransmit_tries = self.retransmit_tries.max(1);
        a.install_timeout_ns = self.install_timeout.max(1) * SECOND;
        // The wait for a downstream answer outlasts any install downstream.
        a.response_wait_ns = a.install_timeout_ns + 5 * SECOND;
        a.window_s = self.window;
        a
    }
}

/// The kernel's ephemeral port range (`net.ipv4.ip_local_port_range`, per
/// network namespace; Linux's default when unreadable).
pub(crate) fn ephemeral_ports() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| {
            let mut it = t.split_whitespace().map(|x| x.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999))
}
