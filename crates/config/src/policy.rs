//! `[policy]`: which destinations calls out through the trunks may reach (the toll-fraud
//! destination policy), how many calls may go how fast (`[[policy.limits]]`, the velocity
//! limits), and how much they may cost (`[policy.spend]`, the spend caps). Without the table
//! every destination is callable and nothing is counted, as before.

use std::path::PathBuf;
use std::time::Duration;

use rust_decimal::Decimal;
use serde::Deserialize;

use crate::{MAX_TABLE, values};

/// Whether a rule refuses calls or only says it would have.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PolicyMode {
    /// Refuse what the rule refuses.
    #[default]
    Enforce,
    /// Refuse nothing; count and record what would have been refused.
    Monitor,
}

/// The named lists shipped with the program (`sipwarden-policy`'s `numbers`).
pub const NAMED_LISTS: &[&str] = &["premium", "high-risk", "satellite"];

/// `[policy]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// The dialling context of numbers dialled through the gateway (ISO country, whose national
    /// and international prefixes apply: `011…` and `1…` in the US). Default "US".
    #[serde(default = "default_country")]
    pub country: String,
    /// Countries (ISO codes) calls may reach; empty: every country not blocked.
    #[serde(default)]
    pub allow_countries: Vec<String>,
    /// Countries (ISO codes) and named lists (`premium`, `high-risk`, `satellite`) calls may
    /// not reach; checked before `allow_countries`.
    #[serde(default)]
    pub block_countries: Vec<String>,
    /// `enforce` (default) or `monitor`; velocity limits without a `mode` of their own inherit
    /// it.
    #[serde(default)]
    pub mode: PolicyMode,
    /// Velocity limits (`[[policy.limits]]`): calls at once, calls per second, minute or hour,
    /// international calls, calls to one number, minutes a day. None by default.
    #[serde(default)]
    pub limits: Vec<LimitConfig>,
    /// The most counter entries the velocity limits keep (a window or a gauge per limit and
    /// trunk, account or number, and a mark per warning or disable reported), and the most
    /// running calls they follow. Default 100,000: same-number limits
    /// key on what callers dial, so the table must be bounded; beyond it the least recently
    /// used window gives way (counted).
    #[serde(default = "default_limit_entries")]
    pub limit_entries: usize,
    /// Numbers the policies keep normalised (each is parsed once while it stays). Default
    /// 10,000.
    #[serde(default = "default_number_cache")]
    pub number_cache: usize,
    /// The operator's files in place of the shipped named lists (`high-risk`, `satellite`):
    /// an E.164 prefix a line, `#` comments, as the shipped files in
    /// `crates/policy/data/`. None by default.
    #[serde(default)]
    pub lists: std::collections::BTreeMap<String, PathBuf>,
    /// Time windows (`[[policy.windows]]`): destinations refused at certain hours and days
    /// in an IANA time zone (international calls at night and on weekends). None by default.
    #[serde(default)]
    pub windows: Vec<WindowConfig>,
    /// Spend caps (`[policy.spend]`): calls priced by a rate table, refused and ended when a
    /// trunk's, an account's or the gateway's spend of the day or month reaches its cap. None
    /// by default.
    #[serde(default)]
    pub spend: Option<SpendConfig>,
}

/// One time window: during it, calls to `block` are refused.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// The rule's name (`time_window:<name>` in call records).
    pub name: String,
    /// The IANA time zone the hours are in (`America/New_York`). Default "UTC".
    #[serde(default = "default_zone")]
    pub zone: String,
    /// Days the window starts on (`mon` … `sun`); empty: every day.
    #[serde(default)]
    pub days: Vec<String>,
    /// Start, `HH:MM`, local time.
    pub from: String,
    /// End, `HH:MM` (`24:00`: midnight at the end of the day); earlier than `from`: the window
    /// runs past midnight into the next day.
    pub to: String,
    /// What is refused during it: `international`, ISO countries, named lists, E.164
    /// prefixes (`+44`).
    pub block: Vec<String>,
    /// `enforce` or `monitor`; default: `[policy] mode`.
    #[serde(default)]
    pub mode: Option<PolicyMode>,
}

