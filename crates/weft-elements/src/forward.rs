//! `forward` — LANA's empty functional block: the packet continues; with
//! `port=N` it is sent straight out of port `N` instead (skipping the rest of
//! the chain and routing).
//!
//! * **Configuration:** none, or `port=N` / `N`.
//! * **Ports:** one in, one out (or the configured port).
//! * **Handlers:**
//!   * `packets` (read, report) — packets seen.
//!   * `port` (read, report) — the redirect port, `null` when none.
//!   * control: a new configuration (`port=3`, or empty to continue again).
//!
//! Report: `{"packets":N,"port":P|null}`.

use crate::util;
use weft_dataplane::{Args, ClassDoc, Ctx, Element, ElementClass, ElementError, Handler, Verdict};
use weft_packet::{Packet, PortId};

const CLASS: &str = "forward";

/// The `forward` element.
#[derive(Debug, Default)]
pub struct Forward {
    port: Option<PortId>,
    packets: u64,
}

fn parse_port(args: &Args) -> Result<Option<PortId>, ElementError> {
    util::check_args(args, CLASS, &["port"], 1)?;
    util::get_port(args, CLASS, "port", 0)
}

impl Forward {
    /// Parse a configuration.
    pub fn new(args: &Args) -> Result<Self, ElementError> {
        Ok(Forward {
            port: parse_port(args)?,
            packets: 0,
        })
    }
}

impl Element for Forward {
    fn handlers(&self) -> Vec<Handler> {
        HANDLERS.to_vec()
    }

    fn process(&mut self, _cx: &mut Ctx<'_>, _pkt: &mut Packet) -> Verdict {
        self.packets = self.packets.wrapping_add(1);
        match self.port {
            Some(p) => Verdict::Redirect(p),
            None => Verdict::Continue,
        }
    }

    fn configure(&mut self, args: &Args) -> Result<(), ElementError> {
        self.port = parse_port(args)?;
        Ok(())
    }

    fn report(&self) -> serde_json::Value {
        serde_json::json!({ "packets": self.packets, "port": self.port })
    }
}

/// The handlers (see the module header): the class documents them and
/// every instance answers [`Element::handlers`] with them.
const HANDLERS: &[Handler] = &[
    Handler::read("packets", "packets seen"),
    Handler::read("port", "the redirect port, null when packets continue"),
    Handler::write("config", "control: a new configuration"),
];

fn doc() -> ClassDoc {
    util::doc(
        "the empty block: packets continue, or go straight out of `port`",
        "[PORT | port=PORT]",
        HANDLERS,
    )
}

/// The `forward` class.
pub fn class() -> ElementClass {
    ElementClass::native(CLASS, doc(), |a| Ok(Box::new(Forward::new(a)?)))
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use weft_dataplane::Verdict;

    #[test]
    fn continues_or_redirects() {
        let mut h = Harness::default();
        let f = v4(1, 2, b"x");
        let mut e = make("forward", "");
        let mut p = pkt(&f);
        assert_eq!(h.run(e.as_mut(), 0, &mut p), Verdict::Continue);
        assert_eq!(p.data(), &f[..]);
        let mut e = make("forward", "port=3");
        assert_eq!(h.run(e.as_mut(), 0, &mut p), Verdict::Redirect(3));
        e.control("").expect("back to plain forwarding");
        assert_eq!(h.run(e.as_mut(), 0, &mut p), Verdict::Continue);
        assert_eq!(e.report()["packets"], 2);
        assert!(h.emitted.is_empty());
        assert!(rejects("forward", "port=-1"));
    }
}
