//! # sipwarden-transport: sockets in, framed messages out
//!
//! UDP (several SO_REUSEPORT sockets per address, each drained in batches), TCP, TLS and
//! WSS (SIP over secure WebSocket, RFC 7118) listeners, outbound TCP/TLS connections, and the
//! connection table that lets a response or an in-dialog request leave by the connection its
//! dialog arrived on. Bytes are framed and parsed here (on the receiving task, so parsing
//! runs in parallel with the call core); no routing or policy happens here.
//!
//! Bounded: per-IP and total connection limits are checked at accept time, before any TLS
//! handshake; idle connections are closed; a stream that breaks framing is closed; queues to
//! the core and to each connection are bounded and count what they drop.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]
#![warn(missing_docs)]

mod metrics;
mod stream;
pub mod tls;
mod udp;
mod ws;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sipwarden_sip::header::Transport;
use sipwarden_sip::{Limits, Message, Peer};
use tokio::sync::mpsc;

pub use metrics::{Metrics, Snapshot};
pub use stream::Conns;

/// Who may send at all: asked once per datagram before parsing and once per connection at
/// accept (before any TLS work). The ban table behind it lives in the call core; this is its
/// read side, so a banned source costs one lookup and nothing else.
pub trait Gate: Send + Sync + 'static {
    /// Whether packets from `ip` are let in.
    fn admit(&self, ip: std::net::IpAddr) -> bool;
}

/// A parsed message and where it came from.
#[derive(Debug)]
pub struct Inbound {
    /// The message.
    pub msg: Message,
    /// Its source.
    pub peer: Peer,
}

/// A listener that could not be set up: which one, and the system's reason (an address in
/// use or not on this host, no permission for a low port), kept as the source.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} ({transport}): {source}")]
pub struct ListenError {
    /// `udp`, `tcp`, `tls` or `wss`.
    pub transport: &'static str,
    /// The address as configured.
    pub addr: SocketAddr,
    /// The system's reason.
    #[source]
    pub source: io::Error,
}

impl ListenError {
    fn at(transport: &'static str, addr: SocketAddr) -> impl Fn(io::Error) -> Self {
        move |source| Self {
            transport,
            addr,
            source,
        }
    }
}

/// Listener and connection settings.
#[derive(Clone)]
pub struct Config {
    /// UDP addresses.
    pub udp: Vec<SocketAddr>,
    /// TCP addresses.
    pub tcp: Vec<SocketAddr>,
    /// TLS addresses.
    pub tls: Vec<SocketAddr>,
    /// SIP over secure WebSocket (RFC 7118) addresses; they use `tls_server` as TLS does.
    pub wss: Vec<SocketAddr>,
    /// Sockets per UDP address (SO_REUSEPORT).
    pub udp_sockets: usize,
    /// Connections per remote IP.
    pub max_connections_per_ip: usize,
    /// Connections in all.
    pub max_connections: usize,
    /// Idle connections are closed after this.
    pub idle_timeout: Duration,
    /// Parser limits.
    pub limits: Limits,
    /// TLS server configuration (needed when `tls` or `wss` is not empty).
    pub tls_server: Option<Arc<rustls::ServerConfig>>,
    /// TLS client configuration, for connections to TLS peers.
    pub tls_client: Option<Arc<rustls::ClientConfig>>,
    /// Who may send (the ban table's read side); everyone when absent.
    pub gate: Option<Arc<dyn Gate>>,
    /// Where to report a peer the gateway could not connect to (TCP refused or timed out, TLS
    /// handshake failed), so that what waits for it fails now instead of timing out. Full:
    /// the report is dropped and counted.
    pub unreachable: Option<mpsc::Sender<Peer>>,
}

/// Where the gateway actually listens (ports resolved when configured as 0).
#[derive(Clone, Debug, Default)]
pub struct Bound {
    /// UDP.
    pub udp: Vec<SocketAddr>,
    /// TCP.
    pub tcp: Vec<SocketAddr>,
    /// TLS.
    pub tls: Vec<SocketAddr>,
    /// WSS.
    pub wss: Vec<SocketAddr>,
}

