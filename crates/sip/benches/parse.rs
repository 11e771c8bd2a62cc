//! Parse+validate and serialisation of `sipwarden-sip` against `ezk-sip-types`, on the same
//! messages, in the same run.
//!
//! Run with `cargo bench -p sipwarden-sip --bench parse`. Every message gets one criterion
//! group, so the two libraries sit side by side in the report:
//!
//! - `sipwarden/parse_validate`: `Message::parse_datagram` (framing, start line, every header
//!   row split and named, Via/CSeq/Call-ID/From-tag/To-tag/Max-Forwards/Content-Length decoded)
//!   followed by `validate` with the default policy, which decodes every header the gateway
//!   interprets (Contact, Route/Record-Route, P-Asserted-Identity, Authorization,
//!   Content-Type, Expires, Allow/Supported/Require …), re-checks Contact and, for responses,
//!   walks every Via value.
//! - `sipwarden/parse`: the parse alone, for information.
//! - `ezk/parse`: what ezk-sip-core does with a datagram (its `transport::parse`): split the
//!   message into lines with `PullParser`, parse the start line with `MessageLine`, parse
//!   each header line with `Line` into a `Headers` map, decode Content-Length and slice the
//!   body; then decode into typed values the headers our validate touches: every Via, From,
//!   To, Call-ID, CSeq, Max-Forwards, Contact, Record-Route, P-Asserted-Identity,
//!   Authorization, Content-Type, Expires, Allow and Supported (the ones present). ezk has no
//!   policy layer, so no RFC 3261 §8.2/§16.3 decision is taken on that side beyond the
//!   CSeq-method and Max-Forwards comparisons below.
//! - `ezk/parse_head`: the ezk split alone (start line, header lines into `Headers`, body),
//!   for information.
//! - `sipwarden/serialize/to_bytes_unedited`: `to_bytes()` of the unedited parsed message,
//!   which is a reference-count bump of the original buffer (zero-copy).
//! - `sipwarden/serialize/write_to_edited`: the realistic case: the parsed message got one
//!   `X-Bench: 1` header (added once, outside the loop) and is written row by row with
//!   `write_to` into a reused `Vec`.
//! - `ezk/serialize`: ezk's parsed message with the same `X-Bench: 1` header added, printed
//!   the way ezk-sip-core prints a message (start line, `Headers` `Display`, blank line,
//!   body) into a reused `Vec`.

use std::hint::black_box;
use std::io::Write as _;
use std::str::from_utf8;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use ezk_sip_types::header::typed::{
    Allow, AuthResponse, CSeq, CallID, Contact, ContentLength, ContentType, Expires, FromTo,
    MaxForwards, Routing, Supported, Via,
};
use ezk_sip_types::msg::{Line, MessageLine, PullParser};
use ezk_sip_types::parse::Parse as _;
use ezk_sip_types::print::{AppendCtx as _, PrintCtx};
use ezk_sip_types::{Headers, Name};
use sipwarden_sip::{Decision, HeaderName, Limits, Message, Policy, validate};

const INVITE_SDP: &[u8] = include_bytes!("messages/invite_sdp.sip");
const REGISTER_AUTH: &[u8] = include_bytes!("messages/register_auth.sip");
const OK_RECORD_ROUTE: &[u8] = include_bytes!("messages/ok_record_route.sip");

/// ezk-sip-types has no constant for P-Asserted-Identity.
const P_ASSERTED_IDENTITY: Name = Name::custom("P-Asserted-Identity", &["p-asserted-identity"]);

/// A message as ezk-sip-core holds it after receiving a datagram.
struct EzkMessage {
    line: MessageLine,
    headers: Headers,
    body: Bytes,
}

/// The header values decoded into ezk's typed headers.
#[allow(dead_code)] // Only black-boxed: building the values is what is measured.
struct EzkDecoded {
    vias: Vec<Via>,
    from: FromTo,
    to: FromTo,
    call_id: CallID,
    cseq: CSeq,
    max_forwards: Option<MaxForwards>,
    contacts: Vec<Contact>,
    record_route: Vec<Routing>,
    p_asserted_identity: Vec<Routing>,
    authorization: Option<AuthResponse>,
    content_type: Option<ContentType>,
    expires: Option<Expires>,
    allow: Vec<Allow>,
    supported: Vec<Supported>,
}

