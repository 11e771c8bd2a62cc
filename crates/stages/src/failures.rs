//! Failure counting with fail2ban's semantics: `max_retry` failures within `find_time` from
//! one source address means a ban. A success resets only its own source's count, never
//! another address's.
//!
//! Failures are also counted per account, whatever their source, against a guessing run spread
//! over many addresses (each staying under `max_retry`): at `account_max_retry` failures within
//! `find_time` the account is *locked* — but only against addresses it has not authenticated
//! from lately. So an attacker cannot lock a user's own phones out, and a botnet gets at most
//! `account_max_retry` guesses per `find_time` per account.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The counters.
#[derive(Debug)]
pub struct FailureCounter {
    max_retry: u32,
    find_time: Duration,
    max_tracked: usize,
    by_ip: HashMap<IpAddr, VecDeque<Instant>>,
    by_account: HashMap<String, VecDeque<Instant>>,
    /// 0: accounts are never locked.
    account_max_retry: u32,
    /// How long an address an account authenticated from stays exempt from its lock.
    remember: Duration,
    /// Addresses each account authenticated from, with the last time (at most
    /// [`KNOWN_PER_ACCOUNT`] each).
    known: HashMap<String, Vec<(IpAddr, Instant)>>,
}

/// Addresses remembered per account: a few phones, a laptop, a mobile's changing addresses.
const KNOWN_PER_ACCOUNT: usize = 16;

fn push(q: &mut VecDeque<Instant>, now: Instant, window: Duration, keep: usize) -> usize {
    while q
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= window)
    {
        q.pop_front();
    }
    q.push_back(now);
    while q.len() > keep {
        q.pop_front();
    }
    q.len()
}

impl FailureCounter {
    /// Counters for `max_retry` failures in `find_time`, tracking at most `max_tracked`
    /// addresses and as many accounts.
    pub fn new(max_retry: u32, find_time: Duration, max_tracked: usize) -> Self {
        Self {
            max_retry: max_retry.max(1),
            find_time,
            max_tracked: max_tracked.max(1),
            by_ip: HashMap::new(),
            by_account: HashMap::new(),
            account_max_retry: 0,
            remember: Duration::from_secs(7 * 24 * 3600),
            known: HashMap::new(),
        }
    }

    /// Locks an account against unfamiliar addresses at `max` failures within `find_time`
    /// (0: never); addresses it authenticated from within `remember` stay exempt.
    pub fn set_account_lock(&mut self, max: u32, remember: Duration) {
        self.account_max_retry = max;
        self.remember = remember;
    }

    /// New limits (a reload).
    pub fn set_limits(&mut self, max_retry: u32, find_time: Duration) {
        self.max_retry = max_retry.max(1);
        self.find_time = find_time;
    }

    fn room<K: Clone + Eq + std::hash::Hash>(
        map: &mut HashMap<K, VecDeque<Instant>>,
        max: usize,
        now: Instant,
        window: Duration,
    ) {
        if map.len() < max {
            return;
        }
        map.retain(|_, q| {
            q.back()
                .is_some_and(|t| now.saturating_duration_since(*t) < window)
        });
        if map.len() >= max {
            map.clear();
        }
    }

    /// Counts a failure; `true` when the source has reached `max_retry` (ban it). The
    /// source's count restarts after a ban.
    pub fn fail(&mut self, ip: IpAddr, account: Option<&str>, now: Instant) -> bool {
        let ip = ip.to_canonical();
        let (keep, window) = (self.max_retry as usize, self.find_time);
        if let Some(a) = account.filter(|a| !a.is_empty()) {
            if !self.by_account.contains_key(a) {
                Self::room(&mut self.by_account, self.max_tracked, now, window);
            }
            let q = self.by_account.entry(a.to_owned()).or_default();
            push(q, now, window, 1024);
        }
        if !self.by_ip.contains_key(&ip) {
            Self::room(&mut self.by_ip, self.max_tracked, now, window);
        }
        let q = self.by_ip.entry(ip).or_default();
        let n = push(q, now, window, keep);
        if n >= keep {
            self.by_ip.remove(&ip);
            return true;
        }
        false
    }

    /// Failures from `ip` within `find_time` (since its last ban or success).
    pub fn recent(&self, ip: IpAddr, now: Instant) -> usize {
        self.by_ip.get(&ip.to_canonical()).map_or(0, |q| {
            q.iter()
                .filter(|t| now.saturating_duration_since(**t) < self.find_time)
                .count()
        })
    }

    /// A success from `ip`: its own count starts over.
    pub fn succeed(&mut self, ip: IpAddr) {
        self.by_ip.remove(&ip.to_canonical());
    }

