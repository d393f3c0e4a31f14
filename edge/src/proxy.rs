//! The request path, as phases, each a function:
//!
//! - [`handle`] -> `key` (cache key, request directives, `now`; or `pass`) -> `lookup` (the
//!   memory tier, then the disk tier, whose second hit on an object promotes it to memory) ->
//!   `hit` | `stale` | `miss`.
//! - `miss` joins or starts the key's flight. The flight's task (`Fetch`) runs `fetch` (the
//!   upstream request, conditional when revalidating), takes the policy's one verdict on the
//!   response (`policy::cacheable`: pass / share without storing / store with this freshness),
//!   then `store` (stream to the flight's members, then keep in memory and write to disk) or
//!   `refresh` (a 304, whose merged headers are written to both tiers).
//! - `respond_stored` / `respond_shared` answer from a stored or a streaming response: the
//!   client's preconditions and Range (`Answer`), HEAD; `stale_if_error` lets a stale copy
//!   stand in for a failed upstream; `finish` adds Via and Cache-Status and counts the request.
//! - `pass` forwards what the cache must not answer (other methods, Authorization, `no-store`);
//!   unsafe methods invalidate the stored response for their URL.
//! - Limits: a request that would make the edge go upstream (starting a flight, fetching alone,
//!   a pass) first takes a token from its client's miss budget ([`Ctx::misses`]), or is
//!   answered 429; joining a running flight is free. Each exchange then holds one of the
//!   upstream's fetch slots (`upstream::Gate`), or is answered 503 (or a stale copy stands in).
//!
//! Time: a request reads the edge's clock ([`Ctx::clock`], injectable) once, in `key`; its
//! lookup verdict, Age, ttl and stale-if-error decisions all use that `now`. A fetch reads the
//! clock once more, when the upstream's head arrives (RFC 9111's response_time; its request_time
//! is the creating request's `now`). Waits on the network stay on tokio's time: the connect,
//! first-byte and idle timeouts, `coalesce_wait` and `stale_if_slow`; request latency for the
//! metrics is measured with `Instant`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{response, Method, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use common::clock::Clock;
use common::http::{empty, full, Body, RequestBody};
use common::precondition::{self, Decision};

use crate::cache_status::{Fwd, Outcome, StaleWhy};
use crate::config::Config;
use crate::disk::DiskStore;
use crate::flight::{Flight, Flights, Head, SharedHead};
use crate::key::CacheKey;
use crate::limits::{Limit, RateLimiter, Verdict as LimitVerdict};
use crate::metrics::Metrics;
use crate::policy::{
    self, Cacheable, Freshness, PolicyConfig, RangeAnswer, RequestControls, Verdict,
};
use crate::store::{Payload, Store, Stored};
use crate::upstream::{self, Outgoing, Upstream, UpstreamError};

/// Request fields that are the client's own business and never start a shared fetch: its
/// preconditions and Range.
fn client_conditionals() -> impl Iterator<Item = &'static header::HeaderName> {
    const RANGE: &[header::HeaderName] = &[header::RANGE];
    precondition::FIELDS.iter().chain(RANGE)
}

/// Everything the request path shares.
pub struct Ctx {
    /// This edge's name as used in Via and Cache-Status.
    pub name: String,
    pub config: Config,
    pub policy: PolicyConfig,
    pub store: Store,
    /// The disk tier, with `cache_dir`.
    pub disk: Option<DiskStore>,
    pub flights: Flights,
    pub upstream: Upstream,
    pub metrics: Arc<Metrics>,
    /// The clock freshness is judged by (the system clock unless injected).
    pub clock: Arc<dyn Clock>,
    /// This edge's Via member, built once.
    pub via: HeaderValue,
    pub idle: Duration,
    pub coalesce_wait: Duration,
    /// The wait for a revalidation when a stale copy may stand in (zero: no shorter wait).
    pub stale_if_slow: Duration,
    /// The per-client miss budget (`rate_limit.misses_per_sec`), when on.
    pub misses: Option<RateLimiter>,
}

/// What every response needs to know about its request, whichever path it took.
#[derive(Debug, Clone, Copy)]
struct Client {
    head: bool,
    /// The request came through another edge, which may see CDN-Cache-Control.
    from_edge: bool,
    /// When the request arrived, for the latency metric.
    started: Instant,
}

/// A client request the cache may answer, reduced to what the cache path needs (the `key`
/// phase's output).
struct Ask {
    parts: Parts,
    peer: IpAddr,
    key: CacheKey,
    controls: RequestControls,
    client: Client,
    /// The request's one reading of the edge's clock.
    now: SystemTime,
}

/// What the `lookup` phase found.
enum Lookup {
    /// Fresh: phase `hit`.
    Fresh(Arc<Stored>),
    /// Stale but servable now: phase `stale`.
    Stale(Arc<Stored>, StaleWhy),
    /// Go upstream (phase `miss`); `stale` is kept for revalidation and for stale-if-error.
    Miss {
        stale: Option<Arc<Stored>>,
        fwd: Fwd,
    },
}

