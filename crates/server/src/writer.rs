//! The writer: everything the call core's output needs from the disk — bindings and bans
//! in the store, the security log and the JSON event log, and the call events (the call
//! records consume them next) — on a thread of its own, fed by a bounded queue, so the core
//! task never waits on a disk (DESIGN §4).
//!
//! Each flush of the core task becomes one [`Batch`] with a ticket; the writer takes what
//! has queued up, stores the rows of all of it in one go (a group commit), sends the answers
//! that waited for those rows (a REGISTER's 200, the reply to an operator's ban), reports the
//! last ticket done, then writes the log lines — so a ban in the log is a ban on disk, and an
//! answer waits for its rows only. No acknowledged registration or ban is lost on a crash,
//! and nothing else waits. The writer sends those answers itself, right after the commit:
//! handing them back to the core task cost a wake-up of the core per commit.
//!
//! When the queue is full the core task keeps a backlog, merged batch after batch and sent
//! as soon as there is room. The backlog is bounded too: past `writer_backlog_events`
//! events are dropped, past `writer_backlog_rows` rows a batch's rows are refused and the
//! answers waiting for them are never sent (the phone retries; nothing acknowledged is
//! lost). Every such case is counted and logged at most once a second.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime};

use sipwarden_b2bua::events::CallEvent;
use sipwarden_events::{SecurityEvent, SecurityLog};
use sipwarden_sip::Peer;
use sipwarden_store::{
    BanRowChange, LocationChange as LocationRow, Store, SwitchRowChange, WalCheckpointer,
};

use crate::cdr::CdrBuilder;
use sipwarden_txn::Transmit;
use tokio::sync::{oneshot, watch};

/// Sends the answers of a written batch (the transports, in the gateway).
pub(crate) type Deliver = Box<dyn FnMut(Vec<Transmit<Peer>>) + Send>;

/// One flush of the core task, for the disk.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// Binding rows to store, in order.
    pub(crate) locations: Vec<LocationRow>,
    /// Ban rows to store, in order.
    pub(crate) bans: Vec<BanRowChange>,
    /// Kill-switch rows to store, in order.
    pub(crate) switches: Vec<SwitchRowChange>,
    /// Call policies' state rows to store (spend so far), in order.
    pub(crate) policy_state: Vec<sipwarden_store::PolicyStateRow>,
    /// Security events (and bans) for the logs, with their wall-clock time.
    pub(crate) events: Vec<(SecurityEvent, SystemTime)>,
    /// Call events.
    pub(crate) calls: Vec<CallEvent>,
    /// Answers sent once the rows are stored (a REGISTER's 200 acknowledges its binding).
    pub(crate) answers: Vec<Transmit<Peer>>,
    /// Operators' ban requests, answered (whether a ban started) once the rows are stored.
    pub(crate) replies: Vec<(oneshot::Sender<bool>, bool)>,
}

impl Batch {
    pub(crate) fn is_empty(&self) -> bool {
        self.locations.is_empty()
            && self.bans.is_empty()
            && self.switches.is_empty()
            && self.policy_state.is_empty()
            && self.events.is_empty()
            && self.calls.is_empty()
            && self.answers.is_empty()
            && self.replies.is_empty()
    }

    fn rows(&self) -> usize {
        self.locations.len() + self.bans.len() + self.switches.len() + self.policy_state.len()
    }

    fn events(&self) -> usize {
        self.events.len() + self.calls.len()
    }

    /// Appends `other` after this batch's contents (order is kept).
    fn append(&mut self, mut other: Self) {
        self.locations.append(&mut other.locations);
        self.bans.append(&mut other.bans);
        self.switches.append(&mut other.switches);
        self.policy_state.append(&mut other.policy_state);
        self.events.append(&mut other.events);
        self.calls.append(&mut other.calls);
        self.answers.append(&mut other.answers);
        self.replies.append(&mut other.replies);
    }

