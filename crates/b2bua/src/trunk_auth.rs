//! Answering a trunk's digest challenge (RFC 3261 §22.2, RFC 7616, RFC 8760): the gateway
//! holds the provider credentials, the PBX never sees the challenge.

use sipwarden_sip::digest::{self, Algorithm, Qop, ResponseInput};
use sipwarden_sip::header::Auth;
use sipwarden_sip::{EditError, HeaderName, Message};

/// Why a challenge could not be answered.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AuthError {
    /// No Digest challenge with an algorithm and qop we support.
    NoUsableChallenge,
    /// Building the new request failed.
    Edit(EditError),
}

impl From<EditError> for AuthError {
    fn from(e: EditError) -> Self {
        Self::Edit(e)
    }
}

fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

/// The credentials header value answering `challenge` for `request`.
pub(crate) fn credentials(
    challenge: &Auth<'_>,
    request: &Message,
    user: &str,
    password: &str,
    cnonce: &str,
) -> Option<String> {
    if !challenge.is_digest() {
        return None;
    }
    let alg = match challenge.algorithm() {
        None => Algorithm::Md5,
        Some(a) => Algorithm::from_token(&a)?,
    };
    let realm = challenge.realm()?;
    let nonce = challenge.nonce()?;
    let offered: Vec<String> = challenge
        .qop()
        .map(|q| {
            q.split(',')
                .map(|t| t.trim().to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_default();
    let qop = if offered.is_empty() {
        None
    } else if offered.iter().any(|q| q == "auth") {
        Some(Qop::Auth)
    } else if offered.iter().any(|q| q == "auth-int") {
        Some(Qop::AuthInt)
    } else {
        return None;
    };
    let method = request.method_str()?;
    let uri = request.request_uri_str()?;
    let nc = "00000001";
    let input = ResponseInput {
        algorithm: alg,
        method,
        digest_uri: uri,
        nonce: &nonce,
        cnonce: qop.map(|_| cnonce),
        nc: qop.map(|_| nc),
        qop,
        body: request.body(),
    };
    let response = digest::response(user, &realm, password, &input);
    let mut v = format!(
        "Digest username={}, realm={}, nonce={}, uri={}, response=\"{}\", algorithm={}",
        quote(user),
        quote(&realm),
        quote(&nonce),
        quote(uri),
        response.as_str(),
        alg.token()
    );
    if let Some(q) = qop {
        v.push_str(&format!(
            ", qop={}, nc={nc}, cnonce={}",
            q.token(),
            quote(cnonce)
        ));
    }
    if let Some(o) = challenge.opaque() {
        v.push_str(&format!(", opaque={}", quote(&o)));
    }
    Some(v)
}

/// The request to send after `challenge_rsp` (401 or 407) answered `request`: the same
/// request with a new branch, the next CSeq and credentials for the first challenge we can
/// answer (challenges come most preferred first, RFC 8760).
pub(crate) fn answer_challenge(
    request: &Message,
    challenge_rsp: &Message,
    user: &str,
    password: &str,
    cnonce: &str,
    branch: &str,
) -> Result<Message, AuthError> {
    let proxy = challenge_rsp.status().is_some_and(|s| s.as_u16() == 407);
    let (challenge_header, credential_header) = if proxy {
        (
            HeaderName::ProxyAuthenticate,
            HeaderName::ProxyAuthorization,
        )
    } else {
        (HeaderName::WwwAuthenticate, HeaderName::Authorization)
    };
    let mut next = request.clone();
    let via = next
        .top_via()
        .map(|v| v.to_string())
        .ok_or(AuthError::NoUsableChallenge)?;
    let new_via = match via.split_once(";branch=") {
        Some((head, tail)) => {
            let rest = tail.find(';').map_or("", |i| tail.get(i..).unwrap_or(""));
            format!("{head};branch={branch}{rest}")
        }
        None => format!("{via};branch={branch}"),
    };
    next.pop_via()?;
    next.prepend_header(HeaderName::Via, &new_via)?;
    let cseq = request.cseq().ok_or(AuthError::NoUsableChallenge)?;
    next.set_header(
        HeaderName::CSeq,
        &format!("{} {}", cseq.seq + 1, cseq.method_text),
    )?;
    next.remove_header(credential_header);
    let value = challenge_rsp
        .auths(challenge_header)
        .filter_map(Result::ok)
        .find_map(|c| credentials(&c, &next, user, password, cnonce))
        .ok_or(AuthError::NoUsableChallenge)?;
    next.push_header(credential_header, &value)?;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:+15551234567@127.0.0.3:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKold;rport\r\nFrom: <sip:+15551230000@127.0.0.1>;tag=a\r\nTo: <sip:+15551234567@127.0.0.3>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 69\r\nContent-Length: 0\r\n\r\n";

    fn challenge(code: u16, hdr: &str, values: &[&str]) -> Message {
        let mut raw = format!(
            "SIP/2.0 {code} Unauthorized\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKold\r\nFrom: <sip:+15551230000@127.0.0.1>;tag=a\r\nTo: <sip:+15551234567@127.0.0.3>;tag=t\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n"
        );
        for v in values {
            raw.push_str(&format!("{hdr}: {v}\r\n"));
        }
        raw.push_str("Content-Length: 0\r\n\r\n");
        Message::parse(raw.as_bytes()).unwrap()
    }

    fn verify(req: &Message, header: HeaderName, password: &str) -> (String, bool) {
        let auth = req.auths(header).next().unwrap().unwrap();
        let alg = auth
            .algorithm()
            .map_or(Algorithm::Md5, |a| Algorithm::from_token(&a).unwrap());
        let qop = auth.qop().map(|q| Qop::from_token(&q).unwrap());
        let (nonce, cnonce, uri) = (auth.nonce().unwrap(), auth.cnonce(), auth.uri().unwrap());
        let input = ResponseInput {
            algorithm: alg,
            method: req.method_str().unwrap(),
            digest_uri: &uri,
            nonce: &nonce,
            cnonce: cnonce.as_deref(),
            nc: auth.nc(),
            qop,
            body: req.body(),
        };
        assert_eq!(
            uri,
            req.request_uri_str().unwrap(),
            "digest uri is the Request-URI"
        );
        let expected = digest::response(
            &auth.username().unwrap(),
            &auth.realm().unwrap(),
            password,
            &input,
        );
        (
            alg.token().to_owned(),
            digest::verify_response(&expected, &auth.response().unwrap()),
        )
    }

    #[test]
    fn answers_401_with_md5_and_qop_auth() {
        let req = Message::parse(INVITE.as_bytes()).unwrap();
        let rsp = challenge(
            401,
            "WWW-Authenticate",
            &["Digest realm=\"carrier\", nonce=\"abc\", qop=\"auth\", opaque=\"o1\""],
        );
        let next = answer_challenge(
            &req,
            &rsp,
            "acct123",
            "carrier-secret-9f3b2c",
            "cn",
            "z9hG4bKnew",
        )
        .unwrap();
        assert_eq!(next.branch(), Some("z9hG4bKnew"));
        assert_eq!(next.cseq().unwrap().seq, 2);
        assert_eq!(next.call_id(), req.call_id());
        assert_eq!(next.from_tag(), req.from_tag());
        let (alg, ok) = verify(&next, HeaderName::Authorization, "carrier-secret-9f3b2c");
        assert!(ok && alg == "MD5");
        let auth = next.header(HeaderName::Authorization).unwrap();
        assert!(
            auth.contains("opaque=\"o1\"")
                && auth.contains("nc=00000001")
                && auth.contains("qop=auth")
        );
        assert!(
            next.top_via().unwrap().rport().is_some(),
            "other Via params kept"
        );
        let again = Message::parse(&next.to_bytes()).unwrap();
        assert_eq!(again, next);
    }

    #[test]
    fn answers_407_with_the_first_supported_algorithm() {
        let req = Message::parse(INVITE.as_bytes()).unwrap();
        let rsp = challenge(
            407,
            "Proxy-Authenticate",
            &[
                "Digest realm=\"c\", nonce=\"n\", algorithm=SHA-999, qop=\"auth\"",
                "Digest realm=\"c\", nonce=\"n\", algorithm=SHA-512-256, qop=\"auth\"",
                "Digest realm=\"c\", nonce=\"n\", algorithm=SHA-256, qop=\"auth\"",
            ],
        );
        let next = answer_challenge(&req, &rsp, "u", "p", "cn", "z9hG4bKx").unwrap();
        assert!(next.header(HeaderName::Authorization).is_none());
        let (alg, ok) = verify(&next, HeaderName::ProxyAuthorization, "p");
        assert!(ok && alg == "SHA-512-256");
        let sha256 = challenge(
            407,
            "Proxy-Authenticate",
            &["Digest realm=\"c\", nonce=\"n\", algorithm=SHA-256"],
        );
        let next = answer_challenge(&req, &sha256, "u", "p", "cn", "z9hG4bKy").unwrap();
        let (alg, ok) = verify(&next, HeaderName::ProxyAuthorization, "p");
        assert!(ok && alg == "SHA-256");
        assert!(
            !next
                .header(HeaderName::ProxyAuthorization)
                .unwrap()
                .contains("qop"),
            "RFC 2069 form without qop"
        );
        let (_, wrong) = verify(&next, HeaderName::ProxyAuthorization, "not-p");
        assert!(!wrong);
    }

    #[test]
    fn unusable_challenges_are_refused() {
        let req = Message::parse(INVITE.as_bytes()).unwrap();
        let rsp = challenge(
            401,
            "WWW-Authenticate",
            &[
                "Basic realm=\"x\"",
                "Digest realm=\"x\", nonce=\"n\", qop=\"auth-conf\"",
            ],
        );
        assert_eq!(
            answer_challenge(&req, &rsp, "u", "p", "c", "z9hG4bKz").unwrap_err(),
            AuthError::NoUsableChallenge
        );
    }
}
