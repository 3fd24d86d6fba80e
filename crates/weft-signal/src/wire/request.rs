//! The signed request: what a user asks of every node on the path, and
//! its ed25519 signature. No node changes these bytes; each verifies them.
//!
//! ```text
//!  0        1        2        3
//! +--------+--------+--------+--------+
//! | signed length L |  kind  |   0    |
//! +--------+--------+--------+--------+
//! |     session id (16 octets)        |
//! |     nonce (16 octets)             |
//! |     time, Unix seconds (64)       |
//! |     key, ed25519 public (32)      |
//! +--------+--------+--------+--------+   octet 76
//! | fields: type (8) | length (16) | body | …      up to octet L
//! +--------+--------+--------+--------+
//! | signature (64): ed25519 over "weft-signal-v1\0" ‖ octets 0..L
//! +--------+--------+--------+--------+
//! ```
//!
//! The fixed part comes first so that a node can answer a request whose
//! fields do not parse (kind, session and nonce are where it expects
//! them: [`SignedView`]).

use super::{
    addr_from, addr_octets, be16, be32, be64, field, put_field, valid_name, valid_version, Fields, WireError,
    MAX_CONFIG_LEN, MAX_REPEATED, MAX_URL_LEN,
};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// What the signature covers before the signed octets: the domain
/// separation of signaling from every other use of a key (plugin
/// manifests sign `weft-plugin-v1`, API requests `weft-api-v1`).
pub const SIGNING_CONTEXT: &[u8] = b"weft-signal-v1\0";
/// The fixed part of a signed request, octets.
pub const FIXED_LEN: usize = 76;
/// An ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

mod fixed {
    pub type Field = core::ops::Range<usize>;
    pub const LENGTH: Field = 0..2;
    pub const KIND: usize = 2;
    pub const RESERVED: usize = 3;
    pub const SESSION: Field = 4..20;
    pub const NONCE: Field = 20..36;
    pub const TIME: Field = 36..44;
    pub const KEY: Field = 44..76;
}

/// A session: one deployment, named by its requester (16 random octets),
/// kept by every node that installed it; REMOVE and refreshes name it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub [u8; 16]);

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionId({self})")
    }
}

impl std::str::FromStr for SessionId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("bad session id {s:?}: expected 32 hex digits"));
        }
        let mut out = [0u8; 16];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
        }
        Ok(SessionId(out))
    }
}

impl Serialize for SessionId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SessionId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// The four requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Install a module (or refresh it).
    Setup,
    /// Remove a session's module.
    Remove,
    /// Ask for facts.
    Probe,
    /// Carry a SETUP or PROBE to the last capable node, which starts it
    /// back toward the requester.
    Trigger,
}

impl Kind {
    /// The octet on the wire.
    pub fn code(self) -> u8 {
        match self {
            Kind::Setup => 1,
            Kind::Remove => 2,
            Kind::Probe => 3,
            Kind::Trigger => 4,
        }
    }
    /// The kind of octet `c`.
    pub fn from_code(c: u8) -> Result<Kind, WireError> {
        Ok(match c {
            1 => Kind::Setup,
            2 => Kind::Remove,
            3 => Kind::Probe,
            4 => Kind::Trigger,
            c => return Err(WireError::UnknownKind(c)),
        })
    }
    /// The word (`setup`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Setup => "setup",
            Kind::Remove => "remove",
            Kind::Probe => "probe",
            Kind::Trigger => "trigger",
        }
    }
}

/// Packet modules sit in the data path behind a filter; server modules
/// serve ports on the node's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModuleKind {
    /// A Weft plugin bound to the SETUP's filter.
    Packet,
    /// A program serving [`Request::server_ports`].
    Server,
}

impl ModuleKind {
    fn code(self) -> u8 {
        match self {
            ModuleKind::Packet => 1,
            ModuleKind::Server => 2,
        }
    }
    pub(crate) fn from_code(c: u8) -> Option<ModuleKind> {
        match c {
            1 => Some(ModuleKind::Packet),
            2 => Some(ModuleKind::Server),
            _ => None,
        }
    }
    pub(crate) fn wire(self) -> u8 {
        self.code()
    }
}

/// The module a SETUP installs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Module {
    /// Packet or server module.
    pub kind: ModuleKind,
    /// Its name (a plugin name).
    pub name: String,
    /// Its version (the signed manifest's must match).
    pub version: String,
}

/// Where the module's code is and what it hashes to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Code {
    /// The code server (`http://HOST:PORT`).
    pub url: String,
    /// sha256 of the module.
    pub sha256: [u8; 32],
}

/// The traffic a packet module sees: protocol, destination ports,
/// destination prefix (each optional).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Filter {
    /// IP protocol (None: any).
    pub proto: Option<u8>,
    /// Destination ports, inclusive (0–65535: any).
    pub dports: (u16, u16),
    /// Destination prefix (None: any).
    pub dst: Option<IpNet>,
}

