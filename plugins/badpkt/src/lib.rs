//! Misbehaving test plugin: for each packet, emits a malformed frame (too
//! short for Ethernet) and one with a broken IPv4 header out of the
//! packet's own port, and lets the packet continue. The host must refuse
//! both emits.
#![no_std]

use weft_plugin_sdk::{weft_plugin, Ctx, Packet, Plugin, Reply, Verdict};

struct BadPkt {
    refused: u64,
}

impl Plugin for BadPkt {
    fn init(_config: &str) -> Result<Self, &'static str> {
        Ok(BadPkt { refused: 0 })
    }

    fn process(&mut self, cx: &mut Ctx, pkt: &mut Packet<'_>) -> Verdict {
        let port = pkt.in_port();
        if !cx.emit_to_port(&[0xde, 0xad, 0xbe, 0xef], port) {
            self.refused += 1;
        }
        // Ethernet + an IPv4 header claiming IHL 15 and total length 9000
        // in a 34-byte frame.
        let mut f = [0u8; 34];
        f[12] = 0x08;
        f[14] = 0x4f;
        f[16] = 0x23;
        f[17] = 0x28;
        if !cx.emit_routed(&f) {
            self.refused += 1;
        }
        Verdict::Continue
    }

    fn report(&self, out: &mut Reply) {
        out.write("{\"refused\":");
        out.write_u64(self.refused);
        out.write("}");
    }
}

weft_plugin!(BadPkt);
