//! The ban table: who is banned, why, since when, until when, and how often before.
//!
//! A ban ends at its expiry, but the offender is remembered for a while (`remember`) so that
//! a repeat offence is banned longer: `ban_time × escalate^(count−1)`, at most
//! `max_ban_time`. The table holds at most `max_entries` addresses; when full, forgotten-soon
//! history goes first, then the least offending, oldest bans — so a flood from many
//! addresses cannot grow memory without bound, and cannot push out the worst offenders
//! first. The victim is the first of an ordered index, so a flood of new bans into a full
//! table costs each one O(log n), never a scan. Networks in `never` (the PBX, the trunks, an
//! operator's allowlist) are never banned.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::Duration;
use std::time::Instant;

use ipnet::IpNet;

/// How bans behave.
#[derive(Clone, Debug, PartialEq)]
pub struct BanSettings {
    /// First ban's length.
    pub ban_time: Duration,
    /// Each repeat multiplies the length by this (1.0: no escalation).
    pub escalate: f64,
    /// Longest ban.
    pub max_ban_time: Duration,
    /// How long an offender is remembered after its ban ends (for escalation).
    pub remember: Duration,
    /// Most addresses held (banned or remembered).
    pub max_entries: usize,
    /// Never banned.
    pub never: Vec<IpNet>,
}

impl Default for BanSettings {
    fn default() -> Self {
        Self {
            ban_time: Duration::from_secs(3600),
            escalate: 2.0,
            max_ban_time: Duration::from_secs(7 * 24 * 3600),
            remember: Duration::from_secs(7 * 24 * 3600),
            max_entries: 100_000,
            never: Vec::new(),
        }
    }
}

/// One address in the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BanEntry {
    /// The address (IPv4-mapped IPv6 normalised to IPv4).
    pub ip: IpAddr,
    /// Why it was (last) banned.
    pub reason: String,
    /// When the current or last ban started.
    pub since: Instant,
    /// When it ends (in the past for a remembered offender).
    pub until: Instant,
    /// How many times it has been banned.
    pub count: u32,
}

impl BanEntry {
    /// Whether the ban holds at `now`.
    pub fn active(&self, now: Instant) -> bool {
        now < self.until
    }
}

/// A change, for the durable store, the kernel set and the event log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BanChange {
    /// Banned (or banned again, longer).
    Banned(BanEntry),
    /// The ban ended or was lifted; the entry may stay as history.
    Unbanned {
        /// The address.
        ip: IpAddr,
        /// Lifted by an operator (true) or expired (false).
        lifted: bool,
    },
    /// No longer remembered: the store may drop it.
    Forgotten(IpAddr),
}

/// The order in which entries give way in a full table, least valuable first: remembered
/// offenders by when their ban ended (so the one forgotten soonest), then bans in force by
/// offences, then by age.
type Rank = (bool, u32, Instant, IpAddr);

/// Where an entry stands in the eviction order: in force (`true`, as of the last
/// [`BanTable::expire`]) or remembered.
fn rank(e: &BanEntry, in_force: bool) -> Rank {
    if in_force {
        (true, e.count, e.since, e.ip)
    } else {
        (false, 0, e.until, e.ip)
    }
}

/// The table.
#[derive(Debug)]
pub struct BanTable {
    settings: BanSettings,
    entries: HashMap<IpAddr, BanEntry>,
    /// (next moment something happens to the entry, ip): its ban ends, or it is forgotten.
    timeline: BTreeSet<(Instant, IpAddr)>,
    /// Every entry's [`rank`]; its first gives way when the table is full.
    ranks: BTreeSet<Rank>,
    changes: Vec<BanChange>,
    /// Bans in force (kept as entries come and go, so reading it costs nothing).
    active: usize,
    /// Entries that gave way to a full table (or a lowered bound) since start.
    evicted: u64,
}

