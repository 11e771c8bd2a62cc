//! Outbound routing over several trunks and failover, in simulated time: the decision table
//! of which answers move a call on (408, 5xx, no response) and which do not (486, 404, 6xx,
//! anything after the carrier rang), addresses marked down and brought back, an INVITE left
//! behind that answers late, prefix routes, and trunks named by DNS with weighted targets.

use std::time::Duration;

use sipwarden_b2bua::events::CallEventKind;
use sipwarden_dns::{Target, Transport};
use sipwarden_sip::{HeaderName, Message, Method, StatusCode};
use sipwarden_testkit::{CARRIER, LAB_CONFIG, Lab, PBX_UAC, first_line, pbx_invite, respond};

/// The second carrier of LAB.md.
const CARRIER2: &str = "127.0.0.4:5060";

/// The lab with a second trunk at 127.0.0.4; without `[[route]]` tables the first trunk is
/// tried first and the second after it.
fn two_carriers(extra: &str) -> Lab {
    Lab::with(&format!(
        "{LAB_CONFIG}\n[[trunk]]\nname = \"carrier2\"\nnetworks = [\"127.0.0.4/32\"]\nproxy = \"sip:127.0.0.4:5060\"\n{extra}"
    ))
}

/// A PBX call to `callee` with its own branch and Call-ID.
fn call(lab: &mut Lab, callee: &str, n: u32) {
    let inv = pbx_invite(callee, &format!("z9hG4bKpbx{n}"))
        .replace("pbx-call-1@", &format!("pbx-call-{n}@"));
    lab.send(PBX_UAC, &inv);
    let _ = lab.take(PBX_UAC);
}

/// The INVITEs sent to `to` (no ACKs, no CANCELs).
fn invites(lab: &mut Lab, to: &str) -> Vec<Message> {
    lab.take(to)
        .into_iter()
        .filter(|m| m.method() == Some(Method::Invite))
        .collect()
}

fn retry_after_503(inv: &Message, secs: u32) -> Message {
    let mut r = respond(inv, 503, Some("busy"), None, false);
    r.push_header(HeaderName::RetryAfter, &secs.to_string())
        .unwrap();
    r
}

/// The PBX's final answer, without 100 Trying.
fn pbx_final(lab: &mut Lab) -> Vec<String> {
    lab.take(PBX_UAC)
        .iter()
        .filter(|m| m.status().is_some_and(StatusCode::is_final))
        .map(first_line)
        .collect()
}

#[test]
fn a_503_moves_the_call_to_the_next_trunk_and_its_retry_after_keeps_the_first_down() {
    let mut lab = two_carriers("");
    call(&mut lab, "+15557654321", 1);
    let a = invites(&mut lab, CARRIER);
    assert_eq!(a.len(), 1);
    lab.send_msg(CARRIER, retry_after_503(&a[0], 120));
    // The 503 is acknowledged on A, and the INVITE goes to the second trunk at once.
    assert!(
        lab.take(CARRIER)
            .iter()
            .all(|m| m.method() == Some(Method::Ack))
    );
    let b = invites(&mut lab, CARRIER2);
    assert_eq!(b.len(), 1, "the second trunk gets the call");
    assert_eq!(
        b[0].request_uri_str(),
        Some("sip:+15557654321@127.0.0.4:5060")
    );
    assert_ne!(b[0].call_id(), a[0].call_id(), "a new B leg");
    assert!(pbx_final(&mut lab).is_empty(), "the PBX sees no failure");
    lab.send_msg(
        CARRIER2,
        respond(
            &b[0],
            200,
            Some("c2"),
            Some("<sip:c2@127.0.0.4:5060>"),
            true,
        ),
    );
    assert_eq!(pbx_final(&mut lab), vec!["SIP/2.0 200 OK"]);
    let events: Vec<_> = lab
        .core
        .take_call_events()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    let attempts: Vec<String> = events
        .iter()
        .filter_map(|k| match k {
            CallEventKind::Attempt { trunk, to, .. } => Some(format!("try {trunk} {to}")),
            CallEventKind::AttemptFailed {
                trunk,
                status,
                next,
                ..
            } => Some(format!("failed {trunk} {status:?} next={next}")),
            _ => None,
        })
        .collect();
    assert_eq!(
        attempts,
        vec![
            "try carrier 127.0.0.3:5060",
            "failed carrier Some(503) next=true",
            "try carrier2 127.0.0.4:5060"
        ]
    );
    // For the Retry-After's two minutes the first trunk is skipped.
    call(&mut lab, "+15557654322", 2);
    assert!(invites(&mut lab, CARRIER).is_empty());
    assert_eq!(invites(&mut lab, CARRIER2).len(), 1);
    assert_eq!(lab.stats().failovers, 1);
    assert_eq!(lab.stats().trunk_addresses_marked_down, 1);
    lab.advance(Duration::from_secs(121));
    call(&mut lab, "+15557654323", 3);
    assert_eq!(
        invites(&mut lab, CARRIER).len(),
        1,
        "back after Retry-After"
    );
}

