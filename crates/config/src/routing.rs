//! Where calls from the PBX leave, and how trunks named by DNS are found and watched:
//! `[dns]`, `[[route]]` and the trunk keys for qualify, failover and registration.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::numbers::canonical_number;
use crate::values;

/// `[dns]`: the resolver used for trunks named by DNS (RFC 3263).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct DnsConfig {
    /// Name servers (`"127.0.0.1:5353"`). Default: the system's (`/etc/resolv.conf`).
    #[serde(deserialize_with = "values::socket_addrs")]
    pub servers: Vec<SocketAddr>,
    /// How long one query may take. Default "2s".
    #[serde(deserialize_with = "values::duration")]
    pub timeout: Duration,
    /// While look-ups fail, the last good answer stays in use this long after it expired;
    /// then the trunk has no address and routing skips it. Default "1h".
    #[serde(deserialize_with = "values::duration")]
    pub keep_stale: Duration,
    /// Answers are looked up again at their TTL, but never more often than this. Default
    /// "10s".
    #[serde(deserialize_with = "values::duration")]
    pub min_ttl: Duration,
    /// Most addresses kept per trunk from its DNS answers (SRV targets times their
    /// addresses); the rest are left out. Between 1 and 64; default 16.
    pub max_addresses: usize,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            servers: Vec::new(),
            timeout: Duration::from_secs(2),
            keep_stale: Duration::from_secs(3600),
            min_ttl: Duration::from_secs(10),
            max_addresses: 16,
        }
    }
}

/// `[trunk.qualify]`: OPTIONS to each of the trunk's addresses, for its up/down state.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct QualifyConfig {
    /// How often. Default "30s".
    #[serde(deserialize_with = "values::duration")]
    pub interval: Duration,
    /// How long an OPTIONS may go unanswered before it counts as failed. Default "2s".
    #[serde(deserialize_with = "values::duration")]
    pub timeout: Duration,
    /// Failed OPTIONS in a row that mark an address down. Default 2.
    pub down_after: u32,
    /// Answered OPTIONS in a row that bring a down address back. Default 2.
    pub up_after: u32,
}

impl Default for QualifyConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(2),
            down_after: 2,
            up_after: 2,
        }
    }
}

/// `[trunk.registration]`: the gateway registers to the carrier with the trunk's credentials.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrationConfig {
    /// Lifetime asked for; refreshed before it runs out. Default "1h".
    #[serde(deserialize_with = "values::duration")]
    pub expires: Duration,
    /// The user part of the Contact registered (where the carrier sends inbound calls).
    /// Default: the trunk's `username`.
    pub contact_user: Option<String>,
    /// First wait after a failed registration; doubled on each failure up to `retry_max`.
    /// Default "30s".
    #[serde(deserialize_with = "values::duration")]
    pub retry: Duration,
    /// Longest wait between attempts. Default "10m".
    #[serde(deserialize_with = "values::duration")]
    pub retry_max: Duration,
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        Self {
            expires: Duration::from_secs(3600),
            contact_user: None,
            retry: Duration::from_secs(30),
            retry_max: Duration::from_secs(600),
        }
    }
}

/// One trunk of a route: a name, or `{ trunk = "a", priority = 1, weight = 3 }`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum RouteTrunk {
    /// By name: priority by position in the list, weight 1.
    Name(String),
    /// With a priority (lower first) and a weight (share among equal priorities).
    Weighted {
        /// The trunk's name.
        trunk: String,
        /// Lower is tried first. Default: the position in the list.
        priority: Option<u16>,
        /// Share of the calls among trunks of equal priority. Default 1.
        weight: Option<u16>,
    },
}

impl RouteTrunk {
    /// The trunk's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Name(n) | Self::Weighted { trunk: n, .. } => n,
        }
    }
}

/// `[[route]]`: calls from the PBX to numbers starting with `prefix`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The dialled number's start (`"+44"`; separators and `+` are ignored, as for DIDs);
    /// empty: every number. The longest matching prefix wins.
    #[serde(default)]
    pub prefix: String,
    /// The trunks to use, by priority and weight.
    pub trunks: Vec<RouteTrunk>,
    /// Trunks tried in this order once every trunk of `trunks` has failed or is down.
    #[serde(default)]
    pub fallback: Vec<String>,
}

impl RouteConfig {
    /// The prefix as canonical digits (empty for the default route).
    pub fn digits(&self) -> String {
        let p = self.prefix.trim();
        if p.is_empty() || p == "+" {
            String::new()
        } else {
            canonical_number(p).unwrap_or_default()
        }
    }
}