    /// Drops the rows and what waits for them: not stored, so not acknowledged (the phone
    /// asks again; the operator hears no).
    fn refuse_rows(&mut self) {
        self.locations.clear();
        self.bans.clear();
        self.switches.clear();
        self.policy_state.clear();
        self.answers.clear();
        for (reply, _) in self.replies.drain(..) {
            let _ = reply.send(false);
        }
    }
}

/// A batch on its way, with the ticket the writer reports once it is written.
#[derive(Debug)]
struct Ticketed {
    ticket: u64,
    batch: Batch,
    /// How many batches of the core task it holds (the backlog merges them).
    batches: u64,
}

/// The writer's counters, for `/metrics` and the tests.
#[derive(Debug, Default)]
pub(crate) struct WriterStats {
    /// Batches written.
    pub(crate) batches: AtomicU64,
    /// Group commits (one or more batches stored together).
    pub(crate) commits: AtomicU64,
    /// WAL checkpoints run by the checkpoint thread.
    pub(crate) checkpoints: AtomicU64,
    /// Times a batch found the queue full and joined the backlog.
    pub(crate) queue_full: AtomicU64,
    /// Events (security and call) dropped because the backlog was at its bound.
    pub(crate) events_dropped: AtomicU64,
    /// Security and call events written (or handed to their consumer).
    pub(crate) events_written: AtomicU64,
    /// Batches whose rows were refused because the backlog was at its bound (the answers
    /// waiting for them were not sent).
    pub(crate) rows_refused: AtomicU64,
    /// Store writes that failed.
    pub(crate) store_errors: AtomicU64,
    /// Log writes that failed.
    pub(crate) log_errors: AtomicU64,
    /// Batches queued (or in the backlog's place in the queue) and not yet written (a gauge).
    pub(crate) queued: AtomicU64,
    /// Call records stored (each start, answer and end stores the call's row).
    pub(crate) cdr_rows: AtomicU64,
    /// Running calls' records held (a gauge; bounded by the call limit).
    pub(crate) cdrs_open: AtomicU64,
    /// Records started while that table was full (stored as running, never finished).
    pub(crate) cdrs_overflow: AtomicU64,
    /// Finished records deleted by the retention.
    pub(crate) cdrs_purged: AtomicU64,
}

/// The call records' side of the writer: the builder and the retention.
#[derive(Debug)]
pub(crate) struct Records {
    pub(crate) builder: CdrBuilder,
    /// `storage.cdr_retention_days`.
    pub(crate) retention_days: u32,
}

/// The writer's bounds (`[storage]`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bounds {
    /// Batches the queue holds.
    pub(crate) queue: usize,
    /// Events the backlog holds while the queue is full.
    pub(crate) backlog_events: usize,
    /// Rows the backlog holds while the queue is full.
    pub(crate) backlog_rows: usize,
}

/// What became of a batch handed to the writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Submitted {
    /// Queued (or in the backlog): it is written once this ticket is reported.
    Ticket(u64),
    /// Its rows were refused (backlog full): what waits for it must not be sent.
    Refused,
}

/// The core task's end of the writer.
pub(crate) struct Writer {
    tx: Option<SyncSender<Ticketed>>,
    backlog: Option<Ticketed>,
    bounds: Bounds,
    next_ticket: u64,
    stats: Arc<WriterStats>,
    thread: Option<JoinHandle<()>>,
    /// The WAL checkpointer's thread and the sender whose drop stops it.
    checkpoints: Option<(std::sync::mpsc::Sender<()>, JoinHandle<()>)>,
    warned_at: Option<Instant>,
}

