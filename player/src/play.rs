//! Real playback: DNS (hickory-resolver through a given server, following the CNAME chain, or
//! the system resolver), HTTP with a pooled keep-alive hyper client bound to an optional source
//! address, per-segment failover (retry once, then the next address, then re-resolve), optional
//! shaping of downloads to a trace, live MPDs (refresh, live-edge start, UTCTiming), all driven
//! by the same [`session::run`] loop as the simulator, against the wall clock.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use common::http::error_chain;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mpd::{Mpd, SegmentsAt};
use serde::Serialize;
use tokio::time::Instant;
use url::Url;

use crate::abr;
use crate::manifest::Title;
use crate::report::SessionReport;
use crate::session::{self, Clock, Fetched, Request, SessionConfig, Transport, Watch};
use crate::trace::{Link, Trace};

/// How to play.
#[derive(Debug, Clone)]
pub struct PlayConfig {
    pub url: Url,
    /// DNS server to ask (the system resolver when absent).
    pub dns: Option<SocketAddr>,
    /// Source address for DNS and HTTP.
    pub bind: Option<IpAddr>,
    pub abr: String,
    /// Throttle downloads to this trace.
    pub shape: Option<Trace>,
    /// Stop requesting segments after this many seconds (live streams default to 30 s).
    pub duration_s: Option<f64>,
    /// Per-request timeout for headers and between body chunks.
    pub timeout: Duration,
    /// Talk HTTP/2 with prior knowledge (cleartext h2c).
    pub http2: bool,
    /// Skip DNS and use these addresses for the URL's host, in order (like curl's --resolve).
    pub resolve: Option<Vec<IpAddr>>,
    /// PEM files of roots trusted for https:// URLs.
    pub ca: Vec<std::path::PathBuf>,
    /// Also trust the system's root certificates for https:// URLs.
    pub system_roots: bool,
    pub session: SessionConfig,
}

impl PlayConfig {
    pub fn new(url: Url) -> Self {
        PlayConfig {
            url,
            dns: None,
            bind: None,
            abr: abr::DEFAULT.to_string(),
            shape: None,
            duration_s: None,
            timeout: Duration::from_secs(5),
            http2: false,
            resolve: None,
            ca: Vec::new(),
            system_roots: true,
            session: SessionConfig {
                buffer: crate::buffer::BufferConfig {
                    max_s: 30.0,
                    ..Default::default()
                },
                abandonment: true,
                play_out: true,
                max_session_s: None,
            },
        }
    }
}

/// What a real playback saw, beyond the session report.
#[derive(Debug, Clone, Serialize)]
pub struct PlayReport {
    pub url: String,
    /// Names from the URL's host through each CNAME target.
    pub dns_chain: Vec<String>,
    /// Addresses the last resolution gave.
    pub addresses: Vec<String>,
    pub live: bool,
    pub clock_offset_s: f64,
    pub failovers: u32,
    pub resolutions: u32,
    pub session: SessionReport,
}

impl PlayReport {
    pub fn table(&self) -> String {
        format!(
            "url {} | dns {} -> [{}] | live {} | failovers {} | resolutions {}\n{}",
            self.url,
            self.dns_chain.join(" -> "),
            self.addresses.join(", "),
            self.live,
            self.failovers,
            self.resolutions,
            self.session.table()
        )
    }
}

/// Resolves names, following and recording the CNAME chain.
pub struct Dns {
    resolver: Option<hickory_resolver::TokioResolver>,
    fixed: Option<Vec<IpAddr>>,
}

/// A resolution: the names walked and the addresses found.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub chain: Vec<String>,
    pub addrs: Vec<IpAddr>,
}

