//! The security checklist as code: `sipwarden audit` reads Asterisk (`sip.conf`, `pjsip.conf`,
//! `iax.conf`, `extensions.conf`, `acl.conf`, `stir_shaken.conf`) and sipwarden configurations
//! and reports, for each finding, the rule, its severity, the `file:line` and how to fix it.
//!
//! Most PBXs that are defrauded were misconfigured in a way a checklist would have caught; this
//! crate is that checklist. It does no I/O beyond reading the files it is given (and their
//! metadata, for the permission and certificate checks), so the CLI stays a thin shell.
//!
//! Layout: [`dialect`] tells which dialect a file is written in (by name, FreePBX's parts and
//! admins' copies included, else by content); [`asterisk`] reads Asterisk's configuration
//! dialect without losing what generic INI readers lose (templates, repeated keys, includes,
//! lines); [`rules`] holds the checks;
//! [`secret`] judges and generates passwords; [`output`] renders a [`Report`] for people, as JSON
//! and as SARIF 2.1.0.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// How bad a finding is. Ordered, so `--fail-on` compares with `>=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; not a weakness by itself.
    Info,
    /// Hardening that is missing.
    Low,
    /// A weakness that needs another mistake to be exploited.
    Medium,
    /// Exploitable from the internet: toll fraud, account takeover, eavesdropping.
    High,
    /// Exploitable now by anyone who finds the service.
    Critical,
}

impl Severity {
    /// All levels, most severe first (the order of the human report).
    pub const ALL: [Self; 5] = [
        Self::Critical,
        Self::High,
        Self::Medium,
        Self::Low,
        Self::Info,
    ];

    /// The lowercase name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    /// Parses `info|low|medium|high|critical` (any case).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a finding points: a file and a 1-based line (0 when the finding is about the whole file,
/// e.g. its permissions).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Location {
    /// The file as it was named (or found by directory discovery / `#include`).
    pub file: PathBuf,
    /// 1-based line; 0 for the file as a whole.
    pub line: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file.display())
        } else {
            write!(f, "{}:{}", self.file.display(), self.line)
        }
    }
}

/// A check, described once; findings refer to it by id. The SARIF output lists these as the
/// tool's rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// Stable identifier, `SW-<AREA>-<NNN>` (e.g. `SW-SIP-001`).
    pub id: &'static str,
    /// The severity of a finding of this rule unless the finding says otherwise.
    pub severity: Severity,
    /// One line: what is wrong.
    pub title: &'static str,
    /// How to fix it, in the configuration's own terms.
    pub fix: &'static str,
}

/// One thing found wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// [`Rule::id`] of the rule that fired.
    pub rule: &'static str,
    /// Usually the rule's severity; a rule may raise or lower it for a particular case.
    pub severity: Severity,
    /// What was found, naming the section and key. Never contains a secret.
    pub message: String,
    /// Where.
    pub location: Location,
    /// How to fix it (usually the rule's [`Rule::fix`]).
    pub fix: String,
}

/// Why an audit could not read its input (exit status 2).
#[derive(Debug)]
pub enum AuditError {
    /// A file or directory could not be read.
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// `#include` chains that come back to a file already being read.
    IncludeCycle {
        /// The files of the cycle, in include order, ending with the repeated one.
        chain: Vec<PathBuf>,
    },
    /// A file that is not valid in its dialect.
    Parse {
        /// Where.
        location: Location,
        /// What is wrong.
        reason: String,
    },
    /// A file named directly whose dialect neither its name nor its content tells.
    Unrecognised {
        /// The file.
        path: PathBuf,
        /// Why its content did not decide.
        why: String,
    },
    /// `--as` given with a directory: it names the dialect of files, and a directory holds
    /// files of several.
    AsDirectory {
        /// The directory.
        path: PathBuf,
        /// The dialect given.
        dialect: Dialect,
    },
    /// A sipwarden configuration (or accounts file) the gateway would refuse: every error, each
    /// naming the file, the line and the key.
    Config {
        /// The errors, as `sipwarden_config` reports them.
        errors: Vec<sipwarden_config::ConfigError>,
    },
}

impl fmt::Display for AuditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Self::IncludeCycle { chain } => {
                let names: Vec<String> = chain.iter().map(|p| p.display().to_string()).collect();
                write!(f, "#include cycle: {}", names.join(" -> "))
            }
            Self::Parse { location, reason } => write!(f, "{location}: {reason}"),
            Self::Unrecognised { path, why } => write!(
                f,
                "{}: don't know how to audit this: its name is not one the audit knows \
                 (sip.conf, pjsip.conf, iax.conf, extensions.conf, acl.conf, \
                 stir_shaken.conf, their FreePBX parts and copies such as \
                 sip_additional.conf or sip.conf.bak, *.toml), and {why}; say which \
                 dialect it is with --as {}",
                path.display(),
                Dialect::ALL.map(Dialect::name).join("|")
            ),
            Self::AsDirectory { path, dialect } => write!(
                f,
                "{}: --as {dialect} applies to files, and this is a directory (its files are \
                 recognised by name)",
                path.display()
            ),
            Self::Config { errors } => {
                let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
                f.write_str(&lines.join("\n"))
            }
        }
    }
}

impl std::error::Error for AuditError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            Self::Config { errors } if errors.len() == 1 => errors
                .first()
                .map(|e| e as &(dyn std::error::Error + 'static)),
            _ => None,
        }
    }
}

/// The result of auditing a set of files.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Every file read, includes too, in reading order.
    pub files: Vec<PathBuf>,
    /// Findings, sorted by severity (most severe first), then location.
    pub findings: Vec<Finding>,
}

impl Report {
    /// The most severe finding's level, if any.
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }

    /// Sorts findings most severe first, then by file and line, then rule, and drops exact
    /// duplicates (a file reached twice through includes).
    pub fn normalise(&mut self) {
        self.findings.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then_with(|| a.location.cmp(&b.location))
                .then_with(|| a.rule.cmp(b.rule))
                .then_with(|| a.message.cmp(&b.message))
        });
        self.findings.dedup();
    }
}

pub mod asterisk;
pub mod dialect;
pub mod output;
pub mod rules;
pub mod secret;

pub use dialect::Dialect;
pub use rules::{audit_paths, audit_paths_as};
