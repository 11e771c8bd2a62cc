use crate::rules::testutil::*;

fn acl(text: &str) -> crate::Report {
    audit(&[("acl.conf", text)]).1
}

/// A chan_sip peer that is only protected by `acl=<name>`, with a hardened [general].
const SIP_PEER: &str = "[general]\nallowguest=no\ntlsenable=yes\ntransport=tls\nencryption=yes\n\
                        useragent=PBX\n[prov]\ntype=peer\nhost=203.0.113.5\ninsecure=invite\n\
                        acl=office\n";

#[test]
fn whitelists_are_restrictive() {
    for text in [
        "[office]\ndeny=0.0.0.0/0.0.0.0\npermit=203.0.113.0/24\n",
        "[office]\ndeny=0.0.0.0/0\npermit=203.0.113.5,198.51.100.7\n",
        "[v6]\ndeny = ::/0\npermit = ::1/128\n",
        "[office]\npermit=!0.0.0.0/0\npermit=10.0.0.0/8\n",
        "[tpl](!)\n[general]\n[office]\ndeny=0.0.0.0/0\n",
    ] {
        let r = acl(text);
        assert!(r.findings.is_empty(), "{text}: {:#?}", r.findings);
    }
}

#[test]
fn acl_that_permits_everything() {
    // The sample's example_named_acl2: a blacklist.
    let r = acl("[bl]\npermit=0.0.0.0/0.0.0.0\ndeny=10.24.20.171\ndeny=209.16.236.1\n");
    let f = of(&r, "SW-ACL-001");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].location.line, 1);
    assert!(f[0].message.contains("[bl]"), "{}", f[0].message);
    // A permit of everything after the deny of everything undoes it.
    let r = acl("[x]\ndeny=0.0.0.0/0\npermit=192.0.2.1\npermit=0.0.0.0/0\n");
    assert_eq!(of(&r, "SW-ACL-001").len(), 1);
    // permit= alone restricts nothing: unmatched addresses are allowed.
    let r = acl("[x]\npermit=192.0.2.0/24\n");
    assert_eq!(of(&r, "SW-ACL-001").len(), 1);
    // IPv6 open in an ACL that mentions IPv6.
    let r = acl("[x]\ndeny=0.0.0.0/0\npermit=::/0\n");
    let f = of(&r, "SW-ACL-001");
    assert!(f[0].message.contains("IPv6"), "{}", f[0].message);
    // A later deny of everything closes it again.
    assert!(!fired(
        &acl("[x]\npermit=0.0.0.0/0\ndeny=0.0.0.0/0\npermit=192.0.2.1\n"),
        "SW-ACL-001"
    ));
}

#[test]
fn empty_acl() {
    let r = acl("[office]\n[other]\ndeny=0.0.0.0/0\n");
    let f = of(&r, "SW-ACL-002");
    assert_eq!(f.len(), 1);
    assert!(f[0].message.contains("[office]"));
    assert!(!fired(&r, "SW-ACL-001"), "reported once, as empty");
    // A template is not an ACL; [general] is not an ACL.
    assert!(!fired(&acl("[tpl](!)\n[general]\n"), "SW-ACL-002"));
    // Rules from a template count.
    let r = acl("[tpl](!)\ndeny=0.0.0.0/0\n[office](tpl)\npermit=192.0.2.1\n");
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
}

#[test]
fn references_to_undefined_acls() {
    let (_dir, r) = audit(&[
        (
            "acl.conf",
            "[office]\ndeny=0.0.0.0/0\npermit=203.0.113.0/24\n",
        ),
        (
            "sip.conf",
            &SIP_PEER.replace("acl=office", "acl=office,Office"),
        ),
        (
            "pjsip.conf",
            "[acl]\ntype=acl\nacl=missing\n[6001]\ntype=endpoint\nauth=6001\ncontact_acl=office\n",
        ),
        (
            "stir_shaken.conf",
            "[verification]\nx5u_acl=nowhere\nfailure_action=reject_request\n",
        ),
    ]);
    let f = of(&r, "SW-ACL-003");
    let names: Vec<&str> = f
        .iter()
        .map(|f| f.message.split(':').next().unwrap_or(""))
        .collect();
    assert_eq!(f.len(), 3, "{names:#?}");
    assert!(
        f.iter().any(|f| f.message.contains("acl=Office")),
        "case-sensitive"
    );
    assert!(f.iter().any(|f| f.message.contains("acl=missing")));
    assert!(f.iter().any(|f| f.message.contains("x5u_acl=nowhere")));
    // Undefined ACLs fail closed: the peer stays restricted by its defined one, and by the
    // undefined one too.
    assert!(
        !fired(&r, "SW-SIP-001") && !fired(&r, "SW-SIP-004"),
        "{r:#?}"
    );
    // Without acl.conf nothing is known, so nothing is undefined.
    let (_dir, r) = audit(&[("sip.conf", SIP_PEER)]);
    assert!(!fired(&r, "SW-ACL-003"));
}

