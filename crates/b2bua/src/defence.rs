//! The edge stages as the call core runs them, in their fixed order: ban → rate limit →
//! sanity → scanner → zone/ACL (authentication follows in the registrar and the call path).
//! The stages themselves live in `sipwarden-stages`; this is the runner, which performs
//! their verdicts: drop, reply, ban.

use std::net::IpAddr;
use std::time::Instant;

use ipnet::IpNet;
use sipwarden_config::{AclAction as CfgAclAction, Config};
use sipwarden_sip::Method;
use sipwarden_stages::{
    Acl, AclAction, BanChange, BanEntry, BanSettings, BanTable, FailureCounter, FailureStats, Rate,
    RateLimiter, RateSettings, RequestClass, Scanner, TableStats,
};

use crate::endpoint_auth::AuthOutcome;
use crate::routes::Zone;
use sipwarden_sip::StatusCode;
use sipwarden_stages::{AuthFailure, Reason, Verdict};

/// The stages' settings, from one configuration (swapped on reload with the routes).
#[derive(Clone, Debug)]
pub struct DefenceSettings {
    /// Ban behaviour (its `never` list holds the PBX and trunk networks too).
    pub ban: BanSettings,
    /// Failures that ban, and their window.
    pub max_retry: u32,
    /// The window for `max_retry`.
    pub find_time: std::time::Duration,
    /// Failures for one account (any sources) that lock it against unfamiliar addresses; 0 off.
    pub account_max_retry: u32,
    /// Most addresses whose failures are counted, and as many accounts.
    pub max_tracked: usize,
    /// Addresses remembered per account as its own (exempt from its lock).
    pub known_per_account: usize,
    /// Flood limits.
    pub rate: RateSettings,
    /// Scanner matcher (`None`: off).
    pub scanner: Option<Scanner>,
    /// Lists for everyone.
    pub acl_global: Acl,
    /// Lists per zone.
    pub acl_endpoint: Acl,
    /// Lists for the PBX.
    pub acl_pbx: Acl,
    /// Lists for trunks.
    pub acl_trunk: Acl,
    /// Whether a denied request gets 403 (else nothing).
    pub acl_reject: bool,
}

impl Default for DefenceSettings {
    fn default() -> Self {
        Self::from_config(&Config::default(), Vec::new())
    }
}

impl DefenceSettings {
    /// From a configuration; `trusted` are the PBX and trunk networks (never banned).
    pub fn from_config(cfg: &Config, trusted: Vec<IpNet>) -> Self {
        let b = &cfg.ban;
        let mut never = b.allow.clone();
        never.extend(trusted);
        let r = &cfg.ratelimit;
        let rate = |per_second, burst| Rate { per_second, burst };
        let s = &cfg.scanner;
        let scanner = s.enabled.then(|| {
            let base: Vec<String> = s.patterns.clone().unwrap_or_else(|| {
                sipwarden_stages::scanner::DEFAULT_PATTERNS
                    .iter()
                    .map(|p| (*p).to_owned())
                    .collect()
            });
            Scanner::new(
                base.iter()
                    .chain(s.extra_patterns.iter())
                    .map(String::as_str),
            )
        });
        let a = &cfg.acl;
        Self {
            ban: BanSettings {
                ban_time: b.ban_time,
                escalate: b.escalate,
                max_ban_time: b.max_ban_time,
                remember: b.remember,
                max_entries: b.max_entries,
                never,
            },
            max_retry: b.max_retry,
            find_time: b.find_time,
            account_max_retry: b.account_max_retry,
            max_tracked: b.max_tracked,
            known_per_account: b.account_known_addresses,
            rate: RateSettings {
                per_ip: rate(r.per_ip_rps, r.burst),
                register: rate(r.register_rps, r.register_burst),
                invite: rate(r.invite_rps, r.invite_burst),
                options: rate(r.options_rps, r.options_burst),
                global_invite: r.global_invite_cps.map(|c| rate(c, c.max(1.0))),
                max_tracked: r.max_tracked,
            },
            scanner,
            acl_global: Acl::new(&a.allow, &a.deny),
            acl_endpoint: Acl::new(&a.endpoint.allow, &a.endpoint.deny),
            acl_pbx: Acl::new(&a.pbx.allow, &a.pbx.deny),
            acl_trunk: Acl::new(&a.trunk.allow, &a.trunk.deny),
            acl_reject: a.action == CfgAclAction::Reject,
        }
    }
}

/// Counters of what the stages did, for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DefenceStats {
    /// Messages from banned sources that reached the core (the transports drop most first).
    pub banned_dropped: u64,
    /// Sources banned for flooding.
    pub bans_flood: u64,
    /// Sources banned as scanners.
    pub bans_scanner: u64,
    /// Sources banned for failed authentication or malformed requests.
    pub bans_failures: u64,
    /// Sources banned by an operator.
    pub bans_manual: u64,
    /// Requests dropped or refused by an allow/deny list.
    pub acl_denied: u64,
    /// Right passwords refused because the account was locked against their address.
    pub account_locked: u64,
    /// Requests refused by the global limit (503).
    pub global_limited: u64,
    /// Bans in force.
    pub bans_active: usize,
    /// Addresses in the ban table (banned or remembered).
    pub ban_table_size: usize,
    /// Addresses that gave way in a full ban table (`ban.max_entries`).
    pub bans_evicted: u64,
    /// The failure counters' tables (`ban.max_tracked`, `ban.account_known_addresses`).
    pub failures: FailureStats,
    /// The flood limits' table of sources (`ratelimit.max_tracked`).
    pub rate_sources: TableStats,
}

/// Why a source was banned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BanCause {
    Flood,
    Scanner,
    Failures,
}

