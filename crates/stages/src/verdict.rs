//! The verdict contract of DESIGN §3: every stage, route and call policy says what should
//! happen to a message as a [`Verdict`] with a typed [`Reason`]; one runner (in the call core)
//! carries it out and counts it in a [`VerdictCounts`] by stage, verdict and reason. Stages
//! never send, ban or log themselves, so each can be tested as a pure function of its input.

use std::collections::HashMap;
use std::time::Duration;

use sipwarden_sip::{HeaderName, StatusCode};

use crate::{AuthFailure, RequestClass};

/// Why a message was stopped (or, for [`Reason::None`], that it was not). Each reason has a
/// stable code ([`Reason::code`]) used alike as the metric label, in security events and in
/// call records, so the set of label values is bounded by this enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Nothing stopped it ([`Verdict::Continue`]).
    None,
    /// The source is banned.
    Banned,
    /// The source went over a per-source flood limit.
    Flood(RequestClass),
    /// New calls toward the PBX went over the global limit (503 with Retry-After).
    GlobalCallLimit,
    /// The message failed parsing limits or RFC 3261 sanity checks.
    Malformed,
    /// The request carries a scanner's fingerprint.
    Scanner,
    /// An allow/deny list refused the source.
    AclDenied,
    /// The request needs credentials (a challenge is the answer).
    AuthRequired,
    /// The credentials used an expired (or replayed) nonce: a fresh challenge, no failure.
    StaleNonce,
    /// The credentials failed.
    Auth(AuthFailure),
    /// The gateway is shutting down.
    ShuttingDown,
    /// The most calls at once are running.
    TooManyCalls,
    /// No route for the number (or no trunk to send it to).
    NoRoute,
    /// A trunk's call for a number the trunk does not own.
    NotOurNumber,
    /// Every trunk of the number's route is down, or has no address (DNS).
    TrunksUnavailable,
    /// The callee is an account with no registered phone.
    NotRegistered,
    /// The account (caller or callee) requires SRTP and the offer is not all SRTP.
    SrtpRequired,
    /// A call policy's own reason: a static, low-cardinality code such as
    /// `"destination_blocked"`.
    Policy(&'static str),
    /// A rewrite could not change a message as it must: its static code, such as
    /// `"sdp_overlap"` (see [`crate::RewriteError`]).
    Rewrite(&'static str),
}

impl Reason {
    /// The stable code (snake case).
    pub const fn code(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Banned => "banned",
            Self::Flood(RequestClass::Register) => "flood_register",
            Self::Flood(RequestClass::Invite) => "flood_invite",
            Self::Flood(RequestClass::Options) => "flood_options",
            Self::Flood(RequestClass::Other) => "flood",
            Self::GlobalCallLimit => "global_call_limit",
            Self::Malformed => "malformed",
            Self::Scanner => "scanner",
            Self::AclDenied => "acl_denied",
            Self::AuthRequired => "auth_required",
            Self::StaleNonce => "stale_nonce",
            Self::Auth(f) => f.code(),
            Self::ShuttingDown => "shutting_down",
            Self::TooManyCalls => "too_many_calls",
            Self::NoRoute => "no_route",
            Self::NotOurNumber => "not_our_number",
            Self::TrunksUnavailable => "trunks_unavailable",
            Self::NotRegistered => "not_registered",
            Self::SrtpRequired => "srtp_required",
            Self::Policy(code) | Self::Rewrite(code) => code,
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// What a stage decided about one message. The runner, never the stage, performs it.
#[must_use]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Go on to the next stage.
    Continue,
    /// Stop and answer statelessly with `status` (never to an ACK) and these extra headers;
    /// `phrase` replaces the status's default reason phrase when given.
    Reply {
        /// The status.
        status: StatusCode,
        /// Why.
        reason: Reason,
        /// A reason phrase of our own (trusted peers only: it may name what was wrong).
        phrase: Option<&'static str>,
        /// Extra header fields of the answer (Retry-After, a challenge, …).
        headers: Vec<(HeaderName, String)>,
    },
    /// Stop and stay silent.
    Drop {
        /// Why.
        reason: Reason,
    },
    /// Stop, stay silent, and ban the source (`ttl` `None`: the configured, escalating time).
    Ban {
        /// Why.
        reason: Reason,
        /// How long, when the stage knows better than the configuration.
        ttl: Option<Duration>,
    },
}

impl Verdict {
    /// A reply with the status's own phrase and no extra headers.
    pub fn reply(status: StatusCode, reason: Reason) -> Self {
        Self::Reply {
            status,
            reason,
            phrase: None,
            headers: Vec::new(),
        }
    }

    /// The kind, as the metric label says it.
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::Continue => "continue",
            Self::Reply { .. } => "reply",
            Self::Drop { .. } => "drop",
            Self::Ban { .. } => "ban",
        }
    }

    /// The reason ([`Reason::None`] for `Continue`).
    pub const fn reason(&self) -> Reason {
        match self {
            Self::Continue => Reason::None,
            Self::Reply { reason, .. } | Self::Drop { reason } | Self::Ban { reason, .. } => {
                *reason
            }
        }
    }

    /// Whether the message goes on.
    pub const fn is_continue(&self) -> bool {
        matches!(self, Self::Continue)
    }
}

/// Which step of the message path decided (the metric's `stage` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StageName {
    /// The ban table.
    Ban,
    /// Flood limits (per source, and the global call limit).
    RateLimit,
    /// Parsing limits and RFC 3261 checks.
    Sanity,
    /// Scanner fingerprints.
    Scanner,
    /// Allow/deny lists per zone.
    Acl,
    /// Digest authentication.
    Auth,
    /// Admission (draining, the call table's bound) and routing of a new call.
    Route,
    /// A call policy, by its name.
    Policy(&'static str),
    /// A rewrite of a call's messages, by its name.
    Rewrite(&'static str),
}

impl StageName {
    /// Lower-case name for metric labels and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ban => "ban",
            Self::RateLimit => "ratelimit",
            Self::Sanity => "sanity",
            Self::Scanner => "scanner",
            Self::Acl => "acl",
            Self::Auth => "auth",
            Self::Route => "route",
            Self::Policy(name) | Self::Rewrite(name) => name,
        }
    }
}

