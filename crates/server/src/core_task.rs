//! The task that owns the call core: it takes parsed messages, timer deadlines and control
//! commands in, and hands what the core wants sent to the transports.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use sipwarden_b2bua::{Core, Routes, Stats};
use sipwarden_events::SecurityEvent;

use crate::bans::{BanView, Nft};
use crate::writer::{Batch, Submitted, Writer};

/// What the core task hands its output to besides the sockets.
pub(crate) struct Sinks {
    /// The disk, behind a queue.
    pub(crate) writer: Writer,
    /// The last batch the writer has written.
    pub(crate) written: watch::Receiver<u64>,
    pub(crate) bans: Arc<BanView>,
    pub(crate) nft: Option<Arc<Nft>>,
    pub(crate) verdicts: VerdictTable,
    /// The trunks named by DNS of the routes in force, for the resolver.
    pub(crate) named: watch::Sender<crate::resolver::Named>,
    /// Every trunk's addresses and health, for the admin API.
    pub(crate) trunks: watch::Sender<Vec<sipwarden_b2bua::TrunkStatus>>,
    /// The media relay and the anchoring rewrite's queue, with `[media]`.
    pub(crate) media: Option<crate::media::Media>,
    /// rtpengine's task, when it is the media engine.
    pub(crate) engine: Option<crate::engine::Engine>,
}

/// The message path's verdict counts (stage, verdict, reason, count), copied from the core
/// at most every 250 ms for `/metrics`.
pub(crate) type VerdictTable = Arc<std::sync::Mutex<Counts>>;

/// The core's counts by label, copied for `/metrics`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Counts {
    /// (stage, verdict, reason, count).
    pub(crate) verdicts: Vec<(&'static str, &'static str, &'static str, u64)>,
    /// Call-policy decisions: (policy, outcome, count).
    pub(crate) decisions: Vec<(&'static str, &'static str, u64)>,
    /// The policies' own sizes and totals.
    pub(crate) policy_gauges: Vec<sipwarden_stages::PolicyGauge>,
}

use sipwarden_transport::{Inbound, Transports};
use tokio::sync::{mpsc, watch};

/// Commands for the call core.
#[derive(Debug)]
pub enum Control {
    /// Re-read the configuration file; new calls use the new routes.
    Reload,
    /// Refuse new calls (503); let calls in progress continue.
    Drain,
    /// Hang up every call.
    HangupAll,
    /// Hang up one call.
    Hangup(u64),
    /// Ban an address (an operator's decision); the answer says whether a ban started.
    Ban {
        /// The address.
        ip: std::net::IpAddr,
        /// Why.
        reason: String,
        /// Whether it was banned (false: exempt or already banned).
        reply: tokio::sync::oneshot::Sender<bool>,
    },
    /// Lift a ban; the answer says whether there was one.
    Unban {
        /// The address.
        ip: std::net::IpAddr,
        /// Whether it was banned.
        reply: tokio::sync::oneshot::Sender<bool>,
    },
    /// New routes and call policies, read and built off the core task (a reload).
    SetRoutes(Box<Routes>, Reloaded),
    /// A trunk named by DNS resolved to these targets (empty: none usable).
    TrunkTargets {
        /// The trunk's name.
        trunk: String,
        /// Its targets.
        targets: Vec<sipwarden_dns::Target>,
    },
    /// A call's media stopped both ways for longer than `[media] timeout`: end it.
    MediaTimeout(u64),
    /// A call has been on hold longer than `[media] hold_timeout`: end it.
    HoldTimeout(u64),
    /// rtpengine could not anchor a call's media (refused, or no answer): end it.
    MediaFailed(u64),
    /// The kill switch: disable a trunk or account (no new call through it), and with
    /// `hangup` end its running calls on both legs. `reply` gets the number of calls hung
    /// up (or why nothing was disabled) at once; `stored` is told once the state is on
    /// disk.
    Disable {
        /// What.
        subject: sipwarden_stages::Subject,
        /// End its running calls too.
        hangup: bool,
        /// Calls hung up, or the error.
        reply: tokio::sync::oneshot::Sender<Result<usize, String>>,
        /// True once stored.
        stored: tokio::sync::oneshot::Sender<bool>,
    },
    /// Enable a trunk or account again; `stored` gets whether it was disabled, once the
    /// change is on disk.
    Enable {
        /// What.
        subject: sipwarden_stages::Subject,
        /// Whether it was disabled.
        stored: tokio::sync::oneshot::Sender<bool>,
    },
    /// Stop the task.
    Stop,
}

