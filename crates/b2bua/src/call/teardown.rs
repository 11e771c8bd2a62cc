//! The ends of a call: CANCEL, BYE from either side or from the gateway (limits, the operator,
//! policies), final answers to the caller, and the call's removal once nothing is in flight.

use std::time::Instant;

use sipwarden_sip::{Message, StatusCode};
use sipwarden_txn::TxId;

use crate::build::{self};
use crate::call::{Call, Phase, Side};
use crate::{ClientRole, Core, ServerRole, events};

impl Core {
    /// The call's span, to enter while handling it (none for an unknown call).
    pub(crate) fn call_span(&self, id: u64) -> tracing::Span {
        self.calls
            .get(&id)
            .map_or_else(tracing::Span::none, |c| c.span.clone())
    }

    /// Hangs up a call from the gateway's side: BYE on both legs of an answered call, CANCEL
    /// and 480 for one still ringing. Returns whether the call existed.
    pub fn hangup(&mut self, now: Instant, call: u64, reason: &str) -> bool {
        self.clock = Some(now);
        let _span = self.call_span(call).entered();
        tracing::debug!(reason, "hung up by the gateway");
        let Some(phase) = self.calls.get(&call).map(Call::phase) else {
            return false;
        };
        match phase {
            Phase::Early => self.abandon_early(
                now,
                call,
                StatusCode::new(480).unwrap_or(StatusCode::REQUEST_TERMINATED),
                "Call Terminated",
            ),
            Phase::Confirmed => self.teardown(now, call, reason),
            Phase::Ending => {}
        }
        self.process_events(now);
        true
    }

    /// The media engine could not anchor the SDP of one of the call's messages, so that
    /// message never left the gateway. While the call is early and B has answered nothing,
    /// its INVITE is that message: the transaction is forgotten (B never saw it, there is
    /// nothing to cancel) and A gets 503. Otherwise the call ends as [`Core::hangup`] ends
    /// it. Returns whether the call existed.
    pub fn media_failed(&mut self, now: Instant, call: u64) -> bool {
        self.clock = Some(now);
        let Some(c) = self.calls.get_mut(&call) else {
            return false;
        };
        let unseen = c.is_early() && c.forks.is_empty() && c.leg(Side::B).remote_tag.is_none();
        if !unseen {
            return self.hangup(now, call, "media engine could not anchor the call");
        }
        let _span = c.span.clone().entered();
        tracing::debug!("media engine failed: the INVITE never left");
        if let Some(tx) = c.b_invite_tx.take() {
            self.txl.abandon(tx);
            self.clients.remove(&tx);
        }
        self.abandon_early(
            now,
            call,
            StatusCode::SERVICE_UNAVAILABLE,
            "media engine could not anchor the call",
        );
        self.process_events(now);
        true
    }

    /// Hangs up every call (end of the shutdown grace period).
    pub fn hangup_all(&mut self, now: Instant, reason: &str) {
        for id in self.call_ids() {
            self.hangup(now, id, reason);
        }
    }

    pub(crate) fn on_cancelled(&mut self, now: Instant, invite: TxId) {
        let Some(&(id, role)) = self.servers.get(&invite) else {
            return;
        };
        if !matches!(role, ServerRole::Invite) {
            // A CANCEL for a relayed re-INVITE: let the re-INVITE finish on the other leg.
            return;
        }
        let _span = self.call_span(id).entered();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if !call.is_early() {
            return;
        }
        tracing::debug!("CANCEL from the caller");
        call.note_end(events::EndedBy::Caller, "cancelled");
        if let Some(b_tx) = call.b_invite_tx {
            // Err: it has just finished (its final answer crossed this), nothing to cancel.
            let _ = self.txl.cancel(now, b_tx);
        }
        self.cancel_forks(now, id);
        self.final_to_a(now, id, StatusCode::REQUEST_TERMINATED, None);
        self.maybe_finish(id);
    }

    // === responses ===

