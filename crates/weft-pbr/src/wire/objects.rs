//! The objects of a message: the values they carry (path id, flow spec,
//! explicit route, plugin, error, status record, objects passed on
//! unread), the layout of each object's body ([`field`]), and how each is
//! read from its body — checking every length, never panicking — and
//! written to one.

use super::{af, be16, be32, obj, WireError, MAX_CLASS_LEN, MAX_WIRE_HOPS, OBJECT_HEADER_LEN};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Where each field sits: in the object header, and in each object's body
/// (`docs/pbr.md` §3). An address is always its family octet (1: IPv4,
/// 2: IPv6) followed by the address, so an offset named `ADDR` is that
/// octet's.
pub(super) mod field {
    /// A run of octets.
    pub type Field = core::ops::Range<usize>;

    /// The object header, in front of every body.
    pub mod header {
        use super::Field;
        /// Kind: the top two bits say what a receiver that does not know it does.
        pub const KIND: usize = 0;
        /// Flags (0).
        pub const FLAGS: usize = 1;
        /// Length of the object, header included.
        pub const LENGTH: Field = 2..4;
    }

    /// PATH_ID: the initiator's number, then its address.
    pub mod path_id {
        use super::Field;
        /// The number the initiator chose.
        pub const NUMBER: Field = 0..4;
        /// The initiator's address.
        pub const ADDR: usize = 4;
    }

    /// EXPLICIT_ROUTE: the current index, the hop count, then per hop a
    /// flags octet (bit 0: loose) and an address.
    pub mod route {
        /// Index of the hop the message is addressed to.
        pub const CURRENT: usize = 0;
        /// Number of hops.
        pub const COUNT: usize = 1;
        /// The first hop's flags octet.
        pub const HOPS: usize = 2;
    }

    /// FLOWSPEC: family, prefix lengths, protocol, port ranges, then the
    /// source and destination addresses (4 or 16 octets each, no family
    /// octets: [`FAMILY`](flowspec::FAMILY) covers both).
    pub mod flowspec {
        use super::Field;
        /// Address family of both prefixes.
        pub const FAMILY: usize = 0;
        /// Source prefix length.
        pub const SRC_LEN: usize = 1;
        /// Destination prefix length.
        pub const DST_LEN: usize = 2;
        /// 1 when [`PROTOCOL`] is set, 0 for any protocol.
        pub const HAS_PROTOCOL: usize = 3;
        /// IP protocol.
        pub const PROTOCOL: usize = 4;
        /// Lowest source port.
        pub const SPORT_LO: Field = 5..7;
        /// Highest source port.
        pub const SPORT_HI: Field = 7..9;
        /// Lowest destination port.
        pub const DPORT_LO: Field = 9..11;
        /// Highest destination port.
        pub const DPORT_HI: Field = 11..13;
        /// The source address, then the destination address.
        pub const ADDRS: usize = 13;
    }

    /// PLUGIN: the visit, the lengths of class and configuration, then both.
    pub mod plugin {
        use super::Field;
        /// Index of the visit.
        pub const HOP: usize = 0;
        /// Length of the class name.
        pub const CLASS_LEN: usize = 1;
        /// Length of the configuration.
        pub const CONFIG_LEN: Field = 2..4;
        /// The class name, then the configuration.
        pub const CLASS: usize = 4;
    }

    /// ERROR: the failing hop, the reason code, its address, then text.
    pub mod error {
        /// Index of the failing hop.
        pub const HOP: usize = 0;
        /// Reason code.
        pub const REASON: usize = 1;
        /// Its address; the text follows.
        pub const ADDR: usize = 2;
    }

    /// STATUS_RECORD: the visit's hop, its address, then JSON text.
    pub mod record {
        /// Hop index of the visit.
        pub const HOP: usize = 0;
        /// Its address; the text follows.
        pub const ADDR: usize = 1;
    }
}

/// A path's identity: the initiator's address and a number it chose.
/// Written `NUMBER@ADDRESS` (`7@10.0.1.1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PathId {
    /// The initiating node's address (the first hop's).
    pub initiator: IpAddr,
    /// Chosen by the initiator, unique among its paths.
    pub number: u32,
}

