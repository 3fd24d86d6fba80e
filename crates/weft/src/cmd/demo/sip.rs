//! The demo's SIP step: NetServ's KeepAlive Responder (§6.1, `docs/sip.md`)
//! at r1, the edge in front of a SIP server on h2. User agents on h1
//! register and send NAT keep-alives — OPTIONS, NOTIFY `Event:
//! keep-alive`, RFC 5626's CRLF ping; r1's `keepalive` module answers the
//! keep-alives itself and drops them, and the server's view shows only the
//! REGISTERs. Skipped with a note when the plugins cannot be built here.

use super::{cmd, filter, say};
use anyhow::{bail, Result};
use std::net::IpAddr;
use std::time::Duration;
use weft_dataplane::Match;
use weft_emu::Emulator;
use weft_wasm::{HostConfig, WasmHost};

const UAS: usize = 20;

/// One SIP message from UA `ua` (numbers of two digits: every REGISTER has
/// the same length, which is how the server's view tells them apart).
fn msg(method: &str, ua: usize, cseq: u32, extra: &str) -> Vec<u8> {
    format!(
        "{method} sip:10.0.2.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.1.2:5060;branch=z9hG4bK-{ua:02}-{cseq};rport\r\n\
         From: <sip:ua{ua:02}@10.0.2.2>;tag=ua{ua:02}\r\nTo: <sip:ua{ua:02}@10.0.2.2>\r\nCall-ID: ua{ua:02}@10.0.1.2\r\n\
         CSeq: {cseq} {method}\r\n{extra}Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// Run the step on `emu`; `h2` is the SIP server.
pub(super) fn run(emu: &mut Emulator, h2: IpAddr) -> Result<()> {
    say("\n8. NetServ's KeepAlive Responder: r1, the edge, answers SIP keep-alives for the server on h2.");
    let bytes = match weft_wasm::plugins::read("keepalive") {
        Ok(b) => b,
        Err(e) => {
            say(&format!("  (skipped: the plugins cannot be built here: {e})"));
            return Ok(());
        }
    };
    let class = WasmHost::new(HostConfig::default())?.load_class("keepalive", &bytes)?;
    emu.node_mut("r1").upsert_class(class.element_class());
    cmd(
        "provider",
        "signal setup --to 10.0.1.1 --module keepalive@1 --from http://code-server --filter udp:5060:10.0.2.2/32",
    );
    let m = Match {
        proto: Some(17),
        dst: Some("10.0.2.2/32".parse()?),
        dport: Some((5060, 5060)),
        ..Default::default()
    };
    let (ka, _) = filter(emu.node_mut("r1"), m, ("keepalive", ""))?;
    println!("  installed keepalive{ka} on r1 for udp:5060 to 10.0.2.2");
    emu.host_mut("h2").udp_bind(5060)?;
    let register_len = msg("REGISTER", 0, 1, "Expires: 3600\r\n").len();
    for ua in 0..UAS {
        let h1 = emu.host_mut("h1");
        h1.udp_send(h2, 5060, &msg("REGISTER", ua, 1, "Expires: 3600\r\n"))?;
        h1.udp_send(h2, 5060, &msg("OPTIONS", ua, 2, ""))?;
        h1.udp_send(h2, 5060, &msg("NOTIFY", ua, 3, "Event: keep-alive\r\n"))?;
        h1.udp_send(h2, 5060, b"\r\n\r\n")?;
        // Spread the UAs out a little, as their timers would.
        emu.run_for(Duration::from_millis(5));
    }
    emu.run_for(Duration::from_millis(300));
    let seen: Vec<usize> = emu
        .host("h2")
        .udp_received()
        .iter()
        .filter(|d| d.dport == 5060)
        .map(|d| d.bytes)
        .collect();
    let registers = seen.iter().filter(|&&b| b == register_len).count();
    println!(
        "  h1: {UAS} UAs sent {} messages: {UAS} REGISTERs and {} keep-alives (OPTIONS, NOTIFY keep-alive, CRLF ping)",
        4 * UAS,
        3 * UAS
    );
    println!(
        "  the server's view (h2:5060): {} datagrams, {registers} of them REGISTERs",
        seen.len()
    );
    cmd("r1", &format!("instance report '{ka}'"));
    let r = emu.node("r1").report(ka)?;
    let p = &r["element"]["plugin"];
    println!("  {p}");
    let a = &p["absorbed"];
    let absorbed = ["crlf", "options", "notify"]
        .iter()
        .map(|k| a[k].as_u64().unwrap_or(0))
        .sum::<u64>();
    let passed = p["passed"].as_u64().unwrap_or(0);
    println!(
        "  server load saved: {absorbed}/{} = {:.0}% of the SIP messages toward the server answered at the edge",
        absorbed + passed,
        100.0 * absorbed as f64 / (absorbed + passed).max(1) as f64
    );
    if seen.len() != UAS || registers != UAS || absorbed != 3 * UAS as u64 {
        bail!(
            "the SIP step: the server saw {} datagrams ({registers} REGISTERs), the edge absorbed {absorbed}",
            seen.len()
        );
    }
    Ok(())
}
