//! The `sipwarden` binary: a thin shell over the library crates.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

/// sipwarden: a SIP trunk security gateway.
#[derive(Parser)]
#[command(name = "sipwarden", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// SIP message tools.
    Sip {
        #[command(subcommand)]
        command: cmd::sip::SipCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sip { command } => cmd::sip::run(command),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sipwarden: {e:#}");
            ExitCode::from(2)
        }
    }
}
