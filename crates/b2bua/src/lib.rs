//! # sipwarden-b2bua: calls through the gateway, sans-io
//!
//! Each call is two dialogs: the A leg toward whoever called, the B leg toward where the
//! gateway routed it. Every message on one leg is built anew from parsed values of the other
//! leg's message and a header allowlist, never relayed: the other side never sees a Via,
//! Contact, Call-ID, tag, Record-Route or product string from across the gateway. That is the
//! topology hiding and the protocol normalisation in one.
//!
//! The [`Core`] owns the transaction layer and the calls. Like the layers below it, it does
//! no I/O and reads no clock: feed it messages and `now`, drain [`Core::poll_transmit`] and
//! call [`Core::handle_timeout`] at [`Core::poll_timeout`].
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]
#![warn(missing_docs)]

mod auth;
mod auth_stage;
mod build;
mod call;
mod defence;
mod edge;
mod endpoint_auth;
pub mod events;
mod ids;
mod policies;
mod registrar;
mod routes;
mod routing;
mod sdp;
mod security;

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use sipwarden_sip::header::Transport;
use sipwarden_sip::{HeaderName, Message, Method, Peer, Policy, StatusCode};
use sipwarden_stages::{Reason, StageName, Verdict};
use sipwarden_txn::{Event, Transmit, TxId, TxLayer};

pub use call::Side;
pub use defence::{DefenceSettings, DefenceStats};
pub use endpoint_auth::ChallengeTable;
pub use registrar::{Binding, LocationChange};
pub use routes::{RegistrarSettings, RouteError, Routes, TrunkRoute, Zone};
pub use sipwarden_events::SecurityEvent;
pub use sipwarden_stages::{BanChange, BanEntry};

use build::Identity;
use call::{Call, Fork, Phase, RelRsp};
use defence::Defence;
use endpoint_auth::{Ask, Digest};
use ids::Ids;
use registrar::Location;
use routing::Dest;

/// The gateway's own addresses, written into Via, Contact and the SDP origin.
#[derive(Clone, Debug)]
pub struct Local {
    /// UDP listener address.
    pub udp: Option<SocketAddr>,
    /// TCP listener address.
    pub tcp: Option<SocketAddr>,
    /// TLS listener address.
    pub tls: Option<SocketAddr>,
    /// WSS listener address (SIP over WebSocket, RFC 7118).
    pub wss: Option<SocketAddr>,
}

impl Local {
    /// The address to advertise for a transport (falls back to any listener).
    pub fn addr(&self, t: Transport) -> SocketAddr {
        let pick = match t {
            Transport::Tcp => self.tcp,
            Transport::Tls => self.tls,
            Transport::Wss | Transport::Ws => self.wss.or(self.tls),
            _ => self.udp,
        };
        pick.or(self.udp)
            .or(self.tcp)
            .or(self.tls)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 5060)))
    }
}

/// Settings of the core.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// Transaction layer settings.
    pub txn: sipwarden_txn::Config,
    /// Validation settings.
    pub policy: Policy,
}

/// Numbers for metrics and for checking that nothing is left behind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Calls in progress.
    pub calls: usize,
    /// Dialogs held (two per call).
    pub dialogs: usize,
    /// Client transactions.
    pub client_transactions: usize,
    /// Server transactions.
    pub server_transactions: usize,
    /// Calls accepted since start.
    pub calls_started: u64,
    /// Calls answered since start.
    pub calls_answered: u64,
    /// Requests refused statelessly (validation, routing, limits) since start.
    pub rejected: u64,
    /// Requests refused because the transaction table was full, since start.
    pub transactions_refused: u64,
    /// Call timers pending (ring timeouts and maximum durations): at most one per call.
    pub call_timers: usize,
    /// Registered contacts (bindings) in the location table.
    pub registrations: usize,
    /// REGISTER requests accepted since start.
    pub registrations_accepted: u64,
    /// REGISTER requests refused (403, 423, 400) since start.
    pub registrations_refused: u64,
    /// Failed digest authentications (REGISTER and calls) since start.
    pub auth_failures: u64,
    /// Keep-alive OPTIONS sent to phones registered over UDP since start.
    pub keepalives_sent: u64,
    /// Call events dropped because the server had not drained them (never in normal use).
    pub call_events_dropped: u64,
    /// What the edge stages did.
    pub defence: DefenceStats,
}

/// What a client transaction of ours is for.
#[derive(Clone, Copy, Debug)]
enum ClientRole {
    /// The initial INVITE on the B leg.
    Invite,
    /// An in-dialog request relayed from `from` (server transaction `server`).
    Relay { server: TxId, from: Side },
    /// A BYE the gateway sends on its own (teardown).
    Bye,
}

