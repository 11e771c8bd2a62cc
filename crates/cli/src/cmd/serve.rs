//! `sipwarden serve`: run the gateway.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use sipwarden_server::{Gateway, load_config};

pub(crate) fn run(config: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let cfg = match load_config(config.as_deref()) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors {
                eprintln!("sipwarden: {e}");
            }
            eprintln!(
                "sipwarden: configuration refused ({} error{})",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            );
            return Ok(ExitCode::from(2));
        }
    };
    // SIPWARDEN_LOG, else the usual RUST_LOG (e.g. `sipwarden=debug`: every call's and
    // registration's decisions, in order, under their spans), else info.
    let filter = tracing_subscriber::EnvFilter::try_from_env("SIPWARDEN_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let result = runtime.block_on(async move {
        let grace = cfg.calls.shutdown_grace;
        match &config {
            Some(p) => println!("sipwarden: configuration {}", p.display()),
            None => println!("sipwarden: no --config given, running on built-in safe defaults (loopback only, PBX at {})", cfg.pbx.address),
        }
        let gw = Gateway::start(cfg, config.clone()).await?;
        // Caught before the world hears we listen: a SIGTERM right after must drain, not kill.
        let signals = sipwarden_server::Signals::install()?;
        println!("sipwarden: listening\n{}", gw.listening);
        gw.run_until_signalled(signals, grace).await?;
        Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
    });
    // Listener tasks never end on their own; do not wait for them.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    result
}
