//! `noop`: every packet continues, untouched. The benchmark's measure of the
//! sandbox's own cost (one host→wasm call per batch).
#![no_std]

use weft_plugin_sdk::guest::Batch;
use weft_plugin_sdk::{weft_plugin, Ctx, Packet, Plugin, Verdict};

struct Noop;

impl Plugin for Noop {
    // It reads no frame bytes: none are copied in.
    const HEAD: usize = 0;

    fn init(_config: &str) -> Result<Self, &'static str> {
        Ok(Noop)
    }

    fn process(&mut self, _cx: &mut Ctx, _pkt: &mut Packet<'_>) -> Verdict {
        Verdict::Continue
    }

    // Verdicts are Continue on entry: nothing to do per packet.
    fn process_batch(&mut self, _cx: &mut Ctx, _batch: &mut Batch) {}
}

weft_plugin!(Noop);
