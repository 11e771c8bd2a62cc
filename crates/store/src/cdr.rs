//! Call detail records: one row per call attempt, refused ones included. The writer stores a
//! row when a call starts (so it is readable while it runs), again when it is answered, and
//! its final form when it ends.

use crate::StoreError;

/// One call's record, as stored. Times are Unix milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CdrRow {
    /// Unique across restarts (the gateway's start time and its call id).
    pub id: String,
    /// `running`, `ended`, `refused`, or `interrupted` (the gateway stopped while it ran: a
    /// crash; its end and cost are unknown).
    pub state: String,
    /// When the call arrived (Unix ms).
    pub start_ms: i64,
    /// When the caller got a 2xx.
    pub answer_ms: Option<i64>,
    /// When it ended (or was refused).
    pub end_ms: Option<i64>,
    /// From start to end, in milliseconds (0 while it runs).
    pub duration_ms: i64,
    /// Answered seconds as billed (rounded up to the billing increment).
    pub billable_s: i64,
    /// Its price, a decimal in the rate table's currency, when it was priced.
    pub cost: Option<String>,
    /// The zone it came from (`pbx`, `trunk`, `endpoint`).
    pub origin: String,
    /// The trunk it came from or left by.
    pub trunk: Option<String>,
    /// The account that placed it (or that the PBX called).
    pub account: Option<String>,
    /// The caller's address (`ip:port`).
    pub source: String,
    /// The caller's transport.
    pub transport: String,
    /// The caller as received.
    pub caller: String,
    /// The callee as received.
    pub callee: String,
    /// The caller in E.164, when it is a number.
    pub caller_e164: Option<String>,
    /// The callee in E.164, when it is a number.
    pub callee_e164: Option<String>,
    /// The callee's country (ISO), when known.
    pub country: Option<String>,
    /// The callee's number type (`premium_rate`, `mobile`, ...), when known.
    pub number_type: Option<String>,
    /// The final status the caller got.
    pub status: Option<u16>,
    /// Which side ended it (`caller`, `callee`, `gateway`).
    pub ended_by: Option<String>,
    /// Why it ended or was refused, in words.
    pub reason: String,
    /// The policy decisions that applied, as a JSON array of `{rule, outcome, detail}`.
    pub decisions: String,
    /// The caller's leg's Call-ID.
    pub a_call_id: String,
    /// The callee's leg's Call-ID (empty for a refused call).
    pub b_call_id: String,
}

/// Which records a query wants, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CdrFilter {
    /// Started at or after (Unix ms).
    pub since_ms: Option<i64>,
    /// Started before (Unix ms).
    pub until_ms: Option<i64>,
    /// Through this trunk.
    pub trunk: Option<String>,
    /// By this account.
    pub account: Option<String>,
    /// In this state (`running`, `ended`, `refused`).
    pub state: Option<String>,
    /// Callee's E.164 starting with this.
    pub callee_prefix: Option<String>,
    /// From this source address (the IP, any port).
    pub source_ip: Option<String>,
    /// At most this many rows.
    pub limit: u32,
    /// Skipping this many (paging).
    pub offset: u32,
}

/// Durable call records.
pub trait CdrStore: Send {
    /// Inserts or replaces rows (by id), atomically.
    fn apply_cdrs(&mut self, rows: &[CdrRow]) -> Result<(), StoreError>;
    /// Rows matching `filter`, newest first.
    fn query_cdrs(&mut self, filter: &CdrFilter) -> Result<Vec<CdrRow>, StoreError>;
    /// Removes finished records that started before `before_ms`; returns how many.
    fn purge_cdrs(&mut self, before_ms: i64) -> Result<u64, StoreError>;
    /// At start: records still `running` belong to calls a crash ended; they become
    /// `interrupted` with this reason. Returns how many.
    fn close_running_cdrs(&mut self, reason: &str) -> Result<u64, StoreError>;
}

/// Whether a row passes a filter (the memory store's query; SQLite's WHERE says the same).
pub(crate) fn matches(r: &CdrRow, f: &CdrFilter) -> bool {
    f.since_ms.is_none_or(|t| r.start_ms >= t)
        && f.until_ms.is_none_or(|t| r.start_ms < t)
        && f.trunk.as_ref().is_none_or(|t| r.trunk.as_ref() == Some(t))
        && f.account
            .as_ref()
            .is_none_or(|a| r.account.as_ref() == Some(a))
        && f.state.as_ref().is_none_or(|s| &r.state == s)
        && f.callee_prefix.as_ref().is_none_or(|p| {
            r.callee_e164
                .as_ref()
                .is_some_and(|c| c.starts_with(p.as_str()))
        })
        && f.source_ip
            .as_ref()
            .is_none_or(|ip| source_ip(&r.source) == ip)
}

/// The address of `ip:port` or `[v6]:port`.
pub(crate) fn source_ip(source: &str) -> &str {
    let host = source.rsplit_once(':').map_or(source, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// A disabled trunk or account (the kill switch), as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwitchRow {
    /// `trunk` or `account`.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// Unix time (seconds) it was disabled.
    pub since_unix: i64,
    /// Who disabled it (`operator`, or a rule).
    pub by: String,
}

/// A change to the kill switch's table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SwitchRowChange {
    /// Disabled.
    Upsert(SwitchRow),
    /// Enabled again: (kind, name).
    Remove(String, String),
}

/// Durable kill switch.
pub trait SwitchStore: Send {
    /// Every disabled trunk and account.
    fn load_switches(&mut self) -> Result<Vec<SwitchRow>, StoreError>;
    /// Applies changes atomically, in order.
    fn apply_switches(&mut self, changes: &[SwitchRowChange]) -> Result<(), StoreError>;
}

/// One row of a call policy's state kept across restarts (spend so far).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyStateRow {
    /// The policy's name (`spend`).
    pub policy: String,
    /// The policy's key.
    pub key: String,
    /// Its value; empty deletes the row.
    pub value: String,
}

/// Durable state of the call policies.
pub trait PolicyStateStore: Send {
    /// Every row.
    fn load_policy_state(&mut self) -> Result<Vec<PolicyStateRow>, StoreError>;
    /// Upserts rows (an empty value deletes), atomically.
    fn apply_policy_state(&mut self, rows: &[PolicyStateRow]) -> Result<(), StoreError>;
}
