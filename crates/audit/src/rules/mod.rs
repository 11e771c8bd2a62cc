//! The checks, and the entry point that finds files and hands each to its rules.
//!
//! Each rule module exports `RULES: &[Rule]` (listed by [`all_rules`], and in SARIF) and a check
//! function returning [`Finding`]s.

use std::path::PathBuf;

use crate::{AuditError, Report, Rule};

pub mod files;
pub mod sipwarden;

/// Every rule the audit knows, in id order.
pub fn all_rules() -> Vec<&'static Rule> {
    let mut all: Vec<&'static Rule> = [files::RULES, sipwarden::RULES]
        .into_iter()
        .flatten()
        .collect();
    all.sort_by_key(|r| r.id);
    all
}

/// Looks a rule up by id.
pub fn rule(id: &str) -> Option<&'static Rule> {
    all_rules().into_iter().find(|r| r.id == id)
}

/// Audits the given files and directories. A directory is searched (not recursively) for the
/// files the audit knows by name: `sip.conf`, `pjsip.conf`, `iax.conf`, `extensions.conf` (also
/// with a `.sample` suffix) and sipwarden's `*.toml`.
///
/// PLACEHOLDER: the dispatch to the Asterisk and sipwarden rules comes with those rules.
pub fn audit_paths(paths: &[PathBuf]) -> Result<Report, AuditError> {
    let mut report = Report::default();
    for p in paths {
        std::fs::metadata(p).map_err(|source| AuditError::Io {
            path: p.clone(),
            source,
        })?;
        report.files.push(p.clone());
        if p.extension().is_some_and(|e| e == "toml") {
            report.findings.extend(sipwarden::check_file(p)?);
        }
    }
    report.normalise();
    Ok(report)
}
