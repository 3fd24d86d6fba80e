//! `echo`: a test plugin that shows what the host handed it, byte for byte.
//!
//! * **Configuration:** any text (at most 4 KiB), kept exactly as received.
//! * **Control:** any request is kept as received and sent back as the reply
//!   (a new configuration reaches a plugin this way too).
//! * **Report:** `{"config": TEXT, "control": TEXT}` — the configuration
//!   from `weft_init` and the last control request, as JSON strings.
//!
//! Every packet continues untouched.
#![no_std]

use weft_plugin_sdk::guest::Batch;
use weft_plugin_sdk::{weft_plugin, Ctx, Packet, Plugin, Reply, Verdict};

const CAP: usize = 4096;

/// A copy of received text.
struct Text {
    buf: [u8; CAP],
    len: usize,
}

impl Text {
    fn new(s: &str) -> Option<Text> {
        let mut t = Text { buf: [0; CAP], len: 0 };
        t.set(s).then_some(t)
    }

    fn set(&mut self, s: &str) -> bool {
        let b = s.as_bytes();
        if b.len() > CAP {
            return false;
        }
        self.buf[..b.len()].copy_from_slice(b);
        self.len = b.len();
        true
    }

    /// Write as a JSON string (RFC 8259 escapes).
    fn write_json(&self, out: &mut Reply) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        out.write("\"");
        let s = &self.buf[..self.len];
        let mut from = 0;
        for (i, &c) in s.iter().enumerate() {
            let esc: &[u8] = match c {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0..=0x1f => &[b'\\', b'u', b'0', b'0', HEX[(c >> 4) as usize], HEX[(c & 15) as usize]],
                _ => continue,
            };
            out.write_bytes(&s[from..i]);
            out.write_bytes(esc);
            from = i + 1;
        }
        out.write_bytes(&s[from..]);
        out.write("\"");
    }
}

struct Echo {
    config: Text,
    control: Text,
}

impl Plugin for Echo {
    fn init(config: &str) -> Result<Self, &'static str> {
        Ok(Echo {
            config: Text::new(config).ok_or("echo: configuration longer than 4096 bytes")?,
            control: Text { buf: [0; CAP], len: 0 },
        })
    }

    fn process(&mut self, _cx: &mut Ctx, _pkt: &mut Packet<'_>) -> Verdict {
        Verdict::Continue
    }

    fn process_batch(&mut self, _cx: &mut Ctx, _batch: &mut Batch) {}

    fn control(&mut self, request: &str, reply: &mut Reply) -> Result<(), ()> {
        if !self.control.set(request) {
            reply.write("echo: request longer than 4096 bytes");
            return Err(());
        }
        reply.write(request);
        Ok(())
    }

    fn report(&self, out: &mut Reply) {
        out.write("{\"config\":");
        self.config.write_json(out);
        out.write(",\"control\":");
        self.control.write_json(out);
        out.write("}");
    }
}

weft_plugin!(Echo);
