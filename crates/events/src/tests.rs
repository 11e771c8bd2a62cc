//! Exact lines for every kind, hostile values, and JSON round trips.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use serde_json::Value;
use sipwarden_sip::header::Transport;

use crate::*;

/// 2024-02-29 12:24:56.789 UTC.
fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_709_209_496_789)
}

fn ep(transport: Transport, addr: &str) -> Endpoint {
    Endpoint::new(transport, addr.parse().unwrap())
}

fn local() -> Endpoint {
    ep(Transport::Udp, "192.0.2.1:5060")
}

fn remote() -> Endpoint {
    ep(Transport::Udp, "203.0.113.9:5062")
}

const HEAD: &str = "[2024-02-29 12:24:56] SECURITY[77] res_security_log.c: ";
const TV: &str = "EventTV=\"2024-02-29T12:24:56.789+0000\"";
const ADDRS: &str =
    "LocalAddress=\"IPV4/UDP/192.0.2.1/5060\",RemoteAddress=\"IPV4/UDP/203.0.113.9/5062\"";

fn line(event: &SecurityEvent) -> String {
    asterisk_line(event, t0(), 0, 77).unwrap()
}

fn json(event: &SecurityEvent) -> Value {
    serde_json::from_str(&json_line(event, t0())).unwrap()
}

#[test]
fn failed_acl() {
    let e = SecurityEvent::failed_acl("cid-1", local(), remote(), "trunk_acl");
    assert_eq!(
        line(&e),
        format!(
            "{HEAD}SecurityEvent=\"FailedACL\",{TV},Severity=\"Error\",Service=\"SIP\",\
             EventVersion=\"1\",AccountID=\"<unknown>\",SessionID=\"cid-1\",{ADDRS},\
             ACLName=\"trunk_acl\""
        )
    );
}

#[test]
fn invalid_account_id() {
    let e = SecurityEvent::invalid_account_id("cid-2", local(), remote()).with_account("9999");
    assert_eq!(
        line(&e),
        format!(
            "{HEAD}SecurityEvent=\"InvalidAccountID\",{TV},Severity=\"Error\",Service=\"SIP\",\
             EventVersion=\"1\",AccountID=\"9999\",SessionID=\"cid-2\",{ADDRS}"
        )
    );
}

#[test]
fn challenge_response_failed() {
    let e = SecurityEvent::challenge_response_failed(
        "17a483d-eb8cc0-556164ab@192.0.2.1",
        local(),
        remote(),
        "1432446136/6d16ccf29ff59d423c6d548af00bf9b4",
        "849dfcf133d8156f77ef11a9194119df",
    )
    .with_account("1001");
    assert_eq!(
        line(&e),
        format!(
            "{HEAD}SecurityEvent=\"ChallengeResponseFailed\",{TV},Severity=\"Error\",\
             Service=\"SIP\",EventVersion=\"1\",AccountID=\"1001\",\
             SessionID=\"17a483d-eb8cc0-556164ab@192.0.2.1\",{ADDRS},\
             Challenge=\"1432446136/6d16ccf29ff59d423c6d548af00bf9b4\",\
             Response=\"849dfcf133d8156f77ef11a9194119df\",ExpectedResponse=\"\""
        )
    );
}

#[test]
fn invalid_password() {
    let e = SecurityEvent::invalid_password("cid-4", local(), remote())
        .with_account("1001")
        .with_ie(ie::CHALLENGE, "41d26de5")
        .with_ie(ie::RECEIVED_CHALLENGE, "41d26de5")
        .with_ie(ie::RECEIVED_HASH, "7a6a3a2e95a05260aee612896e1b4a39");
    assert_eq!(
        line(&e),
        format!(
            "{HEAD}SecurityEvent=\"InvalidPassword\",{TV},Severity=\"Error\",Service=\"SIP\",\
             EventVersion=\"2\",AccountID=\"1001\",SessionID=\"cid-4\",{ADDRS},\
             Challenge=\"41d26de5\",ReceivedChallenge=\"41d26de5\",\
             ReceivedHash=\"7a6a3a2e95a05260aee612896e1b4a39\""
        )
    );
}

