//! Zones and routes: which peer a source address is, and where a new call goes.
//!
//! Built once from the configuration and swapped whole on reload, so a call in progress keeps
//! the routes it started with.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::Arc;

use ipnet::IpNet;
use sipwarden_config::{AccountsFile, Config, ConfigError, NumberRange, canonical_number};
use sipwarden_sip::{Peer, Secret};

/// Which side of the gateway a source is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zone {
    /// The PBX.
    Pbx,
    /// A configured trunk (index into [`Routes::trunks`]).
    Trunk(usize),
    /// Everyone else: must authenticate.
    Endpoint,
}

impl Zone {
    /// The zone as call policies and call events name it (trunks by name, not index).
    pub fn origin(self) -> sipwarden_stages::Origin {
        match self {
            Self::Pbx => sipwarden_stages::Origin::Pbx,
            Self::Trunk(_) => sipwarden_stages::Origin::Trunk,
            Self::Endpoint => sipwarden_stages::Origin::Endpoint,
        }
    }
}

/// The user part of a request's Request-URI, unescaped: the number or extension called.
pub(crate) fn callee_of(msg: &sipwarden_sip::Message) -> String {
    msg.request_uri()
        .and_then(|u| {
            u.user()
                .map(|s| String::from_utf8_lossy(&sipwarden_sip::unescape(s)).into_owned())
        })
        .unwrap_or_default()
}

/// The user part of a request's From URI, unescaped: the caller as it presents itself.
pub(crate) fn caller_of(msg: &sipwarden_sip::Message) -> String {
    msg.from_user()
        .map(|s| String::from_utf8_lossy(&sipwarden_sip::unescape(s)).into_owned())
        .unwrap_or_default()
}

/// A trunk as the call path needs it.
#[derive(Clone, Debug)]
pub struct TrunkRoute {
    /// Name.
    pub name: String,
    /// Source networks.
    pub networks: Vec<IpNet>,
    /// Where outbound calls go, as RFC 3263 locates it (the server resolves names).
    pub proxy: sipwarden_dns::Spec,
    /// The targets of a proxy given as an address: known without DNS. `None` for a name.
    pub fixed_targets: Option<Arc<[sipwarden_dns::Target]>>,
    /// Host part used in Request-URI, From and To toward the provider.
    pub host: String,
    /// Digest credentials for the provider's challenges: user name and password.
    pub credentials: Option<(String, Secret<String>)>,
    /// Owned numbers.
    pub dids: Vec<NumberRange>,
    /// Longest call.
    pub max_duration: Duration,
    /// No response at all to an INVITE in this time moves the call on.
    pub failover_timeout: Duration,
    /// Failed calls in a row that mark an address down, and for how long.
    pub failures_to_down: u32,
    /// How long an address marked down by failed calls is skipped.
    pub down_for: Duration,
    /// OPTIONS to each address, when on.
    pub qualify: Option<sipwarden_config::QualifyConfig>,
    /// Registration to the carrier, when on (with `credentials`).
    pub registration: Option<sipwarden_config::RegistrationConfig>,
    /// The configured source networks; `networks` adds the resolved addresses to them when
    /// `networks_from_dns` is on.
    pub configured_networks: Vec<IpNet>,
    /// Whether the addresses the proxy's name resolves to count as the trunk's too.
    pub networks_from_dns: bool,
}

/// An outbound route: numbers starting with `prefix` go to these trunks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutRoute {
    /// Canonical digits; empty for every number.
    pub prefix: String,
    /// (trunk index, priority, weight): lower priority first, weight among equals.
    pub trunks: Vec<(usize, u16, u16)>,
    /// Trunk indexes tried in order after `trunks`.
    pub fallback: Vec<usize>,
}

/// Everything routing needs, from one configuration.
#[derive(Clone, Debug)]
pub struct Routes {
    /// PBX target.
    pub pbx: Peer,
    /// PBX source networks.
    pub pbx_networks: Vec<IpNet>,
    /// Trunks, in configuration order.
    pub trunks: Vec<TrunkRoute>,
    /// Outbound routes from the PBX, longest prefix first; without `[[route]]` tables, one
    /// route over every trunk in configuration order.
    pub outbound: Vec<OutRoute>,
    /// Most addresses one outbound call tries.
    pub max_attempts: usize,
    /// Most addresses kept per trunk from DNS.
    pub max_addresses: usize,
    /// Longest call by default.
    pub max_duration: Duration,
    /// How long a call may ring.
    pub ring_timeout: Duration,
    /// Most calls at once.
    pub max_calls: usize,
    /// Extra header names copied across legs.
    pub header_allowlist: Vec<String>,
    /// The endpoint zone's accounts (empty without an accounts file: nobody registers).
    pub accounts: Arc<AccountsFile>,
    /// Which digest challenges each client family gets.
    pub challenges: crate::endpoint_auth::ChallengeTable,
    /// The digest nonces' lifetime and the bound of the used-nonce table.
    pub nonces: crate::endpoint_auth::NonceSettings,
    /// Security events, and call events, held until the server takes them
    /// (`storage.event_queue`); beyond it they are dropped and counted.
    pub event_queue: usize,
    /// Registration lifetimes.
    pub registrar: RegistrarSettings,
    /// The edge stages' settings.
    pub defence: crate::defence::DefenceSettings,
}