impl Filter {
    /// Every port.
    pub const ANY_PORTS: (u16, u16) = (0, u16::MAX);
}

impl std::fmt::Display for Filter {
    /// The CLI's form: `udp:5060`, `tcp:80-89:10.1.0.0/16`, `any`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.proto {
            Some(6) => f.write_str("tcp")?,
            Some(17) => f.write_str("udp")?,
            Some(p) => write!(f, "proto{p}")?,
            None => f.write_str("any")?,
        }
        match self.dports {
            Filter::ANY_PORTS => {}
            (a, b) if a == b => write!(f, ":{a}")?,
            (a, b) => write!(f, ":{a}-{b}")?,
        }
        if let Some(d) = self.dst {
            if self.dports == Filter::ANY_PORTS {
                f.write_str(":*")?;
            }
            write!(f, ":{d}")?;
        }
        Ok(())
    }
}

/// A port a server module listens on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ServerPort {
    /// 6 (TCP) or 17 (UDP).
    pub proto: u8,
    /// The port (not 0).
    pub port: u16,
}

/// The facts a PROBE asks for, beyond the node's name and address (which
/// every entry carries).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Probe(pub u32);

impl Probe {
    /// Modules present (the requester's sessions and the node's classes).
    pub const MODULES: u32 = 1;
    /// Capabilities (module kinds hosted, protocol version).
    pub const CAPABILITIES: u32 = 2;
    /// Free resources per kind.
    pub const RESOURCES: u32 = 4;
    /// Everything.
    pub const ALL: Probe = Probe(Self::MODULES | Self::CAPABILITIES | Self::RESOURCES);
    /// Asks for `bit`?
    pub fn has(self, bit: u32) -> bool {
        self.0 & bit != 0
    }
}

/// A request, validated: what [`Signed::parse`] returns and what
/// [`Signed::sign`] encodes. Which fields a kind carries: SETUP — module,
/// code, lifetime, a filter (packet modules) or server ports (server
/// modules), dependencies, configuration; REMOVE — nothing more; PROBE —
/// the facts; TRIGGER — the inner request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// What is asked.
    pub kind: Kind,
    /// The session.
    pub session: SessionId,
    /// Unique per request of one key (replay protection).
    pub nonce: [u8; 16],
    /// When it was signed, Unix seconds.
    pub time: u64,
    /// Who asks: the ed25519 public key that signed (the user id).
    pub key: [u8; 32],
    /// The flow's destination: where the request travels.
    pub dest: IpAddr,
    /// SETUP: the module.
    pub module: Option<Module>,
    /// SETUP: where its code is.
    pub code: Option<Code>,
    /// SETUP of a packet module: what traffic it sees.
    pub filter: Option<Filter>,
    /// SETUP: seconds it lives unless refreshed.
    pub lifetime_s: Option<u32>,
    /// SETUP: modules that must be present on a node for it to install.
    pub dependencies: Vec<String>,
    /// SETUP of a server module: the ports it serves.
    pub server_ports: Vec<ServerPort>,
    /// SETUP: the instance's configuration (empty: none).
    pub config: String,
    /// PROBE: the facts wanted.
    pub probe: Option<Probe>,
    /// TRIGGER: the SETUP or PROBE to start back toward the requester.
    pub inner: Option<Box<Signed>>,
}

impl Request {
    /// A request of `kind` with nothing but its fixed part and
    /// destination; fill in the rest.
    pub fn new(kind: Kind, session: SessionId, dest: IpAddr) -> Request {
        Request {
            kind,
            session,
            nonce: [0; 16],
            time: 0,
            key: [0; 32],
            dest,
            module: None,
            code: None,
            filter: None,
            lifetime_s: None,
            dependencies: Vec::new(),
            server_ports: Vec::new(),
            config: String::new(),
            probe: None,
            inner: None,
        }
    }

