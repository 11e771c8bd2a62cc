//! Dispatch, and the reports on Asterisk's own sample files (snapshots, each finding reviewed by
//! hand against the sample).

use std::path::{Path, PathBuf};

use super::testutil::{self, render};
use super::*;

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

#[test]
fn unknown_file_names_are_refused() {
    let dir = corpus_dir();
    match audit_paths(&[dir.join("SOURCES.md")]) {
        Err(AuditError::Parse { reason, .. }) => {
            assert!(
                reason.contains("don't know how to audit this file"),
                "{reason}"
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
fn kinds_by_name() {
    assert_eq!(
        kind_of(Path::new("/etc/asterisk/sip.conf")),
        Some(Kind::Sip)
    );
    assert_eq!(kind_of(Path::new("pjsip.conf.sample")), Some(Kind::Pjsip));
    assert_eq!(kind_of(Path::new("sipwarden.toml")), Some(Kind::Toml));
    assert_eq!(kind_of(Path::new("acl.conf.sample")), Some(Kind::Acl));
    assert_eq!(
        kind_of(Path::new("/etc/asterisk/stir_shaken.conf")),
        Some(Kind::StirShaken)
    );
    assert_eq!(kind_of(Path::new("extensions.ael")), None);
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