/// The day names of `[[policy.windows]] days`, Monday first.
pub const DAYS: &[&str] = &["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// `HH:MM` as minutes since midnight (`24:00` allowed: 1440).
pub fn minutes_of(hhmm: &str) -> Option<u16> {
    let (h, m) = hhmm.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) => Some(1440),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

impl WindowConfig {
    /// The mode it runs in.
    pub fn mode_in(&self, p: &PolicyConfig) -> PolicyMode {
        self.mode.unwrap_or(p.mode)
    }
}

fn default_zone() -> String {
    "UTC".to_owned()
}

fn validate_window(w: &WindowConfig, bad: &mut dyn FnMut(&str, String)) {
    if w.name.is_empty()
        || w.name.len() > 64
        || !w
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        bad(
            "name",
            format!("{:?}: 1 to 64 letters, digits, '-', '_' or '.'", w.name),
        );
    }
    for d in &w.days {
        if !DAYS.contains(&d.as_str()) {
            bad("days", format!("{d:?} is not one of {}", DAYS.join(", ")));
        }
    }
    for (k, v) in [("from", &w.from), ("to", &w.to)] {
        if minutes_of(v).is_none() {
            bad(
                k,
                format!("{v:?} is not a time of day HH:MM (00:00 to 24:00)"),
            );
        }
    }
    if minutes_of(&w.from) == Some(1440) {
        bad("from", "24:00 is the end of a day: start at 00:00".into());
    }
    if w.from == w.to {
        bad("to", "the window would be empty (from = to)".into());
    }
    if w.block.is_empty() {
        bad(
            "block",
            "name what the window refuses (\"international\", countries, lists, prefixes)".into(),
        );
    }
    for b in &w.block {
        let ok = b == "international"
            || is_iso(b)
            || NAMED_LISTS.contains(&b.as_str())
            || (b.len() > 1 && b.starts_with('+') && b[1..].bytes().all(|c| c.is_ascii_digit()));
        if !ok {
            bad(
                "block",
                format!(
                    "{b:?} is neither \"international\", an ISO country, a named list ({}) nor an E.164 prefix such as \"+44\"",
                    NAMED_LISTS.join(", ")
                ),
            );
        }
    }
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            country: default_country(),
            allow_countries: Vec::new(),
            block_countries: Vec::new(),
            mode: PolicyMode::default(),
            limits: Vec::new(),
            limit_entries: default_limit_entries(),
            number_cache: default_number_cache(),
            lists: std::collections::BTreeMap::new(),
            windows: Vec::new(),
            spend: None,
        }
    }
}

fn default_country() -> String {
    "US".to_owned()
}

fn default_limit_entries() -> usize {
    100_000
}

fn default_number_cache() -> usize {
    10_000
}

/// Whose calls a velocity limit counts.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum LimitScope {
    /// A trunk's calls, in and out (the trunk routing sends the call to, else the one it came
    /// from).
    Trunk,
    /// An account's calls (the phone's authenticated user that places them).
    Account,
    /// Calls out through the trunks to numbers under an E.164 prefix.
    Prefix,
    /// Every call.
    All,
}

impl LimitScope {
    /// The name configuration uses.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Trunk => "trunk",
            Self::Account => "account",
            Self::Prefix => "prefix",
            Self::All => "all",
        }
    }
}

/// What a velocity limit counts.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    /// Calls at once (admitted and not yet ended).
    Concurrent,
    /// Calls in the last second.
    CallsPerSecond,
    /// Calls in the last minute.
    CallsPerMinute,
    /// Calls in the last hour.
    CallsPerHour,
    /// Calls out through a trunk to a country other than the dialling context's, in the last
    /// hour.
    InternationalPerHour,
    /// Calls to one and the same number, in the last hour (each number counted apart).
    SameNumberPerHour,
    /// Minutes of answered calls that ended in the last 24 hours.
    MinutesPerDay,
}

impl LimitKind {
    /// The name configuration uses.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Concurrent => "concurrent",
            Self::CallsPerSecond => "calls_per_second",
            Self::CallsPerMinute => "calls_per_minute",
            Self::CallsPerHour => "calls_per_hour",
            Self::InternationalPerHour => "international_per_hour",
            Self::SameNumberPerHour => "same_number_per_hour",
            Self::MinutesPerDay => "minutes_per_day",
        }
    }

    /// The rolling window counted over; none for [`LimitKind::Concurrent`], a gauge.
    pub const fn window(self) -> Option<Duration> {
        match self {
            Self::Concurrent => None,
            Self::CallsPerSecond => Some(Duration::from_secs(1)),
            Self::CallsPerMinute => Some(Duration::from_secs(60)),
            Self::CallsPerHour | Self::InternationalPerHour | Self::SameNumberPerHour => {
                Some(Duration::from_secs(3600))
            }
            Self::MinutesPerDay => Some(Duration::from_secs(86_400)),
        }
    }
}

