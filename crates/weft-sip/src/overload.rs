//! SIP overload control at the edge: RFC 7339's loss-based algorithm
//! (`oc-algo="loss"`, RFC 7339 §6) applied on a server's behalf.
//!
//! The server states in the topmost Via of its responses how much of the
//! *new* traffic it wants shed: `oc=P` (percent, 0–100), `oc-algo`,
//! `oc-validity=MS` (how long the value holds; 0 ends overload control) and
//! `oc-seq=N.N` (ordering: an older or equal sequence is ignored). The edge
//! ([`Shedder`]) rejects that share of the candidate requests with
//! `503 Service Unavailable` and `Retry-After` ([`write_503`]) before they
//! reach the server.
//!
//! * **Candidates** ([`is_candidate`]): INVITE and REGISTER outside a
//!   dialog (their To has no tag). Never in-dialog requests — BYE, ACK,
//!   re-INVITE, … — nor responses.
//! * **Which ones:** RFC 7339 leaves the choice to the client. Decision: a
//!   request's fate is a function of its Call-ID — shed when a hash of the
//!   Call-ID, modulo 100, is below `P` — so a retransmission of an admitted
//!   INVITE (the server's answer delayed by its own overload) is admitted
//!   again instead of being answered 503 while the server works on it, and
//!   no state or random number generator is needed. Over many calls `P`%
//!   are shed.
//! * **Defaults:** an `oc` without `oc-validity` holds 500 ms (RFC 7339
//!   §5.2's default); an `oc-algo` not naming `loss` is ignored (this edge
//!   implements only `loss`); `oc` above 100 is read as 100.

use crate::msg::{addr_params, param, write_response, Error, Message};

/// `oc-validity` when the server gives none, ms (RFC 7339 §5.2).
pub const DEFAULT_VALIDITY_MS: u64 = 500;

/// The overload-control parameters of one Via value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OcParams {
    /// `oc`: percent of candidates to shed (`None`: no `oc` with a value).
    pub oc: Option<u8>,
    /// `oc-algo` names `loss` (or is absent: loss is the default).
    pub loss: bool,
    /// `oc-validity`, ms.
    pub validity_ms: Option<u64>,
    /// `oc-seq` in millionths (`1282321615.782` → 1282321615782000).
    pub seq: Option<u64>,
}

impl OcParams {
    /// Read the parameters of a Via value (`SIP/2.0/UDP h:p;branch=…;oc=20`).
    pub fn from_via(via: &str) -> OcParams {
        let v = match via.find(';') {
            Some(i) => &via[i..],
            None => "",
        };
        let oc = param(v, "oc").and_then(crate::msg::parse_u32).map(|p| p.min(100) as u8);
        let loss = match param(v, "oc-algo") {
            None => true,
            Some(a) => a.split(',').any(|x| x.trim().eq_ignore_ascii_case("loss")),
        };
        let validity_ms = param(v, "oc-validity").and_then(crate::msg::parse_u32).map(u64::from);
        let seq = param(v, "oc-seq").and_then(parse_seq);
        OcParams {
            oc,
            loss,
            validity_ms,
            seq,
        }
    }
}

