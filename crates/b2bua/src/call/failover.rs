//! An outbound call that fails on one trunk address moves on to the next one of its route:
//! on no response at all within the trunk's `failover_timeout`, a transaction timeout, 408
//! or any 5xx (a 503's Retry-After marks the address down for that long), never on another
//! 4xx or a 6xx, and never once the carrier sent a provisional beyond 100 (the caller may
//! hold an early dialog with it). Each failure counts against the address's health; an
//! INVITE left behind by a "no response" move is cancelled if it ever rings and hung up if
//! it ever answers.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sipwarden_sip::{HeaderName, Message, StatusCode};
use sipwarden_txn::TxId;

use crate::build::{self, Identity};
use crate::call::{Fork, Outbound, Side, State};
use crate::routing::Dest;
use crate::trunks::Attempt;
use crate::{ClientRole, Core, TimerKind, events};

/// Whether a trunk's final answer moves the call on: 408 and 5xx.
pub(crate) fn moves_on(status: StatusCode) -> bool {
    let c = status.as_u16();
    c == 408 || (500..=599).contains(&c)
}

/// A 503's Retry-After in seconds (RFC 3261 §20.33: delta-seconds, maybe with a comment).
pub(crate) fn retry_after(rsp: &Message) -> Option<Duration> {
    if rsp.status() != Some(StatusCode::SERVICE_UNAVAILABLE) {
        return None;
    }
    let v = rsp.header(HeaderName::RetryAfter)?;
    let digits: &str = v.trim().split(|c: char| !c.is_ascii_digit()).next()?;
    digits.parse::<u64>().ok().map(Duration::from_secs)
}

