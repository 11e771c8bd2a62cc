//! Remote phones in the lab of LAB.md: SIPp phones on 127.0.0.2 register with digest auth
//! and call the PBX, the PBX (SIPp on 127.0.0.10:5070/5080) calls them; a phone on TCP is
//! called on its own connection; registrations survive a restart; a browser-like phone
//! registers over secure WebSocket (Python's `websockets`) and receives the PBX's call.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::sipp::*;
use common::*;
use sipwarden_sip::digest::{self, Algorithm, Qop, ResponseInput};
use sipwarden_sip::{HeaderName, Message};

/// LAB.md's accounts.
const ACCOUNTS: [(&str, &str); 5] = [
    ("1001", "Kj9#mNp2xQ&vL5sW!aR7cYz3"),
    ("1002", "t7Vq!2mZ#8rLw@4xPn6s"),
    ("1003", "H3&kd9Q!zm2W$p7Lr5xY"),
    ("1004", "q8#Rz4!Lm7&Tx2Wp9sKd"),
    ("1005", "Z5!xw8#Pq3&Ln6Ty2Rm9"),
];
const GW: &str = "127.0.0.1:5060";
const PBX_CALLER: (&str, u16) = ("127.0.0.10", 5070);
const PBX_IP: &str = "127.0.0.10";
const PBX: &str = "127.0.0.10:5080";
const PHONE_IP: &str = "127.0.0.2";

/// SIPp phone registration (and refresh) of one account from 127.0.0.2:`port`.
fn register(lab: &Lab, label: &str, (user, pw): (&str, &str), port: u16) {
    let w = lab.work(label);
    uac(
        &w,
        label,
        &scenario("phone_register.xml"),
        (GW, (PHONE_IP, port)),
        user,
        (1, 1),
        &["-au", user, "-ap", pw],
    );
}

