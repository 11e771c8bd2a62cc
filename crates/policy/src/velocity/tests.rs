use std::time::SystemTime;

use proptest::prelude::*;
use sipwarden_config::{AccountConfig, LimitConfig, MediaEncryption};
use sipwarden_sip::Message;
use sipwarden_sip::header::Transport;

use super::*;

const INVITE: &str = "INVITE sip:+442079460000@gw SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.10:5060;branch=z9hG4bK1\r\nFrom: <sip:1001@gw>;tag=1\r\nTo: <sip:+442079460000@gw>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";

fn limit(scope: LimitScope, subject: Option<&str>, kind: LimitKind, critical: u64) -> LimitConfig {
    LimitConfig {
        name: None,
        scope,
        subject: subject.map(str::to_owned),
        kind,
        warning: None,
        critical,
        status: 403,
        action: LimitAction::Refuse,
        mode: None,
    }
}

fn policy_with(mode: PolicyMode, entries: usize, limits: Vec<LimitConfig>) -> VelocityPolicy {
    let cfg = PolicyConfig {
        mode,
        limits,
        limit_entries: entries,
        ..PolicyConfig::default()
    };
    VelocityPolicy::new(&cfg, Box::new(MemoryCounters::new(entries))).unwrap()
}

fn policy(limits: Vec<LimitConfig>) -> VelocityPolicy {
    policy_with(PolicyMode::Enforce, 1000, limits)
}

/// A new call as the tests describe it.
#[derive(Clone, Copy, Debug)]
struct Call {
    id: u64,
    /// Out through this trunk.
    out: Option<&'static str>,
    /// In from this trunk (to the PBX).
    from_trunk: Option<&'static str>,
    /// Placed by this account.
    account: Option<&'static str>,
    callee: &'static str,
}

/// A call from the PBX out through the trunk "carrier" to London.
fn out(id: u64) -> Call {
    Call {
        id,
        out: Some("carrier"),
        from_trunk: None,
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

fn admit(p: &mut VelocityPolicy, c: Call, now: Instant) -> Verdict {
    let invite = Message::parse(INVITE.as_bytes()).unwrap();
    let acct = c.account.map(account);
    let request = CallRequest {
        call: c.id,
        invite: &invite,
        origin: match (c.from_trunk, c.account) {
            (Some(_), _) => sipwarden_stages::Origin::Trunk,
            (None, Some(_)) => sipwarden_stages::Origin::Endpoint,
            _ => sipwarden_stages::Origin::Pbx,
        },
        trunk: c.from_trunk,
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
        wall: SystemTime::UNIX_EPOCH,
    };
    p.admit(&request)
}

fn decisions(p: &mut VelocityPolicy) -> Vec<Decision> {
    let mut out = Vec::new();
    p.take_decisions(&mut out);
    out
}

fn outcomes(p: &mut VelocityPolicy) -> Vec<(u64, Outcome)> {
    decisions(p).iter().map(|d| (d.call, d.outcome)).collect()
}

fn refused(v: &Verdict) -> bool {
    matches!(
        v,
        Verdict::Reply {
            reason: Reason::Policy(VELOCITY_LIMIT),
            ..
        }
    )
}

fn key(limit: &str, subject: &str) -> CounterKey {
    CounterKey {
        limit: limit.into(),
        subject: subject.into(),
        number: String::new(),
        tally: Tally::Count,
    }
}

const MS: Duration = Duration::from_millis(1);
const MIN: Duration = Duration::from_secs(60);

fn ms(n: u64) -> Duration {
    MS * u32::try_from(n).unwrap()
}

#[test]
fn critical_n_lets_n_calls_through_and_refuses_the_next_with_its_reason() {
    let mut p = policy(vec![limit(
        LimitScope::Trunk,
        Some("carrier"),
        LimitKind::CallsPerMinute,
        3,
    )]);
    let t0 = Instant::now();
    for id in 1..=3 {
        assert_eq!(admit(&mut p, out(id), t0 + ms(id)), Verdict::Continue);
    }
    let v = admit(&mut p, out(4), t0 + ms(4));
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
    assert_eq!(*phrase, Some("Call Limit Reached"));
    assert_eq!(
        headers.as_slice(),
        [(
            HeaderName::Reason,
            "SIP;cause=403;text=\"velocity_limit: trunk:carrier:calls_per_minute: trunk carrier: \
             4 calls in a minute, over the limit of 3\""
                .to_owned()
        )]
    );
    let d = decisions(&mut p);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].call, 4);
    assert_eq!(d[0].rule, "velocity:trunk:carrier:calls_per_minute");
    assert_eq!(d[0].outcome, Outcome::Refused);
    assert_eq!(d[0].disable, None);
    // Refused calls do not count: once the first three leave the window, three more pass.
    assert!(refused(&admit(&mut p, out(5), t0 + MIN - MS)));
    for id in 6..=8 {
        assert_eq!(
            admit(&mut p, out(id), t0 + MIN + ms(10 + id)),
            Verdict::Continue
        );
    }
    assert!(refused(&admit(&mut p, out(9), t0 + MIN + ms(20))));
    let s = p.stats();
    assert_eq!((s.refused, s.would_refuse, s.warnings), (3, 0, 0));
    // Other trunks and calls to the PBX are not this limit's.
    let other = Call {
        out: Some("other"),
        ..out(10)
    };
    assert_eq!(admit(&mut p, other, t0 + MIN + ms(30)), Verdict::Continue);
    let inbound = Call {
        out: None,
        ..out(11)
    };
    assert_eq!(admit(&mut p, inbound, t0 + MIN + ms(30)), Verdict::Continue);
}

