//! The task that owns the call core: it takes parsed messages, timer deadlines and control
//! commands in, and hands what the core wants sent to the transports.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use sipwarden_b2bua::{Core, Stats};
use sipwarden_store::Store;

use crate::bans::{BanView, Nft};

/// What the core task writes to besides the sockets.
pub(crate) struct Sinks {
    pub(crate) store: Box<dyn Store>,
    pub(crate) bans: Arc<BanView>,
    pub(crate) nft: Option<Arc<Nft>>,
    pub(crate) log: sipwarden_events::SecurityLog,
    pub(crate) verdicts: VerdictTable,
}

/// The message path's verdict counts (stage, verdict, reason, count), copied from the core
/// at most every 250 ms for `/metrics`.
pub(crate) type VerdictTable =
    Arc<std::sync::Mutex<Vec<(&'static str, &'static str, &'static str, u64)>>>;

fn write_event(log: &mut sipwarden_events::SecurityLog, e: &sipwarden_events::SecurityEvent) {
    if let Err(err) = log.write(e, std::time::SystemTime::now()) {
        tracing::error!("security log not written: {err}");
    }
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
    /// Stop the task.
    Stop,
}

/// Sends what the core wants sent; first makes its location and ban changes durable (and
/// the bans effective in the transports), so no registration or ban is acknowledged before
/// it would survive a restart.
fn flush(core: &mut Core, transports: &Transports, sinks: &mut Sinks) {
    let changes = core.take_location_changes();
    if !changes.is_empty() {
        if let Err(e) = crate::location::save(sinks.store.as_mut(), &changes) {
            tracing::error!("location table not saved: {e}");
        }
    }
    // The events first: a ban follows the failures that caused it, in both logs.
    for e in core.take_security_events() {
        // The security log is the record; the process log mentions failures at debug
        // level only, so a password-guessing run cannot flood it.
        if e.kind.is_failure() {
            tracing::debug!(
                event = e.kind.name(),
                source = %e.remote.addr,
                account = %e.account.as_deref().unwrap_or("").escape_debug(),
                reason = %e.reason,
                "security"
            );
        }
        write_event(&mut sinks.log, &e);
    }
    // Call events: their consumers (call records, alerts, limits) come next; until then the
    // process log has them at debug level.
    for e in core.take_call_events() {
        log_call_event(&e);
    }
    let bans = core.take_ban_changes();
    if !bans.is_empty() {
        for c in &bans {
            match c {
                sipwarden_b2bua::BanChange::Banned(e) => {
                    let ttl = e.until.saturating_duration_since(e.since);
                    tracing::warn!(ip = %e.ip, reason = %e.reason, secs = ttl.as_secs(), count = e.count, "banned");
                    let until = u64::try_from(crate::bans::unix_now()).unwrap_or(0) + ttl.as_secs();
                    let ev = sipwarden_events::SecurityEvent::ban(e.ip, until, e.count)
                        .with_reason(e.reason.clone());
                    write_event(&mut sinks.log, &ev);
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
                    let ev = sipwarden_events::SecurityEvent::unban(*ip, count).with_reason(why);
                    write_event(&mut sinks.log, &ev);
                }
                sipwarden_b2bua::BanChange::Forgotten(_) => {}
            }
        }
        let rows = sinks.bans.apply(&bans, |ip| core.ban_entry(ip));
        if let Err(e) = sinks.store.apply_bans(&rows) {
            tracing::error!("ban table not saved: {e}");
        }
    }
    if let Err(err) = sinks.log.flush() {
        tracing::error!("security log not written: {err}");
    }
    while let Some(t) = core.poll_transmit() {
        transports.send(t.dest, t.bytes);
    }
}

fn reload(core: &mut Core, path: Option<&PathBuf>) {
    let Some(path) = path else {
        tracing::info!("reload: running on built-in defaults, nothing to re-read");
        return;
    };
    match sipwarden_config::Config::load(path) {
        Ok(cfg) => match crate::routes(&cfg) {
            Ok(r) => {
                core.set_routes(r);
                tracing::info!(config = %path.display(), "configuration reloaded for new calls");
            }
            Err(e) => tracing::error!(config = %path.display(), "reload refused: {e}"),
        },
        Err(errors) => {
            for e in errors {
                tracing::error!("reload refused: {e}");
            }
        }
    }
}

pub(crate) async fn run(
    mut core: Core,
    mut inbound: mpsc::Receiver<Inbound>,
    mut control: mpsc::Receiver<Control>,
    transports: Transports,
    stats: watch::Sender<Stats>,
    config_path: Option<PathBuf>,
    mut sinks: Sinks,
) {
    let mut batch = Vec::with_capacity(256);
    // Transaction-table refusals are logged at most once a second, with the count since.
    let mut refused_logged = 0u64;
    let mut refused_at = Instant::now();
    let mut verdicts_at = Instant::now();
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
                core.set_wall_clock(now, std::time::SystemTime::now());
                for i in batch.drain(..) {
                    core.on_message(now, i.msg, i.peer);
                }
            }
            () = timer => {
                let now = Instant::now();
                core.set_wall_clock(now, std::time::SystemTime::now());
                core.handle_timeout(now);
            }
            c = control.recv() => match c {
                Some(Control::Reload) => reload(&mut core, config_path.as_ref()),
                Some(Control::Drain) => core.drain(),
                Some(Control::HangupAll) => core.hangup_all(Instant::now(), "gateway shutting down"),
                Some(Control::Hangup(id)) => {
                    core.hangup(Instant::now(), id, "hung up by the operator");
                }
                Some(Control::Ban { ip, reason, reply }) => {
                    let _ = reply.send(core.ban(Instant::now(), ip, &reason).is_some());
                }
                Some(Control::Unban { ip, reply }) => {
                    let _ = reply.send(core.unban(Instant::now(), ip));
                }
                Some(Control::Stop) | None => break,
            },
        }
        flush(&mut core, &transports, &mut sinks);
        let refused = core.stats().transactions_refused;
        if refused > refused_logged && refused_at.elapsed().as_secs() >= 1 {
            tracing::warn!(
                refused = refused - refused_logged,
                "transaction table full: requests refused with 503 (raise transactions.max_transactions?)"
            );
            refused_logged = refused;
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
        }
    }
    flush(&mut core, &transports, &mut sinks);
    publish_verdicts(&core, &sinks.verdicts);
}

