//! The checks, and the entry point that finds files and hands each to its rules.
//!
//! Each rule module exports `RULES: &[Rule]` (listed by [`all_rules`], and in SARIF) and a check
//! function returning [`Finding`]s. The Asterisk rules see every Asterisk file of one audit at
//! once ([`AsteriskConfig`]), because the worst mistakes span files: a guest context in
//! `sip.conf` that dials out in `extensions.conf`, one password on a peer and a trunk.

use std::path::{Path, PathBuf};

use crate::asterisk::ConfFile;
use crate::{AuditError, Finding, Location, Report, Rule};

pub mod acl;
mod common;
pub mod extensions;
pub mod files;
pub mod iax;
pub mod pjsip;
pub mod secrets;
pub mod sip_conf;
pub mod sipwarden;
pub mod stir_shaken;

/// Every rule the audit knows, in id order.
pub fn all_rules() -> Vec<&'static Rule> {
    let mut all: Vec<&'static Rule> = [
        files::RULES,
        acl::RULES,
        sip_conf::RULES,
        pjsip::RULES,
        iax::RULES,
        extensions::RULES,
        secrets::RULES,
        stir_shaken::RULES,
        sipwarden::RULES,
    ]
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

/// The Asterisk files of one audit, by kind (a directory may hold both `sip.conf` and
/// `sip.conf.sample`; each is a file of its own).
#[derive(Clone, Debug, Default)]
pub struct AsteriskConfig {
    /// `sip.conf` (chan_sip).
    pub sip: Vec<ConfFile>,
    /// `pjsip.conf` (res_pjsip).
    pub pjsip: Vec<ConfFile>,
    /// `iax.conf` (chan_iax2).
    pub iax: Vec<ConfFile>,
    /// `extensions.conf` (the dialplan).
    pub extensions: Vec<ConfFile>,
    /// `acl.conf` (named ACLs, which the other files name with `acl=`).
    pub acl: Vec<ConfFile>,
    /// `stir_shaken.conf` (res_stir_shaken, Asterisk 18.22/20.7/21.2 and later).
    pub stir_shaken: Vec<ConfFile>,
}

impl AsteriskConfig {
    /// Runs every Asterisk rule.
    pub fn check(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        let acls = acl::NamedAcls::new(&self.acl);
        for c in &self.sip {
            out.extend(sip_conf::check(c, &acls));
        }
        for c in &self.pjsip {
            out.extend(pjsip::check(c, &acls));
        }
        for c in &self.iax {
            out.extend(iax::check(c, &acls));
        }
        for c in &self.stir_shaken {
            out.extend(stir_shaken::check(c));
        }
        out.extend(acl::check(self));
        out.extend(extensions::check(self));
        out.extend(secrets::check(self));
        out
    }

    /// Every file read, includes too.
    pub fn files(&self) -> impl Iterator<Item = &PathBuf> + '_ {
        [
            &self.sip,
            &self.pjsip,
            &self.iax,
            &self.extensions,
            &self.acl,
            &self.stir_shaken,
        ]
        .into_iter()
        .flatten()
        .flat_map(|c| c.files.iter())
    }
}

/// What a file is, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Sip,
    Pjsip,
    Iax,
    Extensions,
    Acl,
    StirShaken,
    Toml,
}

/// `sip.conf`, `pjsip.conf`, `iax.conf`, `extensions.conf`, `acl.conf`, `stir_shaken.conf`
/// (each also with `.sample`), `*.toml`.
fn kind_of(path: &Path) -> Option<Kind> {
    let name = path.file_name()?.to_str()?;
    if name.ends_with(".toml") {
        return Some(Kind::Toml);
    }
    match name.strip_suffix(".sample").unwrap_or(name) {
        "sip.conf" => Some(Kind::Sip),
        "pjsip.conf" => Some(Kind::Pjsip),
        "iax.conf" => Some(Kind::Iax),
        "extensions.conf" => Some(Kind::Extensions),
        "acl.conf" => Some(Kind::Acl),
        "stir_shaken.conf" => Some(Kind::StirShaken),
        _ => None,
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Audits the given files and directories. A directory is searched (not recursively) for the
/// files the audit knows by name: `sip.conf`, `pjsip.conf`, `iax.conf`, `extensions.conf`,
/// `acl.conf`, `stir_shaken.conf` (also with a `.sample` suffix) and sipwarden's `*.toml`; other
/// files in it are left alone. A file named directly must be one of those.
pub fn audit_paths(paths: &[PathBuf]) -> Result<Report, AuditError> {
    let mut targets: Vec<(PathBuf, Kind)> = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(io_error(p))?;
        if meta.is_dir() {
            let mut found: Vec<(PathBuf, Kind)> = std::fs::read_dir(p)
                .map_err(io_error(p))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|f| f.is_file())
                .filter_map(|f| kind_of(&f).map(|k| (f, k)))
                .collect();
            found.sort_by(|a, b| a.0.cmp(&b.0));
            targets.extend(found);
        } else {
            let kind = kind_of(p).ok_or_else(|| AuditError::Parse {
                location: Location {
                    file: p.clone(),
                    line: 0,
                },
                reason: "don't know how to audit this file (expected sip.conf, pjsip.conf, \
                         iax.conf, extensions.conf, acl.conf, stir_shaken.conf or *.toml)"
                    .into(),
            })?;
            targets.push((p.clone(), kind));
        }
    }

    // A file named twice (directly and through its directory) is read once.
    let mut seen = std::collections::HashSet::new();
    targets.retain(|(p, _)| seen.insert(p.canonicalize().unwrap_or_else(|_| p.clone())));

    let mut config = AsteriskConfig::default();
    let mut report = Report::default();
    let mut toml_findings = Vec::new();
    for (path, kind) in targets {
        let slot = match kind {
            Kind::Sip => &mut config.sip,
            Kind::Pjsip => &mut config.pjsip,
            Kind::Iax => &mut config.iax,
            Kind::Extensions => &mut config.extensions,
            Kind::Acl => &mut config.acl,
            Kind::StirShaken => &mut config.stir_shaken,
            Kind::Toml => {
                report.files.push(path.clone());
                toml_findings.extend(sipwarden::check_file(&path)?);
                continue;
            }
        };
        let conf = ConfFile::read(&path)?;
        report.files.extend(conf.files.iter().cloned());
        slot.push(conf);
    }
    report.findings = config.check();
    report.findings.extend(toml_findings);
    report.normalise();
    Ok(report)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod testutil;
