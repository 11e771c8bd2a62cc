//! chan_sip (`sip.conf`): guests, authentication bypasses, ACLs, TLS and SRTP, and what the
//! server tells scanners about itself.
//!
//! Peers are the non-template sections with `type=peer|friend|user`; settings are read with
//! templates applied. Defaults are chan_sip's (1.8 and later): `allowguest=yes`,
//! `alwaysauthreject=yes`, `tlsenable=no`, `encryption=no`, `context=default`, User-Agent
//! `Asterisk PBX <version>`.

use crate::asterisk::{ConfFile, View};
use crate::rules::acl::NamedAcls;
use crate::rules::common::{
    Referenced, acl_is_restrictive, at, check_referenced, file_name, finding, finding_at,
    host_is_private, is_old_tls_method, is_true,
};
use crate::{Finding, Location, Rule, Severity};

const INSECURE_INVITE: Rule = Rule {
    id: "SW-SIP-001",
    severity: Severity::High,
    title: "a peer reachable from the internet skips authentication for INVITE (insecure=invite)",
    fix: "Remove `insecure=invite` (and `port,invite`); if a provider cannot authenticate, pin \
          it with `host=<its address>` plus `deny=0.0.0.0/0.0.0.0` and `permit=<its network>`.",
};
/// Reported when unset too, because chan_sip defaults to yes. SW-EXT-001 escalates it when
/// the guest context reaches an outbound extension.
const ALLOWGUEST: Rule = Rule {
    id: "SW-SIP-002",
    severity: Severity::High,
    title: "unauthenticated calls are accepted (allowguest is yes, the default)",
    fix: "Set `allowguest=no` in [general]; if guest calls are wanted, give them a `context=` \
          that only reaches local extensions.",
};
/// Only an explicit `no` is reported: unset means yes since Asterisk 1.8 (SPEC §2.6), and an
/// older Asterisk has worse problems than this one.
const ALWAYSAUTHREJECT: Rule = Rule {
    id: "SW-SIP-003",
    severity: Severity::High,
    title: "alwaysauthreject=no lets scanners tell existing users from unknown ones",
    fix: "Set `alwaysauthreject=yes` in [general] (the default since Asterisk 1.8), so unknown \
          users get the same challenge and 403 as a wrong password.",
};
const NO_ACL: Rule = Rule {
    id: "SW-SIP-004",
    severity: Severity::Medium,
    title: "a peer accepts traffic from any address (no deny/permit)",
    fix: "Add `deny=0.0.0.0/0.0.0.0` and `permit=<network>/<mask>` for the networks the device \
          or provider uses (or `acl=<name>` from acl.conf).",
};
const FRIEND_DYNAMIC: Rule = Rule {
    id: "SW-SIP-005",
    severity: Severity::High,
    title: "a type=friend peer with host=dynamic can register and call from anywhere",
    fix: "Restrict where it may register from: `deny=0.0.0.0/0.0.0.0` and \
          `permit=<its network>`, and give it a strong secret.",
};
const NO_TLS: Rule = Rule {
    id: "SW-SIP-006",
    severity: Severity::Medium,
    title: "SIP signalling is not encrypted (no TLS transport)",
    fix: "Set `tlsenable=yes` with `tlscertfile=`/`tlsprivatekey=`, add `tls` to `transport=` \
          and have phones and trunks use it.",
};
const NO_SRTP: Rule = Rule {
    id: "SW-SIP-007",
    severity: Severity::Medium,
    title: "media is not encrypted (encryption is not yes)",
    fix: "Set `encryption=yes` (SRTP) in [general] or on each peer, over a TLS transport so the \
          keys are not sent in the clear.",
};
const OLD_TLS: Rule = Rule {
    id: "SW-SIP-008",
    severity: Severity::Medium,
    title: "TLS older than 1.2 is allowed (tlsclientmethod)",
    fix: "Remove `tlsclientmethod` or set it to a TLS 1.2+ method; SSLv2/SSLv3/TLS 1.0/1.1 are \
          broken or deprecated.",
};
const NO_VERIFY: Rule = Rule {
    id: "SW-SIP-009",
    severity: Severity::Medium,
    title: "outbound TLS does not verify the server (tlsdontverifyserver=yes)",
    fix: "Set `tlsdontverifyserver=no` and `tlscafile=` to the CAs that sign your providers' \
          certificates.",
};
const WEAK_CIPHER: Rule = Rule {
    id: "SW-SIP-010",
    severity: Severity::Medium,
    title: "tlscipher allows weak ciphers",
    fix: "Set `tlscipher=` to a modern list (e.g. `ECDHE+AESGCM:ECDHE+CHACHA20`) with no ALL, \
          RC4, DES/3DES, NULL, EXPORT or MD5 suites.",
};
/// Info only: these settings are often needed behind NAT; the finding is a reminder of what
/// they expose.
const REVEALS_ADDRESS: Rule = Rule {
    id: "SW-SIP-011",
    severity: Severity::Info,
    title: "the public address or DNS behaviour is configured (externip/externaddr/srvlookup)",
    fix: "Nothing to fix by itself; make sure the public address is protected by a firewall \
          that only lets your providers and phones reach port 5060/5061.",
};
/// Reported when unset too: the default is `Asterisk PBX <version>`. Low, because hiding the
/// version slows scanners down but fixes nothing.
const USERAGENT: Rule = Rule {
    id: "SW-SIP-012",
    severity: Severity::Low,
    title: "the User-Agent/Server header reveals Asterisk and its version",
    fix: "Set `useragent=` (and `sdpowner=`, `sdpsession=`) in [general] to a neutral string \
          without product or version.",
};
const TLS_FILE_MISSING: Rule = Rule {
    id: "SW-SIP-013",
    severity: Severity::Low,
    title: "a TLS certificate or key named in sip.conf does not exist",
    fix: "Point `tlscertfile=`, `tlsprivatekey=` and `tlscafile=` at existing files (relative \
          paths are read from the configuration directory).",
};

