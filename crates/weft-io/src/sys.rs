//! The few system calls std does not wrap: `recvmmsg` / `sendmmsg`, `poll`,
//! `AF_PACKET` sockets, socket options, `if_nametoindex`, the TUN ioctl.
//!
//! **All of weft-io's `unsafe` is in this module.** Each block is a plain
//! FFI call whose pointers point into buffers that live on the caller's
//! stack or in `self` for the duration of the call (the kernel keeps no
//! pointer after it returns); every return value is checked, and lengths
//! the kernel reports are clamped to the buffers before slicing. Nothing
//! here keeps a raw pointer across calls, so the types are `Send`.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Most messages one `recvmmsg` / `sendmmsg` call moves.
pub const MAX_BATCH: usize = 64;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Receive buffers for `recvmmsg`: `count` slots of `slot` bytes each, and
/// each message's sender address and full length.
pub(crate) struct RxBufs {
    data: Vec<u8>,
    slot: usize,
    count: usize,
    addrs: Vec<libc::sockaddr_storage>,
    lens: Vec<usize>,
}

impl RxBufs {
    pub(crate) fn new(count: usize, slot: usize) -> RxBufs {
        let count = count.clamp(1, MAX_BATCH);
        RxBufs {
            data: vec![0u8; count * slot],
            slot,
            count,
            // SAFETY: sockaddr_storage is plain old data; all-zero is valid.
            addrs: vec![unsafe { zeroed() }; count],
            lens: vec![0; count],
        }
    }

    /// Receive up to `max` messages without blocking; 0 when none waits.
    /// `MSG_TRUNC` makes the kernel report each message's full length, so
    /// frames larger than a slot are seen (and counted) rather than cut.
    pub(crate) fn recv(&mut self, fd: RawFd, max: usize) -> io::Result<usize> {
        let n = max.min(self.count);
        let mut iovs: [libc::iovec; MAX_BATCH] = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; MAX_BATCH];
        // SAFETY: mmsghdr is plain old data; all-zero is a valid value.
        let mut hdrs: [libc::mmsghdr; MAX_BATCH] = unsafe { zeroed() };
        let base = self.data.as_mut_ptr();
        for i in 0..n {
            // SAFETY: i * slot + slot <= data.len(), so the pointer stays
            // inside `data`.
            iovs[i].iov_base = unsafe { base.add(i * self.slot) } as *mut libc::c_void;
            iovs[i].iov_len = self.slot;
            hdrs[i].msg_hdr.msg_iov = &mut iovs[i];
            hdrs[i].msg_hdr.msg_iovlen = 1;
            hdrs[i].msg_hdr.msg_name = &mut self.addrs[i] as *mut _ as *mut libc::c_void;
            hdrs[i].msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        }
        // SAFETY: `hdrs[..n]` point at `iovs`, `data` and `addrs`, all alive
        // and exclusively borrowed for the call; the kernel writes at most
        // iov_len / msg_namelen bytes through them.
        let r = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        let r = r as usize;
        for (len, h) in self.lens.iter_mut().zip(&hdrs[..r]) {
            *len = h.msg_len as usize;
        }
        Ok(r)
    }

    /// Message `i` of the last [`RxBufs::recv`]: its bytes (at most a slot),
    /// its full length on the wire, and its sender address.
    pub(crate) fn msg(&self, i: usize) -> (&[u8], usize, &libc::sockaddr_storage) {
        let full = self.lens[i];
        let got = full.min(self.slot);
        (&self.data[i * self.slot..i * self.slot + got], full, &self.addrs[i])
    }
}

