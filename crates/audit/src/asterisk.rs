//! A reader for Asterisk's configuration dialect that keeps what generic INI readers lose.
//!
//! The rules need more than `key = value`: a peer's settings may come from templates
//! (`[name](!)`, `[name](tpl)`), a key may repeat legitimately (`allow=`, `permit=`, `deny=`),
//! `=>` and `=` differ in `extensions.conf`, files pull in others with `#include`, and every
//! finding must point at the `file:line` where the setting really is — which, for an included
//! file, is that file's line.
//!
//! The behaviour follows `main/config.c` (`config_text_file_load`, `process_text_line`):
//! - `;` starts a comment unless escaped as `\;` (kept as a literal `;`, backslash dropped);
//! - `;--` opens a block comment (not `;---`), `--;` closes it; they nest, may span lines and may
//!   start or end mid-line;
//! - `[name]` opens a section; a repeated name opens another section with the same name (rules
//!   look sections up by name, first match first); `(!)` marks a template, `(a,b)` inherits the
//!   templates `a` and `b` defined *before* (so inheritance cannot cycle), `(+)` adds to the
//!   previous section of that name;
//! - `#include` / `#tryinclude` read another file (globs in the file name allowed); the included
//!   file continues the current section; `#exec` runs a program in Asterisk and is ignored here
//!   (recorded in [`ConfFile::ignored`]);
//! - `key = value` and `key => value` (recorded in [`Entry::arrow`]); `key += value` appends to
//!   the previous value of that key in the section.
//!
//! Deliberate differences: relative include paths are resolved against the including file's
//! directory (Asterisk uses its configuration directory, which is the same thing for files read
//! in place); settings before any section go to an implicit nameless section instead of failing
//! the file (or, in a part of `sip.conf`/`iax.conf` read by [`ConfFile::read_parts`], to
//! `[general]`, where FreePBX includes such parts); an inheritance from an unknown template is
//! ignored instead of failing the file. A
//! missing `]` or `)` fails the file, as it does in Asterisk, because guessing would misplace
//! every setting after it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::{AuditError, Location};

/// Asterisk's `MAX_NESTED_COMMENTS`.
const MAX_NESTED_COMMENTS: u32 = 128;

/// How deep template inheritance is followed; real configurations use two or three levels.
const MAX_TEMPLATE_DEPTH: usize = 32;

/// One configuration file with everything it includes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfFile {
    /// The file as named by the caller.
    pub path: PathBuf,
    /// Every file read: this one first, then includes in reading order.
    pub files: Vec<PathBuf>,
    /// Sections in file order (includes spliced in where they are included).
    pub sections: Vec<Section>,
    /// Lines that Asterisk would skip or run but this reader does not interpret: `#exec`, unknown
    /// directives, lines without `=`. Kept so nothing is dropped silently.
    pub ignored: Vec<(Location, String)>,
}

/// A `[name]` section (an Asterisk "category").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// The name between the brackets, as written.
    pub name: String,
    /// `(!)`: a template, which Asterisk's modules skip as an object of its own.
    pub is_template: bool,
    /// The templates named in `(…)`, in order.
    pub templates: Vec<String>,
    /// Indices (into [`ConfFile::sections`]) of the templates found, each defined before this one.
    template_ids: Vec<usize>,
    /// Settings before the first `[section]`: not a real section.
    pub implicit: bool,
    /// The header line.
    pub location: Location,
    /// This section's own settings, in order (templates' settings are not copied here).
    pub entries: Vec<Entry>,
}

/// One `key = value` or `key => value` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The key as written; compare with [`Entry::is`].
    pub key: String,
    /// The value, comments removed and trimmed.
    pub value: String,
    /// Written with `=>` (Asterisk's "object" form, used in `extensions.conf`).
    pub arrow: bool,
    /// Where the line is (the included file's line for included settings).
    pub location: Location,
}

impl Entry {
    /// The key compared case-insensitively, as Asterisk's modules do.
    pub fn is(&self, key: &str) -> bool {
        self.key.eq_ignore_ascii_case(key)
    }
}

