//! Checks on files themselves: private keys readable by others, certificates expired or about to,
//! configuration files holding secrets readable by others.
//!
//! These are the findings a configuration review misses because they are not in the text: a
//! `0644` key copied with `cp`, a certificate that expires next week. Findings point at the
//! configuration line that names the file when the caller knows it (that is where the reader
//! looks), and name the file itself in the message.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use x509_parser::certificate::X509Certificate;
use x509_parser::pem::Pem;

use crate::{Finding, Location, Rule, Severity};

/// Certificates closer than this to their end are reported (a month leaves time to renew).
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// Private key readable by group or others.
pub const KEY_READABLE: Rule = Rule {
    id: "SW-FILE-001",
    severity: Severity::High,
    title: "Private key readable by other users",
    fix: "Make the key readable by its owner only: chmod 600 KEYFILE (and chown it to the user \
          the service runs as).",
};

/// Certificate past its end date (or not yet valid).
pub const CERT_EXPIRED: Rule = Rule {
    id: "SW-FILE-002",
    severity: Severity::High,
    title: "Certificate expired or not yet valid",
    fix: "Renew the certificate (e.g. with your ACME client) and reload the service; peers refuse \
          an expired certificate, and turning verification off to cope is worse.",
};

/// Certificate ending within [`EXPIRY_WARNING_DAYS`].
pub const CERT_EXPIRING: Rule = Rule {
    id: "SW-FILE-003",
    severity: Severity::Medium,
    title: "Certificate expires within 30 days",
    fix: "Renew the certificate now and automate renewal (ACME) so it never reaches its end date.",
};

/// Certificate file that cannot be read or holds no certificate.
pub const CERT_UNREADABLE: Rule = Rule {
    id: "SW-FILE-004",
    severity: Severity::Medium,
    title: "Certificate file missing or not a certificate",
    fix: "Point the setting at a PEM file holding the certificate chain (-----BEGIN CERTIFICATE-----), \
          leaf first.",
};

/// File with secrets readable by every user.
pub const SECRET_WORLD_READABLE: Rule = Rule {
    id: "SW-FILE-005",
    severity: Severity::High,
    title: "File holding secrets readable by every user",
    fix: "Remove access for others: chmod o-rwx FILE (0600, or 0640 with a dedicated group).",
};

/// File with secrets readable by its group.
pub const SECRET_GROUP_READABLE: Rule = Rule {
    id: "SW-FILE-006",
    severity: Severity::Low,
    title: "File holding secrets readable by its group",
    fix: "Unless the group is dedicated to the service, chmod 600 FILE.",
};

/// The rules of this module.
pub const RULES: &[Rule] = &[
    KEY_READABLE,
    CERT_EXPIRED,
    CERT_EXPIRING,
    CERT_UNREADABLE,
    SECRET_WORLD_READABLE,
    SECRET_GROUP_READABLE,
];

/// Certificate files larger than this are not read whole (a chain is a few kilobytes; a path
/// pointing at a device or a huge file must not hang or exhaust the audit).
pub const MAX_READ: u64 = 1 << 20;

/// Reads at most `limit` bytes of `path`.
pub fn read_prefix(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut data = Vec::new();
    std::fs::File::open(path)?
        .take(limit)
        .read_to_end(&mut data)?;
    Ok(data)
}

/// The permission bits of `path` (following symlinks: the target's mode is what protects it);
/// `None` when it cannot be read or the platform has no Unix modes.
fn mode(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path)
            .ok()
            .map(|m| m.permissions().mode() & 0o7777)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

fn finding(
    rule: &Rule,
    severity: Severity,
    message: String,
    path: &Path,
    at: Option<&Location>,
) -> Finding {
    Finding {
        rule: rule.id,
        severity,
        message,
        location: at.cloned().unwrap_or_else(|| Location {
            file: path.to_path_buf(),
            line: 0,
        }),
        fix: rule.fix.to_owned(),
    }
}

