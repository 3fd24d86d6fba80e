//! The application API (paper 2.4): build a tag chain, attach it to a
//! socket, send tagged UDP datagrams, and read the chain of a received one.
//!
//! * **IPv4** — [`TaggedSender`] sets the chain as the socket's IP options
//!   (`setsockopt(IPPROTO_IP, IP_OPTIONS)`, per socket: every datagram
//!   carries it, the paper's per-association form). Linux accepts an
//!   option type it does not know only from a process with `CAP_NET_RAW`.
//!   The kernel computes the UDP checksum for the first destination; each
//!   DataRouter fixes it as it rewrites the destination.
//! * **IPv6** — Linux refuses routing types other than 0, 2 and 4 in
//!   `IPV6_RTHDR`, so [`TaggedSender`] writes whole packets (IPv6 header,
//!   routing header 253, UDP) to a raw `IPPROTO_RAW` socket (root or
//!   `CAP_NET_RAW`), from the source address and port a connected UDP socket
//!   is given (which it keeps, so the port stays reserved).
//! * **Receiving** — [`TaggedReceiver`] is a UDP socket with
//!   `IP_RECVOPTS` / `IPV6_RECVRTHDR` on: `recvmsg` hands over the IPv4
//!   options or the routing header as control data, and the chain is read
//!   from there ([`crate::wire::TagChain::parse_v4`] / `parse_v6`). No
//!   privilege is needed, and the socket still gets only its own port's
//!   datagrams. (A Linux host keeps a routing header whose segments left is
//!   0 and delivers the datagram, RFC 8200 4.4.)
//!
//! The `unsafe` of this crate is confined to [`sys`]: three system calls
//! socket2 does not wrap, each with its buffer lengths checked.

use crate::wire::{self, TagChain, TagError};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

/// Error returned by the application API.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A socket call failed.
    #[error("{0}: {1}")]
    Io(&'static str, #[source] io::Error),
    /// The chain cannot be encoded (too long for IPv4's 40 octets, …).
    #[error("tags: {0}")]
    Tag(#[from] TagError),
    /// Nothing arrived in time.
    #[error("timed out")]
    Timeout,
}

/// Sends UDP datagrams that carry a tag chain.
#[derive(Debug)]
pub struct TaggedSender {
    udp: UdpSocket,
    raw6: Option<Socket>,
    chain: TagChain,
    dst: SocketAddr,
}

impl TaggedSender {
    /// A sender to `dst` carrying `chain`.
    pub fn new(dst: SocketAddr, chain: TagChain) -> Result<TaggedSender, AppError> {
        let any: SocketAddr = match dst {
            SocketAddr::V4(_) => "0.0.0.0:0".parse().unwrap_or(dst),
            SocketAddr::V6(_) => "[::]:0".parse().unwrap_or(dst),
        };
        let udp = UdpSocket::bind(any).map_err(|e| AppError::Io("bind", e))?;
        udp.connect(dst).map_err(|e| AppError::Io("connect", e))?;
        let mut s = TaggedSender {
            udp,
            raw6: None,
            chain: TagChain::default(),
            dst,
        };
        s.set_tags(chain)?;
        Ok(s)
    }

    /// Change the chain (an empty chain sends untagged datagrams).
    pub fn set_tags(&mut self, chain: TagChain) -> Result<(), AppError> {
        match self.dst {
            SocketAddr::V4(_) => {
                let opts = if chain.tags.is_empty() {
                    Vec::new()
                } else {
                    chain.ipv4_options()?
                };
                sys::setsockopt_bytes(self.udp.as_raw_fd(), libc::IPPROTO_IP, libc::IP_OPTIONS, &opts)
                    .map_err(|e| AppError::Io("setsockopt(IP_OPTIONS) (needs CAP_NET_RAW for option 0x9e)", e))?;
            }
            SocketAddr::V6(_) => {
                chain.ipv6_header(17)?;
                if self.raw6.is_none() && !chain.tags.is_empty() {
                    let r = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(libc::IPPROTO_RAW)))
                        .map_err(|e| AppError::Io("raw IPv6 socket (needs CAP_NET_RAW)", e))?;
                    self.raw6 = Some(r);
                }
            }
        }
        self.chain = chain;
        Ok(())
    }

    /// The local address datagrams come from.
    pub fn local_addr(&self) -> Result<SocketAddr, AppError> {
        self.udp.local_addr().map_err(|e| AppError::Io("getsockname", e))
    }

    /// Send one datagram.
    pub fn send(&self, payload: &[u8]) -> Result<usize, AppError> {
        match (&self.raw6, self.dst) {
            (Some(raw), SocketAddr::V6(d)) if !self.chain.tags.is_empty() => {
                let local = self.local_addr()?;
                let IpAddr::V6(src) = local.ip() else {
                    return Err(AppError::Io("source", io::ErrorKind::InvalidInput.into()));
                };
                let pkt = ipv6_udp_packet(src, *d.ip(), local.port(), d.port(), &self.chain, payload)?;
                let to = SockAddr::from(SocketAddr::new(IpAddr::V6(*d.ip()), 0));
                raw.send_to(&pkt, &to)
                    .map_err(|e| AppError::Io("sendto (raw IPv6)", e))?;
                Ok(payload.len())
            }
            _ => self.udp.send(payload).map_err(|e| AppError::Io("send", e)),
        }
    }
}

