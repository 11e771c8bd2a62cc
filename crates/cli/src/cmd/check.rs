//! `sipwarden check --config FILE`: will the gateway start with this configuration, and what
//! does the security checklist say of it? Errors name the key and the line (exit 2); findings
//! are printed as `sipwarden audit` prints them (exit 1 at `--fail-on`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use sipwarden_config::Config;

use super::audit::{OutputArgs, print};

#[derive(Args)]
pub(crate) struct CheckArgs {
    /// The configuration file (TOML).
    #[arg(long, short)]
    config: PathBuf,
    #[command(flatten)]
    output: OutputArgs,
}

pub(crate) fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let refused = |errors: Vec<String>| {
        for e in &errors {
            eprintln!("sipwarden: {e}");
        }
        eprintln!(
            "sipwarden: {} error{} in {}: the gateway would not start",
            errors.len(),
            if errors.len() == 1 { "" } else { "s" },
            args.config.display()
        );
        Ok(ExitCode::from(2))
    };
    let cfg = match Config::load(&args.config) {
        Ok(cfg) => cfg,
        Err(errors) => return refused(errors.iter().map(ToString::to_string).collect()),
    };
    // What `serve` builds before it opens a socket: the routes, with the trunks' password
    // files and the accounts file read. What it refuses, `check` refuses.
    if let Err(e) = sipwarden_server::routes(&cfg) {
        return refused(vec![e.to_string()]);
    }
    if let Err(e) = sipwarden_server::check_policies(&cfg) {
        return refused(vec![e.to_string()]);
    }
    // Whatever the file is called, it is a sipwarden configuration.
    let report = sipwarden_audit::audit_paths_as(
        std::slice::from_ref(&args.config),
        Some(sipwarden_audit::Dialect::Sipwarden),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    print(&args.output, &report)
}
