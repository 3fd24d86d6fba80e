//! Each example plugin (Rust and C) as a class in a real node, bound by a
//! filter, processing real frames; several instances of one class; and
//! replacement under traffic with state carried over; a plugin's
//! configuration reaching it exactly as written.

mod common;
use common::*;

#[test]
fn rust_counter_counts() {
    let h = host();
    let mut n = node();
    load(&mut n, &h, "wcounter", "counter");
    let i = n.create_instance("wcounter", "").unwrap();
    bind(&mut n, PLUGIN_PORT, vec![i]);
    let frames: Vec<_> = (0..10).map(|_| frame(PLUGIN_PORT, b"hello")).collect();
    assert_eq!(send(&mut n, 0, &frames).len(), 10);
    let r = plugin_report(&n, i);
    assert_eq!(r["packets"], 10);
    assert_eq!(r["bytes"], 10 * frames[0].len() as u64);
    assert_eq!(n.control(i, "reset").unwrap(), "ok");
    assert_eq!(plugin_report(&n, i)["packets"], 0);
}

#[test]
fn c_counter_counts() {
    let h = host();
    let mut n = node();
    let c = load(&mut n, &h, "ccounter", "c-counter");
    assert_eq!(c.info().imports, vec!["weft.reply"]);
    let i = n.create_instance("ccounter", "").unwrap();
    bind(&mut n, PLUGIN_PORT, vec![i]);
    let frames: Vec<_> = (0..7).map(|_| frame(PLUGIN_PORT, b"from C")).collect();
    assert_eq!(send(&mut n, 0, &frames).len(), 7);
    assert_eq!(
        plugin_report(&n, i),
        serde_json::json!({"packets": 7, "bytes": 7 * frames[0].len()})
    );
    assert!(n.create_instance("ccounter", "bogus").is_err());
}

#[test]
fn netmonitor_keys_by_src_dst_ttl() {
    let h = host();
    let mut n = node();
    load(&mut n, &h, "wnetmon", "netmonitor");
    let i = n.create_instance("wnetmon", "max=100").unwrap();
    bind(&mut n, PLUGIN_PORT, vec![i]);
    let mut frames = vec![];
    for _ in 0..3 {
        frames.push(frame_from(SRC, 64, PLUGIN_PORT, b"x"));
    }
    frames.push(frame_from(SRC2, 32, PLUGIN_PORT, b"y"));
    frames.push(frame_from(SRC, 17, PLUGIN_PORT, b"z"));
    assert_eq!(send(&mut n, 0, &frames).len(), 5);
    let r = plugin_report(&n, i);
    assert_eq!(r["size"], 3);
    let flows = r["flows"].as_array().unwrap();
    let find = |src: &str, ttl: u64| {
        flows
            .iter()
            .find(|f| f["src"] == src && f["ttl"] == ttl && f["dst"] == "10.0.1.2")
            .map(|f| f["packets"].clone())
    };
    assert_eq!(find("10.0.0.2", 64), Some(3.into()));
    assert_eq!(find("10.0.0.3", 32), Some(1.into()));
    assert_eq!(find("10.0.0.2", 17), Some(1.into()));
    assert!(n.create_instance("wnetmon", "max=99999").is_err());
}

#[test]
fn layerdrop_drops_high_layers() {
    let h = host();
    let mut n = node();
    load(&mut n, &h, "wlayer", "layerdrop");
    let i = n.create_instance("wlayer", "max_layer=1").unwrap();
    bind(&mut n, PLUGIN_PORT, vec![i]);
    let frames: Vec<_> = (0..8u8).map(|l| frame(PLUGIN_PORT, &[l % 4, 0xaa, 0xbb])).collect();
    let out = send(&mut n, 0, &frames);
    // Layers 0 and 1 pass (4 frames), 2 and 3 are dropped.
    assert_eq!(out.len(), 4);
    assert!(out.iter().all(|f| f[42] <= 1));
    let r = plugin_report(&n, i);
    assert_eq!(r["layers"][3]["dropped"], 2);
    assert_eq!(r["layers"][0]["passed"], 2);
}

#[test]
fn layerdrop_thins_to_a_rate() {
    let h = host();
    let mut n = node();
    load(&mut n, &h, "wlayer", "layerdrop");
    // Each of four layers is offered 8 frames × 60 B per 10 ms = 48 kB/s;
    // a 120 kB/s target keeps layers 0 and 1 (96 kB/s) only.
    let i = n.create_instance("wlayer", "rate=120000 window=50").unwrap();
    bind(&mut n, PLUGIN_PORT, vec![i]);
    let mut passed = [0usize; 4];
    for t in 0..100u64 {
        let frames: Vec<_> = (0..32u8).map(|k| frame(PLUGIN_PORT, &[k % 4; 18])).collect();
        for f in send(&mut n, t * 10_000_000, &frames) {
            if t >= 50 {
                passed[f[42] as usize] += 1;
            }
        }
    }
    assert_eq!(passed[0], 50 * 8);
    assert_eq!(passed[1], 50 * 8);
    assert_eq!(passed[2] + passed[3], 0, "{passed:?}");
    assert_eq!(plugin_report(&n, i)["cutoff"], 1);
}