#[test]
fn five_a_second_at_ten_a_second_refuses_from_the_sixth_of_each_second() {
    let mut p = policy(vec![limit(
        LimitScope::All,
        None,
        LimitKind::CallsPerSecond,
        5,
    )]);
    let t0 = Instant::now();
    let mut passed = [0u32; 4];
    for i in 0..40u64 {
        let v = admit(&mut p, out(i), t0 + ms(100 * i));
        let second = usize::try_from(i / 10).unwrap();
        if v == Verdict::Continue {
            passed[second] += 1;
            assert!(i % 10 < 5, "call {} of second {second} passed", i % 10 + 1);
        }
    }
    assert_eq!(passed, [5; 4]);
}

#[test]
fn windows_roll_without_a_cliff_at_the_hour() {
    let mut p = policy(vec![limit(
        LimitScope::Trunk,
        None,
        LimitKind::CallsPerHour,
        60,
    )]);
    let t0 = Instant::now();
    // A call a minute, at the limit's own rate, for three hours: never refused, across every
    // hour boundary.
    for m in 0..180u32 {
        assert_eq!(
            admit(&mut p, out(u64::from(m)), t0 + MIN * m),
            Verdict::Continue
        );
    }
    // Two a minute: the hour is full after thirty minutes, and stays full at the next hour
    // mark: only the calls an hour old make room (a fixed window would let 60 more through).
    let mut p = policy(vec![limit(
        LimitScope::Trunk,
        None,
        LimitKind::CallsPerHour,
        60,
    )]);
    for m in 0..30u32 {
        for k in 0..2 {
            let id = u64::from(m * 2 + k);
            assert_eq!(admit(&mut p, out(id), t0 + MIN * m), Verdict::Continue);
        }
    }
    assert!(refused(&admit(&mut p, out(100), t0 + MIN * 59)));
    let at_hour = t0 + MIN * 60;
    assert_eq!(admit(&mut p, out(101), at_hour), Verdict::Continue);
    assert_eq!(admit(&mut p, out(102), at_hour), Verdict::Continue);
    assert!(refused(&admit(&mut p, out(103), at_hour)));
}

