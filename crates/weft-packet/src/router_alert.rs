//! The IP Router Alert option: "every router on the path should look at
//! this packet" — IPv4 option 148 (RFC 2113), IPv6 hop-by-hop option 5
//! (RFC 2711). On-path signaling carries it; the engine hands such packets
//! to the signaling daemon instead of forwarding them.
//!
//! [`carries_router_alert`] reads an IP packet's options (IPv4) or its
//! hop-by-hop header (IPv6) and never panics on outside bytes; the frame
//! builder is [`crate::build::udp_router_alert`].

/// IPv4 option type of Router Alert (copied, class 0, number 20).
pub const IPV4_OPTION: u8 = 148;
/// IPv6 hop-by-hop option type of Router Alert.
pub const IPV6_OPTION: u8 = 5;
/// The IPv4 option: type 148, length 4, value 0 ("every router examines
/// this packet").
pub const IPV4_ROUTER_ALERT: [u8; 4] = [IPV4_OPTION, 4, 0, 0];
/// The options of an IPv6 hop-by-hop header carrying Router Alert (value
/// 2: "Active Networks", the kind of message on-path signaling is) and a
/// two-octet PadN filling the header's eight octets.
pub const IPV6_ROUTER_ALERT_OPTIONS: [u8; 6] = [IPV6_OPTION, 2, 0, 2, 1, 0];

/// Walk type-length-value options in `opts`, where `single` types are one
/// octet without a length (IPv4: EOL 0 and NOP 1; IPv6: Pad1 0) and
/// `end` ends the list (IPv4's EOL). True when one of type `want` with a
/// two-octet value is found; false at the end or on a malformed option.
fn find(opts: &[u8], want: u8, single: &[u8], end: Option<u8>) -> bool {
    let mut i = 0;
    while let Some(&t) = opts.get(i) {
        if Some(t) == end {
            return false;
        }
        if single.contains(&t) {
            i += 1;
            continue;
        }
        let Some(&len) = opts.get(i + 1) else { return false };
        // IPv4 lengths count the type and length octets; IPv6 lengths count
        // the data only: `want`'s own length is checked by the caller's rule.
        let total = if end.is_some() { len as usize } else { len as usize + 2 };
        if total < 2 || i + total > opts.len() {
            return false;
        }
        if t == want && total == 4 {
            return true;
        }
        i += total;
    }
    false
}

/// Does the IP packet `ip` (starting at its IP header) carry Router Alert?
/// IPv4: among its options. IPv6: in a hop-by-hop header right after the
/// fixed header (RFC 8200 puts it there, and only there).
pub fn carries_router_alert(ip: &[u8]) -> bool {
    match ip.first().map(|b| b >> 4) {
        Some(4) => {
            let ihl = (ip[0] & 0x0f) as usize * 4;
            if ihl <= 20 {
                return false;
            }
            ip.get(20..ihl)
                .is_some_and(|opts| find(opts, IPV4_OPTION, &[0, 1], Some(0)))
        }
        Some(6) => {
            if ip.get(6) != Some(&0) {
                return false;
            }
            let Some(&len) = ip.get(41) else { return false };
            let end = 40 + (len as usize + 1) * 8;
            ip.get(42..end).is_some_and(|opts| find(opts, IPV6_OPTION, &[0], None))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IPv4 with IHL 6: the Router Alert option in the header's last word.
    #[rustfmt::skip]
    static V4: [u8; 24] = [
        0x46, 0x00, 0x00, 0x18, 0, 0, 0x40, 0, 64, 17, 0, 0,
        10, 0, 0, 1, 10, 0, 0, 2,
        148, 4, 0, 0,
    ];

    /// IPv6, next header 0: a hop-by-hop header of 8 octets (UDP next),
    /// Router Alert value 2 and a PadN.
    fn v6(opts: [u8; 6]) -> Vec<u8> {
        let mut b = vec![0x60, 0, 0, 0, 0, 8, 0, 64];
        b.extend([0u8; 32]);
        b.extend([17, 0]);
        b.extend(opts);
        b
    }

    #[test]
    fn finds_the_option() {
        assert!(carries_router_alert(&V4));
        assert!(carries_router_alert(&v6(IPV6_ROUTER_ALERT_OPTIONS)));
        // Behind NOPs (IPv4) and a Pad1 (IPv6).
        let mut b = V4.to_vec();
        b[0] = 0x47;
        b.splice(20..20, [1, 1, 1, 1]);
        assert!(carries_router_alert(&b));
        assert!(carries_router_alert(&v6([0, IPV6_OPTION, 2, 0, 2, 0])));
    }

    #[test]
    fn other_options_and_bad_bytes_are_not_router_alert() {
        let mut b = V4;
        b[20] = 0x9e;
        assert!(!carries_router_alert(&b));
        let mut b = V4;
        b[0] = 0x45;
        assert!(!carries_router_alert(&b));
        // An end of list first; a length running past the header; length 0.
        for opts in [[0, 148, 4, 0], [148, 9, 0, 0], [148, 0, 0, 0]] {
            let mut b = V4;
            b[20..24].copy_from_slice(&opts);
            assert!(!carries_router_alert(&b), "{opts:?}");
        }
        // IPv6 without a hop-by-hop header, with another option, cut short.
        let mut b = v6(IPV6_ROUTER_ALERT_OPTIONS);
        b[6] = 17;
        assert!(!carries_router_alert(&b));
        assert!(!carries_router_alert(&v6([1, 4, 0, 0, 0, 0])));
        assert!(!carries_router_alert(&v6(IPV6_ROUTER_ALERT_OPTIONS)[..45]));
        for n in 0..V4.len() {
            let _ = carries_router_alert(&V4[..n]);
        }
        assert!(!carries_router_alert(&[]));
        assert!(!carries_router_alert(&[0x46]));
    }
}
