//! Renders a [`Report`]: as text for people, as JSON for scripts, as SARIF 2.1.0 for code
//! scanning dashboards (GitHub, GitLab, IDEs).
//!
//! The JSON field names are a contract: scripts parse them, so they change only with a version
//! bump. Findings never contain secrets (rules guarantee it), so every format is safe to paste.

use std::fmt::Write as _;
use std::path::{Component, Path};

use serde::Serialize;
use serde_json::{Value, json};

use crate::rules::all_rules;
use crate::{Finding, Report, Rule, Severity};

/// The `$schema` SARIF consumers expect: the OASIS standard's schema.
pub const SARIF_SCHEMA: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

const TOOL: &str = "sipwarden";
const VERSION: &str = env!("CARGO_PKG_VERSION");
const INFORMATION_URI: &str = env!("CARGO_PKG_REPOSITORY");

/// Counts of findings per severity.
fn counts(report: &Report) -> [(Severity, usize); 5] {
    Severity::ALL.map(|s| {
        (
            s,
            report.findings.iter().filter(|f| f.severity == s).count(),
        )
    })
}

fn color(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "\x1b[1;31m",
        Severity::High => "\x1b[31m",
        Severity::Medium => "\x1b[33m",
        Severity::Low => "\x1b[36m",
        Severity::Info => "\x1b[2m",
    }
}

const RESET: &str = "\x1b[0m";

/// The report for a terminal: findings grouped by severity, most severe first, each as
/// `file:line  RULE-ID  message` with its fix indented below, then a summary line.
pub fn text(report: &Report, use_color: bool) -> String {
    let mut out = String::new();
    let paint = |s: Severity, text: &str| {
        if use_color {
            format!("{}{text}{RESET}", color(s))
        } else {
            text.to_owned()
        }
    };
    for severity in Severity::ALL {
        let group: Vec<&Finding> = report
            .findings
            .iter()
            .filter(|f| f.severity == severity)
            .collect();
        if group.is_empty() {
            continue;
        }
        let header = format!("{} ({})", severity.as_str().to_uppercase(), group.len());
        let _ = writeln!(out, "{}", paint(severity, &header));
        for f in group {
            let _ = writeln!(
                out,
                "  {}  {}  {}",
                f.location,
                paint(severity, f.rule),
                f.message
            );
            for (i, line) in f.fix.lines().enumerate() {
                let lead = if i == 0 { "fix: " } else { "     " };
                let _ = writeln!(out, "      {lead}{line}");
            }
        }
        out.push('\n');
    }
    let total = report.findings.len();
    let per: Vec<String> = counts(report)
        .iter()
        .map(|(s, n)| format!("{n} {s}"))
        .collect();
    let files = report.files.len();
    let _ = writeln!(
        out,
        "{} finding{}: {} ({} file{} read)",
        total,
        if total == 1 { "" } else { "s" },
        per.join(", "),
        files,
        if files == 1 { "" } else { "s" }
    );
    out
}

#[derive(Serialize)]
struct JsonReport<'a> {
    tool: JsonTool,
    files: Vec<String>,
    summary: JsonSummary,
    findings: Vec<JsonFinding<'a>>,
    rules: Vec<&'static Rule>,
}

#[derive(Serialize)]
struct JsonTool {
    name: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
struct JsonSummary {
    total: usize,
    worst: Option<Severity>,
    critical: usize,
    high: usize,
    medium: usize,
    low: usize,
    info: usize,
}

#[derive(Serialize)]
struct JsonFinding<'a> {
    rule: &'a str,
    severity: Severity,
    file: String,
    /// 1-based; 0 when the finding is about the whole file.
    line: u32,
    message: &'a str,
    fix: &'a str,
}