    /// The signed octets (fixed part and fields, without the signature).
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        self.validate()?;
        let mut out = vec![0u8; FIXED_LEN];
        out[fixed::KIND] = self.kind.code();
        out[fixed::SESSION].copy_from_slice(&self.session.0);
        out[fixed::NONCE].copy_from_slice(&self.nonce);
        out[fixed::TIME].copy_from_slice(&self.time.to_be_bytes());
        out[fixed::KEY].copy_from_slice(&self.key);
        put_field(&mut out, field::DEST, &addr_octets(&self.dest))?;
        if let Some(m) = &self.module {
            let mut b = vec![m.kind.code(), m.name.len() as u8];
            b.extend_from_slice(m.name.as_bytes());
            b.extend_from_slice(m.version.as_bytes());
            put_field(&mut out, field::MODULE, &b)?;
        }
        if let Some(c) = &self.code {
            let mut b = c.sha256.to_vec();
            b.extend_from_slice(c.url.as_bytes());
            put_field(&mut out, field::CODE, &b)?;
        }
        if let Some(f) = &self.filter {
            let mut b = vec![f.proto.unwrap_or(0), f.dst.map(|d| d.prefix_len()).unwrap_or(0)];
            b.extend_from_slice(&f.dports.0.to_be_bytes());
            b.extend_from_slice(&f.dports.1.to_be_bytes());
            if let Some(d) = f.dst {
                b.extend_from_slice(&addr_octets(&d.network()));
            }
            put_field(&mut out, field::FILTER, &b)?;
        }
        if let Some(l) = self.lifetime_s {
            put_field(&mut out, field::LIFETIME, &l.to_be_bytes())?;
        }
        for d in &self.dependencies {
            put_field(&mut out, field::DEPENDENCY, d.as_bytes())?;
        }
        for p in &self.server_ports {
            let mut b = vec![p.proto];
            b.extend_from_slice(&p.port.to_be_bytes());
            put_field(&mut out, field::SERVER_PORT, &b)?;
        }
        if !self.config.is_empty() {
            put_field(&mut out, field::CONFIG, self.config.as_bytes())?;
        }
        if let Some(p) = self.probe {
            put_field(&mut out, field::PROBE, &p.0.to_be_bytes())?;
        }
        if let Some(i) = &self.inner {
            put_field(&mut out, field::INNER, i.as_bytes())?;
        }
        let l = u16::try_from(out.len()).map_err(|_| WireError::TooLong)?;
        if out.len() + SIGNATURE_LEN > super::MAX_MESSAGE_LEN {
            return Err(WireError::TooLong);
        }
        out[fixed::LENGTH].copy_from_slice(&l.to_be_bytes());
        Ok(out)
    }

    /// The kind's rules: which fields it needs and which it may carry,
    /// and each value's limits. [`Request::encode`] and the parser both
    /// apply them.
    fn validate(&self) -> Result<(), WireError> {
        let missing = |kind| Err(WireError::MissingField { kind });
        let unexpected = |kind| Err(WireError::UnexpectedField { kind, at: 0 });
        let setup = self.kind == Kind::Setup;
        if let Some(m) = &self.module {
            if !setup {
                return unexpected(field::MODULE);
            }
            if !valid_name(&m.name) || !valid_version(&m.version) {
                return Err(WireError::BadText {
                    kind: field::MODULE,
                    at: 0,
                });
            }
        }
        if let Some(c) = &self.code {
            if !setup {
                return unexpected(field::CODE);
            }
            if !valid_url(&c.url) {
                return Err(WireError::BadText {
                    kind: field::CODE,
                    at: 0,
                });
            }
        }
        if self.filter.is_some() && !setup {
            return unexpected(field::FILTER);
        }
        if let Some(f) = &self.filter {
            if f.dports.0 > f.dports.1 || f.dst.is_some_and(|d| d != d.trunc()) {
                return Err(WireError::BadField {
                    kind: field::FILTER,
                    at: 0,
                });
            }
        }
        if self.lifetime_s.is_some() && !setup {
            return unexpected(field::LIFETIME);
        }
        if !self.dependencies.is_empty() && !setup {
            return unexpected(field::DEPENDENCY);
        }
        if self.dependencies.len() > MAX_REPEATED || self.server_ports.len() > MAX_REPEATED {
            return Err(WireError::TooLong);
        }
        if self.dependencies.iter().any(|d| !valid_name(d)) {
            return Err(WireError::BadText {
                kind: field::DEPENDENCY,
                at: 0,
            });
        }
        if !self.server_ports.is_empty() && !setup {
            return unexpected(field::SERVER_PORT);
        }
        if self
            .server_ports
            .iter()
            .any(|p| !matches!(p.proto, 6 | 17) || p.port == 0)
        {
            return Err(WireError::BadField {
                kind: field::SERVER_PORT,
                at: 0,
            });
        }
        if !self.config.is_empty() && !setup {
            return unexpected(field::CONFIG);
        }
        if self.config.len() > MAX_CONFIG_LEN {
            return Err(WireError::BadText {
                kind: field::CONFIG,
                at: 0,
            });
        }
        if self.probe.is_some() && self.kind != Kind::Probe {
            return unexpected(field::PROBE);
        }
        if self.inner.is_some() != (self.kind == Kind::Trigger) {
            return if self.kind == Kind::Trigger {
                missing(field::INNER)
            } else {
                unexpected(field::INNER)
            };
        }
        if let Some(i) = &self.inner {
            let r = i.request();
            if !matches!(r.kind, Kind::Setup | Kind::Probe) || r.key != self.key || r.session != self.session {
                return Err(WireError::BadInner);
            }
        }
        if setup {
            let Some(m) = &self.module else {
                return missing(field::MODULE);
            };
            if self.code.is_none() {
                return missing(field::CODE);
            }
            if self.lifetime_s.is_none() {
                return missing(field::LIFETIME);
            }
            match m.kind {
                ModuleKind::Packet if self.filter.is_none() => return missing(field::FILTER),
                ModuleKind::Packet if !self.server_ports.is_empty() => return unexpected(field::SERVER_PORT),
                ModuleKind::Server if self.server_ports.is_empty() => return missing(field::SERVER_PORT),
                ModuleKind::Server if self.filter.is_some() => return unexpected(field::FILTER),
                _ => {}
            }
        }
        Ok(())
    }

    /// Parse the signed octets `b` (fixed part and fields; `b.len()` is the
    /// signed length). `nested`: inside a TRIGGER (an INNER field is not
    /// allowed there, which bounds the recursion at one level).
    fn parse_signed_part(b: &[u8], nested: bool) -> Result<Request, WireError> {
        let v = SignedView::new_unchecked(b);
        if b[fixed::RESERVED] != 0 {
            return Err(WireError::Reserved { at: fixed::RESERVED });
        }
        let mut r = Request::new(Kind::from_code(v.kind())?, v.session(), IpAddr::from([0, 0, 0, 0]));
        r.nonce = v.nonce();
        r.time = v.time();
        r.key = v.key();
        let mut dest = None;
        let mut seen: Vec<u8> = Vec::new();
        for f in Fields::new(&b[FIXED_LEN..], FIXED_LEN) {
            let (kind, body, at) = f?;
            let bad = WireError::BadField { kind, at };
            let text = || {
                std::str::from_utf8(body)
                    .map(str::to_string)
                    .map_err(|_| WireError::BadText { kind, at })
            };
            let once = matches!(
                kind,
                field::DEST
                    | field::MODULE
                    | field::CODE
                    | field::FILTER
                    | field::LIFETIME
                    | field::CONFIG
                    | field::PROBE
                    | field::INNER
            );
            if once && seen.contains(&kind) {
                return Err(WireError::DuplicateField { kind, at });
            }
            seen.push(kind);
            match kind {
                field::DEST => dest = Some(addr_from(body).ok_or(bad)?),
                field::MODULE => {
                    let (&k, rest) = body.split_first().ok_or(bad)?;
                    let (&n, rest) = rest.split_first().ok_or(bad)?;
                    let kind_ = ModuleKind::from_code(k).ok_or(bad)?;
                    let name = rest.get(..n as usize).ok_or(bad)?;
                    let version = &rest[n as usize..];
                    let (Ok(name), Ok(version)) = (std::str::from_utf8(name), std::str::from_utf8(version)) else {
                        return Err(WireError::BadText { kind, at });
                    };
                    if !valid_name(name) || !valid_version(version) {
                        return Err(WireError::BadText { kind, at });
                    }
                    r.module = Some(Module {
                        kind: kind_,
                        name: name.into(),
                        version: version.into(),
                    });
                }
                field::CODE => {
                    if body.len() <= 32 {
                        return Err(bad);
                    }
                    let mut sha256 = [0u8; 32];
                    sha256.copy_from_slice(&body[..32]);
                    let url = std::str::from_utf8(&body[32..]).map_err(|_| WireError::BadText { kind, at })?;
                    if !valid_url(url) {
                        return Err(WireError::BadText { kind, at });
                    }
                    r.code = Some(Code {
                        url: url.into(),
                        sha256,
                    });
                }
                field::FILTER => {
                    if body.len() < 6 {
                        return Err(bad);
                    }
                    let (proto, plen) = (body[0], body[1]);
                    let dports = (be16(&body[2..4]), be16(&body[4..6]));
                    let dst = match &body[6..] {
                        [] if plen == 0 => None,
                        [] => return Err(bad),
                        a => {
                            let addr = addr_from(a).ok_or(bad)?;
                            let net = IpNet::new(addr, plen).map_err(|_| bad)?;
                            if net.trunc() != net {
                                return Err(bad);
                            }
                            Some(net)
                        }
                    };
                    if dports.0 > dports.1 {
                        return Err(bad);
                    }
                    r.filter = Some(Filter {
                        proto: (proto != 0).then_some(proto),
                        dports,
                        dst,
                    });
                }
                field::LIFETIME => {
                    if body.len() != 4 {
                        return Err(bad);
                    }
                    r.lifetime_s = Some(be32(body));
                }
                field::DEPENDENCY => {
                    let d = text()?;
                    if !valid_name(&d) {
                        return Err(WireError::BadText { kind, at });
                    }
                    if r.dependencies.len() >= MAX_REPEATED {
                        return Err(WireError::DuplicateField { kind, at });
                    }
                    r.dependencies.push(d);
                }
                field::SERVER_PORT => {
                    if body.len() != 3 || !matches!(body[0], 6 | 17) || be16(&body[1..3]) == 0 {
                        return Err(bad);
                    }
                    if r.server_ports.len() >= MAX_REPEATED {
                        return Err(WireError::DuplicateField { kind, at });
                    }
                    r.server_ports.push(ServerPort {
                        proto: body[0],
                        port: be16(&body[1..3]),
                    });
                }
                field::CONFIG => {
                    let c = text()?;
                    if c.is_empty() || c.len() > MAX_CONFIG_LEN {
                        return Err(WireError::BadText { kind, at });
                    }
                    r.config = c;
                }
                field::PROBE => {
                    if body.len() != 4 {
                        return Err(bad);
                    }
                    r.probe = Some(Probe(be32(body)));
                }
                field::INNER => {
                    if nested {
                        return Err(WireError::UnexpectedField { kind, at });
                    }
                    r.inner = Some(Box::new(Signed::parse_inner(body, true).map_err(|e| match e {
                        WireError::BadInner => e,
                        _ => bad,
                    })?));
                }
                k if k & 0x80 != 0 => {}
                k => return Err(WireError::UnknownField { kind: k, at }),
            }
        }
        r.dest = dest.ok_or(WireError::MissingField { kind: field::DEST })?;
        r.validate()?;
        Ok(r)
    }
}

