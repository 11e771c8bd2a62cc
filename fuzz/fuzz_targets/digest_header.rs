//! `header::Auth::parse` on arbitrary UTF-8 (Authorization / WWW-Authenticate values), then
//! the parsed values fed through the digest math.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipwarden_sip::digest::{self, Algorithm, HexDigest, Qop, ResponseInput};
use sipwarden_sip::header::Auth;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(auth) = Auth::parse(s) else {
        return;
    };
    let _ = format!("{auth:?}");
    let mut n = 0usize;
    for (name, value) in auth.params.iter() {
        n += 1;
        assert!(!name.is_empty(), "empty auth-param name");
        assert!(
            auth.params.get(name).is_some(),
            "iterated auth-param {name:?} not found by get()"
        );
        let _ = (value, auth.params.get_unquoted(name));
    }
    assert!(n >= 1, "Auth::parse accepted a value without parameters");
    if auth.is_digest() {
        // Auth::parse refuses duplicate Digest parameters, so get() must find the only one.
        let names: Vec<_> = auth.params.iter().map(|(n, _)| n).collect();
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                assert!(
                    !a.eq_ignore_ascii_case(b),
                    "duplicate Digest parameter {a:?}"
                );
            }
        }
    }

    let username = auth.username().unwrap_or_default();
    let realm = auth.realm().unwrap_or_default();
    let nonce = auth.nonce().unwrap_or_default();
    let uri = auth.uri().unwrap_or_default();
    let cnonce = auth.cnonce();
    let algorithm = auth.algorithm();
    let qop = auth.qop();
    let nc = auth.nc();
    let received = auth.response();
    let _ = (auth.opaque(), auth.stale(), auth.domain());

    let alg = match algorithm.as_deref() {
        None => Some(Algorithm::Md5),
        Some(a) => Algorithm::from_token(a),
    };
    let Some(alg) = alg else {
        return;
    };
    assert_eq!(Algorithm::from_token(alg.token()), Some(alg));
    // A challenge's qop is a list; credentials carry one token.
    let qop = qop
        .as_deref()
        .and_then(|q| q.split(',').map(str::trim).find_map(Qop::from_token));
    let input = ResponseInput {
        algorithm: alg,
        method: "INVITE",
        digest_uri: &uri,
        nonce: &nonce,
        cnonce: cnonce.as_deref(),
        nc,
        qop,
        body: data,
    };
    let _ = input.is_well_formed();
    let _ = nc.map(digest::is_valid_nc);

    let expected = digest::response(&username, &realm, "secret", &input);
    assert_eq!(expected.len(), alg.hex_len());
    assert!(digest::verify_response(&expected, expected.as_str()));
    assert!(digest::verify_response(
        &expected,
        &expected.as_str().to_ascii_uppercase()
    ));
    let ha1 = digest::ha1(alg, &username, &realm, "secret");
    assert_eq!(digest::response_from_ha1(&ha1, &input), expected);
    assert_eq!(HexDigest::from_hex(expected.as_str()), Some(expected));
    let _ = digest::userhash(alg, &username, &realm);
    if let Some(r) = received.as_deref() {
        let ok = digest::verify_response(&expected, r);
        if let Some(h) = HexDigest::from_hex(r) {
            assert_eq!(
                ok,
                h == expected,
                "verify_response disagrees with HexDigest =="
            );
        }
    }
});
