//! What `SIPWARDEN_LOG=sipwarden=debug` shows: a registration's and a call's decisions in
//! order, each under its span — and never a password, an HA1 or a digest response.

use std::io::Write;
use std::sync::{Arc, Mutex};

use sipwarden_sip::{HeaderName, Message};
use sipwarden_testkit::{
    LAB_ACCOUNTS, PBX_UAS, PHONE, PW_1001, SDP, answer, first_line, phone_lab, register, respond,
};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Sends `raw` again with credentials for the challenge it got, as `password`; returns the
/// answer and the digest response it carried.
fn with_credentials(
    lab: &mut sipwarden_testkit::Lab,
    raw: &str,
    header: HeaderName,
    password: &str,
    n: u32,
) -> (Message, String) {
    lab.send(PHONE, raw);
    let ch = lab.take(PHONE).pop().expect("a challenge");
    let mut again = Message::parse(
        raw.replace("CSeq: 1 ", &format!("CSeq: {} ", n + 1))
            .replace("branch=z9hG4bK", &format!("branch=z9hG4bK{n}"))
            .as_bytes(),
    )
    .unwrap();
    let creds = answer(&ch, &again, "1001", password);
    let response = creds
        .split("response=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    again.push_header(header, &creds).unwrap();
    again.finish().unwrap();
    lab.send_msg(PHONE, again);
    let got = lab.take(PHONE).pop().expect("an answer");
    (got, response)
}

#[test]
fn a_debug_log_tells_each_registration_and_call_in_order_and_no_secret() {
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let mut responses = Vec::new();
    tracing::subscriber::with_default(subscriber, || {
        let mut lab = phone_lab();
        // A wrong password, then the right one.
        let raw = register(
            "1001",
            "<sip:1001@10.0.0.5:5062>",
            "Expires: 600\r\n",
            1,
            "reg-log",
        );
        let (bad, r) = with_credentials(&mut lab, &raw, HeaderName::Authorization, "guess", 1);
        responses.push(r);
        assert_ne!(first_line(&bad), "SIP/2.0 200 OK");
        let (ok, r) = with_credentials(&mut lab, &raw, HeaderName::Authorization, PW_1001, 3);
        responses.push(r);
        assert_eq!(first_line(&ok), "SIP/2.0 200 OK");
        // A call from the phone, answered and hung up by the PBX's side timing out: enough
        // to see it admitted, answered and ended.
        let invite = format!(
            "INVITE sip:5551234@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKlog;rport\r\nMax-Forwards: 70\r\nFrom: <sip:1001@127.0.0.1>;tag=ph\r\nTo: <sip:5551234@127.0.0.1>\r\nCall-ID: phone-call-log\r\nCSeq: 1 INVITE\r\nContact: <sip:1001@10.0.0.5:5062>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
            SDP.len()
        );
        lab.send(PHONE, &invite);
        let ch = lab.take(PHONE).pop().expect("407");
        let mut again = Message::parse(
            invite
                .replace("CSeq: 1 ", "CSeq: 2 ")
                .replace("z9hG4bKlog", "z9hG4bKlog2")
                .as_bytes(),
        )
        .unwrap();
        let creds = answer(&ch, &again, "1001", PW_1001);
        responses.push(
            creds
                .split("response=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap()
                .to_owned(),
        );
        again
            .push_header(HeaderName::ProxyAuthorization, &creds)
            .unwrap();
        again.finish().unwrap();
        lab.send_msg(PHONE, again);
        let inv = lab.expect(PBX_UAS, "INVITE");
        lab.send_msg(PBX_UAS, respond(&inv, 486, Some("pbx"), None, false));
        lab.advance(std::time::Duration::from_secs(40));
    });
    let log = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    if std::env::var_os("SHOW_LOG").is_some() {
        println!("{log}");
    }
    // In order, under their spans.
    let steps = [
        "register{",
        "register: auth stops it",
        "register: registrar",
        "invite{",
        "invite: authenticated",
        "invite: routed",
        "call admitted",
        "response from B",
        "final answer to the caller",
        "call ended",
    ];
    let mut at = 0;
    for step in steps {
        let found = log[at..]
            .find(step)
            .unwrap_or_else(|| panic!("no {step:?} after byte {at}:\n{log}"));
        at += found;
    }
    assert!(
        log.lines()
            .filter(|l| l.contains("call ended") || l.contains("call admitted"))
            .all(|l| l.contains("call{id=") && l.contains("a=phone-call-log")),
        "the call's lines carry its span:\n{log}"
    );
    // No secret at any level.
    let accounts = std::fs::read_to_string(LAB_ACCOUNTS).unwrap();
    let ha1s: Vec<&str> = accounts
        .lines()
        .filter(|l| l.trim_start().starts_with("ha1"))
        .filter_map(|l| l.split('"').nth(1))
        .collect();
    assert!(!ha1s.is_empty());
    for secret in ha1s
        .iter()
        .copied()
        .chain([PW_1001, "guess"])
        .chain(responses.iter().map(String::as_str))
    {
        assert!(!log.contains(secret), "{secret:?} in the log:\n{log}");
    }
}
