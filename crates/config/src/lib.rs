//! # sipwarden-config: the configuration file
//!
//! One TOML file describes a gateway. Every section has safe defaults, so an empty file (or
//! none) gives a gateway that listens on loopback only and forwards to a PBX on
//! 127.0.0.1:5080. Unknown keys are errors, and every error names the file, the line, the
//! key and what is wrong with it: a typo must never silently turn a protection off.
//!
//! Values are typed as they are read (socket addresses, CIDR networks, durations such as
//! `"30s"`, number ranges), so the runtime never handles raw strings. Settings that are legal
//! but risky are not refused here: the auditor reports them, and every insecure switch is
//! named `danger_*`.
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

mod accounts;
mod caller_id;
mod error;
mod keys;
mod media;
mod numbers;
mod policy;
mod routing;
mod security;
mod values;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use sipwarden_sip::Secret;
use sipwarden_sip::header::Transport;

pub use accounts::{AccountConfig, AccountsFile, MediaEncryption};
pub use caller_id::{CallerIdConfig, InboundCallerId, OutboundCallerId};
pub use error::ConfigError;
pub use keys::{KeyLine, KeyLines};
pub use media::{MediaConfig, MediaEngine, MediaProtocol};
pub use numbers::{NumberRange, canonical_number};
pub use policy::{
    DAYS, LIMIT_STATUSES, LimitAction, LimitConfig, LimitKind, LimitScope, MAX_LIMIT_NAME,
    MAX_LIMITS, MaxDurationConfig, NAMED_LISTS, PolicyConfig, PolicyMode, SpendCapConfig,
    SpendConfig, SpendPeriod, SpendScope, Unpriced, WindowConfig, minutes_of,
};
pub use routing::{DnsConfig, QualifyConfig, RegistrationConfig, RouteConfig, RouteTrunk};
pub use security::{AclAction, AclConfig, AclLists, BanConfig, RateLimitConfig, ScannerConfig};

/// The whole configuration.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the gateway listens for SIP.
    pub listen: ListenConfig,
    /// Certificate and protocol settings for TLS listeners and TLS toward trunks.
    pub tls: TlsConfig,
    /// The PBX behind the gateway.
    pub pbx: PbxConfig,
    /// SIP trunks to providers (`[[trunk]]` tables).
    #[serde(rename = "trunk")]
    pub trunks: Vec<TrunkConfig>,
    /// Call handling.
    pub calls: CallsConfig,
    /// Message parser limits.
    pub sip: SipConfig,
    /// Transaction timers.
    pub transactions: TransactionsConfig,
    /// Admin API and metrics.
    pub admin: AdminConfig,
    /// Where state is kept.
    pub storage: StorageConfig,
    /// The endpoint zone's accounts.
    pub accounts: AccountsConfig,
    /// Registration of remote phones.
    pub registrar: RegistrarConfig,
    /// Bans.
    pub ban: BanConfig,
    /// Flood limits.
    pub ratelimit: RateLimitConfig,
    /// Scanner fingerprints.
    pub scanner: ScannerConfig,
    /// Allow/deny lists.
    pub acl: AclConfig,
    /// The resolver for trunks named by DNS.
    pub dns: DnsConfig,
    /// Outbound routes from the PBX (`[[route]]` tables). None: every trunk, in
    /// configuration order, the first preferred.
    #[serde(rename = "route")]
    pub routes: Vec<RouteConfig>,
    /// Media anchoring through the gateway's relay; off without the table.
    pub media: Option<MediaConfig>,
    /// The destination policy of calls out through the trunks and the velocity limits; none
    /// without the table.
    pub policy: Option<PolicyConfig>,
}

/// The most entries a configurable table or queue may be given.
const MAX_TABLE: usize = 10_000_000;

