//! # weft-elements — Weft's built-in native elements
//!
//! Trusted Rust elements compiled into the node. Each implements the element
//! contract of [`weft_dataplane::element`] and is documented in the manner of
//! Click's `counter.hh`: configuration, ports, handlers with their access.
//! The node registers every class [`classes`] returns.
//!
//! | class | does | configuration |
//! |---|---|---|
//! | [`counter`] | counts packets and bytes | none |
//! | [`tee`] | copies each packet out of a port | `PORT` \| `port=PORT` |
//! | [`forward`] | LANA's empty block: continue, or redirect | `[port=PORT]` |
//! | [`mod@drop`] | drops every packet | none |
//! | `match` | keeps (or drops) packets matching a 6-tuple expression | `[proto=…] [src=…] [dst=…] [sport=…] [dport=…] [in_port=…] [action=pass\|drop]` |
//! | [`ratelimit`] | token bucket in bytes/s | `RATE [BURST]` \| `rate=RATE [burst=BURST]` |
//! | [`netmonitor`] | NetServ's NetMonitor: packets per (src, dst, TTL) | `[max=N]` |
//! | [`layerdrop`] | thins a layered UDP stream to a rate, top layer first | `RATE [offset=N] [window=MS]` |
//! | [`encrypt`](crypto) | ESP tunnel mode (RFC 4303) with ChaCha20-Poly1305 (RFC 7634), any IP protocol | `key=HEX64 [spi=N] [esn=yes\|no] [src=ADDR dst=ADDR]` |
//! | [`decrypt`](crypto) | verifies (ICV, anti-replay window) and decrypts; drops everything else | `key=HEX64 [spi=N] [esn=yes\|no]` |
//!
//! Conventions shared by all: unknown configuration keys are errors; counts
//! are frame bytes (Ethernet header included); control `reset` zeroes an
//! element's counters and any other control request is a new configuration
//! (PromethOS' control port); a failed reconfiguration leaves the element
//! unchanged.
//!
//! **Architecture invariant:** elements see packets only through
//! `weft-packet` and the element contract. They never read a clock (time is
//! [`weft_dataplane::Ctx::now_ns`]), never do I/O, and never panic on packet
//! bytes, packet metadata or configuration.
#![warn(missing_docs)]
#![deny(unsafe_code)]

use weft_dataplane::ElementClass;

pub mod counter;
pub mod crypto;
pub mod drop;
pub mod esp;
pub mod forward;
pub mod layerdrop;
pub mod r#match;
pub mod netmonitor;
pub mod ratelimit;
pub mod tee;
mod udp;
mod util;

#[cfg(test)]
mod testutil;

pub use util::Tally;

/// Every built-in class, for the node to register.
pub fn classes() -> Vec<ElementClass> {
    vec![
        counter::class(),
        tee::class(),
        forward::class(),
        drop::class(),
        r#match::class(),
        ratelimit::class(),
        netmonitor::class(),
        layerdrop::class(),
        crypto::encrypt_class(),
        crypto::decrypt_class(),
    ]
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_class_is_listed_once_and_documented() {
        let cs = super::classes();
        let mut names: Vec<&str> = cs.iter().map(|c| c.name.as_str()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "counter",
                "decrypt",
                "drop",
                "encrypt",
                "forward",
                "layerdrop",
                "match",
                "netmonitor",
                "ratelimit",
                "tee"
            ]
        );
        for c in &cs {
            assert!(!c.doc.summary.is_empty(), "{}", c.name);
            assert!(!c.doc.config.is_empty(), "{}", c.name);
            assert!(!c.doc.handlers.is_empty(), "{}", c.name);
        }
    }

    /// Handlers are data (Click's `add_handlers`): each instance declares
    /// the handlers its class documents, and each read handler is a key of
    /// its report.
    #[test]
    fn every_element_declares_its_classs_handlers() {
        use weft_dataplane::element::Access;
        let key = "key=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
        let configs = [
            ("counter", ""),
            ("tee", "1"),
            ("forward", ""),
            ("drop", ""),
            ("match", "proto=udp"),
            ("ratelimit", "1000"),
            ("netmonitor", ""),
            ("layerdrop", "1000"),
            ("encrypt", key),
            ("decrypt", key),
        ];
        let classes = super::classes();
        assert_eq!(configs.len(), classes.len(), "a configuration for every class");
        for (name, config) in configs {
            let class = classes.iter().find(|c| c.name == name).expect(name);
            let e = class.create(&weft_dataplane::Args::parse(config)).expect(name);
            assert_eq!(e.handlers(), class.doc.handlers, "{name}");
            let report = e.report();
            for h in e.handlers().iter().filter(|h| h.access == Access::Read) {
                assert!(
                    report.get(h.name.as_ref()).is_some(),
                    "{name}: no {} in {report}",
                    h.name
                );
            }
        }
    }
}
