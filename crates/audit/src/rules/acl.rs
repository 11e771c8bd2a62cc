//! Named ACLs (`acl.conf`), and the `acl=` references to them from the other files.
//!
//! Follows `main/named_acl.c` and `main/acl.c`: every section but `[general]` is a named ACL
//! (templates are not); its only options are `permit` and `deny` (comma lists, `!` inverts);
//! rules apply in order, the last match wins, and an address no rule matches is allowed. An
//! ACL with no rules "accepts addresses unconditionally". An `acl=` naming an ACL that is not
//! defined is marked invalid and rejects every address (fails closed) — unless realtime
//! (`acls` family, which the audit cannot see) defines it. A line Asterisk cannot parse makes
//! it discard the whole file; at startup every named ACL is then missing from its list, and a
//! lookup in a missing list lets every address through (fails open).
//!
//! Openness is judged per address family the ACL mentions, by its rules that cover the whole
//! family (`0.0.0.0/0`, `::/0`); a family an ACL does not mention is assumed unused, because
//! the audit cannot see which families Asterisk binds.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::asterisk::{ConfFile, View};
use crate::rules::AsteriskConfig;
use crate::rules::common::{file_name, finding, list, parse_net};
use crate::{Finding, Rule, Severity};

const PERMITS_ALL: Rule = Rule {
    id: "SW-ACL-001",
    severity: Severity::Medium,
    title: "a named ACL lets every address through (no deny of everything, or a later permit of \
            everything)",
    fix: "Start the ACL with `deny=0.0.0.0/0.0.0.0` (and `deny=::/0` for IPv6), then \
          `permit=<network>/<mask>` for the networks that may connect.",
};
const EMPTY: Rule = Rule {
    id: "SW-ACL-002",
    severity: Severity::Medium,
    title: "a named ACL has no permit/deny rules, so it accepts every address",
    fix: "Add `deny=0.0.0.0/0.0.0.0` and `permit=<network>/<mask>` lines to it, or remove it and \
          the `acl=` lines that name it.",
};
/// Medium: Asterisk fails closed (the object rejects everyone), so this is an outage or an
/// ACL kept in realtime that the audit cannot judge, not an open door.
const UNDEFINED: Rule = Rule {
    id: "SW-ACL-003",
    severity: Severity::Medium,
    title: "acl= names an ACL that acl.conf does not define",
    fix: "Define the ACL as a `[name]` section in acl.conf (names are case-sensitive) or correct \
          the `acl=` value.",
};
/// High: at startup the whole file is discarded, and every `acl=` then allows everyone.
const INVALID_LINE: Rule = Rule {
    id: "SW-ACL-004",
    severity: Severity::High,
    title: "acl.conf has a line Asterisk rejects, so it discards the file and named ACLs stop \
            filtering",
    fix: "Only `permit=` and `deny=` with an address, `address/bits` or `address/mask` (comma \
          separated, `!` to invert) belong in acl.conf sections; fix or remove the line.",
};

/// The rules of this module.
pub const RULES: &[Rule] = &[PERMITS_ALL, EMPTY, UNDEFINED, INVALID_LINE];

/// What a named ACL does to an address it has no specific rule for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Denies such addresses: it restricts.
    Restrictive,
    /// Lets them through; the reason, for messages.
    Open(String),
}

/// The named ACLs of one audit. Without acl.conf in the audit, every name is assumed to be
/// defined and restrictive (the audit cannot see the file that defines it).
#[derive(Clone, Debug, Default)]
pub(crate) struct NamedAcls {
    /// `None`: no acl.conf in this audit.
    known: Option<HashMap<String, Verdict>>,
}

impl NamedAcls {
    /// The ACLs of the given acl.conf files (none: nothing is known).
    pub(crate) fn new(files: &[ConfFile]) -> Self {
        if files.is_empty() {
            return Self::default();
        }
        let mut known = HashMap::new();
        for conf in files {
            let broken = !invalid_lines(conf).is_empty();
            for acl in named(conf) {
                let verdict = if broken {
                    Verdict::Open(format!(
                        "{} has a line Asterisk rejects, so the file is discarded",
                        file_name(acl.location())
                    ))
                } else {
                    judge(&acl)
                };
                // The first definition wins, as for repeated sections elsewhere.
                known.entry(acl.name().to_string()).or_insert(verdict);
            }
        }
        Self { known: Some(known) }
    }

    /// Whether acl.conf is part of the audit.
    pub(crate) fn is_known(&self) -> bool {
        self.known.is_some()
    }

    /// The verdict on `name`: `None` when it is undefined (or nothing is known).
    pub(crate) fn get(&self, name: &str) -> Option<&Verdict> {
        self.known.as_ref()?.get(name)
    }

    /// Whether an `acl=` naming `name` keeps the internet out. Unknown files and undefined names
    /// count as restrictive: the first by assumption, the second because Asterisk rejects every
    /// address when an ACL is undefined.
    pub(crate) fn restricts(&self, name: &str) -> bool {
        match &self.known {
            None => true,
            Some(k) => !matches!(k.get(name), Some(Verdict::Open(_))),
        }
    }

    /// Whether an `acl=` value (a comma list) restricts: one restrictive ACL is enough, since an
    /// address must pass every ACL named.
    pub(crate) fn value_restricts(&self, value: &str) -> bool {
        list(value).any(|n| self.restricts(n))
    }
}

