//! How the core runs the rewrites it is given (it knows none of them; see
//! `sipwarden_stages::rewrite` for the contract and the failure story): every SDP body that
//! crosses in a call goes through its own topology hiding first, then the configured rewrites
//! in order, while the builders copy it; the B leg's INVITE, once built, goes through each
//! rewrite's `invite`.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use sipwarden_sip::Method;
use sipwarden_sip::sdp::{SdpEdit, SdpLimits};
use sipwarden_stages::{
    CallRequest, Rewrite, RewriteError, SdpContext, SdpKind, StageName, Toward, Verdict,
};

use crate::Core;
use crate::build::{BuildError, Built};
use crate::call::Side;

/// The SDP the core edits may be bigger than the parser's defaults allow (a browser's video
/// offer has well over 64 attributes in a section): a body the editor cannot parse crosses
/// unchanged, so these bound only what a message's body limit bounds already.
const SDP_LIMITS: SdpLimits = SdpLimits {
    max_lines: 2048,
    max_media: 32,
    max_attributes: 512,
    max_line_len: 4096,
};

/// Topology hiding, the first rewrite of every SDP body and not one the server can remove:
/// the origin line names the gateway (`-` and its address on the outgoing leg), not the
/// machine that wrote the offer, and the session name is `-` (PBXs write their product and
/// version there). Session id and version are kept, so the version still moves when, and
/// only when, the offerer changes its SDP. Media addresses stay (media anchoring will be a
/// rewrite of its own).
#[derive(Debug)]
struct HideOrigin;

impl Rewrite for HideOrigin {
    fn name(&self) -> &'static str {
        "sdp_origin"
    }

    fn sdp(&mut self, ctx: &SdpContext, sdp: &mut SdpEdit<'_>) -> Result<(), RewriteError> {
        sdp.set_origin_username("-")?;
        sdp.set_origin_address(ctx.local.ip())?;
        sdp.set_session_name("-")?;
        Ok(())
    }
}

/// A rewrite that failed on a body of a running call.
#[derive(Debug)]
struct Failure {
    call: u64,
    name: &'static str,
    error: RewriteError,
    /// The message crossed anyway (a response, an ACK): the call must end.
    end_call: bool,
}

/// The configured rewrites, and the failures the core has yet to act on.
#[derive(Debug, Default)]
pub(crate) struct Rewrites {
    list: Vec<Box<dyn Rewrite>>,
    failures: Vec<Failure>,
}

impl Rewrites {
    /// The rewrites as they apply to one call's messages (what the builders get).
    pub(crate) fn call(&mut self, call: u64) -> CallRewrites<'_> {
        CallRewrites {
            rewrites: self,
            call,
        }
    }
}

/// The rewrites, for the messages of one call.
pub(crate) struct CallRewrites<'a> {
    rewrites: &'a mut Rewrites,
    call: u64,
}

/// Whether a message can be refused instead of crossing half rewritten: the INVITE and
/// requests inside the call, not responses and ACKs.
fn refusable(kind: SdpKind) -> bool {
    match kind {
        SdpKind::Invite => true,
        SdpKind::InDialogRequest(m) => m != Method::Ack,
        SdpKind::InviteResponse(_) | SdpKind::Ack | SdpKind::InDialogResponse(..) => false,
    }
}

impl CallRewrites<'_> {
    /// An SDP body on its way out to `peer` on leg `toward`, the gateway's address there
    /// being `local`: the body to send. A body that is not SDP the editor can parse crosses
    /// unchanged. When a rewrite fails, its own edits are undone and the others still run;
    /// then a message that can be refused is ([`BuildError::Rewrite`]), and any other is
    /// sent and its call ended after the input (`Core::rewrite_failures`).
    pub(crate) fn sdp(
        &mut self,
        body: &[u8],
        (toward, kind): (Side, SdpKind),
        (local, peer): (SocketAddr, SocketAddr),
    ) -> Result<Bytes, BuildError> {
        let Ok(mut edit) = SdpEdit::with_limits(body, &SDP_LIMITS) else {
            return Ok(Bytes::copy_from_slice(body));
        };
        let ctx = SdpContext {
            call: self.call,
            toward: match toward {
                Side::A => Toward::A,
                Side::B => Toward::B,
            },
            kind,
            local,
            peer,
        };
        let mut failed = None;
        let list = &mut self.rewrites.list;
        let builtin: &mut dyn Rewrite = &mut HideOrigin;
        for r in std::iter::once(builtin).chain(list.iter_mut().map(|r| &mut **r)) {
            let mark = edit.mark();
            if let Err(e) = r.sdp(&ctx, &mut edit) {
                edit.rollback(mark);
                failed.get_or_insert_with(|| (r.name(), e));
            }
        }
        if let Some((name, error)) = failed {
            let refused = refusable(kind);
            // The INVITE's refusal is counted where the call is refused.
            if kind != SdpKind::Invite {
                self.rewrites.failures.push(Failure {
                    call: self.call,
                    name,
                    error,
                    end_call: !refused,
                });
            }
            if refused {
                return Err(BuildError::Rewrite(name, error));
            }
        }
        Ok(Bytes::from(edit.finish()))
    }
}

