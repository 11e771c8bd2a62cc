//! The spend caps (`[policy.spend]`): what calls out through the trunks cost, priced by a rate
//! table ([`RateTable`]), summed per trunk, account or for every call over a day or a month,
//! and capped. Toll fraud is counted in money on the invoice: a cap stops it at a sum the
//! owner chose, whatever the destinations and however slowly the calls come.
//!
//! How spend is counted:
//! - Only calls out through a trunk are priced; the callee is normalised in the `[policy]
//!   country` dialling context and priced by the longest prefix of the table. A number the
//!   table does not price, and one priced at zero, costs nothing: it is neither counted nor
//!   refused nor ended by a cap (emergency and toll-free numbers stay callable). With
//!   `unpriced = "refuse"`, unpriced numbers are refused instead (403 `spend_unpriced`).
//! - A cap's spend in a period is its committed spend (calls that ended, at their billed
//!   price, in the period they ended in: a call across midnight counts for the new day) plus
//!   its projected spend: what its running calls owe so far, every increment they have begun.
//!   Periods are calendar days or months in `zone`.
//! - A new call is refused (403 `spend_cap`) while one of its caps' spend is at the cap. With
//!   `hangup` (the default), every running call of the cap is ended the moment its spend
//!   reaches the cap: [`CallPolicy::next_deadline`] is the next instant a running call's cost
//!   steps up, so the crossing is seen when it happens, not at the next poll.
//! - A warning is reported once per cap, subject and period, when the spend first reaches it.
//! - `[policy.spend.max_duration]` ends calls that talk longer than their destination class
//!   allows (the shortest of the classes the number is in; a callee that is not a number is
//!   international).
//!
//! The committed totals are kept across restarts as state rows (`spend:<cap>:<period>` and
//! `:<subject>` for caps that count each trunk or account apart, the total as a decimal); rows
//! of past periods or of caps no longer configured are deleted when they are met. A reload
//! hands the totals, the running calls and the warnings reported to the next policy.

mod rates;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime};

use jiff::Timestamp;
use jiff::tz::TimeZone;
use lru::LruCache;
use rust_decimal::Decimal;
use sipwarden_config::{PolicyConfig, PolicyMode, SpendConfig, SpendPeriod, SpendScope, Unpriced};
use sipwarden_sip::{HeaderName, StatusCode};
use sipwarden_stages::{
    CallPolicy, CallRequest, Decision, Destination, Outcome, PolicyGauge, Reason, Verdict,
};

pub use rates::{Rate, RateTable, money};

use crate::numbers::{DialContext, Lists, NUMBER_CACHE, NamedList, Number, NumberCache, normalise};

/// Why a call is refused or ended by a cap: the metric label and the call record's reason.
pub const SPEND_CAP: &str = "spend_cap";

/// Why a call to a number the rate table does not price is refused (`unpriced = "refuse"`).
pub const SPEND_UNPRICED: &str = "spend_unpriced";

/// Why a call is ended for talking longer than its destination class allows.
pub const SPEND_MAX_DURATION: &str = "spend_max_duration";

/// Decisions kept for the core to take; beyond, new ones are counted and dropped.
const MAX_PENDING_DECISIONS: usize = 1024;

/// The keys of the state rows begin with it.
const ROW_PREFIX: &str = "spend:";

/// Destination classes of `[policy.spend.max_duration]`, as bits, with their names.
const CLASSES: [(u8, &str); 5] = [
    (1, "domestic"),
    (2, "international"),
    (4, "premium"),
    (8, "high_risk"),
    (16, "satellite"),
];
const DOMESTIC: u8 = 1;
const INTERNATIONAL: u8 = 2;
const PREMIUM: u8 = 4;
const HIGH_RISK: u8 = 8;
const SATELLITE: u8 = 16;

/// One configured cap, ready.
#[derive(Debug)]
struct Cap {
    name: String,
    /// `spend:<name>` (decisions' rule).
    rule: String,
    scope: SpendScope,
    subject: Option<String>,
    period: SpendPeriod,
    warning: Option<Decimal>,
    cap: Decimal,
    hangup: bool,
    monitor: bool,
}

impl Cap {
    /// `amount` against the cap in words: `spent 1.02 of 1.00 today`, led by whose spend it is
    /// for caps that count each trunk or account apart (the name does not say).
    fn spent(&self, subject: &str, amount: Decimal) -> String {
        let when = match self.period {
            SpendPeriod::Day => "today",
            SpendPeriod::Month => "this month",
        };
        let who = if self.counts_apart() {
            format!("{} {subject}: ", self.scope.as_str())
        } else {
            String::new()
        };
        format!("{who}spent {} of {} {when}", money(amount), money(self.cap))
    }

