//! The guest side: safe views over the arena the host fills, the host
//! imports, and the helpers the [`weft_plugin!`](crate::weft_plugin) macro
//! calls. On targets other than wasm32 the imports are inert stubs so that
//! plugin logic can be unit-tested natively.

use crate::abi::{self, desc};
use crate::{Level, Verdict};

#[cfg(target_arch = "wasm32")]
mod host {
    #[link(wasm_import_module = "weft")]
    extern "C" {
        pub fn emit(ptr: i32, len: i32, to_port: i32) -> i32;
        pub fn log(level: i32, ptr: i32, len: i32);
        pub fn now_ns() -> i64;
        pub fn counter_add(id: i32, delta: i64);
        pub fn reply(ptr: i32, len: i32);
        pub fn frame_load(desc_ptr: i32) -> i32;
    }
}

#[cfg(not(target_arch = "wasm32"))]
#[allow(clippy::missing_safety_doc)]
mod host {
    pub unsafe fn emit(_: i32, _: i32, _: i32) -> i32 {
        0
    }
    pub unsafe fn log(_: i32, _: i32, _: i32) {}
    pub unsafe fn now_ns() -> i64 {
        0
    }
    pub unsafe fn counter_add(_: i32, _: i64) {}
    pub unsafe fn reply(_: i32, _: i32) {}
    pub unsafe fn frame_load(_: i32) -> i32 {
        0
    }
}

// Aligned to a cache line, so each 64-byte descriptor is one line.
#[repr(C, align(64))]
struct Arena([u8; abi::ARENA_LEN]);

static mut ARENA: Arena = Arena([0; abi::ARENA_LEN]);

#[cfg(feature = "alloc")]
static mut BIG: alloc::vec::Vec<u8> = alloc::vec::Vec::new();

/// `weft_alloc`: the arena for any request that fits, else (with `alloc`) a
/// buffer valid until the next call, else 0 (refused).
#[doc(hidden)]
#[allow(static_mut_refs)]
pub fn alloc(len: i32) -> i32 {
    if len < 0 {
        return 0;
    }
    if len as usize <= abi::ARENA_LEN {
        // The host is the only user of the arena and uses it only between
        // calls into the plugin.
        return core::ptr::addr_of_mut!(ARENA) as usize as i32;
    }
    #[cfg(feature = "alloc")]
    {
        // SAFETY: as above; the previous big buffer is no longer in use.
        unsafe {
            BIG = alloc::vec![0u8; len as usize];
            return BIG.as_mut_ptr() as usize as i32;
        }
    }
    #[allow(unreachable_code)]
    0
}

/// The bytes the host wrote at `ptr..ptr+len`.
#[doc(hidden)]
pub fn bytes_at(ptr: i32, len: i32) -> &'static [u8] {
    if ptr == 0 || len <= 0 {
        return &[];
    }
    // SAFETY: the host wrote `len` bytes at `ptr` inside a buffer this module
    // handed out with `weft_alloc`.
    unsafe { core::slice::from_raw_parts(ptr as usize as *const u8, len as usize) }
}

/// The text the host wrote at `ptr..ptr+len` (empty when not UTF-8).
#[doc(hidden)]
pub fn str_at(ptr: i32, len: i32) -> &'static str {
    core::str::from_utf8(bytes_at(ptr, len)).unwrap_or("")
}

/// Output to the host: a control reply, a report, exported state or an
/// error message. Implements [`core::fmt::Write`], so `write!` works.
pub struct Reply {
    _private: (),
}

impl Reply {
    #[doc(hidden)]
    pub fn new() -> Self {
        Reply { _private: () }
    }

    /// Append text.
    pub fn write(&mut self, s: &str) {
        self.write_bytes(s.as_bytes());
    }

    /// Append bytes.
    pub fn write_bytes(&mut self, b: &[u8]) {
        // SAFETY: the host copies `len` bytes from our memory at `ptr`.
        unsafe { host::reply(b.as_ptr() as usize as i32, b.len() as i32) }
    }

    /// Append a decimal number.
    pub fn write_u64(&mut self, mut v: u64) {
        let mut buf = [0u8; 20];
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.write_bytes(&buf[i..]);
    }
}

impl core::fmt::Write for Reply {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.write(s);
        Ok(())
    }
}

/// What the plugin sees of the node during `weft_process`.
pub struct Ctx {
    _private: (),
}

impl Ctx {
    #[doc(hidden)]
    pub fn new() -> Self {
        Ctx { _private: () }
    }

    /// The node's clock in nanoseconds (virtual in the emulator).
    pub fn now_ns(&self) -> u64 {
        // SAFETY: host import without memory arguments.
        unsafe { host::now_ns() as u64 }
    }