/// Counts of verdicts by (stage, verdict, reason). Every label comes from a `'static` code,
/// so the table's size is bounded by the stages and reasons the program has, whatever the
/// traffic.
#[derive(Debug, Default, Clone)]
pub struct VerdictCounts {
    /// `Continue` of the fixed stages, by [`StageName::index`]: the common case, counted
    /// without hashing (several per message on the hot path).
    passed: [u64; FIXED_STAGES],
    counts: HashMap<(StageName, &'static str, Reason), u64>,
}

/// The stages with a fixed slot in [`VerdictCounts`].
const FIXED_STAGES: usize = 7;

impl StageName {
    /// The slot of a fixed stage (`None` for policies and rewrites).
    const fn index(self) -> Option<usize> {
        match self {
            Self::Ban => Some(0),
            Self::RateLimit => Some(1),
            Self::Sanity => Some(2),
            Self::Scanner => Some(3),
            Self::Acl => Some(4),
            Self::Auth => Some(5),
            Self::Route => Some(6),
            Self::Policy(_) | Self::Rewrite(_) => None,
        }
    }

    const FIXED: [Self; FIXED_STAGES] = [
        Self::Ban,
        Self::RateLimit,
        Self::Sanity,
        Self::Scanner,
        Self::Acl,
        Self::Auth,
        Self::Route,
    ];
}

impl VerdictCounts {
    /// Counts one verdict of `stage`.
    pub fn record(&mut self, stage: StageName, verdict: &Verdict) {
        if let (Verdict::Continue, Some(i)) = (verdict, stage.index()) {
            if let Some(n) = self.passed.get_mut(i) {
                *n += 1;
            }
            return;
        }
        *self
            .counts
            .entry((stage, verdict.kind(), verdict.reason()))
            .or_insert(0) += 1;
    }

    /// Every (stage, verdict, reason code, count), sorted for stable output.
    pub fn snapshot(&self) -> Vec<(&'static str, &'static str, &'static str, u64)> {
        let mut v: Vec<_> = self
            .counts
            .iter()
            .map(|((s, k, r), n)| (s.as_str(), *k, r.code(), *n))
            .chain(
                StageName::FIXED
                    .iter()
                    .zip(self.passed)
                    .filter(|(_, n)| *n > 0)
                    .map(|(s, n)| (s.as_str(), "continue", Reason::None.code(), n)),
            )
            .collect();
        v.sort_unstable();
        v
    }

    /// The count for one combination (tests and stats).
    pub fn get(&self, stage: StageName, kind: &str, reason: Reason) -> u64 {
        self.snapshot()
            .iter()
            .filter(|r| (r.0, r.1, r.2) == (stage.as_str(), kind, reason.code()))
            .map(|r| r.3)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_snake_case() {
        let reasons = [
            Reason::None,
            Reason::Banned,
            Reason::Flood(RequestClass::Register),
            Reason::Flood(RequestClass::Invite),
            Reason::Flood(RequestClass::Options),
            Reason::Flood(RequestClass::Other),
            Reason::GlobalCallLimit,
            Reason::Malformed,
            Reason::Scanner,
            Reason::AclDenied,
            Reason::AuthRequired,
            Reason::StaleNonce,
            Reason::Auth(AuthFailure::WrongPassword),
            Reason::ShuttingDown,
            Reason::TooManyCalls,
            Reason::NoRoute,
            Reason::NotOurNumber,
            Reason::TrunksUnavailable,
            Reason::NotRegistered,
            Reason::SrtpRequired,
            Reason::Policy("destination_blocked"),
            Reason::Rewrite("sdp_overlap"),
        ];
        let mut codes: Vec<&str> = reasons.iter().map(|r| r.code()).collect();
        assert!(
            codes
                .iter()
                .all(|c| c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        );
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), reasons.len());
        assert_eq!(
            Reason::Auth(AuthFailure::WrongPassword).code(),
            "wrong_password"
        );
    }

    #[test]
    fn counts_by_stage_verdict_and_reason() {
        let mut c = VerdictCounts::default();
        let ok = Verdict::Continue;
        let ban = Verdict::Ban {
            reason: Reason::Flood(RequestClass::Register),
            ttl: None,
        };
        let busy = Verdict::Reply {
            status: StatusCode::SERVICE_UNAVAILABLE,
            reason: Reason::GlobalCallLimit,
            phrase: None,
            headers: vec![(HeaderName::RetryAfter, "1".into())],
        };
        for v in [&ok, &ok, &ban, &busy] {
            let stage = if v == &busy {
                StageName::Route
            } else {
                StageName::RateLimit
            };
            c.record(stage, v);
        }
        c.record(
            StageName::Policy("refuse_prefix"),
            &Verdict::Drop {
                reason: Reason::Policy("refused_prefix"),
            },
        );
        assert_eq!(
            c.snapshot(),
            vec![
                ("ratelimit", "ban", "flood_register", 1),
                ("ratelimit", "continue", "none", 2),
                ("refuse_prefix", "drop", "refused_prefix", 1),
                ("route", "reply", "global_call_limit", 1),
            ]
        );
        assert_eq!(c.get(StageName::RateLimit, "continue", Reason::None), 2);
        assert_eq!(busy.kind(), "reply");
        assert!(!busy.is_continue());
    }
}
