//! Test helpers: write configurations to a temporary directory and audit it.

use std::path::Path;

use tempfile::TempDir;

use crate::Report;

/// Writes `files` (name, content) into a fresh directory and audits the directory. The files
/// are readable by their owner only (as configurations with secrets should be), so that the
/// file-mode rules stay out of the other rules' tests.
pub(crate) fn audit(files: &[(&str, &str)]) -> (TempDir, Report) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let report = crate::audit_paths(&[dir.path().to_path_buf()]).expect("audit");
    (dir, report)
}

/// The findings of `rule`.
pub(crate) fn of<'a>(report: &'a Report, rule: &str) -> Vec<&'a crate::Finding> {
    report.findings.iter().filter(|f| f.rule == rule).collect()
}

/// Whether `rule` fired.
pub(crate) fn fired(report: &Report, rule: &str) -> bool {
    !of(report, rule).is_empty()
}

/// One line per finding, paths relative to `base`: what the snapshots hold.
pub(crate) fn render(report: &Report, base: &Path) -> String {
    let mut s = String::new();
    for f in &report.findings {
        let file = f
            .location
            .file
            .strip_prefix(base)
            .unwrap_or(&f.location.file);
        s.push_str(&format!(
            "{} {} {}:{} {}\n",
            f.severity,
            f.rule,
            file.display(),
            f.location.line,
            f.message
        ));
    }
    s
}