/// ezk-sip-core's datagram parse (`transport::parse::parse_complete_sip`), on ezk-sip-types.
fn ezk_parse_head(buffer: Bytes) -> EzkMessage {
    let mut parser = PullParser::new(&buffer, 0);
    let mut line = None;
    let mut headers = Headers::new();
    for item in &mut parser {
        let raw = item.expect("ezk: incomplete message");
        let text = from_utf8(raw).expect("ezk: header line is not UTF-8");
        if line.is_none() {
            let (_, l) = MessageLine::parse(&buffer)(text).expect("ezk: bad start line");
            line = Some(l);
        } else {
            let (_, l) = Line::parse(&buffer, text).expect("ezk: bad header line");
            headers.insert(l.name, l.value);
        }
    }
    let head_end = parser.head_end();
    let body = match headers.get_named::<ContentLength>() {
        Ok(ContentLength(0)) => Bytes::new(),
        Ok(ContentLength(n)) => buffer.slice(head_end..head_end + n),
        Err(_) => buffer.slice(head_end..),
    };
    EzkMessage {
        line: line.expect("ezk: no start line"),
        headers,
        body,
    }
}

/// Decodes what our parse+validate decodes. Absent optional headers are `None`/empty; a
/// malformed one panics (the messages are valid, so it never does in the loop).
fn ezk_decode(m: &EzkMessage) -> EzkDecoded {
    let h = &m.headers;
    let opt_vec = |name: Name| -> Vec<Routing> {
        h.try_get(name)
            .transpose()
            .expect("ezk: bad routing header")
            .unwrap_or_default()
    };
    let decoded = EzkDecoded {
        vias: h.get_named().expect("ezk: Via"),
        from: h.get(Name::FROM).expect("ezk: From"),
        to: h.get(Name::TO).expect("ezk: To"),
        call_id: h.get_named().expect("ezk: Call-ID"),
        cseq: h.get_named().expect("ezk: CSeq"),
        max_forwards: h.try_get_named().transpose().expect("ezk: Max-Forwards"),
        contacts: h
            .try_get_named()
            .transpose()
            .expect("ezk: Contact")
            .unwrap_or_default(),
        record_route: opt_vec(Name::RECORD_ROUTE),
        p_asserted_identity: opt_vec(P_ASSERTED_IDENTITY),
        authorization: h
            .try_get(Name::AUTHORIZATION)
            .transpose()
            .expect("ezk: Authorization"),
        content_type: h.try_get_named().transpose().expect("ezk: Content-Type"),
        expires: h.try_get_named().transpose().expect("ezk: Expires"),
        allow: h
            .try_get_named()
            .transpose()
            .expect("ezk: Allow")
            .unwrap_or_default(),
        supported: h
            .try_get_named()
            .transpose()
            .expect("ezk: Supported")
            .unwrap_or_default(),
    };
    // The two cheap request checks our validate also makes.
    if let Some(method) = m.line.request_method() {
        assert!(decoded.cseq.method == *method, "ezk: CSeq method mismatch");
        assert!(
            decoded.max_forwards.as_ref().is_none_or(|mf| mf.0 != 0),
            "ezk: Max-Forwards 0"
        );
    }
    decoded
}

fn ezk_parse(buffer: Bytes) -> (EzkMessage, EzkDecoded) {
    let m = ezk_parse_head(buffer);
    let d = ezk_decode(&m);
    (m, d)
}

/// Prints a message the way ezk-sip-core does: start line, headers, blank line, body.
fn ezk_write(m: &EzkMessage, out: &mut Vec<u8>) {
    let ctx = PrintCtx {
        method: m.line.request_method(),
        uri: None,
    };
    write!(out, "{}\r\n{}\r\n", m.line.print_ctx(ctx), m.headers).expect("write to Vec");
    out.extend_from_slice(&m.body);
}

