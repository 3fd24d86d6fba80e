//! The README and docs/ as a user reads them: every shell block marked
//! `<!-- tested: NAME -->` (or `<!-- tested as root: NAME -->`) right
//! above its fence runs, as written, in order, against real processes, and
//! each command annotated `# → TEXT` must print TEXT.
//!
//! How a block runs: `bash` with `set -eo pipefail` (a failing command
//! fails the test, naming it), `weft` on `PATH` (this build), in a fresh
//! directory holding copies of `examples/` and `topologies/` and the
//! repository's `plugins/`, `scripts/` and `target/` (built plugins), with
//! its own socket, cache and netns-run directories. A command ending in `&`
//! runs in the background like a user's, and the next command waits until
//! it printed its first line (a node or code server says where it serves
//! once it does, `weft recv` that it listens), as a user reading the output
//! would; its `# → TEXT` is looked for in all it printed by the end.
//! Background commands are stopped and netns runs taken down when the
//! block ends, whatever happened.

mod support;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::{root_dir, unsupported, Proc, TempDir, WEFT};

/// A tested block: where it is, its name, whether it needs root, its text.
struct Block {
    file: String,
    line: usize,
    name: String,
    root: bool,
    text: String,
}

/// The tested blocks of a markdown file.
fn blocks(file: &Path) -> Vec<Block> {
    let text = std::fs::read_to_string(file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i].trim();
        let marker = l
            .strip_prefix("<!-- tested")
            .and_then(|r| r.strip_suffix("-->"))
            .map(str::trim);
        if let Some(m) = marker {
            let (root, name) = match m.strip_prefix("as root:") {
                Some(n) => (true, n.trim()),
                None => (false, m.trim_start_matches(':').trim()),
            };
            let fence = lines.get(i + 1).map(|l| l.trim());
            assert_eq!(
                fence,
                Some("```sh"),
                "{}:{}: a `tested` marker must stand right above a ```sh fence",
                file.display(),
                i + 1
            );
            let start = i + 2;
            let end = (start..lines.len())
                .find(|&j| lines[j].trim() == "```")
                .unwrap_or_else(|| panic!("{}:{}: unclosed block", file.display(), i + 1));
            out.push(Block {
                file: file.display().to_string(),
                line: start,
                name: name.to_string(),
                root,
                text: lines[start..end].join("\n"),
            });
            i = end;
        }
        i += 1;
    }
    out
}

/// One command of a block: its text (continuations joined), whether it
/// runs in the background, what it must print.
struct Cmd {
    line: usize,
    text: String,
    background: bool,
    expect: Option<String>,
}

/// Split a comment off a shell line: the first ` #` outside quotes.
fn split_comment(l: &str) -> (&str, Option<&str>) {
    let (mut single, mut double) = (false, false);
    let b = l.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'\'' if !double => single = !single,
            b'"' if !single => double = !double,
            b'#' if !single && !double && (i == 0 || b[i - 1].is_ascii_whitespace()) => {
                return (&l[..i], Some(l[i + 1..].trim()));
            }
            _ => {}
        }
    }
    (l, None)
}

fn commands(b: &Block) -> Vec<Cmd> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut first = 0;
    let mut expect = None;
    for (n, raw) in b.text.lines().enumerate() {
        let (code, comment) = split_comment(raw);
        // `# words → TEXT`: TEXT is what the command prints.
        if let Some((_, c)) = comment.and_then(|c| c.rsplit_once('→')) {
            expect = Some(c.trim().to_string());
        }
        let code = code.trim_end();
        if code.trim().is_empty() && cur.is_empty() {
            continue;
        }
        if cur.is_empty() {
            first = b.line + n + 1;
        }
        match code.strip_suffix('\\') {
            Some(c) => {
                cur.push_str(c);
                cur.push(' ');
            }
            None => {
                cur.push_str(code);
                let t = cur.trim().to_string();
                let (text, background) = match t.strip_suffix('&') {
                    Some(x) if !x.ends_with('&') => (x.trim().to_string(), true),
                    _ => (t, false),
                };
                out.push(Cmd {
                    line: first,
                    text,
                    background,
                    expect: expect.take(),
                });
                cur.clear();
            }
        }
    }
    out
}

/// The script a block becomes.
fn script(b: &Block, cmds: &[Cmd]) -> String {
    let mut s = String::from(
        r#"set -eo pipefail
exec 2>&1
__bg=()
__end() {
    for p in "${__bg[@]}"; do kill "$p" 2>/dev/null || true; done
    weft emu down --all >/dev/null 2>&1 || true
    wait 2>/dev/null || true
}
trap __end EXIT
__first_line() {
    for _ in $(seq 300); do
        [ -s "$1" ] && return 0
        kill -0 "$2" 2>/dev/null || { echo "background command exited:"; cat "$1"; return 1; }
        sleep 0.1
    done
    echo "background command printed nothing in 30 s"; return 1
}
"#,
    );
    for (i, c) in cmds.iter().enumerate() {
        let _ = writeln!(s, "echo '@@CMD {i}'");
        if c.background {
            let _ = writeln!(s, "{} > .bg{i}.log 2>&1 &", c.text);
            let _ = writeln!(s, "__bg+=($!)");
            let _ = writeln!(s, "__first_line .bg{i}.log $!");
            let _ = writeln!(s, "cat .bg{i}.log");
        } else {
            let _ = writeln!(s, "{}", c.text);
        }
    }
    let _ = writeln!(s, "echo '@@DONE'");
    let _ = b;
    s
}

