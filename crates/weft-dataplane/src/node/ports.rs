//! Ports, their addresses, routes and static neighbours: the control
//! side of the node's interfaces and its FIB. Each change marks the
//! snapshot stale ([`Node::mark_stale`]); the data path sees it from the
//! next batch on.

use super::{Node, NodeError, PortStats};
use crate::fib::{Route, RouteKind};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv6Addr};
use weft_packet::{Mac, PortId};

/// How a port is set up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortConfig {
    /// Name (e.g. `eth0`).
    pub name: String,
    /// MAC address.
    pub mac: Mac,
    /// IP MTU in bytes (Ethernet: 1500).
    pub mtu: u16,
    /// Addresses with their on-link prefix, e.g. `10.0.1.1/24`.
    pub addrs: Vec<IpNet>,
}

pub(super) struct Port {
    pub(super) cfg: PortConfig,
    pub(super) up: bool,
    pub(super) link_local: Ipv6Addr,
    pub(super) stats: PortStats,
}

/// A port as listed by [`Node::ports`].
#[derive(Clone, Debug, Serialize)]
pub struct PortInfo {
    /// Port number.
    pub id: PortId,
    /// Configuration.
    #[serde(flatten)]
    pub cfg: PortConfig,
    /// IPv6 link-local address (EUI-64 from the MAC).
    pub link_local: Ipv6Addr,
    /// Link state.
    pub up: bool,
    /// Counters.
    pub stats: PortStats,
}

fn eui64_link_local(mac: Mac) -> Ipv6Addr {
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        mac[0] ^ 0x02,
        mac[1],
        mac[2],
        0xff,
        0xfe,
        mac[3],
        mac[4],
        mac[5],
    ])
}

impl Node {
    /// Add a port; its addresses' prefixes become connected routes.
    pub fn add_port(&mut self, cfg: PortConfig) -> Result<PortId, NodeError> {
        if self.ports.iter().any(|p| p.cfg.name == cfg.name) {
            return Err(NodeError::PortExists(cfg.name));
        }
        let id = self.ports.len() as PortId;
        let link_local = eui64_link_local(cfg.mac);
        let addrs = cfg.addrs.clone();
        self.ports.push(Port {
            cfg: PortConfig { addrs: vec![], ..cfg },
            up: true,
            link_local,
            stats: PortStats::default(),
        });
        self.tx.push(Vec::with_capacity(64));
        for a in addrs {
            self.add_address_inner(id, a);
        }
        self.mark_stale();
        Ok(id)
    }

    /// The port called `name` (or numbered so).
    pub fn port_id(&self, name: &str) -> Result<PortId, NodeError> {
        if let Some(i) = self.ports.iter().position(|p| p.cfg.name == name) {
            return Ok(i as PortId);
        }
        match name.parse::<usize>() {
            Ok(i) if i < self.ports.len() => Ok(i as PortId),
            _ => Err(NodeError::UnknownPort(name.to_string())),
        }
    }

    /// Number of ports.
    pub fn port_count(&self) -> usize {
        self.ports.len()
    }

    /// The ports.
    pub fn ports(&self) -> Vec<PortInfo> {
        self.ports
            .iter()
            .enumerate()
            .map(|(i, p)| PortInfo {
                id: i as PortId,
                cfg: p.cfg.clone(),
                link_local: p.link_local,
                up: p.up,
                stats: p.stats,
            })
            .collect()
    }

    /// The MAC address of a port.
    pub fn port_mac(&self, port: PortId) -> Option<Mac> {
        self.ports.get(port as usize).map(|p| p.cfg.mac)
    }

    /// Set a port's link state; a down port neither receives nor sends.
    pub fn set_port_up(&mut self, port: PortId, up: bool) -> Result<(), NodeError> {
        let p = self
            .ports
            .get_mut(port as usize)
            .ok_or_else(|| NodeError::UnknownPort(port.to_string()))?;
        if p.up != up {
            p.up = up;
            tracing::info!(node = %self.name, port, up, "link state changed");
        }
        Ok(())
    }

    /// Add an address to a port (its prefix becomes a connected route).
    pub fn add_address(&mut self, port: PortId, addr: IpNet) -> Result<(), NodeError> {
        if port as usize >= self.ports.len() {
            return Err(NodeError::UnknownPort(port.to_string()));
        }
        self.add_address_inner(port, addr);
        self.mark_stale();
        Ok(())
    }

