//! The velocity limits (`[[policy.limits]]`): how many calls a trunk, an account, a prefix or
//! the whole gateway may have at once, per second, minute or hour, to foreign countries, to one
//! number, and how many minutes a day. Toll fraud is fast (a cracked extension dials hundreds
//! of premium calls in an hour): a limit refuses the calls beyond it, and can pull the kill
//! switch on the trunk or account.
//!
//! How calls are counted:
//! - With `critical = N`, calls 1 to N pass and call N+1 is refused (minutes: new calls are
//!   refused once the last 24 hours reached N minutes).
//! - Only calls the policy lets through count, toward rates as toward concurrency: a limit
//!   caps the calls that go through at N per window, and callers retrying a refused call do
//!   not keep the limit shut after the window has passed. A call over a monitor-mode limit is
//!   let through, so it counts.
//! - Windows roll (`counters`): no daily or hourly reset to wait for.
//! - Prefix limits, international and same-number counts look at calls out through a trunk
//!   only, the ones that are billed; the callee is normalised in the `[policy] country`
//!   dialling context. International: the callee's country (its code's main country when
//!   libphonenumber cannot place it, none for satellite and other international networks)
//!   is not the dialling context's.
//! - Minutes are counted when an answered call ends (whole seconds, rounded up): a running
//!   call's minutes count from its end, and a running call is not cut off here (spend caps
//!   do that).
//!
//! Warnings are reported once per crossing of the level (the call that brings the count to
//! it), and not again within the limit's window (a minute for concurrency) if the count
//! hovers there. A disable is asked once per window likewise.
//!
//! The counters ([`Counters`]) and the running calls ([`VelocityState`]) are handed from one
//! policy to the next on a reload, keyed by limit and trunk names, not positions.

mod counters;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use lru::LruCache;
use sipwarden_config::{LimitAction, LimitKind, LimitScope, PolicyConfig, PolicyMode};
use sipwarden_sip::{HeaderName, StatusCode};
use sipwarden_stages::{
    CallPolicy, CallRequest, Decision, Destination, Outcome, PolicyGauge, Reason, Subject, Verdict,
};

pub use counters::{BUCKETS, CounterKey, Counters, MemoryCounters, Tally};

use crate::numbers::{DialContext, MAX_DIALLED, NUMBER_CACHE, Number, NumberCache, normalise};

/// Why a call is refused: the metric label and the call record's reason.
pub const VELOCITY_LIMIT: &str = "velocity_limit";

/// Decisions kept for the core to take; beyond, new ones are counted and dropped (a core that
/// does not ask must not make the policy grow).
const MAX_PENDING_DECISIONS: usize = 1024;

/// How long a warning or a disable of a concurrency limit is not repeated.
const GAUGE_MARK_WINDOW: Duration = Duration::from_secs(60);

/// One day: the window of minute limits.
const DAY: Duration = Duration::from_secs(86_400);

/// One configured limit, ready.
#[derive(Debug)]
struct Limit {
    /// Its name (counters' key).
    name: String,
    /// `velocity:<name>` (decisions' rule).
    rule: String,
    scope: LimitScope,
    subject: Option<String>,
    kind: LimitKind,
    warning: Option<u64>,
    critical: u64,
    status: StatusCode,
    action: LimitAction,
    monitor: bool,
}

impl Limit {
    /// The counted amount a level stands for (minute limits count seconds).
    fn level(&self, level: u64) -> u64 {
        match self.kind {
            LimitKind::MinutesPerDay => level.saturating_mul(60),
            _ => level,
        }
    }

    /// The window warnings and disables are not repeated in.
    fn mark_window(&self) -> Duration {
        self.kind.window().unwrap_or(GAUGE_MARK_WINDOW)
    }

    /// `count` (calls, or seconds for minute limits) in words.
    fn counted(&self, count: u64) -> String {
        match self.kind {
            LimitKind::Concurrent => format!("{count} calls at once"),
            LimitKind::CallsPerSecond => format!("{count} calls in a second"),
            LimitKind::CallsPerMinute => format!("{count} calls in a minute"),
            LimitKind::CallsPerHour => format!("{count} calls in an hour"),
            LimitKind::InternationalPerHour => format!("{count} international calls in an hour"),
            LimitKind::SameNumberPerHour => format!("{count} calls to one number in an hour"),
            LimitKind::MinutesPerDay => format!("{} minutes in a day", count / 60),
        }
    }
}

