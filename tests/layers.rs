//! The layer check: modules point one way.
//!
//! Reads every `src/**/*.rs`, finds the paths that name another module
//! (`crate::a::…`, `use crate::{a, b::…}`, `super::…`), and builds the graph
//! of top-level modules, each file of `src/cmd/` a node of its own. It fails,
//! printing the offending edges with the file and line of each, when
//! - two modules import each other, directly or through others (a cycle);
//! - a module imports one in a layer above its own, or another module of its
//!   own layer (a layer's modules are independent of each other);
//! - a module is in no layer.
//!
//! The layers are the numbered list under `# Layers` in `src/lib.rs`'s doc
//! comment: one list item a layer, top first, naming its modules in
//! backticks before the colon (`cmd/*` stands for every file of `src/cmd/`).
//! Comments, strings and `main.rs` (the binary) are not read.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Where an edge was seen: file and line.
type Places = Vec<String>;

#[test]
fn modules_point_one_way() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let layers = declared_layers(&fs::read_to_string(src.join("lib.rs")).expect("src/lib.rs"));
    assert!(!layers.is_empty(), "src/lib.rs declares no `# Layers` list");
    let graph = module_graph(&src);

    let mut problems = Vec::new();
    let nodes: BTreeSet<&String> = graph.keys().chain(graph.values().flat_map(|t| t.keys())).collect();
    let layer_of = |node: &str| -> Option<usize> {
        layers.iter().position(|names| {
            names
                .iter()
                .any(|n| n == node || (n == "cmd/*" && node.starts_with("cmd/")))
        })
    };
    for node in &nodes {
        if layer_of(node).is_none() {
            problems.push(format!(
                "module `{node}` is in no layer: add it to `# Layers` in src/lib.rs"
            ));
        }
    }
    for (from, targets) in &graph {
        for (to, places) in targets {
            if let (Some(a), Some(b)) = (layer_of(from), layer_of(to))
                && a >= b
            {
                let what = if a == b {
                    "a module of its own layer"
                } else {
                    "a layer above it"
                };
                problems.push(format!(
                    "{from} -> {to}: imports {what} (layer {} -> layer {}), at {}",
                    a + 1,
                    b + 1,
                    places.join(", ")
                ));
            }
        }
    }
    let against_layers = |a: &str, b: &str| match (layer_of(a), layer_of(b)) {
        (Some(a), Some(b)) => a >= b,
        _ => true,
    };
    for cycle in cycles(&graph, against_layers) {
        let mut edges = Vec::new();
        for (i, from) in cycle.iter().enumerate() {
            let to = &cycle[(i + 1) % cycle.len()];
            edges.push(format!("{from} -> {to} (at {})", graph[from][to].join(", ")));
        }
        problems.push(format!("import cycle: {}", edges.join("; ")));
    }
    assert!(
        problems.is_empty(),
        "the modules do not point one way ({} problems):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

/// The `# Layers` list of the crate's doc comment: per item, its modules.
fn declared_layers(lib: &str) -> Vec<Vec<String>> {
    let doc: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("//!"))
        .map(str::trim)
        .collect();
    let Some(start) = doc.iter().position(|l| *l == "# Layers") else {
        return Vec::new();
    };
    let mut layers = Vec::new();
    for line in &doc[start + 1..] {
        if line.starts_with('#') {
            break;
        }
        let Some((number, rest)) = line.split_once(". ") else {
            continue;
        };
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let names = rest.split_once(':').map_or(rest, |(names, _)| names);
        layers.push(names.split('`').skip(1).step_by(2).map(str::to_string).collect());
    }
    layers
}

/// from → to → where: the imports between the graph's nodes.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeMap<String, Places>> {
    let mut graph: BTreeMap<String, BTreeMap<String, Places>> = BTreeMap::new();
    for file in rust_files(src) {
        let relative = file.strip_prefix(src).expect("under src");
        let mut module: Vec<String> = relative
            .with_extension("")
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        if module.last().is_some_and(|m| m == "mod") {
            module.pop();
        }
        if module == ["main"] || module == ["lib"] {
            continue;
        }
        let from = node(src, &module).expect("a file is a module");
        let text = fs::read_to_string(&file).expect("readable source");
        for (target, line) in module_paths(&code_only(&text), &module) {
            let Some(to) = node(src, &target) else { continue };
            if to != from {
                graph
                    .entry(from.clone())
                    .or_default()
                    .entry(to)
                    .or_default()
                    .push(format!("{}:{line}", Path::new("src").join(relative).display()));
            }
        }
        graph.entry(from).or_default();
    }
    for places in graph.values_mut().flat_map(|t| t.values_mut()) {
        places.dedup();
    }
    graph
}