#[test]
fn no_response_in_time_moves_on_and_a_late_answer_is_hung_up() {
    let mut lab = two_carriers("");
    call(&mut lab, "+15557654321", 1);
    let a = invites(&mut lab, CARRIER);
    assert_eq!(a.len(), 1);
    // UDP retransmissions go to the first carrier until the failover timeout (3 s).
    lab.advance(Duration::from_millis(2900));
    assert!(invites(&mut lab, CARRIER2).is_empty());
    lab.advance(Duration::from_millis(200));
    let b = invites(&mut lab, CARRIER2);
    assert_eq!(b.len(), 1, "moved on after failover_timeout");
    assert_eq!(lab.stats().failovers_no_response, 1);
    let _ = lab.take(CARRIER);
    // The first carrier wakes up and answers: acknowledged and hung up, never relayed.
    lab.send_msg(
        CARRIER,
        respond(
            &a[0],
            200,
            Some("late"),
            Some("<sip:c1@127.0.0.3:5060>"),
            true,
        ),
    );
    let to_a: Vec<String> = lab.take(CARRIER).iter().map(first_line).collect();
    assert!(to_a.iter().any(|l| l.starts_with("ACK ")), "{to_a:?}");
    assert!(to_a.iter().any(|l| l.starts_with("BYE ")), "{to_a:?}");
    assert!(pbx_final(&mut lab).is_empty());
    lab.send_msg(
        CARRIER2,
        respond(
            &b[0],
            200,
            Some("c2"),
            Some("<sip:c2@127.0.0.4:5060>"),
            true,
        ),
    );
    assert_eq!(pbx_final(&mut lab), vec!["SIP/2.0 200 OK"]);
    assert_eq!(lab.stats().abandoned_attempts, 0);
}

#[test]
fn a_late_provisional_on_the_abandoned_invite_is_cancelled() {
    let mut lab = two_carriers("");
    call(&mut lab, "+15557654321", 1);
    let a = invites(&mut lab, CARRIER);
    lab.advance(Duration::from_millis(3100));
    assert_eq!(invites(&mut lab, CARRIER2).len(), 1);
    let _ = lab.take(CARRIER);
    lab.send_msg(CARRIER, respond(&a[0], 180, Some("late"), None, false));
    let to_a: Vec<String> = lab.take(CARRIER).iter().map(first_line).collect();
    assert!(to_a.iter().any(|l| l.starts_with("CANCEL ")), "{to_a:?}");
    assert!(
        lab.take(PBX_UAC).is_empty(),
        "nothing of it reaches the PBX"
    );
}

#[test]
fn busy_not_found_and_global_failures_go_back_to_the_pbx() {
    for (code, line) in [
        (486, "SIP/2.0 486 Busy Here"),
        (404, "SIP/2.0 404 Not Found"),
        (403, "SIP/2.0 403 Forbidden"),
        (603, "SIP/2.0 603 Decline"),
    ] {
        let mut lab = two_carriers("");
        call(&mut lab, "+15557654321", 1);
        let a = invites(&mut lab, CARRIER);
        lab.send_msg(CARRIER, respond(&a[0], code, Some("x"), None, false));
        assert!(
            invites(&mut lab, CARRIER2).is_empty(),
            "{code} does not move on"
        );
        assert_eq!(pbx_final(&mut lab), vec![line]);
        assert_eq!(lab.stats().failovers, 0);
        lab.assert_clean();
    }
}