/// Whose count a call falls in.
fn whose(scope: LimitScope, subject: &str) -> String {
    match scope {
        LimitScope::All => "all calls".to_owned(),
        s => format!("{} {subject}", s.as_str()),
    }
}

/// A call while it runs: the gauges it holds and the minute windows it counts in.
#[derive(Debug, Default)]
struct Running {
    gauges: Vec<CounterKey>,
    minutes: Vec<CounterKey>,
    answered: Option<Instant>,
}

/// What the velocity limits did, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VelocityStats {
    /// Counter entries held.
    pub entries: usize,
    /// Counter entries given up for want of room.
    pub evictions: u64,
    /// Calls refused.
    pub refused: u64,
    /// Calls monitor-mode limits would have refused (one per limit and call).
    pub would_refuse: u64,
    /// Warning levels crossed.
    pub warnings: u64,
    /// Trunks and accounts the limits asked to disable.
    pub disabled: u64,
    /// Running calls held.
    pub calls: usize,
    /// Running calls forgotten for want of room (their gauges released as if they ended).
    pub calls_evicted: u64,
    /// Decisions dropped because the core had not taken them.
    pub decisions_dropped: u64,
}

/// What a velocity policy keeps between calls, and hands to the next on a reload: the
/// counters, the running calls (so their end still releases what they hold) and the totals.
#[derive(Debug)]
pub struct VelocityState {
    counters: Box<dyn Counters>,
    calls: LruCache<u64, Running>,
    stats: VelocityStats,
}

impl VelocityState {
    /// A fresh state over `counters`.
    pub fn new(counters: Box<dyn Counters>) -> Self {
        Self {
            counters,
            calls: LruCache::unbounded(),
            stats: VelocityStats::default(),
        }
    }

    /// The counters, taken out (for a policy of another kind; a rebuilt velocity policy
    /// should take the whole state, or the running calls' gauges never go down).
    pub fn into_counters(self) -> Box<dyn Counters> {
        self.counters
    }
}

/// The velocity policy.
#[derive(Debug)]
pub struct VelocityPolicy {
    ctx: DialContext,
    /// The dialling context's country (ISO): calls elsewhere are international.
    country: String,
    limits: Vec<Limit>,
    /// Whether a limit looks at the callee's number.
    needs_number: bool,
    /// Running calls held at most (`[policy] limit_entries`).
    call_bound: usize,
    state: VelocityState,
    decisions: Vec<Decision>,
    /// Numbers already read (shared with the other policies by `from_config`).
    numbers: std::sync::Arc<NumberCache>,
}

/// What one limit makes of a new call.
struct Hit {
    limit: usize,
    key: CounterKey,
    /// The count before the call.
    before: u64,
    /// Over the critical level with the call.
    over: bool,
}

impl VelocityPolicy {
    /// The limits of `[policy]` over `counters`; an error names the key of a country
    /// libphonenumber does not know.
    pub fn new(cfg: &PolicyConfig, counters: Box<dyn Counters>) -> Result<Self, String> {
        Self::with_state(cfg, VelocityState::new(counters))
    }

    /// The limits of `[policy]` over the state of the policy they replace (a reload).
    pub fn with_state(cfg: &PolicyConfig, mut state: VelocityState) -> Result<Self, String> {
        let ctx = DialContext::new(&cfg.country)
            .map_err(|_| format!("policy.country: unknown country {:?}", cfg.country))?;
        let limits: Vec<Limit> = cfg
            .limits
            .iter()
            .map(|l| {
                let name = l.name();
                Limit {
                    rule: format!("velocity:{name}"),
                    name,
                    scope: l.scope,
                    subject: l.subject.clone(),
                    kind: l.kind,
                    warning: l.warning,
                    critical: l.critical,
                    status: if l.status == 503 {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::FORBIDDEN
                    },
                    action: l.action,
                    monitor: l.mode_in(cfg) == PolicyMode::Monitor,
                }
            })
            .collect();
        let needs_number = limits.iter().any(|l| {
            l.scope == LimitScope::Prefix
                || matches!(
                    l.kind,
                    LimitKind::InternationalPerHour | LimitKind::SameNumberPerHour
                )
        });
        if needs_number {
            // libphonenumber's metadata is read on first use: now, not on the first call.
            let _ = normalise("+12125550100", ctx);
        }
        state.counters.set_bound(cfg.limit_entries);
        let call_bound = cfg.limit_entries.max(1);
        let mut policy = Self {
            ctx,
            country: ctx.country(),
            limits,
            needs_number,
            call_bound,
            state,
            decisions: Vec::new(),
            numbers: NumberCache::new(NUMBER_CACHE),
        };
        while policy.state.calls.len() > call_bound {
            policy.forget_oldest_call();
        }
        Ok(policy)
    }

