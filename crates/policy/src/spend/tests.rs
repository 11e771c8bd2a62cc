use proptest::prelude::*;
use sipwarden_config::{AccountConfig, MaxDurationConfig, MediaEncryption, SpendCapConfig};
use sipwarden_sip::Message;
use sipwarden_sip::header::Transport;

use super::*;

const INVITE: &str = "INVITE sip:+442079460000@gw SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.10:5060;branch=z9hG4bK1\r\nFrom: <sip:1001@gw>;tag=1\r\nTo: <sip:+442079460000@gw>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";

/// +44: 6.00 a minute (0.10 a second) by the second, 0.10 to connect: a call just answered
/// costs 0.20 and 0.10 more each second. +1 by the minute; +1800 free; +33 not priced.
const RATES: &str = "prefix,price_per_minute,increment,connection_fee
# test rates
+44,6.00,1,0.10
+1,0.60,60,0
+1800,0,60,0
";

const SEC: Duration = Duration::from_secs(1);
const DAY: Duration = Duration::from_secs(86_400);

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn cap(
    scope: SpendScope,
    subject: Option<&str>,
    period: SpendPeriod,
    amount: &str,
) -> SpendCapConfig {
    SpendCapConfig {
        name: None,
        scope,
        subject: subject.map(str::to_owned),
        period,
        warning: None,
        cap: dec(amount),
        hangup: true,
        mode: None,
    }
}

/// A day cap of `amount` on the trunk "carrier".
fn carrier_day(amount: &str) -> SpendCapConfig {
    cap(SpendScope::Trunk, Some("carrier"), SpendPeriod::Day, amount)
}

fn config(caps: Vec<SpendCapConfig>) -> PolicyConfig {
    PolicyConfig {
        spend: Some(SpendConfig {
            rates: Some("rates.csv".into()),
            caps,
            ..SpendConfig::default()
        }),
        ..PolicyConfig::default()
    }
}

fn table() -> RateTable {
    RateTable::parse(RATES).unwrap()
}

fn policy(caps: Vec<SpendCapConfig>) -> SpendPolicy {
    SpendPolicy::new_eager(&config(caps), Some(table())).unwrap()
}

/// Simulated time: a monotonic origin and the wall-clock time it stands for.
#[derive(Clone, Copy, Debug)]
struct Clock {
    t0: Instant,
    w0: SystemTime,
}

impl Clock {
    /// Starting at `wall` (RFC 3339).
    fn at(wall: &str) -> Self {
        let ts: Timestamp = wall.parse().unwrap();
        Self {
            t0: Instant::now(),
            w0: SystemTime::from(ts),
        }
    }

    fn noon() -> Self {
        Self::at("2026-12-06T12:00:00Z")
    }

    fn t(&self, d: Duration) -> Instant {
        self.t0 + d
    }

