//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).

/// One's-complement sum of `data` folded into 16 bits, added to `initial`
/// (not complemented).
#[inline]
pub fn sum(data: &[u8], initial: u32) -> u32 {
    let mut acc: u64 = initial as u64;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let v = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        acc += (v >> 48) + ((v >> 32) & 0xffff) + ((v >> 16) & 0xffff) + (v & 0xffff);
    }
    let mut rest = chunks.remainder().chunks_exact(2);
    for c in &mut rest {
        acc += u16::from_be_bytes([c[0], c[1]]) as u64;
    }
    if let [b] = rest.remainder() {
        acc += (*b as u64) << 8;
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u32
}

/// The Internet checksum of `data` (complemented, ready to store).
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !(sum(data, 0) as u16)
}

/// Incrementally update checksum `hc` when a 16-bit field changes from `old`
/// to `new` (RFC 1624 eqn. 3: `HC' = ~(~HC + ~m + m')`).
#[inline]
pub fn update16(hc: u16, old: u16, new: u16) -> u16 {
    let mut s = (!hc as u32) + (!old as u32 & 0xffff) + new as u32;
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    !(s as u16)
}

/// Incrementally update checksum `hc` when a 32-bit field (e.g. an IPv4
/// address) changes.
#[inline]
pub fn update32(hc: u16, old: u32, new: u32) -> u16 {
    let hc = update16(hc, (old >> 16) as u16, (new >> 16) as u16);
    update16(hc, old as u16, new as u16)
}

/// Incrementally update checksum `hc` when a run of bytes changes (lengths
/// must match and be even).
pub fn update_bytes(mut hc: u16, old: &[u8], new: &[u8]) -> u16 {
    debug_assert_eq!(old.len(), new.len());
    for (o, n) in old.chunks(2).zip(new.chunks(2)) {
        let ov = u16::from_be_bytes([o[0], *o.get(1).unwrap_or(&0)]);
        let nv = u16::from_be_bytes([n[0], *n.get(1).unwrap_or(&0)]);
        hc = update16(hc, ov, nv);
    }
    hc
}

/// Pseudo-header sum for an IPv4 transport checksum.
pub fn pseudo_v4(src: [u8; 4], dst: [u8; 4], proto: u8, len: u16) -> u32 {
    let mut s = sum(&src, 0);
    s = sum(&dst, s);
    s + proto as u32 + len as u32
}

/// Pseudo-header sum for an IPv6 transport checksum.
pub fn pseudo_v6(src: [u8; 16], dst: [u8; 16], proto: u8, len: u32) -> u32 {
    let mut s = sum(&src, 0);
    s = sum(&dst, s);
    s + proto as u32 + (len >> 16) + (len & 0xffff)
}

/// Fold a 32-bit partial sum and complement it.
pub fn finish(s: u32) -> u16 {
    let mut s = s as u64;
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 example bytes: sum 0xddf2.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(&d, 0), 0xddf2);
        assert_eq!(checksum(&d), !0xddf2);
    }

    proptest! {
        #[test]
        fn incremental_matches_full(mut data in proptest::collection::vec(any::<u8>(), 2..64usize), idx in 0usize..31, new in any::<u16>()) {
            if data.len() % 2 == 1 { data.push(0); }
            let i = (idx * 2) % data.len();
            let before = checksum(&data);
            let old = u16::from_be_bytes([data[i], data[i+1]]);
            data[i..i+2].copy_from_slice(&new.to_be_bytes());
            let full = checksum(&data);
            let inc = update16(before, old, new);
            // 0x0000 and 0xffff are the same one's-complement value.
            prop_assert!(inc == full || (inc == 0xffff && full == 0) || (inc == 0 && full == 0xffff));
        }
    }
}
