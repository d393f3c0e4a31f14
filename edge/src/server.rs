//! One running edge: binds, serves the proxy plus its own `/health`, `/metrics` and `PURGE`,
//! measures its served bytes per second for the load figure, and shuts down explicitly.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use prometheus::{IntCounterVec, Opts};
use tokio::task::JoinHandle;

use common::clock::{Clock, SystemClock};
use common::http::{full, Body, ConnHooks, ConnInfo, RequestBody, ServerHandle, ServerLimits};

use crate::cache_status::sanitize_name;
use crate::config::Config;
use crate::limits::{Limit, RateLimiter, Verdict};
use crate::metrics::Metrics;
use crate::proxy::{self, Ctx};
use crate::signed::{Check, Refusal, SignedUrls};
use crate::upstream::{Upstream, UpstreamConfig};

/// A running edge.
pub struct Edge {
    server: ServerHandle,
    ticker: JoinHandle<()>,
    ctx: Arc<Ctx>,
}

struct Rate {
    bytes_per_sec: AtomicU64,
}

/// Starts an edge on the system clock: binds `config.listen` and returns at once.
pub async fn spawn(config: Config) -> Result<Edge> {
    spawn_with_clock(config, Arc::new(SystemClock)).await
}

/// Like [`spawn`], with the clock the edge judges freshness by (Age, ttl, expiry, stale
/// windows); tests pass a [`common::clock::ManualClock`] to age entries without waiting.
/// Network waits (timeouts, `stale_if_slow`) stay on tokio's time.
pub async fn spawn_with_clock(config: Config, clock: Arc<dyn Clock>) -> Result<Edge> {
    let policy = config.validate()?;
    let signed = match &config.signed_urls {
        Some(c) => Some(SignedUrls::from_config(c)?),
        None => None,
    };
    let name = sanitize_name(config.name.trim());
    let metrics = Arc::new(Metrics::new(&name).context("creating the edge's metrics")?);
    let upstream = Upstream::new(
        &config.upstream,
        &config.parents,
        UpstreamConfig {
            connect_timeout: Config::duration(config.connect_timeout_secs),
            first_byte_timeout: Config::duration(config.first_byte_timeout_secs),
            idle_timeout: Config::duration(config.idle_timeout_secs),
            connect_attempts: config.connect_attempts.max(1),
            upstream_ca: config.upstream_ca.clone(),
            max_fetches: config.max_upstream_fetches,
            queue: config.upstream_queue,
            queue_wait: Config::duration(config.upstream_queue_wait_secs),
        },
        metrics.clone(),
    )?;
    let limits = ServerLimits {
        max_connections: config.max_connections.max(1),
        header_read_timeout: Config::duration(config.header_read_timeout_secs),
        max_header_bytes: config.max_header_bytes,
        max_headers: config.max_headers,
        ..ServerLimits::default()
    };
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(common::tls::server_config_from_pem(cert, key)?),
        _ => None,
    };
    let listener = common::http::bind(config.listen).await?;
    let hooks = ConnHooks {
        open_connections: Some(metrics.open_connections.clone()),
        requests_by_protocol: Some(common::http::requests_by_protocol(
            "edge",
            &metrics.registry,
        )?),
    };
    let ctx = Arc::new(proxy::context(
        config, policy, name, metrics, upstream, clock,
    )?);
    let rate = Arc::new(Rate {
        bytes_per_sec: AtomicU64::new(0f64.to_bits()),
    });
    let ticker = tokio::spawn(measure_rate(ctx.metrics.clone(), rate.clone()));
    let front = Arc::new(Front::new(
        signed,
        RateLimiter::new(&ctx.config.rate_limit)?,
        &ctx.metrics,
    )?);
    let handler_ctx = ctx.clone();
    let is_tls = tls.is_some();
    let server = common::http::serve_tls(listener, limits, hooks, tls, move |req, info| {
        let ctx = handler_ctx.clone();
        let rate = rate.clone();
        let front = front.clone();
        async move { route(ctx, rate, front, req, info).await }
    })?;
    tracing::info!(name = %ctx.name, addr = %server.local_addr(), upstream = %ctx.config.upstream,
        parents = ?ctx.config.parents, tls = is_tls, "edge listening");
    Ok(Edge {
        server,
        ticker,
        ctx,
    })
}

impl Edge {
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The edge's name as it appears in Via, Cache-Status and /health.
    pub fn name(&self) -> &str {
        &self.ctx.name
    }

    /// The disk tier, when configured (`cache_dir`).
    pub fn disk(&self) -> Option<&crate::disk::DiskStore> {
        self.ctx.disk.as_ref()
    }

    /// Stops accepting, lets in-flight requests finish, then returns.
    pub async fn shutdown(self) {
        self.ticker.abort();
        self.server.shutdown().await;
    }

    /// Stops at once, dropping open connections (a crash, for failover tests).
    pub fn abort(self) {
        self.ticker.abort();
        self.server.abort();
    }
}