impl Section {
    /// The last value of `key` among this section's own settings.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().rev().find(|e| e.is(key))
    }

    /// Every value of `key` among this section's own settings, in order.
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries.iter().filter(move |e| e.is(key))
    }
}

/// A section seen with its templates applied: the templates' settings first (recursively), then
/// its own — the order in which Asterisk copies them, so the last value wins.
#[derive(Clone, Debug)]
pub struct View<'a> {
    /// The section itself.
    pub section: &'a Section,
    /// Its effective settings.
    pub entries: Vec<&'a Entry>,
}

impl<'a> View<'a> {
    /// The section's name.
    pub fn name(&self) -> &'a str {
        &self.section.name
    }

    /// The last effective value of `key`.
    pub fn get(&self, key: &str) -> Option<&'a Entry> {
        self.entries.iter().rev().find(|e| e.is(key)).copied()
    }

    /// The last effective value of `key`, as a string.
    pub fn value(&self, key: &str) -> Option<&'a str> {
        self.get(key).map(|e| e.value.as_str())
    }

    /// Every effective value of `key`, in order.
    pub fn get_all(&self, key: &str) -> Vec<&'a Entry> {
        self.entries.iter().filter(|e| e.is(key)).copied().collect()
    }

    /// Where a finding about a missing setting points: the section header.
    pub fn location(&self) -> &'a Location {
        &self.section.location
    }
}

/// The largest configuration file read: Asterisk's own are a few hundred KiB at most.
const MAX_FILE_BYTES: u64 = 16 << 20;

/// Reads a configuration file, refusing what is not one: a device, a FIFO or a socket (an
/// `#include /dev/zero` or of a pipe would otherwise never finish) and anything over
/// [`MAX_FILE_BYTES`].
pub(crate) fn read_file(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind, Read};
    if !std::fs::metadata(path)?.is_file() {
        return Err(Error::new(ErrorKind::InvalidInput, "not a regular file"));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("larger than {} MiB", MAX_FILE_BYTES >> 20),
        ));
    }
    Ok(bytes)
}

impl ConfFile {
    /// Reads `path` and everything it includes.
    pub fn read(path: &Path) -> Result<Self, AuditError> {
        let bytes = read_file(path).map_err(|source| AuditError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &bytes)
    }

    /// Parses `bytes` as the content of `path` (includes are read relative to its directory).
    /// Non-UTF-8 bytes are replaced, not rejected.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Self, AuditError> {
        let mut reader = Reader {
            conf: Self {
                path: path.to_path_buf(),
                ..Self::default()
            },
            stack: Vec::new(),
            headless_general: false,
        };
        reader.load(path, bytes, None)?;
        Ok(reader.conf)
    }

    /// Reads the files of one configuration given in parts as one, in order, as if the first
    /// `#include`d the others at its end: a template defined in one part serves the parts
    /// after it, and cross-file rules (an endpoint in one part, its `auth` in another) see
    /// every part. Each part starts outside any section; its settings before its first
    /// section go to the implicit section, or, with [`Part::headless_general`], to the first
    /// `[general]` (made at the part's line 0 when there is none yet).
    pub fn read_parts(parts: &[Part<'_>]) -> Result<Self, AuditError> {
        let mut reader = Reader {
            conf: Self {
                path: parts
                    .first()
                    .map(|p| p.path.to_path_buf())
                    .unwrap_or_default(),
                ..Self::default()
            },
            stack: Vec::new(),
            headless_general: false,
        };
        for part in parts {
            let bytes = read_file(part.path).map_err(|source| AuditError::Io {
                path: part.path.to_path_buf(),
                source,
            })?;
            reader.headless_general = part.headless_general;
            let current = if part.headless_general {
                reader.general()
            } else {
                None
            };
            reader.load(part.path, &bytes, current)?;
        }
        Ok(reader.conf)
    }

    /// Every section called `name` (case-insensitive), in order.
    pub fn sections_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Section> + 'a {
        self.sections
            .iter()
            .filter(move |s| !s.implicit && s.name.eq_ignore_ascii_case(name))
    }

    /// The first section called `name`, with its templates applied (Asterisk's modules read
    /// `[general]` this way).
    pub fn view_named(&self, name: &str) -> Option<View<'_>> {
        let idx = self
            .sections
            .iter()
            .position(|s| !s.implicit && s.name.eq_ignore_ascii_case(name))?;
        self.view(idx)
    }

    /// Section `idx` with its templates applied (`None` when out of range).
    pub fn view(&self, idx: usize) -> Option<View<'_>> {
        let section = self.sections.get(idx)?;
        let mut entries = Vec::new();
        self.collect(idx, 0, &mut entries);
        Some(View { section, entries })
    }

    fn collect<'a>(&'a self, idx: usize, depth: usize, out: &mut Vec<&'a Entry>) {
        let Some(section) = self.sections.get(idx) else {
            return;
        };
        if depth < MAX_TEMPLATE_DEPTH {
            for &t in &section.template_ids {
                // Templates are always earlier sections, so this terminates even without the
                // depth limit; the limit bounds the work on adversarial input.
                if t < idx {
                    self.collect(t, depth + 1, out);
                }
            }
        }
        out.extend(section.entries.iter());
    }

    /// The real objects: sections that are neither templates nor the implicit one, with their
    /// templates applied.
    pub fn objects(&self) -> impl Iterator<Item = View<'_>> + '_ {
        self.sections
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.is_template && !s.implicit)
            .filter_map(|(i, _)| self.view(i))
    }
}

