//! `match` — a filter expression inside a chain: the packet's 6-tuple is
//! tested with the classifier's own [`Match::matches`], so a `match` and a
//! filter with the same fields agree.
//!
//! * **Configuration** (every field optional; an absent field matches
//!   anything):
//!   * `proto=udp|tcp|icmp|icmpv6|N`
//!   * `src=PREFIX`, `dst=PREFIX` — `10.0.0.0/8`, `2001:db8::/32`, or an
//!     address (a host prefix). Source and destination must be of one family.
//!   * `sport=N|LO-HI`, `dport=N|LO-HI` — inclusive port ranges.
//!   * `in_port=N` — the receiving port.
//!   * `action=pass|drop` — `pass` (default): matching packets continue,
//!     all others are dropped; `drop`: matching packets are dropped, all
//!     others continue.
//! * **Ports:** one in, one out.
//! * **Handlers:**
//!   * `matched`, `unmatched` (read, report) — packets that did / did not
//!     match the expression (whatever the action).
//!   * `match`, `action` (read, report) — the expression.
//!   * `reset` (write, control `reset`) — zero the counts; any other request
//!     is a new configuration.
//!
//! Report: `{"action":"pass","match":{…},"matched":N,"unmatched":N}`.

use crate::util;
use ipnet::IpNet;
use std::net::IpAddr;
use weft_dataplane::{Args, ClassDoc, Ctx, Element, ElementClass, ElementError, Handler, Match, Verdict};
use weft_packet::{proto, Packet};

const CLASS: &str = "match";
const KEYS: &[&str] = &["proto", "src", "dst", "sport", "dport", "in_port", "action"];

/// What happens to matching packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Matching packets continue, others are dropped.
    Pass,
    /// Matching packets are dropped, others continue.
    Drop,
}

/// The `match` element.
#[derive(Debug)]
pub struct MatchFilter {
    expr: Match,
    action: Action,
    matched: u64,
    unmatched: u64,
}

fn err(msg: String) -> ElementError {
    ElementError::Config(format!("{CLASS}: {msg}"))
}

/// A protocol by name or number.
pub fn parse_proto(s: &str) -> Option<u8> {
    match s.to_ascii_lowercase().as_str() {
        "udp" => Some(proto::UDP),
        "tcp" => Some(proto::TCP),
        "icmp" => Some(proto::ICMP),
        "icmpv6" | "ipv6-icmp" => Some(proto::ICMPV6),
        n => n.parse().ok(),
    }
}

fn parse_net(key: &str, s: &str) -> Result<IpNet, ElementError> {
    if s.contains('/') {
        s.parse::<IpNet>()
            .map_err(|_| err(format!("{key}: {s:?} is not a prefix")))
    } else {
        s.parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| err(format!("{key}: {s:?} is not an address or prefix")))
    }
}

fn parse_range(key: &str, s: &str) -> Result<(u16, u16), ElementError> {
    let bad = || err(format!("{key}: {s:?} is not a port or a range LO-HI"));
    let (lo, hi) = match s.split_once('-') {
        Some((a, b)) => (
            a.parse::<u16>().map_err(|_| bad())?,
            b.parse::<u16>().map_err(|_| bad())?,
        ),
        None => {
            let p = s.parse::<u16>().map_err(|_| bad())?;
            (p, p)
        }
    };
    if lo > hi {
        return Err(bad());
    }
    Ok((lo, hi))
}

fn parse(args: &Args) -> Result<(Match, Action), ElementError> {
    util::check_args(args, CLASS, KEYS, 0)?;
    let n = &args.named;
    let mut m = Match::default();
    if let Some(p) = n.get("proto") {
        m.proto = Some(parse_proto(p).ok_or_else(|| err(format!("proto: unknown protocol {p:?}")))?);
    }
    if let Some(s) = n.get("src") {
        m.src = Some(parse_net("src", s)?);
    }
    if let Some(s) = n.get("dst") {
        m.dst = Some(parse_net("dst", s)?);
    }
    if let (Some(a), Some(b)) = (&m.src, &m.dst) {
        if matches!(a, IpNet::V4(_)) != matches!(b, IpNet::V4(_)) {
            return Err(err(
                "src and dst are of different address families: nothing could match".into(),
            ));
        }
    }
    if let Some(s) = n.get("sport") {
        m.sport = Some(parse_range("sport", s)?);
    }
    if let Some(s) = n.get("dport") {
        m.dport = Some(parse_range("dport", s)?);
    }
    if let Some(s) = n.get("in_port") {
        m.in_port = Some(
            s.parse::<u16>()
                .map_err(|_| err(format!("in_port: {s:?} is not a port number")))?,
        );
    }
    let action = match n.get("action").map(|s| s.to_ascii_lowercase()) {
        None => Action::Pass,
        Some(a) if a == "pass" => Action::Pass,
        Some(a) if a == "drop" => Action::Drop,
        Some(a) => return Err(err(format!("action: {a:?} is neither `pass` nor `drop`"))),
    };
    Ok((m, action))
}

impl MatchFilter {
    /// Parse a configuration.
    pub fn new(args: &Args) -> Result<Self, ElementError> {
        let (expr, action) = parse(args)?;
        Ok(MatchFilter {
            expr,
            action,
            matched: 0,
            unmatched: 0,
        })
    }
}

impl Element for MatchFilter {
    fn handlers(&self) -> Vec<Handler> {
        HANDLERS.to_vec()
    }