/// An IPv6 packet (no link header): IPv6, DataRouter routing header, UDP.
pub fn ipv6_udp_packet(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    sport: u16,
    dport: u16,
    chain: &TagChain,
    payload: &[u8],
) -> Result<Vec<u8>, TagError> {
    let f = wire::udp6_frame([0; 6], [0; 6], src, dst, sport, dport, chain, payload)?;
    Ok(f[14..].to_vec())
}

/// A datagram received with its tags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// Sender.
    pub from: SocketAddr,
    /// Payload.
    pub payload: Vec<u8>,
    /// The chain it carried, if any.
    pub chain: Option<TagChain>,
    /// Control data that was not a DataRouter tag, or a tag that did not
    /// parse.
    pub tag_error: Option<TagError>,
}

/// Receives UDP datagrams and their tags.
#[derive(Debug)]
pub struct TaggedReceiver {
    sock: UdpSocket,
    v6: bool,
}

impl TaggedReceiver {
    /// Bind to `addr` (e.g. `0.0.0.0:7000` or `[::]:7000`).
    pub fn bind(addr: SocketAddr) -> Result<TaggedReceiver, AppError> {
        let sock = UdpSocket::bind(addr).map_err(|e| AppError::Io("bind", e))?;
        let fd = sock.as_raw_fd();
        let v6 = addr.is_ipv6();
        if v6 {
            sys::setsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVRTHDR, 1)
                .map_err(|e| AppError::Io("setsockopt(IPV6_RECVRTHDR)", e))?;
        } else {
            sys::setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_RECVOPTS, 1)
                .map_err(|e| AppError::Io("setsockopt(IP_RECVOPTS)", e))?;
        }
        Ok(TaggedReceiver { sock, v6 })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr, AppError> {
        self.sock.local_addr().map_err(|e| AppError::Io("getsockname", e))
    }

    /// Wait at most `timeout` for one datagram.
    pub fn recv(&self, timeout: Option<Duration>) -> Result<Received, AppError> {
        self.sock
            .set_read_timeout(timeout)
            .map_err(|e| AppError::Io("SO_RCVTIMEO", e))?;
        let mut buf = vec![0u8; 65536];
        let mut ctrl = [0u8; 4096];
        let (n, from, clen) = match sys::recvmsg(self.sock.as_raw_fd(), &mut buf, &mut ctrl, self.v6) {
            Ok(x) => x,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Err(AppError::Timeout)
            }
            Err(e) => return Err(AppError::Io("recvmsg", e)),
        };
        buf.truncate(n);
        let mut chain = None;
        let mut tag_error = None;
        for (level, typ, data) in cmsgs(&ctrl[..clen]) {
            let r = if level == libc::IPPROTO_IP && typ == libc::IP_RECVOPTS {
                tag_in_options(data)
            } else if level == libc::IPPROTO_IPV6 && typ == libc::IPV6_RTHDR {
                match TagChain::parse_v6(data) {
                    Ok((c, _)) => Ok(Some(c)),
                    Err(TagError::NotDataRouter) => Ok(None),
                    Err(e) => Err(e),
                }
            } else {
                Ok(None)
            };
            match r {
                Ok(Some(c)) => chain = Some(c),
                Ok(None) => {}
                Err(e) => tag_error = Some(e),
            }
        }
        Ok(Received {
            from,
            payload: buf,
            chain,
            tag_error,
        })
    }
}

/// The DataRouter chain among raw IPv4 options.
pub fn tag_in_options(opts: &[u8]) -> Result<Option<TagChain>, TagError> {
    // Reuse the packet walker on a made-up header around the options.
    let ihl = 20 + opts.len().div_ceil(4) * 4;
    if ihl > 60 {
        return Err(TagError::Truncated);
    }
    let mut ip = vec![0u8; ihl];
    ip[0] = 0x40 | (ihl / 4) as u8;
    ip[20..20 + opts.len()].copy_from_slice(opts);
    wire::read_chain(&ip)
}

/// Walk a control-message buffer: (level, type, data). Parsed from bytes
/// (Linux's `struct cmsghdr`: a `size_t` length, two `int`s, data aligned to
/// `size_t`), so no pointer arithmetic is needed.
fn cmsgs(buf: &[u8]) -> Vec<(i32, i32, &[u8])> {
    const W: usize = std::mem::size_of::<usize>();
    let hdr = (W + 8).div_ceil(W) * W;
    let mut out = Vec::new();
    let mut off = 0;
    while off + hdr <= buf.len() {
        let mut l = [0u8; W];
        l.copy_from_slice(&buf[off..off + W]);
        let len = usize::from_ne_bytes(l);
        let level = i32::from_ne_bytes([buf[off + W], buf[off + W + 1], buf[off + W + 2], buf[off + W + 3]]);
        let typ = i32::from_ne_bytes([buf[off + W + 4], buf[off + W + 5], buf[off + W + 6], buf[off + W + 7]]);
        if len < hdr || off + len > buf.len() {
            break;
        }
        out.push((level, typ, &buf[off + hdr..off + len]));
        off += len.div_ceil(W) * W;
    }
    out
}

