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
// Unit tests may read the clock for an arbitrary origin; the code under test may not
// (disallowed-methods in ../../clippy.toml).
#![cfg_attr(test, allow(clippy::disallowed_methods))]

mod auth_stage;
mod build;
mod call;
mod defence;
mod dispatch;
mod edge;
mod endpoint_auth;
pub mod events;
mod ids;
mod kill_switch;
mod outreg;
mod policies;
mod qualify;
mod registrar;
mod rewrites;
mod routes;
mod routing;
mod security;
mod trunk_auth;
mod trunks;

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use sipwarden_sip::header::Transport;
use sipwarden_sip::{HeaderName, Message, Peer, Policy};
use sipwarden_txn::{Transmit, TxId, TxLayer};

pub use call::Side;
pub use defence::{DefenceSettings, DefenceStats};
pub use endpoint_auth::{ChallengeTable, NonceSettings};
pub use kill_switch::{Disabled, SwitchChange, SwitchError};
pub use outreg::RegState;
pub use registrar::{Binding, LocationChange};
pub use routes::{RegistrarSettings, RouteError, Routes, TrunkRoute, Zone};
pub use sipwarden_events::SecurityEvent;
pub use sipwarden_stages::{BanChange, BanEntry, FailureStats, TableStats};
pub use trunks::{AddressStatus, TrunkStatus};

use call::Call;
use defence::Defence;
use endpoint_auth::Digest;
use ids::Ids;
use registrar::Registrar;

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
    /// Call timers pending (ring timeouts and maximum durations, one per call, and the
    /// failover deadline of an outbound call's attempt).
    pub call_timers: usize,
    /// Registered contacts (bindings) in the location table.
    pub registrations: usize,
    /// REGISTER requests accepted since start.
    pub registrations_accepted: u64,
    /// REGISTER requests refused (403, 423, 400, 503) since start.
    pub registrations_refused: u64,
    /// REGISTER requests refused with 503 because the location table was full
    /// (`registrar.max_bindings`) since start; also in `registrations_refused`.
    pub registrations_table_full: u64,
    /// Failed digest authentications (REGISTER and calls) since start.
    pub auth_failures: u64,
    /// Keep-alive OPTIONS sent to phones registered over UDP since start.
    pub keepalives_sent: u64,
    /// Client transactions ended because the transport could not reach their peer.
    pub transport_failures: u64,
    /// Outbound calls moved on to another trunk address since start.
    pub failovers: u64,
    /// Of those, moves because an address sent no response at all in time.
    pub failovers_no_response: u64,
    /// Trunk addresses marked down by failed calls since start.
    pub trunk_addresses_marked_down: u64,
    /// Trunk addresses with a health record (bounded by the trunks' addresses).
    pub trunk_health_entries: usize,
    /// INVITEs left behind by moves, still waiting to end.
    pub abandoned_attempts: usize,
    /// Trunk addresses being qualified.
    pub qualify_probes: usize,
    /// Qualify OPTIONS sent since start.
    pub qualify_sent: u64,
    /// Qualify verdicts that changed (up to down, down to up, first verdicts) since start.
    pub qualify_changes: u64,
    /// REGISTERs sent to carriers since start.
    pub carrier_registers_sent: u64,
    /// Registrations to carriers refused or unanswered since start.
    pub carrier_registration_failures: u64,
    /// Call events dropped because the server had not drained them (never in normal use).
    pub call_events_dropped: u64,
    /// Security events dropped because the server had not drained `storage.event_queue` of
    /// them (never in normal use).
    pub security_events_dropped: u64,
    /// Security events the core produced since start, those its queue dropped included:
    /// produced = written by the server + dropped here + dropped by the server's writer.
    pub security_events: u64,
    /// The used-nonce table of digest authentication (`accounts.max_nonces`).
    pub nonces: TableStats,
    /// Messages the core could not build, and so did not send (never half-built).
    pub internal_build_errors: u64,
    /// Messages the transaction layer refused to send (no such transaction, table full).
    pub internal_send_errors: u64,
    /// What the edge stages did.
    pub defence: DefenceStats,
}

/// One bounded table of the core, as `/metrics` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableMetric {
    /// The `table` label.
    pub table: &'static str,
    /// Entries held (`None`: not counted, the per-account known addresses).
    pub entries: Option<usize>,
    /// Live entries evicted since start (to make room, or to meet a bound lowered on reload).
    pub evicted: u64,
}

impl Stats {
    /// The core's bounded tables, each by its `/metrics` label.
    pub fn tables(&self) -> [TableMetric; 7] {
        let d = &self.defence;
        let f = &d.failures;
        let t = |table, s: TableStats| TableMetric {
            table,
            entries: Some(s.len),
            evicted: s.evicted,
        };
        [
            t("nonces", self.nonces),
            t("failures_by_address", f.by_ip),
            t("failures_by_account", f.by_account),
            t("known_accounts", f.known_accounts),
            TableMetric {
                table: "known_addresses",
                entries: None,
                evicted: f.known_addresses_evicted,
            },
            t("ratelimit_sources", d.rate_sources),
            TableMetric {
                table: "bans",
                entries: Some(d.ban_table_size),
                evicted: d.bans_evicted,
            },
        ]
    }
}

