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
//!
//! [[droute]]
//! file = "tables/mp3.droute"   # a `droute` script: one command a line
//! ```
//!
//! Entries go to the `datarouter` instance named by `instance` (a label of
//! an `[[instance]]`), else to the node's only `datarouter` instance; when
//! there is none, one is created and attached at the routing step
//! ([`Node::attach_resolver`]), which is what a DataRouter needs: it sees
//! the packets addressed to any of the node's addresses that carry options.
//! Each entry becomes a control request to that instance, so a bad pattern
//! is reported at its line. A `file` (relative to the configuration file's
//! directory) holds the lines `weft droute` takes (`class MP3 add 0x1f2e3d4c
//! 10.0.2.2 alg exact`, `#` comments) and is sent as one request: the way to
//! load tables of a million entries, which would be a million TOML tables
//! and requests otherwise; an error names the file and its line.

use super::{Applied, ConfigError, Source};
use serde::Deserialize;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use toml::Spanned;
use weft_dataplane::{InstanceId, Node};

/// The element class `[[droute]]` loads.
pub const CLASS: &str = "datarouter";

/// `[[droute]]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrouteSection {
    /// Class alias (`DNS`, `URL`, `MP3`, `WEB`, `IPv4`, `IPv6`) or number
    /// (not with `file`: its lines name their classes).
    #[serde(default)]
    pub class: Option<Spanned<String>>,
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
    /// A `droute` script to load (alone, or with `instance`).
    #[serde(default)]
    pub file: Option<Spanned<PathBuf>>,
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
            Some(l) => {
                let id = *applied
                    .instances
                    .get(l.get_ref())
                    .ok_or_else(|| src.error(l.span(), format!("instance {:?} is not defined", l.get_ref())))?;
                attach_unless_bound(node, id).map_err(|m| src.error(l.span(), m))?;
                id
            }
            None => match auto {
                Some(i) => i,
                None => {
                    let i = find_or_create(node).map_err(|m| src.error(d.span(), m))?;
                    auto = Some(i);
                    i
                }
            },
        };
        if let Some(f) = &ds.file {
            if let Some(other) = [&ds.class, &ds.pattern, &ds.alg, &ds.rewrite, &ds.miss]
                .into_iter()
                .flatten()
                .next()
            {
                return Err(src.error(other.span(), "a [[droute]] with `file` takes only `instance`"));
            }
            if let Some(x) = &ds.dest {
                return Err(src.error(x.span(), "a [[droute]] with `file` takes only `instance`"));
            }
            load_file(src, f, node, id)?;
            continue;
        }
        let Some(class_s) = &ds.class else {
            return Err(src.error(d.span(), "a [[droute]] needs `class` (or a `file`)"));
        };
        let class = class_s.get_ref();
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
            (None, None) => {
                return Err(src.error(
                    d.span(),
                    "a [[droute]] needs `pattern` and `dest`, or `miss`, or `file`",
                ))
            }
        }
        if let Some(m) = &ds.miss {
            reqs.push((format!("class {class} miss {}", m.get_ref()), m.span()));
        }
        for (r, span) in reqs {
            node.control(id, &r).map_err(|e| {
                let msg = e.to_string();
                // Point at the class when the class is what is wrong.
                let span = if msg.contains("unknown class") {
                    class_s.span()
                } else {
                    span
                };
                src.error(span, msg)
            })?;
        }
    }
    Ok(())
}

/// Send the `droute` script `f` (relative to the configuration file's
/// directory) to instance `id` as one control request.
fn load_file(src: &Source, f: &Spanned<PathBuf>, node: &mut Node, id: InstanceId) -> Result<(), ConfigError> {
    let path = match Path::new(&src.file).parent() {
        Some(dir) if f.get_ref().is_relative() => dir.join(f.get_ref()),
        _ => f.get_ref().clone(),
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| src.error(f.span(), format!("cannot read {}: {e}", path.display())))?;
    // The script's own line numbers ("line N: …") refer to that file.
    node.control(id, &text)
        .map_err(|e| src.error(f.span(), format!("{}: {e}", path.display())))?;
    Ok(())
}

