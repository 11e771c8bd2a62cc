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
    /// Trunks of a running gateway: list them, or disable one at once (the kill switch) and
    /// enable it again.
    Trunk {
        #[command(subcommand)]
        command: cmd::trunk::TrunkCommand,
    },
    /// Call records of a running gateway: a table, or an export as CSV or JSON.
    Cdr {
        #[command(subcommand)]
        command: cmd::cdr::CdrCommand,
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
        Command::Trunk { command } => cmd::trunk::run(command),
        Command::Cdr { command } => cmd::cdr::run(command),
        Command::Sip { command } => cmd::sip::run(command),
        Command::Check(args) => cmd::check::run(args),
        Command::Audit(args) => cmd::audit::run(args),
        Command::Secret { command } => cmd::secret::run(command),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sipwarden: {}", report(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes, `: `-separated as `{:#}` prints them, but without a cause whose
/// text is already in the line: the library errors put their source in their own message
/// (so a log line alone says why) and keep it as `source()` as well.
fn report(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapped(std::io::Error);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "cannot listen on 127.0.0.1:5060 (udp): {}", self.0)
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = || std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address already in use");
        let e = anyhow::Error::new(Wrapped(io()));
        assert_eq!(
            report(&e),
            "cannot listen on 127.0.0.1:5060 (udp): Address already in use"
        );
        let e = anyhow::Error::new(io()).context("starting the runtime");
        assert_eq!(report(&e), "starting the runtime: Address already in use");
    }
}
