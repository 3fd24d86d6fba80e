//! `GET /v1/metrics`: a node's counters in the Prometheus text exposition
//! format (version 0.0.4), written by `prometheus-client`, which escapes
//! label values and writes each family's `HELP` and `TYPE` once, with the
//! family's samples together.
//!
//! **Decision: the engine exposes counters as data, this crate renders
//! them.** `weft-dataplane` knows nothing about HTTP or exposition formats;
//! a [`NodeCounters`] snapshot is taken on the node's thread from its
//! public accessors (`drop_count`, `ports`, `instances`,
//! `icmp_errors_sent`) and rendered here, off that thread, together with
//! the runner's port-driver counters ([`PortIo`]).
//!
//! Families (names as before the move to `prometheus-client`; counters get
//! the `_total` suffix):
//!
//! | family | labels |
//! |---|---|
//! | `weft_drops_total` | `node`, `reason` (every reason, zeros too) |
//! | `weft_port_packets_total`, `weft_port_bytes_total` | `node`, `port`, `dir` (`rx`/`tx`) |
//! | `weft_instance_packets_total`, `weft_instance_dropped_total` | `node`, `instance` (`#N`), `class` |
//! | `weft_icmp_errors_sent_total` | `node` |
//! | `weft_io_packets_total` | `port`, `kind`, `dir` (nodes with port drivers) |
//! | `weft_io_drops_total` | `port`, `reason` (nodes with port drivers) |

use crate::runner::PortIo;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use weft_dataplane::{DropReason, Node};

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// One port's engine counters.
#[derive(Clone, Debug)]
pub struct PortCounters {
    /// Port name.
    pub name: String,
    /// Frames and bytes received and queued for sending.
    pub stats: weft_dataplane::node::PortStats,
}

/// One instance's engine counters.
#[derive(Clone, Debug)]
pub struct InstanceCounters {
    /// `#N`.
    pub id: String,
    /// Its class.
    pub class: String,
    /// Packets handed to it.
    pub packets: u64,
    /// Packets it dropped.
    pub dropped: u64,
}

/// A node's counters at one moment, as data: taken on the node's thread
/// ([`NodeCounters::of`]), rendered elsewhere ([`render`]).
#[derive(Clone, Debug)]
pub struct NodeCounters {
    /// The node's name.
    pub node: String,
    /// Drops by reason, every reason.
    pub drops: Vec<(&'static str, u64)>,
    /// Per port.
    pub ports: Vec<PortCounters>,
    /// Per instance.
    pub instances: Vec<InstanceCounters>,
    /// ICMP errors the node sent.
    pub icmp_errors_sent: u64,
}

impl NodeCounters {
    /// Read `n`'s counters.
    pub fn of(n: &Node) -> NodeCounters {
        NodeCounters {
            node: n.name().to_string(),
            drops: DropReason::ALL.iter().map(|r| (r.as_str(), n.drop_count(*r))).collect(),
            ports: n
                .ports()
                .into_iter()
                .map(|p| PortCounters {
                    name: p.cfg.name,
                    stats: p.stats,
                })
                .collect(),
            instances: n
                .instances()
                .into_iter()
                .map(|i| InstanceCounters {
                    id: i.id.to_string(),
                    class: i.class,
                    packets: i.stats.packets,
                    dropped: i.stats.dropped,
                })
                .collect(),
            icmp_errors_sent: n.icmp_errors_sent(),
        }
    }
}

/// The snapshot as a `prometheus-client` collector: constant counters,
/// encoded in a fixed order (a `Family` would order series by hash).
#[derive(Debug)]
struct Snapshot {
    node: NodeCounters,
    io: Vec<PortIo>,
}

/// One counter family: its name (without `_total`), help, and samples.
fn family<'a, const N: usize>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = ([(&'static str, &'a str); N], u64)>,
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in samples {
        m.encode_family(&labels)?
            .encode_counter::<NoLabelSet, _, u64>(&v, None)?;
    }
    Ok(())
}

