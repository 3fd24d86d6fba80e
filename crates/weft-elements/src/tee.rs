//! `tee` — send a copy of each packet out of a port (tc's `mirred mirror`,
//! Click's `Tee`); the original continues.
//!
//! * **Configuration:** the port, `PORT` or `port=PORT` (required).
//! * **Ports:** one in, one out; a copy of each packet is emitted to `PORT`
//!   (as it is, skipping routing).
//! * **Handlers:**
//!   * `port` (read, report) — the mirror port.
//!   * `copies` (read, report) — copies emitted.
//!   * `reset` (write, control `reset`) — zero `copies`; any other request
//!     is a new configuration (`tee#3 2` mirrors to port 2 from now on).
//! * **State:** `copies` carries over to a successor `tee`.
//!
//! Report: `{"port":P,"copies":N}`.

use crate::util;
use weft_dataplane::{Args, ClassDoc, Ctx, Element, ElementClass, ElementError, EmitTo, Handler, Verdict};
use weft_packet::{Packet, PortId};

const CLASS: &str = "tee";

/// The `tee` element.
#[derive(Debug)]
pub struct Tee {
    port: PortId,
    copies: u64,
}

fn parse_port(args: &Args) -> Result<PortId, ElementError> {
    util::check_args(args, CLASS, &["port"], 1)?;
    util::get_port(args, CLASS, "port", 0)?
        .ok_or_else(|| ElementError::Config(format!("{CLASS}: a port is required (`tee 2` or `port=2`)")))
}

impl Tee {
    /// Parse a configuration.
    pub fn new(args: &Args) -> Result<Self, ElementError> {
        Ok(Tee {
            port: parse_port(args)?,
            copies: 0,
        })
    }
}

impl Element for Tee {
    fn handlers(&self) -> Vec<Handler> {
        HANDLERS.to_vec()
    }

    fn process(&mut self, cx: &mut Ctx<'_>, pkt: &mut Packet) -> Verdict {
        let mut copy = cx.alloc(pkt.data());
        copy.meta = pkt.meta.clone();
        cx.emit(EmitTo::Port(self.port), copy);
        self.copies = self.copies.wrapping_add(1);
        Verdict::Continue
    }

    fn configure(&mut self, args: &Args) -> Result<(), ElementError> {
        self.port = parse_port(args)?;
        Ok(())
    }

    fn control(&mut self, request: &str) -> Result<String, ElementError> {
        if util::is_reset(request) {
            self.copies = 0;
        } else {
            self.configure(&Args::parse(request))?;
        }
        Ok("ok".into())
    }

    fn report(&self) -> serde_json::Value {
        serde_json::json!({ "port": self.port, "copies": self.copies })
    }

    fn export_state(&mut self) -> Option<serde_json::Value> {
        Some(serde_json::json!({ "copies": self.copies }))
    }

    fn import_state(&mut self, state: serde_json::Value) -> Result<(), ElementError> {
        self.copies = state
            .get("copies")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| ElementError::State(format!("{CLASS}: no `copies` count")))?;
        Ok(())
    }
}

/// The handlers (see the module header): the class documents them and
/// every instance answers [`Element::handlers`] with them.
const HANDLERS: &[Handler] = &[
    Handler::read("port", "the port copies go out of"),
    Handler::read("copies", "copies emitted"),
    Handler::write(
        "reset",
        "control `reset`: zero `copies`; any other request is a new configuration",
    ),
];

fn doc() -> ClassDoc {
    util::doc(
        "emit a copy of each packet out of a port; the original continues",
        "PORT | port=PORT (required)",
        HANDLERS,
    )
}

/// The `tee` class.
pub fn class() -> ElementClass {
    ElementClass::native(CLASS, doc(), |a| Ok(Box::new(Tee::new(a)?)))
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use weft_dataplane::{EmitTo, Verdict};

    #[test]
    fn emits_exact_copies_to_the_port() {
        let mut h = Harness::default();
        let mut t = make("tee", "2");
        let f1 = v4(1, 2, b"first");
        let f2 = v6(3, 4, b"second");
        let mut p1 = pkt(&f1);
        let mut p2 = pkt(&f2);
        assert_eq!(h.run(t.as_mut(), 0, &mut p1), Verdict::Continue);
        assert_eq!(h.run(t.as_mut(), 0, &mut p2), Verdict::Continue);
        assert_eq!(p1.data(), &f1[..], "original unchanged");
        assert_eq!(h.emitted.len(), 2);
        assert_eq!(h.emitted[0].0, EmitTo::Port(2));
        assert_eq!(h.emitted[0].1.data(), &f1[..]);
        assert_eq!(h.emitted[1].0, EmitTo::Port(2));
        assert_eq!(h.emitted[1].1.data(), &f2[..]);
        assert_eq!(t.report(), serde_json::json!({"port": 2, "copies": 2}));

        t.control("port=5").expect("reconfigure");
        let mut p = pkt(&f1);
        h.run(t.as_mut(), 0, &mut p);
        assert_eq!(h.emitted[2].0, EmitTo::Port(5));
        assert!(t.control("port=x").is_err());
        assert_eq!(t.report()["port"], 5, "a failed reconfiguration changes nothing");
    }

    #[test]
    fn config_errors() {
        assert!(rejects("tee", ""));
        assert!(rejects("tee", "70000"));
        assert!(rejects("tee", "2 3"));
        assert!(!rejects("tee", "port=1"));
    }
}