/// What a velocity limit does besides refusing, when its critical level is crossed.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum LimitAction {
    /// Refuse the calls over the limit (default).
    #[default]
    Refuse,
    /// Refuse, and disable the trunk (the kill switch; it persists until re-enabled).
    DisableTrunk,
    /// Refuse, and disable the account.
    DisableAccount,
}

/// The statuses a velocity limit may refuse with: 403 (forbidden: do not retry elsewhere) or
/// 503 (busy now: the PBX may try another trunk or later).
pub const LIMIT_STATUSES: &[u16] = &[403, 503];

/// The most velocity limits: each is looked at for every new call.
pub const MAX_LIMITS: usize = 1000;

/// Longest name of a limit (it becomes a rule in call records and a Reason header).
pub const MAX_LIMIT_NAME: usize = 100;

/// One `[[policy.limits]]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    /// Its name in call records and Reason headers (`velocity:<name>`); default
    /// `scope[:subject]:kind`, such as `trunk:carrier:calls_per_minute`.
    #[serde(default)]
    pub name: Option<String>,
    /// Whose calls it counts.
    pub scope: LimitScope,
    /// Which trunk (by name), account (by user name) or prefix (`"+44"`); without one, a trunk
    /// or account limit counts every trunk or account apart. None for `all`; required for
    /// `prefix`.
    #[serde(default)]
    pub subject: Option<String>,
    /// What it counts.
    pub kind: LimitKind,
    /// The level at which a warning is reported (once per crossing), below `critical`.
    #[serde(default)]
    pub warning: Option<u64>,
    /// The most calls (minutes for `minutes_per_day`) let through: with 10, the 11th call is
    /// refused.
    pub critical: u64,
    /// The refusal's status: 403 (default) or 503.
    #[serde(default = "default_limit_status")]
    pub status: u16,
    /// `refuse` (default), `disable_trunk` (trunk limits) or `disable_account` (account
    /// limits).
    #[serde(default)]
    pub action: LimitAction,
    /// `enforce` or `monitor`; default `[policy] mode`.
    #[serde(default)]
    pub mode: Option<PolicyMode>,
}

fn default_limit_status() -> u16 {
    403
}

impl LimitConfig {
    /// Its name: the configured one, else `scope[:subject]:kind`.
    pub fn name(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        match &self.subject {
            Some(s) => format!("{}:{s}:{}", self.scope.as_str(), self.kind.as_str()),
            None => format!("{}:{}", self.scope.as_str(), self.kind.as_str()),
        }
    }

    /// Its mode: its own, else the policy's.
    pub fn mode_in(&self, policy: &PolicyConfig) -> PolicyMode {
        self.mode.unwrap_or(policy.mode)
    }
}

fn is_iso(s: &str) -> bool {
    s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase())
}

/// Checks `[policy]`: ISO codes are two capital letters (whether the country exists is checked
/// when the policy is built, against libphonenumber's countries), lists are known by name,
/// limits are coherent and name trunks that exist (`trunks`: the configured names).
pub(crate) fn validate(p: &PolicyConfig, trunks: &[&str], err: &mut dyn FnMut(String, String)) {
    if !is_iso(&p.country) {
        err(
            "policy.country".into(),
            format!(
                "{:?} is not an ISO 3166 country code such as \"US\"",
                p.country
            ),
        );
    }
    for c in &p.allow_countries {
        if !is_iso(c) {
            err(
                "policy.allow_countries".into(),
                format!("{c:?} is not an ISO 3166 country code such as \"CA\""),
            );
        }
    }
    for c in &p.block_countries {
        if !is_iso(c) && !NAMED_LISTS.contains(&c.as_str()) {
            err(
                "policy.block_countries".into(),
                format!(
                    "{c:?} is neither an ISO 3166 country code such as \"CU\" nor a named list ({})",
                    NAMED_LISTS.join(", ")
                ),
            );
        }
    }
    if !(1..=MAX_TABLE).contains(&p.limit_entries) {
        err(
            "policy.limit_entries".into(),
            format!("must lie between 1 and {MAX_TABLE}"),
        );
    }
    for name in p.lists.keys() {
        if name != "high-risk" && name != "satellite" {
            err(
                format!("policy.lists.{name}"),
                "only the high-risk and satellite lists are files (premium is a number type)"
                    .into(),
            );
        }
    }
    if !(1..=MAX_TABLE).contains(&p.number_cache) {
        err(
            "policy.number_cache".into(),
            format!("must lie between 1 and {MAX_TABLE}"),
        );
    }
    if p.limits.len() > MAX_LIMITS {
        err(
            "policy.limits".into(),
            format!("at most {MAX_LIMITS} limits (each is looked at for every call)"),
        );
    }
    let mut names: Vec<String> = Vec::new();
    for (i, l) in p.limits.iter().enumerate() {
        let mut bad = |k: &str, m: String| err(format!("policy.limits[{i}].{k}"), m);
        validate_limit(l, trunks, &mut bad);
        let name = l.name();
        if names.contains(&name) {
            // Two limits under one name would share their counters and their rule.
            let k = if l.name.is_some() { "name" } else { "kind" };
            bad(
                k,
                format!("limit {name:?} is configured twice (give one a name of its own)"),
            );
        }
        names.push(name);
    }
    let mut window_names: Vec<&str> = Vec::new();
    for (i, w) in p.windows.iter().enumerate() {
        let mut bad = |k: &str, m: String| err(format!("policy.windows[{i}].{k}"), m);
        validate_window(w, &mut bad);
        if window_names.contains(&w.name.as_str()) {
            bad("name", format!("window {:?} is configured twice", w.name));
        }
        window_names.push(&w.name);
    }
    if let Some(s) = &p.spend {
        validate_spend(s, trunks, err);
    }
}

