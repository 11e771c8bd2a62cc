//! One trunk's answer over time: used for its TTL (never less than `min_ttl`), looked up
//! again when that runs out, and, while look-ups fail, kept `keep_stale` past its expiry
//! before the trunk is left with no address. Time comes in as `now`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{LookupError, Resolved, Target};

/// How answers are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Answers are refreshed at their TTL, never sooner than this.
    pub min_ttl: Duration,
    /// How long the last good answer serves after it expired while look-ups fail.
    pub keep_stale: Duration,
    /// Longest wait between failed look-ups (they start at `min_ttl` and double).
    pub max_retry: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            min_ttl: Duration::from_secs(10),
            keep_stale: Duration::from_secs(3600),
            max_retry: Duration::from_secs(300),
        }
    }
}

/// What a look-up's outcome did to the entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The targets are new or differ from the last ones.
    Updated,
    /// The same targets as before (a refresh).
    Same,
    /// The look-up failed; the last good targets still serve.
    Stale,
    /// The look-up failed and nothing usable is left.
    Lost,
}

/// A trunk's targets over time.
#[derive(Clone, Debug)]
pub struct Entry {
    targets: Arc<[Target]>,
    /// Until when the targets are fresh (`None`: forever, an address literal).
    fresh_until: Option<Instant>,
    /// When to look up again.
    refresh_at: Option<Instant>,
    /// Failed look-ups in a row.
    failures: u32,
    last_error: Option<LookupError>,
}

impl Entry {
    /// An entry with nothing yet, to be looked up at `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            targets: Arc::from(Vec::new()),
            fresh_until: Some(now),
            refresh_at: Some(now),
            failures: 0,
            last_error: None,
        }
    }

    /// The outcome of a look-up made at `now`.
    pub fn on_lookup(
        &mut self,
        now: Instant,
        outcome: Result<Resolved, LookupError>,
        s: &Settings,
    ) -> Change {
        match outcome {
            Ok(r) => {
                let same = *self.targets == *r.targets;
                self.targets = Arc::from(r.targets);
                self.failures = 0;
                self.last_error = None;
                match r.ttl {
                    None => {
                        self.fresh_until = None;
                        self.refresh_at = None;
                    }
                    Some(ttl) => {
                        let until = now + ttl.max(s.min_ttl);
                        self.fresh_until = Some(until);
                        self.refresh_at = Some(until);
                    }
                }
                if same { Change::Same } else { Change::Updated }
            }
            Err(e) => {
                self.failures = self.failures.saturating_add(1);
                self.last_error = Some(e);
                let shift = self.failures.saturating_sub(1).min(16);
                let wait = s
                    .min_ttl
                    .saturating_mul(1u32 << shift)
                    .min(s.max_retry)
                    .max(Duration::from_secs(1));
                self.refresh_at = Some(now + wait);
                if self.targets(now, s).is_empty() {
                    self.targets = Arc::from(Vec::new());
                    Change::Lost
                } else {
                    Change::Stale
                }
            }
        }
    }

    /// The targets usable at `now`: fresh ones, or stale ones within `keep_stale`.
    pub fn targets(&self, now: Instant, s: &Settings) -> Arc<[Target]> {
        match self.fresh_until {
            Some(until) if now > until + s.keep_stale => Arc::from(Vec::new()),
            _ => Arc::clone(&self.targets),
        }
    }

    /// Whether the targets are past their TTL (still served within `keep_stale`).
    pub fn is_stale(&self, now: Instant) -> bool {
        self.fresh_until.is_some_and(|u| now > u)
    }

    /// When to look up again (`None`: never, an address literal).
    pub fn refresh_at(&self) -> Option<Instant> {
        self.refresh_at
    }

    /// Failed look-ups in a row, and the last one's error.
    pub fn failures(&self) -> (u32, Option<&LookupError>) {
        (self.failures, self.last_error.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Transport;

    fn resolved(addr: &str, ttl: Option<u64>) -> Resolved {
        Resolved {
            targets: vec![Target {
                priority: 0,
                weight: 1,
                transport: Transport::Udp,
                port: 5060,
                host: "a".into(),
                addrs: vec![addr.parse().unwrap()],
            }],
            ttl: ttl.map(Duration::from_secs),
        }
    }

    fn failed() -> Result<Resolved, LookupError> {
        Err(LookupError::Failed("a".into(), "timed out".into()))
    }

    const S: Settings = Settings {
        min_ttl: Duration::from_secs(10),
        keep_stale: Duration::from_secs(600),
        max_retry: Duration::from_secs(120),
    };

    #[test]
    fn refreshed_at_the_ttl_but_never_sooner_than_min_ttl() {
        let t0 = Instant::now();
        let mut e = Entry::new(t0);
        assert_eq!(e.refresh_at(), Some(t0));
        assert!(e.targets(t0, &S).is_empty());
        assert_eq!(
            e.on_lookup(t0, Ok(resolved("192.0.2.1", Some(300))), &S),
            Change::Updated
        );
        assert_eq!(e.refresh_at(), Some(t0 + Duration::from_secs(300)));
        assert_eq!(
            e.on_lookup(t0, Ok(resolved("192.0.2.1", Some(1))), &S),
            Change::Same
        );
        assert_eq!(e.refresh_at(), Some(t0 + Duration::from_secs(10)));
        assert_eq!(
            e.on_lookup(t0, Ok(resolved("192.0.2.2", Some(60))), &S),
            Change::Updated
        );
    }

    #[test]
    fn the_last_good_answer_serves_for_keep_stale_then_is_dropped() {
        let t0 = Instant::now();
        let mut e = Entry::new(t0);
        e.on_lookup(t0, Ok(resolved("192.0.2.1", Some(60))), &S);
        let expired = t0 + Duration::from_secs(61);
        assert!(e.is_stale(expired));
        assert_eq!(e.on_lookup(expired, failed(), &S), Change::Stale);
        assert_eq!(e.targets(expired, &S).len(), 1);
        // Retries back off: 10 s, 20 s, 40 s, … capped at max_retry.
        assert_eq!(e.refresh_at(), Some(expired + Duration::from_secs(10)));
        let mut now = expired;
        for _ in 0..5 {
            now += Duration::from_secs(10);
            e.on_lookup(now, failed(), &S);
        }
        assert_eq!(e.refresh_at(), Some(now + Duration::from_secs(120)));
        assert_eq!(e.failures().0, 6);
        // Within keep_stale (600 s past expiry) still served; beyond it, gone.
        assert_eq!(e.targets(t0 + Duration::from_secs(660), &S).len(), 1);
        let late = t0 + Duration::from_secs(661);
        assert!(e.targets(late, &S).is_empty());
        assert_eq!(e.on_lookup(late, failed(), &S), Change::Lost);
        // A good answer brings it back and clears the failures.
        assert_eq!(
            e.on_lookup(late, Ok(resolved("192.0.2.1", Some(60))), &S),
            Change::Updated
        );
        assert_eq!(e.failures().0, 0);
    }

    #[test]
    fn an_address_never_expires() {
        let t0 = Instant::now();
        let mut e = Entry::new(t0);
        e.on_lookup(t0, Ok(resolved("192.0.2.1", None)), &S);
        assert_eq!(e.refresh_at(), None);
        assert!(!e.is_stale(t0 + Duration::from_secs(1_000_000)));
        assert_eq!(e.targets(t0 + Duration::from_secs(1_000_000), &S).len(), 1);
    }
}
