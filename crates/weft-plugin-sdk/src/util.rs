//! Small parsers plugins need without an allocator: configuration words and
//! numbers out of flat JSON.

/// The value of `key=value` in a configuration string (words separated by
/// white space or commas, as the node's `Args`), else positional word `pos`.
pub fn config_get<'a>(config: &'a str, key: &str, pos: usize) -> Option<&'a str> {
    let words = config
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty());
    let mut positional = 0;
    let mut found = None;
    for w in words {
        match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                if k == key {
                    return Some(v);
                }
            }
            _ => {
                if positional == pos && found.is_none() {
                    found = Some(w);
                }
                positional += 1;
            }
        }
    }
    found
}

/// The first configuration key that is not in `known` (for "unknown key"
/// errors), if any.
pub fn config_unknown_key<'a>(config: &'a str, known: &[&str]) -> Option<&'a str> {
    config
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter_map(|w| w.split_once('=').map(|(k, _)| k))
        .find(|k| !known.contains(k))
}

/// Parse a decimal `u64`.
pub fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for b in s.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((b - b'0') as u64)?;
    }
    Some(v)
}

/// The unsigned integer value of `"key":` in flat JSON text (the first
/// occurrence at any depth).
pub fn json_u64(json: &[u8], key: &str) -> Option<u64> {
    let k = key.as_bytes();
    let mut i = 0;
    while i + k.len() + 2 < json.len() {
        if json[i] == b'"' && json[i + 1..].starts_with(k) && json.get(i + 1 + k.len()) == Some(&b'"') {
            let mut j = i + 2 + k.len();
            while j < json.len() && (json[j] == b' ' || json[j] == b':') {
                j += 1;
            }
            let start = j;
            while j < json.len() && json[j].is_ascii_digit() {
                j += 1;
            }
            return core::str::from_utf8(&json[start..j]).ok().and_then(parse_u64);
        }
        i += 1;
    }
    None
}

/// Decode hex text into `out`; the number of bytes written.
pub fn hex_decode(s: &str, out: &mut [u8]) -> Option<usize> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) || b.len() / 2 > out.len() {
        return None;
    }
    fn nib(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    for (i, pair) in b.chunks_exact(2).enumerate() {
        out[i] = (nib(pair[0])? << 4) | nib(pair[1])?;
    }
    Some(b.len() / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_words() {
        assert_eq!(config_get("max=5 x", "max", 0), Some("5"));
        assert_eq!(config_get("7", "max", 0), Some("7"));
        assert_eq!(config_get("a, b", "max", 1), Some("b"));
        assert_eq!(config_get("", "max", 0), None);
        assert_eq!(config_unknown_key("max=1 foo=2", &["max"]), Some("foo"));
    }

    #[test]
    fn json_numbers() {
        assert_eq!(json_u64(br#"{"packets":12,"bytes": 340}"#, "bytes"), Some(340));
        assert_eq!(json_u64(br#"{"packets":12}"#, "bytes"), None);
        assert_eq!(json_u64(br#"{"packets":"x"}"#, "packets"), None);
    }

    #[test]
    fn hex() {
        let mut b = [0u8; 4];
        assert_eq!(hex_decode("00fF", &mut b), Some(2));
        assert_eq!(b[1], 0xff);
        assert_eq!(hex_decode("0", &mut b), None);
    }
}
