//! `sipoc`: SIP overload control at the edge (NetServ §6.2) — RFC 7339's
//! loss-based algorithm applied on a server's behalf by a WebAssembly
//! packet module. Bound to the UDP traffic toward the SIP server *and* back
//! from it (`weft signal setup … --filter udp:*:PREFIX`, a prefix covering
//! the server and its clients), it reads the server's feedback in the
//! topmost Via of its responses (`oc`, `oc-algo`, `oc-validity`, `oc-seq`;
//! `weft_sip::overload`) and sheds that share of the *new* requests —
//! INVITE and REGISTER outside a dialog — answering each with `503 Service
//! Unavailable` and `Retry-After`, before they reach the server.
//!
//! * **Which:** a request is shed when a hash of its Call-ID falls in the
//!   share (`weft_sip::overload::bucket`): a retransmission gets the same
//!   answer as the original, and an admitted call is never cut off by a
//!   503 to its retransmitted INVITE.
//! * **Never shed:** requests in a dialog (BYE, ACK, re-INVITE, … — their To
//!   has a tag), other methods, responses.
//! * **The ACK of a 503** it sent (recognised by its To tag, no state) is
//!   absorbed: it is the edge's transaction, not the server's.
//! * **Malformed SIP** passes untouched, counted per reason under `bad`.
//! * **Configuration:** `retry_after=S` — the Retry-After of the 503s,
//!   seconds (default 2, at most 3600).
//! * **Control:** `reset` zeroes the counters and forgets the feedback;
//!   `retry_after=S` changes the setting.
//! * **Report:** `{"oc":P,"valid_ms":MS,"seq":N|null,"candidates":N,"shed":N,
//!   "admitted":N,"in_dialog":N,"other":N,"responses":N,"feedback":N,
//!   "acks_absorbed":N,"bad":{REASON:N},"emit_failed":N,"retry_after":S}` —
//!   `oc` is the share in force now and `valid_ms` how long it still holds.
#![no_std]

use core::fmt::Write;
use weft_plugin_sdk::util::{config_get, config_unknown_key, parse_u64};
use weft_plugin_sdk::{weft_plugin, Ctx, Packet, Plugin, Reply, Verdict};
use weft_sip::overload::{is_ack_of_shed, is_candidate, write_503, OcParams, Shedder};
use weft_sip::udp::{reply_frame, Request};
use weft_sip::{Error, Message};

const ANSWER: usize = weft_sip::msg::MAX_LEN;
const FRAME: usize = ANSWER + 14 + 40 + 8;

static mut BUF: [u8; ANSWER] = [0; ANSWER];
static mut FRAME_BUF: [u8; FRAME] = [0; FRAME];

#[allow(static_mut_refs)]
fn bufs() -> (&'static mut [u8; ANSWER], &'static mut [u8; FRAME]) {
    // SAFETY: single-threaded guest, never re-entered; one live reference each.
    unsafe { (&mut BUF, &mut FRAME_BUF) }
}

#[derive(Default)]
struct Counters {
    candidates: u64,
    shed: u64,
    admitted: u64,
    in_dialog: u64,
    other: u64,
    responses: u64,
    feedback: u64,
    acks_absorbed: u64,
    bad: [u64; Error::REASONS.len()],
    emit_failed: u64,
}

struct Oc {
    retry_after: u32,
    shedder: Shedder,
    c: Counters,
    /// The node's clock at the last packet, ms (for the report).
    now_ms: u64,
}

fn parse(config: &str) -> Result<u32, &'static str> {
    if config_unknown_key(config, &["retry_after"]).is_some() {
        return Err("sipoc: unknown configuration key (known: retry_after)");
    }
    match config_get(config, "retry_after", usize::MAX) {
        None => Ok(2),
        Some(v) => match parse_u64(v) {
            Some(s) if s <= 3600 => Ok(s as u32),
            _ => Err("sipoc: retry_after must be 0..=3600 seconds"),
        },
    }
}

