//! Finding a UDP payload in a frame and fixing lengths and checksums after
//! its size changed (used by `encrypt`, `decrypt` and `layerdrop`).
//!
//! Offsets come from the engine's [`weft_packet::Meta`] (`l3`, `l4`,
//! `flow`); every one is checked against the bytes before use, so stale or
//! hostile metadata yields [`Located::Malformed`], never a panic. A packet whose
//! metadata was never filled in (`l3 == 0`, e.g. driven outside a node) is
//! parsed here.

use weft_packet::checksum;
use weft_packet::flow::Family;
use weft_packet::{proto, view, Packet};

/// Where a UDP datagram lies in a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct UdpSpan {
    /// IPv6 (else IPv4).
    pub v6: bool,
    /// IP header offset.
    pub l3: usize,
    /// UDP header offset.
    pub l4: usize,
    /// End of the IP packet, which is also the end of the UDP datagram
    /// (Ethernet padding may follow).
    pub end: usize,
}

impl UdpSpan {
    /// Offset of the UDP payload.
    pub fn payload(&self) -> usize {
        self.l4 + 8
    }
}

/// What [`locate`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Located {
    /// Not IP, or IP carrying something other than UDP.
    Other,
    /// A UDP datagram split into IP fragments: the payload is not whole here.
    Fragment,
    /// Length fields that do not fit together (or stale metadata).
    Malformed,
    /// A whole UDP datagram.
    Span(UdpSpan),
}

#[inline]
fn be16(d: &[u8], at: usize) -> Option<usize> {
    Some(u16::from_be_bytes([*d.get(at)?, *d.get(at + 1)?]) as usize)
}

/// Find the UDP datagram in `pkt`.
pub(crate) fn locate(pkt: &Packet) -> Located {
    let d = pkt.data();
    let (l3, l4, family, transport) = if pkt.meta.l3 == 0 {
        match view::parse(d) {
            Ok(h) => (h.l3_off(), h.l4_off().unwrap_or(0), h.flow.family, h.flow.proto),
            Err(_) => return Located::Malformed,
        }
    } else {
        let m = &pkt.meta;
        (m.l3 as usize, m.l4 as usize, m.flow.family, m.flow.proto)
    };
    let Some(&first) = d.get(l3) else {
        return if family == Family::None {
            Located::Other
        } else {
            Located::Malformed
        };
    };
    let (v6, end, l4) = match family {
        Family::None => return Located::Other,
        Family::V4 => {
            if d.len() < l3 + 20 || first >> 4 != 4 {
                return Located::Malformed;
            }
            let ihl = (first & 0x0f) as usize * 4;
            let Some(total) = be16(d, l3 + 2) else {
                return Located::Malformed;
            };
            if ihl < 20 || total < ihl || l3 + total > d.len() {
                return Located::Malformed;
            }
            // The header, not the flow key, says what it carries.
            if d[l3 + 9] != proto::UDP {
                return Located::Other;
            }
            let Some(frag) = be16(d, l3 + 6) else {
                return Located::Malformed;
            };
            if frag & 0x3fff != 0 {
                return Located::Fragment;
            }
            (false, l3 + total, l3 + ihl)
        }
        Family::V6 => {
            if d.len() < l3 + 40 || first >> 4 != 6 {
                return Located::Malformed;
            }
            let Some(plen) = be16(d, l3 + 4) else {
                return Located::Malformed;
            };
            let end = l3 + 40 + plen;
            if end > d.len() {
                return Located::Malformed;
            }
            // The transport after extension headers is known only from the
            // parse; a fragmented payload has no transport offset.
            if transport != proto::UDP {
                return Located::Other;
            }
            if l4 == 0 {
                return Located::Fragment;
            }
            if l4 < l3 + 40 {
                return Located::Malformed;
            }
            (true, end, l4)
        }
    };
    if l4 + 8 > end {
        return Located::Malformed;
    }
    match be16(d, l4 + 4) {
        Some(ulen) if ulen >= 8 && l4 + ulen == end => Located::Span(UdpSpan { v6, l3, l4, end }),
        _ => Located::Malformed,
    }
}

/// True when the datagram of `span` can grow by `grow` bytes without its IPv4
/// total length or IPv6 payload length (and so its UDP length) passing
/// 65535.
pub(crate) fn can_grow(span: &UdpSpan, grow: usize) -> bool {
    let ip_len = if span.v6 {
        span.end - span.l3 - 40
    } else {
        span.end - span.l3
    };
    ip_len + grow <= u16::MAX as usize
}

