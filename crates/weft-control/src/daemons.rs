//! Starting a node's daemons from its configuration: the one room that
//! knows the runner, the configuration, the plugin loader and the daemons
//! together, so none of them needs to know the others (the PBR daemon is
//! started by [`crate::runner::NodeHandle::enable_pbr`] directly: it needs
//! no loader).

/// Start the signaling daemon of the running node `h` as its configuration
/// `cfg` says (`[signal]`; nothing when absent): rights from `policy` (the
/// API's), code through `plugins` (`[plugins]`; without it every packet
/// module is refused `unsupported`), fetches on the current tokio runtime;
/// server modules when the node has `[plugins]` and `[punt]`.
pub async fn enable_signal(
    h: &crate::runner::NodeHandle,
    cfg: &crate::config::NodeConfig,
    policy: std::sync::Arc<crate::auth::Policy>,
    plugins: Option<&std::sync::Arc<crate::plugins::Plugins>>,
) -> Result<bool, anyhow::Error> {
    let Some(sc) = cfg.signal.as_ref().map(|s| s.get_ref().clone()) else {
        return Ok(false);
    };
    let settings = cfg.plugin_settings()?;
    let repos = settings.as_ref().map(|s| s.repos.clone()).unwrap_or_default();
    let per_instance = settings
        .as_ref()
        .map(|s| (s.host.memory_cap as u64).div_ceil(1 << 20))
        .unwrap_or(0);
    let fetcher = plugins.map(|p| {
        let h2 = h.clone();
        crate::signal::LoaderFetcher::new(
            p.loader().clone(),
            tokio::runtime::Handle::current(),
            std::sync::Arc::new(move || h2.nudge()),
        )
    });
    // Server modules need the loader (code) and the punt (the kernel's TCP
    // on the node's addresses).
    let servers = match (plugins, cfg.punt.is_some()) {
        (Some(p), true) => {
            let host = weft_servers::ServerHost::new().map_err(|e| anyhow::anyhow!("server modules: {e}"))?;
            let h2 = h.clone();
            Some(crate::signal::WasiServers::new(
                host,
                p.loader().clone(),
                tokio::runtime::Handle::current(),
                sc.server_bounds(),
                std::sync::Arc::new(move || h2.nudge()),
            ))
        }
        _ => None,
    };
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    h.enable_signal(move |n, now| {
        let accounts = Box::new(crate::domains::DomainAccounts {
            memory_per_instance_mib: per_instance,
        });
        let mut s = crate::signal::SignalNode::new(n, &sc, policy, repos, accounts, now, unix);
        if let Some(f) = fetcher {
            s.set_fetcher(Box::new(f));
        }
        if let Some(sv) = servers {
            // Replies to the connections the node's kernel opens for the
            // modules' outgoing requests arrive at its ephemeral ports.
            let (lo, hi) = crate::signal::ephemeral_ports();
            n.listen_range(weft_packet::proto::TCP, lo, hi);
            s.set_servers(Box::new(sv));
        }
        s
    })
    .await?;
    Ok(true)
}