    /// `account` authenticated from `ip`: its count starts over, and the address is exempt from
    /// the account's lock for `remember`.
    pub fn succeed_for(&mut self, ip: IpAddr, account: &str, now: Instant) {
        let ip = ip.to_canonical();
        self.by_ip.remove(&ip);
        if !self.known.contains_key(account) && self.known.len() >= self.max_tracked {
            let remember = self.remember;
            self.known.retain(|_, v| {
                v.retain(|(_, t)| now.saturating_duration_since(*t) < remember);
                !v.is_empty()
            });
            if self.known.len() >= self.max_tracked {
                // Full of live entries: refuse to remember rather than forget someone.
                return;
            }
        }
        let v = self.known.entry(account.to_owned()).or_default();
        if let Some(e) = v.iter_mut().find(|(a, _)| *a == ip) {
            e.1 = now;
            return;
        }
        if v.len() >= KNOWN_PER_ACCOUNT {
            if let Some(oldest) = v
                .iter()
                .enumerate()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(i, _)| i)
            {
                v.swap_remove(oldest);
            }
        }
        v.push((ip, now));
    }

    /// Whether `account` is locked against `ip`: it has had `account_max_retry` failures within
    /// `find_time` and has not authenticated from `ip` within `remember`.
    pub fn account_locked(&self, account: &str, ip: IpAddr, now: Instant) -> bool {
        if self.account_max_retry == 0
            || self.account_failures(account, now) < self.account_max_retry as usize
        {
            return false;
        }
        let ip = ip.to_canonical();
        !self.known.get(account).is_some_and(|v| {
            v.iter()
                .any(|(a, t)| *a == ip && now.saturating_duration_since(*t) < self.remember)
        })
    }

    /// Failures for `account` within the window.
    pub fn account_failures(&self, account: &str, now: Instant) -> usize {
        self.by_account.get(account).map_or(0, |q| {
            q.iter()
                .filter(|t| now.saturating_duration_since(**t) < self.find_time)
                .count()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_counts_within_find_time_only() {
        let t0 = Instant::now();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let mut f = FailureCounter::new(5, Duration::from_secs(60), 100);
        assert_eq!(f.recent(ip, t0), 0);
        f.fail(ip, Some("1001"), t0);
        f.fail(ip, None, t0 + Duration::from_secs(30));
        assert_eq!(f.recent(ip, t0 + Duration::from_secs(31)), 2);
        assert_eq!(
            f.recent(ip, t0 + Duration::from_secs(61)),
            1,
            "the first aged out"
        );
        f.succeed_for(ip, "1001", t0 + Duration::from_secs(62));
        assert_eq!(f.recent(ip, t0 + Duration::from_secs(62)), 0);
    }

    #[test]
    fn max_retry_in_find_time_bans_and_success_resets_only_its_own_source() {
        let t0 = Instant::now();
        let mut f = FailureCounter::new(5, Duration::from_secs(300), 100);
        let a: IpAddr = "127.0.0.66".parse().unwrap();
        let b: IpAddr = "127.0.0.67".parse().unwrap();
        for i in 0..4 {
            assert!(!f.fail(a, Some("1001"), t0 + Duration::from_secs(i)));
            assert!(!f.fail(b, Some("1001"), t0 + Duration::from_secs(i)));
        }
        f.succeed(a);
        assert!(
            !f.fail(a, Some("1001"), t0 + Duration::from_secs(10)),
            "a's count started over"
        );
        assert!(
            f.fail(b, Some("1001"), t0 + Duration::from_secs(10)),
            "b's did not"
        );
        assert_eq!(f.account_failures("1001", t0 + Duration::from_secs(10)), 10);
        // Spread over more than find_time: never five within the window.
        let c: IpAddr = "127.0.0.68".parse().unwrap();
        for i in 0..20 {
            assert!(!f.fail(c, None, t0 + Duration::from_secs(100 * i)));
        }
    }

    #[test]
    fn a_guessing_run_spread_over_many_sources_locks_the_account_but_not_its_own_phone() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut f = FailureCounter::new(5, s(300), 10_000);
        f.set_account_lock(20, s(3600));
        let phone: IpAddr = "127.0.0.2".parse().unwrap();
        f.succeed_for(phone, "1001", t0);
        // 10 sources, 2 guesses each: no source reaches max_retry, the account reaches 20.
        for i in 0..10u8 {
            let ip = IpAddr::from([127, 0, 1, i]);
            assert!(!f.fail(ip, Some("1001"), t0 + s(1)));
            assert!(!f.account_locked("1001", ip, t0 + s(1)));
            assert!(!f.fail(ip, Some("1001"), t0 + s(2)));
        }
        let new_source = IpAddr::from([127, 0, 2, 1]);
        assert!(
            f.account_locked("1001", new_source, t0 + s(3)),
            "locked for strangers"
        );
        assert!(
            !f.account_locked("1001", phone, t0 + s(3)),
            "never for its own phone"
        );
        assert!(
            !f.account_locked("1002", new_source, t0 + s(3)),
            "only that account"
        );
        // The lock lifts when the failures leave the window.
        assert!(!f.account_locked("1001", new_source, t0 + s(303)));
        // A phone not seen within `remember` is a stranger again.
        for i in 0..20u8 {
            f.fail(IpAddr::from([127, 0, 3, i]), Some("1001"), t0 + s(4000));
        }
        assert!(f.account_locked("1001", phone, t0 + s(4000)));
        // Off by default.
        let mut g = FailureCounter::new(5, s(300), 100);
        for i in 0..100u8 {
            g.fail(IpAddr::from([127, 0, 1, i]), Some("1001"), t0);
        }
        assert!(!g.account_locked("1001", new_source, t0));
    }

    #[test]
    fn known_addresses_are_bounded_per_account() {
        let t0 = Instant::now();
        let mut f = FailureCounter::new(5, Duration::from_secs(300), 100);
        f.set_account_lock(1, Duration::from_secs(3600));
        for i in 0..40u8 {
            f.succeed_for(
                IpAddr::from([127, 0, 1, i]),
                "1001",
                t0 + Duration::from_secs(u64::from(i)),
            );
        }
        f.fail(
            IpAddr::from([127, 0, 9, 9]),
            Some("1001"),
            t0 + Duration::from_secs(50),
        );
        let at = t0 + Duration::from_secs(50);
        assert!(
            !f.account_locked("1001", IpAddr::from([127, 0, 1, 39]), at),
            "newest kept"
        );
        assert!(
            f.account_locked("1001", IpAddr::from([127, 0, 1, 0]), at),
            "oldest gave way"
        );
    }
}
