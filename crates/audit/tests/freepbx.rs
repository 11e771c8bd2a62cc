//! The audit on a FreePBX tree (`tests/data/freepbx/`: files named and split as FreePBX
//! writes them, with the mistakes FreePBX sites make) reports what it reports for the same
//! content under Asterisk's standard names: given as a directory or file by file, and with or
//! without the main files (`sip.conf`, `pjsip.conf`…) that `#include` the parts.
//!
//! "The same content under the standard names" is built here from the tree itself, so the
//! two cannot drift: each main file with its `#include`s written out in place, or, for the
//! parts alone, the parts of each family one after the other. Every line of those files
//! remembers where it came from, so each finding of the standard tree is mapped back to the
//! FreePBX file and line it is about, and must be there, word for word but for file names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sipwarden_audit::dialect::{self, Dialect};
use sipwarden_audit::{Report, audit_paths};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/freepbx")
}

/// The fixture's file names, sorted.
fn fixture_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixture())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

const MAINS: [&str; 4] = ["sip.conf", "pjsip.conf", "iax.conf", "extensions.conf"];

/// Copies `names` from the fixture into a fresh directory, readable by their owner only (so
/// the file-mode rules, which depend on the checkout's umask, stay out of the comparison).
fn copy(names: &[String]) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    for n in names {
        let to = dir.path().join(n);
        std::fs::copy(fixture().join(n), &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    dir
}

/// Where a line of a standard file came from: fixture file name and line (0: nowhere, a
/// `[general]` header the parts did not write).
type Origin = (String, u32);

/// A standard file being built: its text and the origin of each of its lines.
#[derive(Default)]
struct Built {
    text: String,
    origins: Vec<Origin>,
}

impl Built {
    fn push(&mut self, line: &str, origin: Origin) {
        self.text.push_str(line);
        self.text.push('\n');
        self.origins.push(origin);
    }

    /// `name` with its `#include`s written out in place.
    fn inline(&mut self, name: &str) {
        let text = std::fs::read_to_string(fixture().join(name)).unwrap();
        for (i, line) in text.lines().enumerate() {
            match line.trim().strip_prefix("#include") {
                Some(included) => self.inline(included.trim()),
                None => self.push(line, (name.to_owned(), line_no(i))),
            }
        }
    }

    fn append(&mut self, name: &str) {
        let text = std::fs::read_to_string(fixture().join(name)).unwrap();
        for (i, line) in text.lines().enumerate() {
            self.push(line, (name.to_owned(), line_no(i)));
        }
    }
}

fn line_no(index: usize) -> u32 {
    u32::try_from(index + 1).unwrap()
}

/// Writes the standard files and returns the directory and each file's origins.
fn write_standard(files: BTreeMap<&'static str, Built>) -> (tempfile::TempDir, OriginMap) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mut map = OriginMap::new();
    for (name, built) in files {
        let path = dir.path().join(name);
        std::fs::write(&path, &built.text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        map.insert(name.to_owned(), built.origins);
    }
    (dir, map)
}

type OriginMap = BTreeMap<String, Vec<Origin>>;

fn origin(map: &OriginMap, file: &str, line: u32) -> Origin {
    let lines = &map[file];
    if line == 0 {
        return (file.to_owned(), 0);
    }
    lines[usize::try_from(line - 1).unwrap()].clone()
}

/// The family's standard name of a fixture file (`sip_additional.conf` → `sip.conf`).
fn standard_name(name: &str) -> &'static str {
    dialect::by_name(Path::new(name))
        .map(|n| n.dialect.file())
        .unwrap_or_else(|| panic!("{name}: not recognised by name"))
}

/// File names in a message, FreePBX's or standard, spelled as the family's standard name.
fn normalise_names(message: &str) -> String {
    let mut names = fixture_names();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let mut m = message.to_owned();
    for n in names {
        m = m.replace(&n, standard_name(&n));
    }
    m
}

/// A report as comparable lines: `severity rule file:line message`, the file relative to
/// `base`, file names in messages spelled as standard names; sorted.
fn lines_of(report: &Report, base: &Path) -> Vec<String> {
    let mut v: Vec<String> = report
        .findings
        .iter()
        .map(|f| {
            let file = f.location.file.strip_prefix(base).unwrap().display();
            format!(
                "{} {} {file}:{} {}",
                f.severity,
                f.rule,
                f.location.line,
                normalise_names(&f.message)
            )
        })
        .collect();
    v.sort();
    v
}

/// The standard tree's report with each location, and each `file:line` its messages quote,
/// mapped back to the fixture file and line it came from.
fn mapped_lines(report: &Report, base: &Path, map: &OriginMap) -> Vec<String> {
    let mut v: Vec<String> = report
        .findings
        .iter()
        .map(|f| {
            let file = f.location.file.strip_prefix(base).unwrap();
            let (file, line) = origin(map, &file.display().to_string(), f.location.line);
            let mut message = f.message.clone();
            for (std_name, _) in map.iter() {
                // `sip.conf:13` in a message: the line a context is set on.
                while let Some(at) = find_reference(&message, std_name) {
                    let digits: String = message[at + std_name.len() + 1..]
                        .chars()
                        .take_while(char::is_ascii_digit)
                        .collect();
                    let (of, ol) = origin(map, std_name, digits.parse().unwrap());
                    message.replace_range(
                        at..at + std_name.len() + 1 + digits.len(),
                        &format!("{of}\u{0}{ol}"),
                    );
                }
            }
            let message = normalise_names(&message.replace('\u{0}', ":"));
            format!("{} {} {file}:{line} {message}", f.severity, f.rule)
        })
        .collect();
    v.sort();
    v
}

/// Where `name:` followed by a digit starts in `message`, as a whole file name.
fn find_reference(message: &str, name: &str) -> Option<usize> {
    let pattern = format!("{name}:");
    message.match_indices(&pattern).map(|(i, _)| i).find(|&i| {
        let before = message[..i].chars().next_back();
        let after = message[i + pattern.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            && after.is_some_and(|c| c.is_ascii_digit())
    })
}

fn audit_dir(dir: &Path) -> Report {
    audit_paths(&[dir.to_path_buf()]).unwrap_or_else(|e| panic!("{e}"))
}

/// Every file named on its own, in reverse order (order must not matter).
fn audit_one_by_one(dir: &Path, names: &[String]) -> Report {
    let paths: Vec<PathBuf> = names.iter().rev().map(|n| dir.join(n)).collect();
    audit_paths(&paths).unwrap_or_else(|e| panic!("{e}"))
}

/// The findings that show the comparison covers the rules that span files.
fn assert_meaningful(lines: &[String]) {
    assert!(lines.len() >= 30, "{lines:#?}");
    for wanted in [
        // Guests of sip_general_additional.conf reach a Dial in extensions_additional.conf
        // through an include in extensions_custom.conf.
        "critical SW-EXT-001 extensions_additional.conf:25 calls from guests of sip.conf",
        // The carrier's password in pjsip.auth.conf is the sip_registrations.conf one.
        "high SW-SECRET-005 pjsip.auth.conf:12 ",
        "high SW-SECRET-005 sip_registrations.conf:9 ",
        // allowguest from sip_general_additional.conf, judged as [general]'s.
        "high SW-SIP-002 sip_general_additional.conf:22 ",
        // FreePBX's own endpoint without auth or identify.
        "high SW-PJSIP-001 pjsip.endpoint.conf:9 ",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(wanted)),
            "{wanted:?} not in {lines:#?}"
        );
    }
    // The carrier's identify (pjsip.identify.conf) serves its endpoint (pjsip.endpoint.conf).
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("SW-PJSIP-001") && l.contains("[carrier]")),
        "{lines:#?}"
    );
}

