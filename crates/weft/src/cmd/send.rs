//! `weft send`: tagged UDP datagrams for people and tests, through
//! `weft_datarouter::app` (IPv4 `IP_OPTIONS`; IPv6 raw socket); `weft recv`
//! shows what arrives.

use anyhow::Context;
use clap::Args;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use weft_control::config::words::MacAddr;
use weft_datarouter::app::TaggedSender;
use weft_datarouter::{wire, Tag, TagChain};

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
    /// Print the whole Ethernet frame as a trafgen(8) packet configuration
    /// instead of sending it: tagged traffic at line rate for load tests
    /// (`scripts/bench-netns` uses it). Needs `--from`, `--src-mac`,
    /// `--dst-mac`. With `--count N`, N frames (trafgen sends them round
    /// robin), `{i}` in a tag replaced by 1…N and `{x}` by the same as 8 hex
    /// digits: `--tag 'MP3/exact:0x{x}' --count 16384` sends 16,384 keys.
    #[arg(long, requires_all = ["from", "src_mac", "dst_mac"])]
    pub trafgen: bool,
    /// With `--trafgen`: the frame's source address.
    #[arg(long)]
    pub from: Option<IpAddr>,
    /// With `--trafgen`: the frame's source MAC (`02:00:00:00:00:01`).
    #[arg(long)]
    pub src_mac: Option<String>,
    /// With `--trafgen`: the frame's destination MAC (the first router's).
    #[arg(long)]
    pub dst_mac: Option<String>,
    /// With `--trafgen`: the UDP source port.
    #[arg(long, default_value_t = 9)]
    pub sport: u16,
}

fn chain(tags: &[String]) -> anyhow::Result<TagChain> {
    let tags = tags
        .iter()
        .map(|t| Tag::parse(t).map_err(|e| anyhow::anyhow!(e)))
        .collect::<anyhow::Result<Vec<Tag>>>()?;
    Ok(TagChain::new(tags))
}