/// Entry point for every proxied request.
pub async fn handle(
    ctx: Arc<Ctx>,
    parts: Parts,
    body: RequestBody,
    peer: IpAddr,
) -> Response<Body> {
    let started = Instant::now();
    if upstream::via_names(&parts.headers, &ctx.name) {
        return error(
            &ctx,
            started,
            Outcome::Loop,
            StatusCode::LOOP_DETECTED,
            "request loop: Via already names this edge",
        );
    }
    let ask = match key(&ctx, parts, peer, started) {
        Keyed::Cache(ask) => ask,
        Keyed::Pass(parts) => return pass(&ctx, parts, body, peer, started).await,
    };
    match lookup(&ctx, &ask).await {
        Lookup::Fresh(entry) => hit(&ctx, &ask, &entry),
        Lookup::Stale(entry, why) => stale(&ctx, &ask, entry, why),
        Lookup::Miss { stale, fwd } => miss(&ctx, &ask, stale, fwd).await,
    }
}

/// What the `key` phase made of a request.
enum Keyed {
    /// The cache may answer it.
    Cache(Ask),
    /// The cache must not answer it (methods other than GET and HEAD, Authorization,
    /// `no-store`): phase `pass`.
    Pass(Parts),
}

/// Phase `key`: the cache key, the request's directives and its `now`, or the request back
/// for `pass`.
fn key(ctx: &Ctx, parts: Parts, peer: IpAddr, started: Instant) -> Keyed {
    let cacheable_method = parts.method == Method::GET || parts.method == Method::HEAD;
    if !cacheable_method || parts.headers.contains_key(header::AUTHORIZATION) {
        return Keyed::Pass(parts);
    }
    let controls = RequestControls::from_headers(&parts.headers);
    if controls.no_store {
        return Keyed::Pass(parts);
    }
    Keyed::Cache(Ask {
        key: crate::key::of_request(&parts, &ctx.config.ignore_query_params),
        client: Client {
            head: parts.method == Method::HEAD,
            from_edge: upstream::from_edge(&parts.headers),
            started,
        },
        now: ctx.clock.now(),
        parts,
        peer,
        controls,
    })
}

/// Phase `lookup`: the stored variant for the key, judged against the request at its `now`.
async fn lookup(ctx: &Ctx, ask: &Ask) -> Lookup {
    let (entry, on_disk) = match ctx.store.get(&ask.key).await {
        Some(e) => (Some(e), false),
        None => (from_disk(ctx, &ask.key).await, true),
    };
    let entry = match entry {
        Some(e) if e.expired(ask.now) => {
            if let (Some(disk), true) = (&ctx.disk, on_disk) {
                disk.remove(&ask.key).await;
            }
            None
        }
        other => other,
    };
    let Some(entry) = entry else {
        return Lookup::Miss {
            stale: None,
            fwd: Fwd::Miss,
        };
    };
    let used = || {
        if on_disk {
            ctx.metrics.tier_disk.inc()
        } else {
            ctx.metrics.tier_memory.inc()
        }
    };
    if !entry.matches_variant(&ask.parts.headers) {
        return Lookup::Miss {
            stale: None,
            fwd: Fwd::VaryMiss,
        };
    }
    match entry.freshness.verdict(&ask.controls, ask.now) {
        Verdict::Fresh => {
            used();
            Lookup::Fresh(entry)
        }
        Verdict::StaleWhileRevalidate => {
            used();
            Lookup::Stale(entry, StaleWhy::WhileRevalidate)
        }
        Verdict::StaleAllowedByClient => {
            used();
            Lookup::Stale(entry, StaleWhy::MaxStale)
        }
        Verdict::Revalidate => {
            // A revalidated body is served from memory (a 304 hands it to the flight): a
            // streamed disk body is read whole now, and dropped if it fails its checks.
            let entry = match in_memory(&entry).await {
                Some(e) => e,
                None => {
                    return Lookup::Miss {
                        stale: None,
                        fwd: Fwd::Miss,
                    }
                }
            };
            let forced = ask.controls.no_cache
                || ask.controls.max_age.is_some()
                || ask.controls.min_fresh.is_some();
            let fwd = if forced && entry.freshness.is_fresh(ask.now) {
                Fwd::Request
            } else {
                Fwd::Stale
            };
            Lookup::Miss {
                stale: Some(entry),
                fwd,
            }
        }
    }
}

/// The disk tier's entry for `key`; its second disk hit promotes it to the memory tier (see
/// `disk`), unless a purge ran meanwhile.
async fn from_disk(ctx: &Ctx, key: &CacheKey) -> Option<Arc<Stored>> {
    let disk = ctx.disk.as_ref()?;
    let generation = ctx.store.generation();
    let (entry, promote) = disk.get(key, ctx.store.max_object_size()).await?;
    if promote {
        ctx.store
            .insert_fetched(key.clone(), entry.clone(), generation)
            .await;
    }
    Some(entry)
}

/// `entry` with its body in memory (read whole and verified when it is on disk).
async fn in_memory(entry: &Arc<Stored>) -> Option<Arc<Stored>> {
    match &entry.body {
        Payload::Memory(_) => Some(entry.clone()),
        Payload::Disk(d) => {
            let bytes = d.read_all().await.ok()?;
            Some(Arc::new(entry.with_body(Payload::Memory(bytes))))
        }
    }
}

/// Phase `hit`: a fresh stored response.
fn hit(ctx: &Ctx, ask: &Ask, entry: &Stored) -> Response<Body> {
    let ttl = entry.freshness.ttl_secs(ask.now);
    respond_stored(ctx, ask, entry, Outcome::Hit { ttl })
}