impl Config {
    /// The top-level tables of a configuration file, as written in it (`trunk` for
    /// `[[trunk]]`). Tools that must tell a sipwarden configuration from other TOML read
    /// them here; a test keeps the list equal to the fields the parser accepts.
    pub const SECTIONS: &'static [&'static str] = &[
        "listen",
        "tls",
        "pbx",
        "trunk",
        "calls",
        "sip",
        "transactions",
        "admin",
        "storage",
        "accounts",
        "registrar",
        "ban",
        "ratelimit",
        "scanner",
        "acl",
        "dns",
        "route",
        "media",
        "policy",
    ];
}

/// `[accounts]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct AccountsConfig {
    /// The accounts file (see [`AccountsFile`]). Without one, no phone can register.
    pub file: Option<PathBuf>,
    /// Digest algorithms offered, one challenge each and in this order, to clients that no
    /// entry of `clients` (nor of the built-in table) names. Default `["MD5"]`: a single
    /// MD5 challenge is the one every SIP client answers; several challenges (RFC 8760) make
    /// some clients give up, and many answer only the first. Families known to answer
    /// SHA-256 get it first through the table (see `docs/phones.md` for the trade-off).
    pub algorithms: Vec<String>,
    /// Challenges per client family, matched on the User-Agent header; the first entry
    /// whose `user_agent` occurs in it (ASCII case-insensitive) wins. Checked before the
    /// built-in entries ([`BUILTIN_CLIENTS`]). The choice never depends on the account, so
    /// unknown and known users still get the same answers.
    pub clients: Vec<ClientChallenge>,
    /// Whether [`BUILTIN_CLIENTS`] follow `clients`. Default true.
    pub builtin_clients: bool,
    /// How long a digest nonce is good for; then the phone gets `stale=true` and answers
    /// again unprompted. Between 10s and 1h. Default "2m".
    #[serde(deserialize_with = "values::duration")]
    pub nonce_lifetime: Duration,
    /// Most nonces whose last `nc` is remembered (replay protection); when full, the nonce
    /// used least recently gives way. Default 200 000.
    pub max_nonces: usize,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        Self {
            file: None,
            algorithms: vec!["MD5".to_owned()],
            clients: Vec::new(),
            builtin_clients: true,
            nonce_lifetime: Duration::from_secs(120),
            max_nonces: 200_000,
        }
    }
}

/// One client family of `[accounts] clients`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClientChallenge {
    /// Matched as a case-insensitive substring of the User-Agent header (`"Linphone"`).
    pub user_agent: String,
    /// The challenges this family gets, in order (`["SHA-256", "MD5"]`).
    pub algorithms: Vec<String>,
}

/// Client families whose digest support is known, each tried in the client matrix of
/// `docs/phones.md` (or read from its source where it is not installable here). Families
/// that answer RFC 8760's SHA-256 get it first, with MD5 for their older versions; the
/// others get the single MD5 challenge they can answer.
pub const BUILTIN_CLIENTS: &[(&str, &[&str])] = &[
    // JsSIP 3.x: MD5 only; it reads the first challenge and aborts when it is not MD5.
    ("JsSIP", &["MD5"]),
    // SIP.js 0.21: MD5 only, same reading.
    ("SIP.js", &["MD5"]),
    // baresip with libre 1.x (Debian 12): gives up on a 401/407 that carries any challenge
    // but MD5, even beside an MD5 one.
    ("baresip", &["MD5"]),
    // Linphone (belle-sip): answers SHA-256 and picks the strongest challenge offered.
    ("Linphone", &["SHA-256", "MD5"]),
    ("belle-sip", &["SHA-256", "MD5"]),
];