#[test]
fn a_warning_is_reported_once_per_crossing() {
    let mut l = limit(LimitScope::Trunk, None, LimitKind::CallsPerMinute, 5);
    l.warning = Some(3);
    let mut p = policy(vec![l]);
    let t0 = Instant::now();
    for id in 1..=5 {
        assert_eq!(admit(&mut p, out(id), t0 + ms(id)), Verdict::Continue);
    }
    let d = decisions(&mut p);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!((d[0].call, d[0].outcome), (3, Outcome::Warning));
    assert_eq!(d[0].rule, "velocity:trunk:calls_per_minute");
    assert!(
        d[0].detail.contains("trunk carrier: 3 calls in a minute"),
        "{}",
        d[0].detail
    );
    // Over the limit: refusals, no more warnings.
    assert!(refused(&admit(&mut p, out(6), t0 + ms(6))));
    assert_eq!(outcomes(&mut p), [(6, Outcome::Refused)]);
    // The count falls back to nothing, and a new crossing warns again.
    let later = t0 + MIN * 3;
    for id in 7..=9 {
        assert_eq!(admit(&mut p, out(id), later + ms(id)), Verdict::Continue);
    }
    assert_eq!(outcomes(&mut p), [(9, Outcome::Warning)]);
    assert_eq!(p.stats().warnings, 2);
}

#[test]
fn a_count_hovering_at_the_warning_level_warns_once_a_window() {
    let mut l = limit(LimitScope::Trunk, None, LimitKind::CallsPerSecond, 10);
    l.warning = Some(2);
    let mut p = policy(vec![l]);
    let t0 = Instant::now();
    // Two calls a second, evenly: from the second call on, the count is 1 before each call
    // and 2 with it, a crossing at every call (19); reported once a second (10).
    for i in 0..20u64 {
        assert_eq!(admit(&mut p, out(i), t0 + ms(500 * i)), Verdict::Continue);
    }
    let warned: Vec<u64> = outcomes(&mut p).iter().map(|d| d.0).collect();
    assert_eq!(warned, [1, 3, 5, 7, 9, 11, 13, 15, 17, 19]);
}

#[test]
fn monitor_mode_refuses_nothing_and_reports_would_be_refusals() {
    let mut p = policy_with(
        PolicyMode::Monitor,
        100,
        vec![limit(LimitScope::Trunk, None, LimitKind::Concurrent, 2)],
    );
    let t0 = Instant::now();
    for id in 1..=4 {
        assert_eq!(admit(&mut p, out(id), t0), Verdict::Continue);
    }
    assert_eq!(
        outcomes(&mut p),
        [(3, Outcome::WouldRefuse), (4, Outcome::WouldRefuse)]
    );
    let s = p.stats();
    assert_eq!((s.refused, s.would_refuse), (0, 2));
    // Monitored calls count: four run.
    assert_eq!(
        p.state.counters.gauge(&key("trunk:concurrent", "carrier")),
        4
    );
    // A limit's own mode wins over [policy] mode.
    let mut l = limit(LimitScope::Trunk, None, LimitKind::Concurrent, 1);
    l.mode = Some(PolicyMode::Enforce);
    let mut p = policy_with(PolicyMode::Monitor, 100, vec![l]);
    assert_eq!(admit(&mut p, out(1), t0), Verdict::Continue);
    assert!(refused(&admit(&mut p, out(2), t0)));
}