/// One file of a configuration read in parts ([`ConfFile::read_parts`]).
#[derive(Clone, Copy, Debug)]
pub struct Part<'a> {
    /// The file.
    pub path: &'a Path,
    /// Its settings before any section belong to `[general]`, as for FreePBX's
    /// `sip_general_additional.conf`, which `sip.conf` includes right after `[general]`.
    pub headless_general: bool,
}

struct Reader {
    conf: ConfFile,
    /// The include chain being read: (as named, canonical).
    stack: Vec<(PathBuf, PathBuf)>,
    /// Settings outside any section go to `[general]` rather than the implicit section.
    headless_general: bool,
}

impl Reader {
    /// The first `[general]` section read so far.
    fn general(&self) -> Option<usize> {
        self.conf
            .sections
            .iter()
            .position(|s| !s.implicit && s.name.eq_ignore_ascii_case("general"))
    }

    /// Reads one file's bytes; `current` is the section the includer was in.
    fn load(
        &mut self,
        path: &Path,
        bytes: &[u8],
        current: Option<usize>,
    ) -> Result<Option<usize>, AuditError> {
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if self.stack.iter().any(|(_, c)| *c == canonical) {
            let mut chain: Vec<PathBuf> = self.stack.iter().map(|(p, _)| p.clone()).collect();
            chain.push(path.to_path_buf());
            return Err(AuditError::IncludeCycle { chain });
        }
        self.stack.push((path.to_path_buf(), canonical));
        self.conf.files.push(path.to_path_buf());
        let text = String::from_utf8_lossy(bytes);
        let mut current = current;
        let mut depth = 0u32;
        let mut result = Ok(());
        for (n, raw) in text.lines().enumerate() {
            let line = u32::try_from(n + 1).unwrap_or(u32::MAX);
            let content = strip_comments(raw, &mut depth);
            let content = content.trim();
            if content.is_empty() {
                continue;
            }
            let location = Location {
                file: path.to_path_buf(),
                line,
            };
            if let Err(e) = self.line(content, location, &mut current) {
                result = Err(e);
                break;
            }
        }
        self.stack.pop();
        result.map(|()| current)
    }

    fn line(
        &mut self,
        content: &str,
        location: Location,
        current: &mut Option<usize>,
    ) -> Result<(), AuditError> {
        if let Some(rest) = content.strip_prefix('[') {
            *current = Some(self.section(rest, location)?);
        } else if let Some(rest) = content.strip_prefix('#') {
            self.directive(rest, location, *current)?;
        } else {
            self.setting(content, location, current);
        }
        Ok(())
    }

