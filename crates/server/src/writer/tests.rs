//! The writer with a store that can be held shut, as a slow disk would be.

use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use sipwarden_store::{BanRow, BanStore, BindingRow, LocationStore, MemoryStore, StoreError};

use super::*;

/// A memory store whose writes wait for a permit, and that says when a write starts.
struct Gated {
    inner: Arc<Mutex<MemoryStore>>,
    permits: Receiver<()>,
    started: Sender<()>,
}

impl Gated {
    fn wait(&self) {
        let _ = self.started.send(());
        let _ = self.permits.recv_timeout(Duration::from_secs(10));
    }
}

impl LocationStore for Gated {
    fn load_bindings(&mut self) -> Result<Vec<BindingRow>, StoreError> {
        self.inner.lock().unwrap().load_bindings()
    }
    fn apply(&mut self, changes: &[LocationRow]) -> Result<(), StoreError> {
        self.wait();
        self.inner.lock().unwrap().apply(changes)
    }
}

impl BanStore for Gated {
    fn load_bans(&mut self) -> Result<Vec<BanRow>, StoreError> {
        self.inner.lock().unwrap().load_bans()
    }
    fn apply_bans(&mut self, changes: &[BanRowChange]) -> Result<(), StoreError> {
        self.wait();
        self.inner.lock().unwrap().apply_bans(changes)
    }
}

impl sipwarden_store::CdrStore for Gated {
    fn apply_cdrs(&mut self, rows: &[sipwarden_store::CdrRow]) -> Result<(), StoreError> {
        self.inner.lock().unwrap().apply_cdrs(rows)
    }
    fn query_cdrs(
        &mut self,
        f: &sipwarden_store::CdrFilter,
    ) -> Result<Vec<sipwarden_store::CdrRow>, StoreError> {
        self.inner.lock().unwrap().query_cdrs(f)
    }
    fn purge_cdrs(&mut self, before_ms: i64) -> Result<u64, StoreError> {
        self.inner.lock().unwrap().purge_cdrs(before_ms)
    }
    fn close_running_cdrs(&mut self, reason: &str) -> Result<u64, StoreError> {
        self.inner.lock().unwrap().close_running_cdrs(reason)
    }
}

impl sipwarden_store::SwitchStore for Gated {
    fn load_switches(&mut self) -> Result<Vec<sipwarden_store::SwitchRow>, StoreError> {
        self.inner.lock().unwrap().load_switches()
    }
    fn apply_switches(&mut self, changes: &[SwitchRowChange]) -> Result<(), StoreError> {
        self.inner.lock().unwrap().apply_switches(changes)
    }
}

impl sipwarden_store::PolicyStateStore for Gated {
    fn load_policy_state(&mut self) -> Result<Vec<sipwarden_store::PolicyStateRow>, StoreError> {
        self.inner.lock().unwrap().load_policy_state()
    }
    fn apply_policy_state(
        &mut self,
        rows: &[sipwarden_store::PolicyStateRow],
    ) -> Result<(), StoreError> {
        self.inner.lock().unwrap().apply_policy_state(rows)
    }
}

fn records() -> Records {
    Records {
        builder: CdrBuilder::new(SystemTime::now(), "US", 100, None),
        retention_days: 90,
    }
}

struct Rig {
    writer: Writer,
    /// Ports of the answers the writer sent, in order.
    sent: Arc<Mutex<Vec<u16>>>,
    written: watch::Receiver<u64>,
    stats: Arc<WriterStats>,
    store: Arc<Mutex<MemoryStore>>,
    permits: Sender<()>,
    started: Receiver<()>,
    dir: std::path::PathBuf,
}