#[test]
fn disable_actions_pull_the_kill_switch_once() {
    let mut l = limit(LimitScope::Trunk, None, LimitKind::CallsPerMinute, 2);
    l.action = LimitAction::DisableTrunk;
    l.status = 503;
    let mut a = limit(
        LimitScope::Account,
        Some("1001"),
        LimitKind::CallsPerHour,
        1,
    );
    a.action = LimitAction::DisableAccount;
    let mut p = policy(vec![l, a]);
    let t0 = Instant::now();
    for id in 1..=2 {
        assert_eq!(admit(&mut p, out(id), t0), Verdict::Continue);
    }
    let v = admit(&mut p, out(3), t0);
    assert!(
        matches!(&v, Verdict::Reply { status, headers, .. }
            if *status == StatusCode::SERVICE_UNAVAILABLE && headers[0].1.starts_with("SIP;cause=503;")),
        "{v:?}"
    );
    let d = decisions(&mut p);
    assert_eq!(d.len(), 2, "{d:?}");
    assert_eq!(d[0].outcome, Outcome::Refused);
    assert_eq!(d[1].outcome, Outcome::Disabled);
    assert_eq!(d[1].disable, Some(Subject::Trunk("carrier".into())));
    assert_eq!(d[1].rule, "velocity:trunk:calls_per_minute");
    assert!(refused(&admit(&mut p, out(4), t0)));
    assert_eq!(outcomes(&mut p), [(4, Outcome::Refused)], "disabled once");
    // An account's second call in the hour, from its phone to the PBX.
    let phone = |id| Call {
        out: None,
        account: Some("1001"),
        ..out(id)
    };
    assert_eq!(admit(&mut p, phone(5), t0), Verdict::Continue);
    assert!(refused(&admit(&mut p, phone(6), t0)));
    let d = decisions(&mut p);
    assert_eq!(
        d.iter().map(|d| d.disable.clone()).collect::<Vec<_>>(),
        [None, Some(Subject::Account("1001".into()))]
    );
    // Another account is not this limit's.
    let other = Call {
        account: Some("1002"),
        ..phone(7)
    };
    assert_eq!(admit(&mut p, other, t0), Verdict::Continue);
    assert_eq!(p.stats().disabled, 2);
}

#[test]
fn concurrency_is_exact_across_admit_and_end() {
    let mut p = policy(vec![limit(
        LimitScope::Trunk,
        Some("carrier"),
        LimitKind::Concurrent,
        2,
    )]);
    let g = key("trunk:carrier:concurrent", "carrier");
    let t0 = Instant::now();
    assert_eq!(admit(&mut p, out(1), t0), Verdict::Continue);
    assert_eq!(admit(&mut p, out(2), t0), Verdict::Continue);
    assert!(refused(&admit(&mut p, out(3), t0)));
    assert_eq!(
        p.state.counters.gauge(&g),
        2,
        "the refused call holds nothing"
    );
    // The refused call's end, an unknown call's end: nothing released.
    p.on_end(3, t0);
    p.on_end(99, t0);
    assert_eq!(p.state.counters.gauge(&g), 2);
    p.on_end(1, t0 + MIN);
    assert_eq!(p.state.counters.gauge(&g), 1);
    // Ended twice: released once.
    p.on_end(1, t0 + MIN);
    assert_eq!(p.state.counters.gauge(&g), 1);
    assert_eq!(admit(&mut p, out(4), t0 + MIN), Verdict::Continue);
    assert!(refused(&admit(&mut p, out(5), t0 + MIN)));
    p.on_answer(2, t0 + MIN);
    p.on_end(2, t0 + MIN * 2);
    p.on_end(4, t0 + MIN * 2);
    assert_eq!(p.state.counters.gauge(&g), 0);
    let s = p.stats();
    assert_eq!((s.entries, s.calls), (0, 0), "{s:?}");
}

