//! End hosts: a smoltcp interface (real ARP / neighbour discovery, IPv4,
//! IPv6, ICMP, UDP and TCP) on one emulated Ethernet interface, driven with
//! the emulator's virtual clock, plus small applications — ping, UDP flows,
//! TCP bulk transfers, traceroute — that record what the host got.
//!
//! Every command returns at once; progress happens as the emulator runs and
//! polls the host. What a host received is the thing tests assert on.

use ipnet::{Ipv4Net, Ipv6Net};
use serde::Serialize;
use smoltcp::iface::{Config, Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::phy::{self, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::socket::{icmp, tcp, udp};
use smoltcp::time::Instant;
use smoltcp::wire::{
    EthernetAddress, Icmpv4Packet, Icmpv4Repr, Icmpv6Packet, Icmpv6Repr, IpAddress, IpCidr, IpEndpoint,
    IpListenEndpoint,
};
use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::EmuError;

/// Magic at the start of a UDP flow payload.
const FLOW_MAGIC: &[u8; 4] = b"WEFT";
/// Flow payload header: magic, flow id (u32), sequence (u64), send time (u64).
pub const FLOW_HEADER: usize = 24;
/// Ping replies later than this after the last request are not waited for.
const PING_TIMEOUT_NS: u64 = 2_000_000_000;
/// How long traceroute waits for a hop to answer (traceroute's default is 5 s;
/// virtual time is cheap, but a silent hop still costs a wait).
const PROBE_TIMEOUT_NS: u64 = 1_000_000_000;
/// Traceroute's first destination port (as the classic tool).
const TRACE_BASE_PORT: u16 = 33434;
/// First ephemeral port (IANA dynamic range).
const EPHEMERAL: u16 = 49152;
/// TCP socket buffers: above 64 KiB so window scaling is used.
const TCP_BUF: usize = 256 * 1024;
/// UDP socket buffers, in datagrams; enough for a burst of a 10 kpps flow
/// waiting for ARP.
const UDP_SLOTS: usize = 1024;
/// Iterations of "applications → smoltcp" per poll before giving up for now.
const POLL_ROUNDS: usize = 64;

fn instant(ns: u64) -> Instant {
    Instant::from_micros((ns / 1000) as i64)
}

/// Byte `i` of a TCP test transfer.
#[inline]
pub fn pattern_byte(i: u64) -> u8 {
    (i % 251) as u8
}

/// The host's network device: frames in from the emulated link, frames out.
#[derive(Debug, Default)]
pub(crate) struct Dev {
    pub rx: VecDeque<Vec<u8>>,
    pub tx: Vec<Vec<u8>>,
    mtu: usize,
}

/// A received frame handed to smoltcp.
pub(crate) struct DevRx(Vec<u8>);
/// Room for a frame smoltcp transmits.
pub(crate) struct DevTx<'a>(&'a mut Vec<Vec<u8>>);

impl phy::RxToken for DevRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for DevTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0u8; len];
        let r = f(&mut buf);
        self.0.push(buf);
        r
    }
}

impl Device for Dev {
    type RxToken<'a> = DevRx;
    type TxToken<'a> = DevTx<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(DevRx, DevTx<'_>)> {
        let f = self.rx.pop_front()?;
        Some((DevRx(f), DevTx(&mut self.tx)))
    }

    fn transmit(&mut self, _now: Instant) -> Option<DevTx<'_>> {
        Some(DevTx(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ethernet;
        c.max_transmission_unit = self.mtu + 14;
        c
    }
}

/// Identifies a ping started with [`Host::ping`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct PingId(pub usize);
/// Identifies a UDP flow started with [`Host::udp_flow`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct FlowId(pub u32);
/// Identifies a TCP transfer started with [`Host::tcp_send`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct TransferId(pub usize);
/// Identifies a traceroute started with [`Host::traceroute`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct TraceId(pub usize);

/// One echo reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PingReply {
    /// Sequence number.
    pub seq: u16,
    /// Round-trip time in ns of virtual time.
    pub rtt_ns: u64,
    /// Who answered.
    pub from: IpAddr,
}

/// The state and outcome of a ping.
#[derive(Clone, Debug, Serialize)]
pub struct PingResult {
    /// Destination.
    pub dst: IpAddr,
    /// Requests to send.
    pub count: u16,
    /// Requests sent so far.
    pub sent: u16,
    /// Replies in arrival order (duplicates ignored).
    pub replies: Vec<PingReply>,
    /// All replies came, or the last request timed out.
    pub done: bool,
    #[serde(skip)]
    ident: u16,
    #[serde(skip)]
    interval_ns: u64,
    #[serde(skip)]
    start_ns: u64,
    #[serde(skip)]
    sent_at: Vec<u64>,
    #[serde(skip)]
    sock: SocketHandle,
}

impl PingResult {
    /// Mean round-trip time of the replies, ns.
    pub fn avg_rtt_ns(&self) -> Option<u64> {
        if self.replies.is_empty() {
            return None;
        }
        Some(self.replies.iter().map(|r| r.rtt_ns).sum::<u64>() / self.replies.len() as u64)
    }
}