    /// `[name]`, `[name](!)`, `[name](tpl,…)`, `[name](+)`; `rest` follows the `[`.
    fn section(&mut self, rest: &str, location: Location) -> Result<usize, AuditError> {
        let Some((name, after)) = rest.split_once(']') else {
            return Err(AuditError::Parse {
                location,
                reason: "no closing ']' (Asterisk rejects the whole file)".into(),
            });
        };
        let mut is_template = false;
        let mut append = false;
        let mut templates = Vec::new();
        // Options only directly after the bracket, as config.c reads them.
        if let Some(opts) = after.strip_prefix('(') {
            let Some((opts, _)) = opts.split_once(')') else {
                return Err(AuditError::Parse {
                    location,
                    reason: "no closing ')' (Asterisk rejects the whole file)".into(),
                });
            };
            for opt in opts.split(',').map(str::trim).filter(|o| !o.is_empty()) {
                match opt {
                    "!" => is_template = true,
                    "+" => append = true,
                    t => templates.push(t.to_string()),
                }
            }
        }
        if append {
            let previous = self
                .conf
                .sections
                .iter()
                .rposition(|s| !s.implicit && s.name.eq_ignore_ascii_case(name));
            if let Some(idx) = previous {
                return Ok(idx);
            }
        }
        let template_ids = templates
            .iter()
            .filter_map(|t| {
                self.conf
                    .sections
                    .iter()
                    .rposition(|s| !s.implicit && s.name.eq_ignore_ascii_case(t))
            })
            .collect();
        self.conf.sections.push(Section {
            name: name.to_string(),
            is_template,
            templates,
            template_ids,
            implicit: false,
            location,
            entries: Vec::new(),
        });
        Ok(self.conf.sections.len() - 1)
    }

    /// `#include`, `#tryinclude`, `#exec`; `rest` follows the `#`.
    fn directive(
        &mut self,
        rest: &str,
        location: Location,
        current: Option<usize>,
    ) -> Result<(), AuditError> {
        let (name, arg) = rest
            .split_once(|c: char| c.is_ascii_whitespace())
            .unwrap_or((rest, ""));
        let arg = unquote(arg.trim());
        let optional = match name.to_ascii_lowercase().as_str() {
            "include" => false,
            "tryinclude" => true,
            other => {
                let what = if other == "exec" || other == "tryexec" {
                    format!("#{name} is not run by the audit")
                } else {
                    format!("unknown directive #{name}")
                };
                self.conf.ignored.push((location, what));
                return Ok(());
            }
        };
        if arg.is_empty() {
            self.conf
                .ignored
                .push((location, format!("#{name} without a file name")));
            return Ok(());
        }
        let base = location.file.parent().unwrap_or_else(|| Path::new(""));
        let target = base.join(arg);
        for file in expand_glob(&target) {
            match read_file(&file) {
                Ok(bytes) => {
                    self.load(&file, &bytes, current)?;
                }
                Err(_) if optional => {}
                Err(e) => {
                    return Err(AuditError::Parse {
                        location,
                        reason: format!("#{name} {}: {e}", file.display()),
                    });
                }
            }
        }
        Ok(())
    }

