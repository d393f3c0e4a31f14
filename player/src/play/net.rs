//! HTTP for real playback: a pooled keep-alive hyper client bound to an optional source address
//! (over TLS only for an https:// URL), one request to one edge address with timeouts on the
//! headers and between body chunks, shaping, and the failover of [`super::failover`] across the
//! addresses DNS gave (re-resolving the name between rounds).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
use common::http::error_chain;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::TokioExecutor;
use url::Url;

use super::clock::WallClock;
use super::config::PlayConfig;
use super::dns::{Dns, Resolved};
use super::failover;
use super::shaping::Shaper;
use crate::session::{Clock, Watch};

/// Largest body kept in memory (MPDs and clock responses; media segments are only counted).
const MAX_KEPT_BODY: u64 = 16 << 20;

/// Why a request failed, and whether trying elsewhere may help.
#[derive(Debug)]
enum FetchFailure {
    Retryable(anyhow::Error),
    Fatal(anyhow::Error),
}

/// The pooled client: cleartext for an http:// URL (no TLS configuration, no trust roots read),
/// TLS for an https:// one, HTTP/3 when asked (one QUIC connection per edge address, opened on
/// first use). Failover edges share the URL's scheme.
enum HttpClient {
    Plain(Client<HttpConnector, Empty<Bytes>>),
    Tls(Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>),
    H3(H3Clients),
}

struct H3Clients {
    tls: rustls::ClientConfig,
    bind: SocketAddr,
    host: String,
    by_edge: std::collections::HashMap<SocketAddr, Arc<common::h3::Client>>,
}

impl H3Clients {
    fn client(&mut self, edge: SocketAddr) -> Result<Arc<common::h3::Client>> {
        if let Some(c) = self.by_edge.get(&edge) {
            return Ok(c.clone());
        }
        let bind = match (self.bind.ip(), edge) {
            (ip, SocketAddr::V4(_)) if ip.is_ipv4() => self.bind,
            (ip, SocketAddr::V6(_)) if ip.is_ipv6() => self.bind,
            (_, SocketAddr::V4(_)) => SocketAddr::from(([0, 0, 0, 0], 0)),
            (_, SocketAddr::V6(_)) => SocketAddr::from(([0u16; 8], 0)),
        };
        let c = Arc::new(common::h3::Client::new(&self.tls, bind, edge, &self.host)?);
        self.by_edge.insert(edge, c.clone());
        Ok(c)
    }
}

/// A response's head and body, over either stack.
enum Resp {
    Hyper(http::Response<hyper::body::Incoming>),
    H3(Box<common::h3::ClientResponse>),
}

impl Resp {
    fn status(&self) -> http::StatusCode {
        match self {
            Resp::Hyper(r) => r.status(),
            Resp::H3(r) => r.head.status(),
        }
    }

    fn headers(&self) -> &http::HeaderMap {
        match self {
            Resp::Hyper(r) => r.headers(),
            Resp::H3(r) => r.head.headers(),
        }
    }

    /// The next piece of the body; `None` at its end.
    async fn chunk(&mut self) -> Result<Option<Bytes>> {
        match self {
            Resp::Hyper(r) => loop {
                match r.body_mut().frame().await {
                    None => return Ok(None),
                    Some(Err(e)) => return Err(anyhow!("{e}")),
                    Some(Ok(f)) => {
                        if let Ok(data) = f.into_data() {
                            return Ok(Some(data));
                        }
                    }
                }
            },
            Resp::H3(r) => r.recv().await,
        }
    }
}