    pub(crate) fn final_to_a(
        &mut self,
        now: Instant,
        id: u64,
        status: StatusCode,
        reason: Option<&str>,
    ) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if !call.state.fail(status.as_u16()) {
            return;
        }
        tracing::debug!(status = status.as_u16(), "final answer to the caller");
        let tag = call.a.local_tag.clone();
        let r = Message::response_to(&call.a_invite, status, reason, Some(&tag));
        let a_tx = call.a_invite_tx;
        if let Some(r) = self.built(r) {
            if self.txl.send_response(now, a_tx, &r).is_err() {
                self.stats.internal_send_errors += 1;
            }
        }
    }

    /// Gives up on a call still ringing: CANCEL on B, `status` on A.
    pub(crate) fn abandon_early(
        &mut self,
        now: Instant,
        id: u64,
        status: StatusCode,
        reason: &str,
    ) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if !call.is_early() {
            return;
        }
        call.note_end(events::EndedBy::Gateway, reason);
        if let Some(b_tx) = call.b_invite_tx {
            // Err: it has just finished (its final answer crossed this), nothing to cancel.
            let _ = self.txl.cancel(now, b_tx);
        }
        self.cancel_forks(now, id);
        self.final_to_a(now, id, status, Some(reason));
        self.maybe_finish(id);
    }

    /// BYE on both legs of an answered call.
    pub(crate) fn teardown(&mut self, now: Instant, id: u64, reason: &str) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if !call.state.hang_up() {
            return;
        }
        call.note_end(events::EndedBy::Gateway, reason);
        self.send_bye(now, id, Side::A, reason);
        self.send_bye(now, id, Side::B, reason);
        self.maybe_finish(id);
    }

    pub(crate) fn send_bye(&mut self, now: Instant, id: u64, side: Side, reason: &str) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.state.hang_up();
        if call.leg(side).remote_tag.is_none() {
            return;
        }
        let Ok(bye) = build::bye(call, side, reason, &self.local, &mut self.ids) else {
            return;
        };
        let target = call.leg(side).target;
        if let Ok(tx) = self.txl.send_request(now, bye, target, target.reliable()) {
            call.byes.push((side, tx));
            call.txs.push(tx);
            self.clients.insert(tx, (id, ClientRole::Bye));
        }
    }

    /// Ends the call if nothing of it is still in flight.
    pub(crate) fn maybe_finish(&mut self, id: u64) {
        let done = self.calls.get(&id).is_some_and(|c| {
            c.phase() == Phase::Ending
                && c.b_invite_tx.is_none()
                && c.forks.is_empty()
                && c.byes.is_empty()
        });
        if done {
            self.finish(id);
        }
    }

    /// Remembers transactions a call has roles in, so ending it costs O(its transactions).
    pub(crate) fn track(&mut self, id: u64, txs: &[TxId]) {
        if let Some(call) = self.calls.get_mut(&id) {
            call.txs.extend_from_slice(txs);
        }
    }

    /// Forgets a call: its dialogs and transaction roles. Transactions still running finish
    /// on their own timers.
    pub(crate) fn finish(&mut self, id: u64) {
        self.set_timer(id, None);
        self.disarm_failover(id);
        let Some(call) = self.calls.remove(&id) else {
            return;
        };
        let _span = call.span.clone().entered();
        tracing::debug!(
            status = call.state.caller_status(),
            by = call.ending.as_ref().map_or("gateway", |(by, _)| by.as_str()),
            reason = %call.ending.as_ref().map_or("ended", |(_, r)| r.as_str()),
            "call ended"
        );
        if let Some(now) = self.clock {
            self.policies_ended(id, now);
            let (by, reason) = call
                .ending
                .clone()
                .unwrap_or_else(|| (events::EndedBy::Gateway, "ended".to_owned()));
            self.call_event(
                now,
                id,
                events::CallEventKind::Ended {
                    status: call.state.caller_status(),
                    by,
                    reason,
                },
            );
        }
        self.dialogs.remove(&(call.a.call_id, call.a.local_tag));
        self.dialogs.remove(&(call.b.call_id, call.b.local_tag));
        for tx in &call.txs {
            self.clients.remove(tx);
            self.servers.remove(tx);
        }
    }
}
