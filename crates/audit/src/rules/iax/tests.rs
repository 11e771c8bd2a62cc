use crate::rules::testutil::*;

fn iax(text: &str) -> crate::Report {
    audit(&[("iax.conf", text)]).1
}

const GENERAL: &str = "[general]\nencryption=yes\n";

#[test]
fn hardened_has_no_findings() {
    let r = iax(&format!(
        "{GENERAL}[6001]\ntype=friend\nhost=dynamic\nsecret=Zq8#vT2m!Lp4@Rw9xK\n\
         deny=0.0.0.0/0.0.0.0\npermit=10.0.0.0/8\n"
    ));
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
}

#[test]
fn dynamic_without_acl() {
    let r = iax(&format!(
        "{GENERAL}[6001]\ntype=friend\nhost=dynamic\nsecret=Zq8#vT2m!Lp4@Rw9xK\n"
    ));
    assert_eq!(of(&r, "SW-IAX-001").len(), 1);
    let r = iax(&format!(
        "{GENERAL}[6001]\ntype=friend\nhost=dynamic\nsecret=Zq8#vT2m!Lp4@Rw9xK\nacl=office\n"
    ));
    assert!(!fired(&r, "SW-IAX-001"));
}

#[test]
fn calltoken() {
    assert!(fired(
        &iax(&format!("{GENERAL}requirecalltoken=no\n")),
        "SW-IAX-002"
    ));
    let r = iax(&format!(
        "{GENERAL}[t]\ntype=peer\nhost=203.0.113.9\nrequirecalltoken=no\n"
    ));
    assert!(fired(&r, "SW-IAX-002"));
    assert!(!fired(
        &iax(&format!("{GENERAL}requirecalltoken=yes\n")),
        "SW-IAX-002"
    ));
}

#[test]
fn encryption() {
    assert!(fired(&iax("[general]\n"), "SW-IAX-003"));
    assert!(fired(&iax("[general]\nencryption=no\n"), "SW-IAX-003"));
    let r = iax(&format!(
        "{GENERAL}[t]\ntype=peer\nhost=203.0.113.9\nencryption=no\n"
    ));
    assert!(fired(&r, "SW-IAX-003"));
    assert!(!fired(&iax("[general]\nencryption=aes128\n"), "SW-IAX-003"));
}

#[test]
fn plaintext_auth() {
    let r = iax(&format!(
        "{GENERAL}[u]\ntype=user\nauth=md5,plaintext\nsecret=Zq8#vT2m!Lp4@Rw9xK\n"
    ));
    assert_eq!(of(&r, "SW-IAX-004").len(), 1);
    let r = iax(&format!(
        "{GENERAL}[u]\ntype=user\nauth=md5\nsecret=Zq8#vT2m!Lp4@Rw9xK\n"
    ));
    assert!(!fired(&r, "SW-IAX-004"));
}

#[test]
fn guest_user() {
    let r = iax(&format!("{GENERAL}[guest]\ntype=user\ncontext=public\n"));
    let f = of(&r, "SW-IAX-005");
    assert_eq!(f.len(), 1);
    assert!(f[0].message.contains("'public'"));
    let r = iax(&format!(
        "{GENERAL}[iaxtel]\ntype=user\nauth=rsa\ninkeys=iaxtel\n"
    ));
    assert!(!fired(&r, "SW-IAX-005"));
}