    /// Whether a stored row's `period` key is one of this cap's (`2026-12-06`, `2026-12`).
    fn period_like(&self, period: &str) -> bool {
        let shape: &[u8] = match self.period {
            SpendPeriod::Day => b"dddd-dd-dd",
            SpendPeriod::Month => b"dddd-dd",
        };
        period.len() == shape.len()
            && period.bytes().zip(shape).all(|(b, s)| {
                if *s == b'd' {
                    b.is_ascii_digit()
                } else {
                    b == *s
                }
            })
    }

    /// Whether a stored row's subject fits the cap's scope and subject.
    fn subject_fits(&self, subject: &str) -> bool {
        self.counts_apart() != subject.is_empty()
    }

    /// Whether the cap counts each trunk or account apart (no subject configured).
    fn counts_apart(&self) -> bool {
        self.scope != SpendScope::All && self.subject.is_none()
    }
}

/// Where a committed total belongs: a cap (by name, stable across reloads), whose spend (for
/// caps that count each trunk or account apart; else empty), and which period.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct TotalKey {
    cap: String,
    /// A trunk's name, an account's user name, or empty (every call).
    subject: String,
    /// `2026-12-06` or `2026-12`.
    period: String,
}

impl TotalKey {
    /// Its state row's key.
    fn row(&self) -> String {
        if self.subject.is_empty() {
            format!("{ROW_PREFIX}{}:{}", self.cap, self.period)
        } else {
            format!("{ROW_PREFIX}{}:{}:{}", self.cap, self.period, self.subject)
        }
    }
}

/// Spend: an amount, and the latest call it came from (warnings name a call).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Spent {
    amount: Decimal,
    call: u64,
}

impl Spent {
    fn add(&mut self, amount: Decimal, call: u64) {
        self.amount = self.amount.saturating_add(amount);
        self.call = self.call.max(call);
    }
}

/// A call while it runs: what it is priced at, the caps it counts in, how long it may talk.
#[derive(Clone, Debug)]
struct Running {
    /// The trunk it went out through.
    trunk: String,
    /// The account that placed it.
    account: Option<String>,
    /// Its rate, fixed when it was admitted; none when it costs nothing.
    rate: Option<Rate>,
    /// Its destination's classes (bits of [`CLASSES`]).
    classes: u8,
    /// The caps it counts in (index, subject as in [`TotalKey`]): worked out again from the facts above when a
    /// reload changes the caps.
    caps: Vec<(usize, String)>,
    /// The longest it may talk, and the class that says so.
    max: Option<(Duration, &'static str)>,
    answered: Option<Instant>,
    /// Asked to be ended (the core will end it; it counts until it does).
    ended: bool,
    /// Its would-be end reported (monitor mode): once per call.
    reported: bool,
}

/// What the spend caps did, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpendStats {
    /// Running calls followed (priced ones, and those with a longest talk time).
    pub calls: usize,
    /// Committed totals held (caps, subjects, current periods).
    pub totals: usize,
    /// Calls refused (caps and unpriced numbers).
    pub refused: u64,
    /// Calls monitor-mode rules would have refused.
    pub would_refuse: u64,
    /// Running calls ended (caps and longest talk times).
    pub ended: u64,
    /// Running calls monitor-mode rules would have ended.
    pub would_end: u64,
    /// Warning levels reached.
    pub warnings: u64,
    /// Running calls forgotten for want of room (their spend is lost).
    pub calls_evicted: u64,
    /// Decisions dropped because the core had not taken them.
    pub decisions_dropped: u64,
}

/// What a spend policy keeps between calls, and hands to the next on a reload: the committed
/// totals, the warnings reported, the running calls (so their end is still committed) and the
/// latest pair of clocks (wall-clock periods of later instants).
#[derive(Debug)]
pub struct SpendState {
    totals: HashMap<TotalKey, Spent>,
    warned: HashSet<TotalKey>,
    calls: LruCache<u64, Running>,
    /// The latest (monotonic, wall-clock) pair seen with a call.
    clock: Option<(Instant, SystemTime)>,
    /// State rows changed since last taken (an empty value deletes).
    rows: BTreeMap<String, String>,
    stats: SpendStats,
}

impl Default for SpendState {
    fn default() -> Self {
        Self::new()
    }
}

impl SpendState {
    /// Nothing spent, no call running.
    pub fn new() -> Self {
        Self {
            totals: HashMap::new(),
            warned: HashSet::new(),
            calls: LruCache::unbounded(),
            clock: None,
            rows: BTreeMap::new(),
            stats: SpendStats::default(),
        }
    }
}