/// The rules of this module.
pub const RULES: &[Rule] = &[
    INSECURE_INVITE,
    ALLOWGUEST,
    ALWAYSAUTHREJECT,
    NO_ACL,
    FRIEND_DYNAMIC,
    NO_TLS,
    NO_SRTP,
    OLD_TLS,
    NO_VERIFY,
    WEAK_CIPHER,
    REVEALS_ADDRESS,
    USERAGENT,
    TLS_FILE_MISSING,
];

/// The chan_sip peers of a file: non-template sections with a peer type.
pub fn peers(conf: &ConfFile) -> impl Iterator<Item = View<'_>> + '_ {
    conf.objects().filter(|v| {
        !v.name().eq_ignore_ascii_case("general")
            && !v.name().eq_ignore_ascii_case("authentication")
            && v.value("type").is_some_and(|t| {
                ["peer", "friend", "user"]
                    .iter()
                    .any(|k| t.eq_ignore_ascii_case(k))
            })
    })
}

/// The context unauthenticated callers land in, when guests are allowed: `[general]`'s
/// `context` (default `default`), with where that was decided.
pub fn guest_context(conf: &ConfFile) -> Option<(String, Location)> {
    let general = conf.view_named("general");
    let allowguest = general.as_ref().and_then(|g| g.get("allowguest"));
    // chan_sip reads it with ast_true: anything but yes/true/on/1 turns guests off.
    if allowguest.is_some_and(|e| !is_true(&e.value)) {
        return None;
    }
    let context = general.as_ref().and_then(|g| g.get("context"));
    let location = match (context, allowguest, &general) {
        (Some(e), _, _) | (None, Some(e), _) => e.location.clone(),
        (None, None, Some(g)) => g.location().clone(),
        (None, None, None) => whole_file(conf),
    };
    let name = context.map_or("default", |e| e.value.as_str()).to_string();
    Some((name, location))
}

/// The context calls from `peer` land in: its own, else `[general]`'s, else `default`.
pub fn peer_context(conf: &ConfFile, peer: &View<'_>) -> String {
    peer.value("context")
        .or_else(|| conf.view_named("general").and_then(|g| g.value("context")))
        .unwrap_or("default")
        .to_string()
}

fn whole_file(conf: &ConfFile) -> Location {
    Location {
        file: conf.path.clone(),
        line: 0,
    }
}

/// Runs this module's rules on one `sip.conf`, with the named ACLs of the audit.
pub(crate) fn check(conf: &ConfFile, acls: &NamedAcls) -> Vec<Finding> {
    let mut out = Vec::new();
    let file = file_name(&Location {
        file: conf.path.clone(),
        line: 0,
    });
    check_general(conf, &file, &mut out);
    for peer in peers(conf) {
        check_peer(conf, &peer, acls, &mut out);
    }
    out
}