/// The policies and configured rewrites of a reload.
pub struct Reloaded {
    policies: Vec<Box<dyn sipwarden_stages::CallPolicy>>,
    rewrites: Vec<Box<dyn sipwarden_stages::Rewrite>>,
}

impl std::fmt::Debug for Reloaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloaded")
            .field("policies", &self.policies.len())
            .field("rewrites", &self.rewrites.len())
            .finish()
    }
}

/// Hands the core's output on: what it sends goes to the transports at once, except the
/// answers that acknowledge a binding (and the operator's ban request), which travel with
/// their batch and leave once it is written; the bans take effect in the transports at once
/// and reach the disk through the writer.
fn flush(
    core: &mut Core,
    transports: &Transports,
    sinks: &mut Sinks,
    pending_reply: &mut Vec<(tokio::sync::oneshot::Sender<bool>, bool)>,
) {
    // What the media-anchoring rewrite queued: streams to open, move, close. A stream the
    // relay cannot open ends its call (its SDP already names the relay).
    let mut unanchored = Vec::new();
    if let Some(m) = &sinks.media {
        let (failed, u) = m.perform();
        unanchored = u;
        if !failed.is_empty() {
            let now = Instant::now();
            for call in failed {
                core.hangup(now, call, "media relay could not open the call's ports");
            }
            m.perform();
        }
    }
    let mut batch = Batch::default();
    let durable = core.take_durable();
    batch.locations = crate::location::rows(&durable.changes);
    // The events first: a ban follows the failures that caused it, in both logs.
    let now = SystemTime::now();
    batch.events = core
        .take_security_events()
        .into_iter()
        .map(|e| (e, now))
        .collect();
    batch.calls = core.take_call_events();
    if let Some(e) = &sinks.engine {
        batch.calls.extend(e.take_events());
    }
    for (call, reason) in unanchored {
        batch.calls.push(sipwarden_b2bua::events::CallEvent {
            call,
            at: now,
            kind: sipwarden_b2bua::events::CallEventKind::MediaUnanchored { reason },
        });
    }
    // The relay's figures of the streams it closed: the call records' media columns.
    if let Some(m) = &sinks.media {
        for r in m.relay.take_closed() {
            batch.calls.push(sipwarden_b2bua::events::CallEvent {
                call: r.call,
                at: now,
                kind: sipwarden_b2bua::events::CallEventKind::Media {
                    stream: r.stream,
                    from_a: (r.counters.from_a, r.counters.bytes_from_a),
                    from_b: (r.counters.from_b, r.counters.bytes_from_b),
                    dropped: r.counters.dropped_source,
                },
            });
        }
    }
    let bans = core.take_ban_changes();
    if !bans.is_empty() {
        for c in &bans {
            match c {
                sipwarden_b2bua::BanChange::Banned(e) => {
                    let ttl = e.until.saturating_duration_since(e.since);
                    tracing::warn!(ip = %e.ip, reason = %e.reason, secs = ttl.as_secs(), count = e.count, "banned");
                    let until = u64::try_from(crate::bans::unix_now()).unwrap_or(0) + ttl.as_secs();
                    let ev = SecurityEvent::ban(e.ip, until, e.count).with_reason(e.reason.clone());
                    batch.events.push((ev, now));
                    if let Some(nft) = &sinks.nft {
                        nft.add(e.ip, ttl);
                    }
                }
                sipwarden_b2bua::BanChange::Unbanned { ip, lifted } => {
                    tracing::info!(ip = %ip, lifted, "ban ended");
                    let count = core.ban_entry(*ip).map_or(0, |e| e.count);
                    let why = if *lifted {
                        "lifted by the operator"
                    } else {
                        "expired"
                    };
                    batch
                        .events
                        .push((SecurityEvent::unban(*ip, count).with_reason(why), now));
                }
                sipwarden_b2bua::BanChange::Forgotten(_) => {}
            }
        }
        batch.bans = sinks.bans.apply(&bans, |ip| core.ban_entry(ip));
    }
    // rtpengine writes the SDP of marked messages: its work first, then the messages.
    if let Some(e) = &sinks.engine {
        e.forward_ops();
    }
    while let Some(t) = core.poll_transmit() {
        let t = match &sinks.engine {
            Some(e) => match e.take(t) {
                Some(t) => t,
                None => continue,
            },
            None => t,
        };
        transports.send(t.dest, t.bytes);
    }
    batch.answers = durable.answers;
    batch.switches = core
        .take_switch_changes()
        .into_iter()
        .map(crate::switch_to_row)
        .collect();
    batch.policy_state = core
        .take_policy_state()
        .into_iter()
        .map(|(policy, key, value)| sipwarden_store::PolicyStateRow {
            policy: policy.to_owned(),
            key,
            value,
        })
        .collect();
    batch.replies.append(pending_reply);
    if batch.is_empty() {
        return;
    }
    // Refused (the backlog is full): the writer drops the answers (the phone asks again)
    // and tells the operator no; nothing more to do here.
    let _: Submitted = sinks.writer.submit(batch);
}

