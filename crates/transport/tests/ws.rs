//! SIP over secure WebSocket (RFC 7118) against a real WebSocket client (tokio-tungstenite
//! over tokio-rustls) on loopback: the `sip` subprotocol is required, one WebSocket message
//! is one SIP message both ways, oversized messages never reach the core, the connection
//! limits apply, and a closed connection leaves the table.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::ServerName;
use sipwarden_sip::header::Transport;
use sipwarden_sip::{Limits, Peer};
use sipwarden_transport::{Config, Inbound, Transports, tls};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Response;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

type Ws = WebSocketStream<TlsStream<TcpStream>>;

const OPTIONS: &str = "OPTIONS sip:gw SIP/2.0\r\nVia: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKws1\r\nFrom: <sip:1002@sipwarden.lab>;tag=1\r\nTo: <sip:gw>\r\nCall-ID: ws1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
const OK: &str = "SIP/2.0 200 OK\r\nVia: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKws1\r\nFrom: <sip:1002@sipwarden.lab>;tag=1\r\nTo: <sip:gw>;tag=2\r\nCall-ID: ws1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";

/// A certificate for 127.0.0.1 in a directory of its own, removed on drop.
struct Cert {
    dir: PathBuf,
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

impl Cert {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("sipwarden-ws-{name}-{}", std::process::id()));
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        tls::ensure_self_signed(&cert, &key, &["127.0.0.1".into()]).unwrap();
        Self {
            server: tls::server_config(&cert, &key, false).unwrap(),
            client: tls::client_config(Some(&cert), false).unwrap(),
            dir,
        }
    }
}

impl Drop for Cert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn config(cert: &Cert) -> Config {
    Config {
        udp: vec![],
        tcp: vec![],
        tls: vec![],
        wss: vec!["127.0.0.1:0".parse().unwrap()],
        udp_sockets: 1,
        max_connections_per_ip: 4,
        max_connections: 100,
        idle_timeout: Duration::from_secs(5),
        limits: Limits::default(),
        tls_server: Some(Arc::clone(&cert.server)),
        tls_client: None,
        gate: None,
        unreachable: None,
    }
}

async fn start(cfg: Config) -> (Transports, mpsc::Receiver<Inbound>, SocketAddr) {
    let (tx, rx) = mpsc::channel::<Inbound>(16);
    let t = Transports::start(cfg, tx).await.unwrap();
    let addr = t.bound().wss[0];
    (t, rx, addr)
}

/// Opens TLS to `addr`, then a WebSocket offering `protocols` (if any).
async fn connect(
    cert: &Cert,
    addr: SocketAddr,
    protocols: Option<&'static str>,
) -> Result<(Ws, Response), WsError> {
    let tcp = TcpStream::connect(addr).await?;
    let tls = tokio_rustls::TlsConnector::from(Arc::clone(&cert.client))
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await?;
    let mut req = format!("wss://{addr}/").into_client_request()?;
    if let Some(p) = protocols {
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(p));
    }
    tokio_tungstenite::client_async(req, tls).await
}

async fn recv(rx: &mut mpsc::Receiver<Inbound>) -> Option<Inbound> {
    tokio::time::timeout(Duration::from_secs(2), rx.recv())
        .await
        .ok()
        .flatten()
}

