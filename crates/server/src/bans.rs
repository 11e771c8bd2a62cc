//! The ban table outside the call core: the transports' drop list (the read side the
//! transports consult per datagram and per accept), the rows on disk, and the optional
//! nftables set.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::RwLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sipwarden_b2bua::{BanChange, BanEntry};
use sipwarden_store::{BanRow, BanRowChange, BanStore, StoreError};

/// Active bans, as the transports see them: membership is the ban (the core removes an
/// address when its ban ends), so a lookup reads no clock.
#[derive(Debug, Default)]
pub(crate) struct BanView {
    banned: RwLock<HashMap<IpAddr, BanInfo>>,
}

/// What the admin API lists.
#[derive(Clone, Debug)]
pub(crate) struct BanInfo {
    pub(crate) reason: String,
    pub(crate) since_unix: i64,
    pub(crate) until_unix: i64,
    pub(crate) count: u32,
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Rounded to the nearest second, so that two instants taken a moment apart around the same
/// call map to the same clock second rather than truncating apart.
fn to_unix(at: Instant, now: Instant, unix: i64) -> i64 {
    let secs = |d: Duration| d.as_secs_f64().round() as i64;
    if at >= now {
        unix.saturating_add(secs(at - now))
    } else {
        unix.saturating_sub(secs(now - at))
    }
}

fn from_unix(t: i64, now: Instant, unix: i64) -> Instant {
    let d = Duration::from_secs(t.abs_diff(unix));
    if t >= unix {
        now + d
    } else {
        now.checked_sub(d).unwrap_or(now)
    }
}

impl sipwarden_transport::Gate for BanView {
    fn admit(&self, ip: IpAddr) -> bool {
        let map = self.banned.read().unwrap_or_else(|e| e.into_inner());
        map.is_empty() || !map.contains_key(&ip.to_canonical())
    }
}

impl BanView {
    pub(crate) fn list(&self) -> Vec<(IpAddr, BanInfo)> {
        let map = self.banned.read().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<(IpAddr, BanInfo)> = map.iter().map(|(k, v)| (*k, v.clone())).collect();
        v.sort_by_key(|(ip, _)| *ip);
        v
    }

    fn info(e: &BanEntry, now: Instant, unix: i64) -> BanInfo {
        BanInfo {
            reason: e.reason.clone(),
            since_unix: to_unix(e.since, now, unix),
            until_unix: to_unix(e.until, now, unix),
            count: e.count,
        }
    }

    /// Applies the core's changes to the view; returns the rows to store.
    pub(crate) fn apply(
        &self,
        changes: &[BanChange],
        core_entry: impl Fn(IpAddr) -> Option<BanEntry>,
    ) -> Vec<BanRowChange> {
        let (now, unix) = (Instant::now(), unix_now());
        let mut rows = Vec::with_capacity(changes.len());
        let mut map = self.banned.write().unwrap_or_else(|e| e.into_inner());
        for c in changes {
            match c {
                BanChange::Banned(e) => {
                    let info = Self::info(e, now, unix);
                    rows.push(BanRowChange::Upsert(row(e.ip, &info)));
                    map.insert(e.ip, info);
                }
                BanChange::Unbanned { ip, .. } => {
                    map.remove(ip);
                    // Still remembered for escalation: keep its row with the past expiry.
                    if let Some(e) = core_entry(*ip) {
                        rows.push(BanRowChange::Upsert(row(*ip, &Self::info(&e, now, unix))));
                    }
                }
                BanChange::Forgotten(ip) => {
                    map.remove(ip);
                    rows.push(BanRowChange::Remove(ip.to_string()));
                }
            }
        }
        rows
    }

