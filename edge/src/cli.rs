//! `cdn edge`: runs one edge from flags and/or a TOML file until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::config::{ByteSize, Config};

/// Flags of `cdn edge`; flags given override the config file.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Address to listen on, e.g. 127.0.1.1:8080.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Origin base URL, e.g. http://127.0.0.1:8000.
    #[arg(long)]
    pub upstream: Option<String>,
    /// Name in Via, Cache-Status and /health.
    #[arg(long)]
    pub name: Option<String>,
    /// Cache capacity, e.g. 512MiB.
    #[arg(long)]
    pub cache_size: Option<String>,
    /// Keep objects on disk too, in this directory (created if needed); survives restarts.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Bytes the disk tier may occupy, e.g. 20GiB (with --cache-dir).
    #[arg(long, value_name = "SIZE", requires = "cache_dir")]
    pub disk_size: Option<String>,
    /// Parent cache URL; repeat for several (chosen per key by rendezvous hashing).
    #[arg(long = "parent")]
    pub parents: Vec<String>,
    /// Bearer token for PURGE (or set CDN_PURGE_TOKEN).
    #[arg(long, env = "CDN_PURGE_TOKEN")]
    pub purge_token: Option<String>,
    /// Write one access log line per request to standard output (Combined Log Format).
    #[arg(long)]
    pub access_log: bool,
    /// A path prefix served only with a signed-URL token (repeatable; needs --sign-key).
    #[arg(long = "signed-prefix", value_name = "PREFIX")]
    pub signed_prefixes: Vec<String>,
    /// A signed-URL key: its id and the file holding its secret (repeatable, for rotation).
    #[arg(long = "sign-key", value_name = "ID=FILE")]
    pub sign_keys: Vec<String>,
    /// TOML configuration file (see edge::Config).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM roots trusted for an https:// upstream (default: the system roots).
    #[arg(long, value_name = "PEM")]
    pub upstream_ca: Option<PathBuf>,
    /// Requests per second per client (IPv4 address, IPv6 /56); 0 turns the limit off.
    #[arg(long, value_name = "N")]
    pub requests_per_sec: Option<f64>,
    /// Requests a client may make at once after being idle.
    #[arg(long, value_name = "N")]
    pub request_burst: Option<f64>,
    /// Upstream fetches per second a client may cause (misses; hits are free); 0: off.
    #[arg(long, value_name = "N")]
    pub misses_per_sec: Option<f64>,
    /// Upstream fetches a client may cause at once after being idle.
    #[arg(long, value_name = "N")]
    pub miss_burst: Option<f64>,
    /// A network (CIDR) exempt from the per-client limits, replacing the default loopback
    /// (repeatable; `none` for no exemption).
    #[arg(long = "limit-exempt", value_name = "CIDR")]
    pub limit_exempt: Vec<String>,
    /// Exchanges with the upstream at once (0: no cap).
    #[arg(long, value_name = "N")]
    pub max_upstream_fetches: Option<usize>,
    /// Exchanges that may wait for an upstream slot; beyond it, 503.
    #[arg(long, value_name = "N")]
    pub upstream_queue: Option<usize>,
    /// Longest wait for an upstream slot, in seconds, before a 503.
    #[arg(long, value_name = "SECS")]
    pub upstream_queue_wait: Option<f64>,
}

impl Args {
    /// The configuration these flags describe.
    pub fn to_config(&self) -> Result<Config> {
        let mut c = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(l) = self.listen {
            c.listen = l;
        }
        if let Some(u) = &self.upstream {
            c.upstream = u.clone();
        }
        if let Some(n) = &self.name {
            c.name = n.clone();
        }
        if let Some(s) = &self.cache_size {
            c.cache_size = ByteSize(
                common::units::parse_size(s).with_context(|| format!("--cache-size {s}"))?,
            );
        }
        if let Some(d) = &self.cache_dir {
            c.cache_dir = Some(d.clone());
        }
        if let Some(s) = &self.disk_size {
            c.disk_size =
                ByteSize(common::units::parse_size(s).with_context(|| format!("--disk-size {s}"))?);
        }
        if !self.parents.is_empty() {
            c.parents = self.parents.clone();
        }
        if let Some(t) = &self.purge_token {
            c.purge_token = Some(t.clone());
        }
        c.access_log |= self.access_log;
        if !self.signed_prefixes.is_empty() || !self.sign_keys.is_empty() {
            let signed = c.signed_urls.get_or_insert_with(Default::default);
            signed.prefixes.extend(self.signed_prefixes.iter().cloned());
            for k in &self.sign_keys {
                let Some((id, file)) = k.split_once('=') else {
                    anyhow::bail!("--sign-key `{k}`: expected ID=FILE, e.g. k1=/etc/cdn/k1.key");
                };
                signed.keys.push(crate::signed::KeyConfig {
                    id: id.to_string(),
                    file: file.into(),
                });
            }
        }
        if let Some(p) = &self.tls_cert {
            c.tls_cert = Some(p.clone());
        }
        if let Some(p) = &self.tls_key {
            c.tls_key = Some(p.clone());
        }
        if let Some(p) = &self.upstream_ca {
            c.upstream_ca = Some(p.clone());
        }
        let limits = &mut c.rate_limit;
        let numbers = [
            (self.requests_per_sec, &mut limits.requests_per_sec),
            (self.request_burst, &mut limits.burst),
            (self.misses_per_sec, &mut limits.misses_per_sec),
            (self.miss_burst, &mut limits.miss_burst),
        ];
        for (given, field) in numbers {
            if let Some(v) = given {
                *field = v;
            }
        }
        if !self.limit_exempt.is_empty() {
            limits.exempt = self
                .limit_exempt
                .iter()
                .filter(|n| !n.eq_ignore_ascii_case("none"))
                .cloned()
                .collect();
        }
        if let Some(n) = self.max_upstream_fetches {
            c.max_upstream_fetches = n;
        }
        if let Some(n) = self.upstream_queue {
            c.upstream_queue = n;
        }
        if let Some(s) = self.upstream_queue_wait {
            c.upstream_queue_wait_secs = s;
        }
        c.validate()?;
        Ok(c)
    }
}

