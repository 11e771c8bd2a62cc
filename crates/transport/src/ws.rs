//! SIP over secure WebSocket (RFC 7118): after the TLS handshake, the HTTP upgrade, which
//! must agree on the `sip` subprotocol, then one SIP message per WebSocket message.
//!
//! Accepting, the connection limits and the TLS handshake are the stream listener's (in
//! `stream`), so a WSS connection is refused before it costs a handshake exactly as a TLS
//! one is, and its flow sits in the same table: it counts in [`Conns::len`], shares the
//! per-IP and total limits, and is sent to by flow id. Only what follows TLS lives here.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use sipwarden_sip::header::Transport;
use sipwarden_sip::{FlowId, Limits, Peer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage, Utf8Bytes};

use crate::stream::HANDSHAKE_TIMEOUT;
use crate::{Conns, udp};

/// The WebSocket subprotocol for SIP (RFC 7118 §4, IANA's WebSocket subprotocol registry).
pub(crate) const SUBPROTOCOL: &str = "sip";

/// Read buffer per connection. tungstenite allocates it up front, and its default (128 KiB)
/// would cost 1.3 GB at 10 000 connections; SIP messages are a few KiB, and the buffer grows
/// for a larger one up to the message limit.
const READ_BUFFER: usize = 8 * 1024;

/// Why a refused upgrade was refused, in the HTTP body.
const REFUSAL: &str = "the sip WebSocket subprotocol is required (RFC 7118)\n";

/// WebSocket settings from the parser limits.
fn config(limits: &Limits) -> WebSocketConfig {
    WebSocketConfig::default()
        // One WebSocket message is one SIP message, so the SIP whole-message limit is also the
        // message and frame limit. tungstenite checks it against a frame's header, before
        // buffering the payload, and fails the connection.
        .max_message_size(Some(limits.max_message_bytes))
        .max_frame_size(Some(limits.max_message_bytes))
        .read_buffer_size(READ_BUFFER)
}

/// The upgrade: answers `Sec-WebSocket-Protocol: sip` if the client offers `sip`, else
/// refuses with 400.
///
/// 400 rather than 426: 426 Upgrade Required asks the client to switch to a protocol named
/// in `Upgrade`, and this client already asked for websocket. What it lacks is the
/// subprotocol, without which RFC 7118 §4 does not let either side speak SIP, so the request
/// itself is unacceptable. Answering 101 without the header would also end the connection
/// (RFC 6455 §4.1: the client fails it), but a round trip later and with a vaguer reason.
// The signature is tungstenite's `Callback`, large error and all; it runs once per connection.
#[allow(clippy::result_large_err)]
fn choose_sip(req: &Request, mut resp: Response) -> Result<Response, ErrorResponse> {
    // The header may repeat, and each value is a comma-separated list (RFC 6455 §11.3.4).
    // Subprotocol names compare exactly: RFC 6455 §4.1 gives them no case folding.
    let offers_sip = req
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == SUBPROTOCOL);
    if offers_sip {
        resp.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(SUBPROTOCOL),
        );
        return Ok(resp);
    }
    let mut refusal = ErrorResponse::new(Some(REFUSAL.to_owned()));
    *refusal.status_mut() = StatusCode::BAD_REQUEST;
    let headers = refusal.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(REFUSAL.len()));
    Err(refusal)
}

/// A queued SIP message as one WebSocket message: text when it is UTF-8 (what browsers'
/// SIP stacks expect, RFC 7118 §5.1), binary otherwise (a body in another charset).
fn to_ws(bytes: Bytes) -> WsMessage {
    // Cloning `Bytes` copies a pointer, not the message.
    match Utf8Bytes::try_from(bytes.clone()) {
        Ok(text) => WsMessage::Text(text),
        Err(_) => WsMessage::Binary(bytes),
    }
}

/// Whether a read error means the peer broke the WebSocket protocol (counted as a framing
/// error), rather than the connection simply ending.
fn is_protocol_fault(e: &WsError) -> bool {
    use tokio_tungstenite::tungstenite::error::ProtocolError;
    !matches!(
        e,
        WsError::ConnectionClosed
            | WsError::AlreadyClosed
            | WsError::Io(_)
            | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)
    )
}

/// Runs one WSS connection after its TLS handshake: the upgrade, then messages both ways
/// until the peer closes, the idle timeout, or a protocol error. The flow leaves the table
/// when this returns.
pub(crate) async fn serve<S>(
    conns: &Arc<Conns>,
    stream: S,
    addr: SocketAddr,
    id: FlowId,
    mut rx: mpsc::Receiver<Bytes>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let upgrade = tokio_tungstenite::accept_hdr_async_with_config(
        stream,
        choose_sip,
        Some(config(&conns.limits)),
    );
    let Ok(Ok(ws)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, upgrade).await else {
        conns.metrics.ws_handshake_failed();
        conns.release(id);
        return;
    };
    let (mut sink, mut read) = ws.split();
    let writer = tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            if sink.send(to_ws(b)).await.is_err() {
                break;
            }
        }
        // Sends a Close frame (or completes the peer's closing handshake).
        let _ = sink.close().await;
    });
    let peer = Peer {
        transport: Transport::Wss,
        addr,
        flow: Some(id),
    };
    loop {
        let msg = match tokio::time::timeout(conns.idle, read.next()).await {
            Err(_) => {
                conns.metrics.idle_closed();
                break;
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                if is_protocol_fault(&e) {
                    conns.metrics.framing_error();
                }
                break;
            }
            Ok(Some(Ok(m))) => m,
        };
        let data = match msg {
            WsMessage::Text(text) => Bytes::from(text),
            WsMessage::Binary(data) => data,
            // tungstenite queues the pong itself and sends it with the next read.
            WsMessage::Ping(_) => {
                conns.metrics.keepalive();
                continue;
            }
            // After the peer's Close, tungstenite queues the reply, and the next read sends it
            // and ends the stream; a Pong only shows the peer is alive.
            WsMessage::Close(_) | WsMessage::Pong(_) | WsMessage::Frame(_) => continue,
        };
        conns.metrics.stream_received();
        udp::deliver(data, peer, &conns.limits, &conns.inbound, &conns.metrics);
    }
    // Dropping the table's sender lets the writer send what is queued and close.
    conns.release(id);
    let mut writer = writer;
    // A peer that stopped reading must not hold the socket: the flow is gone already, so
    // bound the wait for the last writes.
    if tokio::time::timeout(HANDSHAKE_TIMEOUT, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
}
