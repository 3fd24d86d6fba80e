//! `weft emu run TOPOLOGY`: load a topology, run its `[[traffic]]` (or, if
//! it has none, a ping between every pair of hosts), and report what every
//! host received, what every node dropped and its instances reported, and
//! what crossed every link.

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use crate::topology::{TrafficKind, TrafficSpec};
use crate::{EmuError, Emulator, LinkCounters};

/// What one `[[traffic]]` entry achieved.
#[derive(Clone, Debug, Serialize)]
pub struct TrafficResult {
    /// Sending host.
    pub from: String,
    /// Destination as written.
    pub to: String,
    /// Destination address.
    pub dst: IpAddr,
    /// `ping`, `udp` or `tcp`.
    pub kind: String,
    /// What `sent`, `received` and `lost` count: `packets` (ping: echo
    /// requests and replies; UDP: datagrams) or `bytes` (TCP).
    pub unit: &'static str,
    /// Packets (ping, UDP) or bytes (TCP) sent.
    pub sent: u64,
    /// Packets (ping, UDP) or bytes (TCP) that arrived.
    pub received: u64,
    /// Sent but not received.
    pub lost: u64,
    /// Datagrams that arrived after a later one (UDP).
    pub out_of_order: u64,
    /// Mean RTT (ping) in ms, or completion time (TCP) in ms.
    pub ms: Option<f64>,
}

/// What one host received.
#[derive(Clone, Debug, Default, Serialize)]
pub struct HostReport {
    /// Host name.
    pub name: String,
    /// UDP datagrams received.
    pub udp_packets: u64,
    /// UDP payload bytes received.
    pub udp_bytes: u64,
    /// Datagrams of flows to this host that never arrived.
    pub udp_lost: u64,
    /// Flow datagrams that arrived after a later one.
    pub order_violations: u64,
    /// TCP bytes received.
    pub tcp_bytes: u64,
    /// TCP bytes that did not match the test pattern.
    pub tcp_errors: u64,
    /// Echo replies received.
    pub ping_replies: u64,
}

/// An instance's report on a node.
#[derive(Clone, Debug, Serialize)]
pub struct InstanceReport {
    /// `#N`.
    pub id: String,
    /// Class.
    pub class: String,
    /// The reporting port's answer.
    pub report: serde_json::Value,
}

/// What one node did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct NodeReport {
    /// Node name.
    pub name: String,
    /// Drops by reason (non-zero only).
    pub drops: BTreeMap<String, u64>,
    /// Instances and their reports.
    pub instances: Vec<InstanceReport>,
}

/// The result of [`run_cli`]. `Display` prints a plain-text table, or JSON
/// when `json` is set.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Topology file.
    pub topology: String,
    /// Virtual time run, ms.
    pub virtual_ms: f64,
    /// Per traffic entry.
    pub traffic: Vec<TrafficResult>,
    /// Per host.
    pub hosts: Vec<HostReport>,
    /// Per node.
    pub nodes: Vec<NodeReport>,
    /// Per link.
    pub links: Vec<LinkCounters>,
    /// Print as JSON.
    #[serde(skip)]
    pub json: bool,
}

enum Started {
    Ping(usize),
    Udp(u32),
    Tcp(usize),
}

fn resolve(emu: &Emulator, t: &TrafficSpec) -> Result<IpAddr, EmuError> {
    if let Ok(a) = t.to.parse::<IpAddr>() {
        return Ok(a);
    }
    let to = emu
        .try_host(&t.to)
        .ok_or_else(|| EmuError::Traffic(format!("to {:?}: no such host or address", t.to)))?;
    let from = emu
        .try_host(&t.from)
        .ok_or_else(|| EmuError::Traffic(format!("from {:?}: no such host", t.from)))?;
    match (from.addr(), to.addr(), from.addr6(), to.addr6()) {
        (Some(_), Some(a), _, _) => Ok(IpAddr::V4(a)),
        (_, _, Some(_), Some(a)) => Ok(IpAddr::V6(a)),
        _ => Err(EmuError::Traffic(format!(
            "{} and {} share no address family",
            t.from, t.to
        ))),
    }
}

