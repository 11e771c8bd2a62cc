//! The gateway's lifecycle in the lab: SIGHUP reloads routes for new calls, SIGTERM stops
//! taking calls, lets calls in progress run for the grace period, then hangs them up and exits.
//! The PBX and the carrier are plain UDP sockets driven by the test.

mod common;

use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use sipwarden_sip::{Message, StatusCode};

struct Peer(UdpSocket);

impl Peer {
    fn bind(addr: &str) -> Self {
        let s = UdpSocket::bind(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Self(s)
    }

    fn port(&self) -> u16 {
        self.0.local_addr().unwrap().port()
    }

    fn send_raw(&self, raw: &str) {
        self.0.send_to(raw.as_bytes(), "127.0.0.1:5060").unwrap();
    }

    /// The next message that is not a 100 Trying, within `wait`.
    fn recv(&self, wait: Duration) -> Option<Message> {
        let deadline = Instant::now() + wait;
        let mut buf = vec![0u8; 65536];
        while Instant::now() < deadline {
            if let Ok((n, _)) = self.0.recv_from(&mut buf) {
                let m = Message::parse(&buf[..n]).unwrap();
                if m.status() != Some(StatusCode::TRYING) {
                    return Some(m);
                }
            }
        }
        None
    }

    fn expect(&self, what: &str) -> Message {
        let m = self
            .recv(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("no {what}"));
        let first = String::from_utf8_lossy(&m.to_bytes())
            .lines()
            .next()
            .unwrap_or("")
            .to_owned();
        assert!(first.contains(what), "expected {what}, got {first}");
        m
    }

    fn answer(&self, req: &Message, code: u16) {
        let mut r =
            Message::response_to(req, StatusCode::new(code).unwrap(), None, Some("peer-tag"))
                .unwrap();
        r.push_header(
            sipwarden_sip::HeaderName::Contact,
            &format!("<sip:peer@{}>", self.0.local_addr().unwrap()),
        )
        .unwrap();
        r.finish().unwrap();
        self.0.send_to(&r.to_bytes(), "127.0.0.1:5060").unwrap();
    }
}

fn invite(carrier: &Peer, number: &str, call_id: &str) -> String {
    format!(
        "INVITE sip:{number}@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.3:{p};branch=z9hG4bK{call_id};rport\r\nFrom: <sip:+12125550100@carrier.lab>;tag=c-{call_id}\r\nTo: <sip:{number}@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:c@127.0.0.3:{p}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        p = carrier.port()
    )
}

/// The ACK for a non-2xx final response to `invite(carrier, _, call_id)`: same branch.
fn ack_failure(rsp: &Message, carrier: &Peer, call_id: &str) -> String {
    format!(
        "ACK sip:x@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.3:{};branch=z9hG4bK{call_id};rport\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        carrier.port(),
        rsp.header(sipwarden_sip::HeaderName::From).unwrap(),
        rsp.header(sipwarden_sip::HeaderName::To).unwrap(),
    )
}

fn ack_for(ok: &Message, carrier: &Peer) -> String {
    format!(
        "ACK sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.3:{};branch=z9hG4bKack{};rport\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        carrier.port(),
        ok.call_id().unwrap().len(),
        ok.header(sipwarden_sip::HeaderName::From).unwrap(),
        ok.header(sipwarden_sip::HeaderName::To).unwrap(),
        ok.call_id().unwrap()
    )
}

fn lab(dir: &TempDir, edit: impl Fn(String) -> String) -> Gateway {
    copy_tree(&repo_root().join("examples"), &dir.0.join("examples"));
    let cfg = dir.0.join("examples/lab.toml");
    std::fs::write(&cfg, edit(std::fs::read_to_string(&cfg).unwrap())).unwrap();
    // Info from the server crate: it logs when a reload is done, or refused.
    Gateway::start_logging(
        &dir.0,
        &["serve", "--config", "examples/lab.toml"],
        "warn,sipwarden_server=info",
    )
}

#[test]
fn sighup_reloads_routes_for_new_calls() {
    let _lab = lab_lock();
    let dir = TempDir::new("sighup");
    let gw = lab(&dir, |c| c);
    let carrier = Peer::bind("127.0.0.3:0");
    let pbx = Peer::bind("127.0.0.10:5080");

    carrier.send_raw(&invite(&carrier, "+15552220001", "reload-1"));
    let r = carrier.expect("404");
    carrier.send_raw(&ack_failure(&r, &carrier, "reload-1"));
    assert!(pbx.recv(Duration::from_millis(300)).is_none());

    let cfg = dir.0.join("examples/lab.toml");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "dids = [\"+15551230000-+15551230099\"]",
        "dids = [\"+15551230000-+15551230099\", \"+15552220000-+15552220099\"]",
    );
    std::fs::write(&cfg, text).unwrap();
    let mark = gw.log_mark();
    gw.signal("HUP");
    // The core logs this once the new routes are in, before it takes the next message.
    gw.wait_for_log(mark, "configuration reloaded", Duration::from_secs(5));