    fn add_address_inner(&mut self, port: PortId, addr: IpNet) {
        let p = &mut self.ports[port as usize];
        if !p.cfg.addrs.contains(&addr) {
            p.cfg.addrs.push(addr);
        }
        if addr.prefix_len() < addr.max_prefix_len() {
            self.routes.insert(Route {
                prefix: addr.trunc(),
                via: None,
                port,
                kind: RouteKind::Connected,
            });
        }
    }

    /// Remove an address (and its connected route).
    pub fn remove_address(&mut self, port: PortId, addr: IpNet) -> Result<(), NodeError> {
        let p = self
            .ports
            .get_mut(port as usize)
            .ok_or_else(|| NodeError::UnknownPort(port.to_string()))?;
        p.cfg.addrs.retain(|a| *a != addr);
        if let Some(r) = self.routes.lookup(addr.addr()) {
            if r.kind == RouteKind::Connected && r.prefix == addr.trunc() && r.port == port {
                self.routes.remove(&addr.trunc());
            }
        }
        self.mark_stale();
        Ok(())
    }

    /// All addresses of the node with their ports.
    pub fn addresses(&self) -> Vec<(PortId, IpNet)> {
        self.ports
            .iter()
            .enumerate()
            .flat_map(|(i, p)| p.cfg.addrs.iter().map(move |a| (i as PortId, *a)))
            .collect()
    }

    // ----- routes and neighbours -------------------------------------------

    /// Add a static route. A gateway must be on a connected network; the
    /// port is then taken from that network when `port` is None. Refused
    /// with [`NodeError::RouteExists`] when the table has a route for
    /// exactly `prefix` (of any kind), as `ip route add` refuses ("File
    /// exists"): [`Node::replace_route`] changes a route.
    pub fn add_route(&mut self, prefix: IpNet, via: Option<IpAddr>, port: Option<PortId>) -> Result<(), NodeError> {
        if self.routes.get(&prefix).is_some() {
            return Err(NodeError::RouteExists(prefix.trunc()));
        }
        self.replace_route(prefix, via, port)
    }

    /// Add a static route or replace the route for exactly `prefix`, as `ip
    /// route replace` does; otherwise as [`Node::add_route`].
    pub fn replace_route(&mut self, prefix: IpNet, via: Option<IpAddr>, port: Option<PortId>) -> Result<(), NodeError> {
        let port = match (via, port) {
            (_, Some(p)) if (p as usize) < self.ports.len() => p,
            (_, Some(p)) => return Err(NodeError::UnknownPort(p.to_string())),
            (Some(gw), None) => match self.routes.lookup(gw) {
                Some(r) if r.kind == RouteKind::Connected => r.port,
                _ => return Err(NodeError::GatewayNotOnLink(gw)),
            },
            (None, None) => return Err(NodeError::UnknownPort("(none given)".into())),
        };
        self.routes.insert(Route {
            prefix: prefix.trunc(),
            via,
            port,
            kind: RouteKind::Static,
        });
        self.mark_stale();
        Ok(())
    }

    /// Remove the route for exactly `prefix`.
    pub fn remove_route(&mut self, prefix: IpNet) -> Result<(), NodeError> {
        self.routes.remove(&prefix).ok_or(NodeError::UnknownRoute(prefix))?;
        self.mark_stale();
        Ok(())
    }

    /// The routing table.
    pub fn routes(&self) -> Vec<Route> {
        self.routes.routes()
    }

    /// The FIB's answer for `dst` (longest prefix match), as the data path
    /// would use it: `(port, next hop, kind)`; for the node's own addresses
    /// the kind is [`RouteKind::Local`].
    pub fn lookup_route(&mut self, dst: IpAddr) -> Option<(PortId, IpAddr, RouteKind)> {
        self.publish_if_stale();
        let r = self.pipeline.fib.lookup(dst)?;
        Some((r.port, r.next_hop(dst), r.kind))
    }

    /// Add a permanent neighbour entry.
    pub fn add_neighbor(&mut self, port: PortId, ip: IpAddr, mac: Mac) -> Result<(), NodeError> {
        if port as usize >= self.ports.len() {
            return Err(NodeError::UnknownPort(port.to_string()));
        }
        let waiting = self.neigh.learn(port, ip, mac, true);
        for p in waiting {
            self.send_l2(port, mac, p);
        }
        Ok(())
    }

    /// The neighbour table.
    pub fn neighbors(&self) -> Vec<(PortId, IpAddr, crate::neigh::Neighbor)> {
        self.neigh.entries()
    }
}
