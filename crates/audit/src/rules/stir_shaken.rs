//! res_stir_shaken (`stir_shaken.conf`, the object model of Asterisk 18.22, 20.7, 21.2 and
//! later): what verification lets through, certificate-fetch (x5u) hardening, replay windows,
//! and the keys and certificates it names.
//!
//! Objects: `[attestation]` and `[verification]` (by name or `type=`; one each), `type=tn` and
//! `type=profile`. Defaults are the module's (`stir_shaken_doc.xml`): `global_disable=no`,
//! `failure_action=continue`, `max_iat_age=15`, `max_date_header_age=15`,
//! `ignore_sip_date_header=no`, both `relax_x5u_*=no`, `check_tn_cert_public_url=no`, profile
//! `endpoint_behavior=off`. An unset `failure_action` counts only where verification really
//! runs: an enabled `[verification]`, or a profile with `endpoint_behavior=verify|on`.

use crate::asterisk::{ConfFile, Entry, View};
use crate::rules::common::{
    Referenced, at, check_referenced, file_name, finding, finding_at, is_private, is_true, list,
    parse_net,
};
use crate::{Finding, Rule, Severity};

/// Low: `continue` is the default and often deliberate (the dialplan can read STIR_SHAKEN()),
/// and a failed verification is no worse than a call without an Identity header.
const FAILURE_CONTINUES: Rule = Rule {
    id: "SW-STIR-001",
    severity: Severity::Low,
    title: "calls that fail STIR/SHAKEN verification are let through (failure_action is not \
            reject_request)",
    fix: "Set `failure_action=reject_request`, or keep `continue` and check \
          `STIR_SHAKEN(…,verify_result)` in the dialplan before trusting the caller id.",
};
const RELAX_PORT_SCHEME: Rule = Rule {
    id: "SW-STIR-002",
    severity: Severity::Medium,
    title: "relax_x5u_port_scheme_restrictions=yes: certificates are fetched over http and from \
            any port",
    fix: "Remove `relax_x5u_port_scheme_restrictions` (default no: https on port 443 or 8443 \
          only, as ATIS-1000074 requires); it is meant for testing.",
};
const RELAX_PATH: Rule = Rule {
    id: "SW-STIR-003",
    severity: Severity::Low,
    title: "relax_x5u_path_restrictions=yes: certificate URLs may carry queries, user/password \
            or fragments",
    fix: "Remove `relax_x5u_path_restrictions` (default no); it is meant for testing.",
};
const X5U_PRIVATE: Rule = Rule {
    id: "SW-STIR-004",
    severity: Severity::Medium,
    title: "x5u_permit allows certificate fetches from private or loopback addresses (SSRF)",
    fix: "Remove the `x5u_permit=` of internal networks; without x5u_permit/x5u_deny/x5u_acl \
          Asterisk denies every RFC 6890 special-purpose address.",
};
const IGNORE_DATE: Rule = Rule {
    id: "SW-STIR-005",
    severity: Severity::Low,
    title: "ignore_sip_date_header=yes: a missing or invalid SIP Date header does not fail \
            verification",
    fix: "Remove `ignore_sip_date_header` (default no).",
};
const LONG_REPLAY: Rule = Rule {
    id: "SW-STIR-006",
    severity: Severity::Low,
    title: "max_iat_age or max_date_header_age above 60 s: a captured Identity header can be \
            replayed for longer",
    fix: "Keep `max_iat_age` and `max_date_header_age` at the default 15 (at most 60) seconds.",
};
/// Medium: verifiers that follow ATIS-1000074 reject a non-https x5u, so outbound calls fail
/// verification, and a certificate fetched over http can be swapped on the way.
const CERT_URL_NOT_HTTPS: Rule = Rule {
    id: "SW-STIR-007",
    severity: Severity::Medium,
    title: "public_cert_url is not an https URL",
    fix: "Publish the certificate over https (port 443 or 8443) and set `public_cert_url=` to \
          that URL.",
};
/// Info: the check is optional and network intensive; the finding is a reminder.
const NO_URL_CHECK: Rule = Rule {
    id: "SW-STIR-008",
    severity: Severity::Info,
    title: "check_tn_cert_public_url is not yes: nobody checks that the published certificate \
            is valid and holds no private key",
    fix: "Set `check_tn_cert_public_url=yes` in [attestation] so Asterisk fetches each \
          public_cert_url at load and refuses a TN whose file is expired or contains a key.",
};
const FILE_MISSING: Rule = Rule {
    id: "SW-STIR-009",
    severity: Severity::Low,
    title: "a key or certificate named in stir_shaken.conf does not exist",
    fix: "Point `private_key_file=`, `ca_file=` and `untrusted_cert_file=` at existing files.",
};