/// The named ACLs of a file: real objects except `[general]`.
fn named(conf: &ConfFile) -> impl Iterator<Item = View<'_>> + '_ {
    conf.objects()
        .filter(|v| !v.name().eq_ignore_ascii_case("general"))
}

/// One `permit`/`deny` item: (allows, network), `!` inverting the sense. `None` when Asterisk
/// would reject it.
fn rule_item(key: &str, item: &str) -> Option<(bool, IpAddr, u8)> {
    let permit = key.eq_ignore_ascii_case("permit");
    let (allows, addr) = match item.strip_prefix('!') {
        Some(rest) => (!permit, rest),
        None => (permit, item),
    };
    // Asterisk parses the address with PARSE_PORT_FORBID: a bare address, no `:port`.
    addr.split('/').next()?.trim().parse::<IpAddr>().ok()?;
    parse_net(addr).map(|(ip, p)| (allows, ip, p))
}

fn is_rule_key(key: &str) -> bool {
    key.eq_ignore_ascii_case("permit") || key.eq_ignore_ascii_case("deny")
}

/// Whether `acl` denies addresses it has no specific rule for, in every family it mentions.
fn judge(acl: &View<'_>) -> Verdict {
    let mut families: Vec<(bool, bool)> = Vec::new(); // (is_v4, generic address allowed)
    for e in acl.entries.iter().filter(|e| is_rule_key(&e.key)) {
        for (allows, ip, prefix) in list(&e.value).filter_map(|i| rule_item(&e.key, i)) {
            let v4 = ip.is_ipv4();
            let idx = match families.iter().position(|f| f.0 == v4) {
                Some(i) => i,
                None => {
                    families.push((v4, true));
                    families.len() - 1
                }
            };
            if prefix == 0 {
                if let Some(f) = families.get_mut(idx) {
                    f.1 = allows;
                }
            }
        }
    }
    if families.is_empty() {
        return Verdict::Open("it has no permit/deny rules".into());
    }
    match families.iter().find(|f| f.1) {
        Some(&(v4, _)) => {
            let family = if v4 { "IPv4" } else { "IPv6" };
            Verdict::Open(format!(
                "{family} addresses no rule names are allowed (no deny of everything, or a \
                 permit of everything after it)"
            ))
        }
        None => Verdict::Restrictive,
    }
}

/// Lines of the named ACLs that Asterisk rejects: unknown keys and unparsable addresses.
fn invalid_lines(conf: &ConfFile) -> Vec<Finding> {
    let mut out = Vec::new();
    for s in conf
        .sections
        .iter()
        .filter(|s| !s.implicit && !s.name.eq_ignore_ascii_case("general"))
    {
        let file = file_name(&s.location);
        for e in &s.entries {
            let why = if !is_rule_key(&e.key) {
                Some(format!("'{}' is not an acl.conf option", e.key))
            } else {
                list(&e.value)
                    .find(|i| rule_item(&e.key, i).is_none())
                    .map(|i| format!("'{i}' is not an address or network"))
                    .or_else(|| {
                        list(&e.value)
                            .next()
                            .is_none()
                            .then(|| "the value is empty".to_string())
                    })
            };
            if let Some(why) = why {
                out.push(finding(
                    &INVALID_LINE,
                    format!(
                        "{file} [{}] {}={}: {why}; Asterisk discards the whole file and, at \
                         startup, every acl= then allows all addresses",
                        s.name, e.key, e.value
                    ),
                    &e.location,
                ));
            }
        }
    }
    out
}

/// Keys that name ACLs from acl.conf, in any of the audited files.
const REFERENCE_KEYS: &[&str] = &["acl", "contactacl", "contact_acl", "x5u_acl"];

/// Runs this module's rules: the ACLs of each acl.conf, and (when acl.conf is part of the
/// audit) the references to undefined ACLs from the other files.
pub fn check(config: &AsteriskConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    let acls = NamedAcls::new(&config.acl);
    for conf in &config.acl {
        out.extend(invalid_lines(conf));
        for acl in named(conf) {
            let file = file_name(acl.location());
            let name = acl.name();
            let has_rules = acl.entries.iter().any(|e| is_rule_key(&e.key));
            if !has_rules {
                out.push(finding(
                    &EMPTY,
                    format!(
                        "{file} [{name}] has no permit/deny: Asterisk accepts every address for \
                         whatever names acl={name}"
                    ),
                    acl.location(),
                ));
            } else if let Verdict::Open(why) = judge(&acl) {
                out.push(finding(
                    &PERMITS_ALL,
                    format!("{file} [{name}] lets every address through: {why}"),
                    acl.location(),
                ));
            }
        }
    }
    if !acls.is_known() {
        return out;
    }
    let referring = config
        .sip
        .iter()
        .chain(&config.pjsip)
        .chain(&config.iax)
        .chain(&config.stir_shaken);
    for conf in referring {
        // Own entries, templates included: each line is reported once, where it is.
        for s in conf.sections.iter() {
            for e in s
                .entries
                .iter()
                .filter(|e| REFERENCE_KEYS.iter().any(|k| e.is(k)))
            {
                for name in list(&e.value).filter(|n| acls.get(n).is_none()) {
                    out.push(finding(
                        &UNDEFINED,
                        format!(
                            "{} [{}] {}={name}: no ACL '{name}' in acl.conf; Asterisk rejects \
                             every address this ACL is applied to (unless realtime defines it)",
                            file_name(&e.location),
                            s.name,
                            e.key
                        ),
                        &e.location,
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