impl Core {
    /// The rewrites of the calls' outgoing messages, in the order they run (the server picks
    /// them; none by default). The core's topology hiding of SDP runs before them, always.
    pub fn set_rewrites(&mut self, rewrites: Vec<Box<dyn Rewrite>>) {
        self.rewrites.list = rewrites;
    }

    /// A reload's rewrites from the configuration: those of the running list with the same
    /// names as `managed` are replaced by `new` (appended); the others (media anchoring, with
    /// the calls it holds) stay as they are.
    pub fn reload_rewrites(&mut self, managed: &[&str], new: Vec<Box<dyn Rewrite>>) {
        self.rewrites.list.retain(|r| !managed.contains(&r.name()));
        self.rewrites.list.extend(new);
    }

    /// The number a new call presents on its B leg, when a rewrite replaces the caller's.
    pub(crate) fn rewrite_caller_id(&mut self, request: &CallRequest<'_>) -> Option<String> {
        self.rewrites
            .list
            .iter_mut()
            .filter_map(|r| r.caller_id(request))
            .last()
    }

    /// Runs the rewrites over the B-leg INVITE(s) of a new call, built with their offers
    /// rewritten. The first failure, of an offer or of an INVITE, refuses the call (fail
    /// closed: nothing has been sent to B yet).
    pub(crate) fn rewrite_invites<L>(
        &mut self,
        request: &CallRequest<'_>,
        legs: &mut [(L, Built)],
    ) -> Result<(), (StageName, Verdict)> {
        for (_, built) in legs.iter_mut() {
            let failure = match built {
                Err(BuildError::Rewrite(name, e)) => Some((*name, *e)),
                Err(BuildError::Edit) => None,
                Ok(_) if self.rewrites.list.is_empty() => None,
                Ok(m) => {
                    let failure = self
                        .rewrites
                        .list
                        .iter_mut()
                        .find_map(|r| r.invite(request, m).err().map(|e| (r.name(), e)));
                    // Content-Length last again, and the cached headers re-read after the
                    // rewrites' edits.
                    if m.finish().is_err() {
                        *built = Err(BuildError::Edit);
                    }
                    failure
                }
            };
            if let Some((name, e)) = failure {
                let stage = StageName::Rewrite(name);
                let verdict = e.refusal();
                self.verdicts.record(stage, &verdict);
                return Err((stage, verdict));
            }
        }
        Ok(())
    }

    /// Acts on the rewrites' failures on running calls: counted, and the calls whose messages
    /// crossed without a rewrite they needed are ended, as a policy's hang-up ends one.
    pub(crate) fn rewrite_failures(&mut self, now: Instant) {
        for f in std::mem::take(&mut self.rewrites.failures) {
            if f.end_call {
                let why = format!("ended by rewrite {}: {}", f.name, f.error);
                self.hangup(now, f.call, &why);
            } else {
                self.verdicts
                    .record(StageName::Rewrite(f.name), &f.error.refusal());
            }
        }
    }

    /// Tells the rewrites a call ended.
    pub(crate) fn rewrites_ended(&mut self, call: u64, now: Instant) {
        for r in &mut self.rewrites.list {
            r.on_end(call, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(body: &[u8], local: &str) -> Bytes {
        let mut rw = Rewrites::default();
        let addr: SocketAddr = format!("{local}:5060")
            .parse()
            .unwrap_or_else(|_| format!("[{local}]:5060").parse().unwrap());
        rw.call(1)
            .sdp(body, (Side::B, SdpKind::Invite), (addr, addr))
            .unwrap()
    }

    #[test]
    fn origin_is_rewritten_and_nothing_else() {
        let body = b"v=0\r\no=pbxuser 53655765 2353687637 IN IP4 10.0.0.10\r\ns=Asterisk\r\nc=IN IP4 10.0.0.10\r\nt=0 0\r\nm=audio 10000 RTP/AVP 0\r\n";
        let out = origin(body, "192.0.2.1");
        let s = std::str::from_utf8(&out).unwrap();
        assert_eq!(
            s,
            "v=0\r\no=- 53655765 2353687637 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 10.0.0.10\r\nt=0 0\r\nm=audio 10000 RTP/AVP 0\r\n",
            "media address stays (no anchoring yet)"
        );
        let v6 = origin(body, "2001:db8::1");
        assert!(
            std::str::from_utf8(&v6)
                .unwrap()
                .contains("\r\no=- 53655765 2353687637 IN IP6 2001:db8::1\r\n")
        );
        let junk = b"not sdp";
        assert_eq!(origin(junk, "192.0.2.1"), &junk[..]);
    }
}
