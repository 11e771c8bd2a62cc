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
use sipwarden_stages::Subject;
mod bans;
mod cdr;
mod core_task;
mod engine;
mod location;
mod media;
#[cfg(test)]
mod redaction_tests;
mod resolver;
#[cfg(test)]
mod start_tests;
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

/// Why the gateway could not start: the variant says what failed and its doc whose fault
/// that is, so the operator knows whether to fix the configuration, a file it names, or the
/// host. The underlying error is kept as the source and also written into the message, so
/// a log line alone says why.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener (SIP or the admin API) could not be bound: the configured address is in
    /// use (often another instance), not on this host, or a low port without the right.
    #[error("cannot listen on {addr} ({listener}): {source}")]
    Bind {
        /// `udp`, `tcp`, `tls`, `wss` or `admin API`.
        listener: &'static str,
        /// The address as configured.
        addr: SocketAddr,
        /// The system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The TLS and WSS listeners' certificate or key (`tls.cert`, `tls.key`) is missing,
    /// unreadable, or not a matching PEM pair.
    #[error("TLS certificate or key: {source}")]
    TlsServer {
        /// `tls.cert`.
        cert: PathBuf,
        /// `tls.key`.
        key: PathBuf,
        /// What is wrong, naming the file.
        #[source]
        source: tls::TlsError,
    },
    /// `tls.generate_self_signed` is on but the certificate could not be written where
    /// `tls.cert` and `tls.key` point.
    #[error("cannot generate a self-signed certificate at {}: {source}", cert.display())]
    SelfSigned {
        /// `tls.cert`.
        cert: PathBuf,
        /// `tls.key`.
        key: PathBuf,
        /// What failed.
        #[source]
        source: tls::TlsError,
    },
    /// Outbound TLS cannot be set up: usually `tls.ca_file` is unreadable or holds no CA.
    #[error("outbound TLS: {source}")]
    TlsClient {
        /// `tls.ca_file`, if set.
        ca_file: Option<PathBuf>,
        /// What is wrong.
        #[source]
        source: tls::TlsError,
    },
    /// The configuration cannot be turned into routes: a trunk, its password file, or the
    /// accounts file is at fault.
    #[error(transparent)]
    Routes(#[from] sipwarden_b2bua::RouteError),
    /// A call policy the configuration asks for cannot be built (`[policy]`).
    #[error("{0}")]
    Policy(String),
    /// The RTP relay's threads cannot start.
    #[error("media relay: {0}")]
    Relay(#[source] std::io::Error),
    /// The DNS resolver cannot be set up (no `[dns] servers` and no usable system
    /// configuration) while a trunk is named by DNS.
    #[error("DNS resolver for trunks named by DNS: {source} (set [dns] servers)")]
    Resolver {
        /// What failed.
        #[source]
        source: hickory_resolver::ResolveError,
    },
    /// The store could not be opened, or its tables read at start; the store error says
    /// whether the file's place, its version or its content is at fault.
    #[error(transparent)]
    Store(#[from] sipwarden_store::StoreError),
    /// A state directory (`storage.dir`, the admin token's) could not be created: a
    /// permission or a path through a file.
    #[error("cannot create directory {}: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The system's reason.
        #[source]
        source: std::io::Error,
    },
    /// A file the gateway makes for itself (the admin token, the nonce key) could not be
    /// written: a permission or a full disk.
    #[error("cannot write {}: {source}", path.display())]
    WriteFile {
        /// The file.
        path: PathBuf,
        /// The system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The admin token file (the operator's) holds too short a token to be safe.
    #[error("{}: admin token shorter than 16 characters", path.display())]
    ShortAdminToken {
        /// `admin.token_file`, or its default.
        path: PathBuf,
    },
    /// The nonce key file is not a key this gateway wrote: replaced or damaged.
    #[error(
        "{}: a nonce key must be 32 bytes, not {len} (delete it to make a new one)",
        path.display()
    )]
    BadNonceKey {
        /// `<storage.dir>/nonce.key`.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
    },
    /// The security log or the events log could not be opened for appending: a permission
    /// or a missing directory that cannot be made.
    #[error(
        "cannot open the security log {} or the events log {}: {source}",
        security_log.display(),
        events_log.display()
    )]
    SecurityLog {
        /// The Asterisk-format log fail2ban reads.
        security_log: PathBuf,
        /// The JSON lines log.
        events_log: PathBuf,
        /// The system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The operating system's random numbers could not be read (a host without
    /// `/dev/urandom`, or a sandbox that hides it).
    #[error("cannot read /dev/urandom: {0}")]
    Entropy(#[source] std::io::Error),
    /// The thread that writes the store and the logs could not be started: the host is out
    /// of threads or memory.
    #[error("cannot start the writer thread: {0}")]
    WriterThread(#[source] std::io::Error),
    /// The SIGHUP, SIGTERM and SIGINT handlers could not be installed.
    #[error("cannot install the signal handlers: {0}")]
    Signals(#[source] std::io::Error),
}

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

/// The writer's way out for the answers that waited for their rows: the transports, with
/// the runtime entered (a TCP or TLS answer may open its connection, which spawns a task).
fn deliver(transports: Transports) -> writer::Deliver {
    let runtime = tokio::runtime::Handle::current();
    Box::new(move |answers| {
        let _entered = runtime.enter();
        for a in answers {
            transports.send(a.dest, a.bytes);
        }
    })
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
        .map_err(StartError::Entropy)?;
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
        return Err(StartError::ShortAdminToken { path });
    }
    let seed = os_seed()?;
    let token: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StartError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
    }
    tls::write_private(&path, token.as_bytes())
        .map_err(|source| StartError::WriteFile { path, source })?;
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
        return Err(StartError::BadNonceKey {
            path,
            len: bytes.len(),
        });
    }
    let key = os_seed()?;
    tls::write_private(&path, &key).map_err(|source| StartError::WriteFile { path, source })?;
    Ok(Secret::new(key))
}

