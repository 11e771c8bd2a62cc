//! The registrar (RFC 3261 §10, RFC 5626 outbound, RFC 3327 Path) and its location table.
//!
//! Bindings live in memory, keyed by account; every change is also queued as a
//! [`LocationChange`] for the server to make durable before the answer that acknowledges it
//! leaves. A binding keeps where the REGISTER really came from (address, port, transport and
//! connection): that is where the phone is reached, whatever private address its Contact
//! names (NAT traversal as Kamailio's `fix_nated_register` does, without the script).

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use sipwarden_sip::header::Contact;
use sipwarden_sip::{HeaderName, Message, Peer, StatusCode};

use crate::RegistrarSettings;

/// One registered contact of an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// The account.
    pub aor: String,
    /// The contact URI as registered (the Request-URI of requests to the phone).
    pub contact: String,
    /// Where the REGISTER came from: where requests to the phone are sent.
    pub source: Peer,
    /// When it expires.
    pub expires: Instant,
    /// Path header values (RFC 3327), used as the route set toward the phone.
    pub path: Vec<String>,
    /// `+sip.instance` (RFC 5626).
    pub instance: Option<String>,
    /// `reg-id` (RFC 5626).
    pub reg_id: Option<u32>,
    /// Call-ID of the REGISTER that made or refreshed it.
    pub call_id: String,
    /// CSeq of that REGISTER.
    pub cseq: u32,
    /// `q` in thousandths.
    pub q: Option<u16>,
}

/// A change of the location table, for the durable store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocationChange {
    /// A binding was made or refreshed.
    Upsert(Binding),
    /// A binding was removed (unregistered, replaced or expired).
    Remove {
        /// Account.
        aor: String,
        /// Contact URI.
        contact: String,
    },
}

/// The location table.
#[derive(Debug, Default)]
pub(crate) struct Location {
    by_aor: HashMap<String, Vec<Binding>>,
    expiry: BTreeSet<(Instant, String, String)>,
    changes: Vec<LocationChange>,
    count: usize,
}

impl Location {
    pub(crate) fn bindings(&self, aor: &str) -> &[Binding] {
        self.by_aor.get(aor).map_or(&[], Vec::as_slice)
    }

    pub(crate) fn all(&self) -> impl Iterator<Item = &Binding> {
        self.by_aor.values().flatten()
    }

    pub(crate) fn len(&self) -> usize {
        self.count
    }

    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.expiry.first().map(|e| e.0)
    }

    pub(crate) fn take_changes(&mut self) -> Vec<LocationChange> {
        std::mem::take(&mut self.changes)
    }

    /// Inserts or replaces (same account and contact) without recording a change: for
    /// bindings loaded from the store.
    pub(crate) fn restore(&mut self, b: Binding) {
        self.put(b, false);
    }

    fn put(&mut self, b: Binding, record: bool) {
        self.remove(&b.aor, &b.contact, false);
        self.expiry
            .insert((b.expires, b.aor.clone(), b.contact.clone()));
        if record {
            self.changes.push(LocationChange::Upsert(b.clone()));
        }
        self.by_aor.entry(b.aor.clone()).or_default().push(b);
        self.count += 1;
    }

    fn remove(&mut self, aor: &str, contact: &str, record: bool) -> bool {
        let Some(list) = self.by_aor.get_mut(aor) else {
            return false;
        };
        let Some(i) = list.iter().position(|b| b.contact == contact) else {
            return false;
        };
        let b = list.swap_remove(i);
        if list.is_empty() {
            self.by_aor.remove(aor);
        }
        self.expiry.remove(&(b.expires, b.aor, b.contact));
        self.count -= 1;
        if record {
            self.changes.push(LocationChange::Remove {
                aor: aor.to_owned(),
                contact: contact.to_owned(),
            });
        }
        true
    }

    /// Removes every binding expired at `now`.
    pub(crate) fn expire(&mut self, now: Instant) {
        while let Some((at, aor, contact)) = self.expiry.first().cloned() {
            if at > now {
                break;
            }
            self.expiry.pop_first();
            let due = self
                .bindings(&aor)
                .iter()
                .any(|b| b.contact == contact && b.expires == at);
            if due {
                self.remove(&aor, &contact, true);
            }
        }
    }
}

/// A Contact of a REGISTER, as the registrar needs it.
struct Wanted {
    contact: String,
    expires: u32,
    instance: Option<String>,
    reg_id: Option<u32>,
    q: Option<u16>,
}

/// Why a REGISTER is refused before any binding changes.
struct Refusal {
    status: StatusCode,
    reason: &'static str,
    header: Option<(HeaderName, String)>,
}

