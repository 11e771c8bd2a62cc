//! Dispatch, and the reports on Asterisk's own sample files (snapshots, each finding reviewed by
//! hand against the sample).

use std::path::{Path, PathBuf};

use super::testutil::{self, render};
use super::*;
use crate::Location;

fn corpus_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/corpus/asterisk/"
    ))
}

fn snapshot_of(name: &str) -> String {
    let dir = corpus_dir();
    let report = audit_paths(&[dir.join(name)]).unwrap_or_else(|e| panic!("{name}: {e}"));
    let base = dir.canonicalize().unwrap_or(dir);
    let mut report = report;
    for f in &mut report.findings {
        if let Ok(c) = f.location.file.canonicalize() {
            f.location.file = c;
        }
    }
    render(&report, &base)
}

#[test]
fn sample_sip_conf() {
    insta::assert_snapshot!(snapshot_of("sip.conf.sample"));
}

#[test]
fn sample_pjsip_conf() {
    insta::assert_snapshot!(snapshot_of("pjsip.conf.sample"));
}

#[test]
fn sample_iax_conf() {
    insta::assert_snapshot!(snapshot_of("iax.conf.sample"));
}

/// Empty reports: both samples are all comments (no section is active), so there is nothing to
/// judge and no insecure default applies.
#[test]
fn sample_acl_conf() {
    insta::assert_snapshot!(snapshot_of("acl.conf.sample"));
}

#[test]
fn sample_stir_shaken_conf() {
    insta::assert_snapshot!(snapshot_of("stir_shaken.conf.sample"));
}

#[test]
fn the_empty_samples_are_all_comments() {
    for name in ["acl.conf.sample", "stir_shaken.conf.sample"] {
        let conf = ConfFile::read(&corpus_dir().join(name)).expect("read");
        assert!(conf.sections.is_empty(), "{name}: {:#?}", conf.sections);
    }
}

