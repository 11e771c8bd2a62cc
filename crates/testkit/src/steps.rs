//! The exchanges many flows begin with, played against a [`Lab`] and checked on the way.

use sipwarden_sip::Peer;
use sipwarden_sip::{HeaderName, Message, Method};

use crate::{
    CARRIER, LAB_ACCOUNTS, LAB_CONFIG, Lab, PBX_UAC, PBX_UAS, PW_1001, answer, carrier_invite,
    contact_of, first_line, in_dialog, pbx_invite, respond,
};

/// Establishes an inbound call carrier → PBX to the lab's DID, answered at once by the PBX
/// (Contact `<sip:pbx@127.0.0.10:5080>`, with SDP). Returns (INVITE the PBX got, 200 the
/// carrier got); the carrier has not acknowledged it yet.
pub fn inbound_call(lab: &mut Lab, branch: &str) -> (Message, Message) {
    lab.send(CARRIER, &carrier_invite("+15551230042", branch));
    let inv = lab.expect(PBX_UAS, "INVITE");
    let ok = respond(
        &inv,
        200,
        Some("pbx-uas"),
        Some("<sip:pbx@127.0.0.10:5080>"),
        true,
    );
    lab.send_msg(PBX_UAS, ok);
    let ok = lab.expect(CARRIER, "200 OK");
    (inv, ok)
}

/// Establishes an outbound call PBX → carrier, with the carrier's 401 challenge answered.
/// Returns (INVITE the carrier accepted, 200 the PBX got).
pub fn outbound_call(lab: &mut Lab) -> (Message, Message) {
    lab.send(PBX_UAC, &pbx_invite("+15557654321", "z9hG4bKpbx1"));
    let trying = lab.take(PBX_UAC);
    assert_eq!(first_line(&trying[0]), "SIP/2.0 100 Trying");
    let inv1 = lab.expect(CARRIER, "INVITE");
    assert_eq!(
        inv1.request_uri_str(),
        Some("sip:+15557654321@127.0.0.3:5060")
    );
    let mut challenge = respond(&inv1, 401, Some("c401"), None, false);
    challenge
        .push_header(
            HeaderName::WwwAuthenticate,
            "Digest realm=\"carrier\", nonce=\"n0nce\", qop=\"auth\", algorithm=MD5",
        )
        .unwrap();
    lab.send_msg(CARRIER, challenge);
    let mut got = lab.take(CARRIER);
    assert_eq!(
        got.len(),
        2,
        "ACK for the 401, then the authenticated INVITE"
    );
    let ack = got.remove(0);
    assert_eq!(ack.method(), Some(Method::Ack));
    let inv2 = got.remove(0);
    assert_eq!(inv2.cseq().unwrap().seq, inv1.cseq().unwrap().seq + 1);
    assert_eq!(inv2.call_id(), inv1.call_id());
    assert!(
        inv2.header(HeaderName::Authorization)
            .unwrap()
            .contains("username=\"acct123\"")
    );
    assert!(
        lab.take(PBX_UAC).is_empty(),
        "the PBX never sees the challenge"
    );
    lab.send_msg(
        CARRIER,
        respond(
            &inv2,
            180,
            Some("carrier-tag"),
            Some("<sip:ua@127.0.0.3:5060>"),
            false,
        ),
    );
    let ringing = lab.expect(PBX_UAC, "180 Ringing");
    assert!(ringing.to_tag().is_some());
    lab.send_msg(
        CARRIER,
        respond(
            &inv2,
            200,
            Some("carrier-tag"),
            Some("<sip:ua@127.0.0.3:5060>"),
            true,
        ),
    );
    let ok = lab.expect(PBX_UAC, "200 OK");
    assert_eq!(
        ok.to_tag(),
        ringing.to_tag(),
        "one A-leg tag for the whole call"
    );
    assert!(
        lab.take(CARRIER).is_empty(),
        "B's 2xx is acknowledged when A acknowledges"
    );
    // PBX ACKs; the carrier gets its ACK.
    let ack = in_dialog("ACK", &ok, true, 101, "z9hG4bKpbxack", &contact_of(&ok));
    lab.send_msg(PBX_UAC, ack);
    let b_ack = lab.expect(CARRIER, "ACK");
    assert_eq!(b_ack.request_uri_str(), Some("sip:ua@127.0.0.3:5060"));
    assert_eq!(b_ack.cseq().unwrap().seq, inv2.cseq().unwrap().seq);
    assert_eq!(b_ack.to_tag(), Some("carrier-tag"));
    assert_eq!(lab.stats().calls, 1);
    (inv2, ok)
}

/// The lab with LAB.md's accounts (examples/lab/accounts.toml) and registrar settings.
pub fn phone_lab() -> Lab {
    Lab::with(&format!(
        "{LAB_CONFIG}\n[accounts]\nfile = \"{LAB_ACCOUNTS}\"\n[registrar]\nmin_expires = \"60s\"\nmax_expires = \"1h\"\ndefault_expires = \"1h\"\n"
    ))
}

/// REGISTER `raw` (CSeq 1) from `from`, its 401, then the REGISTER again with `user`'s
/// credentials `pw` (CSeq 2, a new branch): returns the final answer.
pub fn register_with_auth(lab: &mut Lab, from: Peer, raw: &str, user: &str, pw: &str) -> Message {
    let first = Message::parse(raw.as_bytes()).unwrap();
    lab.send_from(from, first.clone());
    let to = from.addr.to_string();
    let challenge = lab.expect(&to, "401 Unauthorized");
    let mut second = Message::parse(
        raw.replace("CSeq: 1 ", "CSeq: 2 ")
            .replace("branch=z9hG4bK", "branch=z9hG4bKa")
            .as_bytes(),
    )
    .unwrap();
    let creds = answer(&challenge, &second, user, pw);
    second
        .push_header(HeaderName::Authorization, &creds)
        .unwrap();
    second.finish().unwrap();
    lab.send_from(from, second);
    let mut got = lab.take(&to);
    assert_eq!(got.len(), 1, "{got:?}");
    got.remove(0)
}

/// A phone's INVITE `raw` (CSeq 1, Via branch `branch`) from `from`: its 407 (nothing reaches
/// the PBX before authentication), then the INVITE again with 1001's credentials (CSeq 2, a
/// new branch). Returns the INVITE that reached the PBX.
pub fn invite_with_auth(lab: &mut Lab, from: Peer, raw: &str, branch: &str) -> Message {
    lab.send_from(from, Message::parse(raw.as_bytes()).unwrap());
    let ch = lab.expect(&from.addr.to_string(), "407 Proxy Authentication Required");
    assert!(
        lab.take(PBX_UAS).is_empty(),
        "nothing before authentication"
    );
    let mut again = Message::parse(
        raw.replace("CSeq: 1 ", "CSeq: 2 ")
            .replace(branch, &format!("{branch}a"))
            .as_bytes(),
    )
    .unwrap();
    let creds = answer(&ch, &again, "1001", PW_1001);
    again
        .push_header(HeaderName::ProxyAuthorization, &creds)
        .unwrap();
    again.finish().unwrap();
    lab.send_from(from, again);
    lab.expect(PBX_UAS, "INVITE")
}
