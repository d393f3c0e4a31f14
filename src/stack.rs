//! The whole stack in one process: the origin, the edges (one per region) and the DNS router,
//! each a task set of the same tokio runtime, started from one [`StackConfig`].
//!
//! One process rather than child processes: one binary to run, one Ctrl-C that stops everything in
//! order, shared memory for nothing (each service still owns its state and its own Prometheus
//! registry), and tests can stop a single edge through its handle to model a failure.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// Where each part of the stack listens, and what it serves.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StackConfig {
    /// Content root served by the origin; the demo title is packaged into `DATA/vod/<title>`.
    pub data: PathBuf,
    /// The VOD title (`/vod/<title>/manifest.mpd`).
    pub title: String,
    /// The live channel looping the title (`/live/<channel>/manifest.mpd`); a low-latency
    /// twin runs beside it as `<channel>-ll`.
    pub live_channel: String,
    /// Chunk duration of the low-latency channel, seconds.
    pub low_latency_chunk_secs: f64,
    /// Seconds of test pattern packaged on first run.
    pub package_duration_secs: f64,
    /// The origin's address.
    pub origin: SocketAddr,
    /// One edge per region.
    pub edges: Vec<EdgeSpec>,
    /// The DNS router (UDP and TCP).
    pub dns: SocketAddr,
    /// The DNS router's `/metrics`.
    pub dns_metrics: SocketAddr,
    /// Memory each edge may use for cached objects, e.g. `256MiB`.
    pub edge_cache_size: String,
    /// With it, each edge also keeps objects on disk, in `<edge_cache_dir>/<edge name>`, and
    /// comes back warm after a restart.
    pub edge_cache_dir: Option<PathBuf>,
    /// Bytes each edge's disk tier may occupy, e.g. `20GiB` (with `edge_cache_dir`).
    pub edge_disk_size: String,
    /// Bearer token that allows `PURGE` on the edges.
    pub purge_token: Option<String>,
    /// Health-check interval of the DNS router, in milliseconds.
    pub health_interval_ms: u64,
    /// Cache-Control the origin sends with static MPDs.
    pub mpd_cache_control: String,
    /// Where the edges send misses, when not straight to the origin (e.g. a shield tier, or a
    /// test's fault-injecting proxy).
    pub edge_upstream: Option<String>,
    /// Serve HTTPS (HTTP/2 and HTTP/1.1 by ALPN) on the origin and the edges; the edges verify
    /// the origin and the router verifies the edges' health pages against the stack's certificate.
    pub tls: bool,
    /// PEM certificate chain for `tls`; without it a self-signed certificate for the stack's
    /// names and addresses is generated into `DATA/tls/` (and kept for the next start).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// The watch page's server (plain HTTP; see [`crate::watch`]).
    pub watch: SocketAddr,
    /// A directory holding `dash.all.min.js` and `hls.min.js` (or a `node_modules` with the
    /// `dashjs` and `hls.js` packages) that the watch page loads its players from; without it,
    /// from their public CDN.
    pub watch_players_dir: Option<PathBuf>,
}

/// Certificate and key files a TLS stack serves with.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// One edge and the region it serves.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeSpec {
    pub name: String,
    pub listen: SocketAddr,
    /// Client subnets located in this edge's region (CIDR).
    pub clients: Vec<String>,
    pub latitude: f64,
    pub longitude: f64,
}

impl Default for StackConfig {
    fn default() -> Self {
        let edge = |n: u8, name: &str, lat: f64, lon: f64| EdgeSpec {
            name: name.to_string(),
            listen: SocketAddr::from(([127, 0, n, 1], 8080)),
            clients: vec![format!("127.0.{n}.0/24")],
            latitude: lat,
            longitude: lon,
        };
        StackConfig {
            data: PathBuf::from("data"),
            title: "demo".into(),
            live_channel: "demo".into(),
            low_latency_chunk_secs: 0.5,
            package_duration_secs: 30.0,
            origin: SocketAddr::from(([127, 0, 0, 1], 8000)),
            edges: vec![
                edge(1, "region1", 48.86, 2.35),
                edge(2, "region2", 40.71, -74.01),
                edge(3, "region3", 35.68, 139.69),
            ],
            dns: SocketAddr::from(([127, 0, 0, 1], 5353)),
            dns_metrics: SocketAddr::from(([127, 0, 0, 1], 9153)),
            edge_cache_size: "256MiB".into(),
            edge_cache_dir: None,
            edge_disk_size: "1GiB".into(),
            purge_token: None,
            health_interval_ms: 1000,
            mpd_cache_control: "public, max-age=60".into(),
            edge_upstream: None,
            tls: false,
            tls_cert: None,
            tls_key: None,
            watch: SocketAddr::from(([127, 0, 0, 1], 8088)),
            watch_players_dir: None,
        }
    }
}

