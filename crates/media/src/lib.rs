//! # sipwarden-media: media anchoring, sans-io
//!
//! [`CallMedia::anchor`] rewrites each offer and answer so that both legs send their media to
//! the gateway's relay, remembering where each side asked to receive; [`Ports`] is the relay's
//! bounded pool of RTP/RTCP port pairs. No sockets and no clock here: the relay that moves the
//! packets runs on threads of the server's (see README.md for what comes next).
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

pub mod ng;
mod plan;
mod ports;

pub use plan::{AnchorError, CallMedia, Leg, SideAddr, Stream};
pub use ports::Ports;

use std::net::{IpAddr, SocketAddr};

/// What the relay must do for the streams a call's SDP set up: the anchoring rewrite queues
/// these (it does no I/O), the server performs them on the relay after each round of the
/// call core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayOp {
    /// Open a stream: bind its ports facing each side.
    Open {
        /// The call.
        call: u64,
        /// The stream (`m=` line).
        stream: usize,
        /// The relay's RTP address facing A.
        a_bind: SocketAddr,
        /// The relay's RTP address facing B.
        b_bind: SocketAddr,
        /// Where A receives, when its SDP said.
        to_a: Option<SocketAddr>,
        /// Where B receives.
        to_b: Option<SocketAddr>,
        /// Addresses A's media may come from (its signalling address).
        a_sources: Vec<IpAddr>,
        /// Addresses B's media may come from.
        b_sources: Vec<IpAddr>,
        /// RTP and RTCP on one port.
        rtcp_mux: bool,
    },
    /// New targets for an open stream (a re-INVITE; `None`: on hold with 0.0.0.0).
    Update {
        /// The call.
        call: u64,
        /// The stream.
        stream: usize,
        /// Where A receives now.
        to_a: Option<SocketAddr>,
        /// Where B receives now.
        to_b: Option<SocketAddr>,
    },
    /// The call ended: close its streams.
    Close {
        /// The call.
        call: u64,
    },
    /// The call went on hold (every stream sendonly, recvonly or inactive, or its address
    /// 0.0.0.0) or came off it: the hold timeout applies instead of the media timeout.
    Hold {
        /// The call.
        call: u64,
        /// On hold now.
        held: bool,
    },
    /// The call's media is left to go direct (nothing to open): said once per call, for its
    /// call record.
    Unanchored {
        /// The call.
        call: u64,
        /// Why (`"webrtc"`: ICE with DTLS-SRTP, which the embedded relay does not terminate).
        why: &'static str,
    },
}
