use std::fs;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;

fn parse(text: &str) -> ConfFile {
    match ConfFile::parse(Path::new("/nonexistent-dir/test.conf"), text.as_bytes()) {
        Ok(c) => c,
        Err(e) => panic!("parse failed: {e}"),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, text).expect("write");
    p
}

#[test]
fn sections_templates_and_repeated_keys() {
    let c = parse(
        "[general]\ncontext = public ; trailing\n\n[base](!)\ntype=friend\nallow=ulaw\n\
         [mid](!,base)\nhost=dynamic\n[6001](mid)\nallow=alaw\nsecret=x\n[6001]\ntype=peer\n",
    );
    let names: Vec<&str> = c.sections.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["general", "base", "mid", "6001", "6001"]);
    assert!(c.sections[1].is_template && c.sections[2].is_template);
    assert_eq!(c.sections[2].templates, ["base"]);
    assert_eq!(
        c.sections[0].get("CONTEXT").map(|e| e.value.as_str()),
        Some("public")
    );
    let peer = c.view(3).expect("view");
    let allows: Vec<&str> = peer
        .get_all("allow")
        .iter()
        .map(|e| e.value.as_str())
        .collect();
    assert_eq!(allows, ["ulaw", "alaw"]);
    assert_eq!(peer.value("host"), Some("dynamic"));
    assert_eq!(peer.value("type"), Some("friend"));
    assert_eq!(
        peer.get("type").map(|e| e.location.line),
        Some(5),
        "points at the template's line"
    );
    assert_eq!(c.sections_named("6001").count(), 2);
    let objects: Vec<&str> = c.objects().map(|v| v.name()).collect();
    assert_eq!(objects, ["general", "6001", "6001"]);
}

#[test]
fn arrows_escapes_and_block_comments() {
    let c = parse(
        "[ctx]\nexten => _X.,1,NoOp(a\\;b) ; comment\ninclude=>other\n\
         a=1 ;-- block\nstill comment\nend --; b=2\nc=3;--inline--;d\n;--- not a block\ne=5\n",
    );
    let s = &c.sections[0];
    let got: Vec<(&str, &str, bool, u32)> = s
        .entries
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_str(), e.arrow, e.location.line))
        .collect();
    assert_eq!(
        got,
        [
            ("exten", "_X.,1,NoOp(a;b)", true, 2),
            ("include", "other", true, 3),
            ("a", "1", false, 4),
            ("b", "2", false, 6),
            ("c", "3d", false, 7),
            ("e", "5", false, 9),
        ]
    );
}

#[test]
fn nested_block_comments() {
    let c = parse("[s]\n;-- outer ;-- inner --; still --;\nk=v\n");
    assert_eq!(c.sections[0].entries.len(), 1);
    assert_eq!(c.sections[0].entries[0].key, "k");
}

#[test]
fn lines_before_any_section_and_plus_append() {
    let c = parse("orphan=1\nnoequals\n[s]\nk=a\nk+=b\n[s](+)\nz=1\n#exec /bin/true\n");
    assert!(c.sections[0].implicit);
    assert_eq!(c.sections.len(), 2);
    assert_eq!(c.sections[1].get("k").map(|e| e.value.as_str()), Some("ab"));
    assert_eq!(c.sections[1].get("z").map(|e| e.location.line), Some(7));
    assert_eq!(c.ignored.len(), 2);
    assert_eq!(c.objects().count(), 1);
}

#[test]
fn missing_bracket_is_an_error() {
    let r = ConfFile::parse(Path::new("x.conf"), b"[general\nk=v\n");
    assert!(matches!(r, Err(AuditError::Parse { location, .. }) if location.line == 1));
}

