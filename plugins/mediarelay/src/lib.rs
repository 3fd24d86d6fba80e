//! `mediarelay`: NetServ's Media Relay (§6.3) as a WebAssembly packet
//! module — an RTP relay on a Weft node for user agents that cannot reach
//! each other (each behind its own NAT).
//!
//! * **Allocation is by control request**, not SDP rewriting: `alloc` gives
//!   a session and its port pair on the node's addresses; whoever handles
//!   the call's signaling (the provider's proxy, or in the test the
//!   scenarios' SDP) puts port A in the SDP sent to party A and port B in
//!   the SDP sent to party B. Decision: SIP messages are not rewritten, so a
//!   relay never changes a message's length or breaks an integrity check.
//! * **Ports:** session `i` owns `base+2i` (side A) and `base+2i+1` (side
//!   B). Bind the module to them: `--filter udp:BASE-LAST:PREFIX`.
//! * **Symmetric RTP latching:** the first datagram arriving on a side's
//!   port fixes that side's address and port (what its NAT shows); later
//!   datagrams from any other source on that port are dropped
//!   (`wrong_source`). A datagram is relayed, from the other side's port on
//!   the address that side sent to, to the other side's latched address —
//!   both ways; until the other side has latched it is dropped
//!   (`unlatched`).
//! * **Idle expiry:** a session that relayed nothing for `idle` seconds is
//!   removed (`expired`); expiry is checked at every packet (at most every
//!   100 ms), control request and report — the module has no timer, and
//!   the node's clock in control and report calls is the time of its last
//!   packet, so a session idle past its time goes at the next packet the
//!   module sees.
//! * **Bad input:** RTP to a port of no session (`unknown_session`), a flood
//!   of `alloc` beyond the table (`refused`), non-UDP (`not_udp`): counted,
//!   dropped or refused, never a stall.
//! * **Configuration:** `base=PORT` (default 40000), `sessions=N` (default
//!   and at most 256), `idle=S` (default 30).
//! * **Control:** `alloc` → `{"session":I,"ports":[A,B]}` (error `full`);
//!   `free I`; `reset` (every session and counter).
//! * **Report:** `{"active":N,"sessions":[{"session","ports":[A,B],
//!   "a":{"addr","packets","bytes"},"b":{…},"idle_ms"}],"allocated","freed",
//!   "expired","refused","unknown_session","unlatched","wrong_source",
//!   "not_udp","emit_failed","idle_s","base"}` — `addr` is `null` until the
//!   side latched; `packets` counts what arrived from that side and was
//!   relayed.
#![no_std]

use core::fmt::Write;
use weft_plugin_sdk::util::{config_get, config_unknown_key, parse_u64};
use weft_plugin_sdk::{weft_plugin, Ctx, Packet, Plugin, Reply, Verdict};
use weft_sip::udp::{udp_frame, Endpoint};

const MAX: usize = 256;
const FRAME: usize = 1600 + 14 + 40 + 8;
/// Expiry sweeps at most this often while packets flow, ms.
const SWEEP_MS: u64 = 100;

#[derive(Clone, Copy)]
struct Side {
    latched: bool,
    len: u8,
    addr: [u8; 16],
    port: u16,
    /// The node's address this side sends to (the relay's source toward it).
    local: [u8; 16],
    packets: u64,
    bytes: u64,
}

const SIDE: Side = Side {
    latched: false,
    len: 0,
    addr: [0; 16],
    port: 0,
    local: [0; 16],
    packets: 0,
    bytes: 0,
};

#[derive(Clone, Copy)]
struct Session {
    used: bool,
    last_ms: u64,
    sides: [Side; 2],
}

const FREE: Session = Session {
    used: false,
    last_ms: 0,
    sides: [SIDE; 2],
};

static mut TABLE: [Session; MAX] = [FREE; MAX];
static mut FRAME_BUF: [u8; FRAME] = [0; FRAME];
/// Sessions expired: a static, since `report` (which takes `&self`)
/// expires sessions too.
static mut EXPIRED: u64 = 0;

fn expire(sessions: &mut [Session], idle_ms: u64, now: u64) {
    for s in sessions.iter_mut().filter(|s| s.used) {
        if now.saturating_sub(s.last_ms) > idle_ms {
            *s = FREE;
            // SAFETY: single-threaded guest, never re-entered.
            unsafe { EXPIRED += 1 };
        }
    }
}

