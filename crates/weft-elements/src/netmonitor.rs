//! `netmonitor` — NetServ's NetMonitor: count packets per (source address,
//! destination address, TTL / hop limit), which shows who sends what and
//! from how many hops away.
//!
//! * **Configuration:** `[MAX]` or `max=MAX` — most keys kept (default
//!   65536, at most 1048576). When the table is full, packets of new keys are
//!   counted in `overflow` instead, so a flood of spoofed sources cannot
//!   exhaust memory; keys already present keep counting.
//! * **Ports:** one in, one out; every packet continues.
//! * **Handlers:**
//!   * `flows` (read, report) — `[{"src","dst","ttl","packets","bytes"}]`,
//!     most packets first (ties in address order).
//!   * `overflow` (read, report) — packets and bytes of keys not kept.
//!   * `non_ip` (read, report) — packets that are not IP (ARP, …).
//!   * `reset` (write, control `reset`) — empty the table; any other request
//!     is a new configuration (a smaller `max` takes effect for new keys).
//! * **State:** the table and counts carry over to a successor
//!   `netmonitor` (up to its own `max`; the rest goes to `overflow`).
//!
//! Report: `{"max":M,"size":N,"flows":[…],"overflow":{…},"non_ip":N}`.

use crate::util::{self, Tally};
use ahash::AHashMap;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use weft_dataplane::{Args, ClassDoc, Ctx, Element, ElementClass, ElementError, Handler, Verdict};
use weft_packet::flow::Family;
use weft_packet::Packet;

const CLASS: &str = "netmonitor";
/// Default table bound: 65536 keys of ~64 bytes (key, counts, hash-table
/// overhead) is a few MiB per instance.
pub const DEFAULT_MAX: usize = 65536;
/// Largest `max` accepted.
pub const MAX_MAX: usize = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
}

#[derive(Serialize, Deserialize)]
struct Row {
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    packets: u64,
    bytes: u64,
}

#[derive(Serialize, Deserialize)]
struct State {
    flows: Vec<Row>,
    overflow: Tally,
    non_ip: u64,
}

/// The `netmonitor` element.
#[derive(Debug)]
pub struct NetMonitor {
    max: usize,
    table: AHashMap<Key, Tally>,
    overflow: Tally,
    non_ip: u64,
}

fn parse(args: &Args) -> Result<usize, ElementError> {
    util::check_args(args, CLASS, &["max"], 1)?;
    let max = util::get_u64(args, CLASS, "max", 0)?.map_or(DEFAULT_MAX, |m| m as usize);
    if max == 0 || max > MAX_MAX {
        return Err(ElementError::Config(format!("{CLASS}: max must be 1..={MAX_MAX}")));
    }
    Ok(max)
}

impl NetMonitor {
    /// Parse a configuration.
    pub fn new(args: &Args) -> Result<Self, ElementError> {
        Ok(NetMonitor {
            max: parse(args)?,
            table: AHashMap::new(),
            overflow: Tally::default(),
            non_ip: 0,
        })
    }

    fn key(pkt: &Packet) -> Option<Key> {
        let f = &pkt.meta.flow;
        let ttl_at = match f.family {
            Family::V4 => 8,
            Family::V6 => 7,
            Family::None => return None,
        };
        let ttl = *pkt.data().get(pkt.meta.l3 as usize + ttl_at)?;
        Some(Key {
            src: f.src_addr()?,
            dst: f.dst_addr()?,
            ttl,
        })
    }

    fn count(&mut self, key: Key, t: Tally) {
        if let Some(v) = self.table.get_mut(&key) {
            v.packets = v.packets.wrapping_add(t.packets);
            v.bytes = v.bytes.wrapping_add(t.bytes);
        } else if self.table.len() < self.max {
            self.table.insert(key, t);
        } else {
            self.overflow.packets = self.overflow.packets.wrapping_add(t.packets);
            self.overflow.bytes = self.overflow.bytes.wrapping_add(t.bytes);
        }
    }

    fn rows(&self) -> Vec<Row> {
        let mut v: Vec<(&Key, &Tally)> = self.table.iter().collect();
        v.sort_by(|a, b| b.1.packets.cmp(&a.1.packets).then_with(|| a.0.cmp(b.0)));
        v.into_iter()
            .map(|(k, t)| Row {
                src: k.src,
                dst: k.dst,
                ttl: k.ttl,
                packets: t.packets,
                bytes: t.bytes,
            })
            .collect()
    }
}

impl Element for NetMonitor {
    fn handlers(&self) -> Vec<Handler> {
        HANDLERS.to_vec()
    }

    fn process(&mut self, _cx: &mut Ctx<'_>, pkt: &mut Packet) -> Verdict {
        match Self::key(pkt) {
            Some(k) => self.count(
                k,
                Tally {
                    packets: 1,
                    bytes: pkt.len() as u64,
                },
            ),
            None => self.non_ip = self.non_ip.wrapping_add(1),
        }
        Verdict::Continue
    }

    fn configure(&mut self, args: &Args) -> Result<(), ElementError> {
        self.max = parse(args)?;
        Ok(())
    }

    fn control(&mut self, request: &str) -> Result<String, ElementError> {
        if util::is_reset(request) {
            self.table = AHashMap::new();
            self.overflow = Tally::default();
            self.non_ip = 0;
        } else {
            self.configure(&Args::parse(request))?;
        }
        Ok("ok".into())
    }