    carrier.send_raw(&invite(&carrier, "+15552220001", "reload-2"));
    let inv = pbx.expect("INVITE sip:+15552220001@127.0.0.10:5080");
    pbx.answer(&inv, 486);
    pbx.expect("ACK");
    let r = carrier.expect("486");
    carrier.send_raw(&ack_failure(&r, &carrier, "reload-2"));

    // A broken file is refused on reload; the gateway keeps running on what it had.
    std::fs::write(&cfg, "[listen]\nudpp = 1\n").unwrap();
    let mark = gw.log_mark();
    gw.signal("HUP");
    gw.wait_for_log(mark, "reload refused", Duration::from_secs(5));
    carrier.send_raw(&invite(&carrier, "+15552220002", "reload-3"));
    let inv = pbx.expect("INVITE sip:+15552220002@127.0.0.10:5080");
    pbx.answer(&inv, 486);
    pbx.expect("ACK");
    let r = carrier.expect("486");
    carrier.send_raw(&ack_failure(&r, &carrier, "reload-3"));
    assert!(gw.stop().success());
}

#[test]
fn sigterm_drains_then_hangs_up_after_the_grace_period() {
    let _lab = lab_lock();
    let dir = TempDir::new("sigterm");
    let gw = lab(&dir, |c| {
        c.replace("shutdown_grace = \"30s\"", "shutdown_grace = \"2s\"")
    });
    let carrier = Peer::bind("127.0.0.3:0");
    let pbx = Peer::bind("127.0.0.10:5080");

    // A call in progress.
    carrier.send_raw(&invite(&carrier, "+15551230042", "term-1"));
    let inv = pbx.expect("INVITE");
    pbx.answer(&inv, 200);
    let ok = carrier.expect("200 OK");
    carrier.send_raw(&ack_for(&ok, &carrier));
    pbx.expect("ACK");

    gw.signal("TERM");
    // Draining has begun once a probe INVITE to a number nobody owns gets 503 rather than
    // 404: no probe can reach the PBX, whether the signal has been taken yet or not.
    let mut probe = 0;
    wait_until(
        "the gateway to drain (503 to a probe INVITE)",
        Duration::from_secs(5),
        || {
            probe += 1;
            let call_id = format!("term-probe-{probe}");
            carrier.send_raw(&invite(&carrier, "+15559990001", &call_id));
            let r = carrier.expect("SIP/2.0 ");
            carrier.send_raw(&ack_failure(&r, &carrier, &call_id));
            let code = r.status().map(|c| c.as_u16());
            assert!(matches!(code, Some(404 | 503)), "probe answered {code:?}");
            code == Some(503)
        },
    );
    // No new calls while draining.
    carrier.send_raw(&invite(&carrier, "+15551230043", "term-2"));
    let r = carrier.expect("503");
    carrier.send_raw(&ack_failure(&r, &carrier, "term-2"));
    assert!(
        pbx.recv(Duration::from_millis(500)).is_none(),
        "no new call reaches the PBX"
    );

    // After the grace period both legs get a BYE.
    let started = Instant::now();
    let bye_c = carrier.expect("BYE");
    let bye_p = pbx.expect("BYE");
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "not before the grace period"
    );
    carrier.answer(&bye_c, 200);
    pbx.answer(&bye_p, 200);
    let mut gw = gw;
    let status = wait_exit(&mut gw.child, Duration::from_secs(10))
        .expect("the gateway did not exit within 10 s after its calls ended");
    assert!(status.success(), "{status:?}");
}