/// A UDP datagram a host received on a bound port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UdpDatagram {
    /// Source address.
    pub src: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Payload length.
    pub bytes: usize,
    /// Flow id, for payloads from [`Host::udp_flow`].
    pub flow: Option<u32>,
    /// Sequence number within the flow.
    pub seq: Option<u64>,
    /// Arrival, ns of virtual time.
    pub time_ns: u64,
}

/// What a receiver saw of one flow (datagrams with the same source, ports
/// and flow id).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FlowRx {
    /// Source address.
    pub src: Option<IpAddr>,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Flow id.
    pub flow: u32,
    /// Datagrams received.
    pub packets: u64,
    /// Payload bytes received.
    pub bytes: u64,
    /// Datagrams whose sequence number was seen before.
    pub duplicates: u64,
    /// Datagrams with a sequence number lower than one received earlier.
    pub out_of_order: u64,
    /// Highest sequence number + 1.
    pub highest: u64,
    /// First arrival, ns.
    pub first_ns: u64,
    /// Last arrival, ns.
    pub last_ns: u64,
}

impl FlowRx {
    /// Sequence numbers below the highest that never arrived.
    pub fn missing(&self) -> u64 {
        self.highest.saturating_sub(self.packets - self.duplicates)
    }
}

/// A UDP flow a host sends.
#[derive(Clone, Debug, Serialize)]
pub struct UdpFlow {
    /// Flow id (carried in the payload).
    pub id: u32,
    /// Layered media: when > 0, the payload byte right after the flow header
    /// (offset [`FLOW_HEADER`]) carries the layer `seq % layers`, as a
    /// WaveVideo-like layered stream for `layerdrop` (`offset=24`).
    pub layers: u8,
    /// Destination.
    pub dst: IpAddr,
    /// Destination port.
    pub dport: u16,
    /// Source port.
    pub sport: u16,
    /// Datagrams to send.
    pub total: u64,
    /// Datagrams sent so far.
    pub sent: u64,
    /// Payload size.
    pub size: usize,
    #[serde(skip)]
    pps: f64,
    #[serde(skip)]
    start_ns: u64,
    #[serde(skip)]
    sock: SocketHandle,
}

impl UdpFlow {
    /// All datagrams sent.
    pub fn done(&self) -> bool {
        self.sent >= self.total
    }

    fn due_ns(&self, i: u64) -> u64 {
        self.start_ns + (i as f64 * 1e9 / self.pps) as u64
    }
}

/// A TCP bulk transfer a host sends.
#[derive(Clone, Debug, Serialize)]
pub struct TcpTransfer {
    /// Destination.
    pub dst: IpAddr,
    /// Destination port.
    pub dport: u16,
    /// Source port.
    pub sport: u16,
    /// Bytes to send.
    pub bytes: u64,
    /// Bytes handed to TCP so far.
    pub queued: u64,
    /// When the transfer started, ns.
    pub started_ns: u64,
    /// When the last byte was acknowledged, ns.
    pub acked_ns: Option<u64>,
    /// Why the transfer failed (connection reset or refused).
    pub error: Option<String>,
    #[serde(skip)]
    sock: SocketHandle,
    #[serde(skip)]
    closed: bool,
}

/// A TCP connection a host accepted, and what came over it.
#[derive(Clone, Debug, Serialize)]
pub struct TcpReceived {
    /// Local port.
    pub port: u16,
    /// Peer address.
    pub peer: Option<IpAddr>,
    /// Peer port.
    pub peer_port: u16,
    /// Bytes received.
    pub bytes: u64,
    /// Bytes that differ from the test pattern ([`pattern_byte`]).
    pub pattern_errors: u64,
    /// Connection established, ns.
    pub started_ns: u64,
    /// The peer closed its side (all data in), ns.
    pub completed_ns: Option<u64>,
    #[serde(skip)]
    sock: SocketHandle,
}

/// A traceroute's progress and hops.
#[derive(Clone, Debug, Serialize)]
pub struct Traceroute {
    /// Destination.
    pub dst: IpAddr,
    /// Maximum TTL.
    pub max_hops: u8,
    /// Hop `i` answered probes with TTL `i + 1` (`None`: no answer).
    pub hops: Vec<Option<IpAddr>>,
    /// The destination answered.
    pub reached: bool,
    /// Finished.
    pub done: bool,
    /// When the outstanding probe left the host.
    #[serde(skip)]
    sent_ns: Option<u64>,
    /// A probe is queued in the socket (waiting for neighbour resolution);
    /// its timeout starts when it leaves.
    #[serde(skip)]
    in_socket: bool,
    #[serde(skip)]
    udp: SocketHandle,
    #[serde(skip)]
    icmp: SocketHandle,
}

