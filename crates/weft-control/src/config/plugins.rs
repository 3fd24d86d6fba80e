//! `[plugins]`: which keys a node trusts, where it fetches plugins from,
//! where it caches them, and the WebAssembly host's limits.

use super::{ConfigError, NodeConfig};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;
use weft_repo::PublicKey;
use weft_wasm::{Budget, HostConfig};

/// `[plugins]`
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsSection {
    /// ed25519 public keys (64 hex digits) whose signed plugins this node
    /// loads.
    #[serde(default)]
    pub trusted_keys: Vec<Spanned<String>>,
    /// Code servers, tried in order: `http://HOST:PORT`.
    #[serde(default)]
    pub repos: Vec<Spanned<String>>,
    /// Verified packages and compiled code. Default:
    /// `$XDG_CACHE_HOME/weft/NODE`, else `/tmp/weft-cache-UID/NODE`.
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// CPU budget kind: `epoch` (default) or `fuel`.
    #[serde(default)]
    pub budget: Option<Spanned<String>>,
    /// Wall-clock budget per plugin call, ms (epoch budget; default 5).
    #[serde(default)]
    pub budget_ms: Option<Spanned<u64>>,
    /// Operators per call (fuel budget; default 10 000 000).
    #[serde(default)]
    pub fuel: Option<Spanned<u64>>,
    /// Linear memory cap per instance, MiB (default 16).
    #[serde(default)]
    pub memory_mib: Option<Spanned<u64>>,
}

/// `[plugins]`, checked: what the loader and the host need.
#[derive(Clone, Debug)]
pub struct PluginSettings {
    /// Trusted keys.
    pub trusted_keys: Vec<PublicKey>,
    /// Repository URLs.
    pub repos: Vec<String>,
    /// Cache directory (resolved).
    pub cache_dir: PathBuf,
    /// The host's configuration (its `cache_dir` is `cache_dir/compiled`).
    pub host: HostConfig,
}

/// The default cache directory of node `name`.
pub fn default_cache_dir(name: &str) -> PathBuf {
    match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x).join("weft").join(name),
        None => {
            use std::os::unix::fs::MetadataExt;
            let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0);
            std::env::temp_dir().join(format!("weft-cache-{uid}")).join(name)
        }
    }
}

impl NodeConfig {
    /// Trust `key` as if `[plugins] trusted_keys` listed it (`weft node run
    /// --trust KEY|FILE`). The code servers still come from `[plugins]
    /// repos`.
    pub fn trust(&mut self, key: weft_repo::PublicKey) {
        if !self.extra_trusted.contains(&key) {
            self.extra_trusted.push(key);
        }
    }

    /// The checked `[plugins]` section (with the keys of
    /// [`NodeConfig::trust`]), or None when the file has none and no key
    /// was trusted besides. Every error points at the offending value.
    pub fn plugin_settings(&self) -> Result<Option<PluginSettings>, ConfigError> {
        let default = PluginsSection::default();
        let ps = match &self.plugins {
            Some(p) => p.get_ref(),
            None if !self.extra_trusted.is_empty() => &default,
            None => return Ok(None),
        };
        let src = &self.source;
        let mut trusted_keys = self.extra_trusted.clone();
        for k in &ps.trusted_keys {
            trusted_keys.push(
                k.get_ref()
                    .parse::<PublicKey>()
                    .map_err(|e| src.error(k.span(), e.to_string()))?,
            );
        }
        for r in &ps.repos {
            weft_repo::fetch::BaseUrl::parse(r.get_ref()).map_err(|e| src.error(r.span(), e))?;
        }
        let mut host = HostConfig::default();
        if let Some(b) = &ps.budget {
            host.budget = match b.get_ref().as_str() {
                "epoch" => Budget::Epoch,
                "fuel" => Budget::Fuel,
                other => {
                    return Err(src.error(
                        b.span(),
                        format!("unknown budget {other:?}: use \"epoch\" (wall clock) or \"fuel\" (operators)"),
                    ))
                }
            };
        }
        if let Some(ms) = &ps.budget_ms {
            if !(1..=10_000).contains(ms.get_ref()) {
                return Err(src.error(ms.span(), "budget_ms must be between 1 and 10000"));
            }
            host.epoch_tick = Duration::from_millis(1);
            host.epoch_ticks = *ms.get_ref();
        }
        if let Some(f) = &ps.fuel {
            if *f.get_ref() == 0 {
                return Err(src.error(f.span(), "fuel must be positive"));
            }
            host.fuel = *f.get_ref();
        }
        if let Some(m) = &ps.memory_mib {
            if !(1..=4096).contains(m.get_ref()) {
                return Err(src.error(m.span(), "memory_mib must be between 1 and 4096"));
            }
            host.memory_cap = (*m.get_ref() as usize) << 20;
        }
        let cache_dir = ps.cache_dir.clone().unwrap_or_else(|| default_cache_dir(self.name()));
        host.cache_dir = Some(cache_dir.join("compiled"));
        Ok(Some(PluginSettings {
            trusted_keys,
            repos: ps.repos.iter().map(|r| r.get_ref().clone()).collect(),
            cache_dir,
            host,
        }))
    }

