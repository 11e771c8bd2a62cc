//! The dialplan (`extensions.conf`) against the channel configurations: which callers reach
//! extensions that dial out, the heart of toll fraud.
//!
//! Heuristics, stated once:
//! - an *outbound extension* is a pattern (`_…`) that is open-ended (`.` or `!`, as in `_X.`,
//!   `_9011.`, `_.`) or international-looking (`_00…`, `_011…`, `_9011…`, `_+…`) and that runs
//!   `Dial` in one of its priorities;
//! - a context *reaches* what it holds and, recursively, what it `include =>`s; `Goto`/`Gosub`
//!   into other contexts are not followed;
//! - *guests* are chan_sip's `[general]` `context` while `allowguest` is not `no`, res_pjsip's
//!   `[anonymous]` endpoint and chan_iax2 users that need no authentication; *trunks* are
//!   chan_sip `type=peer` sections with a fixed `host=` and res_pjsip endpoints with an
//!   `identify`;
//! - a *caller-ID check* is any `GotoIf`, `ExecIf`, `GosubIf` or `CALLERID` use in an earlier
//!   priority of the same extension.

use std::collections::{HashSet, VecDeque};

use crate::asterisk::{ConfFile, Entry};
use crate::rules::acl::NamedAcls;
use crate::rules::common::{file_name, finding};
use crate::rules::{AsteriskConfig, iax, pjsip, sip_conf};
use crate::{Finding, Location, Rule, Severity};

const GUEST_DIALS_OUT: Rule = Rule {
    id: "SW-EXT-001",
    severity: Severity::Critical,
    title: "unauthenticated callers reach an extension that dials out",
    fix: "Point guest/anonymous traffic (`context=` of sip.conf [general], pjsip [anonymous], \
          iax [guest]) at a context that only reaches local extensions, and remove the \
          `include =>` that brings outbound patterns into it.",
};
const TRUNK_DIALS_OUT: Rule = Rule {
    id: "SW-EXT-002",
    severity: Severity::Medium,
    title: "calls arriving from a trunk can dial back out",
    fix: "Give trunks a `context=` that only reaches your DIDs (fixed extensions), without \
          `include =>` of outbound contexts, so a spoofed provider cannot use you as a relay.",
};
const NO_CID_CHECK: Rule = Rule {
    id: "SW-EXT-003",
    severity: Severity::Low,
    title: "an outbound extension dials without checking who is calling",
    fix: "Before `Dial`, check the caller (e.g. `GotoIf($[\"${CALLERID(num)}\" = \"\"]?deny)` or \
          a `GosubIf` to a permission check), or only include the context from authenticated \
          devices' contexts.",
};

/// The rules of this module.
pub const RULES: &[Rule] = &[GUEST_DIALS_OUT, TRUNK_DIALS_OUT, NO_CID_CHECK];

/// One extension: its pattern and its priorities in order.
struct Extension<'a> {
    pattern: &'a str,
    steps: Vec<(&'a Entry, &'a str)>,
}

/// One context (all same-name sections of all dialplan files together, as pbx_config merges
/// them).
struct Context<'a> {
    name: &'a str,
    includes: Vec<&'a str>,
    extensions: Vec<Extension<'a>>,
}

fn contexts(confs: &[ConfFile]) -> Vec<Context<'_>> {
    let mut out: Vec<Context<'_>> = Vec::new();
    for conf in confs {
        for view in conf.objects() {
            let name = view.name();
            if name.eq_ignore_ascii_case("general") || name.eq_ignore_ascii_case("globals") {
                continue;
            }
            let idx = match out.iter().position(|c| c.name.eq_ignore_ascii_case(name)) {
                Some(i) => i,
                None => {
                    out.push(Context {
                        name,
                        includes: Vec::new(),
                        extensions: Vec::new(),
                    });
                    out.len() - 1
                }
            };
            let Some(ctx) = out.get_mut(idx) else {
                continue;
            };
            let mut current: Option<&str> = None;
            for e in &view.entries {
                let (pattern, step) = if e.is("exten") {
                    let mut parts = e.value.splitn(2, ',');
                    let pattern = parts.next().unwrap_or("").trim();
                    current = Some(pattern);
                    (pattern, parts.next().unwrap_or(""))
                } else if e.is("same") {
                    match current {
                        Some(p) => (p, e.value.as_str()),
                        None => continue,
                    }
                } else {
                    if e.is("include") {
                        let target = e.value.split([',', '|']).next().unwrap_or("").trim();
                        if !target.is_empty() {
                            ctx.includes.push(target);
                        }
                    }
                    continue;
                };
                // `priority,app(args)`: the app is what follows the priority.
                let app = step.split_once(',').map_or("", |(_, a)| a.trim());
                match ctx.extensions.iter_mut().find(|x| x.pattern == pattern) {
                    Some(x) => x.steps.push((e, app)),
                    None => ctx.extensions.push(Extension {
                        pattern,
                        steps: vec![(e, app)],
                    }),
                }
            }
        }
    }
    out
}

/// Open-ended or international-looking pattern (see the module docs).
fn is_outbound_pattern(pattern: &str) -> bool {
    let p = pattern.split('/').next().unwrap_or("");
    let Some(body) = p.strip_prefix('_') else {
        return false;
    };
    body.contains(['.', '!'])
        || ["00", "011", "9011", "+"]
            .iter()
            .any(|pre| body.starts_with(pre))
}

