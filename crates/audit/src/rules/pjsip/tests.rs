use crate::rules::testutil::*;

fn pjsip(text: &str) -> crate::Report {
    audit(&[("pjsip.conf", text)]).1
}

const TLS: &str = "[tls]\ntype=transport\nprotocol=tls\nbind=0.0.0.0:5061\nmethod=tlsv1_2\n\
                   verify_server=yes\n";
const PHONE: &str = "[6001]\ntype=endpoint\nauth=6001-auth\naors=6001\nmedia_encryption=sdes\n\
                     permit=10.0.0.0/8\ndeny=0.0.0.0/0\n\
                     [6001-auth]\ntype=auth\nauth_type=md5\nusername=6001\nmd5_cred=x\n";

#[test]
fn hardened_has_no_findings() {
    let r = pjsip(&format!("{TLS}{PHONE}"));
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
}

#[test]
fn endpoint_without_auth_or_identify() {
    let r = pjsip(&format!(
        "{TLS}[6002]\ntype=endpoint\nmedia_encryption=sdes\nacl=x\n"
    ));
    assert_eq!(of(&r, "SW-PJSIP-001").len(), 1);
    let r = pjsip(&format!(
        "{TLS}[prov]\ntype=endpoint\nmedia_encryption=sdes\nacl=x\n\
         [prov-id]\ntype=identify\nendpoint=prov\nmatch=198.51.100.7\n"
    ));
    assert!(!fired(&r, "SW-PJSIP-001"));
}

#[test]
fn anonymous_endpoint() {
    let r = pjsip(&format!(
        "{TLS}[anonymous]\ntype=endpoint\ncontext=public\nmedia_encryption=sdes\nacl=x\n"
    ));
    let f = of(&r, "SW-PJSIP-002");
    assert!(f[0].message.contains("'public'"));
    assert!(!fired(&r, "SW-PJSIP-001"));
    assert!(!fired(&pjsip(&format!("{TLS}{PHONE}")), "SW-PJSIP-002"));
}

#[test]
fn no_tls_transport_on_public_bind() {
    let r = pjsip("[udp]\ntype=transport\nprotocol=udp\nbind=0.0.0.0\n");
    assert_eq!(of(&r, "SW-PJSIP-003").len(), 1);
    let r = pjsip("[udp]\ntype=transport\nprotocol=udp\nbind=192.168.0.2:5060\n");
    assert!(!fired(&r, "SW-PJSIP-003"));
    let r = pjsip(&format!(
        "[udp]\ntype=transport\nprotocol=udp\nbind=0.0.0.0\n{TLS}"
    ));
    assert!(!fired(&r, "SW-PJSIP-003"));
}

#[test]
fn old_tls_method() {
    let r = pjsip(
        "[tls]\ntype=transport\nprotocol=tls\nbind=0.0.0.0:5061\nmethod=tlsv1\nverify_server=yes\n",
    );
    assert_eq!(of(&r, "SW-PJSIP-004").len(), 1);
    assert!(!fired(&pjsip(TLS), "SW-PJSIP-004"));
}

#[test]
fn verify_server() {
    let r = pjsip("[tls]\ntype=transport\nprotocol=tls\nbind=0.0.0.0:5061\n");
    let f = of(&r, "SW-PJSIP-005");
    assert_eq!(f[0].location.line, 1, "unset: the section header");
    assert!(!fired(&pjsip(TLS), "SW-PJSIP-005"));
}

#[test]
fn media_encryption() {
    let r = pjsip(&format!("{TLS}[6001]\ntype=endpoint\nauth=a\nacl=x\n"));
    assert_eq!(of(&r, "SW-PJSIP-006").len(), 1);
    let r = pjsip(&format!(
        "{TLS}[6001]\ntype=endpoint\nauth=a\nacl=x\nmedia_encryption=no\n"
    ));
    assert_eq!(of(&r, "SW-PJSIP-006")[0].location.line, 11);
    let r = pjsip(&format!(
        "{TLS}[6001]\ntype=endpoint\nauth=a\nacl=x\nmedia_encryption=sdes\nmedia_encryption_optimistic=yes\n"
    ));
    assert!(!fired(&r, "SW-PJSIP-006"));
    assert!(fired(&r, "SW-PJSIP-007"));
    assert!(!fired(&pjsip(&format!("{TLS}{PHONE}")), "SW-PJSIP-007"));
}

#[test]
fn unauthenticated_options() {
    assert!(!fired(&pjsip(&format!("{TLS}{PHONE}")), "SW-PJSIP-008"));
    let r = pjsip(&format!(
        "{TLS}[e]\ntype=endpoint\nauth=a\nacl=x\nmedia_encryption=sdes\nallow_unauthenticated_options=yes\n"
    ));
    assert!(fired(&r, "SW-PJSIP-008"));
}

#[test]
fn max_contacts() {
    assert!(fired(
        &pjsip("[6001]\ntype=aor\nmax_contacts=50\n"),
        "SW-PJSIP-009"
    ));
    assert!(!fired(
        &pjsip("[6001]\ntype=aor\nmax_contacts=1\n"),
        "SW-PJSIP-009"
    ));
    assert!(!fired(&pjsip("[6001]\ntype=aor\n"), "SW-PJSIP-009"));
}

#[test]
fn endpoint_acl() {
    let r = pjsip(&format!(
        "{TLS}[6001]\ntype=endpoint\nauth=a\nmedia_encryption=sdes\n"
    ));
    assert_eq!(of(&r, "SW-PJSIP-010").len(), 1);
    let r = pjsip(&format!(
        "{TLS}[6001]\ntype=endpoint\nauth=a\nmedia_encryption=sdes\n[acl]\ntype=acl\ndeny=0.0.0.0/0\npermit=10.0.0.0/8\n"
    ));
    assert!(!fired(&r, "SW-PJSIP-010"));
    let r = pjsip(&format!(
        "{TLS}[lan]\ntype=endpoint\nmedia_encryption=sdes\n[lan-id]\ntype=identify\nendpoint=lan\nmatch=192.168.1.0/24\n"
    ));
    assert!(
        !fired(&r, "SW-PJSIP-010"),
        "identified by private addresses only"
    );
}

#[test]
fn wide_identify_match() {
    let r = pjsip(&format!(
        "{TLS}[prov]\ntype=endpoint\nmedia_encryption=sdes\nacl=x\n\
         [prov-id]\ntype=identify\nendpoint=prov\nmatch=198.51.100.7,0.0.0.0/0\n"
    ));
    let f = of(&r, "SW-PJSIP-011");
    assert_eq!(f.len(), 1);
    assert!(f[0].message.contains("0.0.0.0/0"));
    let r = pjsip(&format!(
        "{TLS}[prov]\ntype=endpoint\nmedia_encryption=sdes\nacl=x\n\
         [prov-id]\ntype=identify\nendpoint=prov\nmatch=198.51.100.0/24\nmatch=sip.example.net\n"
    ));
    assert!(!fired(&r, "SW-PJSIP-011"));
}

#[test]
fn missing_tls_files() {
    let r = pjsip(&format!(
        "{TLS}cert_file=/nonexistent/cert.pem\npriv_key_file=key.pem\n"
    ));
    assert_eq!(of(&r, "SW-PJSIP-012").len(), 2);
    assert!(!fired(&pjsip(TLS), "SW-PJSIP-012"));
}