    fn wall(&self, now: Instant) -> SystemTime {
        self.w0 + now.duration_since(self.t0)
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A new call as the tests describe it.
#[derive(Clone, Copy, Debug)]
struct Call {
    id: u64,
    /// Out through this trunk (else to the PBX).
    out: Option<&'static str>,
    account: Option<&'static str>,
    callee: &'static str,
}

/// A call from the PBX out through "carrier" to London.
fn out(id: u64) -> Call {
    Call {
        id,
        out: Some("carrier"),
        account: None,
        callee: "+442079460000",
    }
}

fn account(user: &str) -> AccountConfig {
    AccountConfig {
        user: user.to_owned(),
        ha1_md5: None,
        ha1_sha256: None,
        ha1_sha512_256: None,
        networks: Vec::new(),
        max_contacts: 5,
        transports: Vec::new(),
        media_encryption: MediaEncryption::Optional,
    }
}

fn admit(p: &mut SpendPolicy, clock: Clock, c: Call, now: Instant) -> Verdict {
    let invite = Message::parse(INVITE.as_bytes()).unwrap();
    let acct = c.account.map(account);
    let request = CallRequest {
        call: c.id,
        invite: &invite,
        origin: if c.account.is_some() {
            sipwarden_stages::Origin::Endpoint
        } else {
            sipwarden_stages::Origin::Pbx
        },
        trunk: None,
        account: acct.as_ref(),
        callee_account: None,
        destination: match c.out {
            Some(t) => Destination::Trunk(t),
            None => Destination::Pbx,
        },
        source: "10.0.0.10:5060".parse().unwrap(),
        transport: Transport::Udp,
        caller: "1001",
        callee: c.callee,
        offer: None,
        now,
        wall: clock.wall(now),
    };
    p.admit(&request)
}

fn decisions(p: &mut SpendPolicy) -> Vec<Decision> {
    let mut out = Vec::new();
    p.take_decisions(&mut out);
    out
}

fn outcomes(p: &mut SpendPolicy) -> Vec<(u64, Outcome)> {
    decisions(p).iter().map(|d| (d.call, d.outcome)).collect()
}

fn rows(p: &mut SpendPolicy) -> Vec<(String, String)> {
    let mut out = Vec::new();
    p.take_state_rows(&mut out);
    out
}

fn refused(v: &Verdict) -> bool {
    matches!(
        v,
        Verdict::Reply {
            reason: Reason::Policy(SPEND_CAP),
            ..
        }
    )
}

fn ended(calls: &[u64]) -> Vec<(u64, Reason)> {
    calls
        .iter()
        .map(|&c| (c, Reason::Policy(SPEND_CAP)))
        .collect()
}

/// The committed total of a cap (empty subject) in a period.
fn total(p: &SpendPolicy, cap: &str, period: &str) -> Option<Decimal> {
    p.state
        .totals
        .get(&TotalKey {
            cap: cap.into(),
            subject: String::new(),
            period: period.into(),
        })
        .map(|t| t.amount)
}

#[test]
fn a_cap_refuses_new_calls_once_the_spend_reaches_it() {
    let mut c = carrier_day("1.00");
    c.hangup = false;
    let mut p = policy(vec![c]);
    let clock = Clock::noon();
    let t = |d| clock.t(d);
    assert_eq!(
        admit(&mut p, clock, out(1), t(Duration::ZERO)),
        Verdict::Continue
    );
    p.on_answer(1, t(Duration::ZERO));
    // 0.20 on answer, 0.10 more a second: 0.90 during the 8th second, 1.00 from 8 s.
    assert_eq!(
        admit(&mut p, clock, out(2), t(ms(7_999))),
        Verdict::Continue
    );
    let v = admit(&mut p, clock, out(3), t(SEC * 8));
    let Verdict::Reply {
        status,
        phrase,
        headers,
        ..
    } = &v
    else {
        panic!("{v:?}")
    };
    assert!(refused(&v));
    assert_eq!(*status, StatusCode::FORBIDDEN);
    assert_eq!(*phrase, Some("Spend Limit Reached"));
    assert_eq!(
        headers.as_slice(),
        [(
            HeaderName::Reason,
            "SIP;cause=403;text=\"spend_cap: trunk:carrier:day: spent 1.00 of 1.00 today\""
                .to_owned()
        )]
    );
    let d = decisions(&mut p);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!((d[0].call, d[0].outcome), (3, Outcome::Refused));
    assert_eq!(d[0].rule, "spend:trunk:carrier:day");
    assert_eq!(d[0].detail, "spent 1.00 of 1.00 today");
    // The call ends after 8.5 s: billed 9 s, 1.00 committed; call 2 never answered.
    p.on_end(1, t(ms(8_500)));
    p.on_end(2, t(SEC * 9));
    assert_eq!(
        total(&p, "trunk:carrier:day", "2026-12-06"),
        Some(dec("1.00"))
    );
    assert!(refused(&admit(&mut p, clock, out(4), t(SEC * 10))));
    // Other trunks, calls to the PBX and numbers not priced are not this cap's.
    let other = Call {
        out: Some("other"),
        ..out(5)
    };
    assert_eq!(admit(&mut p, clock, other, t(SEC * 10)), Verdict::Continue);
    let inbound = Call {
        out: None,
        ..out(6)
    };
    assert_eq!(
        admit(&mut p, clock, inbound, t(SEC * 10)),
        Verdict::Continue
    );
    for (id, callee) in [(7, "+33123456789"), (8, "18005550100"), (9, "alice")] {
        let c = Call { callee, ..out(id) };
        assert_eq!(
            admit(&mut p, clock, c, t(SEC * 10)),
            Verdict::Continue,
            "{callee}"
        );
    }
    let s = p.stats();
    assert_eq!((s.refused, s.calls), (2, 0), "{s:?}");
}

#[test]
fn running_calls_end_the_moment_projected_spend_crosses_the_cap() {
    let mut p = policy(vec![carrier_day("1.00")]);
    let clock = Clock::noon();
    let t = |d| clock.t(d);
    assert_eq!(p.next_deadline(), None);
    assert_eq!(
        admit(&mut p, clock, out(1), t(Duration::ZERO)),
        Verdict::Continue
    );
    assert_eq!(
        admit(&mut p, clock, out(2), t(Duration::ZERO)),
        Verdict::Continue
    );
    // Ringing costs nothing: no deadline.
    assert_eq!(p.take_hangups(t(Duration::ZERO)), []);
    assert_eq!(p.next_deadline(), None);
    p.on_answer(1, t(Duration::ZERO));
    assert_eq!(p.next_deadline(), Some(t(SEC)));
    p.on_answer(2, t(ms(500)));
    // Each call owes 0.20 when answered and 0.10 a second from then: together 0.40 at 0.5 s,
    // then 0.10 more every half second, 1.00 at 3.5 s sharp. The deadline is each step.
    let mut now = t(ms(500));
    let mut steps = Vec::new();
    let hangups = loop {
        let h = p.take_hangups(now);
        if !h.is_empty() {
            break h;
        }
        let next = p.next_deadline().unwrap();
        assert!(next > now);
        // Nothing happens before the deadline.
        assert_eq!(p.take_hangups(next - Duration::from_nanos(1)), []);
        steps.push(next.duration_since(clock.t0));
        now = next;
    };
    assert_eq!(
        steps,
        [1000, 1500, 2000, 2500, 3000, 3500].map(ms),
        "every step of the calls' cost, none between"
    );
    assert_eq!(now, t(ms(3_500)));
    assert_eq!(hangups, ended(&[1, 2]));
    let d = decisions(&mut p);
    assert_eq!(d.len(), 2, "{d:?}");
    assert!(d.iter().all(|d| d.outcome == Outcome::Ended
        && d.rule == "spend:trunk:carrier:day"
        && d.detail == "spent 1.00 of 1.00 today"));
    // Asked once: the core ends them; until it does they still count, and ask nothing more.
    assert_eq!(p.take_hangups(t(SEC * 5)), []);
    assert_eq!(p.next_deadline(), None);
    assert!(refused(&admit(&mut p, clock, out(3), t(SEC * 5))));
    p.on_end(1, t(ms(3_600)));
    p.on_end(2, t(ms(3_600)));
    // Billed 4 s each: 0.50 + 0.50.
    assert_eq!(
        total(&p, "trunk:carrier:day", "2026-12-06"),
        Some(dec("1.00"))
    );
    assert_eq!(p.stats().ended, 2);
    // A call admitted while under the cap and answered after it was reached is ended at once.
    let mut p = policy(vec![carrier_day("1.00")]);
    assert_eq!(
        admit(&mut p, clock, out(1), t(Duration::ZERO)),
        Verdict::Continue
    );
    assert_eq!(
        admit(&mut p, clock, out(2), t(Duration::ZERO)),
        Verdict::Continue
    );
    p.on_answer(1, t(Duration::ZERO));
    p.on_end(1, t(SEC * 8));
    assert_eq!(
        p.take_hangups(t(SEC * 8)),
        [],
        "0.90; ringing calls cost nothing yet"
    );
    assert_eq!(
        admit(&mut p, clock, out(3), t(SEC * 9)),
        Verdict::Continue,
        "0.90"
    );
    p.on_answer(3, t(SEC * 10));
    assert_eq!(
        p.take_hangups(t(SEC * 10)),
        ended(&[2, 3]),
        "1.10: every call of the cap"
    );
}

#[test]
fn calls_with_a_cap_but_no_hangup_run_on() {
    let mut c = carrier_day("1.00");
    c.hangup = false;
    let mut p = policy(vec![c]);
    let clock = Clock::noon();
    assert_eq!(admit(&mut p, clock, out(1), clock.t0), Verdict::Continue);
    p.on_answer(1, clock.t0);
    assert_eq!(p.take_hangups(clock.t(SEC * 60)), []);
    assert!(refused(&admit(&mut p, clock, out(2), clock.t(SEC * 60))));
}

#[test]
fn a_warning_is_reported_once_per_period() {
    let mut c = carrier_day("1.00");
    c.warning = Some(dec("0.50"));
    let mut p = policy(vec![c]);
    let clock = Clock::noon();
    let t = |d| clock.t(d);
    assert_eq!(
        admit(&mut p, clock, out(1), t(Duration::ZERO)),
        Verdict::Continue
    );
    p.on_answer(1, t(Duration::ZERO));
    // 0.50 at 3 s.
    let mut now = t(Duration::ZERO);
    while now < t(SEC * 3) {
        assert_eq!(p.take_hangups(now), []);
        assert_eq!(decisions(&mut p), []);
        now = p.next_deadline().unwrap();
    }
    assert_eq!(p.take_hangups(now), []);
    let d = decisions(&mut p);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!((d[0].call, d[0].outcome), (1, Outcome::Warning));
    assert_eq!(d[0].rule, "spend:trunk:carrier:day");
    assert_eq!(
        d[0].detail,
        "spent 0.50 of 1.00 today, at the warning level 0.50"
    );
    // Not again that day, however the spend moves.
    p.on_end(1, t(ms(3_500)));
    assert_eq!(admit(&mut p, clock, out(2), t(SEC * 4)), Verdict::Continue);
    p.on_answer(2, t(SEC * 4));
    p.take_hangups(t(SEC * 5));
    assert_eq!(outcomes(&mut p), []);
    p.on_end(2, t(SEC * 5));
    // The next day starts from nothing, and warns again.
    let tomorrow = t(DAY);
    assert_eq!(admit(&mut p, clock, out(3), tomorrow), Verdict::Continue);
    p.on_answer(3, tomorrow);
    p.take_hangups(tomorrow + SEC * 2);
    assert_eq!(outcomes(&mut p), []);
    p.take_hangups(tomorrow + SEC * 3);
    assert_eq!(outcomes(&mut p), [(3, Outcome::Warning)]);
    assert_eq!(p.stats().warnings, 2);
}

#[test]
fn days_and_months_begin_in_the_zone_and_old_periods_are_dropped() {
    let cfg = PolicyConfig {
        spend: Some(SpendConfig {
            rates: Some("rates.csv".into()),
            zone: "America/New_York".into(),
            caps: vec![
                carrier_day("100"),
                cap(SpendScope::All, None, SpendPeriod::Month, "1000"),
            ],
            ..SpendConfig::default()
        }),
        ..PolicyConfig::default()
    };
    let mut p = SpendPolicy::new_eager(&cfg, Some(table())).unwrap();
    // 23:59:00 on 30 November in New York (04:59 UTC on 1 December).
    let clock = Clock::at("2026-12-01T04:59:00Z");
    let t = |d| clock.t(d);
    // A call of 10 s at 23:59, and one from 23:59:50 to 00:00:20 across midnight.
    assert_eq!(
        admit(&mut p, clock, out(1), t(Duration::ZERO)),
        Verdict::Continue
    );
    p.on_answer(1, t(Duration::ZERO));
    p.on_end(1, t(SEC * 10));
    assert_eq!(
        total(&p, "trunk:carrier:day", "2026-11-30"),
        Some(dec("1.10"))
    );
    assert_eq!(total(&p, "all:month", "2026-11"), Some(dec("1.10")));
    assert_eq!(admit(&mut p, clock, out(2), t(SEC * 50)), Verdict::Continue);
    p.on_answer(2, t(SEC * 50));
    // Before midnight it counts in the old day's projection; it ends in the new one, where
    // its whole cost is committed.
    p.on_end(2, t(SEC * 80));
    let r: BTreeMap<String, String> = rows(&mut p).into_iter().collect();
    assert_eq!(
        r,
        BTreeMap::from(
            [
                ("spend:all:month:2026-11", ""),
                ("spend:all:month:2026-12", "3.1"),
                ("spend:trunk:carrier:day:2026-11-30", ""),
                ("spend:trunk:carrier:day:2026-12-01", "3.1"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        ),
        "the old day's and month's rows are deleted as the new ones begin"
    );
    assert_eq!(total(&p, "trunk:carrier:day", "2026-11-30"), None);
    assert_eq!(
        total(&p, "trunk:carrier:day", "2026-12-01"),
        Some(dec("3.10"))
    );
    assert_eq!(p.stats().totals, 2, "only the current periods are held");
    // The day ends in New York at 05:00 UTC; the month goes on.
    let next_day = t(DAY + SEC * 120);
    assert_eq!(admit(&mut p, clock, out(3), next_day), Verdict::Continue);
    p.on_answer(3, next_day);
    p.on_end(3, next_day + SEC);
    assert_eq!(
        total(&p, "trunk:carrier:day", "2026-12-02"),
        Some(dec("0.20"))
    );
    assert_eq!(total(&p, "all:month", "2026-12"), Some(dec("3.30")));
    let zones = |zone: &str| {
        let mut cfg = config(Vec::new());
        if let Some(s) = &mut cfg.spend {
            s.zone = zone.into();
        }
        SpendPolicy::new_eager(&cfg, Some(table())).map(|_| ())
    };
    assert_eq!(
        zones("Mars/Olympus"),
        Err("policy.spend.zone: unknown time zone \"Mars/Olympus\"".into())
    );
    assert_eq!(zones("Europe/London"), Ok(()));
}

#[test]
fn monitor_mode_ends_and_refuses_nothing_and_reports_once_per_call() {
    let mut c = carrier_day("1.00");
    c.mode = Some(PolicyMode::Monitor);
    let mut p = policy(vec![c]);
    let clock = Clock::noon();
    let t = |d| clock.t(d);
    assert_eq!(
        admit(&mut p, clock, out(1), t(Duration::ZERO)),
        Verdict::Continue
    );
    p.on_answer(1, t(Duration::ZERO));
    assert_eq!(p.take_hangups(t(SEC * 8)), []);
    assert_eq!(outcomes(&mut p), [(1, Outcome::WouldEnd)]);
    assert_eq!(admit(&mut p, clock, out(2), t(SEC * 9)), Verdict::Continue);
    let d = decisions(&mut p);
    assert_eq!((d[0].call, d[0].outcome), (2, Outcome::WouldRefuse));
    assert!(d[0].detail.ends_with("(monitor mode)"), "{}", d[0].detail);
    p.on_answer(2, t(SEC * 9));
    for s in 10..20 {
        assert_eq!(p.take_hangups(t(SEC * s)), []);
    }
    assert_eq!(outcomes(&mut p), [(2, Outcome::WouldEnd)], "once per call");
    let s = p.stats();
    assert_eq!(
        (s.refused, s.would_refuse, s.ended, s.would_end),
        (0, 1, 0, 2)
    );
    // [policy] mode is the default; a cap's own mode wins.
    let mut cfg = config(vec![carrier_day("1.00")]);
    cfg.mode = PolicyMode::Monitor;
    let mut p = SpendPolicy::new_eager(&cfg, Some(table())).unwrap();
    assert_eq!(
        admit(&mut p, clock, out(1), t(Duration::ZERO)),
        Verdict::Continue
    );
    p.on_answer(1, t(Duration::ZERO));
    assert_eq!(p.take_hangups(t(SEC * 8)), []);
    let mut c = carrier_day("1.00");
    c.mode = Some(PolicyMode::Enforce);
    cfg.spend.as_mut().unwrap().caps = vec![c];
    let mut p = SpendPolicy::new_eager(&cfg, Some(table())).unwrap();
    assert_eq!(
        admit(&mut p, clock, out(1), t(Duration::ZERO)),
        Verdict::Continue
    );
    p.on_answer(1, t(Duration::ZERO));
    assert_eq!(p.take_hangups(t(SEC * 8)), ended(&[1]));
}

#[test]
fn the_days_spend_survives_a_restart_and_past_days_rows_are_deleted() {
    let mut a = policy(vec![carrier_day("1.00")]);
    let clock = Clock::noon();
    let t = |d| clock.t(d);
    assert_eq!(
        admit(&mut a, clock, out(1), t(Duration::ZERO)),
        Verdict::Continue
    );
    p_answer_end(&mut a, 1, t(Duration::ZERO), t(ms(4_500)));
    let mut stored = rows(&mut a);
    assert_eq!(
        stored,
        [(
            "spend:trunk:carrier:day:2026-12-06".to_owned(),
            "0.6".to_owned()
        )]
    );
    assert_eq!(rows(&mut a), [], "rows are given once, when they change");
    // What the store gives back at start: today's row, yesterday's, one of a cap since
    // removed, and one that is not a total.
    stored.extend(
        [
            ("spend:trunk:carrier:day:2026-12-05", "7.5"),
            ("spend:gone:2026-12-06", "3"),
            ("spend:trunk:carrier:day:2026-12-06:x", "1"),
            ("spend:trunk:carrier:day:20261206", "1"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let mut b = policy(vec![carrier_day("1.00")]);
    b.restore_state_rows(&stored);
    // The day goes on from 0.60: a call owing 0.40 (its third second begun) reaches the cap.
    assert_eq!(admit(&mut b, clock, out(2), t(SEC * 60)), Verdict::Continue);
    b.on_answer(2, t(SEC * 60));
    assert_eq!(b.take_hangups(t(SEC * 61)), []);
    assert_eq!(b.take_hangups(t(SEC * 62)), ended(&[2]));
    let r: BTreeMap<String, String> = rows(&mut b).into_iter().collect();
    let deleted: Vec<&str> = r
        .iter()
        .filter(|(_, v)| v.is_empty())
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(
        deleted,
        [
            "spend:gone:2026-12-06",
            "spend:trunk:carrier:day:2026-12-05",
            "spend:trunk:carrier:day:2026-12-06:x",
            "spend:trunk:carrier:day:20261206",
        ]
    );
    assert_eq!(r.len(), 4, "today's row unchanged: not written again");
    b.on_end(2, t(ms(62_500)));
    assert_eq!(
        rows(&mut b),
        [(
            "spend:trunk:carrier:day:2026-12-06".to_owned(),
            "1".to_owned()
        )]
    );
    // A restart the next day starts from nothing.
    let mut c = policy(vec![carrier_day("1.00")]);
    c.restore_state_rows(&[(
        "spend:trunk:carrier:day:2026-12-06".to_owned(),
        "1".to_owned(),
    )]);
    assert_eq!(admit(&mut c, clock, out(3), t(DAY)), Verdict::Continue);
    assert_eq!(
        rows(&mut c),
        [(
            "spend:trunk:carrier:day:2026-12-06".to_owned(),
            String::new()
        )]
    );
}

fn p_answer_end(p: &mut SpendPolicy, id: u64, answer: Instant, end: Instant) {
    p.on_answer(id, answer);
    p.on_end(id, end);
}

#[test]
fn per_subject_caps_count_each_trunk_and_account_apart() {
    let mut p = policy(vec![
        cap(SpendScope::Trunk, None, SpendPeriod::Day, "1.00"),
        cap(SpendScope::Account, None, SpendPeriod::Month, "0.50"),
    ]);
    let clock = Clock::noon();
    let t0 = clock.t0;
    let via = |id, trunk| Call {
        out: Some(trunk),
        ..out(id)
    };
    assert_eq!(admit(&mut p, clock, via(1, "a"), t0), Verdict::Continue);
    p_answer_end(&mut p, 1, t0, t0 + ms(8_500));
    assert!(refused(&admit(&mut p, clock, via(2, "a"), t0 + SEC * 9)));
    let d = decisions(&mut p);
    assert_eq!(d[0].rule, "spend:trunk:day");
    assert_eq!(d[0].detail, "trunk a: spent 1.00 of 1.00 today");
    assert_eq!(
        admit(&mut p, clock, via(3, "b"), t0 + SEC * 9),
        Verdict::Continue
    );
    let phone = |id, user| Call {
        out: Some("b"),
        account: Some(user),
        ..out(id)
    };
    assert_eq!(
        admit(&mut p, clock, phone(4, "1001"), t0),
        Verdict::Continue
    );
    p_answer_end(&mut p, 4, t0, t0 + ms(3_500));
    assert!(refused(&admit(
        &mut p,
        clock,
        phone(5, "1001"),
        t0 + SEC * 9
    )));
    assert_eq!(
        decisions(&mut p)[0].detail,
        "account 1001: spent 0.50 of 0.50 this month"
    );
    assert_eq!(
        admit(&mut p, clock, phone(6, "1002"), t0 + SEC * 9),
        Verdict::Continue
    );
    let keys: Vec<String> = rows(&mut p).into_iter().map(|r| r.0).collect();
    assert_eq!(
        keys,
        [
            "spend:account:month:2026-12:1001",
            "spend:trunk:day:2026-12-06:a",
            "spend:trunk:day:2026-12-06:b",
        ]
    );
    // An account's rows come back to it.
    let mut q = policy(vec![
        cap(SpendScope::Trunk, None, SpendPeriod::Day, "1.00"),
        cap(SpendScope::Account, None, SpendPeriod::Month, "0.50"),
    ]);
    q.restore_state_rows(&[(
        "spend:account:month:2026-12:1001".to_owned(),
        "0.5".to_owned(),
    )]);
    assert!(refused(&admit(&mut q, clock, phone(7, "1001"), t0)));
}

#[test]
fn unpriced_numbers_are_allowed_free_or_refused_and_free_ones_pass_any_cap() {
    let mut p = policy(vec![carrier_day("0.10")]);
    let clock = Clock::noon();
    let t0 = clock.t0;
    assert_eq!(admit(&mut p, clock, out(1), t0), Verdict::Continue);
    p.on_answer(1, t0);
    assert_eq!(p.take_hangups(t0), ended(&[1]), "0.20 on answer");
    assert!(refused(&admit(&mut p, clock, out(2), t0)));
    // Free and unpriced numbers cost nothing: neither refused nor ended.
    let free = Call {
        callee: "18005550100",
        ..out(3)
    };
    assert_eq!(admit(&mut p, clock, free, t0), Verdict::Continue);
    let unpriced = Call {
        callee: "+33123456789",
        ..out(4)
    };
    assert_eq!(admit(&mut p, clock, unpriced, t0), Verdict::Continue);
    assert_eq!(p.stats().calls, 1, "only the priced call is followed");
    // unpriced = "refuse".
    let mut cfg = config(Vec::new());
    if let Some(s) = &mut cfg.spend {
        s.unpriced = Unpriced::Refuse;
    }
    let mut p = SpendPolicy::new_eager(&cfg, Some(table())).unwrap();
    let v = admit(&mut p, clock, unpriced, t0);
    let Verdict::Reply {
        reason, headers, ..
    } = &v
    else {
        panic!("{v:?}")
    };
    assert_eq!(*reason, Reason::Policy(SPEND_UNPRICED));
    // As libphonenumber normalises it.
    let e164 = normalise("+33123456789", DialContext::new("US").unwrap())
        .unwrap()
        .e164;
    assert_eq!(
        headers[0].1,
        format!("SIP;cause=403;text=\"spend_unpriced: {e164} is not in the rate table\"")
    );
    assert_eq!(decisions(&mut p)[0].rule, "spend:unpriced");
    let alice = Call {
        callee: "alice\"",
        ..out(5)
    };
    assert!(
        matches!(admit(&mut p, clock, alice, t0), Verdict::Reply { headers, .. }
        if headers[0].1.ends_with("alice is not in the rate table\""))
    );
    assert_eq!(
        admit(&mut p, clock, free, t0),
        Verdict::Continue,
        "priced at 0"
    );
    assert_eq!(admit(&mut p, clock, out(6), t0), Verdict::Continue);
    cfg.mode = PolicyMode::Monitor;
    let mut p = SpendPolicy::new_eager(&cfg, Some(table())).unwrap();
    assert_eq!(admit(&mut p, clock, unpriced, t0), Verdict::Continue);
    assert_eq!(outcomes(&mut p), [(4, Outcome::WouldRefuse)]);
}

#[test]
fn calls_talking_longer_than_their_class_allows_are_ended() {
    let mut cfg = config(Vec::new());
    if let Some(s) = &mut cfg.spend {
        s.rates = None;
        s.max_duration = MaxDurationConfig {
            domestic: Some(SEC * 3600),
            international: Some(SEC * 1800),
            premium: Some(SEC * 120),
            satellite: Some(SEC * 60),
            high_risk: None,
        };
    }
    let mut p = SpendPolicy::new_eager(&cfg, None).unwrap();
    let clock = Clock::noon();
    let t0 = clock.t0;
    let to = |id, callee| Call { callee, ..out(id) };
    for (id, callee) in [
        (1, "+19005551234"),
        (2, "+442079460000"),
        (3, "+12125550100"),
        (4, "+881631234567"),
        (5, "011537123456"),
    ] {
        assert_eq!(admit(&mut p, clock, to(id, callee), t0), Verdict::Continue);
        p.on_answer(id, t0);
    }
    let mut seen = Vec::new();
    let mut now = t0;
    while let Some(next) = p.next_deadline() {
        assert!(p.take_hangups(next - Duration::from_nanos(1)).is_empty());
        for (call, reason) in p.take_hangups(next) {
            assert_eq!(reason, Reason::Policy(SPEND_MAX_DURATION));
            p.on_end(call, next);
            seen.push((call, next.duration_since(t0).as_secs()));
        }
        assert!(next > now);
        now = next;
    }
    // Premium but domestic: the shorter, premium. Cuba: high-risk is not limited here, so
    // international.
    assert_eq!(seen, [(4, 60), (1, 120), (2, 1800), (5, 1800), (3, 3600)]);
    let d = decisions(&mut p);
    assert_eq!(d[0].rule, "spend:max_duration:satellite");
    assert_eq!(d[1].rule, "spend:max_duration:premium");
    assert_eq!(
        d[1].detail,
        "talked 120 s; calls to premium destinations may talk 120 s"
    );
    assert!(d.iter().all(|d| d.outcome == Outcome::Ended));
    // Monitor mode: reported once, not ended.
    cfg.mode = PolicyMode::Monitor;
    let mut p = SpendPolicy::new_eager(&cfg, None).unwrap();
    assert_eq!(
        admit(&mut p, clock, to(1, "+19005551234"), t0),
        Verdict::Continue
    );
    p.on_answer(1, t0);
    assert_eq!(p.take_hangups(t0 + SEC * 120), []);
    assert_eq!(p.take_hangups(t0 + SEC * 500), []);
    assert_eq!(outcomes(&mut p), [(1, Outcome::WouldEnd)]);
    assert_eq!(p.next_deadline(), None);
}

#[test]
fn a_reload_hands_totals_running_calls_and_warnings_over() {
    let mut c = carrier_day("1.00");
    c.warning = Some(dec("0.30"));
    let mut old = policy(vec![c.clone()]);
    let clock = Clock::noon();
    let t = |d| clock.t(d);
    assert_eq!(
        admit(&mut old, clock, out(1), t(Duration::ZERO)),
        Verdict::Continue
    );
    p_answer_end(&mut old, 1, t(Duration::ZERO), t(SEC));
    assert_eq!(
        admit(&mut old, clock, out(2), t(SEC * 2)),
        Verdict::Continue
    );
    old.on_answer(2, t(SEC * 2));
    assert_eq!(old.take_hangups(t(SEC * 2)), []);
    assert_eq!(outcomes(&mut old), [(2, Outcome::Warning)]);
    // The reload adds a cap before it.
    let mut new = policy(vec![
        cap(SpendScope::All, None, SpendPeriod::Month, "50"),
        c,
    ]);
    new.take_over(old.hand_over().unwrap());
    assert_eq!(new.stats().calls, 1, "the running call came along");
    assert_eq!(new.next_deadline(), Some(t(SEC * 3)));
    // 0.20 committed, call 2 owes 0.20 and 0.10 a second: 1.00 at 8 s.
    assert_eq!(new.take_hangups(t(SEC * 7)), []);
    assert_eq!(outcomes(&mut new), [], "warned before the reload");
    assert_eq!(new.take_hangups(t(SEC * 8)), ended(&[2]));
    new.on_end(2, t(ms(8_500)));
    new.on_end(2, t(SEC * 9));
    assert_eq!(
        total(&new, "trunk:carrier:day", "2026-12-06"),
        Some(dec("1.00"))
    );
    assert_eq!(
        total(&new, "all:month", "2026-12"),
        Some(dec("0.80")),
        "the new cap counts it"
    );
    // A state of another kind is ignored.
    new.take_over(Box::new(5u32));
    assert!(refused(&admit(&mut new, clock, out(3), t(SEC * 9))));
    // A cap the reload removes: its totals and rows go.
    let mut newer = policy(vec![cap(SpendScope::All, None, SpendPeriod::Month, "50")]);
    rows(&mut new);
    newer.take_over(new.hand_over().unwrap());
    assert_eq!(
        rows(&mut newer),
        [(
            "spend:trunk:carrier:day:2026-12-06".to_owned(),
            String::new()
        )]
    );
    assert_eq!(newer.stats().totals, 1);
}

#[test]
fn running_calls_and_decisions_are_bounded() {
    let mut cfg = config(vec![carrier_day("1000")]);
    cfg.limit_entries = 3;
    let mut p = SpendPolicy::new_eager(&cfg, Some(table())).unwrap();
    let clock = Clock::noon();
    for id in 0..10 {
        assert_eq!(admit(&mut p, clock, out(id), clock.t0), Verdict::Continue);
    }
    let s = p.stats();
    assert_eq!((s.calls, s.calls_evicted), (3, 7));
    let mut c = carrier_day("0.10");
    c.mode = Some(PolicyMode::Monitor);
    let mut p = policy(vec![c]);
    assert_eq!(admit(&mut p, clock, out(0), clock.t0), Verdict::Continue);
    p.on_answer(0, clock.t0);
    for id in 1..1100 {
        assert_eq!(admit(&mut p, clock, out(id), clock.t0), Verdict::Continue);
    }
    assert_eq!(p.decisions.len(), MAX_PENDING_DECISIONS);
    assert!(p.stats().decisions_dropped > 0);
    let mut g = Vec::new();
    p.gauges(&mut g);
    assert!(
        g.iter()
            .any(|g| g.name == "sipwarden_spend_calls" && g.value > 0)
    );
}

#[test]
fn from_config_files_reads_the_rate_table_and_puts_spend_before_velocity() {
    let mut cfg = sipwarden_config::Config {
        policy: Some(config(vec![carrier_day("1.00")])),
        ..Default::default()
    };
    let names = |cfg: &sipwarden_config::Config, files: &crate::PolicyFiles| {
        crate::from_config_files(cfg, files).map(|l| l.iter().map(|p| p.name()).collect::<Vec<_>>())
    };
    assert_eq!(
        crate::from_config(&cfg).map(|_| ()),
        Err("policy.spend.rates: the rate table was not read".to_owned())
    );
    let files = crate::PolicyFiles {
        rates: Some(RATES.to_owned()),
        ..crate::PolicyFiles::default()
    };
    if let Some(p) = &mut cfg.policy {
        p.limits.push(sipwarden_config::LimitConfig {
            name: None,
            scope: sipwarden_config::LimitScope::All,
            subject: None,
            kind: sipwarden_config::LimitKind::Concurrent,
            warning: None,
            critical: 5,
            status: 403,
            action: sipwarden_config::LimitAction::Refuse,
            mode: None,
        });
    }
    let list = names(&cfg, &files).unwrap();
    assert_eq!(
        &list[list.len() - 3..],
        ["destination", "spend", "velocity"]
    );
    let bad = crate::PolicyFiles {
        rates: Some("+44,0.1,60,0\n+1,x,60,0\n".to_owned()),
        ..crate::PolicyFiles::default()
    };
    assert_eq!(
        names(&cfg, &bad),
        Err(
            "policy.spend.rates: rates.csv: line 2: price_per_minute \"x\" is not a decimal".into()
        )
    );
    // Without [policy.spend], no spend policy and no file needed.
    if let Some(p) = &mut cfg.policy {
        p.spend = None;
    }
    assert!(
        !names(&cfg, &crate::PolicyFiles::default())
            .unwrap()
            .contains(&"spend")
    );
}

/// What a property test does to the policy.
#[derive(Clone, Debug)]
enum Op {
    Admit { trunk: u8, user: u8, callee: u8 },
    Answer(u8),
    End(u8),
    Advance(u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3, 0u8..3, 0u8..4).prop_map(|(trunk, user, callee)| Op::Admit { trunk, user, callee }),
        3 => any::<u8>().prop_map(Op::Answer),
        3 => any::<u8>().prop_map(Op::End),
        // Up to 20 minutes: a run crosses midnight and sometimes a month.
        3 => (0u32..1_200_000).prop_map(Op::Advance),
    ]
}

const TRUNKS: [&str; 3] = ["a", "b", "c"];
const USERS: [&str; 3] = ["1001", "1002", "1003"];
const CALLEES: [&str; 4] = [
    "+442079460000",
    "+12125550100",
    "18005550100",
    "+33123456789",
];

proptest! {
    /// Within a period, committed spend never goes down; totals of other periods are not
    /// held; the running calls stay within their bound; every hang-up asked names a call the
    /// policy follows, once.
    #[test]
    fn committed_spend_never_decreases_and_tables_stay_bounded(ops in prop::collection::vec(op(), 1..200)) {
        let mut cfg = config(vec![
            cap(SpendScope::Trunk, None, SpendPeriod::Day, "5.00"),
            cap(SpendScope::Account, None, SpendPeriod::Month, "20"),
            cap(SpendScope::All, None, SpendPeriod::Day, "8"),
        ]);
        if let Some(s) = &mut cfg.spend {
            s.zone = "Europe/Berlin".into();
            s.max_duration.international = Some(SEC * 600);
        }
        let bound = 8;
        cfg.limit_entries = bound;
        let mut p = SpendPolicy::new_eager(&cfg, Some(table())).unwrap();
        let clock = Clock::at("2026-11-30T22:50:00Z");
        let mut now = clock.t0;
        let mut next = 0u64;
        let mut running: Vec<u64> = Vec::new();
        let mut asked: HashSet<u64> = HashSet::new();
        let mut before: HashMap<TotalKey, Decimal> = HashMap::new();
        for op in ops {
            match op {
                Op::Admit { trunk, user, callee } => {
                    let c = Call {
                        id: next,
                        out: Some(TRUNKS[usize::from(trunk)]),
                        account: Some(USERS[usize::from(user)]),
                        callee: CALLEES[usize::from(callee)],
                    };
                    if admit(&mut p, clock, c, now) == Verdict::Continue {
                        running.push(next);
                    }
                    next += 1;
                }
                Op::Answer(i) => {
                    if let Some(&id) = running.get(usize::from(i) % running.len().max(1)) {
                        p.on_answer(id, now);
                    }
                }
                Op::End(i) => {
                    let id = if i % 7 == 0 { 99_999 } else {
                        running.get(usize::from(i) % running.len().max(1)).copied().unwrap_or(99_998)
                    };
                    p.on_end(id, now);
                    p.on_end(id, now);
                    running.retain(|&r| r != id);
                }
                Op::Advance(ms) => now += Duration::from_millis(u64::from(ms)),
            }
            // The core asks after every input, and ends what it is asked to end.
            for (call, _) in p.take_hangups(now) {
                prop_assert!(asked.insert(call), "call {} asked twice", call);
                prop_assert!(p.state.calls.contains(&call));
                p.on_end(call, now);
                running.retain(|&r| r != call);
            }
            if let Some(d) = p.next_deadline() {
                prop_assert!(d > now, "a deadline in the past");
            }
            let periods = p.periods.clone();
            for (k, t) in &p.state.totals {
                if let Some(old) = before.get(k) {
                    prop_assert!(t.amount >= *old, "{:?} went from {} to {}", k, old, t.amount);
                }
                if let Some((day, month)) = &periods {
                    prop_assert!(k.period == *day || k.period == *month, "{:?} held in {:?}", k, periods);
                }
                prop_assert!(t.amount >= Decimal::ZERO);
            }
            before = p.state.totals.iter().map(|(k, t)| (k.clone(), t.amount)).collect();
            let s = p.stats();
            prop_assert!(s.calls <= bound, "{:?}", s);
            prop_assert!(s.totals <= 3 * 3 + 1, "{:?}", s);
            decisions(&mut p);
            rows(&mut p);
        }
    }
}

/// Outside the unit tests' single instants, the spend is summed at most every LOOK_EVERY:
/// changes in between wait for the end of that interval (and the core is woken for it).
#[test]
fn looks_at_the_running_calls_are_at_most_one_per_interval() {
    let mut p = SpendPolicy::new(&config(vec![carrier_day("1.00")]), Some(table())).unwrap();
    let clock = Clock::noon();
    let t = |d| clock.t(d);
    assert_eq!(
        admit(&mut p, clock, out(1), t(Duration::ZERO)),
        Verdict::Continue
    );
    assert_eq!(p.take_hangups(t(Duration::ZERO)), []);
    // An answer 10 ms later: looked at when the interval ends, not now.
    p.on_answer(1, t(ms(10)));
    assert_eq!(p.take_hangups(t(ms(10))), []);
    assert_eq!(p.next_deadline(), Some(t(LOOK_EVERY)));
    // At the interval's end the look happens and the next deadline is the call's next step.
    assert_eq!(p.take_hangups(t(LOOK_EVERY)), []);
    assert!(p.next_deadline().is_some_and(|d| d > t(LOOK_EVERY)));
}