/// A code server's URL: `http://` or `https://` and printable ASCII, at
/// most [`MAX_URL_LEN`] octets. Whether a node fetches from it is the
/// node's decision (only from its configured code servers).
fn valid_url(u: &str) -> bool {
    u.len() <= MAX_URL_LEN
        && (u.starts_with("http://") || u.starts_with("https://"))
        && u.bytes().all(|b| b.is_ascii_graphic())
}

/// Who signs requests: an ed25519 key. Implemented here for
/// [`ed25519_dalek::SigningKey`]; `weft-control` implements it for the
/// key files `weft keygen` writes.
pub trait Signer {
    /// The 32-octet public key (the user id on the wire).
    fn public_key(&self) -> [u8; 32];
    /// Sign `msg`.
    fn sign(&self, msg: &[u8]) -> [u8; 64];
}

impl Signer for ed25519_dalek::SigningKey {
    fn public_key(&self) -> [u8; 32] {
        self.verifying_key().to_bytes()
    }
    fn sign(&self, msg: &[u8]) -> [u8; 64] {
        ed25519_dalek::Signer::sign(self, msg).to_bytes()
    }
}

/// A view over the fixed part of a signed request.
#[derive(Clone, Copy, Debug)]
pub struct SignedView<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> SignedView<T> {
    /// Wrap without checks (accessors panic on buffers shorter than
    /// `FIXED_LEN`).
    pub fn new_unchecked(buf: T) -> Self {
        SignedView { buf }
    }