impl BanTable {
    /// An empty table.
    pub fn new(settings: BanSettings) -> Self {
        Self {
            settings,
            entries: HashMap::new(),
            timeline: BTreeSet::new(),
            ranks: BTreeSet::new(),
            changes: Vec::new(),
            active: 0,
            evicted: 0,
        }
    }

    /// New settings (a reload); bans in force keep their expiry. Remembered offenders are
    /// forgotten on the new `remember`; a lower `max_entries` evicts down to it, in the
    /// order a full table does.
    pub fn set_settings(&mut self, settings: BanSettings) {
        let (old, new) = (self.settings.remember, settings.remember);
        if old != new {
            for &(_, _, until, ip) in self.ranks.iter().take_while(|r| !r.0) {
                if self.timeline.remove(&(until + old, ip)) {
                    self.timeline.insert((until + new, ip));
                }
            }
        }
        self.settings = settings;
        while self.entries.len() > self.settings.max_entries.max(1) && self.evict() {}
    }

    /// Entries that gave way to a full table (or a lowered bound) since start.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// The settings.
    pub fn settings(&self) -> &BanSettings {
        &self.settings
    }

    /// Whether `ip` may never be banned.
    pub fn exempt(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.settings.never.iter().any(|n| n.contains(&ip))
    }

    /// Whether `ip` is banned at `now`: one hash lookup.
    pub fn is_banned(&self, ip: IpAddr, now: Instant) -> bool {
        self.entries
            .get(&ip.to_canonical())
            .is_some_and(|e| e.active(now))
    }

    /// The entry for `ip`, banned or remembered.
    pub fn get(&self, ip: IpAddr) -> Option<&BanEntry> {
        self.entries.get(&ip.to_canonical())
    }

    /// Bans in force at `now`.
    pub fn active(&self, now: Instant) -> impl Iterator<Item = &BanEntry> {
        self.entries.values().filter(move |e| e.active(now))
    }

    /// Bans in force (as of the last [`BanTable::expire`]).
    pub fn active_count(&self) -> usize {
        self.active
    }

    /// Addresses held, banned or remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// When [`BanTable::expire`] next has something to do.
    pub fn next_event(&self) -> Option<Instant> {
        self.timeline.first().map(|t| t.0)
    }

    /// Changes since the last call.
    pub fn take_changes(&mut self) -> Vec<BanChange> {
        std::mem::take(&mut self.changes)
    }

    fn length_for(&self, count: u32) -> Duration {
        let s = &self.settings;
        let factor = s
            .escalate
            .max(1.0)
            .powi(count.saturating_sub(1).min(64) as i32);
        let secs = (s.ban_time.as_secs_f64() * factor).min(s.max_ban_time.as_secs_f64());
        Duration::try_from_secs_f64(secs).unwrap_or(s.max_ban_time)
    }

    fn next_moment(&self, e: &BanEntry) -> Instant {
        e.until + self.settings.remember
    }

    /// Files an entry in the timeline and the eviction order.
    fn link(&mut self, e: &BanEntry, in_force: bool) {
        let at = if in_force {
            e.until
        } else {
            self.next_moment(e)
        };
        self.timeline.insert((at, e.ip));
        self.ranks.insert(rank(e, in_force));
    }

    /// Takes an entry out of the timeline and the eviction order; whether it was filed as in
    /// force (and so counted in `active`).
    fn unlink(&mut self, e: &BanEntry) -> bool {
        // Whichever of the two it was filed under.
        self.timeline.remove(&(e.until, e.ip));
        self.timeline.remove(&(self.next_moment(e), e.ip));
        let in_force = self.ranks.remove(&rank(e, true));
        if !in_force {
            self.ranks.remove(&rank(e, false));
        }
        in_force
    }

