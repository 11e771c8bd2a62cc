//! # sipwarden-server: the composition root
//!
//! Turns a configuration into a running gateway: transports, the call core on a task of its
//! own, signal handling (SIGHUP reload, SIGTERM graceful stop), the admin API and metrics.
//! Only this crate owns a runtime, reads the clock and spawns long-lived tasks; everything it
//! wires is sans-io or a thin socket layer.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod admin;
mod bans;
mod core_task;
mod location;
#[cfg(test)]
mod redaction_tests;
mod writer;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sipwarden_b2bua::{Core, Local, Routes, Settings, Stats};
use sipwarden_config::{Config, TlsVersion};
use sipwarden_sip::{Limits, Secret};
use sipwarden_transport::{Transports, tls};
use tokio::sync::{mpsc, watch};

pub use core_task::Control;

/// Why the gateway could not start.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

/// A running gateway.
pub struct Gateway {
    /// Where SIP and the admin API listen.
    pub listening: Listening,
    control: mpsc::Sender<Control>,
    stats: watch::Receiver<Stats>,
    done: tokio::task::JoinHandle<()>,
    transports: Transports,
}

/// Bound addresses.
#[derive(Clone, Debug)]
pub struct Listening {
    /// UDP.
    pub udp: Vec<SocketAddr>,
    /// TCP.
    pub tcp: Vec<SocketAddr>,
    /// TLS.
    pub tls: Vec<SocketAddr>,
    /// WSS (SIP over secure WebSocket).
    pub wss: Vec<SocketAddr>,
    /// Admin API and metrics.
    pub admin: SocketAddr,
}

impl std::fmt::Display for Listening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: &[SocketAddr]| {
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !self.udp.is_empty() {
            writeln!(f, "  sip udp  {}", list(&self.udp))?;
        }
        if !self.tcp.is_empty() {
            writeln!(f, "  sip tcp  {}", list(&self.tcp))?;
        }
        if !self.tls.is_empty() {
            writeln!(f, "  sip tls  {}", list(&self.tls))?;
        }
        if !self.wss.is_empty() {
            writeln!(f, "  sip wss  {}", list(&self.wss))?;
        }
        write!(f, "  admin    http://{}", self.admin)
    }
}

fn limits(cfg: &Config) -> Limits {
    let s = &cfg.sip;
    Limits {
        max_message_bytes: s.max_message_bytes,
        max_head_bytes: s.max_head_bytes,
        max_headers: s.max_headers,
        max_header_line: s.max_header_line,
        max_uri_bytes: s.max_uri_bytes,
        max_body_bytes: s.max_body_bytes,
        max_vias: s.max_vias,
    }
}

/// 32 bytes from the OS for the identifier CSPRNG.
fn os_seed() -> Result<[u8; 32], StartError> {
    use std::io::Read;
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .map_err(|e| StartError(format!("/dev/urandom: {e}")))?;
    Ok(seed)
}

/// The admin token: read from the configured file, or created there (random, 0600).
fn admin_token(cfg: &Config) -> Result<Secret<String>, StartError> {
    let path = cfg
        .admin
        .token_file
        .clone()
        .unwrap_or_else(|| cfg.storage.dir.join("admin.token"));
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim().to_owned();
        if t.len() >= 16 {
            return Ok(Secret::new(t));
        }
        return Err(StartError(format!(
            "{}: admin token shorter than 16 characters",
            path.display()
        )));
    }
    let seed = os_seed()?;
    let token: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| StartError(format!("{}: {e}", dir.display())))?;
    }
    tls::write_private(&path, token.as_bytes())
        .map_err(|e| StartError(format!("{}: {e}", path.display())))?;
    Ok(Secret::new(token))
}

/// The digest nonce key: read from `<dir>/nonce.key`, or made there (random, 0600), so that
/// nonces handed out before a restart still verify after it.
fn nonce_key(dir: &Path) -> Result<Secret<[u8; 32]>, StartError> {
    let path = dir.join("nonce.key");
    if let Ok(bytes) = std::fs::read(&path) {
        if let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice()) {
            return Ok(Secret::new(key));
        }
        return Err(StartError(format!(
            "{}: a nonce key must be 32 bytes (delete it to make a new one)",
            path.display()
        )));
    }
    let key = os_seed()?;
    tls::write_private(&path, &key).map_err(|e| StartError(format!("{}: {e}", path.display())))?;
    Ok(Secret::new(key))
}

/// The durable store: SQLite under `storage.dir`.
fn open_store(cfg: &Config) -> Result<Box<dyn sipwarden_store::Store>, StartError> {
    let dir = &cfg.storage.dir;
    std::fs::create_dir_all(dir).map_err(|e| StartError(format!("{}: {e}", dir.display())))?;
    let path = dir.join("sipwarden.db");
    let store = sipwarden_store::SqliteStore::open(&path, cfg.storage.sync_full)
        .map_err(|e| StartError(e.to_string()))?;
    Ok(Box::new(store))
}

/// Routes from a configuration.
pub fn routes(cfg: &Config) -> Result<Routes, StartError> {
    Routes::from_config(cfg).map_err(|e| StartError(e.to_string()))
}

