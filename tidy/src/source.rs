//! One Rust file read as the rules need it: tokens with their line numbers,
//! with comments and literals gone (so that a doc comment naming
//! `omniroute_proto` or a SQL string naming `omniroute_changes` is never
//! mistaken for code), each token marked when it belongs to test-only code
//! (an item under `#[cfg(test)]`), and the paths the code names: every `use`
//! tree expanded, every inline `crate::…`/`super::…`/`self::…` path, each
//! resolved against the module it is written in.
//!
//! This is a reader, not a parser: it knows the shapes of `use` trees,
//! attributes and items well enough for the code in this repository, and
//! errs on the side of reading test code as code (an item it cannot bound is
//! not marked test-only).

/// A token's kind; literals and lifetimes are dropped, they name nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    Ident(String),
    /// `::`
    PathSep,
    Punct(char),
}

#[derive(Debug, Clone)]
pub struct Token {
    pub tok: Tok,
    pub line: usize,
    /// Inside an item compiled only for tests.
    pub test: bool,
}

impl Token {
    pub fn is_ident(&self, name: &str) -> bool {
        matches!(&self.tok, Tok::Ident(i) if i == name)
    }

    pub fn ident(&self) -> Option<&str> {
        match &self.tok {
            Tok::Ident(i) => Some(i),
            _ => None,
        }
    }

    pub fn is_punct(&self, c: char) -> bool {
        self.tok == Tok::Punct(c)
    }
}

/// A path the code names, resolved to start at its crate's root where it is
/// written relative to one (`crate::`, `super::`, `self::`); other paths
/// (an external crate's, a child module's) are kept as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedPath {
    pub segments: Vec<String>,
    pub line: usize,
    pub test: bool,
    /// Written from the crate's root (`crate::`, `super::`, `self::`), so
    /// `segments` is absolute within the crate.
    pub in_crate: bool,
    /// The name the path binds when it is a `use` (its last segment or its
    /// `as` alias); `None` for inline paths and globs.
    pub binds: Option<String>,
}

/// One source file, read.
#[derive(Debug)]
pub struct Source {
    pub tokens: Vec<Token>,
}

impl Source {
    pub fn read(text: &str) -> Source {
        let mut tokens = tokenize(&blank_comments_and_literals(text));
        mark_test_items(&mut tokens);
        Source { tokens }
    }

    /// Every path the file names, `module` being the file's own module path
    /// within its crate (empty for a crate root). Inline modules (`mod x {…}`)
    /// extend it for the paths inside them.
    pub fn paths(&self, module: &[String]) -> Vec<NamedPath> {
        let t = &self.tokens;
        let mut found = Vec::new();
        // Inline modules entered so far: (name, brace depth inside it).
        let mut inline: Vec<(String, usize)> = Vec::new();
        let mut depth = 0usize;
        let mut i = 0;
        let here = |inline: &[(String, usize)]| {
            let mut m = module.to_vec();
            m.extend(inline.iter().map(|(n, _)| n.clone()));
            m
        };
        while i < t.len() {
            if t[i].is_punct('{') {
                depth += 1;
            } else if t[i].is_punct('}') {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            } else if t[i].is_ident("mod")
                && let Some(name) = t.get(i + 1).and_then(Token::ident)
                && t.get(i + 2).is_some_and(|n| n.is_punct('{'))
            {
                inline.push((name.to_owned(), depth + 1));
            } else if t[i].is_ident("use") && !preceded_by_path_sep(t, i) {
                let (paths, end) = use_tree(t, i + 1);
                let module = here(&inline);
                for path in paths {
                    found.push(resolve(
                        &module,
                        path.segments,
                        path.binds,
                        path.line,
                        t[i].test,
                    ));
                }
                i = end;
                continue;
            } else if let Some(root) = t[i].ident()
                && matches!(root, "crate" | "super" | "self")
                && t.get(i + 1).is_some_and(|n| n.tok == Tok::PathSep)
                && !preceded_by_path_sep(t, i)
            {
                let mut segments = vec![root.to_owned()];
                let mut j = i + 1;
                while t.get(j).is_some_and(|n| n.tok == Tok::PathSep)
                    && let Some(seg) = t.get(j + 1).and_then(Token::ident)
                {
                    segments.push(seg.to_owned());
                    j += 2;
                }
                let module = here(&inline);
                found.push(resolve(&module, segments, None, t[i].line, t[i].test));
                i = j;
                continue;
            }
            i += 1;
        }
        found
    }
}

