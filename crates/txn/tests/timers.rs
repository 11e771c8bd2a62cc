//! Every transaction timer and every retransmission rule, driven with simulated time: the
//! clock is an `Instant` the test advances; nothing sleeps.

// One reading of the clock, as the origin of simulated time (disallowed-methods in
// ../../clippy.toml is for the crate's code).
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use sipwarden_sip::{HeaderName, Message, Method, StatusCode};
use sipwarden_txn::{Config, Event, Transmit, TxId, TxLayer};

const PEER: &str = "peer";

fn invite(branch: &str) -> Message {
    request("INVITE", branch, 1)
}

fn request(method: &str, branch: &str, cseq: u32) -> Message {
    let raw = format!(
        "{method} sip:bob@192.0.2.2 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}\r\nMax-Forwards: 70\r\nFrom: <sip:alice@192.0.2.1>;tag=ft\r\nTo: <sip:bob@192.0.2.2>\r\nCall-ID: call-1@192.0.2.1\r\nCSeq: {cseq} {method}\r\nRoute: <sip:edge.example;lr>\r\nContent-Length: 0\r\n\r\n"
    );
    Message::parse(raw.as_bytes()).unwrap()
}

fn response(req: &Message, code: u16, to_tag: Option<&str>) -> Message {
    let r = Message::response_to(req, StatusCode::new(code).unwrap(), None, to_tag).unwrap();
    Message::parse(&r.to_bytes()).unwrap()
}

/// A layer plus a clock.
struct Harness {
    layer: TxLayer<&'static str>,
    t0: Instant,
    now: Instant,
}

impl Harness {
    fn new() -> Self {
        let t0 = Instant::now();
        Self {
            layer: TxLayer::new(Config::default()),
            t0,
            now: t0,
        }
    }

    fn reliable() -> Self {
        Self::new()
    }

    /// Advances the clock to `t0 + ms`, firing every timer on the way exactly at its deadline.
    fn advance_to(&mut self, ms: u64) -> Vec<(u64, Transmit<&'static str>)> {
        let target = self.t0 + Duration::from_millis(ms);
        let mut sent = Vec::new();
        while let Some(at) = self.layer.poll_timeout() {
            if at > target {
                break;
            }
            self.now = at;
            self.layer.handle_timeout(at);
            while let Some(t) = self.layer.poll_transmit() {
                sent.push(((at - self.t0).as_millis() as u64, t));
            }
        }
        self.now = target;
        sent
    }

    fn transmits(&mut self) -> Vec<Transmit<&'static str>> {
        std::iter::from_fn(|| self.layer.poll_transmit()).collect()
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.layer.poll_event()).collect()
    }
}