impl fmt::Display for PathId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.number, self.initiator)
    }
}

impl std::str::FromStr for PathId {
    type Err = String;
    fn from_str(s: &str) -> Result<PathId, String> {
        let (n, a) = s
            .split_once('@')
            .ok_or_else(|| format!("path id {s:?}: expected NUMBER@ADDRESS"))?;
        Ok(PathId {
            number: n.parse().map_err(|e| format!("path id {s:?}: {e}"))?,
            initiator: a.parse().map_err(|e| format!("path id {s:?}: {e}"))?,
        })
    }
}

/// An inclusive range of transport ports; `0..=65535` is the wildcard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortRange {
    /// Lowest port.
    pub lo: u16,
    /// Highest port.
    pub hi: u16,
}

impl PortRange {
    /// Any port.
    pub const ANY: PortRange = PortRange { lo: 0, hi: u16::MAX };
    /// Exactly `p`.
    pub fn single(p: u16) -> PortRange {
        PortRange { lo: p, hi: p }
    }
    /// Whether this is the wildcard.
    pub fn is_any(&self) -> bool {
        *self == PortRange::ANY
    }
    /// Whether `p` is in the range.
    pub fn contains(&self, p: u16) -> bool {
        self.lo <= p && p <= self.hi
    }
}

/// Which packets follow the path: source and destination prefix (length
/// 0 = any), port ranges, protocol (`None` = any). Both prefixes are of
/// one family.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FlowSpec {
    /// Source prefix.
    pub src: IpNet,
    /// Destination prefix.
    pub dst: IpNet,
    /// Source ports.
    pub sport: PortRange,
    /// Destination ports.
    pub dport: PortRange,
    /// IP protocol; `None` matches any.
    pub protocol: Option<u8>,
}

impl FlowSpec {
    /// Every IPv4 packet.
    pub fn any_v4() -> FlowSpec {
        let any = IpNet::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0).unwrap_or_default();
        FlowSpec {
            src: any,
            dst: any,
            sport: PortRange::ANY,
            dport: PortRange::ANY,
            protocol: None,
        }
    }

    /// Both prefixes of one family, port ranges ordered.
    pub fn is_valid(&self) -> bool {
        self.src.addr().is_ipv4() == self.dst.addr().is_ipv4()
            && self.sport.lo <= self.sport.hi
            && self.dport.lo <= self.dport.hi
    }

    /// Whether a packet with these fields matches (a reference for the
    /// data plane's classifier and for tests).
    pub fn matches(&self, src: IpAddr, dst: IpAddr, protocol: u8, sport: u16, dport: u16) -> bool {
        self.src.contains(&src)
            && self.dst.contains(&dst)
            && self.protocol.is_none_or(|p| p == protocol)
            && self.sport.contains(sport)
            && self.dport.contains(dport)
    }
}

/// One hop of an explicit route: an address of the node and whether the
/// segment *to* it from the previous hop is loose (follows the FIB,
/// tunnelled) rather than strict (a direct neighbour). The first hop's
/// flag has no meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Hop {
    /// The node's address (for a strict hop: on the link from the
    /// previous hop).
    pub addr: IpAddr,
    /// Loose segment from the previous hop.
    pub loose: bool,
}

impl Hop {
    /// A strict hop.
    pub fn strict(addr: IpAddr) -> Hop {
        Hop { addr, loose: false }
    }
    /// A loose hop.
    pub fn loose(addr: IpAddr) -> Hop {
        Hop { addr, loose: true }
    }
}

/// The EXPLICIT_ROUTE object: the walk and the index of the hop the
/// message is addressed to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ExplicitRoute {
    /// Hops, first (ingress, initiator) to last (egress).
    pub hops: Vec<Hop>,
    /// Index of the hop receiving this message.
    pub current: u8,
}

/// A plugin to deploy at one visit (several may target one visit; they
/// run in the listed order).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Plugin {
    /// Index of the visit.
    pub hop: u8,
    /// Element class name (`ENCRYPT`).
    pub class: String,
    /// Initial configuration string.
    pub config: String,
}

