//! The admin HTTP API (bearer token) and the Prometheus `/metrics` endpoint, on loopback by
//! default.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{delete, get};
use sipwarden_b2bua::Stats;
use sipwarden_sip::Secret;
use sipwarden_transport::Transports;
use tokio::sync::{mpsc, oneshot, watch};

mod records;

use crate::bans::BanView;
use crate::core_task::Control;

#[derive(Clone)]
struct App {
    token: Arc<Secret<String>>,
    stats: watch::Receiver<Stats>,
    transports: Transports,
    control: mpsc::Sender<Control>,
    bans: Arc<BanView>,
    verdicts: crate::core_task::VerdictTable,
    writer: Arc<crate::writer::WriterStats>,
    dns: Arc<crate::resolver::DnsStats>,
    trunks: watch::Receiver<Vec<sipwarden_b2bua::TrunkStatus>>,
    media: Option<crate::media::Media>,
    engine: Option<crate::engine::Engine>,
    /// The database file (call records are read beside the writer).
    db: std::path::PathBuf,
}

/// What the admin API reads from (and sends to) the rest of the gateway.
pub(crate) struct Shared {
    pub(crate) control: mpsc::Sender<Control>,
    pub(crate) bans: Arc<BanView>,
    pub(crate) verdicts: crate::core_task::VerdictTable,
    pub(crate) writer: Arc<crate::writer::WriterStats>,
    pub(crate) dns: Arc<crate::resolver::DnsStats>,
    pub(crate) trunks: watch::Receiver<Vec<sipwarden_b2bua::TrunkStatus>>,
    pub(crate) media: Option<crate::media::Media>,
    pub(crate) engine: Option<crate::engine::Engine>,
    pub(crate) db: std::path::PathBuf,
}

/// Constant-time comparison, so the token cannot be guessed byte by byte from timing.
fn token_ok(headers: &HeaderMap, token: &Secret<String>) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(given) = given.strip_prefix("Bearer ") else {
        return false;
    };
    let (a, b) = (given.as_bytes(), token.expose().as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The relay's totals.
fn media_metrics(m: &crate::media::Media) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let t = m.relay.totals();
    let mut out = String::new();
    let mut one = |name: &str, help: &str, kind: &str, v: u64| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
        ));
    };
    one(
        "sipwarden_media_packets_from_a_total",
        "RTP/RTCP packets relayed from the calling leg to the called one.",
        "counter",
        t.from_a.load(Relaxed),
    );
    one(
        "sipwarden_media_packets_from_b_total",
        "RTP/RTCP packets relayed from the called leg to the calling one.",
        "counter",
        t.from_b.load(Relaxed),
    );
    one(
        "sipwarden_media_bytes_total",
        "Bytes relayed.",
        "counter",
        t.bytes.load(Relaxed),
    );
    one(
        "sipwarden_media_dropped_source_total",
        "Packets dropped because they came from an address the stream did not latch (RTP bleed, injection).",
        "counter",
        t.dropped_source.load(Relaxed),
    );
    one(
        "sipwarden_media_dropped_no_target_total",
        "Packets dropped because the other side's address was not known (or it is on hold).",
        "counter",
        t.dropped_no_target.load(Relaxed),
    );
    one(
        "sipwarden_media_sockets",
        "Relay sockets open (two or four per stream).",
        "gauge",
        t.sockets.load(Relaxed),
    );
    one(
        "sipwarden_media_port_pairs_in_use",
        "Relay port pairs (RTP and RTCP) held by calls.",
        "gauge",
        m.ports.in_use.load(Relaxed),
    );
    one(
        "sipwarden_media_port_pairs",
        "Relay port pairs in the configured range (port_min to port_max).",
        "gauge",
        m.ports.capacity.load(Relaxed),
    );
    one(
        "sipwarden_media_ports_exhausted_total",
        "Calls refused with 503 because every relay port pair was in use.",
        "counter",
        m.ports.exhausted.load(Relaxed),
    );
    one(
        "sipwarden_media_open_failures_total",
        "Streams the relay could not open (their calls were ended).",
        "counter",
        m.open_failures.load(Relaxed),
    );
    out
}