/// The spend policy.
#[derive(Debug)]
pub struct SpendPolicy {
    ctx: DialContext,
    /// The dialling context's country: calls elsewhere are international.
    country: String,
    tz: TimeZone,
    table: Option<RateTable>,
    unpriced: Unpriced,
    /// `[policy] mode`, for unpriced numbers and longest talk times.
    monitor: bool,
    caps: Vec<Cap>,
    /// Caps by name (stored totals are keyed by name).
    by_name: HashMap<String, usize>,
    /// Longest talk time by class (bit, name, limit), the configured ones.
    max_duration: Vec<(u8, &'static str, Duration)>,
    /// Running calls followed at most (`[policy] limit_entries`).
    call_bound: usize,
    state: SpendState,
    decisions: Vec<Decision>,
    /// Numbers already read (shared with the other policies by `from_config`).
    numbers: std::sync::Arc<NumberCache>,
    /// The prefix lists in force, for the destination classes.
    lists: std::sync::Arc<Lists>,
    /// Something changed since the running calls were last looked at.
    dirty: bool,
    /// When a running call's cost next steps up or one talks too long.
    deadline: Option<Instant>,
    /// The (day, month) of the latest look: totals of other periods are gone.
    periods: Option<(String, String)>,
    /// The latest look at every cap's spend, and when: a look costs one pass over the running
    /// calls, so there is at most one every [`LOOK_EVERY`] (admissions read the latest).
    look: Option<(Instant, SpentByCap)>,
    /// [`LOOK_EVERY`] (zero in the unit tests that step through single instants).
    look_every: Duration,
}

/// Every cap's spend by (cap, subject).
type SpentByCap = BTreeMap<(usize, String), Spent>;

/// The most often the running calls' spend is summed: at 5 000 calls a second a pass per
/// message cost more than the calls themselves. A cap is acted on within this of its
/// crossing (the acceptance asks for a second).
pub const LOOK_EVERY: Duration = Duration::from_millis(100);

impl SpendPolicy {
    /// The caps of `[policy.spend]` priced by `table` (the server reads and parses the file of
    /// `rates`; [`crate::from_config_files`] from its text). An error names the key: an
    /// unknown country or time zone, a table configured but not given.
    pub fn new(cfg: &PolicyConfig, table: Option<RateTable>) -> Result<Self, String> {
        Self::with_state(cfg, table, SpendState::new())
    }

    /// As [`SpendPolicy::new`], carrying on from the state of the policy it replaces.
    pub fn with_state(
        cfg: &PolicyConfig,
        table: Option<RateTable>,
        state: SpendState,
    ) -> Result<Self, String> {
        let default = SpendConfig::default();
        let s = cfg.spend.as_ref().unwrap_or(&default);
        let ctx = DialContext::new(&cfg.country)
            .map_err(|_| format!("policy.country: unknown country {:?}", cfg.country))?;
        let tz = TimeZone::get(&s.zone)
            .map_err(|_| format!("policy.spend.zone: unknown time zone {:?}", s.zone))?;
        if s.rates.is_some() && table.is_none() {
            return Err("policy.spend.rates: the rate table was not read".into());
        }
        let caps: Vec<Cap> = s
            .caps
            .iter()
            .map(|c| {
                let name = c.name();
                Cap {
                    rule: format!("spend:{name}"),
                    name,
                    scope: c.scope,
                    subject: c.subject.clone(),
                    period: c.period,
                    warning: c.warning,
                    cap: c.cap,
                    hangup: c.hangup,
                    monitor: c.mode_in(cfg) == PolicyMode::Monitor,
                }
            })
            .collect();
        let by_name = caps
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        let max_duration = s
            .max_duration
            .classes()
            .into_iter()
            .zip(CLASSES)
            .filter_map(|((_, d), (bit, name))| Some((bit, name, d?)))
            .collect();
        // libphonenumber's metadata is read on first use: now, not on the first call.
        let _ = normalise("+12125550100", ctx);
        let mut policy = Self {
            ctx,
            country: ctx.country(),
            tz,
            table,
            unpriced: s.unpriced,
            monitor: cfg.mode == PolicyMode::Monitor,
            caps,
            by_name,
            max_duration,
            call_bound: cfg.limit_entries.max(1),
            state,
            decisions: Vec::new(),
            numbers: NumberCache::new(NUMBER_CACHE),
            lists: std::sync::Arc::new(Lists::shipped()),
            dirty: true,
            deadline: None,
            periods: None,
            look: None,
            look_every: LOOK_EVERY,
        };
        policy.adopt();
        Ok(policy)
    }

    /// The policy reading the named lists from `lists` (the operator's files).
    pub fn with_lists(mut self, lists: std::sync::Arc<Lists>) -> Self {
        self.lists = lists;
        self
    }

    /// The policy reading numbers through `numbers` (shared with the other policies).
    pub fn with_numbers(mut self, numbers: std::sync::Arc<NumberCache>) -> Self {
        self.numbers = numbers;
        self
    }