fn refuse(status: u16, reason: &'static str) -> Refusal {
    Refusal {
        status: StatusCode::new(status).unwrap_or(StatusCode::BAD_REQUEST),
        reason,
        header: None,
    }
}

/// The Contacts of a REGISTER with their granted lifetimes; `Ok(None)` for `Contact: *`,
/// an empty list for a query.
fn wanted(msg: &Message, s: &RegistrarSettings) -> Result<Option<Vec<Wanted>>, Refusal> {
    let contacts = msg.contacts().map_err(|_| refuse(400, "Bad Contact"))?;
    let header_expires = match msg.expires() {
        Some(Ok(e)) => Some(e),
        Some(Err(_)) => return Err(refuse(400, "Bad Expires")),
        None => None,
    };
    if contacts.iter().any(|c| matches!(c, Contact::Star)) {
        if contacts.len() != 1 || header_expires != Some(0) {
            return Err(refuse(400, "Contact * Needs Expires 0"));
        }
        return Ok(None);
    }
    let min = u32::try_from(s.min_expires.as_secs()).unwrap_or(u32::MAX);
    let max = u32::try_from(s.max_expires.as_secs()).unwrap_or(u32::MAX);
    let default = u32::try_from(s.default_expires.as_secs()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(contacts.len());
    for c in &contacts {
        let Contact::Addr(a) = c else { continue };
        let expires = c.expires().or(header_expires).unwrap_or(default);
        if expires != 0 && expires < min {
            return Err(Refusal {
                status: StatusCode::INTERVAL_TOO_BRIEF,
                reason: "Interval Too Brief",
                header: Some((HeaderName::MinExpires, min.to_string())),
            });
        }
        let param = |n: &str| a.params.get(n).flatten().map(str::to_owned);
        out.push(Wanted {
            contact: a.uri_text.to_owned(),
            expires: expires.min(max),
            instance: param("+sip.instance"),
            reg_id: param("reg-id").and_then(|r| r.parse().ok()),
            q: c.q(),
        });
    }
    Ok(Some(out))
}

fn supports(msg: &Message, tag: &str) -> bool {
    msg.tokens(HeaderName::Supported)
        .unwrap_or_default()
        .iter()
        .any(|t| t.eq_ignore_ascii_case(tag))
}

/// The account a REGISTER is for: the user of its To URI (RFC 3261 §10.3 step 5), unescaped.
pub(crate) fn aor(msg: &Message) -> String {
    msg.to_user()
        .map(|u| String::from_utf8_lossy(&sipwarden_sip::unescape(u)).into_owned())
        .unwrap_or_default()
}

/// The registrar: the location table and the rules of RFC 3261 §10.3 that change it. It sees
/// a REGISTER only after the dispatcher's zone check and the auth stage, and returns the
/// answer to send; the core sends it and counts it, so the rules are testable without a core.
#[derive(Debug, Default)]
pub(crate) struct Registrar {
    location: Location,
}

/// An authenticated REGISTER and the plain values the registrar needs besides it.
pub(crate) struct Register<'a> {
    /// When it arrived.
    pub(crate) now: Instant,
    /// The REGISTER.
    pub(crate) msg: &'a Message,
    /// Where it came from: where the phone will be reached.
    pub(crate) src: Peer,
    /// The account it authenticated as ([`aor`]).
    pub(crate) aor: &'a str,
    /// Lifetimes and the table's bound.
    pub(crate) settings: &'a RegistrarSettings,
    /// The account's `max_contacts`.
    pub(crate) max_contacts: usize,
    /// A fresh To-tag for the answer.
    pub(crate) to_tag: &'a str,
}

/// What became of a REGISTER, for the core's counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Bindings made, refreshed, removed or only listed: 200.
    Accepted,
    /// Refused before any binding changed: 400 (unreadable Contact or Expires, `Contact: *`
    /// without Expires 0) or 423.
    Refused(StatusCode),
    /// The location table is full (`max_bindings`) and the REGISTER would add a binding:
    /// 503, nothing changed. Refreshes and removals still pass: a phone keeps its binding
    /// however full the table is.
    Full,
    /// RFC 3261 §10.3 step 7: older than the REGISTER a binding came from; 500, nothing
    /// changed.
    OutOfOrder,
}

/// The registrar's decision: how to count it and the answer to send statelessly.
#[must_use]
#[derive(Debug)]
pub(crate) struct Registration {
    /// How it went.
    pub(crate) outcome: Outcome,
    /// The answer; `None` only when it could not be built.
    pub(crate) answer: Option<Message>,
}

