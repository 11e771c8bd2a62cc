//! Checks on sipwarden's own TOML configuration (rule ids `SW-CONF-NNN`).
//!
//! The file is read by `sipwarden_config`, as `sipwarden serve` reads it: the values the rules
//! judge (durations, addresses, the trunks' proxies) are the typed [`Config`], and the line of
//! each key comes from [`KeyLines`], built by the same TOML parser. So the audit and the
//! gateway cannot read a file differently, and a file the gateway would refuse is an
//! [`AuditError::Config`] listing every error with its key and line (exit status 2): judging
//! settings the gateway would not run with would only mislead. Unset keys are judged by the
//! configuration's defaults (listeners and admin API on loopback, scanner on), which audit
//! clean: no finding at any severity.
//!
//! Some protections the audit recommends do not exist in this version's configuration yet
//! (per-trunk SRTP and fraud limits, a destination policy). They are listed once, in
//! [`PLANNED_KEYS`]: the rules name them from there, an error about one of them says it is
//! planned, and a test fails as soon as the configuration accepts one, so that its rule starts
//! reading it.
//!
//! Files the configuration names (TLS key and certificates, password and token files, the
//! accounts file) get the [`files`](super::files) checks, pointed at the line naming them.
//! Relative paths are resolved as `sipwarden serve` does, against the working directory, and
//! failing that against the configuration's own directory.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sipwarden_config::{AccountsFile, Config, ConfigError, KeyLines};

use super::files;
use crate::secret;
use crate::{AuditError, Finding, Location, Rule, Severity};

/// A `danger_*` switch is on.
pub const DANGER_SWITCH: Rule = Rule {
    id: "SW-CONF-001",
    severity: Severity::High,
    title: "An insecure danger_* switch is set",
    fix: "Remove the danger_* key; every danger_* switch turns off a protection and exists for labs \
          and emergencies only.",
};

/// A password written in the configuration.
pub const PLAIN_PASSWORD: Rule = Rule {
    id: "SW-CONF-002",
    severity: Severity::Critical,
    title: "Plain password in the configuration file",
    fix: "Move the password to its own file readable by the service only and name it with \
          password_file = \"/etc/sipwarden/NAME.secret\" (chmod 600); rotate the password, since \
          every copy and backup of this file holds it.",
};

/// A weak trunk password or admin token.
pub const WEAK_SECRET: Rule = Rule {
    id: "SW-CONF-003",
    severity: Severity::High,
    title: "Weak password or token",
    fix: "Replace it with a generated one: sipwarden secret generate > FILE (24 random characters), \
          and set it at the provider too.",
};

/// A defence stage turned off.
pub const STAGE_DISABLED: Rule = Rule {
    id: "SW-CONF-010",
    severity: Severity::High,
    title: "A defence stage is disabled",
    fix: "Remove [scanner] enabled = false, or the empty patterns list that replaces the \
          built-in fingerprints; tune the stage's limits instead of turning it off.",
};

/// A defence stage tuned so loosely it barely acts.
pub const STAGE_WEAKENED: Rule = Rule {
    id: "SW-CONF-011",
    severity: Severity::Medium,
    title: "Ban settings let password guessing run",
    fix: "Keep [ban] max_retry at 10 or less, ban_time at 5m or more and account_max_retry above \
          0 (defaults: 5, 1h and 20), so a guesser gets a handful of tries per ban, not thousands.",
};

/// Plain UDP/TCP SIP on a non-loopback address.
pub const CLEARTEXT_LISTENER: Rule = Rule {
    id: "SW-CONF-020",
    severity: Severity::High,
    title: "SIP without TLS on a non-loopback address",
    fix: "Offer SIP over TLS to remote phones ([listen] tls = [\"0.0.0.0:5061\"] with [tls] cert \
          and key) and keep udp/tcp on loopback or a private network; if UDP must face the \
          internet, restrict it with [acl] allow lists.",
};

/// Digest challenges weaker than a client family can answer.
pub const WEAK_CHALLENGES: Rule = Rule {
    id: "SW-CONF-012",
    severity: Severity::Low,
    title: "Phones that answer SHA-256 digests are offered MD5 first",
    fix: "Give families that answer SHA-256 (RFC 8760) their SHA-256 challenge first: remove the \
          [accounts] clients entry that lists MD5 first for them, or keep builtin_clients = true. \
          A SHA-256 response captured from a clear-text link costs an offline guesser more than an \
          MD5 one; strong passwords and TLS matter more (docs/phones.md explains the trade-off).",
};

