//! Call detail records from call events: one record per call attempt, refused ones
//! included. The writer thread feeds every call event here and stores the rows this returns
//! in the same commit as the batch's other rows, so a record is on disk as soon as the
//! event is: a running call's record when it starts and is answered, its final form when it
//! ends. Numbers are classified here (country, number type), off the call path.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use sipwarden_b2bua::events::{CallEvent, CallEventKind, CallInfo};
use sipwarden_policy::numbers::DialContext;
use sipwarden_store::CdrRow;

/// Decisions held for calls whose record does not exist yet (a refused call's come before
/// its `Refused`); a bound, not a working size.
const PENDING_MAX: usize = 4096;

/// Builds records from call events.
#[derive(Debug)]
pub(crate) struct CdrBuilder {
    /// Prefix of every record id: the gateway's start (ms), so ids never repeat.
    boot: String,
    ctx: Option<DialContext>,
    /// Numbers already read: a call's numbers are read once at its start (bounded).
    numbers: std::sync::Arc<sipwarden_policy::numbers::NumberCache>,
    open: HashMap<u64, Open>,
    pending: HashMap<u64, Vec<serde_json::Value>>,
    max_open: usize,
    /// The spend caps' rate table: records are priced as the caps price calls.
    rates: Option<sipwarden_policy::RateTable>,
    /// Records started when the table of running ones was full (they are stored once, as
    /// running, and never finished): counted for `/metrics`.
    pub(crate) overflow: u64,
}

#[derive(Debug)]
struct Open {
    row: CdrRow,
    decisions: Vec<serde_json::Value>,
}

pub(crate) fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl CdrBuilder {
    /// `country`: the dialling context numbers are read in (`[policy] country`); `max_open`:
    /// the most running calls to hold records for (the core's call limit bounds them).
    pub(crate) fn new(
        boot: SystemTime,
        country: &str,
        max_open: usize,
        rates: Option<sipwarden_policy::RateTable>,
    ) -> Self {
        Self {
            rates,
            boot: unix_ms(boot).to_string(),
            ctx: DialContext::new(country).ok(),
            numbers: sipwarden_policy::numbers::NumberCache::new(4096),
            open: HashMap::new(),
            pending: HashMap::new(),
            max_open,
            overflow: 0,
        }
    }

    /// Running calls' records held.
    pub(crate) fn open_len(&self) -> usize {
        self.open.len()
    }

    fn row(&self, call: u64, at: SystemTime, info: &CallInfo, state: &str) -> CdrRow {
        let callee = self
            .ctx
            .and_then(|c| self.numbers.normalise(&info.callee, c).ok());
        let caller = self
            .ctx
            .and_then(|c| self.numbers.normalise(&info.caller, c).ok());
        CdrRow {
            id: format!("{}-{call}", self.boot),
            state: state.to_owned(),
            start_ms: unix_ms(at),
            origin: info.origin.as_str().to_owned(),
            trunk: info.trunk.clone(),
            account: info.account.clone(),
            source: info.source.to_string(),
            transport: info.transport.as_str().unwrap_or("?").to_ascii_lowercase(),
            caller: info.caller.clone(),
            callee: info.callee.clone(),
            caller_e164: caller.map(|n| n.e164),
            country: callee
                .as_ref()
                .and_then(|n| n.country.clone().or_else(|| n.code_country.clone())),
            number_type: callee.as_ref().map(|n| n.kind.as_str().to_owned()),
            callee_e164: callee.map(|n| n.e164),
            decisions: "[]".to_owned(),
            a_call_id: info.a_call_id.clone(),
            b_call_id: info.b_call_id.clone(),
            ..CdrRow::default()
        }
    }

    /// Takes one event; returns the record to store, if it changed.
    pub(crate) fn feed(&mut self, e: &CallEvent) -> Option<CdrRow> {
        match &e.kind {
            CallEventKind::Started(info) => {
                let mut row = self.row(e.call, e.at, info, "running");
                let decisions = self.pending.remove(&e.call).unwrap_or_default();
                row.decisions = json(&decisions);
                if self.open.len() >= self.max_open {
                    self.overflow += 1;
                    return Some(row);
                }
                self.open.insert(
                    e.call,
                    Open {
                        row: row.clone(),
                        decisions,
                    },
                );
                Some(row)
            }
            CallEventKind::Refused {
                info,
                stage,
                status,
                reason,
            } => {
                let mut row = self.row(e.call, e.at, info, "refused");
                let mut decisions = self.pending.remove(&e.call).unwrap_or_default();
                // The refusal names its stage and reason where no rule said it in words
                // (routing, authentication, the kill switch).
                if !decisions.iter().any(|d| d["outcome"] == "refused") {
                    decisions.push(serde_json::json!({
                        "rule": stage,
                        "outcome": "refused",
                        "detail": reason.code(),
                    }));
                }
                row.decisions = json(&decisions);
                row.end_ms = Some(row.start_ms);
                row.status = Some(*status);
                row.ended_by = Some("gateway".to_owned());
                row.reason = format!("refused by {stage}: {}", reason.code());
                Some(row)
            }
            CallEventKind::Decision {
                rule,
                outcome,
                detail,
            } => {
                let d = serde_json::json!({
                    "rule": rule,
                    "outcome": outcome.as_str(),
                    "detail": detail,
                });
                if let Some(o) = self.open.get_mut(&e.call) {
                    o.decisions.push(d);
                    o.row.decisions = json(&o.decisions);
                    return Some(o.row.clone());
                }
                if self.pending.len() < PENDING_MAX || self.pending.contains_key(&e.call) {
                    self.pending.entry(e.call).or_default().push(d);
                }
                None
            }
            CallEventKind::Attempt { trunk, .. } => {
                let o = self.open.get_mut(&e.call)?;
                if o.row.trunk.as_deref() == Some(trunk) {
                    return None;
                }
                o.row.trunk = Some(trunk.clone());
                Some(o.row.clone())
            }
            CallEventKind::Answered => {
                let o = self.open.get_mut(&e.call)?;
                o.row.answer_ms = Some(unix_ms(e.at));
                Some(o.row.clone())
            }
            CallEventKind::Ended { status, by, reason } => {
                let mut o = self.open.remove(&e.call)?;
                let end = unix_ms(e.at);
                let r = &mut o.row;
                r.state = "ended".to_owned();
                r.end_ms = Some(end);
                r.duration_ms = (end - r.start_ms).max(0);
                r.billable_s = r.answer_ms.map_or(0, |a| {
                    let ms = (end - a).max(0);
                    // Whole seconds, rounded up (a rate table's increment applies in pricing).
                    (ms + 999) / 1000
                });
                if let (Some(t), Some(e164)) = (&self.rates, &r.callee_e164) {
                    let answered = r
                        .answer_ms
                        .map(|a| Duration::from_millis(u64::try_from(end - a).unwrap_or(0)));
                    r.cost = t
                        .price_call(e164, answered)
                        .map(sipwarden_policy::spend::money);
                }
                r.status = *status;
                r.ended_by = Some(by.as_str().to_owned());
                r.reason.clone_from(reason);
                Some(o.row)
            }
            CallEventKind::AttemptFailed { .. }
            | CallEventKind::Media { .. }
            | CallEventKind::MediaUnanchored { .. } => None,
        }
    }
}

