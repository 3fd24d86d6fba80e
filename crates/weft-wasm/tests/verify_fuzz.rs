//! `verify_module` on arbitrary and mutated bytes never panics, and the
//! module cache survives corruption.

use proptest::prelude::*;
use weft_wasm::{verify_module, HostConfig, WasmHost};

fn counter() -> Vec<u8> {
    weft_wasm::plugins::read("counter").unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = verify_module(&bytes);
        let mut b = b"\0asm\x01\0\0\0".to_vec();
        b.extend_from_slice(&bytes);
        let _ = verify_module(&b);
    }

    #[test]
    fn mutated_plugins_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
                                   cut in any::<prop::sample::Index>()) {
        let mut m = counter();
        for (i, v) in flips {
            let at = i.index(m.len());
            m[at] = v;
        }
        let _ = verify_module(&m);
        m.truncate(cut.index(m.len()));
        let _ = verify_module(&m);
    }
}

#[test]
fn cache_is_used_and_survives_corruption() {
    let dir = std::env::temp_dir().join(format!("weft-wasm-cache-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = HostConfig {
        cache_dir: Some(dir.clone()),
        ..Default::default()
    };
    let bytes = counter();
    let h = WasmHost::new(cfg.clone()).unwrap();
    let c = h.load_class("c", &bytes).unwrap();
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1);
    assert!(files[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with(&c.info().hash));
    // Second host: loads from the cache and works.
    let h2 = WasmHost::new(cfg.clone()).unwrap();
    let c2 = h2.load_class("c", &bytes).unwrap();
    c2.instantiate(&Default::default()).unwrap();
    // Corrupt the artifact: it is recompiled, not loaded.
    let mut f = std::fs::read(&files[0]).unwrap();
    let mid = f.len() / 2;
    f[mid] ^= 0xff;
    std::fs::write(&files[0], &f).unwrap();
    let h3 = WasmHost::new(cfg).unwrap();
    h3.load_class("c", &bytes)
        .unwrap()
        .instantiate(&Default::default())
        .unwrap();
    assert_ne!(std::fs::read(&files[0]).unwrap(), f, "rewritten");
    let _ = std::fs::remove_dir_all(&dir);
}