    /// Emit a new frame out of `port`; the host validates it. Returns false
    /// when refused.
    pub fn emit_to_port(&mut self, frame: &[u8], port: u16) -> bool {
        // SAFETY: the host copies `len` bytes from our memory at `ptr`.
        unsafe { host::emit(frame.as_ptr() as usize as i32, frame.len() as i32, port as i32) == 0 }
    }

    /// Emit a new frame into the node's routing.
    pub fn emit_routed(&mut self, frame: &[u8]) -> bool {
        // SAFETY: as above.
        unsafe { host::emit(frame.as_ptr() as usize as i32, frame.len() as i32, abi::EMIT_ROUTE) == 0 }
    }

    /// Log a line through the node's logger (rate-limited by the host).
    pub fn log(&mut self, level: Level, msg: &str) {
        // SAFETY: the host copies `len` bytes from our memory at `ptr`.
        unsafe { host::log(level as i32, msg.as_ptr() as usize as i32, msg.len() as i32) }
    }

    /// Add to host-side counter `id` (0..64), shown in the instance's report.
    pub fn counter_add(&mut self, id: u32, delta: i64) {
        // SAFETY: host import without memory arguments.
        unsafe { host::counter_add(id as i32, delta) }
    }
}

/// The classifier's 6-tuple of a packet, as the host parsed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FlowKey {
    /// 0 not IP, 4 IPv4, 6 IPv6.
    pub family: u8,
    /// IP protocol.
    pub proto: u8,
    /// Source address, network order (IPv4 in the first 4 bytes).
    pub src: [u8; 16],
    /// Destination address, network order (IPv4 in the first 4 bytes).
    pub dst: [u8; 16],
    /// Source port, or 0.
    pub sport: u16,
    /// Destination port, or 0.
    pub dport: u16,
}

/// The batch of one `weft_process` call.
pub struct Batch {
    ptr: usize,
    n: usize,
    head: usize,
}

impl Batch {
    #[doc(hidden)]
    pub fn new(ptr: i32, n: i32, head: usize) -> Self {
        Batch {
            ptr: ptr as u32 as usize,
            n: n.clamp(0, abi::MAX_BATCH as i32) as usize,
            head,
        }
    }

    /// Packets in the batch.
    pub fn len(&self) -> usize {
        self.n
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Packet `i`.
    pub fn get(&mut self, i: usize) -> Option<Packet<'_>> {
        if i >= self.n {
            return None;
        }
        // SAFETY: the host wrote `n` descriptors of DESC_SIZE bytes at `ptr`.
        let d = unsafe { &mut *((self.ptr + i * abi::DESC_SIZE) as *mut [u8; abi::DESC_SIZE]) };
        Some(Packet { d, head: self.head })
    }
}

/// One packet of the batch: its descriptor and, through it, its bytes.
///
/// **Head and rest.** A plugin that declares a head ([`crate::Plugin::HEAD`])
/// is shown only the frame's first `HEAD` bytes ([`Packet::head`]); the
/// header accessors read from there. [`Packet::data`] and
/// [`Packet::data_mut`] bring the rest in first (one host call, `frame_load`),
/// so every accessor sees the whole frame whatever the head.
pub struct Packet<'a> {
    d: &'a mut [u8; abi::DESC_SIZE],
    head: usize,
}

