//! Misbehaving test plugin: writes a frame length far larger than the
//! buffer into the descriptor of each packet (the host must refuse it).
#![no_std]

use weft_plugin_sdk::abi::desc;
use weft_plugin_sdk::{weft_plugin, Ctx, Packet, Plugin, Verdict};

struct BadLen;

impl Plugin for BadLen {
    fn init(_config: &str) -> Result<Self, &'static str> {
        Ok(BadLen)
    }

    fn process(&mut self, _cx: &mut Ctx, pkt: &mut Packet<'_>) -> Verdict {
        let d = pkt.descriptor_mut();
        d[desc::LEN..desc::LEN + 4].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        d[desc::FLAGS] = 1;
        Verdict::Continue
    }
}

weft_plugin!(BadLen);