fn validate_limit(l: &LimitConfig, trunks: &[&str], bad: &mut dyn FnMut(&str, String)) {
    if let Some(n) = &l.name {
        // It goes into a quoted Reason header and metric-adjacent records: no quotes, no
        // spaces, bounded.
        let ok = !n.is_empty()
            && n.len() <= MAX_LIMIT_NAME
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_:.+".contains(&b));
        if !ok {
            bad(
                "name",
                format!(
                    "{n:?} must be 1 to {MAX_LIMIT_NAME} letters, digits or '-', '_', ':', '.', '+'"
                ),
            );
        }
    }
    match (l.scope, l.subject.as_deref()) {
        (LimitScope::All, Some(_)) => bad("subject", "a limit on all calls has no subject".into()),
        (LimitScope::Prefix, None) => bad(
            "subject",
            "a prefix limit needs its prefix, such as \"+44\"".into(),
        ),
        (LimitScope::Prefix, Some(s)) => {
            let ok = s.strip_prefix('+').is_some_and(|d| {
                !d.is_empty() && d.len() <= 15 && d.bytes().all(|b| b.is_ascii_digit())
            });
            if !ok {
                bad(
                    "subject",
                    format!("{s:?} is not an E.164 prefix such as \"+44\""),
                );
            }
        }
        (LimitScope::Trunk, Some(s)) if !trunks.contains(&s) => {
            bad("subject", format!("no trunk is named {s:?}"));
        }
        (LimitScope::Account, Some(s)) if s.is_empty() || s.len() > MAX_LIMIT_NAME => {
            bad("subject", format!("{s:?} is not an account's user name"))
        }
        _ => {}
    }
    if l.critical == 0 {
        bad(
            "critical",
            "must be at least 1 (to refuse every call, block the destination instead)".into(),
        );
    }
    if let Some(w) = l.warning
        && (w == 0 || w >= l.critical)
    {
        bad(
            "warning",
            format!(
                "must lie between 1 and critical - 1 ({})",
                l.critical.saturating_sub(1)
            ),
        );
    }
    if !LIMIT_STATUSES.contains(&l.status) {
        bad("status", format!("{} is neither 403 nor 503", l.status));
    }
    match (l.action, l.scope) {
        (LimitAction::DisableTrunk, s) if s != LimitScope::Trunk => bad(
            "action",
            "disable_trunk needs scope = \"trunk\" (which trunk to disable)".into(),
        ),
        (LimitAction::DisableAccount, s) if s != LimitScope::Account => bad(
            "action",
            "disable_account needs scope = \"account\" (which account to disable)".into(),
        ),
        _ => {}
    }
}