/// An emulated end host. See the module documentation.
pub struct Host {
    name: String,
    mac: [u8; 6],
    addr: Option<Ipv4Net>,
    addr6: Option<Ipv6Net>,
    iface: Interface,
    sockets: SocketSet<'static>,
    pub(crate) dev: Dev,
    pub(crate) now_ns: u64,
    pub(crate) wake_ns: Option<u64>,
    next_port: u16,
    pings: Vec<PingResult>,
    udp_bound: BTreeMap<u16, SocketHandle>,
    /// Ports whose datagrams are also kept whole ([`Host::udp_keep`]).
    udp_kept: BTreeMap<u16, std::collections::VecDeque<(IpAddr, u16, Vec<u8>)>>,
    udp_client: Option<SocketHandle>,
    flows: Vec<UdpFlow>,
    received: Vec<UdpDatagram>,
    listeners: Vec<(u16, SocketHandle)>,
    tcp_in: Vec<TcpReceived>,
    transfers: Vec<TcpTransfer>,
    traces: Vec<Traceroute>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .field("addr6", &self.addr6)
            .finish()
    }
}

fn udp_socket() -> udp::Socket<'static> {
    let rx = udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; UDP_SLOTS], vec![0; UDP_SLOTS * 1500]);
    let tx = udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; UDP_SLOTS], vec![0; UDP_SLOTS * 1500]);
    udp::Socket::new(rx, tx)
}

fn icmp_socket() -> icmp::Socket<'static> {
    let rx = icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 64], vec![0; 64 * 1600]);
    let tx = icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 64], vec![0; 64 * 1600]);
    icmp::Socket::new(rx, tx)
}

fn tcp_socket() -> tcp::Socket<'static> {
    tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; TCP_BUF]),
        tcp::SocketBuffer::new(vec![0; TCP_BUF]),
    )
}

