//! Every bad-input case of the plugin host, each with the node forwarding other
//! traffic afterwards: malformed module, unknown import, ABI mismatch, an
//! endless loop, memory growth past the cap, a panic, a malformed emitted
//! packet, a length beyond the buffer; and disabling after repeated faults.

mod common;
use common::*;
use weft_dataplane::{InstanceId, Node};
use weft_wasm::{Budget, HostConfig, LoadError, WasmHost};

/// Other traffic still flows.
fn other_traffic_flows(n: &mut Node) {
    let out = send(n, 0, &[frame(OTHER_PORT, b"other"), frame(OTHER_PORT, b"other")]);
    assert_eq!(out.len(), 2, "the node keeps forwarding other traffic");
}

fn minimal(imports: &str, version: i32) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module {imports}
            (memory (export "memory") 4)
            (func (export "weft_abi_version") (result i32) i32.const {version})
            (func (export "weft_alloc") (param i32) (result i32) i32.const 1024)
            (func (export "weft_init") (param i32 i32) (result i32) i32.const 0)
            (func (export "weft_process") (param i32 i32) (result i32) i32.const 0))"#
    ))
    .unwrap()
}

#[test]
fn refused_modules_say_which_check_failed() {
    let h = host();
    let mut n = node();
    let mut garbage = plugin("counter");
    garbage.truncate(garbage.len() / 2);
    let e = h.load_class("x", &garbage).unwrap_err();
    assert!(matches!(e, LoadError::Malformed(_)), "{e}");
    assert!(e.to_string().starts_with("malformed module: "), "{e}");
    let e = h.load_class("x", b"not wasm at all").unwrap_err();
    assert!(matches!(e, LoadError::NotWasm(_)), "{e}");
    assert!(e.to_string().starts_with("not a WebAssembly module: "), "{e}");

    let e = h
        .load_class("x", &minimal(r#"(import "weft" "xyz" (func))"#, 1))
        .unwrap_err();
    assert!(e.to_string().starts_with("unknown import `weft.xyz`"), "{e}");
    let e = h
        .load_class("x", &minimal(r#"(import "env" "system" (func (param i32)))"#, 1))
        .unwrap_err();
    assert!(e.to_string().starts_with("unknown import `env.system`"), "{e}");

    let e = h.load_class("x", &minimal("", 2)).unwrap_err();
    assert_eq!(e, LoadError::AbiMismatch { found: 2, supported: 1 });
    assert_eq!(
        e.to_string(),
        "ABI mismatch: module speaks plugin ABI v2, this node speaks v1"
    );

    let e = h
        .load_class(
            "x",
            &wat::parse_str(
                r#"(module (memory (export "memory") 1)
        (func (export "weft_abi_version") (result i32) i32.const 1))"#,
            )
            .unwrap(),
        )
        .unwrap_err();
    assert_eq!(e.to_string(), "missing export `weft_alloc` required by plugin ABI v1");
    // A minimal module that passes all checks does load.
    h.load_class("x", &minimal("", 1)).unwrap();
    other_traffic_flows(&mut n);
}

fn bound(h: &WasmHost, n: &mut Node, file: &str, config: &str) -> InstanceId {
    load(n, h, file, file);
    let i = n.create_instance(file, config).unwrap();
    bind(n, PLUGIN_PORT, vec![i]);
    i
}

#[test]
fn endless_loop_is_stopped_by_the_epoch_budget() {
    let h = host();
    let mut n = node();
    let i = bound(&h, &mut n, "spin", "max_faults=0");
    let t = std::time::Instant::now();
    assert!(
        send(&mut n, 0, &[frame(PLUGIN_PORT, b"spin")]).is_empty(),
        "default policy: drop"
    );
    assert!(t.elapsed() < std::time::Duration::from_secs(2));
    let w = wasm_report(&n, i);
    assert_eq!(w["fault_kinds"]["budget"], 1, "{w}");
    assert_eq!(w["last_fault"], "budget: CPU budget exhausted (epoch deadline)");
    other_traffic_flows(&mut n);
}

#[test]
fn endless_loop_is_stopped_by_fuel() {
    let h = WasmHost::new(HostConfig {
        budget: Budget::Fuel,
        ..Default::default()
    })
    .unwrap();
    let mut n = node();
    let i = bound(&h, &mut n, "spin", "on_fault=pass");
    assert_eq!(
        send(&mut n, 0, &[frame(PLUGIN_PORT, b"spin")]).len(),
        1,
        "on_fault=pass lets it through"
    );
    let w = wasm_report(&n, i);
    assert_eq!(w["last_fault"], "budget: CPU budget exhausted (fuel)", "{w}");
    other_traffic_flows(&mut n);
}

#[test]
fn memory_growth_past_the_cap_is_a_fault() {
    let h = WasmHost::new(HostConfig {
        memory_cap: 4 << 20,
        ..Default::default()
    })
    .unwrap();
    let mut n = node();
    let i = bound(&h, &mut n, "grow", "");
    assert!(send(&mut n, 0, &[frame(PLUGIN_PORT, b"grow")]).is_empty());
    let w = wasm_report(&n, i);
    assert_eq!(w["fault_kinds"]["memory"], 1, "{w}");
    assert_eq!(
        w["last_fault"],
        format!("memory: grew past the cap of {} bytes", 4 << 20),
        "{w}"
    );
    assert!(w["memory_bytes"].as_u64().unwrap() <= 4 << 20);
    other_traffic_flows(&mut n);
}

#[test]
fn panic_traps_and_the_policy_applies() {
    let h = host();
    let mut n = node();
    load(&mut n, &h, "panic", "panic");
    let drop_i = n.create_instance("panic", "").unwrap();
    let pass_i = n.create_instance("panic", "on_fault=pass").unwrap();
    bind(&mut n, PLUGIN_PORT, vec![drop_i]);
    bind(&mut n, OTHER_PORT + 1, vec![pass_i]);
    assert!(send(&mut n, 0, &[frame(PLUGIN_PORT, b"panic!"), frame(PLUGIN_PORT, b"fine")]).is_empty());
    assert_eq!(
        send(
            &mut n,
            0,
            &[frame(OTHER_PORT + 1, b"panic!"), frame(OTHER_PORT + 1, b"fine")]
        )
        .len(),
        2
    );
    let w = wasm_report(&n, drop_i);
    assert_eq!(w["fault_kinds"]["trap"], 1, "{w}");
    // One prefix naming the kind, then wasmtime's description.
    assert_eq!(w["last_fault"], "trap: wasm `unreachable` instruction executed", "{w}");
    // A good batch afterwards is processed normally.
    assert_eq!(send(&mut n, 0, &[frame(PLUGIN_PORT, b"fine")]).len(), 1);
    assert_eq!(plugin_report(&n, drop_i)["packets"], 1);
    assert_eq!(wasm_report(&n, drop_i)["consecutive_faults"], 0);
    other_traffic_flows(&mut n);
}

#[test]
fn malformed_emitted_packets_never_leave() {
    let h = host();
    let mut n = node();
    let i = bound(&h, &mut n, "badpkt", "");
    let out = send(&mut n, 0, &[frame(PLUGIN_PORT, b"a"), frame(PLUGIN_PORT, b"b")]);
    assert_eq!(out.len(), 2, "the packets themselves continue");
    assert!(out.iter().all(|f| weft_packet::view::parse(f).is_ok()));
    let mut port0 = weft_packet::Batch::new();
    n.take_tx(0, &mut port0);
    assert!(port0.is_empty(), "nothing emitted out of port 0");
    assert_eq!(wasm_report(&n, i)["emits_rejected"], 4);
    assert_eq!(plugin_report(&n, i)["refused"], 4, "the plugin was told");
    other_traffic_flows(&mut n);
}

#[test]
fn length_beyond_the_buffer_is_a_fault() {
    let h = host();
    let mut n = node();
    let i = bound(&h, &mut n, "badlen", "on_fault=pass");
    let f = frame(PLUGIN_PORT, b"unchanged");
    let out = send(&mut n, 0, std::slice::from_ref(&f));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].len(), f.len(), "policy pass: the original length");
    assert_eq!(&out[0][42..], b"unchanged");
    let w = wasm_report(&n, i);
    assert_eq!(w["fault_kinds"]["bad_output"], 1, "{w}");
    assert!(w["last_fault"].as_str().unwrap().contains("beyond its"), "{w}");
    other_traffic_flows(&mut n);
}

#[test]
fn repeated_faults_disable_the_instance() {
    let h = host();
    let mut n = node();
    let i = bound(&h, &mut n, "panic", "");
    for _ in 0..3 {
        assert!(send(&mut n, 0, &[frame(PLUGIN_PORT, b"panic")]).is_empty());
    }
    let w = wasm_report(&n, i);
    assert_eq!(w["disabled"], true, "{w}");
    assert_eq!(w["faults"], 3);
    // Disabled: the policy applies without calling the plugin.
    assert!(send(&mut n, 0, &[frame(PLUGIN_PORT, b"fine")]).is_empty());
    assert_eq!(wasm_report(&n, i)["policy_packets"], 4);
    other_traffic_flows(&mut n);
    // The operator re-enables it.
    assert_eq!(n.control(i, "wasm.enable").unwrap(), "ok");
    assert_eq!(send(&mut n, 0, &[frame(PLUGIN_PORT, b"fine")]).len(), 1);
    assert_eq!(plugin_report(&n, i)["packets"], 1);
}

/// A report is the plugin's bytes parsed as JSON and serialised again; bytes
/// that are not JSON become an error object, and a plugin without
/// `weft_report` reports null (docs/plugin-abi.md, "Where the report
/// appears").
#[test]
fn a_report_that_is_not_json_is_shown_as_an_error() {
    let h = host();
    let mut n = node();
    let reporting = |text: &str| {
        wat::parse_str(format!(
            r#"(module (import "weft" "reply" (func $reply (param i32 i32)))
            (memory (export "memory") 4)
            (data (i32.const 2000) "{}")
            (func (export "weft_abi_version") (result i32) i32.const 1)
            (func (export "weft_alloc") (param i32) (result i32) i32.const 4096)
            (func (export "weft_init") (param i32 i32) (result i32) i32.const 0)
            (func (export "weft_process") (param i32 i32) (result i32) i32.const 0)
            (func (export "weft_report") (result i32) i32.const 2000 i32.const {} call $reply i32.const 0))"#,
            text.replace('"', "\\\""),
            text.len()
        ))
        .unwrap()
    };
    for (class, module) in [
        ("notjson", reporting("nope")),
        ("spaced", reporting("{ \"b\" : 1 , \"a\" : [ 2 ] }")),
        ("silent", minimal("", 1)),
    ] {
        n.upsert_class(h.load_class(class, &module).unwrap().element_class());
    }
    let i = n.create_instance("notjson", "").unwrap();
    let r = plugin_report(&n, i);
    assert!(r["error"].as_str().unwrap().starts_with("report is not JSON: "), "{r}");
    let i = n.create_instance("spaced", "").unwrap();
    assert_eq!(plugin_report(&n, i), serde_json::json!({"a": [2], "b": 1}));
    assert_eq!(
        serde_json::to_string(&plugin_report(&n, i)).unwrap(),
        r#"{"a":[2],"b":1}"#,
        "the same value, not the same bytes"
    );
    let i = n.create_instance("silent", "").unwrap();
    assert!(plugin_report(&n, i).is_null());
    other_traffic_flows(&mut n);
}
