//! `sipwarden cdr list|export`: call records of a running gateway, through its admin API —
//! a table for people, CSV or JSON lines for scripts.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use clap::{Subcommand, ValueEnum};

use super::ban::{Api, call};
use super::trunk::segment;

#[derive(Subcommand)]
pub(crate) enum CdrCommand {
    /// The newest records, running calls included, as a table.
    List {
        #[command(flatten)]
        filter: Filter,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        api: Api,
    },
    /// Every record since a time, for scripts and spreadsheets.
    Export {
        #[command(flatten)]
        filter: Filter,
        /// csv or json (one JSON object per line).
        #[arg(long, value_enum, default_value_t = Format::Csv)]
        format: Format,
        #[command(flatten)]
        api: Api,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Format {
    Csv,
    Json,
}

#[derive(clap::Args)]
pub(crate) struct Filter {
    /// From: an RFC 3339 time, Unix seconds, or an age such as 1h or 7d.
    #[arg(long)]
    since: Option<String>,
    /// Until (same forms).
    #[arg(long)]
    until: Option<String>,
    /// Through this trunk.
    #[arg(long)]
    trunk: Option<String>,
    /// By this account.
    #[arg(long)]
    account: Option<String>,
    /// running, ended or refused.
    #[arg(long)]
    state: Option<String>,
    /// Callee's E.164 prefix (+44).
    #[arg(long)]
    callee: Option<String>,
    /// Caller's IP address.
    #[arg(long)]
    source: Option<String>,
}

/// An RFC 3339 time, Unix seconds, or an age (`90m`: that long ago), as Unix seconds.
fn when(v: &str) -> anyhow::Result<String> {
    if v.parse::<i64>().is_ok() {
        return Ok(v.to_owned());
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(v) {
        return Ok(unix(t).to_string());
    }
    let age = humantime::parse_duration(v)
        .with_context(|| format!("{v:?} is neither a time (RFC 3339, Unix seconds) nor an age"))?;
    let t = SystemTime::now()
        .checked_sub(age)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    Ok(unix(t).to_string())
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Filter {
    fn query(&self) -> anyhow::Result<String> {
        let mut q = Vec::new();
        if let Some(v) = &self.since {
            q.push(format!("since={}", when(v)?));
        }
        if let Some(v) = &self.until {
            q.push(format!("until={}", when(v)?));
        }
        for (k, v) in [
            ("trunk", &self.trunk),
            ("account", &self.account),
            ("state", &self.state),
            ("callee", &self.callee),
            ("source", &self.source),
        ] {
            if let Some(v) = v {
                q.push(format!("{k}={}", segment(v)));
            }
        }
        Ok(q.join("&"))
    }
}

fn page(api: &Api, query: &str, limit: u32, offset: u32) -> anyhow::Result<Vec<serde_json::Value>> {
    let path = format!("/api/cdrs?{query}&limit={limit}&offset={offset}");
    let (status, body) = call(&api.resolve()?, "GET", &path, None)?;
    if status != 200 {
        bail!("admin API answered {status}: {}", body.trim());
    }
    let v: serde_json::Value = serde_json::from_str(&body).context("the admin API's answer")?;
    Ok(v.get("cdrs")
        .and_then(serde_json::Value::as_array)
        .cloned()
        .unwrap_or_default())
}

fn s(v: &serde_json::Value, k: &str) -> String {
    match v.get(k) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(x) => x.to_string(),
    }
}

/// A record's start as a UTC time, to the second.
fn start(v: &serde_json::Value) -> String {
    let ms = v
        .get("start")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(ms / 1000);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The rules a record's decisions name, joined.
fn rules(v: &serde_json::Value) -> String {
    v.get("decisions")
        .and_then(serde_json::Value::as_array)
        .map(|d| {
            d.iter()
                .map(|x| format!("{}:{}", s(x, "rule"), s(x, "outcome")))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

const CSV_COLUMNS: &[&str] = &[
    "id",
    "state",
    "start",
    "answer",
    "end",
    "duration_ms",
    "billable_s",
    "cost",
    "zone",
    "trunk",
    "account",
    "source",
    "transport",
    "caller",
    "callee",
    "caller_e164",
    "callee_e164",
    "country",
    "number_type",
    "status",
    "ended_by",
    "reason",
    "decisions",
    "a_call_id",
    "b_call_id",
];

/// RFC 4180: quoted when it holds a comma, quote or line break.
fn csv_field(f: &str) -> String {
    if f.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f.to_owned()
    }
}

pub(crate) fn run(cmd: CdrCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        CdrCommand::List { filter, limit, api } => {
            let rows = page(&api, &filter.query()?, limit, 0)?;
            if rows.is_empty() {
                println!("no call records");
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<20} {:<8} {:<12} {:<16} {:<16} {:<3} {:>6} {:<7} RULES",
                "START (UTC)", "STATE", "TRUNK", "CALLER", "CALLEE", "CC", "SECS", "STATUS"
            );
            for r in rows {
                println!(
                    "{:<20} {:<8} {:<12} {:<16} {:<16} {:<3} {:>6} {:<7} {}",
                    start(&r),
                    s(&r, "state"),
                    s(&r, "trunk"),
                    s(&r, "caller"),
                    s(&r, "callee"),
                    s(&r, "country"),
                    s(&r, "billable_s"),
                    s(&r, "status"),
                    rules(&r)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        CdrCommand::Export {
            filter,
            format,
            api,
        } => {
            let query = filter.query()?;
            let out = std::io::stdout();
            let mut out = out.lock();
            if matches!(format, Format::Csv) {
                writeln!(out, "{}", CSV_COLUMNS.join(","))?;
            }
            let mut offset = 0;
            loop {
                let rows = page(&api, &query, 1000, offset)?;
                let n = u32::try_from(rows.len()).unwrap_or(u32::MAX);
                for r in &rows {
                    match format {
                        Format::Json => writeln!(out, "{r}")?,
                        Format::Csv => {
                            let fields: Vec<String> =
                                CSV_COLUMNS.iter().map(|k| csv_field(&s(r, k))).collect();
                            writeln!(out, "{}", fields.join(","))?;
                        }
                    }
                }
                if n < 1000 {
                    break;
                }
                offset += n;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_ages_become_unix_seconds() {
        assert_eq!(when("1700000000").unwrap(), "1700000000");
        assert_eq!(when("2023-11-14T22:13:20Z").unwrap(), "1700000000");
        let hour_ago: u64 = when("1h").unwrap().parse().unwrap();
        let now = unix(SystemTime::now());
        assert!(now - hour_ago >= 3599 && now - hour_ago <= 3601);
        assert!(when("last tuesday").is_err());
    }

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