impl Gateway {
    /// Starts a gateway. `config_path` is re-read on [`Control::Reload`] (SIGHUP).
    pub async fn start(cfg: Config, config_path: Option<PathBuf>) -> Result<Self, StartError> {
        let tls13_only = cfg.tls.min_version == TlsVersion::V1_3;
        // WSS listeners terminate TLS with the same certificate as TLS listeners.
        let tls_listeners = !cfg.listen.tls.is_empty() || !cfg.listen.wss.is_empty();
        let tls_server = match (&cfg.tls.cert, &cfg.tls.key) {
            (Some(cert), Some(key)) if tls_listeners => {
                if cfg.tls.generate_self_signed {
                    let names = vec![
                        "sipwarden.lab".to_owned(),
                        "localhost".to_owned(),
                        "127.0.0.1".to_owned(),
                    ];
                    if tls::ensure_self_signed(cert, key, &names)
                        .map_err(|e| StartError(e.to_string()))?
                    {
                        tracing::warn!(cert = %cert.display(), "generated a self-signed certificate (lab use only)");
                    }
                }
                Some(
                    tls::server_config(cert, key, tls13_only)
                        .map_err(|e| StartError(e.to_string()))?,
                )
            }
            _ => None,
        };
        let tls_client = Some(
            tls::client_config(cfg.tls.ca_file.as_deref(), tls13_only)
                .map_err(|e| StartError(e.to_string()))?,
        );
        let routes = routes(&cfg)?;
        let (in_tx, in_rx) = mpsc::channel(16 * 1024);
        let ban_view = Arc::new(bans::BanView::default());
        let tcfg = sipwarden_transport::Config {
            udp: cfg.listen.udp.clone(),
            tcp: cfg.listen.tcp.clone(),
            tls: cfg.listen.tls.clone(),
            wss: cfg.listen.wss.clone(),
            udp_sockets: cfg.listen.udp_sockets.unwrap_or(1),
            max_connections_per_ip: cfg.listen.max_connections_per_ip,
            max_connections: cfg.listen.max_connections,
            idle_timeout: cfg.listen.idle_timeout,
            limits: limits(&cfg),
            tls_server,
            tls_client,
            gate: Some(Arc::clone(&ban_view) as Arc<dyn sipwarden_transport::Gate>),
        };
        let transports = Transports::start(tcfg, in_tx)
            .await
            .map_err(|e| StartError(format!("cannot listen: {e}")))?;
        let bound = transports.bound().clone();
        let advertise = |v: &[SocketAddr]| {
            v.first().map(|a| match cfg.listen.advertise {
                Some(ip) if a.ip().is_unspecified() => SocketAddr::new(ip, a.port()),
                _ => *a,
            })
        };
        let local = Local {
            udp: advertise(&bound.udp),
            tcp: advertise(&bound.tcp),
            tls: advertise(&bound.tls),
            wss: advertise(&bound.wss),
        };
        let settings = Settings {
            txn: sipwarden_txn::Config {
                timers: sipwarden_txn::Timers {
                    t1: cfg.transactions.t1,
                    t2: cfg.transactions.t2,
                    t4: cfg.transactions.t4,
                },
                max_transactions: cfg.transactions.max_transactions,
                ..sipwarden_txn::Config::default()
            },
            ..Settings::default()
        };
        let mut core = Core::new(routes, local, settings, os_seed()?);
        // The call policies the core runs for every new call, and the rewrites of its
        // outgoing messages, in order.
        core.set_policies(sipwarden_policy::standard());
        core.set_rewrites(sipwarden_policy::standard_rewrites());
        core.set_wall_clock(std::time::Instant::now(), std::time::SystemTime::now());
        let mut store = open_store(&cfg)?;
        let bindings = location::load(store.as_mut())
            .map_err(|e| StartError(format!("location table: {e}")))?;
        if !bindings.is_empty() {
            tracing::info!(
                bindings = bindings.len(),
                "registrations restored from the store"
            );
        }
        let mut left_out = 0usize;
        for b in bindings {
            if !core.restore_binding(b) {
                left_out += 1;
            }
        }
        if left_out > 0 {
            tracing::warn!(
                left_out,
                max = cfg.registrar.max_bindings,
                "registrations beyond registrar.max_bindings not restored"
            );
        }
        let now = std::time::Instant::now();
        let active = ban_view
            .restore(store.as_mut(), |e| core.restore_ban(now, e))
            .map_err(|e| StartError(format!("ban table: {e}")))?;
        if active > 0 {
            tracing::info!(bans = active, "bans restored from the store");
        }
        let nft = cfg
            .ban
            .nftables_set
            .as_deref()
            .map(|s| Arc::new(bans::Nft::new(s)));
        let dir = &cfg.storage.dir;
        let security_log = cfg
            .storage
            .security_log
            .clone()
            .unwrap_or_else(|| dir.join("security.log"));
        let events_log = cfg
            .storage
            .events_log
            .clone()
            .unwrap_or_else(|| dir.join("events.jsonl"));
        let log = sipwarden_events::SecurityLog::open(Some(&security_log), Some(&events_log))
            .map_err(|e| StartError(format!("security log: {e}")))?;
        let key = nonce_key(dir)?;
        core.set_nonce_key(
            key,
            std::time::Instant::now(),
            u64::try_from(bans::unix_now()).unwrap_or(0),
        );
        let (control_tx, control_rx) = mpsc::channel(64);
        // Start from the core's own numbers: restored registrations count from the first read.
        let (stats_tx, stats_rx) = watch::channel(core.stats());
        let verdicts = core_task::VerdictTable::default();
        let (written_tx, written_rx) = watch::channel(0u64);
        let writer_stats = Arc::new(writer::WriterStats::default());
        let writer = writer::Writer::start(
            store,
            log,
            writer::Bounds {
                queue: cfg.storage.writer_queue,
                backlog_events: cfg.storage.writer_backlog_events,
                backlog_rows: cfg.storage.writer_backlog_rows,
            },
            written_tx,
            Arc::clone(&writer_stats),
        )
        .map_err(|e| StartError(format!("writer thread: {e}")))?;
        let done = tokio::spawn(core_task::run(
            core,
            in_rx,
            control_rx,
            transports.clone(),
            stats_tx,
            (config_path, control_tx.clone()),
            core_task::Sinks {
                writer,
                written: written_rx,
                bans: Arc::clone(&ban_view),
                nft,
                verdicts: Arc::clone(&verdicts),
            },
        ));
        let token = admin_token(&cfg)?;
        let admin = admin::serve(
            cfg.admin.listen,
            Arc::new(token),
            stats_rx.clone(),
            transports.clone(),
            (
                control_tx.clone(),
                Arc::clone(&ban_view),
                verdicts,
                writer_stats,
            ),
        )
        .await
        .map_err(|e| StartError(format!("admin API {}: {e}", cfg.admin.listen)))?;
        let listening = Listening {
            udp: bound.udp,
            tcp: bound.tcp,
            tls: bound.tls,
            wss: bound.wss,
            admin,
        };
        Ok(Self {
            listening,
            control: control_tx,
            stats: stats_rx,
            done,
            transports,
        })
    }

