//! The few system calls std does not wrap: `recvmmsg` / `sendmmsg`, `poll`,
//! `AF_PACKET` sockets and their `TPACKET_V3` receive ring, socket options,
//! `if_nametoindex`, the TUN ioctl.
//!
//! **All of weft-io's `unsafe` is in this module.** Each block is a plain
//! FFI call whose pointers point into buffers that live on the caller's
//! stack or in `self` for the duration of the call (the kernel keeps no
//! pointer after it returns); every return value is checked, and lengths
//! the kernel reports are clamped to the buffers before slicing. The one
//! exception is [`RxRing`], which owns a mapping shared with the kernel:
//! ownership of each block passes between the two through the block's
//! status word (acquire / release), and every offset read from the ring is
//! checked against the block before anything is sliced.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::mem::{offset_of, size_of, zeroed};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};

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

/// Raise this process's soft limit on open descriptors to its hard limit;
/// returns (old, new) soft limits.
pub fn raise_nofile() -> io::Result<(u64, u64)> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: passes a pointer to a live rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let old = r.rlim_cur;
    if r.rlim_cur < r.rlim_max {
        r.rlim_cur = r.rlim_max;
        // SAFETY: passes a pointer to a live rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok((old, r.rlim_cur))
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

/// Set a socket option to the bytes `v` (empty: clear it, for options
/// like `IP_OPTIONS` whose length says what is set).
pub(crate) fn setsockopt_bytes(fd: RawFd, level: libc::c_int, name: libc::c_int, v: &[u8]) -> io::Result<()> {
    // SAFETY: passes a pointer into a live slice and its length (a null
    // pointer is never passed: an empty slice's pointer is dangling but
    // the kernel reads no byte of it when the length is 0).
    cvt(unsafe { libc::setsockopt(fd, level, name, v.as_ptr().cast(), v.len() as libc::socklen_t) }).map(|_| ())
}

/// Set or clear the Router Alert option on every datagram `fd` sends:
/// `IP_OPTIONS` (IPv4, RFC 2113) or the `IPV6_HOPOPTS` sticky option
/// (IPv6, RFC 2711; Linux asks for `CAP_NET_RAW`).
pub(crate) fn set_router_alert(fd: RawFd, v6: bool, on: bool) -> io::Result<()> {
    // IPv4: type 148, length 4, value 0.
    const V4: [u8; 4] = [148, 4, 0, 0];
    // IPv6 hop-by-hop header: next header (the kernel fills it), length
    // 0 (8 octets), Router Alert (type 5, length 2, value 2: Active
    // Networks), PadN of 2.
    const V6: [u8; 8] = [0, 0, 5, 2, 0, 2, 1, 0];
    match (v6, on) {
        (false, true) => setsockopt_bytes(fd, libc::IPPROTO_IP, libc::IP_OPTIONS, &V4),
        (false, false) => setsockopt_bytes(fd, libc::IPPROTO_IP, libc::IP_OPTIONS, &[]),
        (true, true) => setsockopt_bytes(fd, libc::IPPROTO_IPV6, libc::IPV6_HOPOPTS, &V6),
        (true, false) => setsockopt_bytes(fd, libc::IPPROTO_IPV6, libc::IPV6_HOPOPTS, &[]),
    }
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

/// A non-blocking raw `AF_PACKET` socket, not yet bound: it receives
/// nothing until [`packet_bind`] (so no frame lands in the socket queue
/// before the ring is set up).
pub(crate) fn packet_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = cvt(unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Bind an `AF_PACKET` socket to interface `ifindex`, every protocol.
pub(crate) fn packet_bind(fd: RawFd, ifindex: u32) -> io::Result<()> {
    // SAFETY: plain old data.
    let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = ETH_P_ALL.to_be();
    sll.sll_ifindex = ifindex as libc::c_int;
    // SAFETY: passes a live sockaddr_ll and its size.
    cvt(unsafe {
        libc::bind(
            fd,
            &sll as *const _ as *const libc::sockaddr,
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

/// The kernel's `PACKET_STATISTICS` for a `TPACKET_V3` socket since the
/// last call (reading resets them): `(packets, drops, queue freezes)`.
/// `drops` are frames the kernel had no room for in the ring.
pub(crate) fn packet_stats(fd: RawFd) -> io::Result<(u32, u32, u32)> {
    // SAFETY: plain old data.
    let mut st: libc::tpacket_stats_v3 = unsafe { zeroed() };
    let mut len = size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into the live `st`.
    cvt(unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            &mut st as *mut _ as *mut libc::c_void,
            &mut len,
        )
    })?;
    Ok((st.tp_packets, st.tp_drops, st.tp_freeze_q_cnt))
}

/// One frame in an [`RxRing`] block.
pub(crate) struct RingFrame<'a> {
    /// The bytes captured (the whole frame unless it was longer than a block).
    pub data: &'a [u8],
    /// The frame's length on the wire.
    pub len: usize,
    /// `sll_pkttype`: `PACKET_HOST`, `PACKET_OUTGOING`, ….
    pub pkttype: u8,
}

/// Offset of `block_status` in a block: `tpacket_block_desc` is `version`,
/// `offset_to_priv`, then `hdr.bh1` whose first field is `block_status`.
const BLOCK_STATUS_OFF: usize = 8;

/// A memory-mapped `TPACKET_V3` receive ring (`PACKET_RX_RING`) on an
/// `AF_PACKET` socket: `block_nr` blocks of `block_size` bytes, each filled
/// by the kernel with variable-length frames and handed to user space
/// whole (status `TP_STATUS_USER`) when full or after the retire timeout;
/// given back with `TP_STATUS_KERNEL`. Blocks are used in order.
pub(crate) struct RxRing {
    map: *mut u8,
    block_size: usize,
    block_nr: usize,
    /// The block being read, how many of its frames are left, and the
    /// offset (in the block) of the next one.
    block: usize,
    left: u32,
    next: usize,
    /// Blocks given back early because an offset in them was out of bounds
    /// (never seen from a correct kernel).
    pub bad_blocks: u64,
}

// SAFETY: the mapping is owned by this value alone (no copy of the pointer
// leaves it) and shared only with the kernel, which synchronises through
// the block status words; moving it to another thread is sound.
unsafe impl Send for RxRing {}

impl RxRing {
    /// Set `fd` to `TPACKET_V3` and map a receive ring on it; blocks are
    /// retired after `retire_ms` even when not full. `block_size` must be a
    /// multiple of the page size and of 2048.
    pub(crate) fn new(fd: RawFd, block_size: usize, block_nr: usize, retire_ms: u32) -> io::Result<RxRing> {
        const FRAME: usize = 2048; // only the kernel's sanity checks use it in V3
        setsockopt_int(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_VERSION,
            libc::tpacket_versions::TPACKET_V3 as libc::c_int,
        )?;
        // SAFETY: plain old data.
        let mut req: libc::tpacket_req3 = unsafe { zeroed() };
        req.tp_block_size = block_size as libc::c_uint;
        req.tp_block_nr = block_nr as libc::c_uint;
        req.tp_frame_size = FRAME as libc::c_uint;
        req.tp_frame_nr = (block_size / FRAME * block_nr) as libc::c_uint;
        req.tp_retire_blk_tov = retire_ms;
        // SAFETY: passes a live tpacket_req3 and its size.
        cvt(unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_PACKET,
                libc::PACKET_RX_RING,
                &req as *const _ as *const libc::c_void,
                size_of::<libc::tpacket_req3>() as libc::socklen_t,
            )
        })?;
        let len = block_size * block_nr;
        // SAFETY: maps the ring the kernel just allocated for `fd`; the
        // result is checked, and the mapping is unmapped in Drop only.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(RxRing {
            map: map as *mut u8,
            block_size,
            block_nr,
            block: 0,
            left: 0,
            next: 0,
            bad_blocks: 0,
        })
    }

    fn status(&self, block: usize) -> &AtomicU32 {
        debug_assert!(block < self.block_nr);
        // SAFETY: `block < block_nr`, so the word is inside the mapping;
        // blocks start on page boundaries, so it is 4-byte aligned; the
        // kernel accesses it concurrently, hence the atomic.
        unsafe { &*(self.map.add(block * self.block_size + BLOCK_STATUS_OFF) as *const AtomicU32) }
    }

    /// The `u32` at `off` in the current block (0 if out of bounds).
    fn word(&self, off: usize) -> u32 {
        if off.saturating_add(4) > self.block_size {
            return 0;
        }
        // SAFETY: `off + 4 <= block_size`, so the read is inside the current
        // block, which user space owns while it reads it.
        unsafe { std::ptr::read_unaligned(self.map.add(self.block * self.block_size + off) as *const u32) }
    }

    /// The `u16` at `off` in the current block (0 if out of bounds).
    fn half(&self, off: usize) -> u16 {
        if off.saturating_add(2) > self.block_size {
            return 0;
        }
        // SAFETY: as in `word`, for two bytes.
        unsafe { std::ptr::read_unaligned(self.map.add(self.block * self.block_size + off) as *const u16) }
    }

    /// Whether a frame can be read without waiting (the next block has been
    /// handed to user space, or the current one is not finished).
    pub(crate) fn ready(&self) -> bool {
        self.left > 0 || self.status(self.block).load(Ordering::Acquire) & libc::TP_STATUS_USER != 0
    }

    /// Give the current block back to the kernel and move to the next.
    fn release(&mut self) {
        self.status(self.block).store(libc::TP_STATUS_KERNEL, Ordering::Release);
        self.block = (self.block + 1) % self.block_nr;
        self.left = 0;
    }

    /// Hand up to `max` frames to `f`, in order, without a system call.
    /// Returns how many were handed over. A block goes back to the kernel
    /// as soon as its last frame has been handed over.
    pub(crate) fn recv(&mut self, max: usize, mut f: impl FnMut(RingFrame<'_>)) -> usize {
        // Header fields of tpacket_block_desc.hdr.bh1 and tpacket3_hdr.
        const NUM_PKTS: usize = BLOCK_STATUS_OFF + 4;
        const FIRST_PKT: usize = BLOCK_STATUS_OFF + 8;
        const HDR: usize = size_of::<libc::tpacket3_hdr>();
        // The sockaddr_ll follows the header, TPACKET_ALIGNed.
        const SLL: usize = (HDR + libc::TPACKET_ALIGNMENT - 1) & !(libc::TPACKET_ALIGNMENT - 1);
        const PKTTYPE: usize = SLL + offset_of!(libc::sockaddr_ll, sll_pkttype);
        let mut n = 0;
        while n < max {
            if self.left == 0 {
                if self.status(self.block).load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
                    break;
                }
                self.left = self.word(NUM_PKTS);
                self.next = self.word(FIRST_PKT) as usize;
                if self.left == 0 {
                    self.release();
                    continue;
                }
            }
            let off = self.next;
            if off < FIRST_PKT + 4 || off.saturating_add(PKTTYPE + 1) > self.block_size {
                self.bad_blocks += 1;
                self.release();
                continue;
            }
            let next_offset = self.word(off + offset_of!(libc::tpacket3_hdr, tp_next_offset)) as usize;
            let snaplen = self.word(off + offset_of!(libc::tpacket3_hdr, tp_snaplen)) as usize;
            let len = self.word(off + offset_of!(libc::tpacket3_hdr, tp_len)) as usize;
            let mac = self.half(off + offset_of!(libc::tpacket3_hdr, tp_mac)) as usize;
            let start = off + mac;
            if mac < PKTTYPE || start.saturating_add(snaplen) > self.block_size {
                self.bad_blocks += 1;
                self.release();
                continue;
            }
            let base = self.block * self.block_size;
            // SAFETY: `off + PKTTYPE < block_size` was checked above, so the
            // byte is inside the current block, which user space owns.
            let pkttype = unsafe { *self.map.add(base + off + PKTTYPE) };
            // SAFETY: `start + snaplen <= block_size` was checked, so the
            // slice is inside the current block; user space owns the block
            // (status USER, read with acquire) until `release`, which runs
            // only after `f` has returned, and the slice does not outlive `f`.
            let data = unsafe { std::slice::from_raw_parts(self.map.add(base + start), snaplen) };
            f(RingFrame { data, len, pkttype });
            n += 1;
            self.left -= 1;
            if self.left == 0 {
                self.release();
            } else if next_offset == 0 {
                // A block's frames are chained; 0 before the last is bogus.
                self.bad_blocks += 1;
                self.release();
            } else {
                self.next = off + next_offset;
            }
        }
        n
    }
}

impl Drop for RxRing {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; no reference
        // into it outlives `self` (slices handed out live only during `recv`).
        unsafe { libc::munmap(self.map as *mut libc::c_void, self.block_size * self.block_nr) };
    }
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