impl Dns {
    /// A resolver asking `server` (UDP, then TCP) from `bind`, or the system resolver.
    pub fn new(server: Option<SocketAddr>, bind: Option<IpAddr>) -> Result<Self> {
        use hickory_resolver::config::{
            ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts,
        };
        let Some(server) = server else {
            return Ok(Dns {
                resolver: None,
                fixed: None,
            });
        };
        let mut conns = vec![ConnectionConfig::udp(), ConnectionConfig::tcp()];
        for c in &mut conns {
            c.port = server.port();
            c.bind_addr = bind.map(|ip| SocketAddr::new(ip, 0));
        }
        let mut ns = NameServerConfig::udp_and_tcp(server.ip());
        ns.connections = conns;
        let config = ResolverConfig::from_parts(None, vec![], vec![ns]);
        let mut opts = ResolverOpts::default();
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 2;
        opts.cache_size = 0;
        let resolver = hickory_resolver::Resolver::builder_with_config(
            config,
            hickory_resolver::net::runtime::TokioRuntimeProvider::default(),
        )
        .with_options(opts)
        .build()
        .context("cannot build the DNS resolver")?;
        Ok(Dns {
            resolver: Some(resolver),
            fixed: None,
        })
    }

    /// A "resolver" that always answers `addrs`.
    pub fn fixed(addrs: Vec<IpAddr>) -> Self {
        Dns {
            resolver: None,
            fixed: Some(addrs),
        }
    }

    pub async fn resolve(&self, host: &str, port: u16) -> Result<Resolved> {
        if let Some(addrs) = &self.fixed {
            if addrs.is_empty() {
                bail!("no addresses given for {host}");
            }
            return Ok(Resolved {
                chain: vec![host.to_string()],
                addrs: addrs.clone(),
            });
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(Resolved {
                chain: vec![host.to_string()],
                addrs: vec![ip],
            });
        }
        match &self.resolver {
            Some(r) => {
                let lookup = r
                    .lookup_ip(host)
                    .await
                    .with_context(|| format!("DNS lookup of {host}"))?;
                let mut chain = vec![host.trim_end_matches('.').to_string()];
                for rec in lookup.as_lookup().answers() {
                    if let hickory_resolver::proto::rr::RData::CNAME(c) = &rec.data {
                        chain.push(c.0.to_string().trim_end_matches('.').to_string());
                    }
                }
                let addrs: Vec<IpAddr> = lookup.iter().collect();
                if addrs.is_empty() {
                    bail!("DNS lookup of {host}: no addresses");
                }
                Ok(Resolved { chain, addrs })
            }
            None => {
                let addrs: Vec<IpAddr> = tokio::net::lookup_host((host, port))
                    .await
                    .with_context(|| format!("system lookup of {host}"))?
                    .map(|a| a.ip())
                    .collect();
                if addrs.is_empty() {
                    bail!("system lookup of {host}: no addresses");
                }
                Ok(Resolved {
                    chain: vec![host.to_string()],
                    addrs,
                })
            }
        }
    }
}

/// Wall-clock time since the session began.
pub struct WallClock {
    start: Instant,
}

impl WallClock {
    pub fn new() -> Self {
        WallClock {
            start: Instant::now(),
        }
    }
}

impl Default for WallClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for WallClock {
    fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    fn sleep(&self, secs: f64) -> impl std::future::Future<Output = ()> {
        tokio::time::sleep(Duration::from_secs_f64(secs.clamp(0.0, 86_400.0)))
    }
}

/// Paces received bytes along a trace (a shaped link that starts when playback starts).
struct Shaper {
    link: Link<Arc<Trace>>,
    free_at_s: f64,
}

impl Shaper {
    /// When `bytes` received at `now_s` would have arrived over the shaped link.
    fn pace(&mut self, now_s: f64, bytes: u64) -> f64 {
        let start = now_s.max(self.free_at_s);
        if let crate::trace::Transfer::Done { end_s } =
            self.link.transfer(start, bytes, 0.0, &mut |_, _| true)
        {
            self.free_at_s = end_s;
        }
        self.free_at_s
    }
}

