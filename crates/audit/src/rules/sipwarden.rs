//! Checks on sipwarden's own TOML configuration (rule ids `SW-CONF-NNN`).
//!
//! The file is read as a TOML tree with the line of every key, not through
//! `sipwarden_config::Config`, on purpose: the audit recommends keys from the design (per-trunk
//! `require_srtp`, `max_concurrent`, `max_cps`, `daily_spend_cap`, a `[policy]` section) that the
//! config crate does not know yet and would refuse as unknown fields, so validating through it
//! would turn the audit's own advice into errors. Validation is `sipwarden check`'s job; only a
//! file that is not TOML at all is an [`AuditError::Parse`]. Missing keys are judged by the
//! gateway's defaults (listeners and admin API on loopback, scanner on).
//!
//! Files the configuration names (TLS key and certificates, password and token files, the
//! accounts file) get the [`files`](super::files) checks, pointed at the line naming them.
//! Relative paths are resolved as `sipwarden serve` does, against the working directory, and
//! failing that against the configuration's own directory.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use toml::de::{DeTable, DeValue};

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
    fix: "Remove enabled = false (each stage is on by default) or, for [scanner], the empty \
          patterns list; tune the stage's limits instead of turning it off.",
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

/// A trunk with no fraud limits or spend cap.
pub const TRUNK_NO_FRAUD_LIMITS: Rule = Rule {
    id: "SW-CONF-040",
    severity: Severity::High,
    title: "Trunk without fraud limits or spend cap",
    fix: "Cap what a compromise can cost. Per-trunk max_concurrent, max_cps and daily_spend_cap \
          (DESIGN §6) come with the fraud limits and are refused by this version's \
          configuration; until then set a daily spend limit and a concurrent-call limit at the \
          provider, and bound what the gateway lets through: [ratelimit] global_invite_cps, \
          [calls] max_calls, and max_call_duration in the [[trunk]] table.",
};

/// No destination policy while trunks exist.
pub const NO_DESTINATION_POLICY: Rule = Rule {
    id: "SW-CONF-041",
    severity: Severity::Medium,
    title: "No destination policy (premium and high-risk countries callable)",
    fix: "Block premium and high-risk destinations at the provider (most offer country and \
          premium-rate blocks) and in the PBX's dialplan; sipwarden's own [policy] \
          block_countries/allow_countries (DESIGN §6) come with the fraud limits and are refused \
          by this version's configuration.",
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
    TRUNK_NO_FRAUD_LIMITS,
    NO_DESTINATION_POLICY,
    ADMIN_PUBLIC,
];

/// A TOML value with the line it starts on; tables keep their keys' lines.
#[derive(Debug)]
enum Val {
    Str(String),
    Bool(bool),
    Num(f64),
    Array(Vec<Node>),
    Table(Vec<Entry>),
    Other,
}

#[derive(Debug)]
struct Node {
    line: u32,
    val: Val,
}

#[derive(Debug)]
struct Entry {
    key: String,
    line: u32,
    node: Node,
}

impl Node {
    fn get(&self, key: &str) -> Option<&Entry> {
        match &self.val {
            Val::Table(t) => t.iter().find(|e| e.key == key),
            _ => None,
        }
    }

    fn entries(&self) -> &[Entry] {
        match &self.val {
            Val::Table(t) => t,
            _ => &[],
        }
    }

