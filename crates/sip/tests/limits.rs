//! Every parser limit, hit: the message is refused with the matching error, before the parser
//! holds more than the limit allows.

use sipwarden_sip::{
    Decision, Limits, Message, ParseErrorKind, StreamFramer, decision_for_parse_error,
};

fn message(extra_headers: &str, uri: &str, body: &str) -> Vec<u8> {
    format!(
        "MESSAGE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: limits@192.0.2.1\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\n{extra_headers}Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn kind(data: Vec<u8>, limits: &Limits) -> ParseErrorKind {
    Message::parse_datagram(data, limits).unwrap_err().kind
}

#[test]
fn defaults_accept_ordinary_messages() {
    assert!(
        Message::parse_datagram(
            message("", "sip:b@example.com", "hello"),
            &Limits::default()
        )
        .is_ok()
    );
}

#[test]
fn message_size() {
    let limits = Limits {
        max_message_bytes: 300,
        ..Limits::default()
    };
    assert_eq!(
        kind(message("", "sip:b@example.com", &"x".repeat(200)), &limits),
        ParseErrorKind::MessageTooLarge
    );
}

#[test]
fn head_size() {
    let limits = Limits {
        max_head_bytes: 256,
        ..Limits::default()
    };
    let big = format!("X-Pad: {}\r\n", "p".repeat(300));
    assert_eq!(
        kind(message(&big, "sip:b@example.com", ""), &limits),
        ParseErrorKind::MessageTooLarge
    );
}

#[test]
fn header_count() {
    let limits = Limits {
        max_headers: 10,
        ..Limits::default()
    };
    let many: String = (0..5).map(|i| format!("X-H{i}: {i}\r\n")).collect();
    assert_eq!(
        kind(message(&many, "sip:b@example.com", ""), &limits),
        ParseErrorKind::TooManyHeaders
    );
}

#[test]
fn header_line_length_counts_folds() {
    let limits = Limits {
        max_header_line: 64,
        ..Limits::default()
    };
    let long = format!("X-Long: {}\r\n", "l".repeat(80));
    assert_eq!(
        kind(message(&long, "sip:b@example.com", ""), &limits),
        ParseErrorKind::HeaderTooLong
    );
    let folded = format!(
        "X-Folded: {}\r\n {}\r\n {}\r\n",
        "a".repeat(30),
        "b".repeat(30),
        "c".repeat(30)
    );
    assert_eq!(
        kind(message(&folded, "sip:b@example.com", ""), &limits),
        ParseErrorKind::HeaderTooLong
    );
}

#[test]
fn uri_length_is_414() {
    let limits = Limits {
        max_uri_bytes: 40,
        ..Limits::default()
    };
    let uri = format!("sip:{}@example.com", "u".repeat(50));
    let err = Message::parse_datagram(message("", &uri, ""), &limits).unwrap_err();
    assert_eq!(err.kind, ParseErrorKind::UriTooLong);
    assert!(
        matches!(decision_for_parse_error(&err), Decision::Reject { status, .. } if status.as_u16() == 414)
    );
}

#[test]
fn body_size() {
    let limits = Limits {
        max_body_bytes: 16,
        ..Limits::default()
    };
    assert_eq!(
        kind(message("", "sip:b@example.com", &"b".repeat(17)), &limits),
        ParseErrorKind::BodyTooLarge
    );
    let mut f = StreamFramer::new(limits);
    f.push(&message("", "sip:b@example.com", &"b".repeat(17)));
    assert_eq!(
        f.next_item().unwrap().unwrap_err().kind,
        ParseErrorKind::BodyTooLarge
    );
}

#[test]
fn via_count() {
    let limits = Limits {
        max_vias: 3,
        ..Limits::default()
    };
    let vias = "Via: SIP/2.0/UDP a;branch=z9hG4bK2, SIP/2.0/UDP b;branch=z9hG4bK3\r\nVia: SIP/2.0/UDP c;branch=z9hG4bK4\r\n";
    assert_eq!(
        kind(message(vias, "sip:b@example.com", ""), &limits),
        ParseErrorKind::TooManyVias
    );
}

#[test]
fn stream_without_blank_line_stops_at_the_head_limit() {
    let limits = Limits {
        max_head_bytes: 1024,
        ..Limits::default()
    };
    let mut f = StreamFramer::new(limits);
    let mut fed = 0;
    let line = b"X-Drip: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    f.push(b"OPTIONS sip:a@b SIP/2.0\r\n");
    loop {
        f.push(line);
        fed += line.len();
        if let Some(r) = f.next_item() {
            assert_eq!(r.unwrap_err().kind, ParseErrorKind::MessageTooLarge);
            break;
        }
        assert!(fed < 2048, "framer kept buffering past its limit");
    }
    assert_eq!(f.buffered(), 0, "a failed stream holds nothing");
}
