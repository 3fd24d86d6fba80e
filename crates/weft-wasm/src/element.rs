//! A plugin instance as an [`Element`]: its own store (memory cap, CPU
//! budget), the batch arena, fault handling. The host functions it calls
//! are in `linker.rs`; the class that makes instances in `class.rs`.
//!
//! **Trust boundary.** Everything read back from the plugin's memory —
//! descriptor lengths, verdicts, pointers given to host functions, emitted
//! frames, replies — is validated before use; an invalid value is a fault,
//! never a host panic.

use crate::host::{Budget, WasmHost};
use crate::linker::{Frame, HostState, MAX_LOGS_PER_CALL, MAX_REPLY};
use crate::verify::ModuleInfo;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use wasmtime::{InstancePre, Memory, Store, Trap, TypedFunc};
use weft_dataplane::{Args, Ctx, Element, ElementError, EmitTo, Handler, Verdict};
use weft_packet::flow::Family;
use weft_packet::Packet;
use weft_plugin_sdk::abi::{self, desc};

/// Host keys taken out of an instance's configuration before the rest goes
/// to the plugin.
const HOST_KEYS: &[&str] = &["on_fault", "max_faults"];
/// Default consecutive faults before an instance is disabled.
pub const DEFAULT_MAX_FAULTS: u32 = 3;
/// What happens to a batch's packets when the plugin faults (and to every
/// packet while the instance is disabled).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFault {
    /// Let them continue untouched by the plugin (fail open).
    Pass,
    /// Drop them (fail closed). The default.
    Drop,
}

/// Kinds of plugin fault, as counted in the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// A trap: panic, `unreachable`, out-of-bounds access, stack overflow.
    Trap,
    /// The call ran out of its CPU budget (fuel or epoch deadline).
    Budget,
    /// The plugin tried to grow its memory past the cap.
    Memory,
    /// The plugin returned something invalid: a length beyond the buffer, an
    /// unknown verdict, a non-zero status from `weft_process`.
    BadOutput,
}

impl FaultKind {
    fn name(self) -> &'static str {
        match self {
            FaultKind::Trap => "trap",
            FaultKind::Budget => "budget",
            FaultKind::Memory => "memory",
            FaultKind::BadOutput => "bad_output",
        }
    }
}

/// What every instance of a class shares: the host (engine, budget, memory
/// cap), the class name, what the verifier learned, and the module with
/// its imports resolved (each instance only allocates its store).
pub(crate) struct ClassShared {
    pub(crate) host: WasmHost,
    pub(crate) name: Arc<str>,
    pub(crate) info: ModuleInfo,
    pub(crate) pre: InstancePre<HostState>,
}

struct Funcs {
    alloc: TypedFunc<i32, i32>,
    init: TypedFunc<(i32, i32), i32>,
    process: TypedFunc<(i32, i32), i32>,
    control: Option<TypedFunc<(i32, i32), i32>>,
    report: Option<TypedFunc<(), i32>>,
    export_state: Option<TypedFunc<(), i32>>,
    import_state: Option<TypedFunc<(i32, i32), i32>>,
}

#[derive(Default, Clone, Copy)]
struct Faults {
    trap: u64,
    budget: u64,
    memory: u64,
    bad_output: u64,
}

struct Inner {
    class: Arc<ClassShared>,
    store: Store<HostState>,
    memory: Memory,
    funcs: Funcs,
    on_fault: OnFault,
    max_faults: u32,
    consecutive: u32,
    disabled: bool,
    faults: Faults,
    last_fault: Option<String>,
    /// Packets given the failure policy.
    policy_packets: u64,
}

/// A plugin instance: implements the element contract.
pub struct WasmElement {
    // The contract's `report(&self)` must call into the store, which needs
    // `&mut`; the hot path reaches the state through `Mutex::get_mut`, which
    // takes no lock.
    inner: Mutex<Inner>,
}