impl Plugin for Oc {
    fn init(config: &str) -> Result<Self, &'static str> {
        Ok(Oc {
            retry_after: parse(config)?,
            shedder: Shedder::default(),
            c: Counters::default(),
            now_ms: 0,
        })
    }

    fn process(&mut self, cx: &mut Ctx, pkt: &mut Packet<'_>) -> Verdict {
        let (Some(range), Some(l3), Some(l4)) = (pkt.udp_payload_range(), pkt.l3(), pkt.l4()) else {
            self.c.other += 1;
            return Verdict::Continue;
        };
        let now = cx.now_ns() / 1_000_000;
        self.now_ms = now;
        let data = pkt.data();
        let Some(payload) = data.get(range) else {
            return Verdict::Continue;
        };
        let m = match Message::parse(payload) {
            Ok(m) => m,
            Err(e) => {
                self.c.bad[e.index()] += 1;
                return Verdict::Continue;
            }
        };
        if m.status().is_some() {
            self.c.responses += 1;
            if let Some(via) = m.top_via() {
                if self.shedder.feedback(now, &OcParams::from_via(via)) {
                    self.c.feedback += 1;
                }
            }
            return Verdict::Continue;
        }
        if is_ack_of_shed(&m) {
            self.c.acks_absorbed += 1;
            return Verdict::Drop;
        }
        if !is_candidate(&m) {
            if m.in_dialog() {
                self.c.in_dialog += 1;
            } else {
                self.c.other += 1;
            }
            return Verdict::Continue;
        }
        self.c.candidates += 1;
        if !self.shedder.shed(now, m.call_id().unwrap_or("")) {
            self.c.admitted += 1;
            return Verdict::Continue;
        }
        let (buf, frame) = bufs();
        let sent = write_503(&m, self.retry_after, buf).ok().and_then(|n| {
            let req = Request { frame: data, l3, l4 };
            reply_frame(req, &buf[..n], frame).ok()
        });
        match sent {
            Some(len) if cx.emit_routed(&frame[..len]) => {
                self.c.shed += 1;
                Verdict::Drop
            }
            _ => {
                self.c.emit_failed += 1;
                self.c.admitted += 1;
                Verdict::Continue
            }
        }
    }

    fn control(&mut self, request: &str, reply: &mut Reply) -> Result<(), ()> {
        if request.trim() == "reset" {
            self.c = Counters::default();
            self.shedder = Shedder::default();
            reply.write("ok");
            return Ok(());
        }
        match parse(request) {
            Ok(r) => {
                self.retry_after = r;
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
        let s = &self.shedder;
        let c = &self.c;
        let _ = write!(
            out,
            "{{\"oc\":{},\"valid_ms\":{},\"seq\":",
            s.current(self.now_ms),
            s.until_ms.saturating_sub(self.now_ms)
        );
        match s.seq {
            Some(q) => {
                let _ = write!(out, "{q}");
            }
            None => out.write("null"),
        }
        let _ = write!(
            out,
            ",\"candidates\":{},\"shed\":{},\"admitted\":{},\"in_dialog\":{},\"other\":{},\"responses\":{},\"feedback\":{},\"acks_absorbed\":{},\"bad\":{{",
            c.candidates, c.shed, c.admitted, c.in_dialog, c.other, c.responses, c.feedback, c.acks_absorbed
        );
        let mut first = true;
        for (name, n) in Error::REASONS.iter().zip(c.bad.iter()).filter(|(_, n)| **n > 0) {
            let _ = write!(out, "{}\"{}\":{}", if first { "" } else { "," }, name, n);
            first = false;
        }
        let _ = write!(
            out,
            "}},\"emit_failed\":{},\"retry_after\":{}}}",
            c.emit_failed, self.retry_after
        );
    }
}

weft_plugin!(Oc);