#[test]
fn lab_phones_register_call_and_survive_a_restart() {
    let _lab = lab_lock();
    let mut lab = Lab::start("examples/lab.toml");

    // 1. The accounts that may use UDP register and refresh (1002 is TLS/WSS only: the
    //    WebSocket test below registers it).
    for (i, acc) in ACCOUNTS.iter().enumerate().filter(|(_, a)| a.0 != "1002") {
        register(
            &lab,
            &format!("register-{}", acc.0),
            *acc,
            5062 + i as u16 * 2,
        );
    }
    let s = stats(&lab);
    assert_eq!(stat(&s, "registrations"), 4, "{s}");
    assert_eq!(stat(&s, "registrations_accepted"), 8, "{s}");

    // 2. Wrong password: 401, 401 again, then 403 — and nothing reaches the PBX. The same for
    //    1002's right password over UDP, a transport it may not use. Each from an address of
    //    its own: a second failure from one address within find_time is refused at once (403).
    let pbx = UdpSocket::bind(PBX).unwrap();
    pbx.set_nonblocking(true).unwrap();
    for (label, user, pw, ip) in [
        ("wrong-password", "1001", "not-the-password", PHONE_IP),
        ("wrong-transport", "1002", ACCOUNTS[1].1, "127.0.0.1"),
    ] {
        let w = lab.work(label);
        uac(
            &w,
            label,
            &scenario("phone_register_wrong.xml"),
            (GW, (ip, 5090)),
            user,
            (1, 1),
            &["-au", user, "-ap", pw],
        );
    }
    let mut buf = [0u8; 2048];
    assert!(
        pbx.recv_from(&mut buf).is_err(),
        "a failed registration never reaches the PBX"
    );
    drop(pbx);
    let s = stats(&lab);
    assert_eq!(stat(&s, "registrations"), 4, "{s}");
    assert_eq!(stat(&s, "auth_failures"), 4, "{s}");

    // 3. 1003-1005 unregister (Contact: *); 1001 stays.
    for acc in &ACCOUNTS[2..] {
        let label = format!("unregister-{}", acc.0);
        let w = lab.work(&label);
        uac(
            &w,
            &label,
            &scenario("phone_unregister.xml"),
            (GW, (PHONE_IP, 5092)),
            acc.0,
            (1, 1),
            &["-au", acc.0, "-ap", acc.1],
        );
    }
    assert_eq!(stat(&stats(&lab), "registrations"), 1);

    // 4. 500 calls each way at 20 calls/s, at the same time: the PBX calls 1001 (registered
    //    from 127.0.0.2:5062, where a SIPp phone answers); 1001 calls the PBX from another
    //    port, authenticating each INVITE (407), and the PBX checks the asserted identity.
    let w_in = lab.work("pbx-to-phone");
    let phone = Uas::start(&w_in, &scenario("phone_uas.xml"), PHONE_IP, 5062, 500, &[]);
    let w_out = lab.work("phone-to-pbx");
    let pbx = Uas::start(
        &w_out,
        &scenario("pbx_uas_phone.xml"),
        PBX_IP,
        5080,
        500,
        &[],
    );
    let auth_uri = "5551234@127.0.0.1:5060";
    let outbound = {
        let w = w_out.clone();
        std::thread::spawn(move || {
            uac(
                &w,
                "phone to pbx",
                &scenario("phone_uac.xml"),
                (GW, (PHONE_IP, 5064)),
                "5551234",
                (500, 20),
                &[
                    "-au",
                    ACCOUNTS[0].0,
                    "-ap",
                    ACCOUNTS[0].1,
                    "-auth_uri",
                    auth_uri,
                ],
            );
        })
    };
    uac(
        &w_in,
        "pbx to phone",
        &scenario("pbx_uac.xml"),
        (GW, PBX_CALLER),
        "1001",
        (500, 20),
        &[],
    );
    outbound.join().unwrap();
    phone.finish();
    pbx.finish();
    let s = drained(&lab.token, Duration::from_secs(60));
    assert!(stat(&s, "calls_answered") >= 1000, "{s}");

    // 5. Restart between the registration and the call: the binding comes back from the
    //    database and the call still reaches the phone.
    let gw = lab.gw.take().unwrap();
    assert!(gw.stop().success());
    lab.gw = Some(Gateway::start(
        &lab.dir.0,
        &["serve", "--config", "examples/lab.toml"],
    ));
    assert_eq!(stat(&stats(&lab), "registrations"), 1);
    let w = lab.work("after-restart");
    let phone = Uas::start(&w, &scenario("phone_uas.xml"), PHONE_IP, 5062, 10, &[]);
    uac(
        &w,
        "after restart",
        &scenario("pbx_uac.xml"),
        (GW, PBX_CALLER),
        "1001",
        (10, 10),
        &[],
    );
    phone.finish();

    // 6. 1001 unregisters too.
    let w = lab.work("unregister-1001");
    uac(
        &w,
        "unregister 1001",
        &scenario("phone_unregister.xml"),
        (GW, (PHONE_IP, 5092)),
        "1001",
        (1, 1),
        &["-au", ACCOUNTS[0].0, "-ap", ACCOUNTS[0].1],
    );
    assert_eq!(stat(&stats(&lab), "registrations"), 0);
    lab.stop();
}

/// A softphone on the gateway's own machine sends from 127.0.0.1, the address local clients
/// get when they cannot choose one. In the lab that is the endpoint zone, not the PBX's
/// network (127.0.0.10): the phone is challenged like any other, registers, and its call
/// reaches the PBX with the account asserted; the PBX's call reaches it back. Were 127.0.0.1
/// the PBX's, the REGISTER would get no 401 and the INVITE no 407, and both callers fail.
#[test]
fn lab_phone_on_127_0_0_1_registers_and_calls_the_pbx() {
    const LOCAL_PHONE: &str = "127.0.0.1";
    let _lab = lab_lock();
    let lab = Lab::start("examples/lab.toml");
    let (user, pw) = ACCOUNTS[0];

    // REGISTER -> 401 -> REGISTER with credentials -> 200, then a refresh -> 200.
    let w = lab.work("local-register");
    uac(
        &w,
        "local phone register",
        &scenario("phone_register.xml"),
        (GW, (LOCAL_PHONE, 5162)),
        user,
        (1, 1),
        &["-au", user, "-ap", pw],
    );
    let s = stats(&lab);
    assert_eq!(stat(&s, "registrations"), 1, "{s}");
    assert_eq!(stat(&s, "registrations_accepted"), 2, "{s}");
    assert_eq!(stat(&s, "auth_failures"), 0, "{s}");

    // The phone calls the PBX (INVITE -> 407 -> INVITE with credentials); the PBX answers
    // only when the gateway asserts the account.
    let w = lab.work("local-phone-to-pbx");
    let pbx = Uas::start(&w, &scenario("pbx_uas_phone.xml"), PBX_IP, 5080, 1, &[]);
    uac(
        &w,
        "local phone to pbx",
        &scenario("phone_uac.xml"),
        (GW, (LOCAL_PHONE, 5164)),
        "5551234",
        (1, 1),
        &[
            "-au",
            user,
            "-ap",
            pw,
            "-auth_uri",
            "5551234@127.0.0.1:5060",
        ],
    );
    pbx.finish();

    // The PBX calls 1001 at the contact it registered, 127.0.0.1:5162.
    let w = lab.work("pbx-to-local-phone");
    let phone = Uas::start(&w, &scenario("phone_uas.xml"), LOCAL_PHONE, 5162, 1, &[]);
    uac(
        &w,
        "pbx to local phone",
        &scenario("pbx_uac.xml"),
        (GW, PBX_CALLER),
        user,
        (1, 1),
        &[],
    );
    phone.finish();
    let s = drained(&lab.token, Duration::from_secs(60));
    assert_eq!(stat(&s, "calls_answered"), 2, "{s}");
    lab.stop();
}