/// Run a block; panics naming the command that failed or printed the
/// wrong thing.
fn run(b: &Block) {
    let tmp = TempDir::new(&format!("readme-{}", b.name));
    let dir = &tmp.0;
    let root = root_dir().canonicalize().unwrap();
    for d in ["examples", "topologies"] {
        let st = Command::new("cp")
            .arg("-r")
            .arg(root.join(d))
            .arg(dir)
            .status()
            .unwrap();
        assert!(st.success());
    }
    for d in ["plugins", "scripts", "target"] {
        std::os::unix::fs::symlink(root.join(d), dir.join(d)).unwrap();
    }
    let bin = dir.join(".bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(WEFT, bin.join("weft")).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let cmds = commands(b);
    let script = script(b, &cmds);
    let mut c = Command::new("bash");
    c.arg("-c")
        .arg(&script)
        .current_dir(dir)
        .env("PATH", path)
        .env("WEFT_RUN_DIR", dir.join(".run"))
        .env("WEFT_EMU_DIR", dir.join(".emu"))
        .env("XDG_CACHE_HOME", dir.join(".cache"))
        .env_remove("WEFT_SOCKET")
        .env_remove("WEFT_TOKEN")
        .env_remove("WEFT_KEY")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    let (ok, out) = Proc::spawn(&mut c).wait(Duration::from_secs(600));
    // Output per command: after its `@@CMD i` line, up to the next.
    let mut per: Vec<String> = vec![String::new(); cmds.len()];
    let mut at: Option<usize> = None;
    let mut done = false;
    for l in out.lines() {
        if let Some(i) = l.strip_prefix("@@CMD ").and_then(|n| n.parse::<usize>().ok()) {
            at = Some(i);
        } else if l == "@@DONE" {
            done = true;
        } else if let Some(i) = at {
            per[i].push_str(l);
            per[i].push('\n');
        }
    }
    let here = |i: usize| format!("{}:{}: `{}`", b.file, cmds[i].line, cmds[i].text);
    if !ok || !done {
        let i = at.unwrap_or(0);
        panic!("{} failed (block {:?}):\n{}", here(i), b.name, per[i]);
    }
    for (i, c) in cmds.iter().enumerate() {
        if let Some(want) = &c.expect {
            // A background command's output is all of its log, whenever
            // it was written.
            if c.background {
                per[i] = std::fs::read_to_string(dir.join(format!(".bg{i}.log"))).unwrap_or_default();
            }
            assert!(
                per[i].contains(want.as_str()),
                "{} should print {want:?}; it printed:\n{}",
                here(i),
                per[i]
            );
        }
    }
}

fn all_blocks() -> Vec<Block> {
    let root = root_dir();
    let mut files: Vec<PathBuf> = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files.iter().flat_map(|f| blocks(f)).collect()
}

fn run_named(name: &str) {
    let bs = all_blocks();
    let b = bs
        .iter()
        .find(|b| b.name == name)
        .unwrap_or_else(|| panic!("no block marked `tested: {name}`"));
    if b.root {
        if let Some(why) = unsupported(&[]) {
            eprintln!("SKIP: {name}: {why}");
            return;
        }
    }
    run(b);
}

/// Every marked block has a test below: a new marker needs one.
#[test]
fn every_tested_block_is_run_by_a_test() {
    let src = include_str!("readme.rs");
    let names: Vec<String> = all_blocks().into_iter().map(|b| b.name).collect();
    assert!(!names.is_empty(), "no tested blocks found");
    for n in &names {
        assert!(
            src.contains(&format!("run_named(\"{n}\")")),
            "block {n:?} is marked tested but no test runs it"
        );
    }
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len(), "two blocks share a name: {names:?}");
}

#[test]
fn the_harness_reads_commands_as_a_shell_would() {
    let b = Block {
        file: "x.md".into(),
        line: 10,
        name: "x".into(),
        root: false,
        text: "weft a \\\n  --b 'x # y'   # prints → #1\n\n# a comment\nweft node run &   # starts\n".into(),
    };
    let c = commands(&b);
    assert_eq!(c.len(), 2);
    assert_eq!(
        c[0].text.split_whitespace().collect::<Vec<_>>(),
        ["weft", "a", "--b", "'x", "#", "y'"]
    );
    assert_eq!(c[0].expect.as_deref(), Some("#1"));
    assert_eq!(c[0].line, 11);
    assert!(c[1].background && c[1].text == "weft node run");
}

#[test]
fn readme_node_tour() {
    run_named("node-tour");
}

#[test]
fn readme_emulator() {
    run_named("emulator");
}

#[test]
fn readme_netns() {
    run_named("netns");
}

#[test]
fn readme_datarouter() {
    run_named("datarouter");
}

#[test]
fn readme_explicit_paths() {
    run_named("explicit-paths");
}

#[test]
fn readme_signaling() {
    run_named("signaling");
}

#[test]
fn docs_code_server() {
    run_named("code-server");
}

#[test]
fn docs_topology() {
    run_named("topology");
}

#[test]
fn docs_topology_netns() {
    run_named("topology-netns");
}