impl StackConfig {
    /// Reads a TOML file; every field is optional and falls back to the local default.
    pub fn load(path: &Path) -> Result<StackConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid stack config {}", path.display()))
    }

    /// The stack laid out on loopback addresses that no user stack uses: edges on
    /// `127.B.N.1`, region N's clients in `127.B.N.0/24`, for a second octet `B` of the caller's
    /// choosing, and every port free. For tests, which run side by side.
    pub fn on_free_addresses(data: PathBuf, second_octet: u8) -> Result<StackConfig> {
        let mut cfg = StackConfig {
            data,
            health_interval_ms: 200,
            ..StackConfig::default()
        };
        let base = |n: u8| IpAddr::from([127, second_octet, n, 1]);
        let edge_port = free_port_on(&[base(1), base(2), base(3)])?;
        for (i, edge) in cfg.edges.iter_mut().enumerate() {
            let n = i as u8 + 1;
            edge.listen = SocketAddr::new(base(n), edge_port);
            edge.clients = vec![format!("127.{second_octet}.{n}.0/24")];
        }
        // The DNS port is probed free and bound later: nothing else binds port 0 on its address
        // in between, or the kernel may hand the same port out again.
        let dns_ip = IpAddr::from([127, second_octet, 0, 1]);
        let others = IpAddr::from([127, second_octet, 0, 2]);
        cfg.origin = SocketAddr::new(others, 0);
        cfg.dns = SocketAddr::new(dns_ip, free_port_on(&[dns_ip])?);
        cfg.dns_metrics = SocketAddr::new(others, 0);
        cfg.watch = SocketAddr::new(others, 0);
        Ok(cfg)
    }

    /// `http` or `https`, as the origin and the edges serve.
    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }

    /// The names and addresses clients reach the stack by: the content and CDN names the router
    /// answers, `localhost`, the origin and every edge address.
    pub fn tls_names(&self) -> Vec<String> {
        let dns = dns_router::Config::local_default();
        let mut names: Vec<String> = Vec::new();
        let mut add = |n: String| {
            if !names.contains(&n) {
                names.push(n);
            }
        };
        for c in &dns.content {
            add(c.name.clone());
            add(c.target.clone());
        }
        for s in &dns.services {
            add(s.name.clone());
        }
        for h in &dns.hosts {
            add(h.name.clone());
        }
        add("localhost".into());
        add(self.origin.ip().to_string());
        for e in &self.edges {
            add(e.listen.ip().to_string());
        }
        names
    }

    /// The certificate and key to serve with when `tls` is on: the configured files, or a
    /// self-signed certificate for [`StackConfig::tls_names`] in `DATA/tls/`, generated when
    /// missing or when it does not cover those names.
    pub fn tls_files(&self) -> Result<Option<TlsFiles>> {
        if !self.tls {
            if self.tls_cert.is_some() || self.tls_key.is_some() {
                bail!("tls_cert and tls_key are set but tls is off: add `tls = true` (or --tls)");
            }
            return Ok(None);
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                common::tls::server_config_from_pem(cert, key)?;
                Ok(Some(TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                }))
            }
            (None, None) => {
                let dir = self.generated_tls_dir();
                let names = self.tls_names();
                let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
                let names_file = dir.join("names.txt");
                let wanted = names.join("\n") + "\n";
                let current = std::fs::read_to_string(&names_file).ok();
                if !cert.is_file()
                    || !key.is_file()
                    || current.as_deref() != Some(wanted.as_str())
                {
                    common::tls::write_self_signed(&dir, &names)?;
                    std::fs::write(&names_file, &wanted)
                        .with_context(|| format!("cannot write {}", names_file.display()))?;
                }
                Ok(Some(TlsFiles { cert, key }))
            }
            _ => bail!("tls_cert and tls_key go together: give both, or neither for a self-signed certificate"),
        }
    }

    /// The low-latency twin of the live channel.
    pub fn low_latency_channel(&self) -> String {
        format!("{}-ll", self.live_channel)
    }

    /// The PEM file whose certificates the stack's own clients (edges, router, players) trust
    /// when `tls` is on: the certificate file itself, which is its own root when self-signed and
    /// holds the chain otherwise.
    pub fn tls_root(&self) -> Option<PathBuf> {
        self.tls.then(|| {
            self.tls_cert
                .clone()
                .unwrap_or_else(|| self.generated_tls_dir().join("cert.pem"))
        })
    }

    /// Where a self-signed certificate is generated: `DATA/tls/`.
    fn generated_tls_dir(&self) -> PathBuf {
        self.data.join("tls")
    }

    /// The DNS router's configuration for this stack: the embedded local default with this
    /// stack's addresses, edges and regions.
    pub fn dns_config(&self, origin: SocketAddr) -> dns_router::Config {
        let mut cfg = dns_router::Config::local_default();
        cfg.server.listen = self.dns;
        cfg.server.metrics_listen = self.dns_metrics;
        cfg.health.interval_ms = self.health_interval_ms;
        cfg.health.timeout_ms = (self.health_interval_ms * 4 / 5).max(100);
        let capacity = cfg.edges.first().map(|e| e.capacity).unwrap_or(1.0);
        cfg.edges = self
            .edges
            .iter()
            .map(|e| dns_router::config::EdgeConfig {
                name: e.name.clone(),
                addresses: vec![e.listen.ip()],
                latitude: e.latitude,
                longitude: e.longitude,
                capacity,
                health_url: Some(format!("{}://{}/health", self.scheme(), e.listen)),
            })
            .collect();
        cfg.geo.coverage_zones = self
            .edges
            .iter()
            .map(|e| {
                let location = dns_router::config::CoverageLocation {
                    network: e.clients.clone(),
                    ..Default::default()
                };
                (e.name.clone(), location)
            })
            .collect();
        if let Some(first) = self.edges.first() {
            cfg.geo.default_location = Some(dns_router::config::DefaultLocation::Named(
                first.name.clone(),
            ));
        }
        cfg.health.ca_file = self.tls_root();
        cfg.fallback.addresses = vec![origin.ip()];
        for host in &mut cfg.hosts {
            host.addresses = vec![origin.ip()];
        }
        for zone in &mut cfg.zones {
            for ns in &mut zone.nameservers {
                ns.addresses = vec![self.dns.ip()];
            }
        }
        cfg
    }
}

