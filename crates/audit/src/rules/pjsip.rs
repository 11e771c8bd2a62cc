//! res_pjsip (`pjsip.conf`): endpoints nobody has to authenticate as, transports, TLS, SRTP and
//! source restrictions.
//!
//! Objects are the non-template sections, typed by `type=` (templates applied). Defaults are
//! res_pjsip's: `media_encryption=no`, `verify_server=no`, aor `max_contacts=0`, transport
//! `method` unset (OpenSSL's default, TLS 1.2+ on current systems, so unset is not reported).

use std::collections::HashSet;

use crate::asterisk::{ConfFile, View};
use crate::rules::acl::NamedAcls;
use crate::rules::common::{
    Referenced, at, check_referenced, file_name, finding, is_old_tls_method, is_private, is_true,
    is_wide, list, parse_addr, parse_net,
};
use crate::{Finding, Location, Rule, Severity};

const NO_AUTH: Rule = Rule {
    id: "SW-PJSIP-001",
    severity: Severity::High,
    title: "an endpoint has neither auth= nor an identify section: anyone can use it",
    fix: "Give the endpoint `auth=<type=auth section>` (phones) or a `type=identify` section \
          with `endpoint=<name>` and `match=<provider addresses>` (trunks).",
};
const ANONYMOUS: Rule = Rule {
    id: "SW-PJSIP-002",
    severity: Severity::Medium,
    title: "an 'anonymous' endpoint accepts unauthenticated calls",
    fix: "Remove the `[anonymous]` endpoint unless anonymous inbound calls are required; if \
          they are, give it a `context=` that only reaches local extensions.",
};
const NO_TLS: Rule = Rule {
    id: "SW-PJSIP-003",
    severity: Severity::Medium,
    title: "signalling on a public address is not encrypted (no tls/wss transport)",
    fix: "Add a `type=transport` with `protocol=tls` (`cert_file=`, `priv_key_file=`, \
          `method=tlsv1_2`) and move phones and trunks to it.",
};
const OLD_TLS: Rule = Rule {
    id: "SW-PJSIP-004",
    severity: Severity::Medium,
    title: "a transport allows TLS older than 1.2 (method=)",
    fix: "Set `method=tlsv1_2` (or `tlsv1_3`) on the transport.",
};
/// Low: the audit cannot tell which TLS transports are used for outbound connections, and
/// the setting matters only for those.
const NO_VERIFY: Rule = Rule {
    id: "SW-PJSIP-005",
    severity: Severity::Low,
    title: "a TLS transport does not verify servers it connects to (verify_server is not yes)",
    fix: "Set `verify_server=yes` and `ca_list_file=` on TLS transports used for outbound \
          connections to providers.",
};
const NO_SRTP: Rule = Rule {
    id: "SW-PJSIP-006",
    severity: Severity::Medium,
    title: "an endpoint's media is not encrypted (media_encryption is no, the default)",
    fix: "Set `media_encryption=sdes` (over TLS) or `dtls` on the endpoint.",
};
const OPTIMISTIC: Rule = Rule {
    id: "SW-PJSIP-007",
    severity: Severity::Low,
    title: "media_encryption_optimistic=yes falls back to unencrypted media silently",
    fix: "Set `media_encryption_optimistic=no` so calls that cannot be encrypted fail instead.",
};
const UNAUTH_OPTIONS: Rule = Rule {
    id: "SW-PJSIP-008",
    severity: Severity::Low,
    title: "allow_unauthenticated_options=yes answers OPTIONS without authentication",
    fix: "Remove `allow_unauthenticated_options=yes`; scanners use OPTIONS answers to find \
          endpoints.",
};
/// The default (0) means the aor cannot register at all, so only large values are reported.
const MANY_CONTACTS: Rule = Rule {
    id: "SW-PJSIP-009",
    severity: Severity::Low,
    title: "an aor accepts more than 10 registrations (max_contacts)",
    fix: "Set `max_contacts=` to the number of devices that really share the account (often \
          1, with `remove_existing=yes`).",
};
const NO_ACL: Rule = Rule {
    id: "SW-PJSIP-010",
    severity: Severity::Medium,
    title: "an endpoint accepts requests from any address (no acl/permit/deny, no type=acl)",
    fix: "Add `deny=0.0.0.0/0` and `permit=<network>` (or `acl=<name>`, `contact_acl=`) to the \
          endpoint, or a global `type=acl` section.",
};
const WIDE_MATCH: Rule = Rule {
    id: "SW-PJSIP-011",
    severity: Severity::High,
    title: "an identify match= covers a huge network, so anyone there is that endpoint",
    fix: "List the provider's signalling addresses in `match=` (a /32 or the narrow networks \
          it documents), not /0 or /8.",
};
const TLS_FILE_MISSING: Rule = Rule {
    id: "SW-PJSIP-012",
    severity: Severity::Low,
    title: "a TLS certificate or key named in pjsip.conf does not exist",
    fix: "Point `cert_file=`, `priv_key_file=` and `ca_list_file=` at existing files.",
};

