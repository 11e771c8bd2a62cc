//! The admin HTTP API (bearer token) and the Prometheus `/metrics` endpoint, on loopback by
//! default.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use sipwarden_b2bua::Stats;
use sipwarden_transport::Transports;
use tokio::sync::watch;

#[derive(Clone)]
struct App {
    token: Arc<String>,
    stats: watch::Receiver<Stats>,
    transports: Transports,
}

/// Constant-time comparison, so the token cannot be guessed byte by byte from timing.
fn token_ok(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(given) = given.strip_prefix("Bearer ") else {
        return false;
    };
    let (a, b) = (given.as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn metrics(State(app): State<App>) -> impl IntoResponse {
    let s = *app.stats.borrow();
    let t = app.transports.metrics().snapshot();
    let mut out = String::with_capacity(2048);
    let mut gauge = |name: &str, help: &str, kind: &str, v: u64| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
        ));
    };
    gauge(
        "sipwarden_calls",
        "Calls in progress.",
        "gauge",
        s.calls as u64,
    );
    gauge(
        "sipwarden_dialogs",
        "Dialogs held (two per call).",
        "gauge",
        s.dialogs as u64,
    );
    gauge(
        "sipwarden_transactions_client",
        "Client transactions.",
        "gauge",
        s.client_transactions as u64,
    );
    gauge(
        "sipwarden_transactions_server",
        "Server transactions.",
        "gauge",
        s.server_transactions as u64,
    );
    gauge(
        "sipwarden_calls_started_total",
        "Calls accepted.",
        "counter",
        s.calls_started,
    );
    gauge(
        "sipwarden_calls_answered_total",
        "Calls answered.",
        "counter",
        s.calls_answered,
    );
    gauge(
        "sipwarden_registrations",
        "Registered contacts in the location table.",
        "gauge",
        s.registrations as u64,
    );
    gauge(
        "sipwarden_registrations_accepted_total",
        "REGISTER requests accepted.",
        "counter",
        s.registrations_accepted,
    );
    gauge(
        "sipwarden_registrations_refused_total",
        "REGISTER requests refused (403, 423, 400).",
        "counter",
        s.registrations_refused,
    );
    gauge(
        "sipwarden_auth_failures_total",
        "Failed digest authentications of phones.",
        "counter",
        s.auth_failures,
    );
    gauge(
        "sipwarden_requests_rejected_total",
        "Requests refused statelessly.",
        "counter",
        s.rejected,
    );
    gauge(
        "sipwarden_udp_received_total",
        "Datagrams received.",
        "counter",
        t.udp_received,
    );
    gauge(
        "sipwarden_udp_sent_total",
        "Datagrams sent.",
        "counter",
        t.udp_sent,
    );
    gauge(
        "sipwarden_stream_received_total",
        "Messages received on connections.",
        "counter",
        t.stream_received,
    );
    gauge(
        "sipwarden_stream_sent_total",
        "Messages queued on connections.",
        "counter",
        t.stream_sent,
    );
    gauge(
        "sipwarden_parse_errors_total",
        "Messages that did not parse.",
        "counter",
        t.parse_errors,
    );
    gauge(
        "sipwarden_framing_errors_total",
        "Connections closed for a framing error.",
        "counter",
        t.framing_errors,
    );
    gauge(
        "sipwarden_send_failed_total",
        "Sends that failed.",
        "counter",
        t.send_failed,
    );
    gauge(
        "sipwarden_inbound_dropped_total",
        "Messages dropped because the core was busy.",
        "counter",
        t.inbound_dropped,
    );
    gauge(
        "sipwarden_connections_accepted_total",
        "Connections accepted.",
        "counter",
        t.accepted,
    );
    gauge(
        "sipwarden_connections_refused_total",
        "Connections refused by a limit.",
        "counter",
        t.refused_limit,
    );
    gauge(
        "sipwarden_tls_handshake_failed_total",
        "TLS handshakes that failed.",
        "counter",
        t.tls_handshake_failed,
    );
    gauge(
        "sipwarden_ws_handshake_failed_total",
        "WebSocket upgrades refused (no sip subprotocol) or failed.",
        "counter",
        t.ws_handshake_failed,
    );
    gauge(
        "sipwarden_connections_idle_closed_total",
        "Connections closed for idleness.",
        "counter",
        t.idle_closed,
    );
    gauge(
        "sipwarden_keepalives_total",
        "Keep-alive pings answered (CRLF, WebSocket ping).",
        "counter",
        t.keepalives,
    );
    gauge(
        "sipwarden_connections",
        "Open connections.",
        "gauge",
        t.open_connections,
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

async fn stats(State(app): State<App>, headers: HeaderMap) -> impl IntoResponse {
    if !token_ok(&headers, &app.token) {
        return (StatusCode::UNAUTHORIZED, "missing or wrong bearer token\n").into_response();
    }
    let s = *app.stats.borrow();
    let body = serde_json::json!({
        "calls": s.calls,
        "dialogs": s.dialogs,
        "client_transactions": s.client_transactions,
        "server_transactions": s.server_transactions,
        "calls_started": s.calls_started,
        "calls_answered": s.calls_answered,
        "rejected": s.rejected,
        "transactions_refused": s.transactions_refused,
        "registrations": s.registrations,
        "registrations_accepted": s.registrations_accepted,
        "registrations_refused": s.registrations_refused,
        "auth_failures": s.auth_failures,
        "connections": app.transports.conns().len(),
    });
    axum::Json(body).into_response()
}

/// Binds the admin listener and serves it in the background; returns the bound address.
pub(crate) async fn serve(
    addr: SocketAddr,
    token: Arc<String>,
    stats_rx: watch::Receiver<Stats>,
    transports: Transports,
) -> std::io::Result<SocketAddr> {
    let app = App {
        token,
        stats: stats_rx,
        transports,
    };
    let router = Router::new()
        .route("/metrics", get(metrics))
        .route("/api/stats", get(stats))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(bound)
}
