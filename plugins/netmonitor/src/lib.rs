//! `netmonitor` as a WebAssembly plugin: NetServ's NetMonitor, counting
//! packets and bytes per (source address, destination address, TTL / hop
//! limit).
//!
//! * **Configuration:** `[MAX]` or `max=MAX` — most keys kept (default and
//!   at most 4096). Packets of new keys beyond that count in `overflow`.
//! * **Control:** `reset` empties the table.
//! * **Report:** `{"max":M,"size":N,"flows":[{"src","dst","ttl","packets","bytes"}],"overflow":{"packets","bytes"},"non_ip":N}`;
//!   flows in table order (unsorted).
//!
//! The table is a static open-addressing hash table (linear probing, load
//! at most one half), so the plugin needs no allocator.
#![no_std]

use core::fmt::Write;
use weft_plugin_sdk::util::{config_get, config_unknown_key, parse_u64};
use weft_plugin_sdk::{weft_plugin, Ctx, Packet, Plugin, Reply, Verdict};

const MAX_KEYS: usize = 4096;
const SLOTS: usize = MAX_KEYS * 2;

#[derive(Clone, Copy)]
struct Entry {
    used: bool,
    family: u8,
    ttl: u8,
    // Addresses as integers (network-order bytes read little-endian): a
    // compare of `[u8; 16]` arrays is a call to `memcmp`'s byte loop in
    // wasm32, which measured ~10 ns of the plugin's ~15 ns per packet.
    src: u128,
    dst: u128,
    packets: u64,
    bytes: u64,
}

impl Entry {
    /// Whether the entry counts this key.
    fn holds(&self, family: u8, ttl: u8, src: u128, dst: u128) -> bool {
        self.used && self.ttl == ttl && self.src == src && self.dst == dst && self.family == family
    }
}

const EMPTY: Entry = Entry {
    used: false,
    family: 0,
    ttl: 0,
    src: 0,
    dst: 0,
    packets: 0,
    bytes: 0,
};

// Kept out of the plugin value: `init` returns the value on the 64 KiB stack.
static mut TABLE: [Entry; SLOTS] = [EMPTY; SLOTS];

#[allow(static_mut_refs)]
fn table() -> &'static mut [Entry; SLOTS] {
    // SAFETY: single-threaded guest, never re-entered; one live reference.
    unsafe { &mut TABLE }
}

struct NetMonitor {
    /// The slot the last packet counted in: packets of one batch often
    /// share their addresses and TTL, and then skip the hash and the probe.
    last: usize,
    max: usize,
    size: usize,
    overflow: (u64, u64),
    non_ip: u64,
}