/// Why a request failed, and whether trying elsewhere may help.
#[derive(Debug)]
enum FetchFailure {
    Retryable(anyhow::Error),
    Fatal(anyhow::Error),
}

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// HTTP with failover across the addresses DNS gave.
pub struct Net {
    client: HttpClient,
    /// `http` or `https`.
    scheme: &'static str,
    dns: Dns,
    host: String,
    port: u16,
    resolved: Resolved,
    current: usize,
    timeout: Duration,
    shaper: Option<Shaper>,
    clock: Arc<WallClock>,
    pub failovers: u32,
    pub resolutions: u32,
}

/// A finished body transfer.
struct Body {
    bytes: u64,
    complete: bool,
    data: Option<Vec<u8>>,
    edge: SocketAddr,
}

impl Net {
    pub async fn new(cfg: &PlayConfig, clock: Arc<WallClock>) -> Result<Self> {
        let host = cfg
            .url
            .host_str()
            .ok_or_else(|| anyhow!("{}: no host", cfg.url))?
            .to_string();
        let scheme = match cfg.url.scheme() {
            "http" => "http",
            "https" => "https",
            _ => bail!("{}: only http:// and https:// URLs are supported", cfg.url),
        };
        let port = cfg.url.port_or_known_default().unwrap_or(80);
        let dns = match &cfg.resolve {
            Some(addrs) => Dns::fixed(addrs.clone()),
            None => Dns::new(cfg.dns, cfg.bind)?,
        };
        let resolved = dns.resolve(&host, port).await?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(cfg.timeout));
        connector.set_local_address(cfg.bind);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(4);
        if cfg.http2 {
            builder.http2_only(true);
        }
        // Every edge address is verified against the URL's host name, not the IP dialled.
        let roots = common::tls::Roots {
            ca_files: cfg.ca.clone(),
            system: scheme == "https" && cfg.system_roots,
        };
        let tls = common::tls::client_config(&roots, &[])?;
        let connector = common::tls::https_connector(connector, tls, true, Some(&host))?;
        let client = builder.build(connector);
        let shaper = cfg.shape.clone().map(|t| Shaper {
            link: Link::new(Arc::new(t), 1.0),
            free_at_s: 0.0,
        });
        Ok(Net {
            client,
            scheme,
            dns,
            host,
            port,
            resolved,
            current: 0,
            timeout: cfg.timeout,
            shaper,
            clock,
            failovers: 0,
            resolutions: 1,
        })
    }

    pub fn resolved(&self) -> &Resolved {
        &self.resolved
    }

    fn edge(&self) -> SocketAddr {
        SocketAddr::new(self.resolved.addrs[self.current], self.port)
    }

    /// One GET to one address.
    async fn get_once(
        &mut self,
        url: &Url,
        range: Option<&str>,
        keep: bool,
        watch: &mut Option<&mut Watch<'_>>,
        expected: u64,
    ) -> Result<Body, FetchFailure> {
        if url.host_str() != Some(self.host.as_str()) {
            return Err(FetchFailure::Fatal(anyhow!(
                "{url}: segments on another host than {} are not supported",
                self.host
            )));
        }
        let edge = self.edge();
        let mut path = url.path().to_string();
        if let Some(q) = url.query() {
            path.push('?');
            path.push_str(q);
        }
        let uri: http::Uri = format!("{}://{edge}{path}", self.scheme)
            .parse()
            .map_err(|e| FetchFailure::Fatal(anyhow!("{url}: bad URI: {e}")))?;
        let host_header = match url.port() {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        };
        let mut req = http::Request::get(uri).header(http::header::HOST, host_header);
        if let Some(r) = range {
            req = req.header(http::header::RANGE, r);
        }
        let req = req
            .body(Empty::<Bytes>::new())
            .map_err(|e| FetchFailure::Fatal(anyhow!("{url}: {e}")))?;
        let t0 = self.clock.now();
        let resp = match tokio::time::timeout(self.timeout, self.client.request(req)).await {
            Err(_) => {
                return Err(FetchFailure::Retryable(anyhow!(
                    "{url} via {edge}: timeout"
                )))
            }
            Ok(Err(e)) => {
                return Err(FetchFailure::Retryable(anyhow!(
                    "{url} via {edge}: {}",
                    error_chain(&e)
                )))
            }
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        if status.is_server_error() {
            return Err(FetchFailure::Retryable(anyhow!(
                "{url} via {edge}: HTTP {status}"
            )));
        }
        if !status.is_success() {
            return Err(FetchFailure::Fatal(anyhow!("{url}: HTTP {status}")));
        }
        let total = resp
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(expected);
        let mut body = resp.into_body();
        let mut data = keep.then(Vec::new);
        let mut done = 0u64;
        loop {
            let frame = match tokio::time::timeout(self.timeout, body.frame()).await {
                Err(_) => {
                    return Err(FetchFailure::Retryable(anyhow!(
                        "{url} via {edge}: body stalled"
                    )))
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(FetchFailure::Retryable(anyhow!("{url} via {edge}: {e}")))
                }
                Ok(Some(Ok(f))) => f,
            };
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
            done += chunk.len() as u64;
            if keep && done > MAX_KEPT_BODY {
                return Err(FetchFailure::Fatal(anyhow!(
                    "{url} via {edge}: body larger than {MAX_KEPT_BODY} bytes"
                )));
            }
            if let Some(d) = &mut data {
                d.extend_from_slice(&chunk);
            }
            if let Some(shaper) = &mut self.shaper {
                let now = self.clock.now();
                let until = shaper.pace(now, chunk.len() as u64);
                if until > now {
                    tokio::time::sleep(Duration::from_secs_f64((until - now).min(3600.0))).await;
                }
            }
            if let Some(w) = watch.as_mut() {
                if !w(done, total.max(done), self.clock.now() - t0) {
                    return Ok(Body {
                        bytes: done,
                        complete: false,
                        data,
                        edge,
                    });
                }
            }
        }
        Ok(Body {
            bytes: done,
            complete: true,
            data,
            edge,
        })
    }

    /// GET with failover: retry once on the same address, then each other address, then
    /// re-resolve and try once more.
    async fn get(
        &mut self,
        url: &Url,
        range: Option<&str>,
        keep: bool,
        mut watch: Option<&mut Watch<'_>>,
        expected: u64,
    ) -> Result<Body> {
        let mut last_err = None;
        // Each address once (the current one twice: a retry), then DNS again, with a growing
        // pause, until the failover window closes: right after an edge dies the router may still
        // return it for one health-check window.
        let deadline = self.clock.now() + FAILOVER_WINDOW_S;
        let mut pause = 0.1;
        let mut round = 0;
        loop {
            let n = self.resolved.addrs.len().max(1);
            let tries = if round == 0 { n + 1 } else { n };
            for attempt in 0..tries {
                match self.get_once(url, range, keep, &mut watch, expected).await {
                    Ok(b) => return Ok(b),
                    Err(FetchFailure::Fatal(e)) => return Err(e),
                    Err(FetchFailure::Retryable(e)) => {
                        tracing::warn!("{e:#}");
                        last_err = Some(e);
                    }
                }
                // The first failure is retried on the same address; later ones move on.
                if round > 0 || attempt >= 1 {
                    self.current = (self.current + 1) % n;
                    self.failovers += 1;
                }
            }
            if self.clock.now() + pause > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_secs_f64(pause)).await;
            pause = (pause * 2.0).min(1.0);
            round += 1;
            match self.dns.resolve(&self.host.clone(), self.port).await {
                Ok(r) => {
                    self.resolved = r;
                    self.current = 0;
                    self.resolutions += 1;
                }
                Err(e) => tracing::warn!("re-resolving {}: {e:#}", self.host),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow!("{url}: failed")))
    }

    /// Fetches a whole document (MPD, time endpoint).
    pub async fn get_bytes(&mut self, url: &Url) -> Result<Vec<u8>> {
        if url.host_str() != Some(self.host.as_str()) {
            bail!("{url}: other hosts than {} are not followed", self.host);
        }
        let b = self.get(url, None, true, None, 0).await?;
        Ok(b.data.unwrap_or_default())
    }
}

