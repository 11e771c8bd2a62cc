//! Flood limits: token buckets per source address — one for all requests and one each for
//! REGISTER, INVITE and OPTIONS — and one global bucket for new calls toward the PBX.
//!
//! A source over any of its limits is to be banned (Kamailio's pike + htable ban, without
//! the script). The per-source table is bounded: when full, sources idle long enough to
//! have refilled are dropped first (they would start full anyway), then the table starts
//! over — losing counts, never memory.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

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
    sources: HashMap<IpAddr, Source>,
    global: Option<Bucket>,
}

impl RateLimiter {
    /// A limiter with nothing counted yet.
    pub fn new(settings: RateSettings) -> Self {
        Self {
            settings,
            sources: HashMap::new(),
            global: None,
        }
    }

    /// New limits (a reload); counts carry over.
    pub fn set_settings(&mut self, settings: RateSettings) {
        self.settings = settings;
    }

    /// Sources tracked.
    pub fn tracked(&self) -> usize {
        self.sources.len()
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
        if !self.sources.contains_key(&ip) && self.sources.len() >= self.settings.max_tracked.max(1)
        {
            self.make_room(now);
        }
        let per_ip = self.settings.per_ip;
        let method = self.rate_of(class);
        let src = self.sources.entry(ip).or_insert_with(|| Source {
            all: Bucket::full(per_ip, now),
            methods: [None; 3],
            seen: now,
        });
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

    /// Drops sources that have been quiet long enough to be full again; if none, all.
    fn make_room(&mut self, now: Instant) {
        let slowest = [
            self.settings.per_ip,
            self.settings.register,
            self.settings.invite,
            self.settings.options,
        ]
        .iter()
        .map(|r| r.burst.max(1.0) / r.per_second.max(f64::MIN_POSITIVE))
        .fold(0.0, f64::max);
        let quiet = std::time::Duration::try_from_secs_f64(slowest).unwrap_or_default();
        self.sources
            .retain(|_, s| now.saturating_duration_since(s.seen) < quiet);
        if self.sources.len() >= self.settings.max_tracked.max(1) {
            self.sources.clear();
        }
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

    #[test]
    fn the_table_is_bounded() {
        let t0 = Instant::now();
        let mut l = limiter(100);
        for i in 0..1000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x7f01_0000 + i));
            l.allow(
                ip,
                RequestClass::Other,
                t0 + Duration::from_millis(u64::from(i)),
            );
            assert!(l.tracked() <= 100);
        }
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
