//! WebAssembly plugins on a node: the [`Plugins`] manager behind `weft
//! plugin load|ls|unload`, on-demand loading for `filter add --class NAME
//! --autoinstance` (and config-file filters naming a plugin), the PBR
//! daemon's class fetcher, and the values the API sends and takes
//! (its handlers are in `api/plugins.rs`, above this module).
//!
//! Fetching, verifying and compiling happen in the API's task and a
//! blocking thread ([`weft_repo::Loader::load`]); the node thread only
//! receives the finished class (`upsert_class`), so a slow code server
//! never stalls the data path.

use crate::auth::{Principal, Refused};
use crate::config::plugins::PluginSettings;
use crate::config::{ConfigError, NodeConfig};
use crate::pbr::ClassFetcher;
use crate::runner::{NodeHandle, NodeStopped};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use weft_dataplane::element::ClassKind;
use weft_dataplane::ElementClass;
use weft_pbr::{Reason, Refusal};
use weft_repo::{Loaded, Loader, LoaderConfig, LoaderError, PluginSpec};
use weft_wasm::WasmHost;

/// A loaded plugin class, as `GET /v1/plugins` shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PluginInfo {
    /// Class name.
    pub name: String,
    /// Version (from the signed manifest).
    pub version: String,
    /// sha256 of the module.
    pub sha256: String,
    /// Signer's key id.
    pub signer: String,
    /// Where it was fetched from.
    pub source: String,
}

/// `GET /v1/plugins`: one version of a plugin and the instances running it.
///
/// Loading a new version registers it for new instances; instances made
/// before keep running the old code until `weft fb replace` moves them.
/// So a plugin has a row for its current version and one for each older
/// version that instances still run (an older version no instance runs
/// is not listed; the node remembers it, a few bytes, until unload).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PluginView {
    /// The plugin.
    #[serde(flatten)]
    pub info: PluginInfo,
    /// The version new instances of the class get.
    #[serde(default = "yes")]
    pub current: bool,
    /// The instances (`#N`) running this version.
    pub instances: Vec<String>,
}

fn yes() -> bool {
    true
}

/// `POST /v1/plugins`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginLoadRequest {
    /// `NAME` or `NAME@HASH`.
    pub name: String,
    /// A content hash (alternative to `NAME@HASH`).
    #[serde(default)]
    pub hash: Option<String>,
    /// Fetch from this code server instead of the configured ones.
    #[serde(default)]
    pub from: Option<String>,
}

/// Reply to `POST /v1/plugins`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PluginLoaded {
    /// What was loaded.
    pub plugin: PluginInfo,
    /// The checks passed, in order.
    pub steps: Vec<String>,
}