/// The rules of this module.
pub const RULES: &[Rule] = &[
    FAILURE_CONTINUES,
    RELAX_PORT_SCHEME,
    RELAX_PATH,
    X5U_PRIVATE,
    IGNORE_DATE,
    LONG_REPLAY,
    CERT_URL_NOT_HTTPS,
    NO_URL_CHECK,
    FILE_MISSING,
];

/// Replay windows above this many seconds are reported.
const MAX_AGE: u64 = 60;

/// The first object that is `[name]` or `type=name`.
fn single<'a>(conf: &'a ConfFile, name: &str) -> Option<View<'a>> {
    conf.objects().find(|v| {
        v.name().eq_ignore_ascii_case(name)
            || v.value("type")
                .is_some_and(|t| t.eq_ignore_ascii_case(name))
    })
}

/// The objects of `type=<kind>`.
fn of_type<'a>(conf: &'a ConfFile, kind: &'a str) -> impl Iterator<Item = View<'a>> + 'a {
    conf.objects().filter(move |v| {
        v.value("type")
            .is_some_and(|t| t.eq_ignore_ascii_case(kind))
    })
}

fn enabled(v: Option<&View<'_>>) -> bool {
    !v.and_then(|v| v.value("global_disable"))
        .is_some_and(is_true)
}

/// A profile's `endpoint_behavior` includes `what` (`verify` or `attest`); `on` is both.
fn behaves(profile: &View<'_>, what: &str) -> bool {
    profile
        .value("endpoint_behavior")
        .is_some_and(|b| b.eq_ignore_ascii_case(what) || b.eq_ignore_ascii_case("on"))
}

/// Runs this module's rules on one `stir_shaken.conf`.
pub fn check(conf: &ConfFile) -> Vec<Finding> {
    let mut out = Vec::new();
    let verification = single(conf, "verification");
    let attestation = single(conf, "attestation");
    let profiles: Vec<View<'_>> = of_type(conf, "profile").collect();

    if enabled(verification.as_ref()) {
        if let Some(v) = &verification {
            failure_action(v, true, &mut out);
            verification_options(v, &mut out);
        }
        for p in profiles.iter().filter(|p| behaves(p, "verify")) {
            // Unset on the profile: [verification]'s value applies (reported there), or the
            // default when there is no [verification].
            failure_action(p, verification.is_none(), &mut out);
            verification_options(p, &mut out);
        }
    }
    if enabled(attestation.as_ref()) {
        if let Some(a) = &attestation {
            cert_url(a, &mut out);
            if !a.value("check_tn_cert_public_url").is_some_and(is_true) {
                let e = a.get("check_tn_cert_public_url");
                let what = e.map_or_else(
                    || "is not set (default no)".to_string(),
                    |e| format!("={}", e.value),
                );
                out.push(finding(
                    &NO_URL_CHECK,
                    format!(
                        "{} [{}] check_tn_cert_public_url {what}: published certificates are \
                         not checked for expiry or an included private key",
                        file_name(a.location()),
                        a.name()
                    ),
                    at(a, e),
                ));
            }
        }
        for o in
            of_type(conf, "tn").chain(profiles.iter().filter(|p| behaves(p, "attest")).cloned())
        {
            cert_url(&o, &mut out);
        }
    }
    referenced_files(conf, &mut out);
    out
}

/// SW-STIR-001 on `v`; `default_counts`: an unset value (default `continue`) is reported here.
fn failure_action(v: &View<'_>, default_counts: bool, out: &mut Vec<Finding>) {
    let file = file_name(v.location());
    match v.get("failure_action") {
        Some(e) if !e.value.trim().eq_ignore_ascii_case("reject_request") => out.push(finding(
            &FAILURE_CONTINUES,
            format!(
                "{file} [{}] failure_action={}: calls whose caller id failed verification reach \
                 the dialplan as if it had not been checked",
                v.name(),
                e.value
            ),
            &e.location,
        )),
        None if default_counts => out.push(finding(
            &FAILURE_CONTINUES,
            format!(
                "{file} [{}] failure_action is not set (default continue): calls whose caller id \
                 failed verification reach the dialplan as if it had not been checked",
                v.name()
            ),
            v.location(),
        )),
        _ => {}
    }
}

