//! `[[droute]]`: DataRouter class table entries loaded at start (the
//! paper's `droute class CLASS add PATTERN DEST [alg ALG]`), and class miss
//! outcomes.
//!
//! ```toml
//! [[droute]]
//! class = "DNS"            # alias or number
//! pattern = "joe.com"
//! dest = "10.0.2.2"
//! alg = "suffix"           # default "long"
//! rewrite = "copy:prefix,next:strip"   # optional
//!
//! [[droute]]
//! class = "MP3"
//! miss = "icmp"            # drop (default) | icmp
//! ```
//!
//! Entries go to the `datarouter` instance named by `instance` (a label of
//! an `[[instance]]`), else to the node's only `datarouter` instance; when
//! there is none, one is created and attached at the routing step
//! ([`Node::attach_resolver`]), which is what a DataRouter needs: it sees
//! the packets addressed to any of the node's addresses that carry options.
//! Each entry becomes a control request to that instance, so a bad pattern
//! is reported at its line.

use super::{Applied, ConfigError, Source};
use serde::Deserialize;
use std::net::IpAddr;
use toml::Spanned;
use weft_dataplane::{InstanceId, Node};

/// The element class `[[droute]]` loads.
pub const CLASS: &str = "datarouter";

/// `[[droute]]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrouteSection {
    /// Class alias (`DNS`, `URL`, `MP3`, `WEB`, `IPv4`, `IPv6`) or number.
    pub class: Spanned<String>,
    /// Pattern (with `dest`).
    #[serde(default)]
    pub pattern: Option<Spanned<String>>,
    /// Next hop (with `pattern`).
    #[serde(default)]
    pub dest: Option<Spanned<IpAddr>>,
    /// Lookup algorithm (default `long`).
    #[serde(default)]
    pub alg: Option<Spanned<String>>,
    /// Rewrite rules.
    #[serde(default)]
    pub rewrite: Option<Spanned<String>>,
    /// The class's miss outcome: `drop` or `icmp`.
    #[serde(default)]
    pub miss: Option<Spanned<String>>,
    /// The `[[instance]]` label of the datarouter instance.
    #[serde(default)]
    pub instance: Option<Spanned<String>>,
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Apply every `[[droute]]` of the file.
pub(super) fn apply(
    src: &Source,
    sections: &[Spanned<DrouteSection>],
    node: &mut Node,
    applied: &Applied,
) -> Result<(), ConfigError> {
    let mut auto: Option<InstanceId> = None;
    for d in sections {
        let ds = d.get_ref();
        let id = match &ds.instance {
            Some(l) => *applied
                .instances
                .get(l.get_ref())
                .ok_or_else(|| src.error(l.span(), format!("instance {:?} is not defined", l.get_ref())))?,
            None => match auto {
                Some(i) => i,
                None => {
                    let i = find_or_create(node).map_err(|m| src.error(d.span(), m))?;
                    auto = Some(i);
                    i
                }
            },
        };
        let class = ds.class.get_ref();
        let mut reqs = Vec::new();
        match (&ds.pattern, &ds.dest) {
            (Some(p), Some(dest)) => {
                let mut r = format!("class {class} add {} {}", quote(p.get_ref()), dest.get_ref());
                if let Some(a) = &ds.alg {
                    r.push_str(&format!(" alg {}", a.get_ref()));
                }
                if let Some(w) = &ds.rewrite {
                    r.push_str(&format!(" rewrite {}", quote(w.get_ref())));
                }
                reqs.push((r, p.span()));
            }
            (None, None) if ds.miss.is_some() => {}
            (Some(p), None) => return Err(src.error(p.span(), "`pattern` needs `dest`")),
            (None, Some(x)) => return Err(src.error(x.span(), "`dest` needs `pattern`")),
            (None, None) => return Err(src.error(d.span(), "a [[droute]] needs `pattern` and `dest`, or `miss`")),
        }
        if let Some(m) = &ds.miss {
            reqs.push((format!("class {class} miss {}", m.get_ref()), m.span()));
        }
        for (r, span) in reqs {
            node.control(id, &r).map_err(|e| {
                let msg = e.to_string();
                // Point at the class when the class is what is wrong.
                let span = if msg.contains("unknown class") {
                    ds.class.span()
                } else {
                    span
                };
                src.error(span, msg)
            })?;
        }
    }
    Ok(())
}

