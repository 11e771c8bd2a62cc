//! Failure counting with fail2ban's semantics: `max_retry` failures within `find_time` from
//! one source address means a ban. A success resets only its own source's count, never
//! another address's.
//!
//! Failures are also counted per account, whatever their source, against a guessing run spread
//! over many addresses (each staying under `max_retry`): at `account_max_retry` failures within
//! `find_time` the account is *locked* — but only against addresses it has not authenticated
//! from lately. So an attacker cannot lock a user's own phones out, and a botnet gets at most
//! `account_max_retry` guesses per `find_time` per account.
//!
//! Every table here is bounded ([`LruTable`]): addresses and accounts by `max_tracked` each,
//! the addresses each account is known from by `known_per_account`. When one is full the least
//! recently used entry gives way — a counter is used when its address (or account) fails, an
//! account's known addresses when it authenticates — after the entries that have expired, so a
//! flood of new addresses cannot wipe the count of one that keeps failing.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::table::{LruTable, TableStats};

/// The counters.
#[derive(Debug)]
pub struct FailureCounter {
    max_retry: u32,
    find_time: Duration,
    /// Failure times per address (at most `max_retry`, the newest).
    by_ip: LruTable<IpAddr, VecDeque<Instant>>,
    /// Failure times per account (at most `account_max_retry`, the newest).
    by_account: LruTable<String, VecDeque<Instant>>,
    /// 0: accounts are never locked.
    account_max_retry: u32,
    /// How long an address an account authenticated from stays exempt from its lock.
    remember: Duration,
    /// Addresses each account authenticated from, with the last time (at most
    /// `known_per_account` each).
    known: LruTable<String, Vec<(IpAddr, Instant)>>,
    known_per_account: usize,
    /// Known addresses, still within `remember`, that gave way in a full list.
    known_evicted: u64,
}

/// The counters' tables, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FailureStats {
    /// Failure counts per address.
    pub by_ip: TableStats,
    /// Failure counts per account.
    pub by_account: TableStats,
    /// Accounts whose own addresses are remembered.
    pub known_accounts: TableStats,
    /// Addresses that gave way in an account's full list of known addresses.
    pub known_addresses_evicted: u64,
}

/// Addresses remembered per account by default: a few phones, a laptop, a mobile's changing
/// addresses (`[ban] account_known_addresses`).
const KNOWN_PER_ACCOUNT: usize = 16;

/// Failures kept per account whatever `account_max_retry` says: the memory a flood of
/// failures for one account may take.
const MOST_PER_ACCOUNT: usize = 1024;

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

/// A count whose last failure left the window: dropping it loses nothing.
fn spent(q: &VecDeque<Instant>, now: Instant, window: Duration) -> bool {
    q.back()
        .is_none_or(|t| now.saturating_duration_since(*t) >= window)
}