/// An address in the form `sendmmsg` takes.
#[derive(Clone, Copy)]
pub(crate) struct RawAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl RawAddr {
    pub(crate) fn from_socket_addr(a: SocketAddr) -> RawAddr {
        // SAFETY: plain old data.
        let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
        let len = match a {
            SocketAddr::V4(v4) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: v4.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(v4.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
                unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
                size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(v6) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: v6.port().to_be(),
                    sin6_flowinfo: v6.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: v6.ip().octets(),
                    },
                    sin6_scope_id: v6.scope_id(),
                };
                // SAFETY: as above, for sockaddr_in6.
                unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
                size_of::<libc::sockaddr_in6>()
            }
        };
        RawAddr {
            storage,
            len: len as libc::socklen_t,
        }
    }
}

/// The IP socket address in `s`, if it holds one.
pub(crate) fn socket_addr_of(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match s.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin: libc::sockaddr_in = unsafe { std::ptr::read(s as *const _ as *const libc::sockaddr_in) };
            let ip = std::net::Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6: libc::sockaddr_in6 = unsafe { std::ptr::read(s as *const _ as *const libc::sockaddr_in6) };
            let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// The packet type (`PACKET_HOST`, `PACKET_OUTGOING`, …) in a
/// `sockaddr_ll` that `recvmmsg` filled in on an `AF_PACKET` socket.
pub(crate) fn packet_type_of(s: &libc::sockaddr_storage) -> Option<u8> {
    if s.ss_family as libc::c_int != libc::AF_PACKET {
        return None;
    }
    // SAFETY: the family says the storage holds a sockaddr_ll.
    let ll: libc::sockaddr_ll = unsafe { std::ptr::read(s as *const _ as *const libc::sockaddr_ll) };
    Some(ll.sll_pkttype)
}

/// Send each of `frames` as one message (prefixed by `prefix`, which may be
/// empty) with one `sendmmsg` per [`MAX_BATCH`]; to `dest`, or on the bound
/// / connected socket. Returns how many were sent; stops at the first
/// refused message (`WouldBlock` is not an error: the rest are simply not
/// sent).
pub(crate) fn send_batch<'a>(
    fd: RawFd,
    prefix: &[u8],
    frames: impl Iterator<Item = &'a [u8]>,
    dest: Option<&RawAddr>,
) -> io::Result<usize> {
    let mut frames = frames.peekable();
    let mut sent = 0usize;
    while frames.peek().is_some() {
        let mut iovs: [[libc::iovec; 2]; MAX_BATCH] = [[libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; 2]; MAX_BATCH];
        // SAFETY: plain old data.
        let mut hdrs: [libc::mmsghdr; MAX_BATCH] = unsafe { zeroed() };
        let mut n = 0;
        while n < MAX_BATCH {
            let Some(f) = frames.next() else { break };
            let (iov, cnt) = if prefix.is_empty() {
                ([f, &[][..]], 1)
            } else {
                ([prefix, f], 2)
            };
            for (k, part) in iov.iter().enumerate().take(cnt) {
                // The kernel only reads through iov_base for sends.
                iovs[n][k].iov_base = part.as_ptr() as *mut libc::c_void;
                iovs[n][k].iov_len = part.len();
            }
            hdrs[n].msg_hdr.msg_iov = iovs[n].as_mut_ptr();
            hdrs[n].msg_hdr.msg_iovlen = cnt as _;
            if let Some(d) = dest {
                hdrs[n].msg_hdr.msg_name = &d.storage as *const _ as *mut libc::c_void;
                hdrs[n].msg_hdr.msg_namelen = d.len;
            }
            n += 1;
        }
        let mut off = 0;
        while off < n {
            // SAFETY: hdrs[off..n] point at iovs / frames / dest, which
            // outlive the call; the kernel reads through them only.
            let r = unsafe { libc::sendmmsg(fd, hdrs[off..].as_mut_ptr(), (n - off) as libc::c_uint, 0) };
            if r < 0 {
                let e = io::Error::last_os_error();
                return match e.kind() {
                    io::ErrorKind::WouldBlock => Ok(sent),
                    io::ErrorKind::Interrupted => continue,
                    _ if sent > 0 => Ok(sent),
                    _ => Err(e),
                };
            }
            if r == 0 {
                return Ok(sent);
            }
            off += r as usize;
            sent += r as usize;
        }
    }
    Ok(sent)
}