/// Phase `stale`: a stale stored response the request may have at once; within
/// stale-while-revalidate a refresh starts in the background (or is already running).
fn stale(ctx: &Arc<Ctx>, ask: &Ask, entry: Arc<Stored>, why: StaleWhy) -> Response<Body> {
    if why == StaleWhy::WhileRevalidate {
        // A client out of miss budget still gets the stale copy, without starting a refresh.
        let allow = || ctx.miss_allowed(ask.peer).is_ok();
        if let Some((flight, true)) = ctx.flights.join_if(&ask.key, allow) {
            Fetch::start(ctx, ask, flight, Some(entry.clone()));
        }
    }
    let ttl = entry.freshness.ttl_secs(ask.now);
    respond_stored(ctx, ask, &entry, Outcome::Stale { ttl, why })
}

/// Phase `miss` (also a stale entry that must be revalidated first): join or start the key's
/// flight and answer from it.
async fn miss(ctx: &Arc<Ctx>, ask: &Ask, stale: Option<Arc<Stored>>, fwd: Fwd) -> Response<Body> {
    if ask.controls.only_if_cached {
        return error(
            ctx,
            ask.client.started,
            Outcome::NotCached { fwd },
            StatusCode::GATEWAY_TIMEOUT,
            "not in cache",
        );
    }
    let mut refused = None;
    let allow = || match ctx.miss_allowed(ask.peer) {
        Ok(()) => true,
        Err(wait) => {
            refused = Some(wait);
            false
        }
    };
    let Some((flight, created)) = ctx.flights.join_if(&ask.key, allow) else {
        return ctx.refuse_miss(refused.unwrap_or_default());
    };
    if created {
        Fetch::start(ctx, ask, flight.clone(), stale.clone());
    }
    respond_from_flight(ctx, ask, &flight, created, stale.as_deref(), fwd).await
}

/// The upstream request for a cacheable fetch: always a full GET, without the client's own
/// conditionals and Range (the cache answers those itself from the full response).
fn outgoing(ctx: &Ctx, ask: &Ask) -> Outgoing {
    let mut headers = upstream::forwarded_headers(&ask.parts.headers, ask.peer, &ctx.name);
    for h in client_conditionals() {
        headers.remove(h);
    }
    Outgoing {
        method: Method::GET,
        path_and_query: path_and_query(&ask.parts),
        headers,
    }
}

fn path_and_query(parts: &Parts) -> String {
    parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .filter(|p| p.starts_with('/'))
        .unwrap_or_else(|| "/".to_string())
}

/// One flight's upstream fetch, run in its own task so that no client owns it (phases `fetch`,
/// then `store` or `refresh`). Dropping it lands the flight however the fetch ended (including
/// a panic or cancellation): members still waiting for a head get an error instead of waiting
/// out their timeout.
struct Fetch {
    ctx: Arc<Ctx>,
    key: CacheKey,
    flight: Arc<Flight>,
    out: Outgoing,
    /// The stored copy being revalidated, if any.
    stale: Option<Arc<Stored>>,
    /// The creating request's `now`: RFC 9111's request_time.
    request_time: SystemTime,
    /// The client whose miss budget paid for the fetch.
    payer: IpAddr,
}

impl Drop for Fetch {
    fn drop(&mut self) {
        if self.flight.is_pending() {
            self.flight.set_head(Head::Failed(UpstreamError::Other(
                "fetch".into(),
                "aborted".into(),
            )));
        }
        if !self.flight.is_settled() {
            self.flight.fail_body("upstream fetch ended early");
        }
        self.ctx.flights.land(&self.key, &self.flight);
        self.ctx.metrics.inflight_fetches.dec();
    }
}

impl Fetch {
    /// Spawns the fetch of a flight `ask` created.
    fn start(ctx: &Arc<Ctx>, ask: &Ask, flight: Arc<Flight>, stale: Option<Arc<Stored>>) {
        ctx.metrics.inflight_fetches.inc();
        let fetch = Fetch {
            ctx: ctx.clone(),
            key: ask.key.clone(),
            flight,
            out: outgoing(ctx, ask),
            stale,
            request_time: ask.now,
            payer: ask.peer,
        };
        tokio::spawn(fetch.run());
    }

    async fn run(mut self) {
        let generation = self.ctx.store.generation();
        let (parts, body, response_time) = match self.fetch().await {
            Ok(fetched) => {
                if fetched.0.status.is_success() || fetched.0.status == StatusCode::NOT_MODIFIED {
                    if let Some(m) = &self.ctx.misses {
                        m.refund(self.payer, crate::limits::SUCCESS_REFUND, Instant::now());
                    }
                }
                fetched
            }
            Err(e) => {
                if matches!(e, UpstreamError::Busy(_)) {
                    // Counted in edge_upstream_rejected_total; a log line each would flood.
                    tracing::debug!(key = %self.key, error = %e, "upstream fetch refused");
                } else {
                    tracing::warn!(key = %self.key, error = %e, "upstream fetch failed");
                }
                self.flight.set_head(Head::Failed(e));
                return;
            }
        };
        if parts.status == StatusCode::NOT_MODIFIED {
            if let Some(stale) = &self.stale {
                self.refresh(stale, &parts.headers, response_time, generation)
                    .await;
                return;
            }
        }
        let verdict = policy::cacheable(
            &self.ctx.policy,
            &self.out.headers,
            parts.status,
            &parts.headers,
            self.request_time,
            response_time,
        );
        match verdict {
            Cacheable::Pass(_) => self.flight.set_pass(Response::from_parts(parts, body)),
            Cacheable::Share(_) => self.store(parts, body, None, generation).await,
            Cacheable::Store(freshness) => {
                self.store(parts, body, Some(freshness), generation).await
            }
        }
    }