/// The acceptance test of the dialect work: a whole FreePBX tree, main files included.
#[test]
fn a_freepbx_tree_reports_what_its_standard_named_content_reports() {
    let names = fixture_names();
    let tree = copy(&names);
    let report = audit_dir(tree.path());
    // Every file read once: the parts through the main files' includes.
    let mut read: Vec<String> = report
        .files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    read.sort();
    assert_eq!(read, names);
    let by_dir = lines_of(&report, tree.path());
    let by_file = lines_of(&audit_one_by_one(tree.path(), &names), tree.path());
    assert_eq!(by_file, by_dir);
    assert_meaningful(&by_dir);

    let mut standard = BTreeMap::new();
    for main in MAINS {
        let mut b = Built::default();
        b.inline(main);
        standard.insert(main, b);
    }
    let (std_dir, map) = write_standard(standard);
    let std_report = audit_dir(std_dir.path());
    assert_eq!(std_report.files.len(), MAINS.len());
    assert_eq!(mapped_lines(&std_report, std_dir.path(), &map), by_dir);
}

/// The parts alone (copied off a FreePBX box without the main files): each family's parts
/// are one configuration, and match one standard file holding them in turn, `[general]`
/// parts of sip and iax first under a `[general]` header.
#[test]
fn freepbx_parts_alone_report_what_their_content_in_one_file_reports() {
    let parts: Vec<String> = fixture_names()
        .into_iter()
        .filter(|n| !MAINS.contains(&n.as_str()))
        .collect();
    let tree = copy(&parts);
    let by_dir = lines_of(&audit_dir(tree.path()), tree.path());
    let by_file = lines_of(&audit_one_by_one(tree.path(), &parts), tree.path());
    assert_eq!(by_file, by_dir);

    let mut standard: BTreeMap<&'static str, Built> = BTreeMap::new();
    for family in [
        Dialect::Sip,
        Dialect::Iax,
        Dialect::Pjsip,
        Dialect::Extensions,
    ] {
        let mine: Vec<&String> = parts
            .iter()
            .filter(|n| dialect::by_name(Path::new(n.as_str())).unwrap().dialect == family)
            .collect();
        let (general, rest): (Vec<&String>, Vec<&String>) = mine.into_iter().partition(|n| {
            family != Dialect::Pjsip && family != Dialect::Extensions && opens_with_settings(n)
        });
        let mut b = Built::default();
        if let Some(first) = general.first() {
            b.push("[general]", ((*first).clone(), 0));
        }
        for n in general.iter().chain(&rest) {
            b.append(n);
        }
        standard.insert(family.file(), b);
    }
    let (std_dir, map) = write_standard(standard);
    let std_report = audit_dir(std_dir.path());
    assert_eq!(mapped_lines(&std_report, std_dir.path(), &map), by_dir);
    // Without sip.conf's own [general] header the findings about [general] point at the part
    // that holds its settings; everything else is as with the main files.
    assert!(
        by_dir
            .iter()
            .any(|l| l.starts_with("high SW-SIP-002 sip_general_additional.conf:22 ")),
        "{by_dir:#?}"
    );
}

/// Whether a fixture file's first line that is not blank or a comment is a setting (not a
/// `[section]`): FreePBX includes such files into `[general]`.
fn opens_with_settings(name: &str) -> bool {
    let text = std::fs::read_to_string(fixture().join(name)).unwrap();
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with(';'))
        .is_some_and(|l| !l.starts_with('['))
}
