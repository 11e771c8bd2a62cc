//! Passwords across `sip.conf`, `pjsip.conf` and `iax.conf`: weak ones (judged by
//! [`crate::secret::assess`]), ones shared between peers, endpoints and trunks, and plain-text
//! ones where Asterisk could store a hash. Findings never contain a secret.
//!
//! Secrets are read from real objects with templates applied, so a template's `secret=` is
//! judged (and counted as shared) once per peer that inherits it. `register =>` lines are not
//! read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::asterisk::{ConfFile, Entry, View};
use crate::rules::common::{file_name, finding, list};
use crate::rules::{AsteriskConfig, files, iax, pjsip, sip_conf};
use crate::secret::{Weakness, assess};
use crate::{Finding, Location, Rule, Severity};

const SHORT: Rule = Rule {
    id: "SW-SECRET-001",
    severity: Severity::High,
    title: "a SIP/IAX secret is shorter than 16 characters",
    fix: "Replace it with a random secret of at least 16 characters (`sipwarden secret generate` makes \
          one) and update the device or provider.",
};
const LOW_ENTROPY: Rule = Rule {
    id: "SW-SECRET-002",
    severity: Severity::High,
    title: "a SIP/IAX secret is easy to guess",
    fix: "Replace it with a random secret (`sipwarden secret generate`), not a word, date or keyboard \
          pattern.",
};
const MATCHES_RELATED: Rule = Rule {
    id: "SW-SECRET-003",
    severity: Severity::Critical,
    title: "a SIP/IAX secret equals the username, extension or section name",
    fix: "Replace it with a random secret unrelated to the account (`sipwarden secret generate`); \
          scanners such as svcrack try the extension as password first.",
};
const COMMON: Rule = Rule {
    id: "SW-SECRET-004",
    severity: Severity::Critical,
    title: "a SIP/IAX secret is a commonly used password",
    fix: "Replace it with a random secret (`sipwarden secret generate`); common passwords are the first \
          guesses of every SIP scanner.",
};
const REUSED: Rule = Rule {
    id: "SW-SECRET-005",
    severity: Severity::High,
    title: "the same secret is used by several peers, endpoints or trunks",
    fix: "Give each peer, endpoint and trunk its own random secret, so one leaked device \
          password does not open the others.",
};
const PLAIN: Rule = Rule {
    id: "SW-SECRET-006",
    severity: Severity::Info,
    title: "a secret is stored in plain text where a hash would do",
    fix: "chan_sip: replace `secret=` with `md5secret=` (md5 of `user:realm:secret`); res_pjsip: \
          `auth_type=md5` with `md5_cred=`.",
};

/// The rules of this module.
pub const RULES: &[Rule] = &[SHORT, LOW_ENTROPY, MATCHES_RELATED, COMMON, REUSED, PLAIN];

/// One secret in one object.
struct Use<'a> {
    /// "sip.conf [6001]".
    place: String,
    /// The key it is set with (`secret`, `password`, `register`, `auth`).
    key: &'a str,
    /// The secret itself: never put in a message.
    secret: &'a str,
    /// The line.
    location: &'a Location,
    related: Vec<String>,
}

impl<'a> Use<'a> {
    fn new(place: String, entry: &'a Entry, related: Vec<String>) -> Self {
        Self {
            place,
            key: &entry.key,
            secret: &entry.value,
            location: &entry.location,
            related,
        }
    }
}

fn related(view: &View<'_>, keys: &[&str]) -> Vec<String> {
    let mut r = vec![view.name().to_string()];
    for k in keys {
        if let Some(v) = view.value(k).filter(|v| !v.trim().is_empty()) {
            r.push(v.trim().to_string());
        }
    }
    r
}

fn place(view: &View<'_>) -> String {
    format!("{} [{}]", file_name(view.location()), view.name())
}

fn secret_entry<'a>(view: &View<'a>, key: &str) -> Option<&'a Entry> {
    view.get(key).filter(|e| !e.value.is_empty())
}

fn collect<'a>(config: &'a AsteriskConfig, out: &mut Vec<Use<'a>>, plain: &mut Vec<Finding>) {
    for conf in &config.sip {
        for peer in sip_conf::peers(conf) {
            let Some(entry) = secret_entry(&peer, "secret") else {
                continue;
            };
            if peer.get("md5secret").is_none() {
                plain.push(finding(
                    &PLAIN,
                    format!("{} stores secret= in plain text", place(&peer)),
                    &entry.location,
                ));
            }
            out.push(Use::new(
                place(&peer),
                entry,
                related(&peer, &["username", "defaultuser", "fromuser", "authuser"]),
            ));
        }
    }
    for conf in config.sip.iter().chain(&config.iax) {
        registrations(conf, out);
    }
    for conf in &config.iax {
        for v in iax::objects(conf) {
            if let Some(entry) = secret_entry(&v, "secret") {
                out.push(Use::new(place(&v), entry, related(&v, &["username"])));
            }
        }
    }
    for conf in &config.pjsip {
        collect_pjsip(conf, out, plain);
    }
}