#[test]
fn includes_point_at_their_own_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "peers.conf", "; peers\n[6001]\nsecret=abc\n");
    write(dir.path(), "more_a.conf", "[a]\nk=1\n");
    write(dir.path(), "more_b.conf", "[b]\nk=2\n");
    let main = write(
        dir.path(),
        "sip.conf",
        "[general]\n#include \"peers.conf\"\n#include more_*.conf\n#tryinclude missing.conf\n[last]\n",
    );
    let c = ConfFile::read(&main).expect("read");
    let names: Vec<&str> = c.sections.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["general", "6001", "a", "b", "last"]);
    let secret = c.sections[1].get("secret").expect("secret");
    assert_eq!(secret.location.file, dir.path().join("peers.conf"));
    assert_eq!(secret.location.line, 3);
    assert_eq!(c.files.len(), 4);
}

#[test]
fn included_file_continues_the_current_section() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "extra.conf", "permit=10.0.0.0/8\n");
    let main = write(
        dir.path(),
        "sip.conf",
        "[peer]\ndeny=0.0.0.0/0\n#include extra.conf\nhost=x\n",
    );
    let c = ConfFile::read(&main).expect("read");
    assert_eq!(c.sections.len(), 1);
    assert_eq!(c.sections[0].entries.len(), 3);
}

#[test]
fn missing_include_names_the_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let main = write(
        dir.path(),
        "sip.conf",
        "[general]\n\n#include nothere.conf\n",
    );
    match ConfFile::read(&main) {
        Err(AuditError::Parse { location, reason }) => {
            assert_eq!(location.line, 3);
            assert!(reason.contains("nothere.conf"), "{reason}");
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn include_cycle_gives_the_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "a.conf", "#include b.conf\n");
    write(dir.path(), "b.conf", "#include a.conf\n");
    let main = dir.path().join("a.conf");
    match ConfFile::read(&main) {
        Err(AuditError::IncludeCycle { chain }) => {
            let names: Vec<String> = chain
                .iter()
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect();
            assert_eq!(names, ["a.conf", "b.conf", "a.conf"]);
        }
        other => panic!("expected a cycle, got {other:?}"),
    }
}

#[test]
fn missing_file_is_an_io_error() {
    let r = ConfFile::read(Path::new("/nonexistent-dir/sip.conf"));
    assert!(matches!(r, Err(AuditError::Io { .. })));
}

#[test]
fn unreadable_file_is_an_io_error() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(dir.path(), "sip.conf", "[general]\n");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o000)).expect("chmod");
    if fs::read(&p).is_ok() {
        // Running as root: mode 000 does not stop us, so there is nothing to assert.
        return;
    }
    match ConfFile::read(&p) {
        Err(AuditError::Io { path, source }) => {
            assert_eq!(path, p);
            assert_eq!(source.kind(), std::io::ErrorKind::PermissionDenied);
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

#[test]
fn non_utf8_is_read_lossily() {
    let c = ConfFile::parse(Path::new("x.conf"), b"[s\xff]\nk=\xfe\xfd\n").expect("parse");
    assert_eq!(c.sections[0].entries.len(), 1);
}

#[test]
fn wildcard_matches() {
    assert!(wildcard(b"sip_*.conf", b"sip_peers.conf"));
    assert!(wildcard(b"*", b""));
    assert!(wildcard(b"a?c", b"abc"));
    assert!(!wildcard(b"sip_*.conf", b"iax.conf"));
}

fn corpus(name: &str) -> PathBuf {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/corpus/asterisk/"
    ))
    .join(name)
}