fn first_line(t: &Transmit<&'static str>) -> String {
    String::from_utf8_lossy(&t.bytes)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

fn times(sent: &[(u64, Transmit<&'static str>)]) -> Vec<u64> {
    sent.iter().map(|(t, _)| *t).collect()
}

// === client transactions ===

#[test]
fn invite_client_timer_a_doubles_until_timer_b() {
    let mut h = Harness::new();
    let tx = h
        .layer
        .send_request(h.now, invite("z9hG4bKa"), PEER, false)
        .unwrap();
    assert_eq!(h.transmits().len(), 1);
    let sent = h.advance_to(40_000);
    // Timer A: T1, doubling without cap: 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s; timer B at 32 s.
    assert_eq!(times(&sent), [500, 1500, 3500, 7500, 15500, 31500]);
    assert!(
        sent.iter()
            .all(|(_, t)| first_line(t).starts_with("INVITE "))
    );
    let ev = h.events();
    assert!(matches!(ev.as_slice(), [Event::Timeout { tx: t }] if *t == tx));
    assert_eq!(h.layer.counts().client, 0);
}

#[test]
fn invite_client_over_reliable_transport_never_retransmits() {
    let mut h = Harness::reliable();
    h.layer
        .send_request(h.now, invite("z9hG4bKr"), PEER, true)
        .unwrap();
    h.transmits();
    let sent = h.advance_to(31_999);
    assert!(sent.is_empty());
    assert!(h.events().is_empty());
    h.advance_to(32_000);
    assert!(matches!(h.events().as_slice(), [Event::Timeout { .. }]));
}

#[test]
fn invite_client_provisional_stops_retransmission_and_non_2xx_gets_an_ack() {
    let mut h = Harness::new();
    let req = invite("z9hG4bKb");
    let tx = h
        .layer
        .send_request(h.now, req.clone(), PEER, false)
        .unwrap();
    h.transmits();
    h.advance_to(600); // one retransmission
    h.layer.on_response(h.now, response(&req, 180, Some("tt")));
    assert!(
        h.advance_to(20_000).is_empty(),
        "no retransmission after a provisional"
    );
    h.layer.on_response(h.now, response(&req, 486, Some("tt")));
    let out = h.transmits();
    assert_eq!(out.len(), 1);
    let ack = Message::parse(&out[0].bytes).unwrap();
    assert_eq!(ack.method(), Some(Method::Ack));
    assert_eq!(
        ack.branch(),
        Some("z9hG4bKb"),
        "ACK to a non-2xx reuses the INVITE's branch"
    );
    assert_eq!(ack.to_tag(), Some("tt"));
    assert_eq!(
        ack.cseq().map(|c| (c.seq, c.method)),
        Some((1, Method::Ack))
    );
    assert_eq!(ack.header(HeaderName::Route), Some("<sip:edge.example;lr>"));
    let ev = h.events();
    assert_eq!(ev.len(), 2, "180 and 486 reported once each");
    assert!(
        ev.iter()
            .all(|e| matches!(e, Event::Response { tx: t, .. } if *t == tx))
    );

    // A retransmitted 486 is absorbed: the ACK goes again, the TU hears nothing.
    h.layer.on_response(h.now, response(&req, 486, Some("tt")));
    assert_eq!(h.transmits().len(), 1);
    assert!(h.events().is_empty());
    // Timer D (32 s over UDP) ends the transaction.
    h.advance_to(20_000 + 31_999);
    assert_eq!(h.layer.counts().client, 1);
    h.advance_to(20_000 + 32_000);
    assert_eq!(h.layer.counts().client, 0);
}

#[test]
fn invite_client_accepted_state_resends_the_tus_ack_for_2xx_retransmissions() {
    let mut h = Harness::new();
    let req = invite("z9hG4bKc");
    let tx = h
        .layer
        .send_request(h.now, req.clone(), PEER, false)
        .unwrap();
    h.transmits();
    let ok = response(&req, 200, Some("callee"));
    h.layer.on_response(h.now, ok.clone());
    assert_eq!(h.events().len(), 1);
    let mut ack = Message::request(Method::Ack, "ACK", "sip:bob@192.0.2.2").unwrap();
    ack.push_header(
        HeaderName::Via,
        "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKack",
    )
    .unwrap();
    ack.push_header(HeaderName::To, "<sip:bob@192.0.2.2>;tag=callee")
        .unwrap();
    ack.push_header(HeaderName::From, "<sip:alice@192.0.2.1>;tag=ft")
        .unwrap();
    ack.push_header(HeaderName::CallId, "call-1@192.0.2.1")
        .unwrap();
    ack.push_header(HeaderName::CSeq, "1 ACK").unwrap();
    ack.finish().unwrap();
    h.layer.send_ack(tx, &ack, PEER);
    assert_eq!(h.transmits().len(), 1);
    h.layer.on_response(h.now, ok);
    let again = h.transmits();
    assert_eq!(
        again.len(),
        1,
        "retransmitted 2xx answered with the same ACK"
    );
    assert_eq!(
        Message::parse(&again[0].bytes).unwrap().branch(),
        Some("z9hG4bKack")
    );
    assert!(h.events().is_empty());
    // A 2xx from another fork is news for the TU.
    h.layer
        .on_response(h.now, response(&req, 200, Some("fork2")));
    assert_eq!(h.events().len(), 1);
    // Timer M.
    h.advance_to(32_000);
    assert_eq!(h.layer.counts().client, 0);
}

#[test]
fn non_invite_client_timer_e_caps_at_t2_and_timer_f_times_out() {
    let mut h = Harness::new();
    let tx = h
        .layer
        .send_request(h.now, request("OPTIONS", "z9hG4bKe", 1), PEER, false)
        .unwrap();
    h.transmits();
    let sent = h.advance_to(40_000);
    // E: 0.5, 1.5, 3.5, 7.5, then every 4 s (T2): 11.5 … 31.5; F at 32 s.
    assert_eq!(
        times(&sent),
        [
            500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
        ]
    );
    assert!(matches!(h.events().as_slice(), [Event::Timeout { tx: t }] if *t == tx));
}

#[test]
fn non_invite_client_proceeding_retransmits_at_t2_then_timer_k() {
    let mut h = Harness::new();
    let req = request("BYE", "z9hG4bKk", 2);
    h.layer
        .send_request(h.now, req.clone(), PEER, false)
        .unwrap();
    h.transmits();
    h.layer.on_response(h.now, response(&req, 100, None));
    let sent = h.advance_to(9_000);
    // After a provisional the interval is T2: the pending 0.5 s retransmission, then +4 s.
    assert_eq!(times(&sent), [500, 4500, 8500]);
    h.layer.on_response(h.now, response(&req, 200, None));
    assert_eq!(h.events().len(), 2);
    h.layer.on_response(h.now, response(&req, 200, None));
    assert!(h.events().is_empty(), "retransmitted final absorbed");
    assert!(h.advance_to(9_000 + 4_999).is_empty());
    assert_eq!(h.layer.counts().client, 1);
    h.advance_to(9_000 + 5_000); // timer K = T4
    assert_eq!(h.layer.counts().client, 0);
}

#[test]
fn non_invite_client_over_reliable_transport_ends_on_the_final_response() {
    let mut h = Harness::new();
    let req = request("REGISTER", "z9hG4bKrel", 3);
    h.layer
        .send_request(h.now, req.clone(), PEER, true)
        .unwrap();
    h.transmits();
    assert!(h.advance_to(10_000).is_empty());
    h.layer.on_response(h.now, response(&req, 200, None));
    assert_eq!(h.layer.counts().client, 0, "timer K is zero over TCP/TLS");
}

#[test]
fn cancel_waits_for_a_provisional_response() {
    let mut h = Harness::new();
    let req = invite("z9hG4bKcan");
    let tx = h
        .layer
        .send_request(h.now, req.clone(), PEER, false)
        .unwrap();
    h.transmits();
    assert_eq!(
        h.layer.cancel(h.now, tx),
        Ok(None),
        "no provisional yet: CANCEL held back"
    );
    assert!(h.transmits().is_empty());
    h.layer.on_response(h.now, response(&req, 180, Some("x")));
    let out = h.transmits();
    assert_eq!(out.len(), 1);
    let cancel = Message::parse(&out[0].bytes).unwrap();
    assert_eq!(cancel.method(), Some(Method::Cancel));
    assert_eq!(cancel.branch(), Some("z9hG4bKcan"));
    assert_eq!(cancel.to_tag(), None, "CANCEL copies the INVITE's To");
    assert_eq!(cancel.cseq().map(|c| c.seq), Some(1));
    // 200 to the CANCEL, then 487 to the INVITE, which gets its ACK.
    h.layer.on_response(h.now, response(&cancel, 200, None));
    h.layer.on_response(h.now, response(&req, 487, Some("x")));
    let acks = h.transmits();
    assert_eq!(acks.len(), 1);
    assert!(first_line(&acks[0]).starts_with("ACK "));
    assert_eq!(
        h.layer.counts().client,
        2,
        "INVITE (timer D) and CANCEL (timer K)"
    );
    h.advance_to(40_000);
    assert_eq!(h.layer.counts().client, 0);
}

// === server transactions ===

#[test]
fn invite_server_sends_trying_absorbs_retransmissions_and_retransmits_non_2xx_until_ack() {
    let mut h = Harness::new();
    let req = invite("z9hG4bKs1");
    h.layer.on_request(h.now, req.clone(), PEER, false);
    let trying = h.transmits();
    assert_eq!(first_line(&trying[0]), "SIP/2.0 100 Trying");
    let Event::Request { tx, .. } = h.events().pop().unwrap() else {
        panic!()
    };
    h.layer.on_request(h.now, req.clone(), PEER, false);
    assert_eq!(
        first_line(&h.transmits()[0]),
        "SIP/2.0 100 Trying",
        "retransmitted INVITE gets the last response"
    );
    assert!(h.events().is_empty());
    h.layer
        .send_response(h.now, tx, &response(&req, 180, Some("s")))
        .unwrap();
    h.transmits();
    h.layer.on_request(h.now, req.clone(), PEER, false);
    assert_eq!(first_line(&h.transmits()[0]), "SIP/2.0 180 Ringing");
    h.layer
        .send_response(h.now, tx, &response(&req, 486, Some("s")))
        .unwrap();
    h.transmits();
    let sent = h.advance_to(10_000);
    // Timer G: 0.5, 1.5, 3.5, 7.5 (then capped at T2: 11.5 …).
    assert_eq!(times(&sent), [500, 1500, 3500, 7500]);
    let mut ack = request("ACK", "z9hG4bKs1", 1);
    ack.set_header(HeaderName::To, "<sip:bob@192.0.2.2>;tag=s")
        .unwrap();
    h.layer.on_request(h.now, ack, PEER, false);
    assert!(
        h.events().is_empty(),
        "ACK for a non-2xx stays in the transaction"
    );
    assert!(
        h.advance_to(14_999).is_empty(),
        "no retransmission once confirmed"
    );
    assert_eq!(h.layer.counts().server, 1);
    h.advance_to(15_000); // timer I = T4
    assert_eq!(h.layer.counts().server, 0);
}

#[test]
fn invite_server_timer_h_ends_an_unacknowledged_failure() {
    let mut h = Harness::new();
    let req = invite("z9hG4bKh");
    h.layer.on_request(h.now, req.clone(), PEER, false);
    let Event::Request { tx, .. } = h.events().pop().unwrap() else {
        panic!()
    };
    h.layer
        .send_response(h.now, tx, &response(&req, 503, Some("s")))
        .unwrap();
    assert_eq!(h.transmits().len(), 2, "100 Trying, 503");
    let sent = h.advance_to(40_000);
    assert_eq!(
        times(&sent),
        [
            500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
        ]
    );
    assert_eq!(h.layer.counts().server, 0);
    assert!(h.events().is_empty());
}

#[test]
fn invite_server_retransmits_2xx_until_the_ack_and_reports_the_ack() {
    let mut h = Harness::new();
    let req = invite("z9hG4bKok");
    h.layer.on_request(h.now, req.clone(), PEER, false);
    let Event::Request { tx, .. } = h.events().pop().unwrap() else {
        panic!()
    };
    h.layer
        .send_response(h.now, tx, &response(&req, 200, Some("s")))
        .unwrap();
    h.transmits();
    let sent = h.advance_to(2_000);
    assert_eq!(times(&sent), [500, 1500]);
    // The ACK to a 2xx has a branch of its own: matched by dialog and CSeq.
    let mut ack = request("ACK", "z9hG4bKnewbranch", 1);
    ack.set_header(HeaderName::To, "<sip:bob@192.0.2.2>;tag=s")
        .unwrap();
    h.layer.on_request(h.now, ack.clone(), PEER, false);
    assert!(matches!(h.events().as_slice(), [Event::Ack { invite: Some(t), .. }] if *t == tx));
    h.layer.on_request(h.now, ack, PEER, false);
    assert!(h.events().is_empty(), "a retransmitted ACK is absorbed");
    assert!(h.advance_to(6_999).is_empty());
    h.advance_to(7_000); // T4 after the ACK
    assert_eq!(h.layer.counts().server, 0);
}

#[test]
fn invite_server_timer_l_reports_a_2xx_never_acknowledged() {
    let mut h = Harness::new();
    let req = invite("z9hG4bKl");
    h.layer.on_request(h.now, req.clone(), PEER, false);
    let Event::Request { tx, .. } = h.events().pop().unwrap() else {
        panic!()
    };
    h.layer
        .send_response(h.now, tx, &response(&req, 200, Some("s")))
        .unwrap();
    h.advance_to(32_000);
    assert!(matches!(h.events().as_slice(), [Event::AckTimeout { tx: t }] if *t == tx));
    assert_eq!(h.layer.counts().server, 0);
}

#[test]
fn non_invite_server_timer_j_and_absorption() {
    let mut h = Harness::new();
    let req = request("OPTIONS", "z9hG4bKj", 5);
    h.layer.on_request(h.now, req.clone(), PEER, false);
    let Event::Request { tx, .. } = h.events().pop().unwrap() else {
        panic!()
    };
    assert!(h.transmits().is_empty(), "no automatic 100 for non-INVITE");
    h.layer.on_request(h.now, req.clone(), PEER, false);
    assert!(
        h.transmits().is_empty() && h.events().is_empty(),
        "absorbed before any response"
    );
    h.layer
        .send_response(h.now, tx, &response(&req, 200, None))
        .unwrap();
    h.transmits();
    h.layer.on_request(h.now, req.clone(), PEER, false);
    assert_eq!(first_line(&h.transmits()[0]), "SIP/2.0 200 OK");
    assert_eq!(
        h.layer.send_response(h.now, tx, &response(&req, 200, None)),
        Err(sipwarden_txn::TxError::AlreadyFinal)
    );
    h.advance_to(31_999);
    assert_eq!(h.layer.counts().server, 1);
    h.advance_to(32_000);
    assert_eq!(h.layer.counts().server, 0);

    let mut r = Harness::new();
    r.layer.on_request(r.now, req.clone(), PEER, true);
    let Event::Request { tx, .. } = r.events().pop().unwrap() else {
        panic!()
    };
    r.layer
        .send_response(r.now, tx, &response(&req, 200, None))
        .unwrap();
    assert_eq!(r.layer.counts().server, 0, "timer J is zero over TCP/TLS");
}

#[test]
fn cancel_matches_the_invite_and_unknown_cancel_gets_481() {
    let mut h = Harness::new();
    let req = invite("z9hG4bKcx");
    h.layer.on_request(h.now, req.clone(), PEER, false);
    let Event::Request { tx, .. } = h.events().pop().unwrap() else {
        panic!()
    };
    h.transmits();
    let cancel = request("CANCEL", "z9hG4bKcx", 1);
    h.layer.on_request(h.now, cancel.clone(), PEER, false);
    assert_eq!(first_line(&h.transmits()[0]), "SIP/2.0 200 OK");
    assert!(matches!(h.events().as_slice(), [Event::Cancelled { invite }] if *invite == tx));
    h.layer.on_request(h.now, cancel, PEER, false);
    assert_eq!(
        first_line(&h.transmits()[0]),
        "SIP/2.0 200 OK",
        "retransmitted CANCEL answered again"
    );
    assert!(h.events().is_empty());
    h.layer
        .send_response(h.now, tx, &response(&req, 487, Some("s")))
        .unwrap();
    assert_eq!(
        first_line(&h.transmits()[0]),
        "SIP/2.0 487 Request Terminated"
    );

    h.layer
        .on_request(h.now, request("CANCEL", "z9hG4bKnothere", 1), PEER, false);
    assert_eq!(
        first_line(&h.transmits()[0]),
        "SIP/2.0 481 Call/Transaction Does Not Exist"
    );
    assert!(h.events().is_empty());
    h.advance_to(60_000);
    let c = h.layer.counts();
    assert_eq!((c.client, c.server), (0, 0), "nothing left behind");
}

#[test]
fn full_table_answers_503() {
    let mut h = Harness::new();
    h.layer = TxLayer::new(Config {
        max_transactions: 1,
        ..Config::default()
    });
    h.layer
        .on_request(h.now, request("OPTIONS", "z9hG4bK1", 1), PEER, false);
    let _: Vec<TxId> = h
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::Request { tx, .. } => Some(*tx),
            _ => None,
        })
        .collect();
    h.layer
        .on_request(h.now, request("OPTIONS", "z9hG4bK2", 2), PEER, false);
    let out = h.transmits();
    assert_eq!(first_line(&out[0]), "SIP/2.0 503 Service Unavailable");
    let r = Message::parse(&out[0].bytes).unwrap();
    assert_eq!(r.header_values_by_text("Retry-After").next(), Some("5"));
    assert_eq!(h.layer.counts().server, 1);
    // A BYE is never refused for capacity: it frees what the dialog holds.
    h.layer
        .on_request(h.now, request("BYE", "z9hG4bK3", 3), PEER, false);
    assert!(h.transmits().is_empty());
    assert!(matches!(h.events().as_slice(), [Event::Request { .. }]));
    assert!(
        h.layer
            .send_request(h.now, request("BYE", "z9hG4bK4", 4), PEER, false)
            .is_ok()
    );
    assert!(
        h.layer
            .send_request(h.now, request("OPTIONS", "z9hG4bK5", 5), PEER, false)
            .is_err()
    );
}

#[test]
fn rfc2543_peers_are_matched_without_a_magic_cookie() {
    let mut h = Harness::new();
    let raw = "INVITE sip:UserB@example.com SIP/2.0\r\nVia: SIP/2.0/UDP iftgw.example.com\r\nFrom: <sip:+13035551111@ift.client.example.net;user=phone>;tag=a\r\nTo: sip:+16505552222@ss1.example.net;user=phone\r\nCall-ID: inv2543.1717@ift.client.example.com\r\nCSeq: 56 INVITE\r\nContent-Length: 0\r\n\r\n";
    let req = Message::parse(raw.as_bytes()).unwrap();
    h.layer.on_request(h.now, req.clone(), PEER, false);
    assert_eq!(h.events().len(), 1);
    h.layer.on_request(h.now, req, PEER, false);
    assert!(
        h.events().is_empty(),
        "retransmission recognised without a branch"
    );
}

#[test]
fn a_transport_failure_ends_the_client_transactions_to_that_peer_only() {
    let mut h = Harness::new();
    let now = h.now;
    let a = h
        .layer
        .send_request(now, invite("z9hG4bKa"), PEER, true)
        .unwrap();
    let b = h
        .layer
        .send_request(now, request("OPTIONS", "z9hG4bKb", 2), PEER, true)
        .unwrap();
    let other = h
        .layer
        .send_request(now, request("OPTIONS", "z9hG4bKc", 3), "elsewhere", true)
        .unwrap();
    // One that has its final answer already is not affected.
    let done = h
        .layer
        .send_request(now, request("OPTIONS", "z9hG4bKd", 4), PEER, true)
        .unwrap();
    h.layer.on_response(
        now,
        response(&request("OPTIONS", "z9hG4bKd", 4), 200, Some("t")),
    );
    while h.layer.poll_event().is_some() {}
    assert_eq!(h.layer.transport_failed(&PEER), 2);
    let mut ended: Vec<TxId> = std::iter::from_fn(|| h.layer.poll_event())
        .filter_map(|e| match e {
            Event::Timeout { tx } => Some(tx),
            _ => None,
        })
        .collect();
    ended.sort_by_key(|t| format!("{t:?}"));
    let mut want = vec![a, b];
    want.sort_by_key(|t| format!("{t:?}"));
    assert_eq!(ended, want);
    assert!(h.layer.cancel(now, a).is_err(), "a is gone");
    let _ = (done, other);
    assert_eq!(h.layer.transport_failed(&PEER), 0, "nothing left to end");
    assert_eq!(
        h.layer.transport_failed(&"elsewhere"),
        1,
        "the other peer's is still there"
    );
}

#[test]
fn an_abandoned_client_transaction_stops_retransmitting_and_reports_nothing() {
    let mut h = Harness::new();
    let now = h.now;
    let req = request("OPTIONS", "z9hG4bKab", 1);
    let tx = h.layer.send_request(now, req.clone(), PEER, false).unwrap();
    let _ = h.layer.poll_transmit();
    assert!(h.layer.abandon(tx));
    assert!(!h.layer.abandon(tx), "once");
    let sent = h.advance_to(40_000);
    assert!(sent.is_empty(), "no retransmission: {:?}", times(&sent));
    h.layer.on_response(h.now, response(&req, 200, Some("t")));
    assert!(
        h.layer.poll_event().is_none(),
        "a late answer matches nothing"
    );
    assert_eq!(h.layer.counts().client, 0);
}
