//! Property tests: generated messages survive write → parse unchanged, and no input, however
//! hostile, makes the parser, framer or validator panic.

use bytes::Bytes;
use proptest::prelude::*;
use sipwarden_sip::{
    HeaderName, Limits, Message, Method, Policy, StatusCode, StreamFramer, StreamItem,
    decision_for_parse_error, validate,
};

// === generators ===

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9.!%*_+`'~-]{0,11}"
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]([a-z0-9-]{0,6}[a-z0-9])?(\\.[a-z][a-z0-9]{0,6}){0,3}",
        (any::<u8>(), any::<u8>(), any::<u8>(), 1u8..255)
            .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
        any::<[u16; 8]>().prop_map(|s| format!("[{}]", std::net::Ipv6Addr::from(s))),
    ]
}

fn user() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_.!~*'()&=+$,;?/-]{1,12}",
        "\\+[0-9]{8,14}",
        "[a-z]{1,6}%[0-9A-F]{2}[a-z]{0,4}"
    ]
}

fn sip_uri() -> impl Strategy<Value = String> {
    (
        prop::bool::ANY,
        prop::option::of(user()),
        host(),
        prop::option::of(1u16..),
        prop::collection::vec(
            (
                "[a-zA-Z0-9_.!~*'()-]{1,8}",
                prop::option::of("[a-zA-Z0-9_.-]{1,8}"),
            ),
            0..3,
        ),
    )
        .prop_map(|(secure, user, host, port, params)| {
            let mut s = String::from(if secure { "sips:" } else { "sip:" });
            if let Some(u) = user {
                s.push_str(&u);
                s.push('@');
            }
            s.push_str(&host);
            if let Some(p) = port {
                s.push_str(&format!(":{p}"));
            }
            for (n, v) in params {
                s.push(';');
                s.push_str(&n);
                if let Some(v) = v {
                    s.push('=');
                    s.push_str(&v);
                }
            }
            s
        })
}

fn display() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        "[A-Za-z][A-Za-z0-9]{0,6}( [A-Za-z0-9]{1,6}){0,2}",
        "[ -!#-\\[\\]-~]{0,12}".prop_map(|s| format!("\"{s}\"")),
        "[a-z]{0,4}".prop_map(|s| format!("\"{s} \\\" \\\\ x\"")),
    ])
}

fn name_addr() -> impl Strategy<Value = String> {
    (display(), sip_uri(), prop::option::of(token())).prop_map(|(d, u, tag)| {
        let mut s = match d {
            Some(d) => format!("{d} <{u}>"),
            None => format!("<{u}>"),
        };
        if let Some(t) = tag {
            s.push_str(";tag=");
            s.push_str(&t);
        }
        s
    })
}

fn via() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["UDP", "TCP", "TLS", "WS", "WSS", "SCTP"]),
        host(),
        prop::option::of(1u16..),
        token(),
        prop::bool::ANY,
    )
        .prop_map(|(t, h, p, b, rport)| {
            let port = p.map(|p| format!(":{p}")).unwrap_or_default();
            let rport = if rport { ";rport" } else { "" };
            format!("SIP/2.0/{t} {h}{port};branch=z9hG4bK{b}{rport}")
        })
}

/// Extension header values: printable text, never starting or ending with white space.
fn ext_value() -> impl Strategy<Value = String> {
    "[!-~]([ -~]{0,20}[!-~])?"
}

#[derive(Debug, Clone)]
struct Spec {
    request: Option<(String, String)>, // method, uri
    status: (u16, String),
    vias: Vec<String>,
    from: String,
    to: String,
    call_id: String,
    cseq: u32,
    max_forwards: u8,
    contacts: Vec<String>,
    extra: Vec<(String, String)>,
    compact: bool,
    fold: bool,
    body: Vec<u8>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop::option::of((
            prop_oneof![
                prop::sample::select(vec![
                    "INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "INFO", "UPDATE",
                    "MESSAGE", "NOTIFY"
                ])
                .prop_map(String::from),
                "[A-Z]{3,10}",
            ],
            sip_uri(),
        )),
        (100u16..700, "[A-Za-z ]{0,16}"),
        prop::collection::vec(via(), 1..4),
        (
            name_addr(),
            name_addr(),
            "[a-zA-Z0-9.!%*_+`'~()<>:\\\\\"/\\[\\]?{}-]{1,20}(@[a-z0-9.]{1,10})?",
        ),
        (0u32..(1 << 31), any::<u8>()),
        prop::collection::vec(name_addr(), 0..3),
        prop::collection::vec(("X-[A-Za-z][A-Za-z0-9-]{0,10}", ext_value()), 0..5),
        (prop::bool::ANY, prop::bool::ANY),
        prop::collection::vec(any::<u8>(), 0..200),
    )
        .prop_map(
            |(
                request,
                status,
                vias,
                (from, to, call_id),
                (cseq, max_forwards),
                contacts,
                extra,
                (compact, fold),
                body,
            )| Spec {
                request,
                status,
                vias,
                from,
                to,
                call_id,
                cseq,
                max_forwards,
                contacts,
                extra,
                compact,
                fold,
                body,
            },
        )
}