/// A trunk that does not require SRTP.
pub const TRUNK_NO_SRTP: Rule = Rule {
    id: "SW-CONF-030",
    severity: Severity::Medium,
    title: "Trunk does not require encrypted media (SRTP)",
    fix: "This version cannot yet require SRTP per trunk (`require_srtp`, DESIGN §6, comes with \
          the SRTP policy; its configuration refuses the key until then): use the provider's \
          TLS endpoint with SRTP, and require SRTP of phones with media_encryption = \"required\" \
          in their accounts.",
};

/// A trunk whose signalling is not TLS.
pub const TRUNK_NO_TLS: Rule = Rule {
    id: "SW-CONF-031",
    severity: Severity::Medium,
    title: "Trunk signalling is not encrypted",
    fix: "Use the provider's TLS endpoint: proxy = \"sips:sip.provider.example:5061\"; over UDP or \
          TCP the digest, numbers and SDP keys travel in clear.",
};

/// A trunk reached over UDP (or TCP) at a DNS name.
pub const TRUNK_NAME_NO_TLS: Rule = Rule {
    id: "SW-CONF-032",
    severity: Severity::Medium,
    title: "Trunk found by DNS without TLS",
    fix: "Use the provider's TLS endpoint (proxy = \"sips:sip.provider.example\"): TLS verifies \
          the certificate against the name, so a forged or poisoned DNS answer cannot send calls \
          and the trunk's digest elsewhere. Over UDP or TCP the name is trusted as DNS answers \
          it; if TLS is not offered, give the proxy as an address.",
};

/// An outbound route with a single trunk and no fallback.
pub const ROUTE_NO_FALLBACK: Rule = Rule {
    id: "SW-CONF-033",
    severity: Severity::Low,
    title: "Outbound route without a fallback trunk",
    fix: "Name a second carrier in the route's trunks or fallback = [\"...\"]: when the only \
          trunk fails or is marked down, every call on the route fails.",
};

/// Trunks while media is not anchored in the gateway.
pub const NO_MEDIA_ANCHOR: Rule = Rule {
    id: "SW-CONF-034",
    severity: Severity::Medium,
    title: "Media not anchored: the PBX's media address reaches the trunks",
    fix: "Add [media] with the gateway's addresses facing the PBX and facing the trunks \
          (inside, outside; docs/media.md): every call's audio then goes through the gateway's \
          relay, the PBX needs no route to the internet, and RTP from anyone but the call's \
          own parties is dropped.",
};

/// rtpengine's control protocol sent beyond this host and its private networks.
pub const RTPENGINE_PUBLIC: Rule = Rule {
    id: "SW-CONF-035",
    severity: Severity::High,
    title: "rtpengine control over a public network",
    fix: "Run rtpengine on this host or on a private network (rtpengine = \"127.0.0.1:2223\"): \
          its ng protocol has no authentication, so whoever can answer for that address writes \
          the SDP of every call, and so where its audio goes.",
};

/// A trunk with no fraud limits or spend cap.
pub const TRUNK_NO_FRAUD_LIMITS: Rule = Rule {
    id: "SW-CONF-040",
    severity: Severity::High,
    title: "Trunk without fraud limits or spend cap",
    fix: "Cap what a compromise can cost (docs/fraud.md): [[policy.limits]] on the trunk with \
          kind = \"concurrent\" and kind = \"calls_per_second\" (or per minute), and a \
          [[policy.spend.caps]] with a daily cap and a rate table, enforced, not in monitor \
          mode; also set a daily spend limit at the provider, and keep [ratelimit] \
          global_invite_cps, [calls] max_calls and the trunk's max_call_duration.",
};

/// No destination policy while trunks exist.
pub const NO_DESTINATION_POLICY: Rule = Rule {
    id: "SW-CONF-041",
    severity: Severity::Medium,
    title: "No destination policy (premium and high-risk countries callable)",
    fix: "Say where calls may go: [policy] allow_countries = [\"US\", \"CA\"] (the countries \
          you call) and block_countries = [\"high-risk\", \"premium\", \"satellite\"] (the \
          shipped lists), in mode = \"enforce\" once monitor mode has shown what they would \
          refuse; also block premium and high-risk destinations at the provider.",
};

