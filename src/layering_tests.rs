//! Layers depend one way (style.md, ARCHITECTURE.md "Layers"): a folder
//! of `src/` may use the folders below it in [`LAYERS`], never one above
//! or beside it. Checked on the source text of every non-test file, so a
//! new upward `crate::` path fails here before it becomes a loop.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Bottom first. Each entry is a top-level folder (or file) of `src/`.
const LAYERS: &[&str] = &[
    "util",
    "sip",
    "cfg",
    "os",
    "logging",
    "db",
    "net",
    "fwd",
    "proc",
    "timer",
    "ctl",
    "route",
    "tm",
    "modules",
    "metrics",
    "fuzz_targets",
    "cli",
    "server",
    "serctl",
    "bin",
    "main",
    "lib",
];

/// Test-only files may reach up (a tm test loads the module catalog).
fn is_test_file(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.contains("test")
        || name == "doc_examples.rs"
        || p.components().any(|c| c.as_os_str() == "tests")
}

/// The source without its trailing `#[cfg(test)] mod tests { … }`.
fn non_test_part(src: &str) -> &str {
    match src.find("#[cfg(test)]\nmod tests") {
        Some(i) => &src[..i],
        None => src,
    }
}

/// Top-level folders named by `crate::X` paths and `use crate::{X, …}`.
fn crate_deps(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in src.match_indices("crate::") {
        let rest = &src[i + "crate::".len()..];
        if let Some(list) = rest.strip_prefix('{') {
            let end = list.find('}').unwrap_or(list.len());
            for item in list[..end].split(',') {
                let name = ident(item.trim());
                if !name.is_empty() {
                    out.push(name);
                }
            }
        } else {
            out.push(ident(rest));
        }
    }
    out
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every upward or sideways import in the tree, as `file: from -> to`.
fn violations(src_dir: &Path) -> Vec<String> {
    let rank: HashMap<&str, usize> = LAYERS.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let mut files = Vec::new();
    rs_files(src_dir, &mut files);
    let mut bad = Vec::new();
    for f in files {
        let rel = f.strip_prefix(src_dir).unwrap();
        let top = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .unwrap_or("")
            .trim_end_matches(".rs")
            .to_string();
        if is_test_file(rel) {
            continue;
        }
        let Some(&mine) = rank.get(top.as_str()) else {
            bad.push(format!("{}: `{top}` has no place in LAYERS", rel.display()));
            continue;
        };
        let src = std::fs::read_to_string(&f).unwrap();
        for dep in crate_deps(non_test_part(&src)) {
            match rank.get(dep.as_str()) {
                Some(&r) if dep != top && r >= mine => {
                    bad.push(format!("{}: {top} -> {dep}", rel.display()))
                }
                _ => {}
            }
        }
    }
    bad.sort();
    bad.dedup();
    bad
}

#[test]
fn every_folder_uses_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bad = violations(&src);
    assert!(
        bad.is_empty(),
        "imports against the layering:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_dependency_scan_sees_both_path_forms() {
    let deps =
        crate_deps("use crate::tm::store;\nuse crate::{route::x, sip};\nlet a = crate::net::f();");
    assert_eq!(deps, vec!["tm", "route", "sip", "net"]);
}

/// The modules of `src/tm/` (files and folders) each names, non-test code
/// only: `crate::tm::X` and `super::X` paths.
fn tm_edges(tm_dir: &Path) -> HashMap<String, Vec<String>> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(tm_dir).unwrap() {
        let p = e.unwrap().path();
        let name = p
            .file_stem()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        if !is_test_file(&p) && name != "mod" {
            names.push((name, p));
        }
    }
    let known: Vec<String> = names.iter().map(|(n, _)| n.clone()).collect();
    let mut edges = HashMap::new();
    for (name, path) in &names {
        let mut files = Vec::new();
        if path.is_dir() {
            rs_files(path, &mut files);
        } else {
            files.push(path.clone());
        }
        let mut deps = Vec::new();
        for f in files.iter().filter(|f| !is_test_file(f)) {
            let src = std::fs::read_to_string(f).unwrap();
            let src = non_test_part(&src);
            for prefix in ["crate::tm::", "super::"] {
                for (i, _) in src.match_indices(prefix) {
                    let rest = &src[i + prefix.len()..];
                    let items: Vec<&str> = match rest.strip_prefix('{') {
                        Some(list) => list[..list.find('}').unwrap_or(list.len())]
                            .split(',')
                            .collect(),
                        None => vec![rest],
                    };
                    for item in items {
                        let dep: String = item
                            .trim()
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        if dep != *name && known.contains(&dep) && !deps.contains(&dep) {
                            deps.push(dep);
                        }
                    }
                }
            }
        }
        edges.insert(name.clone(), deps);
    }
    edges
}

#[test]
fn tm_has_no_import_loop() {
    let tm = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/tm");
    let edges = tm_edges(&tm);
    assert!(edges.len() > 10, "{edges:?}");
    // Depth-first search for a path back to the start.
    for start in edges.keys() {
        let mut stack: Vec<Vec<String>> = vec![vec![start.clone()]];
        while let Some(path) = stack.pop() {
            let last = path.last().unwrap();
            for next in edges.get(last).into_iter().flatten() {
                assert!(
                    next != start,
                    "import loop in src/tm: {} -> {next}",
                    path.join(" -> ")
                );
                if !path.contains(next) {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push(longer);
                }
            }
        }
    }
}
