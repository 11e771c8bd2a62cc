//! A bounded table whose least recently used entry gives way, for the stages' state keyed by
//! what an attacker chooses (addresses, account names, nonces).
//!
//! Before a new key comes in, entries its owner calls *dead* (expired: dropping them loses
//! nothing) leave from the least recently used end; then, if the table is still full, the
//! least recently used live entry is evicted and counted. The owner says what a use is:
//! [`LruTable::get_mut`] and [`LruTable::entry`] are uses (the entry becomes the most recently
//! used), [`LruTable::peek`] is only a look. Every operation is O(1) — dropping dead entries is
//! amortised, each leaves once — so a flood of new keys costs each insert the same, full or
//! not, and never clears the table whole.
//!
//! Dead entries are found only at the least recently used end, which is where they are when
//! an entry dies some time after its last use (the tables here all work so).

use std::borrow::Borrow;
use std::hash::Hash;
use std::num::NonZeroUsize;

use lru::LruCache;

/// Tables bounded at up to this many entries get their whole index allocated at start, at
/// twice the bound. Grown by doubling instead, a table rehashed every key at each step: under
/// a REGISTER load at 22,000/s the nonce table's step at 114,688 entries, five seconds in,
/// was a stall of tens of milliseconds in the call core, and the 200s queued behind it. And a
/// full table that evicts one entry per insert leaves deleted slots behind; when they use up
/// the free ones, the index is rehashed in place, every key again: twice the bound makes
/// that several times rarer. The index costs about 17 bytes a slot: on the built-in bounds
/// (nonces 200,000, four tables of 100,000) the gateway starts 13.5–16.5 MB larger. Larger
/// bounds (configured on purpose, up to ten million) still grow as they fill.
const PRESIZE_UP_TO: usize = 1 << 20;

/// The cache behind a table of `cap` entries. Its own bound is at least `cap`, and the
/// table makes room before every insert, so the cache never evicts on its own (uncounted).
fn cache<K: Hash + Eq, V>(cap: usize) -> LruCache<K, V> {
    let n = NonZeroUsize::new(cap).unwrap_or(NonZeroUsize::MIN);
    match NonZeroUsize::new(cap.saturating_mul(2)) {
        Some(room) if room.get() <= PRESIZE_UP_TO => LruCache::new(room),
        _ => LruCache::sparse(n),
    }
}

/// A table's size and how many live entries it gave up, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Entries held.
    pub len: usize,
    /// Live entries evicted since start, to make room or to meet a lowered bound.
    pub evicted: u64,
}

/// At most `cap` entries, the least recently used giving way.
#[derive(Debug)]
pub struct LruTable<K: Hash + Eq, V> {
    map: LruCache<K, V>,
    cap: usize,
    evicted: u64,
}