#[test]
fn after_ringing_a_failure_goes_back_to_the_pbx() {
    let mut lab = two_carriers("");
    call(&mut lab, "+15557654321", 1);
    let a = invites(&mut lab, CARRIER);
    lab.send_msg(CARRIER, respond(&a[0], 180, Some("r"), None, false));
    lab.send_msg(CARRIER, respond(&a[0], 500, Some("r"), None, false));
    assert!(invites(&mut lab, CARRIER2).is_empty());
    let f: Vec<String> = pbx_final(&mut lab);
    assert_eq!(f, vec!["SIP/2.0 500 Server Internal Error"]);
}

#[test]
fn the_last_trunk_failing_gives_the_pbx_its_answer_and_repeated_failures_mark_it_down() {
    let mut lab = two_carriers("failures_to_down = 2\ndown_for = \"30s\"\n");
    for n in 1..=2 {
        call(&mut lab, "+15557654321", n);
        let a = invites(&mut lab, CARRIER);
        lab.send_msg(CARRIER, respond(&a[0], 500, Some("x"), None, false));
        let b = invites(&mut lab, CARRIER2);
        assert_eq!(b.len(), 1);
        lab.send_msg(CARRIER2, respond(&b[0], 503, Some("y"), None, false));
        assert_eq!(pbx_final(&mut lab), vec!["SIP/2.0 503 Service Unavailable"]);
    }
    // carrier2 failed twice (failures_to_down = 2): down for 30 s. carrier's default is 3.
    call(&mut lab, "+15557654321", 3);
    let a = invites(&mut lab, CARRIER);
    lab.send_msg(CARRIER, respond(&a[0], 500, Some("x"), None, false));
    assert!(invites(&mut lab, CARRIER2).is_empty(), "carrier2 is down");
    assert_eq!(
        pbx_final(&mut lab),
        vec!["SIP/2.0 500 Server Internal Error"]
    );
    // Now both are down: the next call has nowhere to go.
    call(&mut lab, "+15557654321", 4);
    let _ = invites(&mut lab, CARRIER);
    let refused: Vec<_> = lab
        .core
        .take_call_events()
        .into_iter()
        .filter_map(|e| match e.kind {
            CallEventKind::Refused { status, reason, .. } => Some((status, reason.code())),
            _ => None,
        })
        .collect();
    assert_eq!(refused, vec![(503, "trunks_unavailable")]);
    lab.advance(Duration::from_secs(61));
    call(&mut lab, "+15557654321", 5);
    assert_eq!(invites(&mut lab, CARRIER).len(), 1, "down_for has passed");
}

#[test]
fn prefix_routes_send_44_to_one_trunk_and_everything_else_to_another() {
    let mut lab = two_carriers(
        "[[route]]\nprefix = \"+44\"\ntrunks = [\"carrier2\"]\n[[route]]\ntrunks = [\"carrier\"]\n",
    );
    call(&mut lab, "+442079460000", 1);
    assert_eq!(invites(&mut lab, CARRIER2).len(), 1);
    assert!(invites(&mut lab, CARRIER).is_empty());
    call(&mut lab, "+15557654321", 2);
    assert_eq!(invites(&mut lab, CARRIER).len(), 1);
    assert!(invites(&mut lab, CARRIER2).is_empty());
    // A route without fallback: a failure goes back to the PBX.
    call(&mut lab, "+442079460001", 3);
    let b = invites(&mut lab, CARRIER2);
    lab.send_msg(CARRIER2, respond(&b[0], 503, Some("x"), None, false));
    assert!(invites(&mut lab, CARRIER).is_empty());
    assert_eq!(pbx_final(&mut lab), vec!["SIP/2.0 503 Service Unavailable"]);
}

fn target(ip: &str, weight: u16, priority: u16) -> Target {
    Target {
        priority,
        weight,
        transport: Transport::Udp,
        port: 5060,
        host: ip.into(),
        addrs: vec![ip.parse().unwrap()],
    }
}

const NAMED: &str = "[pbx]\naddress = \"127.0.0.10:5080\"\nnetworks = [\"127.0.0.10/32\"]\n[[trunk]]\nname = \"carrier\"\nnetworks = [\"127.0.0.3/32\", \"127.0.0.4/32\"]\nproxy = \"sip:carrier.lab\"\n";

