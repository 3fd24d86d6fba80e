//! The server's side of the memif handshake, sans-IO.
//!
//! In: each message the client sent, and whether a file descriptor came
//! with it ([`ServerHandshake::handle`]). Out: the reply to send (ACK,
//! CONNECTED or DISCONNECT) and, at CONNECT, the [`Declared`] regions and
//! rings for the driver to map and check. The driver owns the descriptors;
//! this only decides.
//!
//! ```text
//! accept ─HELLO→  INIT ─ACK→  (ADD_REGION ─ACK→)*  (ADD_RING ─ACK→)*  CONNECT ─CONNECTED→
//! ```
//!
//! Any message out of order, a wrong version, an unknown interface id or
//! secret, an index past the limits sent in HELLO, a missing descriptor,
//! or a ring in a region not (yet) added ends the handshake with
//! DISCONNECT and a reason ([`Refusal`]).

use crate::ring::MAX_LOG2_RING;
use crate::wire::{AddRegion, AddRing, Fixed, Hello, Init, Mode, Msg, NAME_LEN, SECRET_LEN, VERSION};
use thiserror::Error;

/// Most regions a client may add (indices 0..MAX_REGIONS).
pub const MAX_REGIONS: u16 = 16;
/// Most rings per direction (Weft channels use one).
pub const MAX_RINGS: u16 = 1;
/// Most bytes of shared memory one client may declare (regions summed).
pub const MAX_SHARED_BYTES: u64 = 1 << 30;

/// What a client declared, once it sent CONNECT.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Declared {
    /// Interface id from INIT.
    pub id: u32,
    /// Client application name.
    pub app: String,
    /// Regions in index order (all of 0..n are present).
    pub regions: Vec<AddRegion>,
    /// C2S rings in index order.
    pub c2s: Vec<AddRing>,
    /// S2C rings in index order.
    pub s2c: Vec<AddRing>,
}