/// The stages' state.
#[derive(Debug)]
pub(crate) struct Defence {
    pub(crate) settings: DefenceSettings,
    pub(crate) bans: BanTable,
    pub(crate) rate: RateLimiter,
    pub(crate) failures: FailureCounter,
    pub(crate) stats: DefenceStats,
}

pub(crate) fn class(method: Option<Method>) -> RequestClass {
    match method {
        Some(Method::Register) => RequestClass::Register,
        Some(Method::Invite) => RequestClass::Invite,
        Some(Method::Options) => RequestClass::Options,
        _ => RequestClass::Other,
    }
}

impl Defence {
    pub(crate) fn new(settings: DefenceSettings) -> Self {
        Self {
            bans: BanTable::new(settings.ban.clone()),
            rate: RateLimiter::new(settings.rate.clone()),
            failures: {
                let mut f = FailureCounter::new(
                    settings.max_retry,
                    settings.find_time,
                    settings.max_tracked,
                );
                f.set_bounds(settings.max_tracked, settings.known_per_account);
                f.set_account_lock(settings.account_max_retry, settings.ban.remember);
                f
            },
            settings,
            stats: DefenceStats::default(),
        }
    }

    pub(crate) fn set_settings(&mut self, settings: DefenceSettings) {
        self.bans.set_settings(settings.ban.clone());
        self.rate.set_settings(settings.rate.clone());
        self.failures
            .set_limits(settings.max_retry, settings.find_time);
        self.failures
            .set_account_lock(settings.account_max_retry, settings.ban.remember);
        self.failures
            .set_bounds(settings.max_tracked, settings.known_per_account);
        self.settings = settings;
    }

    /// Bans `ip`; returns the new entry (None when exempt or already banned).
    pub(crate) fn ban(
        &mut self,
        ip: IpAddr,
        now: Instant,
        cause: BanCause,
        reason: &str,
    ) -> Option<BanEntry> {
        let e = self.bans.ban(ip, now, reason)?;
        match cause {
            BanCause::Flood => self.stats.bans_flood += 1,
            BanCause::Scanner => self.stats.bans_scanner += 1,
            BanCause::Failures => self.stats.bans_failures += 1,
        }
        Some(e)
    }

    /// The ban stage: a banned source's message is dropped (counted, never logged).
    pub(crate) fn ban_stage(&mut self, now: Instant, ip: IpAddr) -> Verdict {
        if self.bans.is_banned(ip, now) {
            self.stats.banned_dropped += 1;
            return Verdict::Drop {
                reason: Reason::Banned,
            };
        }
        Verdict::Continue
    }

    /// The rate-limit stage: a source over a flood limit is banned. The PBX and the trunks
    /// are not flood-limited per address (the global limit and the transaction cap protect
    /// against them); everyone else is.
    pub(crate) fn ratelimit_stage(
        &mut self,
        now: Instant,
        ip: IpAddr,
        zone: Zone,
        method: Option<Method>,
    ) -> Verdict {
        let class = class(method);
        if zone == Zone::Endpoint && !self.bans.exempt(ip) && !self.rate.allow(ip, class, now) {
            return Verdict::Ban {
                reason: Reason::Flood(class),
                ttl: None,
            };
        }
        Verdict::Continue
    }

    /// The zone/ACL stage: global lists, then the zone's; a denied request is dropped, or
    /// answered 403 with `action = "reject"`.
    pub(crate) fn acl_stage(&mut self, ip: IpAddr, zone: Zone) -> Verdict {
        let s = &self.settings;
        let zone_acl = match zone {
            Zone::Pbx => &s.acl_pbx,
            Zone::Trunk(_) => &s.acl_trunk,
            Zone::Endpoint => &s.acl_endpoint,
        };
        let denied =
            s.acl_global.check(ip) == AclAction::Deny || zone_acl.check(ip) == AclAction::Deny;
        if !denied {
            return Verdict::Continue;
        }
        self.stats.acl_denied += 1;
        if s.acl_reject {
            Verdict::reply(StatusCode::FORBIDDEN, Reason::AclDenied)
        } else {
            Verdict::Drop {
                reason: Reason::AclDenied,
            }
        }
    }

    /// A failure from `ip` (authentication, malformed request); bans at `max_retry`.
    pub(crate) fn failure(
        &mut self,
        ip: IpAddr,
        account: Option<&str>,
        now: Instant,
    ) -> Option<BanEntry> {
        if self.bans.exempt(ip) {
            return None;
        }
        if self.failures.fail(ip, account, now) {
            let n = self.settings.max_retry;
            return self.ban(
                ip,
                now,
                BanCause::Failures,
                &format!("{n} failures within {}s", self.settings.find_time.as_secs()),
            );
        }
        None
    }

    /// Records a digest verdict's effect on the counters: a success makes its source
    /// familiar to the account (exempt from its lock) and restarts the source's count.
    pub(crate) fn after_auth(&mut self, now: Instant, ip: IpAddr, verdict: &AuthOutcome) {
        if let AuthOutcome::Ok(account) = verdict {
            self.failures.succeed_for(ip, account, now);
        }
        if verdict
            .failure()
            .is_some_and(|f| f.kind == AuthFailure::AccountLocked)
        {
            self.stats.account_locked += 1;
        }
    }

    pub(crate) fn take_changes(&mut self) -> Vec<BanChange> {
        self.bans.take_changes()
    }

    pub(crate) fn stats(&self) -> DefenceStats {
        DefenceStats {
            bans_active: self.bans.active_count(),
            ban_table_size: self.bans.len(),
            bans_evicted: self.bans.evicted(),
            failures: self.failures.stats(),
            rate_sources: self.rate.stats(),
            ..self.stats
        }
    }
}
