//! The memif server: accepts clients on a `SOCK_SEQPACKET` socket, runs
//! [`ServerHandshake`] for each, and maps the regions a client declared
//! once it sends CONNECT — after checking each memfd is at least as long
//! as declared and sealing it against shrinking (a mapping of a file that
//! later shrinks faults on access), and each ring's placement and cookie.

use super::sys::{self, Received};
use crate::handshake::{Declared, Refusal, Reply, ServerHandshake};
use crate::ring::{C2sConsumer, RingError, RingPlace, S2cProducer};
use crate::shm::Shm;
use crate::wire::{Fixed, Msg, MSG_LEN, SECRET_LEN};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;

/// Most handshakes in progress at once; more are refused.
const MAX_PENDING: usize = 16;
/// A handshake not finished by then is dropped (a client that connects
/// and says nothing must not hold a slot).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a client's handshake failed (the client got DISCONNECT).
#[derive(Debug, Error)]
pub enum ServerError {
    /// The protocol refused it.
    #[error("memif handshake refused: {0}")]
    Refused(#[from] Refusal),
    /// A declared ring is unusable.
    #[error("memif ring refused: {0}")]
    Ring(#[from] RingError),
    /// A region's memfd is shorter than declared, unsealable or unmappable.
    #[error("memif region {index}: {what}")]
    Region {
        /// Region index.
        index: u16,
        /// What was wrong.
        what: String,
    },
    /// A socket or mapping call failed.
    #[error("memif I/O: {0}")]
    Io(#[from] io::Error),
    /// The client said nothing for too long.
    #[error("memif handshake timed out")]
    Timeout,
}

struct Pending {
    sock: OwnedFd,
    hs: ServerHandshake,
    region_fds: Vec<OwnedFd>,
    c2s_irq: Option<OwnedFd>,
    s2c_irq: Option<OwnedFd>,
    started: Instant,
    id: Option<u32>,
}

/// The control socket, kept open while packets flow: DISCONNECT or a
/// closed socket (the client died) ends the connection.
pub struct Link {
    sock: OwnedFd,
    closed: bool,
}

impl Link {
    /// Whether the client is still there (non-blocking).
    pub fn alive(&mut self) -> bool {
        if self.closed {
            return false;
        }
        let mut buf = [0u8; MSG_LEN];
        loop {
            match sys::recv(&self.sock, &mut buf) {
                Ok(Received::WouldBlock) => return true,
                Ok(Received::Msg(n, _)) => {
                    if n == MSG_LEN && matches!(Msg::parse(&buf), Ok(Msg::Disconnect(_))) {
                        self.closed = true;
                        return false;
                    }
                    // Anything else after CONNECTED is ignored.
                }
                Ok(Received::Closed) | Err(_) => {
                    self.closed = true;
                    return false;
                }
            }
        }
    }

    /// Tell the client the interface is gone, with a reason.
    pub fn disconnect(&mut self, reason: &str) {
        if !self.closed {
            let _ = sys::send(&self.sock, &Msg::disconnect(1, reason).to_bytes(), None);
            self.closed = true;
        }
    }

    /// The socket descriptor (to poll on).
    pub fn raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

/// The end that copies frames into the client's S2C ring.
pub struct ToClient {
    regions: Arc<Vec<Shm>>,
    /// The ring end (counters inside).
    pub ring: S2cProducer,
    irq: Option<OwnedFd>,
}

impl ToClient {
    /// Start a batch: how many frames fit.
    pub fn begin(&mut self) -> Result<u16, RingError> {
        self.ring.begin(&self.regions)
    }

    /// Copy one frame; `false` when the ring is full or the descriptor bad
    /// (both counted).
    pub fn push(&mut self, frame: &[u8]) -> bool {
        matches!(self.ring.push(&self.regions, frame), Ok(true))
    }

    /// Publish the batch, signalling the client if it asked.
    pub fn flush(&mut self) {
        if self.ring.flush(&self.regions) {
            if let Some(fd) = &self.irq {
                sys::kick(fd);
            }
        }
    }
}

/// The end that takes frames from the client's C2S ring.
pub struct FromClient {
    regions: Arc<Vec<Shm>>,
    /// The ring end (counters inside).
    pub ring: C2sConsumer,
    scratch: Vec<u8>,
}

impl FromClient {
    /// Hand up to `max` frames to `f`.
    pub fn recv(&mut self, max: usize, f: impl FnMut(&[u8])) -> Result<usize, RingError> {
        self.ring.recv(&self.regions, &mut self.scratch, max, f)
    }

    /// Whether frames wait.
    pub fn pending(&self) -> bool {
        self.ring.pending(&self.regions)
    }
}

/// A connected client.
pub struct Connection {
    /// Interface id the client asked for.
    pub id: u32,
    /// The client's application name.
    pub app: String,
    /// Its uid (`SO_PEERCRED`).
    pub uid: u32,
    /// The control socket.
    pub link: Link,
    /// Frames to the client.
    pub to_client: ToClient,
    /// Frames from the client.
    pub from_client: FromClient,
}

/// The memif server.
pub struct Server {
    name: String,
    path: PathBuf,
    listener: OwnedFd,
    pending: Vec<Pending>,
    max_frame: usize,
}

impl Server {
    /// Listen at `path` (replacing a stale socket file), serving as `name`;
    /// frames from clients longer than `max_frame` are dropped and counted.
    pub fn bind(path: &Path, name: &str, max_frame: usize) -> io::Result<Server> {
        if path.exists() {
            std::fs::remove_file(path)?;
        }
        let listener = sys::listen(path)?;
        Ok(Server {
            name: name.to_string(),
            path: path.to_path_buf(),
            listener,
            pending: Vec::new(),
            max_frame,
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The listening descriptor (to poll on).
    pub fn raw_fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }

    /// Handshakes in progress.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Accept and advance handshakes without blocking. `accept(id,
    /// secret)` says whether an interface waits for that client. Returns
    /// finished handshakes: connections, and failures with the interface
    /// id when INIT got that far.
    pub fn poll(
        &mut self,
        now: Instant,
        mut accept: impl FnMut(u32, &Fixed<SECRET_LEN>) -> bool,
    ) -> Vec<Result<Connection, (Option<u32>, ServerError)>> {
        let mut out = Vec::new();
        while let Ok(Some(sock)) = sys::accept(&self.listener) {
            if self.pending.len() >= MAX_PENDING {
                let _ = sys::send(&sock, &Msg::disconnect(1, "too many handshakes").to_bytes(), None);
                continue;
            }
            let hs = ServerHandshake::new(&self.name);
            if sys::send(&sock, &hs.hello().to_bytes(), None).is_err() {
                continue;
            }
            self.pending.push(Pending {
                sock,
                hs,
                region_fds: Vec::new(),
                c2s_irq: None,
                s2c_irq: None,
                started: now,
                id: None,
            });
        }
        let mut i = 0;
        while i < self.pending.len() {
            match self.advance(i, now, &mut accept) {
                Ok(None) => i += 1,
                Ok(Some(c)) => {
                    self.pending.swap_remove(i);
                    out.push(Ok(c));
                }
                Err(e) => {
                    let p = self.pending.swap_remove(i);
                    // Read what the client already queued: closing a Unix
                    // socket with unread data resets the peer, which would
                    // then never see the reason.
                    let mut b = [0u8; MSG_LEN];
                    while let Ok(Received::Msg(..)) = sys::recv(&p.sock, &mut b) {}
                    let _ = sys::send(&p.sock, &Msg::disconnect(1, &e.to_string()).to_bytes(), None);
                    out.push(Err((p.id, e)));
                }
            }
        }
        out
    }

    fn advance(
        &mut self,
        i: usize,
        now: Instant,
        accept: &mut impl FnMut(u32, &Fixed<SECRET_LEN>) -> bool,
    ) -> Result<Option<Connection>, ServerError> {
        let p = &mut self.pending[i];
        let mut buf = [0u8; MSG_LEN];
        loop {
            let (n, fd) = match sys::recv(&p.sock, &mut buf)? {
                Received::WouldBlock => {
                    if now.duration_since(p.started) > HANDSHAKE_TIMEOUT {
                        return Err(ServerError::Timeout);
                    }
                    return Ok(None);
                }
                Received::Closed => return Err(Refusal::Client("closed during handshake".into()).into()),
                Received::Msg(n, fd) => (n, fd),
            };
            let msg = match Msg::parse(&buf[..n.min(MSG_LEN)]) {
                Ok(m) => m,
                Err(_) => return Err(Refusal::Unexpected("malformed").into()),
            };
            if let Msg::Init(init) = &msg {
                p.id = Some(init.id);
            }
            let has_fd = fd.is_some();
            match p.hs.handle(&msg, has_fd, |id, s| accept(id, s))? {
                Reply::Ack => {
                    match (&msg, fd) {
                        (Msg::AddRegion(_), Some(fd)) => p.region_fds.push(fd),
                        (Msg::AddRing(r), Some(fd)) if r.is_c2s() => p.c2s_irq = Some(fd),
                        (Msg::AddRing(_), Some(fd)) => p.s2c_irq = Some(fd),
                        _ => {}
                    }
                    sys::send(&p.sock, &Msg::Ack.to_bytes(), None)?;
                }
                Reply::Connect(d) => {
                    let c = Self::map(p, d, self.max_frame)?;
                    let connected = p.hs.connected();
                    sys::send(&p.sock, &connected.to_bytes(), None)?;
                    return Ok(Some(c));
                }
            }
        }
    }

    fn map(p: &mut Pending, d: Declared, max_frame: usize) -> Result<Connection, ServerError> {
        let mut regions = Vec::with_capacity(d.regions.len());
        for (r, fd) in d.regions.iter().zip(p.region_fds.iter()) {
            let bad = |what: String| ServerError::Region { index: r.index, what };
            let size = sys::file_size(fd).map_err(|e| bad(e.to_string()))?;
            if size < r.size {
                return Err(bad(format!("memfd holds {size} bytes, {} declared", r.size)));
            }
            sys::seal_shrink(fd)
                .map_err(|e| bad(format!("cannot seal against shrinking ({e}); use a sealable memfd")))?;
            regions.push(sys::map(fd, r.size as usize).map_err(|e| bad(e.to_string()))?);
        }
        let c2s = &d.c2s[0];
        let s2c = &d.s2c[0];
        let c2s_place = RingPlace::new(&regions, c2s.region, c2s.offset, c2s.log2_ring_size)?;
        let s2c_place = RingPlace::new(&regions, s2c.region, s2c.offset, s2c.log2_ring_size)?;
        c2s_place.check_cookie(&regions)?;
        s2c_place.check_cookie(&regions)?;
        let uid = sys::peer_uid(&p.sock)?;
        let rx = C2sConsumer::new(&regions, c2s_place);
        let tx = S2cProducer::new(&regions, s2c_place);
        let regions = Arc::new(regions);
        let sock = p.sock.try_clone()?;
        Ok(Connection {
            id: d.id,
            app: d.app,
            uid,
            link: Link { sock, closed: false },
            to_client: ToClient {
                regions: regions.clone(),
                ring: tx,
                irq: p.s2c_irq.take(),
            },
            from_client: FromClient {
                regions,
                ring: rx,
                scratch: vec![0u8; max_frame],
            },
        })
    }
}
