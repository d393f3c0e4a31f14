//! The request path of a cacheable request, as named phases:
//!
//! `key` -> `lookup` -> (`hit` | `stale` | `miss`) -> `upstream` (coalesced in a flight) ->
//! `store` -> `respond`.
//!
//! Requests the cache must not answer (other methods, Authorization, `no-store`) take the
//! `pass` path; unsafe methods invalidate the stored response for their URL.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use common::http::{empty, full, Body};
use common::precondition::{self, Decision};

use crate::cache_status::CacheStatus;
use crate::config::Config;
use crate::flight::{Flight, Flights, Head, SharedHead};
use crate::key::{self, CacheKey};
use crate::metrics::Metrics;
use crate::policy::{self, Freshness, PolicyConfig, RangeAnswer, RequestControls, Verdict};
use crate::store::{Store, Stored};
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
    pub flights: Flights,
    pub upstream: Upstream,
    pub metrics: Arc<Metrics>,
    /// This edge's Via member, built once.
    pub via: HeaderValue,
    pub idle: Duration,
    pub coalesce_wait: Duration,
    /// The wait for a revalidation when a stale copy may stand in (zero: no shorter wait).
    pub stale_if_slow: Duration,
}

/// A client request, reduced to what the cache path needs (the `key` phase's output).
struct Ask {
    parts: Parts,
    peer: IpAddr,
    key: CacheKey,
    controls: RequestControls,
    head: bool,
    from_edge: bool,
    started: Instant,
}

/// What the `lookup` phase found.
enum Lookup {
    Hit(Arc<Stored>),
    /// Stale but servable now; `revalidate` asks for a background refresh.
    Stale {
        entry: Arc<Stored>,
        revalidate: bool,
    },
    /// Go upstream; `stale` is kept for revalidation and for stale-if-error.
    Miss {
        stale: Option<Arc<Stored>>,
        fwd: &'static str,
    },
}

/// Entry point for every proxied request.
pub async fn handle(ctx: Arc<Ctx>, parts: Parts, body: Incoming, peer: IpAddr) -> Response<Body> {
    let started = Instant::now();
    if upstream::via_names(&parts.headers, &ctx.name) {
        let cs = CacheStatus {
            fwd: Some("bypass"),
            detail: Some("loop"),
            ..Default::default()
        };
        return error(
            &ctx,
            &cs,
            started,
            StatusCode::LOOP_DETECTED,
            "request loop: Via already names this edge",
        );
    }
    let cacheable_method = parts.method == Method::GET || parts.method == Method::HEAD;
    let controls = RequestControls::from_headers(&parts.headers);
    if !cacheable_method || parts.headers.contains_key(header::AUTHORIZATION) || controls.no_store {
        return pass(&ctx, parts, body, peer, started).await;
    }
    let ask = Ask {
        key: key::of_request(&parts, &ctx.config.ignore_query_params),
        head: parts.method == Method::HEAD,
        from_edge: upstream::from_edge(&parts.headers),
        parts,
        peer,
        controls,
        started,
    };
    match lookup(&ctx, &ask).await {
        Lookup::Hit(entry) => {
            let cs = CacheStatus {
                hit: true,
                ttl: Some(entry.freshness.ttl_secs(SystemTime::now())),
                ..Default::default()
            };
            respond_stored(&ctx, &ask, &entry, cs)
        }
        Lookup::Stale { entry, revalidate } => {
            if revalidate {
                refresh_in_background(&ctx, &ask, entry.clone());
            }
            let cs = CacheStatus {
                hit: true,
                ttl: Some(entry.freshness.ttl_secs(SystemTime::now())),
                detail: Some(if revalidate {
                    "stale-while-revalidate"
                } else {
                    "max-stale"
                }),
                ..Default::default()
            };
            respond_stored(&ctx, &ask, &entry, cs)
        }
        Lookup::Miss { stale, fwd } => {
            if ask.controls.only_if_cached {
                let cs = CacheStatus {
                    fwd: Some(fwd),
                    detail: Some("only-if-cached"),
                    ..Default::default()
                };
                return error(
                    &ctx,
                    &cs,
                    ask.started,
                    StatusCode::GATEWAY_TIMEOUT,
                    "not in cache",
                );
            }
            miss(&ctx, &ask, stale, fwd).await
        }
    }
}