/// After the datagram of `span` was resized so that it now ends at `end`
/// (and the frame at `end` too): write the UDP length, the IP length, the
/// IPv4 header checksum and the UDP checksum.
///
/// The UDP checksum is recomputed in full; an IPv4 datagram that was sent
/// without one (`0`, RFC 768) keeps none, so decryption restores the original
/// bytes exactly. The IPv6 pseudo-header uses the header's destination (a
/// routing header's final destination is not looked for).
pub(crate) fn fix_lengths(d: &mut [u8], span: &UdpSpan, end: usize) {
    let UdpSpan { v6, l3, l4, .. } = *span;
    let ulen = (end - l4) as u16;
    d[l4 + 4..l4 + 6].copy_from_slice(&ulen.to_be_bytes());
    let had_checksum = d[l4 + 6] != 0 || d[l4 + 7] != 0;
    let pseudo = if v6 {
        let plen = (end - l3 - 40) as u16;
        d[l3 + 4..l3 + 6].copy_from_slice(&plen.to_be_bytes());
        let mut src = [0u8; 16];
        src.copy_from_slice(&d[l3 + 8..l3 + 24]);
        let mut dst = [0u8; 16];
        dst.copy_from_slice(&d[l3 + 24..l3 + 40]);
        checksum::pseudo_v6(src, dst, proto::UDP, ulen as u32)
    } else {
        let total = (end - l3) as u16;
        d[l3 + 2..l3 + 4].copy_from_slice(&total.to_be_bytes());
        let ihl = (d[l3] & 0x0f) as usize * 4;
        d[l3 + 10..l3 + 12].copy_from_slice(&[0, 0]);
        let hc = checksum::checksum(&d[l3..l3 + ihl]);
        d[l3 + 10..l3 + 12].copy_from_slice(&hc.to_be_bytes());
        let mut src = [0u8; 4];
        src.copy_from_slice(&d[l3 + 12..l3 + 16]);
        let mut dst = [0u8; 4];
        dst.copy_from_slice(&d[l3 + 16..l3 + 20]);
        checksum::pseudo_v4(src, dst, proto::UDP, ulen)
    };
    if !v6 && !had_checksum {
        return;
    }
    d[l4 + 6..l4 + 8].copy_from_slice(&[0, 0]);
    let mut c = checksum::finish(checksum::sum(&d[l4..end], pseudo));
    if c == 0 {
        // RFC 768: a computed 0 is sent as all ones (0 means "none").
        c = 0xffff;
    }
    d[l4 + 6..l4 + 8].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn locates_v4_and_v6() {
        let p = pkt(&v4(1, 2, b"abc"));
        assert_eq!(
            locate(&p),
            Located::Span(UdpSpan {
                v6: false,
                l3: 14,
                l4: 34,
                end: 45
            })
        );
        let p = pkt(&v6(1, 2, b"abc"));
        assert_eq!(
            locate(&p),
            Located::Span(UdpSpan {
                v6: true,
                l3: 14,
                l4: 54,
                end: 65
            })
        );
        // Unparsed metadata: parsed here.
        let raw = weft_packet::Packet::from_bytes(&v4(1, 2, b"abc"));
        assert!(matches!(locate(&raw), Located::Span(_)));
    }

    #[test]
    fn tcp_arp_fragments_and_bad_lengths() {
        let t = weft_packet::build::tcp4([2; 6], [4; 6], A4, B4, 1, 2, 0, b"x");
        assert_eq!(locate(&pkt(&t)), Located::Other);
        let a = weft_packet::build::arp(1, [1; 6], A4, [0; 6], B4, [0xff; 6]);
        assert_eq!(locate(&pkt(&a)), Located::Other);
        let mut p = pkt(&v4(1, 2, b"abcdef"));
        p.data_mut()[14 + 6] = 0x20; // more fragments
        assert_eq!(locate(&p), Located::Fragment);
        let mut p = pkt(&v4(1, 2, b"abcdef"));
        p.data_mut()[14 + 7] = 0x08; // a later fragment
        assert_eq!(locate(&p), Located::Fragment);
        let mut p = pkt(&v4(1, 2, b"abcdef"));
        p.data_mut()[34 + 5] = 9; // UDP length 9 in a 14-byte datagram
        assert_eq!(locate(&p), Located::Malformed);
        let mut p = pkt(&v4(1, 2, b"abcdef"));
        p.meta.l3 = 200;
        assert_eq!(locate(&p), Located::Malformed);
    }
}
