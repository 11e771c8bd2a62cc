//! The edge-defence sections: `[ban]`, `[ratelimit]`, `[scanner]`, `[acl]`.

use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::values;

/// `[ban]`: who gets banned, for how long.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BanConfig {
    /// Failed authentications (or malformed requests) from one address within `find_time`
    /// that ban it. Default 5.
    pub max_retry: u32,
    /// The window for `max_retry`. Default "5m".
    #[serde(deserialize_with = "values::duration")]
    pub find_time: Duration,
    /// Failed authentications for one account within `find_time`, from any mix of addresses,
    /// that lock it against addresses it has not authenticated from within `remember` (a
    /// guessing run spread over many sources). Its own phones are never locked out. 0: off.
    /// Default 20.
    pub account_max_retry: u32,
    /// Addresses remembered per account as its own (exempt from its lock): a few phones, a
    /// laptop, a mobile's changing addresses; the least recently authenticated gives way.
    /// At most 1024. Default 16.
    pub account_known_addresses: usize,
    /// Most addresses whose failures are counted, and as many accounts (failures per
    /// account, and the accounts whose own addresses are remembered); when full, the least
    /// recently failed (or authenticated) gives way. Default 100 000.
    pub max_tracked: usize,
    /// First ban's length. Default "1h".
    #[serde(deserialize_with = "values::duration")]
    pub ban_time: Duration,
    /// Repeat offenders: each ban lasts `escalate` times the previous one. Default 2.0.
    pub escalate: f64,
    /// Longest ban. Default "7d".
    #[serde(deserialize_with = "values::duration")]
    pub max_ban_time: Duration,
    /// How long an offender is remembered after a ban ends (for `escalate`). Default "7d".
    #[serde(deserialize_with = "values::duration")]
    pub remember: Duration,
    /// Most addresses held in the ban table; when full the least offending give way.
    /// Default 100 000.
    pub max_entries: usize,
    /// Networks never banned (the PBX's and the trunks' networks never are, anyway).
    #[serde(deserialize_with = "values::networks")]
    pub allow: Vec<IpNet>,
    /// An nftables set (`family table set`, e.g. "inet sipwarden banned") to add banned
    /// addresses to, with their timeouts, so the kernel drops them. Off when absent.
    pub nftables_set: Option<String>,
}

impl Default for BanConfig {
    fn default() -> Self {
        Self {
            max_retry: 5,
            find_time: Duration::from_secs(300),
            account_max_retry: 20,
            account_known_addresses: 16,
            max_tracked: 100_000,
            ban_time: Duration::from_secs(3600),
            escalate: 2.0,
            max_ban_time: Duration::from_secs(7 * 24 * 3600),
            remember: Duration::from_secs(7 * 24 * 3600),
            max_entries: 100_000,
            allow: Vec::new(),
            nftables_set: None,
        }
    }
}

/// `[ratelimit]`: flood limits per source address (requests per second and burst), and a
/// global limit on new calls toward the PBX.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// All requests from one address. Default 20/s.
    pub per_ip_rps: f64,
    /// Burst on top. Default 40.
    pub burst: f64,
    /// REGISTER from one address. Default 5/s, burst 20.
    pub register_rps: f64,
    /// Burst for REGISTER.
    pub register_burst: f64,
    /// INVITE from one address. Default 5/s, burst 20.
    pub invite_rps: f64,
    /// Burst for INVITE.
    pub invite_burst: f64,
    /// OPTIONS from one address. Default 5/s, burst 20.
    pub options_rps: f64,
    /// Burst for OPTIONS.
    pub options_burst: f64,
    /// Most addresses counted at once. Default 100 000.
    pub max_tracked: usize,
    /// New calls per second toward the PBX from everyone together; above it the gateway
    /// answers 503 with Retry-After. Off when absent.
    pub global_invite_cps: Option<f64>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_ip_rps: 20.0,
            burst: 40.0,
            register_rps: 5.0,
            register_burst: 20.0,
            invite_rps: 5.0,
            invite_burst: 20.0,
            options_rps: 5.0,
            options_burst: 20.0,
            max_tracked: 100_000,
            global_invite_cps: None,
        }
    }
}

/// `[scanner]`: fingerprints of SIP scanners.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ScannerConfig {
    /// Drop and ban matching requests. Default true.
    pub enabled: bool,
    /// Replace the built-in patterns (case-insensitive substrings of User-Agent and of the
    /// From/To/Contact users and display names).
    pub patterns: Option<Vec<String>>,
    /// Add to the built-in patterns.
    pub extra_patterns: Vec<String>,
}

impl Default for ScannerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            patterns: None,
            extra_patterns: Vec::new(),
        }
    }
}

/// What a denied request gets.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AclAction {
    /// Nothing (the default: an attacker learns nothing).
    #[default]
    Drop,
    /// 403 Forbidden.
    Reject,
}

/// One zone's (or the global) allow/deny lists; the longest matching prefix wins.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct AclLists {
    /// Allowed networks (with no deny rule, everything else is denied).
    #[serde(deserialize_with = "values::networks")]
    pub allow: Vec<IpNet>,
    /// Denied networks.
    #[serde(deserialize_with = "values::networks")]
    pub deny: Vec<IpNet>,
}

/// `[acl]`: global lists, and lists per zone (`[acl.endpoint]`, `[acl.pbx]`, `[acl.trunk]`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct AclConfig {
    /// Applies to every source.
    #[serde(deserialize_with = "values::networks")]
    pub allow: Vec<IpNet>,
    /// Applies to every source.
    #[serde(deserialize_with = "values::networks")]
    pub deny: Vec<IpNet>,
    /// What a denied request gets. Default "drop".
    pub action: AclAction,
    /// Phones (everyone not the PBX or a trunk).
    pub endpoint: AclLists,
    /// The PBX.
    pub pbx: AclLists,
    /// The trunks.
    pub trunk: AclLists,
}