/// The report as JSON: `tool`, `files`, `summary` (counts by severity and the worst), `findings`
/// (`rule`, `severity`, `file`, `line` — 0 for the whole file —, `message`, `fix`) and `rules`
/// (every rule the audit applies: `id`, `severity`, `title`, `fix`).
pub fn json(report: &Report) -> String {
    let c = counts(report);
    let count = |s: Severity| c.iter().find(|(x, _)| *x == s).map_or(0, |(_, n)| *n);
    let doc = JsonReport {
        tool: JsonTool {
            name: TOOL,
            version: VERSION,
        },
        files: report
            .files
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        summary: JsonSummary {
            total: report.findings.len(),
            worst: report.worst(),
            critical: count(Severity::Critical),
            high: count(Severity::High),
            medium: count(Severity::Medium),
            low: count(Severity::Low),
            info: count(Severity::Info),
        },
        findings: report
            .findings
            .iter()
            .map(|f| JsonFinding {
                rule: f.rule,
                severity: f.severity,
                file: f.location.file.display().to_string(),
                line: f.location.line,
                message: &f.message,
                fix: &f.fix,
            })
            .collect(),
        rules: all_rules(),
    };
    // Serialising plain structs of strings and numbers cannot fail.
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// SARIF's three levels: errors fail a code-scanning gate, warnings and notes inform.
pub fn sarif_level(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "note",
    }
}

/// The report as a SARIF 2.1.0 log, file URIs relative to the working directory where
/// possible (what code-scanning services resolve against the repository).
pub fn sarif(report: &Report) -> Value {
    let base = std::env::current_dir().ok();
    sarif_with_base(report, base.as_deref())
}

/// [`sarif`] with file URIs made relative to `base` (absolute `file://` URIs for files outside
/// it, or for every absolute path when `base` is `None`).
pub fn sarif_with_base(report: &Report, base: Option<&Path>) -> Value {
    let rules = all_rules();
    let descriptors: Vec<Value> = rules
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "shortDescription": { "text": r.title },
                "fullDescription": { "text": r.title },
                "help": { "text": r.fix },
                "defaultConfiguration": { "level": sarif_level(r.severity) },
                "properties": { "severity": r.severity.as_str() },
            })
        })
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let mut physical = json!({
                "artifactLocation": { "uri": file_uri(&f.location.file, base) },
            });
            if f.location.line > 0 {
                insert(
                    &mut physical,
                    "region",
                    json!({ "startLine": f.location.line }),
                );
            }
            let mut result = json!({
                "ruleId": f.rule,
                "level": sarif_level(f.severity),
                "message": { "text": format!("{}\nFix: {}", f.message, f.fix) },
                "locations": [ { "physicalLocation": physical } ],
                "properties": { "severity": f.severity.as_str() },
            });
            if let Some(i) = rules.iter().position(|r| r.id == f.rule) {
                insert(&mut result, "ruleIndex", json!(i));
            }
            result
        })
        .collect();
    let mut driver = json!({
        "name": TOOL,
        "version": VERSION,
        "rules": descriptors,
    });
    // SARIF requires an absolute URI here; a build without a repository URL has none to give.
    if !INFORMATION_URI.is_empty() {
        insert(&mut driver, "informationUri", json!(INFORMATION_URI));
    }
    json!({
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [ {
            "tool": { "driver": driver },
            "results": results,
        } ],
    })
}

/// A URI reference for `path`: relative (slash-separated, percent-encoded) when it is relative
/// or lies under `base`, else an absolute `file://` URI.
/// Adds a member to a JSON object built with `json!({..})`. Indexing (`v["k"] = ..`) would
/// do the same but panics on a value that is not an object, which the no-panic lints refuse.
fn insert(object: &mut Value, key: &str, value: Value) {
    if let Some(map) = object.as_object_mut() {
        map.insert(key.to_owned(), value);
    }
}