#[test]
fn a_trunk_named_by_dns_waits_for_its_targets_then_splits_by_weight() {
    let mut lab = Lab::with(NAMED);
    lab.send(PBX_UAC, &pbx_invite("+15557654321", "z9hG4bKpbx0"));
    assert_eq!(pbx_final(&mut lab), vec!["SIP/2.0 503 No Trunk Available"]);
    lab.core.set_trunk_targets(
        "carrier",
        vec![target("127.0.0.3", 3, 10), target("127.0.0.4", 1, 10)],
    );
    let (mut first, mut second) = (0, 0);
    for n in 1..=1000 {
        call(&mut lab, "+15557654321", n);
        let a = invites(&mut lab, CARRIER);
        let b = invites(&mut lab, CARRIER2);
        assert_eq!(a.len() + b.len(), 1);
        if let Some(inv) = a.first().or_else(|| b.first()) {
            assert_eq!(inv.request_uri_str(), Some("sip:+15557654321@carrier.lab"));
        }
        first += a.len();
        second += b.len();
    }
    assert!(
        (700..=800).contains(&first),
        "3:1 split: {first} / {second}"
    );
    // With priorities, only the first is used while it answers.
    lab.core.set_trunk_targets(
        "carrier",
        vec![target("127.0.0.3", 1, 10), target("127.0.0.4", 1, 20)],
    );
    for n in 2000..2100 {
        call(&mut lab, "+15557654321", n);
        assert_eq!(invites(&mut lab, CARRIER).len(), 1);
        assert!(invites(&mut lab, CARRIER2).is_empty());
    }
}

/// The new OPTIONS to `to` (not retransmissions of earlier unanswered ones, which UDP
/// repeats until their transaction times out).
fn options(lab: &mut Lab, to: &str) -> Vec<Message> {
    thread_local! {
        static SEEN: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    lab.take(to)
        .into_iter()
        .filter(|m| m.method() == Some(Method::Options))
        .filter(|m| {
            let id = m.call_id().unwrap_or("").to_owned();
            SEEN.with(|s| {
                let mut s = s.borrow_mut();
                let fresh = !s.contains(&id);
                s.push(id);
                fresh
            })
        })
        .collect()
}

fn trunk_events(lab: &mut Lab) -> Vec<String> {
    lab.core
        .take_security_events()
        .into_iter()
        .filter(|e| e.kind.name().starts_with("Trunk"))
        .map(|e| format!("{} {}", e.kind.name(), e.remote.addr))
        .collect()
}

#[test]
fn qualify_marks_an_address_down_after_missed_options_and_up_again_with_hysteresis() {
    // Qualify the first carrier every 5 s; 1 s to answer; down after 2 misses, up after 2.
    let mut lab = Lab::with(&format!(
        "{LAB_CONFIG}\n[trunk.qualify]\ninterval = \"5s\"\ntimeout = \"1s\"\ndown_after = 2\nup_after = 2\n[[trunk]]\nname = \"carrier2\"\nnetworks = [\"127.0.0.4/32\"]\nproxy = \"sip:127.0.0.4:5060\"\n"
    ));
    // The first OPTIONS leaves at start, to the carrier only (carrier2 is not qualified).
    let o = options(&mut lab, CARRIER);
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].request_uri_str(), Some("sip:127.0.0.3:5060"));
    assert!(options(&mut lab, CARRIER2).is_empty());
    lab.advance(Duration::from_millis(30));
    lab.send_msg(CARRIER, respond(&o[0], 200, Some("q"), None, false));
    assert_eq!(trunk_events(&mut lab), vec!["TrunkUp 127.0.0.3:5060"]);
    let status = lab.core.trunk_status(lab.now);
    assert_eq!(status[0].addresses[0].rtt_ms, Some(30));
    assert_eq!(status[0].addresses[0].qualified, Some(true));
    // Two OPTIONS go unanswered (5 s apart, 1 s each): down.
    lab.advance(Duration::from_secs(5));
    assert_eq!(options(&mut lab, CARRIER).len(), 1);
    lab.advance(Duration::from_secs(1));
    assert!(trunk_events(&mut lab).is_empty(), "one miss is not enough");
    lab.advance(Duration::from_secs(4));
    let _ = options(&mut lab, CARRIER);
    lab.advance(Duration::from_secs(1));
    assert_eq!(trunk_events(&mut lab), vec!["TrunkDown 127.0.0.3:5060"]);
    assert!(!lab.core.trunk_status(lab.now)[0].addresses[0].up);
    // Calls skip it now: straight to carrier2.
    call(&mut lab, "+15557654321", 1);
    assert!(invites(&mut lab, CARRIER).is_empty());
    assert_eq!(invites(&mut lab, CARRIER2).len(), 1);
    // It answers again: one answer is not enough (up_after = 2), two are.
    lab.advance(Duration::from_secs(4));
    let o = options(&mut lab, CARRIER);
    lab.send_msg(CARRIER, respond(&o[0], 200, Some("q"), None, false));
    assert!(trunk_events(&mut lab).is_empty());
    lab.advance(Duration::from_secs(5));
    let o = options(&mut lab, CARRIER);
    lab.send_msg(CARRIER, respond(&o[0], 404, Some("q"), None, false));
    assert_eq!(
        trunk_events(&mut lab),
        vec!["TrunkUp 127.0.0.3:5060"],
        "any answer but 408/5xx counts"
    );
    call(&mut lab, "+15557654321", 2);
    assert_eq!(invites(&mut lab, CARRIER).len(), 1);
    assert_eq!(lab.stats().qualify_probes, 1);
}

