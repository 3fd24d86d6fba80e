//! The node's one ICMP error limiter: a token bucket that every ICMP and
//! ICMPv6 error the node originates passes, whether the engine sends it
//! (port unreachable, time exceeded, fragmentation needed, …) or an element
//! does through [`crate::Ctx::icmp_error_allowed`] (the DataRouter's
//! parameter problems and unreachables). One budget per node, as Linux has
//! one per host (`net.ipv4.icmp_msgs_per_sec` / `icmp_msgs_burst`), so
//! that no kind of bad input, and no element, can make the node send more
//! errors than the operator allowed (RFC 1812 4.3.2.8, RFC 4443 2.4(f)).
//!
//! Informational replies (echo replies, neighbour advertisements) are not
//! errors and do not pass it.

use crate::token_bucket::TokenBucket;

/// Default errors per second: Linux's `icmp_msgs_per_sec`.
pub const DEFAULT_RATE: u64 = 1000;
/// Default burst: Linux's `icmp_msgs_burst`.
pub const DEFAULT_BURST: u64 = 50;
/// Largest rate or burst accepted.
pub const MAX: u64 = 1_000_000;

/// The node's ICMP error budget: a [`TokenBucket`] of errors, at most
/// `burst` at once, refilled at `rate` per second, with counts of what it
/// allowed and refused. See the module documentation.
#[derive(Clone, Debug)]
pub struct IcmpLimiter {
    bucket: TokenBucket,
    sent: u64,
    limited: u64,
}

impl Default for IcmpLimiter {
    fn default() -> Self {
        IcmpLimiter::new(DEFAULT_RATE, DEFAULT_BURST)
    }
}

impl IcmpLimiter {
    /// A full bucket: `burst` errors at once, `rate` per second after
    /// that (both capped at [`MAX`]). A rate of 0 allows no error at all.
    pub fn new(rate: u64, burst: u64) -> IcmpLimiter {
        IcmpLimiter {
            bucket: TokenBucket::new(rate.min(MAX), burst.min(MAX)),
            sent: 0,
            limited: 0,
        }
    }

    /// Change the rate and burst; the bucket starts full again, the
    /// counters carry on.
    pub fn set(&mut self, rate: u64, burst: u64) {
        let (sent, limited) = (self.sent, self.limited);
        *self = IcmpLimiter {
            sent,
            limited,
            ..IcmpLimiter::new(rate, burst)
        };
    }

    /// Errors per second.
    pub fn rate(&self) -> u64 {
        self.bucket.rate()
    }

    /// Errors at once.
    pub fn burst(&self) -> u64 {
        self.bucket.burst()
    }

    /// Take a token for one error at `now_ns` (the node's clock): `true`
    /// when it may be sent (counted as sent), `false` when the bucket is
    /// empty (counted as limited).
    pub fn allow(&mut self, now_ns: u64) -> bool {
        if self.bucket.rate() > 0 && self.bucket.take(now_ns, 1) {
            self.sent += 1;
            true
        } else {
            self.limited += 1;
            false
        }
    }

    /// Errors allowed so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Errors refused so far.
    pub fn limited(&self) -> u64 {
        self.limited
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: u64 = 1_000_000_000;

    const MS: u64 = 1_000_000;

    #[test]
    fn burst_then_rate() {
        let mut l = IcmpLimiter::new(100, 10);
        let t0 = 5 * NS;
        assert_eq!((0..30).filter(|_| l.allow(t0)).count(), 10);
        // 100 per second: one every 10 ms.
        assert!(!l.allow(t0 + 9 * MS));
        assert!(l.allow(t0 + 10 * MS));
        assert!(!l.allow(t0 + 10 * MS));
        assert_eq!((l.sent(), l.limited()), (11, 22));
    }

    /// Whatever the spacing of requests, no more than `burst + rate × T`
    /// are allowed over T, and a steady trickle below the rate is never
    /// refused (the remainders of partial tokens are kept).
    #[test]
    fn never_more_than_burst_plus_rate() {
        for (rate, burst, step_us) in [
            (100, 10, 1000),
            (100, 10, 15_000),
            (7, 1, 333),
            (1000, 50, 100),
            (3, 3, 1),
        ] {
            let mut l = IcmpLimiter::new(rate, burst);
            let mut n = 0u64;
            let steps = 3000u64;
            for i in 0..steps {
                if l.allow(NS + i * step_us * 1000) {
                    n += 1;
                }
            }
            let span_ns = (steps - 1) * step_us * 1000;
            assert!(
                n <= burst + rate * span_ns / NS,
                "{rate}/s burst {burst} every {step_us} µs: {n}"
            );
            assert!(
                n + 1 >= (burst + rate * span_ns / NS).min(steps),
                "{rate}/s burst {burst}: only {n}"
            );
        }
    }

    #[test]
    fn zero_rate_sends_nothing_and_set_refills() {
        let mut l = IcmpLimiter::new(0, 10);
        assert!(!l.allow(NS));
        l.set(10, 2);
        assert!(l.allow(NS) && l.allow(NS) && !l.allow(NS));
        assert_eq!((l.rate(), l.burst(), l.sent(), l.limited()), (10, 2, 2, 2));
        assert_eq!(IcmpLimiter::new(u64::MAX, u64::MAX).burst(), MAX);
    }
}