/// Location changes, and the answers that may leave only once they are stored
/// ([`Core::take_durable`]).
#[derive(Debug, Default)]
pub struct Durable {
    /// The changes, in order.
    pub changes: Vec<LocationChange>,
    /// Answers to send after the changes are stored.
    pub answers: Vec<Transmit<Peer>>,
}

impl Durable {
    /// Nothing to store and nothing waiting.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.answers.is_empty()
    }
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
    /// An INVITE to a trunk address the call moved on from (see `Core::abandoned`).
    Abandoned,
    /// A qualify OPTIONS to a trunk address.
    Qualify,
    /// A REGISTER of the gateway to a carrier.
    Register,
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
    /// An outbound attempt's "no response at all" deadline (beside the call's timer).
    Failover,
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
    /// The registrar and its location table.
    registrar: Registrar,
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
    /// The rewrites of calls' outgoing messages, in order (`set_rewrites`).
    rewrites: rewrites::Rewrites,
    /// A wall-clock reading and the `Instant` it was taken at (`set_wall_clock`).
    wall: Option<(Instant, std::time::SystemTime)>,
    /// The time of the input being handled (for hooks called deep inside it).
    clock: Option<Instant>,
    /// Call events since the server last took them.
    call_events: Vec<events::CallEvent>,
    /// Answers to REGISTERs that changed the location table: they acknowledge a binding, so
    /// they leave only once the changes are stored ([`Core::take_durable`]).
    held: Vec<Transmit<Peer>>,
    /// The trunks' addresses (DNS) and health.
    trunks: trunks::Trunks,
    /// INVITEs of outbound calls that moved on without waiting for them: cancelled if they
    /// ring, hung up if they answer. Bounded by the transaction table.
    abandoned: HashMap<TxId, call::Fork>,
    /// OPTIONS to the addresses of trunks with `[trunk.qualify]`.
    qualify: qualify::Qualify,
    /// Registrations to carriers (`[trunk.registration]`).
    outreg: outreg::OutReg,
    /// Disabled trunks and accounts.
    switch: kill_switch::KillSwitch,
    /// Policy decisions by policy and outcome, since start (bounded by the code's names).
    decisions: std::collections::BTreeMap<(&'static str, sipwarden_stages::Outcome), u64>,
}