impl Spec {
    fn cseq_method(&self) -> String {
        self.request
            .as_ref()
            .map_or_else(|| "INVITE".to_owned(), |(m, _)| m.clone())
    }

    /// The message as a peer would write it: compact forms and folds when asked for.
    fn to_wire(&self) -> Vec<u8> {
        let name =
            |long: &'static str, short: &'static str| if self.compact { short } else { long };
        let mut s = match &self.request {
            Some((m, u)) => format!("{m} {u} SIP/2.0\r\n"),
            None => format!("SIP/2.0 {} {}\r\n", self.status.0, self.status.1),
        };
        let sep = if self.fold { ",\r\n   " } else { ", " };
        s.push_str(&format!(
            "{}: {}\r\n",
            name("Via", "v"),
            self.vias.join(sep)
        ));
        s.push_str(&format!("{}: {}\r\n", name("From", "f"), self.from));
        s.push_str(&format!("{}: {}\r\n", name("To", "t"), self.to));
        s.push_str(&format!("{}: {}\r\n", name("Call-ID", "i"), self.call_id));
        let cseq_sep = if self.fold { "\r\n\t" } else { " " };
        s.push_str(&format!(
            "CSeq: {}{cseq_sep}{}\r\n",
            self.cseq,
            self.cseq_method()
        ));
        s.push_str(&format!("Max-Forwards: {}\r\n", self.max_forwards));
        for c in &self.contacts {
            s.push_str(&format!("{}: {c}\r\n", name("Contact", "m")));
        }
        for (n, v) in &self.extra {
            s.push_str(&format!("{n}: {v}\r\n"));
        }
        s.push_str(&format!(
            "{}: {}\r\n\r\n",
            name("Content-Length", "l"),
            self.body.len()
        ));
        let mut out = s.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }

    /// The same message built through the API, as the gateway builds the other leg.
    fn build(&self) -> Message {
        let mut m = match &self.request {
            Some((meth, uri)) => Message::request(Method::from_token(meth), meth, uri).unwrap(),
            None => {
                let req = Message::parse(&self.with_request_line()).unwrap();
                let status = StatusCode::new(self.status.0).unwrap();
                let mut r = Message::response_to(&req, status, Some(&self.status.1), None).unwrap();
                r.remove_header(HeaderName::ContentLength);
                r.remove_header(HeaderName::Via);
                r.remove_header(HeaderName::From);
                r.remove_header(HeaderName::To);
                r.remove_header(HeaderName::CallId);
                r.remove_header(HeaderName::CSeq);
                r
            }
        };
        for v in &self.vias {
            m.push_header(HeaderName::Via, v).unwrap();
        }
        m.push_header(HeaderName::From, &self.from).unwrap();
        m.push_header(HeaderName::To, &self.to).unwrap();
        m.push_header(HeaderName::CallId, &self.call_id).unwrap();
        m.push_header(
            HeaderName::CSeq,
            &format!("{} {}", self.cseq, self.cseq_method()),
        )
        .unwrap();
        m.set_max_forwards(self.max_forwards).unwrap();
        for c in &self.contacts {
            m.push_header(HeaderName::Contact, c).unwrap();
        }
        for (n, v) in &self.extra {
            m.push_header_text(n, v).unwrap();
        }
        m.set_body(Bytes::from(self.body.clone()), None).unwrap();
        m
    }

    fn with_request_line(&self) -> Vec<u8> {
        let mut s = self.clone();
        s.request = Some(("INVITE".into(), "sip:x@example.com".into()));
        s.to_wire()
    }
}