fn expired() -> u64 {
    // SAFETY: as above.
    unsafe { EXPIRED }
}

#[allow(static_mut_refs)]
fn table() -> &'static mut [Session; MAX] {
    // SAFETY: single-threaded guest, never re-entered; one live reference.
    unsafe { &mut TABLE }
}

#[allow(static_mut_refs)]
fn frame_buf() -> &'static mut [u8; FRAME] {
    // SAFETY: as above.
    unsafe { &mut FRAME_BUF }
}

#[derive(Default)]
struct Counters {
    allocated: u64,
    freed: u64,
    refused: u64,
    unknown_session: u64,
    unlatched: u64,
    wrong_source: u64,
    not_udp: u64,
    emit_failed: u64,
}

struct Relay {
    base: u16,
    sessions: usize,
    idle_ms: u64,
    last_sweep: u64,
    c: Counters,
}

fn parse(config: &str) -> Result<(u16, usize, u64), &'static str> {
    if config_unknown_key(config, &["base", "sessions", "idle"]).is_some() {
        return Err("mediarelay: unknown configuration key (known: base, sessions, idle)");
    }
    let num = |k, d: u64| match config_get(config, k, usize::MAX) {
        None => Some(d),
        Some(v) => parse_u64(v),
    };
    let base = num("base", 40000).filter(|b| (1024..=65535 - 2 * MAX as u64).contains(b));
    let sessions = num("sessions", MAX as u64).filter(|n| (1..=MAX as u64).contains(n));
    let idle = num("idle", 30).filter(|s| (1..=86400).contains(s));
    match (base, sessions, idle) {
        (Some(b), Some(n), Some(i)) => Ok((b as u16, n as usize, i * 1000)),
        (None, _, _) => Err("mediarelay: base must be 1024..=65023"),
        (_, None, _) => Err("mediarelay: sessions must be 1..=256"),
        _ => Err("mediarelay: idle must be 1..=86400 seconds"),
    }
}

fn now_ms() -> u64 {
    Ctx::new().now_ns() / 1_000_000
}

fn write_addr(out: &mut Reply, s: &Side) {
    if !s.latched {
        out.write("null");
        return;
    }
    out.write("\"");
    if s.len == 4 {
        let a = &s.addr;
        let _ = write!(out, "{}.{}.{}.{}:{}", a[0], a[1], a[2], a[3], s.port);
    } else {
        out.write("[");
        for (i, g) in s.addr.chunks_exact(2).enumerate() {
            let _ = write!(
                out,
                "{}{:x}",
                if i > 0 { ":" } else { "" },
                u16::from_be_bytes([g[0], g[1]])
            );
        }
        let _ = write!(out, "]:{}", s.port);
    }
    out.write("\"");
}

impl Relay {
    fn sweep(&mut self, now: u64) {
        self.last_sweep = now;
        expire(&mut table()[..self.sessions], self.idle_ms, now);
    }
}