#[test]
fn successful_auth() {
    let e = SecurityEvent::successful_auth("cid-5", local(), remote(), true).with_account("1001");
    assert_eq!(
        line(&e),
        format!(
            "{HEAD}SecurityEvent=\"SuccessfulAuth\",{TV},Severity=\"Informational\",\
             Service=\"SIP\",EventVersion=\"1\",AccountID=\"1001\",SessionID=\"cid-5\",{ADDRS},\
             UsingPassword=\"1\""
        )
    );
    let e = SecurityEvent::successful_auth("cid-5", local(), remote(), false);
    assert!(line(&e).ends_with(",UsingPassword=\"0\""));
}

#[test]
fn challenge_sent() {
    let e = SecurityEvent::challenge_sent("cid-6", local(), remote(), "nonce-6");
    assert_eq!(
        line(&e),
        format!(
            "{HEAD}SecurityEvent=\"ChallengeSent\",{TV},Severity=\"Informational\",\
             Service=\"SIP\",EventVersion=\"1\",AccountID=\"<unknown>\",SessionID=\"cid-6\",\
             {ADDRS},Challenge=\"nonce-6\""
        )
    );
}

#[test]
fn request_bad_format_puts_the_optional_account_after_request_type() {
    let e = SecurityEvent::request_bad_format("cid-7", local(), remote(), "INVITE")
        .with_ie(ie::REQUEST_PARAMS, "bad Via");
    let without = format!(
        "{HEAD}SecurityEvent=\"RequestBadFormat\",{TV},Severity=\"Error\",Service=\"SIP\",\
         EventVersion=\"1\",SessionID=\"cid-7\",{ADDRS},RequestType=\"INVITE\",\
         RequestParams=\"bad Via\""
    );
    assert_eq!(line(&e), without);
    let with = without.replace(
        "RequestType=\"INVITE\",",
        "RequestType=\"INVITE\",AccountID=\"1001\",",
    );
    assert_eq!(line(&e.with_account("1001")), with);
    // Even without its RequestType (not built by our constructor), the account is kept.
    let bare = SecurityEvent::new(EventKind::RequestBadFormat, "c", local(), remote())
        .with_account("1001");
    assert!(line(&bare).ends_with(&format!("{ADDRS},AccountID=\"1001\"")));
}

#[test]
fn request_not_allowed() {
    let e = SecurityEvent::request_not_allowed("cid-8", local(), remote(), "MESSAGE")
        .with_account("1001");
    assert_eq!(
        line(&e),
        format!(
            "{HEAD}SecurityEvent=\"RequestNotAllowed\",{TV},Severity=\"Error\",Service=\"SIP\",\
             EventVersion=\"1\",AccountID=\"1001\",SessionID=\"cid-8\",{ADDRS},\
             RequestType=\"MESSAGE\""
        )
    );
}

#[test]
fn bans_have_no_asterisk_line() {
    let ip: IpAddr = "203.0.113.9".parse().unwrap();
    assert_eq!(
        asterisk_line(&SecurityEvent::ban(ip, 1, 1), t0(), 0, 1),
        None
    );
    assert_eq!(
        asterisk_line(&SecurityEvent::unban(ip, 1), t0(), 0, 1),
        None
    );
    for kind in EventKind::ALL {
        let e = SecurityEvent::new(kind, "c", local(), remote());
        assert_eq!(asterisk_line(&e, t0(), 0, 1).is_some(), kind.is_asterisk());
    }
}

#[test]
fn severities() {
    for kind in EventKind::ALL {
        let expected = match kind {
            EventKind::SuccessfulAuth
            | EventKind::ChallengeSent
            | EventKind::Unban
            | EventKind::TrunkUp
            | EventKind::TrunkRegistered => "Informational",
            _ => "Error",
        };
        assert_eq!(kind.severity(), expected, "{kind:?}");
    }
}