#[test]
fn minutes_per_day_count_from_answer_to_end_and_roll_over_24_hours() {
    let mut l = limit(LimitScope::Trunk, None, LimitKind::MinutesPerDay, 10);
    l.warning = Some(5);
    let mut p = policy(vec![l]);
    let t0 = Instant::now();
    // Rung for a minute, talked six.
    assert_eq!(admit(&mut p, out(1), t0), Verdict::Continue);
    p.on_answer(1, t0 + MIN);
    p.on_answer(1, t0 + MIN * 3);
    p.on_end(1, t0 + MIN * 7);
    let d = decisions(&mut p);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!((d[0].call, d[0].outcome), (1, Outcome::Warning));
    assert!(
        d[0].detail.contains("6 minutes in a day"),
        "{}",
        d[0].detail
    );
    // Never answered: no minutes.
    assert_eq!(admit(&mut p, out(2), t0 + MIN * 8), Verdict::Continue);
    p.on_end(2, t0 + MIN * 60);
    // Three minutes and a second: four minutes' worth of seconds rounded up to 181.
    assert_eq!(admit(&mut p, out(3), t0 + MIN * 60), Verdict::Continue);
    p.on_answer(3, t0 + MIN * 60);
    p.on_end(3, t0 + MIN * 63 + ms(1));
    assert_eq!(admit(&mut p, out(4), t0 + MIN * 64), Verdict::Continue);
    p.on_answer(4, t0 + MIN * 64);
    p.on_end(4, t0 + MIN * 65);
    // 6 + 3:01 + 1 = 10:01: the day's minutes reached the limit.
    let v = admit(&mut p, out(5), t0 + MIN * 70);
    assert!(refused(&v), "{v:?}");
    let d = decisions(&mut p);
    assert!(
        d.last().is_some_and(|d| d
            .detail
            .contains("10 minutes in a day, over the limit of 10")),
        "{d:?}"
    );
    // A day after the first call's end, its six minutes are forgotten (up to a bucket,
    // 24 minutes, early; never later than the day).
    let day = Duration::from_secs(86_400);
    assert!(refused(&admit(&mut p, out(6), t0 + day - MIN * 30)));
    assert_eq!(admit(&mut p, out(7), t0 + day + MIN * 8), Verdict::Continue);
}

#[test]
fn international_calls_are_those_to_another_country_out_through_a_trunk() {
    let mut p = policy(vec![limit(
        LimitScope::Trunk,
        None,
        LimitKind::InternationalPerHour,
        1,
    )]);
    let t0 = Instant::now();
    let to = |id, callee| Call { callee, ..out(id) };
    assert_eq!(
        admit(&mut p, to(1, "011442079460000"), t0),
        Verdict::Continue
    );
    // Domestic, in either spelling: not counted.
    assert_eq!(admit(&mut p, to(2, "+12125550100"), t0), Verdict::Continue);
    assert_eq!(admit(&mut p, to(3, "2125550100"), t0), Verdict::Continue);
    // Not a number: not counted.
    assert_eq!(admit(&mut p, to(4, "alice"), t0), Verdict::Continue);
    // Calls in from a trunk are not billed to us.
    let inbound = Call {
        out: None,
        from_trunk: Some("carrier"),
        ..to(5, "+442079460001")
    };
    assert_eq!(admit(&mut p, inbound, t0), Verdict::Continue);
    // A second international call, Canada (+1 but not the US) counts too.
    assert!(refused(&admit(&mut p, to(6, "+14165550100"), t0)));
    assert!(
        refused(&admit(&mut p, to(7, "+881631234567"), t0)),
        "satellite"
    );
}

#[test]
fn same_number_counts_each_normalised_number_apart() {
    let mut p = policy(vec![limit(
        LimitScope::All,
        None,
        LimitKind::SameNumberPerHour,
        2,
    )]);
    let t0 = Instant::now();
    let to = |id, callee| Call { callee, ..out(id) };
    assert_eq!(admit(&mut p, to(1, "+442079460000"), t0), Verdict::Continue);
    assert_eq!(
        admit(&mut p, to(2, "011 44 20 7946 0000"), t0),
        Verdict::Continue
    );
    assert!(refused(&admit(&mut p, to(3, "+44 20 7946 0000"), t0)));
    assert_eq!(admit(&mut p, to(4, "+442079460001"), t0), Verdict::Continue);
    // Strings that are not numbers are counted as dialled.
    assert_eq!(admit(&mut p, to(5, "alice"), t0), Verdict::Continue);
    assert_eq!(admit(&mut p, to(6, "alice"), t0), Verdict::Continue);
    assert!(refused(&admit(&mut p, to(7, "alice"), t0)));
}

