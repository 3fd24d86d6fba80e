//! `routing = "shortest-path"`: Dijkstra over link costs, then one static
//! route per (node, subnet) so nobody writes routes by hand.
//!
//! A subnet is attached to every node that has an address in it. A node's
//! route to a subnet it is not attached to goes to the neighbour that lies on
//! a cheapest path to the nearest attachment; among equal choices the link
//! declared first in the topology wins, so the result is deterministic. Every
//! hop thus strictly decreases the remaining cost (link costs are ≥ 1): the
//! routes are loop-free.

use ipnet::IpNet;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::IpAddr;
use weft_packet::PortId;

/// A link between two node ports, with the ports' addresses.
#[derive(Clone, Debug)]
pub(crate) struct Edge {
    pub a: usize,
    pub b: usize,
    pub cost: u64,
    pub a_port: PortId,
    pub b_port: PortId,
    pub a_addrs: Vec<IpNet>,
    pub b_addrs: Vec<IpNet>,
}

/// A route to install: on `node`, `prefix` via `via` out of `port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PlannedRoute {
    pub node: usize,
    pub prefix: IpNet,
    pub via: IpAddr,
    pub port: PortId,
}

const INF: u64 = u64::MAX;

/// Distances from every node to every other node.
pub(crate) fn all_pairs(n: usize, edges: &[Edge]) -> Vec<Vec<u64>> {
    let mut adj: Vec<Vec<(usize, u64)>> = vec![Vec::new(); n];
    for e in edges {
        adj[e.a].push((e.b, e.cost));
        adj[e.b].push((e.a, e.cost));
    }
    (0..n)
        .map(|s| {
            let mut dist = vec![INF; n];
            dist[s] = 0;
            let mut heap = BinaryHeap::new();
            heap.push(Reverse((0u64, s)));
            while let Some(Reverse((d, u))) = heap.pop() {
                if d > dist[u] {
                    continue;
                }
                for &(v, c) in &adj[u] {
                    let nd = d + c;
                    if nd < dist[v] {
                        dist[v] = nd;
                        heap.push(Reverse((nd, v)));
                    }
                }
            }
            dist
        })
        .collect()
}

/// Plan routes for `subnets` (each with the nodes attached to it).
pub(crate) fn plan(n: usize, edges: &[Edge], subnets: &[(IpNet, Vec<usize>)]) -> Vec<PlannedRoute> {
    let dist = all_pairs(n, edges);
    let to_subnet = |u: usize, att: &[usize]| att.iter().map(|&a| dist[u][a]).min().unwrap_or(INF);
    let mut out = Vec::new();
    for (prefix, att) in subnets {
        for u in 0..n {
            if att.contains(&u) {
                continue;
            }
            let du = to_subnet(u, att);
            if du == INF {
                continue;
            }
            // Links of u in declaration order; the first on a cheapest path
            // with an address of the right family on the far side wins.
            let choice = edges.iter().find_map(|e| {
                let (v, port, far) = if e.a == u {
                    (e.b, e.a_port, &e.b_addrs)
                } else if e.b == u {
                    (e.a, e.b_port, &e.a_addrs)
                } else {
                    return None;
                };
                let dv = to_subnet(v, att);
                if dv == INF || e.cost + dv != du {
                    return None;
                }
                let via = far
                    .iter()
                    .find(|a| a.addr().is_ipv4() == prefix.addr().is_ipv4())
                    .map(|a| a.addr())?;
                Some((via, port))
            });
            match choice {
                Some((via, port)) => out.push(PlannedRoute {
                    node: u,
                    prefix: *prefix,
                    via,
                    port,
                }),
                None => tracing::warn!(%prefix, node = u, "no next hop with an address of the subnet's family"),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(a: usize, b: usize, cost: u64, i: u8) -> Edge {
        Edge {
            a,
            b,
            cost,
            a_port: i as PortId,
            b_port: i as PortId,
            a_addrs: vec![format!("10.0.{i}.1/24").parse().unwrap()],
            b_addrs: vec![format!("10.0.{i}.2/24").parse().unwrap()],
        }
    }

    #[test]
    fn picks_cheapest_and_breaks_ties_by_link_order() {
        // Square 0-1-2-3-0, all cost 1: from 0 to a subnet on 2, links 0-1
        // (declared first) and 3-0 tie.
        let edges = vec![e(0, 1, 1, 1), e(1, 2, 1, 2), e(2, 3, 1, 3), e(3, 0, 1, 4)];
        let s: IpNet = "192.168.0.0/24".parse().unwrap();
        let r = plan(4, &edges, &[(s, vec![2])]);
        let r0 = r.iter().find(|r| r.node == 0).unwrap();
        assert_eq!(r0.via, "10.0.1.2".parse::<IpAddr>().unwrap());
        // Make 0-1 expensive: now via 3.
        let edges = vec![e(0, 1, 5, 1), e(1, 2, 1, 2), e(2, 3, 1, 3), e(3, 0, 1, 4)];
        let r = plan(4, &edges, &[(s, vec![2])]);
        let r0 = r.iter().find(|r| r.node == 0).unwrap();
        assert_eq!(r0.via, "10.0.4.1".parse::<IpAddr>().unwrap());
        assert!(r.iter().all(|r| r.node != 2), "attached node gets no route");
    }
}
