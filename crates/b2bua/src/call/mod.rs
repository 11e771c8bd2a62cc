//! One call: two legs, each a full dialog of its own. The core's handling of calls is split by
//! concern: `setup` (a new call), `in_dialog`, `responses` (to the B leg's INVITE), `forks`
//! and `teardown`.

mod failover;
mod forks;
mod in_dialog;
mod responses;
mod setup;
mod teardown;

use std::sync::Arc;
use std::time::Duration;

use sipwarden_sip::Message;
use sipwarden_sip::StatusCode;
use sipwarden_txn::TxId;

use crate::routes::Routes;
use sipwarden_sip::Peer;

/// The two legs: A is where the call came from, B where the gateway sent it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The calling side.
    A,
    /// The called side.
    B,
}

impl Side {
    /// The other leg.
    pub fn other(self) -> Self {
        match self {
            Self::A => Self::B,
            Self::B => Self::A,
        }
    }
}

/// One leg's dialog state, as the gateway (a UA on that leg) sees it.
#[derive(Clone, Debug)]
pub(crate) struct Leg {
    pub(crate) call_id: String,
    pub(crate) local_tag: String,
    pub(crate) remote_tag: Option<String>,
    /// Our identity on this leg, a name-addr without tag.
    pub(crate) local_uri: String,
    /// The peer's identity, a name-addr without tag.
    pub(crate) remote_uri: String,
    /// Request-URI of requests we send on this leg (the peer's Contact).
    pub(crate) remote_target: String,
    /// Route set for requests on this leg, in sending order.
    pub(crate) route_set: Vec<String>,
    /// Our next CSeq on this leg.
    pub(crate) local_cseq: u32,
    /// Where requests and responses on this leg go.
    pub(crate) target: Peer,
    /// The endpoint account on the far side (a phone's leg): who may act in this dialog from
    /// another address, by proving it with the account's credentials.
    pub(crate) account: Option<String>,
}

/// How far the call got: the data-free view of [`State`], for matching on timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// INVITE sent on B, no final response to the caller yet.
    Early,
    /// Answered on both legs.
    Confirmed,
    /// Being torn down: BYEs or a CANCEL in flight; nothing new is relayed.
    Ending,
}

/// B answered with a 2xx whose ACK waits for A's (it may carry the SDP answer): the B-leg
/// INVITE transaction and B's To-tag.
pub(crate) type AckDue = (TxId, String);

/// Where a call stands. Every change of state is one of the methods on [`Call`] below, so
/// the rules (the caller gets exactly one final answer; a call ends only from `Ending`) hold
/// in one place rather than in flags checked across the handlers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// The B leg's INVITE is out and the caller has had no final answer.
    Early {
        /// A trunk's challenge was answered once already (a second one is a failure).
        b_auth_sent: bool,
    },
    /// B answered and the caller got the 2xx `status`.
    Confirmed {
        /// The caller's final status (a 2xx).
        status: u16,
        /// B's ACK, until A's arrives.
        b_ack_due: Option<AckDue>,
    },
    /// Being torn down: BYEs or a CANCEL in flight, nothing new is relayed. The caller has its
    /// final answer `status` (a failure, or the 2xx of a call being hung up).
    Ending {
        /// The caller's final status.
        status: u16,
        /// B's ACK, if the call is hung up before A acknowledged the 2xx.
        b_ack_due: Option<AckDue>,
    },
}

/// A reliable provisional response relayed from B to A (RFC 3262): our RSeq on A, theirs on B.
#[derive(Clone, Debug)]
pub(crate) struct RelRsp {
    pub(crate) a_rseq: u32,
    pub(crate) b_rseq: u32,
    pub(crate) b_tag: String,
    pub(crate) b_target: String,
}

/// A further INVITE of a forked call (one per extra registered contact). The first fork
/// lives in `Call::b`; whichever answers first becomes `b`, the others are cancelled.
pub(crate) struct Fork {
    pub(crate) leg: Leg,
    pub(crate) invite: Message,
    pub(crate) tx: TxId,
    pub(crate) cancelled: bool,
}

