//! The host functions of plugin ABI v1 (`docs/plugin-abi.md`): what a
//! plugin may call (`now_ns`, `counter_add`, `reply`, `log`, `emit`,
//! `frame_load`), the
//! per-store state they read and write ([`HostState`]) and the limits
//! they keep. Everything a plugin hands them is checked before use.

use std::sync::Arc;
use wasmtime::{Caller, Linker, Memory, ResourceLimiter};
use weft_plugin_sdk::abi;

/// Most bytes a plugin may return through `reply` in one call (a full
/// 4096-flow NetMonitor report is ~400 KiB).
pub(crate) const MAX_REPLY: usize = 4 << 20;
/// Most packets a plugin may emit per call: a bound on amplification.
const MAX_EMITS_PER_CALL: usize = 256;
/// Most log lines per call; the rest are counted, not printed.
pub(crate) const MAX_LOGS_PER_CALL: u32 = 8;
/// Largest frame a plugin may emit.
const MAX_EMIT_LEN: usize = 9216;
/// Host counters a plugin may use (`counter_add` ids).
pub(crate) const COUNTERS: usize = 64;

/// The store's memory limiter: the cap, and whether a call hit it.
pub(crate) struct Limiter {
    pub(crate) cap: usize,
    pub(crate) hit: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.hit = true;
            // An error (rather than `Ok(false)`, which makes `memory.grow`
            // return -1) turns the attempt into a trap we can name.
            return Err(wasmtime::format_err!(
                "memory cap of {} bytes exceeded (asked for {desired})",
                self.cap
            ));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 65536)
    }
}

/// Per-store host state: what host functions read and write.
pub(crate) struct HostState {
    pub(crate) limiter: Limiter,
    pub(crate) memory: Option<Memory>,
    pub(crate) now_ns: u64,
    pub(crate) reply: Vec<u8>,
    pub(crate) reply_truncated: bool,
    pub(crate) emits: Vec<(i32, Vec<u8>)>,
    pub(crate) emits_rejected: u64,
    pub(crate) logs_left: u32,
    pub(crate) logs_dropped: u64,
    pub(crate) counters: [i64; COUNTERS],
    pub(crate) class: Arc<str>,
    /// Where the packets of the batch being processed are: their slots in
    /// the arena and, while `in_batch`, their frames (`frame_load` reads).
    /// (`frames[..n_frames]`: a fixed array, so filling it per packet is
    /// a store, not a `Vec` push with its capacity check.)
    pub(crate) frames: [Frame; abi::MAX_BATCH],
    /// How many of `frames` belong to the current chunk.
    pub(crate) n_frames: usize,
    /// Bytes of each frame copied in before the plugin asks for the rest
    /// (its `weft_frame_head`; `usize::MAX`: all of it).
    pub(crate) head: usize,
    /// Bit i: frame i of the chunk was brought in whole by `frame_load`
    /// (its slot then holds all `len` bytes, not only the head).
    pub(crate) loaded: u64,
    /// True only inside `weft_process`: `Frame::src` points at live packets.
    pub(crate) in_batch: bool,
    /// The arena's address in the plugin's memory (its first
    /// `weft_alloc`; 0 until then).
    pub(crate) arena: usize,
}

/// Packet `i` of the current chunk: where its slot is and, for a frame
/// shown in part, where the rest is. Two words, written for every packet
/// of every batch; what can be derived (the bytes shown: `len` and the
/// head, or all of it once loaded; the slot's size: the packet's) is not
/// kept.
#[derive(Clone, Copy, Default)]
pub(crate) struct Frame {
    /// Address of the packet's bytes in the host (valid while `in_batch`).
    pub(crate) src: usize,
    /// Offset of the frame in the arena.
    pub(crate) at: u32,
    /// The frame's length.
    pub(crate) len: u32,
}

impl HostState {
    /// A store's state before its first call: memory capped at
    /// `memory_cap` bytes, logs tagged with `class`.
    pub(crate) fn new(memory_cap: usize, class: Arc<str>) -> HostState {
        HostState {
            limiter: Limiter {
                cap: memory_cap,
                hit: false,
            },
            memory: None,
            now_ns: 0,
            reply: Vec::new(),
            reply_truncated: false,
            emits: Vec::new(),
            emits_rejected: 0,
            logs_left: MAX_LOGS_PER_CALL,
            logs_dropped: 0,
            counters: [0; COUNTERS],
            class,
            frames: [Frame::default(); abi::MAX_BATCH],
            n_frames: 0,
            head: usize::MAX,
            loaded: 0,
            in_batch: false,
            arena: 0,
        }
    }