/// How long a request keeps failing over and re-resolving before it gives up, seconds.
const FAILOVER_WINDOW_S: f64 = 5.0;

/// Largest body kept in memory (MPDs and clock responses; media segments are only counted).
const MAX_KEPT_BODY: u64 = 16 << 20;

/// A point in time from seconds since the Unix epoch; an error for values before it or absurd.
fn at_epoch(secs: f64) -> Result<SystemTime> {
    Duration::try_from_secs_f64(secs)
        .ok()
        .and_then(|d| SystemTime::UNIX_EPOCH.checked_add(d))
        .ok_or_else(|| anyhow!("time {secs} s since the Unix epoch is out of range"))
}

/// Live-stream bookkeeping: the MPD, its refresh schedule and the segment numbers to play.
struct Live {
    mpd: Mpd,
    fetched_at_s: f64,
    update_every_s: Option<f64>,
    /// Server clock minus local clock, seconds.
    offset_s: f64,
    first_number: u64,
    /// Wall time (server clock, seconds since the epoch) at which segment `first_number` ends.
    first_end_epoch_s: f64,
    segment_s: f64,
}

/// The HTTP transport the session drives.
pub struct HttpTransport {
    net: Net,
    title: Title,
    url: Url,
    inits: Vec<bool>,
    live: Option<Live>,
    clock: Arc<WallClock>,
}

