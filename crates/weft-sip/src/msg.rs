//! One SIP message in one UDP datagram (RFC 3261 §7, §18.1.1).
//!
//! [`Message::parse`] checks, in order: size, the end of the header section
//! (`CRLF CRLF`), UTF-8 of the header section, the start line, each header
//! line (`name: value`, continuation lines folded in), the headers every
//! message must carry (Via, From, To, Call-ID, CSeq), the CSeq (its method
//! must be the request's), and Content-Length against the bytes present.
//! The first defect found is the error; nothing panics on any input.
//!
//! Decisions: only `CRLF` ends a line (a bare `LF` is part of the line, and
//! a message without `CRLF CRLF` is [`Error::Truncated`]); at most
//! [`MAX_LEN`] bytes and [`MAX_HEADERS`] header lines; header values are
//! returned as written, folding included, so a module copying a header into
//! an answer copies it exactly.

use core::fmt;

/// Largest message accepted, bytes. RFC 3261 §18.1.1 asks UDP senders to
/// stay under the path MTU (~1300 bytes) and allows up to 65,535; 8 KiB
/// holds every real REGISTER, INVITE with SDP and keep-alive while bounding
/// the work a module spends on one datagram.
pub const MAX_LEN: usize = 8192;
/// Most header lines (after folding) a message may have.
pub const MAX_HEADERS: usize = 100;

/// What is wrong with a message: the first defect found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// No bytes.
    Empty,
    /// Longer than [`MAX_LEN`].
    TooLarge,
    /// No `CRLF CRLF` ending the header section (cut short).
    Truncated,
    /// The header section is not UTF-8.
    NotUtf8,
    /// The first line is neither `METHOD URI SIP/2.0` nor `SIP/2.0 CODE REASON`.
    BadStartLine,
    /// A header line without `name:`, or a continuation line first.
    BadHeader,
    /// More than [`MAX_HEADERS`] header lines.
    TooManyHeaders,
    /// A header every message must carry is absent (its name).
    Missing(&'static str),
    /// CSeq is not `NUMBER METHOD`, or its method is not the request's.
    BadCSeq,
    /// Content-Length is not a number, or more than the bytes present.
    BadLength,
    /// An answer does not fit the buffer given.
    NoRoom,
    /// Not a request (an answer can only be built from a request).
    NotRequest,
}

impl Error {
    /// Every reason name, in [`Error::index`] order (for counter tables).
    pub const REASONS: [&'static str; 15] = [
        "empty",
        "too-large",
        "truncated",
        "not-utf8",
        "bad-start-line",
        "bad-header",
        "too-many-headers",
        "missing-via",
        "missing-cseq",
        "missing-header",
        "bad-cseq",
        "bad-length",
        "no-room",
        "not-request",
        "other",
    ];

    /// This error's position in [`Error::REASONS`].
    pub fn index(&self) -> usize {
        let r = self.reason();
        Self::REASONS
            .iter()
            .position(|x| *x == r)
            .unwrap_or(Self::REASONS.len() - 1)
    }

    /// A short name for counters and logs (`too-large`, `missing-via`, …).
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Empty => "empty",
            Error::TooLarge => "too-large",
            Error::Truncated => "truncated",
            Error::NotUtf8 => "not-utf8",
            Error::BadStartLine => "bad-start-line",
            Error::BadHeader => "bad-header",
            Error::TooManyHeaders => "too-many-headers",
            Error::Missing("Via") => "missing-via",
            Error::Missing("CSeq") => "missing-cseq",
            Error::Missing(_) => "missing-header",
            Error::BadCSeq => "bad-cseq",
            Error::BadLength => "bad-length",
            Error::NoRoom => "no-room",
            Error::NotRequest => "not-request",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Missing(h) => write!(f, "SIP message without a {h} header"),
            e => write!(f, "bad SIP message: {}", e.reason()),
        }
    }
}

