//! A memif client: what an active application written in Rust uses to
//! attach to a Weft channel (DPDK's `net_memif` and libmemif are others).
//! It owns the memory: one sealed memfd holding both rings and their
//! buffers, laid out as DPDK's client lays it out.

use super::sys::{self, Received};
use crate::handshake::client_messages;
use crate::ring::{ring_len, C2sProducer, RingError, RingPlace, S2cConsumer};
use crate::shm::Shm;
use crate::wire::{AddRing, Msg, MSG_LEN, RING_FLAG_C2S, VERSION};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use thiserror::Error;

/// Error returned by [`Client::connect`].
#[derive(Debug, Error)]
pub enum ClientError {
    /// A socket, memfd or mapping call failed.
    #[error("memif I/O: {0}")]
    Io(#[from] io::Error),
    /// The server refused (its DISCONNECT reason).
    #[error("memif server refused: {0}")]
    Refused(String),
    /// The server does not speak memif 2.0, or sent something unexpected.
    #[error("memif protocol: {0}")]
    Protocol(String),
    /// The server broke a ring.
    #[error("memif ring: {0}")]
    Ring(#[from] RingError),
}

/// How to connect.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Interface id (the channel's memif id).
    pub id: u32,
    /// Shared secret.
    pub secret: String,
    /// Application name sent in INIT.
    pub app: String,
    /// Descriptors per ring, as log2.
    pub log2_ring_size: u8,
    /// Bytes per buffer.
    pub buffer_size: u32,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            id: 0,
            secret: String::new(),
            app: "weft-nodeos".into(),
            log2_ring_size: 10,
            buffer_size: 2048,
        }
    }
}

/// A connected memif client: send frames to the server, receive frames
/// from it.
pub struct Client {
    sock: OwnedFd,
    regions: Vec<Shm>,
    tx: C2sProducer,
    rx: S2cConsumer,
    scratch: Vec<u8>,
    _irqs: [OwnedFd; 2],
    _region_fd: OwnedFd,
}

impl Client {
    /// Connect to the server at `path`, blocking until CONNECTED.
    pub fn connect(path: &Path, cfg: &ClientConfig) -> Result<Client, ClientError> {
        let sock = sys::connect(path)?;
        let mut buf = [0u8; MSG_LEN];
        let hello = match recv_msg(&sock, &mut buf)? {
            Msg::Hello(h) => h,
            Msg::Disconnect(d) => return Err(ClientError::Refused(d.reason.text())),
            m => return Err(ClientError::Protocol(format!("expected HELLO, got type {}", m.kind()))),
        };
        if hello.min_version > VERSION || hello.max_version < VERSION {
            return Err(ClientError::Protocol("server does not speak memif 2.0".into()));
        }
        let log2 = cfg.log2_ring_size.min(hello.max_log2_ring_size);
        let size = 1usize << log2;
        let rl = ring_len(log2);
        let buffers = 2 * rl;
        let total = buffers + 2 * size * cfg.buffer_size as usize;
        let fd = sys::memfd("weft-memif", total as u64)?;
        let regions = vec![sys::map(&fd, total)?];
        let c2s_place = RingPlace::new(&regions, 0, 0, log2)?;
        let s2c_place = RingPlace::new(&regions, 0, rl as u32, log2)?;
        let tx = C2sProducer::init(&regions, c2s_place, 0, buffers as u32, cfg.buffer_size);
        let rx = S2cConsumer::init(
            &regions,
            s2c_place,
            0,
            (buffers + size * cfg.buffer_size as usize) as u32,
            cfg.buffer_size,
        );
        let irqs = [sys::eventfd()?, sys::eventfd()?];
        let ring = |c2s: bool, offset: usize| AddRing {
            flags: if c2s { RING_FLAG_C2S } else { 0 },
            index: 0,
            region: 0,
            offset: offset as u32,
            log2_ring_size: log2,
            private_hdr_size: 0,
        };
        let msgs = client_messages(
            cfg.id,
            cfg.secret.as_bytes(),
            &cfg.app,
            total as u64,
            ring(true, 0),
            ring(false, rl),
        );
        let fds: [Option<RawFd>; 5] = [
            None,
            Some(fd.as_raw_fd()),
            Some(irqs[0].as_raw_fd()),
            Some(irqs[1].as_raw_fd()),
            None,
        ];
        for (m, f) in msgs.iter().zip(fds) {
            sys::send(&sock, &m.to_bytes(), f)?;
        }
        loop {
            match recv_msg(&sock, &mut buf)? {
                Msg::Ack => {}
                Msg::Connected(_) => break,
                Msg::Disconnect(d) => return Err(ClientError::Refused(d.reason.text())),
                m => return Err(ClientError::Protocol(format!("unexpected message type {}", m.kind()))),
            }
        }
        sys::set_nonblocking(&sock)?;
        Ok(Client {
            sock,
            regions,
            tx,
            rx,
            scratch: vec![0u8; cfg.buffer_size as usize],
            _irqs: irqs,
            _region_fd: fd,
        })
    }

    /// Queue one frame; `false` if the ring is full (or the frame larger
    /// than a buffer). Publish with [`Client::flush`].
    pub fn send(&mut self, frame: &[u8]) -> bool {
        matches!(self.tx.push(&self.regions, frame), Ok(true))
    }

    /// Publish queued frames to the server.
    pub fn flush(&mut self) {
        self.tx.flush(&self.regions);
    }

    /// Hand up to `max` received frames to `f`.
    pub fn recv(&mut self, max: usize, f: impl FnMut(&[u8])) -> Result<usize, RingError> {
        self.rx.recv(&self.regions, &mut self.scratch, max, f)
    }

    /// Frames sent and received, and sends refused because the ring was full.
    pub fn counters(&self) -> (u64, u64, u64) {
        (
            self.tx.counters.packets,
            self.rx.counters.packets,
            self.tx.counters.full,
        )
    }

    /// Whether the server is still there (non-blocking).
    pub fn alive(&mut self) -> bool {
        let mut buf = [0u8; MSG_LEN];
        loop {
            match sys::recv(&self.sock, &mut buf) {
                Ok(Received::WouldBlock) => return true,
                Ok(Received::Msg(n, _)) => {
                    if n == MSG_LEN && matches!(Msg::parse(&buf), Ok(Msg::Disconnect(_))) {
                        return false;
                    }
                }
                _ => return false,
            }
        }
    }
}

fn recv_msg(sock: &OwnedFd, buf: &mut [u8; MSG_LEN]) -> Result<Msg, ClientError> {
    match sys::recv(sock, buf)? {
        Received::Msg(n, _) => Msg::parse(&buf[..n.min(MSG_LEN)]).map_err(|e| ClientError::Protocol(e.to_string())),
        Received::Closed => Err(ClientError::Protocol("server closed the socket".into())),
        Received::WouldBlock => Err(ClientError::Protocol("no reply".into())),
    }
}