/// The rules of this module.
pub const RULES: &[Rule] = &[
    NO_AUTH,
    ANONYMOUS,
    NO_TLS,
    OLD_TLS,
    NO_VERIFY,
    NO_SRTP,
    OPTIMISTIC,
    UNAUTH_OPTIONS,
    MANY_CONTACTS,
    NO_ACL,
    WIDE_MATCH,
    TLS_FILE_MISSING,
];

/// The objects of `type=<kind>`.
pub fn of_type<'a>(conf: &'a ConfFile, kind: &'a str) -> impl Iterator<Item = View<'a>> + 'a {
    conf.objects().filter(move |v| {
        v.value("type")
            .is_some_and(|t| t.eq_ignore_ascii_case(kind))
    })
}

/// The `match=` values of the identify sections that point at `endpoint`.
fn matches_for<'a>(conf: &'a ConfFile, endpoint: &str) -> Vec<&'a crate::asterisk::Entry> {
    of_type(conf, "identify")
        .filter(|i| i.value("endpoint").is_some_and(|e| e == endpoint))
        .flat_map(|i| i.get_all("match"))
        .collect()
}

/// The context of the `[anonymous]` endpoint, where unauthenticated calls go.
pub fn anonymous_context(conf: &ConfFile) -> Option<(String, Location)> {
    of_type(conf, "endpoint")
        .find(|e| e.name().eq_ignore_ascii_case("anonymous"))
        .map(|e| {
            let ctx = e.value("context").unwrap_or("default").to_string();
            (ctx, at(&e, e.get("context")).clone())
        })
}

/// Endpoints identified by address (trunks): (name, context, where the context is decided).
pub fn trunk_contexts(conf: &ConfFile) -> Vec<(String, String, Location)> {
    of_type(conf, "endpoint")
        .filter(|e| !matches_for(conf, e.name()).is_empty())
        .map(|e| {
            let ctx = e.value("context").unwrap_or("default").to_string();
            (e.name().to_string(), ctx, at(&e, e.get("context")).clone())
        })
        .collect()
}

/// Whether a section's own ACL settings restrict: any `permit`/`deny` (and `contact_` ones),
/// or an `acl`/`contact_acl` naming a restrictive ACL (see [`NamedAcls`]).
fn has_acl(v: &View<'_>, acls: &NamedAcls) -> bool {
    let rules = ["permit", "deny", "contact_permit", "contact_deny"]
        .iter()
        .any(|k| v.get(k).is_some_and(|e| !e.value.trim().is_empty()));
    rules
        || ["acl", "contact_acl"]
            .iter()
            .any(|k| v.get_all(k).iter().any(|e| acls.value_restricts(&e.value)))
}

/// Runs this module's rules on one `pjsip.conf`, with the named ACLs of the audit.
pub(crate) fn check(conf: &ConfFile, acls: &NamedAcls) -> Vec<Finding> {
    let mut out = Vec::new();
    // A type=acl section applies to every request; one that only names open ACLs does not
    // restrict anything.
    let global_acl = of_type(conf, "acl").any(|a| has_acl(&a, acls));
    for ep in of_type(conf, "endpoint") {
        check_endpoint(conf, &ep, global_acl, acls, &mut out);
    }
    for aor in of_type(conf, "aor") {
        if let Some(e) = aor
            .get("max_contacts")
            .filter(|e| e.value.trim().parse::<u32>().is_ok_and(|n| n > 10))
        {
            out.push(finding(
                &MANY_CONTACTS,
                format!(
                    "{} [{}] max_contacts={}: one stolen password registers that many devices",
                    file_name(&e.location),
                    aor.name(),
                    e.value
                ),
                &e.location,
            ));
        }
    }
    for id in of_type(conf, "identify") {
        for m in id.get_all("match") {
            for item in list(&m.value) {
                if let Some((ip, prefix)) = parse_net(item).filter(|&(ip, p)| is_wide(ip, p)) {
                    out.push(finding(
                        &WIDE_MATCH,
                        format!(
                            "{} [{}] match={item} ({ip}/{prefix}) identifies endpoint '{}' for a whole network",
                            file_name(&m.location),
                            id.name(),
                            id.value("endpoint").unwrap_or("?")
                        ),
                        &m.location,
                    ));
                }
            }
        }
    }
    check_transports(conf, &mut out);
    out
}