/// `[registrar]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrarConfig {
    /// Shortest registration accepted; shorter ones get 423 with Min-Expires. Default "60s".
    #[serde(deserialize_with = "values::duration")]
    pub min_expires: Duration,
    /// Longest registration granted (longer requests are shortened). Default "1h".
    #[serde(deserialize_with = "values::duration")]
    pub max_expires: Duration,
    /// Registration time when the phone asks for none. Default "1h".
    #[serde(deserialize_with = "values::duration")]
    pub default_expires: Duration,
    /// Send OPTIONS to phones registered over UDP this often, to keep NAT bindings open
    /// (RFC 5626 §4.4.2 spirit). Off when absent.
    #[serde(default, deserialize_with = "values::opt_duration")]
    pub udp_ping: Option<Duration>,
    /// Most bindings (registered contacts of all accounts together) in the location table;
    /// a REGISTER that would add one more gets 503, refreshes and removals still pass.
    /// Bounds the memory a flood of valid registrations can take. Default 100 000.
    pub max_bindings: usize,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        Self {
            min_expires: Duration::from_secs(60),
            max_expires: Duration::from_secs(3600),
            default_expires: Duration::from_secs(3600),
            udp_ping: None,
            max_bindings: 100_000,
        }
    }
}

/// `[listen]`: SIP listeners. Default: UDP and TCP on 127.0.0.1:5060, nothing else.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ListenConfig {
    /// UDP listen addresses.
    #[serde(deserialize_with = "values::socket_addrs")]
    pub udp: Vec<SocketAddr>,
    /// TCP listen addresses.
    #[serde(deserialize_with = "values::socket_addrs")]
    pub tcp: Vec<SocketAddr>,
    /// TLS listen addresses (need `[tls]`).
    #[serde(deserialize_with = "values::socket_addrs")]
    pub tls: Vec<SocketAddr>,
    /// SIP over secure WebSocket (RFC 7118) listen addresses, for browser phones (need
    /// `[tls]`: the same certificate as the TLS listeners). Default: none.
    #[serde(deserialize_with = "values::socket_addrs")]
    pub wss: Vec<SocketAddr>,
    /// UDP sockets bound per address (default 1); more than one share the port with
    /// SO_REUSEPORT, after an exclusive bind proved no other process holds it.
    pub udp_sockets: Option<usize>,
    /// Open TCP/TLS/WSS connections allowed from one IP address. Default 32.
    pub max_connections_per_ip: usize,
    /// Open TCP/TLS/WSS connections in all. Default 10 000.
    pub max_connections: usize,
    /// A connection with no traffic for this long is closed. Default "5m".
    #[serde(deserialize_with = "values::duration")]
    pub idle_timeout: Duration,
    /// Address written into Via, Contact and Record-Route when a listener is bound to a
    /// wildcard address (0.0.0.0 / ::). Default: the listener's own address.
    pub advertise: Option<IpAddr>,
}

impl Default for ListenConfig {
    fn default() -> Self {
        let lo = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5060);
        Self {
            udp: vec![lo],
            tcp: vec![lo],
            tls: Vec::new(),
            wss: Vec::new(),
            udp_sockets: None,
            max_connections_per_ip: 32,
            max_connections: 10_000,
            idle_timeout: Duration::from_secs(300),
            advertise: None,
        }
    }
}

/// `[tls]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Server certificate chain (PEM).
    pub cert: Option<PathBuf>,
    /// Server private key (PEM).
    pub key: Option<PathBuf>,
    /// Create a self-signed certificate at `cert`/`key` on first start if they are missing
    /// (for labs; a trunk provider will not trust it). Default false.
    pub generate_self_signed: bool,
    /// Lowest TLS version, "1.2" (default) or "1.3". Nothing older exists here.
    #[serde(deserialize_with = "values::tls_version")]
    pub min_version: TlsVersion,
    /// CA certificates (PEM) that outbound TLS trusts in addition to the system roots.
    pub ca_file: Option<PathBuf>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert: None,
            key: None,
            generate_self_signed: false,
            min_version: TlsVersion::V1_2,
            ca_file: None,
        }
    }
}

/// Lowest TLS version accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.2.
    V1_2,
    /// TLS 1.3.
    V1_3,
}

