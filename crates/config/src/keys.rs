//! Where each key of a configuration file is written.
//!
//! The typed [`Config`](crate::Config) keeps values, not positions; tools that point at a
//! setting (the auditor's `file:line`) read the positions here, from the same TOML parser, so
//! that what they locate is what the gateway reads.

use std::path::Path;

use toml::de::{DeTable, DeValue};

use crate::error::ConfigError;

/// One key of a file: its dotted path, its line and whether it holds a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyLine {
    /// The dotted path as [`ConfigError::key`] spells it: `listen.udp`, `trunk[0].proxy`;
    /// array elements too: `listen.udp[1]`, `accounts.clients[0]`.
    pub key: String,
    /// 1-based line where the key (or the element, or the `[table]` header) is written.
    pub line: usize,
    /// Whether it is written with a value that turns something on: not `false`, `""`, `[]`
    /// or `{}`. A `danger_*` switch written as `false` is off.
    pub set: bool,
}

/// The keys of a TOML configuration file with their lines, in a stable order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyLines {
    keys: Vec<KeyLine>,
}

impl KeyLines {
    /// Reads the keys of `text`; a syntax error names the line as [`Config::from_toml`]
    /// does.
    ///
    /// [`Config::from_toml`]: crate::Config::from_toml
    pub fn parse(text: &str, file: Option<&Path>) -> Result<Self, ConfigError> {
        let doc = DeTable::parse(text).map_err(|e| ConfigError::from_toml(&e, text, file))?;
        let starts = line_starts(text);
        let mut keys = Vec::new();
        walk_table(doc.get_ref(), "", &starts, &mut keys);
        Ok(Self { keys })
    }

    /// The line of `key` (`trunk[0].proxy`, `listen.udp[1]`, `admin`), when it is written.
    pub fn line(&self, key: &str) -> Option<usize> {
        self.keys.iter().find(|k| k.key == key).map(|k| k.line)
    }

    /// Whether `key` is written in the file.
    pub fn contains(&self, key: &str) -> bool {
        self.keys.iter().any(|k| k.key == key)
    }

    /// Every key, tables and array elements included.
    pub fn iter(&self) -> impl Iterator<Item = &KeyLine> + '_ {
        self.keys.iter()
    }
}

/// Byte offsets where lines start after the first (the offset after each `\n`).
fn line_starts(text: &str) -> Vec<usize> {
    text.bytes()
        .enumerate()
        .filter(|(_, b)| *b == b'\n')
        .map(|(i, _)| i + 1)
        .collect()
}

fn line_of(starts: &[usize], offset: usize) -> usize {
    starts.partition_point(|&s| s <= offset) + 1
}

fn is_set(v: &DeValue<'_>) -> bool {
    match v {
        DeValue::Boolean(b) => *b,
        DeValue::String(s) => !s.is_empty(),
        DeValue::Array(a) => !a.is_empty(),
        DeValue::Table(t) => !t.is_empty(),
        _ => true,
    }
}

fn walk_table(t: &DeTable<'_>, prefix: &str, starts: &[usize], out: &mut Vec<KeyLine>) {
    for (k, v) in t {
        let key = if prefix.is_empty() {
            k.get_ref().to_string()
        } else {
            format!("{prefix}.{}", k.get_ref())
        };
        let line = line_of(starts, k.span().start);
        walk_value(v.get_ref(), key, line, starts, out);
    }
}

fn walk_value(v: &DeValue<'_>, key: String, line: usize, starts: &[usize], out: &mut Vec<KeyLine>) {
    out.push(KeyLine {
        key: key.clone(),
        line,
        set: is_set(v),
    });
    match v {
        DeValue::Table(t) => walk_table(t, &key, starts, out),
        DeValue::Array(a) => {
            for (i, e) in a.iter().enumerate() {
                let line = line_of(starts, e.span().start);
                walk_value(e.get_ref(), format!("{key}[{i}]"), line, starts, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
[listen]
udp = [
  \"127.0.0.1:5060\",
  \"10.0.0.1:5060\",
]

[[trunk]]
name = \"a\"
danger_password = \"\"

[[trunk]]
name = \"b\"

[accounts]
clients = [{ user_agent = \"x\", algorithms = [\"MD5\"] }]
builtin_clients = false
";

    #[test]
    fn every_key_element_and_table_has_its_line() {
        let k = KeyLines::parse(DOC, None).unwrap();
        assert_eq!(k.line("listen"), Some(1));
        assert_eq!(k.line("listen.udp"), Some(2));
        assert_eq!(k.line("listen.udp[1]"), Some(4));
        assert_eq!(k.line("trunk[0]"), Some(7));
        assert_eq!(k.line("trunk[1]"), Some(11));
        assert_eq!(k.line("trunk[1].name"), Some(12));
        assert_eq!(k.line("accounts.clients[0]"), Some(15));
        assert_eq!(k.line("accounts.clients[0].user_agent"), Some(15));
        assert_eq!(k.line("tls"), None);
        let set = |key: &str| k.iter().find(|x| x.key == key).map(|x| x.set);
        assert_eq!(set("trunk[0].danger_password"), Some(false));
        assert_eq!(set("accounts.builtin_clients"), Some(false));
        assert_eq!(set("trunk[1].name"), Some(true));
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let e =
            KeyLines::parse("[listen]\nudp = [\"x\"\n\n", Some(Path::new("s.toml"))).unwrap_err();
        assert_eq!(e.file.as_deref(), Some(Path::new("s.toml")));
        assert!(e.line.is_some_and(|l| l >= 2), "{e}");
    }
}
