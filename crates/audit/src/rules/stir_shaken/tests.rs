use crate::rules::testutil::*;

fn stir(text: &str) -> crate::Report {
    audit(&[("stir_shaken.conf", text)]).1
}

const GOOD_VERIFICATION: &str = "[verification]\nfailure_action=reject_request\n";

#[test]
fn hardened_file_has_no_findings() {
    let r = stir(
        "[verification]\nfailure_action=reject_request\nmax_iat_age=60\nmax_date_header_age=15\n\
         x5u_deny=0.0.0.0/0\nx5u_permit=203.0.113.0/24\n\
         [attestation]\ncheck_tn_cert_public_url=yes\npublic_cert_url=https://example.com/c.pem\n\
         [18005551515]\ntype=tn\npublic_cert_url=HTTPS://example.com/t.pem\n\
         [prov]\ntype=profile\nendpoint_behavior=on\n",
    );
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    // Nothing active: nothing to report.
    assert!(
        stir("; [verification]\n;failure_action=continue\n")
            .findings
            .is_empty()
    );
}

#[test]
fn failure_action_continue() {
    let r = stir("[verification]\nfailure_action=continue\n");
    let f = of(&r, "SW-STIR-001");
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].location.line, 2);
    let r = stir("[verification]\ncurl_timeout=5\n");
    let f = of(&r, "SW-STIR-001");
    assert_eq!(f.len(), 1, "default continue");
    assert_eq!(f[0].location.line, 1);
    assert!(f[0].message.contains("default continue"));
    // A profile that verifies, without [verification]: the default applies to it.
    let r = stir("[p]\ntype=profile\nendpoint_behavior=verify\n");
    assert_eq!(of(&r, "SW-STIR-001").len(), 1);
    // A profile overriding a good [verification].
    let r = stir(&format!(
        "{GOOD_VERIFICATION}[p]\ntype=profile\nendpoint_behavior=on\n\
         failure_action=continue_return_reason\n"
    ));
    let f = of(&r, "SW-STIR-001");
    assert_eq!(f.len(), 1);
    assert!(f[0].message.contains("[p]"));
    // Not reported: reject_request; verification disabled; a profile that only attests; a
    // profile inheriting [verification]'s value (reported once, there).
    assert!(!fired(&stir(GOOD_VERIFICATION), "SW-STIR-001"));
    assert!(!fired(
        &stir("[verification]\nglobal_disable=yes\n[p]\ntype=profile\nendpoint_behavior=on\n"),
        "SW-STIR-001"
    ));
    assert!(!fired(
        &stir("[p]\ntype=profile\nendpoint_behavior=attest\nfailure_action=continue\n"),
        "SW-STIR-001"
    ));
    let r = stir("[verification]\n[p]\ntype=profile\nendpoint_behavior=on\n");
    assert_eq!(of(&r, "SW-STIR-001").len(), 1);
}

#[test]
fn relaxed_x5u_restrictions() {
    let r = stir(&format!(
        "{GOOD_VERIFICATION}relax_x5u_port_scheme_restrictions=yes\n\
         relax_x5u_path_restrictions=yes\n"
    ));
    assert_eq!(of(&r, "SW-STIR-002")[0].location.line, 3);
    assert_eq!(of(&r, "SW-STIR-003")[0].location.line, 4);
    let r = stir(&format!(
        "{GOOD_VERIFICATION}relax_x5u_port_scheme_restrictions=no\n\
         relax_x5u_path_restrictions=no\n"
    ));
    assert!(!fired(&r, "SW-STIR-002") && !fired(&r, "SW-STIR-003"));
    // On a profile that does not verify, the setting is never used.
    let r = stir("[p]\ntype=profile\nendpoint_behavior=attest\nrelax_x5u_path_restrictions=yes\n");
    assert!(!fired(&r, "SW-STIR-003"));
}

