//! Talking to the next hop: the parents (chosen per key by rendezvous hashing) and then the
//! origin, over one pooled hyper-util client. Owns the proxy header rules (hop-by-hop removal,
//! Via, X-Forwarded-For), the connect and first-byte timeouts, retries of idempotent requests
//! after connection failures only, and failover from one target to the next.
//!
//! Every exchange with the upstream holds a slot of the edge's [`Gate`] from before its request
//! is sent until its response body has been read or dropped: at most `max_upstream_fetches`
//! at once, up to `upstream_queue` more waiting (first come, first served) for at most
//! `upstream_queue_wait`; beyond that an exchange fails at once with [`UpstreamError::Busy`]
//! (a 503 with `Retry-After`), so an overloaded origin sees a bounded number of requests and a
//! client never waits without bound. A flight's fetch holds one slot for all its members.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use futures_util::StreamExt;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, Uri};
use http::{Method, Request, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prometheus::{IntCounter, IntGauge};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use common::http::Body;

use crate::metrics::{ByteTally, Metrics};

/// Hop-by-hop fields (RFC 9110 section 7.6.1), never forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Removes hop-by-hop fields, including those the Connection field names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

/// The Via comment that marks a hop as one of this stack's edges, so a parent knows its client
/// is a child edge (which still needs CDN-Cache-Control) rather than an end user.
pub const EDGE_VIA_COMMENT: &str = "(cdn-edge)";

/// Appends `1.1 <name> (cdn-edge)` to Via (RFC 9110 section 7.6.3).
pub fn add_via(headers: &mut HeaderMap, name: &str) {
    if let Ok(v) = HeaderValue::from_str(&format!("1.1 {name} {EDGE_VIA_COMMENT}")) {
        headers.append(header::VIA, v);
    }
}

/// True when the request passed through another edge of this stack.
pub fn from_edge(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::VIA)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains(EDGE_VIA_COMMENT))
}

/// True when Via already names this edge: the request has looped back to us.
pub fn via_names(headers: &HeaderMap, name: &str) -> bool {
    headers
        .get_all(header::VIA)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|hop| hop.split_whitespace().nth(1) == Some(name))
}

/// The headers sent upstream for a client request: hop-by-hop fields removed, Via and
/// X-Forwarded-For added.
pub fn forwarded_headers(client: &HeaderMap, peer: IpAddr, name: &str) -> HeaderMap {
    let mut h = client.clone();
    strip_hop_by_hop(&mut h);
    add_via(&mut h, name);
    let xff = match h.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prev) if !prev.trim().is_empty() => format!("{prev}, {peer}"),
        _ => peer.to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        h.insert("x-forwarded-for", v);
    }
    // The host the client asked for (the origin sees its own name in Host): set from the
    // client's Host, never taken from the client, so it always matches the cache key.
    h.remove("x-forwarded-host");
    if let Some(host) = client.get(header::HOST) {
        h.insert("x-forwarded-host", host.clone());
    }
    h
}

/// Whether a target is a parent cache or the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Parent,
    Origin,
}

impl Tier {
    pub fn label(self) -> &'static str {
        match self {
            Tier::Parent => "parent",
            Tier::Origin => "origin",
        }
    }
}

/// One upstream server.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http` or `https`.
    pub scheme: http::uri::Scheme,
    pub authority: Authority,
    /// Path prefix prepended to request paths (no trailing slash).
    pub prefix: String,
    pub tier: Tier,
    /// The URL as configured, used for hashing and logs.
    pub url: String,
}

impl Target {
    pub fn parse(url: &str, tier: Tier) -> Result<Target> {
        let uri: Uri = url
            .trim()
            .parse()
            .with_context(|| format!("invalid upstream URL `{url}`"))?;
        let scheme = match uri.scheme_str() {
            Some("http") => http::uri::Scheme::HTTP,
            Some("https") => http::uri::Scheme::HTTPS,
            _ => bail!("unsupported upstream URL `{url}`: only http:// and https:// are supported"),
        };
        let authority = uri
            .authority()
            .cloned()
            .with_context(|| format!("upstream URL `{url}` has no host"))?;
        if uri.query().is_some() {
            bail!("upstream URL `{url}` must not have a query");
        }
        Ok(Target {
            scheme,
            authority,
            prefix: uri.path().trim_end_matches('/').to_string(),
            tier,
            url: url.trim().to_string(),
        })
    }