    /// Wrap after [`SignedView::check`].
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let v = Self::new_unchecked(buf);
        v.check()?;
        Ok(v)
    }

    /// The fixed part is there and the signed length leaves exactly a
    /// signature after it.
    pub fn check(&self) -> Result<(), WireError> {
        let b = self.buf.as_ref();
        if b.len() < FIXED_LEN + SIGNATURE_LEN {
            return Err(WireError::Truncated);
        }
        let l = self.signed_len() as usize;
        if l < FIXED_LEN || l + SIGNATURE_LEN != b.len() {
            return Err(WireError::BadLength {
                field: l,
                actual: b.len(),
            });
        }
        Ok(())
    }

    /// Octets covered by the signature.
    pub fn signed_len(&self) -> u16 {
        be16(&self.buf.as_ref()[fixed::LENGTH])
    }
    /// The kind octet.
    pub fn kind(&self) -> u8 {
        self.buf.as_ref()[fixed::KIND]
    }
    /// The session.
    pub fn session(&self) -> SessionId {
        let mut s = [0u8; 16];
        s.copy_from_slice(&self.buf.as_ref()[fixed::SESSION]);
        SessionId(s)
    }
    /// The nonce.
    pub fn nonce(&self) -> [u8; 16] {
        let mut s = [0u8; 16];
        s.copy_from_slice(&self.buf.as_ref()[fixed::NONCE]);
        s
    }
    /// The time, Unix seconds.
    pub fn time(&self) -> u64 {
        be64(&self.buf.as_ref()[fixed::TIME])
    }
    /// The key.
    pub fn key(&self) -> [u8; 32] {
        let mut s = [0u8; 32];
        s.copy_from_slice(&self.buf.as_ref()[fixed::KEY]);
        s
    }
}

/// A request with its signature: the octets that travel, unchanged, and
/// the request they say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    request: Request,
    bytes: Vec<u8>,
}

