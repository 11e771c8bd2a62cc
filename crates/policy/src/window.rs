//! Time windows (`[[policy.windows]]`): destinations refused at certain hours and days, in an
//! IANA time zone — international calls at night and on weekends, when nobody would notice a
//! cracked phone dialling abroad. The wall-clock time comes with the call (the core reads no
//! clock); the time-zone rules are jiff's bundled tz database, so no file is read.
//!
//! A window starts on each of its days at `from` and ends at `to`, the next day when `to` is
//! earlier (Friday 19:00 to Saturday 07:00 belongs to Friday). Only calls out through a trunk
//! are judged. A refused call gets 403 with a Reason naming the window; in monitor mode the
//! call goes on and the decision says it would have been refused.

use std::time::SystemTime;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use sipwarden_config::{DAYS, PolicyConfig, PolicyMode, WindowConfig, minutes_of};
use sipwarden_sip::{HeaderName, StatusCode};
use sipwarden_stages::{CallPolicy, CallRequest, Decision, Destination, Outcome, Reason, Verdict};

use std::sync::Arc;

use crate::numbers::{DialContext, Lists, NUMBER_CACHE, NamedList, Number, NumberCache};

/// Why a call is refused: the metric label and the call record's reason.
pub const TIME_WINDOW: &str = "time_window";

/// What a window refuses.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Block {
    /// Every country but the dialling context's (and international networks).
    International,
    /// One country (ISO).
    Country(String),
    /// A shipped list.
    List(NamedList),
    /// An E.164 prefix (`+44`).
    Prefix(String),
}

/// One window, ready.
#[derive(Debug)]
struct Window {
    rule: String,
    name: String,
    zone_name: String,
    tz: TimeZone,
    /// Bit 0 Monday … bit 6 Sunday.
    days: u8,
    from: u16,
    to: u16,
    block: Vec<Block>,
    monitor: bool,
}

impl Window {
    fn new(w: &WindowConfig, cfg: &PolicyConfig, i: usize) -> Result<Self, String> {
        let tz = TimeZone::get(&w.zone)
            .map_err(|_| format!("policy.windows[{i}].zone: unknown time zone {:?}", w.zone))?;
        let mut days = 0u8;
        for d in &w.days {
            if let Some(n) = DAYS.iter().position(|x| x == d) {
                days |= 1 << n;
            }
        }
        if w.days.is_empty() {
            days = 0x7f;
        }
        let minutes = |k: &str, v: &str| {
            minutes_of(v).ok_or_else(|| format!("policy.windows[{i}].{k}: {v:?} is not HH:MM"))
        };
        let block = w
            .block
            .iter()
            .map(|b| {
                if b == "international" {
                    Block::International
                } else if let Some(l) = NamedList::by_name(b) {
                    Block::List(l)
                } else if b.starts_with('+') {
                    Block::Prefix(b.clone())
                } else {
                    Block::Country(b.clone())
                }
            })
            .collect();
        Ok(Self {
            rule: format!("{TIME_WINDOW}:{}", w.name),
            name: w.name.clone(),
            zone_name: w.zone.clone(),
            tz,
            days,
            from: minutes("from", &w.from)?,
            to: minutes("to", &w.to)?,
            block,
            monitor: w.mode_in(cfg) == PolicyMode::Monitor,
        })
    }

    /// Whether `wall` falls inside the window, in its time zone.
    fn active(&self, wall: SystemTime) -> bool {
        let Ok(ts) = Timestamp::try_from(wall) else {
            return false;
        };
        let z = ts.to_zoned(self.tz.clone());
        let day = u32::try_from(z.weekday().to_monday_zero_offset()).unwrap_or(0);
        let m = u16::try_from(i32::from(z.hour()) * 60 + i32::from(z.minute())).unwrap_or(0);
        let on = |d: u32| self.days & (1u8 << (d % 7)) != 0;
        if self.from < self.to {
            on(day) && m >= self.from && m < self.to
        } else {
            (on(day) && m >= self.from) || (on(day + 6) && m < self.to)
        }
    }
}

fn hhmm(m: u16) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}

/// The time-window policy.
#[derive(Debug)]
pub struct TimeWindowPolicy {
    ctx: DialContext,
    /// The dialling context's country: calls elsewhere are international.
    country: String,
    windows: Vec<Window>,
    decisions: Vec<Decision>,
    numbers: Arc<NumberCache>,
    lists: Arc<Lists>,
}