    fn uri(&self, path_and_query: &str) -> Result<Uri, http::Error> {
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(format!("{}{}", self.prefix, path_and_query))
            .build()
    }
}

/// Why an upstream exchange failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot connect to {0}")]
    Connect(String),
    #[error("no response head from {0} in time")]
    Timeout(String),
    #[error("upstream {0} failed: {1}")]
    Other(String, String),
    #[error("bad upstream request: {0}")]
    Request(String),
    /// No upstream fetch slot: the queue was full, or the wait for a slot ran out.
    #[error("the edge has too many upstream fetches running ({0}); try again shortly")]
    Busy(&'static str),
}

impl UpstreamError {
    /// 504 for timeouts, 503 when the edge refused to start the exchange, 502 otherwise.
    pub fn status(&self) -> http::StatusCode {
        match self {
            UpstreamError::Timeout(_) => http::StatusCode::GATEWAY_TIMEOUT,
            UpstreamError::Busy(_) => http::StatusCode::SERVICE_UNAVAILABLE,
            _ => http::StatusCode::BAD_GATEWAY,
        }
    }

    /// The `Retry-After` seconds for an answer made from this error (only a 503 has one).
    pub fn retry_after(&self) -> Option<u64> {
        matches!(self, UpstreamError::Busy(_)).then_some(1)
    }
}

/// The slots for exchanges with the upstream (see the module documentation).
pub struct Gate {
    /// `None`: no cap (exchanges are still counted).
    slots: Option<Arc<Semaphore>>,
    waiting: AtomicUsize,
    max_waiting: usize,
    wait: Duration,
    inflight: IntGauge,
    queued: IntGauge,
    rejected_full: IntCounter,
    rejected_timeout: IntCounter,
}

/// One exchange's slot, given back when dropped.
pub struct Slot {
    _permit: Option<OwnedSemaphorePermit>,
    inflight: IntGauge,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.inflight.dec();
    }
}

/// Counts one waiter for as long as it waits, however its wait ends (a client hanging up drops
/// it).
struct Waiting<'a>(&'a Gate);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
        self.0.queued.dec();
    }
}

impl Gate {
    /// `max_fetches` slots (0: no cap), `max_waiting` waiters for at most `wait`.
    pub fn new(max_fetches: usize, max_waiting: usize, wait: Duration, metrics: &Metrics) -> Gate {
        let permits = max_fetches.min(Semaphore::MAX_PERMITS);
        Gate {
            slots: (permits > 0).then(|| Arc::new(Semaphore::new(permits))),
            waiting: AtomicUsize::new(0),
            max_waiting,
            wait,
            inflight: metrics.upstream_fetches_inflight.clone(),
            queued: metrics.upstream_queue_depth.clone(),
            rejected_full: metrics.upstream_rejected.with_label_values(&["queue_full"]),
            rejected_timeout: metrics.upstream_rejected.with_label_values(&["timeout"]),
        }
    }

    /// A slot now, or after waiting in line; [`UpstreamError::Busy`] when the line is full or
    /// the wait runs out.
    pub async fn acquire(&self) -> Result<Slot, UpstreamError> {
        let Some(slots) = &self.slots else {
            return Ok(self.slot(None));
        };
        // A released permit goes to the longest waiter first, so this cannot jump the line.
        if let Ok(p) = slots.clone().try_acquire_owned() {
            return Ok(self.slot(Some(p)));
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            self.rejected_full.inc();
            return Err(UpstreamError::Busy("queue full"));
        }
        self.queued.inc();
        let _waiting = Waiting(self);
        match tokio::time::timeout(self.wait, slots.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(self.slot(Some(p))),
            _ => {
                self.rejected_timeout.inc();
                Err(UpstreamError::Busy("no slot in time"))
            }
        }
    }

    fn slot(&self, permit: Option<OwnedSemaphorePermit>) -> Slot {
        self.inflight.inc();
        Slot {
            _permit: permit,
            inflight: self.inflight.clone(),
        }
    }
}

/// Takes the fetch slot an upstream response carries (see [`Upstream::fetch`]): whoever holds
/// it keeps the slot until dropping it.
pub fn take_slot<B>(resp: &mut Response<B>) -> Option<Arc<Slot>> {
    resp.extensions_mut().remove::<Arc<Slot>>()
}

/// The same, from a response's parts.
pub fn take_slot_of(parts: &mut http::response::Parts) -> Option<Arc<Slot>> {
    parts.extensions.remove::<Arc<Slot>>()
}

