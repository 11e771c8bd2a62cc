//! # sipwarden-policy: call policies
//!
//! Each policy is a [`CallPolicy`] (the contract lives in `sipwarden-stages`): the call core
//! runs them in order after authentication and routing, without knowing any of them; the
//! server picks the list ([`standard`]). A policy is sans-io: it decides from the
//! [`sipwarden_stages::CallRequest`] and its own state. Destination, velocity and spend
//! limits, caller-ID rules and the kill switch come here next.
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

pub mod srtp;

use sipwarden_stages::CallPolicy;

pub use srtp::SrtpRequired;

/// The policies every gateway runs, in order.
pub fn standard() -> Vec<Box<dyn CallPolicy>> {
    vec![Box::new(SrtpRequired)]
}