/// The verification settings that weaken it, set explicitly on `v` (their defaults are safe).
fn verification_options(v: &View<'_>, out: &mut Vec<Finding>) {
    let file = file_name(v.location());
    let name = v.name();
    let yes = |k: &str| v.get(k).filter(|e| is_true(&e.value));
    if let Some(e) = yes("relax_x5u_port_scheme_restrictions") {
        out.push(finding(
            &RELAX_PORT_SCHEME,
            format!(
                "{file} [{name}] {}={}: a caller's Identity header can make Asterisk fetch \
                 http:// URLs on any port",
                e.key, e.value
            ),
            &e.location,
        ));
    }
    if let Some(e) = yes("relax_x5u_path_restrictions") {
        out.push(finding(
            &RELAX_PATH,
            format!(
                "{file} [{name}] {}={}: certificate URLs with queries, credentials or fragments \
                 are fetched",
                e.key, e.value
            ),
            &e.location,
        ));
    }
    if let Some(e) = yes("ignore_sip_date_header") {
        out.push(finding(
            &IGNORE_DATE,
            format!(
                "{file} [{name}] {}={}: the iat claim alone bounds replays",
                e.key, e.value
            ),
            &e.location,
        ));
    }
    for key in ["max_iat_age", "max_date_header_age"] {
        if let Some(e) = v
            .get(key)
            .filter(|e| e.value.trim().parse::<u64>().is_ok_and(|n| n > MAX_AGE))
        {
            out.push(finding(
                &LONG_REPLAY,
                format!(
                    "{file} [{name}] {}={} s: a captured Identity header is accepted again for \
                     that long",
                    e.key, e.value
                ),
                &e.location,
            ));
        }
    }
    for e in v.get_all("x5u_permit") {
        if let Some(item) = list(&e.value)
            .find(|i| parse_net(i.trim_start_matches('!')).is_some_and(|(ip, _)| is_private(ip)))
        {
            out.push(finding(
                &X5U_PRIVATE,
                format!(
                    "{file} [{name}] x5u_permit={item}: a caller's Identity header can make \
                     Asterisk connect to internal addresses"
                ),
                &e.location,
            ));
        }
    }
}

/// SW-STIR-007 on an object's own or inherited `public_cert_url`.
fn cert_url(v: &View<'_>, out: &mut Vec<Finding>) {
    let Some(e) = v.get("public_cert_url") else {
        return;
    };
    let url = e.value.trim();
    let https = url
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"));
    if url.is_empty() || https {
        return;
    }
    // A plain-http URL is the likely mistake; anything else is not a URL at all.
    let severity = if url
        .get(..7)
        .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
    {
        CERT_URL_NOT_HTTPS.severity
    } else {
        Severity::Low
    };
    out.push(finding_at(
        &CERT_URL_NOT_HTTPS,
        severity,
        format!(
            "{} [{}] public_cert_url={url} is not https: verifiers following ATIS-1000074 \
             reject it, and it can be swapped on the way",
            file_name(v.location()),
            v.name()
        ),
        &e.location,
    ));
}

/// Keys and certificates named anywhere in the file (a key on disk leaks whether or not the
/// object using it is enabled). Each line once, templates included.
fn referenced_files(conf: &ConfFile, out: &mut Vec<Finding>) {
    for s in conf.sections.iter().filter(|s| !s.implicit) {
        let owner = format!("{} [{}]", file_name(&s.location), s.name);
        for e in &s.entries {
            if let Some(what) = referenced_kind(e) {
                out.extend(check_referenced(e, what, &FILE_MISSING, &owner));
            }
        }
    }
}

fn referenced_kind(e: &Entry) -> Option<Referenced> {
    if e.is("private_key_file") {
        Some(Referenced::Key)
    } else if e.is("ca_file") || e.is("untrusted_cert_file") {
        Some(Referenced::Certificate)
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