/// Error creating [`Plugins`].
#[derive(Debug, thiserror::Error)]
pub enum PluginsError {
    /// The cache directory is unusable or unsafe.
    #[error("plugin cache directory {0}: {1}")]
    CacheDir(std::path::PathBuf, String),
    /// The wasm host could not start.
    #[error(transparent)]
    Host(#[from] weft_wasm::HostError),
}

/// Error returned by [`Plugins::load`] and [`Plugins::ensure`].
#[derive(Debug, thiserror::Error)]
pub enum PluginLoadError {
    /// The caller may not load this plugin (by name or by signer).
    #[error(transparent)]
    Refused(#[from] Refused),
    /// A built-in class has the plugin's name: it is never shadowed.
    #[error("{0} is a built-in class; publish the plugin under another name")]
    BuiltIn(String),
    /// Fetching or checking the plugin failed.
    #[error(transparent)]
    Loader(#[from] LoaderError),
    /// `NAME[@HASH]` does not parse.
    #[error("{0}")]
    BadSpec(String),
    /// The node stopped.
    #[error(transparent)]
    Stopped(#[from] NodeStopped),
}

/// A node's plugin loader and the plugin classes it loaded.
#[derive(Debug)]
pub struct Plugins {
    loader: Loader,
    /// Per name, the versions loaded, oldest first (a reload moves a
    /// version last); the node's class says which one is current.
    loaded: Mutex<BTreeMap<String, Vec<PluginInfo>>>,
}

/// The API's view of the node's plugins (None: no `[plugins]` section).
pub type PluginState = Option<Arc<Plugins>>;

/// Create `dir` (mode 0700) or check that an existing one belongs to this
/// user and is closed to others: compiled code is loaded from it.
fn private_dir(dir: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| e.to_string())?;
    let me = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    let m = std::fs::metadata(dir).map_err(|e| e.to_string())?;
    if me.is_some_and(|u| u != m.uid()) || m.mode() & 0o022 != 0 {
        return Err(format!(
            "owned by uid {} with mode {:o}: it must be this user's and not writable by others",
            m.uid(),
            m.mode() & 0o777
        ));
    }
    Ok(())
}

impl Plugins {
    /// Start the wasm host and the loader for `settings`.
    pub fn new(settings: PluginSettings) -> Result<Plugins, PluginsError> {
        private_dir(&settings.cache_dir).map_err(|e| PluginsError::CacheDir(settings.cache_dir.clone(), e))?;
        let host = WasmHost::new(settings.host)?;
        let loader = Loader::new(
            LoaderConfig {
                trusted_keys: settings.trusted_keys,
                repos: settings.repos,
                cache_dir: Some(settings.cache_dir),
            },
            host,
        );
        Ok(Plugins {
            loader,
            loaded: Mutex::new(BTreeMap::new()),
        })
    }

    /// The `[plugins]` of `cfg`, started; None when the file has none.
    pub fn from_config(cfg: &NodeConfig) -> Result<Option<Arc<Plugins>>, anyhow::Error> {
        match cfg.plugin_settings()? {
            Some(s) => Ok(Some(Arc::new(Plugins::new(s)?))),
            None => Ok(None),
        }
    }

    /// The loader.
    pub fn loader(&self) -> &Loader {
        &self.loader
    }

    fn record(&self, l: &Loaded) -> PluginInfo {
        let info = PluginInfo {
            name: l.manifest.name.clone(),
            version: l.manifest.version.clone(),
            sha256: l.manifest.sha256.clone(),
            signer: l.signer.to_string(),
            source: l.source.clone(),
        };
        if let Ok(mut m) = self.loaded.lock() {
            let v = m.entry(info.name.clone()).or_default();
            v.retain(|i| i.sha256 != info.sha256);
            v.push(info.clone());
        }
        info
    }

    /// The plugins loaded so far: the latest version loaded of each.
    pub fn loaded(&self) -> Vec<PluginInfo> {
        self.loaded
            .lock()
            .map(|m| m.values().filter_map(|v| v.last().cloned()).collect())
            .unwrap_or_default()
    }

    /// Every version loaded so far, by name, oldest first.
    pub(crate) fn versions(&self) -> Vec<PluginInfo> {
        self.loaded
            .lock()
            .map(|m| m.values().flatten().cloned().collect())
            .unwrap_or_default()
    }

    /// Fetch, verify and compile `spec`, then register it on the node
    /// (replacing an older version of the same plugin: existing instances
    /// keep their code until replaced). A built-in class is never shadowed.
    /// `who` must be allowed the plugin by name, or by its signer — checked
    /// before anything is fetched when it can be, and always before the
    /// class reaches the node.
    pub async fn load(
        &self,
        h: &NodeHandle,
        spec: &PluginSpec,
        from: Option<&str>,
        who: &Principal,
    ) -> Result<PluginLoaded, PluginLoadError> {
        let name = spec.name.clone();
        if who.signers.is_empty() {
            who.need_class(&name, None)?;
        }
        let native = |n: &weft_dataplane::Node, name: &str| {
            n.classes()
                .into_iter()
                .any(|(c, k, _)| c == name && k == ClassKind::Native)
        };
        let refuse = |name: &str| PluginLoadError::BuiltIn(name.to_string());
        let n2 = name.clone();
        if h.call(move |n| native(n, &n2)).await? {
            return Err(refuse(&name));
        }
        let loaded = self.loader.load(spec, from).await?;
        who.need_class(&name, Some(&loaded.signer.0))?;
        let class = loaded.class.element_class();
        let n2 = name.clone();
        let ok = h
            .call(move |n| {
                if native(n, &n2) {
                    return false;
                }
                n.upsert_class(class);
                true
            })
            .await?;
        if !ok {
            return Err(refuse(&name));
        }
        let plugin = self.record(&loaded);
        tracing::info!(plugin = %plugin.name, version = %plugin.version, sha256 = %plugin.sha256, "plugin class registered");
        Ok(PluginLoaded {
            plugin,
            steps: loaded.steps,
        })
    }

    /// On-demand loading: make sure the node has the class `plugin`
    /// (`NAME` or `NAME@HASH`) names, loading it when the node lacks it
    /// (or has another hash). Returns the class name and what was loaded.
    pub async fn ensure(
        &self,
        h: &NodeHandle,
        plugin: &str,
        who: &Principal,
    ) -> Result<(String, Option<PluginLoaded>), PluginLoadError> {
        let spec: PluginSpec = plugin.parse().map_err(PluginLoadError::BadSpec)?;
        let (name, want) = (spec.name.clone(), spec.hash.clone());
        let have = h
            .call(move |n| {
                n.classes()
                    .into_iter()
                    .find(|(c, _, _)| *c == name)
                    .map(|(_, k, _)| match (k, &want) {
                        (_, None) => true,
                        (ClassKind::Wasm { hash }, Some(w)) => hash.starts_with(w.as_str()),
                        (ClassKind::Native, Some(_)) => false,
                    })
            })
            .await?;
        let loaded = match have {
            Some(true) => None,
            _ => Some(self.load(h, &spec, None, who).await?),
        };
        Ok((spec.name, loaded))
    }

    /// Fetch the plugins a configuration file uses (see
    /// [`NodeConfig::plugin_uses`]) before the node is built; errors point
    /// at the line naming the plugin.
    pub async fn preload(&self, cfg: &NodeConfig) -> Result<Vec<ElementClass>, ConfigError> {
        let mut out = Vec::new();
        for u in cfg.plugin_uses() {
            let spec: PluginSpec = u.get_ref().parse().map_err(|e: String| cfg.error_at(u.span(), e))?;
            let l = self
                .loader
                .load(&spec, None)
                .await
                .map_err(|e| cfg.error_at(u.span(), e.to_string()))?;
            for s in &l.steps {
                tracing::info!(plugin = %spec, "{s}");
            }
            self.record(&l);
            out.push(l.class.element_class());
        }
        Ok(out)
    }

    /// A [`ClassFetcher`] for the node's PBR daemon: fetches through this
    /// loader on the runtime `rt` (never on the node thread) and delivers
    /// the class, or the refusal, to the daemon through `node`.
    pub fn pbr_fetcher(self: &Arc<Self>, node: NodeHandle, rt: tokio::runtime::Handle) -> RepoFetcher {
        RepoFetcher {
            plugins: self.clone(),
            node,
            rt,
        }
    }

    /// Forget `name` after the node removed its class.
    pub(crate) fn forget(&self, name: &str) -> bool {
        self.loaded
            .lock()
            .map(|mut m| m.remove(name).is_some())
            .unwrap_or(false)
    }
}

/// The PBR daemon's [`ClassFetcher`] on a running node
/// ([`Plugins::pbr_fetcher`]).
#[derive(Debug)]
pub struct RepoFetcher {
    plugins: Arc<Plugins>,
    node: NodeHandle,
    rt: tokio::runtime::Handle,
}

/// The refusal a commit waiting for a failed fetch gives: `unknown-class`
/// when no code server has the plugin or none could be reached,
/// `class-rejected` when it failed its checks. The text is the loader's,
/// cut to 200 characters (it travels in the REFUSE message).
pub fn fetch_refusal(e: &LoaderError) -> Refusal {
    let reason = match e {
        LoaderError::Untrusted { .. } | LoaderError::Module { .. } => Reason::ClassRejected,
        _ => Reason::UnknownClass,
    };
    let mut text = e.to_string();
    if text.len() > 200 {
        let mut cut = 197;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    Refusal::new(reason, text)
}

impl ClassFetcher for RepoFetcher {
    fn fetch(&mut self, name: &str) {
        let (plugins, node, name) = (self.plugins.clone(), self.node.clone(), name.to_string());
        self.rt.spawn(async move {
            let result = match name.parse::<PluginSpec>() {
                Err(e) => Err(Refusal::new(Reason::UnknownClass, e)),
                Ok(spec) => match plugins.loader.load(&spec, None).await {
                    Ok(l) => {
                        for s in &l.steps {
                            tracing::info!(plugin = %spec, "{s}");
                        }
                        plugins.record(&l);
                        Ok(l.class.element_class())
                    }
                    Err(e) => Err(fetch_refusal(&e)),
                },
            };
            let r = node
                .call_daemons(move |n, d| {
                    let now = d.now_ms();
                    if let Some(p) = d.pbr.as_mut() {
                        p.class_fetched(n, now, &name, result);
                    }
                })
                .await;
            if r.is_err() {
                tracing::debug!("pbr: the node stopped before a class fetch finished");
            }
        });
    }
}
