//! Responses to the B leg's INVITE: provisional and reliable ones relayed to A, the answer,
//! failures, a trunk's challenge answered once, and transactions that time out.

use std::time::Instant;

use sipwarden_sip::{Message, Method, StatusCode};
use sipwarden_txn::TxId;

use crate::build::{self};
use crate::call::{RelRsp, Side, note_failure};
use crate::trunk_auth;
use crate::{ClientRole, Core, ServerRole, TimerKind, events};

impl Core {
    pub(crate) fn on_invite_response(
        &mut self,
        now: Instant,
        id: u64,
        tx: TxId,
        rsp: Message,
        status: StatusCode,
    ) {
        let _span = self.call_span(id).entered();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if status.is_final() || status.as_u16() > 100 {
            tracing::debug!(status = status.as_u16(), "response from B");
        }
        if call.b_invite_tx != Some(tx) {
            if let Some(i) = call.forks.iter().position(|f| f.tx == tx) {
                self.on_fork_response(now, id, i, rsp, status);
            }
            return;
        }
        self.on_attempt_response(now, id, &rsp, status);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let code = status.as_u16();
        if code == 100 {
            return;
        }
        if let Some(tag) = rsp.to_tag() {
            if status.is_provisional() || status.is_success() {
                let b = &mut call.b;
                if b.remote_tag.is_none() || status.is_success() {
                    b.remote_tag = Some(tag.to_owned());
                    if let Some(c) = build::contact_uri(&rsp) {
                        b.remote_target = c;
                    }
                    b.route_set = build::route_set_from_response(&rsp);
                }
            }
        }
        if status.is_provisional() {
            if !call.is_early() {
                return;
            }
            let rel = build::reliable_rseq(&rsp).map(|b_rseq| {
                let a_rseq = call.next_a_rseq;
                call.next_a_rseq += 1;
                call.rel.push(RelRsp {
                    a_rseq,
                    b_rseq,
                    b_tag: rsp.to_tag().unwrap_or("").to_owned(),
                    b_target: build::contact_uri(&rsp)
                        .unwrap_or_else(|| call.b.remote_target.clone()),
                });
                a_rseq
            });
            if let Ok(out) =
                build::response_to_a(&rsp, call, &self.local, rel, &mut self.rewrites.call(id))
            {
                if self.txl.send_response(now, call.a_invite_tx, &out).is_err() {
                    self.stats.internal_send_errors += 1;
                }
            } else {
                self.stats.internal_build_errors += 1;
            }
            return;
        }
        self.clients.remove(&tx);
        call.b_invite_tx = None;
        if status.is_success() {
            let tag = rsp.to_tag().unwrap_or("").to_owned();
            if !call.state.confirm(status.as_u16(), tx, tag) {
                // Answered after A gave up: acknowledge and hang up B.
                let cseq = call.b_invite.cseq().map_or(1, |c| c.seq);
                if let Ok(ack) = build::ack_for_2xx(
                    call,
                    Side::B,
                    &rsp,
                    cseq,
                    &self.local,
                    &mut self.ids,
                    &mut self.rewrites.call(id),
                ) {
                    let target = call.b.target;
                    self.txl.send_ack(tx, &ack, target);
                } else {
                    self.stats.internal_build_errors += 1;
                }
                self.send_bye(now, id, Side::B, "call cancelled");
                return;
            }
            self.cancel_forks(now, id);
            let Some(call) = self.calls.get_mut(&id) else {
                return;
            };
            let deadline = now + call.max_duration;
            let a_tx = call.a_invite_tx;
            let relayed =
                build::response_to_a(&rsp, call, &self.local, None, &mut self.rewrites.call(id));
            self.stats.calls_answered += 1;
            self.policies_answered(id, now);
            self.call_event(now, id, events::CallEventKind::Answered);
            match relayed {
                Ok(out) => {
                    if self.txl.send_response(now, a_tx, &out).is_err() {
                        self.stats.internal_send_errors += 1;
                    }
                    self.set_timer(id, Some((deadline, TimerKind::MaxDuration)));
                }
                // The answer cannot be written for A (never seen): B is hung up rather
                // than left connected to nobody.
                Err(_) => self.teardown(now, id, "answer could not be relayed"),
            }
            return;
        }
        // A challenge from the trunk: answer it once.
        if matches!(code, 401 | 407) {
            let creds = call
                .b_trunk
                .and_then(|t| call.routes.trunks.get(t))
                .and_then(|t| t.credentials.clone())
                .filter(|_| call.state.try_trunk_auth());
            if let Some((user, pass)) = creds {
                let cnonce = self.ids.cnonce();
                let branch = self.ids.branch();
                if let Ok(next) = trunk_auth::answer_challenge(
                    &call.b_invite,
                    &rsp,
                    &user,
                    pass.expose(),
                    &cnonce,
                    &branch,
                ) {
                    call.b.local_cseq = next.cseq().map_or(call.b.local_cseq, |c| c.seq);
                    call.b_invite = next.clone();
                    let target = call.b.target;
                    if let Ok(ntx) = self.txl.send_request(now, next, target, target.reliable()) {
                        call.b_invite_tx = Some(ntx);
                        call.txs.push(ntx);
                        self.clients.insert(ntx, (id, ClientRole::Invite));
                        return;
                    }
                }
            }
        }
        // A failure of one fork while others still ring: the next one takes its place.
        if call.is_early() && call.forks.iter().any(|f| !f.cancelled) {
            note_failure(call, status);
            self.promote_fork(id);
            return;
        }
        // A failure: pass the status back (a second challenge becomes 403: the PBX cannot
        // answer the trunk's challenge, and must not see it).
        if !call.is_early() {
            self.maybe_finish(id);
            return;
        }
        // 408 or 5xx from a trunk: the next address of the route, if there is one.
        if call.outbound.is_some() && self.fail_over(now, id, Some(status)) {
            return;
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let (status, reason) = if matches!(code, 401 | 407) && call.b_trunk.is_some() {
            call.note_end(events::EndedBy::Gateway, "trunk authentication failed");
            (StatusCode::FORBIDDEN, Some("Trunk Authentication Failed"))
        } else {
            note_failure(call, status);
            let best = call.best_failure.unwrap_or(status);
            call.note_end(
                events::EndedBy::Callee,
                format!("{} from the callee", best.as_u16()),
            );
            (best, None)
        };
        self.final_to_a(now, id, status, reason);
        self.maybe_finish(id);
    }

    pub(crate) fn on_client_timeout(&mut self, now: Instant, tx: TxId) {
        let Some((id, role)) = self.clients.remove(&tx) else {
            return;
        };
        match role {
            ClientRole::Invite => {
                let Some(call) = self.calls.get_mut(&id) else {
                    return;
                };
                if call.b_invite_tx != Some(tx) {
                    // A fork that never answered.
                    call.forks.retain(|f| f.tx != tx);
                    note_failure(call, StatusCode::REQUEST_TIMEOUT);
                    self.maybe_finish(id);
                    return;
                }
                call.b_invite_tx = None;
                if call.is_early() && call.forks.iter().any(|f| !f.cancelled) {
                    note_failure(call, StatusCode::REQUEST_TIMEOUT);
                    self.promote_fork(id);
                    return;
                }
                if call.outbound.is_some() {
                    if let Some(a) = call.outbound.as_ref().map(|o| o.current) {
                        let routes = std::sync::Arc::clone(&call.routes);
                        let marked = self.trunks.failed(&routes, a, now, None);
                        self.trunk_marked(&routes, a, marked);
                    }
                    if self.fail_over(now, id, None) {
                        return;
                    }
                }
                let Some(call) = self.calls.get_mut(&id) else {
                    return;
                };
                note_failure(call, StatusCode::REQUEST_TIMEOUT);
                call.note_end(
                    events::EndedBy::Gateway,
                    "the callee did not answer (timeout)",
                );
                let status = call.best_failure.unwrap_or(StatusCode::REQUEST_TIMEOUT);
                self.final_to_a(now, id, status, None);
                self.maybe_finish(id);
            }
            ClientRole::Relay { server, .. } => {
                if let Some(req) = self.txl.server_request(server).cloned() {
                    self.reply(now, server, &req, StatusCode::REQUEST_TIMEOUT, None);
                    if req.method() == Some(Method::Bye) {
                        self.finish(id);
                    }
                }
            }
            ClientRole::Bye => {
                if let Some(call) = self.calls.get_mut(&id) {
                    call.byes.retain(|(_, t)| *t != tx);
                }
                self.maybe_finish(id);
            }
            ClientRole::Abandoned => self.on_abandoned_timeout(tx),
            ClientRole::Qualify => self.on_qualify_timeout(tx),
            ClientRole::Register => self.on_outreg_timeout(now, tx),
        }
    }

    pub(crate) fn on_ack_timeout(&mut self, now: Instant, tx: TxId) {
        let Some(&(id, role)) = self.servers.get(&tx) else {
            return;
        };
        if matches!(role, ServerRole::Invite) {
            // A never acknowledged the answer: acknowledge B ourselves and end the call.
            self.ack_b_without_a(id);
            self.teardown(now, id, "no ACK");
        }
    }

    /// Acknowledges B's 2xx without A's ACK (A's was lost, or never came), if it waits: with
    /// no body (a late-offer answer would have been in A's ACK). Returns whether it waited.
    pub(crate) fn ack_b_without_a(&mut self, id: u64) -> bool {
        let Some(call) = self.calls.get_mut(&id) else {
            return false;
        };
        let Some((b_tx, _)) = call.state.take_b_ack() else {
            return false;
        };
        let invite = call.b_invite.clone();
        let cseq = invite.cseq().map_or(1, |c| c.seq);
        let ack = build::ack_for_2xx(
            call,
            Side::B,
            &invite,
            cseq,
            &self.local,
            &mut self.ids,
            &mut self.rewrites.call(id),
        );
        let target = call.b.target;
        match ack {
            Ok(ack) => self.txl.send_ack(b_tx, &ack, target),
            Err(_) => self.stats.internal_build_errors += 1,
        }
        true
    }

    // === forks ===
}
