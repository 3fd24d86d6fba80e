//! Test plugin for the head-and-rest ABI (docs/plugin-abi.md): it declares
//! a head of 16 bytes. Configuration, one word:
//!
//! * `peek` (default): records what was shown and sums every byte of the
//!   frame through `data()` (which brings the rest in); report
//!   `{"packets","partial","shown","sum","len"}` — `shown` is the total of
//!   `head().len()` before loading, `partial` how many were partial.
//! * `head`: reads only the head (nothing is loaded); same report, `sum`
//!   over the head only.
//! * `write`: inverts the frame's last byte through `data_mut()` (which
//!   loads the rest first).
//! * `sneak`: marks the frame written without loading it (through the raw
//!   descriptor): the host must refuse it.
#![no_std]

use core::fmt::Write;
use weft_plugin_sdk::abi::{self, desc};
use weft_plugin_sdk::{weft_plugin, Ctx, Packet, Plugin, Reply, Verdict};

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Peek,
    Head,
    Write,
    Sneak,
}

struct Head {
    mode: Mode,
    packets: u64,
    partial: u64,
    shown: u64,
    sum: u64,
    len: u64,
}

impl Plugin for Head {
    const HEAD: usize = 16;

    fn init(config: &str) -> Result<Self, &'static str> {
        let mode = match config.trim() {
            "" | "peek" => Mode::Peek,
            "head" => Mode::Head,
            "write" => Mode::Write,
            "sneak" => Mode::Sneak,
            _ => return Err("head: peek, head, write or sneak"),
        };
        Ok(Head {
            mode,
            packets: 0,
            partial: 0,
            shown: 0,
            sum: 0,
            len: 0,
        })
    }

    fn process(&mut self, _cx: &mut Ctx, pkt: &mut Packet<'_>) -> Verdict {
        self.packets += 1;
        self.len += pkt.len() as u64;
        let shown = pkt.head().len();
        self.shown += shown as u64;
        if shown < pkt.len() {
            self.partial += 1;
        }
        match self.mode {
            Mode::Peek => self.sum += pkt.data().iter().map(|b| *b as u64).sum::<u64>(),
            Mode::Head => self.sum += pkt.head().iter().map(|b| *b as u64).sum::<u64>(),
            Mode::Write => {
                if let Some(b) = pkt.data_mut().last_mut() {
                    *b = !*b;
                }
            }
            Mode::Sneak => pkt.descriptor_mut()[desc::FLAGS] |= abi::FLAG_WRITTEN,
        }
        Verdict::Continue
    }

    fn report(&self, out: &mut Reply) {
        let _ = write!(
            out,
            "{{\"packets\":{},\"partial\":{},\"shown\":{},\"sum\":{},\"len\":{}}}",
            self.packets, self.partial, self.shown, self.sum, self.len
        );
    }
}

weft_plugin!(Head);