/// Registration lifetimes and keep-alives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistrarSettings {
    /// Shorter registrations get 423 Interval Too Brief.
    pub min_expires: Duration,
    /// Longer ones are shortened to this.
    pub max_expires: Duration,
    /// Granted when the phone asks for none.
    pub default_expires: Duration,
    /// OPTIONS toward phones registered over UDP this often (NAT keep-alive).
    pub udp_ping: Option<Duration>,
    /// Most bindings in the location table, all accounts together; a REGISTER that would
    /// add one more gets 503.
    pub max_bindings: usize,
}

/// Why [`Routes`] could not be built from a configuration. Every variant is the
/// configuration's fault (or the files it names): the operator fixes it, and a reload that
/// fails keeps the routes in force.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// A trunk's `password_file` cannot be read, or is empty. The configuration error names
    /// the file and the trunk.
    #[error("{source}")]
    TrunkPassword {
        /// The trunk's name.
        trunk: String,
        /// What is wrong with the file.
        #[source]
        source: ConfigError,
    },
    /// The accounts file cannot be read: missing, or not readable by the gateway's user.
    #[error("{}: cannot read the accounts file: {source}", path.display())]
    AccountsUnreadable {
        /// The file, as configured.
        path: PathBuf,
        /// The reason.
        #[source]
        source: std::io::Error,
    },
    /// The accounts file was read but refused: each problem names its line and key.
    #[error("{}", join_lines(errors))]
    BadAccounts {
        /// The file, as configured.
        path: PathBuf,
        /// Every problem found, in file order.
        errors: Vec<ConfigError>,
    },
}