impl Signed {
    /// Encode `request` with `signer`'s key (which replaces
    /// [`Request::key`]) and sign it.
    pub fn sign(mut request: Request, signer: &dyn Signer) -> Result<Signed, WireError> {
        request.key = signer.public_key();
        let mut bytes = request.encode()?;
        let mut msg = SIGNING_CONTEXT.to_vec();
        msg.extend_from_slice(&bytes);
        bytes.extend_from_slice(&signer.sign(&msg));
        Ok(Signed { request, bytes })
    }

    /// Parse a signed request that fills `b` exactly. The signature is not
    /// checked ([`Signed::verify`] does).
    pub fn parse(b: &[u8]) -> Result<Signed, WireError> {
        Self::parse_inner(b, false)
    }

    fn parse_inner(b: &[u8], nested: bool) -> Result<Signed, WireError> {
        let v = SignedView::new_checked(b)?;
        let l = v.signed_len() as usize;
        let request = Request::parse_signed_part(&b[..l], nested)?;
        Ok(Signed {
            request,
            bytes: b.to_vec(),
        })
    }

    /// The request.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// The octets that travel: signed part and signature.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The octets the signature covers (after [`SIGNING_CONTEXT`]).
    pub fn signed_part(&self) -> &[u8] {
        &self.bytes[..self.bytes.len() - SIGNATURE_LEN]
    }

    /// The signature.
    pub fn signature(&self) -> [u8; 64] {
        let mut s = [0u8; 64];
        s.copy_from_slice(&self.bytes[self.bytes.len() - SIGNATURE_LEN..]);
        s
    }