#[test]
fn rewrite_rewrites_and_fixes_the_udp_checksum() {
    let h = host();
    let mut n = node();
    load(&mut n, &h, "wrewrite", "rewrite");
    let i = n.create_instance("wrewrite", "from=secret to=XXXXXX").unwrap();
    bind(&mut n, PLUGIN_PORT, vec![i]);
    let f = frame(PLUGIN_PORT, b"the secret is a secret!");
    assert!(udp_checksum_ok(&f));
    let out = send(&mut n, 0, &[f.clone(), frame(PLUGIN_PORT, b"nothing here")]);
    assert_eq!(out.len(), 2);
    assert_eq!(&out[0][42..], b"the XXXXXX is a XXXXXX!");
    assert!(udp_checksum_ok(&out[0]), "UDP checksum verifies after the rewrite");
    assert!(weft_packet::view::parse(&out[0]).is_ok());
    assert_eq!(&out[1][42..], b"nothing here");
    assert_eq!(plugin_report(&n, i)["replacements"], 2);
    assert!(
        n.create_instance("wrewrite", "from=ab to=abc").is_err(),
        "unequal lengths refused"
    );
}

/// What `echo` was configured with, and its last control request.
fn echoed(n: &weft_dataplane::Node, i: weft_dataplane::InstanceId) -> (String, String) {
    let r = plugin_report(n, i);
    let s = |k: &str| r[k].as_str().unwrap_or_else(|| panic!("no {k} in {r}")).to_string();
    (s("config"), s("control"))
}

#[test]
fn a_plugin_receives_its_configuration_as_written_less_the_host_keys() {
    // Unmetered: this test is about text, and a loaded machine can stretch
    // a call past the 5 ms epoch budget (a fault would hide the report).
    let h = weft_wasm::WasmHost::new(weft_wasm::HostConfig {
        budget: weft_wasm::Budget::Unmetered,
        ..Default::default()
    })
    .unwrap();
    let mut n = node();
    load(&mut n, &h, "echo", "echo");
    // Commas, quotes, repeated keys, bare words after pairs, odd spacing:
    // the node's own parsing would split, sort and collapse all of these.
    let written = "block=5001,5002 msg=\"a, b\"  b=2 b=1 zeta 'q' on_fault=pass alpha max_faults=7";
    let i = n.create_instance("echo", written).unwrap();
    let (cfg, _) = echoed(&n, i);
    assert_eq!(cfg, "block=5001,5002 msg=\"a, b\"  b=2 b=1 zeta 'q' alpha");
    let w = wasm_report(&n, i);
    assert_eq!(
        (w["on_fault"].as_str(), w["max_faults"].as_u64()),
        (Some("pass"), Some(7)),
        "{w}"
    );
    // Listings show what was written (the host keys too: they are part of
    // the instance's configuration).
    let listed = n.instances().into_iter().find(|x| x.id == i).unwrap().config;
    assert_eq!(listed, written);
    // A new configuration reaches the plugin through `weft_control`, as written.
    n.configure(i, "x=1,2\ty on_fault=drop").unwrap();
    assert_eq!(echoed(&n, i).1, "x=1,2\ty");
    assert_eq!(wasm_report(&n, i)["on_fault"], "drop");
    // LANA's `set`: that key's words replaced, the rest as written.
    n.set(i, "y", "3").unwrap();
    assert_eq!(echoed(&n, i).1, "x=1,2\ty y=3");
    n.configure(i, "block=5001,5002 y=3").unwrap();
    n.set(i, "block", "6000").unwrap();
    assert_eq!(echoed(&n, i).1, "y=3 block=6000", "the whole list is the value");
    n.set(i, "max_faults", "0").unwrap();
    assert_eq!(echoed(&n, i).1, "y=3 block=6000");
    assert_eq!(wasm_report(&n, i)["max_faults"], 0);
    // Replacement with a configuration: `weft_init` of the new instance.
    n.replace(i, "echo", Some("k=v,v k=w"), false).unwrap();
    assert_eq!(echoed(&n, i).0, "k=v,v k=w");
    // Only host words are the host's: a host key inside a comma list is
    // the plugin's text, and a bad host value is refused by the host.
    let j = n.create_instance("echo", "a,on_fault=pass").unwrap();
    assert_eq!(echoed(&n, j).0, "a,on_fault=pass");
    let e = n.create_instance("echo", "on_fault=pass,x").unwrap_err();
    assert!(e.to_string().contains("on_fault must be pass or drop"), "{e}");
}