/// Why a hop refused a path or tore it down. Codes are on the wire; unknown
/// codes are kept as [`Reason::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Reason {
    /// 1: no route to the next hop (loose).
    NoRoute,
    /// 2: the next hop of a strict segment is not a direct neighbour.
    NotAdjacent,
    /// 3: not enough bandwidth on the egress.
    InsufficientBandwidth,
    /// 4: no room for another plugin instance.
    NoPluginCapacity,
    /// 5: the plugin class cannot be obtained.
    UnknownClass,
    /// 6: more hops than the node accepts.
    HopLimit,
    /// 7: a neighbour stopped acknowledging.
    NeighbourDown,
    /// 8: the message was malformed or inconsistent.
    BadMessage,
    /// 9: refreshes stopped; the state timed out.
    Timeout,
    /// 10: the COMMIT did not come back in time.
    SetupTimeout,
    /// 11: installing the state failed at commit.
    InstallFailed,
    /// 12: the node holds no state for the path.
    UnknownPath,
    /// 13: the plugin class was fetched but failed its checks (hash,
    /// signature, trusted key, ABI) or would not compile.
    ClassRejected,
    /// Any other code.
    Other(u8),
}

impl Reason {
    /// Wire code.
    pub fn code(self) -> u8 {
        match self {
            Reason::NoRoute => 1,
            Reason::NotAdjacent => 2,
            Reason::InsufficientBandwidth => 3,
            Reason::NoPluginCapacity => 4,
            Reason::UnknownClass => 5,
            Reason::HopLimit => 6,
            Reason::NeighbourDown => 7,
            Reason::BadMessage => 8,
            Reason::Timeout => 9,
            Reason::SetupTimeout => 10,
            Reason::InstallFailed => 11,
            Reason::UnknownPath => 12,
            Reason::ClassRejected => 13,
            Reason::Other(c) => c,
        }
    }

    /// From a wire code.
    pub fn from_code(c: u8) -> Reason {
        match c {
            1 => Reason::NoRoute,
            2 => Reason::NotAdjacent,
            3 => Reason::InsufficientBandwidth,
            4 => Reason::NoPluginCapacity,
            5 => Reason::UnknownClass,
            6 => Reason::HopLimit,
            7 => Reason::NeighbourDown,
            8 => Reason::BadMessage,
            9 => Reason::Timeout,
            10 => Reason::SetupTimeout,
            11 => Reason::InstallFailed,
            12 => Reason::UnknownPath,
            13 => Reason::ClassRejected,
            c => Reason::Other(c),
        }
    }

    /// Stable name (`insufficient-bandwidth`).
    pub fn name(self) -> &'static str {
        match self {
            Reason::NoRoute => "no-route",
            Reason::NotAdjacent => "not-adjacent",
            Reason::InsufficientBandwidth => "insufficient-bandwidth",
            Reason::NoPluginCapacity => "no-plugin-capacity",
            Reason::UnknownClass => "unknown-class",
            Reason::HopLimit => "hop-limit",
            Reason::NeighbourDown => "neighbour-down",
            Reason::BadMessage => "bad-message",
            Reason::Timeout => "timeout",
            Reason::SetupTimeout => "setup-timeout",
            Reason::InstallFailed => "install-failed",
            Reason::UnknownPath => "unknown-path",
            Reason::ClassRejected => "class-rejected",
            Reason::Other(_) => "other",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Other(c) => write!(f, "reason-{c}"),
            r => f.write_str(r.name()),
        }
    }
}

/// The ERROR object: which hop failed, its address, why, and a text for
/// people.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HopError {
    /// Index of the failing hop.
    pub hop: u8,
    /// Its address (as listed in the route).
    pub address: IpAddr,
    /// Reason code.
    pub reason: Reason,
    /// Free text (UTF-8).
    pub text: String,
}

impl fmt::Display for HopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "hop {} ({}): {}", self.hop, self.address, self.reason)?;
        if !self.text.is_empty() {
            write!(f, ": {}", self.text)?;
        }
        Ok(())
    }
}

/// One visit's STATUS record.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StatusRecord {
    /// Hop index of the visit.
    pub hop: u8,
    /// Its address.
    pub address: IpAddr,
    /// The visit's state as JSON text.
    pub status: String,
}

