//! The `sipwarden` binary: a thin shell over the library crates.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

/// mimalloc instead of glibc's malloc: see the workspace manifest for why.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// sipwarden: a SIP trunk security gateway.
#[derive(Parser)]
#[command(name = "sipwarden", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway. Without --config it runs on built-in safe defaults: SIP on
    /// 127.0.0.1:5060 (UDP and TCP), PBX at 127.0.0.1:5080, admin API on 127.0.0.1:8080.
    /// SIGHUP reloads the configuration for new calls; SIGTERM stops taking calls, lets calls
    /// in progress finish (calls.shutdown_grace), then exits.
    Serve {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: Option<std::path::PathBuf>,
    },
    /// Accounts of the endpoint zone (remote phones).
    Account {
        #[command(subcommand)]
        command: cmd::account::AccountCommand,
    },
    /// The ban table of a running gateway (through its admin API).
    Ban {
        #[command(subcommand)]
        command: cmd::ban::BanCommand,
    },
    /// Validate a sipwarden configuration (errors name the key and line; exit 2) and audit it
    /// against the security checklist (exit 1 when a finding reaches --fail-on).
    Check(cmd::check::CheckArgs),
    /// Audit configuration files against the security checklist. Exits 0 when nothing reaches
    /// --fail-on, 1 when something does, 2 when a file cannot be read or parsed, or its dialect
    /// cannot be told (name it with --as).
    Audit(cmd::audit::AuditArgs),
    /// Strong SIP passwords: generate one, or check one read from standard input.
    Secret {
        #[command(subcommand)]
        command: cmd::secret::SecretCommand,
    },
    /// SIP message tools.
    Sip {
        #[command(subcommand)]
        command: cmd::sip::SipCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config } => cmd::serve::run(config),
        Command::Account { command } => cmd::account::run(command),
        Command::Ban { command } => cmd::ban::run(command),
        Command::Sip { command } => cmd::sip::run(command),
        Command::Check(args) => cmd::check::run(args),
        Command::Audit(args) => cmd::audit::run(args),
        Command::Secret { command } => cmd::secret::run(command),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sipwarden: {e:#}");
            ExitCode::from(2)
        }
    }
}