/// Reads the configuration and builds the routes off the core task (file reads, password
/// and accounts files), then hands the finished routes to it.
fn reload(control: &mpsc::Sender<Control>, path: Option<&PathBuf>) {
    let Some(path) = path.cloned() else {
        tracing::info!("reload: running on built-in defaults, nothing to re-read");
        return;
    };
    let control = control.clone();
    tokio::task::spawn_blocking(move || {
        let (routes, policies, rewrites) = match sipwarden_config::Config::load(&path) {
            Ok(cfg) => match (crate::routes(&cfg), crate::build_policies(&cfg)) {
                (Ok(r), Ok(p)) => (r, p, sipwarden_policy::rewrites_from_config(&cfg)),
                (Err(e), _) => {
                    tracing::error!(config = %path.display(), "reload refused: {e}");
                    return;
                }
                (_, Err(e)) => {
                    tracing::error!(config = %path.display(), "reload refused: {e}");
                    return;
                }
            },
            Err(errors) => {
                for e in errors {
                    tracing::error!("reload refused: {e}");
                }
                return;
            }
        };
        if control
            .blocking_send(Control::SetRoutes(
                Box::new(routes),
                Reloaded { policies, rewrites },
            ))
            .is_ok()
        {
            tracing::info!(config = %path.display(), "configuration reloaded for new calls");
        }
    });
}

