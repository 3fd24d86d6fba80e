//! The verifier: decide from a module's bytes alone, before any of its code
//! is compiled or run, whether it speaks plugin ABI v1.
//!
//! Checks, in order, each with its own [`LoadError`]: size; well-formed and
//! valid WebAssembly (wasmparser's validator); every import is one of the
//! `weft` host functions with its exact signature; the required exports are
//! present with their exact signatures; `weft_abi_version`'s body is the
//! constant `1`, and `weft_frame_head`'s (when exported) a constant too.
//! Both are read from the code rather than by calling the functions, so
//! nothing untrusted runs before the module is accepted.
//!
//! **Seam for signatures.** [`verify_module`] takes bytes that have already
//! passed whatever authenticity checks the caller applies (the code-server
//! loader: ed25519 over the sha256 [`ModuleInfo::hash`] reports); it checks
//! only that the module is safe to compile and speaks the ABI.

use sha2::{Digest, Sha256};
use wasmparser::{Operator, Parser, Payload, ValType, Validator};
use weft_plugin_sdk::abi;

/// Largest module accepted (compiled code grows with it; example plugins
/// are 1–30 KiB).
pub const MAX_MODULE_BYTES: usize = 16 << 20;

/// The host functions a plugin may import from module `weft`: name, params,
/// results.
pub const HOST_IMPORTS: &[(&str, &[ValType], &[ValType])] = &[
    ("emit", &[ValType::I32, ValType::I32, ValType::I32], &[ValType::I32]),
    ("log", &[ValType::I32, ValType::I32, ValType::I32], &[]),
    ("now_ns", &[], &[ValType::I64]),
    ("counter_add", &[ValType::I32, ValType::I64], &[]),
    ("reply", &[ValType::I32, ValType::I32], &[]),
    ("frame_load", &[ValType::I32], &[ValType::I32]),
];

/// Exported functions: name, params, results, required.
pub const PLUGIN_EXPORTS: &[(&str, &[ValType], &[ValType], bool)] = &[
    ("weft_abi_version", &[], &[ValType::I32], true),
    ("weft_frame_head", &[], &[ValType::I32], false),
    ("weft_alloc", &[ValType::I32], &[ValType::I32], true),
    ("weft_init", &[ValType::I32, ValType::I32], &[ValType::I32], true),
    ("weft_process", &[ValType::I32, ValType::I32], &[ValType::I32], true),
    ("weft_control", &[ValType::I32, ValType::I32], &[ValType::I32], false),
    ("weft_report", &[], &[ValType::I32], false),
    ("weft_export_state", &[], &[ValType::I32], false),
    (
        "weft_import_state",
        &[ValType::I32, ValType::I32],
        &[ValType::I32],
        false,
    ),
];

/// Error returned by [`verify_module`] (and by class loading, which adds
/// compilation and cache failures). Each variant names the check that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// Larger than [`MAX_MODULE_BYTES`].
    #[error("module too large: {size} bytes (limit {limit})")]
    TooLarge {
        /// The module's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not WebAssembly at all: the bytes do not start with `\0asm`.
    #[error("not a WebAssembly module: it starts with {0} instead of 00 61 73 6d (\"\\0asm\")")]
    NotWasm(String),
    /// Not a valid WebAssembly module.
    #[error("malformed module: {0}")]
    Malformed(String),
    /// An import outside the plugin ABI.
    #[error(
        "unknown import `{module}.{name}`: plugin ABI v1 allows only weft.{{emit, log, now_ns, counter_add, reply, frame_load}}"
    )]
    UnknownImport {
        /// Import module.
        module: String,
        /// Import name.
        name: String,
    },
    /// A known import with the wrong type.
    #[error("import `weft.{name}` has type {found}, plugin ABI v1 expects {expected}")]
    ImportSignature {
        /// Import name.
        name: String,
        /// What the ABI says.
        expected: String,
        /// What the module declares.
        found: String,
    },
    /// A required export is absent.
    #[error("missing export `{0}` required by plugin ABI v1")]
    MissingExport(String),
    /// An ABI export with the wrong type.
    #[error("export `{name}` has type {found}, plugin ABI v1 expects {expected}")]
    ExportSignature {
        /// Export name.
        name: String,
        /// What the ABI says.
        expected: String,
        /// What the module declares.
        found: String,
    },
    /// `weft_abi_version` returns a version this host does not speak.
    #[error("ABI mismatch: module speaks plugin ABI v{found}, this node speaks v{supported}")]
    AbiMismatch {
        /// The module's version.
        found: i32,
        /// The host's version.
        supported: i32,
    },
    /// `weft_abi_version` is not a constant function.
    #[error(
        "`weft_abi_version` must be a constant function (`i32.const N`), so the version is known without running code"
    )]
    AbiNotConstant,
    /// `weft_frame_head` is not a constant function, or a negative one.
    #[error(
        "`weft_frame_head` must be a constant function returning a length (`i32.const N`, N >= 0), so the head is known without running code"
    )]
    HeadNotConstant,
    /// Wasmtime could not compile the (valid) module.
    #[error("compilation failed: {0}")]
    Compile(String),
    /// The precompiled-module cache failed (the load itself may be retried
    /// without a cache).
    #[error("module cache: {0}")]
    Cache(String),
}

