//! The modules of a crate are layers, and imports only point down: a module may use the modules
//! of the layers below its own, and the files of its own folder without a circle among them.
//! [`check`] reads a crate's `src/` as text and names every import that breaks the rule, so a new
//! file cannot quietly bring back a circle such as the one that once ran through the server's
//! state, extractors and services. Code in a file's inline `mod tests` is left out: tests may
//! use anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module's path below the crate root, e.g. `["auth", "token"]`; `[]` for `lib.rs`.
pub type ModPath = Vec<String>;

fn module_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            module_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn module_of(src: &Path, file: &Path) -> ModPath {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: ModPath = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// The code of a file without its comments, which name paths without using them.
pub fn code_of(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path a file names from the crate root: `crate::a::b`, each item of
/// `crate::{a::b, c}`, and `super::x` resolved against the file's module (inside an inline
/// `mod x { .. }`, `super` is the file itself). Paths inside `mod tests { .. }` are left out.
pub fn paths_named(module: &ModPath, code: &str) -> Vec<ModPath> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    let word_start =
        |i: usize| i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
    let inline = inline_modules(code);
    for root in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(at) = code[from..].find(root) {
            let start = from + at;
            from = start + root.len();
            if !word_start(start) {
                continue;
            }
            if inline
                .iter()
                .any(|(name, span)| *name == "tests" && span.contains(&start))
            {
                continue;
            }
            let base = match root {
                "crate::" => Vec::new(),
                _ if inline.iter().any(|(_, span)| span.contains(&start)) => module.clone(),
                _ => parent(module),
            };
            for tail in expand(&code[from..]) {
                let mut path = base.clone();
                path.extend(tail);
                found.push(path);
            }
        }
    }
    found
}

/// The inline modules (`mod name { .. }`) of a file's code: each name with its span.
fn inline_modules(code: &str) -> Vec<(&str, std::ops::Range<usize>)> {
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find("mod ") {
        let start = from + at;
        from = start + 4;
        let rest = code[from..].trim_start();
        let name_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if let Some(body) = rest[name_len..].trim_start().strip_prefix('{') {
            let open = code.len() - body.len();
            spans.push((&rest[..name_len], start..open + matching_brace(body)));
        }
    }
    spans
}

fn parent(module: &ModPath) -> ModPath {
    module[..module.len().saturating_sub(1)].to_vec()
}

/// The paths that start at `rest`: `a::b::C` is one, `{a::b, c::{d, e}}` are several.
fn expand(rest: &str) -> Vec<Vec<String>> {
    let ident = |s: &str| -> usize {
        s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(s.len())
    };
    let mut segments = Vec::new();
    let mut s = rest;
    loop {
        if let Some(inner) = s.strip_prefix('{') {
            let close = matching_brace(inner);
            let mut all = Vec::new();
            for item in split_top_level(&inner[..close]) {
                for tail in expand(item.trim()) {
                    let mut path = segments.clone();
                    path.extend(tail);
                    all.push(path);
                }
            }
            return all;
        }
        let n = ident(s);
        if n == 0 {
            break;
        }
        segments.push(s[..n].to_owned());
        match s[n..].strip_prefix("::") {
            Some(next) => s = next,
            None => break,
        }
    }
    vec![segments]
}

fn matching_brace(s: &str) -> usize {
    let mut depth = 0;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return i,
            '}' => depth -= 1,
            _ => {}
        }
    }
    s.len()
}

fn split_top_level(s: &str) -> Vec<&str> {
    let (mut depth, mut start, mut items) = (0, 0, Vec::new());
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&s[start..]);
    items
}

/// The deepest module of `modules` that `path` lies in.
fn resolve(path: &ModPath, modules: &BTreeSet<ModPath>) -> ModPath {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| modules.contains(p))
        .unwrap_or_default()
}

/// Checks the crate whose sources are in `src` against `layers` (bottom first; the modules of
/// one layer may not use each other; `lib` names `lib.rs`). `Err` lists every import that
/// points up or sideways, or the first circle found among the files of one folder.
pub fn check(src: &Path, layers: &[&[&str]]) -> Result<(), String> {
    let layer_of = |top: &str| -> Result<usize, String> {
        layers
            .iter()
            .position(|l| l.contains(&top))
            .ok_or_else(|| format!("module `{top}` is in no layer: add it to the crate's layers"))
    };
    let mut files = Vec::new();
    module_files(src, &mut files);
    let modules: BTreeSet<ModPath> = files.iter().map(|f| module_of(src, f)).collect();
    let top = |m: &ModPath| m.first().cloned().unwrap_or_else(|| "lib".to_owned());

    let mut edges: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
    let mut wrong = Vec::new();
    for file in &files {
        let module = module_of(src, file);
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        for named in paths_named(&module, &code) {
            let target = resolve(&named, &modules);
            if target == module || target.is_empty() && named.is_empty() {
                continue;
            }
            let (from, to) = (top(&module), top(&target));
            if from == to {
                // A module of a folder may use its children (its `pub use`s do) and its
                // siblings; only a cycle among them is wrong, found below.
                edges.entry(module.clone()).or_default().insert(target);
            } else if layer_of(&to)? >= layer_of(&from)? {
                wrong.push(format!(
                    "{} uses {} (layer {} may only use layers below it; {to} is layer {})",
                    file.strip_prefix(src).unwrap().display(),
                    named.join("::"),
                    layer_of(&from)?,
                    layer_of(&to)?,
                ));
            }
        }
    }
    if !wrong.is_empty() {
        return Err(format!(
            "imports that point up or sideways:\n{}",
            wrong.join("\n")
        ));
    }

    // No cycle inside a folder: depth-first search for a back edge.
    fn visit(
        m: &ModPath,
        edges: &BTreeMap<ModPath, BTreeSet<ModPath>>,
        state: &mut BTreeMap<ModPath, bool>,
        stack: &mut Vec<ModPath>,
    ) -> Option<Vec<ModPath>> {
        match state.get(m) {
            Some(true) => return None,
            Some(false) => {
                let at = stack.iter().position(|s| s == m).unwrap();
                return Some(stack[at..].to_vec());
            }
            None => {}
        }
        state.insert(m.clone(), false);
        stack.push(m.clone());
        for next in edges.get(m).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, state, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        state.insert(m.clone(), true);
        None
    }
    let mut state = BTreeMap::new();
    for m in edges.keys() {
        if let Some(cycle) = visit(m, &edges, &mut state, &mut Vec::new()) {
            let names: Vec<String> = cycle.iter().map(|m| m.join("::")).collect();
            panic!(
                "modules import each other in a circle: {}",
                names.join(" → ")
            );
        }
    }
    Ok(())
}