/// Split host keys from plugin configuration: the host reads its keys from
/// white-space separated words `on_fault=…` / `max_faults=…` (the last of
/// each wins) and hands the plugin the rest of the text exactly as written
/// ([`Args::text_without`]): commas, quotes, repeated keys and word order
/// are the plugin's to interpret.
fn split_config(args: &Args) -> Result<(OnFault, u32, String), ElementError> {
    let on_fault = match args.word_value("on_fault") {
        None | Some("drop") => OnFault::Drop,
        Some("pass") => OnFault::Pass,
        Some(v) => {
            return Err(ElementError::Config(format!(
                "on_fault must be pass or drop, not {v:?}"
            )))
        }
    };
    let max_faults = match args.word_value("max_faults") {
        None => DEFAULT_MAX_FAULTS,
        Some(v) => v
            .parse()
            .map_err(|_| ElementError::Config(format!("max_faults: cannot parse {v:?}")))?,
    };
    Ok((on_fault, max_faults, args.text_without(HOST_KEYS)))
}

/// The kind of a failed call and what happened, without the kind's name
/// (the report's `last_fault` reads `KIND: WHAT`, e.g. `trap: wasm
/// `unreachable` instruction executed`).
fn classify(e: &wasmtime::Error, memory_hit: bool, memory_cap: usize) -> (FaultKind, String) {
    if memory_hit {
        return (FaultKind::Memory, format!("grew past the cap of {memory_cap} bytes"));
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => (FaultKind::Budget, "CPU budget exhausted (fuel)".into()),
        Some(Trap::Interrupt) => (FaultKind::Budget, "CPU budget exhausted (epoch deadline)".into()),
        // wasmtime's text is "wasm trap: WHAT"; the kind already says trap.
        Some(t) => {
            let text = t.to_string();
            let what = text.strip_prefix("wasm trap: ").unwrap_or(&text);
            (FaultKind::Trap, what.to_string())
        }
        None => (FaultKind::Trap, e.to_string()),
    }
}

fn rd16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

/// Which budget a call into a plugin runs under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    /// `process`: a packet batch, on the data path.
    Batch,
    /// Instantiation, `weft_alloc`, `configure`, `control`, `report`: between
    /// batches, at an operator's request.
    Control,
}

fn rd32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Bytes a packet's slot in the arena holds: its frame and room to grow.
fn slot_len(p: &Packet) -> usize {
    p.len() + p.tailroom().min(abi::GROW_ROOM)
}

/// The first bad descriptor of a chunk the plugin wrote to or gave an
/// unknown verdict, as the fault's text: a length beyond its slot, a write
/// to a frame shown only in part, a verdict code the ABI does not have.
fn check_written(descs: &[[u8; abi::DESC_SIZE]], st: &HostState, pkts: &[Packet]) -> Option<String> {
    for (i, ((d, f), p)) in descs.iter().zip(&st.frames).zip(pkts).enumerate() {
        if d[desc::FLAGS] & abi::FLAG_WRITTEN != 0 {
            let len = rd32(d, desc::LEN) as usize;
            let cap = slot_len(p);
            if len > cap {
                return Some(format!("packet {i}: length {len} beyond its {cap}-byte buffer"));
            }
            let shown = st.shown(i, f);
            if shown < f.len as usize {
                return Some(format!(
                    "packet {i}: written while only {shown} of its {} bytes were loaded (frame_load first)",
                    f.len
                ));
            }
        }
        if d[desc::VERDICT] > abi::VERDICT_REDIRECT {
            return Some(format!("packet {i}: unknown verdict {}", d[desc::VERDICT]));
        }
    }
    None
}

impl Inner {
    /// Arm the CPU budget of the next call: a packet batch's, or the larger
    /// one of a control call ([`HostConfig::control_ticks`]).
    fn arm_budget(&mut self, call: Call) {
        let cfg = &self.class.host.shared.config;
        match (cfg.budget, call) {
            // `set_fuel` only fails when fuel is not enabled, which the
            // budget kind rules out.
            (Budget::Fuel, _) => drop(self.store.set_fuel(cfg.fuel)),
            (Budget::Epoch, Call::Batch) => self.store.set_epoch_deadline(cfg.epoch_ticks),
            (Budget::Epoch, Call::Control) => self.store.set_epoch_deadline(cfg.control_ticks()),
            (Budget::Unmetered, _) => {}
        }
        let st = self.store.data_mut();
        st.logs_left = MAX_LOGS_PER_CALL;
        st.limiter.hit = false;
    }

