use crate::rules::testutil::*;

const GOOD_GENERAL: &str = "[general]\nallowguest=no\ntlsenable=yes\ntransport=tls\n\
                            encryption=yes\nuseragent=PBX\n";

fn sip(text: &str) -> crate::Report {
    audit(&[("sip.conf", text)]).1
}

fn with_general(rest: &str) -> crate::Report {
    sip(&format!("{GOOD_GENERAL}{rest}"))
}

#[test]
fn hardened_general_has_no_findings() {
    let r = sip(GOOD_GENERAL);
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
}

#[test]
fn insecure_invite_on_reachable_peer() {
    let r = with_general("[prov]\ntype=peer\nhost=203.0.113.5\ninsecure=port,invite\n");
    let f = of(&r, "SW-SIP-001");
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].location.line, 10);
    assert!(f[0].message.contains("[prov]"));
    let r = with_general(
        "[prov]\ntype=peer\nhost=203.0.113.5\ninsecure=port,invite\n\
         deny=0.0.0.0/0.0.0.0\npermit=203.0.113.5\n",
    );
    assert!(!fired(&r, "SW-SIP-001"));
    let r = with_general("[pbx2]\ntype=peer\nhost=192.168.1.20\ninsecure=invite\n");
    assert!(!fired(&r, "SW-SIP-001"));
    let r = with_general("[prov]\ntype=peer\nhost=203.0.113.5\ninsecure=port\n");
    assert!(!fired(&r, "SW-SIP-001"));
}

#[test]
fn allowguest_default_and_explicit() {
    let r = sip("[general]\ncontext=public\n");
    let f = of(&r, "SW-SIP-002");
    assert_eq!(f.len(), 1);
    assert!(f[0].message.contains("default yes") && f[0].message.contains("'public'"));
    let r = sip("[general]\nallowguest=yes\n");
    let f = of(&r, "SW-SIP-002");
    assert_eq!(f[0].location.line, 2);
    assert!(f[0].message.contains("'default'"));
    assert!(!fired(&sip("[general]\nallowguest=no\n"), "SW-SIP-002"));
    assert!(
        !fired(&sip("[general]\nallowguest=never\n"), "SW-SIP-002"),
        "ast_true: off"
    );
}

#[test]
fn alwaysauthreject_only_when_explicitly_off() {
    assert!(fired(&with_general("alwaysauthreject=no\n"), "SW-SIP-003"));
    assert!(
        fired(&with_general("alwaysauthreject=always\n"), "SW-SIP-003"),
        "ast_true: off"
    );
    assert!(!fired(
        &with_general("alwaysauthreject=yes\n"),
        "SW-SIP-003"
    ));
    assert!(
        !fired(&sip(GOOD_GENERAL), "SW-SIP-003"),
        "unset means yes since 1.8"
    );
}

#[test]
fn peer_without_acl() {
    let r = with_general("[prov]\ntype=peer\nhost=sip.example.net\n");
    assert_eq!(of(&r, "SW-SIP-004").len(), 1);
    let r = with_general(
        "[prov]\ntype=peer\nhost=sip.example.net\ndeny=0.0.0.0/0\npermit=0.0.0.0/0.0.0.0\n",
    );
    let f = of(&r, "SW-SIP-004");
    assert!(
        f[0].message.contains("opens it to every address"),
        "{}",
        f[0].message
    );
    let r = with_general(
        "[prov]\ntype=peer\nhost=sip.example.net\ndeny=0.0.0.0/0\npermit=198.51.100.0/24\n",
    );
    assert!(!fired(&r, "SW-SIP-004"));
    let r = with_general("[prov]\ntype=peer\nhost=sip.example.net\nacl=providers\n");
    assert!(!fired(&r, "SW-SIP-004"));
}