/// The durable store: SQLite under `storage.dir`, with the connection that checkpoints its
/// write-ahead log off the commit path (the writer runs it on a thread of its own).
fn open_store(
    cfg: &Config,
) -> Result<
    (
        Box<dyn sipwarden_store::Store>,
        sipwarden_store::WalCheckpointer,
    ),
    StartError,
> {
    let dir = &cfg.storage.dir;
    std::fs::create_dir_all(dir).map_err(|source| StartError::CreateDir {
        path: dir.clone(),
        source,
    })?;
    let path = dir.join("sipwarden.db");
    let mut store = sipwarden_store::SqliteStore::open(&path, cfg.storage.sync_full)?;
    let checkpointer = store.checkpoint_elsewhere()?;
    Ok((Box::new(store), checkpointer))
}

/// A stored kill-switch row as the core holds it (an unknown kind is skipped).
fn switch_from_row(r: sipwarden_store::SwitchRow) -> Option<(Subject, sipwarden_b2bua::Disabled)> {
    let subject = match r.kind.as_str() {
        "trunk" => Subject::Trunk(r.name),
        "account" => Subject::Account(r.name),
        _ => return None,
    };
    let since =
        std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(r.since_unix).unwrap_or(0));
    Some((subject, sipwarden_b2bua::Disabled { since, by: r.by }))
}

/// A kill-switch change as the store keeps it.
pub(crate) fn switch_to_row(c: sipwarden_b2bua::SwitchChange) -> sipwarden_store::SwitchRowChange {
    use sipwarden_store::{SwitchRow, SwitchRowChange};
    let kind_name = |s: Subject| match s {
        Subject::Trunk(n) => ("trunk".to_owned(), n),
        Subject::Account(n) => ("account".to_owned(), n),
    };
    match c {
        sipwarden_b2bua::SwitchChange::Disabled(s, d) => {
            let (kind, name) = kind_name(s);
            SwitchRowChange::Upsert(SwitchRow {
                kind,
                name,
                since_unix: cdr::unix_ms(d.since) / 1000,
                by: d.by,
            })
        }
        sipwarden_b2bua::SwitchChange::Enabled(s) => {
            let (kind, name) = kind_name(s);
            SwitchRowChange::Remove(kind, name)
        }
    }
}

/// Routes from a configuration.
pub fn routes(cfg: &Config) -> Result<Routes, StartError> {
    Ok(Routes::from_config(cfg)?)
}