/// One attacker: REGISTERs for an account that does not exist, each with made-up
/// credentials for the challenge it got, until the gateway stops answering (banned).
fn guess_until_banned(source: &str) {
    let s = UdpSocket::bind(format!("{source}:0")).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let port = s.local_addr().unwrap().port();
    let mut buf = vec![0u8; 65536];
    let mut silent = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut n = 0u32;
    while silent < 3 && Instant::now() < deadline {
        n += 1;
        let head = format!(
            "REGISTER sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {source}:{port};branch=z9hG4bKg{n}\r\nFrom: <sip:intruder@127.0.0.1>;tag=g{n}\r\nTo: <sip:intruder@127.0.0.1>\r\nCall-ID: guess-{source}-{n}\r\nCSeq: {n} REGISTER\r\nContact: <sip:intruder@{source}:{port}>\r\nMax-Forwards: 70\r\n"
        );
        s.send_to(
            format!("{head}Content-Length: 0\r\n\r\n").as_bytes(),
            "127.0.0.1:5060",
        )
        .unwrap();
        let Ok((len, _)) = s.recv_from(&mut buf) else {
            silent += 1;
            continue;
        };
        let text = String::from_utf8_lossy(&buf[..len]).into_owned();
        let Some(nonce) = text
            .split("nonce=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
        else {
            continue;
        };
        n += 1;
        let auth = format!(
            "Authorization: Digest username=\"intruder\", realm=\"sipwarden.lab\", nonce=\"{nonce}\", uri=\"sip:127.0.0.1:5060\", response=\"0123456789abcdef0123456789abcdef\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c{n}\"\r\n"
        );
        let again = head.replace(&format!("CSeq: {} ", n - 1), &format!("CSeq: {n} "));
        s.send_to(
            format!("{again}{auth}Content-Length: 0\r\n\r\n").as_bytes(),
            "127.0.0.1:5060",
        )
        .unwrap();
        if s.recv_from(&mut buf).is_err() {
            silent += 1;
        }
    }
}

/// SIGKILL in the middle of a REGISTER load of thousands of phones and of a guessing run:
/// every registration the gateway acknowledged with a 200 and every ban it logged are in
/// the store, and after a restart the bans are in force and the phones registered.
#[test]
fn a_sigkill_mid_load_loses_no_acknowledged_registration_and_no_logged_ban() {
    let _lab = lab_lock();
    const PHONES: usize = 3000;
    let dir = TempDir::new("crash");
    copy_tree(&repo_root().join("examples"), &dir.0.join("examples"));
    let mut accounts = String::from("realm = \"sipwarden.lab\"\n");
    let mut csv = String::from("SEQUENTIAL\n");
    for i in 0..PHONES {
        let (user, pw) = (format!("p{}", 10_000 + i), format!("pw-{i}-secret"));
        let ha1 = sipwarden_sip::digest::ha1(
            sipwarden_sip::digest::Algorithm::Md5,
            &user,
            "sipwarden.lab",
            &pw,
        );
        accounts.push_str(&format!(
            "\n[[account]]\nuser = \"{user}\"\nha1_md5 = \"{}\"\n",
            ha1.as_str()
        ));
        csv.push_str(&format!(
            "{user};[authentication username={user} password={pw}]\n"
        ));
    }
    std::fs::write(dir.0.join("examples/lab/crash-accounts.toml"), accounts).unwrap();
    std::fs::write(dir.0.join("phones.csv"), csv).unwrap();
    let cfg = dir.0.join("examples/lab.toml");
    let lab_toml = std::fs::read_to_string(&cfg).unwrap();
    let text = lab_toml
        .replace(
            "file = \"examples/lab/accounts.toml\"",
            "file = \"examples/lab/crash-accounts.toml\"",
        )
        // The phones' network registers at any rate (as the benchmark's phone does).
        .replace("allow = []", "allow = [\"127.0.0.2/32\"]")
        // Commits wait for the disk: the window between a 200 and its commit, which a
        // gateway answering too early would lose, is as wide as it gets.
        .replace("dir = \"lab-data\"", "dir = \"lab-data\"\nsync_full = true");
    assert!(
        text.contains("crash-accounts")
            && text.contains("127.0.0.2/32")
            && text.contains("sync_full = true")
    );
    std::fs::write(&cfg, text).unwrap();
    let args = ["serve", "--config", "examples/lab.toml"];
    let gw = Gateway::start(&dir.0, &args);
    let token = std::fs::read_to_string(dir.0.join("examples/lab/admin.token"))
        .unwrap()
        .trim()
        .to_owned();

    // The load: 600 registrations a second from 127.0.0.2, and ten guessing addresses.
    let reg_log = dir.0.join("registered.log");
    let mut phones = Command::new(sipp::sipp_bin())
        .args(["127.0.0.1:5060", "-sf"])
        .arg(sipp::scenario("phones_register_csv.xml"))
        .arg("-inf")
        .arg(dir.0.join("phones.csv"))
        .args(["-i", "127.0.0.2", "-p", "5062", "-t", "u1", "-nostdin"])
        .args([
            "-r",
            "600",
            "-rp",
            "1000",
            "-m",
            &PHONES.to_string(),
            "-l",
            "2000",
        ])
        .args([
            "-recv_timeout",
            "3000",
            "-timeout",
            "60s",
            "-trace_logs",
            "-log_file",
        ])
        .arg(&reg_log)
        .arg("-trace_err")
        .arg("-error_file")
        .arg(dir.0.join("phones.err"))
        .current_dir(&dir.0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let guessers: Vec<_> = (81..=90)
        .map(|i| std::thread::spawn(move || guess_until_banned(&format!("127.0.0.{i}"))))
        .collect();
    let events = dir.0.join("lab-data/events.jsonl");
    let logged_bans = || {
        std::fs::read_to_string(&events)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"event\":\"Ban\""))
            .filter_map(|l| {
                l.split("\"remote_ip\":\"")
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .map(str::to_owned)
            })
            .collect::<Vec<_>>()
    };
    // Mid-load: a third of the phones answered and some bans logged.
    let mut stats = String::new();
    let mid_load = poll_every(Duration::from_millis(20), Duration::from_secs(60), || {
        stats = http_get("127.0.0.1:8080", "/api/stats", Some(&token)).1;
        (sipp::stat(&stats, "registrations") >= (PHONES / 3) as u64 && logged_bans().len() >= 3)
            .then_some(())
    });
    if mid_load.is_none() {
        let err = std::fs::read_to_string(dir.0.join("phones.err")).unwrap_or_default();
        panic!(
            "no third of the phones registered with bans logged within 60 s: {stats}\nbans: {:?}\nSIPp errors: {}",
            logged_bans(),
            err.get(..err.len().min(3000)).unwrap_or("")
        );
    }
    gw.kill();
    // What the gateway had acknowledged and logged when it died.
    let bans = logged_bans();
    for g in guessers {
        g.join().unwrap();
    }
    let _ = wait_exit(&mut phones, Duration::from_secs(90));
    let registered: Vec<String> = std::fs::read_to_string(&reg_log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split("registered ").nth(1).map(|u| u.trim().to_owned()))
        .collect();
    assert!(
        registered.len() >= PHONES / 3 && registered.len() < PHONES,
        "the kill came mid-load: {} of {PHONES} phones had their 200",
        registered.len()
    );

    // On disk: every acknowledged binding, every logged ban.
    let mut store =
        sipwarden_store::SqliteStore::open(&dir.0.join("lab-data/sipwarden.db"), false).unwrap();
    use sipwarden_store::{BanStore, LocationStore};
    let stored: std::collections::HashSet<String> = store
        .load_bindings()
        .unwrap()
        .into_iter()
        .map(|b| b.aor)
        .collect();
    let lost: Vec<&String> = registered.iter().filter(|u| !stored.contains(*u)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged registrations lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    let stored_bans: Vec<String> = store
        .load_bans()
        .unwrap()
        .into_iter()
        .map(|b| b.ip)
        .collect();
    for ip in &bans {
        assert!(stored_bans.contains(ip), "logged ban of {ip} not stored");
    }
    drop(store);

    // After a restart: the phones are registered and the bans in force.
    let gw = Gateway::start(&dir.0, &args);
    let stats = http_get("127.0.0.1:8080", "/api/stats", Some(&token)).1;
    assert!(
        sipp::stat(&stats, "registrations") >= registered.len() as u64,
        "{stats}"
    );
    let listed = http_get("127.0.0.1:8080", "/api/bans", Some(&token)).1;
    for ip in &bans {
        assert!(
            listed.contains(&format!("\"{ip}\"")),
            "{ip} not banned after the restart: {listed}"
        );
    }
    let first = bans.first().expect("bans were logged");
    let s = UdpSocket::bind(format!("{first}:0")).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(1000)))
        .unwrap();
    let port = s.local_addr().unwrap().port();
    s.send_to(
        options("z9hG4bKafter", port, "UDP").as_bytes(),
        "127.0.0.1:5060",
    )
    .unwrap();
    let mut buf = [0u8; 4096];
    assert!(
        s.recv_from(&mut buf).is_err(),
        "a banned address was answered after the restart"
    );
    assert!(gw.stop().success());
}