#[test]
fn prefix_limits_count_calls_out_to_their_prefix() {
    let mut p = policy(vec![limit(
        LimitScope::Prefix,
        Some("+53"),
        LimitKind::CallsPerHour,
        1,
    )]);
    let t0 = Instant::now();
    let to = |id, callee| Call { callee, ..out(id) };
    assert_eq!(admit(&mut p, to(1, "011537123456"), t0), Verdict::Continue);
    assert_eq!(admit(&mut p, to(2, "+442079460000"), t0), Verdict::Continue);
    let inbound = Call {
        out: None,
        from_trunk: Some("carrier"),
        ..to(3, "+537123456")
    };
    assert_eq!(admit(&mut p, inbound, t0), Verdict::Continue);
    assert!(refused(&admit(&mut p, to(4, "+537123457"), t0)));
}

#[test]
fn trunk_and_account_limits_without_a_subject_count_each_apart() {
    let mut p = policy(vec![
        limit(LimitScope::Trunk, None, LimitKind::Concurrent, 1),
        limit(LimitScope::Account, None, LimitKind::Concurrent, 1),
    ]);
    let t0 = Instant::now();
    let inbound = |id, trunk| Call {
        out: None,
        from_trunk: Some(trunk),
        ..out(id)
    };
    let phone = |id, user| Call {
        out: None,
        account: Some(user),
        ..out(id)
    };
    assert_eq!(admit(&mut p, inbound(1, "a"), t0), Verdict::Continue);
    assert_eq!(admit(&mut p, inbound(2, "b"), t0), Verdict::Continue);
    assert!(refused(&admit(&mut p, inbound(3, "a"), t0)));
    // Out through trunk a counts for a.
    let via_a = Call {
        out: Some("a"),
        ..out(4)
    };
    assert!(refused(&admit(&mut p, via_a, t0)));
    assert_eq!(admit(&mut p, phone(5, "1001"), t0), Verdict::Continue);
    assert_eq!(admit(&mut p, phone(6, "1002"), t0), Verdict::Continue);
    assert!(refused(&admit(&mut p, phone(7, "1001"), t0)));
    // The refusal names the account.
    let d = decisions(&mut p);
    assert!(
        d.last()
            .is_some_and(|d| d.detail.starts_with("account 1001:")),
        "{d:?}"
    );
}

#[test]
fn a_reload_hands_the_counters_and_running_calls_over() {
    let limits = vec![
        limit(LimitScope::Trunk, None, LimitKind::Concurrent, 2),
        limit(LimitScope::Trunk, None, LimitKind::CallsPerMinute, 3),
    ];
    let mut p = policy(limits.clone());
    let t0 = Instant::now();
    assert_eq!(admit(&mut p, out(1), t0), Verdict::Continue);
    assert_eq!(admit(&mut p, out(2), t0), Verdict::Continue);
    // The reload reorders the limits and tightens the rate.
    let mut reordered = vec![limits[1].clone(), limits[0].clone()];
    reordered[0].critical = 2;
    let cfg = PolicyConfig {
        limits: reordered,
        ..PolicyConfig::default()
    };
    let mut p = VelocityPolicy::with_state(&cfg, p.into_state()).unwrap();
    assert!(
        refused(&admit(&mut p, out(3), t0)),
        "the two calls still count"
    );
    p.on_end(1, t0);
    assert_eq!(
        p.state.counters.gauge(&key("trunk:concurrent", "carrier")),
        1,
        "a call admitted before the reload releases its gauge"
    );
    // The counters alone, into a policy built fresh.
    let counters = p.into_counters();
    assert_eq!(counters.len(), 2);
    let mut p = VelocityPolicy::new(&cfg, counters).unwrap();
    assert!(refused(&admit(&mut p, out(4), t0)));
}

#[test]
fn undrained_decisions_are_bounded() {
    let mut p = policy_with(
        PolicyMode::Monitor,
        10_000,
        vec![limit(LimitScope::All, None, LimitKind::CallsPerHour, 1)],
    );
    let t0 = Instant::now();
    for id in 0..2000 {
        assert_eq!(admit(&mut p, out(id), t0), Verdict::Continue);
    }
    assert_eq!(p.decisions.len(), MAX_PENDING_DECISIONS);
    assert_eq!(
        p.stats().decisions_dropped,
        2000 - 1 - MAX_PENDING_DECISIONS as u64
    );
}

