//! # weft-plugin-sdk — write a Weft WebAssembly plugin as a trait and a macro
//!
//! A plugin is a type implementing [`Plugin`] plus one line,
//! `weft_plugin!(MyPlugin);`, built as a `cdylib` for `wasm32-unknown-unknown`.
//! The macro generates the exports of **plugin ABI v1** (`docs/plugin-abi.md`):
//! `weft_abi_version`, `weft_frame_head`, `weft_alloc`, `weft_init`, `weft_process`,
//! `weft_control`, `weft_report`, `weft_export_state`, `weft_import_state`,
//! and a panic handler that traps (the host then applies the instance's
//! failure policy).
//!
//! ```ignore
//! #![no_std]
//! use weft_plugin_sdk::{weft_plugin, Ctx, Packet, Plugin, Reply, Verdict};
//! struct Count(u64);
//! impl Plugin for Count {
//!     fn init(_config: &str) -> Result<Self, &'static str> { Ok(Count(0)) }
//!     fn process(&mut self, _cx: &mut Ctx, _pkt: &mut Packet<'_>) -> Verdict { self.0 += 1; Verdict::Continue }
//! }
//! weft_plugin!(Count);
//! ```
//!
//! The crate is `#![no_std]` and needs no allocator. The [`abi`] module is the
//! single definition of the ABI's constants and layout: the host
//! (`weft-wasm`) reads its numbers from here too.
//!
//! With the `alloc` feature the SDK links `alloc` and accepts host messages
//! (configuration, control requests, imported state) larger than the arena;
//! the plugin then provides the global allocator (on wasm32 the simplest is to
//! depend on `std`, whose allocator is dlmalloc).
#![no_std]
#![warn(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod abi;
pub mod guest;
pub mod util;

pub use guest::{checksum, Ctx, FlowKey, Packet, Reply};

/// What happens to a packet after the plugin has seen it (the element
/// contract's verdicts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Verdict {
    /// Pass on.
    #[default]
    Continue,
    /// Discard.
    Drop,
    /// The plugin has taken the packet (the host recycles the buffer).
    Consume,
    /// Send out of this port as is.
    Redirect(u16),
}

/// Log levels of the `log` import.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Level {
    /// Errors.
    Error = 1,
    /// Warnings.
    Warn = 2,
    /// Information.
    Info = 3,
    /// Debugging.
    Debug = 4,
}

/// A packet-processing plugin. Only [`Plugin::init`] and [`Plugin::process`]
/// are required.
pub trait Plugin: Sized + 'static {
    /// Parse the configuration (`--config` text) and build the plugin. The
    /// error text is shown to the operator.
    fn init(config: &str) -> Result<Self, &'static str>;

    /// How many bytes of each frame the plugin wants in its memory before
    /// it asks for the rest (`weft_frame_head`; docs/plugin-abi.md, "Head
    /// and rest"). The default, all of it, is ABI v1's first behaviour.
    /// A plugin that mostly reads headers sets what covers them (NetMonitor:
    /// 32; one that reads only the descriptor: 0) and saves the copy of
    /// every payload; [`Packet::head`] is what was shown, and
    /// [`Packet::data`] still returns the whole frame (one host call brings
    /// the rest in). Must be a constant expression.
    const HEAD: usize = usize::MAX;

    /// Process one packet: read or rewrite it in place, return a verdict.
    fn process(&mut self, cx: &mut Ctx, pkt: &mut Packet<'_>) -> Verdict;

    /// Process a batch (the host calls once per batch). Default: `process`
    /// for each packet.
    fn process_batch(&mut self, cx: &mut Ctx, batch: &mut guest::Batch) {
        for i in 0..batch.len() {
            if let Some(mut p) = batch.get(i) {
                let v = self.process(cx, &mut p);
                p.set_verdict(v);
            }
        }
    }

    /// The control port: a request, a reply written to `reply`. Default:
    /// refused.
    // The error's text goes to `reply`; the `Err` only sets the status.
    #[allow(clippy::result_unit_err)]
    fn control(&mut self, _request: &str, reply: &mut Reply) -> Result<(), ()> {
        reply.write("control is not supported by this plugin");
        Err(())
    }

    /// The reporting port: write a JSON value to `out`. Default: `null`.
    fn report(&self, out: &mut Reply) {
        out.write("null");
    }

    /// Write the state a successor should take over; `false` when there is
    /// none. JSON is recommended (the host then shows it as JSON).
    fn export_state(&self, _out: &mut Reply) -> bool {
        false
    }

    /// Take over a predecessor's exported state.
    fn import_state(&mut self, _state: &[u8]) -> Result<(), &'static str> {
        Err("state import is not supported by this plugin")
    }
}