    /// Does the signature verify with the request's key (strict ed25519:
    /// no malleable signatures, no weak keys)?
    pub fn verify(&self) -> bool {
        let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&self.request.key) else {
            return false;
        };
        let mut msg = SIGNING_CONTEXT.to_vec();
        msg.extend_from_slice(self.signed_part());
        let sig = ed25519_dalek::Signature::from_bytes(&self.signature());
        key.verify_strict(&msg, &sig).is_ok()
    }

    /// Octets on the wire.
    pub fn buffer_len(&self) -> usize {
        self.bytes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::field as f;

    fn key() -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[7; 32])
    }

    /// SETUP of netmonitor 1.0 from http://10.0.0.9:8000 (sha256 all
    /// 0x11), UDP port 5060 to 10.1.0.0/16, 3600 s, needing `counter`,
    /// session 0x22…, nonce 0x33…, at 1,700,000,000, toward 10.2.0.5.
    fn setup() -> Request {
        let mut r = Request::new(Kind::Setup, SessionId([0x22; 16]), "10.2.0.5".parse().unwrap());
        r.nonce = [0x33; 16];
        r.time = 1_700_000_000;
        r.key = key().public_key();
        r.module = Some(Module {
            kind: ModuleKind::Packet,
            name: "netmonitor".into(),
            version: "1.0".into(),
        });
        r.code = Some(Code {
            url: "http://10.0.0.9:8000".into(),
            sha256: [0x11; 32],
        });
        r.filter = Some(Filter {
            proto: Some(17),
            dports: (5060, 5060),
            dst: Some("10.1.0.0/16".parse().unwrap()),
        });
        r.lifetime_s = Some(3600);
        r.dependencies = vec!["counter".into()];
        r
    }

    /// The signed part of [`setup`], octet by octet (the key's 32 octets
    /// are checked separately: they come from the seed).
    fn setup_bytes() -> Vec<u8> {
        let mut b: Vec<u8> = Vec::new();
        b.extend_from_slice(&[0x00, 0xba, 0x01, 0x00]); // signed length 186, SETUP, reserved
        b.extend_from_slice(&[0x22; 16]); // session
        b.extend_from_slice(&[0x33; 16]); // nonce
        b.extend_from_slice(&[0, 0, 0, 0, 0x65, 0x53, 0xf1, 0x00]); // time 1,700,000,000
        b.extend_from_slice(&key().public_key()); // key
        b.extend_from_slice(&[f::DEST, 0x00, 0x04, 10, 2, 0, 5]);
        b.extend_from_slice(&[f::MODULE, 0x00, 0x0f, 0x01, 0x0a]); // packet, name of 10
        b.extend_from_slice(b"netmonitor1.0");
        b.extend_from_slice(&[f::CODE, 0x00, 0x34]); // 32 + 20
        b.extend_from_slice(&[0x11; 32]);
        b.extend_from_slice(b"http://10.0.0.9:8000");
        b.extend_from_slice(&[f::FILTER, 0x00, 0x0a, 17, 16, 0x13, 0xc4, 0x13, 0xc4, 10, 1, 0, 0]);
        b.extend_from_slice(&[f::LIFETIME, 0x00, 0x04, 0x00, 0x00, 0x0e, 0x10]);
        b.extend_from_slice(&[f::DEPENDENCY, 0x00, 0x07]);
        b.extend_from_slice(b"counter");
        b
    }

    #[test]
    fn emit() {
        let bytes = setup().encode().unwrap();
        assert_eq!(bytes, setup_bytes());
        assert_eq!(bytes.len(), 186);
    }

    #[test]
    fn deconstruct() {
        let s = Signed::sign(setup(), &key()).unwrap();
        let v = SignedView::new_checked(s.as_bytes()).unwrap();
        assert_eq!(v.signed_len(), 186);
        assert_eq!(v.kind(), Kind::Setup.code());
        assert_eq!(v.session(), SessionId([0x22; 16]));
        assert_eq!(v.nonce(), [0x33; 16]);
        assert_eq!(v.time(), 1_700_000_000);
        assert_eq!(v.key(), key().public_key());
    }

    #[test]
    fn parse_and_verify() {
        let s = Signed::sign(setup(), &key()).unwrap();
        assert_eq!(&s.as_bytes()[..186], &setup_bytes()[..]);
        assert_eq!(s.buffer_len(), 186 + 64);
        let p = Signed::parse(s.as_bytes()).unwrap();
        assert_eq!(p.request(), &setup());
        assert!(p.verify());
        // Any changed octet of the signed part breaks the signature.
        let mut b = s.as_bytes().to_vec();
        b[100] ^= 1;
        let p = Signed::parse(&b).unwrap();
        assert!(!p.verify());
        // So does another key claiming it.
        let mut b = s.as_bytes().to_vec();
        let other = ed25519_dalek::SigningKey::from_bytes(&[8; 32]).public_key();
        b[44..76].copy_from_slice(&other);
        assert!(!Signed::parse(&b).unwrap().verify());
    }

    #[test]
    fn construct_each_kind() {
        let k = key();
        let dest: IpAddr = "2001:db8::5".parse().unwrap();
        let mut probe = Request::new(Kind::Probe, SessionId([1; 16]), dest);
        probe.probe = Some(Probe::ALL);
        let remove = Request::new(Kind::Remove, SessionId([1; 16]), dest);
        let inner = Signed::sign(probe.clone(), &k).unwrap();
        let mut trigger = Request::new(Kind::Trigger, SessionId([1; 16]), dest);
        trigger.inner = Some(Box::new(inner));
        let mut server = setup();
        server.module.as_mut().unwrap().kind = ModuleKind::Server;
        server.filter = None;
        server.server_ports = vec![ServerPort { proto: 6, port: 8080 }];
        server.config = "hook=x-cache".into();
        for r in [probe, remove, trigger, server] {
            let s = Signed::sign(r.clone(), &k).unwrap();
            let mut r = r;
            r.key = k.public_key();
            assert_eq!(Signed::parse(s.as_bytes()).unwrap().request(), &r, "{:?}", r.kind);
        }
    }

    fn signed_with(edit: impl Fn(&mut Vec<u8>)) -> Result<Signed, WireError> {
        let mut b = setup_bytes();
        edit(&mut b);
        let l = b.len() as u16;
        b[0..2].copy_from_slice(&l.to_be_bytes());
        b.extend_from_slice(&[0xa5; 64]);
        Signed::parse(&b)
    }

    #[test]
    fn malformed_requests_are_refused_by_kind() {
        // Cut anywhere: truncated, or a length that does not match.
        let s = Signed::sign(setup(), &key()).unwrap();
        for n in 0..s.buffer_len() {
            assert!(Signed::parse(&s.as_bytes()[..n]).is_err(), "cut at {n}");
        }
        assert_eq!(
            Signed::parse(&s.as_bytes()[..FIXED_LEN + SIGNATURE_LEN - 1]).unwrap_err(),
            WireError::Truncated
        );
        // Unknown kind, reserved octet.
        assert_eq!(signed_with(|b| b[2] = 9).unwrap_err(), WireError::UnknownKind(9));
        assert_eq!(signed_with(|b| b[3] = 1).unwrap_err(), WireError::Reserved { at: 3 });
        // An unknown mandatory field is refused; an optional one ignored.
        assert_eq!(
            signed_with(|b| b.extend_from_slice(&[0x40, 0, 0])).unwrap_err(),
            WireError::UnknownField { kind: 0x40, at: 186 }
        );
        assert_eq!(
            signed_with(|b| b.extend_from_slice(&[0xc0, 0, 1, 9]))
                .unwrap()
                .request(),
            &setup()
        );
        // A field that runs past the end.
        assert_eq!(
            signed_with(|b| b.extend_from_slice(&[f::CONFIG, 0, 9, b'x'])).unwrap_err(),
            WireError::FieldTruncated { at: 186 }
        );
        // Duplicates, a bad module name, a bad URL, a bad port range.
        assert!(matches!(
            signed_with(|b| b.extend_from_slice(&[f::LIFETIME, 0, 4, 0, 0, 0, 1])).unwrap_err(),
            WireError::DuplicateField { kind: f::LIFETIME, .. }
        ));
        assert!(matches!(
            signed_with(|b| b[96] = b'N').unwrap_err(),
            WireError::BadText { kind: f::MODULE, .. }
        ));
        assert!(matches!(
            signed_with(|b| b[150] = b' ').unwrap_err(),
            WireError::BadText { kind: f::CODE, .. }
        ));
        assert!(matches!(
            signed_with(|b| b[161] = 0x14).unwrap_err(),
            WireError::BadField { kind: f::FILTER, .. }
        ));
        // A prefix with host bits set.
        assert!(matches!(
            signed_with(|b| b[168] = 1).unwrap_err(),
            WireError::BadField { kind: f::FILTER, .. }
        ));
    }

    #[test]
    fn kinds_need_their_fields() {
        let k = key();
        let mut r = setup();
        r.lifetime_s = None;
        assert_eq!(
            Signed::sign(r, &k).unwrap_err(),
            WireError::MissingField { kind: f::LIFETIME }
        );
        let mut r = setup();
        r.filter = None;
        assert_eq!(
            Signed::sign(r, &k).unwrap_err(),
            WireError::MissingField { kind: f::FILTER }
        );
        let mut r = Request::new(Kind::Remove, SessionId([1; 16]), "10.0.0.1".parse().unwrap());
        r.lifetime_s = Some(5);
        assert!(matches!(
            Signed::sign(r, &k).unwrap_err(),
            WireError::UnexpectedField { kind: f::LIFETIME, .. }
        ));
        let r = Request::new(Kind::Trigger, SessionId([1; 16]), "10.0.0.1".parse().unwrap());
        assert_eq!(
            Signed::sign(r, &k).unwrap_err(),
            WireError::MissingField { kind: f::INNER }
        );
        // A TRIGGER of a REMOVE, of another session, or of another key.
        let remove = Request::new(Kind::Remove, SessionId([1; 16]), "10.0.0.1".parse().unwrap());
        let mut t = Request::new(Kind::Trigger, SessionId([1; 16]), "10.0.0.1".parse().unwrap());
        t.inner = Some(Box::new(Signed::sign(remove, &k).unwrap()));
        assert_eq!(Signed::sign(t, &k).unwrap_err(), WireError::BadInner);
        let mut p = Request::new(Kind::Probe, SessionId([2; 16]), "10.0.0.1".parse().unwrap());
        p.probe = Some(Probe::ALL);
        let mut t = Request::new(Kind::Trigger, SessionId([1; 16]), "10.0.0.1".parse().unwrap());
        t.inner = Some(Box::new(Signed::sign(p.clone(), &k).unwrap()));
        assert_eq!(Signed::sign(t, &k).unwrap_err(), WireError::BadInner);
        p.session = SessionId([1; 16]);
        let other = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        let mut t = Request::new(Kind::Trigger, SessionId([1; 16]), "10.0.0.1".parse().unwrap());
        t.inner = Some(Box::new(Signed::sign(p, &other).unwrap()));
        assert_eq!(Signed::sign(t, &k).unwrap_err(), WireError::BadInner);
    }

    #[test]
    fn triggers_do_not_nest() {
        let k = key();
        let mut p = Request::new(Kind::Probe, SessionId([1; 16]), "10.0.0.1".parse().unwrap());
        p.probe = Some(Probe::ALL);
        let mut t = Request::new(Kind::Trigger, SessionId([1; 16]), "10.0.0.1".parse().unwrap());
        t.inner = Some(Box::new(Signed::sign(p, &k).unwrap()));
        let t1 = Signed::sign(t, &k).unwrap();
        // Hand-build a TRIGGER whose INNER is itself a TRIGGER.
        let mut b = t1.signed_part()[..FIXED_LEN].to_vec();
        put_field(&mut b, f::DEST, &[10, 0, 0, 1]).unwrap();
        put_field(&mut b, f::INNER, t1.as_bytes()).unwrap();
        let l = b.len() as u16;
        b[0..2].copy_from_slice(&l.to_be_bytes());
        b.extend_from_slice(&[0; 64]);
        assert!(matches!(
            Signed::parse(&b).unwrap_err(),
            WireError::BadField { kind: f::INNER, .. }
        ));
    }

    #[test]
    fn session_ids_print_and_parse() {
        let s = SessionId([0xab; 16]);
        assert_eq!(s.to_string(), "ab".repeat(16));
        assert_eq!(s.to_string().parse::<SessionId>(), Ok(s));
        assert!("xyz".parse::<SessionId>().is_err());
        let f = Filter {
            proto: Some(17),
            dports: (5060, 5060),
            dst: Some("10.1.0.0/16".parse().unwrap()),
        };
        assert_eq!(f.to_string(), "udp:5060:10.1.0.0/16");
    }
}
