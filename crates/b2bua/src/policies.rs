//! How the core runs the call policies it is given (it knows none of them): `admit` for a new
//! call after routing, the answer and end hooks, and the hang-ups policies ask for.

use std::time::{Instant, SystemTime};

use sipwarden_sip::{Message, StatusCode};
use sipwarden_stages::{CallPolicy, CallRequest, Destination, StageName, Verdict};
use sipwarden_txn::TxId;

use crate::build;
use crate::routes::Routes;

use sipwarden_config::canonical_number;

use crate::Core;
use crate::defence::BanCause;
use crate::events::{CallEvent, CallEventKind, CallInfo};
use crate::routes::{Zone, callee_of, caller_of};
use crate::routing::Dest;
use sipwarden_sip::Peer;

impl Core {
    /// The call policies, in the order they run (the server picks them; none by default).
    pub fn set_policies(&mut self, policies: Vec<Box<dyn CallPolicy>>) {
        self.policies = policies;
    }

    /// The policies of a reloaded configuration: each takes over the state of the running
    /// policy of the same name (a velocity limit's counters and running calls), so a reload
    /// resets no limit and every running call's end still reaches the policy counting it.
    pub fn reload_policies(&mut self, mut policies: Vec<Box<dyn CallPolicy>>) {
        for new in &mut policies {
            if let Some(old) = self.policies.iter_mut().find(|p| p.name() == new.name()) {
                if let Some(state) = old.hand_over() {
                    new.take_over(state);
                }
            }
        }
        self.policies = policies;
    }

    /// State the policies keep across restarts, changed since last asked: (policy, key,
    /// value) rows for the store (an empty value deletes).
    pub fn take_policy_state(&mut self) -> Vec<(&'static str, String, String)> {
        let mut out = Vec::new();
        for p in &mut self.policies {
            let mut rows = Vec::new();
            p.take_state_rows(&mut rows);
            let name = p.name();
            out.extend(rows.into_iter().map(|(k, v)| (name, k, v)));
        }
        out
    }

    /// At start: the rows the store kept, each policy given those stored under its name.
    pub fn restore_policy_state(&mut self, rows: &[(String, String, String)]) {
        for p in &mut self.policies {
            let mine: Vec<(String, String)> = rows
                .iter()
                .filter(|(policy, _, _)| policy == p.name())
                .map(|(_, k, v)| (k.clone(), v.clone()))
                .collect();
            if !mine.is_empty() {
                p.restore_state_rows(&mine);
            }
        }
    }