    /// Loads the stored table into the core and the view; drops rows past remembering.
    pub(crate) fn restore(
        &self,
        store: &mut dyn BanStore,
        mut put: impl FnMut(BanEntry),
    ) -> Result<usize, StoreError> {
        let (now, unix) = (Instant::now(), unix_now());
        let rows = store.load_bans()?;
        let mut active = 0;
        let mut map = self.banned.write().unwrap_or_else(|e| e.into_inner());
        for r in rows {
            let Ok(ip) = r.ip.parse::<IpAddr>() else {
                continue;
            };
            let e = BanEntry {
                ip,
                reason: r.reason.clone(),
                since: from_unix(r.since_unix, now, unix),
                until: from_unix(r.until_unix, now, unix),
                count: r.count,
            };
            if e.active(now) {
                active += 1;
                map.insert(ip, Self::info(&e, now, unix));
            }
            put(e);
        }
        Ok(active)
    }
}

fn row(ip: IpAddr, i: &BanInfo) -> BanRow {
    BanRow {
        ip: ip.to_string(),
        reason: i.reason.clone(),
        since_unix: i.since_unix,
        until_unix: i.until_unix,
        count: i.count,
    }
}

/// The kernel side: `nft add element FAMILY TABLE SET { IP timeout Ns }` for each new ban.
/// Without the rights (or without nft) the gateway says so once and carries on: its own
/// drop list still holds.
#[derive(Debug)]
pub(crate) struct Nft {
    set: Vec<String>,
    warned: std::sync::atomic::AtomicBool,
}

impl Nft {
    pub(crate) fn new(set: &str) -> Self {
        Self {
            set: set.split_whitespace().map(str::to_owned).collect(),
            warned: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub(crate) fn add(self: &std::sync::Arc<Self>, ip: IpAddr, ttl: Duration) {
        let me = std::sync::Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let element = format!("{{ {ip} timeout {}s }}", ttl.as_secs().max(1));
            let mut args: Vec<String> = vec!["add".into(), "element".into()];
            args.extend(me.set.iter().cloned());
            args.push(element);
            let out = std::process::Command::new("nft").args(&args).output();
            let failed = match &out {
                Ok(o) if o.status.success() => None,
                Ok(o) => Some(String::from_utf8_lossy(&o.stderr).trim().to_owned()),
                Err(e) => Some(e.to_string()),
            };
            if let Some(why) = failed {
                if !me.warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    tracing::warn!(set = %me.set.join(" "), "nftables: cannot add banned addresses ({why}); the gateway's own drop list still applies");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sipwarden_transport::Gate;

    #[test]
    fn view_follows_changes_and_rows_keep_history() {
        let v = BanView::default();
        let now = Instant::now();
        let e = BanEntry {
            ip: "127.0.0.66".parse().unwrap(),
            reason: "flood".into(),
            since: now,
            until: now + Duration::from_secs(60),
            count: 1,
        };
        let rows = v.apply(&[BanChange::Banned(e.clone())], |_| None);
        assert!(!v.admit("127.0.0.66".parse().unwrap()));
        assert!(!v.admit("::ffff:127.0.0.66".parse().unwrap()));
        assert!(v.admit("127.0.0.67".parse().unwrap()));
        assert!(
            matches!(&rows[..], [BanRowChange::Upsert(r)] if r.ip == "127.0.0.66" && r.until_unix - r.since_unix == 60)
        );
        let rows = v.apply(
            &[BanChange::Unbanned {
                ip: e.ip,
                lifted: false,
            }],
            |_| Some(e.clone()),
        );
        assert!(v.admit(e.ip));
        assert!(matches!(&rows[..], [BanRowChange::Upsert(_)]));
        let rows = v.apply(&[BanChange::Forgotten(e.ip)], |_| None);
        assert_eq!(rows, vec![BanRowChange::Remove("127.0.0.66".into())]);
        let mut store = sipwarden_store::MemoryStore::default();
        store
            .apply_bans(&[BanRowChange::Upsert(BanRow {
                ip: "127.0.0.70".into(),
                reason: "x".into(),
                since_unix: unix_now() - 10,
                until_unix: unix_now() + 100,
                count: 2,
            })])
            .unwrap();
        let mut got = Vec::new();
        assert_eq!(v.restore(&mut store, |e| got.push(e)).unwrap(), 1);
        assert!(!v.admit("127.0.0.70".parse().unwrap()));
        assert_eq!(got[0].count, 2);
    }
}