/// What a server transaction of ours is for.
#[derive(Clone, Copy, Debug)]
enum ServerRole {
    /// The initial INVITE on the A leg.
    Invite,
    /// An in-dialog request relayed to the other leg in client transaction `client`, whose
    /// CSeq number is `cseq` (its ACK needs it).
    Relay { client: TxId, side: Side, cseq: u32 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimerKind {
    Ring,
    MaxDuration,
}

/// Key of a dialog: Call-ID and our tag on that leg.
type DialogKey = (String, String);

/// The B2BUA core.
pub struct Core {
    routes: Arc<Routes>,
    local: Local,
    policy: Policy,
    txl: TxLayer<Peer>,
    ids: Ids,
    calls: HashMap<u64, Call>,
    next_call: u64,
    dialogs: HashMap<DialogKey, (u64, Side)>,
    clients: HashMap<TxId, (u64, ClientRole)>,
    servers: HashMap<TxId, (u64, ServerRole)>,
    /// Each call's one pending timer (ring timeout while early, maximum duration once
    /// answered), ordered by deadline. Entries leave with their call, so the set is as big as
    /// the number of calls, not the number of calls in the last few hours.
    timers: BTreeSet<(Instant, u64, TimerKind)>,
    draining: bool,
    stats: Stats,
    digest: Digest,
    location: Location,
    /// Security events since the server last took them.
    security: Vec<SecurityEvent>,
    /// When the next keep-alive OPTIONS round to UDP phones is due (`registrar.udp_ping`).
    ping_at: Option<Instant>,
    /// The edge stages: bans, flood limits, failure counts.
    pub(crate) defence: Defence,
    /// Every verdict of the message path, by stage, verdict and reason.
    verdicts: sipwarden_stages::VerdictCounts,
    /// The call policies, in order (`set_policies`).
    policies: Vec<Box<dyn sipwarden_stages::CallPolicy>>,
    /// A wall-clock reading and the `Instant` it was taken at (`set_wall_clock`).
    wall: Option<(Instant, std::time::SystemTime)>,
    /// The time of the input being handled (for hooks called deep inside it).
    clock: Option<Instant>,
    /// Call events since the server last took them.
    call_events: Vec<events::CallEvent>,
}

impl Core {
    /// A core with these routes, addresses and settings; `seed` feeds the identifier CSPRNG.
    pub fn new(routes: Routes, local: Local, settings: Settings, seed: [u8; 32]) -> Self {
        let mut ids = Ids::new(seed);
        let digest = Digest::new(ids.key());
        let defence = Defence::new(routes.defence.clone());
        Self {
            defence,
            routes: Arc::new(routes),
            local,
            policy: settings.policy,
            txl: TxLayer::new(settings.txn),
            ids,
            calls: HashMap::new(),
            next_call: 1,
            dialogs: HashMap::new(),
            clients: HashMap::new(),
            servers: HashMap::new(),
            timers: BTreeSet::new(),
            draining: false,
            stats: Stats::default(),
            digest,
            location: Location::default(),
            security: Vec::new(),
            ping_at: None,
            verdicts: sipwarden_stages::VerdictCounts::default(),
            policies: Vec::new(),
            wall: None,
            clock: None,
            call_events: Vec::new(),
        }
    }

    /// Changes of the location table since the last call, for the durable store. The server
    /// writes them before it sends the answers that acknowledge them.
    pub fn take_location_changes(&mut self) -> Vec<LocationChange> {
        self.location.take_changes()
    }

    /// Puts a binding loaded from the store back in the location table.
    pub fn restore_binding(&mut self, b: Binding) {
        self.location.restore(b);
    }

    /// The registered contacts of an account.
    pub fn bindings(&self, aor: &str) -> &[Binding] {
        self.location.bindings(aor)
    }

    /// Call events since the last call (the server drains them after every batch).
    pub fn take_call_events(&mut self) -> Vec<events::CallEvent> {
        std::mem::take(&mut self.call_events)
    }

    /// Security events since the last call (for the security log and the JSON log).
    pub fn take_security_events(&mut self) -> Vec<SecurityEvent> {
        std::mem::take(&mut self.security)
    }

    /// Replaces the routes for new calls; calls in progress keep theirs.
    pub fn set_routes(&mut self, routes: Routes) {
        self.defence.set_settings(routes.defence.clone());
        self.routes = Arc::new(routes);
    }

    /// Ban changes since the last call: for the transports' drop list, the durable store,
    /// the kernel set and the log.
    pub fn take_ban_changes(&mut self) -> Vec<BanChange> {
        self.defence.take_changes()
    }

    /// Bans an address on an operator's word; `None` when it may not be banned (the PBX,
    /// a trunk, the allowlist) or already is.
    pub fn ban(&mut self, now: Instant, ip: IpAddr, reason: &str) -> Option<BanEntry> {
        let e = self.defence.bans.ban(ip, now, reason)?;
        self.defence.stats.bans_manual += 1;
        Some(e)
    }

    /// Lifts a ban; whether there was one.
    pub fn unban(&mut self, now: Instant, ip: IpAddr) -> bool {
        self.defence.bans.unban(ip, now)
    }

    /// The digest nonce key (from the server's secret file) and the wall clock's reading at
    /// `now`: nonces then stay valid across a restart.
    pub fn set_nonce_key(&mut self, key: [u8; 32], now: Instant, unix: u64) {
        self.digest.set_key(key, now, unix);
    }

    /// Puts back a ban loaded from the store.
    pub fn restore_ban(&mut self, now: Instant, e: BanEntry) {
        self.defence.bans.restore(e, now);
    }

    /// The ban table's entry for `ip` (banned or remembered).
    pub fn ban_entry(&self, ip: IpAddr) -> Option<BanEntry> {
        self.defence.bans.get(ip).cloned()
    }

    /// Bans in force at `now`.
    pub fn bans(&self, now: Instant) -> Vec<BanEntry> {
        self.defence.bans.active(now).cloned().collect()
    }

    /// The routes new calls use.
    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// Stops taking new calls (they get 503); calls in progress continue.
    pub fn drain(&mut self) {
        self.draining = true;
    }

    /// Current numbers.
    pub fn stats(&self) -> Stats {
        let c = self.txl.counts();
        Stats {
            calls: self.calls.len(),
            dialogs: self.dialogs.len(),
            client_transactions: c.client,
            server_transactions: c.server,
            transactions_refused: c.refused,
            call_timers: self.timers.len(),
            registrations: self.location.len(),
            defence: self.defence.stats(),
            ..self.stats
        }
    }

    /// Ids of the calls in progress.
    pub fn call_ids(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.calls.keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit<Peer>> {
        self.txl.poll_transmit()
    }

    /// When [`Core::handle_timeout`] must next be called.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        [
            self.txl.poll_timeout(),
            self.timers.first().map(|t| t.0),
            self.location.next_expiry(),
            self.ping_at,
            self.defence.bans.next_event(),
            self.policies_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Replaces the call's pending timer.
    fn set_timer(&mut self, id: u64, timer: Option<(Instant, TimerKind)>) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if let Some((at, kind)) = call.timer.take() {
            self.timers.remove(&(at, id, kind));
        }
        if let Some((at, kind)) = timer {
            call.timer = Some((at, kind));
            self.timers.insert((at, id, kind));
        }
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.clock = Some(now);
        self.txl.handle_timeout(now);
        self.location.expire(now);
        self.defence.bans.expire(now);
        if self.ping_at.is_some_and(|at| at <= now) {
            self.ping_phones(now);
        }
        while let Some(&(at, id, kind)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            if let Some(call) = self.calls.get_mut(&id) {
                call.timer = None;
            }
            match (kind, self.calls.get(&id).map(|c| c.phase)) {
                (TimerKind::Ring, Some(Phase::Early)) => {
                    if let Some(call) = self.calls.get_mut(&id) {
                        call.note_end(events::EndedBy::Gateway, "ring timeout");
                    }
                    self.abandon_early(now, id, StatusCode::REQUEST_TIMEOUT, "No Answer");
                }
                (TimerKind::MaxDuration, Some(Phase::Confirmed)) => {
                    self.teardown(now, id, "maximum call duration reached");
                }
                _ => {}
            }
        }
        self.process_events(now);
        self.policy_hangups(now);
    }

    /// Hangs up a call from the gateway's side: BYE on both legs of an answered call, CANCEL
    /// and 480 for one still ringing. Returns whether the call existed.
    pub fn hangup(&mut self, now: Instant, call: u64, reason: &str) -> bool {
        self.clock = Some(now);
        let Some(phase) = self.calls.get(&call).map(|c| c.phase) else {
            return false;
        };
        match phase {
            Phase::Early => self.abandon_early(
                now,
                call,
                StatusCode::new(480).unwrap_or(StatusCode::REQUEST_TERMINATED),
                "Call Terminated",
            ),
            Phase::Confirmed => self.teardown(now, call, reason),
            Phase::Ending => {}
        }
        self.process_events(now);
        true
    }

    /// Hangs up every call (end of the shutdown grace period).
    pub fn hangup_all(&mut self, now: Instant, reason: &str) {
        for id in self.call_ids() {
            self.hangup(now, id, reason);
        }
    }

    /// Sends the keep-alive OPTIONS to every phone registered over UDP and schedules the
    /// next round. Answers (or their absence) change nothing: the point is the packet.
    fn ping_phones(&mut self, now: Instant) {
        let Some(every) = self.routes.registrar.udp_ping else {
            self.ping_at = None;
            return;
        };
        self.ping_at = Some(now + every);
        let udp: Vec<Binding> = self
            .location
            .all()
            .filter(|b| b.source.transport == Transport::Udp)
            .cloned()
            .collect();
        for b in &udp {
            if let Ok(m) = build::keepalive_options(b, &self.local, &mut self.ids) {
                let _ = self.txl.send_request(now, m, b.source, false);
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
    }

    /// An in-dialog request for a phone's leg from another address: `true` when it carries
    /// the leg's account's credentials; otherwise it has been answered (407, or 403 after a
    /// failure, exactly as for a new call) and counted as a failure where it is one.
    fn in_dialog_auth(
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
                    let _ = self.txl.send_response(now, tx, &rsp);
                }
                false
            }
        }
    }

    /// Whether an ACK may act in its dialog: from the dialog's peer, or for a phone's leg
    /// from anywhere (an ACK cannot be challenged, and a phone may send it on a new
    /// connection from another address; the worst a forged one does there is stop our 2xx
    /// retransmissions). True when it matches no dialog of ours.
    fn is_dialog_peer(&self, msg: &Message, src: Peer) -> bool {
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
    fn has_our_credentials(&self, msg: &Message) -> bool {
        let realm = self.routes.accounts.realm.as_str();
        msg.auths(HeaderName::ProxyAuthorization)
            .filter_map(Result::ok)
            .any(|a| a.is_digest() && a.realm().as_deref() == Some(realm))
    }

    fn process_events(&mut self, now: Instant) {
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

    fn reply(
        &mut self,
        now: Instant,
        tx: TxId,
        req: &Message,
        status: StatusCode,
        reason: Option<&str>,
    ) {
        if let Ok(r) = Message::response_to(req, status, reason, Some(&self.ids.tag())) {
            let _ = self.txl.send_response(now, tx, &r);
        }
    }

    fn on_request(&mut self, now: Instant, tx: TxId, msg: Message) {
        let method = msg.method().unwrap_or(Method::Extension);
        if msg.to_tag().is_some() {
            self.in_dialog(now, tx, msg);
            return;
        }
        match method {
            Method::Invite => self.new_call(now, tx, msg),
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
                if let Ok(mut r) =
                    Message::response_to(&msg, StatusCode::OK, None, Some(&self.ids.tag()))
                {
                    if !trusted {
                        let _ = r.finish();
                        let _ = self.txl.send_response(now, tx, &r);
                        return;
                    }
                    let _ = r.push_header(HeaderName::Allow, build::ALLOW);
                    let _ = r.push_header(HeaderName::Accept, "application/sdp");
                    let _ = r.push_header(HeaderName::Supported, build::SUPPORTED);
                    let _ = r.finish();
                    let _ = self.txl.send_response(now, tx, &r);
                }
            }
            Method::Bye | Method::Prack | Method::Update | Method::Info => {
                self.reply(now, tx, &msg, StatusCode::CALL_DOES_NOT_EXIST, None);
            }
            Method::Extension => self.reply(now, tx, &msg, StatusCode::NOT_IMPLEMENTED, None),
            _ => self.reply(now, tx, &msg, StatusCode::FORBIDDEN, None),
        }
    }

    fn new_call(&mut self, now: Instant, tx: TxId, invite: Message) {
        let routes = Arc::clone(&self.routes);
        let Some(src) = self.txl.server_dest(tx).copied() else {
            return;
        };
        let user = invite
            .request_uri()
            .and_then(|u| {
                u.user()
                    .map(|s| String::from_utf8_lossy(&sipwarden_sip::unescape(s)).into_owned())
            })
            .unwrap_or_default();
        let zone = routes.zone(src.addr.ip());
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
                auth_stage::Authed::Account(account) => caller = Some(account),
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
                        let _ = self.txl.send_response(now, tx, &rsp);
                    }
                    return;
                }
            }
        }
        let a_account = caller.clone();
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
            routing::route(&routes, zone, &user, caller, &self.location)
        };
        let dest = match admission {
            Ok(d) => d,
            Err(verdict) => {
                self.verdicts.record(StageName::Route, &verdict);
                self.refuse_call(now, tx, &invite, (src, zone), (StageName::Route, verdict));
                return;
            }
        };
        self.verdicts.record(StageName::Route, &Verdict::Continue);
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
        if let Err(refusal) = self.admit(
            now,
            id,
            &invite,
            (src, zone),
            (&user, &dest, a_account.as_deref()),
        ) {
            self.refuse_call(now, tx, &invite, (src, zone), refusal);
            return;
        }
        // The account the call is for, in its events: the phone that placed it or the one
        // the PBX calls.
        let event_account = a_account
            .clone()
            .or_else(|| matches!(dest, Dest::Phones(_)).then(|| user.clone()));
        let mut a = build::a_leg(&invite, self.ids.tag(), src, &self.local);
        a.account = a_account;
        // Every B leg to try, with its INVITE: one, or one per registered contact.
        let mut legs = Vec::new();
        let mut b_trunk = None;
        let mut max_duration = routes.max_duration;
        let ids = &mut self.ids;
        let local = &self.local;
        match &dest {
            Dest::Trunk(i) | Dest::Pbx { trunk: Some(i), .. } => {
                if let Some(t) = routes.trunks.get(*i) {
                    max_duration = t.max_duration;
                }
            }
            _ => {}
        }
        match dest {
            Dest::Trunk(i) => {
                let Some(t) = routes.trunks.get(i) else {
                    return;
                };
                b_trunk = Some(i);
                let b = build::b_leg(&invite, &user, None, &t.host, t.target, local, ids);
                let m =
                    build::initial_invite(&invite, &b, local, &routes, (Identity::Copy, true), ids);
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
                let m = build::initial_invite(&invite, &b, local, &routes, (identity, true), ids);
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
                    );
                    legs.push((b, m));
                }
            }
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
        self.calls.insert(
            id,
            Call {
                routes,
                a,
                b,
                phase: Phase::Early,
                b_trunk,
                a_invite_tx: tx,
                a_invite: invite,
                a_final_sent: false,
                b_invite_tx: Some(b_tx),
                b_invite,
                b_ack_due: None,
                auth_tried: false,
                cancelled: false,
                byes: Vec::new(),
                rel: Vec::new(),
                next_a_rseq: 1,
                max_duration,
                txs,
                forks,
                best_failure: None,
                timer: None,
                a_status: None,
                ending: None,
            },
        );
        self.set_timer(id, Some((ring, TimerKind::Ring)));
        self.stats.calls_started += 1;
    }

    fn in_dialog(&mut self, now: Instant, tx: TxId, msg: Message) {
        let key = (
            msg.call_id().unwrap_or("").to_owned(),
            msg.to_tag().unwrap_or("").to_owned(),
        );
        let Some(&(id, side)) = self.dialogs.get(&key) else {
            self.reply(now, tx, &msg, StatusCode::CALL_DOES_NOT_EXIST, None);
            return;
        };
        let method = msg.method().unwrap_or(Method::Extension);
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
        if side == Side::A {
            if let Some((b_tx, _)) = call.b_ack_due.take() {
                let cseq = call.b_invite.cseq().map_or(1, |c| c.seq);
                let invite = call.b_invite.clone();
                if let Ok(ack) =
                    build::ack_for_2xx(call, Side::B, &invite, cseq, &self.local, &mut self.ids)
                {
                    let target = call.b.target;
                    self.txl.send_ack(b_tx, &ack, target);
                }
                let a_tx = call.a_invite_tx;
                self.txl.assume_acknowledged(now, a_tx);
            }
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
        let phase = call.phase;
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
        let relayed = build::relay_request(&msg, call, other, &self.local, &mut self.ids);
        let Ok(out) = relayed else {
            self.reply(now, tx, &msg, StatusCode::SERVER_INTERNAL_ERROR, None);
            return;
        };
        let target = call.leg(other).target;
        if method == Method::Bye {
            call.phase = Phase::Ending;
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

    fn on_ack(&mut self, invite: Option<TxId>, ack: &Message) {
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
                if let Some((b_tx, _tag)) = call.b_ack_due.take() {
                    let cseq = call.b_invite.cseq().map_or(1, |c| c.seq);
                    if let Ok(out) =
                        build::ack_for_2xx(call, Side::B, ack, cseq, &self.local, &mut self.ids)
                    {
                        let target = call.b.target;
                        self.txl.send_ack(b_tx, &out, target);
                    }
                }
            }
            ServerRole::Relay { client, side, cseq } => {
                // ACK for a relayed re-INVITE's 2xx.
                let Some(call) = self.calls.get_mut(&id) else {
                    return;
                };
                let other = side.other();
                if let Ok(out) =
                    build::ack_for_2xx(call, other, ack, cseq, &self.local, &mut self.ids)
                {
                    let target = call.leg(other).target;
                    self.txl.send_ack(client, &out, target);
                }
            }
        }
    }

    fn on_cancelled(&mut self, now: Instant, invite: TxId) {
        let Some(&(id, role)) = self.servers.get(&invite) else {
            return;
        };
        if !matches!(role, ServerRole::Invite) {
            // A CANCEL for a relayed re-INVITE: let the re-INVITE finish on the other leg.
            return;
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.phase != Phase::Early {
            return;
        }
        call.cancelled = true;
        call.phase = Phase::Ending;
        call.note_end(events::EndedBy::Caller, "cancelled");
        if let Some(b_tx) = call.b_invite_tx {
            let _ = self.txl.cancel(now, b_tx);
        }
        self.cancel_forks(now, id);
        self.final_to_a(now, id, StatusCode::REQUEST_TERMINATED, None);
        self.maybe_finish(id);
    }

    // === responses ===

    fn on_response(&mut self, now: Instant, tx: TxId, rsp: Message) {
        let Some(&(id, role)) = self.clients.get(&tx) else {
            return;
        };
        let status = rsp.status().unwrap_or(StatusCode::SERVER_INTERNAL_ERROR);
        match role {
            ClientRole::Invite => self.on_invite_response(now, id, tx, rsp, status),
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
                if let Ok(out) = build::relay_response(&rsp, &req, call, from, &self.local) {
                    let _ = self.txl.send_response(now, server, &out);
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

    fn on_invite_response(
        &mut self,
        now: Instant,
        id: u64,
        tx: TxId,
        rsp: Message,
        status: StatusCode,
    ) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.b_invite_tx != Some(tx) {
            if let Some(i) = call.forks.iter().position(|f| f.tx == tx) {
                self.on_fork_response(now, id, i, rsp, status);
            }
            return;
        }
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
            if call.cancelled || call.a_final_sent {
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
            if let Ok(out) = build::response_to_a(&rsp, call, &self.local, rel) {
                let _ = self.txl.send_response(now, call.a_invite_tx, &out);
            }
            return;
        }
        self.clients.remove(&tx);
        call.b_invite_tx = None;
        if status.is_success() {
            if call.cancelled || call.a_final_sent {
                // Answered after A gave up: acknowledge and hang up B.
                let cseq = call.b_invite.cseq().map_or(1, |c| c.seq);
                if let Ok(ack) =
                    build::ack_for_2xx(call, Side::B, &rsp, cseq, &self.local, &mut self.ids)
                {
                    let target = call.b.target;
                    self.txl.send_ack(tx, &ack, target);
                }
                self.send_bye(now, id, Side::B, "call cancelled");
                return;
            }
            call.phase = Phase::Confirmed;
            call.b_ack_due = Some((tx, rsp.to_tag().unwrap_or("").to_owned()));
            self.cancel_forks(now, id);
            let Some(call) = self.calls.get_mut(&id) else {
                return;
            };
            let deadline = now + call.max_duration;
            if let Ok(out) = build::response_to_a(&rsp, call, &self.local, None) {
                let a_tx = call.a_invite_tx;
                call.a_final_sent = true;
                let _ = self.txl.send_response(now, a_tx, &out);
            }
            self.stats.calls_answered += 1;
            if let Some(call) = self.calls.get_mut(&id) {
                call.a_status = Some(status.as_u16());
            }
            self.policies_answered(id, now);
            self.call_event(now, id, events::CallEventKind::Answered);
            self.set_timer(id, Some((deadline, TimerKind::MaxDuration)));
            return;
        }
        // A challenge from the trunk: answer it once.
        if matches!(code, 401 | 407) && !call.auth_tried {
            let creds = call
                .b_trunk
                .and_then(|t| call.routes.trunks.get(t))
                .and_then(|t| t.credentials.clone());
            if let Some((user, pass)) = creds {
                call.auth_tried = true;
                let cnonce = self.ids.cnonce();
                let branch = self.ids.branch();
                if let Ok(next) =
                    auth::answer_challenge(&call.b_invite, &rsp, &user, &pass, &cnonce, &branch)
                {
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
        if !call.cancelled && !call.a_final_sent && call.forks.iter().any(|f| !f.cancelled) {
            note_failure(call, status);
            self.promote_fork(id);
            return;
        }
        // A failure: pass the status back (a second challenge becomes 403: the PBX cannot
        // answer the trunk's challenge, and must not see it).
        if call.cancelled || call.a_final_sent {
            self.maybe_finish(id);
            return;
        }
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
        call.phase = Phase::Ending;
        self.final_to_a(now, id, status, reason);
        self.maybe_finish(id);
    }

    fn on_client_timeout(&mut self, now: Instant, tx: TxId) {
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
                if !call.cancelled && !call.a_final_sent && call.forks.iter().any(|f| !f.cancelled)
                {
                    note_failure(call, StatusCode::REQUEST_TIMEOUT);
                    self.promote_fork(id);
                    return;
                }
                call.phase = Phase::Ending;
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
        }
    }

    fn on_ack_timeout(&mut self, now: Instant, tx: TxId) {
        let Some(&(id, role)) = self.servers.get(&tx) else {
            return;
        };
        if matches!(role, ServerRole::Invite) {
            // A never acknowledged the answer: acknowledge B ourselves and end the call.
            if let Some(call) = self.calls.get_mut(&id) {
                if let Some((b_tx, _)) = call.b_ack_due.take() {
                    let invite = call.b_invite.clone();
                    let cseq = invite.cseq().map_or(1, |c| c.seq);
                    if let Ok(ack) =
                        build::ack_for_2xx(call, Side::B, &invite, cseq, &self.local, &mut self.ids)
                    {
                        let target = call.b.target;
                        self.txl.send_ack(b_tx, &ack, target);
                    }
                }
            }
            self.teardown(now, id, "no ACK");
        }
    }

    // === forks ===

    /// A response on a fork other than the current B leg.
    fn on_fork_response(
        &mut self,
        now: Instant,
        id: u64,
        i: usize,
        rsp: Message,
        status: StatusCode,
    ) {
        if status.as_u16() == 100 {
            return;
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(fork) = call.forks.get_mut(i) else {
            return;
        };
        if let Some(tag) = rsp.to_tag() {
            if !status.is_final() || status.is_success() {
                fork.leg.remote_tag = Some(tag.to_owned());
                if let Some(c) = build::contact_uri(&rsp) {
                    fork.leg.remote_target = c;
                }
                fork.leg.route_set = build::route_set_from_response(&rsp);
            }
        }
        if status.is_provisional() {
            if !(fork.cancelled || call.cancelled || call.a_final_sent) {
                if let Ok(out) = build::response_to_a(&rsp, call, &self.local, None) {
                    let _ = self.txl.send_response(now, call.a_invite_tx, &out);
                }
            }
            return;
        }
        let fork = call.forks.remove(i);
        self.clients.remove(&fork.tx);
        if !status.is_success() {
            if !fork.cancelled {
                note_failure(call, status);
            }
            // The last fork to fail ends the call when the current B leg is gone too.
            if call.b_invite_tx.is_none() && call.forks.is_empty() && !call.a_final_sent {
                call.phase = Phase::Ending;
                let best = call.best_failure.unwrap_or(status);
                self.final_to_a(now, id, best, None);
            }
            self.maybe_finish(id);
            return;
        }
        if fork.cancelled || call.cancelled || call.a_final_sent || call.phase != Phase::Early {
            // Answered too late: another fork won, or the caller gave up.
            self.end_fork(now, fork, &rsp);
            self.maybe_finish(id);
            return;
        }
        // This fork answered first: it becomes the B leg, the current one a fork to cancel.
        let Fork {
            leg, invite, tx, ..
        } = fork;
        let old_leg = std::mem::replace(&mut call.b, leg);
        let old_invite = std::mem::replace(&mut call.b_invite, invite);
        let old_tx = call.b_invite_tx.replace(tx);
        self.dialogs
            .remove(&(old_leg.call_id.clone(), old_leg.local_tag.clone()));
        self.dialogs.insert(
            (call.b.call_id.clone(), call.b.local_tag.clone()),
            (id, Side::B),
        );
        if let Some(old_tx) = old_tx {
            call.forks.push(Fork {
                leg: old_leg,
                invite: old_invite,
                tx: old_tx,
                cancelled: false,
            });
        }
        self.clients.insert(tx, (id, ClientRole::Invite));
        self.on_invite_response(now, id, tx, rsp, status);
    }

    /// CANCEL every fork still ringing (another answered, or the call ends).
    fn cancel_forks(&mut self, now: Instant, id: u64) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        for f in call.forks.iter_mut().filter(|f| !f.cancelled) {
            f.cancelled = true;
            let _ = self.txl.cancel(now, f.tx);
        }
    }

    /// The current B leg failed: the first fork still ringing takes its place.
    fn promote_fork(&mut self, id: u64) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(i) = call.forks.iter().position(|f| !f.cancelled) else {
            return;
        };
        let f = call.forks.remove(i);
        let old = std::mem::replace(&mut call.b, f.leg);
        call.b_invite = f.invite;
        call.b_invite_tx = Some(f.tx);
        self.dialogs.remove(&(old.call_id, old.local_tag));
        self.dialogs.insert(
            (call.b.call_id.clone(), call.b.local_tag.clone()),
            (id, Side::B),
        );
    }

    /// ACK and BYE for a fork that answered after the call was settled.
    fn end_fork(&mut self, now: Instant, mut fork: Fork, rsp: &Message) {
        let cseq = fork.invite.cseq().map_or(1, |c| c.seq);
        let target = fork.leg.target;
        if let Ok(ack) = build::ack_on_leg(&fork.leg, rsp, cseq, &self.local, &mut self.ids) {
            self.txl.send_ack(fork.tx, &ack, target);
        }
        if let Ok(bye) = build::bye_on_leg(
            &mut fork.leg,
            "answered elsewhere",
            &self.local,
            &mut self.ids,
        ) {
            let _ = self.txl.send_request(now, bye, target, target.reliable());
        }
    }

    // === endings ===

    fn final_to_a(&mut self, now: Instant, id: u64, status: StatusCode, reason: Option<&str>) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.a_final_sent {
            return;
        }
        call.a_final_sent = true;
        call.a_status = Some(status.as_u16());
        let tag = call.a.local_tag.clone();
        if let Ok(r) = Message::response_to(&call.a_invite, status, reason, Some(&tag)) {
            let a_tx = call.a_invite_tx;
            let _ = self.txl.send_response(now, a_tx, &r);
        }
    }

    /// Gives up on a call still ringing: CANCEL on B, `status` on A.
    fn abandon_early(&mut self, now: Instant, id: u64, status: StatusCode, reason: &str) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.phase != Phase::Early {
            return;
        }
        call.phase = Phase::Ending;
        call.cancelled = true;
        call.note_end(events::EndedBy::Gateway, reason);
        if let Some(b_tx) = call.b_invite_tx {
            let _ = self.txl.cancel(now, b_tx);
        }
        self.cancel_forks(now, id);
        self.final_to_a(now, id, status, Some(reason));
        self.maybe_finish(id);
    }

    /// BYE on both legs of an answered call.
    fn teardown(&mut self, now: Instant, id: u64, reason: &str) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.phase == Phase::Ending {
            return;
        }
        call.phase = Phase::Ending;
        call.note_end(events::EndedBy::Gateway, reason);
        self.send_bye(now, id, Side::A, reason);
        self.send_bye(now, id, Side::B, reason);
        self.maybe_finish(id);
    }

    fn send_bye(&mut self, now: Instant, id: u64, side: Side, reason: &str) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.phase = Phase::Ending;
        if call.leg(side).remote_tag.is_none() {
            return;
        }
        let Ok(bye) = build::bye(call, side, reason, &self.local, &mut self.ids) else {
            return;
        };
        let target = call.leg(side).target;
        if let Ok(tx) = self.txl.send_request(now, bye, target, target.reliable()) {
            call.byes.push((side, tx));
            call.txs.push(tx);
            self.clients.insert(tx, (id, ClientRole::Bye));
        }
    }

    /// Ends the call if nothing of it is still in flight.
    fn maybe_finish(&mut self, id: u64) {
        let done = self.calls.get(&id).is_some_and(|c| {
            c.phase == Phase::Ending
                && c.a_final_sent
                && c.b_invite_tx.is_none()
                && c.forks.is_empty()
                && c.byes.is_empty()
        });
        if done {
            self.finish(id);
        }
    }

    /// Remembers transactions a call has roles in, so ending it costs O(its transactions).
    fn track(&mut self, id: u64, txs: &[TxId]) {
        if let Some(call) = self.calls.get_mut(&id) {
            call.txs.extend_from_slice(txs);
        }
    }

    /// Forgets a call: its dialogs and transaction roles. Transactions still running finish
    /// on their own timers.
    fn finish(&mut self, id: u64) {
        self.set_timer(id, None);
        let Some(call) = self.calls.remove(&id) else {
            return;
        };
        if let Some(now) = self.clock {
            self.policies_ended(id, now);
            let (by, reason) = call
                .ending
                .clone()
                .unwrap_or_else(|| (events::EndedBy::Gateway, "ended".to_owned()));
            self.call_event(
                now,
                id,
                events::CallEventKind::Ended {
                    status: call.a_status,
                    by,
                    reason,
                },
            );
        }
        self.dialogs.remove(&(call.a.call_id, call.a.local_tag));
        self.dialogs.remove(&(call.b.call_id, call.b.local_tag));
        for tx in &call.txs {
            self.clients.remove(tx);
            self.servers.remove(tx);
        }
    }
}

