//! Tidy: the invariants ARCHITECTURE.md states, checked on the source tree as
//! text, so that they stay true instead of drifting. Each rule names the
//! file and line of every break:
//!
//! - `proto`: proto types (`omniroute_proto`, `pb::`) named in non-test code
//!   outside the gRPC face (`services/server/src/api/`), the proto crate and
//!   the clients (tests, bench, fuzz);
//! - `crates`: a crate depending on, or naming, a crate of ours it may not
//!   (the store or an adapter the server, an adapter the store, the domain
//!   anything but the channel crate, the channel crate anything of ours);
//! - `layers`: a module of the server importing one above it;
//! - `size`: a non-test source file over 1,000 lines;
//! - `status`: a `tonic::Status` made outside `api/error.rs`.
//!
//! What each rule allows, and the breaks known today, are data in
//! [`rules`]; the reading of Rust is [`source`]'s, the walking of the tree
//! [`tree`]'s. The test binary (`tests/tidy.rs`) runs the rules on the
//! repository and on it with a violation added.

use std::fmt;

mod checks;
pub mod rules;
pub mod source;
pub mod tree;

pub use tree::Tree;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    Proto,
    Crates,
    Layers,
    Size,
    Status,
    /// A known exception that no longer happens (remove it from `KNOWN`).
    Stale,
}

impl Rule {
    pub fn name(self) -> &'static str {
        match self {
            Rule::Proto => "proto",
            Rule::Crates => "crates",
            Rule::Layers => "layers",
            Rule::Size => "size",
            Rule::Status => "status",
            Rule::Stale => "stale exception",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub rule: Rule,
    pub file: String,
    pub line: usize,
    /// What the file reaches for (a path, a crate, a constructor), which a
    /// known exception matches; empty when the break is the file itself.
    pub what: String,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.file,
            self.line,
            self.rule.name(),
            self.message
        )
    }
}

/// Every break in `tree` that is not a known exception ([`rules::KNOWN`]),
/// and every known exception that no longer happens.
pub fn check(tree: &Tree) -> Vec<Violation> {
    check_with(tree, rules::KNOWN)
}

/// [`check`] with the known exceptions `known`.
pub fn check_with(tree: &Tree, known: &[rules::Known]) -> Vec<Violation> {
    let mut found = checks::all(tree);
    let mut used = vec![false; known.len()];
    found.retain(|v| {
        let known = known.iter().position(|k| {
            k.rule == v.rule && k.file == v.file && (k.what.is_empty() || within(&v.what, k.what))
        });
        if let Some(k) = known {
            used[k] = true;
        }
        known.is_none()
    });
    for (known, used) in known.iter().zip(used) {
        if !used {
            found.push(Violation {
                rule: Rule::Stale,
                file: "tidy/src/rules.rs".to_owned(),
                line: 1,
                what: String::new(),
                message: format!(
                    "the known {} exception of {} ({}) no longer happens: remove it from KNOWN",
                    known.rule.name(),
                    known.file,
                    if known.what.is_empty() {
                        "anything"
                    } else {
                        known.what
                    },
                ),
            });
        }
    }
    found
}

/// Whether `path` is `prefix` or below it, by `::` segments.
fn within(path: &str, prefix: &str) -> bool {
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with("::"))
}
