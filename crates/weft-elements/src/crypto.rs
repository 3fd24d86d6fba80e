//! `encrypt` / `decrypt` — ESP in tunnel mode (RFC 4303) with
//! ChaCha20-Poly1305 (RFC 7634), so two nodes protect every IP packet of a
//! flow between them, whatever its protocol, without the end hosts knowing.
//! The wire format, the cipher and the anti-replay window are in
//! [`crate::esp`].
//!
//! **What goes on the wire.** `encrypt` turns an IP packet `P` (IPv4 or
//! IPv6, any protocol, fragments too) into
//! `outer IP header ‖ SPI ‖ sequence number ‖ IV ‖ enc(P ‖ padding ‖ pad
//! length ‖ next header) ‖ ICV`, next header 4 (IPv4) or 41 (IPv6):
//! 54–57 octets more for an IPv4 outer header, 74–77 for IPv6
//! ([`Encrypt::overhead`]). tcpdump and Wireshark show it as ESP.
//! `decrypt` verifies it, checks the anti-replay window, and puts back `P`
//! byte for byte.
//!
//! **The outer header** (decision). By default it *keeps the packet's own
//! addresses*: source and destination, TTL / hop limit, DSCP and ECN
//! (copied, RFC 6040's normal mode), the IPv4 identification and the IPv6
//! flow label are those of `P`; protocol 50; IPv4 with DF set (the
//! encrypting node answers too-big packets itself; nobody fragments ESP).
//! So a protected packet is routed exactly where `P` would have been —
//! along an explicit path's labels, or hop by hop by the FIB to a node
//! whose filter for protocol 50 runs `decrypt` — and no configuration
//! names the peer. What it does not hide is who talks to whom: with
//! `src=ADDR dst=ADDR` the outer header goes from `src` to `dst` instead
//! (gateway style: the encrypting node's address to the decrypting
//! node's, of either family), hiding the end hosts' addresses too.
//!
//! **The SA.** `key=` is 64 hex digits (the 32-octet key; the RFC 7634 salt
//! is then 0) or 72 (RFC 7634's 36 octets of keying material, key then
//! salt, as `ip xfrm` takes them). `spi=` (decimal or `0x…`, 256 or more)
//! defaults to the first four octets of SHA-256 of the keying material,
//! raised above the reserved range 0–255: both ends given one key agree on
//! the SPI without saying it, and a `decrypt` given another key counts the
//! packets as `bad_spi` rather than forged. `esn=` (default `yes`) chooses
//! 64-bit extended sequence numbers (RFC 4303 2.2.1): a manually keyed SA
//! cannot be re-keyed, and 2^32 packets are an hour at 1 Mpps; with
//! `esn=no` `encrypt` drops (`seq_exhausted`) once the 32-bit space is used
//! up, until a new key is configured.
//!
//! **Sequence numbers and IVs.** `encrypt` numbers packets from 1. The IV
//! (8 octets) must never repeat under a key: it is a counter that starts at
//! a random 64-bit value drawn from the OS when the instance initializes,
//! so two instances with one key (a restarted node, two paths given the same
//! key) collide only if their ranges of IVs overlap — about n·m/2^64 for
//! n and m packets. A repeated ChaCha20-Poly1305 nonce would reveal the XOR
//! of two plaintexts and let the Poly1305 key be recovered.
//!
//! **Anti-replay.** `decrypt` keeps a window of the last
//! [`crate::esp::WINDOW`] sequence numbers (RFC 4303 3.4.3): a number seen
//! before counts as `replayed`, one left of the window as `too_old`, both
//! dropped before the ICV is checked; only authentic packets move the
//! window. As with any manually keyed IPsec SA, the window belongs to the
//! SA: reconfiguring either end with a *new* key (or SPI or ESN setting)
//! starts a new SA — `encrypt` numbers from 1 again, `decrypt` forgets its
//! window — while the same configuration given again keeps both. An
//! `encrypt` restarted alone with the old key starts from 1 and is refused
//! as `too_old` until `decrypt` restarts too (explicit paths create both
//! anew with every path).
//!
//! **What passes, what drops.** `encrypt` passes non-IP frames unchanged
//! (`passed`) and drops an IP packet it cannot grow (`no_room`, `too_big`
//! past 65535 octets). `decrypt` drops everything that is not an authentic
//! ESP packet of its SA — `not_esp` (plaintext: passing it would let anyone
//! inject on the protected links), `fragments`, `malformed`, `bad_spi`,
//! `replayed`, `too_old`, `auth_failed`, `bad_padding`, `bad_next_header`,
//! `dummy` (next header 59, RFC 4303 2.6): nothing unauthenticated is
//! delivered.
//!
//! * **Configuration:** `key=HEX` (required; 64 or 72 hex digits, never
//!   reported), `spi=N`, `esn=yes|no`; `encrypt` also `src=ADDR dst=ADDR`.
//! * **Ports:** one in, one out.
//! * **Handlers:** counters and `spi` (read, report), `reset` (write,
//!   control `reset`); any other control request is a new configuration.
//! * **State:** counters carry over to a successor of the same class; so do
//!   the sequence number and IV counter (`encrypt`) and the window
//!   (`decrypt`) when the successor has the same SA.

use crate::esp::{self, EspError, EspPacket, ReplayWindow, Sa, KEYMAT_LEN};
use crate::util;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use weft_dataplane::{Args, ClassDoc, Ctx, Element, ElementClass, ElementError, Handler, Verdict};
use weft_packet::view::{self, L3};
use weft_packet::{checksum, Packet};

/// Octets in front of the inner packet besides the outer IP header: SPI,
/// sequence number, IV.
const ESP_HEAD: usize = esp::HEADER_LEN;

/// A parsed configuration: the SA and (encrypt) the outer addresses.
struct Config {
    keymat: [u8; KEYMAT_LEN],
    spi: u32,
    esn: bool,
    outer: Option<(IpAddr, IpAddr)>,
}

impl Config {
    /// Identifies the SA (keying material, SPI, ESN) without holding the
    /// key: a successor or a reconfiguration with the same one keeps the
    /// sequence numbers and the window.
    fn fingerprint(&self) -> String {
        let mut m = self.keymat.to_vec();
        m.extend_from_slice(&self.spi.to_be_bytes());
        m.push(self.esn as u8);
        hex(ring::digest::digest(&ring::digest::SHA256, &m).as_ref())
    }

