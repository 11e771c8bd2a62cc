//! The real fail2ban: `fail2ban-regex` with the stock `asterisk` filter over lines that
//! `SecurityLog` wrote, hostile values included. Every failure line must match with exactly
//! its sender as the host, and nothing else may match: not the informational events, not a
//! forged line, never the decoy address 6.6.6.6 that the hostile values name.
//!
//! Needs the Debian package `fail2ban` (scripts/test.sh installs it). fail2ban-regex 1.0.2
//! needs nothing besides the filter: its `datepattern = {^LN-BEG}` finds the bracketed
//! `[YYYY-MM-DD HH:MM:SS]` at the line start, and `__prefix_line` (`__date_ambit`) eats the
//! `[]` left once the date is cut out.

// The test runs the real fail2ban as a process, which the crate's own code may not do
// (disallowed-methods in ../../clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use sipwarden_events::{Endpoint, SecurityEvent, SecurityLog, asterisk_line, ie};
use sipwarden_sip::header::Transport;

const FILTER: &str = "/etc/fail2ban/filter.d/asterisk.conf";
const DECOY: &str = ",RemoteAddress=\"IPV4/UDP/6.6.6.6/5060\"";

fn ep(transport: Transport, addr: &str) -> Endpoint {
    Endpoint::new(transport, addr.parse::<SocketAddr>().unwrap())
}

/// Each event, and the host fail2ban must extract from its line (`None`: must not match).
fn cases() -> Vec<(SecurityEvent, Option<&'static str>)> {
    let local4 = ep(Transport::Udp, "192.0.2.1:5060");
    let local6 = ep(Transport::Tls, "[2001:db8::1]:5061");
    let forged_line = format!(
        "\n[2024-02-29 12:24:56] SECURITY[1] res_security_log.c: SecurityEvent=\"FailedACL\",\
         EventTV=\"2024-02-29T12:24:56.789+0000\",Severity=\"Error\",Service=\"SIP\",\
         EventVersion=\"1\",AccountID=\"x\",SessionID=\"y\",\
         LocalAddress=\"IPV4/UDP/192.0.2.1/5060\"{DECOY}\n"
    );
    vec![
        // Plain failures, one per kind and address family.
        (
            SecurityEvent::failed_acl(
                "a84b4c76e66710@pc33",
                local4,
                ep(Transport::Udp, "203.0.113.7:5062"),
                "peer_acl",
            ),
            Some("203.0.113.7"),
        ),
        (
            SecurityEvent::invalid_account_id(
                "cid-2",
                local6,
                ep(Transport::Tcp, "[2001:db8::7]:40000"),
            )
            .with_account("1001"),
            Some("2001:db8::7"),
        ),
        (
            SecurityEvent::challenge_response_failed(
                "cid-3",
                local4,
                ep(Transport::Udp, "198.51.100.3:5060"),
                "65e0a1b2c3d4e5f60718293a4b5c6d7e8f",
                "849dfcf133d8156f77ef11a9194119df",
            )
            .with_account("1001"),
            Some("198.51.100.3"),
        ),
        (
            SecurityEvent::invalid_password("cid-4", local4, ep(Transport::Ws, "192.0.2.44:80"))
                .with_account("1002")
                .with_ie(ie::CHALLENGE, "41d26de5")
                .with_ie(ie::RECEIVED_CHALLENGE, "41d26de5")
                .with_ie(ie::RECEIVED_HASH, "7a6a3a2e95a05260aee612896e1b4a39"),
            Some("192.0.2.44"),
        ),
        // Hostile: a Call-ID that would frame 6.6.6.6 in an unescaped log.
        (
            SecurityEvent::failed_acl(
                format!("x\"{DECOY},Foo=\""),
                local4,
                ep(Transport::Udp, "203.0.113.8:5060"),
                "peer_acl",
            ),
            Some("203.0.113.8"),
        ),
        // Hostile account over IPv6.
        (
            SecurityEvent::invalid_account_id(
                "cid-6",
                local6,
                ep(Transport::Wss, "[2001:db8:0:1::66]:443"),
            )
            .with_account(format!("bob\"{DECOY}")),
            Some("2001:db8:0:1::66"),
        ),
        // A whole forged line after a newline in the Call-ID, from an IPv4-mapped peer.
        (
            SecurityEvent::challenge_response_failed(
                forged_line.clone(),
                ep(Transport::Udp, "[::]:5060"),
                ep(Transport::Udp, "[::ffff:198.51.100.9]:5070"),
                "nonce-7",
                "resp-7",
            ),
            Some("198.51.100.9"),
        ),
        // Quotes in IEs after RemoteAddress: an unescaped quote there would make the stock
        // regex miss the line and let its sender escape the ban.
        (
            SecurityEvent::challenge_response_failed(
                "cid-8",
                local4,
                ep(Transport::Tcp, "203.0.113.10:5060"),
                "nonce\"8",
                format!("resp\"{DECOY}\r\nRemoteAddress="),
            )
            .with_account("\"\\\0\u{2028}é"),
            Some("203.0.113.10"),
        ),
        // A decoy IPv6 address in a hostile response, from an IPv6 peer.
        (
            SecurityEvent::invalid_password(
                "cid-9",
                local6,
                ep(Transport::Udp, "[2001:db8:1::99]:5060"),
            )
            .with_ie(
                ie::RECEIVED_HASH,
                "x\",RemoteAddress=\"IPV6/UDP/2001:db8::6666/5060",
            ),
            Some("2001:db8:1::99"),
        ),
        // Very long: many decoys, cut at the cap.
        (
            SecurityEvent::invalid_account_id(
                format!("\"{DECOY}").repeat(300),
                local4,
                ep(Transport::Udp, "203.0.113.11:5060"),
            )
            .with_account("=".repeat(5000)),
            Some("203.0.113.11"),
        ),
        // Not failures: the filter must not match them, even with failure-like values.
        (
            SecurityEvent::successful_auth(
                format!("ok\",SecurityEvent=\"InvalidPassword\"{DECOY}"),
                local4,
                ep(Transport::Udp, "198.51.100.200:5060"),
                true,
            )
            .with_account("1001"),
            None,
        ),
        (
            SecurityEvent::challenge_sent(
                forged_line,
                local4,
                ep(Transport::Udp, "198.51.100.201:5060"),
                "nonce-12",
            ),
            None,
        ),
        // The stock filter does not ban on these either.
        (
            SecurityEvent::request_bad_format(
                "cid-13",
                local4,
                ep(Transport::Udp, "198.51.100.202:5060"),
                "INVITE",
            ),
            None,
        ),
        (
            SecurityEvent::request_not_allowed(
                "cid-14",
                local4,
                ep(Transport::Udp, "198.51.100.203:5060"),
                "MESSAGE",
            )
            .with_account("1001"),
            None,
        ),
    ]
}