/// Wait until one of `fds` is readable or `timeout_ms` passes (negative:
/// forever). Returns whether any is readable.
pub fn wait_readable(fds: &[RawFd], timeout_ms: i32) -> io::Result<bool> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: `p` is a valid array of p.len() pollfds for the call.
    let r = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, timeout_ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(e);
    }
    Ok(r > 0)
}

/// Set an integer socket option.
pub(crate) fn setsockopt_int(fd: RawFd, level: libc::c_int, name: libc::c_int, v: libc::c_int) -> io::Result<()> {
    // SAFETY: passes a pointer to a live c_int and its size.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &v as *const _ as *const libc::c_void,
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

/// Make the socket's buffers `bytes` large: `SO_RCVBUFFORCE` /
/// `SO_SNDBUFFORCE` when privileged (beyond `rmem_max`), else the plain
/// options (capped by the host's limits). Best effort.
pub(crate) fn grow_buffers(fd: RawFd, bytes: libc::c_int) {
    if setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, bytes).is_err() {
        let _ = setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, bytes);
    }
    if setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, bytes).is_err() {
        let _ = setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, bytes);
    }
}

/// The index of interface `name`.
pub(crate) fn if_index(name: &str) -> io::Result<u32> {
    let c = CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in interface name"))?;
    // SAFETY: `c` is a valid NUL-terminated string for the call.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(i)
    }
}

const ETH_P_ALL: u16 = 0x0003;

/// A non-blocking raw `AF_PACKET` socket bound to interface `ifindex`,
/// receiving every protocol.
pub(crate) fn packet_socket(ifindex: u32) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = cvt(unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            ETH_P_ALL.to_be() as libc::c_int,
        )
    })?;
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: plain old data.
    let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = ETH_P_ALL.to_be();
    sll.sll_ifindex = ifindex as libc::c_int;
    // SAFETY: passes a live sockaddr_ll and its size.
    cvt(unsafe {
        libc::bind(
            owned.as_raw_fd(),
            &sll as *const _ as *const libc::sockaddr,
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })?;
    Ok(owned)
}

/// Put the interface into promiscuous mode for as long as the socket lives
/// (`PACKET_ADD_MEMBERSHIP`, reference-counted by the kernel).
pub(crate) fn packet_promisc(fd: RawFd, ifindex: u32) -> io::Result<()> {
    // SAFETY: plain old data.
    let mut mr: libc::packet_mreq = unsafe { zeroed() };
    mr.mr_ifindex = ifindex as libc::c_int;
    mr.mr_type = libc::PACKET_MR_PROMISC as u16;
    // SAFETY: passes a live packet_mreq and its size.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_ADD_MEMBERSHIP,
            &mr as *const _ as *const libc::c_void,
            size_of::<libc::packet_mreq>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

/// `PACKET_IGNORE_OUTGOING` (Linux 4.20): not defined by every libc.
pub(crate) const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

/// Attach to the existing TUN interface `name` (`IFF_TUN | IFF_NO_PI`:
/// bare IP packets), non-blocking.
pub(crate) fn tun_attach(name: &str) -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "bad interface name"));
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/dev/net/tun")?;
    // SAFETY: plain old data.
    let mut ifr: libc::ifreq = unsafe { zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes one live ifreq.
    cvt(unsafe { libc::ioctl(f.as_raw_fd(), libc::TUNSETIFF as _, &mut ifr as *mut libc::ifreq) })?;
    Ok(f)
}

/// Move the calling thread into the network namespace at `path` (tests).
#[cfg(test)]
pub(crate) fn enter_netns(path: &str) -> io::Result<()> {
    let f = std::fs::File::open(path)?;
    // SAFETY: setns on a live descriptor; affects only this thread.
    cvt(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }).map(|_| ())
}
