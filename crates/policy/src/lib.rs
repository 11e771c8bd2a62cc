//! # sipwarden-policy: call policies
//!
//! Each policy is a [`CallPolicy`] (the contract lives in `sipwarden-stages`): the call core
//! runs them in order after authentication and routing, without knowing any of them; the
//! server picks the list ([`standard`]). A policy is sans-io: it decides from the
//! [`sipwarden_stages::CallRequest`] and its own state. Destination, spend caps and velocity
//! limits are here; caller-ID rules come next.
//!
//! The rewrites of a call's outgoing messages ([`Rewrite`], the same crate's contract) are
//! picked here too ([`standard_rewrites`]), beside the rules they often go with.
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

pub mod caller_id;
pub mod destination;
pub mod engine;
pub mod media;
pub mod numbers;
pub mod spend;
pub mod srtp;
pub mod velocity;
pub mod window;

use sipwarden_stages::{CallPolicy, Rewrite};

pub use engine::{EngineAnchor, EngineOps, EngineWork};
pub use media::{MediaAnchor, RelayOps};
pub use spend::{Rate, RateTable, SpendPolicy, SpendState, SpendStats};
pub use srtp::SrtpRequired;
pub use velocity::{
    CounterKey, Counters, MemoryCounters, VelocityPolicy, VelocityState, VelocityStats,
};

/// The policies every gateway runs, in order.
pub fn standard() -> Vec<Box<dyn CallPolicy>> {
    vec![Box::new(SrtpRequired)]
}

/// The files a configuration names that policies need, read by the server (the policies are
/// sans-io): their text, or none when not read.
#[derive(Clone, Debug, Default)]
pub struct PolicyFiles {
    /// The text of `[policy.spend] rates`, the rate table (CSV).
    pub rates: Option<String>,
    /// The operator's named lists (`[policy] lists`): (list name, file text).
    pub lists: Vec<(String, String)>,
}

/// The policies a configuration asks for, in order: the standard ones, then the destination
/// policy with `[policy]`, the spend caps with `[policy.spend]`, then the velocity limits with
/// `[[policy.limits]]`. An error names the key it cannot use. Without the files a
/// configuration names (see [`from_config_files`]).
pub fn from_config(cfg: &sipwarden_config::Config) -> Result<Vec<Box<dyn CallPolicy>>, String> {
    from_config_files(cfg, &PolicyFiles::default())
}

/// As [`from_config`], with the text of the files the configuration names: a rate table
/// configured but not given is an error (`policy.spend.rates: the rate table was not read`),
/// as is one that does not parse (naming its line).
pub fn from_config_files(
    cfg: &sipwarden_config::Config,
    files: &PolicyFiles,
) -> Result<Vec<Box<dyn CallPolicy>>, String> {
    build(cfg, files)
}

fn build(
    cfg: &sipwarden_config::Config,
    files: &PolicyFiles,
) -> Result<Vec<Box<dyn CallPolicy>>, String> {
    let mut list = standard();
    // One cache of normalised numbers for every policy: a call's numbers are parsed once.
    let numbers = numbers::NumberCache::new(
        cfg.policy
            .as_ref()
            .map_or(numbers::NUMBER_CACHE, |p| p.number_cache),
    );
    let shared = || std::sync::Arc::clone(&numbers);
    let lists = std::sync::Arc::new(numbers::Lists::with_files(&files.lists)?);
    let lists_for = || std::sync::Arc::clone(&lists);
    if let Some(p) = &cfg.policy {
        list.push(Box::new(
            destination::DestinationPolicy::new(p)?
                .with_numbers(shared())
                .with_lists(lists_for()),
        ));
        if !p.windows.is_empty() {
            list.push(Box::new(
                window::TimeWindowPolicy::new(p)?
                    .with_numbers(shared())
                    .with_lists(lists_for()),
            ));
        }
    }
    if let Some(rules) = caller_id::Rules::from_config_with(cfg, shared()) {
        list.push(Box::new(caller_id::CallerIdPolicy::new(rules)));
    }
    if let Some(p) = &cfg.policy {
        // After the rules that refuse by destination (and time windows): a refused call is
        // never priced. Before velocity: a call over its spend cap does not count there.
        if let Some(s) = &p.spend {
            let table = match (&s.rates, &files.rates) {
                (Some(path), Some(text)) => Some(
                    RateTable::parse(text)
                        .map_err(|e| format!("policy.spend.rates: {}: {e}", path.display()))?,
                ),
                _ => None,
            };
            list.push(Box::new(
                SpendPolicy::new(p, table)?
                    .with_numbers(shared())
                    .with_lists(lists_for()),
            ));
        }
        // Last: a call another policy refuses never counts toward a limit.
        if !p.limits.is_empty() {
            // A reload carries the running policy's counters over (`CallPolicy::hand_over`).
            let counters = Box::new(MemoryCounters::new(p.limit_entries));
            list.push(Box::new(
                VelocityPolicy::new(p, counters)?.with_numbers(shared()),
            ));
        }
    }
    Ok(list)
}

/// The rewrites every gateway runs, in order, after the core's own topology hiding of SDP.
/// None yet: caller-ID replacement and the Identity header (STIR/SHAKEN signing) go here, in
/// that order (the Identity signs the caller-ID as replaced). The server appends media
/// anchoring ([`MediaAnchor`]) when `[media]` is configured.
pub fn standard_rewrites() -> Vec<Box<dyn Rewrite>> {
    Vec::new()
}

/// The names of the rewrites [`rewrites_from_config`] builds: what a reload replaces.
pub const CONFIGURED_REWRITES: &[&str] = &[caller_id::CALLER_ID];

/// The rewrites a configuration asks for, in order: the standard ones, then the trunks'
/// caller-ID replacement and flag (`[trunk.caller_id]`).
pub fn rewrites_from_config(cfg: &sipwarden_config::Config) -> Vec<Box<dyn Rewrite>> {
    let mut list = standard_rewrites();
    if let Some(rules) = caller_id::Rules::from_config(cfg) {
        list.push(Box::new(caller_id::CallerIdRewrite::new(rules)));
    }
    list
}
