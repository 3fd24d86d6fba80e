//! On-path signaling in the emulator: signaling daemons
//! ([`weft_control::signal::SignalNode`]) on chosen nodes, and requesters
//! on hosts — a [`weft_signal::Agent`] reading a UDP port of the host and
//! sending through its raw-IP path, requests with the Router Alert option —
//! all driven by the virtual clock after every step.
//!
//! Unix time in the emulator is [`EPOCH_S`] plus the virtual clock, for
//! nodes and requesters alike, so request timestamps are fresh and runs
//! repeat exactly.

use super::{EmuError, Emulator};
use crate::host::Host;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use weft_control::auth::Policy;
use weft_control::signal::{ModuleFetcher, NodeAccounts, ServerModules, SignalConfig, SignalNode};
use weft_signal::{
    Agent, AgentConfig, BoxSigner, Event, NullEnv, Request, SessionId, Signed, Signer, SECOND, SIGNAL_PORT,
};

/// Unix time at virtual time 0, s (2027-01-15).
pub const EPOCH_S: u64 = 1_800_000_000;
/// The UDP port a host's requester sends from and receives on.
pub const REQUESTER_PORT: u16 = 40270;

/// What a node's signaling daemon is started with.
pub struct SignalSetup {
    /// Its settings (a seed is derived from the topology's when absent).
    pub config: SignalConfig,
    /// The node's principals.
    pub policy: Arc<Policy>,
    /// The code servers it fetches from.
    pub repos: Vec<String>,
    /// Where module code comes from (None: packet modules are unsupported).
    pub fetcher: Option<Box<dyn ModuleFetcher>>,
    /// The per-instance memory each instance counts for, MiB.
    pub memory_per_instance_mib: u64,
}

/// A host's requester.
pub(crate) struct Requester {
    agent: Agent,
    events: Vec<(u64, Event)>,
    sent: Vec<([u8; 16], u64)>,
}

/// One answer a requester received.
#[derive(Clone, Debug)]
pub struct SignalAnswer {
    /// The response's flags.
    pub flags: u8,
    /// The stack, first node first.
    pub stack: Vec<weft_signal::Entry>,
    /// Virtual time from sending to receiving, ns.
    pub elapsed_ns: u64,
}

fn unix_offset() -> u64 {
    EPOCH_S * SECOND
}

/// The requester's frame for `t` from `src`: IP and UDP (the Router Alert
/// option when asked), without the Ethernet header `send_raw_ip` adds.
fn ip_packet(src: IpAddr, t: &weft_signal::Transmit) -> Option<Vec<u8>> {
    let f = if t.router_alert {
        weft_packet::build::udp_router_alert([0; 6], [0; 6], src, t.dst, REQUESTER_PORT, t.dst_port, 64, &t.payload)
    } else {
        match (src, t.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                weft_packet::build::udp4([0; 6], [0; 6], s, d, REQUESTER_PORT, t.dst_port, 64, &t.payload)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                weft_packet::build::udp6([0; 6], [0; 6], s, d, REQUESTER_PORT, t.dst_port, 64, &t.payload)
            }
            _ => Vec::new(),
        }
    };
    (f.len() > 14).then(|| f[14..].to_vec())
}

impl Requester {
    /// Take what came to the host's port, run timers, send.
    pub(crate) fn poll(&mut self, host: &mut Host, now: u64) -> bool {
        let mut work = false;
        let me: Vec<IpAddr> = self.agent.config().addresses.clone();
        let mut got = host.udp_take(REQUESTER_PORT);
        got.extend(host.udp_take(SIGNAL_PORT));
        for (src, sport, payload) in got {
            work = true;
            let to = me.iter().copied().find(|a| a.is_ipv4() == src.is_ipv4()).unwrap_or(src);
            self.agent
                .handle_datagram(now, SocketAddr::new(src, sport), to, &payload, &mut NullEnv);
        }
        if self.agent.poll_timeout().is_some_and(|t| t <= now) {
            self.agent.handle_timeout(now, &mut NullEnv);
        }
        while let Some(t) = self.agent.poll_transmit() {
            work = true;
            let src = t
                .src
                .or_else(|| me.iter().copied().find(|a| a.is_ipv4() == t.dst.is_ipv4()));
            if let Some(p) = src.and_then(|s| ip_packet(s, &t)) {
                let _ = host.send_raw_ip(&p);
            }
        }
        while let Some(e) = self.agent.poll_event() {
            self.events.push((now, e));
        }
        work
    }

    pub(crate) fn poll_timeout(&self) -> Option<u64> {
        self.agent.poll_timeout()
    }

