//! RFC 3261 §17 timer values (Table 4) and RFC 6026's additions.

use std::time::Duration;

/// The three base values every transaction timer derives from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    /// Round-trip estimate; retransmission starts here. Default 500 ms.
    pub t1: Duration,
    /// Cap on the retransmit interval of non-INVITE requests and INVITE responses. Default 4 s.
    pub t2: Duration,
    /// Longest time a message stays in the network. Default 5 s.
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl Timers {
    /// Timers B, F, H, J, L, M: 64·T1, how long a transaction waits before giving up.
    pub fn timeout(&self) -> Duration {
        self.t1 * 64
    }

    /// Timer D: how long an INVITE client transaction absorbs retransmitted final responses
    /// (more than 32 s over UDP, 0 over reliable transports).
    pub fn timer_d(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            Duration::from_secs(32).max(self.t1 * 64)
        }
    }

    /// Timers I and K: T4 over UDP, 0 over reliable transports.
    pub fn t4_or_zero(&self, reliable: bool) -> Duration {
        if reliable { Duration::ZERO } else { self.t4 }
    }

    /// Timer J: 64·T1 over UDP, 0 over reliable transports.
    pub fn timer_j(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.timeout()
        }
    }

    /// The next retransmission interval after `current`, doubled and capped at T2 (timers E, G).
    pub fn backoff_capped(&self, current: Duration) -> Duration {
        (current * 2).min(self.t2)
    }
}
