//! Port backends in the node configuration file: `[[port]] kind = "mem" |
//! "vxlan" | "afpacket"`, and `[punt]` (node-local traffic to a kernel TUN
//! interface). `docs/config.md` and `docs/ports.md` document them.
//!
//! Parsing and [`crate::config::apply`] stay free of side effects except
//! reading an `afpacket` interface's MAC and MTU from sysfs; sockets are
//! opened only by [`open_drivers`] / [`open_punt`], which `weft node run`
//! calls (so `weft node check` opens nothing).

use super::{ConfigError, NodeConfig, PortSection, Source};
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use toml::Spanned;
use weft_dataplane::{Node, PortConfig};
use weft_io::afpacket::{interface_info, AfPacketPort};
use weft_io::tun::TunPunt;
use weft_io::vxlan::{VxlanConfig, VxlanPort, DEFAULT_DSTPORT, MAX_VNI};
use weft_io::Drivers;

/// Default inner MTU of a VXLAN port: Linux's for a `vxlan` device over a
/// 1500-byte underlay (1500 − 50 bytes of outer headers).
pub const VXLAN_MTU: u16 = 1450;

/// `[punt]`: which node-local traffic goes to the kernel, and through which
/// TUN interface.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PuntSection {
    /// An existing TUN interface (`ip tuntap add NAME mode tun`) that
    /// carries the node's addresses.
    pub tun: Spanned<String>,
    /// TCP ports to punt (e.g. the API's `[api] tcp` port).
    #[serde(default)]
    pub tcp: Vec<u16>,
    /// UDP ports to punt.
    #[serde(default)]
    pub udp: Vec<u16>,
}

/// How a port is backed, resolved from its `[[port]]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// No driver: frames move only through the node handle.
    Mem,
    /// A VXLAN tunnel on a UDP socket.
    Vxlan(VxlanConfig),
    /// AF_PACKET on an interface.
    AfPacket {
        /// The interface.
        ifname: String,
    },
}

fn sock_addr(s: &Spanned<String>, default_port: u16, src: &Source) -> Result<SocketAddr, ConfigError> {
    let t = s.get_ref().trim();
    if let Ok(a) = t.parse::<SocketAddr>() {
        return Ok(a);
    }
    match t.parse::<IpAddr>() {
        Ok(ip) => Ok(SocketAddr::new(ip, default_port)),
        Err(_) => Err(src.error(
            s.span(),
            format!("{t:?} is not an address (`IP` or `IP:PORT`, `[IPv6]:PORT`)"),
        )),
    }
}

