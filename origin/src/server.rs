//! The request path of the origin, in named steps: method check -> route (service endpoints,
//! live channels, stored objects) -> validators and preconditions -> ranges -> response, then
//! the headers every response carries (Date, CORS), the metrics and one access-log line.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use common::http::{empty, full, Body, ConnInfo};
use http::header::{
    ACCEPT_RANGES, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_RANGE,
    CONTENT_TYPE, DATE, ETAG, LAST_MODIFIED, RANGE,
};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::body;
use common::clock::Clock;
use crate::config::Config;
use crate::kind::{self, Kind};
use crate::live::Live;
use crate::metrics::Metrics;
use crate::path::{self, PathError};
use crate::range::{self, Ranges};
use crate::storage::{Object, Storage};
use common::etag::{self, Tag};
use common::precondition::{self, Decision, Validators};

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

/// The parts of a request the handlers read (the body of GET/HEAD is never used).
pub struct Req {
    pub local: std::net::SocketAddr,
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
}

/// Handles one request end to end.
pub async fn handle(state: Arc<State>, req: Request<Incoming>, info: ConnInfo) -> Response<Body> {
    let started = Instant::now();
    let (parts, _body) = req.into_parts();
    let req = Req {
        local: info.local,
        method: parts.method,
        path: parts.uri.path().to_string(),
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
        let len = resp
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        tracing::info!(
            target: "origin::access",
            peer = %info.peer,
            method = %req.method,
            path = %req.path,
            status = status.as_u16(),
            kind = kind.label(),
            bytes = len,
            micros = elapsed.as_micros() as u64,
            "request"
        );
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

/// Date and CORS on every response.
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
    if let Some(rest) = key.strip_prefix("live/") {
        if let Some(resp) = crate::live::handle(state, req, rest).await {
            return resp;
        }
    }
    let kind = kind::classify(&key);
    let resp = match state.storage.open(&key).await {
        Ok(Some(obj)) => {
            let cc = match kind {
                Kind::Mpd => &state.config.cache_control.mpd,
                Kind::Init => &state.config.cache_control.init,
                Kind::Segment => &state.config.cache_control.segment,
                _ => &state.config.cache_control.other,
            };
            object_response(state, req, obj, kind::content_type(&key), cc)
        }
        Ok(None) => not_found(state),
        Err(e) => storage_error(state, e),
    };
    (resp, kind)
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

/// A plain-text status response.
pub fn status_text(status: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(full(text.to_string()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(CONTENT_LENGTH, HeaderValue::from(text.len()));
    r
}

/// 404 with the configured (short) Cache-Control.
pub fn not_found(state: &State) -> Response<Body> {
    not_found_with(&state.config.cache_control.not_found)
}

/// 404 with a given Cache-Control.
pub fn not_found_with(cache_control: &str) -> Response<Body> {
    let mut r = status_text(StatusCode::NOT_FOUND, "not found\n");
    if let Ok(v) = HeaderValue::from_str(cache_control) {
        r.headers_mut().insert(CACHE_CONTROL, v);
    }
    r
}

/// A storage failure: logged, counted, 502 for a remote store and 500 for a local one.
pub fn storage_error(state: &State, e: crate::storage::StorageError) -> Response<Body> {
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

/// Serves an opened object: validators, preconditions (304/412), ranges (206/416), HEAD.
pub fn object_response(
    state: &State,
    req: &Req,
    obj: Arc<dyn Object>,
    content_type: &str,
    cache_control: &str,
) -> Response<Body> {
    let meta = obj.meta().clone();
    let mut validators = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&meta.etag) {
        validators.insert(ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(meta.modified)) {
        validators.insert(LAST_MODIFIED, v);
    }
    if let Ok(v) = HeaderValue::from_str(cache_control) {
        validators.insert(CACHE_CONTROL, v);
    }
    let ctype = HeaderValue::from_str(content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let head = req.method == Method::HEAD;

    let ours = Validators {
        etag: etag::parse(&meta.etag).or(Some(Tag {
            weak: false,
            opaque: &meta.etag,
        })),
        last_modified: Some(meta.modified),
        date: Some(SystemTime::now()),
    };
    let decision = precondition::evaluate(&req.method, &req.headers, ours);
    let use_range = match decision {
        Decision::NotModified => {
            let mut r = Response::new(empty());
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            r.headers_mut().extend(validators);
            return r;
        }
        Decision::PreconditionFailed => {
            let mut r = status_text(StatusCode::PRECONDITION_FAILED, "precondition failed\n");
            if let Some(etag) = validators.remove(ETAG) {
                r.headers_mut().insert(ETAG, etag);
            }
            return r;
        }
        Decision::Serve { use_range } => use_range,
    };

    let ranges = match (
        use_range,
        req.headers.get(RANGE).and_then(|v| v.to_str().ok()),
    ) {
        (true, Some(h)) => range::decide(h, meta.len, state.config.limits.max_ranges),
        _ => Ranges::Full,
    };
    let mut status = StatusCode::OK;
    let mut out = empty();
    let mut h = validators;
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    match ranges {
        Ranges::Full => {
            h.insert(CONTENT_TYPE, ctype);
            h.insert(CONTENT_LENGTH, HeaderValue::from(meta.len));
            if !head {
                out = body::from_stream(obj.read(0..meta.len));
            }
        }
        Ranges::Unsatisfiable => {
            status = StatusCode::RANGE_NOT_SATISFIABLE;
            let text = "range not satisfiable\n";
            h.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            h.insert(CONTENT_LENGTH, HeaderValue::from(text.len()));
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", meta.len)) {
                h.insert(CONTENT_RANGE, v);
            }
            out = full(text);
        }
        Ranges::Partial(ranges) if ranges.len() == 1 => {
            let rg = ranges[0].clone();
            status = StatusCode::PARTIAL_CONTENT;
            h.insert(CONTENT_TYPE, ctype);
            h.insert(CONTENT_LENGTH, HeaderValue::from(rg.end - rg.start));
            if let Ok(v) =
                HeaderValue::from_str(&format!("bytes {}-{}/{}", rg.start, rg.end - 1, meta.len))
            {
                h.insert(CONTENT_RANGE, v);
            }
            out = body::from_stream(obj.read(rg));
        }
        Ranges::Partial(ranges) => {
            let mp = body::multipart(obj, &ranges, content_type, body::boundary());
            status = StatusCode::PARTIAL_CONTENT;
            if let Ok(v) =
                HeaderValue::from_str(&format!("multipart/byteranges; boundary={}", mp.boundary))
            {
                h.insert(CONTENT_TYPE, v);
            }
            h.insert(CONTENT_LENGTH, HeaderValue::from(mp.len));
            out = mp.body;
        }
    }
    let mut r = Response::new(out);
    *r.status_mut() = status;
    *r.headers_mut() = h;
    r
}