/// Whether the call policies a configuration asks for can be built (`[policy]`'s countries
/// exist, the rate table reads and parses), as `serve` builds them.
pub fn check_policies(cfg: &Config) -> Result<(), StartError> {
    build_policies(cfg).map(drop).map_err(StartError::Policy)
}

/// The files the call policies name, read (the policy crate reads none).
pub(crate) fn policy_files(cfg: &Config) -> Result<sipwarden_policy::PolicyFiles, String> {
    let rates = match cfg
        .policy
        .as_ref()
        .and_then(|p| p.spend.as_ref()?.rates.as_ref())
    {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| format!("policy.spend.rates: cannot read {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let mut lists = Vec::new();
    for (name, path) in cfg.policy.iter().flat_map(|p| p.lists.iter()) {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("policy.lists.{name}: cannot read {}: {e}", path.display()))?;
        lists.push((name.clone(), text));
    }
    Ok(sipwarden_policy::PolicyFiles { rates, lists })
}

/// The call policies of a configuration, with the files they name.
pub(crate) fn build_policies(
    cfg: &Config,
) -> Result<Vec<Box<dyn sipwarden_stages::CallPolicy>>, String> {
    sipwarden_policy::from_config_files(cfg, &policy_files(cfg)?)
}

/// The rate table call records are priced with (the spend caps' own), if any.
fn rate_table(cfg: &Config) -> Option<sipwarden_policy::RateTable> {
    let text = policy_files(cfg).ok()?.rates?;
    sipwarden_policy::RateTable::parse(&text).ok()
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
                    if tls::ensure_self_signed(cert, key, &names).map_err(|source| {
                        StartError::SelfSigned {
                            cert: cert.clone(),
                            key: key.clone(),
                            source,
                        }
                    })? {
                        tracing::warn!(cert = %cert.display(), "generated a self-signed certificate (lab use only)");
                    }
                }
                Some(tls::server_config(cert, key, tls13_only).map_err(|source| {
                    StartError::TlsServer {
                        cert: cert.clone(),
                        key: key.clone(),
                        source,
                    }
                })?)
            }
            _ => None,
        };
        let tls_client = Some(
            tls::client_config(cfg.tls.ca_file.as_deref(), tls13_only).map_err(|source| {
                StartError::TlsClient {
                    ca_file: cfg.tls.ca_file.clone(),
                    source,
                }
            })?,
        );
        let routes = routes(&cfg)?;
        let (in_tx, in_rx) = mpsc::channel(16 * 1024);
        let ban_view = Arc::new(bans::BanView::default());
        // Peers the transports could not connect to, for the core to fail what waits for them.
        let (unreachable_tx, unreachable_rx) = mpsc::channel(1024);
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
            unreachable: Some(unreachable_tx),
        };
        let transports = Transports::start(tcfg, in_tx)
            .await
            .map_err(|e| StartError::Bind {
                listener: e.transport,
                addr: e.addr,
                source: e.source,
            })?;
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
        let named = resolver::named(&routes);
        let mut core = Core::new(routes, local, settings, os_seed()?);
        // The call policies the core runs for every new call, and the rewrites of its
        // outgoing messages, in order.
        core.set_policies(build_policies(&cfg).map_err(StartError::Policy)?);
        let mut rewrites = sipwarden_policy::rewrites_from_config(&cfg);
        // Media anchoring ([media]): the rewrite plans each SDP; the relay's threads move
        // the packets; the core task performs the rewrite's queued relay operations.
        // With rtpengine as the engine, the rewrite marks each SDP and the engine task puts
        // rtpengine's SDP in its place on the way out.
        let (control_tx, control_rx) = mpsc::channel(64);
        let (mut media, mut engine) = (None, None);
        match &cfg.media {
            Some(m) if m.engine == sipwarden_config::MediaEngine::Rtpengine => {
                let (rewrite, e) = engine::start(
                    m,
                    cfg.pbx.source_networks(),
                    transports.clone(),
                    control_tx.clone(),
                );
                rewrites.push(Box::new(rewrite));
                engine = Some(e);
            }
            Some(m) => {
                let (rewrite, relay) =
                    media::start(m, cfg.pbx.source_networks()).map_err(StartError::Relay)?;
                rewrites.push(Box::new(rewrite));
                media = Some(relay);
            }
            None => {}
        }
        core.set_rewrites(rewrites);
        core.set_wall_clock(std::time::Instant::now(), std::time::SystemTime::now());
        let (mut store, checkpointer) = open_store(&cfg)?;
        let bindings = location::load(store.as_mut())?;
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
        let active = ban_view.restore(store.as_mut(), |e| core.restore_ban(now, e))?;
        let switches = store.load_switches()?;
        if !switches.is_empty() {
            tracing::warn!(
                disabled = switches.len(),
                "disabled trunks and accounts restored from the store (the kill switch)"
            );
        }
        core.restore_disabled(switches.into_iter().filter_map(switch_from_row));
        let state: Vec<(String, String, String)> = store
            .load_policy_state()?
            .into_iter()
            .map(|r| (r.policy, r.key, r.value))
            .collect();
        core.restore_policy_state(&state);
        let interrupted = store.close_running_cdrs("the gateway stopped before the call ended")?;
        if interrupted > 0 {
            tracing::warn!(
                calls = interrupted,
                "call records of calls running when the gateway last stopped marked interrupted"
            );
        }
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
            .map_err(|source| StartError::SecurityLog {
                security_log: security_log.clone(),
                events_log: events_log.clone(),
                source,
            })?;
        let key = nonce_key(dir)?;
        core.set_nonce_key(
            key,
            std::time::Instant::now(),
            u64::try_from(bans::unix_now()).unwrap_or(0),
        );
        // Trunks named by DNS: resolved by a task of their own, off the call path.
        let (named_tx, named_rx) = watch::channel(named.clone());
        let (trunks_tx, trunks_rx) = watch::channel(core.trunk_status(std::time::Instant::now()));
        let dns_stats = Arc::new(resolver::DnsStats::default());
        match resolver::build(&cfg.dns) {
            Ok(r) => {
                let settings = sipwarden_dns::cache::Settings {
                    min_ttl: cfg.dns.min_ttl,
                    keep_stale: cfg.dns.keep_stale,
                    ..Default::default()
                };
                tokio::spawn(resolver::run(
                    r,
                    settings,
                    named_rx,
                    (control_tx.clone(), transports.clone()),
                    Arc::clone(&dns_stats),
                ));
            }
            Err(source) if !named.is_empty() => return Err(StartError::Resolver { source }),
            Err(e) => tracing::warn!(
                "DNS resolver not available ({e}); trunks named by DNS will not work"
            ),
        }
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
            (deliver(transports.clone()), written_tx),
            (Arc::clone(&writer_stats), Some(checkpointer)),
            writer::Records {
                builder: cdr::CdrBuilder::new(
                    std::time::SystemTime::now(),
                    cfg.policy.as_ref().map_or("US", |p| p.country.as_str()),
                    cfg.calls.max_calls.saturating_mul(2).max(1024),
                    rate_table(&cfg),
                ),
                retention_days: cfg.storage.cdr_retention_days,
            },
        )
        .map_err(StartError::WriterThread)?;
        if let Some(m) = &media {
            tokio::spawn(media::watch_timeouts(m.clone(), control_tx.clone()));
        }
        let done = tokio::spawn(core_task::run(
            core,
            (in_rx, unreachable_rx),
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
                named: named_tx,
                trunks: trunks_tx,
                media: media.clone(),
                engine: engine.clone(),
            },
        ));
        let token = admin_token(&cfg)?;
        let admin = admin::serve(
            cfg.admin.listen,
            Arc::new(token),
            stats_rx.clone(),
            transports.clone(),
            admin::Shared {
                control: control_tx.clone(),
                bans: Arc::clone(&ban_view),
                verdicts,
                writer: writer_stats,
                dns: dns_stats,
                trunks: trunks_rx,
                media,
                engine,
                db: cfg.storage.dir.join("sipwarden.db"),
            },
        )
        .await
        .map_err(|source| StartError::Bind {
            listener: "admin API",
            addr: cfg.admin.listen,
            source,
        })?;
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
        let sig = |k| signal(k).map_err(StartError::Signals);
        Ok(Self {
            hup: sig(SignalKind::hangup())?,
            term: sig(SignalKind::terminate())?,
            int: sig(SignalKind::interrupt())?,
        })
    }
}
