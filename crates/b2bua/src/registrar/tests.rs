//! The registrar's rules, without a core: a REGISTER in, the outcome, the answer and the
//! location table out.

use std::time::{Duration, Instant};

use sipwarden_sip::header::Transport;

use super::*;

const A: &str = "<sip:1001@10.0.0.5:5062>";
const B: &str = "<sip:1001@10.0.0.5:5064>";
const C: &str = "<sip:1001@10.0.0.5:5066>";

fn settings() -> RegistrarSettings {
    RegistrarSettings {
        min_expires: Duration::from_secs(60),
        max_expires: Duration::from_secs(3600),
        default_expires: Duration::from_secs(3600),
        udp_ping: None,
        max_bindings: 100_000,
    }
}

fn udp(addr: &str) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: addr.parse().unwrap(),
        flow: None,
    }
}

/// A REGISTER for 1001 with `contact` (no Contact header when empty) and the header lines
/// `extra`.
fn register(contact: &str, extra: &str, cseq: u32, call_id: &str) -> Message {
    register_as("1001", contact, extra, cseq, call_id)
}

/// The same for `user`.
fn register_as(user: &str, contact: &str, extra: &str, cseq: u32, call_id: &str) -> Message {
    let contact = if contact.is_empty() {
        String::new()
    } else {
        format!("Contact: {contact}\r\n")
    };
    Message::parse(
        format!(
            "REGISTER sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKr{cseq}{call_id}\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@127.0.0.1>;tag=f{call_id}\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n{contact}{extra}Content-Length: 0\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap()
}

/// Runs one REGISTER through the registrar, as the core does after the auth stage.
struct Lab {
    registrar: Registrar,
    settings: RegistrarSettings,
    max_contacts: usize,
    t0: Instant,
}

impl Lab {
    fn new() -> Self {
        Self {
            registrar: Registrar::default(),
            settings: settings(),
            max_contacts: 5,
            t0: Instant::now(),
        }
    }

    /// `msg` from `src`, `secs` after the start.
    fn send(&mut self, secs: u64, msg: &Message, src: &str) -> (Outcome, Message) {
        let msg_aor = aor(msg);
        let r = self.registrar.register(Register {
            now: self.t0 + Duration::from_secs(secs),
            msg,
            src: udp(src),
            aor: &msg_aor,
            settings: &self.settings,
            max_contacts: self.max_contacts,
            to_tag: "t1",
        });
        (r.outcome, r.answer.expect("an answer"))
    }

    fn contacts(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .registrar
            .location()
            .bindings("1001")
            .iter()
            .map(|b| b.contact.as_str())
            .collect();
        v.sort_unstable();
        v
    }
}

fn first_line(m: &Message) -> String {
    format!(
        "{} {}",
        m.status().unwrap().as_u16(),
        m.reason_phrase().unwrap()
    )
}

/// The answer's Contact values, sorted.
fn granted(m: &Message) -> Vec<&str> {
    let mut v: Vec<&str> = m.header_values(HeaderName::Contact).collect();
    v.sort_unstable();
    v
}

#[test]
fn a_new_binding_is_listed_with_its_lifetime_and_kept_where_it_came_from() {
    let mut lab = Lab::new();
    let (outcome, rsp) = lab.send(
        0,
        &register(A, "Expires: 600\r\n", 1, "c1"),
        "127.0.0.9:5062",
    );
    assert_eq!(outcome, Outcome::Accepted);
    assert_eq!(first_line(&rsp), "200 OK");
    assert_eq!(granted(&rsp), ["<sip:1001@10.0.0.5:5062>;expires=600"]);
    assert_eq!(rsp.to_tag(), Some("t1"));
    assert_eq!(rsp.header(HeaderName::Supported), Some("path, outbound"));
    let b = &lab.registrar.location().bindings("1001")[0];
    assert_eq!(
        b.source,
        udp("127.0.0.9:5062"),
        "reached where it came from"
    );
    assert_eq!(b.expires, lab.t0 + Duration::from_secs(600));
    assert_eq!((b.call_id.as_str(), b.cseq), ("c1", 1));
    assert!(matches!(
        &lab.registrar.take_changes()[..],
        [LocationChange::Upsert(x)] if x.contact == "sip:1001@10.0.0.5:5062"
    ));
    // Without any Expires it gets the default; beyond the maximum, the maximum.
    let (_, rsp) = lab.send(0, &register(B, "", 1, "c2"), "127.0.0.9:5064");
    assert!(granted(&rsp).contains(&"<sip:1001@10.0.0.5:5064>;expires=3600"));
    let (_, rsp) = lab.send(
        0,
        &register(C, "Expires: 99999\r\n", 1, "c3"),
        "127.0.0.9:5066",
    );
    assert!(granted(&rsp).contains(&"<sip:1001@10.0.0.5:5066>;expires=3600"));
    assert_eq!(lab.registrar.location().len(), 3);
}

#[test]
fn a_refresh_renews_the_binding_in_place() {
    let mut lab = Lab::new();
    // The usual account: one phone. Its refresh must not count as a second contact.
    lab.max_contacts = 1;
    let _ = lab.send(
        0,
        &register(A, "Expires: 600\r\n", 1, "c1"),
        "127.0.0.9:5062",
    );
    let _ = lab.registrar.take_changes();
    let (outcome, rsp) = lab.send(
        300,
        &register(A, "Expires: 900\r\n", 2, "c1"),
        "127.0.0.9:5070",
    );
    assert_eq!(outcome, Outcome::Accepted);
    assert_eq!(granted(&rsp), ["<sip:1001@10.0.0.5:5062>;expires=900"]);
    let b = lab.registrar.location().bindings("1001");
    assert_eq!(b.len(), 1, "refreshed, not added");
    assert_eq!(b[0].expires, lab.t0 + Duration::from_secs(1200));
    assert_eq!(b[0].cseq, 2);
    assert_eq!(
        b[0].source,
        udp("127.0.0.9:5070"),
        "the phone's new address"
    );
    assert_eq!(lab.registrar.location().len(), 1);
    assert!(matches!(
        &lab.registrar.take_changes()[..],
        [LocationChange::Upsert(x)] if x.cseq == 2
    ));
    // The old expiry is forgotten: nothing goes at 600 s, everything at 1200 s.
    lab.registrar.expire(lab.t0 + Duration::from_secs(601));
    assert_eq!(lab.contacts().len(), 1);
    lab.registrar.expire(lab.t0 + Duration::from_secs(1200));
    assert!(lab.contacts().is_empty());
}

#[test]
fn expires_zero_removes_that_binding_only() {
    let mut lab = Lab::new();
    let both = format!("{A}, {B}");
    let _ = lab.send(
        0,
        &register(&both, "Expires: 600\r\n", 1, "c1"),
        "127.0.0.9:5062",
    );
    let _ = lab.registrar.take_changes();
    let (outcome, rsp) = lab.send(
        10,
        &register(&format!("{A};expires=0"), "Expires: 600\r\n", 2, "c1"),
        "127.0.0.9:5062",
    );
    assert_eq!(outcome, Outcome::Accepted);
    assert_eq!(granted(&rsp), ["<sip:1001@10.0.0.5:5064>;expires=590"]);
    assert_eq!(lab.contacts(), ["sip:1001@10.0.0.5:5064"]);
    assert!(matches!(
        &lab.registrar.take_changes()[..],
        [LocationChange::Remove { contact, .. }] if contact == "sip:1001@10.0.0.5:5062"
    ));
}

#[test]
fn contact_star_with_expires_zero_removes_every_binding() {
    let mut lab = Lab::new();
    let both = format!("{A}, {B}");
    let _ = lab.send(
        0,
        &register(&both, "Expires: 600\r\n", 1, "c1"),
        "127.0.0.9:5062",
    );
    let _ = lab.registrar.take_changes();
    // RFC 3261 §10.3 step 6: `*` only with Expires 0.
    let (outcome, rsp) = lab.send(
        0,
        &register("*", "Expires: 60\r\n", 1, "c2"),
        "127.0.0.9:5062",
    );
    assert_eq!(outcome, Outcome::Refused(StatusCode::BAD_REQUEST));
    assert_eq!(first_line(&rsp), "400 Contact * Needs Expires 0");
    assert_eq!(lab.contacts().len(), 2, "a refusal changes nothing");
    let (outcome, rsp) = lab.send(
        0,
        &register("*", "Expires: 0\r\n", 1, "c2"),
        "127.0.0.9:5062",
    );
    assert_eq!(outcome, Outcome::Accepted);
    assert_eq!(first_line(&rsp), "200 OK");
    assert!(granted(&rsp).is_empty());
    assert!(lab.contacts().is_empty());
    assert_eq!(lab.registrar.location().len(), 0);
    assert_eq!(lab.registrar.take_changes().len(), 2);
}

#[test]
fn an_older_cseq_of_the_same_call_id_is_out_of_order_and_changes_nothing() {
    let mut lab = Lab::new();
    let _ = lab.send(
        0,
        &register(A, "Expires: 600\r\n", 4, "c1"),
        "127.0.0.9:5062",
    );
    let _ = lab.registrar.take_changes();
    let (outcome, rsp) = lab.send(5, &register(A, "Expires: 0\r\n", 3, "c1"), "127.0.0.9:5062");
    assert_eq!(outcome, Outcome::OutOfOrder);
    assert_eq!(first_line(&rsp), "500 Out Of Order");
    assert_eq!(lab.contacts(), ["sip:1001@10.0.0.5:5062"]);
    assert!(lab.registrar.take_changes().is_empty());
    // The same CSeq again is a retransmission: processed again. Another Call-ID is
    // another phone's ordering: its CSeq is not compared.
    let (outcome, _) = lab.send(
        5,
        &register(A, "Expires: 600\r\n", 4, "c1"),
        "127.0.0.9:5062",
    );
    assert_eq!(outcome, Outcome::Accepted);
    let (outcome, _) = lab.send(5, &register(A, "Expires: 0\r\n", 1, "c2"), "127.0.0.9:5062");
    assert_eq!(outcome, Outcome::Accepted);
    assert!(lab.contacts().is_empty());
}

#[test]
fn beyond_max_contacts_the_binding_expiring_first_gives_way() {
    let mut lab = Lab::new();
    lab.max_contacts = 2;
    let _ = lab.send(
        0,
        &register(A, "Expires: 600\r\n", 1, "c1"),
        "127.0.0.9:5062",
    );
    let _ = lab.send(
        0,
        &register(B, "Expires: 1200\r\n", 1, "c2"),
        "127.0.0.9:5064",
    );
    let _ = lab.registrar.take_changes();
    let (outcome, rsp) = lab.send(
        0,
        &register(C, "Expires: 900\r\n", 1, "c3"),
        "127.0.0.9:5066",
    );
    assert_eq!(outcome, Outcome::Accepted);
    assert_eq!(
        granted(&rsp),
        [
            "<sip:1001@10.0.0.5:5064>;expires=1200",
            "<sip:1001@10.0.0.5:5066>;expires=900"
        ]
    );
    assert_eq!(lab.registrar.location().len(), 2);
    assert!(matches!(
        &lab.registrar.take_changes()[..],
        [LocationChange::Upsert(up), LocationChange::Remove { contact, .. }]
            if up.contact == "sip:1001@10.0.0.5:5066" && contact == "sip:1001@10.0.0.5:5062"
    ));
}

#[test]
fn an_outbound_flow_from_a_new_address_replaces_the_old_one() {
    let flow = |contact: &str| {
        format!(
            "{contact};+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\";reg-id=1"
        )
    };
    let outbound = "Supported: path, outbound\r\nExpires: 600\r\n";
    let mut lab = Lab::new();
    let (_, rsp) = lab.send(0, &register(&flow(A), outbound, 1, "c1"), "127.0.0.9:5062");
    assert_eq!(rsp.header(HeaderName::Require), Some("outbound"));
    let _ = lab.registrar.take_changes();
    // The phone comes back from another address, with another Contact: the same flow.
    let (outcome, rsp) = lab.send(30, &register(&flow(B), outbound, 1, "c2"), "127.0.0.8:5064");
    assert_eq!(outcome, Outcome::Accepted);
    assert_eq!(granted(&rsp), ["<sip:1001@10.0.0.5:5064>;expires=600"]);
    assert_eq!(rsp.header(HeaderName::Require), Some("outbound"));
    assert_eq!(lab.contacts(), ["sip:1001@10.0.0.5:5064"]);
    assert!(matches!(
        &lab.registrar.take_changes()[..],
        [LocationChange::Remove { contact, .. }, LocationChange::Upsert(up)]
            if contact == "sip:1001@10.0.0.5:5062" && up.contact == "sip:1001@10.0.0.5:5064"
    ));
    // Without `Supported: outbound` the instance names nothing: a second binding.
    let (_, rsp) = lab.send(
        60,
        &register(&flow(C), "Expires: 600\r\n", 1, "c3"),
        "127.0.0.7:5066",
    );
    assert_eq!(lab.contacts().len(), 2);
    assert_eq!(rsp.header(HeaderName::Require), None);
}

#[test]
fn a_lifetime_under_min_expires_gets_423_with_min_expires() {
    let mut lab = Lab::new();
    let (outcome, rsp) = lab.send(
        0,
        &register(A, "Expires: 10\r\n", 1, "c1"),
        "127.0.0.9:5062",
    );
    assert_eq!(outcome, Outcome::Refused(StatusCode::INTERVAL_TOO_BRIEF));
    assert_eq!(first_line(&rsp), "423 Interval Too Brief");
    assert_eq!(rsp.header(HeaderName::MinExpires), Some("60"));
    assert!(lab.contacts().is_empty());
    assert!(lab.registrar.take_changes().is_empty());
    // One contact too brief refuses the whole REGISTER; exactly the minimum is fine.
    let mixed = format!("{A};expires=3000, {B};expires=59");
    let (outcome, _) = lab.send(0, &register(&mixed, "", 1, "c1"), "127.0.0.9:5062");
    assert_eq!(outcome, Outcome::Refused(StatusCode::INTERVAL_TOO_BRIEF));
    assert!(lab.contacts().is_empty());
    let (outcome, _) = lab.send(
        0,
        &register(A, "Expires: 60\r\n", 1, "c1"),
        "127.0.0.9:5062",
    );
    assert_eq!(outcome, Outcome::Accepted);
}

#[test]
fn a_full_location_table_refuses_new_bindings_but_not_refreshes_or_moves() {
    let mut lab = Lab::new();
    lab.settings.max_bindings = 2;
    let other = "<sip:1003@10.0.0.6:5062>";
    let _ = lab.send(
        0,
        &register(A, "Expires: 600\r\n", 1, "c1"),
        "127.0.0.9:5062",
    );
    let (outcome, _) = lab.send(
        0,
        &register_as("1003", other, "Expires: 600\r\n", 1, "d1"),
        "127.0.0.6:5062",
    );
    assert_eq!(outcome, Outcome::Accepted);
    assert_eq!(lab.registrar.location().len(), 2, "full");
    let _ = lab.registrar.take_changes();
    // The bound is for all accounts together: 1001 may not add a second contact.
    let (outcome, rsp) = lab.send(
        0,
        &register(B, "Expires: 600\r\n", 1, "c2"),
        "127.0.0.9:5064",
    );
    assert_eq!(outcome, Outcome::Full);
    assert_eq!(first_line(&rsp), "503 Too Many Registrations");
    assert_eq!(lab.contacts(), ["sip:1001@10.0.0.5:5062"]);
    assert_eq!(lab.registrar.location().len(), 2);
    assert!(lab.registrar.take_changes().is_empty(), "nothing changed");
    // A refresh adds nothing: it passes.
    let (outcome, _) = lab.send(
        9,
        &register(A, "Expires: 600\r\n", 2, "c1"),
        "127.0.0.9:5062",
    );
    assert_eq!(outcome, Outcome::Accepted);
    // Nor does a phone that comes back from a new address when its old binding gives way.
    lab.max_contacts = 1;
    let (outcome, _) = lab.send(
        10,
        &register(B, "Expires: 600\r\n", 1, "c3"),
        "127.0.0.9:5064",
    );
    assert_eq!(outcome, Outcome::Accepted);
    assert_eq!(lab.contacts(), ["sip:1001@10.0.0.5:5064"]);
    // A removal makes room again.
    lab.max_contacts = 5;
    let (outcome, _) = lab.send(
        20,
        &register_as("1003", other, "Expires: 0\r\n", 2, "d1"),
        "127.0.0.6:5062",
    );
    assert_eq!(outcome, Outcome::Accepted);
    let (outcome, _) = lab.send(
        20,
        &register(C, "Expires: 600\r\n", 1, "c4"),
        "127.0.0.9:5066",
    );
    assert_eq!(outcome, Outcome::Accepted);
    assert_eq!(lab.registrar.location().len(), 2);
    // A reload that lowers the bound below the table's size still lets refreshes pass.
    lab.settings.max_bindings = 1;
    let (outcome, _) = lab.send(
        30,
        &register(C, "Expires: 600\r\n", 2, "c4"),
        "127.0.0.9:5066",
    );
    assert_eq!(outcome, Outcome::Accepted);
}

#[test]
fn bindings_restored_beyond_the_bound_are_left_out() {
    let mut lab = Lab::new();
    let _ = lab.send(
        0,
        &register(&format!("{A}, {B}"), "", 1, "c1"),
        "127.0.0.9:5062",
    );
    let kept: Vec<Binding> = lab.registrar.location().bindings("1001").to_vec();
    let mut fresh = Registrar::default();
    for b in &kept {
        assert!(fresh.restore(b.clone(), 2));
    }
    let mut third = kept[0].clone();
    third.contact = "sip:1001@10.0.0.5:5066".to_owned();
    assert!(
        !fresh.restore(third, 2),
        "a third binding is beyond the bound"
    );
    // One already held is replaced, not added.
    let mut moved = kept[0].clone();
    moved.source = udp("127.0.0.8:5062");
    assert!(fresh.restore(moved, 2));
    assert_eq!(fresh.location().len(), 2);
    assert!(fresh.take_changes().is_empty(), "restoring records nothing");
}
