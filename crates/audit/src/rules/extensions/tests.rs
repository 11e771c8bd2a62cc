use super::is_outbound_pattern;
use crate::rules::testutil::*;

const SIP_GUESTS: &str = "[general]\ncontext=public\n";
const SIP_NO_GUESTS: &str = "[general]\nallowguest=no\ncontext=public\n\
                             [prov]\ntype=peer\nhost=203.0.113.5\ncontext=from-trunk\n";

const DIALPLAN: &str = "[outbound]\n\
    exten => _9011.,1,GotoIf($[\"${CALLERID(num)}\" = \"\"]?bad)\n\
    same => n,Dial(SIP/prov/${EXTEN:1})\n\
    [intl]\n\
    exten => _00X.,1,Dial(PJSIP/${EXTEN}@prov)\n\
    [local]\n\
    exten => 100,1,Dial(SIP/6001)\n\
    exten => _X.,1,Voicemail(${EXTEN})\n\
    [public]\n\
    include => local\n\
    [from-trunk]\n\
    include => local\n\
    [phones]\n\
    include => outbound\n";

#[test]
fn guests_reaching_outbound_through_includes() {
    let dialplan = format!("{DIALPLAN}[public](+)\ninclude => phones\n");
    let (_d, r) = audit(&[("sip.conf", SIP_GUESTS), ("extensions.conf", &dialplan)]);
    let f = of(&r, "SW-EXT-001");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(f[0].message.contains("'_9011.'") && f[0].message.contains("phones => outbound"));
    assert_eq!(f[0].location.line, 3, "points at the Dial");
    assert_eq!(f[0].severity, crate::Severity::Critical);
}

#[test]
fn guests_reaching_only_local_extensions() {
    let (_d, r) = audit(&[("sip.conf", SIP_GUESTS), ("extensions.conf", DIALPLAN)]);
    assert!(!fired(&r, "SW-EXT-001"), "{:#?}", r.findings);
    let (_d, r) = audit(&[("sip.conf", SIP_NO_GUESTS), ("extensions.conf", DIALPLAN)]);
    assert!(!fired(&r, "SW-EXT-001"));
}

#[test]
fn pjsip_anonymous_and_iax_guest_are_guests() {
    let pj = "[anonymous]\ntype=endpoint\ncontext=intl\n";
    let (_d, r) = audit(&[("pjsip.conf", pj), ("extensions.conf", DIALPLAN)]);
    assert_eq!(of(&r, "SW-EXT-001").len(), 1);
    let iax = "[general]\nencryption=yes\n[guest]\ntype=user\ncontext=phones\n";
    let (_d, r) = audit(&[("iax.conf", iax), ("extensions.conf", DIALPLAN)]);
    assert_eq!(of(&r, "SW-EXT-001").len(), 1);
}

#[test]
fn trunks_reaching_outbound() {
    let dialplan = format!("{DIALPLAN}[from-trunk](+)\ninclude => intl\n");
    let (_d, r) = audit(&[("sip.conf", SIP_NO_GUESTS), ("extensions.conf", &dialplan)]);
    let f = of(&r, "SW-EXT-002");
    assert_eq!(f.len(), 1);
    assert!(f[0].message.contains("[prov]"));
    let (_d, r) = audit(&[("sip.conf", SIP_NO_GUESTS), ("extensions.conf", DIALPLAN)]);
    assert!(!fired(&r, "SW-EXT-002"));
    let pj = "[prov]\ntype=endpoint\ncontext=intl\n[prov-id]\ntype=identify\nendpoint=prov\nmatch=198.51.100.7\n";
    let (_d, r) = audit(&[("pjsip.conf", pj), ("extensions.conf", DIALPLAN)]);
    assert!(fired(&r, "SW-EXT-002"));
}

#[test]
fn dial_without_callerid_check() {
    let (_d, r) = audit(&[("extensions.conf", DIALPLAN)]);
    let f = of(&r, "SW-EXT-003");
    assert_eq!(f.len(), 1, "only [intl] dials out unchecked: {f:#?}");
    assert!(f[0].message.contains("[intl]"));
    assert_eq!(f[0].location.line, 5);
}

#[test]
fn outbound_patterns() {
    for p in [
        "_9011.",
        "_011.",
        "_00.",
        "_X.",
        "_.",
        "_N.",
        "_!",
        "_00X",
        "_+X",
        "_9011X/6001",
    ] {
        assert!(is_outbound_pattern(p), "{p}");
    }
    for p in ["100", "_1XX", "_6XXX", "s", "9011"] {
        assert!(!is_outbound_pattern(p), "{p}");
    }
}
