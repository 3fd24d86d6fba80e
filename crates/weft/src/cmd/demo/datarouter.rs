//! The DataRouter scene of `weft demo`: one packet carrying a DNS tag and a
//! URL tag, resolved hop by hop by three DataRouters (with a plain router
//! between two of them), on `topologies/datarouter-line.toml`. The header
//! each link carried — destination, pointer, strings — is printed from the
//! emulator's link captures.

use anyhow::{anyhow, bail, Result};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use weft_datarouter::wire::{self, udp4_frame};
use weft_datarouter::{Tag, TagChain};
use weft_emu::Emulator;

const TOPOLOGY: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../topologies/datarouter-line.toml"
));
const PORT: u16 = 7000;

fn droute(emu: &mut Emulator, node: &str, line: &str) -> Result<()> {
    super::cmd(node, &format!("droute {line}"));
    let n = emu.node_mut(node);
    let id = n
        .instances()
        .into_iter()
        .find(|i| i.class == "datarouter")
        .ok_or_else(|| anyhow!("{node} has no datarouter"))?
        .id;
    n.control(id, line)?;
    Ok(())
}

/// Run the scene.
pub fn run() -> Result<()> {
    super::say(
        "\n9. DataRouter (topologies/datarouter-line.toml): forwarding on strings in the IP header (IPv4 option \
         0x9e). dr1, dr3 and dr4 resolve tags hop by hop; r2 is a plain router.",
    );
    let mut emu = Emulator::from_str(TOPOLOGY, ".")?;
    for l in emu.link_names() {
        emu.capture(&l)?;
    }
    emu.host_mut("h4").udp_bind(PORT)?;
    droute(&mut emu, "dr1", "class DNS add joe.com 10.0.23.3 alg suffix")?;
    droute(
        &mut emu,
        "dr3",
        "class URL add joe.com 10.0.34.4 alg suffix rewrite copy:prefix,next:strip",
    )?;
    droute(&mut emu, "dr4", "class URL add /apple 10.0.4.2 alg prefix")?;
    let chain = TagChain::new(vec![
        Tag::parse("DNS:joe.com").map_err(|e| anyhow!(e))?,
        Tag::parse("URL:joe.com/apple").map_err(|e| anyhow!(e))?,
    ]);
    super::cmd(
        "h1",
        &format!("send --tag DNS:joe.com --tag URL:joe.com/apple 10.0.1.1 {PORT} --data GET"),
    );
    let f = udp4_frame(
        [0; 6],
        [0; 6],
        Ipv4Addr::new(10, 0, 1, 2),
        Ipv4Addr::new(10, 0, 1, 1),
        40000,
        PORT,
        &chain,
        b"GET",
    )?;
    emu.host_mut("h1").send_raw_ip(&f[14..])?;
    emu.run_until_idle(Duration::from_secs(2));
    println!("  {:<8} {:<11} {:>3}  strings (^ = pointer)", "link", "dst", "ptr");
    for link in ["h1-dr1", "dr1-r2", "r2-dr3", "dr3-dr4", "dr4-h4"] {
        for c in emu.captured(link).iter().filter(|c| c.dir == 0) {
            let ip = &c.frame[14..];
            let Ok(Some(ch)) = wire::read_chain(ip) else { continue };
            let dst = IpAddr::V4(Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]));
            println!("  {link:<8} {dst:<11} {:>3}  {ch}", ch.pointer_v4());
        }
    }
    let got = emu.host("h4").udp_received().iter().filter(|d| d.dport == PORT).count();
    println!("  h4 received {got} datagram(s) from 10.0.1.2: the DNS overlay took it to dr3, the URL overlay on");
    println!("  from there; no hop terminated a connection, and r2 never looked at the tags.");
    if got != 1 {
        bail!("the DataRouter scene's packet did not arrive");
    }
    Ok(())
}
