//! What comes out of the agent: datagrams to send ([`Transmit`]), events
//! ([`Event`]), what it holds ([`SessionView`], [`PeerView`]) and its
//! [`Counters`] — and the `poll_*` calls that drain them.

use super::Agent;
use crate::wire::{Entry, Filter, Kind, Module, Reason, SessionId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

/// A datagram to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Destination address: a flow's destination (REQUEST) or a peer.
    pub dst: IpAddr,
    /// Destination UDP port: [`SIGNAL_PORT`](crate::SIGNAL_PORT), or a
    /// requester's own port.
    pub dst_port: u16,
    /// Source address; None: the driver's choice (the node's address on
    /// the route toward `dst`). Nodes send from port 270.
    pub src: Option<IpAddr>,
    /// Carry the IP Router Alert option (RFC 2113 / RFC 2711): every
    /// REQUEST does, so that the next capable node on the path intercepts
    /// it; responses and ACKs go to a peer and do not.
    pub router_alert: bool,
    /// The message.
    pub payload: Vec<u8>,
}

/// Why a session left a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Removal {
    /// A REMOVE from its key.
    Removed,
    /// Not refreshed within its lifetime.
    Expired,
    /// The install failed or took too long.
    Failed,
    /// The operator removed it.
    Operator,
}

/// Something the driver may act on or show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// The answer to a request sent from here: the response stack, first
    /// node first. Empty when no capable node answered.
    Response {
        /// The session.
        session: SessionId,
        /// The request's nonce.
        nonce: [u8; 16],
        /// The request's kind.
        kind: Kind,
        /// The response's flags ([`crate::wire::ResponseMsg`]'s).
        flags: u8,
        /// Entries in path order.
        stack: Vec<Entry>,
    },
    /// A session was installed here.
    Installed {
        /// The session.
        session: SessionId,
        /// Its owner.
        owner: String,
    },
    /// A session left this node.
    Removed {
        /// The session.
        session: SessionId,
        /// Why.
        why: Removal,
    },
}

/// Where an installed session stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SessionState {
    /// Fetching, verifying, compiling.
    Installing,
    /// Running.
    Installed,
}

/// A session held here (`weft signal ls`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    /// The session.
    pub session: SessionId,
    /// Its owner (principal name).
    pub owner: String,
    /// The key that set it up (hex).
    pub key: String,
    /// The module.
    pub module: Module,
    /// The filter (packet modules).
    pub filter: Option<Filter>,
    /// Installing or installed.
    pub state: SessionState,
    /// The instance (once installed).
    pub instance: Option<u32>,
    /// Lifetime asked for, s.
    pub lifetime_s: u32,
    /// Time left before expiry unless refreshed, ns.
    pub remaining_ns: u64,
    /// Refreshes received.
    pub refreshes: u64,
    /// The flow's origin at the last SETUP.
    pub origin: IpAddr,
}

/// A flow's recorded upstream peer (soft state, kept while requests of
/// the flow pass).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerView {
    /// The session.
    pub session: SessionId,
    /// The flow's origin.
    pub origin: IpAddr,
    /// The flow's destination.
    pub dest: IpAddr,
    /// The previous signaling peer.
    pub upstream: SocketAddr,
    /// Time left before it is forgotten, ns.
    pub remaining_ns: u64,
}

/// What the agent counted. Bad input never stalls it: it is counted here,
/// and answered on the response stack where a requester can be told.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Datagrams handed in.
    pub received: u64,
    /// Datagrams sent (first transmissions and ACKs).
    pub sent: u64,
    /// Retransmissions.
    pub retransmits: u64,
    /// Datagrams seen before (same peer, same sequence number).
    pub duplicates: u64,
    /// Datagrams that do not parse, by [`crate::WireError::reason`].
    pub malformed: BTreeMap<String, u64>,
    /// Requests dropped by the per-origin or the node's rate limit (not
    /// acknowledged: the sender retries later).
    pub rate_limited: u64,
    /// Requests dropped because the node holds too many transactions.
    pub busy: u64,
    /// Requests handled, by kind.
    pub requests: BTreeMap<String, u64>,
    /// Refusals this node put on the stack, by reason.
    pub refused: BTreeMap<String, u64>,
    /// ACKs for nothing pending.
    pub stray_acks: u64,
    /// Responses for no transaction here (late, or forged).
    pub stray_responses: u64,
    /// Responses from a peer other than the one that acknowledged.
    pub unexpected_sender: u64,
    /// Requests this node answered as the last node because nothing
    /// downstream acknowledged.
    pub last_by_timeout: u64,
    /// Downstream peers that acknowledged and never answered.
    pub downstream_timeouts: u64,
    /// Responses that could not be delivered upstream.
    pub undeliverable: u64,
    /// Entries cut to fit the datagram.
    pub truncated: u64,
    /// TRIGGERs whose reverse flow started here.
    pub triggered: u64,
    /// Sessions installed, refreshed, removed by REMOVE, expired.
    pub installed: u64,
    /// Sessions refreshed.
    pub refreshed: u64,
    /// Sessions removed by REMOVE.
    pub removed: u64,
    /// Sessions that expired.
    pub expired: u64,
}

impl Counters {
    /// Every counter as (name, value), maps flattened (`malformed-truncated`,
    /// `refused-prefix`, `requests-setup`).
    pub fn iter(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = [
            ("received", self.received),
            ("sent", self.sent),
            ("retransmits", self.retransmits),
            ("duplicates", self.duplicates),
            ("rate-limited", self.rate_limited),
            ("busy", self.busy),
            ("stray-acks", self.stray_acks),
            ("stray-responses", self.stray_responses),
            ("unexpected-sender", self.unexpected_sender),
            ("last-by-timeout", self.last_by_timeout),
            ("downstream-timeouts", self.downstream_timeouts),
            ("undeliverable", self.undeliverable),
            ("truncated", self.truncated),
            ("triggered", self.triggered),
            ("installed", self.installed),
            ("refreshed", self.refreshed),
            ("removed", self.removed),
            ("expired", self.expired),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        v.extend(self.malformed.iter().map(|(k, n)| (format!("malformed-{k}"), *n)));
        v.extend(self.requests.iter().map(|(k, n)| (format!("requests-{k}"), *n)));
        v.extend(self.refused.iter().map(|(k, n)| (format!("refused-{k}"), *n)));
        v
    }

    /// Datagrams that did not parse, all reasons.
    pub fn malformed_total(&self) -> u64 {
        self.malformed.values().sum()
    }

    /// Refusals of `r` put on stacks here.
    pub fn refused_of(&self, r: Reason) -> u64 {
        self.refused.get(r.as_str()).copied().unwrap_or(0)
    }
}

impl Agent {
    /// The next datagram to send. Call after every `handle_*` call and
    /// command, until None.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// When to call [`Agent::handle_timeout`] next (node clock, ns).
    pub fn poll_timeout(&self) -> Option<u64> {
        self.timers.first().map(|t| t.0)
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}
