//! A new call: authentication of a phone, admission, routing, the global call limit, the call
//! policies, then the B leg(s) — one, or one per registered contact — and the call's record.

use std::sync::Arc;
use std::time::Instant;

use sipwarden_sip::{HeaderName, Message, StatusCode};
use sipwarden_stages::{Reason, StageName, Verdict};
use sipwarden_txn::TxId;

use crate::build::{self, Identity};
use crate::call::{self, Call, Fork, Side, State};
use crate::endpoint_auth::Ask;
use crate::routes::Zone;
use crate::routing::{self, Dest};
use crate::{ClientRole, Core, ServerRole, TimerKind, auth_stage, events};

impl Core {
    pub(crate) fn new_call(&mut self, now: Instant, tx: TxId, invite: Message) {
        let routes = Arc::clone(&self.routes);
        let Some(src) = self.txl.server_dest(tx).copied() else {
            return;
        };
        let zone = routes.zone(src.addr.ip());
        let user = self.called_number(zone, &invite, crate::routes::callee_of(&invite));
        // A phone authenticates before anything else: an unauthenticated caller learns
        // nothing, not even whether the number exists.
        let mut caller = None;
        if zone == Zone::Endpoint {
            let ask = Ask {
                register: false,
                aor: None,
                src,
                also_from: None,
            };
            match self.auth_stage(now, &invite, ask) {
                auth_stage::Authed::Account(account) => {
                    tracing::debug!(account = %account.escape_debug(), "invite: authenticated");
                    caller = Some(account);
                }
                auth_stage::Authed::Stop {
                    answer, verdict, ..
                } => {
                    // An INVITE is answered even when this failure bans its source: its
                    // transaction needs a final response. A 403 refuses the call.
                    let refused = matches!(
                        &verdict,
                        Verdict::Reply { status, .. } if *status == StatusCode::FORBIDDEN
                    );
                    if refused {
                        self.refuse_call(now, tx, &invite, (src, zone), (StageName::Auth, verdict));
                    } else if let Some(rsp) = answer {
                        tracing::debug!(reason = verdict.reason().code(), "invite: challenged");
                        if self.txl.send_response(now, tx, &rsp).is_err() {
                            self.stats.internal_send_errors += 1;
                        }
                    }
                    return;
                }
            }
        }
        let a_account = caller.clone();
        // The kill switch: nothing from a disabled trunk, nothing by a disabled account.
        if let Some(verdict) = self.switch_refusal(zone, a_account.as_deref()) {
            self.verdicts.record(StageName::Route, &verdict);
            self.refuse_call(now, tx, &invite, (src, zone), (StageName::Route, verdict));
            return;
        }
        let mut switched_off = None;
        let admission = if self.draining {
            Err(Verdict::Reply {
                status: StatusCode::SERVICE_UNAVAILABLE,
                reason: Reason::ShuttingDown,
                phrase: Some("Shutting Down"),
                headers: Vec::new(),
            })
        } else if self.calls.len() >= routes.max_calls {
            Err(Verdict::Reply {
                status: StatusCode::SERVICE_UNAVAILABLE,
                reason: Reason::TooManyCalls,
                phrase: Some("Too Many Calls"),
                headers: Vec::new(),
            })
        } else {
            let (trunks, ids, switch) = (&self.trunks, &mut self.ids, &self.switch);
            let switched_off = &mut switched_off;
            let mut addresses = |r: usize| {
                routes.outbound.get(r).map_or_else(Vec::new, |route| {
                    let mut out = trunks.attempts(&routes, route, now, &mut |n| ids.draw(n));
                    if !switch.is_empty() {
                        // A disabled trunk is skipped: the route's other trunks carry the
                        // call; when none is left the refusal names the switch.
                        let off = |i: usize| {
                            routes
                                .trunks
                                .get(i)
                                .filter(|t| switch.trunk_disabled(&t.name))
                        };
                        out.retain(|a| off(a.trunk).is_none());
                        if out.is_empty() {
                            *switched_off = route
                                .trunks
                                .iter()
                                .map(|t| t.0)
                                .chain(route.fallback.iter().copied())
                                .find_map(off)
                                .map(|t| t.name.clone());
                        }
                    }
                    out
                })
            };
            routing::route(
                &routes,
                zone,
                &user,
                caller,
                self.registrar.location(),
                &mut addresses,
            )
        };
        let dest = match admission {
            Ok(d) => d,
            Err(verdict) => {
                let verdict = match switched_off {
                    Some(name) if verdict.reason() == Reason::TrunksUnavailable => {
                        crate::kill_switch::refusal("trunk", &name)
                    }
                    _ => verdict,
                };
                self.verdicts.record(StageName::Route, &verdict);
                self.refuse_call(now, tx, &invite, (src, zone), (StageName::Route, verdict));
                return;
            }
        };
        self.verdicts.record(StageName::Route, &Verdict::Continue);
        tracing::debug!(destination = %dest.describe(), "invite: routed");
        // The global limit protects the PBX: above it, 503 with Retry-After instead of
        // another call it may not be able to carry.
        if matches!(dest, Dest::Pbx { .. }) && !self.defence.rate.allow_global_invite(now) {
            self.defence.stats.global_limited += 1;
            let retry = self.defence.rate.global_retry_after().to_string();
            let verdict = Verdict::Reply {
                status: StatusCode::SERVICE_UNAVAILABLE,
                reason: Reason::GlobalCallLimit,
                phrase: Some("Busy, Retry Later"),
                headers: vec![(HeaderName::RetryAfter, retry)],
            };
            self.verdicts.record(StageName::RateLimit, &verdict);
            self.refuse_call(
                now,
                tx,
                &invite,
                (src, zone),
                (StageName::RateLimit, verdict),
            );
            return;
        }
        // The call policies, in order; the first that does not continue decides.
        let id = self.next_call;
        let caller_seen = crate::routes::caller_of(&invite);
        let request = self.call_request(
            now,
            (&routes, id),
            &invite,
            (src, zone),
            (&user, &dest, a_account.as_deref()),
            &caller_seen,
        );
        if let Err(refusal) = self.admit(&request) {
            self.refuse_call(now, tx, &invite, (src, zone), refusal);
            return;
        }
        // The account the call is for, in its events: the phone that placed it or the one
        // the PBX calls.
        let event_account = a_account
            .clone()
            .or_else(|| matches!(dest, Dest::Phones(_)).then(|| user.clone()));
        // A rewrite may present another number on B (the trunk's caller-ID policy).
        let shown = self.rewrite_caller_id(&request);
        let mut a = build::a_leg(&invite, self.ids.tag(), src, &self.local);
        a.account = a_account;
        // Every B leg to try, with its INVITE: one, or one per registered contact.
        let mut legs = Vec::new();
        let mut b_trunk = None;
        let mut max_duration = routes.max_duration;
        let ids = &mut self.ids;
        let local = &self.local;
        let rw = &mut self.rewrites.call(id);
        let trunk_of_call = match &dest {
            Dest::Trunk(a) => a.first().map(|a| a.trunk),
            Dest::Pbx { trunk, .. } => *trunk,
            Dest::Phones(_) => None,
        };
        if let Some(t) = trunk_of_call.and_then(|i| routes.trunks.get(i)) {
            max_duration = t.max_duration;
        }
        // An outbound call: the first address now, the rest if it fails.
        let mut outbound = None;
        match dest {
            Dest::Trunk(mut attempts) => {
                if attempts.is_empty() {
                    return;
                }
                let first = attempts.remove(0);
                let Some(t) = routes.trunks.get(first.trunk) else {
                    return;
                };
                b_trunk = Some(first.trunk);
                outbound = Some((first, attempts));
                let b = build::b_leg(
                    &invite,
                    &user,
                    shown.as_deref(),
                    &t.host,
                    first.peer,
                    local,
                    ids,
                );
                let identity = shown.as_deref().map_or(Identity::Copy, Identity::Account);
                let m =
                    build::initial_invite(&invite, &b, local, &routes, (identity, true), ids, rw);
                legs.push((b, m));
            }
            Dest::Pbx { account, .. } => {
                let host = routes.pbx.addr.ip().to_string();
                let b = build::b_leg(
                    &invite,
                    &user,
                    account.as_deref(),
                    &host,
                    routes.pbx,
                    local,
                    ids,
                );
                let identity = account.as_deref().map_or(Identity::Copy, Identity::Account);
                let m =
                    build::initial_invite(&invite, &b, local, &routes, (identity, true), ids, rw);
                legs.push((b, m));
            }
            Dest::Phones(bindings) => {
                let reliable = bindings.len() == 1;
                for binding in &bindings {
                    let mut b =
                        build::phone_leg(&invite, binding, &routes.accounts.realm, local, ids);
                    b.account = Some(user.clone());
                    let m = build::initial_invite(
                        &invite,
                        &b,
                        local,
                        &routes,
                        (Identity::Copy, reliable),
                        ids,
                        rw,
                    );
                    legs.push((b, m));
                }
            }
        }
        // The rewrites of the B-leg INVITE(s), built with their offers rewritten: one that
        // fails refuses the call before anything reaches B.
        if let Err(refusal) = self.rewrite_invites(&request, &mut legs) {
            self.policies_ended(id, now);
            self.refuse_call(now, tx, &invite, (src, zone), refusal);
            return;
        }
        let mut sent: Vec<(call::Leg, Message, TxId)> = Vec::new();
        for (leg, m) in legs {
            let Ok(m) = m else { continue };
            let target = leg.target;
            if let Ok(btx) = self
                .txl
                .send_request(now, m.clone(), target, target.reliable())
            {
                self.clients.insert(btx, (id, ClientRole::Invite));
                sent.push((leg, m, btx));
            }
        }
        let mut sent = sent.into_iter();
        let Some((b, b_invite, b_tx)) = sent.next() else {
            // Admitted, then nothing could be sent: the policies hear of its end.
            self.policies_ended(id, now);
            let verdict = Verdict::reply(StatusCode::SERVICE_UNAVAILABLE, Reason::NoRoute);
            self.refuse_call(now, tx, &invite, (src, zone), (StageName::Route, verdict));
            return;
        };
        let forks: Vec<Fork> = sent
            .map(|(leg, invite, tx)| Fork {
                leg,
                invite,
                tx,
                cancelled: false,
            })
            .collect();
        self.next_call += 1;
        let info = self.call_info(
            &invite,
            src,
            zone,
            Some(&b.call_id),
            (b_trunk, event_account.as_deref()),
        );
        self.call_event(now, id, events::CallEventKind::Started(info));
        self.dialogs
            .insert((a.call_id.clone(), a.local_tag.clone()), (id, Side::A));
        self.dialogs
            .insert((b.call_id.clone(), b.local_tag.clone()), (id, Side::B));
        self.servers.insert(tx, (id, ServerRole::Invite));
        let mut txs = vec![b_tx, tx];
        txs.extend(forks.iter().map(|f| f.tx));
        let ring = now + routes.ring_timeout;
        let span = tracing::debug_span!(
            "call",
            id,
            a = %a.call_id.escape_debug(),
            b = %b.call_id.escape_debug(),
        );
        span.in_scope(|| {
            tracing::debug!(legs = 1 + forks.len(), "call admitted: INVITE sent on B")
        });
        self.calls.insert(
            id,
            Call {
                routes,
                a,
                b,
                state: State::Early { b_auth_sent: false },
                b_trunk,
                a_invite_tx: tx,
                a_invite: invite,
                b_invite_tx: Some(b_tx),
                b_invite,
                byes: Vec::new(),
                rel: Vec::new(),
                next_a_rseq: 1,
                max_duration,
                txs,
                forks,
                best_failure: None,
                timer: None,
                ending: None,
                span,
                outbound: None,
            },
        );
        self.set_timer(id, Some((ring, TimerKind::Ring)));
        self.stats.calls_started += 1;
        if let Some((first, rest)) = outbound {
            self.start_outbound(now, id, first, rest, (user, src, zone, caller_seen));
        }
    }
}
