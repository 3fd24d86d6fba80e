//! What comes out of the agent: datagrams to send ([`Transmit`]), events
//! about paths initiated here ([`Event`]), what it holds
//! ([`PathSummary`]) and its [`Counters`] — and the `poll_*` calls that
//! drain them.

use super::{Agent, VisitKey};
use crate::wire::{HopError, PathId, Plugin, Reason};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// A datagram to send: UDP from port [`PBR_PORT`](crate::PBR_PORT) to port [`PBR_PORT`](crate::PBR_PORT).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Destination address.
    pub dst: IpAddr,
    /// Source address to send from, when the protocol cares (the driver
    /// must honour it: neighbours check where upstream messages come from).
    pub src: Option<IpAddr>,
    /// Destination UDP port (always [`PBR_PORT`](crate::PBR_PORT)).
    pub port: u16,
    /// The message.
    pub payload: Vec<u8>,
}

/// What happened to a path this node initiated (or a status reply).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// COMMIT reached the initiator: every visit is installed.
    PathUp {
        /// The path.
        path: PathId,
    },
    /// Setup failed; no state is left (except on a hop that fails
    /// mid-commit: soft state purges it).
    Refused {
        /// The path.
        path: PathId,
        /// Index of the hop that refused.
        hop: u8,
        /// Its address.
        address: IpAddr,
        /// Why.
        reason: Reason,
        /// Detail.
        text: String,
    },
    /// An established path broke (timeout, neighbour down).
    PathDown {
        /// The path.
        path: PathId,
        /// The hop where it broke.
        hop: u8,
        /// Its address.
        address: IpAddr,
        /// Why.
        reason: Reason,
        /// Detail.
        text: String,
    },
    /// The initiator released the path (state here is gone; RELEASE is
    /// on its way downstream).
    Released {
        /// The path.
        path: PathId,
    },
    /// A STATUS reply.
    Status {
        /// The path.
        path: PathId,
        /// One record per visit reached, in walk order.
        records: Vec<VisitStatus>,
        /// Why the request stopped before the last visit, if it did.
        error: Option<HopError>,
    },
}

/// One visit's status, as reported by STATUS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitStatus {
    /// Hop index.
    pub hop: u8,
    /// The visit's address.
    pub address: IpAddr,
    /// What the visit reported (its JSON; text that is not JSON comes as
    /// a string).
    pub status: serde_json::Value,
}

/// Phase of a visit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// Reserved, waiting for COMMIT from downstream.
    Reserved,
    /// Installed.
    Committed,
}

/// One visit held here, for `weft pbr ls`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathSummary {
    /// Path and hop index.
    pub key: VisitKey,
    /// Visits in the walk.
    pub hop_count: u8,
    /// This node initiated the path (hop 0).
    pub initiator: bool,
    /// Reserved or committed.
    pub phase: Phase,
    /// Label allocated here (none at the first visit).
    pub in_label: Option<u32>,
    /// Out label (none: pop, or not yet committed).
    pub out_label: Option<u32>,
    /// Upstream neighbour.
    pub prev: Option<IpAddr>,
    /// Downstream neighbour.
    pub next: Option<IpAddr>,
    /// Plugins run here.
    pub plugins: Vec<Plugin>,
    /// When the state expires without a refresh (virtual ms; none at the
    /// initiator once up).
    pub expires_ms: Option<u64>,
    /// The largest IP packet the visit takes in, the rest of the path
    /// included ([`Env::visit_mtu`](crate::Env::visit_mtu); at the initiator: the path's MTU).
    pub mtu: Option<u16>,
}

/// Counters, each a reason something was counted. [`Counters::iter`]
/// lists them with stable names for the metrics registry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Datagrams handed to the agent.
    pub received: u64,
    /// Datagrams produced (first transmissions and ACKs).
    pub sent: u64,
    /// Retransmissions.
    pub retransmits: u64,
    /// Messages received again (re-acknowledged, not processed).
    pub duplicates: u64,
    /// Messages that did not parse, by [`crate::WireError::reason`].
    pub malformed: BTreeMap<String, u64>,
    /// Unknown objects ignored or passed on.
    pub unknown_objects: u64,
    /// RELEASE with a wrong secret (rejected).
    pub forged_release: u64,
    /// REFRESH for a path this node does not hold (answered PATH_DOWN).
    pub unknown_path_refresh: u64,
    /// Other messages for a visit this node does not hold.
    pub unknown_visit: u64,
    /// Upstream messages from an address other than the visit's next hop.
    pub unexpected_sender: u64,
    /// ACKs for nothing pending.
    pub stray_acks: u64,
    /// Messages that parsed but make no sense (hop 0 from a peer, a
    /// CREATE for a hop not here…).
    pub bad_message: u64,
    /// Neighbours given up on after the last retransmission.
    pub neighbour_down: u64,
    /// Visits purged because refreshes (or the COMMIT) stopped coming.
    pub expired: u64,
    /// Refusals originated here.
    pub refused: u64,
    /// Visits committed here.
    pub committed: u64,
    /// Commits held because [`Env::ready`](crate::Env::ready) said not yet (a class being
    /// fetched).
    pub held_commits: u64,
}

impl Counters {
    /// (name, value) of every counter; malformed ones as
    /// `malformed-<reason>`.
    pub fn iter(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = [
            ("received", self.received),
            ("sent", self.sent),
            ("retransmits", self.retransmits),
            ("duplicates", self.duplicates),
            ("unknown-objects", self.unknown_objects),
            ("forged-release", self.forged_release),
            ("unknown-path-refresh", self.unknown_path_refresh),
            ("unknown-visit", self.unknown_visit),
            ("unexpected-sender", self.unexpected_sender),
            ("stray-acks", self.stray_acks),
            ("bad-message", self.bad_message),
            ("neighbour-down", self.neighbour_down),
            ("expired", self.expired),
            ("refused", self.refused),
            ("committed", self.committed),
            ("held-commits", self.held_commits),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        v.extend(self.malformed.iter().map(|(k, n)| (format!("malformed-{k}"), *n)));
        v
    }

    /// All malformed messages.
    pub fn malformed_total(&self) -> u64 {
        self.malformed.values().sum()
    }
}

impl Agent {
    /// The next datagram to send. Call after every `handle_*` and command.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// When [`Agent::handle_timeout`] should be called next (virtual ms);
    /// advisory: calling it early is harmless.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.timers.first().map(|t| t.0)
    }

    /// The next event about a path initiated here.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}
