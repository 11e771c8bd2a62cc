//! # sipwarden-txn: RFC 3261 transactions, sans-io
//!
//! Client and server transactions (RFC 3261 §17, with RFC 6026's Accepted states) for INVITE
//! and non-INVITE requests: retransmission over unreliable transports, absorption of
//! retransmitted requests and responses, the ACK for non-2xx finals, CANCEL matching, and
//! every timer (A–K, L, M). No sockets and no clock: the caller passes `now` in and drains
//! transmits, events and the next deadline, so tests drive hours of timers in microseconds.
//!
//! Depends only on `sipwarden-sip`.
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

mod key;
mod layer;
mod timers;

pub use layer::{Config, Counts, Event, Transmit, TxError, TxId, TxLayer, build_ack, build_cancel};
pub use timers::Timers;