/// Admin API reachable from other machines.
pub const ADMIN_PUBLIC: Rule = Rule {
    id: "SW-CONF-050",
    severity: Severity::High,
    title: "Admin API on a non-loopback address",
    fix: "Keep [admin] listen = \"127.0.0.1:8080\" and reach it through SSH or a VPN; the admin \
          API can unban attackers and enable trunks.",
};

/// The rules of this module.
pub const RULES: &[Rule] = &[
    DANGER_SWITCH,
    PLAIN_PASSWORD,
    WEAK_SECRET,
    STAGE_DISABLED,
    STAGE_WEAKENED,
    WEAK_CHALLENGES,
    CLEARTEXT_LISTENER,
    TRUNK_NO_SRTP,
    TRUNK_NO_TLS,
    TRUNK_NAME_NO_TLS,
    ROUTE_NO_FALLBACK,
    NO_MEDIA_ANCHOR,
    RTPENGINE_PUBLIC,
    TRUNK_NO_FRAUD_LIMITS,
    NO_DESTINATION_POLICY,
    ADMIN_PUBLIC,
];

/// A setting the audit recommends that this version's configuration does not have yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlannedKey {
    /// Its dotted path in the file, as DESIGN §6 sketches it (`trunk.max_cps`).
    pub key: &'static str,
    /// The rule that reports its absence.
    pub rule: &'static str,
    /// The capability it comes with.
    pub comes_with: &'static str,
}

/// Every key the audit recommends that the configuration refuses today, in one place. When
/// the configuration gains one, `planned_keys_are_still_refused` fails: move the key from here
/// into its rule's checks.
pub const PLANNED_KEYS: &[PlannedKey] = &[PlannedKey {
    key: "trunk.require_srtp",
    rule: TRUNK_NO_SRTP.id,
    comes_with: "the SRTP policy",
}];

/// What of the fraud limits a trunk lacks: an enforced concurrent-call limit, an enforced
/// call-rate limit and an enforced spend cap that count its calls (scope `trunk` naming it or
/// every trunk, or scope `all`).
fn missing_fraud_limits(config: &Config, trunk: &str) -> Vec<&'static str> {
    use sipwarden_config::{LimitKind, LimitScope, PolicyMode, SpendScope};
    let Some(p) = &config.policy else {
        return vec!["concurrent-call limit", "call-rate limit", "spend cap"];
    };
    let covers = |scope_trunk: bool, scope_all: bool, subject: &Option<String>| {
        scope_all || (scope_trunk && subject.as_deref().is_none_or(|s| s == trunk))
    };
    let limit = |kinds: &[LimitKind]| {
        p.limits.iter().any(|l| {
            kinds.contains(&l.kind)
                && l.mode_in(p) == PolicyMode::Enforce
                && covers(
                    l.scope == LimitScope::Trunk,
                    l.scope == LimitScope::All,
                    &l.subject,
                )
        })
    };
    let mut missing = Vec::new();
    if !limit(&[LimitKind::Concurrent]) {
        missing.push("concurrent-call limit");
    }
    if !limit(&[LimitKind::CallsPerSecond, LimitKind::CallsPerMinute]) {
        missing.push("call-rate limit");
    }
    let capped = p.spend.as_ref().is_some_and(|s| {
        s.rates.is_some()
            && s.caps.iter().any(|c| {
                c.mode_in(p) == PolicyMode::Enforce
                    && covers(
                        c.scope == SpendScope::Trunk,
                        c.scope == SpendScope::All,
                        &c.subject,
                    )
            })
    });
    if !capped {
        missing.push("spend cap");
    }
    missing
}

/// The last part of each planned key that `rule` recommends (`max_cps`).
fn planned_for(rule: &Rule) -> Vec<&'static str> {
    PLANNED_KEYS
        .iter()
        .filter(|p| p.rule == rule.id)
        .map(|p| p.key.rsplit('.').next().unwrap_or(p.key))
        .collect()
}

/// Reads and audits one sipwarden configuration or accounts file.
pub fn check_file(path: &Path) -> Result<Vec<Finding>, AuditError> {
    let io = |source| AuditError::Io {
        path: path.to_path_buf(),
        source,
    };
    let bytes = crate::asterisk::read_file(path).map_err(io)?;
    let text = String::from_utf8(bytes).map_err(|_| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not UTF-8 (TOML must be)",
        ))
    })?;
    check_text(&text, path, SystemTime::now())
}