/// A port that is free for both TCP and UDP on every one of `ips`.
pub fn free_port_on(ips: &[IpAddr]) -> Result<u16> {
    let first = *ips.first().context("no address given")?;
    for _ in 0..50 {
        let probe = std::net::TcpListener::bind((first, 0))
            .with_context(|| format!("cannot bind {first}"))?;
        let port = probe.local_addr()?.port();
        drop(probe);
        let all_free = ips.iter().all(|ip| {
            std::net::TcpListener::bind((*ip, port)).is_ok()
                && std::net::UdpSocket::bind((*ip, port)).is_ok()
        });
        if all_free {
            return Ok(port);
        }
    }
    bail!("no port free on all of {ips:?}")
}

/// The configuration of one edge of the stack, fetching from `upstream`.
fn edge_config(
    config: &StackConfig,
    spec: &EdgeSpec,
    upstream: String,
    tls: Option<&TlsFiles>,
) -> Result<edge::Config> {
    let cache_size = common::units::parse_size(&config.edge_cache_size)?;
    let disk_size = common::units::parse_size(&config.edge_disk_size)
        .with_context(|| format!("edge_disk_size {}", config.edge_disk_size))?;
    Ok(edge::Config {
        cache_dir: config.edge_cache_dir.as_ref().map(|d| d.join(&spec.name)),
        disk_size: edge::config::ByteSize(disk_size),
        listen: spec.listen,
        upstream,
        name: spec.name.clone(),
        cache_size: edge::config::ByteSize(cache_size),
        purge_token: config.purge_token.clone(),
        tls_cert: tls.map(|t| t.cert.clone()),
        tls_key: tls.map(|t| t.key.clone()),
        upstream_ca: config.tls_root(),
        ..edge::Config::default()
    })
}