    /// The latest numbers of the call core.
    pub fn stats(&self) -> Stats {
        *self.stats.borrow()
    }

    /// Sends a command to the call core.
    pub async fn control(&self, c: Control) {
        let _ = self.control.send(c).await;
    }

    /// Open TCP/TLS/WSS connections.
    pub fn connections(&self) -> usize {
        self.transports.conns().len()
    }

    /// Runs until SIGTERM or SIGINT, reloading the configuration on SIGHUP; then shuts down
    /// gracefully (see [`Gateway::shutdown`]).
    pub async fn run_until_signalled(
        self,
        signals: Signals,
        grace: Duration,
    ) -> Result<(), StartError> {
        let Signals {
            mut hup,
            mut term,
            mut int,
        } = signals;
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading the configuration");
                    self.control(Control::Reload).await;
                }
                _ = term.recv() => break,
                _ = int.recv() => break,
            }
        }
        tracing::info!(
            calls = self.stats().calls,
            grace_secs = grace.as_secs(),
            "stopping: no new calls, waiting for calls in progress"
        );
        self.shutdown(grace).await;
        tracing::info!("stopped");
        Ok(())
    }

    /// Stops taking new calls, waits up to `grace` for calls in progress to end, hangs up
    /// the rest, gives their BYEs a moment, and stops.
    pub async fn shutdown(mut self, grace: Duration) {
        self.control(Control::Drain).await;
        let deadline = tokio::time::Instant::now() + grace;
        while self.stats().calls > 0 && tokio::time::Instant::now() < deadline {
            let _ = tokio::time::timeout_at(deadline, self.stats.changed()).await;
        }
        if self.stats().calls > 0 {
            self.control(Control::HangupAll).await;
            let bye_deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while self.stats().calls > 0 && tokio::time::Instant::now() < bye_deadline {
                let _ = tokio::time::timeout_at(bye_deadline, self.stats.changed()).await;
            }
        }
        self.control(Control::Stop).await;
        let _ = self.done.await;
    }
}

/// Loads a configuration file, or the built-in defaults when `path` is `None`.
pub fn load_config(path: Option<&Path>) -> Result<Config, Vec<sipwarden_config::ConfigError>> {
    match path {
        Some(p) => Config::load(p),
        None => Ok(Config::default()),
    }
}

/// SIGHUP, SIGTERM and SIGINT, caught from the moment this is made. Install them before
/// telling anyone the gateway listens: a signal that arrives in between would otherwise end
/// the process with the default action instead of a drain.
pub struct Signals {
    hup: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers (inside the runtime).
    pub fn install() -> Result<Self, StartError> {
        use tokio::signal::unix::{SignalKind, signal};
        let sig = |k| signal(k).map_err(|e| StartError(format!("signal handler: {e}")));
        Ok(Self {
            hup: sig(SignalKind::hangup())?,
            term: sig(SignalKind::terminate())?,
            int: sig(SignalKind::interrupt())?,
        })
    }
}
