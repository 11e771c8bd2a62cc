//! The dispatcher: every input of the core — a message, a timer — goes through here to the
//! edge stages, the registrar, the transaction layer and the call it belongs to. It decides
//! which part handles what; the parts decide the rest.

use std::time::Instant;

use sipwarden_sip::header::Transport;
use sipwarden_sip::{HeaderName, Message, Method, Peer, StatusCode};
use sipwarden_txn::{Event, Transmit, TxId};

use sipwarden_stages::Verdict;

use crate::Binding;
use crate::auth_stage::Authed;
use crate::build::{self};
use crate::call::{Call, Phase};
use crate::endpoint_auth::Ask;
use crate::registrar::{self, Outcome, Register};
use crate::routes::Zone;
use crate::{ClientRole, Core, TimerKind, events, same_peer, stamp_received};

impl Core {
    /// The transport could not reach `peer` (connection refused, TLS handshake failed):
    /// what waits for it fails now (a call moves on to its next address) instead of timing
    /// out.
    pub fn on_transport_error(&mut self, now: Instant, peer: Peer) {
        self.clock = Some(now);
        let n = self.txl.transport_failed(&peer);
        self.stats.transport_failures += n as u64;
        if n > 0 {
            tracing::debug!(peer = %peer.addr, transactions = n, "transport failure");
        }
        self.process_events(now);
        self.policy_hangups(now);
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.clock = Some(now);
        self.txl.handle_timeout(now);
        self.registrar.expire(now);
        self.defence.bans.expire(now);
        if self.ping_at.is_some_and(|at| at <= now) {
            self.ping_phones(now);
        }
        if self.qualify.kick || self.qualify.due().is_some_and(|at| at <= now) {
            self.qualify_round(now);
        }
        if self.outreg.kick || self.outreg.due().is_some_and(|at| at <= now) {
            self.outreg_round(now);
        }
        while let Some(&(at, id, kind)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            if kind == TimerKind::Failover {
                let _span = self.call_span(id).entered();
                self.on_failover_timer(now, id);
                continue;
            }
            if let Some(call) = self.calls.get_mut(&id) {
                call.timer = None;
            }
            let _span = self.call_span(id).entered();
            match (kind, self.calls.get(&id).map(Call::phase)) {
                (TimerKind::Ring, Some(Phase::Early)) => {
                    tracing::debug!("ring timeout");
                    if let Some(call) = self.calls.get_mut(&id) {
                        call.note_end(events::EndedBy::Gateway, "ring timeout");
                    }
                    self.abandon_early(now, id, StatusCode::REQUEST_TIMEOUT, "No Answer");
                }
                (TimerKind::MaxDuration, Some(Phase::Confirmed)) => {
                    tracing::debug!("maximum duration reached");
                    self.teardown(now, id, "maximum call duration reached");
                }
                _ => {}
            }
        }
        self.process_events(now);
        self.policy_hangups(now);
        self.rewrite_failures(now);
    }

    /// Sends the keep-alive OPTIONS to every phone registered over UDP and schedules the
    /// next round. Answers (or their absence) change nothing: the point is the packet.
    pub(crate) fn ping_phones(&mut self, now: Instant) {
        let Some(every) = self.routes.registrar.udp_ping else {
            self.ping_at = None;
            return;
        };
        self.ping_at = Some(now + every);
        let udp: Vec<Binding> = self
            .registrar
            .location()
            .all()
            .filter(|b| b.source.transport == Transport::Udp)
            .cloned()
            .collect();
        for b in &udp {
            let m = build::keepalive_options(b, &self.local, &mut self.ids);
            if let Some(m) = self.built(m) {
                let s = self.txl.send_request(now, m, b.source, false);
                self.sent(s);
            }
        }
        self.stats.keepalives_sent += udp.len() as u64;
    }