/// What to send upstream.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub method: Method,
    pub path_and_query: String,
    /// Already processed by [`forwarded_headers`]; Host is the client's.
    pub headers: HeaderMap,
}

/// Timeouts and retry limits.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub connect_timeout: Duration,
    pub first_byte_timeout: Duration,
    pub idle_timeout: Duration,
    pub connect_attempts: u32,
    /// PEM roots trusted for https:// upstreams; the system roots when `None`.
    pub upstream_ca: Option<std::path::PathBuf>,
    /// Exchanges with the upstream at once (0: no cap).
    pub max_fetches: usize,
    /// Exchanges that may wait for a slot.
    pub queue: usize,
    /// Longest wait for a slot.
    pub queue_wait: Duration,
}

/// The pooled client and the targets.
pub struct Upstream {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Body>,
    origin: Target,
    parents: Vec<Target>,
    cfg: UpstreamConfig,
    metrics: Arc<Metrics>,
    gate: Gate,
}

/// Orders `targets` for `key` by rendezvous (highest random weight) hashing: each key has a
/// stable first choice, the same on every edge, and removing a target only moves the keys that
/// chose it.
pub fn rendezvous<'a>(targets: &'a [Target], key: &str) -> Vec<&'a Target> {
    use common::hash::{fnv1a, rendezvous};
    rendezvous(targets, fnv1a(key.as_bytes()), |t| fnv1a(t.url.as_bytes()))
}

impl Upstream {
    pub fn new(
        origin: &str,
        parents: &[String],
        cfg: UpstreamConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Upstream> {
        let origin = Target::parse(origin, Tier::Origin)?;
        let parents = parents
            .iter()
            .map(|p| Target::parse(p, Tier::Parent))
            .collect::<Result<Vec<_>>>()?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(cfg.connect_timeout));
        connector.set_nodelay(true);
        connector.set_keepalive(Some(Duration::from_secs(60)));
        let any_https = std::iter::once(&origin)
            .chain(parents.iter())
            .any(|t| t.scheme == http::uri::Scheme::HTTPS);
        // Roots are only loaded when some target is https://.
        let roots = common::tls::Roots {
            ca_files: cfg.upstream_ca.iter().cloned().collect(),
            system: any_https && cfg.upstream_ca.is_none(),
        };
        let tls = if any_https {
            common::tls::client_config(&roots, &[]).context("upstream TLS roots")?
        } else {
            common::tls::plain_only_client_config()?
        };
        let connector = common::tls::https_connector(connector, tls, false, None)?;
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .build(connector);
        let gate = Gate::new(cfg.max_fetches, cfg.queue, cfg.queue_wait, &metrics);
        Ok(Upstream {
            client,
            origin,
            parents,
            cfg,
            metrics,
            gate,
        })
    }

    pub fn config(&self) -> &UpstreamConfig {
        &self.cfg
    }

    /// The targets to try for `key`, in order: parents by rendezvous hashing, then the origin.
    pub fn order(&self, key: &str) -> Vec<&Target> {
        let mut order = rendezvous(&self.parents, key);
        order.push(&self.origin);
        order
    }

    fn request(
        &self,
        target: &Target,
        out: &Outgoing,
        body: Body,
    ) -> Result<Request<Body>, UpstreamError> {
        let uri = target
            .uri(&out.path_and_query)
            .map_err(|e| UpstreamError::Request(e.to_string()))?;
        let mut req = Request::builder()
            .method(out.method.clone())
            .uri(uri)
            .body(body)
            .map_err(|e| UpstreamError::Request(e.to_string()))?;
        *req.headers_mut() = out.headers.clone();
        if target.tier == Tier::Origin || !req.headers().contains_key(header::HOST) {
            // Parents see the client's Host (so their keys match ours); the origin sees its own.
            if let Ok(v) = HeaderValue::from_str(target.authority.as_str()) {
                req.headers_mut().insert(header::HOST, v);
            }
        }
        Ok(req)
    }