/// `[policy.spend]`: the spend caps. Calls out through the trunks are priced by a rate table
/// (`rates`, a CSV file the server reads); what they cost is summed per cap and per day or
/// month in `zone`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SpendConfig {
    /// The rate table: a CSV file of `prefix,price_per_minute,increment,connection_fee`. The
    /// server reads it (the policy is sans-io); relative paths as written. Required with
    /// caps or `unpriced = "refuse"`.
    #[serde(default)]
    pub rates: Option<PathBuf>,
    /// The IANA time zone days and months begin in (`Europe/London`); default "UTC". Checked
    /// against the bundled tz database when the policy is built.
    #[serde(default = "default_spend_zone")]
    pub zone: String,
    /// What a call to a number the table does not price does: `allow` (default: it costs
    /// nothing) or `refuse` (403 `spend_unpriced`).
    #[serde(default)]
    pub unpriced: Unpriced,
    /// The caps (`[[policy.spend.caps]]`).
    #[serde(default)]
    pub caps: Vec<SpendCapConfig>,
    /// The longest a call may talk, by the class of its destination
    /// (`[policy.spend.max_duration]`).
    #[serde(default)]
    pub max_duration: MaxDurationConfig,
}

impl Default for SpendConfig {
    fn default() -> Self {
        Self {
            rates: None,
            zone: default_spend_zone(),
            unpriced: Unpriced::default(),
            caps: Vec::new(),
            max_duration: MaxDurationConfig::default(),
        }
    }
}

fn default_spend_zone() -> String {
    "UTC".to_owned()
}

/// What a call to a number the rate table does not price does.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Unpriced {
    /// It goes on and costs nothing (toll-free and emergency numbers are often not priced).
    #[default]
    Allow,
    /// It is refused: 403 `spend_unpriced`.
    Refuse,
}

/// Whose calls a spend cap sums.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum SpendScope {
    /// Calls out through a trunk.
    Trunk,
    /// Calls out through the trunks placed by an account (a phone's authenticated user).
    Account,
    /// Every call out through the trunks.
    All,
}

impl SpendScope {
    /// The name configuration uses.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Trunk => "trunk",
            Self::Account => "account",
            Self::All => "all",
        }
    }
}

/// The calendar period a spend cap sums over, in `[policy.spend] zone`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum SpendPeriod {
    /// From midnight to midnight.
    Day,
    /// From the first of the month to the first of the next.
    Month,
}

impl SpendPeriod {
    /// The name configuration uses.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Month => "month",
        }
    }
}

/// One `[[policy.spend.caps]]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SpendCapConfig {
    /// Its name in call records, Reason headers and stored totals (`spend:<name>`); default
    /// `scope[:subject]:period`, such as `trunk:carrier:day`.
    #[serde(default)]
    pub name: Option<String>,
    /// Whose calls it sums.
    pub scope: SpendScope,
    /// Which trunk (by name) or account (by user name); without one, every trunk or account
    /// is capped apart. None for `all`.
    #[serde(default)]
    pub subject: Option<String>,
    /// Day or month.
    pub period: SpendPeriod,
    /// The spend at which a warning is reported (once per period), below `cap`.
    #[serde(default, deserialize_with = "values::opt_money")]
    pub warning: Option<Decimal>,
    /// The most spent per period: at it, new calls are refused (and running ones ended with
    /// `hangup`). A quoted decimal such as "50.00".
    #[serde(deserialize_with = "values::money")]
    pub cap: Decimal,
    /// Whether running calls are ended when their projected spend reaches the cap (default
    /// true); without, only new calls are refused.
    #[serde(default = "default_true")]
    pub hangup: bool,
    /// `enforce` or `monitor`; default `[policy] mode`.
    #[serde(default)]
    pub mode: Option<PolicyMode>,
}

fn default_true() -> bool {
    true
}

impl SpendCapConfig {
    /// Its name: the configured one, else `scope[:subject]:period`.
    pub fn name(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        match &self.subject {
            Some(s) => format!("{}:{s}:{}", self.scope.as_str(), self.period.as_str()),
            None => format!("{}:{}", self.scope.as_str(), self.period.as_str()),
        }
    }

    /// Its mode: its own, else the policy's.
    pub fn mode_in(&self, policy: &PolicyConfig) -> PolicyMode {
        self.mode.unwrap_or(policy.mode)
    }
}