pub(crate) struct Call {
    /// The routes the call started with (a reload does not move calls in progress).
    pub(crate) routes: Arc<Routes>,
    pub(crate) a: Leg,
    pub(crate) b: Leg,
    pub(crate) state: State,
    /// The trunk the B leg goes to, if any (for its credentials).
    pub(crate) b_trunk: Option<usize>,
    pub(crate) a_invite_tx: TxId,
    pub(crate) a_invite: Message,
    /// Current client transaction of the initial INVITE on B (a new one after a challenge).
    pub(crate) b_invite_tx: Option<TxId>,
    pub(crate) b_invite: Message,
    /// Outstanding BYEs the gateway sent itself (teardown), per side.
    pub(crate) byes: Vec<(Side, TxId)>,
    pub(crate) rel: Vec<RelRsp>,
    pub(crate) next_a_rseq: u32,
    pub(crate) max_duration: Duration,
    /// Every transaction the call has a role in (see `Core::finish`).
    pub(crate) txs: Vec<TxId>,
    /// Other forks still ringing (or being cancelled).
    pub(crate) forks: Vec<Fork>,
    /// The best failure so far among forks that gave up (RFC 3261 §16.7 choice).
    pub(crate) best_failure: Option<StatusCode>,
    /// The call's pending timer, as entered in `Core::timers`.
    pub(crate) timer: Option<(std::time::Instant, crate::TimerKind)>,
    /// Who ended the call and why: the first cause noted wins.
    pub(crate) ending: Option<(crate::events::EndedBy, String)>,
    /// The call's span (id and both legs' Call-IDs), entered whenever the core handles one
    /// of its messages or timers, so a debug log reads as the call's story.
    pub(crate) span: tracing::Span,
    /// An outbound call: the address being tried and the ones left (see `failover.rs`).
    pub(crate) outbound: Option<Box<Outbound>>,
}

/// What an outbound call needs to move on to its next address.
pub(crate) struct Outbound {
    /// The address the current B-leg INVITE went to.
    pub(crate) current: crate::trunks::Attempt,
    /// The addresses still to try, in order.
    pub(crate) next: std::collections::VecDeque<crate::trunks::Attempt>,
    /// The number called, the caller's address and zone, and the caller as seen: the call
    /// request of the next attempt is built from them.
    pub(crate) callee: String,
    pub(crate) src: Peer,
    pub(crate) zone: crate::routes::Zone,
    pub(crate) caller_seen: String,
    /// The current attempt's "no response at all" deadline, as entered in `Core::timers`.
    pub(crate) deadline: Option<std::time::Instant>,
    /// The current B leg sent a provisional response beyond 100 (relayed to A): the carrier
    /// is working on the call, and A may hold its early dialog, so no moving on.
    pub(crate) progressed: bool,
}

impl State {
    /// The state without its data.
    pub(crate) fn phase(&self) -> Phase {
        match self {
            Self::Early { .. } => Phase::Early,
            Self::Confirmed { .. } => Phase::Confirmed,
            Self::Ending { .. } => Phase::Ending,
        }
    }

    /// Whether the caller is still waiting for its final answer.
    pub(crate) fn is_early(&self) -> bool {
        matches!(self, Self::Early { .. })
    }

    /// The final status the caller got, once it has one (for the call record).
    pub(crate) fn caller_status(&self) -> Option<u16> {
        match self {
            Self::Early { .. } => None,
            Self::Confirmed { status, .. } | Self::Ending { status, .. } => Some(*status),
        }
    }

    /// Early → Confirmed: B answered `status` (its 2xx on transaction `b_tx`, To-tag `tag`)
    /// and the caller is sent that 2xx. False, and nothing changes, unless the call was early.
    pub(crate) fn confirm(&mut self, status: u16, b_tx: TxId, tag: String) -> bool {
        if !self.is_early() {
            return false;
        }
        *self = Self::Confirmed {
            status,
            b_ack_due: Some((b_tx, tag)),
        };
        true
    }

    /// Early → Ending with the caller's final `status` (a failure, a CANCEL, the gateway giving
    /// up). False, and nothing changes, when the caller has its answer already: it gets one.
    pub(crate) fn fail(&mut self, status: u16) -> bool {
        if !self.is_early() {
            return false;
        }
        *self = Self::Ending {
            status,
            b_ack_due: None,
        };
        true
    }

    /// Confirmed → Ending (a BYE from either side or from the gateway). False when the call
    /// was not confirmed: an early call ends through [`Call::fail`], an ending one already is.
    pub(crate) fn hang_up(&mut self) -> bool {
        let Self::Confirmed { status, b_ack_due } = self else {
            return false;
        };
        *self = Self::Ending {
            status: *status,
            b_ack_due: b_ack_due.take(),
        };
        true
    }