impl HttpClient {
    /// The client for `cfg.url`'s scheme; for https:// every edge address is verified against
    /// `host`, the URL's host name, not the IP dialled.
    fn new(cfg: &PlayConfig, host: &str) -> Result<Self> {
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
        if cfg.http3 {
            if cfg.url.scheme() != "https" {
                bail!("{}: HTTP/3 needs an https:// URL", cfg.url);
            }
            let roots = common::tls::Roots {
                ca_files: cfg.ca.clone(),
                system: cfg.system_roots,
            };
            return Ok(HttpClient::H3(H3Clients {
                tls: common::tls::client_config(&roots, &[])?,
                bind: SocketAddr::new(
                    cfg.bind.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into()),
                    0,
                ),
                host: host.to_string(),
                by_edge: Default::default(),
            }));
        }
        match cfg.url.scheme() {
            "http" => Ok(HttpClient::Plain(builder.build(connector))),
            "https" => {
                let roots = common::tls::Roots {
                    ca_files: cfg.ca.clone(),
                    system: cfg.system_roots,
                };
                let tls = common::tls::client_config(&roots, &[])?;
                let connector = common::tls::https_connector(connector, tls, true, Some(host))?;
                Ok(HttpClient::Tls(builder.build(connector)))
            }
            _ => bail!("{}: only http:// and https:// URLs are supported", cfg.url),
        }
    }

    fn scheme(&self) -> &'static str {
        match self {
            HttpClient::Plain(_) => "http",
            HttpClient::Tls(_) | HttpClient::H3(_) => "https",
        }
    }

    /// Starts sending `req` to `edge` (see [`HttpClient::request`]): a future owning what it
    /// needs, so that several requests can be under way at once.
    fn start(
        &mut self,
        edge: SocketAddr,
        req: http::Request<Empty<Bytes>>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Resp, String>> + Send>> {
        match self {
            HttpClient::Plain(c) => Box::pin(send(c.request(req))),
            HttpClient::Tls(c) => Box::pin(send(c.request(req))),
            HttpClient::H3(clients) => {
                let client = match clients.client(edge) {
                    Ok(c) => c,
                    Err(e) => {
                        let e = format!("{e:#}");
                        return Box::pin(async move { Err(e) });
                    }
                };
                let host = clients.host.clone();
                Box::pin(async move {
                    let (mut parts, _) = req.into_parts();
                    let authority = parts
                        .headers
                        .remove(http::header::HOST)
                        .and_then(|h| h.to_str().ok().map(str::to_string))
                        .unwrap_or(host);
                    let path = parts
                        .uri
                        .path_and_query()
                        .map_or("/", |p| p.as_str())
                        .to_string();
                    parts.uri = format!("https://{authority}{path}")
                        .parse()
                        .map_err(|e| format!("{e}"))?;
                    let req = http::Request::from_parts(parts, ());
                    client
                        .send(req)
                        .await
                        .map(|r| Resp::H3(Box::new(r)))
                        .map_err(|e| format!("{e:#}"))
                })
            }
        }
    }

    /// Sends `req` (whose URI names the edge dialled, its Host header the site) to `edge`.
    async fn request(
        &mut self,
        edge: SocketAddr,
        req: http::Request<Empty<Bytes>>,
    ) -> Result<Resp, String> {
        self.start(edge, req).await
    }
}

async fn send(f: ResponseFuture) -> Result<Resp, String> {
    f.await.map(Resp::Hyper).map_err(|e| error_chain(&e))
}

