//! The task that owns the call core: it takes parsed messages, timer deadlines and control
//! commands in, and hands what the core wants sent to the transports.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use sipwarden_b2bua::{Core, Routes, Stats};
use sipwarden_events::SecurityEvent;
use sipwarden_sip::Peer;
use sipwarden_txn::Transmit;

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
}

/// The message path's verdict counts (stage, verdict, reason, count), copied from the core
/// at most every 250 ms for `/metrics`.
pub(crate) type VerdictTable =
    Arc<std::sync::Mutex<Vec<(&'static str, &'static str, &'static str, u64)>>>;

/// What waits for a batch to be written: answers that acknowledge its bindings, and the
/// operator's ban requests (the API answers once the ban would survive a restart).
#[derive(Default)]
struct Waiting {
    answers: VecDeque<(u64, Vec<Transmit<Peer>>)>,
    replies: VecDeque<(u64, tokio::sync::oneshot::Sender<bool>, bool)>,
    /// An operator's ban decided during this round, answered with this round's batch.
    pending_reply: Option<(tokio::sync::oneshot::Sender<bool>, bool)>,
}

impl Waiting {
    /// Sends what waited for batches up to `written`.
    fn release(&mut self, written: u64, transports: &Transports) {
        for a in self.due(written) {
            transports.send(a.dest, a.bytes);
        }
    }

    /// Takes the answers that waited for batches up to `written` (answering the operator's
    /// ban requests among them), oldest first.
    fn due(&mut self, written: u64) -> Vec<Transmit<Peer>> {
        let mut out = Vec::new();
        while self.answers.front().is_some_and(|(t, _)| *t <= written) {
            if let Some((_, answers)) = self.answers.pop_front() {
                out.extend(answers);
            }
        }
        while self.replies.front().is_some_and(|(t, _, _)| *t <= written) {
            if let Some((_, reply, banned)) = self.replies.pop_front() {
                let _ = reply.send(banned);
            }
        }
        out
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
    /// New routes, read and built off the core task (a reload).
    SetRoutes(Box<Routes>),
    /// Stop the task.
    Stop,
}

/// Hands the core's output on: what it sends goes to the transports at once, except the
/// answers that acknowledge a binding, which wait for their batch to be written; the bans
/// take effect in the transports at once and reach the disk through the writer.
fn flush(core: &mut Core, transports: &Transports, sinks: &mut Sinks, waiting: &mut Waiting) {
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
    while let Some(t) = core.poll_transmit() {
        transports.send(t.dest, t.bytes);
    }
    if batch.is_empty() && durable.answers.is_empty() && waiting.pending_reply.is_none() {
        return;
    }
    match sinks.writer.submit(batch) {
        Submitted::Ticket(t) => {
            if !durable.answers.is_empty() {
                waiting.answers.push_back((t, durable.answers));
            }
            if let Some((reply, banned)) = waiting.pending_reply.take() {
                waiting.replies.push_back((t, reply, banned));
            }
        }
        // Not stored: the answers are not sent (the phone asks again), the operator hears no.
        Submitted::Refused => {
            if let Some((reply, _)) = waiting.pending_reply.take() {
                let _ = reply.send(false);
            }
        }
    }
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
        let routes = match sipwarden_config::Config::load(&path) {
            Ok(cfg) => match crate::routes(&cfg) {
                Ok(r) => r,
                Err(e) => {
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
            .blocking_send(Control::SetRoutes(Box::new(routes)))
            .is_ok()
        {
            tracing::info!(config = %path.display(), "configuration reloaded for new calls");
        }
    });
}

pub(crate) async fn run(
    mut core: Core,
    mut inbound: mpsc::Receiver<Inbound>,
    mut control: mpsc::Receiver<Control>,
    transports: Transports,
    stats: watch::Sender<Stats>,
    reload_with: (Option<PathBuf>, mpsc::Sender<Control>),
    mut sinks: Sinks,
) {
    let (config_path, to_self) = reload_with;
    let mut waiting = Waiting::default();
    let mut batch = Vec::with_capacity(256);
    // Transaction-table refusals are logged at most once a second, with the count since.
    let mut refused_logged = 0u64;
    // Events the core's queues dropped, likewise.
    let mut dropped_logged = 0u64;
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
                core.set_wall_clock(now, SystemTime::now());
                for i in batch.drain(..) {
                    core.on_message(now, i.msg, i.peer);
                }
            }
            () = timer => {
                let now = Instant::now();
                core.set_wall_clock(now, SystemTime::now());
                core.handle_timeout(now);
            }
            // The writer wrote a batch: what waited for it goes out.
            Ok(()) = sinks.written.changed() => {
                let written = *sinks.written.borrow_and_update();
                waiting.release(written, &transports);
                sinks.writer.retry();
            }
            c = control.recv() => match c {
                Some(Control::Reload) => reload(&to_self, config_path.as_ref()),
                Some(Control::SetRoutes(routes)) => core.set_routes(*routes),
                Some(Control::Drain) => core.drain(),
                Some(Control::HangupAll) => core.hangup_all(Instant::now(), "gateway shutting down"),
                Some(Control::Hangup(id)) => {
                    core.hangup(Instant::now(), id, "hung up by the operator");
                }
                Some(Control::Ban { ip, reason, reply }) => {
                    // Answered once the ban is on disk (with this round's batch).
                    let banned = core.ban(Instant::now(), ip, &reason).is_some();
                    waiting.pending_reply = Some((reply, banned));
                }
                Some(Control::Unban { ip, reply }) => {
                    let _ = reply.send(core.unban(Instant::now(), ip));
                }
                Some(Control::Stop) | None => break,
            },
        }
        flush(&mut core, &transports, &mut sinks, &mut waiting);
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
        }
    }
    flush(&mut core, &transports, &mut sinks, &mut waiting);
    publish_verdicts(&core, &sinks.verdicts);
    // Everything queued is written before the task ends; then what waited for it goes out.
    sinks.writer.close();
    waiting.release(u64::MAX, &transports);
}

fn publish_verdicts(core: &Core, table: &VerdictTable) {
    let rows = core.verdict_counts();
    match table.lock() {
        Ok(mut t) => *t = rows,
        Err(poisoned) => *poisoned.into_inner() = rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(port: u16) -> Transmit<Peer> {
        Transmit {
            dest: Peer {
                transport: sipwarden_sip::header::Transport::Udp,
                addr: std::net::SocketAddr::from(([127, 0, 0, 2], port)),
                flow: None,
            },
            bytes: bytes::Bytes::from_static(b"SIP/2.0 200 OK\r\n\r\n"),
        }
    }

    #[test]
    fn answers_and_ban_replies_wait_for_their_batch_to_be_written() {
        let mut w = Waiting::default();
        w.answers.push_back((3, vec![answer(1)]));
        w.answers.push_back((5, vec![answer(2), answer(3)]));
        let (reply, mut replied) = tokio::sync::oneshot::channel();
        w.replies.push_back((4, reply, true));
        assert!(w.due(2).is_empty(), "nothing before its batch is written");
        assert!(replied.try_recv().is_err());
        let first: Vec<u16> = w.due(4).iter().map(|t| t.dest.addr.port()).collect();
        assert_eq!(first, [1]);
        assert_eq!(
            replied.try_recv(),
            Ok(true),
            "the ban is answered once stored"
        );
        let rest: Vec<u16> = w.due(9).iter().map(|t| t.dest.addr.port()).collect();
        assert_eq!(rest, [2, 3]);
        assert!(w.due(u64::MAX).is_empty());
    }
}