fn check_general(conf: &ConfFile, file: &str, out: &mut Vec<Finding>) {
    let general = conf.view_named("general");
    let g = |k: &str| general.as_ref().and_then(|v| v.get(k));
    let header = general
        .as_ref()
        .map_or_else(|| whole_file(conf), |v| v.location().clone());
    let here = |e: Option<&crate::asterisk::Entry>| {
        e.map_or_else(|| header.clone(), |e| e.location.clone())
    };

    if let Some((context, _)) = guest_context(conf) {
        let how = g("allowguest").map_or_else(
            || "allowguest is not set (default yes)".to_string(),
            |e| format!("allowguest={}", e.value),
        );
        out.push(finding(
            &ALLOWGUEST,
            format!(
                "{file} [general] {how}: anyone can call without a password into context \
                 '{context}'"
            ),
            &here(g("allowguest")),
        ));
    }
    // Read with ast_true too: any value but yes/true/on/1 turns it off.
    if let Some(e) = g("alwaysauthreject").filter(|e| !is_true(&e.value)) {
        out.push(finding(
            &ALWAYSAUTHREJECT,
            format!("{file} [general] alwaysauthreject={}: unknown users get a different answer, so scanners can list extensions", e.value),
            &e.location,
        ));
    }
    if !g("tlsenable").is_some_and(|e| is_true(&e.value)) {
        let what = match g("transport") {
            Some(t) => format!("transport={} and tlsenable is not yes", t.value),
            None => "tlsenable is not yes".to_string(),
        };
        out.push(finding(
            &NO_TLS,
            format!("{file} [general] {what}: signalling, including digest exchanges and SDES keys, is sent in the clear"),
            &here(g("transport").or_else(|| g("tlsenable"))),
        ));
    }
    let general_srtp = g("encryption").is_some_and(|e| is_true(&e.value));
    if !general_srtp {
        let what = g("encryption").map_or_else(
            || "encryption is not set (default no)".to_string(),
            |e| format!("encryption={}", e.value),
        );
        out.push(finding(
            &NO_SRTP,
            format!("{file} [general] {what}: calls' audio can be recorded by anyone on the path"),
            &here(g("encryption")),
        ));
    }
    for key in ["tlsclientmethod", "tlsmethod"] {
        if let Some(e) = g(key).filter(|e| is_old_tls_method(&e.value)) {
            out.push(finding(
                &OLD_TLS,
                format!(
                    "{file} [general] {}={} allows a protocol older than TLS 1.2",
                    e.key, e.value
                ),
                &e.location,
            ));
        }
    }
    if let Some(e) = g("tlsdontverifyserver").filter(|e| is_true(&e.value)) {
        out.push(finding(
            &NO_VERIFY,
            format!("{file} [general] tlsdontverifyserver={}: anyone in the path can impersonate a provider", e.value),
            &e.location,
        ));
    }
    if let Some(e) = g("tlscipher").filter(|e| weak_cipher_list(&e.value)) {
        out.push(finding(
            &WEAK_CIPHER,
            format!("{file} [general] tlscipher={} allows weak suites", e.value),
            &e.location,
        ));
    }
    for key in ["externip", "externaddr", "externhost"] {
        if let Some(e) = g(key) {
            out.push(finding(
                &REVEALS_ADDRESS,
                format!("{file} [general] {} is set: the public address is advertised in every SIP message", e.key),
                &e.location,
            ));
        }
    }
    if let Some(e) = g("srvlookup").filter(|e| is_true(&e.value)) {
        out.push(finding(
            &REVEALS_ADDRESS,
            format!("{file} [general] srvlookup={}: outbound calls follow DNS SRV records, so DNS answers decide where calls go", e.value),
            &e.location,
        ));
    }
    match g("useragent") {
        None => out.push(finding(
            &USERAGENT,
            format!("{file} [general] useragent is not set: the default 'Asterisk PBX <version>' tells scanners which vulnerabilities to try"),
            &header,
        )),
        Some(e) if reveals_version(&e.value) => out.push(finding(
            &USERAGENT,
            format!("{file} [general] useragent names Asterisk or a version"),
            &e.location,
        )),
        Some(_) => {}
    }
    for (key, what) in [
        ("tlscertfile", Referenced::Certificate),
        ("tlscafile", Referenced::Certificate),
        ("tlsprivatekey", Referenced::Key),
    ] {
        if let Some(e) = g(key) {
            out.extend(check_referenced(
                e,
                what,
                &TLS_FILE_MISSING,
                &format!("{file} [general]"),
            ));
        }
    }
}

