//! What the API and the CLI show of PBR: paths ([`PathView`]) in their
//! [`PathState`], the records of a STATUS reply ([`VisitRecord`]), what
//! PBR holds on the node ([`Resources`]) — and the record the daemon keeps
//! of each path initiated here ([`Initiated`]), from which its view is
//! made.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;
use weft_pbr::{CreateRequest, Hop, HopError, PathId, PathSummary, Phase, Plugin, VisitStatus};

/// Where a path initiated here stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathState {
    /// CREATE sent, no COMMIT back yet (or, for a visit held here:
    /// reserved).
    Pending,
    /// Every visit committed.
    Up,
    /// A hop refused; see [`PathView::error`].
    Refused,
    /// An established path broke; see [`PathView::error`].
    Down,
    /// Released by the initiator.
    Released,
}

impl PathState {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            PathState::Pending => "pending",
            PathState::Up => "up",
            PathState::Refused => "refused",
            PathState::Down => "down",
            PathState::Released => "released",
        }
    }
}

/// One visit's record from a STATUS reply, flattened for tables.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VisitRecord {
    /// Hop index.
    pub hop: u8,
    /// The visit's address.
    pub address: IpAddr,
    /// `reserved` or `committed`.
    pub state: Option<String>,
    /// The visit's label (none at the first visit, which pushes).
    pub label: Option<u32>,
    /// What it does next (`swap 23 → 10.34.0.3`, `push 17 …`, `tunnel …`,
    /// `pop`).
    pub out: Option<String>,
    /// Plugin instances (`encrypt#2`), comma-separated.
    pub plugin: Option<String>,
    /// Packets that took the visit.
    pub packets: Option<u64>,
    /// Their bytes.
    pub bytes: Option<u64>,
    /// The full record as the visit sent it.
    pub detail: serde_json::Value,
}

impl VisitRecord {
    pub(super) fn from_status(v: &VisitStatus) -> VisitRecord {
        let s = &v.status;
        let node = &s["node"];
        let instances = node["instances"].as_array().map(|a| {
            a.iter()
                .map(|i| {
                    format!(
                        "{}{}",
                        i["class"].as_str().unwrap_or("?"),
                        i["id"].as_str().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join(",")
        });
        VisitRecord {
            hop: v.hop,
            address: v.address,
            state: s["phase"].as_str().map(str::to_string),
            label: s["in_label"].as_u64().map(|l| l as u32),
            out: node["out"].as_str().map(str::to_string),
            plugin: instances.filter(|s| !s.is_empty()),
            packets: node["packets"].as_u64(),
            bytes: node["bytes"].as_u64(),
            detail: s.clone(),
        }
    }
}

/// A path as the API and CLI show it: one initiated here, or a visit held
/// here.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PathView {
    /// `NUMBER@ADDRESS`.
    pub id: String,
    /// The path id.
    pub path: PathId,
    /// `initiator`, `transit` or `egress` (the visit shown).
    pub role: &'static str,
    /// The visit shown (0 for the initiator).
    pub hop: u8,
    /// State.
    pub state: PathState,
    /// Why it was refused or went down.
    pub error: Option<HopError>,
    /// The walk (addresses; loose hops marked `~`) — the whole walk at the
    /// initiator, `prev → here → next` at a visit.
    pub walk: String,
    /// The request (initiator only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<CreateRequest>,
    /// Label allocated here (none at the first visit).
    pub in_label: Option<u32>,
    /// Label sent with (none: pop or not committed).
    pub out_label: Option<u32>,
    /// Plugins run at this visit.
    pub plugins: Vec<Plugin>,
    /// The largest IP packet the visit takes in, the rest of the path
    /// included: at the initiator, the path's MTU (`docs/pbr.md` §5).
    pub mtu: Option<u16>,
    /// When the visit expires without a refresh (ms).
    pub expires_ms: Option<u64>,
    /// The last STATUS reply (initiator only), one record per visit.
    pub status: Option<Vec<VisitRecord>>,
    /// Why that STATUS reply stopped early.
    pub status_error: Option<HopError>,
    /// When that reply came (ms).
    pub status_ms: Option<u64>,
}

/// What PBR holds on this node, for tests and the API.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Resources {
    /// Visits reserved or committed.
    pub visits: usize,
    /// Visits committed (label or steering installed).
    pub installed: usize,
    /// Plugin slots held (reserved or created).
    pub plugin_slots: usize,
    /// Plugin instances created.
    pub instances: usize,
    /// Bandwidth held, by port id, bits/s (ports with none left out).
    pub bandwidth_bps: BTreeMap<u16, u64>,
}

impl Resources {
    /// Nothing held at all.
    pub fn is_empty(&self) -> bool {
        self.visits == 0 && self.installed == 0 && self.plugin_slots == 0 && self.bandwidth_bps.is_empty()
    }
}

/// A path initiated here, as the daemon records it.
#[derive(Clone, Debug)]
pub(super) struct Initiated {
    pub(super) req: CreateRequest,
    pub(super) state: PathState,
    pub(super) error: Option<HopError>,
    pub(super) created_ms: u64,
    pub(super) up_ms: Option<u64>,
    /// The last STATUS reply: records, why it stopped early, when (ms).
    pub(super) status: Option<(Vec<VisitRecord>, Option<HopError>, u64)>,
}

impl Initiated {
    /// Still pending or up (not refused, down or released).
    pub(super) fn is_live(&self) -> bool {
        matches!(self.state, PathState::Up | PathState::Pending)
    }

    /// The view of path `id`; `s` is the agent's summary of its first
    /// visit, if the agent still holds it.
    pub(super) fn view(&self, id: PathId, s: Option<&PathSummary>) -> PathView {
        let i = self;
        let (status, status_error, status_ms) = match &i.status {
            Some((r, e, t)) => (Some(r.clone()), e.clone(), Some(*t)),
            None => (None, None, None),
        };
        PathView {
            id: id.to_string(),
            path: id,
            role: "initiator",
            hop: 0,
            state: i.state,
            error: i.error.clone(),
            walk: walk_string(&i.req.hops),
            request: Some(i.req.clone()),
            in_label: None,
            out_label: s.and_then(|s| s.out_label),
            plugins: i.req.plugins.iter().filter(|p| p.hop == 0).cloned().collect(),
            mtu: s.and_then(|s| s.mtu),
            expires_ms: None,
            status,
            status_error,
            status_ms,
        }
    }
}

impl PathView {
    /// A visit held here for another initiator.
    pub(super) fn of_visit(s: &PathSummary) -> PathView {
        let here = "·".to_string();
        let walk = [s.prev.map(|a| a.to_string()), Some(here), s.next.map(|a| a.to_string())]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" → ");
        PathView {
            id: s.key.path.to_string(),
            path: s.key.path,
            role: if s.next.is_none() { "egress" } else { "transit" },
            hop: s.key.hop,
            state: match s.phase {
                Phase::Reserved => PathState::Pending,
                Phase::Committed => PathState::Up,
            },
            error: None,
            walk,
            request: None,
            in_label: s.in_label,
            out_label: s.out_label,
            plugins: s.plugins.clone(),
            mtu: s.mtu,
            expires_ms: s.expires_ms,
            status: None,
            status_error: None,
            status_ms: None,
        }
    }
}

/// The walk as addresses, loose hops marked `~`.
fn walk_string(hops: &[Hop]) -> String {
    hops.iter()
        .map(|h| {
            if h.loose {
                format!("~{}", h.addr)
            } else {
                h.addr.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" → ")
}