#[test]
fn several_instances_of_one_class_with_different_configs() {
    let h = host();
    let mut n = node();
    load(&mut n, &h, "wrewrite", "rewrite");
    let a = n.create_instance("wrewrite", "from=aaaa to=1111").unwrap();
    let b = n.create_instance("wrewrite", "from=aaaa to=2222").unwrap();
    let c = n.create_instance("wrewrite", "from=1111 to=3333").unwrap();
    bind(&mut n, PLUGIN_PORT, vec![a, c]);
    bind(&mut n, OTHER_PORT, vec![b]);
    let out = send(&mut n, 0, &[frame(PLUGIN_PORT, b"aaaa"), frame(OTHER_PORT, b"aaaa")]);
    let mut payloads: Vec<&[u8]> = out.iter().map(|f| &f[42..]).collect();
    payloads.sort();
    assert_eq!(payloads, vec![&b"2222"[..], &b"3333"[..]]);
    for (id, k) in [(a, 1), (b, 1), (c, 1)] {
        assert_eq!(plugin_report(&n, id)["rewritten"], k);
    }
}

#[test]
fn replacement_under_traffic_carries_state_and_loses_nothing() {
    let h = host();
    let mut n = node();
    load(&mut n, &h, "wcounter", "counter");
    load(&mut n, &h, "wcounter2", "counter_v2");
    let i = n.create_instance("wcounter", "").unwrap();
    bind(&mut n, PLUGIN_PORT, vec![i]);
    let mut sent = 0;
    let mut got = 0;
    for round in 0..40u64 {
        if round == 20 {
            n.replace(i, "wcounter2", None, true).unwrap();
        }
        let frames: Vec<_> = (0..32).map(|_| frame(PLUGIN_PORT, b"media")).collect();
        sent += frames.len();
        got += send(&mut n, round, &frames).len();
    }
    assert_eq!(got, sent, "no packet lost");
    let r = plugin_report(&n, i);
    assert_eq!(r["version"], 2, "the new version runs");
    assert_eq!(r["packets"], sent as u64, "counts continue across the replacement");
    // Across kinds too: the native counter's state has the same format.
    n.replace(i, "counter", None, true).unwrap();
    send(&mut n, 99, &[frame(PLUGIN_PORT, b"x")]);
    assert_eq!(n.report(i).unwrap()["element"]["packets"], sent as u64 + 1);
}

/// Handlers are data: a plugin instance declares the host's generic
/// handlers (its class documents the same), and the read ones are keys of
/// its report.
#[test]
fn a_plugin_instance_declares_the_generic_handlers() {
    use weft_dataplane::element::Access;
    let h = host();
    let mut n = node();
    let class = load(&mut n, &h, "wcounter", "counter");
    let i = n.create_instance("wcounter", "").unwrap();
    let info = n.instances().into_iter().find(|x| x.id == i).unwrap();
    assert_eq!(info.handlers, class.element_class().doc.handlers);
    let names: Vec<&str> = info.handlers.iter().map(|h| h.name.as_ref()).collect();
    assert_eq!(names, ["plugin", "wasm", "control"]);
    let report = n.report(i).unwrap();
    for r in info.handlers.iter().filter(|h| h.access == Access::Read) {
        assert!(
            report["element"].get(r.name.as_ref()).is_some(),
            "no {} in {report}",
            r.name
        );
    }
}

/// IPv6 counts by hop limit and prints its addresses; keys beyond `max`
/// count in `overflow`; a run of one key after another goes back to the
/// key's own slot.
#[test]
fn netmonitor_ipv6_and_overflow() {
    let h = host();
    let mut n = node();
    load(&mut n, &h, "wnetmon", "netmonitor");
    let i = n.create_instance("wnetmon", "max=2").unwrap();
    bind(&mut n, PLUGIN_PORT, vec![i]);
    let v6 = |hop: u8| {
        weft_packet::build::udp6(
            [2, 0xaa, 0, 0, 0, 1],
            [2, 0, 0, 0, 0, 1],
            "2001:db8::2".parse().unwrap(),
            "2001:db8:1::9".parse().unwrap(),
            40000,
            PLUGIN_PORT,
            hop,
            b"v6",
        )
    };
    let v4 = frame_from(SRC, 64, PLUGIN_PORT, b"x");
    // Keys: v6/9, v4/64, v6/9 again, v4/33 (third key: overflow), v4/64.
    let frames = [
        v6(9),
        v4.clone(),
        v6(9),
        frame_from(SRC, 33, PLUGIN_PORT, b"y"),
        v4.clone(),
    ];
    send(&mut n, 0, &frames);
    let r = plugin_report(&n, i);
    assert_eq!(r["size"], 2, "{r}");
    let flows = r["flows"].as_array().unwrap();
    let six = flows.iter().find(|f| f["ttl"] == 9).expect("the IPv6 key");
    assert_eq!(six["src"], "2001:db8:0:0:0:0:0:2");
    assert_eq!(six["dst"], "2001:db8:1:0:0:0:0:9");
    assert_eq!(six["packets"], 2);
    assert_eq!(six["bytes"], 2 * frames[0].len() as u64);
    let four = flows.iter().find(|f| f["ttl"] == 64).expect("the IPv4 key");
    assert_eq!(four["packets"], 2);
    assert_eq!(r["overflow"]["packets"], 1);
    assert_eq!(r["overflow"]["bytes"], frames[3].len() as u64);
    assert_eq!(r["non_ip"], 0);
}
