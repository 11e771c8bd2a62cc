//! # sipwarden-stages: the security stages, sans-io
//!
//! Each stage looks at a source address (and, after parsing, a message) and the current time,
//! and returns what to do; the caller performs it. Nothing here reads a clock, touches a
//! socket or writes a file, so every limit, expiry and escalation is tested with simulated
//! time. The order the stages run in is code (in the call core), not configuration:
//! ban → rate limit → sanity → scanner → zone/ACL → authentication.
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

pub mod acl;
pub mod auth_failure;
pub mod ban;
pub mod failures;
pub mod policy;
pub mod ratelimit;
pub mod scanner;
pub mod verdict;

use std::net::IpAddr;

pub use acl::{Acl, AclAction};
pub use auth_failure::AuthFailure;
pub use ban::{BanChange, BanEntry, BanSettings, BanTable};
pub use failures::FailureCounter;
pub use policy::{CallPolicy, CallRequest, Destination, Origin};
pub use ratelimit::{Rate, RateLimiter, RateSettings, RequestClass};
pub use scanner::Scanner;
pub use verdict::{Reason, StageName, Verdict, VerdictCounts};

/// IPv4-mapped IPv6 addresses are the IPv4 address they carry: one attacker, one key.
pub fn normalize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}
