//! `weft send` and `weft recv`: tagged UDP datagrams for people and tests,
//! through `weft_datarouter::app` (IPv4 `IP_OPTIONS`; IPv6 raw socket).

use anyhow::Context;
use clap::Args;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use weft_datarouter::app::{TaggedReceiver, TaggedSender};
use weft_datarouter::{Tag, TagChain};

/// `weft send --tag DNS:joe.com --tag URL:joe.com/apple DEST PORT`
#[derive(Debug, Args)]
pub struct SendArgs {
    /// A tag, `CLASS[/ALG]:STRING` (e.g. `DNS:joe.com`, `URL/prefix:/apple`,
    /// `MP3:0x1f2e3d4c`); repeat for a chain, in order.
    #[arg(long = "tag", value_name = "CLASS[/ALG]:STRING")]
    pub tags: Vec<String>,
    /// The first destination: a DataRouter (or the final host for an
    /// untagged datagram).
    pub dest: IpAddr,
    /// UDP destination port.
    pub port: u16,
    /// Payload text.
    #[arg(long, default_value = "hello from weft send")]
    pub data: String,
    /// Datagrams to send.
    #[arg(long, default_value_t = 1)]
    pub count: u32,
    /// Milliseconds between datagrams.
    #[arg(long, default_value_t = 100)]
    pub interval_ms: u64,
}

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

pub fn send(a: &SendArgs) -> anyhow::Result<()> {
    let tags = a
        .tags
        .iter()
        .map(|t| Tag::parse(t).map_err(|e| anyhow::anyhow!(e)))
        .collect::<anyhow::Result<Vec<Tag>>>()?;
    let chain = TagChain::new(tags);
    let tx = TaggedSender::new(SocketAddr::new(a.dest, a.port), chain.clone()).context("weft send")?;
    for i in 0..a.count {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(a.interval_ms));
        }
        tx.send(a.data.as_bytes())?;
    }
    println!(
        "sent {} datagram(s) of {} bytes to {}:{} from {} with tags [{}]",
        a.count,
        a.data.len(),
        a.dest,
        a.port,
        tx.local_addr()?,
        chain
    );
    Ok(())
}

pub fn recv(a: &RecvArgs) -> anyhow::Result<()> {
    let rx = TaggedReceiver::bind(SocketAddr::new(a.bind, a.port)).context("weft recv")?;
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
