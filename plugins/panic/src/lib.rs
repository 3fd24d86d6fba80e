//! Misbehaving test plugin: panics (a wasm trap) on packets whose UDP payload
//! starts with `panic`; counts the others.
#![no_std]

use weft_plugin_sdk::{weft_plugin, Ctx, Packet, Plugin, Reply, Verdict};

struct Panicky(u64);

impl Plugin for Panicky {
    fn init(_config: &str) -> Result<Self, &'static str> {
        Ok(Panicky(0))
    }

    fn process(&mut self, _cx: &mut Ctx, pkt: &mut Packet<'_>) -> Verdict {
        if pkt.udp_payload().is_some_and(|p| p.starts_with(b"panic")) {
            panic!("asked to panic");
        }
        self.0 += 1;
        Verdict::Continue
    }

    fn report(&self, out: &mut Reply) {
        out.write("{\"packets\":");
        out.write_u64(self.0);
        out.write("}");
    }
}

weft_plugin!(Panicky);