fn preceded_by_path_sep(t: &[Token], i: usize) -> bool {
    i > 0 && t[i - 1].tok == Tok::PathSep
}

/// A path as written in `module`, made absolute when it starts at `crate`,
/// `super` or `self`.
fn resolve(
    module: &[String],
    segments: Vec<String>,
    binds: Option<String>,
    line: usize,
    test: bool,
) -> NamedPath {
    let mut base: Vec<String> = module.to_vec();
    let mut rest = segments.as_slice();
    let in_crate = match rest.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            rest = &rest[1..];
            true
        }
        Some("self") => {
            rest = &rest[1..];
            true
        }
        Some("super") => {
            while rest.first().is_some_and(|s| s == "super") {
                base.pop();
                rest = &rest[1..];
            }
            true
        }
        _ => false,
    };
    let segments = if in_crate {
        base.extend(rest.iter().cloned());
        base
    } else {
        segments
    };
    NamedPath {
        segments,
        line,
        test,
        in_crate,
        binds,
    }
}

/// A path of a `use` tree, the name it binds (none for a glob), and the
/// line of its last segment.
struct UsePath {
    segments: Vec<String>,
    binds: Option<String>,
    line: usize,
}

/// The paths of a `use` tree starting at `start` (after `use`), each with the
/// name it binds, and the index after its `;`.
fn use_tree(t: &[Token], start: usize) -> (Vec<UsePath>, usize) {
    let mut out = Vec::new();
    let mut i = start;
    if t.get(i).is_some_and(|n| n.tok == Tok::PathSep) {
        i += 1;
    }
    subtree(t, &mut i, Vec::new(), &mut out);
    while i < t.len() && !t[i].is_punct(';') {
        i += 1;
    }
    (out, i + 1)
}

fn subtree(t: &[Token], i: &mut usize, mut prefix: Vec<String>, out: &mut Vec<UsePath>) {
    loop {
        match t.get(*i).map(|n| &n.tok) {
            Some(Tok::Ident(seg)) => {
                prefix.push(seg.clone());
                let line = t[*i].line;
                *i += 1;
                if t.get(*i).is_some_and(|n| n.tok == Tok::PathSep) {
                    *i += 1;
                    continue;
                }
                let mut binds = prefix.last().cloned();
                if t.get(*i).is_some_and(|n| n.is_ident("as"))
                    && let Some(alias) = t.get(*i + 1).and_then(Token::ident)
                {
                    binds = Some(alias.to_owned());
                    *i += 2;
                }
                // `use a::{self}` binds `a`.
                if prefix.last().is_some_and(|s| s == "self") && prefix.len() > 1 {
                    prefix.pop();
                    if binds.as_deref() == Some("self") {
                        binds = prefix.last().cloned();
                    }
                }
                out.push(UsePath {
                    segments: prefix,
                    binds,
                    line,
                });
                return;
            }
            Some(Tok::Punct('*')) => {
                out.push(UsePath {
                    segments: prefix,
                    binds: None,
                    line: t[*i].line,
                });
                *i += 1;
                return;
            }
            Some(Tok::Punct('{')) => {
                *i += 1;
                loop {
                    match t.get(*i).map(|n| &n.tok) {
                        Some(Tok::Punct('}')) => {
                            *i += 1;
                            return;
                        }
                        Some(Tok::Punct(',')) => *i += 1,
                        None | Some(Tok::Punct(';')) => return,
                        Some(_) => {
                            let before = *i;
                            subtree(t, i, prefix.clone(), out);
                            if *i == before {
                                *i += 1;
                            }
                        }
                    }
                }
            }
            _ => return,
        }
    }
}