    /// The bytes of frame `i` (of `f`) in its slot now.
    pub(crate) fn shown(&self, i: usize, f: &Frame) -> usize {
        if self.loaded & (1 << i) != 0 {
            f.len as usize
        } else {
            (f.len as usize).min(self.head)
        }
    }
}

/// Copy `len` bytes at `ptr` out of the plugin's memory, if in bounds.
fn guest_bytes(mem: &[u8], ptr: i32, len: i32) -> Option<&[u8]> {
    let (p, l) = (ptr as u32 as usize, usize::try_from(len).ok()?);
    mem.get(p..p.checked_add(l)?)
}

/// Define the `weft` host functions of plugin ABI v1.
pub(crate) fn link_host_functions(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    l.func_wrap(abi::IMPORT_MODULE, "now_ns", |c: Caller<'_, HostState>| {
        c.data().now_ns as i64
    })?;
    l.func_wrap(
        abi::IMPORT_MODULE,
        "counter_add",
        |mut c: Caller<'_, HostState>, id: i32, delta: i64| {
            if let Some(v) = c.data_mut().counters.get_mut(id as u32 as usize) {
                *v = v.wrapping_add(delta);
            }
        },
    )?;
    l.func_wrap(
        abi::IMPORT_MODULE,
        "reply",
        |mut c: Caller<'_, HostState>, ptr: i32, len: i32| {
            let Some(mem) = c.data().memory else { return };
            let (data, st) = mem.data_and_store_mut(&mut c);
            match guest_bytes(data, ptr, len) {
                Some(b) if st.reply.len() + b.len() <= MAX_REPLY => st.reply.extend_from_slice(b),
                _ => st.reply_truncated = true,
            }
        },
    )?;
    l.func_wrap(
        abi::IMPORT_MODULE,
        "log",
        |mut c: Caller<'_, HostState>, level: i32, ptr: i32, len: i32| {
            let Some(mem) = c.data().memory else { return };
            let (data, st) = mem.data_and_store_mut(&mut c);
            if st.logs_left == 0 {
                st.logs_dropped += 1;
                return;
            }
            st.logs_left -= 1;
            let Some(b) = guest_bytes(data, ptr, len.min(1024)) else {
                return;
            };
            let msg = String::from_utf8_lossy(b);
            let class = &*st.class;
            match level {
                1 => tracing::error!(plugin = class, "{msg}"),
                2 => tracing::warn!(plugin = class, "{msg}"),
                3 => tracing::info!(plugin = class, "{msg}"),
                _ => tracing::debug!(plugin = class, "{msg}"),
            }
        },
    )?;
    l.func_wrap(
        abi::IMPORT_MODULE,
        "frame_load",
        |mut c: Caller<'_, HostState>, desc: i32| -> i32 {
            let Some(mem) = c.data().memory else { return -1 };
            let (data, st) = mem.data_and_store_mut(&mut c);
            if !st.in_batch {
                return -1;
            }
            let off = (desc as u32 as usize).wrapping_sub(st.arena);
            if !off.is_multiple_of(abi::DESC_SIZE) {
                return -1;
            }
            let (arena, i) = (st.arena, off / abi::DESC_SIZE);
            let Some(&f) = st.frames[..st.n_frames].get(i) else {
                return -1;
            };
            let (shown, len) = (st.shown(i, &f), f.len as usize);
            if shown < len {
                // SAFETY: while `in_batch` (only during `weft_process`),
                // `src` is the address of packet i's `len` bytes, which the
                // element holds borrowed for the whole call and nothing
                // else reads or writes meanwhile. (The one unsafe block of
                // the data path: without it every plugin would pay for a
                // copy of every whole frame, read or not.)
                #[allow(unsafe_code)]
                let src = unsafe { std::slice::from_raw_parts(f.src as *const u8, len) };
                let at = arena + f.at as usize;
                let Some(dst) = data.get_mut(at + shown..at + len) else {
                    return -1;
                };
                dst.copy_from_slice(&src[shown..]);
                st.loaded |= 1 << i;
            }
            0
        },
    )?;
    l.func_wrap(
        abi::IMPORT_MODULE,
        "emit",
        |mut c: Caller<'_, HostState>, ptr: i32, len: i32, to: i32| -> i32 {
            let Some(mem) = c.data().memory else { return -1 };
            let (data, st) = mem.data_and_store_mut(&mut c);
            let frame = match guest_bytes(data, ptr, len) {
                Some(f) if f.len() <= MAX_EMIT_LEN => f,
                _ => {
                    st.emits_rejected += 1;
                    return -1;
                }
            };
            if st.emits.len() >= MAX_EMITS_PER_CALL || !(to == abi::EMIT_ROUTE || (0..=u16::MAX as i32).contains(&to)) {
                st.emits_rejected += 1;
                return -1;
            }
            // A frame that does not parse (bad lengths, bad IPv4 checksum,
            // truncated headers) never enters the node.
            if weft_packet::view::parse(frame).is_err() {
                st.emits_rejected += 1;
                return -2;
            }
            st.emits.push((to, frame.to_vec()));
            0
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::{HOST_IMPORTS, PLUGIN_EXPORTS};
    use wasmtime::Store;

    /// Parameter and result type names.
    type Sig = (Vec<String>, Vec<String>);

    /// `(params) -> results` as type names: `(ptr: i32, len: i32) -> i32`
    /// gives `(["i32", "i32"], ["i32"])`.
    fn parse_sig(sig: &str) -> Sig {
        let sig = sig.trim().trim_matches('`');
        let (params, results) = sig.split_once("->").unwrap_or((sig, ""));
        let list = |s: &str| -> Vec<String> {
            s.trim()
                .trim_start_matches('(')
                .trim_end_matches(')')
                .split(',')
                .map(|p| p.rsplit(':').next().unwrap_or(p).trim().to_string())
                .filter(|p| !p.is_empty())
                .collect()
        };
        (list(params), list(results))
    }

    /// The rows of the first table after `heading` in docs/plugin-abi.md:
    /// its cells, backticks kept.
    fn doc_table(heading: &str) -> Vec<Vec<String>> {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/plugin-abi.md")).unwrap();
        let at = doc
            .find(heading)
            .unwrap_or_else(|| panic!("{heading:?} in docs/plugin-abi.md"));
        doc[at..]
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .skip(2)
            .map(|l| l.trim_matches('|').split(" | ").map(|c| c.trim().to_string()).collect())
            .collect()
    }

    fn names(v: &[wasmtime::ValType]) -> Vec<String> {
        v.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn abi_tables_match_the_host() {
        // Imports: the doc, the verifier's list and the linker agree.
        let doc: Vec<(String, Sig)> = doc_table("## Imports")
            .iter()
            .map(|r| (r[0].trim_matches('`').to_string(), parse_sig(&r[1])))
            .collect();
        let verifier: Vec<(String, Sig)> = HOST_IMPORTS
            .iter()
            .map(|(n, p, r)| {
                let s = |v: &[wasmparser::ValType]| v.iter().map(|t| t.to_string()).collect();
                (n.to_string(), (s(p), s(r)))
            })
            .collect();
        let sorted = |mut v: Vec<_>| {
            v.sort();
            v
        };
        let engine = wasmtime::Engine::default();
        let mut linker: Linker<HostState> = Linker::new(&engine);
        link_host_functions(&mut linker).unwrap();
        let mut store = Store::new(&engine, HostState::new(0, "t".into()));
        let defs: Vec<(String, String, wasmtime::Extern)> = linker
            .iter(&mut store)
            .map(|(m, n, e)| (m.to_string(), n.to_string(), e))
            .collect();
        let linked: Vec<(String, Sig)> = defs
            .into_iter()
            .map(|(m, n, e)| {
                assert_eq!(m, abi::IMPORT_MODULE);
                let ty = e.into_func().expect("host functions only").ty(&store);
                (
                    n,
                    (
                        names(&ty.params().collect::<Vec<_>>()),
                        names(&ty.results().collect::<Vec<_>>()),
                    ),
                )
            })
            .collect();
        let doc = sorted(doc);
        assert_eq!(doc.len(), 6, "{doc:?}");
        assert_eq!(
            doc,
            sorted(verifier),
            "docs/plugin-abi.md imports vs verify::HOST_IMPORTS"
        );
        assert_eq!(doc, sorted(linked), "docs/plugin-abi.md imports vs the linker");

        // Exports: the doc and the verifier agree, required flags too.
        let rows = doc_table("## Exports");
        assert_eq!(rows[0][0], "`memory`");
        let doc: Vec<(String, Sig, bool)> = rows[1..]
            .iter()
            .map(|r| (r[0].trim_matches('`').to_string(), parse_sig(&r[1]), r[2] == "yes"))
            .collect();
        let verifier: Vec<(String, Sig, bool)> = PLUGIN_EXPORTS
            .iter()
            .map(|(n, p, r, req)| {
                let s = |v: &[wasmparser::ValType]| v.iter().map(|t| t.to_string()).collect();
                (n.to_string(), (s(p), s(r)), *req)
            })
            .collect();
        assert_eq!(doc, verifier, "docs/plugin-abi.md exports vs verify::PLUGIN_EXPORTS");
    }
}