impl<K: Hash + Eq, V> LruTable<K, V> {
    /// An empty table for at most `cap` entries (at least one), its index allocated ahead
    /// (see `PRESIZE_UP_TO`).
    pub fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        Self {
            // The table evicts before the cache would, so that every eviction is counted.
            map: cache(cap),
            cap,
            evicted: 0,
        }
    }

    /// The bound.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// A new bound (a reload). A lower one evicts the least recently used down to it (dead
    /// entries, at that end, go first).
    pub fn set_cap(&mut self, cap: usize) {
        let cap = cap.max(1);
        while self.map.len() > cap && self.map.pop_lru().is_some() {
            self.evicted += 1;
        }
        if cap != self.cap {
            // Rebuilt at the new size, oldest first so the order stays (a reload: rare).
            let mut map = cache(cap);
            while let Some((k, v)) = self.map.pop_lru() {
                map.push(k, v);
            }
            self.map = map;
        }
        self.cap = cap;
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Size and evictions.
    pub fn stats(&self) -> TableStats {
        TableStats {
            len: self.map.len(),
            evicted: self.evicted,
        }
    }

    /// The entry for `k`, without counting it as a use.
    pub fn peek<Q>(&self, k: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.peek(k)
    }

    /// The entry for `k`, used: it becomes the most recently used.
    pub fn get_mut<Q>(&mut self, k: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get_mut(k)
    }

    /// Whether `k` is held (not a use).
    pub fn contains<Q>(&self, k: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.contains(k)
    }

    /// Removes `k`.
    pub fn remove<Q>(&mut self, k: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.pop(k)
    }

    /// The entry for `k`, used; when absent, room is made (see the module) and `make`'s value
    /// goes in under an owned copy of `k`.
    pub fn entry<Q>(&mut self, k: &Q, make: impl FnOnce() -> V, dead: impl Fn(&V) -> bool) -> &mut V
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized + ToOwned<Owned = K>,
    {
        if !self.map.contains(k) {
            self.make_room(&dead);
        }
        self.map.get_or_insert_mut_ref(k, make)
    }

    /// Every entry, in no particular order, without counting a use (for a reload's changes).
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.map.iter_mut().map(|(_, v)| v)
    }

    /// Drops dead entries from the least recently used end.
    pub fn drop_dead(&mut self, dead: impl Fn(&V) -> bool) {
        while self.map.peek_lru().is_some_and(|(_, v)| dead(v)) {
            self.map.pop_lru();
        }
    }

    /// Room for one more: dead entries go, then the least recently used if still full.
    fn make_room(&mut self, dead: impl Fn(&V) -> bool) {
        self.drop_dead(dead);
        if self.map.len() >= self.cap && self.map.pop_lru().is_some() {
            self.evicted += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never(_: &u32) -> bool {
        false
    }

    #[test]
    fn the_least_recently_used_gives_way_and_is_counted() {
        let mut t: LruTable<u32, u32> = LruTable::new(3);
        for k in 0..3 {
            *t.entry(&k, || 0, never) += 1;
        }
        // 0 is used again, 1 only looked at: 1 is now the least recently used.
        *t.get_mut(&0).unwrap() += 1;
        assert_eq!(t.peek(&1), Some(&1));
        t.entry(&3, || 0, never);
        assert_eq!(t.len(), 3);
        assert!(!t.contains(&1), "the least recently used gave way");
        assert_eq!(t.peek(&0), Some(&2), "the one used a moment ago stayed");
        assert_eq!(t.stats(), TableStats { len: 3, evicted: 1 });
        for k in 10..1000 {
            t.entry(&k, || 0, never);
            assert!(t.len() <= 3);
        }
        assert_eq!(t.stats().evicted, 1 + 990);
    }

    #[test]
    fn dead_entries_go_first_and_uncounted() {
        // Values are the time of last use; dead when older than 10 at time 100.
        let mut t: LruTable<u32, u32> = LruTable::new(3);
        t.entry(&1, || 50, |_| false);
        t.entry(&2, || 60, |_| false);
        t.entry(&3, || 95, |_| false);
        let dead = |v: &u32| *v < 90;
        t.entry(&4, || 100, dead);
        assert_eq!(t.len(), 2, "both dead entries left, not just one");
        assert!(t.contains(&3) && t.contains(&4));
        assert_eq!(t.stats().evicted, 0, "dropping the dead loses nothing");
    }

    #[test]
    fn a_lowered_bound_evicts_the_least_recently_used_down_to_it() {
        let mut t: LruTable<u32, u32> = LruTable::new(10);
        for k in 0..10 {
            t.entry(&k, || k, never);
        }
        t.get_mut(&0);
        t.set_cap(4);
        assert_eq!(t.len(), 4);
        assert!(t.contains(&0) && t.contains(&9) && t.contains(&8) && t.contains(&7));
        assert_eq!(t.stats().evicted, 6);
        t.set_cap(0);
        assert_eq!((t.cap(), t.len()), (1, 1), "never below one");
    }

    /// A raised bound holds as many entries as it says, every one counted: the cache inside
    /// is rebuilt at the new size, so it never evicts on its own.
    #[test]
    fn a_raised_bound_is_the_caches_bound_too() {
        let mut t: LruTable<u32, u32> = LruTable::new(4);
        for k in 0..4 {
            t.entry(&k, || k, never);
        }
        t.get_mut(&0);
        t.set_cap(100);
        for k in 4..100 {
            t.entry(&k, || k, never);
        }
        assert_eq!(t.len(), 100);
        assert_eq!(t.stats().evicted, 0, "nothing lost under the raised bound");
        // The order came over: 1 is the least recently used, 0 was used after 3.
        t.entry(&100, || 100, never);
        assert!(!t.contains(&1) && t.contains(&0));
        assert_eq!(t.stats().evicted, 1);
    }
}
