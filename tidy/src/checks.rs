//! The rules applied: every file read once, each rule reporting what it
//! finds against the tables of `rules.rs`. Known exceptions are taken out by
//! the caller (`check`), so each rule here reports every break it sees.

use std::collections::HashMap;

use crate::rules::{CLIENTS, CRATES, LAYERS, MAX_LINES, PROTO_HOMES, SERVER_SRC, STATUS_HOMES};
use crate::source::{Source, Tok};
use crate::tree::{Crate, Tree, crate_of, is_test_file, under};
use crate::{Rule, Violation};

pub fn all(tree: &Tree) -> Vec<Violation> {
    let crates = tree.crates();
    let ours: Vec<&Crate> = crates
        .iter()
        .filter(|c| c.name.starts_with("omniroute"))
        .collect();
    let mut found = Vec::new();
    crate_manifests(&ours, &mut found);
    let server_root = server_root_aliases(tree);
    for (path, text) in tree.rust_files() {
        let Some(source) = tree.source(path) else {
            continue;
        };
        let krate = crate_of(&crates, path);
        if let Some(krate) = krate.filter(|k| k.name.starts_with("omniroute")) {
            crate_names(path, &source, krate, &ours, &mut found);
        }
        if is_test_file(path) {
            continue;
        }
        size(path, text, &mut found);
        proto(path, &source, &mut found);
        status(path, &source, &mut found);
        if under(path, SERVER_SRC) {
            layers(path, &source, &server_root, &mut found);
        }
    }
    found
}

fn violation(
    rule: Rule,
    file: &str,
    line: usize,
    what: impl Into<String>,
    message: String,
) -> Violation {
    Violation {
        rule,
        file: file.to_owned(),
        line,
        what: what.into(),
        message,
    }
}

/// The crates of ours a crate may use, or `None` when it has no row.
fn may_use(name: &str) -> Option<&'static [&'static str]> {
    CRATES.iter().find(|(c, _)| *c == name).map(|(_, may)| *may)
}

fn allows(may: &[&str], own: &str, other: &str) -> bool {
    other == own || may.iter().any(|m| *m == "*" || *m == other)
}

/// Rule `crates`, on manifests: every crate of ours has a row, and depends
/// on no crate of ours its row leaves out.
fn crate_manifests(ours: &[&Crate], found: &mut Vec<Violation>) {
    for krate in ours {
        let manifest = if krate.dir.is_empty() {
            "Cargo.toml".to_owned()
        } else {
            format!("{}/Cargo.toml", krate.dir)
        };
        let Some(may) = may_use(&krate.name) else {
            found.push(violation(
                Rule::Crates,
                &manifest,
                1,
                krate.name.clone(),
                format!(
                    "{} has no row in tidy's CRATES: say which crates of ours it may use",
                    krate.name
                ),
            ));
            continue;
        };
        for dep in &krate.deps {
            let is_ours = ours.iter().any(|c| c.name == dep.package);
            if is_ours && !allows(may, &krate.name, &dep.package) {
                found.push(violation(
                    Rule::Crates,
                    &manifest,
                    dep.line,
                    dep.package.clone(),
                    format!(
                        "{} may not depend on {} (allowed: {})",
                        krate.name,
                        dep.package,
                        list(may)
                    ),
                ));
            }
        }
    }
}

/// The identifier a crate is named by in Rust (`omniroute-store` →
/// `omniroute_store`).
fn ident_of(name: &str) -> String {
    name.replace('-', "_")
}

/// Rule `crates`, on sources (tests included: a crate's tests see what its
/// manifest allows): a crate naming a crate of ours its row leaves out.
fn crate_names(
    path: &str,
    source: &Source,
    krate: &Crate,
    ours: &[&Crate],
    found: &mut Vec<Violation>,
) {
    let Some(may) = may_use(&krate.name) else {
        return;
    };
    let idents: HashMap<String, &str> = ours
        .iter()
        .map(|c| (ident_of(&c.name), c.name.as_str()))
        .collect();
    let t = &source.tokens;
    for (i, token) in t.iter().enumerate() {
        let Some(other) = token.ident().and_then(|id| idents.get(id)) else {
            continue;
        };
        // A crate is named as a path's first segment, never after `::` or `.`.
        if i > 0 && (t[i - 1].tok == Tok::PathSep || t[i - 1].is_punct('.')) {
            continue;
        }
        if !allows(may, &krate.name, other) {
            found.push(violation(
                Rule::Crates,
                path,
                token.line,
                *other,
                format!(
                    "{} may not use {} (allowed: {})",
                    krate.name,
                    other,
                    list(may)
                ),
            ));
        }
    }
}

/// Rule `proto`: proto types named outside the places they may be.
fn proto(path: &str, source: &Source, found: &mut Vec<Violation>) {
    if PROTO_HOMES
        .iter()
        .chain(CLIENTS)
        .any(|home| under(path, home))
    {
        return;
    }
    let t = &source.tokens;
    for (i, token) in t.iter().enumerate() {
        if token.test {
            continue;
        }
        let what = match token.ident() {
            Some("omniroute_proto") => "omniroute_proto",
            Some("pb") if t.get(i + 1).is_some_and(|n| n.tok == Tok::PathSep) => "pb",
            _ => continue,
        };
        if i > 0 && t[i - 1].tok == Tok::PathSep {
            continue;
        }
        found.push(violation(
            Rule::Proto,
            path,
            token.line,
            what,
            format!(
                "proto type ({what}) outside services/server/src/api/: speak domain types here"
            ),
        ));
    }
}