impl FailureCounter {
    /// Counters for `max_retry` failures in `find_time`, tracking at most `max_tracked`
    /// addresses and as many accounts.
    pub fn new(max_retry: u32, find_time: Duration, max_tracked: usize) -> Self {
        Self {
            max_retry: max_retry.max(1),
            find_time,
            by_ip: LruTable::new(max_tracked),
            by_account: LruTable::new(max_tracked),
            account_max_retry: 0,
            remember: Duration::from_secs(7 * 24 * 3600),
            known: LruTable::new(max_tracked),
            known_per_account: KNOWN_PER_ACCOUNT,
            known_evicted: 0,
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

    /// New bounds (start, or a reload): `max_tracked` addresses and as many accounts,
    /// `known_per_account` addresses remembered per account. Lower ones evict the least
    /// recently used down to them.
    pub fn set_bounds(&mut self, max_tracked: usize, known_per_account: usize) {
        self.by_ip.set_cap(max_tracked);
        self.by_account.set_cap(max_tracked);
        self.known.set_cap(max_tracked);
        self.known_per_account = known_per_account.max(1);
        let keep = self.known_per_account;
        for v in self.known.values_mut() {
            if v.len() > keep {
                v.sort_unstable_by_key(|(_, t)| std::cmp::Reverse(*t));
                self.known_evicted += (v.len() - keep) as u64;
                v.truncate(keep);
            }
        }
    }

    /// The tables' sizes and evictions.
    pub fn stats(&self) -> FailureStats {
        FailureStats {
            by_ip: self.by_ip.stats(),
            by_account: self.by_account.stats(),
            known_accounts: self.known.stats(),
            known_addresses_evicted: self.known_evicted,
        }
    }

    /// Counts a failure; `true` when the source has reached `max_retry` (ban it). The
    /// source's count restarts after a ban.
    pub fn fail(&mut self, ip: IpAddr, account: Option<&str>, now: Instant) -> bool {
        let ip = ip.to_canonical();
        let (keep, window) = (self.max_retry as usize, self.find_time);
        let spent = |q: &VecDeque<Instant>| spent(q, now, window);
        // Only as many as can lock the account are kept (none when locking is off).
        let account_keep = (self.account_max_retry as usize).min(MOST_PER_ACCOUNT);
        if let Some(a) = account.filter(|a| !a.is_empty() && account_keep > 0) {
            let q = self.by_account.entry(a, VecDeque::new, spent);
            push(q, now, window, account_keep);
        }
        let q = self.by_ip.entry(&ip, VecDeque::new, spent);
        let n = push(q, now, window, keep);
        if n >= keep {
            self.by_ip.remove(&ip);
            return true;
        }
        false
    }

    /// Failures from `ip` within `find_time` (since its last ban or success).
    pub fn recent(&self, ip: IpAddr, now: Instant) -> usize {
        self.by_ip.peek(&ip.to_canonical()).map_or(0, |q| {
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
        let remember = self.remember;
        let fresh = |t: &Instant| now.saturating_duration_since(*t) < remember;
        let v = self
            .known
            .entry(account, Vec::new, |v: &Vec<(IpAddr, Instant)>| {
                !v.iter().any(|(_, t)| fresh(t))
            });
        if let Some(e) = v.iter_mut().find(|(a, _)| *a == ip) {
            e.1 = now;
            return;
        }
        if v.len() >= self.known_per_account {
            v.retain(|(_, t)| fresh(t));
        }
        if v.len() >= self.known_per_account {
            // The address the account authenticated from least recently gives way.
            if let Some(oldest) = v
                .iter()
                .enumerate()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(i, _)| i)
            {
                v.swap_remove(oldest);
                self.known_evicted += 1;
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
        !self.known.peek(account).is_some_and(|v| {
            v.iter()
                .any(|(a, t)| *a == ip && now.saturating_duration_since(*t) < self.remember)
        })
    }

    /// Failures for `account` within the window (counted up to `account_max_retry`: what
    /// locks it).
    pub fn account_failures(&self, account: &str, now: Instant) -> usize {
        self.by_account.peek(account).map_or(0, |q| {
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
        f.set_account_lock(20, Duration::from_secs(3600));
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

    fn flood(i: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i))
    }

    /// The table overflows many times over between two failures of the one address that
    /// keeps failing; its count survives (it is the most recently used) and it is banned at
    /// max_retry. Clearing the table whole would have lost it.
    #[test]
    fn a_source_that_keeps_failing_is_banned_while_a_flood_overflows_the_table() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut f = FailureCounter::new(5, s(300), 100);
        let attacker = IpAddr::from([192, 0, 2, 66]);
        let mut n = 0;
        for round in 0..4 {
            assert!(!f.fail(attacker, None, t0 + s(round)));
            for _ in 0..60 {
                f.fail(flood(n), None, t0 + s(round));
                n += 1;
                assert!(f.stats().by_ip.len <= 100);
            }
        }
        assert_eq!(f.recent(attacker, t0 + s(4)), 4);
        assert!(
            f.fail(attacker, None, t0 + s(4)),
            "banned at the fifth failure"
        );
        assert_eq!(
            f.recent(flood(0), t0 + s(4)),
            0,
            "the least recently failed gave way"
        );
        assert_eq!(f.recent(flood(n - 1), t0 + s(4)), 1, "a recent one stayed");
        // 241 addresses went in, 100 fit: 141 evicted, each counted.
        assert_eq!(f.stats().by_ip.evicted, 141);
    }

    #[test]
    fn spent_counts_leave_first_and_uncounted() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut f = FailureCounter::new(5, s(300), 3);
        for i in 0..3 {
            f.fail(flood(i), None, t0 + s(u64::from(i)));
        }
        // Two of the three have left the window; the third is still counted.
        f.fail(flood(9), None, t0 + s(301));
        assert_eq!(f.stats().by_ip, TableStats { len: 2, evicted: 0 });
        assert_eq!(f.recent(flood(2), t0 + s(301)), 1);
    }

    /// A guessing run on one account, spread over addresses, between failures for thousands
    /// of made-up names: the account's count survives and locks it.
    #[test]
    fn a_guessed_account_locks_while_a_flood_of_names_overflows_the_table() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut f = FailureCounter::new(5, s(300), 50);
        f.set_account_lock(10, s(3600));
        let stranger = IpAddr::from([192, 0, 2, 1]);
        let mut n = 0;
        for guess in 0..10 {
            assert!(!f.account_locked("1001", stranger, t0 + s(guess)));
            f.fail(flood(100_000 + n), Some("1001"), t0 + s(guess));
            for _ in 0..30 {
                f.fail(flood(n), Some(&format!("u{n}")), t0 + s(guess));
                n += 1;
                assert!(f.stats().by_account.len <= 50);
            }
        }
        assert!(f.account_locked("1001", stranger, t0 + s(10)));
        assert_eq!(f.account_failures("u0", t0 + s(10)), 0, "gave way");
        assert_eq!(f.account_failures(&format!("u{}", n - 1), t0 + s(10)), 1);
        // 301 names went in, 50 fit.
        assert_eq!(f.stats().by_account.evicted, 251);
    }

    /// Accounts that authenticated lately keep their known addresses while many others
    /// overflow the table; the least recently authenticated account is the one forgotten.
    #[test]
    fn accounts_known_lately_keep_their_addresses_when_the_table_overflows() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut f = FailureCounter::new(5, s(300), 10);
        f.set_account_lock(1, s(3600));
        let phone = IpAddr::from([192, 0, 2, 10]);
        f.succeed_for(phone, "1001", t0);
        for i in 0..40u32 {
            if i % 5 == 0 {
                f.succeed_for(phone, "1001", t0 + s(u64::from(i)));
            }
            f.succeed_for(flood(i), &format!("a{i}"), t0 + s(u64::from(i)));
            assert!(f.stats().known_accounts.len <= 10);
        }
        let at = t0 + s(50);
        f.fail(flood(1000), Some("1001"), at);
        f.fail(flood(1001), Some("a0"), at);
        f.fail(flood(1002), Some("a39"), at);
        assert!(!f.account_locked("1001", phone, at), "still its own phone");
        assert!(
            f.account_locked("a0", flood(0), at),
            "forgotten: a stranger now"
        );
        assert!(!f.account_locked("a39", flood(39), at));
        // 41 accounts went in, 10 fit.
        assert_eq!(f.stats().known_accounts.evicted, 31);
    }

    #[test]
    fn known_addresses_are_bounded_per_account() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut f = FailureCounter::new(5, s(300), 100);
        f.set_bounds(100, 8);
        f.set_account_lock(1, s(3600));
        let home = IpAddr::from([127, 0, 1, 0]);
        for i in 0..40u8 {
            if i % 4 == 0 {
                f.succeed_for(home, "1001", t0 + s(u64::from(i)));
            }
            f.succeed_for(IpAddr::from([127, 0, 2, i]), "1001", t0 + s(u64::from(i)));
        }
        let at = t0 + s(50);
        f.fail(IpAddr::from([127, 0, 9, 9]), Some("1001"), at);
        assert!(
            !f.account_locked("1001", IpAddr::from([127, 0, 2, 39]), at),
            "newest kept"
        );
        assert!(!f.account_locked("1001", home, at), "used lately, kept");
        assert!(
            f.account_locked("1001", IpAddr::from([127, 0, 2, 0]), at),
            "oldest gave way"
        );
        // 41 addresses, 8 fit.
        assert_eq!(f.stats().known_addresses_evicted, 33);
    }

    #[test]
    fn lowered_bounds_evict_the_least_recently_used_down_to_them() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut f = FailureCounter::new(5, s(300), 100);
        f.set_account_lock(1, s(3600));
        for i in 0..20 {
            f.fail(flood(i), None, t0 + s(u64::from(i)));
        }
        f.fail(flood(0), None, t0 + s(20));
        for i in 0..4u8 {
            f.succeed_for(IpAddr::from([127, 0, 2, i]), "1001", t0 + s(u64::from(i)));
        }
        f.set_bounds(5, 2);
        let st = f.stats();
        assert_eq!(
            st.by_ip,
            TableStats {
                len: 5,
                evicted: 15
            }
        );
        assert_eq!(f.recent(flood(0), t0 + s(21)), 2, "used last, kept");
        assert_eq!(f.recent(flood(1), t0 + s(21)), 0);
        assert_eq!(st.known_addresses_evicted, 2);
        let at = t0 + s(30);
        f.fail(flood(99), Some("1001"), at);
        assert!(!f.account_locked("1001", IpAddr::from([127, 0, 2, 3]), at));
        assert!(f.account_locked("1001", IpAddr::from([127, 0, 2, 0]), at));
    }
}
