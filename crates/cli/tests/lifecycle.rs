//! The gateway's lifecycle in the lab: SIGHUP reloads routes for new calls, SIGTERM stops
//! taking calls, lets calls in progress run for the grace period, then hangs them up and exits.
//! The PBX and the carrier are plain UDP sockets driven by the test.

mod common;

use std::net::UdpSocket;
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