/// Reads one SIP message from a stream (head, then Content-Length bytes of body).
fn read_sip(r: &mut BufReader<TcpStream>) -> Message {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        assert!(r.read_line(&mut line).unwrap() > 0, "connection closed");
        if line == "\r\n" && head.is_empty() {
            continue; // keep-alive
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            (n.eq_ignore_ascii_case("content-length") || n == "l").then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).unwrap();
    let mut raw = head.into_bytes();
    raw.extend_from_slice(&body);
    Message::parse(&raw).unwrap()
}

fn tcp_register(cseq: u32, port: u16, auth: Option<&str>) -> String {
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    format!(
        "REGISTER sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.2:{port};branch=z9hG4bKtcpreg{cseq};rport\r\nMax-Forwards: 70\r\nFrom: <sip:1001@127.0.0.1>;tag=tcpphone\r\nTo: <sip:1001@127.0.0.1>\r\nCall-ID: tcp-phone-reg\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:1001@127.0.0.2:{port};transport=tcp>\r\n{auth}Expires: 600\r\nContent-Length: 0\r\n\r\n"
    )
}

fn digest_answer(challenge: &Message, method: &str, uri: &str, user: &str, pw: &str) -> String {
    let ch = challenge
        .auths(HeaderName::WwwAuthenticate)
        .next()
        .unwrap()
        .unwrap();
    let nonce = ch.nonce().unwrap();
    let alg = Algorithm::from_token(&ch.algorithm().unwrap()).unwrap();
    let input = ResponseInput {
        algorithm: alg,
        method,
        digest_uri: uri,
        nonce: &nonce,
        cnonce: Some("5eed"),
        nc: Some("00000001"),
        qop: Some(Qop::Auth),
        body: b"",
    };
    let r = digest::response(user, "sipwarden.lab", pw, &input);
    format!(
        "Digest username=\"{user}\", realm=\"sipwarden.lab\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{}\", algorithm={}, qop=auth, nc=00000001, cnonce=\"5eed\"",
        r.as_str(),
        alg.token()
    )
}

/// A response to `req` with our tag, as a phone answers.
fn answer_to(req: &Message, status: &str, sdp: bool) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for v in req.header_values(HeaderName::Via) {
        out.push_str(&format!("Via: {v}\r\n"));
    }
    let to = req.header(HeaderName::To).unwrap();
    let to = if to.contains(";tag=") {
        to.to_owned()
    } else {
        format!("{to};tag=tcpph")
    };
    out.push_str(&format!(
        "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\nContact: <sip:1001@127.0.0.2:5096;transport=tcp>\r\n",
        req.header(HeaderName::From).unwrap(),
        req.call_id().unwrap(),
        req.header(HeaderName::CSeq).unwrap()
    ));
    if sdp {
        let body = "v=0\r\no=phone 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0\r\n";
        out.push_str(&format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    } else {
        out.push_str("Content-Length: 0\r\n\r\n");
    }
    out
}