/// `[pbx]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct PbxConfig {
    /// Where calls to the PBX go. Default 127.0.0.1:5080.
    #[serde(deserialize_with = "values::socket_addr")]
    pub address: SocketAddr,
    /// Transport toward the PBX: "udp" (default), "tcp" or "tls".
    #[serde(deserialize_with = "values::outbound_transport")]
    pub transport: Transport,
    /// Source networks that are the PBX. Default: the address's IP alone.
    #[serde(deserialize_with = "values::networks")]
    pub networks: Vec<IpNet>,
}

impl Default for PbxConfig {
    fn default() -> Self {
        Self {
            address: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5080),
            transport: Transport::Udp,
            networks: Vec::new(),
        }
    }
}

impl PbxConfig {
    /// The networks that identify the PBX (the configured ones, or its address alone).
    pub fn source_networks(&self) -> Vec<IpNet> {
        if self.networks.is_empty() {
            vec![IpNet::from(self.address.ip())]
        } else {
            self.networks.clone()
        }
    }
}

/// `[[trunk]]`: one provider.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    /// Name, unique; used in logs, metrics and the admin API.
    pub name: String,
    /// Source networks calls from this provider come from (IP authentication). Required
    /// unless `networks_from_dns`.
    #[serde(default, deserialize_with = "values::networks")]
    pub networks: Vec<IpNet>,
    /// Where outbound calls go: `sip:host:port` (UDP, or `;transport=tcp`) or `sips:host:port`
    /// (TLS).
    #[serde(deserialize_with = "values::proxy")]
    pub proxy: values::Proxy,
    /// Digest username for the provider's challenges.
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the digest password (one line; keep it 0600).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// The password written in the configuration itself: convenient, and readable by anyone
    /// who can read the file.
    #[serde(default, deserialize_with = "values::opt_secret")]
    pub danger_password: Option<Secret<String>>,
    /// Numbers we own on this trunk (`"+15551230000-+15551230099"` or one number): calls from
    /// the provider to them go to the PBX.
    #[serde(default, deserialize_with = "values::number_ranges")]
    pub dids: Vec<NumberRange>,
    /// Which caller IDs the trunk carries (`[trunk.caller_id]`); off unless written.
    #[serde(default)]
    pub caller_id: Option<CallerIdConfig>,
    /// Longest call on this trunk. Default: `[calls] max_duration`.
    #[serde(default, deserialize_with = "values::opt_duration")]
    pub max_call_duration: Option<Duration>,
    /// OPTIONS to each of the trunk's addresses; down addresses are skipped by routing.
    /// Off unless the table is written.
    #[serde(default)]
    pub qualify: Option<QualifyConfig>,
    /// An INVITE to the trunk that gets no response at all in this time moves the call on
    /// to the next address or trunk of its route. Default "3s".
    #[serde(
        default = "default_failover_timeout",
        deserialize_with = "values::duration"
    )]
    pub failover_timeout: Duration,
    /// Failed calls in a row (no answer, 408, 5xx) that mark an address down for
    /// `down_for` (qualify, when on, brings it back sooner). Default 3.
    #[serde(default = "default_failures_to_down")]
    pub failures_to_down: u32,
    /// How long an address marked down by failed calls is skipped. Default "1m".
    #[serde(default = "default_down_for", deserialize_with = "values::duration")]
    pub down_for: Duration,
    /// Register to the carrier with the trunk's credentials. Off unless the table is
    /// written.
    #[serde(default)]
    pub registration: Option<RegistrationConfig>,
    /// Also recognise calls from the addresses the proxy's name resolves to as this
    /// trunk's, besides `networks`. Default false.
    #[serde(default)]
    pub networks_from_dns: bool,
}

fn default_failover_timeout() -> Duration {
    Duration::from_secs(3)
}

fn default_failures_to_down() -> u32 {
    3
}

fn default_down_for() -> Duration {
    Duration::from_secs(60)
}