impl Plugin for Relay {
    fn init(config: &str) -> Result<Self, &'static str> {
        let (base, sessions, idle_ms) = parse(config)?;
        table().fill(FREE);
        // SAFETY: single-threaded guest, never re-entered.
        unsafe { EXPIRED = 0 };
        Ok(Relay {
            base,
            sessions,
            idle_ms,
            last_sweep: 0,
            c: Counters::default(),
        })
    }

    fn process(&mut self, cx: &mut Ctx, pkt: &mut Packet<'_>) -> Verdict {
        let now = cx.now_ns() / 1_000_000;
        if now.saturating_sub(self.last_sweep) >= SWEEP_MS {
            self.sweep(now);
        }
        let Some(range) = pkt.udp_payload_range() else {
            self.c.not_udp += 1;
            return Verdict::Drop;
        };
        let k = pkt.flow();
        let len = if k.family == 4 { 4 } else { 16 };
        let off = k.dport.wrapping_sub(self.base) as usize;
        let (idx, side) = (off / 2, off % 2);
        let Some(s) = table()[..self.sessions].get_mut(idx).filter(|s| s.used) else {
            self.c.unknown_session += 1;
            return Verdict::Drop;
        };
        let me = &mut s.sides[side];
        if !me.latched {
            *me = Side {
                latched: true,
                len: len as u8,
                addr: k.src,
                port: k.sport,
                local: k.dst,
                packets: 0,
                bytes: 0,
            };
        } else if me.addr != k.src || me.port != k.sport {
            self.c.wrong_source += 1;
            return Verdict::Drop;
        }
        s.last_ms = now;
        let other = s.sides[1 - side];
        if !other.latched || other.len as usize != len {
            self.c.unlatched += 1;
            return Verdict::Drop;
        }
        let data = pkt.data();
        let (Some(payload), Some(eth)) = (data.get(range), data.get(..12)) else {
            return Verdict::Drop;
        };
        let mut macs = [0u8; 12];
        macs[..6].copy_from_slice(&eth[6..12]);
        macs[6..].copy_from_slice(&eth[..6]);
        let from = Endpoint {
            addr: &other.local[..len],
            port: self.base + (2 * idx + 1 - side) as u16,
        };
        let to = Endpoint {
            addr: &other.addr[..len],
            port: other.port,
        };
        let f = frame_buf();
        match udp_frame(&macs, from, to, payload, f) {
            Ok(n) if cx.emit_routed(&f[..n]) => {
                let me = &mut s.sides[side];
                me.packets += 1;
                me.bytes += payload.len() as u64;
            }
            _ => self.c.emit_failed += 1,
        }
        Verdict::Drop
    }

    fn control(&mut self, request: &str, reply: &mut Reply) -> Result<(), ()> {
        let now = now_ms();
        self.sweep(now);
        let r = request.trim();
        if r == "alloc" {
            let Some(i) = table()[..self.sessions].iter().position(|s| !s.used) else {
                self.c.refused += 1;
                reply.write("full");
                return Err(());
            };
            table()[i] = Session {
                used: true,
                last_ms: now,
                sides: [SIDE; 2],
            };
            self.c.allocated += 1;
            let a = self.base + 2 * i as u16;
            let _ = write!(reply, "{{\"session\":{i},\"ports\":[{a},{}]}}", a + 1);
            return Ok(());
        }
        if let Some(n) = r.strip_prefix("free ") {
            match parse_u64(n.trim()).map(|n| n as usize) {
                Some(i) if i < self.sessions && table()[i].used => {
                    table()[i] = FREE;
                    self.c.freed += 1;
                    reply.write("ok");
                    return Ok(());
                }
                _ => {
                    reply.write("mediarelay: no such session");
                    return Err(());
                }
            }
        }
        if r == "reset" {
            table().fill(FREE);
            self.c = Counters::default();
            // SAFETY: single-threaded guest, never re-entered.
            unsafe { EXPIRED = 0 };
            reply.write("ok");
            return Ok(());
        }
        reply.write("mediarelay: requests are alloc, free N, reset");
        Err(())
    }

    fn report(&self, out: &mut Reply) {
        let now = now_ms();
        let t = table();
        // Expire first, so the report never lists a session past its time.
        expire(&mut t[..self.sessions], self.idle_ms, now);
        let active = t[..self.sessions].iter().filter(|s| s.used).count();
        let _ = write!(out, "{{\"active\":{active},\"sessions\":[");
        let mut first = true;
        for (i, s) in t[..self.sessions].iter().enumerate().filter(|(_, s)| s.used) {
            let a = self.base + 2 * i as u16;
            let _ = write!(
                out,
                "{}{{\"session\":{i},\"ports\":[{a},{}],\"a\":{{\"addr\":",
                if first { "" } else { "," },
                a + 1
            );
            first = false;
            write_addr(out, &s.sides[0]);
            let _ = write!(
                out,
                ",\"packets\":{},\"bytes\":{}}},\"b\":{{\"addr\":",
                s.sides[0].packets, s.sides[0].bytes
            );
            write_addr(out, &s.sides[1]);
            let _ = write!(
                out,
                ",\"packets\":{},\"bytes\":{}}},\"idle_ms\":{}}}",
                s.sides[1].packets,
                s.sides[1].bytes,
                now.saturating_sub(s.last_ms)
            );
        }
        let c = &self.c;
        let _ = write!(
            out,
            "],\"allocated\":{},\"freed\":{},\"expired\":{},\"refused\":{},\"unknown_session\":{},\"unlatched\":{},\"wrong_source\":{},\"not_udp\":{},\"emit_failed\":{},\"idle_s\":{},\"base\":{}}}",
            c.allocated,
            c.freed,
            expired(),
            c.refused,
            c.unknown_session,
            c.unlatched,
            c.wrong_source,
            c.not_udp,
            c.emit_failed,
            self.idle_ms / 1000,
            self.base
        );
    }
}

weft_plugin!(Relay);