/// Served bytes per second, smoothed over about two seconds.
async fn measure_rate(metrics: Arc<Metrics>, rate: Arc<Rate>) {
    let mut last_total = metrics.served_total.load(Ordering::Relaxed);
    let mut last = Instant::now();
    let mut smoothed = 0.0f64;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let total = metrics.served_total.load(Ordering::Relaxed);
        let secs = last.elapsed().as_secs_f64().max(1e-3);
        let now_rate = total.saturating_sub(last_total) as f64 / secs;
        smoothed = 0.5 * smoothed + 0.5 * now_rate;
        rate.bytes_per_sec
            .store(smoothed.to_bits(), Ordering::Relaxed);
        last_total = total;
        last = Instant::now();
    }
}

async fn route(
    ctx: Arc<Ctx>,
    rate: Arc<Rate>,
    front: Arc<Front>,
    req: Request<RequestBody>,
    info: ConnInfo,
) -> Response<Body> {
    let (mut parts, body) = req.into_parts();
    let local = parts.method == Method::GET || parts.method == Method::HEAD;
    if parts.method.as_str() == "PURGE" {
        return purge(&ctx, &parts).await;
    }
    if local && parts.uri.path() == "/health" {
        return health(&ctx, &rate);
    }
    if local && parts.uri.path() == "/metrics" {
        ctx.store.sync().await;
        ctx.metrics
            .stored_bytes
            .set(ctx.store.weighted_size() as i64);
        ctx.metrics
            .stored_objects
            .set(ctx.store.entry_count() as i64);
        if let Some(disk) = &ctx.disk {
            ctx.metrics.disk_used_bytes.set(disk.used_bytes() as i64);
            ctx.metrics.disk_objects.set(disk.objects() as i64);
            ctx.metrics
                .disk_writes_suspended
                .set(disk.writes_suspended() as i64);
        }
        return common::metrics::response(&ctx.metrics.registry);
    }
    if let Some(refused) = front.admit(&mut parts, info.peer.ip(), ctx.clock.as_ref()) {
        return refused;
    }
    if !ctx.config.access_log {
        return proxy::handle(ctx, parts, body, info.peer.ip()).await;
    }
    let started = std::time::Instant::now();
    let (method, version, headers) = (parts.method.clone(), parts.version, parts.headers.clone());
    let target = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_string(), |p| p.to_string());
    let time = ctx.clock.now();
    let resp = proxy::handle(ctx, parts, body, info.peer.ip()).await;
    let bytes = match method {
        Method::HEAD => Some(0),
        _ => resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok()),
    };
    common::access_log::Entry {
        peer: info.peer.ip(),
        time,
        method: &method,
        target: &target,
        version,
        status: resp.status(),
        bytes,
        headers: &headers,
        elapsed: started.elapsed(),
    }
    .emit(&[("cache", &own_outcome(&resp))]);
    resp
}

/// What runs before the cache for every proxied request: the per-client request limit, then
/// the signed-URL check. A request either of them refuses touches neither the cache nor the
/// upstream. (The per-client miss limit is in the cache path, where misses are known.)
struct Front {
    limiter: Option<RateLimiter>,
    metrics: Arc<Metrics>,
    signed: Option<SignedUrls>,
    refusals: IntCounterVec,
}

impl Front {
    fn new(
        signed: Option<SignedUrls>,
        limiter: Option<RateLimiter>,
        metrics: &Arc<Metrics>,
    ) -> Result<Front> {
        let registry = &metrics.registry;
        let refusals = IntCounterVec::new(
            Opts::new(
                "edge_signed_url_refusals_total",
                "Requests refused (403) by the signed-URL check, by reason",
            ),
            &["reason"],
        )?;
        if signed.is_some() {
            for r in Refusal::ALL {
                refusals.with_label_values(&[r.label()]);
            }
            registry.register(Box::new(refusals.clone()))?;
        }
        Ok(Front {
            limiter,
            metrics: metrics.clone(),
            signed,
            refusals,
        })
    }

    /// Lets the request through (`None`, with a signed URL's token removed from its target), or
    /// gives the 429 or 403 to answer.
    fn admit(
        &self,
        parts: &mut http::request::Parts,
        peer: std::net::IpAddr,
        clock: &dyn Clock,
    ) -> Option<Response<Body>> {
        if let Some(limiter) = &self.limiter {
            if let Verdict::Limit(wait) = limiter.check(peer, Instant::now()) {
                let limit = Limit::Requests;
                self.metrics
                    .rate_limited
                    .with_label_values(&[limit.label()])
                    .inc();
                return Some(crate::limits::too_many(limit, wait));
            }
        }
        let verifier = self.signed.as_ref()?;
        let target = parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path(), |p| p.as_str());
        // The wall clock is read only for a signed URL: the cache reads it once more, in `key`.
        match verifier.check(target, clock.now()) {
            Check::Open => None,
            Check::Valid(stripped) => {
                let mut uri = std::mem::take(&mut parts.uri).into_parts();
                uri.path_and_query = stripped.parse().ok();
                match http::Uri::from_parts(uri) {
                    Ok(u) => {
                        parts.uri = u;
                        None
                    }
                    Err(_) => Some(self.refuse(Refusal::Malformed)),
                }
            }
            Check::Refused(why) => Some(self.refuse(why)),
        }
    }

    fn refuse(&self, why: Refusal) -> Response<Body> {
        self.refusals.with_label_values(&[why.label()]).inc();
        plain(
            StatusCode::FORBIDDEN,
            &format!("forbidden: {}\n", why.label().replace('_', " ")),
        )
    }
}

