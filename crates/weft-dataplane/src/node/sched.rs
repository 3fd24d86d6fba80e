//! The domain schedulers (Silk §3.2), between the classifier and the
//! chains: what waits in a domain's queue and the rounds that serve it.

use super::{FilterId, Hook};
use weft_packet::Packet;

/// A packet waiting in a domain's queue: what it matched, so the round
/// that serves it runs that filter's chain and then the rest of the data
/// path from that hook on.
pub(super) struct Queued {
    pub(super) hook: Hook,
    pub(super) filter: FilterId,
    pub(super) pkt: Packet,
}