/// Audits configuration `text` read from `path` (which names it in findings and anchors its
/// relative paths), with certificates judged at `now`. An accounts file (top-level `realm`
/// or `[[account]]`) is read as one.
pub fn check_text(text: &str, path: &Path, now: SystemTime) -> Result<Vec<Finding>, AuditError> {
    let invalid = |errors: Vec<ConfigError>| AuditError::Config {
        errors: errors.into_iter().map(explain_planned).collect(),
    };
    let keys = KeyLines::parse(text, Some(path)).map_err(|e| invalid(vec![e]))?;
    if AccountsFile::KEYS.iter().any(|k| keys.contains(k)) {
        AccountsFile::from_toml(text, Some(path)).map_err(invalid)?;
        // HA1 digests are as good as passwords to an offline guesser.
        return Ok(files::check_secret_file_mode(path));
    }
    let config = Config::from_toml(text, Some(path)).map_err(invalid)?;
    Ok(check_config(&config, &keys, path, now))
}

/// An "unknown field" error about a planned key says so, rather than leaving the reader to
/// wonder why the audit recommends a key the gateway refuses.
fn explain_planned(mut e: ConfigError) -> ConfigError {
    let Some(key) = e.key.as_deref() else {
        return e;
    };
    // `trunk[0].max_cps` and `trunk.max_cps` alike.
    let key: String = key
        .split('.')
        .map(|part| part.split('[').next().unwrap_or(part))
        .collect::<Vec<_>>()
        .join(".");
    let planned: Vec<&PlannedKey> = PLANNED_KEYS
        .iter()
        .filter(|p| {
            p.key == key
                || p.key
                    .strip_prefix(key.as_str())
                    .is_some_and(|rest| rest.starts_with('.'))
        })
        .collect();
    if let Some(first) = planned.first()
        && e.message.starts_with("unknown field")
    {
        let names: Vec<&str> = planned.iter().map(|p| p.key).collect();
        let (it, they) = if names.len() == 1 {
            ("it", "it comes")
        } else {
            ("them", "they come")
        };
        e.message.push_str(&format!(
            " (the audit recommends {}, but this version does not have {it} yet: {they} with \
             {}; remove {it} for now)",
            names.join(" and "),
            first.comes_with
        ));
    }
    e
}

/// Audits a configuration the gateway accepts: `keys` gives the lines (empty for a
/// configuration that was not read from a file, whose findings then point at the file).
pub fn check_config(
    config: &Config,
    keys: &KeyLines,
    path: &Path,
    now: SystemTime,
) -> Vec<Finding> {
    let mut a = Audit {
        path,
        keys,
        config,
        out: Vec::new(),
        now,
    };
    a.danger_and_passwords();
    a.stages();
    a.challenges();
    a.listeners();
    a.tls();
    a.trunks();
    a.media();
    a.admin();
    if let Some(f) = &config.accounts.file {
        let at = a.at_key("accounts.file");
        a.out
            .extend(files::check_secret_file_mode_at(&a.resolve(f), Some(&at)));
    }
    // A file holding passwords must itself be private.
    if a.out.iter().any(|f| f.rule == PLAIN_PASSWORD.id) {
        a.out.extend(files::check_secret_file_mode(path));
    }
    a.out
}

struct Audit<'a> {
    path: &'a Path,
    keys: &'a KeyLines,
    config: &'a Config,
    out: Vec<Finding>,
    now: SystemTime,
}

/// Who can reach an address.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Reach {
    Loopback,
    Private,
    Public,
}

fn reach(ip: IpAddr) -> Reach {
    let ip = ip.to_canonical();
    match ip {
        _ if ip.is_loopback() => Reach::Loopback,
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            // 100.64.0.0/10 (carrier-grade NAT) is private too.
            if v4.is_private() || v4.is_link_local() || (a == 100 && (64..128).contains(&b)) {
                Reach::Private
            } else {
                Reach::Public
            }
        }
        IpAddr::V6(v6) => {
            let [first, ..] = v6.segments();
            // fc00::/7 unique local, fe80::/10 link local.
            if first & 0xfe00 == 0xfc00 || first & 0xffc0 == 0xfe80 {
                Reach::Private
            } else {
                Reach::Public
            }
        }
    }
}