#[test]
fn an_undefined_acl_alone_fails_closed() {
    let (_dir, r) = audit(&[
        ("acl.conf", "[other]\ndeny=0.0.0.0/0\n"),
        ("sip.conf", SIP_PEER),
    ]);
    assert!(fired(&r, "SW-ACL-003"));
    assert!(!fired(&r, "SW-SIP-001"), "{:#?}", r.findings);
}

#[test]
fn open_named_acls_do_not_restrict_peers() {
    // Without acl.conf, acl=office is assumed restrictive.
    let (_dir, r) = audit(&[("sip.conf", SIP_PEER)]);
    assert!(!fired(&r, "SW-SIP-001"), "{:#?}", r.findings);
    // With acl.conf saying office lets everyone in, the peer is reachable.
    let (_dir, r) = audit(&[
        ("acl.conf", "[office]\npermit=0.0.0.0/0\n"),
        ("sip.conf", SIP_PEER),
    ]);
    assert!(fired(&r, "SW-ACL-001"));
    assert!(fired(&r, "SW-SIP-001"), "{:#?}", r.findings);
    let f = of(&r, "SW-SIP-004");
    assert_eq!(f.len(), 1, "{:#?}", r.findings);
    assert!(
        f[0].message.contains("acl=office lets every address"),
        "{}",
        f[0].message
    );
    assert_eq!(f[0].location.line, 11, "the acl= line");
    // An empty ACL accepts everyone too.
    let (_dir, r) = audit(&[("acl.conf", "[office]\n"), ("sip.conf", SIP_PEER)]);
    assert!(fired(&r, "SW-SIP-001"), "{:#?}", r.findings);
    // Its own deny/permit still restricts it.
    let (_dir, r) = audit(&[
        ("acl.conf", "[office]\npermit=0.0.0.0/0\n"),
        (
            "sip.conf",
            &format!("{SIP_PEER}deny=0.0.0.0/0\npermit=203.0.113.5\n"),
        ),
    ]);
    assert!(!fired(&r, "SW-SIP-001"), "{:#?}", r.findings);
}

#[test]
fn open_named_acls_in_iax_and_pjsip() {
    let iax = "[general]\nencryption=yes\n[guest]\ntype=user\ncontext=public\nacl=office\n";
    let (_dir, r) = audit(&[("iax.conf", iax)]);
    assert!(!fired(&r, "SW-IAX-005"), "{:#?}", r.findings);
    let (_dir, r) = audit(&[("acl.conf", "[office]\n"), ("iax.conf", iax)]);
    assert!(fired(&r, "SW-IAX-005"), "{:#?}", r.findings);

    let pjsip = "[6001]\ntype=endpoint\nauth=6001\nmedia_encryption=sdes\nacl=office\n";
    let (_dir, r) = audit(&[("pjsip.conf", pjsip)]);
    assert!(!fired(&r, "SW-PJSIP-010"));
    let (_dir, r) = audit(&[
        ("acl.conf", "[office]\npermit=0.0.0.0/0.0.0.0\n"),
        ("pjsip.conf", pjsip),
    ]);
    assert!(fired(&r, "SW-PJSIP-010"), "{:#?}", r.findings);
    // A global type=acl naming only an open ACL does not restrict either.
    let global = "[acl]\ntype=acl\nacl=office\n[6001]\ntype=endpoint\nauth=6001\n";
    let (_dir, r) = audit(&[("pjsip.conf", global)]);
    assert!(!fired(&r, "SW-PJSIP-010"));
    let (_dir, r) = audit(&[("acl.conf", "[office]\n"), ("pjsip.conf", global)]);
    assert!(fired(&r, "SW-PJSIP-010"), "{:#?}", r.findings);
}

#[test]
fn lines_asterisk_rejects() {
    let r = acl("[office]\ndeny=0.0.0.0/0\npermitt=203.0.113.5\n");
    let f = of(&r, "SW-ACL-004");
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].location.line, 3);
    let r = acl("[office]\ndeny=0.0.0.0/0\npermit=203.0.113.5:5060\n");
    assert_eq!(of(&r, "SW-ACL-004").len(), 1);
    let r = acl("[office]\ndeny=0.0.0.0/0\npermit=sip.example.com\n");
    assert_eq!(of(&r, "SW-ACL-004").len(), 1);
    // A rejected file fails open: every ACL in it is open for the peers.
    let (_dir, r) = audit(&[
        ("acl.conf", "[office]\ndeny=0.0.0.0/0\n[x]\nbogus=1\n"),
        ("sip.conf", SIP_PEER),
    ]);
    assert!(fired(&r, "SW-SIP-001"), "{:#?}", r.findings);
    // Valid forms.
    let r = acl(
        "[office]\ndeny=0.0.0.0/0.0.0.0\nPermit=203.0.113.0/255.255.255.0\npermit=!10.0.0.1\n\
         deny=::/0\npermit=2001:db8::/32,::ffff:192.0.2.1\n",
    );
    assert!(!fired(&r, "SW-ACL-004"), "{:#?}", r.findings);
}