/// One problem a line, as the configuration's own errors are reported.
fn join_lines(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads and checks the accounts file. Read here rather than with [`AccountsFile::load`] so
/// that an unreadable file keeps its I/O error as the source.
fn load_accounts(path: &Path) -> Result<AccountsFile, RouteError> {
    let text = std::fs::read_to_string(path).map_err(|source| RouteError::AccountsUnreadable {
        path: path.to_owned(),
        source,
    })?;
    AccountsFile::from_toml(&text, Some(path)).map_err(|errors| RouteError::BadAccounts {
        path: path.to_owned(),
        errors,
    })
}

/// The `[[route]]` tables as indexes, longest prefix first; without any, one route over every
/// trunk, the first preferred and the others tried in order after it.
fn outbound_routes(cfg: &Config) -> Vec<OutRoute> {
    let index = |name: &str| cfg.trunks.iter().position(|t| t.name == name);
    let mut routes: Vec<OutRoute> = cfg
        .routes
        .iter()
        .map(|r| OutRoute {
            prefix: r.digits(),
            trunks: r
                .trunks
                .iter()
                .enumerate()
                .filter_map(|(pos, t)| {
                    let i = index(t.name())?;
                    let (priority, weight) = match t {
                        sipwarden_config::RouteTrunk::Name(_) => (pos, 1),
                        sipwarden_config::RouteTrunk::Weighted {
                            priority, weight, ..
                        } => (priority.map_or(pos, usize::from), weight.unwrap_or(1)),
                    };
                    Some((i, u16::try_from(priority).unwrap_or(u16::MAX), weight))
                })
                .collect(),
            fallback: r.fallback.iter().filter_map(|n| index(n)).collect(),
        })
        .collect();
    if routes.is_empty() && !cfg.trunks.is_empty() {
        routes.push(OutRoute {
            prefix: String::new(),
            trunks: vec![(0, 0, 1)],
            fallback: (1..cfg.trunks.len()).collect(),
        });
    }
    routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
    routes
}

impl Routes {
    /// Builds routes from a validated configuration; passwords and the accounts file are
    /// read here. Trunks named by DNS start with no address: the server resolves them and
    /// hands the core their targets.
    pub fn from_config(cfg: &Config) -> Result<Self, RouteError> {
        let mut trunks = Vec::with_capacity(cfg.trunks.len());
        for t in &cfg.trunks {
            let password = t.password().map_err(|source| RouteError::TrunkPassword {
                trunk: t.name.clone(),
                source,
            })?;
            let credentials = match (&t.username, password) {
                (Some(u), Some(p)) => Some((u.clone(), p)),
                _ => None,
            };
            let proxy = sipwarden_dns::Spec {
                host: t.proxy.host.clone(),
                port: t.proxy.explicit_port.then_some(t.proxy.port),
                transport: t.proxy.explicit_transport.then_some(t.proxy.transport),
                secure: t
                    .proxy
                    .uri
                    .get(..5)
                    .is_some_and(|s| s.eq_ignore_ascii_case("sips:")),
            };
            // An address needs no look-up: its one target is known now.
            let mut lookup = sipwarden_dns::Lookup::new(proxy.clone());
            let fixed_targets = match lookup.next_query() {
                None => lookup.finish().ok().map(|r| Arc::from(r.targets)),
                Some(_) => None,
            };
            trunks.push(TrunkRoute {
                name: t.name.clone(),
                networks: t.networks.clone(),
                proxy,
                fixed_targets,
                host: if t.proxy.is_name() && t.proxy.explicit_port {
                    format!("{}:{}", t.proxy.host, t.proxy.port)
                } else {
                    t.proxy.host.clone()
                },
                credentials,
                dids: t.dids.clone(),
                max_duration: t.max_call_duration.unwrap_or(cfg.calls.max_duration),
                failover_timeout: t.failover_timeout,
                failures_to_down: t.failures_to_down,
                down_for: t.down_for,
                qualify: t.qualify.clone(),
                registration: t.registration.clone(),
                configured_networks: t.networks.clone(),
                networks_from_dns: t.networks_from_dns,
            });
        }
        let accounts = match &cfg.accounts.file {
            Some(path) => load_accounts(path)?,
            None => AccountsFile {
                realm: "voip".to_owned(),
                accounts: Vec::new(),
            },
        };
        let challenges = crate::endpoint_auth::ChallengeTable::from_config(&cfg.accounts);
        let r = &cfg.registrar;
        let mut trusted = cfg.pbx.source_networks();
        for t in &trunks {
            trusted.extend(t.networks.iter().copied());
        }
        let defence = crate::defence::DefenceSettings::from_config(cfg, trusted);
        Ok(Self {
            defence,
            accounts: Arc::new(accounts),
            challenges,
            nonces: crate::endpoint_auth::NonceSettings::from_config(&cfg.accounts),
            event_queue: cfg.storage.event_queue,
            registrar: RegistrarSettings {
                min_expires: r.min_expires,
                max_expires: r.max_expires,
                default_expires: r.default_expires,
                udp_ping: r.udp_ping,
                max_bindings: r.max_bindings,
            },
            pbx: Peer {
                transport: cfg.pbx.transport,
                addr: cfg.pbx.address,
                flow: None,
            },
            pbx_networks: cfg.pbx.source_networks(),
            outbound: outbound_routes(cfg),
            max_attempts: cfg.calls.max_attempts,
            max_addresses: cfg.dns.max_addresses,
            trunks,
            max_duration: cfg.calls.max_duration,
            ring_timeout: cfg.calls.ring_timeout,
            max_calls: cfg.calls.max_calls,
            header_allowlist: cfg.calls.header_allowlist.clone(),
        })
    }

    /// The zone of a source address. Longest matching prefix wins; IPv4-mapped IPv6
    /// addresses are treated as the IPv4 address they carry.
    pub fn zone(&self, ip: IpAddr) -> Zone {
        let ip = ip.to_canonical();
        let mut best: Option<(u8, Zone)> = None;
        let mut consider = |nets: &[IpNet], zone: Zone| {
            for n in nets.iter().filter(|n| n.contains(&ip)) {
                if best.is_none_or(|(len, _)| n.prefix_len() > len) {
                    best = Some((n.prefix_len(), zone));
                }
            }
        };
        consider(&self.pbx_networks, Zone::Pbx);
        for (i, t) in self.trunks.iter().enumerate() {
            consider(&t.networks, Zone::Trunk(i));
        }
        best.map_or(Zone::Endpoint, |(_, z)| z)
    }

    /// The outbound route of a dialled number (any spelling): the longest matching prefix.
    pub fn outbound_route(&self, number: &str) -> Option<usize> {
        let n = canonical_number(number).unwrap_or_default();
        // Longest prefix first (sorted so at build).
        self.outbound.iter().position(|r| n.starts_with(&r.prefix))
    }

    /// The trunk that owns `number` (any spelling), if any.
    pub fn did_owner(&self, number: &str) -> Option<usize> {
        let n = canonical_number(number)?;
        self.trunks
            .iter()
            .position(|t| t.dids.iter().any(|r| r.contains(&n)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_by_longest_prefix() {
        let cfg = Config::from_toml(
            "[pbx]\nnetworks = [\"10.0.0.0/8\"]\n[[trunk]]\nname = \"a\"\nnetworks = [\"192.0.2.0/24\"]\nproxy = \"sip:192.0.2.1\"\ndids = [\"+15551230000-+15551230099\"]\n",
            None,
        )
        .unwrap();
        let r = Routes::from_config(&cfg).unwrap();
        assert_eq!(r.zone("10.1.2.3".parse().unwrap()), Zone::Pbx);
        assert_eq!(r.zone("192.0.2.77".parse().unwrap()), Zone::Trunk(0));
        assert_eq!(r.zone("::ffff:192.0.2.77".parse().unwrap()), Zone::Trunk(0));
        assert_eq!(r.zone("203.0.113.9".parse().unwrap()), Zone::Endpoint);
        assert_eq!(r.did_owner("+1 555 123 0007"), Some(0));
        assert_eq!(r.did_owner("+15551239999"), None);
        // A trunk named by DNS has no address until the server resolves it.
        let named = Config::from_toml("[[trunk]]\nname = \"a\"\nnetworks = [\"192.0.2.0/24\"]\nproxy = \"sips:carrier.example\"\n", None).unwrap();
        let r = Routes::from_config(&named).unwrap();
        let t = &r.trunks[0];
        assert!(t.fixed_targets.is_none());
        assert_eq!(t.host, "carrier.example");
        assert_eq!(
            t.proxy,
            sipwarden_dns::Spec {
                host: "carrier.example".into(),
                port: None,
                transport: Some(sipwarden_sip::header::Transport::Tls),
                secure: true
            }
        );
    }

    fn with_accounts(path: &Path) -> Config {
        let toml = format!("[accounts]\nfile = {:?}\n", path.display().to_string());
        Config::from_toml(&toml, None).unwrap()
    }

    #[test]
    fn an_unreadable_accounts_file_is_named_with_its_io_error() {
        use std::error::Error as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accounts.toml");
        let e = Routes::from_config(&with_accounts(&path)).unwrap_err();
        assert!(
            matches!(&e, RouteError::AccountsUnreadable { path: p, .. } if *p == path),
            "{e:?}"
        );
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
        let io = e
            .source()
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .map(std::io::Error::kind);
        assert_eq!(io, Some(std::io::ErrorKind::NotFound), "{e}");
    }

    #[test]
    fn a_bad_accounts_file_lists_every_problem_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accounts.toml");
        std::fs::write(
            &path,
            "realm = \"r\"\n[[account]]\nuser = \"1001\"\nha1_md5 = \"XYZ\"\n[[account]]\nuser = \"a b\"\n",
        )
        .unwrap();
        let e = Routes::from_config(&with_accounts(&path)).unwrap_err();
        let RouteError::BadAccounts { path: p, errors } = &e else {
            panic!("{e:?}");
        };
        assert_eq!(*p, path);
        assert!(errors.len() >= 2, "{errors:?}");
        let text = e.to_string();
        assert!(
            text.contains(&format!("{}:4: account[0].ha1_md5", path.display())),
            "{text}"
        );
        assert_eq!(text.lines().count(), errors.len(), "one problem a line");
    }

    #[test]
    fn a_missing_trunk_password_file_names_the_trunk_and_keeps_the_config_error() {
        use std::error::Error as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("carrier.secret");
        let toml = format!(
            "[[trunk]]\nname = \"carrier\"\nnetworks = [\"192.0.2.0/24\"]\nproxy = \"sip:192.0.2.1\"\nusername = \"u\"\npassword_file = {:?}\n",
            path.display().to_string()
        );
        let cfg = Config::from_toml(&toml, None).unwrap();
        let e = Routes::from_config(&cfg).unwrap_err();
        assert!(
            matches!(&e, RouteError::TrunkPassword { trunk, .. } if trunk == "carrier"),
            "{e:?}"
        );
        let text = e.to_string();
        assert!(
            text.contains(&path.display().to_string()) && text.contains("cannot read"),
            "{text}"
        );
        let cause = e.source().and_then(|s| s.downcast_ref::<ConfigError>());
        assert_eq!(cause.and_then(|c| c.file.as_deref()), Some(path.as_path()));
    }
}