fn rd16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn rd32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl<'a> Packet<'a> {
    /// A packet over a raw descriptor (for native unit tests of plugin logic).
    ///
    /// # Safety
    /// `d`'s `OFF` must point at `CAP` bytes valid for reads and writes for
    /// the lifetime of the packet.
    pub unsafe fn from_descriptor(d: &'a mut [u8; abi::DESC_SIZE]) -> Self {
        Packet { d, head: usize::MAX }
    }

    fn partial(&self) -> bool {
        self.d[desc::FLAGS] & abi::FLAG_PARTIAL != 0
    }

    /// Ask the host for the rest of a partly shown frame. The flag stays
    /// set (the host never writes the descriptor): a second call costs one
    /// host call that copies nothing. [`Packet::load`] clears it.
    fn fetch_rest(&self) {
        // SAFETY: a host import that writes the frame's missing bytes into
        // its own slot of the arena (no Rust reference covers them now) and
        // reads nothing else.
        if unsafe { host::frame_load(self.d.as_ptr() as usize as i32) } != 0 {
            // Only a descriptor the host did not hand out gets here.
            panic!("frame_load refused");
        }
    }

    /// Bring the whole frame into the arena now (a no-op when it is all
    /// there): later [`Packet::data`] calls cost nothing extra.
    pub fn load(&mut self) {
        if self.partial() {
            self.fetch_rest();
            self.d[desc::FLAGS] &= !abi::FLAG_PARTIAL;
        }
    }

    /// The frame's bytes present without asking the host for more: the
    /// whole frame, or its first [`crate::Plugin::HEAD`] bytes when the
    /// plugin declared a head and the frame is longer.
    pub fn head(&self) -> &[u8] {
        let (p, len, _) = self.raw();
        let shown = if self.partial() { len.min(self.head) } else { len };
        // SAFETY: the host placed at least `shown` bytes at `off`.
        unsafe { core::slice::from_raw_parts(p, shown) }
    }

    /// Bytes `at..at + N` of the frame: read in place when they are in the
    /// head (or the whole frame is in the slot), else after bringing in the
    /// rest. A fixed-size copy, so no slice is made.
    fn read<const N: usize>(&self, at: usize) -> Option<[u8; N]> {
        let (p, len, _) = self.raw();
        let end = at.checked_add(N)?;
        if end > len {
            return None;
        }
        if end <= self.head || !self.partial() {
            // SAFETY: `at + N` ≤ `len`, and those bytes are shown: within
            // the head, or the whole frame is in the slot.
            return Some(unsafe { core::ptr::read_unaligned(p.add(at) as *const [u8; N]) });
        }
        self.data().get(at..end)?.try_into().ok()
    }

    fn raw(&self) -> (*mut u8, usize, usize) {
        let off = rd32(self.d, desc::OFF) as usize;
        let cap = rd32(self.d, desc::CAP) as usize;
        let len = (rd32(self.d, desc::LEN) as usize).min(cap);
        (off as *mut u8, len, cap)
    }

    /// The frame (Ethernet header first), all of it: a partly shown frame
    /// is brought in first.
    pub fn data(&self) -> &[u8] {
        if self.partial() {
            self.fetch_rest();
        }
        let (p, len, _) = self.raw();
        // SAFETY: the host placed `cap >= len` bytes at `off`.
        unsafe { core::slice::from_raw_parts(p, len) }
    }

    /// The frame, writable. Marks the packet written, so the host copies it
    /// back.
    pub fn data_mut(&mut self) -> &mut [u8] {
        self.load();
        self.d[desc::FLAGS] |= abi::FLAG_WRITTEN;
        let (p, len, _) = self.raw();
        // SAFETY: as in `data`; `&mut self` makes this the only view.
        unsafe { core::slice::from_raw_parts_mut(p, len) }
    }

    /// Frame length.
    pub fn len(&self) -> usize {
        self.raw().1
    }

    /// True when the frame is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most the frame may grow to.
    pub fn capacity(&self) -> usize {
        self.raw().2
    }

    /// Change the frame's length (new bytes are whatever the arena held).
    /// Refused beyond [`Packet::capacity`].
    // The only failure is "beyond capacity"; a unit error says it all.
    #[allow(clippy::result_unit_err)]
    pub fn set_len(&mut self, len: usize) -> Result<(), ()> {
        if len > self.capacity() {
            return Err(());
        }
        self.load();
        self.d[desc::FLAGS] |= abi::FLAG_WRITTEN;
        self.d[desc::LEN..desc::LEN + 4].copy_from_slice(&(len as u32).to_le_bytes());
        Ok(())
    }

    /// The raw descriptor. Only for tests of the host's validation (the
    /// `badlen` plugin); a well-behaved plugin never needs it.
    #[doc(hidden)]
    pub fn descriptor_mut(&mut self) -> &mut [u8; abi::DESC_SIZE] {
        self.d
    }

    /// Receiving port.
    pub fn in_port(&self) -> u16 {
        rd16(self.d, desc::IN_PORT)
    }

    /// Offset of the L3 header (None when not IP).
    pub fn l3(&self) -> Option<usize> {
        let v = rd16(self.d, desc::L3) as usize;
        (v != 0 && v < self.len()).then_some(v)
    }

    /// Offset of the L4 header (None when absent).
    pub fn l4(&self) -> Option<usize> {
        let v = rd16(self.d, desc::L4) as usize;
        (v != 0 && v <= self.len()).then_some(v)
    }

    /// The packet's mark.
    pub fn mark(&self) -> u32 {
        rd32(self.d, desc::MARK)
    }

    /// Set the packet's mark.
    pub fn set_mark(&mut self, m: u32) {
        self.d[desc::MARK..desc::MARK + 4].copy_from_slice(&m.to_le_bytes());
    }

    /// The flow key.
    pub fn flow(&self) -> FlowKey {
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        src.copy_from_slice(&self.d[desc::SRC..desc::SRC + 16]);
        dst.copy_from_slice(&self.d[desc::DST..desc::DST + 16]);
        FlowKey {
            family: self.d[desc::FAMILY],
            proto: self.d[desc::PROTO],
            src,
            dst,
            sport: rd16(self.d, desc::SPORT),
            dport: rd16(self.d, desc::DPORT),
        }
    }

    /// IPv4 TTL or IPv6 hop limit.
    pub fn ttl(&self) -> Option<u8> {
        // IPv4's TTL is byte 8 of its header, IPv6's hop limit byte 7.
        let at = match self.d[desc::FAMILY] {
            4 => 8,
            6 => 7,
            _ => return None,
        };
        self.read::<1>(self.l3()? + at).map(|[b]| b)
    }

    /// The UDP payload's range in the frame, when this is a whole UDP
    /// datagram (proto 17, header present, length field consistent).
    pub fn udp_payload_range(&self) -> Option<core::ops::Range<usize>> {
        if self.d[desc::PROTO] != 17 {
            return None;
        }
        let l4 = self.l4()?;
        let ulen = u16::from_be_bytes(self.read(l4 + 4)?) as usize;
        if ulen < 8 || l4 + ulen > self.len() {
            return None;
        }
        Some(l4 + 8..l4 + ulen)
    }

    /// The UDP payload's first `N` bytes, read in place, when they are
    /// already shown: a whole UDP datagram (as [`Packet::udp_payload_range`]
    /// judges it) whose payload has at least `N` bytes, all of them within
    /// the head. `None` otherwise — not UDP, a shorter payload, or bytes
    /// past the head — and then [`Packet::udp_payload_range`] tells which.
    /// Never calls the host: the cheap first look of a plugin that tells
    /// most datagrams apart by their first bytes.
    #[inline]
    pub fn udp_payload_prefix<const N: usize>(&self) -> Option<[u8; N]> {
        if self.d[desc::PROTO] != 17 {
            return None;
        }
        let l4 = rd16(self.d, desc::L4) as usize;
        let head = self.head();
        let ulen = u16::from_be_bytes(head.get(l4 + 4..l4 + 6)?.try_into().ok()?) as usize;
        let first = head.get(l4 + 8..l4 + 8 + N)?.try_into().ok()?;
        (l4 != 0 && ulen >= 8 + N && l4 + ulen <= self.len()).then_some(first)
    }

    /// The UDP payload, read-only.
    pub fn udp_payload(&self) -> Option<&[u8]> {
        let r = self.udp_payload_range()?;
        self.data().get(r)
    }

    /// Recompute the UDP checksum of an IPv4 or IPv6 datagram after a
    /// rewrite (an IPv4 checksum of 0, "none", is left as it is).
    pub fn fix_udp_checksum(&mut self) -> bool {
        let (Some(l3), Some(l4), Some(r)) = (self.l3(), self.l4(), self.udp_payload_range()) else {
            return false;
        };
        let family = self.d[desc::FAMILY];
        let data = self.data_mut();
        let ulen = r.end - l4;
        let mut s = match family {
            4 => {
                if data[l4 + 6] == 0 && data[l4 + 7] == 0 {
                    return true;
                }
                checksum::sum(&data[l3 + 12..l3 + 20], 0) + 17 + ulen as u32
            }
            6 => checksum::sum(&data[l3 + 8..l3 + 40], 0) + 17 + ulen as u32,
            _ => return false,
        };
        data[l4 + 6] = 0;
        data[l4 + 7] = 0;
        s = checksum::sum(&data[l4..r.end], s);
        let mut c = checksum::finish(s);
        if c == 0 {
            c = 0xffff;
        }
        data[l4 + 6..l4 + 8].copy_from_slice(&c.to_be_bytes());
        true
    }

    /// Set the verdict.
    pub fn set_verdict(&mut self, v: Verdict) {
        let (code, port) = match v {
            Verdict::Continue => (abi::VERDICT_CONTINUE, 0),
            Verdict::Drop => (abi::VERDICT_DROP, 0),
            Verdict::Consume => (abi::VERDICT_CONSUME, 0),
            Verdict::Redirect(p) => (abi::VERDICT_REDIRECT, p),
        };
        self.d[desc::VERDICT] = code;
        self.d[desc::PORT..desc::PORT + 2].copy_from_slice(&port.to_le_bytes());
    }
}

/// The Internet checksum (RFC 1071).
pub mod checksum {
    /// Add `data` as 16-bit big-endian words to a running sum.
    pub fn sum(data: &[u8], mut s: u32) -> u32 {
        let mut chunks = data.chunks_exact(2);
        for c in &mut chunks {
            s = s.wrapping_add(u16::from_be_bytes([c[0], c[1]]) as u32);
        }
        if let [b] = chunks.remainder() {
            s = s.wrapping_add((*b as u32) << 8);
        }
        s
    }

    /// Fold and complement a running sum.
    pub fn finish(mut s: u32) -> u16 {
        while s >> 16 != 0 {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }
}