/// The text with every comment and every string, character and number
/// literal replaced by spaces; line breaks stay, so lines still count.
fn blank_comments_and_literals(text: &str) -> Vec<char> {
    let c: Vec<char> = text.chars().collect();
    let mut out = c.clone();
    let blank = |out: &mut Vec<char>, from: usize, to: usize| {
        for ch in out.iter_mut().take(to.min(c.len())).skip(from) {
            if *ch != '\n' {
                *ch = ' ';
            }
        }
    };
    let ident_char = |ch: char| ch.is_alphanumeric() || ch == '_';
    let mut i = 0;
    while i < c.len() {
        let after_ident = i > 0 && ident_char(c[i - 1]);
        if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            let end = c[i..]
                .iter()
                .position(|&ch| ch == '\n')
                .map_or(c.len(), |p| i + p);
            blank(&mut out, i, end);
            i = end;
        } else if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            // Block comments nest.
            let mut depth = 0;
            let mut j = i;
            while j < c.len() {
                if c[j] == '/' && c.get(j + 1) == Some(&'*') {
                    depth += 1;
                    j += 2;
                } else if c[j] == '*' && c.get(j + 1) == Some(&'/') {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            blank(&mut out, i, j);
            i = j;
        } else if !after_ident && let Some(end) = raw_string_end(&c, i) {
            blank(&mut out, i, end);
            i = end;
        } else if c[i] == '"' {
            let end = quoted_end(&c, i + 1, '"');
            blank(&mut out, i, end);
            i = end;
        } else if c[i] == '\'' {
            // A character literal ('a', '\n', '\u{1F600}'), else a lifetime.
            if c.get(i + 1) == Some(&'\\') {
                let end = quoted_end(&c, i + 1, '\'');
                blank(&mut out, i, end);
                i = end;
            } else if c.get(i + 2) == Some(&'\'') {
                blank(&mut out, i, i + 3);
                i += 3;
            } else {
                i += 1;
            }
        } else if c[i].is_ascii_digit() && !after_ident {
            // Numbers, with their suffixes (`1u8`, `0x1F`, `1e-3`).
            let mut j = i;
            while j < c.len()
                && (ident_char(c[j])
                    || c[j] == '.' && c.get(j + 1).is_some_and(char::is_ascii_digit))
            {
                j += 1;
            }
            blank(&mut out, i, j);
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// The end of a raw string (`r"…"`, `r#"…"#`, `br"…"`, `cr#"…"#`) or of a
/// byte or C string (`b"…"`, `c"…"`) starting at `i`, if one starts there.
fn raw_string_end(c: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    if matches!(c.get(j), Some('b' | 'c')) {
        j += 1;
        if c.get(j) == Some(&'"') {
            return Some(quoted_end(c, j + 1, '"'));
        }
        if c[i] == 'b' && c.get(j) == Some(&'\'') {
            return Some(quoted_end(c, j + 1, '\''));
        }
    }
    if c.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let hashes = c[j..].iter().take_while(|&&ch| ch == '#').count();
    j += hashes;
    if c.get(j) != Some(&'"') {
        return None;
    }
    j += 1;
    while j < c.len() {
        if c[j] == '"'
            && c[j + 1..]
                .iter()
                .take(hashes)
                .filter(|&&ch| ch == '#')
                .count()
                == hashes
        {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(c.len())
}

/// The index after the closing `quote` of a literal whose text starts at `i`.
fn quoted_end(c: &[char], mut i: usize, quote: char) -> usize {
    while i < c.len() {
        if c[i] == '\\' {
            i += 2;
        } else if c[i] == quote {
            return i + 1;
        } else {
            i += 1;
        }
    }
    c.len()
}

fn tokenize(c: &[char]) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch.is_alphabetic() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            let mut word: String = c[start..i].iter().collect();
            // A raw identifier (`r#type`) is the identifier.
            if word == "r"
                && c.get(i) == Some(&'#')
                && c.get(i + 1).is_some_and(|n| n.is_alphabetic() || *n == '_')
            {
                let s = i + 1;
                i = s;
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
                word = c[s..i].iter().collect();
            }
            tokens.push(Token {
                tok: Tok::Ident(word),
                line,
                test: false,
            });
        } else if ch == '\'' {
            // A lifetime or label: names nothing the rules read.
            i += 1;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
        } else if ch == ':' && c.get(i + 1) == Some(&':') {
            tokens.push(Token {
                tok: Tok::PathSep,
                line,
                test: false,
            });
            i += 2;
        } else {
            tokens.push(Token {
                tok: Tok::Punct(ch),
                line,
                test: false,
            });
            i += 1;
        }
    }
    tokens
}

/// Marks every token of an item under a `cfg` that holds only in tests
/// (`#[cfg(test)]`, `#[cfg(all(test, …))]`; not `any(test, feature = …)`,
/// which also builds without tests), and the whole file under
/// `#![cfg(test)]`.
fn mark_test_items(t: &mut [Token]) {
    let mut i = 0;
    while i < t.len() {
        if !t[i].is_punct('#') {
            i += 1;
            continue;
        }
        let inner = t.get(i + 1).is_some_and(|n| n.is_punct('!'));
        let open = if inner { i + 2 } else { i + 1 };
        if !t.get(open).is_some_and(|n| n.is_punct('[')) {
            i += 1;
            continue;
        }
        let close = matching(t, open).unwrap_or(t.len() - 1);
        let is_test = t.get(open + 1).is_some_and(|n| n.is_ident("cfg"))
            && t.get(open + 2).is_some_and(|n| n.is_punct('('))
            && only_in_tests(&t[open + 3..close]);
        if !is_test {
            i = close + 1;
            continue;
        }
        let end = if inner {
            t.len()
        } else {
            item_end(t, close + 1)
        };
        for tok in &mut t[i..end] {
            tok.test = true;
        }
        i = end;
    }
}

/// Whether a cfg predicate (the tokens inside `cfg(…)`) requires `test`.
fn only_in_tests(p: &[Token]) -> bool {
    let Some(first) = p.first() else {
        return false;
    };
    match first.ident() {
        Some("test") => p.len() == 1 || p.get(1).is_some_and(|n| n.is_punct(')')),
        Some(op @ ("all" | "any")) if p.get(1).is_some_and(|n| n.is_punct('(')) => {
            let Some(close) = matching(p, 1) else {
                return false;
            };
            let args = split_args(&p[2..close]);
            if op == "all" {
                args.iter().any(|a| only_in_tests(a))
            } else {
                !args.is_empty() && args.iter().all(|a| only_in_tests(a))
            }
        }
        _ => false,
    }
}

fn split_args(p: &[Token]) -> Vec<&[Token]> {
    let mut args = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (k, tok) in p.iter().enumerate() {
        match tok.tok {
            Tok::Punct('(') => depth += 1,
            Tok::Punct(')') => depth -= 1,
            Tok::Punct(',') if depth == 0 => {
                args.push(&p[start..k]);
                start = k + 1;
            }
            _ => {}
        }
    }
    if start < p.len() {
        args.push(&p[start..]);
    }
    args
}

/// The index of the bracket closing the one at `open`.
fn matching(t: &[Token], open: usize) -> Option<usize> {
    let mut depth = 0i32;
    for (k, tok) in t.iter().enumerate().skip(open) {
        match tok.tok {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') => {
                depth -= 1;
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
    }
    None
}

/// The index after the item that starts at `start` (after its first
/// attribute): further attributes, a visibility, then up to the `;` or the
/// closing brace that ends it. Declarations that end at `;` (`use`, `const`,
/// `let`, …) may hold braces; an unknown shape (a field, an argument) ends at
/// a `,` or before the bracket that closes its parent.
fn item_end(t: &[Token], start: usize) -> usize {
    let mut i = start;
    while t.get(i).is_some_and(|n| n.is_punct('#')) && t.get(i + 1).is_some_and(|n| n.is_punct('['))
    {
        i = matching(t, i + 1).map_or(t.len(), |c| c + 1);
    }
    if t.get(i).is_some_and(|n| n.is_ident("pub")) {
        i += 1;
        if t.get(i).is_some_and(|n| n.is_punct('(')) {
            i = matching(t, i).map_or(t.len(), |c| c + 1);
        }
    }
    enum Ends {
        Semicolon,
        Block,
        Element,
    }
    let kind = match t.get(i).and_then(Token::ident) {
        Some("const") if t.get(i + 1).is_some_and(|n| n.is_ident("fn")) => Ends::Block,
        Some("use" | "const" | "static" | "type" | "let" | "extern") => Ends::Semicolon,
        Some(
            "mod" | "fn" | "impl" | "trait" | "struct" | "enum" | "union" | "async" | "unsafe"
            | "macro_rules",
        ) => Ends::Block,
        Some(_) if t.get(i + 1).is_some_and(|n| n.is_punct('!')) => Ends::Block,
        _ => Ends::Element,
    };
    let mut depth = 0i32;
    while i < t.len() {
        match t[i].tok {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') => {
                depth -= 1;
                if depth < 0 {
                    return i;
                }
                if depth == 0 && t[i].is_punct('}') && matches!(kind, Ends::Block) {
                    return i + 1;
                }
            }
            Tok::Punct(';') if depth == 0 => return i + 1,
            Tok::Punct(',') if depth == 0 && matches!(kind, Ends::Element) => return i + 1,
            _ => {}
        }
        i += 1;
    }
    t.len()
}