fn file_uri(path: &Path, base: Option<&Path>) -> String {
    let rel = if path.is_relative() {
        Some(path)
    } else {
        base.and_then(|b| path.strip_prefix(b).ok())
    };
    let segments = |p: &Path| -> String {
        let parts: Vec<String> = p
            .components()
            .filter_map(|c| match c {
                Component::Normal(s) => Some(encode(&s.to_string_lossy())),
                Component::ParentDir => Some("..".to_owned()),
                _ => None,
            })
            .collect();
        parts.join("/")
    };
    match rel {
        Some(r) => segments(r),
        None => format!("file:///{}", segments(path)),
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::Location;

    pub(crate) fn sample() -> Report {
        let f = |rule: &'static str, severity, file: &str, line| Finding {
            rule,
            severity,
            message: format!("{rule} fired"),
            location: Location {
                file: PathBuf::from(file),
                line,
            },
            fix: "do this\nthen that".to_owned(),
        };
        let mut r = Report {
            files: vec!["etc/sipwarden.toml".into(), "/etc/ssl/key.pem".into()],
            findings: vec![
                f("SW-CONF-020", Severity::Medium, "etc/sipwarden.toml", 3),
                f("SW-CONF-002", Severity::Critical, "etc/sipwarden.toml", 12),
                f("SW-FILE-001", Severity::High, "/etc/ssl/key.pem", 0),
                f("SW-FILE-006", Severity::Low, "my dir/a#b.toml", 1),
            ],
        };
        r.normalise();
        r
    }

    #[test]
    fn text_groups_by_severity_with_fixes_and_summary() {
        let t = text(&sample(), false);
        let crit = t.find("CRITICAL (1)").unwrap();
        let high = t.find("HIGH (1)").unwrap();
        let medium = t.find("MEDIUM (1)").unwrap();
        assert!(crit < high && high < medium, "{t}");
        assert!(t.contains("  etc/sipwarden.toml:12  SW-CONF-002  SW-CONF-002 fired\n"));
        assert!(t.contains("  /etc/ssl/key.pem  SW-FILE-001  "), "{t}");
        assert!(
            t.contains("      fix: do this\n           then that\n"),
            "{t}"
        );
        assert!(
            t.ends_with("4 findings: 1 critical, 1 high, 1 medium, 1 low, 0 info (2 files read)\n")
        );
        assert!(!t.contains('\x1b'));
        assert!(text(&sample(), true).contains("\x1b[1;31mCRITICAL (1)\x1b[0m"));
        let empty = text(&Report::default(), false);
        assert_eq!(
            empty,
            "0 findings: 0 critical, 0 high, 0 medium, 0 low, 0 info (0 files read)\n"
        );
    }

    #[test]
    fn json_has_stable_fields() {
        let v: Value = serde_json::from_str(&json(&sample())).unwrap();
        assert_eq!(v["tool"]["name"], "sipwarden");
        assert_eq!(v["summary"]["total"], 4);
        assert_eq!(v["summary"]["worst"], "critical");
        assert_eq!(v["summary"]["low"], 1);
        let first = &v["findings"][0];
        assert_eq!(first["rule"], "SW-CONF-002");
        assert_eq!(first["severity"], "critical");
        assert_eq!(first["file"], "etc/sipwarden.toml");
        assert_eq!(first["line"], 12);
        assert_eq!(first["fix"], "do this\nthen that");
        let rules = v["rules"].as_array().unwrap();
        assert!(
            rules
                .iter()
                .any(|r| r["id"] == "SW-FILE-001" && r["severity"] == "high")
        );
        assert!(
            rules
                .iter()
                .all(|r| r["title"].is_string() && r["fix"].is_string())
        );
        let none: Value = serde_json::from_str(&json(&Report::default())).unwrap();
        assert_eq!(none["summary"]["worst"], Value::Null);
    }

    #[test]
    fn sarif_results_point_at_rules_and_lines() {
        let s = sarif_with_base(&sample(), Some(Path::new("/etc")));
        assert_eq!(s["version"], "2.1.0");
        let run = &s["runs"][0];
        let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
        let results = run["results"].as_array().unwrap();
        assert_eq!(results.len(), 4);
        for r in results {
            let i = usize::try_from(r["ruleIndex"].as_u64().unwrap()).unwrap();
            assert_eq!(rules[i]["id"], r["ruleId"]);
        }
        assert_eq!(results[0]["level"], "error");
        assert_eq!(results[0]["properties"]["severity"], "critical");
        let loc = &results[0]["locations"][0]["physicalLocation"];
        assert_eq!(loc["artifactLocation"]["uri"], "etc/sipwarden.toml");
        assert_eq!(loc["region"]["startLine"], 12);
        // Line 0: no region; absolute paths under the base become relative.
        let key = &results[1]["locations"][0]["physicalLocation"];
        assert_eq!(key["artifactLocation"]["uri"], "ssl/key.pem");
        assert!(key.get("region").is_none());
        assert_eq!(results[2]["level"], "warning");
        assert_eq!(results[3]["level"], "note");
        assert_eq!(
            results[3]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            "my%20dir/a%23b.toml"
        );
        let outside = sarif_with_base(&sample(), Some(Path::new("/srv")));
        assert_eq!(
            outside["runs"][0]["results"][1]["locations"][0]["physicalLocation"]["artifactLocation"]
                ["uri"],
            "file:///etc/ssl/key.pem"
        );
    }
}