/// An object the receiver did not know, kept to be passed on (kind
/// `0b11xxxxxx`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RawObject {
    /// Kind (top two bits set).
    pub kind: u8,
    /// Body.
    pub body: Vec<u8>,
}

// ----- reading ---------------------------------------------------------------

/// Read an address-family octet and the address after it; returns the
/// address and the octets consumed.
pub(super) fn read_addr(b: &[u8], kind: u8, at: usize) -> Result<(IpAddr, usize), WireError> {
    let short = WireError::BadObjectLength { kind, at };
    match b.first() {
        Some(&af::IPV4) => {
            let a: [u8; 4] = b.get(1..5).ok_or(short)?.try_into().map_err(|_| short)?;
            Ok((IpAddr::V4(Ipv4Addr::from(a)), 5))
        }
        Some(&af::IPV6) => {
            let a: [u8; 16] = b.get(1..17).ok_or(short)?.try_into().map_err(|_| short)?;
            Ok((IpAddr::V6(Ipv6Addr::from(a)), 17))
        }
        Some(_) => Err(WireError::BadAddressFamily { at }),
        None => Err(short),
    }
}

fn addr_len(a: &IpAddr) -> usize {
    match a {
        IpAddr::V4(_) => 5,
        IpAddr::V6(_) => 17,
    }
}

fn text(b: &[u8], at: usize) -> Result<String, WireError> {
    String::from_utf8(b.to_vec()).map_err(|_| WireError::BadText { at })
}

/// A PATH_ID body.
pub(super) fn parse_path_id(b: &[u8], at: usize) -> Result<PathId, WireError> {
    use field::path_id::*;
    let bad = WireError::BadObjectLength { kind: obj::PATH_ID, at };
    if b.len() < ADDR {
        return Err(bad);
    }
    let number = be32(&b[NUMBER]);
    let (initiator, n) = read_addr(&b[ADDR..], obj::PATH_ID, at)?;
    if ADDR + n != b.len() {
        return Err(bad);
    }
    Ok(PathId { initiator, number })
}

/// A FLOWSPEC body.
pub(super) fn parse_flowspec(b: &[u8], at: usize) -> Result<FlowSpec, WireError> {
    use field::flowspec::*;
    let bad = WireError::BadObjectLength {
        kind: obj::FLOWSPEC,
        at,
    };
    if b.len() < ADDRS {
        return Err(bad);
    }
    let alen = match b[FAMILY] {
        af::IPV4 => 4,
        af::IPV6 => 16,
        _ => return Err(WireError::BadAddressFamily { at }),
    };
    if b.len() != ADDRS + 2 * alen {
        return Err(bad);
    }
    let (splen, dplen) = (b[SRC_LEN], b[DST_LEN]);
    let protocol = match b[HAS_PROTOCOL] {
        0 => None,
        1 => Some(b[PROTOCOL]),
        _ => return Err(bad),
    };
    let sport = PortRange {
        lo: be16(&b[SPORT_LO]),
        hi: be16(&b[SPORT_HI]),
    };
    let dport = PortRange {
        lo: be16(&b[DPORT_LO]),
        hi: be16(&b[DPORT_HI]),
    };
    if sport.lo > sport.hi || dport.lo > dport.hi {
        return Err(WireError::BadPortRange { at });
    }
    let addr = |o: usize| -> IpAddr {
        if alen == 4 {
            let a: [u8; 4] = [b[o], b[o + 1], b[o + 2], b[o + 3]];
            IpAddr::V4(Ipv4Addr::from(a))
        } else {
            let mut a = [0u8; 16];
            a.copy_from_slice(&b[o..o + 16]);
            IpAddr::V6(Ipv6Addr::from(a))
        }
    };
    let src = IpNet::new(addr(ADDRS), splen).map_err(|_| WireError::BadPrefix { at })?;
    let dst = IpNet::new(addr(ADDRS + alen), dplen).map_err(|_| WireError::BadPrefix { at })?;
    Ok(FlowSpec {
        src,
        dst,
        sport,
        dport,
        protocol,
    })
}