/// A private key file (`referenced_at`: the config line naming it, if any). Any permission for
/// group or others is a finding: whoever reads the key can impersonate the server and, without
/// forward secrecy, decrypt recorded calls. A missing file gives no finding (nothing to leak).
pub fn check_private_key(path: &Path, referenced_at: Option<&Location>) -> Vec<Finding> {
    match mode(path) {
        Some(m) if m & 0o077 != 0 => vec![finding(
            &KEY_READABLE,
            KEY_READABLE.severity,
            format!(
                "private key {} has mode {m:04o}: group or other users can read it",
                path.display()
            ),
            path,
            referenced_at,
        )],
        _ => Vec::new(),
    }
}

/// A certificate file (PEM, one or more certificates; or one DER certificate), judged at `now`.
/// Every certificate of a chain is checked: an expired intermediate breaks the chain as surely
/// as an expired leaf. A file that cannot be read or parsed is a finding, not an error, so one
/// bad file does not hide the rest of the report.
pub fn check_certificate(
    path: &Path,
    referenced_at: Option<&Location>,
    now: SystemTime,
) -> Vec<Finding> {
    let unreadable = |why: String| {
        vec![finding(
            &CERT_UNREADABLE,
            CERT_UNREADABLE.severity,
            format!("certificate {}: {why}", path.display()),
            path,
            referenced_at,
        )]
    };
    let data = match read_prefix(path, MAX_READ) {
        Ok(d) => d,
        Err(e) => return unreadable(format!("cannot be read ({e})")),
    };
    let now = match now.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(_) => 0,
    };
    let mut blocks: Vec<Pem> = Vec::new();
    for pem in Pem::iter_from_buffer(&data) {
        // A broken block ends the walk: the reader may not advance past it.
        let Ok(pem) = pem else { break };
        if pem.label == "CERTIFICATE" {
            blocks.push(pem);
        }
    }
    let mut findings = Vec::new();
    if blocks.is_empty() {
        // Not PEM: perhaps one DER certificate.
        return match x509_parser::parse_x509_certificate(&data) {
            Ok((_, cert)) => {
                judge(&cert, 1, 1, now, path, referenced_at, &mut findings);
                findings
            }
            Err(_) => unreadable("holds no PEM or DER certificate".into()),
        };
    }
    let total = blocks.len();
    for (i, pem) in blocks.iter().enumerate() {
        match pem.parse_x509() {
            Ok(cert) => judge(&cert, i + 1, total, now, path, referenced_at, &mut findings),
            Err(e) => findings.extend(unreadable(format!(
                "certificate {} of {total} does not parse ({e})",
                i + 1
            ))),
        }
    }
    findings
}

/// Adds the expiry findings for certificate `n` of `total`.
fn judge(
    cert: &X509Certificate<'_>,
    n: usize,
    total: usize,
    now: i64,
    path: &Path,
    at: Option<&Location>,
    out: &mut Vec<Finding>,
) {
    let v = cert.validity();
    let which = if total == 1 {
        format!("certificate {} ({})", path.display(), cert.subject())
    } else {
        format!(
            "certificate {n} of {total} in {} ({})",
            path.display(),
            cert.subject()
        )
    };
    let not_after = v.not_after.timestamp();
    let not_before = v.not_before.timestamp();
    let end = v.not_after.to_datetime().date();
    if not_after < now {
        out.push(finding(
            &CERT_EXPIRED,
            CERT_EXPIRED.severity,
            format!("{which} expired on {end}"),
            path,
            at,
        ));
    } else if not_before > now {
        out.push(finding(
            &CERT_EXPIRED,
            CERT_EXPIRED.severity,
            format!(
                "{which} is not valid before {}",
                v.not_before.to_datetime().date()
            ),
            path,
            at,
        ));
    } else if not_after - now < EXPIRY_WARNING_DAYS * 86_400 {
        let days = (not_after - now) / 86_400;
        out.push(finding(
            &CERT_EXPIRING,
            CERT_EXPIRING.severity,
            format!("{which} expires on {end}, in {days} days"),
            path,
            at,
        ));
    }
}

