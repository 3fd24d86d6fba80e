//! Misbehaving test plugin: loops forever in `process` (the CPU budget
//! must stop it).
#![no_std]

use weft_plugin_sdk::{weft_plugin, Ctx, Packet, Plugin, Verdict};

struct Spin(u64);

impl Plugin for Spin {
    fn init(_config: &str) -> Result<Self, &'static str> {
        Ok(Spin(0))
    }

    fn process(&mut self, _cx: &mut Ctx, _pkt: &mut Packet<'_>) -> Verdict {
        loop {
            // A volatile write keeps the loop from being optimised away.
            self.0 = self.0.wrapping_add(1);
            unsafe { core::ptr::write_volatile(&mut self.0, self.0) };
        }
    }
}

weft_plugin!(Spin);
