//! AF_PACKET ports on an existing interface (veth, NIC): one raw socket
//! per port, a memory-mapped `TPACKET_V3` receive ring (no system call and
//! no socket-buffer accounting per frame) and `sendmmsg` for transmit. See
//! `docs/ports.md` for the ring's layout and sizes, and the measurements.
//!
//! * The socket is bound to the interface, receives every ethertype, puts
//!   the interface into promiscuous mode (so frames for the node's MAC
//!   arrive even when it differs from the interface's), ignores the
//!   node's own outgoing frames (`PACKET_IGNORE_OUTGOING`, and the packet
//!   type as a fallback) and bypasses the qdisc on transmit.
//! * MTU and MAC come from the interface ([`interface_info`]).
//! * Link state is read from `/sys/class/net/IF/{operstate,carrier}` a few
//!   times a second ([`PortDriver::link_up`]) through descriptors opened
//!   once, with the port ([`LinkWatch`]): reading needs no new descriptor,
//!   so a process out of descriptors still knows its links, and a read that
//!   fails is reported as an error, never as a link down. A vanished
//!   interface is a link down, not a crash. The kernel's ring drops
//!   (`PACKET_STATISTICS`) are read at the same time and counted as
//!   `ring-full`.

use crate::driver::{check_frame_len, IoCounters, LinkInfo, PortDriver};
use crate::sys::{self, RxRing};
use crate::vxlan::send_all;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use weft_dataplane::Node;
use weft_packet::{Batch, Mac};

/// Receive ring block: 1 MiB holds about 7,280 minimum-size frames (144
/// bytes each with the ring's header) or 655 full-size ones, so at high
/// rates one hand-over carries thousands of frames.
pub const RING_BLOCK: usize = 1 << 20;
/// Receive ring blocks: 64 MiB per port, about 466,000 minimum-size frames
/// (a 16 MiB socket buffer held 20,165: each queued frame is charged its
/// skb's 832-byte truesize there).
pub const RING_BLOCKS: usize = 64;
/// A block the kernel has started filling is handed over after this long
/// even if not full: the latency a lightly loaded port adds, at most (the
/// kernel's unit is milliseconds; 1 is the least).
pub const RING_RETIRE_MS: u32 = 1;
const PACKET_OUTGOING: u8 = 4;

/// Read an interface's MAC and MTU from sysfs.
pub fn interface_info(ifname: &str) -> io::Result<LinkInfo> {
    let dir = std::path::Path::new("/sys/class/net").join(ifname);
    if !dir.exists() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no interface {ifname:?}"),
        ));
    }
    let mac = std::fs::read_to_string(dir.join("address"))
        .ok()
        .and_then(|s| parse_mac(s.trim()));
    let mtu = std::fs::read_to_string(dir.join("mtu"))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .map(|m| m.min(u16::MAX as u32) as u16);
    Ok(LinkInfo { mac, mtu })
}

fn parse_mac(s: &str) -> Option<Mac> {
    let mut m = [0u8; 6];
    let mut parts = s.split(':');
    for b in m.iter_mut() {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(m)
}

/// An interface's link state from sysfs, through files opened once.
#[derive(Debug)]
pub struct LinkWatch {
    operstate: std::fs::File,
    carrier: std::fs::File,
}

impl LinkWatch {
    /// Open `/sys/class/net/IFNAME/{operstate,carrier}`.
    pub fn open(ifname: &str) -> io::Result<LinkWatch> {
        let dir = std::path::Path::new("/sys/class/net").join(ifname);
        let open = |f: &str| {
            std::fs::File::open(dir.join(f))
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.join(f).display())))
        };
        Ok(LinkWatch {
            operstate: open("operstate")?,
            carrier: open("carrier")?,
        })
    }

    /// Up with a carrier? Reads the open files again from their start
    /// (sysfs makes the text anew on every read at offset 0).
    pub fn read(&self) -> io::Result<bool> {
        use std::os::unix::fs::FileExt;
        let read = |f: &std::fs::File| -> io::Result<Option<String>> {
            let mut b = [0u8; 32];
            match f.read_at(&mut b, 0) {
                Ok(n) => Ok(Some(String::from_utf8_lossy(&b[..n]).trim().to_string())),
                // The interface is gone: its link is down.
                Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
                // `carrier` of an interface that is administratively down.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(Some(String::new())),
                Err(e) => Err(e),
            }
        };
        let Some(oper) = read(&self.operstate)? else {
            return Ok(false);
        };
        let Some(carrier) = read(&self.carrier)? else {
            return Ok(false);
        };
        Ok(matches!(oper.as_str(), "up" | "unknown") && carrier == "1")
    }
}