impl Core {
    /// An outbound call's first attempt is out: its record, and its deadline when there is
    /// somewhere to move on to.
    pub(crate) fn start_outbound(
        &mut self,
        now: Instant,
        id: u64,
        first: Attempt,
        rest: Vec<Attempt>,
        (callee, src, zone, caller_seen): (
            String,
            sipwarden_sip::Peer,
            crate::routes::Zone,
            String,
        ),
    ) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.outbound = Some(Box::new(Outbound {
            current: first,
            next: VecDeque::from(rest),
            callee,
            src,
            zone,
            caller_seen,
            deadline: None,
            progressed: false,
        }));
        self.attempt_event(now, id, first);
        self.arm_failover(now, id);
    }

    fn attempt_event(&mut self, now: Instant, id: u64, a: Attempt) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let trunk = call
            .routes
            .trunks
            .get(a.trunk)
            .map_or_else(String::new, |t| t.name.clone());
        self.call_event(
            now,
            id,
            events::CallEventKind::Attempt {
                trunk,
                to: a.peer.addr,
                transport: a.peer.transport,
            },
        );
    }

    /// Sets the current attempt's "no response at all" deadline, if the call has another
    /// address to go to.
    fn arm_failover(&mut self, now: Instant, id: u64) {
        self.disarm_failover(id);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(out) = call.outbound.as_mut() else {
            return;
        };
        if out.next.is_empty() {
            return;
        }
        let Some(t) = call.routes.trunks.get(out.current.trunk) else {
            return;
        };
        let at = now + t.failover_timeout;
        out.deadline = Some(at);
        self.timers.insert((at, id, TimerKind::Failover));
    }

    /// Clears the current attempt's deadline.
    pub(crate) fn disarm_failover(&mut self, id: u64) {
        let Some(out) = self.calls.get_mut(&id).and_then(|c| c.outbound.as_mut()) else {
            return;
        };
        if let Some(at) = out.deadline.take() {
            self.timers.remove(&(at, id, TimerKind::Failover));
        }
    }

    /// A response from the current attempt: it answered, so no deadline; a provisional
    /// beyond 100 pins the call to it; a final answer tells the address's health.
    pub(crate) fn on_attempt_response(
        &mut self,
        now: Instant,
        id: u64,
        rsp: &Message,
        status: StatusCode,
    ) {
        self.disarm_failover(id);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(out) = call.outbound.as_mut() else {
            return;
        };
        if status.is_provisional() {
            if status.as_u16() > 100 {
                out.progressed = true;
            }
            return;
        }
        let a = out.current;
        let routes = Arc::clone(&call.routes);
        if moves_on(status) {
            let marked = self.trunks.failed(&routes, a, now, retry_after(rsp));
            self.trunk_marked(&routes, a, marked);
        } else {
            self.trunks.answered(&routes, a);
        }
    }

    pub(crate) fn trunk_marked(&mut self, routes: &crate::Routes, a: Attempt, marked: bool) {
        if marked {
            self.stats.trunk_addresses_marked_down += 1;
            tracing::info!(
                trunk = routes.trunks.get(a.trunk).map_or("", |t| t.name.as_str()),
                address = %a.peer.addr,
                "trunk address marked down after failed calls"
            );
        }
    }

    /// The current attempt failed (`status`: the trunk's final answer, `None`: nothing in
    /// time). Records it and moves the call to its next address; false when there is none
    /// (or the call may not move), and the caller gets the failure.
    pub(crate) fn fail_over(&mut self, now: Instant, id: u64, status: Option<StatusCode>) -> bool {
        let Some(call) = self.calls.get_mut(&id) else {
            return false;
        };
        let Some(out) = call.outbound.as_ref() else {
            return false;
        };
        let may_move = status.is_none_or(moves_on)
            && call.is_early()
            && !out.progressed
            && call.forks.is_empty()
            && !out.next.is_empty();
        let a = out.current;
        let trunk = call
            .routes
            .trunks
            .get(a.trunk)
            .map_or_else(String::new, |t| t.name.clone());
        // The failure's record goes before the next attempt's.
        let at = self.call_events.len();
        let moved = may_move && self.next_attempt(now, id);
        let failed = events::CallEventKind::AttemptFailed {
            trunk,
            to: a.peer.addr,
            status: status.map(StatusCode::as_u16),
            next: moved,
        };
        let before = self.call_events.len();
        self.call_event(now, id, failed);
        if self.call_events.len() > before {
            if let Some(e) = self.call_events.pop() {
                self.call_events.insert(at.min(self.call_events.len()), e);
            }
        }
        moved
    }

    /// The deadline of the current attempt passed with no response at all.
    pub(crate) fn on_failover_timer(&mut self, now: Instant, id: u64) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let waiting = call.b_invite_tx.is_some() && call.is_early();
        let Some(out) = call.outbound.as_mut() else {
            return;
        };
        out.deadline = None;
        if !waiting {
            return;
        }
        let a = out.current;
        let routes = Arc::clone(&call.routes);
        let marked = self.trunks.failed(&routes, a, now, None);
        self.trunk_marked(&routes, a, marked);
        tracing::debug!(address = %a.peer.addr, "no response from the trunk: moving on");
        self.stats.failovers_no_response += 1;
        self.fail_over(now, id, None);
    }

    /// Sends the call's INVITE to its next address, as a new B leg; the current one, if
    /// its transaction still runs, is left to be cancelled or hung up. False when no address
    /// could be used.
    fn next_attempt(&mut self, now: Instant, id: u64) -> bool {
        loop {
            let Some(call) = self.calls.get_mut(&id) else {
                return false;
            };
            let Some(out) = call.outbound.as_mut() else {
                return false;
            };
            let Some(next) = out.next.pop_front() else {
                return false;
            };
            let routes = Arc::clone(&call.routes);
            let a_invite = call.a_invite.clone();
            let a_account = call.a.account.clone();
            let (callee, src, zone, caller_seen) = (
                out.callee.clone(),
                out.src,
                out.zone,
                out.caller_seen.clone(),
            );
            let Some(t) = routes.trunks.get(next.trunk) else {
                continue;
            };
            let dest = Dest::Trunk(vec![next]);
            let request = self.call_request(
                now,
                (&routes, id),
                &a_invite,
                (src, zone),
                (&callee, &dest, a_account.as_deref()),
                &caller_seen,
            );
            let b = build::b_leg(
                &a_invite,
                &callee,
                None,
                &t.host,
                next.peer,
                &self.local,
                &mut self.ids,
            );
            let m = build::initial_invite(
                &a_invite,
                &b,
                &self.local,
                &routes,
                (Identity::Copy, true),
                &mut self.ids,
                &mut self.rewrites.call(id),
            );
            let mut legs = vec![(b, m)];
            if self.rewrite_invites(&request, &mut legs).is_err() {
                return false;
            }
            let Some((b, Ok(m))) = legs.pop() else {
                continue;
            };
            let Ok(btx) = self
                .txl
                .send_request(now, m.clone(), next.peer, next.peer.reliable())
            else {
                self.stats.internal_send_errors += 1;
                continue;
            };
            self.clients.insert(btx, (id, ClientRole::Invite));
            let Some(call) = self.calls.get_mut(&id) else {
                return false;
            };
            let new_key = (b.call_id.clone(), b.local_tag.clone());
            let old_leg = std::mem::replace(&mut call.b, b);
            let old_invite = std::mem::replace(&mut call.b_invite, m);
            let old_tx = call.b_invite_tx.replace(btx);
            call.txs.push(btx);
            call.b_trunk = Some(next.trunk);
            call.rel.clear();
            call.state = State::Early { b_auth_sent: false };
            if let Some(out) = call.outbound.as_mut() {
                out.current = next;
                out.progressed = false;
            }
            self.dialogs
                .remove(&(old_leg.call_id.clone(), old_leg.local_tag.clone()));
            self.dialogs.insert(new_key, (id, Side::B));
            if let Some(old) = old_tx {
                // Still running (no response in time): no longer the call's. CANCEL goes
                // out if it ever rings; a late 2xx is acknowledged and hung up.
                call.txs.retain(|t| *t != old);
                let _ = self.txl.cancel(now, old);
                self.clients.insert(old, (id, ClientRole::Abandoned));
                self.abandoned.insert(
                    old,
                    Fork {
                        leg: old_leg,
                        invite: old_invite,
                        tx: old,
                        cancelled: true,
                    },
                );
            }
            self.stats.failovers += 1;
            self.attempt_event(now, id, next);
            self.arm_failover(now, id);
            return true;
        }
    }

    /// A response on an INVITE left behind by a move: a late 2xx is acknowledged and hung
    /// up; a final answer ends it.
    pub(crate) fn on_abandoned_response(
        &mut self,
        now: Instant,
        tx: TxId,
        rsp: &Message,
        status: StatusCode,
    ) {
        if !status.is_final() {
            return;
        }
        self.clients.remove(&tx);
        let Some(mut fork) = self.abandoned.remove(&tx) else {
            return;
        };
        if status.is_success() {
            fork.leg.remote_tag = rsp.to_tag().map(str::to_owned);
            if let Some(c) = build::contact_uri(rsp) {
                fork.leg.remote_target = c;
            }
            fork.leg.route_set = build::route_set_from_response(rsp);
            self.end_fork(now, fork);
        }
    }

    /// An INVITE left behind timed out.
    pub(crate) fn on_abandoned_timeout(&mut self, tx: TxId) {
        self.clients.remove(&tx);
        self.abandoned.remove(&tx);
    }
}