/// `[calls]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct CallsConfig {
    /// Longest call; the gateway hangs up both legs after it. Default "4h".
    #[serde(deserialize_with = "values::duration")]
    pub max_duration: Duration,
    /// How long an unanswered call may ring. Default "3m".
    #[serde(deserialize_with = "values::duration")]
    pub ring_timeout: Duration,
    /// On SIGTERM, how long calls in progress may continue before they are hung up. Default
    /// "30s".
    #[serde(deserialize_with = "values::duration")]
    pub shutdown_grace: Duration,
    /// Most calls in progress at once. Default 10 000.
    pub max_calls: usize,
    /// Most addresses an outbound call tries, across its route's trunks and their
    /// addresses, before the PBX gets the failure. Between 1 and 16; default 4.
    pub max_attempts: usize,
    /// Extra headers (beyond the gateway's own set) copied from one leg to the other.
    pub header_allowlist: Vec<String>,
}

impl Default for CallsConfig {
    fn default() -> Self {
        Self {
            max_duration: Duration::from_secs(4 * 3600),
            ring_timeout: Duration::from_secs(180),
            shutdown_grace: Duration::from_secs(30),
            max_calls: 10_000,
            max_attempts: 4,
            header_allowlist: Vec::new(),
        }
    }
}

/// `[sip]`: parser limits (see `sipwarden_sip::Limits` for their meaning and defaults).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct SipConfig {
    /// Largest message in bytes. Default 65 535.
    pub max_message_bytes: usize,
    /// Largest header section in bytes. Default 16 384.
    pub max_head_bytes: usize,
    /// Most header rows. Default 100.
    pub max_headers: usize,
    /// Longest header row, folds included. Default 4 096.
    pub max_header_line: usize,
    /// Longest Request-URI. Default 1 024.
    pub max_uri_bytes: usize,
    /// Largest body. Default 32 768.
    pub max_body_bytes: usize,
    /// Most Via values. Default 64.
    pub max_vias: usize,
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: 65_535,
            max_head_bytes: 16_384,
            max_headers: 100,
            max_header_line: 4_096,
            max_uri_bytes: 1_024,
            max_body_bytes: 32_768,
            max_vias: 64,
        }
    }
}

/// `[transactions]`: RFC 3261 timer bases.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct TransactionsConfig {
    /// T1. Default "500ms".
    #[serde(deserialize_with = "values::duration")]
    pub t1: Duration,
    /// T2. Default "4s".
    #[serde(deserialize_with = "values::duration")]
    pub t2: Duration,
    /// T4. Default "5s".
    #[serde(deserialize_with = "values::duration")]
    pub t4: Duration,
    /// Most transactions at once (BYE and CANCEL are never refused). Transactions linger
    /// 64·T1 after they end over UDP, so N calls/s hold about 75·N. Default 250 000.
    pub max_transactions: usize,
}

impl Default for TransactionsConfig {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            max_transactions: 250_000,
        }
    }
}

/// `[admin]`: the admin HTTP API and `/metrics`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Listen address. Default 127.0.0.1:8080.
    #[serde(deserialize_with = "values::socket_addr")]
    pub listen: SocketAddr,
    /// File holding the bearer token (created with a random token on first start if
    /// missing).
    pub token_file: Option<PathBuf>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080),
            token_file: None,
        }
    }
}

