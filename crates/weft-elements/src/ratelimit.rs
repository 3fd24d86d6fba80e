//! `ratelimit` — a token bucket in bytes per second (PromethOS' rate
//! limiter): packets that find enough tokens pass, the excess is dropped.
//!
//! * **Configuration:** `RATE [BURST]` or `rate=RATE [burst=BURST]`, both in
//!   bytes (frame bytes, Ethernet header included, as tc counts them).
//!   The default burst is `max(RATE / 10, 3000)`: 100 ms of traffic, but at
//!   least two full-size 1500-byte frames so a slow limit still passes whole
//!   packets. A packet larger than the burst never passes.
//! * **Ports:** one in, one out.
//! * **Time:** tokens refill from [`Ctx::now_ns`] (virtual in the emulator);
//!   the bucket starts full. It is Weft's one [`TokenBucket`], which the
//!   node's ICMP error limiter uses too.
//! * **Handlers:**
//!   * `rate`, `burst` (read, report).
//!   * `passed`, `dropped` (read, report) — `{"packets":N,"bytes":N}` each.
//!   * `rate` (write, control) — PromethOS' `echo '#1' 131072 > management`:
//!     the request is a new configuration (`131072`, `rate=131072
//!     burst=20000`); without a burst the default for the new rate applies.
//!   * `reset` (write, control `reset`) — zero the counts.
//! * **State:** counts and the bucket's fill carry over to a successor
//!   `ratelimit` (so a replacement grants no extra burst).
//!
//! Report: `{"rate":R,"burst":B,"passed":{…},"dropped":{…}}`.

use crate::util::{self, Tally};
use serde::{Deserialize, Serialize};
use weft_dataplane::{Args, ClassDoc, Ctx, Element, ElementClass, ElementError, Handler, TokenBucket, Verdict};
use weft_packet::Packet;

const CLASS: &str = "ratelimit";
/// Two full-size Ethernet payloads: the smallest default burst.
const MIN_DEFAULT_BURST: u64 = 3000;

/// The default burst for `rate`.
pub fn default_burst(rate: u64) -> u64 {
    (rate / 10).max(MIN_DEFAULT_BURST)
}

/// The `ratelimit` element.
#[derive(Debug)]
pub struct RateLimit {
    /// Tokens are bytes; the bucket is full until the first packet.
    bucket: TokenBucket,
    stats: Stats,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
struct Stats {
    passed: Tally,
    dropped: Tally,
}

#[derive(Serialize, Deserialize)]
struct State {
    #[serde(flatten)]
    stats: Stats,
    tokens_bytes: u64,
    last_ns: Option<u64>,
}

fn parse(args: &Args) -> Result<(u64, u64), ElementError> {
    util::check_args(args, CLASS, &["rate", "burst"], 2)?;
    let rate = util::get_u64(args, CLASS, "rate", 0)?
        .ok_or_else(|| ElementError::Config(format!("{CLASS}: a rate in bytes/s is required (`65536`)")))?;
    let burst = util::get_u64(args, CLASS, "burst", 1)?.unwrap_or_else(|| default_burst(rate));
    Ok((rate, burst))
}

impl RateLimit {
    /// Parse a configuration.
    pub fn new(args: &Args) -> Result<Self, ElementError> {
        let (rate, burst) = parse(args)?;
        Ok(RateLimit {
            bucket: TokenBucket::new(rate, burst),
            stats: Stats::default(),
        })
    }
}

impl Element for RateLimit {
    fn handlers(&self) -> Vec<Handler> {
        HANDLERS.to_vec()
    }

    fn process(&mut self, cx: &mut Ctx<'_>, pkt: &mut Packet) -> Verdict {
        if self.bucket.take(cx.now_ns, pkt.len() as u64) {
            self.stats.passed.add(pkt.len());
            Verdict::Continue
        } else {
            self.stats.dropped.add(pkt.len());
            Verdict::Drop
        }
    }

    fn configure(&mut self, args: &Args) -> Result<(), ElementError> {
        let (rate, burst) = parse(args)?;
        self.bucket.set_rate(rate, burst);
        tracing::debug!(rate, burst, "ratelimit reconfigured");
        Ok(())
    }

    fn control(&mut self, request: &str) -> Result<String, ElementError> {
        if util::is_reset(request) {
            self.stats = Stats::default();
        } else {
            self.configure(&Args::parse(request))?;
        }
        Ok("ok".into())
    }

    fn report(&self) -> serde_json::Value {
        serde_json::json!({
            "rate": self.bucket.rate(),
            "burst": self.bucket.burst(),
            "passed": self.stats.passed,
            "dropped": self.stats.dropped,
        })
    }

    fn export_state(&mut self) -> Option<serde_json::Value> {
        let s = State {
            stats: self.stats,
            tokens_bytes: self.bucket.tokens(),
            last_ns: self.bucket.refilled_ns(),
        };
        serde_json::to_value(s).ok()
    }