    /// The policy reading numbers through `numbers` (shared with the other policies).
    pub fn with_numbers(mut self, numbers: std::sync::Arc<NumberCache>) -> Self {
        self.numbers = numbers;
        self
    }

    /// The state, for the policy that replaces this one.
    pub fn into_state(self) -> VelocityState {
        self.state
    }

    /// The counters alone (see [`VelocityState::into_counters`]).
    pub fn into_counters(self) -> Box<dyn Counters> {
        self.state.into_counters()
    }

    /// Totals and sizes, for metrics.
    pub fn stats(&self) -> VelocityStats {
        VelocityStats {
            entries: self.state.counters.len(),
            evictions: self.state.counters.evictions(),
            calls: self.state.calls.len(),
            ..self.state.stats
        }
    }

    fn decide(&mut self, d: Decision) {
        if self.decisions.len() < MAX_PENDING_DECISIONS {
            self.decisions.push(d);
        } else {
            self.state.stats.decisions_dropped += 1;
        }
    }

    /// Whether `tally` is the first of its kind for `key` in `l`'s window; if so it is marked.
    fn first_mark(&mut self, l: usize, key: &CounterKey, tally: Tally, now: Instant) -> bool {
        let Some(limit) = self.limits.get(l) else {
            return false;
        };
        let window = limit.mark_window();
        let mark = CounterKey {
            tally,
            ..key.clone()
        };
        if self.state.counters.total(&mark, window, now) > 0 {
            return false;
        }
        self.state.counters.add(&mark, window, now, 1);
        true
    }

    /// Reports a warning when the count went from `before` to `after` across limit `l`'s
    /// warning level, unless one was reported in the window.
    fn warn_if_crossed(
        &mut self,
        call: u64,
        l: usize,
        key: &CounterKey,
        (before, after): (u64, u64),
        now: Instant,
    ) {
        let Some(limit) = self.limits.get(l) else {
            return;
        };
        let Some(level) = limit.warning.map(|w| limit.level(w)) else {
            return;
        };
        if !(before < level && level <= after) {
            return;
        }
        let detail = format!(
            "{}: {}, at the warning level {} (critical {})",
            whose(limit.scope, &key.subject),
            limit.counted(after),
            limit.warning.unwrap_or(0),
            limit.critical
        );
        let rule = limit.rule.clone();
        if self.first_mark(l, key, Tally::Warned, now) {
            self.state.stats.warnings += 1;
            self.decide(Decision {
                call,
                rule,
                outcome: Outcome::Warning,
                detail,
                disable: None,
            });
        }
    }

    /// The counter of limit `l` a call falls in, if it falls in one.
    fn key_of(
        &self,
        l: &Limit,
        call: &CallRequest<'_>,
        number: Option<&Number>,
    ) -> Option<CounterKey> {
        let out = match call.destination {
            Destination::Trunk(t) if !t.is_empty() => Some(t),
            Destination::Trunk(_) => Some(""),
            _ => None,
        };
        let subject = match l.scope {
            LimitScope::Trunk => out.filter(|t| !t.is_empty()).or(call.trunk)?,
            LimitScope::Account => call.account.map(|a| a.user.as_str())?,
            LimitScope::Prefix => {
                let prefix = l.subject.as_deref()?;
                out?;
                number.filter(|n| n.e164.starts_with(prefix))?;
                prefix
            }
            LimitScope::All => "",
        };
        if let (Some(want), LimitScope::Trunk | LimitScope::Account) =
            (l.subject.as_deref(), l.scope)
            && want != subject
        {
            return None;
        }
        let number = match l.kind {
            LimitKind::InternationalPerHour => {
                out?;
                let n = number?;
                let country = n.country.as_deref().or(n.code_country.as_deref());
                if country == Some(self.country.as_str()) {
                    return None;
                }
                String::new()
            }
            LimitKind::SameNumberPerHour => {
                out?;
                match number {
                    Some(n) => n.e164.clone(),
                    // Not a number libphonenumber reads: the string dialled, bounded.
                    None => call.callee.trim().chars().take(MAX_DIALLED).collect(),
                }
            }
            _ => String::new(),
        };
        Some(CounterKey {
            limit: l.name.clone(),
            subject: subject.to_owned(),
            number,
            tally: Tally::Count,
        })
    }