/// A duration as a person writes it in the file (`30s`, `5m`, `1h`).
fn human(d: Duration) -> String {
    let s = d.as_secs();
    if d.subsec_nanos() != 0 {
        format!("{}ms", d.as_millis())
    } else if s != 0 && s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s != 0 && s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// The first line of a password or token file, trimmed, as the gateway reads it; `None` when
/// it cannot be read. Reads a few kilobytes at most (the path might name a device).
fn first_line(path: &Path) -> Option<String> {
    let data = files::read_prefix(path, 4096).ok()?;
    let text = String::from_utf8_lossy(&data);
    Some(text.lines().next().unwrap_or("").trim().to_owned())
}

/// Keys holding a password in clear, whatever section they sit in.
fn is_password_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k == "password" || k == "secret" || k.ends_with("_password") || k.ends_with("_secret")
}

impl Audit<'_> {
    fn at(&self, line: usize) -> Location {
        Location {
            file: self.path.to_path_buf(),
            line: u32::try_from(line).unwrap_or(u32::MAX),
        }
    }

    /// The line of `key`, else of the first of `fallbacks` written, else the file.
    fn line_of(&self, key: &str, fallbacks: &[&str]) -> usize {
        std::iter::once(key)
            .chain(fallbacks.iter().copied())
            .find_map(|k| self.keys.line(k))
            .unwrap_or(0)
    }

    fn at_key(&self, key: &str) -> Location {
        self.at(self.line_of(key, &[]))
    }

    fn push(&mut self, rule: &Rule, severity: Severity, line: usize, message: String) {
        self.out.push(Finding {
            rule: rule.id,
            severity,
            message,
            location: self.at(line),
            fix: rule.fix.to_owned(),
        });
    }

    fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() || p.exists() {
            return p.to_path_buf();
        }
        match self.path.parent() {
            Some(dir) if dir.join(p).exists() => dir.join(p),
            _ => p.to_path_buf(),
        }
    }

    /// How a message names the table of a dotted key: `trunk[0].danger_password` →
    /// `trunk "carrier": danger_password`, `accounts.clients[1]` → `accounts: clients 2`.
    fn label(&self, key: &str) -> String {
        let parts: Vec<String> = key
            .split('.')
            .map(|part| match part.split_once('[') {
                Some((name, index)) => {
                    let i: usize = index.trim_end_matches(']').parse().unwrap_or(0);
                    let trunk = (name == "trunk")
                        .then(|| self.config.trunks.get(i))
                        .flatten();
                    match trunk {
                        Some(t) => format!("trunk {:?}", t.name),
                        None => format!("{name} {}", i + 1),
                    }
                }
                None => part.to_owned(),
            })
            .collect();
        parts.join(": ")
    }

    fn trunk_label(&self, i: usize) -> String {
        self.label(&format!("trunk[{i}]"))
    }

    /// `danger_*` switches and clear-text passwords, whatever table they are in: read from the
    /// keys written, so a switch added to the configuration is reported without a new rule.
    fn danger_and_passwords(&mut self) {
        let keys = self.keys;
        for k in keys.iter().filter(|k| k.set && !k.key.ends_with(']')) {
            let last = k.key.rsplit('.').next().unwrap_or(&k.key);
            let name = self.label(&k.key);
            if is_password_key(last) {
                self.push(
                    &PLAIN_PASSWORD,
                    PLAIN_PASSWORD.severity,
                    k.line,
                    format!("{name} holds a password in clear text"),
                );
            } else if last.starts_with("danger_") {
                self.push(
                    &DANGER_SWITCH,
                    DANGER_SWITCH.severity,
                    k.line,
                    format!("{name} is set"),
                );
            }
        }
    }

    fn stages(&mut self) {
        let scanner = &self.config.scanner;
        if !scanner.enabled {
            let line = self.line_of("scanner.enabled", &["scanner"]);
            self.push(
                &STAGE_DISABLED,
                STAGE_DISABLED.severity,
                line,
                "[scanner] is disabled (enabled = false)".into(),
            );
        }
        if scanner.patterns.as_ref().is_some_and(Vec::is_empty) {
            let line = self.line_of("scanner.patterns", &["scanner"]);
            self.push(
                &STAGE_DISABLED,
                STAGE_DISABLED.severity,
                line,
                "[scanner] patterns = [] replaces the built-in scanner fingerprints with none"
                    .into(),
            );
        }
        let ban = &self.config.ban;
        if ban.max_retry > 10 {
            let n = ban.max_retry;
            let line = self.line_of("ban.max_retry", &["ban"]);
            self.push(
                &STAGE_WEAKENED,
                STAGE_WEAKENED.severity,
                line,
                format!("[ban] max_retry = {n} lets a guesser try {n} passwords per ban"),
            );
        }
        if ban.account_max_retry == 0 {
            let line = self.line_of("ban.account_max_retry", &["ban"]);
            self.push(
                &STAGE_WEAKENED,
                STAGE_WEAKENED.severity,
                line,
                "[ban] account_max_retry = 0: a guessing run spread over many addresses is never \
                 stopped"
                    .into(),
            );
        }
        if ban.ban_time < Duration::from_secs(300) {
            let line = self.line_of("ban.ban_time", &["ban"]);
            self.push(
                &STAGE_WEAKENED,
                STAGE_WEAKENED.severity,
                line,
                format!(
                    "[ban] ban_time = {} is over before a scanner moves on",
                    human(ban.ban_time)
                ),
            );
        }
    }

    /// `[accounts]` challenge choices that take SHA-256 from client families known to answer
    /// it (the built-in table of `sipwarden_config::BUILTIN_CLIENTS`).
    fn challenges(&mut self) {
        let accounts = &self.config.accounts;
        let strong_first =
            |algs: &[String]| algs.first().is_some_and(|a| !a.eq_ignore_ascii_case("MD5"));
        // Built-in families that get a stronger algorithm than MD5 first.
        let strong: Vec<&str> = sipwarden_config::BUILTIN_CLIENTS
            .iter()
            .filter(|(_, algs)| algs.first().is_some_and(|a| *a != "MD5"))
            .map(|(ua, _)| *ua)
            .collect();
        let covers = |pattern: &str, family: &str| {
            let (p, f) = (pattern.to_ascii_lowercase(), family.to_ascii_lowercase());
            !p.is_empty() && (p.contains(&f) || f.contains(&p))
        };
        let mut covered: Vec<&str> = Vec::new();
        for (i, entry) in accounts.clients.iter().enumerate() {
            let ua = entry.user_agent.as_str();
            for family in strong.iter().filter(|f| covers(ua, f)) {
                covered.push(family);
                if !strong_first(&entry.algorithms) {
                    let line =
                        self.line_of(&format!("accounts.clients[{i}]"), &["accounts.clients"]);
                    self.push(
                        &WEAK_CHALLENGES,
                        WEAK_CHALLENGES.severity,
                        line,
                        format!(
                            "[accounts] clients entry {ua:?} offers {} first to {family}, which \
                             answers SHA-256",
                            entry.algorithms.first().map_or("nothing", String::as_str)
                        ),
                    );
                }
            }
        }
        if accounts.builtin_clients {
            return;
        }
        let lost: Vec<&str> = strong
            .iter()
            .copied()
            .filter(|f| !covered.contains(f))
            .collect();
        if !lost.is_empty() && !strong_first(&accounts.algorithms) {
            let line = self.line_of("accounts.builtin_clients", &["accounts"]);
            self.push(
                &WEAK_CHALLENGES,
                WEAK_CHALLENGES.severity,
                line,
                format!(
                    "[accounts] builtin_clients = false: {} answer SHA-256 but now get the \
                     default challenge (MD5)",
                    lost.join(", ")
                ),
            );
        }
    }

    fn listeners(&mut self) {
        let listen = &self.config.listen;
        let tls_offered = !listen.tls.is_empty() || !listen.wss.is_empty();
        for (kind, addrs) in [("udp", &listen.udp), ("tcp", &listen.tcp)] {
            for (j, sa) in addrs.iter().enumerate() {
                let r = reach(sa.ip());
                if r == Reach::Loopback {
                    continue;
                }
                // Public or all interfaces without any TLS alternative is the worst case.
                let (severity, whom) = match (r, tls_offered) {
                    (Reach::Public, false) => (
                        Severity::High,
                        "the internet, and no TLS listener is configured",
                    ),
                    (Reach::Public, true) => (
                        Severity::Medium,
                        "the internet (a TLS listener exists; phones may still use this one)",
                    ),
                    _ => (Severity::Medium, "the private network"),
                };
                let line = self.line_of(
                    &format!("listen.{kind}[{j}]"),
                    &[&format!("listen.{kind}"), "listen"],
                );
                self.push(
                    &CLEARTEXT_LISTENER,
                    severity,
                    line,
                    format!("[listen] {kind} {sa}: SIP in clear text, reachable from {whom}"),
                );
            }
        }
    }

    fn tls(&mut self) {
        let tls = &self.config.tls;
        if let Some(k) = &tls.key {
            let at = self.at_key("tls.key");
            self.out
                .extend(files::check_private_key(&self.resolve(k), Some(&at)));
        }
        for (key, file) in [("tls.cert", &tls.cert), ("tls.ca_file", &tls.ca_file)] {
            let Some(c) = file else { continue };
            let p = self.resolve(c);
            // A missing certificate that the gateway will create is not a finding.
            if key == "tls.cert" && tls.generate_self_signed && !p.exists() {
                continue;
            }
            let at = self.at_key(key);
            self.out
                .extend(files::check_certificate(&p, Some(&at), self.now));
        }
    }

    fn trunks(&mut self) {
        let config = self.config;
        for (i, trunk) in config.trunks.iter().enumerate() {
            let name = self.trunk_label(i);
            let header = self.line_of(&format!("trunk[{i}]"), &[]);
            self.trunk_secret(i, &name);
            self.push(
                &TRUNK_NO_SRTP,
                TRUNK_NO_SRTP.severity,
                header,
                format!(
                    "{name} accepts unencrypted media: this version cannot require SRTP of a \
                     trunk ({} is planned)",
                    planned_for(&TRUNK_NO_SRTP).join(", ")
                ),
            );
            if !trunk.proxy.is_tls() {
                let line = self.line_of(&format!("trunk[{i}].proxy"), &[]).max(header);
                self.push(
                    &TRUNK_NO_TLS,
                    TRUNK_NO_TLS.severity,
                    line,
                    format!("{name}: proxy {:?} is not TLS (sips:)", trunk.proxy.uri),
                );
                if trunk.proxy.is_name() {
                    self.push(
                        &TRUNK_NAME_NO_TLS,
                        TRUNK_NAME_NO_TLS.severity,
                        line,
                        format!(
                            "{name}: {:?} is found by DNS and reached without TLS: whoever \
                             answers for the name gets the calls",
                            trunk.proxy.host
                        ),
                    );
                }
            }
            let missing = missing_fraud_limits(config, &trunk.name);
            if !missing.is_empty() {
                self.push(
                    &TRUNK_NO_FRAUD_LIMITS,
                    TRUNK_NO_FRAUD_LIMITS.severity,
                    header,
                    format!(
                        "{name} has no {}: a stolen account can call premium numbers without limit",
                        missing.join(", ")
                    ),
                );
            }
        }
        self.routes();
        if !config.trunks.is_empty() {
            let policy = config
                .policy
                .as_ref()
                .filter(|p| !p.allow_countries.is_empty() || !p.block_countries.is_empty());
            match policy {
                None => self.push(
                    &NO_DESTINATION_POLICY,
                    NO_DESTINATION_POLICY.severity,
                    0,
                    "no [policy] block_countries or [policy] allow_countries: every destination \
                     the trunks reach is callable"
                        .to_owned(),
                ),
                Some(p) if p.mode == sipwarden_config::PolicyMode::Monitor => {
                    let line = self.line_of("policy.mode", &["policy"]);
                    self.push(
                        &NO_DESTINATION_POLICY,
                        NO_DESTINATION_POLICY.severity,
                        line,
                        "[policy] mode = \"monitor\": the destination policy refuses nothing"
                            .to_owned(),
                    );
                }
                Some(_) => {}
            }
        }
    }

    /// `[[route]]` tables that leave through one trunk only. (Without routes, a gateway with
    /// a single carrier has nothing to fall back to: not a finding of its configuration.)
    fn routes(&mut self) {
        let config = self.config;
        for (i, r) in config.routes.iter().enumerate() {
            let mut names: Vec<&str> = r.trunks.iter().map(|t| t.name()).collect();
            names.extend(r.fallback.iter().map(String::as_str));
            names.sort_unstable();
            names.dedup();
            if names.len() == 1 {
                let line = self.line_of(&format!("route[{i}]"), &[]);
                let prefix = if r.prefix.trim().is_empty() {
                    "every number".to_owned()
                } else {
                    format!("numbers starting {}", r.prefix)
                };
                self.push(
                    &ROUTE_NO_FALLBACK,
                    ROUTE_NO_FALLBACK.severity,
                    line,
                    format!(
                        "the route for {prefix} leaves through {:?} only, with no fallback",
                        names.first().copied().unwrap_or("")
                    ),
                );
            }
        }
    }

    /// A trunk's password, written in the file or read from its `password_file`.
    fn trunk_secret(&mut self, i: usize, name: &str) {
        let config = self.config;
        let Some(trunk) = config.trunks.get(i) else {
            return;
        };
        let user = trunk.username.as_deref().unwrap_or("");
        let related = [user, trunk.name.as_str()];
        if let Some(pw) = &trunk.danger_password {
            let line = self.line_of(&format!("trunk[{i}].danger_password"), &[]);
            self.weak(
                pw.expose(),
                &related,
                line,
                &format!("{name}: danger_password"),
            );
        }
        if let Some(f) = &trunk.password_file {
            let p = self.resolve(f);
            let line = self.line_of(&format!("trunk[{i}].password_file"), &[]);
            let at = self.at(line);
            self.out
                .extend(files::check_secret_file_mode_at(&p, Some(&at)));
            if let Some(pw) = first_line(&p) {
                self.weak(
                    &pw,
                    &related,
                    line,
                    &format!("{name}: the password in {}", f.display()),
                );
            }
        }
    }

    fn weak(&mut self, secret: &str, related: &[&str], line: usize, what: &str) -> bool {
        let a = secret::assess(secret, related);
        if a.is_strong() {
            return false;
        }
        let why: Vec<String> = a.weaknesses.iter().map(ToString::to_string).collect();
        self.push(
            &WEAK_SECRET,
            WEAK_SECRET.severity,
            line,
            format!("{what} is weak: {}", why.join("; ")),
        );
        true
    }

    fn media(&mut self) {
        let config = self.config;
        match &config.media {
            None if !config.trunks.is_empty() => {
                let line = self.line_of("trunk[0]", &[]);
                self.push(
                    &NO_MEDIA_ANCHOR,
                    NO_MEDIA_ANCHOR.severity,
                    line,
                    format!(
                        "no [media]: the SDP of calls through {} trunk(s) names the PBX's own \
                         media address, and the audio flows between the PBX and the carrier \
                         directly",
                        config.trunks.len()
                    ),
                );
            }
            Some(m)
                if m.engine == sipwarden_config::MediaEngine::Rtpengine
                    && reach(m.rtpengine.ip()) == Reach::Public =>
            {
                let line = self.line_of("media.rtpengine", &["media"]);
                self.push(
                    &RTPENGINE_PUBLIC,
                    RTPENGINE_PUBLIC.severity,
                    line,
                    format!(
                        "[media] rtpengine = \"{}\" is a public address: rtpengine's ng \
                         control travels unauthenticated across networks not ours",
                        m.rtpengine
                    ),
                );
            }
            _ => {}
        }
    }

    fn admin(&mut self) {
        let admin = &self.config.admin;
        // The token file, wherever the API listens: it is the API's only lock.
        let mut token_exposed = false;
        if let Some(f) = &admin.token_file {
            let p = self.resolve(f);
            let line = self.line_of("admin.token_file", &["admin"]);
            let at = self.at(line);
            let modes = files::check_secret_file_mode_at(&p, Some(&at));
            token_exposed |= modes
                .iter()
                .any(|m| m.rule == files::SECRET_WORLD_READABLE.id);
            self.out.extend(modes);
            if let Some(t) = first_line(&p) {
                token_exposed |= self.weak(
                    &t,
                    &[],
                    line,
                    &format!("[admin] the token in {}", f.display()),
                );
            }
        }
        let addr = admin.listen;
        if reach(addr.ip()) == Reach::Loopback {
            return;
        }
        // The gateway always has a token (it creates one if missing); it is as good as none
        // when other users can read it or it can be guessed.
        let (severity, extra) = if token_exposed {
            (
                Severity::Critical,
                ", and its token is readable by every user or weak",
            )
        } else {
            (ADMIN_PUBLIC.severity, "")
        };
        let line = self.line_of("admin.listen", &["admin"]);
        self.push(
            &ADMIN_PUBLIC,
            severity,
            line,
            format!("[admin] listen = \"{addr}\" exposes the admin API beyond this machine{extra}"),
        );
    }
}

#[cfg(test)]
mod tests;