fn rig(name: &str, bounds: Bounds) -> Rig {
    let dir = std::env::temp_dir().join(format!("sipwarden-writer-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let log = SecurityLog::open(
        Some(&dir.join("security.log")),
        Some(&dir.join("events.jsonl")),
    )
    .unwrap();
    let store = Arc::new(Mutex::new(MemoryStore::default()));
    let (permits, permits_rx) = channel();
    let (started_tx, started) = channel();
    let gated = Gated {
        inner: Arc::clone(&store),
        permits: permits_rx,
        started: started_tx,
    };
    let (done, written) = watch::channel(0);
    let stats = Arc::new(WriterStats::default());
    let sent = Arc::new(Mutex::new(Vec::new()));
    let out = Arc::clone(&sent);
    let deliver: Deliver = Box::new(move |answers: Vec<Transmit<Peer>>| {
        out.lock()
            .unwrap()
            .extend(answers.iter().map(|a| a.dest.addr.port()));
    });
    let writer = Writer::start(
        Box::new(gated),
        log,
        bounds,
        (deliver, done),
        (Arc::clone(&stats), None),
        records(),
    )
    .unwrap();
    Rig {
        writer,
        sent,
        written,
        stats,
        store,
        permits,
        started,
        dir,
    }
}

fn row(contact: &str) -> LocationRow {
    LocationRow::Upsert(BindingRow {
        aor: "1001".into(),
        contact: contact.into(),
        transport: "udp".into(),
        source: "127.0.0.2:5062".into(),
        expires_unix: 4_000_000_000,
        path: Vec::new(),
        instance: None,
        reg_id: None,
        call_id: "c".into(),
        cseq: 1,
        q: None,
    })
}

fn ban_event(last: u8) -> (SecurityEvent, SystemTime) {
    let ip: IpAddr = format!("127.0.0.{last}").parse().unwrap();
    (SecurityEvent::ban(ip, 4_000_000_000, 3), SystemTime::now())
}

fn batch(contacts: &[&str], events: u8) -> Batch {
    Batch {
        locations: contacts.iter().map(|c| row(c)).collect(),
        events: (1..=events).map(ban_event).collect(),
        ..Batch::default()
    }
}

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

impl Rig {
    /// Lets every write through and waits (bounded) until `ticket` is written.
    fn drain_until(&mut self, ticket: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while *self.written.borrow() < ticket {
            assert!(Instant::now() < deadline, "ticket {ticket} never written");
            let _ = self.permits.send(());
            self.writer.retry();
            std::thread::yield_now();
        }
    }

    fn sent(&self) -> Vec<u16> {
        self.sent.lock().unwrap().clone()
    }

    fn stored(&self) -> usize {
        self.store.lock().unwrap().load_bindings().unwrap().len()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("events.jsonl")).unwrap_or_default()
    }
}

const ROOMY: Bounds = Bounds {
    queue: 16,
    backlog_events: 100,
    backlog_rows: 100,
};

#[test]
fn a_ticket_is_reported_once_its_rows_are_stored_and_the_log_follows_the_rows() {
    let mut r = rig("order", ROOMY);
    let Submitted::Ticket(t) = r.writer.submit(batch(&["sip:a@10.0.0.1"], 1)) else {
        panic!("refused")
    };
    // The store holds the write: nothing is reported, and the ban is not in the log yet.
    r.started.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(*r.written.borrow(), 0);
    assert!(!r.log().contains("127.0.0.1"), "logged before stored");
    r.drain_until(t);
    assert_eq!(r.stored(), 1);
    r.writer.close();
    assert!(r.log().contains("127.0.0.1"));
    assert_eq!(r.stats.events_written.load(Ordering::Relaxed), 1);
    assert_eq!(r.stats.queued.load(Ordering::Relaxed), 0);
}

#[test]
fn a_full_queue_keeps_a_bounded_backlog_and_counts_what_it_drops() {
    let mut r = rig(
        "full",
        Bounds {
            queue: 1,
            backlog_events: 5,
            backlog_rows: 3,
        },
    );
    // The first batch is taken and held by the store; the second fills the queue.
    let first = r.writer.submit(batch(&["sip:1@h"], 2));
    r.started.recv_timeout(Duration::from_secs(10)).unwrap();
    let second = r.writer.submit(batch(&["sip:2@h"], 2));
    // The third finds the queue full: the backlog takes it whole.
    let third = r.writer.submit(batch(&["sip:3@h", "sip:4@h"], 4));
    // The fourth overflows both bounds: 3 of its 4 events are dropped, its rows refused.
    let fourth = r.writer.submit(batch(&["sip:5@h", "sip:6@h"], 4));
    assert!(matches!(first, Submitted::Ticket(1)));
    assert!(matches!(second, Submitted::Ticket(2)));
    assert!(matches!(third, Submitted::Ticket(3)));
    assert_eq!(fourth, Submitted::Refused);
    assert!(r.stats.queue_full.load(Ordering::Relaxed) >= 1);
    assert_eq!(r.stats.events_dropped.load(Ordering::Relaxed), 3);
    assert_eq!(r.stats.rows_refused.load(Ordering::Relaxed), 1);
    r.drain_until(4);
    r.writer.close();
    // Every row not refused is stored; the events add up.
    assert_eq!(r.stored(), 4);
    let produced = 2 + 2 + 4 + 4;
    assert_eq!(
        r.stats.events_written.load(Ordering::Relaxed)
            + r.stats.events_dropped.load(Ordering::Relaxed),
        produced
    );
    assert_eq!(r.stats.batches.load(Ordering::Relaxed), 4);
}

