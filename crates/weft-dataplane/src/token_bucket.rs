//! One token bucket for every rate limit in Weft: the node's ICMP error
//! limiter ([`crate::icmp_limit`]) counts errors, the `ratelimit` element
//! counts bytes; both refill here.
//!
//! The bucket keeps its fill in token-nanoseconds (tokens × 10⁹), so
//! refilling at any rate over any interval is exact integer arithmetic:
//! no remainder is lost at low rates and nothing is credited twice, so
//! over any span T no more than `burst + rate × T` tokens are taken. It
//! refills from the clock each [`TokenBucket::take`] is given (nanoseconds,
//! virtual in the emulator), so it never needs a timer; a clock that
//! stands still or steps back grants nothing.

const NS_PER_S: u128 = 1_000_000_000;

/// A token bucket: at most `burst` tokens, refilled at `rate` per second.
/// See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBucket {
    rate: u64,
    burst: u64,
    /// Tokens × 10⁹, as a u128 in two halves (high, low): a `u128` field
    /// is 16-byte aligned, and so would be the node that holds the ICMP
    /// limiter, whose fields rustc then reorders — plain forwarding
    /// measured 3 % slower with its hot fields moved apart.
    fill: [u64; 2],
    /// The clock up to which the bucket has been refilled; `None` until the
    /// first [`TokenBucket::take`], which finds the bucket full whatever its
    /// time.
    refilled_ns: Option<u64>,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens refilled at `rate` per second, whose
    /// clock starts at the first [`TokenBucket::take`].
    pub fn new(rate: u64, burst: u64) -> TokenBucket {
        TokenBucket {
            rate,
            burst,
            fill: split(burst as u128 * NS_PER_S),
            refilled_ns: None,
        }
    }

    /// Tokens per second.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// Most tokens at once.
    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// Change rate and burst, keeping what the bucket holds (cut to the
    /// new burst).
    pub fn set_rate(&mut self, rate: u64, burst: u64) {
        self.rate = rate;
        self.burst = burst;
        self.set_fill(self.fill().min(self.capacity()));
    }

    fn fill(&self) -> u128 {
        (self.fill[0] as u128) << 64 | self.fill[1] as u128
    }

    fn set_fill(&mut self, v: u128) {
        self.fill = split(v);
    }

    fn capacity(&self) -> u128 {
        self.burst as u128 * NS_PER_S
    }

    /// Credit the tokens that came in up to `now_ns`.
    pub fn refill(&mut self, now_ns: u64) {
        match self.refilled_ns {
            None => self.set_fill(self.capacity()),
            Some(last) if now_ns > last => {
                let add = ((now_ns - last) as u128).saturating_mul(self.rate as u128);
                self.set_fill(self.fill().saturating_add(add).min(self.capacity()));
            }
            Some(_) => {}
        }
        self.refilled_ns = Some(self.refilled_ns.map_or(now_ns, |l| l.max(now_ns)));
    }

    /// Refill up to `now_ns`, then take `n` tokens if the bucket holds
    /// them: `true` when taken, `false` (and nothing taken) otherwise.
    pub fn take(&mut self, now_ns: u64, n: u64) -> bool {
        self.refill(now_ns);
        let need = n as u128 * NS_PER_S;
        let fill = self.fill();
        if fill < need {
            return false;
        }
        self.set_fill(fill - need);
        true
    }

    /// Whole tokens in the bucket (as of its last refill).
    pub fn tokens(&self) -> u64 {
        u64::try_from(self.fill() / NS_PER_S).unwrap_or(u64::MAX)
    }

    /// The clock of the last refill (`None`: never used).
    pub fn refilled_ns(&self) -> Option<u64> {
        self.refilled_ns
    }

    /// Put back a fill and clock saved with [`TokenBucket::tokens`] and
    /// [`TokenBucket::refilled_ns`] (a predecessor's state): the bucket
    /// then holds `tokens` (at most the burst) as of `at_ns`.
    pub fn restore(&mut self, tokens: u64, at_ns: u64) {
        self.set_fill((tokens as u128 * NS_PER_S).min(self.capacity()));
        self.refilled_ns = Some(at_ns);
    }
}

/// A u128 as (high, low) halves.
fn split(v: u128) -> [u64; 2] {
    [(v >> 64) as u64, v as u64]
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn the_bucket_is_eight_byte_aligned() {
        assert_eq!(std::mem::align_of::<TokenBucket>(), 8);
    }

    #[test]
    fn starts_full_then_follows_the_rate() {
        let mut b = TokenBucket::new(1000, 2500);
        assert!(b.take(5, 1000) && b.take(5, 1000));
        assert!(!b.take(5, 1000), "500 left");
        assert_eq!(b.tokens(), 500);
        assert!(!b.take(5 + 499 * MS, 1000));
        assert!(b.take(5 + 500 * MS, 1000), "half a second brings 500");
        assert_eq!(b.tokens(), 0);
    }

    #[test]
    fn never_more_than_burst_plus_rate_times_time() {
        for (rate, burst, step_ns) in [
            (100, 10, 1_000_000),
            (7, 1, 333_000),
            (3, 3, 1_000),
            (1000, 50, 15_000_000),
        ] {
            let mut b = TokenBucket::new(rate, burst);
            let mut n = 0u64;
            let steps = 3000u64;
            for i in 0..steps {
                n += b.take(1_000_000_000 + i * step_ns, 1) as u64;
            }
            let span = (steps - 1) * step_ns;
            let bound = burst + rate * span / 1_000_000_000;
            assert!(n <= bound, "{rate}/s burst {burst}: {n} > {bound}");
            assert!(n + 1 >= bound.min(steps), "{rate}/s burst {burst}: only {n}");
        }
    }

    #[test]
    fn a_clock_going_back_grants_nothing() {
        let mut b = TokenBucket::new(1000, 1);
        assert!(b.take(10 * MS, 1));
        assert!(!b.take(5 * MS, 1));
        assert!(!b.take(10 * MS + MS - 1, 1), "credit runs from 10 ms, not 5 ms");
        assert!(b.take(11 * MS, 1));
    }

    #[test]
    fn set_rate_keeps_the_fill_and_restore_puts_it_back() {
        let mut b = TokenBucket::new(10, 100);
        assert!(b.take(0, 30));
        b.set_rate(10, 50);
        assert_eq!(b.tokens(), 50, "cut to the new burst");
        b.set_rate(20, 200);
        assert_eq!(b.tokens(), 50, "kept");
        let (t, at) = (b.tokens(), b.refilled_ns().unwrap());
        let mut c = TokenBucket::new(20, 200);
        c.restore(t, at);
        assert_eq!(c, b);
        c.restore(1000, 0);
        assert_eq!(c.tokens(), 200);
    }
}
