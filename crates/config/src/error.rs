//! Configuration errors that say where: file, line, key.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in a configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, when there is one.
    pub file: Option<PathBuf>,
    /// 1-based line.
    pub line: Option<usize>,
    /// The key, as a dotted path (`trunk[0].networks`).
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{}:{line}: ", file.display())?,
            (Some(file), None) => write!(f, "{}: ", file.display())?,
            (None, Some(line)) => write!(f, "line {line}: ")?,
            (None, None) => {}
        }
        if let Some(k) = &self.key {
            write!(f, "{k}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len()))
        .map_or(1, |t| t.bytes().filter(|b| *b == b'\n').count() + 1)
}

/// The table a line opens (`[listen]` → `listen`, `[[trunk]]` → `trunk`, with a flag for
/// arrays of tables).
fn table_header(line: &str) -> Option<(&str, bool)> {
    let l = line.trim();
    if let Some(inner) = l.strip_prefix("[[").and_then(|x| x.split_once("]]")) {
        return Some((inner.0.trim(), true));
    }
    l.strip_prefix('[')
        .and_then(|x| x.split_once(']'))
        .map(|x| (x.0.trim(), false))
}

/// The key a line assigns (`udp = [...]` → `udp`).
fn assigned_key(line: &str) -> Option<&str> {
    let l = line.trim_start();
    if l.starts_with('#') || l.starts_with('[') {
        return None;
    }
    let (k, _) = l.split_once('=')?;
    let k = k.trim().trim_matches('"');
    (!k.is_empty() && !k.contains(' ')).then_some(k)
}

impl ConfigError {
    /// A file that could not be read at all: no line or key to name.
    pub(crate) fn unreadable(path: &Path, e: &std::io::Error) -> Self {
        Self {
            file: Some(path.to_owned()),
            line: None,
            key: None,
            message: format!("cannot read: {e}"),
        }
    }

    /// Builds an error from a TOML parse or type error, naming the key at its position.
    pub(crate) fn from_toml(e: &toml::de::Error, text: &str, file: Option<&Path>) -> Self {
        let (line, key) = match e.span() {
            Some(span) => {
                let line = line_of(text, span.start);
                (Some(line), key_at_line(text, line))
            }
            None => (None, None),
        };
        // toml's message can span several lines; the first says it all.
        let message = e
            .message()
            .lines()
            .next()
            .unwrap_or("invalid configuration")
            .to_owned();
        Self {
            file: file.map(Path::to_owned),
            line,
            key,
            message,
        }
    }

    /// Builds an error about `key` (`table.field`, `table[i].field`), finding its line.
    pub(crate) fn at_key(text: &str, file: Option<&Path>, key: &str, message: String) -> Self {
        Self {
            file: file.map(Path::to_owned),
            line: locate(text, key),
            key: Some(key.to_owned()),
            message,
        }
    }
}

/// The dotted key a line belongs to: its table path plus the key it assigns; for a
/// continuation line of a multi-line array, the assignment it continues.
fn key_at_line(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let upto = lines.get(..line.min(lines.len()))?;
    let mut key = None;
    for l in upto.iter().rev() {
        if key.is_none() {
            if let Some(k) = assigned_key(l) {
                key = Some(k.to_owned());
                continue;
            }
        }
        if let Some((table, _)) = table_header(l) {
            return Some(match key {
                Some(k) => format!("{table}.{k}"),
                None => table.to_owned(),
            });
        }
    }
    key
}

/// The line of `key` (`tls.cert`, `trunk[1].networks`, `listen`), or of its table when the
/// field is not written (its default is what is wrong), or `None`.
fn locate(text: &str, key: &str) -> Option<usize> {
    // Nested tables (`trunk[0].qualify.timeout`) by the TOML parser's own positions: the
    // key, else the table it belongs to.
    if key.matches('.').count() > 1 {
        if let Ok(keys) = crate::KeyLines::parse(text, None) {
            let mut k = key;
            loop {
                if let Some(line) = keys.line(k) {
                    return Some(line);
                }
                match k.rsplit_once('.') {
                    Some((parent, _)) => k = parent,
                    None => break,
                }
            }
        }
    }
    let (table, field) = match key.split_once('.') {
        Some((t, f)) => (t, Some(f)),
        None => (key, None),
    };
    let (table, index) = match table.split_once('[') {
        Some((t, i)) => (t, i.trim_end_matches(']').parse::<usize>().ok()),
        None => (table, None),
    };
    let mut seen = 0usize;
    let mut in_table = false;
    let mut header_line = None;
    for (n, l) in text.lines().enumerate() {
        if let Some((t, array)) = table_header(l) {
            in_table = false;
            if t == table {
                let this = if array { seen } else { 0 };
                if array {
                    seen += 1;
                }
                if index.is_none_or(|i| i == this) {
                    in_table = true;
                    header_line = Some(n + 1);
                }
            }
            continue;
        }
        if in_table && field.is_some_and(|f| assigned_key(l) == Some(f)) {
            return Some(n + 1);
        }
    }
    header_line
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "[listen]\nudp = [\n  \"127.0.0.1:5060\",\n  \"bad\",\n]\n\n[[trunk]]\nname = \"a\"\n\n[[trunk]]\nname = \"b\"\nnetworks = [\"10.0.0.0/8\"]\n";

    #[test]
    fn locating() {
        assert_eq!(locate(DOC, "trunk[1].networks"), Some(12));
        assert_eq!(locate(DOC, "trunk[0].networks"), Some(7));
        assert_eq!(locate(DOC, "trunk[1].name"), Some(11));
        assert_eq!(locate(DOC, "listen"), Some(1));
        assert_eq!(locate(DOC, "tls.cert"), None);
        assert_eq!(key_at_line(DOC, 4).as_deref(), Some("listen.udp"));
        assert_eq!(key_at_line(DOC, 12).as_deref(), Some("trunk.networks"));
    }
}