/// Attach the `[[instance]]` a `[[droute]]` names at the routing step,
/// unless a filter binds it or it is attached already: an instance that no
/// packet reaches would hold tables for nothing (this is how a DataRouter
/// gets its configuration, `max_string=` and `unknown=`, from the file).
fn attach_unless_bound(node: &mut Node, id: InstanceId) -> Result<(), String> {
    let info = node.instances().into_iter().find(|i| i.id == id);
    match info {
        Some(i) if i.class != CLASS => Err(format!("instance {id} is a {:?}, not a {CLASS:?}", i.class)),
        Some(i) if i.filters.is_empty() && !i.resolver => node.attach_resolver(id).map_err(|e| e.to_string()),
        _ => Ok(()),
    }
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
    fn a_droute_file_loads_as_one_script() {
        let dir = std::env::temp_dir().join(format!("weft-droute-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut script = String::from("# MP3 keys\n");
        for i in 0..500u32 {
            script.push_str(&format!(
                "class MP3 add 0x{:08x} 10.0.1.{} alg exact\n",
                i * 7919,
                2 + i % 200
            ));
        }
        script.push_str("class DNS add isi.edu 10.0.1.9 alg suffix\nclass DNS miss icmp\n");
        std::fs::write(dir.join("t.droute"), &script).unwrap();
        let cfg_path = dir.join("dr1.toml");
        let cfg = |file: &str| {
            let text = format!("{BASE}\n[[droute]]\nfile = \"{file}\"\n");
            std::fs::write(&cfg_path, text).unwrap();
            NodeConfig::load(&cfg_path).and_then(|c| c.build().map(|(n, _)| n))
        };
        let mut node = cfg("t.droute").unwrap();
        let id = node.instances().into_iter().find(|i| i.class == "datarouter").unwrap();
        assert!(id.resolver, "attached at the routing step");
        let report = node.report(id.id).unwrap();
        assert_eq!(report["element"]["classes"]["MP3"]["entries"], 500, "{report}");
        assert_eq!(report["element"]["classes"]["DNS"]["miss"], "icmp", "{report}");
        // A script that opens with a comment is commands, not the instance's
        // configuration.
        assert_eq!(report["config"], "", "{}", report["config"]);
        let ls = node.control(id.id, "class MP3 ls").unwrap();
        assert!(ls.contains(&format!("0x{:08x}", 499 * 7919)), "{ls}");
        // A missing file, and a bad line: the file and the line are named.
        std::fs::write(
            dir.join("bad.droute"),
            "class DNS add a 10.0.1.9 alg suffix\nclass DNS add b nowhere\n",
        )
        .unwrap();
        let missing = cfg("nope.droute").map(|_| ()).unwrap_err().to_string();
        let bad = cfg("bad.droute").map(|_| ()).unwrap_err().to_string();
        let with_class = {
            let text = format!("{BASE}\n[[droute]]\nclass = \"DNS\"\nfile = \"t.droute\"\n");
            NodeConfig::parse(&text, "x.toml")
                .and_then(|c| c.build().map(|_| ()))
                .unwrap_err()
        };
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            missing.contains("nope.droute") && missing.contains("cannot read"),
            "{missing}"
        );
        assert!(bad.contains("bad.droute") && bad.contains("line 2"), "{bad}");
        assert!(with_class.to_string().contains("takes only `instance`"), "{with_class}");
        assert_eq!(with_class.line(), Some(11), "points at `class`: {with_class}");
    }

    /// The way docs/datarouter.md gives to configure the DataRouter from
    /// the file (`max_string=`, `unknown=`): an `[[instance]]` named by
    /// `[[droute]] instance`, which is then attached at the routing step
    /// (unless a filter binds it) and answers tags as configured.
    #[test]
    fn a_named_instance_is_configured_and_attached() {
        let text = format!(
            r#"{BASE}
[[instance]]
name = "dr"
class = "datarouter"
config = "max_string=16 unknown=icmp"

[[droute]]
instance = "dr"
class = "DNS"
pattern = "joe.com"
dest = "10.0.1.9"
alg = "suffix"
"#
        );
        let (node, applied) = NodeConfig::parse(&text, "dr1.toml").unwrap().build().unwrap();
        let id = applied.instances["dr"];
        let info = node.instances().into_iter().find(|i| i.id == id).unwrap();
        assert!(info.resolver, "attached at the routing step");
        let r = node.report(id).unwrap();
        assert_eq!(r["config"], "max_string=16 unknown=icmp", "{r}");
        assert_eq!(r["element"]["classes"]["DNS"]["entries"], 1, "{r}");
        // Bound by a filter: left so. Not a datarouter: an error.
        let bound = format!(
            r#"{BASE}
[[instance]]
name = "dr"
class = "datarouter"

[[filter]]
dst = "10.0.1.1"
chain = ["dr"]

[[droute]]
instance = "dr"
class = "DNS"
miss = "icmp"
"#
        );
        let (node, applied) = NodeConfig::parse(&bound, "dr1.toml").unwrap().build().unwrap();
        let info = node
            .instances()
            .into_iter()
            .find(|i| i.id == applied.instances["dr"])
            .unwrap();
        assert!(!info.resolver && info.filters.len() == 1, "{info:?}");
        let counter = format!(
            r#"{BASE}
[[instance]]
name = "c"
class = "counter"

[[droute]]
instance = "c"
class = "DNS"
miss = "icmp"
"#
        );
        let e = NodeConfig::parse(&counter, "dr1.toml")
            .and_then(|c| c.build().map(|_| ()))
            .unwrap_err();
        assert!(e.to_string().contains(r#"not a "datarouter""#), "{e}");
        assert_eq!(e.line(), Some(15), "{e}");
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