    /// A message arrived from `src`.
    pub fn on_message(&mut self, now: Instant, mut msg: Message, src: Peer) {
        self.clock = Some(now);
        if self.ping_at.is_none() {
            if let Some(every) = self.routes.registrar.udp_ping {
                self.ping_at = Some(now + every);
            }
        }
        // The edge stages, cheapest first (DESIGN §3): ban, rate limit, sanity, scanner, ACL.
        let zone = self.routes.zone(src.addr.ip());
        if !self.run_edge(now, &mut msg, src, zone) {
            return;
        }
        if msg.is_request() {
            stamp_received(&mut msg, src.addr);
            if msg.method() == Some(Method::Register) {
                self.on_register(now, msg, src);
                return;
            }
            // A phone's INVITE without our credentials gets its 407 statelessly: no
            // transaction, no 100 Trying, no retransmissions toward an address that may be
            // forged (one answer per request, not a dozen).
            if zone == Zone::Endpoint
                && msg.method() == Some(Method::Invite)
                && msg.to_tag().is_none()
                && !self.has_our_credentials(&msg)
            {
                if let Some(rsp) = self.challenge(now, &msg, src, false, false) {
                    self.txl.send_stateless(src, &rsp);
                }
                return;
            }
            // An ACK gets no answer; a stranger's in a trunk's or the PBX's dialog is dropped
            // (it would stop our 2xx retransmissions and acknowledge the other leg's 2xx).
            if msg.method() == Some(Method::Ack) && !self.is_dialog_peer(&msg, src) {
                self.event_not_allowed(&msg, src, "ACK from another source");
                return;
            }
            // Like an in-dialog request, a CANCEL speaks for the caller only from the
            // caller's address (or its trunk's/the PBX's networks); a stranger's (who learnt
            // the branch) gets the answer a CANCEL matching nothing gets.
            if msg.method() == Some(Method::Cancel) {
                let peer = self
                    .txl
                    .cancel_target(&msg)
                    .and_then(|invite| self.txl.server_dest(invite))
                    .map(|d| d.addr.ip());
                if peer.is_some_and(|p| !same_peer(&self.routes, src.addr.ip(), p)) {
                    self.event_not_allowed(&msg, src, "CANCEL from another source");
                    if let Ok(r) =
                        Message::response_to(&msg, StatusCode::CALL_DOES_NOT_EXIST, None, None)
                    {
                        self.txl.send_stateless(src, &r);
                    }
                    return;
                }
            }
            self.txl.on_request(now, msg, src, src.reliable());
        } else {
            self.txl.on_response(now, msg);
        }
        self.process_events(now);
        self.policy_hangups(now);
        self.rewrite_failures(now);
    }

    /// A REGISTER from `src`, answered statelessly as Kamailio's registrar does: a
    /// retransmission is simply processed again (a challenge again, or the same binding
    /// refreshed), so registrations — and REGISTER floods — hold no transaction for the 32 s
    /// RFC 3261 keeps a UDP one. The zone check and the auth stage run here; the registrar
    /// decides the rest.
    pub(crate) fn on_register(&mut self, now: Instant, msg: Message, src: Peer) {
        // One span per REGISTER: `SIPWARDEN_LOG=sipwarden=debug` shows its decisions in order.
        let _span = tracing::debug_span!(
            "register",
            call_id = %msg.call_id().unwrap_or("").escape_debug(),
            source = %src.addr,
        )
        .entered();
        let routes = std::sync::Arc::clone(&self.routes);
        if routes.zone(src.addr.ip()) != Zone::Endpoint {
            // The PBX and the trunks do not register with the gateway.
            self.event_not_allowed(&msg, src, "REGISTER from the PBX or a trunk");
            let tag = self.ids.tag();
            if let Ok(rsp) = Message::response_to(&msg, StatusCode::FORBIDDEN, None, Some(&tag)) {
                self.txl.send_stateless(src, &rsp);
            }
            return;
        }
        let aor = registrar::aor(&msg);
        let ask = Ask {
            register: true,
            aor: Some(&aor),
            src,
            also_from: None,
        };
        if let Authed::Stop {
            answer,
            verdict,
            banned,
        } = self.auth_stage(now, &msg, ask)
        {
            tracing::debug!(
                aor = %aor.escape_debug(),
                verdict = verdict.kind(),
                reason = verdict.reason().code(),
                "register: auth stops it"
            );
            if matches!(&verdict, Verdict::Reply { status, .. } if *status == StatusCode::FORBIDDEN)
            {
                self.stats.registrations_refused += 1;
            }
            // The failure that bans gets no answer: from now on the source hears nothing.
            if let (Some(rsp), false) = (answer, banned) {
                self.txl.send_stateless(src, &rsp);
            }
            return;
        }
        let to_tag = self.ids.tag();
        let before = self.registrar.pending_changes();
        let done = self.registrar.register(Register {
            now,
            msg: &msg,
            src,
            aor: &aor,
            settings: &routes.registrar,
            max_contacts: routes.accounts.get(&aor).map_or(1, |a| a.max_contacts),
            to_tag: &to_tag,
        });
        tracing::debug!(aor = %aor.escape_debug(), outcome = ?done.outcome, "register: registrar");
        match done.outcome {
            Outcome::Accepted => self.stats.registrations_accepted += 1,
            Outcome::Refused(_) => self.stats.registrations_refused += 1,
            Outcome::Full => {
                self.stats.registrations_refused += 1;
                self.stats.registrations_table_full += 1;
            }
            Outcome::OutOfOrder => {}
        }
        let Some(rsp) = done.answer else {
            // Every outcome has an answer; none means it could not be built.
            self.stats.internal_build_errors += 1;
            return;
        };
        if self.registrar.pending_changes() > before {
            // It acknowledges a binding: it waits until the binding is stored.
            self.held.push(Transmit {
                dest: src,
                bytes: rsp.to_bytes(),
            });
        } else {
            self.txl.send_stateless(src, &rsp);
        }
    }

