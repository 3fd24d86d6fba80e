//! `weft recv`: receive UDP datagrams and show their DataRouter tags,
//! through `weft_datarouter::app` (the receiving side of `weft send`).

use anyhow::Context;
use clap::Args;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use weft_datarouter::app::TaggedReceiver;

/// `weft recv PORT --show-tags`
#[derive(Debug, Args)]
pub struct RecvArgs {
    /// UDP port to listen on.
    pub port: u16,
    /// Address to bind (default 0.0.0.0; `::` for IPv6).
    #[arg(long, default_value = "0.0.0.0")]
    pub bind: IpAddr,
    /// Print each datagram's tag chain.
    #[arg(long)]
    pub show_tags: bool,
    /// Stop after this many datagrams (default: run until interrupted).
    #[arg(long)]
    pub count: Option<u64>,
    /// Give up after this many seconds without a datagram.
    #[arg(long)]
    pub timeout: Option<f64>,
}

pub fn run(a: &RecvArgs) -> anyhow::Result<()> {
    let at = SocketAddr::new(a.bind, a.port);
    let rx = TaggedReceiver::bind(at).context("weft recv")?;
    // On stderr, so stdout holds only datagrams: a script (or a reader of
    // the README) knows when to send.
    eprintln!("listening on udp {at}");
    let timeout = a.timeout.map(Duration::from_secs_f64);
    let mut n = 0u64;
    while a.count.is_none_or(|c| n < c) {
        let r = rx.recv(timeout)?;
        n += 1;
        let text = String::from_utf8_lossy(&r.payload);
        if a.show_tags {
            let tags = match (&r.chain, &r.tag_error) {
                (Some(c), _) => format!("tags [{c}]"),
                (None, Some(e)) => format!("bad tag: {e}"),
                (None, None) => "no tags".into(),
            };
            println!("from {} {} bytes {tags}: {text}", r.from, r.payload.len());
        } else {
            println!("from {} {} bytes: {text}", r.from, r.payload.len());
        }
    }
    Ok(())
}
