//! Registration to carriers (`[trunk.registration]`): the gateway REGISTERs its own address
//! with the trunk's credentials, answers a 401/407 once per REGISTER, refreshes at 80 % of
//! the lifetime the registrar granted, and after a failure tries again after `retry`, doubling
//! up to `retry_max`. Each change is a `TrunkRegistered`/`TrunkRegistrationFailed` event;
//! the state is in the trunk status. Calls the carrier sends to the registered Contact are
//! the trunk's calls for the number in their To header (see `Core::called_number`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sipwarden_events::{EventKind, SecurityEvent, ie};
use sipwarden_sip::{Message, Peer, StatusCode};
use sipwarden_txn::TxId;

use crate::build::{self, RegisterTo};
use crate::{ClientRole, Core, trunk_auth};

/// Where one trunk's registration stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegState {
    /// Not registered yet, or between attempts after a failure.
    Unregistered,
    /// A REGISTER is out.
    Registering,
    /// Registered until the instant it expires.
    Registered,
    /// The last attempt failed: the status, or 408 for no answer.
    Failed(u16),
}

#[derive(Debug)]
struct Reg {
    state: RegState,
    call_id: String,
    from_tag: String,
    cseq: u32,
    /// The REGISTER in flight, its request (for a challenge) and whether it carried
    /// credentials already.
    pending: Option<(TxId, Message, bool)>,
    peer: Option<Peer>,
    next_at: Instant,
    backoff: Duration,
    expires_at: Option<Instant>,
}

/// Every trunk's registration, by trunk name (bounded by the trunks).
#[derive(Debug, Default)]
pub(crate) struct OutReg {
    regs: HashMap<String, Reg>,
    by_tx: HashMap<TxId, String>,
    pub(crate) kick: bool,
    due: Option<Instant>,
    /// REGISTERs sent and registrations refused or unanswered since start.
    pub(crate) sent: u64,
    pub(crate) failures: u64,
}

impl OutReg {
    pub(crate) fn new() -> Self {
        Self {
            kick: true,
            ..Self::default()
        }
    }

    pub(crate) fn due(&self) -> Option<Instant> {
        self.due
    }

    /// The state of a trunk's registration, and how long it has left.
    pub(crate) fn state(&self, trunk: &str, now: Instant) -> Option<(RegState, Option<u64>)> {
        self.regs.get(trunk).map(|r| {
            // A registration past its lifetime is gone, whatever the next attempt says.
            let expired = r.expires_at.is_some_and(|e| now >= e);
            let state = if r.state == RegState::Registered && expired {
                RegState::Unregistered
            } else {
                r.state.clone()
            };
            (
                state,
                r.expires_at
                    .map(|e| e.saturating_duration_since(now).as_secs()),
            )
        })
    }

    fn recompute_due(&mut self) {
        let next = self
            .regs
            .values()
            .filter(|r| r.pending.is_none())
            .map(|r| r.next_at);
        // A registration also needs a look when it would run out.
        let expiry = self
            .regs
            .values()
            .filter(|r| r.state == RegState::Registered)
            .filter_map(|r| r.expires_at);
        self.due = next.chain(expiry).min();
    }
}

/// The lifetime the registrar granted our Contact: its `expires` parameter, else the
/// Expires header, else what we asked for.
fn granted(rsp: &Message, contact_user: &str, asked: u64) -> u64 {
    let from_contact = rsp.contacts().ok().and_then(|cs| {
        cs.iter().find_map(|c| match c {
            sipwarden_sip::header::Contact::Addr(a) if a.uri.user() == Some(contact_user) => {
                c.expires()
            }
            _ => None,
        })
    });
    from_contact
        .or_else(|| rsp.expires().and_then(Result::ok))
        .map_or(asked, u64::from)
}