/// The graph node of a module path (`["sink", "bulk"]` → `sink`, `["cmd",
/// "import"]` → `cmd/import`), or None when its first segment is not a
/// module of the crate (an item of `lib.rs`, a macro).
fn node(src: &Path, path: &[String]) -> Option<String> {
    let first = path.first()?;
    let is_module = |p: PathBuf| p.with_extension("rs").is_file() || p.join("mod.rs").is_file();
    if !is_module(src.join(first)) {
        return None;
    }
    if first == "cmd"
        && let Some(second) = path.get(1)
        && is_module(src.join("cmd").join(second))
    {
        return Some(format!("cmd/{second}"));
    }
    Some(first.clone())
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut entries: Vec<_> = fs::read_dir(dir).expect("readable dir").flatten().collect();
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The text with comments, strings and character literals blanked out
/// (newlines kept, so line numbers still hold).
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
        } else if c == 'r'
            && matches!(next, Some('"') | Some('#'))
            && (!ident_before(&chars, i) || (chars[i - 1] == 'b' && !ident_before(&chars, i - 1)))
        {
            // r"…", r#"…"#, br#"…"#: up to the quote followed by as many hashes.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            while j < chars.len() {
                if chars[j] == '"' && (1..=hashes).all(|k| chars.get(j + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                blank(&mut out, chars[j]);
                j += 1;
            }
            i = j;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                if let Some(&c) = chars.get(i) {
                    blank(&mut out, c);
                }
                i += 1;
            }
            i += 1;
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{1F600}'), or a lifetime ('a).
            if next == Some('\\') {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_before(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// The module paths named in code (`crate::…`, `super::…`, `self::…`),
/// resolved from inside `module` (inline `mod x { … }` blocks included),
/// with their line numbers.
fn module_paths(code: &str, module: &[String]) -> Vec<(Vec<String>, usize)> {
    let tokens = tokenize(code);
    let mut found = Vec::new();
    // The inline modules open at each point: (name, brace depth inside it).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    while i < tokens.len() {
        let (token, line) = (&tokens[i].0, tokens[i].1);
        match token.as_str() {
            "{" => depth += 1,
            "}" => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                assert!(depth > 0, "unbalanced braces at line {line} of {}", module.join("/"));
                depth -= 1;
            }
            "mod" if tokens.get(i + 2).is_some_and(|t| t.0 == "{") => {
                inline.push((tokens[i + 1].0.clone(), depth + 1));
            }
            "crate" | "super" | "self"
                if tokens.get(i + 1).is_some_and(|t| t.0 == "::") && (i == 0 || tokens[i - 1].0 != "::") =>
            {
                let mut base: Vec<String> = module.to_vec();
                base.extend(inline.iter().map(|(name, _)| name.clone()));
                let mut j = i;
                let mut prefix = match token.as_str() {
                    "crate" => {
                        j += 2;
                        Vec::new()
                    }
                    _ => {
                        // super::super::… and self::…
                        while tokens.get(j).is_some_and(|t| t.0 == "super" || t.0 == "self")
                            && tokens.get(j + 1).is_some_and(|t| t.0 == "::")
                        {
                            if tokens[j].0 == "super" {
                                base.pop();
                            }
                            j += 2;
                        }
                        base
                    }
                };
                let mut paths = Vec::new();
                use_tree(&tokens, &mut j, &mut prefix, &mut paths);
                found.extend(paths.into_iter().map(|p| (p, line)));
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    found
}

/// Reads a path or a use tree from `tokens[*at]` (`a::b`, `a::{b, c::d}`),
/// each full path appended to `paths`.
fn use_tree(tokens: &[(String, usize)], at: &mut usize, prefix: &mut Vec<String>, paths: &mut Vec<Vec<String>>) {
    let depth = prefix.len();
    loop {
        match tokens.get(*at).map(|t| t.0.as_str()) {
            Some("{") => {
                *at += 1;
                loop {
                    use_tree(tokens, at, prefix, paths);
                    match tokens.get(*at).map(|t| t.0.as_str()) {
                        Some(",") => *at += 1,
                        Some("}") => {
                            *at += 1;
                            break;
                        }
                        _ => break,
                    }
                    if tokens.get(*at).is_some_and(|t| t.0 == "}") {
                        *at += 1;
                        break;
                    }
                }
                break;
            }
            Some(word) if is_ident(word) => {
                if word != "self" {
                    prefix.push(word.to_string());
                }
                *at += 1;
                if tokens.get(*at).is_some_and(|t| t.0 == "::") {
                    *at += 1;
                    continue;
                }
                paths.push(prefix.clone());
                break;
            }
            Some("*") => {
                *at += 1;
                paths.push(prefix.clone());
                break;
            }
            _ => {
                paths.push(prefix.clone());
                break;
            }
        }
    }
    prefix.truncate(depth);
}

fn is_ident(word: &str) -> bool {
    word.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// Identifiers, `::` and single punctuation, with their line numbers.
fn tokenize(code: &str) -> Vec<(String, usize)> {
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut chars = code.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\n' {
            line += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let mut word = c.to_string();
            while let Some(&c) = chars.peek() {
                if !(c.is_alphanumeric() || c == '_') {
                    break;
                }
                word.push(c);
                chars.next();
            }
            tokens.push((word, line));
        } else if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            tokens.push(("::".to_string(), line));
        } else if !c.is_whitespace() {
            tokens.push((c.to_string(), line));
        }
    }
    tokens
}

/// The cycles of the graph: for each strongly connected component of more
/// than one node (modules that all reach each other), one shortest cycle,
/// through an edge `first` picks when it can (an edge against the layers:
/// the one to look at).
fn cycles(graph: &BTreeMap<String, BTreeMap<String, Places>>, first: impl Fn(&str, &str) -> bool) -> Vec<Vec<String>> {
    let targets = |n: &str| -> Vec<String> { graph.get(n).map(|t| t.keys().cloned().collect()).unwrap_or_default() };
    // The shortest path from `from` to `to` (breadth first), without `to`.
    let path = |from: &str, to: &str| -> Option<Vec<String>> {
        let mut previous: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([from.to_string()]);
        while let Some(n) = queue.pop_front() {
            for t in targets(&n) {
                if t == to {
                    let mut path = vec![n.clone()];
                    let mut at = n;
                    while let Some(p) = previous.get(&at) {
                        path.push(p.clone());
                        at = p.clone();
                    }
                    path.reverse();
                    return Some(path);
                }
                if t != from && !previous.contains_key(&t) {
                    previous.insert(t.clone(), n.clone());
                    queue.push_back(t);
                }
            }
        }
        None
    };
    let mut found = Vec::new();
    let mut placed: BTreeSet<String> = BTreeSet::new();
    for node in graph.keys() {
        if placed.contains(node) {
            continue;
        }
        let component: BTreeSet<String> = graph
            .keys()
            .filter(|m| *m == node || (path(node, m).is_some() && path(m, node).is_some()))
            .cloned()
            .collect();
        placed.extend(component.iter().cloned());
        if component.len() < 2 {
            continue;
        }
        let edges: Vec<(&String, &String)> = component
            .iter()
            .flat_map(|a| graph[a].keys().filter(|b| component.contains(*b)).map(move |b| (a, b)))
            .collect();
        let (from, to) = edges
            .iter()
            .find(|(a, b)| first(a, b))
            .or(edges.first())
            .copied()
            .expect("a component of two or more nodes has an edge");
        let mut cycle = vec![from.clone()];
        cycle.extend(path(to, from).expect("the component's nodes reach each other"));
        found.push(cycle);
    }
    found
}

#[test]
fn the_reader_finds_module_paths() {
    let code = code_only(
        r##"
        // use crate::nope;
        use crate::{alpha::X, beta::{self, Y}};
        use super::gamma;
        let s = "crate::strings";
        let r = r#"crate::raw"#; let b = br#"{"#;
        let c = '"'; let l: &'static str = "";
        fn f() { crate::delta::run(); }
        mod tests { use super::*; use super::super::epsilon; }
        "##,
    );
    let module = ["cmd".to_string(), "import".to_string()];
    let paths: Vec<Vec<String>> = module_paths(&code, &module).into_iter().map(|(p, _)| p).collect();
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        paths,
        vec![
            strings(&["alpha", "X"]),
            strings(&["beta"]),
            strings(&["beta", "Y"]),
            strings(&["cmd", "gamma"]),
            strings(&["delta", "run"]),
            strings(&["cmd", "import"]),
            strings(&["cmd", "epsilon"]),
        ]
    );
}

#[test]
fn cycles_are_found_and_closed() {
    let mut graph: BTreeMap<String, BTreeMap<String, Places>> = BTreeMap::new();
    for (a, b) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "e")] {
        graph.entry(a.into()).or_default().insert(b.into(), vec![]);
    }
    assert_eq!(
        cycles(&graph, |_, _| false),
        vec![vec!["a".to_string(), "b".into(), "c".into()]]
    );
    // Through the edge asked for, when it is on the cycle.
    assert_eq!(
        cycles(&graph, |a, b| (a, b) == ("c", "a")),
        vec![vec!["c".to_string(), "a".into(), "b".into()]]
    );
    graph.remove("c");
    assert!(cycles(&graph, |_, _| true).is_empty());
}