    /// Bans `ip` for `reason`. Returns the entry when a new ban starts; `None` when the
    /// address is exempt or already banned (an active ban is not extended by more offences:
    /// a banned source's packets are dropped before they can offend).
    pub fn ban(&mut self, ip: IpAddr, now: Instant, reason: &str) -> Option<BanEntry> {
        let ip = ip.to_canonical();
        if self.exempt(ip) {
            return None;
        }
        let previous = self.entries.get(&ip).cloned();
        if previous.as_ref().is_some_and(|e| e.active(now)) {
            return None;
        }
        let count = previous.as_ref().map_or(1, |e| e.count.saturating_add(1));
        if let Some(p) = &previous {
            // Its ban ended but `expire` has not run yet: it still counts as in force.
            if self.unlink(p) {
                self.active = self.active.saturating_sub(1);
                self.changes.push(BanChange::Unbanned { ip, lifted: false });
            }
        } else if self.entries.len() >= self.settings.max_entries.max(1) {
            // Bans that ended are remembered offenders first, the first to give way.
            self.expire(now);
            while self.entries.len() >= self.settings.max_entries.max(1) && self.evict() {}
        }
        let entry = BanEntry {
            ip,
            reason: reason.to_owned(),
            since: now,
            until: now + self.length_for(count),
            count,
        };
        self.link(&entry, true);
        self.entries.insert(ip, entry.clone());
        self.active += 1;
        self.changes.push(BanChange::Banned(entry.clone()));
        Some(entry)
    }

    /// Makes room for one: the remembered offender forgotten soonest, else the ban in force
    /// with the fewest offences, oldest first. `false` when the table is empty.
    fn evict(&mut self) -> bool {
        let Some(first) = self.ranks.pop_first() else {
            return false;
        };
        let ip = first.3;
        if let Some(v) = self.entries.remove(&ip) {
            self.unlink(&v);
            if first.0 {
                self.active = self.active.saturating_sub(1);
                self.changes.push(BanChange::Unbanned { ip, lifted: false });
            }
            self.changes.push(BanChange::Forgotten(ip));
            self.evicted += 1;
        }
        true
    }

    /// Lifts a ban (an operator's decision) and forgets the address's history. Returns
    /// whether it was banned.
    pub fn unban(&mut self, ip: IpAddr, now: Instant) -> bool {
        let ip = ip.to_canonical();
        let Some(e) = self.entries.remove(&ip) else {
            return false;
        };
        if self.unlink(&e) {
            self.active = self.active.saturating_sub(1);
        }
        let was = e.active(now);
        if was {
            self.changes.push(BanChange::Unbanned { ip, lifted: true });
        }
        self.changes.push(BanChange::Forgotten(ip));
        was
    }

    /// Ends bans and forgets history due at `now`.
    pub fn expire(&mut self, now: Instant) {
        while let Some(&(at, ip)) = self.timeline.first() {
            if at > now {
                break;
            }
            self.timeline.pop_first();
            let Some(e) = self.entries.get(&ip).cloned() else {
                continue;
            };
            if at == e.until && self.ranks.remove(&rank(&e, true)) {
                // The ban ended; remember the offender a while.
                self.active = self.active.saturating_sub(1);
                self.changes.push(BanChange::Unbanned { ip, lifted: false });
                self.ranks.insert(rank(&e, false));
                let forget = self.next_moment(&e);
                if forget > at {
                    self.timeline.insert((forget, ip));
                    continue;
                }
            }
            if at >= self.next_moment(&e) {
                self.entries.remove(&ip);
                self.unlink(&e);
                self.changes.push(BanChange::Forgotten(ip));
            }
        }
    }

