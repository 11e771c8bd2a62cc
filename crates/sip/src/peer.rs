//! Where a message came from, or where it goes: the one type the transports, the call core
//! and the server all use for it.

use std::net::SocketAddr;

use crate::header::Transport;

/// Identifies one TCP/TLS/WS connection for its lifetime; the transports number them.
pub type FlowId = u64;

/// A peer: where a message came from, or where it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    /// Transport.
    pub transport: Transport,
    /// Remote address.
    pub addr: SocketAddr,
    /// The connection (TCP/TLS/WS) a message arrived on, or should leave by. Set on
    /// everything received over a stream transport; a WebSocket peer can only be reached
    /// through it (the gateway never opens WebSocket connections).
    pub flow: Option<FlowId>,
}

impl Peer {
    /// Whether the transport is reliable (no retransmissions).
    pub fn reliable(&self) -> bool {
        self.transport.is_stream()
    }
}
