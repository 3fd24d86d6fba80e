//! The head-and-rest ABI (docs/plugin-abi.md, "Head and rest"): a plugin
//! that declares a head sees that much of each frame, brings the rest in
//! when it asks, may write a frame only once it is all there; and the
//! verifier reads the head from the code.

mod common;
use common::*;
use weft_wasm::LoadError;

/// Frames of several lengths: shorter and longer than the 16-byte head.
fn frames() -> Vec<Vec<u8>> {
    let long: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
    vec![
        frame(PLUGIN_PORT, b"a"),
        frame(PLUGIN_PORT, &long),
        frame(PLUGIN_PORT, &long[..57]),
    ]
}

fn bytes(frames: &[Vec<u8>], upto: usize) -> u64 {
    frames
        .iter()
        .flat_map(|f| f[..f.len().min(upto)].iter())
        .map(|b| *b as u64)
        .sum()
}

#[test]
fn the_head_is_shown_and_the_rest_comes_when_asked() {
    let h = host();
    let mut n = node();
    let c = load(&mut n, &h, "head", "head");
    assert_eq!(c.info().frame_head, Some(16));
    let peek = n.create_instance("head", "peek").unwrap();
    bind(&mut n, PLUGIN_PORT, vec![peek]);
    let fr = frames();
    let out = send(&mut n, 0, &fr);
    assert_eq!(out.len(), fr.len());
    for (o, f) in out.iter().zip(&fr) {
        assert_eq!(o[42..], f[42..], "payloads pass unchanged");
    }
    let r = plugin_report(&n, peek);
    let total: u64 = fr.iter().map(|f| f.len() as u64).sum();
    assert_eq!(r["packets"], 3, "{r}");
    assert_eq!(r["len"], total, "the descriptor's length is the whole frame's: {r}");
    assert_eq!(r["partial"], 3, "every frame is longer than 16 bytes: {r}");
    assert_eq!(r["shown"], 3 * 16, "{r}");
    assert_eq!(r["sum"], bytes(&fr, usize::MAX), "data() sees every byte: {r}");

    // Reading only the head sees only the head, and loads nothing.
    let mut n = node();
    load(&mut n, &h, "head", "head");
    let only = n.create_instance("head", "head").unwrap();
    bind(&mut n, PLUGIN_PORT, vec![only]);
    assert_eq!(send(&mut n, 0, &fr).len(), 3);
    assert_eq!(plugin_report(&n, only)["sum"], bytes(&fr, 16));
}

#[test]
fn a_frame_is_written_only_once_it_is_all_there() {
    let h = host();
    let mut n = node();
    load(&mut n, &h, "head", "head");
    let w = n.create_instance("head", "write").unwrap();
    bind(&mut n, PLUGIN_PORT, vec![w]);
    let fr = frames();
    let out = send(&mut n, 0, &fr);
    assert_eq!(out.len(), 3);
    for (o, f) in out.iter().zip(&fr) {
        let l = f.len();
        assert_eq!(o[42..l - 1], f[42..l - 1], "the rest was brought in before the write");
        assert_eq!(o[l - 1], !f[l - 1], "the write came back");
    }

    // Marked written while partial: refused, the policy applies.
    let mut n = node();
    load(&mut n, &h, "head", "head");
    let s = n.create_instance("head", "sneak on_fault=pass").unwrap();
    bind(&mut n, PLUGIN_PORT, vec![s]);
    let out = send(&mut n, 0, &fr);
    assert_eq!(out.len(), 3, "on_fault=pass");
    for (o, f) in out.iter().zip(&fr) {
        assert_eq!(o[42..], f[42..], "nothing of the arena leaks into the packet");
    }
    let r = wasm_report(&n, s);
    assert_eq!(r["fault_kinds"]["bad_output"], 1, "{r}");
    let last = r["last_fault"].as_str().unwrap();
    assert!(last.contains("written while only 16 of its"), "{last}");
}

fn with_head(body: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
            (memory (export "memory") 4)
            (func (export "weft_abi_version") (result i32) i32.const 1)
            (func (export "weft_frame_head") (result i32) {body})
            (func (export "weft_alloc") (param i32) (result i32) i32.const 1024)
            (func (export "weft_init") (param i32 i32) (result i32) i32.const 0)
            (func (export "weft_process") (param i32 i32) (result i32) i32.const 0))"#
    ))
    .unwrap()
}

