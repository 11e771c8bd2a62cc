//! The counters behind the velocity limits, behind a trait so that a store shared by several
//! gateways can serve them later; [`MemoryCounters`] keeps them in this process.
//!
//! Rates are counted over rolling windows, not calendar ones: a window is cut into
//! [`BUCKETS`] sub-buckets and its total is the sum of the last [`BUCKETS`] of them, so a
//! count forgets its oldest calls gradually (the error is at most one bucket, 1/60 of the
//! window) and there is no midnight or top-of-the-hour cliff an attacker could wait for.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use lru::LruCache;

/// Sub-buckets per rolling window: a count may forget a call up to 1/60 of the window early.
pub const BUCKETS: u64 = 60;

/// Tables bounded at up to this many entries get their index allocated at start, at twice the
/// bound, so that filling up never rehashes every key at once in the call core (as the
/// stages' `LruTable`).
const PRESIZE_UP_TO: usize = 1 << 20;

/// What one counter counts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CounterKey {
    /// The limit's name (its rule without `velocity:`): stable across reloads, so counters
    /// handed to a rebuilt policy still mean the same thing.
    pub limit: String,
    /// Whose calls: a trunk's name, an account's user name, a prefix, or empty (every call).
    pub subject: String,
    /// The dialled number, for limits per number; else empty.
    pub number: String,
    /// Calls or minutes, or the marks that say a warning or a disable was already reported.
    pub tally: Tally,
}

/// What a counter holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tally {
    /// Calls (seconds for minute limits; the calls running, for gauges).
    Count,
    /// Warnings reported in the window: a warning is reported once per crossing, and a count
    /// that hovers at the level does not repeat it within the window.
    Warned,
    /// Disables asked in the window.
    Disabled,
}

/// Rolling windows and gauges. `now` is the caller's (sans-io).
pub trait Counters: Send + fmt::Debug {
    /// Adds `amount` at `now` to the rolling `window` of `key`; the window's total after.
    fn add(&mut self, key: &CounterKey, window: Duration, now: Instant, amount: u64) -> u64;

    /// The total of the rolling `window` of `key` at `now`.
    fn total(&mut self, key: &CounterKey, window: Duration, now: Instant) -> u64;

    /// One more on the gauge of `key` (a call began); its value after, or `None` when there
    /// is no room for a new gauge (then nothing was counted, and `dec` must not be asked).
    fn inc(&mut self, key: &CounterKey) -> Option<u64>;

    /// One less on the gauge of `key` (a call ended); never below zero, and a gauge at zero
    /// leaves the table. Its value after.
    fn dec(&mut self, key: &CounterKey) -> u64;

    /// The gauge of `key`.
    fn gauge(&self, key: &CounterKey) -> u64;

    /// Entries held (windows and gauges), for the metric.
    fn len(&self) -> usize;

    /// Whether no entry is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Live entries given up (evicted, or not kept for want of room), for the metric.
    fn evictions(&self) -> u64;

    /// A new bound on entries (a reload); a shared store may keep its own.
    fn set_bound(&mut self, _entries: usize) {}
}

/// One rolling window: the non-empty buckets only (calls to one number fill one or two), so a
/// window costs what it holds.
#[derive(Debug, Default)]
struct Window {
    /// (bucket number, count), oldest first, at most [`BUCKETS`] of them.
    buckets: VecDeque<(u64, u64)>,
    total: u64,
    /// When the last addition leaves the window: dead (holding nothing) from then on.
    until: Option<Instant>,
}

impl Window {
    /// Forgets the buckets that left the window by bucket `current`.
    fn expire(&mut self, current: u64) {
        while let Some(&(b, n)) = self.buckets.front() {
            if b.saturating_add(BUCKETS) > current {
                break;
            }
            self.buckets.pop_front();
            self.total = self.total.saturating_sub(n);
        }
    }

    fn add(&mut self, current: u64, amount: u64) {
        self.expire(current);
        match self.buckets.back_mut() {
            // A `now` older than the last one (never from a monotonic clock) counts in the
            // newest bucket: the buckets stay in order.
            Some((b, n)) if *b >= current => *n = n.saturating_add(amount),
            _ => self.buckets.push_back((current, amount)),
        }
        self.total = self.total.saturating_add(amount);
    }

