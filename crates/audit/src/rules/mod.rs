//! The checks, and the entry point that finds files and hands each to its rules.
//!
//! Each rule module exports `RULES: &[Rule]` (listed by [`all_rules`], and in SARIF) and a check
//! function returning [`Finding`]s. The Asterisk rules see every Asterisk file of one audit at
//! once ([`AsteriskConfig`]), because the worst mistakes span files: a guest context in
//! `sip.conf` that dials out in `extensions.conf`, one password on a peer and a trunk.
//!
//! [`audit_paths_as`] places each file in its dialect ([`crate::dialect`]), reads the files
//! as configurations (a main file with its parts; a file another includes, only there) and
//! judges each copy suffix (`.bak`, `.sample`) as a set of its own, so the same content
//! gives the same findings under Asterisk's names and under FreePBX's.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::asterisk::{ConfFile, Part};
use crate::dialect::{self, Dialect};
use crate::{AuditError, Finding, Report, Rule};

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

/// A file to audit and how it was placed.
#[derive(Clone, Debug)]
struct Target {
    path: PathBuf,
    dialect: Dialect,
    role: Role,
    /// The copy suffix (`.bak`; empty for the files in use).
    copy: String,
}

/// A file's place in its configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    /// The family's main file by name (`sip.conf`, `sip.conf.bak`): the parts beside it
    /// belong to it.
    Main,
    /// A part by name (`sip_additional.conf`, `pjsip.endpoint.conf`).
    Part,
    /// Placed by its content or `--as`: a configuration of its own.
    Alone,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The text of a file, for recognising it by content (bounded, regular files only).
fn read_text(path: &Path) -> Result<String, AuditError> {
    let bytes = crate::asterisk::read_file(path).map_err(io_error(path))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Places a file named directly: by `forced` (`--as`), else by name, else by content.
fn place_named(path: &Path, forced: Option<Dialect>) -> Result<Target, AuditError> {
    let named = dialect::by_name(path);
    let dialect = match (forced, &named) {
        (Some(d), _) => d,
        (None, Some(n)) => n.dialect,
        (None, None) => {
            dialect::by_content(&read_text(path)?).map_err(|why| AuditError::Unrecognised {
                path: path.to_path_buf(),
                why: why.to_string(),
            })?
        }
    };
    // Under `--as`, a name keeps its role only when it names that family.
    let role = match named.as_ref().filter(|n| n.dialect == dialect) {
        Some(n) if n.main => Role::Main,
        Some(_) => Role::Part,
        None => Role::Alone,
    };
    Ok(Target {
        path: path.to_path_buf(),
        dialect,
        role,
        copy: named.map(|n| n.copy).unwrap_or_default(),
    })
}

/// The files of a directory the audit knows by name (not recursively; hidden files and
/// TOML written for another program are left alone), in path order.
fn discover(dir: &Path) -> Result<Vec<Target>, AuditError> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let Ok(entry) = entry else { continue };
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if hidden || !path.is_file() {
            continue;
        }
        let Some(named) = dialect::by_name(&path) else {
            continue;
        };
        if named.dialect == Dialect::Sipwarden
            && read_text(&path).is_ok_and(|t| dialect::is_other_toml(&t))
        {
            continue;
        }
        found.push(Target {
            path,
            dialect: named.dialect,
            role: if named.main { Role::Main } else { Role::Part },
            copy: named.copy,
        });
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

fn canonical(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| p.to_path_buf())
}

/// Audits the given files and directories, each file in its dialect (see [`crate::dialect`]):
/// by name, else by content.
pub fn audit_paths(paths: &[PathBuf]) -> Result<Report, AuditError> {
    audit_paths_as(paths, None)
}

/// Audits the given files and directories. A file named directly is audited in `forced`
/// when given (`--as`), else in the dialect its name says, else its content; one that none
/// of them places is [`AuditError::Unrecognised`]. A directory is searched (not
/// recursively) for the files the audit knows by name: the families' files and parts, their
/// copies, and sipwarden's `*.toml`; other files in it are left alone, and `forced` does not
/// apply to it ([`AuditError::AsDirectory`]).
///
/// Files are then read as configurations: a file that another audited file `#include`s is
/// read there only, and a main file with the parts of its family beside it (same directory
/// and copy suffix) is one configuration, main file first, then the parts (see
/// [`ConfFile::read_parts`](crate::asterisk::ConfFile::read_parts)); parts without a main
/// file are one configuration too. So the same content gives the same findings whether it
/// sits in `sip.conf` or in FreePBX's parts of it, named one by one or found in their
/// directory. A file placed by content or `--as` is a configuration of its own.
pub fn audit_paths_as(paths: &[PathBuf], forced: Option<Dialect>) -> Result<Report, AuditError> {
    let mut targets: Vec<Target> = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(io_error(p))?;
        if meta.is_dir() {
            if let Some(dialect) = forced {
                return Err(AuditError::AsDirectory {
                    path: p.clone(),
                    dialect,
                });
            }
            targets.extend(discover(p)?);
        } else {
            targets.push(place_named(p, forced)?);
        }
    }

    // A file named twice (directly and through its directory) is read once.
    let mut seen = HashSet::new();
    targets.retain(|t| seen.insert(canonical(&t.path)));

    let mut report = Report::default();
    let mut toml_findings = Vec::new();
    let mut asterisk: Vec<(Target, ConfFile)> = Vec::new();
    for t in targets {
        if t.dialect == Dialect::Sipwarden {
            report.files.push(t.path.clone());
            toml_findings.extend(sipwarden::check_file(&t.path)?);
        } else {
            let conf = ConfFile::read(&t.path)?;
            asterisk.push((t, conf));
        }
    }

    // A file another one includes is audited there, in the context it is included in.
    let included: HashSet<PathBuf> = asterisk
        .iter()
        .flat_map(|(_, c)| c.files.iter().skip(1))
        .map(|f| canonical(f))
        .collect();
    asterisk.retain(|(t, _)| !included.contains(&canonical(&t.path)));

    let configurations = configurations(asterisk)?;
    for (_, _, conf) in &configurations {
        report.files.extend(conf.files.iter().cloned());
    }
    report.findings = worlds(&configurations)
        .iter()
        .flat_map(AsteriskConfig::check)
        .collect();
    report.findings.extend(toml_findings);
    report.normalise();
    Ok(report)
}