/// Whether the interface is up with a carrier, from sysfs (opening the
/// files: a port keeps a [`LinkWatch`] instead).
pub fn link_is_up(ifname: &str) -> bool {
    let dir = std::path::Path::new("/sys/class/net").join(ifname);
    let oper = std::fs::read_to_string(dir.join("operstate")).unwrap_or_default();
    let carrier = std::fs::read_to_string(dir.join("carrier")).unwrap_or_default();
    matches!(oper.trim(), "up" | "unknown") && carrier.trim() == "1"
}

/// An AF_PACKET port.
pub struct AfPacketPort {
    // Field order: the ring is unmapped before the socket closes.
    rx: RxRing,
    fd: OwnedFd,
    link: Option<LinkWatch>,
    ifname: String,
    mtu: u16,
    counters: IoCounters,
}

impl std::fmt::Debug for AfPacketPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfPacketPort")
            .field("ifname", &self.ifname)
            .field("mtu", &self.mtu)
            .finish()
    }
}

impl AfPacketPort {
    /// Open a port on interface `ifname` (needs CAP_NET_RAW) for a node
    /// port whose IP MTU is `mtu`.
    pub fn open(ifname: &str, mtu: u16) -> io::Result<AfPacketPort> {
        let ifindex =
            sys::if_index(ifname).map_err(|e| io::Error::new(e.kind(), format!("interface {ifname:?}: {e}")))?;
        let fd = sys::packet_socket()?;
        let raw = fd.as_raw_fd();
        let rx = RxRing::new(raw, RING_BLOCK, RING_BLOCKS, RING_RETIRE_MS)
            .map_err(|e| io::Error::new(e.kind(), format!("{ifname}: TPACKET_V3 receive ring: {e}")))?;
        sys::packet_bind(raw, ifindex)?;
        sys::packet_promisc(raw, ifindex)?;
        if let Err(e) = sys::setsockopt_int(raw, libc::SOL_PACKET, sys::PACKET_IGNORE_OUTGOING, 1) {
            tracing::debug!(error = %e, "PACKET_IGNORE_OUTGOING unsupported; filtering by packet type");
        }
        if let Err(e) = sys::setsockopt_int(raw, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, 1) {
            tracing::debug!(error = %e, "PACKET_QDISC_BYPASS unsupported");
        }
        sys::grow_buffers(raw, 8 << 20);
        // sysfs shows the namespace it was mounted in (`ip netns exec`
        // mounts the right one); where it shows another, the link is not
        // watched rather than reported down.
        let link = LinkWatch::open(ifname)
            .map_err(|e| tracing::warn!(ifname, error = %e, "link state will not be watched"))
            .ok();
        Ok(AfPacketPort {
            rx,
            fd,
            link,
            ifname: ifname.to_string(),
            mtu,
            counters: IoCounters::default(),
        })
    }

    /// The interface.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Add the kernel's drops since the last call (`PACKET_STATISTICS`):
    /// frames that found the ring full.
    fn read_kernel_stats(&mut self) {
        match sys::packet_stats(self.fd.as_raw_fd()) {
            Ok((_, drops, _)) => self.counters.drop_n("ring-full", drops as u64),
            Err(e) => tracing::trace!(error = %e, ifname = %self.ifname, "PACKET_STATISTICS"),
        }
        let bad = std::mem::take(&mut self.rx.bad_blocks);
        self.counters.drop_n("ring-bad-block", bad);
    }
}