    /// As [`SpendPolicy::new`], looking at every change at once (unit tests of single
    /// instants).
    #[cfg(test)]
    pub(crate) fn new_eager(cfg: &PolicyConfig, table: Option<RateTable>) -> Result<Self, String> {
        Self::new(cfg, table).map(|mut p| {
            p.look_every = Duration::ZERO;
            p
        })
    }

    /// The state, for the policy that replaces this one.
    pub fn into_state(self) -> SpendState {
        self.state
    }

    /// The rate table calls are priced with.
    pub fn rates(&self) -> Option<&RateTable> {
        self.table.as_ref()
    }

    /// Totals and sizes, for metrics.
    pub fn stats(&self) -> SpendStats {
        SpendStats {
            calls: self.state.calls.len(),
            totals: self.state.totals.len(),
            ..self.state.stats
        }
    }

    /// Fits the state to this configuration (a new policy, a reload): the running calls'
    /// caps and longest talk times worked out again, totals of caps no longer configured
    /// deleted, the bound met, the deadline set.
    fn adopt(&mut self) {
        let calls: Vec<u64> = self.state.calls.iter().map(|(id, _)| *id).collect();
        for id in calls {
            let Some(r) = self.state.calls.peek(&id) else {
                continue;
            };
            let caps = if r.rate.is_some() {
                self.matching_caps(&r.trunk, r.account.as_deref())
            } else {
                Vec::new()
            };
            let max = self.max_for(r.classes);
            if let Some(r) = self.state.calls.peek_mut(&id) {
                r.caps = caps;
                r.max = max;
            }
        }
        let gone: Vec<TotalKey> = self
            .state
            .totals
            .keys()
            .filter(|k| !self.by_name.contains_key(&k.cap))
            .cloned()
            .collect();
        for k in gone {
            self.forget_total(&k);
        }
        while self.state.calls.len() > self.call_bound {
            self.forget_oldest_call();
        }
        self.periods = None;
        self.dirty = true;
        self.deadline = self.state.clock.and_then(|(now, _)| self.next_change(now));
    }

    fn decide(&mut self, d: Decision) {
        if self.decisions.len() < MAX_PENDING_DECISIONS {
            self.decisions.push(d);
        } else {
            self.state.stats.decisions_dropped += 1;
        }
    }

    fn forget_oldest_call(&mut self) {
        if self.state.calls.pop_lru().is_some() {
            self.state.stats.calls_evicted += 1;
        }
    }

    /// Drops a total and its warning mark, deleting its stored row.
    fn forget_total(&mut self, k: &TotalKey) {
        self.state.totals.remove(k);
        self.state.warned.remove(k);
        self.state.rows.insert(k.row(), String::new());
    }

    /// The caps a priced call out through `trunk`, placed by `account`, counts in.
    fn matching_caps(&self, trunk: &str, account: Option<&str>) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        for (i, c) in self.caps.iter().enumerate() {
            let subject = match c.scope {
                SpendScope::Trunk => trunk,
                SpendScope::Account => match account {
                    Some(a) => a,
                    None => continue,
                },
                SpendScope::All => "",
            };
            match &c.subject {
                Some(want) if want != subject => continue,
                // One total for the cap: its name says whose.
                Some(_) => out.push((i, String::new())),
                None => out.push((i, subject.to_owned())),
            }
        }
        out
    }

    /// The destination classes of a callee (not a number: international).
    fn classes_of(&self, number: Option<&Number>) -> u8 {
        let Some(n) = number else {
            return INTERNATIONAL;
        };
        let country = n.country.as_deref().or(n.code_country.as_deref());
        let mut c = if country == Some(self.country.as_str()) {
            DOMESTIC
        } else {
            INTERNATIONAL
        };
        for (list, bit) in [
            (NamedList::Premium, PREMIUM),
            (NamedList::HighRisk, HIGH_RISK),
            (NamedList::Satellite, SATELLITE),
        ] {
            if self.lists.contains(list, n) {
                c |= bit;
            }
        }
        c
    }

    /// The longest talk time of a call in `classes`: the shortest configured for them.
    fn max_for(&self, classes: u8) -> Option<(Duration, &'static str)> {
        self.max_duration
            .iter()
            .filter(|(bit, ..)| classes & bit != 0)
            .map(|&(_, name, d)| (d, name))
            .min()
    }

    /// The wall-clock time at `now`, from the latest pair of clocks seen.
    fn wall_at(&self, now: Instant) -> Option<SystemTime> {
        let (at, wall) = self.state.clock?;
        if now >= at {
            wall.checked_add(now.duration_since(at))
        } else {
            wall.checked_sub(at.duration_since(now))
        }
    }