    /// Phase `fetch`: the upstream request (conditional when a stored copy is revalidated),
    /// its head without hop-by-hop fields, and the edge's time when that head arrived. The
    /// head's extensions carry the fetch slot: it is given back when they are dropped, once the
    /// body is stored or failed, or with the unshared response handed to the creator.
    async fn fetch(&mut self) -> Result<(response::Parts, Incoming, SystemTime), UpstreamError> {
        if let Some(s) = &self.stale {
            for (name, value) in policy::revalidation_headers(&s.headers()) {
                self.out.headers.insert(name, value);
            }
        }
        let (resp, _tier) = self
            .ctx
            .upstream
            .fetch(&self.key.to_string(), &self.out)
            .await?;
        let response_time = self.ctx.clock.now();
        let (mut parts, body) = resp.into_parts();
        upstream::strip_hop_by_hop(&mut parts.headers);
        Ok((parts, body, response_time))
    }

    /// Phase `refresh`: a 304 refreshes the stored response (RFC 9111 section 4.3.4), whose
    /// body the flight's members get.
    async fn refresh(
        &self,
        stale: &Stored,
        not_modified: &HeaderMap,
        response_time: SystemTime,
        generation: u64,
    ) {
        let (merged, freshness) = policy::refresh(
            &self.ctx.policy,
            stale.status,
            &stale.headers(),
            not_modified,
            self.request_time,
            response_time,
        );
        let body = match &stale.body {
            Payload::Memory(b) => b.clone(),
            // Stale-while-revalidate from a streamed disk entry: its body is read (verified)
            // for the flight's members.
            Payload::Disk(d) => match d.read_all().await {
                Ok(b) => b,
                Err(e) => {
                    let e = UpstreamError::Other("disk cache".into(), e.to_string());
                    self.flight.set_head(Head::Failed(e));
                    return;
                }
            },
        };
        let entry = stale.refreshed(&self.ctx.policy, &merged, freshness.clone());
        let entry = Arc::new(entry.with_body(Payload::Memory(body.clone())));
        let mut stored = self
            .ctx
            .store
            .insert_fetched(self.key.clone(), entry.clone(), generation)
            .await;
        if let Some(disk) = &self.ctx.disk {
            // RFC 9111 section 4.3.4 on disk too: the merged headers replace the stored ones
            // (a new file; the body is the one already stored).
            stored |= disk
                .insert_fetched(&self.key, &entry, vec![body.clone()], generation)
                .await;
        }
        self.flight.set_head(Head::Ready(Arc::new(SharedHead {
            status: entry.status,
            headers: entry.headers(),
            content_length: Some(entry.body.len()),
            fwd_status: 304,
            stored,
            freshness: Some(freshness),
            vary: entry.vary.clone(),
        })));
        if !body.is_empty() {
            self.flight.push(body);
        }
        self.flight.finish();
    }

    /// Phase `store`: the head goes to the flight's members and the body streams through the
    /// flight; the complete response is kept when the verdict gave it a `freshness` and it fits
    /// `max_object_size`. A response with a Content-Length the in-flight budget cannot hold is
    /// not shared: its creator gets it alone.
    async fn store(
        &self,
        parts: response::Parts,
        body: Incoming,
        freshness: Option<Freshness>,
        generation: u64,
    ) {
        let content_length = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let max_object = self.ctx.max_object_size();
        let freshness = freshness.filter(|_| content_length.is_none_or(|l| l <= max_object));
        if let Some(len) = content_length {
            if !self.flight.reserve(len) {
                self.flight.set_pass(Response::from_parts(parts, body));
                return;
            }
        }
        let vary = match policy::vary_names(&parts.headers) {
            Some(names) => names
                .iter()
                .cloned()
                .zip(policy::vary_values(&names, &self.out.headers))
                .collect(),
            None => Vec::new(),
        };
        self.flight.set_head(Head::Ready(Arc::new(SharedHead {
            status: parts.status,
            headers: parts.headers.clone(),
            content_length,
            fwd_status: parts.status.as_u16(),
            stored: freshness.is_some(),
            freshness: freshness.clone(),
            vary: vary.clone(),
        })));
        let Some(received) = self.stream(body, content_length).await else {
            return;
        };
        self.flight.finish();
        let Some(freshness) = freshness.filter(|_| received <= max_object) else {
            return;
        };
        if let Some(chunks) = self.flight.body_chunks() {
            // Memory takes what fits its object limit; the disk tier takes every stored
            // response (write-through), so memory never needs writing back and a restart
            // finds everything.
            let fits_memory = received <= self.ctx.store.max_object_size();
            let body: &[Bytes] = if fits_memory { &chunks } else { &[] };
            let entry = Arc::new(Stored::new(
                &self.ctx.policy,
                parts.status,
                parts.headers,
                body,
                freshness,
                vary,
            ));
            if fits_memory {
                self.ctx
                    .store
                    .insert_fetched(self.key.clone(), entry.clone(), generation)
                    .await;
            }
            if let Some(disk) = &self.ctx.disk {
                disk.insert_fetched(&self.key, &entry, chunks, generation)
                    .await;
            }
        }
    }