    fn busy(&self) -> bool {
        self.agent.pending_count() > 0
    }
}

impl Emulator {
    fn node_i(&self, name: &str) -> Result<usize, EmuError> {
        self.node_index(name)
            .ok_or_else(|| EmuError::Topology(format!("no node {name:?}")))
    }

    fn host_i(&self, name: &str) -> Result<usize, EmuError> {
        self.hosts
            .iter()
            .position(|h| h.host.name() == name)
            .ok_or_else(|| EmuError::Topology(format!("no host {name:?}")))
    }

    /// Run a signaling daemon on node `name`, driven by the virtual clock
    /// after every step. Without a seed in its settings, one is derived from
    /// the topology's seed and the node, so runs repeat exactly.
    pub fn enable_signal(&mut self, name: &str, mut s: SignalSetup) -> Result<(), EmuError> {
        let i = self.node_i(name)?;
        s.config
            .seed
            .get_or_insert(self.topo.seed ^ ((i as u64 + 1) << 40) ^ 0x0270);
        let now = self.now_ns;
        let n = &mut self.nodes[i];
        let accounts = Box::new(NodeAccounts {
            memory_per_instance_mib: s.memory_per_instance_mib,
        });
        let mut d = SignalNode::new(
            &mut n.node,
            &s.config,
            s.policy,
            s.repos,
            accounts,
            now,
            unix_offset() + now,
        );
        if let Some(f) = s.fetcher {
            d.set_fetcher(f);
        }
        n.signal = Some(d);
        Ok(())
    }

    /// Stop node `name`'s signaling daemon without signalling (a crash or a
    /// restart): what it installed goes; neighbours hear nothing more. The
    /// node then forwards signaling like a plain router.
    pub fn disable_signal(&mut self, name: &str) {
        if let Some(i) = self.node_index(name) {
            let n = &mut self.nodes[i];
            if let Some(mut s) = n.signal.take() {
                s.stop(&mut n.node);
            }
        }
    }

    /// Let node `name`'s signaling daemon (enabled first) host server
    /// modules through `servers`. The emulated nodes have no TCP: give it
    /// [`weft_control::signal::EmulatedServers`], which starts each module
    /// before the SETUP goes on (no virtual time passes) and serves it on a
    /// loopback port of this machine ([`SignalNode::server_listening`]
    /// says which) while signaling, lifetimes and expiry stay in virtual
    /// time.
    pub fn signal_set_servers(&mut self, name: &str, servers: Box<dyn ServerModules>) -> Result<(), EmuError> {
        let i = self.node_i(name)?;
        let d = self.nodes[i]
            .signal
            .as_mut()
            .ok_or_else(|| EmuError::Topology(format!("node {name} runs no signaling daemon")))?;
        d.set_servers(servers);
        Ok(())
    }

    /// Node `name`'s signaling daemon, if enabled.
    pub fn signal(&self, name: &str) -> Option<&SignalNode> {
        self.node_index(name).and_then(|i| self.nodes[i].signal.as_ref())
    }

    /// A signaling daemon or requester has messages not yet acknowledged
    /// (session timers alone do not count: soft state never idles).
    pub(super) fn signal_busy(&self) -> bool {
        self.nodes
            .iter()
            .any(|n| n.signal.as_ref().is_some_and(|s| s.agent().pending_count() > 0))
            || self
                .hosts
                .iter()
                .any(|h| h.signal.as_ref().is_some_and(Requester::busy))
    }

    /// Make host `name` a signaling requester: it sends from UDP port
    /// [`REQUESTER_PORT`] and takes answers there, and takes requests
    /// addressed to it (a TRIGGER's reverse flow) on port 270.
    pub fn enable_requester(&mut self, name: &str) -> Result<(), EmuError> {
        let i = self.host_i(name)?;
        let seed = self.topo.seed ^ ((i as u64 + 1) << 32) ^ 0x5157;
        let h = &mut self.hosts[i].host;
        h.udp_keep(REQUESTER_PORT)?;
        h.udp_keep(SIGNAL_PORT)?;
        let addrs: Vec<IpAddr> = [h.addr().map(IpAddr::V4), h.addr6().map(IpAddr::V6)]
            .into_iter()
            .flatten()
            .collect();
        let mut cfg = AgentConfig::requester(addrs);
        cfg.unix_offset_ns = unix_offset();
        cfg.initial_seq = seed as u32;
        let mut ns = [0u8; 32];
        ns[..8].copy_from_slice(&seed.to_le_bytes());
        cfg.nonce_seed = ns;
        self.hosts[i].signal = Some(Requester {
            agent: Agent::new(cfg),
            events: Vec::new(),
            sent: Vec::new(),
        });
        Ok(())
    }