/// A small plain-text answer the edge makes itself, never cached.
fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut resp = Response::new(full(text.to_string()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// This edge's Cache-Status member (the last one) without its name: `hit`, `fwd=miss;stored`.
fn own_outcome(resp: &Response<Body>) -> String {
    let last = resp
        .headers()
        .get_all("cache-status")
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .unwrap_or("");
    let params: Vec<&str> = last.split(';').skip(1).map(str::trim).collect();
    if params.is_empty() {
        "-".to_string()
    } else {
        params.join(";")
    }
}

fn json(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(full(value.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `/health`: what the DNS router polls. `load` is the larger of the connection and bandwidth
/// fractions of capacity (1.0 = full).
fn health(ctx: &Ctx, rate: &Rate) -> Response<Body> {
    let active = ctx.metrics.open_connections.get().max(0) as u64;
    let bps = f64::from_bits(rate.bytes_per_sec.load(Ordering::Relaxed));
    let capacity = ctx.config.capacity_bytes_per_sec.0.max(1);
    let load =
        (bps / capacity as f64).max(active as f64 / ctx.config.max_connections.max(1) as f64);
    json(
        StatusCode::OK,
        serde_json::json!({
            "status": "up",
            "name": ctx.name,
            "active_connections": active,
            "bytes_per_sec": bps.round(),
            "capacity": capacity,
            "load": (load * 1000.0).round() / 1000.0,
        }),
    )
}

/// `PURGE /path` removes that URL (any host); `PURGE /prefix*` every URL under the prefix.
/// Needs `Authorization: Bearer <purge_token>`: 401 without it, 403 when wrong or unset.
async fn purge(ctx: &Ctx, parts: &http::request::Parts) -> Response<Body> {
    let Some(token) = ctx.config.purge_token.as_deref() else {
        return json(
            StatusCode::FORBIDDEN,
            serde_json::json!({"error": "purge is disabled: no purge_token configured"}),
        );
    };
    let given = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    let Some(given) = given else {
        let mut resp = json(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"error": "bearer token required"}),
        );
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"edge-purge\""),
        );
        return resp;
    };
    if !constant_time_eq(given.trim().as_bytes(), token.as_bytes()) {
        return json(
            StatusCode::FORBIDDEN,
            serde_json::json!({"error": "wrong token"}),
        );
    }
    let raw = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let (target, prefix) = match raw.strip_suffix('*') {
        Some(p) => (crate::key::normalize_percent(p).into_owned(), true),
        None => {
            let key = crate::key::of_request(parts, &ctx.config.ignore_query_params);
            (key.path.to_string(), false)
        }
    };
    // Flights first: a request arriving from now on must not join a fetch that began before
    // the purge (that fetch will not be kept either; see `Store::insert_fetched`).
    let fetches = ctx.flights.detach(|k| {
        if prefix {
            k.path.starts_with(&target)
        } else {
            *k.path == *target
        }
    });
    let mut objects = ctx.store.purge(&target, prefix).await;
    if let Some(disk) = &ctx.disk {
        // Memory holds a subset of the disk tier (write-through): the larger count is the
        // number of distinct objects. The files are gone before the answer.
        objects = objects.max(disk.purge(&target, prefix).await);
    }
    ctx.metrics.purges.inc();
    tracing::info!(name = %ctx.name, path = %target, prefix, objects, fetches, "purged");
    json(
        StatusCode::OK,
        serde_json::json!({"purged": target, "prefix": prefix, "objects": objects}),
    )
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_status(values: &[&str]) -> Response<Body> {
        let mut r = Response::new(full(""));
        for v in values {
            r.headers_mut()
                .append("cache-status", HeaderValue::from_str(v).unwrap());
        }
        r
    }

    #[test]
    fn the_access_log_names_this_edges_outcome() {
        assert_eq!(
            own_outcome(&with_status(&["edge-1; hit; ttl=5"])),
            "hit;ttl=5"
        );
        // A parent's member comes first; ours is the last, on its own line or in a list.
        assert_eq!(
            own_outcome(&with_status(&["parent; hit", "edge-1; fwd=miss; stored"])),
            "fwd=miss;stored"
        );
        assert_eq!(
            own_outcome(&with_status(&["parent; hit, edge-1; fwd=stale"])),
            "fwd=stale"
        );
        assert_eq!(own_outcome(&with_status(&[])), "-");
    }
}
