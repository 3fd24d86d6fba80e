//! The plugin rows of `weft bench`: a native no-op element, the
//! wasm no-op plugin and the wasm NetMonitor on the same router and loop as
//! the other scenarios, so their ratios are to plain forwarding measured in
//! the same run; plus instantiation time and memory per instance
//! ([`weft_wasm::bench::instance_figures`]).
//!
//! The plugin modules come from `plugins/build.sh` (through
//! [`weft_wasm::plugins::ensure_built`]); when they cannot be built the
//! rows are skipped with a note and the rest of the benchmark runs.

use super::{add_rules, router, Scenario};
use std::sync::OnceLock;
use weft_wasm::{HostConfig, WasmClass, WasmHost};

struct Loaded {
    noop: WasmClass,
    netmonitor: WasmClass,
    noop_bytes: Vec<u8>,
    netmonitor_bytes: Vec<u8>,
}

/// The compiled plugin classes (once per process), or why not.
fn loaded() -> Result<&'static Loaded, &'static str> {
    static L: OnceLock<Result<Loaded, String>> = OnceLock::new();
    L.get_or_init(|| {
        let read = |n: &str| weft_wasm::plugins::read(n).map_err(|e| e.to_string());
        let (noop_bytes, netmonitor_bytes) = (read("noop")?, read("netmonitor")?);
        let host = WasmHost::new(HostConfig::default()).map_err(|e| e.to_string())?;
        let noop = host.load_class("wasm-noop", &noop_bytes).map_err(|e| e.to_string())?;
        let netmonitor = host
            .load_class("wasm-netmonitor", &netmonitor_bytes)
            .map_err(|e| e.to_string())?;
        Ok(Loaded {
            noop,
            netmonitor,
            noop_bytes,
            netmonitor_bytes,
        })
    })
    .as_ref()
    .map_err(|e| e.as_str())
}

fn one_element(name: &str, class: impl Fn() -> Option<weft_dataplane::ElementClass> + 'static) -> Scenario {
    Scenario {
        name: format!("+ {name}"),
        setup: Box::new(move || {
            let mut r = router()?;
            let cname = match class() {
                Some(c) => {
                    let n = c.name.clone();
                    r.add_class(c)?;
                    n
                }
                None => "forward".to_string(),
            };
            let i = r.create_instance(&cname, "")?;
            add_rules(&mut r, 0, vec![i])?;
            Ok(r)
        }),
    }
}

/// The scenarios: native no-op, wasm no-op, wasm NetMonitor (the wasm ones
/// only when the plugins are available; a note on stderr otherwise).
pub(super) fn scenarios() -> Vec<Scenario> {
    let mut v = vec![one_element("native no-op element (forward)", || None)];
    match loaded() {
        Ok(_) => {
            v.push(one_element("wasm no-op plugin", || {
                loaded().ok().map(|l| l.noop.element_class())
            }));
            v.push(one_element("wasm NetMonitor plugin", || {
                loaded().ok().map(|l| l.netmonitor.element_class())
            }));
        }
        Err(e) => {
            static NOTE: OnceLock<()> = OnceLock::new();
            NOTE.get_or_init(|| {
                eprintln!("note: wasm plugin rows skipped: the example plugins are not available ({e})");
            });
        }
    }
    v
}

/// Instantiation time and memory per instance, as text lines and JSON
/// (None when the plugins are not available or the measurement failed).
pub(super) fn figures() -> Option<(String, serde_json::Value)> {
    let l = loaded().ok()?;
    let opts = weft_wasm::bench::BenchOptions {
        runs: 1,
        seconds: 0.0,
        sizes: vec![],
        budgets: vec![weft_wasm::Budget::Epoch],
        noop_wasm: l.noop_bytes.clone(),
        netmonitor_wasm: l.netmonitor_bytes.clone(),
    };
    let dir = std::env::temp_dir().join(format!("weft-bench-cache-{}", std::process::id()));
    let f = weft_wasm::bench::instance_figures(&opts, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    let f = match f {
        Ok(f) => f,
        Err(e) => {
            eprintln!("note: plugin instance figures skipped: {e}");
            return None;
        }
    };
    let text = weft_wasm::bench::format_table(&[], Some(&f));
    // The table's header line is not wanted here, only the figures.
    let text = text.lines().skip(1).collect::<Vec<_>>().join("\n");
    Some((text, serde_json::to_value(&f).unwrap_or_default()))
}
