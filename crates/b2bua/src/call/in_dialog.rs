//! Requests inside a call's dialogs (BYE, re-INVITE, UPDATE, INFO, ACK …): who may send them,
//! and their relay to the other leg.

use std::net::IpAddr;
use std::time::Instant;

use sipwarden_sip::{HeaderName, Message, Method, Peer, StatusCode};
use sipwarden_stages::Verdict;
use sipwarden_txn::TxId;

use crate::build::{self};
use crate::call::{Phase, Side};
use crate::endpoint_auth::Ask;
use crate::routes::Zone;
use crate::{ClientRole, Core, ServerRole, auth_stage, events, same_peer};

impl Core {
    /// An in-dialog request for a phone's leg from another address: `true` when it carries
    /// the leg's account's credentials; otherwise it has been answered (407, or 403 after a
    /// failure, exactly as for a new call) and counted as a failure where it is one.
    pub(crate) fn in_dialog_auth(
        &mut self,
        now: Instant,
        tx: TxId,
        msg: &Message,
        src: Peer,
        (account, peer): (&str, IpAddr),
    ) -> bool {
        let ask = Ask {
            register: false,
            aor: Some(account),
            src,
            also_from: Some(peer),
        };
        match self.auth_stage(now, msg, ask) {
            auth_stage::Authed::Account(_) => true,
            auth_stage::Authed::Stop {
                answer, verdict, ..
            } => {
                // The request's transaction needs a final answer, ban or not.
                if matches!(&verdict, Verdict::Reply { status, .. } if *status == StatusCode::FORBIDDEN)
                {
                    self.stats.rejected += 1;
                }
                if let Some(rsp) = answer {
                    if self.txl.send_response(now, tx, &rsp).is_err() {
                        self.stats.internal_send_errors += 1;
                    }
                }
                false
            }
        }
    }

    /// Whether an ACK may act in its dialog: from the dialog's peer, or for a phone's leg
    /// from anywhere (an ACK cannot be challenged, and a phone may send it on a new
    /// connection from another address; the worst a forged one does there is stop our 2xx
    /// retransmissions). True when it matches no dialog of ours.
    pub(crate) fn is_dialog_peer(&self, msg: &Message, src: Peer) -> bool {
        let (Some(call_id), Some(tag)) = (msg.call_id(), msg.to_tag()) else {
            return true;
        };
        let Some(&(id, side)) = self.dialogs.get(&(call_id.to_owned(), tag.to_owned())) else {
            return true;
        };
        self.calls.get(&id).is_none_or(|call| {
            let peer = call.leg(side).target.addr.ip();
            same_peer(&call.routes, src.addr.ip(), peer) || call.routes.zone(peer) == Zone::Endpoint
        })
    }

    /// Whether a request carries digest credentials for our realm.
    pub(crate) fn has_our_credentials(&self, msg: &Message) -> bool {
        let realm = self.routes.accounts.realm.as_str();
        msg.auths(HeaderName::ProxyAuthorization)
            .filter_map(Result::ok)
            .any(|a| a.is_digest() && a.realm().as_deref() == Some(realm))
    }

