//! The `droute` words (paper 2.4's table loader, `droute class class_id add
//! pat dest [alg (long|exact…)]`), shared by the element's control port, the
//! `weft droute` CLI and `[[droute]]` in node configuration files.
//!
//! ```text
//! class CLASS add PATTERN DEST [alg ALG] [rewrite RULES]
//! class CLASS rm PATTERN [alg ALG]
//! class CLASS flush
//! class CLASS ls
//! class CLASS miss drop|icmp
//! ls
//! ```
//!
//! `CLASS` is a number or an alias (`DNS` 1, `URL` 2, `MP3` 3, `WEB` 4,
//! `IPv4` 5, `IPv6` 6). `ALG` defaults to `long` (the paper's default).
//! `PATTERN` is one word, or several in double quotes; `0x…` is hex bytes;
//! ranges are `LO..HI`. Several commands may be sent at once, one per line;
//! they run in order and stop at the first error.

use crate::rewrite::{self, Rule};
use crate::table::{Entry, Miss, Pattern, TableError, Tables};
use crate::Algorithm;
use std::collections::BTreeSet;
use std::net::IpAddr;

/// Error returned by [`parse_line`] and [`execute`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The words are not a command.
    #[error("{0}")]
    Syntax(String),
    /// The table refused the change.
    #[error(transparent)]
    Table(#[from] TableError),
    /// A line of a multi-line request failed (1-based).
    #[error("line {0}: {1}")]
    Line(usize, Box<CommandError>),
}

/// One `droute` command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Add or replace an entry.
    Add {
        /// Class.
        class: u16,
        /// Algorithm.
        alg: Algorithm,
        /// Pattern text.
        pattern: String,
        /// Next hop.
        dest: IpAddr,
        /// Rewrite rules.
        rules: Vec<Rule>,
    },
    /// Remove entries.
    Rm {
        /// Class.
        class: u16,
        /// Only this algorithm's.
        alg: Option<Algorithm>,
        /// Pattern text.
        pattern: String,
    },
    /// Drop a class's table.
    Flush {
        /// Class.
        class: u16,
    },
    /// List one class, or a summary of all.
    Ls {
        /// Class.
        class: Option<u16>,
    },
    /// Set a class's miss outcome.
    Miss {
        /// Class.
        class: u16,
        /// Outcome.
        miss: Miss,
    },
}