    /// The day and month `now` falls in, in the zone; totals of other periods are deleted
    /// when they change.
    fn roll(&mut self, now: Instant) -> Option<(String, String)> {
        let wall = self.wall_at(now)?;
        let z = Timestamp::try_from(wall).ok()?.to_zoned(self.tz.clone());
        let month = format!("{:04}-{:02}", z.year(), z.month());
        let keys = (format!("{month}-{:02}", z.day()), month);
        if self.periods.as_ref() != Some(&keys) {
            let stale: Vec<TotalKey> = self
                .state
                .totals
                .keys()
                .chain(self.state.warned.iter())
                .filter(|k| {
                    self.by_name
                        .get(&k.cap)
                        .and_then(|&i| self.caps.get(i))
                        .is_none_or(|c| k.period != *period_of(c.period, &keys))
                })
                .cloned()
                .collect();
            for k in stale {
                self.forget_total(&k);
            }
            self.periods = Some(keys.clone());
        }
        Some(keys)
    }

    /// The spend of the latest look, taken now if it is older than [`LOOK_EVERY`].
    fn looked(&mut self, now: Instant) -> BTreeMap<(usize, String), Spent> {
        match &self.look {
            Some((at, spent)) if now.saturating_duration_since(*at) < self.look_every => {
                spent.clone()
            }
            _ => {
                let spent = self.spent(now);
                self.look = Some((now, spent.clone()));
                spent
            }
        }
    }

    /// Every cap's spend at `now`, by (cap, subject): committed plus what its running calls
    /// owe so far. Empty before the first call (no wall-clock time yet).
    fn spent(&mut self, now: Instant) -> BTreeMap<(usize, String), Spent> {
        let mut out: BTreeMap<(usize, String), Spent> = BTreeMap::new();
        let Some(keys) = self.roll(now) else {
            return out;
        };
        for (&id, r) in self.state.calls.iter() {
            let (Some(rate), Some(at)) = (&r.rate, r.answered) else {
                continue;
            };
            let cost = rate.running_cost(now.saturating_duration_since(at));
            for (i, s) in &r.caps {
                out.entry((*i, s.clone())).or_default().add(cost, id);
            }
        }
        for (k, t) in &self.state.totals {
            let Some(&i) = self.by_name.get(&k.cap) else {
                continue;
            };
            if self
                .caps
                .get(i)
                .is_some_and(|c| k.period == *period_of(c.period, &keys))
            {
                out.entry((i, k.subject.clone()))
                    .or_default()
                    .add(t.amount, t.call);
            }
        }
        out
    }

    /// Reports the warning levels `spent` reached, once per cap, subject and period.
    fn warn(&mut self, spent: &BTreeMap<(usize, String), Spent>) {
        let Some(keys) = self.periods.clone() else {
            return;
        };
        for ((i, subject), s) in spent {
            let Some(c) = self.caps.get(*i) else {
                continue;
            };
            let Some(level) = c.warning.filter(|w| s.amount >= *w) else {
                continue;
            };
            let key = TotalKey {
                cap: c.name.clone(),
                subject: subject.clone(),
                period: period_of(c.period, &keys).clone(),
            };
            if !self.state.warned.insert(key) {
                continue;
            }
            let d = Decision {
                call: s.call,
                rule: c.rule.clone(),
                outcome: Outcome::Warning,
                detail: format!(
                    "{}, at the warning level {}",
                    c.spent(subject, s.amount),
                    money(level)
                ),
                disable: None,
            };
            self.state.stats.warnings += 1;
            self.decide(d);
        }
    }

    /// Ends (or, in monitor mode, reports) the running calls of the caps with `hangup` whose
    /// spend reached the cap.
    fn end_over_caps(
        &mut self,
        spent: &BTreeMap<(usize, String), Spent>,
        out: &mut Vec<(u64, Reason)>,
    ) {
        let over: BTreeSet<&(usize, String)> = spent
            .iter()
            .filter(|((i, _), s)| {
                self.caps
                    .get(*i)
                    .is_some_and(|c| c.hangup && s.amount >= c.cap)
            })
            .map(|(k, _)| k)
            .collect();
        if over.is_empty() {
            return;
        }
        let mut decided = Vec::new();
        for (&id, r) in self.state.calls.iter_mut() {
            if r.ended {
                continue;
            }
            let mut hit: Option<(usize, &str)> = None;
            for (i, s) in &r.caps {
                if !over.contains(&(*i, s.clone())) {
                    continue;
                }
                if self.caps.get(*i).is_some_and(|c| !c.monitor) {
                    hit = Some((*i, s));
                    break;
                }
                hit = hit.or(Some((*i, s)));
            }
            let Some((i, subject)) = hit else {
                continue;
            };
            let Some(c) = self.caps.get(i) else {
                continue;
            };
            let amount = spent
                .get(&(i, subject.to_owned()))
                .map_or(Decimal::ZERO, |s| s.amount);
            let detail = c.spent(subject, amount);
            if c.monitor {
                if r.reported {
                    continue;
                }
                r.reported = true;
                decided.push((id, c.rule.clone(), Outcome::WouldEnd, detail));
            } else {
                r.ended = true;
                out.push((id, Reason::Policy(SPEND_CAP)));
                decided.push((id, c.rule.clone(), Outcome::Ended, detail));
            }
        }
        self.record(decided);
    }

