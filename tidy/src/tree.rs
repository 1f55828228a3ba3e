//! The repository as the rules see it: its Rust sources and manifests as
//! text, by path relative to the root (with `/`), and the crates they make
//! up. A tree is plain data so that the tests can add a violation to the
//! real one in memory and see it caught.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use crate::source::Source;

#[derive(Debug, Clone, Default)]
pub struct Tree {
    /// `*.rs` and `Cargo.toml` files by path relative to the root.
    pub files: BTreeMap<String, String>,
    /// Files already read, by path, with the text they were read from;
    /// shared by a tree's copies, so that a test that changes one file of
    /// the repository reads only that one again.
    read: Arc<Mutex<Read>>,
}

/// Each file read: the text it was read from, and what was read.
type Read = HashMap<String, (String, Arc<Source>)>;

/// A package of ours or anyone's found in the tree.
#[derive(Debug, Clone)]
pub struct Crate {
    pub name: String,
    /// Its directory relative to the root (`""` for the root).
    pub dir: String,
    /// The packages it depends on, in every dependency section.
    pub deps: Vec<Dep>,
}

#[derive(Debug, Clone)]
pub struct Dep {
    pub package: String,
    pub line: usize,
}

impl Tree {
    /// Reads every `*.rs` file and manifest under `root`, leaving out build
    /// output, hidden directories and the fuzz corpus.
    pub fn load(root: &Path) -> io::Result<Tree> {
        let mut tree = Tree::default();
        walk(root, "", &mut tree)?;
        Ok(tree)
    }

    /// The tree with `path`'s text replaced (or added).
    pub fn with(mut self, path: &str, text: impl Into<String>) -> Tree {
        self.files.insert(path.to_owned(), text.into());
        self
    }

    /// A Rust file of the tree, read.
    pub fn source(&self, path: &str) -> Option<Arc<Source>> {
        let text = self.files.get(path)?;
        let read = || self.read.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((was, source)) = read().get(path)
            && was == text
        {
            return Some(Arc::clone(source));
        }
        let source = Arc::new(Source::read(text));
        read().insert(path.to_owned(), (text.clone(), Arc::clone(&source)));
        Some(source)
    }

    pub fn rust_files(&self) -> impl Iterator<Item = (&str, &str)> {
        self.files
            .iter()
            .filter(|(p, _)| p.ends_with(".rs"))
            .map(|(p, t)| (p.as_str(), t.as_str()))
    }

    pub fn crates(&self) -> Vec<Crate> {
        self.files
            .iter()
            .filter(|(p, _)| *p == "Cargo.toml" || p.ends_with("/Cargo.toml"))
            .filter_map(|(p, text)| {
                let dir = p
                    .strip_suffix("Cargo.toml")
                    .unwrap_or("")
                    .trim_end_matches('/');
                manifest(dir, text)
            })
            .collect()
    }
}

/// The crate a file belongs to: the one with the deepest directory holding it.
pub fn crate_of<'a>(crates: &'a [Crate], file: &str) -> Option<&'a Crate> {
    crates
        .iter()
        .filter(|c| under(file, &c.dir))
        .max_by_key(|c| c.dir.len())
}

/// Whether `path` is `dir` or inside it (`""` holds everything).
pub fn under(path: &str, dir: &str) -> bool {
    dir.is_empty()
        || path == dir
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// A file that only tests compile: in a `tests/` directory, or a unit test
/// module of its own (`tests.rs`, `*_tests.rs`).
pub fn is_test_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    path.split('/').any(|part| part == "tests") || name == "tests.rs" || name.ends_with("_tests.rs")
}

fn walk(dir: &Path, rel: &str, tree: &mut Tree) -> io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if name.starts_with('.') || name == "target" || path == "fuzz/corpus" {
                continue;
            }
            walk(&entry.path(), &path, tree)?;
        } else if kind.is_file() && (name.ends_with(".rs") || name == "Cargo.toml") {
            tree.files
                .insert(path, std::fs::read_to_string(entry.path())?);
        }
    }
    Ok(())
}

/// A manifest's package name and dependencies, read line by line: section
/// headers, `name = …` / `name.workspace = …` keys, `package = "…"` renames
/// and `[dependencies.name]` tables. None for a manifest without a package
/// (the workspace root).
fn manifest(dir: &str, text: &str) -> Option<Crate> {
    let mut name = None;
    let mut deps = Vec::new();
    let mut section = String::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = header.trim().to_owned();
            // `[dependencies.omniroute-store]`
            if let Some((table, dep)) = section.rsplit_once('.')
                && is_dependency_section(table)
            {
                deps.push(Dep {
                    package: dep.trim_matches('"').to_owned(),
                    line: n + 1,
                });
            }
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if section == "package" && key == "name" {
            name = Some(value.trim().trim_matches('"').to_owned());
        } else if is_dependency_section(&section) {
            let dep = key.split('.').next().unwrap_or(key).trim_matches('"');
            let package = renamed(value).unwrap_or(dep);
            deps.push(Dep {
                package: package.to_owned(),
                line: n + 1,
            });
        } else if let Some((table, _)) = section.rsplit_once('.')
            && is_dependency_section(table)
            && key == "package"
            && let Some(last) = deps.last_mut()
        {
            last.package = value.trim().trim_matches('"').to_owned();
        }
    }
    Some(Crate {
        name: name?,
        dir: dir.to_owned(),
        deps,
    })
}

fn is_dependency_section(section: &str) -> bool {
    let last = section.rsplit('.').next().unwrap_or(section);
    matches!(
        last,
        "dependencies" | "dev-dependencies" | "build-dependencies"
    )
}

/// The package an inline table renames to (`{ package = "x", … }`).
fn renamed(value: &str) -> Option<&str> {
    let at = value.find("package")?;
    let rest = value[at + "package".len()..]
        .trim_start()
        .strip_prefix('=')?
        .trim_start();
    let rest = rest.strip_prefix('"')?;
    rest.split('"').next()
}