#[test]
fn local_time_and_offset() {
    // +05:30: the bracketed date and EventTV are local, EventTV says the offset.
    let e = SecurityEvent::invalid_account_id("c", local(), remote());
    let l = asterisk_line(&e, t0(), 5 * 3600 + 30 * 60, 1).unwrap();
    assert!(l.starts_with("[2024-02-29 17:54:56] SECURITY[1] "), "{l}");
    assert!(
        l.contains("EventTV=\"2024-02-29T17:54:56.789+0530\""),
        "{l}"
    );
    // -06:00 across midnight into the previous day.
    let t = UNIX_EPOCH + Duration::from_secs(1_709_164_800 + 3 * 3600); // 2024-02-29 03:00 UTC
    let l = asterisk_line(&e, t, -6 * 3600, 1).unwrap();
    assert!(l.starts_with("[2024-02-28 21:00:00] "), "{l}");
    assert!(
        l.contains("EventTV=\"2024-02-28T21:00:00.000-0600\""),
        "{l}"
    );
}

#[test]
fn dates_at_the_edges() {
    let e = SecurityEvent::invalid_account_id("c", local(), remote());
    let at = |t: SystemTime| asterisk_line(&e, t, 0, 1).unwrap();
    assert!(at(UNIX_EPOCH).starts_with("[1970-01-01 00:00:00] "));
    assert!(at(UNIX_EPOCH).contains("EventTV=\"1970-01-01T00:00:00.000+0000\""));
    // Dec 31 of a leap year, last millisecond.
    let t = UNIX_EPOCH + Duration::from_millis(1_735_689_599_999);
    assert!(at(t).starts_with("[2024-12-31 23:59:59] "));
    assert!(at(t).contains("EventTV=\"2024-12-31T23:59:59.999+0000\""));
    // Feb 29 of 2000 (divisible by 400) exists.
    let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
    assert!(at(t).starts_with("[2000-02-29 00:00:00] "));
    let j: Value = serde_json::from_str(&json_line(&e, t)).unwrap();
    assert_eq!(j["time"], "2000-02-29T00:00:00.000Z");
}

#[test]
fn ipv6_and_transports() {
    let l6 = ep(Transport::Tls, "[2001:db8::1]:5061");
    let r6 = ep(Transport::Wss, "[2001:db8:0:0:0:0:0:beef]:443");
    let e = SecurityEvent::invalid_account_id("c", l6, r6);
    assert!(line(&e).contains(
        ",LocalAddress=\"IPV6/TLS/2001:db8::1/5061\",RemoteAddress=\"IPV6/WSS/2001:db8::beef/443\""
    ));
    let tcp = ep(Transport::Tcp, "198.51.100.7:5060");
    let ws = ep(Transport::Ws, "198.51.100.8:80");
    let e = SecurityEvent::invalid_account_id("c", tcp, ws);
    assert!(line(&e).contains(
        ",LocalAddress=\"IPV4/TCP/198.51.100.7/5060\",RemoteAddress=\"IPV4/WS/198.51.100.8/80\""
    ));
    // Asterisk has no word for the others; they are written as UDP.
    let sctp = ep(Transport::Sctp, "198.51.100.9:5060");
    let other = ep(Transport::Other, "198.51.100.10:5060");
    let e = SecurityEvent::invalid_account_id("c", sctp, other);
    assert!(line(&e).contains(
        ",LocalAddress=\"IPV4/UDP/198.51.100.9/5060\",RemoteAddress=\"IPV4/UDP/198.51.100.10/5060\""
    ));
}

