//! The node's counters, as data: drops by reason, per-port and
//! per-instance counters, ICMP errors sent and limited. Rendering them
//! (the Prometheus text of `/v1/metrics`) is `weft-control`'s job: the
//! engine knows no exposition format.

use super::Node;
use crate::element::Verdict;
use serde::Serialize;
use std::collections::BTreeMap;
use weft_packet::view::ParseError;

/// Why the node dropped a packet. Counted per reason; exposed as
/// `weft_drops_total{reason="…"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum DropReason {
    /// Frame shorter than an Ethernet header.
    TruncatedEthernet,
    /// ARP shorter than its fixed part.
    TruncatedArp,
    /// IPv4 header or total length past the frame end.
    TruncatedIpv4,
    /// IPv6 header or extension headers past the frame end.
    TruncatedIpv6,
    /// UDP/TCP/ICMP header past the IP payload end.
    TruncatedTransport,
    /// Impossible IPv4 header fields.
    MalformedIpv4,
    /// Impossible IPv6 header or extension header chain.
    MalformedIpv6,
    /// Impossible TCP header.
    MalformedTransport,
    /// ARP for something other than Ethernet/IPv4.
    MalformedArp,
    /// IPv4 header checksum wrong.
    BadChecksum,
    /// Unicast frame for another MAC address.
    NotOurMac,
    /// Ethertype the node does not handle.
    UnknownEthertype,
    /// Received on or routed to a port that is down.
    PortDown,
    /// No route to the destination.
    NoRoute,
    /// TTL or hop limit exhausted.
    TtlExceeded,
    /// Larger than the out port's MTU and may not be fragmented.
    MtuExceeded,
    /// Too many packets waiting for one neighbour.
    NeighborQueueFull,
    /// Neighbour did not answer in time.
    NeighborUnresolved,
    /// An element's verdict was Drop.
    Element,
    /// Addressed to the node, but nothing listens there.
    NoListener,
    /// The node-local receive queue is full.
    LocalQueueFull,
    /// Source or destination address may not be forwarded (multicast,
    /// broadcast, link-local, loopback, unspecified).
    Martian,
    /// An element redirected or emitted to a port that does not exist.
    BadPort,
    /// A label no visit here holds (explicit paths).
    UnknownLabel,
    /// A label stack entry Weft does not take (not bottom of stack, no IP
    /// inside, too short), or a label that could not be pushed.
    MalformedLabel,
    /// The label TTL of an explicit path ran out (a walk longer than its
    /// hop limit, or a loop).
    LabelTtlExceeded,
    /// An element left a packet that no longer parses.
    ElementMalformed,
    /// A domain's queue was full when the packet matched its path (early
    /// drop, before any of the domain's code ran).
    DomainQueueFull,
    /// Queueing the packet would have taken its domain over its memory
    /// limit.
    DomainMemory,
    /// The packet's path was removed while it waited in its domain's
    /// queue.
    DomainPathGone,
}

impl DropReason {
    pub(super) const COUNT: usize = DropReason::DomainPathGone as usize + 1;
    /// Every reason, in counter order (metrics list each, zeros too).
    pub const ALL: [DropReason; DropReason::COUNT] = [
        DropReason::TruncatedEthernet,
        DropReason::TruncatedArp,
        DropReason::TruncatedIpv4,
        DropReason::TruncatedIpv6,
        DropReason::TruncatedTransport,
        DropReason::MalformedIpv4,
        DropReason::MalformedIpv6,
        DropReason::MalformedTransport,
        DropReason::MalformedArp,
        DropReason::BadChecksum,
        DropReason::NotOurMac,
        DropReason::UnknownEthertype,
        DropReason::PortDown,
        DropReason::NoRoute,
        DropReason::TtlExceeded,
        DropReason::MtuExceeded,
        DropReason::NeighborQueueFull,
        DropReason::NeighborUnresolved,
        DropReason::Element,
        DropReason::NoListener,
        DropReason::LocalQueueFull,
        DropReason::Martian,
        DropReason::BadPort,
        DropReason::UnknownLabel,
        DropReason::MalformedLabel,
        DropReason::LabelTtlExceeded,
        DropReason::ElementMalformed,
        DropReason::DomainQueueFull,
        DropReason::DomainMemory,
        DropReason::DomainPathGone,
    ];