/// The running transports: a handle to send with.
#[derive(Clone)]
pub struct Transports {
    /// The sockets UDP answers leave from, each with whether it is IPv4 (read once: asking
    /// the socket at every send cost a getsockname system call per datagram).
    udp: Arc<Vec<(Arc<tokio::net::UdpSocket>, bool)>>,
    conns: Arc<Conns>,
    metrics: Arc<Metrics>,
    bound: Bound,
}

impl Transports {
    /// Binds every listener and starts receiving; parsed messages go to `inbound`. Must be
    /// called inside a Tokio runtime.
    pub async fn start(cfg: Config, inbound: mpsc::Sender<Inbound>) -> Result<Self, ListenError> {
        let metrics = Arc::new(Metrics::default());
        let mut bound = Bound::default();
        let mut send_sockets = Vec::new();
        for addr in &cfg.udp {
            let listen_err = ListenError::at("udp", *addr);
            let sockets = udp::bind(*addr, cfg.udp_sockets.max(1)).map_err(&listen_err)?;
            let local = sockets
                .first()
                .map(|s| s.local_addr())
                .transpose()
                .map_err(listen_err)?
                .unwrap_or(*addr);
            bound.udp.push(local);
            for s in &sockets {
                udp::spawn_reader(
                    Arc::clone(s),
                    cfg.limits.clone(),
                    inbound.clone(),
                    Arc::clone(&metrics),
                    cfg.gate.clone(),
                );
            }
            if let Some(first) = sockets.into_iter().next() {
                send_sockets.push((first, local.is_ipv4()));
            }
        }
        let conns = Arc::new(Conns::new(&cfg, inbound.clone(), Arc::clone(&metrics)));
        for addr in &cfg.tcp {
            let local = conns.listen(*addr, Transport::Tcp).await;
            bound
                .tcp
                .push(local.map_err(ListenError::at("tcp", *addr))?);
        }
        for addr in &cfg.tls {
            let local = conns.listen(*addr, Transport::Tls).await;
            bound
                .tls
                .push(local.map_err(ListenError::at("tls", *addr))?);
        }
        for addr in &cfg.wss {
            let local = conns.listen(*addr, Transport::Wss).await;
            bound
                .wss
                .push(local.map_err(ListenError::at("wss", *addr))?);
        }
        Ok(Self {
            udp: Arc::new(send_sockets),
            conns,
            metrics,
            bound,
        })
    }

    /// The name to send as SNI and verify the certificate against when connecting over TLS
    /// to `addr` (a trunk named by DNS); `None` goes back to the address itself.
    pub fn set_tls_name(&self, addr: SocketAddr, name: Option<String>) {
        self.conns.set_tls_name(addr, name);
    }

    /// Where the listeners are bound.
    pub fn bound(&self) -> &Bound {
        &self.bound
    }

    /// Counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The connection table.
    pub fn conns(&self) -> &Conns {
        &self.conns
    }

    /// Sends without waiting: a UDP datagram now, or bytes queued on a connection (opened
    /// on demand for TCP/TLS peers). A WS/WSS peer gets the bytes as one WebSocket message
    /// on its flow, if that is still open; the gateway never opens a WebSocket connection.
    /// Failures are counted, never returned: SIP's retransmissions and timeouts handle loss.
    pub fn send(&self, peer: Peer, bytes: Bytes) {
        match peer.transport {
            Transport::Udp => {
                let socket = self
                    .udp
                    .iter()
                    .find(|(_, v4)| *v4 == peer.addr.is_ipv4())
                    .or_else(|| self.udp.first())
                    .map(|(s, _)| s);
                match socket {
                    Some(s) => match s.try_send_to(&bytes, peer.addr) {
                        Ok(_) => self.metrics.udp_sent(),
                        Err(_) => self.metrics.send_failed(),
                    },
                    None => self.metrics.send_failed(),
                }
            }
            _ => self.conns.send(peer, bytes),
        }
    }
}