    /// Count a fault; its text as `last_fault` shows it (`KIND: WHAT`).
    fn record_fault(&mut self, kind: FaultKind, what: String) -> String {
        match kind {
            FaultKind::Trap => self.faults.trap += 1,
            FaultKind::Budget => self.faults.budget += 1,
            FaultKind::Memory => self.faults.memory += 1,
            FaultKind::BadOutput => self.faults.bad_output += 1,
        }
        self.consecutive += 1;
        let class = &*self.class.name;
        tracing::warn!(
            plugin = class,
            kind = kind.name(),
            consecutive = self.consecutive,
            "plugin fault: {what}"
        );
        if self.max_faults > 0 && self.consecutive >= self.max_faults && !self.disabled {
            self.disabled = true;
            tracing::error!(plugin = class, faults = self.consecutive, on_fault = ?self.on_fault, "plugin disabled after repeated faults");
        }
        let text = format!("{}: {what}", kind.name());
        self.last_fault = Some(text.clone());
        self.store.data_mut().emits.clear();
        text
    }

    /// Put `msg` where the plugin can read it: the arena when it fits, else
    /// a buffer from `weft_alloc`. Returns the address.
    fn put_message(&mut self, msg: &[u8]) -> Result<usize, String> {
        let at = if msg.len() <= abi::ARENA_LEN {
            self.store.data().arena
        } else {
            let len = i32::try_from(msg.len()).map_err(|_| "message too large".to_string())?;
            self.arm_budget(Call::Control);
            let p = self
                .funcs
                .alloc
                .call(&mut self.store, len)
                .map_err(|e| format!("weft_alloc: {e}"))?;
            p as u32 as usize
        };
        let mem = self.memory.data_mut(&mut self.store);
        let dst = at
            .checked_add(msg.len())
            .and_then(|end| mem.get_mut(at..end))
            .filter(|_| at != 0)
            .ok_or_else(|| format!("the plugin has no room for a {}-byte message", msg.len()))?;
        dst.copy_from_slice(msg);
        Ok(at)
    }

    /// Call a (ptr, len) → status export with `msg`; the reply text and
    /// status, or the fault.
    fn call_with_message(&mut self, f: TypedFunc<(i32, i32), i32>, msg: &[u8]) -> Result<(i32, Vec<u8>), String> {
        let at = self.put_message(msg)?;
        self.store.data_mut().reply.clear();
        self.store.data_mut().reply_truncated = false;
        self.arm_budget(Call::Control);
        match f.call(&mut self.store, (at as i32, msg.len() as i32)) {
            Ok(status) => Ok((status, std::mem::take(&mut self.store.data_mut().reply))),
            Err(e) => {
                let (k, what) = classify(&e, self.store.data().limiter.hit, self.store.data().limiter.cap);
                Err(self.record_fault(k, what))
            }
        }
    }

    fn call_reply(&mut self, f: TypedFunc<(), i32>) -> Result<(i32, Vec<u8>), String> {
        self.store.data_mut().reply.clear();
        self.store.data_mut().reply_truncated = false;
        self.arm_budget(Call::Control);
        match f.call(&mut self.store, ()) {
            Ok(status) if self.store.data().reply_truncated => Err(format!(
                "reply larger than {MAX_REPLY} bytes or out of bounds (status {status})"
            )),
            Ok(status) => Ok((status, std::mem::take(&mut self.store.data_mut().reply))),
            Err(e) => {
                let (k, what) = classify(&e, self.store.data().limiter.hit, self.store.data().limiter.cap);
                Err(self.record_fault(k, what))
            }
        }
    }

    fn apply_policy(&mut self, verdicts: &mut [Verdict]) {
        self.policy_packets += verdicts.len() as u64;
        let v = match self.on_fault {
            OnFault::Pass => Verdict::Continue,
            OnFault::Drop => Verdict::Drop,
        };
        verdicts.fill(v);
    }