/// The node's only datarouter instance, or a new one attached at the
/// routing step (it sees every packet addressed to the node that carries
/// options, whatever address it was sent to).
fn find_or_create(node: &mut Node) -> Result<InstanceId, String> {
    let existing: Vec<InstanceId> = node
        .instances()
        .into_iter()
        .filter(|i| i.class == CLASS)
        .map(|i| i.id)
        .collect();
    match existing.as_slice() {
        [one] => return Ok(*one),
        [] => {}
        _ => return Err("several datarouter instances: say which with `instance = \"LABEL\"`".into()),
    }
    let id = node.create_instance(CLASS, "").map_err(|e| e.to_string())?;
    node.attach_resolver(id).map_err(|e| e.to_string())?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use crate::config::NodeConfig;

    const BASE: &str = r#"
[node]
name = "dr1"

[[port]]
name = "eth0"
mac = "02:00:00:00:00:01"
addrs = ["10.0.1.1/24", "2001:db8:1::1/64"]
"#;

    #[test]
    fn droute_entries_create_a_bound_instance() {
        let text = format!(
            "{BASE}\n[[droute]]\nclass = \"DNS\"\npattern = \"joe.com\"\ndest = \"10.0.1.9\"\nalg = \"suffix\"\n\n\
             [[droute]]\nclass = \"URL\"\npattern = \"joe.com\"\ndest = \"10.0.1.8\"\nalg = \"suffix\"\nrewrite = \"copy:prefix,next:strip\"\n\n\
             [[droute]]\nclass = \"MP3\"\nmiss = \"icmp\"\n"
        );
        let cfg = NodeConfig::parse(&text, "dr1.toml").unwrap();
        let (mut node, _) = cfg.build().unwrap();
        let inst: Vec<_> = node
            .instances()
            .into_iter()
            .filter(|i| i.class == "datarouter")
            .collect();
        assert_eq!(inst.len(), 1);
        assert!(
            inst[0].filters.is_empty() && inst[0].resolver,
            "attached at the routing step"
        );
        let ls = node.control(inst[0].id, "class URL ls").unwrap();
        assert!(ls.contains("rewrite copy:prefix,next:strip"), "{ls}");
        let all = node.control(inst[0].id, "ls").unwrap();
        assert!(all.contains("MP3"), "{all}");
    }

    #[test]
    fn droute_errors_point_at_their_line() {
        for (bad, line) in [
            (
                "[[droute]]\nclass = \"DNS\"\npattern = \"(\"\ndest = \"10.0.1.9\"\n",
                12,
            ),
            (
                "[[droute]]\nclass = \"NOPE\"\npattern = \"a\"\ndest = \"10.0.1.9\"\n",
                11,
            ),
            ("[[droute]]\nclass = \"DNS\"\npattern = \"a\"\n", 12),
            (
                "[[droute]]\nclass = \"DNS\"\npattern = \"a\"\ndest = \"10.0.1.9\"\nalg = \"fuzzyish\"\n",
                12,
            ),
            (
                "[[droute]]\nclass = \"DNS\"\npattern = \"a\"\ndest = \"10.0.1.9\"\ninstance = \"x\"\n",
                14,
            ),
        ] {
            let text = format!("{BASE}\n{bad}");
            let e = NodeConfig::parse(&text, "dr1.toml").and_then(|c| c.build().map(|_| ()));
            let e = e.unwrap_err();
            assert_eq!(e.line(), Some(line), "{bad}: {e}");
        }
    }
}