/// `register =>` lines of `[general]` (chan_sip and chan_iax2):
/// `[peer?][transport://]user[@domain][:secret[:authuser]]@host[:port][/exten][~expiry]`, and
/// chan_sip `[authentication]` `auth = user:secret@realm`. These hold the provider's
/// credentials, which matter most for reuse.
fn registrations<'a>(conf: &'a ConfFile, out: &mut Vec<Use<'a>>) {
    for section in conf.sections_named("general") {
        for e in section.get_all("register") {
            let v = e.value.split_once('?').map_or(e.value.as_str(), |(_, r)| r);
            let v = v.split_once("://").map_or(v, |(_, r)| r);
            let Some((creds, host)) = v.rsplit_once('@') else {
                continue;
            };
            let mut parts = creds.splitn(3, ':');
            let user = parts.next().unwrap_or("");
            let Some(secret) = parts
                .next()
                .filter(|s| !s.is_empty() && !s.starts_with('['))
            else {
                continue;
            };
            let mut related = vec![user.to_string(), host.to_string()];
            related.extend(parts.next().map(str::to_string));
            out.push(Use {
                place: format!(
                    "{} [general] register => {user}@{host}",
                    file_name(&e.location)
                ),
                key: "secret",
                secret,
                location: &e.location,
                related,
            });
        }
    }
    for section in conf.sections_named("authentication") {
        for e in section.get_all("auth") {
            let Some((creds, realm)) = e.value.rsplit_once('@') else {
                continue;
            };
            // `user#md5secret@realm` stores a hash, not a secret.
            let Some((user, secret)) = creds.split_once(':') else {
                continue;
            };
            out.push(Use {
                place: format!(
                    "{} [authentication] auth for {user}@{realm}",
                    file_name(&e.location)
                ),
                key: &e.key,
                secret,
                location: &e.location,
                related: vec![user.to_string(), realm.to_string()],
            });
        }
    }
}

fn collect_pjsip<'a>(conf: &'a ConfFile, out: &mut Vec<Use<'a>>, plain: &mut Vec<Finding>) {
    let endpoints: Vec<View<'_>> = pjsip::of_type(conf, "endpoint").collect();
    for auth in pjsip::of_type(conf, "auth") {
        // `userpass` (the default) and, since Asterisk 20, `digest` read `password=`; `md5`
        // reads `md5_cred=` instead.
        let userpass = auth.value("auth_type").is_none_or(|t| {
            t.trim().eq_ignore_ascii_case("userpass") || t.trim().eq_ignore_ascii_case("digest")
        });
        let Some(entry) = secret_entry(&auth, "password").filter(|_| userpass) else {
            continue;
        };
        plain.push(finding(
            &PLAIN,
            format!(
                "{} auth_type=userpass stores password= in plain text",
                place(&auth)
            ),
            &entry.location,
        ));
        let mut rel = related(&auth, &["username"]);
        for ep in &endpoints {
            let uses = ["auth", "outbound_auth"].iter().any(|k| {
                ep.get_all(k)
                    .iter()
                    .any(|e| list(&e.value).any(|a| a == auth.name()))
            });
            if uses {
                rel.push(ep.name().to_string());
            }
        }
        out.push(Use::new(place(&auth), entry, rel));
    }
}

/// The rule reporting a weakness: one rule per kind, so each can be filtered on its own.
fn rule_for(weakness: &Weakness) -> &'static Rule {
    match weakness {
        Weakness::TooShort { .. } => &SHORT,
        Weakness::LowEntropy { .. } => &LOW_ENTROPY,
        Weakness::MatchesRelated => &MATCHES_RELATED,
        Weakness::Common => &COMMON,
    }
}

/// Runs the secret rules over every file of the audit.
pub fn check(config: &AsteriskConfig) -> Vec<Finding> {
    let mut uses = Vec::new();
    let mut out = Vec::new();
    collect(config, &mut uses, &mut out);

    for u in &uses {
        let related: Vec<&str> = u.related.iter().map(String::as_str).collect();
        for weakness in assess(u.secret, &related).weaknesses {
            out.push(finding(
                rule_for(&weakness),
                format!("{}: {} is {weakness}", u.place, u.key),
                u.location,
            ));
        }
    }

    // Reuse: group by value; a place is an object, so one template line shared by two peers is
    // reuse too.
    let mut by_secret: BTreeMap<&str, Vec<&Use<'_>>> = BTreeMap::new();
    for u in &uses {
        by_secret.entry(u.secret).or_default().push(u);
    }
    for group in by_secret.values() {
        let places: BTreeSet<&str> = group.iter().map(|u| u.place.as_str()).collect();
        if places.len() < 2 {
            continue;
        }
        for u in group {
            let others: Vec<&str> = places.iter().copied().filter(|p| *p != u.place).collect();
            let shown: Vec<&str> = others.iter().take(5).copied().collect();
            let more = others.len().saturating_sub(shown.len());
            let tail = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            out.push(finding(
                &REUSED,
                format!(
                    "{}: {} is also used by {}{tail}",
                    u.place,
                    u.key,
                    shown.join(", ")
                ),
                u.location,
            ));
        }
    }

    // Files holding secrets (includes too: the line says where the secret really is).
    let holders: BTreeSet<PathBuf> = uses.iter().map(|u| u.location.file.clone()).collect();
    for path in holders {
        out.extend(files::check_secret_file_mode(&path));
    }
    out
}

#[cfg(test)]
mod tests;