    /// Run the first packets of `pkts` through the plugin: as many as fit
    /// (at most [`abi::MAX_BATCH`], their slots within the data area).
    /// Their verdicts are set; returns how many were taken, 0 when the
    /// first frame alone is larger than the arena (it cannot be shown).
    ///
    /// The hot path of every wasm module, so written for few instructions
    /// per packet: descriptors are fixed-size arrays (constant offsets, no
    /// bounds checks), the frame table a fixed array, the slots sized in
    /// the same pass that fills them, and the read-back one pass over the
    /// descriptors when no packet was written and every verdict is known
    /// (the careful check runs only when one was).
    fn run_chunk(&mut self, cx: &mut Ctx<'_>, pkts: &mut [Packet], verdicts: &mut [Verdict]) -> Result<usize, ()> {
        const DESCS: usize = abi::MAX_BATCH * abi::DESC_SIZE;
        let arena = self.store.data().arena;
        let n = {
            let (mem, st) = self.memory.data_and_store_mut(&mut self.store);
            let Some(area) = mem.get_mut(arena..arena + abi::ARENA_LEN) else {
                return Err(());
            };
            let (descs, data) = area.split_at_mut(DESCS);
            let (descs, _) = descs.as_chunks_mut::<{ abi::DESC_SIZE }>();
            let (head, mut at, mut n) = (st.head, 0usize, 0);
            for (p, (d, fr)) in pkts.iter().zip(descs.iter_mut().zip(st.frames.iter_mut())) {
                let len = p.len();
                let cap = slot_len(p);
                if at + cap > abi::DATA_LEN {
                    break;
                }
                let shown = len.min(head);
                let m = &p.meta;
                let f = &m.flow;
                // Addresses in network order, IPv4 in the first 4 bytes.
                let (src, dst) = match f.family {
                    Family::V4 => (
                        u32::from_le_bytes((f.src as u32).to_be_bytes()) as u128,
                        u32::from_le_bytes((f.dst as u32).to_be_bytes()) as u128,
                    ),
                    _ => (f.src.swap_bytes(), f.dst.swap_bytes()),
                };
                let off = (arena + DESCS + at) as u32;
                d[desc::OFF..desc::OFF + 4].copy_from_slice(&off.to_le_bytes());
                d[desc::LEN..desc::LEN + 4].copy_from_slice(&(len as u32).to_le_bytes());
                d[desc::CAP..desc::CAP + 4].copy_from_slice(&(cap as u32).to_le_bytes());
                d[desc::IN_PORT..desc::IN_PORT + 2].copy_from_slice(&m.in_port.to_le_bytes());
                d[desc::L3..desc::L3 + 2].copy_from_slice(&m.l3.to_le_bytes());
                d[desc::L4..desc::L4 + 2].copy_from_slice(&m.l4.to_le_bytes());
                d[desc::FAMILY] = f.family as u8;
                d[desc::PROTO] = f.proto;
                d[desc::SPORT..desc::SPORT + 2].copy_from_slice(&f.sport.to_le_bytes());
                d[desc::DPORT..desc::DPORT + 2].copy_from_slice(&f.dport.to_le_bytes());
                d[desc::SRC..desc::SRC + 16].copy_from_slice(&src.to_le_bytes());
                d[desc::DST..desc::DST + 16].copy_from_slice(&dst.to_le_bytes());
                d[desc::VERDICT] = abi::VERDICT_CONTINUE;
                d[desc::FLAGS] = if shown < len { abi::FLAG_PARTIAL } else { 0 };
                d[desc::PORT..desc::PORT + 2].copy_from_slice(&[0, 0]);
                d[desc::MARK..desc::MARK + 4].copy_from_slice(&m.mark.to_le_bytes());
                let bytes = p.data();
                copy_head(&mut data[at..at + shown], &bytes[..shown]);
                *fr = Frame {
                    src: bytes.as_ptr() as usize,
                    at: (DESCS + at) as u32,
                    len: len as u32,
                };
                at = (at + cap + 7) & !7;
                n += 1;
            }
            st.n_frames = n;
            st.loaded = 0;
            // `frame_load` may read the packets only during this call.
            st.in_batch = n > 0;
            n
        };
        if n == 0 {
            return Ok(0);
        }
        self.store.data_mut().now_ns = cx.now_ns;
        self.arm_budget(Call::Batch);
        let r = self.funcs.process.call(&mut self.store, (arena as i32, n as i32));
        self.store.data_mut().in_batch = false;
        match r {
            Err(e) => {
                let (k, what) = classify(&e, self.store.data().limiter.hit, self.store.data().limiter.cap);
                self.record_fault(k, what);
                return Err(());
            }
            Ok(0) => {}
            Ok(status) => {
                self.record_fault(FaultKind::BadOutput, format!("weft_process returned {status}"));
                return Err(());
            }
        }
        let (mem, st) = self.memory.data_and_store_mut(&mut self.store);
        let frames = &st.frames[..n];
        let Some(descs) = mem.get(arena..arena + DESCS) else {
            return Err(());
        };
        let (descs, _) = descs.as_chunks::<{ abi::DESC_SIZE }>();
        let descs = &descs[..n];
        // Verdicts first (the fault policy overwrites them if a descriptor
        // turns out bad); flags and verdict codes gathered for the check.
        let (mut flags, mut code) = (0u8, 0u8);
        for (d, v) in descs.iter().zip(verdicts.iter_mut()) {
            flags |= d[desc::FLAGS];
            code = code.max(d[desc::VERDICT]);
            *v = match d[desc::VERDICT] {
                abi::VERDICT_DROP => Verdict::Drop,
                abi::VERDICT_CONSUME => Verdict::Consume,
                abi::VERDICT_REDIRECT => Verdict::Redirect(rd16(d, desc::PORT)),
                _ => Verdict::Continue,
            };
        }
        if flags & abi::FLAG_WRITTEN != 0 || code > abi::VERDICT_REDIRECT {
            // Validate every descriptor before acting on any of them.
            if let Some(what) = check_written(descs, st, pkts) {
                self.record_fault(FaultKind::BadOutput, what);
                return Err(());
            }
        }
        let data = &mem[arena..arena + abi::ARENA_LEN];
        for ((d, f), p) in descs.iter().zip(frames).zip(pkts.iter_mut()) {
            p.meta.mark = rd32(d, desc::MARK);
            if d[desc::FLAGS] & abi::FLAG_WRITTEN != 0 {
                let len = rd32(d, desc::LEN) as usize;
                if len > p.len() {
                    // cap ≤ len + tailroom, checked above: cannot fail.
                    let _ = p.push_back(len - p.len());
                } else {
                    p.truncate(len);
                }
                let at = f.at as usize;
                p.data_mut().copy_from_slice(&data[at..at + len]);
            }
        }
        Ok(n)
    }