impl Core {
    /// Starts registrations that are due, and keeps one per trunk with `[trunk.registration]`.
    pub(crate) fn outreg_round(&mut self, now: Instant) {
        self.outreg.kick = false;
        let routes = Arc::clone(&self.routes);
        let wanted: Vec<usize> = routes
            .trunks
            .iter()
            .enumerate()
            .filter(|(_, t)| t.registration.is_some() && t.credentials.is_some())
            .map(|(i, _)| i)
            .collect();
        self.outreg.regs.retain(|name, _| {
            wanted
                .iter()
                .any(|&i| routes.trunks.get(i).is_some_and(|t| &t.name == name))
        });
        // Registrations that ran out without a refresh are lost.
        let lapsed: Vec<String> = self
            .outreg
            .regs
            .iter()
            .filter(|(_, r)| {
                r.state == RegState::Registered && r.expires_at.is_some_and(|e| now >= e)
            })
            .map(|(n, _)| n.clone())
            .collect();
        for name in lapsed {
            if let Some(reg) = self.outreg.regs.get_mut(&name) {
                reg.state = RegState::Failed(408);
                reg.expires_at = None;
                let peer = reg.peer;
                self.outreg.failures += 1;
                tracing::warn!(trunk = %name, "registration to the carrier ran out without a refresh");
                if let Some(p) = peer {
                    let e = SecurityEvent::trunk(
                        EventKind::TrunkRegistrationFailed,
                        &name,
                        p.addr,
                        p.transport,
                    )
                    .with_ie(ie::DETAIL, "408")
                    .with_reason("expired without a refresh");
                    self.security(e);
                }
            }
        }
        for i in wanted {
            let Some(t) = routes.trunks.get(i) else {
                continue;
            };
            if !self.outreg.regs.contains_key(&t.name) {
                let reg = Reg {
                    state: RegState::Unregistered,
                    call_id: self.ids.call_id(),
                    from_tag: self.ids.tag(),
                    cseq: 0,
                    pending: None,
                    peer: None,
                    next_at: now,
                    backoff: Duration::ZERO,
                    expires_at: None,
                };
                self.outreg.regs.insert(t.name.clone(), reg);
            }
            let due = self
                .outreg
                .regs
                .get(&t.name)
                .is_some_and(|r| r.pending.is_none() && r.next_at <= now);
            if due {
                self.send_register(now, i, None);
            }
        }
        self.outreg.recompute_due();
    }

    /// Sends trunk `i`'s REGISTER (with credentials when `challenge` is the 401/407 of the
    /// last one).
    fn send_register(&mut self, now: Instant, i: usize, challenge: Option<&Message>) {
        let routes = Arc::clone(&self.routes);
        let Some(t) = routes.trunks.get(i) else {
            return;
        };
        let (Some(settings), Some((user, pass))) = (&t.registration, &t.credentials) else {
            return;
        };
        // The first address routing would use (priority, weight, health).
        let route = crate::routes::OutRoute {
            prefix: String::new(),
            trunks: vec![(i, 0, 1)],
            fallback: Vec::new(),
        };
        let ids = &mut self.ids;
        let peer = self
            .trunks
            .attempts(&routes, &route, now, &mut |n| ids.draw(n))
            .first()
            .map(|a| a.peer);
        let Some(reg) = self.outreg.regs.get_mut(&t.name) else {
            return;
        };
        let Some(peer) = peer.or(reg.peer) else {
            // No address (DNS not answered yet, or every address down): try again later.
            reg.next_at = now + settings.retry;
            return;
        };
        let contact_user = settings.contact_user.as_deref().unwrap_or(user);
        let m = match challenge {
            None => {
                reg.cseq += 1;
                let r = RegisterTo {
                    host: &t.host,
                    user,
                    contact_user,
                    expires: settings.expires.as_secs(),
                    call_id: &reg.call_id,
                    from_tag: &reg.from_tag,
                    cseq: reg.cseq,
                };
                build::register_to_carrier(&r, peer, &self.local, &mut self.ids).map_err(|_| ())
            }
            Some(rsp) => {
                let Some((_, last, _)) = reg.pending.as_ref() else {
                    return;
                };
                let cnonce = self.ids.cnonce();
                let branch = self.ids.branch();
                trunk_auth::answer_challenge(last, rsp, user, pass.expose(), &cnonce, &branch)
                    .map_err(|_| ())
            }
        };
        let Ok(m) = m else {
            self.stats.internal_build_errors += 1;
            return;
        };
        let Some(reg) = self.outreg.regs.get_mut(&t.name) else {
            return;
        };
        if let Some(c) = m.cseq() {
            reg.cseq = c.seq;
        }
        match self.txl.send_request(now, m.clone(), peer, peer.reliable()) {
            Ok(tx) => {
                reg.pending = Some((tx, m, challenge.is_some()));
                reg.peer = Some(peer);
                if reg.state != RegState::Registered {
                    reg.state = RegState::Registering;
                }
                self.outreg.by_tx.insert(tx, t.name.clone());
                self.clients.insert(tx, (0, ClientRole::Register));
                self.outreg.sent += 1;
            }
            Err(_) => {
                self.stats.internal_send_errors += 1;
                reg.next_at = now + settings.retry;
            }
        }
    }

