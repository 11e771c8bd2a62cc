//! # sipwarden-sip: the SIP message core
//!
//! A sans-io SIP library: bytes in, typed values out, bytes back. It has no sockets, no clock
//! and no async runtime, so everything above it can be tested without a network or real time.
//!
//! - [`Message`] keeps one buffer plus byte ranges: an unedited message serialises back byte for
//!   byte; typed views ([`header`]) are decoded on demand; the headers the transaction layer
//!   keys on (branch, method, CSeq, Call-ID, tags) are decoded once, while parsing.
//! - [`Limits`] bounds every dimension of a message and is checked before allocating.
//! - [`StreamFramer`] frames TCP/TLS byte streams; [`Message::parse_datagram`] frames UDP.
//! - [`validate`] turns RFC 3261 §8.2 / §16.3 into a [`Decision`]: accept, reject with a
//!   status, or drop.
//! - [`sdp`] parses the session descriptions a gateway polices; [`digest`] is the
//!   authentication math.
//! - [`Peer`] (transport, address, connection) is where a message came from or goes, for
//!   the transports, the call core and the server alike.
//! - [`Secret`] holds passwords, HA1s, tokens and keys so that no `Debug` or `Display` prints
//!   them.
//!
//! ```
//! use sipwarden_sip::{Message, Method, validate, Policy, Decision};
//!
//! let raw = b"OPTIONS sip:pbx.example SIP/2.0\r\n\
//!     Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK74bf9\r\n\
//!     From: <sip:alice@example.com>;tag=9fxced76sl\r\n\
//!     To: <sip:pbx.example>\r\n\
//!     Call-ID: 3848276298220188511@192.0.2.1\r\n\
//!     CSeq: 1 OPTIONS\r\n\
//!     Max-Forwards: 70\r\n\
//!     Content-Length: 0\r\n\r\n";
//! let msg = Message::parse(raw).unwrap();
//! assert_eq!(msg.method(), Some(Method::Options));
//! assert_eq!(msg.branch(), Some("z9hG4bK74bf9"));
//! assert_eq!(validate(&msg, &Policy::default()), Decision::Accept);
//! assert_eq!(msg.to_bytes().as_ref(), &raw[..]);
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

pub mod digest;
mod edit;
mod error;
mod framing;
pub mod header;
mod limits;
mod message;
mod method;
mod name;
mod peer;
mod scan;
pub mod sdp;
mod secret;
mod status;
pub mod uri;
mod validate;

pub use error::{ParseError, ParseErrorKind};
pub use framing::{StreamFramer, StreamItem};
pub use limits::Limits;
pub use message::{EditError, HeaderRef, Message};
pub use method::Method;
pub use name::HeaderName;
pub use peer::{FlowId, Peer};
pub use secret::Secret;
pub use status::StatusCode;
pub use uri::{Host, Scheme, Uri};
pub use validate::{Decision, Policy, Role, decision_for_parse_error, validate};

/// Decodes `%HH` escapes once (URI user parts, parameters); never recursively.
pub fn unescape(s: &str) -> std::borrow::Cow<'_, [u8]> {
    scan::unescape(s)
}

/// Removes the quotes and quoted-pairs of a quoted string; other text is returned unchanged.
pub fn unquote(s: &str) -> std::borrow::Cow<'_, str> {
    scan::unquote(s)
}