    fn import_state(&mut self, state: serde_json::Value) -> Result<(), ElementError> {
        let s: State = serde_json::from_value(state).map_err(|e| ElementError::State(format!("{CLASS}: {e}")))?;
        self.stats = s.stats;
        if let Some(at) = s.last_ns {
            self.bucket.restore(s.tokens_bytes, at);
        }
        Ok(())
    }
}

/// The handlers (see the module header): the class documents them and
/// every instance answers [`Element::handlers`] with them.
const HANDLERS: &[Handler] = &[
    Handler::read("rate", "configured rate, bytes/s"),
    Handler::read("burst", "bucket size, bytes"),
    Handler::read("passed", "packets and bytes passed"),
    Handler::read("dropped", "packets and bytes dropped"),
    Handler::write("rate", "control `RATE [BURST]`: a new rate (PromethOS' `131072`)"),
    Handler::write("reset", "control `reset`: zero the counts"),
];

fn doc() -> ClassDoc {
    util::doc(
        "token bucket in bytes/s; the excess is dropped",
        "RATE [BURST] | rate=RATE [burst=BURST] (bytes/s, bytes; default burst max(RATE/10, 3000))",
        HANDLERS,
    )
}

/// The `ratelimit` class.
pub fn class() -> ElementClass {
    ElementClass::native(CLASS, doc(), |a| Ok(Box::new(RateLimit::new(a)?)))
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use weft_dataplane::{Element, Verdict};

    const MS: u64 = 1_000_000;

    /// Offer 1000-byte frames every millisecond (1 MB/s) from `from_ms` for
    /// `ms` milliseconds; return the bytes passed.
    fn offer(h: &mut Harness, e: &mut dyn Element, from_ms: u64, ms: u64) -> u64 {
        let frame = v4(1, 2, &[0u8; 958]);
        assert_eq!(frame.len(), 1000);
        let mut passed = 0;
        for t in from_ms..from_ms + ms {
            let mut p = pkt(&frame);
            if h.run(e, t * MS, &mut p) == Verdict::Continue {
                passed += 1000;
            }
        }
        passed
    }

    #[test]
    fn passes_rate_times_time_then_follows_control() {
        let mut h = Harness::default();
        let mut e = make("ratelimit", "65536");
        assert_eq!(e.report()["burst"], 6553);
        let secs = 10;
        let passed = offer(&mut h, e.as_mut(), 0, secs * 1000);
        let expect = 65536 * secs;
        // The initial burst plus at most one frame of rounding.
        assert!(
            passed >= expect && passed <= expect + 6553 + 1000,
            "passed {passed}, expected about {expect}"
        );

        assert_eq!(e.control("131072").as_deref(), Ok("ok"));
        assert_eq!(e.report()["rate"], 131072);
        assert_eq!(e.report()["burst"], 13107);
        let passed = offer(&mut h, e.as_mut(), secs * 1000, secs * 1000);
        let expect = 131072 * secs;
        // The bucket was empty when the rate changed: no burst this time.
        assert!(
            passed + 1000 >= expect && passed <= expect + 1000,
            "passed {passed}, expected about {expect}"
        );

        let r = e.report();
        let total = r["passed"]["bytes"].as_u64().unwrap_or(0) + r["dropped"]["bytes"].as_u64().unwrap_or(0);
        assert_eq!(total, 2 * secs * 1000 * 1000);
        assert_eq!(
            r["passed"]["packets"].as_u64().unwrap_or(0) * 1000,
            r["passed"]["bytes"].as_u64().unwrap_or(1)
        );
    }

    #[test]
    fn explicit_burst_and_state() {
        let mut h = Harness::default();
        let mut e = make("ratelimit", "rate=1000 burst=2500");
        // At one instant only the burst passes: two 1000-byte frames.
        let frame = v4(1, 2, &[0u8; 958]);
        let v: Vec<Verdict> = (0..4).map(|_| h.run(e.as_mut(), 5, &mut pkt(&frame))).collect();
        assert_eq!(v, [Verdict::Continue, Verdict::Continue, Verdict::Drop, Verdict::Drop]);

        let state = e.export_state().expect("state");
        let mut next = make("ratelimit", "rate=1000 burst=2500");
        next.import_state(state).expect("import");
        assert_eq!(next.report()["passed"]["packets"], 2);
        assert_eq!(next.report()["dropped"]["packets"], 2);
        // The successor's bucket holds the predecessor's 500 bytes, not a
        // fresh burst.
        assert_eq!(h.run(next.as_mut(), 5, &mut pkt(&frame)), Verdict::Drop);
        // Half a second later 500 more bytes have come in.
        assert_eq!(h.run(next.as_mut(), 5 + 500 * MS, &mut pkt(&frame)), Verdict::Continue);

        next.control("reset").expect("reset");
        assert_eq!(next.report()["passed"]["packets"], 0);
        assert!(next.control("fast").is_err());
        assert_eq!(next.report()["rate"], 1000, "a refused request changes nothing");
        assert!(rejects("ratelimit", ""));
        assert!(rejects("ratelimit", "rate=1k"));
        assert!(rejects("ratelimit", "1 2 3"));
    }
}
