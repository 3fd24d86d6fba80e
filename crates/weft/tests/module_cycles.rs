//! No module cycles in any Weft crate.
//!
//! Each crate's docs list its modules as layers, each using only those
//! below it. This test reads every crate's `src/` tree (`lib.rs` and
//! `main.rs` roots, `mod` declarations followed to their files), collects
//! the modules each one names through `crate::`, `super::` and `self::`
//! paths (in `use` lines, in code and in macro arguments), and fails on
//! any cycle, naming the lines that make it.
//!
//! **What counts as a dependency.** A module and its own submodules are
//! one room: a child may use its parent's shared state (`use super::Node`)
//! and a parent may re-export its children's items; that is not a cycle.
//! Any other use is lifted to the two rooms it connects: when
//! `a::x::y` names `b::z`, that is an edge `a → b` between siblings of
//! their nearest common ancestor, and siblings must form no cycle. Test
//! code (`#[cfg(test)]`) is left out: a test may reach any layer. A path
//! is resolved to the deepest module it names, so a cycle hidden behind a
//! re-export (`crate::Name` re-exported from a submodule) is not seen.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::ext::IdentExt;
use syn::visit::Visit;

/// A module: its path from the crate root (`[]` is the root).
type ModPath = Vec<String>;

/// One use of another module: where it is written.
#[derive(Clone, Debug)]
struct Use {
    from: ModPath,
    to: ModPath,
    file: PathBuf,
    line: usize,
}

#[derive(Default)]
struct Crate {
    modules: BTreeSet<ModPath>,
    /// Paths as written: the module they appear in, the segments, where.
    paths: Vec<(ModPath, Vec<String>, PathBuf, usize)>,
}

/// Items under `#[cfg(test)]` (or `cfg(any(test, …))`), left out.
fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| match &a.meta {
        syn::Meta::List(l) if l.path.is_ident("cfg") => {
            let t = l.tokens.to_string();
            t.contains("test") && !t.contains("not")
        }
        _ => false,
    })
}

/// Collects the paths written in one module's items.
struct Paths<'a> {
    module: &'a ModPath,
    file: &'a Path,
    out: &'a mut Vec<(ModPath, Vec<String>, PathBuf, usize)>,
}

impl Paths<'_> {
    fn push(&mut self, segs: Vec<String>, line: usize) {
        if matches!(segs.first().map(String::as_str), Some("crate" | "super" | "self")) {
            self.out
                .push((self.module.clone(), segs, self.file.to_path_buf(), line));
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, t: &syn::UseTree, line: usize) {
        match t {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.unraw().to_string());
                self.use_tree(prefix, &p.tree, line);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let mut s = prefix.clone();
                s.push(n.ident.unraw().to_string());
                self.push(s, line);
            }
            syn::UseTree::Rename(r) => {
                let mut s = prefix.clone();
                s.push(r.ident.unraw().to_string());
                self.push(s, line);
            }
            syn::UseTree::Glob(_) => self.push(prefix.clone(), line),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t, line);
                }
            }
        }
    }

    /// `crate :: a :: b` (and `super`, `self`) sequences inside macro
    /// arguments, which syn does not parse.
    fn tokens(&mut self, ts: TokenStream) {
        let toks: Vec<TokenTree> = ts.into_iter().collect();
        let mut i = 0;
        while i < toks.len() {
            match &toks[i] {
                TokenTree::Group(g) => self.tokens(g.stream()),
                TokenTree::Ident(id) if ["crate", "super", "self"].contains(&id.to_string().as_str()) => {
                    let line = id.span().start().line;
                    let mut segs = vec![id.to_string()];
                    let mut j = i + 1;
                    loop {
                        match (toks.get(j), toks.get(j + 1), toks.get(j + 2)) {
                            (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)), Some(TokenTree::Ident(n)))
                                if a.as_char() == ':' && b.as_char() == ':' =>
                            {
                                segs.push(n.to_string());
                                j += 3;
                            }
                            _ => break,
                        }
                    }
                    if segs.len() > 1 {
                        self.push(segs, line);
                    }
                    i = j;
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
    }
}

