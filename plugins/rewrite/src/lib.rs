//! `rewrite`: a payload rewriter. Replaces every occurrence of a byte string
//! in UDP payloads by another of the same length and fixes the UDP checksum.
//!
//! * **Configuration:** `from=TEXT to=TEXT` or `fromhex=HEX tohex=HEX`
//!   (1..=64 bytes, equal lengths).
//! * **Report:** `{"packets":N,"rewritten":N,"replacements":N}`.
#![no_std]

use weft_plugin_sdk::util::{config_get, config_unknown_key, hex_decode};
use weft_plugin_sdk::{weft_plugin, Ctx, Packet, Plugin, Reply, Verdict};

const MAX_PAT: usize = 64;

struct Rewrite {
    from: [u8; MAX_PAT],
    to: [u8; MAX_PAT],
    n: usize,
    packets: u64,
    rewritten: u64,
    replacements: u64,
}

fn pattern(config: &str, text: &str, hex: &str, out: &mut [u8; MAX_PAT]) -> Result<usize, &'static str> {
    if let Some(t) = config_get(config, text, usize::MAX) {
        if t.is_empty() || t.len() > MAX_PAT {
            return Err("rewrite: patterns are 1..=64 bytes");
        }
        out[..t.len()].copy_from_slice(t.as_bytes());
        return Ok(t.len());
    }
    if let Some(h) = config_get(config, hex, usize::MAX) {
        return match hex_decode(h, out) {
            Some(n) if n > 0 => Ok(n),
            _ => Err("rewrite: bad hex pattern (1..=64 bytes)"),
        };
    }
    Err("rewrite: from=TEXT to=TEXT (or fromhex=, tohex=) are required")
}

impl Plugin for Rewrite {
    fn init(config: &str) -> Result<Self, &'static str> {
        if config_unknown_key(config, &["from", "to", "fromhex", "tohex"]).is_some() {
            return Err("rewrite: unknown key (known: from, to, fromhex, tohex)");
        }
        let mut from = [0u8; MAX_PAT];
        let mut to = [0u8; MAX_PAT];
        let n = pattern(config, "from", "fromhex", &mut from)?;
        let m = pattern(config, "to", "tohex", &mut to)?;
        if n != m {
            return Err("rewrite: from and to must have the same length");
        }
        Ok(Rewrite {
            from,
            to,
            n,
            packets: 0,
            rewritten: 0,
            replacements: 0,
        })
    }

    fn process(&mut self, _cx: &mut Ctx, pkt: &mut Packet<'_>) -> Verdict {
        self.packets += 1;
        let Some(r) = pkt.udp_payload_range() else {
            return Verdict::Continue;
        };
        let (from, to) = (&self.from[..self.n], &self.to[..self.n]);
        // Find first, so packets without a match are not marked written.
        let hit = pkt.data()[r.clone()].windows(self.n).any(|w| w == from);
        if !hit {
            return Verdict::Continue;
        }
        let payload = &mut pkt.data_mut()[r];
        let mut i = 0;
        let mut count = 0;
        while i + self.n <= payload.len() {
            if &payload[i..i + self.n] == from {
                payload[i..i + self.n].copy_from_slice(to);
                count += 1;
                i += self.n;
            } else {
                i += 1;
            }
        }
        pkt.fix_udp_checksum();
        self.rewritten += 1;
        self.replacements += count;
        Verdict::Continue
    }

    fn report(&self, out: &mut Reply) {
        out.write("{\"packets\":");
        out.write_u64(self.packets);
        out.write(",\"rewritten\":");
        out.write_u64(self.rewritten);
        out.write(",\"replacements\":");
        out.write_u64(self.replacements);
        out.write("}");
    }
}

weft_plugin!(Rewrite);