/// The first line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartLine<'a> {
    /// `METHOD Request-URI SIP/2.0`
    Request {
        /// The method (a token, case-sensitive: RFC 3261 §7.1).
        method: &'a str,
        /// The Request-URI as written.
        uri: &'a str,
    },
    /// `SIP/2.0 CODE REASON`
    Response {
        /// Status code, 100..=699.
        code: u16,
        /// Reason phrase.
        reason: &'a str,
    },
}

/// One header: its name as written and its value, trimmed, folding kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    /// The name as written (`Via`, `v`, `call-id`).
    pub name: &'a str,
    /// The value as written, without surrounding white space.
    pub value: &'a str,
}

/// A parsed SIP message, borrowing the datagram.
#[derive(Clone, Copy, Debug)]
pub struct Message<'a> {
    /// The first line.
    pub start: StartLine<'a>,
    /// The header lines after the start line, up to (without) the blank line.
    head: &'a str,
    /// The body: Content-Length bytes, or every byte after the blank line.
    pub body: &'a [u8],
    /// The first value of each of [`KNOWN`], found while parsing (the
    /// modules ask for these on every packet).
    known: [Option<&'a str>; 6],
}

/// The headers [`Message::parse`] records as it goes.
const KNOWN: [&str; 6] = ["Via", "From", "To", "Call-ID", "CSeq", "Content-Length"];

/// The long name of a compact header name (RFC 3261 §7.3.3, RFC 3265 `o`).
fn long_name(n: &str) -> &str {
    if n.len() != 1 {
        return n;
    }
    match n.as_bytes()[0].to_ascii_lowercase() {
        b'v' => "Via",
        b'f' => "From",
        b't' => "To",
        b'i' => "Call-ID",
        b'l' => "Content-Length",
        b'm' => "Contact",
        b'c' => "Content-Type",
        b'o' => "Event",
        b'k' => "Supported",
        b's' => "Subject",
        b'e' => "Content-Encoding",
        _ => n,
    }
}

/// The position in [`KNOWN`] of header `name` (case-insensitive, compact
/// forms), decided by length first: this runs for every header of every
/// packet.
fn known_index(name: &str) -> Option<usize> {
    let b = name.as_bytes();
    let is = |w: &str| b.eq_ignore_ascii_case(w.as_bytes());
    match b.len() {
        1 => match b[0].to_ascii_lowercase() {
            b'v' => Some(0),
            b'f' => Some(1),
            b't' => Some(2),
            b'i' => Some(3),
            b'l' => Some(5),
            _ => None,
        },
        2 if is("to") => Some(2),
        3 if is("via") => Some(0),
        4 if is("from") => Some(1),
        4 if is("cseq") => Some(4),
        7 if is("call-id") => Some(3),
        14 if is("content-length") => Some(5),
        _ => None,
    }
}

/// `a` and `b` name the same header (case-insensitive, compact forms).
pub fn same_name(a: &str, b: &str) -> bool {
    long_name(a).eq_ignore_ascii_case(long_name(b))
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&c))
}

/// The first `CRLF` in `hay`.
fn find_crlf(hay: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(p) = hay.get(i..)?.iter().position(|&c| c == b'\r') {
        if hay.get(i + p + 1) == Some(&b'\n') {
            return Some(i + p);
        }
        i += p + 1;
    }
    None
}

/// The first `CRLF CRLF` in `hay`.
fn find_blank_line(hay: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(p) = find_crlf(hay.get(i..)?) {
        if hay.get(i + p + 2..i + p + 4) == Some(b"\r\n") {
            return Some(i + p);
        }
        i += p + 2;
    }
    None
}

/// Iterator over the header lines of a [`Message`], folding continuation
/// lines into the header they continue.
pub struct Headers<'a> {
    rest: &'a str,
}

