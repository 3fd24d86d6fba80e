//! Misbehaving test plugin: grows its memory without bound in `process` (the
//! memory cap must stop it).
#![no_std]

use weft_plugin_sdk::{weft_plugin, Ctx, Packet, Plugin, Verdict};

struct Grow;

impl Plugin for Grow {
    fn init(_config: &str) -> Result<Self, &'static str> {
        Ok(Grow)
    }

    fn process(&mut self, _cx: &mut Ctx, _pkt: &mut Packet<'_>) -> Verdict {
        loop {
            // 16 pages (1 MiB) at a time; a refused grow returns usize::MAX.
            if core::arch::wasm32::memory_grow(0, 16) == usize::MAX {
                core::arch::wasm32::unreachable();
            }
        }
    }
}

weft_plugin!(Grow);