/// Load the topology at `path`, run its traffic for `duration` of virtual
/// time (each entry starts at its `start_ms`), and report. Without
/// `[[traffic]]`, every host pings every other host three times.
pub fn run_cli(path: &Path, duration: Duration, json: bool) -> Result<Report, EmuError> {
    let mut emu = Emulator::load(path)?;
    let mut traffic = emu.topology().traffic.clone();
    if traffic.is_empty() {
        let names = emu.host_names();
        for a in &names {
            for b in &names {
                if a != b {
                    traffic.push(TrafficSpec {
                        from: a.clone(),
                        to: b.clone(),
                        kind: TrafficKind::Ping,
                        dport: None,
                        rate: Some(5.0),
                        bytes: None,
                        size: None,
                        start_ms: 0.0,
                        duration_ms: Some(600.0),
                    });
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..traffic.len()).collect();
    order.sort_by(|&a, &b| traffic[a].start_ms.total_cmp(&traffic[b].start_ms));
    // Receivers listen before anything is sent.
    for t in &traffic {
        let dst = resolve(&emu, t)?;
        let Some(rx) = emu.host_by_addr(dst).map(|h| h.name().to_string()) else {
            continue;
        };
        let h = emu.host_mut(&rx);
        match t.kind {
            TrafficKind::Udp => h.udp_bind(t.dport.unwrap_or(7000))?,
            TrafficKind::Tcp => h.tcp_listen(t.dport.unwrap_or(5001))?,
            TrafficKind::Ping => {}
        }
    }
    let mut started: Vec<Option<(IpAddr, Started)>> = (0..traffic.len()).map(|_| None).collect();
    for i in order {
        let t = &traffic[i];
        let start = Duration::from_secs_f64(t.start_ms.max(0.0) / 1000.0);
        if start > emu.now() {
            emu.run_for(start - emu.now());
        }
        let dst = resolve(&emu, t)?;
        let dur = Duration::from_secs_f64(t.duration_ms.unwrap_or(1000.0).max(0.0) / 1000.0);
        let h = emu
            .try_host_mut(&t.from)
            .ok_or_else(|| EmuError::Traffic(format!("from {:?}: no such host", t.from)))?;
        let s = match t.kind {
            TrafficKind::Ping => {
                let rate = t.rate.unwrap_or(1.0).max(0.001);
                let count = (dur.as_secs_f64() * rate).round().clamp(1.0, 65535.0) as u16;
                Started::Ping(h.ping(dst, count, Duration::from_secs_f64(1.0 / rate))?.0)
            }
            TrafficKind::Udp => {
                let f = h.udp_flow(
                    dst,
                    t.dport.unwrap_or(7000),
                    t.rate.unwrap_or(100.0),
                    t.size.unwrap_or(64),
                    dur,
                )?;
                Started::Udp(f.0)
            }
            TrafficKind::Tcp => Started::Tcp(
                h.tcp_send(dst, t.dport.unwrap_or(5001), t.bytes.unwrap_or(1_000_000))?
                    .0,
            ),
        };
        started[i] = Some((dst, s));
    }
    if duration > emu.now() {
        emu.run_for(duration - emu.now());
    }

    // Per traffic entry.
    let mut results = Vec::new();
    let mut lost_to: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (t, s) in traffic.iter().zip(started) {
        let Some((dst, s)) = s else { continue };
        let from = emu.host(&t.from);
        let rx = emu.host_by_addr(dst);
        let mut r = TrafficResult {
            from: t.from.clone(),
            to: t.to.clone(),
            dst,
            kind: String::new(),
            unit: "packets",
            sent: 0,
            received: 0,
            lost: 0,
            out_of_order: 0,
            ms: None,
        };
        match s {
            Started::Ping(id) => {
                r.kind = "ping".into();
                if let Some(p) = from.ping_result(crate::PingId(id)) {
                    r.sent = p.sent as u64;
                    r.received = p.replies.len() as u64;
                    r.ms = p.avg_rtt_ns().map(|n| n as f64 / 1e6);
                }
            }
            Started::Udp(id) => {
                r.kind = "udp".into();
                if let Some(f) = from.flow(crate::FlowId(id)) {
                    r.sent = f.sent;
                    let src_ok = |a: IpAddr| match a {
                        IpAddr::V4(v) => from.addr() == Some(v),
                        IpAddr::V6(v) => from.addr6() == Some(v),
                    };
                    if let Some(rx) = rx {
                        for fr in rx.flows_received() {
                            if fr.sport == f.sport && fr.flow == f.id && fr.src.is_some_and(src_ok) {
                                r.received = fr.packets - fr.duplicates;
                                r.out_of_order = fr.out_of_order;
                            }
                        }
                        let e = lost_to.entry(rx.name().to_string()).or_default();
                        e.0 += f.sent.saturating_sub(r.received);
                        e.1 += r.out_of_order;
                    }
                }
            }
            Started::Tcp(id) => {
                r.kind = "tcp".into();
                r.unit = "bytes";
                if let Some(x) = from.transfer(crate::TransferId(id)) {
                    r.sent = x.queued;
                    r.ms = x.acked_ns.map(|a| (a - x.started_ns) as f64 / 1e6);
                    if let Some(rx) = rx {
                        r.received = rx
                            .tcp_received()
                            .iter()
                            .filter(|c| c.peer_port == x.sport && c.port == x.dport)
                            .map(|c| c.bytes)
                            .sum();
                    }
                }
            }
        }
        r.lost = r.sent.saturating_sub(r.received);
        results.push(r);
    }

    let hosts = emu
        .host_names()
        .iter()
        .map(|n| {
            let h = emu.host(n);
            let (lost, ooo) = lost_to.get(n).copied().unwrap_or((0, 0));
            HostReport {
                name: n.clone(),
                udp_packets: h.udp_received().len() as u64,
                udp_bytes: h.udp_received().iter().map(|d| d.bytes as u64).sum(),
                udp_lost: lost,
                order_violations: ooo,
                tcp_bytes: h.tcp_received().iter().map(|c| c.bytes).sum(),
                tcp_errors: h.tcp_received().iter().map(|c| c.pattern_errors).sum(),
                ping_replies: h.pings().iter().map(|p| p.replies.len() as u64).sum(),
            }
        })
        .collect();
    let nodes = emu
        .node_names()
        .iter()
        .map(|n| {
            let node = emu.node(n);
            NodeReport {
                name: n.clone(),
                drops: node
                    .drops()
                    .into_iter()
                    .filter(|(_, v)| *v > 0)
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
                instances: node
                    .instances()
                    .into_iter()
                    .map(|i| InstanceReport {
                        id: i.id.to_string(),
                        class: i.class.clone(),
                        report: node.report(i.id).unwrap_or(serde_json::Value::Null),
                    })
                    .collect(),
            }
        })
        .collect();
    Ok(Report {
        topology: path.display().to_string(),
        virtual_ms: emu.now_ns() as f64 / 1e6,
        traffic: results,
        hosts,
        nodes,
        links: emu.links(),
        json,
    })
}

/// Printed under the TRAFFIC table.
pub const TRAFFIC_LEGEND: &str = "\
SENT, RECEIVED, LOST count UNIT: ping echo requests and their replies, udp datagrams, tcp bytes.
REORDER: udp datagrams that arrived after a later one. MS: mean round-trip time (ping),
time until the last byte was acknowledged (tcp).";

/// Printed under the HOSTS table.
pub const HOSTS_LEGEND: &str = "\
What each host received. LOST, REORDER: datagrams of udp flows to the host that never arrived,
that arrived after a later one. TCP ERR: bytes unlike the test pattern. PONGS: echo replies.";

/// Printed under the LINKS table.
pub const LINKS_LEGEND: &str = "\
PKTS count Ethernet frames, BYTES their bytes (headers included). Frames the link dropped,
both directions together: LOSS by its `loss` rate, QUEUE as its transmit queue was full
(`queue` frames), MTU as larger than its `mtu`.";

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.json {
            let s = serde_json::to_string_pretty(self).map_err(|_| fmt::Error)?;
            return writeln!(f, "{s}");
        }
        writeln!(
            f,
            "topology {}  ({:.1} ms of virtual time)",
            self.topology, self.virtual_ms
        )?;
        if !self.traffic.is_empty() {
            writeln!(f, "\nTRAFFIC")?;
            writeln!(
                f,
                "{:<10} {:<24} {:<5} {:<7} {:>10} {:>10} {:>8} {:>8} {:>10}",
                "FROM", "TO", "KIND", "UNIT", "SENT", "RECEIVED", "LOST", "REORDER", "MS"
            )?;
            for t in &self.traffic {
                writeln!(
                    f,
                    "{:<10} {:<24} {:<5} {:<7} {:>10} {:>10} {:>8} {:>8} {:>10}",
                    t.from,
                    format!("{} ({})", t.to, t.dst),
                    t.kind,
                    t.unit,
                    t.sent,
                    t.received,
                    t.lost,
                    t.out_of_order,
                    t.ms.map(|m| format!("{m:.3}")).unwrap_or_else(|| "-".into())
                )?;
            }
            writeln!(f, "{TRAFFIC_LEGEND}")?;
        }
        writeln!(f, "\nHOSTS")?;
        writeln!(
            f,
            "{:<10} {:>9} {:>11} {:>8} {:>8} {:>11} {:>8} {:>8}",
            "HOST", "UDP PKTS", "UDP BYTES", "LOST", "REORDER", "TCP BYTES", "TCP ERR", "PONGS"
        )?;
        for h in &self.hosts {
            writeln!(
                f,
                "{:<10} {:>9} {:>11} {:>8} {:>8} {:>11} {:>8} {:>8}",
                h.name,
                h.udp_packets,
                h.udp_bytes,
                h.udp_lost,
                h.order_violations,
                h.tcp_bytes,
                h.tcp_errors,
                h.ping_replies
            )?;
        }
        writeln!(f, "{HOSTS_LEGEND}")?;
        writeln!(f, "\nNODES")?;
        for n in &self.nodes {
            let drops: Vec<String> = n.drops.iter().map(|(k, v)| format!("{k}={v}")).collect();
            writeln!(
                f,
                "{:<10} drops: {}",
                n.name,
                if drops.is_empty() {
                    "none".into()
                } else {
                    drops.join(" ")
                }
            )?;
            for i in &n.instances {
                writeln!(
                    f,
                    "{:<10}   {}#{} {}",
                    "",
                    i.class,
                    i.id.trim_start_matches('#'),
                    i.report
                )?;
            }
        }
        writeln!(f, "\nLINKS")?;
        writeln!(
            f,
            "{:<16} {:>10} {:>12} {:>10} {:>12} {:>8} {:>8} {:>6}",
            "LINK", "A>B PKTS", "A>B BYTES", "B>A PKTS", "B>A BYTES", "LOSS", "QUEUE", "MTU"
        )?;
        for l in &self.links {
            let t = l.total();
            writeln!(
                f,
                "{:<16} {:>10} {:>12} {:>10} {:>12} {:>8} {:>8} {:>6}",
                l.name,
                l.a_to_b.frames,
                l.a_to_b.bytes,
                l.b_to_a.frames,
                l.b_to_a.bytes,
                t.dropped_loss,
                t.dropped_queue,
                t.dropped_mtu
            )?;
        }
        writeln!(f, "{LINKS_LEGEND}")?;
        Ok(())
    }
}
