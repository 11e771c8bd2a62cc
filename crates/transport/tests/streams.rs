//! The connection table against real sockets on loopback: limits hit, idle connections
//! closed, keep-alive pings answered, answers sent back on the connection a request came on,
//! TLS 1.2+ with a verified certificate.

use std::time::Duration;

use bytes::Bytes;
use sipwarden_sip::header::Transport;
use sipwarden_sip::{Limits, Peer};
use sipwarden_transport::{Config, Inbound, Transports, tls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

fn config() -> Config {
    Config {
        udp: vec![],
        tcp: vec!["127.0.0.1:0".parse().unwrap()],
        tls: vec![],
        wss: vec![],
        udp_sockets: 1,
        max_connections_per_ip: 2,
        max_connections: 100,
        idle_timeout: Duration::from_millis(300),
        limits: Limits::default(),
        tls_server: None,
        tls_client: None,
        gate: None,
        unreachable: None,
    }
}

const OPTIONS: &[u8] = b"OPTIONS sip:gw SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:gw>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";

async fn read_some(s: &mut (impl AsyncReadExt + Unpin), wait: Duration) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(wait, s.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => Some(Vec::new()),
        Ok(Ok(n)) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

#[tokio::test]
async fn per_ip_limit_keepalive_idle_timeout_and_replies_on_the_same_connection() {
    let (tx, mut rx) = mpsc::channel::<Inbound>(16);
    let t = Transports::start(config(), tx).await.unwrap();
    let addr = t.bound().tcp[0];

    // A request arrives; the answer goes back on its connection, found by flow.
    let mut a = TcpStream::connect(addr).await.unwrap();
    a.write_all(OPTIONS).await.unwrap();
    let inbound = tokio::time::timeout(Duration::from_secs(2), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(inbound.peer.transport, Transport::Tcp);
    assert!(inbound.peer.flow.is_some());
    t.send(
        inbound.peer,
        Bytes::from_static(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"),
    );
    let got = read_some(&mut a, Duration::from_secs(2)).await.unwrap();
    assert!(got.starts_with(b"SIP/2.0 200 OK"));

    // RFC 5626 keep-alive: CRLFCRLF is answered with CRLF.
    a.write_all(b"\r\n\r\n").await.unwrap();
    assert_eq!(
        read_some(&mut a, Duration::from_secs(2)).await.unwrap(),
        b"\r\n"
    );

    // Two connections per IP: the third is refused at accept (closed before any byte).
    let _b = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    assert_eq!(
        read_some(&mut c, Duration::from_secs(2)).await,
        Some(Vec::new()),
        "third connection closed"
    );
    assert!(t.metrics().snapshot().refused_limit >= 1);

    // Idle connections are closed after the idle timeout, freeing their slot.
    assert_eq!(
        read_some(&mut a, Duration::from_secs(3)).await,
        Some(Vec::new()),
        "idle connection closed"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(t.metrics().snapshot().idle_closed >= 1);
    assert_eq!(t.conns().len(), 0);
    let mut d = TcpStream::connect(addr).await.unwrap();
    d.write_all(OPTIONS).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_secs(2), rx.recv())
            .await
            .unwrap()
            .is_some(),
        "slots free again"
    );
}

#[tokio::test]
async fn a_framing_error_closes_the_stream() {
    let (tx, mut rx) = mpsc::channel::<Inbound>(16);
    let t = Transports::start(config(), tx).await.unwrap();
    let mut s = TcpStream::connect(t.bound().tcp[0]).await.unwrap();
    let no_length = b"OPTIONS sip:gw SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK2\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:gw>\r\nCall-ID: c2\r\nCSeq: 1 OPTIONS\r\n\r\n";
    s.write_all(no_length).await.unwrap();
    assert_eq!(
        read_some(&mut s, Duration::from_secs(2)).await,
        Some(Vec::new()),
        "closed"
    );
    assert!(rx.try_recv().is_err(), "nothing reached the core");
    assert_eq!(t.metrics().snapshot().framing_errors, 1);
}

#[tokio::test]
async fn tls_listener_and_verified_outbound_connection() {
    let dir = std::env::temp_dir().join(format!("sipwarden-tls-e2e-{}", std::process::id()));
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    tls::ensure_self_signed(&cert, &key, &["127.0.0.1".into()]).unwrap();
    let server = tls::server_config(&cert, &key, false).unwrap();
    let trusting = tls::client_config(Some(&cert), false).unwrap();

    // The listener side.
    let (tx, mut rx) = mpsc::channel::<Inbound>(16);
    let mut cfg = config();
    cfg.tcp = vec![];
    cfg.tls = vec!["127.0.0.1:0".parse().unwrap()];
    cfg.tls_server = Some(server);
    let listener = Transports::start(cfg, tx).await.unwrap();
    let addr = listener.bound().tls[0];

    // An outbound TLS connection from a second transport that trusts the certificate.
    let (tx2, _rx2) = mpsc::channel::<Inbound>(16);
    let mut cfg2 = config();
    cfg2.tcp = vec![];
    cfg2.tls_client = Some(trusting);
    let client = Transports::start(cfg2, tx2).await.unwrap();
    client.send(
        Peer {
            transport: Transport::Tls,
            addr,
            flow: None,
        },
        Bytes::from_static(OPTIONS),
    );
    let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.peer.transport, Transport::Tls);
    assert_eq!(got.msg.call_id(), Some("c1"));

    // A client that does not trust the certificate never gets a message through.
    let (tx3, _rx3) = mpsc::channel::<Inbound>(16);
    let mut cfg3 = config();
    cfg3.tcp = vec![];
    cfg3.tls_client = Some(tls::client_config(None, false).unwrap());
    let untrusting = Transports::start(cfg3, tx3).await.unwrap();
    untrusting.send(
        Peer {
            transport: Transport::Tls,
            addr,
            flow: None,
        },
        Bytes::from_static(OPTIONS),
    );
    assert!(
        tokio::time::timeout(Duration::from_secs(2), rx.recv())
            .await
            .is_err(),
        "unverified peer refused"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(untrusting.metrics().snapshot().tls_handshake_failed >= 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A gate that refuses one address.
struct Refuse(std::net::IpAddr);

impl sipwarden_transport::Gate for Refuse {
    fn admit(&self, ip: std::net::IpAddr) -> bool {
        ip != self.0
    }
}

#[tokio::test]
async fn a_refused_source_is_dropped_before_parsing_and_refused_at_accept() {
    let (tx, mut rx) = mpsc::channel::<Inbound>(16);
    let banned: std::net::IpAddr = "127.0.0.66".parse().unwrap();
    let cfg = Config {
        udp: vec!["127.0.0.1:0".parse().unwrap()],
        gate: Some(std::sync::Arc::new(Refuse(banned))),
        unreachable: None,
        ..config()
    };
    let t = Transports::start(cfg, tx).await.unwrap();
    let udp = t.bound().udp[0];
    let tcp = t.bound().tcp[0];
    for (ip, expect) in [("127.0.0.66", false), ("127.0.0.67", true)] {
        let s = std::net::UdpSocket::bind((ip, 0)).unwrap();
        s.send_to(OPTIONS, udp).unwrap();
        let got = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await;
        assert_eq!(got.is_ok(), expect, "{ip} over UDP");
    }
    assert_eq!(t.metrics().snapshot().banned_dropped, 1);
    assert_eq!(t.metrics().snapshot().parse_errors, 0, "never parsed");
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.66:0".parse().unwrap()).unwrap();
    let mut c = sock.connect(tcp).await.unwrap();
    let _ = c.write_all(OPTIONS).await;
    assert_eq!(
        read_some(&mut c, Duration::from_secs(2)).await,
        Some(Vec::new()),
        "closed at accept"
    );
    assert_eq!(t.metrics().snapshot().banned_refused, 1);
}

/// A peer that refuses the connection is reported at once (so the call core can fail what
/// waits for it), as is one whose TLS certificate does not name the server it was asked for.
#[tokio::test]
async fn an_unreachable_peer_is_reported() {
    let (tx, _rx) = mpsc::channel::<Inbound>(16);
    let (utx, mut urx) = mpsc::channel::<Peer>(4);
    let cfg = Config {
        unreachable: Some(utx),
        ..config()
    };
    let t = Transports::start(cfg, tx).await.unwrap();
    // A port nothing listens on: bind one, note it, close it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let peer = Peer {
        transport: Transport::Tcp,
        addr: closed,
        flow: None,
    };
    t.send(peer, Bytes::from_static(OPTIONS));
    let got = tokio::time::timeout(Duration::from_secs(5), urx.recv())
        .await
        .expect("reported in time");
    assert_eq!(got, Some(peer));
}