/// A configuration file known to hold secrets (passwords, tokens, HA1 digests). Readable by
/// every user is high: any local account, or a web server's path traversal, reads the trunk
/// password. Group-readable is low: often deliberate (a service group), worth a look.
pub fn check_secret_file_mode(path: &Path) -> Vec<Finding> {
    check_secret_file_mode_at(path, None)
}

/// [`check_secret_file_mode`] for a file named on a configuration line (`referenced_at`).
pub fn check_secret_file_mode_at(path: &Path, referenced_at: Option<&Location>) -> Vec<Finding> {
    let Some(m) = mode(path) else {
        return Vec::new();
    };
    let (rule, who) = if m & 0o004 != 0 {
        (&SECRET_WORLD_READABLE, "every user")
    } else if m & 0o040 != 0 {
        (&SECRET_GROUP_READABLE, "its group")
    } else {
        return Vec::new();
    };
    vec![finding(
        rule,
        rule.severity,
        format!(
            "{} holds secrets and has mode {m:04o}: readable by {who}",
            path.display()
        ),
        path,
        referenced_at,
    )]
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;
    use std::time::Duration;

    use rcgen::{CertificateParams, KeyPair, date_time_ymd};

    use super::*;

    fn write(dir: &Path, name: &str, data: &[u8], mode: u32) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, data).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    fn cert_pem(from: (i32, u8, u8), to: (i32, u8, u8)) -> String {
        let mut params = CertificateParams::new(vec!["sip.example.org".to_owned()]).unwrap();
        params.not_before = date_time_ymd(from.0, from.1, from.2);
        params.not_after = date_time_ymd(to.0, to.1, to.2);
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().pem()
    }

    /// 2026-06-01T00:00:00Z.
    fn june_2026() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_780_272_000)
    }

    fn ids(f: &[Finding]) -> Vec<&str> {
        f.iter().map(|f| f.rule).collect()
    }

    #[test]
    fn private_key_modes() {
        let dir = tempfile::tempdir().unwrap();
        for (mode, bad) in [
            (0o600, false),
            (0o400, false),
            (0o640, true),
            (0o604, true),
            (0o644, true),
        ] {
            let p = write(dir.path(), "key.pem", b"key", mode);
            let f = check_private_key(&p, None);
            assert_eq!(!f.is_empty(), bad, "{mode:o}");
            if bad {
                assert_eq!(f[0].rule, "SW-FILE-001");
                assert_eq!(f[0].severity, Severity::High);
                assert_eq!(f[0].location.line, 0);
                assert!(f[0].message.contains(&format!("{mode:04o}")));
            }
        }
        assert!(check_private_key(&dir.path().join("missing.pem"), None).is_empty());
    }

    #[test]
    fn private_key_finding_points_at_the_config_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "key.pem", b"key", 0o644);
        let at = Location {
            file: "sipwarden.toml".into(),
            line: 7,
        };
        let f = check_private_key(&p, Some(&at));
        assert_eq!(f[0].location, at);
        assert!(f[0].message.contains("key.pem"));
    }

    #[test]
    fn certificate_dates() {
        let dir = tempfile::tempdir().unwrap();
        let valid = write(
            dir.path(),
            "valid.pem",
            cert_pem((2026, 1, 1), (2027, 1, 1)).as_bytes(),
            0o644,
        );
        let expired = write(
            dir.path(),
            "old.pem",
            cert_pem((2024, 1, 1), (2025, 1, 1)).as_bytes(),
            0o644,
        );
        let soon = write(
            dir.path(),
            "soon.pem",
            cert_pem((2026, 1, 1), (2026, 6, 20)).as_bytes(),
            0o644,
        );
        let future = write(
            dir.path(),
            "future.pem",
            cert_pem((2026, 7, 1), (2027, 7, 1)).as_bytes(),
            0o644,
        );
        assert!(check_certificate(&valid, None, june_2026()).is_empty());
        let f = check_certificate(&expired, None, june_2026());
        assert_eq!(ids(&f), ["SW-FILE-002"]);
        assert!(
            f[0].message.contains("expired on 2025-01-01"),
            "{}",
            f[0].message
        );
        assert!(f[0].message.contains("CN="), "{}", f[0].message);
        let f = check_certificate(&soon, None, june_2026());
        assert_eq!(ids(&f), ["SW-FILE-003"]);
        assert_eq!(f[0].severity, Severity::Medium);
        assert!(f[0].message.contains("in 19 days"), "{}", f[0].message);
        assert_eq!(
            ids(&check_certificate(&future, None, june_2026())),
            ["SW-FILE-002"]
        );
        // 31 days before its end, the soon-expiring one was fine.
        let may = UNIX_EPOCH + Duration::from_secs(1_780_272_000 - 12 * 86_400);
        assert!(check_certificate(&soon, None, may).is_empty());
    }

    #[test]
    fn every_certificate_of_a_chain_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let chain = format!(
            "{}{}{}",
            cert_pem((2026, 1, 1), (2027, 1, 1)),
            cert_pem((2020, 1, 1), (2021, 1, 1)),
            cert_pem((2026, 1, 1), (2026, 6, 10)),
        );
        let p = write(dir.path(), "chain.pem", chain.as_bytes(), 0o644);
        let f = check_certificate(&p, None, june_2026());
        assert_eq!(ids(&f), ["SW-FILE-002", "SW-FILE-003"]);
        assert!(
            f[0].message.contains("certificate 2 of 3"),
            "{}",
            f[0].message
        );
        assert!(
            f[1].message.contains("certificate 3 of 3"),
            "{}",
            f[1].message
        );
    }

    #[test]
    fn der_certificate_is_read_too() {
        let dir = tempfile::tempdir().unwrap();
        let mut params = CertificateParams::new(vec!["x".to_owned()]).unwrap();
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2021, 1, 1);
        let der = params.self_signed(&KeyPair::generate().unwrap()).unwrap();
        let p = write(dir.path(), "cert.der", der.der(), 0o644);
        assert_eq!(
            ids(&check_certificate(&p, None, june_2026())),
            ["SW-FILE-002"]
        );
    }

    #[test]
    fn unparseable_or_missing_certificate_is_a_finding() {
        let dir = tempfile::tempdir().unwrap();
        let junk = write(dir.path(), "junk.pem", b"not a certificate\n", 0o644);
        assert_eq!(
            ids(&check_certificate(&junk, None, june_2026())),
            ["SW-FILE-004"]
        );
        let broken = write(
            dir.path(),
            "broken.pem",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            0o644,
        );
        let f = check_certificate(&broken, None, june_2026());
        assert_eq!(ids(&f), ["SW-FILE-004"]);
        assert!(f[0].message.contains("does not parse"), "{}", f[0].message);
        let f = check_certificate(&dir.path().join("none.pem"), None, june_2026());
        assert_eq!(ids(&f), ["SW-FILE-004"]);
        assert!(f[0].message.contains("cannot be read"), "{}", f[0].message);
    }

    #[test]
    fn secret_file_modes() {
        let dir = tempfile::tempdir().unwrap();
        for (mode, want) in [
            (0o600, None),
            (0o400, None),
            (0o640, Some(("SW-FILE-006", Severity::Low))),
            (0o644, Some(("SW-FILE-005", Severity::High))),
            (0o604, Some(("SW-FILE-005", Severity::High))),
        ] {
            let p = write(dir.path(), "sip.conf", b"secret=x\n", mode);
            let f = check_secret_file_mode(&p);
            assert_eq!(f.first().map(|f| (f.rule, f.severity)), want, "{mode:o}");
            assert!(f.len() <= 1);
        }
        assert!(check_secret_file_mode(&dir.path().join("missing")).is_empty());
    }
}