fn check_peer(conf: &ConfFile, peer: &View<'_>, acls: &NamedAcls, out: &mut Vec<Finding>) {
    let file = file_name(peer.location());
    let name = peer.name();
    let host = peer.value("host").unwrap_or("");
    let dynamic = host.eq_ignore_ascii_case("dynamic");
    let restricted = acl_is_restrictive(peer, acls);
    let private = host_is_private(host);
    let reachable = !restricted && !private;
    let kind = peer.value("type").unwrap_or("").to_ascii_lowercase();

    if let Some(e) = peer
        .get("insecure")
        .filter(|e| reachable && insecure_invite(&e.value))
    {
        out.push(finding(
            &INSECURE_INVITE,
            format!(
                "{file} [{name}] insecure={}: INVITEs are accepted without a password from any \
                 address that matches this peer (host={}, no restrictive deny/permit)",
                e.value,
                if host.is_empty() { "unset" } else { host }
            ),
            &e.location,
        ));
    }
    if reachable {
        if dynamic && kind == "friend" {
            out.push(finding(
                &FRIEND_DYNAMIC,
                format!("{file} [{name}] type=friend host=dynamic without deny/permit: it can register and place calls from any address"),
                at(peer, peer.get("host")),
            ));
        } else {
            let open = peer
                .get_all("permit")
                .into_iter()
                .find(|e| crate::rules::common::parse_net(&e.value).is_some_and(|(_, p)| p == 0));
            // An acl= that reaches here names only ACLs that acl.conf says let everyone in.
            let named = peer.get("acl").filter(|e| !e.value.trim().is_empty());
            let what = match (open, named) {
                (Some(e), _) => format!("permit={} opens it to every address", e.value),
                (None, Some(e)) => format!(
                    "acl={} lets every address through (see acl.conf) and it has no deny/permit",
                    e.value
                ),
                (None, None) => "has no deny/permit".to_string(),
            };
            out.push(finding(
                &NO_ACL,
                format!("{file} [{name}] {what}"),
                at(peer, open.or(named)),
            ));
        }
    }
    let general_srtp = conf
        .view_named("general")
        .and_then(|g| g.value("encryption"))
        .is_some_and(is_true);
    if let Some(e) = peer
        .get("encryption")
        .filter(|e| general_srtp && !is_true(&e.value))
    {
        out.push(finding_at(
            &NO_SRTP,
            Severity::Medium,
            format!("{file} [{name}] encryption={} overrides [general]: this peer's audio is not encrypted", e.value),
            &e.location,
        ));
    }
}

/// `insecure=` values that skip INVITE authentication: `invite`, `port,invite`, and the legacy
/// `very`.
fn insecure_invite(v: &str) -> bool {
    v.split(',')
        .map(str::trim)
        .any(|t| t.eq_ignore_ascii_case("invite") || t.eq_ignore_ascii_case("very"))
}

/// An OpenSSL cipher list that enables a weak family. Exclusions (`!RC4`, `-DES`) are fine.
pub(crate) fn weak_cipher_list(v: &str) -> bool {
    v.split([':', ',', ' '])
        .map(str::trim)
        .filter(|t| !t.is_empty() && !t.starts_with(['!', '-']))
        .any(|t| {
            let t = t.trim_start_matches('+').to_ascii_uppercase();
            t == "ALL"
                || ["RC4", "DES", "NULL", "EXPORT", "EXP-", "MD5"]
                    .iter()
                    .any(|w| t.contains(w))
        })
}

/// A User-Agent that names the product or carries a version number.
fn reveals_version(v: &str) -> bool {
    let lower = v.to_ascii_lowercase();
    if lower.contains("asterisk") || lower.contains("version") {
        return true;
    }
    let b = v.as_bytes();
    b.windows(3).any(|w| {
        w.first().is_some_and(u8::is_ascii_digit)
            && w.get(1) == Some(&b'.')
            && w.get(2).is_some_and(u8::is_ascii_digit)
    })
}

#[cfg(test)]
mod tests;