/// The node port and backend a `[[port]]` table describes.
pub(super) fn resolve(src: &Source, p: &Spanned<PortSection>) -> Result<(PortConfig, Backend), ConfigError> {
    let ps = p.get_ref();
    let name = ps.name.get_ref().clone();
    let kind = ps.kind.as_ref().map(|k| k.get_ref().as_str()).unwrap_or("mem");
    let kind_span = ps.kind.as_ref().map(|k| k.span()).unwrap_or(p.span());
    let only = |field: &str, present: bool, span: Option<std::ops::Range<usize>>| -> Result<(), ConfigError> {
        if present {
            Err(src.error(
                span.unwrap_or(p.span()),
                format!("`{field}` is not a setting of kind = {kind:?} ports"),
            ))
        } else {
            Ok(())
        }
    };
    let need_mac = |what: &str| -> Result<[u8; 6], ConfigError> {
        ps.mac
            .map(|m| m.0)
            .ok_or_else(|| src.error(p.span(), format!("a {what} port needs `mac = \"02:…\"`")))
    };
    let mtu = ps.mtu.as_ref().map(|m| *m.get_ref());
    if let Some(m) = &ps.mtu {
        if *m.get_ref() < 68 {
            return Err(src.error(m.span(), "the MTU must be at least 68"));
        }
    }
    match kind {
        "mem" => {
            for (f, s) in [("local", &ps.local), ("remote", &ps.remote), ("ifname", &ps.ifname)] {
                only(f, s.is_some(), s.as_ref().map(|x| x.span()))?;
            }
            only("vni", ps.vni.is_some(), ps.vni.as_ref().map(|x| x.span()))?;
            only("dstport", ps.dstport.is_some(), ps.dstport.as_ref().map(|x| x.span()))?;
            let pc = PortConfig {
                name,
                mac: need_mac("mem")?,
                mtu: mtu.unwrap_or(1500),
                addrs: ps.addrs.clone(),
            };
            Ok((pc, Backend::Mem))
        }
        "vxlan" => {
            only("ifname", ps.ifname.is_some(), ps.ifname.as_ref().map(|x| x.span()))?;
            let dport = ps.dstport.as_ref().map(|d| *d.get_ref()).unwrap_or(DEFAULT_DSTPORT);
            let missing = |f: &str| src.error(p.span(), format!("a vxlan port needs `{f}`"));
            let local = sock_addr(ps.local.as_ref().ok_or_else(|| missing("local"))?, dport, src)?;
            let remote = sock_addr(ps.remote.as_ref().ok_or_else(|| missing("remote"))?, dport, src)?;
            let vni = ps.vni.as_ref().ok_or_else(|| missing("vni"))?;
            if *vni.get_ref() > MAX_VNI {
                return Err(src.error(vni.span(), format!("a VNI has 24 bits (at most {MAX_VNI})")));
            }
            if local.is_ipv4() != remote.is_ipv4() {
                return Err(src.error(
                    ps.remote.as_ref().map(|r| r.span()).unwrap_or(p.span()),
                    "`local` and `remote` must be of one address family",
                ));
            }
            let mtu = mtu.unwrap_or(VXLAN_MTU);
            let pc = PortConfig {
                name,
                mac: need_mac("vxlan")?,
                mtu,
                addrs: ps.addrs.clone(),
            };
            let vc = VxlanConfig {
                local,
                remote,
                vni: *vni.get_ref(),
                mtu,
            };
            Ok((pc, Backend::Vxlan(vc)))
        }
        "afpacket" => {
            for (f, s) in [("local", &ps.local), ("remote", &ps.remote)] {
                only(f, s.is_some(), s.as_ref().map(|x| x.span()))?;
            }
            only("vni", ps.vni.is_some(), ps.vni.as_ref().map(|x| x.span()))?;
            only("dstport", ps.dstport.is_some(), ps.dstport.as_ref().map(|x| x.span()))?;
            let ifname = ps.ifname.as_ref().map(|i| i.get_ref().clone()).unwrap_or(name.clone());
            let if_span = ps.ifname.as_ref().map(|i| i.span()).unwrap_or(ps.name.span());
            let info = interface_info(&ifname).map_err(|e| src.error(if_span.clone(), e.to_string()))?;
            let if_mtu = info.mtu.unwrap_or(1500);
            if let (Some(m), Some(sm)) = (mtu, &ps.mtu) {
                if m > if_mtu {
                    return Err(src.error(sm.span(), format!("MTU {m} is larger than {ifname}'s ({if_mtu})")));
                }
            }
            let mac = match ps.mac {
                Some(m) => m.0,
                None => info
                    .mac
                    .ok_or_else(|| src.error(if_span, format!("cannot read {ifname}'s MAC; set `mac`")))?,
            };
            let pc = PortConfig {
                name,
                mac,
                mtu: mtu.unwrap_or(if_mtu),
                addrs: ps.addrs.clone(),
            };
            Ok((pc, Backend::AfPacket { ifname }))
        }
        other => Err(src.error(kind_span, format!("unknown port kind {other:?} (mem, vxlan, afpacket)"))),
    }
}

impl NodeConfig {
    /// Each `[[port]]`'s backend, in file order.
    pub fn port_backends(&self) -> Result<Vec<(String, Backend)>, ConfigError> {
        self.ports
            .iter()
            .map(|p| resolve(&self.source, p).map(|(pc, b)| (pc.name, b)))
            .collect()
    }
}

/// Open the drivers of the configuration's socket ports (after
/// [`crate::config::apply`] created the node's ports). Errors point at the
/// port's table.
pub fn open_drivers(cfg: &NodeConfig, node: &Node) -> Result<Drivers, ConfigError> {
    let mut out: Drivers = Vec::new();
    for p in &cfg.ports {
        let (pc, backend) = resolve(&cfg.source, p)?;
        let at = |e: std::io::Error| cfg.source.error(p.span(), format!("port {}: {e}", pc.name));
        let pid = node
            .port_id(&pc.name)
            .map_err(|e| cfg.source.error(p.span(), e.to_string()))?;
        match backend {
            Backend::Mem => {}
            Backend::Vxlan(vc) => out.push((pid, Box::new(VxlanPort::open(vc).map_err(at)?))),
            Backend::AfPacket { ifname } => {
                out.push((pid, Box::new(AfPacketPort::open(&ifname, pc.mtu).map_err(at)?)));
            }
        }
    }
    Ok(out)
}

