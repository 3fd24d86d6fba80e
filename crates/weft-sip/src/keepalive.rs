//! NAT keep-alives a SIP server need not see (NetServ §6.1, KeepAlive
//! Responder), and the answers an edge node gives on the server's behalf.
//!
//! * **CRLF ping** (RFC 5626 §4.4.1): a datagram of exactly `CRLF CRLF`;
//!   the answer is the pong, a single `CRLF`. (A lone `CRLF` is a pong:
//!   never answered.)
//! * **NOTIFY with `Event: keep-alive`** (the event package's name compared
//!   case-insensitively, parameters ignored).
//! * **OPTIONS**: any OPTIONS request, in or outside a dialog — user agents
//!   use it as a ping (RFC 3261 §11), and its answer carries nothing the
//!   edge cannot build. Decision: the `200 OK` has no `Allow`/`Accept`
//!   headers (the server's capabilities are not the edge's to state).
//!
//! Everything else — REGISTER above all — is not a keep-alive and goes on to
//! the server.
//!
//! **The contract: a keep-alive responder judges keep-alive candidates
//! only.** A *candidate* is the CRLF ping or a datagram whose start line
//! begins with the method `OPTIONS` or `NOTIFY` (methods are case-sensitive
//! tokens, RFC 3261 §7.1) and a space: [`candidate`] decides from the first
//! bytes. A candidate is parsed in full ([`Message::parse`]), and a
//! defective one is an error with the parser's reason (the module counts it
//! under `bad`). Any other datagram — REGISTER, INVITE, responses, and also
//! what is not SIP at all, cut short or empty — is not a keep-alive, is not
//! parsed and passes on untouched (`Ok(None)`; the module counts it as
//! `passed`): whether it is good SIP is the server's to judge. Nothing is
//! answered that a full parse of every datagram would not answer: a message
//! that parses as OPTIONS or NOTIFY starts with its method, so it is always
//! a candidate (the fuzz target checks this). Why: most datagrams to a
//! registrar are not keep-alives, and parsing each of them in full held
//! REGISTER traffic through the module to 0.06 of plain forwarding (`weft
//! bench --only netserv`; docs/sip.md, "Cost").

use crate::msg::{tag_for, write_response, Error, Message};

/// The answer to a CRLF ping.
pub const PONG: &[u8] = b"\r\n";
/// A CRLF ping.
pub const PING: &[u8] = b"\r\n\r\n";

/// A keep-alive's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeepAlive {
    /// RFC 5626's `CRLF CRLF`.
    CrlfPing,
    /// An OPTIONS request.
    Options,
    /// A NOTIFY of the `keep-alive` event.
    Notify,
}

impl KeepAlive {
    /// A short name for counters (`crlf`, `options`, `notify`).
    pub fn name(&self) -> &'static str {
        match self {
            KeepAlive::CrlfPing => "crlf",
            KeepAlive::Options => "options",
            KeepAlive::Notify => "notify",
        }
    }
}

/// The method tokens of the keep-alive requests, each with the space that
/// ends it in the start line.
const CANDIDATE_METHODS: [&[u8]; 2] = [b"OPTIONS ", b"NOTIFY "];

/// How many of a payload's first bytes [`candidate`] reads: given a
/// payload's first `CANDIDATE_PREFIX` bytes (or all of a shorter one), it
/// answers as for the whole payload.
pub const CANDIDATE_PREFIX: usize = 8;

/// Whether `payload` may be a keep-alive: the CRLF ping, or a request line
/// starting `OPTIONS ` or `NOTIFY `. Only candidates are parsed (see the
/// module documentation); this looks at no more than the first
/// [`CANDIDATE_PREFIX`] bytes (and at the length only to tell the ping,
/// shorter than that).
pub fn candidate(payload: &[u8]) -> bool {
    // The first 8 bytes as one word: `starts_with` is a call to `memcmp`'s
    // byte loop in wasm32, and most datagrams stop here.
    const OPTIONS: u64 = u64::from_le_bytes(*b"OPTIONS ");
    const NOTIFY: u64 = u64::from_le_bytes(*b"NOTIFY \0");
    const SEVEN: u64 = (1 << 56) - 1;
    match payload.first_chunk::<8>() {
        Some(w) => {
            let w = u64::from_le_bytes(*w);
            w == OPTIONS || w & SEVEN == NOTIFY
        }
        None => payload == PING || CANDIDATE_METHODS.iter().any(|m| payload.starts_with(m)),
    }
}