    /// Reads the upstream body into the flight: the bytes received, or `None` when the body
    /// failed, stalled for `idle`, or differs from its Content-Length (the members are told).
    async fn stream(&self, mut body: Incoming, content_length: Option<u64>) -> Option<u64> {
        let mut received: u64 = 0;
        loop {
            match tokio::time::timeout(self.ctx.idle, body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    received += data.len() as u64;
                    self.ctx.metrics.upstream_bytes.inc_by(data.len() as u64);
                    if !self.flight.push(data) {
                        return None;
                    }
                }
                Ok(Some(Err(e))) => {
                    tracing::warn!(key = %self.key, error = %e, "upstream body failed");
                    self.flight.fail_body("upstream body failed");
                    return None;
                }
                Ok(None) => break,
                Err(_) => {
                    tracing::warn!(key = %self.key, "upstream body idle timeout");
                    self.flight.fail_body("upstream body idle timeout");
                    return None;
                }
            }
        }
        if content_length.is_some_and(|l| l != received) {
            self.flight
                .fail_body("upstream body length differs from Content-Length");
            return None;
        }
        Some(received)
    }
}

/// Phase `respond` for a flight's member: waits for the head (less long when a stale copy may
/// stand in), then answers from the shared response, the stale copy, or a fetch of its own.
async fn respond_from_flight(
    ctx: &Arc<Ctx>,
    ask: &Ask,
    flight: &Arc<Flight>,
    created: bool,
    stale: Option<&Stored>,
    fwd: Fwd,
) -> Response<Body> {
    // A slow upstream does not hold a client that a stale copy can serve (stale-if-error).
    let stand_in = stale.is_some_and(|s| s.freshness.usable_on_error(ask.now));
    let wait = if stand_in && !ctx.stale_if_slow.is_zero() {
        ctx.stale_if_slow.min(ctx.coalesce_wait)
    } else {
        ctx.coalesce_wait
    };
    match flight.head(wait).await {
        None | Some(Head::Pending) => {
            let e = UpstreamError::Timeout("the shared upstream fetch".into());
            upstream_failed(ctx, ask, stale, e, fwd)
        }
        Some(Head::Failed(e)) => upstream_failed(ctx, ask, stale, e, fwd),
        Some(Head::Pass) => {
            if created {
                if let Some(resp) = flight.take_pass() {
                    let outcome = forwarded(fwd, resp.status());
                    return relay(ctx, ask.client, resp, outcome);
                }
            }
            fetch_alone(ctx, ask, fwd).await
        }
        Some(Head::Ready(h)) => {
            if h.status.is_server_error() {
                if let Some(resp) = stale_if_error(ctx, ask, stale, fwd, Some(h.fwd_status)) {
                    return resp;
                }
            }
            if !variant_matches(&h, &ask.parts.headers) {
                return fetch_alone(ctx, ask, Fwd::VaryMiss).await;
            }
            let outcome = Outcome::Forwarded {
                fwd,
                fwd_status: h.fwd_status,
                stored: h.stored,
                collapsed: !created,
                ttl: h.freshness.as_ref().map(|f| f.ttl_secs(ask.now)),
            };
            respond_shared(ctx, ask, flight, &h, outcome).await
        }
    }
}

fn variant_matches(head: &SharedHead, request: &HeaderMap) -> bool {
    if head.vary.is_empty() {
        return true;
    }
    let names: Vec<_> = head.vary.iter().map(|(n, _)| n.clone()).collect();
    policy::vary_values(&names, request)
        .iter()
        .zip(&head.vary)
        .all(|(a, (_, b))| a == b)
}

/// An upstream response answered as it came, neither stored nor shared.
fn forwarded(fwd: Fwd, status: StatusCode) -> Outcome {
    Outcome::Forwarded {
        fwd,
        fwd_status: status.as_u16(),
        stored: false,
        collapsed: false,
        ttl: None,
    }
}

/// Stale-if-error: the stale copy, when it may stand in for a failed (or 5xx, or slow)
/// upstream at the request's `now`.
fn stale_if_error(
    ctx: &Ctx,
    ask: &Ask,
    stale: Option<&Stored>,
    fwd: Fwd,
    fwd_status: Option<u16>,
) -> Option<Response<Body>> {
    let s = stale.filter(|s| s.freshness.usable_on_error(ask.now))?;
    let outcome = Outcome::StaleIfError {
        fwd,
        fwd_status,
        ttl: s.freshness.ttl_secs(ask.now),
    };
    Some(respond_stored(ctx, ask, s, outcome))
}

/// The upstream failed: the stale copy when stale-if-error allows, else 502/503/504.
fn upstream_failed(
    ctx: &Ctx,
    ask: &Ask,
    stale: Option<&Stored>,
    e: UpstreamError,
    fwd: Fwd,
) -> Response<Body> {
    stale_if_error(ctx, ask, stale, fwd, None)
        .unwrap_or_else(|| failed(ctx, ask.client.started, Outcome::Error { fwd }, &e))
}