    /// Ends (or reports) the calls that talked longer than their class allows.
    fn end_over_duration(&mut self, now: Instant, out: &mut Vec<(u64, Reason)>) {
        let monitor = self.monitor;
        let mut decided = Vec::new();
        for (&id, r) in self.state.calls.iter_mut() {
            let (Some((max, class)), Some(at)) = (r.max, r.answered) else {
                continue;
            };
            if r.ended || now.saturating_duration_since(at) < max || (monitor && r.reported) {
                continue;
            }
            let detail = format!(
                "talked {} s; calls to {} destinations may talk {} s",
                now.saturating_duration_since(at).as_secs(),
                class.replace('_', "-"),
                max.as_secs()
            );
            let rule = format!("spend:max_duration:{class}");
            if monitor {
                r.reported = true;
                decided.push((id, rule, Outcome::WouldEnd, detail));
            } else {
                r.ended = true;
                out.push((id, Reason::Policy(SPEND_MAX_DURATION)));
                decided.push((id, rule, Outcome::Ended, detail));
            }
        }
        self.record(decided);
    }

    /// Records ends and would-be ends, in call order.
    fn record(&mut self, mut decided: Vec<(u64, String, Outcome, String)>) {
        decided.sort_by_key(|d| d.0);
        for (call, rule, outcome, detail) in decided {
            if outcome == Outcome::Ended {
                self.state.stats.ended += 1;
            } else {
                self.state.stats.would_end += 1;
            }
            self.decide(Decision {
                call,
                rule,
                outcome,
                detail,
                disable: None,
            });
        }
    }

    /// The next instant after `now` a running call's cost steps up (for calls in caps) or one
    /// reaches its longest talk time.
    fn next_change(&self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        for (_, r) in self.state.calls.iter() {
            let Some(at) = r.answered.filter(|_| !r.ended) else {
                continue;
            };
            let elapsed = now.saturating_duration_since(at);
            if let Some(rate) = r.rate.as_ref().filter(|_| !r.caps.is_empty()) {
                let t = at.checked_add(rate.next_step(elapsed));
                next = next.into_iter().chain(t).min();
            }
            if let Some((max, _)) = r.max
                && !(self.monitor && r.reported)
                && elapsed < max
            {
                next = next.into_iter().chain(at.checked_add(max)).min();
            }
        }
        next
    }

    /// Refuses a call: the answer (its Reason header's text is `<code>: <text>`), and its
    /// decision.
    fn refuse(
        &mut self,
        call: u64,
        code: &'static str,
        rule: String,
        (text, detail): (String, String),
    ) -> Verdict {
        let mut text = format!("{code}: {text}");
        // Names come from files: nothing that ends the quoted text or the line.
        text.retain(|c| !matches!(c, '"' | '\\') && !c.is_control());
        let mut header = String::new();
        let _ = write!(header, "SIP;cause=403;text=\"{text}\"");
        self.state.stats.refused += 1;
        self.decide(Decision {
            call,
            rule,
            outcome: Outcome::Refused,
            detail,
            disable: None,
        });
        Verdict::Reply {
            status: StatusCode::FORBIDDEN,
            reason: Reason::Policy(code),
            phrase: Some(if code == SPEND_CAP {
                "Spend Limit Reached"
            } else {
                "Destination Not Priced"
            }),
            headers: vec![(HeaderName::Reason, header)],
        }
    }

    fn would_refuse(&mut self, call: u64, rule: String, detail: String) {
        self.state.stats.would_refuse += 1;
        self.decide(Decision {
            call,
            rule,
            outcome: Outcome::WouldRefuse,
            detail: format!("{detail} (monitor mode)"),
            disable: None,
        });
    }

    /// A stored row as a total of a configured cap, if it is one.
    fn parse_row(&self, key: &str, value: &str) -> Option<(TotalKey, Decimal)> {
        let rest = key.strip_prefix(ROW_PREFIX)?;
        let amount = value
            .parse::<Decimal>()
            .ok()
            .filter(|d| !d.is_sign_negative() || d.is_zero())?;
        self.caps.iter().find_map(|c| {
            let after = rest.strip_prefix(c.name.as_str())?.strip_prefix(':')?;
            let (period, subject) = after.split_once(':').unwrap_or((after, ""));
            (c.period_like(period) && c.subject_fits(subject)).then(|| {
                let key = TotalKey {
                    cap: c.name.clone(),
                    subject: subject.to_owned(),
                    period: period.to_owned(),
                };
                (key, amount)
            })
        })
    }
}