/// HTTP with failover across the addresses DNS gave.
pub struct Net {
    client: HttpClient,
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

/// One stream of [`Net::get_streams`] that ended: its bytes and the edge that sent them.
#[derive(Debug)]
pub struct StreamEnd {
    pub bytes: u64,
    pub edge: SocketAddr,
}

/// What a body-reading task passes on: its stream, then a piece, the end, or an error.
type Piece = (usize, Result<Option<Bytes>>);

/// A finished body transfer.
pub struct Body {
    pub bytes: u64,
    pub complete: bool,
    pub data: Option<Vec<u8>>,
    pub edge: SocketAddr,
}

impl Net {
    /// Resolves `cfg.url`'s host and sets up the client (TLS only for an https:// URL).
    pub async fn new(cfg: &PlayConfig, clock: Arc<WallClock>) -> Result<Self> {
        let host = cfg
            .url
            .host_str()
            .ok_or_else(|| anyhow!("{}: no host", cfg.url))?
            .to_string();
        if !matches!(cfg.url.scheme(), "http" | "https") {
            bail!("{}: only http:// and https:// URLs are supported", cfg.url);
        }
        let port = cfg.url.port_or_known_default().unwrap_or(80);
        let dns = match &cfg.resolve {
            Some(addrs) => Dns::fixed(addrs.clone()),
            None => Dns::new(cfg.dns, cfg.bind)?,
        };
        let resolved = dns.resolve(&host, port).await?;
        let client = HttpClient::new(cfg, &host)?;
        Ok(Net {
            client,
            dns,
            host,
            port,
            resolved,
            current: 0,
            timeout: cfg.timeout,
            shaper: cfg.shape.clone().map(Shaper::new),
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
        let edge = self.edge();
        let req = self.build(url, range, edge).map_err(FetchFailure::Fatal)?;
        let t0 = self.clock.now();
        let mut resp = match tokio::time::timeout(self.timeout, self.client.request(edge, req))
            .await
        {
            Err(_) => {
                return Err(FetchFailure::Retryable(anyhow!(
                    "{url} via {edge}: timeout"
                )))
            }
            Ok(Err(e)) => return Err(FetchFailure::Retryable(anyhow!("{url} via {edge}: {e}"))),
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
        if let Some(r) = range {
            // A 200 would be the whole file, not the part asked for.
            if status != http::StatusCode::PARTIAL_CONTENT {
                return Err(FetchFailure::Fatal(anyhow!(
                    "{url}: asked for {r}, got HTTP {status}: the server does not honour Range requests"
                )));
            }
        }
        let total = resp
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(expected);
        let mut data = keep.then(Vec::new);
        let mut done = 0u64;
        loop {
            let chunk = match tokio::time::timeout(self.timeout, resp.chunk()).await {
                Err(_) => {
                    return Err(FetchFailure::Retryable(anyhow!(
                        "{url} via {edge}: body stalled"
                    )))
                }
                Ok(Ok(None)) => break,
                Ok(Err(e)) => {
                    return Err(FetchFailure::Retryable(anyhow!("{url} via {edge}: {e:#}")))
                }
                Ok(Ok(Some(c))) => c,
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
                    self.clock.sleep((until - now).min(3600.0)).await;
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

    /// GET with failover in the order of [`failover::round_order`], re-resolving between
    /// rounds while [`failover::retry_after`] allows.
    pub async fn get(
        &mut self,
        url: &Url,
        range: Option<&str>,
        keep: bool,
        mut watch: Option<&mut Watch<'_>>,
        expected: u64,
    ) -> Result<Body> {
        let mut last_err = None;
        let deadline = self.clock.now() + failover::FAILOVER_WINDOW_S;
        let mut round = 0;
        loop {
            let start = self.current;
            let order = failover::round_order(start, self.resolved.addrs.len(), round);
            for (attempt, addr) in order.into_iter().enumerate() {
                self.current = addr;
                match self.get_once(url, range, keep, &mut watch, expected).await {
                    Ok(b) => return Ok(b),
                    Err(FetchFailure::Fatal(e)) => return Err(e),
                    Err(FetchFailure::Retryable(e)) => {
                        tracing::warn!("{e:#}");
                        last_err = Some(e);
                    }
                }
                if failover::counts_as_failover(round, attempt) {
                    self.failovers += 1;
                }
            }
            self.current = start;
            let Some(pause) = failover::retry_after(round, deadline, self.clock.now()) else {
                break;
            };
            self.clock.sleep(pause).await;
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

    /// The GET request for `url` (with `range`) to `edge`.
    fn build(
        &self,
        url: &Url,
        range: Option<&str>,
        edge: SocketAddr,
    ) -> Result<http::Request<Empty<Bytes>>> {
        if url.host_str() != Some(self.host.as_str()) {
            bail!(
                "{url}: segments on another host than {} are not supported",
                self.host
            );
        }
        let mut path = url.path().to_string();
        if let Some(q) = url.query() {
            path.push('?');
            path.push_str(q);
        }
        let uri: http::Uri = format!("{}://{edge}{path}", self.client.scheme())
            .parse()
            .map_err(|e| anyhow!("{url}: bad URI: {e}"))?;
        let host_header = match url.port() {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        };
        let mut req = http::Request::get(uri).header(http::header::HOST, host_header);
        if let Some(r) = range {
            req = req.header(http::header::RANGE, r);
        }
        req.body(Empty::<Bytes>::new())
            .map_err(|e| anyhow!("{url}: {e}"))
    }

    /// Several GETs at once to one address (a low-latency video segment and its audio), their
    /// bodies read side by side as they stream: `sink(stream, bytes, session time)` for every
    /// piece that arrives (after shaping, which paces all streams as one link). The addresses
    /// are tried in failover order until one answers every request's headers; after that, a
    /// stream that fails is that stream's error. The outer error: no address answered.
    pub async fn get_streams(
        &mut self,
        reqs: &[(Url, Option<String>)],
        sink: &mut dyn FnMut(usize, &[u8], f64),
    ) -> Result<Vec<Result<StreamEnd>>> {
        let start = self.current;
        let order = failover::round_order(start, self.resolved.addrs.len(), 0);
        let mut last_err = None;
        for (attempt, addr) in order.into_iter().enumerate() {
            self.current = addr;
            let edge = self.edge();
            let mut pending = Vec::with_capacity(reqs.len());
            for (url, range) in reqs {
                let req = self.build(url, range.as_deref(), edge)?;
                pending.push(self.client.start(edge, req));
            }
            let mut heads = Vec::with_capacity(pending.len());
            let mut failed = None;
            for (i, f) in pending.into_iter().enumerate() {
                match tokio::time::timeout(self.timeout, f).await {
                    Err(_) => failed = Some(anyhow!("{} via {edge}: timeout", reqs[i].0)),
                    Ok(Err(e)) => failed = Some(anyhow!("{} via {edge}: {e}", reqs[i].0)),
                    Ok(Ok(r)) if r.status().is_server_error() => {
                        failed = Some(anyhow!("{} via {edge}: HTTP {}", reqs[i].0, r.status()))
                    }
                    Ok(Ok(r)) => heads.push(r),
                }
            }
            if let Some(e) = failed {
                tracing::warn!("{e:#}");
                last_err = Some(e);
                if failover::counts_as_failover(0, attempt) {
                    self.failovers += 1;
                }
                continue;
            }
            return Ok(self.read_streams(reqs, heads, edge, sink).await);
        }
        self.current = start;
        Err(last_err.unwrap_or_else(|| anyhow!("no address to fetch from")))
    }

    /// Reads the bodies of `heads` side by side (see [`Net::get_streams`]).
    async fn read_streams(
        &mut self,
        reqs: &[(Url, Option<String>)],
        heads: Vec<Resp>,
        edge: SocketAddr,
        sink: &mut dyn FnMut(usize, &[u8], f64),
    ) -> Vec<Result<StreamEnd>> {
        let n = heads.len();
        let mut out: Vec<Option<Result<StreamEnd>>> = (0..n).map(|_| None).collect();
        let mut bytes = vec![0u64; n];
        // One slot per stream: a task reads ahead by one piece at most, so a shaped link
        // still holds the sender back.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Piece>(n.max(1));
        let mut tasks = Vec::with_capacity(n);
        for (i, mut resp) in heads.into_iter().enumerate() {
            let status = resp.status();
            let range = reqs[i].1.as_deref();
            let refused = if !status.is_success() {
                Some(anyhow!("{}: HTTP {status}", reqs[i].0))
            } else if range.is_some() && status != http::StatusCode::PARTIAL_CONTENT {
                Some(anyhow!(
                    "{}: asked for a range, got HTTP {status}: the server does not honour Range requests",
                    reqs[i].0
                ))
            } else {
                None
            };
            if let Some(e) = refused {
                out[i] = Some(Err(e));
                continue;
            }
            let tx = tx.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let piece = resp.chunk().await;
                    let end = !matches!(piece, Ok(Some(_)));
                    if tx.send((i, piece)).await.is_err() || end {
                        break;
                    }
                }
            }));
        }
        drop(tx);
        while out.iter().any(Option::is_none) {
            let (i, piece) = match tokio::time::timeout(self.timeout, rx.recv()).await {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(_) => {
                    for (k, o) in out.iter_mut().enumerate() {
                        if o.is_none() {
                            *o = Some(Err(anyhow!("{} via {edge}: body stalled", reqs[k].0)));
                        }
                    }
                    break;
                }
            };
            match piece {
                Ok(Some(data)) => {
                    bytes[i] += data.len() as u64;
                    if let Some(shaper) = &mut self.shaper {
                        let now = self.clock.now();
                        let until = shaper.pace(now, data.len() as u64);
                        if until > now {
                            self.clock.sleep((until - now).min(3600.0)).await;
                        }
                    }
                    sink(i, &data, self.clock.now());
                }
                Ok(None) => {
                    out[i] = Some(Ok(StreamEnd {
                        bytes: bytes[i],
                        edge,
                    }))
                }
                Err(e) => out[i] = Some(Err(anyhow!("{} via {edge}: {e:#}", reqs[i].0))),
            }
        }
        for t in tasks {
            t.abort();
        }
        out.into_iter()
            .enumerate()
            .map(|(k, o)| o.unwrap_or_else(|| Err(anyhow!("{}: the body ended early", reqs[k].0))))
            .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_http_url_reads_no_trust_roots_and_an_https_one_does() {
        let mut cfg = PlayConfig::new("http://video.test/vod/manifest.mpd".parse().unwrap());
        cfg.ca = vec!["/nonexistent/ca.pem".into()];
        let client = HttpClient::new(&cfg, "video.test").expect("no CA file is read for http://");
        assert_eq!(client.scheme(), "http");
        assert!(matches!(client, HttpClient::Plain(_)));
        cfg.url = "https://video.test/vod/manifest.mpd".parse().unwrap();
        cfg.system_roots = false;
        let err = HttpClient::new(&cfg, "video.test")
            .err()
            .expect("the CA file is read");
        assert!(
            format!("{err:#}").contains("/nonexistent/ca.pem"),
            "{err:#}"
        );
        cfg.ca.clear();
        cfg.url = "ftp://video.test/m.mpd".parse().unwrap();
        assert!(HttpClient::new(&cfg, "video.test").is_err());
    }
}
