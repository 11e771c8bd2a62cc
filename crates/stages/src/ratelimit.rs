//! Flood limits: token buckets per source address — one for all requests and one each for
//! REGISTER, INVITE and OPTIONS — and one global bucket for new calls toward the PBX.
//!
//! A source over any of its limits is to be banned (Kamailio's pike + htable ban, without
//! the script). The per-source table is bounded (`max_tracked`, an [`LruTable`]): sources
//! idle long enough to have refilled leave first (they would start full anyway), then, when
//! still full, the source that sent least recently gives way — so a flood of new addresses
//! cannot hand a source in the middle of its own flood a fresh bucket.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::table::{LruTable, TableStats};

/// A rate: tokens per second and bucket size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Burst allowed on top.
    pub burst: f64,
}

/// The limits.
#[derive(Clone, Debug, PartialEq)]
pub struct RateSettings {
    /// All requests from one source.
    pub per_ip: Rate,
    /// REGISTER from one source.
    pub register: Rate,
    /// INVITE from one source.
    pub invite: Rate,
    /// OPTIONS from one source.
    pub options: Rate,
    /// New calls toward the PBX from everyone together; above it, 503 with Retry-After.
    pub global_invite: Option<Rate>,
    /// Most sources tracked.
    pub max_tracked: usize,
}

impl Default for RateSettings {
    fn default() -> Self {
        Self {
            per_ip: Rate {
                per_second: 20.0,
                burst: 40.0,
            },
            register: Rate {
                per_second: 5.0,
                burst: 20.0,
            },
            invite: Rate {
                per_second: 5.0,
                burst: 20.0,
            },
            options: Rate {
                per_second: 5.0,
                burst: 20.0,
            },
            global_invite: None,
            max_tracked: 100_000,
        }
    }
}

/// What a request is, for the per-method buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestClass {
    /// REGISTER.
    Register,
    /// INVITE.
    Invite,
    /// OPTIONS.
    Options,
    /// Anything else (counted in the all-requests bucket only).
    Other,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Self {
        Self {
            tokens: rate.burst.max(1.0),
            last: now,
        }
    }

    /// Refills for the time passed, then takes one token if there is one.
    fn take(&mut self, rate: Rate, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * rate.per_second).min(rate.burst.max(1.0));
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Source {
    all: Bucket,
    methods: [Option<Bucket>; 3],
    seen: Instant,
}

/// The limiter.
#[derive(Debug)]
pub struct RateLimiter {
    settings: RateSettings,
    sources: LruTable<IpAddr, Source>,
    /// How long a source must be idle for all its buckets to be full again.
    quiet: Duration,
    global: Option<Bucket>,
}

/// The time the slowest of `s`'s per-source buckets takes to refill from empty.
fn refill_time(s: &RateSettings) -> Duration {
    let slowest = [s.per_ip, s.register, s.invite, s.options]
        .iter()
        .map(|r| r.burst.max(1.0) / r.per_second.max(f64::MIN_POSITIVE))
        .fold(0.0, f64::max);
    Duration::try_from_secs_f64(slowest).unwrap_or(Duration::MAX)
}

impl RateLimiter {
    /// A limiter with nothing counted yet.
    pub fn new(settings: RateSettings) -> Self {
        Self {
            sources: LruTable::new(settings.max_tracked),
            quiet: refill_time(&settings),
            settings,
            global: None,
        }
    }

    /// New limits (a reload); counts carry over, and a lower `max_tracked` evicts the sources
    /// that sent least recently down to it.
    pub fn set_settings(&mut self, settings: RateSettings) {
        self.sources.set_cap(settings.max_tracked);
        self.quiet = refill_time(&settings);
        self.settings = settings;
    }

    /// Sources tracked.
    pub fn tracked(&self) -> usize {
        self.sources.len()
    }

    /// The source table's size and evictions.
    pub fn stats(&self) -> TableStats {
        self.sources.stats()
    }

    fn rate_of(&self, class: RequestClass) -> Option<(usize, Rate)> {
        match class {
            RequestClass::Register => Some((0, self.settings.register)),
            RequestClass::Invite => Some((1, self.settings.invite)),
            RequestClass::Options => Some((2, self.settings.options)),
            RequestClass::Other => None,
        }
    }

    /// Counts one request from `ip`; `false` when it is over a limit (the caller bans).
    pub fn allow(&mut self, ip: IpAddr, class: RequestClass, now: Instant) -> bool {
        let ip = ip.to_canonical();
        let per_ip = self.settings.per_ip;
        let method = self.rate_of(class);
        let quiet = self.quiet;
        let src = self.sources.entry(
            &ip,
            || Source {
                all: Bucket::full(per_ip, now),
                methods: [None; 3],
                seen: now,
            },
            |s| now.saturating_duration_since(s.seen) >= quiet,
        );
        src.seen = now;
        let mut ok = src.all.take(per_ip, now);
        if let Some((i, rate)) = method {
            if let Some(slot) = src.methods.get_mut(i) {
                let b = slot.get_or_insert_with(|| Bucket::full(rate, now));
                ok &= b.take(rate, now);
            }
        }
        ok
    }