    /// Takes B's pending ACK (A acknowledged the 2xx, or proved it got it).
    pub(crate) fn take_b_ack(&mut self) -> Option<AckDue> {
        match self {
            Self::Confirmed { b_ack_due, .. } | Self::Ending { b_ack_due, .. } => b_ack_due.take(),
            Self::Early { .. } => None,
        }
    }

    /// Whether a trunk's challenge to the B-leg INVITE may be answered: once, and only while
    /// the caller still waits. Marks it answered.
    pub(crate) fn try_trunk_auth(&mut self) -> bool {
        match self {
            Self::Early { b_auth_sent } if !*b_auth_sent => {
                *b_auth_sent = true;
                true
            }
            _ => false,
        }
    }
}

impl Call {
    /// The state without its data.
    pub(crate) fn phase(&self) -> Phase {
        self.state.phase()
    }

    /// Whether the caller is still waiting for its final answer.
    pub(crate) fn is_early(&self) -> bool {
        self.state.is_early()
    }

    /// Notes who ended the call, unless a cause is known already.
    pub(crate) fn note_end(&mut self, by: crate::events::EndedBy, reason: impl Into<String>) {
        if self.ending.is_none() {
            self.ending = Some((by, reason.into()));
        }
    }

    pub(crate) fn leg(&self, side: Side) -> &Leg {
        match side {
            Side::A => &self.a,
            Side::B => &self.b,
        }
    }

    pub(crate) fn leg_mut(&mut self, side: Side) -> &mut Leg {
        match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }
}

/// Keeps the best failure among forks (RFC 3261 §16.7: a 6xx wins, else the lowest class;
/// 408 and 5xx only when nothing better came).
pub(crate) fn note_failure(call: &mut Call, status: StatusCode) {
    let rank = |s: StatusCode| {
        let c = s.as_u16();
        match c {
            600..=699 => 0,
            408 => 4,
            400..=499 => 1,
            300..=399 => 2,
            _ => 3,
        }
    };
    if call.best_failure.is_none_or(|b| rank(status) < rank(b)) {
        call.best_failure = Some(status);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn early() -> State {
        State::Early { b_auth_sent: false }
    }

    /// A transaction id, as only a transaction layer hands them out.
    fn tx() -> TxId {
        let mut layer = sipwarden_txn::TxLayer::<u8>::new(sipwarden_txn::Config::default());
        let invite = Message::parse(
            b"INVITE sip:b@192.0.2.2 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
              From: <sip:a@192.0.2.1>;tag=1\r\nTo: <sip:b@192.0.2.2>\r\nCall-ID: c\r\n\
              CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        layer
            .send_request(std::time::Instant::now(), invite, 0, false)
            .unwrap()
    }

    #[test]
    fn the_caller_gets_exactly_one_final_answer() {
        let mut s = early();
        assert_eq!(s.caller_status(), None);
        assert!(s.fail(486));
        assert_eq!(s.phase(), Phase::Ending);
        assert_eq!(s.caller_status(), Some(486));
        assert!(!s.fail(500), "a second final answer is refused");
        assert!(
            !s.confirm(200, tx(), "b".into()),
            "no answer after a failure"
        );
        assert_eq!(s.caller_status(), Some(486));

        let mut s = early();
        assert!(s.confirm(200, tx(), "b".into()));
        assert!(!s.fail(487), "a CANCEL after the 2xx changes nothing");
        assert_eq!(s.caller_status(), Some(200));
    }

    #[test]
    fn only_a_confirmed_call_is_hung_up_and_keeps_its_pending_ack() {
        let mut s = early();
        assert!(!s.hang_up(), "an early call ends through fail");
        assert!(s.confirm(200, tx(), "tag-b".into()));
        assert!(s.hang_up());
        assert_eq!(s.phase(), Phase::Ending);
        assert_eq!(s.caller_status(), Some(200));
        assert!(!s.hang_up(), "ending already");
        assert_eq!(s.take_b_ack(), Some((tx(), "tag-b".to_owned())));
        assert_eq!(s.take_b_ack(), None, "B is acknowledged once");
    }

    #[test]
    fn a_trunk_challenge_is_answered_once_and_only_while_early() {
        let mut s = early();
        assert!(s.try_trunk_auth());
        assert!(!s.try_trunk_auth());
        let mut s = early();
        assert!(s.fail(487));
        assert!(!s.try_trunk_auth(), "no new INVITE for a cancelled call");
        assert_eq!(early().take_b_ack(), None);
    }
}