/// Generate the ABI v1 exports for a [`Plugin`] type. Use once per plugin
/// crate, at the crate root. `weft_plugin!(T)` also defines the panic handler
/// (a panic traps); a plugin that links `std` writes
/// `weft_plugin!(T, no_panic_handler)`.
#[macro_export]
macro_rules! weft_plugin {
    ($t:ty) => {
        $crate::weft_plugin!($t, no_panic_handler);

        #[cfg(all(target_arch = "wasm32", not(test)))]
        #[panic_handler]
        fn __weft_panic(_: &::core::panic::PanicInfo) -> ! {
            ::core::arch::wasm32::unreachable()
        }
    };
    ($t:ty, no_panic_handler) => {
        static mut __WEFT_PLUGIN: ::core::option::Option<$t> = ::core::option::Option::None;

        #[allow(static_mut_refs)]
        fn __weft_plugin() -> ::core::option::Option<&'static mut $t> {
            // SAFETY: a wasm32 module instance is single-threaded and the host
            // never re-enters an export, so this is the only live reference.
            unsafe { __WEFT_PLUGIN.as_mut() }
        }

        #[no_mangle]
        pub extern "C" fn weft_abi_version() -> i32 {
            $crate::abi::ABI_VERSION
        }

        #[no_mangle]
        pub extern "C" fn weft_frame_head() -> i32 {
            // A constant: the verifier reads it from the code.
            const HEAD: i32 = {
                let h = <$t as $crate::Plugin>::HEAD;
                if h > i32::MAX as usize {
                    i32::MAX
                } else {
                    h as i32
                }
            };
            HEAD
        }

        #[no_mangle]
        pub extern "C" fn weft_alloc(len: i32) -> i32 {
            $crate::guest::alloc(len)
        }

        #[no_mangle]
        #[allow(static_mut_refs)]
        pub extern "C" fn weft_init(ptr: i32, len: i32) -> i32 {
            let cfg = $crate::guest::str_at(ptr, len);
            match <$t as $crate::Plugin>::init(cfg) {
                Ok(p) => {
                    // SAFETY: single-threaded, not re-entered (see above).
                    unsafe { __WEFT_PLUGIN = ::core::option::Option::Some(p) };
                    0
                }
                Err(e) => {
                    $crate::guest::Reply::new().write(e);
                    1
                }
            }
        }

        #[no_mangle]
        pub extern "C" fn weft_process(ptr: i32, n: i32) -> i32 {
            let Some(p) = __weft_plugin() else { return 1 };
            let head = <$t as $crate::Plugin>::HEAD;
            let mut batch = $crate::guest::Batch::new(ptr, n, head);
            let mut cx = $crate::Ctx::new();
            <$t as $crate::Plugin>::process_batch(p, &mut cx, &mut batch);
            0
        }

        #[no_mangle]
        pub extern "C" fn weft_control(ptr: i32, len: i32) -> i32 {
            let Some(p) = __weft_plugin() else { return 1 };
            let req = $crate::guest::str_at(ptr, len);
            match <$t as $crate::Plugin>::control(p, req, &mut $crate::guest::Reply::new()) {
                Ok(()) => 0,
                Err(()) => 1,
            }
        }

        #[no_mangle]
        pub extern "C" fn weft_report() -> i32 {
            let Some(p) = __weft_plugin() else { return 1 };
            <$t as $crate::Plugin>::report(p, &mut $crate::guest::Reply::new());
            0
        }

        #[no_mangle]
        pub extern "C" fn weft_export_state() -> i32 {
            let Some(p) = __weft_plugin() else { return 1 };
            if <$t as $crate::Plugin>::export_state(p, &mut $crate::guest::Reply::new()) {
                0
            } else {
                -1
            }
        }

        #[no_mangle]
        pub extern "C" fn weft_import_state(ptr: i32, len: i32) -> i32 {
            let Some(p) = __weft_plugin() else { return 1 };
            let s = $crate::guest::bytes_at(ptr, len);
            match <$t as $crate::Plugin>::import_state(p, s) {
                Ok(()) => 0,
                Err(e) => {
                    $crate::guest::Reply::new().write(e);
                    1
                }
            }
        }
    };
}