fn hash(src: u128, dst: u128, ttl: u8) -> usize {
    let mut h: u64 = ttl as u64;
    for w in [src as u64, (src >> 64) as u64, dst as u64, (dst >> 64) as u64] {
        h = (h.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    (h >> 32) as usize
}

fn write_addr(out: &mut Reply, family: u8, a: u128) {
    let a = a.to_le_bytes();
    out.write("\"");
    if family == 4 {
        for (i, b) in a[..4].iter().enumerate() {
            if i > 0 {
                out.write(".");
            }
            out.write_u64(*b as u64);
        }
    } else {
        for (i, g) in a.chunks_exact(2).enumerate() {
            let _ = write!(
                out,
                "{}{:x}",
                if i > 0 { ":" } else { "" },
                u16::from_be_bytes([g[0], g[1]])
            );
        }
    }
    out.write("\"");
}

fn parse(config: &str) -> Result<usize, &'static str> {
    if config_unknown_key(config, &["max"]).is_some() {
        return Err("netmonitor: unknown configuration key (known: max)");
    }
    match config_get(config, "max", 0) {
        None => Ok(MAX_KEYS),
        Some(v) => match parse_u64(v) {
            Some(m) if m >= 1 && m as usize <= MAX_KEYS => Ok(m as usize),
            _ => Err("netmonitor: max must be 1..=4096"),
        },
    }
}

impl NetMonitor {
    /// Count a packet whose key is not the remembered slot's: find its
    /// slot (or make one) and remember it.
    #[inline(never)]
    fn count(&mut self, pkt: &Packet<'_>, ttl: u8, len: u64) {
        let k = pkt.flow();
        let (family, src, dst) = (k.family, u128::from_le_bytes(k.src), u128::from_le_bytes(k.dst));
        let t = table();
        let mut i = hash(src, dst, ttl) % SLOTS;
        loop {
            let e = &mut t[i];
            if !e.used {
                if self.size >= self.max {
                    self.overflow.0 += 1;
                    self.overflow.1 += len;
                    return;
                }
                *e = Entry {
                    used: true,
                    family,
                    ttl,
                    src,
                    dst,
                    packets: 1,
                    bytes: len,
                };
                self.last = i;
                self.size += 1;
                return;
            }
            if e.holds(family, ttl, src, dst) {
                self.last = i;
                e.packets += 1;
                e.bytes += len;
                return;
            }
            i = (i + 1) % SLOTS;
        }
    }
}

impl Plugin for NetMonitor {
    // It reads the TTL / hop limit: the first 32 bytes of a frame hold it
    // (Ethernet's 14, IPv4's TTL at 22, IPv6's hop limit at 21), so the
    // rest is never copied in. (64 measured 1-2 % slower: the copy.)
    const HEAD: usize = 32;

    fn init(config: &str) -> Result<Self, &'static str> {
        let max = parse(config)?;
        table().fill(EMPTY);
        Ok(NetMonitor {
            last: 0,
            max,
            size: 0,
            overflow: (0, 0),
            non_ip: 0,
        })
    }

    fn process(&mut self, _cx: &mut Ctx, pkt: &mut Packet<'_>) -> Verdict {
        let Some(ttl) = pkt.ttl() else {
            self.non_ip += 1;
            return Verdict::Continue;
        };
        let len = pkt.len() as u64;
        // The remembered slot first, inline; the probe and insert out of
        // line (they read the key again), so the common path keeps nothing
        // on the stack.
        let k = pkt.flow();
        let e = &mut table()[self.last & (SLOTS - 1)];
        if e.holds(k.family, ttl, u128::from_le_bytes(k.src), u128::from_le_bytes(k.dst)) {
            e.packets += 1;
            e.bytes += len;
        } else {
            self.count(pkt, ttl, len);
        }
        Verdict::Continue
    }

    fn control(&mut self, request: &str, reply: &mut Reply) -> Result<(), ()> {
        if request.trim() == "reset" {
            table().fill(EMPTY);
            self.size = 0;
            self.overflow = (0, 0);
            self.non_ip = 0;
            reply.write("ok");
            return Ok(());
        }
        match parse(request) {
            Ok(max) => {
                self.max = max;
                reply.write("ok");
                Ok(())
            }
            Err(e) => {
                reply.write(e);
                Err(())
            }
        }
    }

    fn report(&self, out: &mut Reply) {
        let _ = write!(out, "{{\"max\":{},\"size\":{},\"flows\":[", self.max, self.size);
        let mut first = true;
        for e in table().iter().filter(|e| e.used) {
            out.write(if first { "{\"src\":" } else { ",{\"src\":" });
            first = false;
            write_addr(out, e.family, e.src);
            out.write(",\"dst\":");
            write_addr(out, e.family, e.dst);
            let _ = write!(
                out,
                ",\"ttl\":{},\"packets\":{},\"bytes\":{}}}",
                e.ttl, e.packets, e.bytes
            );
        }
        let _ = write!(
            out,
            "],\"overflow\":{{\"packets\":{},\"bytes\":{}}},\"non_ip\":{}}}",
            self.overflow.0, self.overflow.1, self.non_ip
        );
    }
}

weft_plugin!(NetMonitor);
