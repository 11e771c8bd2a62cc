//! What a gateway does with a parsed message: accept it, answer it with an error status, or
//! drop it (RFC 3261 §8.2 for a UAS, §16.3 for a proxy).
//!
//! Parsing already refused what cannot be framed or keyed (start line, Via, CSeq, Call-ID,
//! From, To, Max-Forwards, Content-Length). Validation checks everything else a gateway
//! interprets, in the order the RFC gives, so the status a client sees is the one it expects.

use crate::error::{ParseError, ParseErrorKind};
use crate::header::{self, Auth, ContentType, Identity, Reason, SessionExpires};
use crate::message::Message;
use crate::method::Method;
use crate::name::HeaderName;
use crate::status::StatusCode;
use crate::uri::{Host, Scheme};

/// What to do with a message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum Decision {
    /// Process it.
    Accept,
    /// Answer a request statelessly with this status; never sent for ACK (see [`validate`]).
    Reject {
        /// Status to answer with.
        status: StatusCode,
        /// Reason phrase.
        reason: &'static str,
        /// Extra headers the answer must carry (Unsupported for 420, Accept for 415 …).
        headers: Vec<(HeaderName, String)>,
    },
    /// Discard silently (bad responses, ACKs that cannot be answered, keep-alives).
    Drop {
        /// Why, for logs and metrics.
        reason: &'static str,
    },
}

impl Decision {
    fn reject(status: StatusCode, reason: &'static str) -> Self {
        Self::Reject {
            status,
            reason,
            headers: Vec::new(),
        }
    }

    fn malformed(h: HeaderName) -> Self {
        Self::reject(
            StatusCode::BAD_REQUEST,
            ParseErrorKind::MalformedHeader(h).reason(),
        )
    }
}

/// Which RFC 3261 role the checks take.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Role {
    /// A proxy (§16.3): Proxy-Require is checked, Require and unknown methods are not.
    Proxy,
    /// The gateway's edge: it terminates each leg like a UAS but forwards what it does not
    /// handle itself. Proxy-Require and Require are both checked, and a session body must be
    /// one it can police (SDP), but unknown methods are left to routing.
    #[default]
    Gateway,
    /// A UAS (§8.2): additionally answers unknown methods with 501.
    Uas,
}

/// Settings for [`validate`].
#[derive(Clone, Debug)]
pub struct Policy {
    /// Role.
    pub role: Role,
    /// Option tags understood (Require / Proxy-Require).
    pub supported: Vec<String>,
    /// Body types accepted for methods that carry session descriptions.
    pub session_body_types: Vec<(String, String)>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            role: Role::Gateway,
            supported: [
                "100rel",
                "timer",
                "replaces",
                "path",
                "outbound",
                "norefersub",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            session_body_types: [
                ("application", "sdp"),
                ("multipart", "mixed"),
                ("multipart", "alternative"),
            ]
            .into_iter()
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect(),
        }
    }
}