pub fn run(a: &SendArgs) -> anyhow::Result<()> {
    if a.trafgen {
        print!("{}", trafgen(a)?);
        return Ok(());
    }
    let chain = chain(&a.tags)?;
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

/// `--trafgen`: `--count` frames, `{i}` and `{x}` in the tags replaced by
/// the frame's number.
fn trafgen(a: &SendArgs) -> anyhow::Result<String> {
    let mac = |m: &Option<String>| -> anyhow::Result<[u8; 6]> { Ok(m.as_deref().unwrap_or("").parse::<MacAddr>()?.0) };
    let macs = (mac(&a.src_mac)?, mac(&a.dst_mac)?);
    let mut out = String::new();
    for i in 1..=a.count.max(1) {
        let tags: Vec<String> = a
            .tags
            .iter()
            .map(|t| t.replace("{i}", &i.to_string()).replace("{x}", &format!("{i:08x}")))
            .collect();
        out.push_str(&frame_config(a, macs, &chain(&tags)?)?);
    }
    Ok(out)
}

/// The frame `weft send` would send, as a trafgen packet configuration
/// (`{ 0x.., … }`, checksums filled in).
fn frame_config(a: &SendArgs, (src_mac, dst_mac): ([u8; 6], [u8; 6]), chain: &TagChain) -> anyhow::Result<String> {
    let payload = a.data.as_bytes();
    let frame = match (a.from, a.dest) {
        // No tags: plain UDP, as the socket path sends it (no empty IPv4
        // option, no routing header).
        (Some(IpAddr::V4(s)), IpAddr::V4(d)) if chain.tags.is_empty() => Ok(weft_packet::build::udp4(
            src_mac, dst_mac, s, d, a.sport, a.port, 64, payload,
        )),
        (Some(IpAddr::V6(s)), IpAddr::V6(d)) if chain.tags.is_empty() => Ok(weft_packet::build::udp6(
            src_mac, dst_mac, s, d, a.sport, a.port, 64, payload,
        )),
        (Some(IpAddr::V4(s)), IpAddr::V4(d)) => {
            wire::udp4_frame(src_mac, dst_mac, s, d, a.sport, a.port, chain, payload)
        }
        (Some(IpAddr::V6(s)), IpAddr::V6(d)) => {
            wire::udp6_frame(src_mac, dst_mac, s, d, a.sport, a.port, chain, payload)
        }
        _ => anyhow::bail!("--from and the destination must be of one IP version"),
    }
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut out = String::from("{\n");
    for line in frame.chunks(16) {
        let bytes: Vec<String> = line.iter().map(|b| format!("0x{b:02x}")).collect();
        out.push_str(&format!("  {},\n", bytes.join(", ")));
    }
    // trafgen takes a trailing comma before the brace.
    out.push_str("}\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_packet::checksum;

    fn args(dest: &str, from: &str, tags: &[&str]) -> SendArgs {
        SendArgs {
            tags: tags.iter().map(|t| t.to_string()).collect(),
            dest: dest.parse().unwrap(),
            port: 6060,
            data: "0123456789".into(),
            count: 1,
            interval_ms: 0,
            trafgen: true,
            from: Some(from.parse().unwrap()),
            src_mac: Some("02:00:00:00:00:01".into()),
            dst_mac: Some("02:00:00:00:00:0a".into()),
            sport: 9,
        }
    }

    /// The octets of a `{ 0x.., … }` configuration.
    fn octets(cfg: &str) -> Vec<u8> {
        let body = cfg.trim().strip_prefix('{').unwrap().strip_suffix('}').unwrap();
        body.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| u8::from_str_radix(s.strip_prefix("0x").unwrap(), 16).unwrap())
            .collect()
    }

    #[test]
    fn trafgen_frames_carry_the_tags_with_valid_checksums() {
        let a = args("10.10.1.1", "10.10.1.2", &["DNS:www.isi.edu", "MP3/exact:0x1f2e3d4c"]);
        let chain = chain(&a.tags).unwrap();
        let f = octets(&trafgen(&a).unwrap());
        assert_eq!(&f[..12], &[2, 0, 0, 0, 0, 0x0a, 2, 0, 0, 0, 0, 1], "MACs");
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        let ihl = (f[14] & 0x0f) as usize * 4;
        let ip = &f[14..];
        assert_eq!(checksum::checksum(&ip[..ihl]), 0, "IPv4 header checksum");
        assert_eq!(&ip[12..20], &[10, 10, 1, 2, 10, 10, 1, 1]);
        let got = TagChain::parse_v4(&ip[20..ihl]).unwrap();
        assert_eq!(got.tags, chain.tags);
        let udp = &ip[ihl..];
        assert_eq!(&udp[8..], b"0123456789");
        let ps = checksum::pseudo_v4([10, 10, 1, 2], [10, 10, 1, 1], 17, udp.len() as u16);
        assert_eq!(checksum::finish(checksum::sum(udp, ps)), 0, "UDP checksum");

        let v6 = args("2001:db8::1", "2001:db8::2", &["DNS:www.isi.edu"]);
        let f6 = octets(&trafgen(&v6).unwrap());
        assert_eq!(&f6[12..14], &[0x86, 0xdd]);
        assert_eq!(f6[14 + 6], 43, "a routing header follows the IPv6 header");
    }

    #[test]
    fn trafgen_without_tags_is_plain_udp_as_the_socket_sends_it() {
        let f = octets(&trafgen(&args("10.10.1.1", "10.10.1.2", &[])).unwrap());
        assert_eq!(f[14], 0x45, "IPv4 without options");
        assert_eq!(checksum::checksum(&f[14..34]), 0, "IPv4 header checksum");
        assert_eq!(&f[42..], b"0123456789");
        let f6 = octets(&trafgen(&args("2001:db8::1", "2001:db8::2", &[])).unwrap());
        assert_eq!(f6[14 + 6], 17, "UDP straight after the IPv6 header");
        assert_eq!(&f6[62..], b"0123456789");
    }

    #[test]
    fn trafgen_counts_strings_through_i_and_x() {
        let mut a = args(
            "10.10.1.1",
            "10.10.1.2",
            &["DNS/suffix:w{i}.isi.edu", "MP3/exact:0x{x}"],
        );
        a.count = 300;
        let s = trafgen(&a).unwrap();
        let frames: Vec<Vec<u8>> = s.split_inclusive('}').filter(|f| f.contains('{')).map(octets).collect();
        assert_eq!(frames.len(), 300);
        for (i, f) in frames.iter().enumerate() {
            let ihl = (f[14] & 0x0f) as usize * 4;
            let c = TagChain::parse_v4(&f[34..14 + ihl]).unwrap();
            assert_eq!(c.tags[0].string, format!("w{}.isi.edu", i + 1).into_bytes());
            assert_eq!(c.tags[1].string, ((i + 1) as u32).to_be_bytes().to_vec());
            assert_eq!(checksum::checksum(&f[14..14 + ihl]), 0);
        }
    }

    #[test]
    fn trafgen_refuses_bad_macs_and_mixed_versions() {
        let mixed = args("2001:db8::1", "10.10.1.2", &[]);
        assert!(trafgen(&mixed).unwrap_err().to_string().contains("one IP version"));
        let mut bad = args("10.10.1.1", "10.10.1.2", &[]);
        bad.src_mac = Some("02:00:00:00:00".into());
        assert!(trafgen(&bad).unwrap_err().to_string().contains("bad MAC"));
        bad.src_mac = Some("02:00:00:00:00:zz".into());
        assert!(trafgen(&bad).unwrap_err().to_string().contains("bad MAC"));
    }
}