    fn flush_emits(&mut self, cx: &mut Ctx<'_>) {
        let st = self.store.data_mut();
        for (to, frame) in st.emits.drain(..) {
            let to = if to == abi::EMIT_ROUTE {
                EmitTo::Route
            } else {
                EmitTo::Port(to as u16)
            };
            let pkt = cx.alloc(&frame);
            cx.emit(to, pkt);
        }
    }
}

impl WasmElement {
    pub(crate) fn new(class: Arc<ClassShared>, args: &Args) -> Result<Self, ElementError> {
        let (on_fault, max_faults, plugin_config) = split_config(args)?;
        let cfg = &class.host.shared.config;
        let state = HostState::new(cfg.memory_cap, class.name.clone());
        let mut store = Store::new(&class.host.shared.engine, state);
        store.limiter(|s| &mut s.limiter);
        match cfg.budget {
            Budget::Fuel => drop(store.set_fuel(cfg.fuel)),
            // Instantiation runs the module's start code: a control call.
            Budget::Epoch => store.set_epoch_deadline(cfg.control_ticks()),
            Budget::Unmetered => {}
        }
        let res = |what: &str, e: wasmtime::Error| ElementError::Resource(format!("{}: {what}: {e}", class.name));
        let instance = class.pre.instantiate(&mut store).map_err(|e| res("instantiation", e))?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| ElementError::Resource("no memory export".into()))?;
        store.data_mut().memory = Some(memory);
        let info = &class.info;
        store.data_mut().head = info.frame_head.map_or(usize::MAX, |h| h as usize);
        let f2 = |s: &mut Store<HostState>, n: &str| instance.get_typed_func::<(i32, i32), i32>(s, n);
        let f0 = |s: &mut Store<HostState>, n: &str| instance.get_typed_func::<(), i32>(s, n);
        let funcs = Funcs {
            alloc: instance
                .get_typed_func(&mut store, "weft_alloc")
                .map_err(|e| res("weft_alloc", e))?,
            init: f2(&mut store, "weft_init").map_err(|e| res("weft_init", e))?,
            process: f2(&mut store, "weft_process").map_err(|e| res("weft_process", e))?,
            control: info
                .exports("weft_control")
                .then(|| f2(&mut store, "weft_control").ok())
                .flatten(),
            report: info
                .exports("weft_report")
                .then(|| f0(&mut store, "weft_report").ok())
                .flatten(),
            export_state: info
                .exports("weft_export_state")
                .then(|| f0(&mut store, "weft_export_state").ok())
                .flatten(),
            import_state: info
                .exports("weft_import_state")
                .then(|| f2(&mut store, "weft_import_state").ok())
                .flatten(),
        };
        let arena = funcs
            .alloc
            .call(&mut store, abi::ARENA_LEN as i32)
            .map_err(|e| res("weft_alloc", e))? as u32 as usize;
        let mem_len = memory.data_size(&store);
        if arena == 0 || !arena.is_multiple_of(8) || arena.saturating_add(abi::ARENA_LEN) > mem_len {
            return Err(ElementError::Resource(format!(
                "{}: weft_alloc returned an unusable arena at {arena:#x} (memory is {mem_len} bytes)",
                class.name
            )));
        }
        store.data_mut().arena = arena;
        let mut inner = Inner {
            class: class.clone(),
            store,
            memory,
            funcs,
            on_fault,
            max_faults,
            consecutive: 0,
            disabled: false,
            faults: Faults::default(),
            last_fault: None,
            policy_packets: 0,
        };
        let init = inner.funcs.init.clone();
        match inner.call_with_message(init, plugin_config.as_bytes()) {
            Ok((0, _)) => {}
            Ok((_, reply)) => return Err(ElementError::Config(String::from_utf8_lossy(&reply).into_owned())),
            Err(fault) => return Err(ElementError::Resource(format!("{}: weft_init: {fault}", class.name))),
        }
        // Faults during init are not held against the running instance.
        inner.consecutive = 0;
        inner.faults = Faults::default();
        Ok(WasmElement {
            inner: Mutex::new(inner),
        })
    }

    fn inner(&mut self) -> &mut Inner {
        // A poisoned lock only means a panic elsewhere while reporting; the
        // state itself is consistent between calls.
        match self.inner.get_mut() {
            Ok(i) => i,
            Err(p) => p.into_inner(),
        }
    }

    /// True when the instance was disabled after repeated faults.
    pub fn is_disabled(&mut self) -> bool {
        self.inner().disabled
    }

    /// Bytes of linear memory the instance holds now.
    pub fn memory_bytes(&mut self) -> usize {
        let i = self.inner();
        i.memory.data_size(&i.store)
    }

    /// Fuel left after the last call ([`Budget::Fuel`] only): the budget
    /// minus this gives the cost of the last call in wasm operators.
    pub fn fuel_left(&mut self) -> Option<u64> {
        self.inner().store.get_fuel().ok()
    }
}