fn app_name(app: &str) -> &str {
    app.split(['(', ',']).next().unwrap_or("").trim()
}

fn is_dial(app: &str) -> bool {
    app_name(app).eq_ignore_ascii_case("dial")
}

fn is_cid_check(app: &str) -> bool {
    let name = app_name(app);
    ["gotoif", "execif", "gosubif"]
        .iter()
        .any(|c| name.eq_ignore_ascii_case(c))
        || app.to_ascii_uppercase().contains("CALLERID")
}

/// The first `Dial` step of an outbound extension.
fn outbound_dial<'a>(x: &Extension<'a>) -> Option<&'a Entry> {
    if !is_outbound_pattern(x.pattern) {
        return None;
    }
    x.steps
        .iter()
        .find(|(_, app)| is_dial(app))
        .map(|(e, _)| *e)
}

/// A place calls enter the dialplan from.
struct Source {
    what: String,
    context: String,
    location: Location,
    guest: bool,
}

fn sources(config: &AsteriskConfig) -> Vec<Source> {
    let mut out = Vec::new();
    let acls = NamedAcls::new(&config.acl);
    for conf in &config.sip {
        let file = file_name(&Location {
            file: conf.path.clone(),
            line: 0,
        });
        if let Some((context, location)) = sip_conf::guest_context(conf) {
            out.push(Source {
                what: format!("guests of {file} (allowguest)"),
                context,
                location,
                guest: true,
            });
        }
        for peer in sip_conf::peers(conf) {
            let host = peer.value("host").unwrap_or("");
            let is_peer = peer
                .value("type")
                .is_some_and(|t| t.eq_ignore_ascii_case("peer"));
            if is_peer && !host.is_empty() && !host.eq_ignore_ascii_case("dynamic") {
                out.push(Source {
                    what: format!("trunk {file} [{}]", peer.name()),
                    context: sip_conf::peer_context(conf, &peer),
                    location: peer
                        .get("context")
                        .map_or_else(|| peer.location().clone(), |e| e.location.clone()),
                    guest: false,
                });
            }
        }
    }
    for conf in &config.pjsip {
        let file = file_name(&Location {
            file: conf.path.clone(),
            line: 0,
        });
        if let Some((context, location)) = pjsip::anonymous_context(conf) {
            out.push(Source {
                what: format!("the {file} [anonymous] endpoint"),
                context,
                location,
                guest: true,
            });
        }
        for (name, context, location) in pjsip::trunk_contexts(conf) {
            out.push(Source {
                what: format!("trunk {file} [{name}]"),
                context,
                location,
                guest: false,
            });
        }
    }
    for conf in &config.iax {
        let file = file_name(&Location {
            file: conf.path.clone(),
            line: 0,
        });
        for (name, context, location) in iax::guest_contexts(conf, &acls) {
            out.push(Source {
                what: format!("unauthenticated {file} user [{name}]"),
                context,
                location,
                guest: true,
            });
        }
    }
    out
}

/// The contexts `start` reaches through `include =>`, each with the include path to it.
fn reach<'c, 'a>(contexts: &'c [Context<'a>], start: &str) -> Vec<(&'c Context<'a>, Vec<&'a str>)> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut queue: VecDeque<(&str, Vec<&'a str>)> = VecDeque::new();
    queue.push_back((start, Vec::new()));
    let mut out = Vec::new();
    while let Some((name, path)) = queue.pop_front() {
        if !seen.insert(name.to_ascii_lowercase()) {
            continue;
        }
        let Some(ctx) = contexts.iter().find(|c| c.name.eq_ignore_ascii_case(name)) else {
            continue;
        };
        for inc in &ctx.includes {
            let mut p = path.clone();
            p.push(*inc);
            queue.push_back((inc, p));
        }
        out.push((ctx, path));
    }
    out
}

/// Runs the dialplan rules over every file of the audit.
pub fn check(config: &AsteriskConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    let contexts = contexts(&config.extensions);
    if contexts.is_empty() {
        return out;
    }
    for src in sources(config) {
        for (ctx, path) in reach(&contexts, &src.context) {
            for x in &ctx.extensions {
                let Some(dial) = outbound_dial(x) else {
                    continue;
                };
                let via = if path.is_empty() {
                    String::new()
                } else {
                    format!(" via include => {}", path.join(" => "))
                };
                let rule = if src.guest {
                    &GUEST_DIALS_OUT
                } else {
                    &TRUNK_DIALS_OUT
                };
                out.push(finding(
                    rule,
                    format!(
                        "calls from {} go to context '{}' ({}:{}), which reaches outbound pattern '{}' in [{}]{via}",
                        src.what,
                        src.context,
                        file_name(&src.location),
                        src.location.line,
                        x.pattern,
                        ctx.name
                    ),
                    &dial.location,
                ));
            }
        }
    }
    for ctx in &contexts {
        for x in &ctx.extensions {
            let Some(dial) = outbound_dial(x) else {
                continue;
            };
            let checked = x
                .steps
                .iter()
                .take_while(|(e, _)| !std::ptr::eq(*e, dial))
                .any(|(_, app)| is_cid_check(app));
            if !checked {
                out.push(finding(
                    &NO_CID_CHECK,
                    format!(
                        "{} [{}] exten {} dials out with no GotoIf/ExecIf/CALLERID check before it",
                        file_name(&dial.location),
                        ctx.name,
                        x.pattern
                    ),
                    &dial.location,
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