#[test]
fn a_503_to_options_counts_as_a_miss_and_a_reload_without_qualify_drops_the_probes() {
    let mut lab = Lab::with(&format!(
        "{LAB_CONFIG}\n[trunk.qualify]\ninterval = \"2s\"\ntimeout = \"1s\"\ndown_after = 1\n"
    ));
    let o = options(&mut lab, CARRIER);
    lab.send_msg(CARRIER, respond(&o[0], 503, Some("q"), None, false));
    assert_eq!(trunk_events(&mut lab), vec!["TrunkDown 127.0.0.3:5060"]);
    let cfg = sipwarden_config::Config::from_toml(LAB_CONFIG, None).unwrap();
    lab.core
        .set_routes(sipwarden_b2bua::Routes::from_config(&cfg).unwrap());
    lab.advance(Duration::from_secs(3));
    assert!(
        options(&mut lab, CARRIER).is_empty(),
        "no qualify, no OPTIONS"
    );
    assert_eq!(lab.stats().qualify_probes, 0);
    assert!(
        lab.core.trunk_status(lab.now)[0].addresses[0].up,
        "its verdict went with it"
    );
}

fn registers(lab: &mut Lab, to: &str) -> Vec<Message> {
    lab.take(to)
        .into_iter()
        .filter(|m| m.method() == Some(Method::Register))
        .collect()
}