    pub(crate) fn process_events(&mut self, now: Instant) {
        while let Some(ev) = self.txl.poll_event() {
            match ev {
                Event::Request { tx, msg } => self.on_request(now, tx, msg),
                Event::Ack { invite, msg } => self.on_ack(invite, &msg),
                Event::Cancelled { invite } => self.on_cancelled(now, invite),
                Event::Response { tx, msg } => self.on_response(now, tx, msg),
                Event::Timeout { tx } => self.on_client_timeout(now, tx),
                Event::AckTimeout { tx } => self.on_ack_timeout(now, tx),
            }
        }
    }

    // === requests ===

    pub(crate) fn reply(
        &mut self,
        now: Instant,
        tx: TxId,
        req: &Message,
        status: StatusCode,
        reason: Option<&str>,
    ) {
        let tag = self.ids.tag();
        let r = Message::response_to(req, status, reason, Some(&tag));
        if let Some(r) = self.built(r) {
            let s = self.txl.send_response(now, tx, &r);
            self.sent(s);
        }
    }

    pub(crate) fn on_request(&mut self, now: Instant, tx: TxId, msg: Message) {
        let method = msg.method().unwrap_or(Method::Extension);
        if msg.to_tag().is_some() {
            self.in_dialog(now, tx, msg);
            return;
        }
        match method {
            Method::Invite => {
                // The decisions about a new call, in order, under one span; once admitted,
                // the call's own span takes over (see `Call::span`).
                let _span = tracing::debug_span!(
                    "invite",
                    call_id = %msg.call_id().unwrap_or("").escape_debug(),
                    source = ?self.txl.server_dest(tx).map(|p| p.addr),
                )
                .entered();
                self.new_call(now, tx, msg);
            }
            Method::Register => {
                // Normally answered before the transaction layer (see `on_message`).
                if let Some(src) = self.txl.server_dest(tx).copied() {
                    self.on_register(now, msg, src);
                }
            }
            Method::Options => {
                // The PBX and trunks learn what we support; anyone else (phones' keepalives,
                // scanners) gets a bare 200, which fingerprints nothing.
                let trusted = self
                    .txl
                    .server_dest(tx)
                    .is_some_and(|src| self.routes.zone(src.addr.ip()) != Zone::Endpoint);
                let tag = self.ids.tag();
                let headers: &[(HeaderName, &str)] = if trusted {
                    &[
                        (HeaderName::Allow, build::ALLOW),
                        (HeaderName::Accept, "application/sdp"),
                        (HeaderName::Supported, build::SUPPORTED),
                    ]
                } else {
                    &[]
                };
                let r = build::response(&msg, StatusCode::OK, None, Some(&tag), headers);
                if let Some(r) = self.built(r) {
                    let s = self.txl.send_response(now, tx, &r);
                    self.sent(s);
                }
            }
            Method::Bye | Method::Prack | Method::Update | Method::Info => {
                self.reply(now, tx, &msg, StatusCode::CALL_DOES_NOT_EXIST, None);
            }
            Method::Extension => self.reply(now, tx, &msg, StatusCode::NOT_IMPLEMENTED, None),
            _ => self.reply(now, tx, &msg, StatusCode::FORBIDDEN, None),
        }
    }

    pub(crate) fn on_response(&mut self, now: Instant, tx: TxId, rsp: Message) {
        let Some(&(id, role)) = self.clients.get(&tx) else {
            return;
        };
        let status = rsp.status().unwrap_or(StatusCode::SERVER_INTERNAL_ERROR);
        match role {
            ClientRole::Invite => self.on_invite_response(now, id, tx, rsp, status),
            ClientRole::Abandoned => self.on_abandoned_response(now, tx, &rsp, status),
            ClientRole::Qualify => self.on_qualify_response(now, tx, status),
            ClientRole::Register => self.on_outreg_response(now, tx, &rsp, status),
            ClientRole::Relay { server, from } => {
                if status.is_final() {
                    self.clients.remove(&tx);
                }
                let Some(call) = self.calls.get_mut(&id) else {
                    return;
                };
                let Some(req) = self.txl.server_request(server).cloned() else {
                    return;
                };
                if status.is_success()
                    && matches!(req.method(), Some(Method::Invite | Method::Update))
                {
                    if let Some(c) = build::contact_uri(&rsp) {
                        call.leg_mut(from.other()).remote_target = c;
                    }
                }
                if let Ok(out) = build::relay_response(
                    &rsp,
                    &req,
                    call,
                    from,
                    &self.local,
                    &mut self.rewrites.call(id),
                ) {
                    if self.txl.send_response(now, server, &out).is_err() {
                        self.stats.internal_send_errors += 1;
                    }
                } else {
                    self.stats.internal_build_errors += 1;
                }
                if status.is_final() && req.method() == Some(Method::Bye) {
                    self.finish(id);
                }
            }
            ClientRole::Bye => {
                if status.is_final() {
                    self.clients.remove(&tx);
                    if let Some(call) = self.calls.get_mut(&id) {
                        call.byes.retain(|(_, t)| *t != tx);
                    }
                    self.maybe_finish(id);
                }
            }
        }
    }
}