/// The key of `period` among the (day, month) keys.
fn period_of(period: SpendPeriod, keys: &(String, String)) -> &String {
    match period {
        SpendPeriod::Day => &keys.0,
        SpendPeriod::Month => &keys.1,
    }
}

impl CallPolicy for SpendPolicy {
    fn name(&self) -> &'static str {
        "spend"
    }

    fn admit(&mut self, call: &CallRequest<'_>) -> Verdict {
        let now = call.now;
        self.state.clock = Some((now, call.wall));
        let Destination::Trunk(trunk) = call.destination else {
            return Verdict::Continue;
        };
        let number = self.numbers.normalise(call.callee, self.ctx).ok();
        let rate = match (&self.table, &number) {
            (Some(t), Some(n)) => t.rate(&n.e164).cloned(),
            _ => None,
        };
        if rate.is_none() && self.table.is_some() && self.unpriced == Unpriced::Refuse {
            let dialled = number.as_ref().map_or_else(
                || {
                    call.callee
                        .chars()
                        .take(crate::numbers::MAX_DIALLED)
                        .collect()
                },
                |n| n.e164.clone(),
            );
            let detail = format!("{dialled} is not in the rate table");
            let rule = "spend:unpriced".to_owned();
            if !self.monitor {
                return self.refuse(call.call, SPEND_UNPRICED, rule, (detail.clone(), detail));
            }
            self.would_refuse(call.call, rule, detail);
        }
        let rate = rate.filter(|r| !r.is_free());
        let account = call.account.map(|a| a.user.as_str());
        let caps = if rate.is_some() {
            self.matching_caps(trunk, account)
        } else {
            Vec::new()
        };
        if !caps.is_empty() {
            let spent = self.looked(now);
            let over: Vec<(usize, String, Decimal)> = caps
                .iter()
                .filter_map(|(i, s)| {
                    let c = self.caps.get(*i)?;
                    let amount = spent
                        .get(&(*i, s.clone()))
                        .map_or(Decimal::ZERO, |t| t.amount);
                    (amount >= c.cap).then(|| (*i, s.clone(), amount))
                })
                .collect();
            let enforced = over
                .iter()
                .find(|(i, ..)| self.caps.get(*i).is_some_and(|c| !c.monitor));
            if let Some((i, s, amount)) = enforced
                && let Some(c) = self.caps.get(*i)
            {
                let detail = c.spent(s, *amount);
                // The header names the cap: `spend_cap: <name>: spent … today`.
                let text = format!("{}: {detail}", c.name);
                let rule = c.rule.clone();
                return self.refuse(call.call, SPEND_CAP, rule, (text, detail));
            }
            for (i, s, amount) in over {
                if let Some(c) = self.caps.get(i) {
                    let (rule, detail) = (c.rule.clone(), c.spent(&s, amount));
                    self.would_refuse(call.call, rule, detail);
                }
            }
        }
        // Classes of every call followed, for a reload that configures longest talk times.
        let classes = if caps.is_empty() && self.max_duration.is_empty() {
            0
        } else {
            self.classes_of(number.as_ref())
        };
        let max = self.max_for(classes);
        if caps.is_empty() && max.is_none() {
            return Verdict::Continue;
        }
        // The same call admitted twice: the second admission stands.
        self.state.calls.pop(&call.call);
        while self.state.calls.len() >= self.call_bound {
            self.forget_oldest_call();
        }
        self.state.calls.push(
            call.call,
            Running {
                trunk: trunk.to_owned(),
                account: account.map(str::to_owned),
                rate,
                classes,
                caps,
                max,
                answered: None,
                ended: false,
                reported: false,
            },
        );
        Verdict::Continue
    }

    fn on_answer(&mut self, call: u64, now: Instant) {
        let Some(r) = self.state.calls.get_mut(&call) else {
            return;
        };
        if r.answered.is_some() {
            return;
        }
        r.answered = Some(now);
        // Its cost begins (the fee and the first increment): look at once, and again when the
        // first increment is over or it has talked its longest.
        let first = r
            .rate
            .as_ref()
            .filter(|_| !r.caps.is_empty())
            .and_then(|rate| now.checked_add(rate.next_step(Duration::ZERO)));
        let max = r.max.and_then(|(d, _)| now.checked_add(d));
        self.deadline = self.deadline.into_iter().chain(first).chain(max).min();
        self.dirty = true;
    }

    fn on_end(&mut self, call: u64, now: Instant) {
        // Unknown (never followed here, or ended already): nothing to commit.
        let Some(r) = self.state.calls.pop(&call) else {
            return;
        };
        self.dirty = true;
        let (Some(rate), Some(at)) = (&r.rate, r.answered) else {
            return;
        };
        if r.caps.is_empty() {
            return;
        }
        // In the period it ended in (a call across midnight counts for the new day).
        let Some(keys) = self.roll(now) else {
            return;
        };
        let cost = rate.price(now.saturating_duration_since(at));
        for (i, subject) in &r.caps {
            let Some(c) = self.caps.get(*i) else {
                continue;
            };
            let key = TotalKey {
                cap: c.name.clone(),
                subject: subject.clone(),
                period: period_of(c.period, &keys).clone(),
            };
            let row = key.row();
            let t = self.state.totals.entry(key).or_default();
            t.add(cost, call);
            let value = t.amount.normalize().to_string();
            self.state.rows.insert(row, value);
        }
    }

    fn take_hangups(&mut self, now: Instant) -> Vec<(u64, Reason)> {
        if !self.dirty && self.deadline.is_none_or(|d| now < d) {
            return Vec::new();
        }
        // Changes within LOOK_EVERY of the last look are looked at together, at its end.
        if let Some((at, _)) = &self.look {
            let next = *at + self.look_every;
            if now < next {
                self.deadline = Some(next);
                return Vec::new();
            }
        }
        self.dirty = false;
        let spent = self.spent(now);
        self.look = Some((now, spent.clone()));
        self.warn(&spent);
        let mut out = Vec::new();
        self.end_over_caps(&spent, &mut out);
        self.end_over_duration(now, &mut out);
        out.sort_by_key(|h| h.0);
        self.deadline = self.next_change(now);
        out
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.deadline
    }

    fn take_decisions(&mut self, out: &mut Vec<Decision>) {
        out.append(&mut self.decisions);
    }

    fn hand_over(&mut self) -> Option<Box<dyn std::any::Any + Send>> {
        self.deadline = None;
        Some(Box::new(std::mem::take(&mut self.state)))
    }

    fn take_over(&mut self, state: Box<dyn std::any::Any + Send>) {
        let Ok(state) = state.downcast::<SpendState>() else {
            return;
        };
        let mut state = *state;
        // Rows the old policy had not handed to the server yet go with this one's.
        let rows = std::mem::take(&mut self.state.rows);
        state.rows.extend(rows);
        self.state = state;
        self.adopt();
    }

    fn gauges(&self, out: &mut Vec<PolicyGauge>) {
        let s = self.stats();
        let n = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
        out.extend([
            PolicyGauge {
                name: "sipwarden_spend_calls",
                help: "Running calls the spend caps follow (0 when no call runs).",
                counter: false,
                value: n(s.calls),
            },
            PolicyGauge {
                name: "sipwarden_spend_totals",
                help: "Committed spend totals held (caps, subjects, current periods).",
                counter: false,
                value: n(s.totals),
            },
            PolicyGauge {
                name: "sipwarden_spend_refused_total",
                help: "Calls the spend caps refused (caps reached, unpriced numbers).",
                counter: true,
                value: s.refused,
            },
            PolicyGauge {
                name: "sipwarden_spend_ended_total",
                help: "Running calls the spend caps ended (caps reached, longest talk times).",
                counter: true,
                value: s.ended,
            },
            PolicyGauge {
                name: "sipwarden_spend_calls_evicted_total",
                help: "Running calls forgotten for want of room (their spend lost).",
                counter: true,
                value: s.calls_evicted,
            },
            PolicyGauge {
                name: "sipwarden_spend_decisions_dropped_total",
                help: "Decisions of the spend caps dropped because the core had not taken them.",
                counter: true,
                value: s.decisions_dropped,
            },
        ]);
    }

    fn take_state_rows(&mut self, out: &mut Vec<(String, String)>) {
        out.extend(std::mem::take(&mut self.state.rows));
    }

    fn restore_state_rows(&mut self, rows: &[(String, String)]) {
        for (k, v) in rows {
            let Some((key, amount)) = self.parse_row(k, v) else {
                // Not a total of a configured cap (one removed or renamed): deleted.
                self.state.rows.insert(k.clone(), String::new());
                continue;
            };
            if self.state.totals.len() >= self.call_bound && !self.state.totals.contains_key(&key) {
                continue;
            }
            // A warning reached before the restart was reported then.
            let warned = self
                .by_name
                .get(&key.cap)
                .and_then(|&i| self.caps.get(i))
                .and_then(|c| c.warning)
                .is_some_and(|w| amount >= w);
            if warned {
                self.state.warned.insert(key.clone());
            }
            let t = self.state.totals.entry(key).or_default();
            t.amount = t.amount.max(amount);
        }
        // Past periods are only known with the first call's wall-clock time: deleted then.
        self.periods = None;
        self.dirty = true;
    }
}

#[cfg(test)]
mod tests;