#[test]
fn the_gateway_registers_to_the_carrier_answers_its_challenge_refreshes_and_takes_its_calls() {
    let mut lab = Lab::with(&format!(
        "{LAB_CONFIG}\n[trunk.registration]\nexpires = \"10m\"\nretry = \"5s\"\nretry_max = \"20s\"\n"
    ));
    let r = registers(&mut lab, CARRIER);
    assert_eq!(r.len(), 1, "REGISTER at start");
    assert_eq!(r[0].request_uri_str(), Some("sip:127.0.0.3"));
    assert_eq!(
        r[0].header(HeaderName::Contact),
        Some("<sip:acct123@127.0.0.1:5060>")
    );
    assert_eq!(r[0].header(HeaderName::Expires), Some("600"));
    assert!(
        r[0].header(HeaderName::From)
            .unwrap()
            .contains("sip:acct123@127.0.0.3")
    );
    let mut challenge = respond(&r[0], 401, Some("reg"), None, false);
    challenge
        .push_header(
            HeaderName::WwwAuthenticate,
            "Digest realm=\"carrier.lab\", nonce=\"abc\", qop=\"auth\", algorithm=MD5",
        )
        .unwrap();
    lab.send_msg(CARRIER, challenge);
    let r2 = registers(&mut lab, CARRIER);
    assert_eq!(r2.len(), 1);
    assert_eq!(r2[0].call_id(), r[0].call_id());
    assert_eq!(r2[0].cseq().unwrap().seq, r[0].cseq().unwrap().seq + 1);
    assert!(
        r2[0]
            .header(HeaderName::Authorization)
            .unwrap()
            .contains("username=\"acct123\"")
    );
    // The registrar grants 60 s on the Contact: refreshed at 48 s.
    let mut ok = respond(&r2[0], 200, Some("reg"), None, false);
    ok.push_header(
        HeaderName::Contact,
        "<sip:acct123@127.0.0.1:5060>;expires=60",
    )
    .unwrap();
    lab.send_msg(CARRIER, ok);
    assert_eq!(
        trunk_events(&mut lab),
        vec!["TrunkRegistered 127.0.0.3:5060"]
    );
    let st = lab.core.trunk_status(lab.now);
    assert_eq!(
        st[0].registration,
        Some((sipwarden_b2bua::RegState::Registered, Some(60)))
    );
    lab.advance(Duration::from_secs(47));
    assert!(registers(&mut lab, CARRIER).is_empty());
    lab.advance(Duration::from_secs(1));
    let r3 = registers(&mut lab, CARRIER);
    assert_eq!(r3.len(), 1, "refresh at 80 % of 60 s");

    // A call the carrier sends to the registered Contact is for the number in To.
    let inv = sipwarden_testkit::carrier_invite("+15551230042", "z9hG4bKreg1").replacen(
        "INVITE sip:+15551230042@",
        "INVITE sip:acct123@",
        1,
    );
    lab.send(CARRIER, &inv);
    let to_pbx = lab.expect(sipwarden_testkit::PBX_UAS, "INVITE");
    assert_eq!(
        to_pbx.request_uri_str(),
        Some("sip:+15551230042@127.0.0.10:5080")
    );

    // The refresh is refused and nothing answers after: the registration runs out and the
    // failure is an event; attempts back off (5 s, 10 s, 20 s, 20 s).
    lab.send_msg(CARRIER, respond(&r3[0], 403, Some("reg"), None, false));
    assert!(
        trunk_events(&mut lab).is_empty(),
        "still registered until it expires"
    );
    lab.advance(Duration::from_secs(5));
    let r4 = registers(&mut lab, CARRIER);
    assert_eq!(r4.len(), 1);
    lab.advance(Duration::from_secs(40));
    assert_eq!(
        trunk_events(&mut lab),
        vec!["TrunkRegistrationFailed 127.0.0.3:5060"]
    );
    assert!(matches!(
        lab.core.trunk_status(lab.now)[0].registration,
        Some((sipwarden_b2bua::RegState::Failed(408), None))
    ));
    assert!(lab.stats().carrier_registration_failures >= 2);
}

#[test]
fn a_transport_failure_moves_the_call_on_at_once() {
    let mut lab = two_carriers("");
    call(&mut lab, "+15557654321", 1);
    assert_eq!(invites(&mut lab, CARRIER).len(), 1);
    let now = lab.now;
    lab.core
        .on_transport_error(now, sipwarden_testkit::udp(CARRIER));
    lab.collect();
    assert_eq!(
        invites(&mut lab, CARRIER2).len(),
        1,
        "no waiting for a timeout"
    );
    assert_eq!(lab.stats().transport_failures, 1);
    assert_eq!(lab.stats().failovers, 1);
}

#[test]
fn networks_from_dns_make_the_resolved_addresses_the_trunks_zone() {
    let mut lab = Lab::with(
        "[pbx]\naddress = \"127.0.0.10:5080\"\nnetworks = [\"127.0.0.10/32\"]\n[[trunk]]\nname = \"carrier\"\nproxy = \"sip:carrier.lab\"\nnetworks_from_dns = true\ndids = [\"+15551230000-+15551230099\"]\n",
    );
    // Before DNS has answered, 127.0.0.3 is nobody's: the endpoint zone, which must
    // authenticate (no accounts: refused).
    lab.send(
        CARRIER,
        &sipwarden_testkit::carrier_invite("+15551230042", "z9hG4bKd1"),
    );
    assert!(lab.take(sipwarden_testkit::PBX_UAS).is_empty());
    let _ = lab.take(CARRIER);
    lab.core
        .set_trunk_targets("carrier", vec![target("127.0.0.3", 1, 0)]);
    lab.send(
        CARRIER,
        &sipwarden_testkit::carrier_invite("+15551230042", "z9hG4bKd2")
            .replace("carrier-call-9", "carrier-call-10"),
    );
    lab.expect(sipwarden_testkit::PBX_UAS, "INVITE sip:+15551230042@");
    // And it is never banned, as configured networks are not.
    assert!(
        lab.core
            .ban(lab.now, "127.0.0.3".parse().unwrap(), "test")
            .is_none()
    );
}
