//! Transport counters, read by the metrics endpoint.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters of the transport layer. Monotonic unless named as a gauge.
#[derive(Debug, Default)]
pub struct Metrics {
    udp_received: AtomicU64,
    udp_sent: AtomicU64,
    stream_received: AtomicU64,
    stream_sent: AtomicU64,
    parse_errors: AtomicU64,
    framing_errors: AtomicU64,
    send_failed: AtomicU64,
    inbound_dropped: AtomicU64,
    accepted: AtomicU64,
    refused_limit: AtomicU64,
    tls_handshake_failed: AtomicU64,
    ws_handshake_failed: AtomicU64,
    idle_closed: AtomicU64,
    keepalives: AtomicU64,
    open_connections: AtomicU64,
    banned_dropped: AtomicU64,
    banned_refused: AtomicU64,
}

/// A snapshot of [`Metrics`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Datagrams received.
    pub udp_received: u64,
    /// Datagrams sent.
    pub udp_sent: u64,
    /// Messages received on connections.
    pub stream_received: u64,
    /// Messages queued on connections.
    pub stream_sent: u64,
    /// Messages that did not parse (dropped).
    pub parse_errors: u64,
    /// Connections closed for a framing error.
    pub framing_errors: u64,
    /// Sends that failed.
    pub send_failed: u64,
    /// Parsed messages dropped because the core's queue was full.
    pub inbound_dropped: u64,
    /// Connections accepted.
    pub accepted: u64,
    /// Connections refused by the per-IP or total limit.
    pub refused_limit: u64,
    /// TLS handshakes that failed.
    pub tls_handshake_failed: u64,
    /// WebSocket upgrades refused (no `sip` subprotocol) or failed, after TLS succeeded.
    pub ws_handshake_failed: u64,
    /// Connections closed for idleness.
    pub idle_closed: u64,
    /// Keep-alive pings answered: CRLF on TCP/TLS, ping frames on WebSocket.
    pub keepalives: u64,
    /// Open connections (gauge).
    pub open_connections: u64,
    /// Datagrams from banned addresses dropped before parsing.
    pub banned_dropped: u64,
    /// Connections from banned addresses refused at accept.
    pub banned_refused: u64,
}

impl Metrics {
    pub(crate) fn udp_received(&self) {
        self.udp_received.fetch_add(1, Relaxed);
    }
    pub(crate) fn udp_sent(&self) {
        self.udp_sent.fetch_add(1, Relaxed);
    }
    pub(crate) fn stream_received(&self) {
        self.stream_received.fetch_add(1, Relaxed);
    }
    pub(crate) fn stream_sent(&self) {
        self.stream_sent.fetch_add(1, Relaxed);
    }
    pub(crate) fn parse_error(&self) {
        self.parse_errors.fetch_add(1, Relaxed);
    }
    pub(crate) fn framing_error(&self) {
        self.framing_errors.fetch_add(1, Relaxed);
    }
    pub(crate) fn send_failed(&self) {
        self.send_failed.fetch_add(1, Relaxed);
    }
    pub(crate) fn inbound_dropped(&self) {
        self.inbound_dropped.fetch_add(1, Relaxed);
    }
    pub(crate) fn accepted(&self) {
        self.accepted.fetch_add(1, Relaxed);
    }
    pub(crate) fn banned_dropped(&self) {
        self.banned_dropped.fetch_add(1, Relaxed);
    }
    pub(crate) fn banned_refused(&self) {
        self.banned_refused.fetch_add(1, Relaxed);
    }
    pub(crate) fn refused_limit(&self) {
        self.refused_limit.fetch_add(1, Relaxed);
    }
    pub(crate) fn tls_handshake_failed(&self) {
        self.tls_handshake_failed.fetch_add(1, Relaxed);
    }
    pub(crate) fn ws_handshake_failed(&self) {
        self.ws_handshake_failed.fetch_add(1, Relaxed);
    }
    pub(crate) fn idle_closed(&self) {
        self.idle_closed.fetch_add(1, Relaxed);
    }
    pub(crate) fn keepalive(&self) {
        self.keepalives.fetch_add(1, Relaxed);
    }
    pub(crate) fn conn_opened(&self) {
        self.open_connections.fetch_add(1, Relaxed);
    }
    pub(crate) fn conn_closed(&self) {
        self.open_connections.fetch_sub(1, Relaxed);
    }

    /// Current values.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            udp_received: self.udp_received.load(Relaxed),
            udp_sent: self.udp_sent.load(Relaxed),
            stream_received: self.stream_received.load(Relaxed),
            stream_sent: self.stream_sent.load(Relaxed),
            parse_errors: self.parse_errors.load(Relaxed),
            framing_errors: self.framing_errors.load(Relaxed),
            send_failed: self.send_failed.load(Relaxed),
            inbound_dropped: self.inbound_dropped.load(Relaxed),
            accepted: self.accepted.load(Relaxed),
            refused_limit: self.refused_limit.load(Relaxed),
            tls_handshake_failed: self.tls_handshake_failed.load(Relaxed),
            ws_handshake_failed: self.ws_handshake_failed.load(Relaxed),
            idle_closed: self.idle_closed.load(Relaxed),
            keepalives: self.keepalives.load(Relaxed),
            open_connections: self.open_connections.load(Relaxed),
            banned_dropped: self.banned_dropped.load(Relaxed),
            banned_refused: self.banned_refused.load(Relaxed),
        }
    }
}