/// GETs `http://ADDR/metrics` and returns the text exposition.
pub async fn scrape(addr: SocketAddr) -> Result<String> {
    let body = common::http::get(&format!("http://{addr}/metrics")).await?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Reads `/metrics` of the origin and the edges: over HTTPS, trusting the stack's certificate,
/// when the stack serves TLS.
#[derive(Clone)]
pub struct Scraper {
    fetcher: common::http::Fetcher,
    scheme: &'static str,
}

impl Scraper {
    /// A scraper for the stack `config` describes.
    pub fn new(config: &StackConfig) -> Result<Scraper> {
        let roots = common::tls::Roots {
            ca_files: config.tls_root().into_iter().collect(),
            system: false,
        };
        Ok(Scraper {
            fetcher: common::http::Fetcher::new(&roots)?,
            scheme: config.scheme(),
        })
    }

    /// The text exposition at `SCHEME://ADDR/metrics`.
    pub async fn scrape(&self, addr: SocketAddr) -> Result<String> {
        let url = format!("{}://{addr}/metrics", self.scheme);
        let body = self.fetcher.get(&url).await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }
}

/// The running stack.
pub struct Stack {
    pub config: StackConfig,
    pub origin: origin::Origin,
    /// One per configured edge; `None` once stopped with [`Stack::stop_edge`].
    pub edges: Vec<Option<edge::Edge>>,
    pub dns: dns_router::DnsRouter,
    /// The watch page's server.
    pub watch: crate::watch::Watch,
    /// The certificate and key the origin and the edges serve with (restarted edges too).
    tls: Option<TlsFiles>,
}

impl Stack {
    /// Packages the title if it is not there yet, then starts the origin, the edges and the router.
    pub async fn start(config: StackConfig) -> Result<Stack> {
        let title_dir = config.data.join("vod").join(&config.title);
        if !title_dir.join("manifest.mpd").is_file() {
            let mut opts = packager::Options::new(&title_dir);
            opts.duration = Some(config.package_duration_secs);
            opts.progress = true;
            let dir = title_dir.clone();
            tokio::task::spawn_blocking(move || packager::package(&opts))
                .await
                .context("packaging task failed")?
                .with_context(|| format!("packaging the demo title into {}", dir.display()))?;
        }

        let tls = config.tls_files()?;
        let mut origin_cfg = origin::Config {
            root: config.data.clone(),
            listen: config.origin,
            tls_cert: tls.as_ref().map(|t| t.cert.clone()),
            tls_key: tls.as_ref().map(|t| t.key.clone()),
            ..origin::Config::default()
        };
        origin_cfg.cache_control.mpd = config.mpd_cache_control.clone();
        origin_cfg.channels.insert(
            config.live_channel.clone(),
            origin::config::ChannelConfig::Title(config.title.clone()),
        );
        origin_cfg.channels.insert(
            config.low_latency_channel(),
            origin::config::ChannelConfig::Full(origin::config::ChannelTable {
                title: config.title.clone(),
                time_shift_buffer_depth_secs: None,
                suggested_presentation_delay_secs: None,
                minimum_update_period_secs: None,
                availability_start_time: None,
                chunk_secs: Some(config.low_latency_chunk_secs),
                target_latency_secs: None,
            }),
        );
        let channels: Vec<String> = origin_cfg.channels.keys().cloned().collect();
        let origin = origin::spawn(origin_cfg)
            .await
            .context("starting the origin")?;

        let mut edges = Vec::new();
        for spec in &config.edges {
            let upstream = config.edge_upstream.clone().unwrap_or_else(|| origin.url());
            let edge_cfg = edge_config(&config, spec, upstream, tls.as_ref())?;
            let e = edge::spawn(edge_cfg)
                .await
                .with_context(|| format!("starting edge {}", spec.name))?;
            edges.push(Some(e));
        }

        let dns = dns_router::spawn(config.dns_config(origin.local_addr()))
            .context("starting the DNS router")?;
        let watch = crate::watch::spawn(crate::watch::WatchConfig {
            listen: config.watch,
            data: config.data.clone(),
            channels,
            edges: config
                .edges
                .iter()
                .zip(&edges)
                .filter_map(|(spec, e)| {
                    let url = format!("{}://{}", config.scheme(), e.as_ref()?.local_addr());
                    Some((spec.name.clone(), url))
                })
                .collect(),
            players_dir: config.watch_players_dir.clone(),
        })
        .await
        .context("starting the watch page's server")?;
        Ok(Stack {
            config,
            origin,
            edges,
            dns,
            watch,
            tls,
        })
    }

    /// `http://video.example.test:PORT` (`https://` with TLS) for this stack's edges (they share
    /// one port).
    pub fn content_base(&self) -> String {
        let port = self
            .config
            .edges
            .first()
            .map(|e| e.listen.port())
            .unwrap_or(80);
        format!("{}://video.example.test:{port}", self.config.scheme())
    }

    /// Addresses of the running edges.
    pub fn edge_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.config
            .edges
            .iter()
            .zip(&self.edges)
            .filter_map(|(spec, e)| e.as_ref().map(|e| (spec.name.clone(), e.local_addr())))
            .collect()
    }

    /// Stops one edge (as if its machine went away); the router notices through health checks.
    pub async fn stop_edge(&mut self, index: usize) {
        if let Some(e) = self.edges.get_mut(index).and_then(Option::take) {
            e.shutdown().await;
        }
    }

    /// Starts edge `index` again after [`Stack::stop_edge`], on its configured address and with
    /// an empty cache, as a restarted machine comes back. Does nothing if it is running.
    pub async fn start_edge(&mut self, index: usize) -> Result<()> {
        let spec = self
            .config
            .edges
            .get(index)
            .with_context(|| format!("no edge number {index}"))?;
        if self.edges.get(index).is_some_and(Option::is_some) {
            return Ok(());
        }
        let upstream = self
            .config
            .edge_upstream
            .clone()
            .unwrap_or_else(|| self.origin.url());
        let e = edge::spawn(edge_config(
            &self.config,
            spec,
            upstream,
            self.tls.as_ref(),
        )?)
        .await
        .with_context(|| format!("restarting edge {}", spec.name))?;
        self.edges[index] = Some(e);
        Ok(())
    }

    /// Stops the DNS router, waits `down_for`, and starts a new one on the same DNS address
    /// (UDP and TCP), with fresh health state and metrics, as a restart of its process would.
    pub async fn restart_dns(self, down_for: std::time::Duration) -> Result<Stack> {
        let Stack {
            config,
            origin,
            edges,
            dns,
            watch,
            tls,
        } = self;
        let listen = dns.dns_addr();
        dns.shutdown().await;
        tokio::time::sleep(down_for).await;
        let mut dns_cfg = config.dns_config(origin.local_addr());
        dns_cfg.server.listen = listen;
        let dns = dns_router::spawn(dns_cfg).context("restarting the DNS router")?;
        Ok(Stack {
            config,
            origin,
            edges,
            dns,
            watch,
            tls,
        })
    }

    /// Every `/metrics` endpoint of the stack, as (job, instance name, address).
    pub fn metrics_targets(&self) -> Vec<(&'static str, String, SocketAddr)> {
        let mut t = vec![("origin", "origin".to_string(), self.origin.local_addr())];
        t.extend(
            self.edge_addrs()
                .into_iter()
                .map(|(name, addr)| ("edge", name, addr)),
        );
        t.push((
            "dns-router",
            "dns-router".to_string(),
            self.dns.metrics_addr(),
        ));
        t
    }

    /// A Prometheus configuration that scrapes every service of the stack every
    /// `interval_secs`, labelling each target with its instance name (edges by region).
    pub fn prometheus_config(&self, interval_secs: u32) -> String {
        let mut s = format!("global:\n  scrape_interval: {interval_secs}s\nscrape_configs:\n");
        let mut jobs: Vec<&str> = Vec::new();
        let targets = self.metrics_targets();
        for (job, _, _) in &targets {
            if !jobs.contains(job) {
                jobs.push(job);
            }
        }
        let ca = self
            .config
            .tls_root()
            .map(|p| std::path::absolute(&p).unwrap_or(p).display().to_string());
        for job in jobs {
            s.push_str(&format!("  - job_name: {job}\n"));
            if let (Some(ca), true) = (&ca, job != "dns-router") {
                s.push_str(&format!(
                    "    scheme: https\n    tls_config:\n      ca_file: '{ca}'\n"
                ));
            }
            s.push_str("    static_configs:\n");
            for (_, name, addr) in targets.iter().filter(|(j, _, _)| *j == job) {
                s.push_str(&format!(
                    "      - targets: ['{addr}']\n        labels: {{ name: '{name}' }}\n"
                ));
            }
        }
        s
    }

    /// What runs where, in a few lines.
    pub fn banner_short(&self) -> String {
        let scheme = self.config.scheme();
        let mut s = format!("   origin     {scheme}://{}\n", self.origin.local_addr());
        for (name, addr) in self.edge_addrs() {
            s.push_str(&format!("   edge       {scheme}://{addr}  ({name})\n"));
        }
        s.push_str(&format!(
            "   dns-router {} udp+tcp, metrics http://{}/metrics\n",
            self.dns.dns_addr(),
            self.dns.metrics_addr()
        ));
        s.push_str(&format!(
            "   watch      {}  (titles and live channels, played in the browser through an edge)",
            self.watch.url()
        ));
        s
    }

    /// What runs where, and commands to paste to try each part.
    pub fn banner(&self) -> String {
        let c = &self.config;
        let origin = self.origin.local_addr();
        let dns = self.dns.dns_addr();
        let scheme = c.scheme();
        let mut s = String::new();
        s.push_str("The stack is up, in this one process (Ctrl-C stops it):\n");
        s.push_str(&format!(
            "  origin      {scheme}://{origin}  serving {} (VOD /vod/{}/manifest.mpd, live /live/{}/manifest.mpd)\n",
            c.data.display(),
            c.title,
            c.live_channel
        ));
        for (spec, e) in c.edges.iter().zip(&self.edges) {
            if let Some(e) = e {
                s.push_str(&format!(
                    "  edge        {scheme}://{}  {} (clients {})\n",
                    e.local_addr(),
                    spec.name,
                    spec.clients.join(", ")
                ));
            }
        }
        s.push_str(&format!(
            "  dns-router  {dns} udp+tcp, metrics http://{}/metrics\n",
            self.dns.metrics_addr()
        ));
        s.push_str(&format!(
            "  watch       {}  the watch page: titles and live channels, played in the browser through an edge\n\n",
            self.watch.url()
        ));
        let client = |i: usize| -> String {
            c.edges
                .get(i)
                .and_then(|e| e.clients.first())
                .and_then(|cidr| cidr.split('/').next())
                .map(|net| net.trim_end_matches(".0").to_string() + ".10")
                .unwrap_or_else(|| "127.0.0.1".into())
        };
        let base = self.content_base();
        // How curl, ffprobe and `cdn play` are told to trust the stack's certificate.
        let (cacert, ffprobe_ca, ca) = match c.tls_root() {
            Some(p) => {
                s.push_str(&format!(
                    "TLS: HTTP/2 and HTTP/1.1 by ALPN; clients trust {}\n\n",
                    p.display()
                ));
                (
                    format!(" --cacert {}", p.display()),
                    format!(" -tls_verify 1 -ca_file {}", p.display()),
                    format!(" --ca {}", p.display()),
                )
            }
            None => (String::new(), String::new(), String::new()),
        };
        let edge0 = self.edge_addrs().first().map(|(_, a)| *a).unwrap_or(origin);
        s.push_str("Try:\n");
        s.push_str(&format!(
            "  dig @{} -p {} -b {} video.example.test A\n",
            dns.ip(),
            dns.port(),
            client(1)
        ));
        s.push_str(&format!(
            "  kdig @{} -p {} +subnet=127.0.3.0/24 video.cdn.example.test A\n",
            dns.ip(),
            dns.port()
        ));
        s.push_str(&format!(
            "  curl -sI{cacert} {scheme}://{edge0}/vod/{}/manifest.mpd\n",
            c.title
        ));
        s.push_str(&format!(
            "  ffprobe -v error{ffprobe_ca} -show_entries stream=width,height,bit_rate {scheme}://{edge0}/vod/{}/manifest.mpd\n",
            c.title
        ));
        s.push_str(&format!(
            "  cdn play {base}/vod/{}/manifest.mpd --dns {dns} --bind {}{ca}\n",
            c.title,
            client(1)
        ));
        s.push_str(&format!(
            "  cdn play {base}/live/{}/manifest.mpd --dns {dns} --bind {} --duration 30{ca}\n",
            c.live_channel,
            client(2)
        ));
        s.push_str(&format!(
            "  cdn play {base}/live/{}/manifest.mpd --dns {dns} --bind {} --duration 30 --low-latency{ca}\n\n",
            c.low_latency_channel(),
            client(0)
        ));
        s.push_str("Prometheus scrape config (prometheus.yml):\n");
        s.push_str(&self.prometheus_config(5));
        s
    }

    /// Stops everything: the watch page and the router first (no new clients steered), then
    /// edges, then the origin.
    pub async fn shutdown(self) {
        self.watch.shutdown().await;
        self.dns.shutdown().await;
        for e in self.edges.into_iter().flatten() {
            e.shutdown().await;
        }
        self.origin.shutdown().await;
    }
}
