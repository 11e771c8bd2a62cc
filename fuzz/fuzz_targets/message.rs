//! `Message::parse_datagram` on arbitrary bytes, then every typed view, the validator, the
//! lossless round trip and a couple of edits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipwarden_sip::{
    HeaderName, Limits, Message, Policy, decision_for_parse_error, header::Contact, sdp, validate,
};

/// Number of leading CRLF pairs `parse_datagram` skips (keep-alives).
fn keepalive_len(b: &[u8]) -> usize {
    let mut i = 0;
    while b.get(i..i + 2) == Some(b"\r\n") {
        i += 2;
    }
    i
}

/// Calls every read accessor; results are only checked for not panicking.
fn touch(msg: &Message) {
    let _ = validate(msg, &Policy::default());
    let _ = format!("{msg:?}");
    let _ = (
        msg.is_request(),
        msg.is_response(),
        msg.method(),
        msg.method_str(),
    );
    let _ = (msg.status(), msg.reason_phrase(), msg.request_uri_str());
    if let Some(u) = msg.request_uri() {
        let _ = (u.scheme(), u.user());
        if let Some(s) = u.as_sip() {
            let _ = (s.transport(), s.lr(), s.is_phone(), s.host.ip());
            let _ = s.params.iter().count();
        }
    }
    for h in msg.headers() {
        let _ = (h.name, h.name_text.len(), h.value.len());
    }
    let _ = (msg.call_id(), msg.cseq(), msg.from_tag(), msg.to_tag());
    let _ = (msg.max_forwards(), msg.content_length(), msg.via_count());
    let _ = (msg.branch(), msg.top_via_transport(), msg.expires());
    if let Some(v) = msg.top_via() {
        let _ = (v.branch(), v.is_rfc3261_branch(), v.received(), v.rport());
        let _ = (v.maddr(), v.ttl(), v.host.ip(), v.host.to_string());
    }
    for v in msg.vias() {
        let _ = (v.branch(), v.rport(), v.ttl(), v.params.iter().count());
    }
    for na in [msg.from_header(), msg.to_header()].into_iter().flatten() {
        let _ = (
            na.tag(),
            na.display_name(),
            na.uri.user(),
            na.params.iter().count(),
        );
    }
    if let Ok(cs) = msg.contacts() {
        for c in cs {
            let _ = (c.expires(), c.q());
            if let Contact::Addr(a) = c {
                let _ = (a.display_name(), a.params.get_unquoted("+sip.instance"));
            }
        }
    }
    for name in [
        HeaderName::Route,
        HeaderName::RecordRoute,
        HeaderName::Path,
        HeaderName::ServiceRoute,
        HeaderName::PAssertedIdentity,
        HeaderName::PPreferredIdentity,
        HeaderName::RemotePartyId,
    ] {
        if let Ok(list) = msg.name_addrs(name) {
            for a in list {
                let _ = (a.display_name(), a.uri.scheme(), a.params.has("lr"));
            }
        }
    }
    for name in [
        HeaderName::Supported,
        HeaderName::Require,
        HeaderName::ProxyRequire,
        HeaderName::Unsupported,
        HeaderName::Allow,
    ] {
        let _ = msg.tokens(name).map(|t| t.len());
    }
    for name in [
        HeaderName::Authorization,
        HeaderName::ProxyAuthorization,
        HeaderName::WwwAuthenticate,
        HeaderName::ProxyAuthenticate,
    ] {
        for a in msg.auths(name).flatten() {
            let _ = (a.is_digest(), a.username(), a.realm(), a.nonce(), a.uri());
            let _ = (a.response(), a.algorithm(), a.cnonce(), a.qop(), a.nc());
            let _ = (a.opaque(), a.stale(), a.domain(), a.params.iter().count());
        }
    }
    if let Some(Ok(ct)) = msg.content_type() {
        if ct.is_sdp() {
            if let Ok(s) = sdp::parse(msg.body()) {
                for m in &s.media {
                    let _ = s.direction_of(m);
                    let _ = m.crypto().count();
                }
            }
        }
    }
    let _ = msg.body().len();
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let msg = match Message::parse_datagram(data.to_vec(), &limits) {
        Ok(m) => m,
        Err(e) => {
            let _ = decision_for_parse_error(&e);
            let _ = e.to_string();
            return;
        }
    };
    touch(&msg);

    // Lossless round trip: an unedited message is the input's prefix after keep-alives.
    let out = msg.to_bytes();
    let rest = &data[keepalive_len(data)..];
    assert!(
        rest.starts_with(&out),
        "to_bytes() is not a prefix of the input (after keep-alives)"
    );
    let mut written = Vec::new();
    msg.write_to(&mut written);
    assert_eq!(&written[..], &out[..], "write_to() differs from to_bytes()");

    let again = Message::parse_datagram(out.to_vec(), &limits)
        .expect("to_bytes() of a parsed message does not re-parse");
    assert_eq!(again.method_str(), msg.method_str());
    assert_eq!(again.status(), msg.status());
    assert_eq!(again.call_id(), msg.call_id());
    assert_eq!(again.cseq(), msg.cseq());
    assert_eq!(again.branch(), msg.branch());
    assert_eq!(again.header_count(), msg.header_count());
    assert_eq!(again.body(), msg.body());
    assert_eq!(&again.to_bytes()[..], &out[..]);

    // Edits: a header whose value comes from the input, the top Via popped, Max-Forwards set.
    let mut edited = msg.clone();
    let tail = &data[data.len().saturating_sub(64)..];
    let value = String::from_utf8_lossy(tail);
    let pushed = edited.push_header_text("X-Fuzz", &value);
    let popped = edited.pop_via();
    let mf = edited.set_max_forwards(data.first().copied().unwrap_or(70));
    touch(&edited);
    if pushed.is_ok() && popped.is_ok() && mf.is_ok() {
        let bytes = edited.to_bytes();
        // The edit may push a message that sat exactly at a limit over it; that is not what
        // this checks, so the re-parse gets some room.
        let roomy = Limits {
            max_message_bytes: limits.max_message_bytes + 1024,
            max_head_bytes: limits.max_head_bytes + 1024,
            max_headers: limits.max_headers + 2,
            ..limits.clone()
        };
        let re = Message::parse_datagram(bytes.to_vec(), &roomy)
            .expect("edited message does not re-parse");
        assert_eq!(re.call_id(), msg.call_id());
        assert_eq!(re.cseq(), msg.cseq());
        assert_eq!(re.method_str(), msg.method_str());
        assert_eq!(re.status(), msg.status());
        assert_eq!(re.via_count(), edited.via_count());
        assert_eq!(re.branch(), edited.branch());
        assert_eq!(re.max_forwards(), edited.max_forwards());
        assert_eq!(re.body(), msg.body());
        assert_eq!(&re.to_bytes()[..], &bytes[..]);
    }
});