    fn as_str(&self) -> Option<&str> {
        match &self.val {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The strings of an array of strings, or of a single string.
    fn strings(&self) -> Vec<(&str, u32)> {
        match &self.val {
            Val::Str(s) => vec![(s.as_str(), self.line)],
            Val::Array(a) => a
                .iter()
                .filter_map(|n| n.as_str().map(|s| (s, n.line)))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Byte offset → 1-based line.
struct Lines(Vec<usize>);

impl Lines {
    fn new(text: &str) -> Self {
        Self(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i)
                .collect(),
        )
    }

    fn line(&self, offset: usize) -> u32 {
        let n = self.0.partition_point(|&nl| nl < offset) + 1;
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

fn convert(v: &DeValue<'_>, line: u32, lines: &Lines) -> Node {
    let val = match v {
        DeValue::String(s) => Val::Str(s.to_string()),
        DeValue::Boolean(b) => Val::Bool(*b),
        DeValue::Integer(i) => {
            let digits: String = i.as_str().chars().filter(|c| *c != '_').collect();
            i64::from_str_radix(&digits, i.radix()).map_or(Val::Other, |n| Val::Num(n as f64))
        }
        DeValue::Float(f) => {
            let digits: String = f.as_str().chars().filter(|c| *c != '_').collect();
            digits.parse().map_or(Val::Other, Val::Num)
        }
        DeValue::Datetime(_) => Val::Other,
        DeValue::Array(a) => Val::Array(
            a.iter()
                .map(|e| convert(e.get_ref(), lines.line(e.span().start), lines))
                .collect(),
        ),
        DeValue::Table(t) => Val::Table(table(t, lines)),
    };
    Node { line, val }
}

fn table(t: &DeTable<'_>, lines: &Lines) -> Vec<Entry> {
    t.iter()
        .map(|(k, v)| {
            let line = lines.line(k.span().start);
            Entry {
                key: k.get_ref().to_string(),
                line,
                node: convert(v.get_ref(), line, lines),
            }
        })
        .collect()
}

/// Parses `text` into a tree with lines; a syntax error is [`AuditError::Parse`] at its line.
fn parse(text: &str, path: &Path) -> Result<Node, AuditError> {
    let lines = Lines::new(text);
    let doc = DeTable::parse(text).map_err(|e| AuditError::Parse {
        location: Location {
            file: path.to_path_buf(),
            line: e.span().map_or(0, |s| lines.line(s.start)),
        },
        reason: e.message().trim().to_owned(),
    })?;
    Ok(Node {
        line: 0,
        val: Val::Table(table(doc.get_ref(), &lines)),
    })
}

/// Reads and audits one sipwarden configuration (or accounts) file.
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
/// relative paths), with certificates judged at `now`.
pub fn check_text(text: &str, path: &Path, now: SystemTime) -> Result<Vec<Finding>, AuditError> {
    let root = parse(text, path)?;
    let mut a = Audit {
        path,
        out: Vec::new(),
        now,
    };
    a.danger_and_passwords(&root, "");
    a.stages(&root);
    a.challenges(&root);
    a.listeners(&root);
    a.tls(&root);
    a.trunks(&root);
    a.admin(&root);
    if let Some(e) = root.get("accounts").and_then(|s| s.node.get("file"))
        && let Some(f) = e.node.as_str()
    {
        let at = a.at(e.line);
        a.out
            .extend(files::check_secret_file_mode_at(&a.resolve(f), Some(&at)));
    }
    // A file holding passwords or HA1 digests must itself be private.
    let holds_secrets =
        a.out.iter().any(|f| f.rule == PLAIN_PASSWORD.id) || root.get("account").is_some();
    if holds_secrets {
        a.out.extend(files::check_secret_file_mode(path));
    }
    Ok(a.out)
}

struct Audit<'a> {
    path: &'a Path,
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
            let first = v6.segments()[0];
            // fc00::/7 unique local, fe80::/10 link local.
            if first & 0xfe00 == 0xfc00 || first & 0xffc0 == 0xfe80 {
                Reach::Private
            } else {
                Reach::Public
            }
        }
    }
}

/// `"30s"`, `"5m"`, `"1h"`, `"7d"`, `"500ms"` in seconds.
fn seconds(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (n, unit) = s.split_at(split);
    let n: f64 = n.parse().ok()?;
    let mult = match unit.trim() {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        _ => return None,
    };
    Some(n * mult)
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
    fn at(&self, line: u32) -> Location {
        Location {
            file: self.path.to_path_buf(),
            line,
        }
    }

    fn push(&mut self, rule: &Rule, severity: Severity, line: u32, message: String) {
        self.out.push(Finding {
            rule: rule.id,
            severity,
            message,
            location: self.at(line),
            fix: rule.fix.to_owned(),
        });
    }

    fn resolve(&self, p: &str) -> PathBuf {
        let p = PathBuf::from(p);
        if p.is_absolute() || p.exists() {
            return p;
        }
        match self.path.parent() {
            Some(dir) if dir.join(&p).exists() => dir.join(p),
            _ => p,
        }
    }

    /// `danger_*` switches and clear-text passwords anywhere in the tree (`ctx` names the
    /// table, e.g. `trunk "carrier"`).
    fn danger_and_passwords(&mut self, node: &Node, ctx: &str) {
        for e in node.entries() {
            let name = if ctx.is_empty() {
                e.key.clone()
            } else {
                format!("{ctx}: {}", e.key)
            };
            let set = match &e.node.val {
                Val::Bool(b) => *b,
                Val::Str(s) => !s.is_empty(),
                Val::Array(a) => !a.is_empty(),
                _ => true,
            };
            if is_password_key(&e.key) {
                if set {
                    self.push(
                        &PLAIN_PASSWORD,
                        PLAIN_PASSWORD.severity,
                        e.line,
                        format!("{name} holds a password in clear text"),
                    );
                }
            } else if e.key.starts_with("danger_") && set {
                self.push(
                    &DANGER_SWITCH,
                    DANGER_SWITCH.severity,
                    e.line,
                    format!("{name} is set"),
                );
            }
            match &e.node.val {
                Val::Table(_) => self.danger_and_passwords(&e.node, &name),
                Val::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let label = item
                            .get("name")
                            .or_else(|| item.get("user"))
                            .and_then(|n| n.node.as_str())
                            .map_or_else(
                                || format!("{} {}", e.key, i + 1),
                                |n| format!("{} {n:?}", e.key),
                            );
                        self.danger_and_passwords(item, &label);
                    }
                }
                _ => {}
            }
        }
    }

    fn stages(&mut self, root: &Node) {
        for section in ["ban", "ratelimit", "scanner", "acl"] {
            let Some(s) = root.get(section) else { continue };
            if let Some(e) = s.node.get("enabled")
                && matches!(e.node.val, Val::Bool(false))
            {
                self.push(
                    &STAGE_DISABLED,
                    STAGE_DISABLED.severity,
                    e.line,
                    format!("[{section}] is disabled (enabled = false)"),
                );
            }
        }
        if let Some(p) = root.get("scanner").and_then(|s| s.node.get("patterns"))
            && matches!(&p.node.val, Val::Array(a) if a.is_empty())
        {
            self.push(
                &STAGE_DISABLED,
                STAGE_DISABLED.severity,
                p.line,
                "[scanner] patterns = [] replaces the built-in scanner fingerprints with none"
                    .into(),
            );
        }
        let Some(ban) = root.get("ban") else { return };
        if let Some(e) = ban.node.get("max_retry")
            && let Val::Num(n) = e.node.val
            && n > 10.0
        {
            self.push(
                &STAGE_WEAKENED,
                STAGE_WEAKENED.severity,
                e.line,
                format!("[ban] max_retry = {n} lets a guesser try {n} passwords per ban"),
            );
        }
        if let Some(e) = ban.node.get("account_max_retry")
            && let Val::Num(n) = e.node.val
            && n == 0.0
        {
            self.push(
                &STAGE_WEAKENED,
                STAGE_WEAKENED.severity,
                e.line,
                "[ban] account_max_retry = 0: a guessing run spread over many addresses is never \
                 stopped"
                    .into(),
            );
        }
        if let Some(e) = ban.node.get("ban_time")
            && let Some(t) = e.node.as_str()
            && seconds(t).is_some_and(|s| s < 300.0)
        {
            self.push(
                &STAGE_WEAKENED,
                STAGE_WEAKENED.severity,
                e.line,
                format!("[ban] ban_time = {t:?} is over before a scanner moves on"),
            );
        }
    }

    /// `[accounts]` challenge choices that take SHA-256 from client families known to answer
    /// it (the built-in table of `sipwarden_config::BUILTIN_CLIENTS`).
    fn challenges(&mut self, root: &Node) {
        let Some(accounts) = root.get("accounts") else {
            return;
        };
        let strong_first = |algs: &[(&str, u32)]| {
            algs.first()
                .is_some_and(|(a, _)| !a.eq_ignore_ascii_case("MD5"))
        };
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
        let entries: Vec<&Node> = match accounts.node.get("clients").map(|e| &e.node.val) {
            Some(Val::Array(a)) => a.iter().collect(),
            _ => Vec::new(),
        };
        for entry in entries {
            let Some(ua) = entry.get("user_agent").and_then(|e| e.node.as_str()) else {
                continue;
            };
            let algs = entry
                .get("algorithms")
                .map(|e| e.node.strings())
                .unwrap_or_default();
            for family in strong.iter().filter(|f| covers(ua, f)) {
                covered.push(family);
                if !strong_first(&algs) {
                    self.push(
                        &WEAK_CHALLENGES,
                        WEAK_CHALLENGES.severity,
                        entry.line,
                        format!(
                            "[accounts] clients entry {ua:?} offers {} first to {family}, which \
                             answers SHA-256",
                            algs.first().map_or("nothing", |a| a.0)
                        ),
                    );
                }
            }
        }
        let Some(off) = accounts.node.get("builtin_clients") else {
            return;
        };
        if !matches!(off.node.val, Val::Bool(false)) {
            return;
        }
        let default = accounts
            .node
            .get("algorithms")
            .map(|e| e.node.strings())
            .unwrap_or_default();
        let lost: Vec<&str> = strong
            .iter()
            .copied()
            .filter(|f| !covered.contains(f))
            .collect();
        if !lost.is_empty() && !strong_first(&default) {
            self.push(
                &WEAK_CHALLENGES,
                WEAK_CHALLENGES.severity,
                off.line,
                format!(
                    "[accounts] builtin_clients = false: {} answer SHA-256 but now get the \
                     default challenge (MD5)",
                    lost.join(", ")
                ),
            );
        }
    }

    fn listeners(&mut self, root: &Node) {
        let Some(listen) = root.get("listen") else {
            return; // default: loopback only
        };
        let tls_offered = ["tls", "wss"].iter().any(|k| {
            listen
                .node
                .get(k)
                .is_some_and(|e| !e.node.strings().is_empty())
        });
        for kind in ["udp", "tcp"] {
            let Some(e) = listen.node.get(kind) else {
                continue;
            };
            for (addr, line) in e.node.strings() {
                let Ok(sa) = addr.parse::<SocketAddr>() else {
                    continue; // `sipwarden check` reports malformed addresses
                };
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
                self.push(
                    &CLEARTEXT_LISTENER,
                    severity,
                    line,
                    format!("[listen] {kind} {addr}: SIP in clear text, reachable from {whom}"),
                );
            }
        }
    }

    fn tls(&mut self, root: &Node) {
        let Some(tls) = root.get("tls") else { return };
        let generated = tls
            .node
            .get("generate_self_signed")
            .is_some_and(|e| matches!(e.node.val, Val::Bool(true)));
        if let Some(e) = tls.node.get("key")
            && let Some(k) = e.node.as_str()
        {
            let at = self.at(e.line);
            self.out
                .extend(files::check_private_key(&self.resolve(k), Some(&at)));
        }
        for key in ["cert", "ca_file"] {
            let Some(e) = tls.node.get(key) else { continue };
            let Some(c) = e.node.as_str() else { continue };
            let p = self.resolve(c);
            // A missing certificate that the gateway will create is not a finding.
            if key == "cert" && generated && !p.exists() {
                continue;
            }
            let at = self.at(e.line);
            self.out
                .extend(files::check_certificate(&p, Some(&at), self.now));
        }
    }

    fn trunks(&mut self, root: &Node) {
        let Some(t) = root.get("trunk") else { return };
        let Val::Array(trunks) = &t.node.val else {
            return;
        };
        for (i, trunk) in trunks.iter().enumerate() {
            let name = trunk
                .get("name")
                .and_then(|e| e.node.as_str())
                .map_or_else(|| format!("trunk {}", i + 1), |n| format!("trunk {n:?}"));
            self.trunk_secret(trunk, &name);
            let srtp = trunk
                .get("require_srtp")
                .is_some_and(|e| matches!(e.node.val, Val::Bool(true)))
                || trunk
                    .get("media_encryption")
                    .and_then(|e| e.node.as_str())
                    .is_some_and(|v| v.eq_ignore_ascii_case("required"));
            if !srtp {
                let line = trunk.get("require_srtp").map_or(trunk.line, |e| e.line);
                self.push(
                    &TRUNK_NO_SRTP,
                    TRUNK_NO_SRTP.severity,
                    line,
                    format!("{name} accepts unencrypted media (require_srtp is not true)"),
                );
            }
            if let Some(e) = trunk.get("proxy")
                && let Some(uri) = e.node.as_str()
            {
                let lower = uri.to_ascii_lowercase();
                if !lower.starts_with("sips:") && !lower.contains("transport=tls") {
                    self.push(
                        &TRUNK_NO_TLS,
                        TRUNK_NO_TLS.severity,
                        e.line,
                        format!("{name}: proxy {uri:?} is not TLS (sips:)"),
                    );
                }
            }
            let missing: Vec<&str> = ["max_concurrent", "max_cps", "daily_spend_cap"]
                .into_iter()
                .filter(|k| trunk.get(k).is_none())
                .collect();
            if !missing.is_empty() {
                self.push(
                    &TRUNK_NO_FRAUD_LIMITS,
                    TRUNK_NO_FRAUD_LIMITS.severity,
                    trunk.line,
                    format!(
                        "{name} has no {}: a stolen account can call premium numbers without limit",
                        missing.join(", ")
                    ),
                );
            }
        }
        let policy = root.get("policy").is_some_and(|p| {
            p.node.get("block_countries").is_some() || p.node.get("allow_countries").is_some()
        });
        if !trunks.is_empty() && !policy {
            self.push(
                &NO_DESTINATION_POLICY,
                NO_DESTINATION_POLICY.severity,
                0,
                "no [policy] block_countries or allow_countries: every destination the trunks reach \
                 is callable"
                    .into(),
            );
        }
    }

    /// A trunk's password, written in the file or read from its `password_file`.
    fn trunk_secret(&mut self, trunk: &Node, name: &str) {
        let user = trunk
            .get("username")
            .and_then(|e| e.node.as_str())
            .unwrap_or("");
        let trunk_name = trunk
            .get("name")
            .and_then(|e| e.node.as_str())
            .unwrap_or("");
        let related = [user, trunk_name];
        if let Some(e) = trunk.get("danger_password")
            && let Some(pw) = e.node.as_str()
        {
            self.weak(pw, &related, e.line, &format!("{name}: danger_password"));
        }
        if let Some(e) = trunk.get("password_file")
            && let Some(f) = e.node.as_str()
        {
            let p = self.resolve(f);
            let at = self.at(e.line);
            self.out
                .extend(files::check_secret_file_mode_at(&p, Some(&at)));
            if let Some(pw) = first_line(&p) {
                self.weak(
                    &pw,
                    &related,
                    e.line,
                    &format!("{name}: the password in {f}"),
                );
            }
        }
    }

    fn weak(&mut self, secret: &str, related: &[&str], line: u32, what: &str) -> bool {
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

    fn admin(&mut self, root: &Node) {
        let Some(admin) = root.get("admin") else {
            return; // default: 127.0.0.1:8080
        };
        let token = admin.node.get("token_file").and_then(|e| {
            let f = e.node.as_str()?;
            Some((self.resolve(f), f.to_owned(), e.line))
        });
        // The token file, wherever the API listens: it is the API's only lock.
        let mut token_exposed = false;
        if let Some((p, f, line)) = &token {
            let at = self.at(*line);
            let modes = files::check_secret_file_mode_at(p, Some(&at));
            token_exposed |= modes
                .iter()
                .any(|m| m.rule == files::SECRET_WORLD_READABLE.id);
            self.out.extend(modes);
            if let Some(t) = first_line(p) {
                token_exposed |= self.weak(&t, &[], *line, &format!("[admin] the token in {f}"));
            }
        }
        let Some(listen) = admin.node.get("listen") else {
            return;
        };
        let Some(addr) = listen.node.as_str() else {
            return;
        };
        let Ok(sa) = addr.parse::<SocketAddr>() else {
            return;
        };
        if reach(sa.ip()) == Reach::Loopback {
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
        self.push(
            &ADMIN_PUBLIC,
            severity,
            listen.line,
            format!("[admin] listen = {addr:?} exposes the admin API beyond this machine{extra}"),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    /// 2026-06-01T00:00:00Z.
    fn june_2026() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_780_272_000)
    }

    fn check(text: &str) -> Vec<Finding> {
        check_text(
            text,
            Path::new("/etc/sipwarden/sipwarden.toml"),
            june_2026(),
        )
        .unwrap()
    }

    fn ids(f: &[Finding]) -> Vec<&'static str> {
        let mut v: Vec<&str> = f.iter().map(|f| f.rule).collect();
        v.sort_unstable();
        v
    }

    fn one<'a>(f: &'a [Finding], rule: &str) -> &'a Finding {
        let hits: Vec<&Finding> = f.iter().filter(|x| x.rule == rule).collect();
        assert_eq!(hits.len(), 1, "{rule} in {f:#?}");
        hits[0]
    }

