//! How the core runs the call policies it is given (it knows none of them): `admit` for a new
//! call after routing, the answer and end hooks, and the hang-ups policies ask for.

use std::time::{Instant, SystemTime};

use sipwarden_sip::{Message, StatusCode};
use sipwarden_stages::{CallPolicy, CallRequest, Destination, Origin, StageName, Verdict};
use sipwarden_txn::TxId;

use crate::Core;
use crate::defence::BanCause;
use crate::routes::{Target, Zone};
use crate::routing::Dest;

impl Core {
    /// The call policies, in the order they run (the server picks them; none by default).
    pub fn set_policies(&mut self, policies: Vec<Box<dyn CallPolicy>>) {
        self.policies = policies;
    }

    /// The wall clock's reading at `now`, given by the server (the core reads no clock): call
    /// policies and call events get wall-clock times from it.
    pub fn set_wall_clock(&mut self, now: Instant, wall: SystemTime) {
        self.wall = Some((now, wall));
    }

    /// The wall-clock time at `now`, from the last reading (the Unix epoch without one).
    pub(crate) fn wall_at(&self, now: Instant) -> SystemTime {
        match self.wall {
            Some((at, wall)) if now >= at => wall + now.duration_since(at),
            Some((at, wall)) => wall
                .checked_sub(at.duration_since(now))
                .unwrap_or(SystemTime::UNIX_EPOCH),
            None => SystemTime::UNIX_EPOCH,
        }
    }

    /// Runs the policies over a new call; the first verdict that does not continue is the
    /// call's answer.
    pub(crate) fn admit(
        &mut self,
        now: Instant,
        call: u64,
        invite: &Message,
        (src, zone): (Target, Zone),
        (callee, dest, account): (&str, &Dest, Option<&str>),
    ) -> Result<(), Verdict> {
        let routes = std::sync::Arc::clone(&self.routes);
        let origin = match zone {
            Zone::Pbx => Origin::Pbx,
            Zone::Trunk(_) => Origin::Trunk,
            Zone::Endpoint => Origin::Endpoint,
        };
        let trunk = match zone {
            Zone::Trunk(i) => routes.trunks.get(i).map(|t| t.name.as_str()),
            _ => None,
        };
        let (destination, callee_account) = match dest {
            Dest::Trunk(i) => (
                Destination::Trunk(routes.trunks.get(*i).map_or("", |t| t.name.as_str())),
                None,
            ),
            Dest::Pbx { .. } => (Destination::Pbx, None),
            Dest::Phones(_) => (Destination::Phones(callee), routes.accounts.get(callee)),
        };
        let caller = invite
            .from_header()
            .and_then(|f| f.uri.user().map(str::to_owned))
            .unwrap_or_default();
        let request = CallRequest {
            call,
            invite,
            origin,
            trunk,
            account: account.and_then(|a| routes.accounts.get(a)),
            callee_account,
            destination,
            source: src.addr,
            transport: src.transport,
            caller: &caller,
            callee,
            offer: (!invite.body().is_empty()).then(|| invite.body()),
            now,
            wall: self.wall_at(now),
        };
        for p in &mut self.policies {
            let verdict = p.admit(&request);
            self.verdicts.record(StageName::Policy(p.name()), &verdict);
            if !verdict.is_continue() {
                return Err(verdict);
            }
        }
        Ok(())
    }

    /// Answers a new call that routing or a policy refused. An INVITE's transaction needs a
    /// final answer, so `Drop` and `Ban` get 403 too (and `Ban` bans the source).
    pub(crate) fn refuse_call(
        &mut self,
        now: Instant,
        tx: TxId,
        invite: &Message,
        src: Target,
        verdict: Verdict,
    ) {
        self.stats.rejected += 1;
        let (status, phrase, headers) = match verdict {
            Verdict::Continue => return,
            Verdict::Reply {
                status,
                phrase,
                headers,
                ..
            } => (status, phrase, headers),
            Verdict::Drop { .. } => (StatusCode::FORBIDDEN, None, Vec::new()),
            Verdict::Ban { reason, .. } => {
                self.defence
                    .ban(src.addr.ip(), now, BanCause::Failures, reason.code());
                (StatusCode::FORBIDDEN, None, Vec::new())
            }
        };
        if let Ok(mut r) = Message::response_to(invite, status, phrase, Some(&self.ids.tag())) {
            for (h, v) in &headers {
                let _ = r.push_header(*h, v);
            }
            let _ = r.finish();
            let _ = self.txl.send_response(now, tx, &r);
        }
    }

    /// Tells the policies a call was answered.
    pub(crate) fn policies_answered(&mut self, call: u64, now: Instant) {
        for p in &mut self.policies {
            p.on_answer(call, now);
        }
    }

    /// Tells the policies a call ended.
    pub(crate) fn policies_ended(&mut self, call: u64, now: Instant) {
        for p in &mut self.policies {
            p.on_end(call, now);
        }
    }

    /// Ends the calls policies asked to end.
    pub(crate) fn policy_hangups(&mut self, now: Instant) {
        let mut asked = Vec::new();
        for p in &mut self.policies {
            for (call, reason) in p.take_hangups(now) {
                asked.push((call, p.name(), reason));
            }
        }
        for (call, name, reason) in asked {
            let why = format!("ended by policy {name}: {reason}");
            self.hangup(now, call, &why);
        }
    }

    /// The soonest moment a policy wants to be asked for hang-ups.
    pub(crate) fn policies_deadline(&self) -> Option<Instant> {
        self.policies.iter().filter_map(|p| p.next_deadline()).min()
    }
}