/// Split a line into words; `"…"` groups words (with `\"` and `\\`).
pub fn words(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            '\\' if quoted => match chars.next() {
                Some(n) => cur.push(n),
                None => return Err("a backslash ends the line".into()),
            },
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quoted {
        return Err("unterminated quote".into());
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

const USAGE: &str =
    "expected: class CLASS add PATTERN DEST [alg ALG] [rewrite RULES] | class CLASS rm PATTERN [alg ALG] \
                     | class CLASS flush | class CLASS ls | class CLASS miss drop|icmp | ls";

/// Parse one command line.
pub fn parse_line(line: &str) -> Result<Command, CommandError> {
    let syn = |m: String| CommandError::Syntax(m);
    let w = words(line).map_err(syn)?;
    let w: Vec<&str> = w.iter().map(String::as_str).collect();
    match w.as_slice() {
        ["ls"] => Ok(Command::Ls { class: None }),
        ["class", c, rest @ ..] => {
            let class = crate::parse_class(c).map_err(syn)?;
            match rest {
                ["add", pattern, dest, opts @ ..] => {
                    let dest: IpAddr = dest
                        .parse()
                        .map_err(|_| syn(format!("DEST {dest:?} is not an IP address")))?;
                    let mut alg = Algorithm::Long;
                    let mut rules = Vec::new();
                    let mut i = 0;
                    while i < opts.len() {
                        match (opts[i], opts.get(i + 1)) {
                            ("alg", Some(a)) => alg = a.parse().map_err(syn)?,
                            ("rewrite", Some(r)) => rules = rewrite::parse_rules(r).map_err(|e| syn(e.to_string()))?,
                            (k, _) => return Err(syn(format!("unexpected {k:?} ({USAGE})"))),
                        }
                        i += 2;
                    }
                    Pattern::parse(pattern, alg)?;
                    Ok(Command::Add {
                        class,
                        alg,
                        pattern: pattern.to_string(),
                        dest,
                        rules,
                    })
                }
                ["rm" | "del", pattern] => Ok(Command::Rm {
                    class,
                    alg: None,
                    pattern: pattern.to_string(),
                }),
                ["rm" | "del", pattern, "alg", a] => Ok(Command::Rm {
                    class,
                    alg: Some(a.parse().map_err(syn)?),
                    pattern: pattern.to_string(),
                }),
                ["flush"] => Ok(Command::Flush { class }),
                ["ls" | "list"] => Ok(Command::Ls { class: Some(class) }),
                ["miss", m] => Ok(Command::Miss {
                    class,
                    miss: m.parse().map_err(syn)?,
                }),
                _ => Err(syn(USAGE.into())),
            }
        }
        _ => Err(syn(USAGE.into())),
    }
}

/// Most rows `class CLASS ls` prints.
pub const LS_LIMIT: usize = 1000;

fn ls(tables: &Tables, class: Option<u16>) -> String {
    let mut out = String::new();
    match class {
        None => {
            out.push_str("class  entries  long exact range prefix suffix closest  miss\n");
            for (c, t) in tables.classes() {
                let n = t.counts();
                out.push_str(&format!(
                    "{:<6} {:>7}  {:>4} {:>5} {:>5} {:>6} {:>6} {:>7}  {}\n",
                    crate::class_name(c),
                    t.len(),
                    n[0],
                    n[1],
                    n[2],
                    n[3],
                    n[4],
                    n[5],
                    t.miss
                ));
            }
        }
        Some(c) => {
            let Some(t) = tables.get(c) else {
                return format!("class {} has no entries\n", crate::class_name(c));
            };
            for r in t.rows(LS_LIMIT) {
                let rules = if r.entry.rules.is_empty() {
                    String::new()
                } else {
                    format!(" rewrite {}", rewrite::rules_to_string(&r.entry.rules))
                };
                out.push_str(&format!(
                    "class {} add {} {} alg {}{}\n",
                    crate::class_name(c),
                    quote(&r.pattern),
                    r.entry.next_hop,
                    r.alg,
                    rules
                ));
            }
            if t.len() > LS_LIMIT {
                out.push_str(&format!("… {} more\n", t.len() - LS_LIMIT));
            }
        }
    }
    out
}

fn quote(s: &str) -> String {
    if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c == '"') {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        s.to_string()
    }
}

/// Run the commands of `request` (one per line, blank lines and `#`
/// comments skipped) against `tables`; the reply is what `ls` printed, or
/// `ok`. Stops at the first failing line.
pub fn execute(tables: &mut Tables, request: &str) -> Result<String, CommandError> {
    let mut reply = String::new();
    let mut to_compile = BTreeSet::new();
    let mut result = Ok(());
    for (i, line) in request.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let r = parse_line(line).and_then(|cmd| run(tables, cmd, &mut reply, &mut to_compile));
        if let Err(e) = r {
            result = Err(if request.lines().count() > 1 {
                CommandError::Line(i + 1, Box::new(e))
            } else {
                e
            });
            break;
        }
    }
    for c in to_compile {
        if let Some(t) = tables.get_mut(c) {
            t.compile()?;
        }
    }
    result?;
    if reply.is_empty() {
        reply.push_str("ok");
    }
    Ok(reply)
}