/// Reads the Asterisk files as configurations: a main file with the parts of its family
/// beside it (same directory and copy suffix; without a main file the parts alone), in
/// the order they were named, each with its copy suffix. Parts are read main file first,
/// then the sip/iax parts that open with settings (FreePBX's `[general]` parts), then the
/// rest, each in path order.
fn configurations(
    files: Vec<(Target, ConfFile)>,
) -> Result<Vec<(Dialect, String, ConfFile)>, AuditError> {
    type Key = (Dialect, String, Option<PathBuf>);
    let mut groups: Vec<(Key, Vec<(Target, ConfFile)>)> = Vec::new();
    let mut alone = Vec::new();
    for (t, c) in files {
        if t.role == Role::Alone {
            alone.push((t.dialect, t.copy, c));
            continue;
        }
        let key = (
            t.dialect,
            t.copy.clone(),
            t.path.parent().map(Path::to_path_buf),
        );
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push((t, c)),
            None => groups.push((key, vec![(t, c)])),
        }
    }
    let mut out = Vec::new();
    for ((dialect, copy, _), mut members) in groups {
        // Parts that open with `[general]` settings first, as FreePBX includes them: the
        // configuration is then named after the part holding `[general]`.
        let order = |(t, c): &(Target, ConfFile)| {
            let headless =
                dialect.headless_is_general() && c.sections.first().is_some_and(|s| s.implicit);
            (t.role, !headless, t.path.clone())
        };
        members.sort_by_key(order);
        // Two main files of one family in one place (`sip.conf.bak` and `sip.conf.BAK`):
        // the parts go with the first, the others stand alone.
        while members.len() > 1 && members.iter().filter(|(t, _)| t.role == Role::Main).count() > 1
        {
            let Some(i) = members.iter().rposition(|(t, _)| t.role == Role::Main) else {
                break;
            };
            let (_, c) = members.remove(i);
            out.push((dialect, copy.clone(), c));
        }
        let conf = match members.as_slice() {
            [(t, c)] if t.role == Role::Main => c.clone(),
            _ => {
                let parts: Vec<Part<'_>> = members
                    .iter()
                    .map(|(t, _)| Part {
                        path: &t.path,
                        headless_general: t.role == Role::Part && dialect.headless_is_general(),
                    })
                    .collect();
                ConfFile::read_parts(&parts)?
            }
        };
        out.push((dialect, copy, conf));
    }
    out.extend(alone);
    Ok(out)
}

/// The sets of configurations judged together. Each copy suffix is one: a copy is judged
/// as the configuration it would be if put back in place, with the files of the same
/// suffix and, for the dialects it has none of, the files in use. So `sip.conf` and
/// `sip.conf.bak` never meet (their peers would all "share" their secrets), while a
/// `sip.conf.bak` still reaches the dialplan of `extensions.conf`. Findings both sets
/// make about the same files are dropped as duplicates by [`Report::normalise`].
fn worlds(configurations: &[(Dialect, String, ConfFile)]) -> Vec<AsteriskConfig> {
    let mut copies: Vec<&str> = configurations.iter().map(|(_, c, _)| c.as_str()).collect();
    copies.sort_unstable();
    copies.dedup();
    copies
        .iter()
        .map(|&copy| {
            let own: Vec<&(Dialect, String, ConfFile)> = configurations
                .iter()
                .filter(|(_, c, _)| c == copy)
                .collect();
            let borrowed = configurations.iter().filter(|(d, c, _)| {
                !copy.is_empty() && c.is_empty() && !own.iter().any(|(o, _, _)| o == d)
            });
            let mut world = AsteriskConfig::default();
            for (dialect, _, conf) in own.iter().copied().chain(borrowed) {
                let slot = match dialect {
                    Dialect::Sip => &mut world.sip,
                    Dialect::Pjsip => &mut world.pjsip,
                    Dialect::Iax => &mut world.iax,
                    Dialect::Extensions => &mut world.extensions,
                    Dialect::Acl => &mut world.acl,
                    Dialect::StirShaken => &mut world.stir_shaken,
                    Dialect::Sipwarden => continue,
                };
                slot.push(conf.clone());
            }
            world
        })
        .collect()
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod testutil;
