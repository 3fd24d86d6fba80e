//! Finding a UDP payload in a frame (used by `layerdrop`).
//!
//! Offsets come from the engine's [`weft_packet::Meta`] (`l3`, `l4`,
//! `flow`); every one is checked against the bytes before use, so stale or
//! hostile metadata yields [`Located::Malformed`], never a panic. A packet whose
//! metadata was never filled in (`l3 == 0`, e.g. driven outside a node) is
//! parsed here.

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
