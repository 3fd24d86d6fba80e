//! ActiveCDN's configuration: the SETUP's CONFIG string (see the crate
//! documentation), parsed once per instance. A bad one answers every
//! request `500` with the reason.

/// What the provider configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// `IP:PORT` of the origin.
    pub origin: String,
    /// A header added to every response.
    pub header: Option<(String, String)>,
    /// Text appended to `text/*` bodies.
    pub watermark: Option<String>,
    /// Cache size, body bytes.
    pub max_bytes: usize,
    /// Largest body cached.
    pub max_object: usize,
}

impl Config {
    /// Parse `text` (`key=value` separated by `;` or newlines); never panics.
    pub fn parse(text: &str) -> Result<Config, String> {
        let mut c = Config {
            origin: String::new(),
            header: None,
            watermark: None,
            max_bytes: 16 << 20,
            max_object: 1 << 20,
        };
        for item in text.split([';', '\n']) {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let Some((k, v)) = item.split_once('=') else {
                return Err(format!("{item:?} is not key=value"));
            };
            let (k, v) = (k.trim(), v.trim());
            let num = || v.parse::<usize>().map_err(|_| format!("{k}={v:?} is not a number"));
            match k {
                "origin" if c.origin.is_empty() => c.origin = v.to_string(),
                "origin" => {}
                "header" => {
                    let Some((n, val)) = v.split_once(':') else {
                        return Err(format!("header={v:?} is not NAME: VALUE"));
                    };
                    let n = n.trim().to_ascii_lowercase();
                    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                        return Err(format!("bad header name {n:?}"));
                    }
                    c.header = Some((n, val.trim().to_string()));
                }
                "watermark" => c.watermark = Some(v.to_string()),
                "max_bytes" => c.max_bytes = num()?,
                "max_object" => c.max_object = num()?,
                _ => return Err(format!("unknown key {k:?}")),
            }
        }
        if c.origin.is_empty() {
            return Err("no origin= given".into());
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        let c = Config::parse("origin=10.0.3.2:8000; header=X-CDN: edge; watermark=(c) P; max_bytes=100").unwrap();
        assert_eq!(c.origin, "10.0.3.2:8000");
        assert_eq!(c.header, Some(("x-cdn".into(), "edge".into())));
        assert_eq!(c.watermark.as_deref(), Some("(c) P"));
        assert_eq!(c.max_bytes, 100);
        assert!(Config::parse("").is_err());
        assert!(Config::parse("origin=1.2.3.4:80; header=nocolon").is_err());
        assert!(Config::parse("origin=1.2.3.4:80; max_bytes=x").is_err());
        assert!(Config::parse("origin=1.2.3.4:80; colour=blue").is_err());
        for s in ["=", ";;=;", "origin", "header=:", "origin=\u{0}"] {
            let _ = Config::parse(s);
        }
    }
}
