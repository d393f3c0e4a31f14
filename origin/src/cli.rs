//! `cdn origin`: runs an origin from flags or a TOML file until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::Config;

/// Flags of `cdn origin`. Flags override the config file.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Content root (serves ROOT/vod/demo/manifest.mpd as /vod/demo/manifest.mpd).
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8000].
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// TOML configuration file (channels, cache-control, limits, storage backend).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// A live channel NAME=TITLE looping vod/TITLE (repeatable).
    #[arg(long = "channel", value_name = "NAME=TITLE")]
    pub channels: Vec<String>,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Write one access log line per request to standard output (Combined Log Format).
    #[arg(long)]
    pub access_log: bool,
}

impl Args {
    /// The configuration these flags describe.
    pub fn to_config(&self) -> Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(root) = &self.root {
            config.root = root.clone();
        }
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(cert) = &self.tls_cert {
            config.tls_cert = Some(cert.clone());
        }
        if let Some(key) = &self.tls_key {
            config.tls_key = Some(key.clone());
        }
        config.access_log |= self.access_log;
        for ch in &self.channels {
            let Some((name, title)) = ch.split_once('=') else {
                anyhow::bail!("--channel `{ch}`: expected NAME=TITLE, e.g. news=demo");
            };
            config.channels.insert(
                name.to_string(),
                crate::config::ChannelConfig::Title(title.to_string()),
            );
        }
        config.validate()?;
        Ok(config)
    }
}

/// Runs the origin on its own tokio runtime until SIGINT or SIGTERM, then shuts down gracefully.
pub fn run(args: Args) -> Result<()> {
    let config = args.to_config()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(serve(config))
}

/// Serves `config` until SIGINT or SIGTERM.
pub async fn serve(config: Config) -> Result<()> {
    let origin = crate::spawn(config).await?;
    eprintln!("origin listening on {}", origin.url());
    common::shutdown_signal().await;
    tracing::info!("shutting down");
    origin.shutdown().await;
    Ok(())
}