    fn process(&mut self, _cx: &mut Ctx<'_>, pkt: &mut Packet) -> Verdict {
        let hit = self.expr.matches(&pkt.meta.flow);
        if hit {
            self.matched = self.matched.wrapping_add(1);
        } else {
            self.unmatched = self.unmatched.wrapping_add(1);
        }
        match (hit, self.action) {
            (true, Action::Pass) | (false, Action::Drop) => Verdict::Continue,
            _ => Verdict::Drop,
        }
    }

    fn configure(&mut self, args: &Args) -> Result<(), ElementError> {
        (self.expr, self.action) = parse(args)?;
        Ok(())
    }

    fn control(&mut self, request: &str) -> Result<String, ElementError> {
        if util::is_reset(request) {
            self.matched = 0;
            self.unmatched = 0;
        } else {
            self.configure(&Args::parse(request))?;
        }
        Ok("ok".into())
    }

    fn report(&self) -> serde_json::Value {
        serde_json::json!({
            "action": match self.action { Action::Pass => "pass", Action::Drop => "drop" },
            "match": serde_json::to_value(&self.expr).unwrap_or(serde_json::Value::Null),
            "matched": self.matched,
            "unmatched": self.unmatched,
        })
    }
}

/// The handlers (see the module header): the class documents them and
/// every instance answers [`Element::handlers`] with them.
const HANDLERS: &[Handler] = &[
    Handler::read("matched", "packets that matched"),
    Handler::read("unmatched", "packets that did not match"),
    Handler::read("match", "the expression and action"),
    Handler::write(
        "reset",
        "control `reset`: zero the counts; any other request is a new configuration",
    ),
];

fn doc() -> ClassDoc {
    util::doc(
        "keep (or drop) packets whose 6-tuple matches an expression",
        "[proto=udp|tcp|icmp|icmpv6|N] [src=PREFIX] [dst=PREFIX] [sport=N|LO-HI] [dport=N|LO-HI] \
         [in_port=N] [action=pass|drop]; pass (default): matching continue, others dropped; \
         drop: matching dropped, others continue",
        HANDLERS,
    )
}

/// The `match` class.
pub fn class() -> ElementClass {
    ElementClass::native(CLASS, doc(), |a| Ok(Box::new(MatchFilter::new(a)?)))
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use weft_dataplane::Verdict;
    use weft_packet::build;

    fn verdict(config: &str, frame: &[u8], in_port: u16) -> Verdict {
        let mut h = Harness::default();
        let mut e = make("match", config);
        let mut p = weft_packet::Packet::from_bytes(frame);
        p.meta.in_port = in_port;
        reparse(&mut p);
        h.run(e.as_mut(), 0, &mut p)
    }

    #[test]
    fn pass_keeps_only_matching() {
        let cfg = "proto=udp dport=6060 src=10.0.0.0/8 dst=10.0.1.2 sport=1000-2000 in_port=1";
        let f = v4(1500, 6060, b"x");
        assert_eq!(verdict(cfg, &f, 1), Verdict::Continue);
        assert_eq!(verdict(cfg, &f, 2), Verdict::Drop, "in_port");
        assert_eq!(
            verdict(cfg, &v4(999, 6060, b"x"), 1),
            Verdict::Drop,
            "sport below range"
        );
        assert_eq!(
            verdict(cfg, &v4(2000, 6060, b"x"), 1),
            Verdict::Continue,
            "range is inclusive"
        );
        assert_eq!(verdict(cfg, &v4(1500, 6061, b"x"), 1), Verdict::Drop, "dport");
        assert_eq!(verdict(cfg, &v6(1500, 6060, b"x"), 1), Verdict::Drop, "family");
        let t = build::tcp4([2; 6], [4; 6], A4, B4, 1500, 6060, 0, b"x");
        assert_eq!(verdict(cfg, &t, 1), Verdict::Drop, "proto");
        let other = build::udp4(
            [2; 6],
            [4; 6],
            A4,
            std::net::Ipv4Addr::new(10, 0, 1, 3),
            1500,
            6060,
            64,
            b"x",
        );
        assert_eq!(verdict(cfg, &other, 1), Verdict::Drop, "dst host");
        assert_eq!(verdict("proto=17", &f, 0), Verdict::Continue, "numeric protocol");
        assert_eq!(
            verdict("src=2001:db8::/32 proto=udp", &v6(1, 2, b""), 0),
            Verdict::Continue
        );
        assert_eq!(verdict("", &t, 0), Verdict::Continue, "empty expression matches all");
    }

    #[test]
    fn drop_action_inverts() {
        let f = v4(1, 6060, b"x");
        assert_eq!(verdict("dport=6060 action=drop", &f, 0), Verdict::Drop);
        assert_eq!(verdict("dport=6061 action=drop", &f, 0), Verdict::Continue);
    }

    #[test]
    fn counts_and_config_errors() {
        let mut h = Harness::default();
        let mut e = make("match", "proto=udp");
        let mut p = pkt(&v4(1, 2, b""));
        h.run(e.as_mut(), 0, &mut p);
        let mut t = pkt(&build::tcp4([2; 6], [4; 6], A4, B4, 1, 2, 0, b""));
        h.run(e.as_mut(), 0, &mut t);
        assert_eq!(e.report()["matched"], 1);
        assert_eq!(e.report()["unmatched"], 1);
        assert_eq!(e.report()["match"]["proto"], 17);
        for bad in [
            "proto=sctpx",
            "src=10.0.0.0/33",
            "dst=nonsense",
            "sport=5-1",
            "dport=70000",
            "action=maybe",
            "colour=red",
            "udp",
            "src=10.0.0.0/8 dst=2001:db8::/32",
        ] {
            assert!(rejects("match", bad), "{bad:?} should be rejected");
        }
    }
}