fn json(d: &[serde_json::Value]) -> String {
    serde_json::Value::Array(d.to_vec()).to_string()
}

/// How long records are kept (`storage.cdr_retention_days`), as a cut-off before `now`.
pub(crate) fn retention_cut(now: SystemTime, days: u32) -> i64 {
    unix_ms(now)
        - i64::try_from(Duration::from_secs(u64::from(days) * 86_400).as_millis())
            .unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sipwarden_b2bua::events::EndedBy;
    use sipwarden_sip::header::Transport;
    use sipwarden_stages::{Origin, Outcome, Reason};

    fn info(callee: &str) -> CallInfo {
        CallInfo {
            a_call_id: "a1".into(),
            b_call_id: "b1".into(),
            origin: Origin::Pbx,
            trunk: Some("carrier".into()),
            account: None,
            source: "127.0.0.1:5070".parse().unwrap(),
            transport: Transport::Udp,
            caller: "+15551230000".into(),
            callee: callee.into(),
            caller_normalised: None,
            callee_normalised: None,
        }
    }

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + s)
    }

    fn ev(call: u64, ms: u64, kind: CallEventKind) -> CallEvent {
        CallEvent {
            call,
            at: at(ms),
            kind,
        }
    }

    #[test]
    fn a_call_is_recorded_when_it_starts_is_answered_and_ends() {
        let mut b = CdrBuilder::new(at(0), "US", 10, None);
        let r = b
            .feed(&ev(7, 0, CallEventKind::Started(info("2125550100"))))
            .unwrap();
        assert_eq!(r.state, "running");
        assert_eq!(r.callee_e164.as_deref(), Some("+12125550100"));
        assert_eq!(r.country.as_deref(), Some("US"));
        assert_eq!(r.caller_e164.as_deref(), Some("+15551230000"));
        assert!(r.id.ends_with("-7"));
        let d = b
            .feed(&ev(
                7,
                10,
                CallEventKind::Decision {
                    rule: "velocity:cps".into(),
                    outcome: Outcome::Warning,
                    detail: "80 % of 5/s".into(),
                },
            ))
            .unwrap();
        assert!(d.decisions.contains("velocity:cps"), "{}", d.decisions);
        let a = b.feed(&ev(7, 2_000, CallEventKind::Answered)).unwrap();
        assert_eq!(a.answer_ms, Some(r.start_ms + 2_000));
        let e = b
            .feed(&ev(
                7,
                63_500,
                CallEventKind::Ended {
                    status: Some(200),
                    by: EndedBy::Callee,
                    reason: "BYE".into(),
                },
            ))
            .unwrap();
        assert_eq!(e.state, "ended");
        assert_eq!(e.duration_ms, 63_500);
        assert_eq!(e.billable_s, 62, "61.5 s answered, rounded up");
        assert_eq!(e.ended_by.as_deref(), Some("callee"));
        assert!(e.decisions.contains("warning"));
        assert_eq!(b.open_len(), 0);
    }

    #[test]
    fn records_are_priced_with_the_rate_table() {
        let rates = sipwarden_policy::RateTable::parse(
            "prefix,price_per_minute,increment,connection_fee\n+1212,0.60,6,0.05\n",
        )
        .unwrap();
        let mut b = CdrBuilder::new(at(0), "US", 10, Some(rates));
        b.feed(&ev(1, 0, CallEventKind::Started(info("2125550100"))));
        b.feed(&ev(1, 1_000, CallEventKind::Answered));
        let e = b
            .feed(&ev(
                1,
                14_000,
                CallEventKind::Ended {
                    status: Some(200),
                    by: EndedBy::Caller,
                    reason: "BYE".into(),
                },
            ))
            .unwrap();
        // 13 s answered: 18 s billed in 6 s steps at 0.01 a second, plus the fee.
        assert_eq!(
            e.cost.as_deref().map(|c| c.parse::<f64>().unwrap()),
            Some(0.23)
        );
        // Not in the table: no price.
        b.feed(&ev(2, 0, CallEventKind::Started(info("+442079460000"))));
        let e = b
            .feed(&ev(
                2,
                5_000,
                CallEventKind::Ended {
                    status: Some(487),
                    by: EndedBy::Caller,
                    reason: "cancelled".into(),
                },
            ))
            .unwrap();
        assert_eq!(e.cost, None);
    }

    #[test]
    fn a_refused_call_names_its_rule() {
        let mut b = CdrBuilder::new(at(0), "US", 10, None);
        assert!(
            b.feed(&ev(
                3,
                0,
                CallEventKind::Decision {
                    rule: "destination".into(),
                    outcome: Outcome::Refused,
                    detail: "+5371234567 is on the high-risk list".into(),
                },
            ))
            .is_none()
        );
        let r = b
            .feed(&ev(
                3,
                0,
                CallEventKind::Refused {
                    info: info("+5371234567"),
                    stage: "destination",
                    status: 403,
                    reason: Reason::Policy("destination_blocked"),
                },
            ))
            .unwrap();
        assert_eq!(r.state, "refused");
        assert_eq!(r.status, Some(403));
        assert_eq!(r.country.as_deref(), Some("CU"));
        let d: serde_json::Value = serde_json::from_str(&r.decisions).unwrap();
        assert_eq!(d[0]["detail"], "+5371234567 is on the high-risk list");
        assert_eq!(d.as_array().unwrap().len(), 1, "the rule's words only");
        // A refusal no rule put in words names its stage and reason.
        let r = b
            .feed(&ev(
                4,
                0,
                CallEventKind::Refused {
                    info: info("+15551230000"),
                    stage: "route",
                    status: 403,
                    reason: Reason::Policy("trunk_disabled"),
                },
            ))
            .unwrap();
        let d: serde_json::Value = serde_json::from_str(&r.decisions).unwrap();
        assert_eq!(d[0]["rule"], "route");
        assert_eq!(d[0]["detail"], "trunk_disabled");
        assert!(b.pending.is_empty());
    }

    #[test]
    fn the_table_of_running_calls_is_bounded() {
        let mut b = CdrBuilder::new(at(0), "US", 2, None);
        for call in 0..5 {
            assert!(
                b.feed(&ev(call, 0, CallEventKind::Started(info("1"))))
                    .is_some()
            );
        }
        assert_eq!(b.open_len(), 2);
        assert_eq!(b.overflow, 3);
        for call in 0..(PENDING_MAX as u64 + 10) {
            b.feed(&ev(
                1000 + call,
                0,
                CallEventKind::Decision {
                    rule: "r".into(),
                    outcome: Outcome::Warning,
                    detail: String::new(),
                },
            ));
        }
        assert_eq!(b.pending.len(), PENDING_MAX);
    }
}
