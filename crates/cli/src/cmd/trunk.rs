//! `sipwarden trunk list|disable|enable` and `account disable|enable`: the kill switch of a
//! running gateway, through its admin API. A disabled trunk or account takes no new call
//! (a route's other trunks carry them); `--hangup` ends its running calls on both legs. The
//! state is stored: it holds across a restart until enabled again.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;

use super::ban::{Api, call};

#[derive(Subcommand)]
pub(crate) enum TrunkCommand {
    /// The trunks: addresses, health, registration and whether they are disabled.
    List {
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        api: Api,
    },
    /// Refuse new calls through a trunk at once (the kill switch).
    Disable {
        /// The trunk's name.
        name: String,
        /// Also end every running call through it, on both legs.
        #[arg(long)]
        hangup: bool,
        #[command(flatten)]
        api: Api,
    },
    /// Let a disabled trunk carry calls again.
    Enable {
        /// The trunk's name.
        name: String,
        #[command(flatten)]
        api: Api,
    },
}

/// A path segment: anything but unreserved characters percent-encoded.
pub(crate) fn segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Disables or enables `kind` (`trunks`, `accounts`) `name`, printing the outcome.
pub(crate) fn switch(
    api: &Api,
    kind: &str,
    name: &str,
    disable: Option<bool>,
) -> anyhow::Result<ExitCode> {
    let path = format!(
        "/api/{kind}/{}/{}",
        segment(name),
        if disable.is_some() {
            "disable"
        } else {
            "enable"
        }
    );
    let body = disable.map(|hangup| serde_json::json!({ "hangup": hangup }).to_string());
    let (status, text) = call(&api.resolve()?, "POST", &path, body.as_deref())?;
    if status != 200 {
        bail!("admin API answered {status}: {}", text.trim());
    }
    let v: serde_json::Value = serde_json::from_str(&text).context("the admin API's answer")?;
    let what = kind.trim_end_matches('s');
    match disable {
        Some(_) => println!(
            "{what} {name} disabled (stored); {} running call(s) hung up",
            v.get("hung_up")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0)
        ),
        None if v.get("was_disabled") == Some(&serde_json::Value::Bool(false)) => {
            println!("{what} {name} was not disabled");
        }
        None => println!("{what} {name} enabled"),
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn run(cmd: TrunkCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TrunkCommand::List { json, api } => {
            let (status, body) = call(&api.resolve()?, "GET", "/api/trunks", None)?;
            if status != 200 {
                bail!("admin API answered {status}: {}", body.trim());
            }
            if json {
                println!("{}", body.trim());
                return Ok(ExitCode::SUCCESS);
            }
            let v: serde_json::Value =
                serde_json::from_str(&body).context("the admin API's answer")?;
            let trunks = v
                .get("trunks")
                .and_then(serde_json::Value::as_array)
                .cloned()
                .unwrap_or_default();
            println!("{:<20} {:<10} {:<9} HOST", "TRUNK", "STATE", "UP/ADDRS");
            for t in trunks {
                let addrs = t
                    .get("addresses")
                    .and_then(serde_json::Value::as_array)
                    .map_or(&[][..], Vec::as_slice);
                let up = addrs
                    .iter()
                    .filter(|a| a.get("up") == Some(&serde_json::Value::Bool(true)))
                    .count();
                let state = if t.get("disabled").is_some_and(|d| !d.is_null()) {
                    "disabled"
                } else if up > 0 {
                    "enabled"
                } else {
                    "down"
                };
                println!(
                    "{:<20} {:<10} {:<9} {}",
                    t.get("name").and_then(|v| v.as_str()).unwrap_or("?"),
                    state,
                    format!("{up}/{}", addrs.len()),
                    t.get("host").and_then(|v| v.as_str()).unwrap_or("")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        TrunkCommand::Disable { name, hangup, api } => switch(&api, "trunks", &name, Some(hangup)),
        TrunkCommand::Enable { name, api } => switch(&api, "trunks", &name, None),
    }
}