impl Host {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        name: &str,
        mac: [u8; 6],
        addr: Option<Ipv4Net>,
        addr6: Option<Ipv6Net>,
        gateway: Option<Ipv4Addr>,
        gateway6: Option<Ipv6Addr>,
        mtu: u16,
        seed: u64,
    ) -> Result<Host, EmuError> {
        let bad = |m: String| EmuError::Topology(format!("host {name:?}: {m}"));
        if mac[0] & 1 != 0 {
            return Err(bad("MAC address must be unicast".into()));
        }
        let mut dev = Dev {
            mtu: mtu as usize,
            ..Dev::default()
        };
        let mut cfg = Config::new(EthernetAddress(mac).into());
        cfg.random_seed = seed;
        let mut iface = Interface::new(cfg, &mut dev, Instant::ZERO);
        let mut full = false;
        iface.update_ip_addrs(|a| {
            if let Some(n) = addr {
                full |= a.push(IpCidr::new(IpAddress::Ipv4(n.addr()), n.prefix_len())).is_err();
            }
            if let Some(n) = addr6 {
                full |= a.push(IpCidr::new(IpAddress::Ipv6(n.addr()), n.prefix_len())).is_err();
            }
        });
        if full {
            return Err(bad("too many addresses".into()));
        }
        if let Some(g) = gateway {
            iface
                .routes_mut()
                .add_default_ipv4_route(g)
                .map_err(|_| bad("route table full".into()))?;
        }
        if let Some(g) = gateway6 {
            iface
                .routes_mut()
                .add_default_ipv6_route(g)
                .map_err(|_| bad("route table full".into()))?;
        }
        Ok(Host {
            name: name.to_string(),
            mac,
            addr,
            addr6,
            iface,
            sockets: SocketSet::new(Vec::new()),
            dev,
            now_ns: 0,
            wake_ns: None,
            next_port: EPHEMERAL,
            pings: Vec::new(),
            udp_bound: BTreeMap::new(),
            udp_kept: BTreeMap::new(),
            udp_client: None,
            flows: Vec::new(),
            received: Vec::new(),
            listeners: Vec::new(),
            tcp_in: Vec::new(),
            transfers: Vec::new(),
            traces: Vec::new(),
        })
    }

    // ----- identity ----------------------------------------------------------

    /// The host's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// IPv4 address.
    pub fn addr(&self) -> Option<Ipv4Addr> {
        self.addr.map(|n| n.addr())
    }

    /// IPv6 address.
    pub fn addr6(&self) -> Option<Ipv6Addr> {
        self.addr6.map(|n| n.addr())
    }

    /// IPv4 address with prefix.
    pub fn net(&self) -> Option<Ipv4Net> {
        self.addr
    }

    /// IPv6 address with prefix.
    pub fn net6(&self) -> Option<Ipv6Net> {
        self.addr6
    }

    /// Virtual time the host last saw, ns.
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    fn ephemeral(&mut self) -> u16 {
        let p = self.next_port;
        self.next_port = if p == u16::MAX { EPHEMERAL } else { p + 1 };
        p
    }

    fn kick(&mut self) {
        self.wake_ns = Some(self.now_ns);
    }

    fn family_ok(&self, dst: IpAddr) -> Result<(), EmuError> {
        let ok = match dst {
            IpAddr::V4(_) => self.addr.is_some(),
            IpAddr::V6(_) => self.addr6.is_some(),
        };
        if ok {
            Ok(())
        } else {
            Err(EmuError::Host(format!(
                "host {} has no address of the family of {dst}",
                self.name
            )))
        }
    }

    // ----- commands ----------------------------------------------------------

    /// Send an IP packet the host built itself (`ip` starts at the IP
    /// header), as a raw socket would: for packets smoltcp cannot make,
    /// such as ones carrying IP options or routing headers. It goes out
    /// in an Ethernet frame to the broadcast address, which the node on
    /// the link accepts like any frame for it.
    pub fn send_raw_ip(&mut self, ip: &[u8]) -> Result<(), EmuError> {
        let ethertype: u16 = match ip.first().map(|b| b >> 4) {
            Some(4) => 0x0800,
            Some(6) => 0x86dd,
            _ => return Err(EmuError::Host(format!("host {}: not an IP packet", self.name))),
        };
        let mut f = Vec::with_capacity(14 + ip.len());
        f.extend_from_slice(&[0xff; 6]);
        f.extend_from_slice(&self.mac);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(ip);
        self.dev.tx.push(f);
        self.kick();
        Ok(())
    }

    /// Send `count` echo requests to `dst`, one every `interval`.
    pub fn ping(&mut self, dst: IpAddr, count: u16, interval: Duration) -> Result<PingId, EmuError> {
        self.family_ok(dst)?;
        let id = self.pings.len();
        let ident = 0x5700 + id as u16;
        let mut s = icmp_socket();
        s.bind(icmp::Endpoint::Ident(ident))
            .map_err(|e| EmuError::Host(format!("{}: ping bind: {e}", self.name)))?;
        let sock = self.sockets.add(s);
        self.pings.push(PingResult {
            dst,
            count,
            sent: 0,
            replies: Vec::new(),
            done: count == 0,
            ident,
            interval_ns: interval.as_nanos() as u64,
            start_ns: self.now_ns,
            sent_at: Vec::new(),
            sock,
        });
        self.kick();
        Ok(PingId(id))
    }

    /// A ping's state and replies.
    pub fn ping_result(&self, id: PingId) -> Option<&PingResult> {
        self.pings.get(id.0)
    }

    /// All pings started on this host.
    pub fn pings(&self) -> &[PingResult] {
        &self.pings
    }

    /// Receive UDP datagrams on `port`; they are recorded (see
    /// [`Host::udp_received`]).
    pub fn udp_bind(&mut self, port: u16) -> Result<(), EmuError> {
        if self.udp_bound.contains_key(&port) {
            return Ok(());
        }
        let mut s = udp_socket();
        s.bind(port)
            .map_err(|e| EmuError::Host(format!("{}: udp bind {port}: {e}", self.name)))?;
        let h = self.sockets.add(s);
        self.udp_bound.insert(port, h);
        Ok(())
    }

    /// Receive UDP datagrams on `port` and keep their payloads for
    /// [`Host::udp_take`] (an application reading its socket: the
    /// signaling requester).
    pub fn udp_keep(&mut self, port: u16) -> Result<(), EmuError> {
        self.udp_bind(port)?;
        self.udp_kept.entry(port).or_default();
        Ok(())
    }

    /// The datagrams kept on `port` since the last call: (source address,
    /// source port, payload).
    pub fn udp_take(&mut self, port: u16) -> Vec<(IpAddr, u16, Vec<u8>)> {
        self.udp_kept
            .get_mut(&port)
            .map(|q| q.drain(..).collect())
            .unwrap_or_default()
    }

    /// Send one UDP datagram from an ephemeral port.
    pub fn udp_send(&mut self, dst: IpAddr, dport: u16, payload: &[u8]) -> Result<(), EmuError> {
        self.family_ok(dst)?;
        let h = match self.udp_client {
            Some(h) => h,
            None => {
                let port = self.ephemeral();
                let mut s = udp_socket();
                s.bind(port)
                    .map_err(|e| EmuError::Host(format!("{}: udp bind {port}: {e}", self.name)))?;
                let h = self.sockets.add(s);
                self.udp_client = Some(h);
                h
            }
        };
        self.sockets
            .get_mut::<udp::Socket>(h)
            .send_slice(payload, IpEndpoint::new(dst.into(), dport))
            .map_err(|e| EmuError::Host(format!("{}: udp send: {e}", self.name)))?;
        self.kick();
        Ok(())
    }

    /// Send a UDP flow: `pps` datagrams per second of `size` payload bytes
    /// for `duration`, each carrying the flow id and a sequence number
    /// (from 0) so receivers can check loss and order.
    pub fn udp_flow(
        &mut self,
        dst: IpAddr,
        dport: u16,
        pps: f64,
        size: usize,
        duration: Duration,
    ) -> Result<FlowId, EmuError> {
        self.family_ok(dst)?;
        if pps.is_nan() || pps <= 0.0 {
            return Err(EmuError::Host(format!("{}: flow rate must be positive", self.name)));
        }
        let total = (duration.as_secs_f64() * pps).round() as u64;
        self.udp_flow_count(dst, dport, pps, size, total)
    }

    /// A layered media flow: like [`Host::udp_flow`], with the layer
    /// (`seq % layers`) in payload byte [`FLOW_HEADER`] (see
    /// [`UdpFlow::layers`]).
    pub fn udp_flow_layered(
        &mut self,
        dst: IpAddr,
        dport: u16,
        pps: f64,
        size: usize,
        duration: Duration,
        layers: u8,
    ) -> Result<FlowId, EmuError> {
        let id = self.udp_flow(dst, dport, pps, size.max(FLOW_HEADER + 1), duration)?;
        if let Some(f) = self.flows.last_mut() {
            f.layers = layers;
        }
        Ok(id)
    }

    /// Like [`Host::udp_flow`], with the number of datagrams given.
    pub fn udp_flow_count(
        &mut self,
        dst: IpAddr,
        dport: u16,
        pps: f64,
        size: usize,
        total: u64,
    ) -> Result<FlowId, EmuError> {
        self.family_ok(dst)?;
        if pps.is_nan() || pps <= 0.0 {
            return Err(EmuError::Host(format!("{}: flow rate must be positive", self.name)));
        }
        let size = size.max(FLOW_HEADER);
        if size > 1472 {
            return Err(EmuError::Host(format!(
                "{}: flow payload {size} is larger than 1472 bytes (hosts do not fragment)",
                self.name
            )));
        }
        let sport = self.ephemeral();
        let mut s = udp_socket();
        s.bind(sport)
            .map_err(|e| EmuError::Host(format!("{}: udp bind {sport}: {e}", self.name)))?;
        let sock = self.sockets.add(s);
        let id = self.flows.len() as u32;
        self.flows.push(UdpFlow {
            id,
            layers: 0,
            dst,
            dport,
            sport,
            total,
            sent: 0,
            size,
            pps,
            start_ns: self.now_ns,
            sock,
        });
        self.kick();
        Ok(FlowId(id))
    }

    /// A flow this host sends.
    pub fn flow(&self, id: FlowId) -> Option<&UdpFlow> {
        self.flows.get(id.0 as usize)
    }

    /// All flows this host sends.
    pub fn flows(&self) -> &[UdpFlow] {
        &self.flows
    }

    /// Every UDP datagram received on bound ports, in arrival order.
    pub fn udp_received(&self) -> &[UdpDatagram] {
        &self.received
    }

    /// Received flows, summarized per (source, source port, port, flow id).
    pub fn flows_received(&self) -> Vec<FlowRx> {
        type Key = (IpAddr, u16, u16, u32);
        let mut m: BTreeMap<Key, (FlowRx, std::collections::HashSet<u64>)> = BTreeMap::new();
        for d in &self.received {
            let (Some(flow), Some(seq)) = (d.flow, d.seq) else {
                continue;
            };
            let (f, seen) = m.entry((d.src, d.sport, d.dport, flow)).or_insert_with(|| {
                (
                    FlowRx {
                        src: Some(d.src),
                        sport: d.sport,
                        dport: d.dport,
                        flow,
                        first_ns: d.time_ns,
                        ..FlowRx::default()
                    },
                    Default::default(),
                )
            });
            f.packets += 1;
            f.bytes += d.bytes as u64;
            f.last_ns = d.time_ns;
            if !seen.insert(seq) {
                f.duplicates += 1;
            }
            if seq + 1 < f.highest {
                f.out_of_order += 1;
            }
            f.highest = f.highest.max(seq + 1);
        }
        m.into_values().map(|(f, _)| f).collect()
    }

    /// Accept TCP connections on `port` (any number, one after another or at
    /// once); what each brings is recorded (see [`Host::tcp_received`]).
    pub fn tcp_listen(&mut self, port: u16) -> Result<(), EmuError> {
        let mut s = tcp_socket();
        s.listen(port)
            .map_err(|e| EmuError::Host(format!("{}: tcp listen {port}: {e}", self.name)))?;
        let h = self.sockets.add(s);
        self.listeners.push((port, h));
        Ok(())
    }

    /// Open a TCP connection to `dst:port` and send `bytes` bytes of the test
    /// pattern ([`pattern_byte`]), then close.
    pub fn tcp_send(&mut self, dst: IpAddr, port: u16, bytes: u64) -> Result<TransferId, EmuError> {
        self.family_ok(dst)?;
        let sport = self.ephemeral();
        let mut s = tcp_socket();
        s.connect(
            self.iface.context(),
            IpEndpoint::new(dst.into(), port),
            IpListenEndpoint::from(sport),
        )
        .map_err(|e| EmuError::Host(format!("{}: tcp connect: {e}", self.name)))?;
        let sock = self.sockets.add(s);
        let id = self.transfers.len();
        self.transfers.push(TcpTransfer {
            dst,
            dport: port,
            sport,
            bytes,
            queued: 0,
            started_ns: self.now_ns,
            acked_ns: None,
            error: None,
            sock,
            closed: false,
        });
        self.kick();
        Ok(TransferId(id))
    }

    /// A transfer this host sends.
    pub fn transfer(&self, id: TransferId) -> Option<&TcpTransfer> {
        self.transfers.get(id.0)
    }

    /// All transfers this host sends.
    pub fn transfers(&self) -> &[TcpTransfer] {
        &self.transfers
    }

    /// Connections this host accepted and what they brought.
    pub fn tcp_received(&self) -> &[TcpReceived] {
        &self.tcp_in
    }

    /// Trace the route to `dst`: UDP probes with TTL 1, 2, … each answered by
    /// ICMP time exceeded from a router, the last by port unreachable from
    /// the destination. One probe per hop, sent when the previous one was
    /// answered or timed out.
    pub fn traceroute(&mut self, dst: IpAddr, max_hops: u8) -> Result<TraceId, EmuError> {
        self.family_ok(dst)?;
        let sport = self.ephemeral();
        let mut u = udp_socket();
        u.bind(sport)
            .map_err(|e| EmuError::Host(format!("{}: udp bind {sport}: {e}", self.name)))?;
        let mut i = icmp_socket();
        i.bind(icmp::Endpoint::Udp(IpListenEndpoint::from(sport)))
            .map_err(|e| EmuError::Host(format!("{}: icmp bind: {e}", self.name)))?;
        let udp = self.sockets.add(u);
        let icmp = self.sockets.add(i);
        let id = self.traces.len();
        self.traces.push(Traceroute {
            dst,
            max_hops: max_hops.max(1),
            hops: Vec::new(),
            reached: false,
            done: false,
            sent_ns: None,
            in_socket: false,
            udp,
            icmp,
        });
        self.kick();
        Ok(TraceId(id))
    }

    /// A traceroute's state and hops.
    pub fn trace(&self, id: TraceId) -> Option<&Traceroute> {
        self.traces.get(id.0)
    }

    /// True while an application has work left: a ping, flow, transfer or
    /// traceroute not finished, or frames waiting to leave.
    pub fn busy(&self) -> bool {
        let unsent = |h: &SocketHandle| self.sockets.get::<udp::Socket>(*h).send_queue() > 0;
        !self.dev.tx.is_empty()
            || self.wake_ns.is_some_and(|w| w <= self.now_ns)
            || self.udp_client.as_ref().is_some_and(unsent)
            || self.flows.iter().any(|f| unsent(&f.sock))
            || self.pings.iter().any(|p| !p.done)
            || self.flows.iter().any(|f| !f.done())
            || self.transfers.iter().any(|t| t.acked_ns.is_none() && t.error.is_none())
            || self.traces.iter().any(|t| !t.done)
    }

    // ----- driving -----------------------------------------------------------

    /// Run applications and the stack at `now_ns`; frames to send end up in
    /// `dev.tx`, and `wake_ns` says when to call again.
    pub(crate) fn poll(&mut self, now_ns: u64) {
        self.now_ns = now_ns;
        let ts = instant(now_ns);
        for _ in 0..POLL_ROUNDS {
            let mut progress = self.apps(now_ns);
            let r = self.iface.poll(ts, &mut self.dev, &mut self.sockets);
            progress |= self.apps(now_ns);
            if !progress && r == PollResult::None {
                break;
            }
        }
        let mut wake = self
            .iface
            .poll_at(ts, &self.sockets)
            .map(|i| (i.total_micros().max(0) as u64) * 1000);
        let mut at = |t: u64| wake = Some(wake.map_or(t, |w| w.min(t)));
        for p in self.pings.iter().filter(|p| !p.done) {
            if p.sent < p.count {
                at(p.start_ns + p.sent as u64 * p.interval_ns);
            } else if let Some(last) = p.sent_at.last() {
                at(last + PING_TIMEOUT_NS);
            }
        }
        for f in self.flows.iter().filter(|f| !f.done()) {
            at(f.due_ns(f.sent));
        }
        for t in self.traces.iter().filter(|t| !t.done && !t.in_socket) {
            match t.sent_ns {
                Some(s) => at(s + PROBE_TIMEOUT_NS),
                None => at(now_ns),
            }
        }
        // Never ask to be woken in the past: smoltcp's clock has µs steps.
        self.wake_ns = wake.map(|w| w.max(now_ns + 1000));
    }

    /// One round of every application; true if any did something.
    fn apps(&mut self, now: u64) -> bool {
        let mut progress = false;
        progress |= self.apps_ping(now);
        progress |= self.apps_udp(now);
        progress |= self.apps_tcp(now);
        progress |= self.apps_trace(now);
        progress
    }

    fn apps_ping(&mut self, now: u64) -> bool {
        let mut progress = false;
        let caps = ChecksumCapabilities::default();
        for p in self.pings.iter_mut().filter(|p| !p.done) {
            let s = self.sockets.get_mut::<icmp::Socket>(p.sock);
            while p.sent < p.count && p.start_ns + p.sent as u64 * p.interval_ns <= now && s.can_send() {
                let seq = p.sent;
                let data = [0x57u8; 32];
                match p.dst {
                    IpAddr::V4(_) => {
                        let repr = Icmpv4Repr::EchoRequest {
                            ident: p.ident,
                            seq_no: seq,
                            data: &data,
                        };
                        let Ok(buf) = s.send(repr.buffer_len(), p.dst.into()) else {
                            break;
                        };
                        repr.emit(&mut Icmpv4Packet::new_unchecked(buf), &caps);
                    }
                    IpAddr::V6(d) => {
                        let repr = Icmpv6Repr::EchoRequest {
                            ident: p.ident,
                            seq_no: seq,
                            data: &data,
                        };
                        let src = self.iface.get_source_address_ipv6(&d);
                        let Ok(buf) = s.send(repr.buffer_len(), p.dst.into()) else {
                            break;
                        };
                        repr.emit(&src, &d, &mut Icmpv6Packet::new_unchecked(buf), &caps);
                    }
                }
                p.sent_at.push(now);
                p.sent += 1;
                progress = true;
            }
            while let Ok((payload, from)) = s.recv() {
                progress = true;
                let from: IpAddr = from.into();
                // Echo reply: type 0 (v4) / 129 (v6); ident, seq at 4..8.
                let reply_type = if p.dst.is_ipv4() { 0 } else { 129 };
                if payload.len() < 8 || payload[0] != reply_type {
                    continue;
                }
                let ident = u16::from_be_bytes([payload[4], payload[5]]);
                let seq = u16::from_be_bytes([payload[6], payload[7]]);
                if ident != p.ident || seq >= p.sent || p.replies.iter().any(|r| r.seq == seq) {
                    continue;
                }
                p.replies.push(PingReply {
                    seq,
                    rtt_ns: now - p.sent_at[seq as usize],
                    from,
                });
            }
            let timed_out = p.sent == p.count && p.sent_at.last().is_some_and(|l| now >= l + PING_TIMEOUT_NS);
            if p.replies.len() == p.count as usize || timed_out {
                p.done = true;
                progress = true;
            }
        }
        progress
    }

    fn apps_udp(&mut self, now: u64) -> bool {
        let mut progress = false;
        for f in self.flows.iter_mut().filter(|f| !f.done()) {
            let s = self.sockets.get_mut::<udp::Socket>(f.sock);
            while !f.done() && f.due_ns(f.sent) <= now {
                let Ok(buf) = s.send(f.size, IpEndpoint::new(f.dst.into(), f.dport)) else {
                    break;
                };
                buf.fill(0);
                buf[..4].copy_from_slice(FLOW_MAGIC);
                buf[4..8].copy_from_slice(&f.id.to_be_bytes());
                buf[8..16].copy_from_slice(&f.sent.to_be_bytes());
                buf[16..24].copy_from_slice(&now.to_be_bytes());
                if f.layers > 0 && buf.len() > FLOW_HEADER {
                    buf[FLOW_HEADER] = (f.sent % f.layers as u64) as u8;
                }
                f.sent += 1;
                progress = true;
            }
        }
        for (&port, &h) in &self.udp_bound {
            let s = self.sockets.get_mut::<udp::Socket>(h);
            while let Ok((data, meta)) = s.recv() {
                progress = true;
                let (flow, seq) = if data.len() >= FLOW_HEADER && &data[..4] == FLOW_MAGIC {
                    let mut f = [0u8; 4];
                    f.copy_from_slice(&data[4..8]);
                    let mut q = [0u8; 8];
                    q.copy_from_slice(&data[8..16]);
                    (Some(u32::from_be_bytes(f)), Some(u64::from_be_bytes(q)))
                } else {
                    (None, None)
                };
                if let Some(q) = self.udp_kept.get_mut(&port) {
                    // Bounded: a host whose application stopped reading
                    // keeps the newest.
                    if q.len() >= 4096 {
                        q.pop_front();
                    }
                    q.push_back((meta.endpoint.addr.into(), meta.endpoint.port, data.to_vec()));
                }
                self.received.push(UdpDatagram {
                    src: meta.endpoint.addr.into(),
                    sport: meta.endpoint.port,
                    dport: port,
                    bytes: data.len(),
                    flow,
                    seq,
                    time_ns: now,
                });
            }
        }
        // Replies to one-off datagrams are not recorded; drain them.
        if let Some(h) = self.udp_client {
            let s = self.sockets.get_mut::<udp::Socket>(h);
            while s.recv().is_ok() {}
        }
        progress
    }

    fn apps_tcp(&mut self, now: u64) -> bool {
        let mut progress = false;
        // Senders: keep the send buffer full, close when all is queued.
        for t in self
            .transfers
            .iter_mut()
            .filter(|t| t.acked_ns.is_none() && t.error.is_none())
        {
            let s = self.sockets.get_mut::<tcp::Socket>(t.sock);
            if s.state() == tcp::State::Closed {
                t.error = Some(if t.queued == 0 {
                    "connection refused or reset".into()
                } else {
                    "connection reset".into()
                });
                progress = true;
                continue;
            }
            if s.may_send() && t.queued < t.bytes {
                let start = t.queued;
                let left = t.bytes - t.queued;
                if let Ok(n) = s.send(|buf| {
                    let n = buf.len().min(left as usize);
                    for (i, b) in buf[..n].iter_mut().enumerate() {
                        *b = pattern_byte(start + i as u64);
                    }
                    (n, n)
                }) {
                    if n > 0 {
                        t.queued += n as u64;
                        progress = true;
                    }
                }
            }
            if t.queued == t.bytes && !t.closed {
                s.close();
                t.closed = true;
                progress = true;
            }
            if t.closed && s.send_queue() == 0 && !matches!(s.state(), tcp::State::SynSent | tcp::State::FinWait1) {
                t.acked_ns = Some(now);
                progress = true;
            }
        }
        // Listeners: a listening socket that got a connection becomes a
        // connection; a fresh one listens in its place.
        let mut i = 0;
        while i < self.listeners.len() {
            let (port, h) = self.listeners[i];
            let s = self.sockets.get_mut::<tcp::Socket>(h);
            if s.state() == tcp::State::Listen {
                i += 1;
                continue;
            }
            let remote = s.remote_endpoint();
            self.tcp_in.push(TcpReceived {
                port,
                peer: remote.map(|e| e.addr.into()),
                peer_port: remote.map(|e| e.port).unwrap_or(0),
                bytes: 0,
                pattern_errors: 0,
                started_ns: now,
                completed_ns: None,
                sock: h,
            });
            let mut fresh = tcp_socket();
            if fresh.listen(port).is_ok() {
                self.listeners[i].1 = self.sockets.add(fresh);
            } else {
                self.listeners.remove(i);
            }
            progress = true;
        }
        for c in self.tcp_in.iter_mut().filter(|c| c.completed_ns.is_none()) {
            let s = self.sockets.get_mut::<tcp::Socket>(c.sock);
            while s.can_recv() {
                let off = c.bytes;
                let Ok((n, bad)) = s.recv(|buf| {
                    let bad = buf
                        .iter()
                        .enumerate()
                        .filter(|(i, b)| **b != pattern_byte(off + *i as u64))
                        .count();
                    (buf.len(), (buf.len(), bad))
                }) else {
                    break;
                };
                if n == 0 {
                    break;
                }
                c.bytes += n as u64;
                c.pattern_errors += bad as u64;
                progress = true;
            }
            if !s.may_recv() && s.state() != tcp::State::SynReceived {
                c.completed_ns = Some(now);
                s.close();
                progress = true;
            }
        }
        progress
    }

    fn apps_trace(&mut self, now: u64) -> bool {
        let mut progress = false;
        for t in self.traces.iter_mut().filter(|t| !t.done) {
            let ttl = t.hops.len() as u8 + 1;
            if t.in_socket && self.sockets.get::<udp::Socket>(t.udp).send_queue() == 0 {
                t.in_socket = false;
                t.sent_ns = Some(now);
                progress = true;
            }
            // Answers to the outstanding probe.
            let icmp_s = self.sockets.get_mut::<icmp::Socket>(t.icmp);
            while let Ok((payload, from)) = icmp_s.recv() {
                progress = true;
                let from: IpAddr = from.into();
                let (exceeded, unreach, quote_l4) = match t.dst {
                    IpAddr::V4(_) => {
                        let ihl = payload.get(8).map(|b| (b & 0x0f) as usize * 4).unwrap_or(20);
                        (payload[0] == 11, payload[0] == 3, 8 + ihl)
                    }
                    IpAddr::V6(_) => (payload[0] == 3, payload[0] == 1, 8 + 40),
                };
                let dport = payload
                    .get(quote_l4 + 2..quote_l4 + 4)
                    .map(|b| u16::from_be_bytes([b[0], b[1]]));
                let outstanding = t.sent_ns.is_some() || t.in_socket;
                if !outstanding || dport != Some(TRACE_BASE_PORT + ttl as u16 - 1) {
                    continue; // a late answer to an earlier probe
                }
                if exceeded || unreach {
                    t.hops.push(Some(from));
                    t.sent_ns = None;
                    t.in_socket = false;
                    if unreach || from == t.dst {
                        t.reached = from == t.dst;
                        t.done = true;
                    }
                    break;
                }
            }
            if t.done {
                continue;
            }
            if let Some(s) = t.sent_ns {
                if now >= s + PROBE_TIMEOUT_NS {
                    t.hops.push(None);
                    t.sent_ns = None;
                    progress = true;
                }
            }
            if t.sent_ns.is_none() && !t.in_socket {
                let ttl = t.hops.len() as u8 + 1;
                if ttl > t.max_hops {
                    t.done = true;
                    progress = true;
                    continue;
                }
                let u = self.sockets.get_mut::<udp::Socket>(t.udp);
                // One probe in flight at a time, so the hop limit set here is
                // the one it leaves with.
                u.set_hop_limit(Some(ttl));
                let dport = TRACE_BASE_PORT + ttl as u16 - 1;
                if u.send_slice(b"weft-traceroute-probe", IpEndpoint::new(t.dst.into(), dport))
                    .is_ok()
                {
                    t.in_socket = true;
                    progress = true;
                }
            }
        }
        progress
    }
}