/// One change to an account's bindings, planned before any is made.
enum Step {
    Put(Binding),
    Remove(String),
}

/// What every binding made by one REGISTER shares.
struct Origin<'a> {
    now: Instant,
    src: Peer,
    aor: &'a str,
    path: &'a [String],
    call_id: &'a str,
    cseq: u32,
    outbound: bool,
}

impl Registrar {
    /// The location table, for routing, keep-alives and stats.
    pub(crate) fn location(&self) -> &Location {
        &self.location
    }

    /// Changes of the location table since the last call, for the durable store.
    pub(crate) fn take_changes(&mut self) -> Vec<LocationChange> {
        self.location.take_changes()
    }

    /// How many changes wait to be taken (to tell whether a REGISTER made any).
    pub(crate) fn pending_changes(&self) -> usize {
        self.location.changes.len()
    }

    /// Puts back a binding loaded from the store; `false` (and left out) when it would
    /// be a new one beyond `max_bindings`.
    pub(crate) fn restore(&mut self, b: Binding, max_bindings: usize) -> bool {
        let known = self
            .location
            .bindings(&b.aor)
            .iter()
            .any(|x| x.contact == b.contact);
        if !known && self.location.len() >= max_bindings {
            return false;
        }
        self.location.restore(b);
        true
    }

    /// Removes every binding expired at `now`.
    pub(crate) fn expire(&mut self, now: Instant) {
        self.location.expire(now);
    }

    /// Applies an authenticated REGISTER to the location table and builds its answer.
    pub(crate) fn register(&mut self, r: Register<'_>) -> Registration {
        let Register {
            now,
            msg,
            src,
            aor,
            settings,
            max_contacts,
            to_tag,
        } = r;
        let wanted = match wanted(msg, settings) {
            Ok(w) => w,
            Err(refusal) => {
                let headers: Vec<(HeaderName, &str)> = refusal
                    .header
                    .iter()
                    .map(|(h, v)| (*h, v.as_str()))
                    .collect();
                let answer = crate::build::response(
                    msg,
                    refusal.status,
                    Some(refusal.reason),
                    Some(to_tag),
                    &headers,
                )
                .ok();
                return Registration {
                    outcome: Outcome::Refused(refusal.status),
                    answer,
                };
            }
        };
        let call_id = msg.call_id().unwrap_or("");
        let cseq = msg.cseq().map_or(0, |c| c.seq);
        let outbound = supports(msg, "outbound");
        let path: Vec<String> = if supports(msg, "path") {
            msg.header_values(HeaderName::Path)
                .map(str::to_owned)
                .collect()
        } else {
            Vec::new()
        };
        let current = self.location.bindings(aor);
        let before = current.len();
        let (steps, after) = match wanted {
            None => (
                current
                    .iter()
                    .map(|b| Step::Remove(b.contact.clone()))
                    .collect(),
                0,
            ),
            Some(list) => {
                // RFC 3261 §10.3 step 7: an older REGISTER of the same Call-ID changes nothing.
                // (The same CSeq is a retransmission: it is processed again.)
                let stale = list.iter().any(|w| {
                    current
                        .iter()
                        .any(|b| b.contact == w.contact && b.call_id == call_id && b.cseq > cseq)
                });
                if stale {
                    let status = StatusCode::SERVER_INTERNAL_ERROR;
                    return Registration {
                        outcome: Outcome::OutOfOrder,
                        answer: Message::response_to(
                            msg,
                            status,
                            Some("Out Of Order"),
                            Some(to_tag),
                        )
                        .ok(),
                    };
                }
                let origin = Origin {
                    now,
                    src,
                    aor,
                    path: &path,
                    call_id,
                    cseq,
                    outbound,
                };
                plan(current, list, &origin, max_contacts)
            }
        };
        // Judged on the account's net growth: a phone moving address (its old binding
        // trimmed or its flow replaced) adds nothing and is let through a full table.
        let growth = after.saturating_sub(before);
        if growth > 0 && self.location.len().saturating_add(growth) > settings.max_bindings {
            return Registration {
                outcome: Outcome::Full,
                answer: Message::response_to(
                    msg,
                    StatusCode::SERVICE_UNAVAILABLE,
                    Some("Too Many Registrations"),
                    Some(to_tag),
                )
                .ok(),
            };
        }
        for step in steps {
            match step {
                Step::Put(b) => self.location.put(b, true),
                Step::Remove(contact) => {
                    self.location.remove(aor, &contact, true);
                }
            }
        }
        Registration {
            outcome: Outcome::Accepted,
            answer: self.accepted(msg, now, aor, &path, outbound, to_tag),
        }
    }