impl<'a> Headers<'a> {
    /// The next logical header line (continuation lines folded in).
    fn next_line(&mut self) -> Option<&'a str> {
        if self.rest.is_empty() {
            return None;
        }
        // The header runs to a CRLF not followed by SP or HT.
        let b = self.rest.as_bytes();
        let mut end = b.len();
        let mut i = 0;
        while let Some(p) = find_crlf(&b[i..]) {
            let at = i + p;
            if matches!(b.get(at + 2), Some(b' ') | Some(b'\t')) {
                i = at + 2;
                continue;
            }
            end = at;
            break;
        }
        let line = &self.rest[..end];
        self.rest = self.rest.get(end + 2..).unwrap_or("");
        Some(line)
    }
}

/// `s` without leading and trailing bytes in `set` (ASCII only, so the
/// result stays on character boundaries).
fn trim_ascii_set<'s>(s: &'s str, set: &[u8]) -> &'s str {
    let b = s.as_bytes();
    let start = b.iter().position(|c| !set.contains(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !set.contains(c)).map_or(start, |e| e + 1);
    &s[start..end.max(start)]
}

/// Split a header line at its colon: (name, value), trimmed.
fn split_header(line: &str) -> Option<Header<'_>> {
    let colon = line.as_bytes().iter().position(|&c| c == b':')?;
    Some(Header {
        name: trim_ascii_set(&line[..colon], b" \t"),
        value: trim_ascii_set(&line[colon + 1..], b" \t\r\n"),
    })
}

impl<'a> Iterator for Headers<'a> {
    type Item = Header<'a>;

    fn next(&mut self) -> Option<Header<'a>> {
        loop {
            // Checked by `parse`: every line has a colon.
            if let Some(h) = split_header(self.next_line()?) {
                return Some(h);
            }
        }
    }
}

impl<'a> Message<'a> {
    /// Parse one datagram's payload (see the module documentation for the
    /// checks, in order).
    pub fn parse(data: &'a [u8]) -> Result<Message<'a>, Error> {
        if data.is_empty() {
            return Err(Error::Empty);
        }
        if data.len() > MAX_LEN {
            return Err(Error::TooLarge);
        }
        let end = find_blank_line(data).ok_or(Error::Truncated)?;
        let text = core::str::from_utf8(&data[..end]).map_err(|_| Error::NotUtf8)?;
        let after = &data[end + 4..];
        let (first, head) = match text.find("\r\n") {
            Some(i) => (&text[..i], &text[i + 2..]),
            None => (text, ""),
        };
        let start = parse_start(first)?;
        // Every logical line: `token *WS ":" value` (continuation lines
        // folded in; a continuation first is an error). One pass also
        // records the headers every module asks for.
        if head.starts_with([' ', '\t']) {
            return Err(Error::BadHeader);
        }
        let mut count = 0;
        let mut known = [None; 6];
        let mut lines = Headers { rest: head };
        while let Some(line) = lines.next_line() {
            let h = split_header(line).ok_or(Error::BadHeader)?;
            if !is_token(h.name) {
                return Err(Error::BadHeader);
            }
            count += 1;
            if count > MAX_HEADERS {
                return Err(Error::TooManyHeaders);
            }
            if let Some(k) = known_index(h.name) {
                known[k].get_or_insert(h.value);
            }
        }
        let mut m = Message {
            start,
            head,
            body: after,
            known,
        };
        for (h, v) in KNOWN.iter().zip(known.iter()).take(5) {
            if v.is_none() {
                return Err(Error::Missing(h));
            }
        }
        let (_, cseq_method) = m.cseq().ok_or(Error::BadCSeq)?;
        if let StartLine::Request { method, .. } = start {
            if method != cseq_method {
                return Err(Error::BadCSeq);
            }
        }
        if let Some(l) = m.header("Content-Length") {
            let n = parse_u32(l).ok_or(Error::BadLength)? as usize;
            m.body = after.get(..n).ok_or(Error::BadLength)?;
        }
        Ok(m)
    }

    /// The header lines, in order.
    pub fn headers(&self) -> Headers<'a> {
        Headers { rest: self.head }
    }