    fn report(&self) -> serde_json::Value {
        serde_json::json!({
            "max": self.max,
            "size": self.table.len(),
            "flows": serde_json::to_value(self.rows()).unwrap_or(serde_json::Value::Null),
            "overflow": self.overflow,
            "non_ip": self.non_ip,
        })
    }

    fn export_state(&mut self) -> Option<serde_json::Value> {
        let s = State {
            flows: self.rows(),
            overflow: self.overflow,
            non_ip: self.non_ip,
        };
        serde_json::to_value(s).ok()
    }

    fn import_state(&mut self, state: serde_json::Value) -> Result<(), ElementError> {
        let s: State = serde_json::from_value(state).map_err(|e| ElementError::State(format!("{CLASS}: {e}")))?;
        self.table = AHashMap::new();
        self.overflow = s.overflow;
        self.non_ip = s.non_ip;
        // Rows come most-packets-first, so a smaller successor keeps the top.
        for r in s.flows {
            let key = Key {
                src: r.src,
                dst: r.dst,
                ttl: r.ttl,
            };
            self.count(
                key,
                Tally {
                    packets: r.packets,
                    bytes: r.bytes,
                },
            );
        }
        Ok(())
    }
}

/// The handlers (see the module header): the class documents them and
/// every instance answers [`Element::handlers`] with them.
const HANDLERS: &[Handler] = &[
    Handler::read("flows", "per-key packets and bytes, most packets first"),
    Handler::read("overflow", "packets and bytes of keys beyond max"),
    Handler::read("non_ip", "packets that are not IP"),
    Handler::write(
        "reset",
        "control `reset`: empty the table; any other request is a new configuration",
    ),
];

fn doc() -> ClassDoc {
    util::doc(
        "count packets per (source, destination, TTL/hop limit)",
        "[MAX] | max=MAX (keys kept, default 65536; packets of further keys count as overflow)",
        HANDLERS,
    )
}

/// The `netmonitor` class.
pub fn class() -> ElementClass {
    ElementClass::native(CLASS, doc(), |a| Ok(Box::new(NetMonitor::new(a)?)))
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use std::net::Ipv4Addr;
    use weft_dataplane::Verdict;
    use weft_packet::build;

    #[test]
    fn keys_by_addresses_and_ttl() {
        let mut h = Harness::default();
        let mut e = make("netmonitor", "");
        let c = Ipv4Addr::new(192, 0, 2, 7);
        let frames = [
            (build::udp4([2; 6], [4; 6], A4, B4, 1, 2, 64, b"a"), 3),
            (build::udp4([2; 6], [4; 6], A4, B4, 1, 2, 63, b"a"), 1),
            (build::udp4([2; 6], [4; 6], c, B4, 1, 2, 64, b"a"), 2),
            (build::udp6([2; 6], [4; 6], A6, B6, 1, 2, 7, b"a"), 4),
        ];
        for (f, n) in &frames {
            for _ in 0..*n {
                assert_eq!(h.run(e.as_mut(), 0, &mut pkt(f)), Verdict::Continue);
            }
        }
        let arp = build::arp(1, [1; 6], A4, [0; 6], B4, [0xff; 6]);
        h.run(e.as_mut(), 0, &mut pkt(&arp));

        let r = e.report();
        let flows = r["flows"].as_array().cloned().unwrap_or_default();
        assert_eq!(flows.len(), 4);
        let row = |i: usize| {
            (
                flows[i]["src"].as_str().unwrap_or("").to_string(),
                flows[i]["ttl"].as_u64().unwrap_or(0),
                flows[i]["packets"].as_u64().unwrap_or(0),
            )
        };
        assert_eq!(row(0), ("2001:db8::1".into(), 7, 4));
        assert_eq!(row(1), ("10.0.0.1".into(), 64, 3));
        assert_eq!(row(2), ("192.0.2.7".into(), 64, 2));
        assert_eq!(row(3), ("10.0.0.1".into(), 63, 1));
        assert_eq!(flows[1]["dst"], "10.0.1.2");
        assert_eq!(flows[1]["bytes"], 3 * 43);
        assert_eq!(r["non_ip"], 1);

        let state = e.export_state().expect("state");
        let mut next = make("netmonitor", "max=2");
        next.import_state(state).expect("import");
        let r = next.report();
        assert_eq!(r["size"], 2, "the successor keeps its own bound");
        assert_eq!(r["flows"][0]["packets"], 4);
        assert_eq!(r["overflow"]["packets"], 3, "the two smallest keys overflow");

        next.control("reset").expect("reset");
        assert_eq!(next.report()["size"], 0);
    }

    #[test]
    fn table_is_bounded() {
        let mut h = Harness::default();
        let mut e = make("netmonitor", "max=100");
        for i in 0..1000u32 {
            let src = Ipv4Addr::from(0x0a00_0000 + i);
            let f = build::udp4([2; 6], [4; 6], src, B4, 1, 2, 64, b"");
            h.run(e.as_mut(), 0, &mut pkt(&f));
        }
        // A kept key still counts after the table filled up.
        h.run(
            e.as_mut(),
            0,
            &mut pkt(&build::udp4(
                [2; 6],
                [4; 6],
                Ipv4Addr::from(0x0a00_0000),
                B4,
                1,
                2,
                64,
                b"",
            )),
        );
        let r = e.report();
        assert_eq!(r["size"], 100);
        assert_eq!(r["overflow"]["packets"], 900);
        assert_eq!(r["flows"][0]["packets"], 2);
        assert!(rejects("netmonitor", "max=0"));
        assert!(rejects("netmonitor", "max=99999999"));
    }
}
