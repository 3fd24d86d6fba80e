//! The example plugins of `plugins/`, for tests, examples and benchmarks:
//! [`ensure_built`] runs `plugins/build.sh` (which installs the wasm32 target
//! and clang when missing and returns at once when everything is built).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Error returned by [`ensure_built`] and [`read`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum PluginsError {
    /// The build script failed or could not run.
    #[error("plugins/build.sh failed: {0}")]
    Build(String),
    /// A plugin file could not be read.
    #[error("cannot read plugin {0}: {1}")]
    Read(PathBuf, String),
}

/// The workspace root (this crate's grandparent directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Build the example plugins once per process; the directory holding
/// `NAME.wasm`.
pub fn ensure_built() -> Result<PathBuf, PluginsError> {
    static BUILT: OnceLock<Result<PathBuf, PluginsError>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = workspace_root();
            let out = Command::new("bash")
                .arg(root.join("plugins/build.sh"))
                .output()
                .map_err(|e| PluginsError::Build(e.to_string()))?;
            if !out.status.success() {
                return Err(PluginsError::Build(String::from_utf8_lossy(&out.stderr).into_owned()));
            }
            Ok(root.join("target/plugins"))
        })
        .clone()
}

/// The bytes of example plugin `name` (`counter`, `c-counter`, `noop`, …).
pub fn read(name: &str) -> Result<Vec<u8>, PluginsError> {
    let p = ensure_built()?.join(format!("{name}.wasm"));
    std::fs::read(&p).map_err(|e| PluginsError::Read(p, e.to_string()))
}