    fn dead(&self, now: Instant) -> bool {
        self.until.is_none_or(|u| now >= u)
    }
}

/// Counters in this process, at most `bound` entries. Windows past their end leave first
/// (uncounted); then, when the table is full, the least recently used window gives way
/// (counted). Gauges of running calls are never evicted: they are bounded by the
/// configuration (a gauge per limit and trunk or account), and evicting one would let a trunk
/// run more calls than its limit. When the table holds nothing but gauges, a new entry is not
/// kept, and that is counted too.
#[derive(Debug)]
pub struct MemoryCounters {
    windows: LruCache<CounterKey, Window>,
    gauges: HashMap<CounterKey, u64>,
    bound: usize,
    evicted: u64,
    /// Bucket numbers count from here (the first `now` seen).
    base: Option<Instant>,
    /// The latest `now` seen: gauges, which come without one, make room by it.
    latest: Option<Instant>,
}

fn cache(bound: usize) -> LruCache<CounterKey, Window> {
    match NonZeroUsize::new(bound.saturating_mul(2)) {
        Some(room) if room.get() <= PRESIZE_UP_TO => LruCache::new(room),
        _ => LruCache::unbounded(),
    }
}

impl MemoryCounters {
    /// Empty, for at most `bound` entries (at least one).
    pub fn new(bound: usize) -> Self {
        let bound = bound.max(1);
        Self {
            windows: cache(bound),
            gauges: HashMap::new(),
            bound,
            evicted: 0,
            base: None,
            latest: None,
        }
    }

    /// The bucket `now` falls in, for windows of `window`: exact integer arithmetic on
    /// nanoseconds, so a second's 60 buckets are as true as an hour's.
    fn bucket(&mut self, now: Instant, window: Duration) -> u64 {
        let base = *self.base.get_or_insert(now);
        self.latest = Some(self.latest.map_or(now, |l| l.max(now)));
        let since = now.saturating_duration_since(base).as_nanos();
        let b = since.saturating_mul(u128::from(BUCKETS)) / window.as_nanos().max(1);
        u64::try_from(b).unwrap_or(u64::MAX)
    }

    /// Room for one more entry: dead windows leave from the least recently used end, then the
    /// least recently used live window if still full. False when only gauges are left.
    fn make_room(&mut self, now: Option<Instant>) -> bool {
        if let Some(now) = now {
            while self.windows.peek_lru().is_some_and(|(_, w)| w.dead(now)) {
                self.windows.pop_lru();
            }
        }
        while self.len() >= self.bound {
            if self.windows.pop_lru().is_none() {
                return false;
            }
            self.evicted += 1;
        }
        true
    }
}

impl Counters for MemoryCounters {
    fn add(&mut self, key: &CounterKey, window: Duration, now: Instant, amount: u64) -> u64 {
        let current = self.bucket(now, window);
        if !self.windows.contains(key) && !self.make_room(Some(now)) {
            self.evicted += 1;
            return amount;
        }
        let w = self.windows.get_or_insert_mut_ref(key, Window::default);
        w.add(current, amount);
        w.until = now.checked_add(window).or(w.until);
        w.total
    }

    fn total(&mut self, key: &CounterKey, window: Duration, now: Instant) -> u64 {
        let current = self.bucket(now, window);
        self.windows.get_mut(key).map_or(0, |w| {
            w.expire(current);
            w.total
        })
    }

    fn inc(&mut self, key: &CounterKey) -> Option<u64> {
        if let Some(n) = self.gauges.get_mut(key) {
            *n = n.saturating_add(1);
            return Some(*n);
        }
        if !self.make_room(self.latest) {
            self.evicted += 1;
            return None;
        }
        self.gauges.insert(key.clone(), 1);
        Some(1)
    }

    fn dec(&mut self, key: &CounterKey) -> u64 {
        let Some(n) = self.gauges.get_mut(key) else {
            return 0;
        };
        *n = n.saturating_sub(1);
        let left = *n;
        if left == 0 {
            self.gauges.remove(key);
        }
        left
    }