    /// Stable counter label.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::TruncatedEthernet => "truncated-ethernet",
            DropReason::TruncatedArp => "truncated-arp",
            DropReason::TruncatedIpv4 => "truncated-ipv4",
            DropReason::TruncatedIpv6 => "truncated-ipv6",
            DropReason::TruncatedTransport => "truncated-transport",
            DropReason::MalformedIpv4 => "malformed-ipv4",
            DropReason::MalformedIpv6 => "malformed-ipv6",
            DropReason::MalformedTransport => "malformed-transport",
            DropReason::MalformedArp => "malformed-arp",
            DropReason::BadChecksum => "bad-ipv4-checksum",
            DropReason::NotOurMac => "not-our-mac",
            DropReason::UnknownEthertype => "unknown-ethertype",
            DropReason::PortDown => "port-down",
            DropReason::NoRoute => "no-route",
            DropReason::TtlExceeded => "ttl-exceeded",
            DropReason::MtuExceeded => "mtu-exceeded",
            DropReason::NeighborQueueFull => "neighbor-queue-full",
            DropReason::NeighborUnresolved => "neighbor-unresolved",
            DropReason::Element => "element",
            DropReason::NoListener => "no-listener",
            DropReason::LocalQueueFull => "local-queue-full",
            DropReason::Martian => "martian",
            DropReason::BadPort => "bad-port",
            DropReason::UnknownLabel => "unknown-label",
            DropReason::MalformedLabel => "malformed-label",
            DropReason::LabelTtlExceeded => "label-ttl-exceeded",
            DropReason::ElementMalformed => "element-malformed",
            DropReason::DomainQueueFull => "domain-queue-full",
            DropReason::DomainMemory => "domain-memory",
            DropReason::DomainPathGone => "domain-path-gone",
        }
    }

    pub(super) fn from_parse(e: ParseError) -> DropReason {
        use weft_packet::view::Layer;
        match e {
            ParseError::Truncated(Layer::Ethernet) => DropReason::TruncatedEthernet,
            ParseError::Truncated(Layer::Arp) => DropReason::TruncatedArp,
            ParseError::Truncated(Layer::Ipv4) => DropReason::TruncatedIpv4,
            ParseError::Truncated(Layer::Ipv6) => DropReason::TruncatedIpv6,
            ParseError::Truncated(_) => DropReason::TruncatedTransport,
            ParseError::Malformed(Layer::Ipv4, _) => DropReason::MalformedIpv4,
            ParseError::Malformed(Layer::Ipv6, _) => DropReason::MalformedIpv6,
            ParseError::Malformed(Layer::Arp, _) => DropReason::MalformedArp,
            ParseError::Malformed(_, _) => DropReason::MalformedTransport,
            ParseError::BadChecksum => DropReason::BadChecksum,
        }
    }
}

/// Per-port counters.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct PortStats {
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames queued for transmission.
    pub tx_packets: u64,
    /// Bytes queued for transmission.
    pub tx_bytes: u64,
}

/// Per-instance counters kept by the engine (the element's own live in its
/// report).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct InstanceStats {
    /// Packets handed to the element.
    pub packets: u64,
    /// Bytes handed to the element.
    pub bytes: u64,
    /// Verdict Drop.
    pub dropped: u64,
    /// Verdict Consume.
    pub consumed: u64,
    /// Verdict Redirect.
    pub redirected: u64,
    /// Packets the element emitted.
    pub emitted: u64,
    /// Batches (calls to `process_batch`).
    pub batches: u64,
}

impl InstanceStats {
    /// Count a verdict the instance gave (`Continue` is not counted).
    pub(super) fn count(&mut self, v: Verdict) {
        match v {
            Verdict::Continue => {}
            Verdict::Drop => self.dropped += 1,
            Verdict::Consume => self.consumed += 1,
            Verdict::Redirect(_) => self.redirected += 1,
        }
    }
}

impl Node {
    /// Drop counters by reason (only non-zero ones).
    pub fn drops(&self) -> BTreeMap<&'static str, u64> {
        DropReason::ALL
            .iter()
            .filter(|r| self.drops[**r as usize] > 0)
            .map(|r| (r.as_str(), self.drops[*r as usize]))
            .collect()
    }

    /// One drop counter.
    pub fn drop_count(&self, r: DropReason) -> u64 {
        self.drops[r as usize]
    }

    /// ICMP errors sent, by the engine and by elements.
    pub fn icmp_errors_sent(&self) -> u64 {
        self.icmp.sent()
    }

    /// ICMP errors not sent because the node's limiter was empty.
    pub fn icmp_errors_limited(&self) -> u64 {
        self.icmp.limited()
    }
}
