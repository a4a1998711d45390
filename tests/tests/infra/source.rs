//! Rust sources as the infra checks read them: comments blanked, string literals collected,
//! `#[cfg(test)]` items and test-only modules left out.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A Rust source with comments blanked, its string literals, and the byte ranges of
/// `#[cfg(test)]` items.
pub struct Source {
    pub path: PathBuf,
    /// The text with comments and string contents replaced by spaces (same byte offsets).
    pub code: String,
    pub literals: Vec<(usize, String)>,
    test_ranges: Vec<(usize, usize)>,
}

impl Source {
    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let (code, literals) = lex(&text);
        let test_ranges = cfg_test_ranges(&code);
        Ok(Self {
            path: path.to_path_buf(),
            code,
            literals,
            test_ranges,
        })
    }

    pub fn in_tests(&self, offset: usize) -> bool {
        self.test_ranges
            .iter()
            .any(|&(a, b)| a <= offset && offset < b)
    }

    /// String literals outside test code, except `env!("...")`'s (read at compile time).
    pub fn production_literals(&self) -> impl Iterator<Item = &str> {
        self.literals
            .iter()
            .filter(|(at, _)| !self.in_tests(*at))
            .filter(|(at, _)| !self.code[..*at].trim_end().ends_with("env!("))
            .map(|(_, s)| s.as_str())
    }

    /// `.name()` method calls (no arguments) outside test code.
    pub fn empty_calls(&self) -> BTreeSet<String> {
        let bytes = self.code.as_bytes();
        let mut found = BTreeSet::new();
        let mut i = 0;
        while let Some(pos) = self.code[i..].find("()") {
            let end = i + pos;
            i = end + 2;
            let mut start = end;
            while start > 0
                && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_')
            {
                start -= 1;
            }
            let dotted = start > 0 && bytes[start - 1] == b'.';
            if dotted && start < end && !self.in_tests(start) {
                found.insert(self.code[start..end].to_string());
            }
        }
        found
    }
}

/// Blanks comments and string contents; returns the blanked text and the literals with offsets.
fn lex(text: &str) -> (String, Vec<(usize, String)>) {
    let bytes = text.as_bytes();
    let mut out = bytes.to_vec();
    let mut literals = Vec::new();
    let mut i = 0;
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for b in &mut out[from..to] {
            if *b != b'\n' {
                *b = b' ';
            }
        }
    };
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                let end = text[i..].find('\n').map_or(bytes.len(), |p| i + p);
                blank(&mut out, i, end);
                i = end;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let end = text[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |p| i + 2 + p + 2);
                blank(&mut out, i, end);
                i = end;
            }
            b'r' if matches!(bytes.get(i + 1), Some(b'"' | b'#'))
                && (i == 0 || !is_ident(bytes[i - 1])) =>
            {
                let hashes = bytes[i + 1..].iter().take_while(|&&b| b == b'#').count();
                let open = i + 1 + hashes;
                if bytes.get(open) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let close = format!("\"{}", "#".repeat(hashes));
                let end = text[open + 1..]
                    .find(&close)
                    .map_or(bytes.len(), |p| open + 1 + p);
                literals.push((i, text[open + 1..end].to_string()));
                blank(&mut out, open + 1, end);
                i = (end + close.len()).min(bytes.len());
            }
            b'"' => {
                let mut j = i + 1;
                while j < bytes.len() && bytes[j] != b'"' {
                    j += if bytes[j] == b'\\' { 2 } else { 1 };
                }
                let end = j.min(bytes.len());
                literals.push((i, text[i + 1..end].to_string()));
                blank(&mut out, i + 1, end);
                i = end + 1;
            }
            // A char literal ('x', '\n', '{'), not a lifetime ('a).
            b'\'' => {
                let close = if bytes.get(i + 1) == Some(&b'\\') {
                    text[i + 2..].find('\'').map(|p| i + 2 + p)
                } else {
                    text[i + 1..].chars().next().and_then(|c| {
                        let after = i + 1 + c.len_utf8();
                        (bytes.get(after) == Some(&b'\'')).then_some(after)
                    })
                };
                match close {
                    Some(end) => {
                        blank(&mut out, i + 1, end);
                        i = end + 1;
                    }
                    None => i += 1,
                }
            }
            _ => i += 1,
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), literals)
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The items after each `#[cfg(test)]`: from the attribute to the brace closing the item (or
/// its semicolon).
fn cfg_test_ranges(code: &str) -> Vec<(usize, usize)> {
    let bytes = code.as_bytes();
    let mut ranges = Vec::new();
    let mut from = 0;
    while let Some(pos) = code[from..].find("#[cfg(test)]") {
        let start = from + pos;
        let mut depth = 0usize;
        let mut end = bytes.len();
        for (k, &b) in bytes.iter().enumerate().skip(start + "#[cfg(test)]".len()) {
            match b {
                b'{' => depth += 1,
                b'}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = k + 1;
                        break;
                    }
                }
                b';' if depth == 0 => {
                    end = k + 1;
                    break;
                }
                _ => {}
            }
        }
        ranges.push((start, end));
        from = end.max(start + 1);
    }
    ranges
}

/// The `.rs` files of a crate's `src/`, without modules compiled only for tests or the `testing`
/// feature (declared after a `#[cfg(test)]` or `#[cfg(feature = "testing")]` in lib.rs/main.rs).
pub fn crate_sources(crate_dir: &Path) -> Result<Vec<Source>, String> {
    let src = crate_dir.join("src");
    let mut excluded = BTreeSet::new();
    for root in ["lib.rs", "main.rs"] {
        if let Ok(text) = std::fs::read_to_string(src.join(root)) {
            let lines: Vec<&str> = text.lines().map(str::trim).collect();
            for pair in lines.windows(2) {
                let gated = pair[0].starts_with("#[cfg(test)]")
                    || pair[0].starts_with("#[cfg(feature = \"testing\")]");
                if let Some(name) = pair[1]
                    .strip_prefix("pub mod ")
                    .or_else(|| pair[1].strip_prefix("mod "))
                    && gated
                {
                    excluded.insert(name.trim_end_matches(';').to_string());
                }
            }
        }
    }
    let mut files = Vec::new();
    walk(&src, &mut files).map_err(|e| format!("{}: {e}", src.display()))?;
    files.sort();
    files
        .iter()
        .filter(|f| {
            let rel = f.strip_prefix(&src).unwrap_or(f);
            let first = rel.components().next().map(|c| {
                c.as_os_str()
                    .to_string_lossy()
                    .trim_end_matches(".rs")
                    .to_string()
            });
            // Unit tests live inline or in a module's own `tests.rs` (declared
            // `#[cfg(test)] mod tests;`): such a file is never production code.
            let unit_tests = f.file_name().is_some_and(|n| n == "tests.rs");
            !unit_tests && !first.is_some_and(|m| excluded.contains(&m))
        })
        .map(|f| Source::read(f))
        .collect()
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, files)?;
        } else if path.extension().is_some_and(|x| x == "rs") {
            files.push(path);
        }
    }
    Ok(())
}
