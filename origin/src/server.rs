//! The request path of the origin, in named steps: method check -> route (service endpoints,
//! live channels, stored objects) -> validators and preconditions -> ranges -> response, then
//! the headers every response carries (Date, CORS), the metrics and one access-log line.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use common::http::{empty, full, Body, ConnInfo, RequestBody};
use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS, ALLOW,
    CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, DATE,
};
use http::{HeaderValue, Method, Request, Response, StatusCode};

use crate::answer::{not_found_with, object_response, status_text, Answer, Req};
use crate::body;
use crate::config::Config;
use crate::kind::{self, Kind};
use crate::live::Live;
use crate::metrics::Metrics;
use crate::path::{self, PathError};
use crate::storage::Storage;
use common::clock::Clock;

/// Methods the origin answers.
const ALLOWED: &str = "GET, HEAD, OPTIONS";
/// Response headers a cross-origin script may read.
const EXPOSED: &str =
    "Content-Length, Content-Range, Content-Type, Date, ETag, Last-Modified, Accept-Ranges, Age";
/// Request headers a cross-origin script may send.
const ALLOWED_HEADERS: &str = "Range, If-None-Match, If-Modified-Since, If-Match, If-Unmodified-Since, If-Range, Cache-Control";

/// Everything a request needs, shared by all connections of one origin.
pub struct State {
    pub config: Config,
    pub storage: Arc<dyn Storage>,
    pub metrics: Metrics,
    pub clock: Arc<dyn Clock>,
    pub live: Live,
}

/// Handles one request end to end.
pub async fn handle(
    state: Arc<State>,
    req: Request<RequestBody>,
    info: ConnInfo,
) -> Response<Body> {
    let started = Instant::now();
    let (parts, _body) = req.into_parts();
    let version = parts.version;
    let parts_target = parts.uri.path_and_query().cloned();
    let req = Req {
        local: info.local,
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers,
    };
    let (mut resp, kind) = route(&state, &req).await;
    finish_headers(&state, &mut resp);

    let status = resp.status();
    let m = &state.metrics;
    let method = method_label(&req.method);
    m.requests
        .with_label_values(&[method, status.as_str(), kind.label()])
        .inc();
    if status == StatusCode::NOT_MODIFIED {
        m.not_modified.with_label_values(&[kind.label()]).inc();
    }
    let elapsed = started.elapsed();
    m.duration
        .with_label_values(&[kind.label()])
        .observe(elapsed.as_secs_f64());
    if state.config.access_log {
        let bytes = resp
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        common::access_log::Entry {
            peer: info.peer.ip(),
            time: state.clock.now(),
            method: &req.method,
            target: parts_target
                .as_ref()
                .map_or(req.path.as_str(), |t| t.as_str()),
            version,
            status,
            bytes: if req.method == Method::HEAD {
                Some(0)
            } else {
                bytes
            },
            headers: &req.headers,
            elapsed,
        }
        .emit(&[("kind", kind.label())]);
    }
    let counter = m.response_bytes.with_label_values(&[kind.label()]);
    resp.map(|b| body::Counting::wrap(b, counter))
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// Date, CORS and Timing-Allow-Origin on every response: players on any site may read the
/// responses and the timing of their fetches (Resource Timing's sizes, phases and protocol),
/// which is what a player's throughput estimate and its QoE reports are made of.
fn finish_headers(state: &State, resp: &mut Response<Body>) {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(state.clock.now())) {
        h.insert(DATE, v);
    }
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(
        ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSED),
    );
    h.insert("timing-allow-origin", HeaderValue::from_static("*"));
}