/// An EXPLICIT_ROUTE body.
pub(super) fn parse_route(b: &[u8], at: usize) -> Result<ExplicitRoute, WireError> {
    use field::route::*;
    let bad = WireError::BadObjectLength {
        kind: obj::EXPLICIT_ROUTE,
        at,
    };
    if b.len() < HOPS {
        return Err(bad);
    }
    let (current, count) = (b[CURRENT], b[COUNT] as usize);
    let mut hops = Vec::with_capacity(count);
    let mut off = HOPS;
    for _ in 0..count {
        let flags = *b.get(off).ok_or(bad)?;
        let (addr, n) = read_addr(&b[off + 1..], obj::EXPLICIT_ROUTE, at)?;
        hops.push(Hop {
            addr,
            loose: flags & 1 != 0,
        });
        off += 1 + n;
    }
    if off != b.len() {
        return Err(bad);
    }
    if hops.is_empty() || current as usize >= hops.len() {
        return Err(WireError::BadHopIndex { at });
    }
    Ok(ExplicitRoute { hops, current })
}

/// A PLUGIN body.
pub(super) fn parse_plugin(b: &[u8], at: usize) -> Result<Plugin, WireError> {
    use field::plugin::*;
    let bad = WireError::BadObjectLength { kind: obj::PLUGIN, at };
    if b.len() < CLASS {
        return Err(bad);
    }
    let (hop, clen, flen) = (b[HOP], b[CLASS_LEN] as usize, be16(&b[CONFIG_LEN]) as usize);
    if CLASS + clen + flen != b.len() {
        return Err(bad);
    }
    let class = text(&b[CLASS..CLASS + clen], at)?;
    if class.is_empty() {
        return Err(WireError::BadText { at });
    }
    let config = text(&b[CLASS + clen..], at)?;
    Ok(Plugin { hop, class, config })
}

/// An ERROR body.
pub(super) fn parse_error(b: &[u8], at: usize) -> Result<HopError, WireError> {
    use field::error::*;
    if b.len() < ADDR {
        return Err(WireError::BadObjectLength { kind: obj::ERROR, at });
    }
    let (address, n) = read_addr(&b[ADDR..], obj::ERROR, at)?;
    Ok(HopError {
        hop: b[HOP],
        reason: Reason::from_code(b[REASON]),
        address,
        text: text(&b[ADDR + n..], at)?,
    })
}

/// A STATUS_RECORD body.
pub(super) fn parse_record(b: &[u8], at: usize) -> Result<StatusRecord, WireError> {
    use field::record::*;
    if b.len() < ADDR {
        return Err(WireError::BadObjectLength {
            kind: obj::STATUS_RECORD,
            at,
        });
    }
    let (address, n) = read_addr(&b[ADDR..], obj::STATUS_RECORD, at)?;
    Ok(StatusRecord {
        hop: b[HOP],
        address,
        status: text(&b[ADDR + n..], at)?,
    })
}

/// A body of exactly `N` octets.
pub(super) fn fixed<const N: usize>(b: &[u8], kind: u8, at: usize) -> Result<[u8; N], WireError> {
    b.try_into().map_err(|_| WireError::BadObjectLength { kind, at })
}

/// Iterate over an objects area: (offset in the message, kind, body).
/// Stops with an error at the first object that runs past the end.
pub(super) struct ObjIter<'a> {
    b: &'a [u8],
    off: usize,
}

impl<'a> ObjIter<'a> {
    /// The objects of message `b` from octet `off` (the end of its header).
    pub(super) fn new(b: &'a [u8], off: usize) -> Self {
        ObjIter { b, off }
    }
}