/// rtpengine's figures, as the engine task counts them.
fn engine_metrics(s: &crate::engine::EngineStats) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let mut out = String::new();
    for (name, help, kind, v) in [
        (
            "sipwarden_media_engine_anchored_total",
            "Offers and answers rtpengine anchored.",
            "counter",
            &s.anchored,
        ),
        (
            "sipwarden_media_engine_failures_total",
            "Offers and answers rtpengine refused or did not answer in time (their calls were ended).",
            "counter",
            &s.failures,
        ),
        (
            "sipwarden_media_engine_queue_dropped_total",
            "Messages or rtpengine work dropped because the engine task's queue or table was full.",
            "counter",
            &s.queue_dropped,
        ),
        (
            "sipwarden_media_engine_bodies",
            "SDP bodies the engine task remembers (for retransmissions) or waits to send.",
            "gauge",
            &s.bodies,
        ),
        (
            "sipwarden_media_engine_deleted_total",
            "Calls deleted in rtpengine when they ended.",
            "counter",
            &s.deleted,
        ),
        (
            "sipwarden_media_engine_packets_total",
            "Packets rtpengine counted for the calls it deleted.",
            "counter",
            &s.packets,
        ),
    ] {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}\n",
            v.load(Relaxed)
        ));
    }
    out
}