/// `[storage]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Directory for the database and logs. Default "sipwarden-data".
    pub dir: PathBuf,
    /// Wait for the disk on every commit (survives power loss). Off by default: a commit
    /// then survives the process dying, which is what a restart needs, at a fraction of
    /// the cost.
    pub sync_full: bool,
    /// The security log in Asterisk's security-event format (for fail2ban's stock
    /// `asterisk` filter). Default `<dir>/security.log`.
    pub security_log: Option<PathBuf>,
    /// The same events, and bans, as JSON lines. Default `<dir>/events.jsonl`.
    pub events_log: Option<PathBuf>,
    /// Batches (one per round of the call core) queued for the writer, which stores and logs
    /// them off the call path. Default 1024.
    pub writer_queue: usize,
    /// Security and call events held while the writer's queue is full; more are dropped and
    /// counted. Default 100000.
    pub writer_backlog_events: usize,
    /// Binding and ban rows held while the writer's queue is full; beyond it a batch's rows
    /// are refused and the answers that would acknowledge them are not sent. Default 200000.
    pub writer_backlog_rows: usize,
    /// Security events, and call events, the call core holds until the server takes them.
    /// The server takes them every round, so this fills only when it falls behind; beyond
    /// it events are dropped and counted. Default 100000.
    pub event_queue: usize,
    /// Days call records are kept (in `<dir>/sipwarden.db`); older finished ones are
    /// deleted at start and every hour. Default 90.
    pub cdr_retention_days: u32,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("sipwarden-data"),
            sync_full: false,
            security_log: None,
            events_log: None,
            writer_queue: 1024,
            writer_backlog_events: 100_000,
            writer_backlog_rows: 200_000,
            event_queue: 100_000,
            cdr_retention_days: 90,
        }
    }
}

impl Config {
    /// Parses and validates a configuration. `file` names it in errors; relative paths in it
    /// stay as written (the caller resolves them against its working directory).
    pub fn from_toml(text: &str, file: Option<&Path>) -> Result<Self, Vec<ConfigError>> {
        let cfg: Self =
            toml::from_str(text).map_err(|e| vec![ConfigError::from_toml(&e, text, file)])?;
        let errors = cfg.validate(text, file);
        if errors.is_empty() {
            Ok(cfg)
        } else {
            Err(errors)
        }
    }

