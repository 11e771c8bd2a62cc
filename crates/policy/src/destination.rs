//! The destination policy (`[policy]`): which numbers calls out through the trunks may reach.
//! The dialled number is normalised in the configured dialling context and classified
//! (`numbers`); blocked countries and named lists are checked first, then the allowed
//! countries. A number libphonenumber cannot place (an unassigned area code) counts for its
//! code's main country. A refused call gets 403 with a Reason header naming the rule; in
//! monitor mode nothing is refused and the would-be refusals are counted.

use sipwarden_config::{PolicyConfig, PolicyMode};
use sipwarden_sip::{HeaderName, StatusCode};
use sipwarden_stages::{CallPolicy, CallRequest, Decision, Destination, Outcome, Reason, Verdict};

use std::sync::Arc;

use crate::numbers::{DialContext, Lists, NUMBER_CACHE, NamedList, NumberCache, normalise};

/// Why a destination is refused: the metric label and the call record's reason.
const BLOCKED: &str = "destination_blocked";
const NOT_ALLOWED: &str = "destination_not_allowed";

/// The destination policy.
#[derive(Debug)]
pub struct DestinationPolicy {
    ctx: DialContext,
    allow: Vec<String>,
    block_countries: Vec<String>,
    block_lists: Vec<(NamedList, &'static str)>,
    monitor: bool,
    /// Calls monitor mode let through that enforce mode would have refused.
    pub would_refuse: u64,
    /// Decisions not yet taken by the core.
    decisions: Vec<Decision>,
    /// Numbers already read (shared with the other policies by `from_config`).
    numbers: Arc<NumberCache>,
    /// The prefix lists in force (the operator's files or the shipped ones).
    lists: Arc<Lists>,
}

impl DestinationPolicy {
    /// The policy `[policy]` describes; an error names the key of a country libphonenumber
    /// does not know.
    pub fn new(cfg: &PolicyConfig) -> Result<Self, String> {
        let ctx = DialContext::new(&cfg.country)
            .map_err(|_| format!("policy.country: unknown country {:?}", cfg.country))?;
        for c in &cfg.allow_countries {
            DialContext::new(c)
                .map_err(|_| format!("policy.allow_countries: unknown country {c:?}"))?;
        }
        let mut block_countries = Vec::new();
        let mut block_lists = Vec::new();
        for c in &cfg.block_countries {
            match NamedList::by_name(c) {
                Some(list) => block_lists.push((list, list_name(list))),
                None => {
                    DialContext::new(c).map_err(|_| {
                        format!("policy.block_countries: unknown country or list {c:?}")
                    })?;
                    block_countries.push(c.clone());
                }
            }
        }
        // libphonenumber's metadata is read on first use (~0.4 s in a debug build, tens of
        // milliseconds optimised): read it now, at start, not on the first call, where it
        // stalled the call core long enough for peers to retransmit.
        let _ = normalise("+12125550100", ctx);
        Ok(Self {
            ctx,
            allow: cfg.allow_countries.clone(),
            block_countries,
            block_lists,
            monitor: cfg.mode == PolicyMode::Monitor,
            would_refuse: 0,
            decisions: Vec::new(),
            numbers: NumberCache::new(NUMBER_CACHE),
            lists: Arc::new(Lists::shipped()),
        })
    }

    /// The policy reading numbers through `numbers` (shared with the other policies).
    pub fn with_numbers(mut self, numbers: Arc<NumberCache>) -> Self {
        self.numbers = numbers;
        self
    }

    /// The policy reading the named lists from `lists` (the operator's files).
    pub fn with_lists(mut self, lists: Arc<Lists>) -> Self {
        self.lists = lists;
        self
    }

    /// What the policy says of a dialled number: `None` to let it through, else the refusal's
    /// code and its words.
    pub fn judge(&self, dialled: &str) -> Option<(&'static str, String)> {
        let Ok(n) = self.numbers.normalise(dialled, self.ctx) else {
            // Not a number: refused where only some countries are allowed.
            return (!self.allow.is_empty())
                .then(|| (NOT_ALLOWED, "not a phone number".to_owned()));
        };
        if let Some((_, name)) = self
            .block_lists
            .iter()
            .find(|(l, _)| self.lists.contains(*l, &n))
        {
            return Some((BLOCKED, format!("{} is on the {name} list", n.e164)));
        }
        let country = n.country.as_deref().or(n.code_country.as_deref());
        if let Some(c) = country.filter(|c| self.block_countries.iter().any(|b| b == c)) {
            return Some((BLOCKED, format!("{} is in blocked country {c}", n.e164)));
        }
        if !self.allow.is_empty() && !country.is_some_and(|c| self.allow.iter().any(|a| a == c)) {
            return Some((
                NOT_ALLOWED,
                format!(
                    "{} is in {}, not an allowed country",
                    n.e164,
                    country.unwrap_or("no country")
                ),
            ));
        }
        None
    }
}

/// A shipped list's configuration name.
pub(crate) fn list_name(l: NamedList) -> &'static str {
    match l {
        NamedList::Premium => "premium",
        NamedList::HighRisk => "high-risk",
        NamedList::Satellite => "satellite",
    }
}