/// What [`verify_module`] learned about an accepted module.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ModuleInfo {
    /// sha256 of the module bytes, lower-case hex: the class's identity.
    pub hash: String,
    /// Module size in bytes.
    pub size: usize,
    /// The ABI version (always [`abi::ABI_VERSION`] once accepted).
    pub abi_version: i32,
    /// Imported host functions (`weft.NAME`).
    pub imports: Vec<String>,
    /// The head the module declared (`weft_frame_head`): bytes of each
    /// frame copied in before it asks for more. `None`: the whole frame
    /// (no export, or `i32::MAX`, what the SDK exports by default).
    pub frame_head: Option<u32>,
    /// Optional ABI exports present (`weft_control`, `weft_report`, …).
    pub optional_exports: Vec<String>,
    /// Initial linear memory in bytes.
    pub initial_memory: u64,
}

impl ModuleInfo {
    /// True when the module exports `name`.
    pub fn exports(&self, name: &str) -> bool {
        self.optional_exports.iter().any(|e| e == name) || PLUGIN_EXPORTS.iter().any(|e| e.0 == name && e.3)
    }
}

/// sha256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn as_func(t: &wasmparser::CompositeInnerType) -> Option<&wasmparser::FuncType> {
    match t {
        wasmparser::CompositeInnerType::Func(f) => Some(f),
        _ => None,
    }
}

fn sig(params: &[ValType], results: &[ValType]) -> String {
    let l = |v: &[ValType]| v.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ");
    format!("({}) -> ({})", l(params), l(results))
}

