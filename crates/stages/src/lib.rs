//! # sipwarden-stages: the security stages, sans-io
//!
//! Each stage looks at a source address (and, after parsing, a message) and the current time,
//! and returns what to do; the caller performs it. Nothing here reads a clock, touches a
//! socket or writes a file, so every limit, expiry and escalation is tested with simulated
//! time. The order the stages run in is code (in the call core), not configuration:
//! ban → rate limit → sanity → scanner → zone/ACL → authentication.
//!
//! The call seams live here too, so the core runs them without knowing any: [`CallPolicy`]
//! (may a new call go on, and when must a running one end) and [`Rewrite`] (what changes in
//! a call's outgoing INVITE and SDP bodies).
//!
//! Every table here keyed by address takes the address through [`IpAddr::to_canonical`]: an
//! IPv4-mapped IPv6 address (a dual-stack socket's view of an IPv4 peer) is the IPv4 address
//! it carries, so one attacker has one key.
//!
//! [`IpAddr::to_canonical`]: std::net::IpAddr::to_canonical
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
// Unit tests may read the clock for an arbitrary origin; the code under test may not
// (disallowed-methods in ../../clippy.toml).
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod acl;
pub mod auth_failure;
pub mod ban;
pub mod failures;
pub mod policy;
pub mod ratelimit;
pub mod rewrite;
pub mod scanner;
pub mod table;
pub mod verdict;

pub use acl::{Acl, AclAction};
pub use auth_failure::AuthFailure;
pub use ban::{BanChange, BanEntry, BanSettings, BanTable};
pub use failures::{FailureCounter, FailureStats};
pub use policy::{
    CallPolicy, CallRequest, Decision, Destination, Origin, Outcome, PolicyGauge, Subject,
};
pub use ratelimit::{Rate, RateLimiter, RateSettings, RequestClass};
pub use rewrite::{Rewrite, RewriteError, SdpContext, SdpKind, Toward};
pub use scanner::Scanner;
pub use table::{LruTable, TableStats};
pub use verdict::{Reason, StageName, Verdict, VerdictCounts};
