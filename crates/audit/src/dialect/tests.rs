use super::*;

fn named(name: &str) -> Option<(Dialect, bool, String)> {
    by_name(Path::new("/etc/asterisk").join(name).as_path()).map(|n| (n.dialect, n.main, n.copy))
}

#[test]
fn asterisk_and_sipwarden_names() {
    use Dialect::*;
    for (name, dialect) in [
        ("sip.conf", Sip),
        ("pjsip.conf", Pjsip),
        ("iax.conf", Iax),
        ("extensions.conf", Extensions),
        ("acl.conf", Acl),
        ("stir_shaken.conf", StirShaken),
        ("sipwarden.toml", Sipwarden),
        ("accounts.toml", Sipwarden),
        ("SIP.CONF", Sip),
    ] {
        assert_eq!(named(name), Some((dialect, true, String::new())), "{name}");
    }
}

/// The parts FreePBX writes and includes, and the splits admins make.
#[test]
fn freepbx_parts_and_splits_by_family() {
    use Dialect::*;
    for (name, dialect) in [
        ("sip_additional.conf", Sip),
        ("sip_custom.conf", Sip),
        ("sip_custom_post.conf", Sip),
        ("sip_general_additional.conf", Sip),
        ("sip_general_custom.conf", Sip),
        ("sip_nat.conf", Sip),
        ("sip_registrations.conf", Sip),
        ("sip_registrations_custom.conf", Sip),
        ("sip-trunks.conf", Sip),
        ("pjsip.endpoint.conf", Pjsip),
        ("pjsip.auth.conf", Pjsip),
        ("pjsip.aor.conf", Pjsip),
        ("pjsip.transports.conf", Pjsip),
        ("pjsip.registration.conf", Pjsip),
        ("pjsip.identify.conf", Pjsip),
        ("pjsip_custom.conf", Pjsip),
        ("pjsip_custom_post.conf", Pjsip),
        ("pjsip.endpoint_custom_post.conf", Pjsip),
        ("pjsip-trunks.conf", Pjsip),
        ("iax_additional.conf", Iax),
        ("iax_custom.conf", Iax),
        ("iax_general_additional.conf", Iax),
        ("iax_registrations.conf", Iax),
        ("extensions_additional.conf", Extensions),
        ("extensions_custom.conf", Extensions),
        ("extensions_override_freepbx.conf", Extensions),
        ("acl_custom.conf", Acl),
    ] {
        assert_eq!(named(name), Some((dialect, false, String::new())), "{name}");
    }
}

#[test]
fn copies_keep_their_family_and_say_which_copy() {
    use Dialect::*;
    for (name, dialect, main, copy) in [
        ("sip.conf.bak", Sip, true, ".bak"),
        ("sip.conf.sample", Sip, true, ".sample"),
        ("sip.conf~", Sip, true, "~"),
        ("sip.conf.2024-05-01", Sip, true, ".2024-05-01"),
        ("sip.conf-old", Sip, true, "-old"),
        ("pjsip.conf.orig", Pjsip, true, ".orig"),
        ("pjsip.endpoint.conf.bak", Pjsip, false, ".bak"),
        (
            "extensions_custom.conf.dpkg-old",
            Extensions,
            false,
            ".dpkg-old",
        ),
        ("sipwarden.toml.bak", Sipwarden, true, ".bak"),
    ] {
        assert_eq!(
            named(name),
            Some((dialect, main, copy.to_owned())),
            "{name}"
        );
    }
}

#[test]
fn names_that_say_nothing_or_another_dialect() {
    for name in [
        "sip_notify.conf",
        "pjsip_notify.conf",
        "pjsip_wizard.conf",
        "sipwarden.conf",
        "iaxprov.conf",
        "manager.conf",
        "extensions.ael",
        "extensions.lua",
        "sip.conf.gz",
        "sip.conf.tar.gz",
        "sipconf",
        "trunks.txt",
        "my-pjsip.conf",
        ".conf",
        "README",
    ] {
        assert_eq!(named(name), None, "{name}");
    }
}

#[test]
fn dialect_names_for_as() {
    for d in Dialect::ALL {
        assert_eq!(Dialect::parse(d.name()), Some(d));
    }
    assert_eq!(Dialect::parse("STIR_SHAKEN"), Some(Dialect::StirShaken));
    assert_eq!(Dialect::parse("ini"), None);
}

#[test]
fn content_names_the_dialect() {
    use Dialect::*;
    for (text, dialect) in [
        ("[6001]\ntype=endpoint\naors=6001\nauth=6001\n", Pjsip),
        ("[t](!)\ntype=auth\nauth_type=userpass\n", Pjsip),
        (
            "[general]\ncontext=public\nallowguest=yes\n\n[1001]\ntype=friend\nhost=dynamic\n",
            Sip,
        ),
        (
            "[carrier]\ntype=peer\nhost=203.0.113.5\ninsecure=port,invite\n",
            Sip,
        ),
        (
            "[general]\nbandwidth=low\nrequirecalltoken=yes\n[guest]\ntype=user\n",
            Iax,
        ),
        (
            "[from-pstn]\nexten => _X.,1,Dial(SIP/${EXTEN})\n same => n,Hangup()\n",
            Extensions,
        ),
        ("[ctx]\ninclude => other\n", Extensions),
        ("[office]\ndeny=0.0.0.0/0.0.0.0\npermit=10.0.0.0/8\n", Acl),
        (
            "[attestation]\nprivate_key_file=/k.pem\npublic_cert_url=https://x/c.pem\nattest_level=A\n",
            StirShaken,
        ),
        ("[listen]\nudp = [\"127.0.0.1:5060\"]\n", Sipwarden),
        ("realm = \"pbx\"\n", Sipwarden),
        ("# sipwarden\n[accounts]\nfile = \"a.toml\"\n", Sipwarden),
    ] {
        assert_eq!(by_content(text), Ok(dialect), "{text}");
    }
}

/// A guess would audit the file against the wrong checklist and call it clean.
#[test]
fn content_that_does_not_decide() {
    for text in [
        "",
        "; only a comment\n",
        "[general]\nenabled=yes\nport=5038\n",
        "hello world\n",
        "[package]\nname = \"x\"\n",
    ] {
        assert_eq!(by_content(text), Err(Undecided::NoEvidence), "{text}");
    }
    let shared = "[1001]\ntype=friend\nhost=dynamic\nsecret=x\ncontext=phones\n";
    assert_eq!(
        by_content(shared),
        Err(Undecided::Ambiguous(vec![Dialect::Sip, Dialect::Iax]))
    );
    assert_eq!(
        by_content(shared).unwrap_err().to_string(),
        "its content could be sip.conf or iax.conf"
    );
    // permit/deny beside other settings is a peer's ACL, not acl.conf.
    assert_ne!(
        by_content("[x]\ntype=friend\nnat=yes\ndeny=0.0.0.0/0\n"),
        Ok(Dialect::Acl)
    );
}

#[test]
fn other_toml_is_told_from_sipwarden_toml() {
    assert!(is_other_toml("[package]\nname = \"x\"\n"));
    assert!(!is_other_toml("[listen]\nudp = []\n"));
    assert!(!is_other_toml("[listen]\nudp = []\n[typo]\nx = 1\n"));
    assert!(!is_other_toml(""));
    assert!(!is_other_toml("not toml = = ="));
}
