//! Call flows through the core with scripted peers and simulated time: the PBX on
//! 127.0.0.10:5070 (UAC) / 127.0.0.10:5080 (UAS), the carrier on 127.0.0.3:5060, the gateway on
//! 127.0.0.1:5060 — the lab of LAB.md, without sockets. The harness (`Lab`), the lab's
//! addresses and the message builders are `sipwarden-testkit`'s, shared with the benchmark.

use std::time::{Duration, Instant};

use sipwarden_b2bua::Routes;
use sipwarden_config::Config;
use sipwarden_sip::Peer;
use sipwarden_sip::header::Transport;
use sipwarden_sip::{HeaderName, Message, Method, StatusCode};
use sipwarden_testkit::{
    CARRIER, LAB_ACCOUNTS, LAB_CONFIG, Lab, PBX_UAC, PBX_UAS, PHONE, PHONE2, PW_1001, SDP,
    STRANGER, addr, answer, cancel_of, carrier_invite, contact_of, first_line, in_dialog,
    inbound_call, invite_with_auth, outbound_call, pbx_invite, phone_lab, register,
    register_with_auth, respond, udp,
};

#[test]
fn outbound_call_with_challenge_then_bye_from_the_pbx() {
    let mut lab = Lab::new();
    let (b_invite, a_ok) = outbound_call(&mut lab);
    let bye = in_dialog("BYE", &a_ok, true, 102, "z9hG4bKpbxbye", &contact_of(&a_ok));
    lab.send_msg(PBX_UAC, bye);
    let b_bye = lab.expect(CARRIER, "BYE");
    assert_eq!(b_bye.call_id(), b_invite.call_id());
    assert!(b_bye.cseq().unwrap().seq > b_invite.cseq().unwrap().seq);
    lab.send_msg(CARRIER, respond(&b_bye, 200, None, None, false));
    lab.expect(PBX_UAC, "200 OK");
    assert_eq!(lab.stats().calls, 0);
    lab.assert_clean();
}

#[test]
fn bye_from_the_callee() {
    let mut lab = Lab::new();
    let (b_invite, _) = outbound_call(&mut lab);
    let ok_seen_by_carrier = respond(&b_invite, 200, Some("carrier-tag"), None, false);
    let bye = in_dialog(
        "BYE",
        &ok_seen_by_carrier,
        false,
        1,
        "z9hG4bKcbye",
        "sip:127.0.0.1:5060",
    );
    lab.send_msg(CARRIER, bye);
    let a_bye = lab.expect(PBX_UAC, "BYE sip:asterisk@10.20.30.40:5070");
    assert_eq!(a_bye.call_id(), Some("pbx-call-1@10.20.30.40"));
    assert_eq!(a_bye.to_tag(), Some("pbxtag"));
    lab.send_msg(PBX_UAC, respond(&a_bye, 200, None, None, false));
    lab.expect(CARRIER, "200 OK");
    lab.assert_clean();
}

#[test]
fn a_bye_from_outside_the_trunks_networks_does_not_end_the_call() {
    let mut lab = Lab::new();
    let (b_invite, _) = outbound_call(&mut lab);
    let ok_seen_by_carrier = respond(&b_invite, 200, Some("carrier-tag"), None, false);
    let bye = |branch: &str| {
        in_dialog(
            "BYE",
            &ok_seen_by_carrier,
            false,
            1,
            branch,
            "sip:127.0.0.1:5060",
        )
    };
    lab.send_msg(STRANGER, bye("z9hG4bKforged"));
    lab.expect(STRANGER, "481 Call/Transaction Does Not Exist");
    assert!(lab.take(PBX_UAC).is_empty(), "the forged BYE goes nowhere");
    assert_eq!(lab.stats().calls, 1, "the call is still up");
    // The carrier itself still can.
    lab.send_msg(CARRIER, bye("z9hG4bKcbye"));
    let a_bye = lab.expect(PBX_UAC, "BYE");
    lab.send_msg(PBX_UAC, respond(&a_bye, 200, None, None, false));
    lab.expect(CARRIER, "200 OK");
    lab.assert_clean();
}

#[test]
fn nothing_of_the_pbx_reaches_the_trunk() {
    let mut lab = Lab::new();
    let (_, a_ok) = outbound_call(&mut lab);
    let bye = in_dialog("BYE", &a_ok, true, 102, "z9hG4bKpbxbye", &contact_of(&a_ok));
    lab.send_msg(PBX_UAC, bye);
    let carrier_side: Vec<Message> = lab.take(CARRIER);
    assert!(!carrier_side.is_empty());
    // Every message the carrier ever received in this call, re-run to capture it all.
    let mut lab = Lab::new();
    lab.send(PBX_UAC, &pbx_invite("+15557654321", "z9hG4bKpbx1"));
    let mut all = lab.take(CARRIER);
    all.extend(carrier_side);
    for m in &all {
        let text = String::from_utf8_lossy(&m.to_bytes()).into_owned();
        for secret in [
            "10.20.30.40",
            "pbx-call-1",
            "pbxtag",
            "Asterisk",
            "X-Asterisk",
            "asterisk@",
            "z9hG4bKpbx",
        ] {
            assert!(
                !text.contains(secret),
                "{secret:?} leaked to the trunk:\n{text}"
            );
        }
        assert!(m.user_agent().is_none());
    }
    let invite = &all[0];
    assert!(String::from_utf8_lossy(invite.body()).contains("o=- 1 1 IN IP4 127.0.0.1"));
    assert_eq!(
        invite.max_forwards(),
        Some(69),
        "Max-Forwards carried across minus one"
    );
    assert_eq!(
        invite.header(HeaderName::PAssertedIdentity),
        Some("\"Alice\" <sip:+15551230001@127.0.0.1>")
    );
    assert_eq!(
        invite.tokens(HeaderName::Supported).unwrap(),
        ["replaces", "timer"],
        "only tags that can cross"
    );
}

#[test]
fn inbound_call_to_a_did_reaches_the_pbx() {
    let mut lab = Lab::new();
    lab.send(CARRIER, &carrier_invite("+15551230042", "z9hG4bKc1"));
    let inv = lab.expect(PBX_UAS, "INVITE sip:+15551230042@127.0.0.10:5080");
    assert!(inv.header(HeaderName::Server).is_none());
    assert!(!String::from_utf8_lossy(&inv.to_bytes()).contains("carrier-call-9"));
    lab.send_msg(
        PBX_UAS,
        respond(
            &inv,
            200,
            Some("pbx-uas"),
            Some("<sip:s@127.0.0.10:5080>"),
            true,
        ),
    );
    let ok = lab.expect(CARRIER, "200 OK");
    assert_eq!(ok.call_id(), Some("carrier-call-9"));
    assert!(
        ok.header(HeaderName::Server).is_none(),
        "product strings stay behind"
    );
    let ack = in_dialog("ACK", &ok, true, 7, "z9hG4bKcack", &contact_of(&ok));
    lab.send_msg(CARRIER, ack);
    lab.expect(PBX_UAS, "ACK sip:s@127.0.0.10:5080");
    let bye = in_dialog("BYE", &ok, true, 8, "z9hG4bKcbye2", &contact_of(&ok));
    lab.send_msg(CARRIER, bye);
    let pbx_bye = lab.expect(PBX_UAS, "BYE");
    lab.send_msg(PBX_UAS, respond(&pbx_bye, 200, None, None, false));
    lab.expect(CARRIER, "200 OK");
    lab.assert_clean();
}

#[test]
fn routing_refusals() {
    let mut lab = Lab::new();
    lab.send(CARRIER, &carrier_invite("+15559990000", "z9hG4bKnotours"));
    lab.expect(CARRIER, "404");
    lab.send(
        "198.51.100.7:5060",
        &pbx_invite("+15557654321", "z9hG4bKstranger"),
    );
    // A stranger is a phone until it proves otherwise: it is asked for credentials.
    let rsp = lab.expect("198.51.100.7:5060", "407 Proxy Authentication Required");
    assert!(rsp.header(HeaderName::ProxyAuthenticate).is_some());
    lab.assert_clean();
}

#[test]
fn cancel_before_answer() {
    let mut lab = Lab::new();
    lab.send(CARRIER, &carrier_invite("+15551230042", "z9hG4bKc2"));
    let inv = lab.expect(PBX_UAS, "INVITE");
    lab.send_msg(PBX_UAS, respond(&inv, 180, Some("pbx-uas"), None, false));
    lab.expect(CARRIER, "180 Ringing");
    let cancel = cancel_of(&carrier_invite("+15551230042", "z9hG4bKc2"));
    // The same CANCEL from a stranger (who learnt the branch) changes nothing.
    lab.send(STRANGER, &cancel);
    lab.expect(STRANGER, "481 Call/Transaction Does Not Exist");
    assert!(lab.take(CARRIER).is_empty(), "the call goes on");
    assert!(
        lab.take(PBX_UAS).is_empty(),
        "nothing cancelled toward the PBX"
    );
    lab.send(CARRIER, &cancel);
    let to_carrier = lab.take(CARRIER);
    let lines: Vec<String> = to_carrier.iter().map(first_line).collect();
    assert!(
        lines.contains(&"SIP/2.0 200 OK".to_owned())
            && lines.contains(&"SIP/2.0 487 Request Terminated".to_owned()),
        "{lines:?}"
    );
    let pbx_cancel = lab.expect(PBX_UAS, "CANCEL");
    assert_eq!(pbx_cancel.branch(), inv.branch());
    lab.send_msg(PBX_UAS, respond(&pbx_cancel, 200, None, None, false));
    lab.send_msg(PBX_UAS, respond(&inv, 487, Some("pbx-uas"), None, false));
    lab.expect(PBX_UAS, "ACK");
    // The carrier acknowledges the 487.
    let ack = carrier_invite("+15551230042", "z9hG4bKc2")
        .replace("INVITE sip", "ACK sip")
        .replace("7 INVITE", "7 ACK");
    let ack = ack.split("Content-Type").next().unwrap().replace(
        "To: <sip:+15551230042@127.0.0.1>",
        &format!(
            "To: <sip:+15551230042@127.0.0.1>;tag={}",
            to_carrier[0].to_tag().unwrap_or("x")
        ),
    ) + "Content-Length: 0\r\n\r\n";
    lab.send(CARRIER, &ack);
    assert_eq!(lab.stats().calls, 0);
    lab.assert_clean();
}

#[test]
fn busy_and_unavailable_pass_back_with_their_status() {
    for code in [486u16, 503] {
        let mut lab = Lab::new();
        lab.send(CARRIER, &carrier_invite("+15551230042", "z9hG4bKbusy"));
        let inv = lab.expect(PBX_UAS, "INVITE");
        lab.send_msg(PBX_UAS, respond(&inv, code, Some("pbx-uas"), None, false));
        lab.expect(PBX_UAS, "ACK");
        let r = lab.expect(CARRIER, &format!("SIP/2.0 {code}"));
        assert_eq!(r.to_tag().map(str::len), Some(16), "our tag, not the PBX's");
        assert_eq!(lab.stats().calls, 0);
        lab.assert_clean();
    }
}

#[test]
fn second_challenge_is_a_failure() {
    let mut lab = Lab::new();
    lab.send(PBX_UAC, &pbx_invite("+15557654321", "z9hG4bKpbx9"));
    for _ in 0..2 {
        let inv = lab
            .take(CARRIER)
            .into_iter()
            .find(|m| m.method() == Some(Method::Invite))
            .unwrap();
        let mut ch = respond(&inv, 407, Some("c407"), None, false);
        ch.push_header(
            HeaderName::ProxyAuthenticate,
            "Digest realm=\"carrier\", nonce=\"n2\", algorithm=SHA-256, qop=\"auth\"",
        )
        .unwrap();
        lab.send_msg(CARRIER, ch);
    }
    lab.expect(PBX_UAC, "403");
    lab.assert_clean();
}

