//! The rewrite seam (DESIGN §3a): what must change in a call's messages on their way out —
//! caller-ID replacement, the Identity header, the SDP of media anchoring — is done by an
//! ordered list of [`Rewrite`]s that the call core runs without knowing them; the server
//! picks them. A rewrite sees the B leg's INVITE once it is built (its headers, through
//! [`Message`]'s checked edits) and every SDP body that crosses the gateway in a call
//! (through [`SdpEdit`], never as text).
//!
//! The core runs its own topology hiding (the SDP origin and session name) before the
//! configured rewrites, on every SDP body; the rewrites then run in order. For the B leg's
//! INVITE, every rewrite's [`Rewrite::sdp`] runs on the offer while the INVITE is built, then
//! every rewrite's [`Rewrite::invite`] on the INVITE.
//!
//! A failure is closed: what a rewrite could not change does not cross as if it had been.
//! - The B leg's INVITE (its headers or its offer): the call is refused with
//!   [`RewriteError::refusal`] (500, [`Reason::Rewrite`], stage [`StageName::Rewrite`]) and
//!   nothing is sent to B.
//! - A request inside the call (a re-INVITE's or an UPDATE's offer …): refused with 500; the
//!   call goes on with the session it had, as after any failed re-INVITE.
//! - A response or an ACK, which cannot be refused: it crosses with the edits of the
//!   rewrites that did not fail (the failing rewrite's own are undone), and the gateway ends
//!   the call right after, as it does when a policy asks it to.
//!
//! [`StageName::Rewrite`]: crate::StageName::Rewrite

use std::net::SocketAddr;
use std::time::Instant;

use sipwarden_sip::sdp::{SdpEdit, SdpEditError};
use sipwarden_sip::{EditError, Message, Method, StatusCode};

use crate::{CallRequest, Reason, Verdict};

/// Which leg a body is on its way to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Toward {
    /// The caller's leg (where the call came from).
    A,
    /// The callee's leg (where the gateway sent it).
    B,
}

/// Which message carries an SDP body. Offer or answer follows RFC 3264: an INVITE's body is
/// normally the offer, but a late-offer call's offer comes in the 2xx and its answer in the
/// ACK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SdpKind {
    /// The INVITE that starts the B leg.
    Invite,
    /// A response to it, on its way to A (183 early media, the 2xx answer …).
    InviteResponse(StatusCode),
    /// The ACK for the call's 2xx, on B.
    Ack,
    /// A request inside the call's dialogs: re-INVITE, UPDATE, PRACK, a re-INVITE's ACK …
    InDialogRequest(Method),
    /// A response to one (the method it answers, its status).
    InDialogResponse(Method, StatusCode),
}

/// What a rewrite knows of an SDP body it may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SdpContext {
    /// The call's id in the core (as in [`CallRequest::call`] and the policies' hooks).
    pub call: u64,
    /// The leg the body goes out on.
    pub toward: Toward,
    /// The message that carries it.
    pub kind: SdpKind,
    /// The gateway's own address on that leg (what the SDP origin and, with media
    /// anchoring, the connection lines name).
    pub local: SocketAddr,
    /// Where the message goes.
    pub peer: SocketAddr,
}

/// Why a rewrite could not change a message as it must: a static, low-cardinality code (the
/// metric label and the call record's reason), as a policy's reasons are, and whether the
/// gateway failed or only ran short of something for now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RewriteError {
    code: &'static str,
    unavailable: bool,
}

impl RewriteError {
    /// The gateway could not do it: the call is refused with 500.
    pub const fn new(code: &'static str) -> Self {
        Self {
            code,
            unavailable: false,
        }
    }

    /// A resource ran out for now (the relay's ports): the call is refused with 503, and the
    /// caller may try later.
    pub const fn unavailable(code: &'static str) -> Self {
        Self {
            code,
            unavailable: true,
        }
    }

    /// The code.
    pub const fn code(self) -> &'static str {
        self.code
    }

    /// The call's refusal when its B-leg INVITE could not be rewritten: 500 (the gateway
    /// failed, not the caller), or 503 for [`RewriteError::unavailable`]; no detail on the
    /// wire.
    pub fn refusal(self) -> Verdict {
        let status = if self.unavailable {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::SERVER_INTERNAL_ERROR
        };
        Verdict::reply(status, Reason::Rewrite(self.code))
    }
}

impl From<SdpEditError> for RewriteError {
    fn from(e: SdpEditError) -> Self {
        Self::new(e.code())
    }
}

impl From<EditError> for RewriteError {
    fn from(_: EditError) -> Self {
        Self::new("header_edit")
    }
}

impl std::fmt::Display for RewriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code)
    }
}

impl std::error::Error for RewriteError {}

/// A change the gateway makes to a call's outgoing messages. Like a policy, a rewrite does no
/// I/O and does not block: what it needs comes in through its arguments or is kept by itself.
pub trait Rewrite: Send + std::fmt::Debug {
    /// Stable, low-cardinality name: the metric's `stage` label and the call record's field.
    fn name(&self) -> &'static str;

    /// The B leg's INVITE of a new call, built and about to be sent (once per INVITE: a call
    /// to a phone with several registered contacts has one per contact). `call` is what the
    /// policies saw.
    fn invite(&mut self, _call: &CallRequest<'_>, _out: &mut Message) -> Result<(), RewriteError> {
        Ok(())
    }

    /// The number a new call's B leg presents instead of the caller's (its From and
    /// P-Asserted-Identity, and the dialog's From for every later request), when this
    /// rewrite replaces it: asked before the B leg is built. The last rewrite that answers
    /// wins.
    fn caller_id(&mut self, _call: &CallRequest<'_>) -> Option<String> {
        None
    }

    /// An SDP body crossing the gateway in a call. Edits show in the body sent, not in
    /// `sdp.sdp()`, which stays the body as received (and as the topology hiding saw it).
    fn sdp(&mut self, _ctx: &SdpContext, _sdp: &mut SdpEdit<'_>) -> Result<(), RewriteError> {
        Ok(())
    }

    /// The call ended, or was refused after the rewrites saw it (exactly once for every call
    /// the policies admitted): state kept per call goes.
    fn on_end(&mut self, _call: u64, _now: Instant) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_their_code_into_the_refusal() {
        let e = RewriteError::from(SdpEditError::Overlap);
        assert_eq!(e.code(), "sdp_overlap");
        assert_eq!(e.to_string(), "sdp_overlap");
        assert_eq!(
            RewriteError::from(EditError::BadName),
            RewriteError::new("header_edit")
        );
        let v = RewriteError::unavailable("media_ports_exhausted").refusal();
        assert!(matches!(
            v,
            Verdict::Reply { status, .. } if status == StatusCode::SERVICE_UNAVAILABLE
        ));
        let v = RewriteError::new("no_media_port").refusal();
        assert_eq!(v.reason(), Reason::Rewrite("no_media_port"));
        assert!(matches!(
            v,
            Verdict::Reply { status, phrase: None, .. } if status == StatusCode::SERVER_INTERNAL_ERROR
        ));
    }
}