/// `event`'s line as Asterisk writes it: values between quotes, unescaped.
fn unescaped_line(event: &SecurityEvent) -> String {
    let mut line = format!(
        "[2024-02-29 12:24:56] SECURITY[1] res_security_log.c: SecurityEvent=\"{}\",\
         EventTV=\"2024-02-29T12:24:56.789+0000\",Severity=\"{}\",Service=\"SIP\",\
         EventVersion=\"{}\",AccountID=\"{}\",SessionID=\"{}\",LocalAddress=\"{}\",\
         RemoteAddress=\"{}\"",
        event.kind.name(),
        event.kind.severity(),
        event.kind.version(),
        event.account.as_deref().unwrap_or("<unknown>"),
        event.session_id,
        event.local,
        event.remote,
    );
    for (name, value) in &event.extra {
        line.push_str(&format!(",{name}=\"{value}\""));
    }
    line
}

/// Runs fail2ban-regex with the stock filter on `log`, or fails saying how to install it.
fn fail2ban_regex(args: &[&str], log: &Path) -> String {
    let out = Command::new("fail2ban-regex")
        .args(args)
        .arg(log)
        .arg(FILTER)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run fail2ban-regex ({e}): install the Debian package fail2ban, as \
                 scripts/test.sh does"
            )
        });
    assert!(
        out.status.success(),
        "fail2ban-regex {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn stock_asterisk_filter_bans_exactly_the_senders() {
    assert!(
        Path::new(FILTER).exists(),
        "{FILTER} is missing: install the Debian package fail2ban, as scripts/test.sh does"
    );
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fail2ban");
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join(format!("messages-{}", std::process::id()));
    let _ = std::fs::remove_file(&log);

    let time = UNIX_EPOCH + Duration::from_millis(1_709_209_496_789);
    let cases = cases();
    let mut security_log = SecurityLog::open(Some(&log), None).unwrap();
    for (event, _) in &cases {
        security_log.write(event, time).unwrap();
    }
    security_log.flush().unwrap();
    drop(security_log);

    // The file holds one line per event: no value added a line.
    let written = std::fs::read_to_string(&log).unwrap();
    assert_eq!(written.lines().count(), cases.len(), "{written}");

    // Host and matched line for every failure fail2ban found (`-r`: no DNS lookups).
    let out = fail2ban_regex(&["-r", "-o", "<ip>\t<msg>"], &log);
    let mut found: HashMap<String, String> = HashMap::new();
    for row in out.lines() {
        let (ip, line) = row
            .split_once('\t')
            .unwrap_or_else(|| panic!("unexpected fail2ban-regex output: {row:?}"));
        assert_ne!(ip, "6.6.6.6", "the decoy was extracted from {line}");
        let previous = found.insert(line.to_string(), ip.to_string());
        assert!(previous.is_none(), "matched twice: {line}");
    }

    let pid = std::process::id();
    let mut failures = 0;
    for (event, host) in &cases {
        let line = asterisk_line(event, time, 0, pid).unwrap();
        assert!(written.contains(&format!("{line}\n")));
        match host {
            Some(host) => {
                failures += 1;
                assert_eq!(
                    found.remove(&line).as_deref(),
                    Some(*host),
                    "fail2ban must ban {host} for\n{line}\nit reported: {out}"
                );
            }
            None => assert!(!found.contains_key(&line), "must not match:\n{line}"),
        }
    }
    assert!(found.is_empty(), "unexpected matches: {found:#?}");

    // fail2ban's own count agrees: every line read, failures matched, the rest missed.
    let summary = fail2ban_regex(&["-r"], &log);
    let expected = format!(
        "Lines: {} lines, 0 ignored, {failures} matched, {} missed",
        cases.len(),
        cases.len() - failures
    );
    assert!(
        summary.contains(&expected),
        "want {expected:?} in\n{summary}"
    );

    std::fs::remove_file(&log).unwrap();
}