/// The commented examples of acl.conf.sample and stir_shaken.conf.sample, made active (`;key=`
/// and `;[section]` lines uncommented), with the verification example's `global_disable = yes`
/// turned off so its settings are judged, and `/var/lib/asterisk` moved to a path that surely
/// does not exist. The stir_shaken sample's "In acl.conf..." lines stay in stir_shaken.conf, so
/// its `x5u_acl=myacllist` is (rightly) reported as undefined.
#[test]
fn sample_examples_uncommented() {
    fn uncomment(text: &str) -> String {
        text.lines()
            .filter_map(|l| {
                let rest = l.strip_prefix(';')?;
                let first = rest.chars().next()?;
                (first == '[' || (first.is_ascii_alphabetic() && rest.contains('=')))
                    .then(|| format!("{rest}\n"))
            })
            .collect()
    }
    let read = |name: &str| {
        std::fs::read_to_string(corpus_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let acl = uncomment(&read("acl.conf.sample"));
    let stir = uncomment(&read("stir_shaken.conf.sample"))
        .replace("global_disable = yes", "global_disable = no")
        .replace("/var/lib/asterisk/", "/nonexistent-dir/var/lib/asterisk/");
    let (dir, report) = testutil::audit(&[("acl.conf", &acl), ("stir_shaken.conf", &stir)]);
    insta::assert_snapshot!(render(&report, dir.path()));
}

#[test]
fn the_corpus_directory() {
    let dir = corpus_dir();
    let report = audit_paths(&[dir]).expect("audit");
    let names: Vec<String> = report
        .files
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    assert_eq!(
        names,
        [
            "acl.conf.sample",
            "iax.conf.sample",
            "pjsip.conf.sample",
            "sip.conf.sample",
            "stir_shaken.conf.sample"
        ]
    );
}

/// A file whose name and content say nothing is refused, not audited against a guess.
#[test]
fn files_neither_name_nor_content_place_are_refused() {
    let dir = corpus_dir();
    match audit_paths(&[dir.join("SOURCES.md")]) {
        Err(e @ AuditError::Unrecognised { .. }) => {
            let shown = e.to_string();
            assert!(shown.contains("don't know how to audit this"), "{shown}");
            assert!(
                shown.contains("--as sip|pjsip|iax|extensions|acl|stir|sipwarden"),
                "{shown}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn missing_paths_are_io_errors() {
    let r = audit_paths(&[PathBuf::from("/nonexistent-dir/sip.conf")]);
    assert!(matches!(r, Err(AuditError::Io { .. })));
}

#[test]
fn toml_files_in_a_directory_go_to_the_sipwarden_rules() {
    let (_dir, report) = testutil::audit(&[
        ("sipwarden.toml", "[listen]\nudp = [\"0.0.0.0:5060\"]\n"),
        ("sip.conf", "[general]\nallowguest=no\n"),
    ]);
    assert_eq!(report.files.len(), 2, "{report:?}");
    assert!(testutil::fired(&report, "SW-CONF-020"), "{report:?}");
}

#[test]
fn every_rule_is_listed_once_with_title_and_fix() {
    let all = all_rules();
    let mut ids: Vec<&str> = all.iter().map(|r| r.id).collect();
    ids.dedup();
    assert_eq!(ids.len(), all.len());
    for r in all {
        assert!(
            r.id.starts_with("SW-") && !r.title.is_empty() && !r.fix.is_empty(),
            "{r:?}"
        );
    }
    assert!(rule("SW-SIP-002").is_some());
}

#[test]
fn report_lists_included_files() {
    let (dir, report) = testutil::audit(&[
        (
            "sip.conf",
            "[general]\nallowguest=no\n#include sip_peers.conf\n",
        ),
        (
            "sip_peers.conf",
            "[6001]\ntype=friend\nhost=dynamic\nsecret=abc\n",
        ),
    ]);
    assert_eq!(
        report.files,
        [
            dir.path().join("sip.conf"),
            dir.path().join("sip_peers.conf")
        ]
    );
    let short = testutil::of(&report, "SW-SECRET-001");
    assert_eq!(short.len(), 1);
    assert_eq!(short[0].location.file, dir.path().join("sip_peers.conf"));
    assert_eq!(short[0].location.line, 4);
    assert!(!short[0].message.contains("abc"));
}

const TOKENS: &[&str] = &[
    "[general]\n",
    "[6001]",
    "(!)",
    "(t)",
    "[t](!)\n",
    "\n",
    "type=",
    "friend",
    "peer",
    "endpoint",
    "auth",
    "identify",
    "transport",
    "aor",
    "user",
    "host=",
    "dynamic",
    "203.0.113.5",
    "10.0.0.1",
    "0.0.0.0/0",
    "permit=",
    "deny=",
    "insecure=invite",
    "secret=",
    "password=",
    "abc",
    "match=",
    "endpoint=6001",
    "context=",
    "public",
    "exten => ",
    "same => n,",
    "include => ",
    "_X.,1,",
    "_9011.",
    "Dial(SIP/x)",
    "GotoIf(",
    "register => ",
    "u:p@h",
    "protocol=tls",
    "bind=",
    "max_contacts=99",
    "allowguest=",
    "acl=",
    "[verification]\n",
    "failure_action=",
    "max_iat_age=999",
    "x5u_permit=",
    "public_cert_url=http://x",
    "endpoint_behavior=on",
    "yes",
    "no",
    ",",
    ":",
    "@",
    "/",
    ";",
    "=",
];

fn token_config(picks: &[usize]) -> ConfFile {
    let text: String = picks
        .iter()
        .filter_map(|&i| TOKENS.get(i).copied())
        .collect();
    ConfFile::parse(Path::new("/nonexistent-dir/x.conf"), text.as_bytes()).unwrap_or_default()
}

proptest::proptest! {
    /// Whatever the reader accepts, no rule panics on it.
    #[test]
    fn rules_never_panic(picks in proptest::collection::vec(0..TOKENS.len(), 0..200)) {
        let conf = token_config(&picks);
        let config = AsteriskConfig {
            sip: vec![conf.clone()],
            pjsip: vec![conf.clone()],
            iax: vec![conf.clone()],
            extensions: vec![conf.clone()],
            acl: vec![conf.clone()],
            stir_shaken: vec![conf],
        };
        for f in config.check() {
            proptest::prop_assert!(!f.message.is_empty());
        }
    }
}

/// A PBX with the classic mistakes, all files together: what a real report looks like.
/// Its secrets are strong but shared, so the snapshot does not depend on how
/// `crate::secret::assess` scores weak ones (per-rule tests cover those).
#[test]
fn a_defrauded_pbx() {
    let (dir, report) = testutil::audit(&[
        (
            "sip.conf",
            "[general]\ncontext=from-internet\nalwaysauthreject=no\nexternip=203.0.113.1\n\
             useragent=Asterisk PBX 13.1\n#include sip_phones.conf\n\
             [acme]\ntype=peer\nhost=198.51.100.7\ninsecure=port,invite\ncontext=from-acme\n\
             [general](+)\nregister => acme:Zq8#vT2m!Lp4@Rw9xK@sip.acme.example\n",
        ),
        (
            "sip_phones.conf",
            "[phone](!)\ntype=friend\nhost=dynamic\ncontext=phones\n\
             [6001](phone)\nsecret=Hy3$kP9w@Qs7!Nb2vD\n[6002](phone)\nsecret=Zq8#vT2m!Lp4@Rw9xK\n",
        ),
        (
            "extensions.conf",
            "[from-internet]\ninclude => phones\n\
             [from-acme]\nexten => _X.,1,Dial(SIP/${EXTEN})\n\
             [phones]\nexten => _00.,1,Dial(SIP/acme/${EXTEN})\n",
        ),
    ]);
    insta::assert_snapshot!(render(&report, dir.path()));
}

#[test]
fn a_file_named_twice_is_read_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sip = dir.path().join("sip.conf");
    std::fs::write(
        &sip,
        "[6001]\ntype=friend\nhost=dynamic\nsecret=Zq8#vT2m!Lp4@Rw9xK\n",
    )
    .expect("write");
    let report = audit_paths(&[dir.path().to_path_buf(), sip]).expect("audit");
    assert_eq!(report.files.len(), 1);
    assert!(!testutil::fired(&report, "SW-SECRET-005"));
}

/// Writes `files` into a fresh directory (mode 0600, as in `testutil::audit`).
fn write_tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    dir
}

/// A copy is judged on its own: its peers do not "share" secrets with the file in use, and
/// its own weak secret is reported where it is.
#[test]
fn copies_are_configurations_of_their_own() {
    let live = "[general]\nallowguest=no\n[6001]\ntype=friend\nhost=dynamic\n\
                secret=Zq8#vT2m!Lp4@Rw9xK\n";
    let old = "[general]\nallowguest=no\n[6001]\ntype=friend\nhost=dynamic\nsecret=6001\n";
    let (dir, report) = testutil::audit(&[
        ("sip.conf", live),
        ("sip.conf.bak", live),
        ("sip.conf.2023-01-01", old),
    ]);
    assert_eq!(report.files.len(), 3, "{report:?}");
    assert!(!testutil::fired(&report, "SW-SECRET-005"), "{report:#?}");
    let related = testutil::of(&report, "SW-SECRET-003");
    assert_eq!(related.len(), 1, "{report:#?}");
    assert_eq!(
        related[0].location.file,
        dir.path().join("sip.conf.2023-01-01")
    );
}

/// A copy still reaches the dialplan in use when it has no dialplan copy of its own.
#[test]
fn a_copy_reaches_the_dialplan_in_use() {
    let (_dir, report) = testutil::audit(&[
        (
            "sip.conf.bak",
            "[general]\ncontext=public\nallowguest=yes\n",
        ),
        (
            "extensions.conf",
            "[public]\nexten => _011.,1,Dial(SIP/carrier/${EXTEN})\n",
        ),
    ]);
    let ext = testutil::of(&report, "SW-EXT-001");
    assert_eq!(ext.len(), 1, "{report:#?}");
}

/// FreePBX's pjsip parts, without the `pjsip.conf` that includes them, are one
/// configuration: the identify section in one part serves the endpoint in another.
#[test]
fn parts_without_their_main_file_are_one_configuration() {
    let endpoint = "[carrier]\ntype=endpoint\ncontext=from-pstn\nmedia_encryption=sdes\n\
                    deny=0.0.0.0/0\npermit=203.0.113.5\n";
    let identify = "[carrier]\ntype=identify\nendpoint=carrier\nmatch=203.0.113.5\n";
    let (dir, together) = testutil::audit(&[
        ("pjsip.endpoint.conf", endpoint),
        ("pjsip.identify.conf", identify),
    ]);
    assert!(!testutil::fired(&together, "SW-PJSIP-001"), "{together:#?}");
    let one_by_one = audit_paths(&[
        dir.path().join("pjsip.identify.conf"),
        dir.path().join("pjsip.endpoint.conf"),
    ])
    .expect("audit");
    assert_eq!(
        render(&one_by_one, dir.path()),
        render(&together, dir.path())
    );
    // The endpoint alone is open to anyone.
    let (_dir, alone) = testutil::audit(&[("pjsip.endpoint.conf", endpoint)]);
    assert!(testutil::fired(&alone, "SW-PJSIP-001"), "{alone:#?}");
}

/// A part that the main file includes is read there, once.
#[test]
fn included_parts_are_audited_where_they_are_included() {
    let (dir, report) = testutil::audit(&[
        (
            "sip.conf",
            "[general]\n#include sip_general_additional.conf\n#include sip_additional.conf\n",
        ),
        (
            "sip_general_additional.conf",
            "allowguest=no\nalwaysauthreject=yes\n",
        ),
        (
            "sip_additional.conf",
            "[6001]\ntype=friend\nhost=dynamic\nsecret=Zq8#vT2m!Lp4@Rw9xK\n",
        ),
    ]);
    assert_eq!(
        report.files,
        [
            dir.path().join("sip.conf"),
            dir.path().join("sip_general_additional.conf"),
            dir.path().join("sip_additional.conf"),
        ]
    );
    assert!(!testutil::fired(&report, "SW-SECRET-005"), "{report:#?}");
    assert!(!testutil::fired(&report, "SW-SIP-002"), "{report:#?}");
}

/// FreePBX includes `sip_general_additional.conf` right after `[general]`: its settings are
/// `[general]`'s even when the part is audited without `sip.conf`.
#[test]
fn settings_before_any_section_of_a_part_are_general() {
    let (dir, report) = testutil::audit(&[(
        "sip_general_additional.conf",
        "context=from-sip-external\nallowguest=yes\n",
    )]);
    let guest = testutil::of(&report, "SW-SIP-002");
    assert_eq!(guest.len(), 1, "{report:#?}");
    assert_eq!(
        guest[0].location,
        Location {
            file: dir.path().join("sip_general_additional.conf"),
            line: 2
        }
    );
}

/// A file whose name says nothing is audited by its content.
#[test]
fn files_named_otherwise_are_audited_by_content() {
    let dir = write_tree(&[
        (
            "trunks.txt",
            "[carrier]\ntype=endpoint\ncontext=from-pstn\n",
        ),
        ("sip.conf", "[carrier]\ntype=endpoint\ncontext=from-pstn\n"),
    ]);
    let report = audit_paths(&[dir.path().join("trunks.txt")]).expect("audit");
    assert!(testutil::fired(&report, "SW-PJSIP-001"), "{report:#?}");
    // In a directory only names count: trunks.txt is not picked up there.
    let report = audit_paths(&[dir.path().to_path_buf()]).expect("audit");
    assert_eq!(report.files, [dir.path().join("sip.conf")]);
}

/// `--as` says the dialect outright, over the name and the content.
#[test]
fn as_overrides_name_and_content() {
    let dir = write_tree(&[
        ("sip.conf", "[carrier]\ntype=endpoint\ncontext=from-pstn\n"),
        (
            "peers",
            "[1001]\ntype=friend\nhost=dynamic\ncontext=phones\n",
        ),
    ]);
    let by_name = audit_paths(&[dir.path().join("sip.conf")]).expect("audit");
    assert!(!testutil::fired(&by_name, "SW-PJSIP-001"), "{by_name:#?}");
    let forced =
        audit_paths_as(&[dir.path().join("sip.conf")], Some(Dialect::Pjsip)).expect("audit");
    assert!(testutil::fired(&forced, "SW-PJSIP-001"), "{forced:#?}");
    // Ambiguous content (chan_sip or chan_iax2) needs --as.
    assert!(matches!(
        audit_paths(&[dir.path().join("peers")]),
        Err(AuditError::Unrecognised { .. })
    ));
    let iax = audit_paths_as(&[dir.path().join("peers")], Some(Dialect::Iax)).expect("audit");
    assert!(
        iax.findings.iter().any(|f| f.rule.starts_with("SW-IAX-")),
        "{iax:#?}"
    );
    // --as names files, not directories.
    assert!(matches!(
        audit_paths_as(&[dir.path().to_path_buf()], Some(Dialect::Sip)),
        Err(AuditError::AsDirectory { .. })
    ));
}

/// TOML written for another program, beside a sipwarden configuration, is left alone.
#[test]
fn other_toml_in_a_directory_is_left_alone() {
    let (dir, report) = testutil::audit(&[
        ("Cargo.toml", "[package]\nname = \"x\"\n"),
        ("sipwarden.toml", "[listen]\nudp = [\"127.0.0.1:5060\"]\n"),
    ]);
    assert_eq!(report.files, [dir.path().join("sipwarden.toml")]);
}