impl<'a> Iterator for ObjIter<'a> {
    type Item = Result<(usize, u8, &'a [u8]), WireError>;
    fn next(&mut self) -> Option<Self::Item> {
        use field::header::*;
        if self.off >= self.b.len() {
            return None;
        }
        let at = self.off;
        let rest = &self.b[at..];
        if rest.len() < OBJECT_HEADER_LEN {
            self.off = self.b.len();
            return Some(Err(WireError::ObjectTruncated { at }));
        }
        let len = be16(&rest[LENGTH]) as usize;
        if len < OBJECT_HEADER_LEN || len > rest.len() {
            self.off = self.b.len();
            return Some(Err(WireError::ObjectTruncated { at }));
        }
        self.off += len;
        Some(Ok((at, rest[KIND], &rest[OBJECT_HEADER_LEN..len])))
    }
}

// ----- writing ---------------------------------------------------------------

/// Write one object (header and `body`) at the start of `buf`, which
/// holds at least `OBJECT_HEADER_LEN + body.len()` octets; returns that
/// length.
pub(super) fn emit_object(buf: &mut [u8], kind: u8, body: &[u8]) -> usize {
    use field::header::*;
    let l = OBJECT_HEADER_LEN + body.len();
    buf[KIND] = kind;
    buf[FLAGS] = 0;
    buf[LENGTH].copy_from_slice(&(l as u16).to_be_bytes());
    buf[OBJECT_HEADER_LEN..l].copy_from_slice(body);
    l
}

fn put_addr(v: &mut Vec<u8>, a: &IpAddr) {
    match a {
        IpAddr::V4(a) => {
            v.push(af::IPV4);
            v.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            v.push(af::IPV6);
            v.extend_from_slice(&a.octets());
        }
    }
}

/// A PATH_ID body.
pub(super) fn path_id_body(p: &PathId) -> Vec<u8> {
    let mut v = p.number.to_be_bytes().to_vec();
    put_addr(&mut v, &p.initiator);
    v
}

/// An EXPLICIT_ROUTE body; more than [`MAX_WIRE_HOPS`] hops do not fit.
pub(super) fn route_body(r: &ExplicitRoute) -> Result<Vec<u8>, WireError> {
    if r.hops.len() > MAX_WIRE_HOPS {
        return Err(WireError::TooLong);
    }
    let mut v = vec![r.current, r.hops.len() as u8];
    for h in &r.hops {
        v.push(h.loose as u8);
        put_addr(&mut v, &h.addr);
    }
    Ok(v)
}

/// A FLOWSPEC body; both prefixes must be of one family.
pub(super) fn flowspec_body(f: &FlowSpec) -> Result<Vec<u8>, WireError> {
    if f.src.addr().is_ipv4() != f.dst.addr().is_ipv4() {
        return Err(WireError::BadAddressFamily { at: 0 });
    }
    let mut v = vec![
        if f.src.addr().is_ipv4() { af::IPV4 } else { af::IPV6 },
        f.src.prefix_len(),
        f.dst.prefix_len(),
        f.protocol.is_some() as u8,
        f.protocol.unwrap_or(0),
    ];
    for p in [f.sport.lo, f.sport.hi, f.dport.lo, f.dport.hi] {
        v.extend_from_slice(&p.to_be_bytes());
    }
    for a in [f.src.addr(), f.dst.addr()] {
        match a {
            IpAddr::V4(a) => v.extend_from_slice(&a.octets()),
            IpAddr::V6(a) => v.extend_from_slice(&a.octets()),
        }
    }
    Ok(v)
}

/// A PLUGIN body; a class longer than [`MAX_CLASS_LEN`] or a configuration
/// longer than 65535 octets does not fit.
pub(super) fn plugin_body(p: &Plugin) -> Result<Vec<u8>, WireError> {
    if p.class.len() > MAX_CLASS_LEN || p.config.len() > u16::MAX as usize {
        return Err(WireError::TooLong);
    }
    let mut v = vec![p.hop, p.class.len() as u8];
    v.extend_from_slice(&(p.config.len() as u16).to_be_bytes());
    v.extend_from_slice(p.class.as_bytes());
    v.extend_from_slice(p.config.as_bytes());
    Ok(v)
}

/// An ERROR body.
pub(super) fn error_body(e: &HopError) -> Vec<u8> {
    let mut v = Vec::with_capacity(2 + addr_len(&e.address) + e.text.len());
    v.push(e.hop);
    v.push(e.reason.code());
    put_addr(&mut v, &e.address);
    v.extend_from_slice(e.text.as_bytes());
    v
}

/// A STATUS_RECORD body.
pub(super) fn record_body(r: &StatusRecord) -> Vec<u8> {
    let mut v = vec![r.hop];
    put_addr(&mut v, &r.address);
    v.extend_from_slice(r.status.as_bytes());
    v
}
