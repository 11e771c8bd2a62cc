//! `sipwarden serve`: starts on built-in defaults, answers OPTIONS, stops on SIGTERM; refuses
//! a bad configuration naming the key and the line.

mod common;

use common::*;

#[test]
fn defaults_answer_options_over_udp_and_tcp_then_stop_on_sigterm() {
    let _lab = lab_lock();
    let dir = TempDir::new("defaults");
    let gw = Gateway::start(&dir.0, &["serve"]);
    let banner = gw.stdout.join("\n");
    assert!(banner.contains("built-in safe defaults"), "{banner}");
    assert!(
        banner.contains("sip udp  127.0.0.1:5060") && banner.contains("sip tcp  127.0.0.1:5060"),
        "{banner}"
    );
    assert!(
        banner.contains("admin    http://127.0.0.1:8080"),
        "{banner}"
    );

    let udp = udp_request("127.0.0.1:5060", |p| options("z9hG4bKu1", p, "UDP"));
    assert!(udp.starts_with("SIP/2.0 200 OK\r\n"), "{udp}");
    assert!(
        udp.contains(";received=127.0.0.1;rport="),
        "RFC 3581: {udp}"
    );
    let tcp = tcp_request("127.0.0.1:5060", |p| options("z9hG4bKt1", p, "TCP"));
    assert!(tcp.starts_with("SIP/2.0 200 OK\r\n"), "{tcp}");

    // The admin API needs the token the gateway created; /metrics is readable on loopback.
    let (status, _) = http_get("127.0.0.1:8080", "/api/stats", None);
    assert!(status.contains("401"), "{status}");
    let token = std::fs::read_to_string(dir.0.join("sipwarden-data/admin.token")).unwrap();
    let (status, body) = http_get("127.0.0.1:8080", "/api/stats", Some(token.trim()));
    assert!(status.contains("200"), "{status}");
    assert!(body.contains("\"calls\":0"), "{body}");
    let (_, metrics) = http_get("127.0.0.1:8080", "/metrics", None);
    assert!(
        metrics.contains("sipwarden_udp_received_total 1"),
        "{metrics}"
    );

    let status = gw.stop();
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_bad_configuration_is_refused_with_key_and_line() {
    let dir = TempDir::new("badcfg");
    let cfg = dir.0.join("bad.toml");
    std::fs::write(&cfg, "[listen]\nudp = [\"127.0.0.1:5060\"]\nudpp = []\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sipwarden"))
        .args(["serve", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:3: listen.udpp: unknown field `udpp`"),
        "{err}"
    );
    let cfg2 = dir.0.join("bad2.toml");
    std::fs::write(&cfg2, "[calls]\nmax_duration = \"forever\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sipwarden"))
        .args(["serve", "--config", cfg2.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad2.toml:2: calls.max_duration: \"forever\" is not a duration"),
        "{err}"
    );
}