#[test]
fn running_calls_are_bounded_and_give_their_gauges_back() {
    let mut p = policy_with(
        PolicyMode::Enforce,
        3,
        vec![limit(LimitScope::All, None, LimitKind::Concurrent, 100)],
    );
    let t0 = Instant::now();
    for id in 0..10 {
        assert_eq!(admit(&mut p, out(id), t0), Verdict::Continue);
    }
    let s = p.stats();
    assert_eq!((s.calls, s.calls_evicted), (3, 7));
    assert_eq!(p.state.counters.gauge(&key("all:concurrent", "")), 3);
}

#[test]
fn from_config_puts_velocity_last_when_limits_are_configured() {
    let mut cfg = sipwarden_config::Config {
        policy: Some(PolicyConfig::default()),
        ..Default::default()
    };
    let names = |cfg: &sipwarden_config::Config| {
        crate::from_config(cfg)
            .unwrap()
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
    };
    assert!(!names(&cfg).contains(&"velocity"));
    if let Some(p) = &mut cfg.policy {
        p.limits
            .push(limit(LimitScope::All, None, LimitKind::Concurrent, 5));
    }
    assert_eq!(names(&cfg).last(), Some(&"velocity"));
    assert_eq!(
        names(&cfg).iter().position(|n| *n == "destination"),
        Some(names(&cfg).len() - 2)
    );
}

/// What a property test does to the policy.
#[derive(Clone, Debug)]
enum Op {
    Admit { trunk: u8, user: u8 },
    Answer(u8),
    End(u8),
    Advance(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3, 0u8..3).prop_map(|(trunk, user)| Op::Admit { trunk, user }),
        1 => any::<u8>().prop_map(Op::Answer),
        3 => any::<u8>().prop_map(Op::End),
        2 => (0u16..5000).prop_map(Op::Advance),
    ]
}

const TRUNKS: [&str; 3] = ["a", "b", "c"];
const USERS: [&str; 3] = ["1001", "1002", "1003"];

