//! `weft metrics`: the node's counters in the Prometheus text format, as
//! its API serves them on `/v1/metrics`.

use super::common::client;
use std::path::PathBuf;

/// `weft metrics`
pub async fn run(node: Option<PathBuf>) -> anyhow::Result<()> {
    let c = client(node)?;
    print!("{}", c.get_text("/v1/metrics").await?);
    Ok(())
}