/// Attach the `[punt]` TUN interface and make the node listen on the punted
/// ports. `None` without a `[punt]` section.
pub fn open_punt(cfg: &NodeConfig, node: &mut Node) -> Result<Option<TunPunt>, ConfigError> {
    let Some(p) = &cfg.punt else { return Ok(None) };
    let ps = p.get_ref();
    let t = TunPunt::open(ps.tun.get_ref()).map_err(|e| cfg.source.error(ps.tun.span(), e.to_string()))?;
    for &port in &ps.tcp {
        node.listen(weft_packet::proto::TCP, port);
    }
    for &port in &ps.udp {
        node.listen(weft_packet::proto::UDP, port);
    }
    Ok(Some(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        let c = NodeConfig::parse(text, "n.toml").unwrap();
        match c.build() {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn vxlan_ports_resolve_with_defaults() {
        let c = NodeConfig::parse(
            r#"
[node]
name = "r1"
[[port]]
name = "l0"
kind = "vxlan"
mac = "02:00:00:00:00:01"
local = "127.0.0.1"
remote = "127.0.0.1:4800"
vni = 7
addrs = ["10.0.0.1/24"]
"#,
            "n.toml",
        )
        .unwrap();
        let b = c.port_backends().unwrap();
        assert_eq!(
            b[0].1,
            Backend::Vxlan(VxlanConfig {
                local: "127.0.0.1:4789".parse().unwrap(),
                remote: "127.0.0.1:4800".parse().unwrap(),
                vni: 7,
                mtu: VXLAN_MTU,
            })
        );
        let (node, _) = c.build().unwrap();
        assert_eq!(node.ports()[0].cfg.mtu, VXLAN_MTU);
    }

    #[test]
    fn bad_port_tables_name_the_line() {
        let head = "[node]\nname = \"r1\"\n[[port]]\nname = \"p\"\nmac = \"02:00:00:00:00:01\"\n";
        let e = err(&format!("{head}kind = \"tap\"\n"));
        assert!(e.starts_with("n.toml:6:") && e.contains("unknown port kind"), "{e}");
        let e = err(&format!(
            "{head}kind = \"vxlan\"\nlocal = \"127.0.0.1\"\nremote = \"x\"\nvni = 1\n"
        ));
        assert!(e.starts_with("n.toml:8:") && e.contains("not an address"), "{e}");
        let e = err(&format!(
            "{head}kind = \"vxlan\"\nlocal = \"127.0.0.1\"\nremote = \"127.0.0.2\"\nvni = 16777216\n"
        ));
        assert!(e.starts_with("n.toml:9:") && e.contains("24 bits"), "{e}");
        let e = err(&format!("{head}kind = \"vxlan\"\nlocal = \"127.0.0.1\"\nvni = 1\n"));
        assert!(e.contains("needs `remote`"), "{e}");
        let e = err(&format!("{head}ifname = \"eth0\"\n"));
        assert!(e.starts_with("n.toml:6:") && e.contains("`ifname`"), "{e}");
        let e = err(&format!("{head}kind = \"afpacket\"\nifname = \"no-such-if-weft\"\n"));
        assert!(e.starts_with("n.toml:7:") && e.contains("no interface"), "{e}");
        let e = err("[node]\nname = \"r1\"\n[[port]]\nname = \"p\"\n");
        assert!(e.contains("needs `mac"), "{e}");
    }

    #[test]
    fn afpacket_port_takes_the_interfaces_mtu() {
        let c = NodeConfig::parse(
            "[node]\nname = \"r1\"\n[[port]]\nname = \"lo\"\nkind = \"afpacket\"\nmac = \"02:00:00:00:00:01\"\n",
            "n.toml",
        )
        .unwrap();
        let (node, _) = c.build().unwrap();
        let want = interface_info("lo").unwrap().mtu.unwrap();
        assert_eq!(node.ports()[0].cfg.mtu, want);
    }
}