    fn requester(&mut self, host: &str) -> Result<(&mut Requester, u64), EmuError> {
        let now = self.now_ns;
        let i = self.host_i(host)?;
        self.hosts[i]
            .signal
            .as_mut()
            .map(|r| (r, now))
            .ok_or_else(|| EmuError::Host(format!("host {host} is no signaling requester")))
    }

    /// `req` signed at host `host` now, with a fresh nonce.
    pub fn signal_sign(&mut self, host: &str, req: Request, signer: &dyn Signer) -> Result<Signed, EmuError> {
        let (r, now) = self.requester(host)?;
        r.agent
            .sign(now, req, signer)
            .map_err(|e| EmuError::Host(format!("{host}: {e}")))
    }

    /// Send `signed` from host `host` toward its destination; returns its
    /// nonce, by which [`Emulator::signal_answer`] finds the answer.
    pub fn signal_send(&mut self, host: &str, signed: Signed) -> Result<[u8; 16], EmuError> {
        let i = self.host_i(host)?;
        let (r, now) = self.requester(host)?;
        let nonce = signed.request().nonce;
        let origin = r.agent.config().addresses[0];
        r.agent
            .send(now, signed, origin, &mut NullEnv)
            .map_err(|e| EmuError::Host(format!("{host}: {e}")))?;
        r.sent.push((nonce, now));
        let EmulatorHost { host: h, signal } = self.host_parts(i);
        if let Some(r) = signal {
            r.poll(h, now);
        }
        Ok(nonce)
    }

    /// Keep re-sending the last SETUP of `session` from host `host` every
    /// `every_ns`, signed anew by `signer`.
    pub fn signal_keep_refreshed(
        &mut self,
        host: &str,
        session: SessionId,
        every_ns: u64,
        signer: BoxSigner,
    ) -> Result<(), EmuError> {
        let (r, now) = self.requester(host)?;
        r.agent
            .keep_refreshed(now, session, every_ns, signer)
            .map_err(|e| EmuError::Host(format!("{host}: {e}")))
    }

    /// Stop refreshing `session` at host `host`.
    pub fn signal_stop_refreshing(&mut self, host: &str, session: SessionId) {
        if let Ok((r, _)) = self.requester(host) {
            r.agent.stop_refreshing(session);
        }
    }

    /// The answer host `host` received to the request with `nonce`.
    pub fn signal_answer(&self, host: &str, nonce: [u8; 16]) -> Option<SignalAnswer> {
        let i = self.host_i(host).ok()?;
        let r = self.hosts[i].signal.as_ref()?;
        let sent = r.sent.iter().find(|(n, _)| *n == nonce).map(|x| x.1)?;
        r.events.iter().find_map(|(t, e)| match e {
            Event::Response {
                nonce: n, flags, stack, ..
            } if *n == nonce => Some(SignalAnswer {
                flags: *flags,
                stack: stack.clone(),
                elapsed_ns: t - sent,
            }),
            _ => None,
        })
    }

    /// Every answer host `host` received (refreshes included), oldest first,
    /// with when it came.
    pub fn signal_answers(&self, host: &str) -> Vec<(u64, Vec<weft_signal::Entry>)> {
        let Ok(i) = self.host_i(host) else { return Vec::new() };
        let Some(r) = self.hosts[i].signal.as_ref() else {
            return Vec::new();
        };
        r.events
            .iter()
            .filter_map(|(t, e)| match e {
                Event::Response { stack, .. } => Some((*t, stack.clone())),
                _ => None,
            })
            .collect()
    }

    /// Run until host `host` has the answer to `nonce`, at most `limit_ns`
    /// of virtual time.
    pub fn run_until_answer(&mut self, host: &str, nonce: [u8; 16], limit_ns: u64) -> Option<SignalAnswer> {
        let ok = self.run_until(
            |e| e.signal_answer(host, nonce).is_some(),
            std::time::Duration::from_nanos(limit_ns),
        );
        if ok {
            self.signal_answer(host, nonce)
        } else {
            None
        }
    }

    fn host_parts(&mut self, i: usize) -> EmulatorHost<'_> {
        let h = &mut self.hosts[i];
        EmulatorHost {
            host: &mut h.host,
            signal: h.signal.as_mut(),
        }
    }
}

struct EmulatorHost<'a> {
    host: &'a mut Host,
    signal: Option<&'a mut Requester>,
}
