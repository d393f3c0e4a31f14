//! `cdn up`: the whole stack on its default loopback addresses, left running until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Result;

use crate::stack::{Stack, StackConfig};

/// Flags of `cdn up` and `cdn demo`; each overrides the TOML file, which overrides the defaults.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct StackArgs {
    /// Content folder (the demo title is packaged into DATA/vod/demo on first run).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// TOML file with any of the stack's settings (addresses, regions, cache size).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Origin address.
    #[arg(long)]
    pub origin: Option<SocketAddr>,
    /// DNS router address (UDP and TCP).
    #[arg(long)]
    pub dns: Option<SocketAddr>,
    /// DNS router metrics address.
    #[arg(long)]
    pub dns_metrics: Option<SocketAddr>,
    /// Port every edge listens on (each on its own loopback address).
    #[arg(long)]
    pub edge_port: Option<u16>,
    /// Keep each edge's cache on disk too, in DIR/<edge name> (warm after a restart).
    #[arg(long, value_name = "DIR")]
    pub edge_cache_dir: Option<PathBuf>,
    /// Bytes each edge's disk tier may occupy, e.g. 20GiB (with --edge-cache-dir).
    #[arg(long, value_name = "SIZE", requires = "edge_cache_dir")]
    pub edge_disk_size: Option<String>,
    /// Serve HTTPS (HTTP/2 by ALPN) on the origin and the edges, with a self-signed certificate
    /// generated into DATA/tls/ unless --tls-cert and --tls-key name one.
    #[arg(long)]
    pub tls: bool,
    /// PEM certificate chain to serve with --tls.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Address of the watch page (default 127.0.0.1:8088).
    #[arg(long)]
    pub watch: Option<SocketAddr>,
    /// Serve the watch page's players from DIR (dash.all.min.js and hls.min.js, or a
    /// node_modules with dashjs and hls.js) instead of loading them from their public CDN.
    #[arg(long, value_name = "DIR")]
    pub watch_players_dir: Option<PathBuf>,
}

impl StackArgs {
    /// The stack configuration these flags describe.
    pub fn config(&self) -> Result<StackConfig> {
        let mut cfg = match &self.config {
            Some(path) => StackConfig::load(path)?,
            None => StackConfig::default(),
        };
        if let Some(d) = &self.data {
            cfg.data = d.clone();
        }
        if let Some(a) = self.origin {
            cfg.origin = a;
        }
        if let Some(a) = self.dns {
            cfg.dns = a;
        }
        if let Some(a) = self.dns_metrics {
            cfg.dns_metrics = a;
        }
        if let Some(d) = &self.edge_cache_dir {
            cfg.edge_cache_dir = Some(d.clone());
        }
        if let Some(s) = &self.edge_disk_size {
            cfg.edge_disk_size = s.clone();
        }
        if self.tls || self.tls_cert.is_some() {
            cfg.tls = true;
        }
        if let Some(c) = &self.tls_cert {
            cfg.tls_cert = Some(c.clone());
        }
        if let Some(k) = &self.tls_key {
            cfg.tls_key = Some(k.clone());
        }
        if let Some(a) = self.watch {
            cfg.watch = a;
        }
        if let Some(d) = &self.watch_players_dir {
            cfg.watch_players_dir = Some(d.clone());
        }
        if let Some(p) = self.edge_port {
            for e in &mut cfg.edges {
                e.listen.set_port(p);
            }
        }
        Ok(cfg)
    }
}

/// Runs `cdn up`.
pub fn run(args: StackArgs) -> Result<()> {
    let cfg = args.config()?;
    tokio::runtime::Runtime::new()?.block_on(async move {
        let stack = Stack::start(cfg).await?;
        println!("{}", stack.banner());
        common::shutdown_signal().await;
        eprintln!("stopping...");
        stack.shutdown().await;
        Ok(())
    })
}
