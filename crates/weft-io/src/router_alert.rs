//! [`RouterAlertSocket`]: a UDP socket of a Linux host that sends chosen
//! datagrams with the IP Router Alert option — how a requester (`weft
//! signal …`) starts on-path signaling: every Weft node on the way
//! intercepts the datagram, every other router forwards it.
//!
//! The option is a socket option (`IP_OPTIONS` for IPv4, the
//! `IPV6_HOPOPTS` sticky option for IPv6), set before a datagram that
//! needs it and cleared before one that does not. Linux allows the IPv4
//! option to any user and asks `CAP_NET_RAW` for the IPv6 one.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

/// A UDP socket sending with or without Router Alert. See the module
/// documentation.
#[derive(Debug)]
pub struct RouterAlertSocket {
    sock: UdpSocket,
    v6: bool,
    ra: bool,
}

impl RouterAlertSocket {
    /// Bind `addr` (port 0: any).
    pub fn bind(addr: SocketAddr) -> io::Result<RouterAlertSocket> {
        let sock = UdpSocket::bind(addr)?;
        Ok(RouterAlertSocket {
            sock,
            v6: addr.is_ipv6(),
            ra: false,
        })
    }

    /// The address bound.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    /// Send `buf` to `dst`, with the Router Alert option when
    /// `router_alert`.
    pub fn send_to(&mut self, buf: &[u8], dst: SocketAddr, router_alert: bool) -> io::Result<usize> {
        if router_alert != self.ra {
            crate::sys::set_router_alert(self.sock.as_raw_fd(), self.v6, router_alert)?;
            self.ra = router_alert;
        }
        self.sock.send_to(buf, dst)
    }

    /// Receive one datagram, waiting at most `timeout` (None: when nothing
    /// came).
    pub fn recv_from(&self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<(usize, SocketAddr)>> {
        self.sock
            .set_read_timeout(Some(timeout.max(Duration::from_micros(1))))?;
        match self.sock.recv_from(buf) {
            Ok(x) => Ok(Some(x)),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The source address this host would use toward `dst` (no datagram is
/// sent: a connected UDP socket asks the kernel's routing).
pub fn source_toward(dst: IpAddr) -> io::Result<IpAddr> {
    let any: SocketAddr = if dst.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = UdpSocket::bind(any)?;
    s.connect((dst, 9))?;
    Ok(s.local_addr()?.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loopback: the option does not keep a datagram from arriving, and
    /// can be switched off again.
    #[test]
    fn sends_with_and_without_router_alert() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let dst = rx.local_addr().unwrap();
        let mut tx = RouterAlertSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        tx.send_to(b"with", dst, true).unwrap();
        tx.send_to(b"without", dst, false).unwrap();
        let mut b = [0u8; 16];
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let (n, _) = rx.recv_from(&mut b).unwrap();
        assert_eq!(&b[..n], b"with");
        let (n, _) = rx.recv_from(&mut b).unwrap();
        assert_eq!(&b[..n], b"without");
        assert_eq!(
            source_toward("127.0.0.1".parse().unwrap()).unwrap(),
            "127.0.0.1".parse::<IpAddr>().unwrap()
        );
        let mut r = [0u8; 4];
        let got = tx.recv_from(&mut r, Duration::from_millis(10)).unwrap();
        assert!(got.is_none());
    }
}
