//! Classes the node lacks, fetched from a code server: the
//! [`ClassFetcher`] a daemon is given, and what it remembers of each fetch
//! ([`Fetch`]) so that a running fetch is not started twice and a failed
//! one is believed for [`FETCH_RETRY_MS`].

use super::PbrConfig;
use serde::Serialize;
use weft_dataplane::ElementClass;
use weft_pbr::Refusal;

/// Where a node's PBR daemon gets the plugin classes it lacks (see the
/// module documentation). Implementations must not block: `fetch` starts
/// the work; the outcome reaches the daemon on the node thread through
/// [`PbrNode::class_fetched`](super::PbrNode::class_fetched), or through [`ClassFetcher::poll`] for
/// drivers that poll (the emulator).
pub trait ClassFetcher: Send {
    /// Start fetching plugin `name` (a valid plugin name, see
    /// [`weft_repo::package::valid_name`]). Called once per fetch: not again while
    /// it runs.
    fn fetch(&mut self, name: &str);
    /// A finished fetch: the plugin's name and its class, or the refusal a
    /// commit waiting for it gives. [`PbrNode::poll`](super::PbrNode::poll) asks every time.
    fn poll(&mut self) -> Option<(String, Result<ElementClass, Refusal>)> {
        None
    }
}

/// A class fetch, by plugin name.
#[derive(Clone, Debug)]
pub(super) enum Fetch {
    Running,
    /// Registered on the node.
    Done,
    /// The refusal commits waiting for it give, and when it came (ms):
    /// reservations refuse with it for [`FETCH_RETRY_MS`], then fetch
    /// again.
    Failed(Refusal, u64),
}

/// How long a failed class fetch is believed: reservations needing the
/// class are refused at once (the hop is "not obtainable") instead of
/// asking the code server again for every path.
pub const FETCH_RETRY_MS: u64 = 10_000;

/// Fetch counters ([`PbrNode::counters`](super::PbrNode::counters)).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FetchStats {
    /// Fetches started.
    pub started: u64,
    /// Classes fetched and registered.
    pub registered: u64,
    /// Fetches that failed (not found, network, checks).
    pub failed: u64,
}

/// The plugin name to fetch for PBR class `name`: the mapped name, as is
/// or in lower case, if it is a valid plugin name.
pub(super) fn fetch_name(cfg: &PbrConfig, name: &str) -> Option<String> {
    let mapped = cfg.mapped(name);
    [mapped.to_string(), mapped.to_ascii_lowercase()]
        .into_iter()
        .find(|n| weft_repo::package::valid_name(n))
}