/// `[policy.spend.max_duration]`: the longest a call out through a trunk may talk (from its
/// answer), by the classes of its destination; a destination in several classes gets the
/// shortest. Unset classes are not limited.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MaxDurationConfig {
    /// Calls within the dialling context's country.
    #[serde(default, deserialize_with = "values::opt_duration")]
    pub domestic: Option<Duration>,
    /// Calls to other countries (and to numbers of no country).
    #[serde(default, deserialize_with = "values::opt_duration")]
    pub international: Option<Duration>,
    /// Calls to the `premium` named list.
    #[serde(default, deserialize_with = "values::opt_duration")]
    pub premium: Option<Duration>,
    /// Calls to the `high-risk` named list.
    #[serde(default, deserialize_with = "values::opt_duration")]
    pub high_risk: Option<Duration>,
    /// Calls to the `satellite` named list.
    #[serde(default, deserialize_with = "values::opt_duration")]
    pub satellite: Option<Duration>,
}

impl MaxDurationConfig {
    /// Each class by its configuration name with its limit.
    pub fn classes(&self) -> [(&'static str, Option<Duration>); 5] {
        [
            ("domestic", self.domestic),
            ("international", self.international),
            ("premium", self.premium),
            ("high_risk", self.high_risk),
            ("satellite", self.satellite),
        ]
    }
}

/// Longest `[policy.spend] zone` (IANA names are far shorter).
const MAX_ZONE: usize = 64;

/// Checks `[policy.spend]` (the zone's existence is checked when the policy is built, against
/// the bundled tz database; the rate table when the server has read it).
fn validate_spend(s: &SpendConfig, trunks: &[&str], err: &mut dyn FnMut(String, String)) {
    if s.zone.is_empty() || s.zone.len() > MAX_ZONE || s.zone.chars().any(char::is_whitespace) {
        err(
            "policy.spend.zone".into(),
            format!(
                "{:?} is not an IANA time zone such as \"Europe/London\"",
                s.zone
            ),
        );
    }
    if s.rates.is_none() {
        if !s.caps.is_empty() {
            err(
                "policy.spend.rates".into(),
                "caps need a rate table to price calls (rates = \"rates.csv\")".into(),
            );
        }
        if s.unpriced == Unpriced::Refuse {
            err(
                "policy.spend.unpriced".into(),
                "\"refuse\" without a rate table would refuse every call out".into(),
            );
        }
    }
    if s.caps.len() > MAX_LIMITS {
        err(
            "policy.spend.caps".into(),
            format!("at most {MAX_LIMITS} caps (each is looked at for every call)"),
        );
    }
    let mut names: Vec<String> = Vec::new();
    for (i, c) in s.caps.iter().enumerate() {
        let mut bad = |k: &str, m: String| err(format!("policy.spend.caps[{i}].{k}"), m);
        validate_cap(c, trunks, &mut bad);
        let name = c.name();
        if names.contains(&name) {
            // Two caps under one name would share their totals and their rule.
            let k = if c.name.is_some() { "name" } else { "period" };
            bad(
                k,
                format!("cap {name:?} is configured twice (give one a name of its own)"),
            );
        }
        names.push(name);
    }
    for (class, d) in s.max_duration.classes() {
        if d.is_some_and(|d| d < Duration::from_secs(1)) {
            err(
                format!("policy.spend.max_duration.{class}"),
                "must be at least 1s".into(),
            );
        }
    }
}

fn validate_cap(c: &SpendCapConfig, trunks: &[&str], bad: &mut dyn FnMut(&str, String)) {
    if let Some(n) = &c.name {
        // As a limit's name: it goes into a quoted Reason header and the stored totals' keys.
        let ok = !n.is_empty()
            && n.len() <= MAX_LIMIT_NAME
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_:.+".contains(&b));
        if !ok {
            bad(
                "name",
                format!(
                    "{n:?} must be 1 to {MAX_LIMIT_NAME} letters, digits or '-', '_', ':', '.', '+'"
                ),
            );
        }
    }
    match (c.scope, c.subject.as_deref()) {
        (SpendScope::All, Some(_)) => bad("subject", "a cap on all calls has no subject".into()),
        (SpendScope::Trunk, Some(s)) if !trunks.contains(&s) => {
            bad("subject", format!("no trunk is named {s:?}"));
        }
        (SpendScope::Account, Some(s)) if s.is_empty() || s.len() > MAX_LIMIT_NAME => {
            bad("subject", format!("{s:?} is not an account's user name"));
        }
        _ => {}
    }
    if c.cap <= Decimal::ZERO {
        bad("cap", format!("\"{}\" must be a positive decimal", c.cap));
    }
    if let Some(w) = c.warning
        && (w <= Decimal::ZERO || w >= c.cap)
    {
        bad(
            "warning",
            format!(
                "\"{w}\" must be a positive decimal below the cap ({})",
                c.cap
            ),
        );
    }
}