impl Writer {
    /// Starts the writer thread. `deliver` sends the answers of each written batch; `done`
    /// is told the last ticket written. A `checkpointer` gets a thread of its own that copies
    /// the store's WAL back every half second, so that no commit (and no 200 waiting for
    /// one) waits for a checkpoint's disk flushes.
    pub(crate) fn start(
        store: Box<dyn Store>,
        log: SecurityLog,
        bounds: Bounds,
        (deliver, done): (Deliver, watch::Sender<u64>),
        (stats, checkpointer): (Arc<WriterStats>, Option<WalCheckpointer>),
        records: Records,
    ) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(bounds.queue.max(1));
        let thread_stats = Arc::clone(&stats);
        let thread = std::thread::Builder::new()
            .name("sipwarden-writer".into())
            .spawn(move || run(&rx, (store, records), log, (deliver, &done), &thread_stats))?;
        let checkpoints = match checkpointer {
            Some(c) => {
                let (stop, stopped) = std::sync::mpsc::channel::<()>();
                let ckpt_stats = Arc::clone(&stats);
                let t = std::thread::Builder::new()
                    .name("sipwarden-wal".into())
                    .spawn(move || checkpoints(&c, &stopped, &ckpt_stats))?;
                Some((stop, t))
            }
            None => None,
        };
        Ok(Self {
            tx: Some(tx),
            backlog: None,
            bounds,
            next_ticket: 0,
            stats,
            thread: Some(thread),
            checkpoints,
            warned_at: None,
        })
    }

    /// Hands a batch over without waiting.
    pub(crate) fn submit(&mut self, mut batch: Batch) -> Submitted {
        self.next_ticket += 1;
        let ticket = self.next_ticket;
        if let Some(b) = &mut self.backlog {
            // Behind already: the batch joins the backlog, within its bounds.
            let events_room = self.bounds.backlog_events.saturating_sub(b.batch.events());
            let dropped = batch.events().saturating_sub(events_room);
            if dropped > 0 {
                trim_events(&mut batch, events_room);
                self.stats
                    .events_dropped
                    .fetch_add(count(dropped), Ordering::Relaxed);
            }
            let refused = b.batch.rows() + batch.rows() > self.bounds.backlog_rows;
            if refused {
                batch.refuse_rows();
                self.stats.rows_refused.fetch_add(1, Ordering::Relaxed);
            }
            b.batch.append(batch);
            b.ticket = ticket;
            b.batches += 1;
            self.warn_behind();
            self.retry();
            return if refused {
                Submitted::Refused
            } else {
                Submitted::Ticket(ticket)
            };
        }
        self.send(Ticketed {
            ticket,
            batch,
            batches: 1,
        });
        Submitted::Ticket(ticket)
    }

    /// Whether batches wait in the backlog (the core task then listens for the writer's
    /// progress, to send them on).
    pub(crate) fn behind(&self) -> bool {
        self.backlog.is_some()
    }

    /// Sends the backlog if the queue has room again; the core task calls it whenever the
    /// writer reports progress.
    pub(crate) fn retry(&mut self) {
        if let Some(b) = self.backlog.take() {
            self.send(b);
        }
    }

    fn send(&mut self, t: Ticketed) {
        let Some(tx) = &self.tx else {
            return;
        };
        let n = t.batches;
        self.stats.queued.fetch_add(n, Ordering::Relaxed);
        match tx.try_send(t) {
            Ok(()) => {}
            Err(TrySendError::Full(t)) => {
                self.stats.queued.fetch_sub(n, Ordering::Relaxed);
                self.stats.queue_full.fetch_add(1, Ordering::Relaxed);
                self.backlog = Some(t);
                self.warn_behind();
            }
            Err(TrySendError::Disconnected(_)) => {
                self.stats.queued.fetch_sub(n, Ordering::Relaxed);
                self.stats.log_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!("the writer has stopped: nothing more is stored or logged");
                self.tx = None;
            }
        }
    }

    /// Never silent, never a log line per batch: at most one warning a second.
    fn warn_behind(&mut self) {
        if self
            .warned_at
            .is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(1))
        {
            return;
        }
        self.warned_at = Some(Instant::now());
        tracing::warn!(
            queue_full = self.stats.queue_full.load(Ordering::Relaxed),
            events_dropped = self.stats.events_dropped.load(Ordering::Relaxed),
            rows_refused = self.stats.rows_refused.load(Ordering::Relaxed),
            "the writer is behind the call core (slow disk?): batches wait in the backlog"
        );
    }

    /// Writes what is queued and the backlog, then stops the thread (at shutdown).
    pub(crate) fn close(&mut self) {
        if let (Some(b), Some(tx)) = (self.backlog.take(), &self.tx) {
            let n = b.batches;
            self.stats.queued.fetch_add(n, Ordering::Relaxed);
            // The one place that may wait: the process is stopping and must lose nothing.
            if tx.send(b).is_err() {
                self.stats.queued.fetch_sub(n, Ordering::Relaxed);
            }
        }
        self.tx = None;
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the writer thread panicked");
            }
        }
        // After the last commit: one more checkpoint, then the thread ends.
        if let Some((stop, t)) = self.checkpoints.take() {
            drop(stop);
            if t.join().is_err() {
                tracing::error!("the WAL checkpoint thread panicked");
            }
        }
    }
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Keeps at most `room` events of a batch: security events first (fail2ban reads them),
/// then call events.
fn trim_events(batch: &mut Batch, room: usize) {
    batch.events.truncate(room);
    batch
        .calls
        .truncate(room.saturating_sub(batch.events.len()));
}