    /// Reads, parses and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, Vec<ConfigError>> {
        let text =
            std::fs::read_to_string(path).map_err(|e| vec![ConfigError::unreadable(path, &e)])?;
        Self::from_toml(&text, Some(path))
    }

    /// Checks that need more than one value at a time; reports every problem, not the first.
    fn validate(&self, text: &str, file: Option<&Path>) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        let mut err = |key: String, _name: Option<&str>, message: String| {
            errors.push(ConfigError::at_key(text, file, &key, message));
        };
        let l = &self.listen;
        if l.udp.is_empty() && l.tcp.is_empty() && l.tls.is_empty() && l.wss.is_empty() {
            err("listen".into(), None, "no listener configured".into());
        }
        if !self.listen.tls.is_empty() && (self.tls.cert.is_none() || self.tls.key.is_none()) {
            err(
                "listen.tls".into(),
                None,
                "TLS listeners need tls.cert and tls.key".into(),
            );
        }
        check_algorithms(
            "accounts.algorithms",
            &self.accounts.algorithms,
            &mut |k, m| err(k, None, m),
        );
        for (i, c) in self.accounts.clients.iter().enumerate() {
            let key = || "accounts.clients".to_owned();
            if c.user_agent.trim().is_empty() {
                err(
                    key(),
                    None,
                    format!("entry {}: user_agent must not be empty", i + 1),
                );
            }
            check_algorithms(&key(), &c.algorithms, &mut |k, m| {
                err(
                    k,
                    None,
                    format!("entry {} ({:?}): {m}", i + 1, c.user_agent),
                )
            });
        }
        if !self.listen.wss.is_empty() && (self.tls.cert.is_none() || self.tls.key.is_none()) {
            err(
                "listen.wss".into(),
                None,
                "WSS listeners need tls.cert and tls.key".into(),
            );
        }
        let b = &self.ban;
        if b.max_retry == 0 {
            err("ban.max_retry".into(), None, "must be at least 1".into());
        }
        if !(1.0..=100.0).contains(&b.escalate) {
            err(
                "ban.escalate".into(),
                None,
                "must lie between 1.0 and 100.0".into(),
            );
        }
        if b.max_entries == 0 {
            err("ban.max_entries".into(), None, "must be at least 1".into());
        }
        if b.ban_time > b.max_ban_time {
            err(
                "ban.ban_time".into(),
                None,
                "must not exceed ban.max_ban_time".into(),
            );
        }
        if let Some(set) = &b.nftables_set {
            let parts: Vec<&str> = set.split_whitespace().collect();
            let ok = parts.len() == 3
                && parts.iter().all(|p| {
                    p.bytes()
                        .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
                });
            if !ok {
                err(
                    "ban.nftables_set".into(),
                    None,
                    "must be \"FAMILY TABLE SET\", e.g. \"inet sipwarden banned\"".into(),
                );
            }
        }
        let rl = &self.ratelimit;
        for (key, v) in [
            ("ratelimit.per_ip_rps", rl.per_ip_rps),
            ("ratelimit.burst", rl.burst),
            ("ratelimit.register_rps", rl.register_rps),
            ("ratelimit.register_burst", rl.register_burst),
            ("ratelimit.invite_rps", rl.invite_rps),
            ("ratelimit.invite_burst", rl.invite_burst),
            ("ratelimit.options_rps", rl.options_rps),
            ("ratelimit.options_burst", rl.options_burst),
            (
                "ratelimit.global_invite_cps",
                rl.global_invite_cps.unwrap_or(1.0),
            ),
        ] {
            if !(v.is_finite() && v > 0.0) {
                err(key.into(), None, "must be a number above 0".into());
            }
        }
        if rl.max_tracked == 0 {
            err(
                "ratelimit.max_tracked".into(),
                None,
                "must be at least 1".into(),
            );
        }
        let r = &self.registrar;
        if r.min_expires > r.max_expires {
            err(
                "registrar.min_expires".into(),
                None,
                "must not exceed registrar.max_expires".into(),
            );
        }
        if r.default_expires < r.min_expires || r.default_expires > r.max_expires {
            err(
                "registrar.default_expires".into(),
                None,
                "must lie between min_expires and max_expires".into(),
            );
        }
        if r.max_bindings == 0 {
            err(
                "registrar.max_bindings".into(),
                None,
                "must be at least 1".into(),
            );
        }
        for (key, v) in [
            ("storage.writer_queue", self.storage.writer_queue),
            (
                "storage.writer_backlog_events",
                self.storage.writer_backlog_events,
            ),
            (
                "storage.writer_backlog_rows",
                self.storage.writer_backlog_rows,
            ),
            (
                "storage.cdr_retention_days",
                self.storage.cdr_retention_days as usize,
            ),
        ] {
            if v == 0 {
                err(key.into(), None, "must be at least 1".into());
            }
        }
        // Zero would leave no room at all; beyond the ceiling a table's memory is no longer
        // a bound anyone meant (an entry takes a hundred bytes or more).
        for (key, v, most) in [
            ("accounts.max_nonces", self.accounts.max_nonces, MAX_TABLE),
            ("ban.max_tracked", b.max_tracked, MAX_TABLE),
            ("storage.event_queue", self.storage.event_queue, MAX_TABLE),
            // Looked through one by one at each success of the account.
            (
                "ban.account_known_addresses",
                b.account_known_addresses,
                1024,
            ),
        ] {
            if !(1..=most).contains(&v) {
                err(key.into(), None, format!("must lie between 1 and {most}"));
            }
        }
        // Shorter, and a slow phone's answer finds its nonce stale; longer, and a captured
        // nonce stays good for that long.
        if !(Duration::from_secs(10)..=Duration::from_secs(3600))
            .contains(&self.accounts.nonce_lifetime)
        {
            err(
                "accounts.nonce_lifetime".into(),
                None,
                "must lie between 10s and 1h".into(),
            );
        }
        let mut names: Vec<&str> = Vec::new();
        for (i, t) in self.trunks.iter().enumerate() {
            let key = |k: &str| format!("trunk[{i}].{k}");
            if t.name.is_empty()
                || !t
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                err(
                    key("name"),
                    Some(&t.name),
                    format!(
                        "trunk name {:?} must be letters, digits, '-' or '_'",
                        t.name
                    ),
                );
            }
            if names.contains(&t.name.as_str()) {
                err(
                    key("name"),
                    Some(&t.name),
                    format!("trunk name {:?} is used twice", t.name),
                );
            }
            names.push(&t.name);
            if let Some(c) = &t.caller_id {
                caller_id::validate(c, &t.dids, &mut |k, m| {
                    err(key(&format!("caller_id.{k}")), Some(&t.name), m);
                });
            }
            if t.networks.is_empty() && !t.networks_from_dns {
                err(
                    key("networks"),
                    Some(&t.name),
                    "a trunk needs the networks its calls come from".into(),
                );
            }
            if t.password_file.is_some() && t.danger_password.is_some() {
                err(
                    key("danger_password"),
                    Some(&t.name),
                    "set password_file or danger_password, not both".into(),
                );
            }
            if (t.password_file.is_some() || t.danger_password.is_some()) && t.username.is_none() {
                err(
                    key("username"),
                    Some(&t.name),
                    "a password needs a username".into(),
                );
            }
            for net in &t.networks {
                if self
                    .pbx
                    .source_networks()
                    .iter()
                    .any(|p| p.contains(net) || net.contains(p))
                {
                    err(
                        key("networks"),
                        Some(&t.name),
                        format!("network {net} overlaps the PBX's networks"),
                    );
                }
            }
        }
        routing::validate(self, &mut |key, message| err(key, None, message));
        if let Some(m) = &self.media {
            media::validate(m, &mut |key, message| err(key, None, message));
        }
        if let Some(p) = &self.policy {
            let trunks: Vec<&str> = self.trunks.iter().map(|t| t.name.as_str()).collect();
            policy::validate(p, &trunks, &mut |key, message| err(key, None, message));
        }
        errors
    }

    /// The trunk named `name`.
    pub fn trunk(&self, name: &str) -> Option<&TrunkConfig> {
        self.trunks.iter().find(|t| t.name == name)
    }
}