impl<'ast> Visit<'ast> for Paths<'_> {
    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segs: Vec<String> = p.segments.iter().map(|s| s.ident.unraw().to_string()).collect();
        if let Some(first) = p.segments.first() {
            self.push(segs, first.ident.span().start().line);
        }
        syn::visit::visit_path(self, p);
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        if is_test_only(&u.attrs) {
            return;
        }
        let line = u.use_token.span.start().line;
        self.use_tree(&mut Vec::new(), &u.tree, line);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.tokens(m.tokens.clone());
        syn::visit::visit_macro(self, m);
    }

    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        if !is_test_only(&f.attrs) {
            syn::visit::visit_item_fn(self, f);
        }
    }

    fn visit_item_impl(&mut self, i: &'ast syn::ItemImpl) {
        if !is_test_only(&i.attrs) {
            syn::visit::visit_item_impl(self, i);
        }
    }

    fn visit_item_mod(&mut self, _: &'ast syn::ItemMod) {
        // Submodules are read as modules of their own (`read_items`).
    }
}

/// Read the items of module `module`, written in `file`; submodule files
/// are looked for under `dir`.
fn read_items(c: &mut Crate, module: &ModPath, file: &Path, dir: &Path, items: &[syn::Item]) {
    c.modules.insert(module.clone());
    for item in items {
        match item {
            syn::Item::Mod(m) if is_test_only(&m.attrs) => {}
            syn::Item::Mod(m) => {
                let name = m.ident.unraw().to_string();
                let mut sub = module.clone();
                sub.push(name.clone());
                match &m.content {
                    Some((_, inner)) => read_items(c, &sub, file, &dir.join(&name), inner),
                    None => {
                        let (f, d) = if dir.join(format!("{name}.rs")).is_file() {
                            (dir.join(format!("{name}.rs")), dir.join(&name))
                        } else {
                            (dir.join(&name).join("mod.rs"), dir.join(&name))
                        };
                        read_file(c, &sub, &f, &d);
                    }
                }
            }
            other => {
                let mut v = Paths {
                    module,
                    file,
                    out: &mut c.paths,
                };
                v.visit_item(other);
            }
        }
    }
}

fn read_file(c: &mut Crate, module: &ModPath, file: &Path, dir: &Path) {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    read_items(c, module, file, dir, &ast.items);
}

/// Read a crate from its root file (`src/lib.rs`, `src/main.rs`).
fn read_crate(root: &Path) -> Crate {
    let mut c = Crate::default();
    read_file(
        &mut c,
        &Vec::new(),
        root,
        root.parent().expect("a root file has a directory"),
    );
    c
}

/// The module a path written in `from` names: the deepest module its
/// segments reach (`None` for paths that leave the crate).
fn resolve(c: &Crate, from: &ModPath, segs: &[String]) -> Option<ModPath> {
    let mut at: ModPath = match segs[0].as_str() {
        "crate" => Vec::new(),
        _ => from.clone(),
    };
    let mut rest = &segs[1..];
    if segs[0] == "super" {
        at.pop()?;
        while rest.first().map(String::as_str) == Some("super") {
            at.pop()?;
            rest = &rest[1..];
        }
    }
    for s in rest {
        let mut next = at.clone();
        next.push(s.clone());
        if !c.modules.contains(&next) {
            break;
        }
        at = next;
    }
    Some(at)
}

/// The uses between sibling rooms, lifted as the module docs say.
fn sibling_uses(c: &Crate) -> Vec<Use> {
    let mut out = Vec::new();
    for (from, segs, file, line) in &c.paths {
        let Some(to) = resolve(c, from, segs) else { continue };
        let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
        if common == from.len() || common == to.len() {
            continue; // the same module, an ancestor or a descendant
        }
        out.push(Use {
            from: from[..=common].to_vec(),
            to: to[..=common].to_vec(),
            file: file.clone(),
            line: *line,
        });
    }
    out
}

/// Every cycle among `uses`, as the modules of each strongly connected
/// component with more than one member (Tarjan).
fn cycles(uses: &[Use]) -> Vec<Vec<ModPath>> {
    let mut edges: BTreeMap<&ModPath, BTreeSet<&ModPath>> = BTreeMap::new();
    for u in uses {
        edges.entry(&u.from).or_default().insert(&u.to);
        edges.entry(&u.to).or_default();
    }
    struct T<'a> {
        edges: &'a BTreeMap<&'a ModPath, BTreeSet<&'a ModPath>>,
        index: BTreeMap<&'a ModPath, usize>,
        low: BTreeMap<&'a ModPath, usize>,
        stack: Vec<&'a ModPath>,
        on: BTreeSet<&'a ModPath>,
        out: Vec<Vec<ModPath>>,
    }
    impl<'a> T<'a> {
        fn visit(&mut self, v: &'a ModPath) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            self.on.insert(v);
            for &w in &self.edges[v] {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let l = self.low[v].min(self.low[w]);
                    self.low.insert(v, l);
                } else if self.on.contains(w) {
                    let l = self.low[v].min(self.index[w]);
                    self.low.insert(v, l);
                }
            }
            if self.low[v] == self.index[v] {
                let mut scc = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on.remove(w);
                    scc.push(w.clone());
                    if w == v {
                        break;
                    }
                }
                if scc.len() > 1 {
                    scc.sort();
                    self.out.push(scc);
                }
            }
        }
    }
    let mut t = T {
        edges: &edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !t.index.contains_key(v) {
            t.visit(v);
        }
    }
    t.out
}