/// Per trunk address: whether routing uses it, and qualify's round-trip time. Label values
/// are trunk names (checked characters) and addresses: nothing to escape.
fn trunk_metrics(trunks: &[sipwarden_b2bua::TrunkStatus]) -> String {
    let mut up = String::from(
        "# HELP sipwarden_trunk_address_up Whether routing uses the trunk address (not marked down by failed calls or qualify).\n# TYPE sipwarden_trunk_address_up gauge\n",
    );
    let mut rtt = String::from(
        "# HELP sipwarden_trunk_address_rtt_ms The last qualify OPTIONS round-trip time.\n# TYPE sipwarden_trunk_address_rtt_ms gauge\n",
    );
    let mut reg = String::from(
        "# HELP sipwarden_trunk_registered Whether the gateway is registered to the carrier (trunks with [trunk.registration]).\n# TYPE sipwarden_trunk_registered gauge\n",
    );
    for t in trunks {
        if let Some((state, _)) = &t.registration {
            reg.push_str(&format!(
                "sipwarden_trunk_registered{{trunk=\"{}\"}} {}\n",
                t.name,
                u8::from(*state == sipwarden_b2bua::RegState::Registered)
            ));
        }
        for a in &t.addresses {
            up.push_str(&format!(
                "sipwarden_trunk_address_up{{trunk=\"{}\",address=\"{}\"}} {}\n",
                t.name,
                a.addr,
                u8::from(a.up)
            ));
            if let Some(ms) = a.rtt_ms {
                rtt.push_str(&format!(
                    "sipwarden_trunk_address_rtt_ms{{trunk=\"{}\",address=\"{}\"}} {ms}\n",
                    t.name, a.addr
                ));
            }
        }
    }
    up + &rtt + &reg
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
        "REGISTER requests refused (403, 423, 400, 503).",
        "counter",
        s.registrations_refused,
    );
    gauge(
        "sipwarden_registrations_table_full_total",
        "REGISTER requests refused with 503 because the location table was full (registrar.max_bindings).",
        "counter",
        s.registrations_table_full,
    );
    gauge(
        "sipwarden_auth_failures_total",
        "Failed digest authentications of phones.",
        "counter",
        s.auth_failures,
    );
    gauge(
        "sipwarden_failovers_total",
        "Outbound calls moved on to another trunk address (408, 5xx, timeout, no response).",
        "counter",
        s.failovers,
    );
    gauge(
        "sipwarden_failovers_no_response_total",
        "Of those, moves because the address sent no response within failover_timeout.",
        "counter",
        s.failovers_no_response,
    );
    gauge(
        "sipwarden_trunk_addresses_marked_down_total",
        "Trunk addresses marked down by failed calls (failures_to_down, or a 503's Retry-After).",
        "counter",
        s.trunk_addresses_marked_down,
    );
    gauge(
        "sipwarden_trunk_health_entries",
        "Trunk addresses with a health record (bounded by dns.max_addresses per trunk).",
        "gauge",
        s.trunk_health_entries as u64,
    );
    gauge(
        "sipwarden_qualify_probes",
        "Trunk addresses qualified with OPTIONS (bounded by the trunks' addresses).",
        "gauge",
        s.qualify_probes as u64,
    );
    gauge(
        "sipwarden_qualify_options_sent_total",
        "Qualify OPTIONS sent to trunk addresses.",
        "counter",
        s.qualify_sent,
    );
    gauge(
        "sipwarden_qualify_changes_total",
        "Qualify verdicts that changed (first verdicts, up to down, down to up); each is a TrunkUp or TrunkDown event.",
        "counter",
        s.qualify_changes,
    );
    gauge(
        "sipwarden_carrier_registers_sent_total",
        "REGISTERs the gateway sent to carriers ([trunk.registration]).",
        "counter",
        s.carrier_registers_sent,
    );
    gauge(
        "sipwarden_carrier_registration_failures_total",
        "Registrations to carriers refused or unanswered.",
        "counter",
        s.carrier_registration_failures,
    );
    gauge(
        "sipwarden_abandoned_attempts",
        "INVITEs left behind by a move to another address, waiting to end.",
        "gauge",
        s.abandoned_attempts as u64,
    );
    {
        use std::sync::atomic::Ordering::Relaxed;
        gauge(
            "sipwarden_dns_lookups_ok_total",
            "RFC 3263 look-ups of trunks named by DNS that gave addresses.",
            "counter",
            app.dns.ok.load(Relaxed),
        );
        gauge(
            "sipwarden_dns_lookups_failed_total",
            "Look-ups that failed (the last good answer stood while dns.keep_stale allowed).",
            "counter",
            app.dns.failed.load(Relaxed),
        );
        gauge(
            "sipwarden_dns_trunks_lost_total",
            "Times a trunk named by DNS was left with no usable address.",
            "counter",
            app.dns.lost.load(Relaxed),
        );
    }
    let d = s.defence;
    for (name, help, kind, v) in [
        (
            "sipwarden_bans_active",
            "Bans in force.",
            "gauge",
            d.bans_active as u64,
        ),
        (
            "sipwarden_ban_table_size",
            "Addresses in the ban table (banned or remembered).",
            "gauge",
            d.ban_table_size as u64,
        ),
        (
            "sipwarden_banned_dropped_total",
            "Datagrams from banned addresses dropped before parsing.",
            "counter",
            t.banned_dropped + d.banned_dropped,
        ),
        (
            "sipwarden_banned_refused_total",
            "Connections from banned addresses refused at accept.",
            "counter",
            t.banned_refused,
        ),
        (
            "sipwarden_bans_flood_total",
            "Sources banned by the flood limits.",
            "counter",
            d.bans_flood,
        ),
        (
            "sipwarden_bans_scanner_total",
            "Sources banned as scanners.",
            "counter",
            d.bans_scanner,
        ),
        (
            "sipwarden_bans_failures_total",
            "Sources banned for failed authentication or malformed requests.",
            "counter",
            d.bans_failures,
        ),
        (
            "sipwarden_bans_manual_total",
            "Sources banned by an operator.",
            "counter",
            d.bans_manual,
        ),
        (
            "sipwarden_acl_denied_total",
            "Requests dropped or refused by an allow/deny list.",
            "counter",
            d.acl_denied,
        ),
        (
            "sipwarden_account_locked_total",
            "Right passwords refused: the account was locked against the address.",
            "counter",
            d.account_locked,
        ),
        (
            "sipwarden_global_limited_total",
            "New calls refused by the global limit (503).",
            "counter",
            d.global_limited,
        ),
    ] {
        gauge(name, help, kind, v);
    }
    let w = &app.writer;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    for (name, help, kind, v) in [
        (
            "sipwarden_writer_queued",
            "Batches queued for the writer and not yet written.",
            "gauge",
            load(&w.queued),
        ),
        (
            "sipwarden_writer_batches_total",
            "Batches written (bindings, bans, logs, call events).",
            "counter",
            load(&w.batches),
        ),
        (
            "sipwarden_writer_commits_total",
            "Group commits of the writer.",
            "counter",
            load(&w.commits),
        ),
        (
            "sipwarden_writer_wal_checkpoints_total",
            "Checkpoints of the store's write-ahead log, run off the commit path.",
            "counter",
            load(&w.checkpoints),
        ),
        (
            "sipwarden_writer_queue_full_total",
            "Times a batch found the writer's queue full and waited in the backlog.",
            "counter",
            load(&w.queue_full),
        ),
        (
            "sipwarden_writer_events_written_total",
            "Security and call events written by the writer.",
            "counter",
            load(&w.events_written),
        ),
        (
            "sipwarden_writer_events_dropped_total",
            "Security and call events dropped because the writer's backlog was full.",
            "counter",
            load(&w.events_dropped),
        ),
        (
            "sipwarden_cdr_rows_written_total",
            "Call-record rows stored (a call's row is stored when it starts, is answered and ends).",
            "counter",
            load(&w.cdr_rows),
        ),
        (
            "sipwarden_cdrs_running",
            "Records of running calls held by the writer (bounded by twice calls.max_calls).",
            "gauge",
            load(&w.cdrs_open),
        ),
        (
            "sipwarden_cdrs_overflow_total",
            "Call records started while that table was full (stored as running, never finished).",
            "counter",
            load(&w.cdrs_overflow),
        ),
        (
            "sipwarden_cdrs_purged_total",
            "Finished call records deleted by storage.cdr_retention_days.",
            "counter",
            load(&w.cdrs_purged),
        ),
        (
            "sipwarden_writer_rows_refused_total",
            "Batches whose binding and ban rows were refused (backlog full; their answers were not sent).",
            "counter",
            load(&w.rows_refused),
        ),
    ] {
        gauge(name, help, kind, v);
    }
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
    core_tables(&mut out, &s);
    // One series per (stage, verdict, reason): every label value is a code of the program's
    // own (stage names and reason codes), so the set is bounded whatever the traffic.
    out.push_str(
        "# HELP sipwarden_verdicts_total Verdicts of the message path by stage, verdict and reason.\n\
         # TYPE sipwarden_verdicts_total counter\n",
    );
    let counts = match app.verdicts.lock() {
        Ok(rows) => rows.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    for (stage, verdict, reason, n) in counts.verdicts {
        out.push_str(&format!(
            "sipwarden_verdicts_total{{stage=\"{stage}\",verdict=\"{verdict}\",reason=\"{reason}\"}} {n}\n"
        ));
    }
    for g in &counts.policy_gauges {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n",
            name = g.name,
            help = g.help,
            kind = if g.counter { "counter" } else { "gauge" },
            v = g.value
        ));
    }
    // Policy and outcome are the program's own names: bounded whatever the configuration.
    out.push_str(
        "# HELP sipwarden_policy_decisions_total Call-policy decisions by policy and outcome \
         (refused, would_refuse in monitor mode, warning, ended, replaced, flagged, disabled).\n\
         # TYPE sipwarden_policy_decisions_total counter\n",
    );
    for (policy, outcome, n) in counts.decisions {
        out.push_str(&format!(
            "sipwarden_policy_decisions_total{{policy=\"{policy}\",outcome=\"{outcome}\"}} {n}\n"
        ));
    }
    // Whose fault: what the gateway should always manage and did not, by component.
    out.push_str(
        "# HELP sipwarden_internal_errors_total Internal errors by component: messages the core \
         could not build (build) or the transaction layer refused (send), failed store writes \
         (store) and log writes (log).\n# TYPE sipwarden_internal_errors_total counter\n",
    );
    for (component, v) in [
        ("build", s.internal_build_errors),
        ("send", s.internal_send_errors),
        ("store", load(&w.store_errors)),
        ("log", load(&w.log_errors)),
    ] {
        out.push_str(&format!(
            "sipwarden_internal_errors_total{{component=\"{component}\"}} {v}\n"
        ));
    }
    out.push_str(&trunk_metrics(&app.trunks.borrow()));
    if let Some(m) = &app.media {
        out.push_str(&media_metrics(m));
    }
    if let Some(e) = &app.engine {
        out.push_str(&engine_metrics(&e.stats));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

/// The call core's bounded tables (DESIGN §7: every limit has a metric), one series per
/// table, and the events its queues dropped.
fn core_tables(out: &mut String, s: &Stats) {
    let tables = s.tables();
    out.push_str(
        "# HELP sipwarden_table_entries Entries held in each bounded table of the call core.\n\
         # TYPE sipwarden_table_entries gauge\n",
    );
    for t in &tables {
        if let Some(n) = t.entries {
            out.push_str(&format!(
                "sipwarden_table_entries{{table=\"{}\"}} {n}\n",
                t.table
            ));
        }
    }
    out.push_str(
        "# HELP sipwarden_table_evictions_total Live entries a full table gave up for a new one \
         (the least recently used; in the ban table the least offending), or to meet a bound \
         lowered on reload.\n# TYPE sipwarden_table_evictions_total counter\n",
    );
    for t in &tables {
        out.push_str(&format!(
            "sipwarden_table_evictions_total{{table=\"{}\"}} {}\n",
            t.table, t.evicted
        ));
    }
    for (name, what, v) in [
        ("security", "Security", s.security_events_dropped),
        ("call", "Call", s.call_events_dropped),
    ] {
        out.push_str(&format!(
            "# HELP sipwarden_{name}_events_dropped_total {what} events dropped because the \
             core's queue (storage.event_queue) was full.\n\
             # TYPE sipwarden_{name}_events_dropped_total counter\n\
             sipwarden_{name}_events_dropped_total {v}\n"
        ));
    }
    out.push_str(&format!(
        "# HELP sipwarden_security_events_total Security events the core produced (written + \
         dropped by the core's queue + dropped by the writer).\n\
         # TYPE sipwarden_security_events_total counter\n\
         sipwarden_security_events_total {}\n",
        s.security_events
    ));
}

/// Every trunk with its addresses (fixed, or from DNS) and their health.
async fn trunks_handler(State(app): State<App>, headers: HeaderMap) -> impl IntoResponse {
    if !token_ok(&headers, &app.token) {
        return (StatusCode::UNAUTHORIZED, "missing or wrong bearer token\n").into_response();
    }
    let list: Vec<serde_json::Value> = app
        .trunks
        .borrow()
        .iter()
        .map(|t| {
            let registration = t.registration.as_ref().map(|(state, left)| {
                let state = match state {
                    sipwarden_b2bua::RegState::Unregistered => "unregistered".to_owned(),
                    sipwarden_b2bua::RegState::Registering => "registering".to_owned(),
                    sipwarden_b2bua::RegState::Registered => "registered".to_owned(),
                    sipwarden_b2bua::RegState::Failed(code) => format!("failed ({code})"),
                };
                serde_json::json!({ "state": state, "expires_in": left })
            });
            serde_json::json!({
                "name": t.name,
                "host": t.host,
                "registration": registration,
                "disabled": t.disabled.as_ref().map(|(since, by)| serde_json::json!({ "since": since, "by": by })),
                "addresses": t.addresses.iter().map(|a| serde_json::json!({
                    "address": a.addr.to_string(),
                    "transport": a.transport.as_str().unwrap_or("?"),
                    "host": a.host,
                    "priority": a.priority,
                    "weight": a.weight,
                    "up": a.up,
                    "failures": a.failures,
                    "down_secs": a.down_secs,
                    "qualified": a.qualified.map(|up| if up { "up" } else { "down" }),
                    "rtt_ms": a.rtt_ms,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    axum::Json(serde_json::json!({ "trunks": list })).into_response()
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
        "security_events": s.security_events,
        "security_events_dropped": s.security_events_dropped,
        "call_events_dropped": s.call_events_dropped,
        "internal_build_errors": s.internal_build_errors,
        "internal_send_errors": s.internal_send_errors,
        "registrations": s.registrations,
        "registrations_accepted": s.registrations_accepted,
        "registrations_refused": s.registrations_refused,
        "registrations_table_full": s.registrations_table_full,
        "auth_failures": s.auth_failures,
        "transport_failures": s.transport_failures,
        "failovers": s.failovers,
        "failovers_no_response": s.failovers_no_response,
        "trunk_addresses_marked_down": s.trunk_addresses_marked_down,
        "qualify_probes": s.qualify_probes,
        "qualify_options_sent": s.qualify_sent,
        "qualify_changes": s.qualify_changes,
        "carrier_registers_sent": s.carrier_registers_sent,
        "carrier_registration_failures": s.carrier_registration_failures,
        "bans": s.defence.bans_active,
        "ban_table_size": s.defence.ban_table_size,
        "bans_flood": s.defence.bans_flood,
        "bans_scanner": s.defence.bans_scanner,
        "bans_failures": s.defence.bans_failures,
        "account_locked": s.defence.account_locked,
        "banned_dropped": s.defence.banned_dropped + app.transports.metrics().snapshot().banned_dropped,
        "connections": app.transports.conns().len(),
    });
    axum::Json(body).into_response()
}

/// Binds the admin listener and serves it in the background; returns the bound address.
fn unauthorized() -> axum::response::Response {
    (StatusCode::UNAUTHORIZED, "missing or wrong bearer token\n").into_response()
}

/// `GET /api/bans`: the bans in force.
async fn list_bans(State(app): State<App>, headers: HeaderMap) -> impl IntoResponse {
    if !token_ok(&headers, &app.token) {
        return unauthorized();
    }
    let now = crate::bans::unix_now();
    let list: Vec<serde_json::Value> = app
        .bans
        .list()
        .into_iter()
        .map(|(ip, b)| {
            serde_json::json!({
                "ip": ip.to_string(),
                "reason": b.reason,
                "since": b.since_unix,
                "until": b.until_unix,
                "seconds_left": (b.until_unix - now).max(0),
                "count": b.count,
            })
        })
        .collect();
    axum::Json(serde_json::json!({ "bans": list })).into_response()
}

#[derive(serde::Deserialize)]
struct BanRequest {
    ip: String,
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /api/bans` `{"ip": "...", "reason": "..."}`: ban an address now.
async fn add_ban(
    State(app): State<App>,
    headers: HeaderMap,
    body: axum::Json<BanRequest>,
) -> impl IntoResponse {
    if !token_ok(&headers, &app.token) {
        return unauthorized();
    }
    let Ok(ip) = body.ip.trim().parse::<std::net::IpAddr>() else {
        return (
            StatusCode::BAD_REQUEST,
            format!("not an IP address: {:?}\n", body.ip),
        )
            .into_response();
    };
    let reason: String = body
        .reason
        .clone()
        .unwrap_or_else(|| "banned by the operator".to_owned())
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    let (tx, rx) = oneshot::channel();
    let sent = app
        .control
        .send(Control::Ban {
            ip,
            reason,
            reply: tx,
        })
        .await;
    match (sent, rx.await) {
        (Ok(()), Ok(true)) => (StatusCode::CREATED, format!("banned {ip}\n")).into_response(),
        (Ok(()), Ok(false)) => (
            StatusCode::CONFLICT,
            format!("{ip} is already banned, or may never be banned (PBX, trunk, ban.allow)\n"),
        )
            .into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the call core is not running\n",
        )
            .into_response(),
    }
}

/// `DELETE /api/bans/{ip}`: lift a ban and forget the address's history.
async fn remove_ban(
    State(app): State<App>,
    headers: HeaderMap,
    Path(ip): Path<String>,
) -> impl IntoResponse {
    if !token_ok(&headers, &app.token) {
        return unauthorized();
    }
    let Ok(ip) = ip.parse::<std::net::IpAddr>() else {
        return (
            StatusCode::BAD_REQUEST,
            format!("not an IP address: {ip:?}\n"),
        )
            .into_response();
    };
    let (tx, rx) = oneshot::channel();
    let sent = app.control.send(Control::Unban { ip, reply: tx }).await;
    match (sent, rx.await) {
        (Ok(()), Ok(true)) => (StatusCode::OK, format!("unbanned {ip}\n")).into_response(),
        (Ok(()), Ok(false)) => {
            (StatusCode::NOT_FOUND, format!("{ip} is not banned\n")).into_response()
        }
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the call core is not running\n",
        )
            .into_response(),
    }
}

pub(crate) async fn serve(
    addr: SocketAddr,
    token: Arc<Secret<String>>,
    stats_rx: watch::Receiver<Stats>,
    transports: Transports,
    shared: Shared,
) -> std::io::Result<SocketAddr> {
    let Shared {
        control,
        bans,
        verdicts,
        writer,
        dns,
        trunks,
        media,
        engine,
        db,
    } = shared;
    let app = App {
        token,
        stats: stats_rx,
        transports,
        control,
        bans,
        verdicts,
        writer,
        dns,
        trunks,
        media,
        engine,
        db,
    };
    let router = Router::new()
        .route("/metrics", get(metrics))
        .route("/api/stats", get(stats))
        .route("/api/trunks", get(trunks_handler))
        .route("/api/bans", get(list_bans).post(add_ban))
        .route("/api/bans/{ip}", delete(remove_ban))
        .route("/api/cdrs", get(records::list))
        .route(
            "/api/{kind}/{name}/disable",
            axum::routing::post(records::disable),
        )
        .route(
            "/api/{kind}/{name}/enable",
            axum::routing::post(records::enable),
        )
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bounded_table_has_its_size_and_evictions_on_metrics() {
        let mut s = Stats::default();
        s.nonces.len = 7;
        s.nonces.evicted = 3;
        s.defence.failures.known_addresses_evicted = 2;
        s.defence.rate_sources.len = 9;
        s.security_events_dropped = 5;
        let mut out = String::new();
        core_tables(&mut out, &s);
        for line in [
            "sipwarden_table_entries{table=\"nonces\"} 7",
            "sipwarden_table_evictions_total{table=\"nonces\"} 3",
            "sipwarden_table_entries{table=\"ratelimit_sources\"} 9",
            "sipwarden_table_evictions_total{table=\"known_addresses\"} 2",
            "sipwarden_table_entries{table=\"bans\"} 0",
            "sipwarden_security_events_dropped_total 5",
            "sipwarden_call_events_dropped_total 0",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} not in\n{out}");
        }
        assert_eq!(out.matches("sipwarden_table_evictions_total{").count(), 7);
        assert_eq!(out.matches("sipwarden_table_entries{").count(), 6);
        // Each family's HELP and TYPE once, before its series.
        assert_eq!(out.matches("# TYPE ").count(), 5);
    }
}
