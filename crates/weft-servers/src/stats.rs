//! A server module's counters: the lowest room, shared by the egress
//! policy, the host and the server.

use std::sync::atomic::{AtomicU64, Ordering};

/// A module's counters.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Requests received.
    pub requests: AtomicU64,
    /// Requests the module answered.
    pub answered: AtomicU64,
    /// Requests whose handler ran out of CPU budget.
    pub cpu_exceeded: AtomicU64,
    /// Requests whose handler hit the memory cap.
    pub memory_exceeded: AtomicU64,
    /// Requests whose handler trapped otherwise.
    pub traps: AtomicU64,
    /// Requests not done within the request timeout.
    pub timeouts: AtomicU64,
    /// Handlers that returned without answering.
    pub no_response: AtomicU64,
    /// Requests that waited for the instance until their timeout.
    pub busy: AtomicU64,
    /// Instances created (the first, and one after each failure).
    pub instantiations: AtomicU64,
    /// Outgoing requests sent.
    pub egress_requests: AtomicU64,
    /// Outgoing requests refused by the egress policy.
    pub egress_denied: AtomicU64,
}

impl ServerStats {
    /// The counters by name.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        vec![
            ("requests", g(&self.requests)),
            ("answered", g(&self.answered)),
            ("cpu_exceeded", g(&self.cpu_exceeded)),
            ("memory_exceeded", g(&self.memory_exceeded)),
            ("traps", g(&self.traps)),
            ("timeouts", g(&self.timeouts)),
            ("no_response", g(&self.no_response)),
            ("busy", g(&self.busy)),
            ("instantiations", g(&self.instantiations)),
            ("egress_requests", g(&self.egress_requests)),
            ("egress_denied", g(&self.egress_denied)),
        ]
    }
}