/// The control: written as Asterisk writes them (unescaped), two of the hostile events above
/// fool the stock filter, one into banning the decoy, one into missing its sender. So the
/// test above would catch a formatter that let values through.
#[test]
fn unescaped_lines_would_frame_the_decoy_and_let_the_sender_go() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fail2ban");
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join(format!("unescaped-{}", std::process::id()));
    let local = ep(Transport::Udp, "192.0.2.1:5060");
    let remote = ep(Transport::Udp, "203.0.113.8:5060");
    // The decoy in an IE after RemoteAddress: the filter takes the last RemoteAddress.
    let framing = SecurityEvent::challenge_response_failed(
        "cid",
        local,
        remote,
        "nonce",
        format!("x\"{DECOY},Foo=\""),
    );
    // A lone quote after RemoteAddress: the line no longer matches.
    let evading = SecurityEvent::challenge_response_failed("cid", local, remote, "n", "a\"b");
    let lines = [unescaped_line(&framing), unescaped_line(&evading)];
    std::fs::write(&log, format!("{}\n{}\n", lines[0], lines[1])).unwrap();

    let out = fail2ban_regex(&["-r", "-o", "<ip>\t<msg>"], &log);
    assert_eq!(out, format!("6.6.6.6\t{}\n", lines[0]));

    // Our lines for the same events: both match, with the sender.
    let time = UNIX_EPOCH + Duration::from_millis(1_709_209_496_789);
    let ours = [&framing, &evading].map(|e| asterisk_line(e, time, 0, 1).unwrap());
    std::fs::write(&log, format!("{}\n{}\n", ours[0], ours[1])).unwrap();
    let out = fail2ban_regex(&["-r", "-o", "<ip>\t<msg>"], &log);
    assert_eq!(
        out,
        format!("203.0.113.8\t{}\n203.0.113.8\t{}\n", ours[0], ours[1])
    );
    std::fs::remove_file(&log).unwrap();
}