    /// The first header called `name` (case-insensitive; compact forms
    /// match their long names).
    pub fn header(&self, name: &str) -> Option<&'a str> {
        match known_index(name) {
            Some(k) => self.known[k],
            None => self.headers().find(|h| same_name(h.name, name)).map(|h| h.value),
        }
    }

    /// The request's method; `None` for a response.
    pub fn method(&self) -> Option<&'a str> {
        match self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The response's status code; `None` for a request.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// Call-ID.
    pub fn call_id(&self) -> Option<&'a str> {
        self.header("Call-ID")
    }

    /// CSeq as (number, method).
    pub fn cseq(&self) -> Option<(u32, &'a str)> {
        let v = self.header("CSeq")?;
        let mut it = v.split_ascii_whitespace();
        let n = parse_u32(it.next()?)?;
        let m = it.next()?;
        (it.next().is_none() && is_token(m)).then_some((n, m))
    }

    /// The topmost Via value (the first of the first Via header).
    pub fn top_via(&self) -> Option<&'a str> {
        let v = self.header("Via")?;
        Some(v.split(',').next().unwrap_or(v).trim())
    }

    /// The request belongs to a dialog: its To header has a tag (RFC 3261
    /// §12.2: requests within a dialog carry the remote tag).
    pub fn in_dialog(&self) -> bool {
        self.header("To").and_then(|t| param(addr_params(t), "tag")).is_some()
    }
}

fn parse_start(line: &str) -> Result<StartLine<'_>, Error> {
    let mut it = line.splitn(3, ' ');
    let (a, b, c) = match (it.next(), it.next(), it.next()) {
        (Some(a), Some(b), Some(c)) => (a, b, c),
        _ => return Err(Error::BadStartLine),
    };
    if a == "SIP/2.0" {
        let code = parse_u32(b).filter(|c| (100..700).contains(c) && b.len() == 3);
        let code = code.ok_or(Error::BadStartLine)? as u16;
        return Ok(StartLine::Response { code, reason: c });
    }
    if c == "SIP/2.0" && is_token(a) && !b.is_empty() && !b.contains([' ', '\t']) {
        return Ok(StartLine::Request { method: a, uri: b });
    }
    Err(Error::BadStartLine)
}

/// A decimal number of at most 9 digits (no sign, no white space).
pub fn parse_u32(s: &str) -> Option<u32> {
    let s = s.trim();
    if s.is_empty() || s.len() > 9 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The header parameters of a name-addr or addr-spec value (`From`, `To`):
/// what follows the `>` of `<URI>`, or the first `;` without brackets.
pub fn addr_params(v: &str) -> &str {
    match v.rfind('>') {
        Some(i) => &v[i + 1..],
        None => v.find(';').map(|i| &v[i..]).unwrap_or(""),
    }
}

/// The value of parameter `name` in `;a=1;b;c="x"` (case-insensitive
/// name; `Some("")` for a parameter without a value; quotes removed).
pub fn param<'a>(params: &'a str, name: &str) -> Option<&'a str> {
    for p in params.split(';').skip(1) {
        let (n, v) = match p.find('=') {
            Some(i) => (&p[..i], p[i + 1..].trim()),
            None => (p, ""),
        };
        if n.trim().eq_ignore_ascii_case(name) {
            return Some(v.trim_matches('"'));
        }
    }
    None
}