    /// Counts one new call toward the PBX; `false` when the global limit says 503.
    pub fn allow_global_invite(&mut self, now: Instant) -> bool {
        let Some(rate) = self.settings.global_invite else {
            return true;
        };
        self.global
            .get_or_insert_with(|| Bucket::full(rate, now))
            .take(rate, now)
    }

    /// Seconds until the global bucket has a token again (for Retry-After).
    pub fn global_retry_after(&self) -> u32 {
        self.settings.global_invite.map_or(1, |r| {
            (1.0 / r.per_second.max(0.001)).ceil().clamp(1.0, 3600.0) as u32
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limiter(max: usize) -> RateLimiter {
        RateLimiter::new(RateSettings {
            per_ip: Rate {
                per_second: 10.0,
                burst: 20.0,
            },
            register: Rate {
                per_second: 2.0,
                burst: 5.0,
            },
            global_invite: Some(Rate {
                per_second: 2.0,
                burst: 2.0,
            }),
            max_tracked: max,
            ..RateSettings::default()
        })
    }

    #[test]
    fn burst_then_refill() {
        let t0 = Instant::now();
        let mut l = limiter(10);
        let a: IpAddr = "127.0.0.66".parse().unwrap();
        let ok = (0..5)
            .filter(|_| l.allow(a, RequestClass::Register, t0))
            .count();
        assert_eq!(ok, 5);
        assert!(
            !l.allow(a, RequestClass::Register, t0),
            "the sixth REGISTER at once is over"
        );
        assert!(
            l.allow(a, RequestClass::Other, t0),
            "other requests have their own room"
        );
        assert!(l.allow(a, RequestClass::Register, t0 + Duration::from_millis(500)));
        // Another source is counted on its own.
        assert!(l.allow("127.0.0.67".parse().unwrap(), RequestClass::Register, t0));
        // The all-requests bucket: 20 at once, then 10/s.
        let b: IpAddr = "127.0.0.68".parse().unwrap();
        assert_eq!(
            (0..25)
                .filter(|_| l.allow(b, RequestClass::Other, t0))
                .count(),
            20
        );
    }

    fn flood(i: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0x7f01_0000 + i))
    }

    /// A source that has used up its REGISTER bucket and keeps sending stays limited while a
    /// flood of new addresses overflows the table ten times over: it is the most recently
    /// used, so it is never the one to give way.
    #[test]
    fn the_table_is_bounded_and_a_sending_source_keeps_its_bucket() {
        let t0 = Instant::now();
        let mut l = limiter(100);
        let a: IpAddr = "192.0.2.66".parse().unwrap();
        assert_eq!(
            (0..5)
                .filter(|_| l.allow(a, RequestClass::Register, t0))
                .count(),
            5
        );
        for i in 0..1000u32 {
            l.allow(flood(i), RequestClass::Other, t0);
            assert!(l.tracked() <= 100);
            if i % 50 == 0 {
                assert!(!l.allow(a, RequestClass::Register, t0), "still over at {i}");
            }
        }
        // 1001 sources went in, 100 fit.
        assert_eq!(l.stats().evicted, 901);
        assert!(
            l.allow(flood(999), RequestClass::Other, t0),
            "kept its own bucket"
        );
        assert_eq!(l.stats().evicted, 901);
    }

    #[test]
    fn refilled_sources_leave_first_and_uncounted() {
        let t0 = Instant::now();
        let mut l = limiter(100);
        for i in 0..100 {
            l.allow(flood(i), RequestClass::Register, t0);
        }
        // The slowest bucket (INVITE's default, 20 at 5/s) is full again after 4 s.
        l.allow(flood(100), RequestClass::Other, t0 + Duration::from_secs(3));
        assert_eq!(
            l.stats(),
            TableStats {
                len: 100,
                evicted: 1
            }
        );
        l.allow(flood(101), RequestClass::Other, t0 + Duration::from_secs(5));
        assert_eq!(l.stats(), TableStats { len: 2, evicted: 1 });
    }

    #[test]
    fn a_lowered_bound_evicts_the_least_recently_sending() {
        let t0 = Instant::now();
        let mut l = limiter(100);
        for i in 0..100 {
            l.allow(flood(i), RequestClass::Other, t0);
        }
        l.allow(flood(0), RequestClass::Other, t0);
        l.set_settings(RateSettings {
            max_tracked: 10,
            ..l.settings.clone()
        });
        assert_eq!(
            l.stats(),
            TableStats {
                len: 10,
                evicted: 90
            }
        );
        assert!(l.sources.contains(&flood(0)) && l.sources.contains(&flood(99)));
        assert!(!l.sources.contains(&flood(1)));
    }

    #[test]
    fn global_limit_and_retry_after() {
        let t0 = Instant::now();
        let mut l = limiter(10);
        assert!(l.allow_global_invite(t0));
        assert!(l.allow_global_invite(t0));
        assert!(!l.allow_global_invite(t0));
        assert!(l.allow_global_invite(t0 + Duration::from_millis(500)));
        assert_eq!(l.global_retry_after(), 1);
    }
}
