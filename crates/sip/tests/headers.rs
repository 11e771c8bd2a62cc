//! Typed access to every header a gateway touches, on messages shaped like real traffic.

use sipwarden_sip::header::Contact;
use sipwarden_sip::uri::Uri;
use sipwarden_sip::{Decision, HeaderName, Host, Message, Method, Policy, StatusCode, validate};

const INVITE: &str = "INVITE sip:+15551230001@gw.example.com;user=phone SIP/2.0\r
Via: SIP/2.0/TLS [2001:db8::5]:5061;branch=z9hG4bK-a1;received=2001:db8::9;rport=40000;maddr=239.255.255.1;ttl=16\r
v: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-b2\r
Max-Forwards: 69\r
f: \"Alice \\\"A\\\" Smith\" <sip:alice:pw@atlanta.example.com;transport=tls>;tag=9fxced76sl;x=1\r
t: <tel:+1-555-123-0001;phone-context=example.com>\r
i: 3848276298220188511@atlanta.example.com\r
CSeq: 4711 INVITE\r
m: <sip:alice@192.0.2.10:5060;ob>;expires=3600;q=0.7;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>\", sip:alice2@[2001:db8::10]\r
Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r
Record-Route: <sip:rr.example.com;lr>\r
Proxy-Authorization: Digest username=\"alice\", realm=\"sipwarden.lab\", nonce=\"abc\", uri=\"sip:+15551230001@gw.example.com;user=phone\", response=\"0123456789abcdef0123456789abcdef\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"xyz\"\r
User-Agent: Acme SoftPhone/1.2 (build 7)\r
P-Asserted-Identity: \"Alice\" <sip:+15551230000@atlanta.example.com;user=phone>, <tel:+15551230000>\r
P-Preferred-Identity: <sip:alice@atlanta.example.com>\r
Remote-Party-ID: \"Alice\" <sip:+15551230000@atlanta.example.com>;party=calling;screen=yes;privacy=off\r
y: eyJhbGciOiJFUzI1NiJ9.eyJhdHRlc3QiOiJBIn0.c2ln;info=<https://cert.example.org/passport.cer>;alg=ES256;ppt=shaken\r
Date: Sat, 13 Nov 2010 23:29:00 GMT\r
Expires: 120\r
k: timer, 100rel\r
Require: timer\r
Allow: INVITE, ACK, CANCEL, BYE, UPDATE, PRACK\r
x: 1800;refresher=uac\r
Reason: Q.850;cause=16;text=\"Normal call clearing\"\r
Content-Type: application/sdp\r
l: 4\r
\r
v=0\n";

