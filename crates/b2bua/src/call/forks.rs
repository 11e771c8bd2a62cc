//! A call to an account rings every registered contact at once: the first answer wins, the
//! others are cancelled, and the best failure is chosen as RFC 3261 §16.7 says.

use std::time::Instant;

use sipwarden_sip::{Message, StatusCode};

use crate::build::{self};
use crate::call::{Fork, Side, note_failure};
use crate::{ClientRole, Core};

impl Core {
    /// A response on a fork other than the current B leg.
    pub(crate) fn on_fork_response(
        &mut self,
        now: Instant,
        id: u64,
        i: usize,
        rsp: Message,
        status: StatusCode,
    ) {
        if status.as_u16() == 100 {
            return;
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(fork) = call.forks.get_mut(i) else {
            return;
        };
        if let Some(tag) = rsp.to_tag() {
            if !status.is_final() || status.is_success() {
                fork.leg.remote_tag = Some(tag.to_owned());
                if let Some(c) = build::contact_uri(&rsp) {
                    fork.leg.remote_target = c;
                }
                fork.leg.route_set = build::route_set_from_response(&rsp);
            }
        }
        if status.is_provisional() {
            if !fork.cancelled && call.is_early() {
                if let Ok(out) =
                    build::response_to_a(&rsp, call, &self.local, None, &mut self.rewrites.call(id))
                {
                    if self.txl.send_response(now, call.a_invite_tx, &out).is_err() {
                        self.stats.internal_send_errors += 1;
                    }
                } else {
                    self.stats.internal_build_errors += 1;
                }
            }
            return;
        }
        let fork = call.forks.remove(i);
        self.clients.remove(&fork.tx);
        if !status.is_success() {
            if !fork.cancelled {
                note_failure(call, status);
            }
            // The last fork to fail ends the call when the current B leg is gone too.
            if call.b_invite_tx.is_none() && call.forks.is_empty() && call.is_early() {
                let best = call.best_failure.unwrap_or(status);
                self.final_to_a(now, id, best, None);
            }
            self.maybe_finish(id);
            return;
        }
        if fork.cancelled || !call.is_early() {
            // Answered too late: another fork won, or the caller gave up.
            self.end_fork(now, fork);
            self.maybe_finish(id);
            return;
        }
        // This fork answered first: it becomes the B leg, the current one a fork to cancel.
        let Fork {
            leg, invite, tx, ..
        } = fork;
        let old_leg = std::mem::replace(&mut call.b, leg);
        let old_invite = std::mem::replace(&mut call.b_invite, invite);
        let old_tx = call.b_invite_tx.replace(tx);
        self.dialogs
            .remove(&(old_leg.call_id.clone(), old_leg.local_tag.clone()));
        self.dialogs.insert(
            (call.b.call_id.clone(), call.b.local_tag.clone()),
            (id, Side::B),
        );
        if let Some(old_tx) = old_tx {
            call.forks.push(Fork {
                leg: old_leg,
                invite: old_invite,
                tx: old_tx,
                cancelled: false,
            });
        }
        self.clients.insert(tx, (id, ClientRole::Invite));
        self.on_invite_response(now, id, tx, rsp, status);
    }

    /// CANCEL every fork still ringing (another answered, or the call ends).
    pub(crate) fn cancel_forks(&mut self, now: Instant, id: u64) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        for f in call.forks.iter_mut().filter(|f| !f.cancelled) {
            f.cancelled = true;
            // Err: it has just finished (its final answer crossed this), nothing to cancel.
            let _ = self.txl.cancel(now, f.tx);
        }
    }

    /// The current B leg failed: the first fork still ringing takes its place.
    pub(crate) fn promote_fork(&mut self, id: u64) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(i) = call.forks.iter().position(|f| !f.cancelled) else {
            return;
        };
        let f = call.forks.remove(i);
        let old = std::mem::replace(&mut call.b, f.leg);
        call.b_invite = f.invite;
        call.b_invite_tx = Some(f.tx);
        self.dialogs.remove(&(old.call_id, old.local_tag));
        self.dialogs.insert(
            (call.b.call_id.clone(), call.b.local_tag.clone()),
            (id, Side::B),
        );
    }

    /// ACK and BYE for a fork that answered after the call was settled.
    pub(crate) fn end_fork(&mut self, now: Instant, mut fork: Fork) {
        let cseq = fork.invite.cseq().map_or(1, |c| c.seq);
        let target = fork.leg.target;
        if let Ok(ack) = build::ack_on_leg(&fork.leg, cseq, &self.local, &mut self.ids) {
            self.txl.send_ack(fork.tx, &ack, target);
        } else {
            self.stats.internal_build_errors += 1;
        }
        if let Ok(bye) = build::bye_on_leg(
            &mut fork.leg,
            "answered elsewhere",
            &self.local,
            &mut self.ids,
        ) {
            if self
                .txl
                .send_request(now, bye, target, target.reliable())
                .is_err()
            {
                self.stats.internal_send_errors += 1;
            }
        } else {
            self.stats.internal_build_errors += 1;
        }
    }

    // === endings ===
}