/// Write a response to `req` into `out`: the status line, every Via of the
/// request in order, From, To (with `;tag=TAG` added when it has none),
/// Call-ID, CSeq, the `extra` headers, `Content-Length: 0` (RFC 3261
/// §8.2.6.2). Returns its length.
pub fn write_response(
    req: &Message<'_>,
    code: u16,
    reason: &str,
    tag: &str,
    extra: &[(&str, &str)],
    out: &mut [u8],
) -> Result<usize, Error> {
    if req.method().is_none() {
        return Err(Error::NotRequest);
    }
    let mut o = crate::Out::new(out);
    o.put(b"SIP/2.0 ")?;
    o.put_u64(code as u64)?;
    o.put(b" ")?;
    o.put(reason.as_bytes())?;
    o.put(b"\r\n")?;
    for h in req.headers().filter(|h| same_name(h.name, "Via")) {
        o.put(b"Via: ")?;
        o.put(h.value.as_bytes())?;
        o.put(b"\r\n")?;
    }
    for name in ["From", "To", "Call-ID", "CSeq"] {
        let v = req.header(name).ok_or(Error::Missing("header"))?;
        o.put(name.as_bytes())?;
        o.put(b": ")?;
        o.put(v.as_bytes())?;
        if name == "To" && param(addr_params(v), "tag").is_none() {
            o.put(b";tag=")?;
            o.put(tag.as_bytes())?;
        }
        o.put(b"\r\n")?;
    }
    for (n, v) in extra {
        o.put(n.as_bytes())?;
        o.put(b": ")?;
        o.put(v.as_bytes())?;
        o.put(b"\r\n")?;
    }
    o.put(b"Content-Length: 0\r\n\r\n")?;
    Ok(o.len())
}