#[test]
fn v4_mapped_is_printed_as_ipv4() {
    let r = ep(Transport::Udp, "[::ffff:203.0.113.9]:5062");
    let e = SecurityEvent::invalid_account_id("c", local(), r);
    assert!(line(&e).ends_with(",RemoteAddress=\"IPV4/UDP/203.0.113.9/5062\""));
    let j = json(&e);
    assert_eq!(j["remote"], "IPV4/UDP/203.0.113.9/5062");
    assert_eq!(j["remote_ip"], "203.0.113.9");
    // IPv4-compatible (deprecated ::a.b.c.d) addresses are IPv6, as Asterisk treats them.
    let r = ep(Transport::Udp, "[::203.0.113.9]:5062");
    let e = SecurityEvent::invalid_account_id("c", local(), r);
    assert!(line(&e).ends_with(",RemoteAddress=\"IPV6/UDP/::cb00:7109/5062\""));
}

#[test]
fn hostile_values_are_percent_encoded() {
    let e = SecurityEvent::invalid_account_id(
        "x\",RemoteAddress=\"IPV4/UDP/6.6.6.6/5060",
        local(),
        remote(),
    )
    .with_account("a\\b\r\nc\0d\u{7f}é\u{2028}");
    let l = line(&e);
    assert!(l.contains(",SessionID=\"x%22,RemoteAddress%3D%22IPV4/UDP/6.6.6.6/5060\","));
    assert!(l.contains(",AccountID=\"a%5Cb%0D%0Ac%00d%7F%C3%A9%E2%80%A8\","));
    assert_eq!(l.matches("RemoteAddress=\"").count(), 1);
    assert!(l.ends_with(",RemoteAddress=\"IPV4/UDP/203.0.113.9/5062\""));
    // A value ending in "RemoteAddress=" must not spell a field with our closing quote.
    let e = SecurityEvent::invalid_account_id("c", local(), remote())
        .with_ie(ie::RESPONSE, ",RemoteAddress=");
    assert!(line(&e).ends_with(",Response=\",RemoteAddress%3D\""));
    // The percent sign and the rest of printable ASCII pass unchanged.
    let printable: String = (' '..='~')
        .filter(|c| !matches!(c, '"' | '\\' | '='))
        .collect();
    let e = SecurityEvent::invalid_account_id(printable.clone(), local(), remote());
    assert!(line(&e).contains(&format!(",SessionID=\"{printable}\",")));
}

#[test]
fn values_are_capped() {
    let long = "a".repeat(10_000);
    let e = SecurityEvent::invalid_account_id(long.clone(), local(), remote())
        .with_account(long.clone())
        .with_reason(long.clone());
    let l = line(&e);
    let cap = "a".repeat(MAX_VALUE_BYTES);
    assert!(l.contains(&format!(",AccountID=\"{cap}\",SessionID=\"{cap}\",")));
    let j = json(&e);
    assert_eq!(j["session_id"], cap.as_str());
    assert_eq!(j["account"], cap.as_str());
    assert_eq!(j["reason"], cap.as_str());

    // A cut never splits an escape: 85 escapes are 255 bytes, the 86th does not fit.
    let e = SecurityEvent::invalid_account_id("\"".repeat(100), local(), remote());
    let sid = format!(",SessionID=\"{}\",", "%22".repeat(85));
    assert!(line(&e).contains(&sid));
    // Nor a character in JSON: 'é' is two bytes, 128 of them fill the cap exactly, and one
    // byte more of prefix leaves room for only 127.
    let e = SecurityEvent::invalid_account_id(format!("x{}", "é".repeat(200)), local(), remote());
    let j = json(&e);
    assert_eq!(j["session_id"], format!("x{}", "é".repeat(127)).as_str());
}

#[test]
fn json_fields() {
    let e = SecurityEvent::challenge_response_failed("cid\"\n", local(), remote(), "n1", "r1")
        .with_account("1001")
        .with_reason("wrong password");
    let raw = json_line(&e, t0());
    assert!(!raw.contains('\n') && !raw.contains('\r'));
    let j: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        j,
        serde_json::json!({
            "time": "2024-02-29T12:24:56.789Z",
            "event": "ChallengeResponseFailed",
            "severity": "Error",
            "account": "1001",
            "session_id": "cid\"\n",
            "local": "IPV4/UDP/192.0.2.1/5060",
            "remote": "IPV4/UDP/203.0.113.9/5062",
            "remote_ip": "203.0.113.9",
            "Challenge": "n1",
            "Response": "r1",
            "ExpectedResponse": "",
            "reason": "wrong password",
        })
    );
    // Keys come in the documented order.
    assert!(raw.starts_with("{\"time\":"), "{raw}");
    assert!(raw.find("\"remote_ip\"") < raw.find("\"Challenge\""));
    assert!(raw.find("\"ExpectedResponse\"") < raw.find("\"reason\""));

    let unknown = json(&SecurityEvent::invalid_account_id("c", local(), remote()));
    assert_eq!(unknown["account"], Value::Null);
}