/// The answer for an upstream error: its status, and `Retry-After` when the edge refused to
/// start the exchange (503).
fn failed(ctx: &Ctx, started: Instant, outcome: Outcome, e: &UpstreamError) -> Response<Body> {
    let mut resp = error(ctx, started, outcome, e.status(), &e.to_string());
    if let Some(secs) = e.retry_after() {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// An uncoalesced fetch for a request that cannot share the flight's response (it was not to
/// be shared, or is another Vary variant): the client's conditionals and Range go with it.
async fn fetch_alone(ctx: &Arc<Ctx>, ask: &Ask, fwd: Fwd) -> Response<Body> {
    if let Err(wait) = ctx.miss_allowed(ask.peer) {
        return ctx.refuse_miss(wait);
    }
    let mut out = outgoing(ctx, ask);
    out.method = ask.parts.method.clone();
    for h in client_conditionals() {
        if let Some(v) = ask.parts.headers.get(h) {
            out.headers.insert(h.clone(), v.clone());
        }
    }
    match ctx.upstream.fetch(&ask.key.to_string(), &out).await {
        Ok((resp, _)) => {
            let outcome = forwarded(fwd, resp.status());
            relay(ctx, ask.client, resp, outcome)
        }
        Err(e) => upstream_failed(ctx, ask, None, e, fwd),
    }
}

/// Largest request body forwarded upstream (POST/PUT bodies; a video CDN sees few).
const MAX_FORWARDED_BODY: usize = 1 << 20;
/// Time a client has to send a request body.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Phase `pass`: requests the cache does not answer are forwarded as they are; a successful
/// unsafe method invalidates the stored response for its URL.
async fn pass(
    ctx: &Arc<Ctx>,
    parts: Parts,
    body: RequestBody,
    peer: IpAddr,
    started: Instant,
) -> Response<Body> {
    let key = crate::key::of_request(&parts, &ctx.config.ignore_query_params);
    let out = Outgoing {
        method: parts.method.clone(),
        path_and_query: path_and_query(&parts),
        headers: upstream::forwarded_headers(&parts.headers, peer, &ctx.name),
    };
    let safe = matches!(
        parts.method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    );
    let fwd = if safe { Fwd::Bypass } else { Fwd::Method };
    if safe {
        if let Err(wait) = ctx.miss_allowed(peer) {
            return ctx.refuse_miss(wait);
        }
    }
    let result = if safe {
        ctx.upstream
            .fetch(&key.to_string(), &out)
            .await
            .map(|(r, _)| r)
    } else {
        // The body is read whole (it is small for anything a video CDN forwards) before the
        // upstream is contacted, so that a malformed, oversized or stalled client body is the
        // client's 4xx rather than an upstream 502.
        let limited = http_body_util::Limited::new(body, MAX_FORWARDED_BODY);
        let collected = tokio::time::timeout(BODY_READ_TIMEOUT, limited.collect()).await;
        let refused = Outcome::Pass {
            fwd,
            fwd_status: None,
        };
        let bytes = match collected {
            Ok(Ok(c)) => c.to_bytes(),
            Ok(Err(e)) => {
                let too_big = e.is::<http_body_util::LengthLimitError>();
                let (status, msg) = if too_big {
                    (StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
                } else {
                    (StatusCode::BAD_REQUEST, "malformed request body")
                };
                return error(ctx, started, refused, status, msg);
            }
            Err(_) => {
                let status = StatusCode::REQUEST_TIMEOUT;
                return error(ctx, started, refused, status, "request body timed out");
            }
        };
        // Charged once the body is read: only a request that reaches the upstream costs one.
        if let Err(wait) = ctx.miss_allowed(peer) {
            return ctx.refuse_miss(wait);
        }
        ctx.upstream
            .forward(&key.to_string(), &out, full(bytes))
            .await
    };
    match result {
        Ok(resp) => {
            let status = resp.status();
            if !safe && (status.is_success() || status.is_redirection()) {
                // RFC 9111 section 4.4: a successful unsafe request invalidates the target URI.
                ctx.store.remove(&key).await;
                if let Some(disk) = &ctx.disk {
                    disk.remove(&key).await;
                }
            }
            let client = Client {
                head: parts.method == Method::HEAD,
                from_edge: upstream::from_edge(&parts.headers),
                started,
            };
            let outcome = Outcome::Pass {
                fwd,
                fwd_status: Some(status.as_u16()),
            };
            relay(ctx, client, resp, outcome)
        }
        Err(e) => {
            let outcome = Outcome::Pass {
                fwd,
                fwd_status: None,
            };
            failed(ctx, started, outcome, &e)
        }
    }
}

/// Streams an unshared upstream response to the client; its fetch slot is held until the body
/// has been relayed.
fn relay(ctx: &Ctx, client: Client, resp: Response<Incoming>, outcome: Outcome) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    upstream::strip_hop_by_hop(&mut parts.headers);
    let slot = upstream::take_slot_of(&mut parts);
    let body = if client.head {
        empty()
    } else {
        upstream::relay_body(body, ctx.idle, ctx.metrics.relay_tally(), slot)
    };
    finish(
        ctx,
        client,
        response(parts.status, parts.headers, body),
        outcome,
    )
}

/// How a request is answered from a full response (stored, or streaming through a flight):
/// its preconditions first, then its Range (RFC 9110 section 13.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// The whole response, with its own status.
    Full,
    /// 206 with bytes `start..=end` of `len`.
    Partial { start: u64, end: u64, len: u64 },
    /// 304 for a matched If-None-Match / If-Modified-Since.
    NotModified,
    /// 412 for a failed If-Match / If-Unmodified-Since.
    PreconditionFailed,
    /// 416 with `Content-Range: bytes */len`.
    Unsatisfiable { len: u64 },
}

/// The part of the full body a response carries.
enum Part {
    Nothing,
    All,
    /// Bytes `start..=end`.
    Range(u64, u64),
}

impl Answer {
    /// The client's preconditions against a full response's status and fields: `Ok(true)` when
    /// its Range applies (which [`Answer::range`] decides once the length is known), `Ok(false)`
    /// for the whole response, `Err` for a 304 or 412. Only a 200 is answered other than whole.
    fn preconditions(ask: &Ask, status: StatusCode, headers: &HeaderMap) -> Result<bool, Answer> {
        if status != StatusCode::OK {
            return Ok(false);
        }
        match policy::precondition(&ask.parts.method, &ask.parts.headers, headers) {
            Decision::NotModified => Err(Answer::NotModified),
            Decision::PreconditionFailed => Err(Answer::PreconditionFailed),
            Decision::Serve { use_range } => Ok(use_range),
        }
    }

    /// The client's Range against a full body of `len` bytes.
    fn range(ask: &Ask, len: u64) -> Answer {
        match policy::range(&ask.parts.headers, len) {
            RangeAnswer::Full => Answer::Full,
            RangeAnswer::Partial { start, end } => Answer::Partial { start, end, len },
            RangeAnswer::Unsatisfiable => Answer::Unsatisfiable { len },
        }
    }

    /// The status, fields and body part of the response that gives this answer from a full
    /// response's `status` and `headers`; HEAD gets no body.
    fn apply(
        self,
        status: StatusCode,
        mut headers: HeaderMap,
        head: bool,
    ) -> (StatusCode, HeaderMap, Part) {
        let body = |part| if head { Part::Nothing } else { part };
        match self {
            Answer::Full => (status, headers, body(Part::All)),
            Answer::Partial { start, end, len } => {
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start + 1));
                if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")) {
                    headers.insert(header::CONTENT_RANGE, v);
                }
                (
                    StatusCode::PARTIAL_CONTENT,
                    headers,
                    body(Part::Range(start, end)),
                )
            }
            Answer::NotModified => {
                let mut out = policy::not_modified_headers(&headers);
                if let Some(age) = headers.get(header::AGE) {
                    out.insert(header::AGE, age.clone());
                }
                (StatusCode::NOT_MODIFIED, out, Part::Nothing)
            }
            Answer::PreconditionFailed => {
                // The stored validators, so the client can see what it did not match.
                let mut out = copied(&headers, [header::ETAG, header::LAST_MODIFIED]);
                out.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
                (StatusCode::PRECONDITION_FAILED, out, Part::Nothing)
            }
            Answer::Unsatisfiable { len } => {
                let names = [
                    header::ETAG,
                    header::LAST_MODIFIED,
                    header::DATE,
                    header::AGE,
                ];
                let mut out = copied(&headers, names);
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                    out.insert(header::CONTENT_RANGE, v);
                }
                out.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
                (StatusCode::RANGE_NOT_SATISFIABLE, out, Part::Nothing)
            }
        }
    }
}