fn epoch_s(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl HttpTransport {
    fn media_url(&mut self, segment: usize, rung: usize) -> Result<(Url, Option<String>)> {
        if let Some(live) = &self.live {
            let number = live.first_number + segment as u64;
            if let Some(s) = self.title.rungs[rung]
                .media
                .iter()
                .find(|s| s.number == number)
            {
                return Ok((s.url.clone(), s.range.as_ref().map(|r| r.to_header())));
            }
            bail!("live segment number {number} is not in the MPD");
        }
        let s = self.title.rungs[rung]
            .media
            .get(segment)
            .ok_or_else(|| anyhow!("segment {segment} is not in the MPD"))?;
        Ok((s.url.clone(), s.range.as_ref().map(|r| r.to_header())))
    }

    /// Re-reads a live MPD when minimumUpdatePeriod has passed, or when `force`.
    async fn refresh(&mut self, force: bool) -> Result<()> {
        let Some(live) = &self.live else {
            return Ok(());
        };
        let now = self.clock.now();
        let due = live
            .update_every_s
            .map(|p| now - live.fetched_at_s >= p)
            .unwrap_or(false);
        if !due && !force {
            return Ok(());
        }
        let offset = live.offset_s;
        let text = self.net.get_bytes(&self.url).await?;
        let mpd = Mpd::parse(&String::from_utf8_lossy(&text))
            .map_err(|e| anyhow!("{}: {e}", self.url))?;
        let at = at_epoch(epoch_s(SystemTime::now()) + offset)?;
        let title = Title::from_mpd(&mpd, &self.url, SegmentsAt::Live(at))?;
        if title.rungs.len() == self.title.rungs.len() {
            self.title.rungs = title.rungs;
        }
        if let Some(live) = &mut self.live {
            live.update_every_s = mpd
                .minimum_update_period()
                .map(|d| d.as_secs_f64().max(0.5));
            live.mpd = mpd;
            live.fetched_at_s = now;
        }
        Ok(())
    }
}

impl Transport for HttpTransport {
    async fn fetch(&mut self, req: Request, watch: &mut Watch<'_>) -> Result<Fetched> {
        if self.live.is_some() {
            self.refresh(false).await?;
        }
        let rung = req.rung;
        let mut extra = 0u64;
        if !self.inits[rung] {
            if let Some(init) = self.title.rungs[rung].init.clone() {
                let range = init.range.as_ref().map(|r| r.to_header());
                let b = self
                    .net
                    .get(&init.url, range.as_deref(), false, None, 0)
                    .await?;
                extra = b.bytes;
            }
            self.inits[rung] = true;
        }
        let (url, range) = match self.media_url(req.segment, rung) {
            Ok(u) => u,
            Err(_) if self.live.is_some() => {
                self.refresh(true).await?;
                self.media_url(req.segment, rung)?
            }
            Err(e) => return Err(e),
        };
        let b = self
            .net
            .get(
                &url,
                range.as_deref(),
                false,
                Some(watch),
                req.expected_bytes,
            )
            .await?;
        Ok(Fetched {
            bytes: b.bytes + extra,
            complete: b.complete,
            edge: Some(b.edge.to_string()),
        })
    }

    fn available_at(&self, segment: usize) -> Option<f64> {
        let live = self.live.as_ref()?;
        let end_epoch = live.first_end_epoch_s + segment as f64 * live.segment_s;
        let server_now = epoch_s(SystemTime::now()) + live.offset_s;
        Some(self.clock.now() + (end_epoch - server_now))
    }
}

/// Asks the MPD's UTCTiming sources for the server clock; returns server minus local seconds
/// (0 when there is none or none answers).
async fn clock_offset(net: &mut Net, mpd: &Mpd, mpd_url: &Url) -> f64 {
    for t in mpd.utc_timings() {
        let scheme = t.scheme_id_uri.as_str();
        let Some(value) = t.value.as_deref() else {
            continue;
        };
        let local_before = epoch_s(SystemTime::now());
        let text = match scheme {
            "urn:mpeg:dash:utc:direct:2014" => value.to_string(),
            "urn:mpeg:dash:utc:http-iso:2014" | "urn:mpeg:dash:utc:http-xsdate:2014" => {
                let Ok(u) = mpd_url.join(value) else { continue };
                match net.get_bytes(&u).await {
                    Ok(b) => String::from_utf8_lossy(&b).trim().to_string(),
                    Err(e) => {
                        tracing::warn!("UTCTiming {u}: {e:#}");
                        continue;
                    }
                }
            }
            _ => continue,
        };
        let local_after = epoch_s(SystemTime::now());
        if let Ok(server) = mpd::parse_datetime(&text) {
            let server_s = server.timestamp_millis() as f64 / 1000.0;
            let offset = server_s - (local_before + local_after) / 2.0;
            // A server clock a day or more away from ours is broken, not skewed.
            if offset.abs() < 86_400.0 {
                return offset;
            }
            tracing::warn!("UTCTiming {scheme}: server time {text} is {offset:.0} s off; ignored");
        }
    }
    0.0
}

/// Plays `cfg.url` to the end (or for `cfg.duration_s`), in real time.
pub async fn play(cfg: &PlayConfig) -> Result<PlayReport> {
    let clock = Arc::new(WallClock::new());
    let mut net = Net::new(cfg, clock.clone()).await?;
    let text = net
        .get_bytes(&cfg.url)
        .await
        .with_context(|| format!("cannot fetch the MPD {}", cfg.url))?;
    let text = String::from_utf8(text).map_err(|_| anyhow!("{}: MPD is not UTF-8", cfg.url))?;
    let mpd = Mpd::parse(&text).map_err(|e| anyhow!("{}: {e}", cfg.url))?;
    let dynamic = mpd.is_dynamic();
    let mut session_cfg = cfg.session;
    let mut live = None;
    let offset_s = if dynamic {
        clock_offset(&mut net, &mpd, &cfg.url).await
    } else {
        0.0
    };
    let title = if dynamic {
        let server_now = epoch_s(SystemTime::now()) + offset_s;
        let at = at_epoch(server_now)?;
        let title = Title::from_mpd(&mpd, &cfg.url, SegmentsAt::Live(at))?;
        let Some(ast) = mpd.availability_start_time else {
            bail!("cannot play this MPD: dynamic without availabilityStartTime");
        };
        let ast_s = ast.timestamp_millis() as f64 / 1000.0;
        let delay = mpd
            .suggested_presentation_delay()
            .map(|d| d.as_secs_f64())
            .unwrap_or(3.0 * title.video.segment_duration_s);
        let media = &title.rungs[0].media;
        let Some(last) = media.last() else {
            bail!("cannot play this MPD: no live segment is available yet");
        };
        // Start at the live edge minus the suggested delay.
        let target = server_now - ast_s - delay;
        let first = media
            .iter()
            .rev()
            .find(|s| s.start <= target)
            .unwrap_or(last);
        let segment_s = first.duration.max(0.01);
        live = Some(Live {
            update_every_s: mpd
                .minimum_update_period()
                .map(|d| d.as_secs_f64().max(0.5)),
            mpd: mpd.clone(),
            fetched_at_s: clock.now(),
            offset_s,
            first_number: first.number,
            first_end_epoch_s: ast_s + first.start + first.duration,
            segment_s,
        });
        let duration = cfg.duration_s.unwrap_or(30.0);
        session_cfg.max_session_s = Some(duration);
        let count = live_segment_count(first.number, last.number, duration, segment_s);
        let mut t = title;
        t.video.num_segments = count;
        t.video.sizes = None;
        t
    } else {
        let mut t = Title::from_mpd(&mpd, &cfg.url, SegmentsAt::Vod)?;
        if let Some(d) = cfg.duration_s {
            session_cfg.max_session_s = Some(d);
            let n = ((d / t.video.segment_duration_s).ceil() as usize).max(1);
            t.video.truncate(n);
        }
        t
    };
    let mut abr = abr::by_name(&cfg.abr)?;
    let video = title.video.clone();
    let rungs = title.rungs.len();
    let mut transport = HttpTransport {
        net,
        title,
        url: cfg.url.clone(),
        inits: vec![false; rungs],
        live,
        clock: clock.clone(),
    };
    let session = session::run(
        &video,
        abr.as_mut(),
        &mut transport,
        clock.as_ref(),
        &session_cfg,
    )
    .await;
    let resolved = transport.net.resolved().clone();
    Ok(PlayReport {
        url: cfg.url.to_string(),
        dns_chain: resolved.chain,
        addresses: resolved.addrs.iter().map(|a| a.to_string()).collect(),
        live: dynamic,
        clock_offset_s: offset_s,
        failovers: transport.net.failovers,
        resolutions: transport.net.resolutions,
        session,
    })
}

/// Segments a live session of `duration_s` may fetch from `first` on: those already published
/// (through `last`, the live edge) and those published while it runs. The session's clock stops
/// it at `duration_s`; this only bounds the loop.
fn live_segment_count(first: u64, last: u64, duration_s: f64, segment_s: f64) -> usize {
    let published = last.saturating_sub(first).saturating_add(1);
    let upcoming = (duration_s.max(0.0) / segment_s.max(0.01)).ceil() as u64;
    usize::try_from(published.saturating_add(upcoming))
        .unwrap_or(usize::MAX)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_session_counts_published_and_upcoming_segments() {
        // Starting 3 segments behind the edge (numbers 10..=12 out) for 8 s of 2-s segments:
        // the 3 published ones, then the 4 published during the session.
        assert_eq!(live_segment_count(10, 12, 8.0, 2.0), 7);
        assert_eq!(live_segment_count(12, 12, 8.0, 2.0), 5);
        assert_eq!(live_segment_count(12, 12, 0.0, 2.0), 1);
        assert_eq!(live_segment_count(20, 12, 1.0, 2.0), 2);
    }

    #[test]
    fn times_before_the_epoch_or_absurd_are_errors_not_panics() {
        assert!(at_epoch(-315_619_200.0).is_err());
        assert!(at_epoch(f64::NAN).is_err());
        assert!(at_epoch(f64::INFINITY).is_err());
        assert!(at_epoch(1e300).is_err());
        let t = at_epoch(1_700_000_000.5).unwrap();
        assert_eq!(epoch_s(t), 1_700_000_000.5);
    }
}