/// The writer thread: group commits until the queue closes.
fn run(
    rx: &Receiver<Ticketed>,
    (mut store, mut records): (Box<dyn Store>, Records),
    mut log: SecurityLog,
    (mut deliver, done): (Deliver, &watch::Sender<u64>),
    stats: &WriterStats,
) {
    let mut purged_at: Option<Instant> = None;
    while let Ok(first) = rx.recv() {
        // Retention: at start, then hourly, between commits.
        if purged_at.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(3600)) {
            purged_at = Some(Instant::now());
            let cut = crate::cdr::retention_cut(SystemTime::now(), records.retention_days);
            match store.purge_cdrs(cut) {
                Ok(n) => {
                    stats.cdrs_purged.fetch_add(n, Ordering::Relaxed);
                }
                Err(e) => {
                    stats.store_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!("old call records not deleted: {e}");
                }
            }
        }
        let mut group = first;
        let mut n = group.batches;
        // What queued up meanwhile is stored with it: one commit for many batches.
        while group.batch.rows() < 50_000 {
            match rx.try_recv() {
                Ok(next) => {
                    group.batch.append(next.batch);
                    group.ticket = next.ticket;
                    n += next.batches;
                }
                Err(_) => break,
            }
        }
        store_rows(&group.batch, store.as_mut(), stats);
        store_records(&group.batch, store.as_mut(), &mut records.builder, stats);
        stats.commits.fetch_add(1, Ordering::Relaxed);
        // What waited for these rows (a REGISTER's 200, an operator's ban) goes now; the
        // log lines follow, so a 200 never waits for them.
        if !group.batch.answers.is_empty() {
            deliver(std::mem::take(&mut group.batch.answers));
        }
        for (reply, banned) in group.batch.replies.drain(..) {
            let _ = reply.send(banned);
        }
        done.send_replace(group.ticket);
        write_logs(&mut group.batch, &mut log, stats);
        stats.queued.fetch_sub(n, Ordering::Relaxed);
        stats.batches.fetch_add(n, Ordering::Relaxed);
    }
    if let Err(e) = log.flush() {
        tracing::error!("security log not written: {e}");
    }
}

/// Checkpoints every half second until `stopped`'s sender goes, and once more then.
fn checkpoints(c: &WalCheckpointer, stopped: &Receiver<()>, stats: &WriterStats) {
    loop {
        let last = !matches!(
            stopped.recv_timeout(std::time::Duration::from_millis(500)),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout)
        );
        match c.checkpoint() {
            Ok(()) => {
                stats.checkpoints.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                stats.store_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!("WAL checkpoint failed: {e}");
            }
        }
        if last {
            return;
        }
    }
}

