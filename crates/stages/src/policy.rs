//! The call-policy seam (DESIGN §3a): after authentication and routing, a new call passes an
//! ordered list of [`CallPolicy`]s, each of which returns a [`Verdict`]. The call core runs
//! policies it does not know; the server picks the concrete ones. A policy sees the call
//! through a [`CallRequest`] — typed facts, no I/O — is told when the call is answered and
//! when it ends, and may ask for a running call to be ended (spend caps need that).

use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use sipwarden_config::AccountConfig;
use sipwarden_sip::Message;
use sipwarden_sip::header::Transport;

use crate::{Reason, Verdict};

/// Which zone a new call came from (DESIGN §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    /// The PBX.
    Pbx,
    /// A trunk (its name is in [`CallRequest::trunk`]).
    Trunk,
    /// A phone of the endpoint zone, authenticated as [`CallRequest::account`].
    Endpoint,
}

impl Origin {
    /// Lower-case name for logs and call records.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pbx => "pbx",
            Self::Trunk => "trunk",
            Self::Endpoint => "endpoint",
        }
    }
}

/// Where routing sends a new call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination<'a> {
    /// To the PBX.
    Pbx,
    /// Out through this trunk.
    Trunk(&'a str),
    /// To the registered phones of this account.
    Phones(&'a str),
}

/// What every policy knows about a new call. Trunks are named, not indexed, so a policy's
/// state survives a reload that reorders them.
#[derive(Clone, Copy, Debug)]
pub struct CallRequest<'a> {
    /// The call's id in the core (the same in `on_answer`, `on_end` and hang-up requests).
    pub call: u64,
    /// The caller's INVITE as received.
    pub invite: &'a Message,
    /// Where it came from.
    pub origin: Origin,
    /// The trunk it came from (calls from a trunk).
    pub trunk: Option<&'a str>,
    /// The authenticated caller's account (calls from a phone).
    pub account: Option<&'a AccountConfig>,
    /// The called account (calls from the PBX to a phone).
    pub callee_account: Option<&'a AccountConfig>,
    /// Where routing sends it.
    pub destination: Destination<'a>,
    /// The caller's address.
    pub source: SocketAddr,
    /// The caller's transport.
    pub transport: Transport,
    /// The caller as received (the From user).
    pub caller: &'a str,
    /// The callee as received (the Request-URI user).
    pub callee: &'a str,
    /// The offer's SDP, when the INVITE carries one.
    pub offer: Option<&'a [u8]>,
    /// The core's monotonic time.
    pub now: Instant,
    /// The wall-clock time, as the server gave it to the core (for time windows and call
    /// records; the core never reads a clock).
    pub wall: SystemTime,
}

/// A rule about calls. `admit` must not block or do I/O: state it needs comes in through
/// the request or is kept by the policy itself.
pub trait CallPolicy: Send + std::fmt::Debug {
    /// Stable, low-cardinality name: the metric's `stage` label and the call record's field.
    fn name(&self) -> &'static str;

    /// Whether the new call may go on ([`Verdict::Continue`]), or how it is refused.
    fn admit(&mut self, call: &CallRequest<'_>) -> Verdict;

    /// The call was answered (the caller got a 2xx).
    fn on_answer(&mut self, _call: u64, _now: Instant) {}

    /// The call ended, answered or not (exactly once for every admitted call).
    fn on_end(&mut self, _call: u64, _now: Instant) {}

    /// Calls this policy wants ended now, with why; asked after every input of the core.
    fn take_hangups(&mut self, _now: Instant) -> Vec<(u64, Reason)> {
        Vec::new()
    }

    /// When the policy next needs [`CallPolicy::take_hangups`] asked without other input.
    fn next_deadline(&self) -> Option<Instant> {
        None
    }

    /// What the policy decided since last asked, beyond its verdicts: would-be refusals in
    /// monitor mode, warning levels crossed, caller IDs replaced or flagged, calls it ended.
    /// Asked after `admit` and `take_hangups`; each becomes a call event (the call record's
    /// decisions), a security event where it refuses, and a metric.
    fn take_decisions(&mut self, _out: &mut Vec<Decision>) {}

    /// On a reload: the state this policy hands to the new policy of the same name (counters
    /// and the running calls they hold, so a reload neither resets a limit nor loses a
    /// call's end). The core calls it on the old policy, then [`CallPolicy::take_over`] on
    /// the new one.
    fn hand_over(&mut self) -> Option<Box<dyn std::any::Any + Send>> {
        None
    }

    /// On a reload: what the old policy of the same name handed over.
    fn take_over(&mut self, _state: Box<dyn std::any::Any + Send>) {}

    /// The policy's sizes and totals for `/metrics` (names are the program's own).
    fn gauges(&self, _out: &mut Vec<PolicyGauge>) {}

    /// State to keep across restarts, changed since last asked, as (key, value) rows (an
    /// empty value deletes the key): the server stores them with the batch of the round
    /// they changed in. Keys are the policy's own (the server prefixes none).
    fn take_state_rows(&mut self, _out: &mut Vec<(String, String)>) {}

    /// At start: the rows stored by earlier runs (every key this policy name stored).
    fn restore_state_rows(&mut self, _rows: &[(String, String)]) {}
}

/// One number a policy shows on `/metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyGauge {
    /// The metric's name (`sipwarden_velocity_counters`).
    pub name: &'static str,
    /// Its help text.
    pub help: &'static str,
    /// Whether it only grows (a counter) or goes both ways (a gauge).
    pub counter: bool,
    /// Its value.
    pub value: u64,
}

/// One decision of a policy about one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The call ([`CallRequest::call`]).
    pub call: u64,
    /// The rule, as the operator named or knows it (`"destination"`,
    /// `"velocity:trunk:carrier:calls_per_minute"`): bounded by the configuration.
    pub rule: String,
    /// What it did.
    pub outcome: Outcome,
    /// In words, for people (`"+5371234567 is on the high-risk list"`).
    pub detail: String,
    /// With [`Outcome::Disabled`]: what the core must disable now (the kill switch, as the
    /// operator's `trunk disable` does; it persists).
    pub disable: Option<Subject>,
}

/// What the kill switch disables.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    /// A trunk, by name.
    Trunk(String),
    /// An account, by user name.
    Account(String),
}

/// What a decision did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// Refused the call (its verdict).
    Refused,
    /// Monitor mode: would have refused it.
    WouldRefuse,
    /// A warning level was crossed (the alerting turns it into an alert).
    Warning,
    /// Ended the running call.
    Ended,
    /// Monitor mode: would have ended it.
    WouldEnd,
    /// Changed the call (a caller ID replaced).
    Replaced,
    /// Marked the call (a caller ID flagged).
    Flagged,
    /// Disabled a trunk or an account (a critical limit's action).
    Disabled,
}

impl Outcome {
    /// Lower-case name for records and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Refused => "refused",
            Self::WouldRefuse => "would_refuse",
            Self::Warning => "warning",
            Self::Ended => "ended",
            Self::WouldEnd => "would_end",
            Self::Replaced => "replaced",
            Self::Flagged => "flagged",
            Self::Disabled => "disabled",
        }
    }
}
