//! chan_iax2 (`iax.conf`): unauthenticated users, plaintext authentication, call tokens,
//! encryption and source restrictions.
//!
//! Objects are the non-template sections with `type=user|peer|friend` other than `[general]`.
//! Defaults are chan_iax2's: `requirecalltoken=yes`, `encryption=no`, `auth=md5`.

use crate::asterisk::{ConfFile, View};
use crate::rules::acl::NamedAcls;
use crate::rules::common::{acl_is_restrictive, at, file_name, finding, is_false, is_true, list};
use crate::{Finding, Location, Rule, Severity};

const FRIEND_DYNAMIC: Rule = Rule {
    id: "SW-IAX-001",
    severity: Severity::Medium,
    title: "a dynamic IAX peer/friend can register from any address (no deny/permit)",
    fix: "Add `deny=0.0.0.0/0.0.0.0` and `permit=<network>/<mask>` (or `acl=<name>`) to it.",
};
const NO_CALLTOKEN: Rule = Rule {
    id: "SW-IAX-002",
    severity: Severity::Medium,
    title: "requirecalltoken=no: IAX2 calls are accepted without call tokens (spoofable, \
            amplification)",
    fix: "Remove `requirecalltoken=no` (the default is yes); for old peers that cannot do call \
          tokens use `calltokenoptional=<their address>` instead.",
};
const NO_ENCRYPTION: Rule = Rule {
    id: "SW-IAX-003",
    severity: Severity::Medium,
    title: "IAX2 calls are not encrypted (encryption is not yes)",
    fix: "Set `encryption=yes` (aes128) in [general], and `forceencryption=yes` where both \
          ends support it.",
};
const PLAINTEXT: Rule = Rule {
    id: "SW-IAX-004",
    severity: Severity::High,
    title: "auth=plaintext sends the secret in the clear",
    fix: "Use `auth=md5` (with a strong `secret=`) or `auth=rsa` with `inkeys=`/`outkey=`.",
};
const GUEST: Rule = Rule {
    id: "SW-IAX-005",
    severity: Severity::Medium,
    title: "an IAX user needs no authentication (no secret, no inkeys, no deny/permit)",
    fix: "Remove the user (often `[guest]`) or give it `secret=`/`inkeys=` and a `context=` that \
          only reaches local extensions.",
};

/// The rules of this module.
pub const RULES: &[Rule] = &[
    FRIEND_DYNAMIC,
    NO_CALLTOKEN,
    NO_ENCRYPTION,
    PLAINTEXT,
    GUEST,
];

/// The IAX objects of a file.
pub fn objects(conf: &ConfFile) -> impl Iterator<Item = View<'_>> + '_ {
    conf.objects().filter(|v| {
        !v.name().eq_ignore_ascii_case("general")
            && v.value("type").is_some_and(|t| {
                ["user", "peer", "friend"]
                    .iter()
                    .any(|k| t.eq_ignore_ascii_case(k))
            })
    })
}

fn accepts_calls(v: &View<'_>) -> bool {
    v.value("type")
        .is_some_and(|t| t.eq_ignore_ascii_case("user") || t.eq_ignore_ascii_case("friend"))
}

/// Users that need no authentication: incoming type, no `secret`/`dbsecret`/`inkeys`, no
/// restrictive ACL.
fn is_unauthenticated(v: &View<'_>, acls: &NamedAcls) -> bool {
    let has = |k: &str| v.get(k).is_some_and(|e| !e.value.trim().is_empty());
    accepts_calls(v)
        && !has("secret")
        && !has("dbsecret")
        && !has("inkeys")
        && !acl_is_restrictive(v, acls)
}

/// The contexts unauthenticated IAX callers reach: (user name, context, where decided).
pub(crate) fn guest_contexts(conf: &ConfFile, acls: &NamedAcls) -> Vec<(String, String, Location)> {
    objects(conf)
        .filter(|v| is_unauthenticated(v, acls))
        .map(|v| {
            let ctx = v.value("context").unwrap_or("default").to_string();
            (v.name().to_string(), ctx, at(&v, v.get("context")).clone())
        })
        .collect()
}

/// Runs this module's rules on one `iax.conf`, with the named ACLs of the audit.
pub(crate) fn check(conf: &ConfFile, acls: &NamedAcls) -> Vec<Finding> {
    let mut out = Vec::new();
    let general = conf.view_named("general");
    let g = |k: &str| general.as_ref().and_then(|v| v.get(k));
    let header = general.as_ref().map_or_else(
        || Location {
            file: conf.path.clone(),
            line: 0,
        },
        |v| v.location().clone(),
    );
    let file = file_name(&header);
    if let Some(e) = g("requirecalltoken").filter(|e| is_false(&e.value)) {
        out.push(finding(
            &NO_CALLTOKEN,
            format!("{file} [general] requirecalltoken={}", e.value),
            &e.location,
        ));
    }
    let general_encrypted = g("encryption").is_some_and(|e| encryption_on(&e.value));
    if !general_encrypted {
        let what = g("encryption").map_or_else(
            || "encryption is not set (default no)".to_string(),
            |e| format!("encryption={}", e.value),
        );
        out.push(finding(
            &NO_ENCRYPTION,
            format!("{file} [general] {what}: IAX2 audio and signalling are sent in the clear"),
            g("encryption").map_or(&header, |e| &e.location),
        ));
    }
    for v in objects(conf) {
        let name = v.name();
        let file = file_name(v.location());
        let dynamic = v
            .value("host")
            .is_some_and(|h| h.eq_ignore_ascii_case("dynamic"));
        let kind = v.value("type").unwrap_or("");
        if dynamic && !kind.eq_ignore_ascii_case("user") && !acl_is_restrictive(&v, acls) {
            out.push(finding(
                &FRIEND_DYNAMIC,
                format!("{file} [{name}] type={kind} host=dynamic without deny/permit"),
                at(&v, v.get("host")),
            ));
        }
        if let Some(e) = v.get("requirecalltoken").filter(|e| is_false(&e.value)) {
            out.push(finding(
                &NO_CALLTOKEN,
                format!("{file} [{name}] requirecalltoken={}", e.value),
                &e.location,
            ));
        }
        if let Some(e) = v
            .get("encryption")
            .filter(|e| general_encrypted && !encryption_on(&e.value))
        {
            out.push(finding(
                &NO_ENCRYPTION,
                format!("{file} [{name}] encryption={} overrides [general]", e.value),
                &e.location,
            ));
        }
        if let Some(e) = v
            .get("auth")
            .filter(|e| list(&e.value).any(|a| a.eq_ignore_ascii_case("plaintext")))
        {
            out.push(finding(
                &PLAINTEXT,
                format!(
                    "{file} [{name}] auth={} allows the secret to be sent in the clear",
                    e.value
                ),
                &e.location,
            ));
        }
        if is_unauthenticated(&v, acls) {
            out.push(finding(
                &GUEST,
                format!(
                    "{file} [{name}] type={kind} has no secret, inkeys or deny/permit: anyone can call in as '{name}' into context '{}'",
                    v.value("context").unwrap_or("default")
                ),
                v.location(),
            ));
        }
    }
    out
}

/// `encryption=yes` or a cipher name (`aes128`).
fn encryption_on(v: &str) -> bool {
    is_true(v) || v.trim().eq_ignore_ascii_case("aes128")
}

#[cfg(test)]
mod tests;