/// `123.456` as millionths; at most 12 integer and 6 fraction digits.
fn parse_seq(s: &str) -> Option<u64> {
    let (i, f) = match s.find('.') {
        Some(p) => (&s[..p], &s[p + 1..]),
        None => (s, ""),
    };
    if i.is_empty() || i.len() > 12 || f.len() > 6 {
        return None;
    }
    if !i.bytes().chain(f.bytes()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut v: u64 = 0;
    for c in i.bytes() {
        v = v * 10 + (c - b'0') as u64;
    }
    let mut frac: u64 = 0;
    for k in 0..6 {
        frac = frac * 10 + f.as_bytes().get(k).map(|c| (c - b'0') as u64).unwrap_or(0);
    }
    Some(v * 1_000_000 + frac)
}

/// A request overload control may shed: INVITE or REGISTER outside a dialog.
pub fn is_candidate(m: &Message<'_>) -> bool {
    matches!(m.method(), Some("INVITE") | Some("REGISTER")) && !m.in_dialog()
}

/// The edge's view of one server's overload state (sans-IO: the caller
/// passes the time in ms).
#[derive(Clone, Copy, Debug, Default)]
pub struct Shedder {
    /// Percent shed while valid.
    pub oc: u8,
    /// Time (ms) the current value stops holding.
    pub until_ms: u64,
    /// The newest `oc-seq` applied.
    pub seq: Option<u64>,
}

impl Shedder {
    /// Take a response's parameters into account; `true` when they changed
    /// the state (a newer sequence, or the first without one).
    pub fn feedback(&mut self, now_ms: u64, p: &OcParams) -> bool {
        let Some(oc) = p.oc else { return false };
        if !p.loss {
            return false;
        }
        if let (Some(new), Some(old)) = (p.seq, self.seq) {
            if new <= old {
                return false;
            }
        }
        let validity = p.validity_ms.unwrap_or(DEFAULT_VALIDITY_MS);
        self.oc = if validity == 0 { 0 } else { oc };
        self.until_ms = now_ms.saturating_add(validity);
        if p.seq.is_some() {
            self.seq = p.seq;
        }
        true
    }

    /// The share in force at `now_ms`, percent.
    pub fn current(&self, now_ms: u64) -> u8 {
        if now_ms < self.until_ms {
            self.oc
        } else {
            0
        }
    }

    /// Decide for one candidate request, named by its Call-ID: `true`
    /// sheds it.
    pub fn shed(&self, now_ms: u64, call_id: &str) -> bool {
        let oc = self.current(now_ms) as u32;
        oc > 0 && bucket(call_id) < oc
    }
}

/// A Call-ID's bucket, 0..100: FNV-1a, then murmur3's finaliser so that
/// Call-IDs differing in one digit spread evenly.
pub fn bucket(call_id: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in call_id.bytes() {
        h = (h ^ b as u32).wrapping_mul(0x0100_0193);
    }
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h % 100
}

/// The To tag of the edge's 503s: `oc` and 8 hex digits of a hash of the
/// Call-ID, so that the ACK a user agent sends for the 503 (RFC 3261
/// §17.1.1.3: to the same next hop, with the response's To tag) is known
/// again without any state, and absorbed at the edge.
pub fn shed_tag(req: &Message<'_>) -> [u8; 10] {
    let mut h: u32 = 0x811c_9dc5;
    for b in req.call_id().unwrap_or("").bytes() {
        h = (h ^ b as u32).wrapping_mul(0x0100_0193);
    }
    let mut t = [b'o', b'c', 0, 0, 0, 0, 0, 0, 0, 0];
    for (i, d) in t[2..].iter_mut().enumerate() {
        *d = b"0123456789abcdef"[((h >> (28 - 4 * i)) & 15) as usize];
    }
    t
}

/// `m` is the ACK of a 503 the edge sent (its To tag is [`shed_tag`]).
pub fn is_ack_of_shed(m: &Message<'_>) -> bool {
    if m.method() != Some("ACK") {
        return false;
    }
    let tag = m.header("To").and_then(|t| param(addr_params(t), "tag"));
    tag.is_some_and(|t| t.as_bytes() == shed_tag(m))
}

/// Write `503 Service Unavailable` with `Retry-After: SECONDS` answering
/// `req` (RFC 7339 §5.3 through RFC 3261 §21.5.4), To tag [`shed_tag`].
pub fn write_503(req: &Message<'_>, retry_after_s: u32, out: &mut [u8]) -> Result<usize, Error> {
    let mut num = [0u8; 12];
    let mut o = crate::Out::new(&mut num);
    o.put_u64(retry_after_s as u64)?;
    let n = o.len();
    let ra = core::str::from_utf8(&num[..n]).map_err(|_| Error::NoRoom)?;
    let tag = shed_tag(req);
    let tag = core::str::from_utf8(&tag).map_err(|_| Error::NoRoom)?;
    write_response(req, 503, "Service Unavailable", tag, &[("Retry-After", ra)], out)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;
    use std::string::String;
    use std::vec::Vec;

    #[test]
    fn via_parameters() {
        let p = OcParams::from_via(
            "SIP/2.0/UDP 10.0.2.2:5060;branch=z9hG4bK1;oc=20;oc-algo=\"loss,rate\";oc-validity=1000;oc-seq=1282321615.782",
        );
        assert_eq!(
            p,
            OcParams {
                oc: Some(20),
                loss: true,
                validity_ms: Some(1000),
                seq: Some(1_282_321_615_782_000)
            }
        );
        let rate_only = OcParams::from_via("SIP/2.0/UDP h;oc=20;oc-algo=\"rate\"");
        assert!(!rate_only.loss);
        assert_eq!(OcParams::from_via("SIP/2.0/UDP h;oc").oc, None);
        assert_eq!(OcParams::from_via("SIP/2.0/UDP h;oc=250").oc, Some(100));
        assert_eq!(parse_seq("1.2.3"), None);
    }

    #[test]
    fn sheds_the_share_while_valid_and_follows_sequence() {
        let mut s = Shedder::default();
        let p = |oc, validity, seq| OcParams {
            oc: Some(oc),
            loss: true,
            validity_ms: validity,
            seq,
        };
        assert!(s.feedback(0, &p(25, Some(1000), Some(5))));
        let ids: Vec<String> = (0..10_000).map(|i| format!("{i}-4242@10.0.1.2")).collect();
        let shed = ids.iter().filter(|c| s.shed(10, c)).count();
        assert!((2300..=2700).contains(&shed), "about 25% of 10,000: {shed}");
        // The same Call-ID always gets the same decision.
        assert!(ids.iter().all(|c| s.shed(10, c) == s.shed(999, c)));
        assert!(!s.feedback(20, &p(90, None, Some(5))), "same sequence ignored");
        assert!(ids.iter().all(|c| !s.shed(1000, c)), "expired");
        assert!(s.feedback(1000, &p(50, None, Some(6))));
        assert_eq!(s.current(1499), 50);
        assert_eq!(s.current(1500), 0, "500 ms default validity");
        assert!(s.feedback(1600, &p(50, Some(0), Some(7))));
        assert_eq!(s.current(1601), 0, "oc-validity=0 ends control");
    }

    #[test]
    fn candidates_and_503() {
        let invite = b"INVITE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n";
        let reinvite = b"INVITE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK2\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: c\r\nCSeq: 2 INVITE\r\n\r\n";
        let bye = b"BYE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK3\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: c\r\nCSeq: 3 BYE\r\n\r\n";
        let m = Message::parse(invite).unwrap();
        assert!(is_candidate(&m));
        assert!(!is_candidate(&Message::parse(reinvite).unwrap()));
        assert!(!is_candidate(&Message::parse(bye).unwrap()));
        let mut out = [0u8; 512];
        let n = write_503(&m, 3, &mut out).unwrap();
        let r = Message::parse(&out[..n]).unwrap();
        assert_eq!(r.status(), Some(503));
        assert_eq!(r.header("Retry-After"), Some("3"));
        assert_eq!(r.cseq(), Some((1, "INVITE")));
        // The UA's ACK for it carries the 503's To tag: known as ours.
        let to = r.header("To").unwrap();
        let mut ack = [0u8; 512];
        let mut o = crate::Out::new(&mut ack);
        o.put(b"ACK sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\nTo: ")
            .unwrap();
        o.put(to.as_bytes()).unwrap();
        o.put(b"\r\nCall-ID: c\r\nCSeq: 1 ACK\r\n\r\n").unwrap();
        let n = o.len();
        assert!(is_ack_of_shed(&Message::parse(&ack[..n]).unwrap()));
        let other =
            b"ACK sip:b@x SIP/2.0\r\nVia: v\r\nFrom: f\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: c\r\nCSeq: 1 ACK\r\n\r\n";
        assert!(!is_ack_of_shed(&Message::parse(other).unwrap()));
    }
}