fn run(
    tables: &mut Tables,
    cmd: Command,
    reply: &mut String,
    to_compile: &mut BTreeSet<u16>,
) -> Result<(), CommandError> {
    match cmd {
        Command::Add {
            class,
            alg,
            pattern,
            dest,
            rules,
        } => {
            let p = Pattern::parse(&pattern, alg)?;
            tables
                .get_or_create(class)?
                .add_deferred(alg, &p, Entry { next_hop: dest, rules })?;
            if alg == Algorithm::Long {
                to_compile.insert(class);
            }
        }
        Command::Rm { class, alg, pattern } => {
            let t = tables.get_mut(class).ok_or(TableError::NoClass(class))?;
            if t.remove(alg, &pattern) == 0 {
                return Err(TableError::NoEntry(pattern).into());
            }
        }
        Command::Flush { class } => {
            tables.flush(class);
        }
        Command::Ls { class } => reply.push_str(&ls(tables, class)),
        Command::Miss { class, miss } => tables.get_or_create(class)?.miss = miss,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lookup::Scratch;
    use crate::wire::parse_bytes;

    #[test]
    fn words_and_bytes() {
        assert_eq!(words(r#"a "b c" d"#).unwrap(), vec!["a", "b c", "d"]);
        assert_eq!(words(r#""x\"y""#).unwrap(), vec!["x\"y"]);
        assert!(words("\"open").is_err());
        assert_eq!(parse_bytes("0x0aff").unwrap(), vec![10, 255]);
        assert!(parse_bytes("0xa").is_err());
        assert_eq!(parse_bytes("abc").unwrap(), b"abc");
    }

    #[test]
    fn parse_commands() {
        assert_eq!(
            parse_line("class DNS add joe.com 10.0.2.2 alg suffix").unwrap(),
            Command::Add {
                class: 1,
                alg: Algorithm::Suffix,
                pattern: "joe.com".into(),
                dest: "10.0.2.2".parse().unwrap(),
                rules: vec![]
            }
        );
        let c = parse_line("class URL add joe.com 10.0.2.2 alg suffix rewrite copy:prefix,next:strip").unwrap();
        assert!(matches!(c, Command::Add { rules, .. } if rules.len() == 2));
        assert_eq!(parse_line("class 7 ls").unwrap(), Command::Ls { class: Some(7) });
        assert_eq!(
            parse_line("class MP3 miss icmp").unwrap(),
            Command::Miss {
                class: 3,
                miss: Miss::Icmp
            }
        );
        for bad in [
            "class DNS add joe.com notanaddr",
            "class DNS add joe.com 10.0.0.1 alg bogus",
            "class BOGUS ls",
            "class DNS add ( 10.0.0.1",
            "class DNS add x 10.0.0.1 frob 1",
            "class DNS add x 10.0.0.1 rewrite frob",
            "frob",
            "class DNS miss maybe",
        ] {
            assert!(parse_line(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn execute_batches() {
        let mut t = Tables::default();
        let r = execute(
            &mut t,
            "class DNS add joe.com 10.0.2.2 alg suffix\n# comment\nclass WEB add \"Potter movie\" 10.0.3.3 alg closest\n\
             class 9 add .*\\.edu 10.0.4.4\nclass 9 add .*\\.isi\\.edu 10.0.4.5",
        )
        .unwrap();
        assert_eq!(r, "ok");
        let mut sc = Scratch::default();
        assert_eq!(
            t.get(9)
                .unwrap()
                .lookup(Algorithm::Long, b"www.isi.edu", &mut sc)
                .unwrap()
                .next_hop,
            "10.0.4.5".parse::<IpAddr>().unwrap()
        );
        let ls_all = execute(&mut t, "ls").unwrap();
        assert!(ls_all.contains("DNS"), "{ls_all}");
        let ls = execute(&mut t, "class WEB ls").unwrap();
        assert_eq!(ls, "class WEB add \"Potter movie\" 10.0.3.3 alg closest\n");
        let e = execute(&mut t, "class DNS rm nothere\nclass DNS flush").unwrap_err();
        assert!(matches!(e, CommandError::Line(1, _)), "{e}");
        assert_eq!(execute(&mut t, "class DNS rm joe.com").unwrap(), "ok");
        assert!(execute(&mut t, "class 44 rm x").is_err());
    }
}