/// A To tag for an answer to `req`, the same for every retransmission of
/// it: 8 hex digits of a hash of its Call-ID and CSeq.
pub fn tag_for(req: &Message<'_>) -> [u8; 8] {
    let mut h: u32 = 0x811c_9dc5;
    for b in req
        .call_id()
        .unwrap_or("")
        .bytes()
        .chain(req.header("CSeq").unwrap_or("").bytes())
    {
        h = (h ^ b as u32).wrapping_mul(0x0100_0193);
    }
    let mut t = [0u8; 8];
    for (i, d) in t.iter_mut().enumerate() {
        *d = b"0123456789abcdef"[((h >> (28 - 4 * i)) & 15) as usize];
    }
    t
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const REGISTER: &[u8] = b"REGISTER sip:10.0.2.2 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.1.2:5061;branch=z9hG4bK-1;rport\r\n\
v: SIP/2.0/UDP 10.9.9.9:5060;branch=z9hG4bK-0\r\n\
From: <sip:ua1@10.0.2.2>;tag=abc\r\n\
To: <sip:ua1@10.0.2.2>\r\n\
Call-ID: 1-42@10.0.1.2\r\n\
CSeq: 1 REGISTER\r\n\
Subject: a folded\r\n  header\r\n\
Content-Length: 0\r\n\r\n";

    #[test]
    fn parse_a_register() {
        let m = Message::parse(REGISTER).unwrap();
        assert_eq!(
            m.start,
            StartLine::Request {
                method: "REGISTER",
                uri: "sip:10.0.2.2"
            }
        );
        assert_eq!(m.call_id(), Some("1-42@10.0.1.2"));
        assert_eq!(m.cseq(), Some((1, "REGISTER")));
        assert_eq!(m.top_via(), Some("SIP/2.0/UDP 10.0.1.2:5061;branch=z9hG4bK-1;rport"));
        assert_eq!(m.header("subject"), Some("a folded\r\n  header"));
        assert_eq!(m.headers().filter(|h| same_name(h.name, "via")).count(), 2);
        assert!(!m.in_dialog());
        assert!(m.body.is_empty());
    }

    #[test]
    fn each_defect_is_its_error() {
        let cases: &[(&[u8], Error)] = &[
            (b"", Error::Empty),
            (&[b'a'; MAX_LEN + 1], Error::TooLarge),
            (&REGISTER[..60], Error::Truncated),
            (b"OPTIONS sip:x SIP/2.0\r\nVia: \xff\r\n\r\n", Error::NotUtf8),
            (b"HELLO\r\n\r\n", Error::BadStartLine),
            (b"SIP/2.0 99 Low\r\n\r\n", Error::BadStartLine),
            (b"OPTIONS sip:x SIP/2.0\r\n folded first\r\n\r\n", Error::BadHeader),
            (b"OPTIONS sip:x SIP/2.0\r\nno colon\r\n\r\n", Error::BadHeader),
            (
                b"OPTIONS sip:x SIP/2.0\r\nFrom: a\r\nTo: b\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n",
                Error::Missing("Via"),
            ),
            (
                b"OPTIONS sip:x SIP/2.0\r\nVia: a\r\nFrom: a\r\nTo: b\r\nCall-ID: c\r\n\r\n",
                Error::Missing("CSeq"),
            ),
            (
                b"OPTIONS sip:x SIP/2.0\r\nVia: a\r\nFrom: a\r\nTo: b\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n",
                Error::BadCSeq,
            ),
            (
                b"OPTIONS sip:x SIP/2.0\r\nVia: a\r\nFrom: a\r\nTo: b\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nl: 5\r\n\r\nabc",
                Error::BadLength,
            ),
        ];
        for (bytes, e) in cases {
            assert_eq!(
                Message::parse(bytes).err(),
                Some(*e),
                "{:?}",
                core::str::from_utf8(bytes)
            );
        }
        let mut many = [0u8; 4096];
        let mut o = crate::Out::new(&mut many);
        o.put(b"OPTIONS sip:x SIP/2.0\r\n").unwrap();
        for _ in 0..=MAX_HEADERS {
            o.put(b"X-A: 1\r\n").unwrap();
        }
        o.put(b"\r\n").unwrap();
        let n = o.len();
        assert_eq!(Message::parse(&many[..n]).err(), Some(Error::TooManyHeaders));
    }

    #[test]
    fn a_response_copies_vias_and_adds_a_tag() {
        let m = Message::parse(REGISTER).unwrap();
        let mut buf = [0xa5u8; 1024];
        let n = write_response(&m, 200, "OK", "t1", &[("Expires", "60")], &mut buf).unwrap();
        let text = core::str::from_utf8(&buf[..n]).unwrap();
        assert_eq!(
            text,
            "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 10.0.1.2:5061;branch=z9hG4bK-1;rport\r\n\
Via: SIP/2.0/UDP 10.9.9.9:5060;branch=z9hG4bK-0\r\n\
From: <sip:ua1@10.0.2.2>;tag=abc\r\n\
To: <sip:ua1@10.0.2.2>;tag=t1\r\n\
Call-ID: 1-42@10.0.1.2\r\n\
CSeq: 1 REGISTER\r\n\
Expires: 60\r\n\
Content-Length: 0\r\n\r\n"
        );
        assert!(buf[n..].iter().all(|&b| b == 0xa5), "nothing written past the answer");
        assert_eq!(
            write_response(&m, 200, "OK", "t", &[], &mut buf[..50]),
            Err(Error::NoRoom)
        );
        let r = Message::parse(&buf[..n]).unwrap();
        assert_eq!(
            write_response(&r, 200, "OK", "t", &[], &mut [0; 512]),
            Err(Error::NotRequest)
        );
    }

    #[test]
    fn every_reason_has_its_index() {
        for e in [
            Error::Empty,
            Error::Missing("Via"),
            Error::Missing("To"),
            Error::NotRequest,
        ] {
            assert_eq!(Error::REASONS[e.index()], e.reason());
        }
    }

    #[test]
    fn known_headers_by_any_name() {
        for (i, k) in KNOWN.iter().enumerate() {
            assert_eq!(known_index(k), Some(i));
            assert_eq!(known_index(&k.to_ascii_uppercase()), Some(i));
        }
        for (c, i) in [("v", 0), ("F", 1), ("t", 2), ("i", 3), ("L", 5)] {
            assert_eq!(known_index(c), Some(i));
            assert!(same_name(c, KNOWN[i]));
        }
        assert_eq!(known_index("Event"), None);
        assert_eq!(known_index("m"), None);
    }

    #[test]
    fn tags_and_params() {
        assert_eq!(param(addr_params("<sip:a@b;x=1>;tag=9"), "tag"), Some("9"));
        assert_eq!(param(addr_params("sip:a@b;TAG=7"), "tag"), Some("7"));
        assert_eq!(param(addr_params("\"A;B\" <sip:a@b>"), "tag"), None);
        assert_eq!(param(";oc-algo=\"loss,rate\"", "oc-algo"), Some("loss,rate"));
    }
}