/// The PBX cancels while the carrier's challenge is on its way: the challenge is not
/// answered with a new INVITE for a call nobody wants any more.
#[test]
fn a_challenge_that_crosses_a_cancel_is_not_answered() {
    let mut lab = Lab::new();
    let invite = pbx_invite("+15557654321", "z9hG4bKpbx10");
    lab.send(PBX_UAC, &invite);
    let inv = lab
        .take(CARRIER)
        .into_iter()
        .find(|m| m.method() == Some(Method::Invite))
        .unwrap();
    let cancel = cancel_of(&invite);
    lab.send(PBX_UAC, &cancel);
    let to_pbx: Vec<String> = lab.take(PBX_UAC).iter().map(first_line).collect();
    assert!(
        to_pbx.contains(&"SIP/2.0 487 Request Terminated".to_owned()),
        "{to_pbx:?}"
    );
    let mut ch = respond(&inv, 407, Some("c407"), None, false);
    ch.push_header(
        HeaderName::ProxyAuthenticate,
        "Digest realm=\"carrier\", nonce=\"n3\", algorithm=MD5, qop=\"auth\"",
    )
    .unwrap();
    lab.send_msg(CARRIER, ch);
    let to_carrier = lab.take(CARRIER);
    assert!(
        to_carrier
            .iter()
            .all(|m| m.method() != Some(Method::Invite)),
        "no authenticated INVITE after the CANCEL: {:?}",
        to_carrier.iter().map(first_line).collect::<Vec<_>>()
    );
    assert_eq!(lab.stats().calls, 0);
}

#[test]
fn reinvite_from_each_side() {
    let mut lab = Lab::new();
    let (b_invite, a_ok) = outbound_call(&mut lab);
    // From the PBX (A side).
    let mut re = in_dialog("INVITE", &a_ok, true, 102, "z9hG4bKre1", &contact_of(&a_ok));
    re.set_body(
        bytes::Bytes::from_static(SDP.as_bytes()),
        Some("application/sdp"),
    )
    .unwrap();
    lab.send_msg(PBX_UAC, re);
    let b_re = lab.expect(CARRIER, "INVITE sip:ua@127.0.0.3:5060");
    assert_eq!(b_re.call_id(), b_invite.call_id());
    lab.send_msg(
        CARRIER,
        respond(&b_re, 200, None, Some("<sip:ua@127.0.0.3:5060>"), true),
    );
    let a_re_ok = lab.expect(PBX_UAC, "200 OK");
    assert_eq!(a_re_ok.cseq().unwrap().seq, 102);
    lab.send_msg(
        PBX_UAC,
        in_dialog("ACK", &a_ok, true, 102, "z9hG4bKre1ack", &contact_of(&a_ok)),
    );
    let b_re_ack = lab.expect(CARRIER, "ACK");
    assert_eq!(b_re_ack.cseq().unwrap().seq, b_re.cseq().unwrap().seq);
    // From the carrier (B side).
    let b_ok = respond(&b_invite, 200, Some("carrier-tag"), None, false);
    let re2 = in_dialog(
        "INVITE",
        &b_ok,
        false,
        2,
        "z9hG4bKre2",
        "sip:127.0.0.1:5060",
    );
    lab.send_msg(CARRIER, re2);
    let a_re2 = lab.expect(PBX_UAC, "INVITE sip:asterisk@10.20.30.40:5070");
    lab.send_msg(
        PBX_UAC,
        respond(
            &a_re2,
            200,
            None,
            Some("<sip:asterisk@10.20.30.40:5070>"),
            true,
        ),
    );
    let b_re2_ok = lab.expect(CARRIER, "200 OK");
    assert_eq!(b_re2_ok.cseq().unwrap().seq, 2);
    lab.send_msg(
        CARRIER,
        in_dialog(
            "ACK",
            &b_ok,
            false,
            2,
            "z9hG4bKre2ack",
            "sip:127.0.0.1:5060",
        ),
    );
    lab.expect(PBX_UAC, "ACK");
    // UPDATE and INFO pass too.
    lab.send_msg(
        PBX_UAC,
        in_dialog("INFO", &a_ok, true, 103, "z9hG4bKinfo", &contact_of(&a_ok)),
    );
    let info = lab.expect(CARRIER, "INFO");
    lab.send_msg(CARRIER, respond(&info, 200, None, None, false));
    lab.expect(PBX_UAC, "200 OK");
    assert_eq!(lab.stats().calls, 1);
}

#[test]
fn max_duration_hangs_up_both_legs() {
    let mut lab = Lab::new();
    outbound_call(&mut lab);
    lab.advance(Duration::from_secs(3599));
    assert!(lab.take(CARRIER).is_empty());
    lab.advance(Duration::from_millis(1400));
    let b_bye = lab.expect(CARRIER, "BYE");
    let a_bye = lab.expect(PBX_UAC, "BYE");
    lab.advance(Duration::from_millis(200));
    let again = lab.take(CARRIER);
    assert_eq!(again.len(), 1, "timer E retransmits the unanswered BYE");
    assert_eq!(again[0].branch(), b_bye.branch());
    lab.take(PBX_UAC);
    assert!(
        b_bye
            .header(HeaderName::Reason)
            .unwrap()
            .contains("maximum call duration")
    );
    lab.send_msg(CARRIER, respond(&b_bye, 200, None, None, false));
    lab.send_msg(PBX_UAC, respond(&a_bye, 200, None, None, false));
    assert_eq!(lab.stats().calls, 0);
    lab.assert_clean();
}

#[test]
fn hangup_api_tears_down_a_call() {
    let mut lab = Lab::new();
    outbound_call(&mut lab);
    let id = lab.core.call_ids()[0];
    assert!(lab.core.hangup(lab.now, id, "trunk disabled"));
    lab.collect();
    let b_bye = lab.expect(CARRIER, "BYE");
    let a_bye = lab.expect(PBX_UAC, "BYE");
    lab.send_msg(CARRIER, respond(&b_bye, 200, None, None, false));
    lab.send_msg(PBX_UAC, respond(&a_bye, 200, None, None, false));
    lab.assert_clean();
}

#[test]
fn unanswered_call_times_out_and_timers_clean_up() {
    let mut lab = Lab::new();
    lab.send(CARRIER, &carrier_invite("+15551230042", "z9hG4bKlost"));
    // The PBX never answers: timer B (32 s) gives 408 to the carrier.
    lab.advance(Duration::from_secs(33));
    let got: Vec<String> = lab.take(CARRIER).iter().map(first_line).collect();
    assert!(got.iter().any(|l| l.starts_with("SIP/2.0 408")), "{got:?}");
    assert_eq!(lab.stats().calls, 0);
    lab.assert_clean();
}

#[test]
fn draining_refuses_new_calls() {
    let mut lab = Lab::new();
    lab.core.drain();
    lab.send(CARRIER, &carrier_invite("+15551230042", "z9hG4bKdrain"));
    lab.expect(CARRIER, "503");
}