    /// Puts back an entry loaded from the store (no change recorded). Beyond `max_entries`
    /// (lowered since it was stored) an entry gives way as in a full table, and that is
    /// recorded, so the store forgets it too.
    pub fn restore(&mut self, e: BanEntry, now: Instant) {
        let ip = e.ip.to_canonical();
        if self.exempt(ip) {
            return;
        }
        if let Some(old) = self.entries.remove(&ip) {
            if self.unlink(&old) {
                self.active = self.active.saturating_sub(1);
            }
        }
        let e = BanEntry { ip, ..e };
        let in_force = e.active(now);
        self.link(&e, in_force);
        if in_force {
            self.active += 1;
        }
        self.entries.insert(ip, e);
        while self.entries.len() > self.settings.max_entries.max(1) && self.evict() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn table(max: usize) -> BanTable {
        BanTable::new(BanSettings {
            ban_time: Duration::from_secs(60),
            escalate: 2.0,
            max_ban_time: Duration::from_secs(300),
            remember: Duration::from_secs(3600),
            max_entries: max,
            never: vec!["127.0.0.1/32".parse().unwrap()],
        })
    }

    #[test]
    fn bans_expire_and_repeat_offenders_escalate_to_the_maximum() {
        let t0 = Instant::now();
        let mut t = table(10);
        let e = t.ban(ip("127.0.0.66"), t0, "flood").unwrap();
        assert_eq!(e.until - t0, Duration::from_secs(60));
        assert!(
            t.is_banned(ip("::ffff:127.0.0.66"), t0),
            "v4-mapped is the same source"
        );
        assert!(
            t.ban(ip("127.0.0.66"), t0, "again").is_none(),
            "already banned"
        );
        t.expire(t0 + Duration::from_secs(60));
        assert!(!t.is_banned(ip("127.0.0.66"), t0 + Duration::from_secs(60)));
        let lengths: Vec<u64> = (0..4)
            .map(|i| {
                let now = t0 + Duration::from_secs(1000 * (i + 1));
                t.expire(now);
                let e = t.ban(ip("127.0.0.66"), now, "again").unwrap();
                (e.until - now).as_secs()
            })
            .collect();
        assert_eq!(lengths, [120, 240, 300, 300], "×2 each time, capped");
        assert_eq!(t.get(ip("127.0.0.66")).unwrap().count, 5);
        // Forgotten after `remember`: the next offence starts again at the first length.
        let later = t0 + Duration::from_secs(4000 + 300 + 3600);
        t.expire(later);
        assert!(t.get(ip("127.0.0.66")).is_none());
        assert_eq!(
            (t.ban(ip("127.0.0.66"), later, "x").unwrap().until - later).as_secs(),
            60
        );
    }

    #[test]
    fn exempt_networks_are_never_banned() {
        let mut t = table(10);
        assert!(t.ban(ip("127.0.0.1"), Instant::now(), "x").is_none());
        assert!(t.is_empty());
    }

    #[test]
    fn a_full_table_drops_history_first_then_the_least_offending() {
        let t0 = Instant::now();
        let mut t = table(3);
        t.ban(ip("10.0.0.1"), t0, "x");
        t.expire(t0 + Duration::from_secs(61));
        t.ban(ip("10.0.0.1"), t0 + Duration::from_secs(100), "x"); // count 2
        t.ban(ip("10.0.0.2"), t0 + Duration::from_secs(101), "x");
        let now = t0 + Duration::from_secs(102);
        t.ban(ip("10.0.0.3"), now, "x");
        t.take_changes();
        t.ban(ip("10.0.0.4"), now, "x");
        assert_eq!(t.len(), 3);
        assert!(t.get(ip("10.0.0.1")).is_some(), "the repeat offender stays");
        assert!(
            t.get(ip("10.0.0.2")).is_none(),
            "the oldest single offence goes"
        );
        let ch = t.take_changes();
        assert!(ch.contains(&BanChange::Forgotten(ip("10.0.0.2"))), "{ch:?}");
    }

    fn flood(i: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0x0a01_0000 + i))
    }

    /// A thousand bans into a table of a hundred: it never grows past its bound, the repeat
    /// offenders stay, and every eviction is counted and reported to the store.
    #[test]
    fn a_flood_of_bans_into_a_full_table_keeps_the_worst_and_counts() {
        let t0 = Instant::now();
        let mut t = table(100);
        let worst = [ip("192.0.2.1"), ip("192.0.2.2"), ip("192.0.2.3")];
        for w in worst {
            t.ban(w, t0, "x");
        }
        t.expire(t0 + Duration::from_secs(61));
        let now = t0 + Duration::from_secs(100);
        for w in worst {
            assert_eq!(t.ban(w, now, "x").unwrap().count, 2);
        }
        t.take_changes();
        for i in 0..1000 {
            t.ban(flood(i), now + Duration::from_millis(u64::from(i)), "x");
            assert!(t.len() <= 100);
        }
        assert!(
            worst.iter().all(|w| t.is_banned(*w, now)),
            "the repeat offenders stay"
        );
        assert!(t.get(flood(0)).is_none(), "the oldest single offence went");
        assert!(t.get(flood(999)).is_some());
        assert_eq!(t.evicted(), 903);
        assert_eq!(t.active_count(), 100);
        let ch = t.take_changes();
        assert!(ch.contains(&BanChange::Forgotten(flood(0))));
        assert_eq!(
            ch.iter()
                .filter(|c| matches!(c, BanChange::Forgotten(_)))
                .count(),
            903
        );
    }

    #[test]
    fn a_lowered_bound_evicts_in_the_same_order() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut t = table(20);
        t.ban(ip("10.0.0.1"), t0, "x");
        t.ban(ip("10.0.0.2"), t0 + s(1), "x");
        t.ban(ip("10.0.0.9"), t0, "x");
        t.expire(t0 + s(62));
        t.ban(ip("10.0.0.9"), t0 + s(62), "x"); // count 2
        for i in 0..7 {
            t.ban(flood(i), t0 + s(70 + u64::from(i)), "x");
        }
        assert_eq!((t.len(), t.active_count()), (10, 8));
        t.set_settings(BanSettings {
            max_entries: 3,
            ..t.settings().clone()
        });
        assert_eq!(t.len(), 3);
        assert_eq!(t.evicted(), 7);
        assert_eq!(t.active_count(), 3);
        for kept in [ip("10.0.0.9"), flood(5), flood(6)] {
            assert!(t.get(kept).is_some(), "{kept}");
        }
    }

    #[test]
    fn restored_entries_beyond_the_bound_give_way_and_the_store_is_told() {
        let t0 = Instant::now();
        let mut t = table(2);
        for (i, count) in [(1, 3), (2, 1), (3, 2)] {
            t.restore(
                BanEntry {
                    ip: flood(i),
                    reason: "x".into(),
                    since: t0,
                    until: t0 + Duration::from_secs(60),
                    count,
                },
                t0,
            );
        }
        assert_eq!((t.len(), t.active_count(), t.evicted()), (2, 2, 1));
        assert!(t.get(flood(2)).is_none(), "the least offending gave way");
        let ch = t.take_changes();
        assert!(ch.contains(&BanChange::Forgotten(flood(2))), "{ch:?}");
    }

    #[test]
    fn a_longer_remember_on_reload_keeps_history_longer() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut t = table(10);
        t.ban(ip("10.0.0.1"), t0, "x");
        t.expire(t0 + s(60));
        t.set_settings(BanSettings {
            remember: s(7200),
            ..t.settings().clone()
        });
        t.expire(t0 + s(60 + 3601));
        assert!(
            t.get(ip("10.0.0.1")).is_some(),
            "remembered on the new setting"
        );
        t.expire(t0 + s(60 + 7200));
        assert!(t.get(ip("10.0.0.1")).is_none());
        assert!(t.next_event().is_none());
    }

    #[test]
    fn operator_unban_lifts_and_forgets() {
        let t0 = Instant::now();
        let mut t = table(10);
        t.ban(ip("10.0.0.9"), t0, "x");
        assert_eq!(t.active_count(), 1);
        assert!(t.unban(ip("10.0.0.9"), t0));
        assert_eq!(t.active_count(), 0);
        assert!(!t.is_banned(ip("10.0.0.9"), t0));
        assert!(!t.unban(ip("10.0.0.9"), t0));
        t.expire(t0 + Duration::from_secs(10_000));
        assert!(t.next_event().is_none());
    }
}