impl PortDriver for AfPacketPort {
    fn kind(&self) -> &'static str {
        "afpacket"
    }

    fn describe(&self) -> String {
        format!("afpacket {}", self.ifname)
    }

    fn recv(&mut self, node: &mut Node, out: &mut Batch, max: usize) -> usize {
        let (mtu, c) = (self.mtu, &mut self.counters);
        let mut got = 0;
        self.rx.recv(max, |f| {
            if f.pkttype == PACKET_OUTGOING {
                return;
            }
            if f.len > f.data.len() {
                c.drop("oversize");
                return;
            }
            if let Err(r) = check_frame_len(f.data.len(), mtu) {
                c.drop(r);
                return;
            }
            c.rx_packets += 1;
            c.rx_bytes += f.data.len() as u64;
            node.alloc_into(out, f.data);
            got += 1;
        });
        got
    }

    fn send(&mut self, node: &mut Node, batch: &mut Batch) {
        send_all(self.fd.as_raw_fd(), &[], None, batch, &mut self.counters);
        for p in batch.drain(..) {
            node.recycle(p);
        }
    }

    fn fd(&self) -> Option<RawFd> {
        Some(self.fd.as_raw_fd())
    }

    fn link_up(&mut self) -> Option<io::Result<bool>> {
        self.read_kernel_stats();
        self.link.as_ref().map(LinkWatch::read)
    }

    fn ready(&self) -> bool {
        self.rx.ready()
    }

    fn counters(&self) -> &IoCounters {
        &self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_parse() {
        assert_eq!(parse_mac("02:00:00:00:00:0a"), Some([2, 0, 0, 0, 0, 10]));
        assert_eq!(parse_mac("02:00:00:00:00"), None);
        assert_eq!(parse_mac("02:00:00:00:00:00:00"), None);
        assert!(interface_info("no-such-if-weft").is_err());
    }

    #[test]
    fn loopback_info_reads() {
        // `lo` exists in every namespace.
        let i = interface_info("lo").unwrap();
        assert!(i.mtu.unwrap_or(0) >= 1500);
    }

    /// Root only (skips otherwise): bad input on a real veth — runts,
    /// jumbo frames, bad IPv4 checksums, an ARP storm — is counted per
    /// reason, never panics, and the node still answers ARP afterwards.
    #[test]
    fn bad_input_on_a_veth_is_counted() {
        let uid = std::fs::read_to_string("/proc/self/status")
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1).map(String::from))
            .unwrap_or_default();
        let ns = format!("weft-iot-{}", std::process::id());
        let ip = |args: &[&str]| {
            std::process::Command::new("ip")
                .args(args)
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        };
        if uid != "0" || !ip(&["netns", "add", &ns]) {
            eprintln!("SKIP: bad_input_on_a_veth_is_counted: needs root and `ip netns`");
            return;
        }
        struct Del(String);
        impl Drop for Del {
            fn drop(&mut self) {
                let _ = std::process::Command::new("ip")
                    .args(["netns", "del", &self.0])
                    .status();
            }
        }
        let _del = Del(ns.clone());
        assert!(ip(&[
            "-n", &ns, "link", "add", "wva", "type", "veth", "peer", "name", "wvb"
        ]));
        // (sysfs shows the test's own namespace, so MACs are set, not read.)
        for (d, m) in [("wva", "02:00:00:00:09:0a"), ("wvb", "02:00:00:00:09:0b")] {
            assert!(ip(&["-n", &ns, "link", "set", d, "address", m, "mtu", "9000", "up"]));
        }
        let path = format!("/var/run/netns/{ns}");
        let r = std::thread::spawn(move || {
            sys::enter_netns(&path).unwrap();
            let va_mac: Mac = [2, 0, 0, 0, 9, 0x0a];
            let vb_mac: Mac = [2, 0, 0, 0, 9, 0x0b];
            let mut port = AfPacketPort::open("wva", 1500).unwrap();
            let mut peer = AfPacketPort::open("wvb", 9000).unwrap();
            let mut node = Node::new("t");
            let pid = node
                .add_port(weft_dataplane::PortConfig {
                    name: "wva".into(),
                    mac: va_mac,
                    mtu: 1500,
                    addrs: vec!["10.9.0.1/24".parse().unwrap()],
                })
                .unwrap();
            let mut scratch = Node::new("peer");
            let arp = |tpa: [u8; 4]| {
                let mut f = vec![0xffu8; 6];
                f.extend(vb_mac);
                f.extend([0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
                f.extend(vb_mac);
                f.extend([10, 9, 0, 2]);
                f.extend([0u8; 6]);
                f.extend(tpa);
                f
            };
            let mut bad_csum = va_mac.to_vec();
            bad_csum.extend(vb_mac);
            bad_csum.extend([0x08, 0x00]);
            bad_csum.extend([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0xde, 0xad, 10, 9, 0, 2, 10, 9, 0, 1]);
            bad_csum.extend([0, 9, 0, 9, 0, 8, 0, 0]);
            let mut jumbo = va_mac.to_vec();
            jumbo.extend(vb_mac);
            jumbo.extend([0x08, 0x00]);
            jumbo.resize(4000, 0);
            let mut frames: Vec<Vec<u8>> = Vec::new();
            frames.extend((0..7).map(|_| jumbo.clone()));
            frames.extend((0..11).map(|_| bad_csum.clone()));
            frames.extend((0..3000u32).map(|i| arp([10, 9, (i >> 8) as u8 + 1, i as u8])));
            frames.extend((0..5).map(|_| vec![0x55u8; 10]));
            let mut batch: Batch = frames.iter().map(|f| scratch.alloc(f)).collect();
            let mut sent = 0;
            while !batch.is_empty() && sent < 20 {
                let mut chunk: Batch = batch.drain(..batch.len().min(256)).collect();
                peer.send(&mut scratch, &mut chunk);
                sent += 1;
                // Let the receiver keep up (the veth backlog is bounded).
                pump(&mut node, pid, &mut port);
            }
            let t0 = std::time::Instant::now();
            let mut replies = 0;
            let mut out = Vec::new();
            while t0.elapsed() < std::time::Duration::from_secs(2) {
                pump(&mut node, pid, &mut port);
                if replies == 0 && t0.elapsed() > std::time::Duration::from_millis(300) {
                    let mut b: Batch = vec![scratch.alloc(&arp([10, 9, 0, 1]))];
                    peer.send(&mut scratch, &mut b);
                    replies = -1;
                }
                peer.recv(&mut scratch, &mut out, 32);
                let got = out
                    .iter()
                    .any(|p| p.data().len() >= 22 && p.data()[12..14] == [8, 6] && p.data()[21] == 2);
                if got {
                    replies = 1;
                    break;
                }
                for p in out.drain(..) {
                    scratch.recycle(p);
                }
            }
            // Reads the kernel's ring statistics too: nothing was lost there.
            port.link_up();
            (replies, port.counters().clone(), node.drops())
        });
        let (replies, c, drops) = r.join().unwrap();
        assert_eq!(c.dropped("oversize"), 7, "{c:?}");
        assert_eq!(drops.get("bad-ipv4-checksum").copied(), Some(11), "{drops:?}");
        // Runts reach us padded to a header by the kernel or not at all;
        // either way they are counted, not processed.
        let runts = c.dropped("runt") + drops.get("truncated-ethernet").copied().unwrap_or(0);
        assert!(runts <= 5, "{c:?} {drops:?}");
        assert!(c.rx_packets >= 3000, "{c:?}");
        assert_eq!(c.dropped("ring-full"), 0, "{c:?}");
        assert_eq!(replies, 1, "the node answers ARP after the storm");
    }

    fn pump(node: &mut Node, pid: weft_packet::PortId, port: &mut AfPacketPort) {
        let mut b = Vec::new();
        for _ in 0..64 {
            if port.recv(node, &mut b, 32) == 0 {
                break;
            }
            node.receive(0, pid, &mut b);
        }
        let mut out = Vec::new();
        node.take_tx(pid, &mut out);
        port.send(node, &mut out);
    }
}
