//! `sipwarden ban list|add|rm`: the ban table of a running gateway, through its admin API
//! (bearer token). The API is plain HTTP on loopback by default, so a few lines of HTTP/1.1
//! over a TCP stream do; no HTTP client library is pulled in for it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;

#[derive(Subcommand)]
pub(crate) enum BanCommand {
    /// List the bans in force.
    List {
        #[command(flatten)]
        api: Api,
    },
    /// Ban an address now.
    Add {
        /// IPv4 or IPv6 address.
        ip: String,
        /// Why (shown in the list and the log).
        #[arg(long, default_value = "banned by the operator")]
        reason: String,
        #[command(flatten)]
        api: Api,
    },
    /// Lift a ban (the address's history is forgotten too).
    Rm {
        /// IPv4 or IPv6 address.
        ip: String,
        #[command(flatten)]
        api: Api,
    },
}

/// Where the admin API is.
#[derive(clap::Args)]
pub(crate) struct Api {
    /// The gateway's configuration: the admin address and token file are read from it.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// The admin API address (overrides the configuration).
    #[arg(long)]
    admin: Option<SocketAddr>,
    /// The token file (overrides the configuration).
    #[arg(long)]
    token_file: Option<PathBuf>,
}

impl Api {
    pub(crate) fn resolve(&self) -> anyhow::Result<(SocketAddr, String)> {
        let cfg = match &self.config {
            Some(p) => sipwarden_config::Config::load(p).map_err(|errors| {
                anyhow::anyhow!(
                    "{}",
                    errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("\n")
                )
            })?,
            None => sipwarden_config::Config::default(),
        };
        let addr = self.admin.unwrap_or(cfg.admin.listen);
        let token_file = self
            .token_file
            .clone()
            .or(cfg.admin.token_file)
            .unwrap_or_else(|| cfg.storage.dir.join("admin.token"));
        let token = std::fs::read_to_string(&token_file)
            .with_context(|| format!("reading the admin token {}", token_file.display()))?;
        Ok((addr, token.trim().to_owned()))
    }
}

/// One request; returns (status, body).
pub(crate) fn call(
    (addr, token): &(SocketAddr, String),
    method: &str,
    path: &str,
    body: Option<&str>,
) -> anyhow::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(addr, Duration::from_secs(5)).with_context(|| {
        format!("connecting to the admin API at {addr} (is the gateway running?)")
    })?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_owned()))
}

fn path_ip(ip: &str) -> anyhow::Result<String> {
    let ip: std::net::IpAddr = ip
        .trim()
        .parse()
        .with_context(|| format!("{ip:?} is not an IP address"))?;
    Ok(ip.to_string())
}

pub(crate) fn run(cmd: BanCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BanCommand::List { api } => {
            let (status, body) = call(&api.resolve()?, "GET", "/api/bans", None)?;
            if status != 200 {
                bail!("admin API answered {status}: {}", body.trim());
            }
            let v: serde_json::Value =
                serde_json::from_str(&body).context("the admin API's answer")?;
            let bans = v
                .get("bans")
                .and_then(serde_json::Value::as_array)
                .cloned()
                .unwrap_or_default();
            if bans.is_empty() {
                println!("no bans");
            }
            for b in bans {
                let field = |k: &str| b.get(k).unwrap_or(&serde_json::Value::Null);
                println!(
                    "{:<40} {:>7}s left  x{:<3} {}",
                    field("ip").as_str().unwrap_or("?"),
                    field("seconds_left").as_i64().unwrap_or(0),
                    field("count").as_u64().unwrap_or(0),
                    field("reason").as_str().unwrap_or("")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        BanCommand::Add { ip, reason, api } => {
            let ip = path_ip(&ip)?;
            let body = serde_json::json!({ "ip": ip, "reason": reason }).to_string();
            let (status, text) = call(&api.resolve()?, "POST", "/api/bans", Some(&body))?;
            print!("{text}");
            Ok(if status == 201 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        BanCommand::Rm { ip, api } => {
            let ip = path_ip(&ip)?;
            let (status, text) = call(&api.resolve()?, "DELETE", &format!("/api/bans/{ip}"), None)?;
            print!("{text}");
            Ok(if status == 200 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