/// The three system calls socket2 does not wrap.
#[allow(unsafe_code)]
pub mod sys {
    use std::io;
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
    use std::os::fd::RawFd;

    /// `setsockopt` with a byte buffer.
    pub fn setsockopt_bytes(fd: RawFd, level: i32, name: i32, v: &[u8]) -> io::Result<()> {
        // SAFETY: `v` is a live buffer of exactly `v.len()` bytes for the
        // duration of the call; the kernel only reads it.
        let r = unsafe { libc::setsockopt(fd, level, name, v.as_ptr().cast(), v.len() as libc::socklen_t) };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// `setsockopt` with an `int`.
    pub fn setsockopt_int(fd: RawFd, level: i32, name: i32, v: i32) -> io::Result<()> {
        setsockopt_bytes(fd, level, name, &v.to_ne_bytes())
    }

    /// `recvmsg` into `buf` with control data into `ctrl`: (bytes, sender,
    /// control bytes).
    pub fn recvmsg(fd: RawFd, buf: &mut [u8], ctrl: &mut [u8], v6: bool) -> io::Result<(usize, SocketAddr, usize)> {
        // SAFETY: an all-zero sockaddr_storage and msghdr are valid values.
        let mut from: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: as above.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&mut from as *mut libc::sockaddr_storage).cast();
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = ctrl.as_mut_ptr().cast();
        msg.msg_controllen = ctrl.len() as _;
        // SAFETY: every pointer in `msg` refers to a live buffer whose length
        // is given next to it (`iov`, `from`, `ctrl`), all outliving the call.
        let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let clen = (msg.msg_controllen as usize).min(ctrl.len());
        let addr = if v6 {
            // SAFETY: the kernel wrote a sockaddr_in6 for an AF_INET6 socket;
            // sockaddr_storage is large and aligned enough for it.
            let a = unsafe { *(&from as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                0,
                a.sin6_scope_id,
            ))
        } else {
            // SAFETY: as above, a sockaddr_in for an AF_INET socket.
            let a = unsafe { *(&from as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            ))
        };
        Ok((n as usize, addr, clen))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classes::{DNS, URL};
    use crate::{Algorithm, Tag};

    fn chain() -> TagChain {
        TagChain::new(vec![
            Tag::new(DNS, Algorithm::Suffix, "joe.com"),
            Tag::new(URL, Algorithm::Prefix, "joe.com/apple"),
        ])
    }

    #[test]
    fn options_walk() {
        let o = chain().ipv4_options().unwrap();
        assert_eq!(tag_in_options(&o).unwrap(), Some(chain()));
        let mut with_nop = vec![1u8];
        with_nop.extend_from_slice(&o);
        assert_eq!(tag_in_options(&with_nop).unwrap(), Some(chain()));
        assert_eq!(tag_in_options(&[1, 1, 1, 0]).unwrap(), None);
    }

    #[test]
    fn cmsg_parsing_is_bounded() {
        assert!(cmsgs(&[0u8; 3]).is_empty());
        let mut b = vec![0u8; 64];
        b[..8].copy_from_slice(&1000usize.to_ne_bytes());
        assert!(cmsgs(&b).is_empty());
    }

    /// Tagged UDP over loopback: IPv4 through IP_OPTIONS (needs
    /// CAP_NET_RAW for option 0x9e: skipped with a reason otherwise).
    #[test]
    fn loopback_v4() {
        let rx = TaggedReceiver::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let to = rx.local_addr().unwrap();
        let tx = match TaggedSender::new(to, chain()) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("skipped: {e}");
                return;
            }
        };
        tx.send(b"hello").unwrap();
        let r = rx.recv(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(r.payload, b"hello");
        assert_eq!(r.chain, Some(chain()));
        assert_eq!(r.from, tx.local_addr().unwrap());
    }

    /// IPv6 through a raw socket; the receiver reads the routing header.
    #[test]
    fn loopback_v6() {
        let Ok(rx) = TaggedReceiver::bind("[::1]:0".parse().unwrap()) else {
            eprintln!("skipped: no IPv6 loopback");
            return;
        };
        let to = rx.local_addr().unwrap();
        let tx = match TaggedSender::new(to, chain()) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("skipped: {e}");
                return;
            }
        };
        if let Err(e) = tx.send(b"hello6") {
            eprintln!("skipped: {e}");
            return;
        }
        let r = rx.recv(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(r.payload, b"hello6");
        assert_eq!(r.chain, Some(chain()));
    }
}