    /// The policies' numbers for `/metrics`.
    pub fn policy_gauges(&self) -> Vec<sipwarden_stages::PolicyGauge> {
        let mut out = Vec::new();
        for p in &self.policies {
            p.gauges(&mut out);
        }
        out
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

    /// What the policies, then the rewrites, are told of new call `call` (`caller`: the
    /// INVITE's `caller_of`, kept by whoever asks).
    pub(crate) fn call_request<'r>(
        &self,
        now: Instant,
        (routes, call): (&'r Routes, u64),
        invite: &'r Message,
        (src, zone): (Peer, Zone),
        (callee, dest, account): (&'r str, &Dest, Option<&str>),
        caller: &'r str,
    ) -> CallRequest<'r> {
        let origin = zone.origin();
        let trunk = match zone {
            Zone::Trunk(i) => routes.trunks.get(i).map(|t| t.name.as_str()),
            _ => None,
        };
        let (destination, callee_account) = match dest {
            Dest::Trunk(a) => (
                Destination::Trunk(
                    a.first()
                        .and_then(|a| routes.trunks.get(a.trunk))
                        .map_or("", |t| t.name.as_str()),
                ),
                None,
            ),
            Dest::Pbx { .. } => (Destination::Pbx, None),
            Dest::Phones(_) => (Destination::Phones(callee), routes.accounts.get(callee)),
        };
        CallRequest {
            call,
            invite,
            origin,
            trunk,
            account: account.and_then(|a| routes.accounts.get(a)),
            callee_account,
            destination,
            source: src.addr,
            transport: src.transport,
            caller,
            callee,
            offer: (!invite.body().is_empty()).then(|| invite.body()),
            now,
            wall: self.wall_at(now),
        }
    }

    /// Runs the policies over a new call; the first verdict that does not continue is the
    /// call's answer.
    pub(crate) fn admit(&mut self, request: &CallRequest<'_>) -> Result<(), (StageName, Verdict)> {
        let mut refused = None;
        for p in &mut self.policies {
            let verdict = p.admit(request);
            let stage = StageName::Policy(p.name());
            self.verdicts.record(stage, &verdict);
            if !verdict.is_continue() {
                refused = Some((stage, verdict));
                break;
            }
        }
        if refused.is_some() {
            // The policies before the one that refused admitted it (and may count it): they
            // hear of its end now, so their counters stay exact.
            for p in &mut self.policies {
                p.on_end(request.call, request.now);
            }
        }
        self.policy_decisions(request.now);
        refused.map_or(Ok(()), Err)
    }

    /// Takes what the policies decided beyond their verdicts: each becomes a call event (the
    /// call record's decisions) and a count by policy and outcome; a kill-switch decision
    /// disables its trunk or account.
    pub(crate) fn policy_decisions(&mut self, now: Instant) {
        let mut out = Vec::new();
        for p in &mut self.policies {
            p.take_decisions(&mut out);
        }
        for d in out {
            let key = (rule_policy(&d.rule), d.outcome);
            *self.decisions.entry(key).or_insert(0) += 1;
            if let Some(subject) = &d.disable {
                if let Err(e) = self.disable(now, subject, &d.rule) {
                    tracing::warn!(rule = %d.rule, "kill-switch action not taken: {e}");
                }
            }
            self.call_event(
                now,
                d.call,
                CallEventKind::Decision {
                    rule: d.rule,
                    outcome: d.outcome,
                    detail: d.detail,
                },
            );
        }
    }

    /// Answers a new call that authentication, routing or a policy refused, and records the
    /// refusal as a call event. An INVITE's transaction needs a final answer, so `Drop` and
    /// `Ban` get 403 too (and `Ban` bans the source).
    pub(crate) fn refuse_call(
        &mut self,
        now: Instant,
        tx: TxId,
        invite: &Message,
        (src, zone): (Peer, Zone),
        (stage, verdict): (StageName, Verdict),
    ) {
        self.stats.rejected += 1;
        let reason = verdict.reason();
        tracing::debug!(
            stage = stage.as_str(),
            verdict = verdict.kind(),
            reason = reason.code(),
            "call refused"
        );
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
        if let sipwarden_stages::Reason::Policy(code) = reason {
            // The Reason header's text names the rule and why; the code alone otherwise.
            let why = headers
                .iter()
                .find(|(h, _)| *h == sipwarden_sip::HeaderName::Reason)
                .and_then(|(_, v)| v.split_once("text=\""))
                .map_or_else(
                    || code.to_owned(),
                    |(_, t)| t.trim_end_matches('"').to_owned(),
                );
            self.event_call_refused(invite, src, why);
        }
        let tag = self.ids.tag();
        let r = build::response(invite, status, phrase, Some(&tag), &headers);
        if let Some(r) = self.built(r) {
            let s = self.txl.send_response(now, tx, &r);
            self.sent(s);
        }
        let info = self.call_info(invite, src, zone, None, (None, None));
        // An id of its own: call records must not mix it up with the next call's.
        let call = self.next_call;
        self.next_call += 1;
        self.call_event(
            now,
            call,
            CallEventKind::Refused {
                info,
                stage: stage.as_str(),
                status: status.as_u16(),
                reason,
            },
        );
    }

    /// What is known of a call: its caller's INVITE, where it came from and went.
    pub(crate) fn call_info(
        &self,
        invite: &Message,
        src: Peer,
        zone: Zone,
        b_call_id: Option<&str>,
        (dest_trunk, account): (Option<usize>, Option<&str>),
    ) -> CallInfo {
        let trunk = match zone {
            Zone::Trunk(i) => Some(i),
            _ => dest_trunk,
        }
        .and_then(|i| self.routes.trunks.get(i))
        .map(|t| t.name.clone());
        let (caller, callee) = (caller_of(invite), callee_of(invite));
        CallInfo {
            a_call_id: invite.call_id().unwrap_or("").to_owned(),
            b_call_id: b_call_id.unwrap_or("").to_owned(),
            origin: zone.origin(),
            trunk,
            account: account.map(str::to_owned),
            source: src.addr,
            transport: src.transport,
            caller_normalised: canonical_number(&caller),
            callee_normalised: canonical_number(&callee),
            caller,
            callee,
        }
    }

    /// Records a call event, stamped with the wall clock. Bounded: beyond
    /// `storage.event_queue` undrained events, new ones are counted and dropped.
    pub(crate) fn call_event(&mut self, now: Instant, call: u64, kind: CallEventKind) {
        if self.call_events.len() >= self.routes.event_queue {
            self.stats.call_events_dropped += 1;
            return;
        }
        let at = self.wall_at(now);
        self.call_events.push(CallEvent { call, at, kind });
    }

    /// Tells the policies a call was answered.
    pub(crate) fn policies_answered(&mut self, call: u64, now: Instant) {
        for p in &mut self.policies {
            p.on_answer(call, now);
        }
    }

    /// Tells the policies (and the rewrites) a call ended.
    pub(crate) fn policies_ended(&mut self, call: u64, now: Instant) {
        for p in &mut self.policies {
            p.on_end(call, now);
        }
        self.rewrites_ended(call, now);
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
        self.policy_decisions(now);
    }

    /// Policy decisions by policy and outcome since start, for `/metrics`.
    pub fn decision_counts(&self) -> Vec<(&'static str, sipwarden_stages::Outcome, u64)> {
        self.decisions
            .iter()
            .map(|(&(p, o), &n)| (p, o, n))
            .collect()
    }

    /// The soonest moment a policy wants to be asked for hang-ups.
    pub(crate) fn policies_deadline(&self) -> Option<Instant> {
        self.policies.iter().filter_map(|p| p.next_deadline()).min()
    }
}

/// The policy part of a rule's name (`velocity` of `velocity:carrier:calls_per_minute`): a
/// metric label bounded by the code, not the configuration.
fn rule_policy(rule: &str) -> &'static str {
    match rule.split(':').next().unwrap_or("") {
        "destination" => "destination",
        "velocity" => "velocity",
        "spend" => "spend",
        "caller_id" => "caller_id",
        "time_window" => "time_window",
        "kill_switch" => "kill_switch",
        _ => "other",
    }
}