/// Rule `status`: a `Status::<constructor>` outside its homes. `Status::from`
/// is the one mapping's `From` impl at work, not a new status.
fn status(path: &str, source: &Source, found: &mut Vec<Violation>) {
    if STATUS_HOMES.contains(&path) || CLIENTS.iter().any(|client| under(path, client)) {
        return;
    }
    let t = &source.tokens;
    for (i, token) in t.iter().enumerate() {
        if token.test
            || !token.is_ident("Status")
            || !t.get(i + 1).is_some_and(|n| n.tok == Tok::PathSep)
        {
            continue;
        }
        let Some(function) = t.get(i + 2).and_then(|n| n.ident()) else {
            continue;
        };
        if function == "from" || !function.starts_with(|c: char| c.is_ascii_lowercase()) {
            continue;
        }
        let what = format!("Status::{function}");
        found.push(violation(
            Rule::Status,
            path,
            token.line,
            what.clone(),
            format!("{what} outside api/error.rs: return a typed error and map it there"),
        ));
    }
}

/// Rule `size`: a non-test source file over `MAX_LINES` (generated files and
/// the fuzz targets aside).
fn size(path: &str, text: &str, found: &mut Vec<Violation>) {
    if under(path, "fuzz") || text.lines().take(5).any(|l| l.contains("@generated")) {
        return;
    }
    let lines = text.lines().count();
    if lines > MAX_LINES {
        found.push(violation(
            Rule::Size,
            path,
            MAX_LINES + 1,
            "",
            format!("{lines} lines, over {MAX_LINES}: split it along a real seam"),
        ));
    }
}

/// The server's crate-root names: its modules, and what `lib.rs` re-exports
/// (`Settings` → `settings::Settings`), so that `crate::Settings` is read as
/// the module it comes from.
#[derive(Debug, Default)]
struct ServerRoot {
    aliases: HashMap<String, Vec<String>>,
}

fn server_root_aliases(tree: &Tree) -> ServerRoot {
    let Some(lib) = tree.source(&format!("{SERVER_SRC}/lib.rs")) else {
        return ServerRoot::default();
    };
    let aliases = lib
        .paths(&[])
        .into_iter()
        .filter_map(|p| Some((p.binds.clone()?, p.segments)))
        .filter(|(name, segments)| segments.len() > 1 || segments.first() != Some(name))
        .collect();
    ServerRoot { aliases }
}

/// The module a file of the server is (`api/messaging/send.rs` →
/// `api::messaging::send`; `lib.rs`, `main.rs` → the root).
fn module_of(path: &str) -> Vec<String> {
    let rel = path
        .strip_prefix(SERVER_SRC)
        .unwrap_or(path)
        .trim_start_matches('/');
    let rel = rel.strip_suffix(".rs").unwrap_or(rel);
    let mut segments: Vec<String> = rel.split('/').map(str::to_owned).collect();
    if matches!(
        segments.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        segments.pop();
    }
    segments
}

/// The most specific row of `LAYERS` for a module: a row covers its
/// submodules, the root's row (`""`) only the root.
fn row_of(module: &[String]) -> Option<(&'static str, &'static [&'static str])> {
    LAYERS
        .iter()
        .filter(|(key, _)| {
            if key.is_empty() {
                module.is_empty()
            } else {
                let key: Vec<&str> = key.split("::").collect();
                module.len() >= key.len() && key.iter().zip(module).all(|(k, m)| k == m)
            }
        })
        .max_by_key(|(key, _)| key.len())
        .copied()
}

/// Rule `layers`: each path a module of the server names within its crate
/// goes to its own module or one its row allows.
fn layers(path: &str, source: &Source, root: &ServerRoot, found: &mut Vec<Violation>) {
    let module = module_of(path);
    let Some((key, may)) = row_of(&module) else {
        found.push(violation(
            Rule::Layers,
            path,
            1,
            module.join("::"),
            format!(
                "module {} has no row in tidy's LAYERS: say which modules it may import",
                module.join("::")
            ),
        ));
        return;
    };
    for named in source.paths(&module) {
        if named.test || !named.in_crate {
            continue;
        }
        let mut target = named.segments.clone();
        if let Some(real) = target.first().and_then(|first| root.aliases.get(first)) {
            target.splice(0..1, real.iter().cloned());
        }
        let target = target.join("::");
        let allowed = may.iter().any(|m| *m == "*" || crate::within(&target, m))
            || (!key.is_empty() && crate::within(&target, key));
        if !allowed && !target.is_empty() {
            found.push(violation(
                Rule::Layers,
                path,
                named.line,
                target.clone(),
                format!(
                    "{} imports {target}, above its layer: {} may import {}",
                    if key.is_empty() { "the root" } else { key },
                    if key.is_empty() { "the root" } else { key },
                    list(may)
                ),
            ));
        }
    }
}

fn list(items: &[&str]) -> String {
    if items.is_empty() {
        "nothing of ours".to_owned()
    } else {
        items.join(", ")
    }
}