/// The decision for a message that did not parse: requests get a status, responses are
/// dropped (nobody to answer), keep-alives are dropped.
pub fn decision_for_parse_error(e: &ParseError) -> Decision {
    if e.kind == ParseErrorKind::Empty {
        return Decision::Drop {
            reason: "Keep-Alive",
        };
    }
    if e.response {
        return Decision::Drop {
            reason: e.kind.reason(),
        };
    }
    let status = match e.kind {
        ParseErrorKind::UnsupportedVersion => StatusCode::VERSION_NOT_SUPPORTED,
        ParseErrorKind::UriTooLong => StatusCode::URI_TOO_LONG,
        ParseErrorKind::MessageTooLarge => StatusCode::MESSAGE_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    Decision::reject(status, e.kind.reason())
}

/// Validates a parsed message.
pub fn validate(msg: &Message, policy: &Policy) -> Decision {
    if msg.is_response() {
        return match check_response(msg) {
            Ok(()) => Decision::Accept,
            Err(reason) => Decision::Drop { reason },
        };
    }
    let d = check_request(msg, policy);
    // ACK gets no response (RFC 3261 §17.1.1.3, §17.2.3): a bad one is dropped.
    match (&d, msg.method()) {
        (Decision::Reject { reason, .. }, Some(Method::Ack)) => Decision::Drop { reason },
        _ => d,
    }
}

fn check_request(msg: &Message, policy: &Policy) -> Decision {
    // 1. Syntax (§16.3 step 1): mandatory headers, CSeq method, every interpreted header.
    for (present, h) in [
        (msg.top_via_transport().is_some(), HeaderName::Via),
        (
            msg.from_tag().is_some() || msg.has_header(HeaderName::From),
            HeaderName::From,
        ),
        (msg.has_header(HeaderName::To), HeaderName::To),
        (msg.call_id().is_some(), HeaderName::CallId),
        (msg.cseq().is_some(), HeaderName::CSeq),
    ] {
        if !present {
            return Decision::reject(
                StatusCode::BAD_REQUEST,
                ParseErrorKind::MissingHeader(h).reason(),
            );
        }
    }
    if let (Some(m), Some(c)) = (msg.method_str(), msg.cseq()) {
        if m != c.method_text {
            return Decision::reject(
                StatusCode::BAD_REQUEST,
                ParseErrorKind::CSeqMismatch.reason(),
            );
        }
    }
    if let Err(h) = check_headers(msg) {
        return Decision::malformed(h);
    }
    let method = msg.method().unwrap_or(Method::Extension);
    if let Err(reason) = check_contacts(msg, method) {
        return Decision::reject(StatusCode::BAD_REQUEST, reason);
    }

    // 2. Request-URI scheme (§16.3 step 2).
    let scheme = msg.request_uri().map(|u| u.scheme());
    if !matches!(scheme, Some(Scheme::Sip | Scheme::Sips | Scheme::Tel)) {
        return Decision::reject(StatusCode::UNSUPPORTED_URI_SCHEME, "Unsupported URI Scheme");
    }

    // 3. Max-Forwards (§16.3 step 3). Absent is tolerated (RFC 2543 peers; treated as 70).
    if msg.max_forwards() == Some(0) {
        return Decision::reject(StatusCode::TOO_MANY_HOPS, "Too Many Hops");
    }

    // 5. Extensions (§16.3 step 5; §8.2.2.3 for Require, which ACK and CANCEL never carry
    // meaningfully).
    let mut unsupported: Vec<&str> = Vec::new();
    let mut names = vec![HeaderName::ProxyRequire];
    if policy.role != Role::Proxy && !matches!(method, Method::Ack | Method::Cancel) {
        names.push(HeaderName::Require);
    }
    for name in names {
        for tag in msg.tokens(name).unwrap_or_default() {
            let known = policy.supported.iter().any(|s| s.eq_ignore_ascii_case(tag));
            if !known && !unsupported.iter().any(|u| u.eq_ignore_ascii_case(tag)) {
                unsupported.push(tag);
            }
        }
    }
    if !unsupported.is_empty() {
        return Decision::Reject {
            status: StatusCode::BAD_EXTENSION,
            reason: "Bad Extension",
            headers: vec![(HeaderName::Unsupported, unsupported.join(", "))],
        };
    }

    // UAS method check (§8.2.1).
    if policy.role == Role::Uas && method == Method::Extension {
        return Decision::reject(StatusCode::NOT_IMPLEMENTED, "Not Implemented");
    }

    // Bodies the gateway must police (§8.2.3).
    if policy.role != Role::Proxy
        && matches!(
            method,
            Method::Invite | Method::Update | Method::Prack | Method::Ack
        )
        && !msg.body().is_empty()
    {
        let accept = || {
            policy
                .session_body_types
                .iter()
                .map(|(a, b)| format!("{a}/{b}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match msg.content_type() {
            None => return Decision::reject(StatusCode::BAD_REQUEST, "Missing Content-Type"),
            Some(Err(_)) => return Decision::malformed(HeaderName::ContentType),
            Some(Ok(ct)) => {
                if !policy.session_body_types.iter().any(|(a, b)| ct.is(a, b)) {
                    return Decision::Reject {
                        status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        reason: "Unsupported Media Type",
                        headers: vec![(HeaderName::Accept, accept())],
                    };
                }
            }
        }
        let identity = |e: &str| e.eq_ignore_ascii_case("identity");
        if msg
            .tokens(HeaderName::ContentEncoding)
            .unwrap_or_default()
            .iter()
            .any(|e| !identity(e))
        {
            return Decision::Reject {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                reason: "Unsupported Content-Encoding",
                headers: vec![(HeaderName::AcceptEncoding, "identity".to_owned())],
            };
        }
    }
    Decision::Accept
}

fn check_response(msg: &Message) -> Result<(), &'static str> {
    if msg.top_via_transport().is_none() {
        return Err("Response Without Via");
    }
    if msg.call_id().is_none()
        || msg.cseq().is_none()
        || !msg.has_header(HeaderName::From)
        || !msg.has_header(HeaderName::To)
    {
        return Err("Response Missing Mandatory Header");
    }
    if msg.cseq().is_some_and(|c| c.method == Method::Ack) {
        return Err("Response To ACK");
    }
    // A response aimed at a broadcast or multicast address is an amplification attempt
    // (RFC 4475 bcast): no Via of ours points there.
    for via in msg.vias() {
        let bad = match via.host {
            Host::V4(a) => a.is_broadcast() || a.is_multicast() || a.is_unspecified(),
            Host::V6(a) => a.is_multicast() || a.is_unspecified(),
            Host::Name(_) => false,
        };
        if bad {
            return Err("Via Points To Broadcast Or Multicast Address");
        }
    }
    check_headers(msg).map_err(|h| ParseErrorKind::MalformedHeader(h).reason())
}

/// Parses every header the gateway interprets; the first malformed one is named.
fn check_headers(msg: &Message) -> Result<(), HeaderName> {
    use HeaderName as H;
    for h in msg.headers() {
        let v = h.value;
        let ok = match h.name {
            H::Contact => header::parse_contact_list(v, |_| ()).is_ok(),
            H::Route | H::RecordRoute | H::Path | H::ServiceRoute | H::RemotePartyId => {
                header::parse_name_addr_list(v, false, |_| ()).is_ok()
            }
            H::PAssertedIdentity | H::PPreferredIdentity => {
                header::parse_name_addr_list(v, true, |_| ()).is_ok()
            }
            H::ReferTo | H::ReplyTo | H::ReferredBy => header::parse_name_addr(v).is_ok(),
            H::ContentType => ContentType::parse(v).is_ok(),
            H::Expires | H::MinExpires | H::RSeq => header::parse_delta_seconds(v).is_some(),
            H::SessionExpires | H::MinSe => SessionExpires::parse(v).is_ok(),
            H::Date => header::parse_date(v).is_ok(),
            // Credentials are judged by digest authentication, which answers a phone's
            // unreadable ones as a failed login (a fresh challenge, then 403), not with 400.
            H::WwwAuthenticate | H::ProxyAuthenticate => Auth::parse(v).is_ok(),
            H::Supported
            | H::Require
            | H::ProxyRequire
            | H::Unsupported
            | H::Allow
            | H::AllowEvents
            | H::ContentEncoding => header::parse_tokens(v, |_| ()).is_ok(),
            H::Reason => Reason::parse_list(v, |_| ()).is_ok(),
            H::Identity => Identity::parse(v).is_ok(),
            H::RAck => check_rack(v),
            H::Event => header::parse_tokens(v.split(';').next().unwrap_or(""), |_| ()).is_ok(),
            _ => true,
        };
        if !ok {
            return Err(h.name);
        }
    }
    Ok(())
}

/// `RAck: response-num LWS CSeq-num LWS Method` (RFC 3262 §7.2).
fn check_rack(v: &str) -> bool {
    let mut it = v.split_ascii_whitespace();
    let (Some(r), Some(c), Some(m), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return false;
    };
    header::parse_delta_seconds(r).is_some()
        && header::parse_delta_seconds(c).is_some()
        && crate::scan::is_token(m)
}

/// `Contact: *` only alone and only in REGISTER (RFC 3261 §10.2.2, §20.10).
fn check_contacts(msg: &Message, method: Method) -> Result<(), &'static str> {
    let Ok(contacts) = msg.contacts() else {
        return Err(ParseErrorKind::MalformedHeader(HeaderName::Contact).reason());
    };
    let star = contacts.iter().any(|c| matches!(c, header::Contact::Star));
    if star && (contacts.len() > 1 || method != Method::Register) {
        return Err("Invalid Wildcard Contact");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide(raw: &str) -> Decision {
        match Message::parse(raw.as_bytes()) {
            Ok(m) => validate(&m, &Policy::default()),
            Err(e) => decision_for_parse_error(&e),
        }
    }

    const BASE: &str = "OPTIONS sip:u@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:u@example.com>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n";

    fn with(extra: &str) -> String {
        format!("{BASE}{extra}Content-Length: 0\r\n\r\n")
    }

    #[test]
    fn accepts_and_rejects() {
        assert_eq!(decide(&with("")), Decision::Accept);
        assert!(
            matches!(decide(&with("Proxy-Require: foo\r\n")), Decision::Reject { status, ref headers, .. } if status.as_u16() == 420 && headers[0].1 == "foo")
        );
        assert!(matches!(
            decide(&with("Require: 100rel\r\n")),
            Decision::Accept
        ));
        assert!(
            matches!(decide(&with("Contact: *\r\n")), Decision::Reject { status, .. } if status.as_u16() == 400)
        );
        assert!(matches!(
            decide(&with("Expires: x\r\n")),
            Decision::Reject {
                reason: "Malformed Expires Header",
                ..
            }
        ));
        assert!(matches!(
            decide(&with("Date: Fri, 01 Jan 2010 16:00:00 EST\r\n")),
            Decision::Reject {
                reason: "Malformed Date Header",
                ..
            }
        ));
        let no_cid = with("").replace("Call-ID: x\r\n", "");
        assert!(matches!(
            decide(&no_cid),
            Decision::Reject {
                reason: "Missing Call-ID Header",
                ..
            }
        ));
        let ack = with("Expires: x\r\n").replace("OPTIONS", "ACK");
        assert!(matches!(decide(&ack), Decision::Drop { .. }));
    }
}