#[test]
fn the_head_is_read_from_the_code_and_must_be_a_constant_length() {
    let h = host();
    assert_eq!(
        h.load_class("x", &with_head("i32.const 40")).unwrap().info().frame_head,
        Some(40)
    );
    for body in ["i32.const -1", "i32.const 20 i32.const 20 i32.add"] {
        let e = h.load_class("x", &with_head(body)).unwrap_err();
        assert_eq!(e, LoadError::HeadNotConstant, "{body}");
        assert!(
            e.to_string()
                .starts_with("`weft_frame_head` must be a constant function"),
            "{e}"
        );
    }
    // The SDK's default (no head declared) and modules without the export
    // (C plugins, older ones) see whole frames.
    assert_eq!(
        h.load_class("m", &with_head("i32.const 2147483647"))
            .unwrap()
            .info()
            .frame_head,
        None
    );
    assert_eq!(h.load_class("n", &plugin("counter")).unwrap().info().frame_head, None);
    assert_eq!(h.load_class("c", &plugin("c-counter")).unwrap().info().frame_head, None);
}

/// `frame_load` is the one host import that reads a packet where it lies
/// (the data path's one `unsafe` block). Called by a hostile module with
/// anything but a descriptor of the current batch — below the arena, in
/// the middle of a descriptor, past the batch, far outside memory — or
/// outside `weft_process`, it answers -1 and copies nothing; with a
/// descriptor of the batch it brings the frame's rest in.
#[test]
fn frame_load_refuses_what_is_not_a_descriptor_of_this_batch() {
    // weft_process returns 0 when every answer was as expected, else the
    // number of the first check that failed (a fault naming it).
    let probe = wat::parse_str(
        r#"(module
            (import "weft" "frame_load" (func $load (param i32) (result i32)))
            (memory (export "memory") 4)
            (func (export "weft_abi_version") (result i32) i32.const 1)
            (func (export "weft_frame_head") (result i32) i32.const 16)
            (func (export "weft_alloc") (param i32) (result i32) i32.const 1024)
            (func (export "weft_init") (param i32 i32) (result i32) i32.const 0)
            (func (export "weft_process") (param $d i32) (param $n i32) (result i32)
                (local $last i32) (local $end i32)
                (if (i32.ne (call $load (i32.sub (local.get $d) (i32.const 64))) (i32.const -1))
                    (then (return (i32.const 1))))
                (if (i32.ne (call $load (i32.add (local.get $d) (i32.const 1))) (i32.const -1))
                    (then (return (i32.const 2))))
                (if (i32.ne (call $load (i32.add (local.get $d) (i32.mul (local.get $n) (i32.const 64))))
                        (i32.const -1))
                    (then (return (i32.const 3))))
                (if (i32.ne (call $load (i32.const -64)) (i32.const -1))
                    (then (return (i32.const 4))))
                ;; The batch's last descriptor: its frame's last byte (past
                ;; the head) is in the slot afterwards.
                (local.set $last (i32.add (local.get $d) (i32.mul (i32.sub (local.get $n) (i32.const 1)) (i32.const 64))))
                (local.set $end (i32.sub (i32.add (i32.load (local.get $last)) (i32.load offset=4 (local.get $last))) (i32.const 1)))
                (if (i32.ne (call $load (local.get $last)) (i32.const 0))
                    (then (return (i32.const 5))))
                (if (i32.ne (i32.load8_u (local.get $end)) (i32.const 0xa5))
                    (then (return (i32.const 6))))
                i32.const 0)
            (func (export "weft_control") (param i32 i32) (result i32)
                (if (result i32) (i32.eq (call $load (i32.const 1024)) (i32.const -1))
                    (then (i32.const 0)) (else (i32.const 1)))))"#,
    )
    .unwrap();
    let h = host();
    let mut n = node();
    let c = h.load_class("probe", &probe).unwrap();
    n.upsert_class(c.element_class());
    let p = n.create_instance("probe", "").unwrap();
    bind(&mut n, PLUGIN_PORT, vec![p]);
    let mut payload = vec![0u8; 200];
    payload[199] = 0xa5;
    let fr = vec![frame(PLUGIN_PORT, b"short"), frame(PLUGIN_PORT, &payload)];
    let out = send(&mut n, 0, &fr);
    let w = wasm_report(&n, p);
    assert_eq!(w["faults"], 0, "{w}");
    assert_eq!(out.len(), 2, "{w}");
    for (o, f) in out.iter().zip(&fr) {
        assert_eq!(o[42..], f[42..], "the payloads pass unchanged");
    }
    // Outside weft_process (a control request): -1 too.
    assert!(n.control(p, "anything").is_ok());
}
