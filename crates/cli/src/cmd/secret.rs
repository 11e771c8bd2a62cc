//! `sipwarden secret generate | check`: strong SIP passwords, and the verdict on one.

use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use sipwarden_audit::secret;

#[derive(Subcommand)]
pub(crate) enum SecretCommand {
    /// Print a new random secret (letters, digits and - _ . + * ! ~ ^, safe unquoted in SIP,
    /// Asterisk and TOML) from the system's CSPRNG.
    Generate {
        /// Characters, 16 to 128.
        #[arg(long, short, default_value_t = secret::DEFAULT_LENGTH)]
        length: usize,
    },
    /// Judge a secret read from standard input (one trailing newline is ignored). Prints its
    /// strength and the reasons, never the secret; exits 0 when strong, 1 when weak.
    Check {
        /// A string an attacker would try first: the username, extension or trunk name
        /// (repeatable).
        #[arg(long = "related", value_name = "TEXT")]
        related: Vec<String>,
    },
}

pub(crate) fn run(cmd: SecretCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SecretCommand::Generate { length } => {
            let s = secret::generate(length)?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{s}")?;
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        SecretCommand::Check { related } => check(&related),
    }
}

fn check(related: &[String]) -> anyhow::Result<ExitCode> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("reading the secret from standard input")?;
    let candidate = input
        .strip_suffix("\r\n")
        .or_else(|| input.strip_suffix('\n'))
        .unwrap_or(&input);
    let related: Vec<&str> = related.iter().map(String::as_str).collect();
    let s = secret::strength(candidate, &related);
    let strong = s.assessment.is_strong();
    // zxcvbn counts guesses in a u64: past ~10^19 its numbers are a floor, not an estimate.
    let (about, floor) = if s.guesses_log10 >= 19.0 {
        ("at least", "at least ")
    } else {
        ("about", "")
    };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}: strength {} of 4, {about} 10^{:.1} guesses",
        if strong { "strong" } else { "weak" },
        s.score,
        s.guesses_log10
    )?;
    writeln!(
        out,
        "  online guessing at 10/s: {floor}{}",
        s.crack_time_online
    )?;
    writeln!(
        out,
        "  offline from a captured digest at 10^10/s: {floor}{}",
        s.crack_time_offline
    )?;
    for w in &s.assessment.weaknesses {
        writeln!(out, "  - {w}")?;
    }
    if !strong {
        for hint in &s.suggestions {
            writeln!(out, "  hint: {hint}")?;
        }
        writeln!(out, "  try: sipwarden secret generate")?;
    }
    out.flush()?;
    Ok(if strong {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
