//! `Uri::parse` on arbitrary UTF-8, then every accessor.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipwarden_sip::header::parse_name_addr;
use sipwarden_sip::uri::Uri;
use sipwarden_sip::{unescape, unquote};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(uri) = Uri::parse(s) else {
        return;
    };
    let _ = format!("{uri:?}");
    let _ = (uri.scheme(), uri.user().map(unescape));
    match &uri {
        Uri::Sip(u) => {
            let _ = (u.secure, u.password.map(unescape), u.port, u.headers);
            let _ = (u.host.ip(), u.host.to_string());
            let _ = (u.transport(), u.lr(), u.is_phone(), u.params.is_empty());
            for (n, v) in u.params.iter() {
                let _ = (unescape(n), v.map(unescape));
                assert!(
                    u.params.has(n),
                    "iterated parameter {n:?} not found by has()"
                );
            }
            let _ = u.params.get("maddr");
            if let Some(h) = u.headers {
                for kv in h.split('&') {
                    let _ = unescape(kv);
                }
            }
        }
        Uri::Tel(t) => {
            let _ = (t.number, t.params.as_str());
            for (n, v) in t.params.iter() {
                let _ = (n, v.map(unescape));
            }
            let _ = t.params.get("phone-context");
        }
        Uri::Other(o) => {
            let _ = (o.scheme, o.rest, unquote(o.rest));
        }
    }
    assert_eq!(uri.as_sip().is_some(), matches!(uri, Uri::Sip(_)));

    // The same URI in angle brackets is a name-addr whose URI is this one.
    if !s.contains('>') {
        let bracketed = format!("<{s}>");
        let na = parse_name_addr(&bracketed).expect("a valid URI in <> is not a name-addr");
        assert_eq!(na.uri, uri);
        assert_eq!(na.uri_text, s);
        assert!(na.params.is_empty());
    }
});