fn check_fields(m: &Message, s: &Spec) {
    match &s.request {
        Some((meth, uri)) => {
            assert_eq!(m.method_str(), Some(meth.as_str()));
            assert_eq!(m.request_uri_str(), Some(uri.as_str()));
        }
        None => {
            assert_eq!(m.status().map(|c| c.as_u16()), Some(s.status.0));
            assert_eq!(m.reason_phrase(), Some(s.status.1.as_str()));
        }
    }
    assert_eq!(m.via_count(), s.vias.len());
    assert_eq!(m.call_id(), Some(s.call_id.as_str()));
    let cseq = m.cseq().unwrap();
    assert_eq!(
        (cseq.seq, cseq.method_text),
        (s.cseq, s.cseq_method().as_str())
    );
    assert_eq!(m.max_forwards(), Some(s.max_forwards));
    assert_eq!(m.contacts().unwrap().len(), s.contacts.len());
    assert_eq!(m.body(), &s.body[..]);
    let branch = s.vias[0]
        .split(";branch=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    assert_eq!(m.branch(), Some(branch));
    let tag = |na: &str| na.split(";tag=").nth(1).map(str::to_owned);
    assert_eq!(m.from_tag().map(str::to_owned), tag(&s.from));
    assert_eq!(m.to_tag().map(str::to_owned), tag(&s.to));
    for (n, v) in &s.extra {
        assert!(m.header_values_by_text(n).any(|x| x == v));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// What a peer writes parses to what it meant, and serialises back byte for byte.
    #[test]
    fn wire_roundtrip(s in spec()) {
        let wire = s.to_wire();
        let m = Message::parse(&wire).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&wire)));
        check_fields(&m, &s);
        let out = m.to_bytes();
        prop_assert_eq!(out.as_ref(), &wire[..]);
        let again = Message::parse(&m.to_bytes()).unwrap();
        prop_assert_eq!(&again, &m);
    }

    /// What the gateway builds writes out as bytes that parse back to the same message.
    #[test]
    fn built_roundtrip(s in spec()) {
        let built = s.build();
        check_fields(&built, &s);
        let bytes = built.to_bytes();
        let parsed = Message::parse(&bytes).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)));
        check_fields(&parsed, &s);
        prop_assert_eq!(&parsed, &built);
        prop_assert_eq!(parsed.to_bytes(), bytes);
    }

    /// An answer built from a request reads the same from its cached headers, which are
    /// moved over from the request's rather than decoded again, as from its own bytes parsed
    /// afresh: folds, compact names and several Via rows included.
    #[test]
    fn answers_read_as_they_parse(s in spec(), tag in prop::option::of("[a-z0-9]{1,8}")) {
        let Some(_) = &s.request else { return Ok(()) };
        let req = Message::parse(&s.to_wire()).unwrap();
        let r = Message::response_to(&req, StatusCode::OK, None, tag.as_deref()).unwrap();
        let parsed = Message::parse(&r.to_bytes()).unwrap();
        prop_assert_eq!(&parsed, &r);
        prop_assert_eq!(r.top_via(), parsed.top_via());
        prop_assert_eq!(r.top_via(), req.top_via());
        prop_assert_eq!(r.via_count(), req.via_count());
        prop_assert_eq!(r.branch(), parsed.branch());
        prop_assert_eq!(r.call_id(), parsed.call_id());
        prop_assert_eq!(r.cseq(), parsed.cseq());
        prop_assert_eq!(r.from_tag(), parsed.from_tag());
        prop_assert_eq!(r.from_tag(), req.from_tag());
        prop_assert_eq!(r.to_tag(), parsed.to_tag());
        prop_assert_eq!(r.content_length(), Some(0));
        prop_assert_eq!(r.header(HeaderName::From), parsed.header(HeaderName::From));
        prop_assert_eq!(r.header(HeaderName::To), parsed.header(HeaderName::To));
        prop_assert_eq!(r.from_user(), req.from_user());
        prop_assert_eq!(r.from_display(), req.from_display());
        prop_assert_eq!(r.to_user(), parsed.to_user());
        prop_assert_eq!(r.to_display(), parsed.to_display());
        prop_assert_eq!(r.from_user(), parsed.from_user());
    }

    /// The From and To parts the parser keeps are what parsing the header again gives.
    #[test]
    fn kept_from_and_to_parts_are_the_headers_own(s in spec()) {
        let m = Message::parse(&s.to_wire()).unwrap();
        let from = m.from_header();
        let to = m.to_header();
        prop_assert_eq!(m.from_user(), from.as_ref().and_then(|f| f.uri.user()));
        prop_assert_eq!(m.from_display(), from.as_ref().and_then(|f| f.display));
        prop_assert_eq!(m.to_user(), to.as_ref().and_then(|t| t.uri.user()));
        prop_assert_eq!(m.to_display(), to.as_ref().and_then(|t| t.display));
    }

    /// Arbitrary bytes: an error or a message, never a panic, through every layer.
    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..2048)) {
        exercise(&data);
    }

    /// Mutations of valid messages reach deeper than random bytes do.
    #[test]
    fn mutated_messages_never_panic(
        s in spec(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let mut wire = s.to_wire();
        for (at, byte, op) in edits {
            let i = at.index(wire.len() + 1);
            match op {
                0 if i < wire.len() => wire[i] = byte,
                1 => wire.insert(i, byte),
                _ if i < wire.len() => { wire.remove(i); }
                _ => {}
            }
        }
        exercise(&wire);
    }
}

fn exercise(data: &[u8]) {
    let policy = Policy::default();
    match Message::parse(data) {
        Ok(mut m) => {
            let _ = validate(&m, &policy);
            let _ = (
                m.vias(),
                m.contacts(),
                m.top_via(),
                m.from_header(),
                m.to_header(),
                m.request_uri(),
            );
            let _ = m.auths(HeaderName::Authorization).count();
            let out = m.to_bytes();
            let re = Message::parse(&out).expect("a parsed message re-parses");
            assert_eq!(re, m);
            if m.pop_via().is_ok() && m.push_header_text("X-Test", "1").is_ok() {
                Message::parse(&m.to_bytes()).expect("an edited message re-parses");
            }
        }
        Err(e) => {
            let _ = decision_for_parse_error(&e);
        }
    }
    let mut f = StreamFramer::new(Limits::default());
    for chunk in data.chunks(7) {
        f.push(chunk);
        while let Some(item) = f.next_item() {
            if let Ok(StreamItem::Message(m)) = item {
                let _ = validate(&m, &policy);
            }
        }
    }
    let _ = sipwarden_sip::sdp::parse(data);
}