/// The handlers every plugin instance answers, whatever the plugin: the
/// host's generic ones (a plugin's own report keys and control requests
/// are its own business, inside them). The class documents the same list.
pub(crate) const HANDLERS: &[Handler] = &[
    Handler::read("plugin", "report: the plugin's own report (JSON)"),
    Handler::read(
        "wasm",
        "report: faults by kind, disabled, memory, rejected emits, counters",
    ),
    Handler::write(
        "control",
        "the plugin's control port; `wasm.enable` re-enables a disabled instance",
    ),
];

impl Element for WasmElement {
    fn handlers(&self) -> Vec<Handler> {
        HANDLERS.to_vec()
    }

    fn memory_cap(&self) -> Option<u64> {
        let i = match self.inner.lock() {
            Ok(i) => i,
            Err(p) => p.into_inner(),
        };
        Some(i.store.data().limiter.cap as u64)
    }

    /// The domain has no more to give: growing past `bytes` then faults
    /// (kind `memory`), in this instance alone.
    fn limit_memory(&mut self, bytes: u64) -> Result<(), ElementError> {
        let held = self.memory_bytes() as u64;
        if held > bytes {
            return Err(ElementError::Resource(format!(
                "the instance holds {held} bytes of memory, more than the {bytes} its domain has left"
            )));
        }
        let i = self.inner();
        let l = &mut i.store.data_mut().limiter;
        l.cap = l.cap.min(bytes.min(usize::MAX as u64) as usize);
        Ok(())
    }