fn publish_verdicts(core: &Core, table: &VerdictTable) {
    let rows = core.verdict_counts();
    match table.lock() {
        Ok(mut t) => *t = rows,
        Err(poisoned) => *poisoned.into_inner() = rows,
    }
}

fn log_call_event(e: &sipwarden_b2bua::events::CallEvent) {
    use sipwarden_b2bua::events::CallEventKind as K;
    match &e.kind {
        K::Started(i) => tracing::debug!(
            call = e.call,
            origin = i.origin.as_str(),
            trunk = i.trunk.as_deref().unwrap_or(""),
            account = i.account.as_deref().unwrap_or(""),
            source = %i.source,
            caller = %i.caller.escape_debug(),
            callee = %i.callee.escape_debug(),
            "call started"
        ),
        K::Answered => tracing::debug!(call = e.call, "call answered"),
        K::Ended { status, by, reason } => tracing::debug!(
            call = e.call,
            status = status.unwrap_or(0),
            by = by.as_str(),
            reason = %reason,
            "call ended"
        ),
        K::Refused {
            info,
            stage,
            status,
            reason,
        } => tracing::debug!(
            call = e.call,
            stage,
            status,
            reason = reason.code(),
            source = %info.source,
            callee = %info.callee.escape_debug(),
            "call refused"
        ),
    }
}