    /// The registrar's answer.
    pub(crate) fn on_outreg_response(
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
        let Some(name) = self.outreg.by_tx.remove(&tx) else {
            return;
        };
        let routes = Arc::clone(&self.routes);
        let Some(i) = routes.trunks.iter().position(|t| t.name == name) else {
            return;
        };
        let Some(reg) = self.outreg.regs.get(&name) else {
            return;
        };
        let with_auth = reg.pending.as_ref().is_some_and(|(_, _, a)| *a);
        let code = status.as_u16();
        if matches!(code, 401 | 407) && !with_auth {
            self.send_register(now, i, Some(rsp));
            self.outreg.recompute_due();
            return;
        }
        if status.is_success() {
            let (Some(t), Some(reg)) = (routes.trunks.get(i), self.outreg.regs.get_mut(&name))
            else {
                return;
            };
            let Some(settings) = t.registration.as_ref() else {
                return;
            };
            let contact_user = settings
                .contact_user
                .as_deref()
                .or_else(|| t.credentials.as_ref().map(|(u, _)| u.as_str()))
                .unwrap_or("");
            let secs = granted(rsp, contact_user, settings.expires.as_secs()).max(1);
            let was = std::mem::replace(&mut reg.state, RegState::Registered);
            reg.pending = None;
            reg.backoff = Duration::ZERO;
            reg.expires_at = Some(now + Duration::from_secs(secs));
            // Refresh at 80 % of the lifetime granted.
            reg.next_at = now + Duration::from_millis(secs * 800);
            let peer = reg.peer;
            if was != RegState::Registered {
                tracing::info!(trunk = %name, expires = secs, "registered to the carrier");
                if let Some(p) = peer {
                    let e = SecurityEvent::trunk(
                        EventKind::TrunkRegistered,
                        &name,
                        p.addr,
                        p.transport,
                    )
                    .with_ie(ie::DETAIL, format!("expires {secs}"))
                    .with_reason("registered");
                    self.security(e);
                }
            }
        } else {
            self.outreg_failed(now, &name, code);
        }
        self.outreg.recompute_due();
    }

    /// A REGISTER got no final answer.
    pub(crate) fn on_outreg_timeout(&mut self, now: Instant, tx: TxId) {
        if let Some(name) = self.outreg.by_tx.remove(&tx) {
            self.outreg_failed(now, &name, 408);
            self.outreg.recompute_due();
        }
    }

    fn outreg_failed(&mut self, now: Instant, name: &str, code: u16) {
        let Some(t) = self.routes.trunks.iter().find(|t| t.name == name) else {
            return;
        };
        let Some(settings) = t.registration.clone() else {
            return;
        };
        let Some(reg) = self.outreg.regs.get_mut(name) else {
            return;
        };
        reg.pending = None;
        reg.backoff = if reg.backoff.is_zero() {
            settings.retry
        } else {
            (reg.backoff * 2).min(settings.retry_max)
        };
        reg.next_at = now + reg.backoff;
        // A registration still in force stays so until it expires; the next attempt is soon.
        let lost = reg.expires_at.is_none_or(|e| now >= e);
        let was = reg.state.clone();
        if lost {
            reg.state = RegState::Failed(code);
            reg.expires_at = None;
        }
        let peer = reg.peer;
        self.outreg.failures += 1;
        if lost && was != RegState::Failed(code) {
            tracing::warn!(trunk = %name, status = code, retry_secs = reg.backoff.as_secs(), "registration to the carrier failed");
            if let Some(p) = peer {
                let e = SecurityEvent::trunk(
                    EventKind::TrunkRegistrationFailed,
                    name,
                    p.addr,
                    p.transport,
                )
                .with_ie(ie::DETAIL, code.to_string())
                .with_reason(if code == 408 { "no answer" } else { "refused" });
                self.security(e);
            }
        }
    }

    /// The number a trunk's call is for: the Request-URI's user, unless the carrier sent the
    /// call to the Contact the gateway registered, where the To header names the number.
    pub(crate) fn called_number(
        &self,
        zone: crate::routes::Zone,
        invite: &Message,
        ruri_user: String,
    ) -> String {
        let crate::routes::Zone::Trunk(i) = zone else {
            return ruri_user;
        };
        let Some(t) = self.routes.trunks.get(i) else {
            return ruri_user;
        };
        let Some(settings) = t.registration.as_ref() else {
            return ruri_user;
        };
        let contact_user = settings
            .contact_user
            .as_deref()
            .or_else(|| t.credentials.as_ref().map(|(u, _)| u.as_str()));
        if contact_user == Some(ruri_user.as_str()) {
            invite
                .to_user()
                .map(|s| String::from_utf8_lossy(&sipwarden_sip::unescape(s)).into_owned())
                .unwrap_or(ruri_user)
        } else {
            ruri_user
        }
    }
}