/// Checks `[dns]`, the routes and the trunk keys of this module; reports through `err(key,
/// message)`.
pub(crate) fn validate(cfg: &crate::Config, err: &mut dyn FnMut(String, String)) {
    let d = &cfg.dns;
    if !(Duration::from_millis(100)..=Duration::from_secs(30)).contains(&d.timeout) {
        err(
            "dns.timeout".into(),
            "must lie between 100ms and 30s".into(),
        );
    }
    if !(1..=64).contains(&d.max_addresses) {
        err(
            "dns.max_addresses".into(),
            "must lie between 1 and 64".into(),
        );
    }
    if !(1..=16).contains(&cfg.calls.max_attempts) {
        err(
            "calls.max_attempts".into(),
            "must lie between 1 and 16".into(),
        );
    }
    if d.min_ttl > Duration::from_secs(3600) {
        err("dns.min_ttl".into(), "must be 1h or less".into());
    }
    for (i, t) in cfg.trunks.iter().enumerate() {
        let key = |k: &str| format!("trunk[{i}].{k}");
        if let Some(q) = &t.qualify {
            if q.interval < Duration::from_secs(1) {
                err(key("qualify.interval"), "must be 1s or more".into());
            }
            if q.timeout.is_zero() || q.timeout > q.interval {
                err(
                    key("qualify.timeout"),
                    "must be more than 0s and no more than the interval".into(),
                );
            }
            if !(1..=100).contains(&q.down_after) {
                err(
                    key("qualify.down_after"),
                    "must lie between 1 and 100".into(),
                );
            }
            if !(1..=100).contains(&q.up_after) {
                err(key("qualify.up_after"), "must lie between 1 and 100".into());
            }
        }
        if !(Duration::from_millis(500)..=Duration::from_secs(32)).contains(&t.failover_timeout) {
            err(
                key("failover_timeout"),
                "must lie between 500ms and 32s".into(),
            );
        }
        if t.networks_from_dns && !t.proxy.is_name() {
            err(
                key("networks_from_dns"),
                "needs a proxy named by DNS (this one is an address: list it in networks)".into(),
            );
        }
        if t.failures_to_down == 0 {
            err(key("failures_to_down"), "must be 1 or more".into());
        }
        if let Some(r) = &t.registration {
            if t.username.is_none() {
                err(
                    key("registration"),
                    "registering needs the trunk's username and password".into(),
                );
            }
            if !(Duration::from_secs(60)..=Duration::from_secs(86_400)).contains(&r.expires) {
                err(
                    key("registration.expires"),
                    "must lie between 1m and 24h".into(),
                );
            }
            if r.retry.is_zero() || r.retry > r.retry_max {
                err(
                    key("registration.retry"),
                    "must be more than 0s and no more than retry_max".into(),
                );
            }
            if let Some(u) = &r.contact_user {
                if u.is_empty()
                    || !u
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b))
                {
                    err(
                        key("registration.contact_user"),
                        "must be letters, digits, '-', '_', '.' or '+'".into(),
                    );
                }
            }
        }
    }
    let mut prefixes: Vec<String> = Vec::new();
    for (i, r) in cfg.routes.iter().enumerate() {
        let key = |k: &str| format!("route[{i}].{k}");
        let digits = r.digits();
        let p = r.prefix.trim();
        if !(p.is_empty() || p == "+") && digits.is_empty() {
            err(
                key("prefix"),
                format!(
                    "prefix {:?} must be digits, with an optional leading '+'",
                    r.prefix
                ),
            );
        }
        if prefixes.contains(&digits) {
            err(
                key("prefix"),
                format!("prefix {:?} has a route already", r.prefix),
            );
        }
        prefixes.push(digits);
        if r.trunks.is_empty() {
            err(key("trunks"), "a route needs at least one trunk".into());
        }
        let mut seen: Vec<&str> = Vec::new();
        let names = r
            .trunks
            .iter()
            .map(RouteTrunk::name)
            .chain(r.fallback.iter().map(String::as_str));
        for name in names {
            if cfg.trunk(name).is_none() {
                err(key("trunks"), format!("no trunk is named {name:?}"));
            } else if seen.contains(&name) {
                err(key("trunks"), format!("trunk {name:?} is named twice"));
            }
            seen.push(name);
        }
        for t in &r.trunks {
            if let RouteTrunk::Weighted {
                weight: Some(0), ..
            } = t
            {
                err(
                    key("trunks"),
                    format!("trunk {:?}: weight must be 1 or more", t.name()),
                );
            }
        }
    }
}