fn name(m: &ModPath) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

/// The cycles of one crate, described with the lines that make them.
fn report(root: &Path) -> Vec<String> {
    let c = read_crate(root);
    let uses = sibling_uses(&c);
    cycles(&uses)
        .into_iter()
        .map(|scc| {
            let members: BTreeSet<&ModPath> = scc.iter().collect();
            let mut lines: Vec<String> = uses
                .iter()
                .filter(|u| members.contains(&u.from) && members.contains(&u.to))
                .map(|u| {
                    format!(
                        "    {} → {}  ({}:{})",
                        name(&u.from),
                        name(&u.to),
                        shown(&u.file),
                        u.line
                    )
                })
                .collect();
            lines.dedup();
            format!(
                "{}: a cycle among {}:\n{}",
                shown(root),
                scc.iter().map(name).collect::<Vec<_>>().join(", "),
                lines.join("\n")
            )
        })
        .collect()
}

/// `path` relative to the workspace, as the report prints it.
fn shown(path: &Path) -> String {
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let ws = ws.canonicalize().unwrap_or(ws);
    path.strip_prefix(&ws).unwrap_or(path).display().to_string()
}

fn crate_roots() -> Vec<PathBuf> {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crates/weft sits in crates/")
        .to_path_buf();
    let mut roots = Vec::new();
    for e in std::fs::read_dir(&crates).expect("the crates directory") {
        let dir = e.expect("a directory entry").path();
        for f in ["lib.rs", "main.rs"] {
            let p = dir.join("src").join(f);
            if p.is_file() {
                roots.push(p);
            }
        }
    }
    roots.sort();
    roots
}

#[test]
fn no_crate_has_a_module_cycle() {
    let roots = crate_roots();
    assert!(
        roots.len() >= 12,
        "expected every Weft crate, found {}: {roots:?}",
        roots.len()
    );
    let mut found = Vec::new();
    for r in &roots {
        let c = read_crate(r);
        assert!(
            !c.paths.is_empty() || c.modules.len() == 1,
            "{}: modules read but no paths",
            r.display()
        );
        found.extend(report(r));
    }
    assert!(found.is_empty(), "module cycles:\n{}", found.join("\n"));
}

/// The check itself finds a cycle, through `super::` and inside a macro,
/// and lets a child use its parent.
#[test]
fn the_check_sees_a_cycle_between_siblings_and_allows_parent_and_child() {
    let dir = std::env::temp_dir().join(format!("weft-module-cycles-{}", std::process::id()));
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("b")).unwrap();
    let write = |p: &str, s: &str| std::fs::write(src.join(p), s).unwrap();
    write(
        "lib.rs",
        "pub mod a;\npub mod b;\npub mod c;\npub use b::Y;\npub struct Root;\n",
    );
    write("a.rs", "use crate::b::inner::X;\npub fn f() -> X { X }\n");
    write("b/mod.rs", "pub mod inner;\npub struct Y;\nuse crate::Root;\n");
    write(
        "b/inner.rs",
        "use super::Y;\npub struct X;\nfn g() { println!(\"{:?}\", super::super::c::h()); }\n",
    );
    write(
        "c.rs",
        "pub fn h() { let _ = crate::a::f; }\n#[cfg(test)]\nmod tests { use crate::b::Y; }\n",
    );
    let found = report(&src.join("lib.rs"));
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(found.len(), 1, "{found:#?}");
    let r = &found[0];
    assert!(r.contains("a cycle among a, b, c"), "{r}");
    assert!(
        r.contains("b → c") && r.contains("inner.rs:3"),
        "the macro's path is seen: {r}"
    );
    assert!(!r.contains("→ crate"), "parent and child are one room: {r}");

    // Without the macro's path there is no cycle; the test module's use is not one.
    let c = Crate {
        modules: [vec![], vec!["a".to_string()], vec!["b".to_string()]]
            .into_iter()
            .collect(),
        paths: vec![(
            vec!["a".to_string()],
            vec!["crate".to_string(), "b".to_string()],
            PathBuf::new(),
            1,
        )],
    };
    assert!(cycles(&sibling_uses(&c)).is_empty());
}