    fn sa(&self) -> Sa {
        Sa::new(&self.keymat, self.spi, self.esn)
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn parse_config(class: &str, args: &Args, outer: bool) -> Result<Config, ElementError> {
    let keys: &[&str] = if outer {
        &["key", "spi", "esn", "src", "dst"]
    } else {
        &["key", "spi", "esn"]
    };
    util::check_args(args, class, keys, 0)?;
    let err = |m: String| ElementError::Config(format!("{class}: {m}"));
    let hexkey = args
        .named
        .get("key")
        .ok_or_else(|| err("key=<64 hex digits> is required".into()))?
        .as_bytes();
    // The error never echoes the key: configurations end up in logs.
    let bad = || err("key must be 64 hex digits (32 octets) or 72 (key and salt, RFC 7634)".into());
    if hexkey.len() != 64 && hexkey.len() != 72 {
        return Err(bad());
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut keymat = [0u8; KEYMAT_LEN];
    for (k, pair) in keymat.iter_mut().zip(hexkey.chunks_exact(2)) {
        *k = (nibble(pair[0]).ok_or_else(bad)? << 4) | nibble(pair[1]).ok_or_else(bad)?;
    }
    let spi = match args.named.get("spi") {
        None => {
            let d = ring::digest::digest(&ring::digest::SHA256, &keymat);
            let v = u32::from_be_bytes([d.as_ref()[0], d.as_ref()[1], d.as_ref()[2], d.as_ref()[3]]);
            if v < 256 {
                v + 256
            } else {
                v
            }
        }
        Some(s) => {
            let v = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                Some(h) => u32::from_str_radix(h, 16),
                None => s.parse::<u32>(),
            }
            .map_err(|_| err(format!("spi={s:?}: expected a number (decimal or 0x…)")))?;
            if v < 256 {
                return Err(err(format!("spi={v}: 0–255 are reserved (RFC 4303 2.1)")));
            }
            v
        }
    };
    let esn = match args.named.get("esn").map(|s| s.to_ascii_lowercase()) {
        None => true,
        Some(s) => match s.as_str() {
            "yes" | "on" | "true" | "1" => true,
            "no" | "off" | "false" | "0" => false,
            _ => return Err(err(format!("esn={s:?}: expected yes or no"))),
        },
    };
    let addr = |k: &str| -> Result<Option<IpAddr>, ElementError> {
        args.named
            .get(k)
            .map(|v| {
                v.parse::<IpAddr>()
                    .map_err(|_| err(format!("{k}={v:?}: not an address")))
            })
            .transpose()
    };
    let outer = match (addr("src")?, addr("dst")?) {
        (None, None) => None,
        (Some(s), Some(d)) if s.is_ipv4() == d.is_ipv4() => Some((s, d)),
        (Some(_), Some(_)) => return Err(err("src and dst must be of one family".into())),
        _ => return Err(err("give both src= and dst= (or neither: keep the packet's own)".into())),
    };
    Ok(Config {
        keymat,
        spi,
        esn,
        outer,
    })
}

fn state_err(class: &str, e: serde_json::Error) -> ElementError {
    ElementError::State(format!("{class}: {e}"))
}

/// Where the IP packet lies in a frame: header offset, length (from its
/// header, so Ethernet padding is left out), family.
struct IpSpan {
    l3: usize,
    len: usize,
    v6: bool,
}

fn ip_span(h: &view::Headers) -> Option<IpSpan> {
    match h.l3 {
        L3::Ipv4 { off, total_len, .. } => Some(IpSpan {
            l3: off as usize,
            len: total_len as usize,
            v6: false,
        }),
        L3::Ipv6 { off, payload_len, .. } => Some(IpSpan {
            l3: off as usize,
            len: 40 + payload_len as usize,
            v6: true,
        }),
        _ => None,
    }
}

fn ethertype(v6: bool) -> [u8; 2] {
    if v6 {
        [0x86, 0xdd]
    } else {
        [0x08, 0x00]
    }
}

// ---------------------------------------------------------------- encrypt

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
struct EncStats {
    encrypted: u64,
    /// Non-IP frames passed unchanged.
    passed: u64,
    malformed: u64,
    no_room: u64,
    too_big: u64,
    /// No OS randomness for the IV counter's start (the packet is dropped).
    no_iv: u64,
    /// 32-bit sequence numbers used up (`esn=no`).
    seq_exhausted: u64,
}

#[derive(Serialize, Deserialize)]
struct EncState {
    stats: EncStats,
    sa: String,
    seq: u64,
    iv: Option<u64>,
}

/// The `encrypt` element.
pub struct Encrypt {
    sa: Sa,
    fingerprint: String,
    outer: Option<(IpAddr, IpAddr)>,
    /// Next IV; `None` until drawn from the OS.
    iv: Option<u64>,
    /// Next sequence number (from 1).
    seq: u64,
    stats: EncStats,
}

impl std::fmt::Debug for Encrypt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encrypt")
            .field("sa", &self.sa)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Encrypt {
    /// Parse a configuration.
    pub fn new(args: &Args) -> Result<Self, ElementError> {
        let c = parse_config("encrypt", args, true)?;
        Ok(Encrypt {
            sa: c.sa(),
            fingerprint: c.fingerprint(),
            outer: c.outer,
            iv: None,
            seq: 1,
            stats: EncStats::default(),
        })
    }

    /// Octets a packet of family `inner_v6` and length `len` grows by.
    pub fn overhead(&self, inner_v6: bool, len: usize) -> usize {
        self.outer_len(inner_v6) + esp::esp_len(len) - len
    }

    fn outer_len(&self, inner_v6: bool) -> usize {
        let v6 = match self.outer {
            Some((s, _)) => s.is_ipv6(),
            None => inner_v6,
        };
        if v6 {
            40
        } else {
            20
        }
    }

    fn draw_iv(&mut self) -> bool {
        let mut b = [0u8; 8];
        match getrandom::fill(&mut b) {
            Ok(()) => {
                self.iv = Some(u64::from_be_bytes(b));
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "encrypt: no OS randomness for the IV counter");
                false
            }
        }
    }

    fn seal(&mut self, pkt: &mut Packet) -> Verdict {
        let h = match view::parse(pkt.data()) {
            Ok(h) => h,
            Err(_) => {
                self.stats.malformed += 1;
                return Verdict::Drop;
            }
        };
        let Some(ip) = ip_span(&h) else {
            self.stats.passed += 1;
            return Verdict::Continue;
        };
        let hl = self.outer_len(ip.v6);
        let esp_len = esp::esp_len(ip.len);
        let outer_v6 = hl == 40;
        // IPv4's total length, IPv6's payload length: 16 bits.
        if (if outer_v6 { esp_len } else { hl + esp_len }) > u16::MAX as usize {
            self.stats.too_big += 1;
            return Verdict::Drop;
        }
        let tail = esp_len - ESP_HEAD - ip.len;
        // Ethernet padding after the IP packet is not part of it.
        pkt.truncate(ip.l3 + ip.len);
        if pkt.headroom() < hl + ESP_HEAD || pkt.tailroom() < tail {
            self.stats.no_room += 1;
            return Verdict::Drop;
        }
        if !self.sa.esn() && self.seq > u64::from(u32::MAX) {
            self.stats.seq_exhausted += 1;
            return Verdict::Drop;
        }
        if self.iv.is_none() && !self.draw_iv() {
            self.stats.no_iv += 1;
            return Verdict::Drop;
        }
        if pkt.insert_gap(ip.l3, hl + ESP_HEAD).is_err() || pkt.push_back(tail).is_err() {
            self.stats.no_room += 1;
            return Verdict::Drop;
        }
        let d = pkt.data_mut();
        let inner = ip.l3 + hl + ESP_HEAD;
        if ip.l3 >= 2 {
            d[ip.l3 - 2..ip.l3].copy_from_slice(&ethertype(outer_v6));
        }
        let (head, rest) = d.split_at_mut(inner);
        write_outer(
            &mut head[ip.l3..ip.l3 + hl],
            &rest[..ip.len],
            ip.v6,
            self.outer,
            esp_len,
        );
        let next = if ip.v6 { esp::NEXT_IPV6 } else { esp::NEXT_IPV4 };
        let iv = self.iv.unwrap_or(0);
        if let Err(e) = self
            .sa
            .seal(self.seq, iv.to_be_bytes(), next, ip.len, &mut d[ip.l3 + hl..])
        {
            // Lengths were computed above; never send a half-sealed packet.
            tracing::warn!(error = %e, "encrypt: sealing failed");
            self.stats.malformed += 1;
            return Verdict::Drop;
        }
        self.seq += 1;
        self.iv = Some(iv.wrapping_add(1));
        self.stats.encrypted += 1;
        Verdict::Continue
    }
}

/// The outer IP header over `inner` (the packet being protected), for an
/// ESP packet of `esp_len` octets: the inner packet's own addresses unless
/// `outer` names others (module documentation).
fn write_outer(h: &mut [u8], inner: &[u8], inner_v6: bool, outer: Option<(IpAddr, IpAddr)>, esp_len: usize) {
    // Fields copied from the inner header: TTL / hop limit, DSCP+ECN,
    // addresses; IPv4 identification, IPv6 flow label.
    let (ttl, tos, ident, flow, src, dst): (u8, u8, [u8; 2], [u8; 3], IpAddr, IpAddr) = if inner_v6 {
        let mut s = [0u8; 16];
        let mut t = [0u8; 16];
        s.copy_from_slice(&inner[8..24]);
        t.copy_from_slice(&inner[24..40]);
        (
            inner[7],
            (inner[0] << 4) | (inner[1] >> 4),
            [0, 0],
            [inner[1] & 0x0f, inner[2], inner[3]],
            IpAddr::from(s),
            IpAddr::from(t),
        )
    } else {
        let mut s = [0u8; 4];
        let mut t = [0u8; 4];
        s.copy_from_slice(&inner[12..16]);
        t.copy_from_slice(&inner[16..20]);
        (
            inner[8],
            inner[1],
            [inner[4], inner[5]],
            [0; 3],
            IpAddr::from(s),
            IpAddr::from(t),
        )
    };
    let (src, dst) = outer.unwrap_or((src, dst));
    h.fill(0);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            h[0] = 0x45;
            h[1] = tos;
            h[2..4].copy_from_slice(&((20 + esp_len) as u16).to_be_bytes());
            h[4..6].copy_from_slice(&ident);
            h[6] = 0x40; // DF
            h[8] = ttl;
            h[9] = esp::PROTO_ESP;
            h[12..16].copy_from_slice(&s.octets());
            h[16..20].copy_from_slice(&d.octets());
            let c = checksum::checksum(&h[..20]);
            h[10..12].copy_from_slice(&c.to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            h[0] = 0x60 | tos >> 4;
            h[1] = (tos << 4) | flow[0];
            h[2] = flow[1];
            h[3] = flow[2];
            h[4..6].copy_from_slice(&(esp_len as u16).to_be_bytes());
            h[6] = esp::PROTO_ESP;
            h[7] = ttl;
            h[8..24].copy_from_slice(&s.octets());
            h[24..40].copy_from_slice(&d.octets());
        }
        // Mixed families come only from `outer`, which is one family.
        _ => {}
    }
}

