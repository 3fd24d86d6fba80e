//! `counter` as a WebAssembly plugin: count packets and bytes.
//!
//! * **Configuration:** none.
//! * **Control:** `reset` zeroes the counts.
//! * **Report and state:** `{"packets":N,"bytes":N}` (the native `counter`'s
//!   format, so state moves between the two kinds); built with feature `v2`
//!   the report adds `"version":2`.
#![no_std]

use weft_plugin_sdk::util::json_u64;
use weft_plugin_sdk::{weft_plugin, Ctx, Packet, Plugin, Reply, Verdict};

struct Counter {
    packets: u64,
    bytes: u64,
}

impl Counter {
    fn write(&self, out: &mut Reply) {
        out.write("{\"packets\":");
        out.write_u64(self.packets);
        out.write(",\"bytes\":");
        out.write_u64(self.bytes);
        if cfg!(feature = "v2") {
            out.write(",\"version\":2");
        }
        out.write("}");
    }
}

impl Plugin for Counter {
    fn init(config: &str) -> Result<Self, &'static str> {
        if !config.trim().is_empty() {
            return Err("counter takes no configuration");
        }
        Ok(Counter { packets: 0, bytes: 0 })
    }

    fn process(&mut self, _cx: &mut Ctx, pkt: &mut Packet<'_>) -> Verdict {
        self.packets += 1;
        self.bytes += pkt.len() as u64;
        Verdict::Continue
    }

    fn control(&mut self, request: &str, reply: &mut Reply) -> Result<(), ()> {
        if request.trim() == "reset" {
            self.packets = 0;
            self.bytes = 0;
            reply.write("ok");
            Ok(())
        } else {
            reply.write("counter: the only request is `reset`");
            Err(())
        }
    }

    fn report(&self, out: &mut Reply) {
        self.write(out);
    }

    fn export_state(&self, out: &mut Reply) -> bool {
        self.write(out);
        true
    }

    fn import_state(&mut self, state: &[u8]) -> Result<(), &'static str> {
        match (json_u64(state, "packets"), json_u64(state, "bytes")) {
            (Some(p), Some(b)) => {
                self.packets = p;
                self.bytes = b;
                Ok(())
            }
            _ => Err("counter: state needs \"packets\" and \"bytes\""),
        }
    }
}

weft_plugin!(Counter);
