//! Message builders: what the lab's peers send, written the way those peers write it.

use sipwarden_sip::digest::{self, Algorithm, Qop, ResponseInput};
use sipwarden_sip::header::Contact;
use sipwarden_sip::{HeaderName, Message, StatusCode};

/// The offer the lab's peers put in INVITEs and 2xx answers: the PBX's, with its private
/// address in `o=`, which must never reach a trunk.
pub const SDP: &str = "v=0\r\no=pbxuser 1 1 IN IP4 10.20.30.40\r\ns=Asterisk PBX 18.2.0\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 8\r\n";

/// The first line of `m` as it goes on the wire (`INVITE sip:… SIP/2.0`, `SIP/2.0 200 OK`):
/// what assertions and their messages compare.
pub fn first_line(m: &Message) -> String {
    String::from_utf8_lossy(&m.to_bytes())
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

/// An INVITE from the PBX (Asterisk, with every private address, tag and product string a
/// topology-hiding test looks for) to `callee`, Call-ID `pbx-call-1@10.20.30.40`, CSeq 101.
pub fn pbx_invite(callee: &str, branch: &str) -> String {
    format!(
        "INVITE sip:{callee}@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 10.20.30.40:5070;branch={branch};rport\r\nMax-Forwards: 70\r\nFrom: \"Alice\" <sip:+15551230001@10.20.30.40>;tag=pbxtag\r\nTo: <sip:{callee}@127.0.0.1>\r\nCall-ID: pbx-call-1@10.20.30.40\r\nCSeq: 101 INVITE\r\nContact: <sip:asterisk@10.20.30.40:5070>\r\nUser-Agent: Asterisk PBX 18.2.0\r\nX-Asterisk-HangupCause: none\r\nP-Asserted-Identity: \"Alice\" <sip:+15551230001@10.20.30.40>\r\nAllow: INVITE, ACK, BYE, CANCEL\r\nSupported: replaces, timer, path\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    )
}

/// An INVITE from the carrier to `callee` (a DID, for a call that reaches the PBX), Call-ID
/// `carrier-call-9`, CSeq 7.
pub fn carrier_invite(callee: &str, branch: &str) -> String {
    format!(
        "INVITE sip:{callee}@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.3:5060;branch={branch}\r\nMax-Forwards: 30\r\nFrom: <sip:+12125550100@carrier.example>;tag=ctag\r\nTo: <sip:{callee}@127.0.0.1>\r\nCall-ID: carrier-call-9\r\nCSeq: 7 INVITE\r\nContact: <sip:gw1@127.0.0.3:5060>\r\nServer: CarrierSBC\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    )
}

/// The CANCEL for an INVITE written as text (one of the builders above): the same
/// Request-URI, Via branch, From, To, Call-ID and CSeq number, no body.
pub fn cancel_of(invite: &str) -> String {
    let head = invite.split("Content-Type").next().unwrap_or(invite);
    let head = head.replacen("INVITE sip", "CANCEL sip", 1);
    let head = head
        .lines()
        .map(|l| match l.strip_suffix(" INVITE") {
            Some(n) if l.starts_with("CSeq:") => format!("{n} CANCEL"),
            _ => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\r\n");
    head.trim_end().to_owned() + "\r\nContent-Length: 0\r\n\r\n"
}

/// A peer's `code` response to `req`: To tag `tag`, Contact `contact`, [`SDP`] if `sdp`, and a
/// `Server` header the gateway must not pass on.
pub fn respond(
    req: &Message,
    code: u16,
    tag: Option<&str>,
    contact: Option<&str>,
    sdp: bool,
) -> Message {
    let mut r = Message::response_to(req, StatusCode::new(code).unwrap(), None, tag).unwrap();
    if let Some(c) = contact {
        r.push_header(HeaderName::Contact, c).unwrap();
    }
    if sdp {
        r.set_body(
            bytes::Bytes::from_static(SDP.as_bytes()),
            Some("application/sdp"),
        )
        .unwrap();
    }
    r.push_header_text("Server", "CarrierSBC 4.2").unwrap();
    r
}

/// A request inside the dialog that `ok` (a 2xx the peer received) established, sent by the
/// peer that received it (`uac` = it sent the INVITE).
pub fn in_dialog(
    method: &str,
    ok: &Message,
    uac: bool,
    cseq: u32,
    branch: &str,
    ruri: &str,
) -> Message {
    let (from, to) = if uac {
        (
            ok.header(HeaderName::From).unwrap(),
            ok.header(HeaderName::To).unwrap(),
        )
    } else {
        (
            ok.header(HeaderName::To).unwrap(),
            ok.header(HeaderName::From).unwrap(),
        )
    };
    let raw = format!(
        "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.9:5999;branch={branch}\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n",
        ok.call_id().unwrap()
    );
    Message::parse(raw.as_bytes()).unwrap()
}

/// The URI of `m`'s first Contact: where in-dialog requests to its sender go.
pub fn contact_of(m: &Message) -> String {
    let c = m.contacts().unwrap();
    match &c[0] {
        Contact::Addr(a) => a.uri_text.to_owned(),
        _ => panic!("the first Contact of {} is not an address", first_line(m)),
    }
}

/// A phone's REGISTER for `user` with `contact` (a Contact value, or `*`); `expires` is a whole
/// header line (`"Expires: 600\r\n"`) or empty. The Via branch and From tag derive from `cseq`
/// and `call_id`, so each registration is its own transaction.
pub fn register(user: &str, contact: &str, expires: &str, cseq: u32, call_id: &str) -> String {
    format!(
        "REGISTER sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKreg{cseq}{call_id};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@127.0.0.1>;tag=r{call_id}\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\nContact: {contact}\r\n{expires}Content-Length: 0\r\n\r\n"
    )
}

/// The credentials header value answering the first challenge of `challenge_rsp` (a 401 or
/// 407) for `req`, as a phone with `user`'s `password` would (realm `sipwarden.lab`, qop auth).
pub fn answer(challenge_rsp: &Message, req: &Message, user: &str, password: &str) -> String {
    let header = if challenge_rsp.status().unwrap().as_u16() == 401 {
        HeaderName::WwwAuthenticate
    } else {
        HeaderName::ProxyAuthenticate
    };
    let ch = challenge_rsp.auths(header).next().unwrap().unwrap();
    let nonce = ch.nonce().unwrap();
    let alg = Algorithm::from_token(&ch.algorithm().unwrap()).unwrap();
    let uri = req.request_uri_str().unwrap();
    let input = ResponseInput {
        algorithm: alg,
        method: req.method_str().unwrap(),
        digest_uri: uri,
        nonce: &nonce,
        cnonce: Some("c0ffee"),
        nc: Some("00000001"),
        qop: Some(Qop::Auth),
        body: b"",
    };
    let r = digest::response(user, "sipwarden.lab", password, &input);
    format!(
        "Digest username=\"{user}\", realm=\"sipwarden.lab\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{}\", algorithm={}, qop=auth, nc=00000001, cnonce=\"c0ffee\"",
        r.as_str(),
        alg.token()
    )
}
