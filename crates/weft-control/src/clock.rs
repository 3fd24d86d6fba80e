//! One time unit: the node, its elements, the runner and the emulator all
//! count **nanoseconds** (`u64`, from an arbitrary start: the runner's
//! thread start, the emulator's virtual zero). The PBR agent (`weft-pbr`)
//! still counts milliseconds; these two functions are the one place its
//! drivers (the runner's [`crate::runner::Daemons`], the emulator) convert,
//! so that when the agent moves to nanoseconds they are all that goes.

/// Nanoseconds per millisecond.
pub const NS_PER_MS: u64 = 1_000_000;

/// The PBR agent's clock (ms) at node time `now_ns`.
#[inline]
pub fn pbr_now(now_ns: u64) -> u64 {
    now_ns / NS_PER_MS
}

/// The node time at which a PBR deadline `ms` (from the agent's
/// `poll_timeout`) is due: the first nanosecond at which [`pbr_now`]
/// reaches it.
#[inline]
pub fn pbr_due(ms: u64) -> u64 {
    ms.saturating_mul(NS_PER_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_is_due_exactly_when_the_agent_sees_it() {
        for ms in [0, 1, 999, 10_000, u64::MAX / NS_PER_MS] {
            assert_eq!(pbr_now(pbr_due(ms)), ms);
            if ms > 0 {
                assert!(pbr_now(pbr_due(ms) - 1) < ms);
            }
        }
    }
}