/// The first value of each of `names` in `headers`.
fn copied<const N: usize>(headers: &HeaderMap, names: [header::HeaderName; N]) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in names {
        if let Some(v) = headers.get(&name) {
            out.insert(name, v.clone());
        }
    }
    out
}

/// Phase `respond` for a stored response: Age at the request's `now`, then the client's
/// preconditions and Range.
fn respond_stored(ctx: &Ctx, ask: &Ask, entry: &Stored, outcome: Outcome) -> Response<Body> {
    let mut headers = entry.headers();
    set_age(&mut headers, &entry.freshness, ask.now);
    let answer = match Answer::preconditions(ask, entry.status, &headers) {
        Ok(true) => Answer::range(ask, entry.body.len()),
        Ok(false) => Answer::Full,
        Err(bodiless) => bodiless,
    };
    let (status, headers, part) = answer.apply(entry.status, headers, ask.client.head);
    let range = match part {
        Part::Nothing => None,
        Part::All => Some((0, entry.body.len())),
        Part::Range(start, end) => Some((start, end + 1)),
    };
    let body = match (range, &entry.body) {
        (None, _) => empty(),
        (Some((start, end)), Payload::Memory(b)) => {
            let b = b.slice(start as usize..end as usize);
            ctx.metrics.tally("cache").add(b.len() as u64);
            full(b)
        }
        (Some((start, end)), Payload::Disk(d)) => {
            d.clone().stream(start, end, ctx.metrics.tally("cache"))
        }
    };
    finish(ctx, ask.client, response(status, headers, body), outcome)
}