    pub(crate) fn in_dialog(&mut self, now: Instant, tx: TxId, msg: Message) {
        let key = (
            msg.call_id().unwrap_or("").to_owned(),
            msg.to_tag().unwrap_or("").to_owned(),
        );
        let Some(&(id, side)) = self.dialogs.get(&key) else {
            self.reply(now, tx, &msg, StatusCode::CALL_DOES_NOT_EXIST, None);
            return;
        };
        let method = msg.method().unwrap_or(Method::Extension);
        let _span = self.call_span(id).entered();
        tracing::debug!(method = method.as_str(), from = ?side, "in-dialog request");
        let Some(call) = self.calls.get_mut(&id) else {
            self.reply(now, tx, &msg, StatusCode::CALL_DOES_NOT_EXIST, None);
            return;
        };
        // A dialog belongs to the peer that made it: someone who learnt the Call-ID and tags
        // (a mirrored port, a leaked trace) must not hang up, re-INVITE or REFER someone
        // else's call. The answer is the one an unknown dialog gets, so it confirms nothing.
        // A phone may move (another network, a new connection from another address): it
        // proves itself with its account's credentials instead.
        if let Some(src) = self.txl.server_dest(tx).copied() {
            let leg = call.leg(side);
            let peer = leg.target.addr.ip();
            if !same_peer(&call.routes, src.addr.ip(), peer) {
                let phone = leg
                    .account
                    .clone()
                    .filter(|_| call.routes.zone(peer) == Zone::Endpoint);
                match phone {
                    Some(account) => {
                        if !self.in_dialog_auth(now, tx, &msg, src, (&account, peer)) {
                            return;
                        }
                    }
                    None => {
                        self.stats.rejected += 1;
                        self.event_not_allowed(&msg, src, "in-dialog request from another source");
                        self.reply(now, tx, &msg, StatusCode::CALL_DOES_NOT_EXIST, None);
                        return;
                    }
                }
            }
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        // A request from A in the dialog proves A got our 2xx even if its ACK was lost: stop
        // retransmitting the 2xx and acknowledge B's now (with no body; a late-offer answer
        // would have been in the lost ACK).
        let a_tx = call.a_invite_tx;
        if side == Side::A && self.ack_b_without_a(id) {
            self.txl.assume_acknowledged(now, a_tx);
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        // Target refresh (RFC 3261 §12.2.2): a re-INVITE or UPDATE may move the peer.
        if matches!(method, Method::Invite | Method::Update) {
            if let Some(c) = build::contact_uri(&msg) {
                call.leg_mut(side).remote_target = c;
            }
        }
        if method == Method::Bye {
            let by = match side {
                Side::A => events::EndedBy::Caller,
                Side::B => events::EndedBy::Callee,
            };
            call.note_end(by, "BYE");
        }
        let other = side.other();
        let phase = call.phase();
        let other_ready = call.leg(other).remote_tag.is_some();
        if method == Method::Bye && phase == Phase::Early {
            // A BYE in an early dialog ends the attempt.
            self.reply(now, tx, &msg, StatusCode::OK, None);
            self.abandon_early(now, id, StatusCode::REQUEST_TERMINATED, "Call Terminated");
            return;
        }
        if phase == Phase::Ending || !other_ready {
            // The other leg is going away, or has no dialog yet: answer here.
            let status = if method == Method::Bye {
                StatusCode::OK
            } else {
                StatusCode::CALL_DOES_NOT_EXIST
            };
            self.reply(now, tx, &msg, status, None);
            return;
        }
        let relayed = build::relay_request(
            &msg,
            call,
            other,
            &self.local,
            &mut self.ids,
            &mut self.rewrites.call(id),
        );
        let Ok(out) = relayed else {
            self.reply(now, tx, &msg, StatusCode::SERVER_INTERNAL_ERROR, None);
            return;
        };
        let target = call.leg(other).target;
        if method == Method::Bye {
            call.state.hang_up();
        }
        let cseq = out.cseq().map_or(0, |c| c.seq);
        match self.txl.send_request(now, out, target, target.reliable()) {
            Ok(ctx) => {
                self.clients.insert(
                    ctx,
                    (
                        id,
                        ClientRole::Relay {
                            server: tx,
                            from: side,
                        },
                    ),
                );
                self.servers.insert(
                    tx,
                    (
                        id,
                        ServerRole::Relay {
                            client: ctx,
                            side,
                            cseq,
                        },
                    ),
                );
                self.track(id, &[ctx, tx]);
            }
            Err(_) => self.reply(now, tx, &msg, StatusCode::SERVICE_UNAVAILABLE, None),
        }
    }

    pub(crate) fn on_ack(&mut self, invite: Option<TxId>, ack: &Message) {
        let Some(server) = invite else { return };
        let Some(&(id, role)) = self.servers.get(&server) else {
            return;
        };
        match role {
            ServerRole::Invite => {
                // A acknowledged our 2xx: now acknowledge B's.
                let Some(call) = self.calls.get_mut(&id) else {
                    return;
                };
                if let Some((b_tx, _tag)) = call.state.take_b_ack() {
                    let cseq = call.b_invite.cseq().map_or(1, |c| c.seq);
                    if let Ok(out) = build::ack_for_2xx(
                        call,
                        Side::B,
                        ack,
                        cseq,
                        &self.local,
                        &mut self.ids,
                        &mut self.rewrites.call(id),
                    ) {
                        let target = call.b.target;
                        self.txl.send_ack(b_tx, &out, target);
                    } else {
                        self.stats.internal_build_errors += 1;
                    }
                }
            }
            ServerRole::Relay { client, side, cseq } => {
                // ACK for a relayed re-INVITE's 2xx.
                let Some(call) = self.calls.get_mut(&id) else {
                    return;
                };
                let other = side.other();
                if let Ok(out) = build::ack_for_2xx(
                    call,
                    other,
                    ack,
                    cseq,
                    &self.local,
                    &mut self.ids,
                    &mut self.rewrites.call(id),
                ) {
                    let target = call.leg(other).target;
                    self.txl.send_ack(client, &out, target);
                } else {
                    self.stats.internal_build_errors += 1;
                }
            }
        }
    }
}
