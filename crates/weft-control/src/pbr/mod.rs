//! The PBR daemon of a node: [`PbrNode`] connects a sans-IO
//! [`weft_pbr::Agent`] to a [`weft_dataplane::Node`] (`docs/pbr.md`).
//!
//! * **Transport.** The node listens on UDP 7077; [`PbrNode::poll`] takes
//!   those datagrams from the node's local queue
//!   ([`Node::poll_local_where`]), feeds them to the agent, runs its timers
//!   and sends what it produced as UDP frames from the node itself
//!   ([`Node::send`], source address [`weft_pbr::Transmit::src`]). Frames
//!   leave at the node's next `receive` or `tick`: a driver that wants them
//!   out at once calls [`Node::tick`] when `poll` returned a non-zero count.
//! * **Time** is passed in (`now_ms`), never read: the emulator drives the
//!   daemon on its virtual clock, the node runner on the wall clock.
//! * **The node** is reached through a private [`weft_pbr::Env`]: `egress`
//!   (strict: a connected subnet of a port; loose: the FIB), `reserve`
//!   (bandwidth per egress port against [`PbrConfig`]'s capacities, plugin
//!   slots, the class being registered), `commit` (plugin instances created
//!   and configured, then [`Node::add_steering`] at the first visit and
//!   [`Node::add_label`] at the others, with [`LabelOut`] swap, tunnel or
//!   pop, then [`Node::set_label_mtu`] with the next visit's PATH_MTU),
//!   `visit_mtu` (the visit's limit, reported upstream: at the first visit
//!   the path's MTU), `release` (everything undone, idempotent) and
//!   `visit_status` (label, MTU and instance counters).
//!
//! PromethOS writes classes in upper case (`ENCRYPT`); a class resolves
//! through [`PbrConfig::class_map`] first, then to a registered class of the
//! same name ignoring case (`encrypt`). An empty configuration (the CLI's
//! `init`) takes [`PbrConfig::default_config`] for the class, if any.
//!
//! **Classes the node lacks** are fetched from a code server when the
//! daemon has a [`ClassFetcher`] (a node with a `[plugins]` section: the
//! verifying loader of `weft-repo`). The reservation counts such a class as
//! obtainable and starts the fetch at once, so the download overlaps the
//! rest of the setup; the commit waits for it ([`weft_pbr::Env::ready`]:
//! the agent holds the commit, nothing goes upstream) and goes on when
//! [`PbrNode::class_fetched`] delivers the class — or refuses with the
//! loader's reason (`unknown-class` when no code server has it,
//! `class-rejected` when hash, signature, trusted key or ABI checks fail).
//! The fetch never runs on the node thread.
//!
//! Rooms: `env` (the node behind the agent: [`weft_pbr::Env`] on a
//! [`Node`]), `fetch` (the [`ClassFetcher`] and what the daemon remembers
//! of each fetch), `views` (what the API and CLI show: [`PathView`],
//! [`VisitRecord`], [`Resources`]) and `daemon` ([`PbrNode`]: transport,
//! events, commands). This module holds their shared settings,
//! [`PbrConfig`].

mod daemon;
mod env;
mod fetch;
#[cfg(test)]
mod tests;
mod views;

pub use daemon::{PbrNode, PbrStats};
pub use env::flowspec_match;
pub use fetch::{ClassFetcher, FetchStats, FETCH_RETRY_MS};
pub use views::{PathState, PathView, Resources, VisitRecord};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
#[cfg(doc)]
use weft_dataplane::{LabelOut, Node};
#[cfg(doc)]
use weft_pbr::CreateRequest;

/// Settings of a node's PBR daemon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PbrConfig {
    /// Bandwidth a port offers to reservations, bits/s, unless
    /// [`PbrConfig::port_capacity_bps`] names the port.
    pub capacity_bps: u64,
    /// Per-port capacity (by port name), bits/s.
    pub port_capacity_bps: BTreeMap<String, u64>,
    /// Most plugin instances PBR paths may hold on this node at once.
    pub max_instances: usize,
    /// Refresh interval a request made here without one should use, ms
    /// (for front ends; a [`CreateRequest`] always carries its own).
    pub refresh_ms: u32,
    /// Seed for path secrets, sequence numbers and path numbers; `None`
    /// draws them from the OS (`ring::rand::SystemRandom`). Tests and the
    /// emulator seed it to be deterministic.
    pub seed: Option<u64>,
    /// PromethOS class name → node class (`ENCRYPT` → `encrypt`); names not
    /// listed resolve to a registered class of the same name, ignoring case.
    pub class_map: BTreeMap<String, String>,
    /// Configuration used when a plugin's is empty (PromethOS' `init`), by
    /// node class.
    pub default_config: BTreeMap<String, String>,
    /// Finished paths (released, refused, down) kept for [`PbrNode::path`].
    pub history: usize,
}

impl Default for PbrConfig {
    fn default() -> Self {
        PbrConfig {
            capacity_bps: 1_000_000_000,
            port_capacity_bps: BTreeMap::new(),
            max_instances: 1024,
            refresh_ms: 5_000,
            seed: None,
            class_map: BTreeMap::new(),
            default_config: BTreeMap::new(),
            history: 1024,
        }
    }
}

impl PbrConfig {
    /// PBR class `name` through [`PbrConfig::class_map`] (keys match ignoring
    /// case), else as it is.
    fn mapped<'a>(&'a self, name: &'a str) -> &'a str {
        self.class_map
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap_or(name)
    }
}