    fn gauge(&self, key: &CounterKey) -> u64 {
        self.gauges.get(key).copied().unwrap_or(0)
    }

    fn len(&self) -> usize {
        self.windows.len() + self.gauges.len()
    }

    fn evictions(&self) -> u64 {
        self.evicted
    }

    fn set_bound(&mut self, entries: usize) {
        let bound = entries.max(1);
        while self.len() > bound && self.windows.pop_lru().is_some() {
            self.evicted += 1;
        }
        if self.windows.cap().get() < bound {
            self.windows
                .resize(NonZeroUsize::new(bound.saturating_mul(2)).unwrap_or(NonZeroUsize::MIN));
        }
        self.bound = bound;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: &str) -> CounterKey {
        CounterKey {
            limit: "l".into(),
            subject: n.into(),
            number: String::new(),
            tally: Tally::Count,
        }
    }

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn a_window_forgets_gradually_not_at_a_cliff() {
        let t0 = Instant::now();
        let mut c = MemoryCounters::new(10);
        let k = key("a");
        let min = Duration::from_secs(60);
        // One call a second for two minutes: the total climbs to 60 and stays there, across
        // every minute boundary.
        for s in 0..120u64 {
            let n = c.add(&k, min, t0 + SEC * u32::try_from(s).unwrap(), 1);
            assert_eq!(n, (s + 1).min(60), "at {s}s");
        }
        // At 150 s the window holds the calls of 91 s to 119 s.
        assert_eq!(c.total(&k, min, t0 + Duration::from_secs(150)), 29);
        assert_eq!(c.total(&k, min, t0 + Duration::from_secs(180)), 0);
    }

    #[test]
    fn gauges_never_go_below_zero_and_leave_at_zero() {
        let mut c = MemoryCounters::new(10);
        let k = key("a");
        assert_eq!(c.dec(&k), 0);
        assert_eq!(c.inc(&k), Some(1));
        assert_eq!(c.inc(&k), Some(2));
        assert_eq!((c.dec(&k), c.dec(&k), c.dec(&k)), (1, 0, 0));
        assert_eq!((c.gauge(&k), c.len()), (0, 0));
    }

    #[test]
    fn full_tables_evict_dead_then_old_windows_never_gauges() {
        let t0 = Instant::now();
        let mut c = MemoryCounters::new(3);
        c.inc(&key("g"));
        c.add(&key("a"), SEC, t0, 1);
        c.add(&key("b"), SEC, t0 + SEC / 2, 1);
        // "a" is dead at t0+1s: it leaves uncounted.
        c.add(&key("c"), SEC, t0 + SEC, 1);
        assert_eq!((c.len(), c.evictions()), (3, 0));
        // Nothing dead: the least recently used live window ("b") gives way, counted.
        c.add(&key("d"), SEC, t0 + SEC, 1);
        assert_eq!((c.len(), c.evictions()), (3, 1));
        assert_eq!(c.total(&key("b"), SEC, t0 + SEC), 0);
        assert_eq!(c.gauge(&key("g")), 1, "the gauge stays");
        // Gauges take the windows' room; with only gauges left a new one is not kept.
        assert_eq!(c.inc(&key("h")), Some(1));
        assert_eq!(c.inc(&key("i")), Some(1));
        assert_eq!(c.inc(&key("j")), None);
        assert_eq!(
            c.add(&key("e"), SEC, t0 + SEC, 4),
            4,
            "counted once, not kept"
        );
        assert_eq!(c.len(), 3);
        assert_eq!(c.evictions(), 5);
    }

    #[test]
    fn a_lowered_bound_evicts_windows_down_to_it() {
        let t0 = Instant::now();
        let mut c = MemoryCounters::new(10);
        for k in ["a", "b", "c", "d"] {
            c.add(&key(k), SEC, t0, 1);
        }
        c.set_bound(2);
        assert_eq!((c.len(), c.evictions()), (2, 2));
        c.set_bound(5000);
        for i in 0..5000 {
            c.add(&key(&i.to_string()), SEC, t0, 1);
        }
        assert_eq!(c.len(), 5000, "a raised bound is the cache's too");
    }
}
