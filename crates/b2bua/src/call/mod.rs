//! One call: two legs, each a full dialog of its own. The core's handling of calls is split by
//! concern: `setup` (a new call), `in_dialog`, `responses` (to the B leg's INVITE), `forks`
//! and `teardown`.

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

/// How far the call got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// INVITE sent on B, no final response yet.
    Early,
    /// Answered on both legs.
    Confirmed,
    /// Being torn down: BYEs or a CANCEL in flight; nothing new is relayed.
    Ending,
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
    pub(crate) phase: Phase,
    /// The trunk the B leg goes to, if any (for its credentials).
    pub(crate) b_trunk: Option<usize>,
    pub(crate) a_invite_tx: TxId,
    pub(crate) a_invite: Message,
    pub(crate) a_final_sent: bool,
    /// Current client transaction of the initial INVITE on B (a new one after a challenge).
    pub(crate) b_invite_tx: Option<TxId>,
    pub(crate) b_invite: Message,
    /// B answered 2xx and the ACK for it waits for A's ACK (it may carry the SDP answer).
    pub(crate) b_ack_due: Option<(TxId, String)>,
    pub(crate) auth_tried: bool,
    pub(crate) cancelled: bool,
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
    /// The final status the caller got, once it has one.
    pub(crate) a_status: Option<u16>,
    /// Who ended the call and why: the first cause noted wins.
    pub(crate) ending: Option<(crate::events::EndedBy, String)>,
}

impl Call {
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