    /// Classes the file uses (instance classes, filters' `class`) that are
    /// not built in: the plugins to fetch before the node is built, each
    /// as written (`NAME` or `NAME@HASH`) with where it is written.
    pub fn plugin_uses(&self) -> Vec<&Spanned<String>> {
        let builtins: Vec<String> = crate::builtin_classes().into_iter().map(|c| c.name).collect();
        let inst = self.instances.iter().map(|i| &i.get_ref().class);
        let filt = self.filters.iter().filter_map(|f| f.get_ref().class.as_ref());
        let mut out: Vec<&Spanned<String>> = Vec::new();
        for c in inst.chain(filt) {
            let name = class_name(c.get_ref());
            if !builtins.iter().any(|b| b == name) && !out.iter().any(|o| o.get_ref() == c.get_ref()) {
                out.push(c);
            }
        }
        out
    }

    /// An error at `span` of this file.
    pub fn error_at(&self, span: std::ops::Range<usize>, message: impl Into<String>) -> ConfigError {
        self.source.error(span, message)
    }
}

/// The class name in `NAME` or `NAME@HASH`.
pub fn class_name(spec: &str) -> &str {
    spec.split('@').next().unwrap_or(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "4f9ae681bde3f7ad159efbf4145fa5daf3ce58e52565ffad466e7e24ae448c86";

    fn parse(plugins: &str) -> Result<NodeConfig, ConfigError> {
        NodeConfig::parse(&format!("[node]\nname = \"p\"\n\n[plugins]\n{plugins}"), "p.toml")
    }

    #[test]
    fn plugins_section_is_checked_with_line_numbers() {
        let cfg = parse(&format!(
            "trusted_keys = [\"{KEY}\"]\nrepos = [\"http://127.0.0.1:7080\"]\nbudget = \"fuel\"\nmemory_mib = 8\ncache_dir = \"/tmp/x\"\n"
        ))
        .unwrap();
        let s = cfg.plugin_settings().unwrap().unwrap();
        assert_eq!(s.trusted_keys.len(), 1);
        assert_eq!(s.host.budget, Budget::Fuel);
        assert_eq!(s.host.memory_cap, 8 << 20);
        assert_eq!(s.host.cache_dir, Some(PathBuf::from("/tmp/x/compiled")));

        let e = parse("trusted_keys = [\"abc\"]\n").unwrap_err().to_string();
        assert!(e.starts_with("p.toml:5:17: bad public key"), "{e}");
        let e = parse(&format!("trusted_keys = [\"{KEY}\"]\nrepos = [\"https://x\"]\n"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("p.toml:6:10: bad repository URL"), "{e}");
        let e = parse("budget = \"gas\"\n").unwrap_err().to_string();
        assert!(e.starts_with("p.toml:5:10: unknown budget"), "{e}");
        let e = parse("memory_mib = 0\n").unwrap_err().to_string();
        assert!(e.starts_with("p.toml:5:14: memory_mib"), "{e}");
        let e = parse("trusted = []\n").unwrap_err().to_string();
        assert!(e.starts_with("p.toml:5:1: unknown field `trusted`"), "{e}");
    }

    #[test]
    fn plugin_uses_lists_non_builtin_classes() {
        let text = "[node]\nname = \"p\"\n\n[[instance]]\nname = \"a\"\nclass = \"counter\"\n\n[[instance]]\nname = \"b\"\nclass = \"wcount@0011223344\"\n\n[[filter]]\nplugin = \"netmon\"\nautoinstance = true\n";
        let cfg = NodeConfig::parse(text, "p.toml").unwrap();
        let uses: Vec<&str> = cfg.plugin_uses().iter().map(|s| s.get_ref().as_str()).collect();
        assert_eq!(uses, ["wcount@0011223344", "netmon"]);
        assert_eq!(class_name("wcount@0011223344"), "wcount");
        // Without [plugins] the node says the class is unknown, at its line.
        let e = cfg.build().unwrap_err().to_string();
        assert!(e.starts_with("p.toml:10:9: unknown class"), "{e}");
    }
}
