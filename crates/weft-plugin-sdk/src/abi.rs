//! Plugin ABI v1: constants and the batch descriptor layout, shared by the
//! guest SDK and the host (`weft-wasm`). See `docs/plugin-abi.md`.
//!
//! All integers are little-endian (wasm's byte order). Pointers are offsets
//! in the plugin's exported linear memory `memory`.

/// The ABI version this crate speaks; `weft_abi_version` returns it.
pub const ABI_VERSION: i32 = 1;

/// The module every import comes from.
pub const IMPORT_MODULE: &str = "weft";

/// Most packets in one `weft_process` call; larger batches are split.
pub const MAX_BATCH: usize = 64;

/// Size of one batch descriptor.
pub const DESC_SIZE: usize = 64;

/// Bytes of packet data the arena holds after the descriptors: 64 frames of
/// up to 2 KiB, so a batch of MTU-sized frames fits in one call.
pub const DATA_LEN: usize = 128 * 1024;

/// Size of the arena the host asks for with its first `weft_alloc` call:
/// descriptors, then packet data. Host messages (configuration, control
/// requests, state) up to this size are written at its start.
pub const ARENA_LEN: usize = MAX_BATCH * DESC_SIZE + DATA_LEN;

/// Extra room the host gives each packet beyond its length (bounded by the
/// buffer's real tailroom): how far a plugin may grow a packet.
pub const GROW_ROOM: usize = 256;

/// Byte offsets of the fields of a batch descriptor.
pub mod desc {
    /// u32: pointer to the frame's first byte (Ethernet header).
    pub const OFF: usize = 0;
    /// u32, in/out: frame length; the plugin may set it up to `CAP`.
    pub const LEN: usize = 4;
    /// u32: bytes available at `OFF`.
    pub const CAP: usize = 8;
    /// u16: receiving port.
    pub const IN_PORT: usize = 12;
    /// u16: offset of the L3 header in the frame (0: not IP).
    pub const L3: usize = 14;
    /// u16: offset of the L4 header in the frame (0: none).
    pub const L4: usize = 16;
    /// u8: address family, 0 none, 4 IPv4, 6 IPv6.
    pub const FAMILY: usize = 18;
    /// u8: IP protocol.
    pub const PROTO: usize = 19;
    /// u16: source port (TCP/UDP), else 0.
    pub const SPORT: usize = 20;
    /// u16: destination port (TCP/UDP), else 0.
    pub const DPORT: usize = 22;
    /// 16 bytes: source address, network order; IPv4 in the first 4.
    pub const SRC: usize = 24;
    /// 16 bytes: destination address, network order; IPv4 in the first 4.
    pub const DST: usize = 40;
    /// u8, out: verdict (`VERDICT_*`), 0 on entry.
    pub const VERDICT: usize = 56;
    /// u8, out: flags (`FLAG_*`), 0 on entry.
    pub const FLAGS: usize = 57;
    /// u16, out: port for `VERDICT_REDIRECT`.
    pub const PORT: usize = 58;
    /// u32, in/out: the packet's mark.
    pub const MARK: usize = 60;
}

/// Pass on.
pub const VERDICT_CONTINUE: u8 = 0;
/// Discard.
pub const VERDICT_DROP: u8 = 1;
/// Taken by the plugin.
pub const VERDICT_CONSUME: u8 = 2;
/// Out of port `desc::PORT`.
pub const VERDICT_REDIRECT: u8 = 3;

/// Flag: the plugin wrote the frame's bytes or length; the host copies the
/// frame back only when it is set.
pub const FLAG_WRITTEN: u8 = 1;

/// Flag, in: only the frame's first bytes are in the arena (the plugin
/// declared a head with `weft_frame_head`, and the frame is longer);
/// `frame_load` brings the rest. The host ignores it on the way back.
pub const FLAG_PARTIAL: u8 = 2;

/// The optional export declaring the plugin's head: `() -> i32`, a
/// constant (read from the code, like `weft_abi_version`): how many bytes
/// of each frame the host copies in before the plugin asks for the rest.
pub const FRAME_HEAD_EXPORT: &str = "weft_frame_head";

/// `emit` destination meaning "into the node's routing" (else a port number).
pub const EMIT_ROUTE: i32 = -1;