/// What a datagram to the server is: a keep-alive (`Ok(Some)`), not a
/// keep-alive (`Ok(None)`: not a [`candidate`], which is not parsed, or a
/// candidate that is another message, such as a NOTIFY of another event),
/// or a defective candidate (`Err`, the parser's reason).
pub fn classify(payload: &[u8]) -> Result<Option<KeepAlive>, Error> {
    if payload == PING {
        return Ok(Some(KeepAlive::CrlfPing));
    }
    if !candidate(payload) {
        return Ok(None);
    }
    let m = Message::parse(payload)?;
    Ok(kind_of(&m))
}

/// The keep-alive kind of a parsed message, if it is one.
pub fn kind_of(m: &Message<'_>) -> Option<KeepAlive> {
    match m.method()? {
        "OPTIONS" => Some(KeepAlive::Options),
        "NOTIFY" => {
            let ev = m.header("Event")?;
            let package = ev.split(';').next().unwrap_or("").trim();
            package.eq_ignore_ascii_case("keep-alive").then_some(KeepAlive::Notify)
        }
        _ => None,
    }
}

/// Write the `200 OK` answering `req` (see [`write_response`]; the To tag,
/// when the request has none, is [`tag_for`] the request).
pub fn write_ok(req: &Message<'_>, out: &mut [u8]) -> Result<usize, Error> {
    let tag = tag_for(req);
    let tag = core::str::from_utf8(&tag).map_err(|_| Error::NoRoom)?;
    write_response(req, 200, "OK", tag, &[], out)
}