#[test]
fn x5u_permit_of_internal_networks() {
    // The sample's "for internal testing" lines.
    let r = stir(&format!(
        "{GOOD_VERIFICATION}x5u_deny=0.0.0.0/0.0.0.0\nx5u_permit=127.0.0.0/8\n\
         x5u_permit=192.168.100.0/24\n"
    ));
    assert_eq!(of(&r, "SW-STIR-004").len(), 2);
    let r = stir(&format!("{GOOD_VERIFICATION}x5u_permit=203.0.113.7\n"));
    assert!(!fired(&r, "SW-STIR-004"));
}

#[test]
fn date_header_and_replay_window() {
    let r = stir(&format!(
        "{GOOD_VERIFICATION}ignore_sip_date_header=yes\nmax_iat_age=300\n\
         max_date_header_age=61\n"
    ));
    assert_eq!(of(&r, "SW-STIR-005").len(), 1);
    assert_eq!(of(&r, "SW-STIR-006").len(), 2);
    let r = stir(&format!(
        "{GOOD_VERIFICATION}ignore_sip_date_header=no\nmax_iat_age=60\n"
    ));
    assert!(!fired(&r, "SW-STIR-005") && !fired(&r, "SW-STIR-006"));
}

#[test]
fn public_cert_url_must_be_https() {
    let r = stir(
        "[attestation]\ncheck_tn_cert_public_url=yes\npublic_cert_url=http://example.com/c.pem\n\
         [1800]\ntype=tn\npublic_cert_url=example.com/t.pem\n",
    );
    let f = of(&r, "SW-STIR-007");
    assert_eq!(f.len(), 2, "{f:#?}");
    assert_eq!(f[0].severity, crate::Severity::Medium);
    assert_eq!(f[1].severity, crate::Severity::Low, "not a URL at all");
    // Attestation disabled: nothing is signed with it.
    let r = stir("[attestation]\nglobal_disable=yes\npublic_cert_url=http://example.com/c.pem\n");
    assert!(!fired(&r, "SW-STIR-007"));
}

#[test]
fn tn_cert_url_not_checked() {
    let r = stir("[attestation]\npublic_cert_url=https://example.com/c.pem\n");
    let f = of(&r, "SW-STIR-008");
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].location.line, 1);
    let r = stir("[attestation]\ncheck_tn_cert_public_url=no\n");
    assert_eq!(of(&r, "SW-STIR-008")[0].location.line, 2);
    assert!(!fired(
        &stir("[attestation]\ncheck_tn_cert_public_url=yes\n"),
        "SW-STIR-008"
    ));
}

#[test]
fn referenced_files() {
    let r = stir(
        "[attestation]\ncheck_tn_cert_public_url=yes\nprivate_key_file=/nonexistent-dir/k.pem\n\
         [verification]\nfailure_action=reject_request\nca_file=missing-ca.pem\n",
    );
    let f = of(&r, "SW-STIR-009");
    assert_eq!(f.len(), 2, "{f:#?}");
    assert!(f[0].message.contains("private_key_file"));

    // An existing key readable by others; an existing file that holds no certificate.
    use std::os::unix::fs::PermissionsExt;
    let (dir, _) = audit(&[]);
    let key = dir.path().join("k.pem");
    std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\n").expect("write");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    std::fs::write(dir.path().join("ca.pem"), "not a certificate\n").expect("write");
    std::fs::write(
        dir.path().join("stir_shaken.conf"),
        "[attestation]\ncheck_tn_cert_public_url=yes\nprivate_key_file=k.pem\n\
         [verification]\nfailure_action=reject_request\nca_file=ca.pem\n",
    )
    .expect("write");
    std::fs::set_permissions(
        dir.path().join("stir_shaken.conf"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    let r = crate::audit_paths(&[dir.path().to_path_buf()]).expect("audit");
    assert!(!fired(&r, "SW-STIR-009"), "{:#?}", r.findings);
    let rules: Vec<&str> = r.findings.iter().map(|f| f.rule).collect();
    assert_eq!(rules.len(), 2, "{:#?}", r.findings);
    assert!(r.findings.iter().all(|f| f.rule.starts_with("SW-FILE-")));
    assert!(r.findings.iter().any(|f| f.location.line == 3));
}