    fn memory_bytes(&mut self) -> u64 {
        WasmElement::memory_bytes(self) as u64
    }

    fn process(&mut self, cx: &mut Ctx<'_>, pkt: &mut Packet) -> Verdict {
        let mut v = [Verdict::Continue];
        self.process_batch(cx, std::slice::from_mut(pkt), &mut v);
        v[0]
    }

    fn process_batch(&mut self, cx: &mut Ctx<'_>, pkts: &mut [Packet], verdicts: &mut [Verdict]) {
        let inner = self.inner();
        if inner.disabled {
            inner.apply_policy(verdicts);
            return;
        }
        let mut start = 0;
        while start < pkts.len() {
            match inner.run_chunk(cx, &mut pkts[start..], &mut verdicts[start..]) {
                Err(()) => {
                    inner.apply_policy(&mut verdicts[start..]);
                    return;
                }
                Ok(0) => {
                    // A single frame larger than the arena: it cannot be
                    // shown to the plugin; it gets the policy.
                    inner.apply_policy(&mut verdicts[start..start + 1]);
                    start += 1;
                }
                Ok(n) => {
                    inner.consecutive = 0;
                    inner.flush_emits(cx);
                    start += n;
                }
            }
        }
    }

    fn configure(&mut self, args: &Args) -> Result<(), ElementError> {
        let (on_fault, max_faults, plugin_config) = split_config(args)?;
        self.control(&plugin_config)?;
        let i = self.inner();
        i.on_fault = on_fault;
        i.max_faults = max_faults;
        Ok(())
    }

    fn control(&mut self, request: &str) -> Result<String, ElementError> {
        let i = self.inner();
        if request.trim() == "wasm.enable" {
            i.disabled = false;
            i.consecutive = 0;
            return Ok("ok".into());
        }
        if i.disabled {
            return Err(ElementError::Control(
                "the plugin is disabled after repeated faults (`wasm.enable`)".into(),
            ));
        }
        let Some(f) = i.funcs.control.clone() else {
            return Err(ElementError::Unsupported("control"));
        };
        match i.call_with_message(f, request.as_bytes()) {
            Ok((0, reply)) => Ok(String::from_utf8_lossy(&reply).into_owned()),
            Ok((_, reply)) => Err(ElementError::Control(String::from_utf8_lossy(&reply).into_owned())),
            Err(fault) => Err(ElementError::Control(format!("plugin fault: {fault}"))),
        }
    }