impl Element for Encrypt {
    fn handlers(&self) -> Vec<Handler> {
        ENCRYPT_HANDLERS.to_vec()
    }

    fn initialize(&mut self) -> Result<(), ElementError> {
        if self.iv.is_none() && !self.draw_iv() {
            return Err(ElementError::Config(
                "encrypt: no OS randomness for the IV counter".into(),
            ));
        }
        Ok(())
    }

    fn process(&mut self, _cx: &mut Ctx<'_>, pkt: &mut Packet) -> Verdict {
        self.seal(pkt)
    }

    fn configure(&mut self, args: &Args) -> Result<(), ElementError> {
        let c = parse_config("encrypt", args, true)?;
        let fp = c.fingerprint();
        if fp != self.fingerprint {
            // A new SA: sequence numbers start again. The IV counter goes
            // on (it only needs to be unique per key).
            self.seq = 1;
        }
        self.sa = c.sa();
        self.fingerprint = fp;
        self.outer = c.outer;
        Ok(())
    }

    fn control(&mut self, request: &str) -> Result<String, ElementError> {
        if util::is_reset(request) {
            self.stats = EncStats::default();
        } else {
            self.configure(&Args::parse(request))?;
        }
        Ok("ok".into())
    }

    fn report(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self.stats).unwrap_or(serde_json::Value::Null);
        if let Some(o) = v.as_object_mut() {
            o.insert("spi".into(), format!("{:#010x}", self.sa.spi()).into());
            o.insert("seq".into(), (self.seq - 1).into());
        }
        v
    }

    fn mtu_before(&self, ipv6: bool, room: usize) -> usize {
        esp::max_payload(room.saturating_sub(self.outer_len(ipv6)))
    }

    fn export_state(&mut self) -> Option<serde_json::Value> {
        serde_json::to_value(EncState {
            stats: self.stats,
            sa: self.fingerprint.clone(),
            seq: self.seq,
            iv: self.iv,
        })
        .ok()
    }

    fn import_state(&mut self, state: serde_json::Value) -> Result<(), ElementError> {
        let s: EncState = serde_json::from_value(state).map_err(|e| state_err("encrypt", e))?;
        self.stats = s.stats;
        if s.sa == self.fingerprint {
            // The same SA: go on numbering where the predecessor stopped,
            // and never reuse its IVs.
            self.seq = s.seq.max(1);
            self.iv = s.iv.or(self.iv);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- decrypt

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
struct DecStats {
    decrypted: u64,
    not_esp: u64,
    fragments: u64,
    malformed: u64,
    bad_spi: u64,
    replayed: u64,
    too_old: u64,
    auth_failed: u64,
    bad_padding: u64,
    bad_next_header: u64,
    dummy: u64,
}

impl DecStats {
    fn count(&mut self, e: EspError) {
        let c = match e {
            EspError::Truncated | EspError::Misaligned | EspError::SeqExhausted => &mut self.malformed,
            EspError::Spi(_) => &mut self.bad_spi,
            EspError::Replayed => &mut self.replayed,
            EspError::TooOld => &mut self.too_old,
            EspError::Auth => &mut self.auth_failed,
            EspError::Padding => &mut self.bad_padding,
            EspError::NextHeader(_) => &mut self.bad_next_header,
            EspError::Dummy => &mut self.dummy,
        };
        *c += 1;
    }
}

#[derive(Serialize, Deserialize)]
struct DecState {
    stats: DecStats,
    sa: String,
    window: ReplayWindow,
}

/// The `decrypt` element.
pub struct Decrypt {
    sa: Sa,
    fingerprint: String,
    window: ReplayWindow,
    stats: DecStats,
}

impl std::fmt::Debug for Decrypt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decrypt")
            .field("sa", &self.sa)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Decrypt {
    /// Parse a configuration.
    pub fn new(args: &Args) -> Result<Self, ElementError> {
        let c = parse_config("decrypt", args, false)?;
        Ok(Decrypt {
            sa: c.sa(),
            fingerprint: c.fingerprint(),
            window: ReplayWindow::default(),
            stats: DecStats::default(),
        })
    }

    fn open(&mut self, pkt: &mut Packet) -> Verdict {
        let h = match view::parse(pkt.data()) {
            Ok(h) => h,
            Err(_) => {
                self.stats.malformed += 1;
                return Verdict::Drop;
            }
        };
        let (l3, esp_at, end) = match h.l3 {
            L3::Ipv4 {
                off,
                hlen,
                total_len,
                later_fragment,
                ..
            } if h.flow.proto == esp::PROTO_ESP => {
                let (off, hlen, total) = (off as usize, hlen as usize, total_len as usize);
                let more = pkt.data().get(off + 6).is_some_and(|f| f & 0x20 != 0);
                if later_fragment || more {
                    self.stats.fragments += 1;
                    return Verdict::Drop;
                }
                (off, off + hlen, off + total)
            }
            L3::Ipv6 {
                off,
                payload_off,
                payload_len,
                ..
            } if h.flow.proto == esp::PROTO_ESP => {
                let off = off as usize;
                (off, payload_off as usize, off + 40 + payload_len as usize)
            }
            _ => {
                self.stats.not_esp += 1;
                return Verdict::Drop;
            }
        };
        let Some(esp_bytes) = pkt.data_mut().get_mut(esp_at..end) else {
            self.stats.malformed += 1;
            return Verdict::Drop;
        };
        let low = match EspPacket::new_checked(&*esp_bytes) {
            Ok(p) if p.spi() != self.sa.spi() => {
                self.stats.count(EspError::Spi(p.spi()));
                return Verdict::Drop;
            }
            Ok(p) => p.seq(),
            Err(e) => {
                self.stats.count(e);
                return Verdict::Drop;
            }
        };
        let seq = match self.window.check(low, self.sa.esn()) {
            Ok(s) => s,
            Err(e) => {
                self.stats.count(e);
                return Verdict::Drop;
            }
        };
        let (len, next) = match self.sa.open(seq, esp_bytes) {
            Ok(x) => x,
            Err(e) => {
                if matches!(e, EspError::Dummy | EspError::Padding | EspError::NextHeader(_)) {
                    // Authentic: the sequence number is used up.
                    self.window.accept(seq);
                }
                self.stats.count(e);
                return Verdict::Drop;
            }
        };
        self.window.accept(seq);
        let inner_v6 = next == esp::NEXT_IPV6;
        let inner = esp_at + esp::HEADER_LEN;
        let version_ok = pkt
            .data()
            .get(inner)
            .is_some_and(|b| b >> 4 == if inner_v6 { 6 } else { 4 });
        if !version_ok {
            self.stats.bad_next_header += 1;
            return Verdict::Drop;
        }
        pkt.truncate(inner + len);
        if pkt.remove_range(l3, inner - l3).is_err() {
            self.stats.malformed += 1;
            return Verdict::Drop;
        }
        if l3 >= 2 {
            pkt.data_mut()[l3 - 2..l3].copy_from_slice(&ethertype(inner_v6));
        }
        self.stats.decrypted += 1;
        Verdict::Continue
    }
}

impl Element for Decrypt {
    fn handlers(&self) -> Vec<Handler> {
        DECRYPT_HANDLERS.to_vec()
    }

    fn process(&mut self, _cx: &mut Ctx<'_>, pkt: &mut Packet) -> Verdict {
        self.open(pkt)
    }

    fn configure(&mut self, args: &Args) -> Result<(), ElementError> {
        let c = parse_config("decrypt", args, false)?;
        let fp = c.fingerprint();
        if fp != self.fingerprint {
            self.window = ReplayWindow::default();
        }
        self.sa = c.sa();
        self.fingerprint = fp;
        Ok(())
    }

    fn control(&mut self, request: &str) -> Result<String, ElementError> {
        if util::is_reset(request) {
            self.stats = DecStats::default();
        } else {
            self.configure(&Args::parse(request))?;
        }
        Ok("ok".into())
    }

    fn report(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self.stats).unwrap_or(serde_json::Value::Null);
        if let Some(o) = v.as_object_mut() {
            o.insert("spi".into(), format!("{:#010x}", self.sa.spi()).into());
            o.insert("seq".into(), self.window.top().into());
        }
        v
    }

    fn export_state(&mut self) -> Option<serde_json::Value> {
        serde_json::to_value(DecState {
            stats: self.stats,
            sa: self.fingerprint.clone(),
            window: self.window,
        })
        .ok()
    }

    fn import_state(&mut self, state: serde_json::Value) -> Result<(), ElementError> {
        let s: DecState = serde_json::from_value(state).map_err(|e| state_err("decrypt", e))?;
        self.stats = s.stats;
        if s.sa == self.fingerprint {
            self.window = s.window;
        }
        Ok(())
    }
}

const CONFIG_DOC: &str = "key=HEX (64 hex digits, or 72: key and RFC 7634 salt; required) \
     [spi=N (default: from the key)] [esn=yes|no (default yes)]";

/// The handlers (see the module header): the class documents them and
/// every instance answers [`Element::handlers`] with them.
const ENCRYPT_HANDLERS: &[Handler] = &[
    Handler::read("encrypted", "IP packets sealed into ESP"),
    Handler::read("passed", "non-IP frames passed unchanged"),
    Handler::read("malformed", "frames that do not parse, dropped"),
    Handler::read("no_room", "dropped: no room in the buffer to grow"),
    Handler::read("too_big", "dropped: would exceed 65535 octets"),
    Handler::read("no_iv", "dropped: no OS randomness for the IV counter"),
    Handler::read(
        "seq_exhausted",
        "dropped: 32-bit sequence numbers used up (esn=no); configure a new key",
    ),
    Handler::read("spi", "the SA's SPI"),
    Handler::read("seq", "the last sequence number sent"),
    Handler::write("reset", "control `reset`: zero the counts; a configuration: a new SA"),
];

fn enc_doc() -> ClassDoc {
    util::doc(
        "ESP tunnel mode (RFC 4303) with ChaCha20-Poly1305 (RFC 7634) over the whole IP packet, any protocol",
        &format!("{CONFIG_DOC} [src=ADDR dst=ADDR (outer header; default: the packet's own addresses)]"),
        ENCRYPT_HANDLERS,
    )
}

/// The handlers (see the module header): the class documents them and
/// every instance answers [`Element::handlers`] with them.
const DECRYPT_HANDLERS: &[Handler] = &[
    Handler::read("decrypted", "ESP packets opened and passed on"),
    Handler::read("not_esp", "dropped: not ESP (plaintext)"),
    Handler::read("fragments", "dropped: ESP in IP fragments"),
    Handler::read("malformed", "dropped: truncated or misaligned"),
    Handler::read("bad_spi", "dropped: another SA's SPI"),
    Handler::read("replayed", "dropped: sequence number seen before"),
    Handler::read("too_old", "dropped: left of the anti-replay window"),
    Handler::read("auth_failed", "dropped: ICV does not verify"),
    Handler::read("bad_padding", "dropped: authentic, bad padding"),
    Handler::read("bad_next_header", "dropped: authentic, not a tunnelled IP packet"),
    Handler::read("dummy", "dropped: dummy packets (next header 59)"),
    Handler::read("spi", "the SA's SPI"),
    Handler::read("seq", "the highest sequence number received"),
    Handler::write("reset", "control `reset`: zero the counts; a configuration: a new SA"),
];

fn dec_doc() -> ClassDoc {
    util::doc(
        "verify and decrypt what `encrypt` sealed (ESP, anti-replay window); everything else is dropped",
        CONFIG_DOC,
        DECRYPT_HANDLERS,
    )
}

/// The `encrypt` class.
pub fn encrypt_class() -> ElementClass {
    ElementClass::native("encrypt", enc_doc(), |a| Ok(Box::new(Encrypt::new(a)?)))
}

/// The `decrypt` class.
pub fn decrypt_class() -> ElementClass {
    ElementClass::native("decrypt", dec_doc(), |a| Ok(Box::new(Decrypt::new(a)?)))
}

/// The fuzz entry point (fuzz target `esp_decap`, and a property test):
/// `data` as an ESP packet — the view's slices add up, opening it under an
/// SA and running it through the window never panics and never admits a
/// sequence number twice; as a frame and as an IP packet, `decrypt` never
/// panics; and whatever `encrypt` seals, `decrypt` restores byte for byte,
/// once. Panics only on a bug.
pub fn fuzz_esp(data: &[u8]) {
    use crate::esp::{
        EspError, EspPacket, ReplayWindow, Sa, FUZZ_KEYMAT, HEADER_LEN, ICV_LEN, NEXT_IPV4, NEXT_IPV6, PROTO_ESP,
        TRAILER_LEN, WINDOW,
    };
    use weft_dataplane::InstanceId;
    use weft_packet::PacketPool;

    // The view over outside bytes.
    if let Ok(p) = EspPacket::new_checked(data) {
        assert_eq!(HEADER_LEN + p.ciphertext().len() + ICV_LEN, data.len());
        assert!(p.ciphertext().len().is_multiple_of(4));
        let _ = (p.spi(), p.seq(), p.iv(), p.icv());
    }
    // Opening under an SA, with the window in front.
    for esn in [true, false] {
        let sa = Sa::new(&FUZZ_KEYMAT, 0x0102_0304, esn);
        let mut w = ReplayWindow::default();
        let mut buf = data.to_vec();
        let low = EspPacket::new_checked(&buf[..]).map(|p| p.seq()).unwrap_or(1);
        if let Ok(seq) = w.check(low, esn) {
            if let Ok((len, next)) = sa.open(seq, &mut buf) {
                assert!(HEADER_LEN + len + TRAILER_LEN + ICV_LEN <= data.len());
                assert!(matches!(next, NEXT_IPV4 | NEXT_IPV6));
                w.accept(seq);
                assert_eq!(w.check(low, esn), Err(EspError::Replayed));
            }
        }
        // The window alone, fed the data as sequence numbers: what it admits
        // and records is never admitted again.
        let mut seen = std::collections::HashSet::new();
        let mut w = ReplayWindow::default();
        for c in data.chunks(4) {
            let mut b = [0u8; 4];
            b[..c.len()].copy_from_slice(c);
            if let Ok(seq) = w.check(u32::from_be_bytes(b), esn) {
                assert!(seen.insert(seq), "sequence number {seq} admitted twice");
                assert!(seq > w.top().saturating_sub(WINDOW));
                w.accept(seq);
            }
        }
    }

    let key = format!(
        "key={}",
        FUZZ_KEYMAT.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let (Ok(mut enc), Ok(mut dec)) = (Encrypt::new(&Args::parse(&key)), Decrypt::new(&Args::parse(&key))) else {
        panic!("the fuzz key configures");
    };
    if enc.initialize().is_err() {
        return; // no OS randomness: nothing to seal with
    }
    let mut pool = PacketPool::default();
    let mut emitted = Vec::new();
    let mut cx = Ctx::new(0, InstanceId(1), &mut pool, &mut emitted);
    let eth = |ethertype: [u8; 2], body: &[u8]| {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, ethertype[0], ethertype[1]];
        f.extend_from_slice(body);
        f
    };
    let v6 = data.first().is_some_and(|b| b >> 4 == 6);
    let ip_frame = eth(if v6 { [0x86, 0xdd] } else { [0x08, 0x00] }, data);
    for frame in [data, &ip_frame[..]] {
        let mut p = Packet::from_bytes(frame);
        let _ = dec.process(&mut cx, &mut p);
    }
    // Round trip: what encrypt seals, decrypt opens to the same IP packet.
    let mut p = Packet::from_bytes(&ip_frame);
    if enc.process(&mut cx, &mut p) == Verdict::Continue {
        if let Ok(h) = weft_packet::view::parse(&ip_frame) {
            let sealed = p.data().to_vec();
            assert!(
                weft_packet::view::parse(&sealed).is_ok_and(|s| s.flow.proto == PROTO_ESP),
                "encrypt made a frame that does not parse as ESP"
            );
            let mut d = Decrypt::new(&Args::parse(&key)).unwrap_or_else(|_| panic!("configures"));
            assert_eq!(
                d.process(&mut cx, &mut p),
                Verdict::Continue,
                "decrypt refused what encrypt sealed"
            );
            let want_len = match h.l3 {
                weft_packet::view::L3::Ipv4 { total_len, .. } => 14 + total_len as usize,
                weft_packet::view::L3::Ipv6 { payload_len, .. } => 14 + 40 + payload_len as usize,
                _ => panic!("sealed a frame that is not IP"),
            };
            assert_eq!(p.data(), &ip_frame[..want_len], "the round trip changed the packet");
            // The same packet again is a replay.
            let mut again = Packet::from_bytes(&sealed);
            assert_eq!(d.process(&mut cx, &mut again), Verdict::Drop);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::esp;
    use crate::testutil::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;
    use weft_dataplane::{Element, Verdict};
    use weft_packet::{build, checksum, view, Packet};

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const KEY: &str = "key=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const OTHER: &str = "key=ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    const SECRET: &[u8] = b"the quick brown fox jumps over the lazy dog, secretly";

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    fn tcp(payload: &[u8]) -> Vec<u8> {
        build::tcp4([2; 6], [4; 6], A4, B4, 40000, 5201, 7, payload)
    }

    fn frag(payload: &[u8]) -> Vec<u8> {
        // An IPv4 UDP first fragment (more fragments set).
        let mut f = v4(4000, 6060, payload);
        f[14 + 6] = 0x20;
        f[24..26].copy_from_slice(&[0, 0]);
        let c = checksum::checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f
    }

    fn run(e: &mut dyn Element, f: &[u8]) -> (Verdict, Vec<u8>) {
        let mut h = Harness::default();
        let mut p = pkt(f);
        let v = h.run(e, 0, &mut p);
        (v, p.data().to_vec())
    }

    /// Seal `frame`, check what goes on the wire, open it again.
    fn round_trip(frame: &[u8]) {
        let mut enc = make("encrypt", KEY);
        let mut dec = make("decrypt", KEY);
        let (v, sealed) = run(enc.as_mut(), frame);
        assert_eq!(v, Verdict::Continue);
        let inner = view::parse(frame).unwrap();
        let outer = view::parse(&sealed).expect("the sealed frame parses (lengths, IPv4 checksum)");
        assert_eq!(outer.flow.proto, esp::PROTO_ESP, "ESP on the wire");
        assert_eq!(
            (outer.flow.src, outer.flow.dst),
            (inner.flow.src, inner.flow.dst),
            "the outer header keeps the packet's addresses"
        );
        assert_eq!(outer.ethertype, inner.ethertype);
        let ip_len = |h: &view::Headers| match h.l3 {
            view::L3::Ipv4 { total_len, ttl, .. } => (total_len as usize, ttl),
            view::L3::Ipv6 {
                payload_len, hop_limit, ..
            } => (40 + payload_len as usize, hop_limit),
            _ => panic!("not IP"),
        };
        let ((ilen, ittl), (olen, ottl)) = (ip_len(&inner), ip_len(&outer));
        assert_eq!(ottl, ittl, "TTL copied");
        let grown = olen - ilen;
        let v6 = frame[12..14] == [0x86, 0xdd];
        let range = if v6 { 74..=77 } else { 54..=57 };
        assert!(range.contains(&grown), "overhead {grown}");
        if !v6 {
            assert_eq!(sealed[14 + 6] & 0x40, 0x40, "DF set on the outer header");
        }
        let hl = if v6 { 40 } else { 20 };
        let e = esp::EspPacket::new_checked(&sealed[14 + hl..]).unwrap();
        assert_eq!(
            format!("{:#010x}", e.spi()),
            enc.report()["spi"].as_str().unwrap().to_string()
        );
        assert_eq!(e.seq(), 1);
        // Nothing of the inner packet after its first octets shows: not
        // the payload, not the ports.
        let payload_at = frame.len().min(14 + hl + 8);
        assert!(
            frame.len() <= payload_at + 8 || !contains(&sealed, &frame[payload_at..payload_at + 8]),
            "plaintext visible in the sealed frame"
        );
        assert!(!contains(&sealed, SECRET) && !contains(&sealed, &SECRET[..8]));
        assert_eq!(enc.report()["encrypted"], 1);

        let (v, opened) = run(dec.as_mut(), &sealed);
        assert_eq!(v, Verdict::Continue, "{}", dec.report());
        assert_eq!(opened, frame[..14 + ilen], "decryption restores the exact packet");
        assert_eq!(dec.report()["decrypted"], 1);
        assert_eq!(dec.report()["seq"], 1);
    }

    #[test]
    fn every_protocol_round_trips() {
        round_trip(&v4(4000, 6060, SECRET));
        round_trip(&v6(4000, 6060, SECRET));
        round_trip(&v4(4000, 6060, b""));
        round_trip(&v6(4000, 6060, &[0x5a; 1400]));
        round_trip(&tcp(SECRET));
        round_trip(&build::ping4([2; 6], [4; 6], A4, B4, 1, 1, 64, SECRET));
        round_trip(&frag(SECRET));
        // Ethernet padding after a short packet is not sealed.
        let mut padded = v4(1, 2, b"x");
        padded.resize(60, 0);
        let (_, sealed) = run(make("encrypt", KEY).as_mut(), &padded);
        assert_eq!(sealed.len(), 14 + 20 + esp::esp_len(29));
    }

    #[test]
    fn wire_bytes() {
        let f = v4(4000, 6060, SECRET);
        let mut enc = make(
            "encrypt",
            "key=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f spi=0x01020304",
        );
        let (_, a) = run(enc.as_mut(), &f);
        let (_, b) = run(enc.as_mut(), &f);
        // Outer IPv4: version/IHL, total length, DF, protocol 50.
        let total = 20 + esp::esp_len(f.len() - 14);
        assert_eq!(a[14], 0x45);
        assert_eq!(u16::from_be_bytes([a[16], a[17]]) as usize, total);
        assert_eq!(a[23], 50);
        // SPI, then sequence numbers 1 and 2.
        assert_eq!(a[34..42], [1, 2, 3, 4, 0, 0, 0, 1]);
        assert_eq!(b[34..42], [1, 2, 3, 4, 0, 0, 0, 2]);
        // Consecutive IVs, so the same packet never looks the same.
        let iv = |x: &[u8]| u64::from_be_bytes(x[42..50].try_into().unwrap());
        assert_eq!(iv(&b), iv(&a).wrapping_add(1));
        assert_ne!(a[50..], b[50..]);
        // Two instances with one key draw different IV ranges.
        let (_, c) = run(make("encrypt", KEY).as_mut(), &f);
        assert_ne!(a[42..50], c[42..50], "IV repeated across instances");
    }

    #[test]
    fn mtu_before_is_the_largest_packet_that_fits() {
        let enc = make("encrypt", KEY);
        for (v6, room) in [(false, 1496), (false, 1500), (true, 1500), (false, 200), (true, 1280)] {
            let l = enc.mtu_before(v6, room);
            let mk = |len: usize| {
                if v6 {
                    v6_frame(len)
                } else {
                    v4(1, 2, &vec![7; len - 28])
                }
            };
            let sealed_len = |len: usize| run(make("encrypt", KEY).as_mut(), &mk(len)).1.len() - 14;
            assert!(sealed_len(l) <= room, "{v6} {room}: {l} does not fit");
            assert!(sealed_len(l + 1) > room, "{v6} {room}: {} would fit too", l + 1);
        }
        // Decrypt never grows a packet.
        assert_eq!(make("decrypt", KEY).mtu_before(false, 1496), 1496);
    }

    fn v6_frame(len: usize) -> Vec<u8> {
        v6(1, 2, &vec![7; len - 48])
    }

    #[test]
    fn tampering_replays_and_wrong_keys_are_dropped() {
        let mut enc = make("encrypt", KEY);
        let sealed: Vec<Vec<u8>> = (0..4).map(|_| run(enc.as_mut(), &tcp(SECRET)).1).collect();
        let mut dec = make("decrypt", KEY);
        // Flip one octet anywhere in the ESP header, ciphertext or ICV.
        let len = sealed[0].len();
        for at in [34, 38, 42, 50, 60, len - 17, len - 16, len - 1] {
            let mut f = sealed[0].clone();
            f[at] ^= 0x01;
            let (v, _) = run(dec.as_mut(), &f);
            assert_eq!(v, Verdict::Drop, "tampered octet {at}");
        }
        assert_eq!(dec.report()["bad_spi"], 1);
        assert_eq!(dec.report()["auth_failed"], 7);
        // Out of order within the window is fine; each only once.
        for i in [1, 0, 3] {
            assert_eq!(run(dec.as_mut(), &sealed[i]).0, Verdict::Continue, "packet {i}");
        }
        for i in [1, 0, 3] {
            assert_eq!(run(dec.as_mut(), &sealed[i]).0, Verdict::Drop, "replay of {i}");
        }
        assert_eq!(dec.report()["replayed"], 3);
        assert_eq!(run(dec.as_mut(), &sealed[2]).0, Verdict::Continue);
        // The outer header is not authenticated (RFC 4303: routers change
        // it); the inner one is, and comes back as it was.
        let mut f = run(enc.as_mut(), &tcp(SECRET)).1;
        f[14 + 8] = 3;
        let c = {
            f[24..26].copy_from_slice(&[0, 0]);
            checksum::checksum(&f[14..34])
        };
        f[24..26].copy_from_slice(&c.to_be_bytes());
        let (v, opened) = run(dec.as_mut(), &f);
        assert_eq!((v, opened), (Verdict::Continue, tcp(SECRET)));

        // Another key: another SPI.
        let mut wrong = make("decrypt", OTHER);
        assert_eq!(run(wrong.as_mut(), &sealed[0]).0, Verdict::Drop);
        assert_eq!(wrong.report()["bad_spi"], 1);
        // Another key under the same SPI: the ICV fails.
        let spi = enc.report()["spi"].as_str().unwrap().to_string();
        let mut wrong = make("decrypt", &format!("{OTHER} spi={spi}"));
        assert_eq!(run(wrong.as_mut(), &sealed[0]).0, Verdict::Drop);
        assert_eq!(wrong.report()["auth_failed"], 1);
        // A new key through the control port: a new SA, a fresh window.
        wrong.control(&format!("{KEY} spi={spi}")).expect("new key");
        assert_eq!(run(wrong.as_mut(), &sealed[0]).0, Verdict::Continue);
        // The same configuration again keeps the window.
        wrong.control(&format!("{KEY} spi={spi}")).expect("same key");
        assert_eq!(run(wrong.as_mut(), &sealed[0]).0, Verdict::Drop);
        assert_eq!(wrong.report()["replayed"], 1);
    }

    #[test]
    fn thirty_two_bit_sequence_numbers_refuse_old_ones() {
        let mut enc = make("encrypt", &format!("{KEY} esn=no"));
        let sealed: Vec<Vec<u8>> = (0..200).map(|i| run(enc.as_mut(), &v4(1, 2, &[i as u8])).1).collect();
        let mut dec = make("decrypt", &format!("{KEY} esn=no"));
        assert_eq!(run(dec.as_mut(), &sealed[199]).0, Verdict::Continue);
        assert_eq!(
            run(dec.as_mut(), &sealed[72]).0,
            Verdict::Continue,
            "seq 73: the window's left edge"
        );
        assert_eq!(run(dec.as_mut(), &sealed[71]).0, Verdict::Drop);
        assert_eq!(dec.report()["too_old"], 1);
        // An ESN receiver does not open a 32-bit sender's packets.
        let mut esn = make("decrypt", KEY);
        assert_eq!(run(esn.as_mut(), &sealed[0]).0, Verdict::Drop);
    }

    #[test]
    fn plaintext_and_non_ip() {
        let mut enc = make("encrypt", KEY);
        let mut dec = make("decrypt", KEY);
        let arp = build::arp(1, [1; 6], A4, [0; 6], B4, [0xff; 6]);
        assert_eq!(run(enc.as_mut(), &arp), (Verdict::Continue, arp.clone()));
        assert_eq!(enc.report()["passed"], 1);
        // decrypt lets no plaintext through: anyone could inject it.
        for f in [tcp(SECRET), v4(1, 2, SECRET), arp] {
            assert_eq!(run(dec.as_mut(), &f).0, Verdict::Drop);
        }
        assert_eq!(dec.report()["not_esp"], 3);
        // ESP in a fragment cannot be verified here.
        let (_, mut sealed) = run(enc.as_mut(), &v4(1, 2, SECRET));
        sealed[14 + 6] |= 0x20;
        sealed[24..26].copy_from_slice(&[0, 0]);
        let c = checksum::checksum(&sealed[14..34]);
        sealed[24..26].copy_from_slice(&c.to_be_bytes());
        assert_eq!(run(dec.as_mut(), &sealed).0, Verdict::Drop);
        assert_eq!(dec.report()["fragments"], 1);
    }

    #[test]
    fn gateway_outer_addresses() {
        // IPv4 packets through an IPv6 tunnel between two nodes.
        let mut enc = make("encrypt", &format!("{KEY} src=2001:db8:34::3 dst=2001:db8:78::8"));
        let f = v4(4000, 6060, SECRET);
        let (v, sealed) = run(enc.as_mut(), &f);
        assert_eq!(v, Verdict::Continue);
        let h = view::parse(&sealed).unwrap();
        assert_eq!(h.ethertype, 0x86dd);
        assert_eq!(h.flow.proto, 50);
        assert_eq!(
            h.flow.src,
            u128::from("2001:db8:34::3".parse::<std::net::Ipv6Addr>().unwrap())
        );
        assert!(!contains(&sealed, &A4.octets()), "the inner source is hidden");
        let (v, opened) = run(make("decrypt", KEY).as_mut(), &sealed);
        assert_eq!((v, opened), (Verdict::Continue, f));
        for bad in ["src=10.0.0.1", "src=10.0.0.1 dst=2001:db8::1", "src=x dst=10.0.0.1"] {
            assert!(rejects("encrypt", &format!("{KEY} {bad}")), "{bad}");
        }
        assert!(rejects("decrypt", &format!("{KEY} src=10.0.0.1 dst=10.0.0.2")));
    }

    #[test]
    fn successors_go_on_with_the_same_sa() {
        let mut enc = make("encrypt", KEY);
        let mut dec = make("decrypt", KEY);
        for _ in 0..3 {
            let (_, s) = run(enc.as_mut(), &tcp(SECRET));
            assert_eq!(run(dec.as_mut(), &s).0, Verdict::Continue);
        }
        let (_, last) = run(enc.as_mut(), &tcp(SECRET));
        // Replace both (same configuration): numbering and window go on.
        let mut enc2 = make("encrypt", KEY);
        enc2.import_state(enc.export_state().unwrap()).unwrap();
        let mut dec2 = make("decrypt", KEY);
        dec2.import_state(dec.export_state().unwrap()).unwrap();
        let (_, s) = run(enc2.as_mut(), &tcp(SECRET));
        assert_eq!(s[38..42], [0, 0, 0, 5]);
        assert_eq!(s[42..50], {
            let iv = u64::from_be_bytes(last[42..50].try_into().unwrap()).wrapping_add(1);
            iv.to_be_bytes()
        });
        assert_eq!(run(dec2.as_mut(), &s).0, Verdict::Continue);
        assert_eq!(dec2.report()["decrypted"], 4);
        // Another key: counters only; a new SA numbers from 1.
        let mut enc3 = make("encrypt", OTHER);
        enc3.import_state(enc2.export_state().unwrap()).unwrap();
        assert_eq!(enc3.report()["encrypted"], 5);
        assert_eq!(run(enc3.as_mut(), &tcp(SECRET)).1[38..42], [0, 0, 0, 1]);
        // Reconfiguring with a new key starts over; the same key goes on.
        enc.control(OTHER).unwrap();
        assert_eq!(run(enc.as_mut(), &tcp(SECRET)).1[38..42], [0, 0, 0, 1]);
        enc.control(OTHER).unwrap();
        assert_eq!(run(enc.as_mut(), &tcp(SECRET)).1[38..42], [0, 0, 0, 2]);
    }

    #[test]
    fn configurations() {
        for bad in [
            "",
            "key=00",
            "key=zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
            &format!("{KEY} spi=255"),
            &format!("{KEY} spi=x"),
            &format!("{KEY} esn=maybe"),
            &format!("{KEY} mode=transport"),
        ] {
            assert!(rejects("encrypt", bad), "{bad:?}");
            assert!(rejects("decrypt", bad), "{bad:?}");
        }
        let err = super::Encrypt::new(&weft_dataplane::Args::parse(
            "key=zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        ))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(!err.contains("0a0b0c"), "error echoes the key: {err}");
        // Multi-byte characters must not trip the hex decoder.
        assert!(rejects("encrypt", &format!("key={}", "é".repeat(32))));
        // 72 digits: key and salt. A 64-digit key has salt 0.
        let salted = make("encrypt", &format!("key={HEX}00000000"));
        let plain = make("encrypt", KEY);
        assert_eq!(salted.report()["spi"], plain.report()["spi"]);
        let spi = make("encrypt", &format!("{KEY} spi=4096"));
        assert_eq!(spi.report()["spi"], "0x00001000");
        assert_eq!(
            make("decrypt", &format!("{KEY} spi=0x1000")).report()["spi"],
            "0x00001000"
        );
        // The report never shows the key.
        for e in [plain, make("decrypt", KEY)] {
            assert!(!e.report().to_string().contains("0a0b0c"));
        }
    }

    #[test]
    fn full_buffers_and_huge_packets_drop() {
        let f = v4(4000, 6060, SECRET);
        let mut p = Packet::with_capacity(weft_packet::buf::HEADROOM + f.len());
        p.push_back(f.len()).expect("room").copy_from_slice(&f);
        reparse(&mut p);
        let mut enc = make("encrypt", KEY);
        let mut h = Harness::default();
        assert_eq!(h.run(enc.as_mut(), 0, &mut p), Verdict::Drop);
        assert_eq!(enc.report()["no_room"], 1);
        assert_eq!(p.data(), &f[..], "a dropped packet is left whole");
        let big = v4(1, 2, &vec![0; 65535 - 28]);
        assert_eq!(run(enc.as_mut(), &big).0, Verdict::Drop);
        assert_eq!(enc.report()["too_big"], 1);
    }

    #[test]
    fn encrypted_addresses_stay_routable() {
        // The sealed packet is what a router forwards: it parses, its
        // destination is the inner one, and an IPv4 router may decrement
        // the TTL and fix the checksum without breaking decryption.
        let f = build::udp4([2; 6], [4; 6], A4, Ipv4Addr::new(10, 0, 7, 2), 1, 6060, 9, SECRET);
        let (_, mut s) = run(make("encrypt", KEY).as_mut(), &f);
        let h = view::parse(&s).unwrap();
        assert_eq!(h.flow.dst, u128::from(u32::from(Ipv4Addr::new(10, 0, 7, 2))));
        s[22] -= 1;
        s[24..26].copy_from_slice(&[0, 0]);
        let c = checksum::checksum(&s[14..34]);
        s[24..26].copy_from_slice(&c.to_be_bytes());
        assert_eq!(run(make("decrypt", KEY).as_mut(), &s), (Verdict::Continue, f));
    }

    proptest! {
        #[test]
        fn decrypt_never_opens_forgeries(payload in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut dec = make("decrypt", KEY);
            let spi = dec.report()["spi"].as_str().unwrap().trim_start_matches("0x").to_string();
            let mut esp = u32::from_str_radix(&spi, 16).unwrap().to_be_bytes().to_vec();
            esp.extend_from_slice(&payload);
            let f = build::udp4([2; 6], [4; 6], A4, B4, 1, 2, 64, &[]);
            let mut frame = f[..34].to_vec();
            frame[23] = 50;
            frame.extend_from_slice(&esp);
            let total = (frame.len() - 14) as u16;
            frame[16..18].copy_from_slice(&total.to_be_bytes());
            frame[24..26].copy_from_slice(&[0, 0]);
            let c = checksum::checksum(&frame[14..34]);
            frame[24..26].copy_from_slice(&c.to_be_bytes());
            // Forging an ICV by chance is a 2^-128 event.
            prop_assert_eq!(run(dec.as_mut(), &frame).0, Verdict::Drop);
        }

        #[test]
        fn crypto_never_panics_on_garbage(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
            l3 in 0u16..80, l4 in 0u16..120, v6 in any::<bool>(), udp in any::<bool>(),
        ) {
            let mut h = Harness::default();
            let mut enc = make("encrypt", KEY);
            let mut dec = make("decrypt", KEY);
            let mut ld = make("layerdrop", "1000 offset=3");
            let mut nm = make("netmonitor", "");
            // Header prefix valid, then garbage; and stale metadata.
            let mut f = v4(4000, 6060, b"");
            f.extend_from_slice(&bytes);
            for frame in [f, bytes.clone()] {
                let mut p = Packet::from_bytes(&frame);
                p.meta.l3 = l3;
                p.meta.l4 = l4;
                p.meta.flow.family = if v6 { weft_packet::flow::Family::V6 } else { weft_packet::flow::Family::V4 };
                p.meta.flow.proto = if udp { 17 } else { 6 };
                h.run(enc.as_mut(), 0, &mut p);
                h.run(dec.as_mut(), 0, &mut p);
                h.run(ld.as_mut(), 0, &mut p);
                h.run(nm.as_mut(), 0, &mut p);
            }
        }
    }
}