/// Why the server ends a handshake (sent as the DISCONNECT reason).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum Refusal {
    /// The message came at the wrong point.
    #[error("unexpected {0} message")]
    Unexpected(&'static str),
    /// The client speaks another protocol version.
    #[error("unsupported memif version {0:#06x}")]
    Version(u16),
    /// Only Ethernet mode is served.
    #[error("only ethernet mode is supported")]
    Mode,
    /// No channel listens on this id, or the secret is wrong.
    #[error("no such interface or wrong secret")]
    Interface,
    /// An index past the limits in HELLO, or one added twice.
    #[error("{0} index {1} out of range or repeated")]
    Index(&'static str, u16),
    /// ADD_REGION / ADD_RING without its descriptor.
    #[error("{0} came without a file descriptor")]
    NoFd(&'static str),
    /// A region of size 0 or the sum past [`MAX_SHARED_BYTES`].
    #[error("region size {0} refused")]
    Size(u64),
    /// A ring in a region not added, or too large, or with a private header.
    #[error("ring refused: {0}")]
    Ring(&'static str),
    /// CONNECT without a ring in each direction.
    #[error("CONNECT needs one C2S and one S2C ring")]
    Rings,
    /// The client disconnected.
    #[error("client disconnected: {0}")]
    Client(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Init,
    Declaring,
    Connected,
    Closed,
}

/// The reply the driver sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// ACK the message.
    Ack,
    /// Map and check everything declared, then send CONNECTED (or, if that
    /// fails, DISCONNECT).
    Connect(Declared),
}

/// The server's handshake with one client.
#[derive(Debug)]
pub struct ServerHandshake {
    name: Fixed<NAME_LEN>,
    state: State,
    declared: Declared,
    total: u64,
}

impl ServerHandshake {
    /// A handshake for a server called `name`.
    pub fn new(name: &str) -> ServerHandshake {
        ServerHandshake {
            name: Fixed::new(name.as_bytes()),
            state: State::Init,
            declared: Declared::default(),
            total: 0,
        }
    }

    /// The HELLO to send on accept.
    pub fn hello(&self) -> Msg {
        Msg::Hello(Hello {
            name: self.name,
            min_version: VERSION,
            max_version: VERSION,
            max_region: MAX_REGIONS - 1,
            max_c2s_ring: MAX_RINGS - 1,
            max_s2c_ring: MAX_RINGS - 1,
            max_log2_ring_size: MAX_LOG2_RING,
        })
    }

    /// The CONNECTED to send once the driver mapped everything.
    pub fn connected(&mut self) -> Msg {
        self.state = State::Connected;
        Msg::Connected(self.name)
    }

    /// Whether CONNECTED was sent.
    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    /// Take one message. `accept(id, secret)` says whether an interface
    /// with that id and secret waits for a client.
    pub fn handle(
        &mut self,
        msg: &Msg,
        has_fd: bool,
        accept: impl FnOnce(u32, &Fixed<SECRET_LEN>) -> bool,
    ) -> Result<Reply, Refusal> {
        let r = self.step(msg, has_fd, accept);
        if r.is_err() {
            self.state = State::Closed;
        }
        r
    }

    fn step(
        &mut self,
        msg: &Msg,
        has_fd: bool,
        accept: impl FnOnce(u32, &Fixed<SECRET_LEN>) -> bool,
    ) -> Result<Reply, Refusal> {
        match (self.state, msg) {
            (_, Msg::Disconnect(d)) => Err(Refusal::Client(d.reason.text())),
            (State::Init, Msg::Init(i)) => self.init(i, accept),
            (State::Declaring, Msg::AddRegion(r)) => {
                if !has_fd {
                    return Err(Refusal::NoFd("ADD_REGION"));
                }
                if r.index as usize != self.declared.regions.len() || r.index >= MAX_REGIONS {
                    return Err(Refusal::Index("region", r.index));
                }
                self.total = self.total.saturating_add(r.size);
                if r.size == 0 || self.total > MAX_SHARED_BYTES {
                    return Err(Refusal::Size(r.size));
                }
                self.declared.regions.push(*r);
                Ok(Reply::Ack)
            }
            (State::Declaring, Msg::AddRing(r)) => {
                if !has_fd {
                    return Err(Refusal::NoFd("ADD_RING"));
                }
                let list = if r.is_c2s() {
                    &mut self.declared.c2s
                } else {
                    &mut self.declared.s2c
                };
                if r.index as usize != list.len() || r.index >= MAX_RINGS {
                    return Err(Refusal::Index("ring", r.index));
                }
                if r.region as usize >= self.declared.regions.len() {
                    return Err(Refusal::Ring("its region was not added"));
                }
                if r.log2_ring_size > MAX_LOG2_RING {
                    return Err(Refusal::Ring("larger than 2^14 descriptors"));
                }
                if r.private_hdr_size != 0 {
                    return Err(Refusal::Ring("private headers are not supported"));
                }
                list.push(*r);
                Ok(Reply::Ack)
            }
            (State::Declaring, Msg::Connect(name)) => {
                if self.declared.c2s.is_empty() || self.declared.s2c.is_empty() {
                    return Err(Refusal::Rings);
                }
                let _ = name;
                Ok(Reply::Connect(std::mem::take(&mut self.declared)))
            }
            (_, m) => Err(Refusal::Unexpected(kind_name(m))),
        }
    }

    fn init(&mut self, i: &Init, accept: impl FnOnce(u32, &Fixed<SECRET_LEN>) -> bool) -> Result<Reply, Refusal> {
        if i.version != VERSION {
            return Err(Refusal::Version(i.version));
        }
        if i.mode != Mode::Ethernet {
            return Err(Refusal::Mode);
        }
        if !accept(i.id, &i.secret) {
            return Err(Refusal::Interface);
        }
        self.declared.id = i.id;
        self.declared.app = i.name.text();
        self.state = State::Declaring;
        Ok(Reply::Ack)
    }
}

fn kind_name(m: &Msg) -> &'static str {
    match m {
        Msg::Ack => "ACK",
        Msg::Hello(_) => "HELLO",
        Msg::Init(_) => "INIT",
        Msg::AddRegion(_) => "ADD_REGION",
        Msg::AddRing(_) => "ADD_RING",
        Msg::Connect(_) => "CONNECT",
        Msg::Connected(_) => "CONNECTED",
        Msg::Disconnect(_) => "DISCONNECT",
    }
}

/// The messages a client sends after HELLO (what DPDK's `net_memif` sends
/// in one go): INIT, one region, one ring each way, CONNECT.
pub fn client_messages(id: u32, secret: &[u8], app: &str, region_size: u64, c2s: AddRing, s2c: AddRing) -> [Msg; 5] {
    [
        Msg::Init(Init {
            version: VERSION,
            id,
            mode: Mode::Ethernet,
            secret: Fixed::new(secret),
            name: Fixed::new(app.as_bytes()),
        }),
        Msg::AddRegion(AddRegion {
            index: 0,
            size: region_size,
        }),
        Msg::AddRing(c2s),
        Msg::AddRing(s2c),
        Msg::Connect(Fixed::new(app.as_bytes())),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::RING_FLAG_C2S;

    fn ring(c2s: bool) -> AddRing {
        AddRing {
            flags: if c2s { RING_FLAG_C2S } else { 0 },
            index: 0,
            region: 0,
            offset: 0,
            log2_ring_size: 10,
            private_hdr_size: 0,
        }
    }

    fn ok(_: u32, s: &Fixed<SECRET_LEN>) -> bool {
        s.bytes() == b"pw"
    }

    #[test]
    fn script_to_connected() {
        let mut h = ServerHandshake::new("weft");
        assert!(matches!(h.hello(), Msg::Hello(x) if x.max_log2_ring_size == 14 && x.min_version == 0x200));
        let msgs = client_messages(4, b"pw", "app", 1 << 20, ring(true), ring(false));
        for m in &msgs[..4] {
            assert_eq!(h.handle(m, true, ok), Ok(Reply::Ack));
        }
        let Ok(Reply::Connect(d)) = h.handle(&msgs[4], false, ok) else {
            panic!("no connect")
        };
        assert_eq!(
            (d.id, d.app.as_str(), d.regions.len(), d.c2s.len(), d.s2c.len()),
            (4, "app", 1, 1, 1)
        );
        assert!(matches!(h.connected(), Msg::Connected(_)));
        assert!(h.is_connected());
    }

    #[test]
    fn wrong_secret_version_and_order_are_refused() {
        let msgs = client_messages(4, b"nope", "app", 1 << 20, ring(true), ring(false));
        assert_eq!(
            ServerHandshake::new("w").handle(&msgs[0], false, ok),
            Err(Refusal::Interface)
        );
        let mut i = msgs[0];
        if let Msg::Init(x) = &mut i {
            x.version = 0x0100;
        }
        assert_eq!(
            ServerHandshake::new("w").handle(&i, false, ok),
            Err(Refusal::Version(0x100))
        );
        assert_eq!(
            ServerHandshake::new("w").handle(&msgs[1], true, ok),
            Err(Refusal::Unexpected("ADD_REGION"))
        );
    }

    #[test]
    fn declarations_are_bounded() {
        let msgs = client_messages(1, b"pw", "app", 1 << 20, ring(true), ring(false));
        let mut h = ServerHandshake::new("w");
        h.handle(&msgs[0], false, ok).unwrap();
        assert_eq!(h.handle(&msgs[1], false, ok), Err(Refusal::NoFd("ADD_REGION")));

        let mut h = ServerHandshake::new("w");
        h.handle(&msgs[0], false, ok).unwrap();
        let big = Msg::AddRegion(AddRegion {
            index: 0,
            size: 1 << 40,
        });
        assert_eq!(h.handle(&big, true, ok), Err(Refusal::Size(1 << 40)));

        let mut h = ServerHandshake::new("w");
        h.handle(&msgs[0], false, ok).unwrap();
        assert_eq!(
            h.handle(&msgs[2], true, ok),
            Err(Refusal::Ring("its region was not added"))
        );

        let mut h = ServerHandshake::new("w");
        h.handle(&msgs[0], false, ok).unwrap();
        h.handle(&msgs[1], true, ok).unwrap();
        h.handle(&msgs[2], true, ok).unwrap();
        assert_eq!(h.handle(&msgs[2], true, ok), Err(Refusal::Index("ring", 0)));
        let mut h = ServerHandshake::new("w");
        h.handle(&msgs[0], false, ok).unwrap();
        h.handle(&msgs[1], true, ok).unwrap();
        h.handle(&msgs[2], true, ok).unwrap();
        assert_eq!(h.handle(&msgs[4], false, ok), Err(Refusal::Rings));
    }
}