impl Collector for Snapshot {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let n = &self.node;
        let node = n.node.as_str();
        family(
            &mut enc,
            "weft_drops",
            "Packets dropped by the node, by reason.",
            n.drops.iter().map(|(r, v)| ([("node", node), ("reason", *r)], *v)),
        )?;
        let dirs = |f: fn(&PortCounters) -> (u64, u64)| {
            n.ports.iter().flat_map(move |p| {
                let (rx, tx) = f(p);
                [
                    ([("node", node), ("port", p.name.as_str()), ("dir", "rx")], rx),
                    ([("node", node), ("port", p.name.as_str()), ("dir", "tx")], tx),
                ]
            })
        };
        family(
            &mut enc,
            "weft_port_packets",
            "Frames received (rx) and queued for sending (tx) by each port of the node.",
            dirs(|p| (p.stats.rx_packets, p.stats.tx_packets)),
        )?;
        family(
            &mut enc,
            "weft_port_bytes",
            "Bytes received (rx) and queued for sending (tx) by each port of the node.",
            dirs(|p| (p.stats.rx_bytes, p.stats.tx_bytes)),
        )?;
        let inst = |f: fn(&InstanceCounters) -> u64| {
            n.instances.iter().map(move |i| {
                (
                    [("node", node), ("instance", i.id.as_str()), ("class", i.class.as_str())],
                    f(i),
                )
            })
        };
        family(
            &mut enc,
            "weft_instance_packets",
            "Packets handed to each element instance.",
            inst(|i| i.packets),
        )?;
        family(
            &mut enc,
            "weft_instance_dropped",
            "Packets each element instance dropped (verdict drop).",
            inst(|i| i.dropped),
        )?;
        family(
            &mut enc,
            "weft_icmp_errors_sent",
            "ICMP and ICMPv6 error messages the node sent.",
            [([("node", node)], n.icmp_errors_sent)],
        )?;
        if self.io.is_empty() {
            return Ok(());
        }
        family(
            &mut enc,
            "weft_io_packets",
            "Frames moved by port drivers: received (rx) and accepted by the kernel for sending (tx).",
            self.io.iter().flat_map(|p| {
                [
                    (
                        [("port", p.port.as_str()), ("kind", p.kind), ("dir", "rx")],
                        p.counters.rx_packets,
                    ),
                    (
                        [("port", p.port.as_str()), ("kind", p.kind), ("dir", "tx")],
                        p.counters.tx_packets,
                    ),
                ]
            }),
        )?;
        family(
            &mut enc,
            "weft_io_drops",
            "Frames port drivers dropped, by reason.",
            self.io.iter().flat_map(|p| {
                p.counters
                    .drops
                    .iter()
                    .map(|(r, v)| ([("port", p.port.as_str()), ("reason", *r)], *v))
            }),
        )
    }
}

/// The Prometheus text of a node's counters and its port drivers' (none
/// for a node without drivers).
pub fn render(node: NodeCounters, io: Vec<PortIo>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshot { node, io }));
    let mut out = String::new();
    // Writing into a String cannot fail; an error would mean a bug in the
    // encoder, and an empty page is the honest answer then.
    if prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).is_err() {
        out.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_io::IoCounters;

    fn counters(node: &str) -> NodeCounters {
        NodeCounters {
            node: node.into(),
            drops: vec![("ttl-exceeded", 3), ("no-route", 0)],
            ports: vec![
                PortCounters {
                    name: "eth0".into(),
                    stats: weft_dataplane::node::PortStats {
                        rx_packets: 1,
                        rx_bytes: 60,
                        tx_packets: 2,
                        tx_bytes: 120,
                    },
                },
                PortCounters {
                    name: "eth1".into(),
                    stats: Default::default(),
                },
            ],
            instances: vec![InstanceCounters {
                id: "#1".into(),
                class: "counter".into(),
                packets: 5,
                dropped: 1,
            }],
            icmp_errors_sent: 7,
        }
    }

    /// Each family's lines together: `# HELP`, `# TYPE`, then its samples.
    fn families(text: &str) -> Vec<(String, Vec<String>)> {
        let mut v: Vec<(String, Vec<String>)> = Vec::new();
        for l in text.lines() {
            if let Some(rest) = l.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap().to_string();
                assert!(v.iter().all(|(n, _)| *n != name), "{name} twice in\n{text}");
                v.push((name, vec![]));
            } else if let Some(rest) = l.strip_prefix("# TYPE ") {
                let (name, t) = rest.split_once(' ').unwrap();
                assert_eq!((name, t), (v.last().unwrap().0.as_str(), "counter"), "{text}");
            } else {
                let name = l.split(['{', ' ']).next().unwrap();
                let last = v.last_mut().unwrap();
                assert_eq!(name, last.0, "a sample outside its family in\n{text}");
                last.1.push(l.to_string());
            }
        }
        v
    }

    #[test]
    fn every_family_once_with_help_and_type_and_its_samples_together() {
        let mut io = IoCounters {
            rx_packets: 9,
            tx_packets: 8,
            ..Default::default()
        };
        io.drop_n("wrong-peer", 4);
        let text = render(
            counters("r1"),
            vec![PortIo {
                port: "l0".into(),
                kind: "vxlan",
                describe: String::new(),
                counters: io,
            }],
        );
        let f = families(&text);
        let names: Vec<&str> = f.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "weft_drops_total",
                "weft_port_packets_total",
                "weft_port_bytes_total",
                "weft_instance_packets_total",
                "weft_instance_dropped_total",
                "weft_icmp_errors_sent_total",
                "weft_io_packets_total",
                "weft_io_drops_total"
            ]
        );
        assert!(
            text.contains("weft_drops_total{node=\"r1\",reason=\"ttl-exceeded\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("weft_port_bytes_total{node=\"r1\",port=\"eth0\",dir=\"tx\"} 120\n"),
            "{text}"
        );
        assert!(
            text.contains("weft_instance_dropped_total{node=\"r1\",instance=\"#1\",class=\"counter\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("weft_io_drops_total{port=\"l0\",reason=\"wrong-peer\"} 4\n"),
            "{text}"
        );
        assert_eq!(f[1].1.len(), 4, "two ports, two directions");
        // No port drivers: no io families.
        assert_eq!(families(&render(counters("r1"), vec![])).len(), 6);
    }

    #[test]
    fn label_values_are_escaped() {
        let text = render(counters("a\"b\nc\\d"), vec![]);
        assert!(
            text.contains("weft_icmp_errors_sent_total{node=\"a\\\"b\\nc\\\\d\"} 7\n"),
            "{text}"
        );
        families(&text);
    }
}