impl TrunkConfig {
    /// The digest password: read from `password_file` (first line, trimmed), or
    /// `danger_password`. `None` when the trunk has no credentials.
    pub fn password(&self) -> Result<Option<Secret<String>>, ConfigError> {
        if let Some(p) = &self.danger_password {
            return Ok(Some(p.clone()));
        }
        let Some(path) = &self.password_file else {
            return Ok(None);
        };
        // The whole file is a secret too: wiped once the password is out of it.
        let text = Secret::new(std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: Some(path.clone()),
            line: None,
            key: Some(format!("trunk {}: password_file", self.name)),
            message: format!("cannot read: {e}"),
        })?);
        let pw = Secret::new(text.expose().lines().next().unwrap_or("").trim().to_owned());
        if pw.expose().is_empty() {
            return Err(ConfigError {
                file: Some(path.clone()),
                line: Some(1),
                key: Some(format!("trunk {}: password_file", self.name)),
                message: "the password file is empty".into(),
            });
        }
        Ok(Some(pw))
    }

    /// Whether `number` (any spelling) is one of this trunk's DIDs.
    pub fn owns(&self, number: &str) -> bool {
        let Some(n) = canonical_number(number) else {
            return false;
        };
        self.dids.iter().any(|r| r.contains(&n))
    }
}

/// Digest algorithms a challenge may offer: at least one, each a non-session algorithm.
fn check_algorithms(key: &str, list: &[String], err: &mut dyn FnMut(String, String)) {
    if list.is_empty() {
        err(
            key.to_owned(),
            "must name at least one of MD5, SHA-256, SHA-512-256".into(),
        );
    }
    for a in list {
        let ok = sipwarden_sip::digest::Algorithm::from_token(a).is_some_and(|x| !x.is_session());
        if !ok {
            err(
                key.to_owned(),
                format!("{a:?} is not one of MD5, SHA-256, SHA-512-256"),
            );
        }
    }
}

#[cfg(test)]
mod tests;