#[test]
fn every_sample_reads() {
    for name in [
        "sip.conf.sample",
        "pjsip.conf.sample",
        "iax.conf.sample",
        "acl.conf.sample",
        "stir_shaken.conf.sample",
    ] {
        let c = ConfFile::read(&corpus(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let settings: usize = c.sections.iter().map(|s| s.entries.len()).sum();
        let expected = match name {
            "sip.conf.sample" => 21,
            "iax.conf.sample" => 16,
            _ => 0,
        };
        assert_eq!(settings, expected, "{name}: {:#?}", c.sections);
        assert!(c.ignored.is_empty(), "{name}: {:?}", c.ignored);
    }
}

const TOKENS: &[&str] = &[
    "[",
    "]",
    "(!)",
    "(",
    ")",
    ",",
    "=>",
    "=",
    ";--",
    "--;",
    "\\;",
    ";",
    "#include ",
    "#tryinclude ",
    "#exec ",
    "\n",
    "\r\n",
    " ",
    "general",
    "x",
    "+",
    "!",
    "\"",
    "*",
    "é",
];

proptest! {
    #[test]
    fn never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = ConfFile::parse(Path::new("/nonexistent-dir/fuzz.conf"), &bytes);
    }

    #[test]
    fn never_panics_on_config_tokens(picks in proptest::collection::vec(0..TOKENS.len(), 0..128)) {
        let text: String = picks.iter().filter_map(|&i| TOKENS.get(i).copied()).collect();
        if let Ok(c) = ConfFile::parse(Path::new("/nonexistent-dir/fuzz.conf"), text.as_bytes()) {
            for i in 0..c.sections.len() + 1 {
                if let Some(v) = c.view(i) {
                    let _ = v.get("x");
                }
            }
            let _ = c.objects().count();
        }
    }
}

/// A configuration in parts reads as one: templates serve later parts, each part starts
/// outside any section, and a `[general]` part's settings join `[general]`.
#[test]
fn parts_read_as_one_configuration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let nat = write(d, "sip_nat.conf", "; generated\nexternip=203.0.113.1\n");
    let general = write(d, "sip_general_additional.conf", "allowguest=no\n");
    let peers = write(
        d,
        "sip_additional.conf",
        "[phone](!)\ntype=friend\n[6001](phone)\nsecret=x\n",
    );
    let custom = write(d, "sip_custom.conf", "[6002](phone)\nsecret=y\n");
    fn part(path: &Path) -> Part<'_> {
        Part {
            path,
            headless_general: true,
        }
    }
    // No [general] header anywhere: the first headless setting makes one, at its file.
    let c = ConfFile::read_parts(&[part(&nat), part(&general), part(&peers), part(&custom)])
        .expect("read");
    assert_eq!(c.path, nat);
    assert_eq!(
        c.files,
        [nat.clone(), general.clone(), peers.clone(), custom.clone()]
    );
    let g = c.view_named("general").expect("general");
    assert_eq!(
        g.location(),
        &Location {
            file: nat.clone(),
            line: 0
        }
    );
    assert_eq!(g.value("externip"), Some("203.0.113.1"));
    assert_eq!(g.value("allowguest"), Some("no"));
    assert_eq!(
        g.get("allowguest").map(|e| &e.location.file),
        Some(&general)
    );
    // The template of one part serves the next.
    let peers: Vec<(String, Option<&str>)> = c
        .objects()
        .filter(|v| v.name() != "general")
        .map(|v| (v.name().to_owned(), v.value("type")))
        .collect();
    assert_eq!(
        peers,
        [
            ("6001".to_owned(), Some("friend")),
            ("6002".to_owned(), Some("friend"))
        ]
    );
    // With a main file, headless parts join its [general]; a part that is not a [general]
    // part keeps its headless settings out of every section.
    let main = write(
        d,
        "sip.conf",
        "[general]\ncontext=public\n[6003]\ntype=peer\n",
    );
    let stray = write(d, "other.conf", "context=stray\n");
    let c = ConfFile::read_parts(&[
        Part {
            path: &main,
            headless_general: false,
        },
        part(&general),
        Part {
            path: &stray,
            headless_general: false,
        },
    ])
    .expect("read");
    let g = c.view_named("general").expect("general");
    assert_eq!(g.location().line, 1);
    assert_eq!(g.value("allowguest"), Some("no"));
    assert_eq!(g.value("context"), Some("public"));
    let types: Vec<Option<&str>> = c.objects().map(|v| v.value("type")).collect();
    assert_eq!(types, [None, Some("peer")]);
}