    /// `key = value`, `key => value`, `key += value`.
    fn setting(&mut self, content: &str, location: Location, current: &mut Option<usize>) {
        let Some((key, value)) = content.split_once('=') else {
            self.conf
                .ignored
                .push((location, "no '=' in the line".into()));
            return;
        };
        let (value, arrow) = match value.strip_prefix('>') {
            Some(v) => (v, true),
            None => (value, false),
        };
        let key = key.trim_end();
        let value = value.trim();
        let idx = match *current {
            Some(i) => i,
            None if self.headless_general => {
                let i = self.general().unwrap_or_else(|| {
                    self.conf.sections.push(Section {
                        name: "general".into(),
                        is_template: false,
                        templates: Vec::new(),
                        template_ids: Vec::new(),
                        implicit: false,
                        location: Location {
                            file: location.file.clone(),
                            line: 0,
                        },
                        entries: Vec::new(),
                    });
                    self.conf.sections.len() - 1
                });
                *current = Some(i);
                i
            }
            None => {
                self.conf.sections.push(Section {
                    name: String::new(),
                    is_template: false,
                    templates: Vec::new(),
                    template_ids: Vec::new(),
                    implicit: true,
                    location: location.clone(),
                    entries: Vec::new(),
                });
                let i = self.conf.sections.len() - 1;
                *current = Some(i);
                i
            }
        };
        let Some(section) = self.conf.sections.get_mut(idx) else {
            return;
        };
        // `key += value` appends to the key's last value (or starts it).
        let key = match key.strip_suffix('+').map(str::trim_end) {
            Some(key) => {
                if let Some(prev) = section.entries.iter_mut().rev().find(|e| e.is(key)) {
                    prev.value.push_str(value);
                    return;
                }
                key
            }
            None => key,
        };
        section.entries.push(Entry {
            key: key.to_string(),
            value: value.to_string(),
            arrow,
            location,
        });
    }
}

/// Removes comments from one physical line, carrying the block-comment depth across lines,
/// exactly as `config_text_file_load` scans for `;`.
pub fn strip_comments(line: &str, depth: &mut u32) -> String {
    let b = line.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    // Where the current scan segment starts (config.c's `new_buf`): a `--;` only closes a block
    // comment when its dashes are after the previous `;` construct.
    let mut seg = 0usize;
    let mut i = 0usize;
    while let Some(&c) = b.get(i) {
        if c != b';' {
            if *depth == 0 {
                out.push(c);
            }
            i += 1;
            continue;
        }
        let prev = |k: usize| i.checked_sub(k).and_then(|j| b.get(j)).copied();
        if i > seg && prev(1) == Some(b'\\') {
            if *depth == 0 {
                out.pop();
                out.push(b';');
            }
            seg = i + 1;
            i += 1;
        } else if b.get(i + 1) == Some(&b'-')
            && b.get(i + 2) == Some(&b'-')
            && b.get(i + 3) != Some(&b'-')
            && *depth < MAX_NESTED_COMMENTS
        {
            *depth += 1;
            i += 3;
            seg = i;
        } else if *depth > 0 && i >= seg + 2 && prev(1) == Some(b'-') && prev(2) == Some(b'-') {
            *depth -= 1;
            i += 1;
            seg = i;
        } else if *depth == 0 {
            break;
        } else {
            i += 1;
            seg = i;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `"file"` or `<file>` → `file`.
fn unquote(s: &str) -> &str {
    for (open, close) in [('"', '"'), ('<', '>')] {
        if let Some(inner) = s.strip_prefix(open) {
            return inner.strip_suffix(close).unwrap_or(inner);
        }
    }
    s
}

/// Expands `*`, `?` in the last path component (sorted, like glob(3)); a path without them, or
/// a pattern matching nothing, is returned as is (so a missing `#include` is reported).
fn expand_glob(target: &Path) -> Vec<PathBuf> {
    let Some(name) = target.file_name().and_then(|n| n.to_str()) else {
        return vec![target.to_path_buf()];
    };
    if !name.contains(['*', '?']) {
        return vec![target.to_path_buf()];
    }
    let dir = target.parent().unwrap_or_else(|| Path::new(""));
    let read_dir = if dir.as_os_str().is_empty() {
        std::fs::read_dir(".")
    } else {
        std::fs::read_dir(dir)
    };
    let mut found: Vec<PathBuf> = read_dir
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name();
            let n = n.to_str()?;
            (!n.starts_with('.') && wildcard(name.as_bytes(), n.as_bytes())).then(|| dir.join(n))
        })
        .collect();
    found.sort();
    let mut seen = HashSet::new();
    found.retain(|p| seen.insert(p.clone()));
    if found.is_empty() {
        vec![target.to_path_buf()]
    } else {
        found
    }
}

/// `*` and `?` matching, iterative (no backtracking blow-up).
fn wildcard(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || Some(&c) == name.get(n) => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

#[cfg(test)]
mod tests;