    /// A trunk that passes every trunk rule.
    const GOOD_TRUNK: &str = r#"
[[trunk]]
name = "carrier"
networks = ["192.0.2.0/24"]
proxy = "sips:sip.carrier.example:5061"
username = "acct123"
require_srtp = true
max_concurrent = 20
max_cps = 5
daily_spend_cap = 50.0

[policy]
block_countries = ["premium", "high-risk"]
"#;

    #[test]
    fn defaults_and_a_careful_config_are_clean() {
        assert!(check("").is_empty());
        let text = format!(
            "[listen]\nudp = [\"127.0.0.1:5060\"]\ntls = [\"0.0.0.0:5061\"]\n\n[admin]\nlisten = \"127.0.0.1:8080\"\n\n[ban]\nmax_retry = 5\nban_time = \"1h\"\n\n[scanner]\nenabled = true\n{GOOD_TRUNK}"
        );
        let f = check(&text);
        assert!(f.is_empty(), "{f:#?}");
    }

    #[test]
    fn parse_error_names_the_line() {
        let err = check_text(
            "[listen]\nudp = [\"x\"\n\n",
            Path::new("s.toml"),
            june_2026(),
        )
        .unwrap_err();
        match err {
            AuditError::Parse { location, reason } => {
                assert_eq!(location.file, Path::new("s.toml"));
                assert!(location.line >= 2, "{location}");
                assert!(!reason.is_empty());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn danger_switch() {
        let f = check("[sip]\ndanger_accept_anything = true\n");
        let d = one(&f, "SW-CONF-001");
        assert_eq!(d.location.line, 2);
        assert!(
            d.message.contains("danger_accept_anything"),
            "{}",
            d.message
        );
        assert!(check("[sip]\ndanger_accept_anything = false\n").is_empty());
    }

    #[test]
    fn plain_and_weak_trunk_password() {
        let text = GOOD_TRUNK.replace(
            "username = \"acct123\"",
            "username = \"acct123\"\ndanger_password = \"acct123\"",
        );
        let f = check(&text);
        assert_eq!(ids(&f), ["SW-CONF-002", "SW-CONF-003"]);
        let p = one(&f, "SW-CONF-002");
        assert_eq!(p.severity, Severity::Critical);
        assert_eq!(p.location.line, 7);
        assert!(
            p.message.contains("trunk \"carrier\": danger_password"),
            "{}",
            p.message
        );
        let w = one(&f, "SW-CONF-003");
        assert!(w.message.contains("same as the username"), "{}", w.message);
        // Findings never carry the secret.
        let strong = "T7q-Vx2!mK9^pLw4.Rz8";
        let f = check(&GOOD_TRUNK.replace(
            "username = \"acct123\"",
            &format!("username = \"acct123\"\ndanger_password = \"{strong}\""),
        ));
        assert_eq!(ids(&f), ["SW-CONF-002"]);
        assert!(f.iter().all(|x| !x.message.contains(strong)));
    }

    #[test]
    fn password_keys_anywhere() {
        let f = check(
            "[future]\npassword = \"hunter2\"\n[other]\nsip_secret = \"x\"\npassword_file = \"/x\"\n",
        );
        assert_eq!(ids(&f), ["SW-CONF-002", "SW-CONF-002"]);
        assert!(check("[future]\npassword = \"\"\n").is_empty());
    }

    #[test]
    fn password_file_is_read_and_its_mode_checked() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let weak = dir.path().join("weak.secret");
        std::fs::write(&weak, "password1\n").unwrap();
        std::fs::set_permissions(&weak, std::fs::Permissions::from_mode(0o644)).unwrap();
        let strong = dir.path().join("strong.secret");
        std::fs::write(&strong, "T7q-Vx2!mK9^pLw4.Rz8\n").unwrap();
        std::fs::set_permissions(&strong, std::fs::Permissions::from_mode(0o600)).unwrap();
        let with = |p: &Path| {
            GOOD_TRUNK.replace(
                "username = \"acct123\"",
                &format!(
                    "username = \"acct123\"\npassword_file = \"{}\"",
                    p.display()
                ),
            )
        };
        let f = check(&with(&weak));
        assert_eq!(ids(&f), ["SW-CONF-003", "SW-FILE-005"]);
        assert!(f.iter().all(|x| x.location.line == 7), "{f:#?}");
        assert!(f.iter().all(|x| !x.message.contains("password1")));
        assert!(check(&with(&strong)).is_empty());
    }

    #[test]
    fn files_that_never_end_are_read_only_in_part() {
        // A path naming a device must not hang the audit.
        let f = check(
            "[[trunk]]\nname = \"t\"\npassword_file = \"/dev/zero\"\n[tls]\ncert = \"/dev/zero\"\n",
        );
        one(&f, "SW-CONF-003");
        one(&f, "SW-FILE-004");
    }

    #[test]
    fn disabled_and_weakened_stages() {
        let f = check(
            "[scanner]\nenabled = false\n[ratelimit]\nenabled = false\n[ban]\nmax_retry = 100\nban_time = \"30s\"\naccount_max_retry = 0\n",
        );
        assert_eq!(
            ids(&f),
            [
                "SW-CONF-010",
                "SW-CONF-010",
                "SW-CONF-011",
                "SW-CONF-011",
                "SW-CONF-011"
            ]
        );
        let f = check("[scanner]\npatterns = []\n");
        assert_eq!(one(&f, "SW-CONF-010").location.line, 2);
        assert!(
            check(
                "[scanner]\npatterns = [\"sipvicious\"]\n[ban]\nmax_retry = 10\nban_time = \"5m\"\naccount_max_retry = 20\n"
            )
            .is_empty()
        );
    }

    #[test]
    fn challenges_weaker_than_the_clients_can_answer() {
        // The defaults, and an entry for a family with no SHA-256, are fine.
        assert!(check("[accounts]\nalgorithms = [\"MD5\"]\n").is_empty());
        let ok = "[accounts]\nclients = [{ user_agent = \"Yealink\", algorithms = [\"MD5\"] }, { user_agent = \"Linphone\", algorithms = [\"SHA-256\", \"MD5\"] }]\n";
        assert!(check(ok).is_empty(), "{:#?}", check(ok));
        let f = check(
            "[accounts]\nclients = [\n  { user_agent = \"linphone\", algorithms = [\"MD5\"] },\n]\n",
        );
        let x = one(&f, "SW-CONF-012");
        assert_eq!(x.location.line, 3);
        assert!(
            x.message.contains("offers MD5 first to Linphone"),
            "{}",
            x.message
        );
        let f = check("[accounts]\nbuiltin_clients = false\n");
        let x = one(&f, "SW-CONF-012");
        assert_eq!(x.location.line, 2);
        assert!(
            x.message.contains("Linphone, belle-sip answer SHA-256"),
            "{}",
            x.message
        );
        // Turning the table off is fine when the default offers SHA-256 first.
        assert!(
            check("[accounts]\nbuiltin_clients = false\nalgorithms = [\"SHA-256\", \"MD5\"]\n")
                .is_empty()
        );
    }

    #[test]
    fn cleartext_listeners() {
        let f = check(
            "[listen]\nudp = [\"0.0.0.0:5060\"]\ntcp = [\"10.0.0.5:5060\", \"127.0.0.1:5060\"]\n",
        );
        assert_eq!(ids(&f), ["SW-CONF-020", "SW-CONF-020"]);
        let public = f.iter().find(|x| x.message.contains("udp")).unwrap();
        assert_eq!(public.severity, Severity::High);
        assert_eq!(public.location.line, 2);
        let private = f.iter().find(|x| x.message.contains("tcp")).unwrap();
        assert_eq!(private.severity, Severity::Medium);
        // With a TLS listener the public UDP one is medium.
        let f = check("[listen]\nudp = [\"[::]:5060\"]\ntls = [\"[::]:5061\"]\n");
        assert_eq!(one(&f, "SW-CONF-020").severity, Severity::Medium);
        assert!(
            check(
                "[listen]\nudp = [\"127.0.0.1:5060\", \"[::1]:5060\"]\ntls = [\"0.0.0.0:5061\"]\n"
            )
            .is_empty()
        );
    }

    #[test]
    fn trunk_without_srtp_tls_or_limits() {
        let f = check("[[trunk]]\nname = \"cheap\"\nproxy = \"sip:203.0.113.5:5060\"\n");
        assert_eq!(
            ids(&f),
            ["SW-CONF-030", "SW-CONF-031", "SW-CONF-040", "SW-CONF-041"]
        );
        let limits = one(&f, "SW-CONF-040");
        assert_eq!(limits.severity, Severity::High);
        assert_eq!(limits.location.line, 1);
        assert!(
            limits
                .message
                .contains("max_concurrent, max_cps, daily_spend_cap")
        );
        assert!(limits.fix.contains("global_invite_cps"));
        assert_eq!(one(&f, "SW-CONF-031").location.line, 3);
        // Only the missing keys are named; the accounts' media_encryption spelling counts too.
        let f = check(
            &GOOD_TRUNK
                .replace("max_cps = 5\n", "")
                .replace("require_srtp = true", "media_encryption = \"required\""),
        );
        assert_eq!(ids(&f), ["SW-CONF-040"]);
        assert!(f[0].message.contains("no max_cps:"), "{}", f[0].message);
        assert!(check(GOOD_TRUNK).is_empty());
    }

    #[test]
    fn admin_api_exposure() {
        use std::os::unix::fs::PermissionsExt;
        let f = check("[admin]\nlisten = \"0.0.0.0:8080\"\n");
        let a = one(&f, "SW-CONF-050");
        assert_eq!((a.severity, a.location.line), (Severity::High, 2));
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("admin.token");
        std::fs::write(&token, "0123456789abcdef0123456789abcdef\n").unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
        let text = format!(
            "[admin]\nlisten = \"192.0.2.1:8080\"\ntoken_file = \"{}\"\n",
            token.display()
        );
        let f = check(&text);
        assert_eq!(one(&f, "SW-CONF-050").severity, Severity::Critical);
        one(&f, "SW-FILE-005");
        assert!(check("[admin]\nlisten = \"127.0.0.1:9000\"\n").is_empty());
    }

    #[test]
    fn tls_files_are_checked_at_their_lines() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        std::fs::write(&key, "k").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["sip.example".to_owned()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2025, 1, 1);
        let cert = params
            .self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap();
        let cert_path = dir.path().join("cert.pem");
        std::fs::write(&cert_path, cert.pem()).unwrap();
        let text = format!(
            "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            cert_path.display(),
            key.display()
        );
        let f = check(&text);
        assert_eq!(one(&f, "SW-FILE-002").location.line, 2);
        assert_eq!(one(&f, "SW-FILE-001").location.line, 3);
        // A certificate the gateway will generate is not missing.
        let f = check("[tls]\ncert = \"/nonexistent/c.pem\"\ngenerate_self_signed = true\n");
        assert!(f.is_empty(), "{f:#?}");
        let f = check("[tls]\ncert = \"/nonexistent/c.pem\"\n");
        one(&f, "SW-FILE-004");
    }

    #[test]
    fn every_rule_has_title_and_fix() {
        for r in RULES {
            assert!(r.id.starts_with("SW-CONF-"));
        }
        for r in files::RULES {
            assert!(r.id.starts_with("SW-FILE-"));
        }
        let all = crate::rules::all_rules();
        for r in &all {
            assert!(!r.title.is_empty() && !r.fix.is_empty(), "{}", r.id);
        }
        let mut ids: Vec<&str> = all.iter().map(|r| r.id).collect();
        ids.dedup();
        assert_eq!(ids.len(), all.len(), "duplicate rule ids");
    }

    #[test]
    fn every_finding_names_a_known_rule() {
        let text = "[listen]\nudp = [\"0.0.0.0:5060\"]\n[admin]\nlisten = \"0.0.0.0:1\"\n\
                    [scanner]\nenabled = false\n[ban]\nmax_retry = 99\n\
                    [[trunk]]\nname = \"t\"\nproxy = \"sip:x\"\ndanger_password = \"t\"\n\
                    danger_x = true\n";
        let f = check(text);
        assert!(f.len() >= 10, "{f:#?}");
        for x in &f {
            assert!(crate::rules::rule(x.rule).is_some(), "{}", x.rule);
        }
    }
}
