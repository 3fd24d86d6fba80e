//! Header views, smoltcp-style: each wraps a buffer (`T: AsRef<[u8]>`,
//! and `AsMut<[u8]>` for the setters) that starts at its header, and reads
//! and writes every field through a getter or setter over the byte ranges
//! of a private `mod field`. They are how the engine reads and rewrites the
//! headers [`crate::view::parse`] has located — never `d[l3 + 8]`.
//!
//! * [`ethernet`] — [`EthernetFrame`]: addresses and ethertype.
//! * [`ipv4`] — [`Ipv4Header`]: lengths, flags and fragment offset, TTL
//!   (with the RFC 1624 checksum update), addresses.
//! * [`ipv6`] — [`Ipv6Header`]: payload length, next header, hop limit.
//! * [`udp`] — [`UdpHeader`]: ports, length, the payload it bounds.
//! * [`icmp`] — [`IcmpMessage`]: type, code, rest of header, data (ICMP and
//!   ICMPv6 share the layout).
//! * [`nd`] — [`NdMessage`]: IPv6 neighbour solicitation / advertisement
//!   target and link-layer address options (RFC 4861).
//! * [`mpls`] — [`MplsEntry`]: one MPLS label stack entry (RFC 3032).
//!
//! Constructors follow smoltcp's rule: `new_checked` (which runs
//! `check_len`) for bytes from outside, after which no getter panics;
//! `new_unchecked` when the caller knows the length (a parsed packet's
//! header, a buffer it sized itself), where a short buffer panics.
//! Emitting into a reused buffer goes through `new_unchecked`: its stale
//! length fields mean nothing yet.

pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod mpls;
pub mod nd;
pub mod udp;

pub use ethernet::EthernetFrame;
pub use icmp::IcmpMessage;
pub use ipv4::Ipv4Header;
pub use ipv6::Ipv6Header;
pub use mpls::MplsEntry;
pub use nd::NdMessage;
pub use udp::UdpHeader;

/// Error returned by the views' `new_checked` and `check_len`: the buffer
/// is shorter than the header (or than a length field says).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[error("truncated header")]
pub struct Truncated;

/// A byte range of a header.
type Field = core::ops::Range<usize>;

#[inline]
fn be16(b: &[u8], f: Field) -> u16 {
    u16::from_be_bytes([b[f.start], b[f.start + 1]])
}

#[inline]
fn set_be16(b: &mut [u8], f: Field, v: u16) {
    b[f].copy_from_slice(&v.to_be_bytes());
}

/// The IP version of the packet starting at `buf` (its first nibble), if
/// there is a first octet.
#[inline]
pub fn ip_version(buf: &[u8]) -> Option<u8> {
    buf.first().map(|b| b >> 4)
}

/// Fuzzing and property-test entry point: wrap `bytes` in every view with
/// `new_checked` and read every field. A view that accepted the bytes must
/// answer every getter without panicking (smoltcp's promise for
/// `new_checked`).
pub fn check_view_invariants(bytes: &[u8]) {
    if let Ok(v) = EthernetFrame::new_checked(bytes) {
        let _ = (v.dst(), v.src(), v.ethertype(), v.payload().len());
    }
    if let Ok(v) = Ipv4Header::new_checked(bytes) {
        let _ = (v.version(), v.header_len(), v.has_options(), v.total_len(), v.ident());
        let _ = (v.dont_fragment(), v.more_fragments(), v.fragment_offset(), v.ttl());
        let _ = (v.protocol(), v.checksum(), v.src(), v.dst());
    }
    if let Ok(v) = Ipv6Header::new_checked(bytes) {
        let _ = (
            v.version(),
            v.payload_len(),
            v.total_len(),
            v.next_header(),
            v.hop_limit(),
            v.src(),
            v.dst(),
        );
    }
    if let Ok(v) = UdpHeader::new_checked(bytes) {
        let _ = (
            v.src_port(),
            v.dst_port(),
            v.len(),
            v.is_empty(),
            v.checksum(),
            v.payload().len(),
        );
    }
    if let Ok(v) = IcmpMessage::new_checked(bytes) {
        let _ = (v.msg_type(), v.code(), v.checksum(), v.rest_of_header(), v.data().len());
    }
    if let Ok(v) = NdMessage::new_checked(bytes) {
        let _ = (
            v.msg_type(),
            v.code(),
            v.checksum(),
            v.router(),
            v.solicited(),
            v.override_(),
            v.target(),
        );
        let _ = (
            v.link_layer_addr(nd::SOURCE_LINK_ADDR),
            v.link_layer_addr(nd::TARGET_LINK_ADDR),
        );
    }
    if let Ok(v) = MplsEntry::new_checked(bytes) {
        let _ = (v.label(), v.traffic_class(), v.bottom(), v.ttl(), v.payload().len());
    }
    let _ = ip_version(bytes);
}

#[cfg(test)]
mod tests {
    proptest::proptest! {
        #[test]
        fn checked_views_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..96)) {
            super::check_view_invariants(&bytes);
        }
    }

    #[test]
    fn ip_version_reads_the_first_nibble() {
        assert_eq!(super::ip_version(&[0x45, 0]), Some(4));
        assert_eq!(super::ip_version(&[0x60]), Some(6));
        assert_eq!(super::ip_version(&[]), None);
    }
}