proptest! {
    /// Gauges are exactly the calls admitted and not yet ended, per trunk and account, never
    /// above the limit; the counters stay within their bound.
    #[test]
    fn gauges_are_the_running_calls_and_entries_stay_bounded(ops in prop::collection::vec(op(), 1..200)) {
        let mut rate = limit(LimitScope::All, None, LimitKind::CallsPerSecond, 4);
        rate.warning = Some(2);
        let mut minutes = limit(LimitScope::Account, None, LimitKind::MinutesPerDay, 30);
        minutes.warning = Some(10);
        let bound = 256;
        let mut p = policy_with(PolicyMode::Enforce, bound, vec![
            limit(LimitScope::Trunk, None, LimitKind::Concurrent, 3),
            limit(LimitScope::Account, None, LimitKind::Concurrent, 2),
            rate,
            minutes,
            limit(LimitScope::Trunk, None, LimitKind::SameNumberPerHour, 50),
        ]);
        let mut now = Instant::now();
        let mut next = 0u64;
        // Running calls: id → (trunk, user).
        let mut running: Vec<(u64, usize, usize)> = Vec::new();
        for op in ops {
            match op {
                Op::Admit { trunk, user } => {
                    let (t, u) = (usize::from(trunk), usize::from(user));
                    let c = Call { id: next, out: Some(TRUNKS[t]), from_trunk: None, account: Some(USERS[u]), callee: "+442079460000" };
                    if admit(&mut p, c, now) == Verdict::Continue {
                        running.push((next, t, u));
                    }
                    next += 1;
                }
                Op::Answer(i) => {
                    if let Some(&(id, ..)) = running.get(usize::from(i) % running.len().max(1)) {
                        p.on_answer(id, now);
                    }
                }
                Op::End(i) => {
                    // Now and then a call never admitted, or ended already.
                    let id = if i % 5 == 0 { u64::from(i) + 10_000 } else {
                        let n = running.len().max(1);
                        match running.get(usize::from(i) % n) { Some(&(id, ..)) => id, None => 99_999 }
                    };
                    p.on_end(id, now);
                    p.on_end(id, now);
                    running.retain(|&(r, ..)| r != id);
                }
                Op::Advance(ms) => now += Duration::from_millis(u64::from(ms)),
            }
            for (t, name) in TRUNKS.iter().enumerate() {
                let n = running.iter().filter(|r| r.1 == t).count() as u64;
                prop_assert!(n <= 3);
                prop_assert_eq!(p.state.counters.gauge(&key("trunk:concurrent", name)), n);
            }
            for (u, name) in USERS.iter().enumerate() {
                let n = running.iter().filter(|r| r.2 == u).count() as u64;
                prop_assert!(n <= 2);
                prop_assert_eq!(p.state.counters.gauge(&key("account:concurrent", name)), n);
            }
            let s = p.stats();
            prop_assert!(s.entries <= bound, "{s:?}");
            prop_assert_eq!(s.calls, running.len());
            decisions(&mut p);
        }
    }

    /// The counters alone, with a bound small enough to be hit: never more entries than it,
    /// gauges exact where `inc` kept them, never below zero.
    #[test]
    fn memory_counters_stay_bounded_and_gauges_exact(
        ops in prop::collection::vec((0u8..4, 0u8..8, 0u16..3000), 1..300),
    ) {
        let bound = 5;
        let mut c = MemoryCounters::new(bound);
        let mut now = Instant::now();
        let mut model = [0u64; 8];
        for (what, k, arg) in ops {
            let k8 = usize::from(k);
            let ck = key("l", &k.to_string());
            match what {
                0 => {
                    let total = c.add(&ck, Duration::from_secs(1), now, u64::from(arg % 3 + 1));
                    prop_assert!(total >= u64::from(arg % 3 + 1));
                }
                1 => {
                    if let Some(n) = c.inc(&ck) {
                        model[k8] += 1;
                        prop_assert_eq!(n, model[k8]);
                    }
                }
                2 => {
                    let n = c.dec(&ck);
                    model[k8] = model[k8].saturating_sub(1);
                    prop_assert_eq!(n, model[k8]);
                }
                _ => now += Duration::from_millis(u64::from(arg)),
            }
            prop_assert!(c.len() <= bound);
            for (i, m) in model.iter().enumerate() {
                prop_assert_eq!(c.gauge(&key("l", &i.to_string())), *m);
            }
        }
    }
}

#[test]
fn a_reload_hands_the_counters_and_running_calls_to_the_new_policy() {
    let t0 = Instant::now();
    let limits = || {
        vec![
            limit(LimitScope::Trunk, Some("carrier"), LimitKind::Concurrent, 2),
            limit(
                LimitScope::Trunk,
                Some("carrier"),
                LimitKind::CallsPerMinute,
                3,
            ),
        ]
    };
    let mut old = policy(limits());
    assert!(!refused(&admit(&mut old, out(1), t0)));
    assert!(!refused(&admit(&mut old, out(2), t0)));
    // The reload: the core asks the old policy, then gives the new one what it handed over.
    let mut new = policy(limits());
    let state = old.hand_over().unwrap();
    new.take_over(state);
    assert_eq!(new.stats().calls, 2, "the running calls came along");
    assert!(
        refused(&admit(&mut new, out(3), t0)),
        "concurrency kept: 2 running"
    );
    // The old calls end through the new policy: the gauge goes back to 0, never below.
    new.on_end(1, t0);
    new.on_end(2, t0);
    new.on_end(2, t0);
    assert_eq!(new.stats().calls, 0);
    assert!(!refused(&admit(&mut new, out(4), t0)), "one running now");
    // The minute's count came along too: calls 1, 2 and 4 make 3, the 5th is over.
    new.on_end(4, t0);
    assert!(refused(&admit(&mut new, out(5), t0)));
    // A state of another kind is ignored.
    new.take_over(Box::new(5u32));
    assert!(refused(&admit(&mut new, out(6), t0)));
}
