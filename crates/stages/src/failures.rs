//! Failure counting with fail2ban's semantics: `max_retry` failures within `find_time` from
//! one source address means a ban. Failures are also counted per account (for the log and
//! for alerts): a success resets only its own source's count, never another address's.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::normalize;

/// The counters.
#[derive(Debug)]
pub struct FailureCounter {
    max_retry: u32,
    find_time: Duration,
    max_tracked: usize,
    by_ip: HashMap<IpAddr, VecDeque<Instant>>,
    by_account: HashMap<String, VecDeque<Instant>>,
}

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
        }
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
        let ip = normalize(ip);
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

    /// A success from `ip`: its own count starts over.
    pub fn succeed(&mut self, ip: IpAddr) {
        self.by_ip.remove(&normalize(ip));
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
}
