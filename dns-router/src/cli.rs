//! `cdn dns [--config FILE]`: runs the router until Ctrl-C or SIGTERM; SIGHUP reloads the file.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::config::Config;

/// Flags of `cdn dns`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// TOML configuration; without it the embedded local-stack configuration is used
    /// (dns-router/examples/local.toml).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Override the UDP+TCP listen address (for example 127.0.0.1:5353).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// Override the metrics listen address.
    #[arg(long)]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

fn load(args: &Args) -> Result<Config> {
    let mut cfg = match &args.config {
        Some(p) => Config::load(p)?,
        None => Config::local_default(),
    };
    if let Some(a) = args.listen {
        cfg.server.listen = a;
    }
    if let Some(a) = args.metrics_listen {
        cfg.server.metrics_listen = a;
    }
    Ok(cfg)
}

/// Runs the router on its own Tokio runtime until Ctrl-C or SIGTERM.
pub fn run(args: Args) -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?
        .block_on(serve(args))
}

/// Runs the router in the current Tokio runtime.
pub async fn serve(args: Args) -> Result<()> {
    // The SIGHUP handler is in place before the router answers its first query.
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")?;
    let router = crate::spawn(load(&args)?)?;
    println!(
        "dns router: udp+tcp {}  metrics http://{}/metrics",
        router.dns_addr(),
        router.metrics_addr()
    );
    let shutdown = common::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = hup.recv() => {
                match load(&args).and_then(|cfg| router.reload(cfg)) {
                    Ok(()) => tracing::info!("configuration reloaded"),
                    Err(e) => tracing::error!(error = %format!("{e:#}"), "reload failed; keeping the running configuration"),
                }
            }
        }
    }
    router.shutdown().await;
    Ok(())
}