/// Phase `lookup`: the stored variant for the key, judged against the request.
async fn lookup(ctx: &Ctx, ask: &Ask) -> Lookup {
    let Some(entry) = ctx.store.get(&ask.key).await else {
        return Lookup::Miss {
            stale: None,
            fwd: "miss",
        };
    };
    if !entry.matches_variant(&ask.parts.headers) {
        return Lookup::Miss {
            stale: None,
            fwd: "vary-miss",
        };
    }
    match entry.freshness.verdict(&ask.controls, SystemTime::now()) {
        Verdict::Fresh => Lookup::Hit(entry),
        Verdict::StaleWhileRevalidate => Lookup::Stale {
            entry,
            revalidate: true,
        },
        Verdict::StaleAllowedByClient => Lookup::Stale {
            entry,
            revalidate: false,
        },
        Verdict::Revalidate => {
            let forced = ask.controls.no_cache
                || ask.controls.max_age.is_some()
                || ask.controls.min_fresh.is_some();
            let fwd = if forced && entry.freshness.is_fresh(SystemTime::now()) {
                "request"
            } else {
                "stale"
            };
            Lookup::Miss {
                stale: Some(entry),
                fwd,
            }
        }
    }
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

/// Phase `miss` (also stale without a usable stale window): join or start the key's flight.
async fn miss(
    ctx: &Arc<Ctx>,
    ask: &Ask,
    stale: Option<Arc<Stored>>,
    fwd: &'static str,
) -> Response<Body> {
    let (flight, created) = ctx.flights.join(&ask.key);
    if created {
        start_fetch(ctx, ask, flight.clone(), stale.clone());
    }
    respond_from_flight(ctx, ask, &flight, created, stale, fwd).await
}

fn refresh_in_background(ctx: &Arc<Ctx>, ask: &Ask, stale: Arc<Stored>) {
    let (flight, created) = ctx.flights.join(&ask.key);
    if created {
        start_fetch(ctx, ask, flight, Some(stale));
    }
}

fn start_fetch(ctx: &Arc<Ctx>, ask: &Ask, flight: Arc<Flight>, stale: Option<Arc<Stored>>) {
    let out = outgoing(ctx, ask);
    let ctx = ctx.clone();
    let key = ask.key.clone();
    tokio::spawn(async move {
        fetch_and_store(ctx, key, flight, out, stale).await;
    });
}

/// Lands a flight however its fetch ends (including a panic or cancellation): members waiting
/// for a head get an error instead of waiting out their timeout.
struct Landing {
    ctx: Arc<Ctx>,
    key: CacheKey,
    flight: Arc<Flight>,
}

impl Drop for Landing {
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

/// Phases `upstream` and `store`, run once per flight in its own task.
async fn fetch_and_store(
    ctx: Arc<Ctx>,
    key: CacheKey,
    flight: Arc<Flight>,
    mut out: Outgoing,
    stale: Option<Arc<Stored>>,
) {
    ctx.metrics.inflight_fetches.inc();
    let _landing = Landing {
        ctx: ctx.clone(),
        key: key.clone(),
        flight: flight.clone(),
    };
    if let Some(s) = &stale {
        for (name, value) in policy::revalidation_headers(&s.headers()) {
            out.headers.insert(name, value);
        }
    }
    let generation = ctx.store.generation();
    let request_time = SystemTime::now();
    let resp = match ctx.upstream.fetch(&key.to_string(), &out).await {
        Ok((resp, _tier)) => resp,
        Err(e) => {
            tracing::warn!(key = %key, error = %e, "upstream fetch failed");
            flight.set_head(Head::Failed(e));
            return;
        }
    };
    let response_time = SystemTime::now();
    let (mut parts, body) = resp.into_parts();
    upstream::strip_hop_by_hop(&mut parts.headers);

    // A 304 refreshes the stored response (RFC 9111 section 4.3.4) and its body is reused.
    if parts.status == StatusCode::NOT_MODIFIED {
        if let Some(s) = &stale {
            let merged = policy::refresh_headers(&s.headers(), &parts.headers);
            let freshness =
                Freshness::new(&ctx.policy, s.status, &merged, request_time, response_time);
            let entry =
                Arc::new(s.refreshed(&ctx.policy, &merged, freshness.clone(), response_time));
            let stored = ctx
                .store
                .insert_fetched(key.clone(), entry.clone(), generation)
                .await;
            flight.set_head(Head::Ready(Arc::new(SharedHead {
                status: entry.status,
                headers: entry.headers(),
                content_length: Some(entry.body.len() as u64),
                fwd_status: 304,
                stored,
                freshness: Some(freshness),
                vary: entry.vary.clone(),
            })));
            if !entry.body.is_empty() {
                flight.push(entry.body.clone());
            }
            flight.finish();
            return;
        }
    }

    let directives = policy::ResponseControls::from_headers(&parts.headers).directives;
    if directives.has("private") || parts.headers.contains_key(header::SET_COOKIE) {
        flight.set_pass(Response::from_parts(parts, body));
        return;
    }
    let content_length = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let max_object = ctx.store.max_object_size();
    let mut storable = policy::storable(&out.headers, parts.status, &parts.headers).is_ok()
        && content_length.is_none_or(|l| l <= max_object);
    if let Some(len) = content_length {
        if !flight.reserve(len) {
            flight.set_pass(Response::from_parts(parts, body));
            return;
        }
    }
    let vary = match policy::vary_names(&parts.headers) {
        Some(names) => names
            .iter()
            .cloned()
            .zip(policy::vary_values(&names, &out.headers))
            .collect(),
        None => Vec::new(),
    };
    let freshness = Freshness::new(
        &ctx.policy,
        parts.status,
        &parts.headers,
        request_time,
        response_time,
    );
    let head = Arc::new(SharedHead {
        status: parts.status,
        headers: parts.headers.clone(),
        content_length,
        fwd_status: parts.status.as_u16(),
        stored: storable,
        freshness: storable.then(|| freshness.clone()),
        vary: vary.clone(),
    });
    flight.set_head(Head::Ready(head));

    let mut body = body;
    let mut received: u64 = 0;
    loop {
        match tokio::time::timeout(ctx.idle, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                received += data.len() as u64;
                ctx.metrics.upstream_bytes.inc_by(data.len() as u64);
                if received > max_object {
                    storable = false;
                }
                if !flight.push(data) {
                    return;
                }
            }
            Ok(Some(Err(e))) => {
                tracing::warn!(key = %key, error = %e, "upstream body failed");
                flight.fail_body("upstream body failed");
                return;
            }
            Ok(None) => break,
            Err(_) => {
                tracing::warn!(key = %key, "upstream body idle timeout");
                flight.fail_body("upstream body idle timeout");
                return;
            }
        }
    }
    if content_length.is_some_and(|l| l != received) {
        flight.fail_body("upstream body length differs from Content-Length");
        return;
    }
    flight.finish();
    if storable {
        if let Some(chunks) = flight.body_chunks() {
            let entry = Stored::new(
                &ctx.policy,
                parts.status,
                parts.headers,
                &chunks,
                freshness,
                vary,
                response_time,
            );
            ctx.store
                .insert_fetched(key, Arc::new(entry), generation)
                .await;
        }
    }
}

/// Phase `respond` for members of a flight.
async fn respond_from_flight(
    ctx: &Arc<Ctx>,
    ask: &Ask,
    flight: &Arc<Flight>,
    created: bool,
    stale: Option<Arc<Stored>>,
    fwd: &'static str,
) -> Response<Body> {
    // A slow upstream does not hold a client that a stale copy can serve (stale-if-error).
    let stand_in = stale
        .as_ref()
        .is_some_and(|s| s.freshness.usable_on_error(SystemTime::now()));
    let wait = if stand_in && !ctx.stale_if_slow.is_zero() {
        ctx.stale_if_slow.min(ctx.coalesce_wait)
    } else {
        ctx.coalesce_wait
    };
    let head = flight.head(wait).await;
    match head {
        None | Some(Head::Pending) => {
            let e = UpstreamError::Timeout("the shared upstream fetch".into());
            upstream_failed(ctx, ask, stale, e, None, fwd)
        }
        Some(Head::Failed(e)) => upstream_failed(ctx, ask, stale, e, None, fwd),
        Some(Head::Pass) => {
            if created {
                if let Some(resp) = flight.take_pass() {
                    let cs = CacheStatus {
                        fwd: Some(fwd),
                        fwd_status: Some(resp.status().as_u16()),
                        ..Default::default()
                    };
                    return relay(ctx, ask.head, ask.from_edge, ask.started, resp, cs);
                }
            }
            fetch_alone(ctx, ask, fwd).await
        }
        Some(Head::Ready(h)) => {
            if h.status.is_server_error() {
                if let Some(s) = stale
                    .as_ref()
                    .filter(|s| s.freshness.usable_on_error(SystemTime::now()))
                {
                    let cs = CacheStatus {
                        fwd: Some(fwd),
                        fwd_status: Some(h.fwd_status),
                        ttl: Some(s.freshness.ttl_secs(SystemTime::now())),
                        detail: Some("stale-if-error"),
                        ..Default::default()
                    };
                    return respond_stored(ctx, ask, s, cs);
                }
            }
            if !variant_matches(&h, &ask.parts.headers) {
                return fetch_alone(ctx, ask, "vary-miss").await;
            }
            let cs = CacheStatus {
                fwd: Some(fwd),
                fwd_status: Some(h.fwd_status),
                stored: h.stored,
                collapsed: !created,
                ttl: h.freshness.as_ref().map(|f| f.ttl_secs(SystemTime::now())),
                ..Default::default()
            };
            respond_shared(ctx, ask, flight, &h, cs).await
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

/// The upstream failed: serve a stale copy when stale-if-error allows, else 502/504.
fn upstream_failed(
    ctx: &Ctx,
    ask: &Ask,
    stale: Option<Arc<Stored>>,
    e: UpstreamError,
    fwd_status: Option<u16>,
    fwd: &'static str,
) -> Response<Body> {
    let now = SystemTime::now();
    if let Some(s) = stale.filter(|s| s.freshness.usable_on_error(now)) {
        let cs = CacheStatus {
            fwd: Some(fwd),
            fwd_status,
            ttl: Some(s.freshness.ttl_secs(now)),
            detail: Some("stale-if-error"),
            ..Default::default()
        };
        return respond_stored(ctx, ask, &s, cs);
    }
    let cs = CacheStatus {
        fwd: Some(fwd),
        fwd_status,
        ..Default::default()
    };
    error(ctx, &cs, ask.started, e.status(), &e.to_string())
}

/// An uncoalesced fetch for a request that cannot share the flight's response.
async fn fetch_alone(ctx: &Arc<Ctx>, ask: &Ask, fwd: &'static str) -> Response<Body> {
    let mut out = outgoing(ctx, ask);
    out.method = ask.parts.method.clone();
    for h in client_conditionals() {
        if let Some(v) = ask.parts.headers.get(h) {
            out.headers.insert(h.clone(), v.clone());
        }
    }
    match ctx.upstream.fetch(&ask.key.to_string(), &out).await {
        Ok((resp, _)) => {
            let cs = CacheStatus {
                fwd: Some(fwd),
                fwd_status: Some(resp.status().as_u16()),
                ..Default::default()
            };
            relay(ctx, ask.head, ask.from_edge, ask.started, resp, cs)
        }
        Err(e) => upstream_failed(ctx, ask, None, e, None, fwd),
    }
}

/// Largest request body forwarded upstream (POST/PUT bodies; a video CDN sees few).
const MAX_FORWARDED_BODY: usize = 1 << 20;
/// Time a client has to send a request body.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Requests the cache does not answer: forwarded as they are; unsafe methods invalidate.
async fn pass(
    ctx: &Arc<Ctx>,
    parts: Parts,
    body: Incoming,
    peer: IpAddr,
    started: Instant,
) -> Response<Body> {
    let key = key::of_request(&parts, &ctx.config.ignore_query_params);
    let out = Outgoing {
        method: parts.method.clone(),
        path_and_query: path_and_query(&parts),
        headers: upstream::forwarded_headers(&parts.headers, peer, &ctx.name),
    };
    let head = parts.method == Method::HEAD;
    let safe = matches!(
        parts.method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    );
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
        let bytes = match collected {
            Ok(Ok(c)) => c.to_bytes(),
            Ok(Err(e)) => {
                let cs = CacheStatus {
                    fwd: Some("method"),
                    ..Default::default()
                };
                let too_big = e.is::<http_body_util::LengthLimitError>();
                let (status, msg) = if too_big {
                    (StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
                } else {
                    (StatusCode::BAD_REQUEST, "malformed request body")
                };
                return error(ctx, &cs, started, status, msg);
            }
            Err(_) => {
                let cs = CacheStatus {
                    fwd: Some("method"),
                    ..Default::default()
                };
                return error(
                    ctx,
                    &cs,
                    started,
                    StatusCode::REQUEST_TIMEOUT,
                    "request body timed out",
                );
            }
        };
        let body = full(bytes);
        ctx.upstream.forward(&key.to_string(), &out, body).await
    };
    let fwd = if safe { "bypass" } else { "method" };
    match result {
        Ok(resp) => {
            let status = resp.status();
            if !safe && (status.is_success() || status.is_redirection()) {
                // RFC 9111 section 4.4: a successful unsafe request invalidates the target URI.
                ctx.store.remove(&key).await;
            }
            let cs = CacheStatus {
                fwd: Some(fwd),
                fwd_status: Some(status.as_u16()),
                ..Default::default()
            };
            relay(
                ctx,
                head,
                upstream::from_edge(&parts.headers),
                started,
                resp,
                cs,
            )
        }
        Err(e) => {
            let cs = CacheStatus {
                fwd: Some(fwd),
                ..Default::default()
            };
            error(ctx, &cs, started, e.status(), &e.to_string())
        }
    }
}

/// Streams an unshared upstream response to the client.
fn relay(
    ctx: &Ctx,
    head: bool,
    from_edge: bool,
    started: Instant,
    resp: Response<Incoming>,
    cs: CacheStatus,
) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    upstream::strip_hop_by_hop(&mut parts.headers);
    let body = if head {
        empty()
    } else {
        upstream::relay_body(body, ctx.idle, ctx.metrics.relay_tally())
    };
    finish(
        ctx,
        from_edge,
        started,
        parts.status,
        parts.headers,
        body,
        &cs,
    )
}

/// Phase `respond` for a stored response: Age, client conditionals, Range, HEAD.
fn respond_stored(ctx: &Ctx, ask: &Ask, entry: &Stored, cs: CacheStatus) -> Response<Body> {
    let mut headers = entry.headers();
    set_age(&mut headers, &entry.freshness);
    let len = entry.body.len() as u64;
    let tally = ctx.metrics.tally("cache");
    if entry.status == StatusCode::OK {
        let use_range = match policy::precondition(&ask.parts.method, &ask.parts.headers, &headers)
        {
            Decision::NotModified => return not_modified(ctx, ask, &headers, &cs),
            Decision::PreconditionFailed => return precondition_failed(ctx, ask, &headers, &cs),
            Decision::Serve { use_range } => use_range,
        };
        let answer = if use_range {
            policy::range(&ask.parts.headers, len)
        } else {
            RangeAnswer::Full
        };
        match answer {
            RangeAnswer::Full => {}
            RangeAnswer::Unsatisfiable => return unsatisfiable(ctx, ask, headers, len, &cs),
            RangeAnswer::Partial { start, end } => {
                set_partial(&mut headers, start, end, len);
                let body = if ask.head {
                    empty()
                } else {
                    tally.add(end - start + 1);
                    full(entry.body.slice(start as usize..=end as usize))
                };
                return finish(
                    ctx,
                    ask.from_edge,
                    ask.started,
                    StatusCode::PARTIAL_CONTENT,
                    headers,
                    body,
                    &cs,
                );
            }
        }
    }
    let body = if ask.head {
        empty()
    } else {
        tally.add(len);
        full(entry.body.clone())
    };
    finish(
        ctx,
        ask.from_edge,
        ask.started,
        entry.status,
        headers,
        body,
        &cs,
    )
}

/// Phase `respond` for a flight member: the body streams from the shared buffer.
async fn respond_shared(
    ctx: &Ctx,
    ask: &Ask,
    flight: &Arc<Flight>,
    h: &SharedHead,
    cs: CacheStatus,
) -> Response<Body> {
    let mut headers = h.headers.clone();
    if let Some(f) = &h.freshness {
        set_age(&mut headers, f);
    }
    let source = if h.fwd_status == 304 {
        "cache"
    } else {
        "upstream"
    };
    let tally = ctx.metrics.tally(source);
    if h.status == StatusCode::OK {
        let use_range = match policy::precondition(&ask.parts.method, &ask.parts.headers, &headers)
        {
            Decision::NotModified => return not_modified(ctx, ask, &headers, &cs),
            Decision::PreconditionFailed => return precondition_failed(ctx, ask, &headers, &cs),
            Decision::Serve { use_range } => use_range,
        };
        if use_range {
            let len = match h.content_length {
                Some(l) => Some(l),
                None => flight.complete_len(ctx.coalesce_wait).await,
            };
            if let Some(len) = len {
                match policy::range(&ask.parts.headers, len) {
                    RangeAnswer::Full => {}
                    RangeAnswer::Unsatisfiable => {
                        return unsatisfiable(ctx, ask, headers, len, &cs)
                    }
                    RangeAnswer::Partial { start, end } => {
                        set_partial(&mut headers, start, end, len);
                        let body = if ask.head {
                            empty()
                        } else {
                            flight.body(start, Some(end + 1), ctx.idle, tally)
                        };
                        return finish(
                            ctx,
                            ask.from_edge,
                            ask.started,
                            StatusCode::PARTIAL_CONTENT,
                            headers,
                            body,
                            &cs,
                        );
                    }
                }
            }
        }
    }
    let body = if ask.head {
        empty()
    } else {
        flight.body(0, None, ctx.idle, tally)
    };
    finish(
        ctx,
        ask.from_edge,
        ask.started,
        h.status,
        headers,
        body,
        &cs,
    )
}

fn set_age(headers: &mut HeaderMap, f: &Freshness) {
    let age = f.age(SystemTime::now()).as_secs();
    headers.insert(header::AGE, HeaderValue::from(age));
}

fn set_partial(headers: &mut HeaderMap, start: u64, end: u64, len: u64) {
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start + 1));
    if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")) {
        headers.insert(header::CONTENT_RANGE, v);
    }
}

