//! `sipwarden audit PATH...`: the security checklist over configuration files, as text, JSON
//! or SARIF; the exit status says whether anything reached `--fail-on`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use sipwarden_audit::{Dialect, Severity, audit_paths_as, output};

#[derive(Args)]
pub(crate) struct AuditArgs {
    #[command(flatten)]
    pub(crate) output: OutputArgs,

    /// Audit every FILE named as this dialect, whatever its name and content say. Without it,
    /// a file's name decides, else its content.
    #[arg(long = "as", value_name = "DIALECT", value_parser = dialect_parser())]
    dialect: Option<Dialect>,

    /// Files or directories to audit: Asterisk sip.conf, pjsip.conf, iax.conf, extensions.conf,
    /// acl.conf, stir_shaken.conf, FreePBX's parts of them (sip_additional.conf,
    /// pjsip.endpoint.conf, extensions_custom.conf...), copies (sip.conf.bak, *.sample) and
    /// sipwarden TOML configurations. A file of another name is recognised by its content. A
    /// directory is searched for them by name (not recursively); the files of one dialect are
    /// audited together, as one configuration.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

/// `--as`: the dialect names of `sipwarden_audit::Dialect`, listed in `--help`.
fn dialect_parser() -> impl clap::builder::TypedValueParser<Value = Dialect> {
    use clap::builder::{PossibleValuesParser, TypedValueParser};
    PossibleValuesParser::new(Dialect::ALL.map(Dialect::name)).try_map(|s| {
        Dialect::parse(&s).ok_or_else(|| format!("{s:?} is not a dialect the audit knows"))
    })
}

/// How to print a report (shared with `sipwarden check`).
#[derive(Args)]
pub(crate) struct OutputArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Same as --format json.
    #[arg(long, conflicts_with_all = ["format", "sarif"])]
    json: bool,
    /// Same as --format sarif.
    #[arg(long, conflicts_with = "format")]
    sarif: bool,
    /// Exit 1 when a finding is at least this severe (info, low, medium, high, critical).
    #[arg(long, default_value = "high", value_parser = parse_severity)]
    fail_on: Severity,
    /// Plain text even on a terminal (colour is also off when NO_COLOR is set or the output
    /// is not a terminal).
    #[arg(long)]
    no_color: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Grouped by severity, for people.
    Text,
    /// One JSON document, for scripts.
    Json,
    /// SARIF 2.1.0, for code-scanning dashboards.
    Sarif,
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    Severity::parse(s)
        .ok_or_else(|| format!("{s:?} is not one of info, low, medium, high, critical"))
}

pub(crate) fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    // AuditError's text already names its cause; anyhow's chain would repeat it.
    let report = audit_paths_as(&args.paths, args.dialect).map_err(|e| anyhow::anyhow!("{e}"))?;
    print(&args.output, &report)
}

/// Prints `report` as `args` ask; the exit status by `--fail-on`.
pub(crate) fn print(
    args: &OutputArgs,
    report: &sipwarden_audit::Report,
) -> anyhow::Result<ExitCode> {
    let format = if args.json {
        Format::Json
    } else if args.sarif {
        Format::Sarif
    } else {
        args.format
    };
    let stdout = std::io::stdout();
    let color = !args.no_color && std::env::var_os("NO_COLOR").is_none() && stdout.is_terminal();
    let text = match format {
        Format::Text => output::text(report, color),
        Format::Json => output::json(report) + "\n",
        Format::Sarif => serde_json::to_string_pretty(&output::sarif(report))? + "\n",
    };
    let mut out = stdout.lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    let failed = report.worst().is_some_and(|w| w >= args.fail_on);
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