impl Core {
    /// A core with these routes, addresses and settings; `seed` feeds the identifier CSPRNG.
    pub fn new(routes: Routes, local: Local, settings: Settings, seed: [u8; 32]) -> Self {
        let mut ids = Ids::new(seed);
        let mut digest = Digest::new(ids.key());
        digest.set_nonces(routes.nonces);
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
            registrar: Registrar::default(),
            security: Vec::new(),
            ping_at: None,
            verdicts: sipwarden_stages::VerdictCounts::default(),
            policies: Vec::new(),
            rewrites: rewrites::Rewrites::default(),
            wall: None,
            clock: None,
            call_events: Vec::new(),
            held: Vec::new(),
            trunks: trunks::Trunks::default(),
            abandoned: HashMap::new(),
            qualify: qualify::Qualify::new(),
            outreg: outreg::OutReg::new(),
            switch: kill_switch::KillSwitch::default(),
            decisions: std::collections::BTreeMap::new(),
        }
    }

    /// Changes of the location table since the last call, for the durable store, with the
    /// answers that acknowledge them: the server sends those only once the changes are
    /// stored, so no acknowledged registration is lost on a crash — and nothing else waits.
    pub fn take_durable(&mut self) -> Durable {
        Durable {
            changes: self.registrar.take_changes(),
            answers: std::mem::take(&mut self.held),
        }
    }

    /// Puts a binding loaded from the store back in the location table; `false` when it was
    /// left out because the table is full (`registrar.max_bindings` was lowered).
    pub fn restore_binding(&mut self, b: Binding) -> bool {
        self.registrar
            .restore(b, self.routes.registrar.max_bindings)
    }

    /// The registered contacts of an account.
    pub fn bindings(&self, aor: &str) -> &[Binding] {
        self.registrar.location().bindings(aor)
    }

    /// Call events since the last call (the server drains them after every batch).
    pub fn take_call_events(&mut self) -> Vec<events::CallEvent> {
        std::mem::take(&mut self.call_events)
    }

    /// Security events since the last call (for the security log and the JSON log).
    pub fn take_security_events(&mut self) -> Vec<SecurityEvent> {
        std::mem::take(&mut self.security)
    }

    /// Replaces the routes for new calls; calls in progress keep theirs. Trunks keep their
    /// addresses and health by name; those no longer configured are forgotten.
    pub fn set_routes(&mut self, routes: Routes) {
        self.defence.set_settings(routes.defence.clone());
        self.digest.set_nonces(routes.nonces);
        self.trunks.retain_trunks(&routes);
        self.routes = Arc::new(routes);
        self.qualify.kick = true;
        self.outreg.kick = true;
    }

    /// The addresses of a trunk named by DNS, as the server resolved them (empty: none
    /// usable; routing then skips the trunk). At most `dns.max_addresses` are kept.
    pub fn set_trunk_targets(&mut self, trunk: &str, targets: Vec<sipwarden_dns::Target>) {
        let max = self.routes.max_addresses;
        // `networks_from_dns`: the resolved addresses are the trunk's zone too (and never
        // banned, as its networks are). Addresses it no longer has stay exempt from bans
        // until the next reload.
        let from_dns = self
            .routes
            .trunks
            .iter()
            .position(|t| t.name == trunk && t.networks_from_dns);
        if let Some(i) = from_dns {
            let mut r = (*self.routes).clone();
            let mut resolved = targets.clone();
            sipwarden_dns::cap(&mut resolved, max);
            let addrs: Vec<ipnet::IpNet> = resolved
                .iter()
                .flat_map(|t| t.addrs.iter().map(|ip| ipnet::IpNet::from(*ip)))
                .collect();
            if let Some(t) = r.trunks.get_mut(i) {
                let mut nets = t.configured_networks.clone();
                nets.extend(
                    addrs
                        .iter()
                        .copied()
                        .filter(|a| !t.configured_networks.contains(a)),
                );
                nets.dedup();
                t.networks = nets;
            }
            for a in addrs {
                if !r.defence.ban.never.contains(&a) {
                    r.defence.ban.never.push(a);
                }
            }
            self.defence.set_settings(r.defence.clone());
            self.routes = Arc::new(r);
        }
        self.trunks.set_targets(trunk, targets, max);
        self.qualify.kick = true;
        self.outreg.kick = true;
    }

    /// Every trunk with its addresses and their health at `now`, for the admin API.
    pub fn trunk_status(&self, now: Instant) -> Vec<TrunkStatus> {
        let mut s = self.trunks.status(&self.routes, now);
        for t in &mut s {
            t.registration = self.outreg.state(&t.name, now);
            t.disabled = self.disabled_trunk(&t.name);
        }
        s
    }

    /// Changes whenever a trunk's addresses or health change (or the routes do).
    pub fn trunks_version(&self) -> u64 {
        self.trunks.version()
    }

    /// A trunk's addresses as new calls use them.
    pub fn trunk_targets(&self, trunk: &str) -> Vec<sipwarden_dns::Target> {
        self.routes
            .trunks
            .iter()
            .position(|t| t.name == trunk)
            .map(|i| self.trunks.targets(&self.routes, i).to_vec())
            .unwrap_or_default()
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
    pub fn set_nonce_key(&mut self, key: sipwarden_sip::Secret<[u8; 32]>, now: Instant, unix: u64) {
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
            registrations: self.registrar.location().len(),
            trunk_health_entries: self.trunks.health_len(),
            qualify_probes: self.qualify.len(),
            qualify_sent: self.qualify.sent,
            qualify_changes: self.qualify.changes,
            carrier_registers_sent: self.outreg.sent,
            carrier_registration_failures: self.outreg.failures,
            abandoned_attempts: self.abandoned.len(),
            nonces: self.digest.nonce_stats(),
            defence: self.defence.stats(),
            ..self.stats
        }
    }

    /// What the core could not build: counted, and nothing half-built is sent.
    pub(crate) fn built<T, E>(&mut self, r: Result<T, E>) -> Option<T> {
        if r.is_err() {
            self.stats.internal_build_errors += 1;
        }
        r.ok()
    }

    /// What the transaction layer refused to send: counted.
    pub(crate) fn sent<T, E>(&mut self, r: Result<T, E>) {
        if r.is_err() {
            self.stats.internal_send_errors += 1;
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
            self.registrar.location().next_expiry(),
            self.ping_at,
            self.defence.bans.next_event(),
            self.policies_deadline(),
            self.qualify.due(),
            self.outreg.due(),
            // A qualify or registration round waits for the next input time once trunks
            // changed.
            self.clock.filter(|_| self.qualify.kick || self.outreg.kick),
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
}

/// RFC 3581 / RFC 3261 §18.2.1: note where a request really came from in its top Via, so the
/// responses built from it carry `received` and the actual `rport`.
pub(crate) fn stamp_received(msg: &mut Message, src: SocketAddr) {
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
    // Both edits or neither: a request must not lose its top Via (where answers go).
    let mut stamped = msg.clone();
    if stamped.pop_via().is_ok() && stamped.prepend_header(HeaderName::Via, &v).is_ok() {
        *msg = stamped;
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
pub(crate) fn same_peer(routes: &Routes, src: IpAddr, peer: IpAddr) -> bool {
    if src.to_canonical() == peer.to_canonical() {
        return true;
    }
    let zone = routes.zone(src);
    zone != Zone::Endpoint && zone == routes.zone(peer)
}
