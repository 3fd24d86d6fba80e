//! A verified, compiled plugin module as an element class: loaded through
//! the host ([`WasmHost::load_class`], written here, above the host), its
//! imports resolved once against the host functions, instances made from
//! it.

use crate::element::{ClassShared, WasmElement};
use crate::host::WasmHost;
use crate::linker::{link_host_functions, HostState};
use crate::verify::{verify_module, LoadError, ModuleInfo};
use std::sync::Arc;
use wasmtime::{Linker, Module};
use weft_dataplane::element::ClassKind;
use weft_dataplane::{Args, ClassDoc, ElementClass, ElementError};

impl WasmHost {
    /// Verify `bytes` ([`verify_module`]), then compile them — or take the
    /// compiled code from the cache — into a class named `name`. The bytes
    /// must already have passed the caller's authenticity checks.
    pub fn load_class(&self, name: &str, bytes: &[u8]) -> Result<WasmClass, LoadError> {
        let info = verify_module(bytes)?;
        let module = match &self.shared.cache {
            Some(c) => c.load_or_compile(&self.shared.engine, bytes, &info.hash)?,
            None => Module::new(&self.shared.engine, bytes).map_err(|e| LoadError::Compile(e.to_string()))?,
        };
        WasmClass::new(self.clone(), name, info, module)
    }
}

/// A plugin class: the compiled module (shared by every instance) and what
/// the verifier learned about it. [`WasmClass::element_class`] turns it into
/// the engine's [`ElementClass`], so it binds to filters like any class.
#[derive(Clone)]
pub struct WasmClass {
    pub(crate) shared: Arc<ClassShared>,
}

impl std::fmt::Debug for WasmClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmClass")
            .field("name", &self.shared.name)
            .field("hash", &self.shared.info.hash)
            .finish()
    }
}

impl WasmClass {
    pub(crate) fn new(host: WasmHost, name: &str, info: ModuleInfo, module: Module) -> Result<Self, LoadError> {
        let mut linker: Linker<HostState> = Linker::new(&host.shared.engine);
        link_host_functions(&mut linker).map_err(|e| LoadError::Compile(e.to_string()))?;
        // Resolves imports once; each instance then only allocates its store.
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| LoadError::Compile(e.to_string()))?;
        Ok(WasmClass {
            shared: Arc::new(ClassShared {
                host,
                name: name.into(),
                info,
                pre,
            }),
        })
    }

    /// The class name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// What the verifier learned (hash, imports, optional exports, …).
    pub fn info(&self) -> &ModuleInfo {
        &self.shared.info
    }

    /// A new instance configured by `config` (plugin configuration plus the
    /// host keys `on_fault=pass|drop` and `max_faults=N`).
    pub fn instantiate(&self, config: &Args) -> Result<WasmElement, ElementError> {
        WasmElement::new(self.shared.clone(), config)
    }

    /// The engine-facing class: kind `Wasm { hash }`, a factory creating
    /// [`WasmElement`]s.
    pub fn element_class(&self) -> ElementClass {
        let me = self.clone();
        let short = &self.shared.info.hash[..12];
        ElementClass {
            name: self.shared.name.to_string(),
            kind: ClassKind::Wasm {
                hash: self.shared.info.hash.clone(),
            },
            doc: ClassDoc {
                summary: format!("WebAssembly plugin (ABI v1, sha256 {short}…)"),
                config: "the plugin's own configuration, plus host keys on_fault=pass|drop (default drop) \
                         and max_faults=N (default 3; 0 never disables)"
                    .into(),
                handlers: crate::element::HANDLERS.to_vec(),
            },
            factory: Arc::new(move |args: &Args| Ok(Box::new(me.instantiate(args)?) as _)),
        }
    }
}
