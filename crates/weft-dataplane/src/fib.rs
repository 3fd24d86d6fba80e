//! The forwarding information base: longest-prefix match for IPv4 and IPv6 on
//! `prefix-trie` (a maintained trie crate), holding connected and static
//! routes.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::PrefixMap;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use weft_packet::PortId;

/// How a route was learned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteKind {
    /// From an address on a port (the prefix is on-link).
    Connected,
    /// Configured by an operator.
    Static,
    /// One of the node's own addresses (a host route; delivered, not
    /// forwarded). Only in the pipeline snapshot, never configured.
    Local,
}

/// A route: prefix → port and optional gateway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Destination prefix.
    pub prefix: IpNet,
    /// Gateway; `None` means on-link (the destination itself is the next hop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<IpAddr>,
    /// Outgoing port.
    pub port: PortId,
    /// Origin.
    pub kind: RouteKind,
}

impl Route {
    /// The next hop for `dst` on this route.
    #[inline]
    pub fn next_hop(&self, dst: IpAddr) -> IpAddr {
        self.via.unwrap_or(dst)
    }
}

/// Longest-prefix-match tables for both families.
#[derive(Clone, Default)]
pub struct Fib {
    v4: PrefixMap<Ipv4Net, Route>,
    v6: PrefixMap<Ipv6Net, Route>,
}

impl std::fmt::Debug for Fib {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.routes()).finish()
    }
}

impl Fib {
    /// Insert or replace the route for `r.prefix` (host bits are cleared).
    pub fn insert(&mut self, mut r: Route) -> Option<Route> {
        r.prefix = r.prefix.trunc();
        match r.prefix {
            IpNet::V4(p) => self.v4.insert(p, r),
            IpNet::V6(p) => self.v6.insert(p, r),
        }
    }

    /// Remove the route for exactly `prefix`.
    pub fn remove(&mut self, prefix: &IpNet) -> Option<Route> {
        match prefix.trunc() {
            IpNet::V4(p) => self.v4.remove(&p),
            IpNet::V6(p) => self.v6.remove(&p),
        }
    }

    /// Longest-prefix match for an IPv4 destination.
    #[inline]
    pub fn lookup_v4(&self, dst: Ipv4Addr) -> Option<&Route> {
        // A /32 prefix of the address always constructs.
        let key = Ipv4Net::new_assert(dst, 32);
        self.v4.get_lpm(&key).map(|(_, r)| r)
    }

    /// Longest-prefix match for an IPv6 destination.
    #[inline]
    pub fn lookup_v6(&self, dst: Ipv6Addr) -> Option<&Route> {
        let key = Ipv6Net::new_assert(dst, 128);
        self.v6.get_lpm(&key).map(|(_, r)| r)
    }

    /// The route for exactly `prefix` (host bits are cleared), if any.
    pub fn get(&self, prefix: &IpNet) -> Option<&Route> {
        match prefix.trunc() {
            IpNet::V4(p) => self.v4.get(&p),
            IpNet::V6(p) => self.v6.get(&p),
        }
    }

    /// Longest-prefix match for either family.
    pub fn lookup(&self, dst: IpAddr) -> Option<&Route> {
        match dst {
            IpAddr::V4(a) => self.lookup_v4(a),
            IpAddr::V6(a) => self.lookup_v6(a),
        }
    }

    /// All routes, IPv4 first, in prefix order.
    pub fn routes(&self) -> Vec<Route> {
        self.v4
            .iter()
            .map(|(_, r)| r.clone())
            .chain(self.v6.iter().map(|(_, r)| r.clone()))
            .collect()
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn r(p: &str, port: u16) -> Route {
        Route {
            prefix: p.parse().unwrap(),
            via: None,
            port,
            kind: RouteKind::Static,
        }
    }

    #[test]
    fn lpm_v4_v6() {
        let mut f = Fib::default();
        f.insert(r("0.0.0.0/0", 1));
        f.insert(r("10.0.0.0/8", 2));
        f.insert(r("10.1.0.0/16", 3));
        f.insert(r("2001:db8::/32", 4));
        assert_eq!(f.lookup("10.1.2.3".parse().unwrap()).unwrap().port, 3);
        assert_eq!(f.lookup("10.2.2.3".parse().unwrap()).unwrap().port, 2);
        assert_eq!(f.lookup("192.0.2.1".parse().unwrap()).unwrap().port, 1);
        assert_eq!(f.lookup("2001:db8::1".parse().unwrap()).unwrap().port, 4);
        assert!(f.lookup("2001:db9::1".parse().unwrap()).is_none());
        f.remove(&"10.1.0.0/16".parse().unwrap());
        assert_eq!(f.lookup("10.1.2.3".parse().unwrap()).unwrap().port, 2);
    }

    proptest! {
        #[test]
        fn matches_naive(routes in proptest::collection::vec((any::<u32>(), 0u8..=32), 1..40), dsts in proptest::collection::vec(any::<u32>(), 1..40)) {
            let mut f = Fib::default();
            let mut naive: Vec<(Ipv4Net, u16)> = vec![];
            for (i, (a, l)) in routes.iter().enumerate() {
                let p = Ipv4Net::new(Ipv4Addr::from(*a), *l).unwrap().trunc();
                f.insert(Route { prefix: IpNet::V4(p), via: None, port: i as u16, kind: RouteKind::Static });
                naive.retain(|(q, _)| *q != p);
                naive.push((p, i as u16));
            }
            for d in dsts {
                let d = Ipv4Addr::from(d);
                let want = naive.iter().filter(|(p, _)| p.contains(&d)).max_by_key(|(p, _)| p.prefix_len()).map(|(_, port)| *port);
                prop_assert_eq!(f.lookup_v4(d).map(|r| r.port), want);
            }
        }
    }
}
