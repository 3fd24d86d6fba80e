//! MPLS numbers shared by the engine's label table (`weft-dataplane`) and
//! the PBR protocol that allocates and carries labels (`weft-pbr`): one
//! definition, here, below both.

/// UDP port of MPLS-in-UDP (RFC 7510): loose segments of explicit paths.
pub const MPLS_UDP_PORT: u16 = 6635;
/// Labels 0–15 are reserved (RFC 3032); Weft allocates from here.
pub const FIRST_LABEL: u32 = 16;
/// Largest label: labels are 20 bits (RFC 3032).
pub const MAX_LABEL: u32 = (1 << 20) - 1;
