//! `/v1/node` and `/v1/metrics`: the node, its ports and drop counters;
//! the Prometheus text.

use super::{on_node, ApiError, ApiResult};
use crate::config::words::MacAddr;
use crate::runner::NodeHandle;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use weft_dataplane::Node;

/// `GET /v1/node`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeView {
    /// Node name.
    pub name: String,
    /// Pipeline snapshot version (bumped by every change).
    pub version: u64,
    /// Ports.
    pub ports: Vec<PortView>,
    /// Non-zero drop counters by reason.
    pub drops: BTreeMap<String, u64>,
    /// ICMP errors the node sent.
    pub icmp_errors_sent: u64,
}

/// A port in [`NodeView`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PortView {
    /// Port number.
    pub id: u16,
    /// Name.
    pub name: String,
    /// MAC.
    pub mac: MacAddr,
    /// IP MTU.
    pub mtu: u16,
    /// Addresses.
    pub addrs: Vec<IpNet>,
    /// IPv6 link-local address.
    pub link_local: Ipv6Addr,
    /// Link state.
    pub up: bool,
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames sent.
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
}

fn node_view(n: &Node) -> NodeView {
    NodeView {
        name: n.name().to_string(),
        version: n.pipeline().version,
        ports: n
            .ports()
            .into_iter()
            .map(|p| PortView {
                id: p.id,
                name: p.cfg.name,
                mac: MacAddr(p.cfg.mac),
                mtu: p.cfg.mtu,
                addrs: p.cfg.addrs,
                link_local: p.link_local,
                up: p.up,
                rx_packets: p.stats.rx_packets,
                rx_bytes: p.stats.rx_bytes,
                tx_packets: p.stats.tx_packets,
                tx_bytes: p.stats.tx_bytes,
            })
            .collect(),
        drops: n.drops().into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        icmp_errors_sent: n.icmp_errors_sent(),
    }
}

pub(super) async fn get(State(h): State<NodeHandle>) -> ApiResult<NodeView> {
    Ok(Json(on_node(&h, |n| Ok(node_view(n))).await?))
}

pub(super) async fn metrics(State(h): State<NodeHandle>) -> Result<Response, ApiError> {
    let counters = on_node(&h, |n| Ok(crate::metrics::NodeCounters::of(n))).await?;
    let text = crate::metrics::render(counters, h.io_counters());
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response())
}
