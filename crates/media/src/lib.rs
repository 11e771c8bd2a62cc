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

mod plan;
mod ports;

pub use plan::{AnchorError, CallMedia, Leg, SideAddr, Stream};
pub use ports::Ports;
