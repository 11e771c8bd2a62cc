//! RFC 4475 torture messages, each handled as the corpus MANIFEST.tsv says.
//!
//! The corpus is committed byte-exact under tests/data/rfc4475 (SHA-256 checked here, so a
//! line-ending conversion by some tool cannot silently weaken the test).

use std::path::PathBuf;

use sha2::{Digest, Sha256};
use sipwarden_sip::{Decision, Message, Policy, decision_for_parse_error, validate};

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/rfc4475")
}

struct Case {
    file: String,
    sha256: String,
    valid: bool,
    expected: String,
}

fn manifest() -> Vec<Case> {
    let text = std::fs::read_to_string(data_dir().join("MANIFEST.tsv")).unwrap();
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Case {
                file: f[0].to_owned(),
                sha256: f[1].to_owned(),
                valid: f[3] == "valid",
                expected: f[4].to_owned(),
            }
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn status_of(d: &Decision) -> Option<u16> {
    match d {
        Decision::Reject { status, .. } => Some(status.as_u16()),
        _ => None,
    }
}

#[test]
fn corpus_is_byte_exact() {
    let cases = manifest();
    assert_eq!(cases.len(), 49);
    for c in &cases {
        let bytes = std::fs::read(data_dir().join(&c.file)).unwrap();
        assert_eq!(hex(&Sha256::digest(&bytes)), c.sha256, "{} changed", c.file);
    }
}

#[test]
fn every_torture_message_is_handled_as_listed() {
    let policy = Policy::default();
    let mut checked = 0;
    for c in manifest() {
        let bytes = std::fs::read(data_dir().join(&c.file)).unwrap();
        let parsed = Message::parse(&bytes);
        let decision = match &parsed {
            Ok(m) => validate(m, &policy),
            Err(e) => decision_for_parse_error(e),
        };
        let ctx = format!(
            "{}: expected {:?}, got {:?} / {:?}",
            c.file,
            c.expected,
            decision,
            parsed.as_ref().err()
        );
        let exp = c.expected.as_str();
        if c.valid {
            // Valid messages parse, and serialise back byte for byte (dblreq: the first
            // message of the datagram, the trailing bytes discarded).
            let m = parsed.as_ref().expect(&ctx);
            let out = m.to_bytes();
            assert!(bytes.starts_with(&out), "{ctx}: round trip differs");
            if c.file == "dblreq.dat" {
                assert!(
                    out.len() < bytes.len(),
                    "{ctx}: trailing request not discarded"
                );
            } else {
                assert_eq!(out.len(), bytes.len(), "{ctx}: round trip length");
            }
        }
        match exp {
            e if e.starts_with("parse")
                || e == "accept"
                || e.starts_with("handle first request") =>
            {
                assert_eq!(decision, Decision::Accept, "{ctx}");
            }
            e if e.starts_with("drop") => {
                assert!(matches!(decision, Decision::Drop { .. }), "{ctx}")
            }
            "483 at proxy" => assert_eq!(status_of(&decision), Some(483), "{ctx}"),
            "501 (400 acceptable)" => {
                assert!(matches!(status_of(&decision), Some(400 | 501)), "{ctx}")
            }
            "reject or tolerate-and-normalise" => {
                assert_eq!(status_of(&decision), Some(400), "{ctx}")
            }
            "400 where Date matters" => assert_eq!(status_of(&decision), Some(400), "{ctx}"),
            "420" => {
                let Decision::Reject {
                    status, headers, ..
                } = &decision
                else {
                    panic!("{ctx}")
                };
                assert_eq!(status.as_u16(), 420, "{ctx}");
                let unsupported = &headers[0].1;
                for tag in [
                    "nothingSupportsThis",
                    "nothingSupportsThisEither",
                    "noProxiesSupportThis",
                    "norDoAnyProxiesSupportThis",
                ] {
                    assert!(unsupported.contains(tag), "{ctx}: {unsupported}");
                }
            }
            "415" => {
                let Decision::Reject {
                    status, headers, ..
                } = &decision
                else {
                    panic!("{ctx}")
                };
                assert_eq!(status.as_u16(), 415, "{ctx}");
                assert!(headers.iter().any(|(h, v)| h.as_str() == Some("Accept") && v.contains("application/sdp")), "{ctx}");
            }
            code => {
                let code: u16 = code
                    .parse()
                    .unwrap_or_else(|_| panic!("unknown expectation {ctx}"));
                assert_eq!(status_of(&decision), Some(code), "{ctx}");
            }
        }
        checked += 1;
    }
    assert_eq!(checked, 49);
}