/// Runs the edge until a shutdown signal (builds its own Tokio runtime).
pub fn run(args: Args) -> Result<()> {
    let config = args.to_config()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?;
    runtime.block_on(async move {
        let edge = crate::spawn(config).await?;
        eprintln!(
            "edge {} listening on http://{}",
            edge.name(),
            edge.local_addr()
        );
        common::shutdown_signal().await;
        edge.shutdown().await;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn flags_override_defaults() {
        let cli = Cli::try_parse_from([
            "edge",
            "--listen",
            "127.0.0.1:9999",
            "--upstream",
            "http://127.0.0.1:1",
            "--name",
            "edge-9",
            "--cache-size",
            "64MiB",
            "--parent",
            "http://127.0.0.1:2",
            "--parent",
            "http://127.0.0.1:3",
        ])
        .unwrap();
        let c = cli.args.to_config().unwrap();
        assert_eq!(c.listen.port(), 9999);
        assert_eq!(c.cache_size, ByteSize(64 << 20));
        assert_eq!(c.parents.len(), 2);
        assert_eq!(c.name, "edge-9");
        assert!(c.cache_dir.is_none());
        let bad = Cli::try_parse_from(["edge", "--cache-size", "lots"]).unwrap();
        assert!(bad.args.to_config().is_err());
        let disk = Cli::try_parse_from([
            "edge",
            "--cache-dir",
            "/var/cache/edge",
            "--disk-size",
            "20GiB",
        ])
        .unwrap();
        let c = disk.args.to_config().unwrap();
        assert_eq!(
            c.cache_dir.as_deref(),
            Some(std::path::Path::new("/var/cache/edge"))
        );
        assert_eq!(c.disk_size, ByteSize(20 << 30));
        assert!(Cli::try_parse_from(["edge", "--disk-size", "1GiB"]).is_err());
    }

    #[test]
    fn limit_flags_override_defaults() {
        let c = Cli::try_parse_from(["edge"])
            .unwrap()
            .args
            .to_config()
            .unwrap();
        assert_eq!(c.rate_limit, crate::limits::RateLimitConfig::default());
        let cli = Cli::try_parse_from([
            "edge",
            "--requests-per-sec",
            "50",
            "--request-burst",
            "100",
            "--misses-per-sec",
            "4",
            "--miss-burst",
            "30",
            "--limit-exempt",
            "10.0.0.0/8",
            "--limit-exempt",
            "::1",
            "--max-upstream-fetches",
            "32",
            "--upstream-queue",
            "8",
            "--upstream-queue-wait",
            "0.5",
        ])
        .unwrap();
        let c = cli.args.to_config().unwrap();
        let l = &c.rate_limit;
        assert_eq!(
            (l.requests_per_sec, l.burst, l.misses_per_sec, l.miss_burst),
            (50.0, 100.0, 4.0, 30.0)
        );
        assert_eq!(l.exempt, vec!["10.0.0.0/8".to_string(), "::1".to_string()]);
        assert_eq!((c.max_upstream_fetches, c.upstream_queue), (32, 8));
        assert_eq!(c.upstream_queue_wait_secs, 0.5);
        let none = Cli::try_parse_from(["edge", "--limit-exempt", "none"]).unwrap();
        assert!(none.args.to_config().unwrap().rate_limit.exempt.is_empty());
        let bad = Cli::try_parse_from(["edge", "--misses-per-sec=-3"]).unwrap();
        assert!(bad.args.to_config().is_err());
    }
}