impl CallPolicy for DestinationPolicy {
    fn name(&self) -> &'static str {
        "destination"
    }

    fn admit(&mut self, call: &CallRequest<'_>) -> Verdict {
        // Calls out through a trunk: the PBX's and phones' own calls stay inside.
        if !matches!(call.destination, Destination::Trunk(_)) {
            return Verdict::Continue;
        }
        let Some((code, why)) = self.judge(call.callee) else {
            return Verdict::Continue;
        };
        self.decisions.push(Decision {
            call: call.call,
            rule: "destination".to_owned(),
            outcome: if self.monitor {
                Outcome::WouldRefuse
            } else {
                Outcome::Refused
            },
            detail: format!("{code}: {why}"),
            disable: None,
        });
        if self.monitor {
            self.would_refuse += 1;
            return Verdict::Continue;
        }
        let text = why.replace(['"', '\\'], "");
        Verdict::Reply {
            status: StatusCode::FORBIDDEN,
            reason: Reason::Policy(code),
            phrase: Some(if code == BLOCKED {
                "Destination Blocked"
            } else {
                "Destination Not Allowed"
            }),
            headers: vec![(
                HeaderName::Reason,
                format!("SIP;cause=403;text=\"{code}: {text}\""),
            )],
        }
    }

    fn take_decisions(&mut self, out: &mut Vec<Decision>) {
        out.append(&mut self.decisions);
    }

    fn gauges(&self, out: &mut Vec<sipwarden_stages::PolicyGauge>) {
        let (hits, misses) = self.numbers.counts();
        out.extend([
            sipwarden_stages::PolicyGauge {
                name: "sipwarden_number_cache_entries",
                help: "Numbers held normalised for the call policies (bounded by policy.number_cache).",
                counter: false,
                value: u64::try_from(self.numbers.len()).unwrap_or(u64::MAX),
            },
            sipwarden_stages::PolicyGauge {
                name: "sipwarden_number_cache_hits_total",
                help: "Numbers the call policies found already normalised.",
                counter: true,
                value: hits,
            },
            sipwarden_stages::PolicyGauge {
                name: "sipwarden_number_cache_misses_total",
                help: "Numbers the call policies had libphonenumber parse.",
                counter: true,
                value: misses,
            },
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str], block: &[&str], mode: PolicyMode) -> DestinationPolicy {
        DestinationPolicy::new(&PolicyConfig {
            country: "US".into(),
            allow_countries: allow.iter().map(|s| (*s).to_owned()).collect(),
            block_countries: block.iter().map(|s| (*s).to_owned()).collect(),
            mode,
            ..PolicyConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn the_lab_policy_allows_us_and_canada_and_blocks_the_lists() {
        let p = policy(
            &["US", "CA"],
            &["high-risk", "premium"],
            PolicyMode::Enforce,
        );
        for ok in ["+12125550100", "2125550100", "+14165550100", "+15557654321"] {
            assert_eq!(p.judge(ok), None, "{ok}");
        }
        let (code, why) = p.judge("011442079460000").unwrap();
        assert_eq!(code, NOT_ALLOWED);
        assert!(why.contains("+442079460000 is in GB"), "{why}");
        let (code, why) = p.judge("+19005551234").unwrap();
        assert_eq!(code, BLOCKED);
        assert!(why.contains("premium"), "{why}");
        let (code, why) = p.judge("+5371234567").unwrap();
        assert_eq!(code, BLOCKED);
        assert!(why.contains("high-risk"), "{why}");
        // The Dominican Republic shares +1 but is on the high-risk list.
        assert_eq!(p.judge("+18095551234").map(|r| r.0), Some(BLOCKED));
        // Satellite: no country, so not allowed.
        assert_eq!(p.judge("+881631234567").map(|r| r.0), Some(NOT_ALLOWED));
        assert_eq!(p.judge("alice").map(|r| r.0), Some(NOT_ALLOWED));
    }

    #[test]
    fn countries_can_be_blocked_without_an_allow_list() {
        let p = policy(&[], &["CU", "satellite"], PolicyMode::Enforce);
        assert_eq!(p.judge("+5371234567").map(|r| r.0), Some(BLOCKED));
        assert_eq!(p.judge("+881631234567").map(|r| r.0), Some(BLOCKED));
        assert_eq!(p.judge("+442079460000"), None);
        assert_eq!(
            p.judge("alice"),
            None,
            "no allow list: not a number is not refused"
        );
    }

    #[test]
    fn unknown_countries_are_errors_naming_the_key() {
        let e = DestinationPolicy::new(&PolicyConfig {
            country: "US".into(),
            allow_countries: vec!["ZZ".into()],
            block_countries: Vec::new(),
            mode: PolicyMode::Enforce,
            ..PolicyConfig::default()
        })
        .unwrap_err();
        assert!(
            e.contains("policy.allow_countries") && e.contains("ZZ"),
            "{e}"
        );
    }

    #[test]
    fn monitor_mode_counts_and_refuses_nothing() {
        let p = policy(&["US"], &["premium"], PolicyMode::Monitor);
        assert!(p.monitor);
        assert_eq!(p.judge("+19005551234").map(|r| r.0), Some(BLOCKED));
    }
}