/// Phase `respond` for a flight's member: the body streams from the shared buffer. A Range on
/// a body of unknown length waits for the whole body to learn the length.
async fn respond_shared(
    ctx: &Ctx,
    ask: &Ask,
    flight: &Arc<Flight>,
    h: &SharedHead,
    outcome: Outcome,
) -> Response<Body> {
    let mut headers = h.headers.clone();
    if let Some(f) = &h.freshness {
        set_age(&mut headers, f, ask.now);
    }
    let answer = match Answer::preconditions(ask, h.status, &headers) {
        Ok(true) => {
            let len = match h.content_length {
                Some(l) => Some(l),
                None => flight.complete_len(ctx.coalesce_wait).await,
            };
            len.map_or(Answer::Full, |len| Answer::range(ask, len))
        }
        Ok(false) => Answer::Full,
        Err(bodiless) => bodiless,
    };
    let (status, headers, part) = answer.apply(h.status, headers, ask.client.head);
    // A revalidated response's body was in the cache before the request.
    let source = if h.fwd_status == 304 {
        "cache"
    } else {
        "upstream"
    };
    let body = match part {
        Part::Nothing => empty(),
        Part::All => flight.body(0, None, ctx.idle, ctx.metrics.tally(source)),
        Part::Range(start, end) => {
            flight.body(start, Some(end + 1), ctx.idle, ctx.metrics.tally(source))
        }
    };
    finish(ctx, ask.client, response(status, headers, body), outcome)
}

fn set_age(headers: &mut HeaderMap, f: &Freshness, now: SystemTime) {
    let age = f.age(now).as_secs();
    headers.insert(header::AGE, HeaderValue::from(age));
}

fn response(status: StatusCode, headers: HeaderMap, body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

/// Adds Via and Cache-Status, hides CDN-Cache-Control from end users (RFC 9213: it targets
/// CDN caches, which a child edge is), and records the request's metrics.
fn finish(ctx: &Ctx, client: Client, mut resp: Response<Body>, outcome: Outcome) -> Response<Body> {
    let headers = resp.headers_mut();
    if !client.from_edge {
        headers.remove("cdn-cache-control");
    }
    headers.append(header::VIA, ctx.via.clone());
    if let Ok(v) = HeaderValue::from_str(&outcome.render(&ctx.name)) {
        // Cache-Status is a list: each cache appends its member after the upstream's.
        headers.append("cache-status", v);
    }
    ctx.metrics
        .observe_request(outcome.label(), client.started.elapsed().as_secs_f64());
    resp
}

/// A plain-text error response the cache makes itself.
fn error(
    ctx: &Ctx,
    started: Instant,
    outcome: Outcome,
    status: StatusCode,
    msg: &str,
) -> Response<Body> {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let client = Client {
        head: false,
        from_edge: false,
        started,
    };
    let body = full(Bytes::from(format!("{msg}\n")));
    finish(ctx, client, response(status, headers, body), outcome)
}

/// Builds the shared state of one edge; with `cache_dir`, opens the disk tier (its index is
/// rebuilt in the background). Errors name the cache directory.
pub fn context(
    config: Config,
    policy: PolicyConfig,
    name: String,
    metrics: Arc<Metrics>,
    upstream: Upstream,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Ctx> {
    let store = Store::new(
        config.cache_size.0,
        config.memory_object_limit(),
        metrics.evictions.clone(),
    );
    let disk = match &config.cache_dir {
        Some(dir) => {
            metrics.disk_capacity_bytes.set(config.disk_size.0 as i64);
            Some(DiskStore::open(crate::disk::DiskOptions {
                dir: dir.clone(),
                capacity: config.disk_size.0,
                policy: policy.clone(),
                clock: clock.clone(),
                purges: store.purge_counter(),
                metrics: crate::disk::DiskMetrics::from(&metrics),
            })?)
        }
        None => None,
    };
    let misses = RateLimiter::for_misses(&config.rate_limit)?;
    let via = HeaderValue::from_str(&format!("1.1 {name} {}", upstream::EDGE_VIA_COMMENT))
        .unwrap_or_else(|_| HeaderValue::from_static("1.1 edge (cdn-edge)"));
    Ok(Ctx {
        via,
        disk,
        flights: Flights::new(config.inflight_buffer.0),
        idle: Config::duration(config.idle_timeout_secs),
        coalesce_wait: Config::duration(config.coalesce_wait_secs),
        stale_if_slow: Config::duration(config.stale_if_slow_secs),
        misses,
        name,
        config,
        policy,
        store,
        upstream,
        metrics,
        clock,
    })
}

impl Ctx {
    /// Takes a token from `peer`'s miss budget: `Err` with the time until one is back when it
    /// is empty.
    fn miss_allowed(&self, peer: IpAddr) -> Result<(), Duration> {
        match &self.misses {
            Some(l) => match l.check(peer, Instant::now()) {
                LimitVerdict::Allow => Ok(()),
                LimitVerdict::Limit(wait) => Err(wait),
            },
            None => Ok(()),
        }
    }

    /// The 429 for a request over its client's miss budget; it never reaches the upstream.
    fn refuse_miss(&self, wait: Duration) -> Response<Body> {
        let limit = Limit::Misses;
        self.metrics
            .rate_limited
            .with_label_values(&[limit.label()])
            .inc();
        crate::limits::too_many(limit, wait)
    }

    /// Largest body stored in any tier.
    pub fn max_object_size(&self) -> u64 {
        match &self.disk {
            Some(_) => self.config.max_object_size.0,
            None => self.store.max_object_size(),
        }
    }
}
