//! # sipwarden-events: security events and their two log formats
//!
//! The gateway reports each security event (a failed ACL, an unknown account, a wrong
//! digest response, a successful login, a ban, ...) as one line in Asterisk's security-event
//! format, so that the stock fail2ban `asterisk` filter bans attackers without a custom
//! filter, and as one JSON line for log shippers. This crate is the event model and both
//! formats, sans-io (the caller passes the wall-clock time), plus [`SecurityLog`], a small
//! synchronous file writer. Of the sipwarden crates it depends on `sipwarden-sip` alone, for
//! the transport type.
//!
//! Every value in an event may come from the attacker, and Asterisk itself does not escape
//! them; see [`asterisk_line`] for how a value is kept from adding or faking a field.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use sipwarden_events::{Endpoint, SecurityEvent, asterisk_line};
//! use sipwarden_sip::header::Transport;
//!
//! let local = Endpoint::new(Transport::Udp, "192.0.2.1:5060".parse().unwrap());
//! let remote = Endpoint::new(Transport::Udp, "203.0.113.9:5062".parse().unwrap());
//! let event = SecurityEvent::invalid_account_id("a84b4c76e66710", local, remote)
//!     .with_account("1001")
//!     .with_reason("no such account");
//! let time = UNIX_EPOCH + Duration::from_millis(1_709_209_496_789);
//! assert_eq!(
//!     asterisk_line(&event, time, 0, 4242).unwrap(),
//!     "[2024-02-29 12:24:56] SECURITY[4242] res_security_log.c: \
//!      SecurityEvent=\"InvalidAccountID\",EventTV=\"2024-02-29T12:24:56.789+0000\",\
//!      Severity=\"Error\",Service=\"SIP\",EventVersion=\"1\",AccountID=\"1001\",\
//!      SessionID=\"a84b4c76e66710\",LocalAddress=\"IPV4/UDP/192.0.2.1/5060\",\
//!      RemoteAddress=\"IPV4/UDP/203.0.113.9/5062\""
//! );
//! ```
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

mod asterisk;
mod event;
mod json;
mod time;
mod writer;

#[cfg(test)]
mod tests;

pub use asterisk::{MAX_VALUE_BYTES, asterisk_line};
pub use event::{BanInfo, Endpoint, EventKind, SecurityEvent, ie};
pub use json::json_line;
pub use writer::SecurityLog;
