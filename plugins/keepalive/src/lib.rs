//! `keepalive`: NetServ's KeepAlive Responder (§6.1) as a WebAssembly
//! packet module. Bound at an edge node to the UDP traffic toward a SIP
//! server (`weft signal setup … --filter udp:5060:SERVER/32`), it answers
//! NAT keep-alives on the server's behalf and drops them, so the server sees
//! only the rest (REGISTER, INVITE, …).
//!
//! * **Keep-alives** (`weft_sip::keepalive`): the CRLF ping of RFC 5626
//!   (answered with one CRLF), OPTIONS, and NOTIFY with `Event:
//!   keep-alive` (answered with a `200 OK` built from the request's Via,
//!   From, To, Call-ID and CSeq, a To tag added).
//! * **Where the answer goes:** from the server's address and port to the
//!   request's source address and port (RFC 3581's `rport` behaviour: what
//!   reaches a user agent behind a NAT), routed by the node.
//! * **Only keep-alive candidates are judged** (`weft_sip::keepalive`'s
//!   contract): the CRLF ping and datagrams starting `OPTIONS ` or `NOTIFY `
//!   are parsed in full; a defective one passes untouched, counted per
//!   reason under `bad`. Every other datagram — REGISTER, INVITE, responses,
//!   also what is not SIP or is cut short — is told apart by its first bytes,
//!   not parsed, and passes untouched, counted as `passed`: the server
//!   decides what to do with it. A keep-alive whose answer could not be sent
//!   passes too (`emit_failed`).
//! * **Configuration:** none (an empty configuration; anything else is
//!   refused).
//! * **Control:** `reset` zeroes the counters.
//! * **Report:** `{"absorbed":{"crlf","options","notify"},"passed":N,
//!   "bad":{REASON:N,…},"not_udp":N,"emit_failed":N}` — `passed` counts the
//!   datagrams sent on to the server that are not keep-alives (every one
//!   that is not a candidate, and candidates that parse as other messages);
//!   "server load saved" is absorbed / (absorbed + passed).
#![no_std]

use core::fmt::Write;
use weft_plugin_sdk::{weft_plugin, Ctx, Packet, Plugin, Reply, Verdict};
use weft_sip::keepalive::{answer, candidate, KeepAlive, CANDIDATE_PREFIX};
use weft_sip::udp::{reply_frame, Request};
use weft_sip::Error;

/// Room for the answer: a `200 OK` is smaller than the request it copies
/// from, which is at most `weft_sip::msg::MAX_LEN`.
const ANSWER: usize = weft_sip::msg::MAX_LEN;
/// The answer's frame: Ethernet, IPv6 and UDP headers around it.
const FRAME: usize = ANSWER + 14 + 40 + 8;

static mut BUF: [u8; ANSWER] = [0; ANSWER];
static mut FRAME_BUF: [u8; FRAME] = [0; FRAME];

#[allow(static_mut_refs)]
fn bufs() -> (&'static mut [u8; ANSWER], &'static mut [u8; FRAME]) {
    // SAFETY: single-threaded guest, never re-entered; one live reference each.
    unsafe { (&mut BUF, &mut FRAME_BUF) }
}

#[derive(Default)]
struct Responder {
    absorbed: [u64; 3],
    passed: u64,
    bad: [u64; Error::REASONS.len()],
    not_udp: u64,
    emit_failed: u64,
}

fn slot(k: KeepAlive) -> usize {
    match k {
        KeepAlive::CrlfPing => 0,
        KeepAlive::Options => 1,
        KeepAlive::Notify => 2,
    }
}

impl Responder {
    /// What the first look could not settle: not UDP, a short payload (the
    /// CRLF ping), a payload past the head, or a candidate.
    #[inline(never)]
    fn judge(&mut self, cx: &mut Ctx, pkt: &mut Packet<'_>) -> Verdict {
        let Some(range) = pkt.udp_payload_range() else {
            self.not_udp += 1;
            return Verdict::Continue;
        };
        // Not a candidate by its first bytes: passed without the rest.
        let end = range.end.min(range.start + CANDIDATE_PREFIX);
        if let Some(first) = pkt.head().get(range.start..end) {
            if !candidate(first) {
                self.passed += 1;
                return Verdict::Continue;
            }
        }
        self.inspect(cx, pkt, range)
    }

    /// A candidate keep-alive: parse it and, when it is one, answer it.
    /// Out of line, so the common path (a datagram told apart by its first
    /// bytes) keeps its values in registers.
    #[inline(never)]
    fn inspect(&mut self, cx: &mut Ctx, pkt: &mut Packet<'_>, range: core::ops::Range<usize>) -> Verdict {
        let (Some(l3), Some(l4)) = (pkt.l3(), pkt.l4()) else {
            self.not_udp += 1;
            return Verdict::Continue;
        };
        let (buf, frame) = bufs();
        let data = pkt.data();
        let Some(payload) = data.get(range) else {
            self.not_udp += 1;
            return Verdict::Continue;
        };
        match answer(payload, buf) {
            Ok(None) => {
                self.passed += 1;
                Verdict::Continue
            }
            Err(e) => {
                self.bad[e.index()] += 1;
                Verdict::Continue
            }
            Ok(Some((kind, n))) => {
                let req = Request { frame: data, l3, l4 };
                match reply_frame(req, &buf[..n], frame) {
                    Ok(len) if cx.emit_routed(&frame[..len]) => {
                        self.absorbed[slot(kind)] += 1;
                        Verdict::Drop
                    }
                    _ => {
                        self.emit_failed += 1;
                        Verdict::Continue
                    }
                }
            }
        }
    }
}

impl Plugin for Responder {
    // Enough for the headers and the payload's first 8 bytes, over IPv6 or
    // IPv4 with options: most datagrams (REGISTER, INVITE, …) are told
    // apart from keep-alives there, and their bodies are never copied in.
    const HEAD: usize = 96;

    fn init(config: &str) -> Result<Self, &'static str> {
        if !config.trim().is_empty() {
            return Err("keepalive: takes no configuration");
        }
        Ok(Responder::default())
    }

    fn process(&mut self, cx: &mut Ctx, pkt: &mut Packet<'_>) -> Verdict {
        // Most datagrams: their first bytes, read in place, say they are
        // not keep-alives.
        if let Some(first) = pkt.udp_payload_prefix::<CANDIDATE_PREFIX>() {
            if !candidate(&first) {
                self.passed += 1;
                return Verdict::Continue;
            }
        }
        self.judge(cx, pkt)
    }

    fn control(&mut self, request: &str, reply: &mut Reply) -> Result<(), ()> {
        if request.trim() == "reset" {
            *self = Responder::default();
            reply.write("ok");
            return Ok(());
        }
        reply.write("keepalive: the only request is `reset`");
        Err(())
    }

    fn report(&self, out: &mut Reply) {
        let _ = write!(
            out,
            "{{\"absorbed\":{{\"crlf\":{},\"options\":{},\"notify\":{}}},\"passed\":{},\"bad\":{{",
            self.absorbed[0], self.absorbed[1], self.absorbed[2], self.passed
        );
        let mut first = true;
        for (name, n) in Error::REASONS.iter().zip(self.bad.iter()).filter(|(_, n)| **n > 0) {
            let _ = write!(out, "{}\"{}\":{}", if first { "" } else { "," }, name, n);
            first = false;
        }
        let _ = write!(
            out,
            "}},\"not_udp\":{},\"emit_failed\":{}}}",
            self.not_udp, self.emit_failed
        );
    }
}

weft_plugin!(Responder);
