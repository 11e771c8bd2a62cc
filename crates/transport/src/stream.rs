//! TCP and TLS: listeners, outbound connections and the connection table. WSS listeners
//! accept here too (limits and TLS are the same); what follows the TLS handshake is in
//! [`crate::ws`].

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use sipwarden_sip::header::Transport;
use sipwarden_sip::{FlowId, Limits, Peer, StreamFramer, StreamItem};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::{Config, Inbound, Metrics, ws};

/// Messages queued per connection before sends are dropped (and counted).
const QUEUE: usize = 1024;
/// How long a TLS handshake, a WebSocket upgrade or an outbound connect may take.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

struct Flow {
    tx: mpsc::Sender<Bytes>,
    transport: Transport,
    addr: SocketAddr,
}

#[derive(Default)]
struct State {
    flows: HashMap<FlowId, Flow>,
    by_peer: HashMap<(Transport, SocketAddr), FlowId>,
    per_ip: HashMap<IpAddr, usize>,
    /// TLS server names of outbound peers named by DNS (one per trunk address).
    tls_names: HashMap<SocketAddr, String>,
}

/// The connection table: every TCP/TLS/WSS connection, inbound and outbound, by flow id and
/// by peer, with the per-IP and total limits.
pub struct Conns {
    // Crate-visible for the WebSocket connections of `ws`, which read like streams do.
    pub(crate) limits: Limits,
    max_per_ip: usize,
    max_total: usize,
    pub(crate) idle: Duration,
    tls_server: Option<Arc<rustls::ServerConfig>>,
    tls_client: Option<Arc<rustls::ClientConfig>>,
    gate: Option<Arc<dyn crate::Gate>>,
    pub(crate) inbound: mpsc::Sender<Inbound>,
    pub(crate) metrics: Arc<Metrics>,
    unreachable: Option<mpsc::Sender<Peer>>,
    state: Mutex<State>,
    next: AtomicU64,
}