#[test]
fn lab_phone_on_tcp_is_called_on_its_own_connection() {
    let _lab = lab_lock();
    let lab = Lab::start("examples/lab.toml");
    // The phone's own listening address, as its Contact names it: a new connection from the
    // gateway would land here, and must not.
    let port = 5096;
    let listener = TcpListener::bind((PHONE_IP, port)).unwrap();
    listener.set_nonblocking(true).unwrap();
    let stream = socket_from(PHONE_IP);
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    w.write_all(tcp_register(1, port, None).as_bytes()).unwrap();
    let ch = read_sip(&mut r);
    assert_eq!(ch.status().unwrap().as_u16(), 401);
    let creds = digest_answer(&ch, "REGISTER", "sip:127.0.0.1:5060", "1001", ACCOUNTS[0].1);
    w.write_all(tcp_register(2, port, Some(&creds)).as_bytes())
        .unwrap();
    let ok = read_sip(&mut r);
    assert_eq!(ok.status().unwrap().as_u16(), 200);
    assert_eq!(stat(&stats(&lab), "connections"), 1);

    // The PBX calls 1001 and hangs up after 100 ms.
    let wdir = lab.work("tcp-call");
    let caller = {
        let wdir = wdir.clone();
        std::thread::spawn(move || {
            uac(
                &wdir,
                "pbx to tcp phone",
                &scenario("pbx_uac.xml"),
                (GW, PBX_CALLER),
                "1001",
                (1, 1),
                &[],
            );
        })
    };
    let invite = read_sip(&mut r);
    assert_eq!(
        invite.method_str(),
        Some("INVITE"),
        "the INVITE came on the registration's connection"
    );
    assert_eq!(
        invite.request_uri_str(),
        Some("sip:1001@127.0.0.2:5096;transport=tcp")
    );
    assert!(
        invite
            .top_via()
            .unwrap()
            .transport_text
            .eq_ignore_ascii_case("TCP")
    );
    w.write_all(answer_to(&invite, "200 OK", true).as_bytes())
        .unwrap();
    let ack = read_sip(&mut r);
    assert_eq!(ack.method_str(), Some("ACK"));
    let bye = read_sip(&mut r);
    assert_eq!(bye.method_str(), Some("BYE"));
    w.write_all(answer_to(&bye, "200 OK", false).as_bytes())
        .unwrap();
    caller.join().unwrap();
    assert!(
        listener.accept().is_err(),
        "the gateway opened no new connection toward the phone"
    );
    assert_eq!(stat(&stats(&lab), "connections"), 1);
    drop(w);
    drop(r);
    lab.stop();
}

/// A TCP connection to the gateway from `ip` (the phone network): bound before connecting.
fn socket_from(ip: &str) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let local: SocketAddr = format!("{ip}:0").parse().unwrap();
    let remote: SocketAddr = GW.parse().unwrap();
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&local.into()).unwrap();
    s.connect_timeout(&remote.into(), Duration::from_secs(5))
        .unwrap();
    s.into()
}

#[test]
fn lab_browser_phone_registers_over_wss_and_gets_the_pbx_call() {
    let _lab = lab_lock();
    let lab = Lab::start("examples/lab.toml");
    let cert = lab.cert();
    let mut phone = Command::new("python3")
        .arg(repo_root().join("tests/ws/ws_phone.py"))
        .args(["--url", "wss://127.0.0.1:8443", "--ca"])
        .arg(&cert)
        .args([
            "--user",
            "1002",
            "--password",
            ACCOUNTS[1].1,
            "--realm",
            "sipwarden.lab",
            "--source",
            PHONE_IP,
            "--pbx-timeout",
            "30",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(phone.stdout.take().unwrap());
    let mut line = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !line.contains("REGISTERED") {
        line.clear();
        if out.read_line(&mut line).unwrap_or(0) == 0 || Instant::now() > deadline {
            let _ = phone.kill();
            panic!("the WSS phone did not register");
        }
    }
    let s = stats(&lab);
    assert_eq!(stat(&s, "registrations"), 1, "{s}");
    // The PBX calls 1002 with SRTP (1002 requires it).
    let w = lab.work("wss-call");
    uac(
        &w,
        "pbx to wss phone",
        &scenario("pbx_uac_srtp.xml"),
        (GW, PBX_CALLER),
        "1002",
        (1, 1),
        &[],
    );
    let mut rest = String::new();
    let _ = out.read_to_string(&mut rest);
    let status = phone.wait().unwrap();
    assert!(
        rest.contains("INVITE RECEIVED") && rest.contains("CALL DONE"),
        "{rest}"
    );
    assert!(status.success());
    lab.stop();
}