    async fn attempt(
        &self,
        target: &Target,
        req: Request<Body>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let started = Instant::now();
        let result =
            tokio::time::timeout(self.cfg.first_byte_timeout, self.client.request(req)).await;
        let (status_label, outcome) = match result {
            Ok(Ok(resp)) => (resp.status().as_str().to_string(), Ok(resp)),
            Ok(Err(e)) if e.is_connect() => (
                "connect_error".to_string(),
                Err(UpstreamError::Connect(target.url.clone())),
            ),
            Ok(Err(e)) => {
                let msg = std::error::Error::source(&e)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| e.to_string());
                (
                    "error".to_string(),
                    Err(UpstreamError::Other(target.url.clone(), msg)),
                )
            }
            Err(_) => (
                "timeout".to_string(),
                Err(UpstreamError::Timeout(target.url.clone())),
            ),
        };
        let labels = [target.tier.label(), status_label.as_str()];
        self.metrics
            .upstream_requests
            .with_label_values(&labels)
            .inc();
        self.metrics
            .upstream_latency
            .with_label_values(&labels)
            .observe(started.elapsed().as_secs_f64());
        outcome
    }

    /// Sends a GET or HEAD (no body) for `key`: each target in order, retrying a target after a
    /// connection failure up to the configured attempts, and failing over to the next target on
    /// connection failure or first-byte timeout. Returns the response and the tier that gave it;
    /// the response carries its fetch slot (see [`take_slot`]).
    pub async fn fetch(
        &self,
        key: &str,
        out: &Outgoing,
    ) -> Result<(Response<Incoming>, Tier), UpstreamError> {
        let slot = Arc::new(self.gate.acquire().await?);
        let mut last = UpstreamError::Connect(self.origin.url.clone());
        for target in self.order(key) {
            for attempt in 0..self.cfg.connect_attempts.max(1) {
                let req = self.request(target, out, common::http::empty())?;
                match self.attempt(target, req).await {
                    Ok(mut resp) => {
                        resp.extensions_mut().insert(slot);
                        return Ok((resp, target.tier));
                    }
                    Err(e @ UpstreamError::Connect(_)) => {
                        tracing::debug!(target = %target.url, attempt, "upstream connect failed");
                        last = e;
                    }
                    Err(e @ UpstreamError::Timeout(_)) if target.tier == Tier::Parent => {
                        last = e;
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Err(last)
    }

    /// Sends a request with a body (unsafe methods) once, to the first target for `key`; the
    /// response carries its fetch slot.
    pub async fn forward(
        &self,
        key: &str,
        out: &Outgoing,
        body: Body,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let slot = Arc::new(self.gate.acquire().await?);
        let order = self.order(key);
        let target = order.first().copied().unwrap_or(&self.origin);
        let req = self.request(target, out, body)?;
        let mut resp = self.attempt(target, req).await?;
        resp.extensions_mut().insert(slot);
        Ok(resp)
    }
}

/// Streams an upstream body to a client, failing the stream when no chunk arrives within
/// `idle`, and counting the bytes; `slot` is held until the body ends or is dropped.
pub fn relay_body(
    body: Incoming,
    idle: Duration,
    tally: ByteTally,
    slot: Option<Arc<Slot>>,
) -> Body {
    let stream = futures_util::stream::unfold(Some((body, slot)), move |state| {
        let tally = tally.clone();
        async move {
            let (mut body, slot) = state?;
            match tokio::time::timeout(idle, body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Some(d) = frame.data_ref() {
                        tally.add(d.len() as u64);
                    }
                    Some((Ok(frame), Some((body, slot))))
                }
                Ok(Some(Err(e))) => Some((Err(common::http::BoxError::from(e)), None)),
                Ok(None) => None,
                Err(_) => Some((Err("upstream body idle timeout".into()), None)),
            }
        }
    });
    StreamBody::new(stream.map(|r: Result<Frame<Bytes>, common::http::BoxError>| r)).boxed_unsync()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(url: &str) -> Target {
        Target::parse(url, Tier::Parent).unwrap()
    }

    #[test]
    fn parses_targets() {
        let o = Target::parse("http://127.0.0.1:8000/base/", Tier::Origin).unwrap();
        assert_eq!(o.authority.as_str(), "127.0.0.1:8000");
        assert_eq!(
            o.uri("/a?b=1").unwrap().to_string(),
            "http://127.0.0.1:8000/base/a?b=1"
        );
        assert!(Target::parse("ftp://x", Tier::Origin).is_err());
        let s = Target::parse("https://origin.test:8443", Tier::Origin).unwrap();
        assert_eq!(
            s.uri("/a").unwrap().to_string(),
            "https://origin.test:8443/a"
        );
        assert!(Target::parse("not a url", Tier::Origin).is_err());
        assert!(Target::parse("http://h:1/?q=1", Tier::Origin).is_err());
    }

    #[test]
    fn rendezvous_is_stable_and_balanced_and_minimal_on_removal() {
        let all = vec![
            t("http://127.0.0.1:1"),
            t("http://127.0.0.1:2"),
            t("http://127.0.0.1:3"),
        ];
        let mut counts = [0usize; 3];
        let mut moved = 0;
        let without: Vec<Target> = all[..2].to_vec();
        for i in 0..3000 {
            let key = format!("h/seg-{i}.m4s");
            let first = rendezvous(&all, &key)[0].url.clone();
            assert_eq!(first, rendezvous(&all, &key)[0].url, "stable");
            let idx = all.iter().position(|x| x.url == first).unwrap();
            counts[idx] += 1;
            let after = rendezvous(&without, &key)[0].url.clone();
            if idx < 2 && after != first {
                moved += 1;
            }
        }
        assert_eq!(moved, 0, "keys of surviving parents must not move");
        for c in counts {
            assert!((800..1200).contains(&c), "unbalanced: {counts:?}");
        }
    }

    #[tokio::test]
    async fn the_gate_caps_exchanges_queues_a_few_and_refuses_the_rest_in_bounded_time() {
        let m = Metrics::new("t").unwrap();
        let gate = Arc::new(Gate::new(2, 1, Duration::from_millis(300), &m));
        let a = gate.acquire().await.unwrap();
        let b = gate.acquire().await.unwrap();
        assert_eq!(m.upstream_fetches_inflight.get(), 2);
        // The third waits in line.
        let waiter = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.acquire().await.map(|_| ()) })
        };
        let t0 = Instant::now();
        while m.upstream_queue_depth.get() != 1 {
            assert!(t0.elapsed() < Duration::from_secs(5), "the waiter queued");
            tokio::task::yield_now().await;
        }
        // The line is full: refused at once.
        let t = Instant::now();
        let full = gate.acquire().await.err().expect("refused");
        assert!(
            t.elapsed() < Duration::from_millis(100),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(full.status(), http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(full.retry_after(), Some(1));
        let rejected = |r: &str| m.upstream_rejected.with_label_values(&[r]).get();
        assert_eq!(rejected("queue_full"), 1);
        // A slot given back goes to the waiter.
        drop(a);
        waiter.await.unwrap().unwrap();
        assert_eq!(m.upstream_queue_depth.get(), 0);
        assert_eq!(m.upstream_fetches_inflight.get(), 1);
        // A waiter that gets no slot in time is refused after the wait.
        let _c = gate.acquire().await.unwrap();
        let t = Instant::now();
        assert!(matches!(gate.acquire().await, Err(UpstreamError::Busy(_))));
        let waited = t.elapsed();
        assert!(
            waited >= Duration::from_millis(290) && waited < Duration::from_secs(2),
            "{waited:?}"
        );
        assert_eq!(rejected("timeout"), 1);
        assert_eq!(m.upstream_queue_depth.get(), 0);
        drop((b, _c));
        assert_eq!(m.upstream_fetches_inflight.get(), 0);
        // A cancelled wait leaves the line.
        let x = gate.acquire().await.unwrap();
        let y = gate.acquire().await.unwrap();
        let cancelled = tokio::time::timeout(Duration::from_millis(20), gate.acquire()).await;
        assert!(cancelled.is_err());
        assert_eq!(m.upstream_queue_depth.get(), 0);
        drop((x, y));
        // No cap: every exchange gets a slot, and is still counted.
        let open = Gate::new(0, 0, Duration::ZERO, &m);
        let slots: Vec<Slot> = futures_util::future::join_all((0..10).map(|_| open.acquire()))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(m.upstream_fetches_inflight.get(), 10);
        drop(slots);
        assert_eq!(m.upstream_fetches_inflight.get(), 0);
    }

    #[test]
    fn hop_by_hop_via_and_xff() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        h.insert("via", HeaderValue::from_static("1.1 child"));
        let out = forwarded_headers(&h, "127.0.0.9".parse().unwrap(), "edge-1");
        for gone in ["connection", "x-secret", "keep-alive", "te"] {
            assert!(!out.contains_key(gone), "{gone} forwarded");
        }
        assert_eq!(out["x-forwarded-for"], "10.0.0.1, 127.0.0.9");
        assert_eq!(out["accept"], "*/*");
        let via: Vec<_> = out.get_all("via").iter().collect();
        assert_eq!(via.len(), 2);
        assert!(via_names(&out, "edge-1"));
        assert!(via_names(&out, "child"));
        assert!(!via_names(&out, "edge"));
        assert!(from_edge(&out));
        assert!(!from_edge(&h));
    }
}