impl TimeWindowPolicy {
    /// The windows of `[policy]`; an error names the key of an unknown time zone.
    pub fn new(cfg: &PolicyConfig) -> Result<Self, String> {
        let ctx = DialContext::new(&cfg.country)
            .map_err(|_| format!("policy.country: unknown country {:?}", cfg.country))?;
        let windows = cfg
            .windows
            .iter()
            .enumerate()
            .map(|(i, w)| Window::new(w, cfg, i))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            country: ctx.country(),
            ctx,
            windows,
            decisions: Vec::new(),
            numbers: NumberCache::new(NUMBER_CACHE),
            lists: Arc::new(Lists::shipped()),
        })
    }

    /// The policy reading the named lists from `lists` (the operator's files).
    pub fn with_lists(mut self, lists: Arc<Lists>) -> Self {
        self.lists = lists;
        self
    }

    /// The policy reading numbers through `numbers` (shared with the other policies).
    pub fn with_numbers(mut self, numbers: Arc<NumberCache>) -> Self {
        self.numbers = numbers;
        self
    }

    /// Whether a window blocks `n`, and in what words.
    fn blocks(&self, b: &Block, n: &Number) -> Option<String> {
        let country = n.country.as_deref().or(n.code_country.as_deref());
        match b {
            Block::International => (country != Some(self.country.as_str()))
                .then(|| format!("{} is international", n.e164)),
            Block::Country(c) => {
                (country == Some(c.as_str())).then(|| format!("{} is in {c}", n.e164))
            }
            Block::List(l) => self.lists.contains(*l, n).then(|| {
                format!(
                    "{} is on the {} list",
                    n.e164,
                    crate::destination::list_name(*l)
                )
            }),
            Block::Prefix(p) => n
                .e164
                .starts_with(p.as_str())
                .then(|| format!("{} starts with {p}", n.e164)),
        }
    }

    /// The windows that refuse a call to `dialled` at `wall`: (rule, monitor, words).
    fn judge(&self, dialled: &str, wall: SystemTime) -> Vec<(&Window, String)> {
        let mut hits = Vec::new();
        let mut number = None;
        for w in &self.windows {
            if !w.active(wall) {
                continue;
            }
            if number.is_none() {
                match self.numbers.normalise(dialled, self.ctx) {
                    Ok(n) => number = Some(n),
                    // Not a number: nothing a window can place.
                    Err(_) => return hits,
                }
            }
            let Some(n) = &number else { continue };
            if let Some(why) = w.block.iter().find_map(|b| self.blocks(b, n)) {
                hits.push((
                    w,
                    format!(
                        "{why}, refused {} to {} {} ({})",
                        hhmm(w.from),
                        hhmm(w.to),
                        w.zone_name,
                        w.name
                    ),
                ));
            }
        }
        hits
    }
}