/// Keeps the best failure among forks (RFC 3261 §16.7: a 6xx wins, else the lowest class;
/// 408 and 5xx only when nothing better came).
fn note_failure(call: &mut Call, status: StatusCode) {
    let rank = |s: StatusCode| {
        let c = s.as_u16();
        match c {
            600..=699 => 0,
            408 => 4,
            400..=499 => 1,
            300..=399 => 2,
            _ => 3,
        }
    };
    if call.best_failure.is_none_or(|b| rank(status) < rank(b)) {
        call.best_failure = Some(status);
    }
}

/// RFC 3581 / RFC 3261 §18.2.1: note where a request really came from in its top Via, so the
/// responses built from it carry `received` and the actual `rport`.
fn stamp_received(msg: &mut Message, src: SocketAddr) {
    let Some(via) = msg.top_via() else { return };
    let wants_rport = via.rport().is_some();
    let differs = via.host.ip() != Some(src.ip());
    if !wants_rport && !differs {
        return;
    }
    let mut v = format!(
        "{}/{}/{} {}",
        via.protocol, via.version, via.transport_text, via.host
    );
    if let Some(p) = via.port {
        v.push_str(&format!(":{p}"));
    }
    for (name, value) in via.params.iter() {
        if name.eq_ignore_ascii_case("received") || name.eq_ignore_ascii_case("rport") {
            continue;
        }
        match value {
            Some(val) => v.push_str(&format!(";{name}={val}")),
            None => v.push_str(&format!(";{name}")),
        }
    }
    v.push_str(&format!(";received={}", src.ip()));
    if wants_rport {
        v.push_str(&format!(";rport={}", src.port()));
    }
    if msg.pop_via().is_ok() {
        let _ = msg.prepend_header(HeaderName::Via, &v);
    }
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("stats", &self.stats())
            .finish()
    }
}

/// Whether an in-dialog request from `src` may speak for the leg whose peer is `peer`: the same
/// address, or, for the PBX and trunks (which may send from any of their configured networks),
/// the same trusted zone. A phone's dialog is bound to its IP address, not its port: a NAT may
/// rebind the port mid-call.
fn same_peer(routes: &Routes, src: IpAddr, peer: IpAddr) -> bool {
    if src.to_canonical() == peer.to_canonical() {
        return true;
    }
    let zone = routes.zone(src);
    zone != Zone::Endpoint && zone == routes.zone(peer)
}
