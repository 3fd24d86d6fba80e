//! `counter` — count packets and bytes (Click's `Counter`).
//!
//! * **Configuration:** none.
//! * **Ports:** one in, one out; every packet continues.
//! * **Handlers:**
//!   * `packets` (read, report) — packets seen.
//!   * `bytes` (read, report) — frame bytes seen, Ethernet header included.
//!   * `reset` (write, control `reset`) — zero both.
//! * **State:** exported as the report; a `counter` replacing a `counter`
//!   carries the counts over.
//!
//! Report: `{"packets":N,"bytes":N}`.

use crate::util::{self, Tally};
use weft_dataplane::{Args, ClassDoc, Ctx, Element, ElementClass, ElementError, Handler, Verdict};
use weft_packet::Packet;

const CLASS: &str = "counter";

/// The `counter` element.
#[derive(Debug, Default)]
pub struct Counter {
    counts: Tally,
}

impl Counter {
    /// Parse a configuration (there is none to give).
    pub fn new(args: &Args) -> Result<Self, ElementError> {
        util::check_args(args, CLASS, &[], 0)?;
        Ok(Counter::default())
    }

    /// Packets and bytes counted so far.
    pub fn counts(&self) -> Tally {
        self.counts
    }
}

impl Element for Counter {
    fn handlers(&self) -> Vec<Handler> {
        HANDLERS.to_vec()
    }

    fn process(&mut self, _cx: &mut Ctx<'_>, pkt: &mut Packet) -> Verdict {
        self.counts.add(pkt.len());
        Verdict::Continue
    }

    fn configure(&mut self, args: &Args) -> Result<(), ElementError> {
        util::check_args(args, CLASS, &[], 0)
    }

    fn control(&mut self, request: &str) -> Result<String, ElementError> {
        if util::is_reset(request) {
            self.counts = Tally::default();
            Ok("ok".into())
        } else {
            Err(util::only_reset(CLASS, request))
        }
    }

    fn report(&self) -> serde_json::Value {
        serde_json::json!({ "packets": self.counts.packets, "bytes": self.counts.bytes })
    }

    fn export_state(&mut self) -> Option<serde_json::Value> {
        Some(self.report())
    }

    fn import_state(&mut self, state: serde_json::Value) -> Result<(), ElementError> {
        self.counts = serde_json::from_value(state).map_err(|e| ElementError::State(format!("{CLASS}: {e}")))?;
        Ok(())
    }
}

/// The handlers (see the module header): the class documents them and
/// every instance answers [`Element::handlers`] with them.
const HANDLERS: &[Handler] = &[
    Handler::read("packets", "packets seen"),
    Handler::read("bytes", "frame bytes seen (Ethernet header included)"),
    Handler::write("reset", "control `reset`: zero both counts"),
];

fn doc() -> ClassDoc {
    util::doc("count packets and bytes; every packet continues", "none", HANDLERS)
}

/// The `counter` class.
pub fn class() -> ElementClass {
    ElementClass::native(CLASS, doc(), |a| Ok(Box::new(Counter::new(a)?)))
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use weft_dataplane::Verdict;

    #[test]
    fn counts_resets_and_carries_state() {
        let mut h = Harness::default();
        let mut c = make("counter", "");
        for n in [1usize, 10, 100] {
            let mut p = pkt(&v4(1, 2, &vec![0; n]));
            assert_eq!(h.run(c.as_mut(), 0, &mut p), Verdict::Continue);
        }
        // 42 bytes of headers per frame.
        assert_eq!(c.report(), serde_json::json!({"packets": 3, "bytes": 3 * 42 + 111}));

        let state = c.export_state().expect("counter exports state");
        let mut successor = make("counter", "");
        successor.import_state(state).expect("import");
        let mut p = pkt(&v4(1, 2, b"x"));
        h.run(successor.as_mut(), 0, &mut p);
        assert_eq!(successor.report()["packets"], 4);
        assert_eq!(successor.report()["bytes"], 3 * 42 + 111 + 43);

        assert_eq!(successor.control("reset").as_deref(), Ok("ok"));
        assert_eq!(successor.report(), serde_json::json!({"packets": 0, "bytes": 0}));
        assert!(successor.control("frobnicate").is_err());
        assert!(successor.import_state(serde_json::json!({"packets": "x"})).is_err());
        assert!(rejects("counter", "rate=5"));
    }
}
