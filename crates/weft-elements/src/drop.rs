//! `drop` — discard every packet (Click's `Discard`).
//!
//! * **Configuration:** none.
//! * **Ports:** one in, none out.
//! * **Handlers:**
//!   * `dropped` (read, report) — packets dropped.
//!   * `bytes` (read, report) — their frame bytes.
//!   * `reset` (write, control `reset`) — zero both.
//!
//! Report: `{"dropped":N,"bytes":N}`.

use crate::util::{self, Tally};
use weft_dataplane::{Args, ClassDoc, Ctx, Element, ElementClass, ElementError, Handler, Verdict};
use weft_packet::Packet;

const CLASS: &str = "drop";

/// The `drop` element.
#[derive(Debug, Default)]
pub struct Discard {
    dropped: Tally,
}

impl Discard {
    /// Parse a configuration (there is none to give).
    pub fn new(args: &Args) -> Result<Self, ElementError> {
        util::check_args(args, CLASS, &[], 0)?;
        Ok(Discard::default())
    }
}

impl Element for Discard {
    fn handlers(&self) -> Vec<Handler> {
        HANDLERS.to_vec()
    }

    fn process(&mut self, _cx: &mut Ctx<'_>, pkt: &mut Packet) -> Verdict {
        self.dropped.add(pkt.len());
        Verdict::Drop
    }

    fn configure(&mut self, args: &Args) -> Result<(), ElementError> {
        util::check_args(args, CLASS, &[], 0)
    }

    fn control(&mut self, request: &str) -> Result<String, ElementError> {
        if util::is_reset(request) {
            self.dropped = Tally::default();
            Ok("ok".into())
        } else {
            Err(util::only_reset(CLASS, request))
        }
    }

    fn report(&self) -> serde_json::Value {
        serde_json::json!({ "dropped": self.dropped.packets, "bytes": self.dropped.bytes })
    }
}

/// The handlers (see the module header): the class documents them and
/// every instance answers [`Element::handlers`] with them.
const HANDLERS: &[Handler] = &[
    Handler::read("dropped", "packets dropped"),
    Handler::read("bytes", "frame bytes dropped"),
    Handler::write("reset", "control `reset`: zero the counts"),
];

fn doc() -> ClassDoc {
    util::doc("drop every packet", "none", HANDLERS)
}

/// The `drop` class.
pub fn class() -> ElementClass {
    ElementClass::native(CLASS, doc(), |a| Ok(Box::new(Discard::new(a)?)))
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use weft_dataplane::Verdict;

    #[test]
    fn drops_and_counts() {
        let mut h = Harness::default();
        let mut e = make("drop", "");
        for _ in 0..3 {
            let mut p = pkt(&v6(1, 2, b"x"));
            assert_eq!(h.run(e.as_mut(), 0, &mut p), Verdict::Drop);
        }
        assert_eq!(e.report()["dropped"], 3);
        e.control("reset").expect("reset");
        assert_eq!(e.report()["dropped"], 0);
        assert!(rejects("drop", "1"));
    }
}