#[test]
fn request_headers() {
    let m = Message::parse(INVITE.as_bytes()).unwrap();
    assert_eq!(validate(&m, &Policy::default()), Decision::Accept);
    assert_eq!(m.method(), Some(Method::Invite));
    let Some(Uri::Sip(ruri)) = m.request_uri() else {
        panic!()
    };
    assert!(ruri.is_phone());

    // Via: every parameter, both rows, compact form included.
    let top = m.top_via().unwrap();
    assert_eq!(top.host, Host::V6("2001:db8::5".parse().unwrap()));
    assert_eq!(top.port, Some(5061));
    assert_eq!(top.branch(), Some("z9hG4bK-a1"));
    assert_eq!(top.received(), Some("2001:db8::9"));
    assert_eq!(top.rport(), Some(Some(40000)));
    assert_eq!(top.maddr(), Some("239.255.255.1"));
    assert_eq!(top.ttl(), Some(16));
    assert_eq!(m.branch(), Some("z9hG4bK-a1"));
    assert_eq!(m.vias().len(), 2);
    assert_eq!(m.vias()[1].branch(), Some("z9hG4bK-b2"));

    let from = m.from_header().unwrap();
    assert_eq!(from.display_name().unwrap(), "Alice \"A\" Smith");
    assert_eq!(from.tag(), Some("9fxced76sl"));
    assert_eq!(from.params.get("x"), Some(Some("1")));
    let from_uri = from.uri.as_sip().unwrap();
    assert_eq!(
        (from_uri.user, from_uri.password),
        (Some("alice"), Some("pw"))
    );
    assert_eq!(from_uri.transport(), Some("tls"));
    let to = m.to_header().unwrap();
    assert_eq!(to.uri.user(), Some("+1-555-123-0001"));
    assert_eq!(m.to_tag(), None);
    assert_eq!(m.call_id(), Some("3848276298220188511@atlanta.example.com"));
    assert_eq!(
        m.cseq().map(|c| (c.seq, c.method)),
        Some((4711, Method::Invite))
    );
    assert_eq!(m.max_forwards(), Some(69));

    let contacts = m.contacts().unwrap();
    assert_eq!(contacts.len(), 2);
    assert_eq!(contacts[0].expires(), Some(3600));
    assert_eq!(contacts[0].q(), Some(700));
    let Contact::Addr(c0) = contacts[0] else {
        panic!()
    };
    assert_eq!(
        c0.params.get_unquoted("+sip.instance").unwrap(),
        "<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>"
    );
    assert!(c0.uri.as_sip().unwrap().params.has("ob"));

    let routes = m.name_addrs(HeaderName::Route).unwrap();
    assert_eq!(routes.len(), 2);
    assert!(routes.iter().all(|r| r.uri.as_sip().unwrap().lr()));
    assert_eq!(m.name_addrs(HeaderName::RecordRoute).unwrap().len(), 1);

    let auth = m
        .auths(HeaderName::ProxyAuthorization)
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(auth.username().unwrap(), "alice");
    assert_eq!(auth.realm().unwrap(), "sipwarden.lab");
    assert_eq!(
        auth.uri().unwrap(),
        "sip:+15551230001@gw.example.com;user=phone"
    );
    assert_eq!(auth.response().unwrap(), "0123456789abcdef0123456789abcdef");
    assert_eq!(auth.nc(), Some("00000001"));
    assert_eq!(auth.cnonce().unwrap(), "xyz");

    assert_eq!(m.user_agent(), Some("Acme SoftPhone/1.2 (build 7)"));
    let pai = m.name_addrs(HeaderName::PAssertedIdentity).unwrap();
    assert_eq!(pai.len(), 2);
    assert_eq!(pai[1].uri.user(), Some("+15551230000"));
    assert_eq!(
        m.name_addrs(HeaderName::PPreferredIdentity).unwrap().len(),
        1
    );
    let rpid = m.name_addrs(HeaderName::RemotePartyId).unwrap();
    assert_eq!(rpid[0].params.get("party"), Some(Some("calling")));

    let id = m.identities().next().unwrap().unwrap();
    assert_eq!(id.info, Some("https://cert.example.org/passport.cer"));
    assert_eq!(id.ppt().unwrap(), "shaken");
    assert_eq!(m.date().unwrap().unwrap().unix, 1_289_690_940);
    assert_eq!(m.expires(), Some(Ok(120)));
    assert_eq!(
        m.tokens(HeaderName::Supported).unwrap(),
        ["timer", "100rel"]
    );
    assert_eq!(m.tokens(HeaderName::Require).unwrap(), ["timer"]);
    assert_eq!(m.tokens(HeaderName::Allow).unwrap().len(), 6);
    let se = m.session_expires().unwrap().unwrap();
    assert_eq!((se.seconds, se.refresher()), (1800, Some("uac")));
    assert_eq!(m.reasons().unwrap()[0].cause(), Some(16));
    assert!(m.content_type().unwrap().unwrap().is_sdp());
    assert_eq!(m.content_length(), Some(4));
    assert_eq!(m.body(), b"v=0\n");
}

#[test]
fn response_headers() {
    let raw = "SIP/2.0 407 Proxy Authentication Required\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx;received=127.0.0.1;rport=5060\r\nFrom: <sip:gw@127.0.0.1>;tag=a\r\nTo: <sip:+15551234567@127.0.0.3>;tag=b\r\nCall-ID: c@127.0.0.1\r\nCSeq: 2 INVITE\r\nProxy-Authenticate: Digest realm=\"carrier\", nonce=\"n1\", algorithm=SHA-512-256, qop=\"auth\"\r\nProxy-Authenticate: Digest realm=\"carrier\", nonce=\"n1\", algorithm=SHA-256, qop=\"auth\"\r\nProxy-Authenticate: Digest realm=\"carrier\", nonce=\"n1\", qop=\"auth,auth-int\", stale=FALSE\r\nServer: Carrier SBC\r\nContent-Length: 0\r\n\r\n";
    let m = Message::parse(raw.as_bytes()).unwrap();
    assert_eq!(validate(&m, &Policy::default()), Decision::Accept);
    assert_eq!(m.status(), Some(StatusCode::PROXY_AUTHENTICATION_REQUIRED));
    let challenges: Vec<_> = m
        .auths(HeaderName::ProxyAuthenticate)
        .map(Result::unwrap)
        .collect();
    assert_eq!(challenges.len(), 3, "never split or merged");
    assert_eq!(challenges[0].algorithm().unwrap(), "SHA-512-256");
    assert_eq!(challenges[2].algorithm(), None);
    assert_eq!(challenges[2].qop().unwrap(), "auth,auth-int");
    assert!(!challenges[2].stale());
    assert_eq!(m.server(), Some("Carrier SBC"));
    assert_eq!(m.to_tag(), Some("b"));
}