#[test]
fn closing_writes_the_backlog() {
    let mut r = rig(
        "close",
        Bounds {
            queue: 1,
            backlog_events: 10,
            backlog_rows: 10,
        },
    );
    let _ = r.writer.submit(batch(&["sip:1@h"], 0));
    r.started.recv_timeout(Duration::from_secs(10)).unwrap();
    let _ = r.writer.submit(batch(&["sip:2@h"], 0));
    let _ = r.writer.submit(batch(&["sip:3@h"], 1));
    // Enough permits for every write; close waits for all of it.
    for _ in 0..10 {
        r.permits.send(()).unwrap();
    }
    r.writer.close();
    assert_eq!(r.stored(), 3);
    assert!(r.log().contains("127.0.0.1"));
}

#[test]
fn answers_and_ban_replies_leave_once_their_rows_are_stored() {
    let mut r = rig("answers", ROOMY);
    let mut first = batch(&["sip:a@10.0.0.1"], 0);
    first.answers = vec![answer(1)];
    let (reply, mut replied) = oneshot::channel();
    let mut second = batch(&["sip:b@10.0.0.1"], 0);
    second.answers = vec![answer(2), answer(3)];
    second.replies = vec![(reply, true)];
    let Submitted::Ticket(t1) = r.writer.submit(first) else {
        panic!("refused")
    };
    // The store holds the first write: nothing has left, the operator has no answer.
    r.started.recv_timeout(Duration::from_secs(10)).unwrap();
    let Submitted::Ticket(t2) = r.writer.submit(second) else {
        panic!("refused")
    };
    assert!(
        r.sent().is_empty(),
        "an answer left before its binding was stored"
    );
    assert!(replied.try_recv().is_err());
    r.drain_until(t1);
    assert!(r.stored() >= 1);
    assert_eq!(r.sent().first(), Some(&1));
    r.drain_until(t2);
    assert_eq!(r.sent(), [1, 2, 3], "in order, each once");
    assert_eq!(
        replied.try_recv(),
        Ok(true),
        "the ban is answered once stored"
    );
    r.writer.close();
}

#[test]
fn refused_rows_are_never_acknowledged() {
    let mut r = rig(
        "refused",
        Bounds {
            queue: 1,
            backlog_events: 10,
            backlog_rows: 1,
        },
    );
    let _ = r.writer.submit(batch(&["sip:1@h"], 0));
    r.started.recv_timeout(Duration::from_secs(10)).unwrap();
    let _ = r.writer.submit(batch(&["sip:2@h"], 0));
    let mut kept = batch(&["sip:3@h"], 0);
    kept.answers = vec![answer(3)];
    assert!(matches!(r.writer.submit(kept), Submitted::Ticket(3)));
    // Over the backlog's row bound: its rows, its answer and the ban reply are refused.
    let mut over = batch(&["sip:4@h"], 0);
    over.answers = vec![answer(4)];
    let (reply, mut replied) = oneshot::channel();
    over.replies = vec![(reply, true)];
    assert_eq!(r.writer.submit(over), Submitted::Refused);
    assert_eq!(
        replied.try_recv(),
        Ok(false),
        "the operator hears no at once"
    );
    r.drain_until(4);
    r.writer.close();
    assert_eq!(r.sent(), [3], "the refused binding was never acknowledged");
    assert_eq!(r.stored(), 3);
}

/// The store's WAL is checkpointed by the writer's second thread, counted, and once more
/// at close, after the last commit.
#[test]
fn the_wal_checkpoint_thread_runs_and_stops_with_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sipwarden.db");
    let mut store = sipwarden_store::SqliteStore::open(&path, false).unwrap();
    let ckpt = store.checkpoint_elsewhere().unwrap();
    let log = SecurityLog::open(None, None).unwrap();
    let (done, written) = watch::channel(0);
    let stats = Arc::new(WriterStats::default());
    let deliver: Deliver = Box::new(|_| {});
    let mut writer = Writer::start(
        Box::new(store),
        log,
        ROOMY,
        (deliver, done),
        (Arc::clone(&stats), Some(ckpt)),
        records(),
    )
    .unwrap();
    let Submitted::Ticket(t) = writer.submit(batch(&["sip:a@10.0.0.1"], 0)) else {
        panic!("refused")
    };
    // Bounded waits by polling: the commit, then a checkpoint (every half second).
    let deadline = Instant::now() + Duration::from_secs(10);
    while *written.borrow() < t || stats.checkpoints.load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < deadline, "no commit or no checkpoint");
        std::thread::sleep(Duration::from_millis(10));
    }
    let before = stats.checkpoints.load(Ordering::Relaxed);
    writer.close();
    assert!(
        stats.checkpoints.load(Ordering::Relaxed) > before,
        "one more at close"
    );
    assert_eq!(stats.store_errors.load(Ordering::Relaxed), 0);
}