/// The call records the batch's call events make, in the same round as its other rows.
fn store_records(
    batch: &Batch,
    store: &mut dyn Store,
    builder: &mut CdrBuilder,
    stats: &WriterStats,
) {
    if batch.calls.is_empty() {
        return;
    }
    let mut rows: Vec<sipwarden_store::CdrRow> = Vec::new();
    for e in &batch.calls {
        if let Some(r) = builder.feed(e) {
            // A row changed twice in a batch is stored once, in its last form.
            match rows.iter_mut().find(|x| x.id == r.id) {
                Some(x) => *x = r,
                None => rows.push(r),
            }
        }
    }
    stats
        .cdrs_open
        .store(count(builder.open_len()), Ordering::Relaxed);
    stats
        .cdrs_overflow
        .store(builder.overflow, Ordering::Relaxed);
    if rows.is_empty() {
        return;
    }
    match store.apply_cdrs(&rows) {
        Ok(()) => {
            stats
                .cdr_rows
                .fetch_add(count(rows.len()), Ordering::Relaxed);
        }
        Err(e) => {
            stats.store_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!("call records not saved: {e}");
        }
    }
}

/// The rows first: a ban the log reports is one a restart keeps.
fn store_rows(batch: &Batch, store: &mut dyn Store, stats: &WriterStats) {
    if !batch.locations.is_empty() {
        if let Err(e) = store.apply(&batch.locations) {
            stats.store_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!("location table not saved: {e}");
        }
    }
    if !batch.bans.is_empty() {
        if let Err(e) = store.apply_bans(&batch.bans) {
            stats.store_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!("ban table not saved: {e}");
        }
    }
    if !batch.switches.is_empty() {
        if let Err(e) = store.apply_switches(&batch.switches) {
            stats.store_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!("kill switch not saved: {e}");
        }
    }
    if !batch.policy_state.is_empty() {
        if let Err(e) = store.apply_policy_state(&batch.policy_state) {
            stats.store_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!("call policies' state (spend) not saved: {e}");
        }
    }
}

fn write_logs(batch: &mut Batch, log: &mut SecurityLog, stats: &WriterStats) {
    for (e, at) in batch.events.drain(..) {
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
        if let Err(err) = log.write(&e, at) {
            stats.log_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!("security log not written: {err}");
        }
        stats.events_written.fetch_add(1, Ordering::Relaxed);
    }
    if let Err(err) = log.flush() {
        stats.log_errors.fetch_add(1, Ordering::Relaxed);
        tracing::error!("security log not written: {err}");
    }
    // Call events: their records are stored; the process log has them at debug level.
    for e in batch.calls.drain(..) {
        log_call_event(&e);
        stats.events_written.fetch_add(1, Ordering::Relaxed);
    }
}

fn log_call_event(e: &CallEvent) {
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
        K::Attempt {
            trunk,
            to,
            transport,
        } => {
            tracing::debug!(call = e.call, trunk = %trunk, to = %to, transport = transport.as_str().unwrap_or("?"), "call attempt")
        }
        K::AttemptFailed {
            trunk,
            to,
            status,
            next,
        } => {
            tracing::debug!(call = e.call, trunk = %trunk, to = %to, status = status.unwrap_or(0), next, "call attempt failed")
        }
        K::Media {
            stream,
            from_a,
            from_b,
            dropped,
        } => tracing::debug!(
            call = e.call,
            stream,
            packets_from_a = from_a.0,
            bytes_from_a = from_a.1,
            packets_from_b = from_b.0,
            bytes_from_b = from_b.1,
            dropped,
            "call media"
        ),
        K::MediaUnanchored { reason } => {
            tracing::debug!(call = e.call, reason, "call media not anchored")
        }
        K::Decision {
            rule,
            outcome,
            detail,
        } => tracing::debug!(
            call = e.call,
            rule = %rule,
            outcome = outcome.as_str(),
            detail = %detail.escape_debug(),
            "call policy decision"
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

#[cfg(test)]
mod tests;