impl Conns {
    pub(crate) fn new(cfg: &Config, inbound: mpsc::Sender<Inbound>, metrics: Arc<Metrics>) -> Self {
        Self {
            limits: cfg.limits.clone(),
            max_per_ip: cfg.max_connections_per_ip,
            max_total: cfg.max_connections,
            idle: cfg.idle_timeout,
            tls_server: cfg.tls_server.clone(),
            tls_client: cfg.tls_client.clone(),
            gate: cfg.gate.clone(),
            inbound,
            metrics,
            unreachable: cfg.unreachable.clone(),
            state: Mutex::new(State::default()),
            next: AtomicU64::new(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the table half-updated in a way that
        // matters more than losing it: carry on with what is there.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn set_tls_name(&self, addr: SocketAddr, name: Option<String>) {
        let mut st = self.lock();
        match name {
            Some(n) => st.tls_names.insert(addr, n),
            None => st.tls_names.remove(&addr),
        };
    }

    /// Tells the core that `peer` cannot be reached now.
    fn report_unreachable(&self, peer: Peer) {
        if let Some(tx) = &self.unreachable {
            if tx.try_send(peer).is_err() {
                self.metrics.send_failed();
            }
        }
    }

    /// Open connections.
    pub fn len(&self) -> usize {
        self.lock().flows.len()
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reserves a slot for a connection from/to `ip`; `None` if a limit is reached.
    fn admit(
        &self,
        ip: IpAddr,
        transport: Transport,
        addr: SocketAddr,
    ) -> Option<(FlowId, mpsc::Receiver<Bytes>)> {
        let mut st = self.lock();
        let n = st.per_ip.get(&ip).copied().unwrap_or(0);
        if n >= self.max_per_ip || st.flows.len() >= self.max_total {
            return None;
        }
        st.per_ip.insert(ip, n + 1);
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(QUEUE);
        st.flows.insert(
            id,
            Flow {
                tx,
                transport,
                addr,
            },
        );
        st.by_peer.insert((transport, addr), id);
        drop(st);
        self.metrics.conn_opened();
        Some((id, rx))
    }

    /// Forgets a connection and frees its slot; a second call for the same id does nothing.
    pub(crate) fn release(&self, id: FlowId) {
        let mut st = self.lock();
        if let Some(f) = st.flows.remove(&id) {
            if st.by_peer.get(&(f.transport, f.addr)) == Some(&id) {
                st.by_peer.remove(&(f.transport, f.addr));
            }
            let ip = f.addr.ip();
            match st.per_ip.get(&ip).copied() {
                Some(n) if n > 1 => {
                    st.per_ip.insert(ip, n - 1);
                }
                _ => {
                    st.per_ip.remove(&ip);
                }
            }
            drop(st);
            self.metrics.conn_closed();
        }
    }

    /// Binds a TCP, TLS or WSS listener and starts accepting.
    pub(crate) async fn listen(
        self: &Arc<Self>,
        addr: SocketAddr,
        transport: Transport,
    ) -> io::Result<SocketAddr> {
        if matches!(transport, Transport::Tls | Transport::Wss) && self.tls_server.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "TLS listener without a certificate",
            ));
        }
        let listener = TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let conns = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                let Ok((stream, from)) = listener.accept().await else {
                    // EMFILE and friends: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                // Bans and limits apply before any TLS work is done for the peer.
                if conns.gate.as_ref().is_some_and(|g| !g.admit(from.ip())) {
                    conns.metrics.banned_refused();
                    drop(stream);
                    continue;
                }
                let Some((id, rx)) = conns.admit(from.ip(), transport, from) else {
                    conns.metrics.refused_limit();
                    drop(stream);
                    continue;
                };
                conns.metrics.accepted();
                let _ = stream.set_nodelay(true);
                let c = Arc::clone(&conns);
                tokio::spawn(async move {
                    c.serve_inbound(stream, from, transport, id, rx).await;
                    c.release(id);
                });
            }
        });
        Ok(bound)
    }

    async fn serve_inbound(
        self: &Arc<Self>,
        stream: TcpStream,
        from: SocketAddr,
        transport: Transport,
        id: FlowId,
        rx: mpsc::Receiver<Bytes>,
    ) {
        match transport {
            Transport::Tls => {
                if let Some(tls) = self.accept_tls(stream).await {
                    self.run(tls, from, transport, id, rx).await;
                }
            }
            Transport::Wss => {
                if let Some(tls) = self.accept_tls(stream).await {
                    ws::serve(self, tls, from, id, rx).await;
                }
            }
            _ => self.run(stream, from, transport, id, rx).await,
        }
    }

    /// The server side of a TLS handshake, bounded in time; failures are counted.
    async fn accept_tls(
        &self,
        stream: TcpStream,
    ) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
        let cfg = self.tls_server.clone()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => Some(tls),
            _ => {
                self.metrics.tls_handshake_failed();
                None
            }
        }
    }

    /// Queues bytes for a peer: on its flow if that is still open, else on any connection to
    /// the same peer, else on a new outbound connection. A WebSocket peer (WS or WSS) is
    /// reached on its own flow only, as one WebSocket message; without it the bytes are
    /// dropped and counted.
    pub(crate) fn send(self: &Arc<Self>, peer: Peer, bytes: Bytes) {
        let websocket = is_websocket(peer.transport);
        let tx = {
            let st = self.lock();
            if websocket {
                // The gateway never opens a WebSocket connection: a WebSocket phone (a
                // browser, typically behind NAT) is reachable only on the connection it
                // opened (RFC 7118 §5), not at its address. Either WS transport names a
                // WebSocket flow: phones put `transport=ws` in their Contact even over WSS.
                peer.flow
                    .and_then(|f| st.flows.get(&f))
                    .filter(|f| is_websocket(f.transport))
                    .map(|f| f.tx.clone())
            } else {
                peer.flow
                    .and_then(|f| st.flows.get(&f))
                    .or_else(|| {
                        st.by_peer
                            .get(&(peer.transport, peer.addr))
                            .and_then(|f| st.flows.get(f))
                    })
                    .map(|f| f.tx.clone())
            }
        };
        let tx = match tx {
            Some(tx) => tx,
            None if websocket => {
                self.metrics.send_failed();
                return;
            }
            None => match self.connect(peer) {
                Some(tx) => tx,
                None => {
                    self.metrics.send_failed();
                    self.report_unreachable(peer);
                    return;
                }
            },
        };
        if tx.try_send(bytes).is_ok() {
            self.metrics.stream_sent();
        } else {
            self.metrics.send_failed();
        }
    }

    /// Opens an outbound connection; bytes queue on it until it is up.
    fn connect(self: &Arc<Self>, peer: Peer) -> Option<mpsc::Sender<Bytes>> {
        let (id, rx) = self.admit(peer.addr.ip(), peer.transport, peer.addr)?;
        let tx = self.lock().flows.get(&id).map(|f| f.tx.clone())?;
        let c = Arc::clone(self);
        // A trunk named by DNS is verified against its name (and sends it as SNI); anything
        // else against its address.
        let name = self.lock().tls_names.get(&peer.addr).cloned();
        tokio::spawn(async move {
            let connected =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, TcpStream::connect(peer.addr)).await;
            if let Ok(Ok(stream)) = connected {
                let _ = stream.set_nodelay(true);
                match peer.transport {
                    Transport::Tls => match c.tls_client.clone() {
                        Some(cfg) => {
                            let server_name = name
                                .and_then(|n| rustls::pki_types::ServerName::try_from(n).ok())
                                .unwrap_or_else(|| {
                                    rustls::pki_types::ServerName::IpAddress(peer.addr.ip().into())
                                });
                            let connector = tokio_rustls::TlsConnector::from(cfg);
                            match tokio::time::timeout(
                                HANDSHAKE_TIMEOUT,
                                connector.connect(server_name, stream),
                            )
                            .await
                            {
                                Ok(Ok(tls)) => c.run(tls, peer.addr, peer.transport, id, rx).await,
                                _ => {
                                    c.metrics.tls_handshake_failed();
                                    c.report_unreachable(peer);
                                }
                            }
                        }
                        None => {
                            c.metrics.tls_handshake_failed();
                            c.report_unreachable(peer);
                        }
                    },
                    _ => c.run(stream, peer.addr, peer.transport, id, rx).await,
                }
            } else {
                c.metrics.send_failed();
                c.report_unreachable(peer);
            }
            c.release(id);
        });
        Some(tx)
    }

    /// Runs one connection: frames what it reads and hands messages to the core; writes what
    /// is queued for it; answers keep-alive pings; closes on idleness or a framing error.
    async fn run<S>(
        self: &Arc<Self>,
        stream: S,
        addr: SocketAddr,
        transport: Transport,
        id: FlowId,
        mut rx: mpsc::Receiver<Bytes>,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut rd, mut wr) = tokio::io::split(stream);
        let pong_tx = self.lock().flows.get(&id).map(|f| f.tx.clone());
        let writer = tokio::spawn(async move {
            while let Some(b) = rx.recv().await {
                if wr.write_all(&b).await.is_err() {
                    break;
                }
            }
            let _ = wr.shutdown().await;
        });
        let mut framer = StreamFramer::new(self.limits.clone());
        let mut buf = vec![0u8; 16 * 1024];
        let peer = Peer {
            transport,
            addr,
            flow: Some(id),
        };
        loop {
            let n = match tokio::time::timeout(self.idle, rd.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => n,
                Err(_) => {
                    self.metrics.idle_closed();
                    break;
                }
            };
            framer.push(buf.get(..n).unwrap_or(&[]));
            while let Some(item) = framer.next_item() {
                match item {
                    Ok(StreamItem::Message(msg)) => {
                        self.metrics.stream_received();
                        if self.inbound.try_send(Inbound { msg, peer }).is_err() {
                            self.metrics.inbound_dropped();
                        }
                    }
                    Ok(StreamItem::Ping) => {
                        self.metrics.keepalive();
                        if let Some(tx) = &pong_tx {
                            let _ = tx.try_send(Bytes::from_static(b"\r\n"));
                        }
                    }
                    Err(_) => self.metrics.framing_error(),
                }
            }
            if framer.is_failed() {
                break;
            }
        }
        // Dropping our sender lets the writer finish what is queued and shut the socket.
        drop(pong_tx);
        self.release(id);
        let _ = writer.await;
    }
}

/// Whether `transport` is SIP over WebSocket, plain or secure.
fn is_websocket(transport: Transport) -> bool {
    matches!(transport, Transport::Ws | Transport::Wss)
}
