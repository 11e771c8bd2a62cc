//! The SARIF output validates against the official SARIF 2.1.0 JSON Schema (vendored under
//! `tests/data/`, see its README), and the validator rejects what is not SARIF: otherwise a
//! passing test would prove nothing.

use std::path::{Path, PathBuf};

use serde_json::Value;
use sipwarden_audit::{Finding, Location, Report, Severity, audit_paths, output};

fn validator() -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sarif-schema-2.1.0.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

fn errors(v: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    v.iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// A report from real rules (a weak sipwarden config) plus whole-file findings.
fn report() -> (tempfile::TempDir, Report) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("weak config.toml");
    std::fs::write(
        &cfg,
        "[listen]\nudp = [\"0.0.0.0:5060\"]\n\n[admin]\nlisten = \"0.0.0.0:8080\"\n\n\
         [[trunk]]\nname = \"carrier\"\nnetworks = [\"203.0.113.0/24\"]\n\
         proxy = \"sip:203.0.113.5\"\nusername = \"acct123\"\n\
         danger_password = \"acct123\"\n\n[scanner]\nenabled = false\n",
    )
    .unwrap();
    let mut r = audit_paths(&[cfg]).unwrap();
    r.findings.push(Finding {
        rule: "SW-FILE-001",
        severity: Severity::High,
        message: "private key /etc/ssl/private/key.pem has mode 0644".into(),
        location: Location {
            file: PathBuf::from("/etc/ssl/private/key.pem"),
            line: 0,
        },
        fix: "chmod 600".into(),
    });
    r.normalise();
    (dir, r)
}

#[test]
fn sarif_output_is_valid_sarif_2_1_0() {
    let (_dir, r) = report();
    assert!(r.findings.len() >= 8, "{:#?}", r.findings);
    let levels: Vec<Severity> = r.findings.iter().map(|f| f.severity).collect();
    for s in [Severity::Critical, Severity::High, Severity::Medium] {
        assert!(levels.contains(&s), "{levels:?}");
    }
    let v = validator();
    let sarif = output::sarif(&r);
    assert_eq!(errors(&v, &sarif), Vec::<String>::new());
    // Through text, as a consumer reads it.
    let reparsed: Value = serde_json::from_str(&sarif.to_string()).unwrap();
    assert!(v.is_valid(&reparsed));
    // An empty report is valid SARIF too.
    assert!(v.is_valid(&output::sarif(&Report::default())));
}

#[test]
fn the_validator_rejects_invalid_sarif() {
    let (_dir, r) = report();
    let v = validator();
    let good = output::sarif(&r);
    let mut bad_level = good.clone();
    bad_level["runs"][0]["results"][0]["level"] = "critical".into();
    assert!(!errors(&v, &bad_level).is_empty());
    let mut bad_version = good.clone();
    bad_version["version"] = "2.0.0".into();
    assert!(!v.is_valid(&bad_version));
    let mut bad_line = good.clone();
    bad_line["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"] =
        0.into();
    assert!(!v.is_valid(&bad_line));
    let mut unknown = good;
    unknown["runs"][0]["results"][0]["severity"] = "high".into();
    assert!(!v.is_valid(&unknown));
}