fn check_endpoint(
    conf: &ConfFile,
    ep: &View<'_>,
    global_acl: bool,
    acls: &NamedAcls,
    out: &mut Vec<Finding>,
) {
    let file = file_name(ep.location());
    let name = ep.name();
    let anonymous = name.eq_ignore_ascii_case("anonymous");
    let matches = matches_for(conf, name);
    let has_auth = ep.get("auth").is_some_and(|e| !e.value.trim().is_empty());
    if anonymous {
        out.push(finding(
            &ANONYMOUS,
            format!(
                "{file} [anonymous] endpoint: calls from unidentified sources go to context '{}'",
                ep.value("context").unwrap_or("default")
            ),
            ep.location(),
        ));
    } else if !has_auth && matches.is_empty() {
        out.push(finding(
            &NO_AUTH,
            format!("{file} [{name}] endpoint has no auth= and no type=identify points at it: requests naming it are accepted without a password"),
            ep.location(),
        ));
    }
    match ep.get("media_encryption") {
        None => out.push(finding(
            &NO_SRTP,
            format!("{file} [{name}] media_encryption is not set (default no): audio is sent unencrypted"),
            ep.location(),
        )),
        Some(e) if e.value.trim().eq_ignore_ascii_case("no") => out.push(finding(
            &NO_SRTP,
            format!("{file} [{name}] media_encryption=no: audio is sent unencrypted"),
            &e.location,
        )),
        Some(_) => {}
    }
    if let Some(e) = ep
        .get("media_encryption_optimistic")
        .filter(|e| is_true(&e.value))
    {
        out.push(finding(
            &OPTIMISTIC,
            format!("{file} [{name}] media_encryption_optimistic={}", e.value),
            &e.location,
        ));
    }
    if let Some(e) = ep
        .get("allow_unauthenticated_options")
        .filter(|e| is_true(&e.value))
    {
        out.push(finding(
            &UNAUTH_OPTIONS,
            format!("{file} [{name}] allow_unauthenticated_options={}", e.value),
            &e.location,
        ));
    }
    let has_acl = has_acl(ep, acls);
    let private_only = !matches.is_empty()
        && matches.iter().all(|m| {
            list(&m.value).all(|item| parse_net(item).is_some_and(|(ip, _)| is_private(ip)))
        });
    if !global_acl && !has_acl && !private_only {
        out.push(finding(
            &NO_ACL,
            format!("{file} [{name}] endpoint has no acl/permit/deny or contact_acl and there is no type=acl section"),
            ep.location(),
        ));
    }
}

fn check_transports(conf: &ConfFile, out: &mut Vec<Finding>) {
    let transports: Vec<View<'_>> = of_type(conf, "transport").collect();
    let encrypted = |t: &View<'_>| {
        t.value("protocol")
            .is_some_and(|p| p.eq_ignore_ascii_case("tls") || p.eq_ignore_ascii_case("wss"))
    };
    let any_encrypted = transports.iter().any(encrypted);
    let mut reported = HashSet::new();
    for t in &transports {
        let file = file_name(t.location());
        let name = t.name();
        let protocol = t.value("protocol").unwrap_or("udp");
        if !any_encrypted
            && !encrypted(t)
            && public_bind(t.value("bind"))
            && reported.insert(file.clone())
        {
            out.push(finding(
                &NO_TLS,
                format!(
                    "{file} [{name}] protocol={protocol} on bind={} and no tls or wss transport exists",
                    t.value("bind").unwrap_or("(unset)")
                ),
                at(t, t.get("protocol")),
            ));
        }
        if protocol.eq_ignore_ascii_case("tls") {
            if let Some(e) = t.get("method").filter(|e| is_old_tls_method(&e.value)) {
                out.push(finding(
                    &OLD_TLS,
                    format!(
                        "{file} [{name}] method={} allows a protocol older than TLS 1.2",
                        e.value
                    ),
                    &e.location,
                ));
            }
            let verify = t.get("verify_server");
            if !verify.is_some_and(|e| is_true(&e.value)) {
                out.push(finding(
                    &NO_VERIFY,
                    format!("{file} [{name}] verify_server is not yes: outbound TLS connections accept any certificate"),
                    at(t, verify),
                ));
            }
        }
        for (key, what) in [
            ("cert_file", Referenced::Certificate),
            ("ca_list_file", Referenced::Certificate),
            ("priv_key_file", Referenced::Key),
        ] {
            if let Some(e) = t.get(key) {
                out.extend(check_referenced(
                    e,
                    what,
                    &TLS_FILE_MISSING,
                    &format!("{file} [{name}]"),
                ));
            }
        }
    }
}

/// A bind address that the internet may reach: unset (res_pjsip requires it, but be safe),
/// a wildcard, or a public address.
fn public_bind(bind: Option<&str>) -> bool {
    match bind.and_then(parse_addr) {
        None => true,
        Some(ip) => ip.is_unspecified() || !is_private(ip),
    }
}

#[cfg(test)]
mod tests;