#[test]
fn friend_dynamic_without_acl_through_templates() {
    let r = with_general("[phone](!)\ntype=friend\nhost=dynamic\n[6001](phone)\n");
    let f = of(&r, "SW-SIP-005");
    assert_eq!(f.len(), 1, "the template itself is not a peer");
    assert!(f[0].message.contains("[6001]"));
    assert_eq!(f[0].location.line, 9, "points at the template's host= line");
    assert!(!fired(&r, "SW-SIP-004"), "reported once, as SW-SIP-005");
    let r = with_general(
        "[6001]\ntype=friend\nhost=dynamic\ndeny=0.0.0.0/0.0.0.0\npermit=10.0.0.0/8\n",
    );
    assert!(!fired(&r, "SW-SIP-005"));
}

#[test]
fn no_tls() {
    let r = sip("[general]\nallowguest=no\ntransport=udp\n");
    let f = of(&r, "SW-SIP-006");
    assert_eq!(f[0].location.line, 3);
    assert!(!fired(&sip(GOOD_GENERAL), "SW-SIP-006"));
}

#[test]
fn no_srtp_in_general_or_peer() {
    assert!(fired(&sip("[general]\nallowguest=no\n"), "SW-SIP-007"));
    let r = with_general("[p]\ntype=peer\nhost=10.0.0.2\nencryption=no\n");
    let f = of(&r, "SW-SIP-007");
    assert_eq!(f.len(), 1);
    assert!(f[0].message.contains("[p]"));
    assert!(!fired(&sip(GOOD_GENERAL), "SW-SIP-007"));
}

#[test]
fn old_tls_method() {
    assert!(fired(
        &with_general("tlsclientmethod=sslv3\n"),
        "SW-SIP-008"
    ));
    assert!(fired(
        &with_general("tlsclientmethod=tlsv1\n"),
        "SW-SIP-008"
    ));
    assert!(!fired(
        &with_general("tlsclientmethod=tlsv1_2\n"),
        "SW-SIP-008"
    ));
}

#[test]
fn dont_verify_server() {
    assert!(fired(
        &with_general("tlsdontverifyserver=yes\n"),
        "SW-SIP-009"
    ));
    assert!(!fired(
        &with_general("tlsdontverifyserver=no\n"),
        "SW-SIP-009"
    ));
}

#[test]
fn weak_ciphers() {
    for weak in [
        "ALL",
        "RC4-SHA",
        "DES-CBC3-SHA",
        "EXP-RC4-MD5",
        "AES128-SHA:NULL-SHA",
    ] {
        assert!(
            fired(&with_general(&format!("tlscipher={weak}\n")), "SW-SIP-010"),
            "{weak}"
        );
    }
    let ok = "tlscipher=ECDHE+AESGCM:!aNULL:!eNULL:!RC4:!3DES\n";
    assert!(!fired(&with_general(ok), "SW-SIP-010"));
}

#[test]
fn extern_and_srv() {
    let r = with_general("externip=203.0.113.1\nsrvlookup=yes\n");
    assert_eq!(of(&r, "SW-SIP-011").len(), 2);
    assert!(!fired(&with_general("srvlookup=no\n"), "SW-SIP-011"));
}

#[test]
fn useragent() {
    assert!(
        fired(&sip("[general]\nallowguest=no\n"), "SW-SIP-012"),
        "unset: default has the version"
    );
    assert!(fired(
        &with_general("useragent=Asterisk PBX 16.2.1\n"),
        "SW-SIP-012"
    ));
    assert!(fired(&with_general("useragent=MyPBX 2.1\n"), "SW-SIP-012"));
    assert!(!fired(&sip(GOOD_GENERAL), "SW-SIP-012"));
}

#[test]
fn missing_tls_files() {
    let r = with_general("tlscertfile=keys/asterisk.pem\ntlsprivatekey=/nonexistent/key.pem\n");
    let f = of(&r, "SW-SIP-013");
    assert_eq!(f.len(), 2);
    let (_dir, r) = audit(&[
        ("sip.conf", &format!("{GOOD_GENERAL}tlscertfile=cert.pem\n")),
        ("cert.pem", "not really a certificate\n"),
    ]);
    assert!(!fired(&r, "SW-SIP-013"));
}