impl CallPolicy for TimeWindowPolicy {
    fn name(&self) -> &'static str {
        TIME_WINDOW
    }

    fn admit(&mut self, call: &CallRequest<'_>) -> Verdict {
        if self.windows.is_empty() || !matches!(call.destination, Destination::Trunk(_)) {
            return Verdict::Continue;
        }
        let mut verdict = Verdict::Continue;
        let mut decisions = Vec::new();
        for (w, why) in self.judge(call.callee, call.wall) {
            let enforce = !w.monitor && verdict.is_continue();
            decisions.push(Decision {
                call: call.call,
                rule: w.rule.clone(),
                outcome: if w.monitor {
                    Outcome::WouldRefuse
                } else {
                    Outcome::Refused
                },
                detail: format!("{TIME_WINDOW}: {why}"),
                disable: None,
            });
            if enforce {
                let text = why.replace(['"', '\\'], "");
                verdict = Verdict::Reply {
                    status: StatusCode::FORBIDDEN,
                    reason: Reason::Policy(TIME_WINDOW),
                    phrase: Some("Not Allowed At This Time"),
                    headers: vec![(
                        HeaderName::Reason,
                        format!("SIP;cause=403;text=\"{TIME_WINDOW}: {text}\""),
                    )],
                };
            }
        }
        // The first enforced window refuses; later enforced ones are not reported twice.
        let mut refused = false;
        decisions.retain(|d| {
            let keep = d.outcome != Outcome::Refused || !refused;
            refused |= d.outcome == Outcome::Refused;
            keep
        });
        self.decisions.append(&mut decisions);
        verdict
    }

    fn take_decisions(&mut self, out: &mut Vec<Decision>) {
        out.append(&mut self.decisions);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn window(zone: &str, days: &[&str], from: &str, to: &str, block: &[&str]) -> WindowConfig {
        WindowConfig {
            name: "after-hours".into(),
            zone: zone.into(),
            days: days.iter().map(|d| (*d).to_owned()).collect(),
            from: from.into(),
            to: to.into(),
            block: block.iter().map(|b| (*b).to_owned()).collect(),
            mode: None,
        }
    }

    fn policy(windows: Vec<WindowConfig>) -> TimeWindowPolicy {
        TimeWindowPolicy::new(&PolicyConfig {
            windows,
            ..PolicyConfig::default()
        })
        .unwrap()
    }

    /// A UTC time, `day` days after Monday 2026-11-30 00:00.
    fn at(day: u64, h: u64, m: u64) -> SystemTime {
        let monday = SystemTime::UNIX_EPOCH + Duration::from_secs(20_787 * 86_400);
        monday + Duration::from_secs(day * 86_400 + h * 3600 + m * 60)
    }

    fn rules(p: &TimeWindowPolicy, n: &str, t: SystemTime) -> Vec<String> {
        p.judge(n, t).iter().map(|(w, _)| w.rule.clone()).collect()
    }

    #[test]
    fn the_test_clock_starts_on_a_monday() {
        let z = Timestamp::try_from(at(0, 0, 0))
            .unwrap()
            .to_zoned(TimeZone::UTC);
        assert_eq!(z.weekday(), jiff::civil::Weekday::Monday, "{z}");
        assert_eq!((z.hour(), z.minute()), (0, 0));
    }

    #[test]
    fn a_night_window_runs_past_midnight_into_the_next_day() {
        let p = policy(vec![window(
            "UTC",
            &["mon", "tue", "wed", "thu", "fri"],
            "19:00",
            "07:00",
            &["international"],
        )]);
        let uk = "+442079460000";
        assert!(
            rules(&p, uk, at(0, 18, 59)).is_empty(),
            "Monday before 19:00"
        );
        assert_eq!(rules(&p, uk, at(0, 19, 0)), ["time_window:after-hours"]);
        assert_eq!(
            rules(&p, uk, at(1, 6, 59)),
            ["time_window:after-hours"],
            "Tuesday 06:59"
        );
        assert!(rules(&p, uk, at(1, 7, 0)).is_empty(), "Tuesday 07:00");
        // Friday night runs into Saturday; Saturday night is not a window of its own.
        assert_eq!(rules(&p, uk, at(5, 3, 0)).len(), 1, "Saturday 03:00");
        assert!(rules(&p, uk, at(5, 20, 0)).is_empty(), "Saturday 20:00");
        assert!(
            rules(&p, uk, at(0, 3, 0)).is_empty(),
            "Monday 03:00: Sunday has none"
        );
        // Domestic calls pass at any hour.
        assert!(rules(&p, "+12125550100", at(0, 23, 0)).is_empty());
        // Satellite networks have no country: international.
        assert_eq!(rules(&p, "+881631234567", at(0, 23, 0)).len(), 1);
    }

    #[test]
    fn weekends_whole_days_and_time_zones() {
        let p = policy(vec![window(
            "America/New_York",
            &["sat", "sun"],
            "00:00",
            "24:00",
            &["international", "premium"],
        )]);
        // Saturday 03:00 UTC is still Friday 22:00 in New York (EST, UTC-5).
        assert!(rules(&p, "+442079460000", at(5, 3, 0)).is_empty());
        assert_eq!(rules(&p, "+442079460000", at(5, 5, 0)).len(), 1);
        assert_eq!(rules(&p, "+19005551234", at(6, 12, 0)).len(), 1, "premium");
        // Monday 04:59 UTC is Sunday 23:59 in New York.
        assert_eq!(rules(&p, "+442079460000", at(7, 4, 59)).len(), 1);
        assert!(rules(&p, "+442079460000", at(7, 5, 0)).is_empty());
    }

    #[test]
    fn countries_and_prefixes_and_the_first_enforced_window_refuses() {
        let mut a = window("UTC", &[], "00:00", "24:00", &["+44"]);
        a.name = "uk-prefix".into();
        let mut b = window("UTC", &[], "00:00", "24:00", &["GB"]);
        b.name = "uk-country".into();
        b.mode = Some(PolicyMode::Monitor);
        let mut c = window("UTC", &[], "00:00", "24:00", &["GB"]);
        c.name = "uk-again".into();
        let mut p = policy(vec![a, b, c]);
        let invite = sipwarden_sip::Message::parse(
            b"INVITE sip:+442079460000@gw SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.10:5060;branch=z9hG4bK1\r\nFrom: <sip:1001@gw>;tag=1\r\nTo: <sip:+442079460000@gw>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        let request = CallRequest {
            call: 9,
            invite: &invite,
            origin: sipwarden_stages::Origin::Pbx,
            trunk: None,
            account: None,
            callee_account: None,
            destination: Destination::Trunk("carrier"),
            source: "10.0.0.10:5060".parse().unwrap(),
            transport: sipwarden_sip::header::Transport::Udp,
            caller: "1001",
            callee: "+442079460000",
            offer: None,
            now: std::time::Instant::now(),
            wall: at(2, 12, 0),
        };
        let v = p.admit(&request);
        let Verdict::Reply { headers, .. } = &v else {
            panic!("{v:?}")
        };
        assert!(
            headers[0]
                .1
                .contains("time_window: +442079460000 starts with +44"),
            "{headers:?}"
        );
        let mut d = Vec::new();
        p.take_decisions(&mut d);
        let got: Vec<_> = d.iter().map(|d| (d.rule.as_str(), d.outcome)).collect();
        assert_eq!(
            got,
            [
                ("time_window:uk-prefix", Outcome::Refused),
                ("time_window:uk-country", Outcome::WouldRefuse),
            ]
        );
        // To the PBX: never judged.
        let inbound = CallRequest {
            destination: Destination::Pbx,
            ..request
        };
        assert!(p.admit(&inbound).is_continue());
    }

    #[test]
    fn an_unknown_time_zone_is_an_error_naming_the_key() {
        let e = TimeWindowPolicy::new(&PolicyConfig {
            windows: vec![window("Mars/Olympus", &[], "00:00", "24:00", &["GB"])],
            ..PolicyConfig::default()
        })
        .unwrap_err();
        assert!(e.starts_with("policy.windows[0].zone"), "{e}");
    }
}
