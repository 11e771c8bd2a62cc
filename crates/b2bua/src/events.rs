//! Call events: what happened to each call, for call records, alerts and limits (their
//! consumers come with the toll-fraud and operations issues). The core yields them; the server
//! drains them as it drains security events. Every started call ends with exactly one
//! [`CallEventKind::Ended`]; a call refused before it started yields one
//! [`CallEventKind::Refused`] instead. Times are wall-clock, from the readings the server
//! gives the core (`Core::set_wall_clock`): the core reads no clock.

use std::net::SocketAddr;
use std::time::SystemTime;

use sipwarden_sip::header::Transport;
use sipwarden_stages::{Origin, Outcome, Reason};

/// One event of one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallEvent {
    /// The call's id in the core; a refused call uses one up too, so ids never repeat.
    pub call: u64,
    /// When, by the wall clock.
    pub at: SystemTime,
    /// What.
    pub kind: CallEventKind,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallEventKind {
    /// The call was admitted and its first B leg sent.
    Started(CallInfo),
    /// An INVITE went to a trunk's address: the first attempt of an outbound call, and each
    /// address it moved on to.
    Attempt {
        /// The trunk's name.
        trunk: String,
        /// Where the INVITE went.
        to: SocketAddr,
        /// Over what.
        transport: Transport,
    },
    /// An attempt failed: `status` from the trunk (408, 5xx, …), or `None` when nothing
    /// answered in time. `next`: the call moved on to another address.
    AttemptFailed {
        /// The trunk's name.
        trunk: String,
        /// The address that failed.
        to: SocketAddr,
        /// The trunk's answer, if any.
        status: Option<u16>,
        /// Whether the call moved on to another address.
        next: bool,
    },
    /// A stream's media through the relay, when it closed (the server adds these: the relay
    /// is not the core's).
    Media {
        /// The stream (`m=` line).
        stream: usize,
        /// Packets and bytes from the calling side, relayed to the called one.
        from_a: (u64, u64),
        /// Packets and bytes the other way.
        from_b: (u64, u64),
        /// Packets dropped because they came from a source the stream had not latched.
        dropped: u64,
    },
    /// The call's media is not anchored in the relay and goes direct between the endpoints
    /// (`"webrtc"`: a browser phone's ICE with DTLS-SRTP, which the embedded relay does not
    /// terminate).
    MediaUnanchored {
        /// Why.
        reason: &'static str,
    },
    /// A policy's decision about the call beyond its verdict (a refusal's rule, a monitor
    /// mode's would-be refusal, a warning level, a caller ID replaced or flagged). A refused
    /// call's decisions come before its `Refused`.
    Decision {
        /// The rule (`destination`, `velocity:carrier-cps`).
        rule: String,
        /// What it did.
        outcome: Outcome,
        /// In words.
        detail: String,
    },
    /// The caller got a 2xx.
    Answered,
    /// The call is over: answered or not, whoever ended it.
    Ended {
        /// The final status the caller got (200 for an answered call), or `None` when the
        /// gateway never sent one (a caller that vanished).
        status: Option<u16>,
        /// Which side ended it.
        by: EndedBy,
        /// Why, in words (`"BYE"`, `"cancelled"`, `"486 from the callee"`, `"ring timeout"`).
        reason: String,
    },
    /// The call was refused before it started.
    Refused {
        /// The call as far as it was known.
        info: CallInfo,
        /// The stage that refused it (`"route"`, `"auth"`, a policy's name).
        stage: &'static str,
        /// The status the caller got.
        status: u16,
        /// The verdict's reason.
        reason: Reason,
    },
}

/// Who ended a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndedBy {
    /// The caller (A leg): BYE or CANCEL.
    Caller,
    /// The callee (B leg): BYE, or a failure response.
    Callee,
    /// The gateway: timeouts, limits, policies, the operator, shutdown.
    Gateway,
}

impl EndedBy {
    /// Lower-case name for logs and records.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Caller => "caller",
            Self::Callee => "callee",
            Self::Gateway => "gateway",
        }
    }
}

/// What is known of a call when it starts (or is refused).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallInfo {
    /// The caller's leg's Call-ID.
    pub a_call_id: String,
    /// The callee's leg's Call-ID (empty for a refused call).
    pub b_call_id: String,
    /// The zone it came from.
    pub origin: Origin,
    /// The trunk it came from or leaves by.
    pub trunk: Option<String>,
    /// The account that placed it (a phone) or receives it (the PBX calling a phone).
    pub account: Option<String>,
    /// The caller's address.
    pub source: SocketAddr,
    /// The caller's transport.
    pub transport: Transport,
    /// The caller as received (From user).
    pub caller: String,
    /// The callee as received (Request-URI user).
    pub callee: String,
    /// The caller in canonical form (digits, RFC 8224 §8.3), when it is a number.
    pub caller_normalised: Option<String>,
    /// The callee in canonical form, when it is a number.
    pub callee_normalised: Option<String>,
}