fn bench_message(c: &mut Criterion, name: &str, raw: &'static [u8]) {
    let limits = Limits::default();
    let policy = Policy::default();

    // Sanity checks, once: both libraries accept the message and see the same thing.
    let ours = Message::parse_datagram(Bytes::from_static(raw), &limits)
        .unwrap_or_else(|e| panic!("{name}: sipwarden does not parse it: {e:?}"));
    assert_eq!(
        validate(&ours, &policy),
        Decision::Accept,
        "{name}: sipwarden does not accept it"
    );
    assert_eq!(
        ours.to_bytes().as_ref(),
        raw,
        "{name}: sipwarden round trip"
    );
    let (mut theirs, decoded) = ezk_parse(Bytes::from_static(raw));
    assert_eq!(theirs.body.as_ref(), ours.body(), "{name}: bodies differ");
    assert_eq!(decoded.vias.len(), ours.via_count(), "{name}: Via counts");
    assert_eq!(
        decoded.contacts.len(),
        ours.contacts().expect("contacts").len(),
        "{name}: Contact counts"
    );
    // ezk's list decoders skip what they cannot parse instead of failing, so check that
    // they decoded as many values as we see (an empty list would be a cheap non-parse).
    let count = |name: HeaderName| ours.name_addrs(name).expect("name-addr list").len();
    assert_eq!(
        decoded.record_route.len(),
        count(HeaderName::RecordRoute),
        "{name}: Record-Route counts"
    );
    assert_eq!(
        decoded.p_asserted_identity.len(),
        count(HeaderName::PAssertedIdentity),
        "{name}: P-Asserted-Identity counts"
    );
    let tokens = |name: HeaderName| ours.tokens(name).expect("token list").len();
    assert_eq!(
        decoded.allow.len(),
        tokens(HeaderName::Allow),
        "{name}: Allow"
    );
    assert_eq!(
        decoded.supported.len(),
        tokens(HeaderName::Supported),
        "{name}: Supported"
    );
    assert_eq!(
        decoded.authorization.is_some(),
        ours.has_header(HeaderName::Authorization),
        "{name}: Authorization"
    );
    assert!(
        matches!(decoded.authorization, None | Some(AuthResponse::Digest(_))),
        "{name}: Authorization is not decoded as Digest"
    );
    assert_eq!(
        decoded.content_type.is_some(),
        ours.has_header(HeaderName::ContentType),
        "{name}: Content-Type"
    );
    assert_eq!(
        decoded.expires.is_some(),
        ours.has_header(HeaderName::Expires),
        "{name}: Expires"
    );
    let mut ezk_out = Vec::new();
    ezk_write(&theirs, &mut ezk_out);
    // ezk keeps header values as text, so it prints these messages back unchanged too.
    assert_eq!(ezk_out, raw, "{name}: ezk round trip");

    // The edited messages the serialisers write: one extra header on both sides.
    let mut edited = ours.clone();
    edited
        .push_header_text("X-Bench", "1")
        .expect("push X-Bench");
    theirs.headers.insert("X-Bench", "1");
    let mut ours_out = Vec::new();
    edited.write_to(&mut ours_out);
    ezk_out.clear();
    ezk_write(&theirs, &mut ezk_out);
    assert_eq!(
        ours_out.len(),
        raw.len() + "X-Bench: 1\r\n".len(),
        "{name}: edited length"
    );
    assert_eq!(ezk_out.len(), ours_out.len(), "{name}: ezk edited length");

    let mut g = c.benchmark_group(name);
    g.measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(2))
        .sample_size(50);

    g.bench_function("sipwarden/parse_validate", |b| {
        b.iter(|| {
            let msg = Message::parse_datagram(Bytes::from_static(black_box(raw)), &limits)
                .expect("parse");
            let d = validate(&msg, &policy);
            black_box((msg, d))
        });
    });
    g.bench_function("ezk/parse", |b| {
        b.iter(|| black_box(ezk_parse(Bytes::from_static(black_box(raw)))));
    });
    g.bench_function("sipwarden/parse", |b| {
        b.iter(|| {
            black_box(
                Message::parse_datagram(Bytes::from_static(black_box(raw)), &limits)
                    .expect("parse"),
            )
        });
    });
    g.bench_function("ezk/parse_head", |b| {
        b.iter(|| black_box(ezk_parse_head(Bytes::from_static(black_box(raw)))));
    });
    g.bench_function("sipwarden/serialize/to_bytes_unedited", |b| {
        let msg = black_box(&ours);
        b.iter(|| black_box(msg.to_bytes()));
    });
    g.bench_function("sipwarden/serialize/write_to_edited", |b| {
        let msg = black_box(&edited);
        b.iter(|| {
            ours_out.clear();
            msg.write_to(&mut ours_out);
            black_box(ours_out.len())
        });
    });
    g.bench_function("ezk/serialize", |b| {
        let msg = black_box(&theirs);
        b.iter(|| {
            ezk_out.clear();
            ezk_write(msg, &mut ezk_out);
            black_box(ezk_out.len())
        });
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    bench_message(c, "invite_sdp", INVITE_SDP);
    bench_message(c, "register_auth", REGISTER_AUTH);
    bench_message(c, "ok_record_route", OK_RECORD_ROUTE);
}

criterion_group!(parse, benches);
criterion_main!(parse);