    /// Refuses `call` for the limits of `hits` over their critical level (enforced ones):
    /// the decisions, the disables, the answer.
    fn refuse(&mut self, call: u64, hits: &[Hit], now: Instant) -> Verdict {
        let mut verdict = Verdict::Continue;
        for h in hits {
            let Some(l) = self.limits.get(h.limit) else {
                continue;
            };
            let count = if l.kind == LimitKind::MinutesPerDay {
                h.before
            } else {
                h.before.saturating_add(1)
            };
            let detail = format!(
                "{}: {}, over the limit of {}",
                whose(l.scope, &h.key.subject),
                l.counted(count),
                l.critical
            );
            let (rule, status, action, scope) = (l.rule.clone(), l.status, l.action, l.scope);
            if verdict.is_continue() {
                // The first limit over answers the call and is its decision.
                let mut text = format!("{VELOCITY_LIMIT}: {}: {detail}", l.name);
                // Account names come from a file: nothing that ends the quoted text or line.
                text.retain(|c| !matches!(c, '"' | '\\') && !c.is_control());
                let mut header = String::new();
                let _ = write!(header, "SIP;cause={};text=\"{text}\"", status.as_u16());
                verdict = Verdict::Reply {
                    status,
                    reason: Reason::Policy(VELOCITY_LIMIT),
                    phrase: Some("Call Limit Reached"),
                    headers: vec![(HeaderName::Reason, header)],
                };
                self.state.stats.refused += 1;
                self.decide(Decision {
                    call,
                    rule: rule.clone(),
                    outcome: Outcome::Refused,
                    detail: detail.clone(),
                    disable: None,
                });
            }
            let subject = match (action, scope) {
                (LimitAction::DisableTrunk, LimitScope::Trunk) => {
                    Subject::Trunk(h.key.subject.clone())
                }
                (LimitAction::DisableAccount, LimitScope::Account) => {
                    Subject::Account(h.key.subject.clone())
                }
                _ => continue,
            };
            if self.first_mark(h.limit, &h.key, Tally::Disabled, now) {
                self.state.stats.disabled += 1;
                self.decide(Decision {
                    call,
                    rule,
                    outcome: Outcome::Disabled,
                    detail,
                    disable: Some(subject),
                });
            }
        }
        verdict
    }

    /// Forgets the least recently used running call, releasing its gauges (the bound of the
    /// running calls is met; only a core that never ends its calls gets here).
    fn forget_oldest_call(&mut self) {
        if let Some((_, r)) = self.state.calls.pop_lru() {
            for k in &r.gauges {
                self.state.counters.dec(k);
            }
            self.state.stats.calls_evicted += 1;
        }
    }
}

