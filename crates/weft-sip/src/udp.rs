//! The frame that answers a UDP request: Ethernet, IPv4 or IPv6, UDP, and
//! the answer's payload, from the request's destination back to its source
//! (address and port: the answer goes where the request came from, as
//! RFC 3581's `rport` asks, which is what reaches a user agent behind a NAT).
//!
//! The request's Ethernet addresses are swapped (a node that routes the
//! frame rewrites them anyway). IPv4: no options, DF, TTL 64; IPv6: hop
//! limit 64, no extension headers. The UDP checksum is computed for both.

use crate::msg::Error;

/// Ethernet header length (no VLAN tag: the node removes tags before its
/// modules see a frame).
const ETH: usize = 14;

/// Where a request's headers are: its frame and the offsets the host gives.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// The frame, Ethernet header first.
    pub frame: &'a [u8],
    /// The IP header's offset.
    pub l3: usize,
    /// The UDP header's offset.
    pub l4: usize,
}

fn sum(data: &[u8], mut s: u32) -> u32 {
    let mut c = data.chunks_exact(2);
    for w in &mut c {
        s += u16::from_be_bytes([w[0], w[1]]) as u32;
    }
    if let [b] = c.remainder() {
        s += (*b as u32) << 8;
    }
    s
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// Write the answer frame carrying `payload` into `out`; its length.
pub fn reply_frame(req: Request<'_>, payload: &[u8], out: &mut [u8]) -> Result<usize, Error> {
    let f = req.frame;
    let ip = f.get(req.l3..).ok_or(Error::Truncated)?;
    let udp = f.get(req.l4..req.l4 + 8).ok_or(Error::Truncated)?;
    let v6 = match ip.first().map(|b| b >> 4) {
        Some(4) => false,
        Some(6) => true,
        _ => return Err(Error::Truncated),
    };
    let (src, dst): (&[u8], &[u8]) = if v6 {
        (
            ip.get(8..24).ok_or(Error::Truncated)?,
            ip.get(24..40).ok_or(Error::Truncated)?,
        )
    } else {
        (
            ip.get(12..16).ok_or(Error::Truncated)?,
            ip.get(16..20).ok_or(Error::Truncated)?,
        )
    };
    let eth = f.get(..ETH).ok_or(Error::Truncated)?;
    let mut macs = [0u8; 12];
    macs[..6].copy_from_slice(&eth[6..12]);
    macs[6..].copy_from_slice(&eth[0..6]);
    let sport = u16::from_be_bytes([udp[2], udp[3]]);
    let dport = u16::from_be_bytes([udp[0], udp[1]]);
    let to = Endpoint { addr: src, port: dport };
    let from = Endpoint { addr: dst, port: sport };
    udp_frame(&macs, from, to, payload, out)
}

/// One end of a UDP exchange: an address (4 or 16 bytes) and a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint<'a> {
    /// IPv4 (4 bytes) or IPv6 (16 bytes) address, network order.
    pub addr: &'a [u8],
    /// UDP port.
    pub port: u16,
}

/// Write an Ethernet + IP + UDP frame from `from` to `to` carrying
/// `payload`; `macs` is destination then source MAC. Both addresses must be
/// of one family.
pub fn udp_frame(
    macs: &[u8; 12],
    from: Endpoint<'_>,
    to: Endpoint<'_>,
    payload: &[u8],
    out: &mut [u8],
) -> Result<usize, Error> {
    let v6 = match (from.addr.len(), to.addr.len()) {
        (4, 4) => false,
        (16, 16) => true,
        _ => return Err(Error::Truncated),
    };
    let iph = if v6 { 40 } else { 20 };
    let udp_len = 8 + payload.len();
    let total = ETH + iph + udp_len;
    if udp_len > 0xffff || total > out.len() {
        return Err(Error::NoRoom);
    }
    let o = &mut out[..total];
    o[0..12].copy_from_slice(macs);
    o[12..14].copy_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
    let h = &mut o[ETH..ETH + iph];
    if v6 {
        h[0..4].copy_from_slice(&[0x60, 0, 0, 0]);
        h[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
        h[6] = 17;
        h[7] = 64;
        h[8..24].copy_from_slice(from.addr);
        h[24..40].copy_from_slice(to.addr);
    } else {
        h[0] = 0x45;
        h[1] = 0;
        h[2..4].copy_from_slice(&((20 + udp_len) as u16).to_be_bytes());
        h[4..8].copy_from_slice(&[0, 0, 0x40, 0]);
        h[8] = 64;
        h[9] = 17;
        h[10..12].copy_from_slice(&[0, 0]);
        h[12..16].copy_from_slice(from.addr);
        h[16..20].copy_from_slice(to.addr);
        let c = fold(sum(h, 0));
        h[10..12].copy_from_slice(&c.to_be_bytes());
    }
    let u = ETH + iph;
    o[u..u + 2].copy_from_slice(&from.port.to_be_bytes());
    o[u + 2..u + 4].copy_from_slice(&to.port.to_be_bytes());
    o[u + 4..u + 6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    o[u + 6..u + 8].copy_from_slice(&[0, 0]);
    o[u + 8..].copy_from_slice(payload);
    // Pseudo-header: addresses, protocol, UDP length.
    let mut s = sum(from.addr, 0);
    s = sum(to.addr, s);
    s += 17 + udp_len as u32;
    let c = match fold(sum(&o[u..], s)) {
        0 => 0xffff,
        c => c,
    };
    o[u + 6..u + 8].copy_from_slice(&c.to_be_bytes());
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_answer_swaps_addresses_and_checksums() {
        // 02:..:01 → 02:..:02, 10.0.1.2:6000 → 10.0.2.2:5060, payload "\r\n\r\n".
        let mut req = [0u8; 14 + 20 + 8 + 4];
        req[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        req[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        req[12..14].copy_from_slice(&[8, 0]);
        req[14] = 0x45;
        req[26..30].copy_from_slice(&[10, 0, 1, 2]);
        req[30..34].copy_from_slice(&[10, 0, 2, 2]);
        req[34..36].copy_from_slice(&6000u16.to_be_bytes());
        req[36..38].copy_from_slice(&5060u16.to_be_bytes());
        req[42..46].copy_from_slice(b"\r\n\r\n");
        let r = Request {
            frame: &req,
            l3: 14,
            l4: 34,
        };
        let mut out = [0xa5u8; 128];
        let n = reply_frame(r, b"\r\n", &mut out).unwrap();
        assert_eq!(n, 14 + 20 + 8 + 2);
        assert!(out[n..].iter().all(|&b| b == 0xa5));
        assert_eq!(&out[0..6], &[2, 0, 0, 0, 0, 1]);
        assert_eq!(&out[26..30], &[10, 0, 2, 2]);
        assert_eq!(&out[30..34], &[10, 0, 1, 2]);
        assert_eq!(u16::from_be_bytes([out[34], out[35]]), 5060);
        assert_eq!(u16::from_be_bytes([out[36], out[37]]), 6000);
        assert_eq!(fold(sum(&out[14..34], 0)), 0, "IPv4 header checksum verifies");
        let mut s = sum(&out[26..34], 0) + 17 + 10;
        s = sum(&out[34..n], s);
        assert_eq!(fold(s), 0, "UDP checksum verifies");
        assert_eq!(reply_frame(r, &[0; 100], &mut out[..60]), Err(Error::NoRoom));
        let short = Request {
            frame: &req[..30],
            l3: 14,
            l4: 34,
        };
        assert_eq!(reply_frame(short, b"", &mut out), Err(Error::Truncated));
    }
}
