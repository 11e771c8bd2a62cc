//! `sipwarden sip check`: run captured messages through the parser and validator the gateway
//! uses, and say what the gateway would do with each.

use std::io::Read;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use sipwarden_sip::{
    Decision, Limits, Message, Policy, Role, StreamFramer, StreamItem, decision_for_parse_error,
    validate,
};

#[derive(Subcommand)]
pub(crate) enum SipCommand {
    /// Check messages: each FILE is one datagram (as UDP delivers it), or with --stream a byte
    /// stream (as TCP delivers it) holding any number of messages. `-` reads standard input.
    /// Prints one line per message; exits 0 when every message is ok, 1 otherwise.
    Check {
        /// Frame each file as a TCP/TLS byte stream instead of one datagram.
        #[arg(long)]
        stream: bool,
        /// Which role's checks to apply.
        #[arg(long, value_enum, default_value_t = RoleArg::Gateway)]
        role: RoleArg,
        /// Files to check (`-` for standard input).
        #[arg(required = true)]
        files: Vec<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum RoleArg {
    /// The gateway's edge checks (default).
    Gateway,
    /// A proxy's checks (RFC 3261 §16.3).
    Proxy,
    /// A user agent server's checks (RFC 3261 §8.2).
    Uas,
}

pub(crate) fn run(cmd: SipCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SipCommand::Check {
            stream,
            role,
            files,
        } => check(&files, stream, role),
    }
}

fn read_input(name: &str) -> anyhow::Result<Vec<u8>> {
    if name == "-" {
        let mut v = Vec::new();
        std::io::stdin()
            .read_to_end(&mut v)
            .context("reading standard input")?;
        Ok(v)
    } else {
        std::fs::read(name).with_context(|| format!("reading {name}"))
    }
}

fn check(files: &[String], stream: bool, role: RoleArg) -> anyhow::Result<ExitCode> {
    let policy = Policy {
        role: match role {
            RoleArg::Gateway => Role::Gateway,
            RoleArg::Proxy => Role::Proxy,
            RoleArg::Uas => Role::Uas,
        },
        ..Policy::default()
    };
    let limits = Limits::default();
    let mut all_ok = true;
    let mut out = std::io::stdout().lock();
    for name in files {
        let data = read_input(name)?;
        let lines = if stream {
            check_stream(&data, &limits, &policy)
        } else {
            let line = match Message::parse_datagram(data, &limits) {
                Ok(m) => describe(&m, &validate(&m, &policy)),
                Err(e) => describe_decision(&decision_for_parse_error(&e)),
            };
            vec![line]
        };
        for (ok, line) in lines {
            all_ok &= ok;
            use std::io::Write;
            writeln!(out, "{name}: {line}")?;
        }
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn check_stream(data: &[u8], limits: &Limits, policy: &Policy) -> Vec<(bool, String)> {
    let mut framer = StreamFramer::new(limits.clone());
    framer.push(data);
    let mut lines = Vec::new();
    while let Some(item) = framer.next_item() {
        match item {
            Ok(StreamItem::Message(m)) => lines.push(describe(&m, &validate(&m, policy))),
            Ok(StreamItem::Ping) => {}
            Err(e) => {
                let (_, text) = describe_decision(&decision_for_parse_error(&e));
                lines.push((false, format!("{text}; stream closed")));
            }
        }
    }
    if !framer.is_failed() && framer.buffered() > 0 {
        lines.push((
            false,
            format!(
                "drop Incomplete Message ({} bytes at end of stream)",
                framer.buffered()
            ),
        ));
    }
    if lines.is_empty() {
        lines.push((false, "drop No Message".to_owned()));
    }
    lines
}

fn describe(m: &Message, d: &Decision) -> (bool, String) {
    match d {
        Decision::Accept => match (m.method_str(), m.status()) {
            (Some(method), _) => (true, format!("ok request {method}")),
            (None, Some(status)) => (true, format!("ok response {status}")),
            (None, None) => (false, "drop Unknown Message".to_owned()),
        },
        other => describe_decision(other),
    }
}

fn describe_decision(d: &Decision) -> (bool, String) {
    match d {
        Decision::Accept => (true, "ok".to_owned()),
        Decision::Reject {
            status,
            reason,
            headers,
        } => {
            let mut s = format!("reject {status} {reason}");
            for (h, v) in headers {
                s.push_str(&format!(" ({}: {v})", h.as_str().unwrap_or("?")));
            }
            (false, s)
        }
        Decision::Drop { reason } => (false, format!("drop {reason}")),
    }
}