async fn route(state: &State, req: &Req) -> (Response<Body>, Kind) {
    match req.method {
        Method::GET | Method::HEAD => {}
        Method::OPTIONS => return (preflight(req), Kind::Service),
        _ => {
            let mut r = status_text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static(ALLOWED));
            return (r, Kind::Invalid);
        }
    }
    match req.path.as_str() {
        "/health" => {
            return (
                service(
                    req,
                    Bytes::from_static(b"ok\n"),
                    "text/plain; charset=utf-8",
                ),
                Kind::Service,
            )
        }
        "/metrics" => {
            let mut r = common::metrics::response(&state.metrics.registry);
            r.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            if req.method == Method::HEAD {
                r = r.map(|_| empty());
            }
            return (r, Kind::Service);
        }
        "/time" => {
            let now = crate::live::xs_datetime(state.clock.now());
            return (
                service(req, Bytes::from(now), "text/plain; charset=utf-8"),
                Kind::Service,
            );
        }
        _ => {}
    }
    let key = match path::to_key(&req.path) {
        Ok(k) => k,
        Err(PathError::Bad(why)) => {
            return (
                status_text(StatusCode::BAD_REQUEST, &format!("{why}\n")),
                Kind::Invalid,
            )
        }
        Err(PathError::Hidden) => return (not_found(state), Kind::Invalid),
    };
    let now = state.clock.now();
    if let Some(rest) = key.strip_prefix("live/") {
        let ctx = crate::live::Ctx {
            storage: state.storage.as_ref(),
            config: &state.config,
            now,
        };
        if let Some((answer, kind)) = state.live.handle(&ctx, req, rest).await {
            return (respond(state, req, answer, now), kind);
        }
    }
    let kind = kind::classify(&key);
    let answer = match state.storage.open(&key).await {
        Ok(Some(obj)) => Answer::Object {
            obj,
            content_type: kind::content_type(&key),
            cache_control: Cow::Borrowed(match kind {
                Kind::Mpd => &state.config.cache_control.mpd,
                Kind::Init => &state.config.cache_control.init,
                Kind::Segment => &state.config.cache_control.segment,
                _ => &state.config.cache_control.other,
            }),
        },
        Ok(None) => Answer::NotFound,
        Err(e) => Answer::Storage(e),
    };
    (respond(state, req, answer, now), kind)
}

/// The response for a handler's answer.
fn respond(state: &State, req: &Req, answer: Answer<'_>, now: SystemTime) -> Response<Body> {
    match answer {
        Answer::Object {
            obj,
            content_type,
            cache_control,
        } => object_response(
            req,
            obj,
            content_type,
            &cache_control,
            state.config.limits.max_ranges,
            now,
        ),
        Answer::Paced {
            chunks,
            etag,
            modified,
            content_type,
            cache_control,
        } => crate::answer::paced_response(
            req,
            chunks,
            &etag,
            modified,
            content_type,
            &cache_control,
            now,
        ),
        Answer::NotFound => not_found(state),
        Answer::NotFoundFor(cache_control) => not_found_with(cache_control),
        Answer::Storage(e) => storage_error(state, e),
        Answer::Failed(status, text) => status_text(status, text),
    }
}

/// A small generated response (health, time) that must never be cached.
fn service(req: &Req, body: Bytes, content_type: &'static str) -> Response<Body> {
    let len = body.len();
    let mut r = Response::new(if req.method == Method::HEAD {
        empty()
    } else {
        full(body)
    });
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// OPTIONS: a CORS preflight (with Origin) or a plain capability answer; 204 either way.
fn preflight(req: &Req) -> Response<Body> {
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    let h = r.headers_mut();
    h.insert(ALLOW, HeaderValue::from_static(ALLOWED));
    h.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOWED),
    );
    let allow_headers = req
        .headers
        .get(ACCESS_CONTROL_REQUEST_HEADERS)
        .filter(|v| {
            v.to_str().is_ok_and(|s| {
                s.len() < 1024
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_, ".contains(&b))
            })
        })
        .cloned()
        .unwrap_or(HeaderValue::from_static(ALLOWED_HEADERS));
    h.insert(ACCESS_CONTROL_ALLOW_HEADERS, allow_headers);
    h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    r
}

/// 404 with the configured (short) Cache-Control.
fn not_found(state: &State) -> Response<Body> {
    not_found_with(&state.config.cache_control.not_found)
}

/// A storage failure: logged, counted, 502 for a remote store and 500 for a local one.
fn storage_error(state: &State, e: crate::storage::StorageError) -> Response<Body> {
    tracing::error!(error = %e, "storage failure");
    state
        .metrics
        .storage_errors
        .with_label_values(&[state.storage.name()])
        .inc();
    let status = match e {
        crate::storage::StorageError::Remote { .. } => StatusCode::BAD_GATEWAY,
        crate::storage::StorageError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut r = status_text(status, "storage error\n");
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
