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
use sipwarden_sip::{HeaderName, Message, StatusCode};

use sipwarden_stages::Verdict;

use crate::auth_stage::Authed;
use crate::endpoint_auth::Ask;
use crate::routes::Zone;
use crate::{Core, RegistrarSettings};
use sipwarden_sip::Peer;

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
                status: StatusCode::new(423).unwrap_or(StatusCode::BAD_REQUEST),
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

impl Core {
    /// Answers a REGISTER without a transaction (see `on_register`).
    fn reply_register(
        &mut self,
        src: Peer,
        msg: &Message,
        status: StatusCode,
        reason: Option<&str>,
    ) {
        if let Ok(rsp) = Message::response_to(msg, status, reason, Some(&self.ids.tag())) {
            self.txl.send_stateless(src, &rsp);
        }
    }

    /// A REGISTER from `src`, answered statelessly as Kamailio's registrar does: a
    /// retransmission is simply processed again (a challenge again, or the same binding
    /// refreshed), so registrations — and REGISTER floods — hold no transaction for the 32 s
    /// RFC 3261 keeps a UDP one.
    pub(crate) fn on_register(&mut self, now: Instant, msg: Message, src: Peer) {
        let routes = std::sync::Arc::clone(&self.routes);
        if routes.zone(src.addr.ip()) != Zone::Endpoint {
            // The PBX and the trunks do not register with the gateway.
            self.event_not_allowed(&msg, src, "REGISTER from the PBX or a trunk");
            self.reply_register(src, &msg, StatusCode::FORBIDDEN, None);
            return;
        }
        let aor = msg
            .to_header()
            .and_then(|t| {
                t.uri
                    .user()
                    .map(|u| String::from_utf8_lossy(&sipwarden_sip::unescape(u)).into_owned())
            })
            .unwrap_or_default();
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
        let settings = routes.registrar.clone();
        let wanted = match wanted(&msg, &settings) {
            Ok(w) => w,
            Err(r) => {
                self.stats.registrations_refused += 1;
                if let Ok(mut rsp) =
                    Message::response_to(&msg, r.status, Some(r.reason), Some(&self.ids.tag()))
                {
                    if let Some((h, v)) = &r.header {
                        let _ = rsp.push_header(*h, v);
                    }
                    let _ = rsp.finish();
                    self.txl.send_stateless(src, &rsp);
                }
                return;
            }
        };
        let call_id = msg.call_id().unwrap_or("").to_owned();
        let cseq = msg.cseq().map_or(0, |c| c.seq);
        let outbound = supports(&msg, "outbound");
        let path: Vec<String> = if supports(&msg, "path") {
            msg.header_values(HeaderName::Path)
                .map(str::to_owned)
                .collect()
        } else {
            Vec::new()
        };
        match wanted {
            None => {
                let contacts: Vec<String> = self
                    .location
                    .bindings(&aor)
                    .iter()
                    .map(|b| b.contact.clone())
                    .collect();
                for c in contacts {
                    self.location.remove(&aor, &c, true);
                }
            }
            Some(list) => {
                // RFC 3261 §10.3 step 7: an older REGISTER of the same Call-ID changes nothing.
                // (The same CSeq is a retransmission: it is processed again.)
                let stale = list.iter().any(|w| {
                    self.location
                        .bindings(&aor)
                        .iter()
                        .any(|b| b.contact == w.contact && b.call_id == call_id && b.cseq > cseq)
                });
                if stale {
                    let status = StatusCode::SERVER_INTERNAL_ERROR;
                    self.reply_register(src, &msg, status, Some("Out Of Order"));
                    return;
                }
                for w in list {
                    self.bind(now, &aor, w, src, &path, &call_id, cseq, outbound);
                }
                let max = routes.accounts.get(&aor).map_or(1, |a| a.max_contacts);
                self.trim_bindings(&aor, max);
            }
        }
        self.stats.registrations_accepted += 1;
        let Ok(mut rsp) = Message::response_to(&msg, StatusCode::OK, None, Some(&self.ids.tag()))
        else {
            return;
        };
        for b in self.location.bindings(&aor) {
            let left = b.expires.saturating_duration_since(now).as_secs();
            let _ = rsp.push_header(
                HeaderName::Contact,
                &format!("<{}>;expires={left}", b.contact),
            );
        }
        for p in &path {
            let _ = rsp.push_header(HeaderName::Path, p);
        }
        let uses_outbound = outbound
            && self
                .location
                .bindings(&aor)
                .iter()
                .any(|b| b.reg_id.is_some() && b.call_id == call_id);
        if uses_outbound {
            let _ = rsp.push_header(HeaderName::Require, "outbound");
        }
        let _ = rsp.push_header(HeaderName::Supported, "path, outbound");
        let _ = rsp.finish();
        self.txl.send_stateless(src, &rsp);
    }

    #[allow(clippy::too_many_arguments)]
    fn bind(
        &mut self,
        now: Instant,
        aor: &str,
        w: Wanted,
        src: Peer,
        path: &[String],
        call_id: &str,
        cseq: u32,
        outbound: bool,
    ) {
        // RFC 5626 §6: with outbound, the instance and reg-id name the binding, so a phone
        // that comes back from a new address replaces its old flow instead of adding one.
        let flow_key = (outbound && w.instance.is_some() && w.reg_id.is_some())
            .then(|| (w.instance.clone(), w.reg_id));
        let replaced: Vec<String> = self
            .location
            .bindings(aor)
            .iter()
            .filter(|b| {
                b.contact != w.contact
                    && flow_key
                        .as_ref()
                        .is_some_and(|k| (b.instance.clone(), b.reg_id) == *k)
            })
            .map(|b| b.contact.clone())
            .collect();
        for c in replaced {
            self.location.remove(aor, &c, true);
        }
        if w.expires == 0 {
            self.location.remove(aor, &w.contact, true);
            return;
        }
        self.location.put(
            Binding {
                aor: aor.to_owned(),
                contact: w.contact,
                source: src,
                expires: now + Duration::from_secs(u64::from(w.expires)),
                path: path.to_vec(),
                instance: w.instance,
                reg_id: w.reg_id,
                call_id: call_id.to_owned(),
                cseq,
                q: w.q,
            },
            true,
        );
    }

    /// Keeps at most `max` bindings for the account: the ones expiring first give way, so a
    /// phone that comes back from a new address is not locked out by its own old binding.
    fn trim_bindings(&mut self, aor: &str, max: usize) {
        let mut list: Vec<(Instant, String)> = self
            .location
            .bindings(aor)
            .iter()
            .map(|b| (b.expires, b.contact.clone()))
            .collect();
        if list.len() <= max {
            return;
        }
        list.sort();
        let excess = list.len() - max;
        for (_, c) in list.into_iter().take(excess) {
            self.location.remove(aor, &c, true);
        }
    }
}