    fn report(&self) -> Value {
        let mut guard = match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let i = &mut *guard;
        let plugin = match (i.disabled, i.funcs.report.clone()) {
            (true, _) => Value::Null,
            (false, None) => Value::Null,
            (false, Some(f)) => match i.call_reply(f) {
                Ok((_, bytes)) => serde_json::from_slice(&bytes)
                    .unwrap_or_else(|e| json!({ "error": format!("report is not JSON: {e}") })),
                Err(fault) => json!({ "error": fault }),
            },
        };
        let st = i.store.data();
        let counters: serde_json::Map<String, Value> = st
            .counters
            .iter()
            .enumerate()
            .filter(|(_, v)| **v != 0)
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let f = i.faults;
        json!({
            "plugin": plugin,
            "wasm": {
                "class": &*i.class.name,
                "hash": i.class.info.hash,
                "on_fault": i.on_fault,
                "max_faults": i.max_faults,
                "faults": f.trap + f.budget + f.memory + f.bad_output,
                "fault_kinds": { "trap": f.trap, "budget": f.budget, "memory": f.memory, "bad_output": f.bad_output },
                "consecutive_faults": i.consecutive,
                "disabled": i.disabled,
                "last_fault": i.last_fault,
                "policy_packets": i.policy_packets,
                "emits_rejected": st.emits_rejected,
                "logs_dropped": st.logs_dropped,
                "counters": counters,
                "memory_bytes": i.memory.data_size(&i.store),
                "budget": i.class.host.shared.config.budget,
            }
        })
    }

    fn export_state(&mut self) -> Option<Value> {
        let i = self.inner();
        let f = i.funcs.export_state.clone()?;
        match i.call_reply(f) {
            Ok((0, bytes)) => {
                Some(serde_json::from_slice(&bytes).unwrap_or_else(|_| json!({ "wasm_state_hex": to_hex(&bytes) })))
            }
            Ok(_) => None,
            Err(fault) => {
                tracing::warn!(plugin = &*i.class.name, "state export failed: {fault}");
                None
            }
        }
    }

    fn import_state(&mut self, state: Value) -> Result<(), ElementError> {
        let i = self.inner();
        let Some(f) = i.funcs.import_state.clone() else {
            return Err(ElementError::Unsupported("state import"));
        };
        let bytes = match state.get("wasm_state_hex").and_then(Value::as_str) {
            Some(h) => from_hex(h).ok_or_else(|| ElementError::State("wasm_state_hex is not hex".into()))?,
            None => serde_json::to_vec(&state).map_err(|e| ElementError::State(e.to_string()))?,
        };
        match i.call_with_message(f, &bytes) {
            Ok((0, _)) => Ok(()),
            Ok((_, reply)) => Err(ElementError::State(String::from_utf8_lossy(&reply).into_owned())),
            Err(fault) => Err(ElementError::State(format!("plugin fault: {fault}"))),
        }
    }
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

/// `dst.copy_from_slice(src)` for a frame's head, the per-packet copy of
/// [`WasmElement::run_chunk`]. Heads of 16 to 128 bytes (KeepAlive's 96,
/// NetMonitor's 32) are copied inline in 16-byte moves, the last one
/// overlapping, instead of through a call into `memcpy`: +0.5 % (KeepAlive)
/// and +1.3 % (NetMonitor) in `weft bench --only netserv` (docs/sip.md).
/// Exactly `src` is copied: bytes past a frame's end may be another
/// flow's.
#[inline(always)]
fn copy_head(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    if n == 0 {
        return;
    }
    if !(16..=128).contains(&n) || dst.len() != n {
        dst.copy_from_slice(src);
        return;
    }
    let mut i = 0;
    while i + 16 < n {
        dst[i..i + 16].copy_from_slice(&src[i..i + 16]);
        i += 16;
    }
    dst[n - 16..].copy_from_slice(&src[n - 16..]);
}

#[cfg(test)]
mod copy_tests {
    use super::copy_head;

    #[test]
    fn a_head_copy_is_exactly_the_source_whatever_its_length() {
        let src: Vec<u8> = (0..200u32).map(|i| (i * 7 + 3) as u8).collect();
        // Every length: both sides of the 16..=128 fast path, each count
        // of whole 16-byte moves, and every overlap of the last one.
        for n in 0..=200 {
            let mut dst = vec![0xee; n];
            copy_head(&mut dst, &src[..n]);
            assert_eq!(dst, &src[..n], "length {n}");
        }
    }
}