#[test]
fn json_ban_and_unban() {
    let ip: IpAddr = "2001:db8::66".parse().unwrap();
    let e = SecurityEvent::ban(ip, 1_709_210_096, 3).with_reason("10 auth failures in 60s");
    assert_eq!(
        json(&e),
        serde_json::json!({
            "time": "2024-02-29T12:24:56.789Z",
            "event": "Ban",
            "severity": "Error",
            "remote_ip": "2001:db8::66",
            "ban_expires": 1_709_210_096,
            "ban_count": 3,
            "reason": "10 auth failures in 60s",
        })
    );
    let mapped: IpAddr = "::ffff:198.51.100.4".parse().unwrap();
    let e = SecurityEvent::unban(mapped, 3).with_reason("expired");
    assert_eq!(
        json(&e),
        serde_json::json!({
            "time": "2024-02-29T12:24:56.789Z",
            "event": "Unban",
            "severity": "Informational",
            "remote_ip": "198.51.100.4",
            "ban_count": 3,
            "reason": "expired",
        })
    );
}

#[test]
fn json_ban_shape_follows_the_kind() {
    // A Ban built by hand, without BanInfo, still has the ban shape (no exchange fields).
    let e = SecurityEvent::new(EventKind::Ban, "c", local(), remote());
    assert_eq!(
        json(&e),
        serde_json::json!({
            "time": "2024-02-29T12:24:56.789Z",
            "event": "Ban",
            "severity": "Error",
            "remote_ip": "203.0.113.9",
            "reason": "",
        })
    );
}

#[test]
fn json_never_lets_an_ie_shadow_our_keys() {
    let e = SecurityEvent::invalid_account_id("c", local(), remote())
        .with_ie("remote_ip", "6.6.6.6")
        .with_reason("r");
    let raw = json_line(&e, t0());
    assert_eq!(raw.matches("remote_ip").count(), 1, "{raw}");
    assert_eq!(json(&e)["remote_ip"], "203.0.113.9");
}