/// 412 for a failed If-Match / If-Unmodified-Since, with the stored validators so the client can
/// see what it did not match.
fn precondition_failed(
    ctx: &Ctx,
    ask: &Ask,
    stored: &HeaderMap,
    cs: &CacheStatus,
) -> Response<Body> {
    let mut headers = HeaderMap::new();
    for name in [header::ETAG, header::LAST_MODIFIED] {
        if let Some(v) = stored.get(&name) {
            headers.insert(name, v.clone());
        }
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    finish(
        ctx,
        ask.from_edge,
        ask.started,
        StatusCode::PRECONDITION_FAILED,
        headers,
        empty(),
        cs,
    )
}

fn not_modified(ctx: &Ctx, ask: &Ask, stored: &HeaderMap, cs: &CacheStatus) -> Response<Body> {
    let mut headers = policy::not_modified_headers(stored);
    if let Some(age) = stored.get(header::AGE) {
        headers.insert(header::AGE, age.clone());
    }
    finish(
        ctx,
        ask.from_edge,
        ask.started,
        StatusCode::NOT_MODIFIED,
        headers,
        empty(),
        cs,
    )
}

fn unsatisfiable(
    ctx: &Ctx,
    ask: &Ask,
    stored: HeaderMap,
    len: u64,
    cs: &CacheStatus,
) -> Response<Body> {
    let mut headers = HeaderMap::new();
    for name in [
        header::ETAG,
        header::LAST_MODIFIED,
        header::DATE,
        header::AGE,
    ] {
        if let Some(v) = stored.get(&name) {
            headers.insert(name, v.clone());
        }
    }
    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
        headers.insert(header::CONTENT_RANGE, v);
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
    finish(
        ctx,
        ask.from_edge,
        ask.started,
        StatusCode::RANGE_NOT_SATISFIABLE,
        headers,
        empty(),
        cs,
    )
}

/// Adds Via and Cache-Status, hides CDN-Cache-Control from end users (RFC 9213: it targets
/// CDN caches, which a child edge is), and records the request's metrics.
fn finish(
    ctx: &Ctx,
    from_edge: bool,
    started: Instant,
    status: StatusCode,
    mut headers: HeaderMap,
    body: Body,
    cs: &CacheStatus,
) -> Response<Body> {
    if !from_edge {
        headers.remove("cdn-cache-control");
    }
    headers.append(header::VIA, ctx.via.clone());
    if let Ok(v) = HeaderValue::from_str(&cs.render(&ctx.name)) {
        // Cache-Status is a list: each cache appends its member after the upstream's.
        headers.append("cache-status", v);
    }
    ctx.metrics
        .observe_request(cs.label(), started.elapsed().as_secs_f64());
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

fn error(
    ctx: &Ctx,
    cs: &CacheStatus,
    started: Instant,
    status: StatusCode,
    msg: &str,
) -> Response<Body> {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    finish(
        ctx,
        false,
        started,
        status,
        headers,
        full(Bytes::from(format!("{msg}\n"))),
        cs,
    )
}

/// Builds the shared state of one edge.
pub fn context(
    config: Config,
    policy: PolicyConfig,
    name: String,
    metrics: Arc<Metrics>,
    upstream: Upstream,
) -> Ctx {
    let store = Store::new(
        config.cache_size.0,
        config.max_object_size.0,
        metrics.evictions.clone(),
    );
    let via = HeaderValue::from_str(&format!("1.1 {name} {}", upstream::EDGE_VIA_COMMENT))
        .unwrap_or_else(|_| HeaderValue::from_static("1.1 edge (cdn-edge)"));
    Ctx {
        via,
        flights: Flights::new(config.inflight_buffer.0),
        idle: Config::duration(config.idle_timeout_secs),
        coalesce_wait: Config::duration(config.coalesce_wait_secs),
        stale_if_slow: Config::duration(config.stale_if_slow_secs),
        name,
        config,
        policy,
        store,
        upstream,
        metrics,
    }
}