    /// The 200: every binding of the account with its time left (RFC 3261 §10.3 step 8),
    /// the Path it will be reached by (RFC 3327) and, when the phone's flow is an outbound
    /// one, `Require: outbound` (RFC 5626 §6).
    fn accepted(
        &self,
        msg: &Message,
        now: Instant,
        aor: &str,
        path: &[String],
        outbound: bool,
        to_tag: &str,
    ) -> Option<Message> {
        self.build_accepted(msg, now, aor, path, outbound, to_tag)
            .ok()
    }

    fn build_accepted(
        &self,
        msg: &Message,
        now: Instant,
        aor: &str,
        path: &[String],
        outbound: bool,
        to_tag: &str,
    ) -> Result<Message, sipwarden_sip::EditError> {
        let mut rsp = Message::response_to(msg, StatusCode::OK, None, Some(to_tag))?;
        let bindings = self.location.bindings(aor);
        for b in bindings {
            let left = b.expires.saturating_duration_since(now).as_secs();
            rsp.push_header(
                HeaderName::Contact,
                &format!("<{}>;expires={left}", b.contact),
            )?;
        }
        for p in path {
            rsp.push_header(HeaderName::Path, p)?;
        }
        let call_id = msg.call_id().unwrap_or("");
        let uses_outbound = outbound
            && bindings
                .iter()
                .any(|b| b.reg_id.is_some() && b.call_id == call_id);
        if uses_outbound {
            rsp.push_header(HeaderName::Require, "outbound")?;
        }
        rsp.push_header(HeaderName::Supported, "path, outbound")?;
        rsp.finish()?;
        Ok(rsp)
    }
}

/// The steps that bind each wanted contact of a REGISTER, in order, given the account's
/// bindings `current`, then trim the account to `max_contacts`; and how many bindings the
/// account has after them.
fn plan(
    current: &[Binding],
    list: Vec<Wanted>,
    o: &Origin<'_>,
    max_contacts: usize,
) -> (Vec<Step>, usize) {
    // The account's bindings as the steps so far leave them (a handful: `max_contacts`).
    let mut held = current.to_vec();
    let mut steps = Vec::new();
    for w in list {
        // RFC 5626 §6: with outbound, the instance and reg-id name the binding, so a phone
        // that comes back from a new address replaces its old flow instead of adding one.
        let flow = (o.outbound && w.instance.is_some() && w.reg_id.is_some())
            .then(|| (w.instance.clone(), w.reg_id));
        let replaced: Vec<String> = held
            .iter()
            .filter(|b| {
                b.contact != w.contact
                    && flow
                        .as_ref()
                        .is_some_and(|(i, r)| b.instance == *i && b.reg_id == *r)
            })
            .map(|b| b.contact.clone())
            .collect();
        for c in replaced {
            unbind(&mut held, &mut steps, &c);
        }
        if w.expires == 0 {
            unbind(&mut held, &mut steps, &w.contact);
            continue;
        }
        let b = Binding {
            aor: o.aor.to_owned(),
            contact: w.contact,
            source: o.src,
            expires: o.now + Duration::from_secs(u64::from(w.expires)),
            path: o.path.to_vec(),
            instance: w.instance,
            reg_id: w.reg_id,
            call_id: o.call_id.to_owned(),
            cseq: o.cseq,
            q: w.q,
        };
        held.retain(|h| h.contact != b.contact);
        held.push(b.clone());
        steps.push(Step::Put(b));
    }
    // At most `max_contacts`: the ones expiring first give way, so a phone that comes back
    // from a new address is not locked out by its own old binding.
    if held.len() > max_contacts {
        let mut by_expiry: Vec<(Instant, String)> = held
            .iter()
            .map(|b| (b.expires, b.contact.clone()))
            .collect();
        by_expiry.sort();
        let excess = by_expiry.len().saturating_sub(max_contacts);
        for (_, c) in by_expiry.into_iter().take(excess) {
            unbind(&mut held, &mut steps, &c);
        }
    }
    (steps, held.len())
}

/// Plans the removal of `contact` if the account holds it.
fn unbind(held: &mut Vec<Binding>, steps: &mut Vec<Step>, contact: &str) {
    if let Some(i) = held.iter().position(|b| b.contact == contact) {
        held.swap_remove(i);
        steps.push(Step::Remove(contact.to_owned()));
    }
}

#[cfg(test)]
mod tests;