#[test]
fn writer_appends_lines_with_mode_0640() {
    let dir = std::env::temp_dir().join(format!("sipwarden-events-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let ast = dir.join("asterisk/messages");
    let js = dir.join("json/security.jsonl");
    let e = SecurityEvent::invalid_account_id("c\n", local(), remote());
    let ban = SecurityEvent::ban("203.0.113.9".parse().unwrap(), 5, 1);
    for _ in 0..2 {
        // Reopening appends rather than truncates.
        let mut log = SecurityLog::open(Some(&ast), Some(&js)).unwrap();
        log.write(&e, t0()).unwrap();
        log.write(&ban, t0()).unwrap();
        log.flush().unwrap();
    }
    let a = std::fs::read_to_string(&ast).unwrap();
    let expected = asterisk_line(&e, t0(), 0, std::process::id()).unwrap();
    assert_eq!(a, format!("{expected}\n{expected}\n"));
    let j = std::fs::read_to_string(&js).unwrap();
    assert_eq!(j.lines().count(), 4);
    for l in j.lines() {
        serde_json::from_str::<Value>(l).unwrap();
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&ast).unwrap().permissions().mode() & 0o777;
        // 0640 unless the umask takes more away; never readable by others.
        assert_eq!(mode & !0o640, 0, "{mode:o}");
        assert_eq!(mode & 0o600, 0o600, "{mode:o}");
    }
    // Only the JSON file, and an offset.
    let only = dir.join("only.jsonl");
    let mut log = SecurityLog::open(None, Some(&only))
        .unwrap()
        .with_utc_offset(3600);
    log.write(&e, t0()).unwrap();
    assert_eq!(
        std::fs::read_to_string(&only).unwrap().lines().count(),
        0,
        "gathered until the batch is flushed"
    );
    log.flush().unwrap();
    assert_eq!(std::fs::read_to_string(&only).unwrap().lines().count(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn open_reports_the_path() {
    let err = SecurityLog::open(Some(std::path::Path::new("/proc/nonexistent/x")), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("/proc/nonexistent"), "{err}");
}

fn any_endpoint() -> impl Strategy<Value = Endpoint> {
    let transport = prop_oneof![
        Just(Transport::Udp),
        Just(Transport::Tcp),
        Just(Transport::Tls),
        Just(Transport::Ws),
        Just(Transport::Wss),
    ];
    (transport, any::<SocketAddr>()).prop_map(|(t, a)| Endpoint::new(t, a))
}

/// Strings with many quotes, backslashes, line breaks and field-like text, and any Unicode.
fn hostile() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("\"".to_string()),
        Just("\\".to_string()),
        Just("\r\n".to_string()),
        Just(",RemoteAddress=\"IPV4/UDP/6.6.6.6/5060\"".to_string()),
        Just("SecurityEvent=\"FailedACL\"".to_string()),
        any::<String>(),
        "[ -~]{0,20}",
    ];
    prop::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn no_value_adds_a_field_or_a_line(
        kind in prop::sample::select(EventKind::ALL.to_vec()),
        account in prop::option::of(hostile()),
        session_id in hostile(),
        extras in prop::collection::vec(hostile(), 0..4),
        reason in hostile(),
        local in any_endpoint(),
        remote in any_endpoint(),
        offset in any::<i32>(),
        millis in any::<u64>(),
    ) {
        let names = [ie::CHALLENGE, ie::RESPONSE, ie::REQUEST_PARAMS, ie::ACL_NAME];
        let mut e = SecurityEvent::new(kind, session_id, local, remote).with_reason(reason);
        e.account = account;
        for (name, value) in names.into_iter().zip(extras) {
            e = e.with_ie(name, value);
        }
        let time = UNIX_EPOCH + Duration::from_millis(millis % (1 << 44));
        if let Some(l) = asterisk_line(&e, time, offset, 1) {
            prop_assert_eq!(l.matches("RemoteAddress=\"").count(), 1, "{}", l);
            prop_assert!(l.bytes().all(|b| (b' '..=b'~').contains(&b)), "{}", l);
            // Every field is name="value" with a quote-free value: the line splits into
            // exactly the fields we wrote.
            let fields = 8 + usize::from(e.account.is_some() || kind != EventKind::RequestBadFormat)
                + e.extra.len();
            prop_assert_eq!(l.matches('"').count(), 2 * fields, "{}", l);
        }
        let j = json_line(&e, time);
        prop_assert!(!j.contains('\n') && !j.contains('\r'));
        let v: Value = serde_json::from_str(&j).unwrap();
        prop_assert_eq!(v["event"].as_str(), Some(kind.name()));
        let ip = remote.ip().to_string();
        prop_assert_eq!(v["remote_ip"].as_str(), Some(ip.as_str()));
    }
}

/// The lines write endpoints in place; the text must stay what `Display` gives.
#[test]
fn endpoints_written_in_place_read_as_displayed() {
    for t in [
        Transport::Udp,
        Transport::Tcp,
        Transport::Tls,
        Transport::Wss,
    ] {
        for a in [
            "192.0.2.1:5060",
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "[2001:db8::1]:5061",
            "[::ffff:10.0.0.1]:5062",
        ] {
            let e = ep(t, a);
            let mut s = String::new();
            e.push_to(&mut s);
            assert_eq!(s, e.to_string());
        }
    }
}