/// Waits until `cond` holds, for up to two seconds.
async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..200 {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

#[tokio::test]
async fn upgrade_agrees_on_sip_and_refuses_without_it() {
    let cert = Cert::new("upgrade");
    let (t, _rx, addr) = start(config(&cert)).await;

    // (a) Offered among others, `sip` is chosen and named in the answer.
    let (ws, resp) = connect(&cert, addr, Some("chat, sip")).await.unwrap();
    assert_eq!(
        resp.headers()
            .get("Sec-WebSocket-Protocol")
            .map(|v| v.as_bytes()),
        Some(&b"sip"[..])
    );
    drop(ws);

    // (b) Without `sip` (nothing offered, or something else), the upgrade is refused.
    for offer in [None, Some("chat"), Some("sips")] {
        match connect(&cert, addr, offer).await {
            Err(WsError::Http(resp)) => assert_eq!(resp.status(), 400, "{offer:?}"),
            other => panic!("{offer:?}: expected a refusal, got {other:?}"),
        }
    }
    // Counted once the refusal is written, which may be just after the client read it.
    assert!(eventually(|| t.metrics().snapshot().ws_handshake_failed == 3).await);
    assert!(eventually(|| t.conns().is_empty()).await);
}

#[tokio::test]
async fn one_websocket_message_is_one_sip_message_both_ways() {
    let cert = Cert::new("messages");
    let (t, mut rx, addr) = start(config(&cert)).await;
    let (mut ws, _) = connect(&cert, addr, Some("sip")).await.unwrap();

    // (c) A request in, as a text message.
    ws.send(Message::text(OPTIONS)).await.unwrap();
    let got = recv(&mut rx).await.expect("request delivered");
    assert_eq!(got.peer.transport, Transport::Wss);
    assert!(got.peer.flow.is_some());
    assert_eq!(got.msg.call_id(), Some("ws1"));
    assert_eq!(t.conns().len(), 1);

    // The answer out through the transports, to the peer as it came in: one text message
    // with exactly the bytes sent.
    t.send(got.peer, Bytes::from_static(OK.as_bytes()));
    let answer = tokio::time::timeout(Duration::from_secs(2), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(answer, Message::text(OK));

    // Binary messages carry SIP too.
    ws.send(Message::binary(OPTIONS.as_bytes().to_vec()))
        .await
        .unwrap();
    let again = recv(&mut rx).await.expect("binary request delivered");
    assert_eq!(again.peer, got.peer);

    // Bytes that are not UTF-8 leave as one binary message.
    let latin1 = Bytes::from_static(b"SIP/2.0 200 Gr\xfc\xdfe\r\nContent-Length: 0\r\n\r\n");
    t.send(got.peer, latin1.clone());
    let answer = tokio::time::timeout(Duration::from_secs(2), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(answer, Message::Binary(latin1));

    // A message that does not parse is dropped and counted; the connection stays.
    ws.send(Message::text("HELLO\r\n\r\n")).await.unwrap();
    ws.send(Message::text(OPTIONS)).await.unwrap();
    assert!(
        recv(&mut rx).await.is_some(),
        "the next message still arrives"
    );
    assert_eq!(t.metrics().snapshot().parse_errors, 1);

    // Pings are answered.
    ws.send(Message::Ping(Bytes::from_static(b"hi")))
        .await
        .unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(2), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(pong, Message::Pong(Bytes::from_static(b"hi")));
}

#[tokio::test]
async fn a_message_over_the_limit_is_not_delivered() {
    let cert = Cert::new("limit");
    let mut cfg = config(&cert);
    cfg.limits.max_message_bytes = 1024;
    let (t, mut rx, addr) = start(cfg).await;
    let (mut ws, _) = connect(&cert, addr, Some("sip")).await.unwrap();

    // (d) The same request padded past 1024 bytes with a header: refused at the frame header.
    let big = OPTIONS.replacen(
        "Content-Length",
        &format!("X-Pad: {}\r\nContent-Length", "a".repeat(1100)),
        1,
    );
    assert!(big.len() > 1024);
    ws.send(Message::text(big)).await.unwrap();
    assert!(recv(&mut rx).await.is_none(), "nothing reached the core");
    assert!(eventually(|| t.metrics().snapshot().framing_errors == 1).await);
    assert!(
        eventually(|| t.conns().is_empty()).await,
        "connection closed"
    );
}

#[tokio::test]
async fn connection_limits_apply_before_any_handshake() {
    let cert = Cert::new("conns");
    let mut cfg = config(&cert);
    cfg.max_connections_per_ip = 1;
    let (t, mut rx, addr) = start(cfg).await;

    // (e) One connection per IP: the second is closed at accept, so its TLS handshake fails.
    let (mut first, _) = connect(&cert, addr, Some("sip")).await.unwrap();
    assert!(connect(&cert, addr, Some("sip")).await.is_err());
    assert_eq!(t.metrics().snapshot().refused_limit, 1);
    assert_eq!(t.metrics().snapshot().tls_handshake_failed, 0);
    assert_eq!(t.conns().len(), 1);

    // The first still works.
    first.send(Message::text(OPTIONS)).await.unwrap();
    let got = recv(&mut rx).await.expect("first connection still served");

    // (f) Closing it frees the slot and forgets the flow.
    first.close(None).await.unwrap();
    assert!(eventually(|| t.conns().is_empty()).await, "flow removed");
    assert_eq!(t.metrics().snapshot().open_connections, 0);

    // Nothing reaches a closed WebSocket flow, and nothing dials a WebSocket peer.
    let before = t.metrics().snapshot().send_failed;
    t.send(got.peer, Bytes::from_static(OK.as_bytes()));
    t.send(
        Peer {
            flow: None,
            ..got.peer
        },
        Bytes::from_static(OK.as_bytes()),
    );
    assert_eq!(t.metrics().snapshot().send_failed, before + 2);
    assert!(t.conns().is_empty(), "no connection opened");

    // The slot is free again.
    let (mut again, _) = connect(&cert, addr, Some("sip")).await.unwrap();
    again.send(Message::text(OPTIONS)).await.unwrap();
    assert!(recv(&mut rx).await.is_some());
}

#[tokio::test]
async fn a_wss_listener_needs_a_certificate() {
    let cert = Cert::new("nocert");
    let mut cfg = config(&cert);
    cfg.tls_server = None;
    let (tx, _rx) = mpsc::channel::<Inbound>(1);
    assert!(Transports::start(cfg, tx).await.is_err());
}

#[tokio::test]
async fn an_idle_connection_is_closed() {
    let cert = Cert::new("idle");
    let mut cfg = config(&cert);
    cfg.idle_timeout = Duration::from_millis(300);
    let (t, _rx, addr) = start(cfg).await;
    let (mut ws, _) = connect(&cert, addr, Some("sip")).await.unwrap();
    // The gateway ends the connection with a Close frame, then the stream ends.
    let closed = tokio::time::timeout(Duration::from_secs(3), async {
        while let Some(Ok(m)) = ws.next().await {
            if m.is_close() {
                return true;
            }
        }
        false
    })
    .await
    .unwrap();
    assert!(closed, "closed with a Close frame");
    assert_eq!(t.metrics().snapshot().idle_closed, 1);
    assert!(eventually(|| t.conns().is_empty()).await);
}