impl CallPolicy for VelocityPolicy {
    fn name(&self) -> &'static str {
        "velocity"
    }

    fn admit(&mut self, call: &CallRequest<'_>) -> Verdict {
        let now = call.now;
        let number = if self.needs_number && matches!(call.destination, Destination::Trunk(_)) {
            self.numbers.normalise(call.callee, self.ctx).ok()
        } else {
            None
        };
        let mut hits = Vec::new();
        for (i, l) in self.limits.iter().enumerate() {
            let Some(key) = self.key_of(l, call, number.as_ref()) else {
                continue;
            };
            let before = match l.kind.window() {
                None => self.state.counters.gauge(&key),
                Some(w) => self.state.counters.total(&key, w, now),
            };
            let over = match l.kind {
                LimitKind::MinutesPerDay => before >= l.level(l.critical),
                _ => before.saturating_add(1) > l.critical,
            };
            hits.push(Hit {
                limit: i,
                key,
                before,
                over,
            });
        }
        let enforced: Vec<Hit> = {
            let limits = &self.limits;
            let (over, rest): (Vec<Hit>, Vec<Hit>) = hits
                .into_iter()
                .partition(|h| h.over && limits.get(h.limit).is_some_and(|l| !l.monitor));
            hits = rest;
            over
        };
        if !enforced.is_empty() {
            // Refused calls count nowhere (see the module).
            return self.refuse(call.call, &enforced, now);
        }
        let mut running = Running::default();
        for h in hits {
            let Some(l) = self.limits.get(h.limit) else {
                continue;
            };
            let (kind, critical, rule) = (l.kind, l.critical, l.rule.clone());
            let after = match kind.window() {
                None => match self.state.counters.inc(&h.key) {
                    Some(n) => {
                        running.gauges.push(h.key.clone());
                        n
                    }
                    None => h.before.saturating_add(1),
                },
                Some(_) if kind == LimitKind::MinutesPerDay => {
                    running.minutes.push(h.key.clone());
                    h.before
                }
                Some(w) => self.state.counters.add(&h.key, w, now, 1),
            };
            if h.over {
                let detail = format!(
                    "{}: {}, over the limit of {critical} (monitor mode)",
                    whose(l.scope, &h.key.subject),
                    l.counted(if kind == LimitKind::MinutesPerDay {
                        h.before
                    } else {
                        after
                    }),
                );
                self.state.stats.would_refuse += 1;
                self.decide(Decision {
                    call: call.call,
                    rule,
                    outcome: Outcome::WouldRefuse,
                    detail,
                    disable: None,
                });
            }
            self.warn_if_crossed(call.call, h.limit, &h.key, (h.before, after), now);
        }
        if !running.gauges.is_empty() || !running.minutes.is_empty() {
            if let Some(old) = self.state.calls.pop(&call.call) {
                // The same call admitted twice: the first admission's gauges go.
                for k in &old.gauges {
                    self.state.counters.dec(k);
                }
            }
            while self.state.calls.len() >= self.call_bound {
                self.forget_oldest_call();
            }
            self.state.calls.push(call.call, running);
        }
        Verdict::Continue
    }

    fn on_answer(&mut self, call: u64, now: Instant) {
        if let Some(r) = self.state.calls.get_mut(&call) {
            r.answered.get_or_insert(now);
        }
    }

    fn on_end(&mut self, call: u64, now: Instant) {
        // Unknown (never admitted here, or ended already): nothing to release.
        let Some(r) = self.state.calls.pop(&call) else {
            return;
        };
        for k in &r.gauges {
            self.state.counters.dec(k);
        }
        let Some(answered) = r.answered else {
            return;
        };
        let d = now.saturating_duration_since(answered);
        let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        if secs == 0 {
            return;
        }
        for k in &r.minutes {
            let before = self.state.counters.total(k, DAY, now);
            let after = self.state.counters.add(k, DAY, now, secs);
            // By name: after a reload the limit may sit elsewhere in the list, or be gone.
            if let Some(l) = self.limits.iter().position(|l| l.name == k.limit) {
                self.warn_if_crossed(call, l, k, (before, after), now);
            }
        }
    }

    fn take_decisions(&mut self, out: &mut Vec<Decision>) {
        out.append(&mut self.decisions);
    }

    fn hand_over(&mut self) -> Option<Box<dyn std::any::Any + Send>> {
        let empty = VelocityState::new(Box::new(MemoryCounters::new(1)));
        Some(Box::new(std::mem::replace(&mut self.state, empty)))
    }

    fn take_over(&mut self, state: Box<dyn std::any::Any + Send>) {
        let Ok(state) = state.downcast::<VelocityState>() else {
            return;
        };
        self.state = *state;
        // This configuration's bounds apply from now on.
        self.state.counters.set_bound(self.call_bound);
        while self.state.calls.len() > self.call_bound {
            self.forget_oldest_call();
        }
    }

    fn gauges(&self, out: &mut Vec<PolicyGauge>) {
        let s = self.stats();
        let n = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
        out.extend([
            PolicyGauge {
                name: "sipwarden_velocity_counters",
                help: "Counter entries of the velocity limits (bounded by policy.limit_entries).",
                counter: false,
                value: n(s.entries),
            },
            PolicyGauge {
                name: "sipwarden_velocity_counter_evictions_total",
                help: "Counter entries given up for want of room.",
                counter: true,
                value: s.evictions,
            },
            PolicyGauge {
                name: "sipwarden_velocity_calls",
                help: "Running calls the velocity limits count (0 when no call runs).",
                counter: false,
                value: n(s.calls),
            },
            PolicyGauge {
                name: "sipwarden_velocity_calls_evicted_total",
                help: "Running calls forgotten for want of room (their gauges released).",
                counter: true,
                value: s.calls_evicted,
            },
            PolicyGauge {
                name: "sipwarden_velocity_decisions_dropped_total",
                help: "Decisions of the velocity limits dropped because the core had not taken them.",
                counter: true,
                value: s.decisions_dropped,
            },
        ]);
    }
}

#[cfg(test)]
mod tests;
