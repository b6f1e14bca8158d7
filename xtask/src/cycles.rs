//! `cargo xtask cycles`: fails when a file of a crate imports, directly or through others, a file
//! that imports it back. An edge is a `crate::`, `super::` or `self::` path in a file's code (its
//! `mod tests` left out) that names another file's module; a module's `mod x;` declaration is not
//! an edge, so a parent may route to its children while they import only their siblings.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::util::repo_root;

/// The source folders checked.
const ROOTS: [&str; 4] = ["core/src", "wasm/src", "host/src", "xtask/src"];

pub fn cycles(args: &[String]) -> Result<()> {
    if !args.is_empty() {
        bail!("usage: cargo xtask cycles");
    }
    let mut found = Vec::new();
    for root in ROOTS {
        let graph = graph(&repo_root().join(root))?;
        for cycle in strongly_connected(&graph) {
            found.push(format!("{root}: {}", cycle.join(" -> ")));
        }
    }
    if !found.is_empty() {
        bail!(
            "import cycles between files:\n  {}\nmove what both sides need into a module of its own",
            found.join("\n  ")
        );
    }
    eprintln!("cycles: none in {}", ROOTS.join(", "));
    Ok(())
}

/// Module path (`api::state`; the crate root is ``) of every `.rs` file under `root`.
fn modules(root: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(root)?.with_extension("");
                let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
                if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
                    parts.pop();
                }
                out.insert(parts.join("::"), path);
            }
        }
    }
    Ok(out)
}

fn graph(root: &Path) -> Result<BTreeMap<String, BTreeSet<String>>> {
    let modules = modules(root)?;
    let mut graph = BTreeMap::new();
    for (module, path) in &modules {
        let text = std::fs::read_to_string(path)?;
        let code = text.split("#[cfg(test)]\nmod tests {").next().unwrap_or(&text);
        let own: Vec<&str> = module.split("::").filter(|s| !s.is_empty()).collect();
        let mut edges = BTreeSet::new();
        for path in paths(code) {
            let mut resolved: Vec<&str> = Vec::new();
            let mut rest = path.as_slice();
            match rest.first().map(String::as_str) {
                Some("crate") => rest = &rest[1..],
                Some("self") => {
                    resolved = own.clone();
                    rest = &rest[1..];
                }
                _ => {
                    resolved = own.clone();
                    while rest.first().is_some_and(|s| s == "super") {
                        resolved.pop();
                        rest = &rest[1..];
                    }
                }
            }
            resolved.extend(rest.iter().map(String::as_str));
            let target = (1..=resolved.len()).rev().map(|n| resolved[..n].join("::")).find(|m| modules.contains_key(m));
            if let Some(t) = target.filter(|t| t != module) {
                edges.insert(t);
            }
        }
        graph.insert(module.clone(), edges);
    }
    Ok(graph)
}

/// Every `crate::a::b`, `super::a`, `self::a` path in `code`, with each item of a `{a, b::c}`
/// group as its own path.
fn paths(code: &str) -> Vec<Vec<String>> {
    let bytes = code.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts = ["crate::", "super::", "self::"].iter().any(|p| bytes[i..].starts_with(p.as_bytes()));
        if !starts || (i > 0 && (ident(bytes[i - 1]) || bytes[i - 1] == b':')) {
            i += 1;
            continue;
        }
        let mut segments = Vec::new();
        let mut j = i;
        loop {
            let start = j;
            while j < bytes.len() && ident(bytes[j]) {
                j += 1;
            }
            if start == j {
                break;
            }
            segments.push(code[start..j].to_owned());
            if !code[j..].starts_with("::") {
                break;
            }
            j += 2;
        }
        if code[j..].starts_with('{') {
            let end = code[j..].find('}').map_or(bytes.len(), |e| j + e);
            for item in code[j + 1..end].split(',') {
                let first: String = item
                    .trim()
                    .split("::")
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !first.is_empty() && first != "self" {
                    let mut p = segments.clone();
                    p.push(first);
                    out.push(p);
                }
            }
            j = end;
        }
        out.push(segments);
        i = j.max(i + 1);
    }
    out
}

/// The cycles of `graph` (Tarjan's strongly connected components of more than one module).
fn strongly_connected(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            if !s.index.contains_key(w.as_str()) {
                visit(s, w);
                let lw = s.low[w.as_str()];
                s.low.insert(v, s.low[v].min(lw));
            } else if s.on_stack.contains(w.as_str()) {
                let iw = s.index[w.as_str()];
                s.low.insert(v, s.low[v].min(iw));
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(if w.is_empty() { "(crate root)".to_owned() } else { w.to_owned() });
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_groups_are_read() {
        let code = "use super::{state::Shared, error};\nuse crate::store::Kind;\nlet x = self::a::b(); foo::crate_x";
        let got = paths(code);
        assert!(got.contains(&vec!["super".into(), "state".into()]));
        assert!(got.contains(&vec!["super".into(), "error".into()]));
        assert!(got.contains(&vec!["crate".into(), "store".into(), "Kind".into()]));
        assert!(got.contains(&vec!["self".into(), "a".into(), "b".into()]));
    }

    #[test]
    fn a_cycle_is_found_and_a_chain_is_not() {
        let edges = |pairs: &[(&str, &str)]| {
            let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for (a, b) in pairs {
                g.entry((*a).into()).or_default().insert((*b).into());
                g.entry((*b).into()).or_default();
            }
            g
        };
        assert!(strongly_connected(&edges(&[("a", "b"), ("b", "c")])).is_empty());
        assert_eq!(strongly_connected(&edges(&[("a", "b"), ("b", "c"), ("c", "a")])), vec![vec!["a", "b", "c"]]);
    }
}