/// Write the answer to a keep-alive payload: the pong, or a `200 OK`.
/// `Ok(None)` when the payload is not a keep-alive; `Err` for a defective
/// [`candidate`] only (as [`classify`]).
pub fn answer(payload: &[u8], out: &mut [u8]) -> Result<Option<(KeepAlive, usize)>, Error> {
    if payload == PING {
        let dst = out.get_mut(..PONG.len()).ok_or(Error::NoRoom)?;
        dst.copy_from_slice(PONG);
        return Ok(Some((KeepAlive::CrlfPing, PONG.len())));
    }
    if !candidate(payload) {
        return Ok(None);
    }
    let m = Message::parse(payload)?;
    match kind_of(&m) {
        Some(k) => Ok(Some((k, write_ok(&m, out)?))),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOTIFY: &[u8] = b"NOTIFY sip:srv@10.0.2.2 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.1.2:6000;branch=z9hG4bK-7\r\n\
From: <sip:ua@x>;tag=1\r\nTo: <sip:srv@x>\r\nCall-ID: c7\r\nCSeq: 3 NOTIFY\r\n\
o: Keep-Alive;id=1\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn classify_each_kind() {
        assert_eq!(classify(PING), Ok(Some(KeepAlive::CrlfPing)));
        assert_eq!(classify(PONG), Ok(None));
        assert_eq!(classify(NOTIFY), Ok(Some(KeepAlive::Notify)));
        let presence: &[u8] =
            b"NOTIFY sip:s SIP/2.0\r\nVia: v\r\nFrom: f\r\nTo: t\r\nCall-ID: c\r\nCSeq: 1 NOTIFY\r\nEvent: presence\r\n\r\n";
        assert_eq!(classify(presence), Ok(None));
        let options = b"OPTIONS sip:s SIP/2.0\r\nVia: v\r\nFrom: f\r\nTo: t\r\nCall-ID: c\r\nCSeq: 9 OPTIONS\r\n\r\n";
        assert_eq!(classify(options), Ok(Some(KeepAlive::Options)));
        assert_eq!(classify(crate::msg::tests::REGISTER), Ok(None));
        // A defective candidate is judged, with the parser's reason ...
        assert_eq!(classify(&options[..40]), Err(Error::Truncated));
        assert_eq!(classify(b"NOTIFY sip:s\r\n\r\n"), Err(Error::BadStartLine));
        // ... anything else passes unjudged: a truncated REGISTER, a
        // method in lower case (another token), what is not SIP at all.
        assert_eq!(classify(&crate::msg::tests::REGISTER[..60]), Ok(None));
        assert_eq!(classify(b"options sip:s SIP/2.0\r\n\r\n"), Ok(None));
        assert_eq!(classify(b"\r\n\r\n\r\n"), Ok(None));
        assert_eq!(classify(b""), Ok(None));
    }

    #[test]
    fn candidates_by_their_first_bytes() {
        // The word compare says what `starts_with` says, for every length.
        let naive = |p: &[u8]| p == PING || CANDIDATE_METHODS.iter().any(|m| p.starts_with(m));
        for whole in [
            &b"OPTIONS sip:s"[..],
            b"NOTIFY sip:s",
            b"NOTIFYX sip",
            b"OPTIONSX",
            b"\r\n\r\n",
            b"REGISTER ",
        ] {
            for n in 0..=whole.len() {
                assert_eq!(candidate(&whole[..n]), naive(&whole[..n]), "{:?}", &whole[..n]);
            }
        }
        // The prefix decides as the whole does.
        for whole in [
            &b"OPTIONS sip:s SIP/2.0\r\n"[..],
            b"REGISTER sip:s SIP/2.0\r\n",
            b"NOTIFY x",
            b"\r\n\r\n\r\n",
        ] {
            let prefix = &whole[..whole.len().min(CANDIDATE_PREFIX)];
            assert_eq!(candidate(prefix), candidate(whole), "{:?}", core::str::from_utf8(whole));
        }
        for c in [&b"\r\n\r\n"[..], b"OPTIONS ", b"OPTIONS sip:s SIP/2.0\r\n", b"NOTIFY x"] {
            assert!(candidate(c), "{:?}", core::str::from_utf8(c));
        }
        for c in [
            &b""[..],
            b"\r\n",
            b"\r\n\r\n\r\n",
            b"OPTIONS",
            b"OPTIONSX sip:s SIP/2.0",
            b"NOTIFY\tsip:s",
            b"Options sip:s SIP/2.0",
            b"REGISTER sip:s SIP/2.0",
            b"SIP/2.0 200 OK",
            b" OPTIONS sip:s SIP/2.0",
        ] {
            assert!(!candidate(c), "{:?}", core::str::from_utf8(c));
        }
    }

    /// Every message that parses as a keep-alive request is a candidate, so
    /// the fast path answers what a full parse would (the fuzz target
    /// checks the same on arbitrary bytes).
    #[test]
    fn every_parsed_keepalive_is_a_candidate() {
        let options = b"OPTIONS sip:s SIP/2.0\r\nVia: v\r\nFrom: f\r\nTo: t\r\nCall-ID: c\r\nCSeq: 9 OPTIONS\r\n\r\n";
        for m in [&options[..], NOTIFY] {
            let parsed = Message::parse(m).unwrap();
            assert!(kind_of(&parsed).is_some());
            assert!(candidate(m));
        }
    }

    #[test]
    fn answers() {
        let mut out = [0u8; 512];
        assert_eq!(answer(PING, &mut out), Ok(Some((KeepAlive::CrlfPing, 2))));
        assert_eq!(&out[..2], b"\r\n");
        let (k, n) = answer(NOTIFY, &mut out).unwrap().unwrap();
        assert_eq!(k, KeepAlive::Notify);
        let r = Message::parse(&out[..n]).unwrap();
        assert_eq!(r.status(), Some(200));
        assert_eq!(r.cseq(), Some((3, "NOTIFY")));
        assert_eq!(r.call_id(), Some("c7"));
        assert!(r.in_dialog(), "the answer's To has a tag");
        // The same request always gets the same tag.
        let mut again = [0u8; 512];
        let (_, n2) = answer(NOTIFY, &mut again).unwrap().unwrap();
        assert_eq!(out[..n], again[..n2]);
        assert_eq!(answer(crate::msg::tests::REGISTER, &mut out), Ok(None));
        assert_eq!(answer(&crate::msg::tests::REGISTER[..60], &mut out), Ok(None));
        assert_eq!(answer(&NOTIFY[..60], &mut out), Err(Error::Truncated));
    }
}