pub(crate) async fn run(
    mut core: Core,
    (mut inbound, mut unreachable): (mpsc::Receiver<Inbound>, mpsc::Receiver<sipwarden_sip::Peer>),
    mut control: mpsc::Receiver<Control>,
    transports: Transports,
    stats: watch::Sender<Stats>,
    reload_with: (Option<PathBuf>, mpsc::Sender<Control>),
    mut sinks: Sinks,
) {
    let (config_path, to_self) = reload_with;
    let mut pending_reply = Vec::new();
    let mut batch = Vec::with_capacity(256);
    // Transaction-table refusals are logged at most once a second, with the count since.
    let mut refused_logged = 0u64;
    // Events the core's queues dropped, likewise.
    let mut dropped_logged = 0u64;
    let mut refused_at = Instant::now();
    let mut verdicts_at = Instant::now();
    let mut trunks_published = (u64::MAX, Instant::now());
    // The first round of the core's own timers (qualify) runs now, not at the first message.
    core.handle_timeout(Instant::now());
    // The counts for /metrics are copied at most every 250 ms: a quiet core would leave the
    // last change unpublished, so the loop also wakes twice a second while the copy is stale.
    let mut counts_stale = false;
    loop {
        let deadline = core.poll_timeout().map(tokio::time::Instant::from_std);
        let timer = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            n = inbound.recv_many(&mut batch, 256) => {
                if n == 0 {
                    break;
                }
                let now = Instant::now();
                core.set_wall_clock(now, SystemTime::now());
                for i in batch.drain(..) {
                    core.on_message(now, i.msg, i.peer);
                }
            }
            Some(peer) = unreachable.recv() => {
                let now = Instant::now();
                core.set_wall_clock(now, SystemTime::now());
                core.on_transport_error(now, peer);
            }
            () = timer => {
                let now = Instant::now();
                core.set_wall_clock(now, SystemTime::now());
                core.handle_timeout(now);
            }
            // The writer wrote a batch (it sent the answers that waited for it): room for
            // the backlog. Listened to only while there is one, so that a commit does not
            // wake the core.
            Ok(()) = sinks.written.changed(), if sinks.writer.behind() => {
                sinks.writer.retry();
            }
            () = tokio::time::sleep(std::time::Duration::from_millis(500)), if counts_stale => {}
            c = control.recv() => match c {
                Some(Control::Reload) => reload(&to_self, config_path.as_ref()),
                Some(Control::SetRoutes(routes, reloaded)) => {
                    let named = crate::resolver::named(&routes);
                    core.set_routes(*routes);
                    core.reload_policies(reloaded.policies);
                    core.reload_rewrites(
                        sipwarden_policy::CONFIGURED_REWRITES,
                        reloaded.rewrites,
                    );
                    sinks.named.send_if_modified(|n| {
                        let changed = *n != named;
                        *n = named;
                        changed
                    });
                }
                Some(Control::TrunkTargets { trunk, targets }) => {
                    core.set_trunk_targets(&trunk, targets);
                }
                Some(Control::Drain) => core.drain(),
                Some(Control::HangupAll) => core.hangup_all(Instant::now(), "gateway shutting down"),
                Some(Control::Hangup(id)) => {
                    core.hangup(Instant::now(), id, "hung up by the operator");
                }
                Some(Control::MediaTimeout(id)) => {
                    core.hangup(Instant::now(), id, "media timeout");
                }
                Some(Control::HoldTimeout(id)) => {
                    core.hangup(Instant::now(), id, "hold timeout");
                }
                Some(Control::MediaFailed(id)) => {
                    core.media_failed(Instant::now(), id);
                }
                Some(Control::Ban { ip, reason, reply }) => {
                    // Answered once the ban is on disk (with this round's batch).
                    let banned = core.ban(Instant::now(), ip, &reason).is_some();
                    pending_reply.push((reply, banned));
                }
                Some(Control::Unban { ip, reply }) => {
                    let _ = reply.send(core.unban(Instant::now(), ip));
                }
                Some(Control::Disable { subject, hangup, reply, stored }) => {
                    let now = Instant::now();
                    match core.disable(now, &subject, "operator") {
                        Ok(()) => {
                            let n = if hangup {
                                core.hangup_through(now, &subject, "disabled by the operator")
                            } else {
                                0
                            };
                            let _ = reply.send(Ok(n));
                            pending_reply.push((stored, true));
                        }
                        Err(e) => {
                            let _ = reply.send(Err(e.to_string()));
                        }
                    }
                }
                Some(Control::Enable { subject, stored }) => {
                    let was = core.enable(&subject);
                    pending_reply.push((stored, was));
                }
                Some(Control::Stop) | None => break,
            },
        }
        flush(&mut core, &transports, &mut sinks, &mut pending_reply);
        let now_stats = core.stats();
        let refused = now_stats.transactions_refused;
        let dropped = now_stats.security_events_dropped + now_stats.call_events_dropped;
        if (refused > refused_logged || dropped > dropped_logged)
            && refused_at.elapsed().as_secs() >= 1
        {
            if refused > refused_logged {
                tracing::warn!(
                    refused = refused - refused_logged,
                    "transaction table full: requests refused with 503 (raise transactions.max_transactions?)"
                );
            }
            if dropped > dropped_logged {
                tracing::warn!(
                    dropped = dropped - dropped_logged,
                    "event queue full: security or call events dropped (raise storage.event_queue?)"
                );
            }
            refused_logged = refused;
            dropped_logged = dropped;
            refused_at = Instant::now();
        }
        stats.send_if_modified(|s| {
            let now = core.stats();
            let changed = *s != now;
            *s = now;
            changed
        });
        if verdicts_at.elapsed().as_millis() >= 250 {
            publish_verdicts(&core, &sinks.verdicts);
            verdicts_at = Instant::now();
            counts_stale = false;
        } else {
            counts_stale = true;
        }
        // The trunks' state when it changed, and every second (marks run out with time).
        let v = core.trunks_version();
        if v != trunks_published.0 || trunks_published.1.elapsed().as_secs() >= 1 {
            let now = Instant::now();
            let status = core.trunk_status(now);
            sinks.trunks.send_if_modified(|t| {
                let changed = *t != status;
                *t = status;
                changed
            });
            trunks_published = (v, now);
        }
    }
    flush(&mut core, &transports, &mut sinks, &mut pending_reply);
    publish_verdicts(&core, &sinks.verdicts);
    // Everything queued is written (and what waited for it sent) before the task ends.
    sinks.writer.close();
}

fn publish_verdicts(core: &Core, table: &VerdictTable) {
    let rows = Counts {
        verdicts: core.verdict_counts(),
        decisions: core
            .decision_counts()
            .into_iter()
            .map(|(p, o, n)| (p, o.as_str(), n))
            .collect(),
        policy_gauges: core.policy_gauges(),
    };
    match table.lock() {
        Ok(mut t) => *t = rows,
        Err(poisoned) => *poisoned.into_inner() = rows,
    }
}