#[test]
fn options_is_answered_locally() {
    let mut lab = Lab::new();
    // From the PBX's network: the full answer.
    lab.send("127.0.0.10:40000", "OPTIONS sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.10:40000;branch=z9hG4bKopt;rport\r\nFrom: <sip:probe@127.0.0.10>;tag=p\r\nTo: <sip:127.0.0.1:5060>\r\nCall-ID: opt1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
    let ok = lab.expect("127.0.0.10:40000", "200 OK");
    assert!(ok.header(HeaderName::Allow).is_some());
    let via = ok.top_via().unwrap();
    assert_eq!(via.rport(), Some(Some(40000)), "RFC 3581");
    assert_eq!(via.received(), Some("127.0.0.10"));
    // From the endpoint zone (a phone's keepalive, or a scanner): a bare 200 that says nothing
    // of what answers.
    lab.send(STRANGER, "OPTIONS sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.66:5060;branch=z9hG4bKopt2;rport\r\nFrom: <sip:probe@127.0.0.66>;tag=p\r\nTo: <sip:127.0.0.1:5060>\r\nCall-ID: opt2\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
    let ok = lab.expect(STRANGER, "200 OK");
    for h in ["Allow", "Supported", "Accept", "Server", "User-Agent"] {
        assert!(
            ok.headers().all(|r| !r.name_text.eq_ignore_ascii_case(h)),
            "{h} told to a stranger"
        );
    }
}

#[test]
fn a_bye_after_a_lost_ack_acknowledges_b_and_stops_2xx_retransmission() {
    let mut lab = Lab::new();
    let (_, ok) = inbound_call(&mut lab, "z9hG4bKlostack");
    // The carrier's ACK is lost; its BYE arrives instead.
    let bye = in_dialog(
        "BYE",
        &ok,
        true,
        8,
        "z9hG4bKbyeafterlostack",
        &contact_of(&ok),
    );
    lab.send_msg(CARRIER, bye);
    let to_pbx = lab.take(PBX_UAS);
    let lines: Vec<String> = to_pbx.iter().map(first_line).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("ACK sip:pbx@127.0.0.10:5080"),
        "the PBX's 2xx is acknowledged first: {lines:?}"
    );
    assert!(lines[1].starts_with("BYE"), "{lines:?}");
    lab.advance(Duration::from_secs(10));
    let again = lab.take(CARRIER);
    let invite_2xx = again
        .iter()
        .filter(|m| {
            m.status() == Some(StatusCode::OK) && m.cseq().unwrap().method == Method::Invite
        })
        .count();
    assert_eq!(
        invite_2xx,
        0,
        "the 2xx is no longer retransmitted: {:?}",
        again.iter().map(first_line).collect::<Vec<_>>()
    );
}

#[test]
fn reliable_provisional_responses_are_mapped_across_legs() {
    let mut lab = Lab::new();
    let invite = carrier_invite("+15551230042", "z9hG4bK100rel")
        .replace("Server: CarrierSBC\r\n", "Supported: 100rel\r\n");
    lab.send(CARRIER, &invite);
    let inv = lab.expect(PBX_UAS, "INVITE");
    assert!(
        inv.tokens(HeaderName::Supported)
            .unwrap()
            .contains(&"100rel")
    );
    // The PBX sends a reliable 183 with its own RSeq.
    let mut p183 = respond(
        &inv,
        183,
        Some("pbx-uas"),
        Some("<sip:s@127.0.0.10:5080>"),
        true,
    );
    p183.push_header(HeaderName::Require, "100rel").unwrap();
    p183.push_header(HeaderName::RSeq, "4711").unwrap();
    lab.send_msg(PBX_UAS, p183);
    let c183 = lab.expect(CARRIER, "183");
    assert!(
        c183.tokens(HeaderName::Require)
            .unwrap()
            .contains(&"100rel")
    );
    let a_rseq = c183.header(HeaderName::RSeq).unwrap().to_owned();
    assert_ne!(a_rseq, "4711", "the A leg gets the gateway's own RSeq");
    // The carrier PRACKs it; the PBX gets a PRACK for its own RSeq and CSeq.
    let mut prack = in_dialog("PRACK", &c183, true, 8, "z9hG4bKprack", &contact_of(&c183));
    prack
        .push_header(HeaderName::RAck, &format!("{a_rseq} 7 INVITE"))
        .unwrap();
    lab.send_msg(CARRIER, prack);
    let b_prack = lab.expect(PBX_UAS, "PRACK sip:s@127.0.0.10:5080");
    assert_eq!(
        b_prack.header(HeaderName::RAck),
        Some(format!("4711 {} INVITE", inv.cseq().unwrap().seq).as_str())
    );
    assert_eq!(b_prack.to_tag(), Some("pbx-uas"));
    lab.send_msg(PBX_UAS, respond(&b_prack, 200, None, None, false));
    lab.expect(CARRIER, "200 OK");
    lab.send_msg(
        PBX_UAS,
        respond(
            &inv,
            200,
            Some("pbx-uas"),
            Some("<sip:s@127.0.0.10:5080>"),
            true,
        ),
    );
    lab.expect(CARRIER, "200 OK");
}

#[test]
fn new_routes_apply_to_new_calls_only() {
    let mut lab = Lab::new();
    lab.send(CARRIER, &carrier_invite("+15551230042", "z9hG4bKold"));
    let inv = lab.expect(PBX_UAS, "INVITE");
    lab.send_msg(
        PBX_UAS,
        respond(
            &inv,
            200,
            Some("pbx-uas"),
            Some("<sip:s@127.0.0.10:5080>"),
            true,
        ),
    );
    let ok = lab.expect(CARRIER, "200 OK");
    lab.send_msg(
        CARRIER,
        in_dialog("ACK", &ok, true, 7, "z9hG4bKack", &contact_of(&ok)),
    );
    lab.expect(PBX_UAS, "ACK");
    // Reload: the PBX moves to another address.
    let moved = LAB_CONFIG.replace(
        "address = \"127.0.0.10:5080\"",
        "address = \"127.0.0.10:6080\"",
    );
    let cfg = Config::from_toml(&moved, None).unwrap();
    lab.core.set_routes(Routes::from_config(&cfg).unwrap());
    // The call in progress keeps its PBX leg.
    lab.send_msg(
        CARRIER,
        in_dialog("BYE", &ok, true, 8, "z9hG4bKbye", &contact_of(&ok)),
    );
    lab.expect(PBX_UAS, "BYE");
    // A new call goes to the new address.
    lab.send(
        CARRIER,
        &carrier_invite("+15551230042", "z9hG4bKnew").replace("carrier-call-9", "carrier-call-10"),
    );
    lab.expect("127.0.0.10:6080", "INVITE");
}

#[test]
fn ended_calls_leave_no_timers_behind() {
    // Ring and maximum-duration timers of ended calls must not pile up for hours (found in
    // the 10-minute soak: the heap kept one 4-hour entry per call).
    let mut lab = Lab::new();
    for n in 0..50 {
        let call_id = format!("carrier-call-{n}");
        lab.send(
            CARRIER,
            &carrier_invite("+15551230042", &format!("z9hG4bKt{n}"))
                .replace("carrier-call-9", &call_id),
        );
        let inv = lab.expect(PBX_UAS, "INVITE");
        lab.send_msg(
            PBX_UAS,
            respond(
                &inv,
                200,
                Some("pbx-uas"),
                Some("<sip:s@127.0.0.10:5080>"),
                true,
            ),
        );
        let ok = lab.expect(CARRIER, "200 OK");
        assert_eq!(
            lab.stats().call_timers,
            1,
            "one timer for the one call in progress"
        );
        lab.send_msg(
            CARRIER,
            in_dialog(
                "ACK",
                &ok,
                true,
                7,
                &format!("z9hG4bKa{n}"),
                &contact_of(&ok),
            ),
        );
        lab.expect(PBX_UAS, "ACK");
        lab.send_msg(
            CARRIER,
            in_dialog(
                "BYE",
                &ok,
                true,
                8,
                &format!("z9hG4bKb{n}"),
                &contact_of(&ok),
            ),
        );
        let bye = lab.expect(PBX_UAS, "BYE");
        lab.send_msg(PBX_UAS, respond(&bye, 200, None, None, false));
        lab.expect(CARRIER, "200 OK");
        assert_eq!(lab.stats().call_timers, 0);
    }
    lab.assert_clean();
}

// === phones: the registrar, calls to and from registered phones ===

#[test]
fn a_guessing_run_spread_over_many_sources_locks_the_account_against_strangers_only() {
    let mut lab = phone_lab();
    let contact = "<sip:1001@10.0.0.5:5062>";
    let ok = register_with_auth(
        &mut lab,
        udp(PHONE),
        &register("1001", contact, "", 1, "own-phone"),
        "1001",
        PW_1001,
    );
    assert_eq!(first_line(&ok), "SIP/2.0 200 OK");
    // 20 sources, one wrong guess each: none comes near max_retry, the account reaches
    // ban.account_max_retry (20).
    for i in 0..20 {
        let src = format!("127.0.5.{i}:5060");
        let r = register_with_auth(
            &mut lab,
            udp(&src),
            &register("1001", contact, "", 1, &format!("guess-{i}")),
            "1001",
            &format!("guess{i}"),
        );
        assert!(first_line(&r).starts_with("SIP/2.0 40"), "{r:?}");
    }
    // A 22nd source has the right password: it gets what a wrong one gets.
    let wrong = register_with_auth(
        &mut lab,
        udp("127.0.5.98:5060"),
        &register("1001", contact, "", 1, "wrong-again"),
        "1001",
        "not-it",
    );
    let right = register_with_auth(
        &mut lab,
        udp("127.0.5.99:5060"),
        &register("1001", contact, "", 1, "found-it"),
        "1001",
        PW_1001,
    );
    assert_eq!(first_line(&right), first_line(&wrong));
    assert_eq!(lab.stats().auth_failures, 22);
    // The account's own phone is not locked out.
    let ok = register_with_auth(
        &mut lab,
        udp(PHONE),
        &register("1001", contact, "", 1, "own-phone-2"),
        "1001",
        PW_1001,
    );
    assert_eq!(first_line(&ok), "SIP/2.0 200 OK");
    // Once the failures leave find_time (5 min), the lock is gone.
    lab.advance(Duration::from_secs(301));
    let r = register_with_auth(
        &mut lab,
        udp("127.0.5.99:5060"),
        &register("1001", contact, "", 1, "found-it-2"),
        "1001",
        PW_1001,
    );
    assert_eq!(first_line(&r), "SIP/2.0 200 OK");
}

/// A 200 that acknowledges a binding waits with its change (`take_durable`): the server
/// sends it only once the binding is stored. A challenge does not wait.
#[test]
fn the_answer_that_acknowledges_a_binding_waits_for_the_binding_to_be_stored() {
    let mut lab = phone_lab();
    let raw = register(
        "1001",
        "<sip:1001@10.0.0.5:5062>",
        "Expires: 600\r\n",
        1,
        "reg-held",
    );
    // The 401 goes out at once.
    lab.feed(udp(PHONE), raw.as_bytes());
    let challenge = lab.core.poll_transmit().expect("a 401 at once");
    let challenge = Message::parse(&challenge.bytes).unwrap();
    assert_eq!(first_line(&challenge), "SIP/2.0 401 Unauthorized");
    assert!(lab.core.take_durable().is_empty());
    let mut second = Message::parse(
        raw.replace("CSeq: 1 ", "CSeq: 2 ")
            .replace("branch=z9hG4bK", "branch=z9hG4bKa")
            .as_bytes(),
    )
    .unwrap();
    let creds = answer(&challenge, &second, "1001", PW_1001);
    second
        .push_header(HeaderName::Authorization, &creds)
        .unwrap();
    second.finish().unwrap();
    lab.feed(udp(PHONE), &second.to_bytes());
    // The 200 is not among what may leave now: it comes with the change it acknowledges.
    assert!(
        lab.core.poll_transmit().is_none(),
        "the 200 left before the binding was stored"
    );
    let durable = lab.core.take_durable();
    assert!(matches!(
        &durable.changes[..],
        [sipwarden_b2bua::LocationChange::Upsert(b)] if b.aor == "1001"
    ));
    assert_eq!(durable.answers.len(), 1);
    assert_eq!(durable.answers[0].dest, udp(PHONE));
    let ok = Message::parse(&durable.answers[0].bytes).unwrap();
    assert_eq!(first_line(&ok), "SIP/2.0 200 OK");
    assert!(lab.core.take_durable().is_empty(), "taken once");
}

#[test]
fn phone_registers_with_digest_and_is_bound_where_it_came_from() {
    let mut lab = phone_lab();
    let raw = register(
        "1001",
        "<sip:1001@10.0.0.5:5062>",
        "Expires: 600\r\n",
        1,
        "reg-a",
    );
    lab.send(PHONE, &raw);
    let ch = lab.expect(PHONE, "401 Unauthorized");
    // A client of no known family gets the one challenge every client answers.
    let offered: Vec<&str> = ch.header_values(HeaderName::WwwAuthenticate).collect();
    assert_eq!(offered.len(), 1, "{offered:?}");
    assert!(offered[0].contains("algorithm=MD5"));
    let ok = register_with_auth(&mut lab, udp(PHONE), &raw, "1001", PW_1001);
    assert_eq!(first_line(&ok), "SIP/2.0 200 OK");
    assert_eq!(
        ok.header(HeaderName::Contact),
        Some("<sip:1001@10.0.0.5:5062>;expires=600")
    );
    let b = lab.core.bindings("1001").to_vec();
    assert_eq!(b.len(), 1);
    assert_eq!(
        b[0].source,
        udp(PHONE),
        "reached where the REGISTER came from"
    );
    let changes = lab.take_location_changes();
    assert!(
        matches!(&changes[..], [sipwarden_b2bua::LocationChange::Upsert(x)] if x.aor == "1001")
    );
    assert_eq!(lab.stats().registrations, 1);
    // Nothing reached the PBX.
    assert!(lab.take(PBX_UAS).is_empty());
    // It expires on its own.
    lab.advance(Duration::from_secs(601));
    assert!(lab.core.bindings("1001").is_empty());
    assert!(matches!(
        &lab.take_location_changes()[..],
        [sipwarden_b2bua::LocationChange::Remove { aor, .. }] if aor == "1001"
    ));
}

#[test]
fn registration_lifetimes_and_removal() {
    let mut lab = phone_lab();
    let too_short = register(
        "1001",
        "<sip:1001@10.0.0.5:5062>",
        "Expires: 10\r\n",
        1,
        "reg-b",
    );
    let rsp = register_with_auth(&mut lab, udp(PHONE), &too_short, "1001", PW_1001);
    assert_eq!(first_line(&rsp), "SIP/2.0 423 Interval Too Brief");
    assert_eq!(rsp.header(HeaderName::MinExpires), Some("60"));
    assert!(lab.core.bindings("1001").is_empty());
    // Longer than the maximum is shortened; the contact parameter wins over the header.
    let long = register(
        "1001",
        "<sip:1001@10.0.0.5:5062>;expires=99999, <sip:1001@10.0.0.5:5064>",
        "Expires: 300\r\n",
        1,
        "reg-c",
    );
    let rsp = register_with_auth(&mut lab, udp(PHONE), &long, "1001", PW_1001);
    assert_eq!(first_line(&rsp), "SIP/2.0 200 OK");
    let mut granted: Vec<&str> = rsp.header_values(HeaderName::Contact).collect();
    granted.sort_unstable();
    assert_eq!(
        granted,
        [
            "<sip:1001@10.0.0.5:5062>;expires=3600",
            "<sip:1001@10.0.0.5:5064>;expires=300"
        ]
    );
    // A refresh with a higher CSeq, then an older CSeq of the same Call-ID: it changes
    // nothing (RFC 3261 §10.3 step 7). The same CSeq again is a retransmission (200).
    let refresh = register(
        "1001",
        "<sip:1001@10.0.0.5:5062>",
        "Expires: 600\r\n",
        4,
        "reg-c",
    );
    let rsp = register_with_auth(&mut lab, udp(PHONE), &refresh, "1001", PW_1001);
    assert_eq!(first_line(&rsp), "SIP/2.0 200 OK");
    let stale = register(
        "1001",
        "<sip:1001@10.0.0.5:5062>",
        "Expires: 600\r\n",
        1,
        "reg-c",
    )
    .replace("z9hG4bKreg1", "z9hG4bKstale");
    let rsp = register_with_auth(&mut lab, udp(PHONE), &stale, "1001", PW_1001);
    assert_eq!(first_line(&rsp), "SIP/2.0 500 Out Of Order");
    // Contact: * needs Expires: 0.
    let star_bad = register("1001", "*", "Expires: 60\r\n", 1, "reg-d");
    let rsp = register_with_auth(&mut lab, udp(PHONE), &star_bad, "1001", PW_1001);
    assert_eq!(first_line(&rsp), "SIP/2.0 400 Contact * Needs Expires 0");
    let star = register("1001", "*", "Expires: 0\r\n", 1, "reg-e");
    let rsp = register_with_auth(&mut lab, udp(PHONE), &star, "1001", PW_1001);
    assert_eq!(first_line(&rsp), "SIP/2.0 200 OK");
    assert!(rsp.header(HeaderName::Contact).is_none());
    assert!(lab.core.bindings("1001").is_empty());
    assert_eq!(lab.stats().registrations, 0);
}

#[test]
fn a_full_location_table_answers_503_and_counts_it() {
    let mut lab = Lab::with(&format!(
        "{LAB_CONFIG}\n[accounts]\nfile = \"{LAB_ACCOUNTS}\"\n[registrar]\nmax_bindings = 1\n"
    ));
    let first = register(
        "1001",
        "<sip:1001@10.0.0.5:5062>",
        "Expires: 600\r\n",
        1,
        "full-1",
    );
    let rsp = register_with_auth(&mut lab, udp(PHONE), &first, "1001", PW_1001);
    assert_eq!(first_line(&rsp), "SIP/2.0 200 OK");
    let _ = lab.take_location_changes();
    let second = register(
        "1001",
        "<sip:1001@10.0.0.5:5072>",
        "Expires: 600\r\n",
        1,
        "full-2",
    );
    let rsp = register_with_auth(&mut lab, udp(PHONE2), &second, "1001", PW_1001);
    assert_eq!(first_line(&rsp), "SIP/2.0 503 Too Many Registrations");
    assert_eq!(lab.core.bindings("1001").len(), 1);
    assert!(lab.take_location_changes().is_empty());
    let s = lab.stats();
    assert_eq!(
        (
            s.registrations,
            s.registrations_accepted,
            s.registrations_refused,
            s.registrations_table_full
        ),
        (1, 1, 1, 1)
    );
}

#[test]
fn wrong_password_and_unknown_user_get_the_same_answers() {
    // Per client family (the challenges depend on the User-Agent, never on the account):
    // no User-Agent and JsSIP get one MD5 challenge, Linphone SHA-256 then MD5.
    for (ua, algorithms) in [
        ("", &["MD5"][..]),
        ("User-Agent: JsSIP 3.10.1\r\n", &["MD5"][..]),
        (
            "User-Agent: Linphone-cli/5.1.65 (belle-sip/5.1.67)\r\n",
            &["SHA-256", "MD5"][..],
        ),
    ] {
        let answers = answers_to_failures(ua);
        assert_eq!(
            answers[0], answers[1],
            "{ua}: an attacker cannot tell a wrong password from an unknown account"
        );
        let offered: Vec<String> = answers[0][0]
            .iter()
            .filter(|h| h.starts_with("WWW-Authenticate:"))
            .map(|h| {
                h.split("algorithm=")
                    .nth(1)
                    .and_then(|a| a.split(',').next())
                    .unwrap_or("")
                    .to_owned()
            })
            .collect();
        assert_eq!(offered, algorithms, "{ua}");
    }
}

/// `raw` (a phone's REGISTER with CSeq 1) again from the phone with CSeq `cseq`, a branch of
/// its own and the Authorization `creds` makes for it: returns the one answer.
fn register_again(
    lab: &mut Lab,
    raw: &str,
    cseq: u32,
    creds: impl FnOnce(&Message) -> String,
) -> Message {
    let mut m = Message::parse(
        raw.replace("CSeq: 1 ", &format!("CSeq: {cseq} "))
            .replace("z9hG4bKreg1", &format!("z9hG4bKreg{cseq}"))
            .as_bytes(),
    )
    .unwrap();
    let value = creds(&m);
    m.push_header(HeaderName::Authorization, &value).unwrap();
    m.finish().unwrap();
    lab.send_from(udp(PHONE), m);
    let mut got = lab.take(PHONE);
    assert_eq!(got.len(), 1, "one answer to CSeq {cseq}: {got:?}");
    got.remove(0)
}

/// The answers to a wrong password for 1001 and to an unknown account (1099), from a phone
/// with the `ua` header line: each a list of the answers' header lines, nonces and tags
/// blanked.
fn answers_to_failures(ua: &str) -> Vec<Vec<Vec<String>>> {
    let mut answers = Vec::new();
    for (user, pw) in [("1001", "not-the-password"), ("1099", PW_1001)] {
        let mut lab = phone_lab();
        let raw = register(
            user,
            "<sip:x@10.0.0.5:5062>",
            &format!("Expires: 600\r\n{ua}"),
            1,
            "reg-w",
        );
        lab.send(PHONE, &raw);
        let ch = lab.expect(PHONE, "401 Unauthorized");
        let mut seq = vec![ch.clone()];
        let mut prev = ch;
        for cseq in 2..=3 {
            let got = register_again(&mut lab, &raw, cseq, |m| answer(&prev, m, user, pw));
            prev = got.clone();
            seq.push(got);
        }
        let lines: Vec<String> = seq.iter().map(first_line).collect();
        assert_eq!(
            lines,
            [
                "SIP/2.0 401 Unauthorized",
                "SIP/2.0 401 Unauthorized",
                "SIP/2.0 403 Forbidden"
            ],
            "{user} {ua}"
        );
        assert!(lab.core.bindings(user).is_empty());
        assert_eq!(lab.stats().auth_failures, 2);
        assert!(lab.take(PBX_UAS).is_empty(), "never reaches the PBX");
        // Compare the answers' header names and values, with the nonces and tags blanked.
        let shape: Vec<Vec<String>> = seq
            .iter()
            .map(|m| {
                m.headers()
                    .filter(|h| h.name != HeaderName::To && h.name != HeaderName::From)
                    .map(|h| {
                        let v = h.value.to_owned();
                        let v = match v.split_once("nonce=\"") {
                            Some((a, b)) => {
                                format!("{a}nonce=\"…{}", b.split_once('"').map_or("", |x| x.1))
                            }
                            None => v,
                        };
                        format!("{}: {v}", h.name_text)
                    })
                    .collect()
            })
            .collect();
        answers.push(shape);
    }
    answers
}

/// A phone that answers with an algorithm it was not offered (SHA-256 to a single MD5
/// challenge, with the right password), or with credentials that do not parse, gets what any
/// failure gets: a fresh challenge, then 403; each is counted and logged with its reason.
#[test]
fn answers_with_an_algorithm_not_offered_or_unreadable_credentials_fail() {
    use sipwarden_sip::digest::{self, Algorithm, Qop, ResponseInput};
    let sha256 = |challenge: &Message, req: &Message| {
        let ch = challenge
            .auths(HeaderName::WwwAuthenticate)
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(ch.algorithm().as_deref(), Some("MD5"), "offered MD5 only");
        let nonce = ch.nonce().unwrap();
        let uri = req.request_uri_str().unwrap();
        let input = ResponseInput {
            algorithm: Algorithm::Sha256,
            method: "REGISTER",
            digest_uri: uri,
            nonce: &nonce,
            cnonce: Some("c0ffee"),
            nc: Some("00000001"),
            qop: Some(Qop::Auth),
            body: b"",
        };
        let r = digest::response("1001", "sipwarden.lab", PW_1001, &input);
        format!(
            "Digest username=\"1001\", realm=\"sipwarden.lab\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{}\", algorithm=SHA-256, qop=auth, nc=00000001, cnonce=\"c0ffee\"",
            r.as_str()
        )
    };
    let unreadable =
        |_: &Message, _: &Message| "Digest username=\"1001, realm=\"sipwarden.lab".to_owned();
    type Creds<'a> = &'a dyn Fn(&Message, &Message) -> String;
    let cases: [(&str, Creds<'_>); 2] = [
        ("algorithm not offered", &sha256),
        ("malformed credentials", &unreadable),
    ];
    for (why, creds) in cases {
        let mut lab = phone_lab();
        let raw = register(
            "1001",
            "<sip:x@10.0.0.5:5062>",
            "Expires: 600\r\n",
            1,
            "reg-x",
        );
        lab.send(PHONE, &raw);
        let mut prev = lab.expect(PHONE, "401 Unauthorized");
        let mut lines = Vec::new();
        for cseq in 2..=3 {
            let got = register_again(&mut lab, &raw, cseq, |m| creds(&prev, m));
            lines.push(first_line(&got));
            prev = got;
        }
        assert_eq!(
            lines,
            ["SIP/2.0 401 Unauthorized", "SIP/2.0 403 Forbidden"],
            "{why}"
        );
        assert!(lab.core.bindings("1001").is_empty(), "{why}");
        assert_eq!(lab.stats().auth_failures, 2, "{why}");
        let failures: Vec<_> = lab
            .core
            .take_security_events()
            .into_iter()
            .filter(|e| e.kind.is_failure())
            .collect();
        assert_eq!(failures.len(), 2, "{why}: {failures:?}");
        assert!(failures.iter().all(|e| e.reason == why), "{failures:?}");
    }
}

#[test]
fn pbx_call_forks_to_every_contact_and_the_first_answer_wins() {
    let mut lab = phone_lab();
    for (src, call_id) in [(PHONE, "reg-1"), (PHONE2, "reg-2")] {
        let contact = format!("<sip:1001@{src}>");
        let raw = register("1001", &contact, "Expires: 600\r\n", 1, call_id);
        let ok = register_with_auth(&mut lab, udp(src), &raw, "1001", PW_1001);
        assert_eq!(first_line(&ok), "SIP/2.0 200 OK");
    }
    assert_eq!(lab.core.bindings("1001").len(), 2);
    lab.send(PBX_UAC, &pbx_invite("1001", "z9hG4bKtophone"));
    let inv1 = lab.expect(PHONE, "INVITE");
    let inv2 = lab.expect(PHONE2, "INVITE");
    assert_eq!(inv1.request_uri_str(), Some("sip:1001@127.0.0.2:5062"));
    assert_eq!(inv2.request_uri_str(), Some("sip:1001@127.0.0.2:5072"));
    assert_ne!(inv1.call_id(), inv2.call_id());
    assert!(
        inv1.tokens(HeaderName::Supported)
            .unwrap_or_default()
            .iter()
            .all(|t| *t != "100rel"),
        "no reliable provisionals across forks"
    );
    lab.send_msg(
        PHONE,
        respond(
            &inv1,
            180,
            Some("p1"),
            Some("<sip:1001@127.0.0.2:5062>"),
            false,
        ),
    );
    lab.expect(PBX_UAC, "180 Ringing");
    lab.send_msg(
        PHONE2,
        respond(
            &inv2,
            200,
            Some("p2"),
            Some("<sip:1001@127.0.0.2:5072>"),
            true,
        ),
    );
    let ok = lab.expect(PBX_UAC, "200 OK");
    let cancel = lab.expect(PHONE, "CANCEL");
    assert_eq!(cancel.branch(), inv1.branch());
    lab.send_msg(PHONE, respond(&cancel, 200, None, None, false));
    lab.send_msg(PHONE, respond(&inv1, 487, Some("p1"), None, false));
    lab.expect(PHONE, "ACK");
    let ack = in_dialog("ACK", &ok, true, 101, "z9hG4bKpack", &contact_of(&ok));
    lab.send_msg(PBX_UAC, ack);
    lab.expect(PHONE2, "ACK");
    // The winner's dialog carries the call: BYE from the phone reaches the PBX.
    let bye = in_dialog(
        "BYE",
        &respond(&inv2, 200, Some("p2"), None, false),
        false,
        1,
        "z9hG4bKpbye",
        "sip:127.0.0.1:5060",
    );
    lab.send_msg(PHONE2, bye);
    let pbx_bye = lab.expect(PBX_UAC, "BYE");
    lab.send_msg(PBX_UAC, respond(&pbx_bye, 200, None, None, false));
    lab.expect(PHONE2, "200 OK");
    lab.assert_clean();
}

#[test]
fn pbx_call_to_an_account_not_registered_or_without_srtp() {
    let mut lab = phone_lab();
    lab.send(PBX_UAC, &pbx_invite("1003", "z9hG4bKnoreg"));
    lab.expect(PBX_UAC, "480 Not Registered");
    // 1002 must use SRTP; it registers over TLS only.
    let tls = Peer {
        transport: Transport::Tls,
        addr: addr(PHONE),
        flow: Some(3),
    };
    let raw = register(
        "1002",
        "<sips:1002@10.0.0.5:5061>",
        "Expires: 600\r\n",
        1,
        "reg-s",
    );
    let ok = register_with_auth(&mut lab, tls, &raw, "1002", "t7Vq!2mZ#8rLw@4xPn6s");
    assert_eq!(first_line(&ok), "SIP/2.0 200 OK");
    lab.send(PBX_UAC, &pbx_invite("1002", "z9hG4bKplain"));
    lab.expect(PBX_UAC, "488 SRTP Required");
    // Over UDP the same credentials are refused like any other failure.
    let raw = register(
        "1002",
        "<sip:1002@10.0.0.5:5062>",
        "Expires: 600\r\n",
        1,
        "reg-u",
    );
    let rsp = register_with_auth(&mut lab, udp(PHONE), &raw, "1002", "t7Vq!2mZ#8rLw@4xPn6s");
    assert_eq!(first_line(&rsp), "SIP/2.0 401 Unauthorized");
}

#[test]
fn phone_registered_over_tcp_is_called_on_its_connection() {
    let mut lab = phone_lab();
    let tcp = Peer {
        transport: Transport::Tcp,
        addr: addr(PHONE),
        flow: Some(42),
    };
    let raw = register(
        "1001",
        "<sip:1001@10.0.0.5:5062;transport=tcp>",
        "Expires: 600\r\n",
        1,
        "reg-t",
    );
    let ok = register_with_auth(&mut lab, tcp, &raw, "1001", PW_1001);
    assert_eq!(first_line(&ok), "SIP/2.0 200 OK");
    lab.send(PBX_UAC, &pbx_invite("1001", "z9hG4bKtcp"));
    let got = lab.take_with_peer(PHONE);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1.method(), Some(Method::Invite));
    assert_eq!(got[0].0, tcp, "over the connection it registered on");
    assert_eq!(got[0].1.top_via().unwrap().transport_text, "TCP");
}

#[test]
fn phone_call_is_authenticated_and_asserted_as_the_account() {
    let mut lab = phone_lab();
    let raw = format!(
        "INVITE sip:5551234@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKph1;rport\r\nMax-Forwards: 70\r\nFrom: \"Boss\" <sip:+15550000000@127.0.0.1>;tag=ph\r\nTo: <sip:5551234@127.0.0.1>\r\nCall-ID: phone-call-1\r\nCSeq: 1 INVITE\r\nContact: <sip:1001@10.0.0.5:5062>\r\nP-Asserted-Identity: <sip:+15559999999@evil.example>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    );
    let inv = invite_with_auth(&mut lab, udp(PHONE), &raw, "z9hG4bKph1");
    assert_eq!(inv.request_uri_str(), Some("sip:5551234@127.0.0.10:5080"));
    assert_eq!(
        inv.header(HeaderName::PAssertedIdentity),
        Some("<sip:1001@127.0.0.1>"),
        "the account, never what the phone claimed"
    );
    assert_eq!(inv.from_header().unwrap().uri.user(), Some("1001"));
    assert!(inv.header(HeaderName::ProxyAuthorization).is_none());
    assert!(
        lab.take(CARRIER).is_empty(),
        "a phone never reaches a trunk directly"
    );
}

#[test]
fn a_phone_call_answers_only_to_the_phone_that_made_it() {
    let mut lab = phone_lab();
    let raw = format!(
        "INVITE sip:5551234@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKph1;rport\r\nMax-Forwards: 70\r\nFrom: <sip:1001@127.0.0.1>;tag=ph\r\nTo: <sip:5551234@127.0.0.1>\r\nCall-ID: phone-call-2\r\nCSeq: 1 INVITE\r\nContact: <sip:1001@10.0.0.5:5062>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    );
    let inv = invite_with_auth(&mut lab, udp(PHONE), &raw, "z9hG4bKph1");
    lab.send_msg(
        PBX_UAS,
        respond(
            &inv,
            200,
            Some("pbx-tag"),
            Some("<sip:5551234@127.0.0.10:5080>"),
            true,
        ),
    );
    let ok = lab.expect(PHONE, "200 OK");
    let bye = |branch: &str| in_dialog("BYE", &ok, true, 3, branch, &contact_of(&ok));
    // From another address, ending this call takes 1001's credentials: a stranger who
    // learnt the identifiers gets a challenge, and a wrong answer a 403. (The same address
    // from another port needs none: a NAT may rebind the phone's port mid-call.)
    let forged = bye("z9hG4bKforged");
    lab.send_msg(STRANGER, forged.clone());
    let ch = lab.expect(STRANGER, "407 Proxy Authentication Required");
    let mut guess = in_dialog("BYE", &ok, true, 4, "z9hG4bKforged2", &contact_of(&ok));
    let creds = answer(&ch, &guess, "1001", "not-the-password");
    guess
        .push_header(HeaderName::ProxyAuthorization, &creds)
        .unwrap();
    guess.finish().unwrap();
    lab.send_msg(STRANGER, guess);
    lab.expect(STRANGER, "407 Proxy Authentication Required");
    assert!(
        lab.take(PBX_UAS).is_empty(),
        "no forged BYE reaches the PBX"
    );
    // The phone, moved to another address, proves itself and hangs up.
    let moved = "127.0.0.67:5062";
    lab.send_msg(moved, bye("z9hG4bKmoved1"));
    let ch = lab.expect(moved, "407 Proxy Authentication Required");
    let mut again = in_dialog("BYE", &ok, true, 5, "z9hG4bKmoved2", &contact_of(&ok));
    let creds = answer(&ch, &again, "1001", PW_1001);
    again
        .push_header(HeaderName::ProxyAuthorization, &creds)
        .unwrap();
    again.finish().unwrap();
    lab.send_msg(moved, again);
    // (With the ACK the phone never sent: its BYE proves it got the 200.)
    let b_bye = lab
        .take(PBX_UAS)
        .into_iter()
        .find(|m| m.method() == Some(Method::Bye))
        .expect("the phone's BYE reaches the PBX");
    assert!(b_bye.header(HeaderName::ProxyAuthorization).is_none());
    lab.send_msg(PBX_UAS, respond(&b_bye, 200, None, None, false));
    lab.expect(moved, "200 OK");
}

#[test]
fn udp_phones_get_keepalive_options() {
    let mut lab = Lab::with(&format!(
        "{LAB_CONFIG}\n[accounts]\nfile = \"{LAB_ACCOUNTS}\"\nalgorithms = [\"MD5\"]\n[registrar]\nudp_ping = \"30s\"\n"
    ));
    let raw = register(
        "1001",
        "<sip:1001@10.0.0.5:5062>",
        "Expires: 600\r\n",
        1,
        "ka-1",
    );
    let ok = register_with_auth(&mut lab, udp(PHONE), &raw, "1001", PW_1001);
    assert_eq!(first_line(&ok), "SIP/2.0 200 OK");
    let tcp = Peer {
        transport: Transport::Tcp,
        addr: addr(PHONE2),
        flow: Some(5),
    };
    let raw = register(
        "1001",
        "<sip:1001@10.0.0.5:5072;transport=tcp>",
        "Expires: 600\r\n",
        1,
        "ka-2",
    );
    let ok = register_with_auth(&mut lab, tcp, &raw, "1001", PW_1001);
    assert_eq!(first_line(&ok), "SIP/2.0 200 OK");
    lab.advance(Duration::from_secs(30));
    let ping = lab.expect(PHONE, "OPTIONS");
    assert_eq!(ping.request_uri_str(), Some("sip:1001@10.0.0.5:5062"));
    assert!(
        lab.take(PHONE2).is_empty(),
        "TCP phones keep their own flow alive (CRLF)"
    );
    lab.send_msg(PHONE, respond(&ping, 200, Some("ph"), None, false));
    lab.advance(Duration::from_secs(30));
    lab.expect(PHONE, "OPTIONS");
    assert_eq!(lab.stats().keepalives_sent, 2);
}

#[test]
fn phone_over_tls_gets_a_contact_of_its_own_scheme() {
    for (ruri, want) in [
        ("sip:5551234@127.0.0.1:5061;transport=tls", "sip:"),
        ("sips:5551234@127.0.0.1:5061", "sips:"),
    ] {
        let mut lab = phone_lab();
        let tls = Peer {
            transport: Transport::Tls,
            addr: addr(PHONE),
            flow: Some(7),
        };
        let raw = format!(
            "INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/TLS 10.0.0.5:5063;branch=z9hG4bKtls1;rport\r\nMax-Forwards: 70\r\nFrom: <sip:1001@127.0.0.1>;tag=ph\r\nTo: <sip:5551234@127.0.0.1>\r\nCall-ID: phone-tls-1\r\nCSeq: 1 INVITE\r\nContact: <sip:1001@10.0.0.5:5063;transport=tls>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
            SDP.len()
        );
        let inv = invite_with_auth(&mut lab, tls, &raw, "z9hG4bKtls1");
        let ok = respond(
            &inv,
            200,
            Some("p1"),
            Some("<sip:pbx@127.0.0.10:5080>"),
            true,
        );
        lab.send_msg(PBX_UAS, ok);
        let ok = lab.expect(PHONE, "200 OK");
        let contact = contact_of(&ok);
        assert!(contact.starts_with(want), "{ruri}: {contact}");
        if want == "sip:" {
            assert!(contact.ends_with(";transport=tls"), "{contact}");
        }
    }
}

#[test]
fn global_call_limit_answers_503_with_retry_after() {
    let mut lab = Lab::with(&format!(
        "{LAB_CONFIG}\n[ratelimit]\nglobal_invite_cps = 1.0\n"
    ));
    lab.send(CARRIER, &carrier_invite("+15551230042", "z9hG4bKg1"));
    lab.expect(PBX_UAS, "INVITE");
    let second =
        carrier_invite("+15551230042", "z9hG4bKg2").replace("carrier-call-9", "carrier-call-10");
    lab.send(CARRIER, &second);
    let busy = lab.expect(CARRIER, "503 Busy, Retry Later");
    assert_eq!(busy.header(HeaderName::RetryAfter), Some("1"));
    assert_eq!(lab.stats().defence.global_limited, 1);
    assert!(
        lab.take(PBX_UAS).is_empty(),
        "the PBX never saw the second call"
    );
}

#[test]
fn a_flood_from_the_endpoint_zone_is_banned_and_then_dropped_before_anything_else() {
    let mut lab = Lab::with(&format!(
        "{LAB_CONFIG}\n[ratelimit]\noptions_rps = 1.0\noptions_burst = 3.0\n"
    ));
    let opt = |i: u32| {
        format!(
            "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.66:5060;branch=z9hG4bKfl{i}\r\nFrom: <sip:a@127.0.0.66>;tag=f\r\nTo: <sip:127.0.0.1>\r\nCall-ID: fl{i}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
    };
    for i in 0..3 {
        lab.send("127.0.0.66:5060", &opt(i));
        lab.expect("127.0.0.66:5060", "200 OK");
    }
    lab.send("127.0.0.66:5060", &opt(3));
    assert!(
        lab.take("127.0.0.66:5060").is_empty(),
        "over the limit: banned, no answer"
    );
    for i in 4..10 {
        lab.send("127.0.0.66:5060", &opt(i));
    }
    assert!(lab.take("127.0.0.66:5060").is_empty());
    let d = lab.stats().defence;
    assert_eq!((d.bans_flood, d.bans_active, d.banned_dropped), (1, 1, 6));
    let changes = lab.core.take_ban_changes();
    assert!(
        matches!(&changes[..], [sipwarden_b2bua::BanChange::Banned(e)] if e.reason == "OPTIONS flood")
    );
    // The ban ends after ban_time (default 1 h) and the source is heard again.
    lab.advance(Duration::from_secs(3601));
    lab.send("127.0.0.66:5060", &opt(11));
    lab.expect("127.0.0.66:5060", "200 OK");
    // The carrier is never flood-limited.
    for i in 0..10 {
        let m = opt(100 + i).replace("127.0.0.66", "127.0.0.3");
        lab.send(CARRIER, &m);
    }
    assert_eq!(lab.take(CARRIER).len(), 10);
}

#[test]
fn an_unauthenticated_invite_gets_one_stateless_407_and_nothing_more() {
    let mut lab = phone_lab();
    let raw = format!(
        "INVITE sip:5551234@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKamp;rport\r\nMax-Forwards: 70\r\nFrom: <sip:x@127.0.0.1>;tag=amp\r\nTo: <sip:5551234@127.0.0.1>\r\nCall-ID: amp-1\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    );
    lab.send(PHONE, &raw);
    let got = lab.take(PHONE);
    assert_eq!(got.len(), 1, "no 100 Trying, just the 407");
    assert_eq!(
        first_line(&got[0]),
        "SIP/2.0 407 Proxy Authentication Required"
    );
    assert_eq!(lab.stats().server_transactions, 0, "no state kept");
    lab.advance(Duration::from_secs(40));
    assert!(lab.take(PHONE).is_empty(), "never retransmitted");
}

/// A call policy written outside the core: refuses numbers with a prefix. Plugging it in
/// takes `set_policies` and nothing else; the dispatcher does not know it exists.
/// A policy whose refusal carries a header value no message may hold (a line break).
#[derive(Debug)]
struct RefuseWithABrokenHeader;

impl sipwarden_stages::CallPolicy for RefuseWithABrokenHeader {
    fn name(&self) -> &'static str {
        "broken_header"
    }

    fn admit(&mut self, _call: &sipwarden_stages::CallRequest<'_>) -> sipwarden_stages::Verdict {
        sipwarden_stages::Verdict::Reply {
            status: StatusCode::SERVICE_UNAVAILABLE,
            reason: sipwarden_stages::Reason::Policy("broken"),
            phrase: None,
            headers: vec![(HeaderName::RetryAfter, "60\r\nX-Injected: 1".to_owned())],
        }
    }
}

/// A refusal that cannot be built whole is not sent without the header that would not fit:
/// it is counted as an internal error instead.
#[test]
fn an_answer_that_cannot_be_built_whole_is_not_sent_half_built() {
    let mut lab = Lab::new();
    lab.core
        .set_policies(vec![Box::new(RefuseWithABrokenHeader)]);
    lab.send(PBX_UAC, &pbx_invite("+15557654321", "z9hG4bKbroken"));
    let answers: Vec<String> = lab.take(PBX_UAC).iter().map(first_line).collect();
    assert!(
        answers.iter().all(|l| !l.starts_with("SIP/2.0 503")),
        "a 503 without its Retry-After went out: {answers:?}"
    );
    assert!(lab.take(CARRIER).is_empty());
    assert_eq!(lab.stats().internal_build_errors, 1);
}

#[derive(Debug)]
struct RefusePrefix(&'static str);

impl sipwarden_stages::CallPolicy for RefusePrefix {
    fn name(&self) -> &'static str {
        "refuse_prefix"
    }

    fn admit(&mut self, call: &sipwarden_stages::CallRequest<'_>) -> sipwarden_stages::Verdict {
        if call.callee.starts_with(self.0) {
            return sipwarden_stages::Verdict::Reply {
                status: StatusCode::FORBIDDEN,
                reason: sipwarden_stages::Reason::Policy("blocked_prefix"),
                phrase: Some("Destination Blocked"),
                headers: vec![(HeaderName::Reason, "Q.850;cause=21".to_owned())],
            };
        }
        sipwarden_stages::Verdict::Continue
    }
}

#[test]
fn a_policy_plugged_in_refuses_a_prefix_and_nothing_else() {
    let mut lab = Lab::new();
    lab.core.set_policies(vec![
        Box::new(sipwarden_policy::SrtpRequired),
        Box::new(RefusePrefix("+881")),
    ]);
    // +881 (a satellite network): refused with the policy's answer, never reaches a trunk.
    lab.send(PBX_UAC, &pbx_invite("+8816123456", "z9hG4bKsat"));
    let answers = lab.take(PBX_UAC);
    let refused = answers
        .iter()
        .find(|m| m.status().is_some_and(|s| s.as_u16() == 403))
        .unwrap_or_else(|| panic!("no 403: {answers:?}"));
    assert_eq!(first_line(refused), "SIP/2.0 403 Destination Blocked");
    assert_eq!(refused.header(HeaderName::Reason), Some("Q.850;cause=21"));
    assert!(lab.take(CARRIER).is_empty(), "nothing reached the carrier");
    assert_eq!(lab.stats().calls_started, 0);
    let counted = lab
        .core
        .verdict_counts()
        .into_iter()
        .find(|r| r.0 == "refuse_prefix" && r.1 == "reply")
        .map(|r| (r.2, r.3));
    assert_eq!(counted, Some(("blocked_prefix", 1)));
    let events = lab.core.take_call_events();
    let refused_id = events.first().map(|e| e.call);
    let refused: Vec<_> = events.into_iter().map(|e| e.kind).collect();
    assert!(
        matches!(
            &refused[..],
            [CallEventKind::Refused {
                stage: "refuse_prefix",
                status: 403,
                reason: sipwarden_stages::Reason::Policy("blocked_prefix"),
                ..
            }]
        ),
        "{refused:#?}"
    );
    // Any other number goes out as before (the policy said Continue).
    let (_b_invite, _ok) = outbound_call(&mut lab);
    assert_eq!(lab.stats().calls_started, 1);
    let started = lab.core.take_call_events().first().map(|e| e.call);
    assert!(started.is_some());
    assert_ne!(started, refused_id, "a refused call's id is never reused");
}

/// What a policy sees of a call's life, and a policy ending a running call (as spend caps
/// will): both legs get a BYE, and the end is reported once.
#[derive(Debug, Default)]
struct Recorder {
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    end_after_answer: bool,
    pending: Vec<u64>,
}

impl sipwarden_stages::CallPolicy for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }

    fn admit(&mut self, call: &sipwarden_stages::CallRequest<'_>) -> sipwarden_stages::Verdict {
        self.seen.lock().unwrap().push(format!(
            "admit {} {:?} {:?} {} {} sdp={}",
            call.call,
            call.origin,
            call.destination,
            call.caller,
            call.callee,
            call.offer.is_some()
        ));
        sipwarden_stages::Verdict::Continue
    }

    fn on_answer(&mut self, call: u64, _now: Instant) {
        self.seen.lock().unwrap().push(format!("answer {call}"));
        if self.end_after_answer {
            self.pending.push(call);
        }
    }

    fn on_end(&mut self, call: u64, _now: Instant) {
        self.seen.lock().unwrap().push(format!("end {call}"));
    }

    fn take_hangups(&mut self, _now: Instant) -> Vec<(u64, sipwarden_stages::Reason)> {
        self.pending
            .drain(..)
            .map(|c| (c, sipwarden_stages::Reason::Policy("spend_cap")))
            .collect()
    }
}

#[test]
fn policies_hear_answer_and_end_and_may_end_a_running_call() {
    let mut lab = Lab::new();
    let seen = std::sync::Arc::default();
    lab.core.set_policies(vec![Box::new(Recorder {
        seen: std::sync::Arc::clone(&seen),
        end_after_answer: true,
        pending: Vec::new(),
    })]);
    lab.send(PBX_UAC, &pbx_invite("+15557654321", "z9hG4bKpol"));
    let inv = lab.expect(CARRIER, "INVITE");
    lab.take(PBX_UAC);
    lab.send_msg(
        CARRIER,
        respond(
            &inv,
            200,
            Some("c-tag"),
            Some("<sip:ua@127.0.0.3:5060>"),
            true,
        ),
    );
    // The answer reaches the PBX; right after it the policy asks for the end: the gateway
    // hangs up both legs itself.
    let wire_pbx = lab.take(PBX_UAC);
    assert!(wire_pbx.iter().any(|m| first_line(m) == "SIP/2.0 200 OK"));
    assert!(
        wire_pbx.iter().any(|m| m.method() == Some(Method::Bye)),
        "{wire_pbx:?}"
    );
    let wire_carrier = lab.take(CARRIER);
    let b_bye = wire_carrier
        .iter()
        .find(|m| m.method() == Some(Method::Bye))
        .unwrap_or_else(|| panic!("no BYE to the carrier: {wire_carrier:?}"));
    lab.send_msg(CARRIER, respond(b_bye, 200, None, None, false));
    let a_bye = wire_pbx
        .iter()
        .find(|m| m.method() == Some(Method::Bye))
        .unwrap();
    lab.send_msg(PBX_UAC, respond(a_bye, 200, None, None, false));
    lab.advance(Duration::from_secs(40));
    assert_eq!(lab.stats().calls, 0);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(
        seen[0],
        "admit 1 Pbx Trunk(\"carrier\") +15551230001 +15557654321 sdp=true"
    );
    assert_eq!(&seen[1..], ["answer 1", "end 1"]);
    assert_one_call(
        &lab.core.take_call_events(),
        true,
        (
            Some(200),
            EndedBy::Gateway,
            "ended by policy recorder: spend_cap",
        ),
    );
}

// === call events ===

use sipwarden_b2bua::events::{CallEvent, CallEventKind, EndedBy};

/// The events of the lab's calls so far, as (call, short description).
fn call_events(lab: &mut Lab) -> Vec<CallEvent> {
    lab.core.take_call_events()
}

/// Checks the one call's sequence: Started, maybe Answered, then exactly one Ended with this
/// status, side and reason.
fn assert_one_call(events: &[CallEvent], answered: bool, ended: (Option<u16>, EndedBy, &str)) {
    let kinds: Vec<&CallEventKind> = events.iter().map(|e| &e.kind).collect();
    assert!(
        matches!(kinds.first(), Some(CallEventKind::Started(_))),
        "{kinds:#?}"
    );
    let n_answered = kinds
        .iter()
        .filter(|k| matches!(k, CallEventKind::Answered))
        .count();
    assert_eq!(n_answered, usize::from(answered), "{kinds:#?}");
    let ends: Vec<_> = kinds
        .iter()
        .filter_map(|k| match k {
            CallEventKind::Ended { status, by, reason } => Some((*status, *by, reason.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(ends, [ended], "{kinds:#?}");
    assert!(
        matches!(kinds.last(), Some(CallEventKind::Ended { .. })),
        "ended comes last: {kinds:#?}"
    );
    let id = events[0].call;
    assert!(events.iter().all(|e| e.call == id));
}

#[test]
fn call_events_answered_and_hung_up_by_the_caller() {
    let mut lab = Lab::new();
    let wall = std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    lab.core.set_wall_clock(lab.now, wall);
    let (b_invite, a_ok) = outbound_call(&mut lab);
    lab.advance(Duration::from_secs(5));
    let bye = in_dialog("BYE", &a_ok, true, 102, "z9hG4bKpbxbye", &contact_of(&a_ok));
    lab.send_msg(PBX_UAC, bye);
    let b_bye = lab.expect(CARRIER, "BYE");
    lab.send_msg(CARRIER, respond(&b_bye, 200, None, None, false));
    lab.expect(PBX_UAC, "200 OK");
    lab.assert_clean();
    let events = call_events(&mut lab);
    assert_one_call(&events, true, (Some(200), EndedBy::Caller, "BYE"));
    let CallEventKind::Started(info) = &events[0].kind else {
        unreachable!()
    };
    assert_eq!(info.a_call_id, "pbx-call-1@10.20.30.40");
    assert_eq!(Some(info.b_call_id.as_str()), b_invite.call_id());
    assert_ne!(info.a_call_id, info.b_call_id);
    assert_eq!(info.origin, sipwarden_stages::Origin::Pbx);
    assert_eq!(info.trunk.as_deref(), Some("carrier"));
    assert_eq!(info.account, None);
    assert_eq!(info.source, addr(PBX_UAC));
    assert_eq!(info.transport, Transport::Udp);
    assert_eq!(
        (info.caller.as_str(), info.callee.as_str()),
        ("+15551230001", "+15557654321")
    );
    assert_eq!(info.callee_normalised.as_deref(), Some("15557654321"));
    assert_eq!(info.caller_normalised.as_deref(), Some("15551230001"));
    // Wall-clock times, from the reading the core was given.
    assert_eq!(events[0].at, wall);
    let ended = events.last().unwrap();
    assert_eq!(ended.at, wall + Duration::from_secs(5));
}

#[test]
fn call_events_hung_up_by_the_callee() {
    let mut lab = Lab::new();
    let (b_invite, _) = outbound_call(&mut lab);
    let ok_seen_by_carrier = respond(&b_invite, 200, Some("carrier-tag"), None, false);
    let bye = in_dialog(
        "BYE",
        &ok_seen_by_carrier,
        false,
        1,
        "z9hG4bKcbye",
        "sip:127.0.0.1:5060",
    );
    lab.send_msg(CARRIER, bye);
    let a_bye = lab.expect(PBX_UAC, "BYE");
    lab.send_msg(PBX_UAC, respond(&a_bye, 200, None, None, false));
    lab.assert_clean();
    assert_one_call(
        &call_events(&mut lab),
        true,
        (Some(200), EndedBy::Callee, "BYE"),
    );
}

/// An answered call whose caller stops answering: its ACK never comes, the gateway hangs up
/// both legs, the caller's BYE goes unanswered too, and the call still ends exactly once.
#[test]
fn call_events_when_an_answered_leg_stops_answering() {
    let mut lab = Lab::new();
    inbound_call(&mut lab, "z9hG4bKsilent");
    // The carrier goes silent: no ACK, no answer to the BYE.
    lab.advance(Duration::from_secs(33));
    let pbx_bye = lab
        .take(PBX_UAS)
        .into_iter()
        .find(|m| m.method() == Some(Method::Bye))
        .expect("a BYE to the PBX");
    lab.send_msg(PBX_UAS, respond(&pbx_bye, 200, None, None, false));
    assert!(
        lab.take(CARRIER)
            .iter()
            .any(|m| m.method() == Some(Method::Bye)),
        "the silent caller is sent a BYE too"
    );
    lab.advance(Duration::from_secs(40));
    assert_eq!(lab.stats().calls, 0);
    assert_one_call(
        &call_events(&mut lab),
        true,
        (Some(200), EndedBy::Gateway, "no ACK"),
    );
}

#[test]
fn call_events_cancelled_busy_unanswered_and_refused() {
    // Cancelled by the caller while ringing.
    let mut lab = Lab::new();
    lab.send(CARRIER, &carrier_invite("+15551230042", "z9hG4bKc2"));
    let inv = lab.expect(PBX_UAS, "INVITE");
    lab.send_msg(PBX_UAS, respond(&inv, 180, Some("pbx-uas"), None, false));
    let cancel = cancel_of(&carrier_invite("+15551230042", "z9hG4bKc2"));
    lab.send(CARRIER, &cancel);
    let pbx_cancel = lab.expect(PBX_UAS, "CANCEL");
    lab.send_msg(PBX_UAS, respond(&pbx_cancel, 200, None, None, false));
    lab.send_msg(PBX_UAS, respond(&inv, 487, Some("pbx-uas"), None, false));
    lab.advance(Duration::from_secs(40));
    let events = call_events(&mut lab);
    assert_one_call(&events, false, (Some(487), EndedBy::Caller, "cancelled"));
    let CallEventKind::Started(info) = &events[0].kind else {
        unreachable!()
    };
    assert_eq!(info.origin, sipwarden_stages::Origin::Trunk);
    assert_eq!(info.trunk.as_deref(), Some("carrier"));

    // Busy: the callee's 486 ends it.
    let mut lab = Lab::new();
    lab.send(CARRIER, &carrier_invite("+15551230042", "z9hG4bKbusy"));
    let inv = lab.expect(PBX_UAS, "INVITE");
    lab.send_msg(PBX_UAS, respond(&inv, 486, Some("pbx-uas"), None, false));
    lab.assert_clean();
    assert_one_call(
        &call_events(&mut lab),
        false,
        (Some(486), EndedBy::Callee, "486 from the callee"),
    );

    // The callee's leg never answers: the gateway ends it (408 to the caller).
    let mut lab = Lab::new();
    lab.send(CARRIER, &carrier_invite("+15551230042", "z9hG4bKlost"));
    lab.advance(Duration::from_secs(40));
    assert_one_call(
        &call_events(&mut lab),
        false,
        (
            Some(408),
            EndedBy::Gateway,
            "the callee did not answer (timeout)",
        ),
    );

    // Ringing past the ring timeout.
    let mut lab = Lab::with(&format!("{LAB_CONFIG}\n[calls]\nring_timeout = \"20s\"\n"));
    lab.send(CARRIER, &carrier_invite("+15551230042", "z9hG4bKring"));
    let inv = lab.expect(PBX_UAS, "INVITE");
    lab.send_msg(PBX_UAS, respond(&inv, 180, Some("pbx-uas"), None, false));
    lab.advance(Duration::from_secs(21));
    // The CANCEL (retransmitted over UDP while the clock ran).
    let pbx_cancel = lab
        .take(PBX_UAS)
        .into_iter()
        .find(|m| m.method() == Some(Method::Cancel))
        .expect("a CANCEL to the PBX");
    lab.send_msg(PBX_UAS, respond(&pbx_cancel, 200, None, None, false));
    lab.send_msg(PBX_UAS, respond(&inv, 487, Some("pbx-uas"), None, false));
    lab.advance(Duration::from_secs(40));
    assert_one_call(
        &call_events(&mut lab),
        false,
        (Some(408), EndedBy::Gateway, "ring timeout"),
    );

    // Refused by routing: a trunk's call to a number it does not own never starts.
    let mut lab = Lab::new();
    lab.send(CARRIER, &carrier_invite("+15559990000", "z9hG4bKnotours"));
    lab.expect(CARRIER, "404");
    let events = call_events(&mut lab);
    assert_eq!(events.len(), 1, "{events:#?}");
    let CallEventKind::Refused {
        info,
        stage,
        status,
        reason,
    } = &events[0].kind
    else {
        panic!("{events:#?}")
    };
    assert_eq!(
        (*stage, *status, *reason),
        ("route", 404, sipwarden_stages::Reason::NotOurNumber)
    );
    assert_eq!(info.callee, "+15559990000");
}

/// One failure counter for bans and for the answers (with the configured `find_time`): a
/// second wrong password within the window gets 403, one after the window a fresh challenge.
#[test]
fn the_second_failure_within_find_time_is_forbidden_and_after_it_challenged_again() {
    let mut lab = Lab::with(&format!(
        "{LAB_CONFIG}\n[accounts]\nfile = \"{LAB_ACCOUNTS}\"\n[ban]\nfind_time = \"30s\"\n"
    ));
    let raw = register(
        "1001",
        "<sip:x@10.0.0.5:5062>",
        "Expires: 600\r\n",
        1,
        "reg-ft",
    );
    let attempt = |lab: &mut Lab, cseq: u32| {
        lab.send(PHONE, &raw);
        let ch = lab.expect(PHONE, "401 Unauthorized");
        first_line(&register_again(lab, &raw, cseq, |m| {
            answer(&ch, m, "1001", "not-the-password")
        }))
    };
    assert_eq!(attempt(&mut lab, 2), "SIP/2.0 401 Unauthorized");
    assert_eq!(attempt(&mut lab, 3), "SIP/2.0 403 Forbidden");
    lab.advance(Duration::from_secs(31));
    assert_eq!(
        attempt(&mut lab, 4),
        "SIP/2.0 401 Unauthorized",
        "the window has passed"
    );
    assert_eq!(lab.stats().auth_failures, 3);
}

// === rewrites ===

use sipwarden_sip::sdp::{SdpEdit, Section};
use sipwarden_stages::{Rewrite, RewriteError, SdpContext, SdpKind};

/// A rewrite written outside the core, as caller-ID, Identity and media anchoring will be: it
/// marks the B leg's INVITE with a header and every SDP body with an attribute naming itself
/// and the leg, and notes what it is told. Plugging it in takes `set_rewrites` and nothing
/// else; the dispatcher does not know it exists. It can be told to fail (after an edit of its
/// own, which must then not show).
#[derive(Debug)]
struct Mark {
    name: &'static str,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    fail_invite: bool,
    fail_sdp: fn(&SdpKind) -> bool,
}

impl Mark {
    fn new(name: &'static str, seen: &std::sync::Arc<std::sync::Mutex<Vec<String>>>) -> Self {
        Self {
            name,
            seen: std::sync::Arc::clone(seen),
            fail_invite: false,
            fail_sdp: |_| false,
        }
    }
}

fn kind(k: &SdpKind) -> String {
    match k {
        SdpKind::Invite => "invite".to_owned(),
        SdpKind::InviteResponse(s) => format!("invite-response {s}"),
        SdpKind::Ack => "ack".to_owned(),
        SdpKind::InDialogRequest(m) => format!("in-dialog {m:?}"),
        SdpKind::InDialogResponse(m, s) => format!("in-dialog {m:?} {s}"),
    }
}

impl Rewrite for Mark {
    fn name(&self) -> &'static str {
        self.name
    }

    fn invite(
        &mut self,
        call: &sipwarden_stages::CallRequest<'_>,
        out: &mut Message,
    ) -> Result<(), RewriteError> {
        let line = format!("invite {} call {} to {}", self.name, call.call, call.callee);
        self.seen.lock().unwrap().push(line);
        out.push_header_text("X-Rewrite", self.name)?;
        if self.fail_invite {
            return Err(RewriteError::new("test_invite"));
        }
        Ok(())
    }

    fn sdp(&mut self, ctx: &SdpContext, sdp: &mut SdpEdit<'_>) -> Result<(), RewriteError> {
        let line = format!(
            "sdp {} call {} to {:?} {} via {}",
            self.name,
            ctx.call,
            ctx.toward,
            kind(&ctx.kind),
            ctx.local
        );
        self.seen.lock().unwrap().push(line);
        let value = format!("{}-{:?}", self.name, ctx.toward);
        sdp.insert_attribute(Section::Media(0), "x-rewrite", Some(&value))?;
        if (self.fail_sdp)(&ctx.kind) {
            return Err(RewriteError::new("test_sdp"));
        }
        Ok(())
    }

    fn on_end(&mut self, call: u64, _now: Instant) {
        self.seen
            .lock()
            .unwrap()
            .push(format!("end {} call {call}", self.name));
    }
}

fn body_text(m: &Message) -> String {
    String::from_utf8_lossy(m.body()).into_owned()
}

#[test]
fn a_rewrite_plugged_in_marks_the_b_leg_invite_and_the_sdp_both_ways() {
    let mut lab = Lab::new();
    let seen = std::sync::Arc::default();
    lab.core
        .set_rewrites(vec![Box::new(Mark::new("mark", &seen))]);
    // The trunk gets the INVITE with the rewrite's header and attribute; the core's own
    // topology hiding ran first.
    let (b_invite, a_ok) = outbound_call(&mut lab);
    assert_eq!(
        b_invite
            .header_values_by_text("X-Rewrite")
            .collect::<Vec<_>>(),
        ["mark"]
    );
    let offer = body_text(&b_invite);
    assert!(
        offer.starts_with("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n"),
        "{offer}"
    );
    assert!(
        offer.ends_with("\r\nm=audio 6000 RTP/AVP 0 8\r\na=x-rewrite:mark-B\r\n"),
        "{offer}"
    );
    assert_eq!(
        b_invite.content_length(),
        Some(u32::try_from(offer.len()).unwrap()),
        "Content-Length follows the body"
    );
    // The PBX gets the answer marked for its leg.
    let answer = body_text(&a_ok);
    assert!(
        answer.contains("\r\no=- 1 1 IN IP4 127.0.0.1\r\n"),
        "{answer}"
    );
    assert!(answer.ends_with("\r\na=x-rewrite:mark-A\r\n"), "{answer}");
    assert!(
        a_ok.header_values_by_text("X-Rewrite").next().is_none(),
        "invite() is for the B leg's INVITE only"
    );
    // A re-INVITE's offer and answer go through it too.
    let mut re = in_dialog("INVITE", &a_ok, true, 102, "z9hG4bKre1", &contact_of(&a_ok));
    re.set_body(
        bytes::Bytes::from_static(SDP.as_bytes()),
        Some("application/sdp"),
    )
    .unwrap();
    lab.send_msg(PBX_UAC, re);
    let b_re = lab.expect(CARRIER, "INVITE");
    assert!(body_text(&b_re).ends_with("a=x-rewrite:mark-B\r\n"));
    lab.send_msg(CARRIER, respond(&b_re, 200, None, None, true));
    let a_re_ok = lab.expect(PBX_UAC, "200 OK");
    assert!(body_text(&a_re_ok).ends_with("a=x-rewrite:mark-A\r\n"));
    lab.send_msg(
        PBX_UAC,
        in_dialog("ACK", &a_ok, true, 102, "z9hG4bKre1ack", &contact_of(&a_ok)),
    );
    lab.expect(CARRIER, "ACK");
    let bye = in_dialog("BYE", &a_ok, true, 103, "z9hG4bKpbxbye", &contact_of(&a_ok));
    lab.send_msg(PBX_UAC, bye);
    let b_bye = lab.expect(CARRIER, "BYE");
    lab.send_msg(CARRIER, respond(&b_bye, 200, None, None, false));
    lab.expect(PBX_UAC, "200 OK");
    lab.assert_clean();
    // What it was told: the call's id (the policies' too), the leg, the message, the
    // gateway's address there; the INVITE after its offer; the end once.
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "sdp mark call 1 to B invite via 127.0.0.1:5060",
            "invite mark call 1 to +15557654321",
            "sdp mark call 1 to A invite-response 200 via 127.0.0.1:5060",
            "sdp mark call 1 to B in-dialog Invite via 127.0.0.1:5060",
            "sdp mark call 1 to A in-dialog Invite 200 via 127.0.0.1:5060",
            "end mark call 1",
        ]
    );
}

#[test]
fn rewrites_run_in_the_order_given() {
    let mut lab = Lab::new();
    let seen = std::sync::Arc::default();
    lab.core.set_rewrites(vec![
        Box::new(Mark::new("first", &seen)),
        Box::new(Mark::new("second", &seen)),
    ]);
    lab.send(PBX_UAC, &pbx_invite("+15557654321", "z9hG4bKord"));
    let inv = lab.expect(CARRIER, "INVITE");
    assert_eq!(
        inv.header_values_by_text("X-Rewrite").collect::<Vec<_>>(),
        ["first", "second"]
    );
    assert!(
        body_text(&inv).ends_with("\r\na=x-rewrite:first-B\r\na=x-rewrite:second-B\r\n"),
        "{}",
        body_text(&inv)
    );
    let names: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|l| l.split(" call").next().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        ["sdp first", "sdp second", "invite first", "invite second"]
    );
}

#[test]
fn a_rewrite_that_fails_on_the_invite_refuses_the_call() {
    for (fail_invite, code) in [(true, "test_invite"), (false, "test_sdp")] {
        let mut lab = Lab::new();
        let seen = std::sync::Arc::default();
        let mut fail = Mark::new("fail", &seen);
        fail.fail_invite = fail_invite;
        if !fail_invite {
            fail.fail_sdp = |k| *k == SdpKind::Invite;
        }
        lab.core
            .set_rewrites(vec![Box::new(Mark::new("ok", &seen)), Box::new(fail)]);
        lab.send(PBX_UAC, &pbx_invite("+15557654321", "z9hG4bKfail"));
        let answers = lab.take(PBX_UAC);
        assert!(
            answers
                .iter()
                .any(|m| first_line(m) == "SIP/2.0 500 Server Internal Error"),
            "{answers:?}"
        );
        assert!(lab.take(CARRIER).is_empty(), "nothing reached the carrier");
        assert_eq!(lab.stats().calls_started, 0);
        let counted = lab
            .core
            .verdict_counts()
            .into_iter()
            .find(|r| r.0 == "fail")
            .map(|r| (r.1, r.2, r.3));
        assert_eq!(counted, Some(("reply", code, 1)));
        let events: Vec<_> = lab
            .core
            .take_call_events()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert!(
            matches!(
                &events[..],
                [CallEventKind::Refused {
                    stage: "fail",
                    status: 500,
                    reason: sipwarden_stages::Reason::Rewrite(c),
                    ..
                }] if *c == code
            ),
            "{events:#?}"
        );
        let seen = seen.lock().unwrap();
        assert!(seen.contains(&"end ok call 1".to_owned()), "{seen:?}");
        lab.assert_clean();
    }
}

#[test]
fn a_rewrite_that_fails_on_the_answer_ends_the_call_after_it_crossed() {
    let mut lab = Lab::new();
    let seen = std::sync::Arc::default();
    let mut fail = Mark::new("fail", &seen);
    fail.fail_sdp = |k| matches!(k, SdpKind::InviteResponse(_));
    lab.core.set_rewrites(vec![Box::new(fail)]);
    lab.send(PBX_UAC, &pbx_invite("+15557654321", "z9hG4bKans"));
    let inv = lab.expect(CARRIER, "INVITE");
    assert!(body_text(&inv).ends_with("a=x-rewrite:fail-B\r\n"));
    lab.take(PBX_UAC);
    lab.send_msg(
        CARRIER,
        respond(
            &inv,
            200,
            Some("c-tag"),
            Some("<sip:ua@127.0.0.3:5060>"),
            true,
        ),
    );
    // The answer crosses (a response cannot be refused) with the topology hiding but without
    // the failed rewrite's edit; then the gateway hangs up both legs.
    let wire_pbx = lab.take(PBX_UAC);
    let ok = wire_pbx
        .iter()
        .find(|m| first_line(m) == "SIP/2.0 200 OK")
        .unwrap_or_else(|| panic!("no 200: {wire_pbx:?}"));
    let answer = body_text(ok);
    assert!(
        answer.contains("\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n"),
        "{answer}"
    );
    assert!(!answer.contains("x-rewrite"), "{answer}");
    let a_bye = wire_pbx
        .iter()
        .find(|m| m.method() == Some(Method::Bye))
        .unwrap_or_else(|| panic!("no BYE to the PBX: {wire_pbx:?}"));
    let wire_carrier = lab.take(CARRIER);
    let b_bye = wire_carrier
        .iter()
        .find(|m| m.method() == Some(Method::Bye))
        .unwrap_or_else(|| panic!("no BYE to the carrier: {wire_carrier:?}"));
    lab.send_msg(CARRIER, respond(b_bye, 200, None, None, false));
    lab.send_msg(PBX_UAC, respond(a_bye, 200, None, None, false));
    lab.advance(Duration::from_secs(40));
    assert_eq!(lab.stats().calls, 0);
    assert_one_call(
        &lab.core.take_call_events(),
        true,
        (
            Some(200),
            EndedBy::Gateway,
            "ended by rewrite fail: test_sdp",
        ),
    );
}

#[test]
fn a_rewrite_that_fails_on_a_reinvite_refuses_it_and_the_call_goes_on() {
    let mut lab = Lab::new();
    let seen = std::sync::Arc::default();
    let mut fail = Mark::new("fail", &seen);
    fail.fail_sdp = |k| matches!(k, SdpKind::InDialogRequest(_));
    lab.core.set_rewrites(vec![Box::new(fail)]);
    let (_, a_ok) = outbound_call(&mut lab);
    let mut re = in_dialog("INVITE", &a_ok, true, 102, "z9hG4bKre1", &contact_of(&a_ok));
    re.set_body(
        bytes::Bytes::from_static(SDP.as_bytes()),
        Some("application/sdp"),
    )
    .unwrap();
    lab.send_msg(PBX_UAC, re);
    lab.expect(PBX_UAC, "500 Server Internal Error");
    assert!(lab.take(CARRIER).is_empty(), "the offer never reached B");
    assert_eq!(lab.stats().calls, 1, "the call goes on");
    let counted = lab
        .core
        .verdict_counts()
        .into_iter()
        .find(|r| r.0 == "fail")
        .map(|r| (r.1, r.2, r.3));
    assert_eq!(counted, Some(("reply", "test_sdp", 1)));
    let bye = in_dialog("BYE", &a_ok, true, 103, "z9hG4bKpbxbye", &contact_of(&a_ok));
    lab.send_msg(PBX_UAC, bye);
    let b_bye = lab.expect(CARRIER, "BYE");
    lab.send_msg(CARRIER, respond(&b_bye, 200, None, None, false));
    lab.expect(PBX_UAC, "200 OK");
    lab.assert_clean();
}

/// REGISTER for 1001 from `from`, its 401, then the answer with a wrong password: what the
/// gateway sent back to `from` for it (nothing once the failure banned the source).
fn fail_once(lab: &mut Lab, from: &str, call_id: &str) -> Vec<Message> {
    let raw = register("1001", "<sip:1001@10.0.0.5:5062>", "", 1, call_id);
    lab.send(from, &raw);
    let challenge = lab.expect(from, "401 Unauthorized");
    let mut again = Message::parse(
        raw.replace("CSeq: 1 ", "CSeq: 2 ")
            .replace("branch=z9hG4bK", "branch=z9hG4bKa")
            .as_bytes(),
    )
    .unwrap();
    let creds = answer(&challenge, &again, "1001", "not-the-password");
    again
        .push_header(HeaderName::Authorization, &creds)
        .unwrap();
    again.finish().unwrap();
    lab.send_msg(from, again);
    lab.take(from)
}

/// `[ban] max_tracked` bounds the failure table (40); thirty other sources fail between two
/// failures of the one that keeps failing, overflowing the table three times over. That
/// source is never the least recently failed, so its count survives (its later failures get
/// 403, not a fresh challenge) and the fifth bans it.
#[test]
fn a_source_that_keeps_failing_is_banned_while_a_flood_overflows_the_failure_table() {
    let mut lab = Lab::with(&format!(
        "{LAB_CONFIG}\n[accounts]\nfile = \"{LAB_ACCOUNTS}\"\n[ban]\nmax_tracked = 40\n"
    ));
    let attacker = "127.0.9.1:5060";
    let mut n = 0;
    for round in 0..5 {
        let got = fail_once(&mut lab, attacker, &format!("attacker-{round}"));
        match round {
            0 => assert_eq!(first_line(&got[0]), "SIP/2.0 401 Unauthorized"),
            1..=3 => assert_eq!(first_line(&got[0]), "SIP/2.0 403 Forbidden"),
            _ => assert!(got.is_empty(), "banned: hears nothing more"),
        }
        if round == 4 {
            break;
        }
        for _ in 0..30 {
            let src = format!("127.0.{}.{}:5060", 10 + n / 200, n % 200);
            fail_once(&mut lab, &src, &format!("flood-{n}"));
            n += 1;
            assert!(lab.stats().defence.failures.by_ip.len <= 40);
        }
        lab.advance(Duration::from_secs(1));
    }
    assert!(lab.core.ban_entry(addr(attacker).ip()).is_some());
    let s = lab.stats();
    assert_eq!(s.defence.bans_failures, 1);
    // 121 addresses through 40 places: 81 gave way, the attacker was never one of them.
    assert_eq!(s.defence.failures.by_ip.evicted, 81);
    let row = s.tables()[1];
    assert_eq!((row.table, row.evicted), ("failures_by_address", 81));
}

/// The security event queue holds `storage.event_queue` events until the server takes them;
/// more are dropped and counted, and the counts add up.
#[test]
fn the_security_event_queue_is_bounded_and_counts_what_it_drops() {
    let mut lab = Lab::with(&format!(
        "{LAB_CONFIG}\n[accounts]\nfile = \"{LAB_ACCOUNTS}\"\n[storage]\nevent_queue = 5\n"
    ));
    let challenge = |lab: &mut Lab, i: u32| {
        let from = format!("127.0.7.{i}:5060");
        let raw = register("1001", "<sip:1001@10.0.0.5:5062>", "", 1, &format!("q-{i}"));
        lab.send(&from, &raw);
        lab.expect(&from, "401 Unauthorized");
    };
    for i in 0..8 {
        challenge(&mut lab, i);
    }
    assert_eq!(lab.core.take_security_events().len(), 5);
    assert_eq!(lab.stats().security_events_dropped, 3);
    // Taken: there is room again.
    challenge(&mut lab, 8);
    assert_eq!(lab.core.take_security_events().len(), 1);
    assert_eq!(
        lab.stats().security_events_dropped,
        3,
        "9 produced: 6 taken, 3 dropped"
    );
}

/// A reload applies new bounds at once: each table is evicted down to its new one.
#[test]
fn a_reload_lowers_the_bounds_of_the_tables_at_once() {
    let cfg = |extra: &str| {
        Config::from_toml(
            &format!("{LAB_CONFIG}\n[accounts]\nfile = \"{LAB_ACCOUNTS}\"\n{extra}"),
            None,
        )
        .unwrap()
    };
    let mut lab = Lab::with(&format!(
        "{LAB_CONFIG}\n[accounts]\nfile = \"{LAB_ACCOUNTS}\"\n"
    ));
    for i in 0..10 {
        fail_once(&mut lab, &format!("127.0.8.{i}:5060"), &format!("r-{i}"));
    }
    for i in 0..3 {
        let raw = register(
            "1001",
            "<sip:1001@10.0.0.5:5062>",
            "",
            1,
            &format!("ok-{i}"),
        );
        let ok = register_with_auth(&mut lab, udp(PHONE), &raw, "1001", PW_1001);
        assert_eq!(first_line(&ok), "SIP/2.0 200 OK");
    }
    let s = lab.stats();
    assert_eq!(s.defence.failures.by_ip.len, 10);
    assert_eq!(s.nonces.len, 3);
    assert_eq!(s.defence.rate_sources.len, 11);
    let lower = cfg("max_nonces = 1\n[ban]\nmax_tracked = 4\n[ratelimit]\nmax_tracked = 2\n");
    lab.core.set_routes(Routes::from_config(&lower).unwrap());
    let s = lab.stats();
    assert_eq!(
        (
            s.defence.failures.by_ip.len,
            s.defence.failures.by_ip.evicted
        ),
        (4, 6)
    );
    assert_eq!((s.nonces.len, s.nonces.evicted), (1, 2));
    assert_eq!(
        (s.defence.rate_sources.len, s.defence.rate_sources.evicted),
        (2, 9)
    );
    // The phone sent last: it is one of the two sources kept, so its next REGISTERs find
    // their buckets (no new entry, no eviction).
    let raw = register("1001", "<sip:1001@10.0.0.5:5062>", "", 1, "after");
    let ok = register_with_auth(&mut lab, udp(PHONE), &raw, "1001", PW_1001);
    assert_eq!(first_line(&ok), "SIP/2.0 200 OK");
    assert_eq!(lab.stats().defence.rate_sources.evicted, 9);
}