/// wasmparser's error as one line: some of its messages embed multi-line
/// debug output (byte arrays), which must not reach an operator's terminal
/// or a log line as ten lines.
fn malformed(e: wasmparser::BinaryReaderError) -> LoadError {
    LoadError::Malformed(e.to_string().split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Verify a module's bytes against plugin ABI v1 without running any of it.
/// See the module documentation for the checks.
pub fn verify_module(bytes: &[u8]) -> Result<ModuleInfo, LoadError> {
    if bytes.len() > MAX_MODULE_BYTES {
        return Err(LoadError::TooLarge {
            size: bytes.len(),
            limit: MAX_MODULE_BYTES,
        });
    }
    if !bytes.starts_with(b"\0asm") {
        let head: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
        let head = if head.is_empty() {
            "nothing (an empty file)".to_string()
        } else {
            head.join(" ")
        };
        return Err(LoadError::NotWasm(head));
    }
    let types = Validator::new().validate_all(bytes).map_err(malformed)?;
    let types = types.as_ref();
    let Some(imports) = types.core_imports() else {
        return Err(LoadError::Malformed("a component, not a core module".into()));
    };
    let mut import_names = Vec::new();
    let mut imported_funcs = 0u32;
    for (module, name, ty) in imports {
        let known = HOST_IMPORTS
            .iter()
            .find(|h| module == abi::IMPORT_MODULE && h.0 == name);
        let (Some(&(_, params, results)), wasmparser::types::EntityType::Func(id)) = (known, ty) else {
            return Err(LoadError::UnknownImport {
                module: module.into(),
                name: name.into(),
            });
        };
        let Some(f) = as_func(&types[id].composite_type.inner) else {
            return Err(LoadError::UnknownImport {
                module: module.into(),
                name: name.into(),
            });
        };
        if f.params() != params || f.results() != results {
            return Err(LoadError::ImportSignature {
                name: name.into(),
                expected: sig(params, results),
                found: sig(f.params(), f.results()),
            });
        }
        imported_funcs += 1;
        import_names.push(format!("weft.{name}"));
    }
    let Some(exports) = types.core_exports() else {
        return Err(LoadError::Malformed("a component, not a core module".into()));
    };
    let exports: Vec<(&str, wasmparser::types::EntityType)> = exports.collect();
    let mut optional = Vec::new();
    for &(name, params, results, required) in PLUGIN_EXPORTS {
        let Some((_, ty)) = exports.iter().find(|e| e.0 == name) else {
            if required {
                return Err(LoadError::MissingExport(name.into()));
            }
            continue;
        };
        let found = match ty {
            wasmparser::types::EntityType::Func(id) => as_func(&types[*id].composite_type.inner),
            _ => None,
        };
        match found {
            Some(f) if f.params() == params && f.results() == results => {}
            Some(f) => {
                return Err(LoadError::ExportSignature {
                    name: name.into(),
                    expected: sig(params, results),
                    found: sig(f.params(), f.results()),
                })
            }
            None => {
                return Err(LoadError::ExportSignature {
                    name: name.into(),
                    expected: sig(params, results),
                    found: "not a function".into(),
                })
            }
        }
        if !required {
            optional.push(name.to_string());
        }
    }
    let initial_memory = match exports.iter().find(|e| e.0 == "memory") {
        Some((_, wasmparser::types::EntityType::Memory(m))) if !m.memory64 && !m.shared => {
            m.initial.saturating_mul(m.page_size_log2.map_or(65536, |l| 1u64 << l))
        }
        Some(_) => {
            return Err(LoadError::ExportSignature {
                name: "memory".into(),
                expected: "an unshared 32-bit memory".into(),
                found: "another kind of export".into(),
            })
        }
        None => return Err(LoadError::MissingExport("memory".into())),
    };
    let version = constant_of(bytes, imported_funcs, "weft_abi_version")?.ok_or(LoadError::AbiNotConstant)?;
    if version != abi::ABI_VERSION {
        return Err(LoadError::AbiMismatch {
            found: version,
            supported: abi::ABI_VERSION,
        });
    }
    let frame_head = if optional.iter().any(|e| e == abi::FRAME_HEAD_EXPORT) {
        match constant_of(bytes, imported_funcs, abi::FRAME_HEAD_EXPORT) {
            // The SDK's default, `i32::MAX`, is no head: whole frames.
            Ok(Some(i32::MAX)) => None,
            Ok(Some(h)) if h >= 0 => Some(h as u32),
            Ok(_) => return Err(LoadError::HeadNotConstant),
            Err(e) => return Err(e),
        }
    } else {
        None
    };
    Ok(ModuleInfo {
        hash: sha256_hex(bytes),
        size: bytes.len(),
        abi_version: version,
        imports: import_names,
        frame_head,
        optional_exports: optional,
        initial_memory,
    })
}

/// The constant the exported function `export` returns, read from its
/// code: `Ok(None)` when its body is anything but `i32.const N`.
fn constant_of(bytes: &[u8], imported_funcs: u32, export: &str) -> Result<Option<i32>, LoadError> {
    let bad = malformed;
    let mut func_index = None;
    let mut body_index = 0u32;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(bad)? {
            Payload::ExportSection(r) => {
                for e in r {
                    let e = e.map_err(bad)?;
                    if e.name == export {
                        func_index = Some(e.index);
                    }
                }
            }
            Payload::CodeSectionEntry(body) => {
                let this = imported_funcs + body_index;
                body_index += 1;
                if Some(this) != func_index {
                    continue;
                }
                let mut ops = body.get_operators_reader().map_err(bad)?;
                let first = ops.read().map_err(bad)?;
                let second = ops.read().map_err(bad)?;
                return match (first, second, ops.eof()) {
                    (Operator::I32Const { value }, Operator::End, true) => Ok(Some(value)),
                    _ => Ok(None),
                };
            }
            _ => {}
        }
    }
    // The export exists (checked before) but has no body: it is an import.
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(extra: &str, version: i32) -> Vec<u8> {
        wat::parse_str(format!(
            r#"(module {extra}
                (memory (export "memory") 1)
                (func (export "weft_abi_version") (result i32) i32.const {version})
                (func (export "weft_alloc") (param i32) (result i32) i32.const 1024)
                (func (export "weft_init") (param i32 i32) (result i32) i32.const 0)
                (func (export "weft_process") (param i32 i32) (result i32) i32.const 0))"#
        ))
        .expect("test module")
    }

    #[test]
    fn accepts_minimal_module() {
        let info = verify_module(&module(r#"(import "weft" "now_ns" (func (result i64)))"#, 1)).expect("valid");
        assert_eq!(info.abi_version, 1);
        assert_eq!(info.imports, vec!["weft.now_ns"]);
        assert_eq!(info.initial_memory, 65536);
        assert_eq!(info.hash.len(), 64);
    }

    #[test]
    fn refuses_each_failed_check_by_name() {
        let e = verify_module(b"\0asm\x01\0\0\0garbage").unwrap_err();
        assert!(matches!(e, LoadError::Malformed(_)), "{e}");
        assert!(!e.to_string().contains('\n'), "{e}");
        let e = verify_module(b"\0asm\x02\0\0\0").unwrap_err();
        assert!(
            matches!(e, LoadError::Malformed(_)) && !e.to_string().contains('\n'),
            "{e}"
        );
        let e = verify_module(b"hello world\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "not a WebAssembly module: it starts with 68 65 6c 6c instead of 00 61 73 6d (\"\\0asm\")"
        );
        let e = verify_module(b"").unwrap_err();
        assert!(e.to_string().contains("starts with nothing (an empty file)"), "{e}");
        let e = verify_module(&module(r#"(import "weft" "xyz" (func))"#, 1)).unwrap_err();
        assert_eq!(e.to_string().split(':').next(), Some("unknown import `weft.xyz`"));
        let e = verify_module(&module(r#"(import "wasi_snapshot_preview1" "fd_write" (func))"#, 1)).unwrap_err();
        assert!(e.to_string().contains("wasi_snapshot_preview1.fd_write"), "{e}");
        let e = verify_module(&module(r#"(import "weft" "now_ns" (func (result i32)))"#, 1)).unwrap_err();
        assert!(matches!(e, LoadError::ImportSignature { .. }), "{e}");
        let e = verify_module(&module("", 2)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ABI mismatch: module speaks plugin ABI v2, this node speaks v1"
        );
        let e = verify_module(&wat::parse_str(r#"(module (memory (export "memory") 1))"#).unwrap()).unwrap_err();
        assert_eq!(e, LoadError::MissingExport("weft_abi_version".into()));
    }

    #[test]
    fn abi_version_must_be_constant() {
        let m = wat::parse_str(
            r#"(module (memory (export "memory") 1)
                (func (export "weft_abi_version") (result i32) i32.const 0 i32.const 1 i32.add)
                (func (export "weft_alloc") (param i32) (result i32) i32.const 1024)
                (func (export "weft_init") (param i32 i32) (result i32) i32.const 0)
                (func (export "weft_process") (param i32 i32) (result i32) i32.const 0))"#,
        )
        .unwrap();
        assert_eq!(verify_module(&m).unwrap_err(), LoadError::AbiNotConstant);
    }
}
